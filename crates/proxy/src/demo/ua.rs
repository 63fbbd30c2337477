//! The demo's small SIP user agent (UDP only): enough of RFC 3261 for a
//! UAC (INVITE with Timer A, ACK for 2xx through the route set, ACK for
//! non-2xx on the INVITE's branch, CANCEL, BYE) and a UAS (provisional and
//! final answers with To tag, Contact and Record-Route, 2xx/non-2xx
//! retransmission until the ACK, absorbing request retransmissions).
//! Every message sent or received is recorded for the timeline.
//!
//! What the UAs write is built with `rsip` from the pieces in
//! [`super::build`] (which says how rsip and our wire layer share the
//! work); what they receive is read with our wire layer ([`SipMessage`])
//! only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rsip::headers::UntypedHeader as _;
use rsip::param::Tag;
use rsip::{typed, Header, Method, Param, StatusCode};
use sipcti_wire::{Limits, NameAddr, SipMessage, Uri};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::build::{body_headers, build_response, contact, own_via, rsip_uri, sdp, sip_uri};

/// RFC 3261 T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// One message as a user agent saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When it was sent or received.
    pub at: Instant,
    /// The user agent (`trunk` or `phone`).
    pub ua: &'static str,
    /// Sent by the UA (else received).
    pub sent: bool,
    /// The message.
    pub msg: SipMessage,
}

/// The shared record of every message of every UA.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Entry>>>);

impl Recorder {
    fn push(&self, e: Entry) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// Entries of one SIP Call-ID, in time order.
    pub fn of_call(&self, call_id: &str) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.msg.call_id() == Some(call_id))
            .cloned()
            .collect();
        v.sort_by_key(|e| e.at);
        v
    }
}

/// A unique token for tags, branches and Call-IDs.
pub fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}{n}", std::process::id(), nanos)
}

#[derive(Debug)]
enum RetxKind {
    /// A client transaction: stops on a response with this branch and CSeq
    /// method (INVITE: any response; others: a final one).
    Client { branch: String, method: Method },
    /// A final answer to an INVITE: stops on the ACK.
    AwaitAck { cseq: u32 },
}

#[derive(Debug)]
struct Retx {
    kind: RetxKind,
    bytes: Vec<u8>,
    dest: SocketAddr,
    next: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

/// One user agent on its own UDP socket.
pub struct Ua {
    /// `trunk` or `phone`.
    pub name: &'static str,
    /// The bound address.
    pub addr: SocketAddr,
    sock: Arc<UdpSocket>,
    rx: mpsc::UnboundedReceiver<(SipMessage, SocketAddr)>,
    rec: Recorder,
    retx: Vec<Retx>,
    /// Last response per server transaction (branch, method): resent on a retransmission.
    answered: HashMap<(String, String), (Vec<u8>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ua {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Ua {
    /// Bind a UDP socket on `ip`, port 0, and start recording what arrives.
    /// `ip` must be IPv4: the UA writes its own address with rsip, which
    /// writes an IPv6 host without its brackets.
    pub async fn bind(name: &'static str, ip: IpAddr, rec: Recorder) -> anyhow::Result<Ua> {
        if !ip.is_ipv4() {
            bail!("{name}: the demo UA writes its messages with rsip, which cannot write the IPv6 host {ip}");
        }
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| {
                format!(
                    "{name}: cannot bind {ip} (the demo needs 127.0.0.1-3 on loopback; \
                 on macOS: sudo ifconfig lo0 alias {ip})"
                )
            })?;
        let addr = sock.local_addr()?;
        let sock = Arc::new(sock);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = {
            let sock = sock.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, src) = match sock.recv_from(&mut buf).await {
                        Ok(x) => x,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    let Ok(msg) = SipMessage::parse(data, &Limits::default()) else {
                        continue;
                    };
                    rec.push(Entry {
                        at: Instant::now(),
                        ua: name,
                        sent: false,
                        msg: msg.clone(),
                    });
                    if tx.send((msg, src)).is_err() {
                        return;
                    }
                }
            })
        };
        Ok(Ua {
            name,
            addr,
            sock,
            rx,
            rec,
            retx: Vec::new(),
            answered: HashMap::new(),
            task,
        })
    }

    /// Forget transactions of earlier calls and drop queued messages.
    pub fn reset(&mut self) {
        self.retx.clear();
        self.answered.clear();
        while self.rx.try_recv().is_ok() {}
    }

    /// Stop every retransmission (the call is over).
    pub fn quiet(&mut self) {
        self.retx.clear();
    }

    async fn send_raw(&self, dest: SocketAddr, bytes: &[u8]) -> anyhow::Result<()> {
        let msg = SipMessage::parse(bytes.to_vec(), &Limits::default()).map_err(|e| {
            anyhow!(
                "{}: built an unparseable message: {}",
                self.name,
                e.reason()
            )
        })?;
        self.rec.push(Entry {
            at: Instant::now(),
            ua: self.name,
            sent: true,
            msg,
        });
        self.sock
            .send_to(bytes, dest)
            .await
            .with_context(|| format!("{}: cannot send to {dest}", self.name))?;
        Ok(())
    }

    /// Send a request to the next hop it names (first Route, else the
    /// Request-URI), retransmitting it as a client transaction when `retransmit`.
    pub async fn send_request(
        &mut self,
        req: rsip::Request,
        retransmit: bool,
    ) -> anyhow::Result<()> {
        let method = req.method;
        let bytes = Vec::<u8>::from(req);
        let msg = SipMessage::parse(bytes.clone(), &Limits::default()).map_err(|e| {
            anyhow!(
                "{}: built an unparseable request: {}",
                self.name,
                e.reason()
            )
        })?;
        let dest = request_dest(&msg)?;
        self.send_raw(dest, &bytes).await?;
        if retransmit {
            let branch = msg
                .top_via()
                .and_then(|v| v.branch())
                .unwrap_or("")
                .to_string();
            let cap = if method == Method::Invite {
                None
            } else {
                Some(T2)
            };
            self.retx.push(Retx {
                kind: RetxKind::Client { branch, method },
                bytes,
                dest,
                next: Instant::now() + T1,
                interval: T1,
                cap,
            });
        }
        Ok(())
    }

    /// Answer `req` (RFC 3261 8.2.6): Vias, From, To (with `to_tag` added),
    /// Call-ID, CSeq; Record-Route copied on 101-299 to INVITE; `contact`
    /// and an SDP `body` if given. A final answer to INVITE is retransmitted
    /// until the ACK. Sent to the top Via (received / rport honoured).
    pub async fn reply(
        &mut self,
        req: &SipMessage,
        status: StatusCode,
        to_tag: Option<&str>,
        contact: Option<&typed::Contact>,
        body: Option<&str>,
    ) -> anyhow::Result<()> {
        let status = status.code();
        let bytes = build_response(req, status, to_tag, contact, body);
        let dest = response_dest(req)?;
        self.send_raw(dest, &bytes).await?;
        let method = req.method().unwrap_or("").to_string();
        let branch = req
            .top_via()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_string();
        if method == "INVITE" && status >= 200 {
            let cseq = req.cseq().map(|c| c.0).unwrap_or(0);
            self.retx
                .retain(|r| !matches!(r.kind, RetxKind::AwaitAck { cseq: c } if c == cseq));
            self.retx.push(Retx {
                kind: RetxKind::AwaitAck { cseq },
                bytes: bytes.clone(),
                dest,
                next: Instant::now() + T1,
                interval: T1,
                cap: Some(T2),
            });
        }
        self.answered.insert((branch, method), (bytes, dest));
        Ok(())
    }

    /// The next message of `call_id` that the script should see, or `None`
    /// at `deadline`. Meanwhile: retransmissions are sent when due, request
    /// retransmissions are answered with the last response, responses and
    /// ACKs end the matching retransmissions.
    pub async fn next(&mut self, call_id: &str, deadline: Instant) -> Option<SipMessage> {
        loop {
            let wake = self
                .retx
                .iter()
                .map(|r| r.next)
                .min()
                .map_or(deadline, |n| n.min(deadline));
            tokio::select! {
                m = self.rx.recv() => {
                    let (msg, _src) = m?;
                    if msg.call_id() != Some(call_id) {
                        continue;
                    }
                    if self.absorb(&msg).await {
                        continue;
                    }
                    return Some(msg);
                }
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    self.retransmit_due().await;
                }
            }
        }
    }

    /// Wait for a request `method` of `call_id`; other messages are skipped.
    pub async fn expect_request(
        &mut self,
        call_id: &str,
        method: Method,
        within: Duration,
    ) -> anyhow::Result<SipMessage> {
        let deadline = Instant::now() + within;
        // the received method stays text (our wire layer); rsip writes the expected one
        let method = method.to_string();
        loop {
            match self.next(call_id, deadline).await {
                Some(m) if m.method() == Some(method.as_str()) => return Ok(m),
                Some(_) => continue,
                None => bail!(
                    "{}: no {method} arrived within {} s",
                    self.name,
                    within.as_secs_f32()
                ),
            }
        }
    }

    async fn absorb(&mut self, msg: &SipMessage) -> bool {
        if let Some(status) = msg.status() {
            let branch = msg.top_via().and_then(|v| v.branch()).unwrap_or("");
            let method = msg.cseq().map(|c| c.1).unwrap_or("");
            self.retx.retain(|r| match &r.kind {
                RetxKind::Client {
                    branch: b,
                    method: m,
                } => {
                    !(*b == branch
                        && m.to_string() == method
                        && (*m == Method::Invite || status >= 200))
                }
                RetxKind::AwaitAck { .. } => true,
            });
            return false;
        }
        let method = msg.method().unwrap_or("");
        if method == "ACK" {
            let cseq = msg.cseq().map(|c| c.0).unwrap_or(0);
            self.retx
                .retain(|r| !matches!(r.kind, RetxKind::AwaitAck { cseq: c } if c == cseq));
            return false;
        }
        let branch = msg
            .top_via()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_string();
        if let Some((bytes, dest)) = self.answered.get(&(branch, method.to_string())).cloned() {
            let _ = self.send_raw(dest, &bytes).await;
            return true;
        }
        false
    }

    async fn retransmit_due(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for r in &mut self.retx {
            if r.next <= now {
                due.push((r.dest, r.bytes.clone()));
                r.interval = match r.cap {
                    Some(c) => (r.interval * 2).min(c),
                    None => r.interval * 2,
                };
                r.next = now + r.interval;
            }
        }
        for (dest, bytes) in due {
            let _ = self.send_raw(dest, &bytes).await;
        }
    }
}

fn hostport_addr(host: &str, port: Option<u16>) -> anyhow::Result<SocketAddr> {
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| anyhow!("the demo UA only sends to IP addresses, not {host}"))?;
    Ok(SocketAddr::new(ip, port.unwrap_or(5060)))
}

/// RFC 3261 8.1.2 / 16.12: the first Route's URI, else the Request-URI.
fn request_dest(msg: &SipMessage) -> anyhow::Result<SocketAddr> {
    let routes = msg.header_values("Route");
    let uri = match routes.first() {
        Some(r) => {
            NameAddr::parse(r)
                .map_err(|_| anyhow!("bad Route {r}"))?
                .uri
        }
        None => msg.request_uri().unwrap_or(""),
    };
    let u = Uri::parse(uri).map_err(|_| anyhow!("bad next-hop URI {uri}"))?;
    hostport_addr(u.host, u.port)
}

/// RFC 3261 18.2.2 / RFC 3581: received and rport of the top Via, else its sent-by.
fn response_dest(req: &SipMessage) -> anyhow::Result<SocketAddr> {
    let v = req
        .top_via()
        .ok_or_else(|| anyhow!("request without Via"))?;
    let host = v.received().unwrap_or(v.host);
    let port = match v.rport() {
        Some(Some(p)) => p.parse().ok(),
        _ => None,
    }
    .or(v.port);
    hostport_addr(host, port)
}

/// The UAC side of one call.
pub struct Uac {
    /// SIP Call-ID.
    pub call_id: String,
    /// The From header value as sent (with our tag).
    pub from: String,
    to: typed::To,
    ruri: rsip::Uri,
    cseq: u32,
    invite_via: typed::Via,
    contact: typed::Contact,
    proxy: SocketAddr,
    /// The To of the 2xx, as our wire layer read it.
    remote_to: Option<String>,
    /// The remote target (the 2xx's Contact URI), as our wire layer read it.
    target: Option<String>,
    /// The route set (the 2xx's Record-Route values reversed), as read.
    routes: Vec<String>,
    offer: String,
}

/// What the UAC got for its INVITE.
pub struct InviteResult {
    /// Statuses of the provisional responses, in order.
    pub provisional: Vec<u16>,
    /// The final response.
    pub last: SipMessage,
}

impl Uac {
    /// A new call from `ua` (`"Display" <sip:from_user@ua>`) to `ruri`,
    /// sent to the outbound proxy `proxy` (IPv4, like every address the
    /// demo UA writes).
    pub fn new(
        ua: &Ua,
        proxy: SocketAddr,
        ruri: rsip::Uri,
        display: Option<&str>,
        from_user: &str,
        to_user: &str,
    ) -> anyhow::Result<Uac> {
        let host = ua.addr.ip();
        let from = typed::From {
            // rsip writes the display name as given: quoting is ours
            display_name: display.map(|d| format!("\"{d}\"")),
            uri: sip_uri(Some(from_user), host, None)?,
            params: vec![Param::Tag(Tag::new(token()))],
        };
        Ok(Uac {
            call_id: format!("{}@{host}", token()),
            from: from.to_string(),
            to: typed::To {
                display_name: None,
                uri: sip_uri(Some(to_user), proxy.ip(), None)?,
                params: Vec::new(),
            },
            ruri,
            cseq: 1,
            invite_via: own_via(ua.addr)?,
            contact: contact(from_user, ua.addr)?,
            proxy,
            remote_to: None,
            target: None,
            routes: Vec::new(),
            offer: sdp(host, 40_000),
        })
    }

    /// A request of this call. `to` and `routes` may have been read from a
    /// response: they go out as rsip untyped headers holding the raw values.
    fn request(
        &self,
        method: Method,
        ruri: rsip::Uri,
        via: typed::Via,
        routes: &[String],
        to: rsip::headers::To,
        cseq: u32,
    ) -> rsip::Request {
        let mut headers: Vec<Header> =
            vec![via.into(), rsip::headers::MaxForwards::from(70).into()];
        for r in routes {
            headers.push(rsip::headers::Route::new(r.as_str()).into());
        }
        headers.push(rsip::headers::From::new(self.from.as_str()).into());
        headers.push(to.into());
        headers.push(rsip::headers::CallId::new(self.call_id.as_str()).into());
        headers.push(typed::CSeq { seq: cseq, method }.into());
        if method == Method::Invite {
            headers.push(self.contact.clone().into());
            headers.push(
                typed::Allow(vec![
                    Method::Invite,
                    Method::Ack,
                    Method::Cancel,
                    Method::Bye,
                ])
                .into(),
            );
        }
        headers.push(rsip::headers::UserAgent::new("sipcti-demo").into());
        // only the INVITE carries the offer
        let body = body_headers(
            &mut headers,
            (method == Method::Invite).then_some(self.offer.as_str()),
        );
        rsip::Request {
            method,
            uri: ruri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        }
    }

    /// Send the INVITE to the proxy (retransmitted per Timer A until a response).
    pub async fn invite(&self, ua: &mut Ua) -> anyhow::Result<()> {
        // the Request-URI names the proxy itself (it is the outbound proxy)
        let req = self.request(
            Method::Invite,
            self.ruri.clone(),
            self.invite_via.clone(),
            &[],
            self.to.clone().into(),
            self.cseq,
        );
        ua.send_request(req, true).await
    }

    /// Wait for the INVITE's final response, or for the provisional
    /// response `stop_at` (returned as `last`).
    pub async fn await_invite(
        &mut self,
        ua: &mut Ua,
        within: Duration,
        stop_at: Option<StatusCode>,
    ) -> anyhow::Result<InviteResult> {
        let deadline = Instant::now() + within;
        let mut provisional = Vec::new();
        loop {
            let Some(m) = ua.next(&self.call_id, deadline).await else {
                bail!(
                    "{}: no final response to INVITE within {} s (provisional: {provisional:?})",
                    ua.name,
                    within.as_secs_f32()
                );
            };
            let Some(status) = m.status() else { continue };
            if m.cseq().map(|c| c.1) != Some("INVITE") {
                continue;
            }
            if status < 200 {
                provisional.push(status);
                if stop_at.as_ref().map(StatusCode::code) == Some(status) {
                    return Ok(InviteResult {
                        provisional,
                        last: m,
                    });
                }
                continue;
            }
            if status < 300 {
                self.remote_to = m.header("To").map(str::to_string);
                self.target = m
                    .header("Contact")
                    .and_then(|c| NameAddr::parse(c).ok().map(|n| n.uri.to_string()));
                let mut rr: Vec<String> = m
                    .header_values("Record-Route")
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                rr.reverse();
                self.routes = rr;
            }
            return Ok(InviteResult {
                provisional,
                last: m,
            });
        }
    }

    /// ACK the final response: for 2xx a new transaction through the route
    /// set to the remote target; else on the INVITE's branch (RFC 3261 17.1.1.3).
    pub async fn ack(&self, ua: &mut Ua, resp: &SipMessage) -> anyhow::Result<()> {
        let status = resp.status().unwrap_or(0);
        // the To as our wire layer read it (with the remote tag)
        let to = match resp.header("To") {
            Some(t) => rsip::headers::To::new(t),
            None => self.to.clone().into(),
        };
        if (200..300).contains(&status) {
            let target = self
                .target
                .as_deref()
                .ok_or_else(|| anyhow!("{}: 2xx without Contact", ua.name))?;
            let req = self.request(
                Method::Ack,
                rsip_uri(target)?,
                own_via(ua.addr)?,
                &self.routes,
                to,
                self.cseq,
            );
            ua.send_request(req, false).await
        } else {
            // same branch as the INVITE, to where the INVITE went (the proxy)
            let req = self.request(
                Method::Ack,
                self.ruri.clone(),
                self.invite_via.clone(),
                &[],
                to,
                self.cseq,
            );
            ua.send_raw(self.proxy, &Vec::<u8>::from(req)).await
        }
    }

    /// CANCEL the INVITE (RFC 3261 9.1) and return; its 200 and the 487 are
    /// collected by [`Uac::await_cancelled`].
    pub async fn cancel(&self, ua: &mut Ua) -> anyhow::Result<()> {
        let req = self.request(
            Method::Cancel,
            self.ruri.clone(),
            self.invite_via.clone(),
            &[],
            self.to.clone().into(),
            self.cseq,
        );
        let bytes = Vec::<u8>::from(req);
        // the CANCEL goes where the INVITE went: the proxy
        ua.send_raw(self.proxy, &bytes).await?;
        let branch = self
            .invite_via
            .branch()
            .map(|b| b.to_string())
            .unwrap_or_default();
        ua.retx.push(Retx {
            kind: RetxKind::Client {
                branch,
                method: Method::Cancel,
            },
            bytes,
            dest: self.proxy,
            next: Instant::now() + T1,
            interval: T1,
            cap: Some(T2),
        });
        Ok(())
    }

    /// After CANCEL: wait for its 200 and the INVITE's final response (any order).
    pub async fn await_cancelled(
        &mut self,
        ua: &mut Ua,
        within: Duration,
    ) -> anyhow::Result<(u16, SipMessage)> {
        let deadline = Instant::now() + within;
        let mut cancel_status = None;
        let mut invite_final = None;
        while cancel_status.is_none() || invite_final.is_none() {
            let Some(m) = ua.next(&self.call_id, deadline).await else {
                bail!(
                    "{}: after CANCEL: CANCEL answered {:?}, INVITE final {:?} within {} s",
                    ua.name,
                    cancel_status,
                    invite_final.as_ref().and_then(|m: &SipMessage| m.status()),
                    within.as_secs_f32()
                );
            };
            let (Some(status), Some((_, method))) = (m.status(), m.cseq()) else {
                continue;
            };
            if status < 200 {
                continue;
            }
            match method {
                "CANCEL" => cancel_status = Some(status),
                "INVITE" => invite_final = Some(m.clone()),
                _ => {}
            }
        }
        Ok((
            cancel_status.unwrap_or(0),
            invite_final.ok_or_else(|| anyhow!("unreachable"))?,
        ))
    }

    /// Hang up: BYE through the route set, wait for its final response.
    pub async fn bye(&mut self, ua: &mut Ua, within: Duration) -> anyhow::Result<SipMessage> {
        let target = self
            .target
            .clone()
            .ok_or_else(|| anyhow!("{}: no dialog to hang up", ua.name))?;
        let to = match &self.remote_to {
            Some(t) => rsip::headers::To::new(t.as_str()),
            None => self.to.clone().into(),
        };
        self.cseq += 1;
        let req = self.request(
            Method::Bye,
            rsip_uri(&target)?,
            own_via(ua.addr)?,
            &self.routes,
            to,
            self.cseq,
        );
        ua.send_request(req, true).await?;
        let deadline = Instant::now() + within;
        loop {
            let Some(m) = ua.next(&self.call_id, deadline).await else {
                bail!(
                    "{}: BYE not answered within {} s",
                    ua.name,
                    within.as_secs_f32()
                );
            };
            if m.cseq().map(|c| c.1) == Some("BYE") && m.status().is_some_and(|s| s >= 200) {
                return Ok(m);
            }
        }
    }
}
