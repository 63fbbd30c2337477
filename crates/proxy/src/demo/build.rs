//! How the demo's user agents write SIP (RFC 3261 7, 8.1.1, 8.2.6, 20):
//! the response builder, the reason phrases, the URIs, Contact and Via of
//! our UAs, the body headers and the SDP offer/answer. The requests of a
//! call are put together by [`Uac`](super::ua::Uac) from these pieces.
//!
//! What the UAs write is built with `rsip` (typed [`Method`] and
//! [`StatusCode`], typed headers for what they make up themselves: full
//! header names, IPv4, standard methods, text bodies, which rsip 0.4 writes
//! correctly). What they receive is read with our wire layer
//! ([`SipMessage`]) only, and a header copied from a received message goes
//! back out through rsip's *untyped* header as the raw value our wire layer
//! read: rsip's typed headers would re-parse it, and rsip 0.4 fails on or
//! rewrites IPv6 hosts, `tel:` URIs and comma-separated values
//! (`crates/wire/tests/rsip_vs_wire.rs` shows each case).

use std::net::{IpAddr, SocketAddr};

use anyhow::{anyhow, bail};
use rsip::headers::UntypedHeader as _;
use rsip::param::OtherParam;
#[cfg(doc)]
use rsip::Method;
use rsip::{typed, Header, Param, StatusCode};
use sipcti_wire::SipMessage;

use super::ua::token;
#[cfg(doc)]
use super::ua::Ua;

/// The reason phrase the UAs write: rsip 0.4 writes a status code it knows
/// with its variant name (`486 BusyHere`, `487 RequestTerminated`), so the
/// status line is written as `StatusCode::Other(code, phrase)` with the
/// RFC 3261 phrase.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// A `sip:` URI of ours: `user` at an IPv4 `ip` (and `port`). rsip writes
/// an IPv6 host without brackets, so IPv6 is refused.
pub fn sip_uri(user: Option<&str>, ip: IpAddr, port: Option<u16>) -> anyhow::Result<rsip::Uri> {
    if !ip.is_ipv4() {
        bail!("rsip cannot write the IPv6 host {ip}");
    }
    Ok(rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        auth: user.map(|u| rsip::Auth {
            user: u.to_string(),
            password: None,
        }),
        host_with_port: rsip::HostWithPort {
            host: ip.into(),
            port: port.map(Into::into),
        },
        ..Default::default()
    })
}

/// A URI held as text (the remote target read from a Contact) as an rsip
/// Request-URI, only when rsip writes it back byte for byte: rsip 0.4
/// fails on `tel:` and IPv6 URIs and may rewrite others.
pub(super) fn rsip_uri(s: &str) -> anyhow::Result<rsip::Uri> {
    let u = rsip::Uri::try_from(s).map_err(|e| anyhow!("rsip cannot hold the URI {s}: {e}"))?;
    if u.to_string() != s {
        bail!("rsip would write the URI {s} as {u}");
    }
    Ok(u)
}

/// The Contact of a UA of ours: `<sip:user@addr>`.
pub fn contact(user: &str, addr: SocketAddr) -> anyhow::Result<typed::Contact> {
    Ok(typed::Contact {
        display_name: None,
        uri: sip_uri(Some(user), addr.ip(), Some(addr.port()))?,
        params: Vec::new(),
    })
}

/// A Via of ours: `SIP/2.0/UDP addr;branch=z9hG4bK...;rport`.
pub(super) fn own_via(addr: SocketAddr) -> anyhow::Result<typed::Via> {
    Ok(typed::Via {
        version: rsip::Version::V2,
        transport: rsip::Transport::Udp,
        // sent-by: a URI without scheme (rsip would write `sip:` into the Via)
        uri: rsip::Uri {
            scheme: None,
            ..sip_uri(None, addr.ip(), Some(addr.port()))?
        },
        params: vec![
            Param::Branch(rsip::param::Branch::new(format!("z9hG4bK{}", token()))),
            Param::Other(OtherParam::new("rport"), None),
        ],
    })
}

/// Content-Type and Content-Length for an optional SDP `body` (which is
/// text: rsip writes a body through `String::from_utf8_lossy`).
pub(super) fn body_headers(headers: &mut Vec<Header>, body: Option<&str>) -> Vec<u8> {
    match body {
        Some(b) => {
            headers.push(typed::ContentType(typed::MediaType::Sdp(Vec::new())).into());
            headers.push(rsip::headers::ContentLength::from(b.len() as u32).into());
            b.as_bytes().to_vec()
        }
        None => {
            headers.push(rsip::headers::ContentLength::from(0).into());
            Vec::new()
        }
    }
}

/// A response to `req` (see [`Ua::reply`]), built with rsip. Every header
/// copied from `req` goes through rsip's untyped header with the raw value
/// our wire layer read (a typed Via keeps only the first of `a, b` and
/// fails on IPv6; a typed From/To fails on `tel:` and IPv6), so it is
/// written back unchanged.
pub fn build_response(
    req: &SipMessage,
    status: u16,
    to_tag: Option<&str>,
    contact: Option<&typed::Contact>,
    body: Option<&str>,
) -> Vec<u8> {
    let mut headers: Vec<Header> = Vec::new();
    for v in req.header_values("Via") {
        headers.push(rsip::headers::Via::new(v).into());
    }
    if req.method() == Some("INVITE") && (101..300).contains(&status) {
        for rr in req.header_values("Record-Route") {
            headers.push(rsip::headers::RecordRoute::new(rr).into());
        }
    }
    if let Some(f) = req.header("From") {
        headers.push(rsip::headers::From::new(f).into());
    }
    if let Some(t) = req.header("To") {
        let has_tag = req.to().is_some_and(|t| t.tag().is_some());
        let to = match to_tag {
            Some(tag) if !has_tag && status > 100 => format!("{t};tag={tag}"),
            _ => t.to_string(),
        };
        headers.push(rsip::headers::To::new(to).into());
    }
    if let Some(v) = req.header("Call-ID") {
        headers.push(rsip::headers::CallId::new(v).into());
    }
    if let Some(v) = req.header("CSeq") {
        headers.push(rsip::headers::CSeq::new(v).into());
    }
    if let Some(c) = contact {
        headers.push(c.clone().into());
    }
    headers.push(rsip::headers::Server::new("sipcti-demo").into());
    let body = body_headers(&mut headers, body);
    rsip::Response {
        status_code: StatusCode::Other(status, reason_phrase(status).to_string()),
        version: rsip::Version::V2,
        headers: headers.into(),
        body,
    }
    .into()
}

/// A small SDP offer/answer for `ip`.
pub fn sdp(ip: IpAddr, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=sipcti demo\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}
