//! Decisions about issue relationships: a "blocked by" link or a sub-issue added or removed on GitHub.
//!
//! Both are facts, not requests: they start no work, so they are taken from any sender (Foreman's own bot
//! links the tasks of a plan it creates), as an issue's closing is.

use serde::Serialize;

use super::Action;
use crate::event::{Event, Linked};
use crate::ids::InstallationId;
use crate::job::IssueRef;

/// What to do about a relationship ([`Action::Link`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum LinkAction {
    /// `blocked` is now (or no longer) blocked by `blocker`: its job takes the link and waits while the
    /// blocker is open; the blocker's state as the delivery shows it is recorded.
    BlockedBy {
        /// The blocked issue.
        blocked: IssueRef,
        /// The issue blocking it.
        blocker: IssueRef,
        /// Whether the link was added (else removed).
        added: bool,
        /// Whether the blocker is open.
        blocker_open: bool,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// `sub` was added to (or removed from) `parent`'s sub-issues: the parent's checklist is drawn again.
    SubIssue {
        /// The parent issue.
        parent: IssueRef,
        /// The sub-issue.
        sub: IssueRef,
        /// Whether it was added (else removed).
        added: bool,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
}

fn issue_ref(l: &Linked) -> IssueRef {
    IssueRef { repo: l.repo.clone(), issue: l.number }
}

/// A "blocked by" link changed ([`crate::event::EventKind::IssueDependency`]).
pub(super) fn dependency(event: &Event, added: bool, blocked: &Linked, blocking: &Linked) -> Vec<Action> {
    vec![Action::Link(LinkAction::BlockedBy {
        blocked: issue_ref(blocked),
        blocker: issue_ref(blocking),
        added,
        blocker_open: blocking.is_open(),
        installation: event.installation,
    })]
}

/// A sub-issue was added or removed ([`crate::event::EventKind::SubIssue`]).
pub(super) fn sub_issue(event: &Event, added: bool, parent: &Linked, sub: &Linked) -> Vec<Action> {
    vec![Action::Link(LinkAction::SubIssue {
        parent: issue_ref(parent),
        sub: issue_ref(sub),
        added,
        installation: event.installation,
    })]
}
