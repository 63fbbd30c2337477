//! Provider forking in the sans-IO core (issue 8, test 4): the trunk sends
//! one call as two INVITE branches (same Call-ID, From tag and CSeq,
//! different Via branch and Request-URI). Zammad sees one call: one
//! `newCall`, the second branch held with the first and released (or
//! refused) by the same answer, a failed branch hidden while the other
//! rings, one `answer`, one `hangup`. Exact events, virtual clock.

mod core_support;

use core_support::*;
use sipcti_core::{CtiAnswer, Output};
use sipcti_event::{Cause, Direction, EventKind};

/// The provider's INVITE branch `branch` to extension `ext`.
fn branch_invite(ext: &str, branch: &str) -> Vec<u8> {
    sip(&format!(
        "INVITE sip:{ext}@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch={branch}
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:4930123456@provider.example>
Call-ID: forked-1@prov
CSeq: 10 INVITE
Contact: <sip:+4930999888@203.0.113.5:5060>
Content-Length: 0

"
    ))
}

/// The PBX's response `status` (with To tag `tag`) to forwarded INVITE `fwd`.
fn answer_to(fwd: &[u8], status: &str, tag: &str) -> Vec<u8> {
    reply(fwd, status, tag, &["Contact: <sip:201@10.0.0.2:5060>"])
}

fn invites(outs: &[Output]) -> Vec<Vec<u8>> {
    transmits(outs)
        .into_iter()
        .filter(|t| t.data.starts_with(b"INVITE "))
        .map(|t| t.data.to_vec())
        .collect()
}

/// Two branches, Zammad says go on: both ring after the answer, not before.
fn two_ringing(h: &mut H) -> (Vec<u8>, Vec<u8>) {
    let o = h.udp(0, branch_invite("201", "z9hG4bK-b1"), TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1);
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        "201",
        None,
    );
    let token = nc[0].0;
    let o = h.udp(5, branch_invite("202", "z9hG4bK-b2"), TRUNK);
    assert!(
        new_calls(&o).is_empty() && events(&o).is_empty(),
        "{}",
        show(&o)
    );
    assert!(
        invites(&o).is_empty(),
        "the second branch waits for Zammad too: {}",
        show(&o)
    );
    let o = h.cti(10, token, CtiAnswer::Continue);
    let inv = invites(&o);
    assert_eq!(inv.len(), 2, "{}", show(&o));
    let r: Vec<_> = inv
        .iter()
        .map(|i| parse(i).request_uri().unwrap().to_string())
        .collect();
    assert_eq!(r, ["sip:201@10.0.0.2", "sip:202@10.0.0.2"]);
    (inv[0].clone(), inv[1].clone())
}

#[test]
fn two_branches_one_busy_one_answers_make_one_answered_call() {
    let mut h = H::new();
    let (a, b) = two_ringing(&mut h);
    // branch a busy: relayed, but the call goes on
    let o = h.udp(100, answer_to(&a, "SIP/2.0 486 Busy Here", "pa"), PBX);
    assert_eq!(transmits(&o).len(), 2, "486 upstream and ACK: {}", show(&o));
    assert!(
        events(&o).is_empty(),
        "no hangup while b rings: {}",
        show(&o)
    );
    // branch b answers
    let o = h.udp(200, answer_to(&b, "SIP/2.0 200 OK", "pb"), PBX);
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_eq!(ev[0].kind, EventKind::Answer);
    assert_eq!(h.core.tracker().stats().active_calls, 1);
}

#[test]
fn two_branches_both_fail_end_the_call_once_with_the_last_cause() {
    let mut h = H::new();
    let (a, b) = two_ringing(&mut h);
    let o = h.udp(100, answer_to(&a, "SIP/2.0 486 Busy Here", "pa"), PBX);
    assert!(events(&o).is_empty(), "{}", show(&o));
    let o = h.udp(
        200,
        answer_to(&b, "SIP/2.0 480 Temporarily Unavailable", "pb"),
        PBX,
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::In,
        "4930999888",
        "201",
        Some(Cause::NotFound),
    );
}

#[test]
fn a_blocked_caller_is_refused_on_every_branch_even_a_late_one() {
    let mut h = H::new();
    let o = h.udp(0, branch_invite("201", "z9hG4bK-b1"), TRUNK);
    let token = new_calls(&o)[0].0;
    let _ = h.udp(5, branch_invite("202", "z9hG4bK-b2"), TRUNK);
    let o = h.cti(10, token, CtiAnswer::Reject);
    let t = transmits(&o);
    let lines: Vec<String> = t.iter().map(|t| start_line(&t.data)).collect();
    assert_eq!(
        lines,
        ["SIP/2.0 486 Busy Here", "SIP/2.0 486 Busy Here"],
        "{}",
        show(&o)
    );
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_eq!(ev[0].cause, Some(Cause::Busy));
    // a third branch after the answer gets the same answer at once
    let o = h.udp(20, branch_invite("203", "z9hG4bK-b3"), TRUNK);
    let lines: Vec<String> = transmits(&o).iter().map(|t| start_line(&t.data)).collect();
    assert_eq!(
        lines,
        ["SIP/2.0 100 Trying", "SIP/2.0 486 Busy Here"],
        "{}",
        show(&o)
    );
    assert!(events(&o).is_empty() && new_calls(&o).is_empty());
    // every table empties
    let _ = h.timers_until(200_000);
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.sibling_sets(), 0);
}

/// The provider CANCELs the branch whose phone did not answer: the CANCEL
/// toward that phone keeps the provider's RFC 3326 Reason (section 2: a
/// proxy SHOULD copy it), so the phone does not show a missed call.
#[test]
fn the_providers_cancel_keeps_its_reason_toward_the_phone() {
    let mut h = H::new();
    let (_a, b) = two_ringing(&mut h);
    let _ = h.udp(100, answer_to(&b, "SIP/2.0 180 Ringing", "pb"), PBX);
    let cancel = sip("CANCEL sip:202@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-b2
Max-Forwards: 70
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:4930123456@provider.example>
Call-ID: forked-1@prov
CSeq: 10 CANCEL
Reason: SIP;cause=200;text=\"Call completed elsewhere\"
Content-Length: 0

");
    let o = h.udp(200, cancel, TRUNK);
    let fwd: Vec<_> = transmits(&o)
        .into_iter()
        .filter(|t| t.data.starts_with(b"CANCEL "))
        .collect();
    assert_eq!(fwd.len(), 1, "{}", show(&o));
    assert_eq!(
        hv(&fwd[0].data, "Reason").as_deref(),
        Some("SIP;cause=200;text=\"Call completed elsewhere\""),
        "{}",
        show(&o)
    );
}
