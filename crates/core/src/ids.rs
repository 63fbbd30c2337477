//! Typed identifiers, the request method and the transaction keys.
//!
//! * [`ServerTxId`], [`ClientTxId`]: handles of the core's transactions
//!   (RFC 3261 17.2 and 17.1); they are never reused within one core.
//! * [`CallId`]: the token of an INVITE held for Zammad's answer to
//!   `newCall` (not the SIP `Call-ID` header, which stays a string).
//! * [`Method`]: a request method, case-sensitive (RFC 3261 7.1).
//! * [`ServerKey`]: how a request is matched to a server transaction
//!   (RFC 3261 17.2.3, with the RFC 2543 fallback).
//! * [`ClientKey`]: how a response is matched to a client transaction
//!   (RFC 3261 17.1.3).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sipcti_wire::SipMessage;

/// A server transaction of the core (RFC 3261 17.2). Opaque; unique
/// within one [`crate::ProxyCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub(crate) u64);

/// A client transaction of the core (RFC 3261 17.1): carried by
/// [`crate::Transmit::client_tx`] and handed back to
/// [`crate::ProxyCore::handle_transport_error`] when the message could not
/// be sent. Opaque; unique within one [`crate::ProxyCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub(crate) u64);

/// The token of an INVITE held while Zammad answers its `newCall`
/// ([`crate::Output::NewCall`]); give it back with
/// [`crate::ProxyCore::handle_cti_answer`]. Not the SIP `Call-ID`.
/// Displayed as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub(crate) u64);

impl CallId {
    /// The token of the INVITE held in server transaction `sid`.
    pub(crate) fn of(sid: ServerTxId) -> CallId {
        CallId(sid.0)
    }

    /// The server transaction holding the INVITE of this token.
    pub(crate) fn server_tx(self) -> ServerTxId {
        ServerTxId(self.0)
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ServerTxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for ClientTxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A SIP request method (RFC 3261 7.1, 27.4). Methods are case-sensitive:
/// `invite` is an extension method, not [`Method::Invite`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `INVITE` (RFC 3261).
    Invite,
    /// `ACK` (RFC 3261).
    Ack,
    /// `CANCEL` (RFC 3261).
    Cancel,
    /// `BYE` (RFC 3261).
    Bye,
    /// `OPTIONS` (RFC 3261).
    Options,
    /// `REGISTER` (RFC 3261).
    Register,
    /// `INFO` (RFC 6086).
    Info,
    /// `UPDATE` (RFC 3311).
    Update,
    /// `PRACK` (RFC 3262).
    Prack,
    /// `REFER` (RFC 3515).
    Refer,
    /// `MESSAGE` (RFC 3428).
    Message,
    /// `SUBSCRIBE` (RFC 6665).
    Subscribe,
    /// `NOTIFY` (RFC 6665).
    Notify,
    /// Any other method, as written.
    Other(String),
}

impl Method {
    /// The method named by `s`, compared case-sensitively; anything not
    /// listed is [`Method::Other`]. Never fails.
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            "BYE" => Method::Bye,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Other(s) => s,
        }
    }

    /// The method of request `msg` (an empty [`Method::Other`] for a response).
    pub fn of(msg: &SipMessage) -> Method {
        Method::parse(msg.method().unwrap_or(""))
    }

    /// Whether a request of this method outside a dialog forms one, so
    /// the proxy records the route (RFC 3261 16.6 step 4, 12.1).
    pub fn forms_dialog(&self) -> bool {
        matches!(
            self,
            Method::Invite | Method::Subscribe | Method::Refer | Method::Notify
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of a server transaction (RFC 3261 17.2.3): what a request
/// retransmission, its ACK (for a non-2xx) or its CANCEL is matched by.
/// Its [`Display`](fmt::Display) form is stable: the core hashes it into
/// the To tag of its own answers and into the branch of forwarded requests.
/// The RFC 3261 form shares its strings (`Arc`): the transaction and its
/// table entry hold the same ones. Found without building one: see
/// [`ServerKeyRef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKey {
    /// RFC 3261 matching: the top Via's branch (with the magic cookie
    /// `z9hG4bK`), sent-by and the method (INVITE for ACK and CANCEL).
    Rfc3261 {
        /// The branch parameter.
        branch: Arc<str>,
        /// The sent-by host as written.
        host: Arc<str>,
        /// The sent-by port (5060 when absent).
        port: u16,
        /// The method of the transaction.
        method: Method,
    },
    /// RFC 2543 matching (RFC 3261 17.2.3, last paragraph) for a top Via
    /// without the magic cookie: Request-URI, Call-ID, From tag, CSeq
    /// number, branch (if any), sent-by and method.
    Rfc2543 {
        /// The Request-URI as written.
        request_uri: String,
        /// The Call-ID.
        call_id: String,
        /// The From tag (empty without one).
        from_tag: String,
        /// The CSeq number.
        cseq: u32,
        /// The branch parameter (empty without one).
        branch: String,
        /// The sent-by host as written.
        host: String,
        /// The sent-by port (5060 when absent).
        port: u16,
        /// The method of the transaction.
        method: Method,
    },
}

/// A [`ServerKey`] borrowed from a received request: what the server
/// transaction table is searched with (no allocation per request). It
/// hashes and compares like the [`ServerKey`] with the same fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKeyRef<'a> {
    /// [`ServerKey::Rfc3261`], borrowed.
    Rfc3261 {
        /// The branch parameter.
        branch: &'a str,
        /// The sent-by host as written.
        host: &'a str,
        /// The sent-by port (5060 when absent).
        port: u16,
        /// The method of the transaction.
        method: Method,
    },
    /// [`ServerKey::Rfc2543`], borrowed.
    Rfc2543 {
        /// The Request-URI as written.
        request_uri: &'a str,
        /// The Call-ID.
        call_id: &'a str,
        /// The From tag (empty without one).
        from_tag: &'a str,
        /// The CSeq number.
        cseq: u32,
        /// The branch parameter (empty without one).
        branch: &'a str,
        /// The sent-by host as written.
        host: &'a str,
        /// The sent-by port (5060 when absent).
        port: u16,
        /// The method of the transaction.
        method: Method,
    },
}

/// The fields of a server transaction key, whether owned or borrowed: what
/// keys hash and compare by.
#[derive(PartialEq, Eq, Hash)]
pub enum ServerKeyParts<'a> {
    /// See [`ServerKey::Rfc3261`].
    Rfc3261(&'a str, &'a str, u16, &'a Method),
    /// See [`ServerKey::Rfc2543`]: Request-URI, Call-ID, From tag, CSeq
    /// number, branch, host, port, method.
    Rfc2543(
        &'a str,
        &'a str,
        &'a str,
        u32,
        &'a str,
        &'a str,
        u16,
        &'a Method,
    ),
}

/// A server transaction key, owned or borrowed: the form the table is
/// searched by (`HashMap<ServerKey, _>::get` with a `&dyn ServerKeyView`).
pub trait ServerKeyView {
    /// The key's fields.
    fn parts(&self) -> ServerKeyParts<'_>;
}

impl ServerKeyView for ServerKey {
    fn parts(&self) -> ServerKeyParts<'_> {
        match self {
            ServerKey::Rfc3261 {
                branch,
                host,
                port,
                method,
            } => ServerKeyParts::Rfc3261(branch, host, *port, method),
            ServerKey::Rfc2543 {
                request_uri,
                call_id,
                from_tag,
                cseq,
                branch,
                host,
                port,
                method,
            } => ServerKeyParts::Rfc2543(
                request_uri,
                call_id,
                from_tag,
                *cseq,
                branch,
                host,
                *port,
                method,
            ),
        }
    }
}

impl ServerKeyView for ServerKeyRef<'_> {
    fn parts(&self) -> ServerKeyParts<'_> {
        match self {
            ServerKeyRef::Rfc3261 {
                branch,
                host,
                port,
                method,
            } => ServerKeyParts::Rfc3261(branch, host, *port, method),
            ServerKeyRef::Rfc2543 {
                request_uri,
                call_id,
                from_tag,
                cseq,
                branch,
                host,
                port,
                method,
            } => ServerKeyParts::Rfc2543(
                request_uri,
                call_id,
                from_tag,
                *cseq,
                branch,
                host,
                *port,
                method,
            ),
        }
    }
}

impl Hash for dyn ServerKeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn ServerKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn ServerKeyView + '_ {}

impl Hash for ServerKey {
    // the same as `dyn ServerKeyView`'s: the `Borrow` below requires it
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl<'a> Borrow<dyn ServerKeyView + 'a> for ServerKey {
    fn borrow(&self) -> &(dyn ServerKeyView + 'a) {
        self
    }
}

impl ServerKey {
    /// The key of the server transaction of method `method` that request
    /// `msg` belongs to; `None` without a top Via (or, for RFC 2543
    /// matching, without a CSeq).
    pub fn of(msg: &SipMessage, method: Method) -> Option<ServerKey> {
        ServerKeyRef::of(msg, method).map(|k| k.to_owned_key())
    }
}

impl<'a> ServerKeyRef<'a> {
    /// [`ServerKey::of`] borrowed from `msg`.
    pub fn of(msg: &'a SipMessage, method: Method) -> Option<ServerKeyRef<'a>> {
        let via = msg.top_via()?;
        let branch = via.branch().unwrap_or("");
        let port = via.port.unwrap_or(5060);
        if branch.starts_with("z9hG4bK") {
            Some(ServerKeyRef::Rfc3261 {
                branch,
                host: via.host,
                port,
                method,
            })
        } else {
            let (cseq, _) = msg.cseq()?;
            let from_tag = msg.from().and_then(|f| f.tag()).unwrap_or("");
            Some(ServerKeyRef::Rfc2543 {
                request_uri: msg.request_uri().unwrap_or(""),
                call_id: msg.call_id().unwrap_or(""),
                from_tag,
                cseq,
                branch,
                host: via.host,
                port,
                method,
            })
        }
    }

    /// The owned key with the same fields.
    pub fn to_owned_key(&self) -> ServerKey {
        match self {
            ServerKeyRef::Rfc3261 {
                branch,
                host,
                port,
                method,
            } => ServerKey::Rfc3261 {
                branch: Arc::from(*branch),
                host: Arc::from(*host),
                port: *port,
                method: method.clone(),
            },
            ServerKeyRef::Rfc2543 {
                request_uri,
                call_id,
                from_tag,
                cseq,
                branch,
                host,
                port,
                method,
            } => ServerKey::Rfc2543 {
                request_uri: request_uri.to_string(),
                call_id: call_id.to_string(),
                from_tag: from_tag.to_string(),
                cseq: *cseq,
                branch: branch.to_string(),
                host: host.to_string(),
                port: *port,
                method: method.clone(),
            },
        }
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            ServerKeyParts::Rfc3261(branch, host, port, method) => {
                write!(f, "{branch}|{host}:{port}|{method}")
            }
            ServerKeyParts::Rfc2543(
                request_uri,
                call_id,
                from_tag,
                cseq,
                branch,
                host,
                port,
                method,
            ) => write!(
                f,
                "2543|{request_uri}|{call_id}|{from_tag}|{cseq}|{branch}|{host}:{port}|{method}"
            ),
        }
    }
}

/// The key of a client transaction (RFC 3261 17.1.3): the branch of the
/// Via the proxy added and the CSeq method. The branch is shared (`Arc`)
/// by the transaction, its table entry and its Accepted INVITE record.
/// Found without building one: see [`ClientKeyRef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// The branch parameter of our Via.
    pub branch: Arc<str>,
    /// The method (of the request; of the CSeq in a response).
    pub method: Method,
}

/// A [`ClientKey`] borrowed from a received response: what the client
/// transaction table is searched with (no allocation per response). It
/// hashes and compares like the [`ClientKey`] with the same branch and
/// method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeyRef<'a> {
    /// The branch parameter of the response's top Via.
    pub branch: &'a str,
    /// The CSeq method.
    pub method: Method,
}

/// The parts of a client transaction key, whether owned or borrowed: the
/// form the tables are searched by (`HashMap<ClientKey, _>::get` with a
/// `&dyn ClientKeyView`).
pub trait ClientKeyView {
    /// The branch.
    fn branch(&self) -> &str;
    /// The method.
    fn method(&self) -> &Method;
}

impl ClientKeyView for ClientKey {
    fn branch(&self) -> &str {
        &self.branch
    }
    fn method(&self) -> &Method {
        &self.method
    }
}

impl ClientKeyView for ClientKeyRef<'_> {
    fn branch(&self) -> &str {
        self.branch
    }
    fn method(&self) -> &Method {
        &self.method
    }
}

impl Hash for dyn ClientKeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch().hash(state);
        self.method().hash(state);
    }
}

impl PartialEq for dyn ClientKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.branch() == other.branch() && self.method() == other.method()
    }
}

impl Eq for dyn ClientKeyView + '_ {}

impl Hash for ClientKey {
    // the same as `dyn ClientKeyView`'s: the `Borrow` below requires it
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn ClientKeyView).hash(state);
    }
}

impl<'a> Borrow<dyn ClientKeyView + 'a> for ClientKey {
    fn borrow(&self) -> &(dyn ClientKeyView + 'a) {
        self
    }
}

impl ClientKey {
    /// The client transaction key response `msg` matches: its top Via's
    /// branch and its CSeq method; `None` without a CSeq or a top Via.
    pub fn of_response(msg: &SipMessage) -> Option<ClientKey> {
        ClientKeyRef::of_response(msg).map(|k| k.to_owned_key())
    }
}

impl<'a> ClientKeyRef<'a> {
    /// [`ClientKey::of_response`] borrowed from `msg`.
    pub fn of_response(msg: &'a SipMessage) -> Option<ClientKeyRef<'a>> {
        let via = msg.top_via()?;
        let (_, method) = msg.cseq()?;
        Some(ClientKeyRef {
            branch: via.branch().unwrap_or(""),
            method: Method::parse(method),
        })
    }

    /// The owned key with the same branch and method.
    pub fn to_owned_key(&self) -> ClientKey {
        ClientKey {
            branch: Arc::from(self.branch),
            method: self.method.clone(),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.branch, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_7_1_methods_are_case_sensitive() {
        assert_eq!(Method::parse("INVITE"), Method::Invite);
        assert_eq!(Method::parse("invite"), Method::Other("invite".into()));
        for m in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "X-FOO", ""] {
            assert_eq!(Method::parse(m).as_str(), m);
        }
    }

    /// The Display forms are hashed into our To tags and branches: they
    /// must stay the strings the keys used to be.
    #[test]
    fn rfc3261_17_2_3_key_display_forms_are_stable() {
        let k = ServerKey::Rfc3261 {
            branch: "z9hG4bK1".into(),
            host: "10.0.0.20".into(),
            port: 5062,
            method: Method::Invite,
        };
        assert_eq!(k.to_string(), "z9hG4bK1|10.0.0.20:5062|INVITE");
        let k = ServerKey::Rfc2543 {
            request_uri: "sip:a@b".into(),
            call_id: "c1".into(),
            from_tag: "f".into(),
            cseq: 7,
            branch: String::new(),
            host: "h".into(),
            port: 5060,
            method: Method::Bye,
        };
        assert_eq!(k.to_string(), "2543|sip:a@b|c1|f|7||h:5060|BYE");
        let k = ClientKey {
            branch: "z9hG4bKsc1.2".into(),
            method: Method::Cancel,
        };
        assert_eq!(k.to_string(), "z9hG4bKsc1.2|CANCEL");
    }

    #[test]
    fn borrowed_keys_find_the_owned_ones() {
        let raw = |via: &str| {
            format!(
                "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\nFrom: <sip:a@h>;tag=f1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 3 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let limits = sipcti_wire::Limits::default();
        let mut servers: crate::HashMap<ServerKey, u32> = crate::HashMap::default();
        let mut msgs = Vec::new();
        for (i, via) in ["10.0.0.1:5062;branch=z9hG4bKa", "10.0.0.1;branch=old", "h2"]
            .into_iter()
            .enumerate()
        {
            let m = SipMessage::parse(raw(via).into_bytes(), &limits).expect("parses");
            let owned = ServerKey::of(&m, Method::Invite).expect("key");
            servers.insert(owned, i as u32);
            msgs.push(m);
        }
        for (i, m) in msgs.iter().enumerate() {
            let r = ServerKeyRef::of(m, Method::Invite).expect("key");
            assert_eq!(servers.get(&r as &dyn ServerKeyView), Some(&(i as u32)));
            let other = ServerKeyRef::of(m, Method::Bye).expect("key");
            assert_eq!(servers.get(&other as &dyn ServerKeyView), None);
        }
        let mut clients: crate::HashMap<ClientKey, u32> = crate::HashMap::default();
        clients.insert(
            ClientKey {
                branch: "z9hG4bKsc1.2".into(),
                method: Method::Invite,
            },
            1,
        );
        let r = ClientKeyRef {
            branch: "z9hG4bKsc1.2",
            method: Method::Invite,
        };
        assert_eq!(clients.get(&r as &dyn ClientKeyView), Some(&1));
        let r = ClientKeyRef {
            branch: "z9hG4bKsc1.2",
            method: Method::Cancel,
        };
        assert_eq!(clients.get(&r as &dyn ClientKeyView), None);
    }
}
