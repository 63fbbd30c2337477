//! The CTI client's durable outbox, whole calls, backoff without slots and the hangup
//! that is never sent twice, against the Zammad double.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipcti_cti::{ClientConfig, CtiClient, Decision, Event, NewCallOutcome};
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_store::{OutboxChange, OutboxRow, Store};
use sipcti_zammad_double::{spawn_double, DoubleConfig, LoggedRequest, Mode, Rules, ZammadDouble};

async fn double() -> ZammadDouble {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_double(
        l,
        DoubleConfig {
            token: "TOKEN".into(),
            rules: Rules::default(),
        },
    )
    .await
    .unwrap()
}

fn cfg(url: String, outbox: &Path) -> ClientConfig {
    ClientConfig {
        url: Some(url),
        newcall_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(2),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        outbox: Some(outbox.to_path_buf()),
        outbox_sync: Duration::from_millis(5),
        ..ClientConfig::default()
    }
}

fn ev(kind: EventKind, dir: Direction, id: &str) -> Event {
    Event {
        event: kind,
        direction: dir,
        call_id: id.into(),
        from: Some("4930111".into()),
        to: Some("4930222".into()),
        user: None,
        queue: None,
        answering_number: None,
        cause: None,
    }
}

fn hangup(dir: Direction, id: &str, cause: Cause) -> Event {
    Event {
        cause: Some(cause),
        ..ev(EventKind::Hangup, dir, id)
    }
}

/// Every request Zammad processed (status 200) as `callId event`, in arrival order.
fn processed(log: &[LoggedRequest]) -> Vec<String> {
    log.iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            format!(
                "{} {}",
                r.call_id.as_deref().unwrap_or("?"),
                r.event.as_deref().unwrap_or("?")
            )
        })
        .collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not reached in 3 s");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn row(id: u64, e: &Event, done: bool, attempted: bool, dup_harmful: bool) -> OutboxRow {
    OutboxRow {
        id,
        call_id: e.call_id.clone(),
        kind: e.event.as_str().into(),
        event: e.to_json(),
        created_unix_ms: now_ms(),
        done,
        attempted,
        dup_harmful,
    }
}

/// Zammad down, three calls, the client stops (what is left stays in the outbox), a new
/// client on the same file delivers exactly those events, in order per call, once each,
/// and the outbox ends empty.
#[tokio::test]
async fn events_left_at_close_are_delivered_by_the_next_start_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outbox.db");
    let d = double().await;
    d.set_mode(Mode::Fail(503));
    let c = CtiClient::start(cfg(d.url(), &file)).unwrap();
    for id in ["c1", "c2", "c3"] {
        let r = c.new_call(ev(EventKind::NewCall, Direction::In, id)).await;
        assert_eq!(r, NewCallOutcome::TimedOut);
    }
    c.submit(ev(EventKind::Answer, Direction::In, "c1"));
    for id in ["c1", "c2", "c3"] {
        c.submit(hangup(Direction::In, id, Cause::NormalClearing));
    }
    let report = c.close(Duration::from_millis(100)).await;
    assert_eq!((report.events_left, report.calls_left), (7, 3));
    assert!(report.durable);
    drop(c);
    assert!(processed(&d.log()).is_empty());
    assert_eq!(Store::open(&file).unwrap().outbox_len().unwrap(), 7);

    d.set_mode(Mode::Normal);
    let c = CtiClient::start(cfg(d.url(), &file)).unwrap();
    assert_eq!(c.stats().recovered_events, 7);
    assert!(c.drain(Duration::from_secs(3)).await);
    let mut got = processed(&d.log());
    // per call in order; calls interleave
    for id in ["c1", "c2", "c3"] {
        let mine: Vec<String> = got
            .iter()
            .filter(|l| l.starts_with(&format!("{id} ")))
            .cloned()
            .collect();
        let expect: Vec<String> = if id == "c1" {
            vec!["c1 newCall".into(), "c1 answer".into(), "c1 hangup".into()]
        } else {
            vec![format!("{id} newCall"), format!("{id} hangup")]
        };
        assert_eq!(mine, expect);
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 7, "once each");
    for id in ["c1", "c2", "c3"] {
        assert_eq!(d.call(id).unwrap().hangups, 1);
    }
    let report = c.close(Duration::from_millis(100)).await;
    assert_eq!((report.events_left, report.durable), (0, true));
    drop(c);
    assert_eq!(Store::open(&file).unwrap().outbox_len().unwrap(), 0);
}

/// A newCall that reached Zammad before the stop (its row not yet marked done) is sent
/// again at start: "already exists" counts as delivered, and the call's hangup follows.
#[tokio::test]
async fn a_recovered_new_call_answered_already_exists_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outbox.db");
    let d = double().await;
    // Zammad has the newCall already
    let c0 = CtiClient::start(ClientConfig {
        url: Some(d.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    c0.submit(ev(EventKind::NewCall, Direction::Out, "r"));
    assert!(c0.drain(Duration::from_secs(2)).await);
    let nc = ev(EventKind::NewCall, Direction::Out, "r");
    let hu = hangup(Direction::Out, "r", Cause::NormalClearing);
    Store::open(&file)
        .unwrap()
        .outbox_apply(&[
            OutboxChange::Insert(row(1, &nc, false, false, false)),
            OutboxChange::Insert(row(2, &hu, false, false, false)),
        ])
        .unwrap();
    let c = CtiClient::start(cfg(d.url(), &file)).unwrap();
    assert!(c.drain(Duration::from_secs(3)).await);
    let s = c.stats();
    assert_eq!(
        (s.delivered, s.already_exists_as_delivered),
        (2, 1),
        "{s:?}"
    );
    assert_eq!(s.dropped.total(), 0);
    assert_eq!(processed(&d.log()), ["r newCall", "r hangup"]);
}

/// A hangup that was being sent when sipcti stopped, on a call where a second hangup
/// flips the missed flag (inbound, not answered), is not sent again; one where it does not
/// (answered) is.
#[tokio::test]
async fn an_attempted_hangup_is_resent_only_where_a_second_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outbox.db");
    let d = double().await;
    // Zammad processed both hangups before the stop; sipcti never saw the answers
    let c0 = CtiClient::start(ClientConfig {
        url: Some(d.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    let missed = ev(EventKind::NewCall, Direction::In, "missed");
    let talked = ev(EventKind::NewCall, Direction::In, "talked");
    let talked_answer = ev(EventKind::Answer, Direction::In, "talked");
    let missed_hangup = hangup(Direction::In, "missed", Cause::Cancel);
    let talked_hangup = hangup(Direction::In, "talked", Cause::NormalClearing);
    for e in [
        &missed,
        &talked,
        &talked_answer,
        &missed_hangup,
        &talked_hangup,
    ] {
        c0.submit(e.clone());
    }
    assert!(c0.drain(Duration::from_secs(2)).await);
    assert!(d.call("missed").unwrap().missed);
    Store::open(&file)
        .unwrap()
        .outbox_apply(&[
            OutboxChange::Insert(row(1, &missed, true, false, false)),
            OutboxChange::Insert(row(2, &talked, true, false, false)),
            OutboxChange::Insert(row(3, &talked_answer, true, false, false)),
            OutboxChange::Insert(row(4, &missed_hangup, false, true, true)),
            OutboxChange::Insert(row(5, &talked_hangup, false, true, false)),
        ])
        .unwrap();
    let before = d.log().len();
    let c = CtiClient::start(cfg(d.url(), &file)).unwrap();
    assert!(c.drain(Duration::from_secs(3)).await);
    let s = c.stats();
    assert_eq!((s.hangups_unconfirmed, s.delivered), (1, 1), "{s:?}");
    assert_eq!(processed(&d.log()[before..]), ["talked hangup"]);
    let m = d.call("missed").unwrap();
    assert!(m.missed && m.hangups == 1, "{m:?}");
    let t = d.call("talked").unwrap();
    assert!(!t.missed && t.hangups == 2, "{t:?}");
    c.close(Duration::from_millis(10)).await;
    drop(c);
    assert_eq!(Store::open(&file).unwrap().outbox_len().unwrap(), 0);
}

/// In one run: a hangup whose request reached Zammad but whose answer was lost (the
/// connection closed) is not sent again where that would flip the missed flag; an
/// answered call's hangup is (at-least-once: a second hangup changes nothing there).
#[tokio::test]
async fn a_hangup_whose_answer_was_lost_is_not_resent_where_it_flips_missed() {
    let dir = tempfile::tempdir().unwrap();
    let d = double().await;
    let c = CtiClient::start(cfg(d.url(), &dir.path().join("o.db"))).unwrap();
    for id in ["m", "t"] {
        let r = c.new_call(ev(EventKind::NewCall, Direction::In, id)).await;
        assert_eq!(r, NewCallOutcome::Answered(Decision::Continue));
    }
    c.submit(ev(EventKind::Answer, Direction::In, "t"));
    assert!(c.drain(Duration::from_secs(2)).await);
    d.set_mode(Mode::ProcessThenReset);
    c.submit(hangup(Direction::In, "m", Cause::Cancel));
    c.submit(hangup(Direction::In, "t", Cause::NormalClearing));
    wait_for("both hangups processed once", || d.log().len() >= 6).await;
    wait_for("m given up as unconfirmed", || {
        c.stats().hangups_unconfirmed == 1
    })
    .await;
    d.set_mode(Mode::Normal);
    assert!(c.drain(Duration::from_secs(3)).await);
    let m = d.call("m").unwrap();
    assert!(m.missed && m.hangups == 1, "{m:?}");
    let t = d.call("t").unwrap();
    assert!(!t.missed && t.hangups >= 2, "{t:?}");
    let s = c.stats();
    assert_eq!(s.hangups_unconfirmed, 1);
    assert_eq!(s.dropped.total(), 0);
}

/// The double models Zammad's flip: the same hangup sent twice turns a missed call into
/// a not-missed one (what the client above avoids).
#[tokio::test]
async fn the_double_flips_missed_on_a_second_hangup() {
    let d = double().await;
    let c = CtiClient::start(ClientConfig {
        url: Some(d.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    c.submit(ev(EventKind::NewCall, Direction::In, "f"));
    c.submit(hangup(Direction::In, "f", Cause::Cancel));
    assert!(c.drain(Duration::from_secs(2)).await);
    assert!(d.call("f").unwrap().missed);
    // a hangup of a call the client no longer knows: sent as given
    c.submit(hangup(Direction::In, "f", Cause::Cancel));
    assert!(c.drain(Duration::from_secs(2)).await);
    let f = d.call("f").unwrap();
    assert!(!f.missed && f.hangups == 2, "{f:?}");
}

/// A call open at the stop (newCall in the outbox, no hangup) that is never heard of
/// again gets its hangup after `open_call_timeout`; one hung up meanwhile does not get a
/// second one.
#[tokio::test]
async fn calls_open_at_the_stop_are_closed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outbox.db");
    let d = double().await;
    let c0 = CtiClient::start(ClientConfig {
        url: Some(d.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    let ringing = ev(EventKind::NewCall, Direction::In, "ringing");
    let talking = ev(EventKind::NewCall, Direction::Out, "talking");
    let talking_answer = ev(EventKind::Answer, Direction::Out, "talking");
    let byed = ev(EventKind::NewCall, Direction::In, "byed");
    for e in [&ringing, &talking, &talking_answer, &byed] {
        c0.submit(e.clone());
    }
    assert!(c0.drain(Duration::from_secs(2)).await);
    Store::open(&file)
        .unwrap()
        .outbox_apply(&[
            OutboxChange::Insert(row(1, &ringing, true, false, false)),
            OutboxChange::Insert(row(2, &talking, true, false, false)),
            OutboxChange::Insert(row(3, &talking_answer, true, false, false)),
            OutboxChange::Insert(row(4, &byed, true, false, false)),
        ])
        .unwrap();
    let before = d.log().len();
    let t0 = Instant::now();
    let c = CtiClient::start(ClientConfig {
        // long enough that the BYE's hangup below is delivered first even
        // on a loaded machine
        open_call_timeout: Duration::from_millis(1500),
        ..cfg(d.url(), &file)
    })
    .unwrap();
    assert_eq!(c.stats().recovered_open_calls, 3);
    assert_eq!(c.stats().open_calls, 3);
    // the BYE of one of them is seen after the restart
    c.submit(hangup(Direction::In, "byed", Cause::NormalClearing));
    assert!(c.drain(Duration::from_secs(2)).await);
    assert_eq!(processed(&d.log()[before..]), ["byed hangup"]);
    wait_for("the open calls closed", || d.log().len() >= before + 3).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1450),
        "{:?}",
        t0.elapsed()
    );
    assert!(c.drain(Duration::from_secs(2)).await);
    let mut got = processed(&d.log()[before..]);
    got.sort();
    assert_eq!(got, ["byed hangup", "ringing hangup", "talking hangup"]);
    let r = d.call("ringing").unwrap();
    assert_eq!((r.cause.as_deref(), r.missed), (Some("cancel"), true));
    let t = d.call("talking").unwrap();
    assert_eq!(t.cause.as_deref(), Some("normalClearing"));
    assert_eq!(d.call("byed").unwrap().hangups, 1);
    let s = c.stats();
    assert_eq!((s.open_calls_closed, s.open_calls), (2, 0));
    c.close(Duration::from_millis(10)).await;
    drop(c);
    assert_eq!(Store::open(&file).unwrap().outbox_len().unwrap(), 0);
}

/// Retries sleeping through their backoff hold no delivery slot: with one slot, Zammad
/// back, and ten events waiting for a 10 s backoff, a new newCall is answered at once,
/// and that delivery wakes the waiting retries.
#[tokio::test]
async fn backoff_holds_no_slot_and_recovery_wakes_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let d = double().await;
    d.set_mode(Mode::Fail(503));
    let c = CtiClient::start(ClientConfig {
        max_in_flight: 1,
        retry_initial: Duration::from_secs(10),
        retry_max: Duration::from_secs(10),
        ..cfg(d.url(), &dir.path().join("o.db"))
    })
    .unwrap();
    for i in 0..10 {
        c.submit(ev(EventKind::NewCall, Direction::In, &format!("b{i}")));
    }
    wait_for("ten failed attempts", || d.log().len() >= 10).await;
    d.set_mode(Mode::Normal);
    let t0 = Instant::now();
    let r = c
        .new_call(ev(EventKind::NewCall, Direction::In, "fresh"))
        .await;
    assert_eq!(r, NewCallOutcome::Answered(Decision::Continue));
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
    // the retries do not wait out their 10 s
    assert!(c.drain(Duration::from_secs(2)).await);
    assert_eq!(d.calls().len(), 11);
    assert_eq!(c.stats().delivered, 11);
}
