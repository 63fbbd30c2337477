//! The sans-IO core of sipcti: a transaction-stateful SIP proxy between phones (or a
//! PBX) and a SIP trunk that reports every call as call events.
//!
//! The modules follow RFC 3261's own split:
//!
//! * [`proxy`] — the proxy (16): [`ProxyCore`], the request and response
//!   pipelines that join the pieces below, forwarding (16.6), CANCEL (16.10)
//!   and ACK.
//! * [`validation`] — request validation (16.3) and the per-source admission checks.
//! * [`server_tx`] — the server transaction (17.2, RFC 6026 Accepted).
//! * [`client_tx`] — the client transaction (17.1, Timer C of 16.8, the
//!   CANCEL of 9.1, RFC 6026 7.2 Accepted INVITE records).
//! * [`fork`] — the response context of a ring group's forked INVITE (16.7):
//!   first 2xx wins, the others CANCELled (RFC 3326 Reason), the best final.
//! * [`timers`] — the timers by their RFC names (A-J, L, C) and the timer wheel.
//! * [`routing`] — sides, `is_us`, next hops (16.4-16.6), Record-Route and Via
//!   values, where responses go (18.2.2).
//! * [`messages`] — the CANCEL, ACK and error responses the proxy builds.
//! * [`cti`] — the hold of an INVITE for Zammad's `newCall` answer and the
//!   caller-id rewrite it may set.
//! * [`ids`] — typed transaction ids, [`Method`], the transaction keys.
//! * [`config`], [`output`] — what the core is given and what it gives back.
//! * [`identity`] — the caller-id rewrite of one dialog.
//! * [`admission`] — per-source rate limit, ban and table shares.
//! * [`registration`] — REGISTER relayed to the trunk's registrar with a
//!   Contact rewrite or Path (RFC 3327), the binding table, requests for a
//!   registered phone sent over its flow.
//! * [`topology`] — topology hiding toward the trunk: the inside's Contacts
//!   masked as `sip:tc…@sipcti`, unmasked for requests that come back.
//! * [`siblings`] — one call that the provider forked to several phones:
//!   one `newCall`, one answer from Zammad for every branch, one end.
//!
//! It never reads a clock, never touches a socket and does not depend on an async
//! runtime (the crate graph keeps it so): the binary crate `sipcti-proxy` runs it on
//! tokio sockets, and tests and the fuzzer drive it directly.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod client_tx;
pub mod config;
pub mod cti;
pub mod fork;
pub mod forward;
pub mod identity;
pub mod ids;
pub mod messages;
pub mod output;
pub mod proxy;
pub mod registration;
pub mod routing;
pub mod server_tx;
pub mod siblings;
mod tables;
pub mod timers;
pub mod topology;
pub mod validation;

/// The hash map of the internal tables: foldhash, randomly seeded per
/// process and per map (keys such as Call-IDs and branches come from the
/// network, so the seed must not be guessable), several times faster than
/// the standard library's SipHash on short keys.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use config::{CoreConfig, SourceLimits};
pub use cti::CtiAnswer;
pub use ids::{
    CallId, ClientKey, ClientKeyRef, ClientKeyView, ClientTxId, Method, ServerKey, ServerKeyParts,
    ServerKeyRef, ServerKeyView, ServerTxId,
};
pub use output::{log_sample, CoreStats, Output, Transmit};
pub use proxy::ProxyCore;
pub use registration::{
    Binding, BindingKey, BindingUpdate, Flow, RegistrationConfig, RegistrationMode,
};
pub use routing::{Hop, Target};
pub use topology::TopologyHiding;
