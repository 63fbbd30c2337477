//! Sans-IO call tracking: SIP messages in, Zammad Generic CTI call events out.
//!
//! [`CallTracker`] is fed every SIP message that passes the proxy (or that a capture
//! holds), with the [`Side`] it came from and an [`Instant`]; it returns the
//! [`CallEvent`]s (`newCall`, `answer`, `hangup`) to send to Zammad. It does no I/O and
//! never reads the clock: timers are driven by the caller through
//! [`CallTracker::poll_timeout`] / [`CallTracker::handle_timeout`], so the same input
//! (live or a pcap replay) always gives the same events and call ids.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use serde::Serialize;
use sipcti_event::{Cause, Direction, EventKind};

mod adapter;
mod msg;
mod number;
mod routes;
mod tracker;
mod view;

/// The hash map of the internal tables: foldhash, randomly seeded per
/// process and per map (keys such as Call-IDs and branches come from the
/// network, so the seed must not be guessable), several times faster than
/// the standard library's SipHash on short keys.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[cfg(test)]
mod tests;

pub use number::normalize_number;
pub use routes::{
    dialled_number, match_route, InboundRoute, NumberPattern, Phonebook, RouteTarget, MAX_GROUP,
    MAX_PHONEBOOK, MAX_QUEUE_LEN, MAX_ROUTES,
};
pub use tracker::CallTracker;
pub use view::{DialogRef, MsgView, Party};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The phones / PBX networks.
    Inside,
    /// The SIP provider.
    Trunk,
}

impl Side {
    /// The direction of a call whose initial INVITE came from this side: `in` from
    /// the trunk, `out` from the inside.
    pub fn direction(self) -> Direction {
        match self {
            Side::Trunk => Direction::In,
            Side::Inside => Direction::Out,
        }
    }
}

/// Whether `msg` can change any call's events: INVITE, CANCEL and BYE
/// requests, and final responses to INVITE; for transfers (RFC 3515, RFC
/// 3891) also REFER and NOTIFY requests and final responses to REFER.
/// Every other message (ACK, REGISTER, OPTIONS, PRACK, UPDATE, provisional
/// responses, responses to BYE...) can be left out of
/// [`CallTracker::on_message`] without changing the events, as long as
/// [`CallTracker::handle_timeout`] runs the timers. The live proxy and the
/// replay use it to skip half the work.
pub fn affects_calls(msg: &sipcti_wire::SipMessage) -> bool {
    use msg::Method;
    match msg.method() {
        // INVITE, BYE, CANCEL, REFER, NOTIFY (any case)
        Some(m) => Method::of(m) != Method::Other,
        None => {
            msg.status().is_some_and(|s| s >= 200)
                && msg
                    .cseq()
                    .is_some_and(|(_, m)| matches!(Method::of(m), Method::Invite | Method::Refer))
        }
    }
}

/// The hangup cause for a final response status to the call's INVITE.
///
/// 2xx and 1xx give `None`; 3xx `forwarded`; 486, 600 `busy`; 404, 410, 480, 484, 604
/// `notFound`; 408, 603 `noAnswer`; 487 `cancel`; every other 4xx, 5xx and 6xx
/// `congestion`. Values outside 100..=699 give `None`.
pub fn cause_for_status(status: u16) -> Option<Cause> {
    match status {
        300..=399 => Some(Cause::Forwarded),
        486 | 600 => Some(Cause::Busy),
        404 | 410 | 480 | 484 | 604 => Some(Cause::NotFound),
        408 | 603 => Some(Cause::NoAnswer),
        487 => Some(Cause::Cancel),
        400..=699 => Some(Cause::Congestion),
        _ => None,
    }
}

/// One event for Zammad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallEvent {
    /// newCall, answer or hangup.
    pub kind: EventKind,
    /// Zammad `callId` (at most 250 characters).
    pub call_id: String,
    /// Zammad's direction, the same on every event of a call.
    pub direction: Direction,
    /// Caller number (normalised) or `anonymous`.
    pub from: String,
    /// Called number (normalised).
    pub to: String,
    /// newCall: the calling person (out) or the called person (in), from
    /// the phonebook, else the display name; answer (in only): who answered,
    /// from the phonebook by the answering number, else the display name.
    pub user: Option<String>,
    /// newCall of an inbound call to a ring group: every called person, in
    /// the route's order (Zammad's `user` as an array; `user` is then the
    /// first of them). Empty otherwise. Not serialized when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
    /// newCall of an inbound call that matched a route with a `queue`:
    /// Zammad's `queue`. Not serialized when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// answer / hangup of an answered inbound call: who answered (normalised).
    pub answering_number: Option<String>,
    /// hangup only.
    pub cause: Option<Cause>,
    /// When it happened: the message's instant, or the deadline of a timer.
    #[serde(skip)]
    pub at: Instant,
    /// The SIP Call-ID, for logs.
    pub sip_call_id: String,
}

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Country code for national numbers (`0301234` -> `49301234`), e.g. `"49"`.
    pub country_code: Option<String>,
    /// A number of at most this many digits (without `+`, `00` or `0` prefix) is an
    /// internal extension and kept as is. Default 6.
    pub max_internal_len: usize,
    /// An answered call never ended is closed (normalClearing) this long after the answer;
    /// a call ringing this long is closed with noAnswer. Default 4 h. Also how long a
    /// Call-ID is remembered for call-id numbering (`-2`, `-3`) after its calls are freed.
    pub max_call_duration: Duration,
    /// After a 401/407 the call waits this long for the INVITE with credentials. Default 32 s.
    pub challenge_wait: Duration,
    /// An ended call is kept this long to absorb retransmissions; also how long a call
    /// waits for the final answer after a CANCEL. Default 32 s.
    pub linger: Duration,
    /// Most calls tracked (lingering ones included). Default 100 000.
    pub max_calls: usize,
    /// Inbound routes, first match wins (see [`match_route`]): the core
    /// routes calls from the trunk by them, the tracker reports their
    /// `queue` and the target's person as `user`. Default none.
    pub routes: Vec<InboundRoute>,
    /// Number or extension (normalised) -> person, for Zammad's `user`.
    /// Default empty.
    pub phonebook: Phonebook,
}

impl TrackerConfig {
    /// The route an initial request from the trunk takes: the first route
    /// matching its dialled number ([`dialled_number`]); `None` when no route
    /// matches or the message cannot be read (it then goes to `inside.target`).
    pub fn route_for(&self, msg: &sipcti_wire::SipMessage) -> Option<&InboundRoute> {
        if self.routes.is_empty() {
            return None;
        }
        // only the Request-URI and To users are read
        let m = msg::Msg::from_wire(msg).ok()?;
        let dialled = m.dialled_number(self.country_code.as_deref(), self.max_internal_len);
        match_route(&self.routes, &dialled)
    }

    /// Like [`TrackerConfig::route_for`], for a message already reduced to a [`MsgView`].
    pub fn route_for_view(&self, v: &MsgView) -> Option<&InboundRoute> {
        let dialled = dialled_number(v, self.country_code.as_deref(), self.max_internal_len);
        match_route(&self.routes, &dialled)
    }

    /// The person the phonebook names for `number` (normalised), if any.
    pub fn person(&self, number: &str) -> Option<&str> {
        self.phonebook.get(number).map(String::as_str)
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            country_code: None,
            max_internal_len: 6,
            max_call_duration: Duration::from_secs(4 * 3600),
            challenge_wait: Duration::from_secs(32),
            linger: Duration::from_secs(32),
            max_calls: 100_000,
            routes: Vec::new(),
            phonebook: Phonebook::new(),
        }
    }
}

/// An answered call that was open when sipcti last stopped (found in the
/// CTI outbox: its `newCall` and `answer` were sent, its `hangup` not),
/// given back to the tracker with [`CallTracker::restore`] so that its BYE,
/// seen after the restart, produces the `hangup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredCall {
    /// Zammad's `callId` of the call.
    pub call_id: String,
    /// The SIP Call-ID its BYE will carry.
    pub sip_call_id: String,
    /// `in` or `out`.
    pub direction: Direction,
    /// Zammad's `from`.
    pub from: String,
    /// Zammad's `to`.
    pub to: String,
    /// Zammad's `answeringNumber`, if the answer had one.
    pub answering_number: Option<String>,
    /// How long ago its `newCall` was made (its `max_call_duration` runs
    /// from then).
    pub age: std::time::Duration,
}

/// The state of one tracked call, as [`CallTracker::call_info`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallInfo {
    /// Zammad `callId`.
    pub call_id: String,
    /// Zammad's direction of the call.
    pub direction: Direction,
    /// A 2xx was seen.
    pub answered: bool,
    /// The hangup was emitted.
    pub ended: bool,
}

/// Counters, for logs and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackerStats {
    /// Calls not yet hung up.
    pub active_calls: usize,
    /// Calls in the table (active and lingering).
    pub tracked_calls: usize,
    /// Calls that got a newCall.
    pub calls_seen: u64,
    /// New calls not tracked because the table was full.
    pub untracked_table_full: u64,
    /// Retransmitted / duplicated messages that changed nothing.
    pub retransmissions_absorbed: u64,
    /// Messages without the headers needed to place them (no Call-ID, CSeq, From, To).
    pub malformed_ignored: u64,
    /// Requests / responses for calls not tracked.
    pub unknown_call_messages: u64,
    /// Calls closed by a timer (ringing or answered too long, challenge not retried,
    /// CANCEL without final answer).
    pub timed_out: u64,
    /// Lingering calls freed early to make room.
    pub lingering_evicted: u64,
    /// Events emitted.
    pub events_emitted: u64,
    /// Answered calls given back after a restart ([`CallTracker::restore`]).
    pub calls_restored: u64,
}
