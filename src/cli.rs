//! The command line: `foreman serve`, and the other subcommands. Each subcommand's help is its doc comment.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Foreman: a self-hosted GitHub App that turns labelled issues, board moves and `/foreman run` comments
/// into coding-agent pull requests.
#[derive(Debug, Parser)]
#[command(name = "foreman", version, propagate_version = true)]
pub struct Cli {
    /// A TOML configuration file. Environment variables override it; see docs/configuration.md.
    #[arg(long, global = true, env = "FOREMAN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Foreman's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GitHub App: receive webhooks on POST /api/github/webhooks, queue work, run agents.
    ///
    /// Starts with no configuration at all: without a webhook secret it generates one into the data
    /// directory; without GitHub App credentials it stores deliveries but cannot act on GitHub.
    Serve,
    /// Show the job queue of a running Foreman: queued jobs in run order, running jobs with their claim
    /// expiry, stuck jobs and recent failures. Asks the server over HTTP (`GET /api/status`), sending
    /// `FOREMAN_ADMIN_TOKEN` as a bearer token when set.
    Status {
        /// The running server's base URL.
        #[arg(long, env = "FOREMAN_SERVER", value_name = "URL", default_value = "http://127.0.0.1:3000")]
        server: String,
    },
}

/// Parses the command line and runs the subcommand. Exit code 0 on success, 1 on a runtime error,
/// 2 on a usage or configuration error.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => crate::server::serve_main(cli.config.as_deref()),
        Command::Status { server } => crate::scheduler::status::status_main(&server),
    }
}
