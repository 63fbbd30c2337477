//! The keep-alive connections are opened at start (issue 11: no cold start), with requests
//! that reach no CTI logic: `HEAD /`, no token, no body.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipcti_cti::{ClientConfig, CtiClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server answering every request `404` with keep-alive; records the
/// connections it accepted and each request's head.
async fn server() -> (String, Arc<Mutex<(usize, Vec<String>)>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new((0usize, Vec::new())));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            s2.lock().unwrap().0 += 1;
            let s3 = s2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        s3.lock().unwrap().1.push(head);
                        let resp = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
                        if sock.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/api/v1/cti/SECRETTOKEN"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_opens_one_connection_per_lane_without_touching_the_cti_endpoint() {
    let (url, seen) = server().await;
    let _c = CtiClient::start(ClientConfig {
        url: Some(url),
        max_in_flight: 3,
        newcall_slots: 2,
        ..ClientConfig::default()
    })
    .unwrap();
    let t0 = Instant::now();
    // the first request alone, then one per lane: 6 requests, 5 connections (a connect
    // that lost the race to an idle connection finishes in the background)
    loop {
        let (conns, heads) = seen.lock().unwrap().clone();
        if heads.len() >= 6 && conns >= 5 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not warmed: {conns} connections, {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (conns, heads) = seen.lock().unwrap().clone();
    // 5, or 6 when the first connection was not back in the pool yet when the other
    // requests went out (hyper returns it from a task of its own); the pool keeps 5
    assert!((5..=6).contains(&conns), "{conns} connections: {heads:?}");
    assert_eq!(heads.len(), 6, "{heads:?}");
    for h in &heads {
        assert!(h.starts_with("HEAD / HTTP/1.1\r\n"), "{h}");
        assert!(!h.contains("SECRETTOKEN") && !h.contains("/api"), "{h}");
        let lower = h.to_ascii_lowercase();
        assert!(
            !lower.contains("content-length") && !lower.contains("content-type"),
            "{h}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_tried_once() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l); // nothing listens: connection refused
    let c = CtiClient::start(ClientConfig {
        url: Some(format!("http://{addr}/api/v1/cti/T")),
        ..ClientConfig::default()
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // nothing queued, nothing counted
    let s = c.stats();
    assert_eq!((s.queued, s.delivered, s.retried), (0, 0, 0));
}
