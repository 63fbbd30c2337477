//! Parse + validate + proxy-style edit throughput, messages per second.
//! Run: `cargo run --release -p sipcti-wire --example throughput`

use std::time::Instant;

use sipcti_wire::{Limits, SipMessage};

const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 141\r\n\
\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn main() {
    let limits = Limits::default();
    let n = 300_000u32;
    let start = Instant::now();
    let mut total = 0usize;
    for _ in 0..n {
        let m = SipMessage::parse(INVITE.as_bytes().to_vec(), &limits).expect("parse");
        m.validate().expect("valid");
        let mf = m.max_forwards().unwrap_or(70);
        let out = m
            .edit()
            .remove_first_value("Route")
            .insert_first("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
            .insert_first("Record-Route", "<sip:proxy.example.com;lr>")
            .set_max_forwards(mf.saturating_sub(1))
            .set_top_via_received(Some([192, 0, 2, 101].into()), Some(5060))
            .finish();
        total += out.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} INVITEs ({} bytes) parse+validate+edit in {secs:.3} s: {:.0} msg/s ({total} bytes out)",
        INVITE.len(),
        f64::from(n) / secs
    );
}
