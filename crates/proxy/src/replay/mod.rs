//! `sipcti replay`: CTI events from recorded SIP traffic (pcap / pcapng).
//!
//! The captures are read in order ([`sipcti_capture::CaptureReader`]); every UDP
//! payload that looks like SIP by content (start line `SIP/2.0 NNN` or
//! `METHOD URI SIP/2.0`, on any port) and every message framed out of a TCP stream
//! (one [`sipcti_wire::StreamFramer`] per direction, reset and resynchronised
//! after a gap) is parsed and validated by the live proxy's wire layer and fed to the
//! same [`sipcti_dialog::CallTracker`]. Non-SIP payloads, unparseable messages and
//! messages of unknown side are counted and skipped.
//!
//! * **Side**: source in the trunk addresses -> trunk; source in the inside networks
//!   -> inside; else by the destination (to the trunk -> inside, to the inside ->
//!   trunk); else skipped as "unclassified", or, with `--guess-sides`, taken as
//!   inside (the sender of such a call's INVITE is the inside party: `out`).
//!   `--trunk` / `--inside` (CIDR, IP or IP:PORT, repeatable) replace the
//!   configuration's networks. The trunk addresses default to the trunk URI's IP.
//! * **Time**: the tracker's clock is the capture time (first packet = start, never
//!   going back, also across captures); its timers run as capture time passes.
//! * **End**: calls still open at the end get the hangup the live proxy sends when it
//!   stops (answered: normalClearing, others: cancel). They are marked
//!   `"synthetic":true` in jsonl and with `*` in the table; `--no-close` leaves them
//!   out (also from `--post`).
//! * **Exit code**: 0 all read; 1 usage or configuration error; 2 a capture could
//!   not be read completely (every call readable before the damage is still given,
//!   and the error names the file and packet); 3 `--post` could not deliver every
//!   event.
//!
//! The core is the pure function [`replay_captures`].

mod engine;
mod output;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

pub use engine::{
    replay_bytes, replay_captures, summarise, CallSummary, MessageRecord, NetMatch, ReplayError,
    ReplayEvent, ReplayOptions, ReplayResult, ReplayStats,
};
pub use output::{fmt_ts, jsonl_line, ladder, table};

use crate::config::Config;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One CTI event per line (Zammad's fields plus ts and packet).
    Jsonl,
    /// One line per call.
    Table,
    /// A ladder diagram of each call's messages.
    Ladder,
}

/// Arguments of `sipcti replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// pcap / pcapng files, replayed in this order through one call tracker.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    /// Configuration file (trunk sources, inside networks, numbers, zammad). Optional
    /// when --trunk, --inside or --guess-sides say where the sides are.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub format: OutputFormat,
    /// Deliver the events to the configured Zammad, in order, through the live client.
    #[arg(long)]
    pub post: bool,
    /// Only this call (SIP Call-ID or Zammad callId).
    #[arg(long, value_name = "CALLID")]
    pub call: Option<String>,
    /// Trunk address (CIDR, IP or IP:PORT), repeatable; replaces the configuration's.
    #[arg(long, value_name = "CIDR")]
    pub trunk: Vec<NetMatch>,
    /// Inside network (CIDR, IP or IP:PORT), repeatable; replaces the configuration's.
    #[arg(long, value_name = "CIDR")]
    pub inside: Vec<NetMatch>,
    /// Take messages no network classifies as coming from the inside (their calls
    /// are `out`) instead of skipping them.
    #[arg(long)]
    pub guess_sides: bool,
    /// Do not synthesise hangups for calls still open at the end of the captures.
    #[arg(long)]
    pub no_close: bool,
    /// With --post: how long to wait for the delivery of every event, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub post_timeout: u64,
}

/// Run the replay. Exit code 0 when every capture was read completely (see the module
/// documentation for the others).
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = match &args.config {
        Some(p) => Some(Config::load(p).with_context(|| format!("{}", p.display()))?),
        None => None,
    };
    if cfg.is_none() && args.trunk.is_empty() && args.inside.is_empty() && !args.guess_sides {
        anyhow::bail!("replay: give --config, or --trunk/--inside networks, or --guess-sides");
    }
    if args.post {
        match &cfg {
            Some(c) if c.zammad_url.is_some() => {}
            _ => anyhow::bail!(
                "replay --post: needs --config with zammad.url (or SIPCTI_ZAMMAD_URL)"
            ),
        }
    }
    let mut opts = cfg
        .as_ref()
        .map(ReplayOptions::from_config)
        .unwrap_or_default();
    if !args.trunk.is_empty() {
        opts.trunk = args.trunk.clone();
    }
    if !args.inside.is_empty() {
        opts.inside = args.inside.clone();
    }
    opts.guess_sides = args.guess_sides;
    opts.close_open_calls = !args.no_close;
    opts.keep_messages = args.format == OutputFormat::Ladder;

    let res = replay_captures(&args.captures, &opts);

    // --call: the SIP Call-ID or the Zammad callId
    let selected: Option<Vec<String>> = args.call.as_ref().map(|want| {
        let mut ids: Vec<String> = res
            .calls
            .iter()
            .filter(|c| &c.call_id == want || &c.sip_call_id == want)
            .map(|c| c.sip_call_id.clone())
            .collect();
        if ids.is_empty() && res.messages.iter().any(|m| &m.sip_call_id == want) {
            ids.push(want.clone());
        }
        ids.dedup();
        ids
    });
    let wanted = |sip_call_id: &str| {
        selected
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == sip_call_id))
    };
    let events: Vec<&ReplayEvent> = res
        .events
        .iter()
        .filter(|e| wanted(&e.event.sip_call_id))
        .collect();

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = write_output(&mut out, &args, &res, &events, &wanted);
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing the output");
        }
    }
    drop(out);

    if let (Some(want), Some(sel)) = (&args.call, &selected) {
        if sel.is_empty() {
            eprintln!("replay: no call {want:?} in the captures");
        }
    }
    print_summary(&res);
    for e in &res.errors {
        eprintln!("replay: error: {e}; the events before it are complete");
    }
    let mut code = if res.errors.is_empty() { 0 } else { 2 };
    if args.post {
        if let Some(cfg) = &cfg {
            if !post(cfg, &events, Duration::from_secs(args.post_timeout)).await? && code == 0 {
                code = 3;
            }
        }
    }
    Ok(ExitCode::from(code))
}

fn write_output(
    out: &mut impl Write,
    args: &ReplayArgs,
    res: &ReplayResult,
    events: &[&ReplayEvent],
    wanted: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    match args.format {
        OutputFormat::Jsonl => {
            let multi = args.captures.len() > 1;
            for e in events {
                writeln!(out, "{}", jsonl_line(e, multi))?;
            }
        }
        OutputFormat::Table => {
            let calls: Vec<CallSummary> = res
                .calls
                .iter()
                .filter(|c| wanted(&c.sip_call_id))
                .cloned()
                .collect();
            out.write_all(table(&calls).as_bytes())?;
        }
        OutputFormat::Ladder => {
            // one ladder per SIP Call-ID that made a call (or the one asked for)
            let mut ids: Vec<&str> = Vec::new();
            for c in &res.calls {
                if wanted(&c.sip_call_id) && !ids.contains(&c.sip_call_id.as_str()) {
                    ids.push(&c.sip_call_id);
                }
            }
            if let Some(want) = &args.call {
                if ids.is_empty() && res.messages.iter().any(|m| &m.sip_call_id == want) {
                    ids.push(want);
                }
            }
            let mut by_id: std::collections::HashMap<&str, Vec<&MessageRecord>> =
                std::collections::HashMap::new();
            for m in &res.messages {
                if ids.contains(&m.sip_call_id.as_str()) {
                    by_id.entry(&m.sip_call_id).or_default().push(m);
                }
            }
            for (n, id) in ids.iter().enumerate() {
                let calls: Vec<String> = res
                    .calls
                    .iter()
                    .filter(|c| c.sip_call_id == *id)
                    .map(|c| {
                        format!(
                            "callId {} ({}) from {} to {}{}{}",
                            c.call_id,
                            c.direction.as_str(),
                            c.from,
                            c.to,
                            c.answered_by
                                .as_ref()
                                .map(|a| format!(", answered by {a}"))
                                .unwrap_or_default(),
                            c.cause
                                .map(|k| format!(
                                    ", hangup {k}{}",
                                    if c.synthetic_end {
                                        " (synthesised at the end)"
                                    } else {
                                        ""
                                    }
                                ))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let title = format!(
                    "=== SIP Call-ID {id}\n{}",
                    if calls.is_empty() {
                        "no call event".to_string()
                    } else {
                        calls.join("\n")
                    }
                );
                if n > 0 {
                    writeln!(out)?;
                }
                let msgs = by_id.get(id).map(Vec::as_slice).unwrap_or_default();
                out.write_all(ladder(&title, msgs).as_bytes())?;
            }
        }
    }
    Ok(())
}

fn print_summary(res: &ReplayResult) {
    let s = &res.stats;
    eprintln!(
        "replay: {} capture(s), {} packets, {} SIP messages ({} unparseable, {} unclassified), \
         {} non-SIP skipped, {} keep-alives, {} calls, {} events ({} synthetic); \
         {:.3} s, {:.0} SIP messages/s",
        s.captures,
        s.packets,
        s.sip_messages,
        s.unparseable,
        s.unclassified,
        s.non_sip,
        s.keepalives,
        s.calls,
        s.events,
        s.synthetic_events,
        s.elapsed.as_secs_f64(),
        s.messages_per_second()
    );
}

/// Submit every event in order (waiting while the client's queue is full), then drain.
/// Returns true if every event was delivered.
async fn post(cfg: &Config, events: &[&ReplayEvent], timeout: Duration) -> anyhow::Result<bool> {
    let mut ccfg = crate::cti_glue::cti_config(cfg);
    // never the live proxy's outbox: a replay is its own one-off delivery
    ccfg.outbox = None;
    let capacity = ccfg.queue_capacity;
    let client =
        sipcti_cti::CtiClient::start(ccfg).map_err(|e| anyhow::anyhow!("zammad.url: {e}"))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut submitted = 0u64;
    for e in events {
        while client.stats().queued >= capacity {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            client.drain(Duration::from_millis(20)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        client.submit(e.cti());
        submitted += 1;
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let drained = client.drain(left).await;
    let s = client.stats();
    let dropped = s.dropped.total();
    let not_sent = events.len() as u64 - submitted;
    eprintln!(
        "replay --post: {} events: {} delivered, {} dropped ({:?}), {} still queued, {} not submitted (timeout)",
        events.len(),
        s.delivered,
        dropped,
        s.dropped,
        s.queued,
        not_sent
    );
    Ok(drained && dropped == 0 && not_sent == 0)
}
