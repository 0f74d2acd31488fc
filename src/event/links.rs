//! `issue_dependencies` and `sub_issues` deliveries: a "blocked by" link or a sub-issue added or removed.
//!
//! Each change arrives from both sides: `blocked_by_added` on the blocked issue's repository and
//! `blocking_added` on the blocker's (likewise `sub_issue_added` on the parent's, `parent_issue_added` on
//! the sub-issue's). Both decode to the same event, so acting on either is acting on the change; acting on
//! both changes nothing more. Either side's issue may live in another repository: its repository is read
//! from its `repository_url`. Shapes: the OpenAPI description's `x-webhooks`
//! (`webhook-issue-dependencies-blocked-by-added`, `webhook-sub-issues-sub-issue-added`, …).

use serde::Deserialize;

use super::{DecodeError, EventKind, Linked};
use crate::ids::{IssueNumber, RepoName};

#[derive(Deserialize)]
struct RawLinked {
    id: u64,
    number: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    state: Option<String>,
    repository_url: String,
}

impl RawLinked {
    fn into_linked(self, event: &str, action: &str) -> Result<Linked, DecodeError> {
        let mut parts = self.repository_url.trim_end_matches('/').rsplit('/');
        let repo = match (parts.next(), parts.next()) {
            (Some(name), Some(owner)) => RepoName::new(owner, name).ok(),
            _ => None,
        };
        let repo = repo.ok_or_else(|| DecodeError::Shape {
            event: event.to_owned(),
            action: action.to_owned(),
            message: format!("'{}' does not name a repository", self.repository_url),
        })?;
        Ok(Linked {
            repo,
            number: IssueNumber(self.number),
            id: self.id,
            title: self.title.unwrap_or_default(),
            state: self.state.unwrap_or_default(),
        })
    }
}

#[derive(Deserialize)]
struct DependencyPayload {
    blocked_issue: RawLinked,
    blocking_issue: RawLinked,
}

#[derive(Deserialize)]
struct SubIssuePayload {
    parent_issue: RawLinked,
    sub_issue: RawLinked,
}

/// Decodes `issue_dependencies` (`blocked_by_added`, `blocked_by_removed`, `blocking_added`,
/// `blocking_removed`); `None` for another action.
pub(super) fn dependency(action: &str, body: &[u8]) -> Option<Result<EventKind, DecodeError>> {
    const EVENT: &str = "issue_dependencies";
    let added = match action {
        "blocked_by_added" | "blocking_added" => true,
        "blocked_by_removed" | "blocking_removed" => false,
        _ => return None,
    };
    Some((|| {
        let p: DependencyPayload = super::raw::shape(body, EVENT, Some(action))?;
        Ok(EventKind::IssueDependency {
            added,
            blocked: p.blocked_issue.into_linked(EVENT, action)?,
            blocking: p.blocking_issue.into_linked(EVENT, action)?,
        })
    })())
}

/// Decodes `sub_issues` (`sub_issue_added`, `sub_issue_removed`, `parent_issue_added`,
/// `parent_issue_removed`); `None` for another action.
pub(super) fn sub_issue(action: &str, body: &[u8]) -> Option<Result<EventKind, DecodeError>> {
    const EVENT: &str = "sub_issues";
    let added = match action {
        "sub_issue_added" | "parent_issue_added" => true,
        "sub_issue_removed" | "parent_issue_removed" => false,
        _ => return None,
    };
    Some((|| {
        let p: SubIssuePayload = super::raw::shape(body, EVENT, Some(action))?;
        Ok(EventKind::SubIssue {
            added,
            parent: p.parent_issue.into_linked(EVENT, action)?,
            sub: p.sub_issue.into_linked(EVENT, action)?,
        })
    })())
}
