//! The proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, as reqwest
//! and curl read them): an http URL's requests go to the proxy in absolute form with
//! `Proxy-Authorization`; an https URL is tunnelled with `CONNECT`; a host in `NO_PROXY`
//! is reached directly; a SOCKS proxy is not used (connects fail). One test, in a binary of its own: the environment is the
//! process's.

mod support;

use std::time::Duration;

use sipcti_cti::{ClientConfig, CtiClient, Decision, NewCallOutcome};
use sipcti_event::EventKind;

use support::{assert_never_reached, ev, quick_retries, server, wait_for, Log, Seen};

const VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn set_env(vars: &[(&str, String)]) {
    for v in VARS.into_iter().chain(["REQUEST_METHOD"]) {
        std::env::remove_var(v);
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

fn answer(line: &str) -> Option<&'static str> {
    Some(if line.starts_with("CONNECT ") {
        "HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
    } else if line.starts_with("HEAD ") {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    } else {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    })
}

#[tokio::test]
async fn the_proxy_from_the_environment_is_used() {
    let ua = format!("sipcti/{}", env!("CARGO_PKG_VERSION"));
    // base64("pu:pp")
    let proxy_auth = "Basic cHU6cHA=";

    // http URL: absolute form to the proxy, with Proxy-Authorization (the host does not
    // resolve: only the proxy can reach it)
    let (proxy, plog) = server(answer).await;
    set_env(&[("HTTP_PROXY", format!("http://pu:pp@{proxy}"))]);
    let c = CtiClient::start(ClientConfig {
        url: Some("http://zammad.invalid:8080/api/v1/cti/TOKEN".into()),
        ..ClientConfig::default()
    })
    .unwrap();
    let o = c.new_call(ev(EventKind::NewCall, "fwd")).await;
    assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    wait_for("the warm-up HEAD", || {
        seen(&plog).iter().any(|s| s.head.starts_with("HEAD "))
    })
    .await;
    for s in seen(&plog) {
        let line = s.head.lines().next().unwrap();
        assert!(
            line == "POST http://zammad.invalid:8080/api/v1/cti/TOKEN HTTP/1.1"
                || line == "HEAD http://zammad.invalid:8080/ HTTP/1.1",
            "{}",
            s.head
        );
        assert_eq!(s.header("host").as_deref(), Some("zammad.invalid:8080"));
        assert_eq!(s.header("proxy-authorization").as_deref(), Some(proxy_auth));
        assert_eq!(s.header("user-agent").as_deref(), Some(&*ua));
        if line.starts_with("POST ") {
            let body = String::from_utf8_lossy(&s.body);
            assert!(body.contains("newCall") && body.contains("fwd"), "{body}");
        }
    }
    drop(c);

    // https URL: a CONNECT tunnel (the proxy refuses it: a failed connect, retried)
    let (proxy, plog) = server(answer).await;
    set_env(&[("HTTPS_PROXY", format!("http://pu:pp@{proxy}"))]);
    let c = CtiClient::start(quick_retries(
        "https://zammad.invalid/api/v1/cti/TOKEN".into(),
    ))
    .unwrap();
    assert_never_reached(&c, "tunnel", "TOKEN").await;
    let all = seen(&plog);
    assert!(all.len() >= 3, "{all:?}");
    for s in all {
        assert!(
            s.head
                .starts_with("CONNECT zammad.invalid:443 HTTP/1.1\r\n"),
            "{}",
            s.head
        );
        assert_eq!(s.header("host").as_deref(), Some("zammad.invalid:443"));
        assert_eq!(s.header("proxy-authorization").as_deref(), Some(proxy_auth));
        assert_eq!(s.header("user-agent").as_deref(), Some(&*ua));
    }
    drop(c);

    // a host in NO_PROXY: straight to the server
    let (proxy, plog) = server(answer).await;
    let (direct, dlog) = server(answer).await;
    set_env(&[
        ("HTTP_PROXY", format!("http://{proxy}")),
        ("NO_PROXY", "localhost,127.0.0.1".into()),
    ]);
    let c = CtiClient::start(ClientConfig {
        url: Some(format!("http://{direct}/api/v1/cti/TOKEN")),
        ..ClientConfig::default()
    })
    .unwrap();
    let o = c.new_call(ev(EventKind::NewCall, "direct")).await;
    assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    assert!(seen(&dlog)
        .iter()
        .any(|s| s.head.starts_with("POST /api/v1/cti/TOKEN HTTP/1.1\r\n")));
    assert!(seen(&plog).is_empty());
    drop(c);

    // a SOCKS proxy cannot be used: every connect fails, never a request in the clear
    let (direct, dlog) = server(answer).await;
    set_env(&[("ALL_PROXY", "socks5://127.0.0.1:1".into())]);
    let c = CtiClient::start(ClientConfig {
        url: Some(format!("http://{direct}/api/v1/cti/TOKEN")),
        give_up_after: Duration::from_millis(100),
        retry_initial: Duration::from_millis(5),
        newcall_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    })
    .unwrap();
    match c.new_call(ev(EventKind::NewCall, "socks")).await {
        NewCallOutcome::Dropped(why) => {
            eprintln!("socks: {why}");
            assert!(why.contains("(last error: connect: "), "{why}");
            assert!(why.contains("SOCKS"), "{why}");
        }
        o => panic!("{o:?}"),
    }
    assert!(seen(&dlog).is_empty());
    set_env(&[]);
}
