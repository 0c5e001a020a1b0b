#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;

use super::conn::{Admission, ConnState, Holder, Mailbox, MAILBOX_SIZE, TRACKED};
use super::rate::{Rate, RateState};
use super::table::{entry, find, Claim, KeyHash, Slot, WAYS};

const SECRET: [u64; 2] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];

#[test]
fn rates_parse_as_limit_req_zone_does() {
    assert_eq!(Rate::parse(b"1r/s"), Some(Rate(1000)));
    assert_eq!(Rate::parse(b"20r/s"), Some(Rate(20_000)));
    assert_eq!(Rate::parse(b"30r/m"), Some(Rate(500)));
    for bad in [&b"0r/s"[..], b"r/s", b"1r/h", b"-1r/s", b"1", b"", b"1 r/s"] {
        assert_eq!(Rate::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

/// A device that reconnects as fast as it can gets `burst + 1` CONNECTs at
/// once and then one per 1/rate, as nginx's `limit_req` with `burst` and
/// `nodelay` admits requests.
#[test]
fn leaky_bucket_admits_burst_then_rate() {
    let rate = Rate(1000);
    let mut state = RateState::default();
    let mut admitted = Vec::new();
    // 20 attempts a second for 10 s.
    for i in 0..200u64 {
        let now = 1_000_000 + i * 50;
        if state.admit(now, rate, 3, i == 0) {
            admitted.push(now - 1_000_000);
        }
    }
    assert_eq!(&admitted[..4], [0, 50, 100, 150]);
    // From then on one a second: 10 s of rate after the burst.
    assert_eq!(admitted.len(), 4 + 9, "{admitted:?}");
    for pair in admitted[4..].windows(2) {
        assert_eq!(pair[1] - pair[0], 1000);
    }
}

/// A CONNECT stamped earlier than the last admitted one (another worker's
/// clock was ahead) drains nothing and does not move the bucket's time
/// back, so the next CONNECT is not credited the same time again.
#[test]
fn an_earlier_clock_does_not_move_the_bucket_back() {
    let rate = Rate(1000);
    let mut state = RateState::default();
    assert!(state.admit(10_000, rate, 1, true));
    assert!(state.admit(9_000, rate, 1, false));
    assert_eq!(state.last_ms, 10_000);
    assert!(!state.admit(10_001, rate, 1, false));
    assert!(state.admit(11_000, rate, 1, false));
}

#[test]
fn refused_attempts_do_not_fill_the_bucket() {
    let rate = Rate(1000);
    let mut state = RateState::default();
    assert!(state.admit(0, rate, 0, true));
    assert!(!state.admit(10, rate, 0, false));
    assert!(!state.admit(999, rate, 0, false));
    assert!(state.admit(1000, rate, 0, false));
    // Until a CONNECT would pass with no burst, the state matters.
    assert!(!state.idle(1999, rate));
    assert!(state.idle(2000, rate));
    assert!(state.admit(2000, rate, 1, false));
    assert!(state.admit(2000, rate, 1, false));
    assert!(!state.idle(3999, rate));
    assert!(state.idle(4000, rate));
}

proptest! {
    /// Forgetting an idle bucket never admits a CONNECT the bucket would
    /// have refused.
    #[test]
    fn idle_buckets_can_be_forgotten(
        gaps in proptest::collection::vec(0u64..3000, 1..50),
        per_sec in 1u64..5,
        burst in 0u32..4,
    ) {
        let rate = Rate(per_sec * 1000);
        let mut state = RateState::default();
        let mut now = 0u64;
        for (i, gap) in gaps.iter().enumerate() {
            now += gap;
            let idle = i > 0 && state.idle(now, rate);
            let mut copy = state;
            let admitted = state.admit(now, rate, burst, i == 0);
            if idle {
                prop_assert!(admitted);
                prop_assert!(copy.admit(now, rate, 0, false));
            }
        }
    }
}

/// The true times at which a key is admitted, for attempts `gap` ms after
/// the one before, each stamped `lag` ms behind the true time.
fn admitted(attempts: &[(u64, u64)], per_sec: u64, burst: u32) -> Vec<u64> {
    let rate = Rate(per_sec * 1000);
    let mut state = RateState::default();
    let mut now = 5_000u64;
    let mut times = Vec::new();
    for (i, &(gap, lag)) in attempts.iter().enumerate() {
        now += gap;
        if state.admit(now - lag, rate, burst, i == 0) {
            times.push(now);
        }
    }
    times
}

/// Whether every window of `times` holds at most burst + 1 + rate ×
/// (window + slack) admissions.
fn within_rate(times: &[u64], per_sec: u64, burst: u32, slack_ms: u64) -> Result<(), String> {
    for (i, start) in times.iter().enumerate() {
        for (j, end) in times.iter().enumerate().skip(i) {
            let bound = u64::from(burst) + 1 + per_sec * (end - start + slack_ms) / 1000;
            if (j - i + 1) as u64 > bound {
                return Err(format!("{} in {} ms", j - i + 1, end - start));
            }
        }
    }
    Ok(())
}

proptest! {
    /// Over any window, a key is admitted at most burst + 1 + rate × window
    /// times, whatever the pattern of attempts.
    #[test]
    fn admissions_stay_within_rate_and_burst(
        gaps in proptest::collection::vec(0u64..400, 1..400),
        per_sec in 1u64..50,
        burst in 0u32..10,
    ) {
        let attempts: Vec<_> = gaps.into_iter().map(|gap| (gap, 0)).collect();
        let times = admitted(&attempts, per_sec, burst);
        prop_assert_eq!(within_rate(&times, per_sec, burst, 0), Ok(()));
    }

    /// Workers read the clock nginx caches for each of them, which lags
    /// behind while a worker is busy: one worker's CONNECT may carry an
    /// earlier time than the one before it from another. Within any window
    /// of true time, a key still gets at most burst + 1 + rate × (window +
    /// the largest lag): no drain is credited twice.
    #[test]
    fn lagging_worker_clocks_drain_the_bucket_once(
        attempts in proptest::collection::vec((0u64..400, 0u64..500), 1..400),
        per_sec in 1u64..50,
        burst in 0u32..10,
    ) {
        let times = admitted(&attempts, per_sec, burst);
        prop_assert_eq!(within_rate(&times, per_sec, burst, 500), Ok(()));
    }
}

#[test]
fn hashes_are_keyed() {
    let a = KeyHash::of(SECRET, b"thing001");
    assert_eq!(a, KeyHash::of(SECRET, b"thing001"));
    assert_ne!(a, KeyHash::of(SECRET, b"thing002"));
    assert_ne!(a, KeyHash::of([1, 2], b"thing001"));
    assert_ne!(KeyHash::of(SECRET, b""), KeyHash::EMPTY);
}

fn table(buckets: usize) -> Vec<Slot<u32>> {
    vec![Slot::default(); buckets * WAYS]
}

/// Keys that land in one bucket of a one-bucket table: all of them.
#[test]
fn full_bucket_evicts_idle_then_least_recently_used() {
    let mut slots = table(1);
    let keys: Vec<KeyHash> = (1..WAYS as u64 + 3).map(KeyHash).collect();
    for (t, key) in keys.iter().take(WAYS).enumerate() {
        let (slot, claim) = entry(&mut slots, *key, t as u64, |_| false).unwrap();
        assert_eq!(claim, Claim::Fresh);
        slot.payload = 1;
    }
    // Touch the oldest, so the second oldest is the least recently used.
    assert_eq!(
        entry(&mut slots, keys[0], 100, |_| false).unwrap().1,
        Claim::Found
    );
    let (slot, claim) = entry(&mut slots, keys[WAYS], 101, |_| false).unwrap();
    assert_eq!((claim, slot.payload), (Claim::Evicted, 0));
    assert!(find(&mut slots, keys[1]).is_none());
    assert!(find(&mut slots, keys[0]).is_some());
    // An idle slot goes before any live one, however recent.
    find(&mut slots, keys[5]).unwrap().payload = 0;
    let (_, claim) = entry(&mut slots, keys[WAYS + 1], 102, |s| s.payload == 0).unwrap();
    assert_eq!(claim, Claim::Fresh);
    assert!(find(&mut slots, keys[5]).is_none());
}

#[test]
fn table_smaller_than_a_bucket_has_no_entries() {
    let mut slots = vec![Slot::<u32>::default(); WAYS - 1];
    assert!(entry(&mut slots, KeyHash(1), 0, |_| true).is_none());
}

proptest! {
    /// Whatever the keys, a key's state is found again until its bucket has
    /// taken WAYS newer keys; the table never loses more than that.
    #[test]
    fn recent_keys_survive(keys in proptest::collection::vec(any::<u64>(), 1..500)) {
        let mut slots = table(16);
        for (t, k) in keys.iter().enumerate() {
            let key = KeyHash::of(SECRET, &k.to_le_bytes());
            let (slot, _) = entry(&mut slots, key, t as u64, |_| false).unwrap();
            slot.payload = *k as u32 | 1;
        }
        let last = KeyHash::of(SECRET, &keys[keys.len() - 1].to_le_bytes());
        prop_assert_eq!(find(&mut slots, last).unwrap().payload, keys[keys.len() - 1] as u32 | 1);
    }
}

fn alive(_: i32) -> bool {
    true
}

#[test]
fn limit_refuses_without_takeover() {
    let mut state = ConnState::default();
    let a = Holder::new(1, 100);
    assert_eq!(
        state.admit(a, 1, false, alive),
        Admission::Admitted { tracked: true }
    );
    assert_eq!(
        state.admit(Holder::new(2, 100), 1, false, alive),
        Admission::Refused
    );
    state.release(a, true);
    assert!(state.idle());
    assert_eq!(
        state.admit(Holder::new(3, 101), 1, false, alive),
        Admission::Admitted { tracked: true }
    );
}

#[test]
fn takeover_closes_the_oldest_and_counts_once() {
    let mut state = ConnState::default();
    let (a, b, c) = (
        Holder::new(1, 100),
        Holder::new(2, 101),
        Holder::new(3, 100),
    );
    assert!(matches!(
        state.admit(a, 2, true, alive),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        state.admit(b, 2, true, alive),
        Admission::Admitted { .. }
    ));
    assert_eq!(
        state.admit(c, 2, true, alive),
        Admission::TakeOver { victim: a }
    );
    assert_eq!(state.count, 2);
    // The victim's own end does not count twice.
    state.release(a, true);
    assert_eq!(state.count, 2);
    assert_eq!(
        state.admit(Holder::new(4, 101), 2, true, alive),
        Admission::TakeOver { victim: b }
    );
    state.release(c, true);
    state.release(Holder::new(4, 101), true);
    state.release(b, true);
    assert!(state.idle());
}

#[test]
fn sessions_of_dead_workers_stop_counting() {
    let mut state = ConnState::default();
    assert!(matches!(
        state.admit(Holder::new(1, 100), 1, false, alive),
        Admission::Admitted { .. }
    ));
    let admission = state.admit(Holder::new(2, 101), 1, false, |pid| pid != 100);
    assert_eq!(admission, Admission::Admitted { tracked: true });
    assert_eq!(state.count, 1);
}

#[test]
fn sessions_beyond_the_tracked_ones_are_counted_untracked() {
    let mut state = ConnState::default();
    let n = TRACKED as u64 + 2;
    let mut admitted = Vec::new();
    for i in 0..n {
        match state.admit(Holder::new(i, 100), 10, false, alive) {
            Admission::Admitted { tracked } => admitted.push((Holder::new(i, 100), tracked)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted.iter().filter(|(_, t)| *t).count(), TRACKED);
    for (h, tracked) in admitted {
        state.release(h, tracked);
    }
    assert!(state.idle());
}

#[test]
fn mailbox_hands_each_worker_its_own() {
    let mut mailbox = Mailbox::default();
    assert!(mailbox.post(Holder::new(7, 100), alive));
    assert!(mailbox.post(Holder::new(8, 101), alive));
    assert!(mailbox.post(Holder::new(9, 100), alive));
    assert_eq!(mailbox.take(100, alive), [7, 9]);
    assert_eq!(mailbox.take(100, alive), Vec::<u64>::new());
    // Mail for a worker that is gone is dropped by whoever looks.
    assert_eq!(mailbox.take(102, |pid| pid != 101), Vec::<u64>::new());
    assert_eq!(mailbox.len, 0);
    for i in 0..MAILBOX_SIZE as u64 {
        assert!(mailbox.post(Holder::new(i, 100), alive));
    }
    assert!(!mailbox.post(Holder::new(99, 100), alive));
    assert!(mailbox.post(Holder::new(99, 100), |pid| pid != 100));
}
