//! The inbox worker: hands each stored delivery, oldest first, to a [`Consumer`] (the decision core), then
//! records it processed or dead-lettered. It runs after the HTTP answer, never inside it, and during a burst
//! of deliveries it waits for the burst to pass ([`Store::ingest_lull`]) at a lower priority
//! ([`WORKER_NICE`]).
//!
//! A delivery interrupted by a crash is still in the inbox on restart and is handed over again; consumers
//! make that harmless (a replay has no second effect).

use std::future::Future;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::store::{DeliveryMeta, DeliveryState, Store, StoreError};

/// How many inbox entries are read per pass. Bounds memory while draining a backlog.
const PAGE: usize = 64;

/// What processing a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Done; a one-line summary of what was decided, kept with the delivery.
    Done(String),
    /// The delivery cannot be processed, now or later (for example, a payload that does not decode). It is
    /// kept with this error as a dead letter and not retried.
    Dead(String),
}

/// Takes stored deliveries off the inbox.
pub trait Consumer: Send + Sync + 'static {
    /// Processes one delivery. An `Err` means "not now" (GitHub or the store unavailable): the delivery stays
    /// in the inbox and the worker tries it again on its next pass.
    fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> impl Future<Output = Result<Processed, String>> + Send;
}

/// How much lower than the HTTP server the inbox worker's thread runs, as a Unix nice increment. Under a
/// burst the answers to GitHub (which gives up after 10 s) come first; the durable inbox absorbs the burst
/// and the worker drains it as soon as the cores are free. On an idle machine it changes nothing.
pub const WORKER_NICE: i32 = 10;

/// Runs the worker on a thread of its own, at [`WORKER_NICE`] lower priority, with its own single-threaded
/// runtime, until `shutdown` is cancelled. Join the handle to wait for it to stop.
pub fn spawn_worker(
    store: Store,
    consumer: impl Consumer,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("foreman-inbox".into()).spawn(move || {
        lower_this_threads_priority(WORKER_NICE);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match runtime {
            Ok(runtime) => runtime.block_on(run(store, consumer, shutdown)),
            Err(e) => tracing::error!(error = %e, "the inbox worker could not start its runtime"),
        }
    })
}

/// Raises the calling thread's nice value by `by` (Linux applies nice per thread). Failure is harmless:
/// the worker then runs at the server's priority.
fn lower_this_threads_priority(by: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, current + by);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// Runs until `shutdown` is cancelled: drains the inbox, then waits for new deliveries.
pub async fn run(store: Store, consumer: impl Consumer, shutdown: CancellationToken) {
    loop {
        let drained = match drain(&store, &consumer, &shutdown).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "inbox worker could not read the store");
                0
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if drained == 0 {
            tokio::select! {
                _ = store.inbox_changed() => {}
                _ = shutdown.cancelled() => return,
                // A delivery left in the inbox by a transient failure is tried again after this long.
                _ = tokio::time::sleep(RETRY_PASS) => {}
            }
        }
    }
}

/// How long a delivery whose processing failed transiently waits before the next pass: long enough not to
/// spin against an unavailable GitHub, short enough that work is not noticeably delayed.
const RETRY_PASS: std::time::Duration = std::time::Duration::from_secs(30);

async fn drain(store: &Store, consumer: &impl Consumer, shutdown: &CancellationToken) -> Result<usize, StoreError> {
    let mut after = None;
    let mut finished = 0;
    loop {
        let page = store.pending_deliveries(after, PAGE)?;
        let Some(&last) = page.last() else { return Ok(finished) };
        for seq in page {
            tokio::select! {
                _ = store.ingest_lull() => {}
                _ = shutdown.cancelled() => return Ok(finished),
            }
            let Some((meta, body)) = store.delivery_body(seq)? else { continue };
            let span = tracing::info_span!(
                "delivery",
                id = %meta.id,
                event = %meta.event,
                action = meta.action.as_deref(),
                repository = meta.repository.as_deref(),
                installation = meta.installation.map(|i| i.0),
            );
            let consumed = tracing::Instrument::instrument(consumer.consume(&meta, &body), span.clone()).await;
            let _guard = span.enter();
            let state = match consumed {
                Ok(Processed::Done(summary)) => {
                    tracing::info!(%summary, "delivery processed");
                    DeliveryState::Processed { at: OffsetDateTime::now_utc(), summary }
                }
                Ok(Processed::Dead(error)) => {
                    tracing::warn!(%error, "delivery dead-lettered");
                    metrics::counter!("foreman_dead_letters_total", "event" => meta.event.clone()).increment(1);
                    DeliveryState::Dead { at: OffsetDateTime::now_utc(), error }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delivery left in the inbox for the next pass");
                    continue;
                }
            };
            store.finish_delivery(seq, &state)?;
            finished += 1;
        }
        after = Some(last);
    }
}

/// The consumer that decodes each delivery into Foreman's own event type, runs the decision core on it with
/// the issue's job state, and carries out the decisions.
///
/// A payload that does not decode is dead-lettered with the decoder's message. The actions decided, with
/// what became of each, are kept with the delivery as its summary (one JSON object per line), so
/// `GET /api/deliveries/{id}` answers "why did (or didn't) Foreman react to this?". A store failure, or
/// GitHub unavailable for a lookup, leaves the delivery in the inbox for the next pass; a redelivery or a
/// replay after a crash has no second effect, because the job store remembers the deliveries that queued
/// each job and replies carry the delivery's id in a hidden marker.
///
/// Without GitHub ([`Decider::new`] alone: no App credentials), lookups and replies are recorded, not
/// carried out.
pub struct Decider {
    config: crate::decide::DecideConfig,
    scheduler: crate::scheduler::Scheduler,
    github: Option<GithubSide>,
}

/// How long a "queued" report waits before it is applied. A job with a free slot is claimed within
/// milliseconds and its "running" report replaces the queued one, which then costs no GitHub call; a job that
/// really waits shows "queued" (its acknowledgement, for a label or board trigger) after this long.
pub const QUEUED_REPORT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the decider needs to act on GitHub.
pub struct GithubSide {
    /// The client.
    pub client: crate::github::Client,
    /// Reports job states (queued, cancelled) in order with the runner's.
    pub outbox: crate::report::outbox::Outbox,
    /// Stops running sessions on `stop`.
    pub runner: crate::runner::Runner,
    /// Pushes the `/foreman constitution init` branch.
    pub pusher: crate::report::push::Pusher,
    /// A directory for scratch clones (`DATA_DIR/scratch`).
    pub scratch: std::path::PathBuf,
    /// Repositories' constitutions, for their `[triggers]`, and the server's ceilings they are held to;
    /// shared with the runner.
    pub constitutions: crate::constitution::fetch::Cache,
}

/// A lookup's failure: `Err` of [`Decider::lookup`]. Transient ones leave the delivery in the inbox.
enum LookupError {
    /// GitHub unavailable or rate limited: try the delivery again later.
    Transient(String),
    /// An answer (not found, forbidden): decide without the fact.
    Answer(String),
}

impl Decider {
    /// A decider with the `[triggers]` configuration, acting on `scheduler`'s job store only.
    pub fn new(config: crate::decide::DecideConfig, scheduler: crate::scheduler::Scheduler) -> Self {
        Self { config, scheduler, github: None }
    }

    /// The same, also acting on GitHub: lookups, replies, acknowledgements, reports, stopping sessions.
    pub fn with_github(mut self, github: GithubSide) -> Self {
        self.github = Some(github);
        self
    }

    fn job_state(
        &self,
        repo: &crate::ids::RepoName,
        issue: crate::ids::IssueNumber,
    ) -> Result<Option<crate::decide::JobState>, String> {
        let job = self.scheduler.store().job(repo, issue).map_err(|e| e.to_string())?;
        Ok(job.map(|j| seen(j.state)))
    }

    fn snapshot(&self, event: &crate::event::Event) -> Result<crate::decide::Snapshot, String> {
        let Some(issue) = event.issue() else { return Ok(Default::default()) };
        let store = self.scheduler.store();
        let job = store.job(&issue.repo, issue.number).map_err(|e| e.to_string())?;
        let Some(job) = job else { return Ok(Default::default()) };
        let state = seen(job.state);
        // Only `status` reads the figures, and only comments carry commands: other deliveries (most are
        // Foreman's own label and comment echoes) skip the queue-position count, O(position).
        use crate::event::EventKind as K;
        let commands = matches!(
            event.kind,
            K::IssueComment { .. } | K::PullRequestReview { .. } | K::PullRequestReviewComment { .. }
        );
        if !commands {
            return Ok(crate::decide::Snapshot { job: Some(state), ..Default::default() });
        }
        let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).ok();
        let facts = crate::decide::JobFacts {
            position: store.queue_position(&job).map_err(|e| e.to_string())?,
            attempts: job.attempts,
            failures: (job.failures.agent + job.failures.validation, self.scheduler.config().max_failures),
            last_failure: job.last_failure.as_ref().map(|f| format!("{}: {}", f.class.as_str(), f.reason)),
            stuck_reason: job.stuck_reason.clone(),
            last_session: job.session.as_ref().map(|s| s.to_string()),
            not_before: job.not_before.filter(|_| job.state == crate::store::jobs::JobState::Failed).and_then(rfc3339),
        };
        Ok(crate::decide::Snapshot { job: Some(state), facts: Some(facts), ..Default::default() })
    }

    /// Reads the fact a lookup asks for into `snapshot`.
    async fn lookup(
        &self,
        github: &GithubSide,
        what: &crate::decide::Lookup,
        installation: Option<crate::ids::InstallationId>,
        snapshot: &mut crate::decide::Snapshot,
    ) -> Result<(), LookupError> {
        use crate::decide::{ItemContent, ItemFacts, Level, Lookup};
        use crate::github::{GithubError, Permission};
        let Some(inst) = installation else {
            return Err(LookupError::Answer("the delivery names no installation".into()));
        };
        let classify = |e: GithubError| match e {
            GithubError::Unavailable { .. } | GithubError::RateLimited { .. } | GithubError::Ambiguous { .. } => {
                LookupError::Transient(e.to_string())
            }
            other => LookupError::Answer(other.to_string()),
        };
        match what {
            Lookup::Permission { repo, user, user_id, .. } => {
                let level = match github.client.collaborator_permission(inst, repo, *user_id, user).await {
                    Ok(p) => match p {
                        Permission::None => Level::Anyone,
                        Permission::Read => Level::Read,
                        Permission::Triage => Level::Triage,
                        Permission::Write => Level::Write,
                        Permission::Maintain => Level::Maintain,
                        Permission::Admin => Level::Admin,
                    },
                    Err(GithubError::NotFound { .. }) => Level::Anyone,
                    Err(e) => return Err(classify(e)),
                };
                snapshot.permission = Some(level);
            }
            Lookup::ProjectItem { item, .. } => {
                let found =
                    github.client.project_item(inst, item, &self.config.status_field).await.map_err(classify)?;
                let Some(found) = found else {
                    return Err(LookupError::Answer(format!("the board item {item} no longer exists")));
                };
                let content = match &found.content {
                    Some((repo, number)) => {
                        snapshot.job = self.job_state(repo, *number).map_err(LookupError::Transient)?;
                        ItemContent::Issue { repo: repo.clone(), number: *number }
                    }
                    None => ItemContent::DraftIssue,
                };
                snapshot.item = Some(ItemFacts { status_field: found.field_id, status: found.column, content });
            }
        }
        Ok(())
    }

    /// Carries out one action; returns what became of it, for the summary.
    async fn act(&self, event: &crate::event::Event, action: &crate::decide::Action) -> Result<String, String> {
        use crate::decide::Action;
        use crate::store::jobs::JobError;
        let now = OffsetDateTime::now_utc();
        let store_failure = |e: JobError| match e {
            JobError::Store(e) => Err(e.to_string()),
            other => Ok(format!("refused: {other}")),
        };
        match action {
            Action::Enqueue { kind, repo, issue, trigger, requester, instructions, installation, delivery } => {
                let about = event.issue().filter(|i| &i.repo == repo && i.number == *issue);
                let request = crate::scheduler::EnqueueRequest {
                    repo: repo.clone(),
                    issue: *issue,
                    installation: *installation,
                    kind: *kind,
                    title: about.map(|i| i.title.clone()).unwrap_or_default(),
                    body: about.map(|i| i.body.clone()).unwrap_or_default(),
                    labels: about.map(|i| i.labels.clone()).unwrap_or_default(),
                    blocked_by: Vec::new(),
                    cause: format!("{} by {requester}", trigger.as_str()),
                    trigger: Some(trigger.as_str().to_owned()),
                    requester: Some(requester.clone()),
                    instructions: instructions.clone(),
                    delivery: delivery.clone(),
                };
                use crate::store::jobs::EnqueueOutcome;
                let outcome = match self.scheduler.enqueue(request, requester, now) {
                    Ok(outcome) => outcome,
                    Err(e) => return store_failure(e),
                };
                if matches!(outcome, EnqueueOutcome::Queued(_))
                    && let (Some(github), Some(inst)) = (&self.github, installation)
                {
                    if let crate::event::EventKind::IssueComment { comment, .. } = &event.kind
                        && let Err(e) = github.outbox.reporter().acknowledge(*inst, repo, comment.id).await
                    {
                        tracing::warn!(error = %e, "could not acknowledge the command with a reaction");
                    }
                    let job = outcome.job();
                    // The runner may have claimed the job already; its report wins if it comes later, and
                    // the outbox applies reports in the order they were posted.
                    if job.state == crate::store::jobs::JobState::Queued {
                        github.outbox.update_deferred(
                            *inst,
                            self.tracking(job, crate::report::render::JobState::Queued),
                            crate::store::jobs::nanos(job.updated_at),
                            QUEUED_REPORT_DELAY,
                        );
                    }
                }
                Ok(match outcome {
                    EnqueueOutcome::Queued(_) => "queued",
                    EnqueueOutcome::Updated(_) => "already queued: refreshed",
                    EnqueueOutcome::AlreadyRunning(_) => "already running",
                    EnqueueOutcome::Stuck(_) => "stuck: needs /foreman retry",
                    EnqueueOutcome::Duplicate(_) => "duplicate delivery: no second effect",
                }
                .into())
            }
            Action::Cancel { repo, issue, reason, installation } => {
                match self.scheduler.cancel(repo, *issue, "foreman", reason, now).await {
                    Ok(Some((job, session))) => {
                        if let Some(github) = &self.github {
                            if session.is_some() {
                                github.runner.stop(repo, *issue);
                            }
                            if let Some(inst) = installation.or(job.installation) {
                                let mut t = self.tracking(&job, crate::report::render::JobState::Cancelled);
                                t.summary = Some(format!("Cancelled: {reason}."));
                                github.outbox.update(inst, t, crate::store::jobs::nanos(job.updated_at));
                            }
                        }
                        Ok("cancelled".into())
                    }
                    Ok(None) => Ok("no live job".into()),
                    Err(e) => store_failure(e),
                }
            }
            Action::Retry { repo, issue, requester, installation } => {
                match self.scheduler.retry(repo, *issue, requester, "retry", now).await {
                    Ok(job) => {
                        if let (Some(github), Some(inst)) = (&self.github, installation.or(job.installation)) {
                            github.outbox.update(
                                inst,
                                self.tracking(&job, crate::report::render::JobState::Queued),
                                crate::store::jobs::nanos(job.updated_at),
                            );
                        }
                        Ok("queued".into())
                    }
                    Err(e) => store_failure(e),
                }
            }
            Action::Reply { repo, issue, text, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else {
                    return Ok("not carried out: no GitHub client".into());
                };
                // The delivery's id marks the reply, so a redelivery finds it instead of replying twice.
                let result = match &event.delivery {
                    Some(id) => {
                        let marker = format!("<!-- foreman:reply {id} -->");
                        let body = format!("{text}\n\n{marker}");
                        github.client.upsert_marked_comment(*inst, repo, *issue, &marker, &body).await
                    }
                    None => github.client.create_comment(*inst, repo, *issue, text).await,
                };
                match result {
                    Ok(_) => Ok("replied".into()),
                    Err(e) => Ok(format!("reply failed: {e}")),
                }
            }
            Action::Lookup { .. } => Ok("not carried out: no GitHub client".into()),
            Action::Ignore { .. } => Ok("ignored".into()),
            Action::CheckConstitution { repo, pull, head_sha, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else {
                    return Ok("not carried out: no GitHub client".into());
                };
                let ceilings = github.constitutions.ceilings();
                match crate::constitution::github::check_pull_request(
                    &github.client,
                    *inst,
                    repo,
                    *pull,
                    head_sha,
                    ceilings,
                )
                .await
                {
                    Ok(Some(run)) => Ok(format!("check run {} posted", run.id)),
                    Ok(None) => Ok("the pull request does not change the constitution".into()),
                    Err(e) => Ok(format!("check failed: {e}")),
                }
            }
            Action::ShowConstitution { repo, issue, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else {
                    return Ok("not carried out: no GitHub client".into());
                };
                let ceilings = github.constitutions.ceilings();
                match crate::constitution::github::show(&github.client, *inst, repo, *issue, ceilings).await {
                    Ok(_) => Ok("replied".into()),
                    Err(e) => Ok(format!("reply failed: {e}")),
                }
            }
            Action::InitConstitution { repo, issue, template, requester, installation } => {
                let (Some(github), Some(inst)) = (&self.github, installation) else {
                    return Ok("not carried out: no GitHub client".into());
                };
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
                match outcome {
                    Ok(InitOutcome::Opened(pr)) => Ok(format!("opened #{}", pr.number)),
                    Ok(InitOutcome::AlreadyOpen(pr)) => Ok(format!("already proposed in #{}", pr.number)),
                    Ok(InitOutcome::AlreadyPresent) => Ok("the repository already has one".into()),
                    Err(e) => {
                        tracing::warn!(error = %e, "opening the constitution pull request failed");
                        let _ = github.client.create_comment(*inst, repo, *issue, &e.reply(requester)).await;
                        Ok("failed; the requester was told".into())
                    }
                }
            }
        }
    }

    /// The `[triggers]` for `repo`: the server's, with what the repository's or its organisation's
    /// constitution sets (cached for [`crate::constitution::fetch::CACHE_TTL`]). The server's alone when
    /// there is no GitHub client, or the constitution cannot be read or is invalid (the runner reports an
    /// invalid file on the issue when a job starts).
    async fn triggers_for(
        &self,
        repo: &crate::ids::RepoName,
        installation: Option<crate::ids::InstallationId>,
    ) -> std::borrow::Cow<'_, crate::decide::DecideConfig> {
        let (Some(github), Some(inst)) = (&self.github, installation) else {
            return std::borrow::Cow::Borrowed(&self.config);
        };
        match github.constitutions.get(inst, repo).await {
            Ok(loaded) => {
                self.scheduler.learn_limits(repo, &loaded.effective);
                std::borrow::Cow::Owned(loaded.effective.decide_config(&self.config))
            }
            Err(e) => {
                tracing::debug!(%repo, error = %e, "deciding with the server's triggers");
                std::borrow::Cow::Borrowed(&self.config)
            }
        }
    }

    fn tracking(
        &self,
        job: &crate::store::jobs::Job,
        state: crate::report::render::JobState,
    ) -> crate::report::render::Tracking {
        let mut t = crate::runner::job::base_tracking(&self.config.label, job, state);
        if state == crate::report::render::JobState::Queued {
            t.queue_position =
                self.scheduler.store().queue_position(job).ok().flatten().map(|p| u32::try_from(p).unwrap_or(u32::MAX));
        }
        t
    }
}

impl Consumer for Decider {
    async fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> Result<Processed, String> {
        let event = match crate::event::decode(&meta.event, body) {
            Ok(event) => event.with_delivery(meta.id.clone()),
            Err(e) => return Ok(Processed::Dead(e.to_string())),
        };
        let mut snapshot = self.snapshot(&event)?;
        let config = match event.issue() {
            Some(issue) => self.triggers_for(&issue.repo, event.installation).await,
            None => std::borrow::Cow::Borrowed(&self.config),
        };
        let mut actions = crate::decide::decide(&event, &config, &snapshot);
        let mut summary = Vec::with_capacity(actions.len() + 1);
        if let (Some(github), [action @ crate::decide::Action::Lookup { what, installation }]) =
            (&self.github, actions.as_slice())
        {
            let result = match self.lookup(github, what, *installation, &mut snapshot).await {
                Ok(()) => "looked up".to_owned(),
                Err(LookupError::Transient(e)) => return Err(e),
                Err(LookupError::Answer(e)) => format!("lookup failed: {e}"),
            };
            summary.push(summary_line(action, &result));
            let failed = result != "looked up";
            actions = if failed {
                vec![crate::decide::Action::Ignore { reason: "the fact needed to decide could not be read".into() }]
            } else {
                // A board item names its repository only now: decide with that repository's triggers.
                let config = match &snapshot.item {
                    Some(crate::decide::ItemFacts {
                        content: crate::decide::ItemContent::Issue { repo, .. }, ..
                    }) => self.triggers_for(repo, *installation).await,
                    _ => config,
                };
                crate::decide::decide(&event, &config, &snapshot)
            };
        }
        for action in &actions {
            let result = self.act(&event, action).await?;
            summary.push(summary_line(action, &result));
        }
        Ok(Processed::Done(summary.join("\n")))
    }
}

fn summary_line(action: &crate::decide::Action, result: &str) -> String {
    let mut line = serde_json::to_value(action).unwrap_or_default();
    if let Some(obj) = line.as_object_mut() {
        obj.insert("result".into(), result.into());
    }
    line.to_string()
}

/// The decision core's view of a job's state: it does not tell stuck from failed (both need `retry`).
fn seen(state: crate::store::jobs::JobState) -> crate::decide::JobState {
    use crate::decide::JobState as Seen;
    use crate::store::jobs::JobState;
    match state {
        JobState::Queued => Seen::Queued,
        JobState::Running => Seen::Running,
        JobState::Succeeded => Seen::Succeeded,
        JobState::Failed | JobState::Stuck => Seen::Failed,
        JobState::Cancelled => Seen::Cancelled,
    }
}
