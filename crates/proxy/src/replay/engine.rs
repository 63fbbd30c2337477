//! The pure core of `sipcti replay`: captures in, call events out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipcti_capture::{CaptureReader, Datagram, Transport};
use sipcti_core::BindingKey;
use sipcti_dialog::{CallEvent, CallTracker, MsgView, Side, TrackerConfig};
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_wire::{Frame, Limits, NameAddr, SipMessage, StreamFramer};

use crate::config::Config;

/// A network (`10.0.0.0/8`, `192.0.2.7`) or one endpoint (`192.0.2.7:5070`,
/// `[2001:db8::1]:5060`) used to tell the trunk from the inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetMatch {
    /// Addresses matched.
    pub net: IpNet,
    /// Only this port, when given.
    pub port: Option<u16>,
}

impl NetMatch {
    /// A whole network, any port.
    pub fn net(net: IpNet) -> NetMatch {
        NetMatch { net, port: None }
    }

    /// True if `a` is in the network (and on the port, when one is set). IPv4-mapped
    /// IPv6 addresses are compared as IPv4, as the live proxy does.
    pub fn matches(&self, a: &SocketAddr) -> bool {
        self.port.is_none_or(|p| p == a.port()) && self.net.contains(&unmap(a.ip()))
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl FromStr for NetMatch {
    type Err = String;

    fn from_str(s: &str) -> Result<NetMatch, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(NetMatch::net(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(NetMatch::net(IpNet::from(ip)));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(NetMatch {
                net: IpNet::from(unmap(sa.ip())),
                port: Some(sa.port()),
            });
        }
        Err(format!(
            "{s:?} is not a CIDR network, an IP address or IP:PORT"
        ))
    }
}

impl std::fmt::Display for NetMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.port, self.net.addr()) {
            (None, _) => write!(f, "{}", self.net),
            (Some(p), IpAddr::V6(a)) => write!(f, "[{a}]:{p}"),
            (Some(p), a) => write!(f, "{a}:{p}"),
        }
    }
}

/// What a replay needs to know.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Trunk addresses: a message from one of them comes from [`Side::Trunk`].
    pub trunk: Vec<NetMatch>,
    /// Inside networks: a message from one of them comes from [`Side::Inside`].
    pub inside: Vec<NetMatch>,
    /// Messages no network classifies (by source, then by destination) are taken as
    /// coming from the inside instead of being skipped: the sender of a call's initial
    /// INVITE is then the inside party, so such calls are `out`. For captures recorded
    /// elsewhere.
    pub guess_sides: bool,
    /// Call tracker settings (numbers, timers, table size).
    pub tracker: TrackerConfig,
    /// Message size limits of the wire layer.
    pub limits: Limits,
    /// At the end, hang up calls still open (as the live proxy does when it stops);
    /// those hangups are marked `synthetic`.
    pub close_open_calls: bool,
    /// Keep every SIP message's summary (for the ladder diagram).
    pub keep_messages: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            trunk: vec![],
            inside: vec![],
            guess_sides: false,
            tracker: TrackerConfig::default(),
            limits: Limits::default(),
            close_open_calls: true,
            keep_messages: false,
        }
    }
}

impl ReplayOptions {
    /// Networks, numbers, timers and limits as the live proxy derives them from `cfg`.
    /// The trunk sources default to the trunk URI's address when the file lists none and
    /// the URI host is an IP literal (a host name is not resolved: the capture may be old).
    pub fn from_config(cfg: &Config) -> ReplayOptions {
        let mut trunk: Vec<NetMatch> = cfg
            .trunk_sources
            .iter()
            .copied()
            .map(NetMatch::net)
            .collect();
        if trunk.is_empty() {
            if let Ok(ip) = cfg.trunk.host.parse::<IpAddr>() {
                trunk.push(NetMatch::net(IpNet::from(ip)));
            }
        }
        ReplayOptions {
            trunk,
            inside: cfg
                .inside_networks
                .iter()
                .copied()
                .map(NetMatch::net)
                .collect(),
            tracker: cfg.tracker_config(),
            limits: cfg.wire_limits(),
            ..ReplayOptions::default()
        }
    }

    /// The side a message from `src` to `dst` came from: source in the trunk
    /// addresses -> trunk; source inside -> inside; else destination in the trunk
    /// addresses -> inside; destination inside -> trunk; else `None` (or inside with
    /// [`guess_sides`](Self::guess_sides)).
    pub fn classify(&self, src: &SocketAddr, dst: &SocketAddr) -> Option<Side> {
        let from_trunk = self.trunk.iter().any(|n| n.matches(src));
        let from_inside = !from_trunk && self.inside.iter().any(|n| n.matches(src));
        if from_trunk {
            Some(Side::Trunk)
        } else if from_inside || self.trunk.iter().any(|n| n.matches(dst)) {
            Some(Side::Inside)
        } else if self.inside.iter().any(|n| n.matches(dst)) {
            Some(Side::Trunk)
        } else if self.guess_sides {
            Some(Side::Inside)
        } else {
            None
        }
    }
}

/// One call event found in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEvent {
    /// Index of the capture (in the order given).
    pub capture: usize,
    /// 1-based packet number in that capture of the message that caused the event (for
    /// a timer: the first packet seen after the deadline; for a synthetic hangup: the
    /// last packet).
    pub packet: u64,
    /// Capture time of the event (since the UNIX epoch); for a timer, its deadline.
    pub ts: Duration,
    /// A hangup made up at the end of the captures for a call still open.
    pub synthetic: bool,
    /// The tracker's event.
    pub event: CallEvent,
}

impl ReplayEvent {
    /// The event Zammad would get.
    pub fn cti(&self) -> sipcti_cti::Event {
        crate::cti_glue::to_cti_event(&self.event)
    }
}

/// One SIP message of a capture (kept with [`ReplayOptions::keep_messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Index of the capture.
    pub capture: usize,
    /// 1-based packet number (for TCP: the packet that completed the message).
    pub packet: u64,
    /// Capture time.
    pub ts: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The side it was classified to (None: unclassified, not fed to the tracker).
    pub side: Option<Side>,
    /// SIP Call-ID.
    pub sip_call_id: String,
    /// `INVITE`, `180 Ringing`, `200 OK`..., with ` (SDP)` when it carries SDP.
    pub label: String,
    /// CSeq, e.g. `1 INVITE`.
    pub cseq: String,
}

/// A per-call summary (for the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    /// Zammad callId.
    pub call_id: String,
    /// SIP Call-ID.
    pub sip_call_id: String,
    /// in / out.
    pub direction: Direction,
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// Answering number (in) or the called number (out) when answered.
    pub answered_by: Option<String>,
    /// Hangup cause (None: no hangup, only with `close_open_calls` off).
    pub cause: Option<Cause>,
    /// The hangup is synthetic (call still open at the end).
    pub synthetic_end: bool,
    /// newCall time.
    pub started: Duration,
    /// answer time.
    pub answered: Option<Duration>,
    /// hangup time.
    pub ended: Option<Duration>,
}

impl CallSummary {
    /// Seconds from newCall to the answer (or to the hangup of a call never answered).
    pub fn ringing_secs(&self) -> Option<f64> {
        let end = self.answered.or(self.ended)?;
        Some(end.saturating_sub(self.started).as_secs_f64())
    }

    /// Seconds from the answer to the hangup.
    pub fn talk_secs(&self) -> Option<f64> {
        Some(self.ended?.saturating_sub(self.answered?).as_secs_f64())
    }
}

/// Counters of a replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayStats {
    /// Captures read (opened).
    pub captures: usize,
    /// Packets read.
    pub packets: u64,
    /// UDP datagrams and TCP stream chunks.
    pub datagrams: u64,
    /// SIP messages recognised (parsed or not).
    pub sip_messages: u64,
    /// SIP messages that do not parse (or cannot be framed), and those the tracker
    /// would act on that do not validate; skipped. (Messages the tracker ignores,
    /// such as ACK, REGISTER or provisional responses, are not validated.)
    pub unparseable: u64,
    /// UDP datagrams / TCP data that are not SIP, skipped.
    pub non_sip: u64,
    /// CRLF keep-alives.
    pub keepalives: u64,
    /// SIP messages no network classified, skipped.
    pub unclassified: u64,
    /// Calls (newCall events).
    pub calls: u64,
    /// Events (synthetic ones included).
    pub events: u64,
    /// Synthetic hangups.
    pub synthetic_events: u64,
    /// Wall time of the replay.
    pub elapsed: Duration,
}

impl ReplayStats {
    /// SIP messages per second of wall time.
    pub fn messages_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.sip_messages as f64 / s
        } else {
            0.0
        }
    }
}

/// A capture that could not be read completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// The capture file.
    pub path: PathBuf,
    /// The packet at fault (1-based; 0: the file header), when known.
    pub packet: Option<u64>,
    /// What went wrong (names the packet).
    pub message: String,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Everything a replay found.
#[derive(Debug, Clone, Default)]
pub struct ReplayResult {
    /// Call events in order.
    pub events: Vec<ReplayEvent>,
    /// Calls in newCall order.
    pub calls: Vec<CallSummary>,
    /// SIP messages (only with [`ReplayOptions::keep_messages`]).
    pub messages: Vec<MessageRecord>,
    /// Counters.
    pub stats: ReplayStats,
    /// Captures not read completely (each names the file and packet).
    pub errors: Vec<ReplayError>,
}

/// Replays `paths` in order through one call tracker and returns what it found.
/// Never panics on bad input: an unreadable, truncated or corrupt capture gives every
/// event of the packets before the damage plus a [`ReplayError`].
pub fn replay_captures<P: AsRef<Path>>(paths: &[P], opts: &ReplayOptions) -> ReplayResult {
    let started = Instant::now();
    let mut e = Engine::new(opts);
    for (i, p) in paths.iter().enumerate() {
        let path = p.as_ref();
        match CaptureReader::open(path) {
            Ok(r) => e.capture(i, path, r),
            Err(err) => e.error(path, &err),
        }
    }
    let mut res = e.finish();
    res.stats.elapsed = started.elapsed();
    res
}

/// Like [`replay_captures`] for captures held in memory (`name` is used in errors).
pub fn replay_bytes(captures: Vec<(String, Vec<u8>)>, opts: &ReplayOptions) -> ReplayResult {
    let started = Instant::now();
    let mut e = Engine::new(opts);
    for (i, (name, data)) in captures.into_iter().enumerate() {
        let path = Path::new(&name);
        match CaptureReader::from_bytes(data) {
            Ok(r) => e.capture(i, path, r),
            Err(err) => e.error(path, &err),
        }
    }
    let mut res = e.finish();
    res.stats.elapsed = started.elapsed();
    res
}

/// What a UDP payload looks like.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Sip,
    KeepAlive,
    Other,
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Recognises SIP by content: a start line `SIP/2.0 NNN ...` or `METHOD SP URI SP SIP/2.0`
/// after optional leading CRLFs; only CR/LF (and NUL) bytes is a keep-alive.
fn classify_payload(p: &[u8]) -> Kind {
    let start = p.iter().position(|&b| b != b'\r' && b != b'\n');
    let Some(start) = start else {
        return Kind::KeepAlive;
    };
    let p = &p[start..];
    if p.iter()
        .all(|&b| b == 0 || b == b'\r' || b == b'\n' || b == b' ')
    {
        return Kind::KeepAlive;
    }
    let line = &p[..p
        .iter()
        .take(2048)
        .position(|&b| b == b'\n')
        .unwrap_or(p.len().min(2048))];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() >= 12 && line[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        return if line[8..11].iter().all(u8::is_ascii_digit)
            && line.get(11).is_none_or(|&b| b == b' ')
        {
            Kind::Sip
        } else {
            Kind::Other
        };
    }
    if line.len() == 11
        && line[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
        && line[8..].iter().all(u8::is_ascii_digit)
    {
        return Kind::Sip;
    }
    // METHOD SP Request-URI SP SIP/2.0
    let m = line.iter().take_while(|&&b| is_token_char(b)).count();
    if m == 0 || line.get(m) != Some(&b' ') || line.len() < m + 1 + 3 + 8 {
        return Kind::Other;
    }
    let (head, version) = line.split_at(line.len() - 8);
    if !version.eq_ignore_ascii_case(b" SIP/2.0") {
        return Kind::Other;
    }
    let uri = &head[m + 1..];
    if uri.is_empty() || uri.contains(&b' ') || !uri.contains(&b':') {
        return Kind::Other;
    }
    Kind::Sip
}

struct Meta {
    capture: usize,
    packet: u64,
    ts: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
}

struct Engine<'o> {
    opts: &'o ReplayOptions,
    tracker: CallTracker,
    base: Instant,
    first_ts: Option<Duration>,
    /// Capture time of the tracker's clock, relative to `first_ts` (never goes back).
    clock: Duration,
    framers: HashMap<(SocketAddr, SocketAddr), StreamFramer>,
    last: (usize, u64),
    res: ReplayResult,
    /// The registration bindings the capture shows: each binding key
    /// (`rb…`) that sipcti put into the Contact (Contact mode) or Path (Path
    /// mode) of a REGISTER it relayed, with the AOR user (the To user,
    /// `201`): whom a call to that key is for, as the live proxy's bindings
    /// say.
    bindings: HashMap<BindingKey, String>,
}

impl<'o> Engine<'o> {
    fn new(opts: &'o ReplayOptions) -> Self {
        Engine {
            opts,
            tracker: CallTracker::new(opts.tracker.clone()),
            base: Instant::now(),
            first_ts: None,
            clock: Duration::ZERO,
            framers: HashMap::new(),
            last: (0, 0),
            res: ReplayResult::default(),
            bindings: HashMap::new(),
        }
    }

    /// Learn the binding keys of a REGISTER that sipcti relayed (see
    /// `bindings`).
    fn learn_bindings(&mut self, msg: &SipMessage) {
        let Some(user) = msg
            .to()
            .and_then(|na| na.parsed_uri().ok())
            .and_then(|u| u.user_unescaped())
        else {
            return;
        };
        let mut values = msg.header_values("Contact");
        values.extend(msg.header_values("Path"));
        for v in values {
            if let Some(key) = uri_binding_key(v) {
                self.bindings.insert(key, user.clone());
            }
        }
    }

    /// An INVITE from the trunk to a phone registered through sipcti names
    /// the phone's binding key in its Request-URI (Contact mode) or first
    /// Route (Path mode). Then, as in the live proxy (`ProxyCore::track`),
    /// Zammad's `to` is the To header's number (the number dialled) and the
    /// called person is the binding's user: `Some(that user)`, `Some(None)`
    /// when the capture does not show the REGISTER. `None`: not such a call.
    fn binding_call(&self, msg: &SipMessage, side: Side) -> Option<Option<String>> {
        if side != Side::Trunk || msg.method() != Some("INVITE") {
            return None;
        }
        let from_route = msg
            .header_values("Route")
            .first()
            .and_then(|r| uri_binding_key(r));
        let key = from_route.or_else(|| {
            let u = sipcti_wire::Uri::parse(msg.request_uri()?).ok()?;
            u.user.and_then(BindingKey::parse)
        })?;
        Some(self.bindings.get(&key).cloned())
    }

    fn error(&mut self, path: &Path, err: &sipcti_capture::CaptureError) {
        use sipcti_capture::CaptureError as E;
        let packet = match err {
            E::Truncated { packet } | E::Corrupt { packet, .. } => Some(*packet),
            _ => None,
        };
        self.res.errors.push(ReplayError {
            path: path.to_path_buf(),
            packet,
            message: err.to_string(),
        });
    }

    fn capture(&mut self, idx: usize, path: &Path, mut reader: CaptureReader) {
        self.res.stats.captures += 1;
        for item in reader.by_ref() {
            match item {
                Ok(d) => self.datagram(idx, d),
                Err(err) => {
                    self.error(path, &err);
                    break;
                }
            }
        }
        self.end_of_capture();
        self.res.stats.packets += reader.stats().packets;
    }

    /// Moves the clock to `ts` and runs the tracker timers due by then.
    fn advance(&mut self, ts: Duration, capture: usize, packet: u64) -> Instant {
        let first = *self.first_ts.get_or_insert(ts);
        let rel = ts.saturating_sub(first);
        if rel > self.clock {
            self.clock = rel;
        }
        self.last = (capture, packet);
        let now = self.base + self.clock;
        if self.tracker.poll_timeout().is_some_and(|t| t <= now) {
            let evs = self.tracker.handle_timeout(now);
            self.push_events(evs, capture, packet, false);
        }
        now
    }

    fn push_events(&mut self, evs: Vec<CallEvent>, capture: usize, packet: u64, synthetic: bool) {
        let first = self.first_ts.unwrap_or_default();
        for ev in evs {
            let ts = first + ev.at.saturating_duration_since(self.base);
            self.res.events.push(ReplayEvent {
                capture,
                packet,
                ts,
                synthetic,
                event: ev,
            });
        }
    }

    fn datagram(&mut self, capture: usize, d: Datagram) {
        self.res.stats.datagrams += 1;
        let now = self.advance(d.ts, capture, d.packet);
        let meta = Meta {
            capture,
            packet: d.packet,
            ts: d.ts,
            src: d.src,
            dst: d.dst,
            transport: d.transport,
        };
        match d.transport {
            Transport::Udp => match classify_payload(&d.payload) {
                Kind::Sip => self.message(d.payload, &meta, now),
                Kind::KeepAlive => self.res.stats.keepalives += 1,
                Kind::Other => self.res.stats.non_sip += 1,
            },
            Transport::Tcp => self.tcp(d.payload, d.gap_before, &meta, now),
        }
    }

    fn tcp(&mut self, payload: Vec<u8>, gap_before: bool, meta: &Meta, now: Instant) {
        let limits = self.opts.limits;
        let framer = self
            .framers
            .entry((meta.src, meta.dst))
            .or_insert_with(|| StreamFramer::new(limits));
        if gap_before {
            framer.reset();
        }
        let at_boundary = framer.buffered() == 0;
        if framer.push(&payload).is_err() {
            // A message larger than the limit: drop it and look for the next one.
            self.res.stats.sip_messages += 1;
            self.res.stats.unparseable += 1;
            framer.reset();
            let _ = framer.push(&payload);
        }
        if (gap_before || at_boundary) && !framer.resync() {
            self.res.stats.non_sip += 1;
        }
        let mut frames = Vec::new();
        let mut bad = 0u64;
        let mut pings = 0u64;
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => frames.push(m),
                Ok(Some(Frame::Ping)) => pings += 1,
                Ok(None) => break,
                Err(e) => {
                    // Cannot tell where this message ends: drop the buffer; the next
                    // chunk is searched for a start line.
                    tracing::debug!(error = %e, packet = meta.packet, "TCP framing error");
                    bad += 1;
                    framer.reset();
                    break;
                }
            }
        }
        self.res.stats.keepalives += pings;
        self.res.stats.sip_messages += bad;
        self.res.stats.unparseable += bad;
        for m in frames {
            self.message(m, meta, now);
        }
    }

    fn end_of_capture(&mut self) {
        for (_, mut f) in self.framers.drain() {
            if f.buffered() > 0 && f.resync() {
                // A message cut off by the end of the capture.
                self.res.stats.sip_messages += 1;
                self.res.stats.unparseable += 1;
            }
        }
    }

    fn message(&mut self, bytes: Vec<u8>, meta: &Meta, now: Instant) {
        self.res.stats.sip_messages += 1;
        let msg = match SipMessage::parse(bytes, &self.opts.limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(packet = meta.packet, reason = %e.reason(), "unparseable SIP message skipped");
                self.res.stats.unparseable += 1;
                return;
            }
        };
        // The tracker acts only on INVITE, CANCEL and BYE requests and on final
        // responses to INVITE; the rest (ACK, REGISTER, provisional responses, ...)
        // cannot change its events (its timers were run by `advance`), so it is
        // neither validated nor fed: half the work on typical captures.
        let relevant = sipcti_dialog::affects_calls(&msg);
        let valid = if relevant || self.opts.keep_messages {
            match msg.validate() {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(packet = meta.packet, reason = %e.reason(), "invalid SIP message skipped");
                    false
                }
            }
        } else {
            true
        };
        let side = self.opts.classify(&meta.src, &meta.dst);
        if self.opts.keep_messages {
            self.res.messages.push(record(&msg, meta, side, valid));
        }
        if relevant && !valid {
            self.res.stats.unparseable += 1;
            return;
        }
        if valid && msg.method() == Some("REGISTER") {
            self.learn_bindings(&msg);
        }
        let Some(side) = side else {
            self.res.stats.unclassified += 1;
            return;
        };
        if !relevant {
            return;
        }
        let view = self.binding_call(&msg, side).and_then(|target_user| {
            let mut v = MsgView::from_message(&msg).ok()?;
            v.ruri_user = None;
            v.target_user = target_user;
            Some(v)
        });
        let evs = match view {
            Some(v) => self.tracker.on_view(&v, side, now),
            None => self.tracker.on_message(&msg, side, now),
        };
        if !evs.is_empty() {
            self.push_events(evs, meta.capture, meta.packet, false);
        }
    }

    fn finish(mut self) -> ReplayResult {
        if self.opts.close_open_calls {
            let now = self.base + self.clock;
            let evs = self.tracker.shutdown(now);
            let (c, p) = self.last;
            self.push_events(evs, c, p, true);
        }
        let mut res = self.res;
        res.calls = summarise(&res.events);
        res.stats.calls = res.calls.len() as u64;
        res.stats.events = res.events.len() as u64;
        res.stats.synthetic_events = res.events.iter().filter(|e| e.synthetic).count() as u64;
        res
    }
}

fn record(msg: &SipMessage, meta: &Meta, side: Option<Side>, valid: bool) -> MessageRecord {
    let mut label = match (msg.method(), msg.status()) {
        (Some(m), _) => m.to_string(),
        (None, Some(s)) => match msg.reason() {
            Some(r) if !r.is_empty() => format!("{s} {r}"),
            _ => s.to_string(),
        },
        _ => String::from("?"),
    };
    let sdp = !msg.body().is_empty()
        && msg
            .header("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().contains("sdp"));
    if sdp {
        label.push_str(" (SDP)");
    }
    if !valid {
        label.push_str(" (invalid)");
    }
    MessageRecord {
        capture: meta.capture,
        packet: meta.packet,
        ts: meta.ts,
        src: meta.src,
        dst: meta.dst,
        transport: meta.transport,
        side,
        sip_call_id: msg.call_id().unwrap_or_default().to_string(),
        label,
        cseq: msg
            .cseq()
            .map(|(n, m)| format!("{n} {m}"))
            .unwrap_or_default(),
    }
}

/// Per-call summaries from the events, in newCall order.
pub fn summarise(events: &[ReplayEvent]) -> Vec<CallSummary> {
    let mut calls: Vec<CallSummary> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for e in events {
        let ev = &e.event;
        let i = match index.get(ev.call_id.as_str()) {
            Some(&i) => i,
            None => {
                index.insert(&ev.call_id, calls.len());
                calls.push(CallSummary {
                    call_id: ev.call_id.clone(),
                    sip_call_id: ev.sip_call_id.clone(),
                    direction: ev.direction,
                    from: ev.from.clone(),
                    to: ev.to.clone(),
                    answered_by: None,
                    cause: None,
                    synthetic_end: false,
                    started: e.ts,
                    answered: None,
                    ended: None,
                });
                calls.len() - 1
            }
        };
        let c = &mut calls[i];
        match ev.kind {
            EventKind::NewCall => {}
            EventKind::Answer => {
                c.answered = Some(e.ts);
                c.answered_by = Some(ev.answering_number.clone().unwrap_or_else(|| ev.to.clone()));
            }
            EventKind::Hangup => {
                c.ended = Some(e.ts);
                c.cause = ev.cause;
                c.synthetic_end = e.synthetic;
                if c.answered_by.is_none() {
                    c.answered_by = ev.answering_number.clone();
                }
            }
        }
    }
    calls
}

/// The binding key in the user part of a URI or name-addr value
/// (`<sip:rb0123456789abcdef@192.0.2.1;lr>`), if it has one.
fn uri_binding_key(value: &str) -> Option<BindingKey> {
    let na = NameAddr::parse(value).ok()?;
    let u = na.parsed_uri().ok()?;
    u.user.and_then(BindingKey::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_sip_by_content() {
        assert_eq!(
            classify_payload(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"),
            Kind::Sip
        );
        assert_eq!(
            classify_payload(b"\r\nSIP/2.0 180 Ringing\r\n\r\n"),
            Kind::Sip
        );
        assert_eq!(classify_payload(b"SIP/2.0 200\r\n\r\n"), Kind::Sip);
        assert_eq!(classify_payload(b"X-FOO tel:+491 SIP/2.0\n\n"), Kind::Sip);
        assert_eq!(classify_payload(b"\r\n\r\n"), Kind::KeepAlive);
        assert_eq!(classify_payload(b"GET / HTTP/1.1\r\n\r\n"), Kind::Other);
        assert_eq!(classify_payload(b"\x80\x00\x12\x34rtp"), Kind::Other);
        assert_eq!(classify_payload(b"SIP/2.0 abc\r\n"), Kind::Other);
        assert_eq!(classify_payload(b"INVITE sip:a@b SIP/3.0\r\n"), Kind::Other);
    }

    #[test]
    fn net_match_parses() {
        let n: NetMatch = "10.0.0.0/8".parse().unwrap();
        assert!(n.matches(&"10.1.2.3:5060".parse().unwrap()));
        let n: NetMatch = "127.0.0.1:5070".parse().unwrap();
        assert!(n.matches(&"127.0.0.1:5070".parse().unwrap()));
        assert!(!n.matches(&"127.0.0.1:5060".parse().unwrap()));
        assert!(n.matches(&"[::ffff:127.0.0.1]:5070".parse().unwrap()));
        let n: NetMatch = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(n.to_string(), "[2001:db8::1]:5060");
        assert!("nonsense".parse::<NetMatch>().is_err());
    }
}
