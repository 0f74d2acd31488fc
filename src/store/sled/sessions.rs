//! Session records: one per claim, from start to its end (succeeded, failed, cancelled, expired or
//! interrupted by a crash).
//!
//! Trees:
//! - `sessions`: session id → [`SessionRecord`] as JSON. Written in the same transaction as the claim that
//!   starts the session and the transition that ends it.
//! - `job_sessions`: job key · session id → empty: a job's sessions, written in the claim's transaction with
//!   the session record. Session ids are time-ordered, so a job's entries read oldest first.
//! - `failures` (the ledger): id (u64, increasing) → [`Failure`] as JSON, every failure of every job.
//! - `job_failures`: job key · ledger id → empty: a job's failures, written in the transaction that
//!   records the failure.
//!
//! Stores written before the two per-job trees existed (schema 3 and older) get them built from
//! `sessions` and `failures` once, when the store is opened ([`migrate_job_index`]).

use time::OffsetDateTime;

use super::Store;
use super::jobs::{JobError, StoreError, abort, corrupt, decode, encode, issue_key};
use super::trees::{JOB_FAILURES, JOB_SESSIONS, job_index_key};
use crate::ids::{IssueNumber, RepoName};
pub use crate::job::sessions::{SessionId, SessionRecord, SessionState};
use crate::job::{Failure, Usage};

impl Store {
    /// Records the workflow run session `id` was dispatched as (replacing an earlier one). Returns false,
    /// writing nothing, for an unknown session. Not flushed.
    pub fn record_session_run(&self, id: &SessionId, run: &crate::job::sessions::RemoteRun) -> Result<bool, JobError> {
        self.job_trees().run(|tx| {
            let Some(raw) = tx.sessions.get(id.as_str().as_bytes())? else { return Ok(false) };
            let mut record: SessionRecord = decode(&raw, "session").map_err(abort)?;
            record.run = Some(run.clone());
            tx.sessions.insert(id.as_str().as_bytes(), encode(&record))?;
            Ok(true)
        })
    }

    /// Records what session `id` cost, in US dollars (replacing an earlier figure: the agent reports a
    /// running total). Returns false, writing nothing, for an unknown session. Not flushed: call
    /// [`Store::sync`] when it must survive a crash.
    ///
    /// Errors: [`JobError::Store`] for a negative or non-finite cost, or sled's errors.
    pub fn record_session_cost(&self, id: &SessionId, cost_usd: f64) -> Result<bool, JobError> {
        if !cost_usd.is_finite() || cost_usd < 0.0 {
            return Err(corrupt(&format!("session {id}: a cost of {cost_usd} US dollars is not a cost")));
        }
        self.job_trees().run(|tx| {
            let Some(raw) = tx.sessions.get(id.as_str().as_bytes())? else { return Ok(false) };
            let mut record: SessionRecord = decode(&raw, "session").map_err(abort)?;
            record.cost_usd = Some(cost_usd);
            tx.sessions.insert(id.as_str().as_bytes(), encode(&record))?;
            Ok(true)
        })
    }

    /// `repo`'s usage since `since` (the start of the current UTC day, for the daily budgets): the sessions whose `started_at` is at or after it, in any
    /// state, and the sum of their recorded costs (a session with no cost recorded yet counts as 0).
    ///
    /// Reads every session record: one sled scan, linear in the records kept. Session ids are time-ordered,
    /// but by the wall clock when they were made, not by the `now` a caller passed to the claim, so they
    /// cannot bound the scan safely.
    pub fn repo_usage(&self, repo: &RepoName, since: OffsetDateTime) -> Result<Usage, JobError> {
        let mut usage = Usage::default();
        for item in self.job_trees().sessions.iter() {
            let (_, raw) = item?;
            let record: SessionRecord = decode(&raw, "session")?;
            if record.repo == *repo && record.started_at >= since {
                usage.sessions = usage.sessions.saturating_add(1);
                usage.cost_usd += record.cost_usd.unwrap_or(0.0);
            }
        }
        Ok(usage)
    }

    /// A session record, or `None` for an unknown id.
    pub fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>, JobError> {
        match self.job_trees().sessions.get(id.as_str().as_bytes())? {
            Some(raw) => decode(&raw, "session").map(Some),
            None => Ok(None),
        }
    }

    /// Every session of `repo#issue`, oldest first (by start, then id): one per claim, whatever became of
    /// it. Empty for an issue never claimed. Reads the job's entries in `job_sessions` and their records.
    pub fn job_sessions(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<SessionRecord>, JobError> {
        let t = self.job_trees();
        let key = issue_key(repo, issue);
        let mut out: Vec<SessionRecord> = Vec::new();
        for k in t.job_sessions.scan_prefix(&key).keys() {
            let k = k?;
            if let Some(raw) = t.sessions.get(&k[key.len()..])? {
                out.push(decode(&raw, "session")?);
            }
        }
        out.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        Ok(out)
    }

    /// Every failure the ledger holds for `repo#issue`, oldest first, counted or not (a `retry` resets the
    /// job's counts, not the ledger). Reads the job's entries in `job_failures` and their records.
    pub fn job_failures(&self, repo: &RepoName, issue: IssueNumber) -> Result<Vec<Failure>, JobError> {
        let t = self.job_trees();
        let key = issue_key(repo, issue);
        let mut out = Vec::new();
        for k in t.job_failures.scan_prefix(&key).keys() {
            let k = k?;
            if let Some(raw) = t.failures.get(&k[key.len()..])? {
                out.push(decode(&raw, "failure")?);
            }
        }
        Ok(out)
    }
}

/// Schema 3 → 4: builds `job_sessions` and `job_failures` from every record in `sessions` and `failures`.
/// A record that does not decode is left out of the index (and logged), not a reason to refuse the store.
/// Idempotent: an entry written twice is the same entry.
pub(super) fn migrate_job_index(db: &sled::Db) -> Result<(), StoreError> {
    let (sessions, index) = (db.open_tree("sessions")?, db.open_tree(JOB_SESSIONS)?);
    for item in sessions.iter() {
        let (id, raw) = item?;
        match decode::<SessionRecord>(&raw, "session") {
            Ok(r) => {
                index.insert(job_index_key(&issue_key(&r.repo, r.issue), &id), &[])?;
            }
            Err(e) => tracing::warn!(error = %e, "a session record left out of its job's index"),
        }
    }
    let (failures, index) = (db.open_tree("failures")?, db.open_tree(JOB_FAILURES)?);
    for item in failures.iter() {
        let (id, raw) = item?;
        match decode::<Failure>(&raw, "failure") {
            Ok(f) => {
                index.insert(job_index_key(&issue_key(&f.repo, f.issue), &id), &[])?;
            }
            Err(e) => tracing::warn!(error = %e, "a failure left out of its job's index"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
