//! Connect rates: a leaky bucket per key, as nginx's `limit_req` keeps one
//! per request key.

/// A rate in thousandths of a CONNECT per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub u64);

impl Rate {
    /// Parses `N r/s` or `N r/m` (`"1r/s"`, `"30r/m"`), as `limit_req_zone`
    /// does; `None` for anything else or a zero rate.
    pub fn parse(text: &[u8]) -> Option<Rate> {
        let (number, per_minute) = if let Some(n) = text.strip_suffix(b"r/s") {
            (n, false)
        } else {
            (text.strip_suffix(b"r/m")?, true)
        };
        let n: u64 = core::str::from_utf8(number).ok()?.parse().ok()?;
        let milli = n.checked_mul(1000)?;
        let milli = if per_minute { milli / 60 } else { milli };
        (milli > 0).then_some(Rate(milli))
    }
}

/// A key's bucket: how far it is over its rate, in thousandths of a
/// CONNECT, as of `last_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RateState {
    pub excess: u64,
    pub last_ms: u64,
}

impl RateState {
    /// Whether a CONNECT at `now_ms` is within `rate` with `burst` CONNECTs
    /// of excess; only an admitted CONNECT fills the bucket, so refused
    /// attempts do not prolong a device's wait. `fresh` is a key the table
    /// has no state for, which is always admitted.
    pub fn admit(&mut self, now_ms: u64, rate: Rate, burst: u32, fresh: bool) -> bool {
        if fresh {
            *self = RateState {
                excess: 0,
                last_ms: now_ms,
            };
            return true;
        }
        let excess = self.after(now_ms, rate, 1000);
        if excess > u64::from(burst) * 1000 {
            return false;
        }
        // Each worker has its own cached clock, which lags while the worker
        // is busy: a time earlier than the last one drains nothing (below)
        // and must not move the bucket back, or the next CONNECT would be
        // credited the same interval again (nginx's limit_req keeps `last`
        // when no time has passed, for the same reason).
        *self = RateState {
            excess,
            last_ms: now_ms.max(self.last_ms),
        };
        true
    }

    /// Whether the bucket has drained enough by `now_ms` for a CONNECT to
    /// be admitted whatever the burst, so that forgetting it (the next
    /// CONNECT is then fresh) changes nothing.
    pub fn idle(&self, now_ms: u64, rate: Rate) -> bool {
        self.after(now_ms, rate, 1000) == 0
    }

    /// The excess at `now_ms` with `added` more, drained at `rate` since
    /// the last admission and never below zero.
    fn after(&self, now_ms: u64, rate: Rate, added: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.excess
            .saturating_add(added)
            .saturating_sub(rate.0.saturating_mul(elapsed) / 1000)
    }
}
