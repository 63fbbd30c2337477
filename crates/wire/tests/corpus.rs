//! External acceptance corpus: RFC 4475 and RFC 5118 torture messages, read from
//! `../shared/corpus/` beside the repository (never copied into it). The expectations
//! come from `/work/shared/corpus/README.md`.

use std::path::PathBuf;

use sipcti_wire::{Limits, ParseError, SipMessage};

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        dir.join("rfc4475").is_dir(),
        "SIP torture corpus not found at {}: this test needs the shared data beside the repository (present on every developer machine and in CI)",
        dir.display()
    );
    Some(dir)
}

/// Must fail parse() or validate().
const INVALID: &[&str] = &[
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "quotbal",
    "lwsruri",
    "mismatch01",
    "baddn",
    "badvers",
    "mismatch02",
    "scalarlg",
    "bigcode",
    "insuf",
    "multi01",
    "mcl01",
    "ipv6-bad",
    "ipv6-bug-abnf-3-colons",
];

/// May be accepted or rejected (RFC 4475 3.1.2.x "liberal" cases): only must not panic.
const EITHER: &[&str] = &[
    "ltgtruri", "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec",
];

fn check(buf: Vec<u8>) -> Result<SipMessage, ParseError> {
    let msg = SipMessage::parse(buf, &Limits::default())?;
    msg.validate()?;
    Ok(msg)
}

#[test]
fn corpus_matches_expectations() {
    let Some(dir) = corpus_dir() else { return };
    let mut seen = 0;
    let mut failures = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("read corpus dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("file name")
                .to_string();
            let bytes = std::fs::read(&path).expect("read corpus file");
            seen += 1;
            let res = check(bytes);
            if INVALID.contains(&name.as_str()) {
                match &res {
                    Ok(_) => failures.push(format!("{sub}/{name}: accepted but must be rejected")),
                    Err(e) => {
                        eprintln!("{sub}/{name}: rejected: {e} ({})", e.status());
                        if name == "badvers" && e.status() != 505 {
                            failures
                                .push(format!("{sub}/{name}: status {} != 505 ({e})", e.status()));
                        }
                        assert!(!e.reason().contains(['\r', '\n']));
                    }
                }
            } else if EITHER.contains(&name.as_str()) {
                eprintln!(
                    "{sub}/{name}: {:?}",
                    res.as_ref().map(|_| "accepted").map_err(|e| e.to_string())
                );
            } else if let Err(e) = res {
                failures.push(format!(
                    "{sub}/{name}: rejected ({e:?}) but must be accepted"
                ));
            }
        }
    }
    assert!(seen >= 61, "expected 61 corpus files, saw {seen}");
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

fn load(sub: &str, name: &str) -> Option<SipMessage> {
    let dir = corpus_dir()?;
    let bytes = std::fs::read(dir.join(sub).join(name)).expect("read corpus file");
    Some(SipMessage::parse(bytes, &Limits::default()).expect("parse"))
}

#[test]
fn corpus_details() {
    let Some(wsinv) = load("rfc4475", "wsinv.dat") else {
        return;
    };
    assert_eq!(wsinv.method(), Some("INVITE"));
    assert_eq!(wsinv.cseq(), Some((9, "INVITE")));
    assert_eq!(wsinv.max_forwards(), Some(68));
    assert_eq!(wsinv.to().and_then(|t| t.tag()), Some("1918181833n"));
    let from = wsinv.from().expect("from");
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    let vias = wsinv.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(wsinv.body().len(), 150);

    let Some(dbl) = load("rfc4475", "dblreq.dat") else {
        return;
    };
    assert_eq!(
        dbl.header("Call-ID"),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );
    assert!(dbl.as_bytes().len() < dbl.clone().into_bytes().len() + 1);

    let dir = corpus_dir().expect("dir");
    let e = SipMessage::parse(
        std::fs::read(dir.join("rfc4475/badvers.dat")).expect("read"),
        &Limits::default(),
    )
    .expect_err("badvers");
    assert_eq!(e, ParseError::BadVersion("SIP/7.0".into()));
    assert_eq!(e.status(), 505);

    let Some(m) = load("rfc5118", "mult-ip-in-header") else {
        return;
    };
    let hosts: Vec<_> = m.vias().iter().map(|v| v.host).collect();
    assert_eq!(hosts, ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"]);
    assert_eq!(m.vias()[0].port, Some(6050));
    assert_eq!(m.vias()[2].received(), Some("192.0.2.200"));
}
