//! Claims: who runs a job, until when. Atomic claiming, heartbeat renewal, expiry, release and crash recovery.
//!
//! Trees:
//! - `claims`: job key → [`Claim`] as JSON. One entry per job at most, so there is at most one live claim
//!   per issue by construction; every write to it is inside a transaction that also moves the job.
//!   The tree holds only running jobs (a handful, bounded by the concurrency limits), so the reaper and
//!   [`Store::next_due`] read all of it rather than keep an expiry index that every heartbeat would rewrite.
//! - `slots`: one key, `slots` → [`Slots`] as JSON: sessions running in total, per repository and per
//!   installation. Read and written inside the claiming transaction, so two schedulers racing for the last
//!   slot cannot both win: sled detects the conflict and reruns one of them, which then sees the slot taken.
//!
//! A claim is live while it is in `claims` and `now < expires_at`. A live claim's holder may renew it
//! ([`Store::heartbeat`]) or finish the job ([`Store::finish_job`]); once `expires_at` has passed, both
//! answer [`JobError::ClaimNotHeld`], and [`Store::expire_claims`] puts the job back in the queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::failures::{FailureClass, Outcome};
use super::jobs::{
    Abort, Job, JobError, JobState, Placement, Tx, abort, decode, encode, entry, from_nanos, issue_key,
    key_repo_prefix, nanos, time_key,
};
use super::sessions::{SessionId, SessionRecord, SessionState};
use super::{Store, StoreError};
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::scheduler::SchedulerConfig;
use crate::scheduler::deps::IssueRef;

/// Who holds a claim: one running Foreman process (a scheduler instance).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClaimOwner {
    /// A random id per scheduler instance (UUID v4), fresh at every start.
    pub instance: String,
    /// The operating-system process id, for people reading the status.
    pub pid: u32,
    /// The host name (from `HOSTNAME`), for people reading the status; empty when unknown.
    pub host: String,
}

impl ClaimOwner {
    /// A new owner for this process, with a fresh instance id.
    pub fn new() -> Self {
        Self {
            instance: uuid::Uuid::new_v4().to_string(),
            pid: std::process::id(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
        }
    }

    /// The actor name used in audit trails: `foreman:<first 8 characters of the instance>`.
    pub fn actor(&self) -> String {
        format!("foreman:{}", &self.instance[..self.instance.len().min(8)])
    }
}

impl Default for ClaimOwner {
    fn default() -> Self {
        Self::new()
    }
}

/// A claim on a job: its holder, its session and its time-to-live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Unique id of this claim (increasing); a stale holder's id no longer matches.
    pub id: u64,
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// The installation, for the per-installation limit.
    pub installation: Option<InstallationId>,
    /// The process that holds it.
    pub owner: ClaimOwner,
    /// The session that runs the job.
    pub session: SessionId,
    /// When it was claimed.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    /// When it was last renewed (or claimed).
    #[serde(with = "time::serde::rfc3339")]
    pub renewed_at: OffsetDateTime,
    /// When it expires unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Claim {
    /// The claim's issue as a reference.
    pub fn issue_ref(&self) -> IssueRef {
        IssueRef { repo: self.repo.clone(), issue: self.issue }
    }
}

/// A job just claimed, and its claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The job, now running.
    pub job: Job,
    /// The claim; pass it to heartbeat and finish.
    pub claim: Claim,
}

/// A claim that expired and what became of its job.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired {
    /// The claim that expired.
    pub claim: Claim,
    /// The job's state afterwards: `queued`, or `stuck` after too many infrastructure failures.
    pub state: JobState,
}

/// What [`Store::recover_claims`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recovery {
    /// Jobs whose claim belonged to a process that no longer runs: back in the queue, session interrupted.
    pub requeued: Vec<IssueRef>,
    /// Claims still held by live instances.
    pub kept: usize,
    /// Whether the slot counters disagreed with the claims and were corrected.
    pub slots_corrected: bool,
}

/// The key of the one [`Slots`] record in the `slots` tree.
const SLOTS_KEY: &[u8] = b"slots";

/// Sessions running, in total and per repository and installation: what the concurrency limits count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// Running in total.
    pub global: u32,
    /// Running per repository (lower-cased `owner/name`).
    pub repos: BTreeMap<String, u32>,
    /// Running per installation id.
    pub installations: BTreeMap<u64, u32>,
}

impl Slots {
    fn repo(&self, repo: &str) -> u32 {
        self.repos.get(repo).copied().unwrap_or(0)
    }

    fn installation(&self, id: InstallationId) -> u32 {
        self.installations.get(&id.0).copied().unwrap_or(0)
    }

    fn take(&mut self, repo: &str, installation: Option<InstallationId>) {
        self.global += 1;
        *self.repos.entry(repo.to_owned()).or_default() += 1;
        if let Some(i) = installation {
            *self.installations.entry(i.0).or_default() += 1;
        }
    }

    fn give(&mut self, repo: &str, installation: Option<InstallationId>) {
        self.global = self.global.saturating_sub(1);
        if let Some(n) = self.repos.get_mut(repo) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.repos.remove(repo);
            }
        }
        if let Some(i) = installation
            && let Some(n) = self.installations.get_mut(&i.0)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.installations.remove(&i.0);
            }
        }
    }
}

/// The repository of a job key as the slot counters name it: lower-cased `owner/name`.
fn slot_repo(job_key: &[u8]) -> String {
    let prefix = key_repo_prefix(job_key);
    String::from_utf8_lossy(&prefix[..prefix.len().saturating_sub(1)]).into_owned()
}

fn read_slots(tx: &Tx<'_>) -> Result<Slots, Abort> {
    match tx.slots.get(SLOTS_KEY)? {
        Some(raw) => decode(&raw, "slots").map_err(abort),
        None => Ok(Slots::default()),
    }
}

fn write_slots(tx: &Tx<'_>, slots: &Slots) -> Result<(), Abort> {
    tx.slots.insert(SLOTS_KEY, encode(slots))?;
    Ok(())
}

/// Why one candidate could not be claimed.
enum Skip {
    /// Someone else moved it first.
    Gone,
    /// Its repository is at its limit.
    Repo,
    /// Its installation is at its limit.
    Installation(InstallationId),
    /// The global limit is reached: stop looking.
    Full,
}

impl Store {
    /// Claims the first runnable job in run order that fits the concurrency limits, for `owner`, until
    /// `now + claim_ttl`. Returns `None` when no job is runnable or every slot is taken.
    ///
    /// Before picking it reaps expired claims and moves jobs whose backoff ended into the run-order index,
    /// so everything is judged at `now`. Picking reads the index from its first key and skips only jobs
    /// whose repository or installation is at its limit (cost grows with the number skipped, not with the
    /// queue). The claim itself is one transaction: index entry out, claim in, slot counters up, session
    /// record and audit entry written. The job's own record is not rewritten: the claim makes it running
    /// ([`super::jobs`] explains why and how every read applies it).
    ///
    /// Not flushed: if Foreman crashes before the next group flush, the claim is lost with the process that
    /// held it, and the job is simply queued again.
    pub fn claim_next(
        &self,
        owner: &ClaimOwner,
        config: &SchedulerConfig,
        now: OffsetDateTime,
    ) -> Result<Option<Claimed>, JobError> {
        self.claim_next_admitting(owner, config, now, &|_| true)
    }

    /// [`Store::claim_next`], skipping the jobs of installations `admit` refuses (asked at most once per
    /// installation per call), as it skips those at their concurrency limit: the runner refuses
    /// installations low on GitHub quota. A job without an installation is always admitted.
    pub fn claim_next_admitting(
        &self,
        owner: &ClaimOwner,
        config: &SchedulerConfig,
        now: OffsetDateTime,
        admit: &dyn Fn(InstallationId) -> bool,
    ) -> Result<Option<Claimed>, JobError> {
        self.expire_claims(config, now)?;
        self.promote_due(now)?;
        let t = self.job_trees();
        if self.slots()?.global >= config.max_sessions {
            return Ok(None);
        }
        let mut full_repos: Vec<Vec<u8>> = Vec::new();
        let mut full_installations: Vec<InstallationId> = Vec::new();
        for item in t.ready.iter() {
            // The run-order entry holds a copy of the job's record (see `jobs`): everything the claim reads
            // comes from the front of this tree, which stays in the cache, and the claim does not touch the
            // job's own record, which with 100,000 jobs is usually a cold page. The claim is the authority
            // for the running state until the job is next written (`jobs::apply_claim`).
            let (order_key, raw) = item?;
            let queued: Job = decode(&raw, "job")?;
            let job_key = issue_key(&queued.repo, queued.issue);
            if full_repos.iter().any(|r| r[..] == *key_repo_prefix(&job_key)) {
                continue;
            }
            if let Some(i) = queued.installation {
                if full_installations.contains(&i) {
                    continue;
                }
                if !admit(i) {
                    full_installations.push(i);
                    continue;
                }
            }
            let session = SessionId::new();
            let result = t.run(|tx| {
                let mut job = match tx.ready.get(&order_key)? {
                    None => return Ok(Err(Skip::Gone)),
                    Some(now_raw) if now_raw == raw => queued.clone(),
                    Some(now_raw) => decode(&now_raw, "job").map_err(abort)?,
                };
                if job.placement != Placement::Ready || job.state != JobState::Queued {
                    return Ok(Err(Skip::Gone));
                }
                let mut slots = read_slots(tx)?;
                if slots.global >= config.max_sessions {
                    return Ok(Err(Skip::Full));
                }
                let repo = slot_repo(&job_key);
                let repo_limit = config.repo_limits.get(&repo).unwrap_or(config.max_sessions_per_repo);
                if slots.repo(&repo) >= repo_limit {
                    return Ok(Err(Skip::Repo));
                }
                if let (Some(limit), Some(i)) = (config.max_sessions_per_installation, job.installation)
                    && slots.installation(i) >= limit
                {
                    return Ok(Err(Skip::Installation(i)));
                }
                tx.ready.remove(&order_key)?;
                slots.take(&repo, job.installation);
                write_slots(tx, &slots)?;
                let expires_at = now + config.claim_ttl();
                let claim = Claim {
                    id: tx.claims.generate_id()?,
                    repo: job.repo.clone(),
                    issue: job.issue,
                    installation: job.installation,
                    owner: owner.clone(),
                    session: session.clone(),
                    claimed_at: now,
                    renewed_at: now,
                    expires_at,
                };
                tx.claims.insert(&job_key[..], encode(&claim))?;
                let record = SessionRecord {
                    id: session.clone(),
                    repo: job.repo.clone(),
                    issue: job.issue,
                    claim: claim.id,
                    owner: owner.clone(),
                    attempt: job.attempts + 1,
                    started_at: now,
                    ended_at: None,
                    state: SessionState::Running,
                    detail: None,
                    cost_usd: None,
                };
                tx.sessions.insert(session.as_str().as_bytes(), encode(&record))?;
                // The job's record is left as it is: the claim makes it running (see above).
                super::jobs::apply_claim(&mut job, &claim);
                let cause = format!("attempt {} in session {}", job.attempts, session);
                tx.record(
                    &job_key,
                    entry(now, &owner.actor(), "claimed", Some(JobState::Queued), JobState::Running, &cause),
                )?;
                Ok(Ok(Claimed { job, claim }))
            })?;
            match result {
                Ok(claimed) => return Ok(Some(claimed)),
                Err(Skip::Gone) => {}
                Err(Skip::Repo) => full_repos.push(key_repo_prefix(&job_key).to_vec()),
                Err(Skip::Installation(i)) => full_installations.push(i),
                Err(Skip::Full) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Renews a live claim until `now + claim_ttl` and returns the new expiry.
    ///
    /// Errors: [`JobError::ClaimNotHeld`] when the claim expired, was cancelled, or is not this one; the
    /// session must then stop, since the job may be claimed by someone else.
    pub fn heartbeat(
        &self,
        claim: &Claim,
        config: &SchedulerConfig,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, JobError> {
        let key = issue_key(&claim.repo, claim.issue);
        self.job_trees().run(|tx| {
            let mut live = live_claim(tx, &key, claim, now)?;
            live.renewed_at = now;
            live.expires_at = now + config.claim_ttl();
            tx.claims.insert(&key[..], encode(&live))?;
            Ok(live.expires_at)
        })
    }

    /// Ends a live claim with the session's outcome and moves the job on: succeeded; failed with a
    /// backoff (or until a rate-limit reset); stuck after too many failures; or, for
    /// [`Outcome::Released`], straight back to the queue without counting anything.
    ///
    /// `jitter` in `[0, 1]` spreads the backoff ([`crate::scheduler::backoff::backoff_delay`]).
    ///
    /// Errors: [`JobError::ClaimNotHeld`] when the claim is no longer live (the outcome is not recorded:
    /// the job was already moved on by expiry, cancellation or recovery).
    pub fn finish_job(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        config: &SchedulerConfig,
        now: OffsetDateTime,
        jitter: f64,
    ) -> Result<Job, JobError> {
        let key = issue_key(&claim.repo, claim.issue);
        self.job_trees().run(|tx| {
            let live = live_claim(tx, &key, claim, now)?;
            let mut job = tx.job(&key)?.ok_or_else(|| abort(JobError::NotFound(claim.issue_ref())))?;
            let session_state = match outcome {
                Outcome::Succeeded { .. } => SessionState::Succeeded,
                Outcome::Failed { .. } => SessionState::Failed,
                Outcome::Released { .. } => SessionState::Interrupted,
            };
            self.release_claim_tx(tx, &key, &job, session_state, now)?;
            let actor = live.owner.actor();
            match outcome {
                Outcome::Succeeded { summary } => {
                    job.state = JobState::Succeeded;
                    job.updated_at = now;
                    tx.put_job(&key, &job)?;
                    tx.record(
                        &key,
                        entry(now, &actor, "succeeded", Some(JobState::Running), JobState::Succeeded, summary),
                    )?;
                }
                Outcome::Released { cause } => {
                    job.state = JobState::Queued;
                    job.updated_at = now;
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(&key, entry(now, &actor, "released", Some(JobState::Running), JobState::Queued, cause))?;
                }
                Outcome::Failed { class, reason, retry_at } => {
                    super::failures::fail_tx(
                        tx,
                        &key,
                        &mut job,
                        *class,
                        reason,
                        *retry_at,
                        Some(&live.session),
                        &actor,
                        config,
                        now,
                        jitter,
                    )?;
                }
            }
            Ok(job)
        })
    }

    /// Removes a running job's claim inside `tx`: claim out, slot counters down, session
    /// ended with `state`. Returns the claim, or `None` when the job had none.
    pub(super) fn release_claim_tx(
        &self,
        tx: &Tx<'_>,
        key: &[u8],
        job: &Job,
        state: SessionState,
        now: OffsetDateTime,
    ) -> Result<Option<Claim>, Abort> {
        let Some(raw) = tx.claims.remove(key)? else { return Ok(None) };
        let claim: Claim = decode(&raw, "claim").map_err(abort)?;
        let mut slots = read_slots(tx)?;
        slots.give(&slot_repo(key), claim.installation.or(job.installation));
        write_slots(tx, &slots)?;
        if let Some(raw) = tx.sessions.get(claim.session.as_str().as_bytes())? {
            let mut record: SessionRecord = decode(&raw, "session").map_err(abort)?;
            record.state = state;
            record.ended_at = Some(now);
            tx.sessions.insert(claim.session.as_str().as_bytes(), encode(&record))?;
        }
        Ok(Some(claim))
    }

    /// Expires every claim whose time-to-live ended at or before `now`: the job is queued again (runnable
    /// at once) and the expiry is recorded as an infrastructure failure, or the job becomes stuck after
    /// `max_infrastructure_failures`. The session is marked expired.
    pub fn expire_claims(&self, config: &SchedulerConfig, now: OffsetDateTime) -> Result<Vec<Expired>, JobError> {
        let t = self.job_trees();
        let mut out = Vec::new();
        let mut due = Vec::new();
        for item in t.claims.iter() {
            let (key, raw) = item?;
            let claim: Claim = decode(&raw, "claim")?;
            if claim.expires_at <= now {
                due.push(key);
            }
        }
        for key in due {
            let expired = t.run(|tx| {
                let Some(raw) = tx.claims.get(&key)? else { return Ok(None) };
                let claim: Claim = decode(&raw, "claim").map_err(abort)?;
                if claim.expires_at > now {
                    return Ok(None);
                }
                let Some(mut job) = tx.job(&key)? else { return Ok(None) };
                self.release_claim_tx(tx, &key, &job, SessionState::Expired, now)?;
                let reason = format!(
                    "claim {} held by {} expired at {} without a heartbeat",
                    claim.id,
                    claim.owner.actor(),
                    claim.expires_at
                );
                super::failures::fail_tx(
                    tx,
                    &key,
                    &mut job,
                    FailureClass::Infrastructure,
                    &reason,
                    Some(now),
                    Some(&claim.session),
                    "foreman",
                    config,
                    now,
                    0.0,
                )?;
                Ok(Some(Expired { claim, state: job.state }))
            })?;
            out.extend(expired);
        }
        Ok(out)
    }

    /// Moves jobs whose not-before time is at or before `now` from the delayed index into the run-order
    /// index (a failed job becomes queued). Returns how many moved.
    pub fn promote_due(&self, now: OffsetDateTime) -> Result<usize, JobError> {
        let t = self.job_trees();
        let end = (nanos(now) as u128 + 1).min(u64::MAX as u128) as u64;
        let due: Vec<_> = t.delayed.range(..end.to_be_bytes()).keys().collect::<Result<_, _>>()?;
        let mut moved = 0;
        for k in due {
            let key = k[8..].to_vec();
            let did = t.run(|tx| {
                let Some(mut job) = tx.job(&key)? else {
                    tx.delayed.remove(&k)?;
                    return Ok(false);
                };
                if !matches!(job.placement, Placement::Delayed { .. }) {
                    tx.delayed.remove(&k)?;
                    return Ok(false);
                }
                tx.unplace(&key, &mut job)?;
                tx.place(&key, &mut job, now)?;
                job.updated_at = now;
                tx.put_job(&key, &job)?;
                Ok(true)
            })?;
            moved += usize::from(did);
        }
        Ok(moved)
    }

    /// The earliest time something becomes due: a delayed job's not-before time or a claim's expiry.
    /// A scheduler loop sleeps until then (or until woken).
    pub fn next_due(&self) -> Result<Option<OffsetDateTime>, JobError> {
        let t = self.job_trees();
        let delayed = t
            .delayed
            .first()?
            .and_then(|(k, _)| k.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))));
        let mut due = delayed.map(from_nanos);
        for claim in self.claims()? {
            due = Some(due.map_or(claim.expires_at, |d| d.min(claim.expires_at)));
        }
        Ok(due)
    }

    /// Crash recovery, run once at start: every claim whose owner instance is not in `live` belongs to a
    /// process that no longer runs (sled lets one process open the database, so after a restart no other
    /// process can hold one). Its job goes back to the queue, runnable at once and with nothing counted
    /// (an interruption is not the job's fault); its session is marked interrupted. Then the slot counters
    /// are recomputed from the claims that remain.
    pub fn recover_claims(&self, live: &[&str], now: OffsetDateTime) -> Result<Recovery, JobError> {
        let t = self.job_trees();
        let mut report = Recovery::default();
        let claims: Vec<_> = t.claims.iter().collect::<Result<_, _>>()?;
        for (key, raw) in claims {
            let claim: Claim = decode(&raw, "claim")?;
            if live.contains(&claim.owner.instance.as_str()) {
                report.kept += 1;
                continue;
            }
            let done = t.run(|tx| {
                let Some(current) = tx.claims.get(&key)? else { return Ok(false) };
                if current != raw {
                    return Ok(false);
                }
                let Some(mut job) = tx.job(&key)? else {
                    tx.claims.remove(&key)?;
                    return Ok(false);
                };
                self.release_claim_tx(tx, &key, &job, SessionState::Interrupted, now)?;
                let from = job.state;
                job.state = JobState::Queued;
                job.updated_at = now;
                tx.place(&key, &mut job, now)?;
                tx.put_job(&key, &job)?;
                let cause = format!(
                    "session {} interrupted: process {} on '{}' (instance {}) no longer runs",
                    claim.session, claim.owner.pid, claim.owner.host, claim.owner.instance
                );
                tx.record(&key, entry(now, "foreman", "interrupted", Some(from), JobState::Queued, &cause))?;
                Ok(true)
            })?;
            if done {
                report.requeued.push(claim.issue_ref());
            }
        }
        report.slots_corrected = self.reconcile_slots()?;
        Ok(report)
    }

    /// Recomputes the slot counters from the claims tree; returns whether they were wrong.
    fn reconcile_slots(&self) -> Result<bool, JobError> {
        let want = self.slots_from_claims()?;
        let t = self.job_trees();
        if self.slots()? == want {
            return Ok(false);
        }
        t.slots.insert(SLOTS_KEY, encode(&want))?;
        Ok(true)
    }

    fn slots_from_claims(&self) -> Result<Slots, JobError> {
        let mut want = Slots::default();
        for item in self.job_trees().claims.iter() {
            let (key, raw) = item?;
            let claim: Claim = decode(&raw, "claim")?;
            want.take(&slot_repo(&key), claim.installation);
        }
        Ok(want)
    }

    /// The slot counters: sessions running in total, per repository and per installation.
    pub fn slots(&self) -> Result<Slots, JobError> {
        match self.job_trees().slots.get(SLOTS_KEY)? {
            Some(raw) => decode(&raw, "slots"),
            None => Ok(Slots::default()),
        }
    }

    /// Every live claim, in job-key order.
    pub fn claims(&self) -> Result<Vec<Claim>, JobError> {
        self.job_trees().claims.iter().values().map(|raw| decode(&raw?, "claim")).collect()
    }

    /// Checks that the job trees agree with each other; returns a description of every disagreement
    /// (empty when consistent). Reads everything: for tests and for `foreman` maintenance, not the hot path.
    pub fn check_job_invariants(&self) -> Result<Vec<String>, StoreError> {
        let t = self.job_trees();
        let mut problems = Vec::new();
        let mut ready_seen = 0usize;
        let mut delayed_seen = 0usize;
        let mut running = 0u32;
        let claims = match self.claims_by_key() {
            Ok(c) => c,
            Err(JobError::Store(e)) => return Err(e),
            Err(e) => {
                problems.push(e.to_string());
                Default::default()
            }
        };
        for item in t.jobs.iter() {
            let (key, raw) = item?;
            let mut job: Job = match decode(&raw, "job") {
                Ok(j) => j,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let name = job.issue_ref().to_string();
            let claim = claims.get(&key);
            let has_claim = claim.is_some();
            if let Some(claim) = claim {
                // A record left as it was at the claim: placed ready, but out of the run-order index.
                if super::jobs::may_be_claimed(&job) && t.ready.contains_key(job.order_key().encode())? {
                    problems.push(format!("{name}: claimed but still in the run-order index"));
                }
                super::jobs::apply_claim(&mut job, claim);
            }
            if (job.state == JobState::Running) != has_claim {
                problems.push(format!("{name}: state {} but claim present = {has_claim}", job.state.as_str()));
            }
            running += u32::from(has_claim);
            match job.placement {
                Placement::Ready => {
                    ready_seen += 1;
                    if t.ready.get(job.order_key().encode())?.as_deref() != Some(&raw[..]) {
                        problems.push(format!("{name}: placed ready but not in the run-order index as stored"));
                    }
                }
                Placement::Delayed { until } => {
                    delayed_seen += 1;
                    if !t.delayed.contains_key(time_key(until, &key))? {
                        problems.push(format!("{name}: placed delayed but not in the delayed index"));
                    }
                }
                Placement::Waiting if job.waiting_on.is_empty() => {
                    problems.push(format!("{name}: waiting on nothing"));
                }
                _ => {}
            }
            let queued_like = matches!(job.state, JobState::Queued | JobState::Failed);
            if queued_like == (job.placement == Placement::None) {
                problems.push(format!("{name}: state {} with placement {:?}", job.state.as_str(), job.placement));
            }
        }
        if t.ready.len() != ready_seen {
            problems.push(format!("run-order index has {} entries for {ready_seen} ready jobs", t.ready.len()));
        }
        if t.delayed.len() != delayed_seen {
            problems.push(format!("delayed index has {} entries for {delayed_seen} delayed jobs", t.delayed.len()));
        }
        match (self.slots(), self.slots_from_claims()) {
            (Ok(have), Ok(want)) if have != want => {
                problems.push(format!("slot counters {have:?} disagree with the claims {want:?}"));
            }
            (Err(e), _) | (_, Err(e)) => problems.push(e.to_string()),
            _ => {}
        }
        if running != self.slots().map(|s| s.global).unwrap_or(u32::MAX) {
            problems.push(format!("{running} claims but the global slot counter disagrees"));
        }
        Ok(problems)
    }
}

/// The live claim on `key`, if it is `claim`; aborts with [`JobError::ClaimNotHeld`] otherwise.
fn live_claim(tx: &Tx<'_>, key: &[u8], claim: &Claim, now: OffsetDateTime) -> Result<Claim, Abort> {
    let not_held = |reason| abort(JobError::ClaimNotHeld { issue: claim.issue_ref(), reason });
    let Some(raw) = tx.claims.get(key)? else { return Err(not_held("it was released, expired or cancelled")) };
    let live: Claim = decode(&raw, "claim").map_err(abort)?;
    if live.id != claim.id {
        return Err(not_held("the job was claimed again"));
    }
    if live.expires_at <= now {
        return Err(not_held("its time-to-live ran out"));
    }
    Ok(live)
}
