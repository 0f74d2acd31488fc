//! What Foreman pushed for an issue, as the job store keeps it ([`PushRecord`]): the branch, the commits
//! Foreman made its head, and the push a run request was about to make ([`PushIntent`]), recorded durably
//! before `git push` runs. A crash between the push and the outcome's record then cannot make Foreman take
//! its own commit for someone else's: the next attempt of the same run request finds the remote branch at
//! the recorded commit and goes straight to the pull request, without running the agent again.
//!
//! Pure rules here; the store keeps the records (one per repository and issue).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How many of the branch's heads Foreman remembers as its own, newest last. A re-run adds one; the ones
/// that matter are the last few (the remote branch is at one of them, or someone else pushed).
pub const REMEMBERED_HEADS: usize = 32;

/// The pull request a push is for, decided before the push so that an attempt after a crash opens the same
/// one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestDraft {
    /// The title, e.g. `Add a thing (#7)`.
    pub title: String,
    /// The body (Markdown, with Foreman's markers), as it would be opened.
    pub body: String,
    /// The branch it merges into: the repository's default branch.
    pub base: String,
    /// The pull request the commits add to (a follow-up's, or the open one a re-run continues): its body's
    /// agent session marker is brought up to date instead of opening a new one. `None`: open or find one
    /// by its head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<u64>,
}

/// A push a run request was about to make, recorded before `git push` ran. Stays until the run's outcome is
/// recorded ([`PushRecord::settle`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushIntent {
    /// The run request ([`super::Job::seq`]) whose attempt made the commit.
    pub seq: u64,
    /// The commit pushed as the branch's head (full SHA).
    pub sha: String,
    /// Foreman's session that made it (the check run's external id, the session log's name).
    pub session: String,
    /// The agent's own session id, to resume in a follow-up (the pull request body's marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
    /// The agent's summary of the change, shown in the tracking comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The check run's summary (Markdown): the constitution's decision.
    pub check_summary: String,
    /// The constitution's decision in one line, for the audit trail.
    pub allowed: String,
    /// The pull request to open or update.
    pub pull_request: PullRequestDraft,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What Foreman pushed for one issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRecord {
    /// The branch, e.g. `foreman/7-add-a-thing`.
    pub branch: String,
    /// Commits Foreman pushed (or was about to push) as the branch's head when every commit on the branch
    /// since the default branch was Foreman's (a session started from the default branch, or from such a
    /// head), oldest first, at most [`REMEMBERED_HEADS`]. A branch at one of them is Foreman's own, which it
    /// may rewrite; a head over someone else's commit is never one of them.
    #[serde(default)]
    pub heads: Vec<String>,
    /// The push of a run whose outcome is not recorded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PushIntent>,
}

impl PushRecord {
    /// The record after `intent` to push `branch`: the intent is pending, and when `own` (every commit on
    /// the branch since the default branch is Foreman's) the commit is one of Foreman's heads. A different
    /// branch (the title changed) starts a new list of heads.
    pub fn intend(record: Option<Self>, branch: &str, intent: PushIntent, own: bool) -> Self {
        let mut record = match record {
            Some(r) if r.branch == branch => r,
            _ => PushRecord { branch: branch.to_owned(), heads: Vec::new(), pending: None },
        };
        if own {
            record.heads.retain(|h| *h != intent.sha);
            record.heads.push(intent.sha.clone());
            let excess = record.heads.len().saturating_sub(REMEMBERED_HEADS);
            record.heads.drain(..excess);
        }
        record.pending = Some(intent);
        record
    }

    /// The record once run `seq`'s outcome is recorded: its intent is no longer pending. An intent of
    /// another run stays.
    pub fn settle(mut self, seq: u64) -> Self {
        if self.pending.as_ref().is_some_and(|p| p.seq == seq) {
            self.pending = None;
        }
        self
    }

    /// Whether `branch` at `sha` is Foreman's own: a head it pushed with only its own commits since the
    /// default branch.
    pub fn is_ours(&self, branch: &str, sha: &str) -> bool {
        self.branch == branch && self.heads.iter().any(|h| h == sha)
    }

    /// The intent run `seq` recorded and has not concluded, if any.
    pub fn pending_for(&self, seq: u64) -> Option<&PushIntent> {
        self.pending.as_ref().filter(|p| p.seq == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(seq: u64, sha: &str) -> PushIntent {
        PushIntent {
            seq,
            sha: sha.into(),
            session: "s".into(),
            agent_session: None,
            summary: None,
            check_summary: String::new(),
            allowed: String::new(),
            pull_request: PullRequestDraft { title: "t".into(), body: "b".into(), base: "main".into(), existing: None },
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_intent_is_pending_for_its_run_until_settled() {
        let r = PushRecord::intend(None, "foreman/1-x", intent(5, "a"), true);
        assert!(r.pending_for(5).is_some());
        assert!(r.pending_for(6).is_none());
        assert!(r.is_ours("foreman/1-x", "a"));
        assert!(!r.is_ours("foreman/1-y", "a"));
        assert!(r.clone().settle(6).pending_for(5).is_some(), "another run's outcome leaves it");
        let r = r.settle(5);
        assert!(r.pending.is_none());
        assert!(r.is_ours("foreman/1-x", "a"), "the head stays Foreman's");
    }

    #[test]
    fn heads_are_bounded_and_a_new_branch_starts_over() {
        let mut r = None;
        for i in 0..(REMEMBERED_HEADS + 5) {
            r = Some(PushRecord::intend(r, "foreman/1-x", intent(1, &i.to_string()), true));
        }
        let r = r.unwrap();
        assert_eq!(r.heads.len(), REMEMBERED_HEADS);
        assert_eq!(r.heads.last().map(String::as_str), Some(&*(REMEMBERED_HEADS + 4).to_string()));
        let r = PushRecord::intend(Some(r), "foreman/1-y", intent(2, "z"), true);
        assert_eq!(r.heads, vec!["z".to_owned()]);
    }

    #[test]
    fn a_head_over_someone_elses_commit_is_pending_but_not_foremans_own() {
        let r = PushRecord::intend(None, "foreman/1-x", intent(1, "a"), true);
        let r = PushRecord::intend(Some(r), "foreman/1-x", intent(2, "c"), false);
        assert_eq!(r.pending_for(2).map(|p| p.sha.as_str()), Some("c"));
        assert!(r.is_ours("foreman/1-x", "a"));
        assert!(!r.is_ours("foreman/1-x", "c"));
    }
}
