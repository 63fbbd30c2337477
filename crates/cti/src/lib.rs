//! Zammad Generic CTI for sipcti: the delivery client.
//!
//! # Client ([`CtiClient`])
//!
//! Reports calls to `POST https://{zammad}/api/v1/cti/{token}` as Zammad's events
//! `newCall`, `answer` and `hangup` ([`Event`]), JSON by default or form-urlencoded
//! ([`Format`]), always with `Accept: application/json`, over one keep-alive HTTP client.
//!
//! * **Bounded, whole calls**: at most `queue_capacity` events are buffered, plus room
//!   reserved for the `answer` and `hangup` of every call whose `newCall` was admitted (at most
//!   `max_open_calls` calls). A `newCall` that finds the queue full drops the oldest call none
//!   of whose events may have reached Zammad, whole, or, if there is none, is dropped whole
//!   itself; the later events of a dropped call are dropped too. So no call reaches Zammad as
//!   a fragment ("ringing" or "talking" forever). Every drop is counted by reason
//!   ([`Stats::dropped`], [`Stats::calls_dropped`]) and logged with the callId (sampled).
//! * **Ordered per call**: events of one `callId` go out strictly in submission order, the next
//!   only after the previous was delivered or finally dropped, so `answer`/`hangup` never reach
//!   Zammad before it answered the call's `newCall` (Zammad answers 500 otherwise). Different
//!   calls proceed concurrently, up to `max_in_flight` requests, plus `newcall_slots`
//!   requests only for the `newCall`s an INVITE waits for: a backlog of `answer`/`hangup`
//!   never delays an INVITE. Each request runs in one of that many long-lived delivery
//!   lanes (no task spawned per event).
//! * **Retrying**: connect errors, timeouts, 5xx, 408 and 429 are retried with exponential
//!   backoff (`retry_initial` doubling up to `retry_max`) until the event is `give_up_after`
//!   old. A retry waiting for its backoff holds no delivery slot, and the first delivery after
//!   failures wakes the waiting retries, so when Zammad recovers a new `newCall` is answered
//!   at once and the backlog follows. A `newCall` answered 500 "already exists" after an
//!   earlier attempt (in this run or before a restart) counts as delivered: that attempt
//!   reached Zammad. Other statuses (401 wrong token, 422, other 4xx, 3xx) are not
//!   retried: the event is dropped with the reason; later events of the call are still attempted
//!   (only once if the call's newCall was dropped, as Zammad cannot know the call).
//! * **Never a second hangup that changes the call**: Zammad processes a second `hangup` as a
//!   new event and recomputes "missed" from the call's state, so a missed inbound call stops
//!   being missed. A `hangup` of an inbound call that was not answered (cause not
//!   `forwarded`) is therefore sent at most once once it may have reached Zammad: it is marked
//!   in the outbox (durably) before it is sent, and an attempt whose outcome is unknown (the
//!   request left but no status came back: time-out, closed connection, 504) is not repeated,
//!   in this run or after a restart; it is counted in [`Stats::hangups_unconfirmed`] and
//!   logged with its callId. All other events are delivered at least once (Zammad takes a
//!   repeated `newCall`, `answer`, or the `hangup` of an outbound or answered call without
//!   change).
//! * **Durable outbox** (`outbox`, an SQLite file through `sipcti-store`): every event is
//!   written before it is delivered, by a writer thread in group commits (`outbox_sync`, the
//!   most a SIGKILL can lose), and removed once its call's `hangup` is delivered. At start the
//!   client delivers what the outbox holds, in order per call, alongside new events; calls
//!   open at the stop (a `newCall` without its `hangup`) get a `hangup` after
//!   `open_call_timeout` unless one is submitted first. [`CtiClient::close`] drains for a
//!   bounded time and leaves the rest in the outbox ([`CloseReport`]).
//! * **No cold start**: at start the client opens its keep-alive connections, one per lane,
//!   with `HEAD /` on the server's root (a safe method, no token, not the CTI endpoint: it
//!   reaches no Zammad logic), so the first calls' `newCall`s do not wait for connects.
//! * **Fail open**: [`CtiClient::new_call`] waits at most `newcall_timeout` for Zammad's
//!   [`Decision`] (reject / dial / continue); on time-out delivery goes on in the background.
//! * **Secret URL**: the token may be anywhere after the host; only [`redact_url`]'s form
//!   (`scheme://host[:port]/***`) is ever logged or shown by `Debug`,
//!   and HTTP errors are logged without their URL.
//! * **Proxy from the environment**: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`
//!   (lower case too), read at start as reqwest and curl read them: an http URL's requests go
//!   to the proxy in absolute form, an https URL through a `CONNECT` tunnel; a SOCKS proxy is
//!   not supported (its connects fail).
//! * **Stdout sink**: with no URL, each event is printed as one compact JSON line on stdout.
//!
//! Known limit: an `answer`, or the `hangup` of an outbound or answered call, whose attempt
//! timed out on our side after Zammad had processed it is sent again (harmless for Zammad's
//! record); a missed call's `hangup` in that case is not, so if it never arrived the call stays
//! "ringing" in Zammad: keep `request_timeout` well above Zammad's response time.
//!
//! The Zammad test double is the `sipcti-zammad-double` crate, so this client does not
//! link an HTTP server.

#![warn(missing_docs)]

mod client;
mod event;
mod outbox;
mod redact;

pub use client::{
    ClientConfig, CloseReport, ConfigError, CtiClient, DroppedStats, NewCallOutcome, OpenCall,
    Stats,
};
pub use event::{parse_answer, Decision, Event, Format, User};
pub use redact::redact_url;
