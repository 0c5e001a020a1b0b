//! Admission control per device: `mqtt_limit_connect` (CONNECTs per second
//! per key) and `mqtt_limit_conn` (live sessions per key, with `takeover`),
//! decided once the identity policy has accepted the CONNECT and before any
//! byte goes to the upstream.
//!
//! Each zone is a table of fixed-size slots in shared memory (see
//! `mqtt_core::admission`), used under the zone's slab-pool mutex: every
//! worker sees the same counts, and a reload that keeps a zone's name and
//! size keeps them too.
//!
//! * [`directives`]: the four directives.
//! * [`takeover`]: closing the older session of a key, in whichever worker
//!   holds it.

pub mod directives;
pub mod takeover;

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::alloc::Layout;

use mqtt_core::admission::conn::{Admission, ConnState, Holder, Mailbox};
use mqtt_core::admission::rate::{Rate, RateState};
use mqtt_core::admission::table::{entry, find, Claim, KeyHash, Slot};
use mqtt_core::escape::Escaped;
use mqtt_core::packet::Connect;
use mqtt_core::policy::RejectReason;
use ngx::allocator::Allocator;
use ngx::core::SlabPool;
use ngx::ffi::{ngx_current_msec, ngx_int_t, ngx_pid, ngx_str_t, NGX_LOG_WARN};

use crate::conf::MqttSrvConf;
use crate::log::mqtt_log;
use crate::preread::session_ctx;
use crate::refusal::{self, INTERNAL_ERROR};
use crate::session::str_bytes;
use crate::shm::{Zone, ZoneKind};
use crate::stream::{Session, NGX_DECLINED};
use crate::value::Value;
use crate::Module;

/// A table of slots in a zone's slab pool, with the secret its key hashes
/// are keyed with.
pub struct Table<P> {
    secret: [u64; 2],
    slots: NonNull<Slot<P>>,
    len: usize,
    /// When a full table last said so in the error log.
    warned_ms: AtomicU64,
}

impl<P: Default> Table<P> {
    /// A table that fills the pool's free pages but two (for the zone's
    /// header and the allocator's messages), all slots empty.
    fn create(pool: &SlabPool) -> Option<Table<P>> {
        let secret = master_secret();
        // SAFETY: a plain read of a global set at start-up.
        let page = unsafe { ngx::ffi::ngx_pagesize };
        let pages = pool.as_ref().pfree.saturating_sub(2);
        let ways = mqtt_core::admission::table::WAYS;
        let mut len = pages * page / size_of::<Slot<P>>() / ways * ways;
        // The free pages are one run in a new pool; should they not be, ask
        // for less.
        while len >= ways {
            let layout = Layout::array::<Slot<P>>(len).ok()?;
            if let Ok(slots) = pool.allocate_zeroed(layout) {
                let slots = slots.cast::<Slot<P>>();
                for i in 0..len {
                    // SAFETY: slots has room for len slots.
                    unsafe { slots.as_ptr().add(i).write(Slot::default()) };
                }
                return Some(Table {
                    secret,
                    slots,
                    len,
                    warned_ms: AtomicU64::new(0),
                });
            }
            len -= (len / 16 / ways + 1) * ways;
        }
        None
    }
}

/// The hash secret of the zones this master process creates, drawn once:
/// a key hashes alike in all of them, so one hash serves both zones of a
/// server keyed on the same value. A zone kept across a reload keeps the
/// secret it was made with.
fn master_secret() -> [u64; 2] {
    use std::hash::BuildHasher;
    static SECRET: std::sync::OnceLock<[u64; 2]> = std::sync::OnceLock::new();
    *SECRET.get_or_init(|| {
        let random = std::collections::hash_map::RandomState::new();
        [random.hash_one(1u8), random.hash_one(2u8)]
    })
}

impl<P> Table<P> {
    fn hash(&self, key: &[u8]) -> KeyHash {
        KeyHash::of(self.secret, key)
    }

    /// Says how many keys a new zone holds.
    fn log_capacity<K: ZoneKind>(&self, zone: &Zone<K>, directive: &str) {
        mqtt_log!(
            ngx::ffi::NGX_LOG_INFO,
            zone.log(),
            "{directive} \"{}\": {} keys of {} bytes",
            Escaped(zone.name()),
            self.len,
            size_of::<Slot<P>>()
        );
    }

    /// The slots, for the holder of the zone's mutex.
    ///
    /// # Safety
    /// The caller holds the pool's mutex for as long as the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slots(&self) -> &mut [Slot<P>] {
        // SAFETY: the slots were laid out by create() in shared memory,
        // mapped for the life of the cycle; the mutex makes the access
        // exclusive across processes.
        unsafe { core::slice::from_raw_parts_mut(self.slots.as_ptr(), self.len) }
    }

    /// Says, at most once a second per zone, that a full zone forgot a key.
    fn warn_evicted(&self, s: &Session<'_>, zone: &[u8], directive: &str) {
        // SAFETY: a plain read of nginx's cached clock.
        let now = unsafe { ngx_current_msec } as u64;
        let last = self.warned_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        mqtt_log!(
            NGX_LOG_WARN,
            s.connection().log,
            "{directive} \"{}\" is full: the least recently used key was forgotten",
            Escaped(zone)
        );
    }
}

/// `mqtt_limit_connect_zone`.
pub struct RateZone;

pub struct RateConf {
    pub key: Value,
    pub rate: Rate,
    pub defined: bool,
}

impl Default for RateConf {
    fn default() -> Self {
        RateConf {
            key: Value::default(),
            rate: Rate(0),
            defined: false,
        }
    }
}

static RATE_TAG: u8 = 0;

// SAFETY: create() builds the table in the pool it is given; the table is
// used only under the pool's mutex, or through atomics.
unsafe impl ZoneKind for RateZone {
    type Shared = Table<RateState>;
    type Conf = RateConf;
    const DIRECTIVE: &'static str = "mqtt_limit_connect_zone";

    fn tag() -> *const u8 {
        &RATE_TAG
    }

    fn create(pool: &SlabPool, zone: &Zone<Self>) -> Option<NonNull<Self::Shared>> {
        let table = Table::create(pool)?;
        table.log_capacity(zone, Self::DIRECTIVE);
        alloc_shared(pool, table)
    }
}

/// `mqtt_limit_conn_zone`: the table, and the takeovers on their way to the
/// worker that holds the victim.
pub struct ConnShared {
    pub table: Table<ConnState>,
    /// Under the pool's mutex.
    mailbox: UnsafeCell<Mailbox>,
    /// How many takeovers wait in the mailbox: looked at without the lock.
    pub pending: AtomicU32,
}

pub struct ConnZone;

#[derive(Default)]
pub struct ConnConf {
    pub key: Value,
    pub defined: bool,
    /// Whether a server uses the zone with `takeover`: only then must a
    /// worker know its sessions by connection number.
    pub takeover: bool,
}

static CONN_TAG: u8 = 0;

// SAFETY: as for RateZone; the mailbox is reached only under the mutex.
unsafe impl ZoneKind for ConnZone {
    type Shared = ConnShared;
    type Conf = ConnConf;
    const DIRECTIVE: &'static str = "mqtt_limit_conn_zone";

    fn tag() -> *const u8 {
        &CONN_TAG
    }

    fn create(pool: &SlabPool, zone: &Zone<Self>) -> Option<NonNull<Self::Shared>> {
        let table = Table::create(pool)?;
        table.log_capacity(zone, Self::DIRECTIVE);
        let shared = ConnShared {
            table,
            mailbox: UnsafeCell::new(Mailbox::default()),
            pending: AtomicU32::new(0),
        };
        alloc_shared(pool, shared)
    }
}

/// Moves `value` into the pool.
fn alloc_shared<T>(pool: &SlabPool, value: T) -> Option<NonNull<T>> {
    let p = pool.allocate(Layout::new::<T>()).ok()?.cast::<T>();
    // SAFETY: fresh room for one T.
    unsafe { p.as_ptr().write(value) };
    Some(p)
}

/// A session counted in a conn zone, released when it ends (in the worker
/// that counted it).
#[derive(Clone, Copy)]
pub struct Held {
    zone: NonNull<Zone<ConnZone>>,
    key: KeyHash,
    conn: u64,
    tracked: bool,
}

impl Held {
    fn holder(&self) -> Holder {
        // SAFETY: a plain read of a global set at start-up.
        Holder::new(self.conn, unsafe { ngx_pid })
    }
}

/// Whether process `pid` is alive (a worker that crashed holds nothing).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() != libc::ESRCH }
}

/// Applies the server's limits to an accepted CONNECT: `NGX_DECLINED` to go
/// on, or the status the session was refused with.
pub fn admit(
    s: &mut Session<'_>,
    conf: &MqttSrvConf,
    connect: &Connect<'_>,
    limit: usize,
) -> ngx_int_t {
    // SAFETY: a plain read of nginx's cached clock, the monotonic time all
    // workers share.
    let now = unsafe { ngx_current_msec } as u64;
    // The rate zone's key: its value, text and hash.
    let mut rate_key = None;
    if let Some(zone) = conf.limit_connect.zone() {
        let (Some(key), Some(table)) = (zone.conf.key.evaluate(s), zone.shared()) else {
            return INTERNAL_ERROR;
        };
        let hash = (key.len > 0).then(|| table.hash(str_bytes(&key)));
        rate_key = Some((&zone.conf.key, key, table.secret, hash));
        let burst = conf.limit_connect.extra;
        if hash.is_some_and(|hash| !connect_within_rate(s, zone, hash, burst, now)) {
            return refuse_limited(
                s,
                conf,
                zone.name(),
                key,
                RejectReason::RateLimited,
                connect,
                limit,
            );
        }
    }
    let Some(zone) = conf.limit_conn.zone() else {
        return NGX_DECLINED;
    };
    let (Some(shared), Some(pool)) = (zone.shared(), zone.pool()) else {
        return INTERNAL_ERROR;
    };
    // Both zones keyed on the same variable: it is read once, and hashed
    // once where the zones share their secret.
    let (key, hash) = match rate_key {
        Some((value, key, secret, hash)) if value.same_variable(&zone.conf.key) => {
            let hash = hash.filter(|_| secret == shared.table.secret);
            (key, hash)
        }
        _ => match zone.conf.key.evaluate(s) {
            Some(key) => (key, None),
            None => return INTERNAL_ERROR,
        },
    };
    if key.len == 0 {
        return NGX_DECLINED;
    }
    let hash = hash.unwrap_or_else(|| shared.table.hash(str_bytes(&key)));
    // The connection number is unique across the workers of a master
    // (ngx_atomic_uint_t, as wide as a pointer).
    let conn: u64 = s.connection().number as _;
    // SAFETY: a plain read of a global set at start-up.
    let me = Holder::new(conn, unsafe { ngx_pid });
    let takeover = conf.limit_conn_takeover;
    let (admission, claim) = {
        let _locked = pool.lock();
        // SAFETY: the mutex is held until the end of the block.
        let slots = unsafe { shared.table.slots() };
        let mailbox = unsafe { &mut *shared.mailbox.get() };
        let Some((slot, claim)) = entry(slots, hash, now, |slot| slot.payload.idle()) else {
            return INTERNAL_ERROR;
        };
        let deliverable = takeover && mailbox.has_room(alive);
        let admission = slot
            .payload
            .admit(me, conf.limit_conn.extra as u32, deliverable, alive);
        if let Admission::TakeOver { victim } = admission {
            // SAFETY: as above.
            if victim.pid != unsafe { ngx_pid } && mailbox.post(victim, alive) {
                shared.pending.store(mailbox.len, Ordering::Release);
            }
        }
        (admission, claim)
    };
    if claim == Claim::Evicted {
        shared
            .table
            .warn_evicted(s, zone.name(), ConnZone::DIRECTIVE);
    }
    let tracked = match admission {
        Admission::Refused => {
            return refuse_limited(
                s,
                conf,
                zone.name(),
                key,
                RejectReason::SessionLimit,
                connect,
                limit,
            )
        }
        Admission::Admitted { tracked } => tracked,
        Admission::TakeOver { victim } => {
            crate::metrics::count_takeover(conf);
            takeover::taken_over(s, zone.name(), &key, victim);
            true
        }
    };
    let held = Held {
        zone: NonNull::from(zone),
        key: hash,
        conn,
        tracked,
    };
    let session = s.as_ptr();
    let Some((_, ctx)) = session_ctx(s) else {
        // Counted, but cannot be released later: give the count back now.
        release_held(&held);
        return INTERNAL_ERROR;
    };
    ctx.held = Some(held);
    // Named in the zone: a takeover may ask this worker to close it.
    if tracked && zone.conf.takeover {
        takeover::register(me.conn, session);
    }
    NGX_DECLINED
}

/// Whether a CONNECT at `now` keeps the key within the zone's rate.
fn connect_within_rate(
    s: &Session<'_>,
    zone: &Zone<RateZone>,
    hash: KeyHash,
    burst: usize,
    now: u64,
) -> bool {
    let (Some(table), Some(pool)) = (zone.shared(), zone.pool()) else {
        // An unmapped zone cannot happen in a worker; nothing is enforced
        // that cannot be.
        return false;
    };
    let rate = zone.conf.rate;
    let (admitted, claim) = {
        let _locked = pool.lock();
        // SAFETY: the mutex is held until the end of the block.
        let slots = unsafe { table.slots() };
        match entry(slots, hash, now, |slot| slot.payload.idle(now, rate)) {
            Some((slot, claim)) => (
                slot.payload
                    .admit(now, rate, burst as u32, claim != Claim::Found),
                claim,
            ),
            None => (false, Claim::Found),
        }
    };
    if claim == Claim::Evicted {
        table.warn_evicted(s, zone.name(), RateZone::DIRECTIVE);
    }
    admitted
}

fn refuse_limited(
    s: &mut Session<'_>,
    conf: &MqttSrvConf,
    zone: &[u8],
    key: ngx_str_t,
    reason: RejectReason,
    connect: &Connect<'_>,
    limit: usize,
) -> ngx_int_t {
    let zone = ngx_str_t {
        len: zone.len(),
        data: zone.as_ptr().cast_mut(),
    };
    match session_ctx(s) {
        Some((c, ctx)) => refusal::refuse_limited(
            c,
            conf,
            ctx,
            reason,
            Some(connect),
            limit,
            Some((zone, key)),
        ),
        None => INTERNAL_ERROR,
    }
}

/// When a session ends: it stops counting for its key.
pub fn release(s: &mut Session<'_>) {
    let Some(held) = s.ctx::<Module>().and_then(|ctx| ctx.held) else {
        return;
    };
    release_held(&held);
    if let (_, Some(ctx)) = s.connection_and_ctx::<Module>() {
        ctx.held = None;
    }
}

fn release_held(held: &Held) {
    // SAFETY: the zone belongs to the cycle the session runs in.
    let zone = unsafe { held.zone.as_ref() };
    if held.tracked && zone.conf.takeover {
        takeover::unregister(held.conn);
    }
    let (Some(shared), Some(pool)) = (zone.shared(), zone.pool()) else {
        return;
    };
    let _locked = pool.lock();
    // SAFETY: the mutex is held until the end of the function.
    let slots = unsafe { shared.table.slots() };
    if let Some(slot) = find(slots, held.key) {
        slot.payload.release(held.holder(), held.tracked);
    }
}

/// A server's `mqtt_limit_connect` or `mqtt_limit_conn`: its zone and its
/// number (`burst`, or the session limit).
pub struct LimitRef<K: ZoneKind> {
    pub zone: *mut Zone<K>,
    pub extra: usize,
}

impl<K: ZoneKind> LimitRef<K> {
    pub const UNSET: LimitRef<K> = LimitRef {
        zone: ptr::null_mut(),
        extra: 0,
    };

    pub fn is_set(&self) -> bool {
        !self.zone.is_null()
    }

    pub fn zone(&self) -> Option<&Zone<K>> {
        // SAFETY: set from Zone::add, a configuration-pool allocation that
        // lives as long as the cycle.
        unsafe { self.zone.as_ref() }
    }
}

impl<K: ZoneKind> Clone for LimitRef<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: ZoneKind> Copy for LimitRef<K> {}
