//! Reader for recorded network traffic (pcap and pcapng files).
//!
//! [`CaptureReader`] walks a capture file and yields every UDP datagram and every
//! piece of reassembled TCP stream data in it as a [`Datagram`]. It knows nothing
//! about the application protocol carried inside (SIP framing and parsing live in
//! other crates).
//!
//! What it handles:
//!
//! * File formats: classic pcap (both byte orders, microsecond and nanosecond
//!   timestamps, <https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html>)
//!   and pcapng (several sections and interfaces, each with its own link type,
//!   `if_tsresol` and `if_tsoffset`; Enhanced and Simple Packet Blocks,
//!   <https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html>).
//!   Parsing of the blocks is done by the `pcap-parser` crate.
//! * Link types (<https://www.tcpdump.org/linktypes.html>): Ethernet (1) with
//!   stacked 802.1Q / 802.1ad VLAN tags, Linux cooked SLL (113) and SLL2 (276),
//!   raw IP (101, 12, 14, 228, 229), BSD loopback NULL (0) and LOOP (108).
//! * IPv4 (RFC 791) and IPv6 (RFC 8200) including IPv6 extension headers and
//!   fragment reassembly for both ([`IpDefragmenter`]).
//! * UDP (RFC 768) on any port, TCP (RFC 9293) stream reassembly per connection
//!   direction ([`TcpReassembler`]).
//!
//! Every buffer that grows with the input has a limit ([`Limits`]); data dropped or
//! delivered early because of a limit is counted in [`Stats`]. Nothing in a capture
//! makes the reader panic: a truncated or corrupt file yields everything readable,
//! then one error naming the packet number, then `None`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod defrag;
mod link;
mod net;
mod reader;
mod tcp;

use std::net::SocketAddr;
use std::time::Duration;

pub use defrag::{DefragCounters, DefragLimits, FragKey, Fragment, IpDefragmenter};
pub use reader::CaptureReader;
pub use tcp::{TcpChunk, TcpCounters, TcpLimits, TcpReassembler};

/// Transport protocol a [`Datagram`] was carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 768): one [`Datagram`] is one whole (reassembled) UDP datagram.
    Udp,
    /// TCP (RFC 9293): one [`Datagram`] is the next in-order piece of a byte stream.
    Tcp,
}

/// One unit of application data found in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// 1-based number of the capture packet that produced (or completed) this data,
    /// counted like Wireshark's frame numbers (every packet record / packet block).
    pub packet: u64,
    /// Capture timestamp of that packet, as time since the UNIX epoch (UTC).
    pub ts: Duration,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Transport protocol.
    pub transport: Transport,
    /// UDP: the whole (reassembled) datagram payload. TCP: the next in-order bytes of
    /// the `src -> dst` stream.
    pub payload: Vec<u8>,
    /// TCP only: bytes are missing before this payload (a segment was never
    /// captured, a limit was hit, or the stream was picked up mid-way). The consumer
    /// must resynchronise its framer. Always `false` for UDP.
    pub gap_before: bool,
}

/// Counters collected while reading a capture. All counts are totals since the
/// reader was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Packets (pcap records, pcapng EPB/SPB blocks) read.
    pub packets: u64,
    /// UDP datagrams yielded (after IP reassembly).
    pub udp: u64,
    /// TCP segments seen (with or without payload).
    pub tcp_segments: u64,
    /// Packets whose link layer does not carry IPv4/IPv6 (ARP, LLDP, packets of a
    /// pcapng interface with an unsupported link type, ...).
    pub skipped_non_ip: u64,
    /// IP packets that are neither UDP nor TCP, or whose IP/UDP/TCP headers are
    /// malformed or cut off by the snap length.
    pub skipped_other: u64,
    /// IP fragments seen (IPv4 packets with MF or a non-zero offset; IPv6 packets
    /// with a fragment header that fragments).
    pub ip_fragments: u64,
    /// IP datagrams completed from fragments.
    pub reassembled_datagrams: u64,
    /// Incomplete fragmented IP datagrams discarded after the reassembly timeout
    /// or at the end of the capture.
    pub ip_fragments_expired: u64,
    /// Fragments or fragmented datagrams discarded as invalid (conflicting overlap
    /// in IPv6 (RFC 5722), bad lengths, beyond 65535 bytes).
    pub ip_fragments_invalid: u64,
    /// TCP segments that carried only (or partly) data already received.
    pub tcp_retransmissions: u64,
    /// TCP segments that arrived ahead of the expected sequence number and had to be
    /// buffered.
    pub tcp_out_of_order: u64,
    /// Times the TCP reassembly skipped missing bytes (each gives one payload with
    /// `gap_before = true`; not counted for a stream picked up mid-way).
    pub tcp_gaps: u64,
    /// Times a limit forced data to be dropped or delivered early behind a gap
    /// (flow or fragment table full, reassembly buffer full).
    pub dropped_by_limit: u64,
}

/// Error reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("cannot read capture: {0}")]
    Io(#[from] std::io::Error),
    /// The data starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng capture (unknown magic number)")]
    UnknownFormat,
    /// The file ends in the middle of a packet (or block); `packet` is the 1-based
    /// number that packet would have had (0: inside the file header).
    #[error("capture truncated in packet {packet}")]
    Truncated {
        /// 1-based packet number (0: the file header).
        packet: u64,
    },
    /// A record or block is malformed; `packet` is the 1-based number of the packet
    /// being read (0: the file header).
    #[error("capture corrupt at packet {packet}: {reason}")]
    Corrupt {
        /// 1-based packet number (0: the file header).
        packet: u64,
        /// What is wrong.
        reason: String,
    },
    /// A classic pcap file has a link type this reader cannot decode
    /// (<https://www.tcpdump.org/linktypes.html>). Packets of such pcapng
    /// interfaces are counted in [`Stats::skipped_non_ip`] instead.
    #[error("unsupported link type {linktype}")]
    UnsupportedLinkType {
        /// The LINKTYPE_ value from the file.
        linktype: u32,
    },
}

/// Resource limits of a [`CaptureReader`]. The defaults suit captures of SIP
/// signalling; every limit that drops data increments a counter in [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Limits of each TCP direction's reassembly buffer.
    pub tcp: TcpLimits,
    /// Maximum number of TCP flow directions tracked at once (default 65536). When
    /// full, the least recently seen eighth is evicted (pending data is delivered
    /// behind a gap; counted in [`Stats::dropped_by_limit`]).
    pub max_tcp_flows: usize,
    /// Maximum bytes buffered out of order over all TCP flows (default 64 MiB). When
    /// exceeded, the flow that grew delivers its buffered data behind a gap.
    pub max_tcp_pending_bytes_total: usize,
    /// Limits of the IPv4/IPv6 fragment reassembly.
    pub defrag: DefragLimits,
    /// Largest pcap record or pcapng block accepted, in bytes (default 16 MiB);
    /// larger ones are reported as [`CaptureError::Corrupt`].
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tcp: TcpLimits::default(),
            max_tcp_flows: 65_536,
            max_tcp_pending_bytes_total: 64 << 20,
            defrag: DefragLimits::default(),
            max_record_bytes: 16 << 20,
        }
    }
}
