//! End-to-end, issue 8 first step: inbound routes with one target, `queue`
//! and `[phonebook]`, with real SIPp processes through the real `sipcti`
//! binary against the Zammad double. Each case checks the SIP messages each
//! SIPp side saw, the Request-URI the phone got, and the exact CTI events
//! Zammad accepted; the replay of the capture gives the same events.
//! Needs SIPp and tcpdump.

mod lab;

use std::time::Duration;

use lab::{
    assert_events, assert_replay_matches, assert_sipp, call_id, require_sipp, summary, Host, Lab,
    Opts, Tp,
};

const T: Duration = Duration::from_secs(10);

/// A lab whose config routes 4930123456 to `sip:201@<phone>:5060` with
/// queue "support", 4930123457* to `sip:202@<phone>:5060`, and has a
/// phonebook for 201 and 202. The routes' user differs from the dialled
/// number, so a Request-URI left unchanged shows.
fn routed_lab(name: &str, tp: Tp) -> Lab {
    assert!(
        lab::tcpdump_available(),
        "tcpdump is not installed: apt-get install -y tcpdump"
    );
    // the phone's address depends on the lab's random network: the routes
    // name it `{phone}`, which the lab fills in (`Opts.extra_toml`)
    Lab::start(
        name,
        Opts {
            tp,
            capture: true,
            extra_toml: format!(
                r#"
[[routes]]
number = "+49 30 123456"
targets = ["sip:201@{{phone}}:5060;transport={t}"]
queue = "support"
[[routes]]
number = "030123457*"
targets = ["sip:202@{{phone}}:5060;transport={t}"]

[phonebook]
"201" = "Alice Example"
"202" = "Bob Example"
"#,
                t = match tp {
                    Tp::Udp => "udp",
                    Tp::Tcp => "tcp",
                }
            ),
            ..Opts::default()
        },
    )
}

// Test 1 of issue 8: a route to one URI: the Request-URI is rewritten,
// with `queue` and `user`.
fn route_to_one_uri(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = routed_lab(name, tp);
    let phone = lab.host_ip(Host::Phone);
    let t = match tp {
        Tp::Udp => "udp",
        Tp::Tcp => "tcp",
    };
    let uas = lab.sipp(Host::Phone, "uas_answer", None, &[("answer_user", "201")]);
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930123456"),
            &[("user", "+491701234567"), ("display", "Bob")],
        )
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    // the phone got its own URI as the Request-URI; To still names the dialled number
    let inv = uas.find("<INVITE")[0];
    let ruri = inv.text.lines().next().unwrap_or("").to_string();
    check!(
        lab,
        ruri == format!("INVITE sip:201@{phone}:5060;transport={t} SIP/2.0"),
        "Request-URI toward the route target: {ruri}"
    );
    let to = inv.header("To").unwrap_or_default();
    check!(
        lab,
        to.contains("sip:4930123456@"),
        "To toward the phone: {to}"
    );
    // in-dialog requests from the trunk reach the phone (ACK and BYE above);
    // the BYE goes to the phone's Contact
    let bye = uas.find("<BYE")[0];
    let bye_line = bye.text.lines().next().unwrap_or("").to_string();
    check!(
        lab,
        bye_line.starts_with(&format!("BYE sip:201@{phone}:5060")),
        "BYE toward the phone: {bye_line}"
    );
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall in from=491701234567 to=4930123456 user=Alice Example queue=support",
            "answer in from=491701234567 to=4930123456 user=Alice Example answeringNumber=201",
            "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=normalClearing",
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

#[test]
fn e2e_routes_01_route_to_one_uri_udp() {
    route_to_one_uri(Tp::Udp, "routes-one-uri-udp");
}

#[test]
fn e2e_routes_01_route_to_one_uri_tcp() {
    route_to_one_uri(Tp::Tcp, "routes-one-uri-tcp");
}

// A number under the prefix route goes to 202 without a queue; a number no
// route matches goes to inside.target with its Request-URI user kept, as
// before routes existed.
#[test]
fn e2e_routes_02_prefix_route_and_unmatched_number() {
    require_sipp();
    let mut lab = routed_lab("routes-prefix-unmatched", Tp::Udp);
    let phone = lab.host_ip(Host::Phone);
    let uas = lab.sipp(Host::Phone, "uas_answer", None, &[("answer_user", "202")]);
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930123457"),
            &[("user", "+491701234567"), ("display", "Bob")],
        )
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    let ruri = uas.find("<INVITE")[0]
        .text
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    check!(
        lab,
        ruri == format!("INVITE sip:202@{phone}:5060;transport=udp SIP/2.0"),
        "Request-URI toward the prefix route's target: {ruri}"
    );
    let cid1 = call_id(&uac);
    let first = assert_events(
        &lab,
        3,
        &cid1,
        &[
            "newCall in from=491701234567 to=4930123457 user=Bob Example",
            "answer in from=491701234567 to=4930123457 user=Bob Example answeringNumber=202",
            "hangup in from=491701234567 to=4930123457 answeringNumber=202 cause=normalClearing",
        ],
    );

    let uas = lab.sipp(Host::Phone, "uas_answer", None, &[("answer_user", "201")]);
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930999999"),
            &[("user", "+491701234567"), ("display", "Bob")],
        )
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    let ruri = uas.find("<INVITE")[0]
        .text
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    check!(
        lab,
        ruri.starts_with(&format!("INVITE sip:4930999999@{phone} ")),
        "Request-URI toward inside.target: {ruri}"
    );
    let cid2 = call_id(&uac);
    let all = lab.accepted_events(6, T);
    let got: Vec<String> = all[3..].iter().map(summary).collect();
    let expect = [
        "newCall in from=491701234567 to=4930999999",
        "answer in from=491701234567 to=4930999999 user=Alice Example answeringNumber=201",
        "hangup in from=491701234567 to=4930999999 answeringNumber=201 cause=normalClearing",
    ];
    check!(
        lab,
        got == expect,
        "CTI events {got:#?}\nexpected {expect:#?}"
    );
    check!(
        lab,
        all[3..]
            .iter()
            .all(|e| e.call_id.as_deref() == Some(cid2.as_str())),
        "callIds of the second call"
    );
    let mut live = first;
    live.extend(all[3..].iter().cloned());
    assert_replay_matches(&mut lab, &live);
}
