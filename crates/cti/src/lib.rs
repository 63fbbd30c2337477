//! Zammad Generic CTI for sipcti: the delivery client.
//!
//! # Client ([`CtiClient`])
//!
//! Reports calls to `POST https://{zammad}/api/v1/cti/{token}` as Zammad's events
//! `newCall`, `answer` and `hangup` ([`Event`]), JSON by default or form-urlencoded
//! ([`Format`]), always with `Accept: application/json`, over one keep-alive HTTP client.
//!
//! * **Bounded**: at most `queue_capacity` events are buffered; beyond that an event is dropped,
//!   counted and logged ([`Stats::dropped`]).
//! * **Ordered per call**: events of one `callId` go out strictly in submission order, the next
//!   only after the previous was delivered or finally dropped, so `answer`/`hangup` never reach
//!   Zammad before it answered the call's `newCall` (Zammad answers 500 otherwise). Different
//!   calls proceed concurrently, up to `max_in_flight` requests.
//! * **Retrying**: connect errors, timeouts, 5xx, 408 and 429 are retried with exponential
//!   backoff (`retry_initial` doubling up to `retry_max`) until the event is `give_up_after`
//!   old. A *retried* `newCall` answered 500 "already exists" counts as delivered: its first
//!   attempt reached Zammad. Other statuses (401 wrong token, 422, other 4xx, 3xx) are not
//!   retried: the event is dropped with the reason; later events of the call are still attempted
//!   (only once if the call's newCall was dropped, as Zammad cannot know the call).
//! * **Fail open**: [`CtiClient::new_call`] waits at most `newcall_timeout` for Zammad's
//!   [`Decision`] (reject / dial / continue); on time-out delivery goes on in the background.
//! * **Secret URL**: the token may be anywhere after the host; only [`redact_url`]'s form
//!   (`scheme://host[:port]/***`) is ever logged or shown by `Debug`,
//!   and reqwest errors are logged without their URL.
//! * **Stdout sink**: with no URL, each event is printed as one compact JSON line on stdout.
//!
//! Known limit: an `answer`/`hangup` whose attempt timed out on our side after Zammad had
//! processed it is sent again (Zammad answers 200 either way, so the client cannot tell); keep
//! `request_timeout` well above Zammad's response time.
//!
//! The Zammad test double is the `sipcti-zammad-double` crate, so this client does not
//! link an HTTP server.

#![warn(missing_docs)]

mod client;
mod event;
mod redact;

pub use client::{ClientConfig, ConfigError, CtiClient, DroppedStats, NewCallOutcome, Stats};
pub use event::{parse_answer, Decision, Event, Format, User};
pub use redact::redact_url;
