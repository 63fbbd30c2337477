//! sipcti: a SIP proxy between phones (or a PBX) and a SIP trunk that
//! reports every call to Zammad's Generic CTI API.
//!
//! The sans-IO proxy core is the `sipcti-core` crate; this crate is the
//! binary and its I/O around it:
//!
//! * [`config`] — `sipcti.toml`.
//! * [`admin`] — `[admin]`: `/metrics`, `/health`, `/ready` of `sipcti run`.
//! * [`cti_glue`] — tracker events and configuration to the CTI client's.
//! * [`runtime`] — the tokio edge that runs the core on real sockets.
//! * [`replay`] — `sipcti replay`, the same call tracker on captures.
//! * [`demo`] — `sipcti demo`, a self-contained tour on loopback.
//! * [`logs`] — the log subscriber (`SIPCTI_LOG`, `SIPCTI_LOG_FORMAT`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod bindings;
pub mod config;
pub mod cti_glue;
pub mod demo;
pub mod logs;
pub mod replay;
pub mod runtime;
