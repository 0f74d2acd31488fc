//! Session records: one per claim, from start to its end (succeeded, failed, cancelled, expired or
//! interrupted by a crash).
//!
//! Tree `sessions`: session id → [`SessionRecord`] as JSON. Written in the same transaction as the claim
//! that starts the session and the transition that ends it.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Store;
use super::claims::ClaimOwner;
use super::jobs::{JobError, abort, corrupt, decode, encode};
use crate::constitution::Usage;
use crate::ids::{IssueNumber, RepoName};

/// A session's id: a UUID v7 (time-ordered, RFC 9562), also the name of its log and workspace. Time
/// order makes new session records append at the right edge of the `sessions` tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl SessionId {
    /// A fresh id: the current time in milliseconds and 74 random bits.
    pub fn new() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Its claim is live.
    Running,
    /// Finished with success.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Its job was cancelled while it ran.
    Cancelled,
    /// Its claim expired without a heartbeat.
    Expired,
    /// Its process ended (crash, restart) or it was released unfinished.
    Interrupted,
}

/// What the store keeps about a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The id.
    pub id: SessionId,
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// The claim it runs under.
    pub claim: u64,
    /// The process that runs it.
    pub owner: ClaimOwner,
    /// The job's attempt number (1 for the first run).
    pub attempt: u32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// Its state.
    pub state: SessionState,
    /// Free text the session layer may add (e.g. its log path).
    pub detail: Option<String>,
    /// What the session cost, US dollars, as the agent reported it (Claude Code's `total_cost_usd`);
    /// `None` until [`Store::record_session_cost`] sets it. Records written before this field existed
    /// read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Store {
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

    /// `repo`'s usage since `since` (the start of the current UTC day, for the daily budgets of
    /// [`crate::constitution::check_budget`]): the sessions whose `started_at` is at or after it, in any
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
