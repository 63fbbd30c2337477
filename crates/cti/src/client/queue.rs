//! The client's queue state (behind `Shared`'s one mutex): each call's FIFO of pending
//! events, the line of calls ready to send (urgent newCalls first), the lanes parked for
//! work, and the bookkeeping that lets the queue drop whole calls when it is full
//! without ever dropping an event that may have reached Zammad.

use super::*;

/// One queued event with its encoded body and its delivery state.
pub(super) struct Pending {
    /// Sequence number (the outbox row id).
    pub(super) id: u64,
    /// `ev.call_id`, shared.
    pub(super) call: CallId,
    /// The event as submitted.
    pub(super) ev: Event,
    /// The encoded body (`cfg.format`), shared by every attempt without a copy.
    pub(super) body: Bytes,
    /// When it was queued (for `give_up_after`).
    pub(super) enqueued: Instant,
    /// The INVITE waiting for this `newCall`'s answer, if any.
    pub(super) waiter: Option<oneshot::Sender<NewCallOutcome>>,
    /// HTTP attempts so far.
    pub(super) attempts: u32,
    /// Delay before the next retry.
    pub(super) backoff: Duration,
    /// The last attempt's error text (no URL), for the drop reason.
    pub(super) last_error: Cow<'static, str>,
    /// An earlier attempt (maybe in an earlier run) may have reached Zammad.
    pub(super) maybe_sent: bool,
    /// A `hangup` whose second copy would flip Zammad's missed flag (inbound, not
    /// answered, not forwarded): never sent again after an attempt that may have arrived.
    pub(super) dup_harmful: bool,
}

/// Where a call with queued events stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sched {
    /// In `urgent` or `ready`, waiting for a delivery slot.
    Ready,
    /// Its head event is being attempted (taken out of `events`).
    InFlight,
    /// Its head event waits for its retry backoff, holding no slot.
    Sleeping,
}

/// The queued events of one call.
pub(super) struct CallQ {
    /// The callId (the map's key), shared.
    pub(super) id: CallId,
    pub(super) events: VecDeque<Pending>,
    pub(super) sched: Sched,
    /// Tells this queue from a later one of the same callId (after a drop).
    pub(super) gen: u64,
}

/// Insertion-ordered set with a size cap (oldest evicted).
pub(super) struct BoundedSet {
    pub(super) cap: usize,
    pub(super) set: HashSet<String>,
    pub(super) order: VecDeque<String>,
}

impl BoundedSet {
    pub(super) fn new(cap: usize) -> BoundedSet {
        BoundedSet {
            cap,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }
    pub(super) fn insert(&mut self, s: &str) {
        if self.set.contains(s) {
            return;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(s.to_string());
        self.order.push_back(s.to_string());
    }
    pub(super) fn contains(&self, s: &str) -> bool {
        self.set.contains(s)
    }
}

/// Everything the delivery lanes, `enqueue` and `finish` share, under one lock.
pub(super) struct State {
    /// Per-call FIFO of calls with queued events.
    pub(super) calls: HashMap<CallId, CallQ>,
    /// Calls whose head event may be sent now, oldest first (stale ids are skipped).
    pub(super) ready: VecDeque<CallId>,
    /// Calls whose head event is a first-attempt `newCall` an INVITE waits for: they go
    /// before other calls' backlog.
    pub(super) urgent: VecDeque<CallId>,
    /// Events queued, in flight or sleeping.
    pub(super) queued: usize,
    /// Attempts running now.
    pub(super) in_flight: usize,
    /// General delivery lanes parked, waiting for work (see [`State::claim_lane`]).
    pub(super) idle_lanes: usize,
    /// newCall-only delivery lanes parked.
    pub(super) idle_reserve: usize,
    /// CallIds whose newCall was dropped.
    pub(super) lost_newcalls: BoundedSet,
    /// CallIds of calls dropped whole because the queue was full.
    pub(super) dropped_calls: BoundedSet,
    /// Calls whose newCall was admitted and whose hangup is not submitted yet, with
    /// whether an answer was submitted: each has room reserved for its answer and hangup.
    pub(super) open: HashMap<CallId, bool>,
    /// Queued newCalls no attempt of which may have reached Zammad (id -> callId): the
    /// calls that can still be dropped whole, oldest first.
    pub(super) unsent_newcalls: BTreeMap<u64, CallId>,
    /// Calls open at the last stop, not hung up since.
    pub(super) recovered: HashMap<String, Recovered>,
    pub(super) next_id: u64,
    pub(super) next_gen: u64,
    /// Every `CtiClient` handle is gone: the worker stops once the queue is empty.
    pub(super) closed: bool,
    /// [`CtiClient::close`] runs: no new attempt starts.
    pub(super) stopping: bool,
}

impl State {
    pub(super) fn new(next_id: u64) -> State {
        State {
            calls: HashMap::new(),
            ready: VecDeque::new(),
            urgent: VecDeque::new(),
            queued: 0,
            in_flight: 0,
            idle_lanes: 0,
            idle_reserve: 0,
            lost_newcalls: BoundedSet::new(LOST_NEWCALL_MEMORY),
            dropped_calls: BoundedSet::new(DROPPED_CALL_MEMORY),
            open: HashMap::new(),
            unsent_newcalls: BTreeMap::new(),
            recovered: HashMap::new(),
            next_id,
            next_gen: 0,
            closed: false,
            stopping: false,
        }
    }

    /// Put the call `id` back in line for its head event, or forget it if it has none.
    pub(super) fn schedule(&mut self, id: &str) {
        let Some(q) = self.calls.get_mut(id) else {
            return;
        };
        match q.events.front() {
            None => {
                self.calls.remove(id);
            }
            Some(p) => {
                q.sched = Sched::Ready;
                if p.ev.event == EventKind::NewCall && p.waiter.is_some() && p.attempts == 0 {
                    self.urgent.push_back(q.id.clone());
                } else {
                    self.ready.push_back(q.id.clone());
                }
            }
        }
    }

    /// Take the next call whose head event may be sent now and mark it in flight: a
    /// first-attempt `newCall` an INVITE waits for first, then (not on a newCall-only
    /// lane, `reserve`) the other calls in line. None while [`CtiClient::close`] runs.
    pub(super) fn pick(&mut self, reserve: bool) -> Option<CallId> {
        if self.stopping {
            return None;
        }
        loop {
            let id = match self.urgent.pop_front() {
                Some(id) => id,
                None if reserve => return None,
                None => self.ready.pop_front()?,
            };
            // ids of calls dropped, or already picked, are stale
            if let Some(q) = self.calls.get_mut(&id) {
                if q.sched == Sched::Ready {
                    q.sched = Sched::InFlight;
                    self.in_flight += 1;
                    return Some(id);
                }
            }
        }
    }

    /// Take the head event of the call `id` just picked, with whether it is an orphan
    /// (an `answer`/`hangup` of a call whose newCall was dropped): one lock for both.
    pub(super) fn take_head(&mut self, id: &str) -> Option<(Pending, bool)> {
        let p = self.calls.get_mut(id)?.events.pop_front()?;
        let orphan = p.ev.event != EventKind::NewCall && self.lost_newcalls.contains(&p.ev.call_id);
        Some((p, orphan))
    }

    /// If a call waits in line and a parked lane can take it, take that lane off the idle
    /// count and say which kind to wake (a general lane first; a newCall-only lane for an
    /// urgent newCall when no general lane is idle). The caller wakes it after unlocking.
    pub(super) fn claim_lane(&mut self) -> Option<Lane> {
        if self.stopping {
            return None;
        }
        let urgent = !self.urgent.is_empty();
        if (urgent || !self.ready.is_empty()) && self.idle_lanes > 0 {
            self.idle_lanes -= 1;
            Some(Lane::General)
        } else if urgent && self.idle_reserve > 0 {
            self.idle_reserve -= 1;
            Some(Lane::NewCall)
        } else {
            None
        }
    }

    /// Append `p` to its call's queue (a new queue goes in line).
    pub(super) fn push(&mut self, p: Pending) {
        let call = p.call.clone();
        self.queued += 1;
        match self.calls.get_mut(&*call) {
            Some(q) => q.events.push_back(p),
            None => {
                self.next_gen += 1;
                self.calls.insert(
                    call.clone(),
                    CallQ {
                        id: call.clone(),
                        events: VecDeque::from([p]),
                        sched: Sched::Ready,
                        gen: self.next_gen,
                    },
                );
                self.schedule(&call);
            }
        }
    }

    /// Drop the oldest call none of whose events may have reached Zammad (its newCall
    /// still queued, never attempted with an unclear outcome, not in flight), whole; never
    /// `except`. Returns its callId and events.
    pub(super) fn evict_oldest(&mut self, except: &str) -> Option<(CallId, Vec<Pending>)> {
        let mut stale = Vec::new();
        let mut found = None;
        for (&id, call) in self.unsent_newcalls.iter().take(EVICTION_SCAN) {
            if &**call == except {
                continue;
            }
            match self.calls.get(&**call) {
                Some(q) if q.sched == Sched::InFlight => continue,
                Some(q)
                    if q.events
                        .front()
                        .is_some_and(|p| p.id == id && !p.maybe_sent) =>
                {
                    found = Some((id, call.clone()));
                    break;
                }
                _ => stale.push(id),
            }
        }
        for id in stale {
            self.unsent_newcalls.remove(&id);
        }
        let (id, call) = found?;
        self.unsent_newcalls.remove(&id);
        let q = self.calls.remove(&*call)?;
        self.queued = self.queued.saturating_sub(q.events.len());
        self.open.remove(&*call);
        self.recovered.remove(&*call);
        self.dropped_calls.insert(&call);
        Some((call, q.events.into()))
    }
}
