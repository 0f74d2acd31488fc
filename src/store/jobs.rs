//! Jobs: one per (repository, issue), their run-order index, dependencies and audit trail.
//!
//! Trees (keys big-endian so that key order is the order that matters):
//! - `jobs`: job key → [`Job`] as JSON. A job key is the lower-cased `owner/name`, a zero byte, and the
//!   issue number as u64 (GitHub compares repository names case-insensitively).
//! - `job_ready`: [`OrderKey`] → a copy of the [`Job`] record (JSON, byte for byte what `jobs` holds), for
//!   every queued job that may run now. Keys sort in run order, so the next job is the first key: picking
//!   never sorts or scans the queue. The copy is what makes a claim cheap: the front of this tree stays in
//!   sled's cache, while a job's own record in `jobs` is, with 100,000 jobs, usually a cold page.
//!   ([`Tx::put_job`] writes both, so they cannot drift apart.)
//! - `job_delayed`: not-before time (unix nanoseconds, u64) · job key → empty: jobs in backoff or waiting
//!   for a rate-limit reset.
//! - `job_deps`: dependency's issue key · job key → empty: who waits on an issue.
//! - `issue_state`: issue key → `open` | `closed`, as Foreman learned it from events or lookups.
//! - `job_audit`: id (u64, increasing) → [`AuditEntry`]: every transition, with time, actor and cause.
//!   Keyed by id so that writes append at the right edge of the tree, which stays in sled's cache.
//! - `job_audit_index`: job key · id → empty: a job's entries. Small keys, so the tree stays cached too
//!   even with 100,000 jobs (a claim then touches one cold page, the job's own, instead of three).
//! - claims, the slot counters, the failure ledger and sessions: see [`super::claims`],
//!   [`super::failures`], [`super::sessions`].
//!
//! A queued job is in exactly one of `job_ready`, `job_delayed` or waiting on a dependency; which one is
//! recorded in the job itself ([`Placement`]), so that moving it out is exact. Every change to a job and
//! its index entries is one sled transaction over all the trees it touches.
//!
//! Claiming does not rewrite the job's record: the claim (tree `claims`) is the authority for the running
//! state. A claimed job's record still reads `queued`, placed ready (though no longer in `job_ready`), until
//! the next write of the job, which writes it as running. Every read of a job applies its claim
//! ([`apply_claim`]): [`Tx::job`], [`Store::job`], and the scans. This keeps the one cold page of a job's
//! record out of the claim (issue 4: pick-next + claim median ≤ 100 µs with 100,000 jobs queued).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use time::OffsetDateTime;

use super::claims::Claim;
use super::failures::{Failure, FailureCounts};
use super::sessions::SessionId;
use super::{Store, StoreError};
use crate::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use crate::scheduler::deps::IssueRef;
use crate::scheduler::order::{OrderKey, PhaseKey};

/// How many delivery ids a job remembers, to answer a redelivered or replayed delivery as a duplicate.
/// GitHub redelivers a delivery under its original id; 32 covers every trigger a busy issue sees between
/// two runs.
pub const REMEMBERED_DELIVERIES: usize = 32;

/// What a job asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Implement the issue and open a pull request.
    Code,
    /// Write a plan as a comment; change no code.
    Plan,
    /// Address review feedback on Foreman's existing pull request.
    FollowUp,
}

/// Where a job is in its life. `queued → running → succeeded | failed | cancelled | stuck`; a failed job
/// returns to `queued` when its backoff ends, and `retry` returns any job that is not running to `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run: runnable, or waiting on a dependency.
    Queued,
    /// Claimed: a session runs it.
    Running,
    /// Finished with changes ready (or a plan written).
    Succeeded,
    /// Failed and will be retried after its backoff (or after a rate-limit reset).
    Failed,
    /// Cancelled by a person or an event (unlabelled, closed, `stop`).
    Cancelled,
    /// Set aside: too many failures or a dependency cycle. Needs a person (`retry`).
    Stuck,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Stuck,
    ];

    /// The state's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Stuck => "stuck",
        }
    }
}

/// Which index holds a queued or failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "snake_case")]
pub enum Placement {
    /// In no index: running or finished.
    None,
    /// In the run-order index: may run now.
    Ready,
    /// In the delayed index until this time (unix nanoseconds).
    Delayed {
        /// Unix nanoseconds.
        until: u64,
    },
    /// Waiting on open dependencies ([`Job::waiting_on`]).
    Waiting,
}

/// A job: one per (repository, issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The repository.
    pub repo: RepoName,
    /// The issue (or pull request, for a follow-up).
    pub issue: IssueNumber,
    /// The installation that covers the repository, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<InstallationId>,
    /// What to do.
    pub kind: JobKind,
    /// Where the job is in its life.
    pub state: JobState,
    /// The issue title when last queued.
    pub title: String,
    /// The issue's labels when last queued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Priority rank from the labels, 0 highest ([`crate::scheduler::order::priority_rank`]).
    pub priority: u8,
    /// The phase key parsed from the title.
    pub phase: PhaseKey,
    /// Declared dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<IssueRef>,
    /// The dependencies not known to be closed; the job waits while this is not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<IssueRef>,
    /// Unique, increasing sequence number of this run request: the last tie-breaker of the order.
    pub seq: u64,
    /// When this run was requested (age for ordering).
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    /// When the job last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Not to run before this time: backoff after a failure, or a rate-limit reset.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<OffsetDateTime>,
    /// Failures by class since the last `retry` or fresh request.
    #[serde(default, skip_serializing_if = "FailureCounts::is_zero")]
    pub failures: FailureCounts,
    /// The most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// How many times the job was claimed.
    pub attempts: u32,
    /// Why it is stuck, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_reason: Option<String>,
    /// What queued it: `label`, `board`, `command`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Who asked for it (a GitHub login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Free-text instructions from `/foreman run …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The last session that ran it (or runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Delivery ids that queued it, most recent last, at most [`REMEMBERED_DELIVERIES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<DeliveryId>,
    /// Which index holds it.
    pub placement: Placement,
}

impl Job {
    /// The job's run-order key.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            priority: self.priority,
            phase: self.phase,
            failures: self.failures.counted(),
            enqueued_nanos: nanos(self.enqueued_at),
            seq: self.seq,
        }
    }

    /// The job's issue as a reference.
    pub fn issue_ref(&self) -> IssueRef {
        IssueRef { repo: self.repo.clone(), issue: self.issue }
    }
}

/// A request to queue an issue. Built by the scheduler from the issue and the decision.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// The installation, when known.
    pub installation: Option<InstallationId>,
    /// What to do.
    pub kind: JobKind,
    /// The issue title.
    pub title: String,
    /// The issue's labels.
    pub labels: Vec<String>,
    /// Priority rank, 0 highest.
    pub priority: u8,
    /// Phase key from the title.
    pub phase: PhaseKey,
    /// Dependencies (from the body and from GitHub's issue dependencies).
    pub depends_on: Vec<IssueRef>,
    /// What queued it.
    pub trigger: Option<String>,
    /// Who asked.
    pub requester: Option<String>,
    /// Free-text instructions.
    pub instructions: Option<String>,
    /// The delivery that asked, so a redelivery is answered as a duplicate.
    pub delivery: Option<DeliveryId>,
    /// Who (for the audit trail): a login, or `foreman`.
    pub actor: String,
    /// Why (for the audit trail), e.g. `label 'foreman' added`.
    pub cause: String,
}

/// What [`Store::enqueue_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome {
    /// A new run was queued.
    Queued(Job),
    /// The job was already queued (or in backoff): its title, labels, kind and dependencies were refreshed.
    Updated(Job),
    /// The job runs now; nothing changed.
    AlreadyRunning(Job),
    /// The job is stuck and needs `retry`; nothing changed.
    Stuck(Job),
    /// This delivery already queued the job: nothing changed (a redelivery has no second effect).
    Duplicate(Job),
}

impl EnqueueOutcome {
    /// The job after the call.
    pub fn job(&self) -> &Job {
        match self {
            EnqueueOutcome::Queued(j)
            | EnqueueOutcome::Updated(j)
            | EnqueueOutcome::AlreadyRunning(j)
            | EnqueueOutcome::Stuck(j)
            | EnqueueOutcome::Duplicate(j) => j,
        }
    }
}

/// One entry of a job's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: a GitHub login, `foreman`, or `foreman:<instance>` for a scheduler.
    pub actor: String,
    /// What happened: `enqueued`, `updated`, `claimed`, `succeeded`, `failed`, `expired`, `interrupted`,
    /// `released`, `cancelled`, `stuck`, `retry`, `ready`, `waiting`.
    pub action: String,
    /// The state before.
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// Why, in words.
    pub cause: String,
}

/// A job operation that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed; see [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No job for this issue.
    #[error("no job for {0}")]
    NotFound(IssueRef),
    /// The caller's claim is not the live claim on the job: it expired, was cancelled, or was reclaimed.
    #[error("the claim on {issue} is no longer held: {reason}")]
    ClaimNotHeld {
        /// The job's issue.
        issue: IssueRef,
        /// What happened to it.
        reason: &'static str,
    },
    /// The job is in a state where this action does not apply (e.g. `retry` of a running job).
    #[error("{issue} is {}: cannot {action}", state.as_str())]
    InvalidState {
        /// The job's issue.
        issue: IssueRef,
        /// Its state.
        state: JobState,
        /// The action refused.
        action: &'static str,
    },
}

impl From<sled::Error> for JobError {
    fn from(e: sled::Error) -> Self {
        JobError::Store(StoreError::Sled(e))
    }
}

pub(super) fn corrupt(what: &str) -> JobError {
    JobError::Store(StoreError::Corrupt(what.to_owned()))
}

/// Unix nanoseconds of `t`, clamped to u64 (times before 1970 become 0).
pub fn nanos(t: OffsetDateTime) -> u64 {
    t.unix_timestamp_nanos().clamp(0, u64::MAX as i128) as u64
}

/// The inverse of [`nanos`].
pub fn from_nanos(n: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(n as i128).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The store key of an issue: lower-cased `owner/name`, a zero byte, the number as u64 big-endian.
pub fn issue_key(repo: &RepoName, issue: IssueNumber) -> Vec<u8> {
    let mut k = repo_prefix(repo);
    k.extend_from_slice(&issue.0.to_be_bytes());
    k
}

/// The prefix every issue key of `repo` starts with.
pub fn repo_prefix(repo: &RepoName) -> Vec<u8> {
    let mut k = Vec::with_capacity(repo.owner().len() + repo.name().len() + 10);
    k.extend(repo.owner().bytes().map(|b| b.to_ascii_lowercase()));
    k.push(b'/');
    k.extend(repo.name().bytes().map(|b| b.to_ascii_lowercase()));
    k.push(0);
    k
}

/// The repository part (with its zero byte) of an issue key.
pub(super) fn key_repo_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

pub(super) fn time_key(t: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(key);
    k
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(raw: &[u8], what: &str) -> Result<T, JobError> {
    serde_json::from_slice(raw).map_err(|e| corrupt(&format!("{what}: {e}")))
}

/// The trees of the job store.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(super) jobs: sled::Tree,
    pub(super) ready: sled::Tree,
    pub(super) delayed: sled::Tree,
    pub(super) deps: sled::Tree,
    pub(super) issues: sled::Tree,
    pub(super) audit: sled::Tree,
    pub(super) audit_index: sled::Tree,
    pub(super) claims: sled::Tree,
    pub(super) failures: sled::Tree,
    pub(super) sessions: sled::Tree,
    pub(super) slots: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            jobs: db.open_tree("jobs")?,
            ready: db.open_tree("job_ready")?,
            delayed: db.open_tree("job_delayed")?,
            deps: db.open_tree("job_deps")?,
            issues: db.open_tree("issue_state")?,
            audit: db.open_tree("job_audit")?,
            audit_index: db.open_tree("job_audit_index")?,
            claims: db.open_tree("claims")?,
            failures: db.open_tree("failures")?,
            sessions: db.open_tree("sessions")?,
            slots: db.open_tree("slots")?,
        })
    }

    /// Runs `f` as one sled transaction over every job tree. sled retries `f` on conflict, so `f` must have
    /// no effect outside the transaction.
    pub(super) fn run<T>(&self, f: impl Fn(&Tx<'_>) -> Result<T, Abort>) -> Result<T, JobError> {
        let trees = (
            &self.jobs,
            &self.ready,
            &self.delayed,
            &self.deps,
            &self.audit,
            &self.audit_index,
            &self.claims,
            &self.failures,
            &self.sessions,
            &self.slots,
        );
        sled::Transactional::transaction(
            &trees,
            |(jobs, ready, delayed, deps, audit, audit_index, claims, failures, sessions, slots)| {
                f(&Tx { jobs, ready, delayed, deps, audit, audit_index, claims, failures, sessions, slots })
            },
        )
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        })
    }
}

/// The error type inside a transaction.
pub(super) type Abort = ConflictableTransactionError<JobError>;

/// Aborts a transaction with `e`.
pub(super) fn abort(e: JobError) -> Abort {
    ConflictableTransactionError::Abort(e)
}

/// The transactional views of every job tree.
pub(super) struct Tx<'a> {
    pub(super) jobs: &'a TransactionalTree,
    pub(super) ready: &'a TransactionalTree,
    pub(super) delayed: &'a TransactionalTree,
    pub(super) deps: &'a TransactionalTree,
    pub(super) audit: &'a TransactionalTree,
    pub(super) audit_index: &'a TransactionalTree,
    pub(super) claims: &'a TransactionalTree,
    pub(super) failures: &'a TransactionalTree,
    pub(super) sessions: &'a TransactionalTree,
    pub(super) slots: &'a TransactionalTree,
}

/// Whether a job record, as stored, may belong to a claimed job whose record was not rewritten at the
/// claim (see the module documentation): only such a record needs its claim looked up.
pub(super) fn may_be_claimed(job: &Job) -> bool {
    job.state == JobState::Queued && job.placement == Placement::Ready
}

/// Applies the live claim on a job to the job as stored when the claim left the record as it was (state
/// `queued`, placed ready): the job is running, in no index, one attempt further, in the claim's session.
/// A record already written as running is left alone, so applying twice changes nothing.
pub(super) fn apply_claim(job: &mut Job, claim: &Claim) {
    if job.state == JobState::Running {
        return;
    }
    job.state = JobState::Running;
    job.placement = Placement::None;
    job.not_before = None;
    job.attempts += 1;
    job.session = Some(claim.session.clone());
    job.updated_at = claim.claimed_at;
}

impl Tx<'_> {
    /// The job under `key` with its claim applied ([`apply_claim`]).
    pub(super) fn job(&self, key: &[u8]) -> Result<Option<Job>, Abort> {
        let Some(raw) = self.jobs.get(key)? else { return Ok(None) };
        let mut job: Job = decode(&raw, "job").map_err(abort)?;
        if may_be_claimed(&job)
            && let Some(raw) = self.claims.get(key)?
        {
            apply_claim(&mut job, &decode(&raw, "claim").map_err(abort)?);
        }
        Ok(Some(job))
    }

    /// Writes the job's record and, when it is ready to run, its run-order entry (the same bytes).
    pub(super) fn put_job(&self, key: &[u8], job: &Job) -> Result<(), Abort> {
        let raw = encode(job);
        if job.placement == Placement::Ready {
            self.ready.insert(&job.order_key().encode()[..], &raw[..])?;
        }
        self.jobs.insert(key, raw)?;
        Ok(())
    }

    pub(super) fn record(&self, key: &[u8], entry: AuditEntry) -> Result<(), Abort> {
        let id = self.audit.generate_id()?.to_be_bytes();
        let mut k = key.to_vec();
        k.extend_from_slice(&id);
        self.audit_index.insert(k, &[])?;
        self.audit.insert(&id, encode(&entry))?;
        Ok(())
    }

    /// Takes the job out of whichever index holds it.
    pub(super) fn unplace(&self, key: &[u8], job: &mut Job) -> Result<(), Abort> {
        match job.placement {
            Placement::None | Placement::Waiting => {}
            Placement::Ready => {
                self.ready.remove(&job.order_key().encode()[..])?;
            }
            Placement::Delayed { until } => {
                self.delayed.remove(time_key(until, key))?;
            }
        }
        job.placement = Placement::None;
        Ok(())
    }

    /// Puts a queued or failed job where it belongs at `now`: waiting on dependencies, delayed until
    /// `not_before`, or ready. A failed job whose backoff is over becomes queued again (audited). The caller
    /// then writes the job with [`Tx::put_job`], which writes a ready job's run-order entry.
    pub(super) fn place(&self, key: &[u8], job: &mut Job, now: OffsetDateTime) -> Result<(), Abort> {
        debug_assert_eq!(job.placement, Placement::None);
        if !matches!(job.state, JobState::Queued | JobState::Failed) {
            return Ok(());
        }
        if !job.waiting_on.is_empty() {
            job.placement = Placement::Waiting;
            return Ok(());
        }
        if let Some(t) = job.not_before.filter(|t| *t > now) {
            let until = nanos(t);
            self.delayed.insert(time_key(until, key), &[])?;
            job.placement = Placement::Delayed { until };
            return Ok(());
        }
        job.not_before = None;
        if job.state == JobState::Failed {
            job.state = JobState::Queued;
            self.record(key, entry(now, "foreman", "ready", Some(JobState::Failed), JobState::Queued, "backoff over"))?;
        }
        // The run-order entry is written by the `put_job` that follows (with the job as it is then).
        job.placement = Placement::Ready;
        Ok(())
    }
}

pub(super) fn entry(
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    from: Option<JobState>,
    to: JobState,
    cause: &str,
) -> AuditEntry {
    AuditEntry { at, actor: actor.to_owned(), action: action.to_owned(), from, to, cause: cause.to_owned() }
}

/// A job with its claim, position and audit trail, as `GET /api/jobs/{owner}/{repo}/{issue}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// 1-based position among runnable jobs, when it is runnable now.
    pub position: Option<u64>,
    /// The live claim, when running.
    pub claim: Option<Claim>,
    /// Every transition, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// A queued job in [`JobsStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedJob {
    /// 1-based position in run order; `None` for a job that waits (backoff, rate limit, dependency).
    pub position: Option<u64>,
    /// `owner/name`.
    pub repo: RepoName,
    /// Issue number.
    pub issue: IssueNumber,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: JobKind,
    /// `queued` or `failed` (in backoff).
    pub state: JobState,
    /// Priority rank, 0 highest.
    pub priority: u8,
    /// Phase key.
    pub phase: PhaseKey,
    /// Counted failures.
    pub failures: u32,
    /// When queued.
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    /// Not before this time (backoff, rate limit).
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// Open dependencies it waits on.
    pub waiting_on: Vec<IssueRef>,
}

/// A running job in [`JobsStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningJob {
    /// `owner/name`.
    pub repo: RepoName,
    /// Issue number.
    pub issue: IssueNumber,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: JobKind,
    /// The claim, with its owner and expiry.
    pub claim: Claim,
}

/// A stuck job in [`JobsStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StuckJob {
    /// `owner/name`.
    pub repo: RepoName,
    /// Issue number.
    pub issue: IssueNumber,
    /// Title.
    pub title: String,
    /// Why.
    pub reason: Option<String>,
    /// Failures by class.
    pub failures: FailureCounts,
}

/// `GET /api/status`: queued jobs with their positions, running jobs with claim expiry, stuck jobs, recent
/// failures, and counts by state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsStatus {
    /// When this was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<String, u64>,
    /// Runnable jobs in run order (at most `limit`), then waiting ones (at most `limit`).
    pub queued: Vec<QueuedJob>,
    /// Whether `queued` was cut at the limit.
    pub queued_truncated: bool,
    /// Running jobs.
    pub running: Vec<RunningJob>,
    /// Stuck jobs (at most `limit`).
    pub stuck: Vec<StuckJob>,
    /// The most recent failures, newest first (at most `limit`).
    pub recent_failures: Vec<Failure>,
}

/// Only the fields of a job the counts need; serde skips the rest cheaply.
#[derive(Deserialize)]
struct StateOnly {
    state: JobState,
}

impl Store {
    pub(super) fn job_trees(&self) -> &Trees {
        &self.inner.jobs
    }

    /// Queues a run of an issue, or refreshes a queued one; see [`EnqueueOutcome`] for every case.
    ///
    /// A job that succeeded or was cancelled starts a fresh run: its failure counts reset and its age
    /// restarts. Dependencies not known to be closed ([`Store::record_issue_state`]) keep it waiting; when
    /// that wait would close a cycle of waiting jobs, every job on the cycle becomes stuck with the cycle
    /// as its reason. Not flushed: a crash before the next group flush loses the enqueue, and the inbox,
    /// whose delivery is not yet marked processed, queues it again.
    pub fn enqueue_job(&self, new: NewJob, now: OffsetDateTime) -> Result<EnqueueOutcome, JobError> {
        let t = self.job_trees();
        let key = issue_key(&new.repo, new.issue);
        let mut waiting_on = Vec::new();
        for dep in &new.depends_on {
            if t.issues.get(issue_key(&dep.repo, dep.issue))?.as_deref() != Some(b"closed") {
                waiting_on.push(dep.clone());
            }
        }
        let outcome = t.run(|tx| {
            let existing = tx.job(&key)?;
            if let (Some(job), Some(d)) = (&existing, &new.delivery)
                && job.deliveries.contains(d)
            {
                return Ok(EnqueueOutcome::Duplicate(job.clone()));
            }
            let remember = |job: &mut Job| {
                if let Some(d) = &new.delivery {
                    job.deliveries.push(d.clone());
                    let excess = job.deliveries.len().saturating_sub(REMEMBERED_DELIVERIES);
                    job.deliveries.drain(..excess);
                }
            };
            match existing {
                Some(mut job) if job.state == JobState::Running || job.state == JobState::Stuck => {
                    remember(&mut job);
                    tx.put_job(&key, &job)?;
                    Ok(if job.state == JobState::Running {
                        EnqueueOutcome::AlreadyRunning(job)
                    } else {
                        EnqueueOutcome::Stuck(job)
                    })
                }
                Some(mut job) if matches!(job.state, JobState::Queued | JobState::Failed) => {
                    tx.unplace(&key, &mut job)?;
                    set_deps(tx, &key, &job.depends_on, &new.depends_on)?;
                    job.kind = new.kind;
                    job.title.clone_from(&new.title);
                    job.labels.clone_from(&new.labels);
                    job.priority = new.priority;
                    job.phase = new.phase;
                    job.installation = new.installation.or(job.installation);
                    job.depends_on.clone_from(&new.depends_on);
                    job.waiting_on.clone_from(&waiting_on);
                    job.trigger.clone_from(&new.trigger);
                    job.requester.clone_from(&new.requester);
                    job.instructions.clone_from(&new.instructions);
                    job.updated_at = now;
                    remember(&mut job);
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(&key, entry(now, &new.actor, "updated", Some(job.state), job.state, &new.cause))?;
                    Ok(EnqueueOutcome::Updated(job))
                }
                existing => {
                    let from = existing.as_ref().map(|j| j.state);
                    let old_deps = existing.as_ref().map(|j| j.depends_on.clone()).unwrap_or_default();
                    set_deps(tx, &key, &old_deps, &new.depends_on)?;
                    let mut job = Job {
                        repo: new.repo.clone(),
                        issue: new.issue,
                        installation: new.installation,
                        kind: new.kind,
                        state: JobState::Queued,
                        title: new.title.clone(),
                        labels: new.labels.clone(),
                        priority: new.priority,
                        phase: new.phase,
                        depends_on: new.depends_on.clone(),
                        waiting_on: waiting_on.clone(),
                        seq: tx.jobs.generate_id()?,
                        enqueued_at: now,
                        updated_at: now,
                        not_before: None,
                        failures: FailureCounts::default(),
                        last_failure: None,
                        attempts: 0,
                        stuck_reason: None,
                        trigger: new.trigger.clone(),
                        requester: new.requester.clone(),
                        instructions: new.instructions.clone(),
                        session: existing.as_ref().and_then(|j| j.session.clone()),
                        deliveries: existing.map(|j| j.deliveries).unwrap_or_default(),
                        placement: Placement::None,
                    };
                    remember(&mut job);
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(&key, entry(now, &new.actor, "enqueued", from, JobState::Queued, &new.cause))?;
                    Ok(EnqueueOutcome::Queued(job))
                }
            }
        })?;
        if let EnqueueOutcome::Queued(job) | EnqueueOutcome::Updated(job) = &outcome
            && job.placement == Placement::Waiting
            && let Some(cycle) = self.find_cycle(&job.issue_ref())?
        {
            self.set_cycle_stuck(&cycle, now)?;
            let job = self.job(&job.repo, job.issue)?.ok_or_else(|| JobError::NotFound(job.issue_ref()))?;
            return Ok(EnqueueOutcome::Stuck(job));
        }
        Ok(outcome)
    }

    /// A job, or `None` when the issue was never queued.
    pub fn job(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<Job>, JobError> {
        let t = self.job_trees();
        let key = issue_key(repo, issue);
        let Some(raw) = t.jobs.get(&key)? else { return Ok(None) };
        let mut job: Job = decode(&raw, "job")?;
        if may_be_claimed(&job)
            && let Some(raw) = t.claims.get(&key)?
        {
            apply_claim(&mut job, &decode(&raw, "claim")?);
        }
        Ok(Some(job))
    }

    /// Every live claim keyed by job key, for the scans that apply claims to many jobs.
    pub(super) fn claims_by_key(&self) -> Result<std::collections::HashMap<sled::IVec, Claim>, JobError> {
        let mut out = std::collections::HashMap::new();
        for item in self.job_trees().claims.iter() {
            let (k, raw) = item?;
            out.insert(k, decode(&raw, "claim")?);
        }
        Ok(out)
    }

    /// The job's 1-based position in the run order, when it is ready to run (`None` when running, waiting or
    /// finished). Counts the ready jobs ahead of it: O(position).
    pub fn queue_position(&self, job: &Job) -> Result<Option<u64>, JobError> {
        if job.placement != Placement::Ready {
            return Ok(None);
        }
        Ok(Some(self.job_trees().ready.range(..job.order_key().encode()).count() as u64 + 1))
    }

    /// A job with its claim, position and full audit trail.
    pub fn job_detail(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<JobDetail>, JobError> {
        let t = self.job_trees();
        let Some(job) = self.job(repo, issue)? else { return Ok(None) };
        let key = issue_key(repo, issue);
        let claim = match t.claims.get(&key)? {
            Some(raw) => Some(decode(&raw, "claim")?),
            None => None,
        };
        let position = if job.placement == Placement::Ready {
            Some(t.ready.range(..job.order_key().encode()).count() as u64 + 1)
        } else {
            None
        };
        let mut audit = Vec::new();
        for k in t.audit_index.scan_prefix(&key).keys() {
            let k = k?;
            if let Some(raw) = t.audit.get(&k[key.len()..])? {
                audit.push(decode(&raw, "audit entry")?);
            }
        }
        Ok(Some(JobDetail { job, position, claim, audit }))
    }

    /// Cancels a job that is queued, in backoff or running. A running job's claim is released at once, so
    /// its slot is free for the next job; the returned session id is the one the caller must stop.
    /// Cancelling a finished or stuck job changes nothing and returns `Ok(None)`.
    ///
    /// Errors: [`JobError::NotFound`] when the issue was never queued.
    pub fn cancel_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Job, Option<SessionId>)>, JobError> {
        let key = issue_key(repo, issue);
        let issue_ref = IssueRef { repo: repo.clone(), issue };
        self.job_trees().run(|tx| {
            let mut job = tx.job(&key)?.ok_or_else(|| abort(JobError::NotFound(issue_ref.clone())))?;
            let from = job.state;
            let mut stop = None;
            match from {
                JobState::Queued | JobState::Failed => tx.unplace(&key, &mut job)?,
                JobState::Running => {
                    if let Some(claim) =
                        self.release_claim_tx(tx, &key, &job, super::sessions::SessionState::Cancelled, now)?
                    {
                        stop = Some(claim.session);
                    }
                }
                JobState::Succeeded | JobState::Cancelled | JobState::Stuck => return Ok(None),
            }
            job.state = JobState::Cancelled;
            job.not_before = None;
            job.updated_at = now;
            tx.put_job(&key, &job)?;
            tx.record(&key, entry(now, actor, "cancelled", Some(from), JobState::Cancelled, cause))?;
            Ok(Some((job, stop)))
        })
    }

    /// `retry`: resets the failure counts and queues the job again, whatever its state, unless it is running.
    ///
    /// Errors: [`JobError::NotFound`]; [`JobError::InvalidState`] for a running job.
    pub fn retry_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Job, JobError> {
        let key = issue_key(repo, issue);
        let issue_ref = IssueRef { repo: repo.clone(), issue };
        let job = self.job_trees().run(|tx| {
            let mut job = tx.job(&key)?.ok_or_else(|| abort(JobError::NotFound(issue_ref.clone())))?;
            let from = job.state;
            if from == JobState::Running {
                return Err(abort(JobError::InvalidState { issue: issue_ref.clone(), state: from, action: "retry" }));
            }
            tx.unplace(&key, &mut job)?;
            job.failures = FailureCounts::default();
            job.not_before = None;
            job.stuck_reason = None;
            job.state = JobState::Queued;
            job.updated_at = now;
            tx.place(&key, &mut job, now)?;
            tx.put_job(&key, &job)?;
            tx.record(&key, entry(now, actor, "retry", Some(from), JobState::Queued, cause))?;
            Ok(job)
        })?;
        if job.placement == Placement::Waiting
            && let Some(cycle) = self.find_cycle(&job.issue_ref())?
        {
            self.set_cycle_stuck(&cycle, now)?;
            return self.job(repo, issue)?.ok_or(JobError::NotFound(issue_ref_of(&job)));
        }
        Ok(job)
    }

    /// Records that an issue is open or closed, as an event or a lookup told Foreman. Closing releases the
    /// jobs that wait on it (the last open dependency makes them runnable); reopening makes queued
    /// dependents wait again. Returns how many jobs changed.
    pub fn record_issue_state(&self, dep: &IssueRef, open: bool, now: OffsetDateTime) -> Result<usize, JobError> {
        let t = self.job_trees();
        let dep_key = issue_key(&dep.repo, dep.issue);
        t.issues.insert(&dep_key, if open { &b"open"[..] } else { &b"closed"[..] })?;
        let mut changed = 0;
        for k in t.deps.scan_prefix(&dep_key).keys() {
            let k = k?;
            let job_key = k[dep_key.len()..].to_vec();
            let did = t.run(|tx| {
                let Some(mut job) = tx.job(&job_key)? else { return Ok(false) };
                if !matches!(job.state, JobState::Queued | JobState::Failed) {
                    return Ok(false);
                }
                let was_waiting = job.waiting_on.contains(dep);
                if open == was_waiting {
                    return Ok(false);
                }
                tx.unplace(&job_key, &mut job)?;
                if open {
                    job.waiting_on.push(dep.clone());
                } else {
                    job.waiting_on.retain(|d| d != dep);
                }
                tx.place(&job_key, &mut job, now)?;
                let (action, cause) = if open {
                    ("waiting", format!("dependency {dep} reopened"))
                } else {
                    ("dependency", format!("dependency {dep} closed"))
                };
                job.updated_at = now;
                tx.put_job(&job_key, &job)?;
                tx.record(&job_key, entry(now, "foreman", action, Some(job.state), job.state, &cause))?;
                Ok(true)
            })?;
            changed += usize::from(did);
        }
        Ok(changed)
    }

    /// Dependencies of waiting jobs whose state Foreman does not know (no event or lookup recorded yet),
    /// at most `limit`: the caller looks them up on GitHub and reports them with
    /// [`Store::record_issue_state`].
    pub fn unknown_dependencies(&self, limit: usize) -> Result<Vec<IssueRef>, JobError> {
        let t = self.job_trees();
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for k in t.deps.iter().keys() {
            let k = k?;
            // A dependency key is an issue key: repo, zero byte, 8 bytes of number.
            let Some(zero) = k.iter().position(|b| *b == 0) else { continue };
            let dep = &k[..zero + 9];
            if last.as_deref() == Some(dep) || t.issues.contains_key(dep)? {
                continue;
            }
            last = Some(dep.to_vec());
            if let Some(r) = decode_issue_key(dep) {
                out.push(r);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every live job: queued (runnable, delayed or waiting on dependencies), running, or failed and in
    /// backoff, in key order (repository, then issue number). Read-only.
    ///
    /// Reads every job record (about 1 µs each, decoding the state alone for finished jobs), so this costs
    /// O(jobs); it serves the periodic reconciliation pass, not the scheduler.
    pub fn live_jobs(&self) -> Result<Vec<Job>, JobError> {
        let claims = self.claims_by_key()?;
        let mut out = Vec::new();
        for item in self.job_trees().jobs.iter() {
            let (key, raw) = item?;
            let s: StateOnly = decode(&raw, "job")?;
            if matches!(s.state, JobState::Queued | JobState::Running | JobState::Failed) {
                let mut job: Job = decode(&raw, "job")?;
                if may_be_claimed(&job)
                    && let Some(claim) = claims.get(&key)
                {
                    apply_claim(&mut job, claim);
                }
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Looks for a cycle of waiting jobs through `start`: `Some(path)` with `start` first and last.
    fn find_cycle(&self, start: &IssueRef) -> Result<Option<Vec<IssueRef>>, JobError> {
        // Depth-first over waiting jobs; graphs are small (a job's declared dependencies).
        let mut stack: Vec<(IssueRef, Vec<IssueRef>)> = vec![(start.clone(), vec![start.clone()])];
        let start_key = issue_key(&start.repo, start.issue);
        let mut seen = HashSet::new();
        while let Some((node, path)) = stack.pop() {
            let Some(job) = self.job(&node.repo, node.issue)? else { continue };
            if job.placement != Placement::Waiting {
                continue;
            }
            for dep in &job.waiting_on {
                let dep_key = issue_key(&dep.repo, dep.issue);
                if dep_key == start_key {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    return Ok(Some(cycle));
                }
                if seen.insert(dep_key) {
                    let mut p = path.clone();
                    p.push(dep.clone());
                    stack.push((dep.clone(), p));
                }
            }
        }
        Ok(None)
    }

    fn set_cycle_stuck(&self, cycle: &[IssueRef], now: OffsetDateTime) -> Result<(), JobError> {
        let reason =
            format!("dependency cycle: {}", cycle.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → "));
        for r in &cycle[..cycle.len() - 1] {
            let key = issue_key(&r.repo, r.issue);
            self.job_trees().run(|tx| {
                let Some(mut job) = tx.job(&key)? else { return Ok(()) };
                if job.placement != Placement::Waiting {
                    return Ok(());
                }
                let from = job.state;
                tx.unplace(&key, &mut job)?;
                job.state = JobState::Stuck;
                job.stuck_reason = Some(reason.clone());
                job.updated_at = now;
                tx.put_job(&key, &job)?;
                tx.record(&key, entry(now, "foreman", "stuck", Some(from), JobState::Stuck, &reason))
            })?;
        }
        Ok(())
    }

    /// Visibility: counts by state and the jobs people ask about; each list holds at most `limit` entries.
    ///
    /// Counting reads every job record (about 1 µs each), so this costs O(jobs); it serves an admin
    /// endpoint, not the scheduler.
    pub fn jobs_status(&self, now: OffsetDateTime, limit: usize) -> Result<JobsStatus, JobError> {
        let t = self.job_trees();
        let mut counts: BTreeMap<String, u64> = JobState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        let mut stuck = Vec::new();
        let mut waiting = Vec::new();
        for raw in t.jobs.iter().values() {
            let raw = raw?;
            let s: StateOnly = decode(&raw, "job")?;
            *counts.entry(s.state.as_str().to_owned()).or_default() += 1;
            match s.state {
                JobState::Stuck if stuck.len() < limit => {
                    let job: Job = decode(&raw, "job")?;
                    stuck.push(StuckJob {
                        repo: job.repo,
                        issue: job.issue,
                        title: job.title,
                        reason: job.stuck_reason,
                        failures: job.failures,
                    });
                }
                JobState::Queued | JobState::Failed if waiting.len() < limit => {
                    let job: Job = decode(&raw, "job")?;
                    if job.placement != Placement::Ready {
                        waiting.push(queued_entry(&job, None));
                    }
                }
                _ => {}
            }
        }
        // A claimed job's record may still read `queued` (see the module documentation): count it running.
        for (k, _) in t.claims.iter().flatten() {
            if let Some(raw) = t.jobs.get(&k)? {
                let s: StateOnly = decode(&raw, "job")?;
                if s.state != JobState::Running {
                    *counts.entry(s.state.as_str().to_owned()).or_default() -= 1;
                    *counts.entry(JobState::Running.as_str().to_owned()).or_default() += 1;
                }
            }
        }
        let mut queued = Vec::new();
        for (i, v) in t.ready.iter().values().enumerate().take(limit) {
            queued.push(queued_entry(&decode(&v?, "job")?, Some(i as u64 + 1)));
        }
        let ready_total = counts.get("queued").copied().unwrap_or(0) + counts.get("failed").copied().unwrap_or(0);
        let queued_truncated = ready_total as usize > queued.len() + waiting.len();
        queued.extend(waiting);
        let mut running = Vec::new();
        for (k, raw) in t.claims.iter().flatten() {
            let claim: Claim = decode(&raw, "claim")?;
            if let Some(job) = t.jobs.get(&k)? {
                let mut job: Job = decode(&job, "job")?;
                apply_claim(&mut job, &claim);
                running.push(RunningJob { repo: job.repo, issue: job.issue, title: job.title, kind: job.kind, claim });
            }
        }
        let recent_failures = t
            .failures
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|raw| decode(&raw?, "failure"))
            .collect::<Result<_, _>>()?;
        Ok(JobsStatus { now, counts, queued, queued_truncated, running, stuck, recent_failures })
    }
}

fn issue_ref_of(job: &Job) -> IssueRef {
    job.issue_ref()
}

fn queued_entry(job: &Job, position: Option<u64>) -> QueuedJob {
    QueuedJob {
        position,
        repo: job.repo.clone(),
        issue: job.issue,
        title: job.title.clone(),
        kind: job.kind,
        state: job.state,
        priority: job.priority,
        phase: job.phase,
        failures: job.failures.counted(),
        enqueued_at: job.enqueued_at,
        not_before: job.not_before,
        waiting_on: job.waiting_on.clone(),
    }
}

/// Replaces a job's entries in the reverse dependency index.
fn set_deps(tx: &Tx<'_>, key: &[u8], old: &[IssueRef], new: &[IssueRef]) -> Result<(), Abort> {
    for d in old {
        let mut k = issue_key(&d.repo, d.issue);
        k.extend_from_slice(key);
        tx.deps.remove(k)?;
    }
    for d in new {
        let mut k = issue_key(&d.repo, d.issue);
        k.extend_from_slice(key);
        tx.deps.insert(k, &[])?;
    }
    Ok(())
}

/// Schema 1 → 2: every `job_ready` entry that holds a job key gets the job's record instead. An entry
/// whose job is gone is dropped (it could only have pointed at nothing). Idempotent.
pub(super) fn migrate_ready_copies(db: &sled::Db) -> Result<(), StoreError> {
    let ready = db.open_tree("job_ready")?;
    let jobs = db.open_tree("jobs")?;
    for item in ready.iter() {
        let (k, v) = item?;
        if v.first() == Some(&b'{') {
            continue;
        }
        match jobs.get(&v)? {
            Some(raw) => ready.insert(k, raw)?,
            None => ready.remove(k)?,
        };
    }
    Ok(())
}

/// Decodes an issue key back into a reference (lower-cased repository name).
pub(super) fn decode_issue_key(k: &[u8]) -> Option<IssueRef> {
    let split = k.len().checked_sub(9)?;
    if k[split] != 0 {
        return None;
    }
    let repo = std::str::from_utf8(&k[..split]).ok()?.parse().ok()?;
    let issue = IssueNumber(u64::from_be_bytes(k[split + 1..].try_into().ok()?));
    Some(IssueRef { repo, issue })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn new_job(issue: u64) -> NewJob {
        NewJob {
            repo: "Octo/Repo".parse().unwrap(),
            issue: IssueNumber(issue),
            installation: None,
            kind: JobKind::Code,
            title: format!("issue {issue}"),
            labels: vec![],
            priority: 2,
            phase: PhaseKey::None,
            depends_on: vec![],
            trigger: None,
            requester: None,
            instructions: None,
            delivery: None,
            actor: "octocat".into(),
            cause: "test".into(),
        }
    }

    #[test]
    fn schema_1_run_order_entries_become_copies_of_the_job_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { cache_bytes: 1 << 20 };
        let now = OffsetDateTime::now_utc();
        {
            let store = Store::open(dir.path(), &options).unwrap();
            for n in 1..=3 {
                store.enqueue_job(new_job(n), now).unwrap();
            }
            // Write the run-order index as schema 1 did: order key → job key; one entry points at nothing.
            let t = store.job_trees();
            for item in t.ready.iter() {
                let (k, raw) = item.unwrap();
                let job: Job = decode(&raw, "job").unwrap();
                t.ready.insert(k, issue_key(&job.repo, job.issue)).unwrap();
            }
            t.ready.insert([0xff; 30], &b"gone/gone\0\0\0\0\0\0\0\0\x09"[..]).unwrap();
            store.db().open_tree("meta").unwrap().insert("schema_version", &1u64.to_be_bytes()).unwrap();
        }
        let store = Store::open(dir.path(), &options).unwrap();
        assert_eq!(store.check_job_invariants().unwrap(), Vec::<String>::new());
        assert_eq!(store.job_trees().ready.len(), 3);
        let version = store.db().open_tree("meta").unwrap().get("schema_version").unwrap().unwrap();
        assert_eq!(version.as_ref(), &crate::store::SCHEMA_VERSION.to_be_bytes());
    }
}
