//! What the gateway decided, counted per server: the counters one counted
//! server keeps ([`ServerCounters`], atomics that every worker process of
//! nginx updates in shared memory), and their Prometheus text exposition
//! ([`render`]).
//!
//! A record is only atomics, so all-zero bytes are a valid, empty record:
//! the glue places records in zeroed shared memory and never moves them.
//! Updates are `Relaxed`: each counter is exact on its own; a scrape that
//! races with a decision may see the decision counted in one series and not
//! yet in the next.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::packet::ProtocolLevel;
use crate::policy::RejectReason;

/// The `version` label: the protocol level of the CONNECT, or `unknown`
/// when the parser stopped before it read one.
pub const VERSIONS: [&str; 4] = ["unknown", "3.1", "3.1.1", "5.0"];

/// The `outcome` label: `accepted`, `proxied_unparsed` (not a valid
/// CONNECT, proxied under `mqtt_reject_malformed off`), then every
/// `$mqtt_reject_reason` token.
pub const OUTCOMES: [&str; 16] = [
    "accepted",
    "proxied_unparsed",
    "malformed",
    "too_large",
    "unsupported_version",
    "client_id_rejected",
    "incomplete",
    "no_certificate",
    "unverified_certificate",
    "unreadable_certificate",
    "several_common_names",
    "empty_client_id",
    "client_id_mismatch",
    "rewrite_failed",
    "rate_limited",
    "session_limit",
];

/// Index of `accepted` in [`OUTCOMES`].
pub const ACCEPTED: usize = 0;
/// Index of `proxied_unparsed` in [`OUTCOMES`].
pub const PROXIED_UNPARSED: usize = 1;

/// The index of a version in [`VERSIONS`].
pub const fn version_index(level: Option<ProtocolLevel>) -> usize {
    match level {
        None => 0,
        Some(ProtocolLevel::V31) => 1,
        Some(ProtocolLevel::V311) => 2,
        Some(ProtocolLevel::V5) => 3,
    }
}

/// The index in [`OUTCOMES`] of a refusal, whose label is its token.
pub const fn outcome_index(reason: RejectReason) -> usize {
    use crate::packet::InvalidReason as I;
    match reason {
        RejectReason::Invalid(I::TooLarge) | RejectReason::RewriteTooLarge => 3,
        RejectReason::Invalid(I::UnsupportedProtocolLevel) => 4,
        RejectReason::Invalid(I::EmptyClientId | I::EmptyClientIdWithoutCleanSession) => 5,
        RejectReason::Invalid(_) => 2,
        RejectReason::Incomplete => 6,
        RejectReason::NoCertificate => 7,
        RejectReason::UnverifiedCertificate => 8,
        RejectReason::UnreadableCertificate => 9,
        RejectReason::SeveralCommonNames => 10,
        RejectReason::EmptyClientId => 11,
        RejectReason::ClientIdMismatch => 12,
        RejectReason::RewriteFailed(_) => 13,
        RejectReason::RateLimited => 14,
        RejectReason::SessionLimit => 15,
    }
}

/// Upper bounds of the connect duration buckets, in milliseconds (the
/// resolution of nginx's clock), and the same in seconds for the `le` label.
pub const DURATION_BOUNDS_MS: [u64; 12] =
    [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const DURATION_LE: [&str; 12] = [
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];

/// Upper bounds of the CONNECT size buckets, in bytes.
pub const SIZE_BOUNDS: [u64; 11] = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536];
const SIZE_LE: [&str; 11] = [
    "16", "32", "64", "128", "256", "512", "1024", "2048", "4096", "16384", "65536",
];

const CONNECT_SERIES: usize = VERSIONS.len() * OUTCOMES.len();

/// A histogram of `N - 1` bounded buckets and the `+Inf` one. Buckets hold
/// what fell in them alone; [`HistogramSnapshot`] makes them cumulative.
#[repr(C)]
pub struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new() -> Self {
        Histogram {
            buckets: core::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts `value` in the first bucket whose bound it does not exceed.
    fn observe(&self, bounds: &[u64], value: u64) {
        let bucket = bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(bounds.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Relaxed);
        }
        self.sum.fetch_add(value, Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot<N> {
        let mut cumulative = [0u64; N];
        let mut total = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            total = total.wrapping_add(b.load(Relaxed));
            *c = total;
        }
        HistogramSnapshot {
            cumulative,
            sum: self.sum.load(Relaxed),
        }
    }
}

/// One counted server's record.
#[repr(C)]
pub struct ServerCounters {
    /// By `version_index * OUTCOMES.len() + outcome`.
    connects: [AtomicU64; CONNECT_SERIES],
    /// Accepted sessions still open; incremented and decremented with
    /// wrapping arithmetic, read as signed.
    sessions: AtomicU64,
    takeovers: AtomicU64,
    duration_ms: Histogram<{ DURATION_BOUNDS_MS.len() + 1 }>,
    size_bytes: Histogram<{ SIZE_BOUNDS.len() + 1 }>,
}

impl Default for ServerCounters {
    fn default() -> Self {
        ServerCounters {
            connects: core::array::from_fn(|_| AtomicU64::new(0)),
            sessions: AtomicU64::new(0),
            takeovers: AtomicU64::new(0),
            duration_ms: Histogram::new(),
            size_bytes: Histogram::new(),
        }
    }
}

impl ServerCounters {
    /// Counts a decided CONNECT: its version and outcome, the milliseconds
    /// from accept to decision, and the packet's size when it parsed. An
    /// accepted one opens a session ([`session_closed`] ends it).
    ///
    /// [`session_closed`]: ServerCounters::session_closed
    pub fn count_decision(
        &self,
        level: Option<ProtocolLevel>,
        outcome: usize,
        duration_ms: u64,
        size: Option<usize>,
    ) {
        let series = version_index(level) * OUTCOMES.len() + outcome;
        if let Some(c) = self.connects.get(series) {
            c.fetch_add(1, Relaxed);
        }
        self.duration_ms.observe(&DURATION_BOUNDS_MS, duration_ms);
        if let Some(size) = size {
            self.size_bytes.observe(&SIZE_BOUNDS, size as u64);
        }
        if outcome == ACCEPTED {
            self.sessions.fetch_add(1, Relaxed);
        }
    }

    /// An accepted session has ended.
    pub fn session_closed(&self) {
        self.sessions.fetch_sub(1, Relaxed);
    }

    /// A new session of a device took over the live session of the same
    /// device (admission control).
    pub fn count_takeover(&self) {
        self.takeovers.fetch_add(1, Relaxed);
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> Snapshot {
        let mut connects = [0u64; CONNECT_SERIES];
        for (c, a) in connects.iter_mut().zip(&self.connects) {
            *c = a.load(Relaxed);
        }
        Snapshot {
            connects,
            sessions: self.sessions.load(Relaxed) as i64,
            takeovers: self.takeovers.load(Relaxed),
            duration_ms: self.duration_ms.snapshot(),
            size_bytes: self.size_bytes.snapshot(),
        }
    }
}

/// A histogram read at one moment: cumulative bucket counts (the last is
/// `+Inf`, the count) and the sum of the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot<const N: usize> {
    pub cumulative: [u64; N],
    pub sum: u64,
}

impl<const N: usize> HistogramSnapshot<N> {
    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

/// A record read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    connects: [u64; CONNECT_SERIES],
    pub sessions: i64,
    pub takeovers: u64,
    pub duration_ms: HistogramSnapshot<{ DURATION_BOUNDS_MS.len() + 1 }>,
    pub size_bytes: HistogramSnapshot<{ SIZE_BOUNDS.len() + 1 }>,
}

impl Snapshot {
    /// The CONNECTs of version `version` (a [`VERSIONS`] label) with
    /// `outcome` (an [`OUTCOMES`] label); 0 for an unknown label.
    pub fn connects(&self, version: &str, outcome: &str) -> u64 {
        let v = VERSIONS.iter().position(|&l| l == version);
        let o = OUTCOMES.iter().position(|&l| l == outcome);
        match (v, o) {
            (Some(v), Some(o)) => self
                .connects
                .get(v * OUTCOMES.len() + o)
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Appends the metrics of `servers` (name, counters) to `out` in the
/// Prometheus text exposition format 0.0.4: each family once, with a
/// sample per server.
pub fn render(servers: &[(&[u8], Snapshot)], out: &mut String) {
    family(
        out,
        "nginx_mqtt_connects_total",
        "counter",
        "CONNECTs decided, by protocol version and outcome.",
    );
    for (name, s) in servers {
        for (v, version) in VERSIONS.iter().enumerate() {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let n = s.connects.get(v * OUTCOMES.len() + o).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "nginx_mqtt_connects_total{{server=\"{}\",version=\"{version}\",outcome=\"{outcome}\"}} {n}",
                    Label(name)
                );
            }
        }
    }
    family(
        out,
        "nginx_mqtt_sessions",
        "gauge",
        "Accepted sessions still open.",
    );
    for (name, s) in servers {
        let _ = writeln!(
            out,
            "nginx_mqtt_sessions{{server=\"{}\"}} {}",
            Label(name),
            s.sessions
        );
    }
    family(
        out,
        "nginx_mqtt_takeovers_total",
        "counter",
        "Live sessions taken over by a new session of the same device.",
    );
    for (name, s) in servers {
        let _ = writeln!(
            out,
            "nginx_mqtt_takeovers_total{{server=\"{}\"}} {}",
            Label(name),
            s.takeovers
        );
    }
    family(
        out,
        "nginx_mqtt_connect_duration_seconds",
        "histogram",
        "Time from accepting the connection (after the TLS handshake) to deciding on its CONNECT.",
    );
    for (name, s) in servers {
        let h = &s.duration_ms;
        let metric = "nginx_mqtt_connect_duration_seconds";
        buckets(out, metric, name, &DURATION_LE, &h.cumulative);
        let _ = writeln!(
            out,
            "{metric}_sum{{server=\"{}\"}} {}.{:03}\n{metric}_count{{server=\"{}\"}} {}",
            Label(name),
            h.sum / 1000,
            h.sum % 1000,
            Label(name),
            h.count()
        );
    }
    family(
        out,
        "nginx_mqtt_connect_size_bytes",
        "histogram",
        "Size of the CONNECT packets that parsed, fixed header included.",
    );
    for (name, s) in servers {
        let h = &s.size_bytes;
        let metric = "nginx_mqtt_connect_size_bytes";
        buckets(out, metric, name, &SIZE_LE, &h.cumulative);
        let _ = writeln!(
            out,
            "{metric}_sum{{server=\"{}\"}} {}\n{metric}_count{{server=\"{}\"}} {}",
            Label(name),
            h.sum,
            Label(name),
            h.count()
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn buckets(out: &mut String, metric: &str, server: &[u8], le: &[&str], cumulative: &[u64]) {
    let les = le.iter().copied().chain(core::iter::once("+Inf"));
    for (le, n) in les.zip(cumulative) {
        let _ = writeln!(
            out,
            "{metric}_bucket{{server=\"{}\",le=\"{le}\"}} {n}",
            Label(server)
        );
    }
}

/// A label value: UTF-8 (invalid bytes as U+FFFD), with `\`, `"` and line
/// feeds escaped as the text format requires.
struct Label<'a>(&'a [u8]);

impl core::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in String::from_utf8_lossy(self.0).chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
