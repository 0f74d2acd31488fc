//! Placement: which index holds a queued or failed job, and the rule that decides it.
//!
//! A queued job is in exactly one of three places: the run-order index (may run now), the delayed index
//! (until its not-before time), or waiting on dependencies. Which one is recorded in the job itself, so
//! that a store moves it out exactly.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AuditEntry, Job, JobState, nanos};

/// Which index holds a queued or failed job. Stored as `{"in": "none" | "ready" | "waiting"}` or
/// `{"in": "delayed", "until": <unix nanoseconds>}`.
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

/// Decides where a job taken out of every index belongs at `now`, and sets [`Job::placement`]: waiting
/// on dependencies while any is open, delayed while `not_before` is in the future, else ready. A job
/// neither queued nor failed stays in no index. A failed job whose backoff is over becomes queued again;
/// the audit entry for that is returned for the store to record.
///
/// The store then writes the index entry the placement names (the delayed index at `until`, or the
/// run-order index with the job as it is written).
pub fn place(job: &mut Job, now: OffsetDateTime) -> Option<AuditEntry> {
    debug_assert_eq!(job.placement, Placement::None);
    if !job.state.is_placed() {
        return None;
    }
    if !job.waiting_on.is_empty() {
        job.placement = Placement::Waiting;
        return None;
    }
    if let Some(t) = job.not_before.filter(|t| *t > now) {
        job.placement = Placement::Delayed { until: nanos(t) };
        return None;
    }
    job.not_before = None;
    job.placement = Placement::Ready;
    (job.state == JobState::Failed).then(|| {
        job.state = JobState::Queued;
        AuditEntry::new(now, "foreman", "ready", Some(JobState::Failed), JobState::Queued, "backoff over")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::IssueRef;

    fn job(state: JobState) -> Job {
        crate::job::sample_job(state)
    }

    #[test]
    fn dependencies_then_backoff_then_ready() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap();
        let mut waiting = job(JobState::Queued);
        waiting.waiting_on = vec![IssueRef { repo: "o/r".parse().unwrap(), issue: crate::ids::IssueNumber(2) }];
        waiting.not_before = Some(now + time::Duration::minutes(1));
        assert_eq!(place(&mut waiting, now), None);
        assert_eq!(waiting.placement, Placement::Waiting);

        let mut backoff = job(JobState::Failed);
        backoff.not_before = Some(now + time::Duration::minutes(1));
        assert_eq!(place(&mut backoff, now), None);
        assert_eq!(backoff.placement, Placement::Delayed { until: nanos(now) + 60_000_000_000 });
        assert_eq!(backoff.state, JobState::Failed);

        let mut over = job(JobState::Failed);
        over.not_before = Some(now);
        let entry = place(&mut over, now).expect("audited");
        assert_eq!((entry.action.as_str(), entry.to), ("ready", JobState::Queued));
        assert_eq!((over.state, over.placement, over.not_before), (JobState::Queued, Placement::Ready, None));

        for s in [JobState::Running, JobState::Succeeded, JobState::Cancelled, JobState::Stuck] {
            let mut j = job(s);
            assert_eq!(place(&mut j, now), None);
            assert_eq!(j.placement, Placement::None, "{s}");
        }
    }
}
