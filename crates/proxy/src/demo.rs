//! `sipcti demo`: a self-contained tour on loopback (stub, being written).

/// Run the demo; Ok when every demo call behaved as expected.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("demo is not implemented yet")
}
