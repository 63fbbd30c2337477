//! Request validation (RFC 3261 16.3) and sipcti's admission checks: the
//! steps of [`ProxyCore`]'s request pipeline that may refuse a request
//! before it gets a server transaction. Each answers statelessly (with
//! the proxy's own To tag) and stops the pipeline, or lets it go on.
//!
//! * 16.3 step 1, reasonable syntax: `validate_request` (400, 505).
//! * sipcti's policy, sources are inside or trunk: `require_side` (403).
//! * 16.3 step 3, Max-Forwards: `check_max_forwards` (483).
//! * 16.3 step 4, loop detection: `detect_loop` (482).
//! * 16.3 step 5, Proxy-Require: `check_proxy_require` (420).
//! * OPTIONS to the proxy itself: `answer_options_to_us` (200).
//! * Per-source limits (Kamailio pike and htable ban): `admit` (503).
//! * The bound on the transaction tables: `check_capacity` (503).

use std::time::Instant;

use sipcti_dialog::Side;
use sipcti_wire::{SipMessage, Uri};

use crate::admission::{Limit, Start, Verdict};
use crate::ids::Method;
use crate::messages::{hex16, BRANCH_PREFIX};
use crate::output::log_sample;
use crate::proxy::{Handled, ProxyCore, Rx, Step};

/// What `OPTIONS` to the proxy itself answers in `Allow`.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, MESSAGE, SUBSCRIBE, NOTIFY, REGISTER";

impl ProxyCore {
    /// RFC 3261 16.3 step 1: a request that does not validate gets its
    /// 400 (or 505) when it has a Via to answer to.
    pub(crate) fn validate_request(&mut self, msg: &SipMessage, rx: Rx) -> Step {
        let Err(e) = msg.validate() else {
            return Ok(());
        };
        self.stats.malformed_requests += 1;
        if log_sample(self.stats.malformed_requests) {
            tracing::warn!(source = %rx.source, reason = %e.reason(), "malformed request");
        }
        if msg.top_via().is_some() {
            self.respond_stateless(msg, rx, e.status(), &e.reason(), &[]);
        }
        Err(Handled)
    }

    /// A stranger (neither inside nor trunk) can neither start nor
    /// retransmit anything: matching a transaction by its Via alone would
    /// let it trigger our answers. It gets a 403.
    pub(crate) fn require_side(
        &mut self,
        msg: &SipMessage,
        method: &Method,
        side: Option<Side>,
        rx: Rx,
    ) -> Step<Side> {
        if let Some(side) = side {
            return Ok(side);
        }
        self.stats.forbidden += 1;
        if log_sample(self.stats.forbidden) {
            tracing::warn!(source = %rx.source, %method, count = self.stats.forbidden, "request from an address that is neither inside nor trunk: 403");
        }
        self.respond_stateless(msg, rx, 403, "Forbidden", &[]);
        Err(Handled)
    }

    /// RFC 3261 16.3 step 3: Max-Forwards 0 gets 483.
    pub(crate) fn check_max_forwards(&mut self, msg: &SipMessage, rx: Rx) -> Step {
        if msg.max_forwards() != Some(0) {
            return Ok(());
        }
        self.stats.too_many_hops += 1;
        self.respond_stateless(msg, rx, 483, "Too Many Hops", &[]);
        Err(Handled)
    }

    /// RFC 3261 16.3 step 4: a Via of ours whose branch starts with this
    /// request's loop hash means it came back: 482. Returns the hash.
    /// (`lh` is [`crate::messages::loop_hash`] of `msg`, computed by the
    /// caller from the From and To tags it has read already.)
    pub(crate) fn detect_loop(&mut self, msg: &SipMessage, lh: u64, rx: Rx) -> Step<u64> {
        let mut buf = [0u8; 16];
        let hex = hex16(lh, &mut buf);
        // A branch of ours starting with the hash holds `BRANCH_PREFIX` +
        // hex: a request whose Via lines do not contain that text has not
        // looped, and its Vias need not be parsed (the usual case).
        let mut nb = [0u8; BRANCH_PREFIX.len() + 16];
        let (p, h) = nb.split_at_mut(BRANCH_PREFIX.len());
        p.copy_from_slice(BRANCH_PREFIX.as_bytes());
        h.copy_from_slice(hex.as_bytes());
        let needle = std::str::from_utf8(&nb).unwrap_or(BRANCH_PREFIX);
        if !msg.header_lines("Via").any(|v| v.value.contains(needle)) {
            return Ok(lh);
        }
        let looped = msg.via_iter().any(|v| {
            self.cfg.is_us(v.host, v.port)
                && v.branch()
                    .and_then(|b| b.strip_prefix(BRANCH_PREFIX))
                    .is_some_and(|b| b.starts_with(hex))
        });
        if !looped {
            return Ok(lh);
        }
        self.stats.loops += 1;
        self.respond_stateless(msg, rx, 482, "Loop Detected", &[]);
        Err(Handled)
    }

    /// RFC 3261 16.3 step 5: we support no extension, so any Proxy-Require
    /// gets 420 with the list in Unsupported.
    pub(crate) fn check_proxy_require(&mut self, msg: &SipMessage, rx: Rx) -> Step {
        let unsupported: Vec<&str> = msg.header_values("Proxy-Require");
        if unsupported.is_empty() {
            return Ok(());
        }
        self.stats.bad_extension += 1;
        let list = unsupported.join(", ");
        self.respond_stateless(msg, rx, 420, "Bad Extension", &[("Unsupported", &list)]);
        Err(Handled)
    }

    /// OPTIONS / keep-alive addressed to the proxy itself (no user part):
    /// 200 with Allow.
    pub(crate) fn answer_options_to_us(
        &mut self,
        msg: &SipMessage,
        method: &Method,
        initial: bool,
        rx: Rx,
    ) -> Step {
        if !initial || *method != Method::Options {
            return Ok(());
        }
        let Some(u) = msg.request_uri().and_then(|r| Uri::parse(r).ok()) else {
            return Ok(());
        };
        if u.user.is_some() || !self.cfg.is_us(u.host, u.port) {
            return Ok(());
        }
        self.respond_stateless(msg, rx, 200, "OK", &[("Allow", ALLOW)]);
        Err(Handled)
    }

    /// Admission (Kamailio pike + htable ban): a request is refused for
    /// its source's load (503 with Retry-After) before it reaches the call
    /// tracker (no CTI event). ACK and CANCEL never get here; neither does
    /// a request inside a call the tracker knows (the BYE of an established
    /// call): a To tag alone does not make a request exempt, or a flooder
    /// would add one.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        msg: &SipMessage,
        method: &Method,
        initial: bool,
        side: Side,
        rx: Rx,
    ) -> Step {
        let start = if initial && *method == Method::Invite {
            Start::Call
        } else {
            Start::Transaction
        };
        let Verdict::Refuse {
            limit,
            retry_after_s,
        } = self.admission.admit(now, rx.source.ip(), side, start)
        else {
            return Ok(());
        };
        match limit {
            Limit::Rate | Limit::Banned => self.stats.rate_limited += 1,
            Limit::TransactionShare | Limit::CallShare => self.stats.source_share_limited += 1,
            Limit::SourceTableFull => self.stats.source_table_full += 1,
        }
        let retry = retry_after_s.to_string();
        self.respond_stateless(
            msg,
            rx,
            503,
            "Service Unavailable",
            &[("Retry-After", &retry)],
        );
        Err(Handled)
    }

    /// The transaction table's bound: 503 when full. Requests inside a
    /// live call (the BYE of an established call) have a reserve of a
    /// tenth above the global limit.
    pub(crate) fn check_capacity(&mut self, msg: &SipMessage, live_call: bool, rx: Rx) -> Step {
        let max = self.cfg.max_transactions;
        let cap = if live_call {
            max.saturating_add((max / 10).max(1))
        } else {
            max
        };
        if self.servers.len() + self.clients.len() < cap {
            return Ok(());
        }
        self.stats.overloaded += 1;
        if log_sample(self.stats.overloaded) {
            tracing::warn!("transaction table full: 503");
        }
        self.respond_stateless(msg, rx, 503, "Service Unavailable", &[("Retry-After", "5")]);
        Err(Handled)
    }
}
