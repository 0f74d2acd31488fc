//! The payload shapes as GitHub sends them, read leniently (unknown fields are skipped), and their
//! conversion into [`super::Event`]. Only the fields Foreman uses are declared.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::envelope::{Envelope, is_handled};
use super::{
    Actor, ActorKind, AuthorAssociation, Comment, CommentAction, ContentType, DecodeError, Event, EventKind,
    FieldValue, FieldValueChange, Issue, IssuesAction, ProjectsV2Item, ProjectsV2ItemAction, PullRequestAction,
};
use crate::ids::{CommitSha, IssueNumber, NodeId, RepoName, UserId};

#[derive(Deserialize)]
struct RawUser {
    login: String,
    id: u64,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl From<RawUser> for Actor {
    fn from(u: RawUser) -> Self {
        let kind = match u.kind.as_deref() {
            Some("User") | None => ActorKind::User,
            Some("Bot") => ActorKind::Bot,
            Some("Organization") => ActorKind::Organization,
            Some(other) => ActorKind::Other(other.to_owned()),
        };
        Actor { login: u.login, id: UserId(u.id), kind }
    }
}

#[derive(Deserialize)]
struct RawLabel {
    name: String,
}

#[derive(Deserialize)]
struct RawRepo {
    full_name: String,
}

impl RawRepo {
    fn name(&self) -> Result<RepoName, String> {
        self.full_name.parse().map_err(|e: crate::ids::InvalidRepoName| e.to_string())
    }
}

#[derive(Deserialize)]
struct RawIssue {
    number: u64,
    node_id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    labels: Option<Vec<RawLabel>>,
    #[serde(default)]
    pull_request: Option<serde::de::IgnoredAny>,
    user: RawUser,
}

impl RawIssue {
    fn into_ref(self, repo: RepoName, is_pull_request: bool) -> Issue {
        Issue {
            repo,
            number: IssueNumber(self.number),
            node_id: NodeId(self.node_id),
            is_pull_request: is_pull_request || self.pull_request.is_some(),
            title: self.title.unwrap_or_default(),
            body: self.body.unwrap_or_default(),
            state: self.state.unwrap_or_default(),
            labels: self.labels.unwrap_or_default().into_iter().map(|l| l.name).collect(),
            author: self.user.into(),
        }
    }
}

#[derive(Deserialize)]
struct RawComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: RawUser,
    author_association: String,
}

impl From<RawComment> for Comment {
    fn from(c: RawComment) -> Self {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
            author: c.user.into(),
            association: AuthorAssociation::parse(&c.author_association),
        }
    }
}

#[derive(Deserialize)]
struct IssuesPayload {
    issue: RawIssue,
    repository: RawRepo,
    #[serde(default)]
    label: Option<RawLabel>,
}

#[derive(Deserialize)]
struct IssueCommentPayload {
    issue: RawIssue,
    comment: RawComment,
    repository: RawRepo,
    #[serde(default)]
    changes: Option<RawChanges>,
}

#[derive(Deserialize)]
struct RawChanges {
    #[serde(default)]
    body: Option<RawFrom>,
}

#[derive(Deserialize)]
struct RawFrom {
    #[serde(default)]
    from: Option<String>,
}

#[derive(Deserialize)]
struct RawHead {
    #[serde(rename = "ref")]
    ref_: String,
    sha: String,
}

#[derive(Deserialize)]
struct RawPull {
    #[serde(flatten)]
    issue: RawIssue,
    #[serde(default)]
    merged: Option<bool>,
    head: RawHead,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    pull_request: RawPull,
    repository: RawRepo,
}

#[derive(Deserialize)]
struct RawReview {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: RawUser,
    author_association: String,
    state: String,
}

#[derive(Deserialize)]
struct ReviewPayload {
    review: RawReview,
    pull_request: RawPull,
    repository: RawRepo,
}

#[derive(Deserialize)]
struct ReviewCommentPayload {
    comment: RawComment,
    pull_request: RawPull,
    repository: RawRepo,
}

#[derive(Deserialize)]
struct RawItem {
    node_id: String,
    project_node_id: String,
    #[serde(default)]
    content_node_id: Option<String>,
    content_type: String,
}

#[derive(Deserialize)]
struct ItemPayload {
    projects_v2_item: RawItem,
    #[serde(default)]
    changes: Option<Value>,
}

#[derive(Deserialize)]
struct RawInstallation {
    #[serde(default)]
    account: Option<RawUser>,
}

#[derive(Deserialize)]
struct WorkflowPayload {
    #[serde(default)]
    workflow_run: Option<RawWorkflowRun>,
    #[serde(default)]
    workflow_job: Option<RawWorkflowJob>,
}

#[derive(Deserialize)]
struct RawWorkflowRun {
    id: u64,
}

#[derive(Deserialize)]
struct RawWorkflowJob {
    run_id: u64,
}

#[derive(Deserialize)]
struct InstallationPayload {
    installation: RawInstallation,
    #[serde(default)]
    repositories: Option<Vec<RawRepo>>,
}

#[derive(Deserialize)]
struct InstallationReposPayload {
    #[serde(default)]
    repositories_added: Vec<RawRepo>,
    #[serde(default)]
    repositories_removed: Vec<RawRepo>,
}

/// Reads one payload shape out of the body, naming the event and action on failure. Fields the shape does
/// not name are skipped by the parser without being built into values.
pub(super) fn shape<T: DeserializeOwned>(body: &[u8], event: &str, action: Option<&str>) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError::Shape {
        event: event.to_owned(),
        action: action.unwrap_or("-").to_owned(),
        message: e.to_string(),
    })
}

fn bad_shape(event: &str, action: Option<&str>, message: String) -> DecodeError {
    DecodeError::Shape { event: event.to_owned(), action: action.unwrap_or("-").to_owned(), message }
}

fn repo_names(repos: Vec<RawRepo>, event: &str, action: Option<&str>) -> Result<Vec<RepoName>, DecodeError> {
    repos.iter().map(|r| r.name().map_err(|m| bad_shape(event, action, m))).collect()
}

/// Reads a raw envelope field as `T`, or `None` when it does not have that shape.
fn lenient<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    serde_json::from_str(raw?.get()).ok()
}

pub(super) fn decode(event_name: &str, body: &[u8]) -> Result<Event, DecodeError> {
    let not_json = |message: String| DecodeError::NotJson { event: event_name.to_owned(), message };
    if !body.trim_ascii_start().starts_with(b"{") {
        // Still parse, so the message says what is wrong with the JSON when it is not JSON at all.
        return Err(not_json(
            serde_json::from_slice::<Value>(body).err().map_or("not an object".into(), |e| e.to_string()),
        ));
    }
    let envelope = Envelope::read(body).map_err(|e| not_json(e.to_string()))?;
    let action: Option<String> = envelope.action.map(std::borrow::Cow::into_owned);
    let installation = envelope.installation;
    let repo = envelope.repository.and_then(|r| r.parse::<RepoName>().ok());
    let sender = lenient::<RawUser>(envelope.sender).map(Actor::from);
    let kind = kind(event_name, action.as_deref(), body)?;
    Ok(Event { name: event_name.to_owned(), action, delivery: None, installation, repo, sender, kind })
}

fn ignored(reason: impl Into<String>) -> EventKind {
    EventKind::Ignored { reason: reason.into() }
}

fn kind(event: &str, action: Option<&str>, body: &[u8]) -> Result<EventKind, DecodeError> {
    let Some(act) = action else {
        return Ok(match event {
            "ping" => ignored("ping: GitHub's test delivery when a webhook is created"),
            "push" => push(body)?,
            handled if is_handled(handled) => {
                return Err(bad_shape(event, None, "the payload has no 'action'".into()));
            }
            other => ignored(format!("event '{other}' is not one Foreman acts on")),
        });
    };
    let unknown_action = || ignored(format!("action '{event}.{act}' is not one Foreman acts on"));
    Ok(match event {
        "issue_dependencies" => super::links::dependency(act, body).unwrap_or_else(|| Ok(unknown_action()))?,
        "sub_issues" => super::links::sub_issue(act, body).unwrap_or_else(|| Ok(unknown_action()))?,
        "issues" => {
            let known = [
                "labeled",
                "unlabeled",
                "opened",
                "edited",
                "closed",
                "reopened",
                "assigned",
                "unassigned",
                "deleted",
                "transferred",
            ];
            if !known.contains(&act) {
                return Ok(unknown_action());
            }
            let p: IssuesPayload = shape(body, event, action)?;
            let repo = p.repository.name().map_err(|m| bad_shape(event, action, m))?;
            let label = |p: Option<RawLabel>| {
                p.map(|l| l.name).ok_or_else(|| bad_shape(event, action, "missing field `label`".into()))
            };
            let issue_action = match act {
                "labeled" => IssuesAction::Labeled { label: label(p.label)? },
                "unlabeled" => IssuesAction::Unlabeled { label: label(p.label)? },
                "opened" => IssuesAction::Opened,
                "edited" => IssuesAction::Edited,
                "closed" => IssuesAction::Closed,
                "reopened" => IssuesAction::Reopened,
                "assigned" => IssuesAction::Assigned,
                "unassigned" => IssuesAction::Unassigned,
                "deleted" => IssuesAction::Deleted,
                _ => IssuesAction::Transferred,
            };
            EventKind::Issues { action: issue_action, issue: p.issue.into_ref(repo, false) }
        }
        "issue_comment" => {
            if !["created", "edited", "deleted"].contains(&act) {
                return Ok(unknown_action());
            }
            let p: IssueCommentPayload = shape(body, event, action)?;
            let repo = p.repository.name().map_err(|m| bad_shape(event, action, m))?;
            let comment_action = match act {
                "created" => CommentAction::Created,
                "edited" => CommentAction::Edited {
                    previous_body: p.changes.and_then(|c| c.body).map(|b| b.from.unwrap_or_default()),
                },
                _ => CommentAction::Deleted,
            };
            EventKind::IssueComment {
                action: comment_action,
                issue: p.issue.into_ref(repo, false),
                comment: p.comment.into(),
            }
        }
        "pull_request" => {
            if !["opened", "closed", "reopened", "synchronize"].contains(&act) {
                return Ok(unknown_action());
            }
            let p: PullRequestPayload = shape(body, event, action)?;
            let repo = p.repository.name().map_err(|m| bad_shape(event, action, m))?;
            let pr_action = match act {
                "opened" => PullRequestAction::Opened,
                "closed" => PullRequestAction::Closed { merged: p.pull_request.merged.unwrap_or(false) },
                "reopened" => PullRequestAction::Reopened,
                _ => PullRequestAction::Synchronize,
            };
            EventKind::PullRequest {
                action: pr_action,
                head_ref: p.pull_request.head.ref_,
                head_sha: CommitSha(p.pull_request.head.sha),
                pull_request: p.pull_request.issue.into_ref(repo, true),
            }
        }
        "pull_request_review" => {
            if act != "submitted" {
                return Ok(unknown_action());
            }
            let p: ReviewPayload = shape(body, event, action)?;
            let repo = p.repository.name().map_err(|m| bad_shape(event, action, m))?;
            let r = p.review;
            EventKind::PullRequestReview {
                pull_request: p.pull_request.issue.into_ref(repo, true),
                state: r.state.to_lowercase(),
                review: Comment {
                    id: r.id,
                    body: r.body.unwrap_or_default(),
                    author: r.user.into(),
                    association: AuthorAssociation::parse(&r.author_association),
                },
            }
        }
        "pull_request_review_comment" => {
            if act != "created" {
                return Ok(unknown_action());
            }
            let p: ReviewCommentPayload = shape(body, event, action)?;
            let repo = p.repository.name().map_err(|m| bad_shape(event, action, m))?;
            EventKind::PullRequestReviewComment {
                pull_request: p.pull_request.issue.into_ref(repo, true),
                comment: p.comment.into(),
            }
        }
        "projects_v2_item" => {
            let item_action = match act {
                "created" => ProjectsV2ItemAction::Created,
                "edited" => ProjectsV2ItemAction::Edited,
                "archived" => ProjectsV2ItemAction::Archived,
                "restored" => ProjectsV2ItemAction::Restored,
                "deleted" => ProjectsV2ItemAction::Deleted,
                "converted" => ProjectsV2ItemAction::Converted,
                "reordered" => ProjectsV2ItemAction::Reordered,
                _ => return Ok(unknown_action()),
            };
            let p: ItemPayload = shape(body, event, action)?;
            let field_change = match (&item_action, &p.changes) {
                (ProjectsV2ItemAction::Edited, Some(changes)) => field_change(changes, event, action)?,
                _ => None,
            };
            let i = p.projects_v2_item;
            EventKind::ProjectsV2Item {
                action: item_action,
                item: ProjectsV2Item {
                    node_id: NodeId(i.node_id),
                    project_node_id: NodeId(i.project_node_id),
                    content_node_id: NodeId(i.content_node_id.unwrap_or_default()),
                    content_type: match i.content_type.as_str() {
                        "Issue" => ContentType::Issue,
                        "PullRequest" => ContentType::PullRequest,
                        "DraftIssue" => ContentType::DraftIssue,
                        other => ContentType::Other(other.to_owned()),
                    },
                },
                field_change,
            }
        }
        "workflow_run" | "workflow_job" if act == "completed" => {
            let p: WorkflowPayload = shape(body, event, action)?;
            let run_id = p
                .workflow_run
                .map(|r| r.id)
                .or(p.workflow_job.map(|j| j.run_id))
                .ok_or_else(|| bad_shape(event, action, format!("missing field `{event}`")))?;
            EventKind::WorkflowCompleted { run_id }
        }
        "installation" => {
            let p: InstallationPayload = shape(body, event, action)?;
            EventKind::Installation {
                action: act.to_owned(),
                account: p.installation.account.map(|a| a.login).unwrap_or_default(),
                repositories: repo_names(p.repositories.unwrap_or_default(), event, action)?,
            }
        }
        "installation_repositories" => {
            let p: InstallationReposPayload = shape(body, event, action)?;
            EventKind::InstallationRepositories {
                action: act.to_owned(),
                added: repo_names(p.repositories_added, event, action)?,
                removed: repo_names(p.repositories_removed, event, action)?,
            }
        }
        other => ignored(format!("event '{other}' is not one Foreman acts on")),
    })
}

/// The fields of a `push` payload Foreman reads (GitHub's webhook schema `push`).
#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<PushCommit>,
    repository: PushRepo,
}

#[derive(Deserialize)]
struct PushRepo {
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct PushCommit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
}

/// GitHub lists at most this many commits in a `push` payload.
const PUSH_COMMITS_LISTED: usize = 20;

fn push(body: &[u8]) -> Result<EventKind, DecodeError> {
    let p: PushPayload = shape(body, "push", None)?;
    let mut paths: Vec<String> = Vec::new();
    for c in &p.commits {
        for path in c.added.iter().chain(&c.removed).chain(&c.modified) {
            if !paths.contains(path) {
                paths.push(path.clone());
            }
        }
    }
    Ok(EventKind::Push {
        git_ref: p.git_ref,
        default_branch: p.repository.default_branch.unwrap_or_default(),
        after: CommitSha(p.after),
        paths,
        truncated: p.commits.len() >= PUSH_COMMITS_LISTED || (p.forced && p.commits.is_empty()),
    })
}

/// Reads `changes.field_value`; `None` when the edit was something else (a draft issue's body).
fn field_change(changes: &Value, event: &str, action: Option<&str>) -> Result<Option<FieldValueChange>, DecodeError> {
    let Some(fv) = changes.get("field_value") else { return Ok(None) };
    let text = |k: &str| fv.get(k).and_then(Value::as_str).map(str::to_owned);
    let field_node_id = text("field_node_id")
        .ok_or_else(|| bad_shape(event, action, "missing changes.field_value.field_node_id".into()))?;
    Ok(Some(FieldValueChange {
        field_node_id: NodeId(field_node_id),
        field_type: text("field_type").unwrap_or_default(),
        field_name: text("field_name"),
        from: fv.get("from").map(field_value),
        to: fv.get("to").map(field_value),
    }))
}

fn field_value(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Empty,
        Value::String(s) => FieldValue::Scalar(s.clone()),
        Value::Number(n) => FieldValue::Scalar(n.to_string()),
        Value::Bool(b) => FieldValue::Scalar(b.to_string()),
        Value::Object(o) => {
            let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            match (s("name"), s("title")) {
                (Some(name), _) => FieldValue::Option { id: s("id").unwrap_or_default(), name },
                (None, Some(title)) => FieldValue::Iteration { title },
                (None, None) => FieldValue::Scalar(v.to_string()),
            }
        }
        Value::Array(_) => FieldValue::Scalar(v.to_string()),
    }
}
