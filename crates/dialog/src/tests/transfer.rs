//! Transfers and redirects (RFC 3515 REFER, RFC 3891 Replaces, RFC 5589
//! flows, 3xx): exact events with their fields and cause.

use super::*;
use crate::view::{sipfrag_status, DialogRef};

// ----- builders -----

/// A REFER from the callee (tag `callee_tag`) in the dialog of `inv`,
/// its Refer-To naming `names` in a `Replaces` URI header (attended).
fn refer_by_callee(
    inv: &MsgView,
    cseq: u32,
    callee_tag: &str,
    names: Option<DialogRef>,
) -> MsgView {
    MsgView {
        refer_to_replaces: names,
        ..callee_req(inv, "REFER", cseq, callee_tag)
    }
}

/// A REFER from the caller in the answered dialog (To tag `to_tag`) of `inv`.
fn refer_by_caller(inv: &MsgView, cseq: u32, to_tag: &str, names: Option<DialogRef>) -> MsgView {
    MsgView {
        refer_to_replaces: names,
        ..caller_req(inv, "REFER", cseq, Some(to_tag))
    }
}

/// A NOTIFY of the refer subscription with sipfrag status `frag`, sent by
/// the REFER's recipient: the reverse direction of `refer`.
fn notify_for(refer: &MsgView, cseq: u32, frag: u16) -> MsgView {
    MsgView {
        method: Some("NOTIFY".into()),
        cseq,
        cseq_method: "NOTIFY".into(),
        from_tag: refer.to_tag.clone(),
        to_tag: refer.from_tag.clone(),
        from: refer.to.clone(),
        to: refer.from.clone(),
        refer_to_replaces: None,
        sipfrag_status: Some(frag),
        ..refer.clone()
    }
}

fn dialog(cid: &str, to_tag: &str, from_tag: &str) -> DialogRef {
    DialogRef {
        call_id: cid.into(),
        to_tag: to_tag.into(),
        from_tag: from_tag.into(),
    }
}

/// The inbound call of `trunk_invite(cid)` answered by the phone with tag
/// `ph`: its newCall and answer are checked loosely (other tests pin them).
fn answered_inbound(h: &mut H, cid: &str, ph: &str, secs: u64) -> MsgView {
    let inv = trunk_invite(cid);
    assert_eq!(h.feed(&inv, Side::Trunk, secs)[0].kind, EventKind::NewCall);
    let ok = resp(&inv, 200, Some(ph));
    assert_eq!(h.feed(&ok, Side::Inside, secs)[0].kind, EventKind::Answer);
    h.quiet(&caller_req(&inv, "ACK", 10, Some(ph)), Side::Trunk, secs);
    inv
}

/// The outbound call of `phone_invite(cid)` answered by the trunk with tag `tt`.
fn answered_outbound(h: &mut H, cid: &str, tt: &str, secs: u64) -> MsgView {
    let inv = phone_invite(cid);
    assert_eq!(h.feed(&inv, Side::Inside, secs)[0].kind, EventKind::NewCall);
    let ok = resp(&inv, 200, Some(tt));
    assert_eq!(h.feed(&ok, Side::Trunk, secs)[0].kind, EventKind::Answer);
    h.quiet(&caller_req(&inv, "ACK", 1, Some(tt)), Side::Inside, secs);
    inv
}

fn in_hangup(h: &H, secs: u64, cid: &str, cause: Cause) -> CallEvent {
    CallEvent {
        answering_number: Some("4930555100".into()),
        ..hangup(
            h,
            secs,
            cid,
            Direction::In,
            "491701234567",
            "4930555100",
            cause,
        )
    }
}

fn out_hangup(h: &H, secs: u64, cid: &str, cause: Cause) -> CallEvent {
    hangup(h, secs, cid, Direction::Out, "201", "4930123456", cause)
}

// ----- blind transfer (RFC 5589 6) -----

// The phone (transferor) refers the trunk party (transferee) of an inbound
// call; the 202, both NOTIFYs and the BYE come as in RFC 5589 6.1, each
// twice (both legs of a capture). The call ends `forwarded`, once; the
// transferee's new INVITE is a new call.
#[test]
fn blind_transfer_by_phone_ends_forwarded_then_new_call() {
    let mut h = H::new();
    let inv = answered_inbound(&mut h, "x1", "ph1", 0);
    let refer = refer_by_callee(&inv, 1, "ph1", None);
    let notify_100 = notify_for(&refer, 11, 100);
    let notify_200 = notify_for(&refer, 12, 200);
    for m in [&refer, &resp(&refer, 202, None)] {
        h.quiet(m, Side::Inside, 5);
        h.quiet(m, Side::Trunk, 5);
    }
    for m in [&notify_100, &notify_200] {
        h.quiet(m, Side::Trunk, 6);
        h.quiet(m, Side::Inside, 6);
    }
    let bye = callee_req(&inv, "BYE", 2, "ph1");
    assert_eq!(
        h.feed(&bye, Side::Inside, 7),
        vec![in_hangup(&h, 7, "x1", Cause::Forwarded)]
    );
    h.quiet(&bye, Side::Trunk, 7);
    // the transferee calls the transfer target: newCall as usual
    let new_leg = trunk_invite("x2");
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        8,
        "x2",
        Direction::In,
        "491701234567",
        "4930555100",
    );
    nc.user = Some("Support".into());
    assert_eq!(h.feed(&new_leg, Side::Trunk, 8), vec![nc]);
    let st = h.t.stats();
    assert_eq!(st.active_calls, 1);
    assert_eq!(st.unknown_call_messages, 0);
}

// The trunk party refers the phone of an outbound call (the phone is the
// transferee); the trunk hangs up after the 202. Then the phone's new
// INVITE toward the transfer target is a new outbound call.
#[test]
fn blind_transfer_by_trunk_ends_forwarded() {
    let mut h = H::new();
    let inv = answered_outbound(&mut h, "y1", "tt1", 0);
    let refer = refer_by_callee(&inv, 7, "tt1", None);
    h.quiet(&refer, Side::Trunk, 3);
    h.quiet(&resp(&refer, 202, None), Side::Inside, 3);
    let bye = callee_req(&inv, "BYE", 8, "tt1");
    assert_eq!(
        h.feed(&bye, Side::Trunk, 4),
        vec![out_hangup(&h, 4, "y1", Cause::Forwarded)]
    );
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        4,
        "y2",
        Direction::Out,
        "201",
        "4930123456",
    );
    nc.user = Some("Alice".into());
    assert_eq!(h.feed(&phone_invite("y2"), Side::Inside, 4), vec![nc]);
}

// The caller refers (REFER on the caller's side of the dialog); the BYE
// from the caller ends the call `forwarded`.
#[test]
fn refer_by_caller_then_caller_bye() {
    let mut h = H::new();
    let inv = answered_outbound(&mut h, "y3", "tt3", 0);
    let refer = refer_by_caller(&inv, 2, "tt3", None);
    h.quiet(&refer, Side::Inside, 1);
    h.quiet(&resp(&refer, 202, None), Side::Trunk, 1);
    let bye = caller_req(&inv, "BYE", 3, Some("tt3"));
    assert_eq!(
        h.feed(&bye, Side::Inside, 2),
        vec![out_hangup(&h, 2, "y3", Cause::Forwarded)]
    );
}

// A REFER refused (403), or accepted and then reported failed by a NOTIFY
// (503 sipfrag), leaves the call as it was: its BYE is normalClearing.
#[test]
fn refused_or_failed_refer_is_normal_clearing() {
    let mut h = H::new();
    let inv = answered_inbound(&mut h, "z1", "ph", 0);
    let refer = refer_by_callee(&inv, 1, "ph", None);
    h.quiet(&refer, Side::Inside, 1);
    h.quiet(&resp(&refer, 403, None), Side::Trunk, 1);
    assert_eq!(
        h.feed(&callee_req(&inv, "BYE", 2, "ph"), Side::Inside, 2),
        vec![in_hangup(&h, 2, "z1", Cause::NormalClearing)]
    );

    let inv = answered_inbound(&mut h, "z2", "ph", 10);
    let refer = refer_by_callee(&inv, 1, "ph", None);
    h.quiet(&refer, Side::Inside, 11);
    h.quiet(&resp(&refer, 202, None), Side::Trunk, 11);
    h.quiet(&notify_for(&refer, 11, 100), Side::Trunk, 11);
    h.quiet(&notify_for(&refer, 12, 503), Side::Trunk, 12);
    assert_eq!(
        h.feed(&callee_req(&inv, "BYE", 3, "ph"), Side::Inside, 13),
        vec![in_hangup(&h, 13, "z2", Cause::NormalClearing)]
    );
}

// A capture that lost the 202: the NOTIFY of the refer subscription shows
// the REFER was accepted.
#[test]
fn notify_without_202_accepts_the_refer() {
    let mut h = H::new();
    let inv = answered_inbound(&mut h, "n1", "ph", 0);
    let refer = refer_by_callee(&inv, 1, "ph", None);
    h.quiet(&refer, Side::Inside, 1);
    h.quiet(&notify_for(&refer, 11, 200), Side::Trunk, 2);
    assert_eq!(
        h.feed(&caller_req(&inv, "BYE", 12, Some("ph")), Side::Trunk, 3),
        vec![in_hangup(&h, 3, "n1", Cause::Forwarded)]
    );
}

// A referred call nobody hangs up is closed by the duration timer, `forwarded`.
#[test]
fn referred_call_closed_by_timer_is_forwarded() {
    let mut h = H::new();
    let inv = answered_outbound(&mut h, "tm", "tt", 0);
    let refer = refer_by_callee(&inv, 7, "tt", None);
    h.quiet(&refer, Side::Trunk, 1);
    h.quiet(&resp(&refer, 202, None), Side::Inside, 1);
    let end = 4 * 3600;
    let evs = h.t.handle_timeout(h.at(end));
    assert_eq!(evs, vec![out_hangup(&h, end, "tm", Cause::Forwarded)]);
}

// ----- attended transfer (RFC 5589 7) -----

// The phone holds an inbound call A and a consultation call C toward the
// trunk; it refers A with Refer-To naming C's dialog in `Replaces`. The
// transferee's INVITE/Replaces goes to C inside the provider's network,
// so sipcti sees only the REFER, its 202, the phone's BYE on A and C's BYE
// from the trunk: both calls end `forwarded`.
#[test]
fn attended_transfer_by_phone_forwards_both_calls() {
    let mut h = H::new();
    let a = answered_inbound(&mut h, "att-a", "pa", 0);
    let c = answered_outbound(&mut h, "att-c", "tc", 2);
    // the phone is C's caller (From tag f1), C's callee answered with tc;
    // the tags as the transferee's target (C's callee) reads them (RFC 3891 3)
    let refer = refer_by_callee(&a, 1, "pa", Some(dialog("att-c", "tc", "f1")));
    h.quiet(&refer, Side::Inside, 5);
    h.quiet(&resp(&refer, 202, None), Side::Trunk, 5);
    assert_eq!(
        h.feed(&callee_req(&a, "BYE", 2, "pa"), Side::Inside, 6),
        vec![in_hangup(&h, 6, "att-a", Cause::Forwarded)]
    );
    assert_eq!(
        h.feed(&callee_req(&c, "BYE", 9, "tc"), Side::Trunk, 7),
        vec![out_hangup(&h, 7, "att-c", Cause::Forwarded)]
    );
}

// The same REFER, failed by NOTIFY: neither call is forwarded.
#[test]
fn failed_attended_transfer_forwards_neither() {
    let mut h = H::new();
    let a = answered_inbound(&mut h, "fa-a", "pa", 0);
    let c = answered_outbound(&mut h, "fa-c", "tc", 2);
    let refer = refer_by_callee(&a, 1, "pa", Some(dialog("fa-c", "f1", "tc")));
    h.quiet(&refer, Side::Inside, 5);
    h.quiet(&resp(&refer, 202, None), Side::Trunk, 5);
    h.quiet(&notify_for(&refer, 11, 486), Side::Trunk, 6);
    assert_eq!(
        h.feed(&callee_req(&c, "BYE", 9, "tc"), Side::Trunk, 7),
        vec![out_hangup(&h, 7, "fa-c", Cause::NormalClearing)]
    );
    assert_eq!(
        h.feed(&callee_req(&a, "BYE", 2, "pa"), Side::Inside, 8),
        vec![in_hangup(&h, 8, "fa-a", Cause::NormalClearing)]
    );
}

// An INVITE with Replaces (RFC 3891) is a new call; the call it replaces
// ends `forwarded` at its BYE, the new one as usual.
#[test]
fn invite_with_replaces_forwards_the_replaced_call() {
    let mut h = H::new();
    let old = answered_outbound(&mut h, "r1", "t1", 0);
    let new_inv = MsgView {
        replaces: Some(dialog("r1", "t1", "f1")),
        ..phone_invite("r2")
    };
    let mut nc = ev(
        EventKind::NewCall,
        &h,
        5,
        "r2",
        Direction::Out,
        "201",
        "4930123456",
    );
    nc.user = Some("Alice".into());
    assert_eq!(h.feed(&new_inv, Side::Inside, 5), vec![nc]);
    let ok = resp(&new_inv, 200, Some("t2"));
    assert_eq!(h.feed(&ok, Side::Trunk, 6)[0].kind, EventKind::Answer);
    // RFC 3891 3: the recipient ends the replaced dialog with a BYE
    assert_eq!(
        h.feed(&callee_req(&old, "BYE", 3, "t1"), Side::Trunk, 6),
        vec![out_hangup(&h, 6, "r1", Cause::Forwarded)]
    );
    assert_eq!(
        h.feed(&caller_req(&new_inv, "BYE", 2, Some("t2")), Side::Inside, 9),
        vec![out_hangup(&h, 9, "r2", Cause::NormalClearing)]
    );
}

// A Replaces INVITE that fails (486) replaced nothing: the old call's BYE
// is normalClearing again.
#[test]
fn failed_replaces_invite_replaces_nothing() {
    let mut h = H::new();
    let old = answered_outbound(&mut h, "q1", "t1", 0);
    let new_inv = MsgView {
        replaces: Some(dialog("q1", "f1", "t1")),
        ..phone_invite("q2")
    };
    assert_eq!(h.feed(&new_inv, Side::Inside, 5).len(), 1);
    assert_eq!(
        h.feed(&resp(&new_inv, 486, Some("t2")), Side::Trunk, 6),
        vec![out_hangup(&h, 6, "q2", Cause::Busy)]
    );
    assert_eq!(
        h.feed(&callee_req(&old, "BYE", 3, "t1"), Side::Trunk, 8),
        vec![out_hangup(&h, 8, "q1", Cause::NormalClearing)]
    );
}

// RFC 3891 7.1 (call pickup): a ringing call replaced elsewhere is
// cancelled; its end is `forwarded`, not `cancel`.
#[test]
fn replaced_early_dialog_is_forwarded() {
    let mut h = H::new();
    let ringing = trunk_invite("p1");
    assert_eq!(h.feed(&ringing, Side::Trunk, 0).len(), 1);
    h.quiet(&resp(&ringing, 180, Some("ph")), Side::Inside, 0);
    let pickup = MsgView {
        replaces: Some(dialog("p1", "ph", "tr1")),
        ..phone_invite("p2")
    };
    assert_eq!(h.feed(&pickup, Side::Inside, 2).len(), 1);
    h.quiet(&caller_req(&ringing, "CANCEL", 10, None), Side::Trunk, 3);
    assert_eq!(
        h.feed(&resp(&ringing, 487, Some("ph")), Side::Inside, 3),
        vec![hangup(
            &h,
            3,
            "p1",
            Direction::In,
            "491701234567",
            "4930555100",
            Cause::Forwarded
        )]
    );
}

// ----- robustness -----

// REFER, NOTIFY and responses to REFER for no tracked call (or outside a
// dialog, or with a Replaces naming nothing) change nothing and never panic.
#[test]
fn transfer_messages_for_unknown_calls_change_nothing() {
    let mut h = H::new();
    let inv = phone_invite("u1");
    let refer = refer_by_callee(&inv, 1, "t", Some(dialog("nope", "a", "b")));
    h.quiet(&refer, Side::Trunk, 0);
    h.quiet(&resp(&refer, 202, None), Side::Inside, 0);
    h.quiet(&notify_for(&refer, 2, 200), Side::Inside, 0);
    let out_of_dialog = MsgView {
        to_tag: None,
        ..refer.clone()
    };
    h.quiet(&out_of_dialog, Side::Trunk, 0);
    assert_eq!(h.t.stats().unknown_call_messages, 3);
    // an INVITE whose Replaces names no call is an ordinary new call
    let inv = MsgView {
        replaces: Some(dialog("nope", "a", "b")),
        ..phone_invite("u2")
    };
    assert_eq!(h.feed(&inv, Side::Inside, 1).len(), 1);
    // a call whose Replaces names itself does not mark itself
    let self_inv = MsgView {
        replaces: Some(dialog("u3", "x", "f1")),
        ..phone_invite("u3")
    };
    assert_eq!(h.feed(&self_inv, Side::Inside, 1).len(), 1);
    assert_eq!(
        h.feed(&resp(&self_inv, 200, Some("x")), Side::Trunk, 1)
            .len(),
        1
    );
    assert_eq!(
        h.feed(&callee_req(&self_inv, "BYE", 4, "x"), Side::Trunk, 2),
        vec![out_hangup(&h, 2, "u3", Cause::NormalClearing)]
    );
}

// ----- parsing -----

#[test]
fn dialog_ref_parsing() {
    assert_eq!(
        DialogRef::parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff"),
        Some(dialog("98732@sip.example.com", "ff87ff", "r33th4x0r"))
    );
    assert_eq!(
        DialogRef::parse(" a@b ; To-Tag=1 ;early-only; FROM-TAG=2"),
        Some(dialog("a@b", "1", "2"))
    );
    assert_eq!(DialogRef::parse("a@b;to-tag=1"), None);
    assert_eq!(DialogRef::parse(";to-tag=1;from-tag=2"), None);
    assert_eq!(DialogRef::parse(""), None);
    assert_eq!(
        DialogRef::from_refer_to(
            "<sip:bob@b.example?Replaces=abc%40a.example%3Bto-tag%3D1%3Bfrom-tag%3D2&Require=replaces>"
        ),
        Some(dialog("abc@a.example", "1", "2"))
    );
    assert_eq!(
        DialogRef::from_refer_to("sip:bob@b.example?replaces=c%3Bfrom-tag%3Dx%3Bto-tag%3Dy"),
        Some(dialog("c", "y", "x"))
    );
    assert_eq!(DialogRef::from_refer_to("<sip:bob@b.example>"), None);
    assert_eq!(
        DialogRef::from_refer_to("<sip:bob@b.example?Subject=x>"),
        None
    );
    assert_eq!(DialogRef::from_refer_to("<"), None);
    assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
    assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying"), Some(100));
    assert_eq!(
        sipfrag_status(b"SIP/2.0 503 Service Unavailable\r\nX: y\r\n"),
        Some(503)
    );
    assert_eq!(sipfrag_status(b"INVITE sip:x SIP/2.0\r\n"), None);
    assert_eq!(sipfrag_status(b"SIP/2.0 99 X"), None);
    assert_eq!(sipfrag_status(b"SIP/2.0 2000 X"), None);
    assert_eq!(sipfrag_status(b"\xff\xfe"), None);
    assert_eq!(sipfrag_status(b""), None);
}

fn parse(text: &str) -> sipcti_wire::SipMessage {
    let raw = text.replace('\n', "\r\n");
    sipcti_wire::SipMessage::parse(raw.into_bytes(), &sipcti_wire::Limits::default())
        .expect("test message parses")
}

// The adapter reads Replaces (INVITE only), Refer-To's Replaces (REFER
// only, compact `r`) and the sipfrag of a refer NOTIFY; `affects_calls`
// lets REFER, NOTIFY and final responses to REFER through, not PRACK or
// UPDATE.
#[test]
fn adapter_and_affects_calls_for_transfers() {
    let invite = parse(
        "INVITE sip:201@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=n\nTo: <sip:201@h>\nCall-ID: new\nCSeq: 1 INVITE\nReplaces: old@h;to-tag=t;from-tag=f\nContent-Length: 0\n\n",
    );
    let v = MsgView::from_message(&invite).unwrap();
    assert_eq!(v.replaces, Some(dialog("old@h", "t", "f")));
    let refer = parse(
        "REFER sip:201@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\nFrom: <sip:a@h>;tag=a\nTo: <sip:201@h>;tag=b\nCall-ID: c\nCSeq: 2 REFER\nr: <sip:c@h?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>\nReplaces: ignored;to-tag=1;from-tag=2\nContent-Length: 0\n\n",
    );
    let v = MsgView::from_message(&refer).unwrap();
    assert_eq!(v.refer_to_replaces, Some(dialog("x", "1", "2")));
    assert_eq!(v.replaces, None);
    assert!(affects_calls(&refer));
    let notify = parse(
        "NOTIFY sip:a@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\nFrom: <sip:201@h>;tag=b\nTo: <sip:a@h>;tag=a\nCall-ID: c\nCSeq: 7 NOTIFY\nEvent: Refer;id=2\nSubscription-State: terminated;reason=noresource\nContent-Type: message/sipfrag;version=2.0\nContent-Length: 16\n\nSIP/2.0 200 OK\n",
    );
    let v = MsgView::from_message(&notify).unwrap();
    assert_eq!(v.sipfrag_status, Some(200));
    assert!(affects_calls(&notify));
    let mwi = parse(
        "NOTIFY sip:a@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\nFrom: <sip:201@h>;tag=b\nTo: <sip:a@h>;tag=a\nCall-ID: c\nCSeq: 8 NOTIFY\nEvent: message-summary\nContent-Type: message/sipfrag\nContent-Length: 16\n\nSIP/2.0 200 OK\n",
    );
    assert_eq!(MsgView::from_message(&mwi).unwrap().sipfrag_status, None);
    let accepted = parse(
        "SIP/2.0 202 Accepted\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\nFrom: <sip:a@h>;tag=a\nTo: <sip:201@h>;tag=b\nCall-ID: c\nCSeq: 2 REFER\nContent-Length: 0\n\n",
    );
    assert!(affects_calls(&accepted));
    for m in ["PRACK", "UPDATE"] {
        let req = parse(&format!(
            "{m} sip:a@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK5\nFrom: <sip:a@h>;tag=a\nTo: <sip:201@h>;tag=b\nCall-ID: c\nCSeq: 3 {m}\nContent-Length: 0\n\n"
        ));
        assert!(!affects_calls(&req), "{m}");
    }
}
