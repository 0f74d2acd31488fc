//! What a session's outcome comes to: for changes, the push and the pull request ([`super::publish`]); post
//! the answer for an answer; classify a failure.

use time::OffsetDateTime;

use super::Parts;
use super::job::{Attempt, github_failed};
use crate::ids::InstallationId;
use crate::job::{FailureClass, Job, JobKind, Resolution};
use crate::markers;
use crate::report::render::{self, Link};
use crate::session::{self, GitAuth, SessionOutcome, Verdict};

/// The link to a session's log in the console's viewer (`{public_url}/sessions/{id}`, behind sign-in), when
/// Foreman knows its public address.
pub(super) fn session_log_link(parts: &Parts, session_id: &str) -> Option<Link> {
    let base = parts.public_url.as_deref()?.trim_end_matches('/');
    Some(Link { text: "session log".into(), url: format!("{base}/sessions/{session_id}") })
}

/// Turns a session's outcome into the job's: push and open the pull request for changes, post the answer
/// for an answer, classify a failure.
#[allow(clippy::too_many_arguments)]
pub(super) async fn conclude(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    outcome: &SessionOutcome,
    remote_url: &str,
    default_branch: &str,
    auth: &GitAuth,
    title: &str,
    follow_up: Option<&crate::github::PullRequest>,
    constitution: &crate::constitution::Constitution,
) -> Attempt {
    match &outcome.verdict {
        Verdict::ChangesReady => {}
        Verdict::Answered if job.kind == JobKind::Plan && outcome.plan.is_some() => {
            return super::plan::plan_ready(parts, job, inst, outcome, constitution).await;
        }
        Verdict::Answered => return answered(parts, job, inst, outcome).await,
        Verdict::NoChanges { reason } => return Attempt::failed(FailureClass::Agent, reason.clone()),
        Verdict::Failed { class, reason } => return session_failed(class, reason),
    }

    let target = super::publish::Target { remote_url, default_branch, auth, title, existing: follow_up };
    super::publish::publish(parts, job, inst, outcome, &target).await
}

/// Posts a session's answer (or, for a plan job, its plan) as one comment on the issue, found again by its
/// marker so a repeated report never posts it twice. The tracking comment links to it and does not repeat
/// it.
async fn answered(parts: &Parts, job: &Job, inst: InstallationId, outcome: &SessionOutcome) -> Attempt {
    let plan = job.kind == JobKind::Plan;
    let text = outcome.answer.clone().unwrap_or_default();
    let marker = markers::answer(&outcome.session_id);
    let body = format!("{}\n\n{marker}", render::answer_body(job.issue, &text, plan));
    let comment = match parts.client.upsert_marked_comment(inst, &job.repo, job.issue, &marker, &body).await {
        Ok(c) => c,
        Err(e) => return github_failed(if plan { "posting the plan" } else { "posting the answer" }, &e),
    };
    let (resolution, summary, link) = if plan {
        (Resolution::Plan, "the plan is posted in a comment", "the plan")
    } else {
        (Resolution::Answer, "answered in a comment", "the answer")
    };
    let answer = (!comment.html_url.is_empty()).then(|| Link { text: link.into(), url: comment.html_url.clone() });
    Attempt { answer, ..Attempt::succeeded(resolution, summary) }
}

/// The job's failure class for a session's: the agent's own failures count toward stuck; limits of the
/// API wait for their reset; Foreman's side backs off; a cancellation is recorded as such by whoever
/// cancelled, so it is an infrastructure failure only if the claim is somehow still held.
fn session_failed(class: &session::FailureCause, reason: &str) -> Attempt {
    use session::FailureCause as S;
    let reason = reason.to_owned();
    match class {
        S::Agent | S::TurnLimit | S::CostLimit | S::OutputLimit | S::Timeout | S::Stalled => {
            Attempt::failed(FailureClass::Agent, reason)
        }
        S::Validation => Attempt::failed(FailureClass::Validation, reason),
        S::UsageLimit { resets_at } => {
            let until = resets_at.and_then(|t| OffsetDateTime::from_unix_timestamp(t.as_second()).ok());
            Attempt::waiting(crate::job::WaitKind::UsageLimit, reason, until)
        }
        S::RateLimited | S::Overloaded => Attempt::failed(FailureClass::RateLimit, reason),
        S::Cancelled | S::Infrastructure => Attempt::failed(FailureClass::Infrastructure, reason),
    }
}
