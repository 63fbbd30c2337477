//! sipcti: a SIP proxy between phones (or a PBX) and a SIP trunk that
//! reports every call to Zammad's Generic CTI API.
//!
//! * [`admission`] — per-source rate limit, ban and table shares.
//! * [`config`] — `sipcti.toml`.
//! * [`core`] — the sans-IO transaction-stateful proxy (RFC 3261 16/17).
//! * [`identity`] — the caller-id rewrite of one dialog.
//! * [`runtime`] — the tokio edge that runs the core on real sockets.
//! * [`replay`] — `sipcti replay`, the same call tracker on captures.
//! * [`demo`] — `sipcti demo`, a self-contained tour on loopback.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod core;
pub mod demo;
pub mod identity;
pub mod replay;
pub mod runtime;
