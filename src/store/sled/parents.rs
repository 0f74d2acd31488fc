//! Sub-issues: which issue is whose sub-issue, as Foreman learned it (a `sub_issues` delivery, or a read of
//! the parent's sub-issues), so a sub-issue's job can tell its parent's checklist that it changed.
//!
//! Tree `issue_parents`: the sub-issue's issue key → the parent as `owner/repo#N` (JSON of an
//! [`IssueRef`]). Written outside job transactions: it is a fact about GitHub, not a job's state.

use super::{JobError, SledStore};
use crate::job::IssueRef;
use crate::job::key::issue_key;

const TREE: &str = "issue_parents";

impl SledStore {
    /// Records that `sub` is a sub-issue of `parent` (`Some`), or of no issue (`None`).
    pub fn set_parent(&self, sub: &IssueRef, parent: Option<&IssueRef>) -> Result<(), JobError> {
        let tree = self.inner.db.open_tree(TREE).map_err(|e| JobError::Store(e.into()))?;
        let key = issue_key(&sub.repo, sub.issue);
        match parent {
            Some(p) => tree.insert(key, super::trees::encode(p)).map(drop),
            None => tree.remove(key).map(drop),
        }
        .map_err(|e| JobError::Store(e.into()))
    }

    /// The parent `sub` was last recorded under, if any.
    pub fn parent_of(&self, sub: &IssueRef) -> Result<Option<IssueRef>, JobError> {
        let tree = self.inner.db.open_tree(TREE).map_err(|e| JobError::Store(e.into()))?;
        match tree.get(issue_key(&sub.repo, sub.issue)).map_err(|e| JobError::Store(e.into()))? {
            Some(raw) => super::trees::decode(&raw, "parent").map(Some),
            None => Ok(None),
        }
    }
}
