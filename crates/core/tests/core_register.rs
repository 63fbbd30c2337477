//! Registration through sipcti in the sans-IO core (issue 8): a phone's
//! REGISTER goes to the trunk's registrar with its Contact replaced by a
//! sipcti URI carrying an opaque key (or with a Path, RFC 3327); the
//! challenge comes back untouched; the 2xx stores a binding (flow, Contact,
//! granted expiry) and goes back with the phone's own Contact; an INVITE
//! for the key reaches the phone over its flow; an expired or removed
//! binding gives 480 and `hangup` `notFound`; a registered phone can be a
//! route target by name; a binding restored after a restart still routes.
//! Exact messages, virtual clock.

mod core_support;

use core_support::*;
use sipcti_core::{BindingUpdate, CoreConfig, CtiAnswer, Output, RegistrationMode};
use sipcti_dialog::{InboundRoute, NumberPattern};
use sipcti_event::{Cause, Direction, EventKind};
use sipcti_wire::TransportKind;

/// The phone that registers (inside 10.0.0.0/24), its port differing from
/// its Contact's to show the flow is the source.
const REG_PHONE: &str = "10.0.0.21:40001";

fn cfg(mode: RegistrationMode) -> CoreConfig {
    let mut c = config();
    c.tracker.country_code = Some("49".into());
    c.registration.mode = mode;
    c
}

/// The phone's REGISTER (rport asked, so responses and the flow use the
/// source port).
fn register(branch: &str, cseq: u32, expires: u32, auth: bool) -> Vec<u8> {
    let auth = if auth {
        "Authorization: Digest username=\"201\", realm=\"prov\", nonce=\"n1\", uri=\"sip:provider.example\", response=\"0123\"\n"
    } else {
        ""
    };
    sip(&format!(
        "REGISTER sip:provider.example SIP/2.0
Via: SIP/2.0/UDP 10.0.0.21:5062;rport;branch={branch}
Max-Forwards: 70
From: <sip:201@provider.example>;tag=ph1
To: <sip:201@provider.example>
Call-ID: reg-201@10.0.0.21
CSeq: {cseq} REGISTER
{auth}Contact: \"Alice\" <sip:201@10.0.0.21:5062;ob>;expires={expires}
Content-Length: 0

"
    ))
}

/// The key in the forwarded REGISTER's Contact (`sip:<key>@192.0.2.10:5060`).
fn key_of(fwd: &[u8]) -> String {
    let c = hv(fwd, "Contact").expect("Contact");
    let user = c
        .split("sip:")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .expect("user");
    assert!(
        user.len() == 18
            && user.starts_with("rb")
            && user[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "opaque key: {user}"
    );
    user.to_string()
}

/// The registrar's response to the forwarded REGISTER `fwd` (both Vias),
/// with `extra` header lines.
fn reg_response(fwd: &[u8], status: &str, extra: &[&str]) -> Vec<u8> {
    reply(fwd, status, "reg77", extra)
}

/// The provider's INVITE to `ruri` (with `route` lines), dialled number in To.
fn invite_for(ruri: &str, route: &str, branch: &str, cid: &str) -> Vec<u8> {
    sip(&format!(
        "INVITE {ruri} SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch={branch}
{route}Max-Forwards: 68
From: <sip:+4930999888@203.0.113.5>;tag=tr9
To: <sip:4930123456@provider.example>
Call-ID: {cid}
CSeq: 10 INVITE
Contact: <sip:+4930999888@203.0.113.5:5060>
Content-Length: 0

"
    ))
}

fn bindings(outs: &[Output]) -> Vec<&BindingUpdate> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Binding(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Register 201 (challenge, then credentials, 60 s granted); returns the key.
fn registered(h: &mut H) -> String {
    // the REGISTER goes to the trunk with our Contact
    let o = h.udp(0, register("z9hG4bK-r1", 1, 120, false), REG_PHONE);
    let fwd = only_tx(&o).data.clone();
    assert_eq!(only_tx(&o).dest, target(TRUNK));
    let key = key_of(&fwd);
    // the challenge goes back untouched (but for our Via)
    let chal = "WWW-Authenticate: Digest realm=\"prov\", nonce=\"n1\"";
    let o = h.udp(
        10,
        reg_response(&fwd, "SIP/2.0 401 Unauthorized", &[chal]),
        TRUNK,
    );
    let back = only_tx(&o);
    assert_eq!(back.dest, target(REG_PHONE));
    assert_eq!(
        s(&back.data),
        s(&response_text(
            "SIP/2.0 401 Unauthorized",
            &["SIP/2.0/UDP 10.0.0.21:5062;rport=40001;branch=z9hG4bK-r1;received=10.0.0.21"],
            "<sip:201@provider.example>;tag=ph1",
            "<sip:201@provider.example>;tag=reg77",
            "reg-201@10.0.0.21",
            "1 REGISTER",
            &[chal],
        ))
    );
    assert!(bindings(&o).is_empty());
    assert_eq!(h.core.bindings_len(), 0);
    // with credentials: the registrar grants 60 s
    let o = h.udp(20, register("z9hG4bK-r2", 2, 120, true), REG_PHONE);
    let fwd2 = only_tx(&o).data.clone();
    assert_eq!(key_of(&fwd2), key, "the same phone keeps its key");
    let ok_contact = format!("Contact: <sip:{key}@192.0.2.10:5060>;expires=60");
    let o = h.udp(
        30,
        reg_response(&fwd2, "SIP/2.0 200 OK", &[&ok_contact]),
        TRUNK,
    );
    let back = transmits(&o);
    assert_eq!(back.len(), 1, "{}", show(&o));
    assert_eq!(
        s(&back[0].data),
        s(&response_text(
            "SIP/2.0 200 OK",
            &["SIP/2.0/UDP 10.0.0.21:5062;rport=40001;branch=z9hG4bK-r2;received=10.0.0.21"],
            "<sip:201@provider.example>;tag=ph1",
            "<sip:201@provider.example>;tag=reg77",
            "reg-201@10.0.0.21",
            "2 REGISTER",
            &["Contact: <sip:201@10.0.0.21:5062;ob>;expires=60"],
        )),
        "the phone gets its own Contact back"
    );
    let b = bindings(&o);
    assert_eq!(b.len(), 1, "{}", show(&o));
    let BindingUpdate::Upsert(b) = b[0] else {
        panic!("upsert expected: {b:?}")
    };
    assert_eq!(b.key.to_string(), key);
    assert_eq!(b.aor, "sip:201@provider.example");
    assert_eq!(b.user, "201");
    assert_eq!(b.contact, "sip:201@10.0.0.21:5062;ob");
    assert_eq!(b.flow.source, addr(REG_PHONE));
    assert_eq!(b.flow.transport, TransportKind::Udp);
    assert_eq!(b.expires, h.at(30 + 60_000));
    key
}

#[test]
fn register_rewrites_contact_and_the_inbound_call_reaches_the_phone_over_its_flow() {
    let mut h = H::with(cfg(RegistrationMode::Contact));
    let key = registered(&mut h);
    // exact forwarded REGISTER
    let o = h.udp(100, register("z9hG4bK-r3", 3, 120, true), REG_PHONE);
    let fwd = &only_tx(&o).data;
    assert_eq!(
        s(fwd),
        s(&sip(&format!(
            "REGISTER sip:provider.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={}
Via: SIP/2.0/UDP 10.0.0.21:5062;rport=40001;branch=z9hG4bK-r3;received=10.0.0.21
Max-Forwards: 69
From: <sip:201@provider.example>;tag=ph1
To: <sip:201@provider.example>
Call-ID: reg-201@10.0.0.21
CSeq: 3 REGISTER
Authorization: Digest username=\"201\", realm=\"prov\", nonce=\"n1\", uri=\"sip:provider.example\", response=\"0123\"
Contact: \"Alice\" <sip:{key}@192.0.2.10:5060>;expires=120
Content-Length: 0

",
            top_branch(fwd)
        )))
    );
    // the provider calls the key: the phone gets its own Contact as
    // Request-URI, at its flow (source port 40001, not 5062)
    let inv = invite_for(
        &format!("sip:{key}@192.0.2.10:5060"),
        "",
        "z9hG4bK-i1",
        "in1@prov",
    );
    let o = h.udp(1_000, inv, TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    // Zammad's `to` is the dialled number (To), not the key
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        "4930123456",
        None,
    );
    let token = nc[0].0;
    let o = h.cti(1_010, token, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(REG_PHONE));
    let m = parse(&t.data);
    assert_eq!(m.request_uri(), Some("sip:201@10.0.0.21:5062;ob"));
    assert_eq!(
        m.header_values("Record-Route"),
        vec!["<sip:192.0.2.10:5060;lr>"]
    );
    // the phone answers with a Contact user that is no number (baresip's
    // `201-0x…`): Zammad's answeringNumber is the binding's user
    let ok = reply(
        &t.data,
        "SIP/2.0 200 OK",
        "ph9",
        &["Contact: <sip:201-0x5628@10.0.0.21:5062>"],
    );
    let o = h.udp(2_000, ok, REG_PHONE);
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_eq!(ev[0].kind, EventKind::Answer);
    assert_eq!(ev[0].answering_number.as_deref(), Some("201"));
}

#[test]
fn an_expired_binding_gets_480_and_hangup_not_found() {
    let mut h = H::with(cfg(RegistrationMode::Contact));
    let key = registered(&mut h);
    // 60 s after the 200 the binding expires
    let o = h.timers_until(60_030);
    let b = bindings(&o);
    assert_eq!(b.len(), 1, "{}", show(&o));
    assert_eq!(
        b[0],
        &BindingUpdate::Remove(sipcti_core::BindingKey::parse(&key).unwrap())
    );
    assert_eq!(h.core.bindings_len(), 0);
    let inv = invite_for(
        &format!("sip:{key}@192.0.2.10:5060"),
        "",
        "z9hG4bK-i2",
        "in2@prov",
    );
    let o = h.udp(61_000, inv, TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    let o = h.cti(61_010, nc[0].0, CtiAnswer::Continue);
    let t = only_tx_any(&o);
    assert_eq!(t.dest, target(TRUNK));
    assert_eq!(start_line(&t.data), "SIP/2.0 480 Temporarily Unavailable");
    let ev = events(&o);
    assert_eq!(ev.len(), 1, "{}", show(&o));
    assert_ev(
        ev[0],
        EventKind::Hangup,
        Direction::In,
        "4930999888",
        "4930123456",
        Some(Cause::NotFound),
    );
}

#[test]
fn expires_zero_removes_the_binding_at_once() {
    let mut h = H::with(cfg(RegistrationMode::Contact));
    let key = registered(&mut h);
    let o = h.udp(5_000, register("z9hG4bK-r9", 9, 0, true), REG_PHONE);
    let fwd = only_tx(&o).data.clone();
    assert_eq!(
        hv(&fwd, "Contact").unwrap(),
        format!("\"Alice\" <sip:{key}@192.0.2.10:5060>;expires=0")
    );
    // the registrar lists no binding any more
    let o = h.udp(5_010, reg_response(&fwd, "SIP/2.0 200 OK", &[]), TRUNK);
    assert_eq!(
        bindings(&o),
        vec![&BindingUpdate::Remove(
            sipcti_core::BindingKey::parse(&key).unwrap()
        )]
    );
    assert_eq!(h.core.bindings_len(), 0);
}

#[test]
fn path_mode_adds_path_keeps_contact_and_routes_by_the_path_key() {
    let mut h = H::with(cfg(RegistrationMode::Path));
    let o = h.udp(0, register("z9hG4bK-p1", 1, 120, true), REG_PHONE);
    let fwd = only_tx(&o).data.clone();
    let m = parse(&fwd);
    assert_eq!(
        m.header("Contact"),
        Some("\"Alice\" <sip:201@10.0.0.21:5062;ob>;expires=120"),
        "the Contact stays the phone's"
    );
    let path = m.header("Path").expect("Path").to_string();
    let key = path
        .strip_prefix("<sip:")
        .and_then(|p| p.strip_suffix("@192.0.2.10:5060;lr>"))
        .expect("Path is <sip:key@us;lr>")
        .to_string();
    assert!(sipcti_core::BindingKey::parse(&key).is_some(), "{path}");
    let path_hdr = format!("Path: {path}");
    let o = h.udp(
        10,
        reg_response(
            &fwd,
            "SIP/2.0 200 OK",
            &[
                &path_hdr,
                "Contact: <sip:201@10.0.0.21:5062;ob>;expires=300",
            ],
        ),
        TRUNK,
    );
    let t = transmits(&o);
    assert_eq!(t.len(), 1);
    assert_eq!(
        hv(&t[0].data, "Contact").unwrap(),
        "<sip:201@10.0.0.21:5062;ob>;expires=300"
    );
    assert_eq!(bindings(&o).len(), 1);
    assert_eq!(h.core.stats().path_not_echoed, 0);
    // the registrar's INVITE: Request-URI the Contact, Route our Path
    let route = format!("Route: {path}\n");
    let inv = invite_for(
        "sip:201@10.0.0.21:5062;ob",
        &route,
        "z9hG4bK-i3",
        "in3@prov",
    );
    let o = h.udp(1_000, inv, TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        "4930123456",
        None,
    );
    let o = h.cti(1_010, nc[0].0, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(REG_PHONE));
    let m = parse(&t.data);
    assert_eq!(m.request_uri(), Some("sip:201@10.0.0.21:5062;ob"));
    assert!(m.header("Route").is_none(), "our Route is popped");
}

#[test]
fn a_registered_phone_is_a_route_target_by_name_and_480_when_not_registered() {
    let mut c = cfg(RegistrationMode::Contact);
    c.tracker.routes = vec![InboundRoute::new(
        NumberPattern::parse("4930123456", Some("49"), 6).unwrap(),
        "201",
        Some("support".into()),
        Some("49"),
        6,
    )];
    let mut h = H::with(c);
    // not registered yet: 480, hangup notFound
    let inv = invite_for("sip:4930123456@192.0.2.10", "", "z9hG4bK-n1", "n1@prov");
    let o = h.udp(0, inv, TRUNK);
    let nc = new_calls(&o);
    assert_eq!(nc.len(), 1, "{}", show(&o));
    assert_eq!(nc[0].1.queue.as_deref(), Some("support"));
    let o = h.cti(5, nc[0].0, CtiAnswer::Continue);
    assert_eq!(
        start_line(&only_tx_any(&o).data),
        "SIP/2.0 480 Temporarily Unavailable"
    );
    assert_eq!(events(&o)[0].cause, Some(Cause::NotFound));
    // registered: the call goes to the binding
    let _ = registered(&mut h);
    let inv = invite_for("sip:4930123456@192.0.2.10", "", "z9hG4bK-n2", "n2@prov");
    let o = h.udp(1_000, inv, TRUNK);
    let nc = new_calls(&o);
    assert_ev(
        nc[0].1,
        EventKind::NewCall,
        Direction::In,
        "4930999888",
        "4930123456",
        None,
    );
    let o = h.cti(1_010, nc[0].0, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(t.dest, target(REG_PHONE));
    assert_eq!(
        parse(&t.data).request_uri(),
        Some("sip:201@10.0.0.21:5062;ob")
    );
}

#[test]
fn over_tcp_the_inbound_call_uses_the_registered_connection() {
    let mut h = H::with(cfg(RegistrationMode::Contact));
    let reg = String::from_utf8(register("z9hG4bK-t1", 1, 120, true))
        .unwrap()
        .replace(
            "SIP/2.0/UDP 10.0.0.21:5062;rport;",
            "SIP/2.0/TCP 10.0.0.21:5062;",
        );
    let o = h.recv(0, reg.as_bytes(), "10.0.0.21:51234", TransportKind::Tcp);
    let fwd = only_tx(&o).data.clone();
    let key = key_of(&fwd);
    let ok_contact = format!("Contact: <sip:{key}@192.0.2.10:5060>;expires=60");
    let o = h.udp(
        10,
        reg_response(&fwd, "SIP/2.0 200 OK", &[&ok_contact]),
        TRUNK,
    );
    let t = only_tx_any(&o);
    assert_eq!(
        (t.transport, t.dest.clone()),
        (TransportKind::Tcp, target("10.0.0.21:51234"))
    );
    let inv = invite_for(
        &format!("sip:{key}@192.0.2.10:5060"),
        "",
        "z9hG4bK-i4",
        "in4@prov",
    );
    let o = h.udp(1_000, inv, TRUNK);
    let o = h.cti(1_010, new_calls(&o)[0].0, CtiAnswer::Continue);
    let t = only_tx(&o);
    assert_eq!(
        (t.transport, t.dest.clone()),
        (TransportKind::Tcp, target("10.0.0.21:51234")),
        "the INVITE goes down the connection the phone registered on"
    );
}

#[test]
fn a_restored_binding_routes_after_a_restart() {
    let mut h = H::with(cfg(RegistrationMode::Contact));
    let key = registered(&mut h);
    let b = h.core.bindings_of("201")[0].clone();
    // a new core (the restart) given the binding back
    let mut h2 = H::with(cfg(RegistrationMode::Contact));
    let now = h2.at(0);
    h2.core.restore_binding(
        now,
        sipcti_core::Binding {
            expires: now + std::time::Duration::from_secs(30),
            ..b
        },
    );
    let inv = invite_for(
        &format!("sip:{key}@192.0.2.10:5060"),
        "",
        "z9hG4bK-i5",
        "in5@prov",
    );
    let o = h2.udp(10, inv, TRUNK);
    assert!(bindings(&o).is_empty());
    let o = h2.cti(20, new_calls(&o)[0].0, CtiAnswer::Continue);
    assert_eq!(only_tx(&o).dest, target(REG_PHONE));
}

/// The one Transmit of `outs` (CTI events allowed beside it).
fn only_tx_any(outs: &[Output]) -> &sipcti_core::Transmit {
    let t = transmits(outs);
    assert_eq!(t.len(), 1, "{}", show(outs));
    t[0]
}

#[test]
fn udp_keepalives_are_absorbed_without_an_answer_or_a_count_of_garbage() {
    let mut h = H::new();
    for (i, ka) in [&b"\r\n\r\n"[..], b"\r\n", b"\0\0\0\0", b" "]
        .iter()
        .enumerate()
    {
        let o = h.udp(i as u64, ka, REG_PHONE);
        assert!(o.is_empty(), "{}", show(&o));
    }
    let o = h.udp(10, b"\r\n\r\n", STRANGER);
    assert!(o.is_empty());
    assert_eq!(h.core.stats().keepalives, 5);
    assert_eq!(h.core.stats().unparseable, 0);
    assert_eq!(h.core.stats().malformed_requests, 0);
}
