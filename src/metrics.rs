//! `mqtt_metrics NAME`: the counters of a server's decisions, in one shared
//! memory zone that every worker updates and that outlives `nginx -s
//! reload`.
//!
//! The zone (`mqtt_metrics`, [`ZONE_SIZE`]) holds a record of
//! [`ServerCounters`] per counted name. The master finds or allocates each
//! record when it sets up the zone, before the workers fork, and writes its
//! address into the name's [`CountedServer`], which the server configuration
//! points to: a session reaches its counters through two pointers, with no
//! lookup. `mqtt_status` (http) adds the same zone to read them.

use core::ffi::{c_char, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use mqtt_core::metrics::{outcome_index, ServerCounters, ACCEPTED, PROXIED_UNPARSED};
use mqtt_core::packet::Connect;
use mqtt_core::policy::RejectReason;
use ngx::core::{SlabPool, NGX_CONF_ERROR};
use ngx::ffi::{
    ngx_array_create, ngx_array_push, ngx_array_t, ngx_command_t, ngx_conf_t, ngx_msec_t,
    ngx_palloc, ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::conf::MqttSrvConf;
use crate::session::{str_bytes, SessionCtx};
use crate::set_connect::args;
use crate::shm::{Zone, ZoneKind};
use crate::stream::Session;
use crate::Module;

/// The zone's name, the same for the stream and the http module.
const ZONE_NAME: ngx_str_t = ngx_string!("mqtt_metrics");

/// One record takes a 1 KiB slab chunk: about 900 counted names fit.
const ZONE_SIZE: usize = 1024 * 1024;

/// The kind of the `mqtt_metrics` zone.
pub struct MetricsZone;

/// What tells the zone from zones of other kinds (its address).
static TAG: u8 = 0;

/// At the start of the zone: the records, newest first. Only the master
/// walks and extends the list (in [`ZoneKind::bind`]); workers reach
/// records through [`CountedServer`] only.
pub struct ZoneState {
    head: AtomicPtr<Record>,
}

#[repr(C)]
struct Record {
    next: *mut Record,
    name: *const u8,
    name_len: usize,
    counters: ServerCounters,
}

/// A counted name of the configuration, allocated from the configuration
/// pool; `counters` is set by the master once the zone is mapped.
pub struct CountedServer {
    name: ngx_str_t,
    counters: *const ServerCounters,
}

impl CountedServer {
    pub fn name(&self) -> &[u8] {
        str_bytes(&self.name)
    }

    /// The name's counters; `None` before the zone is set up.
    pub fn counters(&self) -> Option<&ServerCounters> {
        // SAFETY: set by bind() to a record in the zone, which is mapped at
        // the same address in every process for the life of the cycle.
        unsafe { self.counters.as_ref() }
    }
}

/// The configuration's counted names (`ngx_array_t` of `*mut
/// CountedServer`, null before the first).
pub struct MetricsConf {
    servers: *mut ngx_array_t,
}

impl Default for MetricsConf {
    fn default() -> Self {
        MetricsConf {
            servers: ptr::null_mut(),
        }
    }
}

impl MetricsConf {
    /// The counted names, in the order of the configuration.
    pub fn servers(&self) -> &[NonNull<CountedServer>] {
        // SAFETY: servers is null or an array of non-null CountedServer
        // pointers in the configuration pool, which outlives the cycle.
        unsafe {
            match self.servers.as_ref() {
                Some(a) if a.nelts > 0 => {
                    core::slice::from_raw_parts(a.elts.cast::<NonNull<CountedServer>>(), a.nelts)
                }
                _ => &[],
            }
        }
    }

    /// The counted name `name`, added if it is new.
    fn find_or_add(
        &mut self,
        cf: *mut ngx_conf_t,
        name: ngx_str_t,
    ) -> Option<NonNull<CountedServer>> {
        if let Some(&found) = self
            .servers()
            .iter()
            // SAFETY: see servers().
            .find(|s| unsafe { s.as_ref() }.name() == str_bytes(&name))
        {
            return Some(found);
        }
        // SAFETY: cf is the configuration being parsed; the array and the
        // entry live in its pool, as long as the cycle. The name points into
        // the directive's argument, which the pool keeps too.
        unsafe {
            let pool = (*cf).pool;
            if self.servers.is_null() {
                self.servers = ngx_array_create(pool, 4, size_of::<NonNull<CountedServer>>());
                if self.servers.is_null() {
                    return None;
                }
            }
            let server =
                NonNull::new(ngx_palloc(pool, size_of::<CountedServer>()).cast::<CountedServer>())?;
            server.as_ptr().write(CountedServer {
                name,
                counters: ptr::null(),
            });
            let slot = NonNull::new(ngx_array_push(self.servers).cast::<NonNull<CountedServer>>())?;
            slot.as_ptr().write(server);
            Some(server)
        }
    }
}

// SAFETY: create() returns a zeroed ZoneState from the pool; ZoneState and
// the records are atomics, or fields only the master writes before the
// workers that read them fork.
unsafe impl ZoneKind for MetricsZone {
    type Shared = ZoneState;
    type Conf = MetricsConf;
    const DIRECTIVE: &'static str = "mqtt_metrics";

    fn tag() -> *const u8 {
        ptr::addr_of!(TAG)
    }

    fn create(pool: &SlabPool, _zone: &Zone<Self>) -> Option<NonNull<ZoneState>> {
        // SAFETY: all-zero bytes are an empty ZoneState (a null head).
        NonNull::new(unsafe { ngx_slab_calloc(shpool(pool), size_of::<ZoneState>()) }.cast())
    }

    fn bind(zone: &mut Zone<Self>) -> bool {
        let (Some(state), Some(pool)) = (zone.shared(), zone.pool()) else {
            return false;
        };
        for server in zone.conf.servers() {
            // SAFETY: the configuration's entries, which only the master
            // (this process, before forking) writes.
            let server = unsafe { &mut *server.as_ptr() };
            let Some(record) = find_or_alloc(state, &pool, server.name()) else {
                return false;
            };
            // SAFETY: the record lives in the zone as long as the zone.
            server.counters = unsafe { ptr::addr_of!((*record.as_ptr()).counters) };
        }
        true
    }
}

fn shpool(pool: &SlabPool) -> *mut ngx_slab_pool_t {
    ptr::from_ref(pool.as_ref()).cast_mut()
}

/// The record of `name`, allocated (zeroed: empty counters) if the zone has
/// none yet.
fn find_or_alloc(state: &ZoneState, pool: &SlabPool, name: &[u8]) -> Option<NonNull<Record>> {
    let mut p = state.head.load(Ordering::Acquire);
    // SAFETY: the list holds records this function allocated in the zone,
    // each with its name's bytes; only the master, before the workers fork,
    // walks and extends it. A new record is zeroed by ngx_slab_calloc: its
    // counters are only atomics, for which all-zero bytes are a valid,
    // empty record (mqtt_core::metrics), and the rest is written here
    // before it is published.
    unsafe {
        while let Some(record) = p.as_ref() {
            if core::slice::from_raw_parts(record.name, record.name_len) == name {
                return NonNull::new(p);
            }
            p = record.next;
        }
        let record = ngx_slab_calloc(shpool(pool), size_of::<Record>()).cast::<Record>();
        let bytes = ngx_slab_calloc(shpool(pool), name.len().max(1)).cast::<u8>();
        if record.is_null() || bytes.is_null() || !record.is_aligned() {
            return None;
        }
        ptr::copy_nonoverlapping(name.as_ptr(), bytes, name.len());
        (*record).name = bytes;
        (*record).name_len = name.len();
        (*record).next = state.head.load(Ordering::Acquire);
        state.head.store(record, Ordering::Release);
        NonNull::new(record)
    }
}

/// The cycle's metrics zone, added on first use by either module.
pub fn zone(cf: *mut ngx_conf_t) -> Result<NonNull<Zone<MetricsZone>>, String> {
    Zone::<MetricsZone>::add(cf, &ZONE_NAME, ZONE_SIZE)
}

/// `mqtt_metrics NAME;`
pub unsafe extern "C" fn set_metrics(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a directive handler with the configuration being
    // parsed and this module's server configuration.
    let (name, conf) = unsafe { (args(cf).first().copied(), &mut *conf.cast::<MqttSrvConf>()) };
    if conf.metrics.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let Some(name) = name.filter(|n| n.len > 0) else {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "empty name in \"mqtt_metrics\"");
        return NGX_CONF_ERROR;
    };
    let mut zone = match zone(cf) {
        Ok(zone) => zone,
        Err(message) => {
            if !message.is_empty() {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
            }
            return NGX_CONF_ERROR;
        }
    };
    // SAFETY: the zone's Zone lives in the configuration pool; only the
    // configuration thread runs.
    let zone = unsafe { zone.as_mut() };
    match zone.conf.find_or_add(cf, name) {
        Some(server) => {
            conf.metrics = Some(server);
            ptr::null_mut()
        }
        None => NGX_CONF_ERROR,
    }
}

/// What a session needs for its counts, in four bytes (the context keeps
/// within its 1 KiB): when the preread started, as nginx's clock (ms)
/// modulo 2^31, which measures durations up to 24 days; and, in the top
/// bit, whether the session holds one of `nginx_mqtt_sessions`.
pub struct SessionMetrics(u32);

const OPEN: u32 = 1 << 31;

impl SessionMetrics {
    /// A session whose preread starts now.
    pub fn start() -> Self {
        SessionMetrics(now() as u32 & !OPEN)
    }

    /// Milliseconds since the preread started.
    fn elapsed(&self) -> u32 {
        (now() as u32).wrapping_sub(self.0) & !OPEN
    }

    fn is_open(&self) -> bool {
        self.0 & OPEN != 0
    }

    fn set_open(&mut self, open: bool) {
        self.0 = if open { self.0 | OPEN } else { self.0 & !OPEN };
    }
}

/// nginx's cached clock, in milliseconds: updated once per event loop
/// iteration, so a duration is as precise as that.
fn now() -> ngx_msec_t {
    // SAFETY: a read of a global the event loop of this process updates.
    unsafe { ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_current_msec)) }
}

fn counters(conf: &MqttSrvConf) -> Option<&ServerCounters> {
    // SAFETY: the server's entry lives in the configuration pool, as long
    // as the configuration.
    unsafe { conf.metrics?.as_ref() }.counters()
}

fn count(counters: &ServerCounters, ctx: &mut SessionCtx, outcome: usize, size: Option<usize>) {
    let duration = ctx.metrics.elapsed();
    counters.count_decision(ctx.level, outcome, u64::from(duration), size);
}

/// A CONNECT accepted and about to be proxied (after the rewrite, which may
/// still refuse it).
pub fn count_accepted(s: &mut Session<'_>, conf: &MqttSrvConf, connect: &Connect<'_>) {
    let Some(counters) = counters(conf) else {
        return;
    };
    if let (_, Some(ctx)) = s.connection_and_ctx::<Module>() {
        count(counters, ctx, ACCEPTED, Some(connect.packet_len));
        ctx.metrics.set_open(true);
    }
}

/// Not a valid CONNECT, proxied as it is (`mqtt_reject_malformed off`).
pub fn count_unparsed(conf: &MqttSrvConf, ctx: &mut SessionCtx) {
    if let Some(counters) = counters(conf) {
        count(counters, ctx, PROXIED_UNPARSED, None);
    }
}

/// A refused session; `connect` when its CONNECT parsed.
pub fn count_refusal(
    conf: &MqttSrvConf,
    ctx: &mut SessionCtx,
    reason: RejectReason,
    connect: Option<&Connect<'_>>,
) {
    if let Some(counters) = counters(conf) {
        let size = connect.map(|connect| connect.packet_len);
        count(counters, ctx, outcome_index(reason), size);
    }
}

/// The session has ended (log phase): an accepted one leaves the gauge.
pub fn session_ended(conf: &MqttSrvConf, ctx: &mut SessionCtx) {
    if !ctx.metrics.is_open() {
        return;
    }
    ctx.metrics.set_open(false);
    if let Some(counters) = counters(conf) {
        counters.session_closed();
    }
}

/// A live session of the device was taken over by a new one (admission
/// control).
pub fn count_takeover(conf: &MqttSrvConf) {
    if let Some(counters) = counters(conf) {
        counters.count_takeover();
    }
}
