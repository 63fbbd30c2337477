//! End-to-end, issue 8 second step: ring groups (RFC 3261 16.7), with real
//! SIPp processes through the real `sipcti` binary against the Zammad
//! double. The trunk calls 4930555000, routed to two phones on the lab's
//! phone address: `sip:201@{phone}:5060` and `sip:202@{phone}:5070`. Each
//! case checks the SIP messages every SIPp side saw and the exact CTI
//! events Zammad accepted; the replay of the capture gives the same events.
//! Needs SIPp and tcpdump.

mod lab;

use std::time::Duration;

use lab::{assert_sipp, call_id, require_sipp, summary, Host, Lab, Opts, Tp};

/// A lab whose config routes 4930555000 to a ring group of 201 (port 5060)
/// and 202 (port 5070) on the phone's address, queue "sales", with a
/// phonebook for both.
fn group_lab(name: &str) -> Lab {
    assert!(
        lab::tcpdump_available(),
        "tcpdump is not installed: apt-get install -y tcpdump"
    );
    Lab::start(
        name,
        Opts {
            tp: Tp::Udp,
            capture: true,
            extra_toml: r#"
[[routes]]
number = "4930555000"
targets = ["sip:201@{phone}:5060", "sip:202@{phone}:5070"]
queue = "sales"

[phonebook]
"201" = "Alice Example"
"202" = "Bob Example"
"#
            .to_string(),
            ..Opts::default()
        },
    )
}

/// Zammad accepted exactly `expect` (as [`summary`] lines) for `cid`, and
/// nothing more arrives (one answer, exactly one hangup); the replay of
/// the capture gives the same.
fn assert_call_events(lab: &mut Lab, cid: &str, expect: &[&str]) {
    let evs = lab::assert_events(lab, expect.len(), cid, expect);
    std::thread::sleep(Duration::from_millis(500));
    let more = lab.accepted_events(expect.len() + 1, Duration::from_millis(200));
    check!(
        lab,
        more.len() == expect.len(),
        "more CTI events than expected: {:#?}",
        more.iter().map(summary).collect::<Vec<_>>()
    );
    lab::assert_replay_matches(lab, &evs);
}

// Test 2 of issue 8: a ring group of two; 202 answers, 201 gets a CANCEL
// with the RFC 3326 Reason.
#[test]
fn e2e_fork_02_one_answers_the_other_gets_cancel_with_reason() {
    require_sipp();
    let mut lab = group_lab("fork-one-answers");
    let phone = lab.host_ip(Host::Phone);
    let ringing = lab.sipp(
        Host::Phone,
        "uas_ring_cancel",
        None,
        &[("answer_user", "201")],
    );
    let answering = lab.sipp_uas_on_port(
        Host::Phone,
        "uas_answer_late",
        5070,
        &[("answer_user", "202")],
    );
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930555000"),
            &[("user", "+491701234567"), ("display", "Carol")],
        )
        .wait();
    let ringing = ringing.wait();
    let answering = answering.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        &lab,
        &answering,
        &["<INVITE", ">200", "<ACK", "<BYE", ">200"],
    );
    assert_sipp(
        &lab,
        &ringing,
        &["<INVITE", ">180", "<CANCEL", ">200", ">487", "<ACK"],
    );
    // each branch got its own target as the Request-URI
    for (r, uri) in [
        (&ringing, format!("sip:201@{phone}:5060")),
        (&answering, format!("sip:202@{phone}:5070")),
    ] {
        let line = r.find("<INVITE")[0]
            .text
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        check!(
            lab,
            line == format!("INVITE {uri} SIP/2.0"),
            "Request-URI: {line}"
        );
    }
    let cancel = ringing.find("<CANCEL")[0];
    let reason = cancel.header("Reason").unwrap_or_default();
    check!(
        lab,
        reason == "SIP;cause=200;text=\"Call completed elsewhere\"",
        "Reason of the CANCEL: {reason:?}\n{}",
        cancel.text
    );
    let cid = call_id(&uac);
    assert_call_events(
        &mut lab,
        &cid,
        &[
            r#"newCall in from=491701234567 to=4930555000 user=["Alice Example","Bob Example"] queue=sales"#,
            "answer in from=491701234567 to=4930555000 user=Bob Example answeringNumber=202",
            "hangup in from=491701234567 to=4930555000 answeringNumber=202 cause=normalClearing",
        ],
    );
}

// Test 3 of issue 8: a ring group where nobody answers: 201 is busy at
// once, 202 rings and is busy later; the trunk gets one 486 (after 202's
// 180) and Zammad one hangup busy.
#[test]
fn e2e_fork_03_nobody_answers_one_hangup_busy() {
    require_sipp();
    let mut lab = group_lab("fork-both-busy");
    let a = lab.sipp(
        Host::Phone,
        "uas_reject_486",
        None,
        &[("answer_user", "201")],
    );
    // 202 rings first and is busy 600 ms later: the fork waits for it
    let b = lab.sipp_uas_on_port(
        Host::Phone,
        "uas_ring_reject_486",
        5070,
        &[("answer_user", "202")],
    );
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_expect_486",
            Some("4930555000"),
            &[("user", "+491701234567"), ("display", "Carol")],
        )
        .wait();
    let a = a.wait();
    let b = b.wait();
    // 16.7 step 6: the 486 goes up only once both branches answered
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<180", "<486", ">ACK"]);
    assert_sipp(&lab, &a, &["<INVITE", ">486", "<ACK"]);
    assert_sipp(&lab, &b, &["<INVITE", ">180", ">486", "<ACK"]);
    let cid = call_id(&uac);
    assert_call_events(
        &mut lab,
        &cid,
        &[
            r#"newCall in from=491701234567 to=4930555000 user=["Alice Example","Bob Example"] queue=sales"#,
            "hangup in from=491701234567 to=4930555000 cause=busy",
        ],
    );
}
