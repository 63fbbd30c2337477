//! End-to-end, issue 6 "one flood stops everyone": one inside host floods
//! the real `sipcti` binary with INVITEs from real SIPp while another
//! phone's call and the BYE of the flooding host's own established call go
//! through, with exact SIP and exact CTI events. Needs SIPp.
//!
//! The lab's generated config has one inside address (.3); this test
//! rewrites it so that .4 is a second inside host (the flooder) and restarts
//! the proxy on that config.

mod lab;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab::{parse_trace, summary, Host, Lab, Opts, Traced};

/// A process this test started; killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SIPp process started by [`sipp`], with its message trace.
struct Run {
    proc: Proc,
    msg: PathBuf,
}

impl Run {
    /// Wait for SIPp to end (at most `limit`); its success and messages.
    fn wait(mut self, limit: Duration) -> (bool, Vec<Traced>) {
        let deadline = Instant::now() + limit;
        let ok = loop {
            if let Ok(Some(s)) = self.proc.0.try_wait() {
                break s.success();
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let msgs = parse_trace(&fs::read_to_string(&self.msg).unwrap_or_default());
        (ok, msgs)
    }
}

/// Start SIPp with scenario file `scen` bound at `ip:port`; `args` are
/// appended (e.g. `-m`, `-r`, the service and the proxy address).
fn sipp(lab: &Lab, tag: &str, scen: &Path, ip: &str, port: u16, args: &[&str]) -> Run {
    let msg = lab.dir.join(format!("{tag}.msg"));
    let out = fs::File::create(lab.dir.join(format!("{tag}.out"))).expect("out");
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(scen)
        .args(["-t", "u1", "-i", ip, "-p", &port.to_string()])
        .args([
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg",
        ])
        .arg("-message_file")
        .arg(&msg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("out"))
        .stderr(out)
        .spawn()
        .expect("start sipp (apt-get install sip-tester)");
    Run {
        proc: Proc(child),
        msg,
    }
}

fn shorts(m: &[Traced]) -> Vec<String> {
    m.iter().map(Traced::short).collect()
}

/// Restart the lab's proxy with `.4` as a second inside address; the new
/// process logs to the lab's `sipcti.log` (so `check!` shows it).
fn restart_with_second_inside_host(lab: &mut Lab) -> Proc {
    let _ = lab.stop();
    let cfg = fs::read_to_string(&lab.config_path).expect("config");
    let phone = lab.host_ip(Host::Phone);
    let flooder = lab.host_ip(Host::Stranger);
    let from = format!("networks = [\"{phone}/32\"]");
    assert!(cfg.contains(&from), "lab config changed: {cfg}");
    let cfg = cfg.replace(
        &from,
        &format!("networks = [\"{phone}/32\", \"{flooder}/32\"]"),
    );
    fs::write(&lab.config_path, cfg).expect("config");
    let log = fs::File::create(lab.dir.join("sipcti.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_sipcti"))
        .arg("run")
        .arg("--config")
        .arg(&lab.config_path)
        .env("SIPCTI_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sipcti");
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.proxy_log().contains("sipcti listening") {
        assert!(
            Instant::now() < deadline,
            "sipcti did not start:\n{}",
            lab.proxy_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// The flood scenario: INVITE; a 503 ends the call at once (a stateless
/// 503 is not ACKed by the proxy's peer here: it keeps no state for it);
/// an answered call is ACKed and hung up.
const FLOOD_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood">
  <send start_txn="invite">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Mallory" <sip:666@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:666@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" response_txn="invite" optional="true"/>
  <recv response="180" response_txn="invite" optional="true"/>
  <recv response="503" response_txn="invite" optional="true" next="1"/>
  <recv response="200" response_txn="invite" rrs="true"/>
  <send ack_txn="invite">
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: "Mallory" <sip:666@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: "Mallory" <sip:666@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <label id="1"/>
</scenario>
"#;

const FLOOD_CALLS: usize = 2000;
const BURST: usize = 10;

#[test]
fn e2e_flood_from_one_inside_address_while_another_phone_and_an_established_bye_pass() {
    assert!(
        lab::sipp_available(),
        "SIPp is not installed: apt-get install -y sip-tester"
    );
    // 1 new transaction/s, burst 10, a ban longer than the test: the
    // flooder gets exactly its burst through
    let mut lab = Lab::start(
        "flood",
        Opts {
            extra_toml: format!(
                "[limits]\ninside_rate_per_s = 1\ninside_burst = {BURST}\nban_s = 120\n"
            ),
            ..Opts::default()
        },
    );
    let _proxy = restart_with_second_inside_host(&mut lab);
    let proxy = format!("{}:5060", lab.proxy_ip());
    let flooder = lab.host_ip(Host::Stranger);
    let trunk = lab.host_ip(Host::Trunk);

    // the trunk answers every call (killed at the end)
    let total = (2 + BURST).to_string();
    let uas = sipp(
        &lab,
        "trunk",
        &lab::scenario("uas_answer"),
        &trunk,
        5060,
        &["-m", &total, "-key", "answer_user", "201"],
    );
    std::thread::sleep(Duration::from_millis(300));

    // an established call of the flooding host, hung up by it 3 s after the answer
    let late = lab.dir.join("uac_hangup_late.xml");
    let xml = fs::read_to_string(lab::scenario("uac_hangup")).expect("scenario");
    assert!(xml.contains(r#"<pause milliseconds="300"/>"#));
    fs::write(
        &late,
        xml.replace(
            r#"<pause milliseconds="300"/>"#,
            r#"<pause milliseconds="3000"/>"#,
        ),
    )
    .expect("scenario");
    let established = sipp(
        &lab,
        "established",
        &late,
        &flooder,
        5060,
        &[
            "-m",
            "1",
            "-key",
            "user",
            "201",
            "-key",
            "display",
            "Alice",
            &proxy,
            "-s",
            "0301234567",
        ],
    );
    let answered = lab.accepted_events(2, Duration::from_secs(10));
    check!(
        lab,
        answered.len() == 2,
        "established call not answered: {answered:?}"
    );
    // its INVITE took one token: let the bucket refill (1/s)
    std::thread::sleep(Duration::from_millis(1_200));

    // the flood, from the same address (another port)
    let flood_xml = lab.dir.join("flood.xml");
    fs::write(&flood_xml, FLOOD_XML).expect("scenario");
    let m = FLOOD_CALLS.to_string();
    let flood = sipp(
        &lab,
        "flood",
        &flood_xml,
        &flooder,
        5070,
        &["-r", "500", "-m", &m, &proxy, "-s", "0301111111"],
    );
    // meanwhile another phone calls
    std::thread::sleep(Duration::from_millis(500));
    let other = lab
        .sipp(
            Host::Phone,
            "uac_hangup",
            Some("0301234567"),
            &[("user", "202"), ("display", "Bob")],
        )
        .wait();
    check!(
        lab,
        other.ok && other.shorts() == [">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
        "the other phone's call: {:?}\n{}",
        other.shorts(),
        other.errors
    );

    let (ok, est) = established.wait(Duration::from_secs(30));
    check!(
        lab,
        ok && shorts(&est) == [">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
        "the established call (BYE during the ban): {:?}",
        shorts(&est)
    );
    let (ok, fl) = flood.wait(Duration::from_secs(60));
    check!(lab, ok, "flood SIPp failed");
    let invites = fl.iter().filter(|m| m.short() == ">INVITE").count();
    let refused: Vec<&Traced> = fl.iter().filter(|m| m.short() == "<503").collect();
    let admitted = fl.iter().filter(|m| m.short() == ">ACK").count();
    check!(
        lab,
        (invites, admitted, refused.len()) == (FLOOD_CALLS, BURST, FLOOD_CALLS - BURST),
        "flood: {invites} INVITEs, {admitted} answered, {} refused",
        refused.len()
    );
    for r in &refused {
        check!(
            lab,
            r.text.starts_with("SIP/2.0 503 Service Unavailable")
                && r.header("Retry-After")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| (1..=120).contains(&s)),
            "refusal {}",
            r.text
        );
    }
    // no refused call reached the trunk
    let _ = uas.wait(Duration::from_secs(10));

    // CTI: the established call, the other phone's call, and the burst only
    let expect = 3 + 3 + 3 * BURST;
    let _ = lab.accepted_events(expect, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1_000));
    let evs = lab.accepted_events(expect, Duration::from_secs(1));
    let all = lab.double.log();
    check!(
        lab,
        evs.len() == expect && all.len() == expect,
        "{} CTI requests ({} accepted), expected {expect}: {:#?}",
        all.len(),
        evs.len(),
        evs.iter().map(summary).collect::<Vec<_>>()
    );
    let of = |cid: &str| -> Vec<String> {
        evs.iter()
            .filter(|e| e.call_id.as_deref() == Some(cid))
            .map(summary)
            .collect()
    };
    let est_cid = est[0].header("Call-ID").expect("Call-ID");
    check!(
        lab,
        of(&est_cid)
            == [
                "newCall out from=201 to=49301234567 user=Alice",
                "answer out from=201 to=49301234567",
                "hangup out from=201 to=49301234567 cause=normalClearing",
            ],
        "established call events {:?}",
        of(&est_cid)
    );
    let other_cid = other.messages[0].header("Call-ID").expect("Call-ID");
    check!(
        lab,
        of(&other_cid)
            == [
                "newCall out from=202 to=49301234567 user=Bob",
                "answer out from=202 to=49301234567",
                "hangup out from=202 to=49301234567 cause=normalClearing",
            ],
        "other phone's events {:?}",
        of(&other_cid)
    );
    let flood_new: Vec<String> = evs
        .iter()
        .map(summary)
        .filter(|s| s.starts_with("newCall") && s.contains("from=666"))
        .collect();
    check!(
        lab,
        flood_new.len() == BURST
            && flood_new
                .iter()
                .all(|s| s == "newCall out from=666 to=49301111111 user=Mallory"),
        "flood newCalls {flood_new:?}"
    );
    // the log names the flooder
    let log = lab.proxy_log();
    check!(
        lab,
        log.contains("source over its limit") && log.contains(&flooder),
        "no WARN naming the flooder"
    );
}
