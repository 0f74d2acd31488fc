//! The command line: `foreman serve`, and the other subcommands. Each subcommand's help is its doc comment.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod replay;

/// Foreman: a self-hosted GitHub App that turns labelled issues, board moves and `/foreman run` comments
/// into coding-agent pull requests.
#[derive(Debug, Parser)]
#[command(name = "foreman", version, propagate_version = true)]
pub struct Cli {
    /// A TOML configuration file. Environment variables override it; see docs/configuration.md.
    #[arg(long, global = true, env = "FOREMAN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Foreman's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GitHub App: receive webhooks on POST /api/github/webhooks, decide what each means, queue work.
    ///
    /// Starts with no configuration at all: without a webhook secret it generates one into the data
    /// directory; without GitHub App credentials it stores deliveries but cannot act on GitHub.
    Serve,
    /// Print what Foreman would decide for one webhook payload, as JSON lines; touches neither GitHub nor
    /// the data directory. Answers "why didn't Foreman react to this?". See docs/commands.md.
    Replay {
        /// The X-GitHub-Event name, e.g. `issues` or `issue_comment`; needed for a file or standard input (a
        /// stored delivery knows its own).
        #[arg(long, value_name = "NAME")]
        event: Option<String>,
        /// Pretend the job is in this state: queued, running, succeeded, failed or cancelled.
        #[arg(long, value_name = "STATE", value_parser = replay::parse_job_state)]
        job: Option<crate::decide::JobState>,
        /// The running Foreman to read a stored delivery from. Default: the configured `listen` address.
        #[arg(long, env = "FOREMAN_SERVER", value_name = "URL")]
        server: Option<String>,
        /// The payload: a file with a webhook body as JSON, `-` for standard input, or the id of a delivery a
        /// running Foreman stored (its `X-GitHub-Delivery`), read with `FOREMAN_ADMIN_TOKEN` when set.
        payload: String,
    },
    /// Work with `.github/foreman.toml`, the repository's rules; see docs/constitution.md.
    Constitution {
        /// `init`.
        #[command(subcommand)]
        command: crate::constitution::ConstitutionCommand,
    },
    /// Show the job queue of a running Foreman: queued jobs in run order, running jobs with their claim
    /// expiry, stuck jobs and recent failures. Asks the server over HTTP (`GET /api/status`), sending
    /// `FOREMAN_ADMIN_TOKEN` as a bearer token when set.
    Status {
        /// The running server's base URL. Default: the configured `listen` address (`FOREMAN_LISTEN`, the
        /// configuration file), on loopback when it listens on every interface.
        #[arg(long, env = "FOREMAN_SERVER", value_name = "URL")]
        server: Option<String>,
    },
    /// Check that this Foreman can do its work, as `serve` does at start: the GitHub App authenticates and
    /// has the permissions and events Foreman uses, the agent's program runs and has a credential, the
    /// sandbox works, the data directory is writable with free space. Prints ✓, ⚠ or ✗ per check with what
    /// to do; exits 1 when a check fails (✗). Run it with the configuration `serve` uses.
    Doctor,
    /// See Foreman work without a GitHub App: starts github-sim, Foreman and a scripted agent on loopback,
    /// labels an issue, and narrates until its pull request is open. See README.md ("See it work").
    #[cfg(feature = "demo")]
    Demo(crate::demo::DemoArgs),
    /// Run one session Foreman handed to this machine (a GitHub Actions runner): `foreman session --connect
    /// <session URL>`, with the session token in `FOREMAN_SESSION_TOKEN` and the agent's credential in this
    /// machine's environment (`ANTHROPIC_API_KEY` for the claude backend). Reads no configuration and no
    /// `.env`. Exits 0 once the result is handed back to Foreman. See docs/actions.md.
    Session {
        /// The session URL from the workflow's inputs (`session_url`).
        #[arg(long, value_name = "URL")]
        connect: String,
    },
    /// Sessions on GitHub Actions runners (`executor.kind = "actions"`); see docs/actions.md.
    Actions {
        /// `workflow`.
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Inside an agent's sandbox: relay TCP connections on a loopback address to the network proxy's Unix
    /// socket, run a program and exit with its status. Foreman starts it; see `executor::local::netproxy::bridge`.
    #[command(hide = true)]
    SandboxBridge(crate::executor::local::netproxy::bridge::BridgeArgs),
}

/// `foreman actions …`.
#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// Print the workflow file a repository commits as `.github/workflows/foreman-session.yml` (or the name
    /// in `executor.workflow`) for its sessions to run on GitHub Actions runners.
    Workflow {
        /// The backend the runner runs: `claude` (installs the Claude Code CLI) or `command`. Default: the
        /// configured `agent.backend`.
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
        /// The git repository a runner without `foreman` on its PATH builds Foreman from
        /// (`cargo install --git <URL> --tag v<version>`). Unset: such a runner fails the step, saying to bake
        /// `foreman` into its image or to print the workflow again with this option.
        #[arg(long, value_name = "GIT_URL")]
        source: Option<String>,
    },
}

/// Parses the command line and runs the subcommand. Exit code 0 on success, 1 on a runtime error,
/// 2 on a usage or configuration error.
pub fn main() -> ExitCode {
    // The bridge runs in the agent's working directory inside its sandbox: it reads no `.env` (the
    // repository's variables would reach the agent through it) and no configuration.
    if let Ok(Cli { command: Command::SandboxBridge(args), .. }) = Cli::try_parse() {
        return crate::executor::local::netproxy::bridge::main(args);
    }
    // A runner's session reads no `.env` (the runner's working directory is not Foreman's) and no
    // configuration: everything comes from Foreman and the runner's environment.
    if let Ok(Cli { command: Command::Session { connect }, .. }) = Cli::try_parse() {
        return session_main(&connect);
    }
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => crate::server::serve_main(cli.config.as_deref()),
        Command::Replay { event, job, server, payload } => {
            let source = replay::Source { payload: &payload, event: event.as_deref(), server: server.as_deref() };
            replay::main(cli.config.as_deref(), &source, job)
        }
        Command::Doctor => doctor_main(cli.config.as_deref()),
        Command::Constitution { command } => crate::constitution::cli_main(command),
        Command::Status { server } => {
            let server = match server {
                Some(server) => server,
                None => match crate::config::Config::load(cli.config.as_deref()) {
                    Ok(config) => crate::config::local_url(config.listen),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            crate::scheduler::status::status_main(&server)
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            // The demo starts its own Foreman against its own simulator; a configuration would be ignored.
            if let Some(file) = &cli.config {
                eprintln!(
                    "error: foreman demo runs its own configuration on loopback and does not read {} \
                     (given by --config or FOREMAN_CONFIG); run it without one",
                    file.display()
                );
                return ExitCode::from(2);
            }
            crate::demo::main(args)
        }
        Command::Session { connect } => session_main(&connect),
        Command::Actions { command: ActionsCommand::Workflow { backend, source } } => {
            let backend = backend.unwrap_or_else(|| match crate::config::Config::load(cli.config.as_deref()) {
                Ok(config) => config.agent.backend,
                Err(_) => "claude".into(),
            });
            print!("{}", crate::remote::workflow::text(&backend, source.as_deref()));
            ExitCode::SUCCESS
        }
        Command::SandboxBridge(args) => crate::executor::local::netproxy::bridge::main(args),
    }
}

/// `foreman session --connect <url>`: runs the session with the token from `FOREMAN_SESSION_TOKEN`.
fn session_main(url: &str) -> ExitCode {
    use crate::remote::connect::TOKEN_ENV;
    let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()) else {
        eprintln!("error: {TOKEN_ENV} must hold the session token (the workflow's session_token input)");
        return ExitCode::from(2);
    };
    // SAFETY: no other thread runs yet.
    unsafe { std::env::remove_var(TOKEN_ENV) };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::remote::connect::connect(url, secrecy::SecretString::from(token))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `foreman doctor`: runs the startup checks ([`crate::doctor`]) and prints them.
fn doctor_main(config: Option<&std::path::Path>) -> ExitCode {
    let config = match crate::config::Config::load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(async { crate::server::doctor(&config).run().await });
    print!("{}", report.to_text());
    if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
