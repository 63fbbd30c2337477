//! What a [`CtiClient`] counts ([`Stats`], [`DroppedStats`]) and what its
//! close left behind ([`CloseReport`]).

use super::*;

/// Dropped-event counters, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DroppedStats {
    /// The queue was full: the events of whole calls dropped to make room or refused
    /// ([`Stats::calls_dropped`]), later events of such calls, and events of calls this
    /// client never saw a `newCall` of that found the queue full.
    pub queue_full: u64,
    /// Still undelivered after `give_up_after`.
    pub gave_up: u64,
    /// Zammad answered a non-retryable status (401, 422, other 4xx, 3xx), or a first
    /// `newCall` attempt was answered "already exists" (duplicate callId).
    pub rejected: u64,
    /// An answer/hangup whose call's newCall had been dropped failed (Zammad cannot know the
    /// call); attempted once, not retried.
    pub orphaned: u64,
    /// Stdout sink only: writing the line failed.
    pub sink_error: u64,
}

impl DroppedStats {
    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.queue_full + self.gave_up + self.rejected + self.orphaned + self.sink_error
    }
}

/// Snapshot of the client's counters (see [`CtiClient::stats`]). Counts are events unless
/// the name says calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events Zammad accepted (2xx), plus retried newCalls answered "already exists", plus
    /// lines written in stdout-sink mode.
    pub delivered: u64,
    /// HTTP attempts after the first (one per retry).
    pub retried: u64,
    /// Events dropped, by reason.
    pub dropped: DroppedStats,
    /// Calls dropped whole because the queue was full (their events are in
    /// `dropped.queue_full`): the oldest not yet sent first, or the new one.
    pub calls_dropped: u64,
    /// `hangup`s that may have reached Zammad without its answer being seen (time-out, lost
    /// connection, 504), on a call where a second `hangup` would flip Zammad's missed flag:
    /// not sent again, counted here and logged with their callId.
    pub hangups_unconfirmed: u64,
    /// [`CtiClient::new_call`] calls that did not return `Answered` (timed out, failed,
    /// dropped): the proxy went on without Zammad's decision.
    pub fail_open: u64,
    /// Retried newCalls answered 500 "already exists", counted as delivered.
    pub already_exists_as_delivered: u64,
    /// Events queued or in flight right now.
    pub queued: usize,
    /// Calls whose `newCall` was admitted and whose `hangup` was not submitted yet.
    pub open_calls: usize,
    /// Events loaded from the outbox at start, to deliver.
    pub recovered_events: u64,
    /// Calls found open in the outbox at start (a `newCall` without its `hangup`).
    pub recovered_open_calls: u64,
    /// Recovered open calls closed with a `hangup` after `open_call_timeout`.
    pub open_calls_closed: u64,
    /// Outbox changes never written (the writer's queue was full, or a commit failed for
    /// good): the events are still delivered, but were not durable.
    pub outbox_lost: u64,
    /// Outbox commits that failed (each retried).
    pub outbox_failed_commits: u64,
    /// Outbox commits made (group commits: each holds many changes under load).
    pub outbox_commits: u64,
    /// How long the oldest event not yet delivered has waited (zero when
    /// nothing waits): with an outbox, the age of the outbox's backlog.
    pub oldest_queued_age: Duration,
}

/// What [`CtiClient::close`] left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReport {
    /// Events not delivered (they stay in the outbox, if there is one).
    pub events_left: usize,
    /// Calls those events belong to.
    pub calls_left: usize,
    /// Nothing is lost: no event is left, or every event left is committed to the outbox.
    pub durable: bool,
}
