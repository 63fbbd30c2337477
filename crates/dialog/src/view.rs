//! The plain-data view of a SIP message, for callers that adjust it
//! before the tracker sees it ([`crate::CallTracker::on_view`]) and for
//! tests of the call logic without a parser.
//!
//! [`MsgView::from_message`] builds it from the wire layer's message;
//! the tracker itself reads messages through the borrowed, lazy
//! `msg::Msg`, from a `SipMessage` or from a `MsgView` alike.

use std::borrow::Cow;

/// One party of a message (From, To, P-Asserted-Identity or Contact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// URI user part, %-unescaped (for `tel:` URIs: the number, without parameters).
    pub user: Option<String>,
    /// URI host (lower case); None for `tel:` URIs.
    pub host: Option<String>,
    /// Display name without quotes; None if absent or empty.
    pub display: Option<String>,
}

impl Party {
    /// A party from a URI and an optional display name.
    pub fn new(uri: &str, display: Option<&str>) -> Party {
        let (user, host) = uri_user_host(uri);
        Party {
            user,
            host,
            display: display.and_then(clean_display),
        }
    }

    /// `user` if present and non-empty.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref().filter(|u| !u.is_empty())
    }

    /// True for the usual spellings of an anonymous party (RFC 3323):
    /// user `anonymous` (any case), host `anonymous.invalid`, display `Anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.user
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
            || self
                .host
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case("anonymous.invalid"))
            || self
                .display
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("anonymous"))
    }
}

/// What the tracker needs from one SIP message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgView {
    /// Request method (None for a response).
    pub method: Option<String>,
    /// Response status (None for a request).
    pub status: Option<u16>,
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: Option<String>,
    /// To tag (None on an initial request).
    pub to_tag: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// Request-URI user (requests only; `tel:` URI: the number).
    pub ruri_user: Option<String>,
    /// The inside target the proxy chose for an initial request outside
    /// the inbound routes (the user of a phone registered through sipcti):
    /// the called person for `newCall`'s `user`, and who answered when the
    /// answer names nobody. Never read from the message itself.
    pub target_user: Option<String>,
    /// From party.
    pub from: Party,
    /// To party.
    pub to: Party,
    /// First P-Asserted-Identity value, if any.
    pub pai: Option<Party>,
    /// First Contact value, if any.
    pub contact: Option<Party>,
    /// `Privacy` lists `id`.
    pub privacy_id: bool,
    /// The dialog an INVITE's `Replaces` header names (RFC 3891 6.1), if
    /// any: the new call replaces it (attended transfer, call pickup).
    pub replaces: Option<DialogRef>,
    /// The dialog named by a `Replaces` URI header in a REFER's
    /// `Refer-To` (RFC 3891 1, RFC 5589 7: attended transfer), if any.
    pub refer_to_replaces: Option<DialogRef>,
    /// A NOTIFY of the implicit `refer` subscription (RFC 3515 2.4.4,
    /// 2.4.5): the status code of its `message/sipfrag` body's status
    /// line (e.g. 100, 200, 503). `None` for every other message.
    pub sipfrag_status: Option<u16>,
}

/// A dialog as a `Replaces` header names it (RFC 3891 6.1): the Call-ID
/// and the two tags. Which tag is whose depends on who reads it (RFC 3891
/// 3: the recipient's view), so the tracker matches either orientation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialogRef {
    /// Call-ID of the named dialog.
    pub call_id: String,
    /// `to-tag` parameter (empty if absent).
    pub to_tag: String,
    /// `from-tag` parameter (empty if absent).
    pub from_tag: String,
}

impl DialogRef {
    /// Parses a `Replaces` header value, `callid *(;param)` (RFC 3891
    /// 6.1), e.g. `98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff`.
    /// Returns `None` without a Call-ID or without both tags (such a value
    /// cannot name one dialog).
    pub fn parse(value: &str) -> Option<DialogRef> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim();
        if call_id.is_empty() {
            return None;
        }
        let mut d = DialogRef {
            call_id: call_id.to_string(),
            ..DialogRef::default()
        };
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("to-tag") {
                d.to_tag = v.to_string();
            } else if k.eq_ignore_ascii_case("from-tag") {
                d.from_tag = v.to_string();
            }
        }
        (!d.to_tag.is_empty() && !d.from_tag.is_empty()).then_some(d)
    }

    /// The `Replaces` URI header of a `Refer-To` value (RFC 3515 2.1, RFC
    /// 3891 1), e.g. `<sip:bob@b.example?Replaces=abc%40a%3Bto-tag%3D1%3Bfrom-tag%3D2>`:
    /// %-decoded and parsed as [`DialogRef::parse`]. `None` when there is
    /// none or it names no dialog.
    pub fn from_refer_to(value: &str) -> Option<DialogRef> {
        let v = value.trim();
        // the URI: inside <...> when bracketed, else up to the first ';' parameter
        let uri = match v.find('<') {
            Some(i) => v[i + 1..].split('>').next().unwrap_or(""),
            None => v.split(';').next().unwrap_or(""),
        };
        let (_, headers) = uri.split_once('?')?;
        headers.split('&').find_map(|h| {
            let (name, val) = h.split_once('=')?;
            if name.trim().eq_ignore_ascii_case("Replaces") {
                DialogRef::parse(&percent_decode(val))
            } else {
                None
            }
        })
    }
}

/// The status code of a `message/sipfrag` body's first line
/// (`SIP/2.0 200 OK`, RFC 3420, as RFC 3515 2.4.5 uses it); `None` when
/// the first line is not a status line.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let line = body.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code = rest.split_whitespace().next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=699).contains(c))
}

impl MsgView {
    /// True for a request.
    pub fn is_request(&self) -> bool {
        self.method.is_some()
    }

    /// Builds the view from a parsed message. `Err` names what is missing when the message
    /// cannot belong to a call (no Call-ID, CSeq, From or To, neither request nor response).
    pub fn from_message(msg: &sipcti_wire::SipMessage) -> Result<MsgView, &'static str> {
        crate::adapter::view_of(msg)
    }
}

/// True if a `Privacy` header value lists `id` (values are separated by `;`, some
/// implementations use `,`).
pub(crate) fn privacy_has_id(value: &str) -> bool {
    value
        .split([';', ','])
        .any(|v| v.trim().eq_ignore_ascii_case("id"))
}

/// Display name without surrounding quotes and backslash escapes; None if empty.
pub(crate) fn clean_display(d: &str) -> Option<String> {
    clean_display_ref(d).map(Cow::into_owned)
}

/// [`clean_display`] without a copy unless quotes are to be removed: the
/// trimmed slice of `d` when it is not a quoted string.
pub(crate) fn clean_display_ref(d: &str) -> Option<Cow<'_, str>> {
    let t = trim(d);
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        let inner = &t[1..t.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut esc = false;
        for c in inner.chars() {
            if esc {
                out.push(c);
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else {
                out.push(c);
            }
        }
        // (copied again only when the unquoted text has spaces to trim)
        let trimmed = out.trim();
        let out = if trimmed.len() == out.len() {
            out
        } else {
            trimmed.to_string()
        };
        (!out.is_empty()).then_some(Cow::Owned(out))
    } else {
        (!t.is_empty()).then_some(Cow::Borrowed(t))
    }
}

/// [`clean_display_ref`] of a display name that may own its text already
/// (a quoted name whose escapes the wire layer resolved).
pub(crate) fn clean_display_cow(d: Cow<'_, str>) -> Option<Cow<'_, str>> {
    match d {
        Cow::Borrowed(b) => clean_display_ref(b),
        Cow::Owned(o) => clean_display_ref(&o).map(|c| Cow::Owned(c.into_owned())),
    }
}

/// User and host of a `sip:`, `sips:` or `tel:` URI (angle brackets tolerated).
/// The user is %-unescaped; for `tel:` the user is the number without parameters.
pub(crate) fn uri_user_host(uri: &str) -> (Option<String>, Option<String>) {
    let (user, host) = uri_user_host_ref(uri);
    (user.map(Cow::into_owned), host.map(str::to_ascii_lowercase))
}

/// [`uri_user_host`] without copies: the user is borrowed unless it has
/// `%` escapes to decode, the host is the trimmed slice as written (not
/// lower-cased).
pub(crate) fn uri_user_host_ref(uri: &str) -> (Option<Cow<'_, str>>, Option<&str>) {
    let u = trim(uri);
    let u = u.strip_prefix('<').unwrap_or(u);
    let u = before(u, |c| c == b'>');
    let Some(colon) = u.bytes().position(|c| c == b':') else {
        return (None, None);
    };
    let (scheme, rest) = (
        u.get(..colon).unwrap_or(""),
        u.get(colon + 1..).unwrap_or(""),
    );
    let scheme = trim(scheme);
    if scheme.eq_ignore_ascii_case("tel") {
        let num = before(rest, |c| c == b';' || c == b'?').trim();
        let num = percent_decode(num);
        return (Some(num).filter(|n| !n.is_empty()), None);
    }
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return (None, None);
    }
    // Only the part before headers ('?') can hold user@host.
    let before_headers = before(rest, |c| c == b'?');
    let (user, hostpart) = match before_headers.bytes().rposition(|c| c == b'@') {
        Some(i) => {
            let userinfo = before_headers.get(..i).unwrap_or("");
            // user:password -> user (a ':' in the user part would be escaped).
            let user = before(userinfo, |c| c == b':');
            (
                Some(percent_decode(user)),
                before_headers.get(i + 1..).unwrap_or(""),
            )
        }
        None => (None, before_headers),
    };
    let hostport = before(hostpart, |c| c == b';');
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        before(v6, |c| c == b']')
    } else {
        before(hostport, |c| c == b':')
    };
    let host = trim(host);
    (
        user.filter(|u| !u.is_empty()),
        Some(host).filter(|h| !h.is_empty()),
    )
}

/// `s.trim()`, without the Unicode scan when `s` starts and ends with a
/// visible ASCII character (then there is nothing to trim).
pub(crate) fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// `s` up to the first ASCII byte `stop` accepts (all of `s` without one):
/// what `s.split(..).next()` gives, by a plain byte scan (these parts are
/// short; a `char` searcher costs more).
fn before(s: &str, stop: impl Fn(u8) -> bool) -> &str {
    match s.bytes().position(stop) {
        // an ASCII byte is a char boundary
        Some(i) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// `s` with its `%XX` escapes decoded (invalid UTF-8 replaced with
/// U+FFFD); borrowed when it has no `%`.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts() {
        assert_eq!(
            uri_user_host("sip:+4930123@trunk.example;user=phone"),
            (Some("+4930123".into()), Some("trunk.example".into()))
        );
        assert_eq!(
            uri_user_host("<sips:alice:secret@[2001:db8::1]:5061>"),
            (Some("alice".into()), Some("2001:db8::1".into()))
        );
        assert_eq!(
            uri_user_host("tel:+49-30-123;phone-context=x"),
            (Some("+49-30-123".into()), None)
        );
        assert_eq!(
            uri_user_host("sip:%2B4930123@h"),
            (Some("+4930123".into()), Some("h".into()))
        );
        assert_eq!(
            uri_user_host("sip:anonymous@Anonymous.Invalid"),
            (Some("anonymous".into()), Some("anonymous.invalid".into()))
        );
        assert_eq!(
            uri_user_host("sip:pbx.example:5060"),
            (None, Some("pbx.example".into()))
        );
        assert_eq!(uri_user_host("mailto:x@y"), (None, None));
        assert_eq!(uri_user_host(""), (None, None));
        assert_eq!(uri_user_host("sip:%4"), (None, Some("%4".into())));
        assert_eq!(
            uri_user_host("sip:a%@h"),
            (Some("a%".into()), Some("h".into()))
        );
    }

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a ",
            "a b",
            "\u{a0}x\u{a0}",
            "x\u{3000}",
            "\tx",
            "<x>",
            "é",
            " é ",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn displays_and_privacy() {
        assert_eq!(
            clean_display("\"Alice \\\"A\\\"\""),
            Some("Alice \"A\"".into())
        );
        assert_eq!(clean_display("  Bob "), Some("Bob".into()));
        assert_eq!(clean_display("\"\""), None);
        assert!(privacy_has_id("id"));
        assert!(privacy_has_id("header; ID ;critical"));
        assert!(!privacy_has_id("none"));
        assert!(!privacy_has_id("header;user"));
        assert!(Party::new("sip:x@anonymous.invalid", None).is_anonymous());
        assert!(Party::new("sip:Anonymous@h", None).is_anonymous());
        assert!(Party::new("sip:1@h", Some("\"Anonymous\"")).is_anonymous());
        assert!(!Party::new("sip:201@h", Some("Alice")).is_anonymous());
    }
}
