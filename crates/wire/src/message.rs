//! [`SipMessage`]: zero-copy parsed SIP message with a header index (RFC 3261 7).
//!
//! The header index entries and header names are in `headers`, the start line in
//! `start_line`, the size limits in `limits`, the well-formedness checks
//! ([`SipMessage::validate`]) in `message/validate.rs`.

use std::ops::Range;

use bytes::Bytes;

use super::edit::Edit;
use super::error::ParseError;
use super::headers::{
    known_id_bytes, names_eq, Header, HeaderEntry, NameMatch, ValueLoc, CALL_ID, CONTENT_LENGTH,
    CSEQ, FROM, MAX_FORWARDS, TO, VIA,
};
use super::limits::Limits;
use super::parse::{split_values, subslice_range, NameAddr, Via};
use super::scan::find_byte;
use super::start_line::{parse_start_line, StartLine};

mod validate;

/// Header index entries reserved up front: a typical request or response has
/// 8 to 14 header lines, so one allocation covers it.
const ENTRIES_CAPACITY: usize = 16;

/// What [`SipMessage::index_head`] finds before the buffer is moved into the message.
struct Head {
    msg_start: usize,
    start_line: StartLine,
    headers_start: usize,
    headers_end: usize,
    entries: Vec<HeaderEntry>,
    folded: Vec<String>,
    body_start: usize,
    text: Utf8Prefix,
}

/// A parsed SIP request or response that holds its bytes and indexes ranges into them.
///
/// Built by [`SipMessage::parse`]; all accessors return slices into the buffer. The
/// buffer is a reference-counted [`Bytes`]: cloning a message, or taking
/// [`SipMessage::bytes`], shares it instead of copying it.
#[derive(Debug, Clone)]
pub struct SipMessage {
    pub(crate) buf: Bytes,
    /// First byte of the start line (after skipped leading CRLFs).
    pub(crate) msg_start: usize,
    pub(crate) start_line: StartLine,
    /// First byte after the start line's terminator (where headers begin).
    pub(crate) headers_start: usize,
    /// First byte of the blank line ending the header section.
    pub(crate) headers_end: usize,
    pub(crate) header_entries: Vec<HeaderEntry>,
    pub(crate) folded: Vec<String>,
    pub(crate) body: Range<usize>,
    /// The top Via value, parsed once when the message is built (see
    /// [`SipMessage::top_via`]); `None` if it is absent or does not parse.
    pub(crate) top_via: Option<TopVia>,
    /// How much of `buf` was checked to be UTF-8 when the message was built
    /// (start line and headers): accessors slice it without checking again.
    pub(crate) text: Utf8Prefix,
}

/// A prefix `buf[..n]` of a message's buffer that was checked to be UTF-8.
/// Only [`Utf8Prefix::check`] makes one (besides the empty default), and a
/// message keeps it next to the immutable [`Bytes`] it checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Utf8Prefix(usize);

impl Utf8Prefix {
    /// `buf[..end]` checked to be UTF-8; `None` if it is not (or `end` is past
    /// the buffer).
    pub(crate) fn check(buf: &[u8], end: usize) -> Option<Utf8Prefix> {
        std::str::from_utf8(buf.get(..end)?).ok()?;
        Some(Utf8Prefix(end))
    }
}

/// Where the parts of the top Via value (RFC 3261 20.42) are: the index entry
/// of the first Via line and ranges into that entry's value (the unfolded
/// value for a folded line). Found by [`SipMessage::find_top_via`].
/// Kept as `u32` pairs (a message is far smaller than 4 GiB: see [`Limits`]) so
/// the message stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopVia {
    entry: u32,
    raw: Span,
    protocol: Span,
    transport: Span,
    host: Span,
    params: Span,
    port: Option<u16>,
}

/// A byte range as `(start, end)` in `u32`.
type Span = (u32, u32);

/// The [`Span`] of `inner`, a slice of `outer`.
fn span(outer: &str, inner: &str) -> Option<Span> {
    let r = subslice_range(outer, inner)?;
    Some((u32::try_from(r.start).ok()?, u32::try_from(r.end).ok()?))
}

/// `s[span]`.
fn at_span(s: &str, (a, b): Span) -> Option<&str> {
    s.get(usize::try_from(a).ok()?..usize::try_from(b).ok()?)
}

/// Splits `buf[from..]` into the next line: returns (content_end, next_line_start), or
/// `None` if no line terminator follows.
fn next_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rel = find_byte(b'\n', buf.get(from..)?)?;
    let lf = from + rel;
    let content_end = if lf > from && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    Some((content_end, lf + 1))
}

/// `TOKEN[b]`: whether byte `b` may appear in a token (RFC 3261 25.1).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

/// Whether `b` is a token character (RFC 3261 25.1: alphanumerics and
/// `-.!%*_+`'~`).
pub(crate) const fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SP / HT / CR / LF from both ends of `buf[r]`, returning the trimmed range.
pub(crate) fn trim_range(buf: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && buf.get(r.start).is_some_and(|b| b.is_ascii_whitespace()) {
        r.start += 1;
    }
    while r.end > r.start && buf.get(r.end - 1).is_some_and(|b| b.is_ascii_whitespace()) {
        r.end -= 1;
    }
    r
}

/// Parses a decimal number made of 1..=`max_digits` ASCII digits.
pub(crate) fn parse_digits(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits {
        return None;
    }
    // what `s.parse::<u64>()` gives for ASCII digits, in one pass without
    // its generic sign handling (on overflow: `None`, as `parse` gives)
    let mut n: u64 = 0;
    for d in s.bytes() {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(v))?;
    }
    Some(n)
}

impl SipMessage {
    /// Parses a message (RFC 3261 7, 7.5, 18.3) from `buf` (bytes as received), within
    /// `limits`, indexing start line and headers without copying (a folded value gets
    /// one owned, unfolded copy).
    ///
    /// Leading CRLFs are skipped. Lines may end in CRLF or a bare LF. Any header-name
    /// case, compact forms, whitespace before the colon, line folding (RFC 3261 7.3.1),
    /// extension methods and any URI scheme are accepted; the SIP-Version must be
    /// `SIP/2.0` ([`ParseError::BadVersion`], status 505). The body is everything after
    /// the blank line, cut to Content-Length when present (extra bytes, e.g. a second
    /// message in a datagram, are ignored: RFC 3261 18.3); a Content-Length larger than
    /// the bytes present ([`ParseError::BodyTooShort`]) or two different Content-Length
    /// values ([`ParseError::BadContentLength`]) are errors. Bodies are opaque bytes.
    ///
    /// Errors: [`ParseError::TooLarge`] over `limits.max_message_bytes`,
    /// [`ParseError::TooManyHeaders`] over `limits.max_headers`, [`ParseError::Incomplete`]
    /// without a blank line, [`ParseError::NotUtf8`], [`ParseError::HeaderWithoutColon`],
    /// [`ParseError::BadStartLine`] and the others above.
    ///
    /// Mandatory headers are not checked here: see [`SipMessage::validate`].
    ///
    /// `buf` is anything that converts into [`Bytes`] without copying: a `Vec<u8>`
    /// (taken over as it is), a `Bytes` (kept, reference-counted: the message shares
    /// the allocation with every other clone of it), a `&'static [u8]`.
    pub fn parse(buf: impl Into<Bytes>, limits: &Limits) -> Result<SipMessage, ParseError> {
        Self::parse_or_return(buf, limits).map_err(|(e, _)| e)
    }

    /// [`SipMessage::parse`] that hands the buffer back with the error, so a
    /// caller can still salvage an answer (a 400 built from the raw lines)
    /// without copying every message it parses.
    ///
    /// Errors: as [`SipMessage::parse`], with the bytes given (as [`Bytes`]: the same
    /// allocation, not a copy).
    pub fn parse_or_return(
        buf: impl Into<Bytes>,
        limits: &Limits,
    ) -> Result<SipMessage, (ParseError, Bytes)> {
        let buf: Bytes = buf.into();
        let head = match Self::index_head(&buf, limits) {
            Ok(h) => h,
            Err(e) => return Err((e, buf)),
        };
        let Head {
            msg_start,
            start_line,
            headers_start,
            headers_end,
            entries,
            folded,
            body_start,
            text,
        } = head;
        let mut msg = SipMessage {
            buf,
            msg_start,
            start_line,
            headers_start,
            headers_end,
            header_entries: entries,
            folded,
            body: body_start..body_start,
            top_via: None,
            text,
        };

        match msg.cut_body(body_start) {
            Ok(()) => {
                msg.top_via = msg.find_top_via();
                Ok(msg)
            }
            Err(e) => Err((e, msg.buf)),
        }
    }

    /// Cuts the body to Content-Length (RFC 3261 18.3, 20.14).
    fn cut_body(&mut self, body_start: usize) -> Result<(), ParseError> {
        let mut content_length: Option<usize> = None;
        for e in self
            .header_entries
            .iter()
            .filter(|e| e.id == CONTENT_LENGTH)
        {
            let n = parse_digits(self.entry_value(e), 10).ok_or(ParseError::BadContentLength)?;
            let n = usize::try_from(n).map_err(|_| ParseError::BadContentLength)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(ParseError::BadContentLength);
            }
            content_length = Some(n);
        }
        let available = self.buf.len() - body_start;
        let body_len = match content_length {
            Some(n) if n > available => {
                return Err(ParseError::BodyTooShort {
                    expected: n,
                    got: available,
                })
            }
            Some(n) => n,
            None => available,
        };
        self.body = body_start..body_start + body_len;
        Ok(())
    }

    /// Indexes the start line and the header section of `buf` (the part of
    /// [`SipMessage::parse`] that only reads the bytes).
    fn index_head(buf: &[u8], limits: &Limits) -> Result<Head, ParseError> {
        if buf.len() > limits.max_message_bytes {
            return Err(ParseError::TooLarge);
        }
        // RFC 3261 7.5: ignore CRLFs before the start line.
        let mut pos = 0;
        while let Some(&b) = buf.get(pos) {
            if b == b'\r' || b == b'\n' {
                pos += 1;
            } else {
                break;
            }
        }
        if pos >= buf.len() {
            return Err(ParseError::Empty);
        }
        let msg_start = pos;
        let (sl_end, headers_start) = next_line(buf, pos).ok_or(ParseError::Incomplete)?;
        let start_line = parse_start_line(buf, msg_start..sl_end)?;

        // One allocation for the usual message (a dozen header lines).
        let mut entries: Vec<HeaderEntry> = Vec::with_capacity(ENTRIES_CAPACITY);
        let mut folded: Vec<String> = Vec::new();
        // where the value of the last header line starts (after its colon),
        // and whether any line has continuation lines
        let (mut colon_end, mut any_folded) = (0, false);
        let mut pos = headers_start;
        let headers_end;
        loop {
            let (content_end, next) = next_line(buf, pos).ok_or(ParseError::Incomplete)?;
            if content_end == pos {
                headers_end = pos;
                break;
            }
            let first = buf.get(pos).copied().unwrap_or(b'\n');
            if is_ws(first) {
                // Continuation of the previous header line (RFC 3261 7.3.1).
                // (`ValueLoc::Folded` marks an entry with continuation
                // lines until the values are unfolded below.)
                match entries.last_mut() {
                    Some(e) => {
                        e.line.end = next;
                        e.content_end = content_end;
                        e.raw_value = trim_range(buf, colon_end..content_end);
                        e.value = ValueLoc::Folded(0);
                        any_folded = true;
                    }
                    None => return Err(ParseError::HeaderWithoutColon(0)),
                }
            } else {
                if entries.len() >= limits.max_headers {
                    return Err(ParseError::TooManyHeaders);
                }
                let idx = entries.len();
                let line = buf.get(pos..content_end).unwrap_or_default();
                // The usual line: a token name right before the colon. (A
                // token has no `:` and no whitespace, so that colon is the
                // first one and the name needs no trimming.)
                let n = line
                    .iter()
                    .position(|&b| !is_token_byte(b))
                    .unwrap_or(line.len());
                let (name, colon) = if n > 0 && line.get(n) == Some(&b':') {
                    (pos..pos + n, n)
                } else {
                    let colon = line
                        .iter()
                        .position(|&b| b == b':')
                        .ok_or(ParseError::HeaderWithoutColon(idx))?;
                    let name = trim_range(buf, pos..pos + colon);
                    if name.start != pos
                        || name.is_empty()
                        || !buf
                            .get(name.clone())
                            .unwrap_or_default()
                            .iter()
                            .all(|&b| is_token_byte(b))
                    {
                        return Err(ParseError::BadHeaderName(idx));
                    }
                    (name, colon)
                };
                let id = known_id_bytes(buf.get(name.clone()).unwrap_or_default());
                // the value trimmed (an empty one stays where it ends, for
                // edits of empty values)
                colon_end = pos + colon + 1;
                let raw_value = trim_range(buf, colon_end..content_end);
                entries.push(HeaderEntry {
                    line: pos..next,
                    content_end,
                    name,
                    raw_value: raw_value.clone(),
                    value: ValueLoc::Raw(raw_value),
                    id,
                });
            }
            pos = next;
        }
        let (_, body_start) = next_line(buf, headers_end).ok_or(ParseError::Incomplete)?;
        // (what precedes `msg_start` is CR and LF only)
        let text = Utf8Prefix::check(buf, headers_end).ok_or(ParseError::NotUtf8)?;

        // Unfold the values of lines with continuation lines.
        for e in entries.iter_mut().filter(|_| any_folded) {
            if !matches!(e.value, ValueLoc::Folded(_)) {
                continue;
            }
            let raw = std::str::from_utf8(buf.get(e.raw_value.clone()).unwrap_or_default())
                .unwrap_or_default();
            let mut s = String::with_capacity(raw.len());
            for piece in raw.split('\n') {
                let piece = piece.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
                if piece.is_empty() {
                    continue;
                }
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(piece);
            }
            e.value = ValueLoc::Folded(folded.len());
            folded.push(s);
        }

        Ok(Head {
            msg_start,
            start_line,
            headers_start,
            headers_end,
            entries,
            folded,
            body_start,
            text,
        })
    }

    /// The message bytes: from the start line (leading CRLFs skipped) to the end of the
    /// body (bytes beyond Content-Length excluded).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
            .get(self.msg_start..self.body.end)
            .unwrap_or_default()
    }

    /// The bytes [`SipMessage::as_bytes`] returns (start line to the end of the body;
    /// leading CRLFs and bytes beyond Content-Length excluded) as a reference-counted
    /// [`Bytes`] view into the message's buffer: no copy, whatever was skipped. The
    /// view keeps the whole buffer it was parsed from alive (for a received message,
    /// the allocation the socket read into) until it and every clone are dropped.
    pub fn bytes(&self) -> Bytes {
        let end = self.body.end.min(self.buf.len());
        self.buf.slice(self.msg_start.min(end)..end)
    }

    /// Gives back the buffer cut to what [`SipMessage::as_bytes`] returns, as
    /// [`SipMessage::bytes`] does (a view into the same allocation, never a copy).
    /// `Vec::from` it for an owned vector (which copies unless the view is the only
    /// handle to the whole allocation).
    pub fn into_bytes(self) -> Bytes {
        self.bytes()
    }

    /// `buf[r]` as text; `""` if `r` is out of the buffer or not UTF-8.
    ///
    /// Inside the start line and headers (checked once when the message was
    /// built, see [`Utf8Prefix`]) this is not checked again: the accessors call
    /// it for every value they return (it was ~7 % of the proxy's instructions).
    #[allow(unsafe_code)]
    fn slice(&self, r: &Range<usize>) -> &str {
        let Some(b) = self.buf.get(r.clone()) else {
            return "";
        };
        if r.end <= self.text.0 && self.text_boundary(r.start) && self.text_boundary(r.end) {
            // SAFETY: `buf[..self.text.0]` was checked to be UTF-8 by
            // `Utf8Prefix::check` on this same buffer (`Bytes` never changes its
            // contents), `r.start <= r.end <= self.text.0` (`get` succeeded), and
            // both ends are char boundaries of that text (`text_boundary`); a
            // slice of valid UTF-8 between two char boundaries is valid UTF-8.
            return unsafe { std::str::from_utf8_unchecked(b) };
        }
        std::str::from_utf8(b).unwrap_or_default()
    }

    /// Whether byte position `p` (at most `self.text.0`) is a char boundary of
    /// the checked text: its end, or a byte that does not continue a character
    /// (not `0b10xx_xxxx`).
    fn text_boundary(&self, p: usize) -> bool {
        p == self.text.0 || self.buf.get(p).is_some_and(|&c| (c as i8) >= -0x40)
    }

    /// Whether index entry `e` is the header `want` names.
    pub(crate) fn entry_is(&self, e: &HeaderEntry, want: NameMatch<'_>) -> bool {
        match want {
            NameMatch::Known(k) => e.id == k,
            NameMatch::Other(n) => e.id == 0 && names_eq(self.entry_name(e), n),
        }
    }

    fn entry_value(&self, e: &HeaderEntry) -> &str {
        match &e.value {
            ValueLoc::Raw(r) => self.slice(r),
            ValueLoc::Folded(i) => self.folded.get(*i).map(String::as_str).unwrap_or_default(),
        }
    }

    pub(crate) fn raw_value(&self, e: &HeaderEntry) -> &str {
        self.slice(&e.raw_value)
    }

    pub(crate) fn entry_name(&self, e: &HeaderEntry) -> &str {
        self.slice(&e.name)
    }

    fn make_header<'a>(&'a self, index: usize, e: &'a HeaderEntry) -> Header<'a> {
        Header {
            index,
            name: self.slice(&e.name),
            value: self.entry_value(e),
        }
    }

    /// Index entries of header `name` (case-insensitive, compact forms equivalent).
    pub(crate) fn entries_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (usize, &'a HeaderEntry)> + 'a {
        let want = NameMatch::new(name);
        self.header_entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| self.entry_is(e, want))
    }

    /// First index entry of header `name` (case-insensitive, compact forms equivalent).
    pub(crate) fn first_named(&self, name: &str) -> Option<(usize, &HeaderEntry)> {
        let want = NameMatch::new(name);
        self.header_entries
            .iter()
            .enumerate()
            .find(|(_, e)| self.entry_is(e, want))
    }

    /// The value of the first line of the known header `id` (a `headers` id constant).
    fn first_value(&self, id: u8) -> Option<&str> {
        self.header_entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| self.entry_value(e))
    }

    /// The top Via (the first non-empty value of the first Via line) parsed,
    /// as positions into its entry's value; `None` if absent or malformed.
    /// Run once when a message is built.
    pub(crate) fn find_top_via(&self) -> Option<TopVia> {
        let entry = self.header_entries.iter().position(|e| e.id == VIA)?;
        let value = self.entry_value(self.header_entries.get(entry)?);
        let via = Via::parse(split_values(value, false).next()?).ok()?;
        Some(TopVia {
            entry: u32::try_from(entry).ok()?,
            raw: span(value, via.raw)?,
            protocol: span(value, via.protocol)?,
            transport: span(value, via.transport)?,
            host: span(value, via.host)?,
            params: span(value, via.params)?,
            port: via.port,
        })
    }

    /// True for a request, false for a response.
    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// The request method as written (e.g. `"INVITE"`, case-sensitive per RFC 3261 7.1);
    /// `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start_line {
            StartLine::Request { method, .. } => Some(self.slice(method)),
            StartLine::Response { .. } => None,
        }
    }

    /// The raw Request-URI; `None` for a response.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start_line {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code (three digits, not range-checked: see [`SipMessage::validate`]);
    /// `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start_line {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase (may be empty); `None` for a request.
    pub fn reason(&self) -> Option<&str> {
        match &self.start_line {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> {
        self.header_entries
            .iter()
            .enumerate()
            .map(|(i, e)| self.make_header(i, e))
    }

    /// The value of the first line of header `name` (case-insensitive; compact and full
    /// forms are equivalent, RFC 3261 7.3.3). `None` if absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let want = NameMatch::new(name);
        self.header_entries
            .iter()
            .find(|e| self.entry_is(e, want))
            .map(|e| self.entry_value(e))
    }

    /// Every line of header `name` (case-insensitive, compact forms equivalent), in order.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Header<'a>> {
        self.entries_named(name)
            .map(|(i, e)| self.make_header(i, e))
    }

    /// The comma-separated values (RFC 3261 7.3.1) of all lines of header `name`, split
    /// outside double quotes and `<...>`, trimmed, empty ones dropped. Meant for headers
    /// whose grammar is a comma list (Via, Route, Record-Route, Contact, Supported,
    /// Require, Proxy-Require, Allow, ...), not for e.g. Date.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let want = NameMatch::new(name);
        let mut out = Vec::new();
        for e in &self.header_entries {
            if self.entry_is(e, want) {
                out.extend(split_values(self.entry_value(e), false));
            }
        }
        out
    }

    /// The values [`SipMessage::header_values`] gives, lazily: nothing is
    /// allocated, and splitting stops where the caller stops (e.g. `.next()`
    /// for the first value, `.any(..)` for a test).
    pub fn header_values_iter<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries_named(name)
            .flat_map(move |(_, e)| split_values(self.entry_value(e), false))
    }

    /// Value edits for every line of header `name` (a comma list, see
    /// [`SipMessage::header_values`]): `f` gets each value in order and returns
    /// its replacement, or `None` to keep it. Returns `(header index, new line
    /// value)` for each line where `f` replaced at least one value, the values
    /// joined with `", "`, for [`crate::Edit::replace_value`]; lines with no
    /// replacement are left out (they stay byte for byte as received).
    pub fn map_header_values(
        &self,
        name: &str,
        mut f: impl FnMut(&str) -> Option<String>,
    ) -> Vec<(usize, String)> {
        let mut edits = Vec::new();
        for h in self.header_lines(name) {
            let mut changed = false;
            let values: Vec<String> = split_values(h.value, false)
                .map(|v| match f(v) {
                    Some(new) => {
                        changed = true;
                        new
                    }
                    None => v.to_string(),
                })
                .collect();
            if changed {
                edits.push((h.index, values.join(", ")));
            }
        }
        edits
    }

    /// The body bytes (opaque, possibly binary), cut to Content-Length when present.
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.clone()).unwrap_or_default()
    }

    /// The Call-ID value (RFC 3261 20.8).
    pub fn call_id(&self) -> Option<&str> {
        self.first_value(CALL_ID)
    }

    /// CSeq sequence number (<= 2^31 - 1) and method (RFC 3261 20.16); `None` if absent
    /// or malformed.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        parse_cseq(self.first_value(CSEQ)?)
    }

    /// The From header as a name-addr (RFC 3261 20.20); `None` if absent or malformed.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.first_value(FROM)?).ok()
    }

    /// The To header as a name-addr (RFC 3261 20.39); `None` if absent or malformed.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.first_value(TO)?).ok()
    }

    /// The first Via value (RFC 3261 20.42); `None` if absent or malformed.
    /// Parsed once when the message was built: each call only slices.
    pub fn top_via(&self) -> Option<Via<'_>> {
        let t = self.top_via.as_ref()?;
        let v = self.entry_value(self.header_entries.get(usize::try_from(t.entry).ok()?)?);
        Some(Via {
            raw: at_span(v, t.raw)?,
            protocol: at_span(v, t.protocol)?,
            transport: at_span(v, t.transport)?,
            host: at_span(v, t.host)?,
            port: t.port,
            params: at_span(v, t.params)?,
        })
    }

    /// All Via values that parse, top first (values that do not parse are skipped).
    pub fn vias(&self) -> Vec<Via<'_>> {
        self.via_iter().collect()
    }

    /// The Via values that parse, top first, as [`SipMessage::vias`] gives them but
    /// lazily: nothing is allocated, and parsing stops where the caller stops (e.g.
    /// `via_iter().nth(1).is_some()`: at least two Vias).
    pub fn via_iter(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        self.header_entries
            .iter()
            .filter(|e| e.id == VIA)
            .flat_map(|e| split_values(self.entry_value(e), false))
            .filter_map(|v| Via::parse(v).ok())
    }

    /// Max-Forwards (RFC 3261 20.22); `None` if absent or not a number of at most 10
    /// digits fitting u32.
    pub fn max_forwards(&self) -> Option<u32> {
        parse_digits(self.first_value(MAX_FORWARDS)?, 10).and_then(|n| u32::try_from(n).ok())
    }

    /// Starts a byte-preserving edit of this message (see [`Edit`]).
    pub fn edit(&self) -> Edit<'_> {
        Edit::new(self)
    }
}

/// A CSeq value (RFC 3261 20.16): sequence number (<= 2^31 - 1) and method
/// token; `None` if malformed.
fn parse_cseq(v: &str) -> Option<(u32, &str)> {
    let mut it = v.split_ascii_whitespace();
    let n = parse_digits(it.next()?, 10)?;
    let method = it.next()?;
    if it.next().is_some() || n > 0x7FFF_FFFF || !method.bytes().all(is_token_byte) {
        return None;
    }
    Some((u32::try_from(n).ok()?, method))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::validate::addr_spec_with_headers;
    use super::*;
    use crate::parse::{check_params, name_addr_parts, Uri};

    /// `validate` as it was before the one-pass rewrite (a lookup by name
    /// per check): the rewrite must give the same answer for every input.
    fn reference_validate(m: &SipMessage) -> Result<(), ParseError> {
        match &m.start_line {
            StartLine::Request { .. } => {
                let parsed = Uri::parse(m.request_uri().unwrap_or_default())
                    .map_err(|_| ParseError::BadRequestUri)?;
                if parsed.is_sip() && parsed.headers.is_some() {
                    return Err(ParseError::UriHeaders("Request-URI"));
                }
            }
            StartLine::Response { status, .. } => {
                if !(100..=699).contains(status) {
                    return Err(ParseError::BadStatus);
                }
            }
        }
        for name in ["To", "From", "Call-ID", "CSeq", "Via"] {
            if m.header(name).is_none() {
                return Err(ParseError::MissingHeader(name));
            }
        }
        for name in [
            "To",
            "From",
            "Call-ID",
            "CSeq",
            "Max-Forwards",
            "Content-Length",
        ] {
            if m.header_lines(name).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader(name));
            }
        }
        let (_, cseq_method) = m.cseq().ok_or(ParseError::BadCSeq)?;
        if m.method().is_some_and(|x| x != cseq_method) {
            return Err(ParseError::CSeqMethodMismatch);
        }
        if let Some(mf) = m.header("Max-Forwards") {
            match parse_digits(mf, 10) {
                Some(n) if n <= 255 => {}
                _ => return Err(ParseError::BadMaxForwards),
            }
        }
        let call_id = m.call_id().unwrap_or_default();
        if call_id.is_empty()
            || call_id
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::BadCallId);
        }
        for (name, value) in [("To", m.header("To")), ("From", m.header("From"))] {
            let na = NameAddr::parse(value.unwrap_or_default())
                .map_err(|_| ParseError::BadNameAddr(name))?;
            na.parsed_uri().map_err(|_| ParseError::BadNameAddr(name))?;
            check_params(na.params).map_err(|_| ParseError::BadNameAddr(name))?;
        }
        for name in ["Contact", "To", "From"] {
            for h in m.header_lines(name) {
                if split_values(h.value, false).any(addr_spec_with_headers) {
                    return Err(ParseError::UriHeaders(name));
                }
            }
        }
        for h in m.header_lines("Via") {
            for v in split_values(h.value, true) {
                let via = Via::parse(v)?;
                check_params(via.params).map_err(|_| ParseError::BadVia)?;
            }
        }
        Ok(())
    }

    /// `slice` without the UTF-8 re-check gives what `from_utf8` gives for
    /// every range of a header section with multi-byte characters: the text
    /// between char boundaries, `""` for a range that cuts a character or
    /// leaves the buffer, and checked text past the headers (the body).
    #[test]
    fn slice_matches_from_utf8_on_every_range() {
        let b =
            "SIP/2.0 200 \u{d6}K\r\nTo: \"J\u{fc}rgen \u{1f600}\" <sip:j@h>\r\n\r\n\u{e9}\u{ff}";
        let m = SipMessage::parse(b.as_bytes().to_vec(), &Limits::default()).expect("parses");
        assert_eq!(m.reason(), Some("\u{d6}K"));
        assert_eq!(
            m.to().and_then(|t| t.display),
            Some("J\u{fc}rgen \u{1f600}".into())
        );
        let n = m.buf.len();
        for start in 0..=n + 1 {
            for end in start..=n + 1 {
                let want = m
                    .buf
                    .get(start..end)
                    .and_then(|x| std::str::from_utf8(x).ok())
                    .unwrap_or_default();
                assert_eq!(m.slice(&(start..end)), want, "{start}..{end}");
            }
        }
    }

    /// `top_via` as it was before the cache: parse the first Via value.
    fn reference_top_via(m: &SipMessage) -> Option<Via<'_>> {
        let first = m.header("Via")?;
        Via::parse(split_values(first, false).next()?).ok()
    }

    const START: &[&str] = &[
        "INVITE sip:bob@b.example SIP/2.0",
        "BYE sip:bob@[2001:db8::1]:5060;lr SIP/2.0",
        "INVITE sip:bob@b.example?x=y SIP/2.0",
        "INVITE tel:+4930123 SIP/2.0",
        "OPTIONS sip:b SIP/2.0",
        "SIP/2.0 200 OK",
        "SIP/2.0 099 Low",
        "SIP/2.0 180 Ringing",
    ];

    const LINES: &[&str] = &[
        "Via: SIP/2.0/UDP h.example:5062;branch=z9hG4bK1;rport",
        "v: SIP / 2.0 / TCP [2001:db8::2]:5;received=1.2.3.4, SIP/2.0/UDP x",
        "Via: SIP/2.0/UDP h;branch=",
        "Via: ,SIP/2.0/UDP h",
        "VIA: SIP/2.0/UDP h.example;branch=z9hG4bK2\r\n  ;rport",
        "Via: bogus",
        "To: <sip:bob@b.example>",
        "t: \"B\\\"ob\" <sip:bob@b.example>;tag=x",
        "To: sip:bob@b.example?h=1",
        "To: Bob sip:x",
        "From: \"Alice\" <sip:alice@a.example>;tag=1",
        "f: Alice <sip:alice@a.example>;tag=1",
        "From: <sip:alice@a.example>;tag",
        "From: \"unterminated <sip:a@a>",
        "From: <sip:a@a>;=x",
        "Call-ID: abc@h",
        "i: abc def",
        "Call-ID:",
        "CSeq: 1 INVITE",
        "CSeq: 2 BYE",
        "CSeq: 2147483648 INVITE",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
        "Max-Forwards: 256",
        "Content-Length: 0",
        "l: 0",
        "Contact: <sip:a@h>;expires=5, sip:b@h?x",
        "m: \"A, B\" <sip:a@h>",
        "Route: <sip:p;lr>",
        "X-Other: 1",
        "Supported: timer",
    ];

    fn message() -> impl Strategy<Value = Vec<u8>> {
        (
            0..START.len(),
            proptest::collection::vec(0..LINES.len(), 0..14),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        )
            .prop_map(|(s, lines, flips)| {
                let mut out = START[s].to_string();
                out.push_str("\r\n");
                for l in lines {
                    out.push_str(LINES[l]);
                    out.push_str("\r\n");
                }
                out.push_str("\r\n");
                let mut b = out.into_bytes();
                for (at, byte) in flips {
                    let n = b.len();
                    if let Some(x) = b.get_mut(at % n) {
                        *x = byte;
                    }
                }
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The one-pass `validate`, the cached `top_via`, the name-addr
        /// parts and the accessors by id answer as the lookups by name did.
        #[test]
        fn validate_and_top_via_match_the_lookups_by_name(b in message()) {
            let Ok(m) = SipMessage::parse(b, &Limits::default()) else { return Ok(()) };
            prop_assert_eq!(m.validate(), reference_validate(&m));
            prop_assert_eq!(m.top_via(), reference_top_via(&m));
            prop_assert_eq!(m.call_id(), m.header("Call-ID"));
            prop_assert_eq!(m.max_forwards(), m.header("Max-Forwards").and_then(|v| parse_digits(v, 10)).and_then(|n| u32::try_from(n).ok()));
            for h in m.headers() {
                let parts = name_addr_parts(h.value);
                let na = NameAddr::parse(h.value).ok();
                prop_assert_eq!(parts.is_some(), na.is_some());
                if let (Some((_, uri, params)), Some(na)) = (parts, na) {
                    prop_assert_eq!((uri, params), (na.uri, na.params));
                }
            }
        }
    }
}
