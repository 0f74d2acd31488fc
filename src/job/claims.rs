//! Claims: who runs a job, until when, and the slot counters the concurrency limits count. The rules here
//! are pure; the store keeps claims and counters and applies them in its transactions.
//!
//! A claim is live while the store holds it and `now < expires_at`. Claiming does not rewrite the job's
//! record: the claim is the authority for the running state, and every read of a job applies it
//! ([`apply_claim`]), so a claim touches only the front of the run-order index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::sessions::SessionId;
use super::{IssueRef, Job, JobState, Placement};
use crate::ids::{InstallationId, IssueNumber, RepoName};

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

    /// Why the holder of `self` no longer holds the claim, given the claim `live` the store holds now
    /// (`None`: none): `Ok(())` when it is the same claim and has not expired at `now`.
    pub fn held(&self, live: Option<&Claim>, now: OffsetDateTime) -> Result<(), &'static str> {
        let Some(live) = live else { return Err("it was released, expired or cancelled") };
        if live.id != self.id {
            return Err("the job was claimed again");
        }
        if live.expires_at <= now {
            return Err("its time-to-live ran out");
        }
        Ok(())
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

/// What crash recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recovery {
    /// Jobs whose claim belonged to a process that no longer runs: back in the queue, session interrupted.
    pub requeued: Vec<IssueRef>,
    /// Claims still held by live instances.
    pub kept: usize,
    /// Whether the slot counters disagreed with the claims and were corrected.
    pub slots_corrected: bool,
    /// The GitHub Actions runs the interrupted sessions were dispatched as (the Actions executor): nothing
    /// will take their work now, so they are to be cancelled, through the installation that dispatched them.
    pub orphaned_runs: Vec<(Option<InstallationId>, super::sessions::RemoteRun)>,
}

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
    /// Running in `repo` (lower-cased `owner/name`).
    pub fn repo(&self, repo: &str) -> u32 {
        self.repos.get(repo).copied().unwrap_or(0)
    }

    /// Running for installation `id`.
    pub fn installation(&self, id: InstallationId) -> u32 {
        self.installations.get(&id.0).copied().unwrap_or(0)
    }

    /// Counts one more session in `repo` (lower-cased) and `installation`.
    pub fn take(&mut self, repo: &str, installation: Option<InstallationId>) {
        self.global += 1;
        *self.repos.entry(repo.to_owned()).or_default() += 1;
        if let Some(i) = installation {
            *self.installations.entry(i.0).or_default() += 1;
        }
    }

    /// Counts one session fewer; counters never go below zero, and a zero entry is removed.
    pub fn give(&mut self, repo: &str, installation: Option<InstallationId>) {
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

    /// Whether one more session for a job of `repo` (lower-cased) and `installation` fits `limits`:
    /// `Err` names the limit that is reached.
    pub fn admits(
        &self,
        limits: &dyn super::Limits,
        repo: &str,
        installation: Option<InstallationId>,
    ) -> Result<(), SlotLimit> {
        if self.global >= limits.max_sessions() {
            return Err(SlotLimit::Global);
        }
        if self.repo(repo) >= limits.repo_limit(repo) {
            return Err(SlotLimit::Repo);
        }
        if let (Some(limit), Some(i)) = (limits.installation_limit(), installation)
            && self.installation(i) >= limit
        {
            return Err(SlotLimit::Installation(i));
        }
        Ok(())
    }
}

/// The concurrency limit a claim would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotLimit {
    /// Sessions across Foreman: no job can be claimed.
    Global,
    /// Sessions in the job's repository.
    Repo,
    /// Sessions for this installation.
    Installation(InstallationId),
}

/// Whether a job record, as stored, may belong to a claimed job whose record was not rewritten at the
/// claim: only such a record needs its claim looked up.
pub fn may_be_claimed(job: &Job) -> bool {
    job.state == JobState::Queued && job.placement == Placement::Ready
}

/// Applies the live claim on a job to the job as stored when the claim left the record as it was (state
/// `queued`, placed ready): the job is running, in no index, one attempt further, in the claim's session.
/// A record already written as running is left alone, so applying twice changes nothing.
pub fn apply_claim(job: &mut Job, claim: &Claim) {
    if job.state == JobState::Running {
        return;
    }
    job.state = JobState::Running;
    job.placement = Placement::None;
    job.not_before = None;
    job.attempts += 1;
    job.session = Some(claim.session.clone());
    job.updated_at = claim.claimed_at;
}
