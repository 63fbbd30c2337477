//! The server transaction (RFC 3261 17.2): the proxy's side of a request
//! it received.
//!
//! * Created for every request the proxy forwards or holds (16.3 passed),
//!   keyed by [`ServerKey`] (17.2.3); an INVITE answers 100 Trying at once
//!   (16.2, 17.2.1).
//! * `ProxyCore::absorb_retransmission`: a retransmitted request gets the
//!   last response again and goes no further (17.2.1, 17.2.2).
//! * States (`SrvState`): `AwaitingCti` (sipcti: the INVITE is held for
//!   Zammad's `newCall` answer, carrying where it goes next), Proceeding,
//!   Completed, Confirmed, and RFC 6026 Accepted (after a 2xx to an INVITE:
//!   INVITE retransmissions are absorbed, 2xx retransmissions relayed).
//! * Timers G (response retransmission), H (wait for the ACK), I
//!   (Confirmed), J (non-INVITE Completed) and RFC 6026 L (Accepted):
//!   [`crate::timers`].
//! * `ProxyCore::final_from_proxy`: a final response the proxy generates
//!   itself (408, 487, 503, 486, 500, 513); `ProxyCore::forward_response`:
//!   a response from the client transaction sent upstream (16.7 steps 3-10).

use bytes::Bytes;
use std::time::{Duration, Instant};

use sipcti_dialog::{CallEvent, Side};
use sipcti_event::{Direction, EventKind};
use sipcti_wire::{response_for, SipMessage, TransportKind};

use crate::admission::SourceKey;
use crate::client_tx::Upstream;
use crate::config::CoreConfig;
use crate::ids::{Method, ServerKey, ServerKeyView, ServerTxId};
use crate::messages::{has_second_via, key_hash, push_hex};
use crate::output::log_sample;
use crate::proxy::{Handled, ProxyCore, Rx, Step};
use crate::routing::{other_side, reply_target, toward, NextHop, Target, ViaReceived};
use crate::timers::{Timer, TimerKeys};

/// Where a held INVITE goes once Zammad has answered.
pub(crate) struct PendingForward {
    /// The next hop chosen by routing.
    pub(crate) hop: NextHop,
    /// Whether the request is outside a dialog.
    pub(crate) initial: bool,
}

/// The state of a server transaction (RFC 3261 17.2.1, 17.2.2, RFC 6026).
pub(crate) enum SrvState {
    /// An INVITE held until Zammad answers `newCall` (or
    /// [`Timer::CtiWait`]); forwarded then to `pending`.
    AwaitingCti {
        /// Where it goes.
        pending: PendingForward,
    },
    /// Forwarded, no final response yet.
    Proceeding,
    /// A final response was sent (non-2xx for an INVITE).
    Completed,
    /// The ACK of a non-2xx came (INVITE only; Timer I).
    Confirmed,
    /// RFC 6026: a 2xx to the INVITE was sent.
    Accepted,
}

/// A server transaction.
pub(crate) struct ServerTx {
    /// The request as received (with received/rport, or with them in
    /// `received`); dropped once the transaction has its final response.
    pub(crate) req: Option<SipMessage>,
    /// The `received`/`rport` values not yet written into `req`
    /// ([`ViaReceived`]): the forwarding edit writes them, and so does
    /// every response built from `req`.
    pub(crate) received: Option<ViaReceived>,
    /// The transaction's timers, cancelled with it.
    pub(crate) timer_keys: TimerKeys,
    /// Its method.
    pub(crate) method: Method,
    /// The side the request came from.
    pub(crate) side: Side,
    /// Where responses go (RFC 3261 18.2.2, RFC 3581).
    pub(crate) reply_to: Target,
    /// The transport the request came over.
    pub(crate) transport: TransportKind,
    /// Where it is in its state machine.
    pub(crate) state: SrvState,
    /// The last response sent, resent to retransmissions.
    pub(crate) last_response: Option<Bytes>,
    /// The client transaction of the forwarded request (a fork's first branch).
    pub(crate) client: Option<crate::ids::ClientTxId>,
    /// The response context of a forked INVITE (a ring group, RFC 3261 16.7).
    pub(crate) fork: Option<Box<crate::fork::Fork>>,
    /// The key it is found by.
    pub(crate) key: ServerKey,
    /// [`crate::messages::key_hash`] of `key`: the To tag of the proxy's own
    /// answers ([`ServerTx::to_tag`]) and the second part of the forwarded
    /// request's branch (0 for a CANCEL's transaction: neither is used).
    pub(crate) key_hash: u64,
    /// [`crate::messages::loop_hash`] of the request, computed once for
    /// the 16.3 loop check and reused for the branch of the forwarded request.
    pub(crate) loop_hash: u64,
    /// The call's direction once `newCall` was emitted.
    pub(crate) direction: Option<Direction>,
    /// The source this transaction is counted against in
    /// [`crate::admission::Admission`].
    pub(crate) source: Option<SourceKey>,
}

impl ServerTx {
    /// A CANCEL's own server transaction (RFC 3261 9.2), Completed with its
    /// 200 `ok` already sent: it only absorbs the CANCEL's retransmissions.
    pub(crate) fn cancel(
        key: ServerKey,
        side: Side,
        reply_to: Target,
        transport: TransportKind,
        ok: Bytes,
    ) -> ServerTx {
        ServerTx {
            req: None,
            received: None,
            timer_keys: TimerKeys::default(),
            method: Method::Cancel,
            side,
            reply_to,
            transport,
            state: SrvState::Completed,
            last_response: Some(ok),
            client: None,
            fork: None,
            key,
            loop_hash: 0,
            key_hash: 0,
            direction: None,
            source: None,
        }
    }

    /// A bare transaction holding `key`, for the table's own tests.
    #[cfg(test)]
    pub(crate) fn for_table_test(key: ServerKey) -> ServerTx {
        let to = Target::Addr(std::net::SocketAddr::from(([127, 0, 0, 1], 5060)));
        ServerTx::cancel(key, Side::Inside, to, TransportKind::Udp, Bytes::new())
    }

    /// The To tag of the proxy's own answers (RFC 3261 8.2.6.2): `sc` and
    /// the key's hash in hex, so a retransmitted request gets the same tag.
    pub(crate) fn to_tag(&self) -> String {
        let mut tag = String::with_capacity(18);
        tag.push_str("sc");
        push_hex(&mut tag, self.key_hash);
        tag
    }

    /// Whether this is an INVITE transaction.
    pub(crate) fn is_invite(&self) -> bool {
        self.method == Method::Invite
    }

    /// Whether the INVITE is held for Zammad.
    pub(crate) fn is_awaiting_cti(&self) -> bool {
        matches!(self.state, SrvState::AwaitingCti { .. })
    }

    /// What a retransmission of the request gets: the last response, or
    /// a 100 Trying while held. A reference-counted clone, not a copy.
    fn retransmission_answer(&self, cfg: &CoreConfig) -> Option<Bytes> {
        match (&self.last_response, &self.state) {
            (Some(r), _) => Some(r.clone()),
            (None, SrvState::AwaitingCti { .. }) => self.req.as_ref().map(|r| {
                let r = cfg.materialize(r.clone(), self.received);
                Bytes::from(response_for(&r, 100, "Trying", None, &[]))
            }),
            _ => None,
        }
    }
}

impl ProxyCore {
    /// Arm a timer that belongs to server transaction `sid`: it is removed
    /// with the transaction, so the timer wheel never outgrows the tables.
    pub(crate) fn arm_server(&mut self, sid: ServerTxId, at: Instant, t: Timer) {
        let k = self.timers.arm(at, t);
        if let Some(stx) = self.servers.get_mut(&sid) {
            stx.timer_keys.push(k);
        }
    }

    /// Free server transaction `sid`, its key, its timers and its slot in
    /// the admission table.
    pub(crate) fn remove_server(&mut self, sid: ServerTxId) {
        if let Some(stx) = self.servers.remove(&sid) {
            self.bindings.forget(sid);
            self.siblings.remove(sid);
            if let Some(src) = stx.source {
                self.admission.close_transaction(src);
            }
            self.timers.cancel(stx.timer_keys);
        }
    }

    /// RFC 3261 17.2.1 / 17.2.2: a request matching server transaction
    /// `key` is a retransmission: the last response goes out again (only
    /// to the side the transaction belongs to) and the request stops here.
    pub(crate) fn absorb_retransmission(&mut self, key: &dyn ServerKeyView, side: Side) -> Step {
        let Some(sid) = self.servers.find(key) else {
            return Ok(());
        };
        self.stats.retransmissions += 1;
        if let Some(stx) = self.servers.get(&sid).filter(|stx| stx.side == side) {
            if let Some(r) = stx.retransmission_answer(&self.cfg) {
                let (t, d) = (stx.transport, stx.reply_to.clone());
                self.send(t, d, r, None);
            }
        }
        Err(Handled)
    }

    /// RFC 3261 17.2: create the server transaction of request `msg`
    /// (validated and routed), answer 100 Trying to an INVITE (16.2), let
    /// the call tracker see the request. Returns the transaction and the
    /// `newCall` event when the request starts a call (then it is held).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_server_tx(
        &mut self,
        now: Instant,
        msg: SipMessage,
        key: ServerKey,
        loop_hash: u64,
        side: Side,
        initial: bool,
        rx: Rx,
    ) -> (ServerTxId, Option<CallEvent>) {
        let sid = self.next_server_id();
        let key_hash = key_hash(&key);
        let reply_to = reply_target(&msg, rx.source, rx.transport);
        let method = Method::of(&msg);
        let is_invite = method == Method::Invite;
        // 100 Trying at once to an INVITE (RFC 3261 16.2 / 17.2.1), with
        // the received/rport that wait for the forwarding edit written
        // into it (ViaReceived::patch_response), or into the request first
        let (mut msg, mut received) = (msg, rx.received);
        let trying = if is_invite {
            let t = response_for(&msg, 100, "Trying", None, &[]);
            match received.map(|r| r.patch_response(&msg, &t)) {
                None => Some(t),
                Some(Some(patched)) => Some(patched),
                Some(None) => {
                    msg = self.cfg.materialize(msg, received.take());
                    Some(response_for(&msg, 100, "Trying", None, &[]))
                }
            }
        } else {
            None
        };
        let events = self.track(&msg, side, now);
        let counted = self.admission.open_transaction(now, rx.source.ip(), side);
        let mut stx = ServerTx {
            req: Some(msg),
            received,
            timer_keys: TimerKeys::default(),
            method,
            side,
            reply_to,
            transport: rx.transport,
            state: SrvState::Proceeding,
            last_response: None,
            client: None,
            fork: None,
            key,
            loop_hash,
            key_hash,
            direction: None,
            source: counted,
        };
        if let Some(trying) = trying {
            let trying = Bytes::from(trying);
            stx.last_response = Some(trying.clone());
            self.send(rx.transport, stx.reply_to.clone(), trying, None);
        }
        // the newCall is taken out; the other events stay in order (in
        // the tracker's vector: no second one is built)
        let mut new_call = None;
        let mut rest = events;
        let mut i = 0;
        while i < rest.len() {
            if rest[i].kind == EventKind::NewCall && is_invite && initial {
                let ev = rest.remove(i);
                stx.direction = Some(ev.direction);
                self.admission
                    .call_started(now, rx.source.ip(), side, &ev.call_id);
                new_call = Some(ev);
            } else {
                i += 1;
            }
        }
        self.servers.insert(sid, stx);
        self.emit_events(rest);
        (sid, new_call)
    }

    /// RFC 3261 9.2: the CANCEL's own server transaction, answered 200
    /// (`ok`) at once; it absorbs the CANCEL's retransmissions until Timer J.
    pub(crate) fn create_cancel_server_tx(
        &mut self,
        now: Instant,
        key: ServerKey,
        side: Side,
        reply_to: Target,
        transport: TransportKind,
        ok: Bytes,
    ) {
        let sid = self.next_server_id();
        self.servers
            .insert(sid, ServerTx::cancel(key, side, reply_to, transport, ok));
        let wait = self.cfg.wait;
        self.arm_server(sid, now + wait, Timer::J(sid));
    }

    /// RFC 3261 17.2.1: the ACK of a non-2xx final response ends INVITE
    /// server transaction `key` (Confirmed, Timer I). `true` when it did
    /// (the ACK is absorbed); only an ACK from the transaction's side counts.
    pub(crate) fn absorb_ack(
        &mut self,
        now: Instant,
        key: &dyn ServerKeyView,
        side: Option<Side>,
    ) -> bool {
        let Some(sid) = self.servers.find(key) else {
            return false;
        };
        let Some(stx) = self.servers.get_mut(&sid).filter(|s| Some(s.side) == side) else {
            return false;
        };
        if !matches!(stx.state, SrvState::Completed | SrvState::Confirmed) {
            return false;
        }
        stx.state = SrvState::Confirmed;
        // Timer I: T4 over UDP, 0 over TCP
        let t4 = Duration::from_secs(5);
        let at = now
            + if stx.transport == TransportKind::Udp {
                t4
            } else {
                Duration::ZERO
            };
        self.arm_server(sid, at, Timer::I(sid));
        true
    }

    /// A final response generated by the proxy for server transaction `sid`
    /// (487, 408, 503, 486, 500, 513). The tracker sees it like any
    /// response. Nothing happens when the transaction already has its final
    /// response.
    pub(crate) fn final_from_proxy(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        status: u16,
        reason: &str,
    ) {
        let Some(stx) = self.servers.get_mut(&sid) else {
            return;
        };
        if matches!(
            stx.state,
            SrvState::Completed | SrvState::Confirmed | SrvState::Accepted
        ) {
            return;
        }
        let Some(req) = stx.req.take() else {
            return;
        };
        let req = self.cfg.materialize(req, stx.received.take());
        let bytes = Bytes::from(response_for(&req, status, reason, Some(&stx.to_tag()), &[]));
        stx.state = SrvState::Completed;
        stx.last_response = Some(bytes.clone());
        let (t, d) = (stx.transport, stx.reply_to.clone());
        let side_to = other_side(stx.side);
        let is_invite = stx.is_invite();
        self.send(t, d, bytes.clone(), None);
        // a failed branch of a call the provider forked ends nothing while
        // another branch rings (crate::siblings)
        let hidden = is_invite && self.sibling_pending(sid);
        if let Some(m) = SipMessage::parse(bytes, &self.cfg.limits)
            .ok()
            .filter(|_| !hidden)
        {
            let evs = self.track(&m, side_to, now);
            self.emit_events(evs);
        }
        self.complete_server(now, sid, is_invite, t);
    }

    /// Arm the timers of a transaction that has just entered Completed:
    /// Timers G and H for an INVITE (17.2.1), Timer J otherwise (17.2.2),
    /// shortened to the wait time like Kamailio's tm.
    pub(crate) fn complete_server(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        is_invite: bool,
        t: TransportKind,
    ) {
        let udp = t == TransportKind::Udp;
        if is_invite {
            if udp {
                self.arm_server(sid, now + self.cfg.t1, Timer::G(sid, self.cfg.t1));
            }
            self.arm_server(sid, now + self.cfg.t1 * 64, Timer::H(sid));
        } else {
            let j = if udp { self.cfg.wait } else { Duration::ZERO };
            self.arm_server(sid, now + j, Timer::J(sid));
        }
    }

    /// RFC 3261 16.7 steps 3-10: send response `msg` of the client
    /// transaction upstream through server transaction `server` (or,
    /// without one, a 2xx to an INVITE straight to `upstream`), and move
    /// the server transaction on (Completed, or RFC 6026 Accepted).
    pub(crate) fn forward_response(
        &mut self,
        now: Instant,
        server: Option<ServerTxId>,
        msg: &SipMessage,
        status: u16,
        is_invite: bool,
        upstream: &Upstream,
    ) {
        let Some(sid) = server else { return };
        let Some(stx) = self.servers.get_mut(&sid) else {
            if (200..300).contains(&status) && is_invite {
                self.relay_2xx_to(msg, upstream);
            }
            return;
        };
        if matches!(stx.state, SrvState::Completed | SrvState::Confirmed) {
            // We already answered (Timer C 408, 503...). Any other final
            // response is absorbed, but a 2xx to an INVITE MUST still be
            // forwarded (RFC 3261 16.7 step 5, RFC 6026): the callee is up.
            if is_invite && (200..300).contains(&status) && has_second_via(msg) {
                let (t, d, up) = (stx.transport, stx.reply_to.clone(), toward(stx.side));
                let bytes = self.response_upstream_bytes(msg, up, t);
                self.send(t, d, bytes, None);
            }
            return;
        }
        let up = toward(stx.side);
        if !has_second_via(msg) {
            // RFC 3261 16.7 step 3: no Via would remain, so this response
            // must not be forwarded. A broken UAS (e.g. a 487 built from
            // the CANCEL's Via) must not leave the caller without an answer:
            // the transaction answers with the same status itself.
            self.stats.only_our_via += 1;
            if log_sample(self.stats.only_our_via) {
                tracing::warn!(
                    status,
                    count = self.stats.only_our_via,
                    "response carries only our Via; answering from the transaction instead"
                );
            }
            if status >= 200 && !(200..300).contains(&status) {
                let reason = msg.reason().unwrap_or("").to_string();
                self.final_from_proxy(now, sid, status, &reason);
            }
            return;
        }
        let t_up = stx.transport;
        let bytes = Bytes::from(self.response_upstream_bytes(msg, up, t_up));
        let Some(stx) = self.servers.get_mut(&sid) else {
            return;
        };
        let (t, d) = (stx.transport, stx.reply_to.clone());
        let srv_invite = stx.is_invite();
        stx.last_response = Some(bytes.clone());
        let mut complete = false;
        if status >= 200 {
            if srv_invite && status < 300 {
                // RFC 6026 Accepted: INVITE retransmissions are absorbed;
                // 2xx retransmissions come from the callee and are relayed
                stx.req = None;
                stx.last_response = None;
                if !matches!(stx.state, SrvState::Accepted) {
                    stx.state = SrvState::Accepted;
                    let at = now + self.cfg.wait;
                    self.arm_server(sid, at, Timer::L(sid));
                }
            } else {
                stx.req = None;
                stx.state = SrvState::Completed;
                complete = true;
            }
        }
        self.send(t, d, bytes, None);
        if complete {
            self.complete_server(now, sid, srv_invite, t);
        }
    }

    /// Timer G (RFC 3261 17.2.1): resend the non-2xx final response until
    /// the ACK, doubling the interval up to T2.
    pub(crate) fn timer_g(&mut self, now: Instant, sid: ServerTxId, interval: Duration) {
        let Some(stx) = self.servers.get(&sid) else {
            return;
        };
        if !matches!(stx.state, SrvState::Completed) {
            return;
        }
        if let Some(r) = stx.last_response.clone() {
            let (t, d) = (stx.transport, stx.reply_to.clone());
            self.send(t, d, r, None);
        }
        let next = (interval * 2).min(Duration::from_secs(4));
        self.arm_server(sid, now + next, Timer::G(sid, next));
    }
}
