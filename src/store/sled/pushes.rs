//! What Foreman pushed for each issue ([`PushRecord`]): tree `pushes`, issue key → the record as JSON. A
//! tree of its own, read and written outside the job transactions: a push intent is recorded (and made
//! durable by the caller's [`Store::sync`]) before `git push` runs, and settled after the run's outcome is
//! recorded. A store from before this tree existed has no records, which reads as "nothing recorded".

use super::Store;
use super::jobs::{JobError, decode, encode, issue_key};
use crate::ids::{IssueNumber, RepoName};
use crate::job::push::{PushIntent, PushRecord};

impl Store {
    fn pushes(&self) -> Result<sled::Tree, JobError> {
        Ok(self.db().open_tree("pushes")?)
    }

    /// What Foreman pushed for `repo#issue`, or `None` when it recorded no push for it.
    pub fn push_record(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<PushRecord>, JobError> {
        match self.pushes()?.get(issue_key(repo, issue))? {
            Some(raw) => decode(&raw, "push record").map(Some),
            None => Ok(None),
        }
    }

    /// Records that run `intent.seq` is about to push `intent.sha` as the head of `branch`
    /// ([`PushRecord::intend`]; `own`: every commit on the branch since the default branch is Foreman's)
    /// and returns the record. Not flushed: call [`Store::sync`] before pushing.
    pub fn record_push_intent(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        branch: &str,
        intent: &PushIntent,
        own: bool,
    ) -> Result<PushRecord, JobError> {
        self.change(repo, issue, |old| Some(PushRecord::intend(old, branch, intent.clone(), own)))?
            .ok_or_else(|| super::jobs::corrupt("push record: not written"))
    }

    /// Settles run `seq`'s pending push in `repo`, once its outcome is recorded ([`PushRecord::settle`]):
    /// the record it is in is the branch's issue's, which for a follow-up is not the job's, so the
    /// repository's records are looked through (one per issue Foreman pushed for). Nothing recorded is fine.
    /// Not flushed.
    pub fn settle_push(&self, repo: &RepoName, seq: u64) -> Result<(), JobError> {
        let tree = self.pushes()?;
        for item in tree.scan_prefix(crate::job::key::repo_prefix(repo)) {
            let (key, raw) = item?;
            let record: PushRecord = decode(&raw, "push record")?;
            if record.pending_for(seq).is_some() {
                // Written back only if unchanged since it was read; a newer intent stays.
                let _ = tree.compare_and_swap(&key, Some(raw), Some(encode(&record.settle(seq))))?;
            }
        }
        Ok(())
    }

    /// Replaces the record with `f` of it, atomically (compare and swap, again on a race).
    fn change(
        &self,
        repo: &RepoName,
        issue: IssueNumber,
        f: impl Fn(Option<PushRecord>) -> Option<PushRecord>,
    ) -> Result<Option<PushRecord>, JobError> {
        let tree = self.pushes()?;
        let key = issue_key(repo, issue);
        loop {
            let old_raw = tree.get(&key)?;
            let old = old_raw.as_deref().map(|raw| decode::<PushRecord>(raw, "push record")).transpose()?;
            let new = f(old);
            let new_raw = new.as_ref().map(encode);
            if tree.compare_and_swap(&key, old_raw, new_raw)?.is_ok() {
                return Ok(new);
            }
        }
    }
}
