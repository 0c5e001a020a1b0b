//! `mqtt_limit_connect_zone KEY zone=NAME:SIZE rate=RATE;`,
//! `mqtt_limit_connect zone=NAME [burst=N];`,
//! `mqtt_limit_conn_zone KEY zone=NAME:SIZE;` and
//! `mqtt_limit_conn zone=NAME NUMBER [takeover];`

use core::ffi::{c_char, c_void};
use core::ptr;

use mqtt_core::admission::conn::TRACKED;
use mqtt_core::admission::rate::Rate;
use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_str_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;

use super::{ConnConf, ConnZone, LimitRef, RateConf, RateZone};
use crate::conf::MqttSrvConf;
use crate::session::str_bytes;
use crate::set_connect::args;
use crate::shm::{parse_zone_arg, Zone, ZoneKind};
use crate::value::Value;

fn text(s: &ngx_str_t) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(str_bytes(s))
}

/// Logs a configuration error and fails the directive.
fn fail(cf: *mut ngx_conf_t, message: &str) -> *mut c_char {
    if !message.is_empty() {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
    }
    NGX_CONF_ERROR
}

/// `mqtt_limit_connect_zone` and `mqtt_limit_conn_zone`: the zone and its
/// key (`set` stores the key and the kind's own arguments); the directive's
/// result.
fn define_zone<K: ZoneKind>(
    cf: *mut ngx_conf_t,
    key: &mut ngx_str_t,
    zone_arg: &ngx_str_t,
    set: impl FnOnce(&mut K::Conf, Value),
    defined: impl Fn(&K::Conf) -> bool,
) -> *mut c_char {
    let result = (|| {
        let (name, size) = parse_zone_arg(zone_arg, true)?;
        let mut zone = Zone::<K>::add(cf, &name, size)?;
        // SAFETY: a configuration-pool allocation of this cycle, only
        // touched by the configuration thread.
        let zone = unsafe { zone.as_mut() };
        if defined(&zone.conf) {
            return Err(format!("{} \"{}\" is duplicate", K::DIRECTIVE, text(&name)));
        }
        let key = Value::compile(cf, key).ok_or_else(String::new)?;
        set(&mut zone.conf, key);
        Ok(())
    })();
    match result {
        Ok(()) => ptr::null_mut(),
        Err(message) => fail(cf, &message),
    }
}

pub unsafe extern "C" fn limit_connect_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a directive handler with the configuration being
    // parsed.
    let args = unsafe { args(cf) };
    let [key, rest @ ..] = args else {
        return NGX_CONF_ERROR;
    };
    let (mut zone_arg, mut rate) = (None, None);
    for arg in rest.iter() {
        let bytes = str_bytes(arg);
        if bytes.starts_with(b"zone=") {
            zone_arg = Some(*arg);
        } else if let Some(r) = bytes.strip_prefix(b"rate=") {
            match Rate::parse(r) {
                Some(r) => rate = Some(r),
                None => return fail(cf, &format!("invalid rate \"{}\"", text(arg))),
            }
        } else {
            return fail(cf, &format!("invalid parameter \"{}\"", text(arg)));
        }
    }
    let (Some(zone_arg), Some(rate)) = (zone_arg, rate) else {
        return fail(
            cf,
            "\"mqtt_limit_connect_zone\" takes KEY zone=NAME:SIZE rate=RATE",
        );
    };
    let set = |conf: &mut RateConf, key| {
        *conf = RateConf {
            key,
            rate,
            defined: true,
        }
    };
    define_zone::<RateZone>(cf, key, &zone_arg, set, |conf| conf.defined)
}

pub unsafe extern "C" fn limit_conn_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in limit_connect_zone.
    let args = unsafe { args(cf) };
    let [key, zone_arg] = args else {
        return fail(cf, "\"mqtt_limit_conn_zone\" takes KEY zone=NAME:SIZE");
    };
    let zone_arg = *zone_arg;
    let set = |conf: &mut ConnConf, key| {
        conf.key = key;
        conf.defined = true;
    };
    define_zone::<ConnZone>(cf, key, &zone_arg, set, |conf| conf.defined)
}

/// The zone a `zone=NAME` argument refers to, defined before or after.
fn zone_ref<K: ZoneKind>(cf: *mut ngx_conf_t, arg: &ngx_str_t) -> Result<*mut Zone<K>, String> {
    let (name, _) = parse_zone_arg(arg, false)?;
    Ok(Zone::<K>::add(cf, &name, 0)?.as_ptr())
}

fn number(arg: &[u8]) -> Option<usize> {
    core::str::from_utf8(arg).ok()?.parse().ok()
}

pub unsafe extern "C" fn limit_connect(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's server configuration.
    let (args, conf) = unsafe { (args(cf), &mut *conf.cast::<MqttSrvConf>()) };
    if conf.limit_connect.is_set() {
        return fail(cf, "\"mqtt_limit_connect\" is duplicate");
    }
    let mut limit = LimitRef::<RateZone>::UNSET;
    for arg in args.iter() {
        let bytes = str_bytes(arg);
        if bytes.starts_with(b"zone=") {
            match zone_ref::<RateZone>(cf, arg) {
                Ok(zone) => limit.zone = zone,
                Err(message) => return fail(cf, &message),
            }
        } else if let Some(n) = bytes.strip_prefix(b"burst=") {
            match number(n) {
                Some(n) if n < u32::MAX as usize / 1000 => limit.extra = n,
                _ => return fail(cf, &format!("invalid burst value \"{}\"", text(arg))),
            }
        } else {
            return fail(cf, &format!("invalid parameter \"{}\"", text(arg)));
        }
    }
    if !limit.is_set() {
        return fail(cf, "\"mqtt_limit_connect\" needs zone=NAME");
    }
    conf.limit_connect = limit;
    ptr::null_mut()
}

pub unsafe extern "C" fn limit_conn(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in limit_connect.
    let (args, conf) = unsafe { (args(cf), &mut *conf.cast::<MqttSrvConf>()) };
    if conf.limit_conn.is_set() {
        return fail(cf, "\"mqtt_limit_conn\" is duplicate");
    }
    let (zone_arg, n, takeover) = match &*args {
        [zone, n] => (*zone, *n, false),
        [zone, n, t] if str_bytes(t) == b"takeover" => (*zone, *n, true),
        [_, _, other] => return fail(cf, &format!("invalid parameter \"{}\"", text(other))),
        _ => return NGX_CONF_ERROR,
    };
    let zone = match zone_ref::<ConnZone>(cf, &zone_arg) {
        Ok(zone) => zone,
        Err(message) => return fail(cf, &message),
    };
    let number = match number(str_bytes(&n)) {
        Some(n) if n > 0 && n <= u32::MAX as usize => n,
        _ => return fail(cf, &format!("invalid number of sessions \"{}\"", text(&n))),
    };
    if takeover && number > TRACKED {
        return fail(
            cf,
            &format!("\"mqtt_limit_conn ... takeover\" allows at most {TRACKED} sessions per key"),
        );
    }
    conf.limit_conn = LimitRef {
        zone,
        extra: number,
    };
    conf.limit_conn_takeover = takeover;
    if takeover {
        // SAFETY: a configuration-pool allocation of this cycle, only
        // touched by the configuration thread.
        unsafe { (*zone).conf.takeover = true };
    }
    ptr::null_mut()
}
