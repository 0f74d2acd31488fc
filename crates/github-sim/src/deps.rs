//! Issue dependencies ("blocked by" / "blocking"), as GitHub's REST API and webhooks have them
//! (docs.github.com/rest/issues/issue-dependencies):
//!
//! - `GET /repos/{o}/{r}/issues/{n}/dependencies/blocked_by`: the issues blocking issue `n`;
//! - `POST …/dependencies/blocked_by` with `{"issue_id"}` (the blocker's database id, not its
//!   number; it may live in another repository): 201 with the blocked issue;
//! - `DELETE …/dependencies/blocked_by/{issue_id}`: 200 with the blocked issue;
//! - `GET …/dependencies/blocking`: the issues issue `n` blocks.
//!
//! A change emits `issue_dependencies` twice, as GitHub does, once from each side:
//! `blocked_by_added`/`blocked_by_removed` on the blocked issue's repository (with
//! `blocking_issue_repo`), then `blocking_added`/`blocking_removed` on the blocker's repository
//! (with `blocked_issue_repo`). Neither changes either issue's `updated_at`.
//!
//! Also here: merging a pull request (the control API's `merge`), which closes the issues its body
//! names with a closing keyword, so a merged pull request unblocks what its issue blocked.

use serde_json::{Map, Value, json};

use crate::hooks::emit;
use crate::server::{Inner, Resp};
use crate::world::{Issue, Repo, World, ts};

/// GitHub's limit on the issues one issue can be blocked by (and can block).
pub const MAX_DEPENDENCIES: usize = 50;

/// One "blocked by" relationship, by database ids (`Issue::id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Dependency {
    /// The blocked issue's id.
    pub blocked: u64,
    /// The blocking issue's id.
    pub blocking: u64,
}

/// Where an issue lives: `(repository full name, number)`.
pub(crate) fn locate(w: &World, id: u64) -> Option<(String, u64)> {
    w.repos.values().find_map(|r| r.issues.values().find(|i| i.id == id).map(|i| (r.full_name(), i.number)))
}

fn issue_by_id(w: &World, id: u64) -> Option<&Issue> {
    w.repos.values().find_map(|r| r.issues.values().find(|i| i.id == id))
}

/// `issue_dependencies_summary` of an issue: `blocked_by`/`blocking` count the open issues on the
/// other side, `total_*` every issue.
pub(crate) fn summary(w: &World, id: u64) -> Value {
    let open = |other: u64| issue_by_id(w, other).is_some_and(|i| i.state == "open");
    let by: Vec<u64> = w.dependencies.iter().filter(|d| d.blocked == id).map(|d| d.blocking).collect();
    let blocking: Vec<u64> = w.dependencies.iter().filter(|d| d.blocking == id).map(|d| d.blocked).collect();
    json!({
        "blocked_by": by.iter().filter(|x| open(**x)).count(),
        "total_blocked_by": by.len(),
        "blocking": blocking.iter().filter(|x| open(**x)).count(),
        "total_blocking": blocking.len(),
    })
}

/// An issue as REST answers it: the webhook shape plus `issue_dependencies_summary`,
/// `sub_issues_summary` and `parent_issue_url` (issues only; the octokit schemas of `issues` webhooks
/// predate these fields, so webhooks leave them out, except `issue_dependencies` and `sub_issues`, whose
/// schema is REST's `issue`).
pub(crate) fn rest_issue_json(w: &World, repo: &Repo, issue: &Issue) -> Value {
    let mut v = w.issue_json(repo, issue);
    if issue.pull.is_none() {
        v["issue_dependencies_summary"] = summary(w, issue.id);
        v["sub_issues_summary"] = crate::subs::summary(w, issue.id);
        if let Some((pf, pn)) = crate::subs::parent_of(w, issue.id).and_then(|p| crate::subs::find(w, p)) {
            v["parent_issue_url"] = serde_json::json!(format!("{}/repos/{pf}/issues/{pn}", w.base_url));
        }
    }
    v
}

/// The REST JSON of issue `id`, wherever it lives.
fn issue_json_by_id(w: &World, id: u64) -> Option<Value> {
    let (full, number) = locate(w, id)?;
    let repo = &w.repos[&full];
    Some(rest_issue_json(w, repo, &repo.issues[&number]))
}

/// The issues blocking (`blocked_by`) or blocked by (`blocking`) issue `number` of `full`, as
/// REST issue objects, oldest link first.
pub(crate) fn list(inner: &Inner, full: &str, number: u64, blocked_by: bool) -> Result<Vec<Value>, Resp> {
    let w = inner.world();
    let id = w.repos.get(full).and_then(|r| r.issues.get(&number)).ok_or_else(Resp::not_found)?.id;
    Ok(w.dependencies
        .iter()
        .filter_map(|d| match blocked_by {
            true if d.blocked == id => Some(d.blocking),
            false if d.blocking == id => Some(d.blocked),
            _ => None,
        })
        .filter_map(|other| issue_json_by_id(&w, other))
        .collect())
}

/// Marks issue `number` of `full` as blocked by the issue with database id `blocking`, as `user`;
/// emits `issue_dependencies` `blocked_by_added` and `blocking_added`. Returns the blocked issue.
///
/// Errors: 404 when issue `number` does not exist; 422 when `blocking` names no issue, the issue
/// itself, a pull request, an existing link, or when either side already has
/// [`MAX_DEPENDENCIES`].
pub(crate) fn add(inner: &Inner, full: &str, number: u64, blocking: u64, user: &str) -> Result<Value, Resp> {
    let mut w = inner.world();
    let blocked = w.repos.get(full).and_then(|r| r.issues.get(&number)).ok_or_else(Resp::not_found)?.clone();
    let invalid = || Resp::validation("IssueDependency", "issue_id", "invalid");
    let blocker = issue_by_id(&w, blocking).cloned().ok_or_else(invalid)?;
    if blocker.id == blocked.id || blocker.pull.is_some() || blocked.pull.is_some() {
        return Err(invalid());
    }
    let link = Dependency { blocked: blocked.id, blocking };
    if w.dependencies.contains(&link) {
        return Err(Resp::validation("IssueDependency", "issue_id", "already_exists"));
    }
    let count_by = w.dependencies.iter().filter(|d| d.blocked == blocked.id).count();
    let count_blocking = w.dependencies.iter().filter(|d| d.blocking == blocking).count();
    if count_by >= MAX_DEPENDENCIES || count_blocking >= MAX_DEPENDENCIES {
        return Err(Resp::json(
            422,
            json!({"message": format!("An issue can be blocked by at most {MAX_DEPENDENCIES} issues."),
                   "documentation_url": crate::server::DOCS, "status": "422"}),
        ));
    }
    w.dependencies.push(link);
    announce(inner, &mut w, link, true, user);
    Ok(issue_json_by_id(&w, blocked.id).expect("the blocked issue exists"))
}

/// Removes the "blocked by" link from issue `number` of `full` to the issue with database id
/// `blocking`, as `user`; emits `blocked_by_removed` and `blocking_removed`. Returns the blocked
/// issue. 404 when the issue or the link does not exist.
pub(crate) fn remove(inner: &Inner, full: &str, number: u64, blocking: u64, user: &str) -> Result<Value, Resp> {
    let mut w = inner.world();
    let blocked = w.repos.get(full).and_then(|r| r.issues.get(&number)).ok_or_else(Resp::not_found)?.id;
    let link = Dependency { blocked, blocking };
    let at = w.dependencies.iter().position(|d| *d == link).ok_or_else(Resp::not_found)?;
    w.dependencies.remove(at);
    announce(inner, &mut w, link, false, user);
    Ok(issue_json_by_id(&w, blocked).expect("the blocked issue exists"))
}

/// Emits the two `issue_dependencies` deliveries of one added or removed link.
fn announce(inner: &Inner, w: &mut World, link: Dependency, added: bool, user: &str) {
    let (Some((blocked_repo, _)), Some((blocking_repo, _))) = (locate(w, link.blocked), locate(w, link.blocking))
    else {
        return;
    };
    let blocked_issue = issue_json_by_id(w, link.blocked).unwrap_or(Value::Null);
    let blocking_issue = issue_json_by_id(w, link.blocking).unwrap_or(Value::Null);
    let repo_json = |w: &World, full: &str| w.repo_json(&w.repos[full]);
    let verb = if added { "added" } else { "removed" };
    let mut body = Map::new();
    body.insert("blocked_issue_id".into(), json!(link.blocked));
    body.insert("blocked_issue".into(), blocked_issue.clone());
    body.insert("blocking_issue_id".into(), json!(link.blocking));
    body.insert("blocking_issue".into(), blocking_issue.clone());
    let mut by = body.clone();
    by.insert("blocking_issue_repo".into(), repo_json(w, &blocking_repo));
    emit(inner, w, "issue_dependencies", &format!("blocked_by_{verb}"), Some(&blocked_repo), None, user, by);
    let mut blocking = body;
    blocking.insert("blocked_issue_repo".into(), repo_json(w, &blocked_repo));
    emit(inner, w, "issue_dependencies", &format!("blocking_{verb}"), Some(&blocking_repo), None, user, blocking);
}

/// Merges pull request `number` of `full` as `user`: marks it merged and closed (emitting
/// `pull_request.closed` with `merged: true`), then closes, as `user`, each open issue of the same
/// repository its body names with a closing keyword (`Closes #N`, `Fixes #N`, `Resolves #N`, any
/// case), as GitHub does on a merge into the default branch. 404 when it is not an open pull request.
pub(crate) fn merge(inner: &Inner, full: &str, number: u64, user: &str) -> Result<Value, Resp> {
    let closes = {
        let mut w = inner.world();
        let issue = w
            .repos
            .get_mut(full)
            .and_then(|r| r.issues.get_mut(&number))
            .filter(|i| i.state == "open")
            .ok_or_else(Resp::not_found)?;
        let pull = issue.pull.as_mut().ok_or_else(Resp::not_found)?;
        pull.merged = true;
        issue.body.as_deref().map(closing_references).unwrap_or_default()
    };
    crate::ops::update_issue(inner, full, number, None, None, Some("closed"), None, user)?;
    for n in closes {
        let open = inner.world().repos[full].issues.get(&n).is_some_and(|i| i.state == "open" && i.pull.is_none());
        if open {
            crate::ops::update_issue(inner, full, n, None, None, Some("closed"), Some("completed"), user)?;
        }
    }
    let w = inner.world();
    let repo = &w.repos[full];
    let mut v = w.pull_json(repo, &repo.issues[&number]);
    v["merged_at"] = json!(ts(time::OffsetDateTime::now_utc()));
    Ok(v)
}

/// The issue numbers a pull request body closes: `close(s|d)`, `fix(es|ed)`, `resolve(s|d)`
/// followed by `#N`, case-insensitive.
pub fn closing_references(body: &str) -> Vec<u64> {
    const KEYWORDS: [&str; 9] =
        ["close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved"];
    let words: Vec<&str> = body.split_whitespace().collect();
    let mut out = Vec::new();
    for pair in words.windows(2) {
        let kw = pair[0].trim_end_matches(':').to_ascii_lowercase();
        if !KEYWORDS.contains(&kw.as_str()) {
            continue;
        }
        let digits: String =
            pair[1].strip_prefix('#').unwrap_or_default().chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::closing_references;

    #[test]
    fn closing_keywords_name_issues() {
        assert_eq!(closing_references("Closes #3\n\nfixes: #4, see #5"), vec![3, 4]);
        assert_eq!(closing_references("Resolved #7."), vec![7]);
        assert!(closing_references("mentions #3").is_empty());
    }
}
