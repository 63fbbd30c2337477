//! Deterministic tests of the sans-IO proxy core (RFC 3261 sections 16 and
//! 17): messages in with a fake clock, exact messages and CTI events out.
//! No sockets, no sleeping.

mod core_support;

use core_support::*;
use sipcti_core::{CallId, CtiAnswer, Output};
use sipcti_event::{Cause, Direction, EventKind};

// ------------------------------------------------------------- messages

const PHONE_VIA: &str = "SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport";
const PHONE_VIA_RCVD: &str =
    "SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport=5062;received=10.0.0.20";
const FROM_PHONE: &str = "\"Alice\" <sip:201@192.0.2.10>;tag=ph1";
const TO_OUT: &str = "<sip:0301234567@192.0.2.10>";
const CID_OUT: &str = "out1@10.0.0.20";

/// The phone's outbound INVITE (Request-URI names the proxy).
fn invite_out() -> Vec<u8> {
    sip("INVITE sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062>
P-Asserted-Identity: \"Alice\" <sip:201@192.0.2.10>
Content-Type: application/sdp
Content-Length: *

v=0
o=- 1 1 IN IP4 10.0.0.20
")
}

/// `invite_out` as the proxy must forward it to the trunk with `branch`
/// and caller user `user` (Request-URI toward the trunk host).
fn invite_out_fwd(branch: &str, user: &str) -> Vec<u8> {
    sip(&format!(
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0
Record-Route: <sip:192.0.2.10:5060;lr>
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport=5062;received=10.0.0.20
Max-Forwards: 69
From: \"Alice\" <sip:{user}@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062>
P-Asserted-Identity: \"Alice\" <sip:{user}@192.0.2.10>
Content-Type: application/sdp
Content-Length: *

v=0
o=- 1 1 IN IP4 10.0.0.20
"
    ))
}

/// A response of the trunk to the forwarded outbound INVITE (`cseq` e.g.
/// `1 INVITE`), with the phone's identity shown as `user`.
fn trunk_resp(status: &str, branch: &str, user: &str, cseq: &str) -> Vec<u8> {
    sip(&format!(
        "SIP/2.0 {status}
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport=5062;received=10.0.0.20
Record-Route: <sip:192.0.2.10:5060;lr>
From: \"Alice\" <sip:{user}@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: {cseq}
Contact: <sip:0301234567@203.0.113.5:5060>
Content-Length: 0

"
    ))
}

/// `trunk_resp` as the phone must get it: our Via gone, identity `user`.
fn trunk_resp_up(status: &str, user: &str, cseq: &str) -> Vec<u8> {
    sip(&format!(
        "SIP/2.0 {status}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport=5062;received=10.0.0.20
Record-Route: <sip:192.0.2.10:5060;lr>
From: \"Alice\" <sip:{user}@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: {cseq}
Contact: <sip:0301234567@203.0.113.5:5060>
Content-Length: 0

"
    ))
}

/// The trunk's inbound INVITE (Request-URI names the proxy).
fn invite_in() -> Vec<u8> {
    sip("INVITE sip:4930123456@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-1
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:4930123456@192.0.2.10>
Call-ID: in1@203.0.113.5
CSeq: 10 INVITE
Contact: <sip:+4930999888@203.0.113.5:5060>
Content-Length: 0

")
}

const TRUNK_VIA: &str = "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-1";
const FROM_TRUNK: &str = "<sip:+4930999888@203.0.113.5>;tag=tr9";
const TO_IN: &str = "\"Sales\" <sip:4930123456@192.0.2.10>";
const CID_IN: &str = "in1@203.0.113.5";

// ------------------------------------------------------------- helpers

/// Phone INVITE in at `ms`; check the 100 Trying and the NewCall; return the token.
fn start_out(h: &mut H, ms: u64) -> CallId {
    let o = h.udp(ms, invite_out(), PHONE);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 100 Trying",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            TO_OUT,
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::Out,
        "201",
        "0301234567",
        None,
    );
    assert!(events(&o).is_empty());
    nc[0].0
}

/// Outbound call forwarded to the trunk (answer `a`); returns our branch.
fn forward_out(h: &mut H, ms: u64, a: CtiAnswer, user: &str) -> String {
    let tok = start_out(h, ms);
    let o = h.cti(ms + 10, tok, a);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    assert!(
        br.starts_with("z9hG4bK") && br != "z9hG4bK-ph-1",
        "branch {br}"
    );
    assert_tx(t, Udp, TRUNK, &invite_out_fwd(&br, user));
    assert!(t.client_tx.is_some());
    br
}

/// Trunk INVITE in at `ms`; 100 Trying back; returns the newCall token.
fn start_in(h: &mut H, ms: u64) -> CallId {
    let o = h.udp(ms, invite_in(), TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_tx(
        t[0],
        Udp,
        TRUNK,
        &response_text(
            "SIP/2.0 100 Trying",
            &[TRUNK_VIA],
            FROM_TRUNK,
            TO_IN,
            CID_IN,
            "10 INVITE",
            &[],
        ),
    );
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        "4930123456",
        None,
    );
    nc[0].0
}

/// Stateless answer of the proxy: one Transmit, exactly these fields (the
/// To tag is whatever the proxy chose, but it must be there).
#[track_caller]
#[allow(clippy::too_many_arguments)] // one argument per response field
fn assert_answer(
    o: &[Output],
    dest: &str,
    status_line: &str,
    req_to: &str,
    via: &str,
    from: &str,
    cid: &str,
    cseq: &str,
    extra: &[&str],
) {
    let t = only_tx(o);
    let tag = to_tag(&t.data).expect("To tag on a final response");
    assert!(!tag.is_empty());
    let to = if req_to.contains(";tag=") {
        req_to.to_string()
    } else {
        format!("{req_to};tag={tag}")
    };
    assert_tx(
        t,
        Udp,
        dest,
        &response_text(status_line, &[via], from, &to, cid, cseq, extra),
    );
    assert_eq!(t.client_tx, None);
}

/// Run every timer for a long while; the tables must end empty.
#[track_caller]
fn assert_cleans_up(h: &mut H, until_ms: u64) {
    let _ = h.run_until(until_ms);
    assert_eq!(h.core.transactions(), (0, 0), "transactions left");
    // no timer outlives its transaction (a per-call timer of hours would
    // grow the timer wheel without bound under load)
    assert_eq!(h.core.pending_timers(), 0, "timers left");
}

// ------------------------------------------------------------- 16.3

#[test]
fn rfc3261_16_3_step3_max_forwards_zero_gets_483() {
    let mut h = H::new();
    let req = String::from_utf8(invite_out())
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let o = h.udp(0, &req, PHONE);
    assert_answer(
        &o,
        PHONE,
        "SIP/2.0 483 Too Many Hops",
        TO_OUT,
        PHONE_VIA_RCVD,
        FROM_PHONE,
        CID_OUT,
        "1 INVITE",
        &[],
    );
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.stats().too_many_hops, 1);
}

#[test]
fn rfc3261_16_3_step5_proxy_require_gets_420_with_unsupported() {
    let mut h = H::new();
    let req = String::from_utf8(invite_out()).unwrap().replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nProxy-Require: foo, bar\r\n",
    );
    let o = h.udp(0, &req, PHONE);
    assert_answer(
        &o,
        PHONE,
        "SIP/2.0 420 Bad Extension",
        TO_OUT,
        PHONE_VIA_RCVD,
        FROM_PHONE,
        CID_OUT,
        "1 INVITE",
        &["Unsupported: foo, bar"],
    );
    assert_eq!(h.core.transactions(), (0, 0));
}

#[test]
fn rfc3261_16_3_step4_own_request_coming_back_is_a_loop_482_but_a_spiral_is_forwarded() {
    let mut h = H::new();
    // Request-URI already names the trunk: forwarded with it unchanged
    let req = String::from_utf8(invite_out()).unwrap().replace(
        "INVITE sip:0301234567@192.0.2.10 SIP/2.0",
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0",
    );
    let o = h.udp(0, &req, PHONE);
    let (tok, _) = new_calls(&o)[0];
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let fwd = only_tx(&o).data.clone();
    let br = top_branch(&fwd);
    assert_eq!(fwd, invite_out_fwd(&br, "201"));
    // the trunk sends our own forwarded request back to us unchanged: it
    // carries our Via with exactly the branch we would compute (16.3 step 4)
    let o = h.udp(100, &fwd, TRUNK);
    let t = only_tx(&o);
    let tag = to_tag(&t.data).unwrap();
    let exp = format!(
        "SIP/2.0 482 Loop Detected\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={br};received=203.0.113.5\r\nVia: {PHONE_VIA_RCVD}\r\n\
         From: {FROM_PHONE}\r\nTo: {TO_OUT};tag={tag}\r\nCall-ID: {CID_OUT}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    // no rport on our Via: the sent-by port at the source address
    assert_tx(t, Udp, TRUNK, exp.as_bytes());
    assert_eq!(h.core.stats().loops, 1);
    assert_eq!(h.core.transactions(), (1, 1));
    // a spiral: the same message with another Request-URI is no loop (16.3 step 4)
    let spiral = String::from_utf8(fwd.to_vec()).unwrap().replace(
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0",
        "INVITE sip:4930123456@192.0.2.10 SIP/2.0",
    );
    let o = h.udp(200, &spiral, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), "SIP/2.0 100 Trying");
    assert_eq!(
        start_line(&t[1].data),
        "INVITE sip:4930123456@10.0.0.2 SIP/2.0"
    );
    assert_eq!((t[1].transport, t[1].dest.clone()), (Udp, target(PBX)));
    assert_eq!(h.core.stats().loops, 1);
}

#[test]
fn rfc3261_16_3_step1_malformed_requests_get_400_with_a_reason() {
    let base = String::from_utf8(invite_out()).unwrap();
    let cases: [(String, &str); 3] = [
        (
            base.replace("CSeq: 1 INVITE", "CSeq: one INVITE"),
            "SIP/2.0 400 Bad CSeq",
        ),
        (
            base.replace("Call-ID: out1@10.0.0.20\r\n", ""),
            "SIP/2.0 400 Missing Call-ID header",
        ),
        (
            base.replace("Contact: <sip:201@10.0.0.20:5062>", "ThisLineHasNoColon"),
            "SIP/2.0 400 Header line 6 without colon",
        ),
    ];
    for (req, status) in cases {
        let mut h = H::new();
        let o = h.udp(0, &req, PHONE);
        let t = only_tx(&o);
        assert_eq!(start_line(&t.data), status, "{}", s(&t.data));
        assert_eq!((t.transport, t.dest.clone()), (Udp, target(PHONE)));
        let m = parse(&t.data);
        assert_eq!(m.header("Via"), Some(PHONE_VIA_RCVD));
        assert_eq!(m.header("From"), Some(FROM_PHONE));
        assert_eq!(m.header("Content-Length"), Some("0"));
        assert!(m.header("To").unwrap().starts_with(TO_OUT));
        assert_eq!(h.core.transactions(), (0, 0));
        assert_eq!(h.core.stats().malformed_requests, 1);
    }
}

#[test]
fn rfc3261_16_7_malformed_response_is_dropped() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let good = String::from_utf8(trunk_resp("180 Ringing", &br, "201", "1 INVITE")).unwrap();
    for bad in [
        good.replace("CSeq: 1 INVITE\r\n", ""),
        good.replace("CSeq: 1 INVITE", "CSeq: x INVITE"),
        good.replace("Call-ID: out1@10.0.0.20\r\n", ""),
        good.replace("SIP/2.0 180 Ringing", "SIP/2.0 1800 Ringing"),
        good.replace("Contact: <sip", "Contact <sip"),
    ] {
        let o = h.udp(100, &bad, TRUNK);
        assert!(
            o.is_empty(),
            "malformed response not dropped:\n{bad}\n{}",
            show(&o)
        );
    }
    assert_eq!(
        h.core.stats().malformed_responses + h.core.stats().unparseable,
        5
    );
    // the good one still goes through
    let o = h.udp(200, &good, TRUNK);
    assert_tx(
        only_tx(&o),
        Udp,
        PHONE,
        &trunk_resp_up("180 Ringing", "201", "1 INVITE"),
    );
}

#[test]
fn policy_stranger_gets_403_and_no_cti_output() {
    let mut h = H::new();
    let req = String::from_utf8(invite_out()).unwrap().replace(
        PHONE_VIA,
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-x-1",
    );
    let o = h.udp(0, &req, STRANGER);
    assert_answer(
        &o,
        STRANGER,
        "SIP/2.0 403 Forbidden",
        TO_OUT,
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-x-1",
        FROM_PHONE,
        CID_OUT,
        "1 INVITE",
        &[],
    );
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.stats().forbidden, 1);
    // its ACK and BYE: ACK dropped silently, BYE refused, never a CTI output
    let ack = sip("ACK sip:201@10.0.0.20:5062 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-x-2
Max-Forwards: 70
From: <sip:x@198.51.100.7>;tag=a
To: <sip:201@10.0.0.20>;tag=b
Call-ID: x1
CSeq: 1 ACK
Content-Length: 0

");
    assert!(h.udp(10, &ack, STRANGER).is_empty());
    assert_eq!(h.core.poll_timeout(), None, "a stranger armed a timer");
}

#[test]
fn rfc3261_17_ack_is_never_answered() {
    let mut h = H::new();
    let ack = "ACK sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ack-1
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=zz
Call-ID: nothere@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

";
    for bad in [
        ack.replace("CSeq: 1 ACK", "CSeq: x ACK"),
        ack.replace("Call-ID: nothere@10.0.0.20\n", ""),
        ack.replace("Content-Length: 0", "Content-Length 0"),
        ack.replace("Max-Forwards: 70", "Max-Forwards: 70\nProxy-Require: foo"),
        ack.replace("sip:0301234567@203.0.113.5", "sip:0301234567@192.0.2.10"),
    ] {
        let o = h.udp(0, sip(&bad), PHONE);
        assert!(
            transmits(&o)
                .iter()
                .all(|t| !start_line(&t.data).starts_with("SIP/2.0")),
            "ACK answered:\n{bad}\n{}",
            show(&o)
        );
        assert!(transmits(&o).iter().all(|t| t.dest != target(PHONE)));
    }
    // from a stranger too
    let o = h.udp(0, sip(ack), STRANGER);
    assert!(o.is_empty(), "{}", show(&o));
}

#[test]
fn rfc3261_11_options_to_the_proxy_itself_gets_200_with_allow() {
    let mut h = H::new();
    let req = sip("OPTIONS sip:192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-opt-1;rport
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=o1
To: <sip:192.0.2.10>
Call-ID: opt1@10.0.0.20
CSeq: 5 OPTIONS
Content-Length: 0

");
    let o = h.udp(0, &req, PHONE);
    assert_answer(
        &o,
        PHONE,
        "SIP/2.0 200 OK",
        "<sip:192.0.2.10>",
        "SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-opt-1;rport=5062;received=10.0.0.20",
        "<sip:201@192.0.2.10>;tag=o1",
        "opt1@10.0.0.20",
        "5 OPTIONS",
        &["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, MESSAGE, SUBSCRIBE, NOTIFY, REGISTER"],
    );
    assert_eq!(h.core.transactions(), (0, 0));
}

#[test]
fn rfc3261_16_4_policy_in_dialog_request_from_trunk_to_outside_is_403() {
    let mut h = H::new();
    let bye = sip("BYE sip:someone@198.51.100.7:5060 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-relay
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: <sip:201@192.0.2.10>;tag=ph1
Call-ID: relay@203.0.113.5
CSeq: 2 BYE
Content-Length: 0

");
    let o = h.udp(0, &bye, TRUNK);
    assert_answer(
        &o,
        TRUNK,
        "SIP/2.0 403 Forbidden",
        "<sip:201@192.0.2.10>;tag=ph1",
        "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-relay",
        "<sip:0301234567@192.0.2.10>;tag=tr1",
        "relay@203.0.113.5",
        "2 BYE",
        &[],
    );
    // the same through a remaining Route to outside
    let bye2 = String::from_utf8(bye)
        .unwrap()
        .replace("sip:someone@198.51.100.7:5060", "sip:201@10.0.0.20:5062")
        .replace(
            "Route: <sip:192.0.2.10:5060;lr>",
            "Route: <sip:192.0.2.10:5060;lr>, <sip:198.51.100.7;lr>",
        )
        .replace("z9hG4bK-tr-relay", "z9hG4bK-tr-relay2");
    let o = h.udp(10, &bye2, TRUNK);
    let t = only_tx(&o);
    assert_eq!(start_line(&t.data), "SIP/2.0 403 Forbidden");
    assert_eq!(t.dest, target(TRUNK));
    assert_eq!(h.core.stats().forbidden, 2);
    assert_eq!(h.core.transactions(), (0, 0));
}

// ------------------------------------------------------------- 16.6 bytes

/// A NATed phone's INVITE with compact headers, odd spacing and a binary
/// body (NUL bytes): exactly the 16.6 edits, everything else byte for byte.
#[test]
fn rfc3261_16_6_forwarded_invite_is_the_input_with_exactly_the_16_6_edits() {
    let mut h = H::new();
    let head = "INVITE sip:0301234567@203.0.113.5;user=phone SIP/2.0\r\n\
v: SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-nat-1;rport\r\n\
Max-Forwards: 10\r\n\
f: \"Alice\" <sip:201@192.0.2.10>;tag=nat1\r\n\
t: <sip:0301234567@203.0.113.5>\r\n\
i: nat1@192.168.1.5\r\n\
CSeq: 7 INVITE\r\n\
m: <sip:201@192.168.1.5:5062>\r\n\
X-Custom:   spaced   value  \r\n\
Subject:\r\n\
Content-Type: application/octet-stream\r\n\
l: 9\r\n\r\n";
    let body: &[u8] = b"\x00\x01\x02\r\n\x00\xff\xfe\x00";
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(body);
    let o = h.udp(0, &req, "10.0.0.20:40000");
    // 100 Trying to the source port (rport asked for)
    let t = transmits(&o);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].transport, t[0].dest.clone()),
        (Udp, target("10.0.0.20:40000"))
    );
    assert_eq!(start_line(&t[0].data), "SIP/2.0 100 Trying");
    let (tok, ev) = new_calls(&o)[0];
    assert_ev(
        ev,
        EventKind::NewCall,
        Direction::Out,
        "201",
        "0301234567",
        None,
    );
    let o = h.cti(5, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    assert!(br.starts_with("z9hG4bK"), "{br}");
    let exp_head = head
        .replace(
            "SIP/2.0\r\nv: SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-nat-1;rport\r\n",
            &format!(
                "SIP/2.0\r\nRecord-Route: <sip:192.0.2.10:5060;lr>\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={br}\r\n\
                 v: SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-nat-1;rport=40000;received=10.0.0.20\r\n"
            ),
        )
        .replace("Max-Forwards: 10\r\n", "Max-Forwards: 9\r\n");
    let mut exp = exp_head.into_bytes();
    exp.extend_from_slice(body);
    assert_tx(t, Udp, TRUNK, &exp);
}

#[test]
fn rfc3261_16_6_step3_4_max_forwards_70_added_when_absent_and_no_record_route_on_options() {
    let mut h = H::new();
    let req = sip("OPTIONS sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-o-2
From: <sip:201@192.0.2.10>;tag=o2
To: <sip:0301234567@203.0.113.5>
Call-ID: o2@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

");
    let o = h.udp(0, &req, PHONE);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    // no rport and the same host: no received (18.2.1)
    let exp = sip(&format!(
        "OPTIONS sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-o-2
From: <sip:201@192.0.2.10>;tag=o2
To: <sip:0301234567@203.0.113.5>
Call-ID: o2@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0
Max-Forwards: 70

"
    ));
    assert_tx(t, Udp, TRUNK, &exp);
    assert!(br.starts_with("z9hG4bK"));
    // the 200 comes back to the phone's sent-by port
    let resp = sip(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-o-2
From: <sip:201@192.0.2.10>;tag=o2
To: <sip:0301234567@203.0.113.5>;tag=x
Call-ID: o2@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

"
    ));
    let o = h.udp(100, &resp, TRUNK);
    let up = String::from_utf8(resp).unwrap().replace(
        &format!("Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}\r\n"),
        "",
    );
    assert_tx(only_tx(&o), Udp, "10.0.0.20:5062", up.as_bytes());
    // Timer K: the client transaction goes 5 s later, Timer J the server one at 64*T1
    assert_cleans_up(&mut h, 100 + 32_000);
}

/// Phone over TCP, trunk over UDP: two Record-Route values (RFC 5658), the
/// top one facing the trunk; in-dialog requests pop both and take the
/// transport of the side they go to.
#[test]
fn rfc5658_double_record_route_when_phone_is_tcp_and_trunk_udp() {
    let mut h = H::new();
    let req = sip("INVITE sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-1
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>
Call-ID: tcp1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062;transport=tcp>
Content-Length: 0

");
    let o = h.recv(0, &req, "10.0.0.20:40001", Tcp);
    let t = transmits(&o);
    assert_eq!(
        (t[0].transport, t[0].dest.clone()),
        (Tcp, target("10.0.0.20:40001"))
    );
    assert_eq!(start_line(&t[0].data), "SIP/2.0 100 Trying");
    let (tok, _) = new_calls(&o)[0];
    let o = h.cti(5, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    // two Record-Route values, one per transport (their order: see the
    // bug report; the top one must face the trunk)
    let m = parse(&t.data);
    let mut rr = m.header_values("Record-Route");
    rr.sort();
    assert_eq!(
        rr,
        [
            "<sip:192.0.2.10:5060;lr>",
            "<sip:192.0.2.10:5060;transport=tcp;lr>"
        ]
    );
    let top_rr = m.header_values("Record-Route")[0].to_string();
    let other_rr = m.header_values("Record-Route")[1].to_string();
    let exp = sip(&format!(
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0
Record-Route: {top_rr}
Record-Route: {other_rr}
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-1
Max-Forwards: 69
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>
Call-ID: tcp1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062;transport=tcp>
Content-Length: 0

"
    ));
    assert_tx(t, Udp, TRUNK, &exp);
    // 200 OK back over the phone's TCP connection
    let ok = sip(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-1
Record-Route: <sip:192.0.2.10:5060;lr>
Record-Route: <sip:192.0.2.10:5060;transport=tcp;lr>
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>;tag=tr5
Call-ID: tcp1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:0301234567@203.0.113.5:5060>
Content-Length: 0

"
    ));
    let o = h.udp(100, &ok, TRUNK);
    let up = String::from_utf8(ok).unwrap().replace(
        &format!("Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}\r\n"),
        "",
    );
    let ts = transmits(&o);
    assert_eq!(ts.len(), 1, "{}", show(&o));
    assert_tx(ts[0], Tcp, "10.0.0.20:40001", up.as_bytes());
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Answer,
        Direction::Out,
        "201",
        "0301234567",
        None,
    );
    // the INVITE server transaction stays (Accepted); the client is freed on the 2xx
    assert_eq!(h.core.transactions(), (1, 0));
}

// ------------------------------------------------------------- INVITE and CTI

#[test]
fn cti_invite_is_held_until_zammad_answers_then_forwarded_unchanged() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    assert_eq!(h.core.transactions(), (1, 0));
    // nothing goes out while Zammad thinks
    assert_eq!(h.core.poll_timeout(), Some(h.at(3_500)));
    assert!(h.timers_until(3_000).is_empty());
    let o = h.cti(3_000, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    assert_tx(t, Udp, TRUNK, &invite_out_fwd(&br, "201"));
    assert_eq!(h.core.transactions(), (1, 1));
    // a second answer for the same token changes nothing
    assert!(h.cti(3_100, tok, CtiAnswer::Continue).is_empty());
    assert_eq!(h.core.stats().fail_open, 0);
}

#[test]
fn cti_no_zammad_answer_before_newcall_wait_fails_open() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    let o = h.timers_until(3_499);
    assert!(o.is_empty(), "{}", show(&o));
    let o = h.run_until(3_500);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].0, 3_500);
    let t = only_tx(std::slice::from_ref(&o[0].1));
    let br = top_branch(&t.data);
    assert_tx(t, Udp, TRUNK, &invite_out_fwd(&br, "201"));
    assert_eq!(h.core.stats().fail_open, 1);
    // Zammad's late answer is ignored: no second INVITE, no rewrite
    assert!(h
        .cti(4_000, tok, CtiAnswer::Dial("4930777".into()))
        .is_empty());
    // the edge's own fail-open arriving after that is not counted again
    assert!(h.cti(4_100, tok, CtiAnswer::FailOpen).is_empty());
    assert_eq!(h.core.stats().fail_open, 1);
}

#[test]
fn cti_zammad_reject_of_inbound_call_gives_486_toward_the_trunk_only() {
    let mut h = H::new();
    let tok = start_in(&mut h, 0);
    let o = h.cti(50, tok, CtiAnswer::Reject);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    let tag = to_tag(&t[0].data).expect("486 has a To tag");
    let exp = response_text(
        "SIP/2.0 486 Busy Here",
        &[TRUNK_VIA],
        FROM_TRUNK,
        &format!("{TO_IN};tag={tag}"),
        CID_IN,
        "10 INVITE",
        &[],
    );
    assert_tx(t[0], Udp, TRUNK, &exp);
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::In,
        "4930999888",
        "4930123456",
        Some(Cause::Busy),
    );
    assert_eq!(h.core.stats().rejected_by_zammad, 1);
    // Timer G: the 486 again at T1 until the ACK
    let o = h.run_until(550);
    assert_eq!(o.len(), 1);
    assert_tx(only_tx(std::slice::from_ref(&o[0].1)), Udp, TRUNK, &exp);
    // the trunk's ACK (same branch) ends it; nothing goes inside, ever
    let ack = sip(&format!(
        "ACK sip:4930123456@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-1
Max-Forwards: 70
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: \"Sales\" <sip:4930123456@192.0.2.10>;tag={tag}
Call-ID: in1@203.0.113.5
CSeq: 10 ACK
Content-Length: 0

"
    ));
    let o = h.udp(600, &ack, TRUNK);
    assert!(o.is_empty(), "{}", show(&o));
    let rest = h.run_until(60_000);
    assert!(
        rest.iter().all(|(_, o)| !matches!(o, Output::Transmit(_))),
        "{rest:?}"
    );
    assert_eq!(h.core.transactions(), (0, 0));
}

/// Dial(X): X toward the trunk in From and P-Asserted-Identity; the phone's
/// own number again in everything toward the phone (provisional, 2xx, the
/// trunk's BYE), X in the ACK and in the 200 to the BYE toward the trunk.
#[test]
fn cti_dial_rewrites_the_caller_id_toward_the_trunk_and_restores_it_inside() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Dial("4930777".into()), "4930777");
    assert_eq!(h.core.stats().caller_id_rewrites, 1);
    // 180 and 200 from the trunk come to the phone with its own user
    let o = h.udp(
        100,
        trunk_resp("180 Ringing", &br, "4930777", "1 INVITE"),
        TRUNK,
    );
    assert_tx(
        only_tx(&o),
        Udp,
        PHONE,
        &trunk_resp_up("180 Ringing", "201", "1 INVITE"),
    );
    let o = h.udp(
        2_000,
        trunk_resp("200 OK", &br, "4930777", "1 INVITE"),
        TRUNK,
    );
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &trunk_resp_up("200 OK", "201", "1 INVITE"),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Answer,
        Direction::Out,
        "201",
        "0301234567",
        None,
    );
    // the phone's ACK for the 2xx: our Route popped, to the Request-URI, X in From
    let ack = sip("ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-ack1;rport
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

");
    let o = h.udp(2_100, &ack, PHONE);
    let t = only_tx(&o);
    let abr = top_branch(&t.data);
    assert!(abr.starts_with("z9hG4bK") && abr != br, "{abr}");
    let exp = sip(&format!(
        "ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={abr}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-ack1;rport=5062;received=10.0.0.20
Max-Forwards: 69
From: \"Alice\" <sip:4930777@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

"
    ));
    assert_tx(t, Udp, "203.0.113.5:5060", &exp);
    // the trunk hangs up: To carries X, the phone gets its own number back
    let bye = sip("BYE sip:201@10.0.0.20:5062 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye1
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: \"Alice\" <sip:4930777@192.0.2.10>;tag=ph1
Call-ID: out1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

");
    let o = h.udp(60_000, &bye, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    let bbr = top_branch(&t[0].data);
    let exp = sip(&format!(
        "BYE sip:201@10.0.0.20:5062 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={bbr}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye1
Max-Forwards: 69
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
Call-ID: out1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

"
    ));
    assert_tx(t[0], Udp, "10.0.0.20:5062", &exp);
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::NormalClearing),
    );
    // the phone's 200 to the BYE goes to the trunk with X again
    let ok = sip(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={bbr}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye1
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
Call-ID: out1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

"
    ));
    let o = h.udp(60_050, &ok, PHONE);
    let exp = sip("SIP/2.0 200 OK
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye1
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: \"Alice\" <sip:4930777@192.0.2.10>;tag=ph1
Call-ID: out1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

");
    assert_tx(only_tx(&o), Udp, TRUNK, &exp);
    assert_cleans_up(&mut h, 200_000);
}

#[test]
fn cti_rfc3261_9_1_dial_caller_id_is_in_the_cancel_toward_the_trunk() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Dial("4930777".into()), "4930777");
    let _ = h.udp(
        100,
        trunk_resp("180 Ringing", &br, "4930777", "1 INVITE"),
        TRUNK,
    );
    let cancel = sip("CANCEL sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Content-Length: 0

");
    let o = h.udp(1_000, &cancel, PHONE);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    let tag = to_tag(&t[0].data).expect("200 to CANCEL carries the INVITE's To tag");
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 200 OK",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 CANCEL",
            &[],
        ),
    );
    let exp = sip(&format!(
        "CANCEL sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
From: \"Alice\" <sip:4930777@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

"
    ));
    assert_tx(t[1], Udp, TRUNK, &exp);
    // the 487 comes back with X and reaches the phone with 201
    let o = h.udp(
        1_100,
        trunk_resp("487 Request Terminated", &br, "4930777", "1 INVITE"),
        TRUNK,
    );
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_eq!(
        start_line(&t[0].data),
        "ACK sip:0301234567@203.0.113.5 SIP/2.0"
    );
    assert_eq!(
        hv(&t[0].data, "From").unwrap(),
        "\"Alice\" <sip:4930777@192.0.2.10>;tag=ph1"
    );
    assert_tx(
        t[1],
        Udp,
        PHONE,
        &trunk_resp_up("487 Request Terminated", "201", "1 INVITE"),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::Cancel),
    );
}

// ------------------------------------------------------------- retransmissions

fn cancel_out() -> Vec<u8> {
    sip("CANCEL sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Content-Length: 0

")
}

/// The ACK the proxy must send hop by hop for a non-2xx final response
/// to the forwarded outbound INVITE (RFC 3261 17.1.1.3).
fn hop_ack(branch: &str, user: &str) -> Vec<u8> {
    sip(&format!(
        "ACK sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}
From: \"Alice\" <sip:{user}@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

"
    ))
}

fn trying_out() -> Vec<u8> {
    response_text(
        "SIP/2.0 100 Trying",
        &[PHONE_VIA_RCVD],
        FROM_PHONE,
        TO_OUT,
        CID_OUT,
        "1 INVITE",
        &[],
    )
}

#[test]
fn rfc3261_17_2_1_invite_retransmissions_get_the_last_response_and_are_never_forwarded_twice() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    // while Zammad thinks
    let o = h.udp(200, invite_out(), PHONE);
    assert_tx(only_tx(&o), Udp, PHONE, &trying_out());
    let o = h.cti(300, tok, CtiAnswer::Continue);
    let br = top_branch(&only_tx(&o).data);
    // after forwarding, before any response
    let o = h.udp(400, invite_out(), PHONE);
    assert_tx(only_tx(&o), Udp, PHONE, &trying_out());
    // after a 180: the 180 again
    let o = h.udp(
        450,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    assert_tx(
        only_tx(&o),
        Udp,
        PHONE,
        &trunk_resp_up("180 Ringing", "201", "1 INVITE"),
    );
    let o = h.udp(700, invite_out(), PHONE);
    assert_tx(
        only_tx(&o),
        Udp,
        PHONE,
        &trunk_resp_up("180 Ringing", "201", "1 INVITE"),
    );
    assert_eq!(h.core.stats().retransmissions, 3);
    // the trunk's 100 is absorbed; the trunk's 180 retransmission is relayed (provisional)
    let o = h.udp(800, trunk_resp("100 Trying", &br, "201", "1 INVITE"), TRUNK);
    assert!(o.is_empty(), "{}", show(&o));
}

#[test]
fn rfc3261_17_1_1_3_final_response_retransmission_is_acked_again_but_forwarded_once() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let busy = trunk_resp("486 Busy Here", &br, "201", "1 INVITE");
    let o = h.udp(1_000, &busy, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    // ACK hop by hop: same branch as the INVITE, To from the response (17.1.1.3)
    assert_tx(t[0], Udp, TRUNK, &hop_ack(&br, "201"));
    assert_tx(
        t[1],
        Udp,
        PHONE,
        &trunk_resp_up("486 Busy Here", "201", "1 INVITE"),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::Busy),
    );
    for ms in [1_500, 2_500] {
        let o = h.udp(ms, &busy, TRUNK);
        assert_tx(only_tx(&o), Udp, TRUNK, &hop_ack(&br, "201"));
    }
    // our 486 toward the phone: Timer G until the phone's ACK
    let o = h.run_until(1_500);
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!(o[0].0, 1_500);
    assert_tx(
        only_tx(std::slice::from_ref(&o[0].1)),
        Udp,
        PHONE,
        &trunk_resp_up("486 Busy Here", "201", "1 INVITE"),
    );
    let ack = sip("ACK sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

");
    let o = h.udp(1_600, &ack, PHONE);
    assert!(o.is_empty(), "{}", show(&o));
    let o = h.timers_until(60_000);
    assert!(transmits(&o).is_empty(), "{}", show(&o));
    assert_eq!(h.core.transactions(), (0, 0));
}

#[test]
fn rfc6026_every_2xx_retransmission_is_forwarded_while_accepted_then_dropped() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let ok = trunk_resp("200 OK", &br, "201", "1 INVITE");
    let up = trunk_resp_up("200 OK", "201", "1 INVITE");
    let o = h.udp(1_000, &ok, TRUNK);
    assert_tx(transmits(&o)[0], Udp, PHONE, &up);
    assert_eq!(events(&o).len(), 1);
    for ms in [1_500, 2_500, 4_500] {
        let o = h.udp(ms, &ok, TRUNK);
        assert_tx(only_tx(&o), Udp, PHONE, &up);
    }
    // the client transaction was freed at the first 2xx: the
    // retransmissions went through its Accepted record (RFC 6026 7.2)
    assert_eq!(h.core.stats().relayed_2xx_retransmissions, 3);
    // once the record has expired (the wait time), a 2xx is dropped, never
    // relayed by its own Via (Kamailio tm)
    let _ = h.run_until(40_000);
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.accepted_invites(), 0);
    let o = h.udp(40_000, &ok, TRUNK);
    assert!(o.is_empty(), "{}", show(&o));
    assert_eq!(h.core.stats().stray_responses, 1);
}

// ------------------------------------------------------------- timers

#[test]
fn rfc3261_17_1_1_2_timer_a_retransmits_invite_over_udp_then_timer_b_answers_408() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let fwd = only_tx(&o).data.clone();
    let cid = only_tx(&o).client_tx;
    let out = h.run_until(32_010);
    let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    // T1, 2T1, 4T1 ... apart; then Timer B at 64*T1: 408 + hangup
    assert_eq!(
        times,
        [510, 1_510, 3_510, 7_510, 15_510, 31_510, 32_010, 32_010],
        "{out:?}"
    );
    for (_, o) in &out[..6] {
        let Output::Transmit(t) = o else {
            panic!("{o:?}")
        };
        assert_eq!(
            (t.transport, t.dest.clone(), &t.data, t.client_tx),
            (Udp, target(TRUNK), &fwd, cid)
        );
    }
    let rest: Vec<Output> = out[6..].iter().map(|(_, o)| o.clone()).collect();
    let t = transmits(&rest);
    assert_eq!(t.len(), 1);
    let tag = to_tag(&t[0].data).unwrap();
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 408 Request Timeout",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
    let ev = events(&rest);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::NoAnswer),
    );
    // Timer G for the 408 until Timer H; then nothing is left
    let _ = h.run_until(200_000);
    assert_eq!(h.core.transactions(), (0, 0));
}

#[test]
fn rfc3261_17_1_1_2_no_timer_a_over_tcp_but_timer_b() {
    let mut cfg = config();
    cfg.trunk.transport = Tcp;
    let mut h = H::with(cfg);
    let tok = start_out(&mut h, 0);
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!((t.transport, t.dest.clone()), (Tcp, target(TRUNK)));
    assert_eq!(
        hv(&t.data, "Via").unwrap(),
        format!("SIP/2.0/TCP 192.0.2.10:5060;branch={}", top_branch(&t.data))
    );
    // the phone is UDP and the trunk TCP: two Record-Route values
    let m = parse(&t.data);
    let mut rr = m.header_values("Record-Route");
    rr.sort();
    assert_eq!(
        rr,
        [
            "<sip:192.0.2.10:5060;lr>",
            "<sip:192.0.2.10:5060;transport=tcp;lr>"
        ]
    );
    let out = h.run_until(32_009);
    assert!(out.is_empty(), "{out:?}");
    let out = h.run_until(32_010);
    let o: Vec<Output> = out.into_iter().map(|(_, o)| o).collect();
    let t = only_tx_with_events(&o);
    assert_eq!(start_line(&t.data), "SIP/2.0 408 Request Timeout");
    assert_eq!((t.transport, t.dest.clone()), (Udp, target(PHONE)));
}

fn only_tx_with_events(o: &[Output]) -> &sipcti_core::Transmit {
    let t = transmits(o);
    assert_eq!(t.len(), 1, "{}", show(o));
    t[0]
}

#[test]
fn rfc3261_17_1_2_2_timers_e_and_f_for_a_non_invite() {
    let mut h = H::new();
    let req = sip("OPTIONS sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-o-3;rport
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=o3
To: <sip:0301234567@203.0.113.5>
Call-ID: o3@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

");
    let o = h.udp(0, &req, PHONE);
    let fwd = only_tx(&o).data.clone();
    let out = h.run_until(32_000);
    let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    // Timer E: T1, 2T1, 4T1, then T2 (4 s) apart; Timer F at 64*T1 answers 408
    assert_eq!(
        times,
        [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500, 32_000],
        "{out:?}"
    );
    for (_, o) in &out[..10] {
        let Output::Transmit(t) = o else {
            panic!("{o:?}")
        };
        assert_eq!(
            (t.transport, t.dest.clone(), &t.data),
            (Udp, target(TRUNK), &fwd)
        );
    }
    let Output::Transmit(t) = &out[10].1 else {
        panic!()
    };
    let tag = to_tag(&t.data).unwrap();
    assert_tx(
        t,
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 408 Request Timeout",
            &["SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-o-3;rport=5062;received=10.0.0.20"],
            "<sip:201@192.0.2.10>;tag=o3",
            &format!("<sip:0301234567@203.0.113.5>;tag={tag}"),
            "o3@10.0.0.20",
            "1 OPTIONS",
            &[],
        ),
    );
    assert_cleans_up(&mut h, 100_000);
}

#[test]
fn rfc3261_16_8_timer_c_cancels_downstream_and_answers_408_upstream() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let o = h.udp(
        1_000,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    assert_tx(
        only_tx(&o),
        Udp,
        PHONE,
        &trunk_resp_up("180 Ringing", "201", "1 INVITE"),
    );
    // a second 180 restarts Timer C
    let o = h.udp(
        60_000,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    assert_eq!(transmits(&o).len(), 1);
    let out = h.run_until(239_999);
    assert!(
        transmits(&out.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()).is_empty(),
        "{out:?}"
    );
    let out: Vec<Output> = h.run_until(240_000).into_iter().map(|(_, o)| o).collect();
    let t = transmits(&out);
    assert_eq!(t.len(), 2, "{}", show(&out));
    let cancel = sip(&format!(
        "CANCEL sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

"
    ));
    assert_tx(t[0], Udp, TRUNK, &cancel);
    assert!(t[0].client_tx.is_some());
    let tag = to_tag(&t[1].data).unwrap();
    assert_tx(
        t[1],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 408 Request Timeout",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 1, "{}", show(&out));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::NoAnswer),
    );
    assert_eq!(h.core.stats().timer_c, 1);
    // the trunk confirms: 200 to the CANCEL absorbed, 487 ACKed and not relayed
    let o = h.udp(240_100, trunk_resp("200 OK", &br, "201", "1 CANCEL"), TRUNK);
    assert!(o.is_empty(), "{}", show(&o));
    let o = h.udp(
        240_200,
        trunk_resp("487 Request Terminated", &br, "201", "1 INVITE"),
        TRUNK,
    );
    assert_tx(only_tx(&o), Udp, TRUNK, &hop_ack(&br, "201"));
    // the phone ACKs our 408; then Timers D, K, H empty the tables
    let ack = sip(&format!(
        "ACK sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag={tag}
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

"
    ));
    assert!(h.udp(240_300, &ack, PHONE).is_empty());
    assert_cleans_up(&mut h, 400_000);
}

// ------------------------------------------------------------- CANCEL

#[test]
fn rfc3261_16_10_cancel_is_answered_hop_by_hop_and_sent_with_the_invite_branch_and_route() {
    let mut h = H::new();
    // a pre-loaded Route: ours, then the trunk's edge
    let inv = String::from_utf8(invite_out()).unwrap().replace(
        "Max-Forwards: 70\r\n",
        "Route: <sip:192.0.2.10;lr>, <sip:203.0.113.5;lr>\r\nMax-Forwards: 70\r\n",
    );
    let o = h.udp(0, &inv, PHONE);
    let (tok, _) = new_calls(&o)[0];
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    let exp = String::from_utf8(invite_out_fwd(&br, "201"))
        .unwrap()
        .replace(
            "Max-Forwards: 69\r\n",
            "Route: <sip:203.0.113.5;lr>\r\nMax-Forwards: 69\r\n",
        );
    assert_tx(t, Udp, TRUNK, exp.as_bytes());
    let _ = h.udp(
        100,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    let o = h.udp(1_000, cancel_out(), PHONE);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), "SIP/2.0 200 OK");
    assert_eq!(t[0].dest, target(PHONE));
    assert_eq!(hv(&t[0].data, "CSeq").unwrap(), "1 CANCEL");
    let cancel = sip(&format!(
        "CANCEL sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Route: <sip:203.0.113.5;lr>
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

"
    ));
    assert_tx(t[1], Udp, TRUNK, &cancel);
    // CANCEL retransmission: the 200 again, no second CANCEL
    let o = h.udp(1_100, cancel_out(), PHONE);
    assert_tx(only_tx(&o), Udp, PHONE, &t[0].data.clone());
    // 200 to our CANCEL absorbed
    assert!(h
        .udp(1_200, trunk_resp("200 OK", &br, "201", "1 CANCEL"), TRUNK)
        .is_empty());
    // 487: ACK hop by hop (with the INVITE's Route) and 487 relayed
    let o = h.udp(
        1_300,
        trunk_resp("487 Request Terminated", &br, "201", "1 INVITE"),
        TRUNK,
    );
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    let ack = String::from_utf8(hop_ack(&br, "201"))
        .unwrap()
        .replace("\r\nFrom:", "\r\nRoute: <sip:203.0.113.5;lr>\r\nFrom:");
    assert_tx(t[0], Udp, TRUNK, ack.as_bytes());
    assert_tx(
        t[1],
        Udp,
        PHONE,
        &trunk_resp_up("487 Request Terminated", "201", "1 INVITE"),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::Cancel),
    );
    // the phone's ACK for the 487 ends our server transaction; not forwarded
    let pack = sip("ACK sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

");
    assert!(h.udp(1_400, &pack, PHONE).is_empty());
    assert_cleans_up(&mut h, 100_000);
}

#[test]
fn rfc3261_9_1_cancel_before_any_provisional_waits_for_one() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let o = h.udp(100, cancel_out(), PHONE);
    let t = only_tx(&o);
    assert_eq!(start_line(&t.data), "SIP/2.0 200 OK");
    assert_eq!(t.dest, target(PHONE));
    // Timer A retransmits the INVITE, never a CANCEL yet (RFC 3261 9.1)
    let out = h.timers_until(510);
    assert_eq!(transmits(&out).len(), 1);
    assert_eq!(
        start_line(&transmits(&out)[0].data),
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0"
    );
    // the first provisional (even 100) releases the CANCEL
    let o = h.udp(700, trunk_resp("100 Trying", &br, "201", "1 INVITE"), TRUNK);
    let t = only_tx(&o);
    let cancel = sip(&format!(
        "CANCEL sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

"
    ));
    assert_tx(t, Udp, TRUNK, &cancel);
}

#[test]
fn cti_rfc3261_16_10_cancel_while_waiting_for_zammad_gets_487_from_the_proxy() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    let o = h.udp(100, cancel_out(), PHONE);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    let tag = to_tag(&t[1].data).unwrap();
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 200 OK",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 CANCEL",
            &[],
        ),
    );
    assert_tx(
        t[1],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 487 Request Terminated",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::Cancel),
    );
    // Zammad's answer arrives later: nothing is forwarded
    assert!(h.cti(500, tok, CtiAnswer::Continue).is_empty());
    let out = h.timers_until(4_000);
    assert!(
        transmits(&out).iter().all(|t| t.dest == target(PHONE)),
        "{}",
        show(&out)
    );
}

#[test]
fn rfc3261_16_10_cancel_for_an_unknown_transaction_gets_481() {
    let mut h = H::new();
    let o = h.udp(0, cancel_out(), PHONE);
    assert_answer(
        &o,
        PHONE,
        "SIP/2.0 481 Call/Transaction Does Not Exist",
        TO_OUT,
        PHONE_VIA_RCVD,
        FROM_PHONE,
        CID_OUT,
        "1 CANCEL",
        &[],
    );
    assert_eq!(h.core.transactions(), (0, 0));
}

// ------------------------------------------------------------- ACK for 2xx

#[test]
fn rfc3261_16_4_ack_for_2xx_follows_the_remaining_route() {
    let mut h = H::new();
    let ack = sip("ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-ack9
Route: <sip:192.0.2.10:5060;lr>, <sip:203.0.113.6:5070;lr>
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=ph9
To: <sip:0301234567@192.0.2.10>;tag=tr9
Call-ID: ack9@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

");
    let o = h.udp(0, &ack, PHONE);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    assert!(br.starts_with("z9hG4bK") && br != "z9hG4bK-ph-ack9");
    let exp = sip(&format!(
        "ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-ack9
Route: <sip:203.0.113.6:5070;lr>
Max-Forwards: 69
From: <sip:201@192.0.2.10>;tag=ph9
To: <sip:0301234567@192.0.2.10>;tag=tr9
Call-ID: ack9@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

"
    ));
    assert_tx(t, Udp, "203.0.113.6:5070", &exp);
    assert_eq!(h.core.transactions(), (0, 0));
}

// ------------------------------------------------------------- 407, errors

#[test]
fn cti_rfc3261_22_2_challenge_then_credentials_is_one_call_with_the_stored_caller_id() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Dial("4930777".into()), "4930777");
    let chal = String::from_utf8(trunk_resp(
        "407 Proxy Authentication Required",
        &br,
        "4930777",
        "1 INVITE",
    ))
    .unwrap()
    .replace(
        "Content-Length: 0",
        "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"n1\"\r\nContent-Length: 0",
    );
    let o = h.udp(100, &chal, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_tx(t[0], Udp, TRUNK, &hop_ack(&br, "4930777"));
    let up = String::from_utf8(trunk_resp_up(
        "407 Proxy Authentication Required",
        "201",
        "1 INVITE",
    ))
    .unwrap()
    .replace(
        "Content-Length: 0",
        "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"n1\"\r\nContent-Length: 0",
    );
    assert_tx(t[1], Udp, PHONE, up.as_bytes());
    assert!(
        events(&o).is_empty(),
        "no hangup on a challenge: {}",
        show(&o)
    );
    // the INVITE with credentials: same Call-ID and From tag, CSeq 2, new branch
    let inv2 = String::from_utf8(invite_out())
        .unwrap()
        .replace("branch=z9hG4bK-ph-1", "branch=z9hG4bK-ph-2")
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace(
            "Contact:",
            "Proxy-Authorization: Digest username=\"201\", nonce=\"n1\"\r\nContact:",
        );
    let o = h.udp(200, &inv2, PHONE);
    assert!(new_calls(&o).is_empty(), "a second newCall: {}", show(&o));
    assert!(events(&o).is_empty());
    let t = transmits(&o);
    assert_eq!(t.len(), 2, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), "SIP/2.0 100 Trying");
    let br2 = top_branch(&t[1].data);
    assert_ne!(br2, br);
    let exp = String::from_utf8(invite_out_fwd(&br2, "4930777"))
        .unwrap()
        .replace("branch=z9hG4bK-ph-1", "branch=z9hG4bK-ph-2")
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace(
            "Contact:",
            "Proxy-Authorization: Digest username=\"201\", nonce=\"n1\"\r\nContact:",
        );
    assert_tx(t[1], Udp, TRUNK, exp.as_bytes());
}

#[test]
fn rfc3261_16_7_step2_transport_error_on_the_forwarded_invite_gives_503_and_congestion() {
    let mut h = H::new();
    let tok = start_out(&mut h, 0);
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let cid = only_tx(&o).client_tx.expect("client transaction id");
    h.core.handle_transport_error(h.at(20), cid);
    let o = h.drain();
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    let tag = to_tag(&t[0].data).unwrap();
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &response_text(
            "SIP/2.0 503 Service Unavailable",
            &[PHONE_VIA_RCVD],
            FROM_PHONE,
            &format!("{TO_OUT};tag={tag}"),
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::Out,
        "201",
        "0301234567",
        Some(Cause::Congestion),
    );
    // no retransmission of the INVITE after the failure
    let out = h.timers_until(40_000);
    assert!(
        transmits(&out).iter().all(|t| t.dest == target(PHONE)),
        "{}",
        show(&out)
    );
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.stats().transport_errors, 1);
}

// ============================================ regressions found by these tests

/// RFC 3261 16.6 step 4, RFC 5658 3.3: with double Record-Route the TOP
/// value is the one the next hop (the trunk, UDP) uses.
#[test]
fn rfc5658_3_3_double_record_route_top_value_faces_the_trunk() {
    let mut h = H::new();
    let req = sip("INVITE sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-1
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>
Call-ID: tcp1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062;transport=tcp>
Content-Length: 0

");
    let o = h.recv(0, &req, "10.0.0.20:40001", Tcp);
    let (tok, _) = new_calls(&o)[0];
    let o = h.cti(5, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    let exp = sip(&format!(
        "INVITE sip:0301234567@203.0.113.5 SIP/2.0
Record-Route: <sip:192.0.2.10:5060;lr>
Record-Route: <sip:192.0.2.10:5060;transport=tcp;lr>
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-1
Max-Forwards: 69
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>
Call-ID: tcp1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062;transport=tcp>
Content-Length: 0

"
    ));
    assert_tx(t, Udp, TRUNK, &exp);
}

/// RFC 3261 16.4, RFC 5658 3.2: every top Route value naming the proxy is
/// removed, on one line or on two.
#[test]
fn rfc3261_16_4_both_own_route_values_are_popped() {
    let mut h = H::new();
    let bye = sip("BYE sip:201@10.0.0.20:5062;transport=tcp SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye5
Route: <sip:192.0.2.10:5060;lr>, <sip:192.0.2.10:5060;transport=tcp;lr>
Max-Forwards: 70
From: <sip:0301234567@203.0.113.5>;tag=tr5
To: <sip:201@192.0.2.10>;tag=t1
Call-ID: tcp1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

");
    let o = h.udp(0, &bye, TRUNK);
    let t = only_tx(&o);
    let br = top_branch(&t.data);
    let exp = sip(&format!(
        "BYE sip:201@10.0.0.20:5062;transport=tcp SIP/2.0
Via: SIP/2.0/TCP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-bye5
Max-Forwards: 69
From: <sip:0301234567@203.0.113.5>;tag=tr5
To: <sip:201@192.0.2.10>;tag=t1
Call-ID: tcp1@10.0.0.20
CSeq: 1 BYE
Content-Length: 0

"
    ));
    assert_tx(t, Tcp, "10.0.0.20:5062", &exp);
    let reinv = sip("INVITE sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-2
Route: <sip:192.0.2.10:5060;transport=tcp;lr>
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>;tag=tr5
Call-ID: tcp1@10.0.0.20
CSeq: 2 INVITE
Content-Length: 0

");
    let o = h.recv(1_000, &reinv, "10.0.0.20:40001", Tcp);
    let ts = transmits(&o);
    assert_eq!(ts.len(), 2, "{}", show(&o));
    let br3 = top_branch(&ts[1].data);
    let exp = sip(&format!(
        "INVITE sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br3}
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bK-tcp-2
Max-Forwards: 69
From: <sip:201@192.0.2.10>;tag=t1
To: <sip:0301234567@203.0.113.5>;tag=tr5
Call-ID: tcp1@10.0.0.20
CSeq: 2 INVITE
Content-Length: 0

"
    ));
    assert_tx(ts[1], Udp, "203.0.113.5:5060", &exp);
}

/// RFC 3261 16.3 step 3: an ACK with Max-Forwards 0 is dropped (never answered).
#[test]
fn rfc3261_16_3_step3_ack_with_max_forwards_zero_is_not_forwarded() {
    let mut h = H::new();
    let ack = sip("ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-ack0
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 0
From: <sip:201@192.0.2.10>;tag=ph9
To: <sip:0301234567@192.0.2.10>;tag=tr9
Call-ID: ack0@10.0.0.20
CSeq: 1 ACK
Content-Length: 0

");
    let o = h.udp(0, &ack, PHONE);
    assert!(
        o.is_empty(),
        "ACK with Max-Forwards 0 forwarded:{}",
        show(&o)
    );
}

/// RFC 3261 16.7 step 5, RFC 6026: after the proxy's own final response
/// (Timer C 408) a 2xx that crossed the CANCEL is still forwarded.
#[test]
fn rfc3261_16_7_step5_a_2xx_after_the_proxys_own_final_response_is_still_forwarded() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let _ = h.udp(
        1_000,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    let out: Vec<Output> = h.run_until(181_000).into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        start_line(&transmits(&out)[1].data),
        "SIP/2.0 408 Request Timeout"
    );
    let o = h.udp(181_050, trunk_resp("200 OK", &br, "201", "1 INVITE"), TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "2xx not forwarded:{}", show(&o));
    assert_tx(
        t[0],
        Udp,
        PHONE,
        &trunk_resp_up("200 OK", "201", "1 INVITE"),
    );
}

/// RFC 3261 9.1: a CANCELled INVITE whose callee never answers is destroyed
/// after 64*T1 (no leak toward max_transactions), and the caller gets 487.
#[test]
fn rfc3261_9_1_cancelled_invite_without_final_response_is_destroyed() {
    let mut h = H::new();
    let br = forward_out(&mut h, 0, CtiAnswer::Continue, "201");
    let _ = h.udp(
        1_000,
        trunk_resp("180 Ringing", &br, "201", "1 INVITE"),
        TRUNK,
    );
    let o = h.udp(2_000, cancel_out(), PHONE);
    assert_eq!(transmits(&o).len(), 2, "{}", show(&o));
    let later: Vec<Output> = h
        .run_until(24 * 3600 * 1000)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert!(
        transmits(&later)
            .iter()
            .any(|t| start_line(&t.data) == "SIP/2.0 487 Request Terminated"),
        "the caller gets its 487:{}",
        show(&later)
    );
    assert_eq!(
        h.core.transactions(),
        (0, 0),
        "transactions left a day later"
    );
}

/// RFC 3581 4, RFC 3261 18.2.1: responses the proxy builds itself carry
/// received and the filled rport.
#[test]
fn rfc3261_18_2_1_rfc3581_own_responses_carry_received_and_rport() {
    let mut h = H::new();
    let req = String::from_utf8(invite_out()).unwrap().replace(
        PHONE_VIA,
        "SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-nat-1;rport",
    );
    let o = h.udp(0, &req, "10.0.0.20:40000");
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_tx(
        t[0],
        Udp,
        "10.0.0.20:40000",
        &response_text(
            "SIP/2.0 100 Trying",
            &["SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-nat-1;rport=40000;received=10.0.0.20"],
            FROM_PHONE,
            TO_OUT,
            CID_OUT,
            "1 INVITE",
            &[],
        ),
    );
}

/// RFC 3261 16.3 step 2, RFC 4475 unkscm: a Request-URI scheme the proxy
/// cannot route gets 416.
#[test]
fn rfc3261_16_3_step2_unknown_request_uri_scheme_gets_416() {
    let mut h = H::new();
    let req = sip("OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-unk-1
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=u1
To: <sip:0301234567@192.0.2.10>
Call-ID: unk1@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

");
    let o = h.udp(0, &req, PHONE);
    let t = only_tx(&o);
    assert_eq!(
        start_line(&t.data),
        "SIP/2.0 416 Unsupported URI Scheme",
        "{}",
        show(&o)
    );
    assert_eq!(
        (t.transport, t.dest.clone()),
        (Udp, target("10.0.0.20:5062"))
    );
}

/// Completed transactions are kept for the configured wait (Kamailio tm's
/// wt_timer), not 64*T1, so sustained load does not fill max_transactions.
#[test]
fn rfc3261_17_2_2_timer_j_completed_transactions_are_kept_for_the_wait_time_only() {
    let mut cfg = config();
    cfg.wait = std::time::Duration::from_secs(5);
    let mut h = H::with(cfg);
    let opt = sip("OPTIONS sip:0301234567@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-w-1
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=w1
To: <sip:0301234567@203.0.113.5>
Call-ID: w1@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

");
    let o = h.udp(0, &opt, PHONE);
    let br = top_branch(&only_tx(&o).data);
    let ok = sip(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-w-1
From: <sip:201@192.0.2.10>;tag=w1
To: <sip:0301234567@203.0.113.5>;tag=tw
Call-ID: w1@10.0.0.20
CSeq: 1 OPTIONS
Content-Length: 0

"
    ));
    let o = h.udp(100, &ok, TRUNK);
    assert_eq!(start_line(&only_tx(&o).data), "SIP/2.0 200 OK");
    // the client transaction is freed at once (a retransmitted response
    // would only be absorbed); the server one answers retransmitted
    // requests for the wait time
    assert_eq!(h.core.transactions(), (1, 0));
    let _ = h.run_until(5_000);
    assert_eq!(
        h.core.transactions(),
        (1, 0),
        "kept while retransmissions may come"
    );
    let _ = h.run_until(5_200);
    assert_eq!(h.core.transactions(), (0, 0), "gone after the wait");
    assert_eq!(h.core.pending_timers(), 0);
}

/// A host with a LAN and a public address (RFC 5658): toward the trunk the
/// Via and the top Record-Route carry the trunk-facing address, below it the
/// inside-facing one; the trunk's in-dialog BYE has both popped and goes to
/// the phone with the inside-facing Via.
#[test]
fn rfc5658_two_addresses_give_double_record_route_and_per_side_via() {
    let mut cfg = config();
    cfg.inside_ip = "10.0.0.1".parse().unwrap();
    cfg.trunk_ip = "192.0.2.10".parse().unwrap();
    let mut h = H::with(cfg);
    let o = h.udp(0, invite_out(), PHONE);
    let (tok, _) = new_calls(&o)[0];
    let o = h.cti(5, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(TRUNK));
    assert_eq!(
        hv(&t.data, "Via").unwrap(),
        format!("SIP/2.0/UDP 192.0.2.10:5060;branch={}", top_branch(&t.data))
    );
    let rr: Vec<String> = header_lines(&t.data)
        .into_iter()
        .filter(|l| l.starts_with("Record-Route:"))
        .collect();
    assert_eq!(
        rr,
        vec![
            "Record-Route: <sip:192.0.2.10:5060;lr>".to_string(),
            "Record-Route: <sip:10.0.0.1:5060;lr>".to_string()
        ]
    );
    let bye = sip("BYE sip:201@10.0.0.20:5062 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-two
Route: <sip:192.0.2.10:5060;lr>, <sip:10.0.0.1:5060;lr>
Max-Forwards: 70
From: <sip:0301234567@203.0.113.5>;tag=trtwo
To: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
Call-ID: out1@10.0.0.20
CSeq: 7 BYE
Content-Length: 0

");
    let o = h.udp(1_000, &bye, TRUNK);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(PHONE));
    assert_eq!(
        hv(&t.data, "Route"),
        None,
        "both of our Route values popped"
    );
    assert!(
        hv(&t.data, "Via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK"),
        "{}",
        s(&t.data)
    );
}
