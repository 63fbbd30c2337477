//! End-to-end, issue 8: phones that register with the provider through
//! sipcti, with real SIPp processes through the real `sipcti` binary against
//! the Zammad double.
//!
//! The phone is one SIPp process (`phone_register` with the out-of-call
//! scenario `phone_answer_ooc`): it REGISTERs through sipcti (challenged
//! with 401, then with credentials) and then answers calls on the same
//! socket or TCP connection. The provider is SIPp too: `registrar` (checks
//! the digest, grants the binding, echoes Path), then `uac_to_binding`,
//! which calls the Contact (or Path) the registrar was given.
//!
//! Covered (issue 8's tests 5, 6, 7 and 9): Contact mode and Path mode;
//! an expired and a removed binding (480, `hangup` cause `notFound`); a
//! restart of sipcti between the REGISTER and the call (the binding comes
//! back from the store); TCP, where the call comes down the connection the
//! phone registered on. Each case checks the SIP messages each side saw and
//! the exact CTI events. Needs SIPp.

mod lab;

use std::time::Duration;

use lab::{
    assert_events, assert_sipp, call_id, require_sipp, scenario, Host, Lab, Opts, Sipp, SippResult,
    Tp,
};

/// A lab with `[registration]` in `mode` (and a store file in the lab's
/// temp directory when `store`).
fn reg_lab(name: &str, tp: Tp, mode: &str, store: bool) -> Lab {
    let store_line = if store {
        let path =
            std::env::temp_dir().join(format!("sipcti-e2e-{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        format!("store = \"{}\"\n", path.display())
    } else {
        String::new()
    };
    Lab::start(
        name,
        Opts {
            tp,
            extra_toml: format!("\n[registration]\nmode = \"{mode}\"\n{store_line}"),
            ..Opts::default()
        },
    )
}

/// Start the phone (user 201, password `secret201`): it registers for
/// `expires` s and stays up `stay_ms` ms answering calls.
fn start_phone(lab: &Lab, expires: &str, stay_ms: &str) -> Sipp {
    let ooc = scenario("phone_answer_ooc").display().to_string();
    let args: Vec<String> = [
        "-oocsf",
        &ooc,
        "-au",
        "201",
        "-ap",
        "secret201",
        "-d",
        stay_ms,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lab.sipp_args(
        Host::Phone,
        "phone_register",
        Some("201"),
        &[("user", "201"), ("expires", expires)],
        "phone-register",
        &args,
    )
}

/// Run the registrar (grants `granted` s) while `phone` registers; return
/// the registrar's messages and the Contact URI and Path it got (`None`
/// without a Path).
fn register(lab: &Lab, granted: &str) -> (SippResult, String, Option<String>) {
    let registrar = lab.sipp(
        Host::Trunk,
        "registrar",
        None,
        &[("answer_user", "201"), ("granted", granted)],
    );
    registrar_done(lab, registrar.wait())
}

fn registrar_done(lab: &Lab, r: SippResult) -> (SippResult, String, Option<String>) {
    assert_sipp(lab, &r, &["<REGISTER", ">401", "<REGISTER", ">200"]);
    let reg = r.find("<REGISTER")[1];
    let contact = reg.header("Contact").expect("Contact");
    let uri = contact
        .split('<')
        .nth(1)
        .and_then(|c| c.split('>').next())
        .expect("<uri>")
        .to_string();
    let path = reg.header("Path");
    (r, uri, path)
}

/// The user of `uri` (`sip:user@host...`).
fn user_of(uri: &str) -> String {
    uri.trim_start_matches("sip:")
        .split('@')
        .next()
        .unwrap_or("")
        .to_string()
}

/// The provider's call to `ruri` with `route` (a header line), dialled
/// number 4930123456, from +491701234567.
fn provider_calls(lab: &Lab, scen: &str, ruri: &str, route: &str) -> SippResult {
    lab.sipp(
        Host::Trunk,
        scen,
        Some("4930123456"),
        &[
            ("ruri", ruri),
            ("route", route),
            ("user", "+491701234567"),
            ("display", "Bob"),
        ],
    )
    .wait()
}

const ANSWERED: [&str; 3] = [
    "newCall in from=491701234567 to=4930123456",
    "answer in from=491701234567 to=4930123456 answeringNumber=201",
    "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=normalClearing",
];

const PHONE_ANSWERED: [&str; 10] = [
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
];

/// Test 5, Contact mode: the registrar gets sipcti's key URI (no extension,
/// no phone address), the phone gets its own Contact back, and the
/// provider's call to the key reaches the phone with the phone's Contact
/// as Request-URI.
fn contact_mode(tp: Tp, name: &str) {
    require_sipp();
    let lab = reg_lab(name, tp, "contact", false);
    let phone_ip = lab.host_ip(Host::Phone);
    let proxy_ip = lab.proxy_ip();
    let t = match tp {
        Tp::Udp => "UDP",
        Tp::Tcp => "TCP",
    };
    let phone = start_phone(&lab, "120", "3000");
    let (_, uri, path) = register(&lab, "60");
    let key = user_of(&uri);
    check!(
        lab,
        key.len() == 18 && key.starts_with("rb") && path.is_none(),
        "the registrar got an opaque key, no Path: {uri} {path:?}"
    );
    let tport = if tp == Tp::Tcp { ";transport=tcp" } else { "" };
    check!(
        lab,
        uri == format!("sip:{key}@{proxy_ip}:5060{tport}"),
        "the registrar's Contact names sipcti only: {uri}"
    );
    let uac = provider_calls(&lab, "uac_to_binding", &uri, "X-Route: none");
    let phone = phone.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(&lab, &phone, &PHONE_ANSWERED);
    let ok = phone.find("<200")[0];
    let own = format!("<sip:201@{phone_ip}:5060;transport={t}>;expires=60");
    check!(
        lab,
        ok.header("Contact").as_deref() == Some(own.as_str()),
        "the phone gets its own Contact back: {:?}",
        ok.header("Contact")
    );
    let inv = phone.find("<INVITE")[0];
    let ruri = inv.text.lines().next().unwrap_or("").to_string();
    check!(
        lab,
        ruri == format!("INVITE sip:201@{phone_ip}:5060;transport={t} SIP/2.0"),
        "Request-URI toward the phone: {ruri}"
    );
    // no topology leak: the provider sees sipcti's masked Contact in the
    // phone's answer, neither the extension nor the phone's address
    let ok = uac.find("<200")[0];
    let c = ok.header("Contact").unwrap_or_default();
    check!(
        lab,
        c.starts_with("<sip:tc")
            && c.contains(&format!("@{proxy_ip}:5060"))
            && !c.contains("201@")
            && !c.contains(&phone_ip),
        "the provider sees the phone's Contact: {c}"
    );
    assert_events(&lab, 3, &call_id(&uac), &ANSWERED);
}

#[test]
fn e2e_register_05_contact_mode_udp() {
    contact_mode(Tp::Udp, "register-contact-udp");
}

/// Test 9: over TCP the REGISTER and the inbound call share one
/// connection (the phone's SIPp has no listening port of its own in use
/// for it: the call comes to the flow).
#[test]
fn e2e_register_09_contact_mode_tcp_same_connection() {
    contact_mode(Tp::Tcp, "register-contact-tcp");
}

/// Test 5, Path mode: the registrar gets the phone's own Contact and a Path
/// naming sipcti; its call comes with that Path as Route and reaches the
/// phone.
#[test]
fn e2e_register_05_path_mode() {
    require_sipp();
    let lab = reg_lab("register-path", Tp::Udp, "path", false);
    let phone_ip = lab.host_ip(Host::Phone);
    let proxy_ip = lab.proxy_ip();
    let phone = start_phone(&lab, "120", "3000");
    let (_, uri, path) = register(&lab, "60");
    check!(
        lab,
        uri == format!("sip:201@{phone_ip}:5060;transport=UDP"),
        "Path mode keeps the phone's Contact: {uri}"
    );
    let path = path.unwrap_or_default();
    let key = path
        .strip_prefix("<sip:")
        .and_then(|p| p.strip_suffix(&format!("@{proxy_ip}:5060;lr>")))
        .unwrap_or("")
        .to_string();
    check!(
        lab,
        key.len() == 18 && key.starts_with("rb"),
        "Path: {path}"
    );
    let uac = provider_calls(&lab, "uac_to_binding", &uri, &format!("Route: {path}"));
    let phone = phone.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(&lab, &phone, &PHONE_ANSWERED);
    let inv = phone.find("<INVITE")[0];
    check!(
        lab,
        inv.header("Route").is_none(),
        "our Route is popped: {:?}",
        inv.header("Route")
    );
    assert_events(&lab, 3, &call_id(&uac), &ANSWERED);
}

/// Test 6: a binding that expired (granted 1 s) and one removed with
/// `Expires: 0` give 480; Zammad gets `newCall` and `hangup` `notFound`.
#[test]
fn e2e_register_06_expired_and_removed_binding_480() {
    require_sipp();
    let lab = reg_lab("register-expired", Tp::Udp, "contact", false);
    let phone = start_phone(&lab, "120", "200");
    let (_, uri, _) = register(&lab, "1");
    let _ = phone.wait();
    std::thread::sleep(Duration::from_millis(1_500));
    let uac = provider_calls(&lab, "uac_to_binding_480", &uri, "X-Route: none");
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<480", ">ACK"]);
    let cid = call_id(&uac);
    assert_events(
        &lab,
        2,
        &cid,
        &[
            "newCall in from=491701234567 to=4930123456",
            "hangup in from=491701234567 to=4930123456 cause=notFound",
        ],
    );
    // removed: the phone registers again with Expires 0
    let phone = start_phone(&lab, "0", "200");
    let registrar = lab.sipp(
        Host::Trunk,
        "registrar",
        None,
        &[("answer_user", "201"), ("granted", "0")],
    );
    let (_, uri2, _) = registrar_done(&lab, registrar.wait());
    check!(
        lab,
        uri2 == uri,
        "the same phone keeps its key: {uri2} {uri}"
    );
    let _ = phone.wait();
    let uac = provider_calls(&lab, "uac_to_binding_480", &uri, "X-Route: none");
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<480", ">ACK"]);
    let evs = lab.accepted_events(4, Duration::from_secs(10));
    let last: Vec<String> = evs[2..].iter().map(lab::summary).collect();
    check!(
        lab,
        last == [
            "newCall in from=491701234567 to=4930123456",
            "hangup in from=491701234567 to=4930123456 cause=notFound"
        ],
        "{last:#?}"
    );
}

/// Test 7: sipcti restarts between the REGISTER and the inbound call; the
/// binding comes back from `[registration] store` and the call reaches the
/// phone.
#[test]
fn e2e_register_07_restart_between_register_and_call() {
    require_sipp();
    let mut lab = reg_lab("register-restart", Tp::Udp, "contact", true);
    let phone = start_phone(&lab, "120", "6000");
    let (_, uri, _) = register(&lab, "60");
    // give the store's writer a moment, then restart
    std::thread::sleep(Duration::from_millis(300));
    lab.restart_proxy();
    let log = lab.proxy_log();
    check!(
        lab,
        log.contains("registration bindings loaded") && log.contains("bindings=1"),
        "the binding was loaded at start"
    );
    let uac = provider_calls(&lab, "uac_to_binding", &uri, "X-Route: none");
    let phone = phone.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(&lab, &phone, &PHONE_ANSWERED);
    assert_events(&lab, 3, &call_id(&uac), &ANSWERED);
}
