//! `newcall_slots`: a newCall an INVITE waits for does not wait for a delivery slot held by
//! another call's `answer`/`hangup` (issue 11).

use std::time::{Duration, Instant};

use sipcti_cti::{ClientConfig, CtiClient, Decision, NewCallOutcome};
use sipcti_event::EventKind;
use sipcti_zammad_double::{spawn_double, DoubleConfig, Mode, ZammadDouble};

mod support;
use support::{ev, wait_for};

async fn double() -> ZammadDouble {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_double(
        l,
        DoubleConfig {
            token: "TOKEN".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// One general slot, held by an `answer` Zammad takes 300 ms for, two more queued: the
/// newCall's time to its answer. `newcall_slots` 1: its own 300 ms only; 0: it waits for
/// the slot first.
async fn newcall_latency_behind_a_backlog(newcall_slots: usize) -> Duration {
    let d = double().await;
    let c = CtiClient::start(ClientConfig {
        url: Some(d.url()),
        max_in_flight: 1,
        newcall_slots,
        newcall_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    })
    .unwrap();
    for i in 0..3 {
        let o = c.new_call(ev(EventKind::NewCall, &format!("b{i}"))).await;
        assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    }
    d.set_mode(Mode::Delay(Duration::from_millis(300)));
    for i in 0..3 {
        c.submit(ev(EventKind::Answer, &format!("b{i}")));
    }
    // the first answer is being processed: the only general slot is taken
    wait_for("the first answer", || d.log().len() >= 4).await;
    let t0 = Instant::now();
    let o = c.new_call(ev(EventKind::NewCall, "urgent")).await;
    let took = t0.elapsed();
    assert_eq!(o, NewCallOutcome::Answered(Decision::Continue));
    assert!(c.drain(Duration::from_secs(5)).await);
    assert_eq!(c.stats().delivered, 7);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_call_takes_a_reserved_slot() {
    let took = newcall_latency_behind_a_backlog(1).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reserved_slots_new_call_waits_for_the_slot() {
    let took = newcall_latency_behind_a_backlog(0).await;
    assert!(took >= Duration::from_millis(450), "{took:?}");
}
