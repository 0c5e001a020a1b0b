//! Takeover: a newcomer over `mqtt_limit_conn ... takeover` is admitted in
//! place of the key's oldest session, which is closed by the worker that
//! holds it.
//!
//! The newcomer's worker names the victim (its connection number and
//! worker pid) in the zone's mailbox, under the zone's mutex. Every worker
//! looks at the mailboxes of its cycle's conn zones every
//! [`POLL_INTERVAL_MS`] (an atomic read while nothing waits), takes its own
//! mail, and closes those sessions; a victim in the newcomer's own worker is
//! closed at the end of the current event loop iteration. So the old
//! session is gone within about [`POLL_INTERVAL_MS`] of the new one's
//! CONNECT.
//!
//! An MQTT 5 victim is first sent a DISCONNECT with reason code 0x8E
//! (Session taken over), through the stream filters so that it follows
//! whatever the proxy has queued for the device. The filter follows the
//! packets from the broker to such a device, and the DISCONNECT is sent only
//! between two of them: a device that is in the middle of a packet when it
//! is taken over is closed without one. Then its socket is shut down, and
//! nginx's proxy ends the session as it ends one whose device went away,
//! closing the upstream connection too.

use core::cell::{Cell, RefCell};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use mqtt_core::admission::conn::Holder;
use mqtt_core::escape::Escaped;
use mqtt_core::packet::ProtocolLevel;
use ngx::ffi::{
    ngx_add_timer, ngx_alloc_chain_link, ngx_create_temp_buf, ngx_cycle, ngx_cycle_t, ngx_event_t,
    ngx_int_t, ngx_list_part_t, ngx_pcalloc, ngx_pid, ngx_post_event, ngx_posted_events,
    ngx_shm_zone_t, ngx_str_t, ngx_stream_session_t, ngx_stream_top_filter, NGX_LOG_INFO,
};

use super::{alive, ConnZone};
use crate::log::{mqtt_debug, mqtt_log};
use crate::session::str_bytes;
use crate::shm::{Zone, ZoneKind};
use crate::stream::{Session, NGX_OK};
use crate::Module;

/// How often a worker looks for takeovers of its sessions.
pub const POLL_INTERVAL_MS: usize = 100;

/// MQTT 5 DISCONNECT, reason code 0x8E Session taken over.
const DISCONNECT_TAKEN_OVER: [u8; 3] = [0xE0, 0x01, 0x8E];

/// Connection numbers are unique and come from one counter: a multiplicative
/// hash spreads them, at a fraction of SipHash's cost per session.
#[derive(Default)]
struct ConnHasher(u64);

impl Hasher for ConnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Live = HashMap<u64, NonNull<ngx_stream_session_t>, BuildHasherDefault<ConnHasher>>;

thread_local! {
    /// This worker's sessions that a takeover may name, by connection number.
    static LIVE: RefCell<Live> = RefCell::new(Live::default());
    /// Victims in this worker, named by its own newcomers.
    static LOCAL: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The poll timer, and the event that closes local victims at once.
    static EVENTS: Cell<Option<NonNull<[ngx_event_t; 2]>>> = const { Cell::new(None) };
}

pub fn register(conn: u64, s: *mut ngx_stream_session_t) {
    if let Some(s) = NonNull::new(s) {
        LIVE.with_borrow_mut(|live| live.insert(conn, s));
    }
}

pub fn unregister(conn: u64) {
    LIVE.with_borrow_mut(|live| live.remove(&conn));
}

/// The newcomer `s` took the place of `victim`: log it, and close the victim
/// now if it is in this worker (otherwise it is in the zone's mailbox).
pub fn taken_over(s: &Session<'_>, zone: &[u8], key: &ngx_str_t, victim: Holder) {
    mqtt_log!(
        NGX_LOG_INFO,
        s.connection().log,
        "takes over the session of connection {} (worker {}) in \"{}\", key: \"{}\"",
        victim.conn,
        victim.pid,
        Escaped(zone),
        Escaped(str_bytes(key))
    );
    // SAFETY: a plain read of a global set at start-up.
    if victim.pid != unsafe { ngx_pid } {
        return;
    }
    LOCAL.with_borrow_mut(|local| local.push(victim.conn));
    if let Some(events) = EVENTS.get() {
        // SAFETY: the events live as long as the worker's cycle; posting
        // is what nginx's own modules do from any handler.
        unsafe {
            let now = ptr::addr_of_mut!((*events.as_ptr())[1]);
            ngx_post_event(now, ptr::addr_of_mut!(ngx_posted_events));
        }
    }
}

/// `init_process`: a worker whose cycle has conn zones starts polling.
pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx passes the worker's cycle.
    let cycle = unsafe { &*cycle };
    if conn_zones(cycle).next().is_none() {
        return NGX_OK;
    }
    // SAFETY: the cycle pool lives as long as the worker's cycle; zeroed
    // events are what nginx's own modules start from.
    let events = unsafe { ngx_pcalloc(cycle.pool, size_of::<[ngx_event_t; 2]>()) }
        .cast::<[ngx_event_t; 2]>();
    let Some(events) = NonNull::new(events) else {
        return ngx::ffi::NGX_ERROR as ngx_int_t;
    };
    // SAFETY: fresh, exclusively ours.
    unsafe {
        for ev in (*events.as_ptr()).iter_mut() {
            ev.handler = Some(on_event);
            ev.log = cycle.log;
            // A worker that is shutting down does not wait for the timer.
            ev.set_cancelable(1);
        }
        ngx_add_timer(
            ptr::addr_of_mut!((*events.as_ptr())[0]),
            POLL_INTERVAL_MS as _,
        );
    }
    EVENTS.set(Some(events));
    NGX_OK
}

unsafe extern "C" fn on_event(ev: *mut ngx_event_t) {
    let _ = std::panic::catch_unwind(close_victims);
    // SAFETY: ev is one of this worker's events; only the timer re-arms.
    unsafe {
        if (*ev).timedout() != 0 {
            (*ev).set_timedout(0);
            ngx_add_timer(ev, POLL_INTERVAL_MS as _);
        }
    }
}

/// Closes this worker's victims: those its own newcomers named, and those
/// in the mailboxes of its conn zones.
fn close_victims() {
    let mut victims = LOCAL.with_borrow_mut(core::mem::take);
    // SAFETY: the worker's current cycle.
    let cycle = unsafe { &*ngx_cycle };
    // SAFETY: a plain read of a global set at start-up.
    let pid = unsafe { ngx_pid };
    for zone in conn_zones(cycle) {
        let (Some(shared), Some(pool)) = (zone.shared(), zone.pool()) else {
            continue;
        };
        if shared.pending.load(Ordering::Acquire) == 0 {
            continue;
        }
        let _locked = pool.lock();
        // SAFETY: the mutex is held until the end of the block.
        let mailbox = unsafe { &mut *shared.mailbox.get() };
        victims.extend(mailbox.take(pid, alive));
        shared.pending.store(mailbox.len, Ordering::Release);
    }
    for conn in victims {
        if let Some(s) = LIVE.with_borrow_mut(|live| live.remove(&conn)) {
            close(s);
        }
    }
}

/// Ends a session that was taken over.
fn close(s: NonNull<ngx_stream_session_t>) {
    // SAFETY: a registered session is live (it unregisters when it ends),
    // and none of its handlers is running: this runs from the event loop.
    let Some(mut session) = (unsafe { Session::from_ptr(s.as_ptr()) }) else {
        return;
    };
    let level = session.ctx::<Module>().and_then(|ctx| ctx.level);
    let between = session
        .ctx::<Module>()
        .is_some_and(|ctx| ctx.downstream.is_between());
    let client_id = session
        .ctx::<Module>()
        .map(|ctx| ctx.client_id)
        .unwrap_or(crate::session::EMPTY);
    let c = session.connection();
    mqtt_log!(
        NGX_LOG_INFO,
        c.log,
        "session taken over by a newer one, client_id: \"{}\"",
        Escaped(str_bytes(&client_id))
    );
    if level == Some(ProtocolLevel::V5) {
        if between {
            send_disconnect(&mut session);
        } else {
            mqtt_debug!(
                c.log,
                "inside a packet to the device: closed without DISCONNECT"
            );
        }
    }
    let c = session.connection();
    // SAFETY: the session's own socket. Reading it now ends in EOF, which
    // nginx's proxy handles by finalizing the session, upstream included.
    unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
}

/// Queues the DISCONNECT behind what the proxy has for the device.
fn send_disconnect(session: &mut Session<'_>) {
    let pool = session.connection().pool;
    let log = session.connection().log;
    // SAFETY: the session's pool; the buffer holds the three bytes written
    // into it; the chain link is the pool's.
    unsafe {
        let b = ngx_create_temp_buf(pool, DISCONNECT_TAKEN_OVER.len());
        let cl = ngx_alloc_chain_link(pool);
        let Some(filter) = ngx_stream_top_filter else {
            return;
        };
        if b.is_null() || cl.is_null() {
            return;
        }
        ptr::copy_nonoverlapping(
            DISCONNECT_TAKEN_OVER.as_ptr(),
            (*b).last,
            DISCONNECT_TAKEN_OVER.len(),
        );
        (*b).last = (*b).last.add(DISCONNECT_TAKEN_OVER.len());
        (*b).set_flush(1);
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
        let rc = filter(session.as_ptr(), cl, 1);
        mqtt_debug!(log, "DISCONNECT (session taken over) queued: {}", rc);
    }
}

/// The conn zones of `cycle`.
fn conn_zones(cycle: &ngx_cycle_t) -> impl Iterator<Item = &Zone<ConnZone>> {
    let mut part: *const ngx_list_part_t = &cycle.shared_memory.part;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        // SAFETY: the cycle's list of shared zones, each part holding
        // nelts zones; the cycle outlives the iteration.
        let p = unsafe { part.as_ref()? };
        if i >= p.nelts {
            part = p.next;
            i = 0;
            continue;
        }
        let zone = unsafe { &*p.elts.cast::<ngx_shm_zone_t>().add(i) };
        i += 1;
        if zone.tag.cast_const() == ConnZone::tag().cast() {
            // SAFETY: a zone with this kind's tag has a Zone<ConnZone> as
            // its data (Zone::add).
            if let Some(z) = unsafe { zone.data.cast::<Zone<ConnZone>>().as_ref() } {
                return Some(z);
            }
        }
    })
}
