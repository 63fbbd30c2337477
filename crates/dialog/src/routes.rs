//! Inbound routes (`[[routes]]`) and the phonebook (`[phonebook]`): which
//! inside target a call from the trunk goes to, by its dialled number, and
//! which person a number or extension names for Zammad's `user`.
//!
//! The matching here is the one the proxy core routes by and the one the call
//! tracker reports `queue` and `user` by, so the two never disagree. It is a
//! pure function of the configuration and the number.

use std::collections::BTreeMap;

use crate::normalize_number;
use crate::view::{uri_user_host, MsgView};

/// Most routes a configuration may hold (matching is a linear scan).
pub const MAX_ROUTES: usize = 1000;
/// Most phonebook entries a configuration may hold.
pub const MAX_PHONEBOOK: usize = 100_000;
/// Zammad keeps at most this many characters of `queue` (it cuts the rest silently).
pub const MAX_QUEUE_LEN: usize = 250;

/// The dialled-number pattern of a route: a normalised number, or a prefix
/// (written with a trailing `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberPattern {
    /// The dialled number must equal this (normalised) number.
    Exact(String),
    /// The dialled number must start with this (normalised) prefix.
    Prefix(String),
}

impl NumberPattern {
    /// Parses a route's `number` as written: digits with the separators and
    /// prefixes [`normalize_number`] accepts (`+49 30 123`, `030123`), a
    /// trailing `*` for a prefix. The number is normalised with
    /// `country_code` and `max_internal_len` exactly as the tracker
    /// normalises `to`.
    ///
    /// Errors (a plain reason, the caller names the key): empty, or not a
    /// number once normalised.
    pub fn parse(
        raw: &str,
        country_code: Option<&str>,
        max_internal_len: usize,
    ) -> Result<NumberPattern, &'static str> {
        let t = raw.trim();
        let (body, prefix) = match t.strip_suffix('*') {
            Some(b) => (b, true),
            None => (t, false),
        };
        let n = normalize_number(body, country_code, max_internal_len);
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "must be a number (digits, optionally +, separators, a trailing * for a prefix)",
            );
        }
        Ok(if prefix {
            NumberPattern::Prefix(n)
        } else {
            NumberPattern::Exact(n)
        })
    }

    /// Whether the normalised dialled number `n` matches.
    pub fn matches(&self, n: &str) -> bool {
        match self {
            NumberPattern::Exact(e) => e == n,
            NumberPattern::Prefix(p) => n.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for NumberPattern {
    /// The normalised form, a prefix with its trailing `*`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberPattern::Exact(e) => f.write_str(e),
            NumberPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// One inbound route: calls from the trunk whose dialled number matches go to
/// `target` instead of `inside.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRoute {
    /// The dialled numbers this route takes.
    pub number: NumberPattern,
    /// The one target, a SIP URI (`sip:user@host[:port][;transport=udp|tcp]`):
    /// the forwarded request's Request-URI and, by its host, port and
    /// transport, its next hop.
    pub target: String,
    /// The target URI's user, normalised (`201`): the phonebook key of the
    /// called person, and who answered when the answer names nobody else.
    pub target_user: Option<String>,
    /// Zammad's `queue` on this route's `newCall` (at most [`MAX_QUEUE_LEN`]
    /// characters; the configuration checks it).
    pub queue: Option<String>,
    /// Every target of the route in order, the first being `target`: one
    /// for a plain route, two or more ([`MAX_GROUP`] at most) for a ring
    /// group, which an INVITE is forked to in parallel (RFC 3261 16.7).
    pub targets: Vec<RouteTarget>,
}

/// Most targets a ring group may hold (one branch each).
pub const MAX_GROUP: usize = 16;

/// One target of a route: its URI (or the name of a phone registered
/// through sipcti) and its user, normalised (the phonebook key of the
/// person it rings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// The SIP URI (`sip:user@host[:port][;transport=udp|tcp]`), or, for a
    /// registered phone, the AOR user it registered with (`alice`, `202`).
    pub uri: String,
    /// The URI's user (or the registered name), normalised.
    pub user: Option<String>,
    /// Whether `uri` names a phone registered through sipcti rather than a
    /// SIP URI: the proxy core rings every binding of that AOR user, and
    /// answers 480 when there is none.
    pub registered: bool,
}

impl InboundRoute {
    /// A route to `target`; `target_user` is taken from the URI and
    /// normalised like every number.
    pub fn new(
        number: NumberPattern,
        target: &str,
        queue: Option<String>,
        country_code: Option<&str>,
        max_internal_len: usize,
    ) -> InboundRoute {
        InboundRoute::group(number, &[target], queue, country_code, max_internal_len)
    }

    /// A route to every URI of `targets` (a ring group when there are two
    /// or more; a target that is not a `sip:` URI names a phone registered
    /// through sipcti; the caller keeps it within [`MAX_GROUP`]). `targets` must
    /// not be empty: an empty list gives a route to the empty URI, which
    /// routes nowhere.
    pub fn group(
        number: NumberPattern,
        targets: &[&str],
        queue: Option<String>,
        country_code: Option<&str>,
        max_internal_len: usize,
    ) -> InboundRoute {
        let targets: Vec<RouteTarget> = targets
            .iter()
            .map(|t| {
                let registered = !t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:"));
                let user = if registered {
                    Some(t.trim().to_string())
                } else {
                    uri_user_host(t).0
                };
                RouteTarget {
                    uri: t.trim().to_string(),
                    user: user.map(|u| normalize_number(&u, country_code, max_internal_len)),
                    registered,
                }
            })
            .collect();
        let first = targets.first();
        InboundRoute {
            number,
            target: first.map(|t| t.uri.clone()).unwrap_or_default(),
            target_user: first.and_then(|t| t.user.clone()),
            queue,
            targets,
        }
    }

    /// Whether calls on this route ring a group (two or more targets).
    pub fn is_group(&self) -> bool {
        self.targets.len() > 1
    }
}

/// The first route of `routes` whose number matches the normalised dialled
/// number `dialled` (first match wins); `None` when none does (the call goes
/// to `inside.target`).
pub fn match_route<'a>(routes: &'a [InboundRoute], dialled: &str) -> Option<&'a InboundRoute> {
    if dialled.is_empty() {
        return None;
    }
    routes.iter().find(|r| r.number.matches(dialled))
}

/// The dialled number of an initial request, as Zammad's `to`: the
/// Request-URI user, else the To user, normalised; empty when neither has one.
pub fn dialled_number(v: &MsgView, country_code: Option<&str>, max_internal_len: usize) -> String {
    dialled(
        v.ruri_user.as_deref(),
        v.to.user(),
        country_code,
        max_internal_len,
    )
}

/// [`dialled_number`] of a Request-URI user and a To user (non-empty).
pub(crate) fn dialled(
    ruri_user: Option<&str>,
    to_user: Option<&str>,
    country_code: Option<&str>,
    max_internal_len: usize,
) -> String {
    ruri_user
        .filter(|u| !u.is_empty())
        .or(to_user)
        .map(|u| normalize_number(u, country_code, max_internal_len))
        .unwrap_or_default()
}

/// The phonebook: a normalised number or extension to the person's name.
pub type Phonebook = BTreeMap<String, String>;
