//! Re-indexing an edited message from its original's index, without parsing
//! its header section again ([`Edit::finish_message`]).
//!
//! An [`Edit`] knows where each of its splices lands. Header lines it did not
//! touch keep their index entry, shifted by the bytes inserted or removed
//! before them; a line whose value was edited keeps its name and id and gets
//! its value range re-trimmed; inserted lines (`name: value\r\n`, written by
//! the edit itself) are indexed from their own bytes. Whatever falls outside
//! these shapes gives `None`, and the caller parses the bytes instead.

use std::ops::Range;

use bytes::Bytes;

use super::edit::{Edit, Splice};
use super::headers::{known_id_bytes, HeaderEntry, ValueLoc, CONTENT_LENGTH};
use super::limits::Limits;
use super::message::{is_token_byte, trim_range, SipMessage, Utf8Prefix};
use super::scan::find_byte;
use super::start_line::{parse_start_line, StartLine};

/// `p + d`, when it is a position (not negative).
fn at(p: usize, d: isize) -> Option<usize> {
    p.checked_add_signed(d)
}

fn shift(r: &Range<usize>, d: isize) -> Option<Range<usize>> {
    Some(at(r.start, d)?..at(r.end, d)?)
}

/// Length change a splice makes.
fn growth(s: &Splice) -> isize {
    s.data.len() as isize - s.range.len() as isize
}

/// Splice data that may sit inside a line (no line terminator in it).
fn inline(data: &[u8]) -> bool {
    find_byte(b'\n', data).is_none() && find_byte(b'\r', data).is_none()
}

/// The index entry of a new header line `s.data`, which starts at `pos` of
/// the new buffer `buf`; `None` unless it is one well-formed line whose name
/// is a token (what the parser would accept as a line of its own) and not
/// Content-Length (which the body depends on).
fn new_line(buf: &[u8], s: &Splice, pos: usize, content_length: u8) -> Option<HeaderEntry> {
    let d = &s.data;
    let content = d.strip_suffix(b"\r\n")?;
    if !inline(content) {
        return None;
    }
    let colon = content.iter().position(|&b| b == b':')?;
    let name = content.get(..colon)?;
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let id = known_id_bytes(name);
    if id == content_length {
        return None;
    }
    let content_end = pos + content.len();
    let raw_value = trim_range(buf, pos + colon + 1..content_end);
    Some(HeaderEntry {
        line: pos..pos + d.len(),
        content_end,
        name: pos..pos + colon,
        raw_value: raw_value.clone(),
        value: ValueLoc::Raw(raw_value),
        id,
    })
}

/// The message [`SipMessage::parse`] would make of `buf`, the output of
/// [`Edit::finish`] for `edit`, built from the original's index; `None` when
/// the edit is not one of the shapes handled here or the result would not be
/// the parser's (over `limits`, a folded header, an edit of Content-Length...).
pub(crate) fn reindex(edit: &Edit<'_>, buf: &Bytes, limits: &Limits) -> Option<SipMessage> {
    let old = edit.msg;
    if buf.len() > limits.max_message_bytes || !old.folded.is_empty() {
        return None;
    }
    let content_length = CONTENT_LENGTH;
    // new position = old position + delta
    let mut delta = -isize::try_from(old.msg_start).ok()?;
    let mut splices = edit.applied().peekable();

    // The start line: only a splice inside it (the Request-URI) may touch it.
    let hs = old.headers_start;
    let old_sl_end = if hs >= 2 && old.buf.get(hs - 2) == Some(&b'\r') {
        hs - 2
    } else {
        hs.checked_sub(1)?
    };
    let mut start_line_edited = false;
    while let Some(s) = splices.next_if(|s| s.range.start < old.headers_start) {
        if s.line || s.range.end > old_sl_end || !inline(&s.data) {
            return None;
        }
        start_line_edited = true;
        delta += growth(s);
    }
    // an untouched start line is the same bytes at another offset: its
    // index shifted is what parsing it again gives
    let start_line = if start_line_edited {
        parse_start_line(buf, 0..at(old_sl_end, delta)?).ok()?
    } else {
        match &old.start_line {
            StartLine::Request { method, uri } => StartLine::Request {
                method: shift(method, delta)?,
                uri: shift(uri, delta)?,
            },
            StartLine::Response { status, reason } => StartLine::Response {
                status: *status,
                reason: shift(reason, delta)?,
            },
        }
    };
    let headers_start = at(old.headers_start, delta)?;

    let mut entries = Vec::with_capacity(old.header_entries.len() + 4);
    for e in &old.header_entries {
        // new lines inserted right before this one
        while let Some(s) = splices.next_if(|s| {
            s.range.start < e.line.start || (s.range.start == e.line.start && s.range.is_empty())
        }) {
            if !s.line || s.range.start != e.line.start {
                return None;
            }
            entries.push(new_line(buf, s, at(s.range.start, delta)?, content_length)?);
            delta += growth(s);
        }
        let line_delta = delta;
        // the splices inside this line: the whole line removed, or edits
        // inside its value
        let (mut removed, mut touched) = (false, false);
        while let Some(s) = splices.next_if(|s| s.range.start < e.line.end) {
            let in_value = s.range.start >= e.raw_value.start && s.range.end <= e.raw_value.end;
            if s.line || e.id == content_length {
                return None;
            } else if s.range == e.line && s.data.is_empty() {
                removed = true;
            } else if in_value && matches!(e.value, ValueLoc::Raw(_)) && inline(&s.data) {
                touched = true;
            } else {
                return None;
            }
            delta += growth(s);
        }
        if removed {
            // a removal starts at the line: nothing else in it was applied
            continue;
        }
        if !touched {
            entries.push(HeaderEntry {
                line: shift(&e.line, line_delta)?,
                content_end: at(e.content_end, line_delta)?,
                name: shift(&e.name, line_delta)?,
                raw_value: shift(&e.raw_value, line_delta)?,
                value: match &e.value {
                    ValueLoc::Raw(r) => ValueLoc::Raw(shift(r, line_delta)?),
                    ValueLoc::Folded(_) => return None,
                },
                id: e.id,
            });
            continue;
        }
        // the parser's colon: the first one of the line, after the name
        let colon = e.name.end
            + old
                .buf
                .get(e.name.end..e.raw_value.start)?
                .iter()
                .position(|&b| b == b':')?;
        let content_end = at(e.content_end, delta)?;
        let raw_value = trim_range(buf, at(colon + 1, line_delta)?..content_end);
        entries.push(HeaderEntry {
            line: at(e.line.start, line_delta)?..at(e.line.end, delta)?,
            content_end,
            name: shift(&e.name, line_delta)?,
            raw_value: raw_value.clone(),
            value: ValueLoc::Raw(raw_value),
            id: e.id,
        });
    }
    // lines appended after the last one
    for s in splices {
        if !s.line || s.range.start != old.headers_end {
            return None;
        }
        entries.push(new_line(buf, s, at(s.range.start, delta)?, content_length)?);
        delta += growth(s);
    }
    if entries.len() > limits.max_headers {
        return None;
    }
    let headers_end = at(old.headers_end, delta)?;
    let body = shift(&old.body, delta)?;
    if body.end != buf.len() {
        return None;
    }
    let text = Utf8Prefix::check(buf, headers_end)?;
    let mut msg = SipMessage {
        buf: buf.clone(),
        msg_start: 0,
        start_line,
        headers_start,
        headers_end,
        header_entries: entries,
        folded: Vec::new(),
        body,
        top_via: None,
        text,
    };
    msg.top_via = msg.find_top_via();
    Some(msg)
}

/// Debug builds: the re-indexed message `m` is exactly what the parser makes
/// of its bytes (every test and fuzz run of an edit checks it).
#[cfg(any(test, debug_assertions))]
pub(crate) fn assert_same_as_parse(m: &SipMessage, limits: &Limits) {
    let parsed = SipMessage::parse(m.buf.clone(), limits);
    let Ok(p) = parsed else {
        panic!("re-indexed message does not parse: {parsed:?}");
    };
    assert_eq!(
        (
            p.msg_start,
            &p.start_line,
            p.headers_start,
            p.headers_end,
            &p.header_entries,
            &p.folded,
            &p.body,
            &p.top_via,
            &p.text
        ),
        (
            m.msg_start,
            &m.start_line,
            m.headers_start,
            m.headers_end,
            &m.header_entries,
            &m.folded,
            &m.body,
            &m.top_via,
            &m.text
        ),
        "re-indexed message differs from its parse:\n{}",
        String::from_utf8_lossy(&m.buf)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy's forwarding edits of an ordinary INVITE take the re-index
    /// path (not the parse fallback), and give the parser's message.
    #[test]
    fn forwarding_edits_are_reindexed_not_parsed() {
        let raw = "INVITE sip:0301234567@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-ph-1;rport\r\n\
Route: <sip:192.0.2.10;lr>, <sip:192.0.2.11;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:201@192.0.2.10>;tag=ph1\r\n\
To: <sip:0301234567@192.0.2.10>\r\n\
Call-ID: out1@10.0.0.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:201@10.0.0.20:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\r\n";
        let limits = Limits::default();
        let msg = SipMessage::parse(raw.as_bytes().to_vec(), &limits).expect("parses");
        let mut e = msg.edit();
        e.set_top_via_received(Some("10.0.0.20".parse().expect("ip")), Some(5062))
            .set_request_uri("sip:0301234567@203.0.113.5")
            .remove_first_value("Route")
            .set_max_forwards(69)
            .insert_first("Record-Route", "<sip:192.0.2.10:5060;lr>")
            .insert_first("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsc1")
            .replace_value(8, "<sip:masked@192.0.2.10>");
        let buf = Bytes::from(e.finish());
        let m = reindex(&e, &buf, &limits).expect("re-indexed without a parse");
        assert_same_as_parse(&m, &limits);
        assert_eq!(m.header("Max-Forwards"), Some("69"));
        assert_eq!(m.header("Route"), Some("<sip:192.0.2.11;lr>"));
        assert_eq!(m.vias().len(), 2);
        assert_eq!(m.body(), b"v=0\r");
    }
}
