//! The card's `bytes`: a stored request or response, and every
//! retransmission of it, is a reference-counted clone of one buffer, never
//! a copy (RFC 3261 17.1.1.2 Timer A, 17.2.1 Timer G and retransmission
//! absorption). Checked by pointer: two `Bytes` that start at the same
//! address share one allocation.

mod core_support;

use core_support::*;
use sipcti_core::{CtiAnswer, Output};

fn invite_out() -> Vec<u8> {
    sip("INVITE sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-by-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=by1
To: <sip:0301234567@192.0.2.10>
Call-ID: bytes1@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062>
Content-Length: 0

")
}

fn transmit_data(o: &[Output]) -> Vec<bytes::Bytes> {
    transmits(o).iter().map(|t| t.data.clone()).collect()
}

/// RFC 3261 17.1.1.2: every Timer A retransmission of the forwarded INVITE
/// is the stored request itself (same allocation), not a copy.
#[test]
fn rfc3261_17_1_1_2_timer_a_retransmissions_share_the_stored_request() {
    let mut h = H::new();
    let o = h.udp(0, invite_out(), PHONE);
    let tok = new_calls(&o)[0].0;
    let o = h.cti(10, tok, CtiAnswer::Continue);
    let first = only_tx(&o).data.clone();
    let later: Vec<_> = h
        .run_until(4_000)
        .into_iter()
        .filter_map(|(_, o)| match o {
            Output::Transmit(t) if t.dest == target(TRUNK) => Some(t.data),
            _ => None,
        })
        .collect();
    assert_eq!(later.len(), 3, "T1, 2T1, 4T1");
    for d in later {
        assert_eq!(d, first);
        assert_eq!(d.as_ptr(), first.as_ptr(), "a retransmission was copied");
    }
}

fn invite_in() -> Vec<u8> {
    sip("INVITE sip:4930123456@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-by-in
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=byt
To: <sip:4930123456@192.0.2.10>
Call-ID: bytes-in@203.0.113.5
CSeq: 10 INVITE
Contact: <sip:+4930999888@203.0.113.5:5060>
Content-Length: 0

")
}

/// RFC 3261 17.2.1: a retransmitted INVITE gets the stored last response
/// (the 100 Trying, later the final one), and Timer G resends the stored
/// final response: each a clone of the one buffer sent first.
#[test]
fn rfc3261_17_2_1_answers_to_retransmissions_share_the_stored_response() {
    let mut h = H::new();
    let o = h.udp(0, invite_in(), TRUNK);
    let trying = transmit_data(&o)[0].clone();
    let tok = new_calls(&o)[0].0;
    let o = h.udp(100, invite_in(), TRUNK);
    assert_eq!(
        only_tx(&o).data.as_ptr(),
        trying.as_ptr(),
        "100 Trying was copied"
    );
    // Zammad blocks the caller: 486, then Timer G until the ACK
    let o = h.cti(200, tok, CtiAnswer::Reject);
    let busy = transmit_data(&o)[0].clone();
    assert_eq!(start_line(&busy), "SIP/2.0 486 Busy Here");
    let o = h.udp(300, invite_in(), TRUNK);
    assert_eq!(only_tx(&o).data.as_ptr(), busy.as_ptr(), "486 was copied");
    let resent: Vec<_> = h
        .run_until(2_000)
        .into_iter()
        .filter_map(|(_, o)| match o {
            Output::Transmit(t) => Some(t.data),
            _ => None,
        })
        .collect();
    assert!(!resent.is_empty(), "Timer G resends the 486");
    for d in resent {
        assert_eq!(
            d.as_ptr(),
            busy.as_ptr(),
            "a Timer G retransmission was copied"
        );
    }
}
