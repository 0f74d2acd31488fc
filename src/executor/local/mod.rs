//! The local executor: a session's processes run on this machine, each in its own process group
//! ([`super::process`]) inside the bubblewrap sandbox ([`sandbox`]), reaching the network as
//! `agent.network` says (for `allowlist`, through a proxy of its own: [`netproxy`]).

pub mod netproxy;
pub mod sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::{
    BoxFuture, Control, ExecError, Executor, Limits, Mounts, Network, NetworkAccess, NetworkLog, NetworkPolicy, Run,
    Spawn,
};
use sandbox::{Sandbox, SandboxConfig, SandboxMode};

/// How many network decisions wait to be written to the session log; past it they are counted, not kept
/// (the proxy never waits on the log). A session's agent makes a few hundred connections at most.
const NETWORK_EVENTS: usize = 4096;

/// Runs sessions on this machine, in the bubblewrap sandbox. Build one at start.
#[derive(Debug)]
pub struct LocalExecutor {
    sandbox: Sandbox,
    /// The network proxies' Unix sockets, one per session with `agent.network = "allowlist"` (mode 0700).
    proxy_dir: PathBuf,
    /// Where the sessions' worktrees are: an agent still running in one after a crash is killed at start.
    worktrees: PathBuf,
}

impl LocalExecutor {
    /// Prepares the sandbox under `data_dir/sandbox` (checking once that it works: [`Sandbox::new`]) and the
    /// proxies' directory `data_dir/proxy` (mode 0700). `worktrees` is where sessions' worktrees live.
    ///
    /// # Errors
    /// The proxies' directory cannot be created, with its path.
    pub fn new(data_dir: &Path, config: &SandboxConfig, worktrees: &Path) -> Result<Self, (PathBuf, std::io::Error)> {
        let proxy_dir = data_dir.join("proxy");
        std::fs::create_dir_all(&proxy_dir).map_err(|e| (proxy_dir.clone(), e))?;
        // The proxies' sockets: reachable by Foreman's user only, from the moment each is bound.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&proxy_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| (proxy_dir.clone(), e))?;
        }
        Ok(Self { sandbox: Sandbox::new(data_dir, config), proxy_dir, worktrees: worktrees.to_owned() })
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn unavailable(&self) -> Option<&str> {
        self.sandbox.unavailable()
    }

    fn workspace_dir(&self, host: &Path) -> PathBuf {
        self.sandbox.workspace_dir(host)
    }

    fn file_path(&self, host: &Path, name: &str) -> PathBuf {
        self.sandbox.file_path(host, name)
    }

    fn home_dir(&self, host: &Path) -> PathBuf {
        self.sandbox.home_dir(host)
    }

    fn agent_home<'a>(&self, mounts: &'a Mounts, env: &'a BTreeMap<String, String>) -> Option<&'a Path> {
        match self.sandbox.mode() {
            SandboxMode::On => Some(mounts.home.as_path()),
            SandboxMode::Off => env.get("HOME").map(Path::new),
        }
    }

    fn network(&self, policy: &NetworkPolicy, session_id: &str) -> Result<Network, String> {
        match policy.mode {
            netproxy::NetworkMode::Open => Ok(Network::plain(NetworkAccess::Open)),
            netproxy::NetworkMode::None => Ok(Network::plain(NetworkAccess::None)),
            netproxy::NetworkMode::Allowlist => {
                let allowlist = netproxy::Allowlist::parse(&policy.allowed_hosts, "agent.allowed_hosts")?;
                let socket = self.proxy_dir.join(format!("{session_id}.sock"));
                let _ = std::fs::remove_file(&socket);
                let (tx, mut rx) = tokio::sync::mpsc::channel(NETWORK_EVENTS);
                let proxy = netproxy::NetProxy::bind(
                    &socket,
                    allowlist,
                    netproxy::ProxyLimits::default(),
                    tx,
                    &CancellationToken::new(),
                )
                .map_err(|e| format!("starting the network proxy on {}: {e}", socket.display()))?;
                Ok(Network::closed_by(NetworkAccess::Proxy { socket }, move || {
                    Box::pin(async move {
                        let dropped = proxy.dropped_events();
                        proxy.shutdown().await;
                        let mut events = Vec::new();
                        while let Ok(event) = rx.try_recv() {
                            events.push(serde_json::json!(event));
                        }
                        NetworkLog { events, dropped }
                    })
                }))
            }
        }
    }

    fn confine(&self, spawn: Spawn, mounts: &Mounts) -> Result<Spawn, ExecError> {
        self.sandbox.wrap(spawn, mounts).map_err(|e| ExecError::Unavailable(e.to_string()))
    }

    fn run<'a>(
        &'a self,
        spawn: Spawn,
        mounts: &'a Mounts,
        limits: Limits,
        cancel: &'a CancellationToken,
        on_line: &'a mut (dyn FnMut(&str) -> Control + Send),
    ) -> BoxFuture<'a, Result<Run, ExecError>> {
        Box::pin(async move {
            let spawn = self.confine(spawn, mounts)?;
            Ok(super::process::run(spawn, limits, cancel, on_line).await?)
        })
    }

    fn prune(&self) -> std::io::Result<()> {
        let orphans = super::process::kill_orphaned_agents(&self.worktrees);
        if orphans > 0 {
            tracing::warn!(orphans, "killed agents left running by an earlier Foreman process");
        }
        // Sockets of network proxies whose sessions a crash ended: nothing listens on them any more.
        for entry in std::fs::read_dir(&self.proxy_dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }
}
