//! Captures built in code: file formats, link types, IP fragments and TCP
//! reassembly through [`CaptureReader`], truncation and corruption.

use std::net::SocketAddr;
use std::time::Duration;

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder, UdpHeader};
use sipcti_capture::{CaptureError, CaptureReader, Datagram, Limits, Stats, TcpLimits, Transport};

// ---------------------------------------------------------------- packets

const A4: [u8; 4] = [192, 168, 1, 10];
const B4: [u8; 4] = [192, 168, 1, 20];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn udp4(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(A4, B4, 64).udp(5060, 5080);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

fn udp6(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(A6, B6, 64).udp(5060, 5080);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[derive(Clone, Copy, Default)]
struct Flags {
    syn: bool,
    fin: bool,
    rst: bool,
}

const NONE: Flags = Flags {
    syn: false,
    fin: false,
    rst: false,
};
const SYN: Flags = Flags {
    syn: true,
    fin: false,
    rst: false,
};
const FIN: Flags = Flags {
    syn: false,
    fin: true,
    rst: false,
};
const RST: Flags = Flags {
    syn: false,
    fin: false,
    rst: true,
};

/// TCP segment A:5060 -> B:5080 (or reversed) over IPv4.
fn tcp4(reverse: bool, seq: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
    let (s, d, sp, dp) = if reverse {
        (B4, A4, 5080, 5060)
    } else {
        (A4, B4, 5060, 5080)
    };
    let mut b = PacketBuilder::ipv4(s, d, 64).tcp(sp, dp, seq, 65535);
    if flags.syn {
        b = b.syn();
    }
    if flags.fin {
        b = b.fin();
    }
    if flags.rst {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// IPv4 fragments of a UDP datagram carrying `payload`, `size` data bytes each.
fn udp4_fragments(payload: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let mut whole = UdpHeader::without_ipv4_checksum(5060, 5080, payload.len())
        .unwrap()
        .to_bytes()
        .to_vec();
    whole.extend_from_slice(payload);
    let mut out = Vec::new();
    for (i, part) in whole.chunks(size).enumerate() {
        let mut h = Ipv4Header::new(part.len() as u16, 64, IpNumber::UDP, A4, B4).unwrap();
        h.identification = id;
        h.more_fragments = (i + 1) * size < whole.len();
        h.fragment_offset = IpFragOffset::try_new((i * size / 8) as u16).unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(part);
        out.push(v);
    }
    out
}

/// IPv6 fragments (with a Destination Options header before the Fragment
/// header) of a UDP datagram carrying `payload`.
fn udp6_fragments(payload: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let mut whole = UdpHeader::without_ipv4_checksum(5060, 5080, payload.len())
        .unwrap()
        .to_bytes()
        .to_vec();
    whole.extend_from_slice(payload);
    let mut out = Vec::new();
    for (i, part) in whole.chunks(size).enumerate() {
        let more = (i + 1) * size < whole.len();
        let off = (i * size / 8) as u16;
        let mut body = vec![44, 0, 1, 4, 0, 0, 0, 0]; // dest opts: next=frag, PadN
        let bits = (off << 3) | u16::from(more);
        body.extend_from_slice(&[17, 0]);
        body.extend_from_slice(&bits.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(part);
        let h = Ipv6Header {
            payload_length: body.len() as u16,
            next_header: IpNumber(60),
            hop_limit: 64,
            source: A6,
            destination: B6,
            ..Default::default()
        };
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(&body);
        out.push(v);
    }
    out
}

// ---------------------------------------------------------------- link layers

fn eth(ip: &[u8], tags: &[u16]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let ethertype: u16 = if ip[0] >> 4 == 6 { 0x86DD } else { 0x0800 };
    for t in tags {
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0x00, 0x64]);
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(ip);
    v.extend_from_slice(&[0; 4]); // trailer / padding beyond the IP length
    v
}

fn sll(ip: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip[0] >> 4 == 6 { 0x86DD } else { 0x0800 };
    let mut v = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(ip);
    v
}

fn sll2(ip: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip[0] >> 4 == 6 { 0x86DD } else { 0x0800 };
    let mut v = ethertype.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
    v.extend_from_slice(ip);
    v
}

fn bsd(ip: &[u8], af: u32, big_endian: bool) -> Vec<u8> {
    let mut v = if big_endian {
        af.to_be_bytes().to_vec()
    } else {
        af.to_le_bytes().to_vec()
    };
    v.extend_from_slice(ip);
    v
}

// ---------------------------------------------------------------- files

fn pcap(linktype: u32, big_endian: bool, nanos: bool, records: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let w32 = |v: &mut Vec<u8>, x: u32| {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    let ver: [u16; 2] = [2, 4];
    for x in ver {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 65535);
    w32(&mut v, linktype);
    for (ts, data) in records {
        w32(&mut v, ts.as_secs() as u32);
        w32(
            &mut v,
            if nanos {
                ts.subsec_nanos()
            } else {
                ts.subsec_micros()
            },
        );
        w32(&mut v, data.len() as u32);
        w32(&mut v, data.len() as u32);
        v.extend_from_slice(data);
    }
    v
}

fn at(ms: u64) -> Duration {
    Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

fn pcap_le(linktype: u32, packets: &[Vec<u8>]) -> Vec<u8> {
    let recs: Vec<_> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| (at(i as u64), p.clone()))
        .collect();
    pcap(linktype, false, false, &recs)
}

/// pcapng writer (one section).
struct Ng {
    be: bool,
    data: Vec<u8>,
}

impl Ng {
    fn new(be: bool) -> Ng {
        let mut ng = Ng {
            be,
            data: Vec::new(),
        };
        let mut body = Vec::new();
        ng.put32(&mut body, 0x1A2B_3C4D);
        ng.put16(&mut body, 1);
        ng.put16(&mut body, 0);
        body.extend_from_slice(&[0xFF; 8]); // section length unknown
        ng.block(0x0A0D_0D0A, &body);
        ng
    }
    fn put32(&self, v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&if self.be {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }
    fn put16(&self, v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&if self.be {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }
    fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() & 3 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let mut v = Vec::new();
        self.put32(&mut v, btype);
        self.put32(&mut v, len);
        v.extend_from_slice(&body);
        self.put32(&mut v, len);
        self.data.extend_from_slice(&v);
    }
    fn option(&self, v: &mut Vec<u8>, code: u16, value: &[u8]) {
        self.put16(v, code);
        self.put16(v, value.len() as u16);
        v.extend_from_slice(value);
        while v.len() & 3 != 0 {
            v.push(0);
        }
    }
    fn idb(&mut self, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut body = Vec::new();
        self.put16(&mut body, linktype);
        self.put16(&mut body, 0);
        self.put32(&mut body, 0);
        if let Some(r) = tsresol {
            self.option(&mut body, 9, &[r]);
        }
        if let Some(o) = tsoffset {
            let bytes = if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            };
            self.option(&mut body, 14, &bytes);
        }
        if tsresol.is_some() || tsoffset.is_some() {
            self.option(&mut body, 0, &[]);
        }
        self.block(1, &body);
    }
    fn epb(&mut self, if_id: u32, units: u64, data: &[u8]) {
        let mut body = Vec::new();
        self.put32(&mut body, if_id);
        self.put32(&mut body, (units >> 32) as u32);
        self.put32(&mut body, units as u32);
        self.put32(&mut body, data.len() as u32);
        self.put32(&mut body, data.len() as u32);
        body.extend_from_slice(data);
        self.block(6, &body);
    }
    fn spb(&mut self, data: &[u8]) {
        let mut body = Vec::new();
        self.put32(&mut body, data.len() as u32);
        body.extend_from_slice(data);
        self.block(3, &body);
    }
}

// ---------------------------------------------------------------- helpers

fn read(bytes: Vec<u8>) -> (Vec<Datagram>, Stats) {
    read_with(bytes, Limits::default())
}

fn read_with(bytes: Vec<u8>, limits: Limits) -> (Vec<Datagram>, Stats) {
    let mut r = CaptureReader::from_bytes_with_limits(bytes, limits).expect("open");
    let mut out = Vec::new();
    for item in r.by_ref() {
        out.push(item.expect("no error"));
    }
    (out, r.stats().clone())
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

// ---------------------------------------------------------------- tests

#[test]
fn every_link_type_yields_the_udp_datagram() {
    let ip4 = udp4(b"hello v4");
    let ip6 = udp6(b"hello v6");
    let cases: Vec<(&str, u32, Vec<u8>, bool)> = vec![
        ("ethernet", 1, eth(&ip4, &[]), false),
        ("ethernet 802.1Q", 1, eth(&ip6, &[0x8100]), true),
        ("ethernet QinQ", 1, eth(&ip4, &[0x88A8, 0x8100]), false),
        (
            "ethernet 3 tags",
            1,
            eth(&ip6, &[0x88A8, 0x8100, 0x8100]),
            true,
        ),
        ("sll", 113, sll(&ip4), false),
        ("sll v6", 113, sll(&ip6), true),
        ("sll2", 276, sll2(&ip6), true),
        ("raw 101", 101, ip4.clone(), false),
        ("raw 101 v6", 101, ip6.clone(), true),
        ("raw 12", 12, ip4.clone(), false),
        ("raw 14", 14, ip6.clone(), true),
        ("ipv4 228", 228, ip4.clone(), false),
        ("ipv6 229", 229, ip6.clone(), true),
        ("null le", 0, bsd(&ip4, 2, false), false),
        ("null be v6", 0, bsd(&ip6, 30, true), true),
        ("null linux v6", 0, bsd(&ip6, 10, false), true),
        ("loop", 108, bsd(&ip4, 2, true), false),
        ("loop v6", 108, bsd(&ip6, 24, true), true),
    ];
    for (name, lt, frame, v6) in cases {
        let (d, s) = read(pcap_le(lt, &[frame]));
        assert_eq!(d.len(), 1, "{name}");
        assert_eq!(s.udp, 1, "{name}");
        let want = if v6 {
            &b"hello v6"[..]
        } else {
            &b"hello v4"[..]
        };
        assert_eq!(d[0].payload, want, "{name}");
        assert_eq!(d[0].transport, Transport::Udp);
        assert_eq!(d[0].src.port(), 5060);
        assert_eq!(d[0].dst.port(), 5080);
        assert_eq!(d[0].src.is_ipv6(), v6, "{name}");
        assert_eq!(d[0].packet, 1);
        assert!(!d[0].gap_before);
    }
}

#[test]
fn non_ip_and_other_protocols_are_counted() {
    let mut arp = vec![0xFF; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let icmp = {
        let b = PacketBuilder::ipv4(A4, B4, 64).icmpv4_echo_request(1, 1);
        let mut v = Vec::new();
        b.write(&mut v, b"ping").unwrap();
        v
    };
    // Cut by the snap length inside the UDP payload.
    let mut truncated_udp = eth(&udp4(b"0123456789"), &[]);
    truncated_udp.truncate(truncated_udp.len() - 4 - 3);
    let frames = vec![
        arp,
        eth(&icmp, &[]),
        truncated_udp,
        vec![1, 2, 3],
        eth(&udp4(b"ok"), &[]),
    ];
    let (d, s) = read(pcap_le(1, &frames));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].packet, 5);
    assert_eq!(s.packets, 5);
    assert_eq!(s.skipped_non_ip, 1);
    assert_eq!(s.skipped_other, 3);
}

#[test]
fn pcap_byte_orders_and_timestamp_precision() {
    let ts = Duration::new(1_600_000_123, 456_789_123);
    for (be, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
        let bytes = pcap(101, be, nanos, &[(ts, udp4(b"x"))]);
        let (d, _) = read(bytes);
        let want = if nanos {
            ts
        } else {
            Duration::new(1_600_000_123, 456_789_000)
        };
        assert_eq!(d[0].ts, want, "be={be} nanos={nanos}");
    }
}

#[test]
fn pcapng_interfaces_resolutions_offsets_and_spb() {
    for be in [false, true] {
        let mut ng = Ng::new(be);
        ng.idb(1, None, None); // Ethernet, microseconds
        ng.idb(101, Some(9), Some(100)); // raw IP, nanoseconds, +100 s
        ng.idb(147, None, None); // unsupported link type: skipped
        ng.idb(113, Some(0x80 | 10), Some(-50)); // SLL, 2^-10 s, -50 s
        ng.block(4, &[0; 8]); // name resolution block: ignored
        ng.epb(0, 1_700_000_000_250_000, &eth(&udp4(b"one"), &[]));
        ng.epb(1, 1_700_000_000_000_000_007, &udp4(b"two"));
        ng.epb(2, 5, &[0xAB; 20]);
        ng.epb(3, (1_700_000_000u64 << 10) | 512, &sll(&udp6(b"four")));
        ng.spb(&eth(&udp4(b"five"), &[]));
        ng.block(5, &[0; 16]); // interface statistics: ignored
        let (d, s) = read(ng.data);
        assert_eq!(s.packets, 5, "be={be}");
        assert_eq!(s.skipped_non_ip, 1);
        let got: Vec<(&[u8], u64, Duration)> =
            d.iter().map(|d| (&d.payload[..], d.packet, d.ts)).collect();
        assert_eq!(
            got,
            vec![
                (&b"one"[..], 1, Duration::new(1_700_000_000, 250_000_000)),
                (&b"two"[..], 2, Duration::new(1_700_000_100, 7)),
                (
                    &b"four"[..],
                    4,
                    Duration::new(1_700_000_000 - 50, 500_000_000)
                ),
                // SPBs have no timestamp: the previous packet's is used.
                (
                    &b"five"[..],
                    5,
                    Duration::new(1_700_000_000 - 50, 500_000_000)
                ),
            ],
            "be={be}"
        );
    }
}

#[test]
fn pcapng_new_section_resets_interfaces() {
    let mut ng = Ng::new(false);
    ng.idb(101, None, None);
    ng.epb(0, 1, &udp4(b"a"));
    let second = Ng::new(true);
    ng.data.extend_from_slice(&second.data);
    let mut s2 = Ng {
        be: true,
        data: Vec::new(),
    };
    s2.idb(1, None, None);
    s2.epb(0, 2, &eth(&udp4(b"b"), &[]));
    ng.data.extend_from_slice(&s2.data);
    let (d, _) = read(ng.data);
    assert_eq!(
        d.iter().map(|d| d.payload.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn truncated_pcap_yields_data_then_error_naming_the_packet() {
    let frames: Vec<Vec<u8>> = (0..3).map(|i| eth(&udp4(&[b'0' + i; 30]), &[])).collect();
    let full = pcap_le(1, &frames);
    let record = 16 + frames[2].len();
    // Cut inside the data of packet 3, then inside its record header.
    for cut in [10, record - 8] {
        let mut bytes = full.clone();
        bytes.truncate(full.len() - cut);
        let mut r = CaptureReader::from_bytes(bytes).unwrap();
        assert_eq!(r.next().unwrap().unwrap().packet, 1);
        assert_eq!(r.next().unwrap().unwrap().packet, 2);
        let err = r.next().unwrap().unwrap_err();
        assert!(
            matches!(err, CaptureError::Truncated { packet: 3 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("packet 3"), "{err}");
        assert!(r.next().is_none());
        assert!(r.next().is_none());
        assert_eq!(r.stats().packets, 2);
    }
    // Cut at a record boundary: a clean end.
    let mut bytes = full.clone();
    bytes.truncate(full.len() - record);
    let (d, _) = read(bytes);
    assert_eq!(d.len(), 2);
    // Cut inside the file header (pcap and pcapng).
    let err = CaptureReader::from_bytes(full[..10].to_vec()).unwrap_err();
    assert!(
        matches!(err, CaptureError::Truncated { packet: 0 }),
        "{err:?}"
    );
    let ng = Ng::new(false).data;
    let err = CaptureReader::from_bytes(ng[..20].to_vec()).unwrap_err();
    assert!(
        matches!(err, CaptureError::Truncated { packet: 0 }),
        "{err:?}"
    );
    let mut bad_bom = ng.clone();
    bad_bom[8] = 0;
    let err = CaptureReader::from_bytes(bad_bom).unwrap_err();
    assert!(
        matches!(err, CaptureError::Corrupt { packet: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn truncated_pcapng_flushes_tcp_then_errors() {
    let mut ng = Ng::new(false);
    ng.idb(101, None, None);
    ng.epb(0, 1, &tcp4(false, 100, SYN, b""));
    ng.epb(0, 2, &tcp4(false, 101, NONE, b"first "));
    ng.epb(0, 3, &tcp4(false, 120, NONE, b"after a hole")); // waits behind a gap
    ng.epb(0, 4, &udp4(b"last"));
    let mut bytes = ng.data;
    bytes.truncate(bytes.len() - 7);
    let mut r = CaptureReader::from_bytes(bytes).unwrap();
    let a = r.next().unwrap().unwrap();
    assert_eq!(
        (a.payload.as_slice(), a.gap_before),
        (&b"first "[..], false)
    );
    let b = r.next().unwrap().unwrap();
    assert_eq!(
        (b.payload.as_slice(), b.gap_before, b.packet),
        (&b"after a hole"[..], true, 3)
    );
    let err = r.next().unwrap().unwrap_err();
    assert!(
        matches!(err, CaptureError::Truncated { packet: 4 }),
        "{err:?}"
    );
    assert!(r.next().is_none());
}

#[test]
fn corrupt_and_unknown_files() {
    assert!(matches!(
        CaptureReader::from_bytes(b"GIF89a........................".to_vec()),
        Err(CaptureError::UnknownFormat)
    ));
    assert!(matches!(
        CaptureReader::from_bytes(Vec::new()),
        Err(CaptureError::UnknownFormat)
    ));
    assert!(matches!(
        CaptureReader::from_bytes(pcap_le(147, &[])),
        Err(CaptureError::UnsupportedLinkType { linktype: 147 })
    ));
    // A block length that is not a multiple of 4, at packet 2.
    let mut ng = Ng::new(false);
    ng.idb(101, None, None);
    ng.epb(0, 1, &udp4(b"ok"));
    let bad_at = ng.data.len();
    ng.epb(0, 2, &udp4(b"bad"));
    ng.data[bad_at + 4] = 0x3F;
    let mut r = CaptureReader::from_bytes(ng.data).unwrap();
    assert_eq!(r.next().unwrap().unwrap().payload, b"ok");
    let err = r.next().unwrap().unwrap_err();
    assert!(
        matches!(err, CaptureError::Corrupt { packet: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("packet 2"), "{err}");
    assert!(r.next().is_none());
    // A packet of an undeclared interface.
    let mut ng = Ng::new(false);
    ng.epb(0, 1, &udp4(b"x"));
    let mut r = CaptureReader::from_bytes(ng.data).unwrap();
    assert!(matches!(
        r.next(),
        Some(Err(CaptureError::Corrupt { packet: 1, .. }))
    ));
    // A pcap record larger than the limit.
    let mut bytes = pcap_le(101, &[udp4(b"x")]);
    bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut r = CaptureReader::from_bytes(bytes).unwrap();
    assert!(matches!(
        r.next(),
        Some(Err(CaptureError::Corrupt { packet: 1, .. }))
    ));
}

#[test]
fn ipv4_fragments_reassembled_through_the_reader() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 256) as u8).collect();
    let mut frags = udp4_fragments(&payload, 1480, 77);
    assert_eq!(frags.len(), 3);
    frags.swap(0, 2); // last first
    let mut frames: Vec<Vec<u8>> = frags.iter().map(|f| eth(f, &[0x8100])).collect();
    frames.insert(1, eth(&udp4(b"in between"), &[]));
    let (d, s) = read(pcap_le(1, &frames));
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].payload, b"in between");
    assert_eq!(d[1].payload, payload);
    assert_eq!(d[1].packet, 4);
    assert_eq!((d[1].src, d[1].dst), (addr(A4, 5060), addr(B4, 5080)));
    assert_eq!(s.ip_fragments, 3);
    assert_eq!(s.reassembled_datagrams, 1);
    assert_eq!(s.udp, 2);
}

#[test]
fn ipv6_fragments_reassembled_through_the_reader() {
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 3 % 256) as u8).collect();
    let mut frags = udp6_fragments(&payload, 1232, 0xCAFE_0001);
    frags.swap(0, 1);
    let frames: Vec<Vec<u8>> = frags.iter().map(|f| sll(f)).collect();
    let (d, s) = read(pcap_le(113, &frames));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].payload, payload);
    assert!(d[0].src.is_ipv6());
    assert_eq!(s.reassembled_datagrams, 1);
}

#[test]
fn incomplete_fragments_expire_and_are_counted() {
    let frags = udp4_fragments(&[7u8; 2000], 1480, 5);
    let recs = vec![
        (at(0), frags[0].clone()),
        (at(40_000), udp4(b"later")),
        (at(40_001), frags[1].clone()), // too late: its first half expired
    ];
    let (d, s) = read(pcap(101, false, false, &recs));
    assert_eq!(d.len(), 1);
    assert_eq!(s.ip_fragments, 2);
    assert_eq!(s.reassembled_datagrams, 0);
    // One expired by the timeout, the orphan second half at the end.
    assert_eq!(s.ip_fragments_expired, 2);
}

#[test]
fn tcp_stream_reassembled_through_the_reader() {
    let frames = vec![
        tcp4(false, 1000, SYN, b""),
        tcp4(true, 5000, SYN, b""),
        tcp4(false, 1001, NONE, b"INVITE sip:b SIP/2.0\r\n"),
        tcp4(false, 1036, NONE, b"Content-Length: 0\r\n\r\n"), // out of order
        tcp4(false, 1023, NONE, b"Via: x\r\nCSeq:"),           // fills the hole
        tcp4(false, 1001, NONE, b"INVITE sip:b SIP/2.0\r\n"),  // retransmission
        tcp4(true, 5001, NONE, b"SIP/2.0 100 Trying\r\n\r\n"),
        tcp4(false, 1057, FIN, b""),
        tcp4(false, 1057, NONE, b"late junk"), // after FIN: ignored
    ];
    let (d, s) = read(pcap_le(101, &frames));
    let fwd: Vec<u8> = d
        .iter()
        .filter(|d| d.src == addr(A4, 5060))
        .flat_map(|d| d.payload.clone())
        .collect();
    assert_eq!(
        String::from_utf8(fwd).unwrap(),
        "INVITE sip:b SIP/2.0\r\nVia: x\r\nCSeq:Content-Length: 0\r\n\r\n"
    );
    assert_eq!(d.len(), 3);
    assert_eq!(d[1].packet, 5); // completed by packet 5
    assert_eq!(d[2].payload, b"SIP/2.0 100 Trying\r\n\r\n");
    assert_eq!((d[2].src, d[2].dst), (addr(B4, 5080), addr(A4, 5060)));
    assert!(d
        .iter()
        .all(|d| d.transport == Transport::Tcp && !d.gap_before));
    assert_eq!(s.tcp_segments, 9);
    assert_eq!(s.tcp_out_of_order, 1);
    assert_eq!(s.tcp_retransmissions, 2);
    assert_eq!(s.tcp_gaps, 0);
}

#[test]
fn tcp_lost_segment_is_skipped_after_the_gap_timeout() {
    let recs = vec![
        (at(0), tcp4(false, 1, NONE, b"AAAA")),
        (at(100), tcp4(false, 9, NONE, b"CCCC")), // bytes 5..9 never captured
        (at(200), udp4(b"u1")),
        (at(6_000), udp4(b"u2")), // 5 s later: the hole is skipped here
        (at(6_100), tcp4(false, 13, NONE, b"DDDD")),
    ];
    let (d, s) = read(pcap(101, false, false, &recs));
    let summary: Vec<(u64, bool, Vec<u8>)> = d
        .iter()
        .map(|d| (d.packet, d.gap_before, d.payload.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, true, b"AAAA".to_vec()), // picked up mid-way
            (3, false, b"u1".to_vec()),
            (4, true, b"CCCC".to_vec()),
            (4, false, b"u2".to_vec()),
            (5, false, b"DDDD".to_vec()),
        ]
    );
    assert_eq!(s.tcp_gaps, 1);
}

#[test]
fn tcp_rst_ends_both_directions() {
    let frames = vec![
        tcp4(false, 10, SYN, b""),
        tcp4(true, 70, SYN, b""),
        tcp4(true, 71, NONE, b"resp"),
        tcp4(true, 80, NONE, b"behind hole"),
        tcp4(false, 11, RST, b""),
        tcp4(true, 75, NONE, b"more"), // after RST: ignored
    ];
    let (d, _) = read(pcap_le(101, &frames));
    let got: Vec<(bool, &[u8], u64)> = d
        .iter()
        .map(|d| (d.gap_before, &d.payload[..], d.packet))
        .collect();
    assert_eq!(
        got,
        vec![(false, &b"resp"[..], 3), (true, &b"behind hole"[..], 5)]
    );
}

#[test]
fn tcp_limits_bound_memory_and_count() {
    let limits = Limits {
        tcp: TcpLimits {
            max_pending_bytes: 64,
            max_pending_segments: 8,
            gap_timeout: Duration::from_secs(60),
        },
        max_tcp_flows: 4,
        max_tcp_pending_bytes_total: 100,
        ..Limits::default()
    };
    let mut frames = Vec::new();
    for port in 0..20u16 {
        let b = PacketBuilder::ipv4(A4, B4, 64).tcp(10_000 + port, 5060, 1, 1000);
        let mut v = Vec::new();
        b.write(&mut v, b"0123456789").unwrap();
        frames.push(v);
        // Data behind a hole on every flow.
        let b = PacketBuilder::ipv4(A4, B4, 64).tcp(10_000 + port, 5060, 100, 1000);
        let mut v = Vec::new();
        b.write(&mut v, &[b'x'; 40]).unwrap();
        frames.push(v);
    }
    let (d, s) = read_with(pcap_le(101, &frames), limits);
    let bytes: usize = d.iter().map(|d| d.payload.len()).sum();
    assert_eq!(bytes, 20 * 50, "nothing readable is lost");
    assert!(s.dropped_by_limit > 0);
    assert_eq!(s.tcp_segments, 40);
}

/// Deterministic pseudo-random corruption of valid captures: the reader must
/// neither panic nor loop, and must end with `None`.
#[test]
fn mutated_captures_never_panic() {
    let mut frames = Vec::new();
    for i in 0..6u32 {
        frames.push(eth(&tcp4(false, 1 + i * 10, NONE, &[b'a'; 10]), &[0x8100]));
        frames.push(eth(&udp6(b"v6 datagram"), &[]));
    }
    for f in udp4_fragments(&[9u8; 1500], 512, 3) {
        frames.push(eth(&f, &[]));
    }
    for f in udp6_fragments(&[8u8; 1500], 512, 3) {
        frames.push(eth(&f, &[]));
    }
    let pcap_file = pcap_le(1, &frames);
    let mut ng = Ng::new(false);
    ng.idb(1, Some(9), None);
    for (i, f) in frames.iter().enumerate() {
        ng.epb(0, i as u64, f);
    }
    let mut seed: u64 = 0x1234_5678;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    for base in [pcap_file, ng.data] {
        for _ in 0..400 {
            let mut bytes = base.clone();
            for _ in 0..(1 + rand() % 8) {
                let i = rand() % bytes.len();
                bytes[i] = rand() as u8;
            }
            if rand() % 4 == 0 {
                let keep = rand() % bytes.len();
                bytes.truncate(keep);
            }
            if let Ok(r) = CaptureReader::from_bytes(bytes) {
                let mut errors = 0;
                let mut n = 0;
                for item in r {
                    n += 1;
                    errors += usize::from(item.is_err());
                    assert!(n < 10_000);
                }
                assert!(errors <= 1);
            }
        }
    }
}
