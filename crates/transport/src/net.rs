//! tokio UDP/TCP socket edge (RFC 3261 18): one UDP socket and one TCP listener on the
//! same address and port; inbound messages go to one bounded channel.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::wire::{Frame, Limits, StreamFramer};

/// Transport protocol of a message or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP datagrams.
    Udp,
    /// TCP stream framed by Content-Length.
    Tcp,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        })
    }
}

/// One message received from the network (a UDP datagram or a framed TCP message).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message bytes (at most `max_message_bytes`).
    pub data: Vec<u8>,
    /// Remote address it came from.
    pub source: SocketAddr,
    /// Local address it arrived on.
    pub local: SocketAddr,
    /// UDP or TCP.
    pub transport: TransportKind,
}

/// Configuration of [`Transport::bind`].
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Address for both the UDP socket and the TCP listener; port 0 picks one port for both.
    pub listen: SocketAddr,
    /// Message limits (a UDP datagram larger than `max_message_bytes` is dropped).
    pub limits: Limits,
    /// Most TCP connections open at once (accepted + opened). Default 1024.
    pub max_tcp_connections: usize,
    /// A TCP connection with no traffic for this long is closed. Default 300 s.
    pub tcp_idle_timeout: Duration,
    /// Timeout for opening an outbound TCP connection. Default 3 s.
    pub tcp_connect_timeout: Duration,
    /// Capacity of the inbound channel, messages. Default 8192.
    pub inbound_queue: usize,
    /// Receive and send buffer asked for the UDP socket, bytes (the kernel
    /// caps it at net.core.rmem_max / wmem_max). A burst larger than the
    /// buffer while the core is busy is lost. Default 4 MiB.
    pub udp_buffer_bytes: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            limits: Limits::default(),
            max_tcp_connections: 1024,
            tcp_idle_timeout: Duration::from_secs(300),
            tcp_connect_timeout: Duration::from_secs(3),
            inbound_queue: 8192,
            udp_buffer_bytes: 4 << 20,
        }
    }
}

/// Counters of the socket edge (monotonic except `tcp_open`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// UDP datagrams received and queued.
    pub udp_in: u64,
    /// TCP messages framed and queued.
    pub tcp_in: u64,
    /// UDP datagrams dropped because the inbound queue was full.
    pub dropped_queue_full: u64,
    /// UDP datagrams dropped because larger than `max_message_bytes`.
    pub dropped_too_large: u64,
    /// TCP connections closed for a framing error.
    pub frame_errors: u64,
    /// TCP connections open now.
    pub tcp_open: u64,
    /// TCP connections accepted or opened in total.
    pub tcp_opened_total: u64,
    /// TCP connections refused (closed at once) over `max_tcp_connections`.
    pub tcp_refused: u64,
    /// TCP connections closed for idleness.
    pub tcp_idle_closed: u64,
    /// Keep-alive pings answered.
    pub pings: u64,
    /// Messages sent over UDP.
    pub udp_out: u64,
    /// Messages sent over TCP.
    pub tcp_out: u64,
}

#[derive(Debug, Default)]
struct Counters {
    udp_in: AtomicU64,
    tcp_in: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_too_large: AtomicU64,
    frame_errors: AtomicU64,
    tcp_open: AtomicU64,
    tcp_opened_total: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_idle_closed: AtomicU64,
    pings: AtomicU64,
    udp_out: AtomicU64,
    tcp_out: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Messages queued for writing on one TCP connection.
const TCP_WRITE_QUEUE: usize = 256;
/// Longest time one write to a TCP peer may take before the connection is closed.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a TCP socket at once.
const TCP_READ_CHUNK: usize = 16 * 1024;

/// A live TCP connection as seen by senders.
#[derive(Debug, Clone)]
struct ConnHandle {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

struct Inner {
    local: SocketAddr,
    cfg: NetConfig,
    udp: UdpSocket,
    inbound: mpsc::Sender<Inbound>,
    conns: Mutex<HashMap<SocketAddr, ConnHandle>>,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    stats: Counters,
}

/// Handle to the socket edge; cheap to clone. Background tasks stop when the inbound
/// receiver is dropped.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

/// A UDP socket bound to `addr` with `buffer` bytes of receive and send
/// buffer asked for (best effort: the kernel caps it).
fn udp_socket(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if buffer > 0 {
        let _ = sock.set_recv_buffer_size(buffer);
        let _ = sock.set_send_buffer_size(buffer);
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

async fn bind_pair(
    listen: SocketAddr,
    udp_buffer: usize,
) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    // Port 0: UDP picks a port, TCP must get the same one; retry if it is taken for TCP.
    let tries = if listen.port() == 0 { 16 } else { 1 };
    for _ in 0..tries {
        let udp = udp_socket(listen, udp_buffer)?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

impl Transport {
    /// Binds UDP and TCP on `cfg.listen` (port 0: UDP takes an ephemeral port and TCP binds
    /// the same one) and starts the receive tasks. Returns the handle and the receiver of
    /// inbound messages (capacity `cfg.inbound_queue`, at least 1).
    ///
    /// UDP datagrams over `max_message_bytes` are dropped (counted); when the queue is full
    /// UDP datagrams are dropped (counted) while TCP readers wait (backpressure). TCP
    /// keep-alive pings are answered with CRLF; a framing error closes the connection
    /// (counted); connections over `max_tcp_connections` are closed at once (counted);
    /// connections idle for `tcp_idle_timeout` are closed. Errors: any bind error.
    pub async fn bind(cfg: NetConfig) -> std::io::Result<(Transport, mpsc::Receiver<Inbound>)> {
        let (udp, tcp) = bind_pair(cfg.listen, cfg.udp_buffer_bytes).await?;
        let local = udp.local_addr()?;
        let (tx, rx) = mpsc::channel(cfg.inbound_queue.max(1));
        let inner = Arc::new(Inner {
            local,
            permits: Arc::new(Semaphore::new(cfg.max_tcp_connections)),
            cfg,
            udp,
            inbound: tx,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: Counters::default(),
        });
        tokio::spawn(udp_loop(inner.clone()));
        tokio::spawn(accept_loop(inner.clone(), tcp));
        Ok((Transport { inner }, rx))
    }

    /// The bound local address (same port for UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Sends `data` (one whole message) to `dest`.
    ///
    /// UDP: one datagram from the listening socket. TCP: over a live connection to `dest`
    /// (accepted or opened earlier), else a new one (within `tcp_connect_timeout` and the
    /// connection limit) that is kept and read like an accepted one. Writes per connection
    /// are ordered; waits while that connection's write queue (256 messages) is full.
    ///
    /// Errors: socket errors (e.g. `ConnectionRefused` from connect); `TimedOut` when
    /// connecting takes longer than `tcp_connect_timeout`; `Other` "TCP connection limit
    /// reached" (counted in `tcp_refused`); `BrokenPipe` if the connection closed before
    /// the message was queued (after one reconnect attempt).
    pub async fn send(
        &self,
        transport: TransportKind,
        dest: SocketAddr,
        data: Vec<u8>,
    ) -> std::io::Result<()> {
        match transport {
            TransportKind::Udp => {
                self.inner.udp.send_to(&data, dest).await?;
                inc(&self.inner.stats.udp_out);
                Ok(())
            }
            TransportKind::Tcp => {
                let existing = self.inner.conn(dest);
                let handle = match existing {
                    Some(h) => h,
                    None => connect(&self.inner, dest).await?,
                };
                match handle.tx.send(data).await {
                    Ok(()) => {
                        inc(&self.inner.stats.tcp_out);
                        Ok(())
                    }
                    Err(mpsc::error::SendError(data)) => {
                        // The connection died meanwhile: forget it and try a fresh one once.
                        self.inner.forget(dest, handle.id);
                        let handle = connect(&self.inner, dest).await?;
                        handle.tx.send(data).await.map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::BrokenPipe,
                                "TCP connection closed",
                            )
                        })?;
                        inc(&self.inner.stats.tcp_out);
                        Ok(())
                    }
                }
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NetStats {
        let c = &self.inner.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetStats {
            udp_in: g(&c.udp_in),
            tcp_in: g(&c.tcp_in),
            dropped_queue_full: g(&c.dropped_queue_full),
            dropped_too_large: g(&c.dropped_too_large),
            frame_errors: g(&c.frame_errors),
            tcp_open: g(&c.tcp_open),
            tcp_opened_total: g(&c.tcp_opened_total),
            tcp_refused: g(&c.tcp_refused),
            tcp_idle_closed: g(&c.tcp_idle_closed),
            pings: g(&c.pings),
            udp_out: g(&c.udp_out),
            tcp_out: g(&c.tcp_out),
        }
    }
}

impl Inner {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, ConnHandle>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self, dest: SocketAddr) -> Option<ConnHandle> {
        self.conns()
            .get(&dest)
            .filter(|h| !h.tx.is_closed())
            .cloned()
    }

    fn forget(&self, peer: SocketAddr, id: u64) {
        let mut map = self.conns();
        if map.get(&peer).is_some_and(|h| h.id == id) {
            map.remove(&peer);
        }
    }

    /// Registers a connection and starts its task; returns the handle to use for `peer`
    /// (an already registered live one wins, the new one then closes when unused).
    fn start_conn(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> ConnHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
        let handle = ConnHandle { id, tx };
        let chosen = {
            let mut map = self.conns();
            match map.get(&peer) {
                Some(h) if !h.tx.is_closed() => h.clone(),
                _ => {
                    map.insert(peer, handle.clone());
                    handle.clone()
                }
            }
        };
        inc(&self.stats.tcp_opened_total);
        inc(&self.stats.tcp_open);
        let inner = self.clone();
        drop(handle);
        tokio::spawn(async move {
            conn_loop(&inner, stream, peer, rx).await;
            inner.forget(peer, id);
            inner.stats.tcp_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
        chosen
    }
}

async fn connect(inner: &Arc<Inner>, dest: SocketAddr) -> std::io::Result<ConnHandle> {
    let permit = inner.permits.clone().try_acquire_owned().map_err(|_| {
        inc(&inner.stats.tcp_refused);
        std::io::Error::other("TCP connection limit reached")
    })?;
    // Outbound connections leave from the listen address (not whatever the
    // routing table picks), so the far end sees the address it expects.
    let connecting = async {
        let sock = if dest.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let ip = inner.local.ip();
        if !ip.is_unspecified() && ip.is_ipv4() == dest.is_ipv4() {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        sock.connect(dest).await
    };
    let stream = tokio::time::timeout(inner.cfg.tcp_connect_timeout, connecting)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP connect timed out")
        })??;
    let _ = stream.set_nodelay(true);
    Ok(inner.start_conn(stream, dest, permit))
}

async fn udp_loop(inner: Arc<Inner>) {
    let max = inner.cfg.limits.max_message_bytes;
    // One byte more than allowed so oversized datagrams are detected.
    let mut buf = vec![0u8; max.saturating_add(1).min(65_536)];
    loop {
        let res = tokio::select! {
            r = inner.udp.recv_from(&mut buf) => r,
            _ = inner.inbound.closed() => return,
        };
        let (n, source) = match res {
            Ok(x) => x,
            Err(e) => {
                // e.g. ICMP port unreachable reported on some platforms: keep going.
                tracing::debug!(error = %e, "udp recv error");
                continue;
            }
        };
        if n > max {
            inc(&inner.stats.dropped_too_large);
            tracing::debug!(%source, bytes = n, "udp datagram too large, dropped");
            continue;
        }
        let msg = Inbound {
            data: buf.get(..n).unwrap_or_default().to_vec(),
            source,
            local: inner.local,
            transport: TransportKind::Udp,
        };
        match inner.inbound.try_send(msg) {
            Ok(()) => inc(&inner.stats.udp_in),
            Err(mpsc::error::TrySendError::Full(_)) => inc(&inner.stats.dropped_queue_full),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let res = tokio::select! {
            r = listener.accept() => r,
            _ = inner.inbound.closed() => return,
        };
        let (stream, peer) = match res {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "tcp accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match inner.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                inner.start_conn(stream, peer, permit);
            }
            Err(_) => {
                inc(&inner.stats.tcp_refused);
                tracing::warn!(%peer, "tcp connection limit reached, refused");
                drop(stream);
            }
        }
    }
}

/// Reads, frames and queues inbound messages; writes queued outbound messages; answers
/// pings; closes on error, EOF, idleness or when the inbound receiver is gone.
async fn conn_loop(
    inner: &Arc<Inner>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let local = stream.local_addr().unwrap_or(inner.local);
    let mut framer = StreamFramer::new(inner.cfg.limits);
    let mut buf = vec![0u8; TCP_READ_CHUNK];
    let idle = inner.cfg.tcp_idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(data) = out else { return };
                match tokio::time::timeout(TCP_WRITE_TIMEOUT, stream.write_all(&data)).await {
                    Ok(Ok(())) => deadline = Instant::now() + idle,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tcp write error");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "tcp write timed out");
                        return;
                    }
                }
            }
            r = stream.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "tcp read error");
                        return;
                    }
                };
                deadline = Instant::now() + idle;
                let chunk = buf.get(..n).unwrap_or_default();
                if let Err(e) = framer.push(chunk) {
                    inc(&inner.stats.frame_errors);
                    tracing::warn!(%peer, error = %e, "tcp framing error, closing");
                    return;
                }
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => {
                            inc(&inner.stats.pings);
                            if tokio::time::timeout(TCP_WRITE_TIMEOUT, stream.write_all(b"\r\n")).await.map_or(true, |r| r.is_err()) {
                                return;
                            }
                        }
                        Ok(Some(Frame::Message(data))) => {
                            let msg = Inbound { data, source: peer, local, transport: TransportKind::Tcp };
                            // Backpressure: wait for room in the queue.
                            if inner.inbound.send(msg).await.is_err() {
                                return;
                            }
                            inc(&inner.stats.tcp_in);
                        }
                        Err(e) => {
                            inc(&inner.stats.frame_errors);
                            tracing::warn!(%peer, error = %e, "tcp framing error, closing");
                            return;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                inc(&inner.stats.tcp_idle_closed);
                tracing::debug!(%peer, "tcp connection idle, closing");
                return;
            }
            _ = inner.inbound.closed() => return,
        }
    }
}
