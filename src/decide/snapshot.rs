//! What [`decide`](super::decide) decides with: the [`Snapshot`] of the issue's job and of the facts read
//! from GitHub, and the [`Lookup`] it asks for when a fact is missing.

use serde::Serialize;

use super::Level;
use crate::ids::{IssueNumber, NodeId, RepoName, UserId};
use crate::job::JobState;

/// A fact [`decide`](super::decide) needs from GitHub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Lookup {
    /// The user's permission on the repository: GET /repos/{owner}/{repo}/collaborators/{username}/permission,
    /// its `role_name`, into [`Snapshot::permission`]. Cache it by user id, not login.
    Permission {
        /// The repository.
        repo: RepoName,
        /// The user's login.
        user: String,
        /// The user's id, the cache key.
        user_id: UserId,
        /// The least level the command needs.
        needs: Level,
    },
    /// A Projects v2 item's content and current Status value, over GraphQL, into [`Snapshot::item`].
    ProjectItem {
        /// The item (`PVTI_…`).
        item: NodeId,
        /// Its content (`I_…`), which names the repository and issue.
        content: NodeId,
        /// The field the edit changed; compared with the Status field's id.
        field: NodeId,
    },
}

/// A read-only view of what is already known, for one decision. Empty by default: `foreman replay` decides
/// with an empty snapshot, so only the payload counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The state of the job for the issue the event concerns, if there is one.
    pub job: Option<JobState>,
    /// The acting user's permission on the repository, once looked up ([`Lookup::Permission`];
    /// [`Level::from_github`] reads GitHub's answer). A user with no role (`none`, or a 404) is
    /// `Some(Level::Anyone)`; `None` means not looked up yet.
    pub permission: Option<Level>,
    /// The Projects v2 item, once looked up ([`Lookup::ProjectItem`]).
    pub item: Option<ItemFacts>,
    /// What the job store knows about the issue's job beyond its state, for `status`.
    pub facts: Option<JobFacts>,
}

/// The job's figures `status` answers with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFacts {
    /// 1-based position in the run order, while queued and runnable.
    pub position: Option<u64>,
    /// How many times it was claimed.
    pub attempts: u32,
    /// Failures that count toward setting it aside (agent and validation), and the limit.
    pub failures: (u32, u32),
    /// The last failure: class and reason.
    pub last_failure: Option<String>,
    /// Why it is stuck, when it is.
    pub stuck_reason: Option<String>,
    /// The last session's id.
    pub last_session: Option<String>,
    /// When a job in backoff may run again (RFC 3339).
    pub not_before: Option<String>,
}

/// What GraphQL says about a Projects v2 item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFacts {
    /// The node id of the project's field named [`DecideConfig::status_field`], if the project has one.
    pub status_field: Option<NodeId>,
    /// The item's current option in that field (`None`: no value).
    pub status: Option<String>,
    /// What the item holds.
    pub content: ItemContent,
}

/// The content behind a Projects v2 item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemContent {
    /// An issue.
    Issue {
        /// Its repository.
        repo: RepoName,
        /// Its number.
        number: IssueNumber,
    },
    /// A pull request.
    PullRequest,
    /// A draft issue.
    DraftIssue,
}
