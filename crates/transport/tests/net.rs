//! Socket edge tests on 127.0.0.1 with ephemeral ports.

use std::time::Duration;

use sipcti_transport::net::{Inbound, NetConfig, Transport, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
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
        (m.transport, m.data.as_slice(), m.source),
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
    let mut c = TcpStream::connect(addr)
        .await
        .expect("c (accepted by kernel)");
    let mut buf = [0u8; 8];
    let n = timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("timely")
        .unwrap_or(0);
    assert_eq!(n, 0, "third connection closed at once");
    let st = t.stats();
    assert_eq!((st.tcp_open, st.tcp_refused), (2, 1));
    // Outbound connections count too.
    let other = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let err = t
        .send(
            TransportKind::Tcp,
            other.local_addr().expect("la"),
            b"x".to_vec(),
        )
        .await;
    assert!(err.is_err());
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
