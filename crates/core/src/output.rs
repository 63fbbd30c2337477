//! What the core asks its edge to do ([`Output`], [`Transmit`]) and
//! what it counts ([`CoreStats`]).

use bytes::Bytes;
use sipcti_dialog::CallEvent;
use sipcti_wire::TransportKind;

use crate::ids::{CallId, ClientTxId};
use crate::routing::Target;

/// One thing to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// UDP or TCP.
    pub transport: TransportKind,
    /// Destination.
    pub dest: Target,
    /// The message. A reference-counted buffer: a retransmission is a
    /// clone of the stored message, never a copy.
    pub data: Bytes,
    /// The client transaction this message belongs to: report a failure to
    /// send it with [`crate::ProxyCore::handle_transport_error`].
    pub client_tx: Option<ClientTxId>,
}

/// What the core asks the edge to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send a message.
    Transmit(Transmit),
    /// Deliver `newCall` and report Zammad's answer with
    /// [`crate::ProxyCore::handle_cti_answer`] and this token (fail open on errors
    /// or after the deadline: answer [`crate::CtiAnswer::Continue`]).
    NewCall {
        /// Token to give back.
        token: CallId,
        /// The event.
        event: CallEvent,
    },
    /// Deliver an `answer` or `hangup` (off the call path).
    Event(CallEvent),
    /// A binding of a phone registered through sipcti was added, refreshed
    /// or removed: keep the edge's durable copy in step, so that
    /// [`crate::ProxyCore::restore_binding`] can put it back after a restart.
    Binding(crate::registration::BindingUpdate),
}

/// Counters (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Requests received.
    pub requests: u64,
    /// NAT keep-alive datagrams (CRLF and the like) absorbed.
    pub keepalives: u64,
    /// REGISTERs answered 503 (or bindings not stored) because the binding
    /// table was full.
    pub bindings_refused: u64,
    /// Path-mode 2xx to a REGISTER without a Path header (the registrar
    /// may not support RFC 3327).
    pub path_not_echoed: u64,
    /// Responses received.
    pub responses: u64,
    /// Requests answered 400/505 (malformed).
    pub malformed_requests: u64,
    /// Responses dropped as malformed.
    pub malformed_responses: u64,
    /// Unparseable datagrams dropped (no usable headers).
    pub unparseable: u64,
    /// Requests refused with 403 (not inside, not trunk, or bad destination).
    pub forbidden: u64,
    /// 483 answers.
    pub too_many_hops: u64,
    /// 482 answers.
    pub loops: u64,
    /// 420 answers.
    pub bad_extension: u64,
    /// 503 answers because the transaction table was full.
    pub overloaded: u64,
    /// Request retransmissions absorbed.
    pub retransmissions: u64,
    /// Responses that matched no transaction (nor an Accepted INVITE
    /// record) and were dropped.
    pub stray_responses: u64,
    /// Responses from an address that is neither inside nor trunk, dropped
    /// before matching: they never reach a transaction or the call tracker.
    pub foreign_responses: u64,
    /// Responses that matched a client transaction but came from the other
    /// side than the request went to, dropped.
    pub misdirected_responses: u64,
    /// 2xx retransmissions relayed through an Accepted INVITE record after
    /// the client transaction was freed (RFC 6026 7.2).
    pub relayed_2xx_retransmissions: u64,
    /// Accepted INVITE records not kept because the table was full (later
    /// 2xx retransmissions of those calls are dropped).
    pub accepted_table_full: u64,
    /// Requests answered 513 because forwarding would make them larger
    /// than `limits.max_message_bytes`.
    pub too_large: u64,
    /// Requests answered 500 because the forwarded copy did not parse.
    pub internal_errors: u64,
    /// Final responses that carried only our Via (answered by the
    /// transaction itself instead of being forwarded).
    pub only_our_via: u64,
    /// Calls whose caller id could not be rewritten because the tracker's
    /// table was full.
    pub rewrite_untracked: u64,
    /// Inbound calls rejected on Zammad's word.
    pub rejected_by_zammad: u64,
    /// Outbound calls whose caller id was rewritten.
    pub caller_id_rewrites: u64,
    /// newCall answers that came too late or failed (call went on unchanged).
    pub fail_open: u64,
    /// Timer C expiries.
    pub timer_c: u64,
    /// Transport failures reported by the edge.
    pub transport_errors: u64,
    /// 503 answers to initial requests of a source over its rate or banned
    /// for it ([`crate::SourceLimits`]; who: [`crate::ProxyCore::limited_sources`]).
    pub rate_limited: u64,
    /// 503 answers to initial requests of a source holding its share of
    /// the transaction or call table.
    pub source_share_limited: u64,
    /// 503 answers to initial requests of a new source while the source
    /// table was full of active sources.
    pub source_table_full: u64,
}

/// Whether the `n`-th occurrence of a noisy condition is logged: the
/// first 10, then at powers of two. Every occurrence is still counted in
/// [`CoreStats`], so a flood (an attack, an overload) cannot flood the log.
pub fn log_sample(n: u64) -> bool {
    n <= 10 || n.is_power_of_two()
}
