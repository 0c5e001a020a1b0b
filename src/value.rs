//! The values of directives (`mqtt_set_connect`, the admission keys): text
//! with variables, compiled by nginx. A value that is one variable and
//! nothing else (`$mqtt_cert_cn`) is read without nginx's script engine and
//! without a copy; one of this module's own variables, straight from the
//! session's context. A value of a few parts of text and variables
//! (`gw-$mqtt_client_id`) is put together by the module, without the script
//! engine, into a buffer of the caller's where it fits
//! ([`Value::evaluate_into`]), sparing an allocation from the connection
//! pool. Anything else (captures such as `$1`, more parts) nginx compiles.

use core::mem::MaybeUninit;

use ngx::ffi::{ngx_conf_t, ngx_str_t, ngx_stream_complex_value_t, ngx_uint_t};

use crate::preread::session_ctx;
use crate::session::{str_bytes, EMPTY};
use crate::stream::{Session, NGX_OK};
use crate::variables;

/// The most parts a value written by the module may have.
const PARTS: usize = 4;

pub struct Value {
    complex: ngx_stream_complex_value_t,
    /// The value's parts, where the module can write it itself: text (a
    /// slice of the directive's argument, which the configuration pool
    /// keeps) and variables.
    parts: [Part; PARTS],
    len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Text(*const u8, usize),
    /// One of this module's variables, by its `variables` code.
    Own(usize),
    /// Any other, by its index.
    Indexed(ngx_uint_t),
}

impl Default for Value {
    fn default() -> Self {
        Value {
            // SAFETY: all-zero is an empty complex value, as ngx_pcalloc makes.
            complex: unsafe { core::mem::zeroed() },
            parts: [Part::Text(core::ptr::null(), 0); PARTS],
            len: 0,
        }
    }
}

impl Value {
    /// Compiles `text` for the stream block being configured.
    pub fn compile(cf: *mut ngx_conf_t, text: &mut ngx_str_t) -> Option<Value> {
        let mut value = Value::default();
        if let Some(parts) = split(str_bytes(text)) {
            for (slot, part) in value.parts.iter_mut().zip(&parts) {
                *slot = match *part {
                    Piece::Text(bytes) => Part::Text(bytes.as_ptr(), bytes.len()),
                    Piece::Variable(name) => variable(cf, name)?,
                };
            }
            value.len = parts.len();
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

    /// The one variable the value consists of, if so.
    fn lone(&self) -> Option<Part> {
        match self.parts() {
            [part @ (Part::Own(_) | Part::Indexed(_))] => Some(*part),
            _ => None,
        }
    }

    fn parts(&self) -> &[Part] {
        self.parts.get(..self.len).unwrap_or_default()
    }

    /// Whether both are the same single variable, so that one reading
    /// serves both.
    pub fn same_variable(&self, other: &Value) -> bool {
        self.lone().is_some() && self.lone() == other.lone()
    }

    /// The value for session `s`; `None` when a variable fails to evaluate.
    /// A single variable or a text is not copied; anything else is, into
    /// the pool.
    pub fn evaluate(&self, s: &mut Session<'_>) -> Option<ngx_str_t> {
        match (self.lone(), self.parts()) {
            (Some(part), _) => read(s, part),
            (None, [Part::Text(p, len)]) => Some(ngx_str_t {
                len: *len,
                data: p.cast_mut(),
            }),
            (None, []) => s.complex_value(&self.complex),
            (None, parts) => {
                let mut texts = [EMPTY; PARTS];
                for (text, &part) in texts.iter_mut().zip(parts) {
                    *text = text_of(s, part)?;
                }
                let texts = texts.get(..parts.len())?;
                let len = texts.iter().map(|t| t.len).sum::<usize>();
                if len == 0 {
                    return Some(EMPTY);
                }
                let pool = s.connection().pool;
                // SAFETY: the session's pool; the bytes live as long as it.
                let data = unsafe { ngx::ffi::ngx_pnalloc(pool, len) }.cast::<u8>();
                if data.is_null() {
                    return None;
                }
                // SAFETY: data has room for len bytes, written once each.
                let out = unsafe { core::slice::from_raw_parts_mut(data, len) };
                let mut at = 0;
                for text in texts {
                    let bytes = str_bytes(text);
                    out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
                    at += bytes.len();
                }
                Some(ngx_str_t { len, data })
            }
        }
    }

    /// The value for session `s`: a single variable as it is, a value of
    /// parts written into the front of `out` where it fits (the module's
    /// own parts), anything else from the pool. `Err` when a variable fails
    /// to evaluate.
    pub fn evaluate_into(
        &self,
        s: &mut Session<'_>,
        out: &mut [MaybeUninit<u8>],
    ) -> Result<(ngx_str_t, usize), ()> {
        if self.len <= 1 {
            // Nothing to put together: a single variable, a text, or a
            // value nginx compiled.
            return self.evaluate(s).map(|v| (v, 0)).ok_or(());
        }
        let mut used = 0;
        for &part in self.parts() {
            let text = text_of(s, part).ok_or(())?;
            // A slice of the directive's argument, which the configuration
            // pool keeps, or a variable's value, alive for the session.
            let bytes = str_bytes(&text);
            let Some(room) = out.get_mut(used..used + bytes.len()) else {
                // Too long for the caller's buffer: nginx writes it.
                return self.evaluate(s).map(|v| (v, 0)).ok_or(());
            };
            // SAFETY: room is bytes.len() bytes of out, apart from bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    room.as_mut_ptr().cast(),
                    bytes.len(),
                )
            };
            used += bytes.len();
        }
        let value = ngx_str_t {
            len: used,
            // The first `used` bytes of out, written above.
            data: if used == 0 {
                EMPTY.data
            } else {
                out.as_mut_ptr().cast()
            },
        };
        Ok((value, used))
    }
}

/// A part's text for session `s`.
fn text_of(s: &mut Session<'_>, part: Part) -> Option<ngx_str_t> {
    match part {
        Part::Text(p, len) => Some(ngx_str_t {
            len,
            data: p.cast_mut(),
        }),
        variable => read(s, variable),
    }
}

/// The value of one variable for session `s`.
fn read(s: &mut Session<'_>, part: Part) -> Option<ngx_str_t> {
    match part {
        Part::Own(code) => {
            session_ctx(s).map(|(c, ctx)| variables::own_value(c, ctx, code).unwrap_or(EMPTY))
        }
        Part::Indexed(index) => {
            Some(variables::value_of(s.flushed_variable(index)?).unwrap_or(EMPTY))
        }
        Part::Text(..) => None,
    }
}

/// The variable `name`: one of this module's, or nginx's index of it.
fn variable(cf: *mut ngx_conf_t, name: &[u8]) -> Option<Part> {
    if let Some(code) = variables::own(name) {
        return Some(Part::Own(code));
    }
    let mut name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    // SAFETY: cf is the configuration being parsed; the name points into its
    // argument, which nginx copies.
    let index = unsafe { ngx::ffi::ngx_stream_get_variable_index(cf, &mut name) };
    ngx_uint_t::try_from(index).ok().map(Part::Indexed)
}

#[derive(Clone, Copy)]
enum Piece<'a> {
    Text(&'a [u8]),
    Variable(&'a [u8]),
}

/// `text` as at most [`PARTS`] pieces of text and variables (`$name`,
/// `${name}`); `None` for anything else (more pieces, a capture such as
/// `$1`, a lone `$`), which nginx compiles.
fn split(text: &[u8]) -> Option<Vec<Piece<'_>>> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let dollar = rest.iter().position(|&b| b == b'$').unwrap_or(rest.len());
        let (literal, tail) = rest.split_at(dollar);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        let Some(tail) = tail.strip_prefix(b"$") else {
            break;
        };
        let (name, after) = match tail.strip_prefix(b"{") {
            Some(braced) => {
                let close = braced.iter().position(|&b| b == b'}')?;
                let (name, after) = braced.split_at(close);
                (name, after.get(1..)?)
            }
            None => tail.split_at(tail.iter().position(|b| !word(b)).unwrap_or(tail.len())),
        };
        if name.is_empty() || !name.iter().all(word) || name.first()?.is_ascii_digit() {
            return None;
        }
        pieces.push(Piece::Variable(name));
        rest = after;
    }
    (!pieces.is_empty() && pieces.len() <= PARTS).then_some(pieces)
}
