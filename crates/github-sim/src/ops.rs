//! Changes to the world, shared by the control API, REST and GraphQL. Each one emits the
//! webhook GitHub would send for it, with the acting account as `sender`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::hooks::emit;
use crate::server::{Inner, Resp};
use crate::world::{
    Comment, Issue, Label, Permission, Project, ProjectItem, Pull, Reaction, Repo, Review, ReviewComment, SelectOption,
    User, World, node_id, ts,
};

fn now() -> String {
    ts(OffsetDateTime::now_utc())
}

fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Registers a user or bot with a permission on every repository. Re-registering updates it.
pub(crate) fn create_user(inner: &Inner, login: &str, permission: Permission, kind: &str) -> Value {
    let mut w = inner.world();
    let id = match w.users.get(login) {
        Some(u) => u.id,
        None => w.id(),
    };
    w.users.insert(login.into(), User { id, login: login.into(), kind: kind.into(), permission });
    w.user_json(login)
}

/// Creates a repository: a bare git repository with `files` committed on `main`.
pub(crate) fn create_repo(
    inner: &Inner,
    owner: &str,
    name: &str,
    files: &BTreeMap<String, String>,
) -> Result<Value, Resp> {
    let full = format!("{owner}/{name}");
    if inner.world().repos.contains_key(&full) {
        return Err(Resp::validation("Repository", "name", "already_exists"));
    }
    let git_dir = inner.repos_dir.join(owner).join(format!("{name}.git"));
    crate::git::init_repo(&git_dir, files).map_err(|e| {
        tracing::error!(error = %e, "creating repository");
        Resp::error(500, "could not create the git repository")
    })?;
    let mut w = inner.world();
    w.account(owner);
    w.installation_for(owner);
    let id = w.id();
    let repo = Repo {
        id,
        node_id: node_id("R", id),
        owner: owner.into(),
        name: name.into(),
        default_branch: "main".into(),
        protected: false,
        created_at: now(),
        git_dir,
        issues: BTreeMap::new(),
        labels: BTreeMap::new(),
        check_runs: BTreeMap::new(),
    };
    let v = w.repo_json(&repo);
    w.repos.insert(full, repo);
    Ok(v)
}

fn next_number(repo: &Repo) -> u64 {
    repo.issues.keys().next_back().copied().unwrap_or(0) + 1
}

fn repo_mut<'a>(w: &'a mut World, full: &str) -> Result<&'a mut Repo, Resp> {
    w.repos.get_mut(full).ok_or_else(Resp::not_found)
}

/// Opens an issue; emits `issues.opened`. Returns the issue.
pub(crate) fn create_issue(
    inner: &Inner,
    full: &str,
    title: &str,
    body: Option<&str>,
    user: &str,
    labels: &[String],
) -> Result<Issue, Resp> {
    let mut w = inner.world();
    let id = w.id();
    for l in labels {
        ensure_label(&mut w, full, l)?;
    }
    let repo = repo_mut(&mut w, full)?;
    let number = next_number(repo);
    let t = now();
    let issue = Issue {
        id,
        node_id: node_id("I", id),
        number,
        title: title.into(),
        body: body.map(str::to_string),
        user: user.into(),
        state: "open".into(),
        state_reason: None,
        labels: labels.to_vec(),
        created_at: t.clone(),
        updated_at: t,
        closed_at: None,
        reactions: Vec::new(),
        pull: None,
    };
    repo.issues.insert(number, issue.clone());
    let r = w.repos[full].clone();
    let payload = obj(vec![("issue", w.issue_json(&r, &issue))]);
    emit(inner, &mut w, "issues", "opened", Some(full), None, user, payload);
    Ok(issue)
}

/// The label, created with GitHub's default colour when the repository lacks it.
pub(crate) fn ensure_label(w: &mut World, full: &str, name: &str) -> Result<Label, Resp> {
    if let Some(l) = w.repos.get(full).ok_or_else(Resp::not_found)?.labels.get(name) {
        return Ok(l.clone());
    }
    let id = w.id();
    let l = Label { id, node_id: node_id("LA", id), name: name.into(), color: "ededed".into(), description: None };
    repo_mut(w, full)?.labels.insert(name.into(), l.clone());
    Ok(l)
}

/// Creates a label; 422 `already_exists` when present.
pub(crate) fn create_label(
    inner: &Inner,
    full: &str,
    name: &str,
    color: Option<&str>,
    description: Option<&str>,
) -> Result<Value, Resp> {
    let mut w = inner.world();
    if repo_mut(&mut w, full)?.labels.contains_key(name) {
        return Err(Resp::validation("Label", "name", "already_exists"));
    }
    ensure_label(&mut w, full, name)?;
    let repo = repo_mut(&mut w, full)?;
    let l = repo.labels.get_mut(name).expect("just made");
    if let Some(c) = color {
        l.color = c.trim_start_matches('#').into();
    }
    l.description = description.map(str::to_string);
    let r = w.repos[full].clone();
    Ok(w.label_json(&r, name))
}

fn issue_event(issue: &Issue) -> &'static str {
    if issue.pull.is_some() { "pull_request" } else { "issues" }
}

fn issue_payload(w: &World, r: &Repo, issue: &Issue) -> (&'static str, Value) {
    if issue.pull.is_some() { ("pull_request", w.pull_json(r, issue)) } else { ("issue", w.issue_json(r, issue)) }
}

/// Adds labels to an issue or pull request; emits `issues.labeled` / `pull_request.labeled` for
/// each label newly added. Returns the issue's labels.
pub(crate) fn add_labels(
    inner: &Inner,
    full: &str,
    number: u64,
    labels: &[String],
    user: &str,
) -> Result<Vec<Value>, Resp> {
    let mut w = inner.world();
    for name in labels {
        let label = ensure_label(&mut w, full, name)?;
        let repo = repo_mut(&mut w, full)?;
        let issue = repo.issues.get_mut(&number).ok_or_else(Resp::not_found)?;
        if issue.labels.contains(name) {
            continue;
        }
        issue.labels.push(name.clone());
        issue.updated_at = now();
        let issue = issue.clone();
        let r = w.repos[full].clone();
        let (key, v) = issue_payload(&w, &r, &issue);
        let lj = w.label_json(&r, &label.name);
        let payload = if key == "pull_request" {
            obj(vec![("number", json!(number)), (key, v), ("label", lj)])
        } else {
            obj(vec![(key, v), ("label", lj)])
        };
        emit(inner, &mut w, issue_event(&issue), "labeled", Some(full), None, user, payload);
    }
    let r = w.repos[full].clone();
    let issue = &r.issues[&number];
    Ok(issue.labels.iter().map(|l| w.label_json(&r, l)).collect())
}

/// Removes a label; emits `issues.unlabeled`. 404 `Label does not exist` when it is not on the issue.
pub(crate) fn remove_label(inner: &Inner, full: &str, number: u64, name: &str, user: &str) -> Result<Vec<Value>, Resp> {
    let mut w = inner.world();
    let repo = repo_mut(&mut w, full)?;
    let issue = repo.issues.get_mut(&number).ok_or_else(Resp::not_found)?;
    let Some(pos) = issue.labels.iter().position(|l| l == name) else {
        return Err(Resp::error(404, "Label does not exist"));
    };
    issue.labels.remove(pos);
    issue.updated_at = now();
    let issue = issue.clone();
    let r = w.repos[full].clone();
    let lj = w.label_json(&r, name);
    let (key, v) = issue_payload(&w, &r, &issue);
    let payload = if key == "pull_request" {
        obj(vec![("number", json!(number)), (key, v), ("label", lj)])
    } else {
        obj(vec![(key, v), ("label", lj)])
    };
    emit(inner, &mut w, issue_event(&issue), "unlabeled", Some(full), None, user, payload);
    Ok(issue.labels.iter().map(|l| w.label_json(&r, l)).collect())
}

/// Writes a comment; emits `issue_comment.created`.
pub(crate) fn create_comment(
    inner: &Inner,
    full: &str,
    number: u64,
    body: &str,
    user: &str,
    via_app: bool,
) -> Result<Value, Resp> {
    let mut w = inner.world();
    let id = w.id();
    let t = now();
    let c = Comment {
        id,
        node_id: node_id("IC", id),
        repo: full.into(),
        issue: number,
        user: user.into(),
        body: body.into(),
        created_at: t.clone(),
        updated_at: t,
        reactions: Vec::new(),
        via_app,
    };
    let repo = repo_mut(&mut w, full)?;
    repo.issues.get(&number).ok_or_else(Resp::not_found)?;
    w.comments.insert(id, c.clone());
    let r = w.repos[full].clone();
    let cj = w.comment_json(&r, &c);
    let issue = r.issues[&number].clone();
    let payload = obj(vec![("issue", w.issue_json(&r, &issue)), ("comment", cj.clone())]);
    emit(inner, &mut w, "issue_comment", "created", Some(full), None, user, payload);
    Ok(cj)
}

/// Edits a comment; emits `issue_comment.edited` with `changes.body.from`.
pub(crate) fn update_comment(inner: &Inner, full: &str, id: u64, body: &str, user: &str) -> Result<Value, Resp> {
    let mut w = inner.world();
    let c = w.comments.get_mut(&id).filter(|c| c.repo == full).ok_or_else(Resp::not_found)?;
    let from = std::mem::replace(&mut c.body, body.into());
    c.updated_at = now();
    let c = c.clone();
    let r = w.repos.get(full).ok_or_else(Resp::not_found)?.clone();
    let cj = w.comment_json(&r, &c);
    let issue = r.issues[&c.issue].clone();
    let payload = obj(vec![
        ("changes", json!({"body": {"from": from}})),
        ("issue", w.issue_json(&r, &issue)),
        ("comment", cj.clone()),
    ]);
    emit(inner, &mut w, "issue_comment", "edited", Some(full), None, user, payload);
    Ok(cj)
}

/// Deletes a comment; emits `issue_comment.deleted`.
pub(crate) fn delete_comment(inner: &Inner, full: &str, id: u64, user: &str) -> Result<(), Resp> {
    let mut w = inner.world();
    if w.comments.get(&id).is_none_or(|c| c.repo != full) {
        return Err(Resp::not_found());
    }
    let c = w.comments.remove(&id).expect("present");
    let r = w.repos.get(full).ok_or_else(Resp::not_found)?.clone();
    let issue = r.issues[&c.issue].clone();
    let payload = obj(vec![("issue", w.issue_json(&r, &issue)), ("comment", w.comment_json(&r, &c))]);
    emit(inner, &mut w, "issue_comment", "deleted", Some(full), None, user, payload);
    Ok(())
}

/// Adds a reaction to an issue (`comment == None`) or a comment. GitHub sends no webhook for
/// reactions. Returns the reaction and whether it already existed (200 vs 201).
pub(crate) fn add_reaction(
    inner: &Inner,
    full: &str,
    issue: Option<u64>,
    comment: Option<u64>,
    content: &str,
    user: &str,
) -> Result<(Value, bool), Resp> {
    const CONTENTS: [&str; 8] = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];
    if !CONTENTS.contains(&content) {
        return Err(Resp::validation("Reaction", "content", "invalid"));
    }
    let mut w = inner.world();
    let id = w.id();
    let list = match (issue, comment) {
        (Some(n), _) => &mut repo_mut(&mut w, full)?.issues.get_mut(&n).ok_or_else(Resp::not_found)?.reactions,
        (None, Some(c)) => {
            &mut w.comments.get_mut(&c).filter(|c| c.repo == full).ok_or_else(Resp::not_found)?.reactions
        }
        (None, None) => return Err(Resp::not_found()),
    };
    let existing = list.iter().find(|r| r.user == user && r.content == content).cloned();
    let (r, existed) = match existing {
        Some(r) => (r, true),
        None => {
            let r = Reaction { id, user: user.into(), content: content.into(), created_at: now() };
            list.push(r.clone());
            (r, false)
        }
    };
    let v = json!({"id": r.id, "node_id": node_id("REA", r.id), "user": w.user_json(&r.user), "content": r.content, "created_at": r.created_at});
    Ok((v, existed))
}

/// Edits an issue's title, body and state; emits `issues.edited` (with `changes`),
/// `issues.closed` or `issues.reopened` (or the `pull_request` equivalents).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_issue(
    inner: &Inner,
    full: &str,
    number: u64,
    title: Option<&str>,
    body: Option<Option<&str>>,
    state: Option<&str>,
    state_reason: Option<&str>,
    user: &str,
) -> Result<Issue, Resp> {
    let mut w = inner.world();
    let repo = repo_mut(&mut w, full)?;
    let issue = repo.issues.get_mut(&number).ok_or_else(Resp::not_found)?;
    let mut changes = Map::new();
    if let Some(t) = title.filter(|t| *t != issue.title) {
        changes.insert("title".into(), json!({"from": issue.title}));
        issue.title = t.into();
    }
    if let Some(b) = body.filter(|b| b.map(str::to_string) != issue.body) {
        changes.insert("body".into(), json!({"from": issue.body.clone().unwrap_or_default()}));
        issue.body = b.map(str::to_string);
    }
    let mut state_action = None;
    if let Some(s) = state.filter(|s| *s != issue.state) {
        match s {
            "closed" => {
                issue.state = "closed".into();
                issue.closed_at = Some(now());
                issue.state_reason = Some(state_reason.unwrap_or("completed").into());
                state_action = Some("closed");
            }
            "open" => {
                issue.state = "open".into();
                issue.closed_at = None;
                issue.state_reason = Some("reopened".into());
                state_action = Some("reopened");
            }
            _ => return Err(Resp::validation("Issue", "state", "invalid")),
        }
    }
    if !changes.is_empty() || state_action.is_some() {
        issue.updated_at = now();
    }
    let issue = issue.clone();
    let r = w.repos[full].clone();
    let event = issue_event(&issue);
    if !changes.is_empty() {
        let (key, v) = issue_payload(&w, &r, &issue);
        let mut p = obj(vec![("changes", Value::Object(changes)), (key, v)]);
        if key == "pull_request" {
            p.insert("number".into(), json!(number));
        }
        emit(inner, &mut w, event, "edited", Some(full), None, user, p);
    }
    if let Some(a) = state_action {
        let (key, v) = issue_payload(&w, &r, &issue);
        let mut p = obj(vec![(key, v)]);
        if key == "pull_request" {
            p.insert("number".into(), json!(number));
        }
        emit(inner, &mut w, event, a, Some(full), None, user, p);
    }
    Ok(issue)
}

/// Opens a pull request from `head` into `base` (both branches of the repository);
/// emits `pull_request.opened`. 422 when a branch is missing or an open one already exists.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_pull(
    inner: &Inner,
    full: &str,
    head: &str,
    base: &str,
    title: &str,
    body: Option<&str>,
    draft: bool,
    user: &str,
) -> Result<Value, Resp> {
    let git_dir = inner.world().repos.get(full).ok_or_else(Resp::not_found)?.git_dir.clone();
    let head_branch = head.rsplit(':').next().unwrap_or(head);
    let Some(head_sha) = crate::git::rev_parse(&git_dir, &format!("refs/heads/{head_branch}")) else {
        return Err(Resp::validation("PullRequest", "head", "invalid"));
    };
    let Some(base_sha) = crate::git::rev_parse(&git_dir, &format!("refs/heads/{base}")) else {
        return Err(Resp::validation("PullRequest", "base", "invalid"));
    };
    let commits = crate::git::commits_between(&git_dir, &base_sha, &head_sha);
    if commits.is_empty() {
        return Err(Resp::json(
            422,
            json!({"message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head_branch}")}],
            "documentation_url": crate::server::DOCS, "status": "422"}),
        ));
    }
    let mut w = inner.world();
    let dup = w.repos[full]
        .issues
        .values()
        .any(|i| i.state == "open" && i.pull.as_ref().is_some_and(|p| p.head == head_branch && p.base == base));
    if dup {
        return Err(Resp::json(
            422,
            json!({"message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head_branch}.", w.repos[full].owner)}],
            "documentation_url": crate::server::DOCS, "status": "422"}),
        ));
    }
    let id = w.id();
    let pid = w.id();
    let repo = repo_mut(&mut w, full)?;
    let number = next_number(repo);
    let t = now();
    let issue = Issue {
        id,
        node_id: node_id("I", id),
        number,
        title: title.into(),
        body: body.map(str::to_string),
        user: user.into(),
        state: "open".into(),
        state_reason: None,
        labels: Vec::new(),
        created_at: t.clone(),
        updated_at: t,
        closed_at: None,
        reactions: Vec::new(),
        pull: Some(Pull {
            id: pid,
            node_id: node_id("PR", pid),
            head: head_branch.into(),
            base: base.into(),
            draft,
            merged: false,
            reviews: Vec::new(),
            requested_reviewers: Vec::new(),
            commits,
            head_sha,
            base_sha,
        }),
    };
    repo.issues.insert(number, issue.clone());
    let r = w.repos[full].clone();
    let pj = w.pull_json(&r, &issue);
    emit(
        inner,
        &mut w,
        "pull_request",
        "opened",
        Some(full),
        None,
        user,
        obj(vec![("number", json!(number)), ("pull_request", pj.clone())]),
    );
    Ok(pj)
}

/// Refreshes a pull request's head and commits from git (after a push).
pub(crate) fn refresh_pull(inner: &Inner, full: &str, number: u64) {
    let Some((git_dir, head, base)) = inner.world().repos.get(full).and_then(|r| {
        let p = r.issues.get(&number)?.pull.as_ref()?;
        Some((r.git_dir.clone(), p.head.clone(), p.base.clone()))
    }) else {
        return;
    };
    let head_sha = crate::git::rev_parse(&git_dir, &format!("refs/heads/{head}"));
    let base_sha = crate::git::rev_parse(&git_dir, &format!("refs/heads/{base}"));
    let (Some(h), Some(b)) = (head_sha, base_sha) else { return };
    let commits = crate::git::commits_between(&git_dir, &b, &h);
    let mut w = inner.world();
    if let Some(p) = w.repos.get_mut(full).and_then(|r| r.issues.get_mut(&number)).and_then(|i| i.pull.as_mut()) {
        p.head_sha = h;
        p.base_sha = b;
        p.commits = commits;
    }
}

/// Emits `pull_request.synchronize` when a pull request's head is no longer `before`.
pub(crate) fn synchronized(inner: &Inner, full: &str, number: u64, before: &str) {
    let mut w = inner.world();
    let Some(r) = w.repos.get(full).cloned() else { return };
    let Some(issue) = r.issues.get(&number) else { return };
    let Some(p) = issue.pull.as_ref() else { return };
    if p.head_sha == before {
        return;
    }
    let after = p.head_sha.clone();
    let bot = w.bot_login.clone();
    let payload = obj(vec![
        ("number", json!(number)),
        ("before", json!(before)),
        ("after", json!(after)),
        ("pull_request", w.pull_json(&r, issue)),
    ]);
    emit(inner, &mut w, "pull_request", "synchronize", Some(full), None, &bot, payload);
}

/// Submits a review; emits `pull_request_review.submitted`.
pub(crate) fn add_review(
    inner: &Inner,
    full: &str,
    number: u64,
    state: &str,
    body: &str,
    user: &str,
    comments: &[(&str, u64, &str)],
) -> Result<Value, Resp> {
    let state = match state {
        "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" => state,
        _ => return Err(Resp::validation("PullRequestReview", "state", "invalid")),
    };
    refresh_pull(inner, full, number);
    let mut w = inner.world();
    let id = w.id();
    let repo = repo_mut(&mut w, full)?;
    let issue = repo.issues.get_mut(&number).ok_or_else(Resp::not_found)?;
    let Some(p) = issue.pull.as_mut() else { return Err(Resp::not_found()) };
    let comments = comments
        .iter()
        .enumerate()
        .map(|(k, (path, line, body))| {
            let id = id * 1000 + k as u64 + 1;
            ReviewComment { id, node_id: node_id("PRRC", id), path: (*path).into(), line: *line, body: (*body).into() }
        })
        .collect();
    let review = Review {
        id,
        node_id: node_id("PRR", id),
        user: user.into(),
        state: state.into(),
        body: body.into(),
        commit_id: p.head_sha.clone(),
        submitted_at: now(),
        comments,
    };
    p.reviews.push(review.clone());
    let issue = issue.clone();
    let r = w.repos[full].clone();
    let rj = w.review_json(&r, number, &review);
    // The review event carries the "simple" pull request shape (no merge state or counts).
    let mut pj = w.pull_json(&r, &issue);
    for k in [
        "additions",
        "changed_files",
        "comments",
        "commits",
        "deletions",
        "maintainer_can_modify",
        "mergeable",
        "mergeable_state",
        "merged",
        "merged_by",
        "rebaseable",
        "review_comments",
    ] {
        pj.as_object_mut().expect("object").remove(k);
    }
    let payload = obj(vec![("review", rj.clone()), ("pull_request", pj)]);
    emit(inner, &mut w, "pull_request_review", "submitted", Some(full), None, user, payload);
    Ok(rj)
}

/// Creates an organisation's project with a Status single-select field whose options are `columns`.
pub(crate) fn create_project(inner: &Inner, org: &str, title: &str, columns: &[String]) -> (u64, String) {
    let mut w = inner.world();
    w.account(org);
    w.installation_for(org);
    let id = w.id();
    let fid = w.id();
    let tid = w.id();
    let number = w.projects.iter().filter(|p| p.org == org).count() as u64 + 1;
    let options = columns
        .iter()
        .enumerate()
        .map(|(i, c)| SelectOption {
            id: format!("{:08x}", fid.wrapping_mul(31).wrapping_add(i as u64)),
            name: c.clone(),
        })
        .collect();
    let p = Project {
        id,
        node_id: node_id("PVT", id),
        org: org.into(),
        number,
        title: title.into(),
        status_field_id: fid,
        status_field_node_id: node_id("PVTSSF", fid),
        title_field_node_id: node_id("PVTF", tid),
        options,
        items: Vec::new(),
        created_at: now(),
    };
    let node = p.node_id.clone();
    w.projects.push(p);
    (number, node)
}

fn project_mut<'a>(w: &'a mut World, org: &str, number: u64) -> Result<&'a mut Project, Resp> {
    w.projects.iter_mut().find(|p| p.org == org && p.number == number).ok_or_else(Resp::not_found)
}

/// Adds an issue to a project (idempotent, as `addProjectV2ItemById` is); emits
/// `projects_v2_item.created` for a new item. Returns the item's node id.
pub(crate) fn add_item(inner: &Inner, project_node: &str, full: &str, number: u64, user: &str) -> Result<String, Resp> {
    let mut w = inner.world();
    w.repos.get(full).and_then(|r| r.issues.get(&number)).ok_or_else(Resp::not_found)?;
    let id = w.id();
    let p = w.projects.iter_mut().find(|p| p.node_id == project_node).ok_or_else(Resp::not_found)?;
    if let Some(i) = p.items.iter().find(|i| i.repo == full && i.issue == number) {
        return Ok(i.node_id.clone());
    }
    let t = now();
    let item = ProjectItem {
        id,
        node_id: node_id("PVTI", id),
        repo: full.into(),
        issue: number,
        status: None,
        creator: user.into(),
        created_at: t.clone(),
        updated_at: t,
    };
    p.items.push(item.clone());
    let p = p.clone();
    let org = p.org.clone();
    let payload = obj(vec![("projects_v2_item", w.item_json(&p, &item))]);
    emit(inner, &mut w, "projects_v2_item", "created", None, Some(&org), user, payload);
    Ok(item.node_id)
}

/// The project node id of an organisation's project number.
pub(crate) fn project_node(inner: &Inner, org: &str, number: u64) -> Result<String, Resp> {
    Ok(project_mut(&mut inner.world(), org, number)?.node_id.clone())
}

/// Sets an item's Status to the option `option_id` (or clears it); emits `projects_v2_item.edited`
/// with `changes.field_value` carrying `from`/`to` when the simulator is configured to (GitHub has
/// sent them since 2024; the octokit schema predates them).
pub(crate) fn set_item_status(inner: &Inner, item_node: &str, option_id: Option<&str>, user: &str) -> Result<(), Resp> {
    let mut w = inner.world();
    let p =
        w.projects.iter_mut().find(|p| p.items.iter().any(|i| i.node_id == item_node)).ok_or_else(Resp::not_found)?;
    if let Some(o) = option_id
        && !p.options.iter().any(|x| x.id == o)
    {
        return Err(Resp::validation("ProjectV2ItemFieldValue", "singleSelectOptionId", "invalid"));
    }
    let option_json = |p: &Project, id: &Option<String>| -> Value {
        match id.as_ref().and_then(|id| p.options.iter().find(|o| &o.id == id)) {
            Some(o) => json!({"id": o.id, "name": o.name, "color": "GRAY", "description": ""}),
            None => Value::Null,
        }
    };
    let item = p.items.iter_mut().find(|i| i.node_id == item_node).expect("found above");
    let from = item.status.clone();
    item.status = option_id.map(str::to_string);
    item.updated_at = now();
    let item = item.clone();
    if from == item.status {
        return Ok(());
    }
    let p = p.clone();
    let mut field_value = json!({"field_node_id": p.status_field_node_id, "field_type": "single_select"});
    if inner.config.project_item_from_to {
        field_value["field_name"] = json!("Status");
        field_value["project_number"] = json!(p.number);
        field_value["from"] = option_json(&p, &from);
        field_value["to"] = option_json(&p, &item.status);
    }
    let payload =
        obj(vec![("changes", json!({"field_value": field_value})), ("projects_v2_item", w.item_json(&p, &item))]);
    emit(inner, &mut w, "projects_v2_item", "edited", None, Some(&p.org), user, payload);
    Ok(())
}

/// Moves an item to the column (Status option) named `column`.
pub(crate) fn move_item(
    inner: &Inner,
    org: &str,
    number: u64,
    item: &str,
    column: &str,
    user: &str,
) -> Result<(), Resp> {
    let (node, option) = {
        let mut w = inner.world();
        let p = project_mut(&mut w, org, number)?;
        let option = p.options.iter().find(|o| o.name == column).map(|o| o.id.clone());
        let Some(option) = option else { return Err(Resp::validation("ProjectV2", "column", "invalid")) };
        let node = p
            .items
            .iter()
            .find(|i| i.node_id == item || i.id.to_string() == item)
            .map(|i| i.node_id.clone())
            .ok_or_else(Resp::not_found)?;
        (node, option)
    };
    set_item_status(inner, &node, Some(&option), user)
}

/// Commits `content` at `path` on the repository's default branch as `user` pushing it, and emits `push`
/// (GitHub's payload: `ref`, `before`, `after`, `commits` with `added`/`modified`/`removed`, `head_commit`,
/// `pusher`). Returns the new commit's id.
pub(crate) fn push_file(inner: &Inner, full: &str, path: &str, content: &str, user: &str) -> Result<String, Resp> {
    let Some(r) = inner.world().repos.get(full).cloned() else { return Err(Resp::error(404, "Not Found")) };
    let existed = crate::git::read_file(&r.git_dir, &format!("refs/heads/{}", r.default_branch), path).is_some();
    let message = format!("Update {path}");
    let (before, after) =
        crate::git::commit_file(&r.git_dir, &r.default_branch, path, content, &message).map_err(|e| {
            tracing::error!(error = %e, "committing a file");
            Resp::error(500, "could not commit the file")
        })?;
    let mut w = inner.world();
    let base = w.base_url.clone();
    let author = json!({"name": user, "email": format!("{user}@users.noreply.github.invalid"), "username": user});
    let (added, modified): (Vec<&str>, Vec<&str>) = if existed { (vec![], vec![path]) } else { (vec![path], vec![]) };
    let commit = json!({
        "id": after, "tree_id": after, "distinct": true, "message": message, "timestamp": now(),
        "url": format!("{base}/{full}/commit/{after}"), "author": author, "committer": author,
        "added": added, "removed": [], "modified": modified,
    });
    let payload = obj(vec![
        ("ref", json!(format!("refs/heads/{}", r.default_branch))),
        ("before", json!(before)),
        ("after", json!(after)),
        ("created", json!(false)),
        ("deleted", json!(false)),
        ("forced", json!(false)),
        ("base_ref", Value::Null),
        ("compare", json!(format!("{base}/{full}/compare/{before}...{after}"))),
        ("commits", json!([commit.clone()])),
        ("head_commit", commit),
        ("pusher", json!({"name": user, "email": format!("{user}@users.noreply.github.invalid")})),
    ]);
    emit(inner, &mut w, "push", "", Some(full), None, user, payload);
    Ok(after)
}
