//! An nginx stream module that reads the MQTT CONNECT in the preread phase:
//! `$mqtt_client_id` for consistent hashing, and ClientIds bound to the
//! verified client certificate.
//!
//! The protocol and policy logic ([`mqtt`], [`policy`], [`identity`]) has no
//! nginx types; the glue around it is built with the `nginx` feature.

pub mod escape;
pub mod identity;
pub mod mqtt;
pub mod policy;

#[cfg(feature = "nginx")]
mod cert;
#[cfg(feature = "nginx")]
mod conf;
#[cfg(feature = "nginx")]
mod log;
#[cfg(feature = "nginx")]
mod preread;
#[cfg(feature = "nginx")]
mod session;
#[cfg(feature = "nginx")]
mod stream;
#[cfg(feature = "nginx")]
mod variables;

#[cfg(feature = "nginx")]
use module::module;
#[cfg(feature = "nginx")]
pub use module::ngx_stream_mqtt_preread_module;

#[cfg(feature = "nginx")]
mod module {
    use core::ptr::{addr_of, addr_of_mut};

    use ngx::ffi::{ngx_module_t, ngx_stream_module_t, NGX_STREAM_MODULE};

    use crate::{conf, preread, variables};

    static MODULE_CTX: ngx_stream_module_t = ngx_stream_module_t {
        preconfiguration: Some(variables::add_variables),
        postconfiguration: Some(preread::postconfiguration),
        create_main_conf: None,
        init_main_conf: None,
        create_srv_conf: Some(conf::create_srv_conf),
        merge_srv_conf: Some(conf::merge_srv_conf),
    };

    #[no_mangle]
    #[used]
    pub static mut ngx_stream_mqtt_preread_module: ngx_module_t = ngx_module_t {
        ctx: addr_of!(MODULE_CTX).cast_mut().cast(),
        // Only the address is taken; nginx owns the table from here.
        commands: addr_of_mut!(conf::COMMANDS).cast(),
        type_: NGX_STREAM_MODULE as _,
        ..ngx_module_t::default()
    };

    // The table nginx reads from a dynamic module. nginx's own build (the
    // `config` file, `--add-dynamic-module`) generates it in C and links this
    // crate as a static library, built with `--cfg ngx_modules_generated`.
    #[cfg(not(ngx_modules_generated))]
    ngx::ngx_modules!(ngx_stream_mqtt_preread_module);

    /// This module, as nginx numbered it.
    pub(crate) fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the indexes once while loading the
        // configuration, before any handler that reads them runs.
        unsafe { &*addr_of!(ngx_stream_mqtt_preread_module) }
    }
}
