//! Byte-preserving edits of a [`SipMessage`] and stateless responses.

use std::io::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use bytes::Bytes;

use super::error::ParseError;
use super::headers::HeaderEntry;
use super::limits::Limits;
use super::message::SipMessage;
use super::parse::{param_positions, subslice_range, value_ranges, NameAddr, Via};
use super::start_line::StartLine;

/// One replacement of `buf[range]` by `data` (an insertion when the range is empty).
#[derive(Debug, Clone)]
pub(crate) struct Splice {
    pub(crate) range: Range<usize>,
    pub(crate) data: Vec<u8>,
    /// `data` is a whole new header line (`name: value\r\n`) inserted at a
    /// line boundary ([`Edit::insert_first`], [`Edit::append_header`]).
    pub(crate) line: bool,
}

/// Byte-preserving editor: collects splices, [`Edit::finish`] applies them in one pass.
/// Everything not edited stays byte for byte; the output covers
/// [`SipMessage::as_bytes`] (leading CRLFs and bytes beyond Content-Length dropped).
/// Content-Length is never touched (bodies are not edited).
///
/// Positions always refer to the original message, so edits do not see each other:
/// e.g. two `insert_first("Via", ..)` calls both insert before the original first Via
/// (in call order). Insertions at the same position keep call order; of two overlapping
/// replacements/removals the one starting first (then the earlier call) wins and the
/// other is dropped. Names and values are written as given (CR/LF replaced by spaces
/// to keep the framing intact).
#[derive(Debug, Clone)]
pub struct Edit<'m> {
    pub(crate) msg: &'m SipMessage,
    /// Kept sorted by [`splice_key`].
    pub(crate) splices: Vec<Splice>,
}

/// The order splices are applied in: by start, an insertion (empty range)
/// before a replacement starting at the same byte.
pub(crate) fn splice_key(r: &Range<usize>) -> (usize, bool) {
    (r.start, !r.is_empty())
}

/// Replaces CR and LF with spaces so a caller's value cannot inject header lines.
fn clean(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
}

/// `n` in decimal, written into `buf` (no allocation); returns the digits.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Appends `ip` as its `Display` writes it (dotted quad; RFC 5952 text
/// for IPv6, through the formatter: it is rare).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 10];
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(decimal(u32::from(o), &mut buf).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn header_line(name: &str, value: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + value.len() + 4);
    v.extend(clean(name));
    v.extend_from_slice(b": ");
    v.extend(clean(value));
    v.extend_from_slice(b"\r\n");
    v
}

impl<'m> Edit<'m> {
    pub(crate) fn new(msg: &'m SipMessage) -> Self {
        Edit {
            msg,
            splices: Vec::with_capacity(8),
        }
    }

    /// Adds a splice, keeping `splices` in the order [`Edit::finish`] applies
    /// them: by start position, insertions before replacements there, and
    /// call order among equals (a stable insertion, so no sort is needed).
    fn splice(&mut self, range: Range<usize>, data: Vec<u8>) {
        self.splice_kind(range, data, false);
    }

    /// [`Edit::splice`] of a whole new header line at a line boundary.
    fn splice_line(&mut self, pos: usize, data: Vec<u8>) {
        self.splice_kind(pos..pos, data, true);
    }

    fn splice_kind(&mut self, range: Range<usize>, data: Vec<u8>, line: bool) {
        let key = splice_key(&range);
        let at = self
            .splices
            .partition_point(|s| splice_key(&s.range) <= key);
        self.splices.insert(at, Splice { range, data, line });
    }

    fn first_entry(&self, name: &str) -> Option<&'m HeaderEntry> {
        let msg: &'m SipMessage = self.msg;
        msg.first_named(name).map(|(_, e)| e)
    }

    /// Buffer ranges of the comma-separated values of a header line (trimmed).
    fn line_values(&self, e: &HeaderEntry) -> impl Iterator<Item = Range<usize>> + 'm {
        let msg: &'m SipMessage = self.msg;
        let raw = msg.raw_value(e);
        let base = e.raw_value.start;
        value_ranges(raw).map(move |r| base + r.start..base + r.end)
    }

    /// Inserts a new line `name: value\r\n` that becomes the first value of that header:
    /// right before its first existing line, else right after the start line (push a Via,
    /// RFC 3261 16.6 step 8; add a Record-Route, 16.6 step 4).
    pub fn insert_first(&mut self, name: &str, value: &str) -> &mut Self {
        let pos = self
            .first_entry(name)
            .map_or(self.msg.headers_start, |e| e.line.start);
        self.splice_line(pos, header_line(name, value));
        self
    }

    /// [`Edit::insert_first`] of the value made of `parts` written one after
    /// the other (e.g. a constant Via prefix and a branch), without joining
    /// them into a `String` first.
    pub fn insert_first_parts(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        let pos = self
            .first_entry(name)
            .map_or(self.msg.headers_start, |e| e.line.start);
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut v = Vec::with_capacity(name.len() + len + 4);
        v.extend(clean(name));
        v.extend_from_slice(b": ");
        for p in parts {
            v.extend(clean(p));
        }
        v.extend_from_slice(b"\r\n");
        self.splice_line(pos, v);
        self
    }

    /// Removes the first value of header `name`: if its first line holds `a, b` only
    /// `a, ` goes, else the whole line goes (pop our Via from a response, RFC 3261 16.7
    /// step 3; pop a Route, 16.4). No effect if the header is absent.
    pub fn remove_first_value(&mut self, name: &str) -> &mut Self {
        let Some(e) = self.first_entry(name) else {
            return self;
        };
        let mut values = self.line_values(e);
        match (values.next(), values.next()) {
            (Some(a), Some(b)) => {
                let r = a.start..b.start;
                self.splice(r, Vec::new());
            }
            _ => {
                let r = e.line.clone();
                self.splice(r, Vec::new());
            }
        }
        self
    }

    /// Replaces the value of header line `header_index` (0-based, see
    /// [`Header::index`](crate::Header)), keeping its name, separator and line end as
    /// written. No effect for an index out of range.
    pub fn replace_value(&mut self, header_index: usize, value: &str) -> &mut Self {
        let Some(e) = self.msg.header_entries.get(header_index) else {
            return self;
        };
        let r = e.raw_value.clone();
        let mut data = Vec::with_capacity(value.len() + 1);
        // An empty value ("Subject:") gets a space after the colon.
        if r.is_empty() && r.start > 0 && self.msg.buf.get(r.start - 1) == Some(&b':') {
            data.push(b' ');
        }
        data.extend(clean(value));
        self.splice(r, data);
        self
    }

    /// Removes header line `header_index` (with its folded continuation lines). No effect
    /// for an index out of range.
    pub fn remove_header(&mut self, header_index: usize) -> &mut Self {
        if let Some(e) = self.msg.header_entries.get(header_index) {
            let r = e.line.clone();
            self.splice(r, Vec::new());
        }
        self
    }

    /// Replaces the Request-URI (RFC 3261 16.6 step 6, 16.12; requests only, no effect
    /// on a response). `uri` must not contain whitespace (it is written as given).
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        if let StartLine::Request { uri: r, .. } = &self.msg.start_line {
            let r = r.clone();
            self.splice(r, clean(uri).collect());
        }
        self
    }

    /// Sets Max-Forwards to `n` (RFC 3261 16.6 step 3): replaces the first line's value,
    /// or appends `Max-Forwards: n` after the last header line if absent.
    pub fn set_max_forwards(&mut self, n: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let value = decimal(n, &mut digits);
        match self.msg.first_named("Max-Forwards") {
            Some((i, _)) => self.replace_value(i, value),
            None => self.append_header("Max-Forwards", value),
        }
    }

    /// RFC 3261 18.2.1 and RFC 3581 on the first Via value only: adds (at the end of that
    /// value) or replaces `;received=IP` when `received` is `Some` (IPv6 written without
    /// brackets, RFC 5118 4.5), and when `rport` is `Some` and the Via has an `rport`
    /// parameter gives it that value (`;rport` -> `;rport=5062`). No effect without a
    /// parseable first Via value.
    pub fn set_top_via_received(
        &mut self,
        received: Option<IpAddr>,
        rport: Option<u16>,
    ) -> &mut Self {
        let Some(e) = self.first_entry("Via") else {
            return self;
        };
        let Some(vr) = self.line_values(e).next() else {
            return self;
        };
        let Some(value) = self
            .msg
            .buf
            .get(vr.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            return self;
        };
        // the top Via parsed when the message was built, when it is this very
        // value (the same bytes of the buffer: not a folded line's copy, not a
        // later value after an empty one); else parsed here
        let cached = self
            .msg
            .top_via()
            .filter(|v| v.raw.as_ptr() == value.as_ptr() && v.raw.len() == value.len());
        let Some(via) = cached.or_else(|| Via::parse(value).ok()) else {
            return self;
        };
        let Some(pr) = subslice_range(value, via.params) else {
            return self;
        };
        let params_base = vr.start + pr.start;
        let find = |name: &str| {
            param_positions(via.params).find(|p| {
                via.params
                    .get(p.name.clone())
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };
        if let Some(ip) = received {
            match find("received") {
                Some(p) => {
                    let r = params_base + p.whole.start..params_base + p.whole.end;
                    let mut data = Vec::with_capacity(48);
                    data.extend_from_slice(b"received=");
                    push_ip(&mut data, ip);
                    self.splice(r, data);
                }
                None => {
                    let end = vr.end;
                    let mut data = Vec::with_capacity(48);
                    data.extend_from_slice(b";received=");
                    push_ip(&mut data, ip);
                    self.splice(end..end, data);
                }
            }
        }
        if let (Some(port), Some(p)) = (rport, find("rport")) {
            let r = params_base + p.whole.start..params_base + p.whole.end;
            let mut data = Vec::with_capacity(11);
            let mut buf = [0u8; 10];
            data.extend_from_slice(b"rport=");
            data.extend_from_slice(decimal(u32::from(port), &mut buf).as_bytes());
            self.splice(r, data);
        }
        self
    }

    /// Appends `name: value\r\n` after the last header line.
    pub fn append_header(&mut self, name: &str, value: &str) -> &mut Self {
        let pos = self.msg.headers_end;
        self.splice_line(pos, header_line(name, value));
        self
    }

    /// Applies all splices in one pass and returns the new message bytes. The edit can
    /// be finished again or extended afterwards.
    ///
    /// The result is a new `Vec<u8>` (built once, the original message is not touched);
    /// `bytes::Bytes::from` it to store or queue it without another copy.
    pub fn finish(&self) -> Vec<u8> {
        let buf = &self.msg.buf;
        let (start, end) = self.bounds();
        let extra: usize = self.splices.iter().map(|s| s.data.len()).sum();
        let mut out = Vec::with_capacity(end.saturating_sub(start) + extra);
        let mut cursor = start;
        for s in self.applied() {
            out.extend_from_slice(buf.get(cursor..s.range.start).unwrap_or_default());
            out.extend_from_slice(&s.data);
            cursor = s.range.end;
        }
        out.extend_from_slice(buf.get(cursor..end).unwrap_or_default());
        out
    }

    /// [`Edit::finish`] as a parsed message, within `limits`: the same bytes, and
    /// the same message [`SipMessage::parse`] would make of them.
    ///
    /// The usual edits of a proxy (values replaced inside one header line, whole
    /// lines inserted or removed, the Request-URI replaced) are re-indexed from
    /// the original's index, shifted by the known lengths, without parsing the
    /// header section again; anything else (e.g. an edit of a folded header or
    /// of Content-Length) is parsed as [`SipMessage::parse`] does.
    ///
    /// Errors: those of [`SipMessage::parse`] on the edited bytes (e.g.
    /// [`crate::ParseError::TooLarge`] when the edit grew past
    /// `limits.max_message_bytes`).
    pub fn finish_message(&self, limits: &Limits) -> Result<SipMessage, ParseError> {
        let bytes = Bytes::from(self.finish());
        match super::reindex::reindex(self, &bytes, limits) {
            Some(m) => {
                #[cfg(debug_assertions)]
                super::reindex::assert_same_as_parse(&m, limits);
                Ok(m)
            }
            None => SipMessage::parse(bytes, limits),
        }
    }

    /// The length in bytes of what [`Edit::finish`] returns, without building it.
    pub fn finished_len(&self) -> usize {
        let (start, end) = self.bounds();
        self.applied().fold(end.saturating_sub(start), |n, s| {
            (n + s.data.len()).saturating_sub(s.range.len())
        })
    }

    /// The part of the original message the output covers: start line to the
    /// end of the body.
    pub(crate) fn bounds(&self) -> (usize, usize) {
        let m = self.msg;
        (m.msg_start, m.body.end.min(m.buf.len()))
    }

    /// The splices [`Edit::finish`] applies, in order: those inside
    /// [`Edit::bounds`] and not overlapping an earlier one (see the type docs).
    pub(crate) fn applied(&self) -> impl Iterator<Item = &Splice> + '_ {
        let (start, end) = self.bounds();
        let mut cursor = start;
        self.splices.iter().filter(move |s| {
            if s.range.start < start || s.range.end > end || s.range.start > s.range.end {
                return false;
            }
            if s.range.start < cursor {
                // Overlaps an earlier replacement: dropped (see type docs).
                return false;
            }
            cursor = s.range.end;
            true
        })
    }
}

/// The To URI used when a request's To is missing or holds no usable URI: the anonymous URI
/// of RFC 3261 8.1.1.3.
pub const FALLBACK_TO_URI: &str = "sip:anonymous@anonymous.invalid";

/// A well-formed To header value for a response to a request whose To value is `value`,
/// carrying a tag (RFC 3261 8.2.6.2: the response's To is the request's plus a tag).
///
/// * `value` parses as a name-addr and has a non-empty tag: returned as is (trimmed).
/// * It parses, has no `tag` parameter, is not an addr-spec with `?` headers, and
///   `value;tag=TAG` parses with that tag (an unclosed quote in a parameter would swallow
///   it): `value;tag=TAG`.
/// * It parses but its tag is a flag or empty (`;tag`, `;tag=`): `<URI>;tag=TAG`, since a
///   second `tag` would not be the one a reader takes.
/// * Otherwise it cannot carry a tag well-formed (an unclosed quote, RFC 4475 3.1.2.6
///   `quotbal`, would swallow the tag; an addr-spec with `?`, RFC 4475 3.1.2.13, would read
///   the tag as a URI header). Then the display name is dropped and the URI of the last
///   `<...>` in the value is kept, `<URI>;tag=TAG`: after an unclosed quote the last
///   bracketed URI is the one a liberal reader would take (RFC 4475 3.1.2.6's example). Without
///   one, the first word of the value up to any `?` or `;` (URI headers and parameters
///   dropped) is used when it parses as a URI, and [`FALLBACK_TO_URI`] otherwise (so a
///   missing To may be given as `""`).
///
/// The result always parses as a name-addr whose tag is the (reduced) `tag`: whatever is
/// built is checked, and `<`[`FALLBACK_TO_URI`]`>;tag=TAG` is the last resort.
///
/// `tag` is reduced to RFC 3261 `token` characters (`tag` itself when it is one already;
/// `0` if none is left). CR, LF and control characters never reach the result.
pub fn to_with_tag(value: &str, tag: &str) -> String {
    let tag: String = tag
        .bytes()
        .filter(|&b| super::message::is_token_byte(b))
        .map(char::from)
        .collect();
    let tag = if tag.is_empty() { "0".to_string() } else { tag };
    let value = value.trim();
    let clean_uri = |u: &str| {
        !u.is_empty()
            && !u
                .bytes()
                .any(|b| b.is_ascii_control() || matches!(b, b'<' | b'>' | b'"' | b' ' | b'\t'))
            && super::parse::Uri::parse(u).is_ok()
    };
    let parsed = NameAddr::parse(value).ok();
    if let Some(na) = &parsed {
        let addr_spec_with_headers = !value.contains('<') && value.contains('?');
        let controls = value.bytes().any(|b| b.is_ascii_control());
        if !controls && !addr_spec_with_headers {
            if has_tag(na) {
                return value.to_string();
            }
            let appended = format!("{value};tag={tag}");
            if na.param("tag").is_none() && carries_tag(&appended, &tag) {
                return appended;
            }
        }
    }
    // a `tag` flag or an empty tag: keep the URI only (a second tag would not count)
    if let Some(na) = parsed.filter(|na| na.param("tag").is_some() && clean_uri(na.uri)) {
        return format!("<{}>;tag={tag}", na.uri);
    }
    let bracketed = value.rfind('<').and_then(|open| {
        let rest = &value[open + 1..];
        rest.find('>').map(|close| &rest[..close])
    });
    let uri = match bracketed {
        Some(u) if clean_uri(u) => u,
        _ => match value.split_whitespace().next() {
            Some(w) => w.split(['?', ';']).next().unwrap_or(w),
            None => FALLBACK_TO_URI,
        },
    };
    let uri = if clean_uri(uri) { uri } else { FALLBACK_TO_URI };
    let rebuilt = format!("<{uri}>;tag={tag}");
    if carries_tag(&rebuilt, &tag) {
        rebuilt
    } else {
        format!("<{FALLBACK_TO_URI}>;tag={tag}")
    }
}

/// True when `value` parses as a name-addr whose tag is `tag`.
fn carries_tag(value: &str, tag: &str) -> bool {
    NameAddr::parse(value).is_ok_and(|na| na.tag() == Some(tag))
}

/// True when `na` has a `tag` parameter with a non-empty value.
fn has_tag(na: &NameAddr<'_>) -> bool {
    na.tag().is_some_and(|t| !t.is_empty())
}

/// Builds a response to `req` (RFC 3261 8.2.6.2): status line `SIP/2.0 status reason`,
/// all Via lines copied as written in order, From, To, Call-ID and CSeq copied (first
/// line of each), then `extra` headers and `Content-Length: 0`. Works on a request that
/// failed [`SipMessage::validate`]: copies what there is. CR/LF in `reason` or `extra`
/// are replaced by spaces; every copied line ends in CRLF.
///
/// To: when `status > 100`, `to_tag` is `Some` and the request's To has no tag, the
/// response's To gets `;tag=to_tag`: appended to the line as written when the value is a
/// well-formed name-addr, else the line is rebuilt by [`to_with_tag`] (so the tag never
/// lands inside an unclosed quote); a request without To gets `To: <`[`FALLBACK_TO_URI`]`>`
/// with the tag, so that every final response the proxy makes itself carries a To tag.
pub fn response_for(
    req: &SipMessage,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 ");
    let mut buf = [0u8; 10];
    let digits = decimal(u32::from(status), &mut buf);
    // `{status:03}`: at least three digits
    out.extend_from_slice(b"000".get(digits.len()..).unwrap_or_default());
    out.extend_from_slice(digits.as_bytes());
    out.push(b' ');
    out.extend(clean(reason));
    out.extend_from_slice(b"\r\n");
    let copy_line = |out: &mut Vec<u8>, e: &HeaderEntry| {
        out.extend_from_slice(req.buf.get(e.line.start..e.content_end).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    };
    for (_, e) in req.entries_named("Via") {
        copy_line(&mut out, e);
    }
    if let Some((_, e)) = req.first_named("From") {
        copy_line(&mut out, e);
    }
    let tag = to_tag.filter(|_| status > 100);
    match (req.first_named("To"), tag) {
        (Some((_, e)), Some(tag)) => {
            let value = req.raw_value(e);
            let parsed = NameAddr::parse(value);
            let tagged = parsed.as_ref().is_ok_and(has_tag);
            let appendable = parsed.as_ref().is_ok_and(|na| na.param("tag").is_none())
                && carries_tag(&format!("{value};tag={tag}"), tag)
                && (value.contains('<') || !value.contains('?'))
                && !value.bytes().any(|b| b.is_ascii_control());
            if tagged {
                copy_line(&mut out, e);
            } else if appendable {
                out.extend_from_slice(
                    req.buf
                        .get(e.line.start..e.raw_value.end)
                        .unwrap_or_default(),
                );
                out.extend_from_slice(b";tag=");
                out.extend(clean(tag));
                out.extend_from_slice(
                    req.buf
                        .get(e.raw_value.end..e.content_end)
                        .unwrap_or_default(),
                );
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend(header_line("To", &to_with_tag(value, tag)));
            }
        }
        (Some((_, e)), None) => copy_line(&mut out, e),
        (None, Some(tag)) => out.extend(header_line("To", &to_with_tag("", tag))),
        (None, None) => {}
    }
    for name in ["Call-ID", "CSeq"] {
        if let Some((_, e)) = req.first_named(name) {
            copy_line(&mut out, e);
        }
    }
    for (name, value) in extra {
        out.extend(header_line(name, value));
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// A name-addr header value (`Contact`, `Route`...) with its URI replaced by
/// `uri`, always in angle brackets (so URI parameters cannot be read as
/// header parameters, RFC 3261 20.10); display name and header parameters
/// kept. `None` when `value` is not a name-addr or addr-spec.
///
/// `"A" <sip:201@10.0.0.5;ob>;expires=60` with `sip:x@y` gives
/// `"A" <sip:x@y>;expires=60`; `sip:201@h;expires=60` gives `<sip:x@y>;expires=60`.
pub fn with_uri(value: &str, uri: &str) -> Option<String> {
    let na = crate::NameAddr::parse(value).ok()?;
    let r = na.uri_range();
    let before = value.get(..r.start)?.trim_end_matches('<');
    let after = value.get(r.end..)?.trim_start_matches('>');
    let mut out = String::with_capacity(before.len() + uri.len() + after.len() + 2);
    out.push_str(before);
    out.push('<');
    out.push_str(uri);
    out.push('>');
    out.push_str(after);
    Some(out)
}

#[cfg(test)]
mod format_tests {
    use std::net::IpAddr;

    #[test]
    fn status_line_pads_to_three_digits() {
        let req = crate::SipMessage::parse(
            b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
            &crate::Limits::default(),
        )
        .expect("parses");
        for status in [0u16, 7, 42, 100, 699, 1000, u16::MAX] {
            let out = super::response_for(&req, status, "R", None, &[]);
            let want = format!("SIP/2.0 {status:03} R\r\n");
            assert!(out.starts_with(want.as_bytes()), "{status}");
        }
    }

    /// `set_top_via_received` takes the cached top Via only when it is the
    /// first value of the first Via line as written: not after an empty
    /// value, not from a folded line's unfolded copy.
    #[test]
    fn top_via_received_on_cached_empty_and_folded_values() {
        let head = "OPTIONS sip:h SIP/2.0\r\n";
        let tail = "From: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        for (via, want) in [
            (
                "Via: SIP/2.0/UDP h;rport\r\n",
                "Via: SIP/2.0/UDP h;rport=5;received=1.2.3.4\r\n",
            ),
            (
                "v: SIP/2.0/UDP h;received=9.9.9.9 ;rport, SIP/2.0/UDP x;rport\r\n",
                "v: SIP/2.0/UDP h;received=1.2.3.4 ;rport=5, SIP/2.0/UDP x;rport\r\n",
            ),
            (
                "Via: ,SIP/2.0/UDP h;rport\r\n",
                "Via: ,SIP/2.0/UDP h;rport\r\n",
            ),
            (
                "Via: SIP/2.0/UDP h\r\n ;rport\r\n",
                "Via: SIP/2.0/UDP h\r\n ;rport=5;received=1.2.3.4\r\n",
            ),
        ] {
            let raw = format!("{head}{via}{tail}");
            let m = crate::SipMessage::parse(raw.into_bytes(), &crate::Limits::default())
                .expect("parses");
            let mut e = m.edit();
            e.set_top_via_received(Some([1, 2, 3, 4].into()), Some(5));
            let out = String::from_utf8(e.finish()).expect("text");
            assert_eq!(out, format!("{head}{want}{tail}"), "{via:?}");
            let again = e
                .finish_message(&crate::Limits::default())
                .expect("re-parses");
            assert_eq!(again.as_bytes(), out.as_bytes());
        }
    }

    #[test]
    fn push_ip_writes_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            let mut out = Vec::new();
            super::push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes());
        }
    }
}
