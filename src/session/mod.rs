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
//! 3. agent ([`agent`]): the backend `agent.backend` names (the Claude Code CLI or a command, each a folder
//!    behind [`Agent`]), run by the executor ([`crate::executor`]: today the local bubblewrap sandbox) in its
//!    own process group, with an environment built from an allowlist ([`env`]), under wall-clock, stall,
//!    turn, cost and output limits;
//! 4. outcome ([`outcome`]): the commits since the base and the lines changed, and a [`Verdict`];
//! 5. log ([`log`]): every event as JSON lines, and a summary with the productivity score
//!    ([`Summary::productivity_score`]).
//!
//! After the agent, Foreman takes the clone's `.git` back, commits leftovers and fetches the branch into the
//! mirror ([`outcome::collect`]); the clone is then kept idle or removed, and the branch stays in the mirror
//! for the push (not done here).
//!
//! The command backend's environment is described in [`agent::command`].

pub mod agent;
pub mod config;
pub mod env;
pub mod log;
pub mod outcome;
pub mod prompt;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use agent::claude::Credentials;
pub use agent::{Agent, AgentEnd, AgentRun, AgentStats};
pub use config::AgentConfig;
pub use outcome::{Changes, Commit, FileChange};
pub use prompt::{Comment, IssueText, Person, PromptKind, Prompts};
pub use workspace::{GitAuth, Workspaces};

use crate::executor::Executor;
use crate::executor::local::LocalExecutor;
use crate::ids::{IssueNumber, RepoName};

/// Everything one session needs to know.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// The repository.
    pub repo: RepoName,
    /// Which template, and how the branch starts: the existing pull request branch ([`Self::branch`]) for
    /// `FollowUp` and whenever a branch is given, else a new branch from the default branch.
    pub kind: PromptKind,
    /// The clone URL (no token in it).
    pub remote_url: String,
    /// The installation token for the fetch, if the remote needs one.
    pub auth: Option<GitAuth>,
    /// The repository's default branch (`repository.default_branch`), where new branches start.
    pub default_branch: String,
    /// The existing remote branch to work on, adding commits to its head: required for `FollowUp` (the pull
    /// request's head branch), and given for `Coding` when the issue's Foreman pull request is open (a
    /// re-run builds on it). `None`: a new branch `foreman/<issue>-<slug>` from the default branch.
    pub branch: Option<String>,
    /// The issue (or pull request, for a follow-up: its number names the log and is `FOREMAN_ISSUE`).
    pub issue: IssueText,
    /// For a follow-up, the issue the pull request resolves: the prompt shows its title, body and author as
    /// the issue (the pull request's own body is Foreman's and is never shown), and the pull request by
    /// number. `None`: the prompt's issue is [`Self::issue`].
    pub resolves: Option<IssueText>,
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
    /// The agent's own session id to continue ([`SessionOutcome::agent_session_id`] of an earlier session of
    /// the same job). The backend decides whether it can: Claude resumes (`--resume`) when its transcript is
    /// in the agent's home; the command backend starts fresh.
    pub resume: Option<String>,
    /// Whose worktree to use, when not the issue's own. `None`: for a follow-up, the issue its branch was made
    /// for (`foreman/<issue>-…`, [`workspace::issue_of_branch`]), where the agent's earlier session ran, so
    /// the Claude CLI (which keeps sessions per working directory) can resume it; otherwise the issue's own.
    /// A worktree is used by one session at a time.
    pub workspace_issue: Option<IssueNumber>,
    /// The repository's `[agent]` overrides from its constitution (model, turns, cost, tools, timeouts), applied
    /// over the server's `[agent]` for this session.
    pub overrides: Option<crate::constitution::AgentOverrides>,
    /// The session's id, as the job store recorded it with the claim; `None`: a fresh UUID. Names the log
    /// (`<owner>-<repo>-<issue>-<id>.jsonl`) and is `FOREMAN_SESSION_ID`.
    pub session_id: Option<String>,
    /// The constitution's checkable rules. When given, changes are checked against them in the worktree
    /// ([`crate::constitution::enforce`]: diff rules, then the required commands) before the worktree is
    /// removed; a change that breaks one is a [`FailureCause::Validation`] failure and is never pushed.
    pub rules: Option<crate::constitution::Rules>,
    /// The installation the session acts through, for an agent that asks GitHub for something itself (the
    /// Actions executor dispatches its workflow through it). `None`: none is known.
    pub installation: Option<crate::ids::InstallationId>,
    /// Where the agent runs when the repository chose (its constitution's `executor`, where the operator
    /// allows the choice); `None`: the server's `executor.kind`.
    pub executor: Option<crate::executor::ExecutorKind>,
}

/// Reported while a session runs, so the caller can renew its claim and show progress. Serialised (as
/// `{"type": "turn", "value": 3}` and the like) when a remote session's runner streams it to Foreman.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
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
    /// The agent said what it is doing now (a command's `::foreman progress <text>` line).
    Step(String),
    /// The agent's latest message to the user: its first non-blank line, as the agent wrote it (untrusted
    /// text: show it quoted, never as Markdown).
    Message(String),
    /// Time passed while the agent runs (the command backend, every
    /// [`agent::command::ELAPSED_EVERY`]), for the elapsed time shown.
    Tick,
    /// The credential was refused; moving on to the one read from `next` (a variable name, not a secret).
    CredentialRotated {
        /// The environment variable the next credential is read from.
        next: String,
    },
    /// The agent ended; collecting the outcome.
    Finishing,
    /// The session was handed to a GitHub Actions workflow run (the Actions executor), which runs the agent.
    Dispatched {
        /// The repository the run is in (`owner/name`).
        repository: String,
        /// The run's id.
        run_id: u64,
        /// The run's page on GitHub.
        html_url: Option<String>,
    },
}

/// Why a session did not succeed, in the session's own detail; the runner maps it to the failure ledger's
/// [`crate::job::FailureClass`] (and a cancellation or a usage limit to no failure at all).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum FailureCause {
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

impl FailureCause {
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
    /// No changes, and a final message: the agent answered (a question, or why it changed nothing; the
    /// answer is [`SessionOutcome::answer`]). Always the verdict of a plan with a final message.
    Answered,
    /// The agent finished without changes and without a final message: an agent failure.
    NoChanges {
        /// Why this counts as a failure, for the report.
        reason: String,
    },
    /// The session failed.
    Failed {
        /// What kind of failure.
        #[serde(flatten)]
        class: FailureCause,
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
    /// The productivity score, `(files_changed × 2 + issues_closed × 5) / tool_count`; `None` when
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
    /// For a planning session, the text of the file named by `FOREMAN_PLAN_FILE` when the agent wrote it
    /// (at most [`PLAN_FILE_BYTES`]; a longer one is cut there, and refused as JSON). `None` otherwise.
    pub plan: Option<String>,
}

/// The plan file's name in the agent's home (`FOREMAN_PLAN_FILE`, planning sessions only).
pub const PLAN_FILE: &str = ".foreman-plan.json";

/// The most of the plan file read, in bytes (1 MiB and one byte, so a longer file shows as too large).
pub const PLAN_FILE_BYTES: u64 = 1024 * 1024 + 1;

/// The plan file's text, at most [`PLAN_FILE_BYTES`]; `None` when there is none.
fn read_plan_file(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut text = Vec::new();
    std::fs::File::open(path).ok()?.take(PLAN_FILE_BYTES).read_to_end(&mut text).ok()?;
    Some(String::from_utf8_lossy(&text).into_owned())
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
    /// The backend (`agent.backend`).
    agent: Box<dyn Agent>,
    /// Where the agent runs.
    executor: Box<dyn Executor>,
    logs_dir: PathBuf,
    scratch_dir: PathBuf,
    /// The agents' homes when sandboxed: `homes/<owner>/<name>/<issue>`, kept across sessions of an issue.
    homes_dir: PathBuf,
    parent_env: Vec<(String, String)>,
    /// What the commit messages Foreman writes are scrubbed of.
    secrets: crate::github::SecretRegistry,
}

impl SessionRunner {
    /// Checks `config`, builds its backend (with `credentials`, which only the `claude` backend uses), loads
    /// and checks the prompt templates, prepares `data_dir` (`mirrors/`, `worktrees/`, `sessions/`, `scratch/`,
    /// `homes/`) and the local executor (the sandbox, checked once; `proxy/`). Foreman's environment is
    /// captured now for the agent's allowlist.
    pub fn new(data_dir: &Path, config: AgentConfig, credentials: Credentials) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let agent = agent::build(&config, credentials).map_err(StartError::Config)?;
        let prompts = Prompts::load(config.prompts_dir.as_deref())?;
        let workspaces = Workspaces::new(data_dir, config.idle_worktrees_per_repo)
            .map_err(|e| StartError::Io(data_dir.to_owned(), e))?;
        let logs_dir = data_dir.join("sessions");
        let scratch_dir = data_dir.join("scratch");
        let homes_dir = data_dir.join("homes");
        for d in [&logs_dir, &scratch_dir, &homes_dir] {
            std::fs::create_dir_all(d).map_err(|e| StartError::Io(d.clone(), e))?;
        }
        let executor = LocalExecutor::new(data_dir, &config.sandbox_config(), workspaces.worktrees_root())
            .map_err(|(path, e)| StartError::Io(path, e))?;
        Ok(Self {
            config,
            prompts,
            workspaces,
            agent,
            executor: Box::new(executor),
            logs_dir,
            scratch_dir,
            homes_dir,
            parent_env: std::env::vars().collect(),
            secrets: crate::github::SecretRegistry::default(),
        })
    }

    /// Where agents run; [`Executor::unavailable`] says why no session can start.
    pub fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// Replaces the executor sessions run on (default: the local sandbox built by [`Self::new`]).
    pub fn with_executor(mut self, executor: Box<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// Replaces the agent with what `wrap` makes of it (the Actions executor wraps the configured backend to
    /// run it on a runner).
    pub fn map_agent(mut self, wrap: impl FnOnce(Box<dyn Agent>) -> Box<dyn Agent>) -> Self {
        self.agent = wrap(self.agent);
        self
    }

    /// The configuration sessions run with (`[agent]`).
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The backend (`agent.backend`), e.g. for its name in reports.
    pub fn agent(&self) -> &dyn Agent {
        self.agent.as_ref()
    }

    /// Why no session can start now, for the operator: the executor's reason (the sandbox), else the
    /// agent's (its program missing), or `None`.
    pub fn unavailable(&self) -> Option<String> {
        self.executor.unavailable().map(str::to_owned).or_else(|| self.agent.unavailable(&self.config))
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
        self.executor.prune()?;
        self.workspaces.prune().await?;
        log::prune(&self.logs_dir, self.config.log_retention_days);
        Ok(())
    }

    /// Runs one session to its end. Never panics on agent or git failures: they become a
    /// [`Verdict::Failed`]. `progress` is called from this task; keep it cheap.
    pub async fn run(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        progress: impl Fn(Progress) + Send + Sync,
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
                    "backend": self.agent.name() }),
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
            plan: None,
        };

        if let Some(why) = self.executor.unavailable() {
            log.event("error", json!({ "step": "sandbox", "detail": why }));
            outcome.verdict = failed(FailureCause::Infrastructure, SANDBOX_UNAVAILABLE.into());
            return self.finish(outcome, log, started);
        }
        progress(Progress::Preparing);
        let request = workspace::WorkspaceRequest {
            repo: spec.repo.clone(),
            issue: spec
                .workspace_issue
                .or_else(|| match spec.kind {
                    PromptKind::FollowUp => spec.branch.as_deref().and_then(workspace::issue_of_branch),
                    _ => None,
                })
                .unwrap_or(IssueNumber(spec.issue.number)),
            remote_url: spec.remote_url.clone(),
            auth: spec.auth.clone(),
            branch: branch.clone(),
            start: match (spec.kind, &spec.branch) {
                (PromptKind::FollowUp, _) | (_, Some(_)) => workspace::Start::ExistingBranch,
                _ => workspace::Start::DefaultBranch(spec.default_branch.clone()),
            },
        };
        let ws = match self.workspaces.prepare(&request).await {
            Ok(ws) => ws,
            Err(e) => {
                log.event("error", json!({ "step": "workspace", "detail": e.to_string() }));
                outcome.verdict = failed(
                    FailureCause::Infrastructure,
                    "Foreman could not prepare a workspace for the repository (a git command failed)".into(),
                );
                return self.finish(outcome, log, started);
            }
        };
        outcome.base_commit = Some(ws.base_commit.clone());
        log.event("workspace", json!({ "path": ws.path, "base": ws.base_commit }));
        let home = self.homes_dir.join(spec.repo.owner()).join(spec.repo.name()).join(request.issue.to_string());
        if let Err(e) = std::fs::create_dir_all(&home) {
            log.event("error", json!({ "step": "home", "detail": e.to_string() }));
            outcome.verdict = failed(
                FailureCause::Infrastructure,
                format!("Foreman could not prepare the agent's home directory ({})", agent::io_words(&e)),
            );
            self.workspaces.remove(&ws, &spec.repo).await;
            return self.finish(outcome, log, started);
        }
        let c = self.config.overridden(spec.overrides.as_ref());
        let network = match self.executor.network(&c.network_policy(), &session_id) {
            Ok(network) => network,
            Err(e) => {
                log.event("error", json!({ "step": "network", "detail": e }));
                outcome.verdict = failed(
                    FailureCause::Infrastructure,
                    "Foreman could not set up the agent's network (check `agent.network` and `agent.allowed_hosts`)"
                        .into(),
                );
                self.workspaces.remove(&ws, &spec.repo).await;
                return self.finish(outcome, log, started);
            }
        };
        let mounts = crate::executor::Mounts {
            workspace: ws.path.clone(),
            home,
            read_only: ws.shared_objects().into_iter().collect(),
            files: Vec::new(),
            network: network.access.clone(),
        };

        // A planning session writes its plan into its home, which it may write and which is kept per issue:
        // one left by an earlier session is removed first.
        let plan_file = (spec.kind == PromptKind::Planning).then(|| mounts.home.join(PLAN_FILE));
        if let Some(path) = &plan_file {
            let _ = std::fs::remove_file(path);
        }
        let plan_path = plan_file
            .as_ref()
            .map(|_| self.executor.home_dir(&mounts.home).join(PLAN_FILE).to_string_lossy().into_owned());
        let spec_file = plan_file.as_ref().and_then(|_| prompt::spec_file(&ws.path, spec.instructions.as_deref()));
        let input = prompt::PromptInput {
            plan_file: plan_path.clone(),
            spec_file: spec_file.clone(),
            repo: spec.repo.to_string(),
            branch: branch.clone(),
            issue: spec.resolves.clone().unwrap_or_else(|| spec.issue.clone()),
            pull_request: (spec.kind == PromptKind::FollowUp).then_some(spec.issue.number),
            comments: spec.comments.clone(),
            requester: spec.requester.clone(),
            instructions: spec.instructions.clone().filter(|s| !s.trim().is_empty() && spec_file.is_none()),
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
                if let Some(path) = &plan_path {
                    env.insert("FOREMAN_PLAN_FILE".into(), path.clone());
                }
                let run = AgentRun {
                    config: &c,
                    spec: &spec,
                    session_id: &session_id,
                    branch: &ws.branch,
                    mounts: &mounts,
                    env,
                    prompt: text,
                    scratch_dir: &self.scratch_dir,
                    executor: self.executor.as_ref(),
                    cancel: &cancel,
                    progress: &progress,
                    log: &mut log,
                };
                self.agent.run(run).await
            }
            Err(e) => {
                log.event("error", json!({ "step": "prompt", "detail": e.to_string() }));
                AgentEnd::failed(
                    FailureCause::Infrastructure,
                    format!("Foreman could not render the prompt template {}", e.name.rsplit('/').next().unwrap_or("")),
                )
            }
        };
        progress(Progress::Finishing);
        if let Some(path) = &plan_file {
            outcome.plan = read_plan_file(path);
            let _ = std::fs::remove_file(path);
            if let Some(text) = &outcome.plan {
                log.event("plan", json!({ "bytes": text.len() }));
            }
        }

        outcome.answer = agent.answer.clone().filter(|a| !a.trim().is_empty());
        if agent.agent_session_id.is_some() {
            outcome.agent_session_id = agent.agent_session_id.clone();
        }
        if let Some(t) = &agent.stats {
            outcome.summary.turns = t.turns;
            outcome.summary.tools = t.tools.clone();
            outcome.summary.tool_count = t.tool_count;
            outcome.summary.cost_usd = t.cost_usd;
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
                    crate::constitution::commands::Confinement { executor: self.executor.as_ref(), mounts: &mounts };
                match crate::constitution::enforce(&ws.path, &change, rules, Some(confinement)).await {
                    Ok(decision) => {
                        log.event("constitution", json!(decision));
                        let refused = (!decision.allowed).then(|| (FailureCause::Validation, refusal(&decision)));
                        outcome.enforcement = Some(decision);
                        refused
                    }
                    Err(e) => {
                        log.event("error", json!({ "step": "constitution", "detail": e.to_string() }));
                        Some((
                            FailureCause::Infrastructure,
                            "Foreman could not read the change to check it against the constitution".into(),
                        ))
                    }
                }
            }
            _ => None,
        };
        let network = network.close().await;
        for event in network.events {
            log.event("network", event);
        }
        if network.dropped > 0 {
            log.event("network_events_dropped", json!({ "count": network.dropped }));
        }
        self.workspaces.remove(&ws, &spec.repo).await;
        outcome.verdict = match (agent.failure, changes) {
            (Some((class, reason)), Ok(changes)) => {
                outcome.changes = changes;
                failed(class, reason)
            }
            (Some((class, reason)), Err(_)) => failed(class, reason),
            (None, Err(e)) => {
                log.event("error", json!({ "step": "changes", "detail": e.to_string() }));
                if e.args == format!("({})", workspace::RECLAIMING) {
                    // The agent tampered with its clone's `.git`: its work is refused, said in its own terms.
                    failed(FailureCause::Validation, format!("Foreman refused the agent's workspace: {}", e.stderr))
                } else {
                    failed(
                        FailureCause::Infrastructure,
                        "Foreman could not read the agent's changes (a git command failed)".into(),
                    )
                }
            }
            (None, Ok(changes)) if refused.is_some() => {
                outcome.changes = changes;
                let (class, reason) = refused.unwrap_or((FailureCause::Infrastructure, String::new()));
                failed(class, reason)
            }
            (None, Ok(changes)) => {
                let has_commits = !changes.commits.is_empty();
                outcome.changes = changes;
                // Commits are a change to push (a plan's are not: it changes nothing); without them, a final
                // message is an answer (a question answered, or why it cannot be done), and silence a failure.
                let answered = outcome.answer.is_some() || outcome.plan.is_some();
                if spec.kind == PromptKind::Planning && answered {
                    Verdict::Answered
                } else if has_commits {
                    Verdict::ChangesReady
                } else if answered {
                    Verdict::Answered
                } else {
                    Verdict::NoChanges {
                        reason: "the agent finished without changing anything and without saying why".into(),
                    }
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
}

/// The failure reason when the executor cannot run sessions: the why (a host's details) goes to the logs.
pub const SANDBOX_UNAVAILABLE: &str =
    "the agent sandbox is unavailable on Foreman's host; Foreman's operator must fix it (Foreman's log says why)";

/// The wait's reason when the agent cannot start on Foreman's host (its program missing): the why goes to
/// the logs and `/readyz`.
pub const AGENT_UNAVAILABLE: &str =
    "the agent cannot start on Foreman's host; Foreman's operator must fix it (Foreman's log says why)";

fn failed(class: FailureCause, reason: String) -> Verdict {
    Verdict::Failed { class, reason }
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
