//! What the sled store shows people: one job in detail, the status of all jobs, and the consistency check
//! of its trees.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::jobs::{JobError, StateOnly, decode, issue_key, time_key};
use super::trees::job_index_key;
use super::{Store, StoreError};
use crate::ids::{IssueNumber, RepoName};
use crate::job::claims::{apply_claim, may_be_claimed};
use crate::job::{
    Claim, Failure, Job, JobDetail, JobState, JobsStatus, Placement, QueuedJob, RunningJob, SessionRecord, StuckJob,
};

impl Store {
    /// A job with its claim, position and full audit trail.
    pub fn job_detail(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<JobDetail>, JobError> {
        let t = self.job_trees();
        let Some(job) = self.job(repo, issue)? else { return Ok(None) };
        let key = issue_key(repo, issue);
        let claim = match t.claims.get(&key)? {
            Some(raw) => Some(decode(&raw, "claim")?),
            None => None,
        };
        let position = if job.placement == Placement::Ready {
            Some(t.ready.range(..job.order_key().encode()).count() as u64 + 1)
        } else {
            None
        };
        let mut audit = Vec::new();
        for k in t.audit_index.scan_prefix(&key).keys() {
            let k = k?;
            if let Some(raw) = t.audit.get(&k[key.len()..])? {
                audit.push(decode(&raw, "audit entry")?);
            }
        }
        Ok(Some(JobDetail { job, position, claim, audit }))
    }

    /// Visibility: counts by state and the jobs people ask about; each list holds at most `limit` entries.
    ///
    /// Counting reads every job record (about 1 µs each), so this costs O(jobs); it serves an admin
    /// endpoint, not the scheduler.
    pub fn jobs_status(&self, now: OffsetDateTime, limit: usize) -> Result<JobsStatus, JobError> {
        let t = self.job_trees();
        let mut counts: BTreeMap<String, u64> = JobState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        let mut stuck = Vec::new();
        let mut waiting = Vec::new();
        for raw in t.jobs.iter().values() {
            let raw = raw?;
            let s: StateOnly = decode(&raw, "job")?;
            *counts.entry(s.state.as_str().to_owned()).or_default() += 1;
            match s.state {
                JobState::Stuck if stuck.len() < limit => {
                    let job: Job = decode(&raw, "job")?;
                    stuck.push(StuckJob {
                        repo: job.repo,
                        issue: job.issue,
                        title: job.title,
                        reason: job.stuck_reason,
                        failures: job.failures,
                    });
                }
                JobState::Queued | JobState::Failed if waiting.len() < limit => {
                    let job: Job = decode(&raw, "job")?;
                    if job.placement != Placement::Ready {
                        waiting.push(QueuedJob::of(&job, None));
                    }
                }
                _ => {}
            }
        }
        // A claimed job's record may still read `queued` (see the module documentation): count it running.
        for (k, _) in t.claims.iter().flatten() {
            if let Some(raw) = t.jobs.get(&k)? {
                let s: StateOnly = decode(&raw, "job")?;
                if s.state != JobState::Running {
                    *counts.entry(s.state.as_str().to_owned()).or_default() -= 1;
                    *counts.entry(JobState::Running.as_str().to_owned()).or_default() += 1;
                }
            }
        }
        let mut queued = Vec::new();
        for (i, v) in t.ready.iter().values().enumerate().take(limit) {
            queued.push(QueuedJob::of(&decode(&v?, "job")?, Some(i as u64 + 1)));
        }
        let ready_total = counts.get("queued").copied().unwrap_or(0) + counts.get("failed").copied().unwrap_or(0);
        let queued_truncated = ready_total as usize > queued.len() + waiting.len();
        queued.extend(waiting);
        let mut running = Vec::new();
        for (k, raw) in t.claims.iter().flatten() {
            let claim: Claim = decode(&raw, "claim")?;
            if let Some(job) = t.jobs.get(&k)? {
                let mut job: Job = decode(&job, "job")?;
                apply_claim(&mut job, &claim);
                running.push(RunningJob { repo: job.repo, issue: job.issue, title: job.title, kind: job.kind, claim });
            }
        }
        let recent_failures = t
            .failures
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|raw| decode(&raw?, "failure"))
            .collect::<Result<_, _>>()?;
        Ok(JobsStatus { now, counts, queued, queued_truncated, running, stuck, recent_failures, hold: None })
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
                if may_be_claimed(&job) && t.ready.contains_key(job.order_key().encode())? {
                    problems.push(format!("{name}: claimed but still in the run-order index"));
                }
                apply_claim(&mut job, claim);
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
        self.check_job_indexes(&mut problems)?;
        if running != self.slots().map(|s| s.global).unwrap_or(u32::MAX) {
            problems.push(format!("{running} claims but the global slot counter disagrees"));
        }
        Ok(problems)
    }

    /// Every session and failure has its entry in its job's index (`job_sessions`, `job_failures`), and
    /// every entry there its record.
    fn check_job_indexes(&self, problems: &mut Vec<String>) -> Result<(), StoreError> {
        let t = self.job_trees();
        for item in t.sessions.iter() {
            let (id, raw) = item?;
            match decode::<SessionRecord>(&raw, "session") {
                Ok(r) if !t.job_sessions.contains_key(job_index_key(&issue_key(&r.repo, r.issue), &id))? => {
                    problems.push(format!("session {}: not in job_sessions under {}#{}", r.id, r.repo, r.issue));
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        for item in t.failures.iter() {
            let (id, raw) = item?;
            match decode::<Failure>(&raw, "failure") {
                Ok(f) if !t.job_failures.contains_key(job_index_key(&issue_key(&f.repo, f.issue), &id))? => {
                    problems.push(format!("a failure of {}#{} at {}: not in job_failures", f.repo, f.issue, f.at));
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        if t.job_sessions.len() != t.sessions.len() {
            problems.push(format!(
                "job_sessions has {} entries for {} sessions",
                t.job_sessions.len(),
                t.sessions.len()
            ));
        }
        if t.job_failures.len() != t.failures.len() {
            problems.push(format!(
                "job_failures has {} entries for {} failures",
                t.job_failures.len(),
                t.failures.len()
            ));
        }
        Ok(())
    }
}
