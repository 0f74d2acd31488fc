//! Approving a plan: one issue per task, each a sub-issue of the planned issue, each "blocked by" its
//! blockers, labelled, on the planned issue's boards in `plan.column`; then the plan comment records which
//! issue each task became.
//!
//! Idempotent and crash-safe without a store of its own: every created issue's body carries
//! [`markers::task`] (the planned issue and the task's key), and before creating anything the approval
//! looks for issues by Foreman's bot carrying it, among the planned issue's sub-issues and the repository's
//! 100 newest issues. A `kill -9` anywhere, then the same approval again (the delivery is still in the inbox),
//! or a second `/foreman approve`, finds what exists and makes only what is missing: one issue, one
//! sub-issue link and one "blocked by" link per task and dependency. Tasks the plan comment already lists as
//! created (an earlier approval finished them) are left alone, so a revision adds its new tasks only.

use std::collections::BTreeMap;

use super::{Plan, render};
use crate::github::{Client, GithubError, Issue};
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::markers;

/// What an approval needs besides the client.
#[derive(Clone, Debug)]
pub struct Approval<'a> {
    /// The repository of the planned issue (and of every task).
    pub repo: &'a RepoName,
    /// The planned issue.
    pub parent: IssueNumber,
    /// The board column new tasks' cards go in (`plan.column`).
    pub column: &'a str,
    /// The boards' single-select field whose options are the columns (`triggers.status_field`).
    pub status_field: &'a str,
}

/// One task's issue after the approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIssue {
    /// The task's key.
    pub key: String,
    /// The issue's number.
    pub number: IssueNumber,
    /// The issue's title.
    pub title: String,
    /// The issue's body (for the dependencies it names).
    pub body: String,
    /// The issue's labels.
    pub labels: Vec<String>,
    /// Whether this approval created the issue (`false`: it existed).
    pub created: bool,
    /// Whether the issue is open.
    pub open: bool,
}

/// What an approval came to, the tasks in the plan's order.
#[derive(Clone, Debug, Default)]
pub struct Approved {
    /// Every task's issue.
    pub tasks: Vec<TaskIssue>,
}

/// Why an approval stopped; what it made so far stays, and the next approval carries on from there.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// The planned issue has no plan comment by Foreman.
    #[error("#{0} has no plan to approve; `/foreman plan` proposes one")]
    NoPlan(IssueNumber),
    /// GitHub failed.
    #[error("GitHub failed while {doing}: {source}")]
    Github {
        /// What was being done, e.g. `creating the issue for T3`.
        doing: String,
        /// The error.
        #[source]
        source: GithubError,
    },
}

impl ApproveError {
    /// Whether trying again later may succeed (GitHub unavailable, rate limited, an ambiguous create).
    pub fn is_transient(&self) -> bool {
        match self {
            ApproveError::NoPlan(_) => false,
            ApproveError::Github { source, .. } => {
                source.is_transient() || matches!(source, GithubError::Ambiguous { .. })
            }
        }
    }
}

fn github(doing: impl Into<String>) -> impl FnOnce(GithubError) -> ApproveError {
    move |source| ApproveError::Github { doing: doing.into(), source }
}

/// Whether `issue` was written by a bot (Foreman's, as the client acts as its app): a person typing a task
/// marker into an issue of theirs does not make it a task.
fn by_bot(issue: &Issue) -> bool {
    issue.user.kind == "Bot" || issue.user.login.ends_with("[bot]")
}

/// The issues made for tasks of `repo#parent`'s plan that exist now, by task key: Foreman's issues carrying
/// the task marker, among the planned issue's sub-issues and the repository's newest 100 issues.
pub async fn existing(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    parent: IssueNumber,
) -> Result<BTreeMap<String, Issue>, GithubError> {
    let subs = client.sub_issues(inst, repo, parent).await?;
    let recent = client.recent_issues(inst, repo).await?;
    let mut found = BTreeMap::new();
    for issue in subs.into_iter().chain(recent) {
        if issue.pull_request.is_some() || !by_bot(&issue) {
            continue;
        }
        if let Some((r, p, key)) = issue.body.as_deref().and_then(markers::parse_task)
            && &r == repo
            && p == parent
        {
            found.entry(key).or_insert(issue);
        }
    }
    Ok(found)
}

/// The plan comment on `repo#parent` by Foreman, with the plan it carries and the issues its tasks became
/// at the last approval. `None` when there is none (or it does not decode).
pub async fn plan_comment(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    parent: IssueNumber,
) -> Result<Option<(Plan, BTreeMap<String, IssueNumber>)>, GithubError> {
    let marker = markers::plan(repo, parent);
    let comment = client.find_marked_comment(inst, repo, parent, &marker).await?;
    Ok(comment.and_then(|c| render::decode(&c.body)))
}

/// The body of the issue for `task`: the task's body, then which plan it belongs to and what it depends on
/// (`Depends on #N`, which Foreman's scheduler also reads), then the marker.
fn body(repo: &RepoName, parent: IssueNumber, task: &super::Task, blockers: &[IssueNumber]) -> String {
    let mut out = format!("{}\n\n---\nTask `{}` of the plan for #{parent}.", task.body.trim_end(), task.key);
    if !blockers.is_empty() {
        let list: Vec<String> = blockers.iter().map(|n| format!("#{n}")).collect();
        out.push_str(&format!("\nDepends on {}.", list.join(", ")));
    }
    out.push_str(&format!("\n\n{}", markers::task(repo, parent, &task.key)));
    out
}

/// Creates what is missing of `plan`'s tasks as described in the module's documentation, and rewrites the
/// plan comment with each task's issue. `done` is what the plan comment lists as created by an earlier
/// approval (left alone).
pub async fn approve(
    client: &Client,
    inst: InstallationId,
    at: &Approval<'_>,
    plan: &Plan,
    done: &BTreeMap<String, IssueNumber>,
) -> Result<Approved, ApproveError> {
    let (repo, parent) = (at.repo, at.parent);
    let order = plan.order().unwrap_or_else(|_| (0..plan.tasks.len()).collect());
    let mut found = existing(client, inst, repo, parent).await.map_err(github("looking for the plan's issues"))?;
    let mut issues: BTreeMap<String, (Issue, bool)> = BTreeMap::new();
    for &i in &order {
        let task = &plan.tasks[i];
        if let Some(issue) = found.remove(&task.key) {
            issues.insert(task.key.clone(), (issue, false));
            continue;
        }
        if let Some(number) = done.get(&task.key) {
            // Made by an earlier approval and no longer found (taken out of the plan by someone): not again.
            tracing::info!(%repo, key = %task.key, issue = number.0, "a created task is not found; left alone");
            continue;
        }
        let blockers: Vec<IssueNumber> =
            task.blocked_by.iter().filter_map(|k| issues.get(k).map(|(issue, _)| issue.number)).collect();
        let text = body(repo, parent, task, &blockers);
        let made = match client.create_issue(inst, repo, &task.issue_title(), &text, &task.labels).await {
            Ok(issue) => issue,
            Err(e @ GithubError::Ambiguous { .. }) => {
                // GitHub may have made it: look for the marker before anything else.
                let mut again = existing(client, inst, repo, parent)
                    .await
                    .map_err(github(format!("looking for the issue of {}", task.key)))?;
                again.remove(&task.key).ok_or_else(|| github(format!("creating the issue of {}", task.key))(e))?
            }
            Err(e) => return Err(github(format!("creating the issue of {}", task.key))(e)),
        };
        tracing::info!(%repo, parent = parent.0, key = %task.key, issue = made.number.0, "plan task created");
        issues.insert(task.key.clone(), (made, true));
    }
    let todo: Vec<&super::Task> =
        order.iter().map(|&i| &plan.tasks[i]).filter(|t| !done.contains_key(&t.key)).collect();
    if !todo.is_empty() {
        let subs = client.sub_issues(inst, repo, parent).await.map_err(github("reading the sub-issues"))?;
        for task in &todo {
            let (issue, _) = &issues[&task.key];
            if subs.iter().any(|s| s.id == issue.id) {
                continue;
            }
            match client.add_sub_issue(inst, repo, parent, issue.id).await {
                Ok(()) => {}
                // Already a sub-issue (an answer lost before), or moved under another parent by someone:
                // either way it is left as it is.
                Err(GithubError::Unprocessable { message, .. }) => {
                    tracing::info!(%repo, issue = issue.number.0, %message, "not made a sub-issue");
                }
                Err(e) => return Err(github(format!("making #{} a sub-issue", issue.number))(e)),
            }
        }
        for task in todo.iter().filter(|t| !t.blocked_by.is_empty()) {
            let (issue, _) = &issues[&task.key];
            let have = client
                .blocked_by_issues(inst, repo, issue.number)
                .await
                .map_err(github(format!("reading what blocks #{}", issue.number)))?;
            for key in &task.blocked_by {
                let Some((blocker, _)) = issues.get(key) else { continue };
                if have.iter().any(|h| h.id == blocker.id) {
                    continue;
                }
                match client.add_blocked_by(inst, repo, issue.number, blocker.id).await {
                    Ok(()) | Err(GithubError::Unprocessable { .. }) => {}
                    Err(e) => return Err(github(format!("linking #{} to its blocker", issue.number))(e)),
                }
            }
        }
        board(client, inst, at, todo.iter().map(|t| &issues[&t.key].0)).await;
    }
    let tasks: Vec<TaskIssue> = plan
        .tasks
        .iter()
        .filter_map(|t| {
            let (issue, created) = issues.get(&t.key)?;
            Some(TaskIssue {
                key: t.key.clone(),
                number: issue.number,
                title: issue.title.clone(),
                body: issue.body.clone().unwrap_or_default(),
                labels: issue.labels.iter().map(|l| l.name.clone()).collect(),
                created: *created,
                open: issue.state.eq_ignore_ascii_case("open"),
            })
        })
        .collect();
    let all: BTreeMap<String, IssueNumber> = tasks.iter().map(|t| (t.key.clone(), t.number)).collect();
    if let Ok(text) = render::comment(repo, parent, plan, &all) {
        let marker = markers::plan(repo, parent);
        client
            .upsert_marked_comment(inst, repo, parent, &marker, &text)
            .await
            .map_err(github("recording the created issues in the plan comment"))?;
    }
    Ok(Approved { tasks })
}

/// Puts each issue on every organisation board the planned issue is on, in `at.column`. A board that
/// cannot be read or lacks the column is skipped with a warning: the issues exist either way.
async fn board<'a>(client: &Client, inst: InstallationId, at: &Approval<'_>, issues: impl Iterator<Item = &'a Issue>) {
    let cards = match client.issue_project_items(inst, at.repo, at.parent, at.status_field).await {
        Ok(cards) => cards,
        Err(e) => {
            tracing::warn!(repo = %at.repo, issue = at.parent.0, error = %e, "the planned issue's boards could not be read");
            return;
        }
    };
    let mut boards = Vec::new();
    for (_, org, number) in cards {
        match client.project(inst, &org, number, at.status_field).await {
            Ok(b) => boards.push(b),
            Err(e) => tracing::warn!(%org, number, error = %e, "board skipped"),
        }
    }
    for issue in issues {
        for b in &boards {
            let placed = async {
                let item = client.add_to_project(inst, b, &issue.node_id).await?;
                client.move_project_item(inst, b, &item, at.column).await
            };
            if let Err(e) = placed.await {
                tracing::warn!(issue = issue.number.0, board = %format!("{}/{}", b.org, b.number), error = %e, "the task's card was not placed");
            }
        }
    }
}

/// Queues every open task of `approved` as a coding job (each waits for the blockers its body names, as any
/// `Depends on #N` does), for a plan that runs itself. Returns how many were queued; a task already queued
/// or running is left as it is. `requester` approved; `delivery`, when given, keeps a replay from queueing
/// again.
pub fn queue(
    scheduler: &crate::scheduler::Scheduler,
    repo: &RepoName,
    inst: InstallationId,
    approved: &Approved,
    requester: &str,
    delivery: Option<&crate::ids::DeliveryId>,
    now: time::OffsetDateTime,
) -> Result<usize, crate::store::JobError> {
    let mut queued = 0;
    for t in approved.tasks.iter().filter(|t| t.open) {
        let request = crate::job::NewJob {
            repo: repo.clone(),
            issue: t.number,
            installation: Some(inst),
            kind: crate::job::JobKind::Code,
            title: t.title.clone(),
            body: t.body.clone(),
            labels: t.labels.clone(),
            cause: format!("plan approved by {requester}"),
            trigger: Some(crate::job::Trigger::Command),
            requester: Some(crate::ids::Login(requester.to_owned())),
            instructions: None,
            delivery: delivery.cloned(),
            // The body's `Depends on #N` names the same blockers as the "blocked by" links just made.
            blocked_by: Vec::new(),
        };
        if matches!(scheduler.enqueue(request, requester, now)?, crate::job::EnqueueOutcome::Queued(_)) {
            queued += 1;
        }
    }
    Ok(queued)
}
