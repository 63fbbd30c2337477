//! Per-source admission of new work, in the spirit of Kamailio's `pike`
//! module (a per-address request rate) and an `htable` ban (a source over
//! its rate is refused for a while), plus a per-source share of the
//! transaction and call tables.
//!
//! The proxy core asks [`Admission::admit`] before it starts anything new
//! for a request that opens a transaction outside a dialog (an initial
//! request: no To tag, RFC 3261 12.1). In-dialog requests (To tag present:
//! BYE, re-INVITE, UPDATE, INFO...), ACK and CANCEL never come here: a call
//! that is already established must be able to end, whatever its source
//! does otherwise (issue 6). A refused request gets `503 Service
//! Unavailable` with `Retry-After` (RFC 3261 21.5.4, 20.33) from the core,
//! and never reaches the call tracker, so it causes no CTI event.
//!
//! Like the rest of the core this module is sans-IO: it never reads a
//! clock, time comes in as `now`. Every table is bounded: at most
//! [`AdmissionConfig::max_sources`] source entries and at most
//! [`AdmissionConfig::max_calls`] call entries.

use crate::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sipcti_dialog::Side;

use crate::output::log_sample;

/// One whole token, in the bucket's unit (nano-tokens): a bucket level is
/// kept as tokens × 10⁹ so that a refill of `elapsed_ns × rate_per_s` is
/// exact integer arithmetic (no drift on a virtual clock).
const TOKEN: u128 = 1_000_000_000;

/// The source table is swept for idle entries at most this often when it
/// is full, so that a flood of new addresses costs one O(n) pass per
/// interval, not one per request.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A source of requests: its IP address (the port is not part of it, so a
/// flooder cannot escape its bucket by changing ports). IPv4-mapped IPv6
/// addresses are the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address is its IPv4 address).
    pub fn new(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V6(v6) => SourceKey(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip)),
            v4 => SourceKey(v4),
        }
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A token bucket's parameters: `rate_per_s` tokens per second, at most
/// `burst` tokens saved up. One new transaction takes one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained new transactions per second; 0 turns the rate limit of
    /// this side off (the table shares still apply).
    pub per_s: u32,
    /// Bucket depth in transactions (at least 1 is used).
    pub burst: u32,
}

impl Rate {
    fn capacity(&self) -> u128 {
        u128::from(self.burst.max(1)) * TOKEN
    }
}

/// Settings of [`Admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Rate of one inside address (phone, PBX).
    pub inside: Rate,
    /// Rate of one trunk address.
    pub trunk: Rate,
    /// How long a source that emptied its bucket is refused (Kamailio
    /// htable ban). Zero: no ban, only the requests without a token are
    /// refused.
    pub ban: Duration,
    /// Most open server transactions of one source, each counted twice
    /// (it holds a client transaction for the forwarded request), so this
    /// compares with the global server + client table size.
    pub max_transactions_per_source: usize,
    /// Most open calls (newCall emitted, hangup not yet) started by
    /// initial INVITEs of one source.
    pub max_calls_per_source: usize,
    /// Most source entries kept. When full, idle entries are evicted; a
    /// new source that still finds no room is refused (conservative).
    pub max_sources: usize,
    /// Most calls whose source is remembered (the call tracker's table
    /// size); beyond, a call is not counted against its source.
    pub max_calls: usize,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The source emptied its token bucket: refused, and banned from now.
    Rate,
    /// The source is banned (it went over its rate within the ban time).
    Banned,
    /// The source holds its share of the transaction table.
    TransactionShare,
    /// The source holds its share of the call table.
    CallShare,
    /// The source table is full of active sources: a new one is refused.
    SourceTableFull,
}

impl Limit {
    /// A short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Limit::Rate => "rate",
            Limit::Banned => "banned",
            Limit::TransactionShare => "transaction-share",
            Limit::CallShare => "call-share",
            Limit::SourceTableFull => "source-table-full",
        }
    }
}

/// What the request starts if admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A transaction (REGISTER, OPTIONS, SUBSCRIBE, MESSAGE...).
    Transaction,
    /// A transaction and a call (an initial INVITE).
    Call,
}

/// The answer of [`Admission::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (one token was taken).
    Admit,
    /// Answer 503 with `Retry-After: retry_after_s`.
    Refuse {
        /// The limit.
        limit: Limit,
        /// Seconds the source should wait (ban time left, rounded up, at
        /// least 1).
        retry_after_s: u64,
    },
}

/// A source that was refused, for [`Admission::limited_sources`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedSource {
    /// The address.
    pub source: IpAddr,
    /// Inside or trunk.
    pub side: Side,
    /// Requests refused (while the entry was kept).
    pub refused: u64,
    /// The limit that refused the last one.
    pub last_limit: Limit,
    /// Whether the source is banned at the time asked.
    pub banned: bool,
}

/// Whether a source may start work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Admitted while it has tokens.
    Good,
    /// Refused until `until` (exclusive).
    Banned {
        /// End of the ban.
        until: Instant,
    },
}

/// A token bucket on the caller's clock, exact to the nanosecond.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    /// Level in nano-tokens ([`TOKEN`] = one request).
    level: u128,
    /// Instant of the last refill (never goes back).
    last: Instant,
}

impl TokenBucket {
    fn full(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            level: rate.capacity(),
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        if now <= self.last {
            return;
        }
        let dt = now.duration_since(self.last).as_nanos();
        self.level = self
            .level
            .saturating_add(dt.saturating_mul(u128::from(rate.per_s)))
            .min(rate.capacity());
        self.last = now;
    }

    fn take(&mut self) -> bool {
        if self.level >= TOKEN {
            self.level -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whole seconds until one token is there (at least 1).
    fn secs_to_token(&self, rate: Rate) -> u64 {
        if rate.per_s == 0 {
            return 1;
        }
        let missing = TOKEN.saturating_sub(self.level);
        let ns = missing.div_ceil(u128::from(rate.per_s));
        u64::try_from(ns.div_ceil(TOKEN)).unwrap_or(u64::MAX).max(1)
    }
}

/// One source's entry.
#[derive(Debug, Clone)]
struct Source {
    side: Side,
    bucket: TokenBucket,
    standing: Standing,
    /// Open server transactions.
    open_tx: usize,
    /// Open calls started by its initial INVITEs.
    open_calls: usize,
    refused: u64,
    last_limit: Option<Limit>,
}

impl Source {
    fn idle(&self, rate: Rate, now: Instant) -> bool {
        let mut b = self.bucket;
        b.refill(rate, now);
        let not_banned = match self.standing {
            Standing::Good => true,
            Standing::Banned { until } => now >= until,
        };
        not_banned && self.open_tx == 0 && self.open_calls == 0 && b.level >= rate.capacity()
    }
}

/// Counters of [`Admission`] (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Refused by [`Limit::Rate`] or [`Limit::Banned`].
    pub rate_limited: u64,
    /// Refused by [`Limit::TransactionShare`] or [`Limit::CallShare`].
    pub share_limited: u64,
    /// Refused by [`Limit::SourceTableFull`].
    pub source_table_full: u64,
    /// Bans started.
    pub bans: u64,
    /// Idle entries evicted to make room.
    pub evicted: u64,
}

/// The per-source limiter. See the module docs.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    sources: HashMap<SourceKey, Source>,
    /// Zammad callId of an open call -> the source of its initial INVITE.
    calls: HashMap<String, SourceKey>,
    last_sweep: Option<Instant>,
    stats: AdmissionStats,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(TOKEN).try_into().unwrap_or(u64::MAX)
}

impl Admission {
    /// Replace the limits (a reload): buckets and shares already held are
    /// kept and judged by the new limits from now on.
    pub fn set_config(&mut self, cfg: AdmissionConfig) {
        self.cfg = cfg;
    }

    /// An empty limiter.
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            sources: HashMap::default(),
            calls: HashMap::default(),
            last_sweep: None,
            stats: AdmissionStats::default(),
        }
    }

    fn rate(&self, side: Side) -> Rate {
        match side {
            Side::Inside => self.cfg.inside,
            Side::Trunk => self.cfg.trunk,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &AdmissionStats {
        &self.stats
    }

    /// Source entries kept.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Open server transactions counted for `ip`.
    pub fn open_transactions(&self, ip: IpAddr) -> usize {
        self.sources
            .get(&SourceKey::new(ip))
            .map_or(0, |s| s.open_tx)
    }

    /// Open calls counted for `ip`.
    pub fn open_calls(&self, ip: IpAddr) -> usize {
        self.sources
            .get(&SourceKey::new(ip))
            .map_or(0, |s| s.open_calls)
    }

    /// The `n` sources refused most often (most first, then by address),
    /// with whether each is banned at `now`.
    pub fn limited_sources(&self, now: Instant, n: usize) -> Vec<LimitedSource> {
        let mut v: Vec<LimitedSource> = self
            .sources
            .iter()
            .filter_map(|(k, s)| {
                Some(LimitedSource {
                    source: k.ip(),
                    side: s.side,
                    refused: s.refused,
                    last_limit: s.last_limit?,
                    banned: matches!(s.standing, Standing::Banned { until } if now < until),
                })
            })
            .collect();
        v.sort_by(|a, b| b.refused.cmp(&a.refused).then(a.source.cmp(&b.source)));
        v.truncate(n);
        v
    }

    /// Drop idle entries (full bucket, not banned, nothing open): first
    /// those never refused, then, if that made no room, the others.
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        let before = self.sources.len();
        let (inside, trunk) = (self.cfg.inside, self.cfg.trunk);
        let rate = |s: Side| match s {
            Side::Inside => inside,
            Side::Trunk => trunk,
        };
        self.sources
            .retain(|_, s| !(s.refused == 0 && s.idle(rate(s.side), now)));
        if self.sources.len() >= self.cfg.max_sources {
            self.sources.retain(|_, s| !s.idle(rate(s.side), now));
        }
        self.stats.evicted += (before - self.sources.len()) as u64;
    }

    /// The entry of `key`, made if there is room (after a sweep, at most
    /// once per [`SWEEP_INTERVAL`], when the table is full).
    fn entry(&mut self, key: SourceKey, side: Side, now: Instant) -> Option<&mut Source> {
        if !self.sources.contains_key(&key) {
            if self.sources.len() >= self.cfg.max_sources {
                let due = self
                    .last_sweep
                    .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_INTERVAL);
                if due {
                    self.sweep(now);
                }
                if self.sources.len() >= self.cfg.max_sources {
                    return None;
                }
            }
            let rate = self.rate(side);
            self.sources.insert(
                key,
                Source {
                    side,
                    bucket: TokenBucket::full(rate, now),
                    standing: Standing::Good,
                    open_tx: 0,
                    open_calls: 0,
                    refused: 0,
                    last_limit: None,
                },
            );
        }
        self.sources.get_mut(&key)
    }

    /// May `ip` (on `side`) start `start` at `now`? On [`Verdict::Admit`]
    /// one token was taken; the caller then reports the transaction it
    /// opens with [`Admission::open_transaction`].
    pub fn admit(&mut self, now: Instant, ip: IpAddr, side: Side, start: Start) -> Verdict {
        let key = SourceKey::new(ip);
        let rate = self.rate(side);
        let cfg = self.cfg.clone();
        let Some(src) = self.entry(key, side, now) else {
            self.stats.source_table_full += 1;
            if log_sample(self.stats.source_table_full) {
                tracing::warn!(
                    source = %key,
                    refused = self.stats.source_table_full,
                    "source table full of active sources: new source refused with 503"
                );
            }
            return Verdict::Refuse {
                limit: Limit::SourceTableFull,
                retry_after_s: 1,
            };
        };
        src.bucket.refill(rate, now);
        if let Standing::Banned { until } = src.standing {
            if now >= until {
                src.standing = Standing::Good;
            }
        }
        let share_retry = ceil_secs(cfg.ban).max(1);
        let mut new_ban = false;
        let refusal = match src.standing {
            Standing::Banned { until } => Some((Limit::Banned, ceil_secs(until - now).max(1))),
            Standing::Good => {
                if src.open_tx.saturating_mul(2) >= cfg.max_transactions_per_source {
                    Some((Limit::TransactionShare, share_retry))
                } else if start == Start::Call && src.open_calls >= cfg.max_calls_per_source {
                    Some((Limit::CallShare, share_retry))
                } else if rate.per_s == 0 || src.bucket.take() {
                    None
                } else if cfg.ban.is_zero() {
                    Some((Limit::Rate, src.bucket.secs_to_token(rate)))
                } else {
                    src.standing = Standing::Banned {
                        until: now + cfg.ban,
                    };
                    new_ban = true;
                    Some((Limit::Rate, ceil_secs(cfg.ban).max(1)))
                }
            }
        };
        let Some((limit, retry_after_s)) = refusal else {
            return Verdict::Admit;
        };
        src.refused += 1;
        src.last_limit = Some(limit);
        let n = src.refused;
        if new_ban {
            self.stats.bans += 1;
        }
        match limit {
            Limit::Rate | Limit::Banned => self.stats.rate_limited += 1,
            Limit::TransactionShare | Limit::CallShare => self.stats.share_limited += 1,
            Limit::SourceTableFull => self.stats.source_table_full += 1,
        }
        if log_sample(n) {
            tracing::warn!(
                source = %key,
                side = ?side,
                limit = limit.as_str(),
                refused = n,
                retry_after_s,
                "source over its limit: 503"
            );
        }
        Verdict::Refuse {
            limit,
            retry_after_s,
        }
    }

    /// A server transaction from `ip` was created. Returns the key to give
    /// to [`Admission::close_transaction`] when it is removed, or `None`
    /// when it is not counted (no room for the source's entry).
    pub fn open_transaction(&mut self, now: Instant, ip: IpAddr, side: Side) -> Option<SourceKey> {
        let key = SourceKey::new(ip);
        let src = self.entry(key, side, now)?;
        src.open_tx += 1;
        Some(key)
    }

    /// A server transaction counted by [`Admission::open_transaction`] is
    /// gone.
    pub fn close_transaction(&mut self, key: SourceKey) {
        if let Some(s) = self.sources.get_mut(&key) {
            s.open_tx = s.open_tx.saturating_sub(1);
        }
    }

    /// A call (Zammad `call_id`) was started by an initial INVITE from
    /// `ip`: it counts against the source until [`Admission::call_ended`].
    /// Not counted when the call table is full or the id is already known.
    pub fn call_started(&mut self, now: Instant, ip: IpAddr, side: Side, call_id: &str) {
        if self.calls.len() >= self.cfg.max_calls || self.calls.contains_key(call_id) {
            return;
        }
        let key = SourceKey::new(ip);
        if let Some(src) = self.entry(key, side, now) {
            src.open_calls += 1;
            self.calls.insert(call_id.to_string(), key);
        }
    }

    /// The call `call_id` was hung up.
    pub fn call_ended(&mut self, call_id: &str) {
        if let Some(key) = self.calls.remove(call_id) {
            if let Some(s) = self.sources.get_mut(&key) {
                s.open_calls = s.open_calls.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AdmissionConfig {
        AdmissionConfig {
            inside: Rate {
                per_s: 10,
                burst: 3,
            },
            trunk: Rate {
                per_s: 1000,
                burst: 2000,
            },
            ban: Duration::from_secs(5),
            max_transactions_per_source: 100,
            max_calls_per_source: 2,
            max_sources: 4,
            max_calls: 10,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const T: Start = Start::Transaction;

    fn refused(v: Verdict) -> Option<(Limit, u64)> {
        match v {
            Verdict::Admit => None,
            Verdict::Refuse {
                limit,
                retry_after_s,
            } => Some((limit, retry_after_s)),
        }
    }

    #[test]
    fn bucket_refills_exactly_on_a_virtual_clock() {
        let rate = Rate { per_s: 3, burst: 2 };
        let t0 = Instant::now();
        let mut b = TokenBucket::full(rate, t0);
        assert!(b.take() && b.take());
        assert!(!b.take(), "burst of 2");
        // 3/s: one token takes 333_333_333.33 ns
        b.refill(rate, t0 + Duration::from_nanos(333_333_333));
        assert!(!b.take(), "one nanosecond short of a token");
        b.refill(rate, t0 + Duration::from_nanos(333_333_334));
        assert!(b.take(), "a token after 1/3 s");
        assert!(!b.take());
        // capped at the burst
        b.refill(rate, t0 + Duration::from_secs(100));
        assert_eq!(b.level, 2 * TOKEN);
        // time never goes back
        b.refill(rate, t0);
        assert_eq!(b.level, 2 * TOKEN);
        assert_eq!(b.last, t0 + Duration::from_secs(100));
    }

    #[test]
    fn over_the_burst_bans_until_the_ban_ends() {
        let mut a = Admission::new(cfg());
        let t0 = Instant::now();
        let flood = ip("10.0.0.9");
        for _ in 0..3 {
            assert_eq!(a.admit(t0, flood, Side::Inside, T), Verdict::Admit);
        }
        assert_eq!(
            refused(a.admit(t0, flood, Side::Inside, T)),
            Some((Limit::Rate, 5))
        );
        // banned although the bucket refilled; Retry-After is the ban left, rounded up
        let t = t0 + Duration::from_millis(1_500);
        assert_eq!(
            refused(a.admit(t, flood, Side::Inside, T)),
            Some((Limit::Banned, 4))
        );
        let t = t0 + Duration::from_millis(4_999);
        assert_eq!(
            refused(a.admit(t, flood, Side::Inside, T)),
            Some((Limit::Banned, 1))
        );
        // another source is not affected
        assert_eq!(a.admit(t, ip("10.0.0.8"), Side::Inside, T), Verdict::Admit);
        // the ban ends at t0 + 5 s; the bucket is full again
        let t = t0 + Duration::from_secs(5);
        for _ in 0..3 {
            assert_eq!(a.admit(t, flood, Side::Inside, T), Verdict::Admit);
        }
        assert_eq!(
            refused(a.admit(t, flood, Side::Inside, T)),
            Some((Limit::Rate, 5))
        );
        assert_eq!(
            a.stats(),
            &AdmissionStats {
                rate_limited: 4,
                bans: 2,
                ..Default::default()
            }
        );
        let top = a.limited_sources(t, 10);
        assert_eq!(
            top,
            vec![LimitedSource {
                source: flood,
                side: Side::Inside,
                refused: 4,
                last_limit: Limit::Rate,
                banned: true,
            }]
        );
    }

    #[test]
    fn without_a_ban_only_requests_without_a_token_are_refused() {
        let mut c = cfg();
        c.ban = Duration::ZERO;
        let mut a = Admission::new(c);
        let t0 = Instant::now();
        let p = ip("10.0.0.9");
        for _ in 0..3 {
            assert_eq!(a.admit(t0, p, Side::Inside, T), Verdict::Admit);
        }
        assert_eq!(
            refused(a.admit(t0, p, Side::Inside, T)),
            Some((Limit::Rate, 1))
        );
        // 10/s: a token every 100 ms
        let t = t0 + Duration::from_millis(100);
        assert_eq!(a.admit(t, p, Side::Inside, T), Verdict::Admit);
        assert_eq!(a.stats().bans, 0);
    }

    #[test]
    fn trunk_has_its_own_rate_and_ipv4_mapped_is_ipv4() {
        let mut a = Admission::new(cfg());
        let t0 = Instant::now();
        for _ in 0..2000 {
            assert_eq!(
                a.admit(t0, ip("203.0.113.5"), Side::Trunk, T),
                Verdict::Admit
            );
        }
        assert_eq!(
            refused(a.admit(t0, ip("::ffff:203.0.113.5"), Side::Trunk, T)),
            Some((Limit::Rate, 5))
        );
        assert_eq!(a.sources(), 1);
    }

    #[test]
    fn transaction_and_call_shares() {
        let mut c = cfg();
        c.max_transactions_per_source = 4; // two server transactions
        c.inside.burst = 100;
        let mut a = Admission::new(c);
        let t0 = Instant::now();
        let p = ip("10.0.0.9");
        let k1 = a.open_transaction(t0, p, Side::Inside).unwrap();
        let _k2 = a.open_transaction(t0, p, Side::Inside).unwrap();
        assert_eq!(a.open_transactions(p), 2);
        assert_eq!(
            refused(a.admit(t0, p, Side::Inside, T)),
            Some((Limit::TransactionShare, 5))
        );
        a.close_transaction(k1);
        assert_eq!(a.admit(t0, p, Side::Inside, T), Verdict::Admit);
        // calls: two per source
        a.call_started(t0, p, Side::Inside, "c1");
        a.call_started(t0, p, Side::Inside, "c1"); // known: not twice
        a.call_started(t0, p, Side::Inside, "c2");
        assert_eq!(a.open_calls(p), 2);
        assert_eq!(
            a.admit(t0, p, Side::Inside, T),
            Verdict::Admit,
            "not a call"
        );
        a.close_transaction(_k2);
        assert_eq!(
            refused(a.admit(t0, p, Side::Inside, Start::Call)),
            Some((Limit::CallShare, 5))
        );
        a.call_ended("c1");
        a.call_ended("c1");
        assert_eq!(a.open_calls(p), 1);
        assert_eq!(a.admit(t0, p, Side::Inside, Start::Call), Verdict::Admit);
        assert_eq!(a.stats().share_limited, 2);
        assert_eq!(a.stats().rate_limited, 0);
    }

    #[test]
    fn call_table_is_bounded() {
        let mut a = Admission::new(cfg());
        let t0 = Instant::now();
        for i in 0..20 {
            a.call_started(
                t0,
                ip(&format!("10.0.0.{}", i % 4)),
                Side::Inside,
                &i.to_string(),
            );
        }
        assert_eq!(a.calls.len(), 10);
    }

    #[test]
    fn source_table_is_bounded_and_evicts_idle_entries() {
        let mut c = cfg();
        c.inside = Rate { per_s: 1, burst: 3 };
        let mut a = Admission::new(c);
        let t0 = Instant::now();
        // four sources with an open transaction each: none is idle
        let keys: Vec<SourceKey> = (1..=4)
            .map(|i| {
                a.open_transaction(t0, ip(&format!("10.0.0.{i}")), Side::Inside)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            refused(a.admit(t0, ip("10.0.0.5"), Side::Inside, T)),
            Some((Limit::SourceTableFull, 1))
        );
        assert_eq!(a.open_transaction(t0, ip("10.0.0.5"), Side::Inside), None);
        assert_eq!(a.sources(), 4);
        // two become idle; the next sweep (at most once a second) evicts them
        a.close_transaction(keys[0]);
        a.close_transaction(keys[1]);
        assert_eq!(
            refused(a.admit(
                t0 + Duration::from_millis(999),
                ip("10.0.0.5"),
                Side::Inside,
                T
            )),
            Some((Limit::SourceTableFull, 1)),
            "no sweep within a second of the last"
        );
        let t = t0 + Duration::from_secs(1);
        assert_eq!(a.admit(t, ip("10.0.0.5"), Side::Inside, T), Verdict::Admit);
        assert_eq!(a.sources(), 3);
        assert_eq!(a.stats().evicted, 2);
        assert_eq!(a.stats().source_table_full, 2);
        // .6 takes two tokens, .5 took one: at 1/s, a second later .5 is
        // full again (idle) and .6 is not
        assert_eq!(a.admit(t, ip("10.0.0.6"), Side::Inside, T), Verdict::Admit);
        assert_eq!(a.admit(t, ip("10.0.0.6"), Side::Inside, T), Verdict::Admit);
        let t = t + Duration::from_secs(1);
        assert_eq!(a.admit(t, ip("10.0.0.7"), Side::Inside, T), Verdict::Admit);
        assert_eq!(a.sources(), 4);
        let mut kept: Vec<IpAddr> = a.sources.keys().map(|k| k.ip()).collect();
        kept.sort();
        assert_eq!(
            kept,
            vec![
                ip("10.0.0.3"),
                ip("10.0.0.4"),
                ip("10.0.0.6"),
                ip("10.0.0.7")
            ]
        );
    }

    #[test]
    fn limited_sources_are_evicted_last_and_listed_most_first() {
        let mut c = cfg();
        c.ban = Duration::ZERO;
        c.inside.burst = 1;
        let mut a = Admission::new(c);
        let t0 = Instant::now();
        let (x, y) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..3 {
            let _ = a.admit(t0, x, Side::Inside, T);
        }
        for _ in 0..2 {
            let _ = a.admit(t0, y, Side::Inside, T);
        }
        let top = a.limited_sources(t0, 1);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].source, top[0].refused), (x, 2));
        let t = t0 + Duration::from_secs(10);
        // two more (never refused) sources fill the table; the next one
        // evicts the idle unrefused ones first
        let _ = a.admit(t, ip("10.0.0.3"), Side::Inside, T);
        let _ = a.admit(t, ip("10.0.0.4"), Side::Inside, T);
        let t = t + Duration::from_secs(10);
        assert_eq!(a.admit(t, ip("10.0.0.5"), Side::Inside, T), Verdict::Admit);
        let listed: Vec<IpAddr> = a.limited_sources(t, 10).iter().map(|l| l.source).collect();
        assert_eq!(listed, vec![x, y]);
    }
}
