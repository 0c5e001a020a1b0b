//! The directives of the CONNECT rewrite: `mqtt_set_connect FIELD VALUE`,
//! `mqtt_set_connect user_property NAME VALUE`, and the obsolete
//! `mqtt_rewrite_buffer_size` of NGINX Plus.

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    ngx_array_create, ngx_array_push, ngx_command_t, ngx_conf_t, ngx_parse_size, ngx_str_t,
    NGX_LOG_EMERG, NGX_LOG_WARN,
};
use ngx::ngx_conf_log_error;

use crate::conf::MqttSrvConf;
use crate::session::str_bytes;
use crate::value::Value;

/// A CONNECT field that `mqtt_set_connect` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    ClientId,
    Username,
    Password,
    UserProperty,
}

/// One `mqtt_set_connect` directive. `name` is used by `user_property` only.
pub struct SetConnect {
    pub field: Field,
    pub name: Value,
    pub value: Value,
}

/// The arguments of the directive being parsed, after its name.
///
/// # Safety
/// `cf` is a configuration being parsed, whose `args` hold the directive.
pub unsafe fn args<'cf>(cf: *mut ngx_conf_t) -> &'cf mut [ngx_str_t] {
    // SAFETY: the caller's contract; args is an array of ngx_str_t with
    // the directive's name first.
    unsafe {
        let args = &*(*cf).args;
        let all = core::slice::from_raw_parts_mut(args.elts.cast::<ngx_str_t>(), args.nelts);
        all.get_mut(1..).unwrap_or_default()
    }
}

/// `mqtt_set_connect clientid | username | password VALUE;` and
/// `mqtt_set_connect user_property NAME VALUE;`
pub unsafe extern "C" fn set_connect(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a directive handler with the configuration being
    // parsed and this module's server configuration.
    let (args, conf) = unsafe { (args(cf), &mut *conf.cast::<MqttSrvConf>()) };
    let (field, name, value) = match args {
        [field, value] => {
            let field = match str_bytes(field) {
                b"clientid" => Field::ClientId,
                b"username" => Field::Username,
                b"password" => Field::Password,
                _ => {
                    ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "unknown field \"{}\" in \"mqtt_set_connect\" (clientid, username, password or user_property NAME)",
                        String::from_utf8_lossy(str_bytes(field))
                    );
                    return NGX_CONF_ERROR;
                }
            };
            (field, None, value)
        }
        [field, name, value] if str_bytes(field) == b"user_property" => {
            (Field::UserProperty, Some(name), value)
        }
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"mqtt_set_connect\" takes FIELD VALUE, or user_property NAME VALUE"
            );
            return NGX_CONF_ERROR;
        }
    };
    if field != Field::UserProperty && entries(conf).iter().any(|entry| entry.field == field) {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"mqtt_set_connect {}\" is duplicate",
            String::from_utf8_lossy(str_bytes(&args[0]))
        );
        return NGX_CONF_ERROR;
    }

    if conf.set_connect.is_null() {
        // SAFETY: cf's pool lives as long as the configuration.
        conf.set_connect = unsafe { ngx_array_create((*cf).pool, 4, size_of::<SetConnect>()) };
        if conf.set_connect.is_null() {
            return NGX_CONF_ERROR;
        }
    }
    let name = match name {
        Some(name) => match Value::compile(cf, name) {
            Some(name) => name,
            None => return NGX_CONF_ERROR,
        },
        None => Value::default(),
    };
    let Some(value) = Value::compile(cf, value) else {
        return NGX_CONF_ERROR;
    };
    let entry = SetConnect { field, name, value };
    // SAFETY: the array holds SetConnect elements; push returns room for one.
    unsafe {
        let slot = ngx_array_push(conf.set_connect).cast::<SetConnect>();
        if slot.is_null() {
            return NGX_CONF_ERROR;
        }
        slot.write(entry);
    }
    ptr::null_mut()
}

/// The `mqtt_set_connect` directives of a server.
pub fn entries(conf: &MqttSrvConf) -> &[SetConnect] {
    // SAFETY: when set, set_connect is an array of SetConnect in the
    // configuration's pool.
    unsafe {
        match conf.set_connect.as_ref() {
            Some(array) if array.nelts > 0 => {
                core::slice::from_raw_parts(array.elts.cast::<SetConnect>(), array.nelts)
            }
            _ => &[],
        }
    }
}

/// `mqtt_rewrite_buffer_size SIZE;`: NGINX Plus's bound on a rewritten
/// message before `mqtt_buffers`; taken as `mqtt_buffers 1 SIZE`.
pub unsafe extern "C" fn rewrite_buffer_size(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_connect.
    let (args, conf) = unsafe { (args(cf), &mut *conf.cast::<MqttSrvConf>()) };
    let [size] = args else {
        return NGX_CONF_ERROR;
    };
    // SAFETY: size is one of the directive's arguments.
    let Ok(size) = usize::try_from(unsafe { ngx_parse_size(size) }) else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid size in \"mqtt_rewrite_buffer_size\""
        );
        return NGX_CONF_ERROR;
    };
    ngx_conf_log_error!(
        NGX_LOG_WARN,
        cf,
        "the \"mqtt_rewrite_buffer_size\" directive is obsolete, use the \"mqtt_buffers\" directive instead"
    );
    if conf.buffers.num == 0 {
        conf.buffers.num = 1;
        conf.buffers.size = size;
    }
    ptr::null_mut()
}
