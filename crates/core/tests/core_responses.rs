//! Response matching on a hostile network (RFC 3261 17.1.3 and 16.7, RFC
//! 6026 7.2, as Kamailio's tm does it): a response is relayed only through
//! the client transaction it matches, or, for a 2xx retransmission to an
//! INVITE, through that INVITE's Accepted record; never by its own Via;
//! never from an address that is neither inside nor trunk; never from the
//! other side than the request went to. Deterministic: a fake clock, exact
//! outputs and counters.

mod core_support;

use core_support::*;
use sipcti_core::{CtiAnswer, Output};
use sipcti_event::{Direction, EventKind};

fn invite_out() -> Vec<u8> {
    sip("INVITE sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062>
Content-Length: 0

")
}

/// A response to the forwarded outbound INVITE: our Via with `branch`,
/// then `next_via`.
fn resp(status: &str, branch: &str, next_via: &str) -> Vec<u8> {
    sip(&format!(
        "SIP/2.0 {status}
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}
Via: {next_via}
Record-Route: <sip:192.0.2.10:5060;lr>
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>;tag=tr1
Call-ID: out1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:0301234567@203.0.113.5:5060>
Content-Length: 0

"
    ))
}

const PHONE_VIA_RCVD: &str =
    "SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport=5062;received=10.0.0.20";

/// Outbound call forwarded to the trunk; returns our branch.
fn forward_out(h: &mut H) -> String {
    let o = h.udp(0, invite_out(), PHONE);
    let tok = new_calls(&o)[0].0;
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(TRUNK));
    top_branch(&t.data)
}

/// No output at all.
#[track_caller]
fn nothing(o: &[Output]) {
    assert!(o.is_empty(), "expected nothing, got {}", show(o));
}

/// RFC 3261 16.7 / Kamailio tm: a "200 OK" whose top Via names the proxy,
/// with a branch that matches nothing, sent by a stranger, is dropped before
/// matching: no relay to the address its second Via names, no event.
#[test]
fn rfc3261_17_1_3_forged_2xx_from_a_stranger_is_dropped_before_matching() {
    let mut h = H::new();
    let forged = resp(
        "200 OK",
        "z9hG4bKforged",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKx",
    );
    nothing(&h.udp(0, &forged, STRANGER));
    nothing(&h.recv(0, &forged, STRANGER, Tcp));
    assert_eq!(h.core.stats().foreign_responses, 2);
    assert_eq!(h.core.stats().stray_responses, 0);
    let ts = h.core.tracker().stats();
    assert_eq!((ts.unknown_call_messages, ts.events_emitted), (0, 0));
}

/// Even from the trunk, a 2xx that matches no client transaction and no
/// Accepted record is dropped (it used to be relayed by its next Via).
#[test]
fn rfc3261_16_7_unmatched_2xx_from_the_trunk_is_dropped_not_relayed_by_its_via() {
    let mut h = H::new();
    let forged = resp(
        "200 OK",
        "z9hG4bKforged",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKx",
    );
    nothing(&h.udp(0, &forged, TRUNK));
    nothing(&h.recv(0, &forged, TRUNK, Tcp));
    assert_eq!(h.core.stats().stray_responses, 2);
}

/// One datagram with 1,000 Vias naming the proxy is dropped once, not
/// bounced through the proxy 1,000 times.
#[test]
fn rfc3261_16_7_a_2xx_with_a_thousand_vias_naming_the_proxy_is_dropped_once() {
    let mut h = H::new();
    let mut text = String::from("SIP/2.0 200 OK\r\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKloop{i}\r\n"
        ));
    }
    text.push_str("Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKv\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: loop\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    let mut cfg = config();
    cfg.limits.max_headers = 2000;
    cfg.limits.max_message_bytes = 1 << 20;
    let mut h2 = H::with(cfg);
    for h in [&mut h, &mut h2] {
        nothing(&h.udp(0, text.as_bytes(), TRUNK));
        nothing(&h.udp(0, text.as_bytes(), STRANGER));
        let st = h.core.stats();
        // dropped once each: unparseable under the default header limit,
        // else stray (trunk) and foreign (stranger)
        assert_eq!(
            st.unparseable + st.stray_responses + st.foreign_responses,
            2,
            "{st:?}"
        );
    }
    assert_eq!(h.core.stats().unparseable, 2);
    assert_eq!(
        (
            h2.core.stats().stray_responses,
            h2.core.stats().foreign_responses
        ),
        (1, 1)
    );
}

/// A response that matches the branch of a live client transaction but
/// comes from the inside, while the INVITE went to the trunk, is dropped:
/// neither relayed nor seen by the call tracker.
#[test]
fn rfc3261_17_1_3_response_from_the_other_side_than_the_request_went_to_is_dropped() {
    let mut h = H::new();
    let br = forward_out(&mut h);
    nothing(&h.udp(500, resp("200 OK", &br, PHONE_VIA_RCVD), PBX));
    assert_eq!(h.core.stats().misdirected_responses, 1);
    // the real answer from the trunk still goes through, with one answer
    let o = h.udp(600, resp("200 OK", &br, PHONE_VIA_RCVD), TRUNK);
    assert_eq!(transmits(&o).len(), 1);
    assert_eq!(transmits(&o)[0].dest, target(PHONE));
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Answer);
}

/// The forged `answer`: a stranger who knows a ringing call's Call-ID, From
/// tag and even our branch sends "200 OK": Zammad hears nothing, the
/// caller gets nothing, and the real answer later is the call's one answer.
#[test]
fn rfc3261_17_1_3_forged_answer_for_a_ringing_call_from_a_stranger_reaches_nobody() {
    let mut h = H::new();
    let br = forward_out(&mut h);
    let o = h.udp(300, resp("180 Ringing", &br, PHONE_VIA_RCVD), TRUNK);
    assert_eq!(start_line(&only_tx(&o).data), "SIP/2.0 180 Ringing");
    let before = h.core.tracker().stats();
    nothing(&h.udp(400, resp("200 OK", &br, PHONE_VIA_RCVD), STRANGER));
    nothing(&h.recv(400, resp("200 OK", &br, PHONE_VIA_RCVD), STRANGER, Tcp));
    assert_eq!(h.core.tracker().stats(), before, "the tracker saw nothing");
    let o = h.udp(900, resp("200 OK", &br, PHONE_VIA_RCVD), TRUNK);
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind, ev[0].direction, ev[0].call_id.as_str()),
        (EventKind::Answer, Direction::Out, "out1@10.0.0.20")
    );
}

/// RFC 6026 7.2: a 2xx retransmission after the client transaction was
/// freed goes where the INVITE came from, even when its second Via was
/// changed to point at a third host.
#[test]
fn rfc6026_7_2_accepted_2xx_retransmission_goes_where_the_invite_came_from() {
    let mut h = H::new();
    let br = forward_out(&mut h);
    let o = h.udp(500, resp("200 OK", &br, PHONE_VIA_RCVD), TRUNK);
    assert_eq!(transmits(&o).len(), 1);
    assert_eq!(transmits(&o)[0].dest, target(PHONE));
    assert_eq!(h.core.transactions().1, 0, "client freed at the 2xx");
    assert_eq!(h.core.accepted_invites(), 1);
    let moved = resp(
        "200 OK",
        &br,
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-ph-1;rport=5062;received=198.51.100.9",
    );
    let o = h.udp(1_000, &moved, TRUNK);
    assert_eq!(only_tx(&o).dest, target(PHONE));
    assert!(events(&o).is_empty(), "still one answer");
    assert_eq!(h.core.stats().relayed_2xx_retransmissions, 1);
}

/// An Accepted record does not relay a 2xx whose next Via names the proxy
/// again, nor one whose next Via is not the INVITE's (another branch), nor
/// one from the inside or from a stranger.
#[test]
fn rfc6026_7_2_accepted_record_relays_only_a_true_retransmission() {
    let mut h = H::new();
    let br = forward_out(&mut h);
    let _ = h.udp(500, resp("200 OK", &br, PHONE_VIA_RCVD), TRUNK);
    let via_us = resp(
        "200 OK",
        &br,
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-ph-1",
    );
    nothing(&h.udp(1_000, &via_us, TRUNK));
    let other = resp(
        "200 OK",
        &br,
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKother",
    );
    nothing(&h.udp(1_000, &other, TRUNK));
    assert_eq!(h.core.stats().stray_responses, 2);
    nothing(&h.udp(1_000, resp("200 OK", &br, PHONE_VIA_RCVD), PBX));
    assert_eq!(h.core.stats().misdirected_responses, 1);
    nothing(&h.udp(1_000, resp("200 OK", &br, PHONE_VIA_RCVD), STRANGER));
    assert_eq!(h.core.stats().foreign_responses, 1);
    assert_eq!(h.core.stats().relayed_2xx_retransmissions, 0);
    // the record expires with the wait time and takes nothing with it
    let _ = h.run_until(60_000);
    assert_eq!(h.core.accepted_invites(), 0);
}

/// RFC 3261 18.1.1 / 21.5.14: a UDP request that our Via and Record-Route
/// would push past the size limit gets 513 Message Too Large (with a To
/// tag), not 500, and is not forwarded.
#[test]
fn rfc3261_21_5_14_request_that_grows_past_the_size_limit_gets_513() {
    let mut cfg = config();
    cfg.limits.max_message_bytes = 2048;
    let mut h = H::with(cfg);
    let base = String::from_utf8(invite_out()).unwrap();
    let pad = 2048 - base.len() - "X-Pad: \r\n".len() - 20;
    let big = base.replacen(
        "Content-Length: 0",
        &format!("X-Pad: {}\r\nContent-Length: 0", "p".repeat(pad)),
        1,
    );
    assert!(big.len() <= 2048);
    let o = h.udp(0, &big, PHONE);
    let tok = new_calls(&o)[0].0;
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    let t = t[0];
    assert_eq!(t.dest, target(PHONE));
    assert_eq!(start_line(&t.data), "SIP/2.0 513 Message Too Large");
    let ev = events(&o);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Hangup);
    assert!(to_tag(&t.data).is_some_and(|t| !t.is_empty()));
    assert_eq!(hv(&t.data, "Via").as_deref(), Some(PHONE_VIA_RCVD));
}

/// A stranger that copies a phone's INVITE (same Via, same branch) does not
/// match the phone's server transaction: it gets its own 403, and the
/// phone gets no retransmitted answer (found by the strict fuzz oracle).
#[test]
fn rfc3261_17_2_3_a_stranger_cannot_trigger_our_retransmissions_to_a_phone() {
    let mut h = H::new();
    let o = h.udp(0, invite_out(), PHONE);
    assert_eq!(transmits(&o).len(), 1, "100 Trying");
    let o = h.udp(100, invite_out(), STRANGER);
    let t = only_tx(&o);
    assert_eq!(start_line(&t.data), "SIP/2.0 403 Forbidden");
    assert_eq!(t.dest, target(STRANGER), "rport: back to the source");
    // a retransmission from the phone itself still gets the 100 Trying
    let o = h.udp(200, invite_out(), PHONE);
    assert_eq!(start_line(&only_tx(&o).data), "SIP/2.0 100 Trying");
    assert_eq!(only_tx(&o).dest, target(PHONE));
}

/// RFC 3261 16.7 step 3: a 2xx that carries only our Via cannot go
/// upstream; it is dropped as if lost (not even the tracker sees it), and
/// Timer B ends the transaction with a 408, so nothing is left behind
/// (found by the core fuzz test: the server transaction used to stay
/// forever).
#[test]
fn rfc3261_16_7_step3_a_2xx_with_only_our_via_is_dropped_and_timer_b_ends_the_call() {
    let mut h = H::new();
    let br = forward_out(&mut h);
    let only_ours = String::from_utf8(resp("200 OK", &br, PHONE_VIA_RCVD))
        .unwrap()
        .replace(&format!("Via: {PHONE_VIA_RCVD}\r\n"), "");
    nothing(&h.udp(300, &only_ours, TRUNK));
    assert_eq!(h.core.stats().only_our_via, 1);
    let out = h.timers_until(40_000);
    let t: Vec<String> = transmits(&out)
        .iter()
        .filter(|t| t.dest == target(PHONE))
        .map(|t| start_line(&t.data))
        .collect();
    // the 408, then its Timer G retransmissions (the phone sends no ACK here)
    assert!(!t.is_empty(), "no 408");
    assert!(
        t.iter().all(|l| l == "SIP/2.0 408 Request Timeout"),
        "{t:?}"
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Hangup);
    let _ = h.run_until(100_000);
    assert_eq!(h.core.transactions(), (0, 0));
}
