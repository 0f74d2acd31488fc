//! A planning session's end: the plan file read and checked, the plan posted on the issue as a table, and,
//! with `plan.approve = "auto"`, approved at once.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::Parts;
use super::job::{Attempt, github_failed};
use crate::ids::InstallationId;
use crate::job::{FailureClass, Job, Resolution};
use crate::markers;
use crate::plan::{self, ApproveMode, Plan, RunMode, create};
use crate::report::render::Link;
use crate::session::SessionOutcome;

/// Checks the plan the session wrote and posts it as the plan comment (replacing an earlier plan of the
/// issue). A plan that fails a check fails the job as the agent's, with the reason (the next attempt's
/// prompt carries it). With `plan.approve = "auto"` the tasks are created at once (and queued when the plan
/// runs itself).
pub(super) async fn plan_ready(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    outcome: &SessionOutcome,
    constitution: &crate::constitution::Constitution,
) -> Attempt {
    let settings = &constitution.plan;
    let text = outcome.plan.as_deref().unwrap_or_default();
    let plan = match Plan::parse(text, settings.max_tasks as usize) {
        Ok(plan) => plan,
        Err(e) => return Attempt::failed(FailureClass::Agent, format!("the agent's plan was refused: {e}")),
    };
    let client = &parts.client;
    // A revision: the tasks an earlier approval created keep their issues.
    let created: BTreeMap<String, crate::ids::IssueNumber> =
        match create::existing(client, inst, &job.repo, job.issue).await {
            Ok(found) => found.into_iter().map(|(k, i)| (k, i.number)).collect(),
            Err(e) => return github_failed("looking for the issues of an earlier plan", &e),
        };
    let body = match plan::render::comment(&job.repo, job.issue, &plan, &created) {
        Ok(body) => body,
        Err(e) => return Attempt::failed(FailureClass::Agent, format!("the agent's plan was refused: {e}")),
    };
    let marker = markers::plan(&job.repo, job.issue);
    let comment = match client.upsert_marked_comment(inst, &job.repo, job.issue, &marker, &body).await {
        Ok(c) => c,
        Err(e) => return github_failed("posting the plan", &e),
    };
    let mut summary = format!("the plan of {} tasks is posted in a comment", plan.tasks.len());
    if settings.approve == ApproveMode::Auto {
        let requester = job.requester.as_ref().map_or("foreman", |r| r.0.as_str());
        match approve(parts, inst, job, &plan, &created, constitution, requester).await {
            Ok(words) => summary = format!("{summary}; {words}"),
            Err(e) if e.is_transient() => {
                return Attempt::failed(FailureClass::Infrastructure, format!("approving the plan failed: {e}"));
            }
            Err(e) => summary = format!("{summary}; it was not approved: {e}"),
        }
    }
    let answer = (!comment.html_url.is_empty()).then(|| Link { text: "the plan".into(), url: comment.html_url });
    Attempt { answer, ..Attempt::succeeded(Resolution::Plan, &summary) }
}

/// Approves `plan` on the job's issue (`plan.approve = "auto"`) and queues its tasks when the plan runs
/// itself; returns what it did, in words.
async fn approve(
    parts: &Parts,
    inst: InstallationId,
    job: &Job,
    plan: &Plan,
    done: &BTreeMap<String, crate::ids::IssueNumber>,
    constitution: &crate::constitution::Constitution,
    requester: &str,
) -> Result<String, create::ApproveError> {
    let (settings, triggers) = (&constitution.plan, &constitution.triggers);
    let at = create::Approval {
        repo: &job.repo,
        parent: job.issue,
        column: &settings.column,
        status_field: &triggers.status_field,
    };
    let approved = create::approve(&parts.client, inst, &at, plan, done).await?;
    let made = approved.tasks.iter().filter(|t| t.created).count();
    let mut words = format!("{made} issues created");
    let labelled = job.labels.iter().any(|l| l.eq_ignore_ascii_case(&triggers.label));
    if settings.run == RunMode::Auto || labelled {
        match create::queue(&parts.scheduler, &job.repo, inst, &approved, requester, None, OffsetDateTime::now_utc()) {
            Ok(n) => words.push_str(&format!(", {n} queued")),
            Err(e) => tracing::warn!(error = %e, "queueing the plan's tasks failed"),
        }
    }
    Ok(words)
}
