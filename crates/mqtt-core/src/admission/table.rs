//! A set-associative table of fixed-size slots: a key's hash picks a bucket
//! of [`WAYS`] slots, and a full bucket gives up its least recently used
//! slot, preferring one whose state no longer matters (an idle slot).

use core::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Slots per bucket.
pub const WAYS: usize = 8;

/// A key's keyed 64-bit hash (SipHash-1-3): what the table stores instead
/// of the key. Without the secret a device cannot aim at another's slot;
/// by chance, two of a zone's 300,000 keys share a hash with a probability
/// of about 2 in 10⁹.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KeyHash(pub u64);

impl KeyHash {
    /// The hash of an empty slot, which no key has.
    pub const EMPTY: KeyHash = KeyHash(0);

    /// The hash of `key` under the table's `secret`.
    pub fn of(secret: [u64; 2], key: &[u8]) -> KeyHash {
        let mut h = SipHasher13::new_with_keys(secret[0], secret[1]);
        h.write(key);
        match h.finish() {
            0 => KeyHash(1),
            hash => KeyHash(hash),
        }
    }
}

/// One slot: whose it is, when it was last used, and its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Slot<P> {
    pub key: KeyHash,
    /// Milliseconds on the monotonic clock all workers share.
    pub used_ms: u64,
    pub payload: P,
}

/// How [`entry`] came by its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key had a slot.
    Found,
    /// An empty or idle slot was given to the key.
    Fresh,
    /// The bucket was full of live state: its least recently used slot was
    /// taken from another key, whose state is lost.
    Evicted,
}

/// The bucket of `key`: [`WAYS`] slots, or none if the table is smaller
/// than one bucket.
fn bucket<P>(slots: &mut [Slot<P>], key: KeyHash) -> &mut [Slot<P>] {
    let buckets = slots.len() / WAYS;
    if buckets == 0 {
        return &mut [];
    }
    let first = (key.0 % buckets as u64) as usize * WAYS;
    slots.get_mut(first..first + WAYS).unwrap_or_default()
}

/// The slot of `key`, if it has one.
pub fn find<P>(slots: &mut [Slot<P>], key: KeyHash) -> Option<&mut Slot<P>> {
    bucket(slots, key).iter_mut().find(|slot| slot.key == key)
}

/// The slot of `key`, found or claimed, marked used at `now_ms`. A claimed
/// slot starts with `P::default()`: an empty one if the bucket has one,
/// else the least recently used of those whose state `idle` says can be
/// dropped without changing any decision, else the least recently used.
/// `None` only for a table smaller than one bucket.
pub fn entry<P: Default>(
    slots: &mut [Slot<P>],
    key: KeyHash,
    now_ms: u64,
    idle: impl Fn(&Slot<P>) -> bool,
) -> Option<(&mut Slot<P>, Claim)> {
    let bucket = bucket(slots, key);
    // A slot is never emptied again, and a key takes the first empty slot:
    // the used slots of a bucket come before its empty ones, so the search
    // ends at the first empty slot.
    let mut empty = None;
    let mut found = None;
    for (i, slot) in bucket.iter().enumerate() {
        if slot.key == key {
            found = Some(i);
            break;
        }
        if slot.key == KeyHash::EMPTY {
            empty = Some(i);
            break;
        }
    }
    let index = match (found, empty) {
        (Some(i), _) => Some((i, Claim::Found)),
        (None, Some(i)) => Some((i, Claim::Fresh)),
        (None, None) => bucket
            .iter()
            .enumerate()
            .filter(|(_, slot)| idle(slot))
            .min_by_key(|(_, slot)| slot.used_ms)
            .map(|(i, _)| (i, Claim::Fresh))
            .or_else(|| {
                bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, slot)| slot.used_ms)
                    .map(|(i, _)| (i, Claim::Evicted))
            }),
    };
    let (i, claim) = index?;
    let slot = bucket.get_mut(i)?;
    if claim != Claim::Found {
        *slot = Slot {
            key,
            used_ms: now_ms,
            payload: P::default(),
        };
    }
    slot.used_ms = now_ms;
    Some((slot, claim))
}
