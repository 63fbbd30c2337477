//! pcap / pcapng file reading and the per-packet pipeline.
//!
//! This module opens a capture (file header or first Section Header Block) and
//! runs every packet through link layer, IP and UDP/TCP; reading the pcap
//! records is in `pcap`, reading the pcapng blocks in `pcapng`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use etherparse::{TcpHeaderSlice, UdpHeaderSlice};

use crate::defrag::{DefragCounters, IpDefragmenter};
use crate::link::{self, LinkPayload};
use crate::net::{self, NetPacket};
use crate::tcp::{TcpChunk, TcpCounters, TcpReassembler};
use crate::{CaptureError, Datagram, Limits, Stats, Transport};

mod pcap;
mod pcapng;

use pcapng::{Iface, PCAPNG_SHB};

const IP_UDP: u8 = 17;
const IP_TCP: u8 = 6;

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        linktype: u32,
    },
    PcapNg {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
}

#[derive(Debug)]
enum Phase {
    Reading,
    Failed(CaptureError),
    Done,
}

#[derive(Debug)]
struct Flow {
    reasm: TcpReassembler,
    last_seen: Duration,
}

type FlowKey = (SocketAddr, SocketAddr);

/// Reads a pcap or pcapng capture and yields its UDP datagrams and reassembled
/// TCP stream data as [`Datagram`]s, in capture order.
///
/// The file is read as a stream (one record at a time), so memory does not grow
/// with the file size. Per-packet pipeline: link layer (see the crate docs) ->
/// IPv4/IPv6 (with fragment reassembly) -> UDP datagram or TCP segment (fed to a
/// [`TcpReassembler`] per direction). At the end of the capture, TCP data still
/// waiting behind a hole is delivered with `gap_before = true`.
///
/// Timestamps: pcap seconds + micro/nanoseconds (per magic number; the header's
/// `thiszone` is ignored, as by libpcap); pcapng units per `if_tsresol` plus
/// `if_tsoffset` seconds. Simple Packet Blocks carry no time: they get the
/// previous packet's. A TCP segment cut short by the snap length contributes the
/// bytes that were captured (the rest becomes a gap).
///
/// Iteration yields `Ok(Datagram)` items; a truncated or corrupt file yields
/// everything readable, then one `Err` naming the packet, then `None`.
/// Counters are available through [`stats`](Self::stats) at any time.
pub struct CaptureReader {
    src: Box<dyn Read + Send>,
    format: Format,
    limits: Limits,
    buf: Vec<u8>,
    /// Packets read so far (the last packet's 1-based number).
    packet: u64,
    /// Timestamp of the last packet (used for SPBs, which carry none).
    last_ts: Duration,
    stats: Stats,
    flows: HashMap<FlowKey, Flow>,
    tcp_pending_total: usize,
    next_tcp_sweep: Duration,
    defrag: IpDefragmenter,
    out: VecDeque<Datagram>,
    phase: Phase,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("packet", &self.packet)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

impl CaptureReader {
    /// Opens the capture file at `path` with default [`Limits`]; pcap or pcapng is
    /// detected by the magic number.
    ///
    /// Errors: [`CaptureError::Io`] if the file cannot be opened or read,
    /// [`CaptureError::UnknownFormat`], [`CaptureError::Truncated`] /
    /// [`CaptureError::Corrupt`] (packet 0) for a bad file header,
    /// [`CaptureError::UnsupportedLinkType`] for a pcap file of a link type that
    /// cannot be decoded.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_with_limits(path, Limits::default())
    }

    /// Like [`open`](Self::open) with explicit limits.
    pub fn open_with_limits(path: &Path, limits: Limits) -> Result<CaptureReader, CaptureError> {
        let file = File::open(path)?;
        Self::from_reader(BufReader::with_capacity(1 << 18, file), limits)
    }

    /// Reads a capture held in memory (pcap or pcapng), with default [`Limits`].
    /// Errors as for [`open`](Self::open).
    pub fn from_bytes(data: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        Self::from_bytes_with_limits(data, Limits::default())
    }

    /// Like [`from_bytes`](Self::from_bytes) with explicit limits.
    pub fn from_bytes_with_limits(
        data: Vec<u8>,
        limits: Limits,
    ) -> Result<CaptureReader, CaptureError> {
        Self::from_reader(Cursor::new(data), limits)
    }

    /// Reads a capture from any byte stream (buffer it for speed). Reads and checks
    /// the file header (pcap) or first Section Header Block (pcapng) before
    /// returning. Errors as for [`open`](Self::open).
    pub fn from_reader<R: Read + Send + 'static>(
        reader: R,
        limits: Limits,
    ) -> Result<CaptureReader, CaptureError> {
        let mut src: Box<dyn Read + Send> = Box::new(reader);
        let mut magic = [0u8; 4];
        if read_full(&mut *src, &mut magic)? < 4 {
            return Err(CaptureError::UnknownFormat);
        }
        let mut buf = magic.to_vec();
        let format = match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0xa1b2_cd34 => {
                buf.resize(24, 0);
                if read_full(&mut *src, &mut buf[4..])? < 20 {
                    return Err(CaptureError::Truncated { packet: 0 });
                }
                let (_, h) =
                    pcap_parser::parse_pcap_header(&buf).map_err(|e| CaptureError::Corrupt {
                        packet: 0,
                        reason: format!("bad pcap header: {e}"),
                    })?;
                let linktype = (h.network.0 as u32) & 0xFFFF;
                if !link::is_supported(linktype) {
                    return Err(CaptureError::UnsupportedLinkType { linktype });
                }
                Format::Pcap {
                    big_endian: h.is_bigendian(),
                    nanos: h.is_nanosecond_precision(),
                    modified: h.is_modified_format(),
                    linktype,
                }
            }
            PCAPNG_SHB => Format::PcapNg {
                big_endian: false,
                ifaces: Vec::new(),
            },
            _ => return Err(CaptureError::UnknownFormat),
        };
        let pending_magic = matches!(format, Format::PcapNg { .. });
        let mut reader = CaptureReader {
            src,
            format,
            defrag: IpDefragmenter::new(limits.defrag.clone()),
            limits,
            buf: Vec::new(),
            packet: 0,
            last_ts: Duration::ZERO,
            stats: Stats::default(),
            flows: HashMap::new(),
            tcp_pending_total: 0,
            next_tcp_sweep: Duration::ZERO,
            out: VecDeque::new(),
            phase: Phase::Reading,
        };
        if pending_magic {
            // Read and check the first Section Header Block now, so that a file
            // that merely starts with the SHB type is rejected early.
            let first = match reader.read_ng_block(Some(magic)) {
                Ok(true) => reader.handle_ng_block(),
                Ok(false) => Err(CaptureError::Truncated { packet: 0 }),
                Err(e) => Err(e),
            };
            first.map_err(|e| match e {
                CaptureError::Truncated { .. } => CaptureError::Truncated { packet: 0 },
                CaptureError::Corrupt { reason, .. } => CaptureError::Corrupt { packet: 0, reason },
                other => other,
            })?;
        }
        Ok(reader)
    }

    /// Counters so far (complete once the iterator returned `None`).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reads the next packet and processes it. Returns `Ok(false)` at the clean
    /// end of the file.
    fn step(&mut self) -> Result<bool, CaptureError> {
        match self.format {
            Format::Pcap { .. } => self.step_pcap(),
            Format::PcapNg { .. } => {
                if !self.read_ng_block(None)? {
                    return Ok(false);
                }
                self.handle_ng_block()?;
                Ok(true)
            }
        }
    }

    /// Decodes one packet and queues the resulting datagrams.
    fn process(&mut self, linktype: u32, data: &[u8], ts: Duration) {
        self.last_ts = ts;
        self.sweep(ts);
        let ip = match link::decode(linktype, data) {
            LinkPayload::Ip(ip) => ip,
            LinkPayload::NotIp => {
                self.stats.skipped_non_ip += 1;
                return;
            }
            LinkPayload::Malformed => {
                self.stats.skipped_other += 1;
                return;
            }
        };
        match net::parse_ip(ip) {
            NetPacket::Fragment(frag) => {
                let key = frag.key;
                let whole = self.defrag.feed(frag, ts);
                let counters = self.defrag.take_counters();
                self.absorb_defrag(counters);
                let Some(whole) = whole else {
                    return;
                };
                if key.src.is_ipv4() {
                    self.transport(key.src, key.dst, key.protocol, &whole, false, ts);
                } else {
                    let p = net::walk_v6(key.src, key.dst, key.protocol, &whole, false);
                    self.upper_layer(p, ts);
                }
            }
            p => self.upper_layer(p, ts),
        }
    }

    /// Hands the data after the IP headers on; anything else is counted.
    fn upper_layer(&mut self, p: NetPacket<'_>, ts: Duration) {
        match p {
            NetPacket::Transport {
                src,
                dst,
                protocol,
                data,
                truncated,
            } => self.transport(src, dst, protocol, data, truncated, ts),
            _ => self.stats.skipped_other += 1,
        }
    }

    fn absorb_defrag(&mut self, c: DefragCounters) {
        self.stats.ip_fragments += c.fragments;
        self.stats.reassembled_datagrams += c.reassembled;
        self.stats.ip_fragments_expired += c.expired;
        self.stats.ip_fragments_invalid += c.invalid;
        self.stats.dropped_by_limit += c.dropped_by_limit;
    }

    fn absorb_tcp(stats: &mut Stats, c: TcpCounters) {
        stats.tcp_retransmissions += c.retransmissions;
        stats.tcp_out_of_order += c.out_of_order;
        stats.tcp_gaps += c.gaps;
        stats.dropped_by_limit += c.dropped_by_limit;
    }

    fn transport(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        data: &[u8],
        truncated: bool,
        ts: Duration,
    ) {
        match protocol {
            IP_UDP => {
                let Ok(h) = UdpHeaderSlice::from_slice(data) else {
                    self.stats.skipped_other += 1;
                    return;
                };
                let len = usize::from(h.length());
                // Length 0: IPv6 jumbogram (RFC 2675), the IP length rules.
                let end = if len == 0 && !truncated {
                    data.len()
                } else {
                    len
                };
                if end < 8 || end > data.len() {
                    self.stats.skipped_other += 1;
                    return;
                }
                self.stats.udp += 1;
                self.out.push_back(Datagram {
                    packet: self.packet,
                    ts,
                    src: SocketAddr::new(src, h.source_port()),
                    dst: SocketAddr::new(dst, h.destination_port()),
                    transport: Transport::Udp,
                    payload: data[8..end].to_vec(),
                    gap_before: false,
                });
            }
            IP_TCP => {
                let Ok(h) = TcpHeaderSlice::from_slice(data) else {
                    self.stats.skipped_other += 1;
                    return;
                };
                self.stats.tcp_segments += 1;
                let payload = &data[h.slice().len()..];
                let key = (
                    SocketAddr::new(src, h.source_port()),
                    SocketAddr::new(dst, h.destination_port()),
                );
                self.tcp_segment(key, &h, payload, ts);
            }
            _ => self.stats.skipped_other += 1,
        }
    }

    fn tcp_segment(&mut self, key: FlowKey, h: &TcpHeaderSlice<'_>, payload: &[u8], ts: Duration) {
        let packet = self.packet;
        if !self.flows.contains_key(&key) {
            if payload.is_empty() && !h.syn() {
                // Pure ACK/FIN/RST of a direction without data: nothing to track.
                if h.rst() {
                    self.abort_flow((key.1, key.0), ts);
                }
                return;
            }
            if self.flows.len() >= self.limits.max_tcp_flows.max(1) {
                self.evict_flows();
            }
            self.flows.insert(
                key,
                Flow {
                    reasm: TcpReassembler::new(self.limits.tcp.clone()),
                    last_seen: ts,
                },
            );
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen = ts;
        let before = flow.reasm.pending_bytes();
        let mut chunks = flow.reasm.feed(
            h.sequence_number(),
            h.syn(),
            h.fin(),
            h.rst(),
            payload,
            packet,
            ts,
        );
        self.tcp_pending_total =
            self.tcp_pending_total.saturating_sub(before) + flow.reasm.pending_bytes();
        if self.tcp_pending_total > self.limits.max_tcp_pending_bytes_total {
            let before = flow.reasm.pending_bytes();
            chunks.extend(flow.reasm.flush(packet, ts));
            self.tcp_pending_total = self.tcp_pending_total.saturating_sub(before);
            self.stats.dropped_by_limit += 1;
        }
        Self::absorb_tcp(&mut self.stats, flow.reasm.take_counters());
        self.emit(key, chunks);
        if h.rst() {
            self.abort_flow((key.1, key.0), ts);
        }
    }

    /// Ends the direction `key` at once (RST seen on the connection).
    fn abort_flow(&mut self, key: FlowKey, ts: Duration) {
        if let Some(flow) = self.flows.get_mut(&key) {
            self.tcp_pending_total = self
                .tcp_pending_total
                .saturating_sub(flow.reasm.pending_bytes());
            let chunks = flow.reasm.abort(self.packet, ts);
            Self::absorb_tcp(&mut self.stats, flow.reasm.take_counters());
            self.emit(key, chunks);
        }
    }

    fn emit(&mut self, key: FlowKey, chunks: Vec<TcpChunk>) {
        for c in chunks {
            self.out.push_back(Datagram {
                packet: c.packet,
                ts: c.ts,
                src: key.0,
                dst: key.1,
                transport: Transport::Tcp,
                payload: c.payload,
                gap_before: c.gap_before,
            });
        }
    }

    /// Flow table full: evicts the least recently seen eighth (closed directions
    /// first), delivering their buffered data behind a gap.
    fn evict_flows(&mut self) {
        let mut all: Vec<(bool, Duration, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (!f.reasm.is_closed(), f.last_seen, *k))
            .collect();
        all.sort_unstable();
        let n = (all.len() / 8).max(1);
        for (open, _, key) in all.into_iter().take(n) {
            if let Some(mut flow) = self.flows.remove(&key) {
                self.tcp_pending_total = self
                    .tcp_pending_total
                    .saturating_sub(flow.reasm.pending_bytes());
                let chunks = flow.reasm.finish();
                Self::absorb_tcp(&mut self.stats, flow.reasm.take_counters());
                if open {
                    self.stats.dropped_by_limit += 1;
                }
                self.emit(key, chunks);
            }
        }
    }

    /// Once per second of capture time: expires IP fragments and skips TCP holes
    /// that waited longer than the gap timeout.
    fn sweep(&mut self, now: Duration) {
        // Also sweep when the capture time jumped backwards (merged files).
        if now < self.next_tcp_sweep && now + Duration::from_secs(1) >= self.next_tcp_sweep {
            return;
        }
        self.next_tcp_sweep = now + Duration::from_secs(1);
        if self.defrag.in_progress() > 0 {
            self.defrag.expire(now);
            let c = self.defrag.take_counters();
            self.absorb_defrag(c);
        }
        if self.tcp_pending_total == 0 {
            return;
        }
        let mut keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| f.reasm.pending_bytes() > 0)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        // The packet being processed is the one that noticed the timeout.
        let packet = self.packet;
        for key in keys {
            if let Some(flow) = self.flows.get_mut(&key) {
                let before = flow.reasm.pending_bytes();
                let chunks = flow.reasm.expire(now, packet);
                self.tcp_pending_total =
                    self.tcp_pending_total.saturating_sub(before) + flow.reasm.pending_bytes();
                Self::absorb_tcp(&mut self.stats, flow.reasm.take_counters());
                self.emit(key, chunks);
            }
        }
    }

    /// End of input: delivers TCP data waiting behind holes and discards
    /// incomplete IP datagrams.
    fn finish(&mut self) {
        let mut keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| f.reasm.pending_bytes() > 0)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        let mut tail: Vec<Datagram> = Vec::new();
        for key in keys {
            if let Some(flow) = self.flows.get_mut(&key) {
                let chunks = flow.reasm.finish();
                Self::absorb_tcp(&mut self.stats, flow.reasm.take_counters());
                let start = self.out.len();
                self.emit(key, chunks);
                tail.extend(self.out.drain(start..));
            }
        }
        self.tcp_pending_total = 0;
        tail.sort_by_key(|d| d.packet); // stable: keeps stream order per flow
        self.out.extend(tail);
        self.defrag.finish();
        let c = self.defrag.take_counters();
        self.absorb_defrag(c);
    }
}

impl Iterator for CaptureReader {
    type Item = Result<Datagram, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(d) = self.out.pop_front() {
                return Some(Ok(d));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Reading => match self.step() {
                    Ok(true) => self.phase = Phase::Reading,
                    Ok(false) => self.finish(),
                    Err(e) => {
                        self.finish();
                        self.phase = Phase::Failed(e);
                    }
                },
                Phase::Failed(e) => return Some(Err(e)),
                Phase::Done => return None,
            }
        }
    }
}
