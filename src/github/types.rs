//! Foreman's own shapes of what GitHub answers: only the fields Foreman reads, so an added or unknown field
//! in GitHub's answer never breaks decoding. Field names are GitHub's
//! (<https://docs.github.com/en/rest>); ids use the newtypes of [`crate::ids`].

use serde::{Deserialize, Serialize};

use crate::ids::{DeliveryId, InstallationId, IssueNumber, NodeId, RepoName, UserId};

/// A user or bot as GitHub names it in `user`, `sender` and `account`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct User {
    /// The login; bots end in `[bot]`.
    pub login: String,
    /// The stable numeric id.
    pub id: UserId,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A label on an issue or in a repository.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Label {
    /// The name, compared case-insensitively by GitHub.
    pub name: String,
    /// Six hex digits, no `#`.
    #[serde(default)]
    pub color: String,
    /// Up to 100 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// An issue (or a pull request seen through the issues API), as the issue endpoints answer.
#[derive(Clone, Debug, Deserialize)]
pub struct Issue {
    /// The database id: what sub-issues and "blocked by" links name an issue by (`sub_issue_id`,
    /// `issue_id`).
    pub id: u64,
    /// Its number in the repository.
    pub number: IssueNumber,
    /// Its GraphQL node id, for adding it to a project.
    pub node_id: NodeId,
    /// The title.
    pub title: String,
    /// The body in Markdown, if any.
    #[serde(default)]
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    /// Who opened it.
    pub user: User,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Present when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
    /// The author's relation to the repository: `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`, …
    #[serde(default)]
    pub author_association: String,
}

/// An issue comment.
#[derive(Clone, Debug, Deserialize)]
pub struct Comment {
    /// The comment's id (for update, delete and reactions).
    pub id: u64,
    /// The body in Markdown.
    #[serde(default)]
    pub body: String,
    /// Its author.
    pub user: User,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// RFC 3339.
    #[serde(default)]
    pub updated_at: String,
    /// The app that wrote it, when an app did.
    #[serde(default)]
    pub performed_via_github_app: Option<AppRef>,
    /// The comment's page on GitHub.
    #[serde(default)]
    pub html_url: String,
    /// The author's relation to the repository: `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`, …
    #[serde(default)]
    pub author_association: String,
}

/// An app as named in `performed_via_github_app`.
#[derive(Clone, Debug, Deserialize)]
pub struct AppRef {
    /// The app's id.
    pub id: u64,
}

/// An issue together with all its comments, oldest first.
#[derive(Clone, Debug)]
pub struct IssueThread {
    /// The issue.
    pub issue: Issue,
    /// Every comment (all pages).
    pub comments: Vec<Comment>,
}

/// A reaction's content, as GitHub spells it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Reaction {
    /// 👍
    #[serde(rename = "+1")]
    PlusOne,
    /// 👎
    #[serde(rename = "-1")]
    MinusOne,
    /// 😄
    #[serde(rename = "laugh")]
    Laugh,
    /// 😕
    #[serde(rename = "confused")]
    Confused,
    /// ❤️
    #[serde(rename = "heart")]
    Heart,
    /// 🎉
    #[serde(rename = "hooray")]
    Hooray,
    /// 🚀
    #[serde(rename = "rocket")]
    Rocket,
    /// 👀
    #[serde(rename = "eyes")]
    Eyes,
}

/// A label Foreman wants to exist in a repository: created with this colour and description if missing.
#[derive(Clone, Debug)]
pub struct LabelSpec {
    /// The name.
    pub name: String,
    /// Six hex digits, no `#`.
    pub color: String,
    /// What the label means, shown on GitHub.
    pub description: String,
}

/// A collaborator's permission on a repository, from weakest to strongest. From `role_name` of
/// `GET /repos/{owner}/{repo}/collaborators/{username}/permission` (falling back to `permission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// No access.
    None,
    /// Read.
    Read,
    /// Triage.
    Triage,
    /// Write (push).
    Write,
    /// Maintain.
    Maintain,
    /// Admin.
    Admin,
}

impl Permission {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "read" | "pull" => Self::Read,
            "triage" => Self::Triage,
            "write" | "push" => Self::Write,
            "maintain" => Self::Maintain,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// One end of a pull request.
#[derive(Clone, Debug, Deserialize)]
pub struct PullRef {
    /// The branch name.
    #[serde(rename = "ref")]
    pub branch: String,
    /// The commit.
    #[serde(default)]
    pub sha: String,
}

/// A pull request.
#[derive(Clone, Debug, Deserialize)]
pub struct PullRequest {
    /// Its number (shared with issues).
    pub number: IssueNumber,
    /// `open` or `closed`.
    pub state: String,
    /// The title.
    pub title: String,
    /// The body in Markdown.
    #[serde(default)]
    pub body: Option<String>,
    /// The branch with the changes.
    pub head: PullRef,
    /// The branch it merges into.
    pub base: PullRef,
    /// Its page on GitHub.
    #[serde(default)]
    pub html_url: String,
    /// GraphQL node id.
    #[serde(default)]
    pub node_id: Option<NodeId>,
}

/// What a new pull request says.
#[derive(Clone, Debug, Serialize)]
pub struct NewPullRequest {
    /// The title.
    pub title: String,
    /// The branch with the changes (in the same repository).
    pub head: String,
    /// The branch to merge into, usually the default branch.
    pub base: String,
    /// The body; `Closes #N` links it to the issue.
    pub body: String,
    /// Open as a draft.
    pub draft: bool,
}

/// Changes to a pull request; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullRequestUpdate {
    /// New title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `open` or `closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A check run.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckRun {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// When completed: `success`, `failure`, `neutral`, `cancelled`, `timed_out`, `action_required`, `skipped`.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The commit it reports on.
    pub head_sha: String,
    /// Foreman's own id for it, when given.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// The `output` of a check run.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRunOutput {
    /// One line.
    pub title: String,
    /// Markdown, up to 65,535 characters.
    pub summary: String,
}

/// A check run to create or the changes to one; `None` fields are left out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckRunSpec {
    /// Its name (required when creating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The commit (required when creating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    /// `queued`, `in_progress` or `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Required with `status: completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// Foreman's id for it (e.g. the session id), used to find it again after an ambiguous create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Title and summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<CheckRunOutput>,
}

/// The account an app is installed on.
#[derive(Clone, Debug, Deserialize)]
pub struct Account {
    /// Its login.
    pub login: String,
    /// Its id.
    pub id: u64,
    /// `User` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// The GitHub App itself, as `GET /app` describes it with the App's JWT
/// (<https://docs.github.com/en/rest/apps/apps#get-the-authenticated-app>).
#[derive(Clone, Debug, Deserialize)]
pub struct App {
    /// Its id (`GITHUB_APP_ID`).
    pub id: u64,
    /// Its slug, as in `https://github.com/apps/{slug}`.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its page on GitHub.
    #[serde(default)]
    pub html_url: Option<String>,
    /// The permissions it asks of every installation: name → `read`, `write` or `admin`.
    #[serde(default)]
    pub permissions: std::collections::BTreeMap<String, String>,
    /// The webhook events it subscribes to.
    #[serde(default)]
    pub events: Vec<String>,
    /// How many installations it has.
    #[serde(default)]
    pub installations_count: Option<u64>,
}

/// An installation of the app.
#[derive(Clone, Debug, Deserialize)]
pub struct Installation {
    /// Its id.
    pub id: InstallationId,
    /// Where it is installed.
    pub account: Account,
}

/// A repository an installation can reach.
#[derive(Clone, Debug, Deserialize)]
pub struct Repository {
    /// Its numeric id.
    pub id: u64,
    /// `owner/name`.
    pub full_name: RepoName,
    /// The default branch, e.g. `main`.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// The HTTPS clone URL.
    #[serde(default)]
    pub clone_url: Option<String>,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
}

/// One delivery from the app's webhook log (`GET /app/hook/deliveries`).
#[derive(Clone, Debug, Deserialize)]
pub struct HookDelivery {
    /// The log entry's id, for redelivery.
    pub id: u64,
    /// The `X-GitHub-Delivery` GUID (kept across redeliveries).
    pub guid: DeliveryId,
    /// RFC 3339.
    #[serde(default)]
    pub delivered_at: String,
    /// Whether this entry is itself a redelivery.
    #[serde(default)]
    pub redelivery: bool,
    /// The status Foreman answered with (0 when it could not be reached).
    #[serde(default)]
    pub status_code: u16,
    /// The event name, e.g. `issues`.
    pub event: String,
    /// The action, when the event has one.
    #[serde(default)]
    pub action: Option<String>,
    /// The installation the delivery was for.
    #[serde(default)]
    pub installation_id: Option<InstallationId>,
}

/// A pull request review (`GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews`).
#[derive(Clone, Debug, Deserialize)]
pub struct Review {
    /// Its id.
    pub id: u64,
    /// Who reviewed.
    pub user: User,
    /// The review's summary text; empty when none.
    #[serde(default)]
    pub body: Option<String>,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING` (REST spells them in capitals).
    pub state: String,
    /// The reviewer's relation to the repository.
    #[serde(default)]
    pub author_association: String,
}

/// An inline review comment on a pull request (`GET /repos/{owner}/{repo}/pulls/{pull_number}/comments`,
/// "List review comments on a pull request"): a reviewer's remark on one line of one file of the diff.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewComment {
    /// Who wrote it.
    pub user: User,
    /// The comment's text.
    pub body: String,
    /// The file it is on, relative to the repository's root.
    pub path: String,
    /// The line of the file (as the pull request's head has it) it is on; `None` for a comment on a line
    /// that is no longer in the diff, or on the whole file.
    #[serde(default)]
    pub line: Option<u64>,
    /// The commenter's relation to the repository.
    #[serde(default)]
    pub author_association: String,
}
