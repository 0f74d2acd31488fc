//! Sessions as the job store records them: [`SessionId`], [`SessionState`], [`SessionRecord`]. One record per
//! claim, from start to its end (succeeded, failed, cancelled, expired or interrupted by a crash).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::claims::ClaimOwner;
use crate::ids::{IssueNumber, RepoName};

/// A session's id: a UUID v7 (time-ordered, RFC 9562), also the name of its log and workspace. Time
/// order makes new session records append at the right edge of the store's session index.
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
    /// `None` until the store records it. Records written before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The GitHub Actions workflow run the session was dispatched as (the Actions executor); `None` for a
    /// local session. Records written before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RemoteRun>,
}

/// A GitHub Actions workflow run a session runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The repository the run is in, `owner/name`.
    pub repository: String,
    /// The run's id.
    pub run_id: u64,
    /// The run's page on GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
}

impl SessionRecord {
    /// Ends the record: `state`, at `now`.
    pub fn end(&mut self, state: SessionState, now: OffsetDateTime) {
        self.state = state;
        self.ended_at = Some(now);
    }
}
