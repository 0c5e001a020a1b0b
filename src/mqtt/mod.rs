//! MQTT CONNECT parsing and CONNACK encoding: pure logic, no nginx types.
//!
//! * [`connect`]: the CONNECT parser, [`parse_connect`].
//! * [`connack`]: the CONNACK encoder used to reject a client.
//! * [`encode`]: a CONNECT encoder for tests, fuzz seeds and load generators.
//!
//! Nothing here allocates on the parsing path, and nothing can panic on any
//! input: the non-test code does no unchecked indexing and has no
//! `unwrap`/`expect` (enforced by the lints below).

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo
)]

pub mod connack;
pub mod connect;
pub mod encode;

pub use connect::{
    parse_connect, Connect, ConnectFlags, InvalidReason, Parsed, Properties, Property,
    ProtocolLevel,
};

#[cfg(test)]
mod tests;
