//! Reads every real capture in `../shared/captures` (next to the workspace) and
//! checks facts cross-checked with tshark. Fails when the folder is absent
//! (it is present on every developer machine and in CI).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sipcti_capture::{CaptureReader, Datagram, Stats, Transport};

fn captures_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/captures"
    ));
    assert!(
        dir.is_dir(),
        "capture folder {} is absent: this test needs the shared data beside the repository (present on every developer machine and in CI)",
        dir.display()
    );
    Some(dir.to_path_buf())
}

struct Read {
    datagrams: Vec<Datagram>,
    stats: Stats,
}

fn read_all(path: &Path) -> Read {
    let mut reader =
        CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut datagrams = Vec::new();
    for item in reader.by_ref() {
        datagrams.push(item.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    Read {
        datagrams,
        stats: reader.stats().clone(),
    }
}

/// Concatenated TCP payload per direction.
fn tcp_streams(datagrams: &[Datagram]) -> BTreeMap<(SocketAddr, SocketAddr), Vec<u8>> {
    let mut streams: BTreeMap<_, Vec<u8>> = BTreeMap::new();
    for d in datagrams.iter().filter(|d| d.transport == Transport::Tcp) {
        streams
            .entry((d.src, d.dst))
            .or_default()
            .extend_from_slice(&d.payload);
    }
    streams
}

/// Counts SIP start lines: "SIP/2.0 NNN ..." and "METHOD uri SIP/2.0".
fn sip_start_lines(text: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(text);
    let mut status = 0;
    let mut requests = 0;
    for line in text.split("\r\n") {
        if line.starts_with("SIP/2.0 ") {
            status += 1;
        } else if line.ends_with(" SIP/2.0")
            && line.split(' ').count() == 3
            && line
                .split(' ')
                .next()
                .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            requests += 1;
        }
    }
    (status, requests)
}

fn load(name: &str) -> Option<Read> {
    captures_dir().map(|d| read_all(&d.join(name)))
}

#[test]
fn every_shared_capture_reads_without_error() {
    let Some(dir) = captures_dir() else { return };
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read capture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "pcap" | "pcapng" | "cap"))
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 20,
        "expected the shared captures, found {}",
        names.len()
    );
    for path in names {
        let r = read_all(&path);
        let udp = r
            .datagrams
            .iter()
            .filter(|d| d.transport == Transport::Udp)
            .count();
        let tcp_bytes: usize = r
            .datagrams
            .iter()
            .filter(|d| d.transport == Transport::Tcp)
            .map(|d| d.payload.len())
            .sum();
        eprintln!(
            "{:40} packets {:5}  datagrams {:5}  udp {:5}  tcp bytes {:7}  {:?}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            r.stats.packets,
            r.datagrams.len(),
            udp,
            tcp_bytes,
            r.stats
        );
        assert!(r.stats.packets > 0);
        assert_eq!(r.stats.udp as usize, udp);
        assert_eq!(r.stats.dropped_by_limit, 0);
        // Packet numbers never decrease for data produced while reading.
        assert!(r.datagrams.windows(2).all(|w| w[0].packet <= w[1].packet));
    }
}

#[test]
fn tcp_fragmented_stream_has_all_sip_messages() {
    let Some(r) = load("sip_ipv4_tcp_fragmented.pcap") else {
        return;
    };
    assert_eq!(r.stats.packets, 1542);
    assert_eq!(r.stats.tcp_segments, 1542);
    let streams = tcp_streams(&r.datagrams);
    // 4 connections, both directions, all picked up mid-way (no SYN in the file).
    assert_eq!(streams.len(), 8);
    let gaps = r.datagrams.iter().filter(|d| d.gap_before).count();
    assert_eq!(gaps, 8);
    assert_eq!(r.stats.tcp_gaps, 0);
    let total: usize = streams.values().map(Vec::len).sum();
    assert_eq!(total, 281_860); // sum of tcp.len per tshark, no retransmissions
    let (mut status, mut requests) = (0, 0);
    for s in streams.values() {
        let (st, rq) = sip_start_lines(s);
        status += st;
        requests += rq;
    }
    // tshark -d tcp.port==6060,sip: 223 responses + 183 requests (37 INVITE, 37 ACK, 34 BYE,
    // 63 UPDATE, 5 PRACK, 5 OPTIONS, 2 CANCEL).
    assert_eq!((status, requests), (223, 183));
    let all: Vec<u8> = streams.values().flatten().copied().collect();
    let text = String::from_utf8_lossy(&all);
    for method in ["INVITE ", "CANCEL ", "PRACK ", "UPDATE ", "BYE "] {
        assert!(text.contains(method), "{method}");
    }
    for code in ["SIP/2.0 487", "SIP/2.0 486", "SIP/2.0 403"] {
        assert!(text.contains(code), "{code}");
    }
}

#[test]
fn ipv6_udp_fragments_are_reassembled() {
    let Some(r) = load("ipv6_udp_fragmented.pcap") else {
        return;
    };
    assert_eq!(r.stats.ip_fragments, 4);
    assert_eq!(r.stats.reassembled_datagrams, 1);
    assert_eq!(r.stats.ip_fragments_invalid, 0);
    assert_eq!(r.stats.udp, 3);
    // 4 fragments of 1448+1448+1448+1043 = 5387 bytes: 8 UDP header + 5379 data.
    let big = r
        .datagrams
        .iter()
        .find(|d| d.packet == 6)
        .expect("reassembled at frame 6");
    assert_eq!(big.payload.len(), 5387 - 8);
    assert!(big.src.is_ipv6());

    let Some(r) = load("ipv6frag.pcap") else {
        return;
    };
    assert_eq!(r.stats.ip_fragments, 4);
    assert_eq!(r.stats.reassembled_datagrams, 2);
    assert_eq!(r.stats.udp, 32);
    let sip: Vec<String> = r
        .datagrams
        .iter()
        .filter_map(|d| {
            let t = String::from_utf8_lossy(&d.payload).into_owned();
            t.contains("SIP/2.0")
                .then(|| t.lines().next().unwrap_or("").to_string())
        })
        .collect();
    for needle in ["183", "PRACK", "UPDATE", "200", "BYE"] {
        assert!(
            sip.iter().any(|l| l.contains(needle)),
            "{needle} in {sip:?}"
        );
    }
}

#[test]
fn sll_capture_counts_tcp_retransmission() {
    let Some(r) = load("sip_ipv4_tcp_retrans.pcap") else {
        return;
    };
    // tshark: 196 frames, 181 TCP, 4 UDP, 9 VRRP, 2 ARP, one retransmission (frame 38).
    assert_eq!(r.stats.packets, 196);
    assert_eq!(r.stats.tcp_segments, 181);
    assert_eq!(r.stats.udp, 4);
    assert_eq!(r.stats.skipped_other, 9);
    assert_eq!(r.stats.skipped_non_ip, 2);
    assert_eq!(r.stats.tcp_retransmissions, 1);
    let tcp_bytes: usize = tcp_streams(&r.datagrams).values().map(Vec::len).sum();
    assert_eq!(tcp_bytes, 29_377 - 592); // tshark tcp.len sum minus the resent 592
}

#[test]
fn pcapng_nanosecond_timestamps_and_volume() {
    let Some(r) = load("sipp-branch-scenario.pcapng") else {
        return;
    };
    assert_eq!(r.stats.packets, 8989);
    assert_eq!(r.stats.udp, 8989);
    let bytes: usize = r.datagrams.iter().map(|d| d.payload.len()).sum();
    assert_eq!(bytes, 3_035_885);
    // tshark frame.time_epoch of frame 1: 1479419555.303348707
    assert_eq!(r.datagrams[0].ts, Duration::new(1_479_419_555, 303_348_707));
    assert!(r.datagrams.windows(2).all(|w| w[0].ts <= w[1].ts));
}

#[test]
fn tcp_call_and_pcap_microsecond_timestamps() {
    let Some(r) = load("sip-over-tcp.pcap") else {
        return;
    };
    assert_eq!(r.stats.tcp_segments, 16);
    let streams = tcp_streams(&r.datagrams);
    let all: Vec<u8> = streams.values().flatten().copied().collect();
    let (status, requests) = sip_start_lines(&all);
    assert!(status >= 3 && requests >= 3, "{status} {requests}");

    let Some(r) = load("sip_call.pcap") else {
        return;
    };
    assert_eq!(r.stats.udp, 7);
    assert_eq!(r.datagrams[0].ts, Duration::from_secs(1_700_000_000));
    let b2b = load("b2bua-asterisk.pcapng").expect("dir exists");
    assert_eq!(
        b2b.datagrams[0].ts,
        Duration::new(1_463_595_783, 881_485_000)
    );
}
