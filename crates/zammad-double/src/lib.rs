//! A Zammad Generic CTI test double for sipcti ([`spawn_double`], [`serve_double`]).
//!
//! An HTTP server that behaves like Zammad's CTI endpoint: token check (401), direction check
//! (422), unknown event (422), duplicate `newCall` (500 "This object already exists."),
//! `answer`/`hangup` for an unknown call (500), `answer` after `hangup` ignored, block list
//! (reject busy), caller-id rules where `*` is one or more characters (dial), per-call state
//! with Zammad's "missed" rule, column cuts, HTML error bodies without `Accept: application/json`.
//! A second `hangup` for a call is processed as a new event, like Zammad does: it recomputes
//! the missed flag from the call's state, so a missed inbound call stops being missed
//! ([`CallRecord::hangups`] counts them).
//! It logs every request (`GET /api/v1/cti/log`) and can be switched to delay, fail, reset or
//! process-then-reset
//! (`POST /api/v1/cti/_mode`, or [`ZammadDouble::set_mode`]).
//!
//! It is its own crate so that the production CTI client (`sipcti-cti`) does not link an
//! HTTP server; `sipcti zammad-double`, `sipcti demo` and the tests use it.

#![warn(missing_docs)]

mod double;

pub use double::{
    pattern_matches, serve_double, spawn_double, CallRecord, CallState, CallerIdRule, DoubleConfig,
    LoggedRequest, Mode, Rules, RulesError, ZammadDouble, MAX_CALLS, MAX_LOGGED_REQUESTS,
};
