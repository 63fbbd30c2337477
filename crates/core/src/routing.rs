//! Routing (RFC 3261 16.4-16.6, 18.2): which side a source is on, whether
//! a URI names this proxy, the next hop of an initial request (the
//! configured trunk or inside target) and of a request inside a dialog
//! (16.4 loose routing: our Route values popped, the next Route or the
//! Request-URI), the Record-Route (RFC 5658 double form) and Via values we
//! insert, and where responses go (18.2.2, RFC 3581).
//!
//! All of it is a function of the [`CoreConfig`] and the message: routing
//! keeps no state.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use sipcti_dialog::Side;
use sipcti_wire::{SipMessage, TransportKind, Uri};

use crate::config::CoreConfig;
use crate::fork::ForkTarget;
use crate::identity::Toward;
use crate::ids::Method;

/// Where a message goes: an address, or a host name the edge must resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A socket address.
    Addr(SocketAddr),
    /// A DNS name and port (resolved by the edge, A/AAAA).
    Name(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A configured next hop.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Where to send.
    pub target: Target,
    /// Transport.
    pub transport: TransportKind,
    /// `host[:port]` written into a Request-URI that named the proxy itself.
    pub hostport: String,
}

/// Where and how one request is forwarded (RFC 3261 16.5, 16.6 steps 2-7).
#[derive(Debug, Clone)]
pub(crate) struct NextHop {
    /// Where to send it.
    pub(crate) target: Target,
    /// Over which transport.
    pub(crate) transport: TransportKind,
    /// New Request-URI (initial requests that named the proxy).
    pub(crate) ruri: Option<String>,
    /// Number of top Route values that are ours (popped).
    pub(crate) pop_routes: usize,
    /// Add Record-Route (dialog-forming initial request).
    pub(crate) record_route: bool,
    /// A ring group (an initial INVITE on a route with two or more
    /// targets): every branch of the fork, the first being `target` /
    /// `ruri` (RFC 3261 16.5, 16.7; [`crate::fork`]). Empty otherwise.
    pub(crate) fork: Vec<ForkTarget>,
    /// Answer the request with this final response instead of forwarding
    /// it, once the call tracker and Zammad have seen it (a registered
    /// phone without a binding: 480, cause `notFound`).
    pub(crate) answer: Option<(u16, &'static str)>,
}

/// Which way a message goes when it is sent to `dest`.
pub(crate) fn toward(dest: Side) -> Toward {
    match dest {
        Side::Inside => Toward::Inside,
        Side::Trunk => Toward::Trunk,
    }
}

/// The side opposite `s`.
pub(crate) fn other_side(s: Side) -> Side {
    match s {
        Side::Inside => Side::Trunk,
        Side::Trunk => Side::Inside,
    }
}

/// The transport named by a `transport` URI parameter (UDP and TCP only).
pub(crate) fn transport_of(s: &str) -> Option<TransportKind> {
    if s.eq_ignore_ascii_case("udp") {
        Some(TransportKind::Udp)
    } else if s.eq_ignore_ascii_case("tcp") {
        Some(TransportKind::Tcp)
    } else {
        None
    }
}

/// `ip` as the host of a URI or Via (RFC 3261 25.1: an IPv6 reference in
/// brackets).
pub(crate) fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// A host without the brackets of an IPv6 reference.
pub(crate) fn host_of(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Where `host:port` is: an address, or a name the edge resolves.
pub(crate) fn target_of(host: &str, port: u16) -> Target {
    match host_of(host).parse::<IpAddr>() {
        Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
        Err(_) => Target::Name(host_of(host).to_string(), port),
    }
}

impl CoreConfig {
    /// RFC 3261 16.3 (sipcti's policy): which side an address is on, the
    /// trunk's networks first; `None` for a stranger.
    pub(crate) fn classify(&self, ip: IpAddr) -> Option<Side> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.trunk_sources.iter().any(|n| n.contains(&ip)) {
            Some(Side::Trunk)
        } else if self.inside_networks.iter().any(|n| n.contains(&ip)) {
            Some(Side::Inside)
        } else {
            None
        }
    }

    /// Whether `host:port` names this proxy (RFC 3261 16.4: a Route or
    /// Request-URI that is ours).
    pub(crate) fn is_us(&self, host: &str, port: Option<u16>) -> bool {
        let Ok(ip) = host_of(host).parse::<IpAddr>() else {
            return false;
        };
        (ip == self.local.ip()
            || ip == self.inside_ip
            || ip == self.trunk_ip
            || self.aliases.contains(&ip))
            && port.unwrap_or(5060) == self.local.port()
    }

    /// RFC 3261 18.2.1 and RFC 3581 4 (`with_received`): the server
    /// transport adds `received` to the top Via of a request from `source`
    /// when its host is not the source address, and fills `rport` when the
    /// client asked for it; so the forwarded request and every response we
    /// build carry them. The values to add to `msg`'s top Via; `None` when
    /// nothing is added. Written in by [`CoreConfig::apply_received`], at
    /// receipt or, for a request that allows it ([`ViaReceived::deferrable`]),
    /// in the edit that forwards it.
    pub(crate) fn received_for(&self, msg: &SipMessage, source: SocketAddr) -> Option<ViaReceived> {
        let v = msg.top_via()?;
        let host_differs = host_of(v.host).parse::<IpAddr>().ok() != Some(source.ip());
        let rport = match v.rport() {
            Some(None) => Some(source.port()),
            _ => None,
        };
        if !host_differs && rport.is_none() {
            return None;
        }
        Some(ViaReceived {
            ip: source.ip(),
            rport,
        })
    }

    /// `msg` with `r` written into its top Via ([`CoreConfig::received_for`]);
    /// `msg` as it is should the edit not parse (it always does).
    pub(crate) fn apply_received(&self, msg: SipMessage, r: ViaReceived) -> SipMessage {
        // the parameters we add may push a message that was just within
        // the size limit past it; the limit is for what was received (a
        // forwarded request that grew too large gets 513 later)
        let limits = sipcti_wire::Limits {
            max_message_bytes: self.limits.max_message_bytes + 128,
            ..self.limits
        };
        // re-indexed from the received message's index, not parsed again
        let mut edit = msg.edit();
        r.apply(&mut edit);
        let edited = edit.finish_message(&limits);
        edited.unwrap_or(msg)
    }

    /// `msg` with the `received`/`rport` of `r` written in when there are
    /// any ([`CoreConfig::apply_received`]); `msg` as it is otherwise.
    pub(crate) fn materialize(&self, msg: SipMessage, r: Option<ViaReceived>) -> SipMessage {
        match r {
            Some(r) => self.apply_received(msg, r),
            None => msg,
        }
    }

    /// RFC 3261 16.5 / 16.6 steps 2-6 for a request outside a dialog: the
    /// configured hop of the other side, our pre-loaded Route values
    /// popped, a Request-URI naming us replaced, Record-Route for the
    /// methods that form dialogs. A request from the trunk whose dialled
    /// number matches an inbound route ([`TrackerConfig::route_for`], first
    /// match wins) goes to the route's target instead: see [`Self::route_hop`].
    ///
    /// Errors: `(500, reason)` for a route target that is not a SIP URI with
    /// a host (the file configuration never lets one through).
    ///
    /// [`TrackerConfig::route_for`]: sipcti_dialog::TrackerConfig::route_for
    pub(crate) fn initial_hop(
        &self,
        msg: &SipMessage,
        method: &Method,
        side: Side,
        registered: &dyn Fn(&str) -> Vec<ForkTarget>,
    ) -> Result<NextHop, (u16, &'static str)> {
        if side == Side::Trunk {
            if let Some(r) = self.tracker.route_for(msg) {
                // RFC 3261 16.5: the target set. A registered phone's name
                // stands for each of its bindings.
                let mut set = Vec::new();
                for t in r.targets.iter() {
                    if t.registered {
                        set.extend(registered(&t.uri));
                    } else {
                        let (target, transport) =
                            route_hop(&t.uri).ok_or((500, "Bad Route Target"))?;
                        set.push(ForkTarget {
                            target,
                            transport,
                            ruri: t.uri.clone(),
                            user: t.user.clone(),
                        });
                    }
                }
                set.truncate(sipcti_dialog::MAX_GROUP);
                let pop_routes = self.our_routes(msg).0;
                let record_route = method.forms_dialog();
                let Some(first) = set.first().cloned() else {
                    // only registered phones, none registered now
                    return Ok(NextHop {
                        target: self.inside_target.target.clone(),
                        transport: self.inside_target.transport,
                        ruri: None,
                        pop_routes,
                        record_route,
                        fork: Vec::new(),
                        answer: Some((480, "Temporarily Unavailable")),
                    });
                };
                // a ring group forks an INVITE (RFC 3261 16.7); any other
                // request goes to the first target only
                let fork = if set.len() > 1 && *method == Method::Invite {
                    set
                } else {
                    Vec::new()
                };
                return Ok(NextHop {
                    target: first.target,
                    transport: first.transport,
                    // RFC 3261 16.5: the target set's URI is the new Request-URI
                    ruri: Some(first.ruri),
                    pop_routes,
                    record_route,
                    fork,
                    answer: None,
                });
            }
        }
        let hop = match side {
            Side::Inside => &self.trunk,
            Side::Trunk => &self.inside_target,
        };
        // Request-URI naming the proxy itself: send it on to the hop's host
        let ruri = msg.request_uri().and_then(|r| {
            let u = Uri::parse(r).ok()?;
            if u.is_sip() && self.is_us(u.host, u.port) {
                Some(replace_hostport(&u, &hop.hostport))
            } else {
                None
            }
        });
        // pre-loaded Route values naming us (RFC 3261 16.4)
        let pop_routes = self.our_routes(msg).0;
        Ok(NextHop {
            target: hop.target.clone(),
            transport: hop.transport,
            ruri,
            pop_routes,
            record_route: method.forms_dialog(),
            fork: Vec::new(),
            answer: None,
        })
    }

    /// Count the top Route values that name this proxy; return the
    /// transport parameter of the last one (double Record-Route).
    pub(crate) fn our_routes(&self, msg: &SipMessage) -> (usize, Option<TransportKind>) {
        let (n, t, _) = self.split_routes(msg);
        (n, t)
    }

    /// [`CoreConfig::our_routes`], and the first Route value after ours
    /// (`None` when there is none): the Route values are split and parsed
    /// once, nothing is allocated.
    fn split_routes<'m>(
        &self,
        msg: &'m SipMessage,
    ) -> (usize, Option<TransportKind>, Option<&'m str>) {
        let mut n = 0;
        let mut t = None;
        for r in msg.header_values_iter("Route") {
            let Ok(na) = sipcti_wire::NameAddr::parse(r) else {
                return (n, t, Some(r));
            };
            let Ok(u) = na.parsed_uri() else {
                return (n, t, Some(r));
            };
            if !self.is_us(u.host, u.port) {
                return (n, t, Some(r));
            }
            n += 1;
            t = u
                .transport()
                .and_then(transport_of)
                .or(Some(TransportKind::Udp));
        }
        (n, t, None)
    }

    /// RFC 3261 16.4 and 16.5/16.6 step 6-7 for a request inside a dialog:
    /// pop our Route values and send to the next Route, else the Request-URI.
    pub(crate) fn in_dialog_hop(
        &self,
        msg: &SipMessage,
        side: Side,
    ) -> Result<NextHop, (u16, &'static str)> {
        let (pop, rr_transport, next_route) = self.split_routes(msg);
        let bad_uri = (400u16, "Bad Request-URI");
        if let Some(r) = next_route {
            let na = sipcti_wire::NameAddr::parse(r).map_err(|_| (400u16, "Bad Route"))?;
            let u = Uri::parse(na.uri).map_err(|_| bad_uri)?;
            return self.in_dialog_next(&u, pop, rr_transport, None, side);
        }
        let r = msg.request_uri().unwrap_or("");
        let parsed = Uri::parse(r);
        // a phone's masked Contact (crate::topology): to the phone
        match parsed.as_ref().ok().and_then(|u| self.unmasked_target(u)) {
            Some(contact) => {
                let u = Uri::parse(&contact).map_err(|_| bad_uri)?;
                let ruri = Some(contact.clone());
                self.in_dialog_next(&u, pop, rr_transport, ruri, side)
            }
            None => {
                let u = parsed.map_err(|_| bad_uri)?;
                self.in_dialog_next(&u, pop, rr_transport, None, side)
            }
        }
    }

    /// The rest of [`CoreConfig::in_dialog_hop`]: the hop to `u` (the next
    /// Route's URI or the Request-URI), `pop` of our Route values popped,
    /// `rr_transport` the transport of the last of them, `ruri` the new
    /// Request-URI if any.
    fn in_dialog_next(
        &self,
        u: &Uri<'_>,
        pop: usize,
        rr_transport: Option<TransportKind>,
        ruri: Option<String>,
        side: Side,
    ) -> Result<NextHop, (u16, &'static str)> {
        if !u.is_sip() || u.host.is_empty() {
            return Err((416, "Unsupported URI Scheme"));
        }
        let default_port = if u.scheme.eq_ignore_ascii_case("sips") {
            5061
        } else {
            5060
        };
        let port = u.port.unwrap_or(default_port);
        let transport = u
            .transport()
            .and_then(transport_of)
            .or(rr_transport)
            .unwrap_or(TransportKind::Udp);
        let target = target_of(u.host, port);
        if self.is_us(u.host, Some(port)) {
            return Err((482, "Loop Detected"));
        }
        // no open relay: requests from the trunk may only go inside
        if side == Side::Trunk {
            let ok = match &target {
                Target::Addr(a) => {
                    self.inside_networks.iter().any(|n| n.contains(&a.ip()))
                        || self.inside_target.target == target
                }
                Target::Name(..) => self.inside_target.target == target,
            };
            if !ok {
                return Err((403, "Forbidden"));
            }
        }
        Ok(NextHop {
            target,
            transport,
            ruri,
            pop_routes: pop,
            record_route: false,
            fork: Vec::new(),
            answer: None,
        })
    }

    /// An initial request from the trunk to a phone's masked Contact
    /// (`sip:tc…@sipcti`, [`crate::topology`]): to the phone, its Contact
    /// as Request-URI; `Err(403)` when the unmasked target is not inside.
    /// `None` when the Request-URI is no mask.
    pub(crate) fn unmasked_initial_hop(
        &self,
        msg: &SipMessage,
        method: &Method,
    ) -> Option<Result<NextHop, (u16, &'static str)>> {
        let u = Uri::parse(msg.request_uri()?).ok()?;
        let contact = self.unmasked_target(&u)?;
        let Some((target, transport)) = route_hop(&contact) else {
            return Some(Err((403, "Forbidden")));
        };
        let inside = match &target {
            Target::Addr(a) => self.inside_networks.iter().any(|n| n.contains(&a.ip())),
            Target::Name(..) => false,
        };
        if !inside {
            return Some(Err((403, "Forbidden")));
        }
        Some(Ok(NextHop {
            target,
            transport,
            ruri: Some(contact),
            pop_routes: self.our_routes(msg).0,
            record_route: method.forms_dialog(),
            fork: Vec::new(),
            answer: None,
        }))
    }

    /// The proxy's address as the side `toward` reaches it.
    pub(crate) fn face(&self, toward: Side) -> IpAddr {
        match toward {
            Side::Inside => self.inside_ip,
            Side::Trunk => self.trunk_ip,
        }
    }

    /// RFC 3261 16.6 step 8: the Via value the proxy inserts.
    pub(crate) fn via_value(&self, ip: IpAddr, transport: TransportKind, branch: &str) -> String {
        format!(
            "SIP/2.0/{transport} {}:{};branch={branch}",
            uri_host(ip),
            self.local.port()
        )
    }

    /// `host:port` of this proxy at `ip` (an IPv6 address in brackets),
    /// with `;transport=tcp` over TCP: the part after `user@` of every URI
    /// naming us (Record-Route, Path, a binding key, a masked Contact).
    pub(crate) fn our_hostport(&self, ip: IpAddr, transport: TransportKind) -> String {
        let tp = match transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!("{}:{}{tp}", uri_host(ip), self.local.port())
    }

    /// RFC 3261 16.6 step 4 (RFC 5658 for the double form): our
    /// Record-Route value at `ip` over `transport`.
    pub(crate) fn rr_value(&self, ip: IpAddr, transport: TransportKind) -> String {
        format!("<sip:{};lr>", self.our_hostport(ip, transport))
    }
}

/// The values naming this proxy that go into every forwarded request, built
/// once from the configuration (its addresses and port cannot change
/// without a restart, see [`crate::ProxyCore::reconfigure`]) for each face
/// (`inside_ip`, `trunk_ip`) and transport: no formatting per message.
#[derive(Debug, Clone)]
pub(crate) struct OurValues {
    entries: Vec<OurFace>,
}

/// [`OurValues`] of one face and transport.
#[derive(Debug, Clone)]
struct OurFace {
    ip: IpAddr,
    transport: TransportKind,
    /// [`CoreConfig::via_value`] up to the branch value.
    via_prefix: String,
    /// [`CoreConfig::rr_value`].
    rr: String,
    /// [`CoreConfig::our_hostport`].
    hostport: String,
}

impl OurValues {
    /// The values of `cfg`'s two faces over UDP and TCP.
    pub(crate) fn new(cfg: &CoreConfig) -> OurValues {
        let mut entries: Vec<OurFace> = Vec::with_capacity(4);
        for ip in [cfg.inside_ip, cfg.trunk_ip] {
            for transport in [TransportKind::Udp, TransportKind::Tcp] {
                if entries
                    .iter()
                    .any(|f| f.ip == ip && f.transport == transport)
                {
                    continue;
                }
                entries.push(OurFace {
                    ip,
                    transport,
                    via_prefix: cfg.via_value(ip, transport, ""),
                    rr: cfg.rr_value(ip, transport),
                    hostport: cfg.our_hostport(ip, transport),
                });
            }
        }
        OurValues { entries }
    }

    fn find(&self, ip: IpAddr, transport: TransportKind) -> Option<&OurFace> {
        self.entries
            .iter()
            .find(|f| f.ip == ip && f.transport == transport)
    }

    /// RFC 3261 16.6 step 8: our Via value at `ip` over `transport` up to
    /// the branch value (`SIP/2.0/UDP host:port;branch=`); computed for an
    /// address that is not one of the faces.
    pub(crate) fn via_prefix<'a>(
        &'a self,
        cfg: &CoreConfig,
        ip: IpAddr,
        transport: TransportKind,
    ) -> Cow<'a, str> {
        match self.find(ip, transport) {
            Some(f) => Cow::Borrowed(&f.via_prefix),
            None => Cow::Owned(cfg.via_value(ip, transport, "")),
        }
    }

    /// [`CoreConfig::rr_value`] of `ip` and `transport`, from the cache.
    pub(crate) fn rr_value<'a>(
        &'a self,
        cfg: &CoreConfig,
        ip: IpAddr,
        transport: TransportKind,
    ) -> Cow<'a, str> {
        match self.find(ip, transport) {
            Some(f) => Cow::Borrowed(&f.rr),
            None => Cow::Owned(cfg.rr_value(ip, transport)),
        }
    }

    /// [`CoreConfig::our_hostport`] of `ip` and `transport`, from the cache.
    pub(crate) fn hostport<'a>(
        &'a self,
        cfg: &CoreConfig,
        ip: IpAddr,
        transport: TransportKind,
    ) -> Cow<'a, str> {
        match self.find(ip, transport) {
            Some(f) => Cow::Borrowed(&f.hostport),
            None => Cow::Owned(cfg.our_hostport(ip, transport)),
        }
    }
}

/// The `received` and `rport` values the server transport writes into a
/// request's top Via (RFC 3261 18.2.1, RFC 3581 4;
/// [`CoreConfig::received_for`]).
///
/// A request whose top Via takes them without changing how the message
/// validates ([`ViaReceived::deferrable`]) is carried through the pipeline
/// as received, with these values beside it, and they are written into the
/// edit that forwards it: the bytes sent are the same, and the message is
/// not copied and re-indexed once more just for them. Every response the
/// proxy builds from such a request writes them in first
/// ([`CoreConfig::materialize`]); an INVITE's 100 Trying gets them written
/// into its copy of the Via line ([`ViaReceived::patch_response`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViaReceived {
    /// The source address (`received`).
    pub(crate) ip: IpAddr,
    /// The source port, when the Via asked for it (`rport` without a value).
    pub(crate) rport: Option<u16>,
}

impl ViaReceived {
    /// Write the values into `edit` of the request
    /// ([`sipcti_wire::Edit::set_top_via_received`]).
    pub(crate) fn apply(self, edit: &mut sipcti_wire::Edit<'_>) {
        edit.set_top_via_received(Some(self.ip), self.rport);
    }

    /// Whether the values may wait for the forwarding edit: `msg`'s top
    /// Via value lies in the message's own bytes (its line is not folded),
    /// has no `received` parameter to be replaced and no double quote or
    /// angle bracket (which would change how it is split), so
    /// appending `;received=IP` and filling `rport` add one well-formed
    /// parameter and change nothing else [`SipMessage::validate`] looks at.
    pub(crate) fn deferrable(msg: &SipMessage) -> bool {
        let Some(v) = msg.top_via() else {
            return false;
        };
        let bytes = msg.as_bytes().as_ptr_range();
        let raw = v.raw.as_bytes().as_ptr_range();
        // (a byte scan first: `param` walks every parameter)
        let received = |p: &str| {
            p.as_bytes()
                .windows(8)
                .any(|w| w.eq_ignore_ascii_case(b"received"))
        };
        bytes.start <= raw.start
            && raw.end <= bytes.end
            && !v.raw.bytes().any(|b| matches!(b, b'"' | b'<' | b'>'))
            && (!received(v.params) || v.param("received").is_none())
    }

    /// `resp`, built by [`sipcti_wire::response_for`] from request `msg`
    /// whose values wait ([`ViaReceived::deferrable`]), with the values
    /// written into its copy of the top Via line: the bytes `response_for`
    /// gives for the request with them written in (what
    /// [`sipcti_wire::Edit::set_top_via_received`] does to the request:
    /// its first `rport` parameter filled, `;received=IP` appended to the
    /// value). The copy is located and checked byte for byte; `None` when
    /// it is not where expected (then the caller writes the values into
    /// the request instead).
    pub(crate) fn patch_response(self, msg: &SipMessage, resp: &[u8]) -> Option<Vec<u8>> {
        let v = msg.top_via()?;
        let line = msg.header_lines("Via").next()?;
        let base = msg.as_bytes().as_ptr() as usize;
        let offset = |s: &str| (s.as_ptr() as usize).checked_sub(base);
        let line_start = offset(line.name)?;
        let raw_start = offset(v.raw)?.checked_sub(line_start)?;
        let raw_end = raw_start + v.raw.len();
        let params_start = offset(v.params)?.checked_sub(line_start)?;
        // the response's status line, then the copy of the first Via line
        let at = resp.windows(2).position(|w| w == b"\r\n")? + 2;
        if resp.get(at + raw_start..at + raw_end)? != v.raw.as_bytes() {
            return None;
        }
        // `rport` (a flag): the first parameter of that name, trimmed
        // (no quotes in the value: the parameters split at every `;`)
        let rport = match self.rport {
            None => None,
            Some(port) => {
                let lws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
                let p = v.params.as_bytes();
                let mut found = None;
                let mut start = 0;
                for (i, piece) in p.split(|&b| b == b';').enumerate() {
                    let (s, e) = (start, start + piece.len());
                    start = e + 1;
                    if i == 0 {
                        continue;
                    }
                    let lead = piece.iter().take_while(|&&b| lws(b)).count();
                    let trail = piece[lead..].iter().rev().take_while(|&&b| lws(b)).count();
                    let whole = &piece[lead..piece.len() - trail];
                    let name = match whole.iter().position(|&b| b == b'=') {
                        Some(eq) => {
                            let n = &whole[..eq];
                            let t = n.iter().rev().take_while(|&&b| lws(b)).count();
                            &n[..n.len() - t]
                        }
                        None => whole,
                    };
                    if name.eq_ignore_ascii_case(b"rport") {
                        found = Some((s + lead, e - trail, port));
                        break;
                    }
                }
                // the Via asked for rport: it has one
                Some(found?)
            }
        };
        let mut out = Vec::with_capacity(resp.len() + 48);
        let mut cursor = 0;
        if let Some((s, e, port)) = rport {
            let (s, e) = (at + params_start + s, at + params_start + e);
            out.extend_from_slice(resp.get(..s)?);
            out.extend_from_slice(b"rport=");
            let _ = write!(out, "{port}");
            cursor = e;
        }
        let end = at + raw_end;
        out.extend_from_slice(resp.get(cursor..end)?);
        out.extend_from_slice(b";received=");
        // as `Display` writes it (IPv6 without brackets, RFC 5118 4.5)
        let _ = write!(out, "{}", self.ip);
        out.extend_from_slice(resp.get(end..)?);
        Some(out)
    }
}

/// The next hop of an inbound route's target URI
/// (`sip:user@host[:port][;transport=udp|tcp]`): its host and port (default
/// 5060) and transport (default UDP; RFC 3263 4.1 without DNS, as for the
/// configured hops). `None` for a URI that is not `sip:` with a host, or
/// names another transport.
pub(crate) fn route_hop(uri: &str) -> Option<(Target, TransportKind)> {
    let u = Uri::parse(uri).ok()?;
    if !u.scheme.eq_ignore_ascii_case("sip") || u.host.is_empty() {
        return None;
    }
    let transport = match u.transport() {
        None => TransportKind::Udp,
        Some(t) => transport_of(t)?,
    };
    Some((target_of(u.host, u.port.unwrap_or(5060)), transport))
}

/// Where the responses to request `msg` received from `source` go.
/// RFC 3261 18.2.2 and RFC 3581 4.
pub(crate) fn reply_target(
    msg: &SipMessage,
    source: SocketAddr,
    transport: TransportKind,
) -> Target {
    // RFC 3261 18.2.2 and RFC 3581 4: over TCP the same connection
    // (the source); over UDP the source port when rport was asked for,
    // else the sent-by port at the source address.
    if transport == TransportKind::Tcp {
        return Target::Addr(source);
    }
    match msg.top_via() {
        Some(v) if v.rport().is_some() => Target::Addr(source),
        Some(v) => Target::Addr(SocketAddr::new(source.ip(), v.port.unwrap_or(5060))),
        None => Target::Addr(source),
    }
}

/// Remove the first `n` Route values (RFC 3261 16.4). Edits refer to the
/// original message, so for more than one value the Route lines are
/// replaced by one line holding the values that remain.
pub(crate) fn pop_routes(edit: &mut sipcti_wire::Edit<'_>, msg: &SipMessage, n: usize) {
    match n {
        0 => {}
        1 => {
            edit.remove_first_value("Route");
        }
        _ => {
            let values = msg.header_values("Route");
            let lines: Vec<usize> = msg.header_lines("Route").map(|h| h.index).collect();
            for i in lines {
                edit.remove_header(i);
            }
            if values.len() > n {
                edit.insert_first("Route", &values[n..].join(", "));
            }
        }
    }
}

/// Replace `host[:port]` of a SIP URI, keeping scheme, user and parameters.
pub(crate) fn replace_hostport(u: &Uri<'_>, hostport: &str) -> String {
    let scheme = u.scheme;
    let mut out = String::with_capacity(
        scheme.len()
            + 2
            + u.user.map_or(0, |x| x.len() + 1)
            + u.password.map_or(0, |x| x.len() + 1)
            + hostport.len()
            + u.params.len()
            + u.headers.map_or(0, |x| x.len() + 1),
    );
    out.push_str(scheme);
    out.push(':');
    if let Some(user) = u.user {
        out.push_str(user);
        if let Some(p) = u.password {
            out.push(':');
            out.push_str(p);
        }
        out.push('@');
    }
    out.push_str(hostport);
    out.push_str(u.params);
    if let Some(h) = u.headers {
        out.push('?');
        out.push_str(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ViaReceived;
    use sipcti_wire::{response_for, Limits, SipMessage};
    use std::net::SocketAddr;

    /// `ViaReceived::patch_response` gives the 100 Trying that
    /// `response_for` builds from the request with the values written in.
    #[test]
    fn patched_trying_is_the_trying_of_the_written_request() {
        let vias = [
            "Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-1;rport",
            "Via: SIP/2.0/UDP 10.0.0.20:5062;rport;branch=z9hG4bK-1",
            "Via: SIP/2.0/UDP 10.0.0.20:5062 ; RPORT ;branch=z9hG4bK-1",
            "v:SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bK-1;rport=7;rport",
            "Via: SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bK-1",
            "Via: SIP/2.0/UDP 192.168.1.5;branch=z9hG4bK-1;rport, SIP/2.0/UDP h;branch=z9hG4bK-2",
            "Via:   SIP/2.0/UDP phone.example;branch=z9hG4bK-1;rport  \r\nVia: SIP/2.0/TCP h2;branch=z9hG4bK-3",
        ];
        let sources: [SocketAddr; 2] = [
            "10.0.0.20:40000".parse().expect("addr"),
            "[2001:db8::20]:5062".parse().expect("addr"),
        ];
        for via in vias {
            for source in sources {
                let raw = format!(
                    "INVITE sip:1@h SIP/2.0\r\n{via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                );
                let msg = SipMessage::parse(raw.into_bytes(), &Limits::default()).expect("parses");
                assert!(ViaReceived::deferrable(&msg), "{via}");
                let rport = match msg.top_via().and_then(|v| v.rport()) {
                    Some(None) => Some(source.port()),
                    _ => None,
                };
                let r = ViaReceived {
                    ip: source.ip(),
                    rport,
                };
                let mut edit = msg.edit();
                r.apply(&mut edit);
                let written = edit.finish_message(&Limits::default()).expect("edited");
                let want = response_for(&written, 100, "Trying", None, &[]);
                let trying = response_for(&msg, 100, "Trying", None, &[]);
                let got = r.patch_response(&msg, &trying).expect("patched");
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{via} from {source}"
                );
            }
        }
    }
}
