//! The Actions executor's side on Foreman: [`RemoteAgent`] replaces the agent run of a session whose
//! executor is `actions`. The session prepares the worktree and renders the prompt as for a local agent;
//! this agent then bundles the branch, registers the session (its token, its spec), dispatches the
//! workflow, relays the runner's events into the session log and the progress callback, and takes the
//! runner's result bundle back into the worktree, verified. The session then collects the changes, checks
//! them against the constitution, and Foreman pushes them with its own token, as for a local session.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use super::protocol::{AgentSettings, Event, RemoteResult, RemoteSpec, SESSIONS_PATH};
use super::registry::{NewSession, Registry};
use super::token::SessionToken;
use crate::executor::BoxFuture;
use crate::executor::ExecutorKind;
use crate::git::Git;
use crate::github::{Client, GithubError};
use crate::ids::RepoName;
use crate::session::{Agent, AgentConfig, AgentEnd, AgentRun, FailureCause, PLAN_FILE, Progress, PromptKind};

/// How the Actions executor reaches runners, fixed at start.
#[derive(Clone, Debug)]
pub struct ActionsSettings {
    /// `executor.kind`: where sessions run unless a repository chooses (when allowed).
    pub kind: ExecutorKind,
    /// `executor.workflow`.
    pub workflow: String,
    /// `executor.repository`; `None`: the issue's own.
    pub repository: Option<RepoName>,
    /// The base of session URLs (no trailing `/`).
    pub base_url: String,
    /// `executor.poll_interval_secs`.
    pub poll_interval: Duration,
    /// `executor.queue_timeout_secs`: how long a run may wait for its runner's first request.
    pub queue_timeout: Duration,
    /// The claim's time-to-live: a runner silent this long is lost.
    pub ttl: Duration,
    /// Where bundles are kept while a session runs (Foreman's scratch directory).
    pub scratch: PathBuf,
}

impl ActionsSettings {
    /// The settings of `executor` (`[executor]`), with Foreman's `public_url`, the claim's time-to-live and
    /// the scratch directory.
    pub fn of(executor: &super::ExecutorConfig, public_url: Option<&str>, ttl: Duration, scratch: &Path) -> Self {
        Self {
            kind: executor.kind,
            workflow: executor.workflow.clone(),
            repository: executor.repository.as_deref().and_then(|r| r.parse().ok()),
            base_url: executor.base_url(public_url).unwrap_or_default(),
            poll_interval: Duration::from_secs(executor.poll_interval_secs),
            queue_timeout: Duration::from_secs(executor.queue_timeout_secs),
            ttl,
            scratch: scratch.to_owned(),
        }
    }
}

/// How long past `agent.timeout_secs` after its runner connected Foreman waits for a session's result.
pub const REMOTE_GRACE: Duration = Duration::from_secs(300);

/// The command people run to print the workflow file, for reports.
pub const WORKFLOW_COMMAND: &str = "foreman actions workflow";

/// An agent run on a GitHub Actions runner, wrapping the configured backend (which a session with the
/// `local` executor still runs here).
#[derive(Debug)]
pub struct RemoteAgent {
    inner: Box<dyn Agent>,
    registry: Registry,
    client: Client,
    settings: ActionsSettings,
}

impl RemoteAgent {
    /// The backend `inner`, run on runners reached through `registry` and dispatched with `client`.
    pub fn new(inner: Box<dyn Agent>, registry: Registry, client: Client, settings: ActionsSettings) -> Self {
        Self { inner, registry, client, settings }
    }
}

impl Agent for RemoteAgent {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn describe(&self, config: &AgentConfig) -> String {
        match self.settings.kind {
            ExecutorKind::Actions => format!("{} on GitHub Actions", self.inner.describe(config)),
            ExecutorKind::Local => self.inner.describe(config),
        }
    }

    fn unavailable(&self, config: &AgentConfig) -> Option<String> {
        // The runner has the program; here nothing is started.
        match self.settings.kind {
            ExecutorKind::Actions => None,
            ExecutorKind::Local => self.inner.unavailable(config),
        }
    }

    fn missing_credential(&self) -> Option<String> {
        match self.settings.kind {
            ExecutorKind::Actions => None,
            ExecutorKind::Local => self.inner.missing_credential(),
        }
    }

    fn version_command(&self, config: &AgentConfig) -> Option<(PathBuf, Vec<String>)> {
        match self.settings.kind {
            ExecutorKind::Actions => None,
            ExecutorKind::Local => self.inner.version_command(config),
        }
    }

    fn held_until(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.inner.held_until(now)
    }

    fn renew(&self, session_id: &str) -> bool {
        // A session not handed to a runner (a local one) is Foreman's own.
        !self.registry.registered(session_id) || self.registry.renew(session_id)
    }

    fn run<'a>(&'a self, run: AgentRun<'a>) -> BoxFuture<'a, AgentEnd> {
        let kind = run.spec.executor.unwrap_or(self.settings.kind);
        match kind {
            ExecutorKind::Local => self.inner.run(run),
            ExecutorKind::Actions => Box::pin(self.run_remote(run)),
        }
    }
}

fn failed(class: FailureCause, reason: impl Into<String>) -> AgentEnd {
    AgentEnd::failed(class, reason.into())
}

impl RemoteAgent {
    async fn run_remote(&self, run: AgentRun<'_>) -> AgentEnd {
        let AgentRun { config: c, spec, session_id, branch, mounts, prompt, cancel, progress, log, .. } = run;
        let ws = Git::work_tree(&mounts.workspace);
        let base = match ws.run(&["rev-parse", "HEAD"]).await {
            Ok(sha) => sha.trim().to_owned(),
            Err(e) => {
                log.event("error", json!({ "step": "remote", "detail": e.to_string() }));
                return failed(FailureCause::Infrastructure, "Foreman could not read the workspace's base commit");
            }
        };
        let bundle = self.settings.scratch.join(format!("{session_id}.bundle"));
        let result_bundle = self.settings.scratch.join(format!("{session_id}.result.bundle"));
        let _cleanup = Cleanup(vec![bundle.clone(), result_bundle.clone()]);
        let bundle_arg = bundle.to_string_lossy().into_owned();
        let branch_ref = format!("refs/heads/{branch}");
        if let Err(e) = ws.run(&["bundle", "create", "--quiet", &bundle_arg, &branch_ref]).await {
            log.event("error", json!({ "step": "bundle", "detail": e.to_string() }));
            return failed(FailureCause::Infrastructure, "Foreman could not bundle the repository for the runner");
        }
        let remote = RemoteSpec {
            session_id: session_id.to_owned(),
            repo: spec.repo.to_string(),
            issue: spec.issue.number,
            branch: branch.to_owned(),
            base_commit: base.clone(),
            prompt,
            plan: spec.kind == PromptKind::Planning,
            agent: AgentSettings::of(c),
            keepalive_secs: (self.settings.ttl.as_secs() / 4).max(1),
        };
        let token = SessionToken::generate();
        let spec_json = serde_json::to_vec(&remote).unwrap_or_default();
        let mut registration = self.registry.register(
            session_id,
            NewSession {
                digest: token.digest(),
                ttl: self.settings.ttl,
                spec: spec_json,
                bundle: bundle.clone(),
                result_bundle: result_bundle.clone(),
            },
        );
        let Some(inst) = spec.installation else {
            return failed(
                FailureCause::Infrastructure,
                "the session names no installation to dispatch its workflow through",
            );
        };
        let repository = self.settings.repository.clone().unwrap_or_else(|| spec.repo.clone());
        let git_ref = if repository == spec.repo {
            spec.default_branch.clone()
        } else {
            match self.client.repository(inst, &repository).await {
                Ok(r) => r.default_branch.unwrap_or_else(|| "main".into()),
                Err(e) => {
                    log.event("error", json!({ "step": "dispatch", "detail": e.to_string() }));
                    return failed(
                        FailureCause::Infrastructure,
                        format!("Foreman could not read {repository}, where executor.repository runs sessions"),
                    );
                }
            }
        };
        let session_url = format!("{}{SESSIONS_PATH}/{session_id}", self.settings.base_url);
        let mut inputs = serde_json::Map::new();
        inputs.insert("session_id".into(), session_id.into());
        inputs.insert("session_url".into(), session_url.clone().into());
        inputs.insert("session_token".into(), token.secret().expose_secret().into());
        let workflow = &self.settings.workflow;
        let dispatched = match self.client.dispatch_workflow(inst, &repository, workflow, &git_ref, &inputs).await {
            Ok(d) => d,
            Err(e) => {
                log.event("error", json!({ "step": "dispatch", "detail": e.to_string() }));
                return dispatch_failure(&e, &repository, workflow);
            }
        };
        let run_id = dispatched.workflow_run_id;
        let html_url = dispatched.html_url.clone();
        self.registry.set_run(session_id, run_id);
        log.event(
            "dispatched",
            json!({ "repository": repository.to_string(), "workflow": workflow,
                                        "run_id": run_id, "html_url": html_url, "session_url": session_url }),
        );
        progress(Progress::Dispatched { repository: repository.to_string(), run_id, html_url: html_url.clone() });

        let cancel_run = || async {
            if let Err(e) = self.client.cancel_workflow_run(inst, &repository, run_id).await {
                tracing::warn!(run_id, error = %e, "cancelling the session's workflow run failed");
            }
        };
        let mut poll = tokio::time::interval(self.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        let wake = registration.wake.clone();
        // Until its runner's first request the run waits in GitHub's queue, at most `queue_timeout`. Then the
        // runner enforces the agent's limits; Foreman stops waiting a while after them in any case (a runner
        // that keeps saying it is alive holds the claim no longer than that).
        let deadline = tokio::time::sleep(self.settings.queue_timeout);
        tokio::pin!(deadline);
        let mut connected = false;
        let result = loop {
            if !connected && self.registry.connected(session_id) {
                connected = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + c.timeout() + REMOTE_GRACE);
            }
            let look = tokio::select! {
                _ = cancel.cancelled() => {
                    self.registry.revoke(session_id);
                    cancel_run().await;
                    log.event("remote_cancelled", json!({ "run_id": run_id }));
                    return failed(FailureCause::Cancelled, "the session was cancelled");
                }
                () = &mut deadline, if connected || !self.registry.connected(session_id) => {
                    self.registry.revoke(session_id);
                    cancel_run().await;
                    if !connected {
                        log.event("remote_queue_timeout", json!({ "run_id": run_id }));
                        let url = html_url.clone().unwrap_or_else(|| format!("run {run_id}"));
                        return failed(
                            FailureCause::Infrastructure,
                            format!(
                                "no runner took the session's GitHub Actions run within {} s (executor.queue_timeout_secs); Foreman cancelled it: {url}",
                                self.settings.queue_timeout.as_secs()
                            ),
                        );
                    }
                    log.event("remote_timeout", json!({ "run_id": run_id }));
                    return failed(
                        FailureCause::Timeout,
                        format!("the runner ran longer than {} s and did not hand back the session's work", c.timeout_secs),
                    );
                }
                Some(batch) = registration.events.recv() => {
                    relay(batch, progress, log);
                    false
                }
                result = &mut registration.result => match result {
                    Ok(result) => break result,
                    Err(_) => return failed(FailureCause::Infrastructure, "the runner's session was revoked"),
                },
                _ = poll.tick() => true,
                _ = wake.notified() => true,
            };
            if !look {
                continue;
            }
            // Poll the run: one that ended without a result lost its work.
            match self.client.workflow_run(inst, &repository, run_id).await {
                Ok(r) if r.completed() => {
                    while let Ok(batch) = registration.events.try_recv() {
                        relay(batch, progress, log);
                    }
                    if let Ok(result) = registration.result.try_recv() {
                        break result;
                    }
                    let conclusion = r.conclusion.clone().unwrap_or_else(|| "unknown".into());
                    log.event("remote_lost", json!({ "run_id": run_id, "conclusion": conclusion }));
                    let url = r.html_url.or(html_url.clone()).unwrap_or_else(|| format!("run {run_id}"));
                    return failed(
                        FailureCause::Infrastructure,
                        format!(
                            "the GitHub Actions run ended ({conclusion}) without handing back the session's work: {url}"
                        ),
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(run_id, error = %e, "reading the session's workflow run failed"),
            }
        };
        while let Ok(batch) = registration.events.try_recv() {
            relay(batch, progress, log);
        }
        // The token is spent: nothing more is taken from the runner.
        drop(registration);
        log.event(
            "remote_result",
            json!({ "head": result.head, "failure": result.failure,
                                          "bundle": result_bundle.exists() }),
        );
        self.apply(result, &ws, &base, branch, &result_bundle, &mounts.home, log).await
    }

    /// Takes the runner's result: verifies its bundle against the workspace and moves the branch to its
    /// head, writes the plan where the session reads it, and says how the agent ended.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        result: RemoteResult,
        ws: &Git,
        base: &str,
        branch: &str,
        bundle: &Path,
        home: &Path,
        log: &mut crate::session::log::SessionLog,
    ) -> AgentEnd {
        if result.head != base
            && let Err(reason) = take_bundle(ws, base, branch, &result.head, bundle).await
        {
            log.event("error", json!({ "step": "result_bundle", "detail": reason }));
            return failed(FailureCause::Validation, format!("Foreman refused the runner's work: {reason}"));
        }
        if let Some(plan) = &result.plan {
            let mut plan = plan.clone();
            plan.truncate(crate::session::PLAN_FILE_BYTES as usize);
            let _ = std::fs::write(home.join(PLAN_FILE), plan);
        }
        AgentEnd {
            failure: result.failure.map(|f| (f.cause, f.reason)),
            answer: result.answer,
            agent_session_id: result.agent_session_id,
            stats: result.stats,
            credential: result.credential,
        }
    }
}

/// Checks the runner's bundle and moves `branch` in the workspace to its head: the bundle must apply on
/// the workspace (its prerequisites there: `git bundle verify`), carry `refs/heads/<branch>` alone at
/// `head`, and `head` must descend from `base`. The error is the reason, for people.
async fn take_bundle(ws: &Git, base: &str, branch: &str, head: &str, bundle: &Path) -> Result<(), String> {
    if !bundle.is_file() {
        return Err("it reported commits but uploaded no git bundle".into());
    }
    let path = bundle.to_string_lossy().into_owned();
    if let Err(e) = ws.run(&["bundle", "verify", "--quiet", &path]).await {
        let first = e.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
        return Err(format!(
            "its git bundle does not apply on the base Foreman handed out ({}): {first}",
            &base[..base.len().min(12)]
        ));
    }
    let heads = ws
        .run(&["bundle", "list-heads", &path])
        .await
        .map_err(|e| format!("its git bundle is unreadable: {}", e.stderr))?;
    let want = format!("refs/heads/{branch}");
    let refs: Vec<(&str, &str)> = heads.lines().filter_map(|l| l.split_once(' ')).collect();
    if refs.len() != 1 || refs[0].1 != want {
        let names: Vec<&str> = refs.iter().map(|(_, r)| *r).collect();
        return Err(format!("its git bundle must hold the session branch {want} alone, not {}", names.join(", ")));
    }
    if refs[0].0 != head {
        return Err(format!("its git bundle's {want} is at {}, not at the head it reported", refs[0].0));
    }
    let fetched = format!("refs/foreman/runner/{branch}");
    // A bundle is read through git's file transport, which Foreman's git allows only when asked.
    ws.clone()
        .local()
        .run(&["fetch", "--quiet", "--no-tags", &path, &format!("+{want}:{fetched}")])
        .await
        .map_err(|e| format!("its git bundle could not be fetched: {}", e.stderr))?;
    if ws.run(&["merge-base", "--is-ancestor", base, head]).await.is_err() {
        let _ = ws.run(&["update-ref", "-d", &fetched]).await;
        return Err(format!(
            "its branch does not descend from the base Foreman handed out ({}): history was rewritten",
            &base[..base.len().min(12)]
        ));
    }
    ws.run(&["reset", "--quiet", "--hard", head]).await.map_err(|e| format!("git reset failed: {}", e.stderr))?;
    let _ = ws.run(&["update-ref", "-d", &fetched]).await;
    Ok(())
}

/// The failure of a dispatch GitHub refused.
fn dispatch_failure(e: &GithubError, repository: &RepoName, workflow: &str) -> AgentEnd {
    if e.is_not_found() {
        return failed(
            FailureCause::Validation,
            format!(
                "the workflow `{workflow}` that runs sessions on GitHub Actions is not in {repository}: commit the \
                 file `{WORKFLOW_COMMAND}` prints as `.github/workflows/{workflow}`"
            ),
        );
    }
    if let GithubError::Unprocessable { .. } = e {
        return failed(
            FailureCause::Validation,
            format!(
                "GitHub refused to dispatch the workflow `{workflow}` in {repository} (it needs a \
                 `workflow_dispatch` trigger with the inputs session_id, session_url and session_token: \
                 `{WORKFLOW_COMMAND}` prints one): {e}"
            ),
        );
    }
    failed(FailureCause::Infrastructure, format!("Foreman could not dispatch the session's workflow run: {e}"))
}

/// Relays a batch of the runner's events: log lines into the session log, progress to the caller.
fn relay(batch: Vec<Event>, progress: &(dyn Fn(Progress) + Send + Sync), log: &mut crate::session::log::SessionLog) {
    for event in batch {
        match event {
            Event::Log { line } => log.relay(&line),
            // Foreman's own steps are Foreman's to report.
            Event::Progress { progress: Progress::Preparing | Progress::Finishing | Progress::Dispatched { .. } } => {}
            Event::Progress { progress: p } => progress(p),
            Event::Alive => {}
        }
    }
}

/// Removes files when dropped.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
