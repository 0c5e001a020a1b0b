//! Counters and latency histograms of a run.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::session::Outcome;

pub struct Stats {
    /// Sessions that got a CONNACK accepting them.
    pub ok: u64,
    /// Start (scheduled, in open loop) to CONNACK, microseconds.
    pub latency: Histogram<u64>,
    /// Stalled sessions: time until the gateway closed them, microseconds.
    pub stall_close: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// Open loop: how late connections started against their schedule, µs.
    pub lag: Histogram<u64>,
    pub publishes: u64,
    pub peak_live: usize,
    /// Held sessions that connected again after the gateway dropped them.
    pub reconnects: u64,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            ok: 0,
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            stall_close: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram"),
            errors: BTreeMap::new(),
            lag: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            publishes: 0,
            peak_live: 0,
            reconnects: 0,
        }
    }

    pub fn record_lag(&mut self, d: std::time::Duration) {
        self.lag.saturating_record((d.as_micros() as u64).max(1));
    }

    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    pub fn record(&mut self, out: Outcome) {
        match out {
            Outcome::Connack { latency_us } => {
                self.ok += 1;
                self.latency.saturating_record(latency_us.max(1));
            }
            Outcome::StallClosed { after_us } => {
                self.error("stall-closed-by-gateway");
                self.stall_close.saturating_record(after_us.max(1));
            }
            Outcome::Error(kind) => self.error(kind),
        }
    }
}
