//! Requests the core tests write themselves, built with `rsip` (full
//! header names, IPv4, standard methods: what rsip 0.4 writes correctly;
//! `crates/wire/tests/rsip_vs_wire.rs` shows what it does not). Messages
//! that must carry odd bytes on purpose (compact forms, folding, broken
//! syntax) stay text, written with [`super::sip`].

use rsip::headers::UntypedHeader;
use rsip::{headers, Header, Method};

/// A request line plus headers, in the order given, and `Content-Length`
/// computed from `body`. Header names are the full RFC 3261 names; the
/// well-known ones become rsip's headers, anything else an extension
/// header. Returns the bytes rsip writes.
///
/// Panics (a test bug) when `method` or `ruri` is not something rsip
/// can write.
pub fn request(method: &str, ruri: &str, hdrs: &[(&str, String)], body: &str) -> Vec<u8> {
    let method: Method = method.parse().expect("a method rsip knows");
    let uri = rsip::Uri::try_from(ruri).expect("a URI rsip can write");
    let mut headers = rsip::Headers::default();
    for (name, value) in hdrs {
        let v = value.clone();
        headers.push(match *name {
            "Via" => Header::Via(headers::Via::new(v)),
            "Route" => Header::Route(headers::Route::new(v)),
            "Max-Forwards" => Header::MaxForwards(headers::MaxForwards::new(v)),
            "From" => Header::From(headers::From::new(v)),
            "To" => Header::To(headers::To::new(v)),
            "Call-ID" => Header::CallId(headers::CallId::new(v)),
            "CSeq" => Header::CSeq(headers::CSeq::new(v)),
            "Contact" => Header::Contact(headers::Contact::new(v)),
            other => Header::Other(other.to_string(), v),
        });
    }
    headers.push(Header::ContentLength(headers::ContentLength::new(
        body.len().to_string(),
    )));
    rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers,
        body: body.as_bytes().to_vec(),
    }
    .to_string()
    .into_bytes()
}
