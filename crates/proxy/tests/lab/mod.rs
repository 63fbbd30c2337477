//! The e2e lab: a private loopback /24 per test, the real `sipcti` binary,
//! real SIPp processes, and the Zammad double.
//!
//! Addresses: 127.A.B.1 sipcti (and the Zammad double), .2 the trunk,
//! .3 the phone / PBX, .4 a stranger. A.B is picked at random and
//! reserved for the test's lifetime by a socket bound to 127.A.B.254:65000,
//! so two tests, or two test runs, never share addresses; SIPp can then
//! keep the standard port 5060.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sipcti_zammad_double::{spawn_double, DoubleConfig, LoggedRequest, Mode, Rules, ZammadDouble};

pub const TOKEN: &str = "e2e-secret-token";

/// Transport used on both legs: the proxy's own transport enum.
pub use sipcti_wire::TransportKind as Tp;

/// SIPp's `-t` flag for `tp` (one socket).
fn sipp_flag(tp: Tp) -> &'static str {
    match tp {
        Tp::Udp => "u1",
        Tp::Tcp => "t1",
    }
}

/// The SIP URI `transport` parameter for `tp`.
fn uri_param(tp: Tp) -> &'static str {
    match tp {
        Tp::Udp => "udp",
        Tp::Tcp => "tcp",
    }
}

/// Who a SIPp process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Trunk,
    Phone,
    Stranger,
}

pub struct Opts {
    /// Transport of the phone side (and of the trunk side unless `trunk_tp`).
    pub tp: Tp,
    /// Transport of the trunk side, when it differs from the phone's.
    pub trunk_tp: Option<Tp>,
    pub newcall_timeout_ms: u64,
    pub block: Vec<String>,
    pub default_caller_id: Option<String>,
    /// Record a capture of the lab's traffic with tcpdump (when available).
    pub capture: bool,
    /// Extra TOML appended to the generated config, e.g. a `[limits]`
    /// section (the generated file has no `[limits]` or `[timers]`).
    /// `{phone}`, `{trunk}` and `{proxy}` in it become the lab's phone,
    /// trunk and proxy addresses (known only once the lab's network is
    /// picked).
    pub extra_toml: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            tp: Tp::Udp,
            trunk_tp: None,
            newcall_timeout_ms: 1500,
            block: vec!["491715000000".into()],
            default_caller_id: Some("4930777000000".into()),
            capture: std::env::var_os("SIPCTI_RECORD_FIXTURES").is_some(),
            extra_toml: String::new(),
        }
    }
}

pub struct Lab {
    pub name: String,
    pub net: [u8; 2],
    pub tp: Tp,
    pub trunk_tp: Tp,
    pub dir: PathBuf,
    pub rt: tokio::runtime::Runtime,
    pub double: ZammadDouble,
    pub config_path: PathBuf,
    proxy: Option<Child>,
    capture: Option<(Child, PathBuf)>,
    _reservation: UdpSocket,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn scenario(name: &str) -> PathBuf {
    workspace()
        .join("fixtures/sipp")
        .join(format!("{name}.xml"))
}

pub fn tcpdump_available() -> bool {
    Command::new("tcpdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn sipp_available() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Reserve a loopback /24, 127.A.B.0, at random (A in 20..220): bind 127.A.B.254:65000,
/// which no other test or run can then bind. Returns A.B and the socket that holds the
/// reservation (dropping it frees the /24).
pub fn reserve() -> ([u8; 2], UdpSocket) {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    let mut x = seed
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
    for _ in 0..1000 {
        // xorshift
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = 20 + (x % 200) as u8;
        let b = ((x >> 8) % 250) as u8;
        if let Ok(s) = UdpSocket::bind(format!("127.{a}.{b}.254:65000")) {
            return ([a, b], s);
        }
    }
    panic!("no free loopback lab network");
}

impl Lab {
    pub fn ip(&self, last: u8) -> String {
        format!("127.{}.{}.{last}", self.net[0], self.net[1])
    }
    pub fn proxy_ip(&self) -> String {
        self.ip(1)
    }
    pub fn host_ip(&self, h: Host) -> String {
        match h {
            Host::Trunk => self.ip(2),
            Host::Phone => self.ip(3),
            Host::Stranger => self.ip(4),
        }
    }

    /// Start the double and the proxy for test `name`.
    pub fn start(name: &str, opts: Opts) -> Lab {
        let (net, reservation) = reserve();
        let dir = workspace()
            .join("target/e2e")
            .join(format!("{name}-{}-{}", net[0], net[1]));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("lab dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let ip1 = format!("127.{}.{}.1", net[0], net[1]);
        let rules = Rules {
            block: opts.block.clone(),
            caller_id: vec![],
            default_caller_id: opts.default_caller_id.clone(),
        };
        let double = rt.block_on(async {
            let l = tokio::net::TcpListener::bind(format!("{ip1}:0"))
                .await
                .expect("bind double");
            spawn_double(
                l,
                DoubleConfig {
                    token: TOKEN.into(),
                    rules,
                },
            )
            .await
            .expect("double")
        });
        let mut lab = Lab {
            name: name.into(),
            net,
            tp: opts.tp,
            trunk_tp: opts.trunk_tp.unwrap_or(opts.tp),
            dir,
            rt,
            double,
            config_path: PathBuf::new(),
            proxy: None,
            capture: None,
            _reservation: reservation,
        };
        let t = uri_param(opts.tp);
        let tt = uri_param(opts.trunk_tp.unwrap_or(opts.tp));
        let config = format!(
            r#"# written by the e2e lab for test {name}
[sip]
listen = "{p}:5060"
[trunk]
uri = "sip:{trunk}:5060;transport={tt}"
sources = ["{trunk}/32"]
[inside]
networks = ["{phone}/32"]
target = "sip:{phone}:5060;transport={t}"
[numbers]
country_code = "49"
[zammad]
url = "http://{double}/api/v1/cti/{TOKEN}"
newcall_timeout_ms = {nt}
{extra}
"#,
            p = lab.proxy_ip(),
            trunk = lab.host_ip(Host::Trunk),
            phone = lab.host_ip(Host::Phone),
            double = lab.double.local_addr(),
            nt = opts.newcall_timeout_ms,
            extra = opts
                .extra_toml
                .replace("{phone}", &lab.host_ip(Host::Phone))
                .replace("{trunk}", &lab.host_ip(Host::Trunk))
                .replace("{proxy}", &lab.proxy_ip()),
        );
        lab.config_path = lab.dir.join("sipcti.toml");
        fs::write(&lab.config_path, config).expect("config");
        if opts.capture {
            lab.start_capture();
        }
        lab.start_proxy();
        lab
    }

    fn start_capture(&mut self) {
        let file = self.dir.join("capture.pcap");
        let filter = format!("net 127.{}.{}.0/24 and port 5060", self.net[0], self.net[1]);
        let err_log = self.dir.join("tcpdump.log");
        let child = Command::new("tcpdump")
            .args([
                "-i",
                "lo",
                "--immediate-mode",
                "-U",
                "-Z",
                "root",
                "-n",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err_log).expect("tcpdump log"))
            .spawn();
        let Ok(child) = child else {
            eprintln!("tcpdump not available: no capture for {}", self.name);
            return;
        };
        // wait until tcpdump says it is listening
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && !fs::read_to_string(&err_log)
                .unwrap_or_default()
                .contains("listening on")
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.capture = Some((child, file));
    }

    /// Stop tcpdump and return the capture file.
    pub fn stop_capture(&mut self) -> Option<PathBuf> {
        let (mut child, file) = self.capture.take()?;
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        Some(file)
    }

    fn start_proxy(&mut self) {
        self.start_proxy_after(0)
    }

    /// Start sipcti, its log appended to `sipcti.log` (whose first `skip`
    /// bytes are an earlier run's); wait for "sipcti listening" after them.
    fn start_proxy_after(&mut self, skip: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sipcti.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sipcti"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("SIPCTI_LOG", "info,sipcti_proxy=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sipcti");
        self.proxy = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .proxy_log()
                .get(skip..)
                .is_some_and(|l| l.contains("sipcti listening"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sipcti did not start:\n{}", self.proxy_log());
    }

    pub fn proxy_log(&self) -> String {
        fs::read_to_string(self.dir.join("sipcti.log")).unwrap_or_default()
    }

    pub fn set_mode(&self, m: Mode) {
        self.double.set_mode(m);
    }

    /// Start a SIPp process as `host`. A UAC (with `service`) calls the
    /// proxy; a UAS waits on port 5060.
    pub fn sipp(
        &self,
        host: Host,
        scen: &str,
        service: Option<&str>,
        keys: &[(&str, &str)],
    ) -> Sipp {
        let tag = format!("{:?}-{scen}", host).to_lowercase();
        self.sipp_at(host, scen, 5060, service, keys, (tag, &[]))
    }

    /// [`Lab::sipp`] with extra SIPp arguments `args` (e.g. `-oocsf` for a
    /// phone that registers and then answers calls over the same socket or
    /// connection); its trace files are named `tag`.
    pub fn sipp_args(
        &self,
        host: Host,
        scen: &str,
        service: Option<&str>,
        keys: &[(&str, &str)],
        tag: &str,
        args: &[String],
    ) -> Sipp {
        self.sipp_at(host, scen, 5060, service, keys, (tag.to_string(), args))
    }

    /// Stop sipcti (SIGTERM) and start it again with the same
    /// configuration and log file (appended): a restart.
    pub fn restart_proxy(&mut self) {
        let before = self.stop();
        self.start_proxy_after(before.len());
    }

    /// Start SIPp as `host` bound to `port`, its trace files named `tag`,
    /// with extra arguments `args`;
    /// with `service` it calls the proxy, else it is a UAS and this
    /// returns once it has bound its port.
    pub fn sipp_at(
        &self,
        host: Host,
        scen: &str,
        port: u16,
        service: Option<&str>,
        keys: &[(&str, &str)],
        (tag, args): (String, &[String]),
    ) -> Sipp {
        let ip = self.host_ip(host);
        let msg = self.dir.join(format!("{tag}.msg"));
        let err = self.dir.join(format!("{tag}.err"));
        let out = fs::File::create(self.dir.join(format!("{tag}.out"))).expect("out");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(scen))
            .args(["-t", sipp_flag(self.tp_of(host)), "-i", &ip])
            .args(["-p", &port.to_string(), "-m", "1"])
            .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&msg)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&err);
        // defaults, overridden by the caller's keys (SIPp keeps the first -key of a name)
        let mut all_keys: Vec<(&str, &str)> = keys.to_vec();
        for d in [
            ("answer_user", "201"),
            ("user", "201"),
            ("display", "Alice"),
        ] {
            if !keys.iter().any(|(k, _)| *k == d.0) {
                all_keys.push(d);
            }
        }
        for (k, v) in all_keys {
            cmd.args(["-key", k, v]);
        }
        cmd.args(args);
        if let Some(s) = service {
            cmd.arg(format!("{}:5060", self.proxy_ip())).args(["-s", s]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("out"))
            .stderr(out)
            .spawn()
            .expect("start sipp (apt-get install sip-tester)");
        let s = Sipp {
            child,
            msg,
            err,
            what: tag,
        };
        if service.is_none() {
            self.wait_bound(&ip, port, self.tp_of(host));
        }
        s
    }

    /// The transport `host` uses.
    pub fn tp_of(&self, host: Host) -> Tp {
        match host {
            Host::Trunk => self.trunk_tp,
            _ => self.tp,
        }
    }

    fn wait_bound(&self, ip: &str, port: u16, tp: Tp) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let busy = match tp {
                Tp::Udp => UdpSocket::bind(format!("{ip}:{port}")).is_err(),
                Tp::Tcp => TcpListener::bind(format!("{ip}:{port}")).is_err(),
            };
            if busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("SIPp did not bind {ip}:{port}");
    }

    /// The CTI requests Zammad accepted (status 200), once `n` of them
    /// arrived (or after `timeout`).
    pub fn accepted_events(&self, n: usize, timeout: Duration) -> Vec<LoggedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok: Vec<LoggedRequest> = self
                .double
                .log()
                .into_iter()
                .filter(|r| r.status == 200)
                .collect();
            if ok.len() >= n || Instant::now() > deadline {
                return ok;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the proxy (SIGTERM) and return its log.
    pub fn stop(&mut self) -> String {
        if let Some(mut p) = self.proxy.take() {
            let _ = Command::new("kill").arg(p.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = p.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = p.kill();
                    let _ = p.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.proxy_log()
    }

    /// Replay this lab's capture with `sipcti replay` and return the
    /// events as [`summary`] lines with their callId.
    pub fn replay_capture(&mut self) -> Vec<(String, String)> {
        let cap = self
            .stop_capture()
            .expect("this lab records a capture (tcpdump installed?)");
        let out = Command::new(env!("CARGO_BIN_EXE_sipcti"))
            .arg("replay")
            .arg(&cap)
            .arg("--config")
            .arg(&self.config_path)
            .args(["--format", "jsonl", "--no-close"])
            .output()
            .expect("run sipcti replay");
        assert!(
            out.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("jsonl");
                // the replay line carries Zammad's fields; add the double's bookkeeping
                v["seq"] = 0.into();
                v["at_ms"] = 0.into();
                v["status"] = 200.into();
                let e: LoggedRequest = serde_json::from_value(v).expect("event fields");
                (summary(&e), e.call_id.unwrap_or_default())
            })
            .collect()
    }

    /// Write this lab's capture and expected events as a replay fixture
    /// (when SIPCTI_RECORD_FIXTURES names a folder).
    pub fn save_fixture(&mut self, events: &[LoggedRequest]) {
        let Some(root) = std::env::var_os("SIPCTI_RECORD_FIXTURES") else {
            return;
        };
        let Some(cap) = self.stop_capture() else {
            return;
        };
        let dir = PathBuf::from(root).join(&self.name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("fixture dir");
        fs::copy(&cap, dir.join("capture.pcap")).expect("copy capture");
        let cfg = fs::read_to_string(&self.config_path)
            .unwrap_or_default()
            .replace(&format!("{}", self.double.local_addr()), "127.0.0.1:9")
            .replace(TOKEN, "TOKEN");
        fs::write(dir.join("sipcti.toml"), cfg).expect("fixture config");
        let mut f = fs::File::create(dir.join("expected.jsonl")).expect("expected");
        for e in events {
            writeln!(f, "{}", cti_json(e)).expect("write");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        if let Some((mut c, _)) = self.capture.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The Zammad fields of an accepted request, as the proxy sent them.
pub fn cti_json(e: &LoggedRequest) -> String {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), serde_json::Value::String(v.clone()));
        }
    };
    put("event", &e.event);
    put("direction", &e.direction);
    put("callId", &e.call_id);
    put("from", &e.from);
    put("to", &e.to);
    put("queue", &e.queue);
    put("answeringNumber", &e.answering_number);
    put("cause", &e.cause);
    if let Some(u) = &e.user {
        m.insert("user".into(), u.clone());
    }
    serde_json::Value::Object(m).to_string()
}

/// One line per event: `event direction from=.. to=.. [user=..] [queue=..] [answeringNumber=..] [cause=..]`
/// (`queue` only when the event has one, so summaries without it are unchanged).
pub fn summary(e: &LoggedRequest) -> String {
    let mut s = format!(
        "{} {} from={} to={}",
        e.event.as_deref().unwrap_or("?"),
        e.direction.as_deref().unwrap_or("?"),
        e.from.as_deref().unwrap_or("-"),
        e.to.as_deref().unwrap_or("-")
    );
    if let Some(u) = &e.user {
        s.push_str(&format!(
            " user={}",
            u.as_str().map(str::to_string).unwrap_or(u.to_string())
        ));
    }
    if let Some(q) = &e.queue {
        s.push_str(&format!(" queue={q}"));
    }
    if let Some(a) = &e.answering_number {
        s.push_str(&format!(" answeringNumber={a}"));
    }
    if let Some(c) = &e.cause {
        s.push_str(&format!(" cause={c}"));
    }
    s
}

/// A SIP message SIPp sent or received.
#[derive(Debug, Clone)]
pub struct Traced {
    pub sent: bool,
    pub text: String,
}

impl Traced {
    /// `>INVITE` / `<180` style: direction and method or status code.
    pub fn short(&self) -> String {
        let first = self.text.lines().next().unwrap_or("");
        let word = if first.starts_with("SIP/2.0 ") {
            first.split_whitespace().nth(1).unwrap_or("?").to_string()
        } else {
            first.split_whitespace().next().unwrap_or("?").to_string()
        };
        format!("{}{}", if self.sent { ">" } else { "<" }, word)
    }
    /// First value of a header (full or compact name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        for line in self.text.lines().skip(1) {
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    return Some(v.trim().to_string());
                }
            }
        }
        None
    }
    pub fn headers(&self, name: &str) -> Vec<String> {
        let mut out = vec![];
        for line in self.text.lines().skip(1) {
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    out.push(v.trim().to_string());
                }
            }
        }
        out
    }
}

pub struct Sipp {
    child: Child,
    msg: PathBuf,
    err: PathBuf,
    what: String,
}

#[derive(Debug, Clone)]
pub struct SippResult {
    pub ok: bool,
    pub what: String,
    pub messages: Vec<Traced>,
    pub errors: String,
}

impl SippResult {
    pub fn shorts(&self) -> Vec<String> {
        self.messages.iter().map(Traced::short).collect()
    }
    /// The messages with this short form (e.g. `<INVITE`).
    pub fn find(&self, short: &str) -> Vec<&Traced> {
        self.messages
            .iter()
            .filter(|m| m.short() == short)
            .collect()
    }
}

impl Sipp {
    /// The SIPp process id: SIPp's default Call-ID is
    /// `<call number>-<pid>@<local ip>` and its From tag
    /// `<pid>SIPpTag00<call number>`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(mut self) -> SippResult {
        let deadline = Instant::now() + Duration::from_secs(40);
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
        let ok = status.map(|s| s.success()).unwrap_or(false);
        SippResult {
            ok,
            what: self.what,
            messages: parse_trace(&fs::read_to_string(&self.msg).unwrap_or_default()),
            errors: fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }
}

/// Parse SIPp's `-trace_msg` file.
pub fn parse_trace(s: &str) -> Vec<Traced> {
    let mut out = vec![];
    for chunk in s.split("----------------------------------------------- ") {
        let mut lines = chunk.lines();
        let _ts = lines.next();
        let Some(kind) = lines.next() else { continue };
        let sent = kind.contains("message sent");
        let received = kind.contains("message received");
        if !sent && !received {
            continue;
        }
        let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let text = body.join("\n").trim_end().to_string();
        if !text.is_empty() {
            out.push(Traced { sent, text });
        }
    }
    out
}

/// Assert with the lab's logs attached.
#[macro_export]
macro_rules! check {
    ($lab:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            panic!("{}\n--- sipcti log ({}):\n{}", format!($($arg)+), $lab.dir.display(), $lab.proxy_log());
        }
    };
}

pub fn local(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// Fail at once, with the install hint, when SIPp is missing.
pub fn require_sipp() {
    assert!(
        sipp_available(),
        "SIPp is not installed: apt-get install -y sip-tester"
    );
}

/// SIPp ended well and saw exactly these messages (short forms, e.g.
/// `>INVITE`, `<100`), in this order.
pub fn assert_sipp(lab: &Lab, r: &SippResult, expect: &[&str]) {
    check!(
        lab,
        r.ok,
        "SIPp {} failed:\n{}\nmessages: {:?}",
        r.what,
        r.errors,
        r.shorts()
    );
    check!(
        lab,
        r.shorts() == expect,
        "SIPp {} saw {:?}, expected {:?}",
        r.what,
        r.shorts(),
        expect
    );
}

/// The SIP Call-ID of the first message SIPp traced.
pub fn call_id(r: &SippResult) -> String {
    r.messages
        .first()
        .and_then(|m| m.header("Call-ID"))
        .expect("first message has a Call-ID")
}

/// An outbound call the trunk answers and the phone hangs up (SIPp
/// `uac_hangup` on the phone, `uas_answer` on the trunk, dialled
/// `0301234567`): asserts the exact messages each side saw and returns the
/// call's SIP Call-ID.
pub fn answered_call_out(lab: &Lab) -> String {
    let uas = lab.sipp(Host::Trunk, "uas_answer", None, &[]);
    let uac = lab
        .sipp(Host::Phone, "uac_hangup", Some("0301234567"), &[])
        .wait();
    let uas = uas.wait();
    assert_sipp(
        lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    call_id(&uac)
}

/// An inbound call from the trunk (`+491701234567`, "Bob", dialled
/// `4930111222`) that the phone answers as 201 and the trunk hangs up:
/// asserts the exact messages each side saw and returns the SIP Call-ID.
pub fn answered_call_in(lab: &Lab) -> String {
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
        lab,
        &uac,
        &[">INVITE", "<100", "<180", "<200", ">ACK", ">BYE", "<200"],
    );
    assert_sipp(
        lab,
        &uas,
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    );
    call_id(&uac)
}

impl Lab {
    /// Start a SIPp UAS as `host` bound to `port` instead of 5060 (a
    /// second phone on the same address, e.g. a ring group's second
    /// target). Its trace files are named after the port as well.
    pub fn sipp_uas_on_port(
        &self,
        host: Host,
        scen: &str,
        port: u16,
        keys: &[(&str, &str)],
    ) -> Sipp {
        let tag = format!("{:?}-{port}-{scen}", host).to_lowercase();
        self.sipp_at(host, scen, port, None, keys, (tag, &[]))
    }
}

/// Waits (at most 10 s) until Zammad accepted `n` CTI requests, then checks
/// that their summaries are exactly `expect`, in order, and that each
/// `callId` is the SIP Call-ID `sip_call_id`. Returns the requests.
pub fn assert_events(
    lab: &Lab,
    n: usize,
    sip_call_id: &str,
    expect: &[&str],
) -> Vec<LoggedRequest> {
    let evs = lab.accepted_events(n, Duration::from_secs(10));
    let got: Vec<String> = evs.iter().map(summary).collect();
    check!(
        lab,
        got == expect,
        "CTI events {got:#?}\nexpected {expect:#?}"
    );
    for e in &evs {
        check!(
            lab,
            e.call_id.as_deref() == Some(sip_call_id),
            "callId {:?} != SIP Call-ID {sip_call_id}",
            e.call_id
        );
    }
    evs
}

/// The live run and `sipcti replay` of its own capture give the same
/// events (summary and callId), in the same order.
pub fn assert_replay_matches(lab: &mut Lab, live: &[LoggedRequest]) {
    let replayed = lab.replay_capture();
    let live: Vec<(String, String)> = live
        .iter()
        .map(|e| (summary(e), e.call_id.clone().unwrap_or_default()))
        .collect();
    check!(
        lab,
        replayed == live,
        "replay of the capture {replayed:#?}\nlive {live:#?}"
    );
}

impl Lab {
    /// Kill sipcti with SIGKILL (a crash: nothing runs after it) and
    /// return its log.
    pub fn kill_proxy(&mut self) -> String {
        if let Some(mut p) = self.proxy.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        self.proxy_log()
    }

    /// Stop sipcti with SIGTERM; its exit status (`None` if it had to be
    /// killed after 20 s) and its log.
    pub fn stop_status(&mut self) -> (Option<std::process::ExitStatus>, String) {
        let mut status = None;
        if let Some(mut p) = self.proxy.take() {
            let _ = Command::new("kill").arg(p.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(s)) = p.try_wait() {
                    status = Some(s);
                    break;
                }
                if Instant::now() > deadline {
                    let _ = p.kill();
                    let _ = p.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (status, self.proxy_log())
    }

    /// Start sipcti again after [`Lab::kill_proxy`] or [`Lab::stop_status`],
    /// same configuration, its log appended.
    pub fn start_proxy_again(&mut self) {
        let before = self.proxy_log().len();
        self.start_proxy_after(before);
    }
}

impl Lab {
    /// Send signal `sig` (e.g. `"HUP"`) to the running sipcti.
    pub fn signal_proxy(&self, sig: &str) {
        if let Some(p) = &self.proxy {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(p.id().to_string())
                .status();
        }
    }

    /// Wait (at most `timeout`) until sipcti's log holds `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.proxy_log().matches(needle).count() >= n {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
