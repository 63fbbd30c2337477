//! Header lines and header names (RFC 3261 7.3, 20): the [`Header`] view of one
//! line, the index entry a [`SipMessage`] keeps per line, the table of headers
//! looked up on every message (a small id per name), and the compact forms
//! (RFC 3261 7.3.3 and the IANA SIP header registry) with [`canonical_name`].

use std::borrow::Cow;
use std::ops::Range;

#[cfg(doc)]
use super::edit::Edit;
#[cfg(doc)]
use super::message::SipMessage;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueLoc {
    Raw(Range<usize>),
    Folded(usize),
}

/// One indexed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderEntry {
    /// Whole line, continuation lines and line terminator included.
    pub(crate) line: Range<usize>,
    /// Line without its final terminator (CRLF or LF).
    pub(crate) content_end: usize,
    /// Header name as written.
    pub(crate) name: Range<usize>,
    /// Trimmed value as it is in the buffer (may span folds).
    pub(crate) raw_value: Range<usize>,
    pub(crate) value: ValueLoc,
    /// [`known_id`] of the name, computed once at parse (0: another header).
    pub(crate) id: u8,
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

/// [`known_id`] of Via.
pub(crate) const VIA: u8 = 1;
/// [`known_id`] of From.
pub(crate) const FROM: u8 = 2;
/// [`known_id`] of To.
pub(crate) const TO: u8 = 3;
/// [`known_id`] of Call-ID.
pub(crate) const CALL_ID: u8 = 4;
/// [`known_id`] of CSeq.
pub(crate) const CSEQ: u8 = 5;
/// [`known_id`] of Max-Forwards.
pub(crate) const MAX_FORWARDS: u8 = 6;
/// [`known_id`] of Content-Length.
pub(crate) const CONTENT_LENGTH: u8 = 7;
/// [`known_id`] of Contact.
pub(crate) const CONTACT: u8 = 10;
/// Number of ids [`known_id`] gives, 0 (another header) included.
pub(crate) const ID_COUNT: usize = KNOWN.len() + 1;

/// The id (1-based index in `KNOWN`) of a header name as written, or 0.
///
/// Called for every header line parsed and every lookup by name, so it
/// dispatches on the length first: at most three case-insensitive
/// comparisons instead of a scan of the whole table.
pub(crate) fn known_id(name: &str) -> u8 {
    known_id_bytes(name.as_bytes())
}

/// [`known_id`] of a name given as bytes (as the parser has it).
///
/// Length and first letter pick at most one candidate (the second letter
/// tells Call-ID from Contact), which is then compared once, ignoring ASCII
/// case, with [`eq_lower`].
#[inline]
pub(crate) fn known_id_bytes(b: &[u8]) -> u8 {
    let Some(&first) = b.first() else {
        return 0;
    };
    let f = first.to_ascii_lowercase();
    // the compact forms of the known headers (RFC 3261 7.3.3)
    if b.len() == 1 {
        return match f {
            b'v' => VIA,
            b'f' => FROM,
            b't' => TO,
            b'i' => CALL_ID,
            b'm' => CONTACT,
            b'l' => CONTENT_LENGTH,
            _ => 0,
        };
    }
    let id = match (b.len(), f) {
        (2, b't') => TO,
        (3, b'v') => VIA,
        (4, b'f') => FROM,
        (4, b'c') => CSEQ,
        (5, b'r') => 8,
        (7, b'c') => match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'a') => CALL_ID,
            _ => CONTACT,
        },
        (7, b'p') => 13,
        (12, b'm') => MAX_FORWARDS,
        (12, b'r') => 9,
        (13, b'p') => 11,
        (14, b'c') => CONTENT_LENGTH,
        (19, b'p') => 12,
        (20, b'p') => 14,
        _ => return 0,
    };
    match KNOWN_LOWER.get(usize::from(id) - 1) {
        Some(k) if eq_lower(b, k.as_bytes()) => id,
        _ => 0,
    }
}

/// `KNOWN` in ASCII lowercase, for [`eq_lower`].
const KNOWN_LOWER: [&str; 14] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "max-forwards",
    "content-length",
    "route",
    "record-route",
    "contact",
    "proxy-require",
    "p-asserted-identity",
    "privacy",
    "p-preferred-identity",
];

/// Whether `b` equals `lower` (ASCII lowercase) ignoring ASCII case: what
/// `b.eq_ignore_ascii_case(lower)` returns, eight bytes at a time for names
/// of eight bytes or more (the last word overlaps the one before).
fn eq_lower(b: &[u8], lower: &[u8]) -> bool {
    let n = b.len();
    if n != lower.len() {
        return false;
    }
    if n < 4 {
        return b.iter().zip(lower).fold(true, |ok, (&x, &y)| {
            let fold = if y.is_ascii_lowercase() { 0x20 } else { 0 };
            ok & ((x | fold) == y)
        });
    }
    if n < 8 {
        // two four-byte words, overlapping
        return eq_lower4(b, lower, 0) && eq_lower4(b, lower, n - 4);
    }
    let mut at = 0;
    while at + 8 < n {
        if !eq_lower8(b, lower, at) {
            return false;
        }
        at += 8;
    }
    eq_lower8(b, lower, n - 8)
}

/// [`eq_lower`] of the four bytes at `at` (false if they are not there).
fn eq_lower4(b: &[u8], lower: &[u8], at: usize) -> bool {
    let word = |s: &[u8]| {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    };
    let (Some(x), Some(y)) = (word(b), word(lower)) else {
        return false;
    };
    // as in `eq_lower8`, on four bytes
    const LO: u32 = 0x0101_0101;
    const HI: u32 = 0x8080_8080;
    let ge_a = y.wrapping_add(LO * u32::from(0x80 - b'a'));
    let ge_brace = y.wrapping_add(LO * u32::from(0x80 - b'{'));
    let letters = ge_a & !ge_brace & !y & HI;
    (x | (letters >> 2)) == y
}

/// [`eq_lower`] of the eight bytes at `at` (false if they are not there).
fn eq_lower8(b: &[u8], lower: &[u8], at: usize) -> bool {
    let word = |s: &[u8]| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let (Some(x), Some(y)) = (word(b), word(lower)) else {
        return false;
    };
    // 0x20 in each byte of `y` that is a lowercase letter (`lower` is
    // ASCII, so no byte carries into the next): at least `a`, below `{`
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ge_a = y.wrapping_add(LO * u64::from(0x80 - b'a'));
    let ge_brace = y.wrapping_add(LO * u64::from(0x80 - b'{'));
    let letters = ge_a & !ge_brace & !y & HI;
    (x | (letters >> 2)) == y
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

/// Case-insensitive header name equality with compact forms folded to full names.
pub(crate) fn names_eq(a: &str, b: &str) -> bool {
    let a = compact_full(a).unwrap_or(a);
    let b = compact_full(b).unwrap_or(b);
    a.eq_ignore_ascii_case(b)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The length dispatch of `known_id` gives what a scan of the table
    /// gives, for every name, its compact form and other cases.
    #[test]
    fn known_id_matches_the_table() {
        let scan = |name: &str| {
            let full = compact_full(name).unwrap_or(name);
            KNOWN
                .iter()
                .position(|k| k.eq_ignore_ascii_case(full))
                .map_or(0, |i| i as u8 + 1)
        };
        let mut names: Vec<String> = KNOWN.iter().map(|k| k.to_string()).collect();
        names.extend(KNOWN.iter().map(|k| k.to_ascii_uppercase()));
        names.extend(KNOWN.iter().map(|k| k.to_ascii_lowercase()));
        for c in b'a'..=b'z' {
            names.push(char::from(c).to_string());
            names.push(char::from(c.to_ascii_uppercase()).to_string());
        }
        names.extend(
            [
                "",
                "Vias",
                "Tx",
                "Contacts",
                "Call-IE",
                "Supported",
                "Froms",
                "C",
            ]
            .map(String::from),
        );
        for n in &names {
            assert_eq!(known_id(n), scan(n), "{n}");
        }
        // every byte value at every position of every name and compact form
        let mut bytes: Vec<Vec<u8>> = KNOWN.iter().map(|k| k.as_bytes().to_vec()).collect();
        bytes.extend(["v", "f", "t", "i", "m", "l", "x"].map(|c| c.as_bytes().to_vec()));
        for k in &bytes {
            for at in 0..k.len() {
                for c in 0..=255u8 {
                    let mut b = k.clone();
                    b[at] = c;
                    let want = match std::str::from_utf8(&b) {
                        Ok(s) => scan(s),
                        // not text: only the table compare can tell
                        Err(_) => KNOWN
                            .iter()
                            .position(|k| k.as_bytes().eq_ignore_ascii_case(&b))
                            .map_or(0, |i| i as u8 + 1),
                    };
                    assert_eq!(known_id_bytes(&b), want, "{b:?}");
                }
            }
        }
        for (k, l) in KNOWN.iter().zip(KNOWN_LOWER) {
            assert_eq!(k.to_ascii_lowercase(), l);
        }
        assert_eq!(
            [
                VIA,
                FROM,
                TO,
                CALL_ID,
                CSEQ,
                MAX_FORWARDS,
                CONTENT_LENGTH,
                CONTACT
            ],
            [
                "Via",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Max-Forwards",
                "Content-Length",
                "Contact"
            ]
            .map(scan)
        );
    }
}
