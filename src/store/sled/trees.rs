//! The job trees of the sled store and the transaction over all of them ([`Tx`]), with the writes every
//! job operation shares: a job's record and run-order entry, its audit entries, and its placement.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use time::OffsetDateTime;

use super::{JobError, StoreError};
use crate::job::claims::{apply_claim, may_be_claimed};
pub(super) use crate::job::key::key_repo_prefix;
use crate::job::{AuditEntry, Job, JobState, Placement};

pub(super) fn corrupt(what: &str) -> JobError {
    JobError::Store(StoreError::Corrupt(what.to_owned()))
}

pub(super) fn time_key(t: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(key);
    k
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(raw: &[u8], what: &str) -> Result<T, JobError> {
    serde_json::from_slice(raw).map_err(|e| corrupt(&format!("{what}: {e}")))
}

/// The name of the tree of a job's sessions: job key · session id → empty ([`super::sessions`]).
pub(super) const JOB_SESSIONS: &str = "job_sessions";
/// The name of the tree of a job's failures: job key · ledger id (u64) → empty ([`super::sessions`]).
pub(super) const JOB_FAILURES: &str = "job_failures";

/// A key of a per-job index: the job key, then `tail`.
pub(super) fn job_index_key(job_key: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(job_key.len() + tail.len());
    k.extend_from_slice(job_key);
    k.extend_from_slice(tail);
    k
}

/// The trees of the job store.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(super) jobs: sled::Tree,
    pub(super) ready: sled::Tree,
    pub(super) delayed: sled::Tree,
    pub(super) deps: sled::Tree,
    pub(super) issues: sled::Tree,
    pub(super) audit: sled::Tree,
    pub(super) audit_index: sled::Tree,
    pub(super) claims: sled::Tree,
    pub(super) failures: sled::Tree,
    pub(super) sessions: sled::Tree,
    pub(super) job_sessions: sled::Tree,
    pub(super) job_failures: sled::Tree,
    pub(super) slots: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            jobs: db.open_tree("jobs")?,
            ready: db.open_tree("job_ready")?,
            delayed: db.open_tree("job_delayed")?,
            deps: db.open_tree("job_deps")?,
            issues: db.open_tree("issue_state")?,
            audit: db.open_tree("job_audit")?,
            audit_index: db.open_tree("job_audit_index")?,
            claims: db.open_tree("claims")?,
            failures: db.open_tree("failures")?,
            sessions: db.open_tree("sessions")?,
            job_sessions: db.open_tree(JOB_SESSIONS)?,
            job_failures: db.open_tree(JOB_FAILURES)?,
            slots: db.open_tree("slots")?,
        })
    }

    /// Runs `f` as one sled transaction over every job tree. sled retries `f` on conflict, so `f` must have
    /// no effect outside the transaction.
    pub(super) fn run<T>(&self, f: impl Fn(&Tx<'_>) -> Result<T, Abort>) -> Result<T, JobError> {
        let trees = (
            &self.jobs,
            &self.ready,
            &self.delayed,
            &self.deps,
            &self.audit,
            &self.audit_index,
            &self.claims,
            &self.failures,
            &self.sessions,
            &self.job_sessions,
            &self.job_failures,
            &self.slots,
        );
        sled::Transactional::transaction(
            &trees,
            |(
                jobs,
                ready,
                delayed,
                deps,
                audit,
                audit_index,
                claims,
                failures,
                sessions,
                job_sessions,
                job_failures,
                slots,
            )| {
                f(&Tx {
                    jobs,
                    ready,
                    delayed,
                    deps,
                    audit,
                    audit_index,
                    claims,
                    failures,
                    sessions,
                    job_sessions,
                    job_failures,
                    slots,
                })
            },
        )
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        })
    }
}

/// The error type inside a transaction.
pub(super) type Abort = ConflictableTransactionError<JobError>;

/// Aborts a transaction with `e`.
pub(super) fn abort(e: JobError) -> Abort {
    ConflictableTransactionError::Abort(e)
}

/// The transactional views of every job tree.
pub(super) struct Tx<'a> {
    pub(super) jobs: &'a TransactionalTree,
    pub(super) ready: &'a TransactionalTree,
    pub(super) delayed: &'a TransactionalTree,
    pub(super) deps: &'a TransactionalTree,
    pub(super) audit: &'a TransactionalTree,
    pub(super) audit_index: &'a TransactionalTree,
    pub(super) claims: &'a TransactionalTree,
    pub(super) failures: &'a TransactionalTree,
    pub(super) sessions: &'a TransactionalTree,
    pub(super) job_sessions: &'a TransactionalTree,
    pub(super) job_failures: &'a TransactionalTree,
    pub(super) slots: &'a TransactionalTree,
}

impl Tx<'_> {
    /// The job under `key` with its claim applied ([`apply_claim`]).
    pub(super) fn job(&self, key: &[u8]) -> Result<Option<Job>, Abort> {
        let Some(raw) = self.jobs.get(key)? else { return Ok(None) };
        let mut job: Job = decode(&raw, "job").map_err(abort)?;
        if may_be_claimed(&job)
            && let Some(raw) = self.claims.get(key)?
        {
            apply_claim(&mut job, &decode(&raw, "claim").map_err(abort)?);
        }
        Ok(Some(job))
    }

    /// Writes the job's record and, when it is ready to run, its run-order entry (the same bytes).
    pub(super) fn put_job(&self, key: &[u8], job: &Job) -> Result<(), Abort> {
        let raw = encode(job);
        if job.placement == Placement::Ready {
            self.ready.insert(&job.order_key().encode()[..], &raw[..])?;
        }
        self.jobs.insert(key, raw)?;
        Ok(())
    }

    pub(super) fn record(&self, key: &[u8], entry: AuditEntry) -> Result<(), Abort> {
        let id = self.audit.generate_id()?.to_be_bytes();
        let mut k = key.to_vec();
        k.extend_from_slice(&id);
        self.audit_index.insert(k, &[])?;
        self.audit.insert(&id, encode(&entry))?;
        Ok(())
    }

    /// Takes the job out of whichever index holds it.
    pub(super) fn unplace(&self, key: &[u8], job: &mut Job) -> Result<(), Abort> {
        match job.placement {
            Placement::None | Placement::Waiting => {}
            Placement::Ready => {
                self.ready.remove(&job.order_key().encode()[..])?;
            }
            Placement::Delayed { until } => {
                self.delayed.remove(time_key(until, key))?;
            }
        }
        job.placement = Placement::None;
        Ok(())
    }

    /// Puts a queued or failed job where it belongs at `now` ([`crate::job::placement::place`]) and writes
    /// the delayed index entry or the audit entry the rule asks for. The caller then writes the job with
    /// [`Tx::put_job`], which writes a ready job's run-order entry (with the job as it is then).
    pub(super) fn place(&self, key: &[u8], job: &mut Job, now: OffsetDateTime) -> Result<(), Abort> {
        let audit = crate::job::placement::place(job, now);
        if let Placement::Delayed { until } = job.placement {
            self.delayed.insert(time_key(until, key), &[])?;
        }
        if let Some(e) = audit {
            self.record(key, e)?;
        }
        Ok(())
    }
}

pub(super) fn entry(
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    from: Option<JobState>,
    to: JobState,
    cause: &str,
) -> AuditEntry {
    AuditEntry::new(at, actor, action, from, to, cause)
}
