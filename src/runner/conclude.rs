//! What a session's outcome comes to: push the branch and open or update the pull request, request the
//! review and post the check run for changes; post the answer for an answer; classify a failure.

use time::OffsetDateTime;

use super::Parts;
use super::job::{Attempt, CHECK_RUN_NAME, github_failed};
use crate::github::{CheckRunOutput, CheckRunSpec, GithubError, NewPullRequest};
use crate::ids::InstallationId;
use crate::job::{FailureClass, Job, JobKind, Resolution};
use crate::markers;
use crate::report::render::{self, Link};
use crate::session::{self, GitAuth, SessionOutcome, Verdict};

/// The follow-up's pull request, with the agent session named in its body brought up to date (the next
/// follow-up resumes the newest session).
async fn follow_up_pull(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    pr: &crate::github::PullRequest,
    session: Option<&str>,
) -> Result<crate::github::PullRequest, GithubError> {
    let Some(id) = session else { return Ok(pr.clone()) };
    let body = pr.body.clone().unwrap_or_default();
    if markers::parse_agent_session(&body).as_deref() == Some(id) {
        return Ok(pr.clone());
    }
    let body = markers::set_agent_session(&body, id);
    let update = crate::github::PullRequestUpdate { title: None, body: Some(body), state: None };
    parts.client.update_pull(inst, &job.repo, job.issue, &update).await
}

/// The constitution's allow decision in one line, for the job's audit trail (a deny is the failure's reason).
fn allowed(decision: Option<&crate::constitution::Decision>) -> String {
    let Some(d) = decision else { return "no constitution check (no changes to check)".into() };
    let commands: Vec<String> = d.commands.iter().map(|c| format!("`{}` passed", c.name)).collect();
    let mut line = format!("constitution allowed the change ({} files, {} lines", d.files_changed, d.lines_changed);
    if !commands.is_empty() {
        line.push_str("; ");
        line.push_str(&commands.join(", "));
    }
    line.push(')');
    line
}

/// The link to a session's log through Foreman's admin API, when Foreman knows its public address.
pub(super) fn session_log_link(parts: &Parts, session_id: &str) -> Option<Link> {
    let base = parts.public_url.as_deref()?.trim_end_matches('/');
    Some(Link { text: "session log".into(), url: format!("{base}/api/sessions/{session_id}/log") })
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
) -> Attempt {
    match &outcome.verdict {
        Verdict::ChangesReady => {}
        Verdict::Answered => return answered(parts, job, inst, outcome).await,
        Verdict::NoChanges { reason } => return Attempt::failed(FailureClass::Agent, reason.clone()),
        Verdict::Failed { class, reason } => return session_failed(class, reason),
    }

    let mirror = parts.sessions.workspaces().mirror_path(&job.repo);
    let expected = crate::report::push::remote_tracking(&mirror, &outcome.branch).await;
    let pushed = parts
        .pusher
        .push(&crate::report::push::PushRequest {
            git_dir: &mirror,
            remote_url,
            branch: &outcome.branch,
            default_branch,
            expected_remote: expected.as_deref(),
            auth,
        })
        .await;
    let sha = match pushed {
        Ok(p) => p.sha,
        Err(e) => return Attempt::failed(FailureClass::Infrastructure, format!("pushing {}: {e}", outcome.branch)),
    };

    let figures = render::Figures {
        agent: parts.agent_name.clone(),
        attempt: job.attempts.max(1),
        turns: outcome.summary.turns,
        tool_calls: outcome.summary.tool_count,
        cost_usd: outcome.summary.cost_usd,
        duration_ms: outcome.summary.duration_ms,
        commits: outcome.summary.commits,
        files_changed: outcome.summary.files_changed,
        lines_added: outcome.changes.files.iter().map(|f| f.added).sum(),
        lines_deleted: outcome.changes.files.iter().map(|f| f.deleted).sum(),
    };
    let summary = outcome.answer.clone().unwrap_or_default();
    let pr = match follow_up {
        Some(pr) => follow_up_pull(parts, job, inst, pr, outcome.agent_session_id.as_deref()).await,
        None => {
            let mut body = render::pull_request_body(&render::PullRequestBody {
                issue: job.issue,
                summary: summary.clone(),
                figures,
                requester: job.requester.as_ref().map(|r| r.0.clone()),
                tracking_comment: None,
                session_log: session_log_link(parts, &outcome.session_id),
            });
            if let Some(id) = &outcome.agent_session_id {
                body.push_str(&format!("\n\n{}", markers::agent_session(id)));
            }
            let new = NewPullRequest {
                title: format!("{title} (#{})", job.issue),
                head: outcome.branch.clone(),
                base: default_branch.to_owned(),
                body,
                draft: false,
            };
            parts.client.upsert_pull(inst, &job.repo, &new).await
        }
    };
    let pr = match pr {
        Ok(pr) => pr,
        Err(e) => return github_failed("opening the pull request", &e),
    };
    if let Some(requester) = job.requester.as_ref().map(|r| r.as_str()).filter(|r| !r.ends_with("[bot]")) {
        // A requester who may not review (not a collaborator, or the author) is told by GitHub with a 422;
        // the pull request stands either way.
        if let Err(e) = parts.client.request_reviewers(inst, &job.repo, pr.number, &[requester]).await {
            tracing::info!(error = %e, requester, "could not request a review");
        }
    }
    let check = CheckRunSpec {
        name: Some(CHECK_RUN_NAME.into()),
        head_sha: Some(sha),
        status: Some("completed".into()),
        conclusion: Some("success".into()),
        external_id: Some(outcome.session_id.clone()),
        output: Some(CheckRunOutput {
            title: "The agent's change passed the constitution".into(),
            summary: match &outcome.enforcement {
                Some(decision) => crate::constitution::decision_markdown(decision),
                None => "No constitution rules applied.".into(),
            },
        }),
    };
    if let Err(e) = parts.client.create_check_run(inst, &job.repo, &check).await {
        tracing::warn!(error = %e, "posting the check run failed");
    }
    Attempt {
        pull_request: Some(Link { text: format!("#{}", pr.number), url: pr.html_url.clone() }),
        summary: Some(summary).filter(|s| !s.trim().is_empty()),
        ..Attempt::succeeded(
            Resolution::PullRequest,
            &format!("pull request #{}; {}", pr.number, allowed(outcome.enforcement.as_ref())),
        )
    }
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
            Attempt::waiting(reason, resets_at.and_then(|t| OffsetDateTime::from_unix_timestamp(t.as_second()).ok()))
        }
        S::RateLimited | S::Overloaded => Attempt::failed(FailureClass::RateLimit, reason),
        S::Cancelled | S::Infrastructure => Attempt::failed(FailureClass::Infrastructure, reason),
    }
}
