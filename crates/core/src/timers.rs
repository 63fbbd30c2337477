//! The core's timers, named after the RFC timers they implement, and the
//! timer wheel that holds them.
//!
//! Client transaction (RFC 3261 17.1, handlers in [`crate::client_tx`]):
//! * `Timer::A` / `Timer::E`: retransmit the INVITE (17.1.1.2) /
//!   the non-INVITE request (17.1.2.2) over UDP, doubling from T1 (E capped
//!   at T2 = 4 s).
//! * `Timer::B` / `Timer::F`: no final response within 64*T1: the
//!   transaction ends and the caller gets a 408.
//! * `Timer::C`: RFC 3261 16.6 step 11 / 16.8, the proxy's INVITE timer,
//!   restarted by every provisional response above 100.
//! * `Timer::D`: an INVITE client transaction in Completed keeps its
//!   request to ACK retransmitted final responses; shortened to
//!   [`crate::CoreConfig::wait`] over UDP (0 over TCP).
//! * Timer K (17.1.2.2) and RFC 6026 Timer M are not armed: a non-INVITE
//!   transaction is freed at its final response (a retransmission is then
//!   dropped as stray, the same outcome), and the 2xx retransmissions of an
//!   accepted INVITE are relayed through an Accepted INVITE record
//!   ([`crate::client_tx`]) that lives [`crate::CoreConfig::wait`].
//! * `Timer::CancelWait`: RFC 3261 9.1, an INVITE client transaction
//!   without a final response 64*T1 after its CANCEL is destroyed.
//!
//! Server transaction (RFC 3261 17.2, handlers in [`crate::server_tx`]):
//! * `Timer::G`: retransmit the non-2xx final response to an INVITE over
//!   UDP until the ACK, doubling from T1 up to T2 (17.2.1).
//! * `Timer::H`: 64*T1 waiting for that ACK.
//! * `Timer::I`: Confirmed absorbs ACK retransmissions for T4 (UDP).
//! * `Timer::J`: a non-INVITE transaction in Completed absorbs request
//!   retransmissions; shortened to [`crate::CoreConfig::wait`] like
//!   Kamailio's tm (0 over TCP).
//! * `Timer::L`: RFC 6026 Accepted absorbs INVITE retransmissions after a
//!   2xx; [`crate::CoreConfig::wait`].
//!
//! sipcti's own:
//! * `Timer::CtiWait`: the INVITE held for Zammad's `newCall` answer goes
//!   on unchanged (fail open) after [`crate::CoreConfig::newcall_wait`].
//! * `Timer::RewriteExpire`: a caller-id rewrite outlives its call by
//!   64*T1 for the final 200 to BYE and retransmissions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::{ClientTxId, ServerTxId};

/// A timer of the core; see the module docs for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// RFC 3261 17.1.1.2 Timer A: INVITE request retransmission (UDP).
    A(ClientTxId),
    /// RFC 3261 17.1.1.2 Timer B: INVITE transaction timeout.
    B(ClientTxId),
    /// RFC 3261 16.6 step 11, 16.8: Timer C.
    C(ClientTxId),
    /// RFC 3261 17.1.1.2 Timer D: wait time in Completed.
    D(ClientTxId),
    /// RFC 3261 17.1.2.2 Timer E: non-INVITE request retransmission (UDP).
    E(ClientTxId),
    /// RFC 3261 17.1.2.2 Timer F: non-INVITE transaction timeout.
    F(ClientTxId),
    /// RFC 3261 9.1: 64*T1 after a CANCEL, the INVITE client transaction
    /// is considered cancelled.
    CancelWait(ClientTxId),
    /// RFC 3261 17.2.1 Timer G: response retransmission, with the interval
    /// that led to this firing.
    G(ServerTxId, Duration),
    /// RFC 3261 17.2.1 Timer H: wait time for the ACK.
    H(ServerTxId),
    /// RFC 3261 17.2.1 Timer I: wait time for ACK retransmissions.
    I(ServerTxId),
    /// RFC 3261 17.2.2 Timer J: wait time for request retransmissions.
    J(ServerTxId),
    /// RFC 6026 Timer L: wait time in Accepted.
    L(ServerTxId),
    /// The newCall answer deadline of a held INVITE (fail open).
    CtiWait(ServerTxId),
    /// End of a caller-id rewrite, by (Call-ID, phone tag).
    RewriteExpire((String, String)),
}

/// Where a timer sits in the wheel: its deadline and a sequence number
/// (timers due at the same instant fire in the order they were armed).
pub(crate) type TimerKey = (Instant, u64);

/// The keys of one transaction's timers, for [`TimerWheel::cancel`]: the
/// first four inline (a transaction arms two to four, so none allocates),
/// any more (Timer G's doublings) in a vector.
#[derive(Debug, Default)]
pub(crate) struct TimerKeys {
    inline: [Option<TimerKey>; 4],
    more: Vec<TimerKey>,
}

impl TimerKeys {
    /// Remember key `k`.
    pub(crate) fn push(&mut self, k: TimerKey) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(k),
            None => self.more.push(k),
        }
    }
}

impl IntoIterator for TimerKeys {
    type Item = TimerKey;
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::array::IntoIter<Option<TimerKey>, 4>>,
        std::vec::IntoIter<TimerKey>,
    >;

    /// Every key remembered (inline first).
    fn into_iter(self) -> Self::IntoIter {
        self.inline.into_iter().flatten().chain(self.more)
    }
}

/// The armed timers in deadline order. Each transaction remembers the
/// keys of its timers and cancels them when it is removed, so the wheel
/// never outgrows the transaction tables.
#[derive(Default)]
pub(crate) struct TimerWheel {
    timers: BTreeMap<TimerKey, Timer>,
    next_seq: u64,
}

impl TimerWheel {
    /// Arm `t` to fire at `at`; returns its key for [`TimerWheel::cancel`].
    pub(crate) fn arm(&mut self, at: Instant, t: Timer) -> TimerKey {
        self.next_seq += 1;
        let key = (at, self.next_seq);
        self.timers.insert(key, t);
        key
    }

    /// Remove the timers `keys` (those already fired are skipped).
    pub(crate) fn cancel(&mut self, keys: impl IntoIterator<Item = TimerKey>) {
        for k in keys {
            self.timers.remove(&k);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|k| k.0)
    }

    /// Remove and return the earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let entry = self.timers.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    /// Armed timers.
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }
}
