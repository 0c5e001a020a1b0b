//! Refusing a session: one error-log line, the CONNACK its protocol allows,
//! a clean close, and the session status.

use mqtt_core::escape::Escaped;
use mqtt_core::packet::connack::MAX_CONNACK_LEN;
use mqtt_core::packet::{Connect, InvalidReason};
use mqtt_core::policy::RejectReason;
use ngx::ffi::{
    ngx_connection_t, ngx_int_t, ngx_str_t, NGX_LOG_INFO, NGX_LOG_WARN,
    NGX_STREAM_INTERNAL_SERVER_ERROR,
};

use crate::cert::is_tls;
use crate::conf::MqttSrvConf;
use crate::log::{mqtt_debug, mqtt_log};
use crate::metrics;
use crate::session::{str_bytes, Outcome, SessionCtx};

pub const INTERNAL_ERROR: ngx_int_t = NGX_STREAM_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Refuses a session: logs why, tells the device with a CONNACK where its
/// protocol allows one, and returns the session status. `connect` is the
/// CONNECT when it parsed; otherwise the version is what the parser
/// established before it stopped (`ctx.level`).
pub fn refuse(
    c: &mut ngx_connection_t,
    conf: &MqttSrvConf,
    ctx: &mut SessionCtx,
    reason: RejectReason,
    connect: Option<&Connect<'_>>,
    preread_buffer_size: usize,
) -> ngx_int_t {
    refuse_limited(c, conf, ctx, reason, connect, preread_buffer_size, None)
}

/// [`refuse`], naming the zone and the key that admission control refused
/// the session for.
pub fn refuse_limited(
    c: &mut ngx_connection_t,
    conf: &MqttSrvConf,
    ctx: &mut SessionCtx,
    reason: RejectReason,
    connect: Option<&Connect<'_>>,
    preread_buffer_size: usize,
    limited: Option<(ngx_str_t, ngx_str_t)>,
) -> ngx_int_t {
    ctx.outcome = Outcome::Rejected(reason);
    metrics::count_refusal(conf, ctx, reason, connect);
    let cert_cn = ctx.cert_cn(c);
    let too_large = reason == RejectReason::Invalid(InvalidReason::TooLarge);
    // Identity failures and a too small buffer are for the operator to see;
    // broken packets are the client's problem, as nginx logs them.
    let log_level = if reason.status() != 400 || too_large {
        NGX_LOG_WARN
    } else {
        NGX_LOG_INFO
    };
    if let Some((zone, key)) = limited {
        mqtt_log!(
            log_level,
            c.log,
            "rejected ({}): {}, zone: \"{}\", key: \"{}\", client_id: \"{}\"",
            reason.token(),
            reason.message(),
            Escaped(str_bytes(&zone)),
            Escaped(str_bytes(&key)),
            Escaped(str_bytes(&ctx.client_id)),
        );
    } else if too_large {
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
    if !is_tls(c) {
        discard_unread(c);
    }
    if conf.reject_connack == 1 {
        let level = connect.map(|connect| connect.level).or(ctx.level);
        let max_packet_size = connect.and_then(|connect| connect.properties.maximum_packet_size());
        let mut packet = [0u8; MAX_CONNACK_LEN];
        let len = reason.write_connack(level, max_packet_size, &mut packet);
        if len > 0 {
            send(c, packet.get_mut(..len).unwrap_or_default());
        }
    }
    reason.status() as ngx_int_t
}

/// Writes `packet` to the device.
fn send(c: &mut ngx_connection_t, packet: &mut [u8]) {
    let Some(send) = c.send else {
        return;
    };
    // SAFETY: c is the live connection and packet holds its length in bytes.
    let sent = unsafe { send(c, packet.as_mut_ptr(), packet.len()) };
    if sent != packet.len() as isize {
        mqtt_debug!(
            c.log,
            "CONNACK not sent whole ({} of {} bytes)",
            sent,
            packet.len()
        );
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
