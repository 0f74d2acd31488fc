//! What GitHub was told of each job: the report outbox's durable half.
//!
//! Tree `reports`: job key → [`ReportRecord`] as JSON, the newest state report of the job and the version
//! GitHub last took. `meta`'s `reports_since` (unix nanoseconds, u64) says when this store began keeping
//! reports: a job not changed since then and without a record was reported before records were kept.
//!
//! Writes are plain inserts, made durable by the next group flush ([`Store::sync`]), like the job trees':
//! the runner stores its final report before the flush that makes the job's outcome durable, so both
//! survive a crash together.

use time::OffsetDateTime;

use super::jobs::{JobError, StoreError, decode, encode, issue_key, nanos};
use super::{Store, jobs::StateOnly};
use crate::ids::{IssueNumber, RepoName};
use crate::job::claims::{apply_claim, may_be_claimed};
use crate::job::reports::{due, still_shows};
use crate::job::{Due, Job, JobState, ReportRecord};

const TREE: &str = "reports";
const SINCE: &str = "reports_since";

/// Records when this store began keeping reports, unless it already did. Idempotent; run at open.
pub(super) fn init(db: &sled::Db, now: OffsetDateTime) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    if meta.get(SINCE)?.is_none() {
        meta.insert(SINCE, &nanos(now).to_be_bytes())?;
    }
    Ok(())
}

/// A job's `updated_at`, read without the rest of its record.
#[derive(serde::Deserialize)]
struct Version {
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl Store {
    fn reports(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db().open_tree(TREE)?)
    }

    /// Stores `record` as its job's newest report, keeping what the stored one says was applied. Refused
    /// (`Ok(false)`, nothing written) when a report of a newer version is stored. Not flushed.
    pub fn put_report(&self, record: &ReportRecord) -> Result<bool, JobError> {
        let key = issue_key(&record.repo, record.issue);
        let mut stored = true;
        self.reports()?.fetch_and_update(&key, |old| {
            let old: Option<ReportRecord> = old.and_then(|raw| serde_json::from_slice(raw).ok());
            match old {
                Some(old) if old.version > record.version => {
                    stored = false;
                    Some(encode(&old))
                }
                old => {
                    stored = true;
                    let mut new = record.clone();
                    if let Some(old) = old {
                        new.applied = old.applied;
                        new.applied_state = old.applied_state;
                    }
                    Some(encode(&new))
                }
            }
        })?;
        Ok(stored)
    }

    /// Records that GitHub took the report of `version` of the job on `repo#issue`, which showed `state`.
    /// An older version than one already recorded changes nothing. Not flushed: a crash before the next
    /// group flush makes the report due again, and applying it twice is harmless.
    pub fn report_applied(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        version: u64,
        state: JobState,
    ) -> Result<(), JobError> {
        let key = issue_key(repo, issue);
        self.reports()?.fetch_and_update(&key, |old| {
            let raw = old?;
            let Ok(mut r) = serde_json::from_slice::<ReportRecord>(raw) else { return Some(raw.to_vec()) };
            if version > r.applied {
                r.applied = version;
                r.applied_state = Some(state);
            }
            Some(encode(&r))
        })?;
        Ok(())
    }

    /// The job's stored report, or `None` when none was stored.
    pub fn report(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<ReportRecord>, JobError> {
        match self.reports()?.get(issue_key(repo, issue))? {
            Some(raw) => decode(&raw, "report").map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` jobs GitHub is behind on ([`due`]), in job-key order, each with its stored report and
    /// how to report it. Reads every job's state and version (not the whole record) and every report: one
    /// scan of each tree.
    pub fn reports_due(&self, limit: usize) -> Result<Vec<(Job, Option<ReportRecord>, Due)>, JobError> {
        let since = match self.db().open_tree("meta")?.get(SINCE)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let claims = self.claims_by_key()?;
        let reports = self.reports()?;
        let mut out = Vec::new();
        for item in self.job_trees().jobs.iter() {
            if out.len() >= limit {
                break;
            }
            let (key, raw) = item?;
            let record: Option<ReportRecord> = match reports.get(&key)? {
                Some(r) => Some(decode(&r, "report")?),
                None => None,
            };
            // The cheap check first: a job whose stored report is applied at its version is in line.
            let (state, version): (StateOnly, Version) = (decode(&raw, "job")?, decode(&raw, "job")?);
            let claimed = claims.contains_key(&key) && state.state == JobState::Queued;
            if !claimed
                && record.as_ref().is_some_and(|r| {
                    r.applied >= nanos(version.updated_at)
                        && r.applied_state.is_none_or(|shown| still_shows(shown, state.state))
                })
            {
                continue;
            }
            let mut job: Job = decode(&raw, "job")?;
            if may_be_claimed(&job)
                && let Some(claim) = claims.get(&key)
            {
                apply_claim(&mut job, claim);
            }
            if let Some(d) = due(&job, record.as_ref(), since) {
                out.push((job, record, d));
            }
        }
        Ok(out)
    }
}
