//! One claimed job, from the claim to the report: read the issue, run the session (which checks the change
//! against the constitution), push the branch, open or update the pull request, request the review, post the
//! check run, record the outcome, and say where people look.
//!
//! Everything that reaches GitHub is idempotent, so a job that crashed half-way and runs again after
//! recovery ends in the same place: the push is a lease on Foreman's own branch, the pull request is found
//! by its head before one is created, the check run by its external id, the tracking comment by its marker.

use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::Parts;
use crate::github::{CheckRunOutput, CheckRunSpec, GithubError, NewPullRequest};
use crate::ids::InstallationId;
use crate::job::{Claim, Claimed, FailureClass, Job, JobKind, JobState, Outcome, Trigger, nanos};
use crate::markers;
use crate::report::render::{self, Link, Tracking};
use crate::session::{self, GitAuth, PromptKind, SessionOutcome, SessionSpec, Verdict};
use crate::store::JobError;

/// The check run's name on the pull request's head commit.
pub const CHECK_RUN_NAME: &str = "Foreman";

/// How long a job waits for its last report to reach GitHub before the task ends. The outbox keeps
/// applying it afterwards; this only keeps the order of "report, then next job" in the common case.
const REPORT_FLUSH: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a job waits before it looks at the sandbox again when the sandbox could not be created at
/// start. The check runs once per start (the operator installs bubblewrap or changes the kernel setting and
/// restarts), so this only bounds how often the waiting job is reported again: every 10 minutes.
const SANDBOX_RECHECK: time::Duration = time::Duration::minutes(10);

/// The constitution's rules as the prompt lists them, one sentence each ([`crate::constitution::prompt_markdown`]'s
/// list items), then its free-text sections.
fn prompt_rules(constitution: &crate::constitution::Constitution) -> Vec<String> {
    let markdown = crate::constitution::prompt_markdown(constitution);
    let mut rules: Vec<String> = markdown.lines().filter_map(|l| l.strip_prefix("- ")).map(str::to_owned).collect();
    let r = &constitution.rules;
    for (title, text) in [
        ("Deployment target", &r.deployment_target),
        ("Secret naming", &r.secret_naming),
        ("Coding standards", &r.coding_standards),
    ] {
        if let Some(text) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            rules.push(format!("{title}: {text}"));
        }
    }
    rules
}

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

/// How a failure caused by an invalid `.github/foreman.toml` begins, so the next attempt knows to mark the
/// error comment resolved once the file loads.
const INVALID_CONSTITUTION: &str = "the constitution is invalid";

/// `Some((what is spent, when it renews))` when the repository's daily budget (`[limits]` of its
/// constitution) leaves no room for this session. The session just claimed is already recorded, so it is
/// not counted against itself.
fn budget_spent(
    parts: &Parts,
    job: &Job,
    limits: &crate::constitution::Limits,
) -> Option<(crate::constitution::Spent, OffsetDateTime)> {
    if limits.daily_sessions.is_none() && limits.daily_cost_usd.is_none() {
        return None;
    }
    let now = OffsetDateTime::now_utc();
    let since = crate::constitution::budget::start_of_utc_day(now);
    let mut usage = match parts.scheduler.store().repo_usage(&job.repo, since) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "reading today's usage failed; the session runs");
            return None;
        }
    };
    usage.sessions = usage.sessions.saturating_sub(1);
    match crate::constitution::check_budget(limits, &usage, now) {
        crate::constitution::BudgetVerdict::Allowed => None,
        crate::constitution::BudgetVerdict::Wait { spent, resume_at } => Some((spent, resume_at)),
    }
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
fn session_log_link(parts: &Parts, session_id: &str) -> Option<Link> {
    let base = parts.public_url.as_deref()?.trim_end_matches('/');
    Some(Link { text: "session log".into(), url: format!("{base}/api/sessions/{session_id}/log") })
}

/// The end of a session log shown in a failure comment, in bytes.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// What an attempt came to, before it is recorded.
struct Attempt {
    outcome: Outcome,
    session_log: Option<Link>,
    pull_request: Option<Link>,
    progress: Option<render::Progress>,
    summary: Option<String>,
    log_tail: String,
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

    let heartbeat = tokio::spawn(heartbeat(parts.scheduler.clone(), claim.clone(), cancel.clone()));
    let attempt = match job.installation {
        Some(inst) => attempt(parts, &job, inst, &cancel).await,
        None => Attempt::failed(FailureClass::Infrastructure, "the job names no installation to act through"),
    };
    heartbeat.abort();

    let outcome = if shutdown.is_cancelled() && !matches!(attempt.outcome, Outcome::Succeeded { .. }) {
        Outcome::Released { cause: "Foreman is shutting down".into() }
    } else {
        attempt.outcome.clone()
    };
    let now = OffsetDateTime::now_utc();
    let after = match parts.scheduler.finish(&claim, &outcome, now).await {
        Ok(after) => Some(after),
        Err(JobError::ClaimNotHeld { reason, .. }) => {
            tracing::info!(reason, "the claim was no longer held: the job was stopped or reclaimed");
            parts.scheduler.store().job(&job.repo, job.issue).ok().flatten()
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the outcome failed; recovery will requeue the job");
            None
        }
    };
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, outcome = ?outcome, "finished");
    let (Some(after), Some(inst)) = (after, job.installation) else { return };
    if matches!(outcome, Outcome::Released { .. }) {
        return;
    }
    let mut t = tracking(parts, &after, after.state);
    if after.state == JobState::Cancelled {
        // Stopped while it ran: say why, in the words of whoever stopped it.
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
        return;
    }
    t.pull_request = attempt.pull_request;
    t.session_log = attempt.session_log;
    t.progress = attempt.progress;
    t.summary = attempt.summary;
    if let (Outcome::Failed { class, reason, .. }, JobState::Failed | JobState::Stuck) = (&outcome, t.state) {
        t.failure = Some(render::Failure {
            class: class.as_str().to_owned(),
            reason: reason.clone(),
            retry_at: after
                .not_before
                .map(|at| at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
            log_tail: attempt.log_tail,
        });
    }
    parts.outbox.update(inst, t, nanos(after.updated_at));
    parts.outbox.flush(&job.repo, job.issue, REPORT_FLUSH).await;
}

/// Renews the claim every third of its time-to-live until aborted. A claim no longer held (stopped,
/// expired, reclaimed) cancels the session: its work must not be pushed.
async fn heartbeat(scheduler: crate::scheduler::Scheduler, claim: Claim, cancel: CancellationToken) {
    let every = scheduler.heartbeat_interval();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
        match scheduler.heartbeat(&claim, OffsetDateTime::now_utc()) {
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
fn tracking(parts: &Parts, job: &Job, state: JobState) -> Tracking {
    let mut t = base_tracking(&parts.trigger_label, job, state);
    t.attempt = Some((job.attempts.max(1), parts.scheduler.config().max_failures));
    t
}

/// What every report of `job` in `state` shows: what queued it (`label` is the trigger label's name) and when
/// the report was made. The inbox worker's reports (queued, cancelled) and the runner's start from it.
pub fn base_tracking(label: &str, job: &Job, state: JobState) -> Tracking {
    let mut t = Tracking::new(job.repo.clone(), job.issue, state);
    t.trigger = trigger_phrase(label, job);
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
    fn new(outcome: Outcome) -> Self {
        Attempt {
            outcome,
            session_log: None,
            pull_request: None,
            progress: None,
            summary: None,
            log_tail: String::new(),
        }
    }

    fn failed(class: FailureClass, reason: impl Into<String>) -> Self {
        Self::new(Outcome::Failed { class, reason: reason.into(), retry_at: None })
    }

    /// A rate limit or a spent budget: the job waits until `retry_at` (a backoff when unknown), not counted.
    fn waiting(reason: impl Into<String>, retry_at: Option<OffsetDateTime>) -> Self {
        Self::new(Outcome::Failed { class: FailureClass::RateLimit, reason: reason.into(), retry_at })
    }

    fn succeeded(summary: &str) -> Self {
        Self::new(Outcome::Succeeded { summary: summary.to_owned() })
    }
}

/// A GitHub failure before or after the session: Foreman's side, retried with backoff (a rate limit waits
/// for its reset).
fn github_failed(what: &str, e: &GithubError) -> Attempt {
    match e {
        GithubError::RateLimited { reset, .. } => {
            Attempt::waiting(format!("{what}: {e}"), reset.map(OffsetDateTime::from))
        }
        _ => Attempt::failed(FailureClass::Infrastructure, format!("{what}: {e}")),
    }
}

/// At most this many authors' permissions are read for one prompt; the text of any further author is
/// untrusted. Bounds the GitHub calls one session's prompt makes (each answer is cached by user id for
/// [`crate::github::ClientOptions::permission_ttl`], 5 minutes by default, and a repeated read is conditional,
/// so an unchanged answer costs no quota).
const MAX_PERMISSION_LOOKUPS: usize = 50;

/// Whether `user`'s text is trusted without asking GitHub: `Some(false)` for a bot (`type` `Bot`, or a login
/// ending in `[bot]`: Foreman's own app among them), `Some(true)` for the repository's owner
/// (`author_association` OWNER), `None` for everyone else, whose permission must be read: MEMBER and
/// COLLABORATOR say nothing of write access.
fn trusted_without_lookup(user: &crate::github::User, association: &str) -> Option<bool> {
    if user.kind == "Bot" || user.login.ends_with("[bot]") {
        Some(false)
    } else if association == "OWNER" {
        Some(true)
    } else {
        None
    }
}

/// Whether each author's text is trusted in the prompt, by user id: [`trusted_without_lookup`], else write
/// (or higher) permission as `GET /repos/{owner}/{repo}/collaborators/{username}/permission` says. A failed
/// read, or one past [`MAX_PERMISSION_LOOKUPS`], means untrusted. `authors` are (user, `author_association`)
/// pairs, repeats allowed.
async fn trusted_authors<'a>(
    client: &crate::github::Client,
    inst: InstallationId,
    repo: &crate::ids::RepoName,
    authors: impl Iterator<Item = (&'a crate::github::User, &'a str)>,
) -> std::collections::HashMap<crate::ids::UserId, bool> {
    let mut trust = std::collections::HashMap::new();
    let mut lookups = 0;
    for (user, association) in authors {
        if trust.contains_key(&user.id) {
            continue;
        }
        let trusted = match trusted_without_lookup(user, association) {
            Some(known) => known,
            None if lookups >= MAX_PERMISSION_LOOKUPS => false,
            None => {
                lookups += 1;
                match client.collaborator_permission(inst, repo, user.id, &user.login).await {
                    Ok(permission) => permission >= crate::github::Permission::Write,
                    Err(e) => {
                        tracing::warn!(user = %user.login, error = %e, "reading a permission failed; their text is untrusted");
                        false
                    }
                }
            }
        };
        trust.insert(user.id, trusted);
    }
    trust
}

async fn attempt(parts: &Parts, job: &Job, inst: InstallationId, cancel: &CancellationToken) -> Attempt {
    let client = &parts.client;
    parts.outbox.update(inst, tracking(parts, job, JobState::Running), nanos(job.updated_at));
    if let Some(why) = parts.sessions.executor().unavailable() {
        // Nothing changes until the operator fixes the host and restarts Foreman: wait, without counting
        // an attempt against the issue, and say why on it.
        let retry_at = OffsetDateTime::now_utc() + SANDBOX_RECHECK;
        return Attempt::waiting(format!("the agent sandbox is unavailable: {why}"), Some(retry_at));
    }

    let repo_info = match client.repository(inst, &job.repo).await {
        Ok(r) => r,
        Err(e) => return github_failed("reading the repository", &e),
    };
    let default_branch = repo_info.default_branch.clone().unwrap_or_else(|| "main".into());
    let Some(remote_url) = repo_info.clone_url.clone() else {
        return Attempt::failed(FailureClass::Infrastructure, "the repository has no clone URL");
    };
    let thread = match client.issue_thread(inst, &job.repo, job.issue).await {
        Ok(t) => t,
        Err(e) => return github_failed("reading the issue", &e),
    };
    let mut reviews = Vec::new();
    let mut review_comments = Vec::new();
    let mut resume = None;
    let mut follow_up = None;
    let (kind, branch) = match job.kind {
        JobKind::Code => (PromptKind::Coding, None),
        JobKind::Plan => (PromptKind::Planning, None),
        JobKind::FollowUp => {
            let pr = match client.pull(inst, &job.repo, job.issue).await {
                Ok(pr) => pr,
                Err(e) => return github_failed("reading the pull request", &e),
            };
            reviews = match client.pull_reviews(inst, &job.repo, job.issue).await {
                Ok(r) => r,
                Err(e) => return github_failed("reading the pull request's reviews", &e),
            };
            review_comments = match client.pull_review_comments(inst, &job.repo, job.issue).await {
                Ok(c) => c,
                Err(e) => return github_failed("reading the pull request's review comments", &e),
            };
            resume = pr.body.as_deref().and_then(markers::parse_agent_session);
            let branch = pr.head.branch.clone();
            follow_up = Some(pr);
            (PromptKind::FollowUp, Some(branch))
        }
    };
    if let Some(branch) = &branch
        && let Err(e) = parts.pusher.check_branch(branch, &default_branch)
    {
        return Attempt::failed(FailureClass::Validation, format!("the pull request's branch is not Foreman's: {e}"));
    }
    let effective = match parts.constitutions.get(inst, &job.repo).await {
        Ok(loaded) => {
            parts.scheduler.learn_limits(&job.repo, &loaded.effective);
            loaded.effective.clone()
        }
        Err(crate::constitution::fetch::FetchError::Invalid(errors)) => {
            // Said where people look: one comment on the issue, updated on every retry.
            if let Err(e) =
                crate::constitution::github::report_invalid(client, inst, &job.repo, job.issue, &errors).await
            {
                tracing::warn!(error = %e, "could not report the invalid constitution");
            }
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            return Attempt::failed(FailureClass::Validation, format!("{INVALID_CONSTITUTION}: {first}"));
        }
        Err(crate::constitution::fetch::FetchError::Github(e)) => return github_failed("reading the constitution", &e),
    };
    if job.last_failure.as_ref().is_some_and(|f| f.reason.starts_with(INVALID_CONSTITUTION))
        && let Err(e) = crate::constitution::github::resolve_invalid(client, inst, &job.repo, job.issue).await
    {
        tracing::warn!(error = %e, "could not mark the constitution error comment resolved");
    }
    if let Some(wanted) = &effective.constitution.agent.backend
        && !wanted.eq_ignore_ascii_case(&parts.backend)
    {
        return Attempt::failed(
            FailureClass::Validation,
            format!(
                "the constitution asks for agent.backend \"{wanted}\", but this Foreman runs \"{}\"; remove the key or set it to \"{}\"",
                parts.backend, parts.backend
            ),
        );
    }
    if let Some(wait) = budget_spent(parts, job, &effective.constitution.limits) {
        let (spent, resume_at) = wait;
        let marker = markers::budget(&job.repo, resume_at.date());
        let text = format!("{}\n\n{marker}", crate::constitution::budget::wait_reply(&spent, resume_at));
        if let Err(e) = client.upsert_marked_comment(inst, &job.repo, job.issue, &marker, &text).await {
            tracing::warn!(error = %e, "could not say that the budget is spent");
        }
        return Attempt::waiting("the repository's daily budget is spent", Some(resume_at));
    }
    let token = match client.session_token(inst, &job.repo).await {
        Ok(t) => t,
        Err(e) => return github_failed("minting the session token", &e),
    };
    let auth = GitAuth::installation_token(token.token.clone());
    let ours = client.app_id();
    let comments: Vec<&crate::github::Comment> = thread
        .comments
        .iter()
        .filter(|c| !markers::is_tracking_comment(&c.body, &job.repo, job.issue))
        // Foreman's own comments are left out: a bot's text, and often an echo of someone else's.
        .filter(|c| c.performed_via_github_app.as_ref().is_none_or(|app| app.id != ours))
        .collect();
    let authors = std::iter::once((&thread.issue.user, thread.issue.author_association.as_str()))
        .chain(comments.iter().map(|c| (&c.user, c.author_association.as_str())))
        .chain(reviews.iter().map(|r| (&r.user, r.author_association.as_str())))
        .chain(review_comments.iter().map(|c| (&c.user, c.author_association.as_str())));
    let trust = trusted_authors(client, inst, &job.repo, authors).await;
    let person = |user: &crate::github::User| session::Person {
        login: user.login.clone(),
        trusted: trust.get(&user.id).copied().unwrap_or(false),
    };
    let requester = job.requester.as_ref().map(|r| r.0.clone()).unwrap_or_default();
    // The requester's instructions are trusted as their other text here is; someone who wrote nothing the
    // thread shows (a label or a board move) gives no instructions.
    let requester_trusted = std::iter::once(&thread.issue.user)
        .chain(comments.iter().map(|c| &c.user))
        .chain(reviews.iter().map(|r| &r.user))
        .chain(review_comments.iter().map(|c| &c.user))
        .find(|u| u.login.eq_ignore_ascii_case(&requester))
        .is_some_and(|u| person(u).trusted);
    let issue_author = person(&thread.issue.user);
    let spec = SessionSpec {
        repo: job.repo.clone(),
        kind,
        remote_url: remote_url.clone(),
        auth: Some(auth.clone()),
        default_branch: default_branch.clone(),
        branch,
        issue: session::IssueText {
            number: job.issue.0,
            title: thread.issue.title.clone(),
            body: thread.issue.body.clone().unwrap_or_default(),
            author: issue_author,
        },
        comments: comments
            .iter()
            .map(|c| session::Comment { author: person(&c.user), body: c.body.clone() })
            .chain(reviews.iter().filter_map(|r| {
                let body = r.body.as_deref().filter(|b| !b.trim().is_empty())?;
                let state = r.state.to_lowercase().replace('_', " ");
                Some(session::Comment { author: person(&r.user), body: format!("(review: {state})\n\n{body}") })
            }))
            .chain(review_comments.iter().map(|c| session::Comment {
                author: person(&c.user),
                body: match c.line {
                    Some(line) => format!("(review comment on `{}`, line {line})\n\n{}", c.path, c.body),
                    None => format!("(review comment on `{}`)\n\n{}", c.path, c.body),
                },
            }))
            .collect(),
        requester: session::Person { login: requester, trusted: requester_trusted },
        instructions: job.instructions.clone(),
        constitution: prompt_rules(&effective.constitution),
        attempt: job.attempts.max(1),
        previous_failure: job.last_failure.as_ref().map(|f| f.reason.clone()),
        resume,
        answer_expected: false,
        rules: Some(effective.constitution.rules.clone()),
        session_id: job.session.as_ref().map(|s| s.to_string()),
        overrides: Some(effective.constitution.agent.clone()),
        // A follow-up's session finds the worktree its branch was made in itself.
        workspace_issue: None,
    };

    let live = Mutex::new(render::Progress::default());
    let session_started = Instant::now();
    let outcome = parts
        .sessions
        .run(spec, cancel.clone(), |p| {
            let mut shown = live.lock().expect("progress lock");
            match p {
                session::Progress::Turn(n) => shown.turns = n,
                session::Progress::ToolUse(_) => shown.tool_calls += 1,
                session::Progress::AgentStarted { attempt } => {
                    tracing::info!(attempt, "agent started");
                    metrics::counter!("foreman_sessions_started_total").increment(1);
                }
                _ => return,
            }
            shown.elapsed_secs = session_started.elapsed().as_secs();
            let mut t = tracking(parts, job, JobState::Running);
            t.progress = Some(shown.clone());
            parts.outbox.progress(inst, t, nanos(job.updated_at));
        })
        .await;
    if let (Some(cost), Some(session)) = (outcome.summary.cost_usd, &job.session)
        && let Err(e) = parts.scheduler.store().record_session_cost(session, cost)
    {
        tracing::warn!(error = %e, "recording the session's cost failed");
    }
    let progress = Some(render::Progress {
        turns: outcome.summary.turns,
        tool_calls: outcome.summary.tool_count,
        cost_usd: outcome.summary.cost_usd,
        elapsed_secs: outcome.summary.duration_ms / 1000,
    });
    let mut result = conclude(
        parts,
        job,
        inst,
        &outcome,
        &remote_url,
        &default_branch,
        &auth,
        &thread.issue.title,
        follow_up.as_ref(),
    )
    .await;
    result.progress = progress;
    result.session_log = session_log_link(parts, &outcome.session_id);
    if !matches!(result.outcome, Outcome::Succeeded { .. }) {
        result.log_tail = log_tail(&outcome.log_path);
    }
    result
}

/// Turns a session's outcome into the job's: push and open the pull request for changes, post the answer
/// for an answer, classify a failure.
#[allow(clippy::too_many_arguments)]
async fn conclude(
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
        ..Attempt::succeeded(&format!("pull request #{}; {}", pr.number, allowed(outcome.enforcement.as_ref())))
    }
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

/// The last [`LOG_TAIL_BYTES`] of a session log, from a line start; empty when it cannot be read.
fn log_tail(path: &std::path::Path) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_is_trusted_without_a_lookup_and_bots_never_are() {
        let user = |login: &str, kind: &str| crate::github::User {
            login: login.into(),
            id: crate::ids::UserId(1),
            kind: kind.into(),
        };
        assert_eq!(trusted_without_lookup(&user("octocat", "User"), "OWNER"), Some(true));
        for association in ["MEMBER", "COLLABORATOR", "CONTRIBUTOR", "NONE", ""] {
            assert_eq!(trusted_without_lookup(&user("octocat", "User"), association), None, "{association}");
        }
        for (login, kind) in [("foreman[bot]", "Bot"), ("helper", "Bot"), ("old-app[bot]", "User")] {
            for association in ["OWNER", "MEMBER", "COLLABORATOR", "NONE"] {
                assert_eq!(
                    trusted_without_lookup(&user(login, kind), association),
                    Some(false),
                    "{login} {association}"
                );
            }
        }
    }
}
