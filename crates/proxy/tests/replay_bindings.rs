//! `sipcti replay` of calls to phones registered through sipcti (issue 8's
//! bindings, found by the Docker lab, issue 10): the provider's INVITE names
//! the phone's binding key (`rb…`) in its Request-URI (Contact mode) or its
//! first Route (Path mode). Replay must give the events the live proxy gave:
//! `to` is the To header's number (what the caller dialled), not the key, and
//! the called person is the binding's user, learnt from the REGISTER that
//! sipcti relayed in the same capture.

mod replay_support;

use replay_support::{sip, Pcap, SDP, T0};
use sipcti_proxy::config::Config;
use sipcti_proxy::replay::{jsonl_line, replay_captures, ReplayOptions};

/// sipcti on 10.0.0.1, the provider on 192.0.2.1, phone 201 on 10.0.0.21
/// (its leg is not in these captures).
const CONFIG: &str = r#"
[sip]
listen = "10.0.0.1:5060"
[trunk]
uri = "sip:192.0.2.1:5060"
[inside]
networks = ["10.0.0.16/28"]
target = "sip:10.0.0.21:5060"
[registration]
mode = "path"
[phonebook]
"201" = "Alice Example"
[numbers]
country_code = "49"
"#;
const SIPCTI: &str = "10.0.0.1:5060";
const PROVIDER: &str = "192.0.2.1:5060";
const KEY: &str = "rb0123456789abcdef";

/// The REGISTER sipcti relays to the provider for phone 201, with the
/// binding key in `header` (a Path or a Contact).
fn register(p: &mut Pcap, t: u64, header: &str) {
    p.udp(
        t,
        SIPCTI,
        PROVIDER,
        &sip(
            "REGISTER sip:192.0.2.1 SIP/2.0",
            "10.0.0.1",
            "z9hG4bKr1",
            "201@192.0.2.1",
            "r1",
            "201@192.0.2.1",
            None,
            "reg-1@10.0.0.21",
            "2 REGISTER",
            &format!("{header}\r\nExpires: 300\r\n"),
            "",
        ),
    );
}

/// A call from the provider for DID 4930123456, to the phone's binding by
/// `ruri` (and `route`), answered by the phone, hung up by the caller. Only
/// the provider's leg to sipcti: the binding key is all replay has to go by.
fn call(p: &mut Pcap, t: u64, ruri: &str, route: &str) {
    let (f, to, cid) = (
        "+491701234567@192.0.2.9",
        "4930123456@192.0.2.1",
        "in-1@192.0.2.9",
    );
    let msg = |start: &str, ttag, cseq: &str, extra: &str, body: &str| {
        sip(
            start,
            "192.0.2.1",
            "z9hG4bKi1",
            f,
            "c1",
            to,
            ttag,
            cid,
            cseq,
            extra,
            body,
        )
    };
    p.udp(
        t,
        PROVIDER,
        SIPCTI,
        &msg(
            &format!("INVITE {ruri} SIP/2.0"),
            None,
            "1 INVITE",
            &format!("{route}Content-Type: application/sdp\r\n"),
            SDP,
        ),
    );
    p.udp(
        t + 1_000_000,
        SIPCTI,
        PROVIDER,
        &msg(
            "SIP/2.0 200 OK",
            Some("p1"),
            "1 INVITE",
            "Contact: <sip:201-0x55aa@10.0.0.1:5060>\r\nContent-Type: application/sdp\r\n",
            SDP,
        ),
    );
    p.udp(
        t + 5_000_000,
        PROVIDER,
        SIPCTI,
        &msg(
            "BYE sip:201-0x55aa@10.0.0.1:5060 SIP/2.0",
            Some("p1"),
            "2 BYE",
            "",
            "",
        ),
    );
    p.udp(
        t + 5_100_000,
        SIPCTI,
        PROVIDER,
        &msg("SIP/2.0 200 OK", Some("p1"), "2 BYE", "", ""),
    );
}

/// The Zammad fields of each replayed event, without the capture's timing.
fn events(p: &Pcap, name: &str) -> Vec<String> {
    let opts = ReplayOptions::from_config(&Config::from_toml(CONFIG, None).unwrap());
    let res = replay_captures(&[p.write(name)], &opts);
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    res.events
        .iter()
        .map(|e| {
            let mut v: serde_json::Value = serde_json::from_str(&jsonl_line(e, false)).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("ts");
            o.remove("packet");
            v.to_string()
        })
        .collect()
}

const ANSWERED_BY_201: [&str; 3] = [
    r#"{"callId":"in-1@192.0.2.9","direction":"in","event":"newCall","from":"491701234567","to":"4930123456","user":"Alice Example"}"#,
    r#"{"answeringNumber":"201","callId":"in-1@192.0.2.9","direction":"in","event":"answer","from":"491701234567","to":"4930123456","user":"Alice Example"}"#,
    r#"{"answeringNumber":"201","callId":"in-1@192.0.2.9","cause":"normalClearing","direction":"in","event":"hangup","from":"491701234567","to":"4930123456"}"#,
];

#[test]
fn path_mode_call_to_a_binding_is_the_dialled_number_for_the_registered_user() {
    let mut p = Pcap::new();
    register(
        &mut p,
        T0,
        &format!("Path: <sip:{KEY}@10.0.0.1;lr>\r\nContact: <sip:201-0x55aa@10.0.0.21:5060>"),
    );
    call(
        &mut p,
        T0 + 10_000_000,
        "sip:201-0x55aa@10.0.0.21:5060",
        &format!("Route: <sip:{KEY}@10.0.0.1;lr>\r\n"),
    );
    assert_eq!(events(&p, "binding-path.pcap"), ANSWERED_BY_201);
}

#[test]
fn contact_mode_call_to_a_binding_is_the_dialled_number_for_the_registered_user() {
    let mut p = Pcap::new();
    register(&mut p, T0, &format!("Contact: <sip:{KEY}@10.0.0.1:5060>"));
    call(
        &mut p,
        T0 + 10_000_000,
        &format!("sip:{KEY}@10.0.0.1:5060"),
        "",
    );
    assert_eq!(events(&p, "binding-contact.pcap"), ANSWERED_BY_201);
}

#[test]
fn call_to_a_binding_without_its_register_still_has_the_dialled_number() {
    let mut p = Pcap::new();
    call(&mut p, T0, &format!("sip:{KEY}@10.0.0.1:5060"), "");
    let got = events(&p, "binding-no-register.pcap");
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got.iter()
            .all(|e| e.contains(r#""to":"4930123456""#) && !e.contains(KEY)),
        "{got:#?}"
    );
}
