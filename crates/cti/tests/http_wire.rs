//! What the CTI client puts on the wire and how it reads transport failures, seen from a
//! tiny raw HTTP/1.1 server: the request line and headers (Host, Accept, Content-Type,
//! Content-Length, User-Agent, Basic auth from the URL's userinfo), redirects not followed,
//! a refused connection retried as "never reached Zammad", a time-out counted as "may have
//! reached Zammad", and error texts without the token.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sipcti_cti::{ClientConfig, CtiClient, Decision, Format, NewCallOutcome};
use sipcti_event::EventKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::{
    assert_never_reached, ev, missed_hangup, quick_retries, server, wait_for, Log, Seen,
};

const OK_EMPTY_JSON: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";

/// `HEAD` (the warm-up) 404, everything else `200 {}`.
fn zammad_like(line: &str) -> Option<&'static str> {
    Some(if line.starts_with("HEAD ") {
        NOT_FOUND
    } else {
        OK_EMPTY_JSON
    })
}

fn posts(log: &Log) -> Vec<Seen> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.head.starts_with("POST "))
        .cloned()
        .collect()
}

/// An inbound call's hangup, never answered: a second copy would flip Zammad's missed flag,
/// so it is sent again only after a failure that certainly did not reach Zammad.
fn user_agent() -> String {
    format!("sipcti/{}", env!("CARGO_PKG_VERSION"))
}

#[tokio::test]
async fn post_carries_host_accept_content_type_length_and_the_body() {
    let (addr, log) = server(zammad_like).await;
    for (format, content_type) in [
        (Format::Json, "application/json"),
        (Format::Form, "application/x-www-form-urlencoded"),
    ] {
        let c = CtiClient::start(ClientConfig {
            url: Some(format!("http://{addr}/api/v1/cti/TOKEN?x=1#frag")),
            format,
            ..ClientConfig::default()
        })
        .unwrap();
        let id = format!("{format:?}-call");
        let o = c.new_call(ev(EventKind::NewCall, &id)).await;
        assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
        let p = posts(&log).pop().unwrap();
        assert!(
            p.head
                .starts_with("POST /api/v1/cti/TOKEN?x=1 HTTP/1.1\r\n"),
            "{}",
            p.head
        );
        assert_eq!(p.header("host").as_deref(), Some(&*addr.to_string()));
        assert_eq!(p.header("accept").as_deref(), Some("application/json"));
        assert_eq!(p.header("content-type").as_deref(), Some(content_type));
        assert_eq!(p.header("user-agent"), Some(user_agent()));
        assert_eq!(p.header("authorization"), None);
        assert_eq!(
            p.header("content-length"),
            Some(p.body.len().to_string()),
            "{}",
            p.head
        );
        let body = String::from_utf8(p.body.clone()).unwrap();
        assert!(body.contains("newCall") && body.contains(&id), "{body}");
        assert!(c.drain(Duration::from_secs(2)).await);
    }
}

/// The userinfo of the URL is sent as `Authorization: Basic` (percent-decoded), on the
/// warm-up `HEAD` too, and never in the request line.
#[tokio::test]
async fn userinfo_becomes_basic_auth() {
    let (addr, log) = server(zammad_like).await;
    let port = addr.port();
    let c = CtiClient::start(ClientConfig {
        url: Some(format!(
            "http://us%40er:pa%20ss@localhost:{port}/api/v1/cti/T"
        )),
        max_in_flight: 1,
        newcall_slots: 0,
        ..ClientConfig::default()
    })
    .unwrap();
    let o = c.new_call(ev(EventKind::NewCall, "auth")).await;
    assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    wait_for("the warm-up HEAD", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|s| s.head.starts_with("HEAD "))
    })
    .await;
    // base64("us@er:pa ss")
    let want = "Basic dXNAZXI6cGEgc3M=";
    for s in log.lock().unwrap().iter() {
        assert_eq!(
            s.header("authorization").as_deref(),
            Some(want),
            "{}",
            s.head
        );
        assert_eq!(
            s.header("host").as_deref(),
            Some(&*format!("localhost:{port}"))
        );
        let line = s.head.lines().next().unwrap();
        assert!(!line.contains("us") && !line.contains("ss@"), "{line}");
    }
}

/// A redirect is Zammad's answer, not followed: the newCall is dropped with it.
#[tokio::test]
async fn redirects_are_not_followed() {
    fn redirect(line: &str) -> Option<&'static str> {
        Some(if line.starts_with("POST /api") {
            "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"
        } else {
            OK_EMPTY_JSON
        })
    }
    let (addr, log) = server(redirect).await;
    let c = CtiClient::start(ClientConfig {
        url: Some(format!("http://{addr}/api/v1/cti/TOKEN")),
        ..ClientConfig::default()
    })
    .unwrap();
    match c.new_call(ev(EventKind::NewCall, "r")).await {
        NewCallOutcome::Dropped(why) => assert!(why.contains("HTTP 302"), "{why}"),
        o => panic!("{o:?}"),
    }
    assert!(c.drain(Duration::from_secs(2)).await);
    assert_eq!(posts(&log).len(), 1);
    assert!(!log
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.head.contains("/elsewhere")));
}

/// Nothing listens: the request never reached Zammad, so even a missed call's hangup is
/// retried; the error text says "connect" and holds no token.
#[tokio::test]
async fn refused_connection_is_retried_even_for_a_missed_hangup() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = CtiClient::start(quick_retries(format!(
        "http://{addr}/api/v1/cti/SECRETTOKEN"
    )))
    .unwrap();
    let why = assert_never_reached(&c, "refused", "SECRETTOKEN").await;
    assert!(why.starts_with("gave_up: "), "{why}");
}

/// Zammad took the request but no answer came within `request_timeout`: it may have
/// processed it, so a missed call's hangup is not sent again; the error says "timeout".
#[tokio::test]
async fn timeout_may_have_reached_zammad() {
    fn silent(line: &str) -> Option<&'static str> {
        line.starts_with("HEAD ").then_some(NOT_FOUND)
    }
    let (addr, log) = server(silent).await;
    let c = CtiClient::start(ClientConfig {
        url: Some(format!("http://{addr}/api/v1/cti/SECRETTOKEN")),
        request_timeout: Duration::from_millis(150),
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(10),
        give_up_after: Duration::from_millis(400),
        newcall_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    })
    .unwrap();
    c.submit(missed_hangup("h"));
    wait_for("unconfirmed", || c.stats().hangups_unconfirmed == 1).await;
    assert_eq!(posts(&log).len(), 1);
    assert_eq!(c.stats().retried, 0);
    match c.new_call(ev(EventKind::NewCall, "n")).await {
        NewCallOutcome::Dropped(why) => {
            eprintln!("timeout: {why}");
            assert!(why.contains("(last error: timeout: "), "{why}");
            assert!(!why.contains("SECRETTOKEN"), "{why}");
        }
        o => panic!("{o:?}"),
    }
}

/// An https URL speaks TLS (rustls): a server that does not is a failed connect (the
/// request never left), retried; the error text holds no token.
#[tokio::test]
async fn https_to_a_plain_server_is_a_connect_failure() {
    // answers every connection with plain HTTP at once, whatever it is sent
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Arc::new(Mutex::new(0usize));
    let conns2 = conns.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            *conns2.lock().unwrap() += 1;
            tokio::spawn(async move {
                let _ = sock.write_all(NOT_FOUND.as_bytes()).await;
                let mut sink = [0u8; 4096];
                while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let c = CtiClient::start(quick_retries(format!(
        "https://localhost:{port}/api/v1/cti/SECRETTOKEN"
    )))
    .unwrap();
    assert_never_reached(&c, "tls", "SECRETTOKEN").await;
    assert!(*conns.lock().unwrap() >= 2);
}
