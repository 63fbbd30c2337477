//! The three output formats of `sipcti replay`: JSON lines, a call table, ladder diagrams.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use super::engine::{CallSummary, MessageRecord, ReplayEvent};

/// Capture time as seconds with microseconds, e.g. `1700000000.123456`.
pub fn fmt_ts(ts: Duration) -> String {
    format!("{}.{:06}", ts.as_secs(), ts.subsec_micros())
}

/// One line of `--format jsonl`: the Zammad event's own keys first (flattened, in the
/// order [`sipcti_cti::Event`] serializes them), then the replay's extra keys.
#[derive(Serialize)]
struct JsonlLine<'a> {
    #[serde(flatten)]
    event: &'a sipcti_cti::Event,
    /// [`fmt_ts`] written as a bare JSON number: always six decimals
    /// (`1700000000.000000`), which an `f64` would not keep. `RawValue` needs serde_json's
    /// `raw_value` feature, today switched on for the whole build by axum (via sipcti-cti).
    ts: &'a RawValue,
    packet: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    synthetic: bool,
}

/// One JSON line: the Zammad event exactly as the live proxy sends it (same keys, same
/// order), then `"ts"`, `"packet"`, `"capture"` (only when `with_capture`) and
/// `"synthetic":true` for hangups made up at the end of the captures.
pub fn jsonl_line(e: &ReplayEvent, with_capture: bool) -> String {
    let event = e.cti();
    // `fmt_ts` is always digits, a dot and six digits: a valid JSON number.
    let ts = RawValue::from_string(fmt_ts(e.ts)).expect("fmt_ts writes a JSON number");
    let line = JsonlLine {
        event: &event,
        ts: &ts,
        packet: e.packet,
        capture: with_capture.then_some(e.capture),
        synthetic: e.synthetic,
    };
    // Strings, unit enums, integers and a checked raw number into a String: cannot fail.
    serde_json::to_string(&line).expect("a replay event serializes to JSON")
}

/// Days since 1970-01-01 to (year, month, day) (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2023-11-14 22:13:20 UTC`.
pub fn fmt_date_time(ts: Duration) -> String {
    let secs = ts.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `22:13:20.123456` (UTC).
fn fmt_time(ts: Duration) -> String {
    let t = ts.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        ts.subsec_micros()
    )
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into())
}

/// The per-call table. A `*` after the cause marks a hangup synthesised at the end.
pub fn table(calls: &[CallSummary]) -> String {
    let header = [
        "callId",
        "direction",
        "from",
        "to",
        "answered by",
        "cause",
        "ringing s",
        "talk s",
    ];
    let rows: Vec<[String; 8]> = calls
        .iter()
        .map(|c| {
            [
                c.call_id.clone(),
                c.direction.as_str().to_string(),
                c.from.clone(),
                c.to.clone(),
                c.answered_by.clone().unwrap_or_else(|| "-".into()),
                match c.cause {
                    Some(cause) if c.synthetic_end => format!("{cause}*"),
                    Some(cause) => cause.to_string(),
                    None => "(open)".into(),
                },
                secs(c.ringing_secs()),
                secs(c.talk_secs()),
            ]
        })
        .collect();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, v) in r.iter().enumerate() {
            w[i] = w[i].max(v.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let mut l = String::new();
        for (i, v) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(v.chars().count());
            if i >= 6 {
                l.push_str(&" ".repeat(pad));
                l.push_str(v);
            } else {
                l.push_str(v);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, &header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    if calls.iter().any(|c| c.synthetic_end) {
        out.push_str("* call still open at the end of the capture: hangup synthesised\n");
    }
    out
}

fn host(a: &SocketAddr) -> String {
    a.to_string()
}

/// A text ladder diagram of `messages` (one call's), as sngrep draws it: one column per
/// host (IP:port, in order of appearance), one arrow per message with its time, packet
/// number and method or status.
pub fn ladder(title: &str, messages: &[&MessageRecord]) -> String {
    let mut hosts: Vec<SocketAddr> = Vec::new();
    for m in messages {
        for a in [m.src, m.dst] {
            if !hosts.contains(&a) {
                hosts.push(a);
            }
        }
    }
    let label_w = messages
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(0);
    let host_w = hosts.iter().map(|h| host(h).len()).max().unwrap_or(0);
    let col = (label_w + 8).max(host_w + 3).max(20);
    // prefix: "22:13:20.123456 +12.345678 #12345 "
    let first = messages.first().map(|m| m.ts).unwrap_or_default();
    let prefixes: Vec<String> = messages
        .iter()
        .map(|m| {
            let d = m.ts.saturating_sub(first);
            format!(
                "{} +{}.{:06} #{}",
                fmt_time(m.ts),
                d.as_secs(),
                d.subsec_micros(),
                m.packet
            )
        })
        .collect();
    let pre = prefixes.iter().map(String::len).max().unwrap_or(0) + 2;
    let x = |i: usize| pre + col / 2 + i * col;
    let width = x(hosts.len().saturating_sub(1)) + col / 2 + 1;
    let mut out = String::new();
    out.push_str(title);
    out.push('\n');
    if let Some(m) = messages.first() {
        let _ = writeln!(out, "first message: {}", fmt_date_time(m.ts));
    }
    // host names centred on their lifelines
    let mut names = vec![' '; width + host_w];
    for (i, h) in hosts.iter().enumerate() {
        let s = host(h);
        let start = x(i).saturating_sub(s.len() / 2);
        for (k, c) in s.chars().enumerate() {
            names[start + k] = c;
        }
    }
    out.push_str(names.iter().collect::<String>().trim_end());
    out.push('\n');
    let lifelines = || {
        let mut l = vec![' '; width];
        for i in 0..hosts.len() {
            l[x(i)] = '|';
        }
        l
    };
    out.push_str(lifelines().iter().collect::<String>().trim_end());
    out.push('\n');
    for (m, p) in messages.iter().zip(&prefixes) {
        let mut l = lifelines();
        for (k, c) in p.chars().enumerate() {
            l[k] = c;
        }
        let a = hosts.iter().position(|h| *h == m.src).unwrap_or(0);
        let b = hosts.iter().position(|h| *h == m.dst).unwrap_or(0);
        let mut label = m.label.clone();
        if m.transport == sipcti_capture::Transport::Tcp {
            label.push_str(" [tcp]");
        }
        let mut line: String;
        if a == b {
            line = l.iter().collect::<String>();
            line = line.trim_end().to_string();
            let _ = write!(line, " <- {label} (to itself)");
        } else {
            let (lo, hi) = (x(a.min(b)), x(a.max(b)));
            for c in l.iter_mut().take(hi).skip(lo + 1) {
                *c = '-';
            }
            if a < b {
                l[hi - 1] = '>';
            } else {
                l[lo + 1] = '<';
            }
            let span = hi - lo - 3;
            let lab: Vec<char> = format!(" {label} ").chars().collect();
            if lab.len() <= span {
                let start = lo + 2 + (span - lab.len()) / 2;
                for (k, c) in lab.iter().enumerate() {
                    l[start + k] = *c;
                }
                line = l.iter().collect::<String>();
            } else {
                line = l.iter().collect::<String>();
                line = line.trim_end().to_string();
                let _ = write!(line, " {label}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sipcti_dialog::CallEvent;
    use sipcti_event::{Cause, Direction, EventKind};

    #[test]
    fn jsonl_line_escapes_odd_characters_and_round_trips() {
        // quotes, backslashes, a closing brace, non-ASCII (incl. outside the BMP and
        // U+2028), and control characters (NUL, newline, tab, ESC, U+001F, DEL)
        let call_id = "a\"b\\c}{\u{0}\n\t\u{1b}\u{1f}\u{7f}@host";
        let from = "Müller \"☎\" 😀 \\\\srv\\x";
        let to = "\r\n0049\u{2028}\u{8}\u{c}";
        let e = ReplayEvent {
            capture: 2,
            packet: 7,
            ts: Duration::new(1_700_000_000, 100_000),
            synthetic: true,
            event: CallEvent {
                kind: EventKind::Hangup,
                call_id: call_id.into(),
                direction: Direction::In,
                from: from.into(),
                to: to.into(),
                user: Some("Zoë \"Z\"".into()),
                group: Vec::new(),
                queue: None,
                answering_number: None,
                cause: Some(Cause::NormalClearing),
                at: std::time::Instant::now(),
                sip_call_id: "sip-1".into(),
            },
        };
        let line = jsonl_line(&e, true);
        assert!(!line.contains('\n'), "one line: {line:?}");
        let v: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["callId"], call_id);
        assert_eq!(v["from"], from);
        assert_eq!(v["to"], to);
        assert_eq!(v["user"], "Zoë \"Z\"");
        assert_eq!(v["event"], "hangup");
        assert_eq!(v["cause"], "normalClearing");
        assert_eq!(v["packet"], 7);
        assert_eq!(v["capture"], 2);
        assert_eq!(v["synthetic"], true);
        assert!(v.get("answeringNumber").is_none());
        // the extra keys come last, in this order, and ts keeps its six decimals
        assert!(line.starts_with(r#"{"event":"hangup","direction":"in","callId":"#));
        assert!(
            line.ends_with(r#","ts":1700000000.000100,"packet":7,"capture":2,"synthetic":true}"#),
            "{line}"
        );
        // without capture and synthetic, neither key appears
        let plain = ReplayEvent {
            synthetic: false,
            ..e
        };
        let line = jsonl_line(&plain, false);
        assert!(
            line.ends_with(r#","ts":1700000000.000100,"packet":7}"#),
            "{line}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            fmt_date_time(Duration::from_secs(1_700_000_000)),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(fmt_date_time(Duration::ZERO), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            fmt_ts(Duration::new(1_700_000_000, 123_456_789)),
            "1700000000.123456"
        );
    }
}
