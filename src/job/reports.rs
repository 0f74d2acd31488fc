//! What GitHub was told of a job: the newest report made of it ([`ReportRecord`], kept by the store so it
//! survives a crash) and the rule that says whether GitHub is behind the job ([`due`]).
//!
//! A report is what the tracking comment, the state labels and the board column show for one version of
//! a job (its `updated_at`, in nanoseconds: [`super::nanos`]). The report outbox stores each state report
//! before it applies it and records the version applied after GitHub took it, so after any crash the jobs
//! whose last applied report is older than their state are known, and reported again.

use serde::{Deserialize, Serialize};

use super::{Job, JobState, nanos};
use crate::ids::{InstallationId, IssueNumber, RepoName};

/// The newest state report of one job and how far GitHub has taken its reports.
///
/// Stored as JSON, one record per (repository, issue). `report` is the report itself as its maker wrote it
/// (the report outbox's tracking comment, JSON); the store keeps it without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// The job version the report shows: its `updated_at` in nanoseconds since the Unix epoch.
    pub version: u64,
    /// The job state the report shows.
    pub state: JobState,
    /// The installation the report is made through.
    pub installation: InstallationId,
    /// The report, opaque to the store (JSON).
    pub report: String,
    /// The version of the newest report GitHub took (comment, labels and board all written); 0 when none.
    #[serde(default)]
    pub applied: u64,
    /// The state that report showed; `None` when none was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_state: Option<JobState>,
}

impl ReportRecord {
    /// Whether the stored report still waits to be applied.
    pub fn pending(&self) -> bool {
        self.applied < self.version
    }
}

/// How a job that GitHub is behind on is reported again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// Apply the stored report: it shows the job as it is and was not applied (a crash, or GitHub failing).
    Stored,
    /// Make a report from the job: the job changed state after its last report was made (a crash between
    /// the change and its report, or a change nobody reported, e.g. a claim recovered at start).
    Rebuild,
}

/// Whether a report that showed `reported` is still true of a job now in `current`: the same state, or a
/// failed job whose backoff ended and that waits in the queue again (its comment's "will retry" still
/// holds, and both states carry the same labels), which Foreman does not report by design.
pub fn still_shows(reported: JobState, current: JobState) -> bool {
    reported == current || (reported == JobState::Failed && current == JobState::Queued)
}

/// Whether GitHub is behind `job`, and how to bring it in line; `None` when what it shows is the job's.
///
/// `record` is the job's stored report, if any. `since` (nanoseconds) is when reports began to be stored:
/// a job with no record that has not changed since is taken as reported (it was, before records were kept),
/// and one that has changed since was never reported (a crash before its first report) and is due.
pub fn due(job: &Job, record: Option<&ReportRecord>, since: u64) -> Option<Due> {
    let version = nanos(job.updated_at);
    let Some(r) = record else { return (version > since).then_some(Due::Rebuild) };
    if r.applied >= version && r.applied_state.is_none_or(|shown| still_shows(shown, job.state)) {
        // GitHub took a report of this version (or a later one) that shows the job's state. (Two states can
        // share a version: a claim made in the same nanosecond as the enqueue.)
        return None;
    }
    if still_shows(r.state, job.state) {
        // The stored report shows the job as it is: due when it was not applied.
        return r.pending().then_some(Due::Stored);
    }
    // The job moved on from the stored report. Due unless what GitHub shows is still true.
    match r.applied_state {
        Some(shown) if still_shows(shown, job.state) => None,
        _ => Some(Due::Rebuild),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::sample_job;

    fn record(version: u64, state: JobState, applied: u64, applied_state: Option<JobState>) -> ReportRecord {
        ReportRecord {
            repo: "o/r".parse().unwrap(),
            issue: IssueNumber(1),
            version,
            state,
            installation: InstallationId(1),
            report: "{}".into(),
            applied,
            applied_state,
        }
    }

    #[test]
    fn github_is_behind_a_job_whose_last_applied_report_is_older_than_its_state() {
        let job = sample_job(JobState::Succeeded);
        let v = nanos(job.updated_at);
        // Applied: nothing to do.
        assert_eq!(due(&job, Some(&record(v, JobState::Succeeded, v, Some(JobState::Succeeded))), 0), None);
        // Stored, not applied (killed before the report reached GitHub): apply the stored one.
        let running = Some(JobState::Running);
        assert_eq!(due(&job, Some(&record(v, JobState::Succeeded, v - 5, running)), 0), Some(Due::Stored));
        // Only the running report was made (killed between the finish and its report): make one.
        assert_eq!(due(&job, Some(&record(v - 5, JobState::Running, v - 5, running)), 0), Some(Due::Rebuild));
        // Never reported: due when the job changed after records began, not before.
        assert_eq!(due(&job, None, v - 1), Some(Due::Rebuild));
        assert_eq!(due(&job, None, v), None);
        // A report of the same version that showed another state is not the job's.
        let queued = Some(JobState::Queued);
        assert_eq!(due(&job, Some(&record(v, JobState::Queued, v, queued)), 0), Some(Due::Rebuild));
    }

    #[test]
    fn an_ended_backoff_is_not_reported_again() {
        let job = sample_job(JobState::Queued);
        let v = nanos(job.updated_at);
        let failed = Some(JobState::Failed);
        assert_eq!(due(&job, Some(&record(v - 5, JobState::Failed, v - 5, failed)), 0), None);
        // Its failure report not applied yet: applied now, it still holds.
        assert_eq!(due(&job, Some(&record(v - 5, JobState::Failed, v - 9, None)), 0), Some(Due::Stored));
        // A recovered claim (running, now queued again) is.
        let running = Some(JobState::Running);
        assert_eq!(due(&job, Some(&record(v - 5, JobState::Running, v - 5, running)), 0), Some(Due::Rebuild));
    }
}
