//! Sub-issues, as GitHub's REST API and webhooks have them ("REST API endpoints for sub-issues",
//! docs.github.com):
//!
//! - `GET /repos/{o}/{r}/issues/{n}/sub_issues`: issue `n`'s sub-issues in priority order (paginated);
//! - `POST …/sub_issues` with `{"sub_issue_id", "replace_parent"?}` (the sub-issue's database id, not its
//!   number): 201 with the sub-issue; 422 when it is the issue itself, already a sub-issue of it, has another
//!   parent (without `replace_parent`), belongs to another owner, would make a cycle, or the parent has 100;
//! - `DELETE …/sub_issue` with `{"sub_issue_id"}`: 200 with the sub-issue; 404 when it is not one;
//! - `PATCH …/sub_issues/priority` with `{"sub_issue_id", "after_id" | "before_id"}`: 200 with the parent.
//!
//! Each change emits `sub_issues` webhooks, `sub_issue_added`/`sub_issue_removed` on the parent's
//! repository and `parent_issue_added`/`parent_issue_removed` on the sub-issue's, each with both issues;
//! issues carry `sub_issues_summary` (`total`, `completed`: closed ones, `percent_completed`).

use serde::Serialize;
use serde_json::{Map, Value, json};

use axum::http::Method;

use crate::hooks::emit;
use crate::server::{Inner, Req, Resp, paginate};
use crate::world::World;

/// The most sub-issues one issue may have (GitHub's limit).
pub const MAX_SUB_ISSUES: usize = 100;

type R = Result<Resp, Resp>;

/// One parent–sub-issue link, by database ids. The order of `World::sub_issues` is the priority order.
#[derive(Debug, Clone, Serialize)]
pub struct SubIssue {
    /// The parent's database id.
    pub parent: u64,
    /// The sub-issue's database id.
    pub child: u64,
}

/// The repository full name and number of the issue with database id `id`.
pub(crate) fn find(w: &World, id: u64) -> Option<(String, u64)> {
    w.repos.values().find_map(|r| r.issues.values().find(|i| i.id == id).map(|i| (r.full_name(), i.number)))
}

fn id_of(w: &World, full: &str, number: u64) -> Result<u64, Resp> {
    let repo = w.repos.get(full).ok_or_else(Resp::not_found)?;
    repo.issues.get(&number).filter(|i| i.pull.is_none()).map(|i| i.id).ok_or_else(Resp::not_found)
}

fn issue_json(w: &World, id: u64) -> Value {
    match find(w, id) {
        Some((full, number)) => {
            let repo = &w.repos[&full];
            w.issue_json(repo, &repo.issues[&number])
        }
        None => Value::Null,
    }
}

/// `sub_issues_summary` of the issue with database id `id`.
pub(crate) fn summary(w: &World, id: u64) -> Value {
    let children: Vec<u64> = w.sub_issues.iter().filter(|l| l.parent == id).map(|l| l.child).collect();
    let completed = children
        .iter()
        .filter(|c| {
            find(w, **c).is_some_and(|(full, n)| w.repos[&full].issues.get(&n).is_some_and(|i| i.state == "closed"))
        })
        .count();
    let total = children.len();
    let percent = (completed * 100).checked_div(total).unwrap_or(0);
    json!({"total": total, "completed": completed, "percent_completed": percent})
}

/// The sub-issues of `full#number`, as issue JSON, in priority order.
pub(crate) fn list(inner: &Inner, full: &str, number: u64) -> Result<Vec<Value>, Resp> {
    let w = inner.world();
    let id = id_of(&w, full, number)?;
    Ok(w.sub_issues.iter().filter(|l| l.parent == id).map(|l| issue_json(&w, l.child)).collect())
}

/// The parent of the issue with database id `id`, if it has one.
pub(crate) fn parent_of(w: &World, id: u64) -> Option<u64> {
    w.sub_issues.iter().find(|l| l.child == id).map(|l| l.parent)
}

fn unprocessable(message: &str) -> Resp {
    Resp::error(422, message)
}

/// Makes the issue with database id `child` a sub-issue of `full#number` as `user` (see the module's
/// rules); emits the webhooks. Returns the sub-issue.
pub(crate) fn add(
    inner: &Inner,
    full: &str,
    number: u64,
    child: u64,
    replace_parent: bool,
    user: &str,
) -> Result<Value, Resp> {
    let mut w = inner.world();
    let parent = id_of(&w, full, number)?;
    let (child_repo, _) = find(&w, child).ok_or_else(|| unprocessable("Validation Failed: sub_issue_id not found"))?;
    if child == parent {
        return Err(unprocessable("An issue cannot be a sub-issue of itself"));
    }
    if child_repo.split('/').next() != full.split('/').next() {
        return Err(unprocessable("The sub-issue must belong to the same repository owner as the parent issue"));
    }
    if w.sub_issues.iter().any(|l| l.parent == parent && l.child == child) {
        return Err(unprocessable("The issue is already a sub-issue of this issue"));
    }
    // The new parent may not be the child itself or below it.
    let mut up = Some(parent);
    while let Some(at) = up {
        if at == child {
            return Err(unprocessable("Adding this sub-issue would create a cycle"));
        }
        up = parent_of(&w, at);
    }
    if w.sub_issues.iter().filter(|l| l.parent == parent).count() >= MAX_SUB_ISSUES {
        return Err(unprocessable("An issue may have at most 100 sub-issues"));
    }
    if let Some(old) = parent_of(&w, child) {
        if !replace_parent {
            return Err(unprocessable("The issue already has a parent issue; pass replace_parent to move it"));
        }
        w.sub_issues.retain(|l| l.child != child);
        notify(inner, &mut w, old, child, "removed", user);
    }
    w.sub_issues.push(SubIssue { parent, child });
    notify(inner, &mut w, parent, child, "added", user);
    Ok(issue_json(&w, child))
}

/// Removes the sub-issue with database id `child` from `full#number` as `user`; emits the webhooks.
/// Returns the sub-issue. 404 when it is not a sub-issue of it.
pub(crate) fn remove(inner: &Inner, full: &str, number: u64, child: u64, user: &str) -> Result<Value, Resp> {
    let mut w = inner.world();
    let parent = id_of(&w, full, number)?;
    let before = w.sub_issues.len();
    w.sub_issues.retain(|l| !(l.parent == parent && l.child == child));
    if w.sub_issues.len() == before {
        return Err(Resp::not_found());
    }
    notify(inner, &mut w, parent, child, "removed", user);
    Ok(issue_json(&w, child))
}

/// Moves sub-issue `child` of `full#number` to just after `after` or just before `before` (both sub-issues
/// of it). Returns the parent. Emits nothing, as GitHub does not.
pub(crate) fn reprioritize(
    inner: &Inner,
    full: &str,
    number: u64,
    child: u64,
    after: Option<u64>,
    before: Option<u64>,
) -> Result<Value, Resp> {
    let mut w = inner.world();
    let parent = id_of(&w, full, number)?;
    let is_sub = |w: &World, id: u64| w.sub_issues.iter().any(|l| l.parent == parent && l.child == id);
    if !is_sub(&w, child) {
        return Err(Resp::not_found());
    }
    let anchor = match (after, before) {
        (Some(a), None) => a,
        (None, Some(b)) => b,
        _ => return Err(unprocessable("Specify either after_id or before_id")),
    };
    if anchor == child || !is_sub(&w, anchor) {
        return Err(unprocessable("The anchor must be another sub-issue of this issue"));
    }
    w.sub_issues.retain(|l| !(l.parent == parent && l.child == child));
    let at = w.sub_issues.iter().position(|l| l.parent == parent && l.child == anchor).unwrap_or(0);
    let at = if after.is_some() { at + 1 } else { at };
    w.sub_issues.insert(at, SubIssue { parent, child });
    Ok(issue_json(&w, parent))
}

/// Emits `sub_issue_{verb}` on the parent's repository and `parent_issue_{verb}` on the sub-issue's.
fn notify(inner: &Inner, w: &mut World, parent: u64, child: u64, verb: &str, user: &str) {
    let (Some((parent_repo, _)), Some((child_repo, _))) = (find(w, parent), find(w, child)) else { return };
    let parent_json = issue_json(w, parent);
    let child_json = issue_json(w, child);
    let repo_json = |w: &World, full: &str| w.repos.get(full).map(|r| w.repo_json(r)).unwrap_or(Value::Null);
    let mut body = Map::new();
    body.insert("parent_issue_id".into(), json!(parent));
    body.insert("parent_issue".into(), parent_json.clone());
    body.insert("sub_issue_id".into(), json!(child));
    body.insert("sub_issue".into(), child_json.clone());
    body.insert("sub_issue_repo".into(), repo_json(w, &child_repo));
    emit(inner, w, "sub_issues", &format!("sub_issue_{verb}"), Some(&parent_repo), None, user, body);
    let mut body = Map::new();
    body.insert("sub_issue_id".into(), json!(child));
    body.insert("sub_issue".into(), child_json);
    body.insert("parent_issue_id".into(), json!(parent));
    body.insert("parent_issue".into(), parent_json);
    body.insert("parent_issue_repo".into(), repo_json(w, &parent_repo));
    emit(inner, w, "sub_issues", &format!("parent_issue_{verb}"), Some(&child_repo), None, user, body);
}

/// The REST routes under `/repos/{o}/{r}/issues/{n}/`: `what` is `sub_issues` or `sub_issue`, `tail` what
/// follows it. `full` is the repository the caller may reach (checked by the caller); `user` acts.
pub(crate) fn route(inner: &Inner, req: &Req, full: &str, number: u64, what: &str, tail: &[&str], user: &str) -> R {
    let id = |b: &Value, k: &str| b[k].as_u64().ok_or_else(|| Resp::validation("SubIssue", k, "missing_field"));
    let m = &req.method;
    match (what, tail) {
        ("sub_issues", []) if m == Method::GET => {
            let list = list(inner, full, number)?;
            Ok(paginate(inner, req, list))
        }
        ("sub_issues", []) if m == Method::POST => {
            let b = req.json()?;
            let v =
                add(inner, full, number, id(&b, "sub_issue_id")?, b["replace_parent"].as_bool() == Some(true), user)?;
            let location = format!("{}/repos/{full}/issues/{number}/sub_issues", inner.world().base_url);
            Ok(Resp::json(201, v).header("location", location))
        }
        ("sub_issue", []) if m == Method::DELETE => {
            let b = req.json()?;
            Ok(Resp::ok(remove(inner, full, number, id(&b, "sub_issue_id")?, user)?))
        }
        ("sub_issues", ["priority"]) if m == Method::PATCH => {
            let b = req.json()?;
            let child = id(&b, "sub_issue_id")?;
            Ok(Resp::ok(reprioritize(inner, full, number, child, b["after_id"].as_u64(), b["before_id"].as_u64())?))
        }
        _ => Err(Resp::not_found()),
    }
}
