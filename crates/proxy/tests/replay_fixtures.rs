//! Fixture replay: every directory `fixtures/captures/<name>/` holding `capture.pcap`,
//! `sipcti.toml` and `expected.jsonl` must replay to exactly the expected events.
//!
//! Compared per line, in order: every key of the expected line except `"ts"` (the
//! Zammad fields, `"synthetic"`, and `"packet"` when the expected line has it). A line
//! too many or too few is a mismatch. An optional `args` file in the directory may
//! hold `--guess-sides` and `--no-close` (one per line).

mod replay_support;

use std::path::{Path, PathBuf};

use replay_support::{inbound_answered, Pcap, CONFIG, T0};
use serde_json::Value;
use sipcti_proxy::config::Config;
use sipcti_proxy::replay::{jsonl_line, replay_captures, ReplayOptions};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/captures")
}

/// Replays one fixture directory; `Err` describes the first difference.
fn check_fixture(dir: &Path) -> Result<usize, String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let cfg =
        Config::from_toml(&read("sipcti.toml")?, None).map_err(|e| format!("sipcti.toml: {e}"))?;
    let mut opts = ReplayOptions::from_config(&cfg);
    if let Ok(args) = std::fs::read_to_string(dir.join("args")) {
        for a in args.split_whitespace() {
            match a {
                "--guess-sides" => opts.guess_sides = true,
                "--no-close" => opts.close_open_calls = false,
                other => return Err(format!("args: unknown flag {other}")),
            }
        }
    }
    let res = replay_captures(&[dir.join("capture.pcap")], &opts);
    if !res.errors.is_empty() {
        return Err(format!("capture errors: {:?}", res.errors));
    }
    let got: Vec<String> = res.events.iter().map(|e| jsonl_line(e, false)).collect();
    let expected = read("expected.jsonl")?;
    let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, (g, want)) in got.iter().zip(&expected).enumerate() {
        let mut want_v: Value = serde_json::from_str(want)
            .map_err(|e| format!("expected.jsonl line {}: {e}", i + 1))?;
        let mut got_v: Value = serde_json::from_str(g).expect("replay writes JSON");
        let (w, gm) = (
            want_v.as_object_mut().unwrap(),
            got_v.as_object_mut().unwrap(),
        );
        w.remove("ts");
        gm.remove("ts");
        if !w.contains_key("packet") {
            gm.remove("packet");
        }
        if w != gm {
            return Err(format!(
                "line {}:\n  expected {want}\n  got      {g}",
                i + 1
            ));
        }
    }
    if got.len() != expected.len() {
        return Err(format!(
            "{} events expected, {} replayed; replayed:\n{}",
            expected.len(),
            got.len(),
            got.join("\n")
        ));
    }
    Ok(got.len())
}

#[test]
fn every_fixture_replays_to_its_expected_events() {
    let dir = fixtures_dir();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                ["capture.pcap", "sipcti.toml", "expected.jsonl"]
                    .iter()
                    .all(|f| p.join(f).is_file())
            })
            .collect(),
        Err(_) => vec![],
    };
    dirs.sort();
    if dirs.is_empty() {
        println!(
            "no capture fixtures in {} yet (directories with capture.pcap, sipcti.toml, expected.jsonl): nothing to check",
            dir.display()
        );
        return;
    }
    let mut failures = vec![];
    for d in &dirs {
        match check_fixture(d) {
            Ok(n) => println!("{}: {n} events as expected", d.display()),
            Err(e) => failures.push(format!("{}: {e}", d.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "fixture mismatches:\n{}",
        failures.join("\n")
    );
}

/// The checker itself: a matching fixture passes, a changed cause, a missing line or
/// an extra line fails.
#[test]
fn checker_detects_mismatches() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("replay-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = Pcap::new();
    inbound_answered(&mut p, T0, "fx-1@192.0.2.1");
    std::fs::write(dir.join("capture.pcap"), &p.buf).unwrap();
    std::fs::write(dir.join("sipcti.toml"), CONFIG).unwrap();
    let good = [
        r#"{"event":"newCall","direction":"in","callId":"fx-1@192.0.2.1","from":"4930123456","to":"4940111222","ts":1}"#,
        r#"{"event":"answer","direction":"in","callId":"fx-1@192.0.2.1","from":"4930123456","to":"4940111222","answeringNumber":"100","packet":4}"#,
        r#"{"event":"hangup","direction":"in","callId":"fx-1@192.0.2.1","from":"4930123456","to":"4940111222","answeringNumber":"100","cause":"normalClearing"}"#,
    ];
    std::fs::write(dir.join("expected.jsonl"), good.join("\n")).unwrap();
    assert_eq!(check_fixture(&dir), Ok(3));
    let bad_cause = good.join("\n").replace("normalClearing", "cancel");
    std::fs::write(dir.join("expected.jsonl"), bad_cause).unwrap();
    assert!(check_fixture(&dir).unwrap_err().contains("line 3"));
    std::fs::write(dir.join("expected.jsonl"), good[..2].join("\n")).unwrap();
    assert!(check_fixture(&dir).is_err());
    let extra = format!("{}\n{}", good.join("\n"), good[2]);
    std::fs::write(dir.join("expected.jsonl"), extra).unwrap();
    assert!(check_fixture(&dir).is_err());
    let bad_packet = good.join("\n").replace("\"packet\":4", "\"packet\":5");
    std::fs::write(dir.join("expected.jsonl"), bad_packet).unwrap();
    assert!(check_fixture(&dir).is_err());
}
