//! The sans-IO, transaction-stateful proxy core (RFC 3261 sections 16 and 17).
//!
//! Feed it received bytes with their source ([`ProxyCore::handle_received`]),
//! Zammad's answers to `newCall` ([`ProxyCore::handle_cti_answer`]), transport
//! failures ([`ProxyCore::handle_transport_error`]) and the passage of time
//! ([`ProxyCore::handle_timeout`] at [`ProxyCore::poll_timeout`]); take what it
//! wants done from [`ProxyCore::poll_output`]: datagrams to send, `newCall`
//! events to await, and `answer`/`hangup` events to deliver. It never reads a
//! clock and never touches a socket, so tests drive it without sleeping.
//!
//! Where each RFC rule lives:
//! * 16.3 request validation (400/483/482/420): [`ProxyCore::on_request`].
//! * 16.4 Route processing and loose routing: [`ProxyCore::in_dialog_hop`].
//! * 16.6 forwarding (Max-Forwards, Record-Route, Via, branch): [`ProxyCore::forward_request`].
//! * 16.7 response processing, 100 absorbed, ACK of non-2xx hop by hop: [`ProxyCore::on_response`].
//! * 16.8 / 16.6 step 11 Timer C: [`Timer::TimerC`].
//! * 16.10 CANCEL: [`ProxyCore::on_cancel`].
//! * 17.1 client transactions (Timers A, B, D, E, F, K), 17.2 server
//!   transactions (G, H, I, J), RFC 6026 Accepted state: the `Timer` handling.
//! * 18.2.1 / RFC 3581 received and rport: [`ProxyCore::forward_request`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipcti_dialog::{CallEvent, CallTracker, Side, TrackerConfig};
use sipcti_event::{Direction, EventKind};
use sipcti_wire::{response_for, Limits, SipMessage, TransportKind, Uri};

use crate::admission::{
    Admission, AdmissionConfig, Limit, LimitedSource, Rate, SourceKey, Start, Verdict,
};
use crate::identity::{Rewrite, Toward};
use crate::ids::{CallId, ClientTxId, ServerTxId};

/// Where a message goes: an address, or a host name the edge must resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A socket address.
    Addr(SocketAddr),
    /// A DNS name and port (resolved by the edge, A/AAAA).
    Name(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A configured next hop.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Where to send.
    pub target: Target,
    /// Transport.
    pub transport: TransportKind,
    /// `host[:port]` written into a Request-URI that named the proxy itself.
    pub hostport: String,
}

/// Configuration of the core (built from `sipcti_proxy::config::Config`).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Address and port the proxy is reached at (Via, Record-Route).
    pub local: SocketAddr,
    /// Other addresses that also mean "this proxy" in a URI (e.g. the listen IP).
    pub aliases: Vec<IpAddr>,
    /// The address the phones / PBX reach the proxy at (Via and Record-Route
    /// toward the inside). Usually `local`'s IP; differs on a host with a
    /// LAN and a public interface.
    pub inside_ip: IpAddr,
    /// The address the trunk reaches the proxy at (Via and Record-Route
    /// toward the trunk).
    pub trunk_ip: IpAddr,
    /// The trunk.
    pub trunk: Hop,
    /// Networks whose requests come from the trunk.
    pub trunk_sources: Vec<IpNet>,
    /// Networks of phones / PBX.
    pub inside_networks: Vec<IpNet>,
    /// Where inbound calls go.
    pub inside_target: Hop,
    /// Message limits for parsing.
    pub limits: Limits,
    /// RFC 3261 T1 (default 500 ms).
    pub t1: Duration,
    /// Timer C (default 180 s).
    pub timer_c: Duration,
    /// Upper bound on the newCall wait (the edge answers earlier; this is
    /// the core's own fail-open safety net).
    pub newcall_wait: Duration,
    /// Most transactions (server + client) at once; beyond, new requests get 503.
    pub max_transactions: usize,
    /// How long a transaction is kept after its final response to absorb
    /// retransmissions (Kamailio tm's `wt_timer`; default 5 s). Timers H
    /// (waiting for the ACK of a non-2xx) and I keep their RFC values.
    pub wait: Duration,
    /// Call tracker settings.
    pub tracker: TrackerConfig,
    /// Per-source admission limits (rate, ban, table share).
    pub sources: SourceLimits,
}

/// Per-source admission limits, in the spirit of Kamailio's pike and
/// htable ban: one source address cannot starve the others of the
/// transaction and call tables. In-dialog requests of established calls
/// are never refused for load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLimits {
    /// New transactions per second one inside address may start, sustained.
    pub inside_rate_per_s: u32,
    /// Burst on top of `inside_rate_per_s` (token bucket depth).
    pub inside_burst: u32,
    /// New transactions per second one trunk address may start, sustained.
    pub trunk_rate_per_s: u32,
    /// Burst on top of `trunk_rate_per_s`.
    pub trunk_burst: u32,
    /// Most transactions (server + client) one source address may hold.
    pub max_transactions_per_source: usize,
    /// How long a source that went over its rate is refused (503 with
    /// `Retry-After`).
    pub ban: Duration,
}

impl Default for SourceLimits {
    /// The `[limits]` defaults: 20/s (burst 100) per inside address,
    /// 2000/s (burst 4000) per trunk address, half of 100,000
    /// transactions per source, a 5 s ban.
    fn default() -> Self {
        SourceLimits {
            inside_rate_per_s: 20,
            inside_burst: 100,
            trunk_rate_per_s: 2000,
            trunk_burst: 4000,
            max_transactions_per_source: 50_000,
            ban: Duration::from_secs(5),
        }
    }
}

/// One thing to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// UDP or TCP.
    pub transport: TransportKind,
    /// Destination.
    pub dest: Target,
    /// The bytes.
    pub data: Vec<u8>,
    /// The client transaction this message belongs to: report a failure to
    /// send it with [`ProxyCore::handle_transport_error`].
    pub client_tx: Option<ClientTxId>,
}

/// What the core asks the edge to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send a message.
    Transmit(Transmit),
    /// Deliver `newCall` and report Zammad's answer with
    /// [`ProxyCore::handle_cti_answer`] and this token (fail open on errors
    /// or after the deadline: answer [`CtiAnswer::Continue`]).
    NewCall {
        /// Token to give back.
        token: CallId,
        /// The event.
        event: CallEvent,
    },
    /// Deliver an `answer` or `hangup` (off the call path).
    Event(CallEvent),
}

/// What Zammad's answer to `newCall` means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtiAnswer {
    /// Go on unchanged: Zammad answered without an action.
    Continue,
    /// Go on unchanged because Zammad's answer did not come in time or
    /// failed; counted in [`CoreStats::fail_open`] when it reaches a
    /// still-waiting INVITE.
    FailOpen,
    /// Reject an inbound call with 486 Busy Here.
    Reject,
    /// Present this caller id on an outbound call.
    Dial(String),
}

/// Counters (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Requests received.
    pub requests: u64,
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
    /// for it ([`SourceLimits`]; who: [`ProxyCore::limited_sources`]).
    pub rate_limited: u64,
    /// 503 answers to initial requests of a source holding its share of
    /// the transaction or call table.
    pub source_share_limited: u64,
    /// 503 answers to initial requests of a new source while the source
    /// table was full of active sources.
    pub source_table_full: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SrvState {
    /// Waiting for Zammad before forwarding (INVITE only).
    AwaitingCti,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

struct PendingForward {
    hop: NextHop,
    initial: bool,
}

struct ServerTx {
    /// The request as received (with received/rport); dropped once the
    /// transaction has its final response.
    req: Option<SipMessage>,
    timer_keys: Vec<(Instant, u64)>,
    method: String,
    side: Side,
    reply_to: Target,
    transport: TransportKind,
    state: SrvState,
    last_response: Option<Vec<u8>>,
    client: Option<u64>,
    to_tag: String,
    key: String,
    /// [`ProxyCore::loop_hash`] of the request, computed once for the 16.3
    /// loop check and reused for the branch of the forwarded request.
    loop_hash: String,
    pending: Option<PendingForward>,
    direction: Option<Direction>,
    /// The source this transaction is counted against in [`Admission`].
    source: Option<SourceKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CliState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

struct ClientTx {
    server: Option<u64>,
    /// The side the request went to: its responses must come from there.
    dest_side: Side,
    /// Where the responses go (the server transaction's peer), kept here so
    /// a 2xx can still be relayed once the server transaction is gone.
    upstream: Upstream,
    method: String,
    branch: String,
    /// The request as sent; dropped when no longer needed (it is kept in
    /// Completed for an INVITE, to ACK retransmitted final responses).
    req: Option<SipMessage>,
    timer_keys: Vec<(Instant, u64)>,
    dest: Target,
    transport: TransportKind,
    state: CliState,
    interval: Duration,
    cancel_requested: bool,
    cancel_sent: bool,
    timer_c_at: Option<Instant>,
    key: String,
}

/// The peer of a server transaction: where its responses go.
#[derive(Debug, Clone)]
struct Upstream {
    /// Destination of responses (RFC 3261 18.2.2 / RFC 3581).
    reply_to: Target,
    /// Transport the request came over.
    transport: TransportKind,
    /// The side the request came from.
    side: Side,
    /// Branch of the request's top Via as received: the second Via of
    /// every response relayed upstream must carry it.
    branch: String,
}

/// RFC 6026 7.2: an INVITE client transaction in the Accepted state,
/// reduced to what relaying 2xx retransmissions needs. The transaction
/// itself is freed at its first 2xx; this record lives for
/// [`CoreConfig::wait`]. A 2xx that matches no client transaction is
/// relayed only through such a record, and only when it comes from the
/// side the INVITE went to (as Kamailio's tm does: a reply that matches no
/// transaction is dropped).
#[derive(Debug, Clone)]
struct AcceptedInvite {
    /// The side the INVITE went to.
    downstream: Side,
    /// Where the 2xx goes.
    upstream: Upstream,
}

#[derive(Debug, Clone)]
struct NextHop {
    target: Target,
    transport: TransportKind,
    /// New Request-URI (initial requests that named the proxy).
    ruri: Option<String>,
    /// Number of top Route values that are ours (popped).
    pop_routes: usize,
    /// Add Record-Route (dialog-forming initial request).
    record_route: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    ClientRetransmit(u64),
    ClientTimeout(u64),
    TimerC(u64),
    ClientCleanup(u64),
    ServerRetransmit(u64, Duration),
    ServerCleanup(u64),
    CancelTimeout(u64),
    CtiWait(u64),
    RewriteExpire((String, String)),
}

/// The proxy core. See the module docs.
pub struct ProxyCore {
    cfg: CoreConfig,
    tracker: CallTracker,
    servers: HashMap<u64, ServerTx>,
    server_keys: HashMap<String, u64>,
    clients: HashMap<u64, ClientTx>,
    client_keys: HashMap<String, u64>,
    timers: BTreeMap<(Instant, u64), Timer>,
    rewrites: HashMap<(String, String), Rewrite>,
    call_rewrite: HashMap<String, (String, String)>,
    /// Accepted INVITE records by client transaction key (branch|INVITE).
    accepted: HashMap<String, AcceptedInvite>,
    /// The same keys in expiry order (all live [`CoreConfig::wait`]).
    accepted_expiry: std::collections::VecDeque<(Instant, String)>,
    outputs: std::collections::VecDeque<Output>,
    next_id: u64,
    stats: CoreStats,
    admission: Admission,
}

/// Most source addresses the admission table keeps (about 100 bytes each):
/// an inside /16 fits.
const MAX_SOURCES: usize = 65_536;

/// The admission settings of `cfg`. The call share is the transaction
/// share's fraction of `max_transactions`, applied to the tracker's table.
fn admission_config(cfg: &CoreConfig) -> AdmissionConfig {
    let l = &cfg.sources;
    let max_calls = cfg.tracker.max_calls;
    let share = (max_calls as u128 * l.max_transactions_per_source as u128)
        / (cfg.max_transactions.max(1) as u128);
    AdmissionConfig {
        inside: Rate {
            per_s: l.inside_rate_per_s,
            burst: l.inside_burst,
        },
        trunk: Rate {
            per_s: l.trunk_rate_per_s,
            burst: l.trunk_burst,
        },
        ban: l.ban,
        max_transactions_per_source: l.max_transactions_per_source,
        max_calls_per_source: usize::try_from(share)
            .unwrap_or(usize::MAX)
            .clamp(1, max_calls.max(1)),
        max_sources: MAX_SOURCES,
        max_calls,
    }
}

const RR_DIALOG_METHODS: [&str; 4] = ["INVITE", "SUBSCRIBE", "REFER", "NOTIFY"];
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, MESSAGE, SUBSCRIBE, NOTIFY, REGISTER";

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Whether the `n`-th occurrence of a noisy condition is logged: the
/// first 10, then at powers of two. Every occurrence is still counted in
/// [`CoreStats`], so a flood (an attack, an overload) cannot flood the log.
fn log_sample(n: u64) -> bool {
    n <= 10 || n.is_power_of_two()
}

/// Which way a message goes when it is sent to `dest`.
fn toward(dest: Side) -> Toward {
    match dest {
        Side::Inside => Toward::Inside,
        Side::Trunk => Toward::Trunk,
    }
}

fn other_side(s: Side) -> Side {
    match s {
        Side::Inside => Side::Trunk,
        Side::Trunk => Side::Inside,
    }
}

fn transport_of(s: &str) -> Option<TransportKind> {
    if s.eq_ignore_ascii_case("udp") {
        Some(TransportKind::Udp)
    } else if s.eq_ignore_ascii_case("tcp") {
        Some(TransportKind::Tcp)
    } else {
        None
    }
}

fn host_of(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn target_of(host: &str, port: u16) -> Target {
    match host_of(host).parse::<IpAddr>() {
        Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
        Err(_) => Target::Name(host_of(host).to_string(), port),
    }
}

impl ProxyCore {
    /// A new core with empty tables.
    pub fn new(cfg: CoreConfig) -> ProxyCore {
        let tracker = CallTracker::new(cfg.tracker.clone());
        let cap = cfg.max_transactions.min(1 << 17);
        let admission = Admission::new(admission_config(&cfg));
        ProxyCore {
            cfg,
            tracker,
            // sized once: a resize under load stalls the single core task
            // long enough to overflow the UDP receive buffer
            servers: HashMap::with_capacity(cap),
            server_keys: HashMap::with_capacity(cap),
            clients: HashMap::with_capacity(cap),
            client_keys: HashMap::with_capacity(cap),
            timers: BTreeMap::new(),
            rewrites: HashMap::new(),
            call_rewrite: HashMap::new(),
            accepted: HashMap::new(),
            accepted_expiry: Default::default(),
            outputs: Default::default(),
            next_id: 1,
            stats: CoreStats::default(),
            admission,
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

    /// Whether `msg` belongs to a call the tracker knows and has not ended
    /// (by Call-ID and the From or To tag, whichever is the caller's).
    fn in_live_call(&self, msg: &SipMessage) -> bool {
        let Some(cid) = msg.call_id() else {
            return false;
        };
        [msg.from(), msg.to()]
            .into_iter()
            .flatten()
            .filter_map(|na| na.tag())
            .any(|tag| self.tracker.call_info(cid, tag).is_some_and(|c| !c.ended))
    }

    /// Feed the call tracker the messages that can change a call's events
    /// (the others cannot; its timers run from `handle_timeout`).
    fn track(&mut self, msg: &SipMessage, side: Side, now: Instant) -> Vec<CallEvent> {
        if sipcti_dialog::affects_calls(msg) {
            self.tracker.on_message(msg, side, now)
        } else {
            Vec::new()
        }
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
        let t = self.timers.keys().next().map(|k| k.0);
        let t = match (t, self.accepted_expiry.front().map(|e| e.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (t, self.tracker.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Close every tracked call (the proxy is stopping): emits the hangups.
    pub fn shutdown(&mut self, now: Instant) {
        let evs = self.tracker.shutdown(now);
        self.emit_events(evs);
    }

    fn id(&mut self) -> u64 {
        let i = self.next_id;
        self.next_id += 1;
        i
    }

    fn arm(&mut self, at: Instant, t: Timer) -> (Instant, u64) {
        let seq = self.id();
        self.timers.insert((at, seq), t);
        (at, seq)
    }

    /// Arm a timer that belongs to server transaction `sid`: it is removed
    /// with the transaction, so the timer wheel never outgrows the tables.
    fn arm_server(&mut self, sid: u64, at: Instant, t: Timer) {
        let k = self.arm(at, t);
        if let Some(stx) = self.servers.get_mut(&sid) {
            stx.timer_keys.push(k);
        }
    }

    /// Arm a timer that belongs to client transaction `cid`.
    fn arm_client(&mut self, cid: u64, at: Instant, t: Timer) {
        let k = self.arm(at, t);
        if let Some(ctx) = self.clients.get_mut(&cid) {
            ctx.timer_keys.push(k);
        }
    }

    fn remove_server(&mut self, sid: u64) {
        if let Some(stx) = self.servers.remove(&sid) {
            self.server_keys.remove(&stx.key);
            if let Some(src) = stx.source {
                self.admission.close_transaction(src);
            }
            for k in stx.timer_keys {
                self.timers.remove(&k);
            }
        }
    }

    fn send(
        &mut self,
        transport: TransportKind,
        dest: Target,
        data: Vec<u8>,
        client_tx: Option<u64>,
    ) {
        self.outputs.push_back(Output::Transmit(Transmit {
            transport,
            dest,
            data,
            client_tx: client_tx.map(ClientTxId),
        }));
    }

    fn classify(&self, ip: IpAddr) -> Option<Side> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.cfg.trunk_sources.iter().any(|n| n.contains(&ip)) {
            Some(Side::Trunk)
        } else if self.cfg.inside_networks.iter().any(|n| n.contains(&ip)) {
            Some(Side::Inside)
        } else {
            None
        }
    }

    fn is_us(&self, host: &str, port: Option<u16>) -> bool {
        let Ok(ip) = host_of(host).parse::<IpAddr>() else {
            return false;
        };
        (ip == self.cfg.local.ip()
            || ip == self.cfg.inside_ip
            || ip == self.cfg.trunk_ip
            || self.cfg.aliases.contains(&ip))
            && port.unwrap_or(5060) == self.cfg.local.port()
    }

    fn emit_events(&mut self, evs: Vec<CallEvent>) {
        for ev in evs {
            if ev.kind == EventKind::Hangup {
                self.admission.call_ended(&ev.call_id);
                if let Some(key) = self.call_rewrite.remove(&ev.call_id) {
                    // keep the rewrite a little for the final 200 to BYE and retransmissions
                    let at = ev.at + self.cfg.t1 * 64;
                    self.arm(at, Timer::RewriteExpire(key));
                }
            }
            self.outputs.push_back(Output::Event(ev));
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
        data: Vec<u8>,
        source: SocketAddr,
        transport: TransportKind,
    ) {
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
            self.on_request(now, msg, source, transport);
        } else {
            self.stats.responses += 1;
            self.on_response(now, msg, source);
        }
    }

    fn reply_target(msg: &SipMessage, source: SocketAddr, transport: TransportKind) -> Target {
        // RFC 3261 18.2.2 and RFC 3581 4: over TCP the same connection
        // (the source); over UDP the source port when rport was asked for,
        // else the sent-by port at the source address.
        if transport == TransportKind::Tcp {
            return Target::Addr(source);
        }
        match msg.top_via() {
            Some(v) if v.rport().is_some() => Target::Addr(source),
            Some(v) => Target::Addr(SocketAddr::new(source.ip(), v.port.unwrap_or(5060))),
            None => Target::Addr(source),
        }
    }

    fn respond_stateless(
        &mut self,
        req: &SipMessage,
        source: SocketAddr,
        transport: TransportKind,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        if req.method() == Some("ACK") {
            return;
        }
        let tag = format!(
            "sc{:x}",
            fnv1a(&[req.call_id().unwrap_or(""), &status.to_string()])
        );
        let bytes = response_for(req, status, reason, Some(&tag), extra);
        let dest = Self::reply_target(req, source, transport);
        self.send(transport, dest, bytes, None);
    }

    fn server_key(msg: &SipMessage, method: &str) -> Option<String> {
        let via = msg.top_via()?;
        let branch = via.branch().unwrap_or("");
        let port = via.port.unwrap_or(5060);
        if branch.starts_with("z9hG4bK") {
            Some(format!("{branch}|{}:{port}|{method}", via.host))
        } else {
            // RFC 2543 matching (RFC 3261 17.2.3, last paragraph)
            let (cseq, _) = msg.cseq()?;
            let ftag = msg
                .from()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default();
            Some(format!(
                "2543|{}|{}|{}|{}|{}|{}:{port}|{method}",
                msg.request_uri().unwrap_or(""),
                msg.call_id().unwrap_or(""),
                ftag,
                cseq,
                branch,
                via.host
            ))
        }
    }

    fn loop_hash(msg: &SipMessage) -> String {
        let ftag = msg
            .from()
            .and_then(|f| f.tag().map(str::to_string))
            .unwrap_or_default();
        let ttag = msg
            .to()
            .and_then(|f| f.tag().map(str::to_string))
            .unwrap_or_default();
        let cseq = msg.cseq().map(|c| c.0.to_string()).unwrap_or_default();
        format!(
            "{:016x}",
            fnv1a(&[
                msg.request_uri().unwrap_or(""),
                &ftag,
                &ttag,
                msg.call_id().unwrap_or(""),
                &cseq
            ])
        )
    }

    /// RFC 3261 18.2.1 and RFC 3581 4: the server transport adds
    /// `received` to the top Via when its host is not the source address,
    /// and fills `rport` when the client asked for it. Done once at receipt,
    /// so the forwarded request and every response we build carry it.
    fn with_received(&self, msg: SipMessage, source: SocketAddr) -> SipMessage {
        let Some(v) = msg.top_via() else { return msg };
        let host_differs = host_of(v.host).parse::<IpAddr>().ok() != Some(source.ip());
        let rport = match v.rport() {
            Some(None) => Some(source.port()),
            _ => None,
        };
        if !host_differs && rport.is_none() {
            return msg;
        }
        let bytes = msg
            .edit()
            .set_top_via_received(Some(source.ip()), rport)
            .finish();
        // the parameters we add may push a message that was just within
        // the size limit past it; the limit is for what was received (a
        // forwarded request that grew too large gets 513 later)
        let limits = sipcti_wire::Limits {
            max_message_bytes: self.cfg.limits.max_message_bytes + 128,
            ..self.cfg.limits
        };
        SipMessage::parse(bytes, &limits).unwrap_or(msg)
    }

    fn on_request(
        &mut self,
        now: Instant,
        msg: SipMessage,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let msg = self.with_received(msg, source);
        if let Err(e) = msg.validate() {
            self.stats.malformed_requests += 1;
            if log_sample(self.stats.malformed_requests) {
                tracing::warn!(%source, reason = %e.reason(), "malformed request");
            }
            if msg.top_via().is_some() {
                let status = e.status();
                let reason = e.reason();
                self.respond_stateless(&msg, source, transport, status, &reason, &[]);
            }
            return;
        }
        let method = msg.method().unwrap_or("").to_string();
        let side = self.classify(source.ip());

        if method == "ACK" {
            self.on_ack(now, msg, source, side);
            return;
        }
        let Some(key) = Self::server_key(&msg, &method) else {
            return;
        };
        // a stranger can neither start nor retransmit anything: matching a
        // transaction by its Via alone would let it trigger our answers
        let Some(side) = side else {
            self.stats.forbidden += 1;
            if log_sample(self.stats.forbidden) {
                tracing::warn!(%source, %method, count = self.stats.forbidden, "request from an address that is neither inside nor trunk: 403");
            }
            self.respond_stateless(&msg, source, transport, 403, "Forbidden", &[]);
            return;
        };
        if let Some(&sid) = self.server_keys.get(&key) {
            self.stats.retransmissions += 1;
            if let Some(stx) = self.servers.get(&sid).filter(|stx| stx.side == side) {
                let resend = match (&stx.last_response, stx.state) {
                    (Some(r), _) => Some(r.clone()),
                    (None, SrvState::AwaitingCti) => stx
                        .req
                        .as_ref()
                        .map(|r| response_for(r, 100, "Trying", None, &[])),
                    _ => None,
                };
                if let Some(r) = resend {
                    let (t, d) = (stx.transport, stx.reply_to.clone());
                    self.send(t, d, r, None);
                }
            }
            return;
        }
        if method == "CANCEL" {
            self.on_cancel(now, msg, source, transport, side);
            return;
        }
        // RFC 3261 16.3 step 3: Max-Forwards
        if msg.max_forwards() == Some(0) {
            self.stats.too_many_hops += 1;
            self.respond_stateless(&msg, source, transport, 483, "Too Many Hops", &[]);
            return;
        }
        // 16.3 step 4: loop detection
        let lh = Self::loop_hash(&msg);
        let ours = format!("z9hG4bKsc{lh}");
        let looped = msg.vias().iter().any(|v| {
            self.is_us(v.host, v.port) && v.branch().is_some_and(|b| b.starts_with(&ours))
        });
        if looped {
            self.stats.loops += 1;
            self.respond_stateless(&msg, source, transport, 482, "Loop Detected", &[]);
            return;
        }
        // 16.3 step 5: Proxy-Require
        let unsupported: Vec<&str> = msg.header_values("Proxy-Require");
        if !unsupported.is_empty() {
            self.stats.bad_extension += 1;
            let list = unsupported.join(", ");
            self.respond_stateless(
                &msg,
                source,
                transport,
                420,
                "Bad Extension",
                &[("Unsupported", &list)],
            );
            return;
        }
        let to_tag = msg.to().and_then(|t| t.tag().map(str::to_string));
        let initial = to_tag.is_none();
        // OPTIONS / keep-alive addressed to the proxy itself
        if initial && method == "OPTIONS" {
            if let Some(u) = msg.request_uri().and_then(|r| Uri::parse(r).ok()) {
                if u.user.is_none() && self.is_us(u.host, u.port) {
                    self.respond_stateless(&msg, source, transport, 200, "OK", &[("Allow", ALLOW)]);
                    return;
                }
            }
        }
        // Admission (Kamailio pike + htable ban): a request is refused for
        // its source's load before it reaches the call tracker (no CTI
        // event). ACK and CANCEL were handled above. A request inside a
        // call the tracker knows (the BYE of an established call) always
        // passes; a To tag alone does not make a request exempt, or a
        // flooder would add one.
        let live_call = !initial && self.in_live_call(&msg);
        if !live_call {
            let start = if initial && method == "INVITE" {
                Start::Call
            } else {
                Start::Transaction
            };
            if let Verdict::Refuse {
                limit,
                retry_after_s,
            } = self.admission.admit(now, source.ip(), side, start)
            {
                match limit {
                    Limit::Rate | Limit::Banned => self.stats.rate_limited += 1,
                    Limit::TransactionShare | Limit::CallShare => {
                        self.stats.source_share_limited += 1
                    }
                    Limit::SourceTableFull => self.stats.source_table_full += 1,
                }
                let retry = retry_after_s.to_string();
                self.respond_stateless(
                    &msg,
                    source,
                    transport,
                    503,
                    "Service Unavailable",
                    &[("Retry-After", &retry)],
                );
                return;
            }
        }
        // Requests inside a live call (the BYE of an established call)
        // have a reserve of a tenth above the global limit.
        let max = self.cfg.max_transactions;
        let cap = if live_call {
            max.saturating_add((max / 10).max(1))
        } else {
            max
        };
        if self.servers.len() + self.clients.len() >= cap {
            self.stats.overloaded += 1;
            if log_sample(self.stats.overloaded) {
                tracing::warn!("transaction table full: 503");
            }
            self.respond_stateless(
                &msg,
                source,
                transport,
                503,
                "Service Unavailable",
                &[("Retry-After", "5")],
            );
            return;
        }
        let hop = if initial {
            // RFC 3261 16.3 step 2: a scheme we cannot route gets 416
            let routable = msg
                .request_uri()
                .and_then(|r| Uri::parse(r).ok())
                .is_some_and(|u| u.is_sip() || u.scheme.eq_ignore_ascii_case("tel"));
            if !routable {
                self.respond_stateless(&msg, source, transport, 416, "Unsupported URI Scheme", &[]);
                return;
            }
            self.initial_hop(&msg, &method, side)
        } else {
            match self.in_dialog_hop(&msg, side) {
                Ok(h) => h,
                Err((code, reason)) => {
                    if code == 403 {
                        self.stats.forbidden += 1;
                    }
                    self.respond_stateless(&msg, source, transport, code, reason, &[]);
                    return;
                }
            }
        };
        // create the server transaction (RFC 3261 17.2)
        let sid = self.id();
        let to_tag_ours = format!("sc{:x}", fnv1a(&[&key]));
        let reply_to = Self::reply_target(&msg, source, transport);
        let is_invite = method == "INVITE";
        let events = self.track(&msg, side, now);
        let counted = self.admission.open_transaction(now, source.ip(), side);
        let mut stx = ServerTx {
            req: Some(msg),
            timer_keys: Vec::new(),
            method: method.clone(),
            side,
            reply_to,
            transport,
            state: SrvState::Proceeding,
            last_response: None,
            client: None,
            to_tag: to_tag_ours,
            key: key.clone(),
            loop_hash: lh,
            pending: None,
            direction: None,
            source: counted,
        };
        if is_invite {
            // 100 Trying at once (RFC 3261 16.2 / 17.2.1)
            if let Some(req) = &stx.req {
                let trying = response_for(req, 100, "Trying", None, &[]);
                stx.last_response = Some(trying.clone());
                self.send(transport, stx.reply_to.clone(), trying, None);
            }
        }
        let mut new_call = None;
        let mut rest = Vec::new();
        for ev in events {
            if ev.kind == EventKind::NewCall && is_invite && initial {
                stx.direction = Some(ev.direction);
                self.admission
                    .call_started(now, source.ip(), side, &ev.call_id);
                new_call = Some(ev);
            } else {
                rest.push(ev);
            }
        }
        self.server_keys.insert(key, sid);
        self.servers.insert(sid, stx);
        self.emit_events(rest);
        if let Some(ev) = new_call {
            if let Some(stx) = self.servers.get_mut(&sid) {
                stx.state = SrvState::AwaitingCti;
                stx.pending = Some(PendingForward { hop, initial });
            }
            self.outputs.push_back(Output::NewCall {
                token: CallId::of(ServerTxId(sid)),
                event: ev,
            });
            let at = now + self.cfg.newcall_wait;
            self.arm_server(sid, at, Timer::CtiWait(sid));
            return;
        }
        self.forward_request(now, sid, hop, initial);
    }

    fn initial_hop(&self, msg: &SipMessage, method: &str, side: Side) -> NextHop {
        let hop = match side {
            Side::Inside => &self.cfg.trunk,
            Side::Trunk => &self.cfg.inside_target,
        };
        // Request-URI naming the proxy itself: send it on to the hop's host
        let ruri = msg.request_uri().and_then(|r| {
            let u = Uri::parse(r).ok()?;
            if u.is_sip() && self.is_us(u.host, u.port) {
                Some(replace_hostport(&u, &hop.hostport))
            } else {
                None
            }
        });
        // pre-loaded Route values naming us (RFC 3261 16.4)
        let pop_routes = self.our_routes(msg).0;
        NextHop {
            target: hop.target.clone(),
            transport: hop.transport,
            ruri,
            pop_routes,
            record_route: RR_DIALOG_METHODS.contains(&method),
        }
    }

    /// Count the top Route values that name this proxy; return the
    /// transport parameter of the last one (double Record-Route).
    fn our_routes(&self, msg: &SipMessage) -> (usize, Option<TransportKind>) {
        let mut n = 0;
        let mut t = None;
        for r in msg.header_values("Route") {
            let Ok(na) = sipcti_wire::NameAddr::parse(r) else {
                break;
            };
            let Ok(u) = na.parsed_uri() else { break };
            if !self.is_us(u.host, u.port) {
                break;
            }
            n += 1;
            t = u
                .transport()
                .and_then(transport_of)
                .or(Some(TransportKind::Udp));
        }
        (n, t)
    }

    /// RFC 3261 16.4 and 16.5/16.6 step 6-7 for a request inside a dialog:
    /// pop our Route values and send to the next Route, else the Request-URI.
    fn in_dialog_hop(&self, msg: &SipMessage, side: Side) -> Result<NextHop, (u16, &'static str)> {
        let (pop, rr_transport) = self.our_routes(msg);
        let routes = msg.header_values("Route");
        let next_uri = if let Some(r) = routes.get(pop) {
            let na = sipcti_wire::NameAddr::parse(r).map_err(|_| (400u16, "Bad Route"))?;
            na.uri.to_string()
        } else {
            msg.request_uri().unwrap_or("").to_string()
        };
        let u = Uri::parse(&next_uri).map_err(|_| (400u16, "Bad Request-URI"))?;
        if !u.is_sip() || u.host.is_empty() {
            return Err((416, "Unsupported URI Scheme"));
        }
        let default_port = if u.scheme.eq_ignore_ascii_case("sips") {
            5061
        } else {
            5060
        };
        let port = u.port.unwrap_or(default_port);
        let transport = u
            .transport()
            .and_then(transport_of)
            .or(rr_transport)
            .unwrap_or(TransportKind::Udp);
        let target = target_of(u.host, port);
        if self.is_us(u.host, Some(port)) {
            return Err((482, "Loop Detected"));
        }
        // no open relay: requests from the trunk may only go inside
        if side == Side::Trunk {
            let ok = match &target {
                Target::Addr(a) => {
                    self.cfg.inside_networks.iter().any(|n| n.contains(&a.ip()))
                        || self.cfg.inside_target.target == target
                }
                Target::Name(..) => self.cfg.inside_target.target == target,
            };
            if !ok {
                return Err((403, "Forbidden"));
            }
        }
        Ok(NextHop {
            target,
            transport,
            ruri: None,
            pop_routes: pop,
            record_route: false,
        })
    }

    /// The proxy's address as the side `toward` reaches it.
    fn face(&self, toward: Side) -> IpAddr {
        match toward {
            Side::Inside => self.cfg.inside_ip,
            Side::Trunk => self.cfg.trunk_ip,
        }
    }

    fn via_value(&self, ip: IpAddr, transport: TransportKind, branch: &str) -> String {
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        format!(
            "SIP/2.0/{transport} {host}:{};branch={branch}",
            self.cfg.local.port()
        )
    }

    fn rr_value(&self, ip: IpAddr, transport: TransportKind) -> String {
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        match transport {
            TransportKind::Udp => format!("<sip:{host}:{};lr>", self.cfg.local.port()),
            TransportKind::Tcp => {
                format!("<sip:{host}:{};transport=tcp;lr>", self.cfg.local.port())
            }
        }
    }

    /// The caller-id rewrite of `msg`'s dialog, applied to a request that
    /// came from `side` and goes to the other side.
    fn rewrite_request(&self, edit: &mut sipcti_wire::Edit<'_>, msg: &SipMessage, side: Side) {
        if let Some(rw) = self.rewrite_for(msg) {
            for (idx, v) in rw.edits(msg, toward(other_side(side)), side == Side::Inside) {
                edit.replace_value(idx, &v);
            }
        }
    }

    fn rewrite_for(&self, msg: &SipMessage) -> Option<&Rewrite> {
        if self.rewrites.is_empty() {
            return None;
        }
        let cid = msg.call_id()?;
        for t in [msg.from(), msg.to()].into_iter().flatten() {
            if let Some(tag) = t.tag() {
                if let Some(r) = self.rewrites.get(&(cid.to_string(), tag.to_string())) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// RFC 3261 16.6: copy, Request-URI, Max-Forwards, Record-Route, Via;
    /// then the client transaction (17.1).
    fn forward_request(&mut self, now: Instant, sid: u64, hop: NextHop, initial: bool) {
        let Some(stx) = self.servers.get(&sid) else {
            return;
        };
        let Some(req) = stx.req.as_ref() else {
            return;
        };
        let method = stx.method.clone();
        let side = stx.side;
        let in_transport = stx.transport;
        let upstream = Upstream {
            reply_to: stx.reply_to.clone(),
            transport: stx.transport,
            side: stx.side,
            branch: req
                .top_via()
                .and_then(|v| v.branch())
                .unwrap_or("")
                .to_string(),
        };
        let lh = &stx.loop_hash;
        let tx_hash = fnv1a(&[&stx.key]);
        let branch = format!("z9hG4bKsc{lh}.{tx_hash:016x}");
        let mut edit = req.edit();
        if let Some(r) = &hop.ruri {
            edit.set_request_uri(r);
        }
        pop_routes(&mut edit, req, hop.pop_routes);
        let mf = req
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        edit.set_max_forwards(mf);
        // received / rport on the sender's Via (RFC 3261 18.2.1, RFC 3581)
        let out_face = self.face(other_side(side));
        let in_face = self.face(side);
        if hop.record_route && initial {
            // double Record-Route when the two sides reach us at different
            // addresses or over different transports (RFC 5658)
            if in_transport != hop.transport || in_face != out_face {
                // insertions at one spot keep call order: the value facing
                // the next hop must be on top (RFC 5658 3.3)
                edit.insert_first("Record-Route", &self.rr_value(out_face, hop.transport));
                edit.insert_first("Record-Route", &self.rr_value(in_face, in_transport));
            } else {
                edit.insert_first("Record-Route", &self.rr_value(out_face, hop.transport));
            }
        }
        edit.insert_first("Via", &self.via_value(out_face, hop.transport, &branch));
        self.rewrite_request(&mut edit, req, side);
        let bytes = edit.finish();
        if bytes.len() > self.cfg.limits.max_message_bytes {
            // RFC 3261 21.5.14 / 18.1.1: our additions made it too large
            self.stats.too_large += 1;
            if log_sample(self.stats.too_large) {
                tracing::warn!(
                    len = bytes.len(),
                    count = self.stats.too_large,
                    "forwarded request would exceed the size limit: 513"
                );
            }
            self.final_from_proxy(now, sid, 513, "Message Too Large");
            return;
        }
        let fwd = match SipMessage::parse(bytes, &self.cfg.limits) {
            Ok(m) => m,
            Err(e) => {
                self.stats.internal_errors += 1;
                if log_sample(self.stats.internal_errors) {
                    tracing::error!(reason = %e.reason(), count = self.stats.internal_errors, "forwarded request did not parse; answering 500");
                }
                self.final_from_proxy(now, sid, 500, "Server Internal Error");
                return;
            }
        };
        let cid = self.id();
        let is_invite = method == "INVITE";
        let ckey = format!("{branch}|{method}");
        let data = fwd.as_bytes().to_vec();
        let ctx = ClientTx {
            server: Some(sid),
            dest_side: other_side(side),
            upstream,
            method,
            branch,
            req: Some(fwd),
            timer_keys: Vec::new(),
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
            timer_c_at: if is_invite {
                Some(now + self.cfg.timer_c)
            } else {
                None
            },
            key: ckey.clone(),
        };
        self.client_keys.insert(ckey, cid);
        self.clients.insert(cid, ctx);
        if let Some(stx) = self.servers.get_mut(&sid) {
            stx.client = Some(cid);
            if stx.state == SrvState::AwaitingCti {
                stx.state = SrvState::Proceeding;
            }
        }
        self.send(hop.transport, hop.target, data, Some(cid));
        if hop.transport == TransportKind::Udp {
            self.arm_client(cid, now + self.cfg.t1, Timer::ClientRetransmit(cid));
        }
        self.arm_client(cid, now + self.cfg.t1 * 64, Timer::ClientTimeout(cid));
        if is_invite {
            self.arm_client(cid, now + self.cfg.timer_c, Timer::TimerC(cid));
        }
    }

    /// ACK: for a non-2xx final response it ends our server transaction
    /// (hop by hop, RFC 3261 17.2.1); for a 2xx it is end to end and is
    /// forwarded statelessly along the route (16.11 behaviour for ACK).
    fn on_ack(&mut self, now: Instant, msg: SipMessage, source: SocketAddr, side: Option<Side>) {
        if let Some(key) = Self::server_key(&msg, "INVITE") {
            if let Some(&sid) = self.server_keys.get(&key) {
                if let Some(stx) = self.servers.get_mut(&sid).filter(|s| Some(s.side) == side) {
                    if matches!(stx.state, SrvState::Completed | SrvState::Confirmed) {
                        stx.state = SrvState::Confirmed;
                        let t4 = Duration::from_secs(5);
                        let at = now
                            + if stx.transport == TransportKind::Udp {
                                t4
                            } else {
                                Duration::ZERO
                            };
                        self.arm_server(sid, at, Timer::ServerCleanup(sid));
                        return;
                    }
                }
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
        let hop = match self.in_dialog_hop(&msg, side) {
            Ok(h) => h,
            Err((code, reason)) => {
                // typically the ACK for one of our own stateless answers
                // (403, 483, 503...): it ends here
                tracing::debug!(%source, code, reason, "ACK not routable, absorbed");
                return;
            }
        };
        let mut edit = msg.edit();
        pop_routes(&mut edit, &msg, hop.pop_routes);
        let mf = msg
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        edit.set_max_forwards(mf);
        let top_branch = msg
            .top_via()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_string();
        let branch = format!(
            "z9hG4bKsc{}.{:016x}",
            Self::loop_hash(&msg),
            fnv1a(&[&top_branch, "ACK"])
        );
        let out_face = self.face(other_side(side));
        edit.insert_first("Via", &self.via_value(out_face, hop.transport, &branch));
        self.rewrite_request(&mut edit, &msg, side);
        let bytes = edit.finish();
        self.send(hop.transport, hop.target, bytes, None);
    }

    /// RFC 3261 16.10: answer the CANCEL hop by hop, cancel the pending branch.
    fn on_cancel(
        &mut self,
        now: Instant,
        msg: SipMessage,
        source: SocketAddr,
        transport: TransportKind,
        side: Side,
    ) {
        let Some(inv_key) = Self::server_key(&msg, "INVITE") else {
            return;
        };
        let Some(&sid) = self.server_keys.get(&inv_key) else {
            self.respond_stateless(
                &msg,
                source,
                transport,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        // the CANCEL's own server transaction absorbs its retransmissions
        let Some(ckey) = Self::server_key(&msg, "CANCEL") else {
            return;
        };
        // RFC 3261 9.2: the To tag of the 200 matches our answers to the INVITE
        let inv_tag = self.servers.get(&sid).map(|s| s.to_tag.clone());
        let ok = response_for(&msg, 200, "OK", inv_tag.as_deref(), &[]);
        let reply_to = Self::reply_target(&msg, source, transport);
        self.send(transport, reply_to.clone(), ok.clone(), None);
        let evs = self.track(&msg, side, now);
        let cancel_sid = self.id();
        self.server_keys.insert(ckey.clone(), cancel_sid);
        self.servers.insert(
            cancel_sid,
            ServerTx {
                req: None,
                timer_keys: Vec::new(),
                method: "CANCEL".into(),
                side,
                reply_to,
                transport,
                state: SrvState::Completed,
                last_response: Some(ok),
                client: None,
                to_tag: String::new(),
                key: ckey,
                loop_hash: String::new(),
                pending: None,
                direction: None,
                source: None,
            },
        );
        let wait = self.cfg.wait;
        self.arm_server(cancel_sid, now + wait, Timer::ServerCleanup(cancel_sid));
        self.emit_events(evs);
        let Some(stx) = self.servers.get_mut(&sid) else {
            return;
        };
        match stx.state {
            SrvState::AwaitingCti => {
                // never forwarded: answer 487 ourselves
                stx.pending = None;
                self.final_from_proxy(now, sid, 487, "Request Terminated");
            }
            SrvState::Proceeding => {
                if let Some(cid) = stx.client {
                    self.cancel_branch(now, cid);
                }
            }
            _ => {}
        }
    }

    fn cancel_branch(&mut self, now: Instant, cid: u64) {
        let Some(ctx) = self.clients.get_mut(&cid) else {
            return;
        };
        if ctx.method != "INVITE"
            || ctx.cancel_sent
            || matches!(ctx.state, CliState::Completed | CliState::Accepted)
        {
            return;
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
        let cancel = build_cancel(invite);
        let (t, d, branch) = (ctx.transport, ctx.dest.clone(), ctx.branch.clone());
        let (dest_side, upstream) = (ctx.dest_side, ctx.upstream.clone());
        let id = self.id();
        let key = format!("{branch}|CANCEL");
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
                method: "CANCEL".into(),
                branch,
                req: Some(req),
                timer_keys: Vec::new(),
                dest: d.clone(),
                transport: t,
                state: CliState::Proceeding,
                interval: self.cfg.t1,
                cancel_requested: false,
                cancel_sent: false,
                timer_c_at: None,
                key,
            },
        );
        self.send(t, d, cancel, Some(id));
        // RFC 3261 9.1: without a final response 64*T1 after the CANCEL the
        // INVITE client transaction is considered cancelled and destroyed
        self.arm_client(cid, now + self.cfg.t1 * 64, Timer::CancelTimeout(cid));
        if t == TransportKind::Udp {
            self.arm_client(id, now + self.cfg.t1, Timer::ClientRetransmit(id));
        }
        self.arm_client(id, now + self.cfg.t1 * 64, Timer::ClientTimeout(id));
    }

    /// A final response generated by the proxy for server transaction `sid`
    /// (487, 408, 503, 486, 500). The tracker sees it like any response.
    fn final_from_proxy(&mut self, now: Instant, sid: u64, status: u16, reason: &str) {
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
        let bytes = response_for(&req, status, reason, Some(&stx.to_tag), &[]);
        stx.state = SrvState::Completed;
        stx.pending = None;
        stx.last_response = Some(bytes.clone());
        let (t, d) = (stx.transport, stx.reply_to.clone());
        let side_to = other_side(stx.side);
        let is_invite = stx.method == "INVITE";
        self.send(t, d, bytes.clone(), None);
        if let Ok(m) = SipMessage::parse(bytes, &self.cfg.limits) {
            let evs = self.track(&m, side_to, now);
            self.emit_events(evs);
        }
        self.complete_server(now, sid, is_invite, t);
    }

    fn complete_server(&mut self, now: Instant, sid: u64, is_invite: bool, t: TransportKind) {
        let udp = t == TransportKind::Udp;
        if is_invite {
            if udp {
                self.arm_server(
                    sid,
                    now + self.cfg.t1,
                    Timer::ServerRetransmit(sid, self.cfg.t1),
                );
            }
            self.arm_server(sid, now + self.cfg.t1 * 64, Timer::ServerCleanup(sid));
        // Timer H
        } else {
            // Timer J, shortened to the wait time like Kamailio's tm
            let j = if udp { self.cfg.wait } else { Duration::ZERO };
            self.arm_server(sid, now + j, Timer::ServerCleanup(sid));
        }
    }

    /// Zammad's answer to the `newCall` of server transaction `token`.
    pub fn handle_cti_answer(&mut self, now: Instant, token: CallId, answer: CtiAnswer) {
        let token = token.server_tx().0;
        let Some(stx) = self.servers.get_mut(&token) else {
            tracing::info!(token, "late newCall answer ignored (transaction gone)");
            return;
        };
        if stx.state != SrvState::AwaitingCti {
            tracing::info!(token, "late newCall answer ignored (call already went on)");
            return;
        }
        let Some(pending) = stx.pending.take() else {
            return;
        };
        let direction = stx.direction;
        match (answer, direction) {
            (CtiAnswer::Reject, Some(Direction::In)) => {
                self.stats.rejected_by_zammad += 1;
                tracing::info!(token, "Zammad rejected the inbound call: 486");
                self.final_from_proxy(now, token, 486, "Busy Here");
                return;
            }
            (CtiAnswer::Dial(caller_id), Some(Direction::Out)) if !caller_id.is_empty() => {
                let Some(req) = stx.req.as_ref() else {
                    return;
                };
                let cid = req.call_id().unwrap_or("").to_string();
                let tag = req.from().and_then(|f| f.tag().map(str::to_string));
                let user = req
                    .from()
                    .and_then(|f| f.parsed_uri().ok().and_then(|u| u.user.map(str::to_string)));
                if let (Some(tag), Some(user)) = (tag, user) {
                    self.stats.caller_id_rewrites += 1;
                    let key = (cid, tag.clone());
                    // The rewrite lives as long as the tracked call: its
                    // hangup (always emitted, at the latest after
                    // max_call_duration) schedules the removal.
                    if let Some(info) = self.tracker.call_info(&key.0, &key.1) {
                        self.call_rewrite.insert(info.call_id, key.clone());
                        self.rewrites.insert(
                            key,
                            Rewrite {
                                phone_tag: tag,
                                original_user: user,
                                caller_id,
                            },
                        );
                    } else {
                        self.stats.rewrite_untracked += 1;
                        if log_sample(self.stats.rewrite_untracked) {
                            tracing::warn!(
                                token,
                                count = self.stats.rewrite_untracked,
                                "call not tracked (table full): caller id left unchanged"
                            );
                        }
                    }
                }
            }
            (CtiAnswer::Continue, _) => {}
            (CtiAnswer::FailOpen, _) => self.stats.fail_open += 1,
            (other, d) => {
                tracing::info!(
                    token,
                    ?other,
                    ?d,
                    "Zammad answer does not apply to this direction; going on"
                );
            }
        }
        self.forward_request(now, token, pending.hop, pending.initial);
    }

    /// The edge could not send a message of client transaction `client_tx`
    /// (TCP connect refused, name not resolvable...): RFC 3261 16.7 step 2 / 8.1.3.1,
    /// the branch answers 503.
    pub fn handle_transport_error(&mut self, now: Instant, client_tx: ClientTxId) {
        let client_tx = client_tx.0;
        self.stats.transport_errors += 1;
        let Some(ctx) = self.clients.remove(&client_tx) else {
            return;
        };
        self.client_keys.remove(&ctx.key);
        if matches!(ctx.state, CliState::Completed | CliState::Accepted) {
            return;
        }
        if let Some(sid) = ctx.server {
            self.final_from_proxy(now, sid, 503, "Service Unavailable");
        }
    }

    // --------------------------------------------------------------- responses

    /// RFC 3261 17.1.3 / 16.7: a response is matched to a client
    /// transaction by the branch of its top Via and its CSeq method, and
    /// only then processed. The pipeline: validate; drop it unless it comes
    /// from the inside or the trunk; match; drop it unless it comes from
    /// the side the request went to; then the transaction's state machine.
    /// A response that matches no client transaction is dropped, except a
    /// 2xx retransmission that an Accepted INVITE record relays
    /// ([`ProxyCore::relay_accepted_2xx`]). Nothing is ever relayed by the
    /// response's own Via header.
    fn on_response(&mut self, now: Instant, msg: SipMessage, source: SocketAddr) {
        if let Err(e) = msg.validate() {
            self.stats.malformed_responses += 1;
            if log_sample(self.stats.malformed_responses) {
                tracing::warn!(%source, reason = %e.reason(), count = self.stats.malformed_responses, "malformed response dropped");
            }
            return;
        }
        let Some(side) = self.classify(source.ip()) else {
            self.stats.foreign_responses += 1;
            if log_sample(self.stats.foreign_responses) {
                tracing::warn!(
                    %source,
                    count = self.stats.foreign_responses,
                    "response from an address that is neither inside nor trunk dropped"
                );
            }
            return;
        };
        let Some(via) = msg.top_via() else { return };
        if !self.is_us(via.host, via.port) {
            self.stats.stray_responses += 1;
            if log_sample(self.stats.stray_responses) {
                tracing::warn!(%source, count = self.stats.stray_responses, "response whose top Via is not ours dropped");
            }
            return;
        }
        let status = msg.status().unwrap_or(0);
        let Some((_, cseq_method)) = msg.cseq() else {
            return;
        };
        let key = format!("{}|{}", via.branch().unwrap_or(""), cseq_method);
        let Some(&cid) = self.client_keys.get(&key) else {
            if cseq_method == "INVITE" && (200..300).contains(&status) {
                self.relay_accepted_2xx(now, &msg, &key, side, source);
            } else {
                self.count_stray(source, "response matches no transaction: dropped");
            }
            return;
        };
        let Some(ctx) = self.clients.get_mut(&cid) else {
            return;
        };
        if ctx.dest_side != side {
            self.stats.misdirected_responses += 1;
            if log_sample(self.stats.misdirected_responses) {
                tracing::warn!(
                    %source,
                    count = self.stats.misdirected_responses,
                    "response from the other side than its request went to dropped"
                );
            }
            return;
        }
        if (200..300).contains(&status) && ctx.server.is_some() && msg.vias().len() < 2 {
            // RFC 3261 16.7 step 3: no Via would remain, so it cannot go
            // upstream. A 2xx cannot be replaced by one of our own either:
            // it is dropped as if lost, and the transaction's own timers
            // (B/F, C) end the transaction with a 408.
            self.stats.only_our_via += 1;
            if log_sample(self.stats.only_our_via) {
                tracing::warn!(%source, status, count = self.stats.only_our_via, "2xx carrying only our Via dropped");
            }
            return;
        }
        let is_invite = ctx.method == "INVITE";
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
                        ctx.timer_c_at = Some(now + self.cfg.timer_c);
                    }
                    if ctx.cancel_requested && !ctx.cancel_sent {
                        send_cancel = true;
                    }
                }
                forward = status != 100 && ctx.method != "CANCEL";
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
                    forward = ctx.method != "CANCEL";
                }
            }
            _ => {
                if is_invite {
                    ack = ctx.req.as_ref().map(|r| build_ack(r, &msg));
                }
                if !matches!(ctx.state, CliState::Completed | CliState::Accepted) {
                    ctx.state = CliState::Completed;
                    first_final = true;
                    forward = ctx.method != "CANCEL";
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
                self.arm_client(cid, now + wait, Timer::ClientCleanup(cid));
            } else {
                // Timer K and RFC 6026 Accepted only absorb retransmitted
                // responses; without the transaction a retransmitted
                // non-2xx is dropped as stray (the same outcome) and a
                // retransmitted 2xx is relayed through the Accepted INVITE
                // record. So the slot is freed at once (it counts in
                // max_transactions).
                if is_invite && (200..300).contains(&status) {
                    self.remember_accepted(now, key.clone(), side, upstream.clone());
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
        // the tracker sees every response of the call
        let evs = self.track(&msg, side, now);
        self.emit_events(evs);
        if !forward {
            return;
        }
        let Some(sid) = server else { return };
        let Some(stx) = self.servers.get_mut(&sid) else {
            if (200..300).contains(&status) && is_invite {
                self.relay_2xx_to(&msg, &upstream);
            }
            return;
        };
        if matches!(stx.state, SrvState::Completed | SrvState::Confirmed) {
            // We already answered (Timer C 408, 503...). Any other final
            // response is absorbed, but a 2xx to an INVITE MUST still be
            // forwarded (RFC 3261 16.7 step 5, RFC 6026): the callee is up.
            if is_invite && (200..300).contains(&status) && msg.vias().len() >= 2 {
                let (t, d, up) = (stx.transport, stx.reply_to.clone(), toward(stx.side));
                let bytes = self.response_upstream_bytes(&msg, up);
                self.send(t, d, bytes, None);
            }
            return;
        }
        let upstream = toward(stx.side);
        if msg.vias().len() < 2 {
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
        let bytes = self.response_upstream_bytes(&msg, upstream);
        let Some(stx) = self.servers.get_mut(&sid) else {
            return;
        };
        let (t, d) = (stx.transport, stx.reply_to.clone());
        let srv_invite = stx.method == "INVITE";
        stx.last_response = Some(bytes.clone());
        let mut complete = false;
        if status >= 200 {
            if srv_invite && status < 300 {
                // RFC 6026 Accepted: INVITE retransmissions are absorbed;
                // 2xx retransmissions come from the callee and are relayed
                stx.req = None;
                stx.last_response = None;
                if stx.state != SrvState::Accepted {
                    stx.state = SrvState::Accepted;
                    let at = now + self.cfg.wait;
                    self.arm_server(sid, at, Timer::ServerCleanup(sid));
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

    fn response_upstream_bytes(&self, msg: &SipMessage, toward: Toward) -> Vec<u8> {
        let mut edit = msg.edit();
        edit.remove_first_value("Via");
        if let Some(rw) = self.rewrite_for(msg) {
            for (idx, v) in rw.edits(msg, toward, false) {
                edit.replace_value(idx, &v);
            }
        }
        edit.finish()
    }

    fn count_stray(&mut self, source: SocketAddr, what: &'static str) {
        self.stats.stray_responses += 1;
        if log_sample(self.stats.stray_responses) {
            tracing::warn!(%source, count = self.stats.stray_responses, "{what}");
        }
    }

    /// Keep an Accepted INVITE record for client transaction `key` (RFC
    /// 6026 7.2), bounded by `max_transactions`; it expires after
    /// [`CoreConfig::wait`].
    fn remember_accepted(&mut self, now: Instant, key: String, downstream: Side, up: Upstream) {
        if self.accepted.contains_key(&key) {
            return;
        }
        if self.accepted.len() >= self.cfg.max_transactions {
            self.stats.accepted_table_full += 1;
            if log_sample(self.stats.accepted_table_full) {
                tracing::warn!(
                    count = self.stats.accepted_table_full,
                    "Accepted INVITE table full: later 2xx retransmissions of this call are dropped"
                );
            }
            return;
        }
        self.accepted_expiry
            .push_back((now + self.cfg.wait, key.clone()));
        self.accepted.insert(
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
    fn relay_accepted_2xx(
        &mut self,
        now: Instant,
        msg: &SipMessage,
        key: &str,
        side: Side,
        source: SocketAddr,
    ) {
        let Some(rec) = self.accepted.get(key) else {
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
        let next_ok = vias
            .get(1)
            .is_some_and(|v| !self.is_us(v.host, v.port) && v.branch().unwrap_or("") == up.branch);
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
    fn relay_2xx_to(&mut self, msg: &SipMessage, up: &Upstream) {
        if msg.vias().len() < 2 {
            return;
        }
        let bytes = self.response_upstream_bytes(msg, toward(up.side));
        self.send(up.transport, up.reply_to.clone(), bytes, None);
    }

    // ------------------------------------------------------------------ timers

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let evs = self.tracker.handle_timeout(now);
        self.emit_events(evs);
        while self.accepted_expiry.front().is_some_and(|e| e.0 <= now) {
            if let Some((_, key)) = self.accepted_expiry.pop_front() {
                self.accepted.remove(&key);
            }
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let t = entry.remove();
            self.fire(now, t);
        }
    }

    fn fire(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::ClientRetransmit(cid) => {
                let Some(ctx) = self.clients.get_mut(&cid) else {
                    return;
                };
                let again = if ctx.method == "INVITE" {
                    ctx.state == CliState::Calling // Timer A
                } else {
                    ctx.state == CliState::Proceeding || ctx.state == CliState::Calling
                    // Timer E
                };
                if !again {
                    return;
                }
                let Some(data) = ctx.req.as_ref().map(|r| r.as_bytes().to_vec()) else {
                    return;
                };
                let (tr, d) = (ctx.transport, ctx.dest.clone());
                ctx.interval = if ctx.method == "INVITE" {
                    ctx.interval * 2
                } else {
                    (ctx.interval * 2).min(Duration::from_secs(4)) // T2
                };
                let next = now + ctx.interval;
                self.send(tr, d, data, Some(cid));
                self.arm_client(cid, next, Timer::ClientRetransmit(cid));
            }
            Timer::ClientTimeout(cid) => {
                // Timer B / F: no final response within 64*T1
                let Some(ctx) = self.clients.get(&cid) else {
                    return;
                };
                let timed_out = if ctx.method == "INVITE" {
                    ctx.state == CliState::Calling
                } else {
                    !matches!(ctx.state, CliState::Completed | CliState::Accepted)
                };
                if !timed_out {
                    return;
                }
                let server = ctx.server;
                self.remove_client(cid);
                if let Some(sid) = server {
                    self.final_from_proxy(now, sid, 408, "Request Timeout");
                }
            }
            Timer::TimerC(cid) => {
                let Some(ctx) = self.clients.get(&cid) else {
                    return;
                };
                if matches!(ctx.state, CliState::Completed | CliState::Accepted) {
                    return;
                }
                if let Some(at) = ctx.timer_c_at {
                    if at > now {
                        self.arm_client(cid, at, Timer::TimerC(cid));
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
                    self.final_from_proxy(now, sid, 408, "Request Timeout");
                }
            }
            Timer::ClientCleanup(cid) => self.remove_client(cid),
            Timer::CancelTimeout(cid) => {
                let Some(ctx) = self.clients.get(&cid) else {
                    return;
                };
                if matches!(ctx.state, CliState::Completed | CliState::Accepted) {
                    return;
                }
                let server = ctx.server;
                self.remove_client(cid);
                if let Some(sid) = server {
                    // the caller still gets its final answer (no-op when it had one)
                    self.final_from_proxy(now, sid, 487, "Request Terminated");
                }
            }
            Timer::ServerRetransmit(sid, interval) => {
                // Timer G: resend the non-2xx final until the ACK
                let Some(stx) = self.servers.get(&sid) else {
                    return;
                };
                if stx.state != SrvState::Completed {
                    return;
                }
                if let Some(r) = stx.last_response.clone() {
                    let (t, d) = (stx.transport, stx.reply_to.clone());
                    self.send(t, d, r, None);
                }
                let next = (interval * 2).min(Duration::from_secs(4));
                self.arm_server(sid, now + next, Timer::ServerRetransmit(sid, next));
            }
            Timer::ServerCleanup(sid) => self.remove_server(sid),
            Timer::CtiWait(sid) => {
                let pending = self
                    .servers
                    .get(&sid)
                    .is_some_and(|s| s.state == SrvState::AwaitingCti);
                if pending {
                    if log_sample(self.stats.fail_open + 1) {
                        tracing::warn!(
                            token = sid,
                            count = self.stats.fail_open + 1,
                            "no newCall answer in time: call goes on unchanged"
                        );
                    }
                    self.handle_cti_answer(now, CallId::of(ServerTxId(sid)), CtiAnswer::FailOpen);
                }
            }
            Timer::RewriteExpire(key) => {
                self.rewrites.remove(&key);
            }
        }
    }

    fn remove_client(&mut self, cid: u64) {
        if let Some(c) = self.clients.remove(&cid) {
            self.client_keys.remove(&c.key);
            for k in c.timer_keys {
                self.timers.remove(&k);
            }
        }
    }
}

/// Build an error response for a request that [`SipMessage::parse`]
/// rejected, from the Via, From, To, Call-ID and CSeq lines found by a
/// plain line scan (RFC 3261 8.2.6). `None` for responses, ACKs, and when a
/// needed header is missing: then nothing can be answered.
///
/// Takes the received bytes (at most the first 64 KiB are looked at), the
/// source address, the status and reason; returns the response bytes. Every
/// Via line is copied in order; of From, To, Call-ID and CSeq the first line.
/// The top Via gets `received` and the filled `rport` (RFC 3581) when it
/// asked for rport, as every response the proxy builds does. The To gets a
/// tag (RFC 3261 8.2.6.2) unless it has one, `sc` + a hash of Call-ID and
/// status as for the core's other stateless answers, and is rebuilt
/// well-formed by [`sipcti_wire::to_with_tag`] when it is broken (an
/// unclosed quote keeps only its last `<URI>`, so the tag never lands inside
/// the quote). Never panics.
pub fn salvage_error_response(
    data: &[u8],
    source: SocketAddr,
    status: u16,
    reason: &str,
) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data.get(..data.len().min(65_536))?);
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") {
        return None;
    }
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if !start.contains("SIP/") || start.starts_with("ACK ") {
        return None;
    }
    let names = ["Via", "From", "To", "Call-ID", "CSeq"];
    let mut vias: Vec<String> = Vec::new();
    let mut first: [Option<String>; 5] = Default::default();
    for line in lines.take(256) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let canon = sipcti_wire::canonical_name(name.trim());
        let Some(i) = names.iter().position(|n| canon.eq_ignore_ascii_case(n)) else {
            continue;
        };
        let value = value.trim().replace(['\r', '\n'], " ");
        if i == 0 {
            vias.push(value);
        } else if first[i].is_none() {
            first[i] = Some(value);
        }
    }
    let [_, Some(from), Some(to), Some(call_id), Some(cseq)] = first else {
        return None;
    };
    if vias.is_empty() || cseq.ends_with("ACK") {
        return None;
    }
    if let Some(top) = vias.first_mut() {
        if let Some(at) = top.find(";rport") {
            let rest = &top[at + 6..];
            if !rest.starts_with('=') {
                *top = format!(
                    "{};rport={};received={}{}",
                    &top[..at],
                    source.port(),
                    source.ip(),
                    rest
                );
            }
        }
    }
    let tag = format!("sc{:x}", fnv1a(&[&call_id, &status.to_string()]));
    let to = sipcti_wire::to_with_tag(&to, &tag);
    let mut out = format!("SIP/2.0 {status} {}\r\n", reason.replace(['\r', '\n'], " "));
    for via in &vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for (name, value) in [
        ("From", &from),
        ("To", &to),
        ("Call-ID", &call_id),
        ("CSeq", &cseq),
    ] {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// Remove the first `n` Route values (RFC 3261 16.4). Edits refer to the
/// original message, so for more than one value the Route lines are
/// replaced by one line holding the values that remain.
fn pop_routes(edit: &mut sipcti_wire::Edit<'_>, msg: &SipMessage, n: usize) {
    match n {
        0 => {}
        1 => {
            edit.remove_first_value("Route");
        }
        _ => {
            let values = msg.header_values("Route");
            let lines: Vec<usize> = msg.header_lines("Route").map(|h| h.index).collect();
            for i in lines {
                edit.remove_header(i);
            }
            if values.len() > n {
                edit.insert_first("Route", &values[n..].join(", "));
            }
        }
    }
}

/// Replace `host[:port]` of a SIP URI, keeping scheme, user and parameters.
fn replace_hostport(u: &Uri<'_>, hostport: &str) -> String {
    let scheme = u.scheme;
    let mut out = format!("{scheme}:");
    if let Some(user) = u.user {
        out.push_str(user);
        if let Some(p) = u.password {
            out.push(':');
            out.push_str(p);
        }
        out.push('@');
    }
    out.push_str(hostport);
    out.push_str(u.params);
    if let Some(h) = u.headers {
        out.push('?');
        out.push_str(h);
    }
    out
}

fn header_lines_of(req: &SipMessage, name: &str) -> Vec<String> {
    req.header_lines(name)
        .map(|h| format!("{}: {}\r\n", sipcti_wire::canonical_name(h.name), h.value))
        .collect()
}

/// RFC 3261 9.1: a CANCEL for a forwarded INVITE: same Request-URI,
/// Call-ID, To, From, CSeq number, our Via only, the same Route.
pub fn build_cancel(invite: &SipMessage) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!(
        "CANCEL {} SIP/2.0\r\n",
        invite.request_uri().unwrap_or("")
    ));
    if let Some(v) = invite.header_values("Via").first() {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for r in header_lines_of(invite, "Route") {
        out.push_str(&r);
    }
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    out.push_str(&format!(
        "CSeq: {n} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    out.into_bytes()
}

/// RFC 3261 17.1.1.3: the ACK for a non-2xx final response, sent hop by
/// hop by the proxy's client transaction.
pub fn build_ack(invite: &SipMessage, resp: &SipMessage) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!(
        "ACK {} SIP/2.0\r\n",
        invite.request_uri().unwrap_or("")
    ));
    if let Some(v) = invite.header_values("Via").first() {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for r in header_lines_of(invite, "Route") {
        out.push_str(&r);
    }
    if let Some(v) = invite.header("From") {
        out.push_str(&format!("From: {v}\r\n"));
    }
    if let Some(v) = resp.header("To") {
        out.push_str(&format!("To: {v}\r\n"));
    }
    if let Some(v) = invite.header("Call-ID") {
        out.push_str(&format!("Call-ID: {v}\r\n"));
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    out.push_str(&format!(
        "CSeq: {n} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    out.into_bytes()
}
