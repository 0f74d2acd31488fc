//! The report outbox: what each job should look like on GitHub, applied in order by one task per job.
//!
//! The inbox worker (a job queued) and the runner (claimed, progress, finished) both report on the same
//! issue, often within milliseconds of each other. Writing from both directly would let an older state land
//! after a newer one (a "queued" comment over a "running" one). Here every report for a job goes into its
//! slot; one task per job applies them oldest first, and a newer report replaces one not yet applied
//! (latest wins: a state that was already superseded costs no API call). A report failure is logged and
//! never fails the job: the next report, or reconciliation, brings GitHub back in line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::github::Reporter;
use super::render::Tracking;
use crate::ids::{InstallationId, IssueNumber, RepoName};

type Key = (RepoName, IssueNumber);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A progress edit of the tracking comment, throttled by the reporter.
    Progress,
    /// A state change: comment, labels and board, never throttled.
    Update,
}

struct Pending {
    inst: InstallationId,
    tracking: Tracking,
    kind: Kind,
    ticket: u64,
    /// Not applied before this: a report that a newer one is likely to replace within moments.
    not_before: Option<tokio::time::Instant>,
}

struct Slot {
    pending: Option<Pending>,
    /// Whether a task is applying this slot's reports.
    working: bool,
    posted: u64,
    /// The newest job version posted (see [`Outbox::update`]).
    version: u64,
    /// Wakes the slot's task from a deferral when a newer report replaces the deferred one.
    posted_now: Arc<tokio::sync::Notify>,
    applied: watch::Sender<u64>,
}

/// The outbox. Cheap to clone; all clones share the slots.
#[derive(Clone)]
pub struct Outbox {
    reporter: Reporter,
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
    /// Where the per-job tasks run: the runtime the outbox was made on, whichever runtime posts.
    runtime: tokio::runtime::Handle,
}

impl Outbox {
    /// An outbox applying reports with `reporter`. Call from within a tokio runtime: the outbox's tasks run
    /// on it.
    pub fn new(reporter: Reporter) -> Self {
        Self { reporter, slots: Arc::default(), runtime: tokio::runtime::Handle::current() }
    }

    /// The reporter (for acknowledgements, which are not per-job state).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Reports a state change of the job `tracking` describes: applied in full (comment, labels, board).
    /// `version` is when the job reached that state (the job's `updated_at`, [`crate::job::nanos`]): a
    /// report of an older version than one already posted is dropped, so a slow reporter (the inbox worker
    /// saying "queued") never undoes a faster one (the runner saying "running").
    pub fn update(&self, inst: InstallationId, tracking: Tracking, version: u64) {
        self.post(inst, tracking, Kind::Update, version, None);
    }

    /// [`Self::update`], applied only after `delay` unless a newer report replaces it first. For "queued": a
    /// job with a free slot is claimed within milliseconds, and its "running" report then replaces "queued",
    /// saving the calls of a state nobody would have seen (a comment edit, a label added and removed).
    pub fn update_deferred(&self, inst: InstallationId, tracking: Tracking, version: u64, delay: Duration) {
        self.post(inst, tracking, Kind::Update, version, Some(tokio::time::Instant::now() + delay));
    }

    /// Reports live progress: an edit of the tracking comment at most once per the reporter's interval;
    /// dropped when a newer report arrives first. `version` as for [`Self::update`].
    pub fn progress(&self, inst: InstallationId, tracking: Tracking, version: u64) {
        self.post(inst, tracking, Kind::Progress, version, None);
    }

    fn post(
        &self,
        inst: InstallationId,
        tracking: Tracking,
        kind: Kind,
        version: u64,
        not_before: Option<tokio::time::Instant>,
    ) {
        let key = (tracking.repo.clone(), tracking.issue);
        let mut slots = self.slots.lock().expect("outbox lock");
        let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
            pending: None,
            working: false,
            posted: 0,
            version: 0,
            posted_now: Arc::default(),
            applied: watch::channel(0).0,
        });
        if version < slot.version {
            tracing::debug!(repo = %key.0, issue = %key.1, "a report older than one already posted is dropped");
            return;
        }
        slot.version = version;
        slot.posted += 1;
        // A state change not yet applied stays a state change when progress replaces it.
        let kind = slot.pending.as_ref().map_or(kind, |p| p.kind.max(kind));
        slot.pending = Some(Pending { inst, tracking, kind, ticket: slot.posted, not_before });
        if not_before.is_none() {
            slot.posted_now.notify_one();
        }
        if !slot.working {
            slot.working = true;
            let outbox = self.clone();
            self.runtime.spawn(async move { outbox.work(key).await });
        }
    }

    async fn work(self, key: Key) {
        loop {
            let wait = {
                let slots = self.slots.lock().expect("outbox lock");
                slots.get(&key).and_then(|s| Some((s.pending.as_ref()?.not_before?, s.posted_now.clone())))
            };
            if let Some((at, posted_now)) = wait
                && at > tokio::time::Instant::now()
            {
                // Until the deferral ends, or a newer report (without one) replaces the deferred one.
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = posted_now.notified() => {}
                }
                continue;
            }
            let next = {
                let mut slots = self.slots.lock().expect("outbox lock");
                let Some(slot) = slots.get_mut(&key) else { return };
                match slot.pending.take() {
                    Some(p) => p,
                    None => {
                        // Everything posted was applied: forget the job, so the map holds only jobs with
                        // reports in flight.
                        slots.remove(&key);
                        return;
                    }
                }
            };
            let (repo, issue) = (&next.tracking.repo, next.tracking.issue);
            let result = match next.kind {
                Kind::Update => self.reporter.update(next.inst, &next.tracking).await.map(drop),
                Kind::Progress => self.reporter.progress(next.inst, &next.tracking).await.map(drop),
            };
            if let Err(e) = result {
                tracing::warn!(%repo, %issue, error = %e, "reporting on GitHub failed; the next report retries");
            }
            if let Some(slot) = self.slots.lock().expect("outbox lock").get(&key) {
                slot.applied.send_replace(next.ticket);
            }
        }
    }

    /// Waits until every report posted so far for `repo#issue` was applied (or failed), at most `timeout`.
    /// Returns whether it was.
    pub async fn flush(&self, repo: &RepoName, issue: IssueNumber, timeout: Duration) -> bool {
        let (mut applied, posted) = {
            let slots = self.slots.lock().expect("outbox lock");
            match slots.get(&(repo.clone(), issue)) {
                Some(slot) => (slot.applied.subscribe(), slot.posted),
                None => return true,
            }
        };
        tokio::time::timeout(timeout, applied.wait_for(|&a| a >= posted)).await.is_ok_and(|r| r.is_ok())
    }
}
