//! Phone number normalisation for the `from`, `to` and `answeringNumber` fields.

use std::borrow::Cow;

/// Normalises a number (a URI user part or a `tel:` number) to the form Zammad expects:
/// E.164 digits without `+`, short internal extensions as they are, non-numeric users
/// (`alice`, `anonymous`) unchanged.
///
/// - anything from the first `;` on is dropped (user parameters such as `;phone-context=`);
/// - a leading `tel:` is dropped;
/// - visual separators (`-`, `.`, space, parentheses) are removed when what remains is a number;
/// - `+4930123` -> `4930123`, `004930123` -> `4930123`;
/// - with `country_code` `"49"`: national `030123456` -> `4930123456`;
/// - a number of at most `max_internal_len` digits without prefix is an internal extension.
///
/// ```
/// use sipcti_dialog::normalize_number;
/// assert_eq!(normalize_number("+49 (30) 123-45", None, 6), "493012345");
/// assert_eq!(normalize_number("030123456", Some("49"), 6), "4930123456");
/// assert_eq!(normalize_number("201", Some("49"), 6), "201");
/// ```
pub fn normalize_number(raw: &str, country_code: Option<&str>, max_internal_len: usize) -> String {
    let mut s = crate::view::trim(raw);
    if s.len() >= 4 && s.is_char_boundary(4) && s[..4].eq_ignore_ascii_case("tel:") {
        s = &s[4..];
    }
    let s = crate::view::trim(s.split(';').next().unwrap_or(""));
    // (the separators are ASCII: a byte test finds them; copied only when present)
    let is_sep = |b: u8| matches!(b, b'-' | b'.' | b' ' | b'(' | b')' | b'\t');
    let compact: Cow<'_, str> = if s.bytes().any(is_sep) {
        Cow::Owned(
            s.chars()
                .filter(|c| !c.is_ascii() || !is_sep(*c as u8))
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    };
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, &*compact),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // Not a number: a name such as "alice" or "anonymous" is kept as written.
        return s.to_string();
    }
    if plus {
        return digits.to_string();
    }
    if let Some(intl) = digits.strip_prefix("00") {
        if !intl.is_empty() {
            return intl.to_string();
        }
        return digits.to_string();
    }
    if let Some(national) = digits.strip_prefix('0') {
        let cc = country_code
            .map(|c| c.trim().trim_start_matches('+'))
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        if let (Some(cc), false) = (cc, national.is_empty()) {
            let mut n = String::with_capacity(cc.len() + national.len());
            n.push_str(cc);
            n.push_str(national);
            return n;
        }
        return digits.to_string();
    }
    // An internal extension (<= max_internal_len digits) or a number already in
    // international form without prefix: both are kept as they are.
    let _ = max_internal_len;
    digits.to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize_number as n;

    #[test]
    fn international_forms() {
        assert_eq!(n("+4930123456", Some("49"), 6), "4930123456");
        assert_eq!(n("004930123456", Some("49"), 6), "4930123456");
        assert_eq!(n("004930123456", None, 6), "4930123456");
        assert_eq!(n("+4930123456", None, 6), "4930123456");
    }

    #[test]
    fn national_with_country_code() {
        assert_eq!(n("030123456", Some("49"), 6), "4930123456");
        assert_eq!(n("030123456", Some("+49"), 6), "4930123456");
        // Without a country code the national number stays as it is.
        assert_eq!(n("030123456", None, 6), "030123456");
    }

    #[test]
    fn extensions_and_names() {
        assert_eq!(n("201", Some("49"), 6), "201");
        assert_eq!(n("123456", Some("49"), 6), "123456");
        assert_eq!(n("anonymous", Some("49"), 6), "anonymous");
        assert_eq!(n("Anonymous", Some("49"), 6), "Anonymous");
        assert_eq!(n("alice", Some("49"), 6), "alice");
        assert_eq!(n("john.doe", Some("49"), 6), "john.doe");
        assert_eq!(n("*21#", Some("49"), 6), "*21#");
        assert_eq!(n("", Some("49"), 6), "");
        assert_eq!(n("0", Some("49"), 6), "0");
    }

    #[test]
    fn separators_params_and_tel() {
        assert_eq!(n("+49 (30) 123-45", Some("49"), 6), "493012345");
        assert_eq!(n("+49.30.123.45", None, 6), "493012345");
        assert_eq!(n("tel:+4930123456", None, 6), "4930123456");
        assert_eq!(
            n("TEL:+49-30-123456;phone-context=x", None, 6),
            "4930123456"
        );
        assert_eq!(
            n("030123456;phone-context=+49", Some("49"), 6),
            "4930123456"
        );
        assert_eq!(n("+4930123456;npdi", None, 6), "4930123456");
        assert_eq!(n(" 201 ", None, 6), "201");
    }
}
