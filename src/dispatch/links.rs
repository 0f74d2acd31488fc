//! The effects of relationship changes ([`LinkAction`]): a "blocked by" link taken by the blocked issue's
//! job (which then waits, or runs, and says so on its tracking comment), a sub-issue added or removed
//! (the parent's checklist drawn again).

use time::OffsetDateTime;

use super::Transient;
use super::effects::{Effect, Effects, refused};
use crate::decide::links::LinkAction;
use crate::ids::InstallationId;
use crate::job::{Job, JobState, LinkChange, nanos};
use crate::report::render::{Failure, JobState as Shown};

impl Effects {
    /// Carries out one [`LinkAction`].
    pub(super) async fn link(&self, link: &LinkAction, now: OffsetDateTime) -> Result<Effect, Transient> {
        match link {
            LinkAction::BlockedBy { blocked, blocker, added, blocker_open, installation } => {
                // The blocker's state as the delivery shows it (it may be closed already).
                if let Err(e) = self.scheduler.issue_state(blocker, *blocker_open, now) {
                    return refused(e);
                }
                let change =
                    if *added { LinkChange::Add(blocker.clone()) } else { LinkChange::Remove(blocker.clone()) };
                let job = match self.scheduler.link(blocked, &change, now) {
                    Ok(job) => job,
                    Err(e) => return refused(e),
                };
                let what = if *added { "added" } else { "removed" };
                let Some(job) = job else {
                    return Ok(Effect::Link(format!("{blocked} blocked by {blocker} {what}: no queued job changed")));
                };
                self.report_job(&job, *installation);
                self.redraw_parent_of(&job.issue_ref(), installation.or(job.installation)).await;
                Ok(Effect::Link(format!(
                    "{blocked} blocked by {blocker} {what}: the job {}",
                    match (job.state, job.waiting_on.is_empty()) {
                        (JobState::Stuck, _) => "is stuck (a dependency cycle)",
                        (_, true) => "waits for nothing more",
                        (_, false) => "waits",
                    }
                )))
            }
            LinkAction::SubIssue { parent, sub, added, installation } => {
                let recorded = self.scheduler.store().set_parent(sub, added.then_some(parent));
                if let Err(e) = recorded {
                    return refused(e);
                }
                self.redraw_parent(parent, *installation).await;
                let what = if *added { "added to" } else { "removed from" };
                Ok(Effect::Link(format!("{sub} {what} {parent}'s sub-issues: its checklist is drawn again")))
            }
        }
    }

    /// Reports `job` as it is now after a change that did not run it: queued (with what it waits for), or
    /// stuck on a dependency cycle.
    pub(super) fn report_job(&self, job: &Job, installation: Option<InstallationId>) {
        let (Some(github), Some(inst)) = (&self.github, job.installation.or(installation)) else { return };
        let tracking = match job.state {
            JobState::Queued => self.canceller.tracking(job, Shown::Queued),
            JobState::Stuck => {
                let mut t = self.canceller.tracking(job, Shown::Stuck);
                t.failure = job.stuck_reason.as_ref().map(|reason| Failure {
                    class: "dependency".into(),
                    reason: reason.clone(),
                    retry_at: None,
                });
                t
            }
            _ => return,
        };
        github.outbox.update(inst, tracking, nanos(job.updated_at));
    }
}

impl Effects {
    /// Draws `parent`'s sub-issue checklist again ([`crate::report::progress::redraw`]); failures logged.
    pub(super) async fn redraw_parent(&self, parent: &crate::job::IssueRef, installation: Option<InstallationId>) {
        let (Some(github), Some(inst)) = (&self.github, installation) else { return };
        if let Err(e) = crate::report::progress::redraw(&github.client, self.scheduler.store(), inst, parent).await {
            tracing::warn!(%parent, error = %e, "drawing the sub-issue checklist failed; the next change draws it again");
        }
    }

    /// Draws the checklist of the parent `sub` is recorded under, if any.
    pub(super) async fn redraw_parent_of(&self, sub: &crate::job::IssueRef, installation: Option<InstallationId>) {
        let (Some(github), Some(inst)) = (&self.github, installation) else { return };
        crate::report::progress::redraw_parent_of(&github.client, self.scheduler.store(), inst, sub).await;
    }

    /// Reports again the queued dependents of `issue` that wait on dependencies: after it became stuck, or
    /// was retried, they say what holds them now.
    pub(super) fn report_dependents(&self, issue: &crate::job::IssueRef) {
        let dependents = self.scheduler.store().dependents(issue).unwrap_or_default();
        for d in dependents.iter().filter(|d| d.state == JobState::Queued && !d.waiting_on.is_empty()) {
            self.report_job(d, None);
        }
    }
}
