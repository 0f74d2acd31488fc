//! One claimed job, from the claim to the report: read the issue, run the session (which checks the change
//! against the constitution), push the branch, open or update the pull request, request the review, post the
//! check run, record the outcome, and say where people look.
//!
//! Everything that reaches GitHub is idempotent, so a job that crashed half-way and runs again after
//! recovery ends in the same place: the push is recorded before it is made, so a branch already at the
//! recorded commit goes straight to its pull request without a second agent run (`runner::publish`), and
//! is a lease on Foreman's own branch; the pull request is found by its head before one is created, the
//! check run by its external id, the tracking comment by its marker.

use std::time::Instant;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::Parts;
use super::attempt::attempt;
use crate::github::GithubError;
use crate::job::{Claim, Claimed, FailureClass, Job, JobState, Outcome, Resolution, Trigger, Wait, WaitKind, nanos};
use crate::report::render::{self, Link, Tracking};
use crate::store::JobError;

/// The check run's name on the pull request's head commit.
pub const CHECK_RUN_NAME: &str = "Foreman";

/// How long a job waits for its last report to reach GitHub before the task ends. The outbox keeps
/// applying it afterwards; this only keeps the order of "report, then next job" in the common case.
const REPORT_FLUSH: std::time::Duration = std::time::Duration::from_secs(30);

/// What an attempt came to, before it is recorded.
pub(super) struct Attempt {
    pub(super) outcome: Outcome,
    pub(super) session_log: Option<Link>,
    pub(super) pull_request: Option<Link>,
    pub(super) progress: Option<render::Progress>,
    pub(super) summary: Option<String>,
    /// What a success came to (a pull request, an answer, a plan).
    pub(super) resolution: Option<Resolution>,
    /// The comment holding the answer or the plan.
    pub(super) answer: Option<Link>,
}

/// Runs one claimed job to its end. Never panics on GitHub, git or agent failures: each becomes the job's
/// recorded outcome.
pub async fn run(parts: &Parts, claimed: Claimed, cancel: CancellationToken, shutdown: &CancellationToken) {
    let span =
        tracing::info_span!("job", repo = %claimed.job.repo, issue = %claimed.job.issue, kind = ?claimed.job.kind);
    tracing::Instrument::instrument(run_in_span(parts, claimed, cancel, shutdown), span).await
}

async fn run_in_span(parts: &Parts, claimed: Claimed, cancel: CancellationToken, shutdown: &CancellationToken) {
    let Claimed { job, claim } = claimed;
    let started = Instant::now();
    tracing::info!(attempt = job.attempts, "claimed");
    metrics::counter!("foreman_jobs_claimed_total").increment(1);

    let work = async {
        match job.installation {
            Some(inst) => attempt(parts, &job, inst, &cancel).await,
            None => Attempt::failed(FailureClass::Infrastructure, "the job names no installation to act through"),
        }
    };
    tokio::pin!(work);
    // The heartbeat ends only when the claim is lost (it then cancels the session); the work goes on to its end.
    let attempt = tokio::select! {
        attempt = &mut work => attempt,
        () = heartbeat(parts, &claim, cancel.clone()) => work.await,
    };

    let outcome = if shutdown.is_cancelled() && !matches!(attempt.outcome, Outcome::Succeeded { .. }) {
        Outcome::Released { cause: "Foreman is shutting down".into() }
    } else {
        attempt.outcome.clone()
    };
    // Reasons are written for people at their source; a path under Foreman's data directory that a tool's
    // message still carries (git's, say) is not shown on the issue, nor kept in the ledger, all the same.
    let outcome = match outcome {
        Outcome::Failed { class, reason, retry_at } => {
            let data_dir = parts.sessions.workspaces().worktrees_root().parent().map(std::path::Path::to_path_buf);
            Outcome::Failed { class, reason: without_host_paths(&reason, data_dir.as_deref()), retry_at }
        }
        other => other,
    };
    let now = OffsetDateTime::now_utc();
    // The final report is stored in the flush that records the outcome: a crash after the finish leaves the
    // report to be applied at the next start, never a finished job with nothing reported.
    let mut attempt = Some(attempt);
    let mut report = None;
    let finished = parts
        .scheduler
        .finish_then(&claim, &outcome, now, |after| {
            if let (Some(inst), Some(attempt)) = (job.installation, attempt.take())
                && !matches!(outcome, Outcome::Released { .. })
            {
                let t = final_report(parts, after, &outcome, attempt);
                parts.outbox.record(inst, &t, nanos(after.updated_at));
                report = Some((inst, t, nanos(after.updated_at)));
            }
        })
        .await;
    let after = match finished {
        Ok(after) => {
            if matches!(outcome, Outcome::Succeeded { .. }) {
                // The run's push is concluded: a later attempt of the same run (a `/foreman retry`) works anew.
                if let Err(e) = parts.scheduler.store().settle_push(&job.repo, job.seq) {
                    tracing::warn!(error = %e, "settling the push record failed");
                }
            }
            Some(after)
        }
        Err(JobError::ClaimNotHeld { reason, .. }) => {
            tracing::info!(reason, "the claim was no longer held: the job was stopped or reclaimed");
            parts.scheduler.store().job(&job.repo, job.issue).ok().flatten()
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the outcome failed; recovery will requeue the job");
            None
        }
    };
    log_finished(&outcome, started.elapsed().as_millis() as u64);
    if let (Some(after), Some(inst)) = (&after, job.installation) {
        tell_related(parts, inst, after).await;
    }
    if let Some((inst, t, version)) = report {
        parts.outbox.update(inst, t, version);
        parts.outbox.flush(&job.repo, job.issue, REPORT_FLUSH).await;
        return;
    }
    let (Some(after), Some(inst), Some(attempt)) = (after, job.installation, attempt) else { return };
    if matches!(outcome, Outcome::Released { .. }) {
        return;
    }
    if after.state != JobState::Cancelled {
        // The claim expired or was reclaimed: the job as it is now.
        parts.outbox.update(inst, final_report(parts, &after, &outcome, attempt), nanos(after.updated_at));
        parts.outbox.flush(&job.repo, job.issue, REPORT_FLUSH).await;
        return;
    }
    // Stopped while it ran: say why, in the words of whoever stopped it.
    let mut t = tracking(parts, &after, after.state);
    let cause = parts
        .scheduler
        .store()
        .job_detail(&job.repo, job.issue)
        .ok()
        .flatten()
        .and_then(|d| d.audit.iter().rev().find(|e| e.action == "cancelled").map(|e| e.cause.clone()));
    t.summary = Some(match cause {
        Some(cause) => format!("Cancelled: {cause}. Nothing was pushed."),
        None => "Cancelled. Nothing was pushed.".into(),
    });
    t.progress = attempt.progress;
    t.session_log = attempt.session_log;
    parts.outbox.update(inst, t, nanos(after.updated_at));
    parts.outbox.flush(&job.repo, job.issue, REPORT_FLUSH).await;
}

/// After `job` changed: its dependents that wait say so again (a stuck job holds them until someone
/// retries it: "#12 is stuck; `/foreman retry` there"), and its parent's sub-issue checklist is drawn
/// again ([`crate::report::progress`]).
pub(super) async fn tell_related(parts: &Parts, inst: crate::ids::InstallationId, job: &Job) {
    if job.state == JobState::Stuck || job.state == JobState::Queued {
        let dependents = parts.scheduler.store().dependents(&job.issue_ref()).unwrap_or_default();
        for d in dependents.iter().filter(|d| d.state == JobState::Queued && !d.waiting_on.is_empty()) {
            let t = queued_tracking(&parts.trigger_label, &parts.scheduler, d);
            parts.outbox.update(d.installation.unwrap_or(inst), t, nanos(d.updated_at));
        }
    }
    crate::report::progress::redraw_parent_of(&parts.client, parts.scheduler.store(), inst, &job.issue_ref()).await;
}

/// The tracking comment of a job whose outcome was just recorded as `after`: the pull request, the session
/// log and figures, the summary, and for a failure its class, reason, next attempt and log tail; for a wait
/// (the job queued again), what it waits for.
fn final_report(parts: &Parts, after: &Job, outcome: &Outcome, attempt: Attempt) -> Tracking {
    if after.state == JobState::Queued {
        // A wait: back in the queue, saying what for and until when.
        return queued_tracking(&parts.trigger_label, &parts.scheduler, after);
    }
    let mut t = tracking(parts, after, after.state);
    t.pull_request = attempt.pull_request;
    t.session_log = attempt.session_log;
    t.progress = attempt.progress;
    t.summary = attempt.summary;
    if after.state == JobState::Succeeded {
        t.resolution = attempt.resolution;
        t.answer = attempt.answer;
    }
    if let (Outcome::Failed { class, reason, .. }, JobState::Failed | JobState::Stuck) = (outcome, t.state) {
        t.failure = Some(render::Failure {
            class: class.as_str().to_owned(),
            reason: reason.clone(),
            retry_at: after
                .not_before
                .map(|at| at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
        });
    }
    t
}

/// `reason` with every mention of `data_dir` (Foreman's data directory on this host) and of what is under
/// it written as `<data dir>`, so no host path reaches a comment.
fn without_host_paths(reason: &str, data_dir: Option<&std::path::Path>) -> String {
    match data_dir.map(|d| d.to_string_lossy().trim_end_matches('/').to_owned()).filter(|d| d.len() > 1) {
        Some(dir) => reason.replace(&dir, "<data dir>"),
        None => reason.to_owned(),
    }
}

/// The job task's last line, in fields: an infrastructure failure at ERROR (the operator's to fix), another
/// failure at WARN, the rest at INFO.
fn log_finished(outcome: &Outcome, elapsed_ms: u64) {
    let (name, class) = match outcome {
        Outcome::Succeeded { .. } => ("succeeded", ""),
        Outcome::Failed { class, .. } => ("failed", class.as_str()),
        Outcome::Waiting(wait) => ("waiting", wait.kind.as_str()),
        Outcome::Released { .. } => ("released", ""),
    };
    metrics::counter!("foreman_sessions_finished_total", "outcome" => name, "class" => class).increment(1);
    metrics::histogram!("foreman_session_duration_seconds", "outcome" => name).record(elapsed_ms as f64 / 1000.0);
    match outcome {
        Outcome::Succeeded { summary, .. } => tracing::info!(elapsed_ms, outcome = "succeeded", summary, "finished"),
        Outcome::Failed { class: FailureClass::Infrastructure, reason, .. } => {
            tracing::error!(elapsed_ms, outcome = "failed", class = "infrastructure", reason, "finished")
        }
        Outcome::Failed { class, reason, .. } => {
            tracing::warn!(elapsed_ms, outcome = "failed", class = class.as_str(), reason, "finished")
        }
        Outcome::Waiting(wait) => {
            let until = wait.until.map(crate::job::wait::when).unwrap_or_default();
            tracing::info!(
                elapsed_ms,
                outcome = "waiting",
                wait = wait.kind.as_str(),
                reason = wait.reason,
                until,
                "finished"
            )
        }
        Outcome::Released { cause } => tracing::info!(elapsed_ms, outcome = "released", cause, "finished"),
    }
}

/// Renews the claim every third of its time-to-live while the session shows life (the agent says so:
/// [`crate::session::Agent::renew`]; a remote session's runner must keep reporting). A claim no longer held
/// (stopped, expired, reclaimed) cancels the session: its work must not be pushed. Returns only then, or
/// when the session is cancelled.
async fn heartbeat(parts: &Parts, claim: &Claim, cancel: CancellationToken) {
    let scheduler = &parts.scheduler;
    let every = scheduler.heartbeat_interval();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
        if !parts.sessions.agent().renew(claim.session.as_str()) {
            tracing::warn!("the session shows no life: its claim is not renewed");
            continue;
        }
        match scheduler.heartbeat(claim, OffsetDateTime::now_utc()) {
            Ok(_) => {}
            Err(JobError::ClaimNotHeld { reason, .. }) => {
                tracing::warn!(reason, "claim lost; stopping the session");
                cancel.cancel();
                return;
            }
            Err(e) => tracing::error!(error = %e, "renewing the claim failed; trying again at the next beat"),
        }
    }
}

/// The tracking comment's view of `job` in `state`, with the attempt (the runner's reports).
pub(super) fn tracking(parts: &Parts, job: &Job, state: JobState) -> Tracking {
    let mut t = base_tracking(&parts.trigger_label, job, state);
    let config = parts.scheduler.config();
    let shown = Job { state, ..job.clone() };
    t.attempt = crate::job::attempt_counter(&shown, config.max_failures, config.max_infrastructure_failures);
    t.since_retry = job.retries > 0;
    t
}

/// The tracking comment of a queued `job` (`label` is the trigger label's name): what queued it, its place
/// in the queue when it is ready, and what it waits for ([`crate::scheduler::Scheduler::waiting_for`]).
/// The inbox worker's queued reports and the runner's after a wait are this.
pub fn queued_tracking(label: &str, scheduler: &crate::scheduler::Scheduler, job: &Job) -> Tracking {
    let mut t = base_tracking(label, job, JobState::Queued);
    t.queue_position =
        scheduler.store().queue_position(job).ok().flatten().map(|p| u32::try_from(p).unwrap_or(u32::MAX));
    let now = OffsetDateTime::now_utc();
    t.waiting = scheduler.waiting_for(job, now);
    t.wait_details = job
        .wait
        .as_ref()
        .filter(|_| job.not_before.is_some_and(|t| t > now))
        .and_then(|w| w.details())
        .map(str::to_owned);
    t.since_retry = job.retries > 0;
    t
}

/// What every report of `job` in `state` shows: what queued it (`label` is the trigger label's name) and when
/// the report was made. The inbox worker's reports (queued, cancelled) and the runner's start from it.
pub fn base_tracking(label: &str, job: &Job, state: JobState) -> Tracking {
    let mut t = Tracking::new(job.repo.clone(), job.issue, state);
    t.trigger = trigger_phrase(label, job);
    t.resolution = job.resolution.filter(|_| state == JobState::Succeeded);
    t.updated_at = OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).ok();
    t
}

/// How the tracking comment names what queued the job, e.g. ``the `foreman` label from @alice``.
pub fn trigger_phrase(label: &str, job: &Job) -> Option<String> {
    let who = job.requester.as_ref().map(|r| format!(" from @{r}")).unwrap_or_default();
    Some(match job.trigger? {
        Trigger::Label => format!("the `{label}` label{who}"),
        Trigger::Board => format!("a card moved on the board{who}"),
        Trigger::Command => format!("a `/foreman` command{who}"),
        Trigger::Review => format!("a review requesting changes{who}"),
    })
}

impl Attempt {
    /// An attempt that came to `outcome`, with nothing more to show yet.
    pub(super) fn new(outcome: Outcome) -> Self {
        Attempt {
            outcome,
            session_log: None,
            pull_request: None,
            progress: None,
            summary: None,
            resolution: None,
            answer: None,
        }
    }

    pub(super) fn failed(class: FailureClass, reason: impl Into<String>) -> Self {
        Self::new(Outcome::Failed { class, reason: reason.into(), retry_at: None })
    }

    /// A wait without fault (a budget, a usage limit, a quota, the sandbox): the job waits until `until`
    /// ([`crate::job::wait::UNKNOWN_WAIT`] when unknown); not an attempt, not a failure.
    pub(super) fn waiting(kind: WaitKind, reason: impl Into<String>, until: Option<OffsetDateTime>) -> Self {
        Self::new(Outcome::Waiting(Wait { kind, reason: reason.into(), until }))
    }

    /// A success that came to `resolution`; `summary` is the audit trail's account of it.
    pub(super) fn succeeded(resolution: Resolution, summary: &str) -> Self {
        Self {
            resolution: Some(resolution),
            ..Self::new(Outcome::Succeeded { summary: summary.to_owned(), resolution })
        }
    }
}

/// A GitHub failure before or after the session: Foreman's side, retried with backoff (a rate limit waits
/// for its reset).
pub(super) fn github_failed(what: &str, e: &GithubError) -> Attempt {
    match e {
        GithubError::RateLimited { reset, .. } => {
            let reason = format!("the installation's GitHub API quota is spent ({what})");
            Attempt::waiting(WaitKind::Quota, reason, reset.map(OffsetDateTime::from))
        }
        _ => Attempt::failed(FailureClass::Infrastructure, format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::without_host_paths;

    #[test]
    fn paths_under_the_data_directory_are_not_shown() {
        let dir = std::path::Path::new("/var/lib/foreman/");
        assert_eq!(
            without_host_paths("git push failed: fatal: '/var/lib/foreman/mirrors/a/b.git' is locked", Some(dir)),
            "git push failed: fatal: '<data dir>/mirrors/a/b.git' is locked"
        );
        assert_eq!(without_host_paths("as it was", Some(std::path::Path::new("/"))), "as it was");
        assert_eq!(without_host_paths("as it was", None), "as it was");
    }
}
