//! Printing untrusted bytes (a ClientId, a certificate CN) into a log line.

use core::fmt;

/// Displays bytes with everything but printable ASCII escaped as `\xNN`, and
/// `"` and `\` backslash-escaped, so a log line can't be forged or broken by
/// what a device sends.
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            match byte {
                b'"' | b'\\' => write!(f, "\\{}", byte as char)?,
                0x20..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn escapes_control_quote_and_non_ascii() {
        let shown = Escaped("dev\"1\\\n\u{e4}".as_bytes()).to_string();
        assert_eq!(shown, r#"dev\"1\\\x0a\xc3\xa4"#);
    }

    #[test]
    fn leaves_printable_ascii_alone() {
        assert_eq!(Escaped(b"thing-001/a b").to_string(), "thing-001/a b");
    }
}
