use super::*;
use sipcti_dialog::NumberPattern;

const BASE: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[trunk]
uri = "sip:127.0.0.2:5060;transport=udp"
sources = ["127.0.0.2/32"]
[inside]
networks = ["192.168.10.0/24"]
target = "sip:192.168.10.2:5060"
[numbers]
country_code = "49"
"#;

fn with(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!("{BASE}{extra}"), None)
}

fn err(extra: &str) -> String {
    with(extra).expect_err("must be refused").to_string()
}

const ROUTES: &str = r#"
[[routes]]
number = "+49 30 123456"
targets = ["sip:201@192.168.10.21:5060"]
queue = "support"
[[routes]]
number = "030123457*"
targets = ["sip:202@192.168.10.22;transport=tcp"]

[phonebook]
"201" = "Alice Example"
"+49 30 555" = " Bob Example "
"#;

#[test]
fn a_ring_group_of_two_loads() {
    let c = with(
        "[[routes]]\nnumber = \"4930555\"\ntargets = [\"sip:201@192.168.10.21\", \"sip:202@192.168.10.22:5070;transport=tcp\"]\n",
    )
    .unwrap();
    let r = &c.routes[0];
    assert!(r.is_group());
    assert_eq!(
        r.targets
            .iter()
            .map(|t| (t.uri.as_str(), t.user.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            ("sip:201@192.168.10.21", Some("201")),
            ("sip:202@192.168.10.22:5070;transport=tcp", Some("202"))
        ]
    );
    assert_eq!(r.target, "sip:201@192.168.10.21");
}

#[test]
fn routes_and_phonebook_load_normalised() {
    let c = with(ROUTES).unwrap();
    assert_eq!(c.routes.len(), 2);
    let r = &c.routes[0];
    assert_eq!(r.number, NumberPattern::Exact("4930123456".into()));
    assert_eq!(r.target, "sip:201@192.168.10.21:5060");
    assert_eq!(r.target_user.as_deref(), Some("201"));
    assert_eq!(r.queue.as_deref(), Some("support"));
    let r = &c.routes[1];
    assert_eq!(r.number, NumberPattern::Prefix("4930123457".into()));
    assert_eq!(r.queue, None);
    assert_eq!(
        c.phonebook.iter().collect::<Vec<_>>(),
        vec![
            (&"201".to_string(), &"Alice Example".to_string()),
            (&"4930555".to_string(), &"Bob Example".to_string()),
        ]
    );
    // the tracker (and through it the core) gets both
    let t = c.tracker_config();
    assert_eq!(t.routes, c.routes);
    assert_eq!(t.phonebook, c.phonebook);
}

#[test]
fn no_routes_no_phonebook_is_the_old_behaviour() {
    let c = with("").unwrap();
    assert!(c.routes.is_empty() && c.phonebook.is_empty());
    let t = c.effective_toml();
    assert!(!t.contains("routes") && !t.contains("phonebook"), "{t}");
}

#[test]
fn check_config_prints_routes_and_phonebook() {
    let t = with(ROUTES).unwrap().effective_toml();
    for want in [
        "[[routes]]",
        "number = \"+49 30 123456\"",
        "targets = [\"sip:201@192.168.10.21:5060\"]",
        "queue = \"support\"",
        "number = \"030123457*\"",
        "[phonebook]",
        "201 = \"Alice Example\"",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    // and what it prints loads again to the same routes
    let again = Config::from_toml(&t, None).unwrap();
    assert_eq!(again.routes, with(ROUTES).unwrap().routes);
}

#[test]
fn route_errors_name_the_key() {
    let route = |number: &str, targets: &str, queue: &str| {
        format!("[[routes]]\nnumber = \"4930111\"\ntargets = [\"sip:201@192.168.10.21\"]\n[[routes]]\nnumber = {number}\ntargets = {targets}\n{queue}\n")
    };
    let ok_t = "[\"sip:202@192.168.10.22\"]";
    let e = err(&route("\"4930\"", "[\"al ice\"]", ""));
    assert!(
        e.starts_with("routes[1].targets: ")
            && e.contains("\"al ice\": give a SIP URI")
            && e.contains("registered through sipcti"),
        "{e}"
    );
    // a ring group: every target is checked, at most 16
    let e = err(&route(
        "\"4930\"",
        "[\"sip:201@192.168.10.21\", \"sip:202@10.1.1.1\"]",
        "",
    ));
    assert!(
        e.starts_with("routes[1].targets: ") && e.contains("not in inside.networks"),
        "{e}"
    );
    let many = (0..17)
        .map(|i| format!("\"sip:2{i:02}@192.168.10.21\""))
        .collect::<Vec<_>>()
        .join(", ");
    let e = err(&route("\"4930\"", &format!("[{many}]"), ""));
    assert!(
        e.starts_with("routes[1].targets: at most 16 targets"),
        "{e}"
    );
    let e = err(&route("\"4930\"", "[]", ""));
    assert!(e.starts_with("routes[1].targets: needs one target"), "{e}");
    let e = err(&route("\"4930\"", "[\"sip:202@10.1.1.1\"]", ""));
    assert!(
        e.starts_with("routes[1].targets: ") && e.contains("not in inside.networks"),
        "{e}"
    );
    let e = err(&route("\"4930\"", "[\"sip:202@phone.example\"]", ""));
    assert!(
        e.starts_with("routes[1].targets: ") && e.contains("must be an IP address"),
        "{e}"
    );
    let e = err(&route("\"4930\"", "[\"sip:192.168.10.22\"]", ""));
    assert!(
        e.starts_with("routes[1].targets: ") && e.contains("no user"),
        "{e}"
    );
    let e = err(&route(
        "\"4930\"",
        "[\"sip:202@192.168.10.22;transport=tls\"]",
        "",
    ));
    assert!(e.starts_with("routes[1].targets: transport=tls"), "{e}");
    let e = err(&route("\"sales\"", ok_t, ""));
    assert!(
        e.starts_with("routes[1].number: \"sales\" must be a number"),
        "{e}"
    );
    let e = err(&route("\"*\"", ok_t, ""));
    assert!(e.starts_with("routes[1].number: "), "{e}");
    let e = err(&route("\"4930\"", ok_t, "queue = \"\""));
    assert!(e.starts_with("routes[1].queue: must not be empty"), "{e}");
    let long = "q".repeat(251);
    let e = err(&route("\"4930\"", ok_t, &format!("queue = \"{long}\"")));
    assert!(e.starts_with("routes[1].queue: at most 250"), "{e}");
    assert!(with(&route(
        "\"4930\"",
        ok_t,
        &format!("queue = \"{}\"", &long[1..])
    ))
    .is_ok());
    // unknown keys are TOML errors naming the key
    let e = err("[[routes]]\nnumber = \"1\"\ntargets = [\"sip:1@192.168.10.2\"]\nqeue = \"x\"\n");
    assert!(e.contains("qeue"), "{e}");
}

#[test]
fn phonebook_errors_name_the_key() {
    let e = err("[phonebook]\n\"201\" = \"  \"\n");
    assert!(e.starts_with("phonebook.\"201\": the name is empty"), "{e}");
    let e = err("[phonebook]\n\"+4930555\" = \"A\"\n\"004930555\" = \"B\"\n");
    assert!(
        e.starts_with("phonebook.") && e.contains("same number (4930555)"),
        "{e}"
    );
    let e = err("[phonebook]\n\"\" = \"A\"\n");
    assert!(
        e.starts_with("phonebook.\"\": the number or extension is empty"),
        "{e}"
    );
}
