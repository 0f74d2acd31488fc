//! The failure ledger: failures counted per issue by class, the rule that sets a job aside, and backoff.
//!
//! Tree `failures`: id (u64, increasing) → [`Failure`] as JSON, so the newest failures are the last keys.
//! The counts per issue live in the job ([`FailureCounts`]); a job's own failures are also in its audit trail.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::jobs::{Abort, Job, JobState, Tx, encode, entry};
use super::sessions::SessionId;
use crate::ids::{IssueNumber, RepoName};
use crate::scheduler::SchedulerConfig;
use crate::scheduler::backoff::backoff_delay;

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The agent failed: no changes, gave up, exceeded its turn or cost limit.
    Agent,
    /// The agent's work broke a rule of the constitution or failed its checks.
    Validation,
    /// Not the job's fault: an expired claim, a lost workspace, GitHub unavailable.
    Infrastructure,
    /// The agent's API reported a usage or rate limit. Never counts toward stuck.
    RateLimit,
}

impl FailureClass {
    /// The class's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Agent => "agent",
            FailureClass::Validation => "validation",
            FailureClass::Infrastructure => "infrastructure",
            FailureClass::RateLimit => "rate-limit",
        }
    }
}

/// Failures of one job by class, since its last `retry` or fresh request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounts {
    /// Agent failures.
    pub agent: u32,
    /// Validation failures.
    pub validation: u32,
    /// Infrastructure failures.
    pub infrastructure: u32,
    /// Rate-limit failures (not counted toward stuck or ordering).
    pub rate_limit: u32,
}

impl FailureCounts {
    /// Whether there are none of any class.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Failures that count for ordering ("fewer failures first") and backoff: all but rate limits.
    pub fn counted(&self) -> u32 {
        self.agent.saturating_add(self.validation).saturating_add(self.infrastructure)
    }

    fn bump(&mut self, class: FailureClass) -> u32 {
        let n = match class {
            FailureClass::Agent => &mut self.agent,
            FailureClass::Validation => &mut self.validation,
            FailureClass::Infrastructure => &mut self.infrastructure,
            FailureClass::RateLimit => &mut self.rate_limit,
        };
        *n = n.saturating_add(1);
        *n
    }
}

/// One failure in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The class.
    pub class: FailureClass,
    /// Why, in words (never a secret: callers pass redacted text).
    pub reason: String,
    /// The session that failed, when there was one.
    pub session: Option<SessionId>,
}

/// How a session ended, as the session layer reports it to [`crate::store::Store::finish_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: changes ready, or a plan written.
    Succeeded {
        /// A short account for the audit trail.
        summary: String,
    },
    /// Failed.
    Failed {
        /// The class.
        class: FailureClass,
        /// Why.
        reason: String,
        /// For a rate limit: the reset time the agent reported; the job waits until then. Ignored for
        /// other classes. Without it a rate-limited job backs off like any failure.
        retry_at: Option<OffsetDateTime>,
    },
    /// Given back unfinished without fault (e.g. Foreman shutting down): queued again, nothing counted.
    Released {
        /// Why.
        cause: String,
    },
}

/// Records a failure of `job` inside `tx` and moves the job on (it must be out of every index):
/// - rate limit: counted in its own class only; waits until `retry_at` (or a backoff when unknown);
/// - agent or validation: stuck once their sum reaches `max_failures`, else failed with a backoff;
/// - infrastructure: stuck after `max_infrastructure_failures`, else queued again at `retry_at` when given
///   (an expired claim is runnable at once), otherwise failed with a backoff.
///
/// The backoff's attempt number is the count of counted failures (rate limits: of rate-limit failures).
#[allow(clippy::too_many_arguments)]
pub(super) fn fail_tx(
    tx: &Tx<'_>,
    key: &[u8],
    job: &mut Job,
    class: FailureClass,
    reason: &str,
    retry_at: Option<OffsetDateTime>,
    session: Option<&SessionId>,
    actor: &str,
    config: &SchedulerConfig,
    now: OffsetDateTime,
    jitter: f64,
) -> Result<(), Abort> {
    let from = job.state;
    let n = job.failures.bump(class);
    let failure = Failure {
        repo: job.repo.clone(),
        issue: job.issue,
        at: now,
        class,
        reason: reason.to_owned(),
        session: session.cloned(),
    };
    tx.failures.insert(&tx.failures.generate_id()?.to_be_bytes(), encode(&failure))?;
    job.last_failure = Some(failure);
    job.updated_at = now;
    let (min, max) = config.backoff_bounds();
    let stuck = match class {
        FailureClass::Agent | FailureClass::Validation => {
            let n = job.failures.agent.saturating_add(job.failures.validation);
            (n >= config.max_failures)
                .then(|| format!("{n} agent or validation failures (limit {})", config.max_failures))
        }
        FailureClass::Infrastructure => (n >= config.max_infrastructure_failures)
            .then(|| format!("{n} infrastructure failures (limit {})", config.max_infrastructure_failures)),
        FailureClass::RateLimit => None,
    };
    let cause = format!("{} failure: {reason}", class.as_str());
    if let Some(why) = stuck {
        job.state = JobState::Stuck;
        job.not_before = None;
        job.stuck_reason = Some(format!("{why}; last: {reason}"));
        tx.put_job(key, job)?;
        return tx.record(key, entry(now, actor, "stuck", Some(from), JobState::Stuck, &cause));
    }
    let not_before = match (class, retry_at) {
        (FailureClass::RateLimit | FailureClass::Infrastructure, Some(at)) => at,
        (FailureClass::RateLimit, None) => now + backoff_delay(n, min, max, jitter),
        _ => now + backoff_delay(job.failures.counted(), min, max, jitter),
    };
    job.state = if not_before > now { JobState::Failed } else { JobState::Queued };
    job.not_before = Some(not_before);
    tx.place(key, job, now)?;
    tx.put_job(key, job)?;
    tx.record(key, entry(now, actor, "failed", Some(from), job.state, &cause))
}
