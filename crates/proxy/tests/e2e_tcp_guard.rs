//! End-to-end, issue 6 part 2 ("Outsiders can take every TCP slot"): the
//! real `sipcti` binary with SIPp over TCP. A stranger holding many idle
//! TCP connections must not starve the phones or the TCP trunk, and a
//! message dripped in one byte every 4 s is closed at the message deadline.
//! Needs SIPp (`apt-get install sip-tester`) and root (loopback /24 labs).

mod lab;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lab::{require_sipp, summary, Host, Lab, Opts, Tp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const T: Duration = Duration::from_secs(10);

/// The CTI events Zammad accepted for `sip_call_id`, as [`summary`] lines.
fn events_of(lab: &Lab, n_total: usize, sip_call_id: &str) -> Vec<String> {
    lab.accepted_events(n_total, T)
        .iter()
        .filter(|e| e.call_id.as_deref() == Some(sip_call_id))
        .map(summary)
        .collect()
}

fn proxy_addr(lab: &Lab) -> SocketAddr {
    lab::local(&format!("{}:5060", lab.proxy_ip()))
}

/// A TCP connection from `source_ip` (ephemeral port) to `dest`; `Err` when it
/// was refused or reset while connecting.
async fn connect_from(source_ip: &str, dest: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(lab::local(&format!("{source_ip}:0")))?;
    sock.connect(dest).await
}

/// Whether the far end has closed or reset `s` (a read ends within `wait`).
async fn closed_by_peer(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Counter `name` from the proxy's "socket counters at shutdown" line.
fn shutdown_counter(log: &str, name: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("socket counters at shutdown"))?;
    let rest = line.split(&format!("{name}: ")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

// A stranger (lab .4) opens 150 TCP connections and keeps them idle. The
// inbound pool is 50, below the default per-address cap of 64: without the
// accept-time check the stranger alone would fill it and the phone's and the
// trunk's connections would be refused (and, with one shared pool, so would
// the proxy's own connection to the TCP trunk). With it every stranger
// connection is reset at accept, the phone calls out through the TCP trunk,
// the trunk calls in, both with their exact events, and the 150 refusals
// write 14 WARN lines (1..10, 16, 32, 64, 128).
#[test]
fn e2e_tcp_guard_stranger_150_idle_connections_calls_still_work() {
    require_sipp();
    let mut lab = Lab::start(
        "tcp-guard-stranger",
        Opts {
            tp: Tp::Tcp,
            extra_toml: "[limits]\nmax_tcp_connections = 50\n".into(),
            ..Opts::default()
        },
    );
    let proxy = proxy_addr(&lab);
    let stranger = lab.host_ip(Host::Stranger);
    // Hold whatever the proxy lets us keep.
    let mut held: Vec<TcpStream> = lab.rt.block_on(async {
        let mut v = vec![];
        for _ in 0..150 {
            if let Ok(s) = connect_from(&stranger, proxy).await {
                v.push(s);
            }
        }
        v
    });

    // Outbound: phone -> proxy -> TCP trunk.
    let out_cid = lab::answered_call_out(&lab);

    // Inbound: trunk -> proxy -> phone.
    let in_cid = lab::answered_call_in(&lab);

    let out_events = events_of(&lab, 6, &out_cid);
    check!(
        lab,
        out_events
            == [
                "newCall out from=201 to=49301234567 user=Alice",
                "answer out from=201 to=49301234567",
                "hangup out from=201 to=49301234567 cause=normalClearing",
            ],
        "outbound CTI events {out_events:#?}"
    );
    let in_events = events_of(&lab, 6, &in_cid);
    check!(
        lab,
        in_events
            == [
                "newCall in from=491701234567 to=4930111222",
                "answer in from=491701234567 to=4930111222 answeringNumber=201",
                "hangup in from=491701234567 to=4930111222 answeringNumber=201 cause=normalClearing",
            ],
        "inbound CTI events {in_events:#?}"
    );

    // Every stranger connection the kernel completed was closed by the proxy.
    let still_open = lab.rt.block_on(async {
        let mut n = 0;
        for s in &mut held {
            if !closed_by_peer(s, Duration::from_millis(50)).await {
                n += 1;
            }
        }
        n
    });
    check!(
        lab,
        still_open == 0,
        "{still_open} of {} stranger connections still open",
        held.len()
    );
    drop(held);

    let log = lab.stop();
    let warns = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("neither inside nor trunk"))
        .count();
    check!(
        lab,
        warns == 14,
        "150 refusals logged sampled in 14 WARN lines, got {warns}"
    );
    check!(
        lab,
        shutdown_counter(&log, "tcp_refused_stranger") == Some(150)
            && shutdown_counter(&log, "tcp_refused_pool_full") == Some(0),
        "counters at shutdown"
    );
}

// An inside address (the phone's, lab .3) drips an INVITE one byte every 4 s.
// Each byte resets the idle timer (300 s), but the message deadline (6 s here)
// runs from the first byte and is not extended: the proxy closes the
// connection 6 s after it, after the second byte arrived. Meanwhile a
// normal call over TCP goes through.
#[test]
fn e2e_tcp_guard_drip_closed_at_message_deadline() {
    require_sipp();
    let deadline = Duration::from_millis(6000);
    let lab = Lab::start(
        "tcp-guard-drip",
        Opts {
            tp: Tp::Tcp,
            extra_toml: format!(
                "[limits]\ntcp_message_timeout_ms = {}\n",
                deadline.as_millis()
            ),
            ..Opts::default()
        },
    );
    let proxy = proxy_addr(&lab);
    let phone = lab.host_ip(Host::Phone);
    let drip = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut s = connect_from(&phone, proxy).await.expect("inside connects");
            let text = b"INVITE sip:0301234567@sipcti SIP/2.0\r\n";
            let started = Instant::now();
            let mut sent = 0usize;
            let mut buf = [0u8; 256];
            while started.elapsed() < Duration::from_secs(20) {
                if let Some(b) = text.get(sent..=sent) {
                    if s.write_all(b).await.is_ok() {
                        sent += 1;
                    }
                }
                match tokio::time::timeout(Duration::from_secs(4), s.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => return (Some(started.elapsed()), sent),
                    Ok(Ok(_)) => return (None, sent),
                }
            }
            (None, sent)
        })
    });

    let cid = lab::answered_call_out(&lab);
    let events = events_of(&lab, 3, &cid);
    check!(
        lab,
        events
            == [
                "newCall out from=201 to=49301234567 user=Alice",
                "answer out from=201 to=49301234567",
                "hangup out from=201 to=49301234567 cause=normalClearing",
            ],
        "CTI events {events:#?}"
    );

    let (closed_after, sent) = drip.join().expect("drip thread");
    check!(
        lab,
        closed_after.is_some_and(|t| t >= deadline - Duration::from_millis(200)
            && t < deadline + Duration::from_millis(1500)),
        "drip closed after {closed_after:?} ({sent} bytes), message deadline {deadline:?}"
    );
    check!(
        lab,
        sent == 2,
        "a second byte arrived inside the deadline and did not extend it: {sent} bytes"
    );
    check!(
        lab,
        lab.proxy_log().contains("tcp message not complete in time"),
        "the closure is logged"
    );
}

// A SIPp stranger (lab .4) calling over TCP: its connection is reset at
// accept, so it never gets an answer (over UDP it still gets 403, see
// e2e_10 in e2e.rs), and Zammad hears nothing.
#[test]
fn e2e_tcp_guard_stranger_sipp_refused_at_accept() {
    require_sipp();
    let mut lab = Lab::start(
        "tcp-guard-stranger-sipp",
        Opts {
            tp: Tp::Tcp,
            ..Opts::default()
        },
    );
    let uac = lab
        .sipp(Host::Stranger, "uac_expect_403", Some("0049301234567"), &[])
        .wait();
    check!(lab, !uac.ok, "SIPp stranger must fail: {:?}", uac.shorts());
    check!(
        lab,
        uac.messages.iter().all(|m| m.sent),
        "the stranger received nothing: {:?}",
        uac.shorts()
    );
    std::thread::sleep(Duration::from_millis(500));
    check!(
        lab,
        lab.double.log().is_empty(),
        "no CTI request for a stranger"
    );
    let log = lab.stop();
    check!(
        lab,
        shutdown_counter(&log, "tcp_refused_stranger").is_some_and(|n| n >= 1)
            && shutdown_counter(&log, "tcp_in") == Some(0),
        "refused at accept, nothing framed"
    );
}
