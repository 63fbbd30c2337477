//! What a [`CtiClient`] is started with ([`ClientConfig`]) and why it may
//! refuse it ([`ConfigError`]).

use super::*;

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
    /// The `answer` and `hangup` of a call whose `newCall` was admitted always have room
    /// (reserved, on top of this); a `newCall` that finds the queue full makes room by
    /// dropping the oldest call none of whose events was sent yet, whole, or is dropped
    /// whole itself.
    pub queue_capacity: usize,
    /// Maximum concurrent HTTP requests, each for a different call (default 8), not
    /// counting the `newcall_slots`. A retry waiting for its backoff holds none.
    pub max_in_flight: usize,
    /// Further concurrent requests reserved for a `newCall` an INVITE waits for (its first
    /// attempt, from [`CtiClient::new_call`]), so that a backlog of `answer`/`hangup`
    /// holding all `max_in_flight` slots cannot delay an INVITE (default 8; 0: no
    /// reservation). At most `max_in_flight + newcall_slots` requests run at once.
    pub newcall_slots: usize,
    /// Timeout of one HTTP attempt, connect included (default 5 s).
    pub request_timeout: Duration,
    /// First retry delay; doubles per retry (default 200 ms).
    pub retry_initial: Duration,
    /// Cap of the retry delay (default 30 s).
    pub retry_max: Duration,
    /// An event still undelivered this long after it was queued is dropped, counted and
    /// logged (default 1 h).
    pub give_up_after: Duration,
    /// The durable outbox: an SQLite file (created if missing; its directory must exist)
    /// where every event is written before delivery and kept until delivered, and where
    /// the calls open in Zammad are remembered. `None` (default): in memory only.
    pub outbox: Option<PathBuf>,
    /// Group commit of the outbox: a change waits at most this long for others to share
    /// its commit, which is also about the most that a SIGKILL can lose (default 20 ms).
    pub outbox_sync: Duration,
    /// A call found open in the outbox at start (its `newCall` without its `hangup`) and
    /// not hung up since gets a `hangup` this long after its `newCall` (default 4 h, the
    /// proxy's `timers.max_call_duration_s`).
    pub open_call_timeout: Duration,
    /// Most calls open at once (newCall admitted, hangup not yet submitted), each with room
    /// reserved for its answer and hangup (default 100 000, the proxy's `limits.max_calls`).
    pub max_open_calls: usize,
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
            .field("newcall_slots", &self.newcall_slots)
            .field("request_timeout", &self.request_timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("give_up_after", &self.give_up_after)
            .field("outbox", &self.outbox)
            .field("outbox_sync", &self.outbox_sync)
            .field("open_call_timeout", &self.open_call_timeout)
            .field("max_open_calls", &self.max_open_calls)
            .finish()
    }
}

impl Default for ClientConfig {
    /// Stdout sink, JSON, 1500 ms newCall wait, 10 000 events, 8 in flight plus 8 for
    /// newCalls, 5 s per attempt, backoff 200 ms doubling to 30 s, give up after 1 h, no
    /// outbox (20 ms group commit when one is set), open calls closed after 4 h, at most
    /// 100 000 open calls.
    fn default() -> Self {
        ClientConfig {
            url: None,
            format: Format::Json,
            newcall_timeout: Duration::from_millis(1500),
            queue_capacity: 10_000,
            max_in_flight: 8,
            newcall_slots: 8,
            request_timeout: Duration::from_secs(5),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3600),
            outbox: None,
            outbox_sync: Duration::from_millis(20),
            open_call_timeout: Duration::from_secs(4 * 3600),
            max_open_calls: 100_000,
        }
    }
}

/// Why [`CtiClient::start`] refused a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse, is not http/https, has no host, is no valid HTTP request
    /// target, or its userinfo is not UTF-8 once percent-decoded. `url` is the redacted form.
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
    /// The outbox file cannot be opened, created or read (the text names the path).
    #[error("CTI outbox: {0}")]
    Outbox(String),
}
