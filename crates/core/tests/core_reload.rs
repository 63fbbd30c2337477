//! A reload (SIGHUP) in the sans-IO core (issue 9): `ProxyCore::reconfigure`
//! applies new routes, numbers and limits to what starts from then on,
//! keeps the calls and transactions in progress, and refuses a change that
//! needs a restart (the old configuration stays).

mod core_support;

use core_support::*;
use sipcti_core::CtiAnswer;
use sipcti_dialog::{InboundRoute, NumberPattern};

fn invite_in(number: &str, branch: &str, cid: &str) -> Vec<u8> {
    sip(&format!(
        "INVITE sip:{number}@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch={branch}
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:{number}@192.0.2.10>
Call-ID: {cid}
CSeq: 10 INVITE
Content-Length: 0

"
    ))
}

#[test]
fn a_reloaded_route_applies_to_new_calls_and_the_call_in_progress_goes_on() {
    let mut h = H::new();
    // before: the number goes to inside.target (the PBX)
    let o = h.udp(0, invite_in("4930123456", "z9hG4bK-a", "a@x"), TRUNK);
    let o = h.cti(5, new_calls(&o)[0].0, CtiAnswer::Continue);
    assert_eq!(only_tx(&o).dest, target(PBX));
    let mut c = config();
    c.tracker.country_code = Some("49".into());
    c.tracker.routes = vec![InboundRoute::new(
        NumberPattern::parse("4930123456", Some("49"), 6).unwrap(),
        "sip:201@10.0.0.21:5060",
        Some("support".into()),
        Some("49"),
        6,
    )];
    h.core
        .reconfigure(c)
        .expect("a route change needs no restart");
    assert_eq!(h.core.transactions().0, 1, "the call in progress is kept");
    let o = h.udp(100, invite_in("4930123456", "z9hG4bK-b", "b@x"), TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc[0].1.queue.as_deref(), Some("support"));
    let o = h.cti(105, nc[0].0, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target("10.0.0.21:5060"));
    assert_eq!(parse(&t.data).request_uri(), Some("sip:201@10.0.0.21:5060"));
}

#[test]
fn a_change_that_needs_a_restart_is_refused_and_the_old_configuration_stays() {
    let mut h = H::new();
    let mut c = config();
    c.inside_networks = vec!["10.9.0.0/16".parse().unwrap()];
    assert_eq!(
        h.core.reconfigure(c),
        Err("inside changed: restart sipcti to apply")
    );
    let mut c = config();
    c.local = addr("192.0.2.11:5060");
    assert!(h.core.reconfigure(c).is_err());
    // the old inside network still holds
    let o = h.udp(0, invite_in("4930123456", "z9hG4bK-c", "c@x"), TRUNK);
    let o = h.cti(5, new_calls(&o)[0].0, CtiAnswer::Continue);
    assert_eq!(only_tx(&o).dest, target(PBX));
}
