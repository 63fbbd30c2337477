//! Socket edge tests on 127.0.0.1 with ephemeral ports.

use std::time::Duration;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sipcti_transport::net::{Inbound, NetConfig, NetStats, Transport};
use sipcti_wire::TransportKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

fn cfg() -> NetConfig {
    NetConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..NetConfig::default()
    }
}

fn msg(n: u32) -> String {
    let body = format!("body {n}");
    format!("MESSAGE sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nCSeq: {n} MESSAGE\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

async fn recv(rx: &mut Receiver<Inbound>) -> Inbound {
    timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timely")
        .expect("open")
}

#[tokio::test]
async fn udp_and_tcp_on_same_port() {
    let (t, mut rx) = Transport::bind(cfg()).await.expect("bind");
    let addr = t.local_addr();
    assert_ne!(addr.port(), 0);

    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    udp.send_to(msg(1).as_bytes(), addr).await.expect("send");
    let m = recv(&mut rx).await;
    assert_eq!(
        (m.transport, &m.data[..], m.source),
        (
            TransportKind::Udp,
            msg(1).as_bytes(),
            udp.local_addr().expect("la")
        )
    );
    assert_eq!(m.local, addr);
    assert_eq!(TransportKind::Udp.to_string(), "UDP");

    // Reply over UDP through the transport.
    t.send(TransportKind::Udp, m.source, b"pong".to_vec())
        .await
        .expect("send");
    let mut buf = [0u8; 64];
    let (n, from) = timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .expect("timely")
        .expect("recv");
    assert_eq!((&buf[..n], from), (&b"pong"[..], addr));

    // TCP: two messages in one write, one message split over two writes = 3 Inbound.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("{}{}", msg(2), msg(3)).as_bytes())
        .await
        .expect("write");
    let m4 = msg(4);
    let (a, b) = m4.split_at(30);
    s.write_all(a.as_bytes()).await.expect("write");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b.as_bytes()).await.expect("write");
    for n in [2, 3, 4] {
        let m = recv(&mut rx).await;
        assert_eq!(m.transport, TransportKind::Tcp);
        assert_eq!(String::from_utf8_lossy(&m.data), msg(n));
        assert_eq!(m.source, s.local_addr().expect("la"));
    }

    // Keep-alive ping answered with CRLF (RFC 5626 3.5.1).
    s.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    timeout(Duration::from_secs(5), s.read_exact(&mut pong))
        .await
        .expect("timely")
        .expect("pong");
    assert_eq!(&pong, b"\r\n");

    // Sending to the accepted connection's address reuses that connection.
    let src = s.local_addr().expect("la");
    t.send(TransportKind::Tcp, src, b"SIP/2.0 200 OK\r\n".to_vec())
        .await
        .expect("send tcp");
    let mut got = [0u8; 16];
    timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("timely")
        .expect("read");
    assert_eq!(&got, b"SIP/2.0 200 OK\r\n");

    let st = t.stats();
    assert_eq!(
        (st.udp_in, st.tcp_in, st.pings, st.tcp_open, st.tcp_out),
        (1, 3, 1, 1, 1)
    );
}

#[tokio::test]
async fn frame_error_closes_connection() {
    let (t, _rx) = Transport::bind(cfg()).await.expect("bind");
    let mut s = TcpStream::connect(t.local_addr()).await.expect("connect");
    s.write_all(b"OPTIONS sip:x@h SIP/2.0\r\nVia: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 8];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("timely")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert_eq!(t.stats().frame_errors, 1);
}

#[tokio::test]
async fn connection_limit() {
    let (t, _rx) = Transport::bind(NetConfig {
        max_tcp_connections: 2,
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    let _a = TcpStream::connect(addr).await.expect("a");
    let _b = TcpStream::connect(addr).await.expect("b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_refused("127.0.0.1", addr, None).await;
    let st = t.stats();
    assert_eq!((st.tcp_open, st.tcp_refused_pool_full), (2, 1));
}

#[tokio::test]
async fn outbound_tcp_connection_is_kept_and_read() {
    let (t, mut rx) = Transport::bind(cfg()).await.expect("bind");
    let peer = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let dest = peer.local_addr().expect("la");
    t.send(TransportKind::Tcp, dest, msg(1).into_bytes())
        .await
        .expect("send 1");
    t.send(TransportKind::Tcp, dest, msg(2).into_bytes())
        .await
        .expect("send 2");
    let (mut s, _) = peer.accept().await.expect("accept");
    let want = format!("{}{}", msg(1), msg(2));
    let mut got = vec![0u8; want.len()];
    timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("timely")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&got), want);
    s.write_all(msg(3).as_bytes()).await.expect("reply");
    let m = recv(&mut rx).await;
    assert_eq!((m.transport, m.source), (TransportKind::Tcp, dest));
    assert_eq!(String::from_utf8_lossy(&m.data), msg(3));
    assert_eq!(t.stats().tcp_opened_total, 1);
}

#[tokio::test]
async fn idle_connection_closed() {
    let (t, _rx) = Transport::bind(NetConfig {
        tcp_idle_timeout: Duration::from_millis(200),
        ..cfg()
    })
    .await
    .expect("bind");
    let mut s = TcpStream::connect(t.local_addr()).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed by idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(t.stats().tcp_idle_closed, 1);
}

#[tokio::test]
async fn udp_queue_full_drops() {
    let (t, mut rx) = Transport::bind(NetConfig {
        inbound_queue: 2,
        ..cfg()
    })
    .await
    .expect("bind");
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    for n in 0..5 {
        udp.send_to(msg(n).as_bytes(), t.local_addr())
            .await
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = t.stats();
    assert_eq!((st.udp_in, st.dropped_queue_full), (2, 3));
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(0));
}

/// Received messages are views of the buffer the socket read into (issue 7): two
/// datagrams received one after the other lie back to back in one allocation, as do
/// two TCP messages from one write. A copy per message would put each in its own
/// allocation.
#[tokio::test]
async fn received_messages_are_not_copied() {
    let (t, mut rx) = Transport::bind(cfg()).await.expect("bind");
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    for n in [1, 2] {
        udp.send_to(msg(n).as_bytes(), t.local_addr())
            .await
            .expect("send");
    }
    let (a, b) = (recv(&mut rx).await, recv(&mut rx).await);
    assert_eq!(
        (&a.data[..], &b.data[..]),
        (msg(1).as_bytes(), msg(2).as_bytes())
    );
    assert_eq!(
        b.data.as_ptr(),
        a.data.as_ptr().wrapping_add(a.data.len()),
        "UDP datagrams were copied after the receive"
    );

    let mut s = TcpStream::connect(t.local_addr()).await.expect("connect");
    s.write_all(format!("{}{}", msg(3), msg(4)).as_bytes())
        .await
        .expect("write");
    let (c, d) = (recv(&mut rx).await, recv(&mut rx).await);
    assert_eq!(
        (&c.data[..], &d.data[..]),
        (msg(3).as_bytes(), msg(4).as_bytes())
    );
    assert_eq!(
        d.data.as_ptr(),
        c.data.as_ptr().wrapping_add(c.data.len()),
        "TCP messages were copied out of the framer"
    );
}

/// Datagrams over `max_message_bytes` are dropped and counted; the ones around them
/// arrive intact, also once the receive allocation is used up while earlier datagrams
/// are still held (a new one is taken) and after they are dropped (it is reused).
#[tokio::test]
async fn udp_too_large_dropped_and_receive_buffer_renewed() {
    let max = 400;
    let (t, mut rx) = Transport::bind(NetConfig {
        limits: sipcti_wire::Limits {
            max_message_bytes: max,
            ..Default::default()
        },
        ..cfg()
    })
    .await
    .expect("bind");
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let big = vec![b'x'; max + 1];
    let mut held = Vec::new();
    for round in 0..3 {
        for n in 0..12 {
            if n % 4 == 1 {
                udp.send_to(&big, t.local_addr()).await.expect("send");
            }
            udp.send_to(msg(n).as_bytes(), t.local_addr())
                .await
                .expect("send");
            let m = recv(&mut rx).await;
            assert_eq!(String::from_utf8_lossy(&m.data), msg(n), "round {round}");
            held.push(m);
        }
        if round == 1 {
            held.clear();
        }
    }
    // the counter is bumped just after the last datagram is queued
    let start = Instant::now();
    while t.stats().udp_in < 36 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = t.stats();
    assert_eq!((st.udp_in, st.dropped_too_large), (36, 9));
    for (i, m) in held.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(&m.data), msg(i as u32 % 12));
    }
}

/// A TCP connection to `dest` from `source_ip` (any 127.0.0.0/8 address on Linux).
async fn try_connect_from(source_ip: &str, dest: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{source_ip}:0").parse().expect("addr"))
        .expect("bind source");
    sock.connect(dest).await
}

/// Like [`try_connect_from`], panicking on error.
async fn connect_from(source_ip: &str, dest: SocketAddr) -> TcpStream {
    try_connect_from(source_ip, dest).await.expect("connect")
}

/// A connection from `source_ip` is refused: reset already while connecting, or
/// closed right after (nothing delivered, see [`assert_closed`]).
async fn assert_refused(source_ip: &str, dest: SocketAddr, send: Option<&[u8]>) {
    match try_connect_from(source_ip, dest).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(mut s) => {
            if let Some(data) = send {
                // Whatever it manages to write before the reset never reaches the queue.
                let _ = s.write_all(data).await;
            }
            assert_closed(&mut s).await;
        }
    }
}

/// The peer closed (EOF) or reset the connection within 2 s, delivering nothing.
async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let r = timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("closed within 2 s");
    match r {
        Ok(n) => assert_eq!(n, 0, "EOF, no data"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

/// The connection is still open after `wait` (a read neither ends nor fails).
async fn assert_open(s: &mut TcpStream, wait: Duration) {
    let mut buf = [0u8; 64];
    let r = timeout(wait, s.read(&mut buf)).await;
    assert!(r.is_err(), "connection still open, got {r:?}");
}

/// Polls the stats until `done` holds (at most 5 s); returns the last snapshot.
async fn stats_until(t: &Transport, done: impl Fn(&NetStats) -> bool) -> NetStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = t.stats();
        if done(&st) || Instant::now() > deadline {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection from an address outside `allowed_peers` is reset at accept: nothing it
/// sends is delivered, it takes no slot (a pool of 1 still admits an allowed peer).
#[tokio::test]
async fn stranger_closed_at_accept() {
    let (t, mut rx) = Transport::bind(NetConfig {
        allowed_peers: vec!["127.0.0.1/32".parse().expect("net")],
        max_tcp_connections: 1,
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    for _ in 0..5 {
        assert_refused("127.0.0.9", addr, Some(msg(9).as_bytes())).await;
    }
    let st = stats_until(&t, |s| s.tcp_refused_stranger == 5).await;
    assert_eq!(
        (
            st.tcp_refused_stranger,
            st.tcp_open,
            st.tcp_opened_total,
            st.tcp_in
        ),
        (5, 0, 0, 0)
    );
    // The one inbound slot is still free for an allowed peer.
    let mut ok = connect_from("127.0.0.1", addr).await;
    ok.write_all(msg(1).as_bytes()).await.expect("write");
    let m = recv(&mut rx).await;
    assert_eq!(String::from_utf8_lossy(&m.data), msg(1));
    assert!(rx.try_recv().is_err(), "nothing from the strangers");
    assert_eq!(t.stats().tcp_refused_pool_full, 0);
}

/// One peer IP holds at most `max_tcp_per_address` accepted connections; other IPs are
/// not affected and a closed connection frees its address's slot.
#[tokio::test]
async fn per_address_cap() {
    let (t, mut rx) = Transport::bind(NetConfig {
        max_tcp_per_address: 3,
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    let mut held = vec![];
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    stats_until(&t, |s| s.tcp_open == 3).await;
    assert_refused("127.0.0.2", addr, None).await;
    // Another address still gets in and is read.
    let mut other = connect_from("127.0.0.3", addr).await;
    other.write_all(msg(1).as_bytes()).await.expect("write");
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(1));
    // The held ones still work.
    held[0].write_all(msg(2).as_bytes()).await.expect("write");
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(2));
    let st = t.stats();
    assert_eq!((st.tcp_refused_per_address, st.tcp_open), (1, 4));
    // Closing one frees a slot for that address.
    drop(held.pop());
    stats_until(&t, |s| s.tcp_open == 3).await;
    let mut again = connect_from("127.0.0.2", addr).await;
    again.write_all(msg(3).as_bytes()).await.expect("write");
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(3));
    let st = t.stats();
    assert_eq!((st.tcp_refused_per_address, st.tcp_open), (1, 4));
}

/// Outbound connections have their own permits: a full inbound pool does not stop
/// them, and `max_tcp_outbound` bounds them separately.
#[tokio::test]
async fn outbound_permits_independent_of_inbound_pool() {
    let (t, _rx) = Transport::bind(NetConfig {
        max_tcp_connections: 2,
        max_tcp_outbound: 1,
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    let _a = TcpStream::connect(addr).await.expect("a");
    let _b = TcpStream::connect(addr).await.expect("b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_refused("127.0.0.1", addr, None).await;
    assert_eq!(t.stats().tcp_refused_pool_full, 1, "inbound pool is full");

    let peer = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let dest = peer.local_addr().expect("la");
    t.send(TransportKind::Tcp, dest, msg(1).into_bytes())
        .await
        .expect("outbound while the inbound pool is full");
    let (mut s, _) = peer.accept().await.expect("accept");
    let mut got = vec![0u8; msg(1).len()];
    timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("timely")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&got), msg(1));

    // A second destination would need a second outbound permit.
    let other = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let err = t
        .send(
            TransportKind::Tcp,
            other.local_addr().expect("la"),
            b"x".to_vec(),
        )
        .await
        .expect_err("outbound limit");
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    let st = t.stats();
    assert_eq!(
        (
            st.tcp_outbound_refused,
            st.tcp_open,
            st.tcp_refused_pool_full
        ),
        (1, 3, 1)
    );
}

/// A message dripped one byte every 150 ms is closed at the message deadline (600 ms
/// after its first byte) although every byte resets the idle timer; a normal message on
/// another connection is delivered, and that connection, idle between messages for
/// longer than the message deadline, stays open.
#[tokio::test]
async fn drip_closed_at_message_deadline() {
    let deadline = Duration::from_millis(600);
    let (t, mut rx) = Transport::bind(NetConfig {
        tcp_message_timeout: deadline,
        tcp_idle_timeout: Duration::from_secs(30),
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    let mut good = TcpStream::connect(addr).await.expect("good");
    good.write_all(msg(1).as_bytes()).await.expect("write");
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(1));

    let mut drip = TcpStream::connect(addr).await.expect("drip");
    let started = Instant::now();
    let text = msg(2);
    let mut sent = 0;
    let mut buf = [0u8; 16];
    let closed_at = loop {
        if sent < text.len() && drip.write_all(&text.as_bytes()[sent..=sent]).await.is_ok() {
            sent += 1;
        }
        match timeout(Duration::from_millis(150), drip.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(n)) => {
                assert_eq!(n, 0, "nothing written back");
                break started.elapsed();
            }
            Ok(Err(_)) => break started.elapsed(),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "drip never closed"
        );
    };
    assert!(
        closed_at >= deadline && closed_at < deadline + Duration::from_millis(400),
        "closed after {closed_at:?}, deadline {deadline:?}"
    );
    assert!(sent >= 4, "bytes kept arriving before the deadline: {sent}");
    // The good connection idled for longer than the message deadline and still works.
    good.write_all(msg(3).as_bytes()).await.expect("write");
    assert_eq!(String::from_utf8_lossy(&recv(&mut rx).await.data), msg(3));
    assert!(
        rx.try_recv().is_err(),
        "the dripped message was never delivered"
    );
    let st = t.stats();
    assert_eq!(
        (
            st.tcp_message_deadline_closed,
            st.tcp_idle_closed,
            st.tcp_in,
            st.tcp_open
        ),
        (1, 0, 2, 1)
    );
}

/// An accepted connection that never sends a complete message is closed at the
/// message deadline counted from the accept; CRLFCRLF keep-alives satisfy it and
/// lone CRLFs between messages do not start it.
#[tokio::test]
async fn silent_connection_closed_at_message_deadline_keepalive_is_not() {
    let (t, _rx) = Transport::bind(NetConfig {
        tcp_message_timeout: Duration::from_millis(300),
        tcp_idle_timeout: Duration::from_secs(30),
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    let mut silent = TcpStream::connect(addr).await.expect("silent");
    let mut pinger = TcpStream::connect(addr).await.expect("pinger");
    pinger.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    timeout(Duration::from_secs(2), pinger.read_exact(&mut pong))
        .await
        .expect("timely")
        .expect("pong");
    pinger.write_all(b"\r\n").await.expect("lone CRLF");
    assert_closed(&mut silent).await;
    assert_open(&mut pinger, Duration::from_millis(600)).await;
    let st = t.stats();
    assert_eq!((st.tcp_message_deadline_closed, st.tcp_open), (1, 1));
}

/// A `MakeWriter` collecting the formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// 2,000 refused connects are all counted but only 17 are logged (the first 10, then
/// at 16, 32, ..., 1024), each line with its count.
#[tokio::test]
async fn refusals_counted_exactly_and_logged_sampled() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    // The current-thread test runtime runs the accept task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (t, _rx) = Transport::bind(NetConfig {
        allowed_peers: vec!["127.0.0.1/32".parse().expect("net")],
        ..cfg()
    })
    .await
    .expect("bind");
    let addr = t.local_addr();
    for _ in 0..2000 {
        let _ = try_connect_from("127.0.0.9", addr).await;
    }
    let st = stats_until(&t, |s| s.tcp_refused_stranger == 2000).await;
    assert_eq!((st.tcp_refused_stranger, st.tcp_opened_total), (2000, 0));
    let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf8");
    let warn: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    let counts: Vec<u64> = warn
        .iter()
        .map(|l| {
            assert!(l.contains("neither inside nor trunk"), "{l}");
            let c = l.split("count=").nth(1).expect("count field");
            c.split_whitespace()
                .next()
                .expect("n")
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(
        counts,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 64, 128, 256, 512, 1024]
    );
}

/// Datagrams the kernel drops at a full receive buffer (nobody reads the socket) are
/// counted in `udp_socket_drops`, read from /proc for this very socket.
#[tokio::test]
async fn kernel_drops_at_a_full_receive_buffer_are_counted() {
    let c = NetConfig {
        udp_buffer_bytes: 4096,
        ..cfg()
    };
    // the receiver half is never read: the kernel buffer is the only queue
    let (t, _inbound, _udp) = Transport::bind_split(c).await.expect("bind");
    let before = t.stats().udp_socket_drops;
    assert_eq!(before, Some(0), "a fresh socket's drop counter");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    let m = msg(1);
    for _ in 0..2000 {
        let _ = s.send_to(m.as_bytes(), t.local_addr());
    }
    let after = t.stats().udp_socket_drops.expect("readable");
    assert!(after > 100, "drops counted: {after}");
}
