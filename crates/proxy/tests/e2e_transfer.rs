//! End-to-end, issue 8 "Transfers and redirects" (test 8: "302:
//! `forwarded`. REFER: `forwarded`, then the new call."): real SIPp
//! processes through the real `sipcti` binary against the Zammad double.
//! Each case checks the SIP messages each SIPp side saw and the exact CTI
//! events Zammad accepted (order, fields, cause, callId); the replay of
//! the capture gives the same events. Needs SIPp and tcpdump.
//!
//! The new leg of a transfer is a second call with its own Call-ID, so it
//! is a second SIPp process; one that must call from a port other than
//! 5060 is started by [`sipp_on_port`] (the lab's own launcher binds 5060
//! for a UAC).

mod lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{
    assert_replay_matches, assert_sipp, call_id, require_sipp, summary, Host, Lab, Opts, Tp,
};
use sipcti_zammad_double::LoggedRequest;

const T: Duration = Duration::from_secs(15);

/// A lab with inbound routes: 4930123456 to `sip:201@<phone>:5060`,
/// 4930123457 (the transfer target) to `sip:202@<phone>:5062`; a phonebook
/// for 201 and 202; a capture for the replay.
fn transfer_lab(name: &str) -> Lab {
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
number = "4930123456"
targets = ["sip:201@{phone}:5060"]
[[routes]]
number = "4930123457"
targets = ["sip:202@{phone}:5062"]

[phonebook]
"201" = "Alice Example"
"202" = "Bob Example"
"#
            .into(),
            ..Opts::default()
        },
    )
}

/// A SIPp UAC as `host` bound to `port` (not 5060), calling `service`
/// through the proxy over UDP, with the lab's default keys. The lab's
/// `sipp` binds 5060, which the first leg of a transfer already holds.
fn sipp_on_port(
    lab: &Lab,
    host: Host,
    scen: &str,
    port: u16,
    service: &str,
    keys: &[(&str, &str)],
) -> lab::Sipp {
    let tag = format!("{host:?}-{port}-{scen}").to_lowercase();
    lab.sipp_at(host, scen, port, Some(service), keys, (tag, &[]))
}

/// Waits (at most `T`) until Zammad accepted `expect.len()` requests, then
/// checks their summaries and callIds, in order. Returns the requests.
fn assert_calls(lab: &Lab, expect: &[(&str, &str)]) -> Vec<LoggedRequest> {
    let evs = lab.accepted_events(expect.len(), T);
    // a few more would show as a mismatch too
    std::thread::sleep(Duration::from_millis(300));
    let evs = if lab.accepted_events(0, T).len() > evs.len() {
        lab.accepted_events(0, T)
    } else {
        evs
    };
    let got: Vec<(String, String)> = evs
        .iter()
        .map(|e| (summary(e), e.call_id.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(String, String)> = expect
        .iter()
        .map(|(s, c)| (s.to_string(), c.to_string()))
        .collect();
    check!(lab, got == want, "CTI events {got:#?}\nexpected {want:#?}");
    evs
}

/// Waits (at most `T`) for `path` to exist.
fn wait_file(lab: &Lab, path: &Path) {
    let deadline = Instant::now() + T;
    while !path.exists() {
        check!(
            lab,
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The user part of the URI in a From/To value.
fn uri_user(v: &str) -> String {
    let start = v.find("sip:").map(|i| i + 4).unwrap_or(0);
    let rest = &v[start..];
    rest[..rest.find('@').unwrap_or(rest.len())].to_string()
}

// ---------------------------------------------------------------- 302

// Test 8, first half: a 3xx from the callee is relayed unchanged (Contact
// included) and the call ends `forwarded`; outbound (the trunk redirects)
// and inbound (the phone redirects).
#[test]
fn e2e_transfer_01_302_forwarded_both_directions() {
    require_sipp();
    let mut lab = transfer_lab("transfer-302");
    let phone = lab.host_ip(Host::Phone);

    let uas = lab.sipp(
        Host::Trunk,
        "uas_redirect_302",
        None,
        &[
            ("redirect_user", "4930999888"),
            ("redirect_host", "voicemail.example"),
        ],
    );
    let uac = lab
        .sipp(Host::Phone, "uac_expect_302", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<302", ">ACK"]);
    assert_sipp(&lab, &uas, &["<INVITE", ">302", "<ACK"]);
    let contact = uac.find("<302")[0].header("Contact").unwrap_or_default();
    check!(
        lab,
        contact == "<sip:4930999888@voicemail.example>",
        "302's Contact reaches the phone unchanged: {contact}"
    );
    let out_cid = call_id(&uac);

    let uas = lab.sipp(
        Host::Phone,
        "uas_redirect_302",
        None,
        &[
            ("redirect_user", "202"),
            ("redirect_host", &format!("{phone}:5062")),
        ],
    );
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_expect_302",
            Some("4930123456"),
            &[("user", "+491701234567"), ("display", "Bob")],
        )
        .wait();
    let uas = uas.wait();
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<302", ">ACK"]);
    assert_sipp(&lab, &uas, &["<INVITE", ">302", "<ACK"]);
    let in_cid = call_id(&uac);

    let evs = assert_calls(
        &lab,
        &[
            (
                "newCall out from=201 to=49301234567 user=Alice Example",
                &out_cid,
            ),
            (
                "hangup out from=201 to=49301234567 cause=forwarded",
                &out_cid,
            ),
            (
                "newCall in from=491701234567 to=4930123456 user=Alice Example",
                &in_cid,
            ),
            (
                "hangup in from=491701234567 to=4930123456 cause=forwarded",
                &in_cid,
            ),
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

// ------------------------------------------------------- blind transfer

// Test 8, second half, the phone as transferor (RFC 5589 6.1): an inbound
// call to 201; 201 sends REFER (Refer-To 4930123457) toward the trunk, the
// trunk (transferee) answers 202 and NOTIFYs 100 Trying; it then calls the
// transfer target (a new INVITE from the trunk, routed to 202), NOTIFYs
// 200 OK once that call is up, and 201 hangs up. Zammad: the first call
// ends `forwarded`, the new leg is a newCall/answer of its own, and it
// ends normally after it.
#[test]
fn e2e_transfer_02_blind_refer_by_phone_then_new_call() {
    require_sipp();
    let mut lab = transfer_lab("transfer-blind-phone");
    let flag = lab.dir.join("refer-accepted");
    let flag_s = flag.to_string_lossy().to_string();
    let transferor = lab.sipp(
        Host::Phone,
        "uas_answer_refer",
        None,
        &[
            ("answer_user", "201"),
            ("refer_to", &format!("4930123457@{}", lab.proxy_ip())),
            ("flag", &flag_s),
        ],
    );
    let target = lab.sipp_uas_on_port(
        Host::Phone,
        "uas_refer_target",
        5062,
        &[("answer_user", "202")],
    );
    let transferee = lab.sipp(
        Host::Trunk,
        "uac_transferee",
        Some("4930123456"),
        &[("user", "+491701234567"), ("display", "Bob")],
    );
    // the REFER was accepted: the transferee calls the target
    wait_file(&lab, &flag);
    let new_leg = sipp_on_port(
        &lab,
        Host::Trunk,
        "uac_wait_bye",
        5062,
        "4930123457",
        &[("user", "+491701234567"), ("display", "Bob")],
    );
    let transferee = transferee.wait();
    let transferor = transferor.wait();
    let new_leg = new_leg.wait();
    let target = target.wait();
    assert_sipp(
        &lab,
        &transferee,
        &[
            ">INVITE", "<100", "<180", "<200", ">ACK", "<REFER", ">202", ">NOTIFY", "<200",
            ">NOTIFY", "<200", "<BYE", ">200",
        ],
    );
    assert_sipp(
        &lab,
        &transferor,
        &[
            "<INVITE", ">180", ">200", "<ACK", ">REFER", "<202", "<NOTIFY", ">200", "<NOTIFY",
            ">200", ">BYE", "<200",
        ],
    );
    assert_sipp(
        &lab,
        &new_leg,
        &[">INVITE", "<100", "<180", "<200", ">ACK", "<BYE", ">200"],
    );
    assert_sipp(
        &lab,
        &target,
        &["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"],
    );
    // the REFER reached the trunk in the dialog, Refer-To untouched; the
    // NOTIFYs reached the phone with their sipfrag
    let refer = transferee.find("<REFER")[0];
    let refer_to = refer.header("Refer-To").unwrap_or_default();
    check!(
        lab,
        refer_to == format!("<sip:4930123457@{}>", lab.proxy_ip()),
        "Refer-To at the transferee: {refer_to}"
    );
    let notifies = transferor.find("<NOTIFY");
    check!(
        lab,
        notifies[0].text.ends_with("SIP/2.0 100 Trying")
            && notifies[1].text.ends_with("SIP/2.0 200 OK")
            && notifies[1].header("Event").as_deref() == Some("refer"),
        "NOTIFYs at the transferor: {:?}",
        notifies.iter().map(|n| n.text.clone()).collect::<Vec<_>>()
    );
    let first = call_id(&transferee);
    let second = call_id(&new_leg);
    let evs = assert_calls(
        &lab,
        &[
            (
                "newCall in from=491701234567 to=4930123456 user=Alice Example",
                &first,
            ),
            (
                "answer in from=491701234567 to=4930123456 user=Alice Example answeringNumber=201",
                &first,
            ),
            (
                "newCall in from=491701234567 to=4930123457 user=Bob Example",
                &second,
            ),
            (
                "answer in from=491701234567 to=4930123457 user=Bob Example answeringNumber=202",
                &second,
            ),
            (
                "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=forwarded",
                &first,
            ),
            (
                "hangup in from=491701234567 to=4930123457 answeringNumber=202 cause=normalClearing",
                &second,
            ),
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

// The trunk party as transferor, the phone as transferee, on an outbound
// call whose caller id Zammad set (the identity rewrite applies to REFER,
// NOTIFY and their responses like to any in-dialog message). The first
// call ends `forwarded`; the phone's call to the transfer target is a new
// outbound call.
#[test]
fn e2e_transfer_03_blind_refer_by_trunk_then_new_call() {
    require_sipp();
    let mut lab = transfer_lab("transfer-blind-trunk");
    let flag = lab.dir.join("refer-accepted");
    let flag_s = flag.to_string_lossy().to_string();
    let transferor = lab.sipp(
        Host::Trunk,
        "uas_answer_refer",
        None,
        &[
            ("answer_user", "4930555"),
            ("refer_to", &format!("0301234999@{}", lab.proxy_ip())),
            ("flag", &flag_s),
        ],
    );
    let transferee = lab
        .sipp(Host::Phone, "uac_transferee", Some("0301234567"), &[])
        .wait();
    let transferor = transferor.wait();
    assert_sipp(
        &lab,
        &transferee,
        &[
            ">INVITE", "<100", "<180", "<200", ">ACK", "<REFER", ">202", ">NOTIFY", "<200",
            ">NOTIFY", "<200", "<BYE", ">200",
        ],
    );
    assert_sipp(
        &lab,
        &transferor,
        &[
            "<INVITE", ">180", ">200", "<ACK", ">REFER", "<202", "<NOTIFY", ">200", "<NOTIFY",
            ">200", ">BYE", "<200",
        ],
    );
    // the phone's identity: 201 toward the phone, Zammad's caller id toward the trunk
    for m in transferee.messages.iter().filter(|m| !m.sent) {
        let phone_side = if m.text.starts_with("SIP/2.0") {
            m.header("From")
        } else {
            m.header("To")
        }
        .unwrap_or_default();
        check!(
            lab,
            uri_user(&phone_side) == "201",
            "the phone saw its identity as {phone_side} in {}",
            m.short()
        );
    }
    for m in transferor.messages.iter().filter(|m| !m.sent) {
        let phone_side = if m.text.starts_with("SIP/2.0") {
            m.header("To")
        } else {
            m.header("From")
        }
        .unwrap_or_default();
        check!(
            lab,
            uri_user(&phone_side) == "4930777000000",
            "the trunk saw the phone as {phone_side} in {}",
            m.short()
        );
    }
    let first = call_id(&transferee);
    // the transferee calls the transfer target
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234999"), &[])
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
    let second = call_id(&uac);
    let evs = assert_calls(
        &lab,
        &[
            (
                "newCall out from=201 to=49301234567 user=Alice Example",
                &first,
            ),
            ("answer out from=201 to=49301234567", &first),
            ("hangup out from=201 to=49301234567 cause=forwarded", &first),
            (
                "newCall out from=201 to=49301234999 user=Alice Example",
                &second,
            ),
            ("answer out from=201 to=49301234999", &second),
            (
                "hangup out from=201 to=49301234999 cause=normalClearing",
                &second,
            ),
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

// ---------------------------------------------------- INVITE with Replaces

// An attended transfer seen from sipcti (RFC 3891 3): 201 talks with the
// trunk party (first call); a new INVITE from the trunk carries Replaces
// naming that dialog and is answered by the target (202, the second
// call); the holder of the replaced dialog then hangs it up. The first
// call ends `forwarded`, the second is a call of its own.
#[test]
fn e2e_transfer_04_invite_with_replaces() {
    require_sipp();
    let mut lab = transfer_lab("transfer-replaces");
    let replaced = lab.sipp(
        Host::Phone,
        "uas_replaced_bye_refer",
        None,
        &[("answer_user", "201")],
    );
    let target = lab.sipp_uas_on_port(
        Host::Phone,
        "uas_refer_target",
        5062,
        &[("answer_user", "202")],
    );
    let first_leg = lab.sipp(
        Host::Trunk,
        "uac_wait_bye",
        Some("4930123456"),
        &[("user", "+491701234567"), ("display", "Bob")],
    );
    // the first call is up before the INVITE that replaces it
    let up = lab.accepted_events(2, T);
    check!(lab, up.len() == 2, "first call answered: {up:?}");
    let trunk = lab.host_ip(Host::Trunk);
    let replaces = format!(
        "1-{}@{trunk};to-tag={}SIPpTag011;from-tag={}SIPpTag001",
        first_leg.pid(),
        replaced.pid(),
        first_leg.pid()
    );
    let new_leg = sipp_on_port(
        &lab,
        Host::Trunk,
        "uac_replaces_refer",
        5064,
        "4930123457",
        &[
            ("user", "+491701234567"),
            ("display", "Bob"),
            ("replaces", &replaces),
        ],
    );
    let first_leg = first_leg.wait();
    let replaced = replaced.wait();
    let new_leg = new_leg.wait();
    let target = target.wait();
    assert_sipp(
        &lab,
        &first_leg,
        &[">INVITE", "<100", "<180", "<200", ">ACK", "<BYE", ">200"],
    );
    assert_sipp(
        &lab,
        &replaced,
        &["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"],
    );
    assert_sipp(
        &lab,
        &new_leg,
        &[">INVITE", "<100", "<180", "<200", ">ACK", "<BYE", ">200"],
    );
    assert_sipp(
        &lab,
        &target,
        &["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"],
    );
    let got = target.find("<INVITE")[0]
        .header("Replaces")
        .unwrap_or_default();
    check!(
        lab,
        got == replaces,
        "Replaces reaches the target unchanged: {got} (sent {replaces})"
    );
    let first = call_id(&first_leg);
    let second = call_id(&new_leg);
    let evs = assert_calls(
        &lab,
        &[
            (
                "newCall in from=491701234567 to=4930123456 user=Alice Example",
                &first,
            ),
            (
                "answer in from=491701234567 to=4930123456 user=Alice Example answeringNumber=201",
                &first,
            ),
            (
                "newCall in from=491701234567 to=4930123457 user=Bob Example",
                &second,
            ),
            (
                "answer in from=491701234567 to=4930123457 user=Bob Example answeringNumber=202",
                &second,
            ),
            (
                "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=forwarded",
                &first,
            ),
            (
                "hangup in from=491701234567 to=4930123457 answeringNumber=202 cause=normalClearing",
                &second,
            ),
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

// ------------------------------------------------------- PRACK and UPDATE

// PRACK (RFC 3262) and UPDATE (RFC 3311) pass in both directions, in the
// early and the confirmed dialog, with the identity rewrite of an outbound
// call whose caller id Zammad set: the trunk sees 4930777000000 wherever
// the phone's identity shows (From of the phone's requests, To of the
// trunk's and of the responses to them), the phone sees 201. They change
// no event.
#[test]
fn e2e_transfer_05_prack_and_update_both_directions() {
    require_sipp();
    let mut lab = transfer_lab("transfer-prack-update");
    let uas = lab.sipp(
        Host::Trunk,
        "uas_prack_update",
        None,
        &[("answer_user", "4930555")],
    );
    let uac = lab
        .sipp(Host::Phone, "uac_prack_update", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[
            ">INVITE", "<100", "<183", ">PRACK", "<200", ">UPDATE", "<200", "<200", ">ACK",
            "<UPDATE", ">200", ">BYE", "<200",
        ],
    );
    assert_sipp(
        &lab,
        &uas,
        &[
            "<INVITE", ">183", "<PRACK", ">200", "<UPDATE", ">200", ">200", "<ACK", ">UPDATE",
            "<200", "<BYE", ">200",
        ],
    );
    let rack = uas.find("<PRACK")[0].header("RAck").unwrap_or_default();
    check!(lab, rack == "1 1 INVITE", "RAck at the trunk: {rack}");
    let tag = format!("{}SIPpTag001", uac_pid(&call_id(&uac)));
    let phone_identity = |m: &lab::Traced| {
        [m.header("From"), m.header("To")]
            .into_iter()
            .flatten()
            .find(|v| v.contains(&tag))
            .unwrap_or_default()
    };
    for m in uas.messages.iter().filter(|m| !m.sent) {
        let v = phone_identity(m);
        check!(
            lab,
            uri_user(&v) == "4930777000000",
            "the trunk saw the phone as {v:?} in {}",
            m.short()
        );
    }
    for m in uac.messages.iter().filter(|m| !m.sent) {
        let v = phone_identity(m);
        check!(
            lab,
            uri_user(&v) == "201",
            "the phone saw itself as {v:?} in {}",
            m.short()
        );
    }
    let cid = call_id(&uac);
    let evs = assert_calls(
        &lab,
        &[
            (
                "newCall out from=201 to=49301234567 user=Alice Example",
                &cid,
            ),
            ("answer out from=201 to=49301234567", &cid),
            (
                "hangup out from=201 to=49301234567 cause=normalClearing",
                &cid,
            ),
        ],
    );
    assert_replay_matches(&mut lab, &evs);
}

/// The pid in a SIPp Call-ID `<call number>-<pid>@<ip>`.
fn uac_pid(cid: &str) -> &str {
    cid.split(['-', '@']).nth(1).unwrap_or("")
}
