//! The CTI client: a bounded, per-call ordered, retrying delivery queue towards Zammad.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

use sipcti_event::EventKind;

use crate::event::{parse_answer, Decision, Event, Format};
use crate::redact::redact_url;

/// How many callIds whose `newCall` was dropped are remembered (so their later events are
/// attempted once, not retried for an hour against a call Zammad never saw).
const LOST_NEWCALL_MEMORY: usize = 4096;
/// Longest error-body excerpt kept in a drop reason, in characters.
const BODY_EXCERPT_CHARS: usize = 200;
/// Smallest retry delay, so a zero `retry_initial` cannot spin.
const MIN_BACKOFF: Duration = Duration::from_millis(1);

/// Configuration of a [`CtiClient`]. See [`ClientConfig::default`] for the defaults.
///
/// Its `Debug` shows the URL only in [`redact_url`]'s form.
#[derive(Clone)]
pub struct ClientConfig {
    /// Zammad CTI URL `https://{zammad}/api/v1/cti/{token}` (a secret: only its redacted form
    /// is ever logged). `None` selects the stdout sink: each event is printed as one compact
    /// JSON line on stdout and `newCall` answers [`Decision::Continue`] at once.
    pub url: Option<String>,
    /// Body encoding (default [`Format::Json`]).
    pub format: Format,
    /// How long [`CtiClient::new_call`] waits for Zammad's answer (default 1500 ms).
    pub newcall_timeout: Duration,
    /// Maximum number of events buffered in total, in flight included (default 10 000).
    pub queue_capacity: usize,
    /// Maximum concurrent HTTP requests, each for a different call (default 8).
    pub max_in_flight: usize,
    /// Timeout of one HTTP attempt, connect included (default 5 s).
    pub request_timeout: Duration,
    /// First retry delay; doubles per retry (default 200 ms).
    pub retry_initial: Duration,
    /// Cap of the retry delay (default 30 s).
    pub retry_max: Duration,
    /// An event still undelivered this long after it was queued is dropped, counted and
    /// logged (default 1 h).
    pub give_up_after: Duration,
}

impl std::fmt::Debug for ClientConfig {
    /// Like a derived `Debug`, with `url` redacted (`scheme://host[:port]/***`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("format", &self.format)
            .field("newcall_timeout", &self.newcall_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_in_flight", &self.max_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("give_up_after", &self.give_up_after)
            .finish()
    }
}

impl Default for ClientConfig {
    /// Stdout sink, JSON, 1500 ms newCall wait, 10 000 events, 8 in flight, 5 s per attempt,
    /// backoff 200 ms doubling to 30 s, give up after 1 h.
    fn default() -> Self {
        ClientConfig {
            url: None,
            format: Format::Json,
            newcall_timeout: Duration::from_millis(1500),
            queue_capacity: 10_000,
            max_in_flight: 8,
            request_timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// Why [`CtiClient::start`] refused a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse, is not http/https, or has no host. `url` is the redacted form.
    #[error("invalid Zammad CTI url {url}: {reason}")]
    InvalidUrl {
        /// Redacted URL (see [`redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A numeric setting is out of range (e.g. `queue_capacity` or `max_in_flight` is 0).
    #[error("invalid CTI client setting: {0}")]
    Invalid(String),
    /// `start` was called outside a tokio runtime.
    #[error("CtiClient::start must be called inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

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

/// Dropped-event counters, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DroppedStats {
    /// The queue held `queue_capacity` events already.
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

/// Snapshot of the client's counters (see [`CtiClient::stats`]). Counts are events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events Zammad accepted (2xx), plus retried newCalls answered "already exists", plus
    /// lines written in stdout-sink mode.
    pub delivered: u64,
    /// HTTP attempts after the first (one per retry).
    pub retried: u64,
    /// Events dropped, by reason.
    pub dropped: DroppedStats,
    /// [`CtiClient::new_call`] calls that did not return `Answered` (timed out, failed,
    /// dropped): the proxy went on without Zammad's decision.
    pub fail_open: u64,
    /// Retried newCalls answered 500 "already exists", counted as delivered.
    pub already_exists_as_delivered: u64,
    /// Events queued or in flight right now.
    pub queued: usize,
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
    /// Events whose first delivery attempt failed (for log sampling).
    first_failures: AtomicU64,
}

/// Whether the `n`-th occurrence of a noisy condition is logged: the first
/// 10, then at powers of two. Every occurrence is still counted.
fn log_sample(n: u64) -> bool {
    n <= 10 || n.is_power_of_two()
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

/// One queued event with its encoded body.
struct Pending {
    ev: Event,
    content_type: &'static str,
    body: String,
    enqueued: Instant,
    waiter: Option<oneshot::Sender<NewCallOutcome>>,
}

/// Insertion-ordered set with a size cap (oldest evicted).
#[derive(Default)]
struct BoundedSet {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl BoundedSet {
    fn insert(&mut self, s: &str) {
        if self.set.contains(s) {
            return;
        }
        if self.order.len() >= LOST_NEWCALL_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(s.to_string());
        self.order.push_back(s.to_string());
    }
    fn contains(&self, s: &str) -> bool {
        self.set.contains(s)
    }
}

#[derive(Default)]
struct State {
    /// Per-call FIFO. A call has an entry iff it is in `ready` or being delivered.
    calls: HashMap<String, VecDeque<Pending>>,
    /// Calls whose head event may be sent now, oldest first (each at most once).
    ready: VecDeque<String>,
    /// Calls whose head event is a `newCall`: an INVITE waits for its
    /// answer, so they go before other calls' answer/hangup backlog.
    urgent: VecDeque<String>,
    /// Events queued or in flight (bounded by `queue_capacity`).
    queued: usize,
    /// CallIds whose newCall was dropped.
    lost_newcalls: BoundedSet,
    /// Every `CtiClient` handle is gone: the worker stops once the queue is empty.
    closed: bool,
}

struct Target {
    url: reqwest::Url,
    redacted: String,
    http: reqwest::Client,
}

struct Shared {
    cfg: ClientConfig,
    target: Option<Target>,
    state: Mutex<State>,
    /// Wakes the worker (new ready call, or closed).
    wake: Notify,
    /// Wakes `drain` waiters whenever an event leaves the queue.
    changed: Notify,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover from poisoning anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_drop(&self, ev: &Event, reason: DropReason, detail: &str) {
        let c = match reason {
            DropReason::QueueFull => &self.counters.queue_full,
            DropReason::GaveUp => &self.counters.gave_up,
            DropReason::Rejected => &self.counters.rejected,
            DropReason::Orphaned => &self.counters.orphaned,
            DropReason::SinkError => &self.counters.sink_error,
        };
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
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

    /// Queue an event. On a full queue the event is dropped and counted; the waiter (if any)
    /// is handed back with the reason.
    fn enqueue(
        &self,
        ev: Event,
        waiter: Option<oneshot::Sender<NewCallOutcome>>,
    ) -> Result<(), (Option<oneshot::Sender<NewCallOutcome>>, String)> {
        let (content_type, body) = ev.encode(self.cfg.format);
        let mut st = self.lock();
        if st.queued >= self.cfg.queue_capacity {
            drop(st);
            let detail = format!("queue full ({} events)", self.cfg.queue_capacity);
            self.count_drop(&ev, DropReason::QueueFull, &detail);
            return Err((waiter, detail));
        }
        st.queued += 1;
        let call_id = ev.call_id.clone();
        let is_new_call = ev.event == EventKind::NewCall;
        let pending = Pending {
            ev,
            content_type,
            body,
            enqueued: Instant::now(),
            waiter,
        };
        match st.calls.get_mut(&call_id) {
            Some(q) => q.push_back(pending),
            None => {
                st.calls.insert(call_id.clone(), VecDeque::from([pending]));
                if is_new_call {
                    st.urgent.push_back(call_id);
                } else {
                    st.ready.push_back(call_id);
                }
                drop(st);
                self.wake.notify_one();
            }
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
}

/// Drops mark the client closed when the last [`CtiClient`] clone goes away.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Client for Zammad's Generic CTI endpoint. Cheap to clone; all clones share one queue,
/// one worker and one keep-alive HTTP connection pool.
///
/// Events of one callId go out strictly in submission order, each only after the previous
/// one was delivered or finally dropped; different calls proceed concurrently (up to
/// `max_in_flight`). Failed attempts (connect errors, timeouts, 5xx, 408, 429) are retried
/// with exponential backoff until `give_up_after`.
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
    /// Validate `cfg`, build the HTTP client and spawn the delivery worker on the current
    /// tokio runtime.
    ///
    /// Errors: [`ConfigError::InvalidUrl`] for a URL that does not parse or is not
    /// http(s) with a host; [`ConfigError::Invalid`] for `queue_capacity` or `max_in_flight`
    /// of 0; [`ConfigError::NoRuntime`] outside a tokio runtime; [`ConfigError::Http`] if the
    /// TLS client cannot be built.
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let target = match &cfg.url {
            None => None,
            Some(raw) => Some(build_target(raw, &cfg)?),
        };
        match &target {
            Some(t) => info!(url = %t.redacted, format = ?cfg.format, "CTI client started"),
            None => info!("CTI client started in stdout sink mode"),
        }
        let has_target = target.is_some();
        let shared = Arc::new(Shared {
            cfg,
            target,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            changed: Notify::new(),
            counters: Counters::default(),
        });
        if has_target {
            runtime.spawn(worker(shared.clone()));
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
        let timeout = shared.cfg.newcall_timeout;
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
    /// (`dropped.queue_full`) and logged with the reason. In stdout-sink mode the event is
    /// printed at once.
    pub fn submit(&self, ev: Event) {
        let shared = self.shared();
        if shared.target.is_none() {
            shared.sink(&ev);
            return;
        }
        // A full queue is already counted and logged by `enqueue`.
        let _ = shared.enqueue(ev, None);
    }

    /// Snapshot of the counters and the current queue length.
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let c = &shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
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
            fail_open: get(&c.fail_open),
            already_exists_as_delivered: get(&c.already_exists),
            queued: shared.lock().queued,
        }
    }

    /// Wait until every queued event is delivered or dropped, at most `timeout`.
    /// Returns true if the queue became empty in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let shared = self.shared();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.lock().queued == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return shared.lock().queued == 0;
            }
        }
    }
}

fn build_target(raw: &str, cfg: &ClientConfig) -> Result<Target, ConfigError> {
    let redacted = redact_url(raw);
    let invalid = |reason: String| ConfigError::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().unwrap_or_default().is_empty() {
        return Err(invalid("no host".into()));
    }
    let http = reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .connect_timeout(cfg.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("sipcti/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Http(error_text(e)))?;
    Ok(Target {
        url,
        redacted,
        http,
    })
}

/// A reqwest error as text, without the URL (which holds the token), with its causes.
fn error_text(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout: "
    } else if e.is_connect() {
        "connect: "
    } else {
        ""
    };
    let e = e.without_url();
    let mut text = format!("{kind}{e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

/// Hands out ready calls to delivery tasks, at most `max_in_flight` at a time.
async fn worker(shared: Arc<Shared>) {
    let sem = Arc::new(Semaphore::new(shared.cfg.max_in_flight));
    loop {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        let call_id = loop {
            let notified = shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                if let Some(id) = st.urgent.pop_front().or_else(|| st.ready.pop_front()) {
                    break id;
                }
                if st.closed && st.queued == 0 {
                    debug!("CTI client worker stopped");
                    return;
                }
            }
            notified.await;
        };
        tokio::spawn(deliver_head(shared.clone(), call_id, permit));
    }
}

/// Deliver (or finally drop) the head event of one call, then reschedule the call.
async fn deliver_head(shared: Arc<Shared>, call_id: String, permit: OwnedSemaphorePermit) {
    let head = shared
        .lock()
        .calls
        .get_mut(&call_id)
        .and_then(|q| q.pop_front());
    if let Some(p) = head {
        deliver(&shared, p).await;
    }
    {
        let mut st = shared.lock();
        st.queued = st.queued.saturating_sub(1);
        let next = st
            .calls
            .get(&call_id)
            .and_then(|q| q.front())
            .map(|p| p.ev.event);
        if let Some(kind) = next {
            if kind == EventKind::NewCall {
                st.urgent.push_back(call_id);
            } else {
                st.ready.push_back(call_id);
            }
        } else {
            st.calls.remove(&call_id);
        }
    }
    drop(permit);
    shared.wake.notify_one();
    shared.changed.notify_waiters();
}

/// Verdict on one HTTP attempt.
enum Verdict {
    Delivered(String),
    AlreadyExists,
    Retry(String),
    Reject(String),
}

fn classify(status: u16, body: &str, kind: EventKind, attempt: u32) -> Verdict {
    let excerpt = || {
        let t: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        format!("HTTP {status}: {t}")
    };
    match status {
        200..=299 => Verdict::Delivered(body.to_string()),
        500 if kind == EventKind::NewCall && body.contains("already exists") => {
            if attempt > 1 {
                Verdict::AlreadyExists
            } else {
                Verdict::Reject(format!("duplicate callId: {}", excerpt()))
            }
        }
        500..=599 | 408 | 429 => Verdict::Retry(excerpt()),
        _ => Verdict::Reject(excerpt()),
    }
}

async fn attempt(target: &Target, p: &Pending) -> Result<(u16, String), String> {
    let resp = target
        .http
        .post(target.url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CONTENT_TYPE, p.content_type)
        .body(p.body.clone())
        .send()
        .await
        .map_err(error_text)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(error_text)?;
    Ok((status, body))
}

/// Deliver one event with retries; resolves its newCall waiter, counts the outcome.
async fn deliver(shared: &Shared, mut p: Pending) {
    let Some(target) = shared.target.as_ref() else {
        return;
    };
    let cfg = &shared.cfg;
    let kind = p.ev.event;
    let orphan = kind != EventKind::NewCall && shared.lock().lost_newcalls.contains(&p.ev.call_id);
    let mut backoff = cfg.retry_initial.max(MIN_BACKOFF);
    let mut last_error = String::from("never attempted");
    let mut n: u32 = 0;
    let dropped = |p: &mut Pending, reason: DropReason, detail: String| {
        shared.count_drop(&p.ev, reason, &detail);
        if kind == EventKind::NewCall {
            shared.lock().lost_newcalls.insert(&p.ev.call_id);
        }
        if let Some(w) = p.waiter.take() {
            let _ = w.send(NewCallOutcome::Dropped(format!(
                "{}: {detail}",
                reason.as_str()
            )));
        }
    };
    loop {
        let age = p.enqueued.elapsed();
        if age >= cfg.give_up_after {
            let detail = format!(
                "undelivered after {} ms (last error: {last_error})",
                age.as_millis()
            );
            dropped(&mut p, DropReason::GaveUp, detail);
            return;
        }
        n += 1;
        if n > 1 {
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = match attempt(target, &p).await {
            Ok((status, body)) => classify(status, &body, kind, n),
            Err(e) => Verdict::Retry(e),
        };
        match verdict {
            Verdict::Delivered(body) => {
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if n > 1 {
                    info!(call_id = %p.ev.call_id, event = kind.as_str(), attempts = n, "CTI event delivered after retries");
                }
                if kind == EventKind::NewCall {
                    let decision = parse_answer(&body);
                    let late = match p.waiter.take() {
                        Some(w) => w.send(NewCallOutcome::Answered(decision.clone())).is_err(),
                        None => true,
                    };
                    if late {
                        info!(call_id = %p.ev.call_id, ?decision, "newCall answered, nobody waiting (late or replay)");
                    } else {
                        debug!(call_id = %p.ev.call_id, ?decision, "newCall answered");
                    }
                }
                return;
            }
            Verdict::AlreadyExists => {
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .already_exists
                    .fetch_add(1, Ordering::Relaxed);
                warn!(call_id = %p.ev.call_id, attempts = n, "retried newCall answered \"already exists\": counted as delivered, Zammad's decision is lost");
                if let Some(w) = p.waiter.take() {
                    let _ = w.send(NewCallOutcome::Failed(
                        "a retry was answered \"already exists\": the first attempt reached Zammad, its answer was lost".into(),
                    ));
                }
                return;
            }
            Verdict::Reject(detail) => {
                dropped(&mut p, DropReason::Rejected, detail);
                return;
            }
            Verdict::Retry(detail) => {
                if orphan {
                    dropped(
                        &mut p,
                        DropReason::Orphaned,
                        format!("the call's newCall was dropped earlier; {detail}"),
                    );
                    return;
                }
                let first = (n == 1).then(|| {
                    shared
                        .counters
                        .first_failures
                        .fetch_add(1, Ordering::Relaxed)
                        + 1
                });
                if let Some(count) = first.filter(|c| log_sample(*c)) {
                    warn!(call_id = %p.ev.call_id, event = kind.as_str(), error = %detail, url = %target.redacted, count, "CTI delivery failed, retrying");
                } else {
                    debug!(call_id = %p.ev.call_id, event = kind.as_str(), attempt = n, error = %detail, "CTI delivery failed again");
                }
                last_error = detail;
                let remaining = cfg.give_up_after.saturating_sub(p.enqueued.elapsed());
                tokio::time::sleep(backoff.min(remaining)).await;
                backoff = (backoff * 2).min(cfg.retry_max.max(MIN_BACKOFF));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_statuses() {
        assert!(matches!(
            classify(200, "{}", EventKind::Hangup, 1),
            Verdict::Delivered(_)
        ));
        assert!(matches!(
            classify(503, "", EventKind::Hangup, 1),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            classify(429, "", EventKind::Answer, 1),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            classify(401, "{}", EventKind::NewCall, 1),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(422, "{}", EventKind::NewCall, 3),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(302, "", EventKind::NewCall, 1),
            Verdict::Reject(_)
        ));
        let exists = r#"{"error":"This object already exists."}"#;
        assert!(matches!(
            classify(500, exists, EventKind::NewCall, 2),
            Verdict::AlreadyExists
        ));
        assert!(matches!(
            classify(500, exists, EventKind::NewCall, 1),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            classify(500, exists, EventKind::Hangup, 2),
            Verdict::Retry(_)
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
