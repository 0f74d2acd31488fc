//! What a session's outcome comes to: for changes, the push and the pull request ([`super::publish`]); post
//! the answer for an answer; classify a failure.

use time::OffsetDateTime;

use super::Parts;
use super::job::{Attempt, github_failed};
use crate::ids::InstallationId;
use crate::job::{FailureClass, Job};
use crate::markers;
use crate::report::render::Link;
use crate::session::{self, GitAuth, SessionOutcome, Verdict};

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
        Verdict::Answered => {
            let answer = outcome.answer.clone().unwrap_or_default();
            let marker = markers::answer(&outcome.session_id);
            let body = format!("{}\n\n{marker}", crate::github::redact::redact_tokens(&answer));
            if let Err(e) = parts.client.upsert_marked_comment(inst, &job.repo, job.issue, &marker, &body).await {
                return github_failed("posting the answer", &e);
            }
            return Attempt { summary: Some(answer), ..Attempt::succeeded("answered in a comment") };
        }
        Verdict::NoChanges { reason } => return Attempt::failed(FailureClass::Agent, reason.clone()),
        Verdict::Failed { class, reason } => return session_failed(class, reason),
    }

    let target = super::publish::Target { remote_url, default_branch, auth, title, existing: follow_up };
    super::publish::publish(parts, job, inst, outcome, &target).await
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

/// The end of a session log shown in a failure comment, in bytes.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// The last [`LOG_TAIL_BYTES`] of a session log, from a line start; empty when it cannot be read.
pub(super) fn log_tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut text = String::new();
    let _ = file.take(LOG_TAIL_BYTES).read_to_string(&mut text);
    match text.find('\n') {
        Some(i) if len > LOG_TAIL_BYTES => text[i + 1..].to_owned(),
        _ => text,
    }
}
