//! Where a session's processes run: the executor seam.
//!
//! A session ([`crate::session`]) prepares a workspace and an agent home, then hands the executor what to run
//! ([`Spawn`]: program, arguments, environment, stdin) and what it may see ([`Mounts`]: the workspace, the
//! home, read-only paths and files, the network). The executor runs it under the session's [`Limits`] and
//! reports every line the process writes on stdout as it comes (the stream of events; the handler may stop
//! the run with [`Control::Stop`]), then how it ended ([`Run`]: the outcome).
//!
//! The one implementation today is [`local::LocalExecutor`]: a process group on this machine inside the
//! bubblewrap sandbox ([`local::sandbox`]), with the allowlisting network proxy ([`local::netproxy`]) when
//! `agent.network = "allowlist"`. Running sessions elsewhere (Kubernetes Jobs, GitHub Actions runners) is
//! one more folder here implementing [`Executor`]; the session and the agent backends do not change.
//!
//! This module imports nothing of Foreman's above it: the session and the constitution's required commands
//! both use it.

pub mod local;
pub mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

pub use process::{Control, Ended, Limits, ResourceLimits, Run, Spawn};

/// Where a session's agent runs (`executor.kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// On Foreman's host, in its sandbox (the default).
    #[default]
    Local,
    /// On a GitHub Actions runner: Foreman dispatches `executor.workflow`, and the runner runs
    /// `foreman session --connect` (docs/actions.md).
    Actions,
}

impl ExecutorKind {
    /// The name as configured: `local` or `actions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Actions => "actions",
        }
    }

    /// The kind named `name` (`local` or `actions`), or `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "actions" => Some(Self::Actions),
            _ => None,
        }
    }
}

/// A boxed future, so [`Executor`] can be used as `dyn Executor`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a session's processes reach the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkAccess {
    /// The host's network (no network namespace).
    Open,
    /// A network namespace with only its own loopback: nothing can be reached.
    None,
    /// A network namespace whose only way out is the allowlisting proxy listening on this Unix socket
    /// (outside the sandbox); see [`local::netproxy`].
    Proxy {
        /// The proxy's socket, outside the sandbox; bound read-only into it.
        socket: PathBuf,
    },
}

/// What one session's processes get to see besides the read-only system.
#[derive(Clone, Debug)]
pub struct Mounts {
    /// The repository, shown read-write ([`local::sandbox::WORKSPACE`] in the local sandbox).
    pub workspace: PathBuf,
    /// The agent's home, shown read-write ([`local::sandbox::HOME`] in the local sandbox).
    pub home: PathBuf,
    /// Further paths shown read-only at the same path (e.g. the mirror's objects a clone borrows).
    pub read_only: Vec<PathBuf>,
    /// Files shown read-only ([`local::sandbox::RUN_DIR`] in the local sandbox): (host path, file name inside).
    pub files: Vec<(PathBuf, String)>,
    /// The network.
    pub network: NetworkAccess,
}

/// What a session asks of the network: the mode and, for `allowlist`, the hosts (`agent.network`,
/// `agent.allowed_hosts`).
#[derive(Clone, Debug)]
pub struct NetworkPolicy {
    /// `open`, `none` or `allowlist`.
    pub mode: local::netproxy::NetworkMode,
    /// For `allowlist`: `host`, `host:port`, `*.domain` or IP literal entries.
    pub allowed_hosts: Vec<String>,
}

/// Why the executor could not run a process.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The executor cannot run sessions (the sandbox is unavailable); the message says why and what to do.
    #[error("{0}")]
    Unavailable(String),
    /// The process could not be started.
    #[error(transparent)]
    Start(#[from] std::io::Error),
}

/// The network one session was given, open until [`Network::close`]. Carries the network decisions made
/// for the session (the proxy's), for its log.
pub struct Network {
    /// What the session's processes are shown ([`Mounts::network`]).
    pub access: NetworkAccess,
    closer: Option<Box<dyn FnOnce() -> BoxFuture<'static, NetworkLog> + Send>>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network").field("access", &self.access).finish_non_exhaustive()
    }
}

impl Network {
    /// A network with nothing to close.
    pub fn plain(access: NetworkAccess) -> Self {
        Self { access, closer: None }
    }

    /// A network that `close` shuts down (a proxy, say), returning what it decided.
    pub fn closed_by(
        access: NetworkAccess,
        close: impl FnOnce() -> BoxFuture<'static, NetworkLog> + Send + 'static,
    ) -> Self {
        Self { access, closer: Some(Box::new(close)) }
    }

    /// Shuts the session's network down and returns its decisions (empty when there is nothing to close).
    pub async fn close(self) -> NetworkLog {
        match self.closer {
            Some(close) => close().await,
            None => NetworkLog::default(),
        }
    }
}

/// The network decisions of one session, as JSON values for its log.
#[derive(Debug, Default)]
pub struct NetworkLog {
    /// One value per decision (a connection allowed or refused), oldest first.
    pub events: Vec<serde_json::Value>,
    /// Decisions past what was kept: counted, not kept.
    pub dropped: u64,
}

/// Where sessions run. Build one at start and share it; every method is cheap except [`Executor::run`].
pub trait Executor: fmt::Debug + Send + Sync {
    /// A short name for logs (`local`).
    fn name(&self) -> &'static str;

    /// Why no session can run here (the sandbox cannot be created …), or `None`.
    fn unavailable(&self) -> Option<&str>;

    /// The workspace's path as the session's processes see it, given its path on this machine.
    fn workspace_dir(&self, host: &Path) -> PathBuf;

    /// The path of a file of [`Mounts::files`] as the session's processes see it.
    fn file_path(&self, host: &Path, name: &str) -> PathBuf;

    /// The agent's home ([`Mounts::home`], on this machine at `host`) as the session's processes see it: a
    /// directory they may write, e.g. for a file they hand back to Foreman.
    fn home_dir(&self, host: &Path) -> PathBuf;

    /// The agent's home on this machine as the agent sees it, for an agent that keeps state there (the
    /// Claude CLI's transcripts): the mounted home when the processes see it, else the `HOME` of `env`.
    fn agent_home<'a>(&self, mounts: &'a Mounts, env: &'a BTreeMap<String, String>) -> Option<&'a Path>;

    /// Opens the network of session `session_id` as `policy` asks. The error says why it could not
    /// (an invalid allowlist, a proxy that could not bind).
    fn network(&self, policy: &NetworkPolicy, session_id: &str) -> Result<Network, String>;

    /// `spawn` confined as the session's processes are (for a command Foreman runs itself in the workspace,
    /// such as the constitution's required commands).
    ///
    /// # Errors
    /// [`ExecError::Unavailable`] when the executor cannot run sessions.
    fn confine(&self, spawn: Spawn, mounts: &Mounts) -> Result<Spawn, ExecError>;

    /// Runs `spawn` confined to `mounts` under `limits` until it ends, `cancel` fires or `on_line` says
    /// stop. Each line of stdout (without its newline) is handed to `on_line` as it is written.
    ///
    /// # Errors
    /// [`ExecError::Unavailable`] when the executor cannot run sessions; [`ExecError::Start`] when the
    /// program cannot be started.
    fn run<'a>(
        &'a self,
        spawn: Spawn,
        mounts: &'a Mounts,
        limits: Limits,
        cancel: &'a CancellationToken,
        on_line: &'a mut (dyn FnMut(&str) -> Control + Send),
    ) -> BoxFuture<'a, Result<Run, ExecError>>;

    /// Cleans up what a crash left behind (processes still running, sockets). Call once at start.
    fn prune(&self) -> std::io::Result<()>;
}
