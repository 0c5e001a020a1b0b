//! The values of directives (`mqtt_set_connect`, the admission keys): text
//! with variables, compiled by nginx. A value that is one variable and
//! nothing else (`$mqtt_cert_cn`) is read without nginx's script engine and
//! without a copy; one of this module's own variables, straight from the
//! session's context.

use ngx::ffi::{ngx_conf_t, ngx_str_t, ngx_stream_complex_value_t, ngx_uint_t};

use crate::preread::session_ctx;
use crate::session::EMPTY;
use crate::stream::{Session, NGX_OK};
use crate::variables;

pub struct Value {
    complex: ngx_stream_complex_value_t,
    variable: Option<Variable>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variable {
    /// One of this module's, by its `variables` code.
    Own(usize),
    /// Any other, by its index.
    Indexed(ngx_uint_t),
}

impl Default for Value {
    fn default() -> Self {
        Value {
            // SAFETY: all-zero is an empty complex value, as ngx_pcalloc makes.
            complex: unsafe { core::mem::zeroed() },
            variable: None,
        }
    }
}

impl Value {
    /// Compiles `text` for the stream block being configured.
    pub fn compile(cf: *mut ngx_conf_t, text: &mut ngx_str_t) -> Option<Value> {
        let mut value = Value::default();
        if let Some(name) = lone_variable(text) {
            if let Some(code) = variables::own(name) {
                value.variable = Some(Variable::Own(code));
                return Some(value);
            }
            let mut name = ngx_str_t {
                len: name.len(),
                data: name.as_ptr().cast_mut(),
            };
            // SAFETY: cf is the configuration being parsed; the name points
            // into its argument, which nginx copies.
            let index = unsafe { ngx::ffi::ngx_stream_get_variable_index(cf, &mut name) };
            value.variable = Some(Variable::Indexed(ngx_uint_t::try_from(index).ok()?));
            return Some(value);
        }
        // SAFETY: all-zero is what ngx_memzero gives nginx's own callers.
        let mut ccv: ngx::ffi::ngx_stream_compile_complex_value_t = unsafe { core::mem::zeroed() };
        ccv.cf = cf;
        ccv.value = text;
        ccv.complex_value = &mut value.complex;
        // SAFETY: ccv is filled in as ngx_stream_compile_complex_value expects.
        let rc = unsafe { ngx::ffi::ngx_stream_compile_complex_value(&mut ccv) };
        (rc == NGX_OK).then_some(value)
    }

    /// Whether both are the same single variable, so that one reading
    /// serves both.
    pub fn same_variable(&self, other: &Value) -> bool {
        self.variable.is_some() && self.variable == other.variable
    }

    /// The value for session `s`, in its pool; `None` when a variable fails
    /// to evaluate.
    pub fn evaluate(&self, s: &mut Session<'_>) -> Option<ngx_str_t> {
        match self.variable {
            None => s.complex_value(&self.complex),
            Some(Variable::Own(code)) => {
                session_ctx(s).map(|(c, ctx)| variables::own_value(c, ctx, code).unwrap_or(EMPTY))
            }
            Some(Variable::Indexed(index)) => {
                let vv = s.flushed_variable(index)?;
                Some(variables::value_of(vv).unwrap_or(EMPTY))
            }
        }
    }
}

/// The name of the variable `text` consists of (`$name` or `${name}`).
fn lone_variable(text: &ngx_str_t) -> Option<&[u8]> {
    if text.len == 0 || text.data.is_null() {
        return None;
    }
    // SAFETY: a directive argument: len readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(text.data, text.len) };
    let rest = bytes.strip_prefix(b"$")?;
    let name = match rest.strip_prefix(b"{") {
        Some(braced) => braced.strip_suffix(b"}")?,
        None => rest,
    };
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    (!name.is_empty() && name.iter().all(word)).then_some(name)
}
