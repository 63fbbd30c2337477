//! [`SipMessage::validate`]: the well-formedness checks a proxy applies before it acts on
//! a message (RFC 3261 8.1.1, 8.2, 16.3; RFC 4475 and RFC 5118 cases), over the header
//! index in one pass.

use super::{at_span, parse_cseq, parse_digits, span, SipMessage};
use crate::error::ParseError;
use crate::headers::{
    CALL_ID, CONTACT, CONTENT_LENGTH, CSEQ, FROM, ID_COUNT, MAX_FORWARDS, TO, VIA,
};
use crate::parse::{check_params, name_addr_parts, split_values, Uri, Via};
use crate::scan::find_byte;
use crate::start_line::StartLine;

impl SipMessage {
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
        // One pass over the index: how many lines each known header has and
        // which is the first; the checks below run in their documented order.
        let mut lines = [0u32; ID_COUNT];
        let mut first = [usize::MAX; ID_COUNT];
        for (i, e) in self.header_entries.iter().enumerate() {
            let id = usize::from(e.id);
            if let (Some(n), Some(f)) = (lines.get_mut(id), first.get_mut(id)) {
                if *n == 0 {
                    *f = i;
                }
                *n += 1;
            }
        }
        let count = |id: u8| lines.get(usize::from(id)).copied().unwrap_or(0);
        let value = |id: u8| {
            first
                .get(usize::from(id))
                .and_then(|&i| self.header_entries.get(i))
                .map(|e| self.entry_value(e))
        };
        for (name, id) in [
            ("To", TO),
            ("From", FROM),
            ("Call-ID", CALL_ID),
            ("CSeq", CSEQ),
            ("Via", VIA),
        ] {
            if count(id) == 0 {
                return Err(ParseError::MissingHeader(name));
            }
        }
        for (name, id) in [
            ("To", TO),
            ("From", FROM),
            ("Call-ID", CALL_ID),
            ("CSeq", CSEQ),
            ("Max-Forwards", MAX_FORWARDS),
            ("Content-Length", CONTENT_LENGTH),
        ] {
            if count(id) > 1 {
                return Err(ParseError::DuplicateHeader(name));
            }
        }
        // CSeq (RFC 3261 20.16, 8.1.1.5).
        let (_, cseq_method) = value(CSEQ)
            .and_then(parse_cseq)
            .ok_or(ParseError::BadCSeq)?;
        if let Some(m) = self.method() {
            if m != cseq_method {
                return Err(ParseError::CSeqMethodMismatch);
            }
        }
        // Max-Forwards (RFC 3261 20.22).
        if let Some(mf) = value(MAX_FORWARDS) {
            match parse_digits(mf, 10) {
                Some(n) if n <= 255 => {}
                _ => return Err(ParseError::BadMaxForwards),
            }
        }
        // Call-ID (RFC 3261 20.8): word ["@" word], no whitespace.
        let call_id = value(CALL_ID).unwrap_or_default();
        if call_id.is_empty()
            || call_id
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::BadCallId);
        }
        // To / From (RFC 3261 20.20, 20.39).
        for (name, id) in [("To", TO), ("From", FROM)] {
            let (_, uri, params) = name_addr_parts(value(id).unwrap_or_default())
                .ok_or(ParseError::BadNameAddr(name))?;
            Uri::parse(uri).map_err(|_| ParseError::BadNameAddr(name))?;
            check_params(params).map_err(|_| ParseError::BadNameAddr(name))?;
        }
        // A bare addr-spec cannot carry URI headers: outside `<>` a `?` would make the
        // header parameters ambiguous (RFC 3261 20.10, RFC 4475 regbadct). (To and
        // From have exactly one line here.)
        for (name, id) in [("Contact", CONTACT), ("To", TO), ("From", FROM)] {
            if count(id) == 0 {
                continue;
            }
            for e in self.header_entries.iter().filter(|e| e.id == id) {
                let v = self.entry_value(e);
                // without any `?` no value can be one (a memchr, not a parse)
                if find_byte(b'?', v.as_bytes()).is_some()
                    && split_values(v, false).any(addr_spec_with_headers)
                {
                    return Err(ParseError::UriHeaders(name));
                }
            }
        }
        // Via (RFC 3261 20.42): every comma-separated value must parse, none empty.
        for (i, e) in self.header_entries.iter().enumerate() {
            if e.id != VIA {
                continue;
            }
            let value = self.entry_value(e);
            for v in split_values(value, true) {
                // the top Via was parsed when the message was built
                let params = match self.cached_via_params(i, value, v) {
                    Some(p) => p,
                    None => Via::parse(v)?.params,
                };
                check_params(params).map_err(|_| ParseError::BadVia)?;
            }
        }
        Ok(())
    }
}

impl SipMessage {
    /// The params of Via value `v` (a slice of `value`, the value of header
    /// line `entry`) when `v` is the top Via parsed when the message was built
    /// ([`SipMessage::top_via`]): what `Via::parse(v)` would give. `None`
    /// for any other value.
    fn cached_via_params<'a>(&'a self, entry: usize, value: &'a str, v: &str) -> Option<&'a str> {
        let t = self.top_via.as_ref()?;
        if usize::try_from(t.entry).ok()? != entry || span(value, v)? != t.raw {
            return None;
        }
        at_span(value, t.params)
    }
}

/// True when `value` (one name-addr / addr-spec value) is a bare addr-spec, not in `<>`,
/// with a `?` outside quoted strings: URI headers where RFC 3261 20.10 forbids them.
pub(super) fn addr_spec_with_headers(value: &str) -> bool {
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
