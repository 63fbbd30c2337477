//! Sans-IO SIP wire layer for sipcti (RFC 3261 sections 7, 18.3, 19, 20, 25).
//!
//! A [`SipMessage`] holds the received bytes (a reference-counted `bytes::Bytes`, shared
//! rather than copied by clones) and indexes ranges into them; every accessor returns
//! `&str` slices into the message. Edits are made with [`Edit`], which splices
//! new bytes in and keeps everything else byte for byte. [`StreamFramer`] frames a TCP
//! byte stream by Content-Length (RFC 3261 18.3). [`TransportKind`] names the transport
//! of a message or destination.
//!
//! This crate does no I/O: it has no sockets and no async runtime (the crate graph
//! keeps it so; the sockets are in `sipcti-transport`).
// One `unsafe` block in the crate: `SipMessage::slice` skips re-checking UTF-8
// inside the header text already checked when the message was built (its
// SAFETY comment gives the argument); everything else stays safe.
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

mod edit;
mod error;
mod framer;
mod headers;
mod limits;
mod message;
mod parse;
mod reindex;
mod scan;
mod start_line;

pub use edit::{response_for, to_with_tag, with_uri, Edit, FALLBACK_TO_URI};
pub use error::ParseError;
pub use framer::{Frame, FrameError, StreamFramer};
pub use headers::{canonical_name, Header};
pub use limits::Limits;
pub use message::SipMessage;
pub use parse::{split_header_values, NameAddr, Uri, Via};

/// Transport protocol of a message or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP datagrams.
    Udp,
    /// TCP stream framed by Content-Length.
    Tcp,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        })
    }
}
