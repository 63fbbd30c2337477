//! Delivery benchmark of the CTI client against the Zammad double (issue 11).
//!
//! `cargo test -p sipcti-cti --release --test bench_delivery -- --ignored --nocapture cti_delivery_bench`
//!
//! The double runs in a child process (this test binary started again with
//! `SIPCTI_BENCH_DOUBLE_CHILD=1`), so the process figures (CPU by `getrusage`, allocations
//! by a counting global allocator) are the client's and the load driver's only. Each call
//! is a `newCall` awaited (as the proxy's INVITE waits for it), then its `answer` and
//! `hangup` submitted at once; the client is then drained. Printed: calls/s (from the first
//! call to the drained queue), newCall latency p50/p99/max over all calls and over the calls
//! started in the first 250 ms, process CPU µs per call, allocations per call.
//!
//! Environment: `BENCH_CALLS` (default 10 000), `BENCH_RATE` offered calls/s (default 2 000;
//! 0: a closed loop of `BENCH_CONCURRENCY` callers, default 64, as fast as possible),
//! `BENCH_IN_FLIGHT` (`max_in_flight`, default 8), `BENCH_IDLE_MS` (time between the
//! client's start and the first call, default 100; the proxy's start takes longer),
//! `BENCH_ZAMMAD_DELAY_MS` (the double answers each request this much later, default 0),
//! `BENCH_NEWCALL_SLOTS` (`newcall_slots`, default: the client's default),
//! `BENCH_CTI_THREAD=1` (the client on its own thread and current-thread runtime, as the
//! proxy runs it; default: on the driver's 2-worker runtime).
//! The driver's own work (one spawned task per call, its timers) is in the figures;
//! the events are built before the clock starts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipcti_cti::{ClientConfig, CtiClient, Event, NewCallOutcome};
use sipcti_event::{Cause, Direction, EventKind};

/// Counts every allocation (and reallocation) of this test binary.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHILD_ENV: &str = "SIPCTI_BENCH_DOUBLE_CHILD";
const URL_LINE: &str = "BENCH_DOUBLE_URL ";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU of this process, µs.
fn cpu_us() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// The double's side: serves until its stdin closes (the parent ended). Does nothing
/// unless started by [`cti_delivery_bench`].
#[test]
#[ignore = "the benchmark's child process"]
fn double_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = sipcti_zammad_double::spawn_double(
            l,
            sipcti_zammad_double::DoubleConfig {
                token: "TOKEN".into(),
                rules: sipcti_zammad_double::Rules::default(),
            },
        )
        .await
        .unwrap();
        let delay = env_u64("BENCH_ZAMMAD_DELAY_MS", 0);
        if delay > 0 {
            d.set_mode(sipcti_zammad_double::Mode::Delay(Duration::from_millis(
                delay,
            )));
        }
        println!("{URL_LINE}{}", d.url());
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            while std::io::stdin()
                .read_line(&mut s)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .unwrap();
    });
}

fn ev(kind: EventKind, id: &str) -> Event {
    Event {
        event: kind,
        direction: Direction::In,
        call_id: id.into(),
        from: None,
        to: None,
        user: None,
        queue: None,
        answering_number: None,
        cause: None,
    }
}

/// newCall, answer and hangup of call `i`.
fn call_events(i: u64) -> [Event; 3] {
    let id = format!("bench-{i:08}@10.0.0.1");
    [
        Event {
            from: Some(format!("49301{i:07}")),
            to: Some("4930600000000".into()),
            ..ev(EventKind::NewCall, &id)
        },
        Event {
            answering_number: Some("201".into()),
            ..ev(EventKind::Answer, &id)
        },
        Event {
            cause: Some(Cause::NormalClearing),
            ..ev(EventKind::Hangup, &id)
        },
    ]
}

/// One call: its start (since the load began) and newCall latency, and whether Zammad
/// answered in time.
struct Sample {
    start: Duration,
    latency: Duration,
    answered: bool,
}

async fn one_call(c: CtiClient, evs: [Event; 3], t0: Instant) -> Sample {
    let [nc, an, hu] = evs;
    let t = Instant::now();
    let out = c.new_call(nc).await;
    let latency = t.elapsed();
    c.submit(an);
    c.submit(hu);
    Sample {
        start: t - t0,
        latency,
        answered: matches!(out, NewCallOutcome::Answered(_)),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort();
    format!(
        "n={} p50={:.2} p99={:.2} max={:.2} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    )
}

async fn run(url: String) {
    let calls = env_u64("BENCH_CALLS", 10_000);
    let rate = env_u64("BENCH_RATE", 2_000);
    let conc = env_u64("BENCH_CONCURRENCY", 64).max(1);
    let in_flight = env_u64("BENCH_IN_FLIGHT", 8) as usize;
    let idle = Duration::from_millis(env_u64("BENCH_IDLE_MS", 100));
    let mut events: Vec<[Event; 3]> = (0..calls).map(call_events).collect();
    events.reverse(); // popped from the end: call 0 first
    let newcall_slots = std::env::var("BENCH_NEWCALL_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ClientConfig::default().newcall_slots);
    let cfg = ClientConfig {
        url: Some(url),
        max_in_flight: in_flight,
        newcall_slots,
        newcall_timeout: Duration::from_secs(10),
        queue_capacity: 1_000_000,
        ..ClientConfig::default()
    };
    let cti_thread = env_u64("BENCH_CTI_THREAD", 0) == 1;
    // as the proxy runs it: the client on its own thread and current-thread runtime
    let (client, _stop) = if cti_thread {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = {
            let _in = rt.enter();
            CtiClient::start(cfg).unwrap()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            })
        });
        (client, Some(stop))
    } else {
        (CtiClient::start(cfg).unwrap(), None)
    };
    tokio::time::sleep(idle).await;
    let (cpu0, alloc0) = (cpu_us(), ALLOCS.load(Ordering::Relaxed));
    let t0 = Instant::now();
    let mut samples = Vec::with_capacity(calls as usize);
    if rate > 0 {
        let mut handles = Vec::with_capacity(calls as usize);
        let mut started = 0u64;
        while started < calls {
            let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(calls);
            while started < due {
                let evs = events.pop().unwrap();
                handles.push(tokio::spawn(one_call(client.clone(), evs, t0)));
                started += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for h in handles {
            samples.push(h.await.unwrap());
        }
    } else {
        let queue = Arc::new(std::sync::Mutex::new(events));
        let mut handles = Vec::new();
        for _ in 0..conc {
            let (c, q) = (client.clone(), queue.clone());
            handles.push(tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let next = q.lock().unwrap().pop();
                    let Some(evs) = next else { break };
                    out.push(one_call(c.clone(), evs, t0).await);
                }
                out
            }));
        }
        for h in handles {
            samples.extend(h.await.unwrap());
        }
    }
    let sent = t0.elapsed();
    assert!(client.drain(Duration::from_secs(120)).await, "not drained");
    let total = t0.elapsed();
    let (cpu1, alloc1) = (cpu_us(), ALLOCS.load(Ordering::Relaxed));
    let st = client.stats();
    assert_eq!(st.delivered, calls * 3, "{st:?}");
    let answered = samples.iter().filter(|s| s.answered).count();
    let first: Vec<Duration> = samples
        .iter()
        .filter(|s| s.start < Duration::from_millis(250))
        .map(|s| s.latency)
        .collect();
    let all: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let first5: Vec<String> = samples
        .iter()
        .take(5)
        .map(|s| format!("{:.2}", s.latency.as_secs_f64() * 1000.0))
        .collect();
    let mode = if rate > 0 {
        format!("offered {rate} calls/s")
    } else {
        format!("closed loop, {conc} callers")
    };
    println!(
        "cti bench: {calls} calls, {mode}, max_in_flight={in_flight}, newcall_slots={newcall_slots}, zammad delay {} ms, client on {}\n  \
         throughput: {:.0} calls/s ({:.0} requests/s); last newCall answered at {:.0} ms, drained at {:.0} ms\n  \
         newCall latency all:        {}\n  \
         newCall latency first 250ms: {}; first 5 calls: {} ms\n  \
         answered {answered}/{calls}, fail_open {}, retried {}\n  \
         process CPU: {:.1} us/call ({:.1} us/request)\n  \
         allocations: {:.1} /call ({:.1} /request)",
        env_u64("BENCH_ZAMMAD_DELAY_MS", 0),
        if cti_thread {
            "its own current-thread runtime"
        } else {
            "the driver's runtime"
        },
        calls as f64 / total.as_secs_f64(),
        (calls * 3) as f64 / total.as_secs_f64(),
        sent.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0,
        summary(all),
        summary(first),
        first5.join(" "),
        st.fail_open,
        st.retried,
        (cpu1 - cpu0) as f64 / calls as f64,
        (cpu1 - cpu0) as f64 / (calls * 3) as f64,
        (alloc1 - alloc0) as f64 / calls as f64,
        (alloc1 - alloc0) as f64 / (calls * 3) as f64,
    );
}

/// See the module docs.
#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn cti_delivery_bench() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["double_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the double child ended").unwrap();
        if let Some(u) = line.strip_prefix(URL_LINE) {
            break u.to_string();
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(url));
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}
