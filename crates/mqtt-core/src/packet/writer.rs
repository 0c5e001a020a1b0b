//! Writing packets into buffers whose size was worked out beforehand.

/// Size of `value` as a Variable Byte Integer, `None` above the maximum
/// (MQTT 5.0 §1.5.5, MQTT 3.1.1 §2.2.3).
pub(super) fn var_int_len(value: usize) -> Option<usize> {
    match value {
        0..=127 => Some(1),
        128..=16_383 => Some(2),
        16_384..=2_097_151 => Some(3),
        2_097_152..=268_435_455 => Some(4),
        _ => None,
    }
}

/// Appends to a buffer whose size was checked beforehand; writes that would
/// not fit are dropped rather than panicking.
pub(super) struct Writer<'b> {
    pub(super) out: &'b mut [u8],
    pub(super) pos: usize,
}

impl Writer<'_> {
    pub(super) fn room(&self) -> usize {
        self.out.len().saturating_sub(self.pos)
    }

    /// What has been written so far.
    pub(super) fn written(&self) -> &[u8] {
        self.out.get(..self.pos).unwrap_or_default()
    }

    pub(super) fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }

    /// A two-byte length and the bytes (at most 65,535 of them are meant).
    pub(super) fn string(&mut self, bytes: &[u8]) {
        self.put(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.put(bytes);
    }

    pub(super) fn var_int(&mut self, mut value: usize) {
        loop {
            // Truncation intended: the low seven bits.
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.put(&[byte]);
                return;
            }
            self.put(&[byte | 0x80]);
        }
    }
}
