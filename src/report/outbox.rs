//! The report outbox: what each job should look like on GitHub, applied in order by one task per job.
//!
//! The inbox worker (a job queued) and the runner (claimed, progress, finished) both report on the same
//! issue, often within milliseconds of each other. Writing from both directly would let an older state land
//! after a newer one (a "queued" comment over a "running" one). Here every report for a job goes into its
//! slot; one task per job applies them oldest first, and a newer report replaces one not yet applied
//! (latest wins: a state that was already superseded costs no API call). A report failure is logged and
//! never fails the job: the next report, or reconciliation, brings GitHub back in line.
//!
//! Reports are durable. With a store ([`Outbox::with_store`]), every state report is stored as the job's
//! newest report ([`crate::job::ReportRecord`]) when it is posted, and the version GitHub took is recorded
//! after the comment, the labels and the board were all written. [`Outbox::resume`] (at start and at each
//! reconciliation pass) reports again every job GitHub is behind on ([`crate::job::reports::due`]): the
//! stored report when it shows the job as it is, otherwise one made from the job. So after a crash at any
//! point, every issue's comment, labels and card come to match its job.
//!
//! Progress is throttled, never lost: a progress report that falls inside the reporter's edit interval
//! (`report.min_edit_interval_secs`) waits in its slot until the interval ends and is then sent (the
//! trailing edge), unless a newer report replaces it first. Progress reports are not stored: the state
//! report they belong to is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::github::Reporter;
use super::render::Tracking;
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::{Due, Job, ReportRecord, nanos};
use crate::store::{JobError, Store};

/// The most jobs one [`Outbox::resume`] reports again; the rest wait for the next pass.
pub const RESUME_LIMIT: usize = 1_000;

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
    /// The job version the report shows.
    version: u64,
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
    /// Where state reports and the versions applied are kept; `None`: in memory only.
    store: Option<Store>,
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
    /// Where the per-job tasks run: the runtime the outbox was made on, whichever runtime posts.
    runtime: tokio::runtime::Handle,
}

impl Outbox {
    /// An outbox applying reports with `reporter`. Call from within a tokio runtime: the outbox's tasks run
    /// on it.
    pub fn new(reporter: Reporter) -> Self {
        Self { reporter, store: None, slots: Arc::default(), runtime: tokio::runtime::Handle::current() }
    }

    /// The same outbox, keeping its state reports and the versions GitHub took in `store`, so that
    /// [`Self::resume`] can report again what a crash left unreported.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Stores `tracking` as the newest report of its job (version `version`) without posting it: for a
    /// caller that makes the report durable in the same flush as the job change it shows, before posting it
    /// with [`Self::update`]. A store failure is logged: the report then is made again from the job.
    pub fn record(&self, inst: InstallationId, tracking: &Tracking, version: u64) {
        let Some(store) = &self.store else { return };
        let report = match serde_json::to_string(tracking) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "a report could not be encoded to be stored");
                return;
            }
        };
        let record = ReportRecord {
            repo: tracking.repo.clone(),
            issue: tracking.issue,
            version,
            state: tracking.state,
            installation: inst,
            report,
            applied: 0,
            applied_state: None,
        };
        if let Err(e) = store.put_report(&record) {
            tracing::warn!(repo = %record.repo, issue = %record.issue, error = %e, "storing a report failed");
        }
    }

    /// Reports again every job GitHub is behind on (at most [`RESUME_LIMIT`]): its stored report when that
    /// shows the job as it is, otherwise `rebuild`'s report of the job (a job with no installation to act
    /// through is skipped). Returns how many were posted; they are applied in the background like any other.
    ///
    /// Errors: the store could not be read. Without a store, nothing is due.
    pub fn resume(&self, rebuild: impl Fn(&Job) -> Tracking) -> Result<usize, JobError> {
        let Some(store) = &self.store else { return Ok(0) };
        let mut posted = 0;
        for (job, record, how) in store.reports_due(RESUME_LIMIT)? {
            let stored = match (how, &record) {
                (Due::Stored, Some(r)) => match serde_json::from_str::<Tracking>(&r.report) {
                    Ok(t) => Some((r.installation, t, r.version)),
                    Err(e) => {
                        tracing::warn!(issue = %job.issue_ref(), error = %e, "a stored report does not read; making it anew");
                        None
                    }
                },
                _ => None,
            };
            let (inst, tracking, version) = match stored {
                Some(s) => s,
                None => {
                    let Some(inst) = job.installation.or(record.as_ref().map(|r| r.installation)) else { continue };
                    (inst, rebuild(&job), nanos(job.updated_at))
                }
            };
            tracing::info!(issue = %job.issue_ref(), state = %tracking.state, ?how, "reporting a job GitHub is behind on");
            self.update(inst, tracking, version);
            posted += 1;
        }
        Ok(posted)
    }

    /// The reporter (for acknowledgements, which are not per-job state).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Reports a state change of the job `tracking` describes: applied in full (comment, labels, board).
    /// `version` is when the job reached that state (the job's `updated_at`, [`crate::job::nanos`]): a
    /// report of an older version than one already posted is dropped, so a slow reporter (the inbox worker
    /// saying "queued") never undoes a faster one (the runner saying "running").
    ///
    /// With a store, the report is stored ([`Self::record`]) before this returns, and the version is recorded
    /// as applied once GitHub took all of it.
    pub fn update(&self, inst: InstallationId, tracking: Tracking, version: u64) {
        self.post(inst, tracking, Kind::Update, version, None);
    }

    /// [`Self::update`], applied only after `delay` unless a newer report replaces it first. For "queued": a
    /// job with a free slot is claimed within milliseconds, and its "running" report then replaces "queued",
    /// saving the calls of a state nobody would have seen (a comment edit, a label added and removed).
    /// Stored at once like [`Self::update`].
    pub fn update_deferred(&self, inst: InstallationId, tracking: Tracking, version: u64, delay: Duration) {
        self.post(inst, tracking, Kind::Update, version, Some(tokio::time::Instant::now() + delay));
    }

    /// Reports live progress: an edit of the tracking comment at most once per the reporter's interval. One
    /// that falls inside the interval waits for its end and is sent then (the trailing edge), unless a newer
    /// report replaces it first. `version` as for [`Self::update`]. Not stored.
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
        if kind == Kind::Update {
            self.record(inst, &tracking, version);
        }
        slot.version = version;
        slot.posted += 1;
        // A state change not yet applied stays a state change when progress replaces it.
        let kind = slot.pending.as_ref().map_or(kind, |p| p.kind.max(kind));
        slot.pending = Some(Pending { inst, tracking, kind, version, ticket: slot.posted, not_before });
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
                slots.get(&key).and_then(|s| {
                    let p = s.pending.as_ref()?;
                    Some((p.not_before, p.kind, s.posted_now.clone()))
                })
            };
            // A progress edit inside the reporter's interval waits for its end (the trailing edge).
            let wait = wait.and_then(|(not_before, kind, posted_now)| {
                let throttled = (kind == Kind::Progress)
                    .then(|| self.reporter.next_progress_at(&key.0, key.1))
                    .flatten()
                    .map(tokio::time::Instant::from_std);
                Some((not_before.max(throttled)?, posted_now))
            });
            if let Some((at, posted_now)) = wait
                && at > tokio::time::Instant::now()
            {
                // Until the deferral or the throttle ends, or a newer report (without a deferral) replaces the
                // waiting one.
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
            match result {
                Ok(()) if next.kind == Kind::Update => {
                    if let Some(store) = &self.store
                        && let Err(e) = store.report_applied(repo, issue, next.version, next.tracking.state)
                    {
                        tracing::warn!(%repo, %issue, error = %e, "recording an applied report failed");
                    }
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    %repo, %issue, error = %e,
                    "reporting on GitHub failed; the next report, or the next reconciliation pass, retries"
                ),
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
