//! Admission control: how many CONNECTs a key may make per second
//! ([`rate`]) and how many live sessions it may hold ([`conn`]), kept in a
//! table of fixed-size slots ([`table`]) that every worker process shares.
//!
//! The table stores a keyed 64-bit hash of each key, never the key, so that
//! a slot has one size whatever the key's length; the hash secret is drawn
//! when the zone is created, so a device cannot choose a ClientId that
//! collides with another's.

pub mod conn;
pub mod rate;
pub mod table;

#[cfg(test)]
mod tests;
