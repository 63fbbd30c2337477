//! Nothing from the network may panic the proxy core: mutated SIP messages
//! (byte flips, truncation, insertion, duplicated lines) from inside, the
//! trunk and strangers, interleaved with Zammad answers and timers.

mod core_support;

use core_support::*;
use proptest::prelude::*;
use sipcti_core::{CtiAnswer, Output, Target};
use sipcti_dialog::{InboundRoute, NumberPattern};

const SEEDS: [&str; 5] = [
    "INVITE sip:0301234567@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-f1;rport\r\nMax-Forwards: 70\r\nFrom: \"A\" <sip:201@192.0.2.10>;tag=f1\r\nTo: <sip:0301234567@192.0.2.10>\r\nCall-ID: fuzz1@10.0.0.20\r\nCSeq: 1 INVITE\r\nContact: <sip:201@10.0.0.20:5062>\r\nRoute: <sip:192.0.2.10:5060;lr>, <sip:192.0.2.10:5060;transport=tcp;lr>\r\nP-Asserted-Identity: <sip:201@192.0.2.10>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsc0000000000000000.0000000000000000\r\nVia: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-f1;rport=5062;received=10.0.0.20\r\nRecord-Route: <sip:192.0.2.10:5060;lr>\r\nFrom: \"A\" <sip:201@192.0.2.10>;tag=f1\r\nTo: <sip:0301234567@192.0.2.10>;tag=t9\r\nCall-ID: fuzz1@10.0.0.20\r\nCSeq: 1 INVITE\r\nContact: <sip:4930@203.0.113.5>\r\nContent-Length: 0\r\n\r\n",
    "CANCEL sip:0301234567@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-f1;rport\r\nMax-Forwards: 70\r\nFrom: \"A\" <sip:201@192.0.2.10>;tag=f1\r\nTo: <sip:0301234567@192.0.2.10>\r\nCall-ID: fuzz1@10.0.0.20\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:201@10.0.0.20:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-b1\r\nRoute: <sip:192.0.2.10:5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:0301234567@192.0.2.10>;tag=t9\r\nTo: \"A\" <sip:201@192.0.2.10>;tag=f1\r\nCall-ID: fuzz1@10.0.0.20\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    "INVITE sip:4930123@192.0.2.10 SIP/2.0\r\nv: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-i6\r\nf: <tel:+4930999>;tag=x\r\nt: <sip:4930123@192.0.2.10>\r\ni: fuzz6\r\nCSeq: 1 INVITE\r\nPrivacy: id\r\nl: 0\r\n\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    DupLine(usize),
}

fn apply(mut m: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for mu in muts {
        match mu {
            Mutation::Flip(i, b) if !m.is_empty() => {
                let i = i % m.len();
                m[i] ^= b;
            }
            Mutation::Truncate(i) if !m.is_empty() => {
                let i = i % m.len();
                m.truncate(i);
            }
            Mutation::Insert(i, bytes) => {
                let i = if m.is_empty() { 0 } else { i % m.len() };
                m.splice(i..i, bytes.iter().copied());
            }
            Mutation::DupLine(i) => {
                let lines: Vec<&[u8]> = m.split(|b| *b == b'\n').collect();
                if !lines.is_empty() {
                    let k = i % lines.len();
                    let mut out = Vec::new();
                    for (j, l) in lines.iter().enumerate() {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                        if j == k {
                            out.extend_from_slice(l);
                            out.push(b'\n');
                        }
                    }
                    m = out;
                }
            }
            _ => {}
        }
    }
    m
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec![
                b",".to_vec(),
                b";".to_vec(),
                b"\r\n".to_vec(),
                b"\r\n ".to_vec(),
                b"<".to_vec(),
                b">".to_vec(),
                b"\"".to_vec(),
                b"@".to_vec(),
                b":".to_vec(),
                b"[".to_vec(),
                b"\0".to_vec(),
                b"\xff\xfe".to_vec(),
                b"99999999999999999999".to_vec(),
                b";branch=z9hG4bKsc".to_vec(),
                b"Route: <sip:192.0.2.10:5060;lr>\r\n".to_vec(),
            ])
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::DupLine),
    ]
}

/// A response built from a request the core sent: the start line becomes
/// `status`, the To gets a tag. Lets the fuzzer hit live branches.
fn echo_response(req: &[u8], status: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(req);
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in text.split("\r\n").skip(1) {
        if line.starts_with("To:") && !line.contains(";tag=") {
            out.push_str(line);
            out.push_str(";tag=fz\r\n");
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

/// The strict oracle for what the core sends: a response goes only to an
/// address that sent the core a request; anything received from a stranger
/// causes nothing but a response back to that stranger, and never a CTI
/// event.
fn check_outputs(out: &[Output], from: &str, request_sources: &[std::net::IpAddr]) {
    let stranger = addr(STRANGER).ip();
    for o in out {
        match o {
            Output::Transmit(t) => {
                // requests from the inside may follow a Route to a host name
                let Target::Addr(dest) = &t.dest else {
                    assert!(
                        !t.data.starts_with(b"SIP/2.0") && from != STRANGER,
                        "sent to a name: {:?}",
                        t.dest
                    );
                    continue;
                };
                if t.data.starts_with(b"SIP/2.0") {
                    assert!(
                        request_sources.contains(&dest.ip()),
                        "response relayed to {dest}, which never sent a request:\n{}",
                        s(&t.data)
                    );
                }
                if from == STRANGER {
                    assert!(
                        dest.ip() == stranger && t.data.starts_with(b"SIP/2.0"),
                        "a stranger's message caused a send to {dest}:\n{}",
                        s(&t.data)
                    );
                }
            }
            Output::NewCall { event, .. } | Output::Event(event) => {
                assert!(from != STRANGER, "a stranger's message caused {event:?}");
            }
            Output::Binding(b) => {
                assert!(
                    from != STRANGER,
                    "a stranger's message changed a binding: {b:?}"
                );
            }
        }
    }
}

/// Cases per run: 3,000, or `PROPTEST_CASES` for a longer run (the
/// explicit config would otherwise override the variable).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
    /// No panic; the strict response oracle ([`check_outputs`]) holds on
    /// every output; once every timer has run, no transaction and no
    /// Accepted INVITE record is left.
    #[test]
    fn core_never_panics_on_mutated_messages(
        steps in prop::collection::vec(
            (0usize..SEEDS.len() + 2, prop::collection::vec(mutation(), 0..4), 0usize..3, 0u64..40_000),
            1..12,
        )
    ) {
        // inbound calls to 4930123… ring a group of two (RFC 3261 16.7
        // forking), so the oracle also covers the response context
        let mut cfg = config();
        cfg.tracker.routes = vec![InboundRoute::group(
            NumberPattern::parse("4930123*", Some("49"), 6).expect("route number"),
            &["sip:201@10.0.0.21:5060", "sip:202@10.0.0.22:5070"],
            None,
            Some("49"),
            6,
        )];
        let mut h = H::with(cfg);
        let mut t = 0u64;
        let mut request_sources = Vec::new();
        let mut last_forwarded: Option<Vec<u8>> = None;
        for (seed, muts, src, dt) in steps {
            t += dt;
            let base = match seed {
                i if i < SEEDS.len() => SEEDS[i].as_bytes().to_vec(),
                i => match &last_forwarded {
                    Some(req) => echo_response(req, if i == SEEDS.len() { "200 OK" } else { "180 Ringing" }),
                    None => continue,
                },
            };
            let msg = apply(base, &muts);
            let from = [PHONE, TRUNK, STRANGER][src];
            if !msg.starts_with(b"SIP/") {
                request_sources.push(addr(from).ip());
            }
            let out = h.udp(t, &msg, from);
            check_outputs(&out, from, &request_sources);
            let mut all = out.clone();
            // answer every newCall one way or another
            for (i, o) in out.iter().enumerate() {
                if let Output::NewCall { token, .. } = o {
                    let a = match i % 3 {
                        0 => CtiAnswer::Continue,
                        1 => CtiAnswer::Reject,
                        _ => CtiAnswer::Dial("4930777".into()),
                    };
                    let more = h.cti(t + 1, *token, a);
                    check_outputs(&more, PHONE, &request_sources);
                    all.extend(more);
                }
            }
            for o in &all {
                if let Output::Transmit(tx) = o {
                    if !tx.data.starts_with(b"SIP/") {
                        last_forwarded = Some(tx.data.to_vec());
                    }
                }
            }
        }
        for (_, o) in h.run_until(t + 300_000) {
            check_outputs(std::slice::from_ref(&o), PHONE, &request_sources);
        }
        prop_assert_eq!(h.core.transactions(), (0, 0));
        prop_assert_eq!(h.core.accepted_invites(), 0);
    }
}
