//! Required commands (`[[rules.required_commands]]`): each runs with `sh -c` in the workspace, in its own
//! process group so a timeout kills everything it started (and whatever it leaves running in the
//! background is killed when it exits), with a clean environment so none of Foreman's secrets reach it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::schema::RequiredCommand;
use crate::executor::{Executor, Mounts, Spawn};

/// Where a required command runs (the session's executor: the agent's sandbox), and what it shows.
#[derive(Clone, Copy, Debug)]
pub struct Confinement<'a> {
    /// The executor the session's agent ran in.
    pub executor: &'a dyn Executor,
    /// The workspace, home and files shown.
    pub mounts: &'a Mounts,
}

/// How much of a command's combined output is kept: the last 4 KiB, enough for a failing test's summary
/// and short enough for a comment.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// How long to wait for the output pipe to close after the process group is killed. Bounds a
/// grandchild that escaped the group (e.g. with `setsid`) and still holds the pipe.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Environment variables passed through to required commands (when set): what compilers and package
/// managers need to find themselves. Everything else, Foreman's secrets included, is left out.
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "CARGO_TARGET_DIR",
    "GOPATH",
    "GOCACHE",
    "GOMODCACHE",
    "NPM_CONFIG_CACHE",
    "PIP_CACHE_DIR",
    "VIRTUAL_ENV",
];

/// What one required command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandOutcome {
    /// The command's `name`.
    pub name: String,
    /// The command line.
    pub run: String,
    /// Exited with status 0 within its time limit.
    pub passed: bool,
    /// The exit code; `None` when killed (by the time limit or a signal) or when it could not start.
    pub exit_code: Option<i32>,
    /// Killed at its time limit.
    pub timed_out: bool,
    /// Wall-clock time, in milliseconds.
    pub duration_ms: u64,
    /// The last [`OUTPUT_TAIL_BYTES`] of stdout and stderr, interleaved as written. `enforce` replaces
    /// anything shaped like a secret with `[redacted]`.
    pub output_tail: String,
}

/// Runs `command` in `workspace` and waits for it, at most `command.timeout_secs`. With `sandbox`, the
/// command runs in the agent's sandbox ([`crate::executor::local::sandbox`]): it is the repository's code, as
/// untrusted as the agent that changed it.
pub async fn run(workspace: &Path, command: &RequiredCommand, sandbox: Option<Confinement<'_>>) -> CommandOutcome {
    let started = Instant::now();
    let limit = Duration::from_secs(command.timeout_secs.get());
    let mut outcome = CommandOutcome {
        name: command.name.clone(),
        run: command.run.clone(),
        passed: false,
        exit_code: None,
        timed_out: false,
        duration_ms: 0,
        output_tail: String::new(),
    };
    let spawn = Spawn {
        program: "sh".into(),
        // `exec 2>&1` sends stderr into the one pipe, so the tail keeps the order things were written in.
        args: vec!["-c".into(), format!("exec 2>&1\n{}", command.run)],
        cwd: workspace.to_owned(),
        env: PASSED_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v))).collect(),
        stdin: Vec::new(),
        limits: Default::default(),
    };
    let spawn = match sandbox {
        None => spawn,
        Some(Confinement { executor, mounts }) => match executor.confine(spawn, mounts) {
            Ok(spawn) => spawn,
            Err(e) => {
                outcome.output_tail = format!("could not start the command: {e}");
                return outcome;
            }
        },
    };
    let mut wrap = CommandWrap::with_new(&spawn.program, |cmd| {
        cmd.args(&spawn.args)
            .current_dir(&spawn.cwd)
            .env_clear()
            .envs(&spawn.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        crate::executor::process::apply_limits(cmd, spawn.limits);
    });
    wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut child = match wrap.spawn() {
        Ok(child) => child,
        Err(e) => {
            outcome.output_tail = format!("could not start sh: {e}");
            return outcome;
        }
    };
    let mut stdout = child.stdout().take();
    let reader = tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        if let Some(out) = stdout.as_mut() {
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * OUTPUT_TAIL_BYTES {
                    tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
                }
            }
        }
        tail
    });
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => {
            outcome.exit_code = status.code();
            outcome.passed = status.success();
            // Whatever it left running in the background (a server, a watcher) would outlive the check
            // and hold the output pipe open: end it. An empty group is an error to ignore.
            let _ = child.start_kill();
        }
        Ok(Err(e)) => outcome.output_tail = format!("could not wait for the command: {e}"),
        Err(_) => {
            outcome.timed_out = true;
            let _ = Box::into_pin(child.kill()).await;
        }
    }
    let tail = tokio::time::timeout(DRAIN_AFTER_KILL, reader).await.ok().and_then(Result::ok).unwrap_or_default();
    let start = tail.len().saturating_sub(OUTPUT_TAIL_BYTES);
    outcome.output_tail.insert_str(0, &String::from_utf8_lossy(&tail[start..]));
    outcome.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    outcome
}
