//! The `sipcti` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sipcti_proxy::config::Config;

/// mimalloc: the proxy allocates per message (parse index, edits, CTI
/// bodies); glibc's malloc was ~15% of the CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SIP proxy that reports calls to Zammad's Generic CTI API.
#[derive(Parser)]
#[command(
    name = "sipcti",
    version,
    about = "SIP proxy between phones and a SIP trunk that reports every call to Zammad (Generic CTI)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print the effective one (token redacted).
    CheckConfig {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Place a handful of demo calls through the proxy on loopback and print their timelines.
    Demo,
    /// Turn recorded SIP traffic (pcap/pcapng) into CTI events.
    Replay(sipcti_proxy::replay::ReplayArgs),
    /// Run a Zammad CTI double (for tests and the demo).
    ZammadDouble {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The token expected in the URL path.
        #[arg(long)]
        token: String,
        /// Rules file (block list, caller-id rules).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Runtime threads: 1 (default) serves every connection on one
        /// thread, the cheapest for a double beside the proxy on the same
        /// cores; n, a pool of n; 0, one per core.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the demo prints its own timeline; keep the proxy's info logs out of it
    let default_level = if matches!(cli.cmd, Cmd::Demo) {
        "warn"
    } else {
        "info"
    };
    if let Err(e) = sipcti_proxy::logs::init(default_level) {
        eprintln!("sipcti: {e}");
        return ExitCode::FAILURE;
    }
    // `sipcti run` reads its configuration once, before the runtime it sizes
    let run_cfg = match &cli.cmd {
        Cmd::Run { config } => match Config::load(config) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("sipcti: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let threads = match &cli.cmd {
        Cmd::ZammadDouble { threads, .. } => Some(*threads),
        _ => run_cfg.as_ref().map(|c| c.file.sip.threads),
    };
    let rt = match runtime_for(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sipcti: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Run { config } => match run_cfg {
                Some(cfg) => run(config, cfg).await,
                None => unreachable!("loaded above for `run`"),
            },
            Cmd::CheckConfig { config } => {
                let cfg = Config::load(&config)?;
                print!("{}", cfg.effective_toml());
                Ok(())
            }
            Cmd::ZammadDouble {
                listen,
                token,
                rules,
                threads: _,
            } => double(listen, token, rules).await,
            Cmd::Demo => sipcti_proxy::demo::run().await,
            Cmd::Replay(args) => return sipcti_proxy::replay::run(args).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sipcti: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The tokio runtime a command runs on: `sipcti run` on `[sip] threads`
/// and `sipcti zammad-double` on `--threads` (`threads`: 1, a
/// current-thread runtime, everything on one thread; n, a pool of n; 0, one
/// per core), every other command (`threads` None) on a pool of one thread
/// per core.
fn runtime_for(threads: Option<usize>) -> tokio::runtime::Builder {
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) if n > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
}

/// `sipcti run`: `cfg` was loaded from `config`, which SIGHUP reads again.
async fn run(config: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let mut running = sipcti_proxy::runtime::start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            // SIGHUP: read the file again; a bad one is refused, the old
            // configuration stays in force
            _ = hup.recv() => match Config::load(&config) {
                Err(e) => tracing::error!(error = %e, "reload refused: the configuration file is not valid; the running configuration stays"),
                Ok(cfg) => match running.reload(&cfg).await {
                    Ok(()) => tracing::info!(config = %config.display(), "configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload refused; the running configuration stays"),
                },
            },
            // the proxy task ending by itself is a failure: exit non-zero so a
            // supervisor (systemd, docker) restarts sipcti
            r = &mut running.task => {
                anyhow::bail!("the proxy stopped unexpectedly: {r:?}");
            }
        }
    }
    tracing::info!("stopping: closing open calls and draining the CTI queue");
    running.stop().await
}

async fn double(listen: SocketAddr, token: String, rules: Option<PathBuf>) -> anyhow::Result<()> {
    let rules = match rules {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            sipcti_zammad_double::Rules::from_toml_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => sipcti_zammad_double::Rules::default(),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "Zammad double listening");
    sipcti_zammad_double::serve_double(
        listener,
        sipcti_zammad_double::DoubleConfig { token, rules },
    )
    .await?;
    Ok(())
}
