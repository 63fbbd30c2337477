//! End-to-end, issue 8 test 4: the provider forks one Call-ID to two
//! phones registered through sipcti, and Zammad sees one call. Real SIPp
//! processes through the real `sipcti` binary against the Zammad double.
//!
//! Two phones register through sipcti (Contact mode), each with its own
//! SIPp process on the lab's phone address: 201 on port 5060 and 202 on
//! port 5062 (`phone_register`, with an out-of-call scenario that answers,
//! rings until cancelled, or refuses). The provider's registrar
//! (`registrar`) grants each binding and learns sipcti's key URI for it.
//! Then the provider sends ONE call as two INVITE branches (one SIPp
//! process, `uac_pfork_*`): same Call-ID, From tag and CSeq, Via branches
//! `z9hG4bK-<pid>-pfork-1` and `-2`, each branch's Request-URI the key URI
//! of one binding. SIPp matches each response to its branch by the Via
//! branch (`start_txn` / `response_txn`); the CANCEL and the ACK of a
//! non-2xx carry the INVITE's branch (RFC 3261 9.1, 17.1.1.3). Branch 2
//! leaves once branch 1's 100 Trying came, so it normally reaches sipcti
//! while branch 1 is held for Zammad's `newCall` answer (the same SIP and
//! events are expected when it comes after the answer).
//!
//! Covered: one phone answers and the other is cancelled, the provider's
//! RFC 3326 Reason reaching the phone (one `newCall`, one `answer`, one
//! `hangup`); both phones refuse
//! (one `hangup` with the cause of the last final response, no `answer`);
//! a blocked caller (both branches 486, no phone rings). Each case checks
//! the exact SIP messages every SIPp saw and the exact CTI events, and
//! that no further event arrives. Needs SIPp.

mod lab;

use std::time::Duration;

use lab::{
    assert_events, assert_sipp, call_id, require_sipp, scenario, summary, Host, Lab, Opts, Sipp,
    SippResult, Tp, Traced,
};

/// The first phone's port (user 201); the second (202) uses [`PORT_B`].
const PORT_A: u16 = 5060;
/// The second phone's port on the lab's phone address.
const PORT_B: u16 = 5062;

/// What a phone that only registers sees.
const REGISTERED: [&str; 4] = [">REGISTER", "<401", ">REGISTER", "<200"];

/// A lab with `[registration] mode = "contact"` over UDP.
fn pfork_lab(name: &str) -> Lab {
    Lab::start(
        name,
        Opts {
            tp: Tp::Udp,
            extra_toml: "\n[registration]\nmode = \"contact\"\n".to_string(),
            ..Opts::default()
        },
    )
}

/// Register phone `user` (password `secret<user>`) on `port` through
/// sipcti: start the provider's registrar, then the phone, whose
/// out-of-call scenario `ooc` handles the call for it later; the phone
/// stays up `stay_ms` ms.
/// Returns the running phone and the Contact URI the registrar was given
/// (sipcti's key URI for the binding).
fn register_phone(lab: &Lab, user: &str, port: u16, ooc: &str, stay_ms: &str) -> (Sipp, String) {
    let registrar = lab.sipp_at(
        Host::Trunk,
        "registrar",
        5060,
        None,
        &[("answer_user", user), ("granted", "60")],
        (format!("trunk-registrar-{user}"), &[]),
    );
    let ooc = scenario(ooc).display().to_string();
    let pw = format!("secret{user}");
    let args: Vec<String> = ["-oocsf", &ooc, "-au", user, "-ap", &pw, "-d", stay_ms]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let phone = lab.sipp_at(
        Host::Phone,
        "phone_register",
        port,
        Some(user),
        &[("user", user), ("expires", "120")],
        (format!("phone-{user}"), &args),
    );
    let r = registrar.wait();
    assert_sipp(lab, &r, &["<REGISTER", ">401", "<REGISTER", ">200"]);
    let contact = r.find("<REGISTER")[1].header("Contact").unwrap_or_default();
    let uri = contact
        .split('<')
        .nth(1)
        .and_then(|c| c.split('>').next())
        .unwrap_or("")
        .to_string();
    check!(
        lab,
        uri.starts_with("sip:rb") && uri.ends_with(&format!("@{}:5060", lab.proxy_ip())),
        "the registrar got sipcti's key URI for {user}: {contact:?}"
    );
    (phone, uri)
}

/// The provider's forked call (scenario `scen`) from +491701234567 "Bob"
/// to 4930123456: branch 1 to `ruri1`, branch 2 to `ruri2`, caller `user`.
fn provider_forks(lab: &Lab, scen: &str, ruri1: &str, ruri2: &str, user: &str) -> SippResult {
    lab.sipp(
        Host::Trunk,
        scen,
        Some("4930123456"),
        &[
            ("ruri1", ruri1),
            ("ruri2", ruri2),
            ("user", user),
            ("display", "Bob"),
        ],
    )
    .wait()
}

/// The Via branch of message `m` (its top Via's `branch` parameter).
fn via_branch(m: &Traced) -> String {
    m.header("Via")
        .unwrap_or_default()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .unwrap_or("")
        .to_string()
}

/// Each message the provider saw with short form `short` (e.g. `<180`)
/// belongs to the branches `expect`, in this order (`1` for
/// `z9hG4bK-<pid>-pfork-1`, `2` for `-2`, sorted when `any_order`).
fn assert_branches(lab: &Lab, r: &SippResult, short: &str, expect: &[u8], any_order: bool) {
    let mut got: Vec<u8> = r
        .find(short)
        .iter()
        .map(|m| match via_branch(m).rsplit('-').next() {
            Some("1") => 1,
            Some("2") => 2,
            _ => 0,
        })
        .collect();
    if any_order {
        got.sort_unstable();
    }
    check!(
        lab,
        got == expect,
        "branches of the provider's {short}: {got:?}, expected {expect:?}"
    );
}

/// Zammad accepted exactly `expect` for SIP Call-ID `cid`, and nothing more
/// arrives within half a second (one call: no second `newCall`, no second
/// `hangup`).
fn assert_one_call(lab: &Lab, cid: &str, expect: &[&str]) {
    assert_events(lab, expect.len(), cid, expect);
    std::thread::sleep(Duration::from_millis(500));
    let more = lab.accepted_events(expect.len() + 1, Duration::from_millis(100));
    check!(
        lab,
        more.len() == expect.len(),
        "more CTI events than one call: {:#?}",
        more.iter().map(summary).collect::<Vec<_>>()
    );
}

/// Issue 8 test 4: the provider forks the call to 201 and 202; 201
/// answers (after 202 rang), the provider CANCELs 202's branch with
/// `Reason: SIP;cause=200;text="Call completed elsewhere"`, 202 answers 487.
/// Zammad: one `newCall`, one `answer` by 201, one `hangup` normalClearing.
#[test]
fn e2e_pfork_01_one_answers_other_cancelled() {
    require_sipp();
    let lab = pfork_lab("pfork-one-answers");
    let (a, uri_a) = register_phone(&lab, "201", PORT_A, "phone_pfork_answer_ooc", "3500");
    let (b, uri_b) = register_phone(&lab, "202", PORT_B, "phone_pfork_ring_cancel_ooc", "3000");
    check!(lab, uri_a != uri_b, "two bindings: {uri_a} {uri_b}");
    let uac = provider_forks(&lab, "uac_pfork_cancel", &uri_a, &uri_b, "+491701234567");
    let (a, b) = (a.wait(), b.wait());
    assert_sipp(
        &lab,
        &uac,
        &[
            ">INVITE", "<100", ">INVITE", "<100", "<180", "<180", "<200", ">ACK", ">CANCEL",
            "<200", "<487", ">ACK", ">BYE", "<200",
        ],
    );
    assert_branches(&lab, &uac, "<100", &[1, 2], false);
    assert_branches(&lab, &uac, "<180", &[1, 2], true);
    assert_branches(&lab, &uac, "<487", &[2], false);
    let ok = uac.find("<200");
    check!(
        lab,
        via_branch(ok[0]).ends_with("-pfork-1")
            && ok[0].header("CSeq").as_deref() == Some("1 INVITE")
            && ok[1].header("CSeq").as_deref() == Some("1 CANCEL"),
        "the 2xx is branch 1's, then the CANCEL's 200: {:?} {:?}",
        ok[0].header("CSeq"),
        ok[1].header("CSeq")
    );
    assert_sipp(
        &lab,
        &a,
        &[
            ">REGISTER",
            "<401",
            ">REGISTER",
            "<200",
            "<INVITE",
            ">180",
            ">200",
            "<ACK",
            "<BYE",
            ">200",
        ],
    );
    assert_sipp(
        &lab,
        &b,
        &[
            ">REGISTER",
            "<401",
            ">REGISTER",
            "<200",
            "<INVITE",
            ">180",
            "<CANCEL",
            ">200",
            ">487",
            "<ACK",
        ],
    );
    // each phone got the call under its own Contact; one Call-ID for both
    let phone_ip = lab.host_ip(Host::Phone);
    for (r, user, port) in [(&a, "201", PORT_A), (&b, "202", PORT_B)] {
        let inv = r.find("<INVITE")[0];
        let line = inv.text.lines().next().unwrap_or("").to_string();
        check!(
            lab,
            line == format!("INVITE sip:{user}@{phone_ip}:{port};transport=UDP SIP/2.0"),
            "Request-URI toward {user}: {line}"
        );
        check!(
            lab,
            inv.header("Call-ID") == uac.find(">INVITE")[0].header("Call-ID"),
            "{user} got the provider's Call-ID"
        );
    }
    let reason = b.find("<CANCEL")[0].header("Reason").unwrap_or_default();
    check!(
        lab,
        reason == "SIP;cause=200;text=\"Call completed elsewhere\"",
        "Reason of the CANCEL toward 202: {reason:?}"
    );
    assert_one_call(
        &lab,
        &call_id(&uac),
        &[
            "newCall in from=491701234567 to=4930123456",
            "answer in from=491701234567 to=4930123456 answeringNumber=201",
            "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=normalClearing",
        ],
    );
}

/// Issue 8 test 4, nobody answers: both phones ring, 201 refuses with 486
/// after 300 ms, 202 with 480 after 900 ms. Zammad: one `newCall`, one
/// `hangup` with the cause of the last final response (480: notFound),
/// no `answer`; the first 486 ends nothing while 202 still rings.
#[test]
fn e2e_pfork_02_both_refuse_one_hangup() {
    require_sipp();
    let lab = pfork_lab("pfork-both-refuse");
    let (a, uri_a) = register_phone(&lab, "201", PORT_A, "phone_pfork_busy_ooc", "3000");
    let (b, uri_b) = register_phone(&lab, "202", PORT_B, "phone_pfork_unavailable_ooc", "3000");
    let uac = provider_forks(&lab, "uac_pfork_fail", &uri_a, &uri_b, "+491701234567");
    let (a, b) = (a.wait(), b.wait());
    assert_sipp(
        &lab,
        &uac,
        &[
            ">INVITE", "<100", ">INVITE", "<100", "<180", "<180", "<486", ">ACK", "<480", ">ACK",
        ],
    );
    assert_branches(&lab, &uac, "<486", &[1], false);
    assert_branches(&lab, &uac, "<480", &[2], false);
    let refused = [
        ">REGISTER",
        "<401",
        ">REGISTER",
        "<200",
        "<INVITE",
        ">180",
        ">486",
        "<ACK",
    ];
    assert_sipp(&lab, &a, &refused);
    let mut refused_b = refused;
    refused_b[6] = ">480";
    assert_sipp(&lab, &b, &refused_b);
    assert_one_call(
        &lab,
        &call_id(&uac),
        &[
            "newCall in from=491701234567 to=4930123456",
            "hangup in from=491701234567 to=4930123456 cause=notFound",
        ],
    );
}

/// Issue 8 test 4, blocked caller (+491715000000, on the double's block
/// list): Zammad refuses the first branch's `newCall`, sipcti answers both
/// branches 486, and no phone rings: each phone sees only its REGISTER.
#[test]
fn e2e_pfork_03_blocked_caller_no_phone_rings() {
    require_sipp();
    let lab = pfork_lab("pfork-blocked");
    let (a, uri_a) = register_phone(&lab, "201", PORT_A, "phone_pfork_answer_ooc", "1500");
    let (b, uri_b) = register_phone(&lab, "202", PORT_B, "phone_pfork_ring_cancel_ooc", "1500");
    let uac = provider_forks(&lab, "uac_pfork_blocked", &uri_a, &uri_b, "491715000000");
    let (a, b) = (a.wait(), b.wait());
    assert_sipp(
        &lab,
        &uac,
        &[
            ">INVITE", "<100", ">INVITE", "<100", "<486", ">ACK", "<486", ">ACK",
        ],
    );
    assert_branches(&lab, &uac, "<486", &[1, 2], false);
    assert_sipp(&lab, &a, &REGISTERED);
    assert_sipp(&lab, &b, &REGISTERED);
    assert_one_call(
        &lab,
        &call_id(&uac),
        &[
            "newCall in from=491715000000 to=4930123456",
            "hangup in from=491715000000 to=4930123456 cause=busy",
        ],
    );
}
