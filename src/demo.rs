//! `foreman demo`: see Foreman turn a labelled issue into a pull request on this machine, without a GitHub
//! App, in a few seconds.
//!
//! Everything runs on loopback in a temporary directory:
//!
//! 1. github-sim, in this process: a repository `acme/widgets`, a user `alice` with write access, an
//!    organisation board "Roadmap" (Projects v2, with Foreman's columns);
//! 2. Foreman, as a child process of this executable (`foreman serve`), with the simulator's App id, key,
//!    API URL and webhook secret, and the command agent backend;
//! 3. a scripted agent (a shell script given as the command backend's command) that adds a function and commits.
//!
//! Then it opens issue #1, puts it on the board, labels it `foreman` as alice, and narrates on standard
//! output what happens, as GitHub (the simulator) and Foreman's job API show it, until the pull request that
//! closes the issue exists. It ends with the tracking comment's text and exits 0; or, when the pull request
//! does not open within `--timeout`, exits 1 with the reason and Foreman's last log lines on standard error.
//!
//! Foreman runs as a child process rather than inside this one because `serve` is a whole process: it stops
//! on SIGTERM/SIGINT, installs the process-wide log subscriber and metrics recorder, and announces its port
//! only in its "listening" log line. A child keeps its logs apart from the narration (captured, shown with
//! `--verbose` or on failure), is stopped like production (SIGTERM, graceful drain), and runs exactly the
//! binary a deployment runs.
//!
//! GitHub's API descriptions, which the simulator holds every request to, are built into the binary (see
//! `github_sim::descriptions`), so the demo runs from any directory with nothing beside the binary.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use github_sim::{GithubSim, Permission, SimConfig, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::ids::{IssueNumber, RepoName};
use crate::markers::parse_tracking;
use crate::report::github::ReportConfig;

/// The organisation that owns the repository and the board.
pub const OWNER: &str = "acme";
/// The repository's name: the demo works in `acme/widgets`.
pub const NAME: &str = "widgets";
/// The user who labels the issue (write access, so Foreman accepts the trigger).
pub const REQUESTER: &str = "alice";
/// The organisation board's title.
pub const BOARD: &str = "Roadmap";
/// The board's Status options: Foreman's default columns (`[report]` in docs/configuration.md) among the
/// usual ones.
pub const COLUMNS: &[&str] = &["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"];
/// The issue the demo opens.
pub const ISSUE_TITLE: &str = "Add a greeting";
const ISSUE_BODY: &str = "`src/lib.rs` should have a `greeting()` function that says hello.";
/// The label that asks Foreman for work (`triggers.label`'s default).
pub const TRIGGER_LABEL: &str = "foreman";

/// How long Foreman may take to log "listening": it opens sled and binds a socket (milliseconds); the bound
/// is for a cold start on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the demo looks at what does not wake it (Foreman's job API, the agent's start marker, Foreman
/// exiting). Changes on the simulator wake it at once; this only bounds how late those other steps are told.
pub const POLL: Duration = Duration::from_millis(200);
/// How long, after the pull request opened, the demo waits for the job to end and the tracking comment to
/// show it. The runner reports right after recording the outcome and waits 30 s at most for that report.
pub const FINAL_REPORT_WAIT: Duration = Duration::from_secs(30);
/// How long Foreman gets to exit after SIGTERM before SIGKILL. `serve` drains requests for 20 s at most;
/// with nothing in flight it stops in milliseconds.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(25);
/// Foreman's log lines kept in memory for a failure report.
pub const LOG_LINES_KEPT: usize = 500;
/// Foreman's log lines shown when the demo fails.
pub const LOG_LINES_SHOWN: usize = 40;

/// `foreman demo`'s options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Also show Foreman's log lines, on standard error.
    #[arg(long, short)]
    pub verbose: bool,
    /// Give up (exit 1) when the pull request has not opened this many seconds after the start.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
    /// Keep the temporary directory (the simulator's repositories, Foreman's data and session logs) and
    /// print its path.
    #[arg(long)]
    pub keep: bool,
    /// A folder whose GitHub API descriptions replace the built-in ones the simulator checks requests
    /// against (`github/rest/api.github.com.json` or its `.zst`, `github/graphql/schema.graphql`).
    #[arg(long, value_name = "DIR")]
    pub descriptions_dir: Option<PathBuf>,
}

/// Runs the demo. Exit code 0 once the pull request exists, 130 on Ctrl-C, 1 (with the reason and
/// Foreman's last log lines on standard error) otherwise.
pub fn main(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("foreman demo: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logs = LogTail::new(args.verbose);
    let result = runtime.block_on(run(&args, &logs));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("foreman demo: interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("foreman demo: {e:#}");
            let tail = logs.last(LOG_LINES_SHOWN);
            if tail.is_empty() {
                eprintln!("Foreman logged nothing.");
            } else {
                eprintln!("Foreman's last {} log lines:", tail.len());
                for line in tail {
                    eprintln!("  {line}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// The demo was stopped with Ctrl-C (SIGINT): exit code 130, as a shell reports it.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// One narration line on standard output. A closed standard output (`| head`) is not an error.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run(args: &DemoArgs, logs: &LogTail) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let git = std::process::Command::new("git").arg("--version").output();
    if !git.is_ok_and(|o| o.status.success()) {
        bail!("the demo needs git on PATH: Foreman and github-sim shell out to it");
    }
    let dir = tempfile::Builder::new().prefix("foreman-demo-").tempdir().context("creating a temporary directory")?;
    // Ctrl-C drops the demo: Foreman (killed on drop) and the simulator stop, and the directory is removed.
    let result = tokio::select! {
        r = demo(args, logs, dir.path(), deadline) => r,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
    };
    if args.keep {
        let kept = dir.keep();
        say(format_args!("kept {}", kept.display()));
    }
    result
}

async fn demo(args: &DemoArgs, logs: &LogTail, dir: &Path, deadline: Instant) -> anyhow::Result<()> {
    let mut config = SimConfig::new(dir.join("sim"));
    config.webhook_secret = uuid::Uuid::new_v4().simple().to_string();
    config.descriptions_dir = args.descriptions_dir.clone();
    let sim = GithubSim::start(config).await.context("starting github-sim")?;
    say(format_args!("github-sim listening on {}", sim.url()));

    sim.create_user(REQUESTER, Permission::Write, "User");
    sim.create_repo(
        OWNER,
        NAME,
        &[("README.md", "# widgets\n"), ("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n")],
    )
    .context("creating the repository")?;
    let repo = format!("{OWNER}/{NAME}");
    say(format_args!("created {repo}"));
    let (board, _) = sim.create_project(OWNER, BOARD, COLUMNS);
    say(format_args!("created board \"{BOARD}\" (Projects v2 #{board} of {OWNER}, columns: {})", COLUMNS.join(", ")));

    let agent = agent_script();
    let mut foreman = Foreman::start(dir, &sim, &agent, logs).await?;
    say(format_args!("Foreman listening on http://{} (data in {})", foreman.addr, dir.join("data").display()));
    sim.set_webhook_url(Some(foreman.url("/api/github/webhooks")));

    let timeout = Duration::from_secs(args.timeout);
    let result = drive(&sim, &mut foreman, &repo, board, logs, (deadline, timeout)).await;
    foreman.stop().await;
    result
}

/// Opens the issue, boards and labels it, and narrates until the pull request exists and the job ended.
async fn drive(
    sim: &SimHandle,
    foreman: &mut Foreman,
    repo: &str,
    board: u64,
    logs: &LogTail,
    (deadline, timeout): (Instant, Duration),
) -> anyhow::Result<()> {
    let (number, _) = sim.create_issue(repo, ISSUE_TITLE, ISSUE_BODY, REQUESTER).context("opening the issue")?;
    say(format_args!("opened #{number}: {ISSUE_TITLE}"));
    sim.add_project_item(OWNER, board, repo, number, REQUESTER).context("adding the issue to the board")?;
    say(format_args!("added #{number} to the board"));
    sim.add_label(repo, number, TRIGGER_LABEL, REQUESTER).context("labelling the issue")?;
    say(format_args!("labelled #{number} {TRIGGER_LABEL}"));

    let mut story = Story::new(repo, number, sim.bot_login());
    let pull = loop {
        foreman.check_alive()?;
        let state = sim.state();
        let job = foreman.job(repo, number).await;
        story.tell(&state, job.as_ref(), logs.agent_started()).into_iter().for_each(say);
        if let Some(pull) = story.pull {
            break pull;
        }
        if let Some(job) = job.as_ref().filter(|j| j["state"] == "stuck" || j["state"] == "cancelled") {
            bail!("Foreman set #{number} aside before opening a pull request: {}", job_summary(job));
        }
        let now = Instant::now();
        if now >= deadline {
            let seen = job.as_ref().map(job_summary).unwrap_or_else(|| "Foreman has no job for it".into());
            bail!("no pull request for #{number} within --timeout ({} s); {seen}", timeout.as_secs());
        }
        let before = story.digest(&state);
        sim.wait_until(POLL.min(deadline - now), |s| story.digest(s) != before).await;
    };

    // The job ends just after the pull request opens (review request, check run, final report): wait for the
    // final report to be on GitHub (the comment links the pull request, the card is in review, the running
    // label is gone), so the text below is the final one and Foreman is not stopped half-way through it.
    let report = ReportConfig::default();
    let until = Instant::now() + FINAL_REPORT_WAIT;
    let mut state = sim.state();
    loop {
        foreman.check_alive()?;
        let job = foreman.job(repo, number).await;
        story.tell(&state, job.as_ref(), true).into_iter().for_each(say);
        let ended = job.as_ref().is_some_and(|j| !matches!(j["state"].as_str(), Some("queued" | "running")));
        let shown = story.tracking(&state).is_some_and(|c| c.contains(&format!("#{pull}")))
            && story.column.as_deref() == Some(report.in_review_column.as_str())
            && !story.labels.contains(&report.running_label);
        let now = Instant::now();
        if (ended && shown) || now >= until {
            break;
        }
        let before = story.digest(&state);
        state =
            sim.wait_until(POLL.min(until - now), |s| story.digest(s) != before).await.unwrap_or_else(|| sim.state());
    }
    match story.tracking(&state) {
        Some(body) => {
            say(format_args!("tracking comment on #{number}:"));
            for line in body.lines().skip(1) {
                say(format_args!("  | {line}"));
            }
        }
        None => say(format_args!("(no tracking comment on #{number} yet)")),
    }
    let (api, git) = requests(&sim.state());
    say(format_args!("Foreman made {api} GitHub API requests and {git} git requests"));
    let started = deadline - timeout;
    say(format_args!("done in {:.1} s: pull request #{pull} closes #{number}", started.elapsed().as_secs_f64()));
    Ok(())
}

/// What has been told so far, so each step is told once and in order.
struct Story {
    repo: String,
    number: u64,
    bot: String,
    /// Steps of the main line told so far: queued, claimed, agent running, pull request.
    told: usize,
    labels: BTreeSet<String>,
    column: Option<String>,
    tracking: bool,
    failures: u64,
    ended: bool,
    pull: Option<u64>,
}

impl Story {
    fn new(repo: &str, number: u64, bot: String) -> Self {
        Story {
            repo: repo.to_owned(),
            number,
            bot,
            told: 0,
            labels: BTreeSet::new(),
            column: None,
            tracking: false,
            failures: 0,
            ended: false,
            pull: None,
        }
    }

    /// The parts of the simulator's state the story reads; a change in them wakes the demo.
    fn digest(&self, state: &Value) -> Value {
        let issue = issue(state, &self.repo, self.number);
        serde_json::json!([
            issue["labels"],
            issue["comments"],
            repo_state(state, &self.repo)["pulls"],
            state["projects"]
        ])
    }

    /// The tracking comment's body: a comment by Foreman's bot whose first line is the marker of this issue.
    fn tracking(&self, state: &Value) -> Option<String> {
        let (owner, name) = self.repo.split_once('/')?;
        let repo = RepoName::new(owner, name).ok()?;
        issue(state, &self.repo, self.number)["comments"].as_array()?.iter().find_map(|c| {
            let body = c["body"].as_str()?;
            (c["user"].as_str() == Some(self.bot.as_str())
                && parse_tracking(body) == Some((repo.clone(), IssueNumber(self.number))))
            .then(|| body.to_owned())
        })
    }

    /// The lines that tell what is new: the main line (queued, claimed, agent running, pull request opened) in order, and
    /// Foreman's labels, board moves, tracking comment and failures as they show.
    fn tell(&mut self, state: &Value, job: Option<&Value>, agent_started: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let n = self.number;
        let issue = issue(state, &self.repo, n);
        let labels: BTreeSet<String> = issue["labels"]
            .as_array()
            .map(|ls| ls.iter().filter_map(|l| l.as_str().map(str::to_owned)).filter(|l| l != TRIGGER_LABEL).collect())
            .unwrap_or_default();
        for added in labels.difference(&self.labels) {
            lines.push(format!("#{n} labelled {added}"));
        }
        for removed in self.labels.difference(&labels) {
            lines.push(format!("#{n} unlabelled {removed}"));
        }
        self.labels = labels;
        let column = board_column(state, &self.repo, n);
        if column.is_some() && column != self.column {
            lines.push(format!("card #{n} moved to {}", column.as_deref().unwrap_or_default()));
            self.column = column;
        }
        if !self.tracking && self.tracking(state).is_some() {
            lines.push(format!("tracking comment posted on #{n}"));
            self.tracking = true;
        }
        if let Some(job) = job {
            let failures = job["failures"].as_object().map(|f| f.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
            if failures > self.failures {
                let class = job["last_failure"]["class"].as_str().unwrap_or("unknown");
                let reason = job["last_failure"]["reason"].as_str().unwrap_or("no reason recorded");
                lines.push(format!("attempt failed ({class}): {reason}"));
                self.failures = failures;
            }
        }
        let attempts = job.and_then(|j| j["attempts"].as_u64()).unwrap_or(0);
        let pull = pulls_closing(state, &self.repo, n);
        let steps: [(bool, String); 4] = [
            (job.is_some(), format!("Foreman queued #{n}")),
            (attempts >= 1, format!("Foreman claimed #{n}")),
            (agent_started, "agent running".to_owned()),
            (
                pull.is_some(),
                pull.as_ref()
                    .map(|p| {
                        format!(
                            "pull request #{} opened: {} ({} into {})",
                            p["number"],
                            p["title"].as_str().unwrap_or_default(),
                            p["head"].as_str().unwrap_or_default(),
                            p["base"].as_str().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default(),
            ),
        ];
        while let Some((true, line)) = steps.get(self.told) {
            lines.push(line.clone());
            self.told += 1;
        }
        if self.told == steps.len() {
            self.pull = pull.and_then(|p| p["number"].as_u64());
        }
        let finished = job.filter(|_| self.pull.is_some() && !self.ended).and_then(|j| j["state"].as_str());
        if let Some(s) = finished.filter(|s| !matches!(*s, "queued" | "running")) {
            lines.push(format!("Foreman finished #{n}: {s}"));
            self.ended = true;
        }
        lines
    }
}

fn repo_state<'a>(state: &'a Value, repo: &str) -> &'a Value {
    state["repos"].as_array().and_then(|rs| rs.iter().find(|r| r["full_name"] == repo)).unwrap_or(&Value::Null)
}

fn issue(state: &Value, repo: &str, number: u64) -> Value {
    repo_state(state, repo)["issues"]
        .as_array()
        .and_then(|is| is.iter().find(|i| i["number"] == number))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The pull request whose body closes `#number`.
fn pulls_closing(state: &Value, repo: &str, number: u64) -> Option<Value> {
    let closes = format!("Closes #{number}");
    repo_state(state, repo)["pulls"]
        .as_array()?
        .iter()
        .find(|p| p["body"].as_str().is_some_and(|b| b.lines().any(|l| l.trim() == closes)))
        .cloned()
}

/// The Status column of the issue's card on any board.
fn board_column(state: &Value, repo: &str, number: u64) -> Option<String> {
    state["projects"].as_array()?.iter().find_map(|p| {
        p["items"].as_array()?.iter().find(|i| i["repo"] == repo && i["issue"] == number)?["column"]
            .as_str()
            .map(str::to_owned)
    })
}

/// The requests the simulator served, as (API, git smart HTTP) counts. The demo sets the world up in
/// process, so every request is Foreman's.
fn requests(state: &Value) -> (usize, usize) {
    let paths: Vec<&str> =
        state["requests"].as_array().map(|r| r.iter().filter_map(|r| r["path"].as_str()).collect()).unwrap_or_default();
    let git = paths.iter().filter(|p| p.contains(".git/")).count();
    (paths.len() - git, git)
}

/// One line on a job from `GET /api/jobs/...`: state, attempts, failures, the last failure's reason.
fn job_summary(job: &Value) -> String {
    let mut s = format!(
        "job state {}, {} attempt(s)",
        job["state"].as_str().unwrap_or("unknown"),
        job["attempts"].as_u64().unwrap_or(0)
    );
    if let Some(reason) = job["stuck_reason"].as_str() {
        s.push_str(&format!(", stuck: {reason}"));
    }
    if let Some(reason) = job["last_failure"]["reason"].as_str() {
        s.push_str(&format!(", last failure: {reason}"));
    }
    s
}

/// The scripted agent, a shell script given as `agent.command` (so it needs no file the sandbox would have
/// to show): it adds a function to `src/lib.rs`, commits, and prints a one-line summary. Foreman runs it in
/// the issue's repository, in the sandbox, with the prompt on stdin and `FOREMAN_ISSUE` set (see
/// [`crate::session`]). Its start is told from Foreman's "agent started" log line.
fn agent_script() -> String {
    r#"# foreman demo's scripted agent.
set -e
cat > /dev/null
cat >> src/lib.rs <<'RUST'

/// A friendly greeting.
pub fn greeting() -> &'static str {
    "Hello from Foreman"
}
RUST
git add -A
git commit -q -m "Add a greeting (#$FOREMAN_ISSUE)"
echo "Added \`greeting()\` to \`src/lib.rs\`."
"#
    .to_owned()
}

/// Foreman's log lines: the last [`LOG_LINES_KEPT`], each also printed to standard error with `--verbose`.
#[derive(Clone)]
struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    verbose: bool,
    /// Set when Foreman logged that an agent started (the narration's "agent running").
    agent_started: Arc<std::sync::atomic::AtomicBool>,
}

impl LogTail {
    fn new(verbose: bool) -> Self {
        LogTail { lines: Arc::new(Mutex::new(VecDeque::new())), verbose, agent_started: Arc::default() }
    }

    fn agent_started(&self) -> bool {
        self.agent_started.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn push(&self, line: String) {
        if line.contains(": agent started") {
            self.agent_started.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if self.verbose {
            eprintln!("foreman: {line}");
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LOG_LINES_KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
    }
}

/// One JSON log line of Foreman's as `LEVEL target: message key=value …` (span fields included); other
/// lines (a panic message) as they are.
fn format_log(line: &str) -> String {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else { return line.to_owned() };
    fields.remove("timestamp");
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let level = text(fields.remove("level"));
    let target = text(fields.remove("target"));
    let message = text(fields.remove("message"));
    let mut out = format!("{level:>5} {target}: {message}");
    let span = fields.remove("span");
    fields.remove("spans");
    for (k, v) in fields.into_iter().chain(span.and_then(|s| s.as_object().cloned()).into_iter().flatten()) {
        if k != "name" {
            out.push_str(&format!(" {k}={}", text(Some(v))));
        }
    }
    out
}

/// The `foreman serve` child process.
struct Foreman {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Foreman {
    /// Starts `foreman serve` (this executable) on a free loopback port with a clean environment: the
    /// simulator's App credentials, the command backend running `agent`, data under `dir/data`. Waits for
    /// its "listening" line. Its working directory is `dir`, so no `.env` of the caller's is read.
    async fn start(dir: &Path, sim: &SimHandle, agent: &str, logs: &LogTail) -> anyhow::Result<Foreman> {
        let exe = std::env::current_exe().context("finding this executable to run `foreman serve`")?;
        // github-sim writes the App's private key into its state directory.
        let key = dir.join("sim/app.pem");
        let mut child = Command::new(exe)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("FOREMAN_LISTEN", "127.0.0.1:0")
            .env("FOREMAN_DATA_DIR", dir.join("data"))
            .env("FOREMAN_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("GITHUB_APP_ID", sim.app_id().to_string())
            .env("GITHUB_PRIVATE_KEY_PATH", &key)
            .env("GITHUB_API_URL", sim.url())
            .env("GITHUB_WEBHOOK_SECRET", sim.webhook_secret())
            // The simulator has no secondary rate limit; GitHub's 1 s between mutations would only slow the show.
            .env("GITHUB_MUTATION_INTERVAL_MS", "50")
            .env("FOREMAN_AGENT_BACKEND", "command")
            .env("FOREMAN_AGENT_COMMAND", agent)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting `foreman serve`")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no pipe from Foreman's standard error"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(read_logs(stderr, logs.clone(), tx));
        let addr = tokio::select! {
            addr = tokio::time::timeout(START_TIMEOUT, rx) => match addr {
                Ok(Ok(addr)) => addr,
                Ok(Err(_)) => bail!("Foreman closed its log before it was listening"),
                Err(_) => bail!("Foreman did not start listening within {START_TIMEOUT:?}"),
            },
            status = child.wait() => bail!("Foreman exited while starting ({})", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())),
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().context("an HTTP client")?;
        Ok(Foreman { child, addr, http })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An error when Foreman has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("Foreman exited unexpectedly ({status})"),
            Err(e) => bail!("cannot tell whether Foreman is running: {e}"),
        }
    }

    /// Foreman's job for `repo#number` from its job API (loopback needs no admin token); `None` when it has
    /// none yet or the request failed (the next look tries again).
    async fn job(&self, repo: &str, number: u64) -> Option<Value> {
        let resp = self.http.get(self.url(&format!("/api/jobs/{repo}/{number}"))).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped until the wait below.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Reads Foreman's standard error into `logs`, and sends the address from its "listening" line.
async fn read_logs(
    stderr: tokio::process::ChildStderr,
    logs: LogTail,
    listening: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut listening = Some(listening);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tx) = listening.take() {
            match serde_json::from_str::<Value>(&line)
                .ok()
                .filter(|v| v["message"] == "listening")
                .and_then(|v| v["address"].as_str()?.parse().ok())
            {
                Some(addr) => {
                    let _ = tx.send(addr);
                }
                None => listening = Some(tx),
            }
        }
        logs.push(format_log(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_log_line_reads_as_level_target_message_and_fields() {
        let line = r#"{"timestamp":"2026-11-21T03:00:00Z","level":"INFO","message":"claimed","attempt":1,"target":"foreman::runner::job","span":{"name":"job","repo":"acme/widgets"}}"#;
        assert_eq!(format_log(line), " INFO foreman::runner::job: claimed attempt=1 repo=acme/widgets");
        assert_eq!(format_log("thread 'main' panicked"), "thread 'main' panicked");
    }

    fn world(labels: &[&str], column: Option<&str>, pulls: Value) -> Value {
        serde_json::json!({
            "repos": [{"full_name": "acme/widgets", "issues": [{"number": 1, "labels": labels, "comments": []}],
                       "pulls": pulls}],
            "projects": [{"items": [{"repo": "acme/widgets", "issue": 1, "column": column}]}],
        })
    }

    #[test]
    fn the_story_tells_each_step_once_and_in_order() {
        let mut story = Story::new("acme/widgets", 1, "foreman[bot]".into());
        let empty = world(&["foreman"], None, serde_json::json!([]));
        assert!(story.tell(&empty, None, true).is_empty(), "the agent's start is not told before the claim");
        let queued = serde_json::json!({"state": "queued", "attempts": 0});
        assert_eq!(story.tell(&empty, Some(&queued), false), ["Foreman queued #1"]);
        let running = serde_json::json!({"state": "running", "attempts": 1});
        let claimed = world(&["foreman", "foreman:running"], Some("In progress"), serde_json::json!([]));
        assert_eq!(
            story.tell(&claimed, Some(&running), true),
            ["#1 labelled foreman:running", "card #1 moved to In progress", "Foreman claimed #1", "agent running"]
        );
        assert!(story.tell(&claimed, Some(&running), true).is_empty(), "nothing is told twice");
        let pulls = serde_json::json!([{"number": 2, "title": "Add a greeting (#1)", "body": "x\n\nCloses #1\n",
                                        "head": "foreman/1-add-a-greeting", "base": "main"}]);
        let done = world(&["foreman"], Some("In review"), pulls);
        let succeeded = serde_json::json!({"state": "succeeded", "attempts": 1});
        assert_eq!(
            story.tell(&done, Some(&succeeded), true),
            [
                "#1 unlabelled foreman:running",
                "card #1 moved to In review",
                "pull request #2 opened: Add a greeting (#1) (foreman/1-add-a-greeting into main)",
                "Foreman finished #1: succeeded",
            ]
        );
        assert_eq!(story.pull, Some(2));
    }

    #[test]
    fn a_failed_attempt_is_told_with_its_class_and_reason_and_a_pull_request_for_another_issue_is_not() {
        let mut story = Story::new("acme/widgets", 1, "foreman[bot]".into());
        let other = serde_json::json!([{"number": 2, "title": "t", "body": "Closes #12", "head": "h", "base": "main"}]);
        let state = world(&[], None, other);
        let failed = serde_json::json!({"state": "failed", "attempts": 1, "failures": {"agent": 1, "validation": 0},
            "last_failure": {"class": "agent", "reason": "the agent exited with status 1"}});
        assert_eq!(
            story.tell(&state, Some(&failed), true),
            [
                "attempt failed (agent): the agent exited with status 1",
                "Foreman queued #1",
                "Foreman claimed #1",
                "agent running"
            ]
        );
        assert_eq!(story.pull, None);
    }
}
