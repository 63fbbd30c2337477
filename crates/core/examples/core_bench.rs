//! Deterministic micro-benchmark of the sans-IO proxy core (issue 11):
//! allocations and bytes allocated per call, and the live heap per held
//! dialog, counted by a `#[global_allocator]` wrapper around the system
//! allocator. Wall time per call is printed too, for information only (the
//! machine is shared: compare allocation counts, not nanoseconds).
//!
//! One call is the outbound UDP call of `crates/core/tests/core_proxy.rs`:
//! the phone's INVITE (100 Trying back, `newCall` answered `Continue`), the
//! trunk's 100, 180 and 200 (relayed to the phone), the phone's ACK, its
//! BYE and the trunk's 200 to the BYE. Each call has its own Call-ID, tags
//! and branches; the virtual clock advances 2 ms per call (500 calls/s) and
//! the core's timers run at their deadlines, so finished transactions are
//! freed as in production (`wait` 5 s: ~2,500 calls' transactions linger).
//! Only the core's own work is counted: building the input messages and
//! reading the outputs (the harness) are not.
//!
//! Then `HOLD` answered calls (ACKed, no BYE) are left open and the
//! timers run past every transaction's end: the live heap growth divided by
//! `HOLD` is the heap per held dialog (the tracker's call, the caller-id
//! state, the per-source counters; the target is at most 4 KiB).
//!
//! ```sh
//! cargo run --release -p sipcti-core --example core_bench [CALLS] [HOLD]
//! ```
//! Defaults: 20,000 calls, 10,000 held dialogs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sipcti_core::{CoreConfig, CtiAnswer, Hop, Output, ProxyCore, SourceLimits, Target};
use sipcti_dialog::TrackerConfig;
use sipcti_wire::{Limits, SipMessage, TransportKind};

/// Counts allocations while `COUNTING` is on; tracks live bytes always.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(l.size() as u64, Relaxed);
        }
        LIVE.fetch_add(l.size(), Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(l.size() as u64, Relaxed);
        }
        LIVE.fetch_add(l.size(), Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            BYTES.fetch_add(new as u64, Relaxed);
        }
        LIVE.fetch_add(new, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

const PROXY: &str = "192.0.2.10:5060";
const TRUNK: &str = "203.0.113.5:5060";
const PHONE: &str = "10.0.0.20:5062";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// The production defaults where they matter (topology hiding on, `wait`
/// 5 s, 100,000 transactions); per-source limits opened up, since one
/// phone places every call.
fn config() -> CoreConfig {
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
            target: Target::Addr(addr("10.0.0.2:5060")),
            transport: TransportKind::Udp,
            hostport: "10.0.0.2".into(),
        },
        limits: Limits::default(),
        t1: Duration::from_millis(500),
        timer_c: Duration::from_secs(180),
        newcall_wait: Duration::from_millis(3500),
        max_transactions: 100_000,
        inside_ip: addr(PROXY).ip(),
        trunk_ip: addr(PROXY).ip(),
        wait: Duration::from_secs(5),
        tracker: TrackerConfig::default(),
        sources: SourceLimits {
            inside_rate_per_s: 1_000_000,
            inside_burst: 1_000_000,
            max_transactions_per_source: 100_000,
            ..SourceLimits::default()
        },
        registration: Default::default(),
        topology: Default::default(),
    }
}

/// `\n` line ends to CRLF, `Content-Length` filled in.
fn sip(text: &str) -> Vec<u8> {
    let t = text.replace('\n', "\r\n");
    let (head, body) = t.split_once("\r\n\r\n").expect("blank line");
    format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn invite(i: u64) -> Vec<u8> {
    sip(&format!(
        "INVITE sip:0301234567@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-{i};rport
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph{i}
To: <sip:0301234567@192.0.2.10>
Call-ID: out{i}@10.0.0.20
CSeq: 1 INVITE
Contact: <sip:201@10.0.0.20:5062>
P-Asserted-Identity: \"Alice\" <sip:201@192.0.2.10>
Content-Type: application/sdp

v=0
o=- 1 1 IN IP4 10.0.0.20
s=-
c=IN IP4 10.0.0.20
t=0 0
m=audio 4000 RTP/AVP 0
"
    ))
}

/// The trunk's answer to a forwarded request (`req`: its bytes as sent).
fn reply(req: &[u8], status: &str, to_tag: &str) -> Vec<u8> {
    let m = SipMessage::parse(req.to_vec(), &Limits::default()).expect("forwarded parses");
    let mut o = format!("SIP/2.0 {status}\n");
    for v in m.header_values("Via") {
        o.push_str(&format!("Via: {v}\n"));
    }
    for rr in m.header_values("Record-Route") {
        o.push_str(&format!("Record-Route: {rr}\n"));
    }
    let to = m.header("To").expect("To");
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag={to_tag}")
    };
    o.push_str(&format!(
        "From: {}\nTo: {to}\nCall-ID: {}\nCSeq: {}\nContact: <sip:0301234567@203.0.113.5:5060>\n\n",
        m.header("From").expect("From"),
        m.call_id().expect("Call-ID"),
        m.header("CSeq").expect("CSeq"),
    ));
    sip(&o)
}

fn in_dialog(method: &str, i: u64, cseq: u32) -> Vec<u8> {
    sip(&format!(
        "{method} sip:0301234567@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-{method}-{i};rport
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph{i}
To: <sip:0301234567@192.0.2.10>;tag=tr{i}
Call-ID: out{i}@10.0.0.20
CSeq: {cseq} {method}

"
    ))
}

struct Bench {
    core: ProxyCore,
    t0: Instant,
    /// Virtual time, ms after `t0`.
    ms: u64,
    /// Wall time spent inside the core.
    wall: Duration,
}

impl Bench {
    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    /// Run `f` on the core and drain its outputs, counting allocations.
    fn core<F: FnOnce(&mut ProxyCore, Instant)>(&mut self, f: F) -> Vec<Output> {
        let now = self.now();
        let start = Instant::now();
        COUNTING.store(true, Relaxed);
        f(&mut self.core, now);
        let mut out = Vec::with_capacity(8);
        while let Some(o) = self.core.poll_output() {
            out.push(o);
        }
        COUNTING.store(false, Relaxed);
        self.wall += start.elapsed();
        out
    }

    fn recv(&mut self, data: Vec<u8>, src: &str) -> Vec<Output> {
        let src = addr(src);
        self.core(|c, now| c.handle_received(now, data, src, TransportKind::Udp))
    }

    /// Advance the virtual clock to `ms`, running every timer due on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.t0 + Duration::from_millis(ms);
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            let _ = self.core(|c, _| c.handle_timeout(t));
        }
        self.ms = ms;
    }

    /// One outbound call up to the ACK; with `hang_up` also the BYE and its 200.
    fn call(&mut self, i: u64, hang_up: bool) {
        let out = self.recv(invite(i), PHONE);
        let token = out
            .iter()
            .find_map(|o| match o {
                Output::NewCall { token, .. } => Some(*token),
                _ => None,
            })
            .expect("newCall");
        let out = self.core(|c, now| c.handle_cti_answer(now, token, CtiAnswer::Continue));
        let fwd = sent(&out, 1);
        let tag = format!("tr{i}");
        for status in ["100 Trying", "180 Ringing", "200 OK"] {
            let r = reply(&fwd, status, &tag);
            let out = self.recv(r, TRUNK);
            if status != "100 Trying" {
                sent(&out, 1);
            }
        }
        let out = self.recv(in_dialog("ACK", i, 1), PHONE);
        sent(&out, 1);
        if hang_up {
            let out = self.recv(in_dialog("BYE", i, 2), PHONE);
            let bye = sent(&out, 1);
            let out = self.recv(reply(&bye, "200 OK", &tag), TRUNK);
            sent(&out, 1);
        }
    }
}

/// The data of the only transmit of `out` (`n` transmits expected).
fn sent(out: &[Output], n: usize) -> Vec<u8> {
    let t: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t.data.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(t.len(), n, "transmits: {out:?}");
    t.into_iter().next().unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let hold: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut b = Bench {
        core: ProxyCore::new(config()),
        t0: Instant::now(),
        ms: 0,
        wall: Duration::ZERO,
    };
    // warm-up: the tables reach their working size
    for i in 0..2_000 {
        b.call(i, true);
        b.advance(b.ms + 2);
    }
    b.advance(b.ms + 60_000);
    ALLOCS.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    b.wall = Duration::ZERO;
    for i in 0..calls {
        b.call(1_000_000 + i, true);
        b.advance(b.ms + 2);
    }
    b.advance(b.ms + 60_000);
    let (allocs, bytes) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    let n = calls.max(1) as f64;
    println!("calls                {calls}");
    println!("allocations per call {:.1}", allocs as f64 / n);
    println!("bytes alloc per call {:.0}", bytes as f64 / n);
    println!(
        "ns per call (wall)   {:.0}  (informative only)",
        b.wall.as_nanos() as f64 / n
    );
    assert_eq!(b.core.transactions(), (0, 0), "transactions left");

    let live_before = LIVE.load(Relaxed);
    for i in 0..hold {
        b.call(2_000_000 + i, false);
        b.advance(b.ms + 2);
    }
    // past every transaction's end (wait, Timer C is gone with the 200)
    b.advance(b.ms + 60_000);
    assert_eq!(b.core.transactions(), (0, 0), "transactions left");
    let live_after = LIVE.load(Relaxed);
    println!("held dialogs         {hold}");
    println!(
        "heap per held dialog {:.0} bytes",
        live_after.saturating_sub(live_before) as f64 / hold.max(1) as f64
    );
}
