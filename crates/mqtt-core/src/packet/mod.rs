//! MQTT packets: the CONNECT parser, the CONNACK encoder, and a CONNECT
//! encoder for tests, fuzz seeds and load generators.
//!
//! * [`connect`]: [`parse_connect`] and the [`Connect`] it returns.
//! * [`protocol`]: protocol levels and the Connect Flags.
//! * [`properties`]: MQTT 5 property blocks.
//! * [`reader`]: the cursor over a partly received packet.
//! * [`invalid`]: every rule a CONNECT can break, as an [`InvalidReason`].
//! * [`reason_code`]: the CONNACK codes of each version, as a [`ReasonCode`].
//! * [`connack`]: the CONNACK encoder used to refuse a client.
//! * [`rewrite`]: the CONNECT rewritten with the gateway's values.
//! * [`encode`]: a CONNECT encoder for tests, fuzz seeds and load generators.
//!
//! Nothing here allocates on the parsing path, and nothing can panic on any
//! input: the non-test code does no unchecked indexing and has no
//! `unwrap`/`expect` (enforced by the crate's lints).

pub mod boundary;
pub mod connack;
pub mod connect;
pub mod encode;
pub mod invalid;
pub mod properties;
pub mod protocol;
mod reader;
pub mod reason_code;
pub mod rewrite;
mod writer;

pub use connect::{parse_connect, Connect, ConnectFramer, Parsed};
pub use invalid::InvalidReason;
pub use properties::{property_id, Properties, Property};
pub use protocol::{ConnectFlags, ProtocolLevel};
pub use reason_code::ReasonCode;

#[cfg(test)]
mod tests;
