//! Messages the proxy builds itself: the CANCEL of a forwarded INVITE
//! (RFC 3261 9.1), the hop-by-hop ACK of a non-2xx final response
//! (17.1.1.3), the error response to a request the parser rejected (8.2.6,
//! [`salvage_error_response`]), and the hashes behind our branch and To
//! tag values (16.6 step 8 with the 16.3 step 4 loop-detection part, 8.2.6.2).
//! Responses to parsed requests are built by [`sipcti_wire::response_for`].

use std::net::SocketAddr;
use std::sync::Arc;

use sipcti_wire::SipMessage;

/// FNV-1a over `parts`, each followed by a 0xff separator: the stable
/// hash behind our To tags (`sc` + hex) and branches.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// [`fnv1a`] of one part written by its `Display` (`fnv1a(&[&x.to_string()])`),
/// hashed as it is formatted: no `String` is built. The reference
/// [`key_hash`] is tested against.
#[cfg(test)]
pub(crate) fn fnv1a_display(x: &impl std::fmt::Display) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn byte(&mut self, b: u8) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    impl std::fmt::Write for Fnv {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            s.bytes().for_each(|b| self.byte(b));
            Ok(())
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    let _ = std::fmt::Write::write_fmt(&mut h, format_args!("{x}"));
    // the separator fnv1a puts after each part
    h.byte(0xff);
    h.0
}

/// FNV-1a state fed part by part: [`Fnv::part`] hashes a part's bytes and
/// the 0xff separator [`fnv1a`] puts after each part, so
/// `Fnv::new().part(a).part(b).0 == fnv1a(&[a, b])`.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    /// The FNV-1a offset basis.
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `bytes` (no separator).
    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Fnv {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Hashes `s` (no separator).
    pub(crate) fn str(self, s: &str) -> Fnv {
        self.bytes(s.as_bytes())
    }

    /// Hashes `n` in decimal, as `{n}` writes it (no separator).
    pub(crate) fn decimal(self, n: u32) -> Fnv {
        let mut buf = [0u8; 10];
        self.bytes(decimal(n, &mut buf))
    }

    /// Hashes `s` and the part separator.
    pub(crate) fn part(self, s: &str) -> Fnv {
        self.str(s).bytes(&[0xff])
    }
}

/// `n` in decimal (as `{n}` writes it), into `buf`; returns the digits.
pub(crate) fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

/// `v` as 16 lowercase hex digits (`{v:016x}`), into `buf`.
pub(crate) fn hex16(v: u64, buf: &mut [u8; 16]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    // only ASCII hex digits were written
    std::str::from_utf8(buf).unwrap_or("")
}

/// Appends `v` in lowercase hex without leading zeros (`{v:x}`) to `out`.
pub(crate) fn push_hex(out: &mut String, v: u64) {
    let mut buf = [0u8; 16];
    let all = hex16(v, &mut buf);
    let digits = all.trim_start_matches('0');
    out.push_str(if digits.is_empty() { "0" } else { digits });
}

/// [`fnv1a_display`] of server transaction key `key` (the hash behind the
/// To tag of our answers and the second part of our branch), hashed from
/// the key's fields without the formatting machinery.
pub(crate) fn key_hash(key: &crate::ids::ServerKey) -> u64 {
    use crate::ids::{ServerKeyParts as P, ServerKeyView as _};
    let h = match key.parts() {
        P::Rfc3261(branch, host, port, method) => Fnv::new()
            .str(branch)
            .str("|")
            .str(host)
            .str(":")
            .decimal(u32::from(port))
            .str("|")
            .str(method.as_str()),
        P::Rfc2543(request_uri, call_id, from_tag, cseq, branch, host, port, method) => Fnv::new()
            .str("2543|")
            .str(request_uri)
            .str("|")
            .str(call_id)
            .str("|")
            .str(from_tag)
            .str("|")
            .decimal(cseq)
            .str("|")
            .str(branch)
            .str("|")
            .str(host)
            .str(":")
            .decimal(u32::from(port))
            .str("|")
            .str(method.as_str()),
    };
    h.bytes(&[0xff]).0
}

/// The prefix of every branch the proxy puts in its Via (RFC 3261 8.1.1.7
/// magic cookie, then `sc`), followed by the [`loop_hash`] in hex.
pub(crate) const BRANCH_PREFIX: &str = "z9hG4bKsc";

/// Our branch: [`BRANCH_PREFIX`], the loop hash and `tx` as 16 hex digits
/// each, joined by a dot (`z9hG4bKsc{loop:016x}.{tx:016x}`); one
/// allocation, shared by the client transaction and its key.
pub(crate) fn branch_of(loop_hash: u64, tx: u64) -> Arc<str> {
    let mut buf = [0u8; BRANCH_LEN];
    Arc::from(branch_in(loop_hash, tx, &mut buf))
}

/// The length of [`branch_of`]'s value.
pub(crate) const BRANCH_LEN: usize = BRANCH_PREFIX.len() + 33;

/// [`branch_of`] written into `buf` (no allocation: an ACK's branch is
/// written into its Via and forgotten).
pub(crate) fn branch_in(loop_hash: u64, tx: u64, buf: &mut [u8; BRANCH_LEN]) -> &str {
    let (prefix, rest) = buf.split_at_mut(BRANCH_PREFIX.len());
    prefix.copy_from_slice(BRANCH_PREFIX.as_bytes());
    let (a, rest) = rest.split_at_mut(16);
    let mut hex = [0u8; 16];
    a.copy_from_slice(hex16(loop_hash, &mut hex).as_bytes());
    let (dot, b) = rest.split_at_mut(1);
    dot[0] = b'.';
    b.copy_from_slice(hex16(tx, &mut hex).as_bytes());
    // only ASCII was written
    std::str::from_utf8(buf).unwrap_or("")
}

/// RFC 3261 16.3 step 4 / 16.6 step 8: the hash of the fields that
/// identify a request for loop detection (Request-URI, From tag, To tag,
/// Call-ID, CSeq number). Written as 16 hex digits, it is the first part of
/// the branch of every request we forward, so a request that comes back
/// through us with the same fields is a loop.
pub(crate) fn loop_hash(msg: &SipMessage) -> u64 {
    let ftag = msg.from().and_then(|f| f.tag());
    let ttag = msg.to().and_then(|f| f.tag());
    loop_hash_of(msg, ftag, ttag)
}

/// [`loop_hash`] of `msg` whose From tag `ftag` and To tag `ttag` were
/// already read (`None` when absent): the request pipeline parses From and
/// To once for this, the 16.3 checks and the live-call test.
pub(crate) fn loop_hash_of(msg: &SipMessage, ftag: Option<&str>, ttag: Option<&str>) -> u64 {
    let ftag = ftag.unwrap_or("");
    let ttag = ttag.unwrap_or("");
    let h = Fnv::new()
        .part(msg.request_uri().unwrap_or(""))
        .part(ftag)
        .part(ttag)
        .part(msg.call_id().unwrap_or(""));
    match msg.cseq() {
        Some((n, _)) => h.decimal(n).bytes(&[0xff]).0,
        None => h.part("").0,
    }
}

/// Whether validated message `msg` has a second Via value (RFC 3261 16.7
/// step 3: a response that would keep a Via after ours is popped).
///
/// Equal to `msg.via_iter().nth(1).is_some()` for a message that passed
/// [`SipMessage::validate`] (every Via value parses there, so counting the
/// values is enough; and no Via line is empty, so two lines are two values),
/// without parsing or splitting the values: the check runs for every response.
pub(crate) fn has_second_via(msg: &SipMessage) -> bool {
    let mut lines = msg.header_lines("Via");
    let second = lines.next().is_some()
        && (lines.next().is_some() || msg.header_values_iter("Via").nth(1).is_some());
    debug_assert_eq!(second, msg.via_iter().nth(1).is_some(), "not validated");
    second
}

/// Build an error response for a request that [`SipMessage::parse`]
/// rejected, from the Via, From, To, Call-ID and CSeq lines found by a
/// plain line scan (RFC 3261 8.2.6). `None` for responses, ACKs, and when a
/// needed header is missing: then nothing can be answered.
///
/// Takes the received bytes (at most the first 64 KiB are looked at), the
/// source address, the status and reason; returns the response bytes. Every
/// Via line is copied in order; of From, To, Call-ID and CSeq the first line.
/// The top Via gets `received` and the filled `rport` (RFC 3581) when it
/// asked for rport, as every response the proxy builds does. The To gets a
/// tag (RFC 3261 8.2.6.2) unless it has one, `sc` + a hash of Call-ID and
/// status as for the core's other stateless answers, and is rebuilt
/// well-formed by [`sipcti_wire::to_with_tag`] when it is broken (an
/// unclosed quote keeps only its last `<URI>`, so the tag never lands inside
/// the quote). Never panics.
pub fn salvage_error_response(
    data: &[u8],
    source: SocketAddr,
    status: u16,
    reason: &str,
) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data.get(..data.len().min(65_536))?);
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") {
        return None;
    }
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if !start.contains("SIP/") || start.starts_with("ACK ") {
        return None;
    }
    let names = ["Via", "From", "To", "Call-ID", "CSeq"];
    let mut vias: Vec<String> = Vec::new();
    let mut first: [Option<String>; 5] = Default::default();
    for line in lines.take(256) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let canon = sipcti_wire::canonical_name(name.trim());
        let Some(i) = names.iter().position(|n| canon.eq_ignore_ascii_case(n)) else {
            continue;
        };
        let value = value.trim().replace(['\r', '\n'], " ");
        if i == 0 {
            vias.push(value);
        } else if first[i].is_none() {
            first[i] = Some(value);
        }
    }
    let [_, Some(from), Some(to), Some(call_id), Some(cseq)] = first else {
        return None;
    };
    if vias.is_empty() || cseq.ends_with("ACK") {
        return None;
    }
    if let Some(top) = vias.first_mut() {
        if let Some(at) = top.find(";rport") {
            let rest = &top[at + 6..];
            if !rest.starts_with('=') {
                *top = format!(
                    "{};rport={};received={}{}",
                    &top[..at],
                    source.port(),
                    source.ip(),
                    rest
                );
            }
        }
    }
    let tag = format!("sc{:x}", fnv1a(&[&call_id, &status.to_string()]));
    let to = sipcti_wire::to_with_tag(&to, &tag);
    let mut out = format!("SIP/2.0 {status} {}\r\n", reason.replace(['\r', '\n'], " "));
    for via in &vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for (name, value) in [
        ("From", &from),
        ("To", &to),
        ("Call-ID", &call_id),
        ("CSeq", &cseq),
    ] {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

fn header_lines_of(req: &SipMessage, name: &str) -> Vec<String> {
    req.header_lines(name)
        .map(|h| format!("{}: {}\r\n", sipcti_wire::canonical_name(h.name), h.value))
        .collect()
}

/// RFC 3261 9.1: a CANCEL for a forwarded INVITE: same Request-URI,
/// Call-ID, To, From, CSeq number, our Via only, the same Route.
pub fn build_cancel(invite: &SipMessage) -> Vec<u8> {
    build_cancel_with_reason(invite, None)
}

/// [`build_cancel`] with an RFC 3326 `Reason` header value, e.g.
/// `SIP;cause=200;text="Call completed elsewhere"` for the other branches
/// of a ring group one branch answered.
pub fn build_cancel_with_reason(invite: &SipMessage, reason: Option<&str>) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!(
        "CANCEL {} SIP/2.0\r\n",
        invite.request_uri().unwrap_or("")
    ));
    if let Some(v) = invite.header_values("Via").first() {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for r in header_lines_of(invite, "Route") {
        out.push_str(&r);
    }
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    out.push_str(&format!("CSeq: {n} CANCEL\r\nMax-Forwards: 70\r\n"));
    if let Some(r) = reason {
        out.push_str(&format!("Reason: {}\r\n", r.replace(['\r', '\n'], " ")));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// RFC 3261 17.1.1.3: the ACK for a non-2xx final response, sent hop by
/// hop by the proxy's client transaction.
pub fn build_ack(invite: &SipMessage, resp: &SipMessage) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!(
        "ACK {} SIP/2.0\r\n",
        invite.request_uri().unwrap_or("")
    ));
    if let Some(v) = invite.header_values("Via").first() {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for r in header_lines_of(invite, "Route") {
        out.push_str(&r);
    }
    if let Some(v) = invite.header("From") {
        out.push_str(&format!("From: {v}\r\n"));
    }
    if let Some(v) = resp.header("To") {
        out.push_str(&format!("To: {v}\r\n"));
    }
    if let Some(v) = invite.header("Call-ID") {
        out.push_str(&format!("Call-ID: {v}\r\n"));
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(1);
    out.push_str(&format!(
        "CSeq: {n} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    out.into_bytes()
}

#[cfg(test)]
mod fnv_tests {
    #[test]
    fn fnv1a_display_is_fnv1a_of_the_string() {
        for s in ["", "a", "z9hG4bK-1 INVITE 10.0.0.1:5060", "é"] {
            assert_eq!(super::fnv1a_display(&s), super::fnv1a(&[s]));
        }
    }

    #[test]
    fn hex_and_decimal_match_format() {
        for v in [0u64, 1, 0xf, 0x10, 0xdead_beef, u64::MAX, 1 << 63] {
            let mut buf = [0u8; 16];
            assert_eq!(super::hex16(v, &mut buf), format!("{v:016x}"));
            let mut s = String::new();
            super::push_hex(&mut s, v);
            assert_eq!(s, format!("{v:x}"));
        }
        for n in [0u32, 7, 10, 5060, 65535, u32::MAX] {
            let mut buf = [0u8; 10];
            assert_eq!(super::decimal(n, &mut buf), n.to_string().as_bytes());
        }
        assert_eq!(
            &*super::branch_of(0x12, u64::MAX),
            format!("z9hG4bKsc{:016x}.{:016x}", 0x12, u64::MAX)
        );
    }

    #[test]
    fn key_hash_is_fnv1a_of_the_display_form() {
        use crate::ids::{Method, ServerKey};
        let keys = [
            ServerKey::Rfc3261 {
                branch: "z9hG4bK1".into(),
                host: "10.0.0.20".into(),
                port: 5062,
                method: Method::Invite,
            },
            ServerKey::Rfc2543 {
                request_uri: "sip:a@b".into(),
                call_id: "c1".into(),
                from_tag: "f".into(),
                cseq: 7,
                branch: String::new(),
                host: "h".into(),
                port: 5060,
                method: Method::Other("FOO".into()),
            },
        ];
        for k in keys {
            assert_eq!(super::key_hash(&k), super::fnv1a_display(&k));
        }
    }

    #[test]
    fn loop_hash_is_fnv1a_of_the_fields() {
        let raw = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=ft\r\nTo: <sip:bob@example.com>\r\nCall-ID: cid\r\nCSeq: 42 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let msg = sipcti_wire::SipMessage::parse(
            bytes::Bytes::from(raw),
            &sipcti_wire::Limits::default(),
        )
        .expect("parses");
        assert_eq!(
            super::loop_hash(&msg),
            super::fnv1a(&["sip:bob@example.com", "ft", "", "cid", "42"])
        );
    }
}
