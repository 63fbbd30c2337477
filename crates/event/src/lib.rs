//! The call event model of sipcti, shared by the call tracker (`sipcti-dialog`, which
//! produces call events) and the Zammad Generic CTI client (`sipcti-cti`, which sends
//! them): a call's [`Direction`], the [`EventKind`] and the hangup [`Cause`].
//!
//! Each type serializes (and deserializes) to the name Zammad uses on the wire, which
//! is also what `as_str` returns.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// Direction of a call as Zammad sees it: `in` if the initial INVITE came from the
/// trunk, else `out`. Must be the same on every event of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Inbound call (`"in"`): from an outside party to an agent; the initial INVITE
    /// came from the trunk.
    In,
    /// Outbound call (`"out"`): from an agent to an outside party; the initial INVITE
    /// came from the inside.
    Out,
}

impl Direction {
    /// The wire name: `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Kind of a call event, named as Zammad names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// `"newCall"`: a call starts ringing (initial INVITE). Zammad may answer reject
    /// or dial.
    NewCall,
    /// `"answer"`: the call was picked up (first 2xx).
    Answer,
    /// `"hangup"`: the call ended. Sent exactly once per call.
    Hangup,
}

impl EventKind {
    /// The wire name: `"newCall"`, `"answer"` or `"hangup"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NewCall => "newCall",
            EventKind::Answer => "answer",
            EventKind::Hangup => "hangup",
        }
    }
}

/// Hangup cause (the `cause` field of a `hangup`), named as Zammad names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cause {
    /// `"normalClearing"`: one party hung up after the call was established.
    NormalClearing,
    /// `"busy"`: the called party was busy (486, 600).
    Busy,
    /// `"cancel"`: the caller hung up before the callee picked up (CANCEL, 487).
    Cancel,
    /// `"noAnswer"`: the called party did not answer or declined, e.g. DND (603, 408,
    /// Timer C).
    NoAnswer,
    /// `"congestion"`: the called party could not be reached (5xx, other 4xx,
    /// transport failure).
    Congestion,
    /// `"notFound"`: the number does not exist or the party is offline (404, 410, 484,
    /// 604, 480).
    NotFound,
    /// `"forwarded"`: the call was forwarded to a different party, 3xx (not counted as
    /// missed).
    Forwarded,
}

impl Cause {
    /// The wire name: `"normalClearing"`, `"busy"`, `"cancel"`, `"noAnswer"`,
    /// `"congestion"`, `"notFound"`, `"forwarded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NormalClearing => "normalClearing",
            Cause::Busy => "busy",
            Cause::Cancel => "cancel",
            Cause::NoAnswer => "noAnswer",
            Cause::Congestion => "congestion",
            Cause::NotFound => "notFound",
            Cause::Forwarded => "forwarded",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde names and `as_str` agree, both ways.
    #[test]
    fn serde_names_are_the_wire_names() {
        for d in [Direction::In, Direction::Out] {
            let j = serde_json::to_string(&d).unwrap();
            assert_eq!(j, format!("\"{}\"", d.as_str()));
            assert_eq!(serde_json::from_str::<Direction>(&j).unwrap(), d);
        }
        for k in [EventKind::NewCall, EventKind::Answer, EventKind::Hangup] {
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(j, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&j).unwrap(), k);
        }
        for c in [
            Cause::NormalClearing,
            Cause::Busy,
            Cause::Cancel,
            Cause::NoAnswer,
            Cause::Congestion,
            Cause::NotFound,
            Cause::Forwarded,
        ] {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.as_str()));
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(serde_json::from_str::<Cause>(&j).unwrap(), c);
        }
    }
}
