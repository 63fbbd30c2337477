//! The CTI client: a bounded, per-call ordered, retrying delivery queue towards Zammad,
//! optionally backed by the durable outbox ([`crate::outbox`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tracing::{debug, info, warn};

use sipcti_event::{Cause, Direction, EventKind};
use sipcti_store::{OutboxChange, OutboxRow};

use crate::event::{parse_answer, Decision, Event, Format};
use crate::outbox::Writer;
use crate::redact::redact_url;

mod config;
mod delivery;
mod queue;
mod recovery;
mod stats;
mod transport;

pub use config::{ClientConfig, ConfigError};
pub use stats::{CloseReport, DroppedStats, Stats};

use delivery::*;
use queue::*;
pub use recovery::OpenCall;
use recovery::*;

/// How many callIds whose `newCall` was dropped are remembered (so their later events are
/// attempted once, not retried for an hour against a call Zammad never saw).
const LOST_NEWCALL_MEMORY: usize = 4096;
/// How many callIds of calls dropped whole (queue full) are remembered, so their later
/// `answer`/`hangup` are dropped too instead of reaching Zammad as fragments.
const DROPPED_CALL_MEMORY: usize = 65_536;
/// Longest error-body excerpt kept in a drop reason, in characters.
const BODY_EXCERPT_CHARS: usize = 200;
/// Smallest retry delay, so a zero `retry_initial` cannot spin.
const MIN_BACKOFF: Duration = Duration::from_millis(1);
/// Most queued newCalls looked at to find the oldest call that can be dropped whole.
const EVICTION_SCAN: usize = 64;
/// A delivery after failures wakes the sleeping retries at most this often.
const RECOVERY_WAKE_EVERY: Duration = Duration::from_secs(1);
/// How long [`CtiClient::close`] waits for the outbox's last commit.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Result of [`CtiClient::new_call`]. Everything but `Answered` means "fail open": the
/// proxy goes on with the call as if Zammad had answered `{}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewCallOutcome {
    /// Zammad answered within `newcall_timeout`.
    Answered(Decision),
    /// No answer within `newcall_timeout`; delivery goes on, a late answer is only logged.
    TimedOut,
    /// The newCall reached Zammad but its answer is unusable or lost (a retry answered
    /// "already exists"), or the client stopped. The text says which.
    Failed(String),
    /// The newCall was dropped (queue full, rejected with 4xx, gave up); the text is the reason.
    Dropped(String),
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    fail_open: AtomicU64,
    already_exists: AtomicU64,
    queue_full: AtomicU64,
    gave_up: AtomicU64,
    rejected: AtomicU64,
    orphaned: AtomicU64,
    sink_error: AtomicU64,
    calls_dropped: AtomicU64,
    unconfirmed: AtomicU64,
    recovered_events: AtomicU64,
    recovered_open_calls: AtomicU64,
    open_calls_closed: AtomicU64,
    /// Events whose first delivery attempt failed (for log sampling).
    first_failures: AtomicU64,
}

/// Whether the `n`-th occurrence of a noisy condition is logged: the first
/// 10, then at powers of two. Every occurrence is still counted.
fn log_sample(n: u64) -> bool {
    n <= 10 || n.is_power_of_two()
}

/// Milliseconds since the Unix epoch now.
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DropReason {
    QueueFull,
    GaveUp,
    Rejected,
    Orphaned,
    SinkError,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::GaveUp => "gave_up",
            DropReason::Rejected => "rejected",
            DropReason::Orphaned => "orphaned",
            DropReason::SinkError => "sink_error",
        }
    }
}

/// A callId as the queue keeps it: one allocation per event, shared (not copied) by the
/// call's queue, the line of ready calls and the other indexes.
type CallId = Arc<str>;

struct Target {
    redacted: String,
    /// The keep-alive HTTP client and the constant parts of its requests.
    http: transport::Http,
}

struct Shared {
    cfg: ClientConfig,
    target: Option<Target>,
    outbox: Option<Writer>,
    state: Mutex<State>,
    /// Wakes a parked general delivery lane (claimed in [`State::claim_lane`]), or all of
    /// them at close.
    wake: Notify,
    /// Wakes a parked newCall-only delivery lane, or all of them at close.
    wake_reserve: Notify,
    /// Wakes `drain` waiters whenever an event leaves the queue or an attempt ends.
    changed: Notify,
    /// Wakes sleeping retries early: Zammad answered again.
    recovery: Notify,
    /// Retries waiting for their backoff (read without the lock by each delivery).
    sleeping: AtomicUsize,
    /// When sleeping retries were last woken early (ms since `epoch`; `u64::MAX`: never).
    last_recovery_wake: AtomicU64,
    /// The newCall deadline in ms (`cfg.newcall_timeout`, changed by a reload).
    newcall_timeout_ms: AtomicU64,
    epoch: Instant,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover from poisoning anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake the lane [`State::claim_lane`] claimed, if any (called after unlocking).
    fn wake_lane(&self, lane: Option<Lane>) {
        match lane {
            Some(Lane::General) => self.wake.notify_one(),
            Some(Lane::NewCall) => self.wake_reserve.notify_one(),
            None => {}
        }
    }

    /// Wake every parked lane (the client closed: each checks whether it is done).
    fn wake_all_lanes(&self) {
        self.wake.notify_waiters();
        self.wake_reserve.notify_waiters();
    }

    fn outbox_push(&self, c: OutboxChange) {
        if let Some(w) = &self.outbox {
            w.push(c);
        }
    }

    fn count_drop(&self, ev: &Event, reason: DropReason, detail: &str) {
        let n = self.count_only(reason);
        if log_sample(n) {
            warn!(
                call_id = %ev.call_id,
                event = ev.event.as_str(),
                reason = reason.as_str(),
                detail,
                count = n,
                "CTI event dropped"
            );
        }
    }

    /// Count one dropped event; returns the new count of its reason.
    fn count_only(&self, reason: DropReason) -> u64 {
        let c = match reason {
            DropReason::QueueFull => &self.counters.queue_full,
            DropReason::GaveUp => &self.counters.gave_up,
            DropReason::Rejected => &self.counters.rejected,
            DropReason::Orphaned => &self.counters.orphaned,
            DropReason::SinkError => &self.counters.sink_error,
        };
        c.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Count and log calls dropped whole to make room; their newCall waiters learn why.
    fn calls_evicted(&self, evicted: Vec<(CallId, Vec<Pending>)>, for_call: &str) {
        for (call, events) in evicted {
            let n = self.counters.calls_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            for mut p in events {
                self.count_only(DropReason::QueueFull);
                if let Some(w) = p.waiter.take() {
                    let _ = w.send(NewCallOutcome::Dropped(
                        "queue_full: the call was dropped whole to make room for newer calls"
                            .into(),
                    ));
                }
            }
            if log_sample(n) {
                warn!(call_id = %call, for_call, reason = "queue_full", count = n, "CTI queue full: the oldest call not yet sent was dropped whole (replay --post from a capture can backfill it)");
            }
        }
        self.changed.notify_waiters();
    }

    /// Queue an event. A `newCall` that finds the queue full drops the oldest unsent call
    /// whole, or is dropped itself (and with it the call's later events); the `answer` and
    /// `hangup` of an admitted call always have room. On a drop the waiter (if any) is
    /// handed back with the reason.
    fn enqueue(
        &self,
        ev: Event,
        waiter: Option<oneshot::Sender<NewCallOutcome>>,
    ) -> Result<(), (Option<oneshot::Sender<NewCallOutcome>>, String)> {
        let body = Bytes::from(ev.encode(self.cfg.format).1);
        let cap = self.cfg.queue_capacity;
        let call: CallId = Arc::from(ev.call_id.as_str());
        let kind = ev.event;
        let mut evicted = Vec::new();
        let mut st = self.lock();
        let mut dup_harmful = false;
        if kind == EventKind::NewCall {
            let full = |st: &State| {
                st.queued >= cap
                    || (st.open.len() >= self.cfg.max_open_calls && !st.open.contains_key(&*call))
            };
            while full(&st) {
                match st.evict_oldest(&call) {
                    Some(x) => evicted.push(x),
                    None => break,
                }
            }
            if full(&st) {
                st.dropped_calls.insert(&call);
                st.open.remove(&call);
                drop(st);
                self.calls_evicted(evicted, &call);
                let n = self.counters.calls_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let detail = format!(
                    "queue full ({cap} events, {} open calls at most) and no older call could be dropped whole: this call is dropped whole",
                    self.cfg.max_open_calls
                );
                self.count_drop(&ev, DropReason::QueueFull, &detail);
                debug!(calls_dropped = n, "new call dropped whole");
                return Err((waiter, detail));
            }
            st.open.insert(call.clone(), false);
        } else {
            if st.dropped_calls.contains(&call) {
                drop(st);
                let detail = "its call was dropped whole (queue full)".to_string();
                self.count_drop(&ev, DropReason::QueueFull, &detail);
                return Err((waiter, detail));
            }
            let reserved = if kind == EventKind::Hangup {
                st.recovered.remove(&*call);
                let answered = st.open.remove(&call);
                dup_harmful = second_hangup_flips(&ev, answered.unwrap_or(false));
                answered.is_some()
            } else {
                match st.open.get_mut(&call) {
                    Some(a) => {
                        *a = true;
                        true
                    }
                    None => false,
                }
            };
            if !reserved && st.queued >= cap {
                drop(st);
                let detail = format!("queue full ({cap} events)");
                self.count_drop(&ev, DropReason::QueueFull, &detail);
                return Err((waiter, detail));
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        if let Some(w) = &self.outbox {
            // pushed under the state lock: the outbox sees one call's changes in order
            w.push(OutboxChange::Insert(OutboxRow {
                id,
                call_id: call.to_string(),
                kind: kind.as_str().to_string(),
                event: ev.to_json(),
                created_unix_ms: unix_now_ms(),
                done: false,
                attempted: false,
                dup_harmful,
            }));
        }
        if kind == EventKind::NewCall {
            st.unsent_newcalls.insert(id, call.clone());
        }
        st.push(Pending {
            id,
            call: call.clone(),
            ev,
            body,
            enqueued: Instant::now(),
            waiter,
            attempts: 0,
            backoff: self.cfg.retry_initial.max(MIN_BACKOFF),
            last_error: Cow::Borrowed("never attempted"),
            maybe_sent: false,
            dup_harmful,
        });
        let lane = st.claim_lane();
        drop(st);
        self.wake_lane(lane);
        if !evicted.is_empty() {
            self.calls_evicted(evicted, &call);
        }
        Ok(())
    }

    /// Stdout sink: print one JSON line.
    fn sink(&self, ev: &Event) -> bool {
        let line = ev.to_json();
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{line}").and_then(|_| out.flush()) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.count_drop(ev, DropReason::SinkError, &e.to_string());
                false
            }
        }
    }

    /// An event left the queue (delivered or finally dropped): record it in the outbox
    /// and put its call back in line. `lane` is the kind of lane that ran it: a general
    /// lane takes the next call in line itself, so another lane is woken only if more
    /// than one waits, or if the call's next event is not for a newCall-only lane.
    fn finish(&self, p: Pending, lane: Lane) {
        let (claimed, all) = {
            let mut st = self.lock();
            st.queued = st.queued.saturating_sub(1);
            st.in_flight = st.in_flight.saturating_sub(1);
            st.unsent_newcalls.remove(&p.id);
            if let Some(w) = &self.outbox {
                w.push(if p.ev.event == EventKind::Hangup {
                    OutboxChange::RemoveCall {
                        call_id: p.ev.call_id.clone(),
                        up_to: p.id,
                    }
                } else {
                    OutboxChange::Done(p.id)
                });
            }
            st.schedule(&p.call);
            let waiting = st.urgent.len() + st.ready.len();
            let claimed = if lane == Lane::NewCall || waiting > 1 {
                st.claim_lane()
            } else {
                None
            };
            (claimed, st.closed && st.queued == 0)
        };
        self.wake_lane(claimed);
        if all {
            self.wake_all_lanes();
        }
        self.changed.notify_waiters();
    }

    /// A delivery succeeded: if retries are sleeping, Zammad is back; wake them (at most
    /// once per [`RECOVERY_WAKE_EVERY`]).
    fn delivered_once(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        if self.sleeping.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_recovery_wake.load(Ordering::Relaxed);
        let every = u64::try_from(RECOVERY_WAKE_EVERY.as_millis()).unwrap_or(1000);
        // u64::MAX: never woken yet
        if (last == u64::MAX || now.saturating_sub(last) >= every)
            && self
                .last_recovery_wake
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            debug!("Zammad answered again: waking the sleeping retries");
            self.recovery.notify_waiters();
        }
    }
}

/// Whether a second `hangup` for this call would change Zammad's record: Zammad
/// recomputes "missed" on every hangup, from the call's state, so a second hangup of an
/// inbound call that was still ringing (not answered, not forwarded) turns a missed call
/// into a not-missed one. For outbound calls and answered calls it changes nothing.
fn second_hangup_flips(ev: &Event, answered: bool) -> bool {
    ev.direction == Direction::In && ev.cause != Some(Cause::Forwarded) && !answered
}

/// Drops mark the client closed when the last [`CtiClient`] clone goes away.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.closed = true;
            // every parked lane is woken below and counts itself again if it stays
            st.idle_lanes = 0;
            st.idle_reserve = 0;
        }
        self.shared.wake_all_lanes();
    }
}

/// Client for Zammad's Generic CTI endpoint. Cheap to clone; all clones share one queue,
/// one set of delivery lanes, one keep-alive HTTP connection pool and one outbox.
///
/// Events of one callId go out strictly in submission order, each only after the previous
/// one was delivered or finally dropped; different calls proceed concurrently (up to
/// `max_in_flight`, plus `newcall_slots` kept for the newCalls INVITEs wait for). Failed
/// attempts (connect errors, timeouts, 5xx, 408, 429) are retried with exponential
/// backoff until `give_up_after`; a retry waiting for its backoff holds no delivery slot,
/// and the first delivery after failures wakes the waiting retries. At start the
/// keep-alive connections are opened (one per lane, by `HEAD /` on the server's root:
/// no token, no CTI endpoint), so the first calls do not wait for connects.
#[derive(Clone)]
pub struct CtiClient {
    h: Arc<Handle>,
}

impl std::fmt::Debug for CtiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .h
            .shared
            .target
            .as_ref()
            .map(|t| t.redacted.as_str())
            .unwrap_or("stdout");
        f.debug_struct("CtiClient").field("url", &url).finish()
    }
}

impl CtiClient {
    /// Validate `cfg`, build the HTTP client, open the outbox (if configured) and queue
    /// what it holds, and spawn the delivery lanes (`max_in_flight` general ones and
    /// `newcall_slots` for newCalls) on the current tokio runtime.
    ///
    /// Errors: [`ConfigError::InvalidUrl`] for a URL that does not parse, is not
    /// http(s) with a host, is no valid HTTP request target, or has a userinfo that is not
    /// UTF-8 once percent-decoded; [`ConfigError::Invalid`] for `queue_capacity`, `max_in_flight`
    /// or `max_open_calls` of 0; [`ConfigError::NoRuntime`] outside a tokio runtime;
    /// [`ConfigError::Http`] if the TLS client cannot be built; [`ConfigError::Outbox`] if
    /// the outbox file cannot be opened, created or read.
    pub fn start(cfg: ClientConfig) -> Result<CtiClient, ConfigError> {
        if cfg.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "queue_capacity must be at least 1".into(),
            ));
        }
        if cfg.max_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if cfg.max_open_calls == 0 {
            return Err(ConfigError::Invalid(
                "max_open_calls must be at least 1".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let target = match &cfg.url {
            None => None,
            Some(raw) => Some(build_target(raw, &cfg)?),
        };
        match &target {
            Some(t) => info!(url = %t.redacted, format = ?cfg.format, "CTI client started"),
            None => info!("CTI client started in stdout sink mode"),
        }
        let counters = Counters::default();
        let (outbox, loaded) = match (&cfg.outbox, &target) {
            (Some(path), Some(_)) => {
                let limit = cfg.queue_capacity.saturating_mul(4).saturating_add(4096);
                let (writer, rows, skipped) =
                    Writer::open(path, cfg.outbox_sync, limit).map_err(ConfigError::Outbox)?;
                let mut loaded = load(rows, &cfg, &writer);
                loaded.unreadable += skipped;
                info!(
                    outbox = %path.display(),
                    events = loaded.events,
                    calls = loaded.calls,
                    open_calls = loaded.deadlines.len(),
                    hangups_not_resent = loaded.unconfirmed,
                    unreadable_rows = loaded.unreadable,
                    "CTI outbox opened: delivering what it holds"
                );
                counters
                    .recovered_events
                    .store(loaded.events, Ordering::Relaxed);
                counters
                    .recovered_open_calls
                    .store(loaded.deadlines.len() as u64, Ordering::Relaxed);
                counters
                    .unconfirmed
                    .store(loaded.unconfirmed, Ordering::Relaxed);
                (Some(writer), Some(loaded))
            }
            (Some(path), None) => {
                warn!(outbox = %path.display(), "no Zammad URL: events go to stdout, the outbox is not used");
                (None, None)
            }
            _ => (None, None),
        };
        let has_target = target.is_some();
        let (state, deadlines) = match loaded {
            Some(l) => (l.state, l.deadlines),
            None => (State::new(1), Vec::new()),
        };
        let newcall_ms = u64::try_from(cfg.newcall_timeout.as_millis()).unwrap_or(u64::MAX);
        let shared = Arc::new(Shared {
            cfg,
            target,
            outbox,
            state: Mutex::new(state),
            wake: Notify::new(),
            wake_reserve: Notify::new(),
            changed: Notify::new(),
            recovery: Notify::new(),
            sleeping: AtomicUsize::new(0),
            last_recovery_wake: AtomicU64::new(u64::MAX),
            newcall_timeout_ms: AtomicU64::new(newcall_ms),
            epoch: Instant::now(),
            counters,
        });
        if has_target {
            for _ in 0..shared.cfg.max_in_flight {
                runtime.spawn(lane(shared.clone(), Lane::General));
            }
            for _ in 0..shared.cfg.newcall_slots {
                runtime.spawn(lane(shared.clone(), Lane::NewCall));
            }
            if let Some(t) = &shared.target {
                let n = shared
                    .cfg
                    .max_in_flight
                    .saturating_add(shared.cfg.newcall_slots);
                runtime.spawn(warm_up(t.http.clone(), n));
            }
            if !deadlines.is_empty() {
                runtime.spawn(close_open_calls(Arc::downgrade(&shared), deadlines));
            }
        }
        Ok(CtiClient {
            h: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.h.shared
    }

    /// Queue a `newCall` and wait for Zammad's answer up to `newcall_timeout`.
    ///
    /// The event is queued immediately when this method is called (before the returned
    /// future is first polled), so an `answer`/`hangup` submitted afterwards is always sent
    /// after it. Returns [`NewCallOutcome::Answered`] with the parsed decision, or
    /// `TimedOut` / `Failed` / `Dropped` (all counted in `fail_open`). After a time-out the
    /// delivery goes on; the late answer is only logged. In stdout-sink mode the event is
    /// printed and `Answered(Continue)` returned at once.
    pub fn new_call(&self, ev: Event) -> impl Future<Output = NewCallOutcome> + Send + 'static {
        let shared = self.shared().clone();
        let timeout = Duration::from_millis(shared.newcall_timeout_ms.load(Ordering::Relaxed));
        let immediate: Result<oneshot::Receiver<NewCallOutcome>, NewCallOutcome> =
            if shared.target.is_none() {
                if shared.sink(&ev) {
                    Err(NewCallOutcome::Answered(Decision::Continue))
                } else {
                    Err(NewCallOutcome::Dropped("stdout sink write failed".into()))
                }
            } else {
                let (tx, rx) = oneshot::channel();
                match shared.enqueue(ev, Some(tx)) {
                    Ok(()) => Ok(rx),
                    Err((_, reason)) => Err(NewCallOutcome::Dropped(reason)),
                }
            };
        async move {
            let outcome = match immediate {
                Err(outcome) => outcome,
                Ok(rx) => match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => NewCallOutcome::Failed("CTI client stopped".into()),
                    Err(_) => NewCallOutcome::TimedOut,
                },
            };
            if !matches!(outcome, NewCallOutcome::Answered(_)) {
                shared.counters.fail_open.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        }
    }

    /// Queue an event whose answer nobody waits for (`answer`, `hangup`, or a replayed
    /// `newCall`). Never blocks. If the queue is full the event is dropped, counted
    /// (`dropped.queue_full`) and logged with the reason (an `answer`/`hangup` of a call
    /// whose `newCall` was admitted always has room). In stdout-sink mode the event is
    /// printed at once.
    pub fn submit(&self, ev: Event) {
        let shared = self.shared();
        if shared.target.is_none() {
            shared.sink(&ev);
            return;
        }
        // A drop is already counted and logged by `enqueue`.
        let _ = shared.enqueue(ev, None);
    }

    /// Change the newCall deadline (a reload of `[zammad] newcall_timeout_ms`):
    /// applies to `newCall`s queued from now on.
    pub fn set_newcall_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared()
            .newcall_timeout_ms
            .store(ms, Ordering::Relaxed);
    }

    /// Take the answered calls that were open when sipcti last stopped
    /// (found in the outbox: `newCall` and `answer` sent, no `hangup`):
    /// the caller (the proxy's call tracker) now owns ending them, at
    /// their BYE or after `open_call_timeout`, so this client no longer
    /// closes them itself. Calls never answered stay with the client,
    /// which closes them after `open_call_timeout`. Each call is given out
    /// once; empty without an outbox.
    pub fn take_open_answered_calls(&self) -> Vec<OpenCall> {
        let mut st = self.h.shared.lock();
        let calls: Vec<String> = st
            .recovered
            .iter()
            .filter(|(_, r)| r.answered)
            .map(|(c, _)| c.clone())
            .collect();
        let mut out = Vec::with_capacity(calls.len());
        for c in calls {
            if let Some(r) = st.recovered.remove(&c) {
                out.push(OpenCall {
                    call_id: c,
                    direction: r.new_call.direction,
                    from: r.new_call.from.unwrap_or_default(),
                    to: r.new_call.to.unwrap_or_default(),
                    age: r.age,
                });
            }
        }
        out
    }

    /// Snapshot of the counters and the current queue length.
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let c = &shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let w = shared
            .outbox
            .as_ref()
            .map(Writer::stats)
            .unwrap_or_default();
        let (queued, open_calls, oldest) = {
            let st = shared.lock();
            // the queue is bounded (queue_capacity), so is this scan
            let oldest = st
                .calls
                .values()
                .filter_map(|q| q.events.front().map(|p| p.enqueued))
                .min();
            (st.queued, st.open.len(), oldest)
        };
        Stats {
            delivered: get(&c.delivered),
            retried: get(&c.retried),
            dropped: DroppedStats {
                queue_full: get(&c.queue_full),
                gave_up: get(&c.gave_up),
                rejected: get(&c.rejected),
                orphaned: get(&c.orphaned),
                sink_error: get(&c.sink_error),
            },
            calls_dropped: get(&c.calls_dropped),
            hangups_unconfirmed: get(&c.unconfirmed),
            fail_open: get(&c.fail_open),
            already_exists_as_delivered: get(&c.already_exists),
            queued,
            open_calls,
            recovered_events: get(&c.recovered_events),
            recovered_open_calls: get(&c.recovered_open_calls),
            open_calls_closed: get(&c.open_calls_closed),
            outbox_lost: w.lost,
            outbox_failed_commits: w.failed_commits,
            outbox_commits: w.commits,
            oldest_queued_age: oldest.map(|t| t.elapsed()).unwrap_or_default(),
        }
    }

    /// Wait until every queued event is delivered or dropped, at most `timeout`.
    /// Returns true if the queue became empty in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let shared = self.shared();
        let deadline = tokio::time::Instant::now() + timeout;
        shared.wait_until(deadline, |st| st.queued == 0).await
    }

    /// Stop delivering, for a shutdown: deliver for at most `drain_for`, then start no new
    /// attempt, wait for the running ones (at most `request_timeout`), and commit the
    /// outbox. What is left stays in the outbox for the next start (without an outbox it
    /// is lost). The client delivers nothing afterwards.
    pub async fn close(&self, drain_for: Duration) -> CloseReport {
        let shared = self.shared();
        self.drain(drain_for).await;
        shared.lock().stopping = true;
        let deadline = tokio::time::Instant::now() + shared.cfg.request_timeout;
        if !shared.wait_until(deadline, |st| st.in_flight == 0).await {
            warn!("CTI requests still running at shutdown: their events stay in the outbox");
        }
        let (events_left, calls_left) = {
            let st = shared.lock();
            (st.queued, st.calls.len())
        };
        let durable = match &shared.outbox {
            None => events_left == 0,
            Some(w) => {
                let flushed = matches!(
                    tokio::time::timeout(FLUSH_WAIT, w.flush()).await,
                    Ok(Ok(true))
                );
                flushed && w.stats().lost == 0
            }
        };
        CloseReport {
            events_left,
            calls_left,
            durable,
        }
    }
}

impl Shared {
    /// Wait until `cond` holds for the state (checked whenever the queue changes), at most
    /// until `deadline`. Returns whether it holds.
    async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        cond: impl Fn(&State) -> bool,
    ) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(&self.lock());
            }
        }
    }
}

/// Check the CTI URL `raw` (http or https, with a host) and build its HTTP client.
///
/// Errors: [`ConfigError::InvalidUrl`] (with the redacted URL only) if the URL does not
/// parse, is not http(s), has no host or is no valid request target; [`ConfigError::Http`]
/// if the TLS setup fails.
fn build_target(raw: &str, cfg: &ClientConfig) -> Result<Target, ConfigError> {
    let redacted = redact_url(raw);
    let invalid = |reason: String| ConfigError::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().unwrap_or_default().is_empty() {
        return Err(invalid("no host".into()));
    }
    let http = transport::Http::new(url, &redacted, cfg)?;
    Ok(Target { redacted, http })
}

/// Open the keep-alive connections before the first call needs them: `n` concurrent
/// `HEAD` requests for the server's root (`scheme://[user@]host[:port]/`), so the HTTP
/// pool holds up to `n` connections (TCP, and TLS for https, already set up) when the first
/// INVITEs' `newCall`s arrive. `HEAD` is a safe method (RFC 9110 9.2.1) and the root is not
/// the CTI endpoint, so this reaches no Zammad logic, carries no token and changes nothing;
/// whatever the server answers (200, 404, 401) keeps the connection. One request first:
/// if the server cannot be reached (or its name not resolved) no more are tried, else `n`
/// more go out at once (one reuses the first connection, each other opens its own). Best
/// effort: a failure is logged at debug level only (without the URL) and the first events
/// connect as before.
async fn warm_up(http: transport::Http, n: usize) {
    let t0 = Instant::now();
    if let Err(e) = http.head_root().await {
        debug!(error = %e, "CTI connection pool not warmed: the first events connect");
        return;
    }
    // Polled together in this task, each request is first polled before any of them can
    // finish, so none finds an idle connection but the first request's: the others each
    // start a connect (one that then loses the race to an idle connection still finishes
    // and goes to the pool). Spawned as separate tasks, a quick one could finish first and
    // hand its connection to the next: fewer connections.
    let mut reqs: Vec<_> = (0..n).map(|_| Box::pin(http.head_root())).collect();
    let (mut ok, mut last_error) = (0usize, None);
    std::future::poll_fn(|cx| {
        reqs.retain_mut(|r| match r.as_mut().poll(cx) {
            std::task::Poll::Ready(Ok(())) => {
                ok += 1;
                false
            }
            std::task::Poll::Ready(Err(e)) => {
                last_error = Some(e);
                false
            }
            std::task::Poll::Pending => true,
        });
        if reqs.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    let elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    debug!(connections = ok, of = n, elapsed_ms, error = ?last_error, "CTI connection pool warmed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_statuses() {
        assert!(matches!(
            classify(200, "{}", EventKind::Hangup, false),
            Verdict::Delivered
        ));
        assert!(matches!(
            classify(503, "", EventKind::Hangup, false),
            Verdict::Retry { definite: true, .. }
        ));
        assert!(matches!(
            classify(429, "", EventKind::Answer, false),
            Verdict::Retry { definite: true, .. }
        ));
        assert!(matches!(
            classify(401, "{}", EventKind::NewCall, false),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(422, "{}", EventKind::NewCall, true),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(302, "", EventKind::NewCall, false),
            Verdict::Reject(_)
        ));
        let exists = r#"{"error":"This object already exists."}"#;
        assert!(matches!(
            classify(500, exists, EventKind::NewCall, true),
            Verdict::AlreadyExists
        ));
        assert!(matches!(
            classify(500, exists, EventKind::NewCall, false),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(500, exists, EventKind::Hangup, true),
            Verdict::Retry { definite: true, .. }
        ));
    }

    #[tokio::test]
    async fn rejects_bad_urls_without_leaking_them() {
        for bad in [
            "ftp://zammad.example/api/v1/cti/SECRET",
            "zammad.example/api/v1/cti/SECRET",
            "data:text/plain,SECRET",
            "https://",
        ] {
            let err = CtiClient::start(ClientConfig {
                url: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidUrl { .. }),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }

    #[tokio::test]
    async fn rejects_zero_sizes() {
        let e = CtiClient::start(ClientConfig {
            queue_capacity: 0,
            ..Default::default()
        });
        assert!(matches!(e, Err(ConfigError::Invalid(_))));
        let e = CtiClient::start(ClientConfig {
            max_in_flight: 0,
            ..Default::default()
        });
        assert!(matches!(e, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn start_outside_runtime_is_an_error() {
        assert!(matches!(
            CtiClient::start(ClientConfig::default()),
            Err(ConfigError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn debug_does_not_leak_token() {
        let c = CtiClient::start(ClientConfig {
            url: Some("http://127.0.0.1:9/api/v1/cti/SECRET".into()),
            ..Default::default()
        })
        .unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains("127.0.0.1:9/***") && !d.contains("SECRET"),
            "{d}"
        );
        let cfg = ClientConfig {
            url: Some("http://127.0.0.1:9/SECRET/api/v1/cti/x?t=SECRET".into()),
            ..Default::default()
        };
        let d = format!("{cfg:?}");
        assert!(
            d.contains("127.0.0.1:9/***") && !d.contains("SECRET"),
            "{d}"
        );
    }
}
