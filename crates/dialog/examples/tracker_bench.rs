//! Deterministic micro-benchmark of the call tracker alone: allocations
//! per call inside [`CallTracker::on_message`] and the live heap per held
//! (answered, never ended) call, counted by a `#[global_allocator]`
//! wrapper around the system allocator. Run it under
//! `valgrind --tool=callgrind` for instruction counts; wall time is not
//! printed (the machine is shared).
//!
//! One call is the outbound call of `sipcti-core`'s `core_bench`: the
//! phone's INVITE (with P-Asserted-Identity), the trunk's 100, 180 and 200,
//! the phone's ACK, its BYE and the trunk's 200 to the BYE, each message
//! fed when [`affects_calls`] lets it through (as the proxy core does). The
//! clock advances 2 ms per call, so ended calls linger and are freed as in
//! production. Messages are parsed before counting starts.
//!
//! ```sh
//! cargo run --release -p sipcti-dialog --example tracker_bench [CALLS] [HOLD]
//! ```
//! Defaults: 20,000 calls, 10,000 held calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sipcti_dialog::{affects_calls, CallTracker, Side, TrackerConfig};
use sipcti_wire::{Limits, SipMessage};

/// Counts allocations while `COUNTING` is on; tracks live bytes always.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        LIVE.fetch_add(l.size(), Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        LIVE.fetch_add(new, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// `\n` line ends to CRLF, `Content-Length: 0` added.
fn sip(text: &str) -> SipMessage {
    let t = format!(
        "{}\r\nContent-Length: 0\r\n\r\n",
        text.replace('\n', "\r\n")
    );
    SipMessage::parse(t.into_bytes(), &Limits::default()).expect("bench message parses")
}

/// The messages of call `i`, in order, with the side each comes from.
fn call(i: u64) -> Vec<(SipMessage, Side)> {
    let from = format!("\"Alice\" <sip:201@192.0.2.10>;tag=ph{i}");
    let to = "<sip:0301234567@192.0.2.10>";
    let cid = format!("out{i}@10.0.0.20");
    let via = format!("SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-{i};rport");
    let req = |method: &str, cseq: u32, tag: Option<&str>, extra: &str| {
        let to = match tag {
            Some(t) => format!("{to};tag={t}"),
            None => to.to_string(),
        };
        sip(&format!(
            "{method} sip:0301234567@192.0.2.10 SIP/2.0\nVia: {via}\nMax-Forwards: 70\n\
             From: {from}\nTo: {to}\nCall-ID: {cid}\nCSeq: {cseq} {method}{extra}"
        ))
    };
    let resp = |status: &str, cseq: u32, method: &str, tag: Option<&str>| {
        let to = match tag {
            Some(t) => format!("{to};tag={t}"),
            None => to.to_string(),
        };
        sip(&format!(
            "SIP/2.0 {status}\nVia: {via}\nFrom: {from}\nTo: {to}\nCall-ID: {cid}\n\
             CSeq: {cseq} {method}\nContact: <sip:0301234567@203.0.113.5:5060>"
        ))
    };
    let tag = format!("tr{i}");
    let tag = Some(tag.as_str());
    vec![
        (
            req(
                "INVITE",
                1,
                None,
                "\nContact: <sip:201@10.0.0.20:5062>\n\
                 P-Asserted-Identity: \"Alice\" <sip:201@192.0.2.10>",
            ),
            Side::Inside,
        ),
        (resp("100 Trying", 1, "INVITE", None), Side::Trunk),
        (resp("180 Ringing", 1, "INVITE", tag), Side::Trunk),
        (resp("200 OK", 1, "INVITE", tag), Side::Trunk),
        (req("ACK", 1, tag, ""), Side::Inside),
        (req("BYE", 2, tag, ""), Side::Inside),
        (resp("200 OK", 2, "BYE", tag), Side::Trunk),
    ]
}

/// Feeds `msgs` at `now` as the proxy core does; returns the events' count.
fn feed(t: &mut CallTracker, msgs: &[(SipMessage, Side)], now: Instant) -> usize {
    let mut events = 0;
    for (m, side) in msgs {
        if affects_calls(m) {
            COUNTING.store(true, Relaxed);
            events += t.on_message(m, *side, now).len();
            COUNTING.store(false, Relaxed);
        }
    }
    events
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let hold: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut t = CallTracker::new(TrackerConfig {
        country_code: Some("49".into()),
        ..TrackerConfig::default()
    });
    let t0 = Instant::now();
    let mut events = 0;
    for i in 0..calls {
        let msgs = call(i);
        events += feed(&mut t, &msgs, t0 + Duration::from_millis(2 * i));
    }
    assert_eq!(events as u64, 3 * calls, "newCall, answer, hangup per call");
    let allocs = ALLOCS.load(Relaxed);
    println!("calls                {calls}");
    println!(
        "allocations per call {:.1}",
        allocs as f64 / calls.max(1) as f64
    );
    // every call so far freed: past the linger
    let later = t0 + Duration::from_millis(2 * calls) + Duration::from_secs(60);
    let _ = t.handle_timeout(later);
    let before = LIVE.load(Relaxed);
    for i in calls..calls + hold {
        let mut msgs = call(i);
        msgs.truncate(5); // up to the ACK: answered, held
        feed(&mut t, &msgs, later);
    }
    let grown = LIVE.load(Relaxed).saturating_sub(before);
    println!("held calls           {hold}");
    println!(
        "heap per held call   {} bytes",
        grown / usize::try_from(hold.max(1)).unwrap_or(1)
    );
}
