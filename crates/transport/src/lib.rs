//! tokio UDP/TCP socket edge of sipcti.
//!
//! * [`net`]: one UDP socket and one TCP listener that feed framed messages
//!   (framed by `sipcti-wire`'s [`StreamFramer`](sipcti_wire::StreamFramer)) to the proxy.
//!
//! The sans-IO wire layer (parsing, edits, framing, `TransportKind`) is the
//! `sipcti-wire` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod net;
