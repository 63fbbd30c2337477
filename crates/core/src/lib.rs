//! The sans-IO core of sipcti: a transaction-stateful SIP proxy between phones (or a
//! PBX) and a SIP trunk that reports every call as call events.
//!
//! * [`proxy`] — the transaction-stateful proxy (RFC 3261 16/17), [`ProxyCore`].
//! * [`identity`] — the caller-id rewrite of one dialog.
//! * [`admission`] — per-source rate limit, ban and table shares.
//!
//! It never reads a clock, never touches a socket and does not depend on an async
//! runtime (the crate graph keeps it so): the binary crate `sipcti-proxy` runs it on
//! tokio sockets, and tests and the fuzzer drive it directly.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod identity;
pub mod ids;
pub mod proxy;

pub use ids::{CallId, ClientKey, ClientTxId, Method, ServerKey, ServerTxId};
pub use proxy::{
    CoreConfig, CoreStats, CtiAnswer, Hop, Output, ProxyCore, SourceLimits, Target, Transmit,
};
