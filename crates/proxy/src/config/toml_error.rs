//! TOML syntax and type errors rendered without the Zammad token: line,
//! column and key instead of toml's quoted source line, every URL and every
//! piece of the `url` value scrubbed.

use super::*;

/// Render a TOML error of `text` without leaking the Zammad token.
///
/// toml's own `Display` quotes the offending source line, which for any typo near
/// `zammad.url` is the token. This gives instead `TOML error at line L, column C in
/// `key.path`: message` (line and column 1-based, the column counted in characters; the key
/// path guessed from the enclosing `[table]` header and the bare key before `=` on that line,
/// left out when the line has none), where the message is toml's, on one line, with every
/// URL-looking text replaced by [`sipcti_cti::redact_url`]'s form and every piece of a `url`
/// key's raw value (as written, even when it does not parse) replaced by `***`.
pub fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = scrub_secrets(text, &e.message().trim().replace('\n', "; "));
    let mut out = String::from("TOML error");
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text.as_bytes()[..start];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line_no = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        out.push_str(&format!(" at line {line_no}, column {column}"));
        if let Some(key) = key_path_at(text, line_no) {
            out.push_str(&format!(" in `{key}`"));
        }
    }
    out.push_str(": ");
    out.push_str(&message);
    ConfigError::Toml(out)
}

/// A bare or dotted TOML key (`zammad.url`, `max_in_flight`), nothing else: the only key
/// text [`toml_error`] repeats, so that a line holding a value (a token) is never echoed.
pub(super) fn bare_key(s: &str) -> Option<String> {
    let k: String = s
        .trim()
        .split('.')
        .map(|p| p.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".");
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    ok.then_some(k)
}

/// The key path of 1-based line `line_no` of `text`: the last `[table]` header at or above
/// it, joined with the bare key before `=` on that line. None when neither is found.
pub(super) fn key_path_at(text: &str, line_no: usize) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let idx = line_no.checked_sub(1)?;
    let header_of = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t.strip_prefix('[')?;
        let end = inner.find(']')?;
        bare_key(inner[..end].trim_start_matches('['))
    };
    let line = lines.get(idx).copied().unwrap_or("");
    if let Some(h) = header_of(line) {
        return Some(h);
    }
    let table = lines[..idx.min(lines.len())]
        .iter()
        .rev()
        .find_map(|l| header_of(l));
    let key = line.split_once('=').and_then(|(k, _)| bare_key(k));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (t, k) => t.or(k),
    }
}

/// The raw values of every `url` key in `text` (`url = ...`, `zammad.url = ...`, quoted or
/// not, `=` present or not), split into the pieces that may be the token: the value as
/// written, the value without quotes, and each piece between URL delimiters (`/ ? # @ : = &`)
/// of at least 4 characters.
pub(super) fn url_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let rest = ["zammad.url", "\"url\"", "'url'", "url"]
            .iter()
            .find_map(|k| t.strip_prefix(k));
        let Some(rest) = rest else { continue };
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue; // another key (`url_x`)
        }
        let value = rest.trim().trim_start_matches('=').trim();
        if value.is_empty() {
            continue;
        }
        out.push(value.to_string());
        let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
        out.push(unquoted.to_string());
        // the scheme and the host may be shown; a query key (`token=`) is not a secret
        let (scheme, after) = unquoted.split_once("://").unwrap_or(("", unquoted));
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        out.extend(
            unquoted
                .split(['/', '?', '#', '@', ':', '&', '"', '\'', ' ', ';'])
                .map(|p| p.split_once('=').map_or(p, |(_, v)| v))
                .filter(|p| p.chars().count() >= 4 && *p != scheme && *p != host)
                .map(str::to_string),
        );
    }
    // longest first, so a value is replaced whole before its pieces
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `msg` with URL-looking text redacted and the pieces of `text`'s `url` values hidden.
pub(super) fn scrub_secrets(text: &str, msg: &str) -> String {
    let mut out = redact_urls_in(msg);
    for secret in url_secrets(text) {
        if out.contains(&secret) {
            out = out.replace(&secret, "***");
        }
    }
    out
}

/// Replace every `scheme://...` run in `s` (up to whitespace, a quote, a backtick or a comma)
/// by its [`sipcti_cti::redact_url`] form.
pub(super) fn redact_urls_in(s: &str) -> String {
    let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | '<' | '>');
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| {
                j + rest[j..].chars().next().map_or(1, char::len_utf8)
            });
        let end = rest[i + 3..].find(stop).map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&sipcti_cti::redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
