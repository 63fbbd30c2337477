//! Nothing the client logs (at every level up to TRACE, dependencies included) contains the
//! Zammad token, wherever in the URL the token is (last segment, middle segment, query,
//! userinfo, fragment), and no error the client returns does either.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sipcti_cti::{ClientConfig, CtiClient, Event};
use sipcti_event::{Direction, EventKind};
use sipcti_zammad_double::{spawn_double, DoubleConfig, Mode, Rules};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ev(kind: EventKind, id: &str) -> Event {
    Event {
        event: kind,
        direction: Direction::In,
        call_id: id.into(),
        from: Some("1".into()),
        to: Some("2".into()),
        user: None,
        queue: None,
        answering_number: None,
        cause: None,
    }
}

#[tokio::test]
async fn logs_never_contain_the_token() {
    let buf = Buf::default();
    let b2 = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || b2.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let d = spawn_double(
        l,
        DoubleConfig {
            token: "SECRETTOKEN".into(),
            rules: Rules::default(),
        },
    )
    .await
    .unwrap();
    d.set_mode(Mode::Fail(503));
    let cfg = ClientConfig {
        url: Some(d.url()),
        newcall_timeout: Duration::from_millis(20),
        request_timeout: Duration::from_millis(500),
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(10),
        give_up_after: Duration::from_millis(100),
        ..ClientConfig::default()
    };
    let c = CtiClient::start(cfg.clone()).unwrap();
    let _ = c.new_call(ev(EventKind::NewCall, "a")).await; // fails, gives up
    assert!(c.drain(Duration::from_secs(2)).await);
    d.set_mode(Mode::Reset);
    c.submit(ev(EventKind::NewCall, "b"));
    assert!(c.drain(Duration::from_secs(2)).await);
    d.set_mode(Mode::Normal);
    c.submit(ev(EventKind::NewCall, "c"));
    c.submit(ev(EventKind::NewCall, "c")); // duplicate -> rejected
    assert!(c.drain(Duration::from_secs(2)).await);
    // wrong host / refused connection
    let refused = CtiClient::start(ClientConfig {
        url: Some("http://127.0.0.1:1/api/v1/cti/SECRETTOKEN".into()),
        ..cfg.clone()
    })
    .unwrap();
    refused.submit(ev(EventKind::NewCall, "d"));
    assert!(refused.drain(Duration::from_secs(2)).await);
    // every URL shape, Zammad unreachable (refused port, and a host that does not resolve)
    for (i, url) in [
        "http://127.0.0.1:1/SECRETTOKEN/api/v1/cti/x",
        "http://127.0.0.1:1/api/v1/cti?token=SECRETTOKEN",
        "http://user:SECRETTOKEN@127.0.0.1:1/api/v1/cti/x",
        "http://127.0.0.1:1/api/v1/cti/x#SECRETTOKEN",
        "http://no-such-host.invalid/api/v1/cti/SECRETTOKEN",
    ]
    .into_iter()
    .enumerate()
    {
        let c = CtiClient::start(ClientConfig {
            url: Some(url.into()),
            ..cfg.clone()
        })
        .unwrap();
        tracing::info!("{c:?}");
        c.submit(ev(EventKind::NewCall, &format!("shape{i}")));
        let _ = c
            .new_call(ev(EventKind::NewCall, &format!("wait{i}")))
            .await;
        assert!(c.drain(Duration::from_secs(5)).await);
    }
    for bad in [
        "ftp://x/api/v1/cti/SECRETTOKEN",
        "http://",
        "unix:/SECRETTOKEN",
        "SECRETTOKEN",
        "http://exa mple/SECRETTOKEN",
    ] {
        let e = CtiClient::start(ClientConfig {
            url: Some(bad.into()),
            ..ClientConfig::default()
        })
        .unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SECRETTOKEN"), "{bad}: {shown}");
    }
    let _ = CtiClient::start(ClientConfig {
        url: Some("ftp://x/api/v1/cti/SECRETTOKEN".into()),
        ..ClientConfig::default()
    })
    .map_err(|e| tracing::warn!("{e}"));

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("SIPCTI_SHOW_LOG").is_some() {
        eprintln!("{text}");
    }
    assert!(text.contains("127.0.0.1:1/***"), "{text}");
    assert!(text.contains("CTI delivery failed"), "{text}");
    assert!(text.contains("CTI event dropped"), "{text}");
    assert!(!text.contains("SECRETTOKEN"), "{text}");
}
