//! What keeps undecided sessions away from the brokers: a gate in front of
//! the content handler, and a log-phase fix-up for sessions nginx ended in
//! the preread phase without asking this module.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mqtt_core::policy::{ClientIdPolicy, RejectReason};
use ngx::ffi::{
    ngx_int_t, ngx_log_t, ngx_stream_core_srv_conf_t, ngx_stream_finalize_session,
    ngx_stream_session_t, ngx_uint_t, NGX_LOG_ALERT, NGX_LOG_WARN, NGX_STREAM_OK,
};

use crate::conf::MqttSrvConf;
use crate::limit;
use crate::log::mqtt_log;
use crate::metrics;
use crate::preread::session_ctx;
use crate::refusal::{refuse, INTERNAL_ERROR};
use crate::session::Outcome;
use crate::stream::{ClientCertificates, Session, NGX_OK};
use crate::Module;

/// Puts the gate in front of the content handler of a server that parses
/// CONNECTs and must see an accepted one before proxying; warns if its
/// identity check can only refuse.
pub fn install_gate(
    log: *mut ngx_log_t,
    cscf: &mut ngx_stream_core_srv_conf_t,
    conf: &mut MqttSrvConf,
    certificates: ClientCertificates,
) {
    if conf.policy() != ClientIdPolicy::Off {
        warn_without_certificates(log, cscf, certificates);
    }
    if conf.requires_connect() && cscf.handler.is_some() {
        conf.content_handler = cscf.handler;
        cscf.handler = Some(content_gate);
    }
}

/// `mqtt_client_id_match` where devices have no certificate to present
/// refuses every one of them with `no_certificate`: say so at start-up.
fn warn_without_certificates(
    log: *mut ngx_log_t,
    cscf: &ngx_stream_core_srv_conf_t,
    certificates: ClientCertificates,
) {
    let why = match certificates {
        ClientCertificates::Requested => return,
        ClientCertificates::NoTls => "no \"listen ... ssl\"",
        ClientCertificates::NotRequested => "\"ssl_verify_client off\"",
    };
    let file = if cscf.file_name.is_null() {
        Default::default()
    } else {
        // SAFETY: nginx keeps the name of the file a server was defined in
        // as a NUL-terminated string for the life of the cycle.
        unsafe { core::ffi::CStr::from_ptr(cscf.file_name.cast()) }.to_string_lossy()
    };
    mqtt_log!(
        NGX_LOG_WARN,
        log,
        "\"mqtt_client_id_match\" is set in the server in {file}:{line}, which has {why}: \
         every device will be refused with no_certificate",
        line = cscf.line
    );
}

/// Log phase, before the access log: a session that ends while its CONNECT is
/// still incomplete was closed by nginx itself, when the client went away or
/// `preread_timeout` expired, with status 200 and no call to the preread
/// handler. Record it as the rejection it is.
pub unsafe extern "C" fn settle_undecided(s: *mut ngx_stream_session_t) -> ngx_int_t {
    // SAFETY: nginx passes the live session being finalized.
    if let Some(mut s) = unsafe { Session::from_ptr(s) } {
        let _ = catch_unwind(AssertUnwindSafe(|| settle(&mut s)));
    }
    NGX_OK
}

fn settle(s: &mut Session<'_>) {
    let Some(conf) = s.srv_conf::<Module>() else {
        return;
    };
    if conf.limits() {
        limit::release(s);
    }
    // nginx ends an unfinished preread with status 200; any other status is
    // an error of its own, which stays as it is.
    let ended_in_preread = s.status() == NGX_STREAM_OK as ngx_uint_t;
    let (c, Some(ctx)) = s.connection_and_ctx::<Module>() else {
        return;
    };
    metrics::session_ended(conf, ctx);
    if !conf.enabled() || ctx.outcome != Outcome::Pending || !ended_in_preread {
        return;
    }
    let status = refuse(c, conf, ctx, RejectReason::Incomplete, None, 0);
    s.set_status(status as ngx_uint_t);
}

/// Stands in front of the server's content handler: only sessions the
/// preread handler decided reach the upstream. nginx runs a phase's handlers
/// in reverse order of registration, so a module loaded after this one reads
/// first, and if it returns `NGX_OK` (`js_preread` with `s.done()` does) the
/// rest of the phase, this module's handler included, is skipped. Such a
/// session must not be proxied unauthenticated.
unsafe extern "C" fn content_gate(s: *mut ngx_stream_session_t) {
    // SAFETY: nginx passes the live session being processed.
    let Some(mut session) = (unsafe { Session::from_ptr(s) }) else {
        return;
    };
    let status = match catch_unwind(AssertUnwindSafe(|| gate(&mut session))) {
        Ok(None) => return,
        Ok(Some(status)) => status,
        Err(_) => {
            let log = session.connection().log;
            mqtt_log!(NGX_LOG_ALERT, log, "internal error before proxying");
            INTERNAL_ERROR
        }
    };
    // SAFETY: the session is live and not yet finalized; nothing of it is
    // borrowed any more.
    unsafe { ngx_stream_finalize_session(session.as_ptr(), status as ngx_uint_t) };
}

/// Runs the content handler for a decided session; otherwise returns the
/// status to finalize with.
fn gate(s: &mut Session<'_>) -> Option<ngx_int_t> {
    let Some(conf) = s.srv_conf::<Module>() else {
        return Some(INTERNAL_ERROR);
    };
    // The gate is installed only in front of an existing handler.
    let Some(handler) = conf.content_handler else {
        return Some(INTERNAL_ERROR);
    };
    let outcome = s.ctx::<Module>().map(|ctx| ctx.outcome);
    if matches!(outcome, Some(Outcome::Accepted | Outcome::PassedUnparsed))
        || s.connection().type_ != libc::SOCK_STREAM
    {
        // SAFETY: handler is the server's own content handler, given the
        // session it was meant for.
        unsafe { handler(s.as_ptr()) };
        return None;
    }
    if let Some(Outcome::Rejected(reason)) = outcome {
        return Some(reason.status() as ngx_int_t);
    }
    Some(refuse_incomplete(s, conf))
}

fn refuse_incomplete(s: &mut Session<'_>, conf: &MqttSrvConf) -> ngx_int_t {
    match session_ctx(s) {
        Some((c, ctx)) => refuse(c, conf, ctx, RejectReason::Incomplete, None, 0),
        None => INTERNAL_ERROR,
    }
}
