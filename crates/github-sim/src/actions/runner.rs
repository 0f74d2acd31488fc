//! The simulated runner: runs dispatched workflows on this machine, at most `runners` runs at once (the rest
//! stay `queued`, first dispatched first started).
//!
//! A run's jobs run one after another in file order (`needs` is ignored), each in a fresh temporary
//! directory (`$GITHUB_WORKSPACE`, the steps' working directory; `$RUNNER_TEMP` beside it), both removed
//! when the job ends. Each `run:` step is `bash --noprofile --norc -eo pipefail <script>`, as GitHub runs
//! `shell: bash`, with `${{ … }}` substituted ([`super::workflow::Contexts`]), in its own process group, with
//! the simulator's environment, the runner's extra `PATH` entries and variables ([`RunnerEnv`]), GitHub's
//! default variables (`GITHUB_RUN_ID`, `GITHUB_REPOSITORY`, `GITHUB_WORKSPACE`, …) and the workflow's, job's
//! and step's `env`. Lines `NAME=value` appended to `$GITHUB_ENV` reach later steps. `uses:` steps are not
//! run: the log says so and the step is `skipped`. A step runs while every step before it succeeded, or
//! when its `if:` holds ([`super::condition`]: `always()`, `failure()`, `cancelled()`, comparisons);
//! otherwise it is `skipped`. `continue-on-error: true` keeps a failed step from failing the job.
//!
//! Ends: a step that exits non-zero fails the job (`failure`); a cancel sends the running step's process
//! group SIGINT, then SIGTERM after 7.5 s, then SIGKILL after 2.5 s more, as GitHub's runner does, runs the
//! steps whose `if:` holds once cancelled (`always()`, `cancelled()`), and the job and run end `cancelled`;
//! the job's `timeout-minutes` ends the running step the same way and nothing more runs (`timed_out`); a
//! step's own `timeout-minutes` fails it; a lost runner (a test hook) is SIGKILL at once, nothing more runs,
//! and the job and run end as GitHub ends a job whose runner stopped answering: `failure`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::condition::{self, JobStatus};
use super::now;
use super::workflow::{self, Contexts, Workflow};
use crate::server::Inner;

/// How long a cancelled step has after SIGINT before SIGTERM (GitHub's runner: 7.5 s).
pub const CANCEL_SIGINT_GRACE: Duration = Duration::from_millis(7500);
/// How long after SIGTERM before SIGKILL (GitHub's runner: 2.5 s).
pub const CANCEL_SIGTERM_GRACE: Duration = Duration::from_millis(2500);
/// The most of one step's output kept in the job's log, in bytes (its end is dropped past that).
pub const STEP_LOG_LIMIT: u64 = 4 << 20;

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `POST …/cancel`: signals, then `cancelled`.
    Cancel,
    /// `POST …/force-cancel`: SIGKILL at once, no `always()` step, `cancelled`.
    ForceCancel,
    /// The runner went away (a test hook): SIGKILL, then `failure`.
    Lost,
}

/// What the runner adds to the simulator's own environment for every step.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunnerEnv {
    /// Directories put in front of `PATH` (a self-hosted runner with tools baked in).
    pub path: Vec<PathBuf>,
    /// Extra variables.
    pub env: BTreeMap<String, String>,
}

pub(crate) struct Start {
    run_id: u64,
    workflow: Workflow,
    contexts: Contexts,
    stop: watch::Receiver<Option<Stop>>,
}

pub(crate) enum Msg {
    Start(Box<Start>),
    /// Look at the queue again (a queued run was cancelled).
    Wake,
}

/// The runner's handle in the simulator: the queue's sender, the stop signals of unfinished runs, and the
/// runner's environment.
pub(crate) struct Runtime {
    tx: mpsc::UnboundedSender<Msg>,
    stops: Mutex<HashMap<u64, watch::Sender<Option<Stop>>>>,
    pub env: Mutex<RunnerEnv>,
    /// At most this many runs in progress at once.
    pub runners: usize,
}

impl Runtime {
    pub fn new(runners: usize) -> (Runtime, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rt = Runtime { tx, stops: Mutex::default(), env: Mutex::default(), runners };
        (rt, rx)
    }

    /// Queues a dispatched run.
    pub fn start(&self, run_id: u64, workflow: Workflow, contexts: Contexts) {
        let (stop_tx, stop) = watch::channel(None);
        self.stops.lock().expect("stops lock").insert(run_id, stop_tx);
        let _ = self.tx.send(Msg::Start(Box::new(Start { run_id, workflow, contexts, stop })));
    }

    /// Stops an unfinished run; false when it has ended (or never was).
    pub fn stop(&self, run_id: u64, why: Stop) -> bool {
        let stops = self.stops.lock().expect("stops lock");
        let Some(tx) = stops.get(&run_id) else { return false };
        // A force-cancel overrides a cancel still under way; nothing else replaces a stop.
        tx.send_if_modified(|s| match (*s, why) {
            (None, _) | (Some(Stop::Cancel), Stop::ForceCancel) => {
                *s = Some(why);
                true
            }
            _ => false,
        });
        let _ = self.tx.send(Msg::Wake);
        true
    }

    fn done(&self, run_id: u64) {
        self.stops.lock().expect("stops lock").remove(&run_id);
    }
}

fn changed(inner: &Inner) {
    inner.changed.send_modify(|n| *n += 1);
}

/// The runner task: starts queued runs while fewer than `runners` are in progress.
pub(crate) async fn manage(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut queue: VecDeque<Box<Start>> = VecDeque::new();
    let mut running = tokio::task::JoinSet::new();
    let mut slots: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut free: Vec<usize> = (1..=inner.actions.runners).rev().collect();
    loop {
        queue.retain(|s| {
            let stopped = s.stop.borrow().is_some();
            if stopped {
                end_unstarted(&inner, s.run_id);
            }
            !stopped
        });
        while !queue.is_empty()
            && let Some(slot) = free.pop()
        {
            let start = queue.pop_front().expect("not empty");
            let handle = running.spawn(drive(inner.clone(), start, slot));
            slots.insert(handle.id(), slot);
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Start(s)) => queue.push_back(s),
                Some(Msg::Wake) => {}
                None => return,
            },
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                if let Some(slot) = slots.remove(&id) {
                    free.push(slot);
                }
            }
        }
    }
}

/// A run cancelled before a runner took it: every job and the run end `cancelled`.
fn end_unstarted(inner: &Inner, run_id: u64) {
    let mut w = inner.world();
    let t = now();
    let jobs = w.actions.runs[&run_id].jobs.clone();
    for id in &jobs {
        let j = w.actions.jobs.get_mut(id).expect("job of run");
        j.status = "completed".into();
        j.conclusion = Some("cancelled".into());
        j.completed_at = Some(t.clone());
        for s in &mut j.steps {
            s.status = "completed".into();
            s.conclusion = Some("skipped".into());
        }
        super::emit_job(inner, &mut w, *id, "completed");
    }
    let run = w.actions.runs.get_mut(&run_id).expect("run");
    run.status = "completed".into();
    run.conclusion = Some("cancelled".into());
    run.updated_at = t;
    super::emit_run(inner, &mut w, run_id, "completed");
    drop(w);
    inner.actions.done(run_id);
    changed(inner);
}

/// Runs one run on runner `slot`.
async fn drive(inner: Arc<Inner>, start: Box<Start>, slot: usize) {
    let Start { run_id, workflow, contexts, mut stop } = *start;
    let jobs = {
        let mut w = inner.world();
        let run = w.actions.runs.get_mut(&run_id).expect("run");
        run.status = "in_progress".into();
        run.run_started_at = now();
        run.updated_at = run.run_started_at.clone();
        let jobs = run.jobs.clone();
        super::emit_run(&inner, &mut w, run_id, "in_progress");
        tracing::info!(run_id, repo = %run_repo(&w, run_id), runner = slot, "workflow run started");
        jobs
    };
    changed(&inner);
    let (mut failed, mut timed_out) = (false, false);
    for (job, job_id) in workflow.jobs.iter().zip(jobs) {
        match run_job(&inner, job_id, &workflow, job, &contexts, &mut stop, slot).await {
            "failure" => failed = true,
            "timed_out" => timed_out = true,
            _ => {}
        }
    }
    let stopped = *stop.borrow();
    let conclusion = match stopped {
        Some(Stop::Cancel | Stop::ForceCancel) => "cancelled",
        Some(Stop::Lost) => "failure",
        None if failed => "failure",
        None if timed_out => "timed_out",
        None => "success",
    };
    let mut w = inner.world();
    let run = w.actions.runs.get_mut(&run_id).expect("run");
    run.status = "completed".into();
    run.conclusion = Some(conclusion.into());
    run.updated_at = now();
    super::emit_run(&inner, &mut w, run_id, "completed");
    tracing::info!(run_id, repo = %run_repo(&w, run_id), conclusion, "workflow run completed");
    drop(w);
    inner.actions.done(run_id);
    changed(&inner);
}

fn run_repo(w: &crate::world::World, run_id: u64) -> String {
    w.actions.runs.get(&run_id).map(|r| r.repo.clone()).unwrap_or_default()
}

/// Applies `f` to job `id` and bumps the change counter.
fn with_job(inner: &Inner, id: u64, f: impl FnOnce(&mut super::Job)) {
    f(inner.world().actions.jobs.get_mut(&id).expect("job"));
    changed(inner);
}

fn set_step(inner: &Inner, job: u64, n: usize, status: &str, conclusion: Option<&str>) {
    with_job(inner, job, |j| {
        let s = &mut j.steps[n];
        let t = now();
        if status == "in_progress" {
            s.started_at = Some(t.clone());
        }
        if status == "completed" {
            s.started_at.get_or_insert_with(|| t.clone());
            s.completed_at = Some(t);
        }
        s.status = status.into();
        s.conclusion = conclusion.map(str::to_string);
    });
}

fn log(inner: &Inner, job: u64, text: &str) {
    with_job(inner, job, |j| j.log.push_str(text));
}

/// Runs one job; returns its conclusion.
#[allow(clippy::too_many_arguments)]
async fn run_job(
    inner: &Inner,
    job_id: u64,
    wf: &Workflow,
    job: &workflow::Job,
    base: &Contexts,
    stop: &mut watch::Receiver<Option<Stop>>,
    slot: usize,
) -> &'static str {
    let runner_name = format!("github-sim-runner-{slot}");
    let started = {
        let mut w = inner.world();
        let j = w.actions.jobs.get_mut(&job_id).expect("job");
        j.status = "in_progress".into();
        j.started_at = Some(now());
        j.runner_id = Some(slot as u64);
        j.runner_name = Some(runner_name.clone());
        super::emit_job(inner, &mut w, job_id, "in_progress");
        drop(w);
        changed(inner);
        tempfile::Builder::new().prefix("github-sim-job-").tempdir()
    };
    let conclusion = match started {
        Ok(dir) => run_steps(inner, job_id, wf, job, base, stop, &runner_name, dir.path()).await,
        Err(e) => {
            log(inner, job_id, &format!("##[error]github-sim could not make the job's directory: {e}\n"));
            "failure"
        }
    };
    let mut w = inner.world();
    let j = w.actions.jobs.get_mut(&job_id).expect("job");
    j.status = "completed".into();
    j.conclusion = Some(conclusion.into());
    j.completed_at = Some(now());
    for s in &mut j.steps {
        if s.status != "completed" {
            s.status = "completed".into();
            s.conclusion = Some("skipped".into());
        }
    }
    super::emit_job(inner, &mut w, job_id, "completed");
    drop(w);
    changed(inner);
    conclusion
}

/// `NAME=value` lines of a `$GITHUB_ENV` file (the `NAME<<DELIMITER` form included).
fn read_env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn run_steps(
    inner: &Inner,
    job_id: u64,
    wf: &Workflow,
    job: &workflow::Job,
    base: &Contexts,
    stop: &mut watch::Receiver<Option<Stop>>,
    runner_name: &str,
    dir: &Path,
) -> &'static str {
    let workspace = dir.join("workspace");
    let temp = dir.join("temp");
    for d in [&workspace, &temp] {
        if let Err(e) = std::fs::create_dir_all(d) {
            log(inner, job_id, &format!("##[error]github-sim could not make {}: {e}\n", d.display()));
            return "failure";
        }
    }
    let files = ["github_env", "github_output", "github_path", "github_step_summary"].map(|f| temp.join(f));
    for f in &files {
        let _ = std::fs::write(f, "");
    }
    let mut ctx = base.clone();
    let (repo, secrets) = {
        let w = inner.world();
        let repo = base.values.get("github").and_then(|g| g.get("repository")).cloned().unwrap_or_default();
        let secrets = w.actions.secrets.get(&repo).cloned().unwrap_or_default();
        (repo, secrets)
    };
    for (k, v) in &secrets {
        ctx.set("secrets", k, v.clone());
    }
    ctx.set("github", "job", job.id.clone());
    ctx.set("github", "workspace", workspace.display().to_string());
    ctx.set("runner", "temp", temp.display().to_string());
    ctx.set("runner", "name", runner_name);
    ctx.set("runner", "os", "Linux");
    let extra = inner.actions.env.lock().expect("runner env lock").clone();
    let mut env: BTreeMap<String, String> = extra.env.clone();
    let mut path: Vec<String> = extra.path.iter().map(|p| p.display().to_string()).collect();
    path.extend(std::env::var("PATH").ok());
    env.insert("PATH".into(), path.join(":"));
    let g = |k: &str| ctx.values.get("github").and_then(|m| m.get(k)).cloned().unwrap_or_default();
    let defaults = [
        ("CI", "true".to_string()),
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_RUN_ID", g("run_id")),
        ("GITHUB_RUN_NUMBER", g("run_number")),
        ("GITHUB_RUN_ATTEMPT", "1".into()),
        ("GITHUB_REPOSITORY", repo),
        ("GITHUB_REPOSITORY_OWNER", g("repository_owner")),
        ("GITHUB_SHA", g("sha")),
        ("GITHUB_REF", g("ref")),
        ("GITHUB_REF_NAME", g("ref_name")),
        ("GITHUB_EVENT_NAME", "workflow_dispatch".into()),
        ("GITHUB_SERVER_URL", g("server_url")),
        ("GITHUB_API_URL", g("api_url")),
        ("GITHUB_GRAPHQL_URL", format!("{}/graphql", g("api_url"))),
        ("GITHUB_WORKFLOW", g("workflow")),
        ("GITHUB_JOB", job.id.clone()),
        ("GITHUB_ACTOR", g("actor")),
        ("GITHUB_WORKSPACE", workspace.display().to_string()),
        ("RUNNER_TEMP", temp.display().to_string()),
        ("RUNNER_NAME", runner_name.to_string()),
        ("RUNNER_OS", "Linux".into()),
        ("GITHUB_ENV", files[0].display().to_string()),
        ("GITHUB_OUTPUT", files[1].display().to_string()),
        ("GITHUB_PATH", files[2].display().to_string()),
        ("GITHUB_STEP_SUMMARY", files[3].display().to_string()),
    ];
    for (k, v) in defaults {
        env.insert(k.into(), v);
    }
    for (k, v) in wf.env.iter().chain(&job.env) {
        let v = ctx.substitute(v);
        ctx.set("env", k, v.clone());
        env.insert(k.clone(), v);
    }
    let job_deadline = Instant::now() + Duration::from_secs_f64(job.timeout_minutes.max(0.0) * 60.0);
    // What has happened to the job so far.
    let (mut failed, mut cancelled, mut lost, mut timed_out) = (false, false, false, false);
    // Nothing more runs (a force-cancel, a lost runner, the job's time limit).
    let mut halted = false;
    for (n, step) in job.steps.iter().enumerate() {
        match *stop.borrow() {
            Some(Stop::Cancel) => cancelled = true,
            Some(Stop::ForceCancel) => (cancelled, halted) = (true, true),
            Some(Stop::Lost) => (lost, halted) = (true, true),
            None => {}
        }
        let status = if cancelled {
            JobStatus::Cancelled
        } else if failed {
            JobStatus::Failure
        } else {
            JobStatus::Success
        };
        let display = step.display_name();
        let runs = if halted {
            Ok(false)
        } else {
            match &step.condition {
                None => Ok(status == JobStatus::Success),
                Some(c) => condition::holds(c, &ctx, status).map_err(|why| format!("`if: {c}`: {why}")),
            }
        };
        match runs {
            Ok(true) => {}
            Ok(false) => {
                set_step(inner, job_id, n, "completed", Some("skipped"));
                continue;
            }
            Err(why) => {
                log(
                    inner,
                    job_id,
                    &format!("##[group]{display}\n##[error]github-sim cannot evaluate {why}\n##[endgroup]\n"),
                );
                set_step(inner, job_id, n, "completed", Some("failure"));
                failed |= !step.continue_on_error;
                continue;
            }
        }
        let Some(script) = &step.run else {
            let uses = step.uses.as_deref().unwrap_or_default();
            log(
                inner,
                job_id,
                &format!("##[group]{display}\ngithub-sim does not run actions: `uses: {uses}` skipped\n##[endgroup]\n"),
            );
            set_step(inner, job_id, n, "completed", Some("skipped"));
            continue;
        };
        set_step(inner, job_id, n, "in_progress", None);
        let mut step_env = env.clone();
        let mut step_ctx = ctx.clone();
        for (k, v) in read_env_file(&files[0]) {
            step_ctx.set("env", &k, v.clone());
            step_env.insert(k, v);
        }
        for (k, v) in &step.env {
            let v = step_ctx.substitute(v);
            step_ctx.set("env", k, v.clone());
            step_env.insert(k.clone(), v);
        }
        let script = step_ctx.substitute(script);
        let script_path = temp.join(format!("step-{}.sh", n + 1));
        let output = temp.join(format!("step-{}.log", n + 1));
        log(inner, job_id, &format!("##[group]Run {}\n{}##[endgroup]\n", display, with_newline(&script)));
        if let Err(e) = std::fs::write(&script_path, &script) {
            log(inner, job_id, &format!("##[error]github-sim could not write the step's script: {e}\n"));
            set_step(inner, job_id, n, "completed", Some("failure"));
            failed |= !step.continue_on_error;
            continue;
        }
        let step_deadline = step.timeout_minutes.map(|m| Instant::now() + Duration::from_secs_f64(m.max(0.0) * 60.0));
        let deadline = step_deadline.map_or(job_deadline, |d| d.min(job_deadline));
        let cwd = match &step.working_directory {
            Some(d) => workspace.join(d),
            None => workspace.clone(),
        };
        // A step started after a cancel (`if: always()`, `cancelled()`) is not ended by that cancel.
        with_job(inner, job_id, |j| j.live = Some(output.clone()));
        let end = exec(&script_path, &cwd, &step_env, &output, deadline, stop, cancelled).await;
        let text = with_newline(&read_capped(&output));
        with_job(inner, job_id, |j| {
            j.log.push_str(&text);
            j.live = None;
        });
        let (conclusion, message) = match end {
            End::Exit(0) => ("success", None),
            End::Exit(code) => ("failure", Some(format!("Process completed with exit code {code}."))),
            End::Spawn(e) => ("failure", Some(format!("github-sim could not start bash: {e}"))),
            End::TimedOut if deadline == job_deadline => {
                (timed_out, halted) = (true, true);
                let limit = job.timeout_minutes;
                let m = format!(
                    "The job running on runner {runner_name} has exceeded the maximum execution time of {limit} minutes."
                );
                ("cancelled", Some(m))
            }
            End::TimedOut => {
                let limit = step.timeout_minutes.unwrap_or_default();
                ("failure", Some(format!("The action '{display}' has timed out after {limit} minutes.")))
            }
            End::Stopped(Stop::Cancel) => {
                cancelled = true;
                ("cancelled", Some("The operation was canceled.".into()))
            }
            End::Stopped(Stop::ForceCancel) => {
                (cancelled, halted) = (true, true);
                ("cancelled", Some("The operation was canceled.".into()))
            }
            End::Stopped(Stop::Lost) => {
                (lost, halted) = (true, true);
                let m = format!(
                    "The self-hosted runner: {runner_name} lost communication with the server. Verify the machine is \
                     running and has a healthy network connection."
                );
                ("failure", Some(m))
            }
        };
        if let Some(m) = message {
            log(inner, job_id, &format!("##[error]{m}\n"));
        }
        set_step(inner, job_id, n, "completed", Some(conclusion));
        if conclusion == "failure" && !step.continue_on_error {
            failed = true;
        }
    }
    if lost {
        "failure"
    } else if cancelled {
        "cancelled"
    } else if timed_out {
        "timed_out"
    } else if failed {
        "failure"
    } else {
        "success"
    }
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') { s.to_string() } else { format!("{s}\n") }
}

/// A step's output file, its first [`STEP_LOG_LIMIT`] bytes (lossy UTF-8).
pub(crate) fn read_capped(path: &Path) -> String {
    use std::io::Read as _;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(STEP_LOG_LIMIT).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// How a step's process ended.
enum End {
    Exit(i32),
    Spawn(std::io::Error),
    TimedOut,
    Stopped(Stop),
}

/// Waits for a stop: a lost runner, or a cancel unless `ignore_cancel`.
async fn wait_stop(rx: &mut watch::Receiver<Option<Stop>>, ignore_cancel: bool) -> Stop {
    loop {
        match *rx.borrow_and_update() {
            Some(Stop::Cancel) if ignore_cancel => {}
            Some(s) => return s,
            None => {}
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs one step's script; its stdout and stderr go to `output`.
async fn exec(
    script: &Path,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    output: &Path,
    deadline: Instant,
    stop: &mut watch::Receiver<Option<Stop>>,
    ignore_cancel: bool,
) -> End {
    let files = std::fs::File::create(output).and_then(|f| Ok((f.try_clone()?, f)));
    let (out, err) = match files {
        Ok(f) => f,
        Err(e) => return End::Spawn(e),
    };
    let mut cmd = CommandWrap::with_new("bash", |c| {
        c.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(script)
            .current_dir(cwd)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
    });
    cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return End::Spawn(e),
    };
    let end = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => End::Exit(s.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt as _;
                128 + s.signal().unwrap_or(0)
            })),
            Err(e) => End::Spawn(e),
        },
        _ = tokio::time::sleep_until(deadline) => End::TimedOut,
        why = wait_stop(stop, ignore_cancel) => End::Stopped(why),
    };
    match end {
        End::TimedOut | End::Stopped(Stop::Cancel) => {
            let _ = child.signal(libc::SIGINT);
            let graceful = async {
                if tokio::time::timeout(CANCEL_SIGINT_GRACE, child.wait()).await.is_err() {
                    let _ = child.signal(libc::SIGTERM);
                    let _ = tokio::time::timeout(CANCEL_SIGTERM_GRACE, child.wait()).await;
                }
            };
            // A force-cancel or a lost runner during the grace ends it at once.
            tokio::select! {
                _ = graceful => {}
                _ = wait_stop(stop, true) => {}
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        End::Stopped(Stop::Lost | Stop::ForceCancel) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        _ => {}
    }
    // Whatever the step left running in its group ends with it, as on a runner.
    let _ = child.signal(libc::SIGKILL);
    end
}
