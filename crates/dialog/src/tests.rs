//! State-machine tests driven through `MsgView` (no parser needed).

use std::time::{Duration, Instant};

use crate::tracker::{fnv1a64, zammad_call_id};
use crate::view::uri_user_host;
use crate::*;
use sipcti_event::{Cause, Direction, EventKind};

// ----- message builders -----

fn p(uri: &str, display: Option<&str>) -> Party {
    Party::new(uri, display)
}

/// An initial INVITE (no To tag).
fn invite(cid: &str, ftag: &str, cseq: u32, ruri: &str, from: Party, to: Party) -> MsgView {
    MsgView {
        method: Some("INVITE".into()),
        status: None,
        call_id: cid.into(),
        from_tag: Some(ftag.into()),
        to_tag: None,
        cseq,
        cseq_method: "INVITE".into(),
        ruri_user: uri_user_host(ruri).0,
        from,
        to,
        pai: None,
        contact: None,
        privacy_id: false,
        ..MsgView::default()
    }
}

/// A response to `req` (To tag `to_tag` if given, else the request's).
fn resp(req: &MsgView, status: u16, to_tag: Option<&str>) -> MsgView {
    MsgView {
        method: None,
        status: Some(status),
        to_tag: to_tag.map(Into::into).or(req.to_tag.clone()),
        ruri_user: None,
        pai: None,
        contact: None,
        privacy_id: false,
        ..req.clone()
    }
}

/// A request from the caller on the call of `inv` (ACK, BYE, CANCEL, re-INVITE, ...).
fn caller_req(inv: &MsgView, method: &str, cseq: u32, to_tag: Option<&str>) -> MsgView {
    MsgView {
        method: Some(method.into()),
        cseq,
        cseq_method: method.into(),
        to_tag: to_tag.map(Into::into),
        ruri_user: None,
        pai: None,
        contact: None,
        ..inv.clone()
    }
}

/// A request from the callee (tag `callee_tag`) in the dialog of `inv`.
fn callee_req(inv: &MsgView, method: &str, cseq: u32, callee_tag: &str) -> MsgView {
    MsgView {
        method: Some(method.into()),
        status: None,
        call_id: inv.call_id.clone(),
        from_tag: Some(callee_tag.into()),
        to_tag: inv.from_tag.clone(),
        cseq,
        cseq_method: method.into(),
        ruri_user: inv.from.user.clone(),
        from: inv.to.clone(),
        to: inv.from.clone(),
        pai: None,
        contact: None,
        privacy_id: false,
        ..MsgView::default()
    }
}

fn phone_invite(cid: &str) -> MsgView {
    invite(
        cid,
        "f1",
        1,
        "sip:030123456@pbx.example",
        p("sip:201@pbx.example", Some("Alice")),
        p("sip:030123456@pbx.example", None),
    )
}

fn trunk_invite(cid: &str) -> MsgView {
    invite(
        cid,
        "tr1",
        10,
        "sip:+4930555100@proxy.example;user=phone",
        p("sip:+491701234567@trunk.example", None),
        p("sip:+4930555100@trunk.example", Some("Support")),
    )
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
    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }
    fn feed(&mut self, v: &MsgView, side: Side, secs: u64) -> Vec<CallEvent> {
        let now = self.at(secs);
        self.t.on_view(v, side, now)
    }
    fn quiet(&mut self, v: &MsgView, side: Side, secs: u64) {
        let ev = self.feed(v, side, secs);
        assert!(ev.is_empty(), "expected no events for {v:?}, got {ev:?}");
    }
}

fn ev(
    kind: EventKind,
    h: &H,
    secs: u64,
    call_id: &str,
    dir: Direction,
    from: &str,
    to: &str,
) -> CallEvent {
    CallEvent {
        kind,
        call_id: call_id.into(),
        direction: dir,
        from: from.into(),
        to: to.into(),
        user: None,
        group: Vec::new(),
        queue: None,
        answering_number: None,
        cause: None,
        at: h.at(secs),
        sip_call_id: call_id.into(),
    }
}

fn hangup(
    h: &H,
    secs: u64,
    cid: &str,
    dir: Direction,
    from: &str,
    to: &str,
    cause: Cause,
) -> CallEvent {
    CallEvent {
        cause: Some(cause),
        ..ev(EventKind::Hangup, h, secs, cid, dir, from, to)
    }
}

// ----- pure functions -----

#[test]
fn cause_for_every_status() {
    use Cause::*;
    for s in [100u16, 180, 183, 199, 200, 202, 299, 0, 99, 700, 999] {
        assert_eq!(cause_for_status(s), None, "{s}");
    }
    for s in [300u16, 301, 302, 305, 380, 399] {
        assert_eq!(cause_for_status(s), Some(Forwarded), "{s}");
    }
    for (s, c) in [
        (486u16, Busy),
        (600, Busy),
        (404, NotFound),
        (410, NotFound),
        (484, NotFound),
        (604, NotFound),
        (480, NotFound),
        (603, NoAnswer),
        (408, NoAnswer),
        (487, Cancel),
    ] {
        assert_eq!(cause_for_status(s), Some(c), "{s}");
    }
    for s in [
        400u16, 401, 403, 405, 407, 415, 420, 481, 488, 491, 499, 500, 502, 503, 504, 599, 606, 699,
    ] {
        assert_eq!(cause_for_status(s), Some(Congestion), "{s}");
    }
}

#[test]
fn cause_and_kind_spelling() {
    let all = [
        (Cause::NormalClearing, "normalClearing"),
        (Cause::Busy, "busy"),
        (Cause::Cancel, "cancel"),
        (Cause::NoAnswer, "noAnswer"),
        (Cause::Congestion, "congestion"),
        (Cause::NotFound, "notFound"),
        (Cause::Forwarded, "forwarded"),
    ];
    for (c, s) in all {
        assert_eq!(c.as_str(), s);
        assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(s));
    }
    assert_eq!(EventKind::NewCall.as_str(), "newCall");
    assert_eq!(serde_json::to_value(EventKind::Hangup).unwrap(), "hangup");
    assert_eq!(serde_json::to_value(Direction::In).unwrap(), "in");
    assert_eq!(Direction::Out.as_str(), "out");
    assert_eq!(Side::Trunk.direction(), Direction::In);
    assert_eq!(Side::Inside.direction(), Direction::Out);
}

#[test]
fn fnv_and_long_call_ids() {
    // Published FNV-1a 64 test vectors.
    assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
    assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);

    assert_eq!(zammad_call_id("abc@h", 1), "abc@h");
    assert_eq!(zammad_call_id("abc@h", 2), "abc@h-2");
    let exactly200 = "x".repeat(200);
    assert_eq!(zammad_call_id(&exactly200, 1), exactly200);
    let long = format!("{}@host", "y".repeat(300));
    let id = zammad_call_id(&long, 1);
    assert_eq!(id.len(), 180 + 1 + 16);
    assert_eq!(&id[..180], &long[..180]);
    assert_eq!(&id[180..], format!("-{:016x}", fnv1a64(long.as_bytes())));
    assert_eq!(zammad_call_id(&long, 1), id, "stable");
    assert_eq!(zammad_call_id(&long, 3), format!("{id}-3"));
    let huge = "z".repeat(100_000);
    assert!(zammad_call_id(&huge, u32::MAX).chars().count() <= 250);
    // Multi-byte characters: cut on characters, never inside one.
    let uni = "ä".repeat(250);
    let id = zammad_call_id(&uni, 1);
    assert_eq!(id.chars().count(), 197);
}

// ----- call flows -----

#[test]
fn outbound_answered_bye_from_phone() {
    let mut h = H::new();
    let inv = phone_invite("c1@pbx");
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        0,
        "c1@pbx",
        Direction::Out,
        "201",
        "4930123456",
    );
    nc.user = Some("Alice".into());
    assert_eq!(h.feed(&inv, Side::Inside, 0), vec![nc]);
    assert_eq!(h.t.stats().active_calls, 1);
    h.quiet(&resp(&inv, 100, None), Side::Trunk, 0);
    h.quiet(&resp(&inv, 180, Some("t1")), Side::Trunk, 1);
    h.quiet(&resp(&inv, 183, Some("t1")), Side::Trunk, 1);
    let info = h.t.call_info("c1@pbx", "f1").unwrap();
    assert_eq!(
        info,
        CallInfo {
            call_id: "c1@pbx".into(),
            direction: Direction::Out,
            answered: false,
            ended: false
        }
    );
    let ok = resp(&inv, 200, Some("t1"));
    assert_eq!(
        h.feed(&ok, Side::Trunk, 5),
        vec![ev(
            EventKind::Answer,
            &h,
            5,
            "c1@pbx",
            Direction::Out,
            "201",
            "4930123456"
        )]
    );
    assert!(h.t.call_info("c1@pbx", "f1").unwrap().answered);
    h.quiet(&caller_req(&inv, "ACK", 1, Some("t1")), Side::Inside, 5);
    let bye = caller_req(&inv, "BYE", 2, Some("t1"));
    assert_eq!(
        h.feed(&bye, Side::Inside, 65),
        vec![hangup(
            &h,
            65,
            "c1@pbx",
            Direction::Out,
            "201",
            "4930123456",
            Cause::NormalClearing
        )]
    );
    h.quiet(&resp(&bye, 200, None), Side::Trunk, 65);
    // Retransmitted BYE, 200 and INVITE: nothing more.
    h.quiet(&bye, Side::Inside, 66);
    h.quiet(&ok, Side::Trunk, 66);
    h.quiet(&inv, Side::Inside, 66);
    let st = h.t.stats();
    assert_eq!(st.active_calls, 0);
    assert_eq!(st.tracked_calls, 1);
    assert_eq!(st.calls_seen, 1);
    assert_eq!(st.retransmissions_absorbed, 3);
    assert_eq!(st.events_emitted, 3);
    assert_eq!(st.unknown_call_messages, 0);
    assert!(h.t.call_info("c1@pbx", "f1").unwrap().ended);
    // Lingering state is freed after `linger`.
    assert_eq!(h.t.poll_timeout(), Some(h.at(65 + 32)));
    assert!(h.t.handle_timeout(h.at(96)).is_empty());
    assert_eq!(h.t.stats().tracked_calls, 1);
    assert!(h.t.handle_timeout(h.at(97)).is_empty());
    assert_eq!(h.t.stats().tracked_calls, 0);
    assert_eq!(h.t.poll_timeout(), None);
    assert!(h.t.call_info("c1@pbx", "f1").is_none());
}

#[test]
fn bye_from_trunk() {
    let mut h = H::new();
    let inv = phone_invite("c2");
    assert_eq!(h.feed(&inv, Side::Inside, 0).len(), 1);
    assert_eq!(
        h.feed(&resp(&inv, 200, Some("t9")), Side::Trunk, 3).len(),
        1
    );
    let bye = callee_req(&inv, "BYE", 5, "t9");
    assert_eq!(
        h.feed(&bye, Side::Trunk, 30),
        vec![hangup(
            &h,
            30,
            "c2",
            Direction::Out,
            "201",
            "4930123456",
            Cause::NormalClearing
        )]
    );
    h.quiet(&bye, Side::Trunk, 31);
    // A BYE from an unrelated tag finds nothing.
    h.quiet(&callee_req(&inv, "BYE", 6, "other"), Side::Trunk, 31);
}

#[test]
fn inbound_answered_with_answering_number() {
    let mut h = H::new();
    let mut inv = trunk_invite("in1");
    inv.pai = Some(p("tel:+491701234567", None));
    inv.from = p("sip:0301111@trunk.example", None);
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        0,
        "in1",
        Direction::In,
        "491701234567",
        "4930555100",
    );
    nc.user = Some("Support".into());
    assert_eq!(h.feed(&inv, Side::Trunk, 0), vec![nc]);
    h.quiet(&resp(&inv, 180, Some("ph1")), Side::Inside, 1);
    let mut ok = resp(&inv, 200, Some("ph1"));
    ok.contact = Some(p("sip:201@10.0.0.5:5062;transport=tcp", Some("Bob Agent")));
    let mut ans = ev(
        EventKind::Answer,
        &h,
        8,
        "in1",
        Direction::In,
        "491701234567",
        "4930555100",
    );
    ans.user = Some("Bob Agent".into());
    ans.answering_number = Some("201".into());
    assert_eq!(h.feed(&ok, Side::Inside, 8), vec![ans]);
    let bye = caller_req(&inv, "BYE", 11, Some("ph1"));
    let mut hu = hangup(
        &h,
        90,
        "in1",
        Direction::In,
        "491701234567",
        "4930555100",
        Cause::NormalClearing,
    );
    hu.answering_number = Some("201".into());
    assert_eq!(h.feed(&bye, Side::Trunk, 90), vec![hu]);
}

#[test]
fn inbound_answering_number_sources() {
    // PAI of the 2xx wins; its display is the user.
    let mut h = H::new();
    let inv = trunk_invite("in2");
    h.feed(&inv, Side::Trunk, 0);
    let mut ok = resp(&inv, 200, Some("x"));
    ok.pai = Some(p("sip:202@pbx.example", Some("Carol")));
    ok.contact = Some(p("sip:201@10.0.0.5", Some("Bob")));
    let e = h.feed(&ok, Side::Inside, 1);
    assert_eq!(e[0].answering_number.as_deref(), Some("202"));
    assert_eq!(e[0].user.as_deref(), Some("Carol"));

    // Contact user not a number: the To user, normalised; no display: user None.
    let mut h = H::new();
    let inv = trunk_invite("in3");
    h.feed(&inv, Side::Trunk, 0);
    let mut ok = resp(&inv, 200, Some("x"));
    ok.contact = Some(p("sip:bob@10.0.0.5", None));
    let e = h.feed(&ok, Side::Inside, 1);
    assert_eq!(e[0].answering_number.as_deref(), Some("4930555100"));
    assert_eq!(e[0].user, None);

    // Contact with a +number.
    let mut h = H::new();
    let inv = trunk_invite("in4");
    h.feed(&inv, Side::Trunk, 0);
    let mut ok = resp(&inv, 200, Some("x"));
    ok.contact = Some(p("sip:+4930555101@10.0.0.5", None));
    let e = h.feed(&ok, Side::Inside, 1);
    assert_eq!(e[0].answering_number.as_deref(), Some("4930555101"));
}

fn failed_call(status: u16, cancel_first: bool) -> Vec<CallEvent> {
    let mut h = H::new();
    let inv = phone_invite("f");
    let mut all = h.feed(&inv, Side::Inside, 0);
    h.quiet(&resp(&inv, 180, Some("t")), Side::Trunk, 1);
    if cancel_first {
        let cancel = caller_req(&inv, "CANCEL", 1, None);
        h.quiet(&cancel, Side::Inside, 4);
        h.quiet(&resp(&cancel, 200, Some("t")), Side::Trunk, 4);
    }
    let fin = resp(&inv, status, Some("t"));
    all.extend(h.feed(&fin, Side::Trunk, 5));
    h.quiet(&caller_req(&inv, "ACK", 1, Some("t")), Side::Inside, 5);
    h.quiet(&fin, Side::Trunk, 6);
    all
}

#[test]
fn final_responses_give_their_cause() {
    let h = H::new();
    for (status, cancel, cause) in [
        (487, true, Cause::Cancel),
        (487, false, Cause::Cancel),
        (486, true, Cause::Cancel),
        (486, false, Cause::Busy),
        (600, false, Cause::Busy),
        (404, false, Cause::NotFound),
        (480, false, Cause::NotFound),
        (603, false, Cause::NoAnswer),
        (408, false, Cause::NoAnswer),
        (302, false, Cause::Forwarded),
        (503, false, Cause::Congestion),
        (403, false, Cause::Congestion),
    ] {
        let got = failed_call(status, cancel);
        assert_eq!(got.len(), 2, "{status}: {got:?}");
        assert_eq!(got[0].kind, EventKind::NewCall);
        let mut want = hangup(&h, 5, "f", Direction::Out, "201", "4930123456", cause);
        want.at = got[1].at; // each run has its own t0
        assert_eq!(got[1], want, "{status} cancel={cancel}");
    }
}

#[test]
fn cancel_without_final_answer_ends_after_linger() {
    let mut h = H::new();
    let inv = phone_invite("cx");
    h.feed(&inv, Side::Inside, 0);
    h.quiet(&caller_req(&inv, "CANCEL", 1, None), Side::Inside, 10);
    assert_eq!(h.t.poll_timeout(), Some(h.at(42)));
    assert!(h.t.handle_timeout(h.at(41)).is_empty());
    assert_eq!(
        h.t.handle_timeout(h.at(50)),
        vec![hangup(
            &h,
            42,
            "cx",
            Direction::Out,
            "201",
            "4930123456",
            Cause::Cancel
        )]
    );
    assert_eq!(h.t.stats().timed_out, 1);
}

#[test]
fn cancel_racing_with_200_is_answered() {
    let mut h = H::new();
    let inv = phone_invite("race");
    h.feed(&inv, Side::Inside, 0);
    h.quiet(&caller_req(&inv, "CANCEL", 1, None), Side::Inside, 10);
    let e = h.feed(&resp(&inv, 200, Some("t")), Side::Trunk, 10);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EventKind::Answer);
    // The CANCEL's transaction timeout no longer applies.
    assert!(h.t.handle_timeout(h.at(100)).is_empty());
    assert_eq!(
        h.feed(&caller_req(&inv, "BYE", 2, Some("t")), Side::Inside, 101),
        vec![hangup(
            &h,
            101,
            "race",
            Direction::Out,
            "201",
            "4930123456",
            Cause::NormalClearing
        )]
    );
}

#[test]
fn bye_before_answer_is_cancel() {
    let mut h = H::new();
    let inv = phone_invite("early");
    h.feed(&inv, Side::Inside, 0);
    h.quiet(&resp(&inv, 183, Some("t")), Side::Trunk, 1);
    assert_eq!(
        h.feed(&caller_req(&inv, "BYE", 2, Some("t")), Side::Inside, 3),
        vec![hangup(
            &h,
            3,
            "early",
            Direction::Out,
            "201",
            "4930123456",
            Cause::Cancel
        )]
    );
    // A late 200 changes nothing.
    h.quiet(&resp(&inv, 200, Some("t")), Side::Trunk, 4);
}

#[test]
fn challenge_then_credentials_is_one_call() {
    let mut h = H::new();
    let inv = phone_invite("auth");
    let first = h.feed(&inv, Side::Inside, 0);
    assert_eq!(first.len(), 1);
    h.quiet(&resp(&inv, 100, None), Side::Trunk, 0);
    let chal = resp(&inv, 407, Some("p1"));
    h.quiet(&chal, Side::Trunk, 0);
    assert_eq!(h.t.poll_timeout(), Some(h.at(32)));
    h.quiet(&caller_req(&inv, "ACK", 1, Some("p1")), Side::Inside, 0);
    h.quiet(&chal, Side::Trunk, 1); // retransmitted 407
    let inv2 = MsgView {
        cseq: 2,
        ..inv.clone()
    };
    h.quiet(&inv2, Side::Inside, 1);
    h.quiet(&inv2, Side::Inside, 2); // retransmission
    h.quiet(&resp(&inv2, 180, Some("t")), Side::Trunk, 2);
    assert!(
        h.t.handle_timeout(h.at(40)).is_empty(),
        "challenge timer cancelled"
    );
    assert_eq!(
        h.feed(&resp(&inv2, 200, Some("t")), Side::Trunk, 41),
        vec![ev(
            EventKind::Answer,
            &h,
            41,
            "auth",
            Direction::Out,
            "201",
            "4930123456"
        )]
    );
    assert_eq!(
        h.feed(&caller_req(&inv, "BYE", 3, Some("t")), Side::Inside, 50),
        vec![hangup(
            &h,
            50,
            "auth",
            Direction::Out,
            "201",
            "4930123456",
            Cause::NormalClearing
        )]
    );
    assert_eq!(h.t.stats().calls_seen, 1);
}

#[test]
fn challenge_never_retried_is_congestion() {
    let mut h = H::new();
    let inv = phone_invite("auth2");
    h.feed(&inv, Side::Inside, 0);
    h.quiet(&resp(&inv, 401, Some("p1")), Side::Trunk, 1);
    assert_eq!(h.t.poll_timeout(), Some(h.at(33)));
    assert!(h.t.handle_timeout(h.at(32)).is_empty());
    assert_eq!(
        h.t.handle_timeout(h.at(34)),
        vec![hangup(
            &h,
            33,
            "auth2",
            Direction::Out,
            "201",
            "4930123456",
            Cause::Congestion
        )]
    );
    // Now lingering; an INVITE with a higher CSeq after the wait is a new call "-2".
    let late = MsgView {
        cseq: 2,
        ..inv.clone()
    };
    let e = h.feed(&late, Side::Inside, 35);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].call_id, "auth2-2");
    assert_eq!(e[0].sip_call_id, "auth2");
}

#[test]
fn timers_run_when_the_next_message_arrives() {
    // Nobody called handle_timeout: the next message runs the due timer first.
    let mut h = H::new();
    let inv = phone_invite("lazy");
    h.feed(&inv, Side::Inside, 0);
    h.quiet(&resp(&inv, 407, Some("p")), Side::Trunk, 0);
    let inv2 = MsgView {
        cseq: 2,
        ..inv.clone()
    };
    let e = h.feed(&inv2, Side::Inside, 100);
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0],
        hangup(
            &h,
            32,
            "lazy",
            Direction::Out,
            "201",
            "4930123456",
            Cause::Congestion
        )
    );
    assert_eq!(e[1].kind, EventKind::NewCall);
    assert_eq!(e[1].call_id, "lazy-2");
}

fn one_leg_flow(cid: &str) -> Vec<(MsgView, Side)> {
    let inv = trunk_invite(cid);
    let mut ok = resp(&inv, 200, Some("ph"));
    ok.contact = Some(p("sip:201@10.0.0.5", None));
    vec![
        (inv.clone(), Side::Trunk),
        (resp(&inv, 100, None), Side::Inside),
        (resp(&inv, 180, Some("ph")), Side::Inside),
        (ok, Side::Inside),
        (caller_req(&inv, "ACK", 10, Some("ph")), Side::Trunk),
        (callee_req(&inv, "BYE", 1, "ph"), Side::Inside),
        (
            resp(&callee_req(&inv, "BYE", 1, "ph"), 200, None),
            Side::Trunk,
        ),
    ]
}

fn run(flow: &[(MsgView, Side)]) -> Vec<CallEvent> {
    let mut h = H::new();
    let mut out = Vec::new();
    for (v, side) in flow {
        out.extend(h.feed(v, *side, 0));
    }
    // Normalise timestamps: all messages at t0 of their own run.
    for e in &mut out {
        e.at = h.t0;
    }
    out
}

fn strip_at(mut v: Vec<CallEvent>, at: Instant) -> Vec<CallEvent> {
    for e in &mut v {
        e.at = at;
    }
    v
}

#[test]
fn retransmissions_and_both_legs_give_the_same_events() {
    let one = one_leg_flow("legs");
    let base = run(&one);
    assert_eq!(
        base.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::NewCall, EventKind::Answer, EventKind::Hangup]
    );
    assert_eq!(base[2].cause, Some(Cause::NormalClearing));
    assert_eq!(base[2].answering_number.as_deref(), Some("201"));

    // Every message retransmitted.
    let doubled: Vec<_> = one.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
    let t = base[0].at;
    assert_eq!(strip_at(run(&doubled), t), base);

    // A capture on both legs of the proxy: each message twice, the second copy from the
    // other side, with a rewritten From user (same tags, same CSeq).
    let both: Vec<_> = one
        .iter()
        .flat_map(|(v, side)| {
            let mut copy = v.clone();
            if copy.from.user.as_deref() == Some("+491701234567") {
                copy.from = p("sip:01701234567@proxy.example", None);
            }
            let other = match side {
                Side::Inside => Side::Trunk,
                Side::Trunk => Side::Inside,
            };
            [(v.clone(), *side), (copy, other)]
        })
        .collect();
    assert_eq!(strip_at(run(&both), t), base);
}

#[test]
fn call_id_reuse_gets_suffix() {
    let mut h = H::new();
    let inv = phone_invite("dup");
    assert_eq!(h.feed(&inv, Side::Inside, 0)[0].call_id, "dup");
    // Another From tag with the same Call-ID while the first call rings.
    let other = MsgView {
        from_tag: Some("f2".into()),
        ..inv.clone()
    };
    let e = h.feed(&other, Side::Inside, 1);
    assert_eq!(e[0].call_id, "dup-2");
    assert_eq!(h.t.call_info("dup", "f2").unwrap().call_id, "dup-2");
    assert_eq!(h.t.call_info("dup", "f1").unwrap().call_id, "dup");
    // Each call's responses go to its own call.
    assert_eq!(
        h.feed(&resp(&other, 486, Some("x")), Side::Trunk, 2),
        vec![hangup(
            &h,
            2,
            "dup",
            Direction::Out,
            "201",
            "4930123456",
            Cause::Busy
        )]
        .into_iter()
        .map(|mut e| {
            e.call_id = "dup-2".into();
            e
        })
        .collect::<Vec<_>>()
    );
    let e = h.feed(&resp(&inv, 404, Some("y")), Side::Trunk, 3);
    assert_eq!(
        (e[0].call_id.as_str(), e[0].cause),
        ("dup", Some(Cause::NotFound))
    );
    // Both ended and freed; a later call with the same Call-ID and tag still counts on.
    assert!(h.t.handle_timeout(h.at(1000)).is_empty());
    assert_eq!(h.t.stats().tracked_calls, 0);
    let again = MsgView {
        cseq: 5,
        ..inv.clone()
    };
    assert_eq!(h.feed(&again, Side::Inside, 1001)[0].call_id, "dup-3");
    // A retransmission of the original INVITE is absorbed by the new call.
    h.quiet(&inv, Side::Inside, 1002);
    // Old BYE of the first call (lower CSeq) does not end the new call.
    h.quiet(&caller_req(&inv, "BYE", 2, Some("y")), Side::Inside, 1003);
    assert!(!h.t.call_info("dup", "f1").unwrap().ended);
}

#[test]
fn call_id_counts_forgotten_after_max_call_duration() {
    let mut h = H::with(TrackerConfig {
        max_call_duration: Duration::from_secs(100),
        ..TrackerConfig::default()
    });
    let inv = phone_invite("old");
    h.feed(&inv, Side::Inside, 0);
    h.feed(&resp(&inv, 486, Some("t")), Side::Trunk, 1);
    h.t.handle_timeout(h.at(33)); // freed at 33
    let again = MsgView {
        cseq: 2,
        ..inv.clone()
    };
    assert_eq!(h.feed(&again, Side::Inside, 500)[0].call_id, "old");
}

#[test]
fn non_call_requests_give_no_events() {
    let mut h = H::new();
    let inv = phone_invite("dlg");
    h.feed(&inv, Side::Inside, 0);
    h.feed(&resp(&inv, 200, Some("t")), Side::Trunk, 1);
    // re-INVITE (with To tag) from either side, its 200 and ACK.
    let reinv = caller_req(&inv, "INVITE", 2, Some("t"));
    h.quiet(&reinv, Side::Inside, 2);
    h.quiet(&resp(&reinv, 200, None), Side::Trunk, 2);
    let reinv2 = callee_req(&inv, "INVITE", 7, "t");
    h.quiet(&reinv2, Side::Trunk, 3);
    h.quiet(&resp(&reinv2, 200, None), Side::Inside, 3);
    for m in [
        "UPDATE", "INFO", "PRACK", "REFER", "NOTIFY", "MESSAGE", "OPTIONS",
    ] {
        let r = caller_req(&inv, m, 3, Some("t"));
        h.quiet(&r, Side::Inside, 4);
        h.quiet(&resp(&r, 200, None), Side::Trunk, 4);
        h.quiet(&resp(&r, 486, None), Side::Trunk, 4);
    }
    // Out-of-dialog OPTIONS / REGISTER / SUBSCRIBE.
    for m in ["OPTIONS", "REGISTER", "SUBSCRIBE"] {
        let r = MsgView {
            method: Some(m.into()),
            cseq_method: m.into(),
            call_id: format!("{m}-1"),
            ..phone_invite("x")
        };
        h.quiet(&r, Side::Inside, 5);
        h.quiet(&resp(&r, 401, Some("z")), Side::Trunk, 5);
        h.quiet(&resp(&r, 200, Some("z")), Side::Trunk, 5);
    }
    // Unknown calls.
    h.quiet(&resp(&phone_invite("nope"), 200, Some("t")), Side::Trunk, 6);
    h.quiet(
        &caller_req(&phone_invite("nope"), "BYE", 2, Some("t")),
        Side::Trunk,
        6,
    );
    h.quiet(
        &caller_req(&phone_invite("nope"), "CANCEL", 1, None),
        Side::Trunk,
        6,
    );
    // The 3 above plus the 200 to the callee's re-INVITE (its From tag is no call's).
    assert_eq!(h.t.stats().unknown_call_messages, 4);
    assert_eq!(h.t.stats().calls_seen, 1);
    assert!(!h.t.call_info("dlg", "f1").unwrap().ended);
}

#[test]
fn forking_gives_one_answer() {
    let mut h = H::new();
    let inv = trunk_invite("fork");
    h.feed(&inv, Side::Trunk, 0);
    h.quiet(&resp(&inv, 180, Some("a")), Side::Inside, 1);
    h.quiet(&resp(&inv, 180, Some("b")), Side::Inside, 1);
    let e = h.feed(&resp(&inv, 200, Some("a")), Side::Inside, 2);
    assert_eq!(e.len(), 1);
    h.quiet(&resp(&inv, 200, Some("b")), Side::Inside, 2);
    // The caller ends the second branch: not the call.
    h.quiet(&caller_req(&inv, "BYE", 11, Some("b")), Side::Trunk, 3);
    // The BYE from branch b (callee side) neither.
    h.quiet(&callee_req(&inv, "BYE", 1, "b"), Side::Inside, 3);
    let e = h.feed(&callee_req(&inv, "BYE", 1, "a"), Side::Inside, 9);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].cause, Some(Cause::NormalClearing));
}

#[test]
fn max_call_duration_closes_calls() {
    let mut h = H::new();
    let a = phone_invite("long");
    let b = trunk_invite("ring");
    h.feed(&a, Side::Inside, 0);
    h.feed(&resp(&a, 200, Some("t")), Side::Trunk, 10);
    h.feed(&b, Side::Trunk, 20);
    let four_h = 4 * 3600;
    assert_eq!(h.t.poll_timeout(), Some(h.at(10 + four_h)));
    assert!(h.t.handle_timeout(h.at(9 + four_h)).is_empty());
    let mut ring = hangup(
        &h,
        20 + four_h,
        "ring",
        Direction::In,
        "491701234567",
        "4930555100",
        Cause::NoAnswer,
    );
    ring.answering_number = None;
    assert_eq!(
        h.t.handle_timeout(h.at(30 + four_h)),
        vec![
            hangup(
                &h,
                10 + four_h,
                "long",
                Direction::Out,
                "201",
                "4930123456",
                Cause::NormalClearing
            ),
            ring
        ]
    );
    assert_eq!(h.t.stats().timed_out, 2);
    assert_eq!(h.t.stats().active_calls, 0);
    // A BYE arriving later changes nothing.
    h.quiet(
        &caller_req(&a, "BYE", 2, Some("t")),
        Side::Inside,
        31 + four_h,
    );
}

#[test]
fn table_full_counts_untracked_and_evicts_lingering() {
    let mut h = H::with(TrackerConfig {
        max_calls: 2,
        ..TrackerConfig::default()
    });
    let c1 = phone_invite("t1");
    let c2 = phone_invite("t2");
    let c3 = phone_invite("t3");
    assert_eq!(h.feed(&c1, Side::Inside, 0).len(), 1);
    assert_eq!(h.feed(&c2, Side::Inside, 0).len(), 1);
    h.quiet(&c3, Side::Inside, 1);
    h.quiet(&resp(&c3, 200, Some("x")), Side::Trunk, 1);
    let st = h.t.stats();
    assert_eq!(
        (st.untracked_table_full, st.tracked_calls, st.calls_seen),
        (1, 2, 2)
    );
    // End t1: it lingers; the next new call evicts it.
    assert_eq!(h.feed(&resp(&c1, 486, Some("x")), Side::Trunk, 2).len(), 1);
    let c4 = phone_invite("t4");
    assert_eq!(h.feed(&c4, Side::Inside, 3).len(), 1);
    let st = h.t.stats();
    assert_eq!(
        (st.lingering_evicted, st.tracked_calls, st.active_calls),
        (1, 2, 2)
    );
    assert!(h.t.call_info("t1", "f1").is_none());

    let mut z = H::with(TrackerConfig {
        max_calls: 0,
        ..TrackerConfig::default()
    });
    z.quiet(&c1, Side::Inside, 0);
    assert_eq!(z.t.stats().untracked_table_full, 1);
}

#[test]
fn anonymous_and_identity() {
    let mut h = H::new();
    // Privacy: id with a PAI: anonymous.
    let mut inv = trunk_invite("priv");
    inv.pai = Some(p("sip:+491701234567@trunk.example", None));
    inv.privacy_id = true;
    assert_eq!(h.feed(&inv, Side::Trunk, 0)[0].from, "anonymous");
    // From anonymous.invalid.
    let mut inv = trunk_invite("anon2");
    inv.from = p("sip:anonymous@anonymous.invalid", Some("Anonymous"));
    assert_eq!(h.feed(&inv, Side::Trunk, 0)[0].from, "anonymous");
    let mut inv = trunk_invite("anon3");
    inv.from = p("sip:+4930999@trunk.example", Some("anonymous"));
    assert_eq!(h.feed(&inv, Side::Trunk, 0)[0].from, "anonymous");
    let mut inv = trunk_invite("anon4");
    inv.from = p("sip:ANONYMOUS@trunk.example", None);
    assert_eq!(h.feed(&inv, Side::Trunk, 0)[0].from, "anonymous");
    // PAI preferred over From; out: user from From display, else PAI display.
    let mut inv = phone_invite("pai");
    inv.pai = Some(p("tel:+49-30-555-100", Some("Front Desk")));
    let e = h.feed(&inv, Side::Inside, 0);
    assert_eq!(
        (e[0].from.as_str(), e[0].user.as_deref()),
        ("4930555100", Some("Alice"))
    );
    let mut inv = phone_invite("pai2");
    inv.pai = Some(p("sip:0305551@pbx.example", Some("Front Desk")));
    inv.from = p("sip:201@pbx.example", None);
    let e = h.feed(&inv, Side::Inside, 0);
    assert_eq!(
        (e[0].from.as_str(), e[0].user.as_deref()),
        ("49305551", Some("Front Desk"))
    );
    // In: user is the To display; none -> None. tel: Request-URI.
    let mut inv = trunk_invite("tel");
    inv.to = p("sip:+4930555100@trunk.example", None);
    inv.ruri_user = uri_user_host("tel:+49-30-555-199;phone-context=x").0;
    let e = h.feed(&inv, Side::Trunk, 0);
    assert_eq!(
        (e[0].to.as_str(), e[0].user.as_deref()),
        ("4930555199", None)
    );
    // No Request-URI user: the To user.
    let mut inv = trunk_invite("nouser");
    inv.ruri_user = None;
    assert_eq!(h.feed(&inv, Side::Trunk, 0)[0].to, "4930555100");
}

#[test]
fn shutdown_hangs_up_open_calls() {
    let mut h = H::new();
    let a = trunk_invite("sa");
    let b = phone_invite("sb");
    let c = phone_invite("sc");
    h.feed(&a, Side::Trunk, 0);
    let mut ok = resp(&a, 200, Some("t"));
    ok.contact = Some(p("sip:205@10.0.0.9", None));
    h.feed(&ok, Side::Inside, 1);
    h.feed(&b, Side::Inside, 2);
    h.feed(&c, Side::Inside, 2);
    h.feed(&resp(&c, 486, Some("t")), Side::Trunk, 3);
    let mut ha = hangup(
        &h,
        9,
        "sa",
        Direction::In,
        "491701234567",
        "4930555100",
        Cause::NormalClearing,
    );
    ha.answering_number = Some("205".into());
    assert_eq!(
        h.t.shutdown(h.at(9)),
        vec![
            ha,
            hangup(
                &h,
                9,
                "sb",
                Direction::Out,
                "201",
                "4930123456",
                Cause::Cancel
            )
        ]
    );
    assert!(h.t.shutdown(h.at(10)).is_empty());
    assert_eq!(h.t.stats().active_calls, 0);
}

#[test]
fn deterministic_across_runs() {
    let flow: Vec<_> = ["d1", "d2", "d1"]
        .iter()
        .enumerate()
        .flat_map(|(i, cid)| {
            let inv = MsgView {
                cseq: 1 + i as u32,
                ..phone_invite(cid)
            };
            vec![
                (inv.clone(), Side::Inside),
                (resp(&inv, 503, Some("x")), Side::Trunk),
            ]
        })
        .collect();
    let a = run(&flow);
    let b = run(&flow);
    let ids: Vec<_> = a.iter().map(|e| e.call_id.as_str()).collect();
    assert_eq!(ids, ["d1", "d1", "d2", "d2", "d1-2", "d1-2"]);
    assert_eq!(strip_at(b, a[0].at), a);
}

#[test]
fn huge_durations_do_not_panic() {
    let mut h = H::with(TrackerConfig {
        max_call_duration: Duration::MAX,
        challenge_wait: Duration::MAX,
        linger: Duration::MAX,
        ..TrackerConfig::default()
    });
    let inv = phone_invite("big");
    h.feed(&inv, Side::Inside, 0);
    h.feed(&resp(&inv, 407, Some("x")), Side::Trunk, 0);
    h.feed(&caller_req(&inv, "CANCEL", 1, None), Side::Inside, 0);
    let e = h.t.shutdown(h.at(1));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].cause, Some(Cause::Cancel));
}

// ----- inbound routes and the phonebook -----

fn routed_config() -> TrackerConfig {
    let cc = Some("49");
    let route = |n: &str, t: &str, q: Option<&str>| {
        InboundRoute::new(
            NumberPattern::parse(n, cc, 6).unwrap(),
            t,
            q.map(Into::into),
            cc,
            6,
        )
    };
    TrackerConfig {
        country_code: Some("49".into()),
        routes: vec![
            route("4930555100", "sip:201@10.0.0.21:5060", Some("support")),
            // never reached for 4930555100: the first match wins
            route("4930555*", "sip:202@10.0.0.22", Some("sales")),
        ],
        phonebook: [
            ("201", "Alice Example"),
            ("202", "Bob Example"),
            ("4930555177", "Front Desk"),
            ("491701234567", "Carl Caller"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..TrackerConfig::default()
    }
}

/// A routed inbound call: `queue` of the first matching route, `user` the
/// route target's person (not the To display), `answeringNumber` the target
/// user when the 2xx names nobody, and `user` on answer from the phonebook.
#[test]
fn routed_inbound_call_has_queue_and_phonebook_users() {
    let mut h = H::with(routed_config());
    let inv = trunk_invite("r1");
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        0,
        "r1",
        Direction::In,
        "491701234567",
        "4930555100",
    );
    nc.user = Some("Alice Example".into());
    nc.queue = Some("support".into());
    assert_eq!(h.feed(&inv, Side::Trunk, 0), vec![nc]);
    // the 2xx names nobody (Contact without a number): the target answered
    let mut ok = resp(&inv, 200, Some("ph1"));
    ok.contact = Some(p("sip:10.0.0.21:5060", None));
    let mut ans = ev(
        EventKind::Answer,
        &h,
        3,
        "r1",
        Direction::In,
        "491701234567",
        "4930555100",
    );
    ans.user = Some("Alice Example".into());
    ans.answering_number = Some("201".into());
    assert_eq!(h.feed(&ok, Side::Inside, 3), vec![ans]);
    let mut hu = hangup(
        &h,
        9,
        "r1",
        Direction::In,
        "491701234567",
        "4930555100",
        Cause::NormalClearing,
    );
    hu.answering_number = Some("201".into());
    assert_eq!(
        h.feed(&caller_req(&inv, "BYE", 11, Some("ph1")), Side::Trunk, 9),
        vec![hu]
    );
}

#[test]
fn prefix_route_and_answer_by_someone_else() {
    let mut h = H::with(routed_config());
    let mut inv = trunk_invite("r2");
    inv.ruri_user = Some("+4930555177".into());
    inv.to = p("sip:+4930555177@trunk.example", Some("Shown"));
    let e = h.feed(&inv, Side::Trunk, 0);
    // the prefix route (sales): the target user 202 is in the phonebook
    assert_eq!(e[0].queue.as_deref(), Some("sales"));
    assert_eq!(e[0].user.as_deref(), Some("Bob Example"));
    assert_eq!(e[0].to, "4930555177");
    // the 2xx names 201 (PAI): that is who answered, by the phonebook
    let mut ok = resp(&inv, 200, Some("x"));
    ok.pai = Some(p("sip:201@pbx.example", Some("Display Name")));
    let e = h.feed(&ok, Side::Inside, 1);
    assert_eq!(e[0].answering_number.as_deref(), Some("201"));
    assert_eq!(e[0].user.as_deref(), Some("Alice Example"));
    assert_eq!(e[0].queue, None);
}

#[test]
fn unrouted_inbound_uses_the_phonebook_by_dialled_number_then_display() {
    let mut cfg = routed_config();
    cfg.routes.clear();
    let mut h = H::with(cfg);
    let mut inv = trunk_invite("r3");
    inv.ruri_user = Some("030555177".into());
    let e = h.feed(&inv, Side::Trunk, 0);
    assert_eq!(
        (e[0].to.as_str(), e[0].queue.as_deref()),
        ("4930555177", None)
    );
    assert_eq!(e[0].user.as_deref(), Some("Front Desk"));
    // not in the phonebook: the To display, as without a phonebook
    let inv = trunk_invite("r4");
    let e = h.feed(&inv, Side::Trunk, 0);
    assert_eq!(e[0].user.as_deref(), Some("Support"));
    assert_eq!(e[0].queue, None);
}

#[test]
fn outbound_user_is_the_callers_phonebook_person() {
    let mut h = H::with(routed_config());
    // the caller 201 ("Alice" on the phone) is Alice Example in the phonebook
    let e = h.feed(&phone_invite("o1"), Side::Inside, 0);
    assert_eq!(e[0].direction, Direction::Out);
    assert_eq!(e[0].user.as_deref(), Some("Alice Example"));
    // an outbound call never gets a route's queue, even to a routed number
    let mut inv = phone_invite("o2");
    inv.ruri_user = Some("4930555100".into());
    inv.from = p("sip:299@pbx.example", Some("Zed"));
    let e = h.feed(&inv, Side::Inside, 0);
    assert_eq!(e[0].queue, None);
    // not in the phonebook: the display name, as before
    assert_eq!(e[0].user.as_deref(), Some("Zed"));
    // anonymous callers are never looked up
    let mut inv = phone_invite("o3");
    inv.from = p("sip:anonymous@anonymous.invalid", None);
    let e = h.feed(&inv, Side::Inside, 0);
    assert_eq!(
        (e[0].from.as_str(), e[0].user.as_deref()),
        ("anonymous", None)
    );
}

#[test]
fn number_patterns_and_first_match() {
    let cc = Some("49");
    assert_eq!(
        NumberPattern::parse("+49 (30) 123-456", cc, 6),
        Ok(NumberPattern::Exact("4930123456".into()))
    );
    assert_eq!(
        NumberPattern::parse("030123457*", cc, 6),
        Ok(NumberPattern::Prefix("4930123457".into()))
    );
    assert_eq!(
        NumberPattern::parse("201", cc, 6).unwrap().to_string(),
        "201"
    );
    assert_eq!(
        NumberPattern::parse("49*", cc, 6).unwrap().to_string(),
        "49*"
    );
    for bad in ["", "*", "alice", "12*3", "anonymous*"] {
        assert!(NumberPattern::parse(bad, cc, 6).is_err(), "{bad:?}");
    }
    let p = NumberPattern::parse("4930*", cc, 6).unwrap();
    assert!(p.matches("4930") && p.matches("4930123") && !p.matches("493"));
    let e = NumberPattern::parse("4930", cc, 6).unwrap();
    assert!(e.matches("4930") && !e.matches("49301"));
    let routes = routed_config().routes;
    assert_eq!(
        match_route(&routes, "4930555100").unwrap().target,
        "sip:201@10.0.0.21:5060"
    );
    assert_eq!(
        match_route(&routes, "4930555101").unwrap().target,
        "sip:202@10.0.0.22"
    );
    assert_eq!(match_route(&routes, "4930666"), None);
    assert_eq!(match_route(&routes, ""), None);
    assert_eq!(routes[1].target_user.as_deref(), Some("202"));
}

mod transfer;

// ----- calls given back after a restart -----

fn restored(cid: &str, age_s: u64) -> RestoredCall {
    RestoredCall {
        call_id: cid.into(),
        sip_call_id: cid.into(),
        direction: Direction::In,
        from: "491701234567".into(),
        to: "4930123456".into(),
        answering_number: Some("201".into()),
        age: Duration::from_secs(age_s),
    }
}

#[test]
fn a_restored_call_ends_with_its_bye_from_either_side() {
    for (from_phone, side) in [(true, Side::Inside), (false, Side::Trunk)] {
        let mut h = H::new();
        assert!(h.t.restore(restored("r1", 60), h.at(0)));
        assert!(!h.t.restore(restored("r1", 60), h.at(0)), "tracked once");
        assert_eq!(h.t.stats().active_calls, 1);
        let inv = trunk_invite("r1");
        let bye = if from_phone {
            callee_req(&inv, "BYE", 7, "ph-tag")
        } else {
            caller_req(&inv, "BYE", 11, Some("ph-tag"))
        };
        let got = h.feed(&bye, side, 5);
        let mut want = hangup(
            &h,
            5,
            "r1",
            Direction::In,
            "491701234567",
            "4930123456",
            Cause::NormalClearing,
        );
        want.answering_number = Some("201".into());
        assert_eq!(got, vec![want]);
        h.quiet(&bye, side, 6);
        assert_eq!(h.t.stats().active_calls, 0);
    }
}

#[test]
fn a_restored_call_never_heard_of_again_ends_at_max_call_duration_from_its_newcall() {
    let mut h = H::with(TrackerConfig {
        country_code: Some("49".into()),
        max_call_duration: Duration::from_secs(100),
        ..TrackerConfig::default()
    });
    assert!(h.t.restore(restored("r2", 60), h.at(0)));
    assert!(h.t.handle_timeout(h.at(39)).is_empty());
    let got = h.t.handle_timeout(h.at(41));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].cause, got[0].at),
        (Some(Cause::NormalClearing), h.at(40))
    );
    // a BYE of another Call-ID ends nothing
    let mut h = H::new();
    assert!(h.t.restore(restored("r3", 0), h.at(0)));
    h.quiet(
        &caller_req(&trunk_invite("other"), "BYE", 2, Some("x")),
        Side::Trunk,
        1,
    );
}
