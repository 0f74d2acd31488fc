//! GraphQL at `/graphql`: the Projects (v2) subset, over the simulator's state.
//!
//! Every document is parsed and validated with apollo-compiler against GitHub's public schema
//! (`schema.graphql`, built in: see [`crate::descriptions`]); an invalid one gets GitHub's shape, HTTP 200 with
//! `{"errors": [{"message", "locations"}]}`. Valid documents are executed by apollo-compiler's
//! executor with resolvers over the world ([`Obj`]); a field the simulator does not support is a
//! field error naming it, never a silent null.
//!
//! Supported: `organization(login).projectV2(number)` with `fields`/`field(name)` (single-select
//! options), `items` with `content` and `fieldValueByName`/`fieldValues`; `repository(owner,
//! name).issue/pullRequest(number)` with `projectItems`; `node(id)` for issues, pull requests,
//! projects and items; `rateLimit`; mutations `updateProjectV2ItemFieldValue`,
//! `clearProjectV2ItemFieldValue` and `addProjectV2ItemById`.

use std::sync::OnceLock;

use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::server::{Auth, Inner, Req, Resp};
use crate::world::{Project, parse_node_id};

static SCHEMA: OnceLock<Result<Valid<Schema>, String>> = OnceLock::new();

fn schema() -> Result<&'static Valid<Schema>, String> {
    SCHEMA
        .get_or_init(|| {
            // Parsed on the first GraphQL request, once per process.
            let sdl = crate::descriptions::graphql()?;
            match Schema::parse_and_validate(sdl.clone(), "schema.graphql") {
                Ok(s) => Ok(s),
                Err(with) => {
                    // GitHub's published schema has a few spec nits; the parsed schema is still usable.
                    tracing::debug!(errors = with.errors.len(), "GitHub schema validation notes");
                    Ok(Valid::assume_valid(with.partial))
                }
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The `operationName` of a request body, for the request log.
pub(crate) fn operation_name(req: &Req) -> Option<String> {
    let v: Value = serde_json::from_slice(&req.body).ok()?;
    if let Some(n) = v["operationName"].as_str() {
        return Some(n.to_string());
    }
    // Fall back to the first named operation in the document.
    let q = v["query"].as_str()?;
    let mut words = q.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        if w == "query" || w == "mutation" {
            return words.next().map(str::to_string);
        }
    }
    None
}

fn errors(list: Vec<Value>) -> Resp {
    Resp::ok(json!({ "errors": list }))
}

pub(crate) fn handle(inner: &Inner, auth: &Auth, req: &Req) -> Resp {
    if req.method != axum::http::Method::POST {
        return Resp::not_found();
    }
    let installation = match auth {
        Auth::Installation { id, .. } => *id,
        _ => return Resp::error(401, "This endpoint requires you to be authenticated."),
    };
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return Resp::error(400, "Problems parsing JSON"),
    };
    let Some(query) = body["query"].as_str() else {
        return errors(vec![json!({"message": "A query attribute must be specified and must be a string."})]);
    };
    let schema = match schema() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "GitHub GraphQL schema");
            return Resp::error(500, "github-sim could not load GitHub's GraphQL schema");
        }
    };
    let doc = match ExecutableDocument::parse_and_validate(schema, query, "query.graphql") {
        Ok(d) => d,
        Err(with) => {
            let list = with
                .errors
                .iter()
                .map(|d| {
                    github_error(
                        serde_json::to_value(d.unstable_to_json_compat()).unwrap_or(json!({"message": d.to_string()})),
                    )
                })
                .collect();
            return errors(list);
        }
    };
    let variables: serde_json_bytes::Map<serde_json_bytes::ByteString, serde_json_bytes::Value> =
        match serde_json::from_value(body.get("variables").cloned().filter(|v| !v.is_null()).unwrap_or(json!({}))) {
            Ok(v) => v,
            Err(_) => return errors(vec![json!({"message": "Variables are invalid JSON."})]),
        };
    let op = match doc.operations.get(body["operationName"].as_str()) {
        Ok(op) => op,
        Err(e) => return errors(vec![json!({"message": e.message().to_string()})]),
    };
    let root = match op.operation_type {
        apollo_compiler::executable::OperationType::Query => K::Query,
        apollo_compiler::executable::OperationType::Mutation => K::Mutation,
        apollo_compiler::executable::OperationType::Subscription => {
            return errors(vec![json!({"message": "Subscriptions are not supported"})]);
        }
    };
    let ctx = Ctx { inner, installation };
    let result = Execution::new(schema, &doc)
        .operation(op)
        .raw_variable_values(&variables)
        .execute_sync(&Obj { ctx: &ctx, k: root });
    match result {
        Ok(r) => Resp::ok(serde_json::to_value(&r).unwrap_or(json!({"errors": [{"message": "serialisation"}]}))),
        Err(e) => errors(vec![json!({"message": e.message().to_string()})]),
    }
}

/// Rewrites graphql-js wording into GitHub's for the commonest error, an unknown field:
/// `Field 'x' doesn't exist on type 'T'` with `extensions.code = "undefinedField"`.
fn github_error(mut e: Value) -> Value {
    let msg = e["message"].as_str().unwrap_or_default().to_string();
    if let Some(rest) = msg.strip_prefix("Cannot query field \"") {
        let mut parts = rest.split('"');
        if let (Some(field), Some(_), Some(ty)) = (parts.next(), parts.next(), parts.next()) {
            e["message"] = json!(format!("Field '{field}' doesn't exist on type '{ty}'"));
            e["extensions"] = json!({"code": "undefinedField", "typeName": ty, "fieldName": field});
        }
    }
    e
}

struct Ctx<'a> {
    inner: &'a Inner,
    #[allow(dead_code)]
    installation: u64,
}

/// What a resolved object is.
#[derive(Clone)]
enum K {
    Query,
    Mutation,
    Org(String),
    Repo(String),
    Actor(String),
    Project(u64),
    /// The Status single-select field of a project.
    StatusField(u64),
    /// The Title field of a project.
    TitleField(u64),
    SelectOption(u64, String),
    Item(String),
    /// The Status value of an item (project id, item node id).
    StatusValue(u64, String),
    TitleValue(u64, String),
    Issue(String, u64),
    Label(String, String),
    Connection {
        ty: &'static str,
        nodes: Vec<K>,
        has_next: bool,
        start: usize,
        total: usize,
    },
    Edge(Box<K>, usize),
    PageInfo {
        has_next: bool,
        start: usize,
        len: usize,
    },
    RateLimit,
    UpdatePayload(String),
    AddPayload(String),
    ClearPayload(String),
}

struct Obj<'a> {
    ctx: &'a Ctx<'a>,
    k: K,
}

fn err(msg: impl Into<String>) -> FieldError {
    FieldError { message: msg.into() }
}

fn cursor(i: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("cursor:{}", i + 1))
}

fn uncursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("cursor:")?.parse().ok()
}

fn args(info: &ResolveInfo<'_>) -> Value {
    serde_json::to_value(info.arguments()).unwrap_or(json!({}))
}

/// A page of `all` per the `first`/`after` arguments (GitHub caps `first` at 100).
fn page(info: &ResolveInfo<'_>, ty: &'static str, all: Vec<K>) -> Result<K, FieldError> {
    let a = args(info);
    let first = a["first"].as_u64().map(|n| n as usize);
    if first.is_some_and(|n| n > 100) {
        return Err(err(format!(
            "Requesting {} records on the connection exceeds the `first` limit of 100 records.",
            first.unwrap_or(0)
        )));
    }
    let start = a["after"].as_str().and_then(uncursor).unwrap_or(0);
    let total = all.len();
    let take = first.unwrap_or(100);
    let nodes: Vec<K> = all.into_iter().skip(start).take(take).collect();
    let has_next = start + nodes.len() < total;
    Ok(K::Connection { ty, nodes, has_next, start, total })
}

fn leaf<'x>(v: impl Into<Value>) -> ResolvedValue<'x> {
    let v: Value = v.into();
    ResolvedValue::leaf(serde_json::from_value::<serde_json_bytes::Value>(v).unwrap_or(serde_json_bytes::Value::Null))
}

impl<'a> Obj<'a> {
    fn obj<'b>(&'b self, k: K) -> ResolvedValue<'b> {
        ResolvedValue::object(Obj { ctx: self.ctx, k })
    }
    fn opt<'b>(&'b self, k: Option<K>) -> ResolvedValue<'b> {
        match k {
            Some(k) => self.obj(k),
            None => ResolvedValue::null(),
        }
    }
    fn list<'b>(&'b self, ks: Vec<K>) -> ResolvedValue<'b> {
        let ctx = self.ctx;
        ResolvedValue::list(ks.into_iter().map(move |k| ResolvedValue::object(Obj { ctx, k })))
    }
    fn project<T>(&self, id: u64, f: impl FnOnce(&Project) -> T) -> Result<T, FieldError> {
        let w = self.ctx.inner.world();
        let p = w.projects.iter().find(|p| p.id == id).ok_or_else(|| err("project vanished"))?;
        Ok(f(p))
    }
    fn bot(&self) -> String {
        self.ctx.inner.world().bot_login.clone()
    }

    /// Resolves a node id to an object.
    fn node(&self, id: &str) -> Option<K> {
        let (prefix, n) = parse_node_id(id)?;
        let w = self.ctx.inner.world();
        match prefix.as_str() {
            "I" => w
                .repos
                .values()
                .find_map(|r| r.issues.values().find(|i| i.id == n).map(|i| K::Issue(r.full_name(), i.number))),
            "PR" => w.repos.values().find_map(|r| {
                r.issues
                    .values()
                    .find(|i| i.pull.as_ref().is_some_and(|p| p.id == n))
                    .map(|i| K::Issue(r.full_name(), i.number))
            }),
            "PVT" => w.projects.iter().find(|p| p.id == n).map(|p| K::Project(p.id)),
            "PVTI" => w.projects.iter().find(|p| p.items.iter().any(|i| i.id == n)).map(|_| K::Item(id.to_string())),
            "PVTSSF" => w.projects.iter().find(|p| p.status_field_id == n).map(|p| K::StatusField(p.id)),
            _ => None,
        }
    }

    fn item_project(&self, item: &str) -> Option<u64> {
        let w = self.ctx.inner.world();
        w.projects.iter().find(|p| p.items.iter().any(|i| i.node_id == item)).map(|p| p.id)
    }

    fn issue_type(&self, repo: &str, number: u64) -> &'static str {
        let w = self.ctx.inner.world();
        match w.repos.get(repo).and_then(|r| r.issues.get(&number)) {
            Some(i) if i.pull.is_some() => "PullRequest",
            _ => "Issue",
        }
    }

    fn resolve<'b>(&'b self, info: &ResolveInfo<'_>) -> Result<ResolvedValue<'b>, FieldError> {
        let f = info.field_name();
        let a = args(info);
        let unsupported = || err(format!("github-sim does not support the field `{f}` on `{}`", self.type_name()));
        match &self.k {
            K::Query => match f {
                "organization" => {
                    let login = a["login"].as_str().unwrap_or_default().to_string();
                    let w = self.ctx.inner.world();
                    let found = w.users.get(&login).is_some_and(|u| u.kind == "Organization");
                    drop(w);
                    if !found {
                        return Err(err(format!("Could not resolve to an Organization with the login of '{login}'.")));
                    }
                    Ok(self.obj(K::Org(login)))
                }
                "repository" => {
                    let full = format!(
                        "{}/{}",
                        a["owner"].as_str().unwrap_or_default(),
                        a["name"].as_str().unwrap_or_default()
                    );
                    if !self.ctx.inner.world().repos.contains_key(&full) {
                        return Err(err(format!("Could not resolve to a Repository with the name '{full}'.")));
                    }
                    Ok(self.obj(K::Repo(full)))
                }
                "node" => {
                    let id = a["id"].as_str().unwrap_or_default();
                    match self.node(id) {
                        Some(k) => Ok(self.obj(k)),
                        None => Err(err(format!("Could not resolve to a node with the global id of '{id}'"))),
                    }
                }
                "nodes" => {
                    let ids: Vec<String> = a["ids"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    let ctx = self.ctx;
                    let ks: Vec<Option<K>> = ids.iter().map(|id| self.node(id)).collect();
                    Ok(ResolvedValue::list(ks.into_iter().map(move |k| match k {
                        Some(k) => ResolvedValue::object(Obj { ctx, k }),
                        None => ResolvedValue::null(),
                    })))
                }
                "rateLimit" => Ok(self.obj(K::RateLimit)),
                _ => Err(unsupported()),
            },
            K::Mutation => {
                let input = &a["input"];
                let bot = self.bot();
                match f {
                    "updateProjectV2ItemFieldValue" => {
                        let item = input["itemId"].as_str().unwrap_or_default();
                        let option = input["value"]["singleSelectOptionId"].as_str();
                        let field = input["fieldId"].as_str().unwrap_or_default();
                        let pid = self.item_project(item).ok_or_else(|| {
                            err(format!("Could not resolve to a node with the global id of '{item}'"))
                        })?;
                        let status_field = self.project(pid, |p| p.status_field_node_id.clone())?;
                        if field != status_field {
                            return Err(err("github-sim supports updating only the Status single-select field"));
                        }
                        let Some(option) = option else {
                            return Err(err("github-sim supports only singleSelectOptionId values"));
                        };
                        crate::ops::set_item_status(self.ctx.inner, item, Some(option), &bot)
                            .map_err(|_| err("The single select option Id does not belong to the field"))?;
                        Ok(self.obj(K::UpdatePayload(item.to_string())))
                    }
                    "clearProjectV2ItemFieldValue" => {
                        let item = input["itemId"].as_str().unwrap_or_default();
                        crate::ops::set_item_status(self.ctx.inner, item, None, &bot)
                            .map_err(|_| err("Could not clear the field value"))?;
                        Ok(self.obj(K::ClearPayload(item.to_string())))
                    }
                    "addProjectV2ItemById" => {
                        let project = input["projectId"].as_str().unwrap_or_default();
                        let content = input["contentId"].as_str().unwrap_or_default();
                        let Some(K::Issue(repo, number)) = self.node(content) else {
                            return Err(err(format!("Could not resolve to a node with the global id of '{content}'")));
                        };
                        let item =
                            crate::ops::add_item(self.ctx.inner, project, &repo, number, &bot).map_err(|_| {
                                err(format!("Could not resolve to a node with the global id of '{project}'"))
                            })?;
                        Ok(self.obj(K::AddPayload(item)))
                    }
                    _ => Err(unsupported()),
                }
            }
            K::UpdatePayload(item) | K::ClearPayload(item) => match f {
                "projectV2Item" => Ok(self.obj(K::Item(item.clone()))),
                "clientMutationId" => Ok(leaf(a["clientMutationId"].clone())),
                _ => Err(unsupported()),
            },
            K::AddPayload(item) => match f {
                "item" => Ok(self.obj(K::Item(item.clone()))),
                "clientMutationId" => Ok(ResolvedValue::null()),
                _ => Err(unsupported()),
            },
            K::Org(login) => match f {
                "login" | "name" => Ok(leaf(login.clone())),
                "id" => Ok(leaf(crate::world::node_id(
                    "O",
                    self.ctx.inner.world().users.get(login).map(|u| u.id).unwrap_or(0),
                ))),
                "databaseId" => Ok(leaf(self.ctx.inner.world().users.get(login).map(|u| u.id).unwrap_or(0))),
                "projectV2" => {
                    let n = a["number"].as_u64().unwrap_or(0);
                    let w = self.ctx.inner.world();
                    let p = w.projects.iter().find(|p| &p.org == login && p.number == n).map(|p| p.id);
                    drop(w);
                    match p {
                        Some(id) => Ok(self.obj(K::Project(id))),
                        None => Err(err(format!("Could not resolve to a ProjectV2 with the number {n}."))),
                    }
                }
                "projectsV2" => {
                    let w = self.ctx.inner.world();
                    let all: Vec<K> = w.projects.iter().filter(|p| &p.org == login).map(|p| K::Project(p.id)).collect();
                    drop(w);
                    Ok(self.obj(page(info, "ProjectV2Connection", all)?))
                }
                "url" => Ok(leaf(format!("{}/{login}", self.ctx.inner.world().base_url))),
                _ => Err(unsupported()),
            },
            K::Actor(login) => match f {
                "login" => Ok(leaf(login.clone())),
                "id" => Ok(leaf(crate::world::node_id(
                    "U",
                    self.ctx.inner.world().users.get(login).map(|u| u.id).unwrap_or(0),
                ))),
                "databaseId" => Ok(leaf(self.ctx.inner.world().users.get(login).map(|u| u.id).unwrap_or(0))),
                "url" => Ok(leaf(format!("{}/{login}", self.ctx.inner.world().base_url))),
                "avatarUrl" => Ok(leaf(format!("{}/avatars/{login}", self.ctx.inner.world().base_url))),
                _ => Err(unsupported()),
            },
            K::Repo(full) => match f {
                "nameWithOwner" => Ok(leaf(full.clone())),
                "name" => Ok(leaf(full.split('/').nth(1).unwrap_or_default().to_string())),
                "owner" => Ok(self.obj(K::Actor(full.split('/').next().unwrap_or_default().to_string()))),
                "id" => Ok(leaf(self.ctx.inner.world().repos.get(full).map(|r| r.node_id.clone()))),
                "databaseId" => Ok(leaf(self.ctx.inner.world().repos.get(full).map(|r| r.id))),
                "url" => Ok(leaf(format!("{}/{full}", self.ctx.inner.world().base_url))),
                "issue" | "pullRequest" | "issueOrPullRequest" => {
                    let n = a["number"].as_u64().unwrap_or(0);
                    let w = self.ctx.inner.world();
                    let i = w.repos.get(full).and_then(|r| r.issues.get(&n)).map(|i| i.pull.is_some());
                    drop(w);
                    match (f, i) {
                        ("issue", Some(false)) | ("pullRequest", Some(true)) | ("issueOrPullRequest", Some(_)) => {
                            Ok(self.obj(K::Issue(full.clone(), n)))
                        }
                        _ => Err(err(format!(
                            "Could not resolve to an {} with the number of {n}.",
                            if f == "pullRequest" { "PullRequest" } else { "Issue" }
                        ))),
                    }
                }
                _ => Err(unsupported()),
            },
            K::Project(id) => {
                let id = *id;
                match f {
                    "id" => Ok(leaf(self.project(id, |p| p.node_id.clone())?)),
                    "databaseId" => Ok(leaf(id)),
                    "number" => Ok(leaf(self.project(id, |p| p.number)?)),
                    "title" => Ok(leaf(self.project(id, |p| p.title.clone())?)),
                    "closed" | "public" | "template" => Ok(leaf(false)),
                    "url" => {
                        let (org, n) = self.project(id, |p| (p.org.clone(), p.number))?;
                        Ok(leaf(format!("{}/orgs/{org}/projects/{n}", self.ctx.inner.world().base_url)))
                    }
                    "owner" => Ok(self.obj(K::Org(self.project(id, |p| p.org.clone())?))),
                    "fields" => Ok(self.obj(page(
                        info,
                        "ProjectV2FieldConfigurationConnection",
                        vec![K::TitleField(id), K::StatusField(id)],
                    )?)),
                    "field" => match a["name"].as_str() {
                        Some("Status") => Ok(self.obj(K::StatusField(id))),
                        Some("Title") => Ok(self.obj(K::TitleField(id))),
                        _ => Ok(ResolvedValue::null()),
                    },
                    "items" => {
                        let all = self.project(id, |p| p.items.iter().map(|i| K::Item(i.node_id.clone())).collect())?;
                        Ok(self.obj(page(info, "ProjectV2ItemConnection", all)?))
                    }
                    "createdAt" | "updatedAt" => Ok(leaf(self.project(id, |p| p.created_at.clone())?)),
                    _ => Err(unsupported()),
                }
            }
            K::StatusField(pid) | K::TitleField(pid) => {
                let pid = *pid;
                let status = matches!(self.k, K::StatusField(_));
                match f {
                    "id" => Ok(leaf(self.project(pid, |p| {
                        if status { p.status_field_node_id.clone() } else { p.title_field_node_id.clone() }
                    })?)),
                    "databaseId" => {
                        Ok(leaf(self.project(pid, |p| if status { p.status_field_id } else { p.status_field_id + 1 })?))
                    }
                    "name" => Ok(leaf(if status { "Status" } else { "Title" })),
                    "dataType" => Ok(leaf(if status { "SINGLE_SELECT" } else { "TITLE" })),
                    "project" => Ok(self.obj(K::Project(pid))),
                    "options" if status => {
                        let ids = self
                            .project(pid, |p| p.options.iter().map(|o| K::SelectOption(pid, o.id.clone())).collect())?;
                        Ok(self.list(ids))
                    }
                    "createdAt" | "updatedAt" => Ok(leaf(self.project(pid, |p| p.created_at.clone())?)),
                    _ => Err(unsupported()),
                }
            }
            K::SelectOption(pid, oid) => {
                let name = self
                    .project(*pid, |p| p.options.iter().find(|o| &o.id == oid).map(|o| o.name.clone()))?
                    .unwrap_or_default();
                match f {
                    "id" => Ok(leaf(oid.clone())),
                    "name" | "nameHTML" => Ok(leaf(name)),
                    "color" => Ok(leaf("GRAY")),
                    "description" | "descriptionHTML" => Ok(leaf("")),
                    _ => Err(unsupported()),
                }
            }
            K::Item(node) => {
                let w = self.ctx.inner.world();
                let found = w
                    .projects
                    .iter()
                    .find_map(|p| p.items.iter().find(|i| &i.node_id == node).map(|i| (p.id, i.clone())));
                drop(w);
                let (pid, item) = found.ok_or_else(|| err("item vanished"))?;
                match f {
                    "id" => Ok(leaf(item.node_id.clone())),
                    "databaseId" => Ok(leaf(item.id)),
                    "type" => Ok(leaf(if self.issue_type(&item.repo, item.issue) == "PullRequest" {
                        "PULL_REQUEST"
                    } else {
                        "ISSUE"
                    })),
                    "isArchived" => Ok(leaf(false)),
                    "createdAt" => Ok(leaf(item.created_at.clone())),
                    "updatedAt" => Ok(leaf(item.updated_at.clone())),
                    "project" => Ok(self.obj(K::Project(pid))),
                    "content" => Ok(self.obj(K::Issue(item.repo.clone(), item.issue))),
                    "creator" => Ok(self.obj(K::Actor(item.creator.clone()))),
                    "fieldValueByName" => match a["name"].as_str() {
                        Some("Status") => Ok(self.opt(item.status.as_ref().map(|_| K::StatusValue(pid, node.clone())))),
                        Some("Title") => Ok(self.obj(K::TitleValue(pid, node.clone()))),
                        _ => Ok(ResolvedValue::null()),
                    },
                    "fieldValues" => {
                        let mut all = vec![K::TitleValue(pid, node.clone())];
                        if item.status.is_some() {
                            all.push(K::StatusValue(pid, node.clone()));
                        }
                        Ok(self.obj(page(info, "ProjectV2ItemFieldValueConnection", all)?))
                    }
                    _ => Err(unsupported()),
                }
            }
            K::StatusValue(pid, node) => {
                let (option, name) = self.project(*pid, |p| {
                    let o = p.items.iter().find(|i| &i.node_id == node).and_then(|i| i.status.clone());
                    let name = o.as_ref().and_then(|o| p.options.iter().find(|x| &x.id == o)).map(|x| x.name.clone());
                    (o, name)
                })?;
                match f {
                    "optionId" => Ok(leaf(option)),
                    "name" | "nameHTML" => Ok(leaf(name)),
                    "color" => Ok(leaf("GRAY")),
                    "description" | "descriptionHTML" => Ok(leaf("")),
                    "field" => Ok(self.obj(K::StatusField(*pid))),
                    "item" => Ok(self.obj(K::Item(node.clone()))),
                    "id" => Ok(leaf(format!("{node}_status"))),
                    _ => Err(unsupported()),
                }
            }
            K::TitleValue(pid, node) => match f {
                "text" => {
                    let w = self.ctx.inner.world();
                    let t = w
                        .projects
                        .iter()
                        .find(|p| p.id == *pid)
                        .and_then(|p| p.items.iter().find(|i| &i.node_id == node))
                        .and_then(|i| w.repos.get(&i.repo).and_then(|r| r.issues.get(&i.issue)))
                        .map(|i| i.title.clone());
                    Ok(leaf(t))
                }
                "field" => Ok(self.obj(K::TitleField(*pid))),
                "item" => Ok(self.obj(K::Item(node.clone()))),
                "id" => Ok(leaf(format!("{node}_title"))),
                _ => Err(unsupported()),
            },
            K::Issue(full, number) => {
                let w = self.ctx.inner.world();
                let issue = w
                    .repos
                    .get(full)
                    .and_then(|r| r.issues.get(number))
                    .cloned()
                    .ok_or_else(|| err("issue vanished"))?;
                let base = w.base_url.clone();
                drop(w);
                let kind = if issue.pull.is_some() { "pull" } else { "issues" };
                match f {
                    "id" => Ok(leaf(issue.pull.as_ref().map(|p| p.node_id.clone()).unwrap_or(issue.node_id.clone()))),
                    "databaseId" => Ok(leaf(issue.pull.as_ref().map(|p| p.id).unwrap_or(issue.id))),
                    "number" => Ok(leaf(issue.number)),
                    "title" => Ok(leaf(issue.title.clone())),
                    "body" => Ok(leaf(issue.body.clone().unwrap_or_default())),
                    "state" => Ok(leaf(match (issue.state.as_str(), issue.pull.as_ref().is_some_and(|p| p.merged)) {
                        (_, true) => "MERGED",
                        ("closed", _) => "CLOSED",
                        _ => "OPEN",
                    })),
                    "closed" => Ok(leaf(issue.state == "closed")),
                    "url" => Ok(leaf(format!("{base}/{full}/{kind}/{number}"))),
                    "createdAt" => Ok(leaf(issue.created_at.clone())),
                    "updatedAt" => Ok(leaf(issue.updated_at.clone())),
                    "author" => Ok(self.obj(K::Actor(issue.user.clone()))),
                    "repository" => Ok(self.obj(K::Repo(full.clone()))),
                    "headRefName" => Ok(leaf(issue.pull.as_ref().map(|p| p.head.clone()))),
                    "baseRefName" => Ok(leaf(issue.pull.as_ref().map(|p| p.base.clone()))),
                    "isDraft" => Ok(leaf(issue.pull.as_ref().is_some_and(|p| p.draft))),
                    "labels" => {
                        let all = issue.labels.iter().map(|l| K::Label(full.clone(), l.clone())).collect();
                        Ok(self.obj(page(info, "LabelConnection", all)?))
                    }
                    "projectItems" => {
                        let w = self.ctx.inner.world();
                        let all = w
                            .projects
                            .iter()
                            .flat_map(|p| {
                                p.items
                                    .iter()
                                    .filter(|i| &i.repo == full && i.issue == *number)
                                    .map(|i| K::Item(i.node_id.clone()))
                            })
                            .collect();
                        drop(w);
                        Ok(self.obj(page(info, "ProjectV2ItemConnection", all)?))
                    }
                    _ => Err(unsupported()),
                }
            }
            K::Label(full, name) => match f {
                "name" => Ok(leaf(name.clone())),
                "color" => Ok(leaf(
                    self.ctx.inner.world().repos.get(full).and_then(|r| r.labels.get(name)).map(|l| l.color.clone()),
                )),
                "id" => Ok(leaf(
                    self.ctx.inner.world().repos.get(full).and_then(|r| r.labels.get(name)).map(|l| l.node_id.clone()),
                )),
                _ => Err(unsupported()),
            },
            K::Connection { nodes, has_next, start, total, .. } => match f {
                "nodes" => Ok(self.list(nodes.clone())),
                "edges" => {
                    Ok(self
                        .list(nodes.iter().enumerate().map(|(i, n)| K::Edge(Box::new(n.clone()), start + i)).collect()))
                }
                "totalCount" => Ok(leaf(*total)),
                "pageInfo" => Ok(self.obj(K::PageInfo { has_next: *has_next, start: *start, len: nodes.len() })),
                _ => Err(unsupported()),
            },
            K::Edge(node, i) => match f {
                "node" => Ok(self.obj((**node).clone())),
                "cursor" => Ok(leaf(cursor(*i))),
                _ => Err(unsupported()),
            },
            K::PageInfo { has_next, start, len } => match f {
                "hasNextPage" => Ok(leaf(*has_next)),
                "hasPreviousPage" => Ok(leaf(*start > 0)),
                "endCursor" => Ok(leaf(if *len > 0 { Some(cursor(start + len - 1)) } else { None })),
                "startCursor" => Ok(leaf(if *len > 0 { Some(cursor(*start)) } else { None })),
                _ => Err(unsupported()),
            },
            K::RateLimit => {
                let key = self.ctx.installation;
                let w = self.ctx.inner.world();
                let b = w.buckets.get(&key).cloned();
                drop(w);
                let (limit, used, reset) =
                    b.map(|b| (b.limit, b.used, b.reset)).unwrap_or((5000, 0, time::OffsetDateTime::now_utc()));
                match f {
                    "limit" => Ok(leaf(limit)),
                    "used" => Ok(leaf(used)),
                    "remaining" => Ok(leaf(limit.saturating_sub(used))),
                    "cost" => Ok(leaf(1)),
                    "nodeCount" => Ok(leaf(1)),
                    "resetAt" => Ok(leaf(crate::world::ts(reset))),
                    _ => Err(unsupported()),
                }
            }
        }
    }
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        match &self.k {
            K::Query => "Query",
            K::Mutation => "Mutation",
            K::Org(_) => "Organization",
            K::Repo(_) => "Repository",
            K::Actor(login) => {
                let w = self.ctx.inner.world();
                match w.users.get(login).map(|u| u.kind.as_str()) {
                    Some("Bot") => "Bot",
                    Some("Organization") => "Organization",
                    _ => "User",
                }
            }
            K::Project(_) => "ProjectV2",
            K::StatusField(_) => "ProjectV2SingleSelectField",
            K::TitleField(_) => "ProjectV2Field",
            K::SelectOption(..) => "ProjectV2SingleSelectFieldOption",
            K::Item(_) => "ProjectV2Item",
            K::StatusValue(..) => "ProjectV2ItemFieldSingleSelectValue",
            K::TitleValue(..) => "ProjectV2ItemFieldTextValue",
            K::Issue(repo, n) => self.issue_type(repo, *n),
            K::Label(..) => "Label",
            K::Connection { ty, .. } => ty,
            K::Edge(node, _) => match node.as_ref() {
                K::Item(_) => "ProjectV2ItemEdge",
                K::Project(_) => "ProjectV2Edge",
                K::Label(..) => "LabelEdge",
                K::StatusValue(..) | K::TitleValue(..) => "ProjectV2ItemFieldValueEdge",
                _ => "ProjectV2FieldConfigurationEdge",
            },
            K::PageInfo { .. } => "PageInfo",
            K::RateLimit => "RateLimit",
            K::UpdatePayload(_) => "UpdateProjectV2ItemFieldValuePayload",
            K::ClearPayload(_) => "ClearProjectV2ItemFieldValuePayload",
            K::AddPayload(_) => "AddProjectV2ItemByIdPayload",
        }
    }

    fn resolve_field<'b>(&'b self, info: &'b ResolveInfo<'b>) -> Result<ResolvedValue<'b>, FieldError> {
        self.resolve(info)
    }
}
