//! `sipcti replay`: CTI events from recorded SIP traffic (stub, being written).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `sipcti replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// pcap / pcapng files.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
    /// Configuration file (trunk sources, inside networks, numbers, zammad).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Run the replay. Exit code 0 when every capture was read completely.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("replay is not implemented yet")
}
