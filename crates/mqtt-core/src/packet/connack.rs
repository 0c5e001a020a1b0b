//! CONNACK encoder, for rejecting a client before its connection is proxied
//! (MQTT 3.1.1 §3.2, MQTT 5.0 §3.2).
//!
//! MQTT 3.1 and 3.1.1 CONNACKs are four bytes: `20 02 00 <return code>`. The
//! MQTT 5 CONNACK adds a property block, here holding at most a Reason String
//! (property 0x1F, MQTT 5.0 §3.2.2.3.7).

use super::protocol::ProtocolLevel;
use super::writer::{var_int_len, Writer};

/// Buffer size that holds any CONNACK written by this module with a useful
/// reason string; [`encode_connack`] truncates the reason string to fit.
pub const MAX_CONNACK_LEN: usize = 128;

/// Property identifier of the Reason String.
const REASON_STRING: u8 = 0x1F;

/// Writes a CONNACK with Session Present 0 and return/reason code `code`
/// into `out` and returns the number of bytes written.
///
/// * `level` 3.1 or 3.1.1: `[0x20, 0x02, 0x00, code]`; `reason_string` is
///   ignored.
/// * `level` 5.0: `[0x20, remaining length, 0x00, code, property length]`
///   followed, when `reason_string` is given and not empty, by the Reason
///   String property. The string is cut on a character boundary so that the
///   packet fits `out` (and within the 65 535-byte limit of a string); if
///   not even an empty one would fit, the property is left out.
///
/// Returns 0 and writes nothing when `out` cannot hold the smallest CONNACK
/// (4 bytes for 3.x, 5 for 5.0).
pub fn encode_connack(
    level: ProtocolLevel,
    code: u8,
    reason_string: Option<&str>,
    out: &mut [u8],
) -> usize {
    let mut w = Writer { out, pos: 0 };
    match level {
        ProtocolLevel::V31 | ProtocolLevel::V311 => {
            if w.room() < 4 {
                return 0;
            }
            w.put(&[0x20, 0x02, 0x00, code]);
        }
        ProtocolLevel::V5 => {
            let reason = reason_string
                .map(|s| fit_reason_string(s, w.room()))
                .filter(|s| !s.is_empty());
            let Some((remaining_len, total)) =
                v5_lengths(reason.map_or(0, str::len), reason.is_some())
            else {
                return 0;
            };
            if total > w.room() {
                return 0;
            }
            w.put(&[0x20]);
            w.var_int(remaining_len);
            w.put(&[0x00, code]);
            match reason {
                Some(s) => {
                    // Property 0x1F + two-byte length + the string.
                    w.var_int(s.len().saturating_add(3));
                    w.put(&[REASON_STRING]);
                    w.put(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
                    w.put(s.as_bytes());
                }
                None => w.put(&[0x00]),
            }
        }
    }
    w.pos
}

/// Remaining Length and total size of an MQTT 5 CONNACK whose Reason String
/// is `string_len` bytes (`with_string` false: no property at all).
fn v5_lengths(string_len: usize, with_string: bool) -> Option<(usize, usize)> {
    let props_len = if with_string {
        string_len.checked_add(3)?
    } else {
        0
    };
    // Flags + code + property length + properties.
    let remaining_len = var_int_len(props_len)?
        .checked_add(2)?
        .checked_add(props_len)?;
    let total = var_int_len(remaining_len)?
        .checked_add(1)?
        .checked_add(remaining_len)?;
    Some((remaining_len, total))
}

/// Longest prefix of `s`, cut on a character boundary, whose CONNACK fits
/// in `room` bytes and whose length fits a two-byte string length.
fn fit_reason_string(s: &str, room: usize) -> &str {
    // The framing around the string is 8 bytes when both Variable Byte
    // Integers take one byte, and at most 4 more: start from the 8-byte
    // estimate and step back one character at a time until it fits (the
    // size only grows with the string, so the first fit is the longest).
    let mut len = s
        .len()
        .min(usize::from(u16::MAX))
        .min(room.saturating_sub(8));
    loop {
        while !s.is_char_boundary(len) {
            len = len.saturating_sub(1);
        }
        match v5_lengths(len, true) {
            Some((_, total)) if total <= room => break,
            _ if len == 0 => break,
            _ => len = len.saturating_sub(1),
        }
    }
    s.get(..len).unwrap_or_default()
}
