//! `sipcti demo`: a self-contained tour on loopback.
//!
//! Starts the proxy (127.0.0.1) and the Zammad double, then places five
//! real SIP calls through the proxy with the small user agents of its `ua` module:
//! a "trunk" on 127.0.0.2 and a "phone" on 127.0.0.3 (every port is picked
//! by the system, so demos never collide). For each call it prints the
//! SIP messages as the user agents saw them and the CTI requests as the
//! double logged them, and checks both against what should happen. Any
//! difference makes the demo fail (it doubles as a smoke test).

mod build;
mod ua;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rsip::{Method, StatusCode};
use sipcti_wire::{NameAddr, SipMessage};
use sipcti_zammad_double::{CallerIdRule, DoubleConfig, LoggedRequest, Rules, ZammadDouble};
use tokio::time::{sleep, Instant};

use crate::config::Config;
use crate::runtime::{self, Running};
use ua::{Entry, Recorder, Ua, Uac};

const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PHONE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Our number at the provider (inbound calls go to it).
const OUR_NUMBER: &str = "4930111222";
/// The caller id Zammad's rule picks for outbound calls to Berlin.
const CALLER_ID: &str = "4930111222";
/// A customer calling in.
const CUSTOMER: &str = "+491701234567";
/// A caller on Zammad's block list (as normalised by the proxy).
const BLOCKED: &str = "+491715000000";
const BLOCKED_NORMALISED: &str = "491715000000";
/// The phone's extension and name.
const EXTENSION: &str = "201";
const ALICE: &str = "Alice";
/// What Alice dials (national), and its normalised form.
const DIALLED: &str = "0301234567";
const DIALLED_NORMALISED: &str = "49301234567";

/// Longest wait for any one SIP step.
const STEP: Duration = Duration::from_secs(5);
/// Longest time one call may take altogether.
const CALL_LIMIT: Duration = Duration::from_secs(20);
/// Longest wait for the call's hangup to reach the double.
const CTI_WAIT: Duration = Duration::from_secs(5);
/// Set to 1 to print every SIP message in full under its timeline line.
pub const RAW_ENV: &str = "SIPCTI_DEMO_RAW";
const RING: Duration = Duration::from_millis(150);
const TALK: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InboundAnswered,
    InboundBlocked,
    OutboundRewrite,
    CallerCancels,
    CalleeBusy,
}

/// What Zammad should see for one call.
struct CtiExpect {
    direction: &'static str,
    from: &'static str,
    to: &'static str,
    answered: bool,
    cause: &'static str,
    /// Zammad's answer to newCall: `None` (continue), `Some("reject")`, `Some("dial")`.
    action: Option<&'static str>,
}

struct Call {
    kind: Kind,
    title: &'static str,
    cti: CtiExpect,
}

fn calls() -> [Call; 5] {
    [
        Call {
            kind: Kind::InboundAnswered,
            title: "Inbound call, answered",
            cti: CtiExpect {
                direction: "in",
                from: "491701234567",
                to: OUR_NUMBER,
                answered: true,
                cause: "normalClearing",
                action: None,
            },
        },
        Call {
            kind: Kind::InboundBlocked,
            title: "Inbound call from a blocked number",
            cti: CtiExpect {
                direction: "in",
                from: BLOCKED_NORMALISED,
                to: OUR_NUMBER,
                answered: false,
                cause: "busy",
                action: Some("reject"),
            },
        },
        Call {
            kind: Kind::OutboundRewrite,
            title: "Outbound call, caller id chosen by Zammad",
            cti: CtiExpect {
                direction: "out",
                from: EXTENSION,
                to: DIALLED_NORMALISED,
                answered: true,
                cause: "normalClearing",
                action: Some("dial"),
            },
        },
        Call {
            kind: Kind::CallerCancels,
            title: "Outbound call, caller gives up while it rings",
            cti: CtiExpect {
                direction: "out",
                from: EXTENSION,
                to: DIALLED_NORMALISED,
                answered: false,
                cause: "cancel",
                action: Some("dial"),
            },
        },
        Call {
            kind: Kind::CalleeBusy,
            title: "Inbound call, phone busy",
            cti: CtiExpect {
                direction: "in",
                from: "491701234567",
                to: OUR_NUMBER,
                answered: false,
                cause: "busy",
                action: None,
            },
        },
    ]
}

struct Env {
    running: Option<Running>,
    proxy: std::net::SocketAddr,
    double: ZammadDouble,
    trunk: Ua,
    phone: Ua,
    rec: Recorder,
}

/// Run the demo; Ok when every demo call behaved as expected.
pub async fn run() -> anyhow::Result<()> {
    let mut env = start().await?;
    intro(&env);
    let mut failed = Vec::new();
    for (i, call) in calls().iter().enumerate() {
        let ok = env.place(i + 1, call).await;
        if !ok {
            failed.push(format!("{}. {}", i + 1, call.title));
        }
    }
    if let Some(r) = env.running.take() {
        r.stop().await.context("stopping the proxy")?;
    }
    println!();
    if failed.is_empty() {
        println!("All 5 calls behaved as expected.");
        println!("Next: write a sipcti.toml for your trunk and phones, `sipcti check-config -c sipcti.toml`, then `sipcti run -c sipcti.toml`.");
        Ok(())
    } else {
        bail!(
            "{} of 5 demo calls did not behave as expected: {}",
            failed.len(),
            failed.join("; ")
        )
    }
}

async fn start() -> anyhow::Result<Env> {
    let rec = Recorder::default();
    let trunk = Ua::bind("trunk", IpAddr::V4(TRUNK_IP), rec.clone()).await?;
    let phone = Ua::bind("phone", IpAddr::V4(PHONE_IP), rec.clone()).await?;
    let listener = tokio::net::TcpListener::bind((PROXY_IP, 0))
        .await
        .context("cannot bind the Zammad double on 127.0.0.1")?;
    let rules = Rules {
        block: vec![BLOCKED_NORMALISED.to_string()],
        caller_id: vec![CallerIdRule {
            pattern: "4930*".into(),
            caller_id: CALLER_ID.into(),
        }],
        default_caller_id: Some("4930111000".into()),
    };
    let double = sipcti_zammad_double::spawn_double(
        listener,
        DoubleConfig {
            token: format!("demo{}", ua::token()),
            rules,
        },
    )
    .await
    .context("cannot start the Zammad double")?;
    let toml = format!(
        r#"
[sip]
listen = "{PROXY_IP}:0"
[trunk]
uri = "sip:{trunk}"
sources = ["{TRUNK_IP}/32"]
[inside]
networks = ["{PHONE_IP}/32"]
target = "sip:{phone}"
[numbers]
country_code = "49"
[zammad]
url = "{url}"
"#,
        trunk = trunk.addr,
        phone = phone.addr,
        url = double.url(),
    );
    let cfg = Config::from_toml(&toml, None).map_err(|e| anyhow!("demo configuration: {e}"))?;
    let running = runtime::start(cfg)
        .await
        .context("cannot start the proxy")?;
    Ok(Env {
        proxy: running.local,
        running: Some(running),
        double,
        trunk,
        phone,
        rec,
    })
}

fn intro(env: &Env) {
    println!("sipcti demo: the proxy, a SIP trunk, a phone and Zammad, all on loopback.");
    println!();
    println!(
        "  sipcti   {:<22} the proxy (UDP and TCP)",
        env.proxy.to_string()
    );
    println!(
        "  trunk    {:<22} the SIP provider (trunk.uri, trunk.sources)",
        env.trunk.addr.to_string()
    );
    println!(
        "  phone    {:<22} extension {EXTENSION} \"{ALICE}\" (inside.target, inside.networks)",
        env.phone.addr.to_string()
    );
    println!(
        "  Zammad   {:<22} CTI double: blocks {BLOCKED_NORMALISED}; caller id {CALLER_ID} for calls to 4930*",
        env.double.local_addr().to_string()
    );
    println!("  (set {RAW_ENV}=1 to see every SIP message in full)");
    println!();
}

impl Env {
    /// Place one call, print its timeline and verdict; true if as expected.
    async fn place(&mut self, n: usize, call: &Call) -> bool {
        let start_seq = self.double.log().last().map_or(0, |r| r.seq);
        self.trunk.reset();
        self.phone.reset();
        let t0 = Instant::now();
        let proxy = self.proxy;
        let uac = match call.kind {
            Kind::InboundAnswered | Kind::CalleeBusy => {
                build::sip_uri(Some(OUR_NUMBER), proxy.ip(), Some(proxy.port()))
                    .and_then(|ruri| Uac::new(&self.trunk, proxy, ruri, None, CUSTOMER, OUR_NUMBER))
            }
            Kind::InboundBlocked => {
                build::sip_uri(Some(OUR_NUMBER), proxy.ip(), Some(proxy.port()))
                    .and_then(|ruri| Uac::new(&self.trunk, proxy, ruri, None, BLOCKED, OUR_NUMBER))
            }
            Kind::OutboundRewrite | Kind::CallerCancels => {
                build::sip_uri(Some(DIALLED), proxy.ip(), Some(proxy.port())).and_then(|ruri| {
                    Uac::new(&self.phone, proxy, ruri, Some(ALICE), EXTENSION, DIALLED)
                })
            }
        };
        let mut uac = match uac {
            Ok(uac) => uac,
            Err(e) => {
                println!("\n── {n}. {}\n  ✗ {e:#}", call.title);
                return false;
            }
        };
        let call_id = uac.call_id.clone();
        let script = async {
            match call.kind {
                Kind::InboundAnswered => {
                    answered(&mut self.trunk, &mut self.phone, &mut uac, EXTENSION).await
                }
                Kind::OutboundRewrite => {
                    answered(&mut self.phone, &mut self.trunk, &mut uac, DIALLED).await
                }
                Kind::InboundBlocked => blocked(&mut self.trunk, &mut uac).await,
                Kind::CallerCancels => cancelled(&mut self.phone, &mut self.trunk, &mut uac).await,
                Kind::CalleeBusy => busy(&mut self.trunk, &mut self.phone, &mut uac).await,
            }
        };
        let mut problems = Vec::new();
        match tokio::time::timeout(CALL_LIMIT, script).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("{e:#}")),
            Err(_) => problems.push(format!(
                "the call did not finish within {} s",
                CALL_LIMIT.as_secs()
            )),
        }
        self.trunk.quiet();
        self.phone.quiet();
        let entries = self.rec.of_call(&call_id);
        problems.extend(check_sip(call.kind, &entries, &uac));
        let cti = wait_cti(&self.double, start_seq).await;
        problems.extend(check_cti(&call.cti, &cti));

        let mut out = String::new();
        let head = format!("── {n}. {} ", call.title);
        let fill = 64usize.saturating_sub(head.chars().count());
        let _ = writeln!(out, "\n{head}{}", "─".repeat(fill));
        let raw = std::env::var_os(RAW_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        for e in &entries {
            let _ = writeln!(out, "{}", timeline_line(e, t0));
            if raw {
                for l in String::from_utf8_lossy(e.msg.as_bytes()).lines() {
                    let _ = writeln!(out, "            | {l}");
                }
            }
        }
        for r in &cti {
            let _ = writeln!(out, "{}", cti_line(r));
        }
        if problems.is_empty() {
            let _ = writeln!(out, "  ✓ as expected");
        } else {
            for p in &problems {
                let _ = writeln!(out, "  ✗ {p}");
            }
        }
        print!("{out}");
        problems.is_empty()
    }
}

// ------------------------------------------------------------------ scripts

fn expect_status(m: &SipMessage, want: StatusCode, who: &str, what: &str) -> anyhow::Result<()> {
    let want = want.code();
    match m.status() {
        Some(s) if s == want => Ok(()),
        s => bail!(
            "{who} expected {want} to {what}, got {} {}",
            s.unwrap_or(0),
            m.reason().unwrap_or("")
        ),
    }
}

fn contact_of(ua: &Ua, user: &str) -> anyhow::Result<rsip::typed::Contact> {
    build::contact(user, ua.addr)
}

/// `caller` calls, `callee` rings and answers, the caller hangs up.
async fn answered(
    caller: &mut Ua,
    callee: &mut Ua,
    uac: &mut Uac,
    callee_user: &str,
) -> anyhow::Result<()> {
    let call_id = uac.call_id.clone();
    let caller_name = caller.name;
    let a = async {
        uac.invite(caller).await?;
        let r = uac.await_invite(caller, STEP, None).await?;
        expect_status(&r.last, StatusCode::OK, caller_name, "its INVITE")?;
        if !r.provisional.contains(&StatusCode::Ringing.code()) {
            bail!(
                "{caller_name} never saw 180 Ringing (provisional: {:?})",
                r.provisional
            );
        }
        uac.ack(caller, &r.last).await?;
        sleep(TALK).await;
        let b = uac.bye(caller, STEP).await?;
        expect_status(&b, StatusCode::OK, caller_name, "its BYE")
    };
    let b = async {
        let inv = callee
            .expect_request(&call_id, Method::Invite, STEP)
            .await?;
        let tag = ua::token();
        let contact = contact_of(callee, callee_user)?;
        callee
            .reply(&inv, StatusCode::Ringing, Some(&tag), Some(&contact), None)
            .await?;
        sleep(RING).await;
        let body = build::sdp(callee.addr.ip(), 40_002);
        callee
            .reply(
                &inv,
                StatusCode::OK,
                Some(&tag),
                Some(&contact),
                Some(&body),
            )
            .await?;
        callee.expect_request(&call_id, Method::Ack, STEP).await?;
        let bye = callee.expect_request(&call_id, Method::Bye, STEP).await?;
        callee.reply(&bye, StatusCode::OK, None, None, None).await
    };
    tokio::try_join!(a, b).map(|_| ())
}

/// The trunk calls from a blocked number: the proxy answers 486 itself.
async fn blocked(trunk: &mut Ua, uac: &mut Uac) -> anyhow::Result<()> {
    uac.invite(trunk).await?;
    let r = uac.await_invite(trunk, STEP, None).await?;
    expect_status(&r.last, StatusCode::BusyHere, "trunk", "its INVITE")?;
    uac.ack(trunk, &r.last).await?;
    // give a wrongly forwarded INVITE time to show up at the phone
    sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// The phone calls out, the trunk rings, the phone gives up (CANCEL).
async fn cancelled(phone: &mut Ua, trunk: &mut Ua, uac: &mut Uac) -> anyhow::Result<()> {
    let call_id = uac.call_id.clone();
    let a = async {
        uac.invite(phone).await?;
        let r = uac
            .await_invite(phone, STEP, Some(StatusCode::Ringing))
            .await?;
        expect_status(&r.last, StatusCode::Ringing, "phone", "its INVITE")?;
        sleep(RING).await;
        uac.cancel(phone).await?;
        let (cancel_status, last) = uac.await_cancelled(phone, STEP).await?;
        if cancel_status != StatusCode::OK.code() {
            bail!("phone expected 200 to its CANCEL, got {cancel_status}");
        }
        uac.ack(phone, &last).await?;
        expect_status(
            &last,
            StatusCode::RequestTerminated,
            "phone",
            "its cancelled INVITE",
        )
    };
    let b = async {
        let inv = trunk.expect_request(&call_id, Method::Invite, STEP).await?;
        let tag = ua::token();
        let contact = contact_of(trunk, DIALLED)?;
        trunk
            .reply(&inv, StatusCode::Ringing, Some(&tag), Some(&contact), None)
            .await?;
        let cancel = trunk.expect_request(&call_id, Method::Cancel, STEP).await?;
        trunk
            .reply(&cancel, StatusCode::OK, Some(&tag), None, None)
            .await?;
        trunk
            .reply(&inv, StatusCode::RequestTerminated, Some(&tag), None, None)
            .await?;
        trunk
            .expect_request(&call_id, Method::Ack, STEP)
            .await
            .map(|_| ())
    };
    tokio::try_join!(a, b).map(|_| ())
}

/// The trunk calls in, the phone is busy.
async fn busy(trunk: &mut Ua, phone: &mut Ua, uac: &mut Uac) -> anyhow::Result<()> {
    let call_id = uac.call_id.clone();
    let a = async {
        uac.invite(trunk).await?;
        let r = uac.await_invite(trunk, STEP, None).await?;
        uac.ack(trunk, &r.last).await?;
        expect_status(&r.last, StatusCode::BusyHere, "trunk", "its INVITE")
    };
    let b = async {
        let inv = phone.expect_request(&call_id, Method::Invite, STEP).await?;
        let tag = ua::token();
        phone
            .reply(&inv, StatusCode::BusyHere, Some(&tag), None, None)
            .await?;
        phone
            .expect_request(&call_id, Method::Ack, STEP)
            .await
            .map(|_| ())
    };
    tokio::try_join!(a, b).map(|_| ())
}

// ------------------------------------------------------------------- checks

fn user_of(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    na.parsed_uri().ok()?.user.map(str::to_string)
}

/// Checks on the messages the user agents saw (beyond the scripts' own).
fn check_sip(kind: Kind, entries: &[Entry], uac: &Uac) -> Vec<String> {
    let mut p = Vec::new();
    let seen = |ua: &'static str| entries.iter().filter(move |e| e.ua == ua && !e.sent);
    match kind {
        Kind::InboundBlocked => {
            if let Some(e) = seen("phone").next() {
                p.push(format!(
                    "the phone must not see the blocked call, but got {}",
                    label(&e.msg)
                ));
            }
        }
        Kind::OutboundRewrite | Kind::CallerCancels => {
            let want_cid = CALLER_ID;
            for e in seen("trunk").filter(|e| e.msg.is_request()) {
                let user = e.msg.header("From").and_then(user_of);
                if user.as_deref() != Some(want_cid) {
                    p.push(format!(
                        "the trunk got {} with From user {:?}, expected the caller id {want_cid}",
                        label(&e.msg),
                        user.unwrap_or_default()
                    ));
                }
            }
            for e in seen("phone").filter(|e| !e.msg.is_request()) {
                let from = e.msg.header("From").unwrap_or("");
                if from != uac.from {
                    p.push(format!(
                        "the phone got {} with From {from:?}, expected its own {:?} back",
                        label(&e.msg),
                        uac.from
                    ));
                }
            }
        }
        Kind::InboundAnswered | Kind::CalleeBusy => {}
    }
    p
}

/// The CTI requests logged since `start_seq`, once the hangup arrived (bounded).
async fn wait_cti(double: &ZammadDouble, start_seq: u64) -> Vec<LoggedRequest> {
    let deadline = Instant::now() + CTI_WAIT;
    loop {
        let log: Vec<LoggedRequest> = double
            .log()
            .into_iter()
            .filter(|r| r.seq > start_seq)
            .collect();
        let done = log.iter().any(|r| r.event.as_deref() == Some("hangup"));
        if done || Instant::now() >= deadline {
            return log;
        }
        sleep(Duration::from_millis(25)).await;
    }
}

fn check_cti(want: &CtiExpect, log: &[LoggedRequest]) -> Vec<String> {
    let mut p = Vec::new();
    let of = |ev: &str| {
        log.iter()
            .filter(|r| r.event.as_deref() == Some(ev))
            .collect::<Vec<_>>()
    };
    let (news, answers, hangups) = (of("newCall"), of("answer"), of("hangup"));
    for r in log {
        if r.status != 200 {
            p.push(format!(
                "Zammad answered {} {} with HTTP {}",
                r.event.as_deref().unwrap_or("?"),
                r.call_id.as_deref().unwrap_or("?"),
                r.status
            ));
        }
    }
    let [new] = news.as_slice() else {
        p.push(format!("expected one newCall, Zammad got {}", news.len()));
        return p;
    };
    let call_id = new.call_id.clone().unwrap_or_default();
    if log
        .iter()
        .any(|r| r.call_id.as_deref() != Some(call_id.as_str()))
    {
        p.push(format!(
            "events for more than one callId (expected only {call_id})"
        ));
    }
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    if field(&new.direction) != want.direction
        || field(&new.from) != want.from
        || field(&new.to) != want.to
    {
        p.push(format!(
            "newCall should be {} from={} to={}, was {} from={} to={}",
            want.direction,
            want.from,
            want.to,
            field(&new.direction),
            field(&new.from),
            field(&new.to)
        ));
    }
    let action = new
        .response
        .as_ref()
        .and_then(|v| v.get("action"))
        .and_then(|a| a.as_str());
    if action != want.action {
        p.push(format!(
            "Zammad's answer to newCall should be {}, was {}",
            want.action.unwrap_or("continue"),
            action.unwrap_or("continue")
        ));
    }
    match (want.answered, answers.as_slice()) {
        (true, [a]) => {
            if want.direction == "in" && a.answering_number.as_deref().unwrap_or("").is_empty() {
                p.push("answer without answeringNumber".into());
            }
        }
        (false, []) => {}
        (true, v) => p.push(format!("expected one answer, Zammad got {}", v.len())),
        (false, v) => p.push(format!("expected no answer, Zammad got {}", v.len())),
    }
    match hangups.as_slice() {
        [h] => {
            if h.cause.as_deref() != Some(want.cause) {
                p.push(format!(
                    "hangup cause should be {}, was {}",
                    want.cause,
                    h.cause.as_deref().unwrap_or("(none)")
                ));
            }
        }
        [] => p.push(format!(
            "no hangup reached Zammad within {} s",
            CTI_WAIT.as_secs()
        )),
        v => p.push(format!("expected one hangup, Zammad got {}", v.len())),
    }
    p
}

// ------------------------------------------------------------------- output

/// `INVITE`, `180 Ringing`, `200 OK (BYE)`.
fn label(m: &SipMessage) -> String {
    if let Some(method) = m.method() {
        return method.to_string();
    }
    let status = m.status().unwrap_or(0);
    let reason = m.reason().unwrap_or("");
    match m.cseq() {
        Some((_, "INVITE")) | None => format!("{status} {reason}"),
        Some((_, method)) => format!("{status} {reason} ({method})"),
    }
}

/// `"Alice" <sip:201@127.0.0.3>` (the From without its tag).
fn from_shown(m: &SipMessage) -> Option<String> {
    let na = m.from()?;
    Some(match na.display {
        Some(d) => format!("\"{d}\" <{}>", na.uri),
        None => format!("<{}>", na.uri),
    })
}

fn timeline_line(e: &Entry, t0: Instant) -> String {
    let secs = e.at.saturating_duration_since(t0).as_secs_f64();
    let (left, right) = if e.sent {
        (e.ua, "sipcti")
    } else {
        ("sipcti", e.ua)
    };
    let l = label(&e.msg);
    let pad = 24usize.saturating_sub(l.chars().count());
    let arrow = format!("──{l}{}▶", "─".repeat(pad));
    let show_from = match (e.msg.method(), e.msg.cseq()) {
        (Some("INVITE" | "BYE"), _) => true,
        (None, Some((_, "INVITE"))) => e.msg.status().is_some_and(|s| s >= 200),
        _ => false,
    };
    let detail = if show_from {
        from_shown(&e.msg)
            .map(|f| format!("From: {f}"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    format!("  +{secs:.3}  {left:<6} {arrow} {right:<6}  {detail}")
        .trim_end()
        .to_string()
}

fn cti_line(r: &LoggedRequest) -> String {
    let ev = r.event.as_deref().unwrap_or("?");
    let dir = r.direction.as_deref().unwrap_or("?");
    let mut s = format!("  CTI     {ev:<8} {dir:<4}");
    match ev {
        "newCall" => {
            let _ = write!(
                s,
                " from={} to={} callId={}",
                r.from.as_deref().unwrap_or(""),
                r.to.as_deref().unwrap_or(""),
                r.call_id.as_deref().unwrap_or("")
            );
            let resp = r.response.as_ref();
            match resp.and_then(|v| v.get("action")).and_then(|a| a.as_str()) {
                Some("reject") => s.push_str("  ⇒ Zammad: reject (busy)"),
                Some("dial") => {
                    let cid = resp
                        .and_then(|v| v.get("caller_id"))
                        .and_then(|a| a.as_str())
                        .unwrap_or("");
                    let _ = write!(s, "  ⇒ Zammad: dial with caller id {cid}");
                }
                Some(other) => {
                    let _ = write!(s, "  ⇒ Zammad: {other}");
                }
                None => {}
            }
        }
        "answer" => {
            if let Some(n) = &r.answering_number {
                let _ = write!(s, " answeringNumber={n}");
            }
        }
        _ => {
            let _ = write!(s, " cause={}", r.cause.as_deref().unwrap_or("(none)"));
            if let Some(n) = &r.answering_number {
                let _ = write!(s, " answeringNumber={n}");
            }
        }
    }
    if r.status != 200 {
        let _ = write!(s, "  [HTTP {}]", r.status);
    }
    s.trim_end().to_string()
}
