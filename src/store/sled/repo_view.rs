//! What the console's repository page reads: one repository's jobs, its session records, the sub-issues
//! recorded under its issues, and whether an issue is known to be closed. Reads only; each is one scan.

use time::OffsetDateTime;

use super::Store;
use super::jobs::{JobError, decode};
use crate::ids::RepoName;
use crate::job::claims::{apply_claim, may_be_claimed};
use crate::job::key::{decode_issue_key, issue_key, repo_prefix};
use crate::job::{IssueRef, Job, SessionRecord};

impl Store {
    /// `repo`'s jobs (claims applied: a claimed job reads `running`), the most recently changed first, at
    /// most `limit`. Reads every job of the repository (one prefix scan of the `jobs` tree; the key is the
    /// lowercased name, so any case of it finds them).
    pub fn repo_jobs(&self, repo: &RepoName, limit: usize) -> Result<Vec<Job>, JobError> {
        let t = self.job_trees();
        let mut jobs = Vec::new();
        for item in t.jobs.scan_prefix(repo_prefix(repo)) {
            let (key, raw) = item?;
            let mut job: Job = decode(&raw, "job")?;
            if may_be_claimed(&job)
                && let Some(raw) = t.claims.get(&key)?
            {
                apply_claim(&mut job, &decode(&raw, "claim")?);
            }
            jobs.push(job);
        }
        jobs.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.issue.cmp(&a.issue)));
        jobs.truncate(limit);
        Ok(jobs)
    }

    /// `repo`'s session records (its name compared without regard to case) started at or after `since`, in
    /// the order they started. Reads every session record, as [`Store::repo_usage`] does.
    pub fn repo_sessions(&self, repo: &RepoName, since: OffsetDateTime) -> Result<Vec<SessionRecord>, JobError> {
        let mut out = Vec::new();
        for item in self.job_trees().sessions.iter() {
            let (_, raw) = item?;
            let record: SessionRecord = decode(&raw, "session")?;
            if same(&record.repo, repo) && record.started_at >= since {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The sub-issues recorded under issues of `repo` ([`Store::set_parent`]), as `(parent, sub)` pairs in
    /// the sub-issues' key order; a sub-issue may live in another repository. Reads the whole
    /// `issue_parents` tree.
    pub fn sub_issues_in(&self, repo: &RepoName) -> Result<Vec<(IssueRef, IssueRef)>, JobError> {
        let tree = self.inner.db.open_tree("issue_parents").map_err(|e| JobError::Store(e.into()))?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (key, raw) = item.map_err(|e| JobError::Store(e.into()))?;
            let parent: IssueRef = decode(&raw, "parent")?;
            if !same(&parent.repo, repo) {
                continue;
            }
            if let Some(sub) = decode_issue_key(&key) {
                out.push((parent, sub));
            }
        }
        Ok(out)
    }

    /// Whether `issue` is open as Foreman last heard (`issues` closed and reopened deliveries, reads of
    /// dependencies); `None` when it never heard.
    pub fn issue_open(&self, issue: &IssueRef) -> Result<Option<bool>, JobError> {
        let raw = self.job_trees().issues.get(issue_key(&issue.repo, issue.issue))?;
        Ok(raw.map(|v| &v[..] != b"closed"))
    }
}

/// Whether two repository names are the same repository (GitHub compares them without regard to case).
fn same(a: &RepoName, b: &RepoName) -> bool {
    a.owner().eq_ignore_ascii_case(b.owner()) && a.name().eq_ignore_ascii_case(b.name())
}
