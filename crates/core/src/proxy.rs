//! The proxy (RFC 3261 16), joining the server transactions
//! ([`crate::server_tx`]), the client transactions ([`crate::client_tx`]),
//! routing ([`crate::routing`]), the hold for Zammad ([`crate::cti`]) and
//! the timers ([`crate::timers`]) into [`ProxyCore`].
//!
//! Feed it received bytes with their source ([`ProxyCore::handle_received`]),
//! Zammad's answers to `newCall` ([`ProxyCore::handle_cti_answer`]), transport
//! failures ([`ProxyCore::handle_transport_error`]) and the passage of time
//! ([`ProxyCore::handle_timeout`] at [`ProxyCore::poll_timeout`]); take what it
//! wants done from [`ProxyCore::poll_output`]: datagrams to send, `newCall`
//! events to await, and `answer`/`hangup` events to deliver. It never reads a
//! clock and never touches a socket, so tests drive it without sleeping.
//!
//! A request goes through `ProxyCore::on_request`, a pipeline of named
//! steps (each stops the request by answering, absorbing or dropping it):
//! `received_for` (18.2.1; written in at once or by the forwarding edit,
//! see `routing::ViaReceived`) → `validate_request` (16.3 step 1) → ACK to
//! `ProxyCore::on_ack` → `require_side` (403 for strangers) →
//! `absorb_retransmission` (17.2.3) → CANCEL to `ProxyCore::on_cancel`
//! (16.10) → `check_max_forwards` (16.3 step 3) → `detect_loop` (step 4) →
//! `check_proxy_require` (step 5) → `answer_options_to_us` → `admit`
//! (per-source limits) → `check_capacity` → `route` (16.3 step 2, 16.4,
//! 16.5) → `create_server_tx` (17.2) → `await_cti_or_forward` →
//! `ProxyCore::forward_request` (16.6) → `start_client_tx` (17.1).
//!
//! A response goes through `ProxyCore::on_response`: `validate_response`
//! → `response_side` (strangers dropped) → `check_top_via_ours` →
//! `match_client_tx` (17.1.3; else an RFC 6026 Accepted INVITE record) →
//! `check_response_side` → `check_2xx_keeps_a_via` (16.7 step 3) →
//! `client_tx_response` (17.1) → the call tracker → `forward_response`
//! (16.7 steps 4-10); for a ring group's branch `fork_response` decides
//! instead ([`crate::fork`], 16.7 with several branches).

use bytes::Bytes;
use std::collections::VecDeque;

use crate::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sipcti_dialog::{CallEvent, CallTracker, Side};
use sipcti_event::EventKind;
use sipcti_wire::{response_for, SipMessage, TransportKind, Uri};

use crate::admission::{Admission, LimitedSource};
use crate::client_tx::AcceptedInvites;
use crate::config::{admission_config, CoreConfig};
use crate::identity::Rewrite;
use crate::ids::{
    ClientKey, ClientKeyRef, ClientKeyView, ClientTxId, Method, ServerKey, ServerKeyRef,
    ServerKeyView, ServerTxId,
};
use crate::messages::{
    branch_in, fnv1a, has_second_via, loop_hash, loop_hash_of, salvage_error_response, BRANCH_LEN,
};
use crate::output::{log_sample, CoreStats, Output, Transmit};
use crate::registration::Bindings;
use crate::routing::{
    other_side, pop_routes, reply_target, NextHop, OurValues, Target, ViaReceived,
};
use crate::server_tx::{PendingForward, ServerTx};
use crate::siblings::{SiblingKey, Siblings};
use crate::tables::{ClientTable, ServerTable};
use crate::timers::{Timer, TimerWheel};
use sipcti_table::StableMap;

/// The message was dealt with (answered, absorbed or dropped): the
/// pipeline stops.
pub(crate) struct Handled;

/// Whether a datagram is a NAT keep-alive rather than a message: at most
/// 16 bytes of CR, LF, space, tab or NUL.
fn is_keepalive(data: &[u8]) -> bool {
    data.len() <= 16
        && data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

/// One step of a pipeline: `Err(Handled)` stops it.
pub(crate) type Step<T = ()> = Result<T, Handled>;

/// Where a request came from and over what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rx {
    /// The source address.
    pub(crate) source: SocketAddr,
    /// The transport.
    pub(crate) transport: TransportKind,
    /// The `received`/`rport` values of the request's top Via not yet
    /// written into it ([`ViaReceived`]): every response built from the
    /// request writes them in first ([`ProxyCore::respond_stateless`]).
    pub(crate) received: Option<ViaReceived>,
}

/// The proxy core. See the module docs.
pub struct ProxyCore {
    pub(crate) cfg: CoreConfig,
    pub(crate) tracker: CallTracker,
    pub(crate) servers: ServerTable,
    pub(crate) clients: ClientTable,
    pub(crate) client_keys: HashMap<ClientKey, ClientTxId>,
    pub(crate) timers: TimerWheel,
    /// Caller-id rewrites by (Call-ID, phone tag).
    /// (This and `call_rewrite` are [`StableMap`]s: a rewrite lingers 32 s
    /// after its call, so at 2,000 calls/s they hold ~64,000 entries, and a
    /// plain map's growth would stall forwarding while it rehashes.)
    pub(crate) rewrites: StableMap<(String, String), Rewrite>,
    /// The rewrite key of each tracked call, by the tracker's call id.
    pub(crate) call_rewrite: StableMap<String, (String, String)>,
    /// RFC 6026 7.2 Accepted INVITE records.
    pub(crate) accepted: AcceptedInvites,
    pub(crate) outputs: VecDeque<Output>,
    next_id: u64,
    pub(crate) stats: CoreStats,
    pub(crate) admission: Admission,
    /// Phones registered through sipcti ([`crate::registration`]).
    pub(crate) bindings: Bindings,
    /// The branches of calls the provider forked ([`crate::siblings`]).
    pub(crate) siblings: Siblings,
    /// Our Via and Record-Route values, built once from `cfg`.
    pub(crate) ours: OurValues,
}

impl ProxyCore {
    /// A new core with empty tables.
    pub fn new(cfg: CoreConfig) -> ProxyCore {
        // The transaction tables start at a modest size and grow with the
        // load (issue 9: an idle sipcti stays small; memory follows the
        // load, not `max_transactions`). Growing moves only boxes and
        // (hash, id) pairs (`crate::tables`), so it costs well under a
        // millisecond even at 65,536 transactions.
        const INITIAL_TABLE: usize = 4096;
        let tracker = CallTracker::new(cfg.tracker.clone());
        let cap = cfg.max_transactions.min(INITIAL_TABLE);
        let admission = Admission::new(admission_config(&cfg));
        let ours = OurValues::new(&cfg);
        ProxyCore {
            cfg,
            tracker,
            servers: ServerTable::with_capacity(cap),
            clients: ClientTable::with_capacity(cap),
            client_keys: HashMap::with_capacity_and_hasher(cap, Default::default()),
            timers: TimerWheel::default(),
            rewrites: StableMap::default(),
            call_rewrite: StableMap::default(),
            accepted: AcceptedInvites::default(),
            outputs: Default::default(),
            next_id: 1,
            stats: CoreStats::default(),
            admission,
            bindings: Bindings::default(),
            siblings: Siblings::default(),
            ours,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Open transactions (server, client).
    pub fn transactions(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// Accepted INVITE records (RFC 6026 7.2) kept to relay 2xx
    /// retransmissions; each lives [`CoreConfig::wait`], at most
    /// `max_transactions` at once.
    pub fn accepted_invites(&self) -> usize {
        self.accepted.len()
    }

    /// The `n` source addresses refused most often by the per-source
    /// limits (most first), with whether each is banned at `now`.
    pub fn limited_sources(&self, now: Instant, n: usize) -> Vec<LimitedSource> {
        self.admission.limited_sources(now, n)
    }

    /// The per-source admission table (open transactions and calls per
    /// source, its own counters).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Timers armed in the core itself (the call tracker's are separate):
    /// every one belongs to a live transaction or a lingering rewrite, so
    /// this never outgrows the tables.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// The call tracker (for its statistics).
    pub fn tracker(&self) -> &CallTracker {
        &self.tracker
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ProxyCore::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.next_deadline(),
            self.accepted.next_expiry(),
            self.tracker.poll_timeout(),
            self.bindings.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Apply a reloaded configuration (SIGHUP) without dropping a call:
    /// numbers, routes, phonebook, limits, timers and per-source limits
    /// take effect for what starts from now on; transactions, calls,
    /// bindings and rewrites are kept. Refused (`Err` with the reason, the
    /// old configuration stays) when it changes what needs a restart: the
    /// listen address and port, the advertised addresses, the trunk, the
    /// inside target, the networks, the registration mode, topology hiding.
    pub fn reconfigure(&mut self, cfg: CoreConfig) -> Result<(), &'static str> {
        let old = &self.cfg;
        if cfg.local != old.local
            || cfg.aliases != old.aliases
            || cfg.inside_ip != old.inside_ip
            || cfg.trunk_ip != old.trunk_ip
        {
            return Err("sip addresses changed: restart sipcti to apply");
        }
        if cfg.trunk.target != old.trunk.target
            || cfg.trunk.transport != old.trunk.transport
            || cfg.trunk_sources != old.trunk_sources
        {
            return Err("trunk changed: restart sipcti to apply");
        }
        if cfg.inside_target.target != old.inside_target.target
            || cfg.inside_target.transport != old.inside_target.transport
            || cfg.inside_networks != old.inside_networks
        {
            return Err("inside changed: restart sipcti to apply");
        }
        if cfg.registration.mode != old.registration.mode || cfg.topology != old.topology {
            return Err("registration mode or topology hiding changed: restart sipcti to apply");
        }
        self.tracker.set_config(cfg.tracker.clone());
        self.admission.set_config(admission_config(&cfg));
        self.cfg = cfg;
        self.ours = OurValues::new(&self.cfg);
        Ok(())
    }

    /// Give back an answered call that was open when sipcti last stopped
    /// (the edge finds it in the CTI outbox): its BYE, seen from now on,
    /// emits its `hangup`; never heard of again, it is closed
    /// `max_call_duration` after its `newCall`. False when the tracker's
    /// table is full or the call is tracked already.
    pub fn restore_call(&mut self, now: Instant, call: sipcti_dialog::RestoredCall) -> bool {
        self.tracker.restore(call, now)
    }

    /// Close every tracked call (the proxy is stopping): emits the hangups.
    pub fn shutdown(&mut self, now: Instant) {
        let evs = self.tracker.shutdown(now);
        self.emit_events(evs);
    }

    fn next_id(&mut self) -> u64 {
        let i = self.next_id;
        self.next_id += 1;
        i
    }

    /// A fresh server transaction id.
    pub(crate) fn next_server_id(&mut self) -> ServerTxId {
        ServerTxId(self.next_id())
    }

    /// A fresh client transaction id.
    pub(crate) fn next_client_id(&mut self) -> ClientTxId {
        ClientTxId(self.next_id())
    }

    /// Queue `data` for `dest`; `client_tx` when it belongs to one. A
    /// `Vec<u8>` built here becomes `Bytes` without a copy.
    pub(crate) fn send(
        &mut self,
        transport: TransportKind,
        dest: Target,
        data: impl Into<Bytes>,
        client_tx: Option<ClientTxId>,
    ) {
        self.outputs.push_back(Output::Transmit(Transmit {
            transport,
            dest,
            data: data.into(),
            client_tx,
        }));
    }

    /// Whether `msg` belongs to a call the tracker knows and has not ended
    /// (by Call-ID and the From or To tag, whichever is the caller's).
    /// (`ftag` and `ttag`: `msg`'s From and To tags, read by the caller.)
    fn in_live_call(&self, msg: &SipMessage, ftag: Option<&str>, ttag: Option<&str>) -> bool {
        let Some(cid) = msg.call_id() else {
            return false;
        };
        [ftag, ttag]
            .into_iter()
            .flatten()
            .any(|tag| self.tracker.is_live_call(cid, tag))
    }

    /// Feed the call tracker the messages that can change a call's events
    /// (the others cannot; its timers run from `handle_timeout`).
    ///
    /// An initial INVITE from the trunk to a registered phone names the
    /// phone's binding in its Request-URI (`sip:rb…@sipcti` or the phone's
    /// own Contact): Zammad's `to` is then the To header's number, the
    /// number the caller dialled.
    pub(crate) fn track(&mut self, msg: &SipMessage, side: Side, now: Instant) -> Vec<CallEvent> {
        if !sipcti_dialog::affects_calls(msg) {
            return Vec::new();
        }
        if side == Side::Trunk && msg.method() == Some("INVITE") {
            if let Some(target_user) = self.binding_target(msg) {
                if let Ok(mut v) = sipcti_dialog::MsgView::from_message(msg) {
                    v.ruri_user = None;
                    // the called person, and who answers when the answer
                    // names nobody (a Contact user like baresip's `201-0x…`)
                    v.target_user = target_user;
                    return self.tracker.on_view(&v, side, now);
                }
            }
        }
        self.tracker.on_message(msg, side, now)
    }

    /// Queue call events; a hangup frees its admission slot and schedules
    /// the end of its caller-id rewrite.
    pub(crate) fn emit_events(&mut self, evs: Vec<CallEvent>) {
        for ev in evs {
            if ev.kind == EventKind::Hangup {
                self.admission.call_ended(&ev.call_id);
                if let Some(key) = self.call_rewrite.remove(&ev.call_id) {
                    // keep the rewrite a little for the final 200 to BYE and retransmissions
                    let at = ev.at + self.cfg.t1 * 64;
                    self.timers.arm(at, Timer::RewriteExpire(key));
                }
            }
            self.outputs.push_back(Output::Event(ev));
        }
    }

    pub(crate) fn count_stray(&mut self, source: SocketAddr, what: &'static str) {
        self.stats.stray_responses += 1;
        if log_sample(self.stats.stray_responses) {
            tracing::warn!(%source, count = self.stats.stray_responses, "{what}");
        }
    }

    // ------------------------------------------------------------------ input

    /// A message arrived from `source` over `transport` at `now`.
    ///
    /// Requests that fail validation get a 400 (or 505) with the reason;
    /// malformed responses are dropped and counted. Never panics on input.
    pub fn handle_received(
        &mut self,
        now: Instant,
        data: impl Into<Bytes>,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let data: Bytes = data.into();
        if is_keepalive(&data) {
            // a NAT keep-alive (CRLF, CRLFCRLF, a NUL...; RFC 5626 4.4 and
            // common phones' practice on UDP): absorbed, nothing to answer
            self.stats.keepalives += 1;
            return;
        }
        let msg = match SipMessage::parse_or_return(data, &self.cfg.limits) {
            Ok(m) => m,
            Err((e, data)) => {
                // A request the parser cannot index still gets its 400 (or
                // 505) when the headers needed for a response can be found.
                if let Some(resp) = salvage_error_response(&data, source, e.status(), &e.reason()) {
                    self.stats.malformed_requests += 1;
                    if log_sample(self.stats.malformed_requests) {
                        tracing::warn!(%source, reason = %e.reason(), "malformed request answered from salvaged headers");
                    }
                    self.send(transport, Target::Addr(source), resp, None);
                } else {
                    self.stats.unparseable += 1;
                    if log_sample(self.stats.unparseable) {
                        tracing::warn!(%source, reason = %e.reason(), "dropped unparseable message");
                    }
                }
                return;
            }
        };
        if msg.is_request() {
            self.stats.requests += 1;
            let rx = Rx {
                source,
                transport,
                received: None,
            };
            self.on_request(now, msg, rx);
        } else {
            self.stats.responses += 1;
            self.on_response(now, msg, source);
        }
    }

    /// A response of the proxy's own without a transaction (RFC 3261 16.3,
    /// 8.2.6): To tag `sc` + a hash of Call-ID and status; never to an ACK.
    pub(crate) fn respond_stateless(
        &mut self,
        req: &SipMessage,
        rx: Rx,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        if req.method() == Some("ACK") {
            return;
        }
        // a request whose received/rport wait for the forwarding edit
        // (ViaReceived) gets them in its answers as well
        let materialized;
        let req = match rx.received {
            Some(r) => {
                materialized = self.cfg.apply_received(req.clone(), r);
                &materialized
            }
            None => req,
        };
        let tag = format!(
            "sc{:x}",
            fnv1a(&[req.call_id().unwrap_or(""), &status.to_string()])
        );
        let bytes = response_for(req, status, reason, Some(&tag), extra);
        let dest = reply_target(req, rx.source, rx.transport);
        self.send(rx.transport, dest, bytes, None);
    }

    /// RFC 3261 16.3 and 16.4-16.6 for a request: the pipeline of named
    /// steps described in the module docs.
    fn on_request(&mut self, now: Instant, msg: SipMessage, rx: Rx) {
        let _ = self.request_steps(now, msg, rx);
    }

    fn request_steps(&mut self, now: Instant, msg: SipMessage, rx: Rx) -> Step {
        // received/rport (RFC 3261 18.2.1): written into the forwarding
        // edit when that gives the same bytes and validation (ViaReceived),
        // else into the message at once
        let (msg, rx) = match self.cfg.received_for(&msg, rx.source) {
            Some(r) if ViaReceived::deferrable(&msg) && msg.validate().is_ok() => {
                let rx = Rx {
                    received: Some(r),
                    ..rx
                };
                (msg, rx)
            }
            r => {
                let msg = self.cfg.materialize(msg, r);
                self.validate_request(&msg, rx)?;
                (msg, rx)
            }
        };
        let method = Method::of(&msg);
        let side = self.cfg.classify(rx.source.ip());
        if method == Method::Ack {
            self.on_ack(now, msg, rx, side);
            return Ok(());
        }
        let key = ServerKeyRef::of(&msg, method.clone()).ok_or(Handled)?;
        let side = self.require_side(&msg, &method, side, rx)?;
        self.absorb_retransmission(&key, side)?;
        if method == Method::Cancel {
            self.on_cancel(now, msg, rx, side);
            return Ok(());
        }
        self.check_max_forwards(&msg, rx)?;
        // From and To parsed once for the loop hash, `initial` and the
        // live-call test
        let ftag = msg.from().and_then(|f| f.tag());
        let ttag = msg.to().and_then(|t| t.tag());
        let loop_hash = self.detect_loop(&msg, loop_hash_of(&msg, ftag, ttag), rx)?;
        self.check_proxy_require(&msg, rx)?;
        let initial = ttag.is_none();
        self.answer_options_to_us(&msg, &method, initial, rx)?;
        let live_call = !initial && self.in_live_call(&msg, ftag, ttag);
        if !live_call {
            self.admit(now, &msg, &method, initial, side, rx)?;
        }
        self.check_capacity(&msg, live_call, rx)?;
        let hop = self.route(&msg, &method, initial, side, rx)?;
        let sibling = (initial && side == Side::Trunk && method == Method::Invite)
            .then(|| SiblingKey::of(&msg))
            .flatten();
        let key = key.to_owned_key();
        let (sid, new_call) = self.create_server_tx(now, msg, key, loop_hash, side, initial, rx);
        if let Some(k) = sibling {
            self.siblings.add(k, sid);
        }
        self.await_cti_or_forward(now, sid, new_call, PendingForward { hop, initial });
        Ok(())
    }

    /// The next hop: for an initial request RFC 3261 16.3 step 2 (a scheme
    /// we cannot route gets 416) and [`CoreConfig::initial_hop`]; inside a
    /// dialog [`CoreConfig::in_dialog_hop`] (16.4), whose refusals (400,
    /// 416, 482, 403) are answered here.
    fn route(
        &mut self,
        msg: &SipMessage,
        method: &Method,
        initial: bool,
        side: Side,
        rx: Rx,
    ) -> Step<NextHop> {
        if initial {
            let routable = msg
                .request_uri()
                .and_then(|r| Uri::parse(r).ok())
                .is_some_and(|u| u.is_sip() || u.scheme.eq_ignore_ascii_case("tel"));
            if !routable {
                self.respond_stateless(msg, rx, 416, "Unsupported URI Scheme", &[]);
                return Err(Handled);
            }
            if side == Side::Trunk {
                if let Some(h) = self.binding_hop(msg, method.forms_dialog()) {
                    return Ok(h.unwrap_or_else(|answer| self.unavailable_hop(msg, answer)));
                }
                // a request to a phone's masked Contact (e.g. an attended
                // transfer's INVITE with Replaces): to the phone itself
                if let Some(h) = self.cfg.unmasked_initial_hop(msg, method) {
                    return self.refuse_or(msg, rx, h);
                }
            }
            let registered = |user: &str| self.registered_targets(user);
            return match self.cfg.initial_hop(msg, method, side, &registered) {
                Ok(h) => Ok(h),
                Err((code, reason)) => {
                    self.respond_stateless(msg, rx, code, reason, &[]);
                    Err(Handled)
                }
            };
        }
        match self.cfg.in_dialog_hop(msg, side) {
            Ok(h) => Ok(h),
            Err((code, reason)) => {
                if code == 403 {
                    self.stats.forbidden += 1;
                }
                self.respond_stateless(msg, rx, code, reason, &[]);
                Err(Handled)
            }
        }
    }

    /// Answer `hop`'s refusal (403 for an unmasked target outside the
    /// inside networks) or go on with the hop.
    fn refuse_or(
        &mut self,
        msg: &SipMessage,
        rx: Rx,
        hop: Result<NextHop, (u16, &'static str)>,
    ) -> Step<NextHop> {
        hop.map_err(|(code, reason)| {
            if code == 403 {
                self.stats.forbidden += 1;
            }
            self.respond_stateless(msg, rx, code, reason, &[]);
            Handled
        })
    }

    /// ACK: for a non-2xx final response it ends our server transaction
    /// (hop by hop, RFC 3261 17.2.1); for a 2xx it is end to end and is
    /// forwarded statelessly along the route (16.11 behaviour for ACK).
    fn on_ack(&mut self, now: Instant, msg: SipMessage, rx: Rx, side: Option<Side>) {
        let source = rx.source;
        if let Some(key) = ServerKeyRef::of(&msg, Method::Invite) {
            if self.absorb_ack(now, &key, side) {
                return;
            }
        }
        let Some(side) = side else {
            self.stats.forbidden += 1;
            if log_sample(self.stats.forbidden) {
                tracing::warn!(%source, count = self.stats.forbidden, "ACK from an address that is neither inside nor trunk dropped");
            }
            return;
        };
        if msg.max_forwards() == Some(0) {
            // RFC 3261 16.3 step 3: not forwarded; an ACK is never answered
            self.stats.too_many_hops += 1;
            if log_sample(self.stats.too_many_hops) {
                tracing::warn!(%source, count = self.stats.too_many_hops, "ACK with Max-Forwards 0 dropped");
            }
            return;
        }
        let evs = self.track(&msg, side, now);
        self.emit_events(evs);
        let hop = match self.cfg.in_dialog_hop(&msg, side) {
            Ok(h) => h,
            Err((code, reason)) => {
                // typically the ACK for one of our own stateless answers
                // (403, 483, 503...): it ends here
                tracing::debug!(%source, code, reason, "ACK not routable, absorbed");
                return;
            }
        };
        let mut edit = msg.edit();
        // received / rport (RFC 3261 18.2.1) when they were left for here
        if let Some(r) = rx.received {
            r.apply(&mut edit);
        }
        if let Some(r) = &hop.ruri {
            edit.set_request_uri(r);
        }
        pop_routes(&mut edit, &msg, hop.pop_routes);
        let mf = msg
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        edit.set_max_forwards(mf);
        let top_branch = msg.top_via().and_then(|v| v.branch()).unwrap_or("");
        let mut buf = [0u8; BRANCH_LEN];
        let branch = branch_in(loop_hash(&msg), fnv1a(&[top_branch, "ACK"]), &mut buf);
        let out_face = self.cfg.face(other_side(side));
        let via = self.ours.via_prefix(&self.cfg, out_face, hop.transport);
        edit.insert_first_parts("Via", &[&via, branch]);
        self.rewrite_request(&mut edit, &msg, side);
        let bytes = edit.finish();
        self.send(hop.transport, hop.target, bytes, None);
    }

    /// RFC 3261 16.10: answer the CANCEL hop by hop (481 without its
    /// INVITE), cancel the pending branch; an INVITE still held for Zammad
    /// is answered 487 by the proxy.
    fn on_cancel(&mut self, now: Instant, msg: SipMessage, rx: Rx, side: Side) {
        // every answer below is built from the CANCEL: received/rport first
        let msg = self.cfg.materialize(msg, rx.received);
        let rx = Rx {
            received: None,
            ..rx
        };
        let Some(inv_key) = ServerKeyRef::of(&msg, Method::Invite) else {
            return;
        };
        let Some(sid) = self.servers.find(&inv_key as &dyn ServerKeyView) else {
            self.respond_stateless(&msg, rx, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        // the CANCEL's own server transaction absorbs its retransmissions
        let Some(ckey) = ServerKey::of(&msg, Method::Cancel) else {
            return;
        };
        // RFC 3261 9.2: the To tag of the 200 matches our answers to the INVITE
        let inv_tag = self.servers.get(&sid).map(ServerTx::to_tag);
        let ok = response_for(&msg, 200, "OK", inv_tag.as_deref(), &[]);
        let reply_to = reply_target(&msg, rx.source, rx.transport);
        let ok = Bytes::from(ok);
        self.send(rx.transport, reply_to.clone(), ok.clone(), None);
        let evs = self.track(&msg, side, now);
        self.create_cancel_server_tx(now, ckey, side, reply_to, rx.transport, ok);
        self.emit_events(evs);
        let Some(stx) = self.servers.get(&sid) else {
            return;
        };
        if stx.is_awaiting_cti() {
            // never forwarded: answer 487 ourselves
            self.final_from_proxy(now, sid, 487, "Request Terminated");
        } else if matches!(stx.state, crate::server_tx::SrvState::Proceeding) {
            // every branch of a fork (16.10), with the CANCEL's Reason
            // (RFC 3326 section 2: a proxy SHOULD copy it), e.g. the
            // provider's "Call completed elsewhere" when it forked the call
            let reason = msg
                .header_lines("Reason")
                .map(|h| h.value.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let reason = (!reason.is_empty()).then_some(reason);
            for cid in self.branches_of(sid) {
                self.cancel_branch_with(now, cid, reason.clone());
            }
        }
    }

    // --------------------------------------------------------------- responses

    /// RFC 3261 17.1.3 / 16.7: a response is matched to a client
    /// transaction by the branch of its top Via and its CSeq method, and
    /// only then processed; the pipeline is in the module docs. A response
    /// that matches no client transaction is dropped, except a 2xx
    /// retransmission that an Accepted INVITE record relays
    /// ([`ProxyCore::relay_accepted_2xx`]). Nothing is ever relayed by the
    /// response's own Via header.
    fn on_response(&mut self, now: Instant, msg: SipMessage, source: SocketAddr) {
        let _ = self.response_steps(now, msg, source);
    }

    fn response_steps(&mut self, now: Instant, msg: SipMessage, source: SocketAddr) -> Step {
        self.validate_response(&msg, source)?;
        let side = self.response_side(source)?;
        self.check_top_via_ours(&msg, source)?;
        let status = msg.status().unwrap_or(0);
        let key = ClientKeyRef::of_response(&msg).ok_or(Handled)?;
        let cid = self.match_client_tx(now, &msg, &key, status, side, source)?;
        self.check_response_side(cid, side, source)?;
        self.check_2xx_keeps_a_via(cid, &msg, status, source)?;
        let out = self
            .client_tx_response(now, cid, &msg, &key, status, side)
            .ok_or(Handled)?;
        // (the key borrows `msg`: only its method is needed from here)
        let method = key.method;
        if let Some(sid) = out.server.filter(|&sid| self.is_forked(sid)) {
            // a ring group's response context decides (RFC 3261 16.7)
            self.fork_response(now, sid, cid, &msg, status, side);
            return Ok(());
        }
        // a REGISTER's 2xx updates the bindings (and may restore Contacts)
        let msg = match out.server.filter(|_| method == Method::Register) {
            Some(sid) => self
                .register_response(now, sid, &msg, status)
                .unwrap_or(msg),
            None => msg,
        };
        // the tracker sees every response of the call, but a failed branch
        // of a call the provider forked while another branch still rings
        let hidden = status >= 300
            && method == Method::Invite
            && out.server.is_some_and(|sid| self.sibling_pending(sid));
        if !hidden {
            let evs = self.track(&msg, side, now);
            self.emit_events(evs);
        }
        if out.forward {
            self.forward_response(now, out.server, &msg, status, out.is_invite, &out.upstream);
        }
        Ok(())
    }

    /// A malformed response is dropped and counted.
    fn validate_response(&mut self, msg: &SipMessage, source: SocketAddr) -> Step {
        let Err(e) = msg.validate() else {
            return Ok(());
        };
        self.stats.malformed_responses += 1;
        if log_sample(self.stats.malformed_responses) {
            tracing::warn!(%source, reason = %e.reason(), count = self.stats.malformed_responses, "malformed response dropped");
        }
        Err(Handled)
    }

    /// The side a response came from; a stranger's is dropped before
    /// matching: it never reaches a transaction or the call tracker.
    fn response_side(&mut self, source: SocketAddr) -> Step<Side> {
        if let Some(side) = self.cfg.classify(source.ip()) {
            return Ok(side);
        }
        self.stats.foreign_responses += 1;
        if log_sample(self.stats.foreign_responses) {
            tracing::warn!(
                %source,
                count = self.stats.foreign_responses,
                "response from an address that is neither inside nor trunk dropped"
            );
        }
        Err(Handled)
    }

    /// RFC 3261 16.7 step 3 / 18.1.2: the top Via must be ours.
    fn check_top_via_ours(&mut self, msg: &SipMessage, source: SocketAddr) -> Step {
        let Some(via) = msg.top_via() else {
            return Err(Handled);
        };
        if self.cfg.is_us(via.host, via.port) {
            return Ok(());
        }
        self.stats.stray_responses += 1;
        if log_sample(self.stats.stray_responses) {
            tracing::warn!(%source, count = self.stats.stray_responses, "response whose top Via is not ours dropped");
        }
        Err(Handled)
    }

    /// RFC 3261 17.1.3: the client transaction of `key`. Without one, a
    /// 2xx to an INVITE may still be relayed through an RFC 6026 Accepted
    /// INVITE record; anything else is stray.
    fn match_client_tx(
        &mut self,
        now: Instant,
        msg: &SipMessage,
        key: &ClientKeyRef<'_>,
        status: u16,
        side: Side,
        source: SocketAddr,
    ) -> Step<ClientTxId> {
        if let Some(&cid) = self.client_keys.get(key as &dyn ClientKeyView) {
            return Ok(cid);
        }
        if key.method == Method::Invite && (200..300).contains(&status) {
            self.relay_accepted_2xx(now, msg, key, side, source);
        } else {
            self.count_stray(source, "response matches no transaction: dropped");
        }
        Err(Handled)
    }

    /// A response must come from the side its request went to.
    fn check_response_side(&mut self, cid: ClientTxId, side: Side, source: SocketAddr) -> Step {
        let dest = self.client_dest_side(cid).ok_or(Handled)?;
        if dest == side {
            return Ok(());
        }
        self.stats.misdirected_responses += 1;
        if log_sample(self.stats.misdirected_responses) {
            tracing::warn!(
                %source,
                count = self.stats.misdirected_responses,
                "response from the other side than its request went to dropped"
            );
        }
        Err(Handled)
    }

    /// RFC 3261 16.7 step 3: a 2xx with only our Via cannot go upstream,
    /// and cannot be replaced by one of our own either: it is dropped as if
    /// lost, and the transaction's own timers (B/F, C) end the transaction
    /// with a 408.
    fn check_2xx_keeps_a_via(
        &mut self,
        cid: ClientTxId,
        msg: &SipMessage,
        status: u16,
        source: SocketAddr,
    ) -> Step {
        if !(200..300).contains(&status) || !self.client_has_server(cid) || has_second_via(msg) {
            return Ok(());
        }
        self.stats.only_our_via += 1;
        if log_sample(self.stats.only_our_via) {
            tracing::warn!(%source, status, count = self.stats.only_our_via, "2xx carrying only our Via dropped");
        }
        Err(Handled)
    }

    // ------------------------------------------------------------------ timers

    /// Run every timer due at `now`: the call tracker's, the expiry of
    /// Accepted INVITE records, then the core's in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let evs = self.tracker.handle_timeout(now);
        self.emit_events(evs);
        self.accepted.expire(now);
        self.expire_bindings(now);
        while let Some(t) = self.timers.pop_due(now) {
            self.fire(now, t);
        }
    }

    /// Dispatch a due timer to its transaction's handler.
    fn fire(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::A(cid) | Timer::E(cid) => self.timer_a_e(now, cid),
            Timer::B(cid) | Timer::F(cid) => self.timer_b_f(now, cid),
            Timer::C(cid) => self.timer_c(now, cid),
            Timer::D(cid) => self.remove_client(cid),
            Timer::CancelWait(cid) => self.cancel_wait(now, cid),
            Timer::G(sid, interval) => self.timer_g(now, sid, interval),
            Timer::H(sid) | Timer::I(sid) | Timer::J(sid) | Timer::L(sid) => {
                self.remove_server(sid)
            }
            Timer::CtiWait(sid) => self.cti_wait(now, sid),
            Timer::RewriteExpire(key) => {
                self.rewrites.remove(&key);
            }
        }
    }
}
