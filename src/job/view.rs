//! What the job store shows people: one job in detail ([`JobDetail`]) and the status of all of them
//! ([`JobsStatus`]), as the API and `foreman status` serve them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AuditEntry, Claim, Failure, FailureCounts, IssueRef, Job, JobKind, JobState, PhaseKey};
use crate::ids::{IssueNumber, RepoName};

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
    /// The hold on every new session, while one lasts (the agent's usage limit reached with every
    /// configured credential): no job is claimed until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<super::Wait>,
}

impl QueuedJob {
    /// The entry for `job`, at `position` in run order (`None` for a job that waits).
    pub fn of(job: &Job, position: Option<u64>) -> QueuedJob {
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
}
