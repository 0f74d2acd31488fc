//! `github-sim --listen ADDR --webhook-url URL --webhook-secret S --state-dir DIR`
//!
//! Serves the simulator until interrupted; writes `app.json` and `app.pem` into the state directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A stand-in for GitHub: REST, GraphQL, git over HTTP, webhooks and a control API under /_sim.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8070")]
    listen: SocketAddr,
    /// Where to POST webhook deliveries.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Secret for X-Hub-Signature-256.
    #[arg(long, default_value = "sim-secret")]
    webhook_secret: String,
    /// Where repositories, app.json and app.pem live.
    #[arg(long)]
    state_dir: PathBuf,
    /// Installation token lifetime in seconds (GitHub: 3600).
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Folder with GitHub's API descriptions (github/rest, github/graphql).
    #[arg(long)]
    shared_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let mut config = github_sim::SimConfig::new(&args.state_dir);
    config.listen = args.listen;
    config.webhook_url = args.webhook_url;
    config.webhook_secret = args.webhook_secret;
    config.token_ttl = Duration::from_secs(args.token_ttl_secs);
    if let Some(s) = args.shared_dir {
        config.shared_dir = s;
    }
    let sim = github_sim::GithubSim::start(config).await?;
    tracing::info!(url = sim.url(), app_id = sim.app_id(), state_dir = %args.state_dir.display(), "github-sim listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
