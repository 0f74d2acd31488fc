//! The one way a job is cancelled. A `/foreman stop` or `cancel` command, the trigger label removed, a card
//! moved to a stop column, the issue closed, deleted or transferred (as a delivery says, or as
//! reconciliation finds): each ends here, so each records the cancellation, stops a running session and
//! reports the job's final state on its issue (the tracking comment says why; the state labels go) through
//! the report outbox, in order with the runner's reports.
//!
//! A shutdown does not cancel: it releases running jobs to the queue for the next process (see
//! `crate::runner`), so their work is not lost.

use time::OffsetDateTime;

use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::{Job, SessionId, nanos};
use crate::report::outbox::Outbox;
use crate::report::render::{JobState as Shown, Tracking};
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::store::JobError;

/// What a cancellation came to.
#[derive(Debug)]
pub enum Cancelled {
    /// The job was live (queued, running, waiting to retry) and is now cancelled.
    Cancelled {
        /// The job as recorded after the cancellation.
        job: Box<Job>,
        /// Its session, when it was running one; that session was told to stop.
        session: Option<SessionId>,
    },
    /// There was no live job to cancel: nothing changed.
    NoLiveJob,
}

/// Cancels jobs: the store, the running session and the report, together. Cheap to clone.
#[derive(Clone)]
pub struct Canceller {
    scheduler: Scheduler,
    /// The trigger label, for how the tracking comment names what queued the job.
    label: String,
    github: Option<(Runner, Outbox)>,
}

impl Canceller {
    /// A canceller that records cancellations in `scheduler`'s store only (no GitHub client: nothing runs and
    /// nothing is reported). `label` is the trigger label (`triggers.label`).
    pub fn new(scheduler: Scheduler, label: impl Into<String>) -> Self {
        Self { scheduler, label: label.into(), github: None }
    }

    /// The same, also stopping running sessions through `runner` and reporting through `outbox`.
    pub fn with_github(mut self, runner: Runner, outbox: Outbox) -> Self {
        self.github = Some((runner, outbox));
        self
    }

    /// Cancels the live job of `repo#issue`, if there is one: records it (with `reason` in its audit trail,
    /// by `actor`), stops its session, and reports "Cancelled: `reason`." on the issue through the
    /// installation the job recorded (or `installation` when it recorded none).
    ///
    /// Errors only when the store fails (the change is then not made; the caller may try again).
    pub async fn cancel(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        reason: &str,
        installation: Option<InstallationId>,
        now: OffsetDateTime,
    ) -> Result<Cancelled, JobError> {
        let Some((job, session)) = self.scheduler.cancel(repo, issue, actor, reason, now).await? else {
            return Ok(Cancelled::NoLiveJob);
        };
        if let Some((runner, outbox)) = &self.github {
            if session.is_some() {
                runner.stop(repo, issue);
            }
            if let Some(inst) = job.installation.or(installation) {
                let mut t = self.tracking(&job, Shown::Cancelled);
                t.summary = Some(format!("Cancelled: {reason}."));
                outbox.update(inst, t, nanos(job.updated_at));
            }
        }
        Ok(Cancelled::Cancelled { job: Box::new(job), session })
    }

    /// The tracking comment's base for `job` in `state`: what queued it, and, for a queued job, its place.
    pub fn tracking(&self, job: &Job, state: Shown) -> Tracking {
        if state == Shown::Queued {
            return crate::runner::job::queued_tracking(&self.label, &self.scheduler, job);
        }
        crate::runner::job::base_tracking(&self.label, job, state)
    }
}
