//! Registration through sipcti (RFC 3261 10, RFC 3327 Path): phones on the
//! inside register with the trunk's registrar through the proxy, and the
//! requests the registrar's side sends them come back through it.
//!
//! * A REGISTER from the inside goes to the trunk like any request
//!   (16.6). On the way the proxy makes the registrar's binding point at
//!   itself, in one of two ways ([`RegistrationMode`]):
//!   - `Contact`: every Contact value's URI is replaced by
//!     `sip:<key>@<sipcti's trunk face>` ([`BindingKey`], opaque); header
//!     parameters (`expires`, `q`, `+sip.instance`) stay;
//!   - `Path` (RFC 3327): a `Path: <sip:<key>@<sipcti>;lr>` is added and
//!     the Contact stays the phone's; the registrar keeps the Path as the
//!     route set of requests for the binding (RFC 3327 5.3).
//! * Challenges (401/407) and every other non-2xx go back untouched.
//! * The 2xx lists the AOR's bindings with their granted expiry (RFC 3261
//!   10.3 step 8). For each Contact the phone registered, the proxy keeps a
//!   [`Binding`]: the phone's own Contact, the flow it registered over
//!   (source address after `received`/`rport`, transport; over TCP the
//!   connection), and the expiry the registrar granted. A contact the 2xx
//!   no longer lists (`Expires: 0`, `Contact: *`) is removed. In `Contact`
//!   mode the 2xx goes back with the phone's own Contact URIs restored.
//! * A request from the trunk whose Request-URI (`Contact` mode) or our
//!   Route (`Path` mode) carries a key goes to the binding's flow, with
//!   the phone's Contact as Request-URI (`Contact` mode). A key with no
//!   binding (expired, removed) gets `480 Temporarily Unavailable` once
//!   the call tracker has seen the call: Zammad gets `newCall` and a
//!   `hangup` with cause `notFound`.
//! * A binding lives until its expiry ([`ProxyCore::handle_timeout`]).
//!   Every change is also an [`crate::Output::Binding`], so the edge keeps
//!   a durable copy and gives it back with [`ProxyCore::restore_binding`]
//!   after a restart.
//! * The table is bounded ([`RegistrationConfig::max_bindings`]): a
//!   REGISTER that would add bindings to a full table gets `503` before it
//!   is forwarded.

use std::collections::BTreeSet;

use crate::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipcti_dialog::Side;
use sipcti_wire::{with_uri, NameAddr, SipMessage, TransportKind, Uri};

use crate::fork::ForkTarget;
use crate::ids::ServerTxId;
use crate::messages::fnv1a;
use crate::output::{log_sample, Output};
use crate::proxy::ProxyCore;
use crate::routing::{NextHop, Target};

/// How the registrar's binding is made to point at sipcti.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// Replace the phone's Contact with a sipcti URI carrying an opaque key
    /// (works with any registrar).
    #[default]
    Contact,
    /// Add a Path header naming sipcti (RFC 3327); the registrar must
    /// support Path.
    Path,
}

/// Settings of registration through sipcti (`[registration]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Contact rewrite or Path.
    pub mode: RegistrationMode,
    /// Most bindings held at once; a REGISTER that would add more gets 503.
    pub max_bindings: usize,
    /// Expiry assumed when a 2xx names none for a contact (RFC 3261 10.2.1.1
    /// suggests 3600 s).
    pub default_expires: Duration,
}

impl Default for RegistrationConfig {
    /// Contact mode, 10,000 bindings, 3600 s.
    fn default() -> Self {
        RegistrationConfig {
            mode: RegistrationMode::Contact,
            max_bindings: 10_000,
            default_expires: Duration::from_secs(3600),
        }
    }
}

/// The opaque key of one binding: `rb` and 16 hex digits in the user part
/// of the URI the registrar keeps (`sip:rb0123456789abcdef@sipcti`). It is
/// a hash of the AOR and the phone's Contact (or flow, for Path), so a
/// refreshing REGISTER keeps the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingKey(pub u64);

impl BindingKey {
    /// The key written in `user`, if `user` is one (`rb` + 16 lowercase or
    /// uppercase hex digits).
    pub fn parse(user: &str) -> Option<BindingKey> {
        let hex = user.strip_prefix("rb")?;
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(hex, 16).ok().map(BindingKey)
    }
}

impl std::fmt::Display for BindingKey {
    /// `rb` and 16 lowercase hex digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rb{:016x}", self.0)
    }
}

/// Where a phone registered from: requests for it go back this way (over
/// TCP, the same connection; RFC 5626's flow, without its tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The source address of the REGISTER (after `received`/`rport`).
    pub source: SocketAddr,
    /// UDP or TCP.
    pub transport: TransportKind,
}

/// One registered contact of a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Its key.
    pub key: BindingKey,
    /// The address of record (the REGISTER's To URI).
    pub aor: String,
    /// The AOR's user (`201`): route targets name registered phones by it.
    pub user: String,
    /// The phone's own Contact URI (without header parameters).
    pub contact: String,
    /// Where it registered from.
    pub flow: Flow,
    /// Registered with Path rather than a Contact rewrite.
    pub path: bool,
    /// When the registrar's binding ends.
    pub expires: Instant,
}

/// A change of the binding table, for the edge's durable copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingUpdate {
    /// Added or refreshed.
    Upsert(Binding),
    /// Expired or removed.
    Remove(BindingKey),
}

/// A REGISTER on its way to the registrar.
#[derive(Debug, Clone)]
pub(crate) struct PendingRegister {
    aor: String,
    user: String,
    flow: Flow,
    mode: RegistrationMode,
    /// (key, the phone's Contact URI) of each Contact value, in order.
    contacts: Vec<(BindingKey, String)>,
    /// `Contact: *` (remove every binding of the AOR).
    star: bool,
}

/// The binding table (bounded) and the REGISTERs in flight.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    by_key: HashMap<BindingKey, Binding>,
    by_user: HashMap<String, BTreeSet<BindingKey>>,
    expiry: BTreeSet<(Instant, BindingKey)>,
    pending: HashMap<ServerTxId, PendingRegister>,
}

impl Bindings {
    /// Bindings held.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The binding of `key`.
    pub(crate) fn get(&self, key: BindingKey) -> Option<&Binding> {
        self.by_key.get(&key)
    }

    /// Every binding of the AOR user `user`, by key order.
    pub(crate) fn of_user(&self, user: &str) -> Vec<&Binding> {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
            .collect()
    }

    fn insert(&mut self, b: Binding) {
        self.remove(b.key);
        self.expiry.insert((b.expires, b.key));
        self.by_user
            .entry(b.user.clone())
            .or_default()
            .insert(b.key);
        self.by_key.insert(b.key, b);
    }

    fn remove(&mut self, key: BindingKey) -> Option<Binding> {
        let b = self.by_key.remove(&key)?;
        self.expiry.remove(&(b.expires, key));
        if let Some(set) = self.by_user.get_mut(&b.user) {
            set.remove(&key);
            if set.is_empty() {
                self.by_user.remove(&b.user);
            }
        }
        Some(b)
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Remove the bindings expired at `now`; their keys.
    fn expire(&mut self, now: Instant) -> Vec<BindingKey> {
        let mut gone = Vec::new();
        while let Some(&(t, k)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.remove(k);
            gone.push(k);
        }
        gone
    }

    /// Forget the REGISTER of server transaction `sid` (gone without a 2xx).
    pub(crate) fn forget(&mut self, sid: ServerTxId) {
        self.pending.remove(&sid);
    }
}

/// The URI part of a Contact value (`<uri>` or a bare URI).
fn contact_uri(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    Some(na.uri.to_string())
}

/// The `expires` of Contact value `value`, else of the Expires header.
fn expires_of(value: &str, msg: &SipMessage) -> Option<u64> {
    let na = NameAddr::parse(value).ok()?;
    na.param("expires")
        .flatten()
        .and_then(|e| e.trim().parse().ok())
        .or_else(|| msg.header("Expires").and_then(|e| e.trim().parse().ok()))
}

impl ProxyCore {
    /// Bindings held now.
    pub fn bindings_len(&self) -> usize {
        self.bindings.len()
    }

    /// The bindings of AOR user `user` (`201`), by key order.
    pub fn bindings_of(&self, user: &str) -> Vec<&Binding> {
        self.bindings.of_user(user)
    }

    /// Put back a binding the edge kept (after a restart); one already
    /// expired at `now` or beyond [`RegistrationConfig::max_bindings`] is
    /// ignored. Emits no [`Output::Binding`].
    pub fn restore_binding(&mut self, now: Instant, b: Binding) {
        if b.expires <= now
            || (self.bindings.len() >= self.cfg.registration.max_bindings
                && self.bindings.get(b.key).is_none())
        {
            return;
        }
        self.bindings.insert(b);
    }

    /// Expire the bindings due at `now` (part of `handle_timeout`).
    pub(crate) fn expire_bindings(&mut self, now: Instant) {
        for k in self.bindings.expire(now) {
            tracing::debug!(key = %k, "binding expired");
            self.outputs
                .push_back(Output::Binding(BindingUpdate::Remove(k)));
        }
    }

    /// A REGISTER from the inside about to be forwarded by server
    /// transaction `sid`: note its contacts and flow. `Err(())` when it
    /// would add bindings to a full table (the caller answers 503).
    pub(crate) fn note_register(
        &mut self,
        sid: ServerTxId,
        req: &SipMessage,
        flow: Flow,
    ) -> Result<(), ()> {
        let Some(to) = req.to() else { return Ok(()) };
        let aor = to.uri.to_string();
        let user = Uri::parse(&aor)
            .ok()
            .and_then(|u| u.user.map(str::to_string))
            .unwrap_or_default();
        let mode = self.cfg.registration.mode;
        let mut contacts = Vec::new();
        let mut star = false;
        for v in req.header_values("Contact") {
            if v.trim() == "*" {
                star = true;
                continue;
            }
            let Some(uri) = contact_uri(v) else { continue };
            let key = BindingKey(fnv1a(&[&aor, &uri]));
            contacts.push((key, uri));
        }
        let new = contacts
            .iter()
            .filter(|(k, _)| self.bindings.get(*k).is_none())
            .count();
        if new > 0 && self.bindings.len() + new > self.cfg.registration.max_bindings {
            return Err(());
        }
        self.bindings.pending.insert(
            sid,
            PendingRegister {
                aor,
                user,
                flow,
                mode,
                contacts,
                star,
            },
        );
        Ok(())
    }

    /// RFC 3327 4 / sipcti's Contact rewrite: the edits that make the
    /// registrar's binding for server transaction `sid`'s REGISTER point
    /// at `face:port` over `transport`. No-op for a request not noted by
    /// [`ProxyCore::note_register`].
    pub(crate) fn register_edits(
        &self,
        sid: ServerTxId,
        req: &SipMessage,
        edit: &mut sipcti_wire::Edit<'_>,
        face: std::net::IpAddr,
        transport: TransportKind,
    ) {
        let Some(p) = self.bindings.pending.get(&sid) else {
            return;
        };
        let us = self.cfg.our_hostport(face, transport);
        match p.mode {
            RegistrationMode::Path => {
                if let Some((key, _)) = p.contacts.first() {
                    edit.insert_first("Path", &format!("<sip:{key}@{us};lr>"));
                }
            }
            RegistrationMode::Contact => {
                let ours = req.map_header_values("Contact", |v| {
                    let uri = contact_uri(v)?;
                    let (key, _) = p.contacts.iter().find(|(_, u)| *u == uri)?;
                    with_uri(v, &format!("sip:{key}@{us}"))
                });
                for (index, value) in ours {
                    edit.replace_value(index, &value);
                }
            }
        }
    }

    /// The 2xx (or other final) response `msg` to server transaction
    /// `sid`'s REGISTER: update the bindings from the Contact values it
    /// lists (RFC 3261 10.3 step 8), and return the response to send
    /// upstream instead of `msg` (`Contact` mode: the phone's own Contact
    /// URIs restored). `None`: send `msg` as it is.
    pub(crate) fn register_response(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        msg: &SipMessage,
        status: u16,
    ) -> Option<SipMessage> {
        if status < 200 {
            return None;
        }
        let p = self.bindings.pending.remove(&sid)?;
        if status >= 300 {
            return None;
        }
        // (key -> granted expiry in s) of our contacts the 2xx lists
        let mut granted: HashMap<BindingKey, u64> = HashMap::default();
        let cfg = &self.cfg;
        let restored = msg.map_header_values("Contact", |v| {
            let uri = contact_uri(v)?;
            let (key, phone_uri) = match p.mode {
                RegistrationMode::Contact => Uri::parse(&uri)
                    .ok()
                    .filter(|u| cfg.is_us(u.host, u.port))
                    .and_then(|u| u.user.and_then(BindingKey::parse))
                    .and_then(|k| p.contacts.iter().find(|(key, _)| *key == k)),
                RegistrationMode::Path => p.contacts.iter().find(|(_, u)| *u == uri),
            }?;
            let secs = expires_of(v, msg).unwrap_or(cfg.registration.default_expires.as_secs());
            granted.insert(*key, secs);
            // Contact mode: the phone gets its own Contact back
            (p.mode == RegistrationMode::Contact)
                .then(|| with_uri(v, phone_uri))
                .flatten()
        });
        if p.mode == RegistrationMode::Path && !granted.is_empty() && msg.header("Path").is_none() {
            self.stats.path_not_echoed += 1;
            if log_sample(self.stats.path_not_echoed) {
                // a registrar may keep the Path without echoing it (RFC 3327
                // 5.3 only asks for the echo when the UA supports path;
                // Kamailio's path_mode 0): worth a note, not a warning
                tracing::info!(
                    aor = %p.aor,
                    count = self.stats.path_not_echoed,
                    "registrar's 2xx has no Path: if calls for this phone bypass sipcti, the registrar ignores RFC 3327; use [registration] mode = \"contact\""
                );
            }
        }
        if p.star {
            let keys: Vec<BindingKey> = self
                .bindings
                .of_user(&p.user)
                .into_iter()
                .filter(|b| b.aor == p.aor)
                .map(|b| b.key)
                .collect();
            for k in keys {
                self.drop_binding(k, "Contact: * removed it");
            }
        }
        for (key, uri) in &p.contacts {
            match granted.get(key) {
                Some(&secs) if secs > 0 => {
                    let b = Binding {
                        key: *key,
                        aor: p.aor.clone(),
                        user: p.user.clone(),
                        contact: uri.clone(),
                        flow: p.flow,
                        path: p.mode == RegistrationMode::Path,
                        expires: now + Duration::from_secs(secs.min(u32::MAX as u64)),
                    };
                    let fresh = self.bindings.get(*key).is_none();
                    if fresh && self.bindings.len() >= self.cfg.registration.max_bindings {
                        self.stats.bindings_refused += 1;
                        continue;
                    }
                    tracing::debug!(%key, aor = %p.aor, secs, "binding stored");
                    self.bindings.insert(b.clone());
                    self.outputs
                        .push_back(Output::Binding(BindingUpdate::Upsert(b)));
                }
                _ => self.drop_binding(*key, "the registrar no longer lists it"),
            }
        }
        if restored.is_empty() {
            return None;
        }
        let mut edit = msg.edit();
        for (index, value) in restored {
            edit.replace_value(index, &value);
        }
        edit.finish_message(&self.cfg.limits).ok()
    }

    fn drop_binding(&mut self, key: BindingKey, why: &str) {
        if self.bindings.remove(key).is_some() {
            tracing::debug!(%key, why, "binding removed");
            self.outputs
                .push_back(Output::Binding(BindingUpdate::Remove(key)));
        }
    }

    /// For a request from the trunk: the hop to a registered phone when its
    /// Request-URI (`sip:<key>@sipcti`, Contact mode) or the first of our
    /// Route values (`<sip:<key>@sipcti;lr>`, Path mode) carries a binding
    /// key. `Some(Err(..))` for a key without a binding: the caller answers
    /// 480 once the call is tracked. `None`: not for a registered phone.
    pub(crate) fn binding_hop(
        &self,
        msg: &SipMessage,
        forms_dialog: bool,
    ) -> Option<Result<NextHop, (u16, &'static str)>> {
        let (key, in_ruri) = self.binding_key(msg)?;
        let Some(b) = self.bindings.get(key) else {
            return Some(Err((480, "Temporarily Unavailable")));
        };
        Some(Ok(NextHop {
            target: Target::Addr(b.flow.source),
            transport: b.flow.transport,
            // Contact mode: the Request-URI named us; the phone gets its own
            // Contact (RFC 3261 16.5 target). Path mode: it already is.
            ruri: in_ruri.then(|| b.contact.clone()),
            pop_routes: self.cfg.our_routes(msg).0,
            record_route: forms_dialog,
            fork: Vec::new(),
            answer: None,
        }))
    }

    /// The binding key `msg` carries: in the first Route value naming us
    /// (Path mode; `false`) or in its Request-URI naming us (Contact mode;
    /// `true`).
    fn binding_key(&self, msg: &SipMessage) -> Option<(BindingKey, bool)> {
        let from_route = msg.header_values("Route").first().and_then(|r| {
            let na = NameAddr::parse(r).ok()?;
            let u = na.parsed_uri().ok()?;
            if !self.cfg.is_us(u.host, u.port) {
                return None;
            }
            u.user.and_then(BindingKey::parse)
        });
        if let Some(k) = from_route {
            return Some((k, false));
        }
        let u = Uri::parse(msg.request_uri()?).ok()?;
        if !u.is_sip() || !self.cfg.is_us(u.host, u.port) {
            return None;
        }
        u.user.and_then(BindingKey::parse).map(|k| (k, true))
    }

    /// Whether `msg` is addressed to a binding key (`Some`), and then the
    /// AOR user (`201`) of its binding if it still exists: who answers a
    /// call to it. `None`: `msg` names no binding.
    pub(crate) fn binding_target(&self, msg: &SipMessage) -> Option<Option<String>> {
        let (key, _) = self.binding_key(msg)?;
        Some(self.bindings.get(key).map(|b| b.user.clone()))
    }

    /// The hop of a request that names a binding that no longer exists:
    /// answered `answer` (480) once tracked.
    pub(crate) fn unavailable_hop(&self, msg: &SipMessage, answer: (u16, &'static str)) -> NextHop {
        NextHop {
            target: self.cfg.inside_target.target.clone(),
            transport: self.cfg.inside_target.transport,
            ruri: None,
            pop_routes: self.cfg.our_routes(msg).0,
            record_route: false,
            fork: Vec::new(),
            answer: Some(answer),
        }
    }

    /// The targets a route's registered phone `user` stands for: one per
    /// binding, to its flow with its Contact as Request-URI (RFC 3261
    /// 16.5). Empty when the phone is not registered.
    pub(crate) fn registered_targets(&self, user: &str) -> Vec<ForkTarget> {
        self.bindings
            .of_user(user)
            .into_iter()
            .map(|b| ForkTarget {
                target: Target::Addr(b.flow.source),
                transport: b.flow.transport,
                ruri: b.contact.clone(),
                user: Some(user.to_string()),
            })
            .collect()
    }

    /// The flow a REGISTER from the inside came over (its responses' target).
    pub(crate) fn register_flow(&self, sid: ServerTxId) -> Option<Flow> {
        let stx = self.servers.get(&sid)?;
        if stx.side != Side::Inside {
            return None;
        }
        match stx.reply_to {
            Target::Addr(a) => Some(Flow {
                source: a,
                transport: stx.transport,
            }),
            Target::Name(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_rejects_others() {
        let k = BindingKey(0x0123_4567_89ab_cdef);
        assert_eq!(k.to_string(), "rb0123456789abcdef");
        assert_eq!(BindingKey::parse("rb0123456789abcdef"), Some(k));
        assert_eq!(BindingKey::parse("rb0123456789abcde"), None);
        assert_eq!(BindingKey::parse("201"), None);
        assert_eq!(BindingKey::parse("rbzz23456789abcdef"), None);
    }

    #[test]
    fn with_uri_keeps_display_and_params() {
        assert_eq!(
            with_uri(
                "\"A\" <sip:201@10.0.0.5:5060;ob>;expires=60",
                "sip:rb1@1.2.3.4"
            )
            .as_deref(),
            Some("\"A\" <sip:rb1@1.2.3.4>;expires=60")
        );
        assert_eq!(
            with_uri("sip:201@10.0.0.5;expires=60", "sip:x@y;transport=tcp").as_deref(),
            Some("<sip:x@y;transport=tcp>;expires=60")
        );
    }
}
