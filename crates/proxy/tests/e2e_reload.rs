//! End-to-end, issue 9: SIGHUP reloads the configuration file without
//! dropping a call or an event. Under a load of inbound calls a new
//! `[[routes]]` entry and `[numbers]` change arrive by SIGHUP: every call
//! completes, the calls after the reload carry the route's `queue`, the
//! ones before do not, and Zammad gets every call whole; a broken file is
//! refused with a clear log line and the running configuration stays.
//! Needs SIPp.

mod lab;

use std::time::Duration;

use lab::{require_sipp, summary, Host, Lab, Opts};

const ROUTE: &str = r#"
[[routes]]
number = "4930123456"
targets = ["sip:201@{phone}:5060"]
queue = "support"
"#;

#[test]
fn sighup_applies_a_new_route_under_load_and_refuses_a_broken_file() {
    require_sipp();
    let lab = Lab::start("reload", Opts::default());
    let config = std::fs::read_to_string(&lab.config_path).expect("config");
    let phone = lab.host_ip(Host::Phone);
    let n = "30";
    let uas = lab.sipp_args(
        Host::Phone,
        "uas_answer",
        None,
        &[],
        "phone-uas",
        &["-m".into(), n.into()],
    );
    let uac = lab.sipp_args(
        Host::Trunk,
        "uac_hangup",
        Some("4930123456"),
        &[("user", "+491701234567")],
        "trunk-uac",
        &["-m".into(), n.into(), "-r".into(), "10".into()],
    );
    // mid-load: the route arrives by SIGHUP
    std::thread::sleep(Duration::from_millis(1_200));
    // and [numbers] and a limit change with it
    let changed = config.replace(
        "country_code = \"49\"",
        "country_code = \"49\"\nmax_internal_len = 5",
    );
    check!(lab, changed != config, "the lab's config has [numbers]");
    std::fs::write(
        &lab.config_path,
        format!(
            "{changed}{}\n[limits]\ninside_rate_per_s = 40\n",
            ROUTE.replace("{phone}", &phone)
        ),
    )
    .expect("write config");
    lab.signal_proxy("HUP");
    check!(
        lab,
        lab.wait_log("configuration reloaded", 1, Duration::from_secs(5)),
        "no 'configuration reloaded' line"
    );
    let uac = uac.wait();
    let uas = uas.wait();
    check!(lab, uac.ok, "SIPp trunk failed: {}", uac.errors);
    check!(lab, uas.ok, "SIPp phone failed: {}", uas.errors);
    let evs = lab.accepted_events(90, Duration::from_secs(15));
    check!(lab, evs.len() == 90, "{} events, expected 90", evs.len());
    let newcalls: Vec<String> = evs
        .iter()
        .filter(|e| e.event.as_deref() == Some("newCall"))
        .map(summary)
        .collect();
    let with_queue = newcalls
        .iter()
        .filter(|s| s.ends_with("queue=support"))
        .count();
    check!(
        lab,
        with_queue > 0 && with_queue < 30,
        "calls after the reload carry the queue, those before do not: {newcalls:#?}"
    );
    // once a call carries the queue, every later one does
    let first = newcalls
        .iter()
        .position(|s| s.ends_with("queue=support"))
        .unwrap_or(0);
    check!(
        lab,
        newcalls[first..]
            .iter()
            .all(|s| s.ends_with("queue=support")),
        "{newcalls:#?}"
    );
    let hangups = evs
        .iter()
        .filter(|e| e.event.as_deref() == Some("hangup"))
        .filter(|e| e.cause.as_deref() == Some("normalClearing"))
        .count();
    check!(lab, hangups == 30, "{hangups} normal hangups, expected 30");

    // a broken file: refused, the running configuration (with the route) stays
    std::fs::write(&lab.config_path, "[sip\nlisten = ").expect("write config");
    lab.signal_proxy("HUP");
    check!(
        lab,
        lab.wait_log("reload refused", 1, Duration::from_secs(5)),
        "no 'reload refused' line"
    );
    let uas = lab.sipp(Host::Phone, "uas_answer", None, &[]);
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930123456"),
            &[("user", "+491701234567")],
        )
        .wait();
    let uas = uas.wait();
    check!(
        lab,
        uac.ok && uas.ok,
        "the call after the refused reload failed"
    );
    let evs = lab.accepted_events(93, Duration::from_secs(10));
    check!(
        lab,
        evs.len() == 93 && summary(&evs[90]).ends_with("queue=support"),
        "the route stays after a refused reload: {:?}",
        evs.get(90).map(summary)
    );
    let log = lab.proxy_log();
    check!(lab, !log.contains(lab::TOKEN), "the token is in the log");
}
