//! The failure ledger: failures counted per issue by class, the rule that sets a job aside, and backoff.
//!
//! A store keeps every [`Failure`] in order (the newest last) for the status page; the counts per issue
//! live in the job ([`FailureCounts`]); a job's own failures are also in its audit trail.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::backoff::backoff_delay;
use super::sessions::SessionId;
use super::{AuditEntry, Job, JobState, Limits};
use crate::ids::{IssueNumber, RepoName};

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

/// How a session ended, as the session layer reports it to the job store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: changes ready, or a plan written.
    Succeeded {
        /// A short account for the audit trail.
        summary: String,
        /// What it came to: kept on the job ([`super::Job::resolution`]).
        resolution: super::Resolution,
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
    /// Held back without fault until `wait` ends (a budget, a usage limit, a quota, the sandbox): queued
    /// again behind the wait, not an attempt and not a failure ([`super::wait`]).
    Waiting(super::Wait),
}

/// A failure as the session layer or the store reports it, before it is recorded.
#[derive(Debug, Clone, Copy)]
pub struct NewFailure<'a> {
    /// The class.
    pub class: FailureClass,
    /// Why, in words (redacted).
    pub reason: &'a str,
    /// When the job may run again, if the failure says: a rate-limit reset, or `now` for an expired claim.
    pub retry_at: Option<OffsetDateTime>,
    /// The session that failed, when there was one.
    pub session: Option<&'a SessionId>,
}

/// The failure-ledger rule: records `failure` on `job` (out of every index) and moves the job on:
/// - rate limit: counted in its own class only; waits until `retry_at` (or a backoff when unknown);
/// - agent or validation: stuck once their sum reaches `max_failures`, else failed with a backoff;
/// - infrastructure: stuck after `max_infrastructure_failures`, else queued again at `retry_at` when given
///   (an expired claim is runnable at once), otherwise failed with a backoff.
///
/// The backoff's attempt number is the count of counted failures (rate limits: of rate-limit failures);
/// `jitter` in `[0, 1]` spreads it ([`backoff_delay`]). Returns the ledger's record of the failure and the
/// audit entry; the store keeps both, then places the job ([`super::placement::place`]; a stuck job stays
/// in no index) and writes it.
pub fn record_failure(
    job: &mut Job,
    failure: NewFailure<'_>,
    actor: &str,
    limits: &dyn Limits,
    now: OffsetDateTime,
    jitter: f64,
) -> (Failure, AuditEntry) {
    let NewFailure { class, reason, retry_at, session } = failure;
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
    job.last_failure = Some(failure.clone());
    job.updated_at = now;
    let (min, max) = limits.backoff_bounds();
    let stuck = match class {
        FailureClass::Agent | FailureClass::Validation => {
            let n = job.failures.agent.saturating_add(job.failures.validation);
            let limit = limits.max_failures();
            (n >= limit).then(|| format!("{n} agent or validation failures (limit {limit})"))
        }
        FailureClass::Infrastructure => {
            let limit = limits.max_infrastructure_failures();
            (n >= limit).then(|| format!("{n} infrastructure failures (limit {limit})"))
        }
        FailureClass::RateLimit => None,
    };
    let cause = format!("{} failure: {reason}", class.as_str());
    if let Some(why) = stuck {
        job.state = JobState::Stuck;
        job.not_before = None;
        job.stuck_reason = Some(format!("{why}; last: {reason}"));
        return (failure, AuditEntry::new(now, actor, "stuck", Some(from), JobState::Stuck, &cause));
    }
    let not_before = match (class, retry_at) {
        (FailureClass::RateLimit | FailureClass::Infrastructure, Some(at)) => at,
        (FailureClass::RateLimit, None) => now + backoff_delay(n, min, max, jitter),
        _ => now + backoff_delay(job.failures.counted(), min, max, jitter),
    };
    job.state = if not_before > now { JobState::Failed } else { JobState::Queued };
    job.not_before = Some(not_before);
    (failure, AuditEntry::new(now, actor, "failed", Some(from), job.state, &cause))
}

/// Which of a job's `failures` (its ledger, oldest first) count towards its limits now, one flag each: the
/// newest of each class, as many as `counts` (the job's [`FailureCounts`], reset by `retry` and by a fresh
/// request) holds of that class. Rate limits never count. Failures before the last reset are in the ledger
/// but no longer counted. Exact when the ledger holds every failure of the job; were it missing some, the
/// older ones would be flagged.
pub fn counted(failures: &[Failure], counts: &FailureCounts) -> Vec<bool> {
    let mut left = *counts;
    let mut out = vec![false; failures.len()];
    for (i, f) in failures.iter().enumerate().rev() {
        let n = match f.class {
            FailureClass::Agent => &mut left.agent,
            FailureClass::Validation => &mut left.validation,
            FailureClass::Infrastructure => &mut left.infrastructure,
            FailureClass::RateLimit => continue,
        };
        if *n > 0 {
            *n -= 1;
            out[i] = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const FIXED: crate::job::TestLimits = crate::job::TestLimits { sessions: 1, failures: 2, infrastructure: 3 };

    fn running() -> Job {
        Job { attempts: 1, ..crate::job::sample_job(JobState::Running) }
    }

    fn fail(job: &mut Job, class: FailureClass, retry_at: Option<OffsetDateTime>, now: OffsetDateTime) -> AuditEntry {
        let failure = NewFailure { class, reason: "boom", retry_at, session: None };
        let (recorded, entry) = record_failure(job, failure, "foreman", &FIXED, now, 1.0);
        assert_eq!((recorded.class, recorded.reason.as_str(), recorded.at), (class, "boom", now));
        assert_eq!(job.last_failure.as_ref(), Some(&recorded));
        entry
    }

    #[test]
    fn agent_failures_back_off_then_set_the_job_aside() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let mut job = running();
        let e = fail(&mut job, FailureClass::Agent, None, now);
        assert_eq!((e.action.as_str(), e.from, e.to), ("failed", Some(JobState::Running), JobState::Failed));
        assert_eq!(job.not_before, Some(now + Duration::from_secs(10)));
        job.state = JobState::Running;
        let e = fail(&mut job, FailureClass::Validation, None, now);
        assert_eq!((e.action.as_str(), job.state, job.not_before), ("stuck", JobState::Stuck, None));
        assert_eq!(job.stuck_reason.as_deref(), Some("2 agent or validation failures (limit 2); last: boom"));
        assert_eq!(e.cause, "validation failure: boom");
    }

    #[test]
    fn rate_limits_wait_for_the_reset_and_never_count() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let mut job = running();
        let reset = now + Duration::from_secs(3600);
        for _ in 0..5 {
            job.state = JobState::Running;
            fail(&mut job, FailureClass::RateLimit, Some(reset), now);
            assert_eq!((job.state, job.not_before), (JobState::Failed, Some(reset)));
        }
        assert_eq!((job.failures.rate_limit, job.failures.counted()), (5, 0));
    }

    #[test]
    fn an_expired_claim_is_runnable_at_once_until_the_infrastructure_limit() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let mut job = running();
        for _ in 0..2 {
            job.state = JobState::Running;
            let e = fail(&mut job, FailureClass::Infrastructure, Some(now), now);
            assert_eq!((e.to, job.not_before), (JobState::Queued, Some(now)));
        }
        job.state = JobState::Running;
        fail(&mut job, FailureClass::Infrastructure, Some(now), now);
        assert_eq!(job.state, JobState::Stuck);
    }

    #[test]
    fn only_the_newest_failures_of_each_class_since_the_reset_count() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let mut job = running();
        let classes = [FailureClass::Agent, FailureClass::RateLimit, FailureClass::Infrastructure];
        let mut ledger = Vec::new();
        for class in classes {
            job.state = JobState::Running;
            fail(&mut job, class, Some(now), now);
            ledger.push(job.last_failure.clone().unwrap());
        }
        assert_eq!(counted(&ledger, &job.failures), [true, false, true]);
        // `retry` resets the counts, not the ledger: then one more agent failure.
        job.failures = FailureCounts::default();
        job.state = JobState::Running;
        fail(&mut job, FailureClass::Agent, None, now);
        ledger.push(job.last_failure.clone().unwrap());
        assert_eq!(counted(&ledger, &job.failures), [false, false, false, true]);
    }
}
