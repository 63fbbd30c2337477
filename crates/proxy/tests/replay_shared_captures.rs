//! The captures in `../shared/captures/` (real traffic recorded elsewhere) are all read
//! without error or panic; per-file counts of SIP messages and calls are printed
//! (`cargo test -p sipcti-proxy --test replay_shared_captures -- --nocapture`, or
//! `scripts/read-shared-captures.sh`). The folder being absent is said and passes.
//!
//! No configured network matches these captures, so they are replayed with
//! `guess_sides` (`--guess-sides`): the sender of each call's INVITE is the inside
//! party, every call is `out`.
//!
//! The facts asserted were checked by hand with tshark
//! (`tshark -r FILE -Y sip | wc -l` for the UDP files; for TCP, the number of
//! `sip.Method` + `sip.Status-Code` values, with `-d tcp.port==6060,sip` for
//! sip_ipv4_tcp_fragmented.pcap).

use std::path::{Path, PathBuf};

use sipcti_event::Cause;
use sipcti_proxy::replay::{replay_captures, ReplayOptions, ReplayResult};

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures")
}

fn opts() -> ReplayOptions {
    ReplayOptions {
        guess_sides: true,
        ..ReplayOptions::default()
    }
}

/// SIP messages per file as tshark counts them.
const TSHARK_SIP_MESSAGES: &[(&str, u64)] = &[
    ("Asterisk_ZFONE_XLITE.pcap", 27),
    ("SIP_DTMF2.cap", 29),
    ("aaa.pcap", 81),
    ("b2bua-asterisk.pcapng", 60),
    ("invalid-content-length.pcap", 2),
    ("ipv6frag.pcap", 32),
    ("register-invite-reinvite-bye.pcap", 12),
    ("sip-488-codec-reject.pcapng", 13),
    ("sip-auth-failure.pcapng", 8),
    ("sip-junk-before-request.pcap", 1),
    ("sip-long-request-response-paths.pcap", 2),
    ("sip-over-tcp.pcap", 7),
    ("sip-proxy.pcap", 11),
    ("sip-routing-error.pcapng", 58),
    ("sip-sdp-example.pcap", 7),
    ("sip_call.pcap", 7),
    ("sip_ipv4_tcp_fragmented.pcap", 406),
    ("sip_ipv4_tcp_retrans.pcap", 8),
    ("sip_ipv6_udp.pcap", 6),
    ("sipp-branch-scenario.pcapng", 8989),
];

#[test]
fn all_shared_captures_are_read() {
    let dir = shared_dir();
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "shared captures folder {}: {e}: this test needs the shared data beside the repository (present on every developer machine and in CI)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    let mut results: Vec<(String, ReplayResult)> = vec![];
    println!(
        "{:<40} {:>8} {:>9} {:>7} {:>6} {:>7}",
        "file", "packets", "SIP msgs", "bad", "calls", "events"
    );
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let res = replay_captures(std::slice::from_ref(f), &opts());
        println!(
            "{:<40} {:>8} {:>9} {:>7} {:>6} {:>7}",
            name,
            res.stats.packets,
            res.stats.sip_messages,
            res.stats.unparseable,
            res.stats.calls,
            res.stats.events
        );
        assert!(res.errors.is_empty(), "{name}: {:?}", res.errors);
        results.push((name, res));
    }
    let get = |n: &str| results.iter().find(|(name, _)| name == n).map(|(_, r)| r);
    for (name, want) in TSHARK_SIP_MESSAGES {
        if let Some(r) = get(name) {
            assert_eq!(
                r.stats.sip_messages, *want,
                "{name}: SIP messages vs tshark"
            );
        }
    }
    if let Some(r) = get("sip_call.pcap") {
        assert_eq!(r.calls.len(), 1);
        let c = &r.calls[0];
        assert_eq!((c.from.as_str(), c.to.as_str()), ("1001", "1002"));
        assert!(c.answered.is_some());
        assert_eq!(c.cause, Some(Cause::NormalClearing));
        assert!(!c.synthetic_end);
        assert_eq!(r.events.len(), 3);
    }
    for n in [
        "sip-over-tcp.pcap",
        "sip-proxy.pcap",
        "sip-sdp-example.pcap",
        "register-invite-reinvite-bye.pcap",
    ] {
        if let Some(r) = get(n) {
            // one call, seen on one or both legs, answered and ended by BYE
            assert_eq!(r.calls.len(), 1, "{n}");
            assert!(r.calls[0].answered.is_some(), "{n}");
            assert_eq!(r.calls[0].cause, Some(Cause::NormalClearing), "{n}");
            assert!(!r.calls[0].synthetic_end, "{n}");
        }
    }
    if let Some(r) = get("sip-routing-error.pcapng") {
        // INVITEs answered 404 (480 on the other leg comes after the call ended)
        assert!(
            r.calls.iter().all(|c| c.cause == Some(Cause::NotFound)),
            "{:?}",
            r.calls
        );
    }
    if let Some(r) = get("sip_ipv6_udp.pcap") {
        // Its INVITE, ACK and BYE carry IPv6 hosts without brackets (not RFC 3261
        // syntax): the live proxy rejects them, so no call.
        assert_eq!(r.stats.unparseable, 3);
        assert_eq!(r.calls.len(), 0);
    }
    if let Some(r) = get("invalid-content-length.pcap") {
        assert_eq!(r.stats.unparseable, 2);
    }
}
