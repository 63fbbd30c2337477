//! Redaction of the Zammad CTI URL (the token in its path is the only credential).

/// Redact a Zammad CTI URL for logging.
///
/// Takes any URL string and returns a form safe to log: every path segment after a `cti`
/// segment is replaced by a single `***` (`https://zammad.example/api/v1/cti/TOKEN` ->
/// `https://zammad.example/api/v1/cti/***`); userinfo becomes `***@`; a query or fragment
/// becomes `?***` / `#***`. If the path has no `cti` segment the whole path is hidden
/// (`/***`), since the token may then be anywhere in it. A string that does not parse as a URL
/// gives `<unparseable url>`, never the input. Never fails.
pub fn redact_url(url: &str) -> String {
    let Ok(u) = url::Url::parse(url.trim()) else {
        return String::from("<unparseable url>");
    };
    let mut out = String::new();
    out.push_str(u.scheme());
    out.push(':');
    if let Some(host) = u.host_str() {
        out.push_str("//");
        if !u.username().is_empty() || u.password().is_some() {
            out.push_str("***@");
        }
        out.push_str(host);
        if let Some(port) = u.port() {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
    match u.path_segments() {
        Some(segments) => {
            let segs: Vec<&str> = segments.collect();
            match segs.iter().position(|s| *s == "cti") {
                Some(i) => {
                    for s in &segs[..=i] {
                        out.push('/');
                        out.push_str(s);
                    }
                    if segs.len() > i + 1 {
                        out.push_str("/***");
                    }
                }
                None => {
                    if segs.iter().any(|s| !s.is_empty()) {
                        out.push_str("/***");
                    } else {
                        out.push('/');
                    }
                }
            }
        }
        None => {
            if !u.path().is_empty() {
                out.push_str("***");
            }
        }
    }
    if u.query().is_some() {
        out.push_str("?***");
    }
    if u.fragment().is_some() {
        out.push_str("#***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_token_after_cti() {
        assert_eq!(
            redact_url("https://zammad.example/api/v1/cti/TOKEN"),
            "https://zammad.example/api/v1/cti/***"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:3000/api/v1/cti/abc/def"),
            "http://127.0.0.1:3000/api/v1/cti/***"
        );
    }

    #[test]
    fn hides_userinfo_query_fragment() {
        let r = redact_url("https://bob:s3cret@zammad.example/api/v1/cti/TOKEN?x=SECRET#FRAG");
        assert_eq!(r, "https://***@zammad.example/api/v1/cti/***?***#***");
        assert!(!r.contains("s3cret") && !r.contains("bob") && !r.contains("SECRET"));
    }

    #[test]
    fn hides_whole_path_without_cti_segment() {
        assert_eq!(
            redact_url("https://hooks.example/zammad/TOKEN"),
            "https://hooks.example/***"
        );
        assert_eq!(
            redact_url("https://zammad.example/"),
            "https://zammad.example/"
        );
    }

    #[test]
    fn never_echoes_unparseable_input() {
        assert_eq!(redact_url("not a url TOKEN"), "<unparseable url>");
        assert_eq!(redact_url(""), "<unparseable url>");
    }

    #[test]
    fn cti_without_token() {
        assert_eq!(
            redact_url("https://zammad.example/api/v1/cti"),
            "https://zammad.example/api/v1/cti"
        );
    }
}
