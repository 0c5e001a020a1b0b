//! The preread phase handler, and the gate in front of the content handler
//! that keeps undecided sessions away from the brokers.

use core::ptr::{self, NonNull};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{
    nginx_version, ngx_conf_t, ngx_connection_t, ngx_create_temp_buf, ngx_event_flags, ngx_int_t,
    ngx_pfree, ngx_stream_finalize_session, ngx_stream_session_t, ngx_uint_t, ngx_use_epoll_rdhup,
    NGX_LOG_ALERT, NGX_LOG_INFO, NGX_LOG_WARN, NGX_STREAM_INTERNAL_SERVER_ERROR, NGX_STREAM_OK,
    NGX_USE_CLEAR_EVENT, NGX_USE_EPOLL_EVENT, NGX_USE_KQUEUE_EVENT,
};

use crate::cert::with_peer_certificate;
use crate::conf::MqttSrvConf;
use crate::escape::Escaped;
use crate::log::{mqtt_debug, mqtt_log};
use crate::module;
use crate::mqtt::connack::{encode_connack, MAX_CONNACK_LEN};
use crate::mqtt::{parse_connect, Connect, InvalidReason, Parsed, ProtocolLevel};
use crate::policy::{check_client_id, ClientIdPolicy, RejectReason};
use crate::session::{borrowed_str, cert_cn_copy, str_bytes, Outcome, SessionCtx};
use crate::stream::{
    core_main_conf, prepend_log_handler, push_preread_handler, server_module_conf, servers,
    SessionExt,
};

const NGX_OK: ngx_int_t = ngx::ffi::NGX_OK as ngx_int_t;
const NGX_ERROR: ngx_int_t = ngx::ffi::NGX_ERROR as ngx_int_t;
const NGX_AGAIN: ngx_int_t = ngx::ffi::NGX_AGAIN as ngx_int_t;
const NGX_DECLINED: ngx_int_t = ngx::ffi::NGX_DECLINED as ngx_int_t;
const INTERNAL_ERROR: ngx_int_t = NGX_STREAM_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Postconfiguration: installs the preread handler, and the content gate in
/// every server that must see an accepted CONNECT before proxying.
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: called by nginx inside the stream block with a valid cf.
    let Some(cmcf) = (unsafe { core_main_conf(cf) }) else {
        return NGX_ERROR;
    };
    let mut enabled_anywhere = false;
    // SAFETY: parsing and merging are done, so every server is complete.
    for cscf in unsafe { servers(cmcf) } {
        // SAFETY: as above.
        let Some(conf) = (unsafe { server_module_conf::<MqttSrvConf>(cscf, module()) }) else {
            continue;
        };
        if !conf.enabled() {
            continue;
        }
        enabled_anywhere = true;
        if conf.requires_connect() && cscf.handler.is_some() {
            conf.content_handler = cscf.handler;
            cscf.handler = Some(content_gate);
        }
    }
    if !enabled_anywhere {
        return NGX_OK;
    }
    // SAFETY: this is postconfiguration of a stream module.
    let installed = unsafe {
        push_preread_handler(cmcf, Some(preread_handler))
            && prepend_log_handler(cmcf, Some(settle_undecided))
    };
    if installed {
        NGX_OK
    } else {
        NGX_ERROR
    }
}

/// The preread phase handler. A panic becomes a logged 500, never an unwind
/// into nginx.
unsafe extern "C" fn preread_handler(s: *mut ngx_stream_session_t) -> ngx_int_t {
    // SAFETY: nginx passes the live session being processed.
    let session = unsafe { &mut *s };
    match catch_unwind(AssertUnwindSafe(|| preread(session))) {
        Ok(rc) => rc,
        Err(_) => {
            let c = session.connection();
            mqtt_log!(NGX_LOG_ALERT, c.log, "internal error while reading CONNECT");
            INTERNAL_ERROR
        }
    }
}

fn preread(s: &mut ngx_stream_session_t) -> ngx_int_t {
    let Some(conf) = s.srv_conf::<MqttSrvConf>(module()) else {
        return NGX_DECLINED;
    };
    if !conf.enabled() || s.connection().type_ != libc::SOCK_STREAM {
        return NGX_DECLINED;
    }
    let Some(ctx) = session_ctx(s) else {
        return NGX_ERROR;
    };
    if ctx.outcome != Outcome::Pending {
        return NGX_DECLINED;
    }

    let c = s.connection();
    let limit = s.core_srv_conf().preread_buffer_size;
    if c.buffer.is_null() {
        // Nothing read yet: nginx reads into the context's buffer, sized for
        // a typical CONNECT, rather than allocate preread_buffer_size.
        c.buffer = ctx.first_read_buffer(limit);
        return NGX_AGAIN;
    }
    loop {
        // SAFETY: c.buffer is the preread buffer; [pos, last) holds the
        // bytes received so far, which stay put until this handler returns
        // or resizes the buffer.
        let (received, capacity) = unsafe {
            let b = &*c.buffer;
            (
                core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize),
                b.end.offset_from(b.pos) as usize,
            )
        };
        match parse_connect(received, limit) {
            // The Remaining Length says the packet does not fit: make room
            // for all of it (the parser has checked it is within the limit).
            Parsed::Incomplete {
                needed: Some(needed),
            } if received.len() + needed > capacity => {
                if !resize_buffer(c, ctx, received.len() + needed) {
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
                if conf.requires_connect() {
                    return reject(c, conf, ctx, RejectReason::Invalid(reason), level, limit);
                }
                // Preread handlers after this one get the room nginx would
                // have given them.
                if capacity < limit && !resize_buffer(c, ctx, limit) {
                    return NGX_ERROR;
                }
                ctx.outcome = Outcome::PassedUnparsed;
                mqtt_debug!(c.log, "not a valid CONNECT ({}), proxied", reason.message());
                return NGX_DECLINED;
            }
            Parsed::Connect(connect) => return decide(c, conf, ctx, &connect, limit),
        }
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
        Err(reason) => reject(c, conf, ctx, reason, Some(connect.level), limit),
    }
}

/// Replaces the preread buffer with one of `size` bytes that starts with the
/// bytes of the old one (as many as fit), and frees the old one unless it
/// is the context's own.
fn resize_buffer(c: &mut ngx_connection_t, ctx: &SessionCtx, size: usize) -> bool {
    // SAFETY: c.pool is the connection's live pool.
    let Some(mut new) = NonNull::new(unsafe { ngx_create_temp_buf(c.pool, size) }) else {
        return false;
    };
    // SAFETY: a fresh buffer, not aliased.
    let new = unsafe { new.as_mut() };
    // SAFETY: when set, c.buffer is the preread buffer.
    if let Some(old) = unsafe { c.buffer.as_ref() } {
        // SAFETY: [pos, last) of the old buffer are initialised, the new one
        // has room for `kept` bytes, and the two do not overlap.
        unsafe {
            let kept = (old.last.offset_from(old.pos) as usize).min(size);
            ptr::copy_nonoverlapping(old.pos, new.pos, kept);
            new.last = new.pos.add(kept);
        }
        if !ctx.owns_buffer(old) {
            // SAFETY: frees a large allocation of the pool, and declines
            // anything else; nothing refers to the old bytes any more.
            unsafe { ngx_pfree(c.pool, old.start.cast()) };
        }
    }
    c.buffer = new;
    true
}

/// Whether nginx prereads this connection with `MSG_PEEK`, as
/// `ngx_stream_preread_can_peek()` decides (nginx 1.25.5 and later, plain
/// TCP, edge-triggered kqueue, or epoll with `EPOLLRDHUP`).
fn preread_peeks(c: &ngx_connection_t) -> bool {
    if nginx_version < 1_025_005 || !c.ssl.is_null() {
        return false;
    }
    // SAFETY: plain reads of globals the event module sets at start-up.
    let (flags, rdhup) = unsafe { (ngx_event_flags, ngx_use_epoll_rdhup) };
    let uses = |flag: u32| flags & flag as ngx_uint_t != 0;
    uses(NGX_USE_CLEAR_EVENT)
        && (uses(NGX_USE_KQUEUE_EVENT) || (uses(NGX_USE_EPOLL_EVENT) && rdhup != 0))
}

/// Peeks at the socket again, into the whole preread buffer, as a peeking
/// nginx does; whether that brought any bytes.
fn peek_again(c: &ngx_connection_t) -> bool {
    // SAFETY: c.buffer is the preread buffer, writable from pos to end.
    unsafe {
        let b = &mut *c.buffer;
        let room = b.end.offset_from(b.pos) as usize;
        let n = libc::recv(
            c.fd,
            b.pos.cast(),
            room,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        );
        if n <= 0 {
            return false;
        }
        b.last = b.pos.add(n as usize);
    }
    true
}

/// The session's context, created on first use.
fn session_ctx(s: &mut ngx_stream_session_t) -> Option<&'static mut SessionCtx> {
    if let Some(ctx) = s.module_ctx::<SessionCtx>(module()) {
        // SAFETY: the context lives in the connection pool, as long as the session.
        return Some(unsafe { &mut *(ctx as *mut SessionCtx) });
    }
    let ctx = SessionCtx::create(s.connection().pool)?;
    s.set_module_ctx(module(), NonNull::from(&mut *ctx));
    Some(ctx)
}

/// Refuses a session: logs why, tells the device with a CONNACK where its
/// protocol allows one, and returns the session status.
fn reject(
    c: &mut ngx_connection_t,
    conf: &MqttSrvConf,
    ctx: &mut SessionCtx,
    reason: RejectReason,
    level: Option<ProtocolLevel>,
    preread_buffer_size: usize,
) -> ngx_int_t {
    ctx.outcome = Outcome::Rejected(reason);
    let cert_cn = ctx.cert_cn(c);
    let too_large = reason == RejectReason::Invalid(InvalidReason::TooLarge);
    // Identity failures and a too small buffer are for the operator to see;
    // broken packets are the client's problem, as nginx logs them.
    let log_level = if reason.status() == 403 || too_large {
        NGX_LOG_WARN
    } else {
        NGX_LOG_INFO
    };
    if too_large {
        mqtt_log!(
            log_level,
            c.log,
            "rejected ({}): CONNECT is larger than preread_buffer_size ({} bytes)",
            reason.token(),
            preread_buffer_size
        );
    } else {
        mqtt_log!(
            log_level,
            c.log,
            "rejected ({}): {}, client_id: \"{}\", cert_cn: \"{}\"",
            reason.token(),
            reason.message(),
            Escaped(str_bytes(&ctx.client_id)),
            Escaped(str_bytes(&cert_cn))
        );
    }
    if c.ssl.is_null() {
        discard_unread(c);
    }
    if conf.reject_connack == 1 {
        if let Some(code) = reason.connack_code(level) {
            send_connack(c, level, code, reason.message());
        }
    }
    reason.status() as ngx_int_t
}

/// Writes a CONNACK carrying `code` to the device.
fn send_connack(c: &mut ngx_connection_t, level: Option<ProtocolLevel>, code: u8, reason: &str) {
    // An unknown protocol version is answered in the 3.1.1 format, as brokers do.
    let level = level.unwrap_or(ProtocolLevel::V311);
    let reason_string = (level == ProtocolLevel::V5).then_some(reason);
    let mut packet = [0u8; MAX_CONNACK_LEN];
    let len = encode_connack(level, code, reason_string, &mut packet);
    let Some(send) = c.send else {
        return;
    };
    // SAFETY: c is live and packet holds len initialised bytes.
    let sent = unsafe { send(c, packet.as_mut_ptr(), len) };
    if sent != len as isize {
        mqtt_debug!(c.log, "CONNACK not sent whole ({} of {} bytes)", sent, len);
    }
}

/// Reads and drops what the device sent and nginx has not consumed.
///
/// Plain-TCP preread only peeks (nginx 1.25.5 and later), so the CONNECT is
/// still in the socket: closing over unread bytes sends an RST instead of a
/// clean FIN, and the RST can destroy a CONNACK before the device reads it.
fn discard_unread(c: &ngx_connection_t) {
    let mut scratch = [0u8; 4096];
    // Bounded: a device that keeps sending is cut off with an RST anyway.
    for _ in 0..16 {
        // SAFETY: c.fd is the connection's socket; scratch is writable.
        let n = unsafe {
            libc::recv(
                c.fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
}

/// Log phase, before the access log: a session that ends while its CONNECT is
/// still incomplete was closed by nginx itself, when the client went away or
/// `preread_timeout` expired, with status 200 and no call to the preread
/// handler. Record it as the rejection it is.
unsafe extern "C" fn settle_undecided(s: *mut ngx_stream_session_t) -> ngx_int_t {
    // SAFETY: nginx passes the live session being finalized.
    let session = unsafe { &mut *s };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(conf) = session.srv_conf::<MqttSrvConf>(module()) else {
            return;
        };
        let Some(ctx) = session.module_ctx::<SessionCtx>(module()) else {
            return;
        };
        // nginx ends an unfinished preread with status 200; any other status
        // is an error of its own, which stays as it is.
        let ended_in_preread = session.status == NGX_STREAM_OK as ngx_uint_t;
        if !conf.enabled() || ctx.outcome != Outcome::Pending || !ended_in_preread {
            return;
        }
        let status = reject(
            session.connection(),
            conf,
            ctx,
            RejectReason::Incomplete,
            None,
            0,
        );
        session.status = status as ngx_uint_t;
    }));
    NGX_OK
}

/// Stands in front of the server's content handler: only sessions the
/// preread handler decided reach the upstream. nginx runs a phase's handlers
/// in reverse order of registration, so a module loaded after this one reads
/// first, and if it returns `NGX_OK` (`js_preread` with `s.done()` does) the
/// rest of the phase, this module's handler included, is skipped. Such a
/// session must not be proxied unauthenticated.
unsafe extern "C" fn content_gate(s: *mut ngx_stream_session_t) {
    // SAFETY: nginx passes the live session being processed.
    let session = unsafe { &mut *s };
    let status = match catch_unwind(AssertUnwindSafe(|| gate(session))) {
        Ok(None) => return,
        Ok(Some(status)) => status,
        Err(_) => {
            let c = session.connection();
            mqtt_log!(NGX_LOG_ALERT, c.log, "internal error before proxying");
            INTERNAL_ERROR
        }
    };
    // SAFETY: the session is live and not yet finalized.
    unsafe { ngx_stream_finalize_session(s, status as ngx_uint_t) };
}

/// Runs the content handler for a decided session; otherwise returns the
/// status to finalize with.
fn gate(s: &mut ngx_stream_session_t) -> Option<ngx_int_t> {
    let Some(conf) = s.srv_conf::<MqttSrvConf>(module()) else {
        return Some(INTERNAL_ERROR);
    };
    // The gate is installed only in front of an existing handler.
    let Some(handler) = conf.content_handler else {
        return Some(INTERNAL_ERROR);
    };
    let outcome = s.module_ctx::<SessionCtx>(module()).map(|ctx| ctx.outcome);
    let c = s.connection();
    if matches!(outcome, Some(Outcome::Accepted | Outcome::PassedUnparsed))
        || c.type_ != libc::SOCK_STREAM
    {
        // SAFETY: handler is the server's own content handler.
        unsafe { handler(s) };
        return None;
    }
    if let Some(Outcome::Rejected(reason)) = outcome {
        return Some(reason.status() as ngx_int_t);
    }
    let Some(ctx) = session_ctx(s) else {
        return Some(INTERNAL_ERROR);
    };
    let c = s.connection();
    Some(reject(c, conf, ctx, RejectReason::Incomplete, None, 0))
}
