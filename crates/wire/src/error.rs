//! Parse and validation errors.

/// Why a message failed [`SipMessage::parse`](crate::SipMessage::parse) or
/// [`SipMessage::validate`](crate::SipMessage::validate), or why a URI / Via / name-addr
/// failed to parse.
///
/// [`ParseError::status`] gives the response code a proxy should answer a request with
/// (RFC 3261 8.2 / 16.3) and [`ParseError::reason`] a short reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer was empty (or only CRLFs).
    #[error("empty message")]
    Empty,
    /// The start line is not `Method SP Request-URI SP SIP-Version` nor
    /// `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 7.1 / 7.2).
    #[error("bad start line")]
    BadStartLine,
    /// The SIP-Version is not `SIP/2.0`; carries the version as written (at most 32
    /// bytes). Answered with 505 (RFC 3261 8.2.2 / 21.5.7).
    #[error("unsupported SIP version {0}")]
    BadVersion(String),
    /// A header line has no colon; carries the 0-based header line number.
    #[error("header line {0} without colon")]
    HeaderWithoutColon(usize),
    /// A header name is empty or contains characters outside `token` (RFC 3261 25.1).
    #[error("bad header name in line {0}")]
    BadHeaderName(usize),
    /// More header lines than [`Limits::max_headers`](crate::Limits).
    #[error("too many headers")]
    TooManyHeaders,
    /// The message is larger than [`Limits::max_message_bytes`](crate::Limits).
    #[error("message too large")]
    TooLarge,
    /// No blank line terminates the header section.
    #[error("incomplete header section")]
    Incomplete,
    /// The start line or header section is not valid UTF-8.
    #[error("headers not UTF-8")]
    NotUtf8,
    /// Content-Length is not a decimal number, or two different values were given.
    #[error("bad Content-Length")]
    BadContentLength,
    /// Fewer body bytes are present than Content-Length announces (RFC 3261 18.3).
    #[error("body shorter than Content-Length ({got} < {expected} bytes)")]
    BodyTooShort {
        /// Content-Length value, bytes.
        expected: usize,
        /// Body bytes present, bytes.
        got: usize,
    },
    /// A mandatory header is missing (RFC 3261 8.1.1); carries its canonical name.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that must appear once appears more than once (RFC 3261 7.3, RFC 4475
    /// multi01 / mcl01); carries its canonical name.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// CSeq is not `number LWS method` with number <= 2^31 - 1 (RFC 3261 8.1.1.5).
    #[error("bad CSeq")]
    BadCSeq,
    /// The CSeq method differs from the request method (RFC 3261 8.1.1.5).
    #[error("CSeq method does not match request method")]
    CSeqMethodMismatch,
    /// Max-Forwards is not a number in 0..=255 (RFC 3261 20.22).
    #[error("bad Max-Forwards")]
    BadMaxForwards,
    /// The Request-URI does not parse (RFC 3261 19.1, RFC 5118 4.10).
    #[error("bad Request-URI")]
    BadRequestUri,
    /// A URI does not parse (RFC 3261 19.1).
    #[error("bad URI")]
    BadUri,
    /// A Via value does not parse (RFC 3261 20.42).
    #[error("bad Via")]
    BadVia,
    /// A To / From (or other name-addr) value does not parse (RFC 3261 20.20 / 20.39);
    /// carries the header name.
    #[error("bad {0} header")]
    BadNameAddr(&'static str),
    /// Call-ID is empty or contains whitespace (RFC 3261 20.8).
    #[error("bad Call-ID")]
    BadCallId,
    /// The status code of a response is not in 100..=699 (RFC 3261 7.2 / 21).
    #[error("bad status code")]
    BadStatus,
    /// A URI carries escaped headers (`?Route=...`) where RFC 3261 allows none: in the
    /// Request-URI (RFC 3261 19.1.1 table 1, RFC 4475 3.1.2.11 `escruri`), or in a Contact,
    /// To or From written as a bare addr-spec, outside `<>` (RFC 3261 20.10, RFC 4475
    /// 3.1.2.13 `regbadct`). Carries where: `"Request-URI"`, `"Contact"`, `"To"`, `"From"`.
    #[error("URI headers not allowed in {0}")]
    UriHeaders(&'static str),
}

impl ParseError {
    /// A short human reason, usable as the reason phrase of the error response: printable
    /// ASCII, never CR or LF. Returns e.g. `"Bad CSeq"`.
    pub fn reason(&self) -> String {
        let s = match self {
            ParseError::BadVersion(_) => "Version Not Supported".to_string(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                s
            }
        };
        s.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(120)
            .collect()
    }

    /// The response status a proxy answers a faulty request with: 505 for a bad
    /// SIP-Version (RFC 3261 8.2.2 / 21.5.7), 513 for a message too large (RFC 3261
    /// 21.5.11), 400 otherwise (RFC 3261 21.4.1).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::BadVersion(_) => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }
}
