//! Shared helpers of the replay tests: a tiny pcap writer (classic pcap, Ethernet,
//! IPv4, UDP / TCP) and SIP message builders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const TRUNK: &str = "192.0.2.1:5060";
pub const PHONE: &str = "10.0.0.10:5060";
pub const T0: u64 = 1_700_000_000_000_000;

/// Configuration matching [`TRUNK`] and [`PHONE`].
pub const CONFIG: &str = r#"
[sip]
listen = "10.0.0.1:5060"
[trunk]
uri = "sip:192.0.2.1:5060"
[inside]
networks = ["10.0.0.0/24"]
target = "sip:10.0.0.10:5060"
[numbers]
country_code = "49"
"#;

/// A tiny pcap writer: global header + records of Ethernet/IPv4/UDP or TCP frames.
pub struct Pcap {
    pub buf: Vec<u8>,
}

pub fn ip_port(s: &str) -> ([u8; 4], u16) {
    let a: std::net::SocketAddrV4 = s.parse().unwrap();
    (a.ip().octets(), a.port())
}

impl Pcap {
    pub fn new() -> Pcap {
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        Pcap { buf }
    }

    pub fn record(&mut self, ts_us: u64, frame: &[u8]) {
        let b = &mut self.buf;
        b.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(frame);
    }

    pub fn ip_frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let mut sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let ck = !(sum as u16);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    pub fn udp(&mut self, ts_us: u64, src: &str, dst: &str, payload: &[u8]) -> &mut Self {
        let (sa, sp) = ip_port(src);
        let (da, dp) = ip_port(dst);
        let mut u = Vec::new();
        u.extend_from_slice(&sp.to_be_bytes());
        u.extend_from_slice(&dp.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        self.record(ts_us, &Self::ip_frame(sa, da, 17, &u));
        self
    }

    pub fn tcp(
        &mut self,
        ts_us: u64,
        src: &str,
        dst: &str,
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> &mut Self {
        let (sa, sp) = ip_port(src);
        let (da, dp) = ip_port(dst);
        let mut t = Vec::new();
        t.extend_from_slice(&sp.to_be_bytes());
        t.extend_from_slice(&dp.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes());
        t.push(5 << 4);
        t.push(if syn { 0x02 } else { 0x18 });
        t.extend_from_slice(&65535u16.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(payload);
        self.record(ts_us, &Self::ip_frame(sa, da, 6, &t));
        self
    }

    pub fn write(&self, name: &str) -> PathBuf {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("replay-{}-{name}", std::process::id()));
        std::fs::write(&p, &self.buf).unwrap();
        p
    }
}

/// A SIP message: start line, the usual headers, optional body.
#[allow(clippy::too_many_arguments)]
pub fn sip(
    start: &str,
    via_host: &str,
    branch: &str,
    from: &str,
    ftag: &str,
    to: &str,
    ttag: Option<&str>,
    cid: &str,
    cseq: &str,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let tt = ttag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{start}\r\nVia: SIP/2.0/UDP {via_host};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag={ftag}\r\nTo: <sip:{to}>{tt}\r\nCall-ID: {cid}\r\nCSeq: {cseq}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.10\r\ns=-\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// An inbound call from +49 30 123456 to 040 111222, answered by the phone, hung up by
/// the trunk. Messages at t0 + 0, 0.1, 1, 5, 5.1, 65, 65.05 s.
pub fn inbound_answered(p: &mut Pcap, t0: u64, cid: &str) {
    let (f, t) = ("+4930123456@192.0.2.1", "040111222@10.0.0.1");
    let ct = "Contact: <sip:100@10.0.0.10>\r\n";
    p.udp(
        t0,
        TRUNK,
        PHONE,
        &sip(
            "INVITE sip:040111222@10.0.0.1 SIP/2.0",
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
    );
    p.udp(
        t0 + 100_000,
        PHONE,
        TRUNK,
        &sip(
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
    );
    p.udp(
        t0 + 1_000_000,
        PHONE,
        TRUNK,
        &sip(
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
    );
    p.udp(
        t0 + 5_000_000,
        PHONE,
        TRUNK,
        &sip(
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
    );
    p.udp(
        t0 + 5_100_000,
        TRUNK,
        PHONE,
        &sip(
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
    );
    p.udp(
        t0 + 65_000_000,
        TRUNK,
        PHONE,
        &sip(
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
    );
    p.udp(
        t0 + 65_050_000,
        PHONE,
        TRUNK,
        &sip(
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
    );
}
