//! Call flows driven through real SIP text and the transport parser.

use std::time::{Duration, Instant};

use sipcti_dialog::*;
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_wire::{Limits, SipMessage};

// ----- SIP text builders -----

fn parse(text: String) -> SipMessage {
    SipMessage::parse(text.into_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("test message does not parse: {e}"))
}

fn build(start: &str, headers: &[(&str, String)]) -> SipMessage {
    let mut s = format!("{start}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    parse(s)
}

/// The dialog-forming parts of one call, as the caller sends them.
#[derive(Clone)]
struct Dlg {
    call_id: String,
    /// From header value with tag.
    from: String,
    /// To header value without tag.
    to: String,
    ruri: String,
    via: String,
}

impl Dlg {
    fn phone(call_id: &str) -> Dlg {
        Dlg {
            call_id: call_id.into(),
            from: "\"Alice\" <sip:201@pbx.example>;tag=f1".into(),
            to: "<sip:030123456@pbx.example>".into(),
            ruri: "sip:030123456@pbx.example".into(),
            via: "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKph1".into(),
        }
    }

    fn trunk(call_id: &str) -> Dlg {
        Dlg {
            call_id: call_id.into(),
            from: "<sip:+491701234567@trunk.example;user=phone>;tag=tr1".into(),
            to: "\"Support\" <sip:+4930555100@trunk.example>".into(),
            ruri: "sip:+4930555100@proxy.example;user=phone".into(),
            via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKtr1".into(),
        }
    }

    fn to_with(&self, to_tag: Option<&str>) -> String {
        match to_tag {
            Some(t) => format!("{};tag={t}", self.to),
            None => self.to.clone(),
        }
    }

    /// A request from the caller (`INVITE` without To tag is the initial one).
    fn req(
        &self,
        method: &str,
        cseq: u32,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) -> SipMessage {
        let mut h = vec![
            ("Via", self.via.clone()),
            ("Max-Forwards", "70".into()),
            ("From", self.from.clone()),
            ("To", self.to_with(to_tag)),
            ("Call-ID", self.call_id.clone()),
            ("CSeq", format!("{cseq} {method}")),
        ];
        h.extend(extra.iter().map(|(n, v)| (*n, v.to_string())));
        build(&format!("{method} {} SIP/2.0", self.ruri), &h)
    }

    fn invite(&self, cseq: u32, extra: &[(&str, &str)]) -> SipMessage {
        self.req("INVITE", cseq, None, extra)
    }

    /// A response to the caller's request `cseq`/`method`.
    fn resp(
        &self,
        status: u16,
        cseq: u32,
        method: &str,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) -> SipMessage {
        let mut h = vec![
            ("Via", self.via.clone()),
            ("From", self.from.clone()),
            ("To", self.to_with(to_tag)),
            ("Call-ID", self.call_id.clone()),
            ("CSeq", format!("{cseq} {method}")),
        ];
        h.extend(extra.iter().map(|(n, v)| (*n, v.to_string())));
        build(&format!("SIP/2.0 {status} Reason"), &h)
    }

    /// A request from the callee (its tag `callee_tag`) in the dialog.
    fn callee_req(&self, method: &str, cseq: u32, callee_tag: &str) -> SipMessage {
        let h = vec![
            (
                "Via",
                "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKcallee".to_string(),
            ),
            ("Max-Forwards", "70".into()),
            ("From", format!("{};tag={callee_tag}", self.to)),
            ("To", self.from.clone()),
            ("Call-ID", self.call_id.clone()),
            ("CSeq", format!("{cseq} {method}")),
        ];
        build(&format!("{method} sip:caller@10.0.0.5 SIP/2.0"), &h)
    }
}

// ----- harness -----

struct H {
    t: CallTracker,
    t0: Instant,
}

impl H {
    fn new() -> H {
        H::with(TrackerConfig {
            country_code: Some("49".into()),
            ..TrackerConfig::default()
        })
    }
    fn with(cfg: TrackerConfig) -> H {
        H {
            t: CallTracker::new(cfg),
            t0: Instant::now(),
        }
    }
    fn at(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }
    fn feed(&mut self, m: &SipMessage, side: Side, s: u64) -> Vec<CallEvent> {
        let now = self.at(s);
        self.t.on_message(m, side, now)
    }
    fn quiet(&mut self, m: &SipMessage, side: Side, s: u64) {
        let e = self.feed(m, side, s);
        assert!(
            e.is_empty(),
            "unexpected events {e:?} for\n{}",
            String::from_utf8_lossy(m.as_bytes())
        );
    }
}

struct E<'a> {
    h: &'a H,
    cid: &'a str,
    dir: Direction,
    from: &'a str,
    to: &'a str,
}

impl E<'_> {
    fn ev(&self, kind: EventKind, s: u64) -> CallEvent {
        CallEvent {
            kind,
            call_id: self.cid.into(),
            direction: self.dir,
            from: self.from.into(),
            to: self.to.into(),
            user: None,
            group: Vec::new(),
            queue: None,
            answering_number: None,
            cause: None,
            at: self.h.at(s),
            sip_call_id: self.cid.into(),
        }
    }
    fn new_call(&self, s: u64, user: Option<&str>) -> CallEvent {
        CallEvent {
            user: user.map(Into::into),
            ..self.ev(EventKind::NewCall, s)
        }
    }
    fn answer(&self, s: u64, user: Option<&str>, ans: Option<&str>) -> CallEvent {
        CallEvent {
            user: user.map(Into::into),
            answering_number: ans.map(Into::into),
            ..self.ev(EventKind::Answer, s)
        }
    }
    fn hangup(&self, s: u64, cause: Cause, ans: Option<&str>) -> CallEvent {
        CallEvent {
            cause: Some(cause),
            answering_number: ans.map(Into::into),
            ..self.ev(EventKind::Hangup, s)
        }
    }
}

macro_rules! out_call {
    ($h:expr, $cid:expr) => {
        E {
            h: &$h,
            cid: $cid,
            dir: Direction::Out,
            from: "201",
            to: "4930123456",
        }
    };
}

// ----- flows -----

#[test]
fn outbound_answered_bye_from_phone() {
    let mut h = H::new();
    let d = Dlg::phone("out1@pbx");
    let inv = d.invite(1, &[("Contact", "<sip:201@10.0.0.5>")]);
    let got = h.feed(&inv, Side::Inside, 0);
    let e = out_call!(h, "out1@pbx");
    assert_eq!(got, vec![e.new_call(0, Some("Alice"))]);
    h.quiet(&d.resp(100, 1, "INVITE", None, &[]), Side::Trunk, 0);
    h.quiet(&d.resp(180, 1, "INVITE", Some("t1"), &[]), Side::Trunk, 1);
    let ok = d.resp(
        200,
        1,
        "INVITE",
        Some("t1"),
        &[("Contact", "\"Ext\" <sip:+4930123456@192.0.2.1>")],
    );
    let got = h.feed(&ok, Side::Trunk, 4);
    let e = out_call!(h, "out1@pbx");
    assert_eq!(got, vec![e.answer(4, None, None)]);
    h.quiet(&d.req("ACK", 1, Some("t1"), &[]), Side::Inside, 4);
    h.quiet(&ok, Side::Trunk, 5); // 200 retransmitted
    let bye = d.req("BYE", 2, Some("t1"), &[]);
    let got = h.feed(&bye, Side::Inside, 60);
    let e = out_call!(h, "out1@pbx");
    assert_eq!(got, vec![e.hangup(60, Cause::NormalClearing, None)]);
    h.quiet(&bye, Side::Inside, 61);
    h.quiet(&d.resp(200, 2, "BYE", Some("t1"), &[]), Side::Trunk, 61);
    let st = h.t.stats();
    assert_eq!(
        (st.calls_seen, st.active_calls, st.retransmissions_absorbed),
        (1, 0, 2)
    );
}

#[test]
fn bye_from_trunk() {
    let mut h = H::new();
    let d = Dlg::phone("out2");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    assert_eq!(
        h.feed(&d.resp(200, 1, "INVITE", Some("t7"), &[]), Side::Trunk, 2)
            .len(),
        1
    );
    let bye = d.callee_req("BYE", 3, "t7");
    let got = h.feed(&bye, Side::Trunk, 9);
    let e = out_call!(h, "out2");
    assert_eq!(got, vec![e.hangup(9, Cause::NormalClearing, None)]);
    h.quiet(&bye, Side::Trunk, 10);
}

#[test]
fn inbound_answered_with_answering_number() {
    let mut h = H::new();
    let d = Dlg::trunk("in1@carrier");
    let inv = d.invite(10, &[("P-Asserted-Identity", "<tel:+491701234567>")]);
    let e = E {
        h: &h,
        cid: "in1@carrier",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    let want_new = e.new_call(0, Some("Support"));
    assert_eq!(h.feed(&inv, Side::Trunk, 0), vec![want_new]);
    h.quiet(&d.resp(180, 10, "INVITE", Some("ph"), &[]), Side::Inside, 1);
    let ok = d.resp(
        200,
        10,
        "INVITE",
        Some("ph"),
        &[(
            "Contact",
            "\"Bob Agent\" <sip:201@10.0.0.7:5062;transport=tcp>",
        )],
    );
    let got = h.feed(&ok, Side::Inside, 6);
    let e = E {
        h: &h,
        cid: "in1@carrier",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    assert_eq!(got, vec![e.answer(6, Some("Bob Agent"), Some("201"))]);
    let got = h.feed(&d.req("BYE", 11, Some("ph"), &[]), Side::Trunk, 70);
    let e = E {
        h: &h,
        cid: "in1@carrier",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    assert_eq!(got, vec![e.hangup(70, Cause::NormalClearing, Some("201"))]);
}

#[test]
fn cancel_then_487() {
    let mut h = H::new();
    let d = Dlg::phone("cancel1");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    h.quiet(&d.resp(180, 1, "INVITE", Some("t"), &[]), Side::Trunk, 1);
    h.quiet(&d.req("CANCEL", 1, None, &[]), Side::Inside, 5);
    h.quiet(&d.resp(200, 1, "CANCEL", Some("t"), &[]), Side::Trunk, 5);
    let got = h.feed(&d.resp(487, 1, "INVITE", Some("t"), &[]), Side::Trunk, 5);
    let e = out_call!(h, "cancel1");
    assert_eq!(got, vec![e.hangup(5, Cause::Cancel, None)]);
    h.quiet(&d.req("ACK", 1, Some("t"), &[]), Side::Inside, 5);
}

#[test]
fn busy_and_not_found() {
    for (status, cause) in [
        (486, Cause::Busy),
        (404, Cause::NotFound),
        (503, Cause::Congestion),
        (603, Cause::NoAnswer),
        (302, Cause::Forwarded),
    ] {
        let mut h = H::new();
        let d = Dlg::phone("fail");
        h.feed(&d.invite(1, &[]), Side::Inside, 0);
        let got = h.feed(&d.resp(status, 1, "INVITE", Some("t"), &[]), Side::Trunk, 3);
        let e = out_call!(h, "fail");
        assert_eq!(got, vec![e.hangup(3, cause, None)], "{status}");
    }
}

#[test]
fn challenge_then_credentials_is_one_call() {
    let mut h = H::new();
    let d = Dlg::phone("auth1");
    assert_eq!(h.feed(&d.invite(1, &[]), Side::Inside, 0).len(), 1);
    h.quiet(
        &d.resp(
            407,
            1,
            "INVITE",
            Some("px"),
            &[("Proxy-Authenticate", "Digest realm=\"x\", nonce=\"n\"")],
        ),
        Side::Trunk,
        0,
    );
    h.quiet(&d.req("ACK", 1, Some("px"), &[]), Side::Inside, 0);
    let inv2 = d.invite(
        2,
        &[(
            "Proxy-Authorization",
            "Digest username=\"201\", realm=\"x\", nonce=\"n\", uri=\"sip:x\", response=\"0\"",
        )],
    );
    h.quiet(&inv2, Side::Inside, 1);
    h.quiet(&inv2, Side::Inside, 1);
    let got = h.feed(&d.resp(200, 2, "INVITE", Some("t"), &[]), Side::Trunk, 40);
    let e = out_call!(h, "auth1");
    assert_eq!(got, vec![e.answer(40, None, None)]);
    assert_eq!(h.t.call_info("auth1", "f1").unwrap().call_id, "auth1");
    assert_eq!(h.t.stats().calls_seen, 1);
}

#[test]
fn challenge_never_retried_is_congestion() {
    let mut h = H::new();
    let d = Dlg::phone("auth2");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    h.quiet(&d.resp(401, 1, "INVITE", Some("px"), &[]), Side::Trunk, 2);
    assert_eq!(h.t.poll_timeout(), Some(h.at(34)));
    let got = h.t.handle_timeout(h.at(34));
    let e = out_call!(h, "auth2");
    assert_eq!(got, vec![e.hangup(34, Cause::Congestion, None)]);
}

#[test]
fn both_legs_capture_equals_one_leg() {
    let d = Dlg::trunk("legs@carrier");
    // The copy the proxy forwards: one more Via, rewritten From user, same tags and CSeq.
    let mut fwd = d.clone();
    fwd.via = format!("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy, {}", d.via);
    fwd.from = "<sip:01701234567@proxy.example>;tag=tr1".into();
    let flow = |d: &Dlg| {
        vec![
            (d.invite(10, &[]), Side::Trunk),
            (d.resp(180, 10, "INVITE", Some("ph"), &[]), Side::Inside),
            (
                d.resp(
                    200,
                    10,
                    "INVITE",
                    Some("ph"),
                    &[("Contact", "<sip:202@10.0.0.8>")],
                ),
                Side::Inside,
            ),
            (d.req("ACK", 10, Some("ph"), &[]), Side::Trunk),
            (d.callee_req("BYE", 1, "ph"), Side::Inside),
        ]
    };
    let run = |msgs: Vec<(SipMessage, Side)>| {
        let mut h = H::new();
        let mut out = Vec::new();
        for (m, side) in &msgs {
            out.extend(h.feed(m, *side, 0));
        }
        (out, h.at(0))
    };
    let (one, t) = run(flow(&d));
    let e = E {
        h: &H::new(),
        cid: "legs@carrier",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    let mut want = vec![
        e.new_call(0, Some("Support")),
        e.answer(0, None, Some("202")),
        e.hangup(0, Cause::NormalClearing, Some("202")),
    ];
    for w in &mut want {
        w.at = t;
    }
    assert_eq!(one, want);
    let both: Vec<_> = flow(&d)
        .into_iter()
        .zip(flow(&fwd))
        .flat_map(|(a, b)| [a, b])
        .collect();
    let (got, t2) = run(both);
    for w in &mut want {
        w.at = t2;
    }
    assert_eq!(got, want);
}

#[test]
fn call_id_reuse_gets_suffix() {
    let mut h = H::new();
    let d = Dlg::phone("reuse");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    h.feed(&d.resp(486, 1, "INVITE", Some("t"), &[]), Side::Trunk, 1);
    let got = h.feed(&d.invite(2, &[]), Side::Inside, 10);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].call_id, "reuse-2");
    let mut d2 = d.clone();
    d2.from = "<sip:202@pbx.example>;tag=other".into();
    assert_eq!(
        h.feed(&d2.invite(1, &[]), Side::Inside, 11)[0].call_id,
        "reuse-3"
    );
}

#[test]
fn reinvite_options_register_give_no_events() {
    let mut h = H::new();
    let d = Dlg::phone("dlg");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    h.feed(&d.resp(200, 1, "INVITE", Some("t"), &[]), Side::Trunk, 1);
    h.quiet(&d.req("INVITE", 2, Some("t"), &[]), Side::Inside, 2);
    h.quiet(&d.resp(200, 2, "INVITE", Some("t"), &[]), Side::Trunk, 2);
    h.quiet(&d.callee_req("INVITE", 5, "t"), Side::Trunk, 3);
    h.quiet(&d.req("OPTIONS", 3, Some("t"), &[]), Side::Inside, 3);
    h.quiet(&d.resp(200, 3, "OPTIONS", Some("t"), &[]), Side::Trunk, 3);
    let reg = Dlg::phone("reg1");
    h.quiet(&reg.req("REGISTER", 1, None, &[]), Side::Inside, 4);
    h.quiet(
        &reg.resp(401, 1, "REGISTER", Some("r"), &[]),
        Side::Trunk,
        4,
    );
    h.quiet(
        &reg.resp(200, 2, "REGISTER", Some("r"), &[]),
        Side::Trunk,
        4,
    );
    let opt = Dlg::trunk("opt1");
    h.quiet(&opt.req("OPTIONS", 1, None, &[]), Side::Trunk, 5);
    assert_eq!(h.t.stats().calls_seen, 1);
    assert!(!h.t.call_info("dlg", "f1").unwrap().ended);
}

#[test]
fn max_call_duration_expiry() {
    let mut h = H::with(TrackerConfig {
        country_code: Some("49".into()),
        max_call_duration: Duration::from_secs(600),
        ..TrackerConfig::default()
    });
    let d = Dlg::phone("long");
    h.feed(&d.invite(1, &[]), Side::Inside, 0);
    h.feed(&d.resp(200, 1, "INVITE", Some("t"), &[]), Side::Trunk, 5);
    assert_eq!(h.t.poll_timeout(), Some(h.at(605)));
    assert!(h.t.handle_timeout(h.at(604)).is_empty());
    let got = h.t.handle_timeout(h.at(605));
    let e = out_call!(h, "long");
    assert_eq!(got, vec![e.hangup(605, Cause::NormalClearing, None)]);
}

#[test]
fn table_full_is_counted() {
    let mut h = H::with(TrackerConfig {
        max_calls: 1,
        ..TrackerConfig::default()
    });
    h.feed(&Dlg::phone("a").invite(1, &[]), Side::Inside, 0);
    h.quiet(&Dlg::phone("b").invite(1, &[]), Side::Inside, 0);
    let st = h.t.stats();
    assert_eq!((st.tracked_calls, st.untracked_table_full), (1, 1));
}

#[test]
fn privacy_id_and_pai() {
    let mut h = H::new();
    let d = Dlg::trunk("priv");
    let got = h.feed(
        &d.invite(
            1,
            &[
                ("P-Asserted-Identity", "<sip:+491701234567@trunk.example>"),
                ("Privacy", "id;critical"),
            ],
        ),
        Side::Trunk,
        0,
    );
    assert_eq!(got[0].from, "anonymous");
    let mut d = Dlg::trunk("anon");
    d.from = "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=x".into();
    assert_eq!(
        h.feed(&d.invite(1, &[]), Side::Trunk, 0)[0].from,
        "anonymous"
    );
    let d = Dlg::phone("pai");
    let got = h.feed(
        &d.invite(
            1,
            &[(
                "P-Asserted-Identity",
                "\"Front Desk\" <sip:+4930555100@pbx.example>, <tel:+4930555100>",
            )],
        ),
        Side::Inside,
        0,
    );
    assert_eq!(
        (got[0].from.as_str(), got[0].user.as_deref()),
        ("4930555100", Some("Alice"))
    );
}

#[test]
fn compact_headers_and_tel_uri() {
    let mut h = H::new();
    let text = "INVITE tel:+49-30-555-100;phone-context=+49 SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc\r\n\
        f: <sip:%2B491701234567@trunk.example>;tag=ct\r\n\
        t: \"Sales\" <tel:+4930555100>\r\n\
        i: compact-1\r\n\
        CSeq: 7 INVITE\r\n\
        m: <sip:x@192.0.2.1>\r\n\
        l: 0\r\n\r\n";
    let got = h.feed(&parse(text.into()), Side::Trunk, 0);
    let e = E {
        h: &h,
        cid: "compact-1",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    assert_eq!(got, vec![e.new_call(0, Some("Sales"))]);
}

#[test]
fn messages_missing_headers_are_ignored_and_counted() {
    let mut h = H::new();
    for text in [
        "INVITE sip:1@h SIP/2.0\r\nFrom: <sip:2@h>;tag=a\r\nTo: <sip:1@h>\r\nCSeq: 1 INVITE\r\n\r\n",
        "INVITE sip:1@h SIP/2.0\r\nFrom: <sip:2@h>;tag=a\r\nTo: <sip:1@h>\r\nCall-ID: x\r\n\r\n",
        "INVITE sip:1@h SIP/2.0\r\nTo: <sip:1@h>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        "INVITE sip:1@h SIP/2.0\r\nFrom: <sip:2@h>;tag=a\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        "SIP/2.0 200 OK\r\nFrom: <sip:2@h>;tag=a\r\nTo: <sip:1@h>\r\nCall-ID: x\r\nCSeq: bogus\r\n\r\n",
    ] {
        h.quiet(&parse(text.into()), Side::Trunk, 0);
    }
    assert_eq!(h.t.stats().malformed_ignored, 5);
    // Odd but placeable: no From tag, no user anywhere, Contact "*".
    let odd = "INVITE sip:h SIP/2.0\r\nFrom: sip:h\r\nTo: sip:h\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\nContact: *\r\n\r\n";
    let got = h.feed(&parse(odd.into()), Side::Trunk, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].from.as_str(), got[0].to.as_str()),
        ("anonymous", "")
    );
}

// ----- the lazy message path (`on_message` reads only what a step needs) -----

#[test]
fn unknown_call_id_messages_are_counted_without_events() {
    let mut h = H::new();
    let d = Dlg::phone("nobody@pbx");
    h.quiet(&d.req("BYE", 2, Some("t1"), &[]), Side::Inside, 0);
    h.quiet(&d.req("CANCEL", 1, None, &[]), Side::Inside, 0);
    h.quiet(&d.resp(200, 1, "INVITE", Some("t1"), &[]), Side::Trunk, 0);
    h.quiet(&d.resp(180, 1, "INVITE", Some("t1"), &[]), Side::Trunk, 0);
    h.quiet(&d.req("ACK", 1, Some("t1"), &[]), Side::Inside, 0);
    h.quiet(&d.resp(200, 2, "BYE", Some("t1"), &[]), Side::Trunk, 0);
    let st = h.t.stats();
    assert_eq!(
        (
            st.unknown_call_messages,
            st.malformed_ignored,
            st.tracked_calls
        ),
        (4, 0, 0)
    );
    // a known Call-ID with an unknown From tag is unknown too
    let inv = d.invite(1, &[]);
    assert_eq!(h.feed(&inv, Side::Inside, 1).len(), 1);
    let other = Dlg {
        from: "\"Alice\" <sip:201@pbx.example>;tag=zz".into(),
        ..d.clone()
    };
    h.quiet(&other.req("CANCEL", 1, None, &[]), Side::Inside, 2);
    assert_eq!(h.t.stats().unknown_call_messages, 5);
}

#[test]
fn retransmitted_provisional_and_final_responses_change_nothing() {
    let mut h = H::new();
    let d = Dlg::phone("rtx@pbx");
    assert_eq!(h.feed(&d.invite(1, &[]), Side::Inside, 0).len(), 1);
    let ringing = d.resp(180, 1, "INVITE", Some("t1"), &[]);
    for s in 1..4 {
        h.quiet(&ringing, Side::Trunk, s);
    }
    let ok = d.resp(200, 1, "INVITE", Some("t1"), &[]);
    let got = h.feed(&ok, Side::Trunk, 5);
    let e = out_call!(h, "rtx@pbx");
    assert_eq!(got, vec![e.answer(5, None, None)]);
    h.quiet(&ringing, Side::Trunk, 6); // a late 180
    h.quiet(&ok, Side::Trunk, 6);
    h.quiet(&ok, Side::Trunk, 7);
    let st = h.t.stats();
    assert_eq!(
        (
            st.active_calls,
            st.retransmissions_absorbed,
            st.events_emitted
        ),
        (1, 2, 2)
    );
}

#[test]
fn compact_headers_whole_inbound_call() {
    let mut h = H::new();
    let inv = "INVITE sip:+4930555100@proxy.example SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n\
        f: <sip:+491701234567@trunk.example>;tag=cf\r\n\
        t: \"Support\" <sip:+4930555100@trunk.example>\r\n\
        i: compact-2\r\n\
        CSeq: 3 INVITE\r\n\
        l: 0\r\n\r\n";
    let ok = "SIP/2.0 200 OK\r\n\
        v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n\
        f: <sip:+491701234567@trunk.example>;tag=cf\r\n\
        t: \"Support\" <sip:+4930555100@trunk.example>;tag=ct\r\n\
        i: compact-2\r\n\
        CSeq: 3 INVITE\r\n\
        m: \"Bob\" <sip:0301234567@10.0.0.7>\r\n\
        l: 0\r\n\r\n";
    let bye = "BYE sip:x@192.0.2.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKc2\r\n\
        f: \"Support\" <sip:+4930555100@trunk.example>;tag=ct\r\n\
        t: <sip:+491701234567@trunk.example>;tag=cf\r\n\
        i: compact-2\r\n\
        CSeq: 1 BYE\r\n\
        l: 0\r\n\r\n";
    let e = E {
        h: &h,
        cid: "compact-2",
        dir: Direction::In,
        from: "491701234567",
        to: "4930555100",
    };
    let want = [
        e.new_call(0, Some("Support")),
        e.answer(3, Some("Bob"), Some("49301234567")),
        e.hangup(9, Cause::NormalClearing, Some("49301234567")),
    ];
    let got = [
        h.feed(&parse(inv.into()), Side::Trunk, 0),
        h.feed(&parse(ok.into()), Side::Inside, 3),
        h.feed(&parse(bye.into()), Side::Inside, 9),
    ];
    assert_eq!(got, want.map(|e| vec![e]));
}

/// Every message of `flow` fed to one tracker as it is and to another as
/// `MsgView::from_message`: the same events and counters.
fn same_through_view(flow: &[(SipMessage, Side, u64)]) {
    let (mut a, mut b) = (H::new(), H::new());
    b.t0 = a.t0;
    for (m, side, s) in flow {
        let got = a.feed(m, *side, *s);
        let want = match MsgView::from_message(m) {
            Ok(v) => b.t.on_view(&v, *side, b.at(*s)),
            Err(_) => b.t.on_message(m, *side, b.at(*s)),
        };
        assert_eq!(got, want, "{}", String::from_utf8_lossy(m.as_bytes()));
    }
    assert_eq!(a.t.stats(), b.t.stats());
}

#[test]
fn on_message_equals_on_view() {
    let d = Dlg::trunk("eq1@trunk");
    let inv = d.invite(
        1,
        &[
            (
                "P-Asserted-Identity",
                "\"Carol\" <sip:%2B491709999@trunk.example>",
            ),
            ("Privacy", "none"),
        ],
    );
    let ok = d.resp(
        200,
        1,
        "INVITE",
        Some("c1"),
        &[
            (
                "P-Asserted-Identity",
                "\"Dan \\\"D\\\"\" <sip:202@pbx.example>",
            ),
            ("Contact", "<sip:202@10.0.0.8>"),
        ],
    );
    let refer = d.callee_req("REFER", 5, "c1");
    let refer_ok = d.resp(202, 5, "REFER", Some("c1"), &[]);
    let bye = d.callee_req("BYE", 6, "c1");
    let p = Dlg::phone("eq2@pbx");
    let anon = p.invite(
        1,
        &[
            ("Privacy", "id"),
            ("Replaces", "eq1@trunk;to-tag=c1;from-tag=tr1"),
        ],
    );
    let busy = p.resp(486, 1, "INVITE", Some("b"), &[]);
    let flow = [
        (inv.clone(), Side::Trunk, 0),
        (d.resp(180, 1, "INVITE", Some("c1"), &[]), Side::Inside, 1),
        (ok.clone(), Side::Inside, 2),
        (ok, Side::Inside, 3),
        (inv, Side::Trunk, 3),
        (anon, Side::Inside, 4),
        (busy, Side::Trunk, 5),
        (refer, Side::Inside, 6),
        (refer_ok, Side::Trunk, 6),
        (bye.clone(), Side::Inside, 10),
        (bye, Side::Inside, 11),
        (p.req("BYE", 9, Some("zz"), &[]), Side::Inside, 12),
    ];
    same_through_view(&flow);
}

#[test]
fn affects_calls_by_method_and_cseq_method() {
    let d = Dlg::phone("ac@pbx");
    for (m, want) in [
        ("INVITE", true),
        ("invite", true),
        ("BYE", true),
        ("Cancel", true),
        ("REFER", true),
        ("NOTIFY", true),
        ("ACK", false),
        ("OPTIONS", false),
        ("REGISTER", false),
        ("INFO", false),
        ("BYEX", false),
    ] {
        assert_eq!(affects_calls(&d.req(m, 1, Some("t"), &[])), want, "{m}");
    }
    for (status, m, want) in [
        (100, "INVITE", false),
        (180, "INVITE", false),
        (200, "INVITE", true),
        (486, "invite", true),
        (200, "BYE", false),
        (202, "REFER", true),
        (200, "CANCEL", false),
        (200, "NOTIFY", false),
    ] {
        let r = d.resp(status, 1, m, Some("t"), &[]);
        assert_eq!(affects_calls(&r), want, "{status} {m}");
    }
}

#[test]
fn is_live_call_agrees_with_call_info() {
    let mut h = H::new();
    let d = Dlg::phone("live@pbx");
    let agree = |h: &H, tag: &str| {
        let info = h.t.call_info("live@pbx", tag).is_some_and(|c| !c.ended);
        assert_eq!(h.t.is_live_call("live@pbx", tag), info, "{tag}");
        info
    };
    assert!(!agree(&h, "f1"));
    assert_eq!(h.feed(&d.invite(1, &[]), Side::Inside, 0).len(), 1);
    assert!(agree(&h, "f1"));
    assert!(!agree(&h, "t1"));
    assert!(!h.t.is_live_call("other@pbx", "f1"));
    h.feed(&d.resp(200, 1, "INVITE", Some("t1"), &[]), Side::Trunk, 1);
    assert!(agree(&h, "f1"));
    h.feed(&d.req("BYE", 2, Some("t1"), &[]), Side::Inside, 2);
    assert!(!agree(&h, "f1"));
}

#[test]
fn from_message_builds_the_whole_view() {
    let text = "INVITE sip:%2B4930555100@Proxy.Example;user=phone SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv\r\n\
        f: \"Carol \\\"C\\\"\" <sip:0170123@Trunk.Example>;tag=ff\r\n\
        t: Support <tel:+4930555100>\r\n\
        i:  view-1 \r\n\
        CSeq: 4 invite\r\n\
        P-Asserted-Identity: <sip:unterminated\r\n\
        P-Asserted-Identity: \"Pai\" <sip:+49170123@pai.example>\r\n\
        Contact: <sip:c%40x@10.0.0.9:5060>\r\n\
        Contact: *\r\n\
        Privacy: header;id\r\n\
        Replaces: old@h;to-tag=1;from-tag=2\r\n\
        l: 0\r\n\r\n";
    let v = MsgView::from_message(&parse(text.into())).expect("view");
    let want = MsgView {
        method: Some("INVITE".into()),
        status: None,
        call_id: "view-1".into(),
        from_tag: Some("ff".into()),
        to_tag: None,
        cseq: 4,
        cseq_method: "invite".into(),
        ruri_user: Some("+4930555100".into()),
        target_user: None,
        from: Party::new("sip:0170123@Trunk.Example", Some("Carol \"C\"")),
        to: Party::new("tel:+4930555100", Some("Support")),
        pai: Some(Party::new("sip:+49170123@pai.example", Some("Pai"))),
        contact: Some(Party::new("sip:c%40x@10.0.0.9:5060", None)),
        privacy_id: true,
        replaces: DialogRef::parse("old@h;to-tag=1;from-tag=2"),
        refer_to_replaces: None,
        sipfrag_status: None,
    };
    assert_eq!(v, want);
    assert_eq!(v.from.host.as_deref(), Some("trunk.example"));
    assert_eq!(
        v.contact.as_ref().and_then(|c| c.user.as_deref()),
        Some("c@x")
    );
}
