//! The client transaction (RFC 3261 17.1): the proxy's side of a request
//! it forwarded.
//!
//! * `ProxyCore::start_client_tx`: send the forwarded request and arm
//!   Timer A (INVITE) or E (non-INVITE) over UDP, Timer B or F, and Timer C
//!   for an INVITE (16.6 step 11, 16.8).
//! * `ProxyCore::client_tx_response`: a matched response moves the state
//!   machine (Calling, Proceeding, Completed; RFC 6026 Accepted), ACKs a
//!   non-2xx final response hop by hop (17.1.1.3), restarts Timer C on a
//!   provisional above 100, sends a CANCEL that waited for a provisional
//!   (9.1), and says whether the response goes upstream (16.7).
//! * `ProxyCore::cancel_branch`: RFC 3261 9.1 / 16.10, the CANCEL client
//!   transaction of a pending INVITE branch.
//! * Timers A-F, C and the CANCEL wait: the `timer_*` handlers here
//!   ([`crate::timers`] names them).
//! * RFC 6026 7.2 Accepted INVITE records (`AcceptedInvites`,
//!   `ProxyCore::remember_accepted`, `ProxyCore::relay_accepted_2xx`):
//!   an INVITE client transaction is freed at its first 2xx; later 2xx
//!   retransmissions are relayed through a small record instead.

use bytes::Bytes;
use std::collections::VecDeque;

use sipcti_table::StableMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipcti_dialog::Side;
use sipcti_wire::{SipMessage, TransportKind};

use crate::forward::Forwarded;
use crate::ids::{ClientKey, ClientKeyRef, ClientKeyView, ClientTxId, Method, ServerTxId};
use crate::messages::{build_ack, build_cancel_with_reason, has_second_via};
use crate::output::log_sample;
use crate::proxy::ProxyCore;
use crate::routing::{toward, NextHop, Target};
use crate::timers::{Timer, TimerKeys};

/// The state of a client transaction (RFC 3261 17.1.1, 17.1.2, RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CliState {
    /// INVITE sent, nothing back yet (Timer A retransmits).
    Calling,
    /// A provisional came (or a non-INVITE was sent: Trying and
    /// Proceeding are one state here; Timer E retransmits).
    Proceeding,
    /// A final response came (non-2xx for an INVITE).
    Completed,
    /// RFC 6026: a 2xx to the INVITE came.
    Accepted,
}

/// The peer of a server transaction: where its responses go.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// Destination of responses (RFC 3261 18.2.2 / RFC 3581).
    pub(crate) reply_to: Target,
    /// Transport the request came over.
    pub(crate) transport: TransportKind,
    /// The side the request came from.
    pub(crate) side: Side,
    /// Branch of the request's top Via as received: the second Via of
    /// every response relayed upstream must carry it (shared: the
    /// upstream is copied per relayed response).
    pub(crate) branch: Arc<str>,
}

/// A client transaction.
pub(crate) struct ClientTx {
    /// The server transaction whose request this forwards (`None` for a CANCEL).
    pub(crate) server: Option<ServerTxId>,
    /// The side the request went to: its responses must come from there.
    pub(crate) dest_side: Side,
    /// Where the responses go (the server transaction's peer), kept here so
    /// a 2xx can still be relayed once the server transaction is gone.
    pub(crate) upstream: Upstream,
    /// The method.
    pub(crate) method: Method,
    /// The request as sent, parsed (an INVITE's: its CANCEL and the ACK of
    /// a retransmitted final response are built from it; `None` for a
    /// non-INVITE forwarded as bytes, see [`crate::forward::Forwarded`]).
    pub(crate) req: Option<SipMessage>,
    /// The bytes of the request as sent, resent by Timers A and E.
    pub(crate) data: Bytes,
    /// The transaction's timers, cancelled with it.
    pub(crate) timer_keys: TimerKeys,
    /// Where the request went.
    pub(crate) dest: Target,
    /// Over which transport.
    pub(crate) transport: TransportKind,
    /// Where it is in its state machine.
    pub(crate) state: CliState,
    /// The current retransmission interval (Timers A and E).
    pub(crate) interval: Duration,
    /// A CANCEL waits for the first provisional (RFC 3261 9.1).
    pub(crate) cancel_requested: bool,
    /// The CANCEL was sent.
    pub(crate) cancel_sent: bool,
    /// The RFC 3326 `Reason` of the CANCEL (a ring group's other branches,
    /// or the one of the CANCEL from upstream, RFC 3326 section 2).
    pub(crate) cancel_reason: Option<String>,
    /// When Timer C really expires (restarted by provisionals > 100).
    pub(crate) timer_c_at: Option<Instant>,
    /// The key it is found by.
    pub(crate) key: ClientKey,
}

impl ClientTx {
    fn is_invite(&self) -> bool {
        self.method == Method::Invite
    }

    fn has_final(&self) -> bool {
        matches!(self.state, CliState::Completed | CliState::Accepted)
    }

    /// The request bytes to send again: a reference-counted clone of the
    /// stored request, not a copy.
    fn request_bytes(&self) -> Option<Bytes> {
        Some(self.data.clone())
    }
}

/// RFC 6026 7.2: an INVITE client transaction in the Accepted state,
/// reduced to what relaying 2xx retransmissions needs. The transaction
/// itself is freed at its first 2xx; this record lives for
/// [`crate::CoreConfig::wait`]. A 2xx that matches no client transaction is
/// relayed only through such a record, and only when it comes from the
/// side the INVITE went to (as Kamailio's tm does: a reply that matches no
/// transaction is dropped).
#[derive(Debug, Clone)]
pub(crate) struct AcceptedInvite {
    /// The side the INVITE went to.
    downstream: Side,
    /// Where the 2xx goes.
    upstream: Upstream,
}

/// The Accepted INVITE records by client transaction key, with their
/// expiry order (all live [`crate::CoreConfig::wait`]).
#[derive(Default)]
pub(crate) struct AcceptedInvites {
    records: StableMap<ClientKey, AcceptedInvite>,
    expiry: VecDeque<(Instant, ClientKey)>,
}

impl AcceptedInvites {
    /// Records kept.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// When the oldest record expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.front().map(|e| e.0)
    }

    /// Drop the records expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self.expiry.front().is_some_and(|e| e.0 <= now) {
            if let Some((_, key)) = self.expiry.pop_front() {
                self.records.remove(&key);
            }
        }
    }
}

/// What a response did to its client transaction, for the proxy to go on.
pub(crate) struct ClientOutcome {
    /// Send it upstream (16.7 steps 5-10).
    pub(crate) forward: bool,
    /// The transaction is an INVITE one.
    pub(crate) is_invite: bool,
    /// Its server transaction.
    pub(crate) server: Option<ServerTxId>,
    /// Where the server transaction's responses go.
    pub(crate) upstream: Upstream,
}

impl ProxyCore {
    /// Arm a timer that belongs to client transaction `cid`: it is removed
    /// with the transaction.
    pub(crate) fn arm_client(&mut self, cid: ClientTxId, at: Instant, t: Timer) {
        let k = self.timers.arm(at, t);
        if let Some(ctx) = self.clients.get_mut(&cid) {
            ctx.timer_keys.push(k);
        }
    }

    /// Free client transaction `cid`, its key and its timers.
    pub(crate) fn remove_client(&mut self, cid: ClientTxId) {
        if let Some(c) = self.clients.remove(&cid) {
            self.client_keys.remove(&c.key);
            self.timers.cancel(c.timer_keys);
        }
    }

    /// RFC 3261 16.6 step 10 and 17.1: create the client transaction of
    /// `fwd` (forwarded for server transaction `sid` with our Via `branch`),
    /// send it to `hop`, arm Timers A/E (UDP), B/F and, for an INVITE, C.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_client_tx(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        fwd: Forwarded,
        branch: Arc<str>,
        method: Method,
        hop: NextHop,
        dest_side: Side,
        upstream: Upstream,
    ) -> ClientTxId {
        let cid = self.next_client_id();
        let is_invite = method == Method::Invite;
        let key = ClientKey {
            branch,
            method: method.clone(),
        };
        let (req, data) = match fwd {
            Forwarded::Message(m) => {
                let data = m.bytes();
                (Some(m), data)
            }
            Forwarded::Bytes(b) => (None, b),
        };
        let ctx = ClientTx {
            server: Some(sid),
            dest_side,
            upstream,
            method,
            req,
            data: data.clone(),
            timer_keys: TimerKeys::default(),
            dest: hop.target.clone(),
            transport: hop.transport,
            state: if is_invite {
                CliState::Calling
            } else {
                CliState::Proceeding
            },
            interval: self.cfg.t1,
            cancel_requested: false,
            cancel_sent: false,
            cancel_reason: None,
            timer_c_at: if is_invite {
                Some(now + self.cfg.timer_c)
            } else {
                None
            },
            key: key.clone(),
        };
        self.client_keys.insert(key, cid);
        self.clients.insert(cid, ctx);
        self.send(hop.transport, hop.target, data, Some(cid));
        let (retransmit, timeout) = if is_invite {
            (Timer::A(cid), Timer::B(cid))
        } else {
            (Timer::E(cid), Timer::F(cid))
        };
        if hop.transport == TransportKind::Udp {
            self.arm_client(cid, now + self.cfg.t1, retransmit);
        }
        self.arm_client(cid, now + self.cfg.t1 * 64, timeout);
        if is_invite {
            self.arm_client(cid, now + self.cfg.timer_c, Timer::C(cid));
        }
        cid
    }

    /// RFC 3261 9.1 / 16.10: cancel the pending INVITE branch `cid`. Before
    /// any provisional response the CANCEL waits for one; after a final
    /// response (or a CANCEL already sent) nothing happens.
    pub(crate) fn cancel_branch(&mut self, now: Instant, cid: ClientTxId) {
        self.cancel_branch_with(now, cid, None);
    }

    /// [`ProxyCore::cancel_branch`] with an RFC 3326 `Reason` header on
    /// the CANCEL (kept when the CANCEL has to wait for a provisional).
    pub(crate) fn cancel_branch_with(
        &mut self,
        now: Instant,
        cid: ClientTxId,
        reason: Option<String>,
    ) {
        let Some(ctx) = self.clients.get_mut(&cid) else {
            return;
        };
        if !ctx.is_invite() || ctx.cancel_sent || ctx.has_final() {
            return;
        }
        if reason.is_some() {
            ctx.cancel_reason = reason;
        }
        if ctx.state == CliState::Calling {
            // RFC 3261 9.1: wait for a provisional response before CANCEL
            ctx.cancel_requested = true;
            return;
        }
        ctx.cancel_sent = true;
        let Some(invite) = ctx.req.as_ref() else {
            return;
        };
        let cancel = build_cancel_with_reason(invite, ctx.cancel_reason.as_deref());
        let (t, d, branch) = (ctx.transport, ctx.dest.clone(), ctx.key.branch.clone());
        let (dest_side, upstream) = (ctx.dest_side, ctx.upstream.clone());
        let id = self.next_client_id();
        let key = ClientKey {
            branch,
            method: Method::Cancel,
        };
        let req = match SipMessage::parse(cancel.clone(), &self.cfg.limits) {
            Ok(m) => m,
            Err(_) => return,
        };
        self.client_keys.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientTx {
                server: None,
                dest_side,
                upstream,
                method: Method::Cancel,
                data: req.bytes(),
                req: Some(req),
                timer_keys: TimerKeys::default(),
                dest: d.clone(),
                transport: t,
                state: CliState::Proceeding,
                interval: self.cfg.t1,
                cancel_requested: false,
                cancel_sent: false,
                cancel_reason: None,
                timer_c_at: None,
                key,
            },
        );
        self.send(t, d, cancel, Some(id));
        // RFC 3261 9.1: without a final response 64*T1 after the CANCEL the
        // INVITE client transaction is considered cancelled and destroyed
        self.arm_client(cid, now + self.cfg.t1 * 64, Timer::CancelWait(cid));
        if t == TransportKind::Udp {
            self.arm_client(id, now + self.cfg.t1, Timer::E(id));
        }
        self.arm_client(id, now + self.cfg.t1 * 64, Timer::F(id));
    }

    /// The edge could not send a message of client transaction `client_tx`
    /// (TCP connect refused, name not resolvable...): RFC 3261 16.7 step 2 /
    /// 8.1.3.1, the branch answers 503 (unless it already had a final
    /// response). The transaction is freed; an unknown id is only counted
    /// in [`crate::CoreStats::transport_errors`].
    pub fn handle_transport_error(&mut self, now: Instant, client_tx: ClientTxId) {
        self.stats.transport_errors += 1;
        let Some(ctx) = self.clients.remove(&client_tx) else {
            return;
        };
        self.client_keys.remove(&ctx.key);
        if ctx.has_final() {
            return;
        }
        if let Some(sid) = ctx.server {
            self.branch_final_from_proxy(now, sid, client_tx, 503, "Service Unavailable");
        }
    }

    /// RFC 3261 17.1.1 / 17.1.2 (with RFC 6026 Accepted): response `msg`
    /// (status `status`, key `key`) arrived for client transaction `cid`
    /// from `side`. Moves the state machine, ACKs a non-2xx final to an
    /// INVITE (17.1.1.3), arms Timer D or frees the transaction (keeping an
    /// Accepted INVITE record for a 2xx), and sends a CANCEL that waited
    /// for this provisional. `None` when `cid` is unknown.
    pub(crate) fn client_tx_response(
        &mut self,
        now: Instant,
        cid: ClientTxId,
        msg: &SipMessage,
        key_ref: &ClientKeyRef<'_>,
        status: u16,
        side: Side,
    ) -> Option<ClientOutcome> {
        let ctx = self.clients.get_mut(&cid)?;
        let is_invite = ctx.is_invite();
        let server = ctx.server;
        let upstream = ctx.upstream.clone();
        let mut forward = false;
        let mut send_cancel = false;
        let mut ack = None;
        let mut first_final = false;
        match status {
            100..=199 => {
                if ctx.state == CliState::Calling {
                    ctx.state = CliState::Proceeding;
                }
                if is_invite {
                    if status > 100 {
                        // Timer C restarts (RFC 3261 16.7 step 2)
                        ctx.timer_c_at = Some(now + self.cfg.timer_c);
                    }
                    if ctx.cancel_requested && !ctx.cancel_sent {
                        send_cancel = true;
                    }
                }
                forward = status != 100 && ctx.method != Method::Cancel;
            }
            200..=299 => {
                if is_invite {
                    forward = true; // every 2xx goes upstream (RFC 3261 16.7 step 10)
                    if ctx.state != CliState::Accepted {
                        ctx.state = CliState::Accepted;
                        first_final = true;
                    }
                } else if !matches!(ctx.state, CliState::Completed) {
                    ctx.state = CliState::Completed;
                    first_final = true;
                    forward = ctx.method != Method::Cancel;
                }
            }
            _ => {
                if is_invite {
                    ack = ctx.req.as_ref().map(|r| build_ack(r, msg));
                }
                if !ctx.has_final() {
                    ctx.state = CliState::Completed;
                    first_final = true;
                    forward = ctx.method != Method::Cancel;
                }
            }
        }
        let (t, d) = (ctx.transport, ctx.dest.clone());
        if let Some(a) = ack {
            self.send(t, d, a, None);
        }
        if first_final {
            if is_invite && status >= 300 {
                // Timer D: an INVITE in Completed ACKs retransmitted final
                // responses hop by hop, so it keeps its request a while
                let wait = if t == TransportKind::Udp {
                    self.cfg.wait
                } else {
                    Duration::ZERO
                };
                self.arm_client(cid, now + wait, Timer::D(cid));
            } else {
                // Timer K and RFC 6026 Accepted only absorb retransmitted
                // responses; without the transaction a retransmitted
                // non-2xx is dropped as stray (the same outcome) and a
                // retransmitted 2xx is relayed through the Accepted INVITE
                // record. So the slot is freed at once (it counts in
                // max_transactions).
                if is_invite && (200..300).contains(&status) {
                    let key = self.clients.get(&cid).map(|c| c.key.clone());
                    let key = key.unwrap_or_else(|| key_ref.to_owned_key());
                    self.remember_accepted(now, key, side, upstream.clone());
                }
                self.remove_client(cid);
            }
        }
        if send_cancel {
            if let Some(c) = self.clients.get_mut(&cid) {
                c.state = CliState::Proceeding;
            }
            self.cancel_branch(now, cid);
        }
        Some(ClientOutcome {
            forward,
            is_invite,
            server,
            upstream,
        })
    }

    /// The side client transaction `cid` sent its request to.
    pub(crate) fn client_dest_side(&self, cid: ClientTxId) -> Option<Side> {
        self.clients.get(&cid).map(|c| c.dest_side)
    }

    /// Whether client transaction `cid` forwards a request for a server
    /// transaction (a CANCEL of ours does not).
    pub(crate) fn client_has_server(&self, cid: ClientTxId) -> bool {
        self.clients.get(&cid).is_some_and(|c| c.server.is_some())
    }

    /// Keep an Accepted INVITE record for client transaction `key` (RFC
    /// 6026 7.2), bounded by `max_transactions`; it expires after
    /// [`crate::CoreConfig::wait`].
    pub(crate) fn remember_accepted(
        &mut self,
        now: Instant,
        key: ClientKey,
        downstream: Side,
        up: Upstream,
    ) {
        if self
            .accepted
            .records
            .contains_key(&key as &dyn ClientKeyView)
        {
            return;
        }
        if self.accepted.records.len() >= self.cfg.max_transactions {
            self.stats.accepted_table_full += 1;
            if log_sample(self.stats.accepted_table_full) {
                tracing::warn!(
                    count = self.stats.accepted_table_full,
                    "Accepted INVITE table full: later 2xx retransmissions of this call are dropped"
                );
            }
            return;
        }
        self.accepted
            .expiry
            .push_back((now + self.cfg.wait, key.clone()));
        self.accepted.records.insert(
            key,
            AcceptedInvite {
                downstream,
                upstream: up,
            },
        );
    }

    /// A 2xx to an INVITE whose client transaction is gone: relayed only
    /// when an Accepted INVITE record matches its branch, it comes from
    /// the side that INVITE went to (`side`), and its next Via is the one
    /// the INVITE arrived with (same branch, not naming this proxy). It
    /// goes to where the INVITE came from, never to where the Via points.
    /// Anything else is dropped and counted as stray, and never reaches
    /// the call tracker.
    pub(crate) fn relay_accepted_2xx(
        &mut self,
        now: Instant,
        msg: &SipMessage,
        key: &ClientKeyRef<'_>,
        side: Side,
        source: SocketAddr,
    ) {
        let Some(rec) = self.accepted.records.get(key as &dyn ClientKeyView) else {
            self.count_stray(source, "2xx matches no transaction: dropped");
            return;
        };
        if rec.downstream != side {
            self.stats.misdirected_responses += 1;
            if log_sample(self.stats.misdirected_responses) {
                tracing::warn!(%source, count = self.stats.misdirected_responses, "2xx retransmission from the wrong side dropped");
            }
            return;
        }
        let up = rec.upstream.clone();
        let vias = msg.vias();
        let next_ok = vias.get(1).is_some_and(|v| {
            !self.cfg.is_us(v.host, v.port) && v.branch().unwrap_or("") == &*up.branch
        });
        if !next_ok {
            self.count_stray(source, "2xx retransmission with a foreign next Via dropped");
            return;
        }
        self.stats.relayed_2xx_retransmissions += 1;
        let evs = self.track(msg, side, now);
        self.emit_events(evs);
        self.relay_2xx_to(msg, &up);
    }

    /// Send a 2xx to an INVITE upstream to `up` without a server
    /// transaction (RFC 3261 16.7 step 10, RFC 6026).
    pub(crate) fn relay_2xx_to(&mut self, msg: &SipMessage, up: &Upstream) {
        if !has_second_via(msg) {
            return;
        }
        let bytes = self.response_upstream_bytes(msg, toward(up.side), up.transport);
        self.send(up.transport, up.reply_to.clone(), bytes, None);
    }

    /// Timers A (RFC 3261 17.1.1.2) and E (17.1.2.2): retransmit the
    /// request over UDP while Calling (A) or Trying/Proceeding (E),
    /// doubling the interval (E capped at T2 = 4 s).
    pub(crate) fn timer_a_e(&mut self, now: Instant, cid: ClientTxId) {
        let Some(ctx) = self.clients.get_mut(&cid) else {
            return;
        };
        let again = if ctx.is_invite() {
            ctx.state == CliState::Calling // Timer A
        } else {
            ctx.state == CliState::Proceeding || ctx.state == CliState::Calling
            // Timer E
        };
        if !again {
            return;
        }
        let Some(data) = ctx.request_bytes() else {
            return;
        };
        let (tr, d) = (ctx.transport, ctx.dest.clone());
        let next_timer = if ctx.is_invite() {
            ctx.interval *= 2;
            Timer::A(cid)
        } else {
            ctx.interval = (ctx.interval * 2).min(Duration::from_secs(4)); // T2
            Timer::E(cid)
        };
        let next = now + ctx.interval;
        self.send(tr, d, data, Some(cid));
        self.arm_client(cid, next, next_timer);
    }

    /// Timers B (RFC 3261 17.1.1.2) and F (17.1.2.2): no final response
    /// within 64*T1: the transaction ends and the caller gets a 408.
    pub(crate) fn timer_b_f(&mut self, now: Instant, cid: ClientTxId) {
        let Some(ctx) = self.clients.get(&cid) else {
            return;
        };
        let timed_out = if ctx.is_invite() {
            ctx.state == CliState::Calling
        } else {
            !ctx.has_final()
        };
        if !timed_out {
            return;
        }
        let server = ctx.server;
        self.remove_client(cid);
        if let Some(sid) = server {
            self.branch_final_from_proxy(now, sid, cid, 408, "Request Timeout");
        }
    }

    /// Timer C (RFC 3261 16.6 step 11, 16.8): no final response to the
    /// INVITE, and no provisional for Timer C since the last: CANCEL the
    /// branch (if it had a provisional) and answer 408 upstream. Re-armed
    /// when a provisional restarted it.
    pub(crate) fn timer_c(&mut self, now: Instant, cid: ClientTxId) {
        let Some(ctx) = self.clients.get(&cid) else {
            return;
        };
        if ctx.has_final() {
            return;
        }
        if let Some(at) = ctx.timer_c_at {
            if at > now {
                self.arm_client(cid, at, Timer::C(cid));
                return;
            }
        }
        self.stats.timer_c += 1;
        let server = ctx.server;
        let provisional = ctx.state == CliState::Proceeding;
        if provisional {
            self.cancel_branch(now, cid);
        }
        if let Some(sid) = server {
            self.branch_final_from_proxy(now, sid, cid, 408, "Request Timeout");
        }
    }

    /// RFC 3261 9.1: 64*T1 after its CANCEL the INVITE client transaction
    /// without a final response is destroyed; the caller still gets its
    /// final answer, a 487 (no-op when it had one).
    pub(crate) fn cancel_wait(&mut self, now: Instant, cid: ClientTxId) {
        let Some(ctx) = self.clients.get(&cid) else {
            return;
        };
        if ctx.has_final() {
            return;
        }
        let server = ctx.server;
        self.remove_client(cid);
        if let Some(sid) = server {
            self.branch_final_from_proxy(now, sid, cid, 487, "Request Terminated");
        }
    }
}
