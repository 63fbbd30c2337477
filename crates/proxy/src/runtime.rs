//! The I/O edge of `sipcti run`: sockets, the clock, name resolution and
//! the Zammad client around the sans-IO [`ProxyCore`].
//!
//! One task owns the core and the UDP socket. It waits for a datagram (read
//! by itself, no queue in between), a TCP message, a newCall answer, a send
//! failure or the core's next timer, feeds it in (then each datagram
//! already waiting, up to [`BATCH`], every one's outputs carried out before
//! the next is read), and carries out every [`Output`]:
//! UDP datagrams to addresses are sent inline; TCP messages and host names
//! go through one ordered sender task; `newCall` answers are awaited in the
//! same task (a `FuturesUnordered`, the core goes on serving meanwhile);
//! `answer`/`hangup` are queued in the CTI client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use sipcti_cti as cti;
use sipcti_transport::net::{NetConfig, Transport, UdpReceiver};
use sipcti_wire::TransportKind;
use tokio::sync::mpsc;

use crate::admin::{AdminState, EdgeMetrics, Snapshot};
use crate::bindings::BindingKeeper;
use crate::config::{Config, HopConfig, RegistrationModeName};
use crate::cti_glue::{cti_config, into_cti_event};
use sipcti_core::{
    CallId, ClientTxId, CoreConfig, CtiAnswer, Hop, Output, ProxyCore, Target, Transmit,
};

/// One kind of per-message warning at the edge: every occurrence is
/// counted, and only the first 10 and then those at powers of two are
/// logged (with the count), so a flood cannot flood the log.
struct Sampled(std::sync::atomic::AtomicU64);

impl Sampled {
    const fn new() -> Sampled {
        Sampled(std::sync::atomic::AtomicU64::new(0))
    }

    /// Count one occurrence; `Some(count)` when this one is to be logged.
    fn hit(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        sipcti_core::log_sample(n).then_some(n)
    }
}

static RESOLVE_FAILED: Sampled = Sampled::new();
static SEND_FAILED: Sampled = Sampled::new();
static TCP_QUEUE_FULL: Sampled = Sampled::new();
static NEWCALL_LATE: Sampled = Sampled::new();

async fn resolve(h: &HopConfig) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = h.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, h.port));
    }
    tokio::net::lookup_host((h.host.as_str(), h.port))
        .await
        .with_context(|| format!("cannot resolve {}", h.host))?
        .next()
        .with_context(|| format!("{} has no address", h.host))
}

fn hop(h: &HopConfig, addr: SocketAddr) -> Hop {
    let host = if h.host.contains(':') {
        format!("[{}]", h.host)
    } else {
        h.host.clone()
    };
    Hop {
        target: Target::Addr(addr),
        transport: h.transport,
        hostport: if h.port == 5060 {
            host
        } else {
            format!("{host}:{}", h.port)
        },
    }
}

/// Build the core configuration from the file configuration; `local` is
/// the bound address (its port is used when `sip.listen` said port 0).
pub async fn core_config(cfg: &Config, local_port: u16) -> anyhow::Result<CoreConfig> {
    let trunk_addr = resolve(&cfg.trunk).await.context("trunk.uri")?;
    let target_addr = resolve(&cfg.inside_target).await.context("inside.target")?;
    let mut trunk_sources = cfg.trunk_sources.clone();
    if trunk_sources.is_empty() {
        trunk_sources.push(ipnet::IpNet::from(trunk_addr.ip()));
    }
    let mut aliases = vec![];
    if !cfg.listen.ip().is_unspecified() {
        aliases.push(cfg.listen.ip());
    }
    Ok(CoreConfig {
        local: SocketAddr::new(cfg.advertise, local_port),
        aliases,
        inside_ip: cfg.advertise_inside,
        trunk_ip: cfg.advertise_trunk,
        trunk: hop(&cfg.trunk, trunk_addr),
        trunk_sources,
        inside_networks: cfg.inside_networks.clone(),
        inside_target: hop(&cfg.inside_target, target_addr),
        limits: cfg.wire_limits(),
        t1: Duration::from_millis(cfg.timers.t1_ms),
        timer_c: Duration::from_secs(cfg.timers.timer_c_s),
        newcall_wait: cfg.newcall_timeout + Duration::from_millis(500),
        max_transactions: cfg.limits.max_transactions,
        wait: Duration::from_millis(cfg.timers.wait_ms),
        tracker: cfg.tracker_config(),
        sources: sipcti_core::SourceLimits {
            inside_rate_per_s: cfg.limits.inside_rate_per_s,
            inside_burst: cfg.limits.inside_burst,
            trunk_rate_per_s: cfg.limits.trunk_rate_per_s,
            trunk_burst: cfg.limits.trunk_burst,
            max_transactions_per_source: (cfg.limits.max_transactions
                * usize::from(cfg.limits.source_share_percent)
                / 100)
                .max(1),
            ban: Duration::from_secs(cfg.limits.ban_s),
        },
        registration: sipcti_core::RegistrationConfig {
            mode: match cfg.file.registration.mode {
                RegistrationModeName::Contact => sipcti_core::RegistrationMode::Contact,
                RegistrationModeName::Path => sipcti_core::RegistrationMode::Path,
            },
            max_bindings: cfg.file.registration.max_bindings,
            ..Default::default()
        },
        topology: sipcti_core::TopologyHiding {
            enabled: cfg.file.trunk.hide_topology,
            ..cfg
                .file
                .trunk
                .topology_secret
                .as_deref()
                .map(sipcti_core::TopologyHiding::with_secret)
                .unwrap_or_default()
        },
    })
}

/// The socket edge configuration from the file configuration and the core's
/// resolved sources: TCP connections are accepted only from
/// `core.inside_networks` and `core.trunk_sources` (the same lists the core
/// classifies requests by; the trunk sources default to the resolved trunk
/// address), with the `[limits]` TCP caps and timeouts.
pub fn net_config(cfg: &Config, core: &CoreConfig) -> NetConfig {
    let l = &cfg.limits;
    NetConfig {
        listen: cfg.listen,
        limits: cfg.wire_limits(),
        allowed_peers: core
            .inside_networks
            .iter()
            .chain(&core.trunk_sources)
            .copied()
            .collect(),
        max_tcp_connections: l.max_tcp_connections,
        max_tcp_per_address: l.max_tcp_per_address,
        max_tcp_outbound: l.max_tcp_outbound,
        tcp_idle_timeout: Duration::from_secs(l.tcp_idle_timeout_s),
        tcp_message_timeout: Duration::from_millis(l.tcp_message_timeout_ms),
        ..NetConfig::default()
    }
}

/// Most received messages already waiting that one turn of the run loop
/// takes (each message's outputs are carried out before the next is read).
const BATCH: usize = 16;

/// A newCall the run loop waits for: resolves to the core's token, when it
/// was queued, and the CTI client's outcome.
type NewCallWait = std::pin::Pin<
    Box<dyn std::future::Future<Output = (CallId, Instant, cti::NewCallOutcome)> + Send>,
>;

/// A running proxy (handle for tests and the demo).
pub struct Running {
    /// The bound address (UDP and TCP).
    pub local: SocketAddr,
    /// The `[admin]` HTTP server's bound address, if configured.
    pub admin: Option<SocketAddr>,
    /// Resolves when the proxy stopped.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reload: mpsc::Sender<Reload>,
    /// The bound port (a reloaded configuration keeps it).
    port: u16,
}

/// A reloaded core configuration and where the run loop answers whether
/// it was applied.
type Reload = (
    CoreConfig,
    Duration,
    tokio::sync::oneshot::Sender<Result<(), &'static str>>,
);

/// What the run loop is told from outside: stop, or apply a reload.
struct Control {
    stop: tokio::sync::oneshot::Receiver<()>,
    reload: mpsc::Receiver<Reload>,
}

impl Running {
    /// Apply the reloaded configuration `cfg` (SIGHUP) without dropping a
    /// call or an event: `[numbers]`, `[[routes]]`, `[phonebook]`, message
    /// limits, per-source limits, timers and `zammad.newcall_timeout_ms`
    /// take effect for what starts from now on ([`ProxyCore::reconfigure`],
    /// [`cti::CtiClient::set_newcall_timeout`]).
    ///
    /// Errors (the running configuration stays): a host cannot be resolved,
    /// or the change needs a restart (addresses, trunk, inside, registration
    /// mode, topology hiding), with the reason.
    pub async fn reload(&self, cfg: &Config) -> anyhow::Result<()> {
        let core_cfg = core_config(cfg, self.port).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.reload
            .send((core_cfg, cfg.newcall_timeout, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the proxy is stopping"))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(anyhow::anyhow!("{why}")),
            Err(_) => Err(anyhow::anyhow!("the proxy is stopping")),
        }
    }

    /// Ask the proxy to stop: every open call gets its hangup, the CTI
    /// queue is drained (at most 5 s), what is left stays in the outbox,
    /// then the task ends. An error if CTI events were lost (left over
    /// without a durable outbox).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.context("proxy task")?
    }
}

/// Bind the sockets, start the CTI client and run the proxy in a spawned task.
///
/// Errors: the address cannot be bound, a configured host cannot be
/// resolved, the Zammad URL is invalid.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    // Resolve once, before binding: the transport admits TCP peers by the
    // same source lists the core uses. The port is fixed up after binding
    // (`sip.listen` may say port 0).
    let mut core_cfg = core_config(&cfg, cfg.listen.port()).await?;
    let (transport, inbound, udp) = Transport::bind_split(net_config(&cfg, &core_cfg))
        .await
        .with_context(|| format!("sip.listen: cannot bind {}", cfg.listen))?;
    let local = transport.local_addr();
    core_cfg.local.set_port(local.port());
    let (client, cti_thread) = if cfg.file.zammad.own_thread {
        let (client, thread) = start_cti_thread(cti_config(&cfg))?;
        (client, Some(thread))
    } else {
        // on this runtime: the core's thread (see [zammad] own_thread)
        let client = cti::CtiClient::start(cti_config(&cfg))
            .map_err(|e| anyhow::anyhow!("zammad.url: {e}"))?;
        (client, None)
    };
    let (trunk, inside_target) = (
        core_cfg.trunk.target.to_string(),
        core_cfg.inside_target.target.to_string(),
    );
    let mut core = ProxyCore::new(core_cfg);
    // bindings kept across restarts ([registration] store)
    let now = Instant::now();
    let (keeper, restored) = BindingKeeper::open(cfg.file.registration.store.as_deref(), now)?;
    for b in restored {
        core.restore_binding(now, b);
    }
    // answered calls open at the last stop (the CTI outbox): their BYE,
    // seen from now on, gives their hangup
    let open = client.take_open_answered_calls();
    let (mut taken, mut refused) = (0usize, 0usize);
    let mut restored_directions = Vec::new();
    for c in open {
        let direction = c.direction;
        let r = sipcti_dialog::RestoredCall {
            sip_call_id: c.call_id.clone(),
            call_id: c.call_id,
            direction: c.direction,
            from: c.from,
            to: c.to,
            answering_number: None,
            age: c.age,
        };
        if core.restore_call(now, r) {
            taken += 1;
            restored_directions.push(direction);
        } else {
            refused += 1;
        }
    }
    if taken + refused > 0 {
        tracing::info!(
            calls = taken,
            not_tracked = refused,
            "answered calls open at the last stop taken back: their BYE ends them"
        );
    }
    let (admin, admin_addr) = match cfg.admin {
        None => (None, None),
        Some(listen) => {
            let edge = Arc::new(EdgeMetrics::new(
                cfg.zammad_url.is_some(),
                cfg.file.zammad.outbox.is_some(),
            ));
            // calls open at the last stop end here: count them as active
            for d in restored_directions {
                edge.call_restored(d);
            }
            let first = Snapshot::take(Instant::now(), &core, transport.stats(), client.stats());
            let (tx, rx) = tokio::sync::watch::channel(first.clone());
            let addr = crate::admin::serve(listen, AdminState::new(edge.clone(), rx))
                .await
                .with_context(|| format!("admin.listen: cannot bind {listen}"))?;
            tracing::info!(listen = %addr, "admin HTTP listening (/metrics, /health, /ready)");
            let admin = Admin {
                edge,
                tx,
                last_cti: first.cti,
                last: Instant::now(),
            };
            (Some(admin), Some(addr))
        }
    };
    // last: "sipcti listening" means everything is up (the e2e lab waits for it)
    tracing::info!(
        listen = %local,
        trunk = %trunk,
        inside_target = %inside_target,
        zammad = %cfg.zammad_url.as_deref().map(cti::redact_url).unwrap_or_else(|| "stdout".into()),
        "sipcti listening (UDP and TCP)"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let control = Control {
        stop: stop_rx,
        reload: reload_rx,
    };
    let task = tokio::spawn(async move {
        let r = run_loop(
            core, transport, udp, inbound, client, keeper, admin, control,
        )
        .await;
        // the client is closed (drained or left in the outbox): its thread ends
        drop(cti_thread);
        r
    });
    Ok(Running {
        local,
        admin: admin_addr,
        task,
        stop: Some(stop_tx),
        reload: reload_tx,
        port: local.port(),
    })
}

/// The Zammad client's own thread: its delivery tasks and HTTP connections
/// run on a current-thread runtime there, beside the core's thread, so the
/// HTTP work (about a quarter of sipcti's CPU with CTI) neither delays
/// forwarding nor waits for a turn between batches of datagrams. Dropping
/// this ends the thread (and drops whatever its runtime still holds).
struct CtiThread {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Start the CTI client with its own thread (`sipcti-cti`) and runtime
/// (`[zammad] own_thread = true`).
///
/// Errors: the runtime or the thread cannot be started; the client
/// configuration is refused (`zammad.url: …`, see [`cti::CtiClient::start`]).
fn start_cti_thread(cfg: cti::ClientConfig) -> anyhow::Result<(cti::CtiClient, CtiThread)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("sipcti-cti")
        .build()
        .context("cannot start the Zammad client's runtime")?;
    let client = {
        let _in = rt.enter();
        cti::CtiClient::start(cfg).map_err(|e| anyhow::anyhow!("zammad.url: {e}"))?
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("sipcti-cti".into())
        .spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            })
        })
        .context("cannot start the Zammad client's thread")?;
    Ok((client, CtiThread { _stop: stop }))
}

/// The run loop's side of the `[admin]` server: the edge's own metrics
/// and the channel the counters' [`Snapshot`] is published on.
struct Admin {
    edge: Arc<EdgeMetrics>,
    tx: tokio::sync::watch::Sender<Snapshot>,
    /// The CTI client's counters at the last snapshot (to see Zammad's
    /// successes and failures between two).
    last_cti: cti::Stats,
    /// When the last snapshot was published.
    last: Instant,
}

impl Admin {
    /// Publish a snapshot when [`crate::admin::SNAPSHOT_EVERY`] has passed
    /// since the last: copies of counters, then a non-blocking
    /// `send_replace` (a scrape only ever reads the latest copy).
    fn publish_if_due(&mut self, core: &ProxyCore, transport: &Transport, client: &cti::CtiClient) {
        let now = Instant::now();
        if now.duration_since(self.last) < crate::admin::SNAPSHOT_EVERY {
            return;
        }
        self.last = now;
        let snap = Snapshot::take(now, core, transport.stats(), client.stats());
        self.edge.compare_cti(now, &self.last_cti, &snap.cti);
        self.last_cti = snap.cti.clone();
        self.tx.send_replace(snap);
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_loop(
    mut core: ProxyCore,
    transport: Transport,
    mut udp: UdpReceiver,
    mut inbound: mpsc::Receiver<sipcti_transport::net::Inbound>,
    client: cti::CtiClient,
    mut keeper: BindingKeeper,
    mut admin: Option<Admin>,
    mut control: Control,
) -> anyhow::Result<()> {
    let edge = admin.as_ref().map(|a| a.edge.clone());
    // wakes the loop to publish the admin snapshot when nothing else does
    let mut tick = admin.as_ref().map(|_| {
        let mut t = tokio::time::interval(crate::admin::SNAPSHOT_EVERY);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    // client transactions whose request the TCP/host-name sender could not send
    let (failed_tx, mut failed_rx) = mpsc::channel::<ClientTxId>(4096);
    // ordered sender for TCP and host names
    let (slow_tx, mut slow_rx) = mpsc::channel::<Transmit>(8192);
    {
        let transport = transport.clone();
        let failed = failed_tx;
        tokio::spawn(async move {
            while let Some(t) = slow_rx.recv().await {
                let dest = match &t.dest {
                    Target::Addr(a) => Some(*a),
                    Target::Name(h, p) => match tokio::net::lookup_host((h.as_str(), *p)).await {
                        Ok(mut it) => it.next(),
                        Err(e) => {
                            if let Some(count) = RESOLVE_FAILED.hit() {
                                tracing::warn!(host = %h, error = %e, count, "cannot resolve next hop");
                            }
                            None
                        }
                    },
                };
                let ok = match dest {
                    Some(d) => match transport.send(t.transport, d, t.data).await {
                        Ok(()) => true,
                        Err(e) => {
                            if let Some(count) = SEND_FAILED.hit() {
                                tracing::warn!(dest = %d, transport = %t.transport, error = %e, count, "send failed");
                            }
                            false
                        }
                    },
                    None => false,
                };
                if !ok {
                    if let Some(c) = t.client_tx {
                        let _ = failed.send(c).await;
                    }
                }
            }
        });
    }
    let mut waits: FuturesUnordered<NewCallWait> = FuturesUnordered::new();
    // carry out the core's outputs; how many newCalls that submitted
    macro_rules! drain {
        () => {
            drain_outputs(
                &mut core,
                &transport,
                &slow_tx,
                &mut waits,
                &client,
                &mut keeper,
                edge.as_ref(),
            )
            .await
        };
    }
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let mut last_stats = Instant::now();
    loop {
        // one timer entry for the whole run, moved only when the core's
        // next deadline changes (not registered anew every turn)
        let deadline = core.poll_timeout();
        let mut handled = 0usize;
        let mut received = None;
        if deadline != armed {
            armed = deadline;
            if let Some(d) = deadline {
                sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            }
        }
        tokio::select! {
            biased;
            _ = &mut control.stop => break,
            Some((cfg, newcall_timeout, answer)) = control.reload.recv() => {
                let r = core.reconfigure(cfg);
                if r.is_ok() {
                    client.set_newcall_timeout(newcall_timeout);
                }
                let _ = answer.send(r);
            }
            Some(c) = failed_rx.recv() => core.handle_transport_error(Instant::now(), c),
            Some((token, queued, outcome)) = waits.next(), if !waits.is_empty() => {
                newcall_answered(&mut core, edge.as_ref(), token, queued, outcome);
                // and every other answer already there
                while let Some(Some((token, queued, outcome))) = futures_util::FutureExt::now_or_never(waits.next()) {
                    newcall_answered(&mut core, edge.as_ref(), token, queued, outcome);
                }
            }
            m = udp.recv() => received = Some((Via::Udp, m)),
            m = inbound.recv() => {
                let Some(m) = m else { break };
                received = Some((Via::Tcp, m));
            }
            _ = sleep.as_mut(), if armed.is_some() => {
                // fired: re-armed from the core's next deadline next turn
                armed = None;
            }
            _ = async {
                match &mut tick {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        // Each message's outputs go out before the next message is read, so
        // its reply never waits for the rest of the batch; up to BATCH
        // messages already waiting are taken per turn, and the turn ends
        // early once one of them submitted a newCall.
        let mut new_calls = 0;
        while let Some((via, m)) = received.take() {
            deliver(&mut core, m);
            handled += 1;
            new_calls += drain!();
            if handled < BATCH && new_calls == 0 {
                received = match via {
                    Via::Udp => udp.try_recv(),
                    Via::Tcp => inbound.try_recv().ok(),
                }
                .map(|m| (via, m));
            }
        }
        // timers run even while datagrams keep every other branch busy
        let now = Instant::now();
        if core.poll_timeout().is_some_and(|d| d <= now) {
            core.handle_timeout(now);
        }
        new_calls += drain!();
        if new_calls > 0 {
            // let the Zammad client's tasks send the newCall requests now,
            // and the runtime read what its sockets hold (answers among
            // them), before the next batch of datagrams: otherwise an INVITE
            // waits behind up to 128 datagrams for its request to leave
            tokio::task::yield_now().await;
        }
        if let Some(a) = &mut admin {
            a.publish_if_due(&core, &transport, &client);
        }
        // A datagram read with try_recv costs the task no coop budget: count
        // each here, so that under a steady stream the loop still yields
        // (every 128) and the Zammad client's tasks on this thread get their
        // turn (without it, newCall requests starve while datagrams keep
        // coming, and calls wait for answers that cannot be sent).
        for _ in 0..handled {
            tokio::task::coop::consume_budget().await;
        }
        if last_stats.elapsed() > Duration::from_secs(300) {
            last_stats = Instant::now();
            let (s, c) = core.transactions();
            tracing::info!(stats = ?core.stats(), server_tx = s, client_tx = c, cti = ?client.stats(), net = ?transport.stats(), "counters");
        }
    }
    tracing::info!(net = ?transport.stats(), "socket counters at shutdown");
    core.shutdown(Instant::now());
    drain!();
    shutdown_cti(&client).await
}

/// How long a stop delivers CTI events before it leaves the rest in the outbox.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Deliver for at most [`SHUTDOWN_DRAIN`], then leave what is left in the
/// outbox (durable) and say how much. An error when events are lost: no
/// outbox is configured, or it could not be written.
async fn shutdown_cti(client: &cti::CtiClient) -> anyhow::Result<()> {
    let r = client.close(SHUTDOWN_DRAIN).await;
    if r.events_left == 0 {
        tracing::info!("CTI queue empty at shutdown");
        return Ok(());
    }
    if r.durable {
        tracing::warn!(
            events = r.events_left,
            calls = r.calls_left,
            "CTI events left at shutdown stay in the outbox: delivered at the next start"
        );
        return Ok(());
    }
    tracing::error!(events = r.events_left, calls = r.calls_left, stats = ?client.stats(), "CTI events lost at shutdown (no [zammad] outbox, or it could not be written)");
    anyhow::bail!(
        "{} CTI events of {} calls were not delivered and are lost",
        r.events_left,
        r.calls_left
    )
}

/// Feeds a newCall's outcome to the core (Zammad's decision, or fail-open when
/// it was not answered in time) and counts it for `[admin]`.
fn newcall_answered(
    core: &mut ProxyCore,
    edge: Option<&Arc<EdgeMetrics>>,
    token: CallId,
    queued: Instant,
    outcome: cti::NewCallOutcome,
) {
    let now = Instant::now();
    if let Some(e) = edge {
        match &outcome {
            cti::NewCallOutcome::Answered(_) => e.newcall_answered(now, now.duration_since(queued)),
            cti::NewCallOutcome::TimedOut => e.saw_error(now, "newCall not answered in time"),
            cti::NewCallOutcome::Failed(_) => e.saw_error(now, "newCall failed"),
            cti::NewCallOutcome::Dropped(_) => e.saw_error(now, "newCall dropped"),
        }
    }
    let answer = match outcome {
        cti::NewCallOutcome::Answered(cti::Decision::Reject { .. }) => CtiAnswer::Reject,
        cti::NewCallOutcome::Answered(cti::Decision::Dial { caller_id }) => {
            CtiAnswer::Dial(caller_id)
        }
        cti::NewCallOutcome::Answered(cti::Decision::Continue) => CtiAnswer::Continue,
        other => {
            if let Some(count) = NEWCALL_LATE.hit() {
                tracing::warn!(outcome = ?other, count, "newCall not answered in time: call goes on unchanged");
            }
            CtiAnswer::FailOpen
        }
    };
    core.handle_cti_answer(now, token, answer);
}

/// Where a received message came from: the UDP socket, or the channel of
/// the TCP connection tasks (the next one of a batch is taken from the same).
#[derive(Clone, Copy)]
enum Via {
    Udp,
    Tcp,
}

/// Hands one received message to the core.
fn deliver(core: &mut ProxyCore, m: sipcti_transport::net::Inbound) {
    // No copy: `m.data` is a view of the socket's receive allocation. A
    // request the core keeps (a server transaction's request while it waits
    // for its final response) keeps that allocation alive until then.
    core.handle_received(Instant::now(), m.data, m.source, m.transport);
}

/// Carry out everything the core has queued: UDP sends inline, TCP and
/// host-name sends to the ordered sender, newCall requests to the Zammad
/// client (their answers awaited in `waits`), other CTI events submitted,
/// binding changes to the keeper. Returns how many newCall requests it
/// submitted.
async fn drain_outputs(
    core: &mut ProxyCore,
    transport: &Transport,
    slow_tx: &mpsc::Sender<Transmit>,
    waits: &mut FuturesUnordered<NewCallWait>,
    client: &cti::CtiClient,
    bindings: &mut BindingKeeper,
    edge: Option<&Arc<EdgeMetrics>>,
) -> usize {
    let mut new_calls = 0;
    while let Some(out) = core.poll_output() {
        match out {
            Output::Transmit(t) => match (&t.dest, t.transport) {
                (Target::Addr(a), TransportKind::Udp) => {
                    if let Err(e) = transport.send(TransportKind::Udp, *a, t.data).await {
                        if let Some(count) = SEND_FAILED.hit() {
                            tracing::warn!(dest = %a, error = %e, count, "UDP send failed");
                        }
                        if let Some(c) = t.client_tx {
                            core.handle_transport_error(Instant::now(), c);
                        }
                    }
                }
                _ => {
                    if slow_tx.try_send(t).is_err() {
                        if let Some(count) = TCP_QUEUE_FULL.hit() {
                            tracing::warn!(
                                count,
                                "TCP send queue full: message dropped (retransmission will retry)"
                            );
                        }
                    }
                }
            },
            Output::NewCall { token, event } => {
                if let Some(e) = edge {
                    e.on_event(&event);
                }
                let queued = Instant::now();
                let fut = client.new_call(into_cti_event(event));
                waits.push(Box::pin(async move { (token, queued, fut.await) }));
                new_calls += 1;
            }
            Output::Event(ev) => {
                if let Some(e) = edge {
                    e.on_event(&ev);
                }
                client.submit(into_cti_event(ev))
            }
            Output::Binding(update) => bindings.update(update),
        }
    }
    new_calls
}
