//! Session records: one per claim, from start to its end (succeeded, failed, cancelled, expired or
//! interrupted by a crash).
//!
//! Tree `sessions`: session id → [`SessionRecord`] as JSON. Written in the same transaction as the claim
//! that starts the session and the transition that ends it.

use time::OffsetDateTime;

use super::Store;
use super::jobs::{JobError, abort, corrupt, decode, encode};
use crate::ids::RepoName;
use crate::job::Usage;
pub use crate::job::sessions::{SessionId, SessionRecord, SessionState};

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
}
