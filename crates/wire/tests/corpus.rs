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

/// `Edit::finish_message` gives the bytes of `Edit::finish` and the message
/// the parser makes of them, for the proxy's edits on every corpus message
/// that parses (folded headers, compact forms, odd whitespace, multi-value
/// lines included). Debug builds also check the index itself.
#[test]
fn corpus_edits_reindex_like_a_parse() {
    let Some(dir) = corpus_dir() else { return };
    let limits = Limits::default();
    let mut edited = 0;
    for sub in std::fs::read_dir(&dir).expect("read corpus dir") {
        let sub = sub.expect("entry").path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).expect("read corpus dir") {
            let path = f.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read corpus file");
            let Ok(msg) = SipMessage::parse(bytes, &limits) else {
                continue;
            };
            let mut e = msg.edit();
            e.set_top_via_received(Some("192.0.2.1".parse().expect("ip")), Some(5062))
                .set_max_forwards(69)
                .insert_first("Record-Route", "<sip:192.0.2.10;lr>")
                .insert_first("Via", "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx")
                .remove_first_value("Route")
                .append_header("X-Edit", " padded value ");
            if msg.is_request() {
                e.set_request_uri("sip:target@192.0.2.99");
            }
            for (name, value) in [("Contact", "<sip:masked@192.0.2.10>"), ("Subject", "")] {
                if let Some(h) = msg.header_lines(name).next() {
                    e.replace_value(h.index, value);
                }
            }
            let out = e.finish();
            assert_eq!(e.finished_len(), out.len(), "{}", path.display());
            let via_index = e.finish_message(&limits);
            let via_parse = SipMessage::parse(out.clone(), &limits);
            match (via_index, via_parse) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.as_bytes(), &out[..], "{}", path.display());
                    let ha: Vec<_> = a.headers().collect();
                    let hb: Vec<_> = b.headers().collect();
                    assert_eq!(ha, hb, "{}", path.display());
                    assert_eq!(
                        (a.method(), a.request_uri(), a.status(), a.body()),
                        (b.method(), b.request_uri(), b.status(), b.body()),
                        "{}",
                        path.display()
                    );
                    edited += 1;
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{}", path.display()),
                (a, b) => panic!("{}: {a:?} vs {b:?}", path.display()),
            }
        }
    }
    assert!(edited >= 20, "only {edited} corpus messages edited");
}
