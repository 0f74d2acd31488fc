//! The inbox worker: hands each stored delivery, oldest first, to a [`Consumer`] (the decision core), then
//! records it processed or dead-lettered. It runs after the HTTP answer, never inside it.
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
            if shutdown.is_cancelled() {
                return Ok(finished);
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
            let _guard = span.enter();
            let state = match consumer.consume(&meta, &body).await {
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
/// the issue's job state, and carries out the decisions that touch only the job store: enqueue, cancel and
/// retry.
///
/// A payload that does not decode is dead-lettered with the decoder's message. The actions decided, with
/// what the job store made of each, are kept with the delivery as its summary (one JSON object per line),
/// so `GET /api/deliveries/{id}` answers "why did (or didn't) Foreman react to this?". A store failure
/// leaves the delivery in the inbox for the next pass; a redelivery or a replay after a crash has no
/// second effect, because the job store remembers the deliveries that queued each job.
///
/// Replies and lookups need the GitHub client and are recorded, not yet carried out.
pub struct Decider {
    config: crate::decide::DecideConfig,
    scheduler: crate::scheduler::Scheduler,
}

impl Decider {
    /// A decider with the `[triggers]` configuration, acting on `scheduler`'s job store.
    pub fn new(config: crate::decide::DecideConfig, scheduler: crate::scheduler::Scheduler) -> Self {
        Self { config, scheduler }
    }

    fn snapshot(&self, event: &crate::event::Event) -> Result<crate::decide::Snapshot, String> {
        use crate::decide::JobState as Seen;
        use crate::store::jobs::JobState;
        let job = match event.issue() {
            Some(issue) => self.scheduler.store().job(&issue.repo, issue.number).map_err(|e| e.to_string())?,
            None => None,
        };
        let job = job.map(|j| match j.state {
            JobState::Queued => Seen::Queued,
            JobState::Running => Seen::Running,
            JobState::Succeeded => Seen::Succeeded,
            JobState::Failed | JobState::Stuck => Seen::Failed,
            JobState::Cancelled => Seen::Cancelled,
        });
        Ok(crate::decide::Snapshot { job, ..Default::default() })
    }

    /// Carries out one action on the job store; returns what became of it, for the summary.
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
                match self.scheduler.enqueue(request, requester, now) {
                    Ok(EnqueueOutcome::Queued(_)) => Ok("queued".into()),
                    Ok(EnqueueOutcome::Updated(_)) => Ok("already queued: refreshed".into()),
                    Ok(EnqueueOutcome::AlreadyRunning(_)) => Ok("already running".into()),
                    Ok(EnqueueOutcome::Stuck(_)) => Ok("stuck: needs /foreman retry".into()),
                    Ok(EnqueueOutcome::Duplicate(_)) => Ok("duplicate delivery: no second effect".into()),
                    Err(e) => store_failure(e),
                }
            }
            Action::Cancel { repo, issue, reason, .. } => {
                match self.scheduler.cancel(repo, *issue, "foreman", reason, now).await {
                    Ok(Some(_)) => Ok("cancelled".into()),
                    Ok(None) => Ok("no live job".into()),
                    Err(e) => store_failure(e),
                }
            }
            Action::Retry { repo, issue, requester, .. } => {
                match self.scheduler.retry(repo, *issue, requester, "retry", now).await {
                    Ok(_) => Ok("queued".into()),
                    Err(e) => store_failure(e),
                }
            }
            Action::Reply { .. } | Action::Lookup { .. } => Ok("not carried out: no GitHub client wired".into()),
            Action::Ignore { .. } => Ok("ignored".into()),
            Action::CheckConstitution { .. } | Action::ShowConstitution { .. } | Action::InitConstitution { .. } => {
                Ok("not carried out yet".into())
            }
        }
    }
}

impl Consumer for Decider {
    async fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> Result<Processed, String> {
        let event = match crate::event::decode(&meta.event, body) {
            Ok(event) => event.with_delivery(meta.id.clone()),
            Err(e) => return Ok(Processed::Dead(e.to_string())),
        };
        let snapshot = self.snapshot(&event)?;
        let actions = crate::decide::decide(&event, &self.config, &snapshot);
        let mut summary = Vec::with_capacity(actions.len());
        for action in &actions {
            let result = self.act(&event, action).await?;
            let mut line = serde_json::to_value(action).unwrap_or_default();
            if let Some(obj) = line.as_object_mut() {
                obj.insert("result".into(), result.into());
            }
            summary.push(line.to_string());
        }
        Ok(Processed::Done(summary.join("\n")))
    }
}
