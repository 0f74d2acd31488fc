//! The store behind ports: the inbox ([`Inbox`]) and the job store ([`JobStore`]), with what both share
//! ([`Durable`]) and their errors. The rules a job store obeys live in [`crate::job`] as pure functions; a
//! backend keeps the records and applies the rules inside its own transactions.
//!
//! One backend today, [`sled`] (an embedded database in the data directory), the only code that names sled.
//! [`Store`] is that backend's handle; code that needs only the ports may be generic over them. A second
//! backend implements the three traits and passes the conformance suite in `tests/store_conformance/`,
//! which the sled backend passes too (`tests/store_sled.rs`).

pub mod inbox;
pub mod sled;

use std::future::Future;

use bytes::Bytes;
use time::OffsetDateTime;

pub use self::inbox::{DeliveryMeta, DeliveryRecord, DeliveryState, NewDelivery, PutOutcome};
pub use self::sled::{SCHEMA_VERSION, SledStore as Store, StoreOptions};
use crate::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use crate::job::{
    Claim, ClaimOwner, Claimed, Due, EnqueueOutcome, Expired, Failure, IssueRef, Job, JobDetail, JobState, JobsStatus,
    Limits, NewJob, Outcome, PushIntent, PushRecord, Recovery, ReportRecord, SessionId, SessionRecord, Slots, Usage,
};

/// A store operation that failed. Callers answer 503 to GitHub for these, so the delivery can be redelivered.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an I/O or corruption error.
    #[error("store: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The writer has stopped (the store is closing).
    #[error("store is closed")]
    Closed,
    /// The data on disk is not what this version of Foreman can read.
    #[error("store: {0}")]
    Corrupt(String),
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

/// What every store port shares: durability and a writability probe.
pub trait Durable: Clone + Send + Sync + 'static {
    /// Waits until every write made before this call is durable (survives `kill -9`).
    fn sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the store takes writes: a small durable write. Used by `/readyz`.
    fn check_writable(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The durable inbox: deliveries stored before GitHub is answered, deduplicated by id, then processed in
/// arrival order and marked with their final state.
pub trait Inbox: Durable {
    /// Stores a delivery durably unless one with the same id is stored; returns after the write is durable.
    /// Sequence numbers grow with arrival.
    fn put_delivery(&self, delivery: NewDelivery) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;
    /// A stored delivery's metadata and processing state; `None` for an id never stored (or pruned).
    fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError>;
    /// Up to `limit` stored deliveries, newest first, received before the one under `before` (exclusive)
    /// when given, whatever their state: one page of the console's deliveries view.
    fn recent_deliveries(&self, before: Option<u64>, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// The raw (decompressed) body stored under `seq`; `None` when gone.
    fn delivery_body(&self, seq: u64) -> Result<Option<(DeliveryMeta, Bytes)>, StoreError>;
    /// Up to `limit` sequence numbers of deliveries without a final state, oldest first, after `after`.
    fn pending_deliveries(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError>;
    /// How many deliveries wait in the inbox.
    fn inbox_depth(&self) -> usize;
    /// Waits until a new delivery may be in the inbox (spurious wake-ups are possible).
    fn inbox_changed(&self) -> impl Future<Output = ()> + Send;
    /// Returns when fewer than [`inbox::BURST_PUTS`] deliveries are being stored.
    fn ingest_lull(&self) -> impl Future<Output = ()> + Send;
    /// Takes the delivery under `seq` out of the inbox with its final state (processed or dead).
    fn finish_delivery(&self, seq: u64, state: &DeliveryState) -> Result<(), StoreError>;
    /// Removes deliveries received before `cutoff` that have a final state; returns how many.
    fn prune_deliveries(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError>;
    /// How far GitHub's delivery log was read in poll mode: the newest log entry id read; `None` before the
    /// first read.
    fn delivery_log_position(&self) -> Result<Option<u64>, StoreError>;
    /// Records how far the delivery log was read; returns once the write is durable.
    fn set_delivery_log_position(&self, id: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The job store: one job per (repository, issue), their run order, dependencies, claims, failure ledger,
/// sessions and audit trail. Every change to a job is atomic with its index entries, claim, slot counters,
/// session record and audit entry; the rules are [`crate::job`]'s.
pub trait JobStore: Durable {
    /// Queues a run of an issue, or refreshes a queued one, at rank `priority`; `actor` for the audit trail.
    fn enqueue_job(
        &self,
        new: &NewJob,
        priority: u8,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<EnqueueOutcome, JobError>;
    /// A job with its claim applied, or `None` when the issue was never queued.
    fn job(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<Job>, JobError>;
    /// The job's 1-based position in run order when it is ready to run.
    fn queue_position(&self, job: &Job) -> Result<Option<u64>, JobError>;
    /// A job with its claim, position and audit trail.
    fn job_detail(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<JobDetail>, JobError>;
    /// Cancels a queued, delayed or running job; returns it and the session to stop. `Ok(None)` for a
    /// finished or stuck job; [`JobError::NotFound`] for an issue never queued.
    fn cancel_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Job, Option<SessionId>)>, JobError>;
    /// `retry`: resets the failure counts and queues the job again unless it runs.
    fn retry_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Job, JobError>;
    /// Re-places a queued job after its issue's title or labels changed ([`crate::store::sled::Store::reorder_job`]).
    fn reorder_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        title: &str,
        labels: &[String],
        priority: u8,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError>;
    /// Records that an issue is open or closed; releases or holds its dependents. Returns how many changed.
    fn record_issue_state(&self, dep: &IssueRef, open: bool, now: OffsetDateTime) -> Result<usize, JobError>;
    /// Changes the "blocked by" links of an issue's queued (or failed) job and re-places it; the job when
    /// its links changed. A wait that closes a cycle makes the jobs on it stuck.
    fn update_blocked_by(
        &self,
        issue: &IssueRef,
        change: &crate::job::LinkChange,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError>;
    /// Records that `sub` is a sub-issue of `parent` (`Some`), or of none (`None`).
    fn set_parent(&self, sub: &IssueRef, parent: Option<&IssueRef>) -> Result<(), JobError>;
    /// The parent `sub` was last recorded under.
    fn parent_of(&self, sub: &IssueRef) -> Result<Option<IssueRef>, JobError>;
    /// The jobs that depend on an issue (declared or linked), whatever their state.
    fn dependents(&self, issue: &IssueRef) -> Result<Vec<Job>, JobError>;
    /// Dependencies of waiting jobs whose state is not known yet, at most `limit`.
    fn unknown_dependencies(&self, limit: usize) -> Result<Vec<IssueRef>, JobError>;
    /// Every queued, running or failed job, in key order.
    fn live_jobs(&self) -> Result<Vec<Job>, JobError>;
    /// Counts by state and the jobs people ask about, each list at most `limit` long.
    fn jobs_status(&self, now: OffsetDateTime, limit: usize) -> Result<JobsStatus, JobError>;
    /// Claims the first runnable job in run order that fits `limits` and whose installation `admit`
    /// accepts, until `now + claim_ttl`; reaps expired claims and ends backoffs first.
    fn claim_next_admitting(
        &self,
        owner: &ClaimOwner,
        limits: &dyn Limits,
        now: OffsetDateTime,
        admit: &dyn Fn(InstallationId) -> bool,
    ) -> Result<Option<Claimed>, JobError>;
    /// Renews a live claim until `now + claim_ttl`; [`JobError::ClaimNotHeld`] when it is not live.
    fn heartbeat(&self, claim: &Claim, limits: &dyn Limits, now: OffsetDateTime) -> Result<OffsetDateTime, JobError>;
    /// Ends a live claim with the session's outcome and moves the job on by the ledger's rule.
    fn finish_job(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        limits: &dyn Limits,
        now: OffsetDateTime,
        jitter: f64,
    ) -> Result<Job, JobError>;
    /// Expires every claim whose time-to-live ended at or before `now`.
    fn expire_claims(&self, limits: &dyn Limits, now: OffsetDateTime) -> Result<Vec<Expired>, JobError>;
    /// Moves jobs whose not-before time has come into the run order; returns how many.
    fn promote_due(&self, now: OffsetDateTime) -> Result<usize, JobError>;
    /// The earliest time something becomes due (a backoff ends or a claim expires).
    fn next_due(&self) -> Result<Option<OffsetDateTime>, JobError>;
    /// Crash recovery: claims of owners not in `live` are released and their jobs queued again.
    fn recover_claims(&self, live: &[&str], now: OffsetDateTime) -> Result<Recovery, JobError>;
    /// The slot counters.
    fn slots(&self) -> Result<Slots, JobError>;
    /// Every live claim, in job-key order.
    fn claims(&self) -> Result<Vec<Claim>, JobError>;
    /// Every disagreement between the store's records (empty when consistent). Reads everything.
    fn check_job_invariants(&self) -> Result<Vec<String>, StoreError>;
    /// Records the GitHub Actions workflow run a session was dispatched as (the Actions executor); false
    /// for an unknown session.
    fn record_session_run(&self, id: &SessionId, run: &crate::job::sessions::RemoteRun) -> Result<bool, JobError>;
    /// Records what a session cost, US dollars; false for an unknown session.
    fn record_session_cost(&self, id: &SessionId, cost_usd: f64) -> Result<bool, JobError>;
    /// `repo`'s sessions started at or after `since` and their summed cost.
    fn repo_usage(&self, repo: &RepoName, since: OffsetDateTime) -> Result<Usage, JobError>;
    /// A session record, or `None` for an unknown id.
    fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, JobError>;
    /// Up to `limit` sessions that have ended (any state but running), most recently started first.
    fn recent_sessions(&self, limit: usize) -> Result<Vec<SessionRecord>, JobError>;
    /// Every session of `repo#issue` (one per claim), oldest first; empty for an issue never claimed.
    fn job_sessions(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<SessionRecord>, JobError>;
    /// Every failure of `repo#issue` in the failure ledger, oldest first, including those a `retry` stopped
    /// counting ([`crate::job::failures::counted`] tells which still count).
    fn job_failures(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<Failure>, JobError>;
    /// What Foreman pushed for `repo#issue` ([`PushRecord`]: the branch, its heads Foreman made, a pending
    /// push), or `None` when it recorded no push for it.
    fn push_record(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<PushRecord>, JobError>;
    /// Records that run `intent.seq` is about to push `intent.sha` as `branch`'s head
    /// ([`PushRecord::intend`]; `own`: every commit on the branch since the default branch is Foreman's);
    /// returns the record. Durable after the next [`Durable::sync`], which the caller awaits before pushing.
    fn record_push_intent(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        branch: &str,
        intent: &PushIntent,
        own: bool,
    ) -> Result<PushRecord, JobError>;
    /// Settles run `seq`'s pending push in `repo` once its outcome is recorded ([`PushRecord::settle`]),
    /// whichever issue's record holds it; nothing recorded is fine.
    fn settle_push(&self, repo: &RepoName, seq: u64) -> Result<(), JobError>;
}

/// What GitHub was told of each job: the newest state report of a job ([`ReportRecord`]) and the version
/// GitHub took, so reports survive a crash and the jobs GitHub is behind on are known at start. The rule
/// is [`crate::job::reports::due`]. Writes are made durable by the next [`Durable::sync`].
pub trait Reports: Durable {
    /// Stores `record` as its job's newest report, keeping the applied version already recorded; `Ok(false)`
    /// (nothing written) when a newer version is stored.
    fn put_report(&self, record: &ReportRecord) -> Result<bool, JobError>;
    /// Records that GitHub took the report of `version` (showing `state`); an older version changes nothing.
    fn report_applied(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        version: u64,
        state: JobState,
    ) -> Result<(), JobError>;
    /// The job's stored report, or `None`.
    fn report(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<ReportRecord>, JobError>;
    /// Up to `limit` jobs GitHub is behind on, in job-key order, with their stored reports and how to report
    /// each again ([`crate::job::reports::due`]).
    fn reports_due(&self, limit: usize) -> Result<Vec<(Job, Option<ReportRecord>, Due)>, JobError>;
}
