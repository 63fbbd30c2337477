//! End-to-end with real peers, not only our own tools (issue 8): a real
//! softphone (baresip, Debian package `baresip-core`) as phone 201 and a
//! real registrar (Kamailio, Debian package `kamailio`, config
//! `fixtures/kamailio/provider.cfg`) as the SIP provider, with the real
//! `sipcti` binary between them and the Zammad double behind it. The PSTN
//! beyond the provider is a SIPp process.
//!
//! Addresses in the lab's /24: .1 sipcti (and the Zammad double), .2
//! Kamailio on 5060 (the lab's `[trunk] uri`), .3 baresip on 5060 (the
//! lab's inside network; its control socket on 4444), .5 the PSTN SIPp.
//! The provider sends calls for DID 4930123456 to the binding of user 201
//! and every other call from the phones to the PSTN.
//!
//! Each test checks the SIP messages the PSTN side saw, what the provider
//! logged about the registration, where the phone's INVITE came from, and
//! the exact CTI events Zammad accepted. Kamailio or baresip missing is a
//! failure that names the package to install.

mod lab;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab::{assert_sipp, call_id, parse_trace, require_sipp, summary, Lab, Opts, SippResult};

/// The DID the provider routes to user 201.
const DID_201: &str = "4930123456";
/// The calling number on the PSTN side.
const PSTN_CALLER: &str = "+491701234567";
/// The last byte of the PSTN SIPp's address in the lab's /24 (the lab uses
/// .1 to .4 and .254).
const PSTN_HOST: u8 = 5;
/// How long to wait for a registration, a call's events, a process to start.
const T: Duration = Duration::from_secs(5);

/// `r` without the 180s it received: the PSTN side's `uac_hangup` takes a
/// 180 as optional, and baresip's auto-answer sometimes answers at once.
fn without_180(r: SippResult) -> SippResult {
    SippResult {
        messages: r
            .messages
            .into_iter()
            .filter(|m| m.short() != "<180")
            .collect(),
        ..r
    }
}

/// The workspace root (the lab's `target/`, `fixtures/` live there).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The path of executable `name`: from `PATH`, else `/usr/sbin` or
/// `/sbin` (Debian installs kamailio in /usr/sbin, which a user's PATH may
/// lack). Fails the test, naming the Debian `package` to install, when
/// there is none.
fn require_exe(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: apt-get install -y {package}");
}

/// Send SIGTERM to `child`, wait up to `grace` for it to end, then SIGKILL.
fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait until something holds UDP `addr` (a bind there fails), for at most `T`.
fn wait_udp_bound(addr: &str, what: &str) {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if UdpSocket::bind(addr).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not bind {addr}");
}

/// Kamailio playing the SIP provider: registrar for the phones behind
/// sipcti (digest auth, Path stored and followed) and proxy to and from the
/// PSTN SIPp. Runs in the foreground with its runtime dir, pid file and log
/// under the lab's directory; stopped (SIGTERM) when dropped.
struct Provider {
    child: Child,
    log: PathBuf,
}

impl Provider {
    /// Start Kamailio with `fixtures/kamailio/provider.cfg` on the lab's
    /// trunk address (.2:5060, UDP), the PSTN at .`PSTN_HOST`:5060, and
    /// return once it listens.
    fn start(lab: &Lab) -> Provider {
        let exe = require_exe("kamailio", "kamailio");
        let dir = lab.dir.join("kamailio");
        fs::create_dir_all(&dir).expect("kamailio dir");
        let log = dir.join("kamailio.log");
        let ip = lab.ip(2);
        let pstn = lab.ip(PSTN_HOST);
        let child = Command::new(exe)
            .arg("-f")
            .arg(workspace().join("fixtures/kamailio/provider.cfg"))
            .args(["-DD", "-E", "-m", "16", "-M", "4"])
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-A")
            .arg(format!("LISTEN=udp:{ip}:5060"))
            .arg("-A")
            .arg(format!("PSTN_IP=\"{pstn}\""))
            .arg("-A")
            .arg(format!("PSTN_URI=\"sip:{pstn}:5060\""))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("kamailio log"))
            .spawn()
            .expect("start kamailio");
        let mut p = Provider { child, log };
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if UdpSocket::bind(format!("{ip}:5060")).is_err() {
                return p;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("kamailio exited ({st}):\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        terminate(&mut p.child, Duration::from_secs(1));
        panic!("kamailio did not listen on {ip}:5060:\n{}", p.log());
    }

    /// Kamailio's log (its stderr) so far.
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The provider's own lines (`provider: ...`, see the config) so far,
    /// without Kamailio's prefix.
    fn lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.find("provider: ").map(|i| l[i..].to_string()))
            .collect()
    }

    /// Wait (at most `T`) for a provider line starting with `prefix` and
    /// return it; `None` when none came.
    fn wait_line(&self, prefix: &str) -> Option<String> {
        let deadline = Instant::now() + T;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(3));
    }
}

/// baresip as phone 201: a config dir written for the test, listening on
/// the lab's phone address (.3:5060, UDP), registering `sip:201@<provider>`
/// with password `pw201`, answering every call at once, audio from a sine
/// source and played nowhere. Commands go to its `ctrl_tcp` socket
/// (.3:4444). Its SIP trace (`-s`) goes to `baresip.log`. Stopped (SIGTERM,
/// it unregisters) when dropped.
struct Phone {
    child: Child,
    log: PathBuf,
    /// Its SIP address, `ip:5060`.
    sip: String,
    /// Its `ctrl_tcp` address.
    ctrl: String,
}

impl Phone {
    /// Start baresip; with `via_sipcti` its outbound proxy is sipcti
    /// (`;outbound="sip:<.1>:5060;lr"`, every request goes there first),
    /// else it talks to the provider directly. Returns once its control
    /// socket accepts connections.
    fn start(lab: &Lab, via_sipcti: bool) -> Phone {
        let exe = require_exe("baresip", "baresip-core");
        let dir = lab.dir.join("baresip");
        fs::create_dir_all(&dir).expect("baresip dir");
        let ip = lab.ip(3);
        let ctrl = format!("{ip}:4444");
        // ausine only makes 48 kHz stereo: the source is resampled to the
        // codec; "aufile,none" is no player at all (baresip-core has no
        // null player), which baresip tolerates.
        let config = format!(
            "# written by the e2e test {name}\n\
             poll_method epoll\n\
             sip_listen {ip}:5060\n\
             call_local_timeout 30\n\
             audio_source ausine,440\n\
             audio_player aufile,none\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module ausine.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen {ctrl}\n",
            name = lab.name,
        );
        fs::write(dir.join("config"), config).expect("baresip config");
        let outbound = if via_sipcti {
            format!(";outbound=\"sip:{}:5060;lr\"", lab.proxy_ip())
        } else {
            String::new()
        };
        let account = format!(
            "\"Alice\" <sip:201@{provider}>;auth_pass=pw201;answermode=auto;regint=300;audio_codecs=PCMU{outbound}\n",
            provider = lab.ip(2),
        );
        fs::write(dir.join("accounts"), account).expect("baresip accounts");
        let log = dir.join("baresip.log");
        let out = fs::File::create(&log).expect("baresip log");
        let child = Command::new(exe)
            .arg("-f")
            .arg(&dir)
            .arg("-s")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start baresip");
        let sip = format!("{ip}:5060");
        let mut p = Phone {
            child,
            log,
            sip,
            ctrl,
        };
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if TcpStream::connect(&p.ctrl).is_ok() {
                return p;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("baresip exited ({st}):\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        terminate(&mut p.child, Duration::from_secs(1));
        panic!(
            "baresip's control socket {} did not open:\n{}",
            p.ctrl,
            p.log()
        );
    }

    /// baresip's output so far (its SIP trace and messages).
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (at most `T`) for a line of baresip's output that satisfies
    /// `pred` and return it; `None` when none came.
    fn wait_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + T;
        loop {
            if let Some(l) = self.log().lines().find(|l| pred(l)) {
                return Some(l.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `command` with `params` through `ctrl_tcp` (netstring-framed
    /// JSON) and return baresip's response text; fails the test unless it
    /// says `"ok":true`.
    fn command(&self, command: &str, params: &str) -> String {
        let mut s = TcpStream::connect(&self.ctrl).expect("connect to baresip ctrl_tcp");
        s.set_read_timeout(Some(T)).expect("timeout");
        let req = serde_json::json!({"command": command, "params": params, "token": "e2e"});
        let body = req.to_string();
        s.write_all(format!("{}:{body},", body.len()).as_bytes())
            .expect("write command");
        // read netstrings until the response (events may come first)
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(colon) = buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&buf[..colon])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .expect("netstring length");
                if buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let msg = String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).to_string();
                buf.drain(..colon + 1 + len + 1);
                if msg.contains("\"response\":true") {
                    assert!(
                        msg.contains("\"ok\":true"),
                        "baresip {command} {params}: {msg}"
                    );
                    return msg;
                }
            }
            let n = s.read(&mut chunk).expect("baresip's response");
            assert!(n > 0, "baresip closed ctrl_tcp before answering {command}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The SIP requests baresip received, each as (source address,
    /// request line), from its `-s` trace.
    fn received_requests(&self) -> Vec<(String, String)> {
        let log = self.log();
        let mut out = vec![];
        let mut lines = log.lines().peekable();
        while let Some(l) = lines.next() {
            // a trace entry: "UDP <src> -> <dst>" then the first line
            let Some(rest) = l.strip_prefix("UDP ") else {
                continue;
            };
            let Some((src, dst)) = rest.split_once(" -> ") else {
                continue;
            };
            if dst.trim() != self.sip {
                continue;
            }
            if let Some(first) = lines.peek() {
                if first.ends_with(" SIP/2.0") {
                    out.push((src.trim().to_string(), first.to_string()));
                }
            }
        }
        out
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// A SIPp process on the PSTN side (.`PSTN_HOST`:5060), talking to the
/// provider.
struct Pstn {
    child: Child,
    msg: PathBuf,
    err: PathBuf,
    what: String,
}

impl Pstn {
    /// Start SIPp scenario `scen` (from `fixtures/sipp`) on the PSTN host:
    /// with `service` a UAC calling that number at the provider, else a UAS
    /// (returns once it has bound its port). `keys` are SIPp `-key`s.
    fn start(lab: &Lab, scen: &str, service: Option<&str>, keys: &[(&str, &str)]) -> Pstn {
        let ip = lab.ip(PSTN_HOST);
        let what = format!("pstn-{scen}");
        let msg = lab.dir.join(format!("{what}.msg"));
        let err = lab.dir.join(format!("{what}.err"));
        let out = fs::File::create(lab.dir.join(format!("{what}.out"))).expect("out");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(lab::scenario(scen))
            .args(["-t", "u1", "-i", &ip, "-p", "5060", "-m", "1"])
            .args(["-timeout", "15s", "-timeout_error", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&msg)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&err);
        for (k, v) in keys {
            cmd.args(["-key", k, v]);
        }
        if let Some(s) = service {
            cmd.arg(format!("{}:5060", lab.ip(2))).args(["-s", s]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("out"))
            .stderr(out)
            .spawn()
            .expect("start sipp (apt-get install sip-tester)");
        if service.is_none() {
            wait_udp_bound(&format!("{ip}:5060"), "SIPp on the PSTN side");
        }
        Pstn {
            child,
            msg,
            err,
            what,
        }
    }

    /// Wait (at most 20 s) for SIPp to end and return what it saw.
    fn wait(mut self) -> SippResult {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        SippResult {
            ok: status.is_some_and(|s| s.success()),
            what: std::mem::take(&mut self.what),
            messages: parse_trace(&fs::read_to_string(&self.msg).unwrap_or_default()),
            errors: fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Pstn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How sipcti makes inbound requests for a registered phone come back
/// through it (`[registration] mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RegMode {
    /// sipcti adds a Path header naming itself (RFC 3327).
    Path,
    /// sipcti replaces the phone's Contact with a key at its own address.
    Contact,
}

impl RegMode {
    fn as_str(self) -> &'static str {
        match self {
            RegMode::Path => "path",
            RegMode::Contact => "contact",
        }
    }
}

/// A lab for `name` (failing at once when SIPp, Kamailio or baresip is
/// missing); with `reg` sipcti's config has a `[registration]` section in
/// that mode, its bindings store a fresh file of this test's own under
/// `target/e2e`.
fn real_lab(name: &str, reg: Option<RegMode>) -> Lab {
    require_sipp();
    require_exe("kamailio", "kamailio");
    require_exe("baresip", "baresip-core");
    let extra_toml = match reg {
        Some(m) => {
            // the lab's directory is known only once its network is picked:
            // the store goes to a file of its own under target/e2e
            let store = workspace()
                .join("target/e2e")
                .join(format!("{name}-{}-bindings.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = fs::remove_file(format!("{}{suffix}", store.display()));
            }
            format!(
                "[registration]\nmode = \"{}\"\nstore = \"{}\"\n",
                m.as_str(),
                store.display()
            )
        }
        None => String::new(),
    };
    Lab::start(
        name,
        Opts {
            extra_toml,
            ..Opts::default()
        },
    )
}

/// The `host:port` of a SIP URI, with or without `<>`, a user part or
/// parameters: `<sip:key@127.0.0.1:5060;lr>` gives `127.0.0.1:5060`.
fn uri_host(uri: &str) -> String {
    let u = uri.trim().trim_start_matches('<');
    let u = u.strip_prefix("sip:").unwrap_or(u);
    let u = u.rsplit_once('@').map_or(u, |(_, h)| h);
    u.split([';', '>', '?']).next().unwrap_or("").to_string()
}

/// Fail with the logs of every peer when `cond` is false.
macro_rules! check_peers {
    ($lab:expr, $provider:expr, $phone:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            panic!(
                "{}\n--- lab: {}\n--- kamailio:\n{}\n--- baresip:\n{}\n--- sipcti:\n{}",
                format!($($arg)+),
                $lab.dir.display(),
                $provider.lines().join("\n"),
                $phone.log(),
                $lab.proxy_log()
            );
        }
    };
}

/// Waits (at most `T`) until Zammad accepted `n` CTI requests and returns
/// their [`summary`] lines and callIds.
fn events(lab: &Lab, n: usize) -> (Vec<String>, Vec<Option<String>>) {
    let evs = lab.accepted_events(n, T);
    (
        evs.iter().map(summary).collect(),
        evs.iter().map(|e| e.call_id.clone()).collect(),
    )
}

/// The fixture itself, without sipcti in the path: baresip registers
/// directly with Kamailio (digest challenge, then 200), a PSTN call to DID
/// 4930123456 reaches it and is answered. Zammad hears nothing: this is the
/// bypass that registration through sipcti exists to end (issue 8).
#[test]
fn e2e_real_peers_00_fixture_phone_registered_directly_bypasses_sipcti() {
    let lab = real_lab("real-peers-direct", None);
    let provider = Provider::start(&lab);
    let phone = Phone::start(&lab, false);
    let reg = provider.wait_line("provider: registered 201 ");
    check_peers!(lab, provider, phone, reg.is_some(), "no registration");
    let reg = reg.unwrap_or_default();
    let want = format!(
        "provider: registered 201 from {} contact=<sip:201-",
        lab.ip(3)
    );
    check_peers!(
        lab,
        provider,
        phone,
        reg.starts_with(&want),
        "registration line {reg}"
    );
    check_peers!(
        lab,
        provider,
        phone,
        reg.ends_with(" path=<null>"),
        "registration line {reg}"
    );
    // the provider challenged first (digest auth), then accepted the binding
    let ok = phone.wait_line(|l| l.contains(" 200 OK (kamailio"));
    check_peers!(
        lab,
        provider,
        phone,
        ok.as_deref().is_some_and(|l| l.ends_with("[1 binding]"))
            && phone.log().contains("SIP/2.0 401 Unauthorized"),
        "baresip's registration: challenged, then {ok:?}"
    );

    let pstn = Pstn::start(
        &lab,
        "uac_hangup",
        Some(DID_201),
        &[("user", PSTN_CALLER), ("display", "Bob")],
    )
    .wait();
    // baresip's auto-answer may send its 200 without a 180 first
    assert_sipp(
        &lab,
        &without_180(pstn.clone()),
        &[">INVITE", "<100", "<200", ">ACK", ">BYE", "<200"],
    );
    let did = provider.wait_line("provider: did ").unwrap_or_default();
    check_peers!(
        lab,
        provider,
        phone,
        did.starts_with(&format!("provider: did {DID_201} -> sip:201-"))
            && did.ends_with(" via <null>"),
        "DID lookup line {did}"
    );
    let invites: Vec<_> = phone
        .received_requests()
        .into_iter()
        .filter(|(_, l)| l.starts_with("INVITE "))
        .collect();
    check_peers!(
        lab,
        provider,
        phone,
        invites.len() == 1 && invites[0].0 == format!("{}:5060", lab.ip(2)),
        "the phone's INVITEs (source, request line): {invites:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (got, _) = events(&lab, 0);
    let none: Vec<String> = vec![];
    check_peers!(
        lab,
        provider,
        phone,
        got == none,
        "CTI events {got:#?}, expected none"
    );
}

/// Phone 201 registers through sipcti in `mode`; the PSTN calls DID
/// 4930123456; Kamailio's lookup sends the INVITE back through sipcti to
/// baresip, which answers; the PSTN hangs up. Checks the binding Kamailio
/// stored, where the phone's INVITE came from, the PSTN side's messages and
/// the exact CTI events.
fn inbound_through_sipcti(mode: RegMode, name: &str) {
    let lab = real_lab(name, Some(mode));
    let provider = Provider::start(&lab);
    let phone = Phone::start(&lab, true);
    let sipcti = lab.proxy_ip();
    let reg = provider.wait_line("provider: registered 201 ");
    check_peers!(lab, provider, phone, reg.is_some(), "no registration");
    let reg = reg.unwrap_or_default();
    // the REGISTER came from sipcti; Kamailio's binding leads back to sipcti
    let want = match mode {
        RegMode::Path => format!("provider: registered 201 from {sipcti} contact=<sip:201-"),
        RegMode::Contact => format!("provider: registered 201 from {sipcti} contact=<sip:"),
    };
    check_peers!(
        lab,
        provider,
        phone,
        reg.starts_with(&want),
        "registration line {reg}"
    );
    match mode {
        RegMode::Path => {
            check_peers!(
                lab,
                provider,
                phone,
                reg.contains(&format!("@{}:5060", lab.ip(3)))
                    && reg
                        .split_once(" path=")
                        .is_some_and(|(_, p)| uri_host(p) == format!("{sipcti}:5060")),
                "Path mode: the phone's own Contact and a Path naming sipcti: {reg}"
            );
        }
        RegMode::Contact => {
            check_peers!(
                lab,
                provider,
                phone,
                reg.contains(&format!("@{sipcti}"))
                    && reg.ends_with(" path=<null>")
                    && !reg.contains(&lab.ip(3)),
                "Contact mode: a Contact at sipcti, no Path, no phone address: {reg}"
            );
        }
    }
    // the phone got the 200 OK for its REGISTER, and found its own Contact
    // in it (in contact mode sipcti must have put it back)
    let ok = phone.wait_line(|l| l.contains(" 200 OK (kamailio"));
    check_peers!(
        lab,
        provider,
        phone,
        ok.as_deref().is_some_and(|l| l.ends_with("[1 binding]")),
        "baresip's registration result: {ok:?}"
    );

    let pstn = Pstn::start(
        &lab,
        "uac_hangup",
        Some(DID_201),
        &[("user", PSTN_CALLER), ("display", "Bob")],
    )
    .wait();
    // baresip's auto-answer may send its 200 without a 180 first
    assert_sipp(
        &lab,
        &without_180(pstn.clone()),
        &[">INVITE", "<100", "<200", ">ACK", ">BYE", "<200"],
    );
    let did = provider.wait_line("provider: did ").unwrap_or_default();
    check_peers!(
        lab,
        provider,
        phone,
        did.starts_with(&format!("provider: did {DID_201} -> sip:"))
            && match mode {
                RegMode::Path => did
                    .split_once(" via ")
                    .is_some_and(|(_, v)| uri_host(v) == format!("{sipcti}:5060")),
                RegMode::Contact => did.contains(&format!("@{sipcti}")),
            },
        "DID lookup line (toward sipcti): {did}"
    );
    // every request of the call reached the phone from sipcti
    let got: Vec<_> = phone
        .received_requests()
        .into_iter()
        .filter(|(_, l)| !l.starts_with("OPTIONS "))
        .collect();
    let methods: Vec<&str> = got
        .iter()
        .map(|(_, l)| l.split(' ').next().unwrap_or(""))
        .collect();
    check_peers!(
        lab,
        provider,
        phone,
        methods == ["INVITE", "ACK", "BYE"]
            && got.iter().all(|(src, _)| *src == format!("{sipcti}:5060")),
        "requests the phone received (source, request line): {got:?}"
    );
    let cid = call_id(&pstn);
    let (got, ids) = events(&lab, 3);
    let expect = [
        format!("newCall in from=491701234567 to={DID_201}"),
        format!("answer in from=491701234567 to={DID_201} answeringNumber=201"),
        format!(
            "hangup in from=491701234567 to={DID_201} answeringNumber=201 cause=normalClearing"
        ),
    ];
    check_peers!(
        lab,
        provider,
        phone,
        got == expect,
        "CTI events {got:#?}\nexpected {expect:#?}"
    );
    check_peers!(
        lab,
        provider,
        phone,
        ids.iter().all(|i| i.as_deref() == Some(cid.as_str())),
        "callIds {ids:?} != the PSTN's Call-ID {cid}"
    );
}

#[test]
fn e2e_real_peers_01_inbound_registered_with_path() {
    inbound_through_sipcti(RegMode::Path, "real-peers-in-path");
}

#[test]
fn e2e_real_peers_02_inbound_registered_with_contact() {
    inbound_through_sipcti(RegMode::Contact, "real-peers-in-contact");
}

/// Phone 201 (registered through sipcti when `reg` is set, else with
/// sipcti only as its outbound proxy) dials 0301234567; sipcti relays to
/// Kamailio, which sends it to the PSTN SIPp; the PSTN answers and hangs
/// up. Checks the PSTN side's messages and the exact CTI events.
fn outbound_through_sipcti(reg: Option<RegMode>, name: &str) {
    let lab = real_lab(name, reg);
    let provider = Provider::start(&lab);
    let pstn = Pstn::start(
        &lab,
        "uas_answer_bye",
        None,
        &[("answer_user", "0301234567")],
    );
    let phone = Phone::start(&lab, true);
    if reg.is_some() {
        let r = provider.wait_line("provider: registered 201 ");
        check_peers!(lab, provider, phone, r.is_some(), "no registration");
    }
    phone.command("dial", &format!("sip:0301234567@{}", lab.ip(2)));
    let pstn = pstn.wait();
    assert_sipp(
        &lab,
        &pstn,
        &["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"],
    );
    let to_pstn = provider.wait_line("provider: to pstn ").unwrap_or_default();
    check_peers!(
        lab,
        provider,
        phone,
        to_pstn
            == format!(
                "provider: to pstn 0301234567 via sip:{}:5060",
                lab.ip(PSTN_HOST)
            ),
        "provider's routing line: {to_pstn}"
    );
    let cid = call_id(&pstn);
    let (got, ids) = events(&lab, 3);
    let expect = [
        "newCall out from=201 to=49301234567 user=Alice",
        "answer out from=201 to=49301234567",
        "hangup out from=201 to=49301234567 cause=normalClearing",
    ];
    check_peers!(
        lab,
        provider,
        phone,
        got == expect,
        "CTI events {got:#?}\nexpected {expect:#?}"
    );
    check_peers!(
        lab,
        provider,
        phone,
        ids.iter().all(|i| i.as_deref() == Some(cid.as_str())),
        "callIds {ids:?} != the PSTN's Call-ID {cid}"
    );
}

#[test]
fn e2e_real_peers_03_outbound_via_sipcti() {
    outbound_through_sipcti(None, "real-peers-out");
}

#[test]
fn e2e_real_peers_04_outbound_registered_with_path() {
    outbound_through_sipcti(Some(RegMode::Path), "real-peers-out-path");
}

#[test]
fn e2e_real_peers_05_outbound_registered_with_contact() {
    outbound_through_sipcti(Some(RegMode::Contact), "real-peers-out-contact");
}
