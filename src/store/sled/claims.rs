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

use time::OffsetDateTime;

use super::Store;
use super::jobs::{Abort, JobError, Tx, abort, decode, encode, entry, from_nanos, issue_key, key_repo_prefix, nanos};
use super::trees::job_index_key;
use crate::ids::InstallationId;
pub use crate::job::claims::{Claim, ClaimOwner, Claimed, Expired, Recovery, Slots};
use crate::job::claims::{SlotLimit, apply_claim};
use crate::job::failures::{FailureClass, NewFailure, Outcome};
use crate::job::key::key_repo;
use crate::job::{Job, JobState, Limits, Placement, SessionId, SessionRecord, SessionState};

/// The key of the one [`Slots`] record in the `slots` tree.
const SLOTS_KEY: &[u8] = b"slots";

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
    /// A concurrency limit is reached.
    Limit(SlotLimit),
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
    /// (the `jobs` module explains why and how every read applies it).
    ///
    /// Not flushed: if Foreman crashes before the next group flush, the claim is lost with the process that
    /// held it, and the job is simply queued again.
    pub fn claim_next(
        &self,
        owner: &ClaimOwner,
        limits: &dyn Limits,
        now: OffsetDateTime,
    ) -> Result<Option<Claimed>, JobError> {
        self.claim_next_admitting(owner, limits, now, &|_| true)
    }

    /// [`Store::claim_next`], skipping the jobs of installations `admit` refuses (asked at most once per
    /// installation per call), as it skips those at their concurrency limit: the runner refuses
    /// installations low on GitHub quota. A job without an installation is always admitted.
    pub fn claim_next_admitting(
        &self,
        owner: &ClaimOwner,
        limits: &dyn Limits,
        now: OffsetDateTime,
        admit: &dyn Fn(InstallationId) -> bool,
    ) -> Result<Option<Claimed>, JobError> {
        self.expire_claims(limits, now)?;
        self.promote_due(now)?;
        let t = self.job_trees();
        if self.slots()?.global >= limits.max_sessions() {
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
                let repo = key_repo(&job_key);
                if let Err(limit) = slots.admits(limits, &repo, job.installation) {
                    return Ok(Err(Skip::Limit(limit)));
                }
                tx.ready.remove(&order_key)?;
                slots.take(&repo, job.installation);
                write_slots(tx, &slots)?;
                let expires_at = now + limits.claim_ttl();
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
                    run: None,
                };
                tx.sessions.insert(session.as_str().as_bytes(), encode(&record))?;
                tx.job_sessions.insert(job_index_key(&job_key, session.as_str().as_bytes()), &[])?;
                // The job's record is left as it is: the claim makes it running (see above).
                apply_claim(&mut job, &claim);
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
                Err(Skip::Limit(SlotLimit::Repo)) => full_repos.push(key_repo_prefix(&job_key).to_vec()),
                Err(Skip::Limit(SlotLimit::Installation(i))) => full_installations.push(i),
                Err(Skip::Limit(SlotLimit::Global)) => return Ok(None),
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
        limits: &dyn Limits,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, JobError> {
        let key = issue_key(&claim.repo, claim.issue);
        self.job_trees().run(|tx| {
            let mut live = live_claim(tx, &key, claim, now)?;
            live.renewed_at = now;
            live.expires_at = now + limits.claim_ttl();
            tx.claims.insert(&key[..], encode(&live))?;
            Ok(live.expires_at)
        })
    }

    /// Ends a live claim with the session's outcome and moves the job on: succeeded; failed with a
    /// backoff (or until a rate-limit reset); stuck after too many failures; or, for
    /// [`Outcome::Released`], straight back to the queue without counting anything.
    ///
    /// `jitter` in `[0, 1]` spreads the backoff ([`crate::job::backoff::backoff_delay`]).
    ///
    /// Errors: [`JobError::ClaimNotHeld`] when the claim is no longer live (the outcome is not recorded:
    /// the job was already moved on by expiry, cancellation or recovery).
    pub fn finish_job(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        limits: &dyn Limits,
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
                Outcome::Released { .. } | Outcome::Waiting(_) => SessionState::Interrupted,
            };
            self.release_claim_tx(tx, &key, &job, session_state, now)?;
            let actor = live.owner.actor();
            job.wait = None;
            match outcome {
                Outcome::Succeeded { summary, resolution } => {
                    job.state = JobState::Succeeded;
                    job.resolution = Some(*resolution);
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
                Outcome::Waiting(wait) => {
                    let audit = crate::job::wait::record_wait(&mut job, wait, &actor, now);
                    tx.place(&key, &mut job, now)?;
                    tx.put_job(&key, &job)?;
                    tx.record(&key, audit)?;
                }
                Outcome::Failed { class, reason, retry_at } => {
                    let failure =
                        NewFailure { class: *class, reason, retry_at: *retry_at, session: Some(&live.session) };
                    fail_tx(tx, &key, &mut job, failure, &actor, limits, now, jitter)?;
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
        slots.give(&key_repo(key), claim.installation.or(job.installation));
        write_slots(tx, &slots)?;
        if let Some(raw) = tx.sessions.get(claim.session.as_str().as_bytes())? {
            let mut record: SessionRecord = decode(&raw, "session").map_err(abort)?;
            record.end(state, now);
            tx.sessions.insert(claim.session.as_str().as_bytes(), encode(&record))?;
        }
        Ok(Some(claim))
    }

    /// Expires every claim whose time-to-live ended at or before `now`: the job is queued again (runnable
    /// at once) and the expiry is recorded as an infrastructure failure, or the job becomes stuck after
    /// `max_infrastructure_failures`. The session is marked expired.
    pub fn expire_claims(&self, limits: &dyn Limits, now: OffsetDateTime) -> Result<Vec<Expired>, JobError> {
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
                let failure = NewFailure {
                    class: FailureClass::Infrastructure,
                    reason: &reason,
                    retry_at: Some(now),
                    session: Some(&claim.session),
                };
                fail_tx(tx, &key, &mut job, failure, "foreman", limits, now, 0.0)?;
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
                if let Some(run) = self.session(&claim.session)?.and_then(|s| s.run) {
                    report.orphaned_runs.push((claim.installation, run));
                }
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

    pub(super) fn slots_from_claims(&self) -> Result<Slots, JobError> {
        let mut want = Slots::default();
        for item in self.job_trees().claims.iter() {
            let (key, raw) = item?;
            let claim: Claim = decode(&raw, "claim")?;
            want.take(&key_repo(&key), claim.installation);
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
}

/// The live claim on `key`, if it is `claim` ([`Claim::held`]); aborts with [`JobError::ClaimNotHeld`]
/// otherwise.
fn live_claim(tx: &Tx<'_>, key: &[u8], claim: &Claim, now: OffsetDateTime) -> Result<Claim, Abort> {
    let live: Option<Claim> = match tx.claims.get(key)? {
        Some(raw) => Some(decode(&raw, "claim").map_err(abort)?),
        None => None,
    };
    match claim.held(live.as_ref(), now) {
        Ok(()) => Ok(live.expect("a held claim is live")),
        Err(reason) => Err(abort(JobError::ClaimNotHeld { issue: claim.issue_ref(), reason })),
    }
}

/// Records a failure of `job` inside `tx` by the ledger's rule ([`crate::job::failures::record_failure`]):
/// the failure into the ledger, the job placed (unless stuck) and written, and its audit entry.
#[allow(clippy::too_many_arguments)]
fn fail_tx(
    tx: &Tx<'_>,
    key: &[u8],
    job: &mut Job,
    failure: NewFailure<'_>,
    actor: &str,
    limits: &dyn Limits,
    now: OffsetDateTime,
    jitter: f64,
) -> Result<(), Abort> {
    let (failure, audit) = crate::job::failures::record_failure(job, failure, actor, limits, now, jitter);
    let id = tx.failures.generate_id()?.to_be_bytes();
    tx.failures.insert(&id, encode(&failure))?;
    tx.job_failures.insert(job_index_key(key, &id), &[])?;
    tx.place(key, job, now)?;
    tx.put_job(key, job)?;
    tx.record(key, audit)
}
