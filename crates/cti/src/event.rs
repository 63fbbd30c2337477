//! CTI event model, its two wire encodings, and parsing of Zammad's newCall answer.

use serde::{Deserialize, Serialize};
use sipcti_event::{Cause, Direction, EventKind};

/// One CTI event as sent to Zammad.
///
/// JSON form (see [`Event::to_json`]): keys `event`, `direction`, `callId`, `from`, `to`,
/// `user`, `queue`, `answeringNumber`, `cause`, in that order; `None` fields are omitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Event kind (`event`).
    pub event: EventKind,
    /// Call direction (`direction`), the same on every event of a call.
    pub direction: Direction,
    /// Call id (`callId`), at most 250 characters for Zammad to match later events.
    pub call_id: String,
    /// Calling number (`from`), e.g. E.164 digits without `+`, or `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Called number (`to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Agent name (`user`): on newCall the calling (out) or called (in) person,
    /// or the called people of a ring group ([`User::Many`], an array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Zammad's `queue` (newCall only, optional): the queue an inbound call came in on,
    /// a plain string in both encodings. Zammad keeps at most 250 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Number or extension of the agent who answered (`answeringNumber`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answering_number: Option<String>,
    /// Hangup cause (`cause`), only meaningful on hangup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// Zammad's `user`: one person (a string) or, on an inbound `newCall` to a
/// ring group, the called people (an array: JSON `["a","b"]`, form
/// `user[]=a&user[]=b`). Zammad accepts an array on `newCall` only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum User {
    /// One person.
    One(String),
    /// Several people (a ring group's newCall).
    Many(Vec<String>),
}

impl User {
    /// The people named, in order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            User::One(s) => vec![s.as_str()],
            User::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl From<String> for User {
    fn from(s: String) -> User {
        User::One(s)
    }
}

impl From<&str> for User {
    fn from(s: &str) -> User {
        User::One(s.to_string())
    }
}

impl Event {
    /// Compact JSON body for this event (`None` fields omitted). `user` is a plain string,
    /// which Zammad accepts on every event kind.
    pub fn to_json(&self) -> String {
        // Serializing this struct (strings and unit enums only) cannot fail; fall back to an
        // empty object rather than panic, just in case.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// `application/x-www-form-urlencoded` body for this event:
    /// `event=..&direction=..&callId=..&from=..&to=..&user..&queue=..&answeringNumber=..&cause=..`
    /// (`None` fields omitted). On `newCall` the user is sent as the array `user[]=NAME`; on
    /// `answer`/`hangup` as the plain string `user=NAME` (an array on answer breaks Zammad).
    pub fn to_form(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("event", self.event.as_str()),
            ("direction", self.direction.as_str()),
            ("callId", self.call_id.as_str()),
        ];
        if let Some(v) = &self.from {
            pairs.push(("from", v));
        }
        if let Some(v) = &self.to {
            pairs.push(("to", v));
        }
        if let Some(u) = &self.user {
            if self.event == EventKind::NewCall {
                for v in u.names() {
                    pairs.push(("user[]", v));
                }
            } else if let Some(v) = u.names().first() {
                // a plain string: an array on answer makes Zammad fail
                pairs.push(("user", v));
            }
        }
        if let Some(v) = &self.queue {
            pairs.push(("queue", v));
        }
        if let Some(v) = &self.answering_number {
            pairs.push(("answeringNumber", v));
        }
        if let Some(c) = self.cause {
            pairs.push(("cause", c.as_str()));
        }
        // Serializing a list of string pairs cannot fail.
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// Encode the body in `format`. Returns `(content_type, body)`.
    pub fn encode(&self, format: Format) -> (&'static str, String) {
        match format {
            Format::Json => (format.content_type(), self.to_json()),
            Format::Form => (format.content_type(), self.to_form()),
        }
    }
}

/// Body encoding used towards Zammad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, arrays as `user[]=..`.
    Form,
}

impl Format {
    /// The `Content-Type` of a body in this encoding.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// What Zammad wants done with a new call (its answer to `newCall`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Proceed normally (Zammad answered `{}` or anything not understood).
    Continue,
    /// Reject the inbound call; `reason` is Zammad's reason (normally `"busy"`).
    /// The proxy must still send `hangup` for the call afterwards.
    Reject {
        /// Zammad's `reason` field (empty if absent).
        reason: String,
    },
    /// Place the outbound call with this caller id (Zammad's `caller_id` / `callerId`).
    Dial {
        /// Caller id to present, as configured in Zammad.
        caller_id: String,
    },
}

/// Parse Zammad's answer body to a `newCall`.
///
/// `{"action":"reject","reason":"busy"}` gives [`Decision::Reject`];
/// `{"action":"dial","caller_id":X}` (or `"callerId"`, as one docs page spells it) gives
/// [`Decision::Dial`]; `{}`, a dial without a caller id, non-JSON, or anything else gives
/// [`Decision::Continue`]. Never fails.
pub fn parse_answer(body: &str) -> Decision {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
        return Decision::Continue;
    };
    match map.get("action").and_then(|v| v.as_str()) {
        Some("reject") => Decision::Reject {
            reason: map
                .get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        },
        Some("dial") => {
            let caller_id = map
                .get("caller_id")
                .or_else(|| map.get("callerId"))
                .and_then(scalar_to_string);
            match caller_id {
                Some(c) if !c.is_empty() => Decision::Dial { caller_id: c },
                _ => Decision::Continue,
            }
        }
        _ => Decision::Continue,
    }
}

/// A JSON string or number as a string (caller ids may come back as numbers).
fn scalar_to_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            event: kind,
            direction: Direction::In,
            call_id: "c-1".into(),
            from: None,
            to: None,
            user: None,
            queue: None,
            answering_number: None,
            cause: None,
        }
    }

    fn new_call() -> Event {
        Event {
            from: Some("4912347114711".into()),
            to: Some("4930600000000".into()),
            user: Some("Max Mustermann".into()),
            ..ev(EventKind::NewCall)
        }
    }

    fn answer() -> Event {
        Event {
            user: Some("Max Mustermann".into()),
            answering_number: Some("4930600000000".into()),
            ..ev(EventKind::Answer)
        }
    }

    fn hangup() -> Event {
        Event {
            direction: Direction::Out,
            answering_number: Some("201".into()),
            cause: Some(Cause::NormalClearing),
            ..ev(EventKind::Hangup)
        }
    }

    #[test]
    fn json_new_call_exact() {
        assert_eq!(
            new_call().to_json(),
            r#"{"event":"newCall","direction":"in","callId":"c-1","from":"4912347114711","to":"4930600000000","user":"Max Mustermann"}"#
        );
    }

    #[test]
    fn json_answer_exact() {
        assert_eq!(
            answer().to_json(),
            r#"{"event":"answer","direction":"in","callId":"c-1","user":"Max Mustermann","answeringNumber":"4930600000000"}"#
        );
    }

    #[test]
    fn json_hangup_exact() {
        assert_eq!(
            hangup().to_json(),
            r#"{"event":"hangup","direction":"out","callId":"c-1","answeringNumber":"201","cause":"normalClearing"}"#
        );
    }

    #[test]
    fn json_minimal_omits_none() {
        assert_eq!(
            ev(EventKind::Hangup).to_json(),
            r#"{"event":"hangup","direction":"in","callId":"c-1"}"#
        );
    }

    #[test]
    fn json_roundtrip() {
        for e in [new_call(), answer(), hangup()] {
            let back: Event = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn all_causes_camel_case() {
        let names: Vec<String> = [
            Cause::NormalClearing,
            Cause::Busy,
            Cause::Cancel,
            Cause::NoAnswer,
            Cause::Congestion,
            Cause::NotFound,
            Cause::Forwarded,
        ]
        .iter()
        .map(|c| {
            let j = serde_json::to_string(c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.as_str()));
            c.as_str().to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "normalClearing",
                "busy",
                "cancel",
                "noAnswer",
                "congestion",
                "notFound",
                "forwarded"
            ]
        );
    }

    #[test]
    fn form_new_call_uses_user_array() {
        assert_eq!(
            new_call().to_form(),
            "event=newCall&direction=in&callId=c-1&from=4912347114711&to=4930600000000&user%5B%5D=Max+Mustermann"
        );
    }

    #[test]
    fn form_answer_uses_plain_user() {
        assert_eq!(
            answer().to_form(),
            "event=answer&direction=in&callId=c-1&user=Max+Mustermann&answeringNumber=4930600000000"
        );
    }

    #[test]
    fn form_hangup_exact() {
        assert_eq!(
            hangup().to_form(),
            "event=hangup&direction=out&callId=c-1&answeringNumber=201&cause=normalClearing"
        );
    }

    /// An inbound newCall of a route with a queue: `queue` is a plain string after `user`
    /// in both encodings (Zammad's `queue` column), and survives a JSON round trip.
    fn new_call_with_queue() -> Event {
        Event {
            user: Some("Alice Example".into()),
            queue: Some("support desk".into()),
            ..new_call()
        }
    }

    #[test]
    fn json_new_call_with_queue_exact() {
        assert_eq!(
            new_call_with_queue().to_json(),
            r#"{"event":"newCall","direction":"in","callId":"c-1","from":"4912347114711","to":"4930600000000","user":"Alice Example","queue":"support desk"}"#
        );
        let back: Event = serde_json::from_str(&new_call_with_queue().to_json()).unwrap();
        assert_eq!(back, new_call_with_queue());
    }

    #[test]
    fn form_new_call_with_queue_exact() {
        assert_eq!(
            new_call_with_queue().to_form(),
            "event=newCall&direction=in&callId=c-1&from=4912347114711&to=4930600000000&user%5B%5D=Alice+Example&queue=support+desk"
        );
    }

    #[test]
    fn encode_sets_content_type() {
        assert_eq!(new_call().encode(Format::Json).0, "application/json");
        assert_eq!(
            new_call().encode(Format::Form).0,
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn parse_answer_shapes() {
        assert_eq!(
            parse_answer(r#"{"action":"reject","reason":"busy"}"#),
            Decision::Reject {
                reason: "busy".into()
            }
        );
        assert_eq!(
            parse_answer(r#"{"action":"reject"}"#),
            Decision::Reject {
                reason: String::new()
            }
        );
        assert_eq!(
            parse_answer(
                r#"{"action":"dial","caller_id":"4930777000000","number":"4912347114711"}"#
            ),
            Decision::Dial {
                caller_id: "4930777000000".into()
            }
        );
        assert_eq!(
            parse_answer(r#"{"action":"dial","callerId":"41715880339000"}"#),
            Decision::Dial {
                caller_id: "41715880339000".into()
            }
        );
        assert_eq!(
            parse_answer(r#"{"action":"dial","caller_id":4930777000000}"#),
            Decision::Dial {
                caller_id: "4930777000000".into()
            }
        );
        assert_eq!(parse_answer(r#"{"action":"dial"}"#), Decision::Continue);
        assert_eq!(parse_answer("{}"), Decision::Continue);
        assert_eq!(parse_answer(""), Decision::Continue);
        assert_eq!(parse_answer("<html>oops</html>"), Decision::Continue);
        assert_eq!(parse_answer("[1,2]"), Decision::Continue);
        assert_eq!(parse_answer(r#"{"action":"bogus"}"#), Decision::Continue);
        assert_eq!(
            parse_answer(r#"{"error":"This object already exists."}"#),
            Decision::Continue
        );
    }

    /// A ring group's newCall names every called person: a JSON array, and
    /// `user[]` once per person in form encoding; an answer stays a string.
    #[test]
    fn ring_group_new_call_user_is_an_array() {
        let e = Event {
            user: Some(User::Many(vec![
                "Alice Example".into(),
                "Bob Example".into(),
            ])),
            ..new_call()
        };
        assert!(
            e.to_json()
                .contains(r#""user":["Alice Example","Bob Example"]"#),
            "{}",
            e.to_json()
        );
        assert!(
            e.to_form()
                .contains("user%5B%5D=Alice+Example&user%5B%5D=Bob+Example"),
            "{}",
            e.to_form()
        );
        let a = Event {
            user: Some(User::Many(vec![
                "Alice Example".into(),
                "Bob Example".into(),
            ])),
            ..answer()
        };
        assert!(
            a.to_form().contains("&user=Alice+Example&"),
            "{}",
            a.to_form()
        );
    }
}
