//! A cursor over a packet of which only a prefix may have arrived, and the
//! MQTT data types it reads (MQTT 3.1.1 §1.5, MQTT 5.0 §1.5).

use super::invalid::InvalidReason;

/// Why parsing stopped short of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The bytes present are a valid prefix; more are needed.
    Incomplete,
    /// The bytes present violate a rule.
    Invalid(InvalidReason),
}

impl From<InvalidReason> for Stop {
    fn from(reason: InvalidReason) -> Self {
        Stop::Invalid(reason)
    }
}

/// A cursor over a region of the packet of which only a prefix may have been
/// received.
///
/// `end` is the declared size of the region; `data` is the part received so
/// far (`data.len() <= end`). A read that would go past `end` is a violation
/// (`overrun`) whatever has been received; a read that stays within `end` but
/// goes past `data` means the input is incomplete.
#[derive(Clone)]
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) overrun: InvalidReason,
}

impl<'a> Reader<'a> {
    /// A reader over a region that has been received completely.
    pub(super) fn complete(data: &'a [u8], overrun: InvalidReason) -> Self {
        Reader {
            data,
            pos: 0,
            end: data.len(),
            overrun,
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// Bytes left in the region, received or not.
    pub(super) fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        if n > self.left() {
            return Err(self.overrun.into());
        }
        // `pos + n <= end`, which is at most the Remaining Length.
        let next = self.pos.saturating_add(n);
        let bytes = self.data.get(self.pos..next).ok_or(Stop::Incomplete)?;
        self.pos = next;
        Ok(bytes)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], Stop> {
        if N > self.left() {
            return Err(self.overrun.into());
        }
        let bytes = self
            .data
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or(Stop::Incomplete)?;
        self.pos = self.pos.saturating_add(N);
        Ok(bytes)
    }

    pub(super) fn u8(&mut self) -> Result<u8, Stop> {
        let [b] = *self.array::<1>()?;
        Ok(b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, Stop> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, Stop> {
        Ok(u32::from_be_bytes(*self.array::<4>()?))
    }

    /// Binary Data: a two-byte length followed by that many bytes.
    pub(super) fn binary(&mut self) -> Result<&'a [u8], Stop> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// UTF-8 Encoded String: well-formed UTF-8 without U+0000 (MQTT 3.1.1
    /// §1.5.3, MQTT 5.0 §1.5.4).
    pub(super) fn utf8(&mut self) -> Result<&'a str, Stop> {
        let s = self.utf8_with_nul()?;
        // In well-formed UTF-8 a zero byte can only be U+0000. A branch-free
        // fold rather than `contains`: the strings are short, and this
        // compiles to a few vector compares instead of a byte loop.
        if s.bytes().fold(false, |nul, b| nul | (b == 0)) {
            return Err(InvalidReason::NullCharacter.into());
        }
        Ok(s)
    }

    /// A string of MQTT 3.1, which asks for UTF-8 but, outside topics, does
    /// not exclude U+0000.
    pub(super) fn utf8_with_nul(&mut self) -> Result<&'a str, Stop> {
        let bytes = self.binary()?;
        core::str::from_utf8(bytes).map_err(|_| InvalidReason::InvalidUtf8.into())
    }

    /// Variable Byte Integer (MQTT 5.0 §1.5.5, MQTT 3.1.1 §2.2.3): at most
    /// four bytes, minimally encoded.
    pub(super) fn var_int(&mut self, too_long: InvalidReason) -> Result<usize, Stop> {
        let mut value = 0usize;
        for shift in [0u32, 7, 14, 21] {
            let byte = self.u8()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // A last byte of zero after a continuation byte adds nothing:
                // the same value fits in fewer bytes.
                if byte == 0 && shift > 0 {
                    return Err(InvalidReason::NonMinimalVarInt.into());
                }
                return Ok(value);
            }
        }
        Err(too_long.into())
    }
}

/// Whether `topic` may be a Topic Name: at least one character and no
/// wildcard (MQTT 3.1 appendix A and "PUBLISH"; MQTT 3.1.1 §4.7.1
/// [MQTT-4.7.1-1], §4.7.3 [MQTT-4.7.3-1]; MQTT 5.0 §4.7.1 [MQTT-4.7.0-1],
/// §4.7.3 [MQTT-4.7.3-1]). U+0000 is the string reader's concern.
pub(super) fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.bytes().any(|b| b == b'+' || b == b'#')
}
