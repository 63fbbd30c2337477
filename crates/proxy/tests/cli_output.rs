//! The real `sipcti` binary, run as a person would, with every log at TRACE:
//!
//! * no TOML error, log line or message of `check-config` or `run` shows the Zammad URL past
//!   its host, for every realistic typo around `zammad.url` and every place a token can sit
//!   in the URL (last segment, middle segment, query, userinfo, fragment), nor while `run`
//!   cannot reach Zammad;
//! * log lines carry no ANSI colour codes when stderr is not a terminal (here: a pipe).

mod lab;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sipcti");
const SECRET: &str = "S3CR3TT0K3N";

/// The loopback fixture's settings with a `[zammad]` table whose url line is `{URL_LINE}`.
const BASE: &str = r#"
[sip]
listen = "{LISTEN}"
[trunk]
uri = "sip:127.0.0.2:5060;transport=udp"
sources = ["127.0.0.2/32"]
[inside]
networks = ["127.0.0.3/32"]
target = "sip:127.0.0.3:5060"
[zammad]
newcall_timeout_ms = 200
{URL_LINE}
"#;

/// Zammad URLs with the token in each place it can be; all unreachable (port 1 refuses).
fn url_shapes() -> Vec<String> {
    [
        "http://127.0.0.1:1/api/v1/cti/{S}",
        "http://127.0.0.1:1/{S}/api/v1/cti/x",
        "http://127.0.0.1:1/api/v1/cti?token={S}",
        "http://user:{S}@127.0.0.1:1/api/v1/cti/x",
        "http://127.0.0.1:1/api/v1/cti/x#{S}",
    ]
    .iter()
    .map(|u| u.replace("{S}", SECRET))
    .collect()
}

/// Realistic typos around `zammad.url` (`{U}` is the URL); each makes the file invalid.
const TYPOS: &[(&str, &str)] = &[
    ("missing opening quote", "url = {U}\""),
    ("missing closing quote", "url = \"{U}"),
    ("unquoted", "url = {U}"),
    ("duplicate key", "url = \"{U}\"\nurl = \"{U}\""),
    ("missing =", "url \"{U}\""),
    ("wrong type", "url = [\"{U}\"]"),
    ("url in the wrong key", "format = \"{U}\""),
    (
        "unknown key next to url",
        "url = \"{U}\"\nurl_token = \"{U}\"",
    ),
    ("bad escape", "url = \"{U}\\q\""),
    ("trailing garbage", "url = \"{U}\" x"),
    ("unclosed multi-line string", "url = \"\"\"{U}"),
];

/// Where one run of the proxy listens: 127.A.B.1:5060 on a loopback /24 reserved the way
/// the e2e lab reserves its own ([`lab::reserve`]), so no test running beside this one
/// (nor an outgoing connection of one) can hold the address. The reservation lasts as
/// long as this value.
struct Listen {
    addr: SocketAddr,
    _reservation: UdpSocket,
}

fn listen() -> Listen {
    let ([a, b], reservation) = lab::reserve();
    Listen {
        addr: SocketAddr::from(([127, a, b, 1], 5060)),
        _reservation: reservation,
    }
}

/// Write `BASE` with `url_line` to `dir/name`, listening on a freshly reserved address;
/// returns the file and that address (keep it while the proxy may run).
fn write_config(dir: &std::path::Path, name: &str, url_line: &str) -> (PathBuf, Listen) {
    let listen = listen();
    let text = BASE
        .replace("{LISTEN}", &listen.addr.to_string())
        .replace("{URL_LINE}", url_line);
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    (path, listen)
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sipcti-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sipcti(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("SIPCTI_LOG", "trace")
        .env("RUST_LOG", "trace")
        .env_remove(sipcti_proxy::config::ZAMMAD_URL_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for `child` at most `limit`; SIGTERM it then (SIGKILL 5 s later). Returns its output.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    let mut termed = false;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if !termed && start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            termed = true;
        }
        if start.elapsed() > limit + Duration::from_secs(5) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Output {
        status: child.wait().expect("wait"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out.stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut out.stderr);
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Nothing past the host of a Zammad URL: no token, no path, no userinfo.
fn assert_no_secret(what: &str, o: &Output) {
    let t = text(o);
    assert!(!t.contains(SECRET), "{what}: the token leaked\n{t}");
    assert!(!t.contains("/api/v1"), "{what}: the URL path leaked\n{t}");
    assert!(!t.contains("user:"), "{what}: the userinfo leaked\n{t}");
}

#[test]
fn typos_near_zammad_url_never_print_the_token() {
    let dir = tempdir("typos");
    for (i, (name, typo)) in TYPOS.iter().enumerate() {
        for (j, url) in url_shapes().into_iter().enumerate() {
            let (cfg, _listen) =
                write_config(&dir, &format!("t{i}-{j}.toml"), &typo.replace("{U}", &url));
            let cfg = cfg.to_str().expect("utf-8 path");
            let check = finish(
                sipcti(&["check-config", "--config", cfg])
                    .spawn()
                    .expect("spawn"),
                Duration::from_secs(10),
            );
            assert!(!check.status.success(), "{name}: {}", text(&check));
            assert!(
                String::from_utf8_lossy(&check.stderr).contains("TOML error at line "),
                "{name}: {}",
                text(&check)
            );
            assert_no_secret(&format!("check-config, {name}, {url}"), &check);
            let run = finish(
                sipcti(&["run", "--config", cfg]).spawn().expect("spawn"),
                Duration::from_secs(10),
            );
            assert!(!run.status.success(), "{name}: {}", text(&run));
            assert_no_secret(&format!("run, {name}, {url}"), &run);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An INVITE from the configured phone network (127.0.0.3) to the proxy at `proxy`.
fn invite(proxy: SocketAddr, n: usize) -> String {
    format!(
        "INVITE sip:+4930123456@{proxy} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKcli{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:201@127.0.0.3>;tag=f{n}\r\n\
         To: <sip:+4930123456@{ip}>\r\n\
         Call-ID: cli-{n}@127.0.0.3\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:201@127.0.0.3:5070>\r\n\
         Content-Length: 0\r\n\r\n",
        ip = proxy.ip()
    )
}

#[test]
fn valid_urls_are_redacted_in_check_config_and_run_with_zammad_down() {
    let dir = tempdir("valid");
    let phone = UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    for (j, url) in url_shapes().into_iter().enumerate() {
        let (path, listen) = write_config(&dir, &format!("v{j}.toml"), &format!("url = \"{url}\""));
        let cfg = path.to_str().expect("utf-8 path");
        let check = finish(
            sipcti(&["check-config", "--config", cfg])
                .spawn()
                .expect("spawn"),
            Duration::from_secs(10),
        );
        assert!(check.status.success(), "{}", text(&check));
        assert!(
            String::from_utf8_lossy(&check.stdout).contains("url = \"http://127.0.0.1:1/***\""),
            "{}",
            text(&check)
        );
        assert_no_secret(&format!("check-config {url}"), &check);

        let child = sipcti(&["run", "--config", cfg]).spawn().expect("spawn");
        // a call makes the CTI client try (and fail) to reach Zammad
        std::thread::sleep(Duration::from_millis(700));
        phone
            .send_to(invite(listen.addr, j).as_bytes(), listen.addr)
            .expect("send INVITE");
        let run = finish(child, Duration::from_millis(1500));
        let err = String::from_utf8_lossy(&run.stderr).to_string();
        assert!(err.contains("127.0.0.1:1/***"), "{}", text(&run));
        assert!(err.contains("CTI delivery failed"), "{}", text(&run));
        assert_no_secret(&format!("run {url}"), &run);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_ansi_colour_codes_when_stderr_is_a_pipe() {
    let dir = tempdir("ansi");
    let (path, _listen) = write_config(&dir, "a.toml", "url = \"http://127.0.0.1:1/api/v1/cti/x\"");
    let cfg = path.to_str().expect("utf-8 path");
    let child = sipcti(&["run", "--config", cfg]).spawn().expect("spawn");
    let run = finish(child, Duration::from_millis(800));
    let err = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(
        err.contains("INFO"),
        "no log line to check:\n{}",
        text(&run)
    );
    assert!(
        !err.contains("\x1b["),
        "ANSI escape in piped logs:\n{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
