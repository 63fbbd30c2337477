//! The Zammad double against the reference's "Acceptance sequences" and error table,
//! driven over real HTTP with reqwest.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sipcti_zammad_double::{spawn_double, CallState, DoubleConfig, Mode, Rules, ZammadDouble};

const RULES: &str = r#"
block = ["491715000000"]
default_caller_id = "4930777000000"
[[caller_id]]
pattern = "41*"
caller_id = "41715880339000"
[[caller_id]]
pattern = "491714000000"
caller_id = "41715880339000"
"#;

struct T {
    d: ZammadDouble,
    http: reqwest::Client,
}

impl T {
    async fn new() -> T {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let d = spawn_double(
            l,
            DoubleConfig {
                token: "TOKEN".into(),
                rules: Rules::from_toml_str(RULES).unwrap(),
            },
        )
        .await
        .unwrap();
        T {
            d,
            http: reqwest::Client::new(),
        }
    }

    fn base(&self) -> String {
        format!("http://{}/api/v1/cti", self.d.local_addr())
    }

    /// Form POST with the right token; returns status and JSON body.
    async fn form(&self, body: &str) -> (u16, Value) {
        self.form_to("TOKEN", body).await
    }

    async fn form_to(&self, token: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/{token}", self.base()))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }

    async fn json(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/TOKEN", self.base()))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    }
}

#[tokio::test]
async fn wrong_token_is_401_for_any_event() {
    let t = T::new().await;
    for body in [
        "event=newCall&direction=in&from=1&to=2&callId=a",
        "event=hangup&direction=in&callId=a",
        "",
    ] {
        let (s, b) = t.form_to("WRONG", body).await;
        assert_eq!(s, 401);
        assert_eq!(
            b,
            json!({"error": "Invalid token, please contact your admin!"})
        );
    }
    assert!(t.d.calls().is_empty());
}

#[tokio::test]
async fn inbound_new_call_with_user_array_continues() {
    let t = T::new().await;
    let (s, b) = t
        .form("event=newCall&direction=in&from=4912347114711&to=4930600000000&callId=c1&user%5B%5D=user+1&user%5B%5D=user+2")
        .await;
    assert_eq!((s, b), (200, json!({})));
    let log = t.d.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].user, Some(json!(["user 1", "user 2"])));
    let c = t.d.call("c1").unwrap();
    assert_eq!(c.state, CallState::NewCall);
    assert_eq!(c.direction, "in");
}

#[tokio::test]
async fn blocked_inbound_is_rejected_busy_and_still_needs_hangup() {
    let t = T::new().await;
    let (s, b) = t
        .form("event=newCall&direction=in&from=491715000000&to=4930600000000&callId=r1")
        .await;
    assert_eq!((s, b), (200, json!({"action": "reject", "reason": "busy"})));
    // exact equality only
    let (_, b) = t
        .form("event=newCall&direction=in&from=%2B491715000000&to=4930600000000&callId=r2")
        .await;
    assert_eq!(b, json!({}));
    // block list applies to inbound only
    let (_, b) = t
        .form("event=newCall&direction=out&from=491715000000&to=4930600000000&callId=r3")
        .await;
    assert_ne!(b.get("action"), Some(&json!("reject")));
    assert_eq!(t.d.call("r1").unwrap().state, CallState::NewCall);
    let (s, _) = t
        .form("event=hangup&direction=in&callId=r1&cause=busy")
        .await;
    assert_eq!(s, 200);
    assert_eq!(t.d.call("r1").unwrap().state, CallState::Hangup);
}

#[tokio::test]
async fn outbound_caller_id_rules() {
    let t = T::new().await;
    let cases = [
        ("o1", "4912347114711", "4930777000000"),
        ("o2", "491714000000", "41715880339000"),
        ("o3", "4147110000000", "41715880339000"),
        // `41*` needs at least one character after 41
        ("o4", "41", "4930777000000"),
    ];
    for (id, to, cid) in cases {
        let (s, b) = t
            .form(&format!(
                "event=newCall&direction=out&from=4930600000000&to={to}&callId={id}"
            ))
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            b,
            json!({"action": "dial", "caller_id": cid, "number": to}),
            "to={to}"
        );
    }
}

#[tokio::test]
async fn no_rules_means_empty_answer_outbound() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let d = spawn_double(
        l,
        DoubleConfig {
            token: "T".into(),
            rules: Rules::default(),
        },
    )
    .await
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/cti/T", d.local_addr()))
        .header("Accept", "application/json")
        .json(&json!({"event":"newCall","direction":"out","from":"1","to":"2","callId":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn outbound_cancel_is_logged_not_missed() {
    let t = T::new().await;
    t.json(json!({"event":"newCall","direction":"out","from":"4930600000000","to":"4912347114711","callId":"m1"})).await;
    let (s, _) = t
        .json(json!({"event":"hangup","direction":"out","callId":"m1","cause":"cancel"}))
        .await;
    assert_eq!(s, 200);
    let c = t.d.call("m1").unwrap();
    assert_eq!(c.state, CallState::Hangup);
    assert!(!c.missed && !c.answered);
    assert_eq!(c.cause.as_deref(), Some("cancel"));
}

#[tokio::test]
async fn inbound_answered_is_not_missed() {
    let t = T::new().await;
    t.json(json!({"event":"newCall","direction":"in","from":"4912347114711","to":"4930600000000","callId":"m2"})).await;
    let (s, _) = t
        .json(json!({"event":"answer","direction":"in","callId":"m2","answeringNumber":"201"}))
        .await;
    assert_eq!(s, 200);
    t.json(json!({"event":"hangup","direction":"in","callId":"m2","cause":"normalClearing"}))
        .await;
    let c = t.d.call("m2").unwrap();
    assert!(c.answered && !c.missed);
    assert_eq!(c.answering_number.as_deref(), Some("201"));
    assert_eq!(c.hangups, 1);
}

#[tokio::test]
async fn inbound_unanswered_is_missed_unless_forwarded() {
    let t = T::new().await;
    t.json(json!({"event":"newCall","direction":"in","from":"4912347114711","to":"4930600000000","callId":"m3"})).await;
    t.json(json!({"event":"hangup","direction":"in","callId":"m3","cause":"normalClearing"}))
        .await;
    assert!(t.d.call("m3").unwrap().missed);

    t.json(json!({"event":"newCall","direction":"in","from":"4912347114711","to":"4930600000000","callId":"m4"})).await;
    t.json(json!({"event":"hangup","direction":"in","callId":"m4","cause":"forwarded"}))
        .await;
    assert!(!t.d.call("m4").unwrap().missed);
}

#[tokio::test]
async fn voicemail_answer_counts_as_missed() {
    let t = T::new().await;
    t.form("event=newCall&direction=in&from=4912347114711&to=4930600000000&callId=v1")
        .await;
    t.form("event=answer&direction=in&callId=v1&user=voicemail")
        .await;
    t.form("event=hangup&direction=in&callId=v1&cause=normalClearing")
        .await;
    let c = t.d.call("v1").unwrap();
    assert!(c.voicemail && c.missed);
}

#[tokio::test]
async fn second_hangup_is_counted_and_unmisses_the_call() {
    let t = T::new().await;
    t.form("event=newCall&direction=in&from=1&to=2&callId=h2")
        .await;
    t.form("event=hangup&direction=in&callId=h2&cause=cancel")
        .await;
    assert!(t.d.call("h2").unwrap().missed);
    let (s, _) = t
        .form("event=hangup&direction=in&callId=h2&cause=cancel")
        .await;
    assert_eq!(s, 200);
    let c = t.d.call("h2").unwrap();
    assert_eq!(c.hangups, 2);
    assert!(!c.missed);
}

#[tokio::test]
async fn missed_uses_the_hangups_own_direction() {
    let t = T::new().await;
    t.form("event=newCall&direction=in&from=1&to=2&callId=d1")
        .await;
    t.form("event=hangup&direction=out&callId=d1&cause=cancel")
        .await;
    assert!(!t.d.call("d1").unwrap().missed);
}

#[tokio::test]
async fn anonymous_with_queue_is_stored() {
    let t = T::new().await;
    let (s, b) = t
        .form("event=newCall&direction=in&from=anonymous&to=4930600000000&callId=q1&queue=some_queue_name")
        .await;
    assert_eq!((s, b), (200, json!({})));
    let c = t.d.call("q1").unwrap();
    assert_eq!(c.from.as_deref(), Some("anonymous"));
    assert_eq!(c.queue.as_deref(), Some("some_queue_name"));
}

#[tokio::test]
async fn events_before_new_call_are_500() {
    let t = T::new().await;
    for ev in ["answer", "hangup"] {
        let (s, b) = t
            .form(&format!("event={ev}&direction=in&callId=nope"))
            .await;
        assert_eq!(s, 500, "{ev}");
        assert!(b["error"]
            .as_str()
            .unwrap()
            .contains("Please contact your administrator."));
    }
}

#[tokio::test]
async fn second_new_call_is_500_already_exists() {
    let t = T::new().await;
    let nc = "event=newCall&direction=in&from=491715000000&to=2&callId=dup";
    let (s, b) = t.form(nc).await;
    assert_eq!(s, 200);
    assert_eq!(b["action"], "reject");
    let (s, b) = t.form(nc).await;
    assert_eq!(s, 500);
    assert_eq!(b["error"], "This object already exists.");
    assert_eq!(t.d.calls().len(), 1);
}

#[tokio::test]
async fn answer_after_hangup_is_ignored() {
    let t = T::new().await;
    t.form("event=newCall&direction=in&from=1&to=2&callId=aa")
        .await;
    t.form("event=hangup&direction=in&callId=aa&cause=cancel")
        .await;
    let (s, b) = t.form("event=answer&direction=in&callId=aa&user=bob").await;
    assert_eq!((s, b), (200, json!({})));
    let c = t.d.call("aa").unwrap();
    assert_eq!(c.state, CallState::Hangup);
    assert!(!c.answered && c.missed);
}

#[tokio::test]
async fn direction_and_event_validation() {
    let t = T::new().await;
    for body in [
        "event=newCall&from=1&to=2&callId=x",
        "event=newCall&direction=inbound&from=1&to=2&callId=x",
        "event=bogus&direction=sideways&callId=x",
    ] {
        let (s, b) = t.form(body).await;
        assert_eq!(
            (s, b),
            (422, json!({"error": "Invalid 'direction'!"})),
            "{body}"
        );
    }
    for body in ["direction=in&callId=x", "event=ring&direction=in&callId=x"] {
        let (s, b) = t.form(body).await;
        assert_eq!(s, 422, "{body}");
        assert!(b["error"].as_str().unwrap().starts_with("Error ID"));
    }
    assert!(t.d.calls().is_empty());
}

#[tokio::test]
async fn json_without_json_content_type_is_not_parsed() {
    let t = T::new().await;
    let r = t
        .http
        .post(format!("{}/TOKEN", t.base()))
        .header("Accept", "application/json")
        .header("Content-Type", "text/plain")
        .body(r#"{"event":"newCall","direction":"in","from":"1","to":"2","callId":"p"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Invalid 'direction'!"})
    );
}

#[tokio::test]
async fn call_id_alias_and_precedence() {
    let t = T::new().await;
    let (s, _) = t
        .form("event=newCall&direction=in&from=1&to=2&call_id=alias")
        .await;
    assert_eq!(s, 200);
    assert!(t.d.call("alias").is_some());
    let (s, _) = t
        .form("event=newCall&direction=in&from=1&to=2&call_id=loser&callId=winner")
        .await;
    assert_eq!(s, 200);
    assert!(t.d.call("winner").is_some());
    assert!(t.d.call("loser").is_none());
}

#[tokio::test]
async fn error_bodies_are_html_without_accept_json() {
    let t = T::new().await;
    let r = t
        .http
        .post(format!("{}/WRONG", t.base()))
        .form(&[("event", "newCall"), ("direction", "in")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Invalid token"));
}

#[tokio::test]
async fn long_call_id_is_cut_and_breaks_the_call() {
    let t = T::new().await;
    let long = "x".repeat(300);
    let (s, _) = t
        .form(&format!(
            "event=newCall&direction=in&from=1&to=2&callId={long}"
        ))
        .await;
    assert_eq!(s, 200);
    assert!(t.d.call(&"x".repeat(250)).is_some());
    let (s, _) = t
        .form(&format!("event=hangup&direction=in&callId={long}"))
        .await;
    assert_eq!(s, 500);
}

#[tokio::test]
async fn log_endpoint_shape() {
    let t = T::new().await;
    t.form("event=newCall&direction=in&from=4912347114711&to=4930600000000&callId=L&user%5B%5D=a")
        .await;
    t.json(
        json!({"event":"answer","direction":"in","callId":"L","user":"a","answeringNumber":"201"}),
    )
    .await;
    t.json(json!({"event":"hangup","direction":"in","callId":"L","cause":"normalClearing"}))
        .await;
    let v: Value = t
        .http
        .get(format!("{}/log", t.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0]["seq"], 1);
    assert_eq!(reqs[0]["status"], 200);
    assert_eq!(reqs[0]["event"], "newCall");
    assert_eq!(reqs[0]["callId"], "L");
    assert_eq!(reqs[0]["user"], json!(["a"]));
    assert_eq!(reqs[0]["response"], json!({}));
    assert!(reqs[0].get("answeringNumber").is_none());
    assert!(reqs[0].get("cause").is_none());
    assert!(reqs[0]["at_ms"].is_u64());
    assert_eq!(reqs[1]["user"], "a");
    assert_eq!(reqs[1]["answeringNumber"], "201");
    assert_eq!(reqs[2]["cause"], "normalClearing");
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(
        calls[0],
        json!({"callId":"L","direction":"in","from":"4912347114711","to":"4930600000000",
               "user":["a"],"state":"hangup","answered":true,"missed":false,
               "answeringNumber":"201","cause":"normalClearing","hangups":1})
    );
}

#[tokio::test]
async fn mode_endpoint_fail_delay_reset_normal() {
    let t = T::new().await;
    let set = |m: Value| {
        let http = t.http.clone();
        let url = format!("{}/_mode", t.base());
        async move { http.post(url).json(&m).send().await.unwrap().status() }
    };
    assert_eq!(set(json!({"mode":"fail","status":503})).await, 200);
    assert_eq!(t.d.mode(), Mode::Fail(503));
    let (s, _) = t
        .form("event=newCall&direction=in&from=1&to=2&callId=f")
        .await;
    assert_eq!(s, 503);
    assert!(t.d.call("f").is_none(), "a failing double must not process");
    assert_eq!(t.d.log().last().unwrap().status, 503);

    assert_eq!(set(json!({"mode":"reset"})).await, 200);
    let r = t
        .http
        .post(format!("{}/TOKEN", t.base()))
        .form(&[("event", "newCall"), ("direction", "in"), ("callId", "r")])
        .send()
        .await;
    assert!(r.is_err(), "reset must close without answering: {r:?}");
    assert!(t.d.call("r").is_none());
    assert_eq!(t.d.log().last().unwrap().status, 0);

    assert_eq!(set(json!({"mode":"delay","ms":150})).await, 200);
    let t0 = Instant::now();
    let (s, _) = t
        .form("event=newCall&direction=in&from=1&to=2&callId=dl")
        .await;
    assert_eq!(s, 200);
    assert!(t0.elapsed() >= Duration::from_millis(150));

    assert_eq!(set(json!({"mode":"normal"})).await, 200);
    assert_eq!(t.d.mode(), Mode::Normal);
    assert_eq!(set(json!({"mode":"sideways"})).await, 400);
    assert_eq!(set(json!({"mode":"fail"})).await, 400);
}
