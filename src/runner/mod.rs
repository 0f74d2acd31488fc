//! The runner: claims runnable jobs within the limits and runs each one to its end, from the claim to the
//! report. One [`Runner`] per process, started by `foreman serve`.
//!
//! The loop ([`Runner::run`]) wakes when the scheduler says a job may have become runnable (enqueue, finish,
//! cancel, retry), when a backoff or a claim is due, when a held installation's quota window resets, or every
//! [`IDLE_POLL`]; it expires claims, then claims jobs until the limits say no, and runs each claimed job on a
//! task of its own ([`job`]). Jobs of an installation with less than its quota threshold left
//! ([`Client::quota_ok`], 10% of `x-ratelimit-limit` by default) are held, not claimed, until that
//! installation's window resets: a session makes many calls, and replies to commands must still go out. The scheduler's
//! claiming transaction enforces the concurrency limits, so the loop needs no counting of its own.
//!
//! A running job can be stopped from outside: `/foreman stop`, an unlabel, a closed issue
//! ([`Runner::stop`]), or its claim lost (the heartbeat finds it no longer held). Stopping cancels the
//! session, which kills the agent's process group; nothing is pushed.

mod attempt;
mod conclude;
pub mod job;
mod plan;
mod publish;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::github::Client;
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::{Wait, WaitKind};
use crate::report::outbox::Outbox;
use crate::report::push::Pusher;
use crate::scheduler::Scheduler;
use crate::session::SessionRunner;

/// The longest the loop sleeps with nothing due. Claims expire and backoffs end on their own schedule
/// (the loop computes the next one), so this only bounds how stale a missed wake-up can leave the queue.
pub const IDLE_POLL: Duration = Duration::from_secs(30);

/// How long after an installation's quota window resets (`x-ratelimit-reset`, whole seconds) the runner
/// looks again at the jobs it held for that installation: the reset time is rounded down to the second,
/// and a little slack keeps the runner from waking just before it.
pub const QUOTA_RESET_MARGIN: Duration = Duration::from_millis(250);

/// How long shutdown waits for running jobs to give their claims back after their sessions were cancelled.
/// Inside `server::DRAIN_TIMEOUT` and fly.toml's kill timeout: the agent gets `agent.kill_grace_secs` to exit,
/// then the job is released to the queue (or, if this is cut short, recovered at the next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// What a job needs besides its claim: shared by every job task.
pub struct Parts {
    /// The job store's rules.
    pub scheduler: Scheduler,
    /// GitHub.
    pub client: Client,
    /// Agent sessions.
    pub sessions: SessionRunner,
    /// Pushes `foreman/` branches.
    pub pusher: Pusher,
    /// Reports on GitHub, in order per job.
    pub outbox: Outbox,
    /// Repositories' constitutions, loaded before each session (cached a minute, shared with the inbox worker).
    pub constitutions: crate::constitution::fetch::Cache,
    /// The trigger label, for the tracking comment's "queued by" line.
    pub trigger_label: String,
    /// Foreman's public address, for session log links (`config.public_url`); no links when `None`.
    pub public_url: Option<String>,
    /// The backend's name (`claude` or `command`): a constitution's `agent.backend` must name it.
    pub backend: String,
    /// The agent, as the pull-request body names it (e.g. `claude (sonnet)` or `command`).
    pub agent_name: String,
    /// Whether a constitution's `agent.executor` is honoured (`executor.allow_repository_choice`).
    pub executor_choice: bool,
}

/// Claims and runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    parts: Arc<Parts>,
    running: Arc<Mutex<HashMap<(RepoName, IssueNumber), CancellationToken>>>,
}

impl Runner {
    /// A runner over `parts`.
    pub fn new(parts: Parts) -> Self {
        Self { parts: Arc::new(parts), running: Arc::default() }
    }

    /// Stops the session running for `repo#issue`, if this process runs one. The job's state is the caller's
    /// business (the scheduler's `cancel` already freed the claim); the job task sees its claim gone and
    /// reports the job cancelled. Returns whether a session was running.
    pub fn stop(&self, repo: &RepoName, issue: IssueNumber) -> bool {
        match self.running.lock().expect("running lock").get(&(repo.clone(), issue)) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// How many jobs this process is running now.
    pub fn running(&self) -> usize {
        self.running.lock().expect("running lock").len()
    }

    /// The hold on new sessions the agent asks for (every credential at its usage limit), set on the
    /// scheduler so queued jobs and `GET /api/status` show it; logged when it starts and ends.
    fn agent_hold(&self, scheduler: &Scheduler) -> Option<Wait> {
        let now = OffsetDateTime::now_utc();
        let until = self
            .parts
            .sessions
            .agent()
            .held_until(jiff::Timestamp::now())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.as_second()).ok());
        let hold = until.map(|until| Wait {
            kind: WaitKind::UsageLimit,
            reason: format!(
                "the {} usage limit, reached with every configured credential",
                self.parts.sessions.agent().name()
            ),
            until: Some(until),
        });
        match (scheduler.hold(now).is_some(), &hold) {
            (false, Some(h)) => {
                let until = h.until.map(crate::job::wait::when).unwrap_or_default();
                tracing::warn!(until, "holding every new session: the agent's usage limit is reached")
            }
            (true, None) => tracing::info!("the agent's usage limit has reset: sessions start again"),
            _ => {}
        }
        scheduler.set_hold(hold.clone());
        hold
    }

    /// Runs until `shutdown`: claims jobs and runs them. On shutdown, cancels the running sessions, gives
    /// their jobs back to the queue and waits for that at most [`SHUTDOWN_GRACE`].
    pub async fn run(self, shutdown: CancellationToken) {
        let scheduler = self.parts.scheduler.clone();
        let mut tasks = JoinSet::new();
        loop {
            let now = OffsetDateTime::now_utc();
            match scheduler.tick(now) {
                Ok(expired) => {
                    for e in expired {
                        tracing::warn!(repo = %e.claim.repo, issue = %e.claim.issue, "a claim expired");
                        self.stop(&e.claim.repo, e.claim.issue);
                    }
                }
                Err(e) => tracing::error!(error = %e, "expiring claims failed"),
            }
            // The agent's usage limit reached with every credential holds every new session until it resets.
            let hold = self.agent_hold(&scheduler);
            // Claims until the limits say no; the earliest quota reset of the installations held meanwhile.
            let held_until = if hold.is_some() {
                None
            } else {
                let held = std::cell::RefCell::new(Vec::<(InstallationId, Option<std::time::SystemTime>)>::new());
                let admit = |installation: InstallationId| {
                    let ok = self.parts.client.quota_ok(installation);
                    if !ok && !held.borrow().iter().any(|(i, _)| *i == installation) {
                        let reset = self.parts.client.quota(installation).map(|q| q.reset);
                        held.borrow_mut().push((installation, reset));
                    }
                    ok
                };
                loop {
                    match scheduler.claim_next_admitting(OffsetDateTime::now_utc(), &admit) {
                        Ok(Some(claimed)) => {
                            let key = (claimed.job.repo.clone(), claimed.job.issue);
                            let token = shutdown.child_token();
                            self.running.lock().expect("running lock").insert(key.clone(), token.clone());
                            let runner = self.clone();
                            let shutdown = shutdown.clone();
                            tasks.spawn(async move {
                                job::run(&runner.parts, claimed, token, &shutdown).await;
                                runner.running.lock().expect("running lock").remove(&key);
                            });
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "claiming a job failed");
                            break;
                        }
                    }
                }
                let held = held.into_inner();
                for (installation, _) in &held {
                    tracing::info!(
                        installation = installation.0,
                        "holding new sessions: the installation's quota is low"
                    );
                }
                held.iter().filter_map(|(_, reset)| *reset).min()
            };
            let mut wait = scheduler.sleep_for(OffsetDateTime::now_utc(), IDLE_POLL).unwrap_or(IDLE_POLL);
            if let Some(until) = hold.and_then(|h| h.until) {
                let left = until - OffsetDateTime::now_utc();
                wait = wait.min(Duration::try_from(left).unwrap_or_default() + QUOTA_RESET_MARGIN);
            }
            if let Some(reset) = held_until {
                // A held installation's quota window starts again at `reset`: look again then.
                let until = reset.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                wait = wait.min(until + QUOTA_RESET_MARGIN);
            }
            tokio::select! {
                _ = scheduler.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // The job tokens are children of `shutdown`: every session is being cancelled now.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(left = tasks.len(), "jobs still stopping after {SHUTDOWN_GRACE:?}; recovery requeues them");
        }
    }
}
