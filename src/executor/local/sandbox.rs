//! The sandbox every agent process and every required command runs in: bubblewrap (`bwrap`, Debian's
//! `bubblewrap` package, the tool Flatpak and Claude Code's own Linux sandbox use).
//!
//! Inside, the process sees:
//! - a read-only system: `/usr` (with `/bin`, `/lib*`, `/sbin` as on the host: symlinks into `/usr` or
//!   read-only binds), and a minimal `/etc` ([`ETC_FILES`]: certificates, resolver, hosts, time zone, the
//!   dynamic linker's cache) with a `passwd` and `group` naming one user, `agent` ([`UID`]);
//! - its repository, read-write, at [`WORKSPACE`], and a home of its own at [`HOME`] (kept per issue under
//!   the data directory, so the Claude CLI can resume its sessions), a private `/tmp`, and a fresh `/proc`
//!   and `/dev`;
//! - the directory of the agent's program, read-only at the same path (a CLI installed outside `/usr`, e.g.
//!   under an npm prefix), the paths listed in `agent.sandbox_paths`, read-only, and those in
//!   `agent.sandbox_writable_paths`, read-write (shared by every session: caches);
//! - nothing else: not Foreman's data directory (store, keys, other sessions, mirrors, logs), not Foreman's
//!   environment (the process starts from the allowlisted environment the session builds), not Foreman's
//!   processes (a PID namespace of its own).
//!
//! Namespaces: user, PID, mount, IPC and UTS always; network too unless `agent.network = "open"`. The
//! agent runs as [`UID`] inside, mapped to Foreman's own uid outside, so files it writes belong to Foreman.
//! `--die-with-parent` ends the sandbox when the bwrap process Foreman started dies, and bwrap's init is the
//! PID namespace's first process: when the agent's main process exits, init exits and the kernel kills every
//! process left in the namespace, `setsid` or not. `--new-session` keeps the agent off Foreman's terminal.
//!
//! Limits, set on bwrap before it starts and inherited by everything in the sandbox, which cannot raise them
//! (it has no capability outside its user namespace):
//! - `agent.max_memory_mb` sets `RLIMIT_DATA` (Linux 4.7 and later): each process's heap and private
//!   writable memory; an allocation past it fails. It holds for a root Foreman too. It bounds each process,
//!   not their sum. `RLIMIT_AS` would not do: the Claude CLI reserves tens of GiB of address space it never
//!   uses (measured: it starts under `RLIMIT_DATA` = 2 GiB).
//! - `agent.max_processes` sets `RLIMIT_NPROC`. The kernel counts it per user and does not apply it to uid 0
//!   (exempt even inside a user namespace), so it holds for the Docker image (uid 10001) and not for a root
//!   Foreman.
//!
//! For a bound on the sum, run Foreman in a cgroup (Docker `--memory`, systemd `MemoryMax=`, the VM size on
//! Fly.io). See docs/security.md.
//!
//! Without bubblewrap or user namespaces, [`Sandbox::check`] says why, and no session starts; running
//! without a sandbox needs `agent.sandbox = "off"`, which Foreman warns about at every start.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::executor::process::{ResourceLimits, Spawn};
use crate::executor::{Mounts, NetworkAccess};

/// Where the session's repository is inside the sandbox (read-write), and the agent's working directory.
pub const WORKSPACE: &str = "/workspace";

/// The agent's home inside the sandbox (read-write, kept per issue).
pub const HOME: &str = "/home/agent";

/// The agent's uid and gid inside the sandbox (mapped to Foreman's own outside). Not 0, so tools that
/// refuse to run as root (the Claude CLI's `bypassPermissions`) behave as on a developer's machine.
pub const UID: u32 = 1000;

/// Where read-only files Foreman hands the agent are put inside the sandbox (the command backend's prompt).
pub const RUN_DIR: &str = "/run/foreman";

/// The files of the host's `/etc` shown to the agent (those that exist): TLS certificates, name
/// resolution, the time zone and the dynamic linker's cache. Nothing that names Foreman's user or secrets.
pub const ETC_FILES: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/mime.types",
];

/// Top-level directories that are symlinks into `/usr` on a merged-`/usr` system, or read-only binds
/// otherwise.
const SYSTEM_DIRS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Where the network bridge listens inside a sandbox whose network is the proxy: the sandbox's own
/// loopback, so the port cannot clash with anything outside.
pub const PROXY_LISTEN: &str = "127.0.0.1:3128";

/// The variables that point the agent's HTTP clients at the bridge: curl reads only the lowercase
/// `http_proxy`, Node.js and most others either case.
const PROXY_VARIABLES: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"];

/// `agent.sandbox`: whether agents run in the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// bubblewrap, as described in the module docs (default).
    #[default]
    On,
    /// No sandbox: the agent runs as Foreman's own user and sees what Foreman sees. Logged as a warning at
    /// every start; for development machines only.
    Off,
}

/// The sandbox's settings: the `agent.sandbox*`, `agent.bwrap_path`, `agent.max_processes`,
/// `agent.max_memory_mb` and `agent.bridge_path` keys (see the session's `AgentConfig` for each).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// `agent.sandbox`.
    pub mode: SandboxMode,
    /// `agent.bwrap_path`: the bubblewrap executable, a path or a name looked up on `PATH`.
    pub bwrap_path: PathBuf,
    /// `agent.sandbox_paths`: host paths shown read-only at the same path.
    pub read_only_paths: Vec<PathBuf>,
    /// `agent.sandbox_writable_paths`: host paths shown read-write at the same path.
    pub writable_paths: Vec<PathBuf>,
    /// `agent.max_processes`: `RLIMIT_NPROC`; `None`: no limit.
    pub max_processes: Option<u64>,
    /// `agent.max_memory_mb`: `RLIMIT_DATA`, in MiB; `None`: no limit.
    pub max_memory_mb: Option<u64>,
    /// `agent.bridge_path`: the `foreman` executable run as the network bridge; `None`: this process's own.
    pub bridge_path: Option<PathBuf>,
}

/// The sandbox, configured once at start. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    bwrap: PathBuf,
    extra_read_only: Vec<PathBuf>,
    extra_writable: Vec<PathBuf>,
    limits: ResourceLimits,
    /// `foreman`, run first inside a sandbox whose network is the proxy ([`super::netproxy::bridge`]).
    bridge: PathBuf,
    /// `passwd` and `group` files naming the agent, written once under the data directory.
    etc_dir: PathBuf,
    /// Why sessions cannot run, found by [`Self::check`]; `None` when they can.
    unavailable: Option<String>,
}

/// Why a process could not be put in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap is missing or cannot create namespaces here; the message says which and what to do.
    #[error("{0}")]
    Unavailable(String),
}

impl Sandbox {
    /// Prepares the sandbox under `data_dir/sandbox` and checks that it works ([`Self::check`]): one
    /// `bwrap … true` with the namespaces a session uses. Never fails: an unusable sandbox is remembered
    /// and reported by [`Self::unavailable`], and [`Self::wrap`] then refuses.
    pub fn new(data_dir: &Path, config: &SandboxConfig) -> Self {
        let mut sandbox = Self {
            mode: config.mode,
            bwrap: config.bwrap_path.clone(),
            extra_read_only: config.read_only_paths.clone(),
            extra_writable: config.writable_paths.clone(),
            limits: ResourceLimits {
                processes: config.max_processes,
                memory_bytes: config.max_memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
            },
            bridge: config
                .bridge_path
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .unwrap_or_else(|| PathBuf::from("foreman")),
            // Canonical, so that no shown path can hold it under another name ([`Self::build`]).
            etc_dir: std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned()).join("sandbox"),
            unavailable: None,
        };
        if sandbox.mode == SandboxMode::On {
            sandbox.unavailable = sandbox.check().err();
        }
        sandbox
    }

    /// Whether agents run sandboxed.
    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// Why no session can start (bubblewrap missing, user namespaces disabled …), or `None`.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The repository's path as the agent sees it.
    pub fn workspace_dir(&self, host: &Path) -> PathBuf {
        match self.mode {
            SandboxMode::On => PathBuf::from(WORKSPACE),
            SandboxMode::Off => host.to_owned(),
        }
    }

    /// The agent's home ([`Mounts::home`], on this machine at `host`) as the agent sees it.
    pub fn home_dir(&self, host: &Path) -> PathBuf {
        match self.mode {
            SandboxMode::On => PathBuf::from(HOME),
            SandboxMode::Off => host.to_owned(),
        }
    }

    /// The path of a file of [`Mounts::files`] as the agent sees it.
    pub fn file_path(&self, host: &Path, name: &str) -> PathBuf {
        match self.mode {
            SandboxMode::On => Path::new(RUN_DIR).join(name),
            SandboxMode::Off => host.to_owned(),
        }
    }

    /// Writes the `passwd` and `group` files and runs `bwrap … true` once, with every namespace a session
    /// can use (the network one included). The error says what is missing and how to fix it.
    pub fn check(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.etc_dir).map_err(|e| format!("cannot create {}: {e}", self.etc_dir.display()))?;
        for (name, text) in [
            ("passwd", format!("agent:x:{UID}:{UID}:Foreman agent:{HOME}:/bin/sh\n")),
            ("group", format!("agent:x:{UID}:\n")),
        ] {
            let path = self.etc_dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
        let probe = tempfile_dir(&self.etc_dir).map_err(|e| format!("cannot create a probe directory: {e}"))?;
        let mounts = Mounts {
            workspace: probe.clone(),
            home: probe.clone(),
            read_only: Vec::new(),
            files: Vec::new(),
            network: NetworkAccess::None,
        };
        let spawn = Spawn {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "exit 0".into()],
            cwd: probe.clone(),
            env: Default::default(),
            stdin: Vec::new(),
            limits: Default::default(),
        };
        let wrapped = self.build(spawn, &mounts);
        let out = std::process::Command::new(&wrapped.program)
            .args(&wrapped.args)
            .current_dir(&wrapped.cwd)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&probe);
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "bubblewrap ({}) is not installed: install Debian's `bubblewrap` package, or set \
                 agent.sandbox = \"off\" to run agents without a sandbox",
                self.bwrap.display()
            )),
            Err(e) => Err(format!("cannot run bubblewrap ({}): {e}", self.bwrap.display())),
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "bubblewrap cannot create the sandbox's namespaces here ({}): {}. Allow unprivileged user \
                 namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu \
                 kernel.apparmor_restrict_unprivileged_userns=0; in Docker run with a seccomp profile that \
                 allows clone(CLONE_NEWUSER)), or set agent.sandbox = \"off\"",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// `spawn` run inside the sandbox: the program becomes `bwrap` with the mounts and namespaces, the
    /// original program and arguments after `--`. The environment is passed through unchanged except
    /// `HOME`, `USER`, `LOGNAME` and `TMPDIR`, which name the sandbox's own. With `agent.sandbox = "off"`,
    /// `spawn` is returned as it is.
    ///
    /// # Errors
    /// [`SandboxError::Unavailable`] when [`Self::check`] failed at start.
    pub fn wrap(&self, spawn: Spawn, mounts: &Mounts) -> Result<Spawn, SandboxError> {
        match (self.mode, &self.unavailable) {
            (SandboxMode::Off, _) => Ok(spawn),
            (SandboxMode::On, Some(why)) => Err(SandboxError::Unavailable(why.clone())),
            (SandboxMode::On, None) => Ok(self.build(spawn, mounts)),
        }
    }

    /// The resource limits of the sandbox's processes (`agent.max_processes`, `agent.max_memory_mb`), set
    /// on the bwrap process before it starts and inherited by everything in the sandbox; none when off.
    pub fn limits(&self) -> ResourceLimits {
        match self.mode {
            SandboxMode::On => self.limits,
            SandboxMode::Off => ResourceLimits::default(),
        }
    }

    fn build(&self, mut spawn: Spawn, mounts: &Mounts) -> Spawn {
        let mut a: Vec<String> = Vec::with_capacity(96);
        let mut push = |parts: &[&str]| a.extend(parts.iter().map(|s| (*s).to_owned()));
        push(&["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
        if mounts.network != NetworkAccess::Open {
            push(&["--unshare-net"]);
        }
        let uid = UID.to_string();
        push(&["--uid", &uid, "--gid", &uid, "--hostname", "foreman-sandbox"]);
        push(&["--die-with-parent", "--new-session"]);
        push(&["--ro-bind", "/usr", "/usr"]);
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => push(&["--symlink", &target.to_string_lossy(), dir]),
                Err(_) if path.is_dir() => push(&["--ro-bind", dir, dir]),
                Err(_) => {}
            }
        }
        for file in ETC_FILES {
            push(&["--ro-bind-try", file, file]);
        }
        let passwd = self.etc_dir.join("passwd").to_string_lossy().into_owned();
        let group = self.etc_dir.join("group").to_string_lossy().into_owned();
        push(&["--ro-bind", &passwd, "/etc/passwd", "--ro-bind", &group, "/etc/group"]);
        push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]);
        let mut program_dirs = program_dirs(&spawn.program, spawn.env.get("PATH").map(String::as_str));
        if matches!(mounts.network, NetworkAccess::Proxy { .. }) {
            program_dirs.extend(program_dirs_of(&self.bridge));
        }
        // A program's directory or an operator's path that holds the data directory would show it all.
        let data_dir = self.etc_dir.parent().unwrap_or(&self.etc_dir);
        let holds_data = |p: &&PathBuf| data_dir.starts_with(std::fs::canonicalize(p).unwrap_or_else(|_| (*p).clone()));
        let shown = program_dirs.iter().chain(&self.extra_read_only).filter(|p| !holds_data(p));
        for path in shown.chain(&mounts.read_only) {
            let system = path.starts_with("/usr") || SYSTEM_DIRS.iter().any(|d| path.starts_with(d));
            if !system {
                let p = path.to_string_lossy();
                push(&["--ro-bind-try", &p, &p]);
            }
        }
        for path in self.extra_writable.iter().filter(|p| !holds_data(p)) {
            let p = path.to_string_lossy();
            push(&["--bind-try", &p, &p]);
        }
        for (host, name) in &mounts.files {
            let inside = format!("{RUN_DIR}/{name}");
            push(&["--ro-bind", &host.to_string_lossy(), &inside]);
        }
        if let NetworkAccess::Proxy { socket } = &mounts.network {
            let inside = format!("{RUN_DIR}/proxy.sock");
            push(&["--bind", &socket.to_string_lossy(), &inside]);
        }
        push(&["--bind", &mounts.home.to_string_lossy(), HOME]);
        push(&["--bind", &mounts.workspace.to_string_lossy(), WORKSPACE]);
        push(&["--chdir", WORKSPACE, "--"]);
        if matches!(mounts.network, NetworkAccess::Proxy { .. }) {
            let socket = format!("{RUN_DIR}/proxy.sock");
            let bridge = self.bridge.to_string_lossy();
            push(&[&bridge, "sandbox-bridge", "--listen", PROXY_LISTEN, "--socket", &socket, "--"]);
            let proxy = format!("http://{PROXY_LISTEN}");
            for name in PROXY_VARIABLES {
                spawn.env.insert((*name).to_owned(), proxy.clone());
            }
            for name in ["NO_PROXY", "no_proxy"] {
                spawn.env.remove(name);
            }
        }
        a.push(spawn.program.to_string_lossy().into_owned());
        a.append(&mut spawn.args);
        spawn.env.insert("HOME".into(), HOME.into());
        spawn.env.insert("USER".into(), "agent".into());
        spawn.env.insert("LOGNAME".into(), "agent".into());
        spawn.env.insert("TMPDIR".into(), "/tmp".into());
        Spawn {
            program: self.bwrap.clone(),
            args: a,
            cwd: mounts.workspace.clone(),
            env: spawn.env,
            stdin: spawn.stdin,
            limits: self.limits(),
        }
    }
}

/// The directories the agent's program needs to be run from inside the sandbox: for a program given by
/// path or found on `path`, its directory and, when it is a symlink (an npm `.bin` entry), the directory
/// of what it points to. Programs under `/usr` need nothing.
fn program_dirs(program: &Path, path: Option<&str>) -> Vec<PathBuf> {
    let found = if program.components().count() > 1 {
        Some(program.to_owned())
    } else {
        path.unwrap_or_default().split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
    };
    found.map(|f| program_dirs_of(&f)).unwrap_or_default()
}

/// The directory of the program at `found` and, when it is a symlink, of its target.
fn program_dirs_of(found: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = found.parent() {
        dirs.push(dir.to_owned());
    }
    if let Ok(real) = std::fs::canonicalize(found)
        && let Some(dir) = real.parent()
        && !dirs.iter().any(|d| d == dir)
    {
        dirs.push(dir.to_owned());
    }
    dirs
}

fn tempfile_dir(parent: &Path) -> std::io::Result<PathBuf> {
    let dir = parent.join(format!("probe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}
