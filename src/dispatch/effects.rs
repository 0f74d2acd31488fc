//! The effects of decisions: each [`Action`] the decision core returns, carried out on the job store and on
//! GitHub, with a typed [`Effect`] saying what became of it. A store failure, or GitHub unavailable where a
//! fact is needed to act, is [`Transient`]: the delivery stays in the inbox and is tried again, and a replay
//! has no second effect (the job store remembers the deliveries that queued each job; replies carry the
//! delivery's id in a hidden marker).

use std::fmt;

use time::OffsetDateTime;

use super::Transient;
use super::cancel::{Cancelled, Canceller};
use crate::decide::Action;
use crate::event::{Event, EventKind};
use crate::github::{Client, GithubError};
use crate::ids::Login;
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::{EnqueueOutcome, IssueRef, JobState, NewJob, nanos};
use crate::report::outbox::Outbox;
use crate::report::push::Pusher;
use crate::report::render::JobState as Shown;
use crate::scheduler::Scheduler;
use crate::store::JobError;

/// How long a "queued" report waits before it is applied. A job with a free slot is claimed within
/// milliseconds and its "running" report replaces the queued one, which then costs no GitHub call; a job that
/// really waits shows "queued" (its acknowledgement, for a label or board trigger) after this long.
pub const QUEUED_REPORT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// How many dependencies of one queued job are read from GitHub when it is queued. An issue body can list
/// any number of `Depends on` references; this bounds the calls one delivery makes (and the inbox worker's
/// time on it) to a handful, and reconciliation reads the rest.
pub const DEPENDENCY_READS: usize = 10;

/// What carrying out one action came to; its `Display` is the `result` kept in the delivery's summary.
#[derive(Debug)]
pub enum Effect {
    /// `enqueue`: what the job store made of the request.
    Enqueued(Enqueued),
    /// `enqueue` of an issue that could not be read (a board card's issue, read to learn its title, labels
    /// and body): nothing was queued.
    IssueUnreadable(GithubError),
    /// `cancel`: the live job was cancelled and the cancellation reported.
    Cancelled,
    /// `cancel`: there was no live job.
    NoLiveJob,
    /// `retry`: the job is queued again.
    Requeued,
    /// The job store refused the change (for example a `retry` of a job that has not failed).
    Refused(JobError),
    /// `reply`, or `constitution` shown: the comment is posted (or was already, for a redelivery).
    Replied,
    /// The comment could not be posted; the delivery is not tried again for it.
    ReplyFailed(GithubError),
    /// `check_constitution`: the check run posted on the pull request's head, by id.
    CheckRunPosted(u64),
    /// `check_constitution`: the pull request does not change the constitution; nothing posted.
    ConstitutionUnchanged,
    /// `check_constitution`: GitHub failed.
    CheckFailed(GithubError),
    /// `init_constitution`: the pull request adding the constitution, by number.
    InitOpened(IssueNumber),
    /// `init_constitution`: the pull request from an earlier `init` is still open, by number.
    InitAlreadyOpen(IssueNumber),
    /// `init_constitution`: the repository already has a constitution.
    InitAlreadyPresent,
    /// `init_constitution` failed; the requester was told why.
    InitFailed,
    /// The action needs GitHub and Foreman runs without App credentials: recorded, not carried out.
    NoGithub,
    /// `ignore`.
    Ignored,
    /// `issue_state`: this many jobs that depend on the issue were unblocked or blocked again.
    Dependents(usize),
    /// `reorder`: whether the queued job moved (or took the new title and labels).
    Reordered(bool),
    /// `constitution_changed`: this many jobs waiting for the file were queued again.
    Released(usize),
    /// `link`: what the relationship change came to, in words.
    Link(String),
    /// `approve_plan`: this many issues were created (the requester was told).
    PlanApproved(usize),
    /// `run_ended`: whether a session on a GitHub Actions runner waits on the run (and now reads it).
    RunEnded(bool),
}

/// What the job store made of an `enqueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new run was queued.
    Queued,
    /// The job was already queued; its record was refreshed.
    Refreshed,
    /// The job runs now; nothing changed.
    AlreadyRunning,
    /// The job is stuck; it needs `/foreman retry`.
    Stuck,
    /// This delivery queued the job before: no second effect.
    Duplicate,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Enqueued(Enqueued::Queued) | Effect::Requeued => f.write_str("queued"),
            Effect::Enqueued(Enqueued::Refreshed) => f.write_str("already queued: refreshed"),
            Effect::Enqueued(Enqueued::AlreadyRunning) => f.write_str("already running"),
            Effect::Enqueued(Enqueued::Stuck) => f.write_str("stuck: needs /foreman retry"),
            Effect::Enqueued(Enqueued::Duplicate) => f.write_str("duplicate delivery: no second effect"),
            Effect::IssueUnreadable(e) => write!(f, "not queued: the issue could not be read: {e}"),
            Effect::Cancelled => f.write_str("cancelled"),
            Effect::NoLiveJob => f.write_str("no live job"),
            Effect::Refused(e) => write!(f, "refused: {e}"),
            Effect::Replied => f.write_str("replied"),
            Effect::ReplyFailed(e) => write!(f, "reply failed: {e}"),
            Effect::CheckRunPosted(id) => write!(f, "check run {id} posted"),
            Effect::ConstitutionUnchanged => f.write_str("the pull request does not change the constitution"),
            Effect::CheckFailed(e) => write!(f, "check failed: {e}"),
            Effect::InitOpened(n) => write!(f, "opened #{n}"),
            Effect::InitAlreadyOpen(n) => write!(f, "already proposed in #{n}"),
            Effect::InitAlreadyPresent => f.write_str("the repository already has one"),
            Effect::InitFailed => f.write_str("failed; the requester was told"),
            Effect::NoGithub => f.write_str("not carried out: no GitHub client"),
            Effect::Ignored => f.write_str("ignored"),
            Effect::Dependents(n) => write!(f, "{n} dependent jobs changed"),
            Effect::Reordered(true) => f.write_str("re-placed in the queue"),
            Effect::Reordered(false) => f.write_str("its place did not change"),
            Effect::Released(n) => write!(f, "{n} jobs waiting for the constitution queued again"),
            Effect::Link(what) => f.write_str(what),
            Effect::PlanApproved(n) => write!(f, "plan approved: {n} issues created"),
            Effect::RunEnded(true) => f.write_str("the session waiting on the run reads it"),
            Effect::RunEnded(false) => f.write_str("no session waits on the run"),
        }
    }
}

/// What the effects need to act on GitHub.
pub struct GithubSide {
    /// The client.
    pub client: Client,
    /// Reports job states (queued, requeued) in order with the runner's.
    pub outbox: Outbox,
    /// Pushes the `/foreman constitution init` branch.
    pub pusher: Pusher,
    /// A directory for scratch clones (`DATA_DIR/scratch`).
    pub scratch: std::path::PathBuf,
    /// Repositories' constitutions, for their `[triggers]`, and the server's ceilings they are held to;
    /// shared with the runner.
    pub constitutions: crate::constitution::fetch::Cache,
}

/// Carries out actions. Without GitHub, actions on the job store are carried out and the rest recorded.
pub struct Effects {
    pub(super) scheduler: Scheduler,
    pub(super) canceller: Canceller,
    pub(super) github: Option<GithubSide>,
    /// The sessions on GitHub Actions runners, told when a run ends.
    pub(super) remote: Option<crate::remote::Registry>,
}

/// A job store failure: a store error leaves the delivery in the inbox, any other is an answer.
pub(super) fn refused(e: JobError) -> Result<Effect, Transient> {
    match e {
        e @ JobError::Store(_) => Err(Transient::Jobs(e)),
        other => Ok(Effect::Refused(other)),
    }
}

impl Effects {
    /// Carries out one action of `event`'s decision.
    pub async fn apply(&self, event: &Event, action: &Action) -> Result<Effect, Transient> {
        let now = OffsetDateTime::now_utc();
        match action {
            Action::Enqueue { kind, repo, issue, trigger, requester, instructions, installation, delivery } => {
                let about = match self.issue_facts(event, repo, *issue, *installation).await? {
                    Ok(about) => about,
                    Err(e) => return Ok(Effect::IssueUnreadable(e)),
                };
                let blocked_by = self.blockers(repo, *issue, *installation, now).await?;
                let request = NewJob {
                    repo: repo.clone(),
                    issue: *issue,
                    installation: *installation,
                    kind: *kind,
                    title: about.title,
                    body: about.body,
                    labels: about.labels,
                    blocked_by,
                    cause: format!("{} by {requester}", trigger.as_str()),
                    trigger: Some(*trigger),
                    requester: Some(Login(requester.clone())),
                    instructions: instructions.clone(),
                    delivery: delivery.clone(),
                };
                let outcome = match self.scheduler.enqueue(request, requester, now) {
                    Ok(outcome) => outcome,
                    Err(e) => return refused(e),
                };
                if matches!(outcome, EnqueueOutcome::Queued(_))
                    && let (Some(github), Some(inst)) = (&self.github, installation)
                {
                    if let EventKind::IssueComment { comment, .. } = &event.kind
                        && let Err(e) = github.outbox.reporter().acknowledge(*inst, repo, comment.id).await
                    {
                        tracing::warn!(error = %e, "could not acknowledge the command with a reaction");
                    }
                    let job = outcome.job();
                    // The runner may have claimed the job already; its report wins if it comes later, and
                    // the outbox applies reports in the order they were posted.
                    if job.state == JobState::Queued {
                        github.outbox.update_deferred(
                            *inst,
                            self.canceller.tracking(job, Shown::Queued),
                            nanos(job.updated_at),
                            QUEUED_REPORT_DELAY,
                        );
                    }
                }
                // Also for a duplicate: a crash between queueing and these reads replays the delivery.
                let job = outcome.job();
                if job.state == JobState::Queued
                    && !job.waiting_on.is_empty()
                    && let (Some(github), Some(inst)) = (&self.github, installation)
                {
                    self.learn_dependencies(&github.client, *inst, &job.waiting_on, now).await;
                }
                self.redraw_parent_of(&job.issue_ref(), *installation).await;
                Ok(Effect::Enqueued(match outcome {
                    EnqueueOutcome::Queued(_) => Enqueued::Queued,
                    EnqueueOutcome::Updated(_) => Enqueued::Refreshed,
                    EnqueueOutcome::AlreadyRunning(_) => Enqueued::AlreadyRunning,
                    EnqueueOutcome::Stuck(_) => Enqueued::Stuck,
                    EnqueueOutcome::Duplicate(_) => Enqueued::Duplicate,
                }))
            }
            Action::Cancel { repo, issue, reason, installation } => {
                match self.canceller.cancel(repo, *issue, "foreman", reason, *installation, now).await {
                    Ok(Cancelled::Cancelled { .. }) => Ok(Effect::Cancelled),
                    Ok(Cancelled::NoLiveJob) => Ok(Effect::NoLiveJob),
                    Err(e) => refused(e),
                }
            }
            Action::Retry { repo, issue, requester, installation } => {
                let job = match self.scheduler.retry(repo, *issue, requester, "retry", now).await {
                    Ok(job) => job,
                    Err(e) => return refused(e),
                };
                if let (Some(github), Some(inst)) = (&self.github, installation.or(job.installation)) {
                    github.outbox.update(inst, self.canceller.tracking(&job, Shown::Queued), nanos(job.updated_at));
                }
                self.report_dependents(&job.issue_ref());
                self.redraw_parent_of(&job.issue_ref(), installation.or(job.installation)).await;
                Ok(Effect::Requeued)
            }
            Action::Reply { repo, issue, text, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Effect::NoGithub) };
                // The delivery's id marks the reply, so a redelivery finds it instead of replying twice.
                let result = match &event.delivery {
                    Some(id) => {
                        let marker = crate::markers::reply(id);
                        let body = format!("{text}\n\n{marker}");
                        github.client.upsert_marked_comment(*inst, repo, *issue, &marker, &body).await
                    }
                    None => github.client.create_comment(*inst, repo, *issue, text).await,
                };
                Ok(result.map_or_else(Effect::ReplyFailed, |_| Effect::Replied))
            }
            Action::Lookup { .. } => Ok(Effect::NoGithub),
            Action::Ignore { .. } => Ok(Effect::Ignored),
            Action::RunEnded { run_id } => {
                Ok(Effect::RunEnded(self.remote.as_ref().is_some_and(|r| r.run_completed(*run_id))))
            }
            Action::Link(link) => self.link(link, now).await,
            Action::IssueState { repo, issue, open } => {
                let issue = IssueRef { repo: repo.clone(), issue: *issue };
                let changed = match self.scheduler.issue_state(&issue, *open, now) {
                    Ok(n) => n,
                    Err(e) => return refused(e),
                };
                // A sub-issue closed: its parent's checklist (its final summary when it was the last).
                self.redraw_parent_of(&issue, event.installation).await;
                Ok(Effect::Dependents(changed))
            }
            Action::Reorder { repo, issue, title, labels } => {
                let issue = IssueRef { repo: repo.clone(), issue: *issue };
                let job = match self.scheduler.reorder(&issue, title, labels, now) {
                    Ok(job) => job,
                    Err(e) => return refused(e),
                };
                // The tracking comment shows the new place in the queue.
                if let (Some(job), Some(github)) = (&job, &self.github)
                    && job.state == JobState::Queued
                    && let Some(inst) = job.installation
                {
                    let tracking = self.canceller.tracking(job, Shown::Queued);
                    github.outbox.update_deferred(inst, tracking, nanos(job.updated_at), QUEUED_REPORT_DELAY);
                }
                Ok(Effect::Reordered(job.is_some()))
            }
            Action::CheckConstitution { repo, pull, head_sha, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Effect::NoGithub) };
                let ceilings = github.constitutions.ceilings();
                let posted = crate::constitution::github::check_pull_request(
                    &github.client,
                    *inst,
                    repo,
                    *pull,
                    head_sha.as_str(),
                    ceilings,
                    github.constitutions.docs(),
                )
                .await;
                Ok(match posted {
                    Ok(Some(run)) => Effect::CheckRunPosted(run.id),
                    Ok(None) => Effect::ConstitutionUnchanged,
                    Err(e) => Effect::CheckFailed(e),
                })
            }
            Action::ConstitutionChanged { repo, after } => {
                let woken = self.constitution_changed(repo, after, now).await?;
                Ok(Effect::Released(woken))
            }
            Action::ShowConstitution { repo, issue, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Effect::NoGithub) };
                let ceilings = github.constitutions.ceilings();
                let shown = crate::constitution::github::show(
                    &github.client,
                    *inst,
                    repo,
                    *issue,
                    ceilings,
                    github.constitutions.docs(),
                )
                .await;
                Ok(shown.map_or_else(Effect::ReplyFailed, |_| Effect::Replied))
            }
            Action::ApprovePlan { repo, issue, requester, installation } => {
                self.approve_plan(event, repo, *issue, requester, *installation).await
            }
            Action::InitConstitution { repo, issue, template, requester, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Effect::NoGithub) };
                use crate::constitution::github::{InitOutcome, init_pull_request};
                let outcome = init_pull_request(
                    &github.client,
                    *inst,
                    repo,
                    *issue,
                    *template,
                    requester,
                    &github.pusher,
                    &github.scratch,
                )
                .await;
                Ok(match outcome {
                    Ok(InitOutcome::Opened(pr)) => Effect::InitOpened(pr.number),
                    Ok(InitOutcome::AlreadyOpen(pr)) => Effect::InitAlreadyOpen(pr.number),
                    Ok(InitOutcome::AlreadyPresent) => Effect::InitAlreadyPresent,
                    Err(e) => {
                        tracing::warn!(error = %e, "opening the constitution pull request failed");
                        let _ = github.client.create_comment(*inst, repo, *issue, &e.reply(requester)).await;
                        Effect::InitFailed
                    }
                })
            }
        }
    }

    /// `.github/foreman.toml` changed on `repo`'s default branch in commit `after` (for the owner's `.github`
    /// repository: the defaults of every repository of the owner): every job waiting for the file
    /// ([`crate::job::WaitKind::Constitution`]) is queued again, as `/foreman retry` queues it, and its
    /// tracking comment says so. Returns how many. A job that runs at that moment is left to its run.
    async fn constitution_changed(
        &self,
        repo: &RepoName,
        after: &crate::ids::CommitSha,
        now: OffsetDateTime,
    ) -> Result<usize, Transient> {
        let org_wide = repo.name() == crate::constitution::fetch::ORG_REPO;
        let waiting = self.scheduler.store().live_jobs()?.into_iter().filter(|j| {
            j.state == JobState::Queued
                && j.wait.as_ref().is_some_and(|w| w.kind == crate::job::WaitKind::Constitution)
                && (j.repo == *repo || (org_wide && j.repo.owner().eq_ignore_ascii_case(repo.owner())))
        });
        let short: String = after.as_str().chars().take(7).collect();
        let cause = format!("{} changed in {repo}@{short}", crate::decide::CONSTITUTION_PATH);
        let mut released = 0;
        for job in waiting {
            let job = match self.scheduler.retry(&job.repo, job.issue, "push", &cause, now).await {
                Ok(job) => job,
                Err(e @ JobError::Store(_)) => return Err(Transient::Jobs(e)),
                Err(e) => {
                    tracing::info!(repo = %job.repo, issue = %job.issue, error = %e, "not queued again after the push");
                    continue;
                }
            };
            released += 1;
            if let (Some(github), Some(inst)) = (&self.github, job.installation) {
                github.outbox.update(inst, self.canceller.tracking(&job, Shown::Queued), nanos(job.updated_at));
            }
        }
        Ok(released)
    }

    /// Reads the state of the dependencies a queued job waits on and Foreman has not seen closed, so one
    /// already closed does not hold it: one `GET` each, for the first [`DEPENDENCY_READS`]. A failed read, or
    /// a dependency past that bound, leaves the job waiting; reconciliation reads it later.
    async fn learn_dependencies(
        &self,
        client: &Client,
        inst: InstallationId,
        waiting_on: &[IssueRef],
        now: OffsetDateTime,
    ) {
        for dep in waiting_on.iter().take(DEPENDENCY_READS) {
            match client.issue(inst, &dep.repo, dep.issue).await {
                Ok(read) if read.state.eq_ignore_ascii_case("closed") => {
                    if let Err(e) = self.scheduler.issue_state(dep, false, now) {
                        tracing::warn!(%dep, error = %e, "could not record a closed dependency");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%dep, error = %e, "a dependency's state could not be read; reconciliation will")
                }
            }
        }
    }

    /// The issue's "blocked by" links on GitHub (`GET …/dependencies/blocked_by`), read when its job is
    /// queued, with each blocker's state recorded (so a closed one does not hold the job). Without a
    /// GitHub client, none. GitHub unavailable is transient (the delivery is tried again: a job queued
    /// without its blockers could start before them); any other error (a GitHub without dependencies)
    /// reads as no links, and reconciliation reads them again.
    pub(super) async fn blockers(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        installation: Option<InstallationId>,
        now: OffsetDateTime,
    ) -> Result<Vec<IssueRef>, Transient> {
        let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Vec::new()) };
        let read = match github.client.blockers(inst, repo, issue).await {
            Ok(read) => read,
            Err(e) if e.is_transient() => return Err(Transient::Github(e)),
            Err(e) => {
                tracing::warn!(%repo, %issue, error = %e, "the issue's blocked-by links could not be read");
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::with_capacity(read.len());
        for blocker in read {
            let Some(blocker_repo) = blocker.repo() else { continue };
            let r = IssueRef { repo: blocker_repo, issue: blocker.number };
            self.scheduler.issue_state(&r, blocker.is_open(), now)?;
            out.push(r);
        }
        Ok(out)
    }

    /// The title, body and labels of the issue a job is queued for: from the delivery when it carries the
    /// issue (a label or a command), read from GitHub otherwise (a card moved on a board: its delivery names
    /// the item by node id only). Without a GitHub client, empty.
    ///
    /// The outer `Err` is transient (GitHub unavailable); the inner one an answer (the issue cannot be read).
    async fn issue_facts(
        &self,
        event: &Event,
        repo: &RepoName,
        issue: IssueNumber,
        installation: Option<InstallationId>,
    ) -> Result<Result<IssueFacts, GithubError>, Transient> {
        if let Some(about) = event.issue().filter(|i| &i.repo == repo && i.number == issue) {
            return Ok(Ok(IssueFacts {
                title: about.title.clone(),
                body: about.body.clone(),
                labels: about.labels.clone(),
            }));
        }
        let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Ok(IssueFacts::default())) };
        match github.client.issue(inst, repo, issue).await {
            Ok(read) => Ok(Ok(IssueFacts {
                title: read.title,
                body: read.body.unwrap_or_default(),
                labels: read.labels.into_iter().map(|l| l.name).collect(),
            })),
            Err(e) if e.is_transient() => Err(Transient::Github(e)),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// What ordering and dependencies read from an issue.
#[derive(Debug, Default)]
struct IssueFacts {
    title: String,
    body: String,
    labels: Vec<String>,
}
