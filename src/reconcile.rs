//! Reconciliation: at start and then periodically, compare the job store with GitHub and fix the drift,
//! and ask GitHub to redeliver the webhook deliveries Foreman never stored.
//!
//! Webhooks are the fast path; this is the safety net. GitHub does not retry a failed delivery and does not
//! order deliveries (docs.github.com, "Handling failed webhook deliveries"), so while Foreman is down, or
//! answers a delivery with an error, an issue can be closed or unlabelled without Foreman ever hearing of it.
//! One pass ([`Reconciler::run_once`]):
//!
//! 1. **Jobs against GitHub.** Every live job (queued, running, or failed and in backoff:
//!    [`crate::store::Store::live_jobs`]) has its issue read with the job's installation. A closed issue,
//!    or one that is gone (404 deleted or transferred, 410 gone), cancels the job. A job queued by the
//!    trigger label whose issue no longer carries it is cancelled by the same rule as an `unlabeled` event
//!    in [`crate::decide`]: a queued job always, a running one only with `triggers.cancel_on_unlabel`.
//!    The open dependencies jobs wait on are read too and recorded with
//!    [`crate::scheduler::Scheduler::issue_state`], so a dependency closed while Foreman was down unblocks
//!    its dependents.
//! 2. **Reports GitHub is behind on.** Every job whose last applied report is older than its state is
//!    reported again through the report outbox ([`Canceller::resume_reports`]): a stored report a crash or
//!    a GitHub failure kept from being applied, or a state change nobody reported.
//! 3. **Lost deliveries.** The app's recent deliveries (`GET /app/hook/deliveries`) are grouped by GUID
//!    (every attempt of one delivery shares it). A GUID with no 2xx attempt that Foreman never stored,
//!    younger than GitHub's 3-day retention, gets one redelivery request
//!    (`POST /app/hook/deliveries/{id}/attempts`), and not another from this process within
//!    [`REDELIVERY_MEMORY`]. Redelivering is always safe: ingress deduplicates by GUID.
//!
//! A failed read of one issue is logged and skipped; it never aborts the pass. Only a store failure does.
//! Log lines carry endpoint templates and GitHub's messages, never a token ([`crate::github::GithubError`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::decide::DecideConfig;
use crate::dispatch::{Cancelled, Canceller};
use crate::github::{Client, GithubError, HookDelivery, Issue};
use crate::ids::{DeliveryId, InstallationId};
use crate::job::{IssueRef, Job, JobState, SessionId, Trigger};
use crate::scheduler::Scheduler;
use crate::store::JobError;
use crate::store::StoreError;

/// How long GitHub keeps a delivery for redelivery: 3 days ("Redelivering webhooks", docs.github.com).
/// Older entries are never asked for: GitHub would refuse them.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// How long this process remembers a redelivery it requested, and so does not request it again. A
/// redelivery that fails too (Foreman still unreachable, say) is asked for again after this long, at most
/// 72 times in GitHub's 3-day window, rather than on every pass.
pub const REDELIVERY_MEMORY: Duration = Duration::from_secs(3600);

/// How old a failed delivery must be before it is redelivered. GitHub gives a receiver 10 s to answer, and
/// an attempt still in flight is listed with status code 0; a minute leaves room for GitHub's own queue, so
/// a delivery that is merely slow is not asked for twice.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(60);

/// How many of the app's most recent deliveries one pass reads: 10 pages of 100. At 10-minute intervals
/// that is 60 app-authenticated requests an hour, against the app's own quota of 5,000. A failure older
/// than the newest 1,000 deliveries is not seen; see docs/operations.md for redelivering by hand.
pub const DELIVERIES_LISTED: usize = 1000;

/// The `[reconcile]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Seconds between passes (the first runs at start). Default 600 (10 minutes); at least 1
    /// (`FOREMAN_RECONCILE_INTERVAL_SECS`). Each pass costs one REST request per live job and per open
    /// dependency, against the installation's 5,000 an hour.
    #[serde(deserialize_with = "at_least_one")]
    pub interval_secs: u64,
    /// Whether to ask GitHub to redeliver failed deliveries Foreman never stored. Default `true`.
    pub redeliver: bool,
    /// At most this many redelivery requests per pass. Default 50, so that recovering from a long outage
    /// spreads the burst of redelivered events over several passes rather than one.
    pub max_redeliveries_per_pass: usize,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self { interval_secs: 600, redeliver: true, max_redeliveries_per_pass: 50 }
    }
}

impl ReconcileConfig {
    /// The time between passes.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::invalid_value(serde::de::Unexpected::Unsigned(0), &"at least 1 second"));
    }
    Ok(v)
}

/// Why reconciliation cancelled a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The issue (or pull request, for a follow-up) is closed.
    Closed,
    /// The job was queued by the trigger label, and the issue no longer carries it.
    Unlabeled,
    /// The issue is gone: GitHub answered 404 (deleted, transferred, or no longer visible to the
    /// installation) or 410 (deleted, or issues turned off).
    Gone,
    /// The job was queued by a board move, and the issue's card now sits in a stop column
    /// (`triggers.stop_columns`), as a `projects_v2_item` delivery Foreman missed would have said.
    MovedOff,
}

impl CancelReason {
    /// The cause recorded in the job's audit trail.
    pub fn cause(self, label: &str) -> String {
        match self {
            CancelReason::Closed => "issue closed (reconciliation)".into(),
            CancelReason::Unlabeled => format!("label '{label}' removed (reconciliation)"),
            CancelReason::Gone => "issue deleted or transferred (reconciliation)".into(),
            CancelReason::MovedOff => "card moved to a stop column (reconciliation)".into(),
        }
    }

    /// The `reason` label of `foreman_reconcile_cancelled_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Closed => "closed",
            CancelReason::Unlabeled => "unlabeled",
            CancelReason::Gone => "gone",
            CancelReason::MovedOff => "moved_off",
        }
    }
}

/// What to do with one live job, given its issue as GitHub has it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// GitHub agrees with the job.
    Keep,
    /// Cancel it.
    Cancel(CancelReason),
    /// The trigger label is gone but the job runs and `triggers.cancel_on_unlabel` is off: it is left to
    /// finish, as for an `unlabeled` event.
    LeaveRunning,
}

/// The issue as read from GitHub, for [`remedy`].
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// The issue.
    Issue(&'a Issue),
    /// 404 or 410.
    Gone,
}

/// The rule of step 1, without I/O: what a live `job` needs, given its issue as GitHub has it.
pub fn remedy(job: &Job, seen: Seen<'_>, triggers: &DecideConfig) -> Remedy {
    let issue = match seen {
        Seen::Gone => return Remedy::Cancel(CancelReason::Gone),
        Seen::Issue(issue) => issue,
    };
    if issue.state.eq_ignore_ascii_case("closed") {
        return Remedy::Cancel(CancelReason::Closed);
    }
    let by_label = job.trigger == Some(Trigger::Label);
    let labelled = issue.labels.iter().any(|l| l.name.eq_ignore_ascii_case(&triggers.label));
    if by_label && !labelled {
        return if crate::decide::unlabel_cancels(job.state == JobState::Running, triggers) {
            Remedy::Cancel(CancelReason::Unlabeled)
        } else {
            Remedy::LeaveRunning
        };
    }
    Remedy::Keep
}

/// A job reconciliation cancelled.
#[derive(Debug, Clone, Serialize)]
pub struct Cancellation {
    /// The job's issue.
    pub issue: IssueRef,
    /// Its state before.
    pub from: JobState,
    /// Why.
    pub reason: CancelReason,
    /// The session that ran it, if it was running: whoever runs sessions must stop it (its claim is already
    /// released, so its next heartbeat fails too).
    pub session: Option<SessionId>,
}

/// An issue that could not be read this pass; it is tried again on the next.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The issue.
    pub issue: IssueRef,
    /// Why, without secrets: the endpoint template and GitHub's message, or "no installation recorded".
    pub error: String,
}

/// A dependency's state as read from GitHub and recorded.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyState {
    /// The dependency.
    pub issue: IssueRef,
    /// Whether it is open.
    pub open: bool,
    /// How many jobs changed because of it (unblocked when closed).
    pub jobs_changed: usize,
}

/// A redelivery requested.
#[derive(Debug, Clone, Serialize)]
pub struct Redelivery {
    /// The `X-GitHub-Delivery` GUID.
    pub guid: DeliveryId,
    /// The attempt's id that was redelivered (`POST /app/hook/deliveries/{id}/attempts`).
    pub id: u64,
    /// `event.action`, e.g. `issues.unlabeled`.
    pub event: String,
}

/// What one pass found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Live jobs whose issue was read.
    pub jobs_checked: usize,
    /// Jobs cancelled.
    pub cancelled: Vec<Cancellation>,
    /// Running jobs whose trigger label is gone, left to finish (`triggers.cancel_on_unlabel` is off).
    pub left_running: Vec<IssueRef>,
    /// Dependencies read and recorded.
    pub dependencies: Vec<DependencyState>,
    /// Queued jobs whose "blocked by" links on GitHub were not what Foreman had (a link removed sends no
    /// change of the issue's `updated_at`, so every queued job's links are read).
    pub relinked: Vec<IssueRef>,
    /// Issues that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Deliveries listed (attempts, so a GUID may count more than once); 0 when redelivery is off.
    pub deliveries_listed: usize,
    /// Failed deliveries Foreman never stored and already asked for within [`REDELIVERY_MEMORY`].
    pub redeliveries_pending: usize,
    /// Redeliveries requested.
    pub redeliveries: Vec<Redelivery>,
    /// Jobs GitHub was behind on, reported again (a stored report not applied, or a state never reported).
    pub reports_resumed: usize,
    /// Failed deliveries left for a later pass because of `max_redeliveries_per_pass`.
    pub redeliveries_deferred: usize,
    /// Listing deliveries or a redelivery request failed: what GitHub said.
    pub delivery_errors: Vec<String>,
}

impl Report {
    /// Whether the pass changed anything or met an error (for the log level).
    pub fn eventful(&self) -> bool {
        !(self.cancelled.is_empty()
            && self.left_running.is_empty()
            && self.dependencies.iter().all(|d| d.jobs_changed == 0)
            && self.relinked.is_empty()
            && self.unreadable.is_empty()
            && self.redeliveries.is_empty()
            && self.reports_resumed == 0
            && self.delivery_errors.is_empty())
    }
}

/// A pass that could not be carried out: the job store or the inbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The job store failed.
    #[error("reconciliation: {0}")]
    Jobs(#[from] JobError),
    /// The delivery inbox failed.
    #[error("reconciliation: {0}")]
    Inbox(#[from] StoreError),
}

/// Compares jobs with GitHub and recovers lost deliveries; see the module documentation.
pub struct Reconciler {
    client: Client,
    scheduler: Scheduler,
    triggers: DecideConfig,
    config: ReconcileConfig,
    /// GUIDs this process asked GitHub to redeliver, with when.
    requested: Mutex<HashMap<DeliveryId, OffsetDateTime>>,
    /// The one cancel path: records, stops a running session, reports.
    canceller: Canceller,
}

impl Reconciler {
    /// A reconciler reading GitHub through `client`, acting on `scheduler`'s jobs, judging labels by
    /// `triggers` (`label`, `cancel_on_unlabel`).
    pub fn new(client: Client, scheduler: Scheduler, triggers: DecideConfig, config: ReconcileConfig) -> Self {
        let canceller = Canceller::new(scheduler.clone(), triggers.label.clone());
        Self { client, scheduler, triggers, config, requested: Mutex::new(HashMap::new()), canceller }
    }

    /// The same, cancelling through `canceller`: the one cancel path, which stops a running job's session at
    /// once and reports the cancellation on the issue. (Without it, cancellations are recorded only: a
    /// session stops at its next heartbeat, when it finds its claim gone, and nothing is reported.)
    pub fn with_canceller(mut self, canceller: Canceller) -> Self {
        self.canceller = canceller;
        self
    }

    /// One pass at `now` (used for the delivery window and the redelivery memory); returns what it found
    /// and did.
    ///
    /// Errors: [`ReconcileError`] only when the store cannot be read. GitHub failures are in the report.
    pub async fn run_once(&self, now: OffsetDateTime) -> Result<Report, ReconcileError> {
        let mut report = Report::default();
        self.jobs(now, &mut report).await?;
        // After the cancellations above, so their reports are the ones resumed if they did not go out.
        report.reports_resumed = self.canceller.resume_reports()?;
        if self.config.redeliver {
            self.deliveries(now, &mut report).await?;
        }
        Ok(report)
    }

    /// Runs a pass at start, then one every `interval_secs`, until `shutdown`. A pass that fails is logged
    /// and the next one runs on schedule.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let pass = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.run_once(OffsetDateTime::now_utc()) => r,
            };
            match pass {
                Ok(report) if report.eventful() => {
                    let summary = serde_json::to_string(&report).unwrap_or_default();
                    tracing::info!(
                        cancelled = report.cancelled.len(),
                        redeliveries = report.redeliveries.len(),
                        unreadable = report.unreadable.len(),
                        %summary,
                        "reconciliation pass"
                    );
                }
                Ok(report) => tracing::debug!(jobs = report.jobs_checked, "reconciliation pass: no drift"),
                Err(e) => tracing::error!(error = %e, "reconciliation pass failed"),
            }
        }
    }

    /// Whether any of the issue's cards (on organisation boards) is in a stop column.
    async fn card_in_stop_column(&self, inst: InstallationId, job: &Job) -> Result<bool, crate::github::GithubError> {
        let items = self.client.issue_project_items(inst, &job.repo, job.issue, &self.triggers.status_field).await?;
        Ok(items.iter().any(|(item, _, _)| {
            item.column.as_deref().is_some_and(|c| self.triggers.stop_columns.iter().any(|s| s.eq_ignore_ascii_case(c)))
        }))
    }

    /// Reads a queued job's "blocked by" links and each blocker's state, and gives the job the links it
    /// has on GitHub: one removed by hand releases it, one added holds it. A read that fails leaves the job
    /// as it is (listed as unreadable).
    async fn relink(
        &self,
        inst: InstallationId,
        job: &Job,
        now: OffsetDateTime,
        report: &mut Report,
    ) -> Result<(), ReconcileError> {
        let read = match self.client.blockers(inst, &job.repo, job.issue).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(issue = %job.issue_ref(), error = %e, "reconciliation could not read blocked-by links");
                report.unreadable.push(Unreadable { issue: job.issue_ref(), error: e.to_string() });
                return Ok(());
            }
        };
        let mut links = Vec::with_capacity(read.len());
        for b in &read {
            let Some(repo) = b.repo() else { continue };
            let r = IssueRef { repo, issue: b.number };
            self.scheduler.issue_state(&r, b.is_open(), now)?;
            links.push(r);
        }
        if let Some(changed) = self.scheduler.link(&job.issue_ref(), &crate::job::LinkChange::Set(links), now)? {
            report.relinked.push(changed.issue_ref());
            if changed.state == JobState::Queued {
                self.canceller.report_queued(&changed);
            }
        }
        Ok(())
    }

    /// Step 1: every live job against its issue, then the dependencies they wait on.
    async fn jobs(&self, now: OffsetDateTime, report: &mut Report) -> Result<(), ReconcileError> {
        let store = self.scheduler.store();
        let live = store.live_jobs()?;
        // Dependencies to read, each once, with the installation of a job that waits on it.
        let mut deps: Vec<(IssueRef, InstallationId)> = Vec::new();
        let mut seen_deps = HashSet::new();
        for job in &live {
            let Some(inst) = job.installation else {
                report.unreadable.push(Unreadable { issue: job.issue_ref(), error: "no installation recorded".into() });
                continue;
            };
            for d in &job.waiting_on {
                if seen_deps.insert(d.clone()) {
                    deps.push((d.clone(), inst));
                }
            }
            let seen = match self.client.issue(inst, &job.repo, job.issue).await {
                Ok(issue) => Ok(issue),
                Err(e) if is_gone(&e) => Err(None),
                Err(e) => Err(Some(e)),
            };
            let v = match &seen {
                Ok(issue) => remedy(job, Seen::Issue(issue), &self.triggers),
                Err(None) => remedy(job, Seen::Gone, &self.triggers),
                Err(Some(e)) => {
                    tracing::warn!(issue = %job.issue_ref(), error = %e, "reconciliation could not read an issue");
                    report.unreadable.push(Unreadable { issue: job.issue_ref(), error: e.to_string() });
                    continue;
                }
            };
            report.jobs_checked += 1;
            let v = match v {
                Remedy::Keep if job.trigger == Some(Trigger::Board) => {
                    match self.card_in_stop_column(inst, job).await {
                        Ok(true) => Remedy::Cancel(CancelReason::MovedOff),
                        Ok(false) => Remedy::Keep,
                        Err(e) => {
                            tracing::warn!(issue = %job.issue_ref(), error = %e, "reconciliation could not read the board");
                            report.unreadable.push(Unreadable { issue: job.issue_ref(), error: e.to_string() });
                            Remedy::Keep
                        }
                    }
                }
                v => v,
            };
            match v {
                Remedy::Keep if matches!(job.state, JobState::Queued | JobState::Failed) => {
                    self.relink(inst, job, now, report).await?;
                }
                Remedy::Keep => {}
                Remedy::LeaveRunning => report.left_running.push(job.issue_ref()),
                Remedy::Cancel(reason) => {
                    // The job may have changed while GitHub was read (a delivery re-queued it, or a
                    // session claimed it): judge the current record again before acting.
                    let Some(current) = store.job(&job.repo, job.issue)? else { continue };
                    let still = match (&seen, reason) {
                        // The board was read just now; only the job's own change matters.
                        (_, CancelReason::MovedOff) => v,
                        (Ok(issue), _) => remedy(&current, Seen::Issue(issue), &self.triggers),
                        (Err(_), _) => remedy(&current, Seen::Gone, &self.triggers),
                    };
                    if current.seq != job.seq
                        || !matches!(current.state, JobState::Queued | JobState::Running | JobState::Failed)
                        || still != v
                    {
                        continue;
                    }
                    let cause = reason.cause(&self.triggers.label);
                    if let Cancelled::Cancelled { session, .. } =
                        self.canceller.cancel(&job.repo, job.issue, "foreman", &cause, Some(inst), now).await?
                    {
                        tracing::info!(issue = %job.issue_ref(), %cause, "reconciliation cancelled a job");
                        metrics::counter!("foreman_reconcile_cancelled_total", "reason" => reason.as_str())
                            .increment(1);
                        report.cancelled.push(Cancellation {
                            issue: job.issue_ref(),
                            from: current.state,
                            reason,
                            session,
                        });
                    }
                }
            }
        }
        for (dep, inst) in deps {
            match self.client.issue(inst, &dep.repo, dep.issue).await {
                Ok(issue) => {
                    let open = !issue.state.eq_ignore_ascii_case("closed");
                    let jobs_changed = self.scheduler.issue_state(&dep, open, now)?;
                    report.dependencies.push(DependencyState { issue: dep, open, jobs_changed });
                }
                Err(e) => {
                    // A dependency that is gone is left as it is: whether it was done cannot be known, so a
                    // person decides (`/foreman retry` after editing the issue's `Depends on` lines).
                    tracing::warn!(issue = %dep, error = %e, "reconciliation could not read a dependency");
                    report.unreadable.push(Unreadable { issue: dep, error: e.to_string() });
                }
            }
        }
        Ok(())
    }

    /// Step 2: redeliver what GitHub failed to deliver and Foreman never stored.
    async fn deliveries(&self, now: OffsetDateTime, report: &mut Report) -> Result<(), ReconcileError> {
        let list = match self.client.hook_deliveries(DELIVERIES_LISTED).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation could not list the app's deliveries");
                report.delivery_errors.push(e.to_string());
                return Ok(());
            }
        };
        report.deliveries_listed = list.len();
        let candidates = lost_deliveries(&list, now);
        let memory = time::Duration::try_from(REDELIVERY_MEMORY).unwrap_or(time::Duration::HOUR);
        for d in candidates {
            if self.scheduler.store().delivery(&d.guid)?.is_some() {
                continue;
            }
            {
                let mut requested = self.requested.lock().expect("redelivery memory lock");
                requested.retain(|_, at| now - *at < memory);
                if requested.contains_key(&d.guid) {
                    report.redeliveries_pending += 1;
                    continue;
                }
            }
            if report.redeliveries.len() >= self.config.max_redeliveries_per_pass {
                report.redeliveries_deferred += 1;
                continue;
            }
            let event = match &d.action {
                Some(a) => format!("{}.{a}", d.event),
                None => d.event.clone(),
            };
            match self.client.redeliver(d.id).await {
                Ok(()) => {
                    self.requested.lock().expect("redelivery memory lock").insert(d.guid.clone(), now);
                    metrics::counter!("foreman_redeliveries_requested_total").increment(1);
                    tracing::info!(guid = %d.guid, %event, "requested a redelivery of a lost delivery");
                    report.redeliveries.push(Redelivery { guid: d.guid.clone(), id: d.id, event });
                }
                Err(e) => {
                    tracing::warn!(guid = %d.guid, error = %e, "reconciliation could not request a redelivery");
                    report.delivery_errors.push(e.to_string());
                }
            }
        }
        Ok(())
    }
}

/// The endpoint template of [`Client::issue`], as its errors name it.
const ISSUE_ENDPOINT: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}";

/// Whether GitHub's answer means the issue itself is gone: 404 (deleted, transferred, or not visible to the
/// installation) or 410 (deleted, or issues turned off in the repository) from the issue endpoint. A 404 on
/// the way there (minting the installation's token for an installation that was removed) is not: that
/// says nothing about the issue, so the job is left alone and reported unreadable.
fn is_gone(e: &GithubError) -> bool {
    match e {
        GithubError::NotFound { endpoint } => *endpoint == ISSUE_ENDPOINT,
        GithubError::Unexpected { endpoint, message } => *endpoint == ISSUE_ENDPOINT && message.starts_with("HTTP 410"),
        _ => false,
    }
}

/// The deliveries worth redelivering, one attempt per GUID (the newest), newest first: no attempt of the
/// GUID answered 2xx, and its newest attempt is older than [`IN_FLIGHT_GRACE`] and younger than
/// [`DELIVERY_RETENTION`] at `now`. An attempt whose `delivered_at` does not parse is taken as fresh, so it
/// is not redelivered on a guess. Whether Foreman stored the GUID is the caller's question.
pub fn lost_deliveries(list: &[HookDelivery], now: OffsetDateTime) -> Vec<&HookDelivery> {
    let grace = time::Duration::try_from(IN_FLIGHT_GRACE).unwrap_or(time::Duration::MINUTE);
    let retention = time::Duration::try_from(DELIVERY_RETENTION).unwrap_or(time::Duration::days(3));
    let mut newest: HashMap<&DeliveryId, (&HookDelivery, OffsetDateTime)> = HashMap::new();
    let mut delivered: HashSet<&DeliveryId> = HashSet::new();
    let mut order: Vec<&DeliveryId> = Vec::new();
    for d in list {
        if (200..300).contains(&d.status_code) {
            delivered.insert(&d.guid);
        }
        let at = OffsetDateTime::parse(&d.delivered_at, &Rfc3339).unwrap_or(now);
        match newest.get(&d.guid) {
            Some((_, t)) if *t >= at => {}
            existing => {
                if existing.is_none() {
                    order.push(&d.guid);
                }
                newest.insert(&d.guid, (d, at));
            }
        }
    }
    order
        .into_iter()
        .filter(|g| !delivered.contains(g))
        .filter_map(|g| newest.get(g).copied())
        .filter(|(_, at)| now - *at >= grace && now - *at < retention)
        .map(|(d, _)| d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn attempt(id: u64, guid: &str, status_code: u16, minutes_ago: i64) -> HookDelivery {
        let at = (NOW - time::Duration::minutes(minutes_ago)).format(&Rfc3339).unwrap();
        serde_json::from_value(json!({
            "id": id, "guid": guid, "delivered_at": at, "redelivery": false, "status_code": status_code,
            "event": "issues", "action": "labeled", "installation_id": 7,
        }))
        .unwrap()
    }

    #[test]
    fn one_attempt_per_lost_guid_none_for_a_delivered_one_and_only_inside_the_window() {
        let list = [
            attempt(6, "a", 0, 2),                 // a: newest attempt, failed
            attempt(5, "b", 200, 3),               // b: delivered on its second attempt
            attempt(4, "a", 502, 10),              // a: older failed attempt
            attempt(3, "b", 500, 12),              // b: first attempt failed
            attempt(2, "fresh", 0, 0),             // may still be in flight
            attempt(1, "old", 0, 3 * 24 * 60 + 1), // past GitHub's retention
        ];
        let lost: Vec<_> = lost_deliveries(&list, NOW).into_iter().map(|d| (d.guid.as_str(), d.id)).collect();
        assert_eq!(lost, [("a", 6)], "the newest attempt of the one GUID never answered 2xx");
    }

    #[test]
    fn an_unparsable_time_is_taken_as_fresh() {
        let mut d = attempt(1, "a", 0, 10);
        d.delivered_at = "yesterday".into();
        assert!(lost_deliveries(&[d], NOW).is_empty());
    }

    fn issue(state: &str, labels: &[&str]) -> Issue {
        let labels: Vec<_> = labels.iter().map(|l| json!({"name": l})).collect();
        serde_json::from_value(json!({
            "id": 101, "number": 1, "node_id": "I_1", "title": "t", "state": state, "labels": labels,
            "user": {"login": "alice", "id": 1, "type": "User"},
        }))
        .unwrap()
    }

    fn job(state: JobState, trigger: &str) -> Job {
        serde_json::from_value(json!({
            "repo": "acme/widgets", "issue": 1, "kind": "code", "state": state, "title": "t", "priority": 2,
            "phase": {"kind": "none"}, "seq": 1, "enqueued_at": "2026-11-21T11:00:00Z",
            "updated_at": "2026-11-21T11:00:00Z", "attempts": 0, "trigger": trigger, "placement": {"in": "none"},
        }))
        .unwrap()
    }

    #[test]
    fn the_verdict_reads_state_labels_and_trigger() {
        let t = DecideConfig::default();
        let on = DecideConfig { cancel_on_unlabel: true, ..DecideConfig::default() };
        let (queued, running) = (job(JobState::Queued, "label"), job(JobState::Running, "label"));
        let bare = issue("open", &["bug"]);
        assert_eq!(remedy(&queued, Seen::Issue(&bare), &t), Remedy::Cancel(CancelReason::Unlabeled));
        assert_eq!(remedy(&running, Seen::Issue(&bare), &t), Remedy::LeaveRunning);
        assert_eq!(remedy(&running, Seen::Issue(&bare), &on), Remedy::Cancel(CancelReason::Unlabeled));
        assert_eq!(remedy(&queued, Seen::Issue(&issue("open", &["Foreman"])), &t), Remedy::Keep, "any case");
        assert_eq!(remedy(&job(JobState::Queued, "command"), Seen::Issue(&bare), &t), Remedy::Keep);
        assert_eq!(
            remedy(&running, Seen::Issue(&issue("closed", &["foreman"])), &t),
            Remedy::Cancel(CancelReason::Closed)
        );
        assert_eq!(remedy(&queued, Seen::Gone, &t), Remedy::Cancel(CancelReason::Gone));
    }

    #[test]
    fn only_the_issue_endpoint_saying_404_or_410_means_gone() {
        assert!(is_gone(&GithubError::NotFound { endpoint: ISSUE_ENDPOINT }));
        let gone =
            GithubError::Unexpected { endpoint: ISSUE_ENDPOINT, message: "HTTP 410: Issues are disabled".into() };
        assert!(is_gone(&gone));
        let token = GithubError::NotFound { endpoint: "POST /app/installations/{installation_id}/access_tokens" };
        assert!(!is_gone(&token));
        let other = GithubError::Unexpected { endpoint: ISSUE_ENDPOINT, message: "HTTP 400: bad".into() };
        assert!(!is_gone(&other));
    }

    #[test]
    fn interval_zero_is_refused_and_defaults_hold() {
        let c: ReconcileConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, ReconcileConfig { interval_secs: 600, redeliver: true, max_redeliveries_per_pass: 50 });
        assert!(serde_json::from_value::<ReconcileConfig>(json!({"interval_secs": 0})).is_err());
        assert!(serde_json::from_value::<ReconcileConfig>(json!({"interval": 5})).is_err(), "unknown key");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
    fn the_environment_sets_the_interval_and_a_zero_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOREMAN_RECONCILE_INTERVAL_SECS", "30");
            let c = crate::config::Config::load(None).unwrap();
            assert_eq!(c.reconcile.interval(), Duration::from_secs(30));
            assert!(c.reconcile.redeliver);
            jail.set_env("FOREMAN_RECONCILE_INTERVAL_SECS", "0");
            let e = crate::config::Config::load(None).unwrap_err().to_string();
            assert!(e.contains("reconcile.interval_secs") && e.contains("FOREMAN_RECONCILE_INTERVAL_SECS"), "{e}");
            Ok(())
        });
    }
}
