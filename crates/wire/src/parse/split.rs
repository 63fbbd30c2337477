//! Splitting header values and parameter lists (RFC 3261 7.3.1 and 25.1:
//! commas and semicolons outside quoted strings and `<...>`), and looking
//! up and checking `generic-param`s.

use std::ops::Range;

use super::*;

/// Splits `s` at `sep` outside double-quoted strings (with `\` escapes) and, when
/// `angle`, outside `<...>`. Yields untrimmed piece ranges (at least one), lazily:
/// parameter lookups on every message allocate nothing.
pub(crate) fn split_ranges(s: &str, sep: u8, angle: bool) -> SplitRanges<'_> {
    debug_assert!(
        SPLIT_SPECIAL[usize::from(sep)],
        "separator not in SPLIT_SPECIAL"
    );
    SplitRanges {
        b: s.as_bytes(),
        sep,
        angle,
        start: 0,
        i: 0,
        done: false,
    }
}

/// `SPLIT_SPECIAL[b]`: whether byte `b` can change the state of [`SplitRanges`]
/// (`"`, `\\`, `<`, `>`, or one of the separators `,` and `;`); any other byte is
/// skipped at once.
const SPLIT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b',' as usize] = true;
    t[b';' as usize] = true;
    t
};

/// Iterator of [`split_ranges`].
pub(crate) struct SplitRanges<'a> {
    b: &'a [u8],
    sep: u8,
    angle: bool,
    start: usize,
    i: usize,
    done: bool,
}

impl Iterator for SplitRanges<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.done {
            return None;
        }
        // Fast path. Each call starts outside quotes and `<>` at `self.i`
        // (== `self.start`). With no separator left, the scan below would
        // run to the end; with one at `p` and neither a `"` nor (when
        // `angle`) a `<` before it, the scan below stops right there.
        if let Some(rest) = self.b.get(self.i..) {
            match find_byte(self.sep, rest) {
                None => {
                    self.done = true;
                    return Some(self.start..self.b.len().max(self.start));
                }
                Some(p) => {
                    let angle = self.angle;
                    let plain = rest
                        .get(..p)
                        .is_some_and(|r| !r.iter().any(|&c| c == b'"' || (angle && c == b'<')));
                    if plain {
                        let r = self.start..self.i + p;
                        self.i += p + 1;
                        self.start = self.i;
                        return Some(r);
                    }
                }
            }
        }
        let mut in_quote = false;
        let mut in_angle = false;
        while let Some(&c) = self.b.get(self.i) {
            if !SPLIT_SPECIAL[usize::from(c)] {
                // neither a quote, an escape, an angle bracket nor a separator
                self.i += 1;
                continue;
            }
            if in_quote {
                if c == b'\\' {
                    self.i += 1;
                } else if c == b'"' {
                    in_quote = false;
                }
            } else if c == b'"' {
                in_quote = true;
            } else if self.angle && c == b'<' {
                in_angle = true;
            } else if self.angle && c == b'>' {
                in_angle = false;
            } else if c == self.sep && !in_angle {
                let r = self.start..self.i;
                self.i += 1;
                self.start = self.i;
                return Some(r);
            }
            self.i += 1;
        }
        self.done = true;
        Some(self.start..self.b.len().max(self.start))
    }
}

/// Trims LWS (SP, HT, CR, LF) from `s[r]`.
pub(crate) fn trim_in(s: &str, r: Range<usize>) -> Range<usize> {
    let b = s.as_bytes();
    let (mut a, mut e) = (r.start, r.end.min(b.len()));
    while a < e && b.get(a).copied().is_some_and(is_lws) {
        a += 1;
    }
    while e > a && b.get(e - 1).copied().is_some_and(is_lws) {
        e -= 1;
    }
    a..e
}

/// Trimmed ranges of the comma-separated values of a header value (RFC 3261 7.3.1),
/// split outside quotes and `<...>`; empty values included. Lazy: nothing is allocated.
pub(crate) fn value_ranges(s: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    split_ranges(s, b',', true).map(move |r| trim_in(s, r))
}

/// Comma-separated values of a header value, trimmed; empty ones only if `keep_empty`.
/// Lazy: nothing is allocated.
pub(crate) fn split_values(s: &str, keep_empty: bool) -> impl Iterator<Item = &str> + '_ {
    value_ranges(s)
        .filter(move |r| keep_empty || !r.is_empty())
        .filter_map(move |r| s.get(r))
}

/// One `;name[=value]` parameter with ranges relative to the params string.
#[derive(Debug, Clone)]
pub(crate) struct ParamPos {
    /// The whole parameter, trimmed (without the `;`).
    pub(crate) whole: Range<usize>,
    pub(crate) name: Range<usize>,
    pub(crate) value: Option<Range<usize>>,
}

/// Untrimmed ranges of the parameters of a params string: the pieces
/// [`split_ranges`] at `;` gives after the first one. When `params` starts with
/// `;` (the usual case) that first piece is empty and the rest is the split of
/// `params[1..]` (the scan starts there outside quotes either way), shifted by
/// one: the empty piece is not searched for.
pub(super) fn param_pieces(params: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let (skip, off, s) = match params.strip_prefix(';') {
        Some(rest) => (0, 1, rest),
        None => (1, 0, params),
    };
    split_ranges(s, b';', false)
        .skip(skip)
        .map(move |r| r.start + off..r.end + off)
}

/// The parameters of a params string (`";a=1;b"`); the part before the first `;` is
/// skipped. Empty parameters are included (name empty).
pub(crate) fn param_positions(params: &str) -> impl Iterator<Item = ParamPos> + '_ {
    param_pieces(params).map(|r| {
        let whole = trim_in(params, r);
        // a plain byte scan: parameters are short, a memchr set-up costs more
        let eq = params
            .as_bytes()
            .get(whole.clone())
            .and_then(|p| p.iter().position(|&b| b == b'='))
            .map(|e| whole.start + e);
        match eq {
            Some(eq) => ParamPos {
                name: trim_in(params, whole.start..eq),
                value: Some(trim_in(params, eq + 1..whole.end)),
                whole,
            },
            None => ParamPos {
                name: whole.clone(),
                value: None,
                whole,
            },
        }
    })
}

/// Looks up parameter `name` (case-insensitive) in a params string.
pub(crate) fn find_param<'a>(params: &'a str, name: &str) -> Option<Option<&'a str>> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return find_param_general(params, name);
    }
    // `name` is a token (no `=`, no LWS): a parameter is named `name` exactly
    // when its trimmed text starts with `name` (any case) followed by its
    // end, or LWS and then its end or `=`, or `=`; no search for `=` in
    // every parameter.
    let b = params.as_bytes();
    for r in param_pieces(params) {
        let whole = trim_in(params, r);
        let Some(piece) = b.get(whole.clone()) else {
            continue;
        };
        if !piece
            .get(..name.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_bytes()))
        {
            continue;
        }
        let after = skip_lws(piece, name.len());
        match piece.get(after) {
            None => return Some(None),
            Some(b'=') => {
                let v = trim_in(params, whole.start + after + 1..whole.end);
                return Some(params.get(v));
            }
            Some(_) => {}
        }
    }
    None
}

/// [`find_param`] for any `name`: the name of each parameter found and compared.
pub(super) fn find_param_general<'a>(params: &'a str, name: &str) -> Option<Option<&'a str>> {
    param_positions(params).find_map(|p| {
        let n = params.get(p.name.clone())?;
        if n.eq_ignore_ascii_case(name) {
            Some(p.value.and_then(|v| params.get(v)))
        } else {
            None
        }
    })
}

/// Strict check of a params string: nothing before the first `;`, every parameter has a
/// token name, and a non-empty value after `=` (token, quoted string or host).
pub(crate) fn check_params(params: &str) -> Result<(), ParseError> {
    match check_params_plain(params.as_bytes()) {
        Some(true) => Ok(()),
        Some(false) => Err(ParseError::BadUri),
        None => check_params_general(params),
    }
}

/// `PARAM_VALUE[b]`: a byte [`check_params`] accepts in an unquoted value
/// (token characters, `:`, `[`, `]`).
const PARAM_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = is_token_byte(c) || c == b':' || c == b'[' || c == b']';
        b += 1;
    }
    t
};

/// [`check_params`] in one pass for a params string without `"` and without
/// LWS (the usual `;tag=x;lr`): then splitting at `;` needs no quote
/// tracking and trimming changes nothing. `Some(ok)`, or `None` (a `"` or
/// LWS byte met) for the general check.
///
/// It may answer `Some(false)` at the first fault without looking further:
/// a `"` only changes how the bytes after it split and trim, so a fault
/// found before any `"` or LWS is one the general check finds as well.
fn check_params_plain(b: &[u8]) -> Option<bool> {
    let bail = |c: u8| is_lws(c) || c == b'"';
    match b.first() {
        None => return Some(true),
        Some(b';') => {}
        // the part before the first `;` must be empty
        Some(&c) => return if bail(c) { None } else { Some(false) },
    }
    let mut i = 1;
    loop {
        // a parameter at `i`: its name (token characters)...
        let name = i;
        while b.get(i).is_some_and(|&c| is_token_byte(c)) {
            i += 1;
        }
        let named = i > name;
        match b.get(i) {
            None => return Some(named),
            Some(b';') if named => {
                i += 1;
                continue;
            }
            Some(b'=') if named => i += 1,
            Some(&c) if bail(c) => return None,
            Some(_) => return Some(false),
        }
        // ... and after `=` its value (token characters, `:`, `[`, `]`)
        let value = i;
        while b.get(i).is_some_and(|&c| PARAM_VALUE[usize::from(c)]) {
            i += 1;
        }
        let valued = i > value;
        match b.get(i) {
            None => return Some(valued),
            Some(b';') if valued => i += 1,
            Some(&c) if bail(c) => return None,
            Some(_) => return Some(false),
        }
    }
}

/// [`check_params`] for any params string (quoted values, LWS).
pub(super) fn check_params_general(params: &str) -> Result<(), ParseError> {
    let bad = ParseError::BadUri;
    let first = split_ranges(params, b';', false).next().unwrap_or(0..0);
    if !trim_in(params, first).is_empty() {
        return Err(bad);
    }
    for p in param_positions(params) {
        let name = params.get(p.name).unwrap_or_default();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad);
        }
        if let Some(v) = p.value {
            let v = params.get(v).unwrap_or_default();
            let ok = if v.starts_with('"') {
                v.len() >= 2 && v.ends_with('"')
            } else {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| is_token_byte(b) || b == b':' || b == b'[' || b == b']')
            };
            if !ok {
                return Err(bad);
            }
        }
    }
    Ok(())
}
