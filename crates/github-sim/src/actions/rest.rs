//! The Actions REST endpoints (docs.github.com/rest/actions): workflow dispatch, workflows, runs, jobs, job
//! logs. Reads need the installation's `actions: read`, dispatch and cancel `actions: write`.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Value, json};

use super::workflow::{self, Contexts, Workflow};
use super::{Job, Run, StepState, now};
use crate::rest::access;
use crate::server::{Auth, Inner, Req, Resp, RespBody, paginate};

type R = Result<Resp, Resp>;

/// Routes a request under `/repos/{owner}/{repo}/actions/…`; `None` for any other path.
pub(crate) fn route(inner: &Inner, auth: &Auth, req: &Req, segs: &[&str]) -> Option<Resp> {
    let ["repos", o, r, "actions", rest @ ..] = segs else { return None };
    let get = req.method == Method::GET;
    let post = req.method == Method::POST;
    let result = match rest {
        ["workflows", wf, "dispatches"] if post => dispatch(inner, auth, req, o, r, wf),
        ["workflows", wf] if get => get_workflow(inner, auth, o, r, wf),
        ["workflows", wf, "runs"] if get => access(inner, auth, o, r, "actions", false).and_then(|full| {
            let id = workflow_id(inner, &full, wf)?;
            Ok(list_runs(inner, req, &full, Some(id)))
        }),
        ["runs"] if get => access(inner, auth, o, r, "actions", false).map(|full| list_runs(inner, req, &full, None)),
        ["runs", id] if get => access(inner, auth, o, r, "actions", false).and_then(|full| {
            let w = inner.world();
            let run = find_run(&w, &full, id)?;
            Ok(Resp::ok(super::run_json(&w, run)))
        }),
        ["runs", id, "cancel"] if post => cancel(inner, auth, o, r, id, super::runner::Stop::Cancel),
        ["runs", id, "force-cancel"] if post => cancel(inner, auth, o, r, id, super::runner::Stop::ForceCancel),
        ["runs", id, "jobs"] if get => access(inner, auth, o, r, "actions", false).map(|full| {
            let w = inner.world();
            let Ok(run) = find_run(&w, &full, id) else { return Resp::not_found() };
            let jobs: Vec<Value> =
                run.jobs.iter().filter_map(|j| w.actions.jobs.get(j)).map(|j| super::job_json(&w, j)).collect();
            drop(w);
            let total = jobs.len();
            wrap(paginate(inner, req, jobs), "jobs", total)
        }),
        ["jobs", id] if get => access(inner, auth, o, r, "actions", false).and_then(|full| {
            let w = inner.world();
            let job = find_job(&w, &full, id)?;
            Ok(Resp::ok(super::job_json(&w, job)))
        }),
        ["jobs", id, "logs"] if get => access(inner, auth, o, r, "actions", false).and_then(|full| {
            let w = inner.world();
            let job = find_job(&w, &full, id)?;
            // GitHub answers with a redirect to a short-lived download URL.
            let location = format!("{}/_sim/actions/jobs/{}/logs", w.base_url, job.id);
            Ok(Resp::empty(302).header("location", location))
        }),
        _ => return None,
    };
    Some(result.unwrap_or_else(|e| e))
}

fn find_run<'a>(w: &'a crate::world::World, full: &str, id: &str) -> Result<&'a Run, Resp> {
    id.parse::<u64>().ok().and_then(|id| w.actions.runs.get(&id)).filter(|r| r.repo == full).ok_or_else(Resp::not_found)
}

fn find_job<'a>(w: &'a crate::world::World, full: &str, id: &str) -> Result<&'a Job, Resp> {
    let job = id.parse::<u64>().ok().and_then(|id| w.actions.jobs.get(&id)).ok_or_else(Resp::not_found)?;
    (w.actions.runs.get(&job.run_id).is_some_and(|r| r.repo == full)).then_some(job).ok_or_else(Resp::not_found)
}

/// A paged list wrapped as GitHub wraps Actions lists: `{"total_count", key: [...]}`.
fn wrap(mut resp: Resp, key: &str, total: usize) -> Resp {
    if let RespBody::Json(Value::Array(page)) = std::mem::replace(&mut resp.body, RespBody::Json(Value::Null)) {
        resp.body = RespBody::Json(json!({"total_count": total, key: page}));
    }
    resp
}

/// The statuses `status=` takes that are conclusions rather than statuses.
const CONCLUSIONS: &[&str] =
    &["action_required", "cancelled", "failure", "neutral", "skipped", "stale", "success", "timed_out"];

/// `GET …/actions/runs` and `GET …/actions/workflows/{id}/runs`: newest first, filtered by `status` (a status
/// or a conclusion), `branch`, `event`, `actor` and `head_sha`.
fn list_runs(inner: &Inner, req: &Req, full: &str, workflow: Option<u64>) -> Resp {
    let w = inner.world();
    let runs: Vec<Value> = w
        .actions
        .runs
        .values()
        .rev()
        .filter(|r| r.repo == full && workflow.is_none_or(|id| r.workflow_id == id))
        .filter(|r| {
            req.q("status").is_none_or(|s| {
                if CONCLUSIONS.contains(&s) { r.conclusion.as_deref() == Some(s) } else { r.status == s }
            })
        })
        .filter(|r| req.q("branch").is_none_or(|b| b == r.head_branch))
        .filter(|_| req.q("event").is_none_or(|e| e == "workflow_dispatch"))
        .filter(|r| req.q("actor").is_none_or(|a| a.eq_ignore_ascii_case(&r.actor)))
        .filter(|r| req.q("head_sha").is_none_or(|s| s == r.head_sha))
        .map(|r| super::run_json(&w, r))
        .collect();
    drop(w);
    let total = runs.len();
    wrap(paginate(inner, req, runs), "workflow_runs", total)
}

/// The workflow id of `wf` (a numeric id, or a file name under `.github/workflows/` of the default branch).
fn workflow_id(inner: &Inner, full: &str, wf: &str) -> Result<u64, Resp> {
    if let Ok(id) = wf.parse::<u64>() {
        let w = inner.world();
        let mine = w.actions.workflows.iter().find(|((repo, _), e)| repo == full && e.id == id);
        return mine.map(|(_, e)| e.id).ok_or_else(Resp::not_found);
    }
    let (git_dir, branch) = {
        let w = inner.world();
        let r = &w.repos[full];
        (r.git_dir.clone(), r.default_branch.clone())
    };
    let path = format!(".github/workflows/{wf}");
    let (_, bytes) =
        crate::git::read_file(&git_dir, &format!("refs/heads/{branch}"), &path).ok_or_else(Resp::not_found)?;
    let name = workflow::parse(&String::from_utf8_lossy(&bytes)).ok().and_then(|w| w.name);
    Ok(super::workflow_entry(&mut inner.world(), full, &path, name.as_deref()).id)
}

fn get_workflow(inner: &Inner, auth: &Auth, o: &str, r: &str, wf: &str) -> R {
    let full = access(inner, auth, o, r, "actions", false)?;
    let id = workflow_id(inner, &full, wf)?;
    let w = inner.world();
    let e = w.actions.workflows.values().find(|e| e.id == id).ok_or_else(Resp::not_found)?;
    Ok(Resp::ok(super::workflow_json(&w, &full, e)))
}

/// `POST …/actions/runs/{run_id}/cancel` and `…/force-cancel`: 202 `{}`; 409 once the run has completed.
fn cancel(inner: &Inner, auth: &Auth, o: &str, r: &str, id: &str, how: super::runner::Stop) -> R {
    let full = access(inner, auth, o, r, "actions", true)?;
    let run_id = {
        let mut w = inner.world();
        let run = find_run(&w, &full, id)?;
        if run.status == "completed" {
            return Err(Resp::error(409, "Cannot cancel a workflow run that is completed."));
        }
        let run_id = run.id;
        w.actions.runs.get_mut(&run_id).expect("found").cancel_requested = true;
        run_id
    };
    inner.actions.stop(run_id, how);
    Ok(Resp::json(202, json!({})))
}

/// An input value as a string: strings as given, booleans and numbers written out.
fn input_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks the dispatch inputs against the workflow's, as GitHub does, and fills in defaults.
fn resolve_inputs(
    declared: &BTreeMap<String, workflow::Input>,
    given: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, Resp> {
    let unexpected: Vec<&String> = given.keys().filter(|k| !declared.contains_key(*k)).collect();
    if !unexpected.is_empty() {
        return Err(Resp::error(422, &format!("Unexpected inputs provided: {}", json!(unexpected))));
    }
    let mut inputs = BTreeMap::new();
    for (name, spec) in declared {
        let value = match given.get(name) {
            Some(v) => Some(input_value(v).ok_or_else(|| {
                Resp::error(422, &format!("Provided value for input '{name}' must be a string, number or boolean"))
            })?),
            None => spec.default.clone(),
        };
        let value = match value {
            Some(v) if !(spec.required && v.is_empty()) => v,
            _ if spec.required => return Err(Resp::error(422, &format!("Required input '{name}' not provided"))),
            _ => String::new(),
        };
        if spec.kind == "choice" && !value.is_empty() && !spec.options.contains(&value) {
            return Err(Resp::error(
                422,
                &format!("Provided value '{value}' for input '{name}' not in the list of allowed values"),
            ));
        }
        if spec.kind == "boolean" && !value.is_empty() && value != "true" && value != "false" {
            return Err(Resp::error(422, &format!("Provided value '{value}' for input '{name}' is not a boolean")));
        }
        inputs.insert(name.clone(), value);
    }
    Ok(inputs)
}

/// `POST …/actions/workflows/{workflow_id}/dispatches`.
fn dispatch(inner: &Inner, auth: &Auth, req: &Req, o: &str, r: &str, wf: &str) -> R {
    let full = access(inner, auth, o, r, "actions", true)?;
    let body = req.json()?;
    let git_ref = body["ref"].as_str().ok_or_else(|| Resp::validation("Workflow", "ref", "missing_field"))?;
    let (git_dir, owner) = {
        let w = inner.world();
        let r = &w.repos[&full];
        (r.git_dir.clone(), r.owner.clone())
    };
    let branch = git_ref.strip_prefix("refs/heads/").or_else(|| git_ref.strip_prefix("refs/tags/")).unwrap_or(git_ref);
    // A branch or a tag, as GitHub takes it (not a commit id).
    let candidates: Vec<String> = if git_ref.starts_with("refs/") {
        vec![git_ref.to_string()]
    } else {
        vec![format!("refs/heads/{git_ref}"), format!("refs/tags/{git_ref}")]
    };
    let (full_ref, sha) = candidates
        .into_iter()
        .find_map(|r| crate::git::rev_parse(&git_dir, &format!("{r}^{{commit}}")).map(|sha| (r, sha)))
        .ok_or_else(|| Resp::error(422, &format!("No ref found for: {git_ref}")))?;
    let path = match wf.parse::<u64>() {
        Ok(id) => {
            let w = inner.world();
            let mine = w.actions.workflows.iter().find(|((repo, _), e)| *repo == full && e.id == id);
            mine.map(|(_, e)| e.path.clone()).ok_or_else(Resp::not_found)?
        }
        Err(_) => format!(".github/workflows/{wf}"),
    };
    let (_, bytes) = crate::git::read_file(&git_dir, &sha, &path).ok_or_else(Resp::not_found)?;
    let parsed: Workflow = workflow::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|why| Resp::error(422, &format!("Invalid workflow file: {path}: {why}")))?;
    let Some(declared) = &parsed.dispatch else {
        return Err(Resp::error(422, "Workflow does not have 'workflow_dispatch' trigger"));
    };
    let given = body["inputs"].as_object().cloned().unwrap_or_default();
    let inputs = resolve_inputs(declared, &given)?;
    let head_commit = super::head_commit(&git_dir, &sha);

    let mut w = inner.world();
    let actor = w.bot_login.clone();
    let entry = super::workflow_entry(&mut w, &full, &path, parsed.name.as_deref());
    let run_number = {
        let n = w.actions.run_numbers.entry(entry.id).or_default();
        *n += 1;
        *n
    };
    let run_id = w.id();
    let mut contexts = Contexts::default();
    for (k, v) in &inputs {
        contexts.set("inputs", k, v.clone());
    }
    let base = w.base_url.clone();
    for (k, v) in [
        ("run_id", run_id.to_string()),
        ("run_number", run_number.to_string()),
        ("run_attempt", "1".into()),
        ("repository", full.clone()),
        ("repository_owner", owner),
        ("sha", sha.clone()),
        ("ref", full_ref),
        ("ref_name", branch.to_string()),
        ("event_name", "workflow_dispatch".into()),
        ("server_url", base.clone()),
        ("api_url", base.clone()),
        ("workflow", entry.name.clone()),
        ("actor", actor.clone()),
        ("triggering_actor", actor.clone()),
    ] {
        contexts.set("github", k, v);
    }
    let display_title = match &parsed.run_name {
        Some(t) => contexts.substitute(t),
        None => entry.name.clone(),
    };
    let t = now();
    let mut job_ids = Vec::new();
    for job in &parsed.jobs {
        let id = w.id();
        job_ids.push(id);
        let steps = job
            .steps
            .iter()
            .enumerate()
            .map(|(n, s)| StepState {
                name: s.display_name(),
                number: n as u64 + 1,
                status: "queued".into(),
                conclusion: None,
                started_at: None,
                completed_at: None,
            })
            .collect();
        w.actions.jobs.insert(
            id,
            Job {
                id,
                run_id,
                name: job.name.clone(),
                status: "queued".into(),
                conclusion: None,
                labels: job.labels.clone(),
                created_at: t.clone(),
                started_at: None,
                completed_at: None,
                steps,
                runner_id: None,
                runner_name: None,
                log: String::new(),
                live: None,
            },
        );
    }
    w.actions.runs.insert(
        run_id,
        Run {
            id: run_id,
            repo: full.clone(),
            workflow_id: entry.id,
            path: path.clone(),
            name: entry.name.clone(),
            display_title,
            head_branch: branch.to_string(),
            head_sha: sha,
            head_commit,
            status: "queued".into(),
            conclusion: None,
            run_number,
            actor,
            inputs,
            created_at: t.clone(),
            updated_at: t.clone(),
            run_started_at: t,
            jobs: job_ids.clone(),
            cancel_requested: false,
        },
    );
    super::emit_run(inner, &mut w, run_id, "requested");
    for id in &job_ids {
        super::emit_job(inner, &mut w, *id, "queued");
    }
    drop(w);
    inner.actions.start(run_id, parsed, contexts);
    if body["return_run_details"].as_bool() == Some(true) {
        Ok(Resp::ok(json!({
            "workflow_run_id": run_id,
            "run_url": format!("{base}/repos/{full}/actions/runs/{run_id}"),
            "html_url": format!("{base}/{full}/actions/runs/{run_id}"),
        })))
    } else {
        Ok(Resp::empty(204))
    }
}
