//! The start line of a SIP message (RFC 3261 7.1 Request-Line, 7.2 Status-Line):
//! its index ([`StartLine`], ranges into the message buffer) and its parser,
//! which also checks the SIP-Version (`SIP/2.0`, RFC 3261 7.1).

use std::ops::Range;

use super::error::ParseError;
use super::message::is_token_byte;

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// `URI_BAD[b]`: a byte a Request-URI may not hold here (ASCII whitespace or
/// a control character).
const URI_BAD: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_whitespace() || c.is_ascii_control();
        b += 1;
    }
    t
};

fn is_sip_version(s: &[u8]) -> bool {
    s.eq_ignore_ascii_case(b"SIP/2.0")
}

fn looks_like_version(s: &[u8]) -> bool {
    s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"SIP/")
}

fn version_string(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[..s.len().min(32)]).into_owned()
}

pub(crate) fn parse_start_line(buf: &[u8], r: Range<usize>) -> Result<StartLine, ParseError> {
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
        if uri.iter().any(|&b| URI_BAD[usize::from(b)]) {
            return Err(ParseError::BadRequestUri);
        }
        Ok(StartLine::Request {
            method: r.start..r.start + first_sp,
            uri: r.start + first_sp + 1..r.start + last_sp,
        })
    }
}
