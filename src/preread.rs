//! The preread phase handler: reads the CONNECT into the session's buffer,
//! parses it once it is whole, and applies the identity policy.

use core::ptr::{self, NonNull};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mqtt_core::escape::Escaped;
use mqtt_core::packet::{Connect, Parsed};
use mqtt_core::policy::{check_client_id, ClientIdPolicy, RejectReason};
use ngx::ffi::{
    ngx_buf_t, ngx_conf_t, ngx_connection_t, ngx_create_temp_buf, ngx_int_t, ngx_module_t,
    ngx_pfree, ngx_stream_core_srv_conf_t, ngx_stream_session_t, NGX_LOG_ALERT,
};

use crate::cert::with_peer_certificate;
use crate::conf::MqttSrvConf;
use crate::gate::{install_gate, settle_undecided};
use crate::limit;
use crate::log::{mqtt_debug, mqtt_log};
use crate::refusal::{refuse, INTERNAL_ERROR};
use crate::session::{borrowed_str, cert_cn_copy, Outcome, SessionCtx};
use crate::stream::{
    ssl_preread_enabled, Session, StreamConf, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_OK,
};
use crate::Module;
use crate::{metrics, rewrite};

/// Postconfiguration: installs the preread handler, the gate in front of
/// the content handler of every server that must see an accepted CONNECT,
/// and the log-phase fix-up.
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx calls a stream module's postconfiguration inside the
    // stream block, after parsing and merging.
    let Some(mut stream) = (unsafe { StreamConf::from_conf(cf) }) else {
        return NGX_ERROR;
    };
    // Before this module's handler is installed: what is installed now runs
    // after it.
    let later = LaterHandlers::of(&stream);
    let log = stream.log();
    let (mut parses, mut filters) = (false, false);
    for (cscf, conf, certificates) in stream.servers::<Module>() {
        conf.room_for_later_handlers = later.want_room(cscf);
        if !conf.enabled() {
            continue;
        }
        parses = true;
        filters |= conf.rewrites() || conf.limit_conn_takeover;
        install_gate(log, cscf, conf, certificates);
    }
    if !parses {
        return NGX_OK;
    }
    // The filter rewrites CONNECTs, and follows the packets to devices that
    // a takeover may tell to go.
    if filters {
        rewrite::install_filter();
    }
    if stream.push_preread_handler(Some(preread_handler))
        && stream.prepend_log_handler(Some(settle_undecided))
    {
        NGX_OK
    } else {
        NGX_ERROR
    }
}

/// The preread handlers that run after this module's, and so whether a
/// server's sessions need room in the preread buffer once this module is
/// done. Growing the buffer to `preread_buffer_size` costs an allocation per
/// session, so it is done only where such a handler exists: nginx's own
/// `ssl_preread`, which every stream build installs, wants none unless it is
/// on in the server; any other (njs's `js_preread` from a module loaded
/// before this one) may.
struct LaterHandlers {
    ssl_preread: Option<&'static ngx_module_t>,
    others: usize,
}

impl LaterHandlers {
    fn of(stream: &StreamConf<'_>) -> Self {
        let ssl_preread = stream.module_named(c"ngx_stream_ssl_preread_module");
        let others = stream.preread_handlers() - usize::from(ssl_preread.is_some());
        LaterHandlers {
            ssl_preread,
            others,
        }
    }

    fn want_room(&self, cscf: &ngx_stream_core_srv_conf_t) -> bool {
        self.others > 0
            || self
                .ssl_preread
                .is_some_and(|m| ssl_preread_enabled(cscf, m))
    }
}

/// The preread phase handler. A panic becomes a logged 500, never an unwind
/// into nginx.
unsafe extern "C" fn preread_handler(s: *mut ngx_stream_session_t) -> ngx_int_t {
    // SAFETY: nginx passes the live session being processed, and runs one
    // handler at a time.
    let Some(mut s) = (unsafe { Session::from_ptr(s) }) else {
        return NGX_ERROR;
    };
    match catch_unwind(AssertUnwindSafe(|| preread(&mut s))) {
        Ok(rc) => rc,
        Err(_) => {
            mqtt_log!(
                NGX_LOG_ALERT,
                s.connection().log,
                "internal error while reading CONNECT"
            );
            INTERNAL_ERROR
        }
    }
}

fn preread(s: &mut Session<'_>) -> ngx_int_t {
    let Some(conf) = s.srv_conf::<Module>() else {
        return NGX_DECLINED;
    };
    if !conf.enabled() || s.connection().type_ != libc::SOCK_STREAM {
        return NGX_DECLINED;
    }
    let Some(limit) = s.core_srv_conf().map(|cscf| cscf.preread_buffer_size) else {
        return NGX_ERROR;
    };
    let Some((c, ctx)) = session_ctx(s) else {
        return NGX_ERROR;
    };
    if ctx.outcome != Outcome::Pending {
        return NGX_DECLINED;
    }

    if c.buffer.is_null() {
        // Nothing read yet: nginx reads into the context's buffer, sized for
        // a typical CONNECT, rather than allocate preread_buffer_size.
        c.buffer = ctx.first_read_buffer(limit);
        return NGX_AGAIN;
    }
    loop {
        // SAFETY: c.buffer is the preread buffer, a pool allocation apart
        // from the connection and the context; its bytes stay put until
        // this handler returns or replaces the buffer, which ends the
        // iteration that borrowed them.
        let (received, capacity) = unsafe { buffer_contents(c.buffer) };
        match ctx.framer.parse(received, limit) {
            // The Remaining Length says the packet does not fit: make room
            // for all of it (the parser has checked it is within the limit).
            Parsed::Incomplete {
                needed: Some(needed),
            } if received.len() + needed > capacity => {
                if !resize_buffer(c, ctx, received.len() + needed, Old::Free) {
                    return NGX_ERROR;
                }
                // A peeking nginx looks at the socket again only on the next
                // read event, and the device may have sent all it ever will:
                // look now.
                if preread_peeks(c) && peek_again(c) {
                    continue;
                }
                return NGX_AGAIN;
            }
            Parsed::Incomplete { .. } => return NGX_AGAIN,
            Parsed::Invalid { reason, level } => {
                ctx.level = level;
                if conf.requires_connect() {
                    return refuse(c, conf, ctx, RejectReason::Invalid(reason), None, limit);
                }
                ctx.outcome = Outcome::PassedUnparsed;
                metrics::count_unparsed(conf, ctx);
                mqtt_debug!(c.log, "not a valid CONNECT ({}), proxied", reason.message());
                break;
            }
            Parsed::Connect(connect) => {
                let rc = decide(c, conf, ctx, &connect, limit);
                if rc != NGX_DECLINED {
                    return rc;
                }
                if conf.limits() {
                    let rc = limit::admit(s, conf, &connect, limit);
                    if rc != NGX_DECLINED {
                        return rc;
                    }
                }
                if conf.rewrites() {
                    let rc = rewrite::prepare(s, conf, &connect, received, limit);
                    if rc != NGX_DECLINED {
                        return rc;
                    }
                }
                metrics::count_accepted(s, conf, &connect);
                break;
            }
        }
    }
    // A preread handler after this one gets the room nginx would have given
    // it: preread_buffer_size, not what is left of a buffer sized for the
    // CONNECT.
    if conf.room_for_later_handlers {
        let (c, ctx) = match s.connection_and_ctx::<Module>() {
            (c, Some(ctx)) => (c, ctx),
            (_, None) => return NGX_ERROR,
        };
        // SAFETY: as above; only the room is read.
        let (_, capacity) = unsafe { buffer_contents(c.buffer) };
        // The old buffer stays: the variables point into it.
        if capacity < limit && !resize_buffer(c, ctx, limit, Old::Keep) {
            return NGX_ERROR;
        }
    }
    NGX_DECLINED
}

/// The connection and the session's context, created on first use.
pub fn session_ctx<'s>(
    s: &'s mut Session<'_>,
) -> Option<(&'s mut ngx_connection_t, &'s mut SessionCtx)> {
    if s.ctx::<Module>().is_none() {
        let ctx = SessionCtx::create(s.connection().pool)?;
        s.set_ctx::<Module>(ctx);
    }
    match s.connection_and_ctx::<Module>() {
        (c, Some(ctx)) => Some((c, ctx)),
        (_, None) => None,
    }
}

/// The received bytes of a buffer, and its room from `pos`.
///
/// # Safety
/// `b` is a valid buffer whose `[pos, last)` is initialised and whose bytes
/// are neither written nor freed while the slice lives.
unsafe fn buffer_contents<'b>(b: *const ngx_buf_t) -> (&'b [u8], usize) {
    // SAFETY: the caller's contract.
    unsafe {
        let b = &*b;
        (
            core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize),
            b.end.offset_from(b.pos) as usize,
        )
    }
}

/// Applies the identity policy to a complete CONNECT.
fn decide(
    c: &mut ngx_connection_t,
    conf: &MqttSrvConf,
    ctx: &mut SessionCtx,
    connect: &Connect<'_>,
    limit: usize,
) -> ngx_int_t {
    ctx.level = Some(connect.level);
    ctx.client_id = borrowed_str(connect.client_id.as_bytes());
    ctx.username = borrowed_str(connect.username.unwrap_or_default().as_bytes());

    let policy = conf.policy();
    let verdict = if policy == ClientIdPolicy::Off {
        Ok(())
    } else {
        with_peer_certificate(c, |cert| {
            ctx.cert_cn = Some(cert_cn_copy(c.pool, cert));
            check_client_id(policy, connect.client_id, cert)
        })
    };
    match verdict {
        Ok(()) => {
            ctx.outcome = Outcome::Accepted;
            mqtt_debug!(
                c.log,
                "accepted MQTT {} client_id \"{}\"",
                connect.level.name(),
                Escaped(connect.client_id.as_bytes())
            );
            NGX_DECLINED
        }
        Err(reason) => refuse(c, conf, ctx, reason, Some(connect), limit),
    }
}

/// What becomes of the buffer [`resize_buffer`] replaces.
#[derive(PartialEq)]
enum Old {
    /// Freed, unless it is the context's own: nothing points into it yet.
    Free,
    /// Left to the pool: the variables point into it.
    Keep,
}

/// Replaces the preread buffer with one of `size` bytes that starts with the
/// bytes of the old one (as many as fit).
fn resize_buffer(c: &mut ngx_connection_t, ctx: &SessionCtx, size: usize, old_buffer: Old) -> bool {
    // SAFETY: c.pool is the connection's live pool.
    let Some(new) = NonNull::new(unsafe { ngx_create_temp_buf(c.pool, size) }) else {
        return false;
    };
    let new = new.as_ptr();
    let old = c.buffer;
    if !old.is_null() {
        // SAFETY: old is the preread buffer, [pos, last) initialised; new is
        // a fresh buffer with room for `kept` bytes; the two do not overlap.
        // Nothing refers to the old bytes once the buffer is swapped.
        unsafe {
            let kept = ((*old).last.offset_from((*old).pos) as usize).min(size);
            ptr::copy_nonoverlapping((*old).pos, (*new).pos, kept);
            (*new).last = (*new).pos.add(kept);
            if old_buffer == Old::Free && !ctx.owns_buffer(old) {
                // Frees a large allocation of the pool, and declines
                // anything else.
                ngx_pfree(c.pool, (*old).start.cast());
            }
        }
    }
    c.buffer = new;
    true
}

/// Whether nginx prereads this connection with `MSG_PEEK`, as
/// `ngx_stream_preread_can_peek()` decides (nginx 1.25.5 and later, plain
/// TCP, edge-triggered kqueue, or epoll with `EPOLLRDHUP`).
#[cfg(ngx_peeking_preread)]
fn preread_peeks(c: &ngx_connection_t) -> bool {
    use ngx::ffi::{ngx_event_flags, ngx_uint_t};
    use ngx::ffi::{NGX_USE_CLEAR_EVENT, NGX_USE_EPOLL_EVENT, NGX_USE_KQUEUE_EVENT};

    if crate::cert::is_tls(c) {
        return false;
    }
    // SAFETY: a plain read of a global the event module sets at start-up.
    let flags = unsafe { ngx_event_flags };
    let uses = |flag: u32| flags & flag as ngx_uint_t != 0;
    // SAFETY: as above; the variable exists only where nginx was built with
    // EPOLLRDHUP, and is set when the kernel has it.
    #[cfg(ngx_feature = "have_epollrdhup")]
    let rdhup = unsafe { ngx::ffi::ngx_use_epoll_rdhup } != 0;
    #[cfg(not(ngx_feature = "have_epollrdhup"))]
    let rdhup = false;
    uses(NGX_USE_CLEAR_EVENT)
        && (uses(NGX_USE_KQUEUE_EVENT) || (uses(NGX_USE_EPOLL_EVENT) && rdhup))
}

/// Before nginx 1.25.5 preread always reads.
#[cfg(not(ngx_peeking_preread))]
fn preread_peeks(_: &ngx_connection_t) -> bool {
    false
}

/// Peeks at the socket again, into the whole preread buffer, as a peeking
/// nginx does; whether that brought any bytes.
fn peek_again(c: &ngx_connection_t) -> bool {
    // SAFETY: c.buffer is the preread buffer, writable from pos to end, and
    // no slice of it is alive.
    unsafe {
        let b = c.buffer;
        let room = (*b).end.offset_from((*b).pos) as usize;
        let n = libc::recv(
            c.fd,
            (*b).pos.cast(),
            room,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        );
        if n <= 0 {
            return false;
        }
        (*b).last = (*b).pos.add(n as usize);
    }
    true
}
