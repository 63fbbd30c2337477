//! Shared helpers of the sans-IO core tests: a fixed configuration, a fake
//! clock (a base `Instant` plus offsets), and small accessors over the
//! core's outputs. No sockets, no sleeping.
#![allow(dead_code)]

pub mod build;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipcti_core::{CoreConfig, Hop, Output, ProxyCore, SourceLimits, Target, Transmit};
use sipcti_dialog::{CallEvent, TrackerConfig};
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_wire::{Limits, SipMessage, TransportKind};

#[allow(unused_imports)]
pub use TransportKind::{Tcp, Udp};

/// The proxy's own address (Via, Record-Route).
pub const PROXY: &str = "192.0.2.10:5060";
/// The SIP trunk (also the only trunk source network member used).
pub const TRUNK: &str = "203.0.113.5:5060";
/// Where inbound calls go.
pub const PBX: &str = "10.0.0.2:5060";
/// A phone inside (its Via names this address, it asks for rport).
pub const PHONE: &str = "10.0.0.20:5062";
/// An address neither inside nor trunk.
pub const STRANGER: &str = "198.51.100.7:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

pub fn target(s: &str) -> Target {
    Target::Addr(addr(s))
}

/// The configuration every test starts from (RFC 3261 defaults: T1 500 ms,
/// Timer C 180 s; newCall waited for at most 3.5 s).
pub fn config() -> CoreConfig {
    CoreConfig {
        local: addr(PROXY),
        aliases: vec![],
        trunk: Hop {
            target: target(TRUNK),
            transport: Udp,
            hostport: "203.0.113.5".into(),
        },
        trunk_sources: vec!["203.0.113.0/24".parse().unwrap()],
        inside_networks: vec!["10.0.0.0/24".parse().unwrap()],
        inside_target: Hop {
            target: target(PBX),
            transport: Udp,
            hostport: "10.0.0.2".into(),
        },
        limits: Limits::default(),
        t1: Duration::from_millis(500),
        timer_c: Duration::from_secs(180),
        newcall_wait: Duration::from_millis(3500),
        max_transactions: 1000,
        inside_ip: addr(PROXY).ip(),
        trunk_ip: addr(PROXY).ip(),
        wait: Duration::from_secs(32),
        tracker: TrackerConfig::default(),
        sources: SourceLimits::default(),
        registration: Default::default(),
        // the byte-exact tests predate topology hiding: they see today's
        // pass-through; core_topology.rs turns it on
        topology: sipcti_core::TopologyHiding {
            enabled: false,
            ..Default::default()
        },
    }
}

/// A core plus a fake clock. Times are milliseconds after `t0`.
pub struct H {
    pub core: ProxyCore,
    pub t0: Instant,
}

impl H {
    pub fn new() -> H {
        H::with(config())
    }

    pub fn with(cfg: CoreConfig) -> H {
        H {
            core: ProxyCore::new(cfg),
            t0: Instant::now(),
        }
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub fn drain(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.core.poll_output() {
            v.push(o);
        }
        v
    }

    /// Feed `msg` from `src` over `tr` at `ms`; return every output.
    pub fn recv(
        &mut self,
        ms: u64,
        msg: impl AsRef<[u8]>,
        src: &str,
        tr: TransportKind,
    ) -> Vec<Output> {
        let now = self.at(ms);
        self.core
            .handle_received(now, msg.as_ref().to_vec(), addr(src), tr);
        self.drain()
    }

    pub fn udp(&mut self, ms: u64, msg: impl AsRef<[u8]>, src: &str) -> Vec<Output> {
        self.recv(ms, msg, src, Udp)
    }

    /// Run the core's timers as a real edge would (each at its own
    /// deadline), up to and including `ms`. Returns (deadline ms, output).
    pub fn run_until(&mut self, ms: u64) -> Vec<(u64, Output)> {
        let end = self.at(ms);
        let mut v = Vec::new();
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            self.core.handle_timeout(t);
            let at = (t - self.t0).as_millis() as u64;
            while let Some(o) = self.core.poll_output() {
                v.push((at, o));
            }
        }
        v
    }

    pub fn timers_until(&mut self, ms: u64) -> Vec<Output> {
        self.run_until(ms).into_iter().map(|(_, o)| o).collect()
    }

    pub fn cti(
        &mut self,
        ms: u64,
        token: sipcti_core::CallId,
        a: sipcti_core::CtiAnswer,
    ) -> Vec<Output> {
        let now = self.at(ms);
        self.core.handle_cti_answer(now, token, a);
        self.drain()
    }
}

impl Default for H {
    fn default() -> Self {
        H::new()
    }
}

/// Message text with `\n` line ends turned into CRLF and Content-Length
/// filled in (`Content-Length: *` is replaced by the body length).
pub fn sip(text: &str) -> Vec<u8> {
    let t = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let (head, body) = t.split_once("\r\n\r\n").expect("blank line");
    let head = head.replace(
        "Content-Length: *",
        &format!("Content-Length: {}", body.len()),
    );
    format!("{head}\r\n\r\n{body}").into_bytes()
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn transmits(outs: &[Output]) -> Vec<&Transmit> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub fn events(outs: &[Output]) -> Vec<&CallEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn new_calls(outs: &[Output]) -> Vec<(sipcti_core::CallId, &CallEvent)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::NewCall { token, event } => Some((*token, event)),
            _ => None,
        })
        .collect()
}

/// The one Transmit of `outs`; panics (showing everything) otherwise.
pub fn only_tx(outs: &[Output]) -> &Transmit {
    let t = transmits(outs);
    assert_eq!(
        t.len(),
        1,
        "expected exactly one transmit, got {}",
        show(outs)
    );
    assert!(
        events(outs).is_empty() && new_calls(outs).is_empty(),
        "unexpected CTI output: {}",
        show(outs)
    );
    t[0]
}

pub fn show(outs: &[Output]) -> String {
    let mut o = String::new();
    for x in outs {
        match x {
            Output::Transmit(t) => o.push_str(&format!(
                "\n--- Transmit {:?} -> {} (client_tx {:?})\n{}",
                t.transport,
                t.dest,
                t.client_tx,
                s(&t.data)
            )),
            Output::NewCall { token, event } => {
                o.push_str(&format!("\n--- NewCall #{token} {event:?}"))
            }
            Output::Event(e) => o.push_str(&format!("\n--- Event {e:?}")),
            Output::Binding(b) => o.push_str(&format!("\n--- Binding {b:?}")),
        }
    }
    o
}

pub fn parse(b: &[u8]) -> SipMessage {
    SipMessage::parse(b.to_vec(), &Limits::default()).expect("core output parses")
}

/// Start line of a message.
pub fn start_line(b: &[u8]) -> String {
    let t = s(b);
    t.split("\r\n").next().unwrap_or("").to_string()
}

/// Header lines (`Name: value`, as written) of a message, in order.
pub fn header_lines(b: &[u8]) -> Vec<String> {
    let t = s(b);
    let head = t.split("\r\n\r\n").next().unwrap_or("").to_string();
    head.split("\r\n").skip(1).map(str::to_string).collect()
}

/// Value of the first header `name` (exact case of the name as written).
pub fn hv(b: &[u8], name: &str) -> Option<String> {
    let m = parse(b);
    m.header(name).map(str::to_string)
}

/// The branch of the top Via of a message.
pub fn top_branch(b: &[u8]) -> String {
    let m = parse(b);
    m.top_via()
        .and_then(|v| v.branch())
        .expect("top Via branch")
        .to_string()
}

/// Check one transmit: transport, destination and exact bytes.
#[track_caller]
pub fn assert_tx(t: &Transmit, tr: TransportKind, dest: &str, expected: &[u8]) {
    assert_eq!(
        (t.transport, t.dest.clone()),
        (tr, target(dest)),
        "transport/destination of\n{}",
        s(&t.data)
    );
    assert_eq!(s(&t.data), s(expected), "bytes differ");
    assert_eq!(t.data, expected, "bytes differ (binary)");
}

/// Check one CTI event.
#[track_caller]
pub fn assert_ev(
    e: &CallEvent,
    kind: EventKind,
    dir: Direction,
    from: &str,
    to: &str,
    cause: Option<Cause>,
) {
    assert_eq!(
        (e.kind, e.direction, e.from.as_str(), e.to.as_str(), e.cause),
        (kind, dir, from, to, cause),
        "event {e:?}"
    );
}

/// The exact response the core builds for `req` (Via lines, From, To with
/// an optional tag added, Call-ID, CSeq, extras, Content-Length: 0).
pub fn response_text(
    status_line: &str,
    vias: &[&str],
    from: &str,
    to: &str,
    call_id: &str,
    cseq: &str,
    extra: &[&str],
) -> Vec<u8> {
    let mut o = format!("{status_line}\r\n");
    for v in vias {
        o.push_str(&format!("Via: {v}\r\n"));
    }
    o.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
    ));
    for e in extra {
        o.push_str(e);
        o.push_str("\r\n");
    }
    o.push_str("Content-Length: 0\r\n\r\n");
    o.into_bytes()
}

/// The To tag of a message (None without one).
pub fn to_tag(b: &[u8]) -> Option<String> {
    let m = parse(b);
    m.to().and_then(|t| t.tag().map(str::to_string))
}

/// The response `status` (e.g. `"SIP/2.0 200 OK"`) a UAS sends to request
/// `req` as it received it: every Via, From, To with `;tag=to_tag` added
/// (unless it has one), Call-ID and CSeq copied, then `extra` header lines.
pub fn reply(req: &[u8], status: &str, to_tag: &str, extra: &[&str]) -> Vec<u8> {
    let m = parse(req);
    let vias: Vec<&str> = m.header_values("Via");
    let to = m.header("To").expect("To");
    let to = if m.to().and_then(|t| t.tag()).is_some() {
        to.to_string()
    } else {
        format!("{to};tag={to_tag}")
    };
    response_text(
        status,
        &vias,
        m.header("From").expect("From"),
        &to,
        m.call_id().expect("Call-ID"),
        m.header("CSeq").expect("CSeq"),
        extra,
    )
}
