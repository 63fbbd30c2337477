//! URI (RFC 3261 19.1, RFC 3966), name-addr (RFC 3261 20.10) and Via (RFC 3261 20.42)
//! parsing. All parsed parts are slices of the input.

use std::borrow::Cow;
use std::ops::Range;

use super::error::ParseError;

/// A parsed URI; every field is a slice of `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as given.
    pub raw: &'a str,
    /// Scheme as written (`"sip"`, `"SIPS"`, `"tel"`, ...).
    pub scheme: &'a str,
    /// The user part (escaped characters kept raw); for `tel:` the number.
    pub user: Option<&'a str>,
    /// The password after `user:`.
    pub password: Option<&'a str>,
    /// The host; an IPv6 reference keeps its brackets (`"[2001:db8::1]"`); `""` for
    /// non-SIP schemes.
    pub host: &'a str,
    /// The port, if given.
    pub port: Option<u16>,
    /// URI parameters as written including the leading `;` (e.g. `";lr;transport=tcp"`),
    /// possibly `""`.
    pub params: &'a str,
    /// URI headers after `?`, without the `?`.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Parses `s`. `sip:`/`sips:` get the full RFC 3261 19.1 structure (escapes kept
    /// raw, IPv6 hosts must be bracketed per RFC 5118); `tel:` (RFC 3966) gives the
    /// number as `user` and host `""`; any other scheme is kept opaque (user `None`, host
    /// `""`). Errors with [`ParseError::BadUri`].
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ParseError> {
        parse_uri(s).ok_or(ParseError::BadUri)
    }

    /// URI parameter `name` (case-insensitive): `Some(Some(v))` for `name=v`,
    /// `Some(None)` for a flag such as `lr`, `None` if absent.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        find_param(self.params, name)
    }

    /// True for `sip` and `sips` (any case).
    pub fn is_sip(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sip") || self.scheme.eq_ignore_ascii_case("sips")
    }

    /// The `transport` URI parameter value.
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// The user part with `%XX` escapes decoded (invalid UTF-8 replaced with U+FFFD).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.map(unescape)
    }
}

/// A name-addr or addr-spec with header parameters (RFC 3261 20.10, 20.20, 20.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The whole value as given.
    pub raw: &'a str,
    /// The display name, unquoted with `\` escapes resolved; `None` if absent.
    /// Borrowed from the value unless it had escapes to resolve.
    pub display: Option<Cow<'a, str>>,
    /// The URI (without `<` `>`).
    pub uri: &'a str,
    /// Header parameters after the URI including the leading `;` (e.g. `";tag=1"`),
    /// possibly `""`.
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parses `"Name" <uri>;p`, `Name <uri>`, `<uri>` and a bare addr-spec (then `;`
    /// parameters are header parameters, RFC 3261 20.10). Errors with
    /// [`ParseError::BadNameAddr`].
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, ParseError> {
        parse_name_addr(s).ok_or(ParseError::BadNameAddr("name-addr"))
    }

    /// The `tag` header parameter (RFC 3261 19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag").flatten()
    }

    /// Header parameter `name` (case-insensitive); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        find_param(self.params, name)
    }

    /// Parses [`NameAddr::uri`] with [`Uri::parse`].
    pub fn parsed_uri(&self) -> Result<Uri<'a>, ParseError> {
        Uri::parse(self.uri)
    }

    /// Byte range of `uri` inside `raw` (to rewrite only the URI).
    pub fn uri_range(&self) -> Range<usize> {
        subslice_range(self.raw, self.uri)
            .or_else(|| {
                let start = self.raw.find(self.uri)?;
                Some(start..start + self.uri.len())
            })
            .unwrap_or(0..0)
    }
}

/// One Via value (RFC 3261 20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The whole value as given.
    pub raw: &'a str,
    /// Sent-protocol as written, e.g. `"SIP/2.0/UDP"` (may contain LWS around `/`).
    pub protocol: &'a str,
    /// Transport, e.g. `"UDP"`.
    pub transport: &'a str,
    /// Sent-by host; IPv6 keeps brackets.
    pub host: &'a str,
    /// Sent-by port, if given.
    pub port: Option<u16>,
    /// Via parameters as written including the leading `;`, possibly `""`.
    pub params: &'a str,
}

impl<'a> Via<'a> {
    /// Parses one Via value (RFC 3261 20.42; LWS allowed around `/`, `;`, `=`). Errors
    /// with [`ParseError::BadVia`].
    pub fn parse(s: &'a str) -> Result<Via<'a>, ParseError> {
        parse_via(s).ok_or(ParseError::BadVia)
    }

    /// The `branch` parameter (RFC 3261 8.1.1.7).
    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// Via parameter `name` (case-insensitive); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        find_param(self.params, name)
    }

    /// The `received` parameter (RFC 3261 18.2.1).
    pub fn received(&self) -> Option<&'a str> {
        self.param("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<&'a str>> {
        self.param("rport")
    }
}

// ---------------------------------------------------------------------------------------
// helpers

use std::net::Ipv6Addr;

use super::message::is_token_byte;
use super::scan::find_byte;

mod split;
pub(crate) use split::*;

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_lws) {
        i += 1;
    }
    i
}

/// Byte range of `inner` inside `outer` if `inner` is a subslice of it.
pub(crate) fn subslice_range(outer: &str, inner: &str) -> Option<Range<usize>> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    let start = i.checked_sub(o)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// `%XX`-decodes `s` (invalid escapes kept literally; invalid UTF-8 replaced).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

// (`str::find` of an ASCII char is the byte position `find_byte` gives: no
// other character of UTF-8 text contains an ASCII byte.)

/// Parses `host [":" port]` at the start of `s`; returns (host, port, bytes used).
/// IPv6 references must be bracketed and valid (RFC 5118 4.10).
fn parse_hostport(s: &str, lws_ok: bool) -> Option<(&str, Option<u16>, usize)> {
    let b = s.as_bytes();
    let host_end = if b.first() == Some(&b'[') {
        let close = s.find(']')?;
        let inner = s.get(1..close)?;
        inner.parse::<Ipv6Addr>().ok()?;
        close + 1
    } else {
        let n = b
            .iter()
            .position(|&c| !HOST_BYTE[usize::from(c)])
            .unwrap_or(b.len());
        if n == 0 {
            return None;
        }
        n
    };
    let host = s.get(..host_end)?;
    let mut i = host_end;
    let after = if lws_ok { skip_lws(b, i) } else { i };
    if b.get(after) == Some(&b':') {
        i = if lws_ok {
            skip_lws(b, after + 1)
        } else {
            after + 1
        };
        // 1 to 5 digits (what `parse_digits(.., 5)` accepts), read as they are scanned
        let digits = b.get(i..)?;
        let n = digits
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if n == 0 || n > 5 {
            return None;
        }
        let port = digits
            .get(..n)?
            .iter()
            .fold(0u32, |p, &d| p * 10 + u32::from(d - b'0'));
        let port = u16::try_from(port).ok()?;
        return Some((host, Some(port), i + n));
    }
    Some((host, None, i))
}

/// `URI_FORBIDDEN[b]`: a byte no URI may contain here (ASCII whitespace,
/// controls, `<`, `>`, `"`).
const URI_FORBIDDEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_whitespace() || c.is_ascii_control() || matches!(c, b'<' | b'>' | b'"');
        b += 1;
    }
    t
};

/// `HOST_BYTE[b]`: a byte of a hostname or IPv4 address (alphanumerics, `-`,
/// `.`, `_`).
const HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
        b += 1;
    }
    t
};

fn parse_uri(s: &str) -> Option<Uri<'_>> {
    if s.is_empty() || s.bytes().any(|b| URI_FORBIDDEN[usize::from(b)]) {
        return None;
    }
    let colon = find_byte(b':', s.as_bytes())?;
    let scheme = s.get(..colon)?;
    if !valid_scheme(scheme) {
        return None;
    }
    let rest = s.get(colon + 1..)?;
    if rest.is_empty() {
        return None;
    }
    let off = colon + 1;
    let mut uri = Uri {
        raw: s,
        scheme,
        user: None,
        password: None,
        host: "",
        port: None,
        params: "",
        headers: None,
    };
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // sip:[userinfo@]hostport[;params][?headers] (RFC 3261 19.1.1)
        // '@' is not allowed unescaped in params or headers (RFC 3261 25.1), so the
        // first '@' ends the userinfo (which may contain '?', ';', ...).
        let at = find_byte(b'@', rest.as_bytes());
        let mut hp_start = off;
        if let Some(at) = at {
            let userinfo = rest.get(..at)?;
            let (user, password) = match find_byte(b':', userinfo.as_bytes()) {
                Some(c) => (userinfo.get(..c)?, Some(userinfo.get(c + 1..)?)),
                None => (userinfo, None),
            };
            // (`user` is before the first `@`: it holds none)
            if user.is_empty() {
                return None;
            }
            uri.user = Some(user);
            uri.password = password;
            hp_start = off + at + 1;
        }
        let hp = s.get(hp_start..)?;
        let (host, port, used) = parse_hostport(hp, false)?;
        uri.host = host;
        uri.port = port;
        let tail_start = hp_start + used;
        let tail = s.get(tail_start..)?;
        let (params, headers) = match find_byte(b'?', tail.as_bytes()) {
            Some(qi) => (tail.get(..qi)?, Some(tail.get(qi + 1..)?)),
            None => (tail, None),
        };
        if !params.is_empty() && !params.starts_with(';') {
            return None;
        }
        uri.params = params;
        uri.headers = headers;
    } else if scheme.eq_ignore_ascii_case("tel") {
        // tel:number[;params] (RFC 3966)
        let semi = find_byte(b';', rest.as_bytes()).unwrap_or(rest.len());
        let number = rest.get(..semi)?;
        if number.is_empty() {
            return None;
        }
        uri.user = Some(number);
        uri.params = rest.get(semi..)?;
    }
    Some(uri)
}

/// `NAME_ADDR_URI_STOP[b]`: a byte the URI in `<...>` may not hold (ASCII
/// whitespace, `<`).
const NAME_ADDR_URI_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_whitespace() || c == b'<';
        b += 1;
    }
    t
};

/// The display name of a name-addr as [`name_addr_parts`] finds it, before any copy.
pub(crate) enum RawDisplay<'a> {
    /// No display name.
    None,
    /// A quoted-string's content between the quotes, `\` escapes not yet resolved.
    Quoted(&'a str),
    /// An unquoted display name (tokens and LWS), trimmed.
    Tokens(&'a str),
}

/// The parts of a name-addr or addr-spec (RFC 3261 20.10): display name, URI and
/// header parameters, all slices of `s`; `None` where [`NameAddr::parse`] fails.
/// Allocates nothing (validation runs it on every message).
pub(crate) fn name_addr_parts(s: &str) -> Option<(RawDisplay<'_>, &str, &str)> {
    let t_range = trim_in(s, 0..s.len());
    let t = s.get(t_range.clone())?;
    if t.is_empty() {
        return None;
    }
    let tb = t.as_bytes();
    let display;
    let lt;
    if tb.first() == Some(&b'"') {
        // quoted-string display name (RFC 3261 25.1): the closing quote is the
        // first `"` not escaped by `\` (an escape takes the next character,
        // whose continuation bytes, if any, are neither `"` nor `\`)
        let mut i = 1;
        let close = loop {
            match tb.get(i)? {
                b'\\' => {
                    tb.get(i + 1)?;
                    i += 2;
                }
                b'"' => break i,
                _ => i += 1,
            }
        };
        let after = skip_lws(tb, close + 1);
        if tb.get(after) != Some(&b'<') {
            return None;
        }
        display = RawDisplay::Quoted(t.get(1..close)?);
        lt = after;
    } else if let Some(l) = tb.iter().position(|&b| b == b'<') {
        let dn = t.get(..l)?.trim_matches(|c: char| c.is_ascii_whitespace());
        display = if dn.is_empty() {
            RawDisplay::None
        } else {
            if !dn.bytes().all(|b| is_token_byte(b) || is_lws(b)) {
                return None;
            }
            RawDisplay::Tokens(dn)
        };
        lt = l;
    } else {
        // addr-spec: params after ';' are header params (RFC 3261 20.10)
        let semi = tb.iter().position(|&b| b == b';').unwrap_or(t.len());
        let ur = trim_in(t, 0..semi);
        let uri = t.get(ur)?;
        if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
        return Some((RawDisplay::None, uri, t.get(semi..)?));
    }
    let gt = lt + find_byte(b'>', tb.get(lt..)?)?;
    let uri = t.get(lt + 1..gt)?;
    if uri.is_empty() || uri.bytes().any(|b| NAME_ADDR_URI_STOP[usize::from(b)]) {
        return None;
    }
    let p_start = skip_lws(tb, gt + 1);
    let params = t.get(p_start..)?;
    if !params.is_empty() && !params.starts_with(';') {
        return None;
    }
    Some((display, uri, params))
}

/// A quoted-string's content with its `\` escapes resolved (RFC 3261 25.1);
/// borrowed when it has none.
fn unquote(q: &str) -> Cow<'_, str> {
    if find_byte(b'\\', q.as_bytes()).is_none() {
        return Cow::Borrowed(q);
    }
    let mut d = String::with_capacity(q.len());
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => d.extend(chars.next()),
            _ => d.push(c),
        }
    }
    Cow::Owned(d)
}

fn parse_name_addr(s: &str) -> Option<NameAddr<'_>> {
    let (display, uri, params) = name_addr_parts(s)?;
    Some(NameAddr {
        raw: s,
        display: match display {
            RawDisplay::None => None,
            RawDisplay::Quoted(q) => Some(unquote(q)),
            RawDisplay::Tokens(t) => Some(Cow::Borrowed(t)),
        },
        uri,
        params,
    })
}

fn take_token(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while b.get(j).copied().is_some_and(is_token_byte) {
        j += 1;
    }
    j
}

fn parse_via(s: &str) -> Option<Via<'_>> {
    let b = s.as_bytes();
    let mut i = skip_lws(b, 0);
    let proto_start = i;
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport
    // (the usual `SIP/2.0/` is what the loop below reads, without LWS)
    let names = if b.get(i..i + 8) == Some(b"SIP/2.0/") {
        i = skip_lws(b, i + 8);
        0
    } else {
        2
    };
    for _ in 0..names {
        let j = take_token(b, i);
        if j == i {
            return None;
        }
        i = skip_lws(b, j);
        if b.get(i) != Some(&b'/') {
            return None;
        }
        i = skip_lws(b, i + 1);
    }
    let t_start = i;
    i = take_token(b, i);
    if i == t_start {
        return None;
    }
    let protocol = s.get(proto_start..i)?;
    let transport = s.get(t_start..i)?;
    let j = skip_lws(b, i);
    if j == i {
        return None;
    }
    let (host, port, used) = parse_hostport(s.get(j..)?, true)?;
    let k = skip_lws(b, j + used);
    let pr = trim_in(s, k..s.len());
    let params = s.get(pr)?;
    if !params.is_empty() && !params.starts_with(';') {
        return None;
    }
    Some(Via {
        raw: s,
        protocol,
        transport,
        host,
        port,
        params,
    })
}

/// The comma-separated values of one header line's value (RFC 3261 7.3.1),
/// trimmed, commas inside quotes and `<...>` not splitting; empty values
/// dropped. E.g. `<sip:a@b>;q=1, "X, Y" <sip:c@d>` gives two values.
pub fn split_header_values(value: &str) -> Vec<&str> {
    split_values(value, false).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::split::{check_params_general, find_param_general, param_pieces};
    use super::*;

    /// `SplitRanges` as it was before the fast path: the byte-by-byte scan.
    fn reference_split(s: &str, sep: u8, angle: bool) -> Vec<Range<usize>> {
        let b = s.as_bytes();
        let (mut start, mut i) = (0, 0);
        let mut out = Vec::new();
        loop {
            let mut in_quote = false;
            let mut in_angle = false;
            let mut cut = None;
            while let Some(&c) = b.get(i) {
                if in_quote {
                    if c == b'\\' {
                        i += 1;
                    } else if c == b'"' {
                        in_quote = false;
                    }
                } else if c == b'"' {
                    in_quote = true;
                } else if angle && c == b'<' {
                    in_angle = true;
                } else if angle && c == b'>' {
                    in_angle = false;
                } else if c == sep && !in_angle {
                    cut = Some(start..i);
                    i += 1;
                    start = i;
                    break;
                }
                i += 1;
            }
            match cut {
                Some(r) => out.push(r),
                None => {
                    out.push(start..b.len().max(start));
                    return out;
                }
            }
        }
    }

    /// Text made of the bytes that steer splitting and parameter checks.
    fn steering_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(","),
                Just(";"),
                Just("\""),
                Just("\\"),
                Just("<"),
                Just(">"),
                Just("="),
                Just(" "),
                Just("\t"),
                Just("\r\n"),
                Just("a"),
                Just("tag"),
                Just("1.2.3.4"),
                Just("[::1]"),
                Just(":"),
                Just("@"),
                Just("\u{e9}"),
                Just("\u{c}"),
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    #[test]
    fn find_param_cases() {
        let p = ";Tag = x ;lr; branch=z9hG4bK1;tagx=2;maddr=\"a;b\";ttl";
        assert_eq!(find_param(p, "tag"), Some(Some("x")));
        assert_eq!(find_param(p, "LR"), Some(None));
        assert_eq!(find_param(p, "branch"), Some(Some("z9hG4bK1")));
        assert_eq!(find_param(p, "tagx"), Some(Some("2")));
        assert_eq!(find_param(p, "maddr"), Some(Some("\"a;b\"")));
        assert_eq!(find_param(p, "ttl"), Some(None));
        assert_eq!(find_param(p, "b"), None);
        assert_eq!(find_param("tag=1", "tag"), None);
        assert_eq!(find_param(";tag =", "tag"), Some(Some("")));
        assert_eq!(find_param(";tag x=1", "tag"), None);
        for (p, name) in [(p, "tag"), (p, "maddr"), (";a b", "a"), (";=1", "")] {
            assert_eq!(
                find_param(p, name),
                find_param_general(p, name),
                "{p:?} {name:?}"
            );
        }
    }

    #[test]
    fn check_params_cases() {
        for ok in [
            "",
            ";lr",
            ";tag=1",
            ";branch=z9hG4bK-1;rport",
            ";received=[2001:db8::1]",
            ";a=\"x;y\"",
            " ;a = b ",
            ";maddr=1.2.3.4;ttl=1",
        ] {
            assert!(check_params(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "x",
            ";",
            ";;a",
            ";a;",
            ";=b",
            ";a=",
            ";a==b",
            ";a=b=c",
            ";a@b",
            ";a=\\",
            ";a=\"",
            "a;b",
            ";a=\u{e9}",
            ";a b",
        ] {
            assert!(check_params(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6000))]

        /// The fast path of `SplitRanges` splits as the byte scan does.
        #[test]
        fn split_ranges_match_the_byte_scan(s in steering_text()) {
            for (sep, angle) in [(b',', true), (b',', false), (b';', false), (b';', true)] {
                let got: Vec<_> = split_ranges(&s, sep, angle).collect();
                prop_assert_eq!(got, reference_split(&s, sep, angle));
            }
        }

        /// The parameter pieces are the split's pieces after the first one.
        #[test]
        fn param_pieces_are_the_split_after_the_first(s in steering_text()) {
            let with_semi = format!(";{s}");
            for p in [s.as_str(), with_semi.as_str()] {
                let want: Vec<_> = split_ranges(p, b';', false).skip(1).collect();
                prop_assert_eq!(param_pieces(p).collect::<Vec<_>>(), want);
            }
        }

        /// `find_param` for a token name answers as the general lookup does.
        #[test]
        fn find_param_matches_the_general_lookup(s in steering_text()) {
            let with_semi = format!(";{s}");
            for p in [s.as_str(), with_semi.as_str()] {
                for name in ["a", "A", "tag", "TAG", "ta", "1.2.3.4", "a=", "", " a", "\u{e9}"] {
                    prop_assert_eq!(find_param(p, name), find_param_general(p, name), "{:?} {:?}", p, name);
                }
            }
        }

        /// The one-pass `check_params` answers as the general check does.
        #[test]
        fn check_params_plain_matches_the_general_check(s in steering_text()) {
            prop_assert_eq!(check_params(&s).is_ok(), check_params_general(&s).is_ok());
            let with_semi = format!(";{s}");
            prop_assert_eq!(check_params(&with_semi).is_ok(), check_params_general(&with_semi).is_ok());
        }
    }
}
