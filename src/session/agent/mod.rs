//! Agent backends: the program that does a session's work, behind [`Agent`].
//!
//! Each backend is one folder: [`claude`] (the Claude Code CLI) and [`command`] (any program run with
//! `sh -c`). A backend owns its configuration section (`[agent.claude]`, `[agent.command]`), how it starts its
//! program, how it reads the program's output into [`Progress`] (its progress parsing), how it classifies
//! the end into a [`FailureCause`], and whether and how it continues an earlier session (resume).
//! Everything around it (workspace, prompt, executor, outcome, log) is the session's, the same for all.
//!
//! Adding a backend: a folder here with a type implementing [`Agent`] and a `REGISTRATION`, its section
//! type as a field of [`AgentConfig`](super::AgentConfig), and one line in [`BACKENDS`]:
//!
//! ```text
//! pub const BACKENDS: &[Registration] = &[claude::REGISTRATION, command::REGISTRATION, aider::REGISTRATION];
//! ```

pub mod claude;
pub mod command;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::{AgentConfig, FailureCause, Progress, SessionSpec, log::SessionLog};
use crate::executor::{BoxFuture, Ended, Executor, Limits, Mounts};

/// A registered backend: the `agent.backend` value that selects it and how it is built at start.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The `agent.backend` value (lowercase), also what a constitution's `agent.backend` must name.
    pub name: &'static str,
    /// Builds the backend from the server's configuration (its section is checked here; the error names the
    /// key) and the Claude credentials read at start (only the `claude` backend uses them).
    pub build: Build,
}

/// How a backend is built: from the server's configuration and the Claude credentials; the error names the
/// key that is wrong.
pub type Build = fn(&AgentConfig, claude::Credentials) -> Result<Box<dyn Agent>, String>;

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Every backend Foreman can run, one line each.
pub const BACKENDS: &[Registration] = &[claude::REGISTRATION, command::REGISTRATION];

/// The registration named `name` (`agent.backend`), if there is one.
pub fn registration(name: &str) -> Option<&'static Registration> {
    BACKENDS.iter().find(|r| r.name == name)
}

/// The backend `config.backend` names, built.
///
/// # Errors
/// An unknown `agent.backend`, or the backend's own configuration error (naming the key).
pub fn build(config: &AgentConfig, credentials: claude::Credentials) -> Result<Box<dyn Agent>, String> {
    match registration(&config.backend) {
        Some(r) => (r.build)(config, credentials),
        None => Err(format!(
            "agent.backend must be one of {}, got '{}'",
            BACKENDS.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
            config.backend
        )),
    }
}

/// A program that does a session's work. Built once at start ([`build`]); [`Agent::run`] runs it once.
pub trait Agent: fmt::Debug + Send + Sync {
    /// The backend's name (its [`Registration::name`]).
    fn name(&self) -> &'static str;

    /// How it is named in reports, e.g. `claude (sonnet)`, for the server configuration `config`.
    fn describe(&self, config: &AgentConfig) -> String {
        let _ = config;
        self.name().to_owned()
    }

    /// Why this agent cannot start on this host under the server configuration `config` (its program is
    /// not installed …), in words for the operator, or `None`. Looked at before every session, so a fix
    /// takes effect without a restart.
    fn unavailable(&self, config: &AgentConfig) -> Option<String> {
        let _ = config;
        None
    }

    /// Why this agent has no credential to run with, in words for the operator naming what to set, or
    /// `None` (the default: the backend needs none, or has one). Checked by `foreman doctor` and at start.
    fn missing_credential(&self) -> Option<String> {
        None
    }

    /// A command that shows the agent's program runs and says its version (`claude --version`), as the
    /// program and its arguments, or `None` (the default) when the backend has none to offer. Run by
    /// `foreman doctor` and at start, outside the sandbox.
    fn version_command(&self, config: &AgentConfig) -> Option<(std::path::PathBuf, Vec<String>)> {
        let _ = config;
        None
    }

    /// When no session of this agent can start before a time: every credential it has reached its usage
    /// limit ([`claude::Credentials::held_until`]). The runner then claims no job until that time. `None`
    /// (the default) when a session can start now.
    fn held_until(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let _ = now;
        None
    }

    /// Called at each renewal of the claim session `session_id` runs under: whether the session still shows
    /// life, so the claim may be renewed. A local agent always does (Foreman watches its process); a remote
    /// one does while its runner reports within the claim's time-to-live. `false` lets the claim expire,
    /// which stops the session and queues the job again.
    fn renew(&self, session_id: &str) -> bool {
        let _ = session_id;
        true
    }

    /// Runs the agent once in a prepared workspace and says how it ended. Never panics on the agent's
    /// failures: they are [`AgentEnd::failure`].
    fn run<'a>(&'a self, run: AgentRun<'a>) -> BoxFuture<'a, AgentEnd>;
}

/// Everything one run of an agent gets.
pub struct AgentRun<'a> {
    /// The configuration for this session: the server's `[agent]` with the repository's overrides applied.
    pub config: &'a AgentConfig,
    /// The session.
    pub spec: &'a SessionSpec,
    /// The session's id (`FOREMAN_SESSION_ID`).
    pub session_id: &'a str,
    /// The branch checked out in the workspace.
    pub branch: &'a str,
    /// What the agent is shown (workspace, home, files, network).
    pub mounts: &'a Mounts,
    /// The agent's environment: the allowlist, `agent.env` and the git identity. The backend adds its own.
    pub env: BTreeMap<String, String>,
    /// The rendered prompt.
    pub prompt: String,
    /// A directory outside the workspace for files the agent is handed (removed by the backend after).
    pub scratch_dir: &'a Path,
    /// Where the agent's process runs.
    pub executor: &'a dyn Executor,
    /// Fires when the session is cancelled.
    pub cancel: &'a CancellationToken,
    /// Progress as the agent reports it.
    pub progress: &'a (dyn Fn(Progress) + Send + Sync),
    /// The session log.
    pub log: &'a mut SessionLog,
}

/// What one agent run produced.
#[derive(Debug, Default)]
pub struct AgentEnd {
    /// Why it failed; `None`: it finished.
    pub failure: Option<(FailureCause, String)>,
    /// Its final text (Claude's `result`, the end of a command's stdout).
    pub answer: Option<String>,
    /// The agent's own session id, for a later session to resume (Claude's; `None` for others).
    pub agent_session_id: Option<String>,
    /// Counts the backend parsed from the agent's output, when it reports them.
    pub stats: Option<AgentStats>,
    /// The variable name of the credential used last (never its value).
    pub credential: Option<String>,
}

impl AgentEnd {
    /// A run that failed before or without the agent's output.
    pub fn failed(class: FailureCause, reason: String) -> Self {
        Self { failure: Some((class, reason)), ..Self::default() }
    }
}

/// What a backend counted in its agent's output.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AgentStats {
    /// API turns of the main agent.
    pub turns: u32,
    /// Tool uses by tool name.
    pub tools: BTreeMap<String, u32>,
    /// Total tool uses.
    pub tool_count: u32,
    /// Cost in US dollars, as the agent reported it.
    pub cost_usd: Option<f64>,
}

/// The process limits of one session configured as `c`.
pub fn limits(c: &AgentConfig) -> Limits {
    Limits {
        timeout: c.timeout(),
        stall: c.stall_timeout(),
        max_output_bytes: c.max_output_bytes,
        grace: c.kill_grace(),
    }
}

/// The failure of a process that did not end on its own (a limit, a cancellation, a stop), or exited
/// where no other reason is known; the same for every backend.
pub fn limit_failure(c: &AgentConfig, ended: &Ended) -> (FailureCause, String) {
    match ended {
        Ended::TimedOut => (FailureCause::Timeout, format!("the agent ran longer than {} s", c.timeout_secs)),
        Ended::Stalled => (FailureCause::Stalled, format!("the agent wrote nothing for {} s", c.stall_timeout_secs)),
        Ended::OutputCapped => {
            (FailureCause::OutputLimit, format!("the agent wrote more than {} bytes", c.max_output_bytes))
        }
        Ended::Cancelled => (FailureCause::Cancelled, "the session was cancelled".into()),
        Ended::Stopped(why) => (FailureCause::TurnLimit, why.clone()),
        Ended::Exited(status) => (FailureCause::Agent, format!("the agent {}", exit_words(status))),
    }
}

/// An I/O error in words for people: its kind (`file not found`, `permission denied`), never a path or the
/// error's debug form.
pub fn io_words(e: &std::io::Error) -> String {
    e.kind().to_string()
}

/// How a process ended, in words for people: `exited with status 1`, `was killed by signal 9`.
pub fn exit_words(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended without an exit status".into(),
    }
}

/// Whether `program` can be run: a path to an executable file, or a name found as one on `PATH`.
pub fn runnable(program: &Path) -> bool {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
}
