//! Tests of the pure MQTT code: hand-annotated vectors, the CONNACK encoder
//! and property tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable
)]

/// The value of the first `$variant` property in a property block.
macro_rules! property {
    ($block:expr, $variant:ident) => {
        $block.iter().find_map(|p| match p {
            crate::packet::Property::$variant(v) => Some(v),
            _ => None,
        })
    };
}

mod connack;
mod props;
mod rewrite;
mod seeds;
mod v5_properties;
mod vectors;
mod versions;

use super::{parse_connect, Connect, Parsed};

/// Parses `bytes` (limit 4096) and returns the CONNECT, failing otherwise.
fn connect_of(bytes: &[u8]) -> Connect<'_> {
    match parse_connect(bytes, 4096) {
        Parsed::Connect(c) => c,
        other => panic!("expected a CONNECT, got {other:?}"),
    }
}

/// Feeds every prefix of `bytes` the way bytes arrive from a socket and
/// checks that the verdicts agree with the verdict on the whole input:
/// until a verdict is reached every prefix is `Incomplete` (with a correct
/// `needed`), and once one is reached every longer prefix gives that same
/// verdict.
fn assert_prefix_consistent(bytes: &[u8], limit: usize) {
    let full = parse_connect(bytes, limit);
    let mut decided: Option<Parsed<'_>> = None;
    for n in 0..=bytes.len() {
        let r = parse_connect(&bytes[..n], limit);
        if let Some(d) = decided {
            assert_eq!(r, d, "prefix {n} of {bytes:02x?} changed a verdict");
            continue;
        }
        match r {
            Parsed::Incomplete { needed } => {
                if let (Some(k), Parsed::Connect(c)) = (needed, full) {
                    assert_eq!(n + k, c.packet_len, "needed at prefix {n} of {bytes:02x?}");
                }
                assert!(needed != Some(0));
            }
            _ => {
                assert_eq!(
                    r, full,
                    "prefix {n} of {bytes:02x?} disagrees with the whole"
                );
                decided = Some(r);
            }
        }
    }
}
