//! The scheduler: picks runnable jobs in order, claims them with a time-to-live, and starts sessions within the limits.
//!
//! The rules live in the job vocabulary ([`crate::job`]: order, dependencies, backoff, limits); the
//! configuration here; the durable state and its transactions in the store. Every function takes `now`
//! rather than reading the clock, so tests drive time explicitly.

pub mod config;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

/// The job vocabulary's dependency types, at their former path.
pub use config::SchedulerConfig;

use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::backoff;
use crate::job::{
    Claim, ClaimOwner, Claimed, EnqueueOutcome, Expired, IssueRef, Job, LinkChange, NewJob, Outcome, Recovery,
    RepoConcurrency, SessionId, Wait,
};
use crate::store::{JobError, JobStore, Store};

/// The scheduler of one Foreman process: its configuration, its identity as a claim owner, and a
/// notification that wakes the loop that starts sessions. Works over any job store ([`JobStore`]); the
/// process's is the sled [`Store`].
#[derive(Clone)]
pub struct Scheduler<S = Store> {
    store: S,
    config: Arc<SchedulerConfig>,
    owner: ClaimOwner,
    changed: Arc<Notify>,
    hold: Hold,
}

/// A hold on every new session, shared by the scheduler, the runner and `GET /api/status`: the agent's usage
/// limit reached with every configured credential ([`Scheduler::set_hold`]). Clones share one hold.
#[derive(Clone, Debug, Default)]
pub struct Hold(Arc<std::sync::Mutex<Option<Wait>>>);

impl Hold {
    /// Sets (`Some`) or lifts (`None`) the hold.
    pub fn set(&self, hold: Option<Wait>) {
        *self.0.lock().expect("hold lock") = hold;
    }

    /// The hold at `now`, if one lasts: a hold with an end in the past has ended.
    pub fn get(&self, now: OffsetDateTime) -> Option<Wait> {
        self.0.lock().expect("hold lock").clone().filter(|w| w.until.is_none_or(|t| t > now))
    }
}

impl<S: JobStore> Scheduler<S> {
    /// A scheduler over `store` with a fresh owner identity.
    pub fn new(store: S, config: SchedulerConfig) -> Self {
        Self::with_owner(store, config, ClaimOwner::new())
    }

    /// A scheduler with a given owner (tests run two schedulers over one store).
    pub fn with_owner(store: S, config: SchedulerConfig, owner: ClaimOwner) -> Self {
        Self { store, config: Arc::new(config), owner, changed: Arc::new(Notify::new()), hold: Hold::default() }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// This scheduler's identity in claims.
    pub fn owner(&self) -> &ClaimOwner {
        &self.owner
    }

    /// Holds every new session until `hold` ends (`None` lifts it): the agent's usage limit reached with
    /// every credential. The runner does not claim while a hold lasts; queued jobs say they wait for it
    /// ([`Self::waiting_for`]) and `GET /api/status` shows it.
    pub fn set_hold(&self, hold: Option<Wait>) {
        self.hold.set(hold);
    }

    /// The hold on new sessions at `now`, if one lasts ([`Self::set_hold`]).
    pub fn hold(&self, now: OffsetDateTime) -> Option<Wait> {
        self.hold.get(now)
    }

    /// This scheduler sharing `hold` (with `GET /api/status`).
    pub fn with_hold(mut self, hold: Hold) -> Self {
        self.hold = hold;
        self
    }

    /// What a queued job waits for, in one sentence for its tracking comment ([`crate::job::wait::waiting_for`]):
    /// its own wait, its dependencies, the hold on sessions, or the running jobs that hold the slots.
    pub fn waiting_for(&self, job: &Job, now: OffsetDateTime) -> Option<String> {
        let claims = self.store.claims().unwrap_or_default();
        let stuck = self.stuck_dependencies(job);
        crate::job::wait::waiting_for(job, &claims, &*self.config, self.hold(now).as_ref(), &stuck, now)
    }

    /// The open dependencies of `job` whose own jobs are stuck: they hold it until someone retries them.
    pub fn stuck_dependencies(&self, job: &Job) -> Vec<IssueRef> {
        job.waiting_on
            .iter()
            .filter(
                |d| matches!(self.store.job(&d.repo, d.issue), Ok(Some(j)) if j.state == crate::job::JobState::Stuck),
            )
            .cloned()
            .collect()
    }

    /// The issue's "blocked by" links changed on GitHub ([`JobStore::update_blocked_by`]); the job when
    /// its links changed.
    pub fn link(&self, issue: &IssueRef, change: &LinkChange, now: OffsetDateTime) -> Result<Option<Job>, JobError> {
        let job = self.store.update_blocked_by(issue, change, now)?;
        if job.is_some() {
            self.changed.notify_one();
        }
        Ok(job)
    }

    /// How often a running session should renew its claim: a third of the time-to-live, so two missed
    /// heartbeats still leave the claim live.
    pub fn heartbeat_interval(&self) -> Duration {
        self.config.claim_ttl() / 3
    }

    /// Queues a job ([`JobStore::enqueue_job`]) with its priority from the labels ([`SchedulerConfig::priority`]);
    /// its phase key comes from the title and its dependencies from the body plus `blocked_by`. `actor`
    /// is the requester's login or `foreman`.
    pub fn enqueue(&self, new: NewJob, actor: &str, now: OffsetDateTime) -> Result<EnqueueOutcome, JobError> {
        let outcome = self.store.enqueue_job(&new, self.config.priority(&new.labels), actor, now)?;
        self.changed.notify_one();
        Ok(outcome)
    }

    /// Claims the next job in run order within the limits ([`JobStore::claim_next_admitting`]).
    pub fn claim_next(&self, now: OffsetDateTime) -> Result<Option<Claimed>, JobError> {
        self.store.claim_next_admitting(&self.owner, &*self.config, now, &|_| true)
    }

    /// Claims the next job whose installation `admit` accepts ([`JobStore::claim_next_admitting`]).
    pub fn claim_next_admitting(
        &self,
        now: OffsetDateTime,
        admit: &dyn Fn(InstallationId) -> bool,
    ) -> Result<Option<Claimed>, JobError> {
        self.store.claim_next_admitting(&self.owner, &*self.config, now, admit)
    }

    /// Renews a claim ([`JobStore::heartbeat`]); returns the new expiry.
    pub fn heartbeat(&self, claim: &Claim, now: OffsetDateTime) -> Result<OffsetDateTime, JobError> {
        self.store.heartbeat(claim, &*self.config, now)
    }

    /// Records a session's outcome ([`JobStore::finish_job`]) with a random backoff jitter, and waits until
    /// it is durable, so that what is reported next survives a crash.
    pub async fn finish(&self, claim: &Claim, outcome: &Outcome, now: OffsetDateTime) -> Result<Job, JobError> {
        self.finish_then(claim, outcome, now, |_| {}).await
    }

    /// [`Self::finish`], calling `then` with the job as recorded before the flush that makes it durable: what
    /// `then` writes to the store (the job's report, say) is made durable by the same flush, so a crash keeps
    /// both or neither. `then` is not called when the outcome was not recorded.
    pub async fn finish_then(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        now: OffsetDateTime,
        then: impl FnOnce(&Job),
    ) -> Result<Job, JobError> {
        let job = self.store.finish_job(claim, outcome, &*self.config, now, backoff::random_jitter())?;
        then(&job);
        self.store.sync().await?;
        self.changed.notify_one();
        Ok(job)
    }

    /// Cancels a job ([`JobStore::cancel_job`]) and waits until durable. Returns the session to stop, if it
    /// was running; its slot is already free.
    pub async fn cancel(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Job, Option<SessionId>)>, JobError> {
        let out = self.store.cancel_job(repo, issue, actor, cause, now)?;
        self.store.sync().await?;
        self.changed.notify_one();
        Ok(out)
    }

    /// `retry` ([`JobStore::retry_job`]), durable before it returns.
    pub async fn retry(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Job, JobError> {
        let job = self.store.retry_job(repo, issue, actor, cause, now)?;
        self.store.sync().await?;
        self.changed.notify_one();
        Ok(job)
    }

    /// An issue's title or labels changed: re-place its queued job by the new phase key and priority rank
    /// ([`JobStore::reorder_job`]). `None` when there is no queued job or its order did not change.
    pub fn reorder(
        &self,
        issue: &IssueRef,
        title: &str,
        labels: &[String],
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        let job = self.store.reorder_job(&issue.repo, issue.issue, title, labels, self.config.priority(labels), now)?;
        if job.is_some() {
            self.changed.notify_one();
        }
        Ok(job)
    }

    /// An issue was closed or reopened ([`JobStore::record_issue_state`]).
    pub fn issue_state(&self, issue: &IssueRef, open: bool, now: OffsetDateTime) -> Result<usize, JobError> {
        let n = self.store.record_issue_state(issue, open, now)?;
        if n > 0 {
            self.changed.notify_one();
        }
        Ok(n)
    }

    /// Crash recovery at start: claims of every other instance are from processes that no longer run
    /// (sled admits one process per database); their jobs go back to the queue and their sessions are
    /// marked interrupted. Durable before it returns.
    pub async fn recover(&self, now: OffsetDateTime) -> Result<Recovery, JobError> {
        let report = self.store.recover_claims(&[self.owner.instance.as_str()], now)?;
        self.store.sync().await?;
        if !report.requeued.is_empty() {
            tracing::info!(requeued = report.requeued.len(), "recovered jobs whose process no longer runs");
        }
        Ok(report)
    }

    /// Periodic work: expire claims and end backoffs at `now`. Returns the expired claims (their sessions,
    /// if still running somewhere, must stop).
    pub fn tick(&self, now: OffsetDateTime) -> Result<Vec<Expired>, JobError> {
        let expired = self.store.expire_claims(&*self.config, now)?;
        let promoted = self.store.promote_due(now)?;
        if !expired.is_empty() || promoted > 0 {
            self.changed.notify_one();
        }
        Ok(expired)
    }

    /// How long a loop may sleep before something is due (a backoff ends or a claim expires), capped at
    /// `cap`.
    pub fn sleep_for(&self, now: OffsetDateTime, cap: Duration) -> Result<Duration, JobError> {
        Ok(match self.store.next_due()? {
            Some(t) if t <= now => Duration::ZERO,
            Some(t) => Duration::try_from(t - now).unwrap_or(cap).min(cap),
            None => cap,
        })
    }

    /// Learns `repo`'s `[limits] concurrency` (e.g. from its effective constitution): used instead of
    /// `max_sessions_per_repo` when the repository or its organisation sets it (`Some`), forgotten when
    /// neither does (`None`).
    pub fn learn_limits(&self, repo: &RepoName, source: &impl RepoConcurrency) {
        let key = repo.to_string();
        let before = self.config.repo_limits.get(&key);
        match source.concurrency() {
            None => self.config.repo_limits.clear(&key),
            Some(limit) => self.config.repo_limits.set(&key, limit),
        }
        if self.config.repo_limits.get(&key) != before {
            self.changed.notify_one();
        }
    }

    /// Waits until a job may have become runnable (enqueue, finish, cancel, retry, dependency closed).
    /// Spurious wake-ups are possible.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
