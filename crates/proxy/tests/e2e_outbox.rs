//! End-to-end, issue 9 "never lose a CTI event": the real `sipcti` binary
//! with a durable outbox (`[zammad] outbox`), real SIPp calls, and the
//! Zammad double switched down and up: SIGKILL and SIGTERM during an
//! outage, then a restart, deliver exactly the accepted events, in order,
//! once each, with no call left open; a tiny queue drops whole calls only;
//! and when Zammad returns the next newCall is answered at once. Needs SIPp.

mod lab;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::{require_sipp, summary, Host, Lab, Opts};
use sipcti_zammad_double::{CallState, LoggedRequest, Mode};

/// SIPp as `host` (its user `user`) with scenario `scen`, `calls` calls at
/// `calls` per second (the lab's launcher, `-m`/`-r`/`-l` raised); with
/// `service` it calls that number through the proxy, else it is a UAS
/// (returned once it has bound its port).
fn sipp(
    lab: &Lab,
    (host, user): (Host, &str),
    scen: &str,
    service: Option<&str>,
    calls: u32,
    tag: &str,
) -> lab::Sipp {
    let n = calls.to_string();
    let args: Vec<String> = ["-m", &n, "-r", &n, "-l", &n]
        .iter()
        .map(|a| a.to_string())
        .collect();
    lab.sipp_args(host, scen, service, &[("user", user)], tag, &args)
}

/// A fresh directory for a lab's outbox (outside the lab dir, which the
/// lab creates only once the config is written).
fn outbox_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sipcti-e2e-outbox-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("outbox dir");
    d
}

fn opts(outbox: &Path, extra: &str) -> Opts {
    Opts {
        // Zammad is down for most of these calls: fail open quickly
        newcall_timeout_ms: 300,
        extra_toml: format!(
            "outbox = \"{}\"\n{extra}",
            outbox.join("outbox.db").display()
        ),
        ..Opts::default()
    }
}

/// `n` outbound calls (phone 201 dials 0301234567, the trunk answers, the
/// phone hangs up), all of which must succeed.
fn outbound_calls(lab: &Lab, n: u32, tag: &str) {
    let uas = sipp(
        lab,
        (Host::Trunk, "201"),
        "uas_answer",
        None,
        n,
        &format!("{tag}-uas"),
    );
    let uac = sipp(
        lab,
        (Host::Phone, "201"),
        "uac_hangup",
        Some("0301234567"),
        n,
        &format!("{tag}-uac"),
    );
    check!(
        lab,
        uac.wait().ok,
        "SIPp UAC {tag} failed (see {tag}-uac.out)"
    );
    check!(lab, uas.wait().ok, "SIPp UAS {tag} failed");
}

/// `n` inbound calls from the trunk (+491701234567 dials 4930111222) that
/// the phone rejects with 486 Busy: missed calls in Zammad.
fn inbound_busy_calls(lab: &Lab, n: u32, tag: &str) {
    let uas = sipp(
        lab,
        (Host::Phone, "201"),
        "uas_reject_486",
        None,
        n,
        &format!("{tag}-uas"),
    );
    let uac = sipp(
        lab,
        (Host::Trunk, "+491701234567"),
        "uac_expect_486",
        Some("4930111222"),
        n,
        &format!("{tag}-uac"),
    );
    check!(
        lab,
        uac.wait().ok,
        "SIPp UAC {tag} failed (see {tag}-uac.out)"
    );
    check!(lab, uas.wait().ok, "SIPp UAS {tag} failed");
}

/// The accepted (200) requests grouped by callId, each call's summaries in
/// arrival order.
fn by_call(evs: &[LoggedRequest]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.status == 200) {
        m.entry(e.call_id.clone().unwrap_or_default())
            .or_default()
            .push(summary(e));
    }
    m
}

const OUT_CALL: [&str; 3] = [
    "newCall out from=201 to=49301234567 user=Alice",
    "answer out from=201 to=49301234567",
    "hangup out from=201 to=49301234567 cause=normalClearing",
];

const BUSY_CALL: [&str; 2] = [
    "newCall in from=491701234567 to=4930111222",
    "hangup in from=491701234567 to=4930111222 cause=busy",
];

/// After the restart with Zammad up: exactly `calls` calls, each with
/// exactly `expect`, in order, once; every call hung up once in the double.
fn assert_delivered_once(lab: &Lab, calls: usize, expect: &[&str]) {
    let n = calls * expect.len();
    lab.accepted_events(n, Duration::from_secs(15));
    // nothing more trickles in
    std::thread::sleep(Duration::from_millis(300));
    let evs = lab.accepted_events(n, Duration::ZERO);
    check!(
        lab,
        evs.len() == n,
        "{} accepted events, expected {n}",
        evs.len()
    );
    let m = by_call(&evs);
    check!(lab, m.len() == calls, "{} calls, expected {calls}", m.len());
    for (id, got) in &m {
        check!(
            lab,
            got == expect,
            "call {id}: {got:#?}\nexpected {expect:#?}"
        );
    }
    for c in lab.double.calls() {
        check!(
            lab,
            c.state == CallState::Hangup && c.hangups == 1,
            "call left open or hung up twice: {c:?}"
        );
    }
}

/// Zammad down, 20 outbound calls through the proxy, SIGKILL, restart,
/// Zammad up: exactly the 60 events, in order per call, once each, and no
/// call left open in the double's caller log.
#[test]
fn sigkill_during_an_outage_loses_nothing() {
    require_sipp();
    let dir = outbox_dir("kill");
    let mut lab = Lab::start("outbox_sigkill", opts(&dir, ""));
    lab.set_mode(Mode::Fail(503));
    outbound_calls(&lab, 20, "kill");
    // the outbox's group commit (20 ms) is done well before this
    std::thread::sleep(Duration::from_millis(300));
    let log = lab.kill_proxy();
    check!(
        lab,
        lab.accepted_events(0, Duration::ZERO).is_empty(),
        "Zammad was down"
    );
    check!(
        lab,
        !log.contains("stay in the outbox"),
        "SIGKILL runs no shutdown"
    );
    lab.set_mode(Mode::Normal);
    lab.start_proxy_again();
    assert_delivered_once(&lab, 20, &OUT_CALL);
    let log = lab.proxy_log();
    check!(
        lab,
        log.contains("CTI outbox opened") && log.contains("events=60") && log.contains("calls=20"),
        "the restart names what it delivers"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The same with SIGTERM, and missed inbound calls: sipcti drains for 5 s,
/// leaves the events in the outbox, says how many, exits 0; after the
/// restart every call arrives whole, once, still missed.
#[test]
fn sigterm_during_an_outage_leaves_the_events_in_the_outbox() {
    require_sipp();
    let dir = outbox_dir("term");
    let mut lab = Lab::start("outbox_sigterm", opts(&dir, ""));
    lab.set_mode(Mode::Fail(503));
    inbound_busy_calls(&lab, 20, "term");
    let (status, log) = lab.stop_status();
    check!(
        lab,
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    check!(
        lab,
        log.contains("stay in the outbox") && log.contains("events=40") && log.contains("calls=20"),
        "the stop names the events and calls left"
    );
    check!(
        lab,
        lab.accepted_events(0, Duration::ZERO).is_empty(),
        "Zammad was down"
    );
    lab.set_mode(Mode::Normal);
    lab.start_proxy_again();
    assert_delivered_once(&lab, 20, &BUSY_CALL);
    for c in lab.double.calls() {
        check!(lab, c.missed, "a busy inbound call is missed: {c:?}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A tiny queue (6 events, one request at a time) while Zammad is down:
/// whole calls are dropped, the oldest first, and counted; when Zammad
/// returns, the next call's newCall is the first thing it answers (the
/// retries sleeping through their backoff hold no slot), and every call
/// that reaches Zammad is whole.
#[test]
fn overflow_drops_whole_calls_and_zammad_returning_answers_at_once() {
    require_sipp();
    let dir = outbox_dir("overflow");
    let mut lab = Lab::start(
        "outbox_overflow",
        opts(&dir, "queue_capacity = 6\nmax_in_flight = 1\n"),
    );
    lab.set_mode(Mode::Fail(503));
    outbound_calls(&lab, 20, "flood");
    let down = lab.double.log().len();
    check!(
        lab,
        down > 0 && lab.accepted_events(0, Duration::ZERO).is_empty(),
        "Zammad was down"
    );
    check!(
        lab,
        lab.proxy_log().contains("dropped whole"),
        "whole calls dropped and logged"
    );
    // Zammad returns; one more call
    lab.set_mode(Mode::Normal);
    let t0 = Instant::now();
    outbound_calls(&lab, 1, "fresh");
    let took = t0.elapsed();
    let log = lab.double.log();
    let first_ok = log[down..].iter().find(|r| r.status == 200);
    let fresh_newcall = first_ok.and_then(|r| r.call_id.clone());
    check!(
        lab,
        first_ok.is_some_and(|r| r.event.as_deref() == Some("newCall")),
        "the first request Zammad answered after its return: {first_ok:?}"
    );
    // the fresh call did not wait for its newCall: 300 ms pause plus a few round trips
    check!(
        lab,
        took < Duration::from_millis(1500),
        "the fresh call took {took:?}"
    );
    // the backlog follows: the calls kept whole (at most 6 events: 2 calls of 3) and the fresh one
    std::thread::sleep(Duration::from_secs(4));
    let evs = lab.accepted_events(0, Duration::ZERO);
    let m = by_call(&evs);
    check!(lab, m.len() >= 2, "calls delivered: {}", m.len());
    for (id, got) in &m {
        check!(
            lab,
            got == &OUT_CALL,
            "call {id} arrived as a fragment: {got:#?}"
        );
    }
    check!(
        lab,
        fresh_newcall.is_some_and(|id| m.contains_key(&id)),
        "the fresh call arrived whole"
    );
    for c in lab.double.calls() {
        check!(
            lab,
            c.state == CallState::Hangup && c.hangups == 1,
            "call left open: {c:?}"
        );
    }
    let (status, log) = lab.stop_status();
    check!(
        lab,
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    check!(
        lab,
        log.contains("CTI queue empty at shutdown"),
        "everything delivered"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A call answered before a SIGKILL ends with its BYE after the restart:
/// the restarted sipcti finds the open call in the outbox, its call tracker
/// takes it back, and the phone's BYE gives exactly one `hangup`
/// `normalClearing` (issue 9: "their BYE, seen after the restart, produces
/// the hangup"); the client does not close it a second time.
#[test]
fn a_call_open_at_a_sigkill_ends_with_its_bye_after_the_restart() {
    require_sipp();
    let dir = outbox_dir("bye-after-restart");
    let mut lab = Lab::start("outbox_bye_after_restart", opts(&dir, ""));
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let args: Vec<String> = vec!["-d".into(), "3000".into()];
    let uac = lab.sipp_args(
        Host::Phone,
        "uac_hangup_hold",
        Some("0301234567"),
        &[],
        "phone-hold",
        &args,
    );
    // newCall and answer reach Zammad while the phone holds the call
    let evs = lab.accepted_events(2, Duration::from_secs(5));
    let got: Vec<String> = evs.iter().map(summary).collect();
    check!(lab, got == OUT_CALL[..2], "before the kill: {got:#?}");
    std::thread::sleep(Duration::from_millis(200));
    let _ = lab.kill_proxy();
    lab.start_proxy_again();
    let uac = uac.wait();
    let uas = uas.wait();
    lab::assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    lab::assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    let log = lab.proxy_log();
    check!(
        lab,
        log.contains("answered calls open at the last stop taken back") && log.contains("calls=1"),
        "the restart takes the open call back"
    );
    assert_delivered_once(&lab, 1, &OUT_CALL);
    let _ = fs::remove_dir_all(&dir);
}
