//! End-to-end: real SIPp phones and trunks call through the real `sipcti`
//! binary against the Zammad double. Each case checks the SIP messages each
//! SIPp side saw and the exact CTI events Zammad accepted (order, fields,
//! cause). Needs SIPp (`apt-get install sip-tester`).

mod lab;

use std::time::Duration;

use lab::{
    assert_events, assert_replay_matches, assert_sipp, call_id, require_sipp, summary, Host, Lab,
    Opts, Tp,
};
use sipcti_zammad_double::Mode;

const T: Duration = Duration::from_secs(10);

fn opts(tp: Tp) -> Opts {
    Opts {
        tp,
        ..Opts::default()
    }
}

fn from_user(v: &str) -> String {
    let start = v.find("sip:").map(|i| i + 4).unwrap_or(0);
    let rest = &v[start..];
    rest[..rest.find('@').unwrap_or(rest.len())].to_string()
}

fn capturing(tp: Tp) -> Opts {
    assert!(
        lab::tcpdump_available(),
        "tcpdump is not installed: apt-get install -y tcpdump"
    );
    Opts {
        tp,
        capture: true,
        ..Opts::default()
    }
}

// 1. Outbound call answered, then hung up by the phone.
fn out_answered_phone_hangs_up(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, capturing(tp));
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
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
    let inv = uas.find("<INVITE")[0];
    let vias = inv.headers("Via");
    check!(
        lab,
        vias[0].contains(&format!("{}:5060;branch=z9hG4bK", lab.proxy_ip())),
        "top Via {vias:?}"
    );
    check!(
        lab,
        vias.len() == 2,
        "two Via lines toward the trunk: {vias:?}"
    );
    check!(
        lab,
        inv.header("Max-Forwards").as_deref() == Some("69"),
        "Max-Forwards decremented"
    );
    let rr = inv.header("Record-Route").unwrap_or_default();
    check!(
        lab,
        rr.contains(&lab.proxy_ip()) && rr.contains(";lr"),
        "Record-Route {rr}"
    );
    // caller id: the trunk sees Zammad's number on every request, the phone its own
    for m in uas
        .messages
        .iter()
        .filter(|m| !m.text.starts_with("SIP/2.0"))
    {
        let f = m.header("From").unwrap_or_default();
        check!(
            lab,
            from_user(&f) == "4930777000000",
            "trunk saw From {f} in {}",
            m.short()
        );
    }
    for m in uac.messages.iter().filter(|m| !m.sent) {
        let f = m.header("From").unwrap_or_default();
        check!(
            lab,
            from_user(&f) == "201",
            "phone saw From {f} in {}",
            m.short()
        );
    }
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    if std::env::var_os("SIPCTI_RECORD_FIXTURES").is_some() {
        lab.save_fixture(&evs);
    } else {
        assert_replay_matches(&mut lab, &evs);
    }
}

#[test]
fn e2e_01_out_answered_phone_hangs_up_udp() {
    out_answered_phone_hangs_up(Tp::Udp, "out-answered-udp");
}
#[test]
fn e2e_01_out_answered_phone_hangs_up_tcp() {
    out_answered_phone_hangs_up(Tp::Tcp, "out-answered-tcp");
}

// 2. Outbound call answered, then hung up by the trunk; From rewritten
//    toward the trunk and restored toward the phone, also on the trunk's BYE.
fn out_answered_trunk_hangs_up(tp: Tp, name: &str) {
    out_answered_trunk_hangs_up_with(opts(tp), name)
}

fn out_answered_trunk_hangs_up_with(opts: Opts, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, opts);
    let uas = lab.sipp(
        Host::Trunk,
        "uas_answer_bye",
        None,
        &[("answer_user", "4930555")],
    );
    let uac = lab
        .sipp(Host::Phone, "uac_wait_bye", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", "<BYE", ">200"],
    );
    assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"],
    );
    let bye_at_trunk = uas.find(">BYE")[0];
    let to = bye_at_trunk.header("To").unwrap_or_default();
    check!(
        lab,
        from_user(&to) == "4930777000000",
        "trunk's BYE To {to}"
    );
    let bye_at_phone = uac.find("<BYE")[0];
    let to = bye_at_phone.header("To").unwrap_or_default();
    check!(
        lab,
        from_user(&to) == "201",
        "BYE toward the phone carries the phone's identity again: {to}"
    );
    let ok_at_trunk = uas.find("<200")[0];
    let to = ok_at_trunk.header("To").unwrap_or_default();
    check!(
        lab,
        from_user(&to) == "4930777000000",
        "the phone's 200 to BYE toward the trunk: {to}"
    );
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    lab.save_fixture(&evs);
}

#[test]
fn e2e_02_out_answered_trunk_hangs_up_udp() {
    out_answered_trunk_hangs_up(Tp::Udp, "out-trunk-bye-udp");
}
#[test]
fn e2e_02_out_answered_trunk_hangs_up_tcp() {
    out_answered_trunk_hangs_up(Tp::Tcp, "out-trunk-bye-tcp");
}
/// The same call with the Zammad client on its own thread (`[zammad]
/// own_thread = true`; every other case runs it on the core's thread).
#[test]
fn e2e_02_out_answered_trunk_hangs_up_udp_cti_own_thread() {
    let o = Opts {
        extra_toml: "own_thread = true\n".into(),
        ..opts(Tp::Udp)
    };
    out_answered_trunk_hangs_up_with(o, "out-trunk-bye-own-thread");
}

// 3. Inbound call answered, with answeringNumber.
fn in_answered(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, capturing(tp));
    let uas = lab.sipp(Host::Phone, "uas_answer", None, &[("answer_user", "201")]);
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_hangup",
            Some("4930111222"),
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
    let inv = uas.find("<INVITE")[0];
    let ruri = inv.text.lines().next().unwrap_or("").to_string();
    check!(
        lab,
        ruri.starts_with(&format!(
            "INVITE sip:4930111222@{} ",
            lab.host_ip(Host::Phone)
        )),
        "Request-URI toward the inside target: {ruri}"
    );
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall in from=491701234567 to=4930111222",
            "answer in from=491701234567 to=4930111222 answeringNumber=201",
            "hangup in from=491701234567 to=4930111222 answeringNumber=201 cause=normalClearing",
        ],
    );
    if std::env::var_os("SIPCTI_RECORD_FIXTURES").is_some() {
        lab.save_fixture(&evs);
    } else {
        assert_replay_matches(&mut lab, &evs);
    }
}

#[test]
fn e2e_03_in_answered_udp() {
    in_answered(Tp::Udp, "in-answered-udp");
}
#[test]
fn e2e_03_in_answered_tcp() {
    in_answered(Tp::Tcp, "in-answered-tcp");
}

// 4. Inbound call from a blocked number: 486, the inside never sees an INVITE.
fn in_blocked(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, opts(tp));
    // the phone: a bare socket that must stay silent
    let udp =
        std::net::UdpSocket::bind(format!("{}:5060", lab.host_ip(Host::Phone))).expect("phone udp");
    let tcp = std::net::TcpListener::bind(format!("{}:5060", lab.host_ip(Host::Phone)))
        .expect("phone tcp");
    udp.set_nonblocking(true).unwrap();
    tcp.set_nonblocking(true).unwrap();
    let uac = lab
        .sipp(
            Host::Trunk,
            "uac_expect_486",
            Some("4930111222"),
            &[("user", "491715000000")],
        )
        .wait();
    assert_sipp(&lab, &uac, &[">INVITE", "<100", "<486", ">ACK"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 2048];
    check!(
        lab,
        udp.recv_from(&mut buf).is_err(),
        "the phone received a datagram"
    );
    check!(lab, tcp.accept().is_err(), "the phone got a TCP connection");
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        2,
        &cid,
        &[
            "newCall in from=491715000000 to=4930111222",
            "hangup in from=491715000000 to=4930111222 cause=busy",
        ],
    );
    lab.save_fixture(&evs);
}

#[test]
fn e2e_04_in_blocked_udp() {
    in_blocked(Tp::Udp, "in-blocked-udp");
}
#[test]
fn e2e_04_in_blocked_tcp() {
    in_blocked(Tp::Tcp, "in-blocked-tcp");
}

// 5. The caller cancels while it rings.
fn caller_cancels(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, opts(tp));
    let uas = lab.sipp(Host::Trunk, "uas_ring_cancel", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_cancel", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[">INVITE", "<100", "<180", ">CANCEL", "<200", "<487", ">ACK"],
    );
    assert_sipp(
        &lab,
        &uas,
        &["<INVITE", ">180", "<CANCEL", ">200", ">487", "<ACK"],
    );
    let cancel = uas.find("<CANCEL")[0];
    let f = cancel.header("From").unwrap_or_default();
    check!(
        lab,
        from_user(&f) == "4930777000000",
        "CANCEL toward the trunk carries the caller id: {f}"
    );
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        2,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "hangup out from=201 to=49301234567 cause=cancel",
        ],
    );
    lab.save_fixture(&evs);
}

#[test]
fn e2e_05_caller_cancels_udp() {
    caller_cancels(Tp::Udp, "cancel-udp");
}
#[test]
fn e2e_05_caller_cancels_tcp() {
    caller_cancels(Tp::Tcp, "cancel-tcp");
}

// 6./7. The callee answers 486 / 404.
fn callee_rejects(tp: Tp, name: &str, code: &str, cause: &str) {
    require_sipp();
    let mut lab = Lab::start(name, opts(tp));
    let uas = lab.sipp(Host::Trunk, &format!("uas_reject_{code}"), None, &[]);
    let uac = lab
        .sipp(
            Host::Phone,
            &format!("uac_expect_{code}"),
            Some("0301234567"),
            &[],
        )
        .wait();
    let uas = uas.wait();
    let lt = format!("<{code}");
    let gt = format!(">{code}");
    assert_sipp(&lab, &uac, &[">INVITE", "<100", &lt, ">ACK"]);
    assert_sipp(&lab, &uas, &["<INVITE", &gt, "<ACK"]);
    let f = uac.find(&lt)[0].header("From").unwrap_or_default();
    check!(
        lab,
        from_user(&f) == "201",
        "the {code} toward the phone carries its own From: {f}"
    );
    let cid = call_id(&uac);
    let last = format!("hangup out from=201 to=49301234567 cause={cause}");
    let evs = assert_events(
        &lab,
        2,
        &cid,
        &["newCall out from=201 to=49301234567 user=Alice", &last],
    );
    lab.save_fixture(&evs);
}

#[test]
fn e2e_06_callee_busy_udp() {
    callee_rejects(Tp::Udp, "busy-udp", "486", "busy");
}
#[test]
fn e2e_06_callee_busy_tcp() {
    callee_rejects(Tp::Tcp, "busy-tcp", "486", "busy");
}
#[test]
fn e2e_07_callee_not_found_udp() {
    callee_rejects(Tp::Udp, "notfound-udp", "404", "notFound");
}
#[test]
fn e2e_07_callee_not_found_tcp() {
    callee_rejects(Tp::Tcp, "notfound-tcp", "404", "notFound");
}

// 8. Outbound call challenged with 407, re-sent with credentials: one newCall.
fn auth_retry(tp: Tp, name: &str) {
    require_sipp();
    let mut lab = Lab::start(name, opts(tp));
    let uas = lab.sipp(Host::Trunk, "uas_auth", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_auth", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(
        &lab,
        &uac,
        &[
            ">INVITE", "<100", "<407", ">ACK", ">INVITE", "<100", "<180", "<200", ">ACK", ">BYE",
            "<200",
        ],
    );
    assert_sipp(
        &lab,
        &uas,
        &[
            "<INVITE", ">407", "<ACK", "<INVITE", ">180", ">200", "<ACK", "<BYE", ">200",
        ],
    );
    for inv in uas.find("<INVITE") {
        let f = inv.header("From").unwrap_or_default();
        check!(
            lab,
            from_user(&f) == "4930777000000",
            "both INVITEs carry the caller id: {f}"
        );
    }
    check!(
        lab,
        uas.find("<INVITE")[1]
            .header("Proxy-Authorization")
            .is_some(),
        "credentials relayed untouched"
    );
    let cid = call_id(&uac);
    let evs = assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let all = lab.accepted_events(0, Duration::ZERO);
    check!(
        lab,
        all.len() == 3,
        "exactly one newCall: {:?}",
        all.iter().map(summary).collect::<Vec<_>>()
    );
    lab.save_fixture(&evs);
}

#[test]
fn e2e_08_auth_retry_udp() {
    auth_retry(Tp::Udp, "auth-retry-udp");
}
#[test]
fn e2e_08_auth_retry_tcp() {
    auth_retry(Tp::Tcp, "auth-retry-tcp");
}

// 9a. Zammad answers after the deadline: the call proceeds unchanged.
#[test]
fn e2e_09_zammad_slow_call_unchanged() {
    require_sipp();
    let mut lab = Lab::start(
        "zammad-slow",
        Opts {
            newcall_timeout_ms: 300,
            ..Opts::default()
        },
    );
    lab.set_mode(Mode::Delay(Duration::from_millis(2000)));
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
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
    let f = uas.find("<INVITE")[0].header("From").unwrap_or_default();
    check!(
        lab,
        from_user(&f) == "201",
        "late dial answer must not change the call: {f}"
    );
    let cid = call_id(&uac);
    assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    let log = lab.stop();
    check!(
        lab,
        log.contains("not answered in time"),
        "fail-open is logged"
    );
}

// 9b. Zammad is down during a call and back later: every event arrives,
//     in order, exactly once.
#[test]
fn e2e_09_zammad_down_then_back() {
    require_sipp();
    let mut lab = Lab::start(
        "zammad-down",
        Opts {
            newcall_timeout_ms: 500,
            ..Opts::default()
        },
    );
    lab.set_mode(Mode::Reset);
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
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
    let failed_while_down = lab.double.log().iter().filter(|r| r.status != 200).count();
    check!(
        lab,
        failed_while_down >= 1,
        "the client tried while Zammad was down"
    );
    check!(
        lab,
        lab.accepted_events(0, Duration::ZERO).is_empty(),
        "nothing accepted while down"
    );
    lab.set_mode(Mode::Normal);
    let cid = call_id(&uac);
    assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let all = lab.accepted_events(0, Duration::ZERO);
    check!(
        lab,
        all.len() == 3,
        "each event exactly once: {:?}",
        all.iter().map(summary).collect::<Vec<_>>()
    );
    lab.stop();
}

// 10. An INVITE from an address that is neither inside nor trunk: 403, no event.
fn stranger(tp: Tp, name: &str) {
    require_sipp();
    let lab = Lab::start(name, opts(tp));
    let uac = lab
        .sipp(Host::Stranger, "uac_expect_403", Some("0049301234567"), &[])
        .wait();
    assert_sipp(&lab, &uac, &[">INVITE", "<403", ">ACK"]);
    std::thread::sleep(Duration::from_millis(500));
    check!(
        lab,
        lab.double.log().is_empty(),
        "no CTI request for a stranger"
    );
}

#[test]
fn e2e_10_stranger_gets_403_udp() {
    stranger(Tp::Udp, "stranger-udp");
}
// Over TCP a stranger's connection is reset at accept, before any SIP:
// see e2e_tcp_guard_stranger_sipp_refused_at_accept.

// 11. A malformed request gets 400 and the proxy keeps serving.
fn malformed(tp: Tp, name: &str) {
    require_sipp();
    let lab = Lab::start(name, opts(tp));
    let phone = lab.host_ip(Host::Phone);
    let proxy = format!("{}:5060", lab.proxy_ip());
    let cases: [(&str, &str); 2] = [
        ("CSeq: abc INVITE\r\n", "bad CSeq"),
        (
            "this line has no colon\r\nCSeq: 1 INVITE\r\n",
            "header line without a colon",
        ),
    ];
    for (i, (bad, what)) in cases.iter().enumerate() {
        let msg = format!(
            "INVITE sip:0301234567@{proxy} SIP/2.0\r\nVia: SIP/2.0/{t} {phone}:5070;branch=z9hG4bKbad{i}\r\n\
             From: <sip:201@{phone}>;tag=bad{i}\r\nTo: <sip:0301234567@{proxy}>\r\nCall-ID: malformed-{i}\r\n{bad}\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            t = if tp == Tp::Udp { "UDP" } else { "TCP" }
        );
        let answer = match tp {
            Tp::Udp => {
                let s = std::net::UdpSocket::bind(format!("{phone}:5070")).expect("bind");
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                s.send_to(msg.as_bytes(), &proxy).expect("send");
                let mut buf = [0u8; 4096];
                let n = s
                    .recv(&mut buf)
                    .map_err(|e| format!("no answer to {what}: {e}"))
                    .unwrap();
                String::from_utf8_lossy(&buf[..n]).to_string()
            }
            Tp::Tcp => lab.rt.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(format!("{phone}:0").parse().unwrap()).unwrap();
                let mut st = sock.connect(proxy.parse().unwrap()).await.expect("connect");
                st.write_all(msg.as_bytes()).await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(3), st.read(&mut buf))
                    .await
                    .expect("answer in time")
                    .unwrap();
                String::from_utf8_lossy(&buf[..n]).to_string()
            }),
        };
        let first = answer.lines().next().unwrap_or("");
        check!(
            lab,
            first.starts_with("SIP/2.0 400 ") && first.len() > "SIP/2.0 400 ".len(),
            "{what}: got {first:?}"
        );
        check!(
            lab,
            answer.contains(&format!("Call-ID: malformed-{i}")),
            "400 matches the request: {answer}"
        );
    }
    // and the proxy keeps serving
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
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
    let evs = lab.accepted_events(3, T);
    check!(
        lab,
        evs.iter()
            .all(|e| !e.call_id.as_deref().unwrap_or("").starts_with("malformed")),
        "no event for malformed requests"
    );
}

#[test]
fn e2e_11_malformed_request_400_udp() {
    malformed(Tp::Udp, "malformed-udp");
}
#[test]
fn e2e_11_malformed_request_400_tcp() {
    malformed(Tp::Tcp, "malformed-tcp");
}

// Mixed transports: the phone over TCP, the trunk over UDP. The proxy
// double-record-routes (one value per transport, RFC 5658) and the ACK and
// BYE find their way through it on each side's transport.
#[test]
fn e2e_12_phone_tcp_trunk_udp_double_record_route() {
    require_sipp();
    let mut lab = Lab::start(
        "mixed-tcp-udp",
        Opts {
            tp: Tp::Tcp,
            trunk_tp: Some(Tp::Udp),
            ..Opts::default()
        },
    );
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
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
    let rr = uas.find("<INVITE")[0].headers("Record-Route");
    let p = lab.proxy_ip();
    check!(
        lab,
        rr == vec![
            format!("<sip:{p}:5060;lr>"),
            format!("<sip:{p}:5060;transport=tcp;lr>")
        ],
        "double Record-Route, the trunk-facing (UDP) value on top: {rr:?}"
    );
    let cid = call_id(&uac);
    assert_events(
        &lab,
        3,
        &cid,
        &[
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
    );
    lab.stop();
}
