//! The proxy core (`sipcti_core::ProxyCore`) driven by an op script decoded from the
//! fuzz input (see `sipcti_fuzz::op`): messages from the seed list or raw bytes, from a
//! phone, the PBX, the trunk or a stranger, over UDP or TCP; time advancing with the
//! core's timers run at their deadlines; CTI answers; transport errors; answers to the
//! requests the core forwarded.
//!
//! Strict oracle:
//! (a) the core never panics;
//! (b) a message from a stranger (neither inside nor trunk) causes no Transmit other than
//!     a response to the stranger's own IP address, and no NewCall or Event;
//! (c) every response the core transmits goes to an IP address that earlier sent the core a
//!     request (a `Target::Name` destination for a response is a failure);
//! (d) after the script, 10 minutes of time in 1 s steps leave no transaction.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sipcti_fuzz::{addr, core_config, op, PBX, PHONE, SEEDS, STRANGER, TRUNK};
use sipcti_core::{CallId, ClientTxId, CtiAnswer, Output, ProxyCore, Target};
use sipcti_wire::{response_for, Limits, SipMessage, TransportKind};

/// Most ops run from one input.
const MAX_OPS: usize = 64;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

struct World {
    core: ProxyCore,
    t0: Instant,
    now: Instant,
    /// IPs that sent the core a request.
    requesters: HashSet<IpAddr>,
    /// Requests the core sent out, with where they went.
    forwarded: Vec<(Vec<u8>, Target, TransportKind)>,
    pending_tokens: Vec<CallId>,
    client_txs: Vec<ClientTxId>,
}

fn source(b: u8) -> SocketAddr {
    addr(match b % 4 {
        0 => PHONE,
        1 => PBX,
        2 => TRUNK,
        _ => STRANGER,
    })
}

fn transport(b: u8) -> TransportKind {
    if b & 1 == 0 {
        TransportKind::Udp
    } else {
        TransportKind::Tcp
    }
}

fn is_stranger(a: SocketAddr) -> bool {
    let cfg = core_config();
    !cfg.inside_networks.iter().any(|n| n.contains(&a.ip()))
        && !cfg.trunk_sources.iter().any(|n| n.contains(&a.ip()))
}

impl World {
    /// Take the core's outputs and check (b) for `from_stranger` and (c) always.
    fn collect(&mut self, from_stranger: Option<SocketAddr>) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let is_response = t.data.starts_with(b"SIP/2.0");
                    if let Some(s) = from_stranger {
                        let to_stranger = matches!(&t.dest, Target::Addr(a) if a.ip() == s.ip());
                        assert!(
                            is_response && to_stranger,
                            "a message from stranger {s} made the core send to {}:\n{}",
                            t.dest,
                            String::from_utf8_lossy(&t.data)
                        );
                    }
                    if is_response {
                        match &t.dest {
                            Target::Addr(a) => assert!(
                                self.requesters.contains(&a.ip()),
                                "response sent to {a}, which never sent a request:\n{}",
                                String::from_utf8_lossy(&t.data)
                            ),
                            Target::Name(h, p) => panic!(
                                "response sent to a name {h}:{p}:\n{}",
                                String::from_utf8_lossy(&t.data)
                            ),
                        }
                    } else {
                        self.forwarded
                            .push((t.data.to_vec(), t.dest.clone(), t.transport));
                        if self.forwarded.len() > 64 {
                            self.forwarded.remove(0);
                        }
                    }
                    if let Some(id) = t.client_tx {
                        self.client_txs.push(id);
                    }
                }
                Output::NewCall { token, event } => {
                    assert!(
                        from_stranger.is_none(),
                        "a stranger's message started a call: {event:?}"
                    );
                    self.pending_tokens.push(token);
                }
                Output::Event(ev) => {
                    assert!(
                        from_stranger.is_none(),
                        "a stranger's message made a CTI event: {ev:?}"
                    );
                }
                Output::Binding(b) => {
                    assert!(
                        from_stranger.is_none(),
                        "a stranger's message changed a binding: {b:?}"
                    );
                }
            }
        }
    }

    fn receive(&mut self, data: Vec<u8>, src: SocketAddr, tr: TransportKind) {
        // a request's source may be answered (parse with the core's own limits)
        if let Ok(m) = SipMessage::parse(data.clone(), &Limits::default()) {
            if m.is_request() {
                self.requesters.insert(src.ip());
            }
        } else if !data.starts_with(b"SIP/") {
            // the core may still answer what it cannot parse (salvaged 400)
            self.requesters.insert(src.ip());
        }
        self.core.handle_received(self.now, data, src, tr);
        let stranger = is_stranger(src).then_some(src);
        self.collect(stranger);
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            let t = t.max(self.now);
            self.now = t;
            self.core.handle_timeout(t);
            self.collect(None);
        }
        self.now = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut w = World {
        core: ProxyCore::new(core_config()),
        t0,
        now: t0,
        requesters: HashSet::new(),
        forwarded: Vec::new(),
        pending_tokens: Vec::new(),
        client_txs: Vec::new(),
    };
    let mut b = Bytes(data);
    let mut ops = 0;
    while !b.0.is_empty() && ops < MAX_OPS {
        ops += 1;
        match b.byte() % op::OP_COUNT {
            op::SEED => {
                let seed = SEEDS[usize::from(b.byte()) % SEEDS.len()];
                let n = b.byte() % 8;
                let src = source(b.byte());
                let tr = transport(b.byte());
                let text = seed
                    .replace("{N}", &n.to_string())
                    .replace("{SRC}", &src.to_string());
                w.receive(text.into_bytes(), src, tr);
            }
            op::RAW => {
                let src = source(b.byte());
                let tr = transport(b.byte());
                let len = usize::from(b.byte()) << 8 | usize::from(b.byte());
                let bytes = b.take(len);
                w.receive(bytes, src, tr);
            }
            op::ADVANCE => {
                let units = u64::from(b.byte()) << 8 | u64::from(b.byte());
                w.advance(Duration::from_millis(units * 10));
            }
            op::CTI => {
                let which = usize::from(b.byte());
                let kind = b.byte();
                if !w.pending_tokens.is_empty() {
                    let token = w.pending_tokens.remove(which % w.pending_tokens.len());
                    let answer = match kind % 4 {
                        0 => CtiAnswer::Continue,
                        1 => CtiAnswer::FailOpen,
                        2 => CtiAnswer::Reject,
                        _ => CtiAnswer::Dial("4930111222".into()),
                    };
                    w.core.handle_cti_answer(w.now, token, answer);
                    w.collect(None);
                }
            }
            op::TRANSPORT_ERROR => {
                let which = usize::from(b.byte());
                if !w.client_txs.is_empty() {
                    let id = w.client_txs[which % w.client_txs.len()];
                    w.core.handle_transport_error(w.now, id);
                    w.collect(None);
                }
            }
            _ => {
                // RESPOND: answer a forwarded request
                let which = usize::from(b.byte());
                let status =
                    [100u16, 180, 183, 200, 302, 404, 486, 487, 503][usize::from(b.byte()) % 9];
                let who = b.byte();
                let tr = transport(b.byte());
                if w.forwarded.is_empty() {
                    continue;
                }
                let (req, dest, _) = w.forwarded[which % w.forwarded.len()].clone();
                let Ok(req) = SipMessage::parse(req, &Limits::default()) else {
                    continue;
                };
                if req.method() == Some("ACK") {
                    continue;
                }
                let src = match (who % 5, &dest) {
                    (4, Target::Addr(a)) => *a,
                    (4, Target::Name(..)) => addr(TRUNK),
                    (s, _) => source(s),
                };
                let resp = response_for(&req, status, "Fuzz", Some("fzr"), &[]);
                w.receive(resp, src, tr);
            }
        }
    }
    // (d): everything ends within 10 minutes
    for _ in 0..600 {
        w.advance(Duration::from_secs(1));
    }
    let left = w.core.transactions();
    assert_eq!(
        left,
        (0, 0),
        "transactions left 10 minutes after the script (server, client), {} s in",
        (w.now - w.t0).as_secs()
    );
});
