//! Sans-IO SIP wire layer (RFC 3261 sections 7, 18.3, 19, 20, 25).
//!
//! A [`SipMessage`] owns the received bytes and indexes ranges into them; every accessor
//! returns `&str` slices into the message. Edits are made with [`Edit`], which splices
//! new bytes in and keeps everything else byte for byte.

mod edit;
mod error;
mod framer;
mod message;
mod parse;

pub use edit::{response_for, to_with_tag, Edit, FALLBACK_TO_URI};
pub use error::ParseError;
pub use framer::{Frame, FrameError, StreamFramer};
pub use message::{canonical_name, Header, Limits, SipMessage};
pub use parse::{NameAddr, Uri, Via};
