//! One attempt of a claimed job, up to the session's end: read the repository, the issue and its thread,
//! load the constitution, check the budget, mint the session token, decide whose text is trusted, build the
//! session spec, run the session with live progress, and hand its outcome to [`super::conclude`].

use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::Parts;
use super::conclude::{conclude, session_log_link};
use super::job::{Attempt, github_failed, tracking};
use crate::ids::InstallationId;
use crate::job::{FailureClass, Job, JobKind, JobState, WaitKind, nanos};
use crate::markers;
use crate::report::render::{self};
use crate::session::{self, GitAuth, PromptKind, SessionSpec};
/// How long a job waits before it looks at the sandbox again when the sandbox could not be created at
/// start. The check runs once per start (the operator installs bubblewrap or changes the kernel setting and
/// restarts), so this only bounds how often the waiting job is reported again: every 10 minutes.
const SANDBOX_RECHECK: time::Duration = time::Duration::minutes(10);

/// Seconds between two elapsed-time updates of a quiet session when `report.min_edit_interval_secs` is 0
/// (otherwise that interval): an edit only ever goes out at the reporter's pace.
const PROGRESS_TICK_SECS: u64 = 10;

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
/// How the wait for an invalid `.github/foreman.toml` begins (and how a failure for it began, when it was
/// one: the next attempt then marks that older separate error comment resolved once the file loads).
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

/// Which of `comments` (one thread's, oldest first) are Foreman's own: written through the app `app_id`
/// (`performed_via_github_app`), or, where GitHub leaves that out, by a bot that signs a comment of the
/// thread with one of Foreman's markers (the bot's other comments, marked or not, are Foreman's too).
/// Another bot's unmarked comment is not Foreman's.
fn foremans_comments(comments: &[crate::github::Comment], app_id: u64) -> Vec<bool> {
    let bot = |c: &crate::github::Comment| c.user.kind == "Bot" || c.user.login.ends_with("[bot]");
    let marked_by =
        |c: &crate::github::Comment| c.performed_via_github_app.is_none() && bot(c) && markers::is_marked(&c.body);
    let our_bots: Vec<&str> = comments.iter().filter(|c| marked_by(c)).map(|c| c.user.login.as_str()).collect();
    comments
        .iter()
        .map(|c| match &c.performed_via_github_app {
            Some(app) => app.id == app_id,
            None => bot(c) && our_bots.contains(&c.user.login.as_str()),
        })
        .collect()
}

pub(super) async fn attempt(parts: &Parts, job: &Job, inst: InstallationId, cancel: &CancellationToken) -> Attempt {
    let client = &parts.client;
    parts.outbox.update(inst, tracking(parts, job, JobState::Running), nanos(job.updated_at));
    crate::report::progress::redraw_parent_of(&parts.client, parts.scheduler.store(), inst, &job.issue_ref()).await;
    if let Some(why) = parts.sessions.executor().unavailable() {
        // Nothing changes until the operator fixes the host and restarts Foreman: wait, without counting
        // an attempt against the issue, and say why on it.
        let retry_at = OffsetDateTime::now_utc() + SANDBOX_RECHECK;
        tracing::error!(why, "the agent sandbox is unavailable");
        return Attempt::waiting(WaitKind::Sandbox, session::SANDBOX_UNAVAILABLE, Some(retry_at));
    }
    if let Some(why) = parts.sessions.unavailable() {
        // The same for an agent program that is not installed: looked at again after the wait, no restart.
        let retry_at = OffsetDateTime::now_utc() + SANDBOX_RECHECK;
        tracing::error!(why, "the agent cannot start");
        return Attempt::waiting(WaitKind::Sandbox, session::AGENT_UNAVAILABLE, Some(retry_at));
    }

    let repo_info = match client.repository(inst, &job.repo).await {
        Ok(r) => r,
        Err(e) => return github_failed("reading the repository", &e),
    };
    let default_branch = repo_info.default_branch.clone().unwrap_or_else(|| "main".into());
    let Some(remote_url) = repo_info.clone_url.clone() else {
        return Attempt::failed(FailureClass::Infrastructure, "the repository has no clone URL");
    };
    if job.kind != JobKind::FollowUp
        && let Some(done) = super::publish::resume_pushed(parts, job, inst, &remote_url, job.issue).await
    {
        return done;
    }
    let thread = match client.issue_thread(inst, &job.repo, job.issue).await {
        Ok(t) => t,
        Err(e) => return github_failed("reading the issue", &e),
    };
    let mut reviews = Vec::new();
    let mut review_comments = Vec::new();
    let mut resume = None;
    let mut follow_up = None;
    let mut resolves: Option<crate::github::IssueThread> = None;
    let (kind, branch) = match job.kind {
        // A re-run while Foreman's pull request is open builds on it: the session starts from its head.
        JobKind::Code => match super::publish::open_pull_for_issue(parts, job, inst, &default_branch).await {
            Ok(Some(pr)) => {
                let branch = pr.head.branch.clone();
                follow_up = Some(pr);
                (PromptKind::Coding, Some(branch))
            }
            Ok(None) => (PromptKind::Coding, None),
            Err(e) => return github_failed("looking for the issue's open pull request", &e),
        },
        JobKind::Plan => (PromptKind::Planning, None),
        JobKind::FollowUp => {
            let pr = match client.pull(inst, &job.repo, job.issue).await {
                Ok(pr) => pr,
                Err(e) => return github_failed("reading the pull request", &e),
            };
            let issue = super::publish::record_issue(job, &pr.head.branch);
            if let Some(done) = super::publish::resume_pushed(parts, job, inst, &remote_url, issue).await {
                return done;
            }
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
            // The issue the pull request resolves (its branch is `foreman/<issue>-…`): its title, body and
            // comments are the prompt's issue; the pull request's own body is Foreman's, never shown.
            if let Some(number) = session::workspace::issue_of_branch(&branch).filter(|n| *n != job.issue) {
                resolves = match client.issue_thread(inst, &job.repo, number).await {
                    Ok(t) => Some(t),
                    Err(e) => return github_failed("reading the issue the pull request resolves", &e),
                };
            }
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
            // Nothing can change until the file does: the job waits for a push that changes it (or
            // `/foreman retry`), and its tracking comment carries the errors, once.
            let reason = format!(
                "{INVALID_CONSTITUTION} ({} error{}).\n\n{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                crate::constitution::errors_list(&errors, parts.constitutions.docs())
            );
            return Attempt::waiting(WaitKind::Constitution, reason, None);
        }
        Err(crate::constitution::fetch::FetchError::Github(e)) => return github_failed("reading the constitution", &e),
    };
    // A job that failed on the file before waits were made for it has a separate error comment to resolve.
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
        return Attempt::waiting(WaitKind::Budget, "the repository's daily budget is spent", Some(resume_at));
    }
    let token = match client.session_token(inst, &job.repo).await {
        Ok(t) => t,
        Err(e) => return github_failed("minting the session token", &e),
    };
    let auth = GitAuth::installation_token(token.token.clone());
    if branch.is_none() && kind == PromptKind::Coding {
        let new_branch = session::workspace::branch_name(job.issue, &thread.issue.title);
        if let Some(refused) = super::publish::refuse_foreign_branch(parts, job, &new_branch, &remote_url, &auth).await
        {
            return refused;
        }
    }
    // Foreman's own comments (tracking, answers, plans, replies, budget and constitution notes) are left
    // out: Foreman's text, often an echo of someone else's, never the agent's instructions.
    let people = |t: &'_ crate::github::IssueThread| -> Vec<crate::github::Comment> {
        let ours = foremans_comments(&t.comments, client.app_id());
        t.comments.iter().zip(ours).filter(|(_, ours)| !ours).map(|(c, _)| c.clone()).collect()
    };
    let comments: Vec<crate::github::Comment> =
        resolves.as_ref().map(&people).unwrap_or_default().into_iter().chain(people(&thread)).collect();
    // For a follow-up, the issue the pull request resolves; otherwise the issue itself.
    let issue = resolves.as_ref().map_or(&thread.issue, |t| &t.issue);
    let authors = std::iter::once((&issue.user, issue.author_association.as_str()))
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
    let requester_trusted = std::iter::once(&issue.user)
        .chain(comments.iter().map(|c| &c.user))
        .chain(reviews.iter().map(|r| &r.user))
        .chain(review_comments.iter().map(|c| &c.user))
        .find(|u| u.login.eq_ignore_ascii_case(&requester))
        .is_some_and(|u| person(u).trusted);
    let issue_author = person(&issue.user);
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
            author: issue_author.clone(),
        },
        resolves: resolves.as_ref().map(|t| session::IssueText {
            number: t.issue.number.0,
            title: t.issue.title.clone(),
            body: t.issue.body.clone().unwrap_or_default(),
            author: issue_author.clone(),
        }),
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
        rules: Some(effective.constitution.rules.clone()),
        session_id: job.session.as_ref().map(|s| s.to_string()),
        overrides: Some(effective.constitution.agent.clone()),
        // A follow-up's session finds the worktree its branch was made in itself.
        workspace_issue: None,
        installation: Some(inst),
        executor: effective.constitution.agent.executor.filter(|_| parts.executor_choice),
    };

    // Live progress: every session event updates the figures and the current step; a tick every edit
    // interval updates the elapsed time of a quiet session. The outbox sends at most one edit per interval
    // and always the last one.
    let live = Mutex::new(render::Progress::default());
    let session_started = Instant::now();
    // While it runs, the tracking comment links the session's log, which the viewer tails live.
    let live_log = job.session.as_ref().and_then(|s| session_log_link(parts, &s.to_string()));
    let show = |shown: &mut render::Progress| {
        shown.elapsed_secs = session_started.elapsed().as_secs();
        let mut t = tracking(parts, job, JobState::Running);
        t.progress = Some(shown.clone());
        t.session_log = live_log.clone();
        parts.outbox.progress(inst, t, nanos(job.updated_at));
    };
    let session = parts.sessions.run(spec, cancel.clone(), |p| {
        let mut shown = live.lock().expect("progress lock");
        match p {
            session::Progress::Preparing => shown.step = Some("preparing the workspace".into()),
            session::Progress::AgentStarted { attempt } => {
                tracing::info!(attempt, "agent started");
                metrics::counter!("foreman_sessions_started_total").increment(1);
                shown.step = Some("the agent started".into());
            }
            session::Progress::Turn(n) => shown.turns = n,
            session::Progress::ToolUse(name) => {
                shown.tool_calls += 1;
                shown.step = Some(format!("using `{}`", name.replace('`', "")));
            }
            // The agent's own progress line, as code like its messages: no Markdown, no mention.
            session::Progress::Step(text) => shown.step = Some(format!("`{}`", text.replace('`', "'"))),
            session::Progress::Tick => {}
            session::Progress::Message(line) => {
                // The agent's words, as code: no Markdown, no mention, nothing that could pass for Foreman's.
                shown.step = Some(format!("the agent says `{}`", line.replace('`', "'")));
            }
            session::Progress::CredentialRotated { .. } => {
                shown.step = Some("moving on to the next agent credential".into());
            }
            session::Progress::Finishing => shown.step = Some("the agent ended; checking its change".into()),
            session::Progress::Dispatched { repository, run_id, html_url } => {
                tracing::info!(repository, run_id, "the session was dispatched to GitHub Actions");
                if let Some(session) = &job.session {
                    let run = crate::job::sessions::RemoteRun { repository, run_id, html_url };
                    if let Err(e) = parts.scheduler.store().record_session_run(session, &run) {
                        tracing::warn!(error = %e, "recording the session's workflow run failed");
                    }
                }
                shown.step = Some(format!("waiting for a GitHub Actions runner (run {run_id})"));
            }
            _ => return,
        }
        show(&mut shown);
    });
    let every = std::time::Duration::from_secs(match parts.outbox.reporter().config().min_edit_interval_secs {
        0 => PROGRESS_TICK_SECS,
        secs => secs,
    });
    let outcome = {
        tokio::pin!(session);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut session => break outcome,
                _ = tick.tick() => show(&mut live.lock().expect("progress lock")),
            }
        }
    };
    if let Some(cost) = outcome.summary.cost_usd {
        metrics::gauge!("foreman_agent_cost_usd", "repository" => job.repo.to_string()).increment(cost);
    }
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
        step: None,
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
        &effective.constitution,
    )
    .await;
    result.progress = progress;
    result.session_log = session_log_link(parts, &outcome.session_id);
    result
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
