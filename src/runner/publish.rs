//! Changes to the pull request, exactly once across crashes: the push Foreman is about to make is recorded
//! in the job store ([`crate::job::PushIntent`]) and made durable before `git push` runs; then the branch is
//! pushed, the pull request opened or found (or, for a follow-up or a re-run, the existing one brought up to
//! date), the review requested and the check run posted.
//!
//! An attempt after a crash (or after a failure past the push: GitHub refusing the pull request, say) of the
//! same run request ([`crate::job::Job::seq`]) that finds the remote branch at the commit it recorded knows
//! the branch is its own: it goes straight to the pull request and the check run ([`resume_pushed`]),
//! without running the agent again.
//!
//! A `/foreman run` on an issue whose Foreman pull request is open builds on it ([`open_pull_for_issue`]):
//! the session starts from the pull request's head and adds commits, so the push is a fast-forward of the
//! branch as it was fetched. Foreman never rewrites a branch with commits it did not make (the push's lease,
//! [`crate::report::push`]), and rewrites its own only when no pull request of its is open for it.

use super::Parts;
use super::job::{Attempt, CHECK_RUN_NAME, github_failed};
use crate::github::{CheckRunOutput, CheckRunSpec, GithubError, NewPullRequest, PullRequest};
use crate::ids::{InstallationId, IssueNumber};
use crate::job::{FailureClass, Job, PullRequestDraft, PushIntent, Resolution};
use crate::markers;
use crate::report::push::{self as push, PushRequest};
use crate::report::render::{self, Link};
use crate::session::{GitAuth, SessionOutcome};

/// Where the remote branch is and which commit to push: what [`publish`] needs of the attempt besides the
/// session's outcome.
pub(super) struct Target<'a> {
    /// The repository's clone URL (no credentials).
    pub(super) remote_url: &'a str,
    /// The repository's default branch, the pull request's base.
    pub(super) default_branch: &'a str,
    /// The session token, for git.
    pub(super) auth: &'a GitAuth,
    /// The issue's title, for a new pull request's.
    pub(super) title: &'a str,
    /// The pull request the commits add to (a follow-up's, or the open one a re-run continues).
    pub(super) existing: Option<&'a PullRequest>,
}

/// The issue whose push record covers `branch`: the issue the branch was made for (`foreman/<issue>-…`), so
/// a follow-up's pushes (a job keyed by the pull request's number) are recorded with the issue's; the job's
/// own issue for a branch of another shape.
pub(super) fn record_issue(job: &Job, branch: &str) -> IssueNumber {
    crate::session::workspace::issue_of_branch(branch).unwrap_or(job.issue)
}

/// The follow-up's pull request, with the agent session named in its body brought up to date (the next
/// follow-up resumes the newest session).
async fn follow_up_pull(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    pr: &PullRequest,
    session: Option<&str>,
) -> Result<PullRequest, GithubError> {
    let Some(id) = session else { return Ok(pr.clone()) };
    let body = pr.body.clone().unwrap_or_default();
    if markers::parse_agent_session(&body).as_deref() == Some(id) {
        return Ok(pr.clone());
    }
    let body = markers::set_agent_session(&body, id);
    let update = crate::github::PullRequestUpdate { title: None, body: Some(body), state: None };
    parts.client.update_pull(inst, &job.repo, pr.number, &update).await
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

/// The push and pull request a session's changes come to, decided before anything is pushed.
fn intent(parts: &Parts, job: &Job, outcome: &SessionOutcome, target: &Target<'_>) -> PushIntent {
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
    let mut body = render::pull_request_body(&render::PullRequestBody {
        issue: job.issue,
        summary: summary.clone(),
        figures,
        requester: job.requester.as_ref().map(|r| r.0.clone()),
        tracking_comment: None,
        session_log: super::conclude::session_log_link(parts, &outcome.session_id),
    });
    if let Some(id) = &outcome.agent_session_id {
        body.push_str(&format!("\n\n{}", markers::agent_session(id)));
    }
    PushIntent {
        seq: job.seq,
        sha: outcome.changes.head.clone(),
        session: outcome.session_id.clone(),
        agent_session: outcome.agent_session_id.clone(),
        summary: Some(summary).filter(|s| !s.trim().is_empty()),
        check_summary: match &outcome.enforcement {
            Some(decision) => crate::constitution::decision_markdown(decision),
            None => "No constitution rules applied.".into(),
        },
        allowed: allowed(outcome.enforcement.as_ref()),
        pull_request: PullRequestDraft {
            title: format!("{} (#{})", target.title, job.issue),
            body,
            base: target.default_branch.to_owned(),
            existing: target.existing.map(|pr| pr.number.0),
        },
        at: time::OffsetDateTime::now_utc(),
    }
}

/// Records the push, pushes the session's branch, and opens or updates the pull request.
pub(super) async fn publish(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    outcome: &SessionOutcome,
    target: &Target<'_>,
) -> Attempt {
    let intent = intent(parts, job, outcome, target);
    let store = parts.scheduler.store();
    let issue = record_issue(job, &outcome.branch);
    // The branch stays Foreman's own when the session started it from the default branch, or from a head
    // that was Foreman's own.
    let own = match (target.existing, &outcome.base_commit) {
        (None, _) => true,
        (Some(_), Some(base)) => {
            store.push_record(&job.repo, issue).ok().flatten().is_some_and(|r| r.is_ours(&outcome.branch, base))
        }
        (Some(_), None) => false,
    };
    let recorded = match store.record_push_intent(&job.repo, issue, &outcome.branch, &intent, own) {
        Ok(record) => record,
        Err(e) => return Attempt::failed(FailureClass::Infrastructure, format!("recording the push: {e}")),
    };
    if let Err(e) = store.sync().await {
        return Attempt::failed(FailureClass::Infrastructure, format!("recording the push: {e}"));
    }
    let mirror = parts.sessions.workspaces().mirror_path(&job.repo);
    let expected = push::remote_tracking(&mirror, &outcome.branch).await;
    let mut pushed = push_once(parts, &mirror, &outcome.branch, target, expected.as_deref()).await;
    if target.existing.is_none() && matches!(pushed, Err(push::PushError::Diverged { .. })) {
        // A branch started again from the default branch replaces Foreman's own. The mirror's tracking ref
        // may be behind a push of Foreman's (a crash right after it): the remote branch is Foreman's own
        // when it is at a head Foreman recorded, and then the lease expects it. A branch deleted since
        // (after its pull request was closed, say) is pushed anew. (A session on an existing branch fetched
        // it at its start: a refused lease there is someone's push since, kept.)
        match push::remote_head(&mirror, target.remote_url, &outcome.branch, target.auth).await {
            Ok(Some(head)) if recorded.is_ours(&outcome.branch, &head) => {
                pushed = push_once(parts, &mirror, &outcome.branch, target, Some(&head)).await;
            }
            Ok(None) => {
                pushed = push_once(parts, &mirror, &outcome.branch, target, None).await;
            }
            Ok(_) => {}
            Err(e) => tracing::info!(error = %e, "reading the remote branch after a refused push failed"),
        }
    }
    match pushed {
        Ok(p) if p.sha != intent.sha => {
            // The mirror's branch moved between the session's end and the push: nothing else writes it.
            tracing::warn!(pushed = %p.sha, recorded = %intent.sha, "the pushed commit is not the one recorded");
        }
        Ok(_) => {}
        Err(e) => return Attempt::failed(FailureClass::Infrastructure, format!("pushing {}: {e}", outcome.branch)),
    }
    open_pull(parts, job, inst, &outcome.branch, &intent, target.existing).await
}

async fn push_once(
    parts: &Parts,
    mirror: &std::path::Path,
    branch: &str,
    target: &Target<'_>,
    expected: Option<&str>,
) -> Result<push::Pushed, push::PushError> {
    parts
        .pusher
        .push(&PushRequest {
            git_dir: mirror,
            remote_url: target.remote_url,
            branch,
            default_branch: target.default_branch,
            expected_remote: expected,
            auth: target.auth,
        })
        .await
}

/// After a crash between a push and its outcome's record (or a failure after the push), the same run's
/// next attempt: when this run recorded a push and the remote branch is at its commit, the pull request
/// and check run it was for, without running the agent again. `issue` is whose record to read
/// ([`record_issue`]: the job's, or for a follow-up the issue its branch was made for). `None`: nothing of
/// this run was pushed, and the attempt runs the session.
pub(super) async fn resume_pushed(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    remote_url: &str,
    issue: IssueNumber,
) -> Option<Attempt> {
    let record = match parts.scheduler.store().push_record(&job.repo, issue) {
        Ok(record) => record?,
        Err(e) => return Some(Attempt::failed(FailureClass::Infrastructure, format!("reading the push record: {e}"))),
    };
    let intent = record.pending_for(job.seq)?;
    let token = match parts.client.session_token(inst, &job.repo).await {
        Ok(t) => t,
        Err(e) => return Some(github_failed("minting the session token", &e)),
    };
    let auth = GitAuth::installation_token(token.token.clone());
    let mirror = parts.sessions.workspaces().mirror_path(&job.repo);
    let head = match push::remote_head(&mirror, remote_url, &record.branch, &auth).await {
        Ok(head) => head,
        Err(e) => {
            return Some(Attempt::failed(
                FailureClass::Infrastructure,
                format!("reading the remote branch {}: {e}", record.branch),
            ));
        }
    };
    if head.as_deref() != Some(intent.sha.as_str()) {
        return None;
    }
    tracing::info!(
        branch = %record.branch,
        sha = %intent.sha,
        "the branch is at the commit this run pushed; opening its pull request without running the agent again"
    );
    if let Err(e) = push::set_remote_tracking(&mirror, &record.branch, &intent.sha).await {
        tracing::info!(error = %e, "could not note the pushed commit in the mirror");
    }
    let mut done = open_pull(parts, job, inst, &record.branch, intent, None).await;
    done.session_log = super::conclude::session_log_link(parts, &intent.session);
    Some(done)
}

/// Opens the pull request `intent` is for (or brings the existing one up to date), requests the review and
/// posts the check run on the pushed commit. `known` is the existing pull request when the caller has it.
async fn open_pull(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    branch: &str,
    intent: &PushIntent,
    known: Option<&PullRequest>,
) -> Attempt {
    let draft = &intent.pull_request;
    let pr = match (known, draft.existing) {
        (Some(pr), _) => follow_up_pull(parts, job, inst, pr, intent.agent_session.as_deref()).await,
        (None, Some(number)) => match parts.client.pull(inst, &job.repo, crate::ids::IssueNumber(number)).await {
            Ok(pr) => follow_up_pull(parts, job, inst, &pr, intent.agent_session.as_deref()).await,
            Err(e) => Err(e),
        },
        (None, None) => {
            let new = NewPullRequest {
                title: draft.title.clone(),
                head: branch.to_owned(),
                base: draft.base.clone(),
                body: draft.body.clone(),
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
        head_sha: Some(intent.sha.clone()),
        status: Some("completed".into()),
        conclusion: Some("success".into()),
        external_id: Some(intent.session.clone()),
        output: Some(CheckRunOutput {
            title: "The agent's change passed the constitution".into(),
            summary: intent.check_summary.clone(),
        }),
    };
    if let Err(e) = parts.client.create_check_run(inst, &job.repo, &check).await {
        tracing::warn!(error = %e, "posting the check run failed");
    }
    Attempt {
        pull_request: Some(Link { text: format!("#{}", pr.number), url: pr.html_url.clone() }),
        summary: intent.summary.clone(),
        ..Attempt::succeeded(Resolution::PullRequest, &format!("pull request #{}; {}", pr.number, intent.allowed))
    }
}

/// The issue's open pull request from a Foreman branch, which a `/foreman run` builds on: looked for by the
/// branch Foreman last pushed for the issue (its push record), else by the branch name it would use when
/// the mirror knows that branch (a push from before push records were kept). `Ok(None)`: none is open, and
/// the session starts a branch from the default branch.
///
/// Errors: GitHub's, when the pull requests cannot be read (the attempt is retried rather than rebuilding a
/// branch whose pull request may be open).
pub(super) async fn open_pull_for_issue(
    parts: &Parts,
    job: &Job,
    inst: InstallationId,
    default_branch: &str,
) -> Result<Option<PullRequest>, GithubError> {
    let recorded = parts.scheduler.store().push_record(&job.repo, job.issue).ok().flatten().map(|r| r.branch);
    let branch = match recorded {
        Some(branch) => branch,
        None => {
            let name = crate::session::workspace::branch_name(job.issue, &job.title);
            let mirror = parts.sessions.workspaces().mirror_path(&job.repo);
            if push::remote_tracking(&mirror, &name).await.is_none() {
                return Ok(None);
            }
            name
        }
    };
    if parts.pusher.check_branch(&branch, default_branch).is_err() {
        return Ok(None);
    }
    let pulls = parts.client.pulls_by_head(inst, &job.repo, &branch).await?;
    Ok(pulls.into_iter().find(|p| p.state == "open" && p.head.branch == branch))
}

/// Before a session that starts `branch` anew from the default branch (no pull request of Foreman's is open
/// for the issue): refuses, as a validation failure and without running the agent, when the remote branch
/// has a head Foreman did not make (someone added to it after its pull request was closed), since the push
/// would have to rewrite it. Only a branch Foreman knows (its push record, or the mirror's tracking ref) is
/// looked at; for any other, the push's lease refuses a branch that appeared meanwhile.
pub(super) async fn refuse_foreign_branch(
    parts: &Parts,
    job: &Job,
    branch: &str,
    remote_url: &str,
    auth: &GitAuth,
) -> Option<Attempt> {
    let record = parts.scheduler.store().push_record(&job.repo, job.issue).ok().flatten();
    let mirror = parts.sessions.workspaces().mirror_path(&job.repo);
    let tracking = push::remote_tracking(&mirror, branch).await;
    if tracking.is_none() && record.as_ref().is_none_or(|r| r.branch != branch) {
        return None;
    }
    let head = match push::remote_head(&mirror, remote_url, branch, auth).await {
        Ok(head) => head?,
        Err(e) => {
            return Some(Attempt::failed(
                FailureClass::Infrastructure,
                format!("reading the remote branch {branch}: {e}"),
            ));
        }
    };
    // With a record, only a head Foreman pushed over its own commits is its own (the tracking ref may be a
    // follow-up's fetch of someone else's commit); without one (pushed before records were kept), the
    // commit Foreman last pushed or fetched.
    let ours = match record.filter(|r| r.branch == branch) {
        Some(r) => r.is_ours(branch, &head),
        None => tracking.as_deref() == Some(head.as_str()),
    };
    if ours {
        return None;
    }
    Some(Attempt::failed(
        FailureClass::Validation,
        format!(
            "the branch {branch} has commits Foreman did not make and no open pull request of Foreman's; \
             Foreman does not rewrite it: reopen its pull request to build on it, or delete the branch"
        ),
    ))
}
