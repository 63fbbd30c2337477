//! Topology hiding toward the trunk in the sans-IO core (issue 8): in
//! dialogs with the trunk, the Contact the trunk sees is `sip:tc…@sipcti`
//! (the phone's Contact masked); requests that come back to it reach the
//! phone with its own Contact as Request-URI; with a `dial` caller id,
//! nothing the trunk receives shows the extension outside Via; a forged
//! mask naming an address outside the inside networks gets 403. Exact
//! messages, virtual clock.

mod core_support;

use core_support::*;
use sipcti_core::topology::{mask, unmask};
use sipcti_core::{CoreConfig, CtiAnswer, TopologyHiding};

const SECRET: u64 = 42;

fn cfg() -> CoreConfig {
    let mut c = config();
    c.topology = TopologyHiding {
        enabled: true,
        secret: SECRET,
    };
    c
}

/// The phone's outbound INVITE (extension 201 at 10.0.0.20:5062).
fn invite_out() -> Vec<u8> {
    sip("INVITE sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1
To: <sip:0301234567@192.0.2.10>
Call-ID: out1@sipcti-test
CSeq: 1 INVITE
Contact: \"Alice\" <sip:201@10.0.0.20:5062>;+sip.instance=\"<urn:uuid:1>\"
P-Asserted-Identity: \"Alice\" <sip:201@192.0.2.10>
Content-Length: 0

")
}

/// The masked Contact the trunk must see for the phone.
fn masked() -> String {
    format!(
        "sip:{}@192.0.2.10:5060",
        mask(SECRET, "sip:201@10.0.0.20:5062")
    )
}

#[test]
fn outbound_contact_is_masked_and_with_dial_nothing_shows_the_extension() {
    let mut h = H::with(cfg());
    let o = h.udp(0, invite_out(), PHONE);
    let token = new_calls(&o)[0].0;
    let o = h.cti(5, token, CtiAnswer::Dial("+4930111222".into()));
    let t = only_tx(&o);
    assert_eq!(t.dest, target(TRUNK));
    let fwd = s(&t.data);
    assert_eq!(
        hv(&t.data, "Contact").unwrap(),
        format!("\"Alice\" <{}>;+sip.instance=\"<urn:uuid:1>\"", masked())
    );
    for line in fwd.lines().filter(|l| !l.starts_with("Via:")) {
        assert!(
            !line.contains("201") && !line.contains("10.0.0.20"),
            "the trunk sees the extension or the phone's address: {line}"
        );
    }
    // the trunk answers; the phone gets the trunk's Contact unchanged
    let ok = reply(
        &t.data,
        "SIP/2.0 200 OK",
        "tr1",
        &[
            "Record-Route: <sip:192.0.2.10:5060;lr>",
            "Contact: <sip:0301234567@203.0.113.5:5060>",
        ],
    );
    let o = h.udp(100, ok, TRUNK);
    let up = transmits(&o);
    assert_eq!(up.len(), 1);
    assert_eq!(
        hv(&up[0].data, "Contact").unwrap(),
        "<sip:0301234567@203.0.113.5:5060>"
    );
    // the trunk's BYE comes back to the masked Contact: the phone gets its own
    let bye = sip(&format!(
        "BYE {} SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tb-1
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: \"Alice\" <sip:+4930111222@192.0.2.10>;tag=ph1
Call-ID: out1@sipcti-test
CSeq: 5 BYE
Content-Length: 0

",
        masked()
    ));
    let o = h.udp(1_000, bye, TRUNK);
    let t = transmits(&o);
    assert_eq!(t.len(), 1, "{}", show(&o));
    assert_eq!(t[0].dest, target(PHONE));
    let m = parse(&t[0].data);
    assert_eq!(m.request_uri(), Some("sip:201@10.0.0.20:5062"));
    assert!(m.header("Route").is_none());
}

#[test]
fn inbound_answer_contact_is_masked_and_the_ack_finds_the_phone() {
    let mut h = H::with(cfg());
    let inv = sip("INVITE sip:4930123456@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tr-1
Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:4930123456@192.0.2.10>
Call-ID: in1@203.0.113.5
CSeq: 10 INVITE
Contact: <sip:+4930999888@203.0.113.5:5060>
Content-Length: 0

");
    let o = h.udp(0, inv, TRUNK);
    let o = h.cti(5, new_calls(&o)[0].0, CtiAnswer::Continue);
    let fwd = only_tx(&o).data.clone();
    assert_eq!(
        hv(&fwd, "Contact").unwrap(),
        "<sip:+4930999888@203.0.113.5:5060>"
    );
    let ok = reply(
        &fwd,
        "SIP/2.0 200 OK",
        "pb1",
        &[
            "Record-Route: <sip:192.0.2.10:5060;lr>",
            "Contact: <sip:201@10.0.0.20:5062>",
        ],
    );
    let o = h.udp(100, ok, PBX);
    let up = transmits(&o);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].dest, target(TRUNK));
    assert_eq!(
        hv(&up[0].data, "Contact").unwrap(),
        format!("<{}>", masked())
    );
    let ack = sip(&format!(
        "ACK {} SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-ta-1
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:4930123456@192.0.2.10>;tag=pb1
Call-ID: in1@203.0.113.5
CSeq: 10 ACK
Content-Length: 0

",
        masked()
    ));
    let o = h.udp(200, ack, TRUNK);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(PHONE));
    assert_eq!(parse(&t.data).request_uri(), Some("sip:201@10.0.0.20:5062"));
}

#[test]
fn a_forged_mask_naming_an_outside_address_gets_403() {
    let mut h = H::with(cfg());
    let forged = format!(
        "sip:{}@192.0.2.10:5060",
        mask(SECRET, "sip:victim@198.51.100.99:5060")
    );
    assert!(unmask(SECRET, &forged[4..forged.find('@').unwrap()]).is_some());
    let bye = sip(&format!(
        "BYE {forged} SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tf-1
Max-Forwards: 70
From: <sip:0301234567@192.0.2.10>;tag=tr1
To: <sip:x@192.0.2.10>;tag=ph1
Call-ID: forged@x
CSeq: 5 BYE
Content-Length: 0

"
    ));
    let o = h.udp(0, bye, TRUNK);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(TRUNK));
    assert_eq!(start_line(&t.data), "SIP/2.0 403 Forbidden");
    // the same as an initial request
    let inv = String::from_utf8(sip(&format!(
        "INVITE {forged} SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-tf-2
Max-Forwards: 70
From: <sip:0301234567@192.0.2.10>;tag=tr2
To: <sip:x@192.0.2.10>
Call-ID: forged2@x
CSeq: 5 INVITE
Content-Length: 0

"
    )))
    .unwrap();
    let o = h.udp(10, inv, TRUNK);
    let t = only_tx(&o);
    assert_eq!(start_line(&t.data), "SIP/2.0 403 Forbidden");
    assert!(new_calls(&o).is_empty());
}

#[test]
fn off_passes_contacts_through() {
    let mut c = cfg();
    c.topology.enabled = false;
    let mut h = H::with(c);
    let o = h.udp(0, invite_out(), PHONE);
    let o = h.cti(5, new_calls(&o)[0].0, CtiAnswer::Continue);
    assert_eq!(
        hv(&only_tx(&o).data, "Contact").unwrap(),
        "\"Alice\" <sip:201@10.0.0.20:5062>;+sip.instance=\"<urn:uuid:1>\""
    );
}
