//! An nginx stream module that reads the MQTT CONNECT in the preread phase:
//! `$mqtt_client_id` for consistent hashing, and ClientIds bound to the
//! verified client certificate.
//!
//! This crate is the nginx glue; what it decides comes from the pure core in
//! `crates/mqtt-core` (parser, policy, CONNACK encoding).
//!
//! * `lib.rs`: the module statics.
//! * [`conf`]: the directives and the server configuration.
//! * [`preread`]: the preread handler, which parses and decides.
//! * [`gate`]: what keeps undecided sessions away from the upstream.
//! * [`refusal`]: refusing a session: the log line, the CONNACK, the close.
//! * [`rewrite`]: the CONNECT rewritten for the upstream (`mqtt on`), and
//!   the stream filter that puts it in place of the device's.
//! * [`set_connect`]: the rewrite's `mqtt_set_connect` directives.
//! * [`limit`]: admission control (`mqtt_limit_connect`, `mqtt_limit_conn`).
//! * [`shm`]: shared memory zones, kept across reloads.
//! * [`variables`]: the `$mqtt_*` variables.
//! * [`value`]: directive values, text with variables.
//! * [`session`]: the per-session context and its buffer.
//! * [`metrics`]: `mqtt_metrics`, the counters in shared memory.
//! * [`status`]: `ngx_http_mqtt_status_module`, whose `mqtt_status` serves
//!   them to Prometheus.
//! * [`cert`]: the verified peer certificate, from OpenSSL.
//! * [`stream`]: the typed layer over nginx's stream ABI.

mod cert;
mod conf;
mod gate;
mod limit;
mod log;
mod metrics;
mod preread;
mod refusal;
mod rewrite;
mod session;
mod set_connect;
mod shm;
mod status;
mod stream;
mod value;
mod variables;

use core::ptr::{addr_of, addr_of_mut};

use ngx::ffi::{ngx_module_t, ngx_stream_module_t, NGX_STREAM_MODULE};

use crate::conf::MqttSrvConf;
use crate::session::SessionCtx;
#[cfg(not(ngx_modules_generated))]
use crate::status::ngx_http_mqtt_status_module;
use crate::stream::{create_srv_conf, merge_srv_conf, StreamModule};

/// This module, for the typed accessors of [`stream`].
struct Module;

// SAFETY: the module's create_srv_conf makes MqttSrvConf, and its context
// slot is only set to a SessionCtx (session::SessionCtx::create).
unsafe impl StreamModule for Module {
    type SrvConf = MqttSrvConf;
    type Ctx = SessionCtx;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the indexes once while loading the
        // configuration, before any handler that reads them runs.
        unsafe { &*addr_of!(ngx_stream_mqtt_preread_module) }
    }
}

static MODULE_CTX: ngx_stream_module_t = ngx_stream_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: Some(preread::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(create_srv_conf::<Module>),
    merge_srv_conf: Some(merge_srv_conf::<Module>),
};

#[no_mangle]
#[used]
pub static mut ngx_stream_mqtt_preread_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX).cast_mut().cast(),
    // Only the address is taken; nginx owns the table from here.
    commands: addr_of_mut!(conf::COMMANDS).cast(),
    type_: NGX_STREAM_MODULE as _,
    init_process: Some(limit::takeover::init_process),
    ..ngx_module_t::default()
};

// The tables nginx reads from a dynamic module: its modules, their names,
// and no order constraint (one matters only for http filters). nginx's own
// build (the `config` file, `--add-dynamic-module`) generates them in C and
// links this crate as a static library, built with
// `--cfg ngx_modules_generated`. (ngx's `ngx_modules!` counts one module
// only.) The http module is inert where the configuration has no `http {}`:
// nginx only gives it its directives inside one.
#[cfg(not(ngx_modules_generated))]
#[no_mangle]
#[used]
pub static mut ngx_modules: [*const ngx_module_t; 3] = [
    addr_of!(ngx_stream_mqtt_preread_module),
    addr_of!(ngx_http_mqtt_status_module),
    core::ptr::null(),
];

#[cfg(not(ngx_modules_generated))]
#[no_mangle]
#[used]
pub static mut ngx_module_names: [*const core::ffi::c_char; 3] = [
    c"ngx_stream_mqtt_preread_module".as_ptr(),
    c"ngx_http_mqtt_status_module".as_ptr(),
    core::ptr::null(),
];

#[cfg(not(ngx_modules_generated))]
#[no_mangle]
#[used]
pub static mut ngx_module_order: [*const core::ffi::c_char; 1] = [core::ptr::null()];
