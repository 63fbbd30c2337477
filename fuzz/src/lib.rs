//! Shared parts of sipcti's fuzz targets: the core's test configuration, the seed SIP
//! messages the `core` target's op scripts refer to, and the op-script encoding (used by
//! the target to decode; `scripts/fuzz.sh` writes seed scripts in the same encoding).

use std::net::SocketAddr;
use std::time::Duration;

use sipcti_core::{CoreConfig, Hop, SourceLimits, Target};
use sipcti_wire::{Limits, TransportKind};

/// The proxy's own address (Via, Record-Route).
pub const PROXY: &str = "192.0.2.10:5060";
/// The SIP trunk (inside the trunk source network 203.0.113.0/24).
pub const TRUNK: &str = "203.0.113.5:5060";
/// Where inbound calls go (inside network 10.0.0.0/24).
pub const PBX: &str = "10.0.0.2:5060";
/// A phone (inside network 10.0.0.0/24).
pub const PHONE: &str = "10.0.0.20:5062";
/// An address neither inside nor trunk.
pub const STRANGER: &str = "198.51.100.7:5060";

/// Parse one of the constant addresses above. Panics only on a typo in this file.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("constant socket address")
}

/// The core configuration of the fuzz targets, the same shape as the core tests'
/// (`crates/core/tests/core_support`): RFC 3261 timers (T1 500 ms, Timer C 180 s), a 3.5 s
/// newCall wait, 1000 transactions, 32 s wait after a final response.
pub fn core_config() -> CoreConfig {
    CoreConfig {
        local: addr(PROXY),
        aliases: vec![],
        trunk: Hop {
            target: Target::Addr(addr(TRUNK)),
            transport: TransportKind::Udp,
            hostport: "203.0.113.5".into(),
        },
        trunk_sources: vec!["203.0.113.0/24".parse().expect("net")],
        inside_networks: vec!["10.0.0.0/24".parse().expect("net")],
        inside_target: Hop {
            target: Target::Addr(addr(PBX)),
            transport: TransportKind::Udp,
            hostport: "10.0.0.2".into(),
        },
        limits: Limits::default(),
        t1: Duration::from_millis(500),
        timer_c: Duration::from_secs(180),
        newcall_wait: Duration::from_millis(3500),
        max_transactions: 1000,
        inside_ip: addr(PROXY).ip(),
        trunk_ip: addr(PROXY).ip(),
        wait: Duration::from_secs(32),
        tracker: sipcti_dialog::TrackerConfig {
            country_code: Some("49".into()),
            // the trunk's seed INVITE (+4930999) rings a group of two, so
            // the oracle also covers forking (RFC 3261 16.7)
            routes: vec![sipcti_dialog::InboundRoute::group(
                sipcti_dialog::NumberPattern::parse("4930999*", Some("49"), 6)
                    .expect("route number"),
                &["sip:201@10.0.0.21:5060", "sip:202@10.0.0.22:5070"],
                Some("fuzz".into()),
                Some("49"),
                6,
            )],
            ..sipcti_dialog::TrackerConfig::default()
        },
        sources: SourceLimits::default(),
        registration: Default::default(),
        topology: Default::default(),
    }
}

/// Seed messages of the `core` target. `{N}` is replaced by a small number from the op
/// (so several dialogs and transactions can exist at once), `{SRC}` by the sender's address.
pub const SEEDS: &[&str] = &[
    // 0: outbound INVITE from a phone
    "INVITE sip:+4930123456@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKinv{N};rport\r\nMax-Forwards: 70\r\nFrom: <sip:201@10.0.0.20>;tag=f{N}\r\nTo: <sip:+4930123456@192.0.2.10>\r\nCall-ID: c{N}@fuzz\r\nCSeq: 1 INVITE\r\nContact: <sip:201@{SRC}>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
    // 1: inbound INVITE from the trunk
    "INVITE sip:+4930999@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKtin{N}\r\nMax-Forwards: 70\r\nFrom: <sip:+4940555@203.0.113.5>;tag=t{N}\r\nTo: <sip:+4930999@192.0.2.10>\r\nCall-ID: t{N}@trunk\r\nCSeq: 10 INVITE\r\nContact: <sip:+4940555@{SRC}>\r\nContent-Length: 0\r\n\r\n",
    // 2: ACK of the phone's INVITE
    "ACK sip:+4930123456@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKack{N};rport\r\nMax-Forwards: 70\r\nFrom: <sip:201@10.0.0.20>;tag=f{N}\r\nTo: <sip:+4930123456@192.0.2.10>;tag=r{N}\r\nCall-ID: c{N}@fuzz\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    // 3: BYE from the phone
    "BYE sip:+4930123456@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKbye{N};rport\r\nMax-Forwards: 70\r\nRoute: <sip:192.0.2.10;lr>\r\nFrom: <sip:201@10.0.0.20>;tag=f{N}\r\nTo: <sip:+4930123456@192.0.2.10>;tag=r{N}\r\nCall-ID: c{N}@fuzz\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    // 4: CANCEL of the phone's INVITE
    "CANCEL sip:+4930123456@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKinv{N};rport\r\nMax-Forwards: 70\r\nFrom: <sip:201@10.0.0.20>;tag=f{N}\r\nTo: <sip:+4930123456@192.0.2.10>\r\nCall-ID: c{N}@fuzz\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    // 5: OPTIONS
    "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKopt{N}\r\nMax-Forwards: 70\r\nFrom: <sip:mon@x>;tag=o{N}\r\nTo: <sip:192.0.2.10>\r\nCall-ID: o{N}@fuzz\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    // 6: REGISTER
    "REGISTER sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP {SRC};branch=z9hG4bKreg{N};rport\r\nMax-Forwards: 70\r\nFrom: <sip:201@203.0.113.5>;tag=g{N}\r\nTo: <sip:201@203.0.113.5>\r\nCall-ID: g{N}@fuzz\r\nCSeq: {N} REGISTER\r\nContact: <sip:201@{SRC}>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n",
    // 7: a stray 200 OK for the phone's INVITE, as a forger would write it
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKinv{N}\r\nFrom: <sip:201@10.0.0.20>;tag=f{N}\r\nTo: <sip:+4930123456@192.0.2.10>;tag=r{N}\r\nCall-ID: c{N}@fuzz\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{SRC}>\r\nContent-Length: 0\r\n\r\n",
];

/// Op codes of a `core` script (one byte each, taken modulo [`OP_COUNT`]); the bytes that
/// follow each op are its arguments, read as [`Ops`] describes.
pub mod op {
    /// Receive seed message: args `seed`, `n`, `source`, `transport`.
    pub const SEED: u8 = 0;
    /// Receive raw bytes: args `source`, `transport`, `len_hi`, `len_lo`, then `len` bytes.
    pub const RAW: u8 = 1;
    /// Advance time: args `hi`, `lo`: (hi*256+lo) * 10 ms, running the due timers.
    pub const ADVANCE: u8 = 2;
    /// Answer a pending newCall: args `which`, `kind` (continue, fail open, reject, dial).
    pub const CTI: u8 = 3;
    /// Transport error on a client transaction seen in a Transmit: arg `which`.
    pub const TRANSPORT_ERROR: u8 = 4;
    /// Answer a request the core forwarded: args `which`, `status`, `source`, `transport`.
    /// Source 4 (and up) means the address the request was sent to.
    pub const RESPOND: u8 = 5;
    /// Number of ops.
    pub const OP_COUNT: u8 = 6;
}

/// Encode a RAW op (the shape `scripts/fuzz.sh` writes seeds in): `bytes` received from `source` (0 phone,
/// 1 PBX, 2 trunk, 3 stranger) over UDP, at most 65535 bytes of it.
pub fn raw_op(source: u8, bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len().min(u16::MAX as usize);
    let mut v = vec![op::RAW, source, 0, (len >> 8) as u8, (len & 0xff) as u8];
    v.extend_from_slice(&bytes[..len]);
    v
}
