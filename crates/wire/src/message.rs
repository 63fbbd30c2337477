//! [`SipMessage`]: zero-copy parsed SIP message with a header index (RFC 3261 7).

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use super::edit::Edit;
use super::error::ParseError;
use super::parse::{check_params, split_values, NameAddr, Uri, Via};

/// Size limits applied to every message taken from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line + headers + body), bytes. Default 65 536.
    pub max_message_bytes: usize,
    /// Most header lines in one message. Default 256.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_536,
            max_headers: 256,
        }
    }
}

/// One header line of a [`SipMessage`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Position among the header lines, 0-based (used by [`Edit::replace_value`] and
    /// [`Edit::remove_header`]).
    pub index: usize,
    /// The header name as written (e.g. `"v"`, `"VIA"`).
    pub name: &'a str,
    /// The value, trimmed; folded lines (RFC 3261 7.3.1) are joined with one space.
    pub value: &'a str,
}

/// Where a header value lives: a range of the message buffer, or (folded lines only) an
/// owned unfolded copy.
#[derive(Debug, Clone)]
enum ValueLoc {
    Raw(Range<usize>),
    Folded(usize),
}

/// One indexed header line.
#[derive(Debug, Clone)]
pub(crate) struct HeaderEntry {
    /// Whole line, continuation lines and line terminator included.
    pub(crate) line: Range<usize>,
    /// Line without its final terminator (CRLF or LF).
    pub(crate) content_end: usize,
    /// Header name as written.
    pub(crate) name: Range<usize>,
    /// Trimmed value as it is in the buffer (may span folds).
    pub(crate) raw_value: Range<usize>,
    value: ValueLoc,
    /// [`known_id`] of the name, computed once at parse (0: another header).
    pub(crate) id: u8,
}

/// What [`SipMessage::index_head`] finds before the buffer is moved into the message.
struct Head {
    msg_start: usize,
    start_line: StartLine,
    headers_start: usize,
    headers_end: usize,
    entries: Vec<HeaderEntry>,
    folded: Vec<String>,
    body_start: usize,
}

/// Headers the proxy and the tracker look up on every message. Each gets a
/// small id at parse time, so lookups compare a byte instead of decoding and
/// comparing names (compact forms map to the same id).
const KNOWN: [&str; 14] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Route",
    "Record-Route",
    "Contact",
    "Proxy-Require",
    "P-Asserted-Identity",
    "Privacy",
    "P-Preferred-Identity",
];

/// The id (1-based index in `KNOWN`) of a header name as written, or 0.
pub(crate) fn known_id(name: &str) -> u8 {
    let full = compact_full(name).unwrap_or(name);
    KNOWN
        .iter()
        .position(|k| k.len() == full.len() && k.eq_ignore_ascii_case(full))
        .map_or(0, |i| i as u8 + 1)
}

/// How a queried name is matched against the index.
#[derive(Clone, Copy)]
pub(crate) enum NameMatch<'a> {
    Known(u8),
    Other(&'a str),
}

impl<'a> NameMatch<'a> {
    pub(crate) fn new(name: &'a str) -> Self {
        match known_id(name) {
            0 => NameMatch::Other(compact_full(name).unwrap_or(name)),
            k => NameMatch::Known(k),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum StartLine {
    Request {
        method: Range<usize>,
        uri: Range<usize>,
    },
    Response {
        status: u16,
        reason: Range<usize>,
    },
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
    folded: Vec<String>,
    pub(crate) body: Range<usize>,
}

/// Splits `buf[from..]` into the next line: returns (content_end, next_line_start), or
/// `None` if no line terminator follows.
fn next_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rel = buf.get(from..)?.iter().position(|&b| b == b'\n')?;
    let lf = from + rel;
    let content_end = if lf > from && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    Some((content_end, lf + 1))
}

pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `value` (one name-addr / addr-spec value) is a bare addr-spec, not in `<>`,
/// with a `?` outside quoted strings: URI headers where RFC 3261 20.10 forbids them.
fn addr_spec_with_headers(value: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for b in value.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => return false,
            b'?' if !quoted => return true,
            _ => {}
        }
    }
    false
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SP / HT / CR / LF from both ends of `buf[r]`, returning the trimmed range.
fn trim_range(buf: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && buf.get(r.start).is_some_and(|b| b.is_ascii_whitespace()) {
        r.start += 1;
    }
    while r.end > r.start && buf.get(r.end - 1).is_some_and(|b| b.is_ascii_whitespace()) {
        r.end -= 1;
    }
    r
}

/// Case-insensitive header name equality with compact forms folded to full names.
pub(crate) fn names_eq(a: &str, b: &str) -> bool {
    let a = compact_full(a).unwrap_or(a);
    let b = compact_full(b).unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// Parses a decimal number made of 1..=`max_digits` ASCII digits.
pub(crate) fn parse_digits(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_sip_version(s: &[u8]) -> bool {
    s.eq_ignore_ascii_case(b"SIP/2.0")
}

fn looks_like_version(s: &[u8]) -> bool {
    s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"SIP/")
}

fn version_string(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[..s.len().min(32)]).into_owned()
}

fn parse_start_line(buf: &[u8], r: Range<usize>) -> Result<StartLine, ParseError> {
    let line = buf.get(r.clone()).ok_or(ParseError::BadStartLine)?;
    if std::str::from_utf8(line).is_err() {
        return Err(ParseError::NotUtf8);
    }
    let first_sp = line.iter().position(|&b| b == b' ').ok_or_else(|| {
        if looks_like_version(line) && !is_sip_version(line) {
            ParseError::BadVersion(version_string(line))
        } else {
            ParseError::BadStartLine
        }
    })?;
    let first = &line[..first_sp];
    if looks_like_version(first) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (RFC 3261 7.2)
        if !is_sip_version(first) {
            return Err(ParseError::BadVersion(version_string(first)));
        }
        let rest = &line[first_sp + 1..];
        let code_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let code = &rest[..code_len];
        if code.len() != 3 || !code.iter().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStatus);
        }
        let status = code
            .iter()
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
        let reason_start = (r.start + first_sp + 1 + code_len + 1).min(r.end);
        Ok(StartLine::Response {
            status,
            reason: reason_start..r.end,
        })
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 7.1)
        if first.is_empty() || !first.iter().all(|&b| is_token_byte(b)) {
            return Err(ParseError::BadStartLine);
        }
        let last_sp = line
            .iter()
            .rposition(|&b| b == b' ')
            .ok_or(ParseError::BadStartLine)?;
        let version = &line[last_sp + 1..];
        if !is_sip_version(version) {
            return Err(if looks_like_version(version) {
                ParseError::BadVersion(version_string(version))
            } else {
                ParseError::BadStartLine
            });
        }
        if last_sp <= first_sp + 1 {
            return Err(ParseError::BadStartLine);
        }
        let uri = &line[first_sp + 1..last_sp];
        if uri
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::BadRequestUri);
        }
        Ok(StartLine::Request {
            method: r.start..r.start + first_sp,
            uri: r.start + first_sp + 1..r.start + last_sp,
        })
    }
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
        };

        match msg.cut_body(body_start) {
            Ok(()) => Ok(msg),
            Err(e) => Err((e, msg.buf)),
        }
    }

    /// Cuts the body to Content-Length (RFC 3261 18.3, 20.14).
    fn cut_body(&mut self, body_start: usize) -> Result<(), ParseError> {
        let mut content_length: Option<usize> = None;
        for h in self.header_lines("Content-Length") {
            let n = parse_digits(h.value, 10).ok_or(ParseError::BadContentLength)?;
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

        let mut entries: Vec<HeaderEntry> = Vec::new();
        let mut folded: Vec<String> = Vec::new();
        // Per entry: does it have continuation lines?
        let mut has_fold: Vec<bool> = Vec::new();
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
                match (entries.last_mut(), has_fold.last_mut()) {
                    (Some(e), Some(f)) => {
                        e.line.end = next;
                        e.content_end = content_end;
                        *f = true;
                    }
                    _ => return Err(ParseError::HeaderWithoutColon(0)),
                }
            } else {
                if entries.len() >= limits.max_headers {
                    return Err(ParseError::TooManyHeaders);
                }
                let idx = entries.len();
                let line = buf.get(pos..content_end).unwrap_or_default();
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
                let id = std::str::from_utf8(buf.get(name.clone()).unwrap_or_default())
                    .map(known_id)
                    .unwrap_or(0);
                entries.push(HeaderEntry {
                    line: pos..next,
                    content_end,
                    name,
                    raw_value: pos + colon + 1..content_end,
                    value: ValueLoc::Raw(0..0),
                    id,
                });
                has_fold.push(false);
            }
            pos = next;
        }
        let (_, body_start) = next_line(buf, headers_end).ok_or(ParseError::Incomplete)?;
        if std::str::from_utf8(buf.get(msg_start..headers_end).unwrap_or_default()).is_err() {
            return Err(ParseError::NotUtf8);
        }

        // Finish values: trim, unfold where needed.
        for (e, &f) in entries.iter_mut().zip(has_fold.iter()) {
            let colon_end = e.raw_value.start;
            e.raw_value = trim_range(buf, colon_end..e.content_end);
            if e.raw_value.is_empty() {
                // Keep the position right after the colon for edits of empty values.
                let after = trim_range(buf, colon_end..e.content_end);
                e.raw_value = after.start..after.start;
            }
            if f {
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
            } else {
                e.value = ValueLoc::Raw(e.raw_value.clone());
            }
        }

        Ok(Head {
            msg_start,
            start_line,
            headers_start,
            headers_end,
            entries,
            folded,
            body_start,
        })
    }

    /// RFC 3261 8.1.1 / 8.2 / 16.3 checks: To, From, Call-ID, CSeq and Via present and
    /// parseable; exactly one line each of To, From, Call-ID, CSeq, Max-Forwards and
    /// Content-Length; CSeq number <= 2^31 - 1 and (requests) CSeq method equal to the
    /// request method; Max-Forwards in 0..=255 when present; Request-URI parseable
    /// (RFC 5118: IPv6 hosts bracketed) and, for sip/sips, without `?` headers (RFC 3261
    /// 19.1.1, RFC 4475 escruri); no Contact, To or From value written as a bare
    /// addr-spec with `?` headers (RFC 3261 20.10, RFC 4475 regbadct); response status in
    /// 100..=699.
    ///
    /// Errors: the first problem found ([`ParseError::MissingHeader`],
    /// [`ParseError::DuplicateHeader`], [`ParseError::BadCSeq`],
    /// [`ParseError::CSeqMethodMismatch`], [`ParseError::BadMaxForwards`],
    /// [`ParseError::BadRequestUri`], [`ParseError::BadVia`], [`ParseError::BadNameAddr`],
    /// [`ParseError::BadCallId`], [`ParseError::BadStatus`], [`ParseError::UriHeaders`]).
    pub fn validate(&self) -> Result<(), ParseError> {
        match &self.start_line {
            StartLine::Request { .. } => {
                let uri = self.request_uri().unwrap_or_default();
                let parsed = Uri::parse(uri).map_err(|_| ParseError::BadRequestUri)?;
                // RFC 3261 19.1.1 table 1: no headers in a Request-URI (RFC 4475 escruri)
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
            if self.header(name).is_none() {
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
            if self.header_lines(name).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader(name));
            }
        }
        // CSeq (RFC 3261 20.16, 8.1.1.5).
        let (_, cseq_method) = self.cseq().ok_or(ParseError::BadCSeq)?;
        if let Some(m) = self.method() {
            if m != cseq_method {
                return Err(ParseError::CSeqMethodMismatch);
            }
        }
        // Max-Forwards (RFC 3261 20.22).
        if let Some(mf) = self.header("Max-Forwards") {
            match parse_digits(mf, 10) {
                Some(n) if n <= 255 => {}
                _ => return Err(ParseError::BadMaxForwards),
            }
        }
        // Call-ID (RFC 3261 20.8): word ["@" word], no whitespace.
        let call_id = self.call_id().unwrap_or_default();
        if call_id.is_empty()
            || call_id
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::BadCallId);
        }
        // To / From (RFC 3261 20.20, 20.39).
        for (name, value) in [("To", self.header("To")), ("From", self.header("From"))] {
            let na = NameAddr::parse(value.unwrap_or_default())
                .map_err(|_| ParseError::BadNameAddr(name))?;
            na.parsed_uri().map_err(|_| ParseError::BadNameAddr(name))?;
            check_params(na.params).map_err(|_| ParseError::BadNameAddr(name))?;
        }
        // A bare addr-spec cannot carry URI headers: outside `<>` a `?` would make the
        // header parameters ambiguous (RFC 3261 20.10, RFC 4475 regbadct).
        for name in ["Contact", "To", "From"] {
            for h in self.header_lines(name) {
                if split_values(h.value, false)
                    .iter()
                    .any(|v| addr_spec_with_headers(v))
                {
                    return Err(ParseError::UriHeaders(name));
                }
            }
        }
        // Via (RFC 3261 20.42): every comma-separated value must parse, none empty.
        for h in self.header_lines("Via") {
            for v in split_values(h.value, true) {
                let via = Via::parse(v)?;
                check_params(via.params).map_err(|_| ParseError::BadVia)?;
            }
        }
        Ok(())
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

    fn slice(&self, r: &Range<usize>) -> &str {
        self.buf
            .get(r.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
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

    /// The body bytes (opaque, possibly binary), cut to Content-Length when present.
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.clone()).unwrap_or_default()
    }

    /// The Call-ID value (RFC 3261 20.8).
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// CSeq sequence number (<= 2^31 - 1) and method (RFC 3261 20.16); `None` if absent
    /// or malformed.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_ascii_whitespace();
        let n = parse_digits(it.next()?, 10)?;
        let method = it.next()?;
        if it.next().is_some() || n > 0x7FFF_FFFF || !method.bytes().all(is_token_byte) {
            return None;
        }
        Some((u32::try_from(n).ok()?, method))
    }

    /// The From header as a name-addr (RFC 3261 20.20); `None` if absent or malformed.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header("From")?).ok()
    }

    /// The To header as a name-addr (RFC 3261 20.39); `None` if absent or malformed.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header("To")?).ok()
    }

    /// The first Via value (RFC 3261 20.42); `None` if absent or malformed.
    pub fn top_via(&self) -> Option<Via<'_>> {
        let first = self.header("Via")?;
        let v = split_values(first, false).into_iter().next()?;
        Via::parse(v).ok()
    }

    /// All Via values that parse, top first (values that do not parse are skipped).
    pub fn vias(&self) -> Vec<Via<'_>> {
        self.header_values("Via")
            .into_iter()
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }

    /// Max-Forwards (RFC 3261 20.22); `None` if absent or not a number of at most 10
    /// digits fitting u32.
    pub fn max_forwards(&self) -> Option<u32> {
        parse_digits(self.header("Max-Forwards")?, 10).and_then(|n| u32::try_from(n).ok())
    }

    /// Starts a byte-preserving edit of this message (see [`Edit`]).
    pub fn edit(&self) -> Edit<'_> {
        Edit::new(self)
    }
}

/// Full header name for a compact form (RFC 3261 7.3.3 and the IANA SIP header
/// registry): `"v"` -> `"Via"`, `f` From, `t` To, `i` Call-ID, `m` Contact, `l`
/// Content-Length, `k` Supported, `s` Subject, `c` Content-Type, `e` Content-Encoding, `o`
/// Event, `u` Allow-Events, `r` Refer-To, `b` Referred-By, `x` Session-Expires, `a`
/// Accept-Contact, `j` Reject-Contact, `d` Request-Disposition, `y` Identity, `n`
/// Identity-Info (either case). Any other name is returned unchanged.
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    match compact_full(name) {
        Some(full) => Cow::Borrowed(full),
        None => Cow::Owned(name.to_string()),
    }
}

pub(crate) fn compact_full(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.len() != 1 {
        return None;
    }
    Some(match b[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'k' => "Supported",
        b's' => "Subject",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        b'n' => "Identity-Info",
        _ => return None,
    })
}
