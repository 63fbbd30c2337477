//! `[admin]`: the operator's HTTP endpoint of `sipcti run`.
//!
//! * `GET /metrics`: Prometheus text format (version 0.0.4, through
//!   `prometheus-client`), every name prefixed `sipcti_`.
//! * `GET /health`: 200 `ok` while the run loop is alive (its SIP sockets
//!   are bound and it published a [`Snapshot`] within the last 5 s), else
//!   503.
//! * `GET /ready`: 200 when healthy and Zammad is not known to be
//!   unreachable, else 503; a small JSON body says why ([`ready_body`]).
//!
//! The core stays sans-IO and is never locked by a scrape: the run loop
//! (the one task that owns the core) copies its counters into a
//! [`Snapshot`] once a second and publishes it through a
//! `tokio::sync::watch` channel; a scrape encodes the latest snapshot
//! ([`SnapshotCollector`]). Counters the edge sees first hand (calls by
//! direction and cause, CTI events handed to the client, Zammad's newCall
//! latency) are atomics in [`EdgeMetrics`], updated where the core's
//! outputs are carried out. Snapshot values lag by at most 1 s.
//!
//! Nothing served holds a secret: the Zammad URL (and its token) is never
//! part of a metric, a label or the `/ready` body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sipcti_dialog::CallEvent;
use sipcti_event::{Direction, EventKind};
use tokio::sync::watch;

/// How old the latest [`Snapshot`] may be for `/health` to say the run
/// loop is alive.
pub const HEALTH_MAX_AGE: Duration = Duration::from_secs(5);

/// How often the run loop publishes a [`Snapshot`].
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Upper bounds (seconds) of the Zammad newCall latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0,
];

/// A label set of one or two `(name, value)` pairs with static strings.
type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// The counters of the whole proxy at one instant, copied by the run loop
/// (cheap: plain numbers) and encoded by a scrape.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// When the run loop took it; `None` before the first one.
    pub taken: Option<Instant>,
    /// The core's counters.
    pub core: sipcti_core::CoreStats,
    /// The per-source admission counters.
    pub admission: sipcti_core::admission::AdmissionStats,
    /// The call tracker's counters.
    pub tracker: sipcti_dialog::TrackerStats,
    /// Open server transactions.
    pub server_tx: usize,
    /// Open client transactions.
    pub client_tx: usize,
    /// Registration bindings held.
    pub bindings: usize,
    /// The socket edge's counters.
    pub net: sipcti_transport::net::NetStats,
    /// The CTI client's counters.
    pub cti: sipcti_cti::Stats,
}

impl Snapshot {
    /// Take a snapshot of `core`, `net` and `cti` at `now`.
    pub fn take(
        now: Instant,
        core: &sipcti_core::ProxyCore,
        net: sipcti_transport::net::NetStats,
        cti: sipcti_cti::Stats,
    ) -> Snapshot {
        let (server_tx, client_tx) = core.transactions();
        Snapshot {
            taken: Some(now),
            core: core.stats().clone(),
            admission: core.admission().stats().clone(),
            tracker: core.tracker().stats(),
            server_tx,
            client_tx,
            bindings: core.bindings_len(),
            net,
            cti,
        }
    }
}

/// What the edge last saw of a dependency (Zammad, the outbox): when it
/// last worked and last failed. For Zammad: a newCall answered or not in
/// time; events delivered, retried, given up or refused between two
/// snapshots. For the outbox: commits made, or commits failed / changes
/// lost between two snapshots.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Last evidence it worked.
    pub last_ok: Option<Instant>,
    /// Last evidence it failed.
    pub last_error: Option<Instant>,
    /// What the last failure was (a fixed phrase, never a URL or a path).
    pub last_error_what: &'static str,
}

impl Seen {
    /// `Some(true)`: the last evidence was a success; `Some(false)`: a
    /// failure; `None`: no request yet.
    pub fn reachable(&self) -> Option<bool> {
        match (self.last_ok, self.last_error) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(ok), Some(err)) => Some(ok >= err),
        }
    }
}

/// Metrics the edge updates first hand (atomics: no lock on the call
/// path), and the Zammad evidence behind `/ready`.
#[derive(Debug)]
pub struct EdgeMetrics {
    calls_started: Family<Labels1, Counter>,
    calls_ended: Family<Labels2, Counter>,
    calls_active: Family<Labels1, Gauge>,
    cti_queued: Family<Labels1, Counter>,
    newcall_latency: Histogram,
    zammad: Mutex<Seen>,
    outbox: Mutex<Seen>,
    /// Whether a Zammad URL is configured (else events go to stdout).
    zammad_configured: bool,
    /// Whether `[zammad] outbox` is configured.
    outbox_configured: bool,
}

/// Record `what` at `now` in `seen` (`what` `None`: it worked).
fn note(seen: &Mutex<Seen>, now: Instant, what: Option<&'static str>) {
    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
    match what {
        None => s.last_ok = Some(now),
        Some(w) => {
            s.last_error = Some(now);
            s.last_error_what = w;
        }
    }
}

impl EdgeMetrics {
    /// Empty metrics; `zammad_configured` says whether `zammad.url` is
    /// set, `outbox_configured` whether `zammad.outbox` is.
    pub fn new(zammad_configured: bool, outbox_configured: bool) -> EdgeMetrics {
        let m = EdgeMetrics {
            calls_started: Family::default(),
            calls_ended: Family::default(),
            calls_active: Family::default(),
            cti_queued: Family::default(),
            newcall_latency: Histogram::new(LATENCY_BUCKETS),
            zammad: Mutex::new(Seen::default()),
            outbox: Mutex::new(Seen::default()),
            zammad_configured,
            outbox_configured,
        };
        // the series a dashboard always needs, at 0 before the first call
        // (by cause: as the causes occur)
        for d in [Direction::In, Direction::Out] {
            let l = [("direction", d.as_str())];
            let _ = m.calls_started.get_or_create(&l);
            let _ = m.calls_active.get_or_create(&l);
        }
        for k in [EventKind::NewCall, EventKind::Answer, EventKind::Hangup] {
            let _ = m.cti_queued.get_or_create(&[("event", k.as_str())]);
        }
        m
    }

    /// Count one call event the core emitted (a `newCall` starts a call,
    /// a `hangup` ends it with its cause) and its hand-over to the CTI
    /// client.
    pub fn on_event(&self, ev: &CallEvent) {
        let direction = ev.direction.as_str();
        self.cti_queued
            .get_or_create(&[("event", ev.kind.as_str())])
            .inc();
        match ev.kind {
            EventKind::NewCall => {
                self.calls_started
                    .get_or_create(&[("direction", direction)])
                    .inc();
                self.calls_active
                    .get_or_create(&[("direction", direction)])
                    .inc();
            }
            EventKind::Hangup => {
                let cause = ev.cause.map_or("none", |c| c.as_str());
                self.calls_ended
                    .get_or_create(&[("direction", direction), ("cause", cause)])
                    .inc();
                self.calls_active
                    .get_or_create(&[("direction", direction)])
                    .dec();
            }
            EventKind::Answer => {}
        }
    }

    /// A call open at the last stop (from the outbox) was handed back to
    /// the call tracker: it is active until its hangup.
    pub fn call_restored(&self, direction: Direction) {
        self.calls_active
            .get_or_create(&[("direction", direction.as_str())])
            .inc();
    }

    /// A newCall was answered by Zammad `latency` after it was queued.
    pub fn newcall_answered(&self, now: Instant, latency: Duration) {
        self.newcall_latency.observe(latency.as_secs_f64());
        self.saw_ok(now);
    }

    /// Evidence that Zammad answered at `now`.
    pub fn saw_ok(&self, now: Instant) {
        note(&self.zammad, now, None);
    }

    /// Evidence that Zammad did not answer (or refused) at `now`; `what`
    /// is a fixed phrase for `/ready`.
    pub fn saw_error(&self, now: Instant, what: &'static str) {
        note(&self.zammad, now, Some(what));
    }

    /// Compare two CTI client snapshots taken at `prev` and `now` and
    /// record what they show of Zammad: events delivered (success), and
    /// retries, give-ups or refusals (failure); and of the outbox: commits
    /// (success), failed commits or lost changes (failure). Stdout-sink
    /// mode shows nothing.
    pub fn compare_cti(&self, now: Instant, prev: &sipcti_cti::Stats, cur: &sipcti_cti::Stats) {
        if self.outbox_configured {
            if cur.outbox_lost > prev.outbox_lost {
                note(&self.outbox, now, Some("outbox changes not written"));
            } else if cur.outbox_failed_commits > prev.outbox_failed_commits {
                note(&self.outbox, now, Some("outbox commit failed"));
            } else if cur.outbox_commits > prev.outbox_commits {
                note(&self.outbox, now, None);
            }
        }
        if !self.zammad_configured {
            return;
        }
        if cur.delivered > prev.delivered {
            self.saw_ok(now);
        }
        if cur.dropped.rejected > prev.dropped.rejected {
            self.saw_error(now, "Zammad refused events (non-retryable status)");
        } else if cur.dropped.gave_up > prev.dropped.gave_up {
            self.saw_error(now, "events given up after give_up_after_s");
        } else if cur.retried > prev.retried {
            self.saw_error(now, "CTI requests failing (retrying)");
        }
    }

    /// A copy of the Zammad evidence.
    pub fn zammad(&self) -> Seen {
        self.zammad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A copy of the outbox evidence.
    pub fn outbox(&self) -> Seen {
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Encodes the latest [`Snapshot`] on each scrape (a `prometheus-client`
/// [`Collector`]): the scrape copies it out of the watch channel and never
/// touches the core.
#[derive(Debug)]
pub struct SnapshotCollector {
    rx: watch::Receiver<Snapshot>,
    /// Whether `[zammad] outbox` is configured.
    outbox_configured: bool,
}

/// Write one metric without labels.
fn one(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

/// Write one counter family with one label `key`, one value per `(label
/// value, count)`.
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &'static str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (v, n) in values {
        let labels = [(key, *v)];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.rx.borrow().clone();
        let e = &mut enc;
        let c = &s.core;
        let n = &s.net;
        let g = |v: usize| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        let k = ConstCounter::new;

        let mut m = e.encode_descriptor(
            "transactions",
            "Open SIP transactions, by kind (server or client).",
            None,
            MetricType::Gauge,
        )?;
        g(s.server_tx).encode(m.encode_family(&[("kind", "server")])?)?;
        g(s.client_tx).encode(m.encode_family(&[("kind", "client")])?)?;

        one(e, "sip_requests", "SIP requests received.", k(c.requests))?;
        one(
            e,
            "sip_responses",
            "SIP responses received.",
            k(c.responses),
        )?;
        one(
            e,
            "overloaded",
            "Requests answered 503 because the transaction table was full.",
            k(c.overloaded),
        )?;
        counters(
            e,
            "refused",
            "Requests and TCP connections refused by source: forbidden (403, not inside \
             nor trunk), rate (over its rate or banned), share (holds its share of the \
             tables), source_table_full, tcp_stranger, tcp_per_address, tcp_pool_full.",
            "reason",
            &[
                ("forbidden", c.forbidden),
                ("rate", c.rate_limited),
                ("share", c.source_share_limited),
                ("source_table_full", c.source_table_full),
                ("tcp_stranger", n.tcp_refused_stranger),
                ("tcp_per_address", n.tcp_refused_per_address),
                ("tcp_pool_full", n.tcp_refused_pool_full),
            ],
        )?;
        one(
            e,
            "source_bans",
            "Sources banned for emptying their bucket.",
            k(s.admission.bans),
        )?;
        one(
            e,
            "tcp_connections",
            "TCP connections open now (inbound and outbound).",
            g(usize::try_from(n.tcp_open).unwrap_or(usize::MAX)),
        )?;
        one(
            e,
            "tcp_connections_opened",
            "TCP connections accepted or opened.",
            k(n.tcp_opened_total),
        )?;
        let mut udp_drops = vec![
            ("queue_full", n.dropped_queue_full),
            ("too_large", n.dropped_too_large),
        ];
        if let Some(d) = n.udp_socket_drops {
            udp_drops.push(("socket_buffer", d));
        }
        counters(
            e,
            "udp_dropped",
            "UDP datagrams dropped: queue_full (the core fell behind), too_large (over \
             limits.max_message_bytes), socket_buffer (dropped by the kernel before sipcti \
             read them: the socket's receive buffer was full; absent where /proc cannot \
             tell).",
            "reason",
            &udp_drops,
        )?;
        one(
            e,
            "registration_bindings",
            "Registration bindings held.",
            g(s.bindings),
        )?;
        one(
            e,
            "calls_untracked",
            "New calls not tracked (no CTI events) because the call table was full.",
            k(s.tracker.untracked_table_full),
        )?;
        one(
            e,
            "newcall_fail_open",
            "newCalls not answered by Zammad in time (or failed): the call went on unchanged.",
            k(c.fail_open),
        )?;
        one(
            e,
            "cti_queue_depth",
            "CTI events queued or in flight in the client now.",
            g(s.cti.queued),
        )?;
        one(
            e,
            "cti_events_delivered",
            "CTI events Zammad accepted (or written to stdout without zammad.url).",
            k(s.cti.delivered),
        )?;
        one(
            e,
            "cti_retries",
            "CTI HTTP attempts after the first.",
            k(s.cti.retried),
        )?;
        let d = &s.cti.dropped;
        counters(
            e,
            "cti_events_dropped",
            "CTI events dropped, by reason.",
            "reason",
            &[
                ("queue_full", d.queue_full),
                ("gave_up", d.gave_up),
                ("rejected", d.rejected),
                ("orphaned", d.orphaned),
                ("sink_error", d.sink_error),
            ],
        )?;
        one(
            e,
            "cti_calls_dropped",
            "Calls dropped whole because the CTI queue was full.",
            k(s.cti.calls_dropped),
        )?;
        one(
            e,
            "cti_hangups_unconfirmed",
            "hangups that may have reached Zammad unconfirmed, not sent again (a second \
             hangup would flip Zammad's missed flag).",
            k(s.cti.hangups_unconfirmed),
        )?;
        one(
            e,
            "cti_open_calls",
            "Calls whose newCall was admitted and whose hangup was not submitted yet.",
            g(s.cti.open_calls),
        )?;
        one(
            e,
            "cti_recovered_events",
            "Events loaded from the outbox at start, to deliver.",
            k(s.cti.recovered_events),
        )?;
        one(
            e,
            "cti_recovered_open_calls",
            "Calls found open in the outbox at start.",
            k(s.cti.recovered_open_calls),
        )?;
        one(
            e,
            "cti_open_calls_closed",
            "Recovered open calls closed with a hangup after their timeout.",
            k(s.cti.open_calls_closed),
        )?;
        one(
            e,
            "outbox_oldest_age_seconds",
            "How long the oldest CTI event not yet delivered has waited (0: none waits).",
            ConstGauge::new(s.cti.oldest_queued_age.as_secs_f64()),
        )?;
        one(
            e,
            "outbox_events",
            "CTI events not yet delivered, each held in the durable outbox (0: no outbox \
             configured).",
            g(if self.outbox_configured {
                s.cti.queued
            } else {
                0
            }),
        )?;
        one(
            e,
            "outbox_commits",
            "Outbox group commits made.",
            k(s.cti.outbox_commits),
        )?;
        one(
            e,
            "outbox_failed_commits",
            "Outbox commits that failed (each retried).",
            k(s.cti.outbox_failed_commits),
        )?;
        one(
            e,
            "outbox_lost",
            "Outbox changes never written (events delivered, but not durable).",
            k(s.cti.outbox_lost),
        )?;
        Ok(())
    }
}

/// Everything the admin server serves from.
#[derive(Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    snapshot: watch::Receiver<Snapshot>,
    edge: Arc<EdgeMetrics>,
}

impl AdminState {
    /// The registry of `edge`'s metrics and the snapshot collector, all
    /// prefixed `sipcti_`; `snapshot` is the run loop's channel.
    pub fn new(edge: Arc<EdgeMetrics>, snapshot: watch::Receiver<Snapshot>) -> AdminState {
        let mut r = Registry::with_prefix("sipcti");
        r.register(
            "calls_started",
            "Calls that got a newCall, by direction",
            edge.calls_started.clone(),
        );
        r.register(
            "calls",
            "Calls ended (their hangup), by direction and Zammad cause",
            edge.calls_ended.clone(),
        );
        r.register(
            "calls_active",
            "Calls started and not yet ended, by direction",
            edge.calls_active.clone(),
        );
        r.register(
            "cti_events_queued",
            "CTI events handed to the CTI client, by event",
            edge.cti_queued.clone(),
        );
        r.register(
            "zammad_newcall_seconds",
            "Time from queueing a newCall to Zammad's answer, for answered newCalls \
             (not answered in time: sipcti_newcall_fail_open_total)",
            edge.newcall_latency.clone(),
        );
        r.register_collector(Box::new(SnapshotCollector {
            rx: snapshot.clone(),
            outbox_configured: edge.outbox_configured,
        }));
        AdminState {
            registry: Arc::new(r),
            snapshot,
            edge,
        }
    }

    /// The Prometheus text of every metric.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        // writing to a String cannot fail; a collector error leaves a partial text
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// Whether the run loop published a snapshot within [`HEALTH_MAX_AGE`]
    /// of `now`.
    pub fn healthy(&self, now: Instant) -> bool {
        self.snapshot
            .borrow()
            .taken
            .is_some_and(|t| now.saturating_duration_since(t) <= HEALTH_MAX_AGE)
    }
}

/// The `/ready` answer at `now`: whether sipcti is ready, and the JSON body
/// saying why (`ready`, `sip`, `zammad`, `outbox`).
///
/// `zammad.reachable` is `true`/`false` by the last evidence (a newCall
/// answered or not in time, events delivered or retried/refused), `null`
/// before any request or without `zammad.url` (`"mode": "stdout"`).
/// `outbox` is `"not configured"`, or says whether it is `writable` by the
/// last evidence (commits made, or commits failed / changes lost; `null`
/// before the first commit). Not ready: the run loop is not alive, Zammad
/// is known unreachable, or the outbox known not writable.
pub fn ready_body(state: &AdminState, now: Instant) -> (bool, serde_json::Value) {
    let healthy = state.healthy(now);
    let queued = state.snapshot.borrow().cti.queued;
    let z = state.edge.zammad();
    let ago = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_secs_f64());
    let reachable = if state.edge.zammad_configured {
        z.reachable()
    } else {
        None
    };
    let (outbox, writable) = if state.edge.outbox_configured {
        let o = state.edge.outbox();
        let writable = o.reachable();
        let body = serde_json::json!({
            "writable": writable,
            "last_error": o.last_error.map(|_| o.last_error_what),
            "last_error_s_ago": ago(o.last_error),
        });
        (body, writable)
    } else {
        (serde_json::json!("not configured"), None)
    };
    let ready = healthy && reachable != Some(false) && writable != Some(false);
    let body = serde_json::json!({
        "ready": ready,
        "sip": if healthy { "up" } else { "down" },
        "zammad": {
            "mode": if state.edge.zammad_configured { "http" } else { "stdout" },
            "reachable": reachable,
            "last_ok_s_ago": ago(z.last_ok),
            "last_error_s_ago": ago(z.last_error),
            "last_error": z.last_error.map(|_| z.last_error_what),
            "queued": queued,
        },
        "outbox": outbox,
    });
    (ready, body)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        s.metrics_text(),
    )
}

async fn health(State(s): State<AdminState>) -> impl IntoResponse {
    if s.healthy(Instant::now()) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "run loop not alive\n")
    }
}

async fn ready(State(s): State<AdminState>) -> impl IntoResponse {
    let (ok, body) = ready_body(&s, Instant::now());
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

/// Bind `listen` and serve `/metrics`, `/health` and `/ready` from `state`
/// in a spawned task, until the run loop drops its snapshot sender.
/// Returns the bound address (`listen` may say port 0).
///
/// Errors: the address cannot be bound.
pub async fn serve(listen: SocketAddr, state: AdminState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let mut closed = state.snapshot.clone();
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state);
    tokio::spawn(async move {
        let stopped = async move { while closed.changed().await.is_ok() {} };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "admin server stopped");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipcti_event::Cause;

    fn ev(kind: EventKind, direction: Direction, cause: Option<Cause>) -> CallEvent {
        CallEvent {
            kind,
            call_id: "c1".into(),
            direction,
            from: "4930111".into(),
            to: "4930222".into(),
            user: None,
            group: vec![],
            queue: None,
            answering_number: None,
            cause,
            at: Instant::now(),
            sip_call_id: "sip-c1".into(),
        }
    }

    #[test]
    fn calls_are_counted_by_direction_and_cause_and_snapshot_values_encoded() {
        let edge = Arc::new(EdgeMetrics::new(true, false));
        let (tx, rx) = watch::channel(Snapshot::default());
        let state = AdminState::new(edge.clone(), rx);
        edge.on_event(&ev(EventKind::NewCall, Direction::Out, None));
        edge.on_event(&ev(EventKind::NewCall, Direction::In, None));
        edge.on_event(&ev(EventKind::Answer, Direction::Out, None));
        edge.on_event(&ev(
            EventKind::Hangup,
            Direction::Out,
            Some(Cause::NormalClearing),
        ));
        edge.newcall_answered(Instant::now(), Duration::from_millis(3));
        let mut snap = Snapshot {
            taken: Some(Instant::now()),
            server_tx: 7,
            ..Snapshot::default()
        };
        snap.cti.delivered = 5;
        snap.cti.dropped.queue_full = 2;
        snap.core.rate_limited = 3;
        tx.send_replace(snap);
        let t = state.metrics_text();
        for line in [
            "sipcti_calls_total{direction=\"out\",cause=\"normalClearing\"} 1",
            "sipcti_calls_started_total{direction=\"in\"} 1",
            "sipcti_calls_active{direction=\"out\"} 0",
            "sipcti_calls_active{direction=\"in\"} 1",
            "sipcti_cti_events_queued_total{event=\"newCall\"} 2",
            "sipcti_zammad_newcall_seconds_count 1",
            "sipcti_zammad_newcall_seconds_bucket{le=\"0.005\"} 1",
            "sipcti_transactions{kind=\"server\"} 7",
            "sipcti_cti_events_delivered_total 5",
            "sipcti_cti_events_dropped_total{reason=\"queue_full\"} 2",
            "sipcti_refused_total{reason=\"rate\"} 3",
            "sipcti_outbox_events 0",
            "sipcti_outbox_lost_total 0",
            "# TYPE sipcti_calls_total counter",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
        assert!(state.healthy(Instant::now()));
        let (ok, body) = ready_body(&state, Instant::now());
        assert!(ok, "{body}");
        assert_eq!(body["zammad"]["reachable"], true);
    }

    #[test]
    fn health_needs_a_fresh_snapshot_and_ready_a_reachable_zammad() {
        let edge = Arc::new(EdgeMetrics::new(true, false));
        let (tx, rx) = watch::channel(Snapshot::default());
        let state = AdminState::new(edge.clone(), rx);
        let now = Instant::now();
        assert!(!state.healthy(now), "no snapshot yet");
        tx.send_replace(Snapshot {
            taken: Some(now),
            ..Snapshot::default()
        });
        assert!(state.healthy(now));
        assert!(!state.healthy(now + HEALTH_MAX_AGE + Duration::from_secs(1)));
        // no request yet: reachable unknown, ready
        let (ok, body) = ready_body(&state, now);
        assert!(ok && body["zammad"]["reachable"].is_null(), "{body}");
        // retries after a success: not reachable, not ready
        let prev = sipcti_cti::Stats::default();
        let cur = sipcti_cti::Stats {
            retried: 1,
            ..Default::default()
        };
        edge.saw_ok(now);
        edge.compare_cti(now + Duration::from_millis(1), &prev, &cur);
        let (ok, body) = ready_body(&state, now + Duration::from_millis(1));
        assert!(!ok, "{body}");
        assert_eq!(body["zammad"]["reachable"], false);
        assert_eq!(
            body["zammad"]["last_error"],
            "CTI requests failing (retrying)"
        );
        assert_eq!(body["outbox"], "not configured");
        // delivered again: ready
        edge.compare_cti(
            now + Duration::from_millis(2),
            &cur,
            &sipcti_cti::Stats {
                retried: 1,
                delivered: 1,
                ..Default::default()
            },
        );
        assert!(ready_body(&state, now + Duration::from_millis(2)).0);
    }

    #[test]
    fn ready_needs_a_writable_outbox_when_one_is_configured() {
        let edge = Arc::new(EdgeMetrics::new(true, true));
        let now = Instant::now();
        let (tx, rx) = watch::channel(Snapshot {
            taken: Some(now),
            ..Snapshot::default()
        });
        let state = AdminState::new(edge.clone(), rx);
        let (ok, body) = ready_body(&state, now);
        assert!(ok && body["outbox"]["writable"].is_null(), "{body}");
        let s0 = sipcti_cti::Stats::default();
        let s1 = sipcti_cti::Stats {
            outbox_commits: 2,
            queued: 4,
            ..Default::default()
        };
        edge.compare_cti(now, &s0, &s1);
        tx.send_replace(Snapshot {
            taken: Some(now),
            cti: s1.clone(),
            ..Snapshot::default()
        });
        let (ok, body) = ready_body(&state, now);
        assert!(ok && body["outbox"]["writable"] == true, "{body}");
        assert!(state
            .metrics_text()
            .lines()
            .any(|l| l == "sipcti_outbox_events 4"));
        let s2 = sipcti_cti::Stats {
            outbox_failed_commits: 1,
            ..s1.clone()
        };
        let later = now + Duration::from_millis(1);
        edge.compare_cti(later, &s1, &s2);
        let (ok, body) = ready_body(&state, later);
        assert!(!ok, "{body}");
        assert_eq!(body["outbox"]["writable"], false);
        assert_eq!(body["outbox"]["last_error"], "outbox commit failed");
    }
}
