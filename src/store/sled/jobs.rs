//! Jobs: one per (repository, issue), their run-order index, dependencies and audit trail.
//!
//! Trees (keys big-endian so that key order is the order that matters):
//! - `jobs`: job key → [`Job`] as JSON. A job key is the lower-cased `owner/name`, a zero byte, and the
//!   issue number as u64 (GitHub compares repository names case-insensitively).
//! - `job_ready`: [`OrderKey`] → a copy of the [`Job`] record (JSON, byte for byte what `jobs` holds), for
//!   every queued job that may run now. Keys sort in run order, so the next job is the first key: picking
//!   never sorts or scans the queue. The copy is what makes a claim cheap: the front of this tree stays in
//!   sled's cache, while a job's own record in `jobs` is, with 100,000 jobs, usually a cold page.
//!   ([`Tx::put_job`] writes both, so they cannot drift apart.)
//! - `job_delayed`: not-before time (unix nanoseconds, u64) · job key → empty: jobs in backoff or waiting
//!   for a rate-limit reset.
//! - `job_deps`: dependency's issue key · job key → empty: who waits on an issue.
//! - `issue_state`: issue key → `open` | `closed`, as Foreman learned it from events or lookups.
//! - `job_audit`: id (u64, increasing) → [`AuditEntry`]: every transition, with time, actor and cause.
//!   Keyed by id so that writes append at the right edge of the tree, which stays in sled's cache.
//! - `job_audit_index`: job key · id → empty: a job's entries. Small keys, so the tree stays cached too
//!   even with 100,000 jobs (a claim then touches one cold page, the job's own, instead of three).
//! - claims, the slot counters, the failure ledger and sessions: see [`super::claims`],
//!   [`super::failures`], [`super::sessions`].
//!
//! A queued job is in exactly one of `job_ready`, `job_delayed` or waiting on a dependency; which one is
//! recorded in the job itself ([`Placement`]), so that moving it out is exact. Every change to a job and
//! its index entries is one sled transaction over all the trees it touches.
//!
//! Claiming does not rewrite the job's record: the claim (tree `claims`) is the authority for the running
//! state. A claimed job's record still reads `queued`, placed ready (though no longer in `job_ready`), until
//! the next write of the job, which writes it as running. Every read of a job applies its claim
//! ([`apply_claim`]): [`Tx::job`], [`Store::job`], and the scans. This keeps the one cold page of a job's
//! record out of the claim (the target: pick-next + claim median ≤ 100 µs with 100,000 jobs queued).

use serde::Deserialize;
use time::OffsetDateTime;

pub(super) use super::trees::{Abort, Trees, Tx, abort, corrupt, decode, encode, entry, key_repo_prefix, time_key};

pub(super) use super::{JobError, Store, StoreError};
use crate::ids::{IssueNumber, RepoName};
use crate::job::claims::{Claim, apply_claim, may_be_claimed};
use crate::job::deps::{cycle_reason, find_cycle};
use crate::job::key::decode_issue_key;
pub(super) use crate::job::key::{from_nanos, issue_key, nanos};
use crate::job::{EnqueueOutcome, Job, JobState, NewJob, Placement};
use crate::job::{FailureCounts, IssueRef, LinkChange, SessionId};

/// Only the fields of a job the counts need; serde skips the rest cheaply.
#[derive(Deserialize)]
pub(super) struct StateOnly {
    pub(super) state: JobState,
}

impl Store {
    pub(super) fn job_trees(&self) -> &Trees {
        &self.inner.jobs
    }

    /// Queues a run of an issue, or refreshes a queued one; see [`EnqueueOutcome`] for every case.
    ///
    /// A job that succeeded or was cancelled starts a fresh run: its failure counts reset and its age
    /// restarts. Dependencies not known to be closed ([`Store::record_issue_state`]) keep it waiting; when
    /// that wait would close a cycle of waiting jobs, every job on the cycle becomes stuck with the cycle
    /// as its reason. Not flushed: a crash before the next group flush loses the enqueue, and the inbox,
    /// whose delivery is not yet marked processed, queues it again.
    ///
    /// `priority` is the job's rank ([`crate::job::priority_rank`]); the phase key and the dependencies
    /// follow from `new` ([`NewJob::phase`], [`NewJob::dependencies`]). `actor` is the requester's login or
    /// `foreman`, for the audit trail.
    pub fn enqueue_job(
        &self,
        new: &NewJob,
        priority: u8,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<EnqueueOutcome, JobError> {
        let t = self.job_trees();
        let key = issue_key(&new.repo, new.issue);
        let (phase, declared, depends_on) = (new.phase(), new.declared(), new.dependencies());
        let mut waiting_on = Vec::new();
        for dep in &depends_on {
            if t.issues.get(issue_key(&dep.repo, dep.issue))?.as_deref() != Some(b"closed") {
                waiting_on.push(dep.clone());
            }
        }
        let outcome = t.run(|tx| {
            let existing = tx.job(&key)?;
            if let (Some(job), Some(d)) = (&existing, &new.delivery)
                && job.deliveries.contains(d)
            {
                return Ok(EnqueueOutcome::Duplicate(job.clone()));
            }
            let remember = |job: &mut Job| job.remember(new.delivery.as_ref());
            match existing {
                Some(mut job) if job.state == JobState::Running || job.state == JobState::Stuck => {
                    remember(&mut job);
                    tx.put_job(&key, &job)?;
                    Ok(if job.state == JobState::Running {
                        EnqueueOutcome::AlreadyRunning(job)
                    } else {
                        EnqueueOutcome::Stuck(job)
                    })
                }
                Some(mut job) if matches!(job.state, JobState::Queued | JobState::Failed) => {
                    tx.unplace(&key, &mut job)?;
                    set_deps(tx, &key, &job.dependencies(), &depends_on)?;
                    job.kind = new.kind;
                    job.title.clone_from(&new.title);
                    job.labels.clone_from(&new.labels);
                    job.priority = priority;
                    job.phase = phase;
                    job.installation = new.installation.or(job.installation);
                    job.depends_on.clone_from(&declared);
                    job.blocked_by.clone_from(&new.blocked_by);
                    job.waiting_on.clone_from(&waiting_on);
                    job.trigger = new.trigger;
                    job.requester.clone_from(&new.requester);
                    job.instructions.clone_from(&new.instructions);
                    job.updated_at = now;
                    remember(&mut job);
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(
                        &key,
                        entry(now, actor, "updated", Some(job.state), job.state, &new.cause)
                            .with_delivery(new.delivery.as_ref()),
                    )?;
                    Ok(EnqueueOutcome::Updated(job))
                }
                existing => {
                    let from = existing.as_ref().map(|j| j.state);
                    let old_deps = existing.as_ref().map(Job::dependencies).unwrap_or_default();
                    set_deps(tx, &key, &old_deps, &depends_on)?;
                    let mut job = Job {
                        repo: new.repo.clone(),
                        issue: new.issue,
                        installation: new.installation,
                        kind: new.kind,
                        state: JobState::Queued,
                        title: new.title.clone(),
                        labels: new.labels.clone(),
                        priority,
                        phase,
                        depends_on: declared.clone(),
                        blocked_by: new.blocked_by.clone(),
                        waiting_on: waiting_on.clone(),
                        seq: tx.jobs.generate_id()?,
                        enqueued_at: now,
                        updated_at: now,
                        not_before: None,
                        failures: FailureCounts::default(),
                        last_failure: None,
                        attempts: 0,
                        stuck_reason: None,
                        trigger: new.trigger,
                        requester: new.requester.clone(),
                        instructions: new.instructions.clone(),
                        session: existing.as_ref().and_then(|j| j.session.clone()),
                        deliveries: existing.map(|j| j.deliveries).unwrap_or_default(),
                        placement: Placement::None,
                        wait: None,
                        retries: 0,
                        resolution: None,
                    };
                    remember(&mut job);
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(
                        &key,
                        entry(now, actor, "enqueued", from, JobState::Queued, &new.cause)
                            .with_delivery(new.delivery.as_ref()),
                    )?;
                    Ok(EnqueueOutcome::Queued(job))
                }
            }
        })?;
        if let EnqueueOutcome::Queued(job) | EnqueueOutcome::Updated(job) = &outcome
            && job.placement == Placement::Waiting
            && let Some(cycle) = self.find_cycle(&job.issue_ref())?
        {
            self.set_cycle_stuck(&cycle, now)?;
            let job = self.job(&job.repo, job.issue)?.ok_or_else(|| JobError::NotFound(job.issue_ref()))?;
            return Ok(EnqueueOutcome::Stuck(job));
        }
        Ok(outcome)
    }

    /// A job, or `None` when the issue was never queued.
    pub fn job(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<Job>, JobError> {
        let t = self.job_trees();
        let key = issue_key(repo, issue);
        let Some(raw) = t.jobs.get(&key)? else { return Ok(None) };
        let mut job: Job = decode(&raw, "job")?;
        if may_be_claimed(&job)
            && let Some(raw) = t.claims.get(&key)?
        {
            apply_claim(&mut job, &decode(&raw, "claim")?);
        }
        Ok(Some(job))
    }

    /// Every live claim keyed by job key, for the scans that apply claims to many jobs.
    pub(super) fn claims_by_key(&self) -> Result<std::collections::HashMap<sled::IVec, Claim>, JobError> {
        let mut out = std::collections::HashMap::new();
        for item in self.job_trees().claims.iter() {
            let (k, raw) = item?;
            out.insert(k, decode(&raw, "claim")?);
        }
        Ok(out)
    }

    /// The job's 1-based position in the run order, when it is ready to run (`None` when running, waiting or
    /// finished). Counts the ready jobs ahead of it: O(position).
    pub fn queue_position(&self, job: &Job) -> Result<Option<u64>, JobError> {
        if job.placement != Placement::Ready {
            return Ok(None);
        }
        Ok(Some(self.job_trees().ready.range(..job.order_key().encode()).count() as u64 + 1))
    }

    /// Cancels a job that is queued, in backoff or running. A running job's claim is released at once, so
    /// its slot is free for the next job; the returned session id is the one the caller must stop.
    /// Cancelling a finished or stuck job changes nothing and returns `Ok(None)`.
    ///
    /// Errors: [`JobError::NotFound`] when the issue was never queued.
    pub fn cancel_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Job, Option<SessionId>)>, JobError> {
        let key = issue_key(repo, issue);
        let issue_ref = IssueRef { repo: repo.clone(), issue };
        self.job_trees().run(|tx| {
            let mut job = tx.job(&key)?.ok_or_else(|| abort(JobError::NotFound(issue_ref.clone())))?;
            let from = job.state;
            let mut stop = None;
            match from {
                JobState::Queued | JobState::Failed => tx.unplace(&key, &mut job)?,
                JobState::Running => {
                    if let Some(claim) =
                        self.release_claim_tx(tx, &key, &job, super::sessions::SessionState::Cancelled, now)?
                    {
                        stop = Some(claim.session);
                    }
                }
                JobState::Succeeded | JobState::Cancelled | JobState::Stuck => return Ok(None),
            }
            job.state = JobState::Cancelled;
            job.not_before = None;
            job.updated_at = now;
            tx.put_job(&key, &job)?;
            tx.record(&key, entry(now, actor, "cancelled", Some(from), JobState::Cancelled, cause))?;
            Ok(Some((job, stop)))
        })
    }

    /// `retry`: resets the failure counts and queues the job again, whatever its state, unless it is running.
    ///
    /// Errors: [`JobError::NotFound`]; [`JobError::InvalidState`] for a running job.
    pub fn retry_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        actor: &str,
        cause: &str,
        now: OffsetDateTime,
    ) -> Result<Job, JobError> {
        let key = issue_key(repo, issue);
        let issue_ref = IssueRef { repo: repo.clone(), issue };
        let job = self.job_trees().run(|tx| {
            let mut job = tx.job(&key)?.ok_or_else(|| abort(JobError::NotFound(issue_ref.clone())))?;
            let from = job.state;
            if from == JobState::Running {
                return Err(abort(JobError::InvalidState { issue: issue_ref.clone(), state: from, action: "retry" }));
            }
            tx.unplace(&key, &mut job)?;
            // The tracking comment says the count starts again only when there was a count to reset (a
            // wait ended by `retry`, or by a push fixing the constitution, reset nothing).
            if !job.failures.is_zero() {
                job.retries = job.retries.saturating_add(1);
            }
            job.failures = FailureCounts::default();
            job.not_before = None;
            job.wait = None;
            job.stuck_reason = None;
            job.state = JobState::Queued;
            job.updated_at = now;
            tx.place(&key, &mut job, now)?;
            tx.put_job(&key, &job)?;
            tx.record(&key, entry(now, actor, "retry", Some(from), JobState::Queued, cause))?;
            Ok(job)
        })?;
        if job.placement == Placement::Waiting
            && let Some(cycle) = self.find_cycle(&job.issue_ref())?
        {
            self.set_cycle_stuck(&cycle, now)?;
            return self.job(repo, issue)?.ok_or(JobError::NotFound(issue_ref_of(&job)));
        }
        Ok(job)
    }

    /// Re-places a queued job (or one waiting to retry) after its issue changed: a new title (its phase key)
    /// or new labels (its `priority` rank). Returns the job as re-placed, or `None` when the issue has no
    /// such job or neither the order nor the recorded title and labels changed. The claim is the authority
    /// for a running job, so one that is running, or has ended, is left as it is.
    pub fn reorder_job(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        title: &str,
        labels: &[String],
        priority: u8,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        let key = issue_key(repo, issue);
        let phase = crate::job::PhaseKey::parse(title);
        self.job_trees().run(|tx| {
            let Some(mut job) = tx.job(&key)? else { return Ok(None) };
            if !matches!(job.state, JobState::Queued | JobState::Failed)
                || (job.title == title && job.labels == labels && job.priority == priority && job.phase == phase)
            {
                return Ok(None);
            }
            let cause = match (job.priority != priority, job.phase != phase) {
                (true, true) => format!("priority rank {} → {priority} and phase from the title", job.priority),
                (true, false) => format!("priority rank {} → {priority}", job.priority),
                (false, true) => "phase from the title".to_owned(),
                (false, false) => {
                    format!("{}; its place in the queue did not change", what_changed(&job, title, labels))
                }
            };
            tx.unplace(&key, &mut job)?;
            job.title = title.to_owned();
            job.labels = labels.to_vec();
            job.priority = priority;
            job.phase = phase;
            job.updated_at = now;
            tx.place(&key, &mut job, now)?;
            tx.put_job(&key, &job)?;
            tx.record(&key, entry(now, "foreman", "reordered", Some(job.state), job.state, &cause))?;
            Ok(Some(job))
        })
    }

    /// Records that an issue is open or closed, as an event or a lookup told Foreman. Closing releases the
    /// jobs that wait on it (the last open dependency makes them runnable); reopening makes queued
    /// dependents wait again. Returns how many jobs changed.
    pub fn record_issue_state(&self, dep: &IssueRef, open: bool, now: OffsetDateTime) -> Result<usize, JobError> {
        let t = self.job_trees();
        let dep_key = issue_key(&dep.repo, dep.issue);
        t.issues.insert(&dep_key, if open { &b"open"[..] } else { &b"closed"[..] })?;
        let mut changed = 0;
        for k in t.deps.scan_prefix(&dep_key).keys() {
            let k = k?;
            let job_key = k[dep_key.len()..].to_vec();
            let did = t.run(|tx| {
                let Some(mut job) = tx.job(&job_key)? else { return Ok(false) };
                if !matches!(job.state, JobState::Queued | JobState::Failed) {
                    return Ok(false);
                }
                let was_waiting = job.waiting_on.contains(dep);
                if open == was_waiting {
                    return Ok(false);
                }
                tx.unplace(&job_key, &mut job)?;
                if open {
                    job.waiting_on.push(dep.clone());
                } else {
                    job.waiting_on.retain(|d| d != dep);
                }
                tx.place(&job_key, &mut job, now)?;
                let (action, cause) = if open {
                    ("waiting", format!("dependency {dep} reopened"))
                } else {
                    ("dependency", format!("dependency {dep} closed"))
                };
                job.updated_at = now;
                tx.put_job(&job_key, &job)?;
                tx.record(&job_key, entry(now, "foreman", action, Some(job.state), job.state, &cause))?;
                Ok(true)
            })?;
            changed += usize::from(did);
        }
        Ok(changed)
    }

    /// Changes the "blocked by" links of `issue`'s job ([`LinkChange`]) and re-places it: it waits while a
    /// dependency (declared or linked) is not known to be closed. Only a queued job, or one waiting to
    /// retry, takes the change (the next run of any other reads the links again when it is queued). When
    /// the new wait closes a cycle of waiting jobs, every job on it becomes stuck ([`find_cycle`]).
    /// Returns the job when its links changed, `None` when there is no such job or nothing changed.
    pub fn update_blocked_by(
        &self,
        issue: &IssueRef,
        change: &LinkChange,
        now: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        let t = self.job_trees();
        let key = issue_key(&issue.repo, issue.issue);
        // Issue states are learned outside job transactions: read them before this one, since a plain read
        // inside a sled transaction waits for the lock the transaction holds (sled 0.34's concurrency
        // control) and never returns. A dependency the job gained meanwhile counts as open.
        let Some(mut prospective) = self.job(&issue.repo, issue.issue)? else { return Ok(None) };
        change.apply(&mut prospective.blocked_by);
        let mut closed = std::collections::HashSet::new();
        for dep in prospective.dependencies() {
            let k = issue_key(&dep.repo, dep.issue);
            if t.issues.get(&k)?.as_deref() == Some(b"closed") {
                closed.insert(k);
            }
        }
        let job = t.run(|tx| {
            let Some(mut job) = tx.job(&key)? else { return Ok(None) };
            if !matches!(job.state, JobState::Queued | JobState::Failed) {
                return Ok(None);
            }
            let before = job.dependencies();
            if !change.apply(&mut job.blocked_by) {
                return Ok(None);
            }
            let after = job.dependencies();
            let waiting_on: Vec<IssueRef> =
                after.iter().filter(|dep| !closed.contains(&issue_key(&dep.repo, dep.issue))).cloned().collect();
            tx.unplace(&key, &mut job)?;
            set_deps(tx, &key, &before, &after)?;
            job.waiting_on = waiting_on;
            job.updated_at = now;
            tx.place(&key, &mut job, now)?;
            tx.put_job(&key, &job)?;
            let links: Vec<String> = job.blocked_by.iter().map(ToString::to_string).collect();
            let cause =
                format!("blocked by on GitHub: {}", if links.is_empty() { "none".into() } else { links.join(", ") });
            tx.record(&key, entry(now, "foreman", "linked", Some(job.state), job.state, &cause))?;
            Ok(Some(job))
        })?;
        if let Some(job) = &job
            && job.placement == Placement::Waiting
            && let Some(cycle) = self.find_cycle(&job.issue_ref())?
        {
            self.set_cycle_stuck(&cycle, now)?;
            return self.job(&issue.repo, issue.issue);
        }
        Ok(job)
    }

    /// The jobs that depend on `issue` (declared or linked), from the reverse dependency index.
    pub fn dependents(&self, issue: &IssueRef) -> Result<Vec<Job>, JobError> {
        let t = self.job_trees();
        let dep_key = issue_key(&issue.repo, issue.issue);
        let mut out = Vec::new();
        for k in t.deps.scan_prefix(&dep_key).keys() {
            let k = k?;
            if let Some(job) =
                decode_issue_key(&k[dep_key.len()..]).and_then(|r| self.job(&r.repo, r.issue).transpose())
            {
                out.push(job?);
            }
        }
        Ok(out)
    }

    /// Dependencies of waiting jobs whose state Foreman does not know (no event or lookup recorded yet),
    /// at most `limit`: the caller looks them up on GitHub and reports them with
    /// [`Store::record_issue_state`].
    pub fn unknown_dependencies(&self, limit: usize) -> Result<Vec<IssueRef>, JobError> {
        let t = self.job_trees();
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for k in t.deps.iter().keys() {
            let k = k?;
            // A dependency key is an issue key: repo, zero byte, 8 bytes of number.
            let Some(zero) = k.iter().position(|b| *b == 0) else { continue };
            let dep = &k[..zero + 9];
            if last.as_deref() == Some(dep) || t.issues.contains_key(dep)? {
                continue;
            }
            last = Some(dep.to_vec());
            if let Some(r) = decode_issue_key(dep) {
                out.push(r);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every live job: queued (runnable, delayed or waiting on dependencies), running, or failed and in
    /// backoff, in key order (repository, then issue number). Read-only.
    ///
    /// Reads every job record (about 1 µs each, decoding the state alone for finished jobs), so this costs
    /// O(jobs); it serves the periodic reconciliation pass, not the scheduler.
    pub fn live_jobs(&self) -> Result<Vec<Job>, JobError> {
        let claims = self.claims_by_key()?;
        let mut out = Vec::new();
        for item in self.job_trees().jobs.iter() {
            let (key, raw) = item?;
            let s: StateOnly = decode(&raw, "job")?;
            if matches!(s.state, JobState::Queued | JobState::Running | JobState::Failed) {
                let mut job: Job = decode(&raw, "job")?;
                if may_be_claimed(&job)
                    && let Some(claim) = claims.get(&key)
                {
                    apply_claim(&mut job, claim);
                }
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Looks for a cycle of waiting jobs through `start` ([`find_cycle`]).
    fn find_cycle(&self, start: &IssueRef) -> Result<Option<Vec<IssueRef>>, JobError> {
        find_cycle(start, |node| {
            Ok(self.job(&node.repo, node.issue)?.filter(|j| j.placement == Placement::Waiting).map(|j| j.waiting_on))
        })
    }

    fn set_cycle_stuck(&self, cycle: &[IssueRef], now: OffsetDateTime) -> Result<(), JobError> {
        let reason = cycle_reason(cycle);
        for r in &cycle[..cycle.len() - 1] {
            let key = issue_key(&r.repo, r.issue);
            self.job_trees().run(|tx| {
                let Some(mut job) = tx.job(&key)? else { return Ok(()) };
                if job.placement != Placement::Waiting {
                    return Ok(());
                }
                let from = job.state;
                tx.unplace(&key, &mut job)?;
                job.state = JobState::Stuck;
                job.stuck_reason = Some(reason.clone());
                job.updated_at = now;
                tx.put_job(&key, &job)?;
                tx.record(&key, entry(now, "foreman", "stuck", Some(from), JobState::Stuck, &reason))
            })?;
        }
        Ok(())
    }
}

/// What of an issue changed since `job` recorded it, for the audit trail: its title, and the labels added
/// (`+name`) and removed (`-name`), e.g. `labels +foreman:failed, -foreman:working`.
fn what_changed(job: &Job, title: &str, labels: &[String]) -> String {
    let mut parts = Vec::new();
    if job.title != title {
        parts.push(format!("title {:?} → {title:?}", job.title));
    }
    let added = labels.iter().filter(|l| !job.labels.contains(l)).map(|l| format!("+{l}"));
    let removed = job.labels.iter().filter(|l| !labels.contains(l)).map(|l| format!("-{l}"));
    let labels: Vec<String> = added.chain(removed).collect();
    if !labels.is_empty() {
        parts.push(format!("labels {}", labels.join(", ")));
    }
    if parts.is_empty() { "labels reordered".to_owned() } else { parts.join("; ") }
}

fn issue_ref_of(job: &Job) -> IssueRef {
    job.issue_ref()
}

/// Replaces a job's entries in the reverse dependency index.
fn set_deps(tx: &Tx<'_>, key: &[u8], old: &[IssueRef], new: &[IssueRef]) -> Result<(), Abort> {
    for d in old {
        let mut k = issue_key(&d.repo, d.issue);
        k.extend_from_slice(key);
        tx.deps.remove(k)?;
    }
    for d in new {
        let mut k = issue_key(&d.repo, d.issue);
        k.extend_from_slice(key);
        tx.deps.insert(k, &[])?;
    }
    Ok(())
}

/// Schema 1 → 2: every `job_ready` entry that holds a job key gets the job's record instead. An entry
/// whose job is gone is dropped (it could only have pointed at nothing). Idempotent.
pub(super) fn migrate_ready_copies(db: &sled::Db) -> Result<(), StoreError> {
    let ready = db.open_tree("job_ready")?;
    let jobs = db.open_tree("jobs")?;
    for item in ready.iter() {
        let (k, v) = item?;
        if v.first() == Some(&b'{') {
            continue;
        }
        match jobs.get(&v)? {
            Some(raw) => ready.insert(k, raw)?,
            None => ready.remove(k)?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobKind;
    use crate::store::StoreOptions;

    fn new_job(issue: u64) -> NewJob {
        NewJob {
            blocked_by: vec![],
            repo: "Octo/Repo".parse().unwrap(),
            issue: IssueNumber(issue),
            installation: None,
            kind: JobKind::Code,
            title: format!("issue {issue}"),
            body: String::new(),
            labels: vec![],
            trigger: None,
            requester: None,
            instructions: None,
            delivery: None,
            cause: "test".into(),
        }
    }

    #[test]
    fn schema_1_run_order_entries_become_copies_of_the_job_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { cache_bytes: 1 << 20 };
        let now = OffsetDateTime::now_utc();
        {
            let store = Store::open(dir.path(), &options).unwrap();
            for n in 1..=3 {
                store.enqueue_job(&new_job(n), 2, "octocat", now).unwrap();
            }
            // Write the run-order index as schema 1 did: order key → job key; one entry points at nothing.
            let t = store.job_trees();
            for item in t.ready.iter() {
                let (k, raw) = item.unwrap();
                let job: Job = decode(&raw, "job").unwrap();
                t.ready.insert(k, issue_key(&job.repo, job.issue)).unwrap();
            }
            t.ready.insert([0xff; 30], &b"gone/gone\0\0\0\0\0\0\0\0\x09"[..]).unwrap();
            store.db().open_tree("meta").unwrap().insert("schema_version", &1u64.to_be_bytes()).unwrap();
        }
        let store = Store::open(dir.path(), &options).unwrap();
        assert_eq!(store.check_job_invariants().unwrap(), Vec::<String>::new());
        assert_eq!(store.job_trees().ready.len(), 3);
        let version = store.db().open_tree("meta").unwrap().get("schema_version").unwrap().unwrap();
        assert_eq!(version.as_ref(), &crate::store::SCHEMA_VERSION.to_be_bytes());
    }

    #[test]
    fn a_change_that_keeps_the_order_says_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 1 << 20 }).unwrap();
        let now = OffsetDateTime::now_utc();
        let mut job = new_job(1);
        job.labels = vec!["foreman".into(), "foreman:working".into()];
        store.enqueue_job(&job, 2, "octocat", now).unwrap();
        let labels = ["foreman".to_owned(), "foreman:failed".to_owned()];
        store.reorder_job(&job.repo, job.issue, "issue 1 again", &labels, 2, now).unwrap().expect("changed");
        let d = store.job_detail(&job.repo, job.issue).unwrap().unwrap();
        assert_eq!(
            d.audit.last().unwrap().cause,
            r#"title "issue 1" → "issue 1 again"; labels +foreman:failed, -foreman:working; its place in the queue did not change"#
        );
    }
}
