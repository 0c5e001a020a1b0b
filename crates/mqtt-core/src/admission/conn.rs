//! Live sessions per key, and which of them a newcomer takes over.

/// A live session: the connection number nginx gave it (unique across the
/// workers of one master) and the worker process that holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Holder {
    pub conn: u64,
    /// 0 for no session.
    pub pid: i32,
    pub _reserved: u32,
}

impl Holder {
    pub fn new(conn: u64, pid: i32) -> Holder {
        Holder {
            conn,
            pid,
            _reserved: 0,
        }
    }

    fn is_some(&self) -> bool {
        self.pid != 0
    }
}

/// How many sessions a key's slot names, oldest first: the most that
/// `takeover` can choose from, and so the largest limit it allows.
pub const TRACKED: usize = 4;

/// A key's live sessions: how many, and the first [`TRACKED`] of them by
/// age.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ConnState {
    pub count: u32,
    pub _reserved: u32,
    pub holders: [Holder; TRACKED],
}

/// What becomes of a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Counted; `tracked` says whether the slot names it (and so whether it
    /// can be taken over, and how it is released).
    Admitted { tracked: bool },
    /// At the limit.
    Refused,
    /// Counted in place of `victim`, the oldest session, which is to be
    /// closed.
    TakeOver { victim: Holder },
}

impl ConnState {
    /// Admits `me` if the key has fewer than `limit` live sessions, or, with
    /// `takeover`, in place of the oldest. Sessions of processes that are
    /// gone (`alive` says) stop counting first.
    pub fn admit(
        &mut self,
        me: Holder,
        limit: u32,
        takeover: bool,
        alive: impl Fn(i32) -> bool,
    ) -> Admission {
        if self.count >= limit {
            self.forget_dead(alive);
        }
        if self.count < limit {
            self.count += 1;
            return Admission::Admitted {
                tracked: self.track(me),
            };
        }
        if !takeover {
            return Admission::Refused;
        }
        match self.holders.first().copied().filter(Holder::is_some) {
            Some(victim) => {
                // The victim's place is free for the newcomer.
                self.untrack(victim);
                self.track(me);
                Admission::TakeOver { victim }
            }
            None => Admission::Refused,
        }
    }

    /// A session ends. A tracked session that is no longer named was taken
    /// over or found dead, and already stopped counting.
    pub fn release(&mut self, me: Holder, tracked: bool) {
        if !tracked || self.untrack(me) {
            self.count = self.count.saturating_sub(1);
        }
    }

    /// Whether no session counts, so the slot can be forgotten.
    pub fn idle(&self) -> bool {
        self.count == 0
    }

    fn track(&mut self, me: Holder) -> bool {
        match self.holders.iter_mut().find(|h| !h.is_some()) {
            Some(free) => {
                *free = me;
                true
            }
            None => false,
        }
    }

    /// Removes `h` from the named sessions, keeping the rest in age order.
    fn untrack(&mut self, h: Holder) -> bool {
        let Some(i) = self.holders.iter().position(|x| *x == h) else {
            return false;
        };
        if let Some(tail) = self.holders.get_mut(i..) {
            tail.rotate_left(1);
        }
        if let Some(last) = self.holders.last_mut() {
            *last = Holder::default();
        }
        true
    }

    fn forget_dead(&mut self, alive: impl Fn(i32) -> bool) {
        let dead: Vec<Holder> = self
            .holders
            .iter()
            .copied()
            .filter(|h| h.is_some() && !alive(h.pid))
            .collect();
        for h in dead {
            self.untrack(h);
            self.count = self.count.saturating_sub(1);
        }
    }
}

/// Takeovers on their way to the worker that holds the victim: each worker
/// takes its own on a short timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Mailbox {
    pub len: u32,
    pub _reserved: u32,
    pub mail: [Holder; MAILBOX_SIZE],
}

/// Takeovers that can wait at once; more are refused rather than lost.
pub const MAILBOX_SIZE: usize = 64;

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            len: 0,
            _reserved: 0,
            mail: [Holder::default(); MAILBOX_SIZE],
        }
    }
}

impl Mailbox {
    /// Posts a victim; `false` if the box is full of mail for live workers.
    pub fn post(&mut self, victim: Holder, alive: impl Fn(i32) -> bool) -> bool {
        if !self.has_room(alive) {
            return false;
        }
        match self.mail.get_mut(self.len as usize) {
            Some(free) => {
                *free = victim;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Whether a victim can be posted, after dropping mail for workers that
    /// are gone if the box is full.
    pub fn has_room(&mut self, alive: impl Fn(i32) -> bool) -> bool {
        if self.len as usize >= MAILBOX_SIZE {
            self.keep(|h| alive(h.pid));
        }
        (self.len as usize) < MAILBOX_SIZE
    }

    /// Takes the mail for worker `pid`, and drops mail for workers that are
    /// gone.
    pub fn take(&mut self, pid: i32, alive: impl Fn(i32) -> bool) -> Vec<u64> {
        let mine: Vec<u64> = self
            .pending()
            .iter()
            .filter(|h| h.pid == pid)
            .map(|h| h.conn)
            .collect();
        self.keep(|h| h.pid != pid && alive(h.pid));
        mine
    }

    fn pending(&self) -> &[Holder] {
        self.mail.get(..self.len as usize).unwrap_or_default()
    }

    fn keep(&mut self, keep: impl Fn(&Holder) -> bool) {
        let kept: Vec<Holder> = self.pending().iter().copied().filter(|h| keep(h)).collect();
        self.mail = [Holder::default(); MAILBOX_SIZE];
        for (slot, h) in self.mail.iter_mut().zip(&kept) {
            *slot = *h;
        }
        self.len = kept.len() as u32;
    }
}
