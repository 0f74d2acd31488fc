//! Typed GitHub webhook events, decoded into Foreman's own types (not octocrab's, which reject unknown actions).
//!
//! [`decode`] turns a delivery's raw body and its `X-GitHub-Event` name into an [`Event`]. Three outcomes:
//!
//! - an event Foreman understands ([`EventKind::Issues`], [`EventKind::IssueComment`], …);
//! - [`EventKind::Ignored`] with a reason, for every event or action Foreman does not act on, including
//!   actions GitHub adds later (`issues.typed`). This is never an error: the delivery is done.
//! - [`DecodeError`] when the body is not JSON, or an event Foreman understands lacks a field it needs.
//!   The inbox keeps such a delivery as a dead letter; retrying it cannot help.
//!
//! Payload shapes: <https://docs.github.com/en/webhooks/webhook-events-and-payloads>, and the examples and
//! schemas in `vendor/github/webhooks`.

pub mod envelope;
mod links;
mod raw;

use serde::Serialize;

pub use self::envelope::{Envelope, HANDLED_EVENTS, is_handled};
use crate::ids::{CommitSha, DeliveryId, InstallationId, IssueNumber, NodeId, RepoName, UserId};

/// One decoded delivery: who, where, under which installation, and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The `X-GitHub-Event` name as received, e.g. `issues`.
    pub name: String,
    /// The payload's `action`, when it has one (`labeled`, `created`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The delivery this came from (`X-GitHub-Delivery`), when the caller knows it; see [`Event::with_delivery`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryId>,
    /// The installation the delivery was sent for (`installation.id`). Absent for repository webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation: Option<InstallationId>,
    /// The repository (`repository.full_name`). Absent for organisation-level events (Projects v2 items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<RepoName>,
    /// Whoever caused the event (`sender`). Absent only in payloads that carry no sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Actor>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The issue or pull request the event is about, whose job state [`crate::decide::Snapshot::job`]
    /// should hold. `None` for Projects v2 items (the issue is known only after a lookup, see
    /// [`crate::decide::ItemFacts`]), installations and ignored events.
    pub fn issue(&self) -> Option<&Issue> {
        match &self.kind {
            EventKind::Issues { issue, .. } | EventKind::IssueComment { issue, .. } => Some(issue),
            EventKind::PullRequestReview { pull_request, .. }
            | EventKind::PullRequestReviewComment { pull_request, .. }
            | EventKind::PullRequest { pull_request, .. } => Some(pull_request),
            EventKind::ProjectsV2Item { .. }
            | EventKind::Installation { .. }
            | EventKind::InstallationRepositories { .. }
            | EventKind::Push { .. }
            | EventKind::IssueDependency { .. }
            | EventKind::SubIssue { .. }
            | EventKind::WorkflowCompleted { .. }
            | EventKind::Ignored { .. } => None,
        }
    }

    /// The same event, tagged with the delivery it came from, so later actions can name it.
    pub fn with_delivery(mut self, delivery: DeliveryId) -> Self {
        self.delivery = Some(delivery);
        self
    }
}

/// A GitHub account: a user, a bot (a GitHub App's `<slug>[bot]`), or an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The login, e.g. `octocat` or `foreman[bot]`. Logins can be renamed; `id` is stable.
    pub login: String,
    /// The numeric account id.
    pub id: UserId,
    /// The account's `type` field.
    pub kind: ActorKind,
}

impl Actor {
    /// Whether the account is a bot: `type` is `Bot`, or the login ends in `[bot]` (GitHub Apps act as
    /// `<slug>[bot]`). Older payloads sometimes carry `User` for app accounts, hence the login check.
    pub fn is_bot(&self) -> bool {
        self.kind == ActorKind::Bot || self.login.ends_with("[bot]")
    }
}

/// The `type` of a GitHub account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// `User`.
    User,
    /// `Bot`: a GitHub App or a legacy bot account.
    Bot,
    /// `Organization`.
    Organization,
    /// Anything else (`Mannequin`, or a type GitHub adds later), as sent.
    Other(String),
}

/// How a comment's or review's author relates to the repository (`author_association`).
///
/// See <https://docs.github.com/en/graphql/reference/enums#commentauthorassociation>.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorAssociation {
    /// Owner of the repository.
    Owner,
    /// Member of the organisation that owns the repository.
    Member,
    /// Invited to collaborate on the repository.
    Collaborator,
    /// Has previously committed to the repository.
    Contributor,
    /// Has not previously committed to the repository.
    FirstTimeContributor,
    /// Has not previously committed to GitHub.
    FirstTimer,
    /// Placeholder for an unclaimed user.
    Mannequin,
    /// No association.
    None,
    /// A value GitHub adds later, as sent.
    Other(String),
}

impl AuthorAssociation {
    fn parse(s: &str) -> Self {
        match s {
            "OWNER" => Self::Owner,
            "MEMBER" => Self::Member,
            "COLLABORATOR" => Self::Collaborator,
            "CONTRIBUTOR" => Self::Contributor,
            "FIRST_TIME_CONTRIBUTOR" => Self::FirstTimeContributor,
            "FIRST_TIMER" => Self::FirstTimer,
            "MANNEQUIN" => Self::Mannequin,
            "NONE" => Self::None,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// An issue or pull request, as far as Foreman needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// The repository it lives in.
    pub repo: RepoName,
    /// Its number in that repository.
    pub number: IssueNumber,
    /// Its GraphQL node id.
    pub node_id: NodeId,
    /// Whether it is a pull request (an issue payload with a `pull_request` key, or a pull request payload).
    pub is_pull_request: bool,
    /// Its title.
    pub title: String,
    /// Its body (Markdown; empty when GitHub sends `null`). Carries `Depends on #N` lines.
    pub body: String,
    /// `open` or `closed`, as sent.
    pub state: String,
    /// The names of its labels.
    pub labels: Vec<String>,
    /// Who opened it.
    pub author: Actor,
}

/// One side of an issue relationship (a dependency or a sub-issue): an issue anywhere on GitHub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Linked {
    /// Its repository (from its `repository_url`).
    pub repo: RepoName,
    /// Its number there.
    pub number: IssueNumber,
    /// Its database id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// `open` or `closed`, as sent.
    pub state: String,
}

impl Linked {
    /// Whether it is open (any state but `closed` counts as open, as a dependency must not be released on
    /// a guess).
    pub fn is_open(&self) -> bool {
        !self.state.eq_ignore_ascii_case("closed")
    }
}

/// A comment, review or review comment that may carry commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// Its REST id.
    pub id: u64,
    /// Its Markdown body (empty when GitHub sends `null`).
    pub body: String,
    /// Who wrote it.
    pub author: Actor,
    /// How the author relates to the repository.
    pub association: AuthorAssociation,
}

/// What happened, per event and action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// `issues`: labeled, unlabeled, opened, edited, closed, reopened, assigned, unassigned, deleted, transferred.
    Issues {
        /// The action.
        action: IssuesAction,
        /// The issue.
        issue: Issue,
    },
    /// `issue_comment`: created, edited, deleted, on an issue or a pull request.
    IssueComment {
        /// The action; for `edited`, the previous body if the payload carries it.
        action: CommentAction,
        /// The issue or pull request commented on.
        issue: Issue,
        /// The comment.
        comment: Comment,
    },
    /// `pull_request_review`: submitted.
    PullRequestReview {
        /// The pull request reviewed.
        pull_request: Issue,
        /// The review; `body` is its summary text.
        review: Comment,
        /// The review's state, lowercase as sent (`approved`, `commented`, `changes_requested`).
        state: String,
    },
    /// `pull_request_review_comment`: created.
    PullRequestReviewComment {
        /// The pull request.
        pull_request: Issue,
        /// The comment on the diff.
        comment: Comment,
    },
    /// `pull_request`: opened, closed (merged or not), reopened, synchronize.
    PullRequest {
        /// The action.
        action: PullRequestAction,
        /// The pull request.
        pull_request: Issue,
        /// The head branch name.
        head_ref: String,
        /// The head commit (`pull_request.head.sha`, a full SHA): what a check run reports on.
        head_sha: CommitSha,
    },
    /// `projects_v2_item`: created, edited, archived, restored, deleted, converted, reordered.
    ProjectsV2Item {
        /// The action.
        action: ProjectsV2ItemAction,
        /// The item.
        item: ProjectsV2Item,
        /// For `edited`: the field value that changed, if the edit was a field edit (not a draft's body).
        #[serde(skip_serializing_if = "Option::is_none")]
        field_change: Option<FieldValueChange>,
    },
    /// `installation`: every action (created, deleted, suspend, unsuspend, new_permissions_accepted, …).
    Installation {
        /// The action, as sent.
        action: String,
        /// The account the app is installed on.
        account: String,
        /// The repositories listed in the payload (for `created`), possibly empty.
        repositories: Vec<RepoName>,
    },
    /// `installation_repositories`: added, removed.
    InstallationRepositories {
        /// The action, as sent.
        action: String,
        /// Repositories added to the installation.
        added: Vec<RepoName>,
        /// Repositories removed from the installation.
        removed: Vec<RepoName>,
    },
    /// `push` (it has no action): commits pushed to a branch. Foreman reads it for changes to
    /// `.github/foreman.toml` on the default branch, which release jobs waiting for that file.
    Push {
        /// The full ref pushed, e.g. `refs/heads/main` (`ref`).
        git_ref: String,
        /// The repository's default branch (`repository.default_branch`).
        default_branch: String,
        /// The branch's new head (`after`; all zeros when the branch was deleted).
        after: CommitSha,
        /// Every path the pushed commits added, modified or removed (`commits[].added/modified/removed`),
        /// without repeats.
        paths: Vec<String>,
        /// Whether `commits` may be cut short: GitHub lists at most 20 commits (and none for a forced
        /// push that only moved the branch back), so a path may be missing from `paths`.
        truncated: bool,
    },
    /// `issue_dependencies`: a "blocked by" link added or removed (`blocked_by_added`/`blocking_added`,
    /// `blocked_by_removed`/`blocking_removed`: the same change seen from either side).
    IssueDependency {
        /// Whether the link was added (else removed).
        added: bool,
        /// The blocked issue.
        blocked: Linked,
        /// The issue blocking it.
        blocking: Linked,
    },
    /// `sub_issues`: a sub-issue added to or removed from a parent (`sub_issue_added`/`parent_issue_added`,
    /// `sub_issue_removed`/`parent_issue_removed`).
    SubIssue {
        /// Whether it was added (else removed).
        added: bool,
        /// The parent issue.
        parent: Linked,
        /// The sub-issue.
        sub: Linked,
    },
    /// `workflow_run` or `workflow_job` `completed`: a GitHub Actions run (or one of its jobs) ended. The
    /// Actions executor looks at the session it runs, if any: one that ended without handing back its work
    /// failed.
    WorkflowCompleted {
        /// The run's id (`workflow_run.id`, `workflow_job.run_id`).
        run_id: u64,
    },
    /// Any event or action Foreman does not act on, with the reason. Not an error.
    Ignored {
        /// Why, in words a user can read in `foreman replay`.
        reason: String,
    },
}

/// `issues` actions Foreman decodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IssuesAction {
    /// A label was added; its name.
    Labeled {
        /// The label's name.
        label: String,
    },
    /// A label was removed; its name.
    Unlabeled {
        /// The label's name.
        label: String,
    },
    /// The issue was opened.
    Opened,
    /// Its title or body was edited.
    Edited,
    /// It was closed.
    Closed,
    /// It was reopened.
    Reopened,
    /// Someone was assigned.
    Assigned,
    /// Someone was unassigned.
    Unassigned,
    /// It was deleted.
    Deleted,
    /// It was transferred to another repository.
    Transferred,
}

/// `issue_comment` actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CommentAction {
    /// A new comment.
    Created,
    /// An edit; `previous_body` is `changes.body.from`, absent when the body did not change.
    Edited {
        /// The body before the edit.
        previous_body: Option<String>,
    },
    /// The comment was deleted.
    Deleted,
}

/// `pull_request` actions Foreman decodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PullRequestAction {
    /// Opened.
    Opened,
    /// Closed; `merged` tells a merge from a plain close.
    Closed {
        /// Whether it was merged.
        merged: bool,
    },
    /// Reopened.
    Reopened,
    /// New commits were pushed to its head branch.
    Synchronize,
}

/// `projects_v2_item` actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectsV2ItemAction {
    /// Added to the project.
    Created,
    /// A field value (or a draft's body) changed.
    Edited,
    /// Archived.
    Archived,
    /// Restored from the archive.
    Restored,
    /// Removed from the project.
    Deleted,
    /// A draft issue was converted to an issue.
    Converted,
    /// Moved within a view.
    Reordered,
}

/// A Projects v2 item. The payload names the project and the content only by node id; which repository
/// and issue the content is must be read over GraphQL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProjectsV2Item {
    /// The item's node id (`PVTI_…`).
    pub node_id: NodeId,
    /// The project's node id (`PVT_…`).
    pub project_node_id: NodeId,
    /// The content's node id (`I_…`, `PR_…`, `DI_…`).
    pub content_node_id: NodeId,
    /// What the item holds.
    pub content_type: ContentType,
}

/// What a Projects v2 item holds (`content_type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ContentType {
    /// An issue.
    Issue,
    /// A pull request.
    PullRequest,
    /// A draft issue, which lives only on the board.
    DraftIssue,
    /// A type GitHub adds later, as sent.
    Other(String),
}

/// `changes.field_value` of a `projects_v2_item.edited` delivery.
///
/// Older payloads carry only `field_node_id` and `field_type`; newer ones add `field_name`, `from` and `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldValueChange {
    /// The field's node id (`PVTF_…`, `PVTSSF_…`).
    pub field_node_id: NodeId,
    /// `single_select`, `date`, `number`, `text`, `iteration`, … as sent.
    pub field_type: String,
    /// The field's name, when the payload carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// The value before, when the payload carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<FieldValue>,
    /// The value after, when the payload carries it. `Some(FieldValue::Empty)` means the value was cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<FieldValue>,
}

/// One side of a field change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    /// A single-select option (`{id, name, …}`): a board column for the Status field.
    Option {
        /// The option's id.
        id: String,
        /// The option's name, e.g. `Ready`.
        name: String,
    },
    /// An iteration (`{id, title, …}`).
    Iteration {
        /// Its title.
        title: String,
    },
    /// Text, date or number, rendered as text.
    Scalar(String),
    /// `null`: the field was cleared (or had no value).
    Empty,
}

/// A delivery that cannot be decoded. Retrying cannot help: keep it as a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON (or not a JSON object).
    #[error("the body of a '{event}' delivery is not a JSON object: {message}")]
    NotJson {
        /// The `X-GitHub-Event` name.
        event: String,
        /// What the JSON parser said.
        message: String,
    },
    /// A JSON object that lacks a field Foreman needs for this event, or has one of the wrong type.
    #[error("a '{event}.{action}' delivery does not have the expected shape: {message}")]
    Shape {
        /// The `X-GitHub-Event` name.
        event: String,
        /// The action, or `-` when there is none.
        action: String,
        /// What was wrong, with the JSON path where serde knows it.
        message: String,
    },
}

impl DecodeError {
    /// A short, fixed label for metrics and logs: `not_json` or `shape`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotJson { .. } => "not_json",
            DecodeError::Shape { .. } => "shape",
        }
    }
}

/// Decodes a delivery: `event_name` is the `X-GitHub-Event` header, `body` the raw request body.
///
/// Events and actions Foreman does not act on decode to [`EventKind::Ignored`] with a reason, even when
/// the rest of their body is unexpected. Errors only for a body that is not a JSON object, or for an
/// event Foreman acts on that lacks a field it needs.
pub fn decode(event_name: &str, body: &[u8]) -> Result<Event, DecodeError> {
    raw::decode(event_name, body)
}
