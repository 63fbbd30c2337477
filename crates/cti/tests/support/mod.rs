//! What the client's integration tests share: a tiny raw HTTP/1.1 server for the wire
//! tests (records each request's head and body and answers it as told), a test event,
//! and a bounded wait.
//!
//! Each test crate compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipcti_cti::{ClientConfig, CtiClient, Event, NewCallOutcome};
use sipcti_event::{Cause, Direction, EventKind};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server read it: its head (request line and headers) and its body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of header `name` (case-insensitive), if present once.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found = self.head.lines().skip(1).filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        });
        let v = found.next();
        assert!(found.next().is_none(), "{name} twice: {}", self.head);
        v
    }
}

pub type Log = Arc<Mutex<Vec<Seen>>>;

/// A keep-alive HTTP/1.1 server answering each request with `respond(request line)`
/// (`None`: never answer, keep the connection open). Records every request.
pub async fn server(respond: fn(&str) -> Option<&'static str>) -> (SocketAddr, Log) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            let log3 = log2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // a whole request (head and Content-Length body) in `buf`?
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let seen = Seen {
                            head,
                            body: Vec::new(),
                        };
                        let len: usize = seen
                            .header("content-length")
                            .map(|v| v.parse().unwrap())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = buf[end + 4..end + 4 + len].to_vec();
                            buf.drain(..end + 4 + len);
                            let line = seen.head.lines().next().unwrap_or("").to_string();
                            log3.lock().unwrap().push(Seen { body, ..seen });
                            match respond(&line) {
                                Some(r) => {
                                    if sock.write_all(r.as_bytes()).await.is_err() {
                                        return;
                                    }
                                }
                                None => {
                                    // hold the connection, answer nothing
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    return;
                                }
                            }
                            continue;
                        }
                    }
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                }
            });
        }
    });
    (addr, log)
}

/// An inbound event of `kind` for call `id`, from 4930111 to 4930222, nothing else set.
pub fn ev(kind: EventKind, id: &str) -> Event {
    Event {
        event: kind,
        direction: Direction::In,
        call_id: id.into(),
        from: Some("4930111".into()),
        to: Some("4930222".into()),
        user: None,
        queue: None,
        answering_number: None,
        cause: None,
    }
}

/// Wait until `cond` holds, polling every 2 ms; panics with `what` after 5 s.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(5), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// An inbound call's hangup, never answered (cause `cancel`): a second copy would flip
/// Zammad's missed flag, so it is retried only when the request certainly never reached
/// Zammad.
pub fn missed_hangup(id: &str) -> Event {
    Event {
        cause: Some(Cause::Cancel),
        ..ev(EventKind::Hangup, id)
    }
}

/// A client configuration for `url` that retries at once (5-10 ms) and gives an event up
/// after 300 ms, with a newCall waiting up to 3 s.
pub fn quick_retries(url: String) -> ClientConfig {
    ClientConfig {
        url: Some(url),
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(10),
        give_up_after: Duration::from_millis(300),
        newcall_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

/// Check that `c`'s requests never reach Zammad (the connection, TLS included, cannot be
/// made): a missed call's hangup is retried (at least twice) and never counted as
/// unconfirmed, and a newCall is given up with a `connect:` error naming no `secret`.
/// Returns that error text. Panics otherwise (`what` names the case).
pub async fn assert_never_reached(c: &CtiClient, what: &str, secret: &str) -> String {
    c.submit(missed_hangup("h"));
    wait_for("retries", || c.stats().retried >= 2).await;
    assert_eq!(c.stats().hangups_unconfirmed, 0, "{what}");
    match c.new_call(ev(EventKind::NewCall, "n")).await {
        NewCallOutcome::Dropped(why) => {
            eprintln!("{what}: {why}");
            assert!(why.contains("(last error: connect: "), "{what}: {why}");
            assert!(!why.contains(secret), "{what}: {why}");
            why
        }
        o => panic!("{what}: {o:?}"),
    }
}
