//! The REST subset Foreman uses, with GitHub's paths, status codes and bodies
//! (docs.github.com/rest). Changes made here are made by the app's bot and emit webhooks with it
//! as the sender.

use std::collections::BTreeMap;

use axum::http::Method;
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::auth::new_token;
use crate::ops;
use crate::server::{Auth, Inner, Req, Resp, RespBody, paginate};
use crate::world::{CheckRun, Token, node_id, ts};

type R = Result<Resp, Resp>;

/// Routes one REST request.
pub(crate) fn route(inner: &Inner, auth: &Auth, req: &Req) -> Resp {
    match route_inner(inner, auth, req) {
        Ok(r) | Err(r) => r,
    }
}

fn route_inner(inner: &Inner, auth: &Auth, req: &Req) -> R {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let get = m == Method::GET;
    let post = m == Method::POST;
    let patch = m == Method::PATCH;
    let delete = m == Method::DELETE;
    if let Some(resp) = crate::oauth::rest(inner, auth, req, &segs) {
        return Ok(resp);
    }
    if let Some(resp) = crate::actions::rest::route(inner, auth, req, &segs) {
        return Ok(resp);
    }
    match segs.as_slice() {
        ["app"] if get => {
            require_app(auth)?;
            Ok(Resp::ok(inner.world().app_public_json()))
        }
        ["app-manifests", code, "conversions"] if post => Ok(crate::manifest::conversion(inner, code)),
        ["app", "installations"] if get => {
            require_app(auth)?;
            let w = inner.world();
            let list = w.installations.values().map(|i| w.installation_json(i)).collect();
            drop(w);
            Ok(paginate(inner, req, list))
        }
        ["app", "installations", id] if get => {
            require_app(auth)?;
            let w = inner.world();
            let i = id.parse::<u64>().ok().and_then(|id| w.installations.get(&id)).ok_or_else(Resp::not_found)?;
            Ok(Resp::ok(w.installation_json(i)))
        }
        ["app", "installations", id, "access_tokens"] if post => {
            require_app(auth)?;
            access_token(inner, id, req)
        }
        ["repos", o, r, "installation"] if get => {
            require_app(auth)?;
            let w = inner.world();
            let repo = w.repos.get(&format!("{o}/{r}")).ok_or_else(Resp::not_found)?;
            let i = w.installations.values().find(|i| i.account == repo.owner).ok_or_else(Resp::not_found)?;
            Ok(Resp::ok(w.installation_json(i)))
        }
        ["app", "hook", "deliveries"] if get => {
            require_app(auth)?;
            let w = inner.world();
            let list = w.deliveries.iter().rev().map(|d| (d.id, delivery_summary(d))).collect();
            drop(w);
            Ok(crate::hooks::paginate_deliveries(inner, req, list))
        }
        ["app", "hook", "deliveries", id] if get => {
            require_app(auth)?;
            let w = inner.world();
            let d = id
                .parse::<u64>()
                .ok()
                .and_then(|id| w.deliveries.iter().find(|d| d.id == id))
                .ok_or_else(Resp::not_found)?;
            let mut v = delivery_summary(d);
            v["request"] =
                json!({"headers": d.request_headers.iter().cloned().collect::<BTreeMap<_,_>>(), "payload": d.payload});
            v["response"] = json!({"headers": {}, "payload": d.response_body});
            // A string in GitHub's description: empty when the App has no webhook URL.
            v["url"] = json!(inner.webhook_url.lock().expect("webhook url lock").clone().unwrap_or_default());
            Ok(Resp::ok(v))
        }
        ["app", "hook", "deliveries", id, "attempts"] if post => {
            require_app(auth)?;
            let mut w = inner.world();
            let id = id.parse::<u64>().map_err(|_| Resp::not_found())?;
            crate::hooks::redeliver(inner, &mut w, id).ok_or_else(Resp::not_found)?;
            Ok(Resp::json(202, json!({})))
        }
        ["installation", "token"] if delete => {
            // "Revoke an installation access token" (docs.github.com/rest/apps/installations): the
            // calling token stops working at once; 204.
            let Auth::Installation { credential, .. } = auth else {
                return Err(Resp::error(401, "Requires authentication"));
            };
            inner.world().tokens.remove(credential);
            Ok(Resp::empty(204))
        }
        ["installation", "repositories"] if get => {
            let (inst, token) = installation(auth)?;
            let w = inner.world();
            let list: Vec<Value> = w
                .repos
                .values()
                .filter(|r| w.installations.get(&inst).is_some_and(|i| i.account == r.owner))
                .filter(|r| token.repositories.as_ref().is_none_or(|l| l.contains(&r.full_name())))
                .map(|r| w.repo_json(r))
                .collect();
            Ok(Resp::ok(json!({"total_count": list.len(), "repository_selection": "all", "repositories": list})))
        }
        ["repos", o, r] if get => {
            let full = access(inner, auth, o, r, "metadata", false)?;
            let w = inner.world();
            Ok(Resp::ok(w.repo_json(&w.repos[&full])))
        }
        ["repos", o, r, "issues"] if get => {
            let full = access(inner, auth, o, r, "issues", false)?;
            let state = req.q("state").unwrap_or("open");
            let labels: Vec<&str> = req.q("labels").map(|l| l.split(',').collect()).unwrap_or_default();
            let w = inner.world();
            let repo = &w.repos[&full];
            let mut list: Vec<Value> = repo
                .issues
                .values()
                .rev()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| labels.iter().all(|l| i.labels.iter().any(|x| x == l)))
                .filter(|i| req.q("creator").is_none_or(|c| c.eq_ignore_ascii_case(&i.user)))
                .map(|i| crate::deps::rest_issue_json(&w, repo, i))
                .collect();
            if req.q("direction") == Some("asc") {
                list.reverse();
            }
            drop(w);
            Ok(paginate(inner, req, list))
        }
        ["repos", o, r, "issues"] if post => {
            let full = access(inner, auth, o, r, "issues", true)?;
            let b = req.json()?;
            let title = b["title"].as_str().ok_or_else(|| Resp::validation("Issue", "title", "missing_field"))?;
            let labels: Vec<String> = b["labels"]
                .as_array()
                .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let bot = bot(inner);
            let issue = ops::create_issue(inner, &full, title, b["body"].as_str(), &bot, &labels)?;
            let w = inner.world();
            Ok(Resp::json(201, crate::deps::rest_issue_json(&w, &w.repos[&full], &issue)))
        }
        ["repos", o, r, "issues", "comments", id] => {
            let id = id.parse::<u64>().map_err(|_| Resp::not_found())?;
            if get {
                let full = access(inner, auth, o, r, "issues", false)?;
                let w = inner.world();
                let c = w.comments.get(&id).filter(|c| c.repo == full).ok_or_else(Resp::not_found)?;
                Ok(Resp::ok(w.comment_json(&w.repos[&full], c)))
            } else if patch {
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let body =
                    b["body"].as_str().ok_or_else(|| Resp::validation("IssueComment", "body", "missing_field"))?;
                Ok(Resp::ok(ops::update_comment(inner, &full, id, body, &bot(inner))?))
            } else if delete {
                let full = access(inner, auth, o, r, "issues", true)?;
                ops::delete_comment(inner, &full, id, &bot(inner))?;
                Ok(Resp::empty(204))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "issues", "comments", id, "reactions"] if post => {
            let full = access(inner, auth, o, r, "issues", true)?;
            let id = id.parse::<u64>().map_err(|_| Resp::not_found())?;
            let b = req.json()?;
            let (v, existed) = ops::add_reaction(
                inner,
                &full,
                None,
                Some(id),
                b["content"].as_str().unwrap_or_default(),
                &bot(inner),
            )?;
            Ok(Resp::json(if existed { 200 } else { 201 }, v))
        }
        ["repos", o, r, "issues", n] => {
            let n = number(n)?;
            if get {
                let full = access(inner, auth, o, r, "issues", false)?;
                let w = inner.world();
                let repo = &w.repos[&full];
                let i = repo.issues.get(&n).ok_or_else(Resp::not_found)?;
                Ok(Resp::ok(crate::deps::rest_issue_json(&w, repo, i)))
            } else if patch {
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let body = b.get("body").map(|v| v.as_str());
                let issue = ops::update_issue(
                    inner,
                    &full,
                    n,
                    b["title"].as_str(),
                    body,
                    b["state"].as_str(),
                    b["state_reason"].as_str(),
                    &bot(inner),
                )?;
                if let Some(labels) = b["labels"].as_array() {
                    let names: Vec<String> = labels.iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
                    let current = issue.labels.clone();
                    for l in current.iter().filter(|l| !names.contains(l)) {
                        ops::remove_label(inner, &full, n, l, &bot(inner))?;
                    }
                    ops::add_labels(inner, &full, n, &names, &bot(inner))?;
                }
                let w = inner.world();
                let repo = &w.repos[&full];
                Ok(Resp::ok(crate::deps::rest_issue_json(&w, repo, &repo.issues[&n])))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "issues", n, "labels"] => {
            let n = number(n)?;
            if get {
                let full = access(inner, auth, o, r, "issues", false)?;
                let w = inner.world();
                let repo = &w.repos[&full];
                let i = repo.issues.get(&n).ok_or_else(Resp::not_found)?;
                let list = i.labels.iter().map(|l| w.label_json(repo, l)).collect();
                drop(w);
                Ok(paginate(inner, req, list))
            } else if post {
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let arr = b.get("labels").unwrap_or(&b);
                let names: Vec<String> = arr
                    .as_array()
                    .map(|a| {
                        a.iter().filter_map(|l| l.as_str().or_else(|| l["name"].as_str()).map(str::to_string)).collect()
                    })
                    .unwrap_or_default();
                Ok(Resp::ok(Value::Array(ops::add_labels(inner, &full, n, &names, &bot(inner))?)))
            } else if m == Method::PUT {
                // Set labels: remove what is not wanted, add what is missing.
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let arr = b.get("labels").unwrap_or(&b);
                let names: Vec<String> = arr
                    .as_array()
                    .map(|a| {
                        a.iter().filter_map(|l| l.as_str().or_else(|| l["name"].as_str()).map(str::to_string)).collect()
                    })
                    .unwrap_or_default();
                let current = inner.world().repos[&full].issues.get(&n).ok_or_else(Resp::not_found)?.labels.clone();
                for l in current.iter().filter(|l| !names.contains(l)) {
                    ops::remove_label(inner, &full, n, l, &bot(inner))?;
                }
                Ok(Resp::ok(Value::Array(ops::add_labels(inner, &full, n, &names, &bot(inner))?)))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "issues", n, "labels", name] if delete => {
            let n = number(n)?;
            let full = access(inner, auth, o, r, "issues", true)?;
            Ok(Resp::ok(Value::Array(ops::remove_label(inner, &full, n, name, &bot(inner))?)))
        }
        ["repos", o, r, "issues", n, "comments"] => {
            let n = number(n)?;
            if get {
                let full = access(inner, auth, o, r, "issues", false)?;
                let w = inner.world();
                let repo = &w.repos[&full];
                repo.issues.get(&n).ok_or_else(Resp::not_found)?;
                let list = w
                    .comments
                    .values()
                    .filter(|c| c.repo == full && c.issue == n)
                    .map(|c| w.comment_json(repo, c))
                    .collect();
                drop(w);
                Ok(paginate(inner, req, list))
            } else if post {
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let body =
                    b["body"].as_str().ok_or_else(|| Resp::validation("IssueComment", "body", "missing_field"))?;
                Ok(Resp::json(
                    201,
                    ops::create_comment(inner, &full, n, body, &bot(inner), inner.config.app_comments_name_app)?,
                ))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "issues", n, what @ ("sub_issues" | "sub_issue"), tail @ ..] => {
            let full = access(inner, auth, o, r, "issues", !get)?;
            crate::subs::route(inner, req, &full, number(n)?, what, tail, &bot(inner))
        }
        ["repos", o, r, "issues", n, "dependencies", rest @ ..] => {
            let n = number(n)?;
            let write = post || delete;
            let full = access(inner, auth, o, r, "issues", write)?;
            match rest {
                [side @ ("blocked_by" | "blocking")] if get => {
                    let list = crate::deps::list(inner, &full, n, *side == "blocked_by")?;
                    Ok(paginate(inner, req, list))
                }
                ["blocked_by"] if post => {
                    let b = req.json()?;
                    let id = b["issue_id"]
                        .as_u64()
                        .ok_or_else(|| Resp::validation("IssueDependency", "issue_id", "missing_field"))?;
                    let v = crate::deps::add(inner, &full, n, id, &bot(inner))?;
                    let location =
                        format!("{}/repos/{full}/issues/{n}/dependencies/blocked_by", inner.world().base_url);
                    Ok(Resp::json(201, v).header("location", location))
                }
                ["blocked_by", id] if delete => {
                    let id = number(id)?;
                    Ok(Resp::ok(crate::deps::remove(inner, &full, n, id, &bot(inner))?))
                }
                _ => Err(Resp::not_found()),
            }
        }
        ["repos", o, r, "issues", n, "reactions"] if get => {
            let n = number(n)?;
            let full = access(inner, auth, o, r, "issues", false)?;
            let w = inner.world();
            let i = w.repos[&full].issues.get(&n).ok_or_else(Resp::not_found)?;
            let list = i.reactions.iter().map(|x| reaction_json(&w, x)).collect();
            drop(w);
            Ok(paginate(inner, req, list))
        }
        ["repos", o, r, "issues", "comments", id, "reactions"] if get => {
            let full = access(inner, auth, o, r, "issues", false)?;
            let id = id.parse::<u64>().map_err(|_| Resp::not_found())?;
            let w = inner.world();
            let c = w.comments.get(&id).filter(|c| c.repo == full).ok_or_else(Resp::not_found)?;
            let list = c.reactions.iter().map(|x| reaction_json(&w, x)).collect();
            drop(w);
            Ok(paginate(inner, req, list))
        }
        ["repos", o, r, "pulls", n, what @ ("reviews" | "comments")] if get => {
            let n = number(n)?;
            let full = access(inner, auth, o, r, "pull_requests", false)?;
            let w = inner.world();
            let repo = &w.repos[&full];
            let p = repo.issues.get(&n).and_then(|i| i.pull.as_ref()).ok_or_else(Resp::not_found)?;
            let list = if *what == "reviews" {
                // REST gives the state in capitals (APPROVED); webhooks in lower case.
                p.reviews
                    .iter()
                    .map(|rv| {
                        let mut v = w.review_json(repo, n, rv);
                        v["state"] = json!(rv.state);
                        v
                    })
                    .collect()
            } else {
                // The inline comments of every review, in review order.
                p.reviews
                    .iter()
                    .flat_map(|rv| rv.comments.iter().map(|c| w.review_comment_json(repo, n, rv, c)))
                    .collect()
            };
            drop(w);
            Ok(paginate(inner, req, list))
        }
        ["repos", o, r, "branches", branch] if get => {
            let full = access(inner, auth, o, r, "contents", false)?;
            let (git_dir, protected, default_branch, base) = {
                let w = inner.world();
                let repo = &w.repos[&full];
                (repo.git_dir.clone(), repo.protected, repo.default_branch.clone(), w.base_url.clone())
            };
            let sha = crate::git::rev_parse(&git_dir, &format!("refs/heads/{branch}"))
                .ok_or_else(|| Resp::error(404, "Branch not found"))?;
            Ok(Resp::ok(json!({
                "name": branch,
                "commit": {"sha": sha, "url": format!("{base}/repos/{full}/commits/{sha}")},
                "protected": protected && *branch == default_branch,
                "_links": {"self": format!("{base}/repos/{full}/branches/{branch}"), "html": format!("{base}/{full}/tree/{branch}")},
                "protection_url": format!("{base}/repos/{full}/branches/{branch}/protection"),
            })))
        }
        ["repos", o, r, "issues", n, "reactions"] if post => {
            let n = number(n)?;
            let full = access(inner, auth, o, r, "issues", true)?;
            let b = req.json()?;
            let (v, existed) =
                ops::add_reaction(inner, &full, Some(n), None, b["content"].as_str().unwrap_or_default(), &bot(inner))?;
            Ok(Resp::json(if existed { 200 } else { 201 }, v))
        }
        ["repos", o, r, "labels"] => {
            if get {
                let full = access(inner, auth, o, r, "issues", false)?;
                let w = inner.world();
                let repo = &w.repos[&full];
                let list = repo.labels.keys().map(|l| w.label_json(repo, l)).collect();
                drop(w);
                Ok(paginate(inner, req, list))
            } else if post {
                let full = access(inner, auth, o, r, "issues", true)?;
                let b = req.json()?;
                let name = b["name"].as_str().ok_or_else(|| Resp::validation("Label", "name", "missing_field"))?;
                Ok(Resp::json(
                    201,
                    ops::create_label(inner, &full, name, b["color"].as_str(), b["description"].as_str())?,
                ))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "labels", name] if get => {
            let full = access(inner, auth, o, r, "issues", false)?;
            let w = inner.world();
            let repo = &w.repos[&full];
            repo.labels.get(*name).ok_or_else(Resp::not_found)?;
            Ok(Resp::ok(w.label_json(repo, name)))
        }
        ["repos", o, r, "collaborators", user, "permission"] if get => {
            let full = access(inner, auth, o, r, "metadata", false)?;
            let w = inner.world();
            let repo = &w.repos[&full];
            let u = w.users.get(*user).ok_or_else(|| Resp::error(404, &format!("{user} is not a user")))?;
            let p = if u.login == repo.owner { crate::world::Permission::Admin } else { u.permission };
            let mut uj = w.user_json(user);
            uj["permissions"] = json!({
                "admin": p >= crate::world::Permission::Admin, "maintain": p >= crate::world::Permission::Maintain,
                "push": p >= crate::world::Permission::Write, "triage": p >= crate::world::Permission::Triage,
                "pull": p >= crate::world::Permission::Read,
            });
            uj["role_name"] = json!(p.as_str());
            Ok(Resp::ok(json!({"permission": p.legacy(), "role_name": p.as_str(), "user": uj})))
        }
        ["repos", o, r, "pulls"] => {
            if get {
                let full = access(inner, auth, o, r, "pull_requests", false)?;
                let state = req.q("state").unwrap_or("open");
                let head = req.q("head").map(|h| {
                    h.split_once(':')
                        .map(|(o, b)| (o.to_string(), b.to_string()))
                        .unwrap_or((h.to_string(), String::new()))
                });
                let base = req.q("base");
                let w = inner.world();
                let repo = &w.repos[&full];
                let list = repo
                    .issues
                    .values()
                    .rev()
                    .filter(|i| i.pull.is_some())
                    .filter(|i| state == "all" || i.state == state)
                    .filter(|i| {
                        let p = i.pull.as_ref().expect("pull");
                        head.as_ref().is_none_or(|(owner, branch)| {
                            *owner == repo.owner && (branch.is_empty() || *branch == p.head)
                        }) && base.is_none_or(|b| b == p.base)
                    })
                    .map(|i| w.pull_json(repo, i))
                    .collect();
                drop(w);
                Ok(paginate(inner, req, list))
            } else if post {
                let full = access(inner, auth, o, r, "pull_requests", true)?;
                let b = req.json()?;
                let head =
                    b["head"].as_str().ok_or_else(|| Resp::validation("PullRequest", "head", "missing_field"))?;
                let base =
                    b["base"].as_str().ok_or_else(|| Resp::validation("PullRequest", "base", "missing_field"))?;
                let title =
                    b["title"].as_str().ok_or_else(|| Resp::validation("PullRequest", "title", "missing_field"))?;
                let draft = b["draft"].as_bool().unwrap_or(false);
                Ok(Resp::json(
                    201,
                    ops::create_pull(inner, &full, head, base, title, b["body"].as_str(), draft, &bot(inner))?,
                ))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "pulls", n] => {
            let n = number(n)?;
            if get {
                let full = access(inner, auth, o, r, "pull_requests", false)?;
                ops::refresh_pull(inner, &full, n);
                let w = inner.world();
                let repo = &w.repos[&full];
                let i = repo.issues.get(&n).filter(|i| i.pull.is_some()).ok_or_else(Resp::not_found)?;
                Ok(Resp::ok(w.pull_json(repo, i)))
            } else if patch {
                let full = access(inner, auth, o, r, "pull_requests", true)?;
                {
                    let w = inner.world();
                    w.repos[&full].issues.get(&n).filter(|i| i.pull.is_some()).ok_or_else(Resp::not_found)?;
                }
                let b = req.json()?;
                let body = b.get("body").map(|v| v.as_str());
                if let Some(base) = b["base"].as_str() {
                    let mut w = inner.world();
                    if let Some(p) =
                        w.repos.get_mut(&full).and_then(|r| r.issues.get_mut(&n)).and_then(|i| i.pull.as_mut())
                    {
                        p.base = base.into();
                    }
                }
                ops::update_issue(inner, &full, n, b["title"].as_str(), body, b["state"].as_str(), None, &bot(inner))?;
                ops::refresh_pull(inner, &full, n);
                let w = inner.world();
                let repo = &w.repos[&full];
                Ok(Resp::ok(w.pull_json(repo, &repo.issues[&n])))
            } else {
                Err(Resp::not_found())
            }
        }
        ["repos", o, r, "pulls", n, "requested_reviewers"] if post => {
            // GitHub answers 422 when the author is asked to review their own pull request.
            let n = number(n)?;
            let full = access(inner, auth, o, r, "pull_requests", true)?;
            let b = req.json()?;
            let wanted: Vec<String> =
                b["reviewers"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
            let mut w = inner.world();
            let issue = w.repos.get_mut(&full).and_then(|r| r.issues.get_mut(&n)).ok_or_else(Resp::not_found)?;
            if wanted.contains(&issue.user) {
                return Err(Resp::validation(
                    "PullRequest",
                    "reviewers",
                    "Review cannot be requested from pull request author.",
                ));
            }
            let p = issue.pull.as_mut().ok_or_else(Resp::not_found)?;
            for u in wanted {
                if !p.requested_reviewers.contains(&u) {
                    p.requested_reviewers.push(u);
                }
            }
            let w = &*w;
            let repo = &w.repos[&full];
            Ok(Resp::json(201, w.pull_json(repo, &repo.issues[&n])))
        }
        ["repos", o, r, "contents", rest @ ..] if get => {
            let full = access(inner, auth, o, r, "contents", false)?;
            contents(inner, req, &full, &rest.join("/"))
        }
        ["repos", o, r, "check-runs"] if post => {
            let full = access(inner, auth, o, r, "checks", true)?;
            let b = req.json()?;
            let name = b["name"].as_str().ok_or_else(|| Resp::validation("CheckRun", "name", "missing_field"))?;
            let head_sha =
                b["head_sha"].as_str().ok_or_else(|| Resp::validation("CheckRun", "head_sha", "missing_field"))?;
            let mut w = inner.world();
            let id = w.id();
            let t = ts(OffsetDateTime::now_utc());
            let conclusion = b["conclusion"].as_str().map(str::to_string);
            let status = if conclusion.is_some() {
                "completed".to_string()
            } else {
                b["status"].as_str().unwrap_or("queued").to_string()
            };
            let c = CheckRun {
                id,
                node_id: node_id("CR", id),
                name: name.into(),
                head_sha: head_sha.into(),
                completed_at: (status == "completed").then(|| t.clone()),
                status,
                conclusion,
                output: b.get("output").cloned().unwrap_or(json!({"title": null, "summary": null, "text": null})),
                details_url: b["details_url"].as_str().map(str::to_string),
                external_id: b["external_id"].as_str().map(str::to_string),
                started_at: t,
            };
            w.repos.get_mut(&full).expect("checked").check_runs.insert(id, c.clone());
            Ok(Resp::json(201, w.check_run_json(&w.repos[&full], &c)))
        }
        ["repos", o, r, "commits", git_ref, "check-runs"] if get => {
            let full = access(inner, auth, o, r, "checks", false)?;
            let git_dir = inner.world().repos[&full].git_dir.clone();
            // A commit SHA as given, or a branch or tag name resolved to its commit.
            let sha = if git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit()) {
                git_ref.to_string()
            } else {
                crate::git::rev_parse(&git_dir, &format!("{git_ref}^{{commit}}")).ok_or_else(Resp::not_found)?
            };
            let w = inner.world();
            let repo = &w.repos[&full];
            let runs: Vec<Value> = repo
                .check_runs
                .values()
                .rev()
                .filter(|c| c.head_sha == sha)
                .filter(|c| req.q("check_name").is_none_or(|n| n == c.name))
                .filter(|c| req.q("status").is_none_or(|s| s == c.status))
                .map(|c| w.check_run_json(repo, c))
                .collect();
            drop(w);
            let total = runs.len();
            let mut resp = paginate(inner, req, runs);
            if let RespBody::Json(Value::Array(page)) = std::mem::replace(&mut resp.body, RespBody::Json(Value::Null)) {
                resp.body = RespBody::Json(json!({"total_count": total, "check_runs": page}));
            }
            Ok(resp)
        }
        ["repos", o, r, "check-runs", id] if patch || get => {
            let full = access(inner, auth, o, r, "checks", patch)?;
            let id = id.parse::<u64>().map_err(|_| Resp::not_found())?;
            let b = if patch { req.json()? } else { json!({}) };
            let mut w = inner.world();
            let c = w.repos.get_mut(&full).expect("checked").check_runs.get_mut(&id).ok_or_else(Resp::not_found)?;
            if let Some(s) = b["status"].as_str() {
                c.status = s.into();
            }
            if let Some(s) = b["conclusion"].as_str() {
                c.conclusion = Some(s.into());
                c.status = "completed".into();
                c.completed_at = Some(ts(OffsetDateTime::now_utc()));
            }
            if let Some(o) = b.get("output") {
                c.output = o.clone();
            }
            if let Some(n) = b["name"].as_str() {
                c.name = n.into();
            }
            let c = c.clone();
            Ok(Resp::ok(w.check_run_json(&w.repos[&full], &c)))
        }
        ["rate_limit"] if get => {
            let w = inner.world();
            let key = match auth {
                Auth::Installation { id, .. } => *id,
                _ => 0,
            };
            let b = w.buckets.get(&key).cloned();
            let (limit, used, reset) = b.map(|b| (b.limit, b.used, b.reset.unix_timestamp())).unwrap_or((5000, 0, 0));
            let core = json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset});
            Ok(Resp::ok(json!({"resources": {"core": core, "graphql": core}, "rate": core})))
        }
        _ => Err(Resp::not_found()),
    }
}

fn reaction_json(w: &crate::world::World, r: &crate::world::Reaction) -> Value {
    json!({"id": r.id, "node_id": node_id("REA", r.id), "user": w.user_json(&r.user), "content": r.content, "created_at": r.created_at})
}

fn number(s: &str) -> Result<u64, Resp> {
    s.parse().map_err(|_| Resp::not_found())
}

fn bot(inner: &Inner) -> String {
    inner.world().bot_login.clone()
}

fn require_app(auth: &Auth) -> Result<(), Resp> {
    match auth {
        Auth::App => Ok(()),
        Auth::None => Err(Resp::error(401, "A JSON web token could not be decoded")),
        Auth::Installation { .. } | Auth::User { .. } => Err(Resp::error(401, "A JSON web token could not be decoded")),
    }
}

fn installation(auth: &Auth) -> Result<(u64, Token), Resp> {
    match auth {
        Auth::Installation { id, token, .. } => Ok((*id, token.clone())),
        Auth::None => Err(Resp::error(401, "Requires authentication")),
        Auth::App | Auth::User { .. } => Err(Resp::error(403, "Resource not accessible by integration")),
    }
}

/// Checks that the caller's installation token reaches `owner/repo` with `resource` at the needed
/// level: 404 when the repository is outside the token's reach (as GitHub hides it), 403
/// `Resource not accessible by integration` when the permission is missing.
pub(crate) fn access(
    inner: &Inner,
    auth: &Auth,
    owner: &str,
    repo: &str,
    resource: &str,
    write: bool,
) -> Result<String, Resp> {
    let (inst, token) = installation(auth)?;
    let full = format!("{owner}/{repo}");
    let w = inner.world();
    let r = w.repos.get(&full).ok_or_else(Resp::not_found)?;
    let in_installation = w.installations.get(&inst).is_some_and(|i| i.account == r.owner);
    let in_token = token.repositories.as_ref().is_none_or(|l| l.contains(&full));
    if !in_installation || !in_token {
        return Err(Resp::not_found());
    }
    let level = token.permissions.get(resource).map(String::as_str).unwrap_or("none");
    let ok = if resource == "metadata" {
        true
    } else if write {
        level == "write"
    } else {
        level == "read" || level == "write"
    };
    if !ok {
        return Err(Resp::error(403, "Resource not accessible by integration"));
    }
    Ok(full)
}

fn access_token(inner: &Inner, id: &str, req: &Req) -> R {
    let id: u64 = id.parse().map_err(|_| Resp::not_found())?;
    let b = req.json()?;
    let mut w = inner.world();
    let inst = w.installations.get(&id).cloned().ok_or_else(Resp::not_found)?;
    let mut repositories = None;
    let names: Vec<String> = b["repositories"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let ids: Vec<u64> =
        b["repository_ids"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    if !names.is_empty() || !ids.is_empty() {
        let mut list = Vec::new();
        for n in &names {
            let full = format!("{}/{n}", inst.account);
            if !w.repos.contains_key(&full) {
                return Err(Resp::error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                ));
            }
            list.push(full);
        }
        for rid in &ids {
            let Some(r) = w.repos.values().find(|r| r.id == *rid && r.owner == inst.account) else {
                return Err(Resp::error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                ));
            };
            list.push(r.full_name());
        }
        repositories = Some(list);
    }
    let mut permissions = inst.permissions.clone();
    if let Some(req_perms) = b["permissions"].as_object() {
        let rank = |s: &str| match s {
            "read" => 1,
            "write" => 2,
            "admin" => 3,
            _ => 0,
        };
        let mut granted = BTreeMap::new();
        for (k, v) in req_perms {
            let v = v.as_str().unwrap_or_default();
            let have = inst.permissions.get(k).map(|s| rank(s)).unwrap_or(0);
            if rank(v) == 0 || rank(v) > have {
                return Err(Resp::error(422, "The permissions requested are not granted to this installation."));
            }
            granted.insert(k.clone(), v.to_string());
        }
        granted.insert("metadata".into(), "read".into());
        permissions = granted;
    }
    let token = new_token();
    let expires_at = OffsetDateTime::now_utc() + inner.config.token_ttl;
    w.tokens.insert(
        token.clone(),
        Token { installation: id, expires_at, repositories: repositories.clone(), permissions: permissions.clone() },
    );
    let mut body = json!({
        "token": token, "expires_at": ts(expires_at), "permissions": permissions,
        "repository_selection": if repositories.is_some() { "selected" } else { "all" },
    });
    if let Some(list) = &repositories {
        body["repositories"] =
            Value::Array(list.iter().filter_map(|f| w.repos.get(f)).map(|r| w.repo_json(r)).collect());
    }
    Ok(Resp::json(201, body))
}

fn delivery_summary(d: &crate::world::Delivery) -> Value {
    json!({
        "id": d.id, "guid": d.guid, "delivered_at": d.delivered_at, "redelivery": d.redelivery,
        "duration": d.duration,
        "status": match d.status_code { Some(s) if (200..300).contains(&s) => "OK".to_string(), Some(0) => "Invalid HTTP Response: 0".into(), Some(s) => format!("Invalid HTTP Response: {s}"), None => "pending".into() },
        "status_code": d.status_code.unwrap_or(0), "event": d.event, "action": d.action,
        "installation_id": d.installation_id, "repository_id": d.repository_id,
        "throttled_at": null,
    })
}

/// `GET /repos/{owner}/{repo}/contents/{path}`: the file at `ref` (default branch), base64, with
/// an ETag of its blob id; a matching `If-None-Match` gets 304 (free, as on GitHub).
fn contents(inner: &Inner, req: &Req, full: &str, path: &str) -> R {
    let (git_dir, default_branch) = {
        let w = inner.world();
        let r = &w.repos[full];
        (r.git_dir.clone(), r.default_branch.clone())
    };
    let rev = req.q("ref").unwrap_or(&default_branch).to_string();
    let (sha, bytes) = crate::git::read_file(&git_dir, &rev, path).ok_or_else(Resp::not_found)?;
    let etag = format!("W/\"{sha}\"");
    if req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == format!("\"{sha}\"")))
    {
        return Ok(Resp::empty(304).header("etag", etag));
    }
    let w = inner.world();
    let b = &w.base_url;
    let name = path.rsplit('/').next().unwrap_or(path);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let content: String = encoded.as_bytes().chunks(60).map(|c| format!("{}\n", String::from_utf8_lossy(c))).collect();
    let url = format!("{b}/repos/{full}/contents/{path}?ref={rev}");
    Ok(Resp::ok(json!({
        "type": "file", "encoding": "base64", "size": bytes.len(), "name": name, "path": path,
        "content": content, "sha": sha, "url": url,
        "git_url": format!("{b}/repos/{full}/git/blobs/{sha}"), "html_url": format!("{b}/{full}/blob/{rev}/{path}"),
        "download_url": format!("{b}/{full}/raw/{rev}/{path}"),
        "_links": {"self": url, "git": format!("{b}/repos/{full}/git/blobs/{sha}"), "html": format!("{b}/{full}/blob/{rev}/{path}")},
    }))
    .header("etag", etag))
}
