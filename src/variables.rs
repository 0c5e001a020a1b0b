//! The `$mqtt_*` variables.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{
    __BindgenBitfieldUnit, ngx_conf_t, ngx_connection_t, ngx_int_t, ngx_str_t,
    ngx_stream_add_variable, ngx_stream_session_t, ngx_stream_variable_value_t,
    NGX_STREAM_VAR_NOCACHEABLE,
};

use mqtt_core::packet::ProtocolLevel;

use crate::session::{Outcome, SessionCtx, EMPTY};
use crate::stream::{Session, NGX_ERROR, NGX_OK};
use crate::Module;

#[derive(Clone, Copy)]
enum Variable {
    ClientId,
    Username,
    ProtocolVersion,
    CertCn,
    RejectReason,
}

const VARIABLE_COUNT: usize = 7;

/// Each variable is read when the session is evaluated (the upstream hash,
/// the access log), so none is cached: a value read before the CONNECT was
/// parsed would otherwise stick.
static VARIABLES: [(&str, Variable); VARIABLE_COUNT] = [
    ("mqtt_client_id", Variable::ClientId),
    ("mqtt_username", Variable::Username),
    ("mqtt_protocol_version", Variable::ProtocolVersion),
    ("mqtt_cert_cn", Variable::CertCn),
    ("mqtt_reject_reason", Variable::RejectReason),
    // The names NGINX Plus and Angie use.
    ("mqtt_preread_clientid", Variable::ClientId),
    ("mqtt_preread_username", Variable::Username),
];

/// Preconfiguration: registers the variables.
pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    for (name, variable) in &VARIABLES {
        let mut name = static_str(name);
        // SAFETY: cf is the configuration being parsed; nginx copies the name.
        let var =
            unsafe { ngx_stream_add_variable(cf, &mut name, NGX_STREAM_VAR_NOCACHEABLE as _) };
        // SAFETY: a non-null result is the variable nginx just registered.
        let Some(var) = (unsafe { var.as_mut() }) else {
            return NGX_ERROR;
        };
        var.get_handler = Some(get_variable);
        var.data = *variable as usize;
    }
    NGX_OK
}

unsafe extern "C" fn get_variable(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the live session and a value slot to fill, while
    // no handler of this module runs.
    let (Some(mut s), Some(v)) = (unsafe { (Session::from_ptr(s), v.as_mut()) }) else {
        return NGX_ERROR;
    };
    // A panic (reading $mqtt_cert_cn parses the certificate) must not unwind
    // into nginx; the variable then fails to evaluate.
    catch_unwind(AssertUnwindSafe(|| evaluate(&mut s, v, data))).unwrap_or(NGX_ERROR)
}

fn evaluate(s: &mut Session<'_>, v: &mut ngx_stream_variable_value_t, data: usize) -> ngx_int_t {
    let (c, Some(ctx)) = s.connection_and_ctx::<Module>() else {
        v.set_not_found(1);
        return NGX_OK;
    };
    match own_value(c, ctx, data) {
        Some(value) => set_value(v, value),
        None => v.set_not_found(1),
    }
    NGX_OK
}

/// The code of this module's variable `name`, for [`own_value`].
pub fn own(name: &[u8]) -> Option<usize> {
    VARIABLES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(_, variable)| *variable as usize)
}

/// The value of this module's variable `code` for a session; `None` where
/// it is not found.
pub fn own_value(c: &ngx_connection_t, ctx: &mut SessionCtx, code: usize) -> Option<ngx_str_t> {
    Some(match code {
        x if x == Variable::ClientId as usize => ctx.client_id,
        x if x == Variable::Username as usize => ctx.username,
        x if x == Variable::ProtocolVersion as usize => match ctx.level {
            Some(level) => static_str(protocol_level_text(level)),
            None => EMPTY,
        },
        x if x == Variable::CertCn as usize => ctx.cert_cn(c),
        x if x == Variable::RejectReason as usize => match ctx.outcome {
            Outcome::Rejected(reason) => static_str(reason.token()),
            _ => EMPTY,
        },
        _ => return None,
    })
}

/// The text of an evaluated variable; `None` where it is not found.
///
/// Read from the bitfield unit as [`set_value`] writes it: bindgen's getters
/// take some hundred instructions per field.
pub fn value_of(v: &ngx_stream_variable_value_t) -> Option<ngx_str_t> {
    const NOT_FOUND: u32 = 1 << 30;
    let (len, not_found) = if cfg!(target_endian = "little") {
        // SAFETY: __BindgenBitfieldUnit<[u8; 4]> is repr(C) around its one
        // field, the four bytes.
        let unit: [u8; 4] =
            unsafe { core::ptr::read(core::ptr::addr_of!(v._bitfield_1).cast::<[u8; 4]>()) };
        let bits = u32::from_le_bytes(unit);
        ((bits & ((1 << 28) - 1)) as usize, bits & NOT_FOUND != 0)
    } else {
        (v.len() as usize, v.not_found() != 0)
    };
    if not_found || v.data.is_null() {
        return None;
    }
    Some(ngx_str_t { len, data: v.data })
}

/// `v->len = value.len; v->valid = 1; v->no_cacheable = v->not_found = 0`.
///
/// bindgen's bitfield setters move one bit at a time, some hundred
/// instructions per value on the hash and log paths. The flags share one
/// 32-bit unit, which on little-endian targets bindgen lays out as the C
/// compiler does: `len` in bits 0-27, then `valid`, `no_cacheable`,
/// `not_found` and `escape`.
fn set_value(v: &mut ngx_stream_variable_value_t, value: ngx_str_t) {
    const VALID: u32 = 1 << 28;
    debug_assert!(value.len < 1 << 28);
    if cfg!(target_endian = "little") {
        let bits = (value.len as u32 & (VALID - 1)) | VALID;
        v._bitfield_1 = __BindgenBitfieldUnit::new(bits.to_le_bytes());
    } else {
        v.set_len(value.len as _);
        v.set_valid(1);
        v.set_no_cacheable(0);
        v.set_not_found(0);
        v.set_escape(0);
    }
    debug_assert!(
        v.len() as usize == value.len
            && (v.valid(), v.no_cacheable(), v.not_found(), v.escape()) == (1, 0, 0, 0)
    );
    v.data = value.data;
}

/// The protocol level byte, as text: "3", "4" or "5".
fn protocol_level_text(level: ProtocolLevel) -> &'static str {
    match level {
        ProtocolLevel::V31 => "3",
        ProtocolLevel::V311 => "4",
        ProtocolLevel::V5 => "5",
    }
}

fn static_str(s: &'static str) -> ngx_str_t {
    ngx_str_t {
        len: s.len(),
        data: s.as_ptr().cast_mut(),
    }
}
