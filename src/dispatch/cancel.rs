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

    /// Reports again every job GitHub is behind on ([`Outbox::resume`]): a stored report not applied (a crash,
    /// or GitHub failing), or a job whose state changed with no report made (a crash between the change and
    /// its report, a claim recovered at start, a dependency cycle). Run at start and at each reconciliation
    /// pass. Returns how many were posted; 0 without GitHub.
    ///
    /// Errors only when the store cannot be read.
    pub fn resume_reports(&self) -> Result<usize, JobError> {
        match &self.github {
            Some((_, outbox)) => outbox.resume(|job| self.report_of(job)),
            None => Ok(0),
        }
    }

    /// The tracking comment for `job` as the store knows it, for a report made after the fact: its state, what
    /// queued it, its place or attempt, its last failure and when the next attempt is due, why it is stuck or
    /// was cancelled, the summary it succeeded with. (A runner's own report says more: the session's figures,
    /// links to its pull request and log.)
    pub fn report_of(&self, job: &Job) -> Tracking {
        let mut t = self.tracking(job, job.state);
        t.updated_at = job.updated_at.format(&time::format_description::well_known::Rfc3339).ok();
        let config = self.scheduler.config();
        t.attempt = crate::job::attempt_counter(job, config.max_failures, config.max_infrastructure_failures);
        t.since_retry = job.retries > 0;
        let last_cause = |action: &str| {
            let detail = self.scheduler.store().job_detail(&job.repo, job.issue).ok().flatten()?;
            detail.audit.iter().rev().find(|e| e.action == action).map(|e| e.cause.clone())
        };
        match job.state {
            Shown::Failed | Shown::Stuck => {
                let failure = job.last_failure.as_ref();
                let reason = match (job.state, &job.stuck_reason) {
                    (Shown::Stuck, Some(why)) => why.clone(),
                    _ => failure.map(|f| f.reason.clone()).unwrap_or_default(),
                };
                t.failure = Some(crate::report::render::Failure {
                    class: failure.map_or("stuck", |f| f.class.as_str()).to_owned(),
                    reason,
                    retry_at: job
                        .not_before
                        .filter(|_| job.state == Shown::Failed)
                        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
                });
            }
            Shown::Cancelled => {
                t.summary = Some(match last_cause("cancelled") {
                    Some(cause) => format!("Cancelled: {cause}."),
                    None => "Cancelled.".into(),
                });
            }
            Shown::Succeeded => t.summary = last_cause("succeeded").filter(|s| !s.trim().is_empty()),
            Shown::Queued | Shown::Running => {}
        }
        t
    }

    /// Reports `job`, queued, as it is now (what it waits for): after a change that did not run it (its
    /// "blocked by" links read again). Nothing without GitHub, or for a job with no installation.
    pub fn report_queued(&self, job: &Job) {
        if let (Some((_, outbox)), Some(inst)) = (&self.github, job.installation) {
            outbox.update(inst, self.tracking(job, Shown::Queued), nanos(job.updated_at));
        }
    }

    /// The tracking comment's base for `job` in `state`: what queued it, and, for a queued job, its place.
    pub fn tracking(&self, job: &Job, state: Shown) -> Tracking {
        if state == Shown::Queued {
            return crate::runner::job::queued_tracking(&self.label, &self.scheduler, job);
        }
        crate::runner::job::base_tracking(&self.label, job, state)
    }
}
