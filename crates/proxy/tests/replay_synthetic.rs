//! `sipcti replay` on small captures written by the test itself (Ethernet/IPv4/UDP and
//! TCP in a classic pcap file): exact events for typical calls and the bad-input rules.

use std::path::Path;
use std::process::Command;

mod replay_support;

use replay_support::{inbound_answered, sip, Pcap, CONFIG, PHONE, SDP, T0, TRUNK};
use sipcti_proxy::config::Config;
use sipcti_proxy::replay::{jsonl_line, replay_captures, ReplayOptions, ReplayResult};

fn options() -> ReplayOptions {
    ReplayOptions::from_config(&Config::from_toml(CONFIG, None).unwrap())
}

fn lines(res: &ReplayResult) -> Vec<String> {
    res.events.iter().map(|e| jsonl_line(e, false)).collect()
}

#[test]
fn answered_inbound_call() {
    let mut p = Pcap::new();
    inbound_answered(&mut p, T0, "in-1@192.0.2.1");
    let res = replay_captures(&[p.write("answered-in.pcap")], &options());
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(
        lines(&res),
        [
            r#"{"event":"newCall","direction":"in","callId":"in-1@192.0.2.1","from":"4930123456","to":"4940111222","ts":1700000000.000000,"packet":1}"#,
            r#"{"event":"answer","direction":"in","callId":"in-1@192.0.2.1","from":"4930123456","to":"4940111222","answeringNumber":"100","ts":1700000005.000000,"packet":4}"#,
            r#"{"event":"hangup","direction":"in","callId":"in-1@192.0.2.1","from":"4930123456","to":"4940111222","answeringNumber":"100","cause":"normalClearing","ts":1700000065.000000,"packet":6}"#,
        ]
    );
    assert_eq!(res.stats.sip_messages, 7);
    assert_eq!(res.stats.calls, 1);
    let c = &res.calls[0];
    assert_eq!(c.ringing_secs(), Some(5.0));
    assert_eq!(c.talk_secs(), Some(60.0));
}

#[test]
fn cancelled_outbound_call() {
    let mut p = Pcap::new();
    let (f, t, cid) = ("100@10.0.0.10", "0301234567@192.0.2.1", "out-1@10.0.0.10");
    let inv = |start: &str, ttag, cseq: &str| {
        sip(
            start,
            "10.0.0.10",
            "z9hG4bKo1",
            f,
            "o1",
            t,
            ttag,
            cid,
            cseq,
            "",
            "",
        )
    };
    p.udp(
        T0,
        PHONE,
        TRUNK,
        &inv("INVITE sip:0301234567@192.0.2.1 SIP/2.0", None, "1 INVITE"),
    );
    p.udp(
        T0 + 50_000,
        TRUNK,
        PHONE,
        &inv("SIP/2.0 100 Trying", None, "1 INVITE"),
    );
    p.udp(
        T0 + 800_000,
        TRUNK,
        PHONE,
        &inv("SIP/2.0 180 Ringing", Some("t1"), "1 INVITE"),
    );
    p.udp(
        T0 + 9_000_000,
        PHONE,
        TRUNK,
        &inv("CANCEL sip:0301234567@192.0.2.1 SIP/2.0", None, "1 CANCEL"),
    );
    p.udp(
        T0 + 9_040_000,
        TRUNK,
        PHONE,
        &inv("SIP/2.0 200 OK", None, "1 CANCEL"),
    );
    p.udp(
        T0 + 9_050_000,
        TRUNK,
        PHONE,
        &inv("SIP/2.0 487 Request Terminated", Some("t1"), "1 INVITE"),
    );
    p.udp(
        T0 + 9_060_000,
        PHONE,
        TRUNK,
        &inv("ACK sip:0301234567@192.0.2.1 SIP/2.0", Some("t1"), "1 ACK"),
    );
    let res = replay_captures(&[p.write("cancel-out.pcap")], &options());
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(
        lines(&res),
        [
            r#"{"event":"newCall","direction":"out","callId":"out-1@10.0.0.10","from":"100","to":"49301234567","ts":1700000000.000000,"packet":1}"#,
            r#"{"event":"hangup","direction":"out","callId":"out-1@10.0.0.10","from":"100","to":"49301234567","cause":"cancel","ts":1700000009.050000,"packet":6}"#,
        ]
    );
}

#[test]
fn call_split_across_tcp_segments() {
    // The same inbound call over TCP: the INVITE split in three segments, 100 and 180
    // coalesced in one, the rest one per segment.
    let mut udp = Pcap::new();
    inbound_answered(&mut udp, T0, "tcp-1@192.0.2.1");
    let reference = replay_captures(&[udp.write("tcp-ref.pcap")], &options());

    let msgs: Vec<(bool, Vec<u8>)> = {
        // re-create the messages (from trunk = true)
        let (f, t, cid) = (
            "+4930123456@192.0.2.1",
            "040111222@10.0.0.1",
            "tcp-1@192.0.2.1",
        );
        let ct = "Contact: <sip:100@10.0.0.10;transport=tcp>\r\n";
        vec![
            (
                true,
                sip(
                    "INVITE sip:040111222@10.0.0.1;transport=tcp SIP/2.0",
                    "192.0.2.1",
                    "z9hG4bK1",
                    f,
                    "a1",
                    t,
                    None,
                    cid,
                    "1 INVITE",
                    "Content-Type: application/sdp\r\n",
                    SDP,
                ),
            ),
            (
                false,
                sip(
                    "SIP/2.0 100 Trying",
                    "192.0.2.1",
                    "z9hG4bK1",
                    f,
                    "a1",
                    t,
                    None,
                    cid,
                    "1 INVITE",
                    "",
                    "",
                ),
            ),
            (
                false,
                sip(
                    "SIP/2.0 180 Ringing",
                    "192.0.2.1",
                    "z9hG4bK1",
                    f,
                    "a1",
                    t,
                    Some("b1"),
                    cid,
                    "1 INVITE",
                    ct,
                    "",
                ),
            ),
            (
                false,
                sip(
                    "SIP/2.0 200 OK",
                    "192.0.2.1",
                    "z9hG4bK1",
                    f,
                    "a1",
                    t,
                    Some("b1"),
                    cid,
                    "1 INVITE",
                    ct,
                    "",
                ),
            ),
            (
                true,
                sip(
                    "ACK sip:100@10.0.0.10 SIP/2.0",
                    "192.0.2.1",
                    "z9hG4bK2",
                    f,
                    "a1",
                    t,
                    Some("b1"),
                    cid,
                    "1 ACK",
                    "",
                    "",
                ),
            ),
            (
                true,
                sip(
                    "BYE sip:100@10.0.0.10 SIP/2.0",
                    "192.0.2.1",
                    "z9hG4bK3",
                    f,
                    "a1",
                    t,
                    Some("b1"),
                    cid,
                    "2 BYE",
                    "",
                    "",
                ),
            ),
            (
                false,
                sip(
                    "SIP/2.0 200 OK",
                    "192.0.2.1",
                    "z9hG4bK3",
                    f,
                    "a1",
                    t,
                    Some("b1"),
                    cid,
                    "2 BYE",
                    "",
                    "",
                ),
            ),
        ]
    };
    let (tr, ph) = ("192.0.2.1:40000", PHONE);
    let mut p = Pcap::new();
    let (mut s_tr, mut s_ph) = (1000u32, 5000u32);
    p.tcp(T0 - 2000, tr, ph, s_tr - 1, true, b"");
    p.tcp(T0 - 1000, ph, tr, s_ph - 1, true, b"");
    let invite = &msgs[0].1;
    for (i, part) in [&invite[..17], &invite[17..200], &invite[200..]]
        .iter()
        .enumerate()
    {
        p.tcp(T0 + i as u64 * 10, tr, ph, s_tr, false, part);
        s_tr += part.len() as u32;
    }
    let both: Vec<u8> = [msgs[1].1.clone(), msgs[2].1.clone()].concat();
    p.tcp(T0 + 1_000_000, ph, tr, s_ph, false, &both);
    s_ph += both.len() as u32;
    let times = [5_000_000u64, 5_100_000, 65_000_000, 65_050_000];
    for ((from_trunk, m), dt) in msgs[3..].iter().zip(times) {
        if *from_trunk {
            p.tcp(T0 + dt, tr, ph, s_tr, false, m);
            s_tr += m.len() as u32;
        } else {
            p.tcp(T0 + dt, ph, tr, s_ph, false, m);
            s_ph += m.len() as u32;
        }
    }
    let res = replay_captures(&[p.write("tcp-split.pcap")], &options());
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(res.stats.sip_messages, 7, "{:?}", res.stats);
    assert_eq!(res.stats.unparseable, 0);
    let kinds =
        |r: &ReplayResult| -> Vec<String> { r.events.iter().map(|e| e.cti().to_json()).collect() };
    assert_eq!(kinds(&res), kinds(&reference));
    assert_eq!(res.events.len(), 3);
    // the INVITE was completed by the third segment (packet 5)
    assert_eq!(res.events[0].packet, 5);
}

#[test]
fn non_sip_payloads_are_counted_and_skipped() {
    let mut p = Pcap::new();
    p.udp(
        T0 - 3000,
        "10.0.0.10:4000",
        "192.0.2.1:4002",
        &[0x80, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5],
    );
    p.udp(
        T0 - 2000,
        "10.0.0.10:53000",
        "192.0.2.53:53",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
    );
    p.udp(T0 - 1000, "10.0.0.10:5060", "192.0.2.1:5060", b"\r\n\r\n");
    inbound_answered(&mut p, T0, "ns-1@192.0.2.1");
    p.udp(
        T0 + 70_000_000,
        "10.0.0.10:8000",
        "192.0.2.1:80",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let res = replay_captures(&[p.write("non-sip.pcap")], &options());
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(res.stats.non_sip, 3, "{:?}", res.stats);
    assert_eq!(res.stats.keepalives, 1);
    assert_eq!(res.stats.sip_messages, 7);
    assert_eq!(res.events.len(), 3);
    assert_eq!(res.events[0].packet, 4);
}

#[test]
fn unclassified_messages_are_skipped_unless_guessed() {
    let mut p = Pcap::new();
    let (a, b) = ("198.51.100.1:5060", "198.51.100.2:5060");
    let (f, t, cid) = ("200@198.51.100.1", "300@198.51.100.2", "x-1");
    p.udp(
        T0,
        a,
        b,
        &sip(
            "INVITE sip:300@198.51.100.2 SIP/2.0",
            "198.51.100.1",
            "z9hG4bKx",
            f,
            "f",
            t,
            None,
            cid,
            "1 INVITE",
            "",
            "",
        ),
    );
    p.udp(
        T0 + 1000,
        b,
        a,
        &sip(
            "SIP/2.0 486 Busy Here",
            "198.51.100.1",
            "z9hG4bKx",
            f,
            "f",
            t,
            Some("g"),
            cid,
            "1 INVITE",
            "",
            "",
        ),
    );
    let path = p.write("unclassified.pcap");
    let res = replay_captures(std::slice::from_ref(&path), &options());
    assert_eq!(res.stats.unclassified, 2);
    assert!(res.events.is_empty());
    let mut o = options();
    o.guess_sides = true;
    let res = replay_captures(&[path], &o);
    assert_eq!(res.stats.unclassified, 0);
    assert_eq!(
        lines(&res),
        [
            r#"{"event":"newCall","direction":"out","callId":"x-1","from":"200","to":"300","ts":1700000000.000000,"packet":1}"#,
            r#"{"event":"hangup","direction":"out","callId":"x-1","from":"200","to":"300","cause":"busy","ts":1700000000.001000,"packet":2}"#,
        ]
    );
}

#[test]
fn open_call_gets_a_synthetic_hangup() {
    let mut p = Pcap::new();
    inbound_answered(&mut p, T0, "open-1@192.0.2.1");
    // keep only INVITE .. ACK: cut the BYE and its 200 by rebuilding the capture
    let mut q = Pcap::new();
    let full = {
        let mut r = Pcap::new();
        inbound_answered(&mut r, T0, "open-1@192.0.2.1");
        r.buf
    };
    // records: walk 5 of them
    let mut off = 24;
    for _ in 0..5 {
        let len = u32::from_le_bytes(full[off + 8..off + 12].try_into().unwrap()) as usize;
        q.buf.extend_from_slice(&full[off..off + 16 + len]);
        off += 16 + len;
    }
    let res = replay_captures(&[q.write("open.pcap")], &options());
    let last = res.events.last().unwrap();
    assert!(last.synthetic);
    assert_eq!(last.packet, 5);
    assert!(
        jsonl_line(last, false).ends_with(
            r#""cause":"normalClearing","ts":1700000005.100000,"packet":5,"synthetic":true}"#
        ),
        "{}",
        jsonl_line(last, false)
    );
    let mut o = options();
    o.close_open_calls = false;
    let res = replay_captures(&[q.write("open.pcap")], &o);
    assert_eq!(res.events.len(), 2);
    assert!(res.calls[0].cause.is_none());
}

#[test]
fn truncated_capture_gives_complete_calls_an_error_and_exit_2() {
    let mut p = Pcap::new();
    inbound_answered(&mut p, T0, "trunc-1@192.0.2.1");
    inbound_answered(&mut p, T0 + 100_000_000, "trunc-2@192.0.2.1");
    // cut the file in the middle of packet 10 (the 2nd call's 180)
    let mut off = 24;
    for _ in 0..9 {
        let len = u32::from_le_bytes(p.buf[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + len;
    }
    p.buf.truncate(off + 40);
    let path = p.write("truncated.pcap");
    let res = replay_captures(std::slice::from_ref(&path), &options());
    assert_eq!(res.errors.len(), 1);
    assert_eq!(res.errors[0].packet, Some(10));
    let msg = res.errors[0].to_string();
    assert!(
        msg.contains("truncated.pcap") && msg.contains("packet 10"),
        "{msg}"
    );
    let ev: Vec<(String, String, bool)> = res
        .events
        .iter()
        .map(|e| {
            (
                e.event.call_id.clone(),
                e.event.kind.as_str().to_string(),
                e.synthetic,
            )
        })
        .collect();
    assert_eq!(
        ev,
        [
            ("trunc-1@192.0.2.1".into(), "newCall".into(), false),
            ("trunc-1@192.0.2.1".into(), "answer".into(), false),
            ("trunc-1@192.0.2.1".into(), "hangup".into(), false),
            ("trunc-2@192.0.2.1".into(), "newCall".into(), false),
            ("trunc-2@192.0.2.1".into(), "hangup".into(), true),
        ]
    );

    // the command line says so and exits with 2
    let cfg = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("replay-{}-sipcti.toml", std::process::id()));
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipcti"))
        .arg("replay")
        .arg(&path)
        .arg("--config")
        .arg(&cfg)
        .env_remove("SIPCTI_ZAMMAD_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(
        stderr.contains("truncated.pcap") && stderr.contains("packet 10"),
        "{stderr}"
    );

    // a good capture exits 0; a bad option 1
    let mut good = Pcap::new();
    inbound_answered(&mut good, T0, "ok-1@192.0.2.1");
    let gp = good.write("good.pcap");
    for fmt in ["jsonl", "table", "ladder"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sipcti"))
            .args(["replay", "--format", fmt, "--config"])
            .arg(&cfg)
            .arg(&gp)
            .env_remove("SIPCTI_ZAMMAD_URL")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{fmt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ok-1@192.0.2.1"), "{fmt}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sipcti"))
        .args(["replay", "--config", "/nonexistent/sipcti.toml"])
        .arg(&gp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
