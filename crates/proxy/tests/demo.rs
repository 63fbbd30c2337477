//! `sipcti demo` as a smoke test: the built binary places its five calls
//! through the proxy on loopback, exits 0 and prints each call's CTI events.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `sipcti demo`; kill it if it takes longer than `limit`.
fn run_demo(limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipcti"))
        .arg("demo")
        .env("SIPCTI_LOG", "warn")
        .env_remove("SIPCTI_DEMO_RAW")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipcti demo");
    // read both pipes on threads so a full pipe can never block the demo
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for sipcti demo") {
            break Some(st);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let code = match status {
        Some(st) => st.code(),
        None => panic!(
            "sipcti demo did not finish within {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    };
    (code, stdout, stderr)
}

/// The part of the output that belongs to call `n` (from its heading to the next).
fn section(out: &str, n: usize) -> &str {
    let start = out
        .find(&format!("── {n}. "))
        .unwrap_or_else(|| panic!("no section for call {n} in:\n{out}"));
    let rest = &out[start..];
    let head = "── ".len();
    match rest[head..].find("\n── ") {
        Some(end) => &rest[..head + end + 1],
        None => rest,
    }
}

fn assert_has(section: &str, want: &[&str], out: &str) {
    for w in want {
        assert!(
            section.contains(w),
            "missing {w:?} in section:\n{section}\n\nwhole output:\n{out}"
        );
    }
}

#[test]
fn demo_places_five_calls_and_exits_zero() {
    let (code, out, err) = run_demo(Duration::from_secs(150));
    assert_eq!(
        code,
        Some(0),
        "sipcti demo failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("All 5 calls behaved as expected."), "{out}");
    assert!(!out.contains('✗'), "{out}");

    // 1. inbound, answered
    let s = section(&out, 1);
    assert_has(
        s,
        &[
            "trunk  ──INVITE",
            "sipcti ──INVITE──────────────────▶ phone",
            "CTI     newCall  in   from=491701234567 to=4930111222",
            "CTI     answer   in   answeringNumber=201",
            "CTI     hangup   in   cause=normalClearing",
            "✓ as expected",
        ],
        &out,
    );

    // 2. inbound from a blocked number: 486 from the proxy, the phone sees nothing
    let s = section(&out, 2);
    assert_has(
        s,
        &[
            "sipcti ──486 Busy Here",
            "CTI     newCall  in   from=491715000000 to=4930111222",
            "Zammad: reject (busy)",
            "CTI     hangup   in   cause=busy",
            "✓ as expected",
        ],
        &out,
    );
    assert!(
        !s.contains("phone"),
        "the phone took part in the blocked call:\n{s}"
    );

    // 3. outbound with the caller id Zammad chose toward the trunk, the original toward the phone
    let s = section(&out, 3);
    assert_has(
        s,
        &[
            "sipcti ──INVITE──────────────────▶ trunk   From: \"Alice\" <sip:4930111222@",
            "sipcti ──200 OK──────────────────▶ phone   From: \"Alice\" <sip:201@",
            "CTI     newCall  out  from=201 to=49301234567",
            "Zammad: dial with caller id 4930111222",
            "CTI     answer   out",
            "CTI     hangup   out  cause=normalClearing",
            "✓ as expected",
        ],
        &out,
    );

    // 4. caller cancels while it rings
    let s = section(&out, 4);
    assert_has(
        s,
        &[
            "phone  ──CANCEL",
            "sipcti ──487 Request Terminated──▶ phone",
            "CTI     newCall  out  from=201 to=49301234567",
            "CTI     hangup   out  cause=cancel",
            "✓ as expected",
        ],
        &out,
    );
    assert!(!s.contains("CTI     answer"), "{s}");

    // 5. callee busy
    let s = section(&out, 5);
    assert_has(
        s,
        &[
            "phone  ──486 Busy Here",
            "CTI     newCall  in   from=491701234567 to=4930111222",
            "CTI     hangup   in   cause=busy",
            "✓ as expected",
        ],
        &out,
    );
    assert!(!s.contains("CTI     answer"), "{s}");
}
