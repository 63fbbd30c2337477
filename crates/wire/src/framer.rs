//! Stream framing by Content-Length (RFC 3261 18.3) and keep-alives (RFC 5626 3.5.1).

use bytes::{Buf as _, Bytes, BytesMut};

use super::limits::Limits;

/// One unit taken from a stream.
///
/// `B` is how a message's bytes are handed out: `Vec<u8>` (an owned copy) by
/// [`StreamFramer::next_frame`], [`Bytes`] (a reference-counted view of the framer's
/// buffer, no copy) by [`StreamFramer::next_frame_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<B = Vec<u8>> {
    /// One complete message (start line, headers, body cut to Content-Length).
    Message(B),
    /// A CRLFCRLF keep-alive: answer with `"\r\n"` (RFC 5626 3.5.1).
    Ping,
}

/// A stream framing error; fatal for that TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message (or header section) exceeds `max_message_bytes`.
    #[error("message too large")]
    TooLarge,
    /// A message on a stream has no Content-Length (mandatory on streams, RFC 3261 18.3).
    #[error("missing Content-Length")]
    MissingContentLength,
    /// Content-Length is not a number or appears with different values.
    #[error("bad Content-Length")]
    BadContentLength,
}

/// Stream framer: several messages in one read, one message over many reads.
///
/// Usage: [`StreamFramer::push`] each read, then call [`StreamFramer::next_frame`] until
/// it returns `Ok(None)`. A lone CRLF between messages is skipped; CRLFCRLF while no
/// message is in progress is a [`Frame::Ping`]. Lines may end in CRLF or bare LF.
///
/// The bytes are kept in one [`BytesMut`]; [`StreamFramer::next_frame_bytes`] splits
/// each complete message off it as [`Bytes`] without copying (the message then shares
/// the allocation with the framer's buffer and the other messages split off it, and
/// keeps it alive until dropped).
#[derive(Debug)]
pub struct StreamFramer {
    limits: Limits,
    buf: BytesMut,
    /// Where to resume the search for the end of the header section, bytes.
    scan_from: usize,
}

/// Least spare capacity [`StreamFramer::read_buf`] allocates, bytes.
const READ_ALLOC: usize = 64 * 1024;

/// Longest tail kept by [`StreamFramer::resync`] when no start line was found, bytes.
const RESYNC_TAIL: usize = 64;

fn find_header_end(buf: &[u8], from: usize) -> Option<usize> {
    // Returns the index just past the blank line.
    let mut i = from;
    while let Some(rel) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let lf = i + rel;
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => {}
        }
        i = lf + 1;
    }
    None
}

/// Content-Length of a header section (bytes, not necessarily UTF-8).
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength);
        }
        let n = value.iter().fold(0usize, |acc, &d| {
            acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(FrameError::MissingContentLength)
}

/// True if `line` (the start of a line) looks like a SIP start line: `SIP/2.0 ` or
/// `METHOD sip:` / `sips:` / `tel:`.
fn looks_like_start(line: &[u8]) -> bool {
    if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        return true;
    }
    let n = line
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if n == 0 || line.get(n) != Some(&b' ') {
        return false;
    }
    let rest = line.get(n + 1..).unwrap_or_default();
    ["sip:", "sips:", "tel:"]
        .iter()
        .any(|p| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
}

impl StreamFramer {
    /// A framer with an empty buffer applying `limits` (`max_message_bytes` bounds one
    /// message and the buffer).
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            limits,
            buf: BytesMut::new(),
            scan_from: 0,
        }
    }

    /// Appends `data` (bytes as read; copied into the framer's buffer). The buffer never
    /// exceeds `max_message_bytes` plus one read: errors with [`FrameError::TooLarge`] if
    /// more than `max_message_bytes` are still buffered (frames not taken, or one message
    /// too large).
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        self.read_buf(0)?.extend_from_slice(data);
        Ok(())
    }

    /// The buffer to read the next bytes into directly, instead of reading elsewhere and
    /// [`StreamFramer::push`]ing a copy: at least `additional` bytes of spare capacity
    /// are reserved; when that needs a new allocation it is at least 64 KiB, so the
    /// messages of several reads share one allocation (each message split off it keeps
    /// it alive). The caller must only append to it (e.g. with tokio's
    /// `AsyncReadExt::read_buf`); then take frames as after a push.
    ///
    /// Errors: [`FrameError::TooLarge`] as [`StreamFramer::push`] (more than
    /// `max_message_bytes` still buffered); nothing is reserved then.
    pub fn read_buf(&mut self, additional: usize) -> Result<&mut BytesMut, FrameError> {
        if self.buf.len() > self.limits.max_message_bytes {
            return Err(FrameError::TooLarge);
        }
        if self.buf.capacity() - self.buf.len() < additional {
            self.buf.reserve(additional.max(READ_ALLOC));
        }
        Ok(&mut self.buf)
    }

    /// Takes the next complete frame as an owned `Vec<u8>` (a copy of the message);
    /// `Ok(None)` if more bytes are needed. [`StreamFramer::next_frame_bytes`] hands it
    /// out without the copy.
    ///
    /// Errors (fatal for the connection): [`FrameError::TooLarge`] when the header
    /// section or the announced message exceeds `max_message_bytes`,
    /// [`FrameError::MissingContentLength`] (mandatory on streams, RFC 3261 18.3 / 20.14),
    /// [`FrameError::BadContentLength`].
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        Ok(self.next_frame_bytes()?.map(|f| match f {
            Frame::Message(b) => Frame::Message(Vec::from(b)),
            Frame::Ping => Frame::Ping,
        }))
    }

    /// Takes the next complete frame; `Ok(None)` if more bytes are needed. A message is
    /// split off the front of the framer's buffer as [`Bytes`]: no copy, it points into
    /// the allocation the bytes were pushed (or read) into.
    ///
    /// Errors: as [`StreamFramer::next_frame`].
    pub fn next_frame_bytes(&mut self) -> Result<Option<Frame<Bytes>>, FrameError> {
        // Keep-alives and CRLFs between messages (RFC 5626 3.5.1, RFC 3261 7.5).
        loop {
            match &self.buf[..] {
                [b'\r', b'\n', b'\r', b'\n', ..] => {
                    self.buf.advance(4);
                    return Ok(Some(Frame::Ping));
                }
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                [b'\r', b'\n', ..] => {
                    self.buf.advance(2);
                }
                [b'\n', ..] => {
                    self.buf.advance(1);
                }
                [] => return Ok(None),
                _ => break,
            }
            self.scan_from = 0;
        }
        let Some(head_end) = find_header_end(&self.buf, self.scan_from) else {
            if self.buf.len() > self.limits.max_message_bytes {
                return Err(FrameError::TooLarge);
            }
            self.scan_from = self.buf.len().saturating_sub(3);
            return Ok(None);
        };
        if head_end > self.limits.max_message_bytes {
            return Err(FrameError::TooLarge);
        }
        let cl = content_length(self.buf.get(..head_end).unwrap_or_default())?;
        let total = head_end.saturating_add(cl);
        if total > self.limits.max_message_bytes {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            // Do not rescan the header section next time.
            self.scan_from = head_end.saturating_sub(4);
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        self.scan_from = 0;
        Ok(Some(Frame::Message(frame)))
    }

    /// Bytes currently buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bytes currently buffered (not yet taken as frames).
    pub fn buffered_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Drops all buffered bytes (after a gap in a captured TCP stream).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.scan_from = 0;
    }

    /// Skips bytes until something that looks like a SIP start line at the beginning of
    /// a line (`"SIP/2.0 "` or `"METHOD sip:"`/`sips:`/`tel:`); returns true if the buffer
    /// now starts with one. If none is found returns false and keeps only the last
    /// partial line (when shorter than 64 bytes) so a start line split across reads is
    /// still found after the next push.
    pub fn resync(&mut self) -> bool {
        self.scan_from = 0;
        let mut pos = 0;
        loop {
            if looks_like_start(self.buf.get(pos..).unwrap_or_default()) {
                self.buf.advance(pos);
                return true;
            }
            match self
                .buf
                .get(pos..)
                .and_then(|b| b.iter().position(|&c| c == b'\n'))
            {
                Some(rel) => pos += rel + 1,
                None => break,
            }
        }
        let tail = self.buf.len() - pos;
        if tail < RESYNC_TAIL {
            self.buf.advance(pos);
        } else {
            self.buf.clear();
        }
        false
    }
}
