//! The CTI client against the Zammad double (and one tiny custom server).

use std::time::Duration;

use serde_json::json;
use sipcti_cti::{ClientConfig, CtiClient, Decision, Event, Format, NewCallOutcome};
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_zammad_double::{spawn_double, DoubleConfig, LoggedRequest, Mode, Rules, ZammadDouble};

const RULES: &str = r#"
block = ["491715000000"]
default_caller_id = "4930777000000"
[[caller_id]]
pattern = "41*"
caller_id = "41715880339000"
"#;

async fn double() -> ZammadDouble {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_double(
        l,
        DoubleConfig {
            token: "TOKEN".into(),
            rules: Rules::from_toml_str(RULES).unwrap(),
        },
    )
    .await
    .unwrap()
}

fn cfg(url: String) -> ClientConfig {
    ClientConfig {
        url: Some(url),
        newcall_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        ..ClientConfig::default()
    }
}

fn ev(kind: EventKind, dir: Direction, id: &str) -> Event {
    Event {
        event: kind,
        direction: dir,
        call_id: id.into(),
        from: None,
        to: None,
        user: None,
        queue: None,
        answering_number: None,
        cause: None,
    }
}

fn new_call(dir: Direction, id: &str, from: &str, to: &str) -> Event {
    Event {
        from: Some(from.into()),
        to: Some(to.into()),
        ..ev(EventKind::NewCall, dir, id)
    }
}

fn answer(id: &str) -> Event {
    Event {
        user: Some("Max".into()),
        answering_number: Some("201".into()),
        ..ev(EventKind::Answer, Direction::In, id)
    }
}

fn hangup(id: &str, cause: Cause) -> Event {
    Event {
        cause: Some(cause),
        ..ev(EventKind::Hangup, Direction::In, id)
    }
}

/// Accepted (200) requests of one call, in arrival order, as event names.
fn accepted(log: &[LoggedRequest], id: &str) -> Vec<String> {
    log.iter()
        .filter(|r| r.status == 200 && r.call_id.as_deref() == Some(id))
        .filter_map(|r| r.event.clone())
        .collect()
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached in 2 s");
}

#[tokio::test]
async fn new_call_reject_dial_continue_json() {
    let d = double().await;
    let c = CtiClient::start(cfg(d.url())).unwrap();
    let r = c
        .new_call(new_call(
            Direction::In,
            "a",
            "491715000000",
            "4930600000000",
        ))
        .await;
    assert_eq!(
        r,
        NewCallOutcome::Answered(Decision::Reject {
            reason: "busy".into()
        })
    );
    let r = c
        .new_call(new_call(
            Direction::Out,
            "b",
            "4930600000000",
            "4147110000000",
        ))
        .await;
    assert_eq!(
        r,
        NewCallOutcome::Answered(Decision::Dial {
            caller_id: "41715880339000".into()
        })
    );
    let r = c
        .new_call(new_call(
            Direction::In,
            "c",
            "4912347114711",
            "4930600000000",
        ))
        .await;
    assert_eq!(r, NewCallOutcome::Answered(Decision::Continue));
    let log = d.log();
    assert_eq!(log.len(), 3);
    for r in &log {
        assert_eq!(r.accept.as_deref(), Some("application/json"));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    let s = c.stats();
    assert_eq!(
        (s.delivered, s.fail_open, s.retried, s.queued),
        (3, 0, 0, 0)
    );
}

#[tokio::test]
async fn form_encoding_reaches_zammad_with_user_array_only_on_new_call() {
    let d = double().await;
    let c = CtiClient::start(ClientConfig {
        format: Format::Form,
        ..cfg(d.url())
    })
    .unwrap();
    let nc = Event {
        user: Some("Max".into()),
        ..new_call(Direction::In, "f", "4912347114711", "4930600000000")
    };
    assert_eq!(
        c.new_call(nc).await,
        NewCallOutcome::Answered(Decision::Continue)
    );
    c.submit(answer("f"));
    c.submit(hangup("f", Cause::NormalClearing));
    assert!(c.drain(Duration::from_secs(2)).await);
    let log = d.log();
    assert_eq!(accepted(&log, "f"), ["newCall", "answer", "hangup"]);
    assert_eq!(
        log[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(log[0].user, Some(json!(["Max"])));
    assert_eq!(log[1].user, Some(json!("Max")));
    let call = d.call("f").unwrap();
    assert!(call.answered && !call.missed);
}

#[tokio::test]
async fn new_call_times_out_but_is_delivered_later() {
    let d = double().await;
    d.set_mode(Mode::Delay(Duration::from_millis(300)));
    let c = CtiClient::start(ClientConfig {
        newcall_timeout: Duration::from_millis(50),
        ..cfg(d.url())
    })
    .unwrap();
    let r = c
        .new_call(new_call(Direction::In, "t", "491715000000", "1"))
        .await;
    assert_eq!(r, NewCallOutcome::TimedOut);
    c.submit(hangup("t", Cause::Cancel));
    assert_eq!(c.stats().fail_open, 1);
    assert!(c.drain(Duration::from_secs(3)).await);
    assert_eq!(accepted(&d.log(), "t"), ["newCall", "hangup"]);
    let s = c.stats();
    assert_eq!((s.delivered, s.retried, s.dropped.total()), (2, 0, 0));
}

async fn down_then_back(mode: Mode) {
    let d = double().await;
    d.set_mode(mode);
    let c = CtiClient::start(ClientConfig {
        newcall_timeout: Duration::from_millis(30),
        ..cfg(d.url())
    })
    .unwrap();
    for id in ["x1", "x2"] {
        let r = c
            .new_call(new_call(
                Direction::In,
                id,
                "4912347114711",
                "4930600000000",
            ))
            .await;
        assert_eq!(r, NewCallOutcome::TimedOut);
        c.submit(answer(id));
        c.submit(hangup(id, Cause::NormalClearing));
    }
    // Zammad stays down for a while: several failed attempts.
    wait_for(|| d.log().len() >= 6).await;
    assert!(d.calls().is_empty());
    d.set_mode(Mode::Normal);
    assert!(c.drain(Duration::from_secs(3)).await);
    let log = d.log();
    for id in ["x1", "x2"] {
        assert_eq!(accepted(&log, id), ["newCall", "answer", "hangup"], "{id}");
        let call = d.call(id).unwrap();
        assert!(call.answered && !call.missed);
        assert_eq!(call.hangups, 1);
    }
    // nothing of a call was ever sent before its newCall was accepted
    for id in ["x1", "x2"] {
        let first_ok = log
            .iter()
            .position(|r| r.status == 200 && r.call_id.as_deref() == Some(id))
            .unwrap();
        assert!(log[..first_ok]
            .iter()
            .filter(|r| r.call_id.as_deref() == Some(id))
            .all(|r| r.event.as_deref() == Some("newCall")));
    }
    let s = c.stats();
    assert_eq!(s.delivered, 6);
    assert!(s.retried >= 4, "{s:?}");
    assert_eq!(s.dropped.total(), 0);
    assert_eq!(s.fail_open, 2);
}

#[tokio::test]
async fn down_with_503_then_back_delivers_everything_once_in_order() {
    down_then_back(Mode::Fail(503)).await;
}

#[tokio::test]
async fn down_with_connection_reset_then_back_delivers_everything_once_in_order() {
    down_then_back(Mode::Reset).await;
}

#[tokio::test]
async fn unreachable_zammad_is_retried_until_it_listens() {
    // Reserve a port, close it, start the double on it later.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = CtiClient::start(cfg(format!("http://{addr}/api/v1/cti/TOKEN"))).unwrap();
    c.submit(new_call(Direction::Out, "u", "1", "2"));
    c.submit(ev(EventKind::Hangup, Direction::Out, "u"));
    wait_for(|| c.stats().retried >= 2).await;
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let d = spawn_double(
        l,
        DoubleConfig {
            token: "TOKEN".into(),
            rules: Rules::default(),
        },
    )
    .await
    .unwrap();
    assert!(c.drain(Duration::from_secs(3)).await);
    assert_eq!(accepted(&d.log(), "u"), ["newCall", "hangup"]);
}

#[tokio::test]
async fn retried_new_call_answered_already_exists_counts_as_delivered() {
    let d = double().await;
    // Zammad processes the newCall but answers too late for the client: the retry then
    // meets "already exists".
    d.set_mode(Mode::Delay(Duration::from_millis(400)));
    let c = CtiClient::start(ClientConfig {
        request_timeout: Duration::from_millis(100),
        ..cfg(d.url())
    })
    .unwrap();
    let pending = c.new_call(new_call(Direction::Out, "e", "1", "4147110000000"));
    c.submit(hangup("e", Cause::NormalClearing));
    wait_for(|| !d.log().is_empty()).await;
    d.set_mode(Mode::Normal);
    let r = pending.await;
    assert!(
        matches!(r, NewCallOutcome::Failed(ref m) if m.contains("already exists")),
        "{r:?}"
    );
    assert!(c.drain(Duration::from_secs(3)).await);
    let s = c.stats();
    assert_eq!(s.already_exists_as_delivered, 1);
    assert_eq!(s.delivered, 2);
    assert_eq!(s.dropped.total(), 0);
    assert!(s.retried >= 1);
    let log = d.log();
    assert!(log
        .iter()
        .any(|r| r.status == 500 && r.event.as_deref() == Some("newCall")));
    assert_eq!(d.call("e").unwrap().hangups, 1);
}

#[tokio::test]
async fn first_attempt_already_exists_is_a_duplicate_not_a_delivery() {
    let d = double().await;
    let c = CtiClient::start(cfg(d.url())).unwrap();
    c.submit(new_call(Direction::In, "dup", "1", "2"));
    let r = c.new_call(new_call(Direction::In, "dup", "1", "2")).await;
    assert!(
        matches!(r, NewCallOutcome::Dropped(ref m) if m.contains("duplicate")),
        "{r:?}"
    );
    let s = c.stats();
    assert_eq!((s.delivered, s.already_exists_as_delivered), (1, 0));
    assert_eq!(s.dropped.rejected, 1);
}

#[tokio::test]
async fn already_exists_with_a_custom_server_that_loses_the_first_answer() {
    use axum::{http::StatusCode, routing::post, Router};
    use std::sync::{Arc, Mutex};
    // Records every request; answers 503 to the first, then like Zammad would to a retry.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let app = Router::new().route(
        "/api/v1/cti/{token}",
        post(move |body: String| {
            let seen = s2.clone();
            async move {
                let mut v = seen.lock().unwrap();
                v.push(body);
                if v.len() == 1 {
                    (StatusCode::SERVICE_UNAVAILABLE, "{}".to_string())
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"error":"This object already exists."}"#.to_string(),
                    )
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let c = CtiClient::start(cfg(format!("http://{addr}/api/v1/cti/T"))).unwrap();
    c.submit(new_call(Direction::In, "cs", "1", "2"));
    assert!(c.drain(Duration::from_secs(2)).await);
    let s = c.stats();
    assert_eq!(
        (s.delivered, s.already_exists_as_delivered, s.retried),
        (1, 1, 1)
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// A full queue drops whole calls, the oldest not yet sent first: the new call gets in,
/// the dropped calls' later events are dropped too (no fragment reaches Zammad), and the
/// hangup of every admitted call has room even when the queue is full.
#[tokio::test]
async fn full_queue_drops_the_oldest_whole_calls_and_counts() {
    let d = double().await;
    let c = CtiClient::start(ClientConfig {
        queue_capacity: 2,
        ..cfg(d.url())
    })
    .unwrap();
    // Nothing runs between these synchronous calls on the test's single-thread runtime.
    for i in 0..5 {
        c.submit(new_call(Direction::In, &format!("q{i}"), "1", "2"));
    }
    // q0..q2 were dropped whole to make room for q2..q4: their hangups are dropped too
    for i in 0..5 {
        c.submit(hangup(&format!("q{i}"), Cause::Cancel));
    }
    let s = c.stats();
    assert_eq!((s.calls_dropped, s.dropped.queue_full), (3, 6), "{s:?}");
    // the hangups of q3 and q4 had reserved room: 4 events queued with a capacity of 2
    assert_eq!(s.queued, 4);
    // q9 needs room below the capacity: q3 and q4 (2 events each) are dropped whole
    let r = c.new_call(new_call(Direction::In, "q9", "1", "2")).await;
    assert_eq!(r, NewCallOutcome::Answered(Decision::Continue));
    c.submit(hangup("q9", Cause::Cancel));
    assert!(c.drain(Duration::from_secs(2)).await);
    let log = d.log();
    for i in 0..5 {
        assert_eq!(accepted(&log, &format!("q{i}")), Vec::<String>::new());
    }
    assert_eq!(accepted(&log, "q9"), ["newCall", "hangup"]);
    assert_eq!(log.len(), 2);
    let s = c.stats();
    assert_eq!((s.delivered, s.calls_dropped, s.fail_open), (2, 5, 0));
    assert_eq!(s.dropped.total(), 10);
    assert_eq!(s.dropped.queue_full, 10);
}

/// When no queued call can be dropped whole (every one of them may have reached Zammad),
/// the new call is dropped whole instead: its newCall fails open with the reason and its
/// hangup never reaches Zammad.
#[tokio::test]
async fn full_queue_with_nothing_to_drop_drops_the_new_call_whole() {
    let d = double().await;
    // Zammad processes but answers too late: every attempt may have reached it
    d.set_mode(Mode::Delay(Duration::from_millis(300)));
    let c = CtiClient::start(ClientConfig {
        queue_capacity: 1,
        request_timeout: Duration::from_millis(50),
        ..cfg(d.url())
    })
    .unwrap();
    c.submit(new_call(Direction::Out, "a", "1", "2"));
    wait_for(|| c.stats().retried >= 1).await;
    let r = c.new_call(new_call(Direction::Out, "b", "1", "2")).await;
    assert!(
        matches!(r, NewCallOutcome::Dropped(ref m) if m.contains("queue full")),
        "{r:?}"
    );
    c.submit(hangup("b", Cause::Cancel));
    d.set_mode(Mode::Normal);
    c.submit(ev(EventKind::Hangup, Direction::Out, "a"));
    assert!(c.drain(Duration::from_secs(3)).await);
    let log = d.log();
    assert!(
        log.iter().all(|r| r.call_id.as_deref() == Some("a")),
        "{log:?}"
    );
    assert_eq!(accepted(&log, "a"), ["newCall", "hangup"]);
    let s = c.stats();
    assert_eq!((s.calls_dropped, s.dropped.queue_full), (1, 2), "{s:?}");
    assert_eq!(s.already_exists_as_delivered, 1);
}

#[tokio::test]
async fn wrong_token_is_dropped_with_reason_and_later_events_still_tried() {
    let d = double().await;
    let url = format!("http://{}/api/v1/cti/WRONG", d.local_addr());
    let c = CtiClient::start(cfg(url)).unwrap();
    let r = c.new_call(new_call(Direction::In, "w", "1", "2")).await;
    assert!(
        matches!(r, NewCallOutcome::Dropped(ref m) if m.contains("401") && m.contains("Invalid token")),
        "{r:?}"
    );
    c.submit(hangup("w", Cause::Cancel));
    assert!(c.drain(Duration::from_secs(2)).await);
    let s = c.stats();
    assert_eq!(s.dropped.rejected, 2);
    assert_eq!((s.delivered, s.retried), (0, 0));
    let log = d.log();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn gives_up_after_the_deadline_and_orphans_are_tried_once() {
    let d = double().await;
    d.set_mode(Mode::Fail(503));
    let c = CtiClient::start(ClientConfig {
        give_up_after: Duration::from_millis(150),
        newcall_timeout: Duration::from_secs(1),
        ..cfg(d.url())
    })
    .unwrap();
    let pending = c.new_call(new_call(Direction::In, "g", "1", "2"));
    // queued behind the newCall; older than give_up_after once it reaches the head
    c.submit(hangup("g", Cause::Cancel));
    let r = pending.await;
    assert!(
        matches!(r, NewCallOutcome::Dropped(ref m) if m.contains("gave_up")),
        "{r:?}"
    );
    assert!(c.drain(Duration::from_secs(2)).await);
    let s = c.stats();
    assert_eq!(s.dropped.gave_up, 2, "{s:?}");
    assert_eq!(s.delivered, 0);

    // A later event of a call whose newCall was dropped is attempted once, not retried.
    d.set_mode(Mode::Normal);
    let retried = c.stats().retried;
    c.submit(ev(EventKind::Answer, Direction::In, "g"));
    assert!(c.drain(Duration::from_secs(2)).await);
    let s = c.stats();
    assert_eq!(s.dropped.orphaned, 1);
    assert_eq!(s.retried, retried);
}

#[tokio::test]
async fn drain_reports_false_while_zammad_is_down() {
    let d = double().await;
    d.set_mode(Mode::Fail(502));
    let c = CtiClient::start(cfg(d.url())).unwrap();
    c.submit(new_call(Direction::In, "dd", "1", "2"));
    assert!(!c.drain(Duration::from_millis(80)).await);
    assert_eq!(c.stats().queued, 1);
    d.set_mode(Mode::Normal);
    assert!(c.drain(Duration::from_secs(2)).await);
    assert_eq!(c.stats().queued, 0);
}

#[tokio::test]
async fn many_calls_concurrently_keep_per_call_order() {
    let d = double().await;
    d.set_mode(Mode::Delay(Duration::from_millis(20)));
    let c = CtiClient::start(ClientConfig {
        max_in_flight: 4,
        ..cfg(d.url())
    })
    .unwrap();
    let ids: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    for id in &ids {
        c.submit(new_call(Direction::In, id, "1", "2"));
    }
    for id in &ids {
        c.submit(answer(id));
    }
    for id in &ids {
        c.submit(hangup(id, Cause::NormalClearing));
    }
    let t0 = std::time::Instant::now();
    assert!(c.drain(Duration::from_secs(5)).await);
    // 90 requests of >= 20 ms each: one at a time would take >= 1800 ms, 4 at a time ~450 ms
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let log = d.log();
    assert!(log.iter().all(|r| r.status == 200));
    for id in &ids {
        assert_eq!(accepted(&log, id), ["newCall", "answer", "hangup"]);
    }
    assert_eq!(c.stats().delivered, 90);
}

#[tokio::test]
async fn new_call_is_queued_before_first_poll() {
    let d = double().await;
    let c = CtiClient::start(cfg(d.url())).unwrap();
    let fut = c.new_call(new_call(Direction::In, "o", "1", "2"));
    c.submit(hangup("o", Cause::Cancel));
    assert_eq!(fut.await, NewCallOutcome::Answered(Decision::Continue));
    assert!(c.drain(Duration::from_secs(2)).await);
    assert_eq!(accepted(&d.log(), "o"), ["newCall", "hangup"]);
}

#[tokio::test]
async fn stdout_sink_answers_continue_at_once() {
    let c = CtiClient::start(ClientConfig {
        newcall_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        c.new_call(new_call(Direction::In, "s", "1", "2")),
    )
    .await
    .unwrap();
    assert_eq!(r, NewCallOutcome::Answered(Decision::Continue));
    c.submit(hangup("s", Cause::Cancel));
    assert!(c.drain(Duration::from_millis(10)).await);
    let s = c.stats();
    assert_eq!((s.delivered, s.queued, s.fail_open), (2, 0, 0));
}

/// An INVITE waits for its newCall: a backlog of other calls' answer and
/// hangup events must not hold it up. One request at a time, Zammad takes
/// 300 ms per request, five answers queued ahead: the newCall still gets
/// its answer within its 1 s deadline and reaches Zammad before the last
/// of the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_call_goes_before_other_calls_backlog() {
    let d = double().await;
    let c = CtiClient::start(ClientConfig {
        max_in_flight: 1,
        newcall_timeout: Duration::from_millis(1000),
        ..cfg(d.url())
    })
    .unwrap();
    for i in 0..5 {
        let id = format!("backlog-{i}");
        let o = c
            .new_call(new_call(Direction::In, &id, "4930111", "4930222"))
            .await;
        assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    }
    d.set_mode(Mode::Delay(Duration::from_millis(300)));
    for i in 0..5 {
        c.submit(answer(&format!("backlog-{i}")));
    }
    let o = c
        .new_call(new_call(Direction::In, "urgent", "4930333", "4930222"))
        .await;
    assert_eq!(
        o,
        NewCallOutcome::Answered(Decision::Continue),
        "newCall waited behind the backlog"
    );
    assert!(c.drain(Duration::from_secs(10)).await);
    let log = d.log();
    let seq_of = |id: &str, ev: &str| {
        log.iter()
            .find(|r| r.call_id.as_deref() == Some(id) && r.event.as_deref() == Some(ev))
            .map(|r| r.seq)
            .unwrap()
    };
    assert!(seq_of("urgent", "newCall") < seq_of("backlog-4", "answer"));
}
