//! `ngx_http_mqtt_status_module`: `mqtt_status;` in an http location
//! answers with the metrics of every `mqtt_metrics` server, in the
//! Prometheus text exposition format, as `stub_status;` answers with its
//! numbers. It lives in the same `.so` as the stream module and reads the
//! same shared memory zone ([`metrics`]).

use core::ffi::{c_char, c_void};
use core::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mqtt_core::metrics::{render, CONTENT_TYPE};
use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_create_temp_buf, ngx_http_core_loc_conf_t,
    ngx_http_core_module, ngx_http_discard_request_body, ngx_http_module_t, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_module_t, ngx_palloc, ngx_str_t,
    ngx_uint_t, NGX_CONF_NOARGS, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_NOT_ALLOWED,
    NGX_HTTP_OK, NGX_LOG_ALERT, NGX_LOG_EMERG,
};
use ngx::http::HttpModuleConfExt;
use ngx::{ngx_conf_log_error, ngx_string};

use crate::log::mqtt_log;
use crate::metrics::{self, MetricsZone};
use crate::shm::Zone;
use crate::stream::{NGX_ERROR, NGX_OK};

/// The location configuration: the metrics zone where `mqtt_status` is set.
struct StatusConf {
    zone: Option<NonNull<Zone<MetricsZone>>>,
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(create_loc_conf),
    merge_loc_conf: None,
};

static mut COMMANDS: [ngx_command_t; 2] = [
    ngx_command_t {
        name: ngx_string!("mqtt_status"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

#[no_mangle]
#[used]
pub static mut ngx_http_mqtt_status_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX).cast_mut().cast(),
    // Only the address is taken; nginx owns the table from here.
    commands: addr_of_mut!(COMMANDS).cast(),
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: cf is the configuration being parsed; its pool outlives the
    // cycle and aligns as a pointer, which is all StatusConf needs.
    unsafe {
        let conf = ngx_palloc((*cf).pool, size_of::<StatusConf>()).cast::<StatusConf>();
        if !conf.is_null() {
            conf.write(StatusConf { zone: None });
        }
        conf.cast()
    }
}

/// `mqtt_status;`
unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a directive handler with the configuration being
    // parsed, in a location, and this module's location configuration.
    let conf = unsafe { &mut *conf.cast::<StatusConf>() };
    if conf.zone.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    match metrics::zone(cf) {
        Ok(zone) => conf.zone = Some(zone),
        Err(message) => {
            if !message.is_empty() {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
            }
            return NGX_CONF_ERROR;
        }
    }
    // SAFETY: in a location, the http core module's location configuration
    // exists, and ngx_http_core_module is nginx's own.
    let clcf = unsafe {
        (*cf).http_location_conf_unchecked::<ngx_http_core_loc_conf_t>(&*addr_of!(
            ngx_http_core_module
        ))
    };
    let Some(mut clcf) = clcf else {
        return NGX_CONF_ERROR;
    };
    // SAFETY: as above; only the configuration thread runs.
    unsafe { clcf.as_mut().handler = Some(status_handler) };
    ptr::null_mut()
}

/// The location's content handler. A panic becomes a logged 500.
unsafe extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request this location handles.
    let Some(r) = (unsafe { r.as_mut() }) else {
        return NGX_ERROR;
    };
    match catch_unwind(AssertUnwindSafe(|| respond(r))) {
        Ok(rc) => rc,
        Err(_) => {
            // SAFETY: the request's connection is live.
            let log = unsafe { (*r.connection).log };
            mqtt_log!(NGX_LOG_ALERT, log, "internal error in mqtt_status");
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        }
    }
}

fn respond(r: &mut ngx_http_request_t) -> ngx_int_t {
    if r.method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t == 0 {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    // SAFETY: r is the live request.
    let rc = unsafe { ngx_http_discard_request_body(r) };
    if rc != NGX_OK {
        return rc;
    }
    let body = exposition(r);
    r.headers_out.status = NGX_HTTP_OK as ngx_uint_t;
    r.headers_out.content_type = ngx_str_t {
        len: CONTENT_TYPE.len(),
        data: CONTENT_TYPE.as_ptr().cast_mut(),
    };
    r.headers_out.content_type_len = CONTENT_TYPE.len();
    r.headers_out.content_length_n = body.len() as _;
    if r.header_only() != 0 {
        // SAFETY: r is the live request, its headers set.
        return unsafe { ngx_http_send_header(r) };
    }
    // SAFETY: the request's pool outlives the response; the buffer has
    // room for the body's bytes.
    let b = unsafe { ngx_create_temp_buf(r.pool, body.len().max(1)) };
    let Some(b) = (unsafe { b.as_mut() }) else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    };
    // SAFETY: b.pos has room for body.len() bytes, apart from body.
    unsafe {
        ptr::copy_nonoverlapping(body.as_ptr(), b.pos, body.len());
        b.last = b.pos.add(body.len());
    }
    b.set_last_buf(u32::from(ptr::eq(r, r.main)));
    b.set_last_in_chain(1);
    // SAFETY: r is the live request.
    let rc = unsafe { ngx_http_send_header(r) };
    if rc == NGX_ERROR || rc > NGX_OK || r.header_only() != 0 {
        return rc;
    }
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: r is the live request; the chain and its buffer outlive the
    // call (the filter copies what it keeps).
    unsafe { ngx_http_output_filter(r, &mut out) }
}

/// The metrics of the counted servers of this cycle.
fn exposition(r: &ngx_http_request_t) -> String {
    // SAFETY: the location's configuration of this module, made by
    // create_loc_conf; the handler runs only where set_status set the zone.
    let conf = unsafe {
        (*r.loc_conf
            .add((*addr_of!(ngx_http_mqtt_status_module)).ctx_index))
        .cast::<StatusConf>()
        .as_ref()
    };
    // SAFETY: the zone's Zone lives as long as the cycle that serves r.
    let zone = conf.and_then(|c| c.zone).map(|z| unsafe { z.as_ref() });
    let servers: Vec<_> = zone
        .map(|zone| zone.conf.servers())
        .unwrap_or_default()
        .iter()
        .filter_map(|server| {
            // SAFETY: the configuration's entries live as long as the cycle.
            let server = unsafe { server.as_ref() };
            Some((server.name(), server.counters()?.snapshot()))
        })
        .collect();
    let mut out = String::with_capacity(1024 + servers.len() * 8192);
    render(&servers, &mut out);
    out
}
