//! Running an agent process under limits: wall-clock timeout, stall timeout, output cap, cancellation.
//!
//! The process leads its own process group (process-wrap's `ProcessGroup`), so ending it ends everything it
//! started: SIGTERM to the group, then SIGKILL after the grace period. stdout is handed over line by line;
//! stderr is kept (its tail) for the failure reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How much of stderr is kept for the failure reason, in bytes (the end of it, where errors are).
const STDERR_TAIL: usize = 4096;

/// What to run.
#[derive(Clone, Debug)]
pub struct Spawn {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The complete environment (the process starts from an empty one).
    pub env: BTreeMap<String, String>,
    /// Written to stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// Resource limits for the process and what it starts ([`super::sandbox::Sandbox::limits`]).
    pub limits: ResourceLimits,
}

/// Kernel resource limits (setrlimit(2)) set on a process before it starts, inherited by its children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// `RLIMIT_NPROC`: processes of the user. Not applied by the kernel to uid 0.
    pub processes: Option<u64>,
    /// `RLIMIT_DATA`, in bytes: each process's heap and private writable memory (Linux 4.7 and later). An
    /// allocation past it fails (a `MemoryError`, "memory exhausted"); address space only reserved, as the
    /// Claude CLI's JavaScript engine does, does not count.
    pub memory_bytes: Option<u64>,
}

/// Sets `limits` on the child before it starts (every process run under limits goes through here).
pub fn apply_limits(cmd: &mut tokio::process::Command, limits: ResourceLimits) {
    if let Some(n) = limits.processes {
        set_rlimit(cmd, Rlimit::Processes, n);
    }
    if let Some(bytes) = limits.memory_bytes {
        set_rlimit(cmd, Rlimit::Data, bytes);
    }
}

/// The limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Longest silence (no byte on stdout or stderr).
    pub stall: Duration,
    /// Cap on stdout plus stderr, in bytes.
    pub max_output_bytes: u64,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// Why a run ended.
#[derive(Debug)]
pub enum Ended {
    /// The process exited on its own.
    Exited(ExitStatus),
    /// The wall-clock limit passed.
    TimedOut,
    /// Nothing was written for the stall limit.
    Stalled,
    /// More output than the cap.
    OutputCapped,
    /// The cancellation token fired.
    Cancelled,
    /// The line handler asked to stop (e.g. a limit it watches).
    Stopped(String),
}

/// What the line handler wants after a line.
pub enum Control {
    /// Keep going.
    Continue,
    /// End the process (group) with this reason.
    Stop(String),
}

/// The result of a run.
#[derive(Debug)]
pub struct Run {
    /// Why it ended.
    pub ended: Ended,
    /// The last [`STDERR_TAIL`] bytes of stderr, lossily decoded.
    pub stderr_tail: String,
    /// Bytes read from stdout and stderr.
    pub output_bytes: u64,
}

/// Asks Linux to SIGKILL the agent when Foreman dies (`PR_SET_PDEATHSIG`), so a Foreman killed with
/// SIGKILL (or crashed) leaves no agent running on without it, spending its budget in a worktree the next
/// start removes. `KillOnDrop` and the group signals cover every orderly end; this covers the disorderly
/// one. It reaches the group leader only: what the leader started (e.g. the script behind `sh -c`) runs on
/// until its next write to the closed pipes fails, or until the next start ([`kill_orphaned_agents`]).
/// Linux sends the signal when the *thread* that spawned the child ends: agents are spawned from the
/// runtime's worker threads, which live as long as the process. Elsewhere it does nothing.
fn kill_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2) and getppid(2),
    // which are async-signal-safe.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody will send the signal. (No allocation here:
            // between fork and exec only async-signal-safe calls are allowed.)
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Which limit [`set_rlimit`] sets.
#[derive(Clone, Copy)]
enum Rlimit {
    Processes,
    Data,
}

/// Sets one limit, soft and hard, to `n` in the child before it starts (see [`super::sandbox`] for where
/// each holds). Lowering the hard limit means the agent cannot raise it again.
fn set_rlimit(cmd: &mut tokio::process::Command, which: Rlimit, n: u64) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit(2), which is
    // async-signal-safe, on values built before the fork.
    unsafe {
        let resource = match which {
            Rlimit::Processes => libc::RLIMIT_NPROC,
            Rlimit::Data => libc::RLIMIT_DATA,
        };
        let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
        cmd.pre_exec(move || {
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, which, n);
}

/// Kills the process groups of agents that an earlier Foreman process left running when it died (SIGKILL, a
/// crash, the OOM killer): processes whose environment names a session (`FOREMAN_SESSION_ID`) and whose
/// working directory or `FOREMAN_WORKSPACE` lies under `worktrees` (this data directory's, so another
/// Foreman's agents on the same host are left alone). Call at start, before any session runs and before the
/// worktrees are pruned. Returns how many processes were found. Linux only (reads `/proc`); elsewhere 0.
pub fn kill_orphaned_agents(worktrees: &std::path::Path) -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(root) = std::fs::canonicalize(worktrees) else { return 0 };
        let under_root = |p: &str| std::path::Path::new(p.trim_end_matches(" (deleted)")).starts_with(&root);
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let mut found = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.iter().any(|v| v.starts_with(b"FOREMAN_SESSION_ID=")) {
                continue;
            }
            let workspace = vars
                .iter()
                .find_map(|v| v.strip_prefix(b"FOREMAN_WORKSPACE="))
                .is_some_and(|w| std::str::from_utf8(w).is_ok_and(under_root));
            let cwd =
                std::fs::read_link(entry.path().join("cwd")).ok().is_some_and(|c| c.to_str().is_some_and(under_root));
            if !(workspace || cwd) {
                continue;
            }
            found += 1;
            // SAFETY: getpgid and kill only read their arguments.
            unsafe {
                let pgid = libc::getpgid(pid as libc::pid_t);
                if pgid > 1 && pgid != libc::getpgid(0) {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        found
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = worktrees;
        0
    }
}

/// Runs `spawn` under `limits`, calling `on_line` for each stdout line (without its newline). Errors only
/// when the process cannot be started.
pub async fn run(
    spawn: Spawn,
    limits: Limits,
    cancel: &CancellationToken,
    mut on_line: impl FnMut(&str) -> Control,
) -> std::io::Result<Run> {
    let mut cmd = CommandWrap::with_new(&spawn.program, |c| {
        c.args(&spawn.args)
            .current_dir(&spawn.cwd)
            .env_clear()
            .envs(&spawn.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        kill_with_parent(c);
        apply_limits(c, spawn.limits);
    });
    cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin().take();
    let mut stdout = child.stdout().take().expect("stdout is piped");
    let mut stderr = child.stderr().take().expect("stderr is piped");
    let input = spawn.stdin;
    let writer = tokio::spawn(async move {
        if let Some(mut w) = stdin.take() {
            // A program that never reads stdin closes it; that is not an error.
            let _ = w.write_all(&input).await;
            let _ = w.shutdown().await;
        }
    });

    let started = Instant::now();
    let deadline = started + limits.timeout;
    let mut last_output = started;
    let mut total: u64 = 0;
    let mut line = Vec::new();
    let mut tail = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    let mut out_buf = vec![0u8; 64 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    // Set when the agent itself exits; what it left running may hold the pipes open for `grace` at most.
    let mut exited: Option<ExitStatus> = None;
    let mut drain_until = deadline;
    let ended = loop {
        if !out_open && !err_open {
            break None;
        }
        tokio::select! {
            n = read(&mut stdout, &mut out_buf), if out_open => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    out_open = false;
                    if !line.is_empty() {
                        let l = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        if let Control::Stop(why) = on_line(&l) { break Some(Ended::Stopped(why)); }
                    }
                    continue;
                }
                total += n as u64;
                last_output = Instant::now();
                if total > limits.max_output_bytes { break Some(Ended::OutputCapped); }
                let mut stop = None;
                for &b in &out_buf[..n] {
                    if b == b'\n' {
                        let l = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        if let Control::Stop(why) = on_line(&l) { stop = Some(why); break; }
                    } else {
                        line.push(b);
                    }
                }
                if let Some(why) = stop { break Some(Ended::Stopped(why)); }
            }
            n = read(&mut stderr, &mut err_buf), if err_open => {
                let n = n.unwrap_or(0);
                if n == 0 { err_open = false; continue; }
                total += n as u64;
                last_output = Instant::now();
                if total > limits.max_output_bytes { break Some(Ended::OutputCapped); }
                tail.extend_from_slice(&err_buf[..n]);
                if tail.len() > STDERR_TAIL { tail.drain(..tail.len() - STDERR_TAIL); }
            }
            status = child.wait(), if exited.is_none() => {
                exited = Some(status?);
                drain_until = Instant::now() + limits.grace;
            }
            _ = tokio::time::sleep_until(drain_until), if exited.is_some() => break None,
            _ = tokio::time::sleep_until(deadline), if exited.is_none() => break Some(Ended::TimedOut),
            _ = tokio::time::sleep_until(last_output + limits.stall), if exited.is_none() => break Some(Ended::Stalled),
            _ = cancel.cancelled() => break Some(Ended::Cancelled),
        }
    };
    let ended = match (ended, exited) {
        (Some(reason), _) => {
            terminate(child.as_mut(), limits.grace).await;
            reason
        }
        (None, Some(status)) => Ended::Exited(status),
        (None, None) => {
            // Both pipes closed: the agent is exiting. It still gets the remaining limits.
            tokio::select! {
                status = child.wait() => Ended::Exited(status?),
                _ = tokio::time::sleep_until(deadline) => { terminate(child.as_mut(), limits.grace).await; Ended::TimedOut }
                _ = cancel.cancelled() => { terminate(child.as_mut(), limits.grace).await; Ended::Cancelled }
            }
        }
    };
    // Whatever the agent left running in its group (a server, a watcher) ends with it.
    #[cfg(unix)]
    let _ = child.signal(libc::SIGKILL);
    writer.abort();
    Ok(Run { ended, stderr_tail: String::from_utf8_lossy(&tail).into_owned(), output_bytes: total })
}

async fn read(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    r.read(buf).await
}

/// SIGTERM to the whole group, then SIGKILL once `grace` has passed without the group exiting.
async fn terminate(child: &mut dyn process_wrap::tokio::ChildWrapper, grace: Duration) {
    #[cfg(unix)]
    let _ = child.signal(libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
