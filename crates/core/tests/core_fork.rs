//! Ring groups in the sans-IO core (issue 8, second step): an initial
//! INVITE from the trunk on a route with two targets is forked in parallel
//! (RFC 3261 16.7), one client transaction per target. The first 2xx goes
//! upstream and the other branch is CANCELled with the RFC 3326 Reason;
//! a late 2xx is relayed too; without a 2xx the best final response goes
//! upstream once (6xx at once); an upstream CANCEL cancels every branch;
//! Timer C runs per branch. Zammad sees one call: one newCall naming the
//! group, at most one answer, exactly one hangup. No sockets, no sleeping.

mod core_support;

use core_support::*;
use sipcti_core::{CoreConfig, CtiAnswer, Output, Transmit};
use sipcti_dialog::{InboundRoute, NumberPattern};
use sipcti_event::{Cause, Direction, EventKind};

const NUMBER: &str = "4930555000";
const A: &str = "10.0.0.21:5060";
const B: &str = "10.0.0.22:5070";
const A_URI: &str = "sip:201@10.0.0.21:5060";
const B_URI: &str = "sip:202@10.0.0.22:5070";
const REASON: &str = "Reason: SIP;cause=200;text=\"Call completed elsewhere\"";

/// The test configuration: 4930555000 rings 201 (Alice) and 202 (Bob).
fn group() -> CoreConfig {
    let mut c = config();
    c.tracker.country_code = Some("49".into());
    c.tracker.routes = vec![InboundRoute::group(
        NumberPattern::parse(NUMBER, Some("49"), 6).expect("route number"),
        &[A_URI, B_URI],
        Some("sales".into()),
        Some("49"),
        6,
    )];
    c.tracker.phonebook = [("201", "Alice Example"), ("202", "Bob Example")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c
}

/// The trunk's Via branch for the call `cid`.
fn trunk_branch(cid: &str) -> String {
    cid.split('@').next().unwrap_or("").to_string()
}

fn invite_in(cid: &str) -> Vec<u8> {
    let tb = trunk_branch(cid);
    sip(&format!(
        "INVITE sip:{NUMBER}@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-{tb}
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:{NUMBER}@192.0.2.10>
Call-ID: {cid}
CSeq: 10 INVITE
Content-Type: application/sdp
Content-Length: *

v=0
"
    ))
}

/// The INVITE as forwarded to `ruri` with our Via branch `br`.
fn invite_fwd(ruri: &str, br: &str, cid: &str) -> Vec<u8> {
    let tb = trunk_branch(cid);
    sip(&format!(
        "INVITE {ruri} SIP/2.0
Record-Route: <sip:192.0.2.10:5060;lr>
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-{tb}
Max-Forwards: 67
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:{NUMBER}@192.0.2.10>
Call-ID: {cid}
CSeq: 10 INVITE
Content-Type: application/sdp
Content-Length: *

v=0
"
    ))
}

/// A phone's response on our branch `br` (To tag `tag`, Contact without a
/// user: who answered is the branch's target).
fn resp(status: &str, br: &str, cid: &str, tag: &str, contact: &str) -> Vec<u8> {
    let tb = trunk_branch(cid);
    sip(&format!(
        "SIP/2.0 {status}
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-{tb}
Record-Route: <sip:192.0.2.10:5060;lr>
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:{NUMBER}@192.0.2.10>;tag={tag}
Call-ID: {cid}
CSeq: 10 INVITE
Contact: <sip:{contact}>
Content-Length: 0

"
    ))
}

/// `resp` as relayed upstream: our Via removed (RFC 3261 16.7 step 9).
fn up(r: &[u8]) -> Vec<u8> {
    let t = String::from_utf8(r.to_vec()).unwrap();
    let first_via = t.find("Via: ").unwrap();
    let end = first_via + t[first_via..].find("\r\n").unwrap() + 2;
    format!("{}{}", &t[..first_via], &t[end..]).into_bytes()
}

/// The CANCEL of branch `br` to `ruri`, with the RFC 3326 Reason or not.
fn cancel(ruri: &str, br: &str, cid: &str, reason: bool) -> Vec<u8> {
    let reason = if reason {
        format!("{REASON}\r\n")
    } else {
        String::new()
    };
    format!(
        "CANCEL {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={br}\r\nFrom: <sip:+4930999888@203.0.113.5>;tag=tr9\r\nTo: \"Sales\" <sip:{NUMBER}@192.0.2.10>\r\nCall-ID: {cid}\r\nCSeq: 10 CANCEL\r\nMax-Forwards: 70\r\n{reason}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// newCall's `user`, group and `queue`.
type NewCallFields = (Option<String>, Vec<String>, Option<String>);

/// Trunk INVITE in, Zammad Continue: the newCall event's (user, group,
/// queue) and the two branches' Via branch values (A, B).
fn fork_call(h: &mut H, cid: &str) -> (NewCallFields, String, String) {
    let o = h.udp(0, invite_in(cid), TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    let (tok, ev) = nc[0];
    assert_ev(
        ev,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        NUMBER,
        None,
    );
    let fields = (ev.user.clone(), ev.group.clone(), ev.queue.clone());
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    let (ba, bb) = (top_branch(&t[0].data), top_branch(&t[1].data));
    assert_tx(t[0], Udp, A, &invite_fwd(A_URI, &ba, cid));
    assert_tx(t[1], Udp, B, &invite_fwd(B_URI, &bb, cid));
    assert!(t[0].client_tx.is_some() && t[1].client_tx.is_some());
    assert_ne!(t[0].client_tx, t[1].client_tx);
    (fields, ba, bb)
}

/// The transmits of `o` as (destination, start line).
fn lines(o: &[Output]) -> Vec<(String, String)> {
    transmits(o)
        .into_iter()
        .map(|t| (t.dest.to_string(), start_line(&t.data)))
        .collect()
}

fn tx_to<'a>(o: &'a [Output], dest: &str) -> Vec<&'a Transmit> {
    transmits(o)
        .into_iter()
        .filter(|t| t.dest == target(dest))
        .collect()
}

fn kinds(o: &[Output]) -> Vec<(EventKind, Option<Cause>)> {
    events(o).iter().map(|e| (e.kind, e.cause)).collect()
}

fn s2(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn two_branches_with_their_own_branch_and_request_uri_one_newcall_naming_the_group() {
    let mut h = H::with(group());
    let ((user, group, queue), ba, bb) = fork_call(&mut h, "f1@203.0.113.5");
    assert!(ba.starts_with("z9hG4bKsc"), "{ba}");
    assert_eq!(bb, format!("{ba}.1"));
    assert_eq!(user.as_deref(), Some("Alice Example"));
    assert_eq!(group, vec!["Alice Example", "Bob Example"]);
    assert_eq!(queue.as_deref(), Some("sales"));
    assert_eq!(h.core.transactions(), (1, 2));
}

#[test]
fn first_2xx_goes_upstream_the_other_branch_gets_cancel_with_reason() {
    let mut h = H::with(group());
    let cid = "f2@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    // 100 absorbed, each 180 relayed
    let o = h.udp(50, resp("100 Trying", &ba, cid, "a1", "10.0.0.21:5060"), A);
    assert!(o.is_empty(), "{}", show(&o));
    let r = resp("180 Ringing", &ba, cid, "a1", "10.0.0.21:5060");
    let o = h.udp(100, &r, A);
    assert_tx(only_tx(&o), Udp, TRUNK, &up(&r));
    let r = resp("180 Ringing", &bb, cid, "b1", "10.0.0.22:5070");
    let o = h.udp(120, &r, B);
    assert_tx(only_tx(&o), Udp, TRUNK, &up(&r));
    // Bob answers: his 200 goes up, Alice's branch is cancelled with the Reason
    let ok = resp("200 OK", &bb, cid, "b1", "10.0.0.22:5070");
    let o = h.udp(3_000, &ok, B);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_tx(t[0], Udp, TRUNK, &up(&ok));
    assert_tx(t[1], Udp, A, &cancel(A_URI, &ba, cid, true));
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_eq!(
        (
            ev[0].kind,
            ev[0].answering_number.as_deref(),
            ev[0].user.as_deref()
        ),
        (EventKind::Answer, Some("202"), Some("Bob Example"))
    );
    // the CANCEL's 200 and Alice's 487: ACKed hop by hop, nothing upstream
    let c200 = String::from_utf8(resp("200 OK", &ba, cid, "a1", "10.0.0.21:5060"))
        .unwrap()
        .replace("CSeq: 10 INVITE", "CSeq: 10 CANCEL");
    let o = h.udp(3_010, c200.as_bytes(), A);
    assert!(o.is_empty(), "{}", show(&o));
    let o = h.udp(
        3_020,
        resp("487 Request Terminated", &ba, cid, "a1", "x"),
        A,
    );
    assert_eq!(lines(&o), vec![s2(A, &format!("ACK {A_URI} SIP/2.0"))]);
    assert!(events(&o).is_empty(), "{}", show(&o));
}

#[test]
fn a_branch_still_calling_gets_its_cancel_at_its_first_provisional() {
    let mut h = H::with(group());
    let cid = "f3@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    let ok = resp("200 OK", &bb, cid, "b1", "10.0.0.22:5070");
    let o = h.udp(1_000, &ok, B);
    // RFC 3261 9.1: no CANCEL before a provisional
    assert_eq!(lines(&o), vec![s2(TRUNK, "SIP/2.0 200 OK")]);
    let o = h.udp(1_100, resp("180 Ringing", &ba, cid, "a1", "x"), A);
    // the 180 is not relayed after the 2xx; the CANCEL carries the Reason
    assert_tx(only_tx(&o), Udp, A, &cancel(A_URI, &ba, cid, true));
}

#[test]
fn a_late_2xx_of_the_other_branch_is_relayed_and_zammad_sees_one_answer() {
    let mut h = H::with(group());
    let cid = "f4@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(100, resp("180 Ringing", &ba, cid, "a1", "x"), A);
    h.udp(100, resp("180 Ringing", &bb, cid, "b1", "x"), B);
    let ok_a = resp("200 OK", &ba, cid, "a1", "10.0.0.21:5060");
    let o = h.udp(2_000, &ok_a, A);
    assert_eq!(kinds(&o), vec![(EventKind::Answer, None)]);
    assert_eq!(events(&o)[0].answering_number.as_deref(), Some("201"));
    assert_tx(
        &tx_to(&o, B)[0].clone(),
        Udp,
        B,
        &cancel(B_URI, &bb, cid, true),
    );
    // Bob picked up before the CANCEL reached him: his 200 goes up too
    let ok_b = resp("200 OK", &bb, cid, "b1", "10.0.0.22:5070");
    let o = h.udp(2_010, &ok_b, B);
    assert_tx(only_tx(&o), Udp, TRUNK, &up(&ok_b));
    assert!(events(&o).is_empty(), "{}", show(&o));
}

#[test]
fn both_busy_one_486_goes_upstream_and_one_hangup_busy() {
    let mut h = H::with(group());
    let cid = "f5@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    let busy_a = resp("486 Busy Here", &ba, cid, "a1", "x");
    let o = h.udp(500, &busy_a, A);
    assert_eq!(lines(&o), vec![s2(A, &format!("ACK {A_URI} SIP/2.0"))]);
    assert!(events(&o).is_empty(), "{}", show(&o));
    let busy_b = resp("486 Busy Here", &bb, cid, "b1", "x");
    let o = h.udp(600, &busy_b, B);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), format!("ACK {B_URI} SIP/2.0"));
    // a tie keeps the first received: Alice's 486
    assert_tx(t[1], Udp, TRUNK, &up(&busy_a));
    assert_eq!(kinds(&o), vec![(EventKind::Hangup, Some(Cause::Busy))]);
    // a retransmitted 486 changes nothing upstream
    let o = h.udp(700, &busy_b, B);
    assert_eq!(lines(&o), vec![s2(B, &format!("ACK {B_URI} SIP/2.0"))]);
}

#[test]
fn busy_and_not_found_the_better_response_goes_upstream() {
    // 16.7 step 6 within 4xx (Kamailio's choice): the lowest code, 404
    let mut h = H::with(group());
    let cid = "f6@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(500, resp("486 Busy Here", &ba, cid, "a1", "x"), A);
    let nf = resp("404 Not Found", &bb, cid, "b1", "x");
    let o = h.udp(600, &nf, B);
    assert_tx(&tx_to(&o, TRUNK)[0].clone(), Udp, TRUNK, &up(&nf));
    assert_eq!(kinds(&o), vec![(EventKind::Hangup, Some(Cause::NotFound))]);
    // 401/415/420/484 before any other 4xx; 3xx before 4xx
    let mut h = H::with(group());
    let cid = "f6b@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(500, resp("404 Not Found", &ba, cid, "a1", "x"), A);
    let o = h.udp(600, resp("484 Address Incomplete", &bb, cid, "b1", "x"), B);
    assert_eq!(
        start_line(&tx_to(&o, TRUNK)[0].data),
        "SIP/2.0 484 Address Incomplete"
    );
    let mut h = H::with(group());
    let cid = "f6c@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(500, resp("302 Moved Temporarily", &ba, cid, "a1", "x"), A);
    let o = h.udp(600, resp("404 Not Found", &bb, cid, "b1", "x"), B);
    assert_eq!(
        start_line(&tx_to(&o, TRUNK)[0].data),
        "SIP/2.0 302 Moved Temporarily"
    );
}

#[test]
fn a_503_chosen_becomes_the_proxys_500() {
    let mut h = H::with(group());
    let cid = "f6d@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(500, resp("503 Service Unavailable", &ba, cid, "a1", "x"), A);
    let o = h.udp(600, resp("503 Service Unavailable", &bb, cid, "b1", "x"), B);
    assert_eq!(
        start_line(&tx_to(&o, TRUNK)[0].data),
        "SIP/2.0 500 Server Internal Error"
    );
    assert_eq!(
        kinds(&o),
        vec![(EventKind::Hangup, Some(Cause::Congestion))]
    );
}

#[test]
fn a_603_ends_the_fork_at_once_and_cancels_the_other_branch() {
    let mut h = H::with(group());
    let cid = "f7@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(100, resp("180 Ringing", &ba, cid, "a1", "x"), A);
    let dec = resp("603 Decline", &bb, cid, "b1", "x");
    let o = h.udp(500, &dec, B);
    let t = transmits(&o);
    assert_eq!(t.len(), 3, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), format!("ACK {B_URI} SIP/2.0"));
    assert_tx(t[1], Udp, A, &cancel(A_URI, &ba, cid, false));
    assert_tx(t[2], Udp, TRUNK, &up(&dec));
    assert_eq!(kinds(&o), vec![(EventKind::Hangup, Some(Cause::NoAnswer))]);
    // Alice's 487 is ACKed and absorbed
    let o = h.udp(600, resp("487 Request Terminated", &ba, cid, "a1", "x"), A);
    assert_eq!(lines(&o), vec![s2(A, &format!("ACK {A_URI} SIP/2.0"))]);
    assert!(events(&o).is_empty());
}

#[test]
fn an_upstream_cancel_cancels_every_branch_and_one_487_goes_up() {
    let mut h = H::with(group());
    let cid = "f8@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(100, resp("180 Ringing", &ba, cid, "a1", "x"), A);
    h.udp(100, resp("180 Ringing", &bb, cid, "b1", "x"), B);
    let tb = trunk_branch(cid);
    let c = sip(&format!(
        "CANCEL sip:{NUMBER}@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-{tb}
Max-Forwards: 70
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:{NUMBER}@192.0.2.10>
Call-ID: {cid}
CSeq: 10 CANCEL
Content-Length: 0

"
    ));
    let o = h.udp(4_000, &c, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 3, "{}", show(&o));
    assert_eq!(
        (t[0].dest.clone(), start_line(&t[0].data)),
        (target(TRUNK), "SIP/2.0 200 OK".to_string())
    );
    assert_tx(t[1], Udp, A, &cancel(A_URI, &ba, cid, false));
    assert_tx(t[2], Udp, B, &cancel(B_URI, &bb, cid, false));
    let r = resp("487 Request Terminated", &ba, cid, "a1", "x");
    let o = h.udp(4_100, &r, A);
    assert_eq!(lines(&o), vec![s2(A, &format!("ACK {A_URI} SIP/2.0"))]);
    let o = h.udp(
        4_200,
        resp("487 Request Terminated", &bb, cid, "b1", "x"),
        B,
    );
    assert_tx(&tx_to(&o, TRUNK)[0].clone(), Udp, TRUNK, &up(&r));
    assert_eq!(kinds(&o), vec![(EventKind::Hangup, Some(Cause::Cancel))]);
}

#[test]
fn timer_c_runs_per_branch() {
    let mut h = H::with(group());
    let cid = "f9@203.0.113.5";
    let (_, ba, bb) = fork_call(&mut h, cid);
    h.udp(100, resp("180 Ringing", &ba, cid, "a1", "x"), A);
    h.udp(100, resp("180 Ringing", &bb, cid, "b1", "x"), B);
    // Bob's phone rings again at 100 s: his Timer C restarts, Alice's does not
    h.udp(100_000, resp("180 Ringing", &bb, cid, "b1", "x"), B);
    let o = h.timers_until(180_400);
    // Alice's branch (Timer C at 180.1 s) is cancelled, nothing goes upstream
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_tx(t[0], Udp, A, &cancel(A_URI, &ba, cid, false));
    assert!(events(&o).is_empty(), "{}", show(&o));
    // her 487 is absorbed: the branch already timed out (408)
    let o = h.udp(
        180_450,
        resp("487 Request Terminated", &ba, cid, "a1", "x"),
        A,
    );
    assert_eq!(lines(&o), vec![s2(A, &format!("ACK {A_URI} SIP/2.0"))]);
    // Bob's Timer C (280 s) ends the call: 408 of the proxy's own goes up
    let o = h.timers_until(280_300);
    let up: Vec<_> = o
        .iter()
        .filter_map(|x| match x {
            Output::Transmit(t) if t.dest == target(TRUNK) => Some(start_line(&t.data)),
            _ => None,
        })
        .collect();
    assert_eq!(
        up,
        vec!["SIP/2.0 408 Request Timeout".to_string()],
        "{}",
        show(&o)
    );
    assert_eq!(kinds(&o), vec![(EventKind::Hangup, Some(Cause::NoAnswer))]);
    assert_eq!(tx_to(&o, B).len(), 1, "{}", show(&o));
}
