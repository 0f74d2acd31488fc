//! The sled store as the store ports: every trait method is the inherent method of the same name, so code
//! holding a [`SledStore`] needs no trait in scope.

use std::future::Future;

use bytes::Bytes;
use time::OffsetDateTime;

use super::SledStore;
use crate::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use crate::job::{
    Claim, ClaimOwner, Claimed, EnqueueOutcome, Expired, IssueRef, Job, JobDetail, JobsStatus, Limits, NewJob, Outcome,
    PushIntent, PushRecord, Recovery, SessionId, SessionRecord, Slots, Usage,
};
use crate::job::{Due, Failure, JobState, ReportRecord};
use crate::store::{
    DeliveryMeta, DeliveryRecord, DeliveryState, Durable, Inbox, JobError, JobStore, NewDelivery, PutOutcome, Reports,
    StoreError,
};

impl Durable for SledStore {
    fn sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::sync(self)
    }
    fn check_writable(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::check_writable(self)
    }
}

impl Inbox for SledStore {
    fn put_delivery(&self, delivery: NewDelivery) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        SledStore::put_delivery(self, delivery)
    }
    fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        SledStore::delivery(self, id)
    }
    fn recent_deliveries(&self, before: Option<u64>, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError> {
        SledStore::recent_deliveries(self, before, limit)
    }
    fn delivery_body(&self, seq: u64) -> Result<Option<(DeliveryMeta, Bytes)>, StoreError> {
        SledStore::delivery_body(self, seq)
    }
    fn pending_deliveries(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        SledStore::pending_deliveries(self, after, limit)
    }
    fn inbox_depth(&self) -> usize {
        SledStore::inbox_depth(self)
    }
    fn inbox_changed(&self) -> impl Future<Output = ()> + Send {
        SledStore::inbox_changed(self)
    }
    fn ingest_lull(&self) -> impl Future<Output = ()> + Send {
        SledStore::ingest_lull(self)
    }
    fn finish_delivery(&self, seq: u64, state: &DeliveryState) -> Result<(), StoreError> {
        SledStore::finish_delivery(self, seq, state)
    }
    fn prune_deliveries(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        SledStore::prune_deliveries(self, cutoff)
    }
    fn delivery_log_position(&self) -> Result<Option<u64>, StoreError> {
        SledStore::delivery_log_position(self)
    }
    fn set_delivery_log_position(&self, id: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::set_delivery_log_position(self, id)
    }
}

impl JobStore for SledStore {
    fn enqueue_job(
        &self,
        new: &NewJob,
        priority: u8,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<EnqueueOutcome, JobError> {
        SledStore::enqueue_job(self, new, priority, actor, now)
    }
    fn job(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<Job>, JobError> {
        SledStore::job(self, repo, issue)
    }
    fn queue_position(&self, job: &Job) -> Result<Option<u64>, JobError> {
        SledStore::queue_position(self, job)
    }
    fn job_detail(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<JobDetail>, JobError> {
        SledStore::job_detail(self, repo, issue)
    }
    fn cancel_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Job, Option<SessionId>)>, JobError> {
        SledStore::cancel_job(self, repo, issue, actor, cause, now)
    }
    fn retry_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Job, JobError> {
        SledStore::retry_job(self, repo, issue, actor, cause, now)
    }
    fn reorder_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        title: &str,
        labels: &[String],
        priority: u8,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        SledStore::reorder_job(self, repo, issue, title, labels, priority, now)
    }

    fn record_issue_state(&self, dep: &IssueRef, open: bool, now: OffsetDateTime) -> Result<usize, JobError> {
        SledStore::record_issue_state(self, dep, open, now)
    }
    fn update_blocked_by(
        &self,
        issue: &IssueRef,
        change: &crate::job::LinkChange,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        SledStore::update_blocked_by(self, issue, change, now)
    }
    fn set_parent(&self, sub: &IssueRef, parent: Option<&IssueRef>) -> Result<(), JobError> {
        SledStore::set_parent(self, sub, parent)
    }
    fn parent_of(&self, sub: &IssueRef) -> Result<Option<IssueRef>, JobError> {
        SledStore::parent_of(self, sub)
    }
    fn dependents(&self, issue: &IssueRef) -> Result<Vec<Job>, JobError> {
        SledStore::dependents(self, issue)
    }
    fn unknown_dependencies(&self, limit: usize) -> Result<Vec<IssueRef>, JobError> {
        SledStore::unknown_dependencies(self, limit)
    }
    fn live_jobs(&self) -> Result<Vec<Job>, JobError> {
        SledStore::live_jobs(self)
    }
    fn jobs_status(&self, now: OffsetDateTime, limit: usize) -> Result<JobsStatus, JobError> {
        SledStore::jobs_status(self, now, limit)
    }
    fn claim_next_admitting(
        &self,
        owner: &ClaimOwner,
        limits: &dyn Limits,
        now: OffsetDateTime,
        admit: &dyn Fn(InstallationId) -> bool,
    ) -> Result<Option<Claimed>, JobError> {
        SledStore::claim_next_admitting(self, owner, limits, now, admit)
    }
    fn heartbeat(&self, claim: &Claim, limits: &dyn Limits, now: OffsetDateTime) -> Result<OffsetDateTime, JobError> {
        SledStore::heartbeat(self, claim, limits, now)
    }
    fn finish_job(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        limits: &dyn Limits,
        now: OffsetDateTime,
        jitter: f64,
    ) -> Result<Job, JobError> {
        SledStore::finish_job(self, claim, outcome, limits, now, jitter)
    }
    fn expire_claims(&self, limits: &dyn Limits, now: OffsetDateTime) -> Result<Vec<Expired>, JobError> {
        SledStore::expire_claims(self, limits, now)
    }
    fn promote_due(&self, now: OffsetDateTime) -> Result<usize, JobError> {
        SledStore::promote_due(self, now)
    }
    fn next_due(&self) -> Result<Option<OffsetDateTime>, JobError> {
        SledStore::next_due(self)
    }
    fn recover_claims(&self, live: &[&str], now: OffsetDateTime) -> Result<Recovery, JobError> {
        SledStore::recover_claims(self, live, now)
    }
    fn slots(&self) -> Result<Slots, JobError> {
        SledStore::slots(self)
    }
    fn claims(&self) -> Result<Vec<Claim>, JobError> {
        SledStore::claims(self)
    }
    fn check_job_invariants(&self) -> Result<Vec<String>, StoreError> {
        SledStore::check_job_invariants(self)
    }
    fn record_session_run(&self, id: &SessionId, run: &crate::job::sessions::RemoteRun) -> Result<bool, JobError> {
        SledStore::record_session_run(self, id, run)
    }
    fn record_session_cost(&self, id: &SessionId, cost_usd: f64) -> Result<bool, JobError> {
        SledStore::record_session_cost(self, id, cost_usd)
    }
    fn repo_usage(&self, repo: &RepoName, since: OffsetDateTime) -> Result<Usage, JobError> {
        SledStore::repo_usage(self, repo, since)
    }
    fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, JobError> {
        SledStore::session(self, id)
    }
    fn recent_sessions(&self, limit: usize) -> Result<Vec<SessionRecord>, JobError> {
        SledStore::recent_sessions(self, limit)
    }
    fn job_sessions(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<SessionRecord>, JobError> {
        SledStore::job_sessions(self, repo, issue)
    }
    fn job_failures(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<Failure>, JobError> {
        SledStore::job_failures(self, repo, issue)
    }
    fn push_record(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<PushRecord>, JobError> {
        SledStore::push_record(self, repo, issue)
    }
    fn record_push_intent(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        branch: &str,
        intent: &PushIntent,
        own: bool,
    ) -> Result<PushRecord, JobError> {
        SledStore::record_push_intent(self, repo, issue, branch, intent, own)
    }
    fn settle_push(&self, repo: &RepoName, seq: u64) -> Result<(), JobError> {
        SledStore::settle_push(self, repo, seq)
    }
}

impl Reports for SledStore {
    fn put_report(&self, record: &ReportRecord) -> Result<bool, JobError> {
        SledStore::put_report(self, record)
    }
    fn report_applied(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        version: u64,
        state: JobState,
    ) -> Result<(), JobError> {
        SledStore::report_applied(self, repo, issue, version, state)
    }
    fn report(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<ReportRecord>, JobError> {
        SledStore::report(self, repo, issue)
    }
    fn reports_due(&self, limit: usize) -> Result<Vec<(Job, Option<ReportRecord>, Due)>, JobError> {
        SledStore::reports_due(self, limit)
    }
}
