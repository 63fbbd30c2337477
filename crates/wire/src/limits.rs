//! [`Limits`]: the size limits applied to every message taken from the network
//! (used by [`SipMessage::parse`](crate::SipMessage::parse) and the
//! [`StreamFramer`](crate::StreamFramer)).

/// Size limits applied to every message taken from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line + headers + body), bytes. Default 65 536.
    pub max_message_bytes: usize,
    /// Most header lines in one message. Default 256.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_536,
            max_headers: 256,
        }
    }
}
