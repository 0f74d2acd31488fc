//! `github-sim --listen ADDR --webhook-url URL --webhook-secret S --state-dir DIR [--descriptions-dir DIR] [--runners N]`
//!
//! Serves the simulator until interrupted; writes `app.json` and `app.pem` into the state directory. GitHub's
//! API descriptions are built in, so the binary runs from any directory with nothing beside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// A folder whose GitHub API descriptions replace the built-in ones:
    /// github/rest/api.github.com.json (or .json.zst) and github/graphql/schema.graphql.
    #[arg(long, value_name = "DIR")]
    descriptions_dir: Option<PathBuf>,
    /// How many dispatched workflow runs the simulated Actions runner executes at once; the rest stay queued
    /// (0: none runs, as with every self-hosted runner offline).
    #[arg(long, default_value_t = 4)]
    runners: usize,
}

/// Exits 1 with one line on standard error (`github-sim: <reason>`) when the simulator cannot start or
/// stops on an error: a missing descriptions folder, a port in use, an unwritable state directory.
fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("github-sim: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("github-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut config = github_sim::SimConfig::new(&args.state_dir);
    config.listen = args.listen;
    config.webhook_url = args.webhook_url;
    config.webhook_secret = args.webhook_secret;
    config.token_ttl = Duration::from_secs(args.token_ttl_secs);
    config.descriptions_dir = args.descriptions_dir;
    config.runners = args.runners;
    let sim = github_sim::GithubSim::start(config).await?;
    tracing::info!(url = sim.url(), app_id = sim.app_id(), state_dir = %args.state_dir.display(), "github-sim listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
