//! Fuzz-like property tests: nothing from the network may panic.

use proptest::prelude::*;
use sipcti_wire::{Frame, Limits, NameAddr, SipMessage, StreamFramer, Uri, Via};

const SEED: &str = "INVITE sip:bob@[2001:db8::1]:5060;lr SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776;rport, SIP / 2.0 / TCP h:5;received=1.2.3.4\r\n\
Max-Forwards: 70\r\n\
To: \"B\\\"ob\" <sip:bob@biloxi.com>\r\n\
f: Alice <sip:alice@atlanta.com>;tag=1928\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1;lr>,\r\n <sip:p2;lr>\r\n\
l: 4\r\n\
\r\n\
v=0\0";

/// Exercises every accessor and edit of a parsed message.
fn exercise(m: &SipMessage) {
    let _ = m.validate();
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.body(),
    );
    for h in m.headers() {
        let _ = NameAddr::parse(h.value).map(|n| (n.tag(), n.parsed_uri(), n.uri_range()));
        let _ = Via::parse(h.value).map(|v| (v.branch(), v.received(), v.rport()));
        let _ = Uri::parse(h.value).map(|u| (u.transport(), u.user_unescaped()));
        let _ = m.header_values(h.name);
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.from(),
        m.to(),
        m.top_via(),
        m.vias(),
        m.max_forwards(),
    );
    let out = m
        .edit()
        .insert_first("Via", "SIP/2.0/UDP p;branch=z9hG4bKx")
        .remove_first_value("Route")
        .set_max_forwards(69)
        .set_top_via_received(Some([1, 2, 3, 4].into()), Some(9))
        .replace_value(1, "x")
        .remove_header(2)
        .set_request_uri("sip:a@b")
        .append_header("X", "y")
        .finish();
    let _ = SipMessage::parse(out, &Limits::default());
    let _ = sipcti_wire::response_for(m, 400, "Bad", Some("t"), &[("A", "b")]);
}

fn frame_all(data: &[u8], chunk: usize) {
    let mut f = StreamFramer::new(Limits {
        max_message_bytes: 4096,
        max_headers: 64,
    });
    for c in data.chunks(chunk.max(1)) {
        if f.push(c).is_err() {
            return;
        }
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    if let Ok(m) = SipMessage::parse(m, &Limits::default()) {
                        exercise(&m);
                    }
                }
                Ok(Some(Frame::Ping)) => {}
                Ok(None) => break,
                Err(_) => {
                    f.resync();
                    break;
                }
            }
        }
        assert!(f.buffered() <= 4096 + chunk.max(1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = SipMessage::parse(data.clone(), &Limits::default()) {
            exercise(&m);
        }
        frame_all(&data, 7);
    }

    #[test]
    fn parse_never_panics_on_mutated_messages(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..8),
        chunk in 1usize..64,
    ) {
        let mut data = SEED.as_bytes().to_vec();
        let specials = b":;,<>\"\\@[]/= \t\r\n%?";
        for (idx, op, byte) in edits {
            let i = idx.index(data.len().max(1)).min(data.len());
            let b = if byte % 2 == 0 { specials[usize::from(byte) % specials.len()] } else { byte };
            match op {
                0 if i < data.len() => data[i] = b,
                1 => data.insert(i, b),
                2 if i < data.len() => { data.remove(i); }
                _ => data.truncate(i),
            }
        }
        if let Ok(m) = SipMessage::parse(data.clone(), &Limits::default()) {
            exercise(&m);
        }
        frame_all(&data, chunk);
    }

    #[test]
    fn sub_parsers_never_panic(s in "[ -~\\t\\r\\n]{0,80}") {
        let _ = Uri::parse(&s).map(|u| (u.param("lr"), u.user_unescaped()));
        let _ = NameAddr::parse(&s).map(|n| (n.tag(), n.uri_range()));
        let _ = Via::parse(&s).map(|v| v.branch());
    }
}

#[test]
fn seed_is_valid() {
    let m = SipMessage::parse(SEED.as_bytes().to_vec(), &Limits::default()).expect("parse");
    m.validate().expect("valid");
    assert_eq!(m.header_values("Route"), ["<sip:p1;lr>", "<sip:p2;lr>"]);
    exercise(&m);
}
