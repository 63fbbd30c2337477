//! Wire parser, validator, response builder and TCP framer on arbitrary bytes.
//!
//! Oracle: nothing panics, and these round trips hold:
//! * a parsed message's `as_bytes()` parses again to the same bytes, validates the same, and
//!   an empty edit reproduces it;
//! * `parse_or_return` hands back exactly the input on error;
//! * `response_for` on a parsed request gives a message that parses; on a valid request, a
//!   valid response whose To has a tag (RFC 3261 8.2.6.2);
//! * `to_with_tag` always gives a name-addr that parses and carries a tag;
//! * the framer gives the same messages whether the stream arrives in one read or in chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipcti_wire::{
    response_for, to_with_tag, Frame, Limits, NameAddr, SipMessage, StreamFramer,
};

/// Feed `data` in `chunk`-byte reads; the messages framed until the first error or the end.
fn frames(data: &[u8], chunk: usize, limits: Limits) -> (Vec<Vec<u8>>, bool) {
    let mut f = StreamFramer::new(limits);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        if f.push(piece).is_err() {
            return (out, true);
        }
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => out.push(m),
                Ok(Some(Frame::Ping)) => {}
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match SipMessage::parse_or_return(data.to_vec(), &limits) {
        Err((_, back)) => assert_eq!(back, data, "parse_or_return changed the buffer"),
        Ok(m) => {
            let valid = m.validate();
            let bytes = m.as_bytes().to_vec();
            assert_eq!(
                m.edit().finish(),
                bytes,
                "an empty edit changed the message"
            );
            let again = SipMessage::parse(bytes.clone(), &limits)
                .expect("as_bytes() of a parsed message parses again");
            assert_eq!(
                again.as_bytes(),
                &bytes[..],
                "second parse changed the bytes"
            );
            assert_eq!(
                again.validate(),
                valid,
                "validate differs after a round trip"
            );
            // accessors never panic
            let _ = (
                m.method(),
                m.request_uri(),
                m.status(),
                m.reason(),
                m.call_id(),
            );
            let _ = (
                m.cseq(),
                m.from(),
                m.to(),
                m.top_via(),
                m.vias(),
                m.max_forwards(),
            );
            if m.is_request() {
                for status in [400u16, 505] {
                    let r = response_for(&m, status, "Fuzz", Some("fz"), &[("Retry-After", "1")]);
                    let rm = SipMessage::parse(r.clone(), &limits).unwrap_or_else(|e| {
                        panic!(
                            "response_for output does not parse: {e}\n{}",
                            String::from_utf8_lossy(&r)
                        )
                    });
                    if valid.is_ok() && m.method() != Some("ACK") {
                        rm.validate().unwrap_or_else(|e| {
                            panic!(
                                "response to a valid request invalid: {e}\n{}",
                                String::from_utf8_lossy(&r)
                            )
                        });
                        assert!(
                            rm.to().and_then(|t| t.tag()).is_some_and(|t| !t.is_empty()),
                            "final response without To tag\n{}",
                            String::from_utf8_lossy(&r)
                        );
                    }
                }
            }
        }
    }
    // to_with_tag on every line that looks like a header value
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(16) {
            let value = line.split_once(':').map_or(line, |(_, v)| v);
            let to = to_with_tag(value, "fz");
            let na = NameAddr::parse(&to)
                .unwrap_or_else(|_| panic!("to_with_tag({value:?}) = {to:?} does not parse"));
            assert!(
                na.tag().is_some_and(|t| !t.is_empty()),
                "to_with_tag({value:?}) = {to:?} has no tag"
            );
        }
    }
    // the framer: one read vs 1-byte, 7-byte and half-way reads
    let (whole, whole_err) = frames(data, data.len(), limits);
    for chunk in [1usize, 7, data.len() / 2] {
        let (split, split_err) = frames(data, chunk, limits);
        if !whole_err && !split_err {
            assert_eq!(
                whole, split,
                "framing depends on read sizes (chunk {chunk})"
            );
        }
    }
});
