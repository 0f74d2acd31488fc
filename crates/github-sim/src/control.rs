//! The control API under `/_sim` (documented in the crate's README): what people do on
//! github.com, done by tests, the demo, and people trying Foreman locally.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Value, json};

use crate::ops;
use crate::server::{Inner, Req, Resp};
use crate::world::Permission;

type R = Result<Resp, Resp>;

pub(crate) fn handle(inner: &Inner, req: &Req) -> Resp {
    match route(inner, req) {
        Ok(r) | Err(r) => r,
    }
}

fn s<'a>(b: &'a Value, k: &str) -> Result<&'a str, Resp> {
    b[k].as_str().ok_or_else(|| Resp::error(400, &format!("missing string field `{k}`")))
}

fn user_of(b: &Value) -> Result<String, Resp> {
    Ok(s(b, "user")?.to_string())
}

fn route(inner: &Inner, req: &Req) -> R {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let post = m == Method::POST;
    match &segs[1..] {
        ["users"] if post => {
            let b = req.json()?;
            let login = s(&b, "login")?;
            let permission: Permission = serde_json::from_value(b.get("permission").cloned().unwrap_or(json!("read")))
                .map_err(|_| Resp::error(400, "permission must be admin, maintain, write, triage, read or none"))?;
            let kind = b["type"].as_str().unwrap_or("User");
            if kind != "User" && kind != "Bot" {
                return Err(Resp::error(400, "type must be User or Bot"));
            }
            Ok(Resp::json(201, ops::create_user(inner, login, permission, kind)))
        }
        ["repos"] if post => {
            let b = req.json()?;
            let files: BTreeMap<String, String> = serde_json::from_value(b.get("files").cloned().unwrap_or(json!({})))
                .map_err(|_| Resp::error(400, "files must map paths to contents"))?;
            let v = ops::create_repo(inner, s(&b, "owner")?, s(&b, "name")?, &files)?;
            Ok(Resp::json(201, v))
        }
        ["repos", o, r, "protection"] if post => {
            let b = req.json()?;
            let mut w = inner.world();
            let repo = w.repos.get_mut(&format!("{o}/{r}")).ok_or_else(Resp::not_found)?;
            repo.protected = b["protected"].as_bool().unwrap_or(true);
            Ok(Resp::ok(json!({"protected": repo.protected})))
        }
        ["repos", o, r, "issues"] if post => {
            let b = req.json()?;
            let issue =
                ops::create_issue(inner, &format!("{o}/{r}"), s(&b, "title")?, b["body"].as_str(), &user_of(&b)?, &[])?;
            Ok(Resp::json(201, json!({"number": issue.number, "node_id": issue.node_id})))
        }
        ["repos", o, r, "issues", n] if m == Method::PATCH => {
            let b = req.json()?;
            let n = num(n)?;
            let issue = ops::update_issue(
                inner,
                &format!("{o}/{r}"),
                n,
                b["title"].as_str(),
                b.get("body").map(|v| v.as_str()),
                b["state"].as_str(),
                b["state_reason"].as_str(),
                &user_of(&b)?,
            )?;
            Ok(Resp::ok(json!({"number": issue.number, "state": issue.state})))
        }
        ["repos", o, r, "issues", n, "labels"] if post => {
            let b = req.json()?;
            let labels =
                ops::add_labels(inner, &format!("{o}/{r}"), num(n)?, &[s(&b, "label")?.to_string()], &user_of(&b)?)?;
            Ok(Resp::ok(Value::Array(labels)))
        }
        ["repos", o, r, "issues", n, "labels", label] if m == Method::DELETE => {
            let user = req.q("user").ok_or_else(|| Resp::error(400, "missing query parameter `user`"))?;
            let labels = ops::remove_label(inner, &format!("{o}/{r}"), num(n)?, label, user)?;
            Ok(Resp::ok(Value::Array(labels)))
        }
        ["repos", o, r, "issues", n, "comments"] if post => {
            let b = req.json()?;
            let c = ops::create_comment(inner, &format!("{o}/{r}"), num(n)?, s(&b, "body")?, &user_of(&b)?, false)?;
            Ok(Resp::json(201, c))
        }
        ["repos", o, r, "issues", n, "dependencies", "blocked_by"] if post => {
            // As a person would: the blocker by database id (`issue_id`), or by `repo` (default this
            // one) and `issue` number.
            let b = req.json()?;
            let id = blocker_id(inner, &b, &format!("{o}/{r}"))?;
            Ok(Resp::json(201, crate::deps::add(inner, &format!("{o}/{r}"), num(n)?, id, &user_of(&b)?)?))
        }
        ["repos", o, r, "issues", n, "dependencies", "blocked_by", id] if m == Method::DELETE => {
            let user = req.q("user").ok_or_else(|| Resp::error(400, "missing query parameter `user`"))?;
            Ok(Resp::ok(crate::deps::remove(inner, &format!("{o}/{r}"), num(n)?, num(id)?, user)?))
        }
        ["repos", o, r, "pulls", n, "merge"] if post => {
            let b = req.json()?;
            Ok(Resp::ok(crate::deps::merge(inner, &format!("{o}/{r}"), num(n)?, &user_of(&b)?)?))
        }
        ["repos", o, r, "comments", id] if m == Method::PATCH => {
            let b = req.json()?;
            let c = ops::update_comment(inner, &format!("{o}/{r}"), num(id)?, s(&b, "body")?, &user_of(&b)?)?;
            Ok(Resp::ok(c))
        }
        ["repos", o, r, "pulls"] if post => {
            let b = req.json()?;
            let pj = ops::create_pull(
                inner,
                &format!("{o}/{r}"),
                s(&b, "head")?,
                b["base"].as_str().unwrap_or("main"),
                s(&b, "title")?,
                b["body"].as_str(),
                false,
                &user_of(&b)?,
            )?;
            Ok(Resp::json(201, json!({"number": pj["number"], "node_id": pj["node_id"]})))
        }
        ["repos", o, r, "pulls", n, "reviews"] if post => {
            let b = req.json()?;
            // Inline comments as GitHub's "create a review" takes them: `comments: [{path, line, body}]`.
            let mut comments = Vec::new();
            for c in b["comments"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let line = c["line"].as_u64().ok_or_else(|| Resp::error(422, "a review comment needs a line"))?;
                comments.push((s(c, "path")?, line, s(c, "body")?));
            }
            let rv = ops::add_review(
                inner,
                &format!("{o}/{r}"),
                num(n)?,
                s(&b, "state")?,
                b["body"].as_str().unwrap_or_default(),
                &user_of(&b)?,
                &comments,
            )?;
            Ok(Resp::json(201, rv))
        }
        ["orgs", org, "projects"] if post => {
            let b = req.json()?;
            let columns: Vec<String> = serde_json::from_value(b.get("columns").cloned().unwrap_or(json!([
                "Backlog",
                "Ready",
                "In progress",
                "In review",
                "Blocked",
                "Done"
            ])))
            .map_err(|_| Resp::error(400, "columns must be a list of names"))?;
            let (number, node_id) = ops::create_project(inner, org, s(&b, "title")?, &columns);
            Ok(Resp::json(201, json!({"number": number, "node_id": node_id})))
        }
        ["orgs", org, "projects", n, "items"] if post => {
            let b = req.json()?;
            let project = ops::project_node(inner, org, num(n)?)?;
            let issue = b["issue"].as_u64().ok_or_else(|| Resp::error(400, "missing number field `issue`"))?;
            let user = b["user"].as_str().map(str::to_string).unwrap_or_else(|| org.to_string());
            let item = ops::add_item(inner, &project, s(&b, "repo")?, issue, &user)?;
            Ok(Resp::json(201, json!({"item_id": item})))
        }
        ["orgs", org, "projects", n, "items", item, "move"] if post => {
            let b = req.json()?;
            ops::move_item(inner, org, num(n)?, item, s(&b, "column")?, &user_of(&b)?)?;
            Ok(Resp::ok(json!({"item_id": item, "column": b["column"]})))
        }
        ["repos", o, r, "issues", n, "sub_issues"] if post => {
            let b = req.json()?;
            let full = format!("{o}/{r}");
            let child_repo = b["repo"].as_str().map_or_else(|| full.clone(), str::to_string);
            let child = b["sub_issue"].as_u64().ok_or_else(|| Resp::error(400, "missing number field `sub_issue`"))?;
            let id = issue_id(inner, &child_repo, child)?;
            Ok(Resp::json(201, crate::subs::add(inner, &full, num(n)?, id, false, &user_of(&b)?)?))
        }
        ["repos", o, r, "issues", n, "sub_issues", child] if m == Method::DELETE => {
            let user = req.q("user").ok_or_else(|| Resp::error(400, "missing query parameter `user`"))?;
            let full = format!("{o}/{r}");
            let id = issue_id(inner, req.q("repo").unwrap_or(&full), num(child)?)?;
            Ok(Resp::ok(crate::subs::remove(inner, &full, num(n)?, id, user)?))
        }
        ["hold"] if post => {
            let b = req.json()?;
            inner.holds.arm(s(&b, "method")?, s(&b, "suffix")?, b["skip"].as_u64().unwrap_or(0));
            Ok(Resp::ok(json!({"armed": true})))
        }
        ["hold", "release"] if post => {
            inner.holds.release();
            Ok(Resp::ok(json!({"released": true})))
        }
        ["faults"] if post => {
            let b: crate::faults::Faults = serde_json::from_slice(if req.body.is_empty() { b"{}" } else { &req.body })
                .map_err(|e| Resp::error(400, &format!("bad faults: {e}")))?;
            if let Some(k) = b.kinds.iter().find(|k| !crate::faults::KINDS.contains(&k.as_str())) {
                return Err(Resp::error(400, &format!("unknown fault kind `{k}`")));
            }
            if let Some(secs) = b.exhaust_primary_for_secs {
                crate::server::exhaust_primary(inner, time::Duration::seconds(secs as i64));
            }
            *inner.faults.lock().expect("faults lock") = b.clone();
            Ok(Resp::ok(serde_json::to_value(b).expect("faults serialise")))
        }
        ["installations", id, "revoke-tokens"] if post => {
            let revoked = crate::server::revoke_tokens(inner, num(id)?);
            Ok(Resp::ok(json!({"revoked": revoked})))
        }
        ["deliveries", id, "redeliver"] if post => {
            let mut w = inner.world();
            let new = crate::hooks::redeliver(inner, &mut w, num(id)?).ok_or_else(Resp::not_found)?;
            Ok(Resp::json(202, json!({"id": new})))
        }
        ["app"] if m == Method::PATCH => {
            let b = req.json()?;
            let mut w = inner.world();
            if let Some(p) = b.get("permissions") {
                w.app_permissions = serde_json::from_value(p.clone())
                    .map_err(|_| Resp::error(400, "permissions must map names to read, write or admin"))?;
            }
            if let Some(e) = b.get("events") {
                w.app_events = serde_json::from_value(e.clone())
                    .map_err(|_| Resp::error(400, "events must be a list of names"))?;
            }
            Ok(Resp::ok(json!({"permissions": w.app_permissions, "events": w.app_events})))
        }
        ["state"] if m == Method::GET => Ok(Resp::ok(crate::state_json(inner))),
        ["repos", o, r, "actions", "secrets", name] if m == Method::PUT => {
            let b = req.json()?;
            crate::actions::set_secret(inner, &format!("{o}/{r}"), name, s(&b, "value")?)
                .map_err(|e| Resp::error(404, &e))?;
            Ok(Resp::empty(204))
        }
        ["actions", "runner"] if post => {
            let b = req.json()?;
            let mut env = inner.actions.env.lock().expect("runner env lock");
            if let Some(p) = b.get("path") {
                env.path = serde_json::from_value(p.clone())
                    .map_err(|_| Resp::error(400, "path must be a list of directories"))?;
            }
            if let Some(e) = b.get("env") {
                env.env = serde_json::from_value(e.clone())
                    .map_err(|_| Resp::error(400, "env must map names to string values"))?;
            }
            Ok(Resp::ok(json!({"path": env.path, "env": env.env})))
        }
        ["actions", "runs"] if m == Method::GET => {
            let w = inner.world();
            let mut v = crate::actions::state_json(&w);
            if let (Some(repo), Some(runs)) = (req.q("repo"), v["runs"].as_array_mut()) {
                runs.retain(|r| r["repo"] == repo);
            }
            Ok(Resp::ok(v))
        }
        ["actions", "runs", id, "lose-runner"] if post => {
            crate::actions::lose_runner(inner, num(id)?).map_err(|e| Resp::error(409, &e))?;
            Ok(Resp::json(202, json!({})))
        }
        ["actions", "jobs", id, "logs"] if m == Method::GET => {
            let w = inner.world();
            let job = w.actions.jobs.get(&num(id)?).ok_or_else(Resp::not_found)?;
            Ok(Resp {
                status: 200,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: crate::server::RespBody::Raw(job.full_log().into()),
            })
        }
        _ => Err(Resp::error(404, "no such control endpoint (see crates/github-sim/README.md)")),
    }
}

/// The database id of `repo#number` (an issue, not a pull request).
fn issue_id(inner: &Inner, repo: &str, number: u64) -> Result<u64, Resp> {
    let w = inner.world();
    let issue = w.repos.get(repo).and_then(|r| r.issues.get(&number)).filter(|i| i.pull.is_none());
    issue.map(|i| i.id).ok_or_else(|| Resp::error(404, &format!("no issue {repo}#{number}")))
}

/// The database id of the blocker a control request names: `issue_id`, or `issue` (a number) in
/// `repo` (a full name; default `here`).
fn blocker_id(inner: &Inner, b: &Value, here: &str) -> Result<u64, Resp> {
    if let Some(id) = b["issue_id"].as_u64() {
        return Ok(id);
    }
    let n = b["issue"].as_u64().ok_or_else(|| Resp::error(400, "give `issue_id`, or `issue` and optionally `repo`"))?;
    let repo = b["repo"].as_str().unwrap_or(here);
    let w = inner.world();
    w.repos.get(repo).and_then(|r| r.issues.get(&n)).map(|i| i.id).ok_or_else(Resp::not_found)
}

fn num(s: &str) -> Result<u64, Resp> {
    s.parse().map_err(|_| Resp::error(400, "expected a number in the path"))
}
