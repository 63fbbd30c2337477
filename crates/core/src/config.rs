//! The core's configuration: addresses, networks, next hops, RFC 3261
//! T1, Timer C, table sizes (RFC 3261 17, 16.8) and the per-source
//! admission limits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use sipcti_dialog::TrackerConfig;
use sipcti_wire::Limits;

use crate::admission::{AdmissionConfig, Rate};
use crate::routing::Hop;

/// Configuration of the core (built from `sipcti_proxy::config::Config`).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Address and port the proxy is reached at (Via, Record-Route).
    pub local: SocketAddr,
    /// Other addresses that also mean "this proxy" in a URI (e.g. the listen IP).
    pub aliases: Vec<IpAddr>,
    /// The address the phones / PBX reach the proxy at (Via and Record-Route
    /// toward the inside). Usually `local`'s IP; differs on a host with a
    /// LAN and a public interface.
    pub inside_ip: IpAddr,
    /// The address the trunk reaches the proxy at (Via and Record-Route
    /// toward the trunk).
    pub trunk_ip: IpAddr,
    /// The trunk.
    pub trunk: Hop,
    /// Networks whose requests come from the trunk.
    pub trunk_sources: Vec<IpNet>,
    /// Networks of phones / PBX.
    pub inside_networks: Vec<IpNet>,
    /// Where inbound calls go.
    pub inside_target: Hop,
    /// Message limits for parsing.
    pub limits: Limits,
    /// RFC 3261 T1 (default 500 ms).
    pub t1: Duration,
    /// Timer C (default 180 s).
    pub timer_c: Duration,
    /// Upper bound on the newCall wait (the edge answers earlier; this is
    /// the core's own fail-open safety net).
    pub newcall_wait: Duration,
    /// Most transactions (server + client) at once; beyond, new requests get 503.
    pub max_transactions: usize,
    /// How long a transaction is kept after its final response to absorb
    /// retransmissions (Kamailio tm's `wt_timer`; default 5 s). Timers H
    /// (waiting for the ACK of a non-2xx) and I keep their RFC values.
    pub wait: Duration,
    /// Call tracker settings. Its `routes` are also the core's inbound
    /// routes (one list, so routing and the `queue` Zammad gets never
    /// disagree): an initial request from the trunk whose dialled number
    /// matches goes to the route's target URI instead of `inside_target`.
    /// Every target's address must be in `inside_networks` (the file
    /// configuration checks it): the phone answers from there, and
    /// in-dialog requests from the trunk may only go there (no open relay).
    pub tracker: TrackerConfig,
    /// Per-source admission limits (rate, ban, table share).
    pub sources: SourceLimits,
    /// Registration through sipcti (`[registration]`).
    pub registration: crate::registration::RegistrationConfig,
    /// Topology hiding toward the trunk (`[trunk] hide_topology`).
    pub topology: crate::topology::TopologyHiding,
}

/// Per-source admission limits, in the spirit of Kamailio's pike and
/// htable ban: one source address cannot starve the others of the
/// transaction and call tables. In-dialog requests of established calls
/// are never refused for load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLimits {
    /// New transactions per second one inside address may start, sustained.
    pub inside_rate_per_s: u32,
    /// Burst on top of `inside_rate_per_s` (token bucket depth).
    pub inside_burst: u32,
    /// New transactions per second one trunk address may start, sustained.
    pub trunk_rate_per_s: u32,
    /// Burst on top of `trunk_rate_per_s`.
    pub trunk_burst: u32,
    /// Most transactions (server + client) one source address may hold.
    pub max_transactions_per_source: usize,
    /// How long a source that went over its rate is refused (503 with
    /// `Retry-After`).
    pub ban: Duration,
}

impl Default for SourceLimits {
    /// The `[limits]` defaults: 20/s (burst 100) per inside address,
    /// 2000/s (burst 4000) per trunk address, half of 100,000
    /// transactions per source, a 5 s ban.
    fn default() -> Self {
        SourceLimits {
            inside_rate_per_s: 20,
            inside_burst: 100,
            trunk_rate_per_s: 2000,
            trunk_burst: 4000,
            max_transactions_per_source: 50_000,
            ban: Duration::from_secs(5),
        }
    }
}

/// Most source addresses the admission table keeps (about 100 bytes each):
/// an inside /16 fits.
const MAX_SOURCES: usize = 65_536;

/// The admission settings of `cfg`. The call share is the transaction
/// share's fraction of `max_transactions`, applied to the tracker's table.
pub(crate) fn admission_config(cfg: &CoreConfig) -> AdmissionConfig {
    let l = &cfg.sources;
    let max_calls = cfg.tracker.max_calls;
    let share = (max_calls as u128 * l.max_transactions_per_source as u128)
        / (cfg.max_transactions.max(1) as u128);
    AdmissionConfig {
        inside: Rate {
            per_s: l.inside_rate_per_s,
            burst: l.inside_burst,
        },
        trunk: Rate {
            per_s: l.trunk_rate_per_s,
            burst: l.trunk_burst,
        },
        ban: l.ban,
        max_transactions_per_source: l.max_transactions_per_source,
        max_calls_per_source: usize::try_from(share)
            .unwrap_or(usize::MAX)
            .clamp(1, max_calls.max(1)),
        max_sources: MAX_SOURCES,
        max_calls,
    }
}
