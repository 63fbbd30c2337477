//! Redaction of the Zammad CTI URL (the token in its path is the only credential).

/// Redact a Zammad CTI URL for logging.
///
/// Takes any URL string and returns `scheme://host[:port]/***`: everything after the
/// authority (the whole path, the query, the fragment) and any userinfo is replaced by a
/// single `***`, because the token may sit in any path segment
/// (`https://z.example/SECRET/api/v1/cti/x`), in the query (`?token=SECRET`), in the fragment
/// or in the userinfo (`https://user:SECRET@z.example/`). A URL with nothing after the host
/// (`https://z.example` or `https://z.example/`) gives `scheme://host[:port]/`. A URL without
/// a host (`mailto:x`) gives `scheme:***`. A string that does not parse as a URL gives
/// `<unparseable url>`, never the input. Never fails, never panics.
pub fn redact_url(url: &str) -> String {
    let Ok(u) = url::Url::parse(url.trim()) else {
        return String::from("<unparseable url>");
    };
    let mut out = String::new();
    out.push_str(u.scheme());
    out.push(':');
    let Some(host) = u.host_str() else {
        out.push_str("***");
        return out;
    };
    out.push_str("//");
    out.push_str(host);
    if let Some(port) = u.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let bare = (u.path().is_empty() || u.path() == "/")
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none();
    out.push_str(if bare { "/" } else { "/***" });
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    /// Every URL shape with a secret in it: the secret never survives, only
    /// `scheme://host[:port]/***` does.
    #[test]
    fn every_url_shape_keeps_only_scheme_host_port() {
        let cases = [
            (
                "https://z.example/api/v1/cti/SECRET",
                "https://z.example/***",
            ),
            (
                "http://127.0.0.1:3000/api/v1/cti/SECRET/def",
                "http://127.0.0.1:3000/***",
            ),
            (
                "https://z.example/SECRET/api/v1/cti/x",
                "https://z.example/***",
            ),
            (
                "https://z.example/api/v1/cti?token=SECRET",
                "https://z.example/***",
            ),
            ("https://z.example/?token=SECRET", "https://z.example/***"),
            ("https://user:SECRET@z.example/", "https://z.example/***"),
            ("https://SECRET@z.example", "https://z.example/***"),
            (
                "https://z.example/api/v1/cti/x#SECRET",
                "https://z.example/***",
            ),
            ("https://z.example#SECRET", "https://z.example/***"),
            (
                "https://[::1]:8443/api/v1/cti/SECRET",
                "https://[::1]:8443/***",
            ),
            ("ftp://x/api/v1/cti/SECRET", "ftp://x/***"),
            ("mailto:SECRET@x", "mailto:***"),
            (
                "  https://z.example/api/v1/cti/SECRET\n",
                "https://z.example/***",
            ),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("SECRET"), "{url} -> {got}");
        }
    }

    #[test]
    fn bare_host_stays_readable() {
        assert_eq!(redact_url("https://z.example/"), "https://z.example/");
        assert_eq!(redact_url("https://z.example"), "https://z.example/");
        assert_eq!(
            redact_url("http://z.example:8080"),
            "http://z.example:8080/"
        );
    }

    #[test]
    fn never_echoes_unparseable_input() {
        assert_eq!(redact_url("not a url SECRET"), "<unparseable url>");
        assert_eq!(redact_url(""), "<unparseable url>");
        assert_eq!(redact_url("https://z.exa mple/SECRET"), "<unparseable url>");
    }
}
