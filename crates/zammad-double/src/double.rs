//! A Zammad Generic CTI test double: an HTTP server that answers like Zammad does
//! (see the crate docs for the behaviour), keeps per-call state, logs every request and can be
//! switched into failure modes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sipcti_table::StableMap;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// Most requests kept in the double's log (oldest dropped first).
pub const MAX_LOGGED_REQUESTS: usize = 100_000;
/// Most calls kept in the double's state (oldest forgotten first).
pub const MAX_CALLS: usize = 100_000;
/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 1 << 20;

// Column sizes of Zammad's cti_logs table: longer strings are cut silently.
const COL_CALL_ID: usize = 250;
const COL_NUMBER: usize = 100;
const COL_QUEUE: usize = 250;
const COL_CAUSE: usize = 500;

/// One caller-id routing rule for outbound calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdRule {
    /// Pattern matched against the outbound `to`; `*` means one or more characters, every
    /// other character matches itself (`4930*` matches `49301`, not `4930`).
    pub pattern: String,
    /// Caller id answered (`caller_id`) when the pattern matches.
    pub caller_id: String,
}

/// Zammad's CTI routing configuration, as the double applies it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Inbound `from` numbers to reject (exact string equality).
    #[serde(default)]
    pub block: Vec<String>,
    /// Outbound caller-id rules, first match wins.
    #[serde(default)]
    pub caller_id: Vec<CallerIdRule>,
    /// Caller id for outbound calls no rule matches.
    #[serde(default)]
    pub default_caller_id: Option<String>,
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not valid TOML, or unknown keys / wrong types.
    #[error("invalid CTI rules: {0}")]
    Toml(#[from] toml::de::Error),
    /// A caller-id rule has an empty pattern or caller id.
    #[error("invalid caller-id rule #{index}: {reason}")]
    Rule {
        /// Position of the rule (0-based).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl Rules {
    /// Parse rules from TOML:
    ///
    /// ```toml
    /// block = ["491715000000"]
    /// default_caller_id = "4930777000000"
    /// [[caller_id]]
    /// pattern = "41*"
    /// caller_id = "41715880339000"
    /// ```
    ///
    /// All keys are optional; unknown keys are an error ([`RulesError::Toml`]), as is a rule
    /// with an empty pattern or caller id ([`RulesError::Rule`]).
    pub fn from_toml_str(s: &str) -> Result<Rules, RulesError> {
        let rules: Rules = toml::from_str(s)?;
        for (index, r) in rules.caller_id.iter().enumerate() {
            if r.pattern.is_empty() {
                return Err(RulesError::Rule {
                    index,
                    reason: "empty pattern".into(),
                });
            }
            if r.caller_id.is_empty() {
                return Err(RulesError::Rule {
                    index,
                    reason: "empty caller_id".into(),
                });
            }
        }
        Ok(rules)
    }

    /// True if an inbound `from` is on the block list (exact equality, no normalisation).
    pub fn is_blocked(&self, from: &str) -> bool {
        self.block.iter().any(|b| b == from)
    }

    /// Caller id for an outbound call to `to`: the first rule whose pattern matches, else the
    /// default caller id, else `None`.
    pub fn caller_id_for(&self, to: &str) -> Option<&str> {
        self.caller_id
            .iter()
            .find(|r| pattern_matches(&r.pattern, to))
            .map(|r| r.caller_id.as_str())
            .or(self.default_caller_id.as_deref())
    }
}

/// Match `s` against a caller-id `pattern` where `*` stands for one or more characters and
/// every other character for itself. The whole of `s` must match.
pub fn pattern_matches(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // reach[j]: pattern prefix consumed so far matches t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            // one or more characters: next[j] if reach[i] for some i < j
            let mut seen = false;
            for j in 0..=t.len() {
                if seen {
                    next[j] = true;
                }
                if reach[j] {
                    seen = true;
                }
            }
        } else {
            for j in 1..=t.len() {
                next[j] = reach[j - 1] && t[j - 1] == pc;
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// Configuration of the double.
#[derive(Clone, Debug, Default)]
pub struct DoubleConfig {
    /// The only token accepted in `/api/v1/cti/{token}`; any other gets 401.
    pub token: String,
    /// Block list and caller-id rules.
    pub rules: Rules,
}

/// Behaviour of the double, switchable at run time ([`ZammadDouble::set_mode`] or
/// `POST /api/v1/cti/_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Behave like Zammad.
    Normal,
    /// Process the request like Zammad, then wait this long before answering (a client that
    /// times out meanwhile has still reached Zammad).
    Delay(Duration),
    /// Answer every CTI request with this HTTP status without processing it.
    Fail(u16),
    /// Read the request, then close the connection without answering or processing it.
    Reset,
    /// Process the request like Zammad, then close the connection without answering: the
    /// client cannot tell it from [`Mode::Reset`], but Zammad has the event (a `hangup`
    /// sent again after this is Zammad's second hangup, which flips the missed flag).
    ProcessThenReset,
}

/// State of a call in the double, named as Zammad's `cti_logs.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallState {
    /// Ringing (`newCall` received).
    NewCall,
    /// Answered.
    Answer,
    /// Hung up.
    Hangup,
}

/// One call as the double stores it (what Zammad's caller log would show).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Call id (cut to 250 characters, like Zammad).
    #[serde(rename = "callId")]
    pub call_id: String,
    /// `in` or `out`, from the newCall.
    pub direction: String,
    /// Calling number (cut to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Called number (cut to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Queue of the newCall (cut to 250 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `user` of the newCall, as sent (string or array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
    /// Current state.
    pub state: CallState,
    /// An `answer` was accepted (not ignored).
    pub answered: bool,
    /// Answered by `user=voicemail`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub voicemail: bool,
    /// Missed as Zammad computes it on each hangup: the hangup's direction is `in` and the call
    /// was still ringing (cause other than `forwarded`) or was answered by voicemail.
    pub missed: bool,
    /// The newCall was answered with reject.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rejected: bool,
    /// Caller id answered to an outbound newCall (dial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// `answeringNumber` of the last answer/hangup that carried one.
    #[serde(
        rename = "answeringNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub answering_number: Option<String>,
    /// Cause of the last hangup (cut to 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Number of hangups received (more than 1 is a client bug).
    pub hangups: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One request as the double logged it. Fields are as sent (not cut); absent ones are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Milliseconds since the double started, at receipt.
    pub at_ms: u64,
    /// HTTP status answered; 0 when the connection was reset without processing
    /// ([`Mode::Reset`]). Under [`Mode::ProcessThenReset`] the status the processing chose
    /// (e.g. 200), though the client never received it.
    pub status: u16,
    /// `event` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `direction` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// `callId` (or `call_id`) as sent.
    #[serde(rename = "callId", default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// `from` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `to` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `user` as sent: a string, or an array for `user[]` / JSON arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
    /// `answeringNumber` as sent.
    #[serde(
        rename = "answeringNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub answering_number: Option<String>,
    /// `cause` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// `queue` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Request `Content-Type` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Request `Accept` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    /// JSON body answered (`None` on reset, or when the error body was sent as HTML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// The double's state. Its logs hold up to 100,000 entries: each entry is
/// boxed and the call table is a [`StableMap`], so growing them moves 8 to
/// 16 bytes per entry instead of a whole record (a plain `VecDeque` of
/// `LoggedRequest`s copied ~11 MB at once when it grew past 32,768, and the
/// answers waiting behind that copy showed up in the proxy's benchmarks as
/// its INVITE delay).
struct DState {
    mode: Mode,
    seq: u64,
    requests: VecDeque<Box<LoggedRequest>>,
    calls: StableMap<String, CallRecord>,
    call_order: VecDeque<String>,
}

struct Inner {
    cfg: DoubleConfig,
    started: Instant,
    st: Mutex<DState>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, DState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to a running double (see [`spawn_double`]). Cheap to clone.
#[derive(Clone)]
pub struct ZammadDouble {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl std::fmt::Debug for ZammadDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZammadDouble")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ZammadDouble {
    /// Address the double listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CTI URL with the configured token, `http://{addr}/api/v1/cti/{token}`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/cti/{}", self.addr, self.inner.cfg.token)
    }

    /// Switch behaviour; applies to requests arriving from now on.
    pub fn set_mode(&self, m: Mode) {
        self.inner.lock().mode = m;
    }

    /// Current behaviour.
    pub fn mode(&self) -> Mode {
        self.inner.lock().mode
    }

    /// Copy of the request log, oldest first (at most [`MAX_LOGGED_REQUESTS`]).
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.inner
            .lock()
            .requests
            .iter()
            .map(|r| LoggedRequest::clone(r))
            .collect()
    }

    /// Copy of the per-call state, in order of the newCalls (at most [`MAX_CALLS`]).
    pub fn calls(&self) -> Vec<CallRecord> {
        calls_in_order(&self.inner.lock())
    }

    /// State of one call by its (stored) callId.
    pub fn call(&self, call_id: &str) -> Option<CallRecord> {
        self.inner.lock().calls.get(call_id).cloned()
    }
}

fn calls_in_order(st: &DState) -> Vec<CallRecord> {
    st.call_order
        .iter()
        .filter_map(|id| st.calls.get(id).cloned())
        .collect()
}

/// Start a double on `listener` and serve it in a spawned task (on the current tokio runtime).
/// Returns its handle. Errors: the listener's address cannot be read.
pub async fn spawn_double(
    listener: TcpListener,
    cfg: DoubleConfig,
) -> std::io::Result<ZammadDouble> {
    let addr = listener.local_addr()?;
    let inner = new_inner(cfg);
    let router = router(inner.clone());
    tokio::spawn(async move {
        if let Err(e) = accept_loop(listener, router).await {
            warn!(error = %e, "Zammad double stopped");
        }
    });
    Ok(ZammadDouble { inner, addr })
}

/// Serve a double on `listener` until accepting fails (for the CLI). Returns that error.
pub async fn serve_double(listener: TcpListener, cfg: DoubleConfig) -> std::io::Result<()> {
    let router = router(new_inner(cfg));
    accept_loop(listener, router).await
}

fn new_inner(cfg: DoubleConfig) -> Arc<Inner> {
    Arc::new(Inner {
        cfg,
        started: Instant::now(),
        st: Mutex::new(DState {
            mode: Mode::Normal,
            seq: 0,
            requests: VecDeque::new(),
            calls: StableMap::default(),
            call_order: VecDeque::new(),
        }),
    })
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/v1/cti/_mode", post(set_mode_handler))
        .route("/api/v1/cti/log", get(log_handler))
        .route("/api/v1/cti/{token}", post(cti_handler))
        .fallback(|| async { json_response(404, json!({"error": "No route matches"})) })
        .with_state(inner)
}

/// Lets a handler close its own connection without answering (Mode::Reset).
#[derive(Clone)]
struct Killer(Arc<Notify>);

async fn accept_loop(listener: TcpListener, router: Router) -> std::io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let router = router.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let killer = Killer(kill.clone());
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(killer.clone());
                    router.clone().oneshot(req)
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        debug!(%peer, error = %e, "double connection error");
                    }
                }
                _ = kill.notified() => {
                    debug!(%peer, "double reset the connection");
                }
            }
        });
    }
}

fn json_response(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn log_handler(State(inner): State<Arc<Inner>>) -> Response {
    let st = inner.lock();
    let body = json!({
        "requests": st.requests.iter().collect::<Vec<_>>(),
        "calls": calls_in_order(&st),
    });
    drop(st);
    json_response(200, body)
}

async fn set_mode_handler(State(inner): State<Arc<Inner>>, body: axum::body::Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return json_response(400, json!({"error": format!("invalid JSON: {e}")})),
    };
    let mode = match v.get("mode").and_then(Value::as_str) {
        Some("normal") => Mode::Normal,
        Some("reset") => Mode::Reset,
        Some("process_reset") => Mode::ProcessThenReset,
        Some("delay") => match v.get("ms").and_then(Value::as_u64) {
            Some(ms) => Mode::Delay(Duration::from_millis(ms)),
            None => return json_response(400, json!({"error": "delay needs \"ms\""})),
        },
        Some("fail") => match v
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=999).contains(s))
        {
            Some(s) => Mode::Fail(s),
            None => return json_response(400, json!({"error": "fail needs \"status\""})),
        },
        _ => {
            return json_response(
                400,
                json!({"error": "mode must be normal, delay, fail, reset or process_reset"}),
            )
        }
    };
    inner.lock().mode = mode;
    json_response(200, json!({"mode": format!("{mode:?}")}))
}

/// Request parameters as Rails would see them: query merged with a JSON or form body.
fn params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    if let Some(q) = query {
        merge_form(&mut map, q.as_bytes());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(obj)) => map.extend(obj),
                Ok(_) => {}
                Err(e) => return Err(format!("invalid JSON body: {e}")),
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        merge_form(&mut map, body);
    }
    Ok(map)
}

fn merge_form(map: &mut Map<String, Value>, raw: &[u8]) {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw).unwrap_or_default();
    for (k, v) in pairs {
        if let Some(base) = k.strip_suffix("[]") {
            match map.get_mut(base) {
                Some(Value::Array(a)) => a.push(Value::String(v)),
                _ => {
                    map.insert(base.to_string(), Value::Array(vec![Value::String(v)]));
                }
            }
        } else {
            map.insert(k, Value::String(v));
        }
    }
}

fn scalar(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn cti_handler(
    State(inner): State<Arc<Inner>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let at_ms = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let killer = req.extensions().get::<Killer>().cloned();
    let headers = req.headers().clone();
    let query = req.uri().query().map(str::to_string);
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return json_response(413, json!({"error": "request body too large"})),
    };
    let accept_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"));

    let parsed = params(&headers, query.as_deref(), &body);
    let p = parsed.clone().unwrap_or_default();
    let mut entry = LoggedRequest {
        seq: 0,
        at_ms,
        status: 0,
        event: scalar(&p, "event"),
        direction: scalar(&p, "direction"),
        call_id: scalar(&p, "callId").or_else(|| scalar(&p, "call_id")),
        from: scalar(&p, "from"),
        to: scalar(&p, "to"),
        user: p.get("user").cloned(),
        answering_number: scalar(&p, "answeringNumber"),
        cause: scalar(&p, "cause"),
        queue: scalar(&p, "queue"),
        content_type: header_str(&headers, header::CONTENT_TYPE),
        accept: header_str(&headers, header::ACCEPT),
        response: None,
    };

    let (status, answer, delay) = {
        let mut st = inner.lock();
        let mode = st.mode;
        let (status, answer, delay) = match mode {
            Mode::Reset => (0, None, None),
            Mode::Fail(code) => (
                code,
                Some(json!({"error": format!("simulated failure (HTTP {code})")})),
                None,
            ),
            Mode::ProcessThenReset => {
                // processed, logged with the status Zammad chose, never answered
                let (status, _) = match parsed {
                    Ok(p) => process(&inner.cfg, &mut st, &token, &p),
                    Err(e) => (400, json!({ "error": e })),
                };
                (status, None, None)
            }
            Mode::Normal | Mode::Delay(_) => {
                let (status, answer) = match parsed {
                    Ok(p) => process(&inner.cfg, &mut st, &token, &p),
                    Err(e) => (400, json!({ "error": e })),
                };
                let delay = match mode {
                    Mode::Delay(d) => Some(d),
                    _ => None,
                };
                (status, Some(answer), delay)
            }
        };
        st.seq += 1;
        entry.seq = st.seq;
        entry.status = status;
        entry.response = if status >= 400 && !accept_json {
            None
        } else {
            answer.clone()
        };
        if st.requests.len() >= MAX_LOGGED_REQUESTS {
            st.requests.pop_front();
        }
        st.requests.push_back(Box::new(entry));
        (status, answer, delay)
    };

    let Some(answer) = answer else {
        // Reset: close the connection without answering.
        if let Some(Killer(kill)) = killer {
            kill.notify_one();
            std::future::pending::<()>().await;
        }
        return json_response(503, json!({"error": "reset"}));
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if status >= 400 && !accept_json {
        // Rails renders errors in the requested format; without Accept JSON that is HTML.
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let msg = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .replace('<', "&lt;");
        return (
            code,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<!DOCTYPE html><html><body><h1>{status}</h1><p>{msg}</p></body></html>"),
        )
            .into_response();
    }
    json_response(status, answer)
}

fn error_id(st: &DState) -> String {
    format!("Error ID dbl{:06}", st.seq + 1)
}

/// Zammad's processing of one CTI request. Returns status and JSON answer.
fn process(
    cfg: &DoubleConfig,
    st: &mut DState,
    token: &str,
    p: &Map<String, Value>,
) -> (u16, Value) {
    if token != cfg.token {
        return (
            401,
            json!({"error": "Invalid token, please contact your admin!"}),
        );
    }
    let direction = match scalar(p, "direction").as_deref() {
        Some(d @ ("in" | "out")) => d.to_string(),
        _ => return (422, json!({"error": "Invalid 'direction'!"})),
    };
    let event = match scalar(p, "event").as_deref() {
        Some(e @ ("newCall" | "answer" | "hangup")) => e.to_string(),
        _ => {
            return (
                422,
                json!({"error": format!("{}: Unknown or missing event", error_id(st))}),
            )
        }
    };
    let Some(call_id) = scalar(p, "callId")
        .or_else(|| scalar(p, "call_id"))
        .filter(|c| !c.is_empty())
    else {
        return (
            422,
            json!({"error": format!("{}: callId is missing", error_id(st))}),
        );
    };
    let unknown_call = |st: &DState| {
        (
            500,
            json!({"error": format!("{}: Please contact your administrator.", error_id(st))}),
        )
    };
    let user = p.get("user").cloned();
    let answering_number = scalar(p, "answeringNumber").map(|s| cut(&s, COL_NUMBER));
    match event.as_str() {
        "newCall" => {
            // Zammad looks the call up by the id as sent, but stores it cut to the column.
            if st.calls.contains_key(&call_id) {
                return (
                    500,
                    json!({
                        "error": "This object already exists.",
                        "error_human": "This object already exists.",
                    }),
                );
            }
            let from = scalar(p, "from");
            let to = scalar(p, "to");
            let mut rec = CallRecord {
                call_id: cut(&call_id, COL_CALL_ID),
                direction: direction.clone(),
                from: from.as_deref().map(|s| cut(s, COL_NUMBER)),
                to: to.as_deref().map(|s| cut(s, COL_NUMBER)),
                queue: scalar(p, "queue").map(|s| cut(&s, COL_QUEUE)),
                user,
                state: CallState::NewCall,
                answered: false,
                voicemail: false,
                missed: false,
                rejected: false,
                caller_id: None,
                answering_number: None,
                cause: None,
                hangups: 0,
            };
            let mut answer = json!({});
            if direction == "in" && from.as_deref().is_some_and(|f| cfg.rules.is_blocked(f)) {
                rec.rejected = true;
                answer = json!({"action": "reject", "reason": "busy"});
            } else if direction == "out" {
                if let Some(cid) = cfg.rules.caller_id_for(to.as_deref().unwrap_or_default()) {
                    rec.caller_id = Some(cid.to_string());
                    answer = json!({
                        "action": "dial",
                        "caller_id": cid,
                        "number": to.clone().unwrap_or_default(),
                    });
                }
            }
            if st.calls.len() >= MAX_CALLS {
                if let Some(old) = st.call_order.pop_front() {
                    st.calls.remove(&old);
                }
            }
            st.call_order.push_back(rec.call_id.clone());
            st.calls.insert(rec.call_id.clone(), rec);
            (200, answer)
        }
        "answer" => {
            let Some(rec) = st.calls.get_mut(&call_id) else {
                return unknown_call(st);
            };
            if rec.state == CallState::Hangup {
                // answer after hangup is ignored
                return (200, json!({}));
            }
            rec.state = CallState::Answer;
            rec.answered = true;
            rec.voicemail = match &user {
                Some(Value::String(u)) => u == "voicemail",
                Some(Value::Array(a)) => a.iter().any(|u| u.as_str() == Some("voicemail")),
                _ => false,
            };
            if answering_number.is_some() {
                rec.answering_number = answering_number;
            }
            (200, json!({}))
        }
        _ => {
            // hangup
            let Some(rec) = st.calls.get_mut(&call_id) else {
                return unknown_call(st);
            };
            let cause = scalar(p, "cause").map(|s| cut(&s, COL_CAUSE));
            let ringing = rec.state == CallState::NewCall;
            let forwarded = cause.as_deref() == Some("forwarded");
            rec.missed = direction == "in" && ((ringing && !forwarded) || rec.voicemail);
            rec.state = CallState::Hangup;
            rec.hangups = rec.hangups.saturating_add(1);
            rec.cause = cause;
            if answering_number.is_some() {
                rec.answering_number = answering_number;
            }
            (200, json!({}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_is_one_or_more() {
        assert!(pattern_matches("4930*", "49301"));
        assert!(pattern_matches("4930*", "4930123456"));
        assert!(!pattern_matches("4930*", "4930"));
        assert!(!pattern_matches("4930*", "4931"));
        assert!(pattern_matches("41*", "4147110000000"));
        assert!(pattern_matches("491714000000", "491714000000"));
        assert!(!pattern_matches("491714000000", "4917140000001"));
        assert!(pattern_matches("*", "1"));
        assert!(!pattern_matches("*", ""));
        assert!(pattern_matches("4*0*", "41203"));
        assert!(!pattern_matches("4*0*", "4120"));
        assert!(pattern_matches("4**", "412"));
        assert!(!pattern_matches("4**", "41"));
        assert!(pattern_matches("", ""));
        assert!(!pattern_matches("", "1"));
    }

    #[test]
    fn rules_from_toml() {
        let r = Rules::from_toml_str(
            r#"
            block = ["491715000000"]
            default_caller_id = "4930777000000"
            [[caller_id]]
            pattern = "41*"
            caller_id = "41715880339000"
            [[caller_id]]
            pattern = "491714000000"
            caller_id = "41715880339000"
            "#,
        )
        .unwrap();
        assert!(r.is_blocked("491715000000"));
        assert!(!r.is_blocked("+491715000000"));
        assert_eq!(r.caller_id_for("4147110000000"), Some("41715880339000"));
        assert_eq!(r.caller_id_for("491714000000"), Some("41715880339000"));
        assert_eq!(r.caller_id_for("4912347114711"), Some("4930777000000"));
        assert_eq!(Rules::from_toml_str("").unwrap(), Rules::default());
        assert_eq!(Rules::default().caller_id_for("41"), None);
    }

    #[test]
    fn rules_errors() {
        assert!(matches!(
            Rules::from_toml_str("blok = []"),
            Err(RulesError::Toml(_))
        ));
        assert!(matches!(
            Rules::from_toml_str("block = \"x\""),
            Err(RulesError::Toml(_))
        ));
        assert!(matches!(
            Rules::from_toml_str("[[caller_id]]\npattern = \"\"\ncaller_id = \"1\""),
            Err(RulesError::Rule { index: 0, .. })
        ));
    }

    #[test]
    fn form_arrays() {
        let mut m = Map::new();
        merge_form(&mut m, b"user%5B%5D=user+1&user%5B%5D=user+2&callId=x");
        assert_eq!(m["user"], json!(["user 1", "user 2"]));
        assert_eq!(m["callId"], json!("x"));
    }
}
