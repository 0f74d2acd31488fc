//! Where a job is in its life: the one [`JobState`], with the views the decision core and the reports take
//! of it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a job is in its life. `queued → running → succeeded | failed | cancelled | stuck`; a failed job
/// returns to `queued` when its backoff ends, and `retry` returns any job that is not running to `queued`.
///
/// Serialised as its lower-case name (`queued`, `running`, `succeeded`, `failed`, `cancelled`, `stuck`): the
/// store keeps these strings, and the API and `foreman replay --job` use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run: runnable, or waiting on a dependency.
    Queued,
    /// Claimed: a session runs it.
    Running,
    /// Finished with changes ready (or a plan written).
    Succeeded,
    /// Failed and will be retried after its backoff (or after a rate-limit reset).
    Failed,
    /// Cancelled by a person or an event (unlabelled, closed, `stop`).
    Cancelled,
    /// Set aside: too many failures or a dependency cycle. Needs a person (`retry`).
    Stuck,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Stuck,
    ];

    /// The state's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Stuck => "stuck",
        }
    }

    /// A job still on its way to a result: queued (runnable, or waiting for a dependency), running, or
    /// failed and waiting to retry (a backoff, a budget or a usage-limit reset). Every live job can be
    /// stopped: `/foreman stop`, an unlabel, a close and a card moved to a stop column cancel exactly these
    /// states (the store's `cancel_job` too). Succeeded, cancelled and stuck jobs are not live.
    pub fn is_live(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running | JobState::Failed)
    }

    /// Queued or running: a job a new trigger (label, card, `run`, a review) leaves as it is. A job waiting
    /// to retry is live but not this: a trigger refreshes it (its issue's title, labels and dependencies).
    pub fn is_queued_or_running(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }

    /// Queued, or failed and waiting for its backoff to end: a job that sits in one of the store's indexes
    /// (run order, delayed, or waiting on a dependency).
    pub fn is_placed(self) -> bool {
        matches!(self, JobState::Queued | JobState::Failed)
    }
}

/// What a succeeded job came to, for its report: the tracking comment's headline and links say which.
///
/// Serialised as its kebab-case name (`pull-request`, `answer`, `plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Changes pushed and a pull request opened or updated.
    PullRequest,
    /// No changes: the agent answered (a question, or why it cannot be done), posted as a comment.
    Answer,
    /// A plan (`/foreman plan`), posted as a comment.
    Plan,
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_job_waiting_to_retry_is_live() {
        for s in JobState::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<JobState>(&format!("\"{}\"", s.as_str())).unwrap(), s);
        }
        let live: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [JobState::Queued, JobState::Running, JobState::Failed]);
        let busy: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_queued_or_running()).collect();
        assert_eq!(busy, [JobState::Queued, JobState::Running]);
    }
}
