use super::*;

const GOOD: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[trunk]
uri = "sip:127.0.0.2:5060;transport=udp"
sources = ["127.0.0.2/32"]
[inside]
networks = ["127.0.0.3/32"]
target = "sip:127.0.0.3:5060"
[numbers]
country_code = "49"
[zammad]
url = "http://127.0.0.1:8080/api/v1/cti/SECRETTOKEN"
"#;

#[test]
fn the_loopback_fixture_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sipcti.toml");
    let c = Config::from_toml(&std::fs::read_to_string(path).unwrap(), None).unwrap();
    assert_eq!(c.inside_target.host, "127.0.0.3");
    assert_eq!(c.trunk_sources.len(), 1);
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/zammad-rules.toml");
    let r = sipcti_zammad_double::Rules::from_toml_str(&std::fs::read_to_string(rules).unwrap())
        .unwrap();
    assert_eq!(r.caller_id_for("49301234567"), Some("4930111222"));
}

#[test]
fn good_config_loads() {
    let c = Config::from_toml(GOOD, None).unwrap();
    assert_eq!(c.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(c.trunk.port, 5060);
    assert_eq!(c.trunk.transport, TransportKind::Udp);
    assert_eq!(c.newcall_timeout, Duration::from_millis(1500));
    assert_eq!(c.country_code.as_deref(), Some("49"));
}

#[test]
fn effective_config_hides_token() {
    let c = Config::from_toml(GOOD, None).unwrap();
    let t = c.effective_toml();
    assert!(!t.contains("SECRETTOKEN"), "{t}");
    assert!(t.contains("url = \"http://127.0.0.1:8080/***\""), "{t}");
    let d = format!("{c:?}");
    assert!(
        !d.contains("SECRETTOKEN") && d.contains("127.0.0.1:8080/***"),
        "{d}"
    );
}

#[test]
fn side_addresses_default_to_advertise_and_can_differ() {
    let c = Config::from_toml(GOOD, None).unwrap();
    assert_eq!(
        (c.advertise_inside, c.advertise_trunk),
        (c.advertise, c.advertise)
    );
    let two = GOOD.replace(
        "listen = \"127.0.0.1:5060\"",
        "listen = \"0.0.0.0:5060\"\nadvertise_inside = \"192.168.10.2\"\nadvertise_trunk = \"203.0.113.10\"",
    );
    let c = Config::from_toml(&two, None).unwrap();
    assert_eq!(c.advertise_inside.to_string(), "192.168.10.2");
    assert_eq!(c.advertise_trunk.to_string(), "203.0.113.10");
    let bad = two.replace("203.0.113.10", "nope");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.starts_with("sip.advertise_trunk:"), "{e}");
}

#[test]
fn env_url_overrides_file() {
    let c = Config::from_toml(GOOD, Some("https://z.example/api/v1/cti/ENV".into())).unwrap();
    assert_eq!(
        c.zammad_url.as_deref(),
        Some("https://z.example/api/v1/cti/ENV")
    );
}

#[test]
fn errors_name_the_key() {
    let bad = GOOD.replace("127.0.0.3/32", "not-a-net");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.starts_with("inside.networks:"), "{e}");
    let bad = GOOD.replace("sip:127.0.0.2:5060;transport=udp", "http://x");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.starts_with("trunk.uri:"), "{e}");
    let bad = GOOD.replace("127.0.0.1:5060", "0.0.0.0:5060");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.starts_with("sip.advertise:"), "{e}");
    let bad = GOOD.replace("[numbers]", "[numbers]\nbogus = 1");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.contains("bogus"), "{e}");
    let bad = GOOD.replace("country_code = \"49\"", "country_code = \"+49\"");
    let e = Config::from_toml(&bad, None).unwrap_err().to_string();
    assert!(e.starts_with("numbers.country_code:"), "{e}");
}

/// The secret used in every leak test below.
const SECRET: &str = "S3CR3TT0K3N";

/// Zammad URLs with the token in every place a token can be.
pub(crate) fn url_shapes() -> Vec<String> {
    [
        "https://z.example/api/v1/cti/{S}",
        "https://z.example/{S}/api/v1/cti/x",
        "https://z.example/api/v1/cti?token={S}",
        "https://user:{S}@z.example/api/v1/cti/x",
        "https://z.example:8443/api/v1/cti/x#{S}",
    ]
    .iter()
    .map(|u| u.replace("{S}", SECRET))
    .collect()
}

/// Realistic typos on or around `zammad.url` (`{U}` is the URL); each must fail to parse.
pub(crate) const TYPOS: &[(&str, &str)] = &[
    ("missing opening quote", "url = {U}\""),
    ("missing closing quote", "url = \"{U}"),
    ("unquoted", "url = {U}"),
    ("duplicate key", "url = \"{U}\"\nurl = \"{U}\""),
    ("missing =", "url \"{U}\""),
    ("wrong type (array)", "url = [\"{U}\"]"),
    ("wrong type (table)", "url = { u = \"{U}\" }"),
    ("url in the wrong key", "format = \"{U}\""),
    (
        "unknown key next to url",
        "url = \"{U}\"\nurl_token = \"{U}\"",
    ),
    ("misspelt key", "ulr = \"{U}\""),
    ("bad escape", "url = \"{U}\\q\""),
    ("mixed quotes", "url = '{U}\""),
    ("trailing garbage", "url = \"{U}\" x"),
    ("unclosed multi-line string", "url = \"\"\"{U}"),
    ("url in the wrong table", "[limits]\nurl = \"{U}\""),
    ("table twice", "[zammad]\nurl = \"{U}\""),
    ("dotted key twice", "zammad.url = \"{U}\""),
    ("newline in value", "url = \"{U}\nx\""),
    ("control character", "url = \"{U}\u{1}\""),
];

/// GOOD with its `url` line replaced by `line`.
pub(crate) fn with_url_line(line: &str) -> String {
    GOOD.replace(
        "url = \"http://127.0.0.1:8080/api/v1/cti/SECRETTOKEN\"",
        line,
    )
}

/// Every typo with every URL shape: the error (Display and Debug) never shows the token,
/// never shows the source line, and says where the error is.
#[test]
fn toml_errors_never_show_the_token() {
    for (name, typo) in TYPOS {
        for url in url_shapes() {
            let text = with_url_line(&typo.replace("{U}", &url));
            let e = match Config::from_toml(&text, None) {
                Ok(_) => panic!("{name}: parsed"),
                Err(e) => e,
            };
            let shown = format!("{e}\n{e:?}");
            if std::env::var_os("SIPCTI_SHOW_ERRORS").is_some() {
                eprintln!("{name}: {e}");
            }
            assert!(!shown.contains(SECRET), "{name} / {url}:\n{shown}");
            // nothing past the host either
            assert!(
                !shown.contains("/api") && !shown.contains("user"),
                "{name} / {url}:\n{shown}"
            );
            assert!(shown.contains("line "), "{name}: {shown}");
            assert!(!e.to_string().contains('\n'), "{name}: {e}");
        }
    }
}

/// The error names the line (1-based), the column and the key path.
#[test]
fn toml_errors_name_line_column_and_key() {
    let text = with_url_line("url = \"https://z.example/api/v1/cti/x");
    let line = text.lines().position(|l| l.starts_with("url = ")).unwrap() + 1;
    let e = Config::from_toml(&text, None).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("TOML error at line {line}, column ")),
        "{e}"
    );
    assert!(e.contains("in `zammad.url`"), "{e}");
    let e = Config::from_toml(&with_url_line("url = 5"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("line {line}, column 7 in `zammad.url`")),
        "{e}"
    );
    assert!(e.contains("expected a string"), "{e}");
}

/// Valid URLs of every shape load, and neither `check-config`'s output nor `Debug` shows
/// the token; an invalid env URL's error does not either.
#[test]
fn valid_urls_of_every_shape_are_redacted() {
    for url in url_shapes() {
        let c = Config::from_toml(&with_url_line(&format!("url = \"{url}\"")), None)
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let shown = format!("{}\n{c:?}\n{:?}", c.effective_toml(), c.file);
        assert!(!shown.contains(SECRET), "{url}:\n{shown}");
        assert!(shown.contains("z.example"), "{shown}");
        let e = Config::from_toml(GOOD, Some(url.replace("https://", "https://exa mple/")))
            .unwrap_err();
        assert!(!format!("{e} {e:?}").contains(SECRET), "{e}");
        let e = Config::from_toml(GOOD, Some(url.replace("https", "ftp"))).unwrap_err();
        assert!(!format!("{e} {e:?}").contains(SECRET), "{e}");
    }
}

#[test]
fn scrubbing_helpers() {
    assert_eq!(
        redact_urls_in("a `https://h/x/S` b, ftp://q/S"),
        "a `https://h/***` b, ftp://q/***"
    );
    assert_eq!(
        redact_urls_in("é://S ://S"),
        "é<unparseable url> <unparseable url>"
    );
    let t = "[zammad]\nurl = \"https://h/a/TOKEN1\"\nurl_x = 1\n  url \"x://y/TOKEN2\"";
    let m = scrub_secrets(t, "TOKEN1 and TOKEN2 but not url_x");
    assert_eq!(m, "*** and *** but not url_x");
    let t = "url = 'https://u:PASSWORD@host.example:80/?token=QUERYTOKEN#FRAGMENT'";
    let m = scrub_secrets(t, "token host.example PASSWORD QUERYTOKEN FRAGMENT https");
    assert_eq!(m, "token host.example *** *** *** https");
    assert_eq!(
        key_path_at("[a]\nb = 1\n[c.d]\n e = 2", 4).as_deref(),
        Some("c.d.e")
    );
    assert_eq!(key_path_at("x \"y=z\"", 1), None);
    assert_eq!(key_path_at("", 7), None);
}

#[test]
fn admin_section_is_optional_and_loopback_only_unless_allowed() {
    // absent: no admin server
    assert_eq!(Config::from_toml(GOOD, None).unwrap().admin, None);
    let with = |extra: &str| Config::from_toml(&format!("{GOOD}\n[admin]\n{extra}"), None);
    let c = with("listen = \"127.0.0.1:9060\"").unwrap();
    assert_eq!(c.admin, Some("127.0.0.1:9060".parse().unwrap()));
    assert!(c
        .effective_toml()
        .contains("[admin]\nlisten = \"127.0.0.1:9060\""));
    assert_eq!(
        with("listen = \"[::1]:9060\"").unwrap().admin,
        Some("[::1]:9060".parse().unwrap())
    );
    // a non-loopback address is refused unless allow_remote
    let e = with("listen = \"0.0.0.0:9060\"").unwrap_err().to_string();
    assert!(
        e.starts_with("admin.listen: not a loopback address") && e.contains("allow_remote"),
        "{e}"
    );
    let c = with("listen = \"0.0.0.0:9060\"\nallow_remote = true").unwrap();
    assert_eq!(c.admin, Some("0.0.0.0:9060".parse().unwrap()));
    let e = with("listen = \"localhost:9060\"").unwrap_err().to_string();
    assert!(e.starts_with("admin.listen: must be IP:PORT"), "{e}");
    // unknown keys and a missing listen are refused with the key
    let e = with("listen = \"127.0.0.1:9060\"\nport = 1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `port`"), "{e}");
    let e = with("allow_remote = true").unwrap_err().to_string();
    assert!(e.contains("missing field `listen`"), "{e}");
}

#[test]
fn zammad_outbox_keys_reach_the_cti_client() {
    let c = Config::from_toml(GOOD, None).unwrap();
    let cc = crate::cti_glue::cti_config(&c);
    assert_eq!(
        (cc.outbox, cc.outbox_sync),
        (None, Duration::from_millis(20))
    );
    assert_eq!(cc.open_call_timeout, Duration::from_secs(4 * 3600));
    assert_eq!(cc.max_open_calls, 100_000);
    let text = format!(
        "{GOOD}outbox = \"/var/lib/sipcti/outbox.db\"\noutbox_sync_ms = 5\n[timers]\nmax_call_duration_s = 600\n[limits]\nmax_calls = 50\n"
    );
    let c = Config::from_toml(&text, None).unwrap();
    let cc = crate::cti_glue::cti_config(&c);
    assert_eq!(
        cc.outbox.as_deref(),
        Some(std::path::Path::new("/var/lib/sipcti/outbox.db"))
    );
    assert_eq!(cc.outbox_sync, Duration::from_millis(5));
    assert_eq!(cc.open_call_timeout, Duration::from_secs(600));
    assert_eq!(cc.max_open_calls, 50);
    assert!(c
        .effective_toml()
        .contains("outbox = \"/var/lib/sipcti/outbox.db\""));
    let e = Config::from_toml(&format!("{GOOD}outbox_sync_ms = 10001\n"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("zammad.outbox_sync_ms"), "{e}");
}

#[test]
fn threads_default_one_and_bounded() {
    let c = Config::from_toml(GOOD, None).expect("valid");
    assert_eq!(c.file.sip.threads, 1);
    let more = GOOD.replace("[trunk]", "threads = 4\n[trunk]");
    assert_eq!(
        Config::from_toml(&more, None)
            .expect("valid")
            .file
            .sip
            .threads,
        4
    );
    let bad = GOOD.replace("[trunk]", "threads = 65\n[trunk]");
    let e = Config::from_toml(&bad, None)
        .expect_err("65 threads refused")
        .to_string();
    assert!(e.starts_with("sip.threads:"), "{e}");
}

#[test]
fn newcall_slots_default_and_bounded() {
    let c = Config::from_toml(GOOD, None).expect("valid");
    assert_eq!(c.file.zammad.newcall_slots, 8);
    assert_eq!(crate::cti_glue::cti_config(&c).newcall_slots, 8);
    let none = GOOD.replace("[zammad]", "[zammad]\nnewcall_slots = 0");
    let c = Config::from_toml(&none, None).expect("valid");
    assert_eq!(crate::cti_glue::cti_config(&c).newcall_slots, 0);
    let bad = GOOD.replace("[zammad]", "[zammad]\nnewcall_slots = 1025");
    let e = Config::from_toml(&bad, None)
        .expect_err("refused")
        .to_string();
    assert!(e.starts_with("zammad.newcall_slots:"), "{e}");
}
