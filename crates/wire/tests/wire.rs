//! Wire layer tests: parsing, byte-exact edits, responses, stream framing.

use std::net::IpAddr;

use sipcti_wire::{
    canonical_name, response_for, to_with_tag, Frame, FrameError, Limits, NameAddr, ParseError,
    SipMessage, StreamFramer, Uri, Via,
};

fn parse(s: &str) -> SipMessage {
    SipMessage::parse(s.as_bytes().to_vec(), &Limits::default()).expect("parse")
}

fn parse_err(b: &[u8]) -> ParseError {
    SipMessage::parse(b.to_vec(), &Limits::default()).expect_err("must fail")
}

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: \"Alice, A.\" <sip:alice@example.com>;tag=1928\r\n\
Call-ID: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

// ------------------------------------------------------------------ parsing

#[test]
fn basic_request() {
    let m = parse(INVITE);
    m.validate().expect("valid");
    assert!(m.is_request());
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.request_uri(), Some("sip:bob@example.com"));
    assert_eq!(m.status(), None);
    assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33"));
    assert_eq!(m.cseq(), Some((314159, "INVITE")));
    assert_eq!(m.max_forwards(), Some(70));
    let from = m.from().expect("from");
    assert_eq!(from.display.as_deref(), Some("Alice, A."));
    assert_eq!(from.uri, "sip:alice@example.com");
    assert_eq!(from.tag(), Some("1928"));
    assert_eq!(m.to().expect("to").tag(), None);
    let via = m.top_via().expect("via");
    assert_eq!(
        (via.protocol, via.transport, via.host, via.port),
        ("SIP/2.0/UDP", "UDP", "192.0.2.10", Some(5060))
    );
    assert_eq!(via.branch(), Some("z9hG4bKa1"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.headers().count(), 8);
    assert_eq!(m.as_bytes(), INVITE.as_bytes());
}

#[test]
fn response_line() {
    let m = parse("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=x\r\nFrom: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
    m.validate().expect("valid");
    assert!(!m.is_request());
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.reason(), Some("Ringing"));
    assert_eq!(m.method(), None);
    let empty = parse("SIP/2.0 100 \r\n\r\n");
    assert_eq!(empty.reason(), Some(""));
    let bad = parse("SIP/2.0 099 Low\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
    assert_eq!(bad.validate(), Err(ParseError::BadStatus));
}

#[test]
fn case_insensitive_and_compact_names() {
    let m = parse("OPTIONS sip:x@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: cid\r\nCSEQ: 1 OPTIONS\r\nm: <sip:a@h>\r\nl: 0\r\nk: path\r\ns: subj\r\nc: text/plain\r\ne: gzip\r\no: presence\r\nu: dialog\r\nr: <sip:c@h>\r\nb: <sip:d@h>\r\nx: 1800\r\na: *;audio\r\nj: *;video\r\nd: proxy\r\ny: abc\r\nn: <http://x>\r\ncall-id: dup\r\n\r\n");
    for (compact, full, value) in [
        ("v", "Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
        ("f", "From", "<sip:a@h>;tag=1"),
        ("t", "To", "<sip:b@h>"),
        ("i", "Call-ID", "cid"),
        ("m", "Contact", "<sip:a@h>"),
        ("l", "Content-Length", "0"),
        ("k", "Supported", "path"),
        ("s", "Subject", "subj"),
        ("c", "Content-Type", "text/plain"),
        ("e", "Content-Encoding", "gzip"),
        ("o", "Event", "presence"),
        ("u", "Allow-Events", "dialog"),
        ("r", "Refer-To", "<sip:c@h>"),
        ("b", "Referred-By", "<sip:d@h>"),
        ("x", "Session-Expires", "1800"),
        ("a", "Accept-Contact", "*;audio"),
        ("j", "Reject-Contact", "*;video"),
        ("d", "Request-Disposition", "proxy"),
        ("y", "Identity", "abc"),
        ("n", "Identity-Info", "<http://x>"),
    ] {
        assert_eq!(canonical_name(compact), full);
        assert_eq!(canonical_name(&compact.to_uppercase()), full);
        assert_eq!(m.header(full), Some(value), "{full}");
        assert_eq!(m.header(&full.to_uppercase()), Some(value), "{full}");
        assert_eq!(m.header(compact), Some(value), "{compact}");
    }
    assert_eq!(canonical_name("X-Foo"), "X-Foo");
    assert_eq!(m.header("cseq"), Some("1 OPTIONS"));
    let ids: Vec<_> = m
        .header_lines("Call-ID")
        .map(|h| (h.index, h.name, h.value))
        .collect();
    assert_eq!(ids, [(3, "i", "cid"), (21, "call-id", "dup")]);
    assert_eq!(m.validate(), Err(ParseError::DuplicateHeader("Call-ID")));
}

#[test]
fn folding_and_whitespace_before_colon() {
    let m = parse("INVITE sip:x@h SIP/2.0\r\nSubject  :   hello\r\n  big\r\n\tworld  \r\nVia\t: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
    let hs: Vec<_> = m.headers().map(|h| (h.index, h.name, h.value)).collect();
    assert_eq!(
        hs,
        [
            (0, "Subject", "hello big world"),
            (1, "Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
        ]
    );
    assert_eq!(m.header("s"), Some("hello big world"));
}

#[test]
fn comma_multi_values() {
    let m = parse(
        "INVITE sip:x@h SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=\"a,b\">\r\n\
Record-Route: <sip:rr1;lr>,<sip:rr2;lr>\r\n\
Contact: \"Doe, John\" <sip:j@h;p=a,b>;q=0.5, <sip:k@h>\r\n\
Supported: path , timer,\r\n\r\n",
    );
    assert_eq!(m.header_values("Via").len(), 3);
    let vias = m.vias();
    let hosts: Vec<_> = vias
        .iter()
        .map(|v| (v.transport, v.host, v.port, v.branch()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("UDP", "a.example.com", None, Some("z9hG4bK1")),
            ("TCP", "[2001:db8::1]", Some(5070), Some("z9hG4bK2")),
            ("UDP", "c.example.com", None, Some("z9hG4bK3")),
        ]
    );
    assert_eq!(
        m.header_values("Route"),
        [
            "<sip:p1.example.com;lr>",
            "<sip:p2.example.com;lr;x=\"a,b\">"
        ]
    );
    assert_eq!(
        m.header_values("record-route"),
        ["<sip:rr1;lr>", "<sip:rr2;lr>"]
    );
    assert_eq!(
        m.header_values("m"),
        ["\"Doe, John\" <sip:j@h;p=a,b>;q=0.5", "<sip:k@h>"]
    );
    assert_eq!(m.header_values("Supported"), ["path", "timer"]);
    let c = NameAddr::parse(m.header_values("Contact")[0]).expect("contact");
    assert_eq!(c.display.as_deref(), Some("Doe, John"));
    assert_eq!(c.param("q"), Some(Some("0.5")));
}

#[test]
fn ipv6_references() {
    let m = parse("REGISTER sip:[2001:db8::10]:5070 SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3\r\nTo: <sip:user@[2001:db8::10]>\r\nFrom: <sip:user@[::ffff:192.0.2.10]>;tag=1\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\r\n");
    m.validate().expect("valid");
    let u = Uri::parse(m.request_uri().expect("ruri")).expect("uri");
    assert_eq!(
        (u.host, u.port, u.user),
        ("[2001:db8::10]", Some(5070), None)
    );
    let v = m.top_via().expect("via");
    assert_eq!(v.host, "[2001:db8::9:1]");
    assert_eq!(v.received(), Some("2001:db8::9:255"));
    assert_eq!(
        m.from().expect("from").parsed_uri().expect("uri").host,
        "[::ffff:192.0.2.10]"
    );
    assert!(Uri::parse("sip:2001:db8::10").is_err());
    assert!(Uri::parse("sip:user@[2001:db8:::192.0.2.1]").is_err());
    assert!(Uri::parse("sip:user@[2001:db8::192.0.2.1]").is_ok());
    assert!(Uri::parse("sip:[2001:db8::10").is_err());
}

#[test]
fn uri_forms() {
    let u = Uri::parse(
        "sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent",
    )
    .expect("uri");
    assert_eq!(u.scheme, "sips");
    assert_eq!(u.user, Some("alice"));
    assert_eq!(u.password, Some("secret"));
    assert_eq!(u.host, "atlanta.com");
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.params, ";transport=tcp;lr");
    assert_eq!(u.headers, Some("subject=project%20x&priority=urgent"));
    assert_eq!(u.transport(), Some("tcp"));
    assert_eq!(u.param("lr"), Some(None));
    assert_eq!(u.param("maddr"), None);
    assert!(u.is_sip());
    let e = Uri::parse("sip:%61lice%20b@h").expect("uri");
    assert_eq!(e.user, Some("%61lice%20b"));
    assert_eq!(e.user_unescaped().as_deref(), Some("alice b"));
    let semi = Uri::parse("sip:user;par=u%40example.net@example.com").expect("uri");
    assert_eq!(
        (semi.user, semi.host),
        (Some("user;par=u%40example.net"), "example.com")
    );
    let tel = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").expect("tel");
    assert_eq!(
        (tel.user, tel.host, tel.params),
        (Some("+1-201-555-0123"), "", ";phone-context=example.com")
    );
    assert!(!tel.is_sip());
    let unk = Uri::parse("kingdom:animal:vertebrate:mammal:human").expect("unknown scheme");
    assert_eq!((unk.scheme, unk.user, unk.host), ("kingdom", None, ""));
    assert!(Uri::parse("sip:").is_err());
    assert!(Uri::parse("<sip:a@b>").is_err());
    assert!(Uri::parse("sip:a@b c").is_err());
    assert!(Uri::parse("sip:a@h:99999").is_err());
}

#[test]
fn name_addr_forms() {
    let a = NameAddr::parse("\"A \\\"q\\\" B\" <sip:a@h>;tag=1;x").expect("quoted");
    assert_eq!(a.display.as_deref(), Some("A \"q\" B"));
    assert_eq!(a.uri, "sip:a@h");
    assert_eq!(a.params, ";tag=1;x");
    assert_eq!(a.param("x"), Some(None));
    assert_eq!(&a.raw[a.uri_range()], "sip:a@h");
    let b = NameAddr::parse("Bob Smith <sip:b@h>").expect("token display");
    assert_eq!(b.display.as_deref(), Some("Bob Smith"));
    let c = NameAddr::parse(" <sip:c@h> ").expect("bare <>");
    assert_eq!((c.display, c.uri, c.params), (None, "sip:c@h", ""));
    let d = NameAddr::parse("sip:d@h;tag=9").expect("addr-spec");
    assert_eq!((d.uri, d.tag()), ("sip:d@h", Some("9")));
    assert_eq!(&d.raw[d.uri_range()], "sip:d@h");
    assert!(NameAddr::parse("\"unbalanced <sip:a@h>").is_err());
    assert!(NameAddr::parse("Bell, Alexander <sip:a@h>").is_err());
    assert!(NameAddr::parse("<sip:a@h").is_err());
    assert!(NameAddr::parse("").is_err());
}

#[test]
fn via_forms() {
    let v = Via::parse("SIP / 2.0 / TCP  host.example.com : 5070 ; branch = z9hG4bK7 ;rport")
        .expect("lws via");
    assert_eq!(
        (v.protocol, v.transport, v.host, v.port),
        ("SIP / 2.0 / TCP", "TCP", "host.example.com", Some(5070))
    );
    assert_eq!(v.branch(), Some("z9hG4bK7"));
    assert_eq!(v.rport(), Some(None));
    assert!(Via::parse("SIP/2.0/UDP").is_err());
    assert!(Via::parse("SIP/2.0 host").is_err());
    assert!(Via::parse("SIP/2.0/UDP 2001:db8::1;branch=x").is_err());
}

#[test]
fn extension_method_and_any_scheme() {
    let m = parse("PUBLISH-X tel:+4930123;phone-context=x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <tel:+4930123>\r\nFrom: <urn:service:sos>;tag=1\r\nCall-ID: c\r\nCSeq: 1 PUBLISH-X\r\n\r\n");
    m.validate().expect("valid");
    assert_eq!(m.method(), Some("PUBLISH-X"));
    assert_eq!(m.request_uri(), Some("tel:+4930123;phone-context=x"));
}

#[test]
fn binary_body_with_nul_bytes() {
    let mut raw = b"MESSAGE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Type: application/octet-stream\r\nContent-Length: 8\r\n\r\n".to_vec();
    let body = [0u8, 1, 0xff, 0xfe, 0, b'\r', b'\n', 0x80];
    raw.extend_from_slice(&body);
    let m = SipMessage::parse(raw.clone(), &Limits::default()).expect("parse");
    assert_eq!(m.body(), body);
    assert_eq!(m.edit().set_max_forwards(10).finish(), {
        let mut e = raw[..raw.len() - 8 - 2].to_vec();
        e.extend_from_slice(b"Max-Forwards: 10\r\n\r\n");
        e.extend_from_slice(&body);
        e
    });
    assert_eq!(m.into_bytes(), raw);
}

#[test]
fn content_length_handling() {
    // UDP datagram holding two messages: the second is ignored (RFC 3261 18.3).
    let two = "OPTIONS sip:x@h SIP/2.0\r\nContent-Length: 2\r\n\r\nabOPTIONS sip:y@h SIP/2.0\r\nl: 0\r\n\r\n";
    let m = parse(two);
    assert_eq!(m.body(), b"ab");
    assert_eq!(
        m.as_bytes(),
        b"OPTIONS sip:x@h SIP/2.0\r\nContent-Length: 2\r\n\r\nab"
    );
    assert_eq!(m.clone().into_bytes(), m.as_bytes());
    // Without Content-Length the body runs to the end.
    assert_eq!(parse("OPTIONS sip:x@h SIP/2.0\r\n\r\nxyz").body(), b"xyz");
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nContent-Length: 5\r\n\r\nabc"),
        ParseError::BodyTooShort {
            expected: 5,
            got: 3
        }
    );
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
        ParseError::BadContentLength
    );
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
        ParseError::BadContentLength
    );
    // Same value twice parses, but validate() rejects the duplicate.
    let dup = parse("OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@h>\r\nFrom: <sip:y@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 1\r\nContent-Length: 1\r\n\r\na");
    assert_eq!(
        dup.validate(),
        Err(ParseError::DuplicateHeader("Content-Length"))
    );
}

#[test]
fn start_line_and_header_errors() {
    assert_eq!(parse_err(b""), ParseError::Empty);
    assert_eq!(parse_err(b"\r\n\r\n"), ParseError::Empty);
    let v = parse_err(b"OPTIONS sip:x@h SIP/3.0\r\n\r\n");
    assert_eq!(
        (v.status(), v.reason().as_str()),
        (505, "Version Not Supported")
    );
    assert_eq!(parse_err(b"SIP/1.0 200 OK\r\n\r\n").status(), 505);
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h\r\n\r\n"),
        ParseError::BadStartLine
    );
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nNoColon\r\n\r\n"),
        ParseError::HeaderWithoutColon(0)
    );
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nA: \xff\r\n\r\n"),
        ParseError::NotUtf8
    );
    assert_eq!(
        parse_err(b"OPTIONS sip:x@h SIP/2.0\r\nA: b\r\n"),
        ParseError::Incomplete
    );
    let many: String = (0..300).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        parse_err(format!("OPTIONS sip:x@h SIP/2.0\r\n{many}\r\n").as_bytes()),
        ParseError::TooManyHeaders
    );
    let big = vec![b'a'; 70_000];
    assert_eq!(parse_err(&big), ParseError::TooLarge);
    // Leading CRLFs are skipped (RFC 3261 7.5), LF-only line ends accepted.
    let m = parse("\r\n\r\nOPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n");
    assert_eq!(
        m.as_bytes(),
        b"OPTIONS sip:x@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n"
    );
    let r = ParseError::BodyTooShort {
        expected: 5,
        got: 3,
    }
    .reason();
    assert!(!r.contains(['\r', '\n']) && r.starts_with("Body"));
}

#[test]
fn validate_errors() {
    let base = |cseq: &str, extra: &str| {
        format!("OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@h>\r\nFrom: <sip:y@h>;tag=1\r\nCall-ID: c\r\nCSeq: {cseq}\r\n{extra}\r\n")
    };
    assert_eq!(parse(&base("1 OPTIONS", "")).validate(), Ok(()));
    assert_eq!(
        parse(&base("1 INVITE", "")).validate(),
        Err(ParseError::CSeqMethodMismatch)
    );
    assert_eq!(
        parse(&base("2147483648 OPTIONS", "")).validate(),
        Err(ParseError::BadCSeq)
    );
    assert_eq!(parse(&base("2147483647 OPTIONS", "")).validate(), Ok(()));
    assert_eq!(
        parse(&base("1 OPTIONS", "Max-Forwards: 256\r\n")).validate(),
        Err(ParseError::BadMaxForwards)
    );
    assert_eq!(
        parse(&base("1 OPTIONS", "Max-Forwards: 0\r\n")).validate(),
        Ok(())
    );
    assert_eq!(
        parse(&base("1 OPTIONS", "Via: SIP/2.0/UDP h;;\r\n")).validate(),
        Err(ParseError::BadVia)
    );
    let no_via = "OPTIONS sip:x@h SIP/2.0\r\nTo: <sip:x@h>\r\nFrom: <sip:y@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_eq!(
        parse(no_via).validate(),
        Err(ParseError::MissingHeader("Via"))
    );
}

// ------------------------------------------------------------------ edits

const REQ: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Content-Length: 3\r\n\
\r\n\
a\0b";

#[test]
fn edit_push_via_and_decrement_max_forwards() {
    let m = parse(REQ);
    let mf = m.max_forwards().expect("mf");
    let out = m
        .edit()
        .insert_first("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
        .set_max_forwards(mf - 1)
        .finish();
    let want = REQ.replace("Max-Forwards: 70", "Max-Forwards: 69").replace(
        "SIP/2.0\r\nVia:",
        "SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia:",
    );
    assert_eq!(out, want.as_bytes());
    assert_eq!(parse(&want).vias()[1].host, "pc33.atlanta.com");
}

#[test]
fn edit_record_route_and_request_uri() {
    let m = parse(REQ);
    let out = m
        .edit()
        .insert_first("Record-Route", "<sip:proxy.example.com;lr>")
        .set_request_uri("sip:bob@192.0.2.4:5062")
        .finish();
    let want = REQ.replace(
        "sip:bob@biloxi.com SIP/2.0\r\n",
        "sip:bob@192.0.2.4:5062 SIP/2.0\r\nRecord-Route: <sip:proxy.example.com;lr>\r\n",
    );
    assert_eq!(out, want.as_bytes());
}

#[test]
fn edit_pop_route_multi_value_then_single() {
    let m = parse(REQ);
    let out = m.edit().remove_first_value("Route").finish();
    let want = REQ.replace(
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        "Route: <sip:p2.example.com;lr>",
    );
    assert_eq!(out, want.as_bytes());
    let m2 = parse(&want);
    let out2 = m2.edit().remove_first_value("route").finish();
    assert_eq!(
        out2,
        REQ.replace(
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
            ""
        )
        .as_bytes()
    );
}

const RESP: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK7\r\n\
v: SIP/2.0/TCP other.example.com;branch=z9hG4bK8\r\n\
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\
\r\n";

#[test]
fn edit_pop_via_multi_value_and_single_line() {
    let m = parse(RESP);
    let out = m.edit().remove_first_value("Via").finish();
    let want = RESP.replace(
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, ",
        "Via: ",
    );
    assert_eq!(out, want.as_bytes());
    let m2 = parse(&want);
    let out2 = m2.edit().remove_first_value("v").finish();
    let want2 = want.replace("Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK7\r\n", "");
    assert_eq!(out2, want2.as_bytes());
    assert_eq!(
        parse(&want2).top_via().expect("via").host,
        "other.example.com"
    );
}

#[test]
fn edit_replace_remove_append() {
    let m = parse(REQ);
    let to = m.header_lines("To").next().expect("to").index;
    let cid = m.header_lines("Call-ID").next().expect("cid").index;
    let out = m
        .edit()
        .replace_value(to, "Bob <sip:bob@biloxi.com>;tag=zz")
        .remove_header(cid)
        .append_header("X-Note", "hi")
        .finish();
    let want = REQ
        .replace(
            "To: Bob <sip:bob@biloxi.com>\r\n",
            "To: Bob <sip:bob@biloxi.com>;tag=zz\r\n",
        )
        .replace("Call-ID: a84b4c76e66710\r\n", "")
        .replace(
            "Content-Length: 3\r\n",
            "Content-Length: 3\r\nX-Note: hi\r\n",
        );
    assert_eq!(out, want.as_bytes());
    // Separator as written is kept; folded value replaced whole; injected CRLF neutralised.
    let f = parse("OPTIONS sip:x@h SIP/2.0\r\nSubject  :\t a\r\n b\r\nX: 1\r\n\r\n");
    let out = f.edit().replace_value(0, "new\r\nEvil: 1").finish();
    assert_eq!(
        out,
        b"OPTIONS sip:x@h SIP/2.0\r\nSubject  :\t new  Evil: 1\r\nX: 1\r\n\r\n"
    );
}

#[test]
fn edit_received_rport_ipv4() {
    let m = parse(REQ);
    let out = m
        .edit()
        .set_top_via_received(
            Some("192.0.2.99".parse::<IpAddr>().expect("ip")),
            Some(5062),
        )
        .finish();
    let want = REQ.replace(
        "branch=z9hG4bK776asdhds;rport\r\n",
        "branch=z9hG4bK776asdhds;rport=5062;received=192.0.2.99\r\n",
    );
    assert_eq!(String::from_utf8_lossy(&out), want);
    // Replace an existing received; without rport param nothing is added for rport.
    let m2 = parse(
        RESP.replace("branch=z9hG4bKp1", "received=10.0.0.1;branch=z9hG4bKp1")
            .as_str(),
    );
    let out2 = m2
        .edit()
        .set_top_via_received(Some("192.0.2.7".parse().expect("ip")), Some(7))
        .finish();
    let want2 = RESP.replace("branch=z9hG4bKp1", "received=192.0.2.7;branch=z9hG4bKp1");
    assert_eq!(String::from_utf8_lossy(&out2), want2);
}

#[test]
fn edit_received_ipv6() {
    let raw = "OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::9:1]:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP b\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    let out = m
        .edit()
        .set_top_via_received(Some("2001:db8::9:255".parse().expect("ip")), Some(40000))
        .finish();
    let want = "OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::9:1]:5060;rport=40000;branch=z9hG4bK1;received=2001:db8::9:255, SIP/2.0/UDP b\r\nl: 0\r\n\r\n";
    assert_eq!(String::from_utf8_lossy(&out), want);
    let parsed = parse(want);
    let v = parsed.top_via().expect("via");
    assert_eq!(v.received(), Some("2001:db8::9:255"));
    assert_eq!(v.rport(), Some(Some("40000")));
}

#[test]
fn edit_nothing_is_identity_and_drops_leading_crlf() {
    let m = parse(&format!("\r\n{REQ}EXTRA"));
    assert_eq!(m.edit().finish(), REQ.as_bytes());
}

#[test]
fn response_for_copies_headers() {
    let raw = "INVITE sip:bob@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nv: SIP/2.0/TCP b;branch=z9hG4bK2, SIP/2.0/UDP c\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@h>\r\nFrom: <sip:a@h>;tag=9\r\nCall-ID: cid\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n";
    let m = parse(raw);
    let out = response_for(&m, 486, "Busy Here", Some("t1"), &[("Retry-After", "30")]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nv: SIP/2.0/TCP b;branch=z9hG4bK2, SIP/2.0/UDP c\r\nFrom: <sip:a@h>;tag=9\r\nTo: Bob <sip:bob@h>;tag=t1\r\nCall-ID: cid\r\nCSeq: 5 INVITE\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n"
    );
    let trying = response_for(&m, 100, "Trying", Some("t1"), &[]);
    assert!(String::from_utf8_lossy(&trying).contains("\r\nTo: Bob <sip:bob@h>\r\n"));
    // Request that fails validate(): copies what there is.
    let bad = parse(
        "INVITE sip:bob@h SIP/2.0\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\r\n",
    );
    let e = bad.validate().expect_err("insufficient");
    let out = response_for(&bad, e.status(), &e.reason(), Some("x"), &[]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "SIP/2.0 400 Missing To header\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:anonymous@anonymous.invalid>;tag=x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(SipMessage::parse(out, &Limits::default()).is_ok());
}

/// The To of a final response the proxy makes (RFC 3261 8.2.6.2), for each shape of the
/// request's To: (request To, response To).
const TO_CASES: &[(&str, &str)] = &[
    ("Bob <sip:bob@h>", "Bob <sip:bob@h>;tag=T"),
    ("<sip:bob@h>;tag=old", "<sip:bob@h>;tag=old"),
    ("sip:bob@h", "sip:bob@h;tag=T"),
    ("sip:bob@h;x=1", "sip:bob@h;x=1;tag=T"),
    // RFC 4475 quotbal: unclosed quote; the tag must not land inside it
    (
        "\"Mr. J. User <sip:j.user@example.com>",
        "<sip:j.user@example.com>;tag=T",
    ),
    // RFC 4475 3.1.2.6's warning: the last bracketed URI is the real one
    (
        "\"Mr J. User <sip:j.user@example.com> <sip:realj@example.net>",
        "<sip:realj@example.net>;tag=T",
    ),
    // addr-spec with URI headers (regbadct shape): brackets added, headers dropped
    ("sip:bob@h?Route=%3Csip:x%3E", "<sip:bob@h>;tag=T"),
    ("\"unclosed", "<sip:anonymous@anonymous.invalid>;tag=T"),
    ("", "<sip:anonymous@anonymous.invalid>;tag=T"),
    ("<sip:bob@h", "<sip:anonymous@anonymous.invalid>;tag=T"),
    // a tag flag or an empty tag (found by the wire fuzz target): a second tag would not count
    ("<sip:bob@h>;tag ", "<sip:bob@h>;tag=T"),
    ("Bob <sip:bob@h>;x=1;tag=", "<sip:bob@h>;tag=T"),
    // an unclosed quote in a parameter would swallow an appended tag (fuzz finding)
    ("<sip:bob@h>;x=\"a b", "<sip:bob@h>;tag=T"),
];

#[test]
fn to_with_tag_is_always_well_formed() {
    for (req, want) in TO_CASES {
        let got = to_with_tag(req, "T");
        assert_eq!(&got, want, "To: {req}");
        let na = NameAddr::parse(&got).unwrap_or_else(|_| panic!("{got} does not parse"));
        assert!(na.tag().is_some_and(|t| !t.is_empty()), "{got}");
    }
    assert_eq!(to_with_tag("<sip:a@h>", "a b\r\n\"c"), "<sip:a@h>;tag=abc");
    assert_eq!(to_with_tag("<sip:a@h>", "\r\n"), "<sip:a@h>;tag=0");
}

/// Every final response built for a request, whatever its To, carries a well-formed To with
/// a tag and parses and validates; a 100 never gets a tag.
#[test]
fn response_for_always_tags_a_well_formed_to() {
    for (to, _) in TO_CASES {
        let raw = format!(
            "INVITE sip:bob@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: {to}\r\nFrom: <sip:a@h>;tag=9\r\nCall-ID: cid\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let m = parse(&raw);
        for status in [400, 486, 505] {
            let out = response_for(&m, status, "X", Some("T"), &[]);
            let r = SipMessage::parse(out.clone(), &Limits::default())
                .unwrap_or_else(|e| panic!("To: {to}: {e}\n{}", String::from_utf8_lossy(&out)));
            r.validate()
                .unwrap_or_else(|e| panic!("To: {to}: {e}\n{}", String::from_utf8_lossy(&out)));
            let tag = r.to().and_then(|t| t.tag()).unwrap_or_default().to_string();
            assert!(!tag.is_empty(), "To: {to}");
        }
        let trying = response_for(&m, 100, "Trying", Some("T"), &[]);
        assert!(
            !String::from_utf8_lossy(&trying).contains("tag=T"),
            "To: {to}"
        );
    }
}

/// RFC 4475 3.1.2.11 / 3.1.2.13: URI headers in the Request-URI, or in a bare addr-spec
/// Contact/To/From, fail validate() (answered 400); inside `<>` they are fine.
#[test]
fn uri_headers_where_forbidden_fail_validation() {
    let base = "INVITE sip:bob@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:bob@h>\r\nFrom: <sip:a@h>;tag=9\r\nCall-ID: cid\r\nCSeq: 5 INVITE\r\nContact: <sip:a@h>\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(parse(base).validate(), Ok(()));
    let cases = [
        (
            "INVITE sip:bob@h SIP/2.0",
            "INVITE sip:bob@h?Route=%3Csip:x%3E SIP/2.0",
            "Request-URI",
        ),
        (
            "Contact: <sip:a@h>",
            "Contact: sip:a@h?Route=%3Csip:x%3E",
            "Contact",
        ),
        (
            "Contact: <sip:a@h>",
            "Contact: <sip:b@h>, sip:a@h?x=y",
            "Contact",
        ),
        ("To: <sip:bob@h>", "To: sip:bob@h?x=y", "To"),
        ("From: <sip:a@h>;tag=9", "From: sip:a@h?x=y;tag=9", "From"),
    ];
    for (from, to, where_) in cases {
        let m = parse(&base.replace(from, to));
        assert_eq!(m.validate(), Err(ParseError::UriHeaders(where_)), "{to}");
        assert_eq!(ParseError::UriHeaders(where_).status(), 400);
    }
    for ok in [
        "Contact: <sip:a@h?Route=%3Csip:x%3E>",
        "Contact: \"a?b\" <sip:a@h>",
        "Contact: *",
    ] {
        let m = parse(&base.replace("Contact: <sip:a@h>", ok));
        assert_eq!(m.validate(), Ok(()), "{ok}");
    }
}

// ------------------------------------------------------------------ framer

fn msg(body: &str) -> String {
    format!("MESSAGE sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

fn frames(f: &mut StreamFramer) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(fr) = f.next_frame().expect("frame") {
        out.push(fr);
    }
    out
}

#[test]
fn framer_several_in_one_push() {
    let mut f = StreamFramer::new(Limits::default());
    let (a, b, c) = (msg("one"), msg(""), msg("three\r\n\r\n3"));
    f.push(format!("{a}\r\n{b}{c}").as_bytes()).expect("push");
    assert_eq!(
        frames(&mut f),
        [
            Frame::Message(a.into_bytes()),
            Frame::Message(b.into_bytes()),
            Frame::Message(c.into_bytes()),
        ]
    );
    assert_eq!(f.buffered(), 0);
}

#[test]
fn framer_byte_by_byte() {
    let mut f = StreamFramer::new(Limits::default());
    let a = msg("hello body");
    let mut got = Vec::new();
    for b in a.as_bytes().iter().chain(a.as_bytes()) {
        f.push(std::slice::from_ref(b)).expect("push");
        got.extend(frames(&mut f));
    }
    assert_eq!(
        got,
        [
            Frame::Message(a.clone().into_bytes()),
            Frame::Message(a.into_bytes())
        ]
    );
}

#[test]
fn framer_keepalive_ping() {
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"\r\n\r\n").expect("push");
    assert_eq!(frames(&mut f), [Frame::Ping]);
    f.push(b"\r\n").expect("push");
    assert_eq!(frames(&mut f), []);
    f.push(b"\r\n").expect("push");
    assert_eq!(frames(&mut f), [Frame::Ping]);
    let a = msg("x");
    f.push(format!("\r\n{a}\r\n\r\n").as_bytes()).expect("push");
    assert_eq!(
        frames(&mut f),
        [Frame::Message(a.into_bytes()), Frame::Ping]
    );
}

#[test]
fn framer_errors() {
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"OPTIONS sip:x@h SIP/2.0\r\nVia: x\r\n\r\n")
        .expect("push");
    assert_eq!(f.next_frame(), Err(FrameError::MissingContentLength));
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"OPTIONS sip:x@h SIP/2.0\r\nl: abc\r\n\r\n")
        .expect("push");
    assert_eq!(f.next_frame(), Err(FrameError::BadContentLength));
    let limits = Limits {
        max_message_bytes: 100,
        max_headers: 10,
    };
    let mut f = StreamFramer::new(limits);
    f.push(b"OPTIONS sip:x@h SIP/2.0\r\nContent-Length: 500\r\n\r\n")
        .expect("push");
    assert_eq!(f.next_frame(), Err(FrameError::TooLarge));
    let mut f = StreamFramer::new(limits);
    f.push(&[b'a'; 101]).expect("first push");
    assert_eq!(f.next_frame(), Err(FrameError::TooLarge));
    assert_eq!(f.push(b"more"), Err(FrameError::TooLarge));
    assert!(f.buffered() <= 101);
}

#[test]
fn framer_resync_and_reset() {
    let mut f = StreamFramer::new(Limits::default());
    let a = msg("ok");
    f.push(format!("tail of a lost body\r\nmore junk\r\n{a}").as_bytes())
        .expect("push");
    assert!(f.resync());
    assert_eq!(frames(&mut f), [Frame::Message(a.clone().into_bytes())]);
    f.push(b"junk without newline, INVITE sip: nope")
        .expect("push");
    assert!(!f.resync());
    f.push(b"\r\nSIP/2.0 200 OK\r\nl: 0\r\n\r\n").expect("push");
    assert!(f.resync());
    assert_eq!(
        frames(&mut f),
        [Frame::Message(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n".to_vec())]
    );
    f.push(b"partial").expect("push");
    f.reset();
    assert_eq!(f.buffered(), 0);
}

// ------------------------------------------------------------------ zero copy (issue 7)

#[test]
fn bytes_share_the_parsed_allocation() {
    // Leading CRLFs and bytes beyond Content-Length are not part of the message.
    let input = bytes::Bytes::from(format!("\r\n\r\n{INVITE}trailing"));
    let m = SipMessage::parse(input.clone(), &Limits::default()).expect("parse");
    let b = m.bytes();
    assert_eq!(b, INVITE.as_bytes());
    assert_eq!(
        b.as_ptr(),
        input[4..].as_ptr(),
        "bytes() copied the message"
    );
    assert_eq!(m.as_bytes().as_ptr(), b.as_ptr());
    let copy = m.clone();
    assert_eq!(
        copy.as_bytes().as_ptr(),
        b.as_ptr(),
        "clone() copied the buffer"
    );
    assert_eq!(m.into_bytes().as_ptr(), b.as_ptr(), "into_bytes() copied");
    // A Vec is taken over as it is.
    let v = INVITE.as_bytes().to_vec();
    let at = v.as_ptr();
    let m = SipMessage::parse(v, &Limits::default()).expect("parse");
    assert_eq!(m.bytes().as_ptr(), at, "parse(Vec) copied");
}

#[test]
fn parse_or_return_hands_back_the_same_bytes() {
    let input = bytes::Bytes::from_static(b"INVITE sip:x@h SIP/2.0\r\nVia no colon\r\n\r\n");
    let (e, back) =
        SipMessage::parse_or_return(input.clone(), &Limits::default()).expect_err("must fail");
    assert!(matches!(e, ParseError::HeaderWithoutColon(_)), "{e:?}");
    assert_eq!(back, input);
    assert_eq!(back.as_ptr(), input.as_ptr(), "the error copied the buffer");
}

#[test]
fn framer_splits_messages_off_one_allocation() {
    let (a, b) = (msg("one"), msg("two"));
    let mut f = StreamFramer::new(Limits::default());
    // Read straight into the framer's buffer, as the TCP reader does.
    let buf = f.read_buf(4096).expect("room");
    buf.extend_from_slice(format!("{a}\r\n{b}").as_bytes());
    let start = buf.as_ptr();
    let Some(Frame::Message(x)) = f.next_frame_bytes().expect("frame") else {
        panic!("no first message")
    };
    let Some(Frame::Message(y)) = f.next_frame_bytes().expect("frame") else {
        panic!("no second message")
    };
    assert_eq!(f.next_frame_bytes().expect("frame"), None);
    assert_eq!((&x[..], &y[..]), (a.as_bytes(), b.as_bytes()));
    assert_eq!(x.as_ptr(), start, "first message copied");
    // the second starts after the first and the CRLF between them
    assert_eq!(
        y.as_ptr(),
        start.wrapping_add(a.len() + 2),
        "second message copied"
    );
    // and parsing it keeps pointing there
    let m = SipMessage::parse(y.clone(), &Limits::default()).expect("parse");
    assert_eq!(m.bytes().as_ptr(), y.as_ptr());
}

#[test]
fn framer_bytes_and_vec_frames_agree() {
    let data = format!("{}\r\n\r\n{}\r\n{}", msg("a"), msg(""), msg("ccc"));
    for chunk in [1, 3, 7, 64, 4096] {
        let (mut v, mut b) = (
            StreamFramer::new(Limits::default()),
            StreamFramer::new(Limits::default()),
        );
        let (mut fv, mut fb) = (Vec::new(), Vec::new());
        for piece in data.as_bytes().chunks(chunk) {
            v.push(piece).expect("push");
            b.read_buf(piece.len())
                .expect("room")
                .extend_from_slice(piece);
            fv.extend(frames(&mut v));
            while let Some(fr) = b.next_frame_bytes().expect("frame") {
                fb.push(match fr {
                    Frame::Message(m) => Frame::Message(m.to_vec()),
                    Frame::Ping => Frame::Ping,
                });
            }
        }
        assert_eq!(fv, fb, "chunk {chunk}");
        assert_eq!(fv.len(), 4, "chunk {chunk}");
    }
}
