//! Issue 6, "one flood stops everyone": the per-source admission of the
//! sans-IO core (rate limit and ban per source address, per-source share of
//! the transaction and call tables, a reserve above `max_transactions` for
//! in-dialog requests). Exact 503 answers with `Retry-After`, and no CTI
//! output for refused requests. Fake clock, no sockets.

mod core_support;

use std::net::IpAddr;
use std::time::Duration;

use core_support::*;
use sipcti_core::admission::{Limit, LimitedSource};
use sipcti_core::{CoreConfig, CtiAnswer, Output};
use sipcti_dialog::Side;
use sipcti_event::{Direction, EventKind};

/// The inside host that floods (same /24 as [`PHONE`]).
const FLOODER: &str = "10.0.0.66:5060";

fn ip_of(hp: &str) -> IpAddr {
    addr(hp).ip()
}

/// Inside rate 10/s, burst 5, ban 5 s; everything else as `config()`.
fn cfg() -> CoreConfig {
    let mut c = config();
    c.sources.inside_rate_per_s = 10;
    c.sources.inside_burst = 5;
    c.sources.ban = Duration::from_secs(5);
    c
}

/// An outbound INVITE from `hp` (host:port), call number `n` (built with rsip).
fn invite(hp: &str, n: u32) -> Vec<u8> {
    let host = ip_of(hp);
    build::request(
        "INVITE",
        "sip:0301234567@192.0.2.10",
        &[
            ("Via", format!("SIP/2.0/UDP {hp};branch=z9hG4bK-i{n};rport")),
            ("Max-Forwards", "70".into()),
            ("From", format!("<sip:201@192.0.2.10>;tag=f{n}")),
            ("To", "<sip:0301234567@192.0.2.10>".into()),
            ("Call-ID", format!("c{n}@{host}")),
            ("CSeq", "1 INVITE".into()),
            ("Contact", format!("<sip:201@{hp}>")),
        ],
        "",
    )
}

/// The top Via of `invite(hp, n)` as the proxy answers it.
fn via_rcvd(hp: &str, n: u32) -> String {
    let a = addr(hp);
    format!(
        "SIP/2.0/UDP {hp};branch=z9hG4bK-i{n};rport={};received={}",
        a.port(),
        a.ip()
    )
}

/// Assert `o` is exactly the stateless `503 Service Unavailable` with
/// `Retry-After: retry` for `invite(hp, n)`, and nothing else (no CTI).
#[track_caller]
fn assert_503(o: &[Output], hp: &str, n: u32, retry: u64) {
    let t = only_tx(o);
    let tag = to_tag(&t.data).expect("To tag on the 503");
    let host = ip_of(hp);
    assert_tx(
        t,
        Udp,
        hp,
        &response_text(
            "SIP/2.0 503 Service Unavailable",
            &[&via_rcvd(hp, n)],
            &format!("<sip:201@192.0.2.10>;tag=f{n}"),
            &format!("<sip:0301234567@192.0.2.10>;tag={tag}"),
            &format!("c{n}@{host}"),
            "1 INVITE",
            &[&format!("Retry-After: {retry}")],
        ),
    );
    assert_eq!(t.client_tx, None);
}

/// Assert `o` is the 100 Trying and the NewCall of `invite(hp, n)`;
/// returns the newCall token.
#[track_caller]
fn assert_admitted(o: &[Output], hp: &str, n: u32) -> sipcti_core::CallId {
    let t = transmits(o);
    assert_eq!(t.len(), 1, "{}", show(o));
    assert_eq!(start_line(&t[0].data), "SIP/2.0 100 Trying", "{}", show(o));
    assert_eq!(t[0].dest, target(hp));
    let nc = new_calls(o);
    assert_eq!(nc.len(), 1, "{}", show(o));
    assert!(events(o).is_empty(), "{}", show(o));
    assert_eq!(nc[0].1.sip_call_id, format!("c{n}@{}", ip_of(hp)));
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::Out,
        "201",
        "0301234567",
        None,
    );
    nc[0].0
}

/// Call `n` from `hp`, answered by the trunk and ACKed, at `ms`.
fn establish(h: &mut H, ms: u64, hp: &str, n: u32) {
    let o = h.udp(ms, invite(hp, n), hp);
    let tok = assert_admitted(&o, hp, n);
    let o = h.cti(ms + 1, tok, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(TRUNK));
    let br = top_branch(&t.data);
    let host = ip_of(hp);
    let ok = sip(&format!(
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={br}
Via: {}
Record-Route: <sip:192.0.2.10:5060;lr>
From: <sip:201@192.0.2.10>;tag=f{n}
To: <sip:0301234567@192.0.2.10>;tag=tr{n}
Call-ID: c{n}@{host}
CSeq: 1 INVITE
Contact: <sip:0301234567@203.0.113.5:5060>
Content-Length: 0

",
        via_rcvd(hp, n)
    ));
    let o = h.udp(ms + 2, ok, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_eq!(start_line(&t[0].data), "SIP/2.0 200 OK");
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_eq!(ev[0].kind, EventKind::Answer);
    let ack = sip(&format!(
        "ACK sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP {hp};branch=z9hG4bK-a{n};rport
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=f{n}
To: <sip:0301234567@192.0.2.10>;tag=tr{n}
Call-ID: c{n}@{host}
CSeq: 1 ACK
Content-Length: 0

"
    ));
    let o = h.udp(ms + 3, ack, hp);
    assert_eq!(only_tx(&o).dest, target(TRUNK));
}

/// The caller's BYE of call `n` from `hp` (built with rsip).
fn bye_from_caller(hp: &str, n: u32) -> Vec<u8> {
    let host = ip_of(hp);
    build::request(
        "BYE",
        "sip:0301234567@203.0.113.5:5060",
        &[
            ("Via", format!("SIP/2.0/UDP {hp};branch=z9hG4bK-b{n};rport")),
            ("Route", "<sip:192.0.2.10:5060;lr>".into()),
            ("Max-Forwards", "70".into()),
            ("From", format!("<sip:201@192.0.2.10>;tag=f{n}")),
            ("To", format!("<sip:0301234567@192.0.2.10>;tag=tr{n}")),
            ("Call-ID", format!("c{n}@{host}")),
            ("CSeq", "2 BYE".into()),
        ],
        "",
    )
}

/// The trunk's BYE of call `n` toward `hp` (built with rsip).
fn bye_from_trunk(hp: &str, n: u32) -> Vec<u8> {
    let host = ip_of(hp);
    build::request(
        "BYE",
        &format!("sip:201@{hp}"),
        &[
            (
                "Via",
                format!("SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tb{n}"),
            ),
            ("Route", "<sip:192.0.2.10:5060;lr>".into()),
            ("Max-Forwards", "70".into()),
            ("From", format!("<sip:0301234567@192.0.2.10>;tag=tr{n}")),
            ("To", format!("<sip:201@192.0.2.10>;tag=f{n}")),
            ("Call-ID", format!("c{n}@{host}")),
            ("CSeq", "1 BYE".into()),
        ],
        "",
    )
}

/// Assert `o` is the BYE forwarded to `dest` and the hangup of call `n`.
#[track_caller]
fn assert_bye_passes(o: &[Output], dest: &str, hp: &str, n: u32) {
    let t = transmits(o);
    assert_eq!(t.len(), 1, "{}", show(o));
    assert!(start_line(&t[0].data).starts_with("BYE "), "{}", show(o));
    assert_eq!(t[0].dest, target(dest));
    let ev = events(o);
    assert_eq!(ev.len(), 1, "{}", show(o));
    assert_eq!(
        (ev[0].kind, ev[0].sip_call_id.as_str()),
        (EventKind::Hangup, format!("c{n}@{}", ip_of(hp)).as_str())
    );
    assert!(new_calls(o).is_empty());
}

#[test]
fn a_flood_from_one_inside_address_gets_503_while_another_phone_and_established_byes_pass() {
    let mut h = H::with(cfg());
    // two calls of the flooding host established before the flood (2 tokens)
    establish(&mut h, 0, FLOODER, 1);
    establish(&mut h, 10, FLOODER, 2);
    // the flood at 1 s: the bucket is full again (5), then 503 with the ban
    let mut admitted = 0;
    for n in 100..150 {
        let o = h.udp(1_000, invite(FLOODER, n), FLOODER);
        if n < 105 {
            assert_admitted(&o, FLOODER, n);
            admitted += 1;
        } else {
            assert_503(&o, FLOODER, n, 5);
        }
    }
    assert_eq!(admitted, 5);
    assert_eq!(h.core.stats().rate_limited, 45);
    // another phone at the same time: admitted and forwarded
    let o = h.udp(1_000, invite(PHONE, 7), PHONE);
    let tok = assert_admitted(&o, PHONE, 7);
    let o = h.cti(1_001, tok, CtiAnswer::Continue);
    assert_eq!(only_tx(&o).dest, target(TRUNK));
    // the flooder's BYE of its established call passes while it is banned
    let o = h.udp(1_500, bye_from_caller(FLOODER, 1), FLOODER);
    assert_bye_passes(&o, TRUNK, FLOODER, 1);
    // and the trunk's BYE toward the flooder
    let o = h.udp(1_600, bye_from_trunk(FLOODER, 2), TRUNK);
    assert_bye_passes(&o, FLOODER, FLOODER, 2);
    // still banned: Retry-After is the ban left, rounded up
    let o = h.udp(2_000, invite(FLOODER, 150), FLOODER);
    assert_503(&o, FLOODER, 150, 4);
    let o = h.udp(5_999, invite(FLOODER, 151), FLOODER);
    assert_503(&o, FLOODER, 151, 1);
    // the counters name the flooder
    assert_eq!(h.core.stats().rate_limited, 47);
    assert_eq!(h.core.stats().overloaded, 0);
    assert_eq!(
        h.core.limited_sources(h.at(5_999), 10),
        vec![LimitedSource {
            source: ip_of(FLOODER),
            side: Side::Inside,
            refused: 47,
            last_limit: Limit::Banned,
            banned: true,
        }]
    );
    // the ban ends at 6 s: the flooder is admitted again
    let o = h.udp(6_000, invite(FLOODER, 152), FLOODER);
    assert_admitted(&o, FLOODER, 152);
    assert!(!h.core.limited_sources(h.at(6_000), 1)[0].banned);
}

#[test]
fn a_banned_source_retransmitting_its_admitted_invite_gets_the_trying_again() {
    // a retransmission is not new work: it matches its transaction first
    let mut h = H::with(cfg());
    for n in 0..6 {
        let _ = h.udp(0, invite(FLOODER, n), FLOODER);
    }
    assert_eq!(h.core.stats().rate_limited, 1);
    let o = h.udp(500, invite(FLOODER, 0), FLOODER);
    assert_eq!(start_line(&only_tx(&o).data), "SIP/2.0 100 Trying");
    assert_eq!(h.core.stats().rate_limited, 1);
    assert_eq!(h.core.stats().retransmissions, 1);
}

#[test]
fn in_dialog_requests_pass_a_full_transaction_table_initial_ones_do_not() {
    let mut c = cfg();
    c.sources.inside_burst = 1000;
    c.max_transactions = 20;
    let mut h = H::with(c);
    establish(&mut h, 0, FLOODER, 1);
    // fill the table with held INVITEs (one server transaction each)
    let mut n = 100;
    loop {
        let (s, cl) = h.core.transactions();
        if s + cl >= 20 {
            break;
        }
        let o = h.udp(100, invite(PHONE, n), PHONE);
        assert_admitted(&o, PHONE, n);
        n += 1;
    }
    // a new call is refused by the global limit
    let o = h.udp(200, invite(FLOODER, 2), FLOODER);
    assert_503(&o, FLOODER, 2, 5);
    assert_eq!(h.core.stats().overloaded, 1);
    assert_eq!(h.core.stats().rate_limited, 0);
    // the established call's BYE passes (reserve above the limit)
    let o = h.udp(300, bye_from_caller(FLOODER, 1), FLOODER);
    assert_bye_passes(&o, TRUNK, FLOODER, 1);
    let (s, cl) = h.core.transactions();
    assert_eq!(s + cl, 22, "BYE server + client transaction in the reserve");
}

/// A To tag alone buys nothing: requests "in" a dialog that no live call
/// has get no reserve above the global limit...
#[test]
fn in_dialog_requests_of_no_known_call_get_no_reserve() {
    let mut c = cfg();
    c.sources.inside_burst = 1000;
    c.max_transactions = 20;
    let mut h = H::with(c);
    for n in 0..20 {
        let o = h.udp(0, invite(PHONE, n), PHONE);
        assert_admitted(&o, PHONE, n);
    }
    let mut refused = 0;
    for n in 0..5 {
        let o = h.udp(10, bye_from_trunk(PHONE, 900 + n), TRUNK);
        if start_line(&only_tx(&o).data) == "SIP/2.0 503 Service Unavailable" {
            refused += 1;
        }
    }
    let (s, cl) = h.core.transactions();
    assert_eq!(s + cl, 20);
    assert_eq!(refused, 5);
    assert_eq!(h.core.stats().overloaded, 5);
}

/// ...and are metered by the source's rate like initial requests: a flood
/// of BYEs with made-up To tags is banned, while the BYE of the flooder's
/// own established call still passes.
#[test]
fn a_flood_with_made_up_to_tags_is_rate_limited_but_a_live_call_s_bye_passes() {
    let mut h = H::with(cfg());
    establish(&mut h, 0, FLOODER, 1);
    let mut refused = 0;
    for n in 100..120 {
        let o = h.udp(1_000, bye_from_caller(FLOODER, n), FLOODER);
        let t = transmits(&o);
        if t.len() == 1 && start_line(&t[0].data) == "SIP/2.0 503 Service Unavailable" {
            assert!(hv(&t[0].data, "Retry-After").is_some());
            assert!(events(&o).is_empty());
            refused += 1;
        }
    }
    assert!(refused >= 15, "refused {refused} of 20");
    assert!(h.core.stats().rate_limited >= 15);
    let o = h.udp(1_000, bye_from_caller(FLOODER, 1), FLOODER);
    assert_bye_passes(&o, TRUNK, FLOODER, 1);
}

#[test]
fn a_source_holding_its_share_of_the_transaction_table_gets_503_others_do_not() {
    let mut c = cfg();
    c.sources.inside_burst = 1000;
    c.sources.max_transactions_per_source = 4; // two server transactions
    let mut h = H::with(c);
    assert_admitted(&h.udp(0, invite(FLOODER, 1), FLOODER), FLOODER, 1);
    assert_admitted(&h.udp(0, invite(FLOODER, 2), FLOODER), FLOODER, 2);
    assert_eq!(h.core.admission().open_transactions(ip_of(FLOODER)), 2);
    let o = h.udp(0, invite(FLOODER, 3), FLOODER);
    assert_503(&o, FLOODER, 3, 5);
    assert_eq!(h.core.stats().source_share_limited, 1);
    assert_admitted(&h.udp(0, invite(PHONE, 4), PHONE), PHONE, 4);
    // the share is given back when the transactions are gone
    let _ = h.run_until(600_000);
    assert_eq!(h.core.transactions(), (0, 0));
    assert_eq!(h.core.admission().open_transactions(ip_of(FLOODER)), 0);
    assert_admitted(&h.udp(600_000, invite(FLOODER, 5), FLOODER), FLOODER, 5);
    assert_eq!(
        h.core.limited_sources(h.at(600_000), 10)[0].last_limit,
        Limit::TransactionShare
    );
}

#[test]
fn a_source_holding_its_share_of_the_call_table_gets_503_until_a_call_ends() {
    let mut c = cfg();
    c.sources.inside_burst = 1000;
    c.tracker.max_calls = 10;
    c.max_transactions = 1000;
    c.sources.max_transactions_per_source = 500; // half: 5 calls of 10
    let mut h = H::with(c);
    for n in 1..=5 {
        assert_admitted(&h.udp(0, invite(FLOODER, n), FLOODER), FLOODER, n);
    }
    assert_eq!(h.core.admission().open_calls(ip_of(FLOODER)), 5);
    let o = h.udp(0, invite(FLOODER, 6), FLOODER);
    assert_503(&o, FLOODER, 6, 5);
    assert_eq!(h.core.stats().source_share_limited, 1);
    // a non-INVITE is not a call
    let opt = String::from_utf8(invite(FLOODER, 7))
        .unwrap()
        .replace("INVITE sip:", "OPTIONS sip:")
        .replace("1 INVITE", "1 OPTIONS");
    let o = h.udp(0, opt, FLOODER);
    assert_eq!(only_tx(&o).dest, target(TRUNK));
    // CANCEL of a held call: 487, hangup, the share is given back
    let host = ip_of(FLOODER);
    let cancel = sip(&format!(
        "CANCEL sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP {FLOODER};branch=z9hG4bK-i1;rport
Max-Forwards: 70
From: <sip:201@192.0.2.10>;tag=f1
To: <sip:0301234567@192.0.2.10>
Call-ID: c1@{host}
CSeq: 1 CANCEL
Content-Length: 0

"
    ));
    let o = h.udp(10, cancel, FLOODER);
    assert!(
        events(&o).iter().any(|e| e.kind == EventKind::Hangup),
        "{}",
        show(&o)
    );
    assert_eq!(h.core.admission().open_calls(ip_of(FLOODER)), 4);
    assert_admitted(&h.udp(20, invite(FLOODER, 8), FLOODER), FLOODER, 8);
}

#[test]
fn the_trunk_has_its_own_larger_rate() {
    let mut c = cfg();
    c.sources.trunk_rate_per_s = 100;
    c.sources.trunk_burst = 20;
    let mut h = H::with(c);
    let mut refused = 0;
    for n in 0..30 {
        let o = h.udp(
            0,
            String::from_utf8(invite(TRUNK, n))
                .unwrap()
                .replace("sip:0301234567@192.0.2.10 SIP", "sip:201@192.0.2.10 SIP"),
            TRUNK,
        );
        if start_line(&transmits(&o)[0].data) == "SIP/2.0 503 Service Unavailable" {
            assert!(new_calls(&o).is_empty() && events(&o).is_empty());
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    let top = h.core.limited_sources(h.at(0), 10);
    assert_eq!(
        (top.len(), top[0].source, top[0].side, top[0].refused),
        (1, ip_of(TRUNK), Side::Trunk, 10)
    );
}
