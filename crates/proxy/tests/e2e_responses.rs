//! End-to-end, issue "hostile network", part 1: responses are never relayed
//! for strangers. Real `sipcti` binary, real SIPp peers, the Zammad double.
//! Each case keeps a UDP socket and a TCP listener on the lab's `.9`
//! address, named in the forged messages' Vias as the victim, and requires
//! that they receive nothing: no datagram, no connection.

mod lab;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use lab::{require_sipp, summary, Host, Lab, Opts, Tp};

const T: Duration = Duration::from_secs(10);

/// The victim at `.9`: a UDP socket and a TCP listener on port 5060.
struct Victim {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Victim {
    fn bind(lab: &Lab) -> Victim {
        let a = format!("{}:5060", lab.ip(9));
        let udp = UdpSocket::bind(&a).expect("bind victim udp");
        udp.set_nonblocking(true).expect("nonblocking");
        let tcp = TcpListener::bind(&a).expect("bind victim tcp");
        tcp.set_nonblocking(true).expect("nonblocking");
        Victim { udp, tcp }
    }

    /// What reached the victim (a description per datagram/connection).
    fn received(&self) -> Vec<String> {
        let mut got = vec![];
        let mut buf = vec![0u8; 70_000];
        while let Ok((n, from)) = self.udp.recv_from(&mut buf) {
            got.push(format!("udp datagram of {n} bytes from {from}"));
        }
        while let Ok((mut c, from)) = self.tcp.accept() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
            let n = c.read(&mut buf).unwrap_or(0);
            got.push(format!("tcp connection from {from} ({n} bytes)"));
        }
        got
    }
}

/// A "200 OK" to INVITE whose top Via names sipcti and whose next Via
/// names the victim: the forgery of the issue.
fn forged_2xx(lab: &Lab, branch: &str, call_id: &str, from_tag: &str, tp: &str) -> String {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/{tp} {p}:5060;branch={branch}\r\n\
         Via: SIP/2.0/{tp} {v}:5060;branch=z9hG4bKvictim\r\n\
         From: \"Alice\" <sip:201@{ph}:5060>;tag={from_tag}\r\n\
         To: <sip:0301234567@{p}:5060>;tag=forged\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:x@{v}:5060>\r\n\
         Content-Length: 0\r\n\r\n",
        p = lab.proxy_ip(),
        v = lab.ip(9),
        ph = lab.host_ip(Host::Phone),
    )
}

fn send_udp(lab: &Lab, from_ip: &str, data: &[u8]) {
    let s = UdpSocket::bind(format!("{from_ip}:0")).expect("bind sender");
    s.send_to(data, format!("{}:5060", lab.proxy_ip()))
        .expect("send");
}

/// Send over a fresh TCP connection from `from_ip` (the proxy may close a
/// stranger's connection at once: then nothing is sent).
fn send_tcp(lab: &Lab, from_ip: &str, data: &[u8]) {
    if let Some(mut c) = connect_from(from_ip, &format!("{}:5060", lab.proxy_ip())) {
        let _ = c.write_all(data);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connect from a chosen source address (std has no bind-before-connect;
/// tokio's `TcpSocket` has).
fn connect_from(from_ip: &str, to: &str) -> Option<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().ok()?;
        s.bind(format!("{from_ip}:0").parse().ok()?).ok()?;
        let c = s.connect(to.parse().ok()?).await.ok()?;
        c.into_std().ok()
    })
    .inspect(|c| {
        let _ = c.set_nonblocking(false);
    })
}

fn no_victim_traffic(lab: &Lab, v: &Victim) {
    std::thread::sleep(Duration::from_millis(500));
    let got = v.received();
    check!(lab, got.is_empty(), "the victim at .9 received: {got:?}");
}

/// A normal outbound call after the attack: exact SIP and CTI events.
fn normal_call_still_works(lab: &Lab, events_before: usize) {
    lab::answered_call_out(lab);
    let evs = lab.accepted_events(events_before + 3, T);
    let got: Vec<String> = evs[events_before..].iter().map(summary).collect();
    check!(
        lab,
        got == [
            "newCall out from=201 to=49301234567 user=Alice",
            "answer out from=201 to=49301234567",
            "hangup out from=201 to=49301234567 cause=normalClearing",
        ],
        "events {got:#?}"
    );
}

fn forged_2xx_case(tp: Tp, name: &str) {
    require_sipp();
    let lab = Lab::start(
        name,
        Opts {
            tp,
            ..Opts::default()
        },
    );
    let v = Victim::bind(&lab);
    let tps = match tp {
        Tp::Udp => "UDP",
        Tp::Tcp => "TCP",
    };
    for from in [lab.host_ip(Host::Stranger), lab.host_ip(Host::Trunk)] {
        for i in 0..20 {
            let m = forged_2xx(&lab, &format!("z9hG4bKany{i}"), "forged-1", "t1", tps);
            match tp {
                Tp::Udp => send_udp(&lab, &from, m.as_bytes()),
                Tp::Tcp => send_tcp(&lab, &from, m.as_bytes()),
            }
        }
    }
    no_victim_traffic(&lab, &v);
    check!(
        lab,
        lab.accepted_events(1, Duration::from_millis(300))
            .is_empty(),
        "a forged 2xx produced a CTI event"
    );
    normal_call_still_works(&lab, 0);
    no_victim_traffic(&lab, &v);
}

#[test]
fn e2e_forged_2xx_is_not_relayed_udp() {
    forged_2xx_case(Tp::Udp, "forged2xx-udp");
}

#[test]
fn e2e_forged_2xx_is_not_relayed_tcp() {
    forged_2xx_case(Tp::Tcp, "forged2xx-tcp");
}

/// One datagram with 1,000 Vias naming sipcti, from a stranger and from
/// the trunk's address: nothing bounces, nothing reaches the victim, and
/// the proxy goes on serving calls.
#[test]
fn e2e_thousand_via_datagram_is_dropped() {
    require_sipp();
    let lab = Lab::start("via1000", Opts::default());
    let v = Victim::bind(&lab);
    // one Via header line with 1,000 comma-separated values (one header
    // line, so within the header-count limit), then the victim
    let vias: Vec<String> = (0..1000)
        .map(|i| format!("SIP/2.0/UDP {}:5060;branch=z9hG4bK{i}", lab.proxy_ip()))
        .collect();
    let mut m = format!("SIP/2.0 200 OK\r\nVia: {}\r\n", vias.join(","));
    m.push_str(&format!(
        "Via: SIP/2.0/UDP {}:5060;branch=z9hG4bKv\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: loop\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        lab.ip(9)
    ));
    assert!(m.len() < 65_000, "fits one datagram: {}", m.len());
    for from in [lab.host_ip(Host::Stranger), lab.host_ip(Host::Trunk)] {
        send_udp(&lab, &from, m.as_bytes());
    }
    normal_call_still_works(&lab, 0);
    // a bouncing datagram loses one Via per pass through sipcti; in a debug
    // build a pass takes about 10 ms, so it would reach the victim well
    // within this wait
    std::thread::sleep(Duration::from_secs(15));
    no_victim_traffic(&lab, &v);
}

/// The forged `answer`: while an outbound call rings, a stranger (and
/// forgers on the trunk's and the phone's addresses, with guessed
/// branches) sends "200 OK"
/// with the call's Call-ID and From tag. Zammad must see exactly
/// newCall + hangup(cancel): no answer. The caller's SIPp sees exactly its
/// normal cancel flow.
#[test]
fn e2e_forged_answer_reaches_neither_zammad_nor_the_caller() {
    require_sipp();
    let lab = Lab::start("forged-answer", Opts::default());
    let v = Victim::bind(&lab);
    let uas = lab.sipp(Host::Trunk, "uas_ring_cancel", None, &[]);
    let uac = lab.sipp(Host::Phone, "uac_cancel_late", Some("0301234567"), &[]);
    let pid = uac.pid();
    let call_id = format!("1-{pid}@{}", lab.host_ip(Host::Phone));
    let from_tag = format!("{pid}SIPpTag001");
    // while it rings (the caller cancels 1.5 s after the 180)
    std::thread::sleep(Duration::from_millis(700));
    for (i, from) in [
        lab.host_ip(Host::Stranger),
        lab.host_ip(Host::Trunk),
        lab.host_ip(Host::Phone),
    ]
    .iter()
    .enumerate()
    {
        let m = forged_2xx(&lab, &format!("z9hG4bKsc{i}"), &call_id, &from_tag, "UDP");
        send_udp(&lab, from, m.as_bytes());
    }
    let uac = uac.wait();
    let uas = uas.wait();
    let invite = uac.find(">INVITE");
    let seen_cid = invite
        .first()
        .and_then(|m| m.header("Call-ID"))
        .unwrap_or_default();
    check!(
        lab,
        seen_cid == call_id,
        "SIPp's Call-ID {seen_cid} is not the one forged ({call_id}): the test must be fixed"
    );
    check!(
        lab,
        uac.ok && uac.shorts() == [">INVITE", "<100", "<180", ">CANCEL", "<200", "<487", ">ACK"],
        "caller saw {:?}\n{}",
        uac.shorts(),
        uac.errors
    );
    check!(
        lab,
        uas.ok && uas.shorts() == ["<INVITE", ">180", "<CANCEL", ">200", ">487", "<ACK"],
        "trunk saw {:?}",
        uas.shorts()
    );
    let evs = lab.accepted_events(2, T);
    std::thread::sleep(Duration::from_millis(300));
    let all: Vec<String> = lab.accepted_events(2, T).iter().map(summary).collect();
    check!(
        lab,
        all == [
            "newCall out from=201 to=49301234567 user=Alice",
            "hangup out from=201 to=49301234567 cause=cancel",
        ],
        "events {all:#?}"
    );
    check!(lab, evs.len() == 2, "{evs:?}");
    check!(
        lab,
        evs.iter()
            .all(|e| e.call_id.as_deref() == Some(call_id.as_str())),
        "callId is the SIP Call-ID"
    );
    no_victim_traffic(&lab, &v);
}
