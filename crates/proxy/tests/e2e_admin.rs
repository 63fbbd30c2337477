//! End-to-end, issue 9 (operations): the real `sipcti` binary with
//! `[admin]`, one answered call with real SIPp, then `/metrics`, `/health`
//! and `/ready` over HTTP; then Zammad failing (503) for a second call:
//! `/ready` says not ready and why, and is ready again once the retried
//! events are delivered. The Zammad token (in the lab's URL) must appear in
//! no answer and no log line. Needs SIPp.

mod lab;

use std::time::{Duration, Instant};

use lab::{answered_call_out, require_sipp, Lab, Opts, TOKEN};
use sipcti_zammad_double::Mode;

/// The admin port on the lab's own proxy address (the /24 is the lab's).
const ADMIN_PORT: u16 = 9060;

/// `GET http://<proxy>:9060<path>`: (status, body).
fn get(lab: &Lab, path: &str) -> (u16, String) {
    let url = format!("http://{}:{ADMIN_PORT}{path}", lab.proxy_ip());
    lab.rt.block_on(async {
        let r = reqwest::get(&url).await.expect("admin server answers");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    })
}

/// The value of the sample line `name{labels}` (exactly as written) in a
/// Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrape `/metrics` until `series` has `value` (snapshot values lag up
/// to a second), at most 10 s; returns the last scrape.
fn scrape_until(lab: &Lab, series: &str, value: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = get(lab, "/metrics");
        assert_eq!(status, 200, "{text}");
        if sample(&text, series) == Some(value) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/ready` until its status is `want`, at most `within`.
fn ready_until(lab: &Lab, want: u16, within: Duration) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = get(lab, "/ready");
        assert!(!body.contains(TOKEN), "token in /ready: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("/ready is JSON");
        if status == want || Instant::now() > deadline {
            return (status, json);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_samples(lab: &Lab, text: &str, expect: &[(&str, f64)]) {
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(s, v)| sample(text, s) != Some(*v))
        .map(|(s, v)| format!("{s}: want {v}, got {:?}", sample(text, s)))
        .collect();
    check!(lab, wrong.is_empty(), "{wrong:#?}\n--- /metrics:\n{text}");
}

#[test]
fn metrics_health_and_ready_after_a_call_and_while_zammad_fails() {
    require_sipp();
    // with a durable outbox (the extra TOML continues the [zammad] section)
    let outbox = std::env::temp_dir().join(format!("sipcti-e2e-admin-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", outbox.display()));
    }
    let mut lab = Lab::start(
        "admin",
        Opts {
            extra_toml: format!(
                "outbox = \"{}\"\n\n[admin]\nlisten = \"{{proxy}}:{ADMIN_PORT}\"\n",
                outbox.display()
            ),
            ..Opts::default()
        },
    );
    let log = lab.proxy_log();
    check!(
        lab,
        log.contains("admin HTTP listening"),
        "admin server announced"
    );

    // before any call: healthy, ready, Zammad not heard of yet
    let (status, body) = get(&lab, "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, ready) = ready_until(&lab, 200, Duration::ZERO);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["zammad"]["reachable"], serde_json::Value::Null);
    assert_eq!(ready["outbox"]["writable"], serde_json::Value::Null);

    // one answered outbound call, its three events accepted
    answered_call_out(&lab);
    assert_eq!(lab.accepted_events(3, Duration::from_secs(10)).len(), 3);
    let text = scrape_until(&lab, "sipcti_cti_events_delivered_total", 3.0);
    assert_samples(
        &lab,
        &text,
        &[
            (
                "sipcti_calls_total{direction=\"out\",cause=\"normalClearing\"}",
                1.0,
            ),
            ("sipcti_calls_started_total{direction=\"out\"}", 1.0),
            ("sipcti_calls_active{direction=\"out\"}", 0.0),
            ("sipcti_cti_events_queued_total{event=\"newCall\"}", 1.0),
            ("sipcti_cti_events_queued_total{event=\"answer\"}", 1.0),
            ("sipcti_cti_events_queued_total{event=\"hangup\"}", 1.0),
            ("sipcti_cti_events_delivered_total", 3.0),
            ("sipcti_cti_retries_total", 0.0),
            (
                "sipcti_cti_events_dropped_total{reason=\"queue_full\"}",
                0.0,
            ),
            ("sipcti_cti_events_dropped_total{reason=\"gave_up\"}", 0.0),
            ("sipcti_cti_queue_depth", 0.0),
            ("sipcti_newcall_fail_open_total", 0.0),
            ("sipcti_zammad_newcall_seconds_count", 1.0),
            ("sipcti_zammad_newcall_seconds_bucket{le=\"+Inf\"}", 1.0),
            ("sipcti_refused_total{reason=\"forbidden\"}", 0.0),
            ("sipcti_refused_total{reason=\"rate\"}", 0.0),
            ("sipcti_tcp_connections", 0.0),
            ("sipcti_registration_bindings", 0.0),
            ("sipcti_outbox_events", 0.0),
            ("sipcti_outbox_oldest_age_seconds", 0.0),
            ("sipcti_outbox_lost_total", 0.0),
            ("sipcti_outbox_failed_commits_total", 0.0),
            ("sipcti_cti_calls_dropped_total", 0.0),
            ("sipcti_udp_dropped_total{reason=\"queue_full\"}", 0.0),
            ("sipcti_udp_dropped_total{reason=\"socket_buffer\"}", 0.0),
        ],
    );
    for name in [
        "sipcti_calls_total counter",
        "sipcti_calls_active gauge",
        "sipcti_transactions gauge",
        "sipcti_zammad_newcall_seconds histogram",
        "sipcti_cti_events_dropped_total counter",
    ] {
        check!(
            lab,
            text.lines().any(|l| l == format!("# TYPE {name}")),
            "no TYPE line for {name}:\n{text}"
        );
    }
    let requests = sample(&text, "sipcti_sip_requests_total");
    check!(
        lab,
        requests.is_some_and(|n| n >= 3.0),
        "INVITE, ACK and BYE received: {requests:?}"
    );
    check!(lab, !text.contains(TOKEN), "token in /metrics:\n{text}");
    let (status, ready) = ready_until(&lab, 200, Duration::ZERO);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["sip"], "up", "{ready}");
    assert_eq!(ready["zammad"]["mode"], "http", "{ready}");
    assert_eq!(ready["zammad"]["reachable"], true, "{ready}");
    assert_eq!(ready["zammad"]["last_error"], serde_json::Value::Null);
    assert_eq!(ready["outbox"]["writable"], true, "{ready}");
    check!(
        lab,
        sample(&text, "sipcti_outbox_commits_total").is_some_and(|n| n >= 1.0),
        "outbox commits counted:\n{text}"
    );

    // Zammad answers 503: the second call fails open, /ready says why
    lab.set_mode(Mode::Fail(503));
    answered_call_out(&lab);
    let (status, ready) = ready_until(&lab, 503, Duration::from_secs(10));
    assert_eq!(status, 503, "not ready while Zammad fails: {ready}");
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(ready["sip"], "up", "{ready}");
    assert_eq!(ready["zammad"]["reachable"], false, "{ready}");
    assert!(ready["zammad"]["last_error"].is_string(), "{ready}");
    let (status, _) = get(&lab, "/health");
    assert_eq!(status, 200, "healthy while Zammad fails");
    let text = scrape_until(&lab, "sipcti_newcall_fail_open_total", 1.0);
    assert_samples(
        &lab,
        &text,
        &[
            (
                "sipcti_calls_total{direction=\"out\",cause=\"normalClearing\"}",
                2.0,
            ),
            ("sipcti_newcall_fail_open_total", 1.0),
            ("sipcti_zammad_newcall_seconds_count", 1.0),
            ("sipcti_cti_events_delivered_total", 3.0),
        ],
    );
    check!(
        lab,
        sample(&text, "sipcti_cti_retries_total").is_some_and(|n| n >= 1.0),
        "retries counted:\n{text}"
    );
    // the backlog waits: its age shows
    let text = scrape_until(&lab, "sipcti_cti_retries_total", 1.0);
    check!(
        lab,
        sample(&text, "sipcti_outbox_oldest_age_seconds").is_some_and(|a| a > 0.0),
        "the waiting events' age:\n{text}"
    );

    // Zammad back: the retried events are delivered, ready again
    lab.set_mode(Mode::Normal);
    assert_eq!(lab.accepted_events(6, Duration::from_secs(30)).len(), 6);
    let (status, ready) = ready_until(&lab, 200, Duration::from_secs(10));
    assert_eq!(status, 200, "ready again: {ready}");
    assert_eq!(ready["zammad"]["reachable"], true, "{ready}");
    let text = scrape_until(&lab, "sipcti_cti_events_delivered_total", 6.0);
    assert_samples(
        &lab,
        &text,
        &[
            ("sipcti_cti_events_delivered_total", 6.0),
            ("sipcti_cti_queue_depth", 0.0),
            ("sipcti_calls_active{direction=\"out\"}", 0.0),
        ],
    );

    let log = lab.stop();
    assert!(!log.contains(TOKEN), "token in the log");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", outbox.display()));
    }
}
