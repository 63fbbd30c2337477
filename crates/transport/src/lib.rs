//! SIP wire layer for sipcti.
//!
//! * [`wire`]: sans-IO SIP message handling: parsing (RFC 3261 section 7 / 25), a
//!   zero-copy header index, URI / Via / name-addr parsing, byte-preserving edits and
//!   stream framing by Content-Length (RFC 3261 18.3).
//! * [`net`]: the tokio UDP/TCP socket edge that feeds framed messages to the proxy.
//!
//! The wire types are re-exported at the crate root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod net;
pub mod wire;

pub use wire::*;
