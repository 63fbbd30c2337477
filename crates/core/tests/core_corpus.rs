//! The RFC 4475 / RFC 5118 torture messages through the sans-IO core, each
//! as a UDP datagram from a phone inside, checked against what
//! `shared/corpus/README.md` says an RFC 3261 proxy must do with it.
//!
//! The corpus is external acceptance data read from
//! `../shared/corpus/` (beside the repository); when it is absent the test
//! says so and passes.

mod core_support;

use std::path::{Path, PathBuf};

use core_support::*;
use sipcti_core::{CtiAnswer, Output, Target, Transmit};
use sipcti_wire::{Limits, SipMessage};

/// What the proxy must do with one message.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A valid request: forwarded (exactly once), never answered with an error.
    Forward,
    /// Answered with one of these statuses, never forwarded.
    Answer(&'static [u16]),
    /// Answered with one of these statuses or silently dropped; never forwarded.
    AnswerOrDrop(&'static [u16]),
    /// Rejected with one of these, or accepted liberally and forwarded (then
    /// the forwarded message must itself be a valid message).
    AnswerOrForward(&'static [u16]),
    /// A valid response that is not ours: dropped as stray, not as malformed.
    StrayResponse,
    /// An invalid response: dropped.
    DropResponse,
}

use Want::*;

const TABLE: &[(&str, Want)] = &[
    // RFC 4475 3.1.1: valid
    ("rfc4475/wsinv.dat", Forward),
    ("rfc4475/intmeth.dat", Forward),
    ("rfc4475/esc01.dat", Forward),
    ("rfc4475/escnull.dat", Forward),
    ("rfc4475/esc02.dat", Forward),
    ("rfc4475/lwsdisp.dat", Forward),
    ("rfc4475/longreq.dat", Forward),
    ("rfc4475/dblreq.dat", Forward),
    ("rfc4475/semiuri.dat", Forward),
    ("rfc4475/transports.dat", Forward),
    ("rfc4475/mpart01.dat", Forward),
    ("rfc4475/unreason.dat", StrayResponse),
    ("rfc4475/noreason.dat", StrayResponse),
    // 3.1.2: invalid syntax
    ("rfc4475/badinv01.dat", AnswerOrDrop(&[400])),
    ("rfc4475/clerr.dat", AnswerOrDrop(&[400])),
    ("rfc4475/ncl.dat", AnswerOrDrop(&[400])),
    ("rfc4475/scalar02.dat", AnswerOrDrop(&[400])),
    ("rfc4475/quotbal.dat", AnswerOrDrop(&[400])),
    ("rfc4475/lwsruri.dat", AnswerOrDrop(&[400])),
    ("rfc4475/mismatch01.dat", AnswerOrDrop(&[400])),
    ("rfc4475/baddn.dat", AnswerOrDrop(&[400])),
    ("rfc4475/badvers.dat", Answer(&[505])),
    ("rfc4475/mismatch02.dat", Answer(&[501, 400])),
    ("rfc4475/scalarlg.dat", DropResponse),
    ("rfc4475/bigcode.dat", DropResponse),
    // may be accepted liberally, but no fault passed on
    ("rfc4475/ltgtruri.dat", AnswerOrForward(&[400])),
    ("rfc4475/lwsstart.dat", AnswerOrForward(&[400])),
    ("rfc4475/trws.dat", AnswerOrForward(&[400])),
    // RFC 4475 3.1.2.11: headers in the Request-URI are answered 400, never forwarded
    ("rfc4475/escruri.dat", Answer(&[400])),
    ("rfc4475/baddate.dat", AnswerOrForward(&[400])),
    // 3.1.2.13: a Contact addr-spec with URI headers outside <> is answered 400
    ("rfc4475/regbadct.dat", Answer(&[400])),
    ("rfc4475/badaspec.dat", AnswerOrForward(&[400])),
    // 3.2 transaction layer
    ("rfc4475/badbranch.dat", AnswerOrForward(&[400])),
    // 3.3 application layer
    ("rfc4475/insuf.dat", Answer(&[400])),
    ("rfc4475/unkscm.dat", Answer(&[416])),
    ("rfc4475/novelsc.dat", AnswerOrForward(&[416])),
    ("rfc4475/unksm2.dat", Forward),
    ("rfc4475/bext01.dat", Answer(&[420])),
    ("rfc4475/invut.dat", Forward),
    ("rfc4475/regaut01.dat", Forward),
    ("rfc4475/multi01.dat", Answer(&[400])),
    ("rfc4475/mcl01.dat", Answer(&[400])),
    ("rfc4475/bcast.dat", StrayResponse),
    ("rfc4475/zeromf.dat", Answer(&[483, 200])),
    ("rfc4475/cparam01.dat", Forward),
    ("rfc4475/cparam02.dat", Forward),
    ("rfc4475/regescrt.dat", Forward),
    ("rfc4475/sdp01.dat", Forward),
    // 3.4
    ("rfc4475/inv2543.dat", Forward),
    // RFC 5118
    ("rfc5118/ipv4-mapped-ipv6", Forward),
    ("rfc5118/ipv6-bad", Answer(&[400])),
    ("rfc5118/ipv6-bug-abnf-3-colons", Answer(&[400])),
    ("rfc5118/ipv6-correct-abnf-2-colons", Forward),
    ("rfc5118/ipv6-good", Forward),
    ("rfc5118/ipv6-in-sdp", Forward),
    ("rfc5118/mult-ip-in-header", Forward),
    ("rfc5118/mult-ip-in-sdp", Forward),
    ("rfc5118/port-ambiguous", Forward),
    ("rfc5118/port-unambiguous", Forward),
    ("rfc5118/via-received-param-no-delim", Forward),
    ("rfc5118/via-received-param-with-delim", Forward),
];

/// The phone the messages come from.
const SRC: &str = "10.0.0.20:5060";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn status_of(t: &Transmit) -> Option<u16> {
    let d = &t.data;
    if !d.starts_with(b"SIP/2.0 ") {
        return None;
    }
    std::str::from_utf8(d.get(8..11)?).ok()?.parse().ok()
}

/// Feed one file, let every newCall go on, return all outputs.
fn run(data: &[u8]) -> (H, Vec<Output>) {
    let mut h = H::new();
    let mut all = h.udp(0, data, SRC);
    let tokens: Vec<sipcti_core::CallId> = new_calls(&all).iter().map(|(t, _)| *t).collect();
    for t in tokens {
        all.extend(h.cti(10, t, CtiAnswer::Continue));
    }
    (h, all)
}

/// Check one file; `Err` describes a mismatch.
fn check(name: &str, data: &[u8], want: Want) -> Result<(), String> {
    let (h, outs) = run(data);
    let txs = transmits(&outs);
    let answers: Vec<u16> = txs
        .iter()
        .filter_map(|t| status_of(t))
        .filter(|s| *s != 100)
        .collect();
    let forwarded: Vec<&&Transmit> = txs.iter().filter(|t| status_of(t).is_none()).collect();
    let detail = || format!("{name}: want {want:?}, got{}", show(&outs));
    // a forwarded message never carries a fault
    for f in &forwarded {
        let m = SipMessage::parse(f.data.clone(), &Limits::default())
            .map_err(|e| format!("{}\nforwarded message does not parse: {e}", detail()))?;
        m.validate()
            .map_err(|e| format!("{}\nforwarded message invalid: {e}", detail()))?;
    }
    // responses go back to the sender's address (port: the Via's, RFC 3261
    // 18.2.2), never to a broadcast address
    for t in &txs {
        let to_src = matches!(&t.dest, Target::Addr(a) if a.ip() == addr(SRC).ip());
        if status_of(t).is_some() && !to_src {
            return Err(format!(
                "{}\nanswer sent elsewhere than the source",
                detail()
            ));
        }
        if t.dest == target("255.255.255.255:5060") {
            return Err(format!("{}\nsent to a broadcast address", detail()));
        }
    }
    // every final response the proxy makes itself carries a well-formed To with a tag
    // (RFC 3261 8.2.6.2), salvaged answers to unparseable requests included
    for t in &txs {
        if status_of(t).is_some_and(|st| st >= 200) {
            let shown = String::from_utf8_lossy(&t.data).to_string();
            let r = SipMessage::parse(t.data.clone(), &Limits::default())
                .map_err(|e| format!("{}\nour response does not parse: {e}\n{shown}", detail()))?;
            let tag = r
                .to()
                .ok_or_else(|| format!("{}\nour response has no (valid) To\n{shown}", detail()))?
                .tag()
                .map(str::to_string);
            if tag.is_none_or(|t| t.is_empty()) {
                return Err(format!(
                    "{}\nour final response has no To tag\n{shown}",
                    detail()
                ));
            }
            if std::env::var_os("SIPCTI_SHOW_RESPONSES").is_some() {
                println!("{name}:\n{shown}");
            }
        }
    }
    let ok = match want {
        Forward => forwarded.len() == 1 && answers.is_empty(),
        Answer(codes) => forwarded.is_empty() && answers.len() == 1 && codes.contains(&answers[0]),
        AnswerOrDrop(codes) => {
            forwarded.is_empty() && answers.len() <= 1 && answers.iter().all(|s| codes.contains(s))
        }
        AnswerOrForward(codes) => {
            (forwarded.len() == 1 && answers.is_empty())
                || (forwarded.is_empty() && answers.len() == 1 && codes.contains(&answers[0]))
        }
        StrayResponse => {
            txs.is_empty()
                && h.core.stats().stray_responses == 1
                && h.core.stats().malformed_responses == 0
        }
        DropResponse => txs.is_empty(),
    };
    if !ok {
        return Err(detail());
    }
    // dblreq: only the first message of the datagram goes on
    if name.ends_with("dblreq.dat") && forwarded.iter().any(|f| s(&f.data).contains("\r\nINVITE "))
    {
        return Err(format!(
            "{}\nsecond message of the datagram passed on",
            detail()
        ));
    }
    let outcome = if !forwarded.is_empty() {
        format!("forwarded to {}", forwarded[0].dest)
    } else if let Some(a) = answers.first() {
        format!("answered {a}")
    } else {
        "dropped".to_string()
    };
    // answered although the parser rejected it: built by salvage_error_response
    let salvaged =
        if !answers.is_empty() && SipMessage::parse(data.to_vec(), &Limits::default()).is_err() {
            " (salvaged)"
        } else {
            ""
        };
    println!("{name:45} {outcome}{salvaged}");
    // 420 lists exactly the Proxy-Require values in Unsupported (RFC 3261 16.3 step 5)
    if answers == [420] {
        let req =
            SipMessage::parse(data.to_vec(), &Limits::default()).map_err(|e| e.to_string())?;
        let wanted = req.header_values("Proxy-Require").join(", ");
        let t = txs.iter().find(|t| status_of(t) == Some(420)).expect("420");
        if parse(&t.data).header("Unsupported") != Some(wanted.as_str()) {
            return Err(format!("{}\n420 without Unsupported: {wanted}", detail()));
        }
    }
    Ok(())
}

#[test]
fn rfc4475_rfc5118_torture_corpus_through_the_core() {
    let dir = corpus_dir();
    assert!(
        dir.is_dir(),
        "torture corpus not found at {}: this test needs the shared data beside the repository (present on every developer machine and in CI)",
        dir.display()
    );
    // every file of the corpus is in the table
    let mut on_disk = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("read corpus folder") {
            let e = e.expect("corpus entry");
            on_disk.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    on_disk.retain(|n| !n.ends_with(".md"));
    on_disk.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "corpus files and the expectation table differ"
    );

    let mut failures = Vec::new();
    for (name, want) in TABLE {
        let data = std::fs::read(dir.join(name)).expect("read corpus file");
        let name = name.to_string();
        let result = std::panic::catch_unwind(|| check(&name, &data, *want));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("{name}: the core panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus mismatches:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
