//! tokio UDP/TCP socket edge (RFC 3261 18): one UDP socket and one TCP listener on the
//! same address and port; inbound messages go to one bounded channel.
//!
//! TCP guard (issue 6): an accepted connection from an address outside
//! [`NetConfig::allowed_peers`] is reset at accept, before any reader runs and
//! without taking a slot; each peer IP may hold at most
//! [`NetConfig::max_tcp_per_address`] accepted connections; accepted connections
//! share [`NetConfig::max_tcp_connections`] while connections the proxy opens have
//! their own [`NetConfig::max_tcp_outbound`] permits; a message must be complete
//! within [`NetConfig::tcp_message_timeout`] of its first byte however slowly it
//! trickles in. Refusals and closures are counted in [`NetStats`] and logged at
//! WARN sampled (the first 10, then at every power of two, with the count).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use bytes::{BufMut as _, Bytes, BytesMut};
use ipnet::IpNet;

use sipcti_wire::{Frame, Limits, StreamFramer, TransportKind};

/// One message received from the network (a UDP datagram or a framed TCP message).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message bytes (at most `max_message_bytes`): a reference-counted view of the
    /// buffer the socket read into, not a copy. It keeps that allocation (shared with
    /// the messages received around it: up to 256 KiB for UDP, 64 KiB or more for a TCP
    /// connection) alive until it and every clone are dropped.
    pub data: Bytes,
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
    /// Addresses TCP connections may be accepted from. A connection from any
    /// other address is reset right after accept: no reader is started, nothing
    /// it sends is delivered and it takes no slot (counted in
    /// `tcp_refused_stranger`). Empty = accept from every address. Outbound
    /// connections are not filtered. IPv4-mapped IPv6 peers are matched by their
    /// IPv4 address too. Default empty.
    pub allowed_peers: Vec<IpNet>,
    /// Most accepted (inbound) TCP connections open at once; over it a new one is
    /// reset at accept (counted in `tcp_refused_pool_full`). Connections the
    /// transport opens itself do not count (see `max_tcp_outbound`). Default 1024.
    pub max_tcp_connections: usize,
    /// Most accepted TCP connections from one peer IP address at once; over it a
    /// new one from that address is reset at accept (counted in
    /// `tcp_refused_per_address`). Default 64.
    pub max_tcp_per_address: usize,
    /// Most outbound TCP connections (opened by [`Transport::send`]) open at once,
    /// a pool separate from `max_tcp_connections` so inbound connections cannot
    /// starve them; over it `send` fails (counted in `tcp_outbound_refused`).
    /// Default 256.
    pub max_tcp_outbound: usize,
    /// A TCP connection with no traffic for this long is closed. Default 300 s.
    pub tcp_idle_timeout: Duration,
    /// A SIP message whose first byte arrived on a TCP connection must be
    /// complete within this long, however slowly the rest trickles in (reading
    /// does not extend it); on an accepted connection the first complete message
    /// (or CRLFCRLF keep-alive) must also arrive within this long of the accept.
    /// Otherwise the connection is closed (counted in
    /// `tcp_message_deadline_closed`). CRLFs between messages do not start it.
    /// The idle timeout between messages is separate. Default 10 s.
    pub tcp_message_timeout: Duration,
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
            allowed_peers: Vec::new(),
            max_tcp_connections: 1024,
            max_tcp_per_address: 64,
            max_tcp_outbound: 256,
            tcp_idle_timeout: Duration::from_secs(300),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_connect_timeout: Duration::from_secs(3),
            inbound_queue: 8192,
            udp_buffer_bytes: 4 << 20,
        }
    }
}

/// Counters of the socket edge (monotonic except `tcp_open`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// UDP datagrams received and handed on (queued by [`Transport::bind`]'s task, or
    /// returned by a [`UdpReceiver`]).
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
    /// Accepted TCP connections reset at once because the peer is not in
    /// `allowed_peers`.
    pub tcp_refused_stranger: u64,
    /// Accepted TCP connections reset at once because their peer IP already held
    /// `max_tcp_per_address` connections.
    pub tcp_refused_per_address: u64,
    /// Accepted TCP connections reset at once because `max_tcp_connections`
    /// inbound connections were open.
    pub tcp_refused_pool_full: u64,
    /// Outbound TCP connections not opened because `max_tcp_outbound` were open.
    pub tcp_outbound_refused: u64,
    /// TCP connections closed for idleness.
    pub tcp_idle_closed: u64,
    /// TCP connections closed because a message was not complete within
    /// `tcp_message_timeout`.
    pub tcp_message_deadline_closed: u64,
    /// Errors from `accept()` (usually out of file descriptors).
    pub tcp_accept_errors: u64,
    /// Keep-alive pings answered.
    pub pings: u64,
    /// Messages sent over UDP.
    pub udp_out: u64,
    /// Messages sent over TCP.
    pub tcp_out: u64,
    /// UDP datagrams the kernel dropped at this socket before sipcti could
    /// read them (its receive buffer was full): the `drops` column of
    /// `/proc/self/net/udp` (or `udp6`) for the socket's inode, read when
    /// the stats are taken. `None` where that cannot be read (not Linux, no
    /// `/proc`).
    pub udp_socket_drops: Option<u64>,
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
    tcp_refused_stranger: AtomicU64,
    tcp_refused_per_address: AtomicU64,
    tcp_refused_pool_full: AtomicU64,
    tcp_outbound_refused: AtomicU64,
    tcp_idle_closed: AtomicU64,
    tcp_message_deadline_closed: AtomicU64,
    tcp_accept_errors: AtomicU64,
    pings: AtomicU64,
    udp_out: AtomicU64,
    tcp_out: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds one to `c`; returns the new count and whether that occurrence should be
/// logged: the first 10, then at every power of two (2,000 events give 17 lines).
fn inc_sampled(c: &AtomicU64) -> (u64, bool) {
    let n = c.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    (n, n <= 10 || n.is_power_of_two())
}

/// Closes an accepted connection with a reset (SO_LINGER 0): the peer sees it at
/// once and no TIME_WAIT state is kept here for refused connections.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Messages queued for writing on one TCP connection.
const TCP_WRITE_QUEUE: usize = 256;
/// Longest time one write to a TCP peer may take before the connection is closed.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a TCP socket at once.
const TCP_READ_CHUNK: usize = 16 * 1024;

/// Least spare room in a TCP connection's framer buffer before a read, bytes (the
/// framer allocates 64 KiB when it has less; a read takes at most `TCP_READ_CHUNK`).
const TCP_READ_MIN: usize = 2 * 1024;

/// UDP datagrams are received into allocations of this many datagrams of the largest
/// size (`max_message_bytes` + 1): each datagram is a view of its allocation, which
/// is freed when the last datagram received into it is dropped.
const UDP_DATAGRAMS_PER_ALLOC: usize = 4;

/// A live TCP connection as seen by senders.
#[derive(Debug, Clone)]
struct ConnHandle {
    id: u64,
    tx: mpsc::Sender<Bytes>,
}

struct Inner {
    local: SocketAddr,
    cfg: NetConfig,
    udp: UdpSocket,
    /// The UDP socket's inode (`socket:[INODE]`), looked up once at bind: its line in
    /// `/proc/self/net/udp{,6}` carries the kernel's drop counter. None if unreadable.
    udp_inode: Option<String>,
    inbound: mpsc::Sender<Inbound>,
    conns: Mutex<HashMap<SocketAddr, ConnHandle>>,
    /// Inbound pool (`max_tcp_connections`).
    permits: Arc<Semaphore>,
    /// Outbound pool (`max_tcp_outbound`).
    outbound_permits: Arc<Semaphore>,
    /// Open accepted connections per peer IP; an entry exists only while its count
    /// is above 0, so the map holds at most `max_tcp_connections` entries.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
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
    /// (counted). Accepted connections from outside `allowed_peers`, over
    /// `max_tcp_per_address` for their IP or over `max_tcp_connections` are reset at
    /// once (counted, WARN logged sampled); connections idle for `tcp_idle_timeout` or
    /// holding an incomplete message for `tcp_message_timeout` are closed (counted).
    /// Errors: any bind error.
    pub async fn bind(cfg: NetConfig) -> std::io::Result<(Transport, mpsc::Receiver<Inbound>)> {
        let (transport, rx, udp) = Transport::bind_split(cfg).await?;
        tokio::spawn(udp_loop(udp));
        Ok((transport, rx))
    }

    /// Like [`Transport::bind`], but the caller receives UDP itself: no receive task and
    /// no queue between the socket and the caller, the kernel's socket buffer
    /// (`udp_buffer_bytes`) is the only queue. Returns the handle, the receiver of TCP
    /// messages only (capacity `cfg.inbound_queue`), and the [`UdpReceiver`] to poll.
    /// Background TCP tasks stop when the TCP receiver is dropped.
    ///
    /// Errors: any bind error.
    pub async fn bind_split(
        cfg: NetConfig,
    ) -> std::io::Result<(Transport, mpsc::Receiver<Inbound>, UdpReceiver)> {
        let (udp, tcp) = bind_pair(cfg.listen, cfg.udp_buffer_bytes).await?;
        let local = udp.local_addr()?;
        let (tx, rx) = mpsc::channel(cfg.inbound_queue.max(1));
        let udp_inode = socket_inode(&udp);
        let inner = Arc::new(Inner {
            local,
            udp_inode,
            permits: Arc::new(Semaphore::new(cfg.max_tcp_connections)),
            outbound_permits: Arc::new(Semaphore::new(cfg.max_tcp_outbound)),
            per_ip: Mutex::new(HashMap::new()),
            cfg,
            udp,
            inbound: tx,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: Counters::default(),
        });
        tokio::spawn(accept_loop(inner.clone(), tcp));
        let udp = UdpReceiver::new(inner.clone());
        Ok((Transport { inner }, rx, udp))
    }

    /// The bound local address (same port for UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Sends `data` (one whole message) to `dest`. `data` is anything that converts into
    /// [`Bytes`] without copying (a `Vec<u8>` is taken over; a `Bytes` is queued as it
    /// is, so a retransmission of a stored message is a reference-counted clone).
    ///
    /// UDP: one datagram from the listening socket. TCP: over a live connection to `dest`
    /// (accepted or opened earlier), else a new one (within `tcp_connect_timeout` and the
    /// outbound permits, `max_tcp_outbound`) that is kept and read like an accepted one.
    /// Writes per connection are ordered; waits while that connection's write queue (256
    /// messages) is full.
    ///
    /// Errors: socket errors (e.g. `ConnectionRefused` from connect); `TimedOut` when
    /// connecting takes longer than `tcp_connect_timeout`; `Other` "TCP outbound
    /// connection limit reached" (counted in `tcp_outbound_refused`); `BrokenPipe` if the
    /// connection closed before the message was queued (after one reconnect attempt).
    pub async fn send(
        &self,
        transport: TransportKind,
        dest: SocketAddr,
        data: impl Into<Bytes>,
    ) -> std::io::Result<()> {
        let data: Bytes = data.into();
        match transport {
            TransportKind::Udp => {
                // nearly always room in the socket buffer: no readiness round trip
                match self.inner.udp.try_send_to(&data, dest) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.inner.udp.send_to(&data, dest).await?;
                    }
                    r => {
                        r?;
                    }
                }
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
            tcp_refused_stranger: g(&c.tcp_refused_stranger),
            tcp_refused_per_address: g(&c.tcp_refused_per_address),
            tcp_refused_pool_full: g(&c.tcp_refused_pool_full),
            tcp_outbound_refused: g(&c.tcp_outbound_refused),
            tcp_idle_closed: g(&c.tcp_idle_closed),
            tcp_message_deadline_closed: g(&c.tcp_message_deadline_closed),
            tcp_accept_errors: g(&c.tcp_accept_errors),
            pings: g(&c.pings),
            udp_out: g(&c.udp_out),
            tcp_out: g(&c.tcp_out),
            udp_socket_drops: self.inner.udp_inode.as_deref().and_then(udp_socket_drops),
        }
    }
}

/// The inode of socket `sock`, from the `socket:[INODE]` link of its file descriptor in
/// `/proc/self/fd`. None where that cannot be read (not Linux, no `/proc`).
fn socket_inode(sock: &UdpSocket) -> Option<String> {
    use std::os::fd::AsRawFd as _;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", sock.as_raw_fd())).ok()?;
    let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
    Some(inode.to_string())
}

/// The kernel's drop counter of the UDP socket with inode `inode`: the last (`drops`)
/// column of its line in `/proc/self/net/udp` or `/proc/self/net/udp6`. Reads a few KB of
/// `/proc` per call. `None` if neither can be read or holds the socket.
fn udp_socket_drops(inode: &str) -> Option<u64> {
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|text| {
            text.lines().skip(1).find_map(|line| {
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                let cols: Vec<&str> = line.split_whitespace().collect();
                (cols.get(9) == Some(&inode))
                    .then(|| cols.last()?.parse().ok())
                    .flatten()
            })
        })
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

    /// Whether an accepted connection from `ip` may be kept (`allowed_peers`).
    fn allowed(&self, ip: IpAddr) -> bool {
        let nets = &self.cfg.allowed_peers;
        let canonical = ip.to_canonical();
        nets.is_empty()
            || nets
                .iter()
                .any(|n| n.contains(&ip) || n.contains(&canonical))
    }

    /// Takes one of `ip`'s `max_tcp_per_address` inbound slots; `None` when all are used.
    fn take_addr_slot(self: &Arc<Self>, ip: IpAddr) -> Option<AddrSlot> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.cfg.max_tcp_per_address {
            return None;
        }
        *n += 1;
        Some(AddrSlot {
            inner: self.clone(),
            ip,
        })
    }

    /// Registers a connection and starts its task; returns the handle to use for `peer`
    /// (an already registered live one wins, the new one then closes when unused).
    /// `slot` (the pool permit and, inbound, the per-address slot) is released when
    /// the connection ends; an inbound slot also arms the accept-time message deadline.
    fn start_conn(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Slot) -> ConnHandle {
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
        let accepted = slot.addr.is_some();
        tokio::spawn(async move {
            conn_loop(&inner, stream, peer, rx, accepted).await;
            inner.forget(peer, id);
            inner.stats.tcp_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
        chosen
    }
}

/// One accepted connection's claim on its peer IP's `max_tcp_per_address`;
/// released (and the map entry removed at 0) on drop.
struct AddrSlot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut map = self.inner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a live connection holds: a permit of its pool and, when accepted, its
/// per-address slot. Dropped when the connection task ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    addr: Option<AddrSlot>,
}

async fn connect(inner: &Arc<Inner>, dest: SocketAddr) -> std::io::Result<ConnHandle> {
    let permit = inner
        .outbound_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            let (n, log) = inc_sampled(&inner.stats.tcp_outbound_refused);
            if log {
                tracing::warn!(%dest, count = n, limit = inner.cfg.max_tcp_outbound, "tcp outbound connection limit reached, not connecting");
            }
            std::io::Error::other("TCP outbound connection limit reached")
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
    let slot = Slot {
        _permit: permit,
        addr: None,
    };
    Ok(inner.start_conn(stream, dest, slot))
}

/// The receiving side of the UDP socket (from [`Transport::bind_split`]): datagrams are
/// read straight into a shared allocation (`UDP_DATAGRAMS_PER_ALLOC` datagrams of
/// `max_message_bytes` + 1 bytes) and split off it without a copy. Datagrams over
/// `max_message_bytes` are dropped and counted (`dropped_too_large`); every datagram
/// handed out is counted in `udp_in`.
pub struct UdpReceiver {
    inner: Arc<Inner>,
    buf: BytesMut,
    /// Bytes asked per datagram: one more than allowed, so oversized ones are seen.
    room: usize,
    /// Bytes of a fresh receive allocation.
    alloc: usize,
}

impl fmt::Debug for UdpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpReceiver")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

impl UdpReceiver {
    fn new(inner: Arc<Inner>) -> UdpReceiver {
        let max = inner.cfg.limits.max_message_bytes;
        let room = max.saturating_add(1).min(65_536);
        let alloc = room.saturating_mul(UDP_DATAGRAMS_PER_ALLOC);
        UdpReceiver {
            inner,
            buf: BytesMut::with_capacity(alloc),
            room,
            alloc,
        }
    }

    /// Waits for the next datagram within the size limit and returns it. Cancel safe
    /// (no datagram is lost when the future is dropped before it resolves), so it can
    /// sit in a `select!`. Receive errors (e.g. an ICMP port unreachable reported on
    /// the socket) are logged at debug level and skipped.
    pub async fn recv(&mut self) -> Inbound {
        let m = self.recv_uncounted().await;
        inc(&self.inner.stats.udp_in);
        m
    }

    /// The next datagram already in the socket buffer, without waiting; `None` when
    /// there is none (oversized datagrams and receive errors met on the way are
    /// dropped and counted, not returned).
    pub fn try_recv(&mut self) -> Option<Inbound> {
        let m = self.try_recv_uncounted()?;
        inc(&self.inner.stats.udp_in);
        Some(m)
    }

    /// [`UdpReceiver::recv`] without counting in `udp_in` (the queueing receive task
    /// counts only what it could queue).
    async fn recv_uncounted(&mut self) -> Inbound {
        loop {
            if let Some(m) = self.try_recv_uncounted() {
                return m;
            }
            if let Err(e) = self.inner.udp.readable().await {
                tracing::debug!(error = %e, "udp readiness error");
            }
        }
    }

    fn try_recv_uncounted(&mut self) -> Option<Inbound> {
        loop {
            if self.buf.capacity() < self.room && !self.buf.try_reclaim(self.room) {
                // the allocation is used up and datagrams in it are still alive
                self.buf = BytesMut::with_capacity(self.alloc);
            }
            // at most `room` bytes: a longer datagram is cut to `room` (> max) and dropped
            let mut spare = (&mut self.buf).limit(self.room);
            let (n, source) = match self.inner.udp.try_recv_buf_from(&mut spare) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    // e.g. ICMP port unreachable reported on some platforms: keep going.
                    tracing::debug!(error = %e, "udp recv error");
                    continue;
                }
            };
            if n > self.inner.cfg.limits.max_message_bytes {
                self.buf.clear();
                inc(&self.inner.stats.dropped_too_large);
                tracing::debug!(%source, bytes = n, "udp datagram too large, dropped");
                continue;
            }
            return Some(Inbound {
                data: self.buf.split().freeze(),
                source,
                local: self.inner.local,
                transport: TransportKind::Udp,
            });
        }
    }
}

/// [`Transport::bind`]'s receive task: datagrams into the inbound queue (dropped and
/// counted in `dropped_queue_full` when it is full); stops when the queue is closed.
async fn udp_loop(mut udp: UdpReceiver) {
    let inner = udp.inner.clone();
    loop {
        let msg = tokio::select! {
            m = udp.recv_uncounted() => m,
            _ = inner.inbound.closed() => return,
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
                let (n, log) = inc_sampled(&inner.stats.tcp_accept_errors);
                if log {
                    tracing::warn!(error = %e, count = n, "tcp accept error");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        admit(&inner, stream, peer);
    }
}

/// Checks an accepted connection (stranger, per-address cap, inbound pool, in this
/// order) and either starts it or resets it at once (counted, WARN logged sampled).
fn admit(inner: &Arc<Inner>, stream: TcpStream, peer: SocketAddr) {
    let ip = peer.ip();
    if !inner.allowed(ip) {
        let (n, log) = inc_sampled(&inner.stats.tcp_refused_stranger);
        if log {
            tracing::warn!(%peer, count = n, "tcp connection from an address neither inside nor trunk, refused");
        }
        reset(stream);
        return;
    }
    let Some(addr_slot) = inner.take_addr_slot(ip) else {
        let (n, log) = inc_sampled(&inner.stats.tcp_refused_per_address);
        if log {
            tracing::warn!(%peer, count = n, limit = inner.cfg.max_tcp_per_address, "tcp connections per address limit reached, refused");
        }
        reset(stream);
        return;
    };
    match inner.permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let _ = stream.set_nodelay(true);
            let slot = Slot {
                _permit: permit,
                addr: Some(addr_slot),
            };
            inner.start_conn(stream, peer, slot);
        }
        Err(_) => {
            drop(addr_slot);
            let (n, log) = inc_sampled(&inner.stats.tcp_refused_pool_full);
            if log {
                tracing::warn!(%peer, count = n, limit = inner.cfg.max_tcp_connections, "tcp inbound connection limit reached, refused");
            }
            reset(stream);
        }
    }
}

/// Whether bytes still buffered in the framer belong to a message in progress
/// (anything but CR/LF, which may sit between messages). `buffered` is what the
/// framer holds after taking all frames, `read` how many bytes the last read
/// added, and `before` the answer for the previous read.
fn message_in_progress(buffered: &[u8], read: usize, before: bool) -> bool {
    let not_crlf = |b: &u8| *b != b'\r' && *b != b'\n';
    if buffered.is_empty() {
        false
    } else if buffered.len() <= read {
        // The buffer is the tail of this read.
        buffered.iter().any(not_crlf)
    } else {
        // Older bytes remain, so no message completed in this read, and the bytes
        // read are the buffer's tail.
        before
            || buffered
                .get(buffered.len() - read..)
                .unwrap_or_default()
                .iter()
                .any(not_crlf)
    }
}

/// Reads, frames and queues inbound messages; writes queued outbound messages; answers
/// pings; closes on error, EOF, idleness, a message not complete within
/// `tcp_message_timeout` (on an `accepted` connection also the first one, counted from
/// the accept) or when the inbound receiver is gone.
async fn conn_loop(
    inner: &Arc<Inner>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    accepted: bool,
) {
    let local = stream.local_addr().unwrap_or(inner.local);
    let mut framer = StreamFramer::new(inner.cfg.limits);
    let idle = inner.cfg.tcp_idle_timeout;
    let msg_timeout = inner.cfg.tcp_message_timeout;
    let mut deadline = Instant::now() + idle;
    // When the message in progress (or, accepted, the first one) must be complete.
    // Set once and never moved by further reads of the same message.
    let mut msg_deadline = accepted.then(|| Instant::now() + msg_timeout);
    let mut in_progress = false;
    loop {
        let (wake, for_message) = match msg_deadline {
            Some(m) if m <= deadline => (m, true),
            _ => (deadline, false),
        };
        // Read straight into the framer's buffer: each message is then split off it
        // without a copy. (It never holds more than max_message_bytes here: every
        // complete frame was taken after the last read.)
        let room = match framer.read_buf(TCP_READ_MIN) {
            Ok(b) => b,
            Err(e) => {
                frame_error(inner, peer, &e);
                return;
            }
        };
        let mut room = room.limit(TCP_READ_CHUNK);
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
            r = stream.read_buf(&mut room) => {
                let n = match r {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "tcp read error");
                        return;
                    }
                };
                let now = Instant::now();
                deadline = now + idle;
                let mut complete = false;
                loop {
                    match framer.next_frame_bytes() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => {
                            complete = true;
                            inc(&inner.stats.pings);
                            if tokio::time::timeout(TCP_WRITE_TIMEOUT, stream.write_all(b"\r\n")).await.map_or(true, |r| r.is_err()) {
                                return;
                            }
                        }
                        Ok(Some(Frame::Message(data))) => {
                            complete = true;
                            let msg = Inbound { data, source: peer, local, transport: TransportKind::Tcp };
                            // Backpressure: wait for room in the queue.
                            if inner.inbound.send(msg).await.is_err() {
                                return;
                            }
                            inc(&inner.stats.tcp_in);
                        }
                        Err(e) => {
                            frame_error(inner, peer, &e);
                            return;
                        }
                    }
                }
                in_progress = message_in_progress(framer.buffered_bytes(), n, in_progress);
                if complete {
                    msg_deadline = None;
                }
                if in_progress && msg_deadline.is_none() {
                    // The next message started in this read.
                    msg_deadline = Some(now + msg_timeout);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if for_message {
                    let (n, log) = inc_sampled(&inner.stats.tcp_message_deadline_closed);
                    if log {
                        tracing::warn!(%peer, count = n, timeout_ms = msg_timeout.as_millis() as u64, buffered = framer.buffered(), "tcp message not complete in time, closing");
                    }
                } else {
                    inc(&inner.stats.tcp_idle_closed);
                    tracing::debug!(%peer, "tcp connection idle, closing");
                }
                return;
            }
            _ = inner.inbound.closed() => return,
        }
    }
}

/// Counts a framing error and logs it at WARN, sampled.
fn frame_error(inner: &Inner, peer: SocketAddr, e: &dyn fmt::Display) {
    let (n, log) = inc_sampled(&inner.stats.frame_errors);
    if log {
        tracing::warn!(%peer, count = n, error = %e, "tcp framing error, closing");
    }
}
