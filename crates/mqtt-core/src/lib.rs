//! The pure core of the MQTT gateway module: everything that decides what
//! happens to a device, with no nginx types and no `unsafe`.
//!
//! * [`packet`]: the CONNECT parser, the CONNACK encoder, reason codes, and
//!   a CONNECT encoder for tests and load generators.
//! * [`policy`]: the accept/reject decision for a parsed CONNECT and the
//!   device's certificate identity, and what a refused device is told.
//! * [`escape`]: device-supplied bytes made safe for a log line.
//! * [`metrics`]: the per-server counters of the decisions, and their
//!   Prometheus text exposition.
//!
//! The nginx module at the top of the repository is the glue around this
//! crate; its unit, property and fuzz tests live here, where they link
//! without nginx.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo
)]

pub mod admission;
pub mod escape;
pub mod metrics;
pub mod packet;
pub mod policy;
