//! Agent sessions: a clone of the repository's mirror, a rendered prompt, an agent process under limits, a log and an outcome.
//!
//! [`SessionRunner::new`] is built once at start (it checks the prompt templates and reads the Claude
//! credentials); [`SessionRunner::run`] runs one session and always returns a [`SessionOutcome`]:
//!
//! 1. workspace ([`workspace`]): fetch the start branch into the repository's bare mirror with the session's
//!    installation token (through a pipe, never stored), and put a clone of the mirror (a `.git` of its own)
//!    on `foreman/<issue>-<slug>`;
//! 2. prompt ([`prompt`]): `coding.md`, `follow-up.md` or `planning.md` with the issue, comments (each marked
//!    with its author's write permission), instructions, repository instruction files, constitution, attempt;
//! 3. agent ([`process`]): the Claude Code CLI or a command, in its own process group, with an environment
//!    built from an allowlist ([`env`]), under wall-clock, stall, turn, cost and output limits;
//! 4. outcome ([`outcome`]): the commits since the base and the lines changed, and a [`Verdict`];
//! 5. log ([`log`]): every event as JSON lines, and a summary with the seed's productivity score.
//!
//! After the agent, Foreman takes the clone's `.git` back, commits leftovers and fetches the branch into the
//! mirror ([`outcome::collect`]); the clone is then kept idle or removed, and the branch stays in the mirror
//! for the push (not done here).
//!
//! The command backend's environment: `FOREMAN_REPO` (`owner/name`), `FOREMAN_ISSUE` (number),
//! `FOREMAN_BRANCH`, `FOREMAN_WORKSPACE` (the worktree, also the working directory), `FOREMAN_PROMPT_FILE`
//! (the prompt, also on stdin), `FOREMAN_SESSION_ID` (this session's id), plus the allowlist, `agent.env`
//! and the git identity (`GIT_AUTHOR_NAME` …). Exit status 0 is success.

pub mod config;
pub mod credentials;
pub mod env;
pub mod log;
pub mod netproxy;
pub mod outcome;
pub mod process;
pub mod prompt;
pub mod reset;
pub mod sandbox;
pub mod stream;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use config::{AgentConfig, Backend};
pub use credentials::Credentials;
pub use outcome::{Changes, Commit, FileChange};
pub use prompt::{Comment, IssueText, Person, PromptKind, Prompts};
pub use workspace::{GitAuth, Workspaces};

use crate::ids::{IssueNumber, RepoName};
use process::{Control, Ended, Limits, Spawn};
use stream::{LineEvent, RunResult, Transcript};

/// Everything one session needs to know.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// The repository.
    pub repo: RepoName,
    /// Which template, and how the branch starts: a new branch for `Coding` and `Planning`, the existing
    /// pull request branch ([`Self::branch`]) for `FollowUp`.
    pub kind: PromptKind,
    /// The clone URL (no token in it).
    pub remote_url: String,
    /// The installation token for the fetch, if the remote needs one.
    pub auth: Option<GitAuth>,
    /// The repository's default branch (`repository.default_branch`), where new branches start.
    pub default_branch: String,
    /// The branch to work on. Required for `FollowUp` (the pull request's head branch); otherwise `None`
    /// gives `foreman/<issue>-<slug>`.
    pub branch: Option<String>,
    /// The issue (or pull request).
    pub issue: IssueText,
    /// Its comments, oldest first.
    pub comments: Vec<Comment>,
    /// Who asked for the run, and whether their text (the instructions) is trusted.
    pub requester: Person,
    /// The requester's instructions (`/foreman run <instructions>`).
    pub instructions: Option<String>,
    /// The constitution's rules.
    pub constitution: Vec<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Why the previous attempt failed.
    pub previous_failure: Option<String>,
    /// A Claude session id to continue (`--resume`), kept from an earlier session of the same job.
    pub resume: Option<String>,
    /// Whether an answer without changes is a success (a question was asked). Always true for `Planning`.
    pub answer_expected: bool,
    /// Whose worktree to use, when not the issue's own: a follow-up on a pull request works in the worktree of
    /// the issue the pull request closes, so the Claude CLI (which keeps sessions per working directory) can
    /// resume the session that wrote the branch. A worktree is used by one session at a time.
    pub workspace_issue: Option<IssueNumber>,
    /// The repository's `[agent]` overrides from its constitution (model, turns, cost, tools, timeouts), applied
    /// over the server's `[agent]` for this session.
    pub overrides: Option<crate::constitution::AgentOverrides>,
    /// The session's id, as the job store recorded it with the claim; `None`: a fresh UUID. Names the log
    /// (`<owner>-<repo>-<issue>-<id>.jsonl`) and is `FOREMAN_SESSION_ID`.
    pub session_id: Option<String>,
    /// The constitution's checkable rules. When given, changes are checked against them in the worktree
    /// ([`crate::constitution::enforce`]: diff rules, then the required commands) before the worktree is
    /// removed; a change that breaks one is a [`FailureClass::Validation`] failure and is never pushed.
    pub rules: Option<crate::constitution::Rules>,
}

/// Reported while a session runs, so the caller can renew its claim and show progress.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Preparing the workspace.
    Preparing,
    /// The agent process started (`attempt` counts credential rotations, from 1).
    AgentStarted {
        /// 1 for the first credential, then one more per rotation.
        attempt: u32,
    },
    /// The Claude CLI announced its session id.
    AgentSession {
        /// The CLI's session id (what `--resume` takes).
        id: String,
    },
    /// The agent began API turn `n`.
    Turn(u32),
    /// The agent used a tool.
    ToolUse(String),
    /// The credential was refused; moving on to the one read from `next` (a variable name, not a secret).
    CredentialRotated {
        /// The environment variable the next credential is read from.
        next: String,
    },
    /// The agent ended; collecting the outcome.
    Finishing,
}

/// Why a session failed, and what the scheduler should do about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum FailureClass {
    /// The agent ran and failed (an error result, a non-zero exit, no result).
    Agent,
    /// It used the allowed turns (`agent.max_turns`).
    TurnLimit,
    /// It spent the allowed amount (`agent.max_cost_usd`).
    CostLimit,
    /// It wrote more than `agent.max_output_bytes`.
    OutputLimit,
    /// It ran longer than `agent.timeout_secs`.
    Timeout,
    /// It wrote nothing for `agent.stall_timeout_secs`.
    Stalled,
    /// It was cancelled (`stop`, unlabel, shutdown). Not a failure.
    Cancelled,
    /// A subscription usage limit: run again at `resets_at` (unknown: the caller picks a delay). Not a failure.
    UsageLimit {
        /// When the limit resets.
        resets_at: Option<Timestamp>,
    },
    /// The API's rate limit: back off. Not a failure.
    RateLimited,
    /// The API is overloaded or unreachable: back off. Not a failure.
    Overloaded,
    /// Foreman's side failed: git, starting the agent, every credential refused.
    Infrastructure,
    /// The change broke a rule of the constitution ([`SessionOutcome::enforcement`] says which).
    Validation,
}

impl FailureClass {
    /// Whether the failure counts against the job (towards deprioritising it). Cancellations, usage limits,
    /// rate limits and overloads do not: they say nothing about the issue.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, Self::Cancelled | Self::UsageLimit { .. } | Self::RateLimited | Self::Overloaded)
    }
}

/// The judgement on a session.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Commits are on the branch, ready to push.
    ChangesReady,
    /// No changes, and none were expected: the agent answered (the answer is [`SessionOutcome::answer`]).
    Answered,
    /// The agent finished without changes although changes were expected: an agent failure.
    NoChanges {
        /// Why this counts as a failure, for the report.
        reason: String,
    },
    /// The session failed.
    Failed {
        /// What kind of failure.
        #[serde(flatten)]
        class: FailureClass,
        /// A one-line reason for people (no secrets).
        reason: String,
    },
}

/// The summary record: the last line of the session log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Wall-clock duration, in milliseconds.
    pub duration_ms: u64,
    /// API turns of the main agent (Claude only).
    pub turns: u32,
    /// Tool uses by tool name (Claude only).
    pub tools: BTreeMap<String, u32>,
    /// Total tool uses.
    pub tool_count: u32,
    /// Cost in US dollars, as the CLI reported it.
    pub cost_usd: Option<f64>,
    /// Files changed since the base.
    pub files_changed: u64,
    /// Commits since the base.
    pub commits: u64,
    /// Issues this session closes: 1 when its changes are ready (the pull request closes the issue), else 0.
    pub issues_closed: u64,
    /// Seed 000's productivity score, `(files_changed × 2 + issues_closed × 5) / tool_count`; `None` when
    /// no tool use was seen.
    pub productivity_score: Option<f64>,
    /// The variable name of the Claude credential that was used last (never its value).
    pub credential: Option<String>,
}

/// What a session came to.
#[derive(Clone, Debug, Serialize)]
pub struct SessionOutcome {
    /// This session's id (also `FOREMAN_SESSION_ID` and the log's name).
    pub session_id: String,
    /// The judgement.
    pub verdict: Verdict,
    /// The branch worked on.
    pub branch: String,
    /// The commit the branch started from, when the workspace was prepared.
    pub base_commit: Option<String>,
    /// The changes since the base (empty when the workspace failed).
    pub changes: Changes,
    /// The agent's final text (Claude's `result`, or the end of a command's stdout).
    pub answer: Option<String>,
    /// The Claude session id, for `--resume` in a follow-up.
    pub agent_session_id: Option<String>,
    /// The summary written to the log.
    pub summary: Summary,
    /// The session log.
    pub log_path: PathBuf,
    /// The constitution's allow-or-deny decision on the changes, when rules were given and there were
    /// changes to check. Goes into the job's audit trail.
    pub enforcement: Option<crate::constitution::Decision>,
}

/// A configuration problem found at start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `[agent]` table is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// A prompt template does not parse or render.
    #[error(transparent)]
    Prompt(#[from] prompt::PromptError),
    /// The data directory cannot be written.
    #[error("cannot prepare {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Runs sessions. Build one at start and share it.
#[derive(Debug)]
pub struct SessionRunner {
    config: AgentConfig,
    prompts: Prompts,
    workspaces: Workspaces,
    credentials: Credentials,
    logs_dir: PathBuf,
    scratch_dir: PathBuf,
    /// The agents' homes when sandboxed: `homes/<owner>/<name>/<issue>`, kept across sessions of an issue.
    homes_dir: PathBuf,
    /// The network proxies' Unix sockets, one per session with `agent.network = "allowlist"` (mode 0700).
    proxy_dir: PathBuf,
    sandbox: sandbox::Sandbox,
    parent_env: Vec<(String, String)>,
    /// What the commit messages Foreman writes are scrubbed of.
    secrets: crate::github::SecretRegistry,
}

/// Largest answer kept from a command's stdout, in bytes (its end).
const COMMAND_ANSWER_BYTES: usize = 8 * 1024;

impl SessionRunner {
    /// Checks `config`, loads and checks the prompt templates, and prepares `data_dir` (`mirrors/`,
    /// `worktrees/`, `sessions/`). Foreman's environment is captured now for the agent's allowlist.
    pub fn new(data_dir: &Path, config: AgentConfig, credentials: Credentials) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let prompts = Prompts::load(config.prompts_dir.as_deref())?;
        let workspaces = Workspaces::new(data_dir, config.idle_worktrees_per_repo)
            .map_err(|e| StartError::Io(data_dir.to_owned(), e))?;
        let logs_dir = data_dir.join("sessions");
        let scratch_dir = data_dir.join("scratch");
        let homes_dir = data_dir.join("homes");
        let proxy_dir = data_dir.join("proxy");
        for d in [&logs_dir, &scratch_dir, &homes_dir, &proxy_dir] {
            std::fs::create_dir_all(d).map_err(|e| StartError::Io(d.clone(), e))?;
        }
        // The proxies' sockets: reachable by Foreman's user only, from the moment each is bound.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&proxy_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StartError::Io(proxy_dir.clone(), e))?;
        }
        let sandbox = sandbox::Sandbox::new(data_dir, &config);
        Ok(Self {
            config,
            prompts,
            workspaces,
            credentials,
            logs_dir,
            scratch_dir,
            homes_dir,
            proxy_dir,
            sandbox,
            parent_env: std::env::vars().collect(),
            secrets: crate::github::SecretRegistry::default(),
        })
    }

    /// The sandbox agents run in; [`sandbox::Sandbox::unavailable`] says why no session can start.
    pub fn sandbox(&self) -> &sandbox::Sandbox {
        &self.sandbox
    }

    /// Shares the registry of secret values (built at start) that the commit messages Foreman writes for an
    /// agent are scrubbed of, as everything it writes on GitHub is. Default: an empty registry, which still
    /// redacts token shapes.
    pub fn with_secrets(mut self, secrets: crate::github::SecretRegistry) -> Self {
        self.secrets = secrets;
        self
    }

    /// The workspaces (mirrors and worktrees), e.g. for the push that follows a session.
    pub fn workspaces(&self) -> &Workspaces {
        &self.workspaces
    }

    /// Kills agents and removes worktrees and proxy sockets left by a crash, and session logs past their
    /// retention. Call at start.
    pub async fn prune(&self) -> std::io::Result<()> {
        let orphans = process::kill_orphaned_agents(self.workspaces.worktrees_root());
        if orphans > 0 {
            tracing::warn!(orphans, "killed agents left running by an earlier Foreman process");
        }
        self.workspaces.prune().await?;
        log::prune(&self.logs_dir, self.config.log_retention_days);
        // Sockets of network proxies whose sessions a crash ended: nothing listens on them any more.
        for entry in std::fs::read_dir(&self.proxy_dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// Runs one session to its end. Never panics on agent or git failures: they become a
    /// [`Verdict::Failed`]. `progress` is called from this task; keep it cheap.
    pub async fn run(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        progress: impl Fn(Progress),
    ) -> SessionOutcome {
        let started = Instant::now();
        let session_id = spec.session_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let branch = spec
            .branch
            .clone()
            .unwrap_or_else(|| workspace::branch_name(IssueNumber(spec.issue.number), &spec.issue.title));
        let log_name = format!("{}-{}-{}-{}", spec.repo.owner(), spec.repo.name(), spec.issue.number, session_id);
        let mut log = log::SessionLog::create(&self.logs_dir, &log_name, self.config.log_max_bytes);
        log.event(
            "start",
            json!({ "session_id": session_id, "repo": spec.repo.to_string(), "issue": spec.issue.number,
                    "prompt": spec.kind, "branch": branch, "attempt": spec.attempt,
                    "backend": format!("{:?}", self.config.backend).to_lowercase() }),
        );
        let mut outcome = SessionOutcome {
            session_id: session_id.clone(),
            verdict: Verdict::Answered,
            branch: branch.clone(),
            base_commit: None,
            changes: Changes::default(),
            answer: None,
            agent_session_id: spec.resume.clone(),
            summary: Summary::default(),
            log_path: log.path().to_owned(),
            enforcement: None,
        };

        if let Some(why) = self.sandbox.unavailable() {
            outcome.verdict = failed(FailureClass::Infrastructure, format!("the agent sandbox is unavailable: {why}"));
            return self.finish(outcome, log, started);
        }
        progress(Progress::Preparing);
        let request = workspace::WorkspaceRequest {
            repo: spec.repo.clone(),
            issue: spec.workspace_issue.unwrap_or(IssueNumber(spec.issue.number)),
            remote_url: spec.remote_url.clone(),
            auth: spec.auth.clone(),
            branch: branch.clone(),
            start: match spec.kind {
                PromptKind::FollowUp => workspace::Start::ExistingBranch,
                _ => workspace::Start::DefaultBranch(spec.default_branch.clone()),
            },
        };
        let ws = match self.workspaces.prepare(&request).await {
            Ok(ws) => ws,
            Err(e) => {
                outcome.verdict = failed(FailureClass::Infrastructure, format!("preparing the workspace: {e}"));
                return self.finish(outcome, log, started);
            }
        };
        outcome.base_commit = Some(ws.base_commit.clone());
        log.event("workspace", json!({ "path": ws.path, "base": ws.base_commit }));
        let home = self.homes_dir.join(spec.repo.owner()).join(spec.repo.name()).join(request.issue.to_string());
        if let Err(e) = std::fs::create_dir_all(&home) {
            outcome.verdict = failed(FailureClass::Infrastructure, format!("preparing the agent's home: {e}"));
            self.workspaces.remove(&ws, &spec.repo).await;
            return self.finish(outcome, log, started);
        }
        let c = self.config.overridden(spec.overrides.as_ref());
        let (network, proxy) = match self.network(&c, &session_id) {
            Ok(network) => network,
            Err(e) => {
                outcome.verdict = failed(FailureClass::Infrastructure, e);
                self.workspaces.remove(&ws, &spec.repo).await;
                return self.finish(outcome, log, started);
            }
        };
        let mounts = sandbox::Mounts {
            workspace: ws.path.clone(),
            home,
            read_only: ws.shared_objects().into_iter().collect(),
            files: Vec::new(),
            network,
        };

        let input = prompt::PromptInput {
            repo: spec.repo.to_string(),
            branch: branch.clone(),
            issue: spec.issue.clone(),
            comments: spec.comments.clone(),
            requester: spec.requester.clone(),
            instructions: spec.instructions.clone().filter(|s| !s.trim().is_empty()),
            repository_instructions: prompt::read_instruction_files(&ws.path),
            constitution: spec.constitution.clone(),
            attempt: spec.attempt.max(1),
            previous_failure: spec.previous_failure.clone(),
        };
        let agent = match self.prompts.render(spec.kind, &input) {
            Ok(text) => {
                log.event("prompt", json!({ "kind": spec.kind, "text": text }));
                let identity = self.identity();
                let mut env = env::build(self.parent_env.iter().cloned(), &self.config.env_allow, &self.config.env);
                env.extend(identity.clone());
                match c.backend {
                    Backend::Claude => {
                        self.run_claude(&c, &spec, &mounts, env, text, &cancel, &progress, &mut log).await
                    }
                    Backend::Command => {
                        self.run_command(&c, &spec, &ws, &mounts, &session_id, env, text, &cancel, &progress, &mut log)
                            .await
                    }
                }
            }
            Err(e) => AgentEnd::failed(FailureClass::Infrastructure, e.to_string()),
        };
        progress(Progress::Finishing);

        outcome.answer = agent.answer.clone().filter(|a| !a.trim().is_empty());
        if agent.agent_session_id.is_some() {
            outcome.agent_session_id = agent.agent_session_id.clone();
        }
        if let Some(t) = &agent.transcript {
            outcome.summary.turns = t.turns;
            outcome.summary.tools = t.tools.clone();
            outcome.summary.tool_count = t.tool_count();
            outcome.summary.cost_usd = t.cost_usd();
        }
        outcome.summary.credential = agent.credential.clone();

        let leftover = format!("Changes left uncommitted by the agent (foreman session {session_id})");
        let leftover = self.secrets.scrub(&leftover).into_owned();
        let changes = outcome::collect(&ws, &leftover, &self.identity()).await;
        let refused = match (&spec.rules, &agent.failure, &changes) {
            (Some(rules), None, Ok(c)) if !c.commits.is_empty() => {
                let change = crate::constitution::Change {
                    git_dir: &ws.mirror,
                    base: &ws.base_commit,
                    head: &c.head,
                    branch: Some(&ws.branch),
                };
                let confinement =
                    crate::constitution::commands::Confinement { sandbox: &self.sandbox, mounts: &mounts };
                match crate::constitution::enforce(&ws.path, &change, rules, Some(confinement)).await {
                    Ok(decision) => {
                        log.event("constitution", json!(decision));
                        let refused = (!decision.allowed).then(|| (FailureClass::Validation, refusal(&decision)));
                        outcome.enforcement = Some(decision);
                        refused
                    }
                    Err(e) => Some((FailureClass::Infrastructure, format!("reading the change to check it: {e}"))),
                }
            }
            _ => None,
        };
        if let Some((proxy, mut events)) = proxy {
            let dropped = proxy.dropped_events();
            proxy.shutdown().await;
            while let Ok(event) = events.try_recv() {
                log.event("network", json!(event));
            }
            if dropped > 0 {
                log.event("network_events_dropped", json!({ "count": dropped }));
            }
        }
        self.workspaces.remove(&ws, &spec.repo).await;
        outcome.verdict = match (agent.failure, changes) {
            (Some((class, reason)), Ok(changes)) => {
                outcome.changes = changes;
                failed(class, reason)
            }
            (Some((class, reason)), Err(_)) => failed(class, reason),
            (None, Err(e)) => failed(FailureClass::Infrastructure, format!("reading the changes: {e}")),
            (None, Ok(changes)) if refused.is_some() => {
                outcome.changes = changes;
                let (class, reason) = refused.unwrap_or((FailureClass::Infrastructure, String::new()));
                failed(class, reason)
            }
            (None, Ok(changes)) => {
                let has_commits = !changes.commits.is_empty();
                outcome.changes = changes;
                let answered = outcome.answer.is_some();
                if spec.kind == PromptKind::Planning && answered {
                    Verdict::Answered
                } else if has_commits {
                    Verdict::ChangesReady
                } else if spec.answer_expected && answered {
                    Verdict::Answered
                } else {
                    Verdict::NoChanges { reason: "the agent finished without changing anything".into() }
                }
            }
        };
        self.finish(outcome, log, started)
    }

    fn finish(&self, mut outcome: SessionOutcome, mut log: log::SessionLog, started: Instant) -> SessionOutcome {
        let s = &mut outcome.summary;
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.files_changed = outcome.changes.files.len() as u64;
        s.commits = outcome.changes.commits.len() as u64;
        s.issues_closed = u64::from(outcome.verdict == Verdict::ChangesReady);
        s.productivity_score =
            (s.tool_count > 0).then(|| (s.files_changed * 2 + s.issues_closed * 5) as f64 / f64::from(s.tool_count));
        log.summary(&json!({ "summary": outcome.summary, "verdict": outcome.verdict, "changes": outcome.changes,
                             "agent_session_id": outcome.agent_session_id }));
        // Retention is enforced as sessions end, so a long-running Foreman keeps its logs bounded too.
        log::prune(&self.logs_dir, self.config.log_retention_days);
        outcome
    }

    fn identity(&self) -> BTreeMap<String, String> {
        let (name, email) = (&self.config.git_name, &self.config.git_email);
        [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_COMMITTER_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_EMAIL", email),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    fn limits(c: &AgentConfig) -> Limits {
        Limits {
            timeout: c.timeout(),
            stall: c.stall_timeout(),
            max_output_bytes: c.max_output_bytes,
            grace: c.kill_grace(),
        }
    }

    fn claude_args(c: &AgentConfig, resume: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"].map(String::from).to_vec();
        let mut opt = |k: &str, v: String| {
            args.push(k.to_owned());
            args.push(v);
        };
        if let Some(m) = &c.model {
            opt("--model", m.clone());
        }
        if let Some(n) = c.max_turns {
            opt("--max-turns", n.to_string());
        }
        if let Some(usd) = c.max_cost_usd {
            opt("--max-budget-usd", usd.to_string());
        }
        opt("--permission-mode", c.permission_mode.clone());
        if !c.allowed_tools.is_empty() {
            opt("--allowedTools", c.allowed_tools.join(","));
        }
        if !c.disallowed_tools.is_empty() {
            opt("--disallowedTools", c.disallowed_tools.join(","));
        }
        if let Some(id) = resume {
            opt("--resume", id.to_owned());
        }
        args
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_claude(
        &self,
        c: &AgentConfig,
        spec: &SessionSpec,
        mounts: &sandbox::Mounts,
        mut env: BTreeMap<String, String>,
        prompt: String,
        cancel: &CancellationToken,
        progress: &impl Fn(Progress),
        log: &mut log::SessionLog,
    ) -> AgentEnd {
        // The CLI is pinned by the installer; it must not replace itself mid-run.
        env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
        if let Some(n) = c.claude_max_retries {
            env.insert("CLAUDE_CODE_MAX_RETRIES".into(), n.to_string());
        }
        let attempts = self.credentials.len().max(1);
        let mut index = self.credentials.current();
        let max_turns = c.max_turns;
        // Resume only a session whose transcript the CLI can find; otherwise it refuses to start, which would
        // count against the job. Without it the agent starts fresh, with the reviews in its prompt.
        let home = match self.sandbox.mode() {
            sandbox::SandboxMode::On => Some(mounts.home.as_path()),
            sandbox::SandboxMode::Off => env.get("HOME").map(Path::new),
        };
        let resume = spec.resume.clone().filter(|id| {
            let found = claude_transcript_exists(home, id);
            if !found {
                log.event("resume_unavailable", json!({ "agent_session_id": id }));
            }
            found
        });
        for attempt in 1..=attempts {
            let mut env = env.clone();
            let mut credential = None;
            if let Some((name, value)) = self.credentials.env_pair(index) {
                env.remove("ANTHROPIC_API_KEY");
                env.remove("CLAUDE_CODE_OAUTH_TOKEN");
                env.insert(name.to_owned(), value);
                credential = self.credentials.get(index).map(|c| c.source.clone());
            }
            log.event("agent_start", json!({ "attempt": attempt, "credential": credential }));
            progress(Progress::AgentStarted { attempt: attempt as u32 });
            let spawn = Spawn {
                program: c.claude_path.clone(),
                args: Self::claude_args(c, resume.as_deref()),
                cwd: mounts.workspace.clone(),
                env,
                stdin: prompt.clone().into_bytes(),
                limits: Default::default(),
            };
            let spawn = match self.sandbox.wrap(spawn, mounts) {
                Ok(spawn) => spawn,
                Err(e) => return AgentEnd::failed(FailureClass::Infrastructure, e.to_string()),
            };
            let mut transcript = Transcript::default();
            let run = process::run(spawn, Self::limits(c), cancel, |line| {
                log.agent_line(line);
                for event in transcript.push_line(line) {
                    match event {
                        LineEvent::Init { session_id } => progress(Progress::AgentSession { id: session_id }),
                        LineEvent::Turn(n) => {
                            progress(Progress::Turn(n));
                            // The CLI enforces --max-turns itself and may run one turn over (message-types.md);
                            // this is the backstop if it does not.
                            if max_turns.is_some_and(|m| n > m + 1) {
                                return Control::Stop(format!("more than {} turns", n - 1));
                            }
                        }
                        LineEvent::ToolUse { name } => progress(Progress::ToolUse(name)),
                        _ => {}
                    }
                }
                Control::Continue
            })
            .await;
            let mut end = AgentEnd {
                failure: None,
                answer: None,
                agent_session_id: transcript.session_id.clone(),
                transcript: None,
                credential,
            };
            let run = match run {
                Ok(run) => run,
                Err(e) => {
                    end.failure =
                        Some((FailureClass::Infrastructure, format!("cannot start {}: {e}", c.claude_path.display())));
                    return end;
                }
            };
            log.event(
                "agent_end",
                json!({ "ended": format!("{:?}", run.ended), "stderr_tail": run.stderr_tail,
                                           "output_bytes": run.output_bytes }),
            );
            let result = transcript.classify(Timestamp::now(), &TimeZone::system());
            end.failure = match (&run.ended, result) {
                (Ended::Exited(_), RunResult::Success { text }) => {
                    end.answer = Some(text);
                    None
                }
                (Ended::Exited(_), RunResult::Authentication { text }) => {
                    let next = self.credentials.rotate_from(index);
                    if attempt < attempts {
                        let source = self.credentials.get(next).map(|c| c.source.clone()).unwrap_or_default();
                        log.event(
                            "credential_rotated",
                            json!({ "refused": end.credential, "next": source, "reason": text }),
                        );
                        progress(Progress::CredentialRotated { next: source });
                        index = next;
                        continue;
                    }
                    Some((
                        FailureClass::Infrastructure,
                        format!("every configured Claude credential was refused ({attempts} tried): {text}"),
                    ))
                }
                (Ended::Exited(_), RunResult::UsageLimit { resets_at, text }) => {
                    Some((FailureClass::UsageLimit { resets_at }, text))
                }
                (Ended::Exited(_), RunResult::RateLimited { text }) => Some((FailureClass::RateLimited, text)),
                (Ended::Exited(_), RunResult::Overloaded { text }) => Some((FailureClass::Overloaded, text)),
                (Ended::Exited(_), RunResult::MaxTurns { text }) => Some((FailureClass::TurnLimit, text)),
                (Ended::Exited(_), RunResult::MaxCost { text }) => Some((FailureClass::CostLimit, text)),
                (Ended::Exited(_), RunResult::Error { text }) => Some((FailureClass::Agent, text)),
                (Ended::Exited(status), RunResult::NoResult) => Some((
                    FailureClass::Agent,
                    format!("the Claude CLI ended without a result ({status}): {}", last_line(&run.stderr_tail)),
                )),
                (ended, _) => Some(Self::limit_failure(c, ended)),
            };
            end.transcript = Some(transcript);
            return end;
        }
        unreachable!("the loop returns on its last attempt")
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_command(
        &self,
        c: &AgentConfig,
        spec: &SessionSpec,
        ws: &workspace::Workspace,
        mounts: &sandbox::Mounts,
        session_id: &str,
        mut env: BTreeMap<String, String>,
        prompt: String,
        cancel: &CancellationToken,
        progress: &impl Fn(Progress),
        log: &mut log::SessionLog,
    ) -> AgentEnd {
        // Outside the worktree, so the agent cannot commit it by accident; removed when the session ends.
        let prompt_file = self.scratch_dir.join(format!("{session_id}.prompt.md"));
        if let Err(e) = std::fs::write(&prompt_file, &prompt) {
            return AgentEnd::failed(FailureClass::Infrastructure, format!("cannot write the prompt file: {e}"));
        }
        let mut mounts = mounts.clone();
        mounts.files.push((prompt_file.clone(), "prompt.md".into()));
        for (k, v) in [
            ("FOREMAN_REPO", spec.repo.to_string()),
            ("FOREMAN_ISSUE", spec.issue.number.to_string()),
            ("FOREMAN_BRANCH", ws.branch.clone()),
            ("FOREMAN_WORKSPACE", self.sandbox.workspace_dir(&ws.path).to_string_lossy().into_owned()),
            ("FOREMAN_PROMPT_FILE", self.sandbox.file_path(&prompt_file, "prompt.md").to_string_lossy().into_owned()),
            ("FOREMAN_SESSION_ID", session_id.to_owned()),
        ] {
            env.insert(k.into(), v);
        }
        let command = c.command.clone().unwrap_or_default();
        progress(Progress::AgentStarted { attempt: 1 });
        log.event("agent_start", json!({ "attempt": 1, "command": command }));
        let spawn = Spawn {
            program: "sh".into(),
            args: vec!["-c".into(), command],
            cwd: ws.path.clone(),
            env,
            stdin: prompt.into_bytes(),
            limits: Default::default(),
        };
        let spawn = match self.sandbox.wrap(spawn, &mounts) {
            Ok(spawn) => spawn,
            Err(e) => {
                let _ = std::fs::remove_file(&prompt_file);
                return AgentEnd::failed(FailureClass::Infrastructure, e.to_string());
            }
        };
        let mut tail = String::new();
        let run = process::run(spawn, Self::limits(c), cancel, |line| {
            log.agent_line(line);
            tail.push_str(line);
            tail.push('\n');
            if tail.len() > 2 * COMMAND_ANSWER_BYTES {
                let mut cut = tail.len() - COMMAND_ANSWER_BYTES;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail.drain(..cut);
            }
            Control::Continue
        })
        .await;
        let _ = std::fs::remove_file(&prompt_file);
        let run = match run {
            Ok(run) => run,
            Err(e) => return AgentEnd::failed(FailureClass::Infrastructure, format!("cannot start sh: {e}")),
        };
        log.event(
            "agent_end",
            json!({ "ended": format!("{:?}", run.ended), "stderr_tail": run.stderr_tail,
                                       "output_bytes": run.output_bytes }),
        );
        let failure = match &run.ended {
            Ended::Exited(status) if status.success() => None,
            Ended::Exited(status) => {
                Some((FailureClass::Agent, format!("the agent command {status}: {}", last_line(&run.stderr_tail))))
            }
            ended => Some(Self::limit_failure(c, ended)),
        };
        AgentEnd { failure, answer: Some(tail), agent_session_id: None, transcript: None, credential: None }
    }

    fn limit_failure(c: &AgentConfig, ended: &Ended) -> (FailureClass, String) {
        match ended {
            Ended::TimedOut => (FailureClass::Timeout, format!("the agent ran longer than {} s", c.timeout_secs)),
            Ended::Stalled => {
                (FailureClass::Stalled, format!("the agent wrote nothing for {} s", c.stall_timeout_secs))
            }
            Ended::OutputCapped => {
                (FailureClass::OutputLimit, format!("the agent wrote more than {} bytes", c.max_output_bytes))
            }
            Ended::Cancelled => (FailureClass::Cancelled, "the session was cancelled".into()),
            Ended::Stopped(why) => (FailureClass::TurnLimit, why.clone()),
            Ended::Exited(status) => (FailureClass::Agent, format!("the agent {status}")),
        }
    }
}

/// What the agent step produced.
struct AgentEnd {
    failure: Option<(FailureClass, String)>,
    answer: Option<String>,
    agent_session_id: Option<String>,
    transcript: Option<Transcript>,
    credential: Option<String>,
}

impl AgentEnd {
    fn failed(class: FailureClass, reason: String) -> Self {
        Self {
            failure: Some((class, reason)),
            answer: None,
            agent_session_id: None,
            transcript: None,
            credential: None,
        }
    }
}

fn failed(class: FailureClass, reason: String) -> Verdict {
    Verdict::Failed { class, reason }
}

fn last_line(s: &str) -> &str {
    s.trim().lines().last().unwrap_or("")
}

/// One line naming every broken rule, with file and line: the failure's reason.
fn refusal(decision: &crate::constitution::Decision) -> String {
    let parts: Vec<String> = decision
        .violations
        .iter()
        .map(|v| match (&v.file, v.line) {
            (Some(f), Some(l)) => format!("{} ({f}:{l}): {}", v.rule.key(), v.message),
            (Some(f), None) => format!("{} ({f}): {}", v.rule.key(), v.message),
            _ => format!("{}: {}", v.rule.key(), v.message),
        })
        .collect();
    format!("the constitution refused the change: {}", parts.join("; "))
}

/// A session's network proxy and the decisions it reported, for the session log.
type SessionProxy = (netproxy::NetProxy, tokio::sync::mpsc::Receiver<netproxy::ProxyEvent>);

/// How many network decisions wait to be written to the session log; past it they are counted, not kept
/// (the proxy never waits on the log). A session's agent makes a few hundred connections at most.
const NETWORK_EVENTS: usize = 4096;

impl SessionRunner {
    /// The sandbox's network for a session configured as `c`, and for `allowlist` the proxy serving it
    /// (with its decisions, for the session log). The error says why the proxy could not start.
    fn network(
        &self,
        c: &AgentConfig,
        session_id: &str,
    ) -> Result<(sandbox::NetworkAccess, Option<SessionProxy>), String> {
        match c.network {
            netproxy::NetworkMode::Open => Ok((sandbox::NetworkAccess::Open, None)),
            netproxy::NetworkMode::None => Ok((sandbox::NetworkAccess::None, None)),
            netproxy::NetworkMode::Allowlist => {
                let allowlist = netproxy::Allowlist::parse(&c.allowed_hosts, "agent.allowed_hosts")?;
                let socket = self.proxy_dir.join(format!("{session_id}.sock"));
                let _ = std::fs::remove_file(&socket);
                let (tx, rx) = tokio::sync::mpsc::channel(NETWORK_EVENTS);
                let proxy = netproxy::NetProxy::bind(
                    &socket,
                    allowlist,
                    netproxy::ProxyLimits::default(),
                    tx,
                    &tokio_util::sync::CancellationToken::new(),
                )
                .map_err(|e| format!("starting the network proxy on {}: {e}", socket.display()))?;
                Ok((sandbox::NetworkAccess::Proxy { socket }, Some((proxy, rx))))
            }
        }
    }
}

/// Whether the Claude CLI keeps a transcript of session `id` under `home` (`~/.claude/projects/<project>/<id>.jsonl`,
/// one project directory per working directory), so `--resume <id>` can continue it.
fn claude_transcript_exists(home: Option<&Path>, id: &str) -> bool {
    let Some(home) = home else { return false };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return false;
    }
    let file = format!("{id}.jsonl");
    std::fs::read_dir(home.join(".claude").join("projects"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|project| project.path().join(&file).is_file())
}
