//! GitHub Actions, as much as Foreman's Actions executor uses: workflow dispatch (with
//! `return_run_details`), workflow runs (list, get, cancel), their jobs and job logs, the workflow
//! itself, `workflow_run` and `workflow_job` webhooks, and a simulated runner ([`runner`]) that
//! executes the dispatched workflow's `run:` steps on this machine.
//!
//! Shapes follow GitHub's REST description (`workflow-run`, `job`, `workflow`,
//! `workflow-dispatch-response`) and the `x-webhooks` schemas; messages are GitHub's.

pub(crate) mod condition;
pub(crate) mod rest;
pub(crate) mod runner;
pub(crate) mod workflow;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::server::Inner;
use crate::world::{World, node_id, ts};

/// The Actions side of the world.
#[derive(Default)]
pub(crate) struct State {
    /// Every run, by id.
    pub runs: BTreeMap<u64, Run>,
    /// Every job, by id.
    pub jobs: BTreeMap<u64, Job>,
    /// Workflows seen, by (repository full name, path): id, name, first seen.
    pub workflows: BTreeMap<(String, String), WorkflowEntry>,
    /// Actions secrets per repository full name.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The last run number per workflow id.
    pub run_numbers: BTreeMap<u64, u64>,
}

/// A workflow file the simulator has been asked about.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkflowEntry {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub created_at: String,
}

/// One workflow run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub id: u64,
    pub repo: String,
    pub workflow_id: u64,
    pub path: String,
    /// The workflow's `name` (its path when it has none).
    pub name: String,
    pub display_title: String,
    pub head_branch: String,
    pub head_sha: String,
    /// The head commit as `workflow_run.head_commit` (id, tree_id, message, timestamp, author, committer).
    pub head_commit: Value,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// `success`, `failure`, `cancelled` or `timed_out` once completed.
    pub conclusion: Option<String>,
    pub run_number: u64,
    pub actor: String,
    pub inputs: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    pub run_started_at: String,
    /// Its jobs, in the workflow's order.
    pub jobs: Vec<u64>,
    /// Set by a cancel request (`POST …/cancel`), before the run has ended.
    pub cancel_requested: bool,
}

/// One job of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Job {
    pub id: u64,
    pub run_id: u64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub labels: Vec<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub steps: Vec<StepState>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    /// Each finished step's header and output, as the job's log.
    #[serde(skip)]
    pub log: String,
    /// Where the running step's output is being written, if a step is running.
    #[serde(skip)]
    pub live: Option<std::path::PathBuf>,
}

impl Job {
    /// The log so far: the finished steps' and what the running step has written yet.
    pub fn full_log(&self) -> String {
        match &self.live {
            Some(path) => format!("{}{}", self.log, runner::read_capped(path)),
            None => self.log.clone(),
        }
    }
}

/// One step of a job, as `GET …/jobs` reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepState {
    pub name: String,
    pub number: u64,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

pub(crate) fn now() -> String {
    ts(OffsetDateTime::now_utc())
}

/// Commit `sha` of the repository at `git_dir` as `workflow_run.head_commit` gives it (read once, at dispatch,
/// outside the world's lock).
pub(crate) fn head_commit(git_dir: &std::path::Path, sha: &str) -> Value {
    let format = "--format=%T%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B";
    let info = crate::git::git(git_dir, &["log", "-1", format, sha]).unwrap_or_default();
    let f: Vec<&str> = info.split('\0').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or_default().trim().to_string();
    json!({
        "id": sha, "tree_id": get(0), "message": get(6), "timestamp": get(5),
        "author": {"name": get(1), "email": get(2)}, "committer": {"name": get(3), "email": get(4)},
    })
}

/// `workflow-run` (REST) and the webhooks' `workflow_run`: one shape serving both.
pub(crate) fn run_json(w: &World, run: &Run) -> Value {
    let b = &w.base_url;
    let full = &run.repo;
    let api = format!("{b}/repos/{full}/actions/runs/{}", run.id);
    let repo = w.repos.get(full).map(|r| w.repo_json(r)).unwrap_or(Value::Null);
    json!({
        "id": run.id, "name": run.name, "node_id": node_id("WFR", run.id),
        "check_suite_id": run.id, "check_suite_node_id": node_id("CS", run.id),
        "head_branch": run.head_branch, "head_sha": run.head_sha, "path": run.path,
        "display_title": run.display_title, "run_number": run.run_number, "run_attempt": 1,
        "event": "workflow_dispatch", "status": run.status, "conclusion": run.conclusion,
        "workflow_id": run.workflow_id, "url": api, "html_url": format!("{b}/{full}/actions/runs/{}", run.id),
        "pull_requests": [], "referenced_workflows": [],
        "created_at": run.created_at, "updated_at": run.updated_at, "run_started_at": run.run_started_at,
        "actor": w.user_json(&run.actor), "triggering_actor": w.user_json(&run.actor),
        "jobs_url": format!("{api}/jobs"), "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{b}/repos/{full}/check-suites/{}", run.id),
        "artifacts_url": format!("{api}/artifacts"), "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"), "previous_attempt_url": null,
        "workflow_url": format!("{b}/repos/{full}/actions/workflows/{}", run.workflow_id),
        "head_commit": run.head_commit, "repository": repo.clone(), "head_repository": repo,
        "head_repository_id": w.repos.get(full).map(|r| r.id),
    })
}

/// `job` (REST) and the webhooks' `workflow_job`.
pub(crate) fn job_json(w: &World, job: &Job) -> Value {
    let b = &w.base_url;
    let run = &w.actions.runs[&job.run_id];
    let full = &run.repo;
    json!({
        "id": job.id, "run_id": job.run_id, "run_attempt": 1, "node_id": node_id("CR", job.id),
        "run_url": format!("{b}/repos/{full}/actions/runs/{}", run.id),
        "head_sha": run.head_sha, "head_branch": run.head_branch, "workflow_name": run.name,
        "url": format!("{b}/repos/{full}/actions/jobs/{}", job.id),
        "html_url": format!("{b}/{full}/actions/runs/{}/job/{}", run.id, job.id),
        "status": job.status, "conclusion": job.conclusion, "name": job.name,
        "created_at": job.created_at, "started_at": job.started_at.clone().unwrap_or_else(|| job.created_at.clone()),
        "completed_at": job.completed_at, "steps": job.steps, "labels": job.labels,
        "check_run_url": format!("{b}/repos/{full}/check-runs/{}", job.id),
        "runner_id": job.runner_id, "runner_name": job.runner_name,
        "runner_group_id": job.runner_id.map(|_| 1), "runner_group_name": job.runner_id.map(|_| "Default"),
    })
}

/// `workflow` (REST) and the webhooks' `workflow`.
pub(crate) fn workflow_json(w: &World, repo: &str, wf: &WorkflowEntry) -> Value {
    let b = &w.base_url;
    let branch = w.repos.get(repo).map(|r| r.default_branch.clone()).unwrap_or_default();
    let file = wf.path.rsplit('/').next().unwrap_or(&wf.path);
    json!({
        "id": wf.id, "node_id": node_id("W", wf.id), "name": wf.name, "path": wf.path, "state": "active",
        "created_at": wf.created_at, "updated_at": wf.created_at,
        "url": format!("{b}/repos/{repo}/actions/workflows/{}", wf.id),
        "html_url": format!("{b}/{repo}/blob/{branch}/{}", wf.path),
        "badge_url": format!("{b}/{repo}/workflows/{file}/badge.svg"),
    })
}

/// The workflow entry of `path` in `repo`, made (with a fresh id) on first sight.
pub(crate) fn workflow_entry(w: &mut World, repo: &str, path: &str, name: Option<&str>) -> WorkflowEntry {
    let key = (repo.to_string(), path.to_string());
    if let Some(e) = w.actions.workflows.get_mut(&key) {
        if let Some(n) = name {
            e.name = n.to_string();
        }
        return e.clone();
    }
    let id = w.id();
    let e = WorkflowEntry { id, name: name.unwrap_or(path).to_string(), path: path.to_string(), created_at: now() };
    w.actions.workflows.insert(key, e.clone());
    e
}

/// Emits `workflow_run.{action}` for `run_id`, when the App subscribes to `workflow_run` (GitHub sends an
/// App only the events it subscribed to).
pub(crate) fn emit_run(inner: &Inner, w: &mut World, run_id: u64, action: &str) {
    if !w.app_events.iter().any(|e| e == "workflow_run") {
        return;
    }
    let run = w.actions.runs[&run_id].clone();
    let entry = w.actions.workflows.values().find(|e| e.id == run.workflow_id).cloned();
    let mut body = Map::new();
    body.insert("workflow_run".into(), run_json(w, &run));
    body.insert("workflow".into(), entry.map(|e| workflow_json(w, &run.repo, &e)).unwrap_or(Value::Null));
    crate::hooks::emit(inner, w, "workflow_run", action, Some(&run.repo), None, &run.actor, body);
}

/// Emits `workflow_job.{action}` for `job_id`, when the App subscribes to `workflow_job`.
pub(crate) fn emit_job(inner: &Inner, w: &mut World, job_id: u64, action: &str) {
    if !w.app_events.iter().any(|e| e == "workflow_job") {
        return;
    }
    let job = w.actions.jobs[&job_id].clone();
    let run = &w.actions.runs[&job.run_id];
    let (repo, actor) = (run.repo.clone(), run.actor.clone());
    let mut body = Map::new();
    body.insert("workflow_job".into(), job_json(w, &job));
    crate::hooks::emit(inner, w, "workflow_job", action, Some(&repo), None, &actor, body);
}

/// The runs for `GET /_sim/state`: id, repository, workflow path, status, conclusion, inputs and jobs.
pub(crate) fn state_json(w: &World) -> Value {
    let runs: Vec<Value> = w
        .actions
        .runs
        .values()
        .map(|r| {
            let jobs: Vec<Value> = r
                .jobs
                .iter()
                .filter_map(|j| w.actions.jobs.get(j))
                .map(|j| json!({"id": j.id, "name": j.name, "status": j.status, "conclusion": j.conclusion}))
                .collect();
            json!({"id": r.id, "repo": r.repo, "path": r.path, "display_title": r.display_title,
                   "status": r.status, "conclusion": r.conclusion, "inputs": r.inputs, "jobs": jobs})
        })
        .collect();
    json!({"runs": runs})
}

/// A run as [`crate::SimHandle::runs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The run id.
    pub id: u64,
    /// `owner/name`.
    pub repo: String,
    /// The workflow file, `.github/workflows/<file>`.
    pub path: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// `success`, `failure`, `cancelled` or `timed_out` once completed.
    pub conclusion: Option<String>,
    /// The dispatch inputs with the workflow's defaults filled in.
    pub inputs: BTreeMap<String, String>,
    /// Every job's log so far (step headers and output, the running step's included), in job order.
    pub log: String,
}

/// The run's page, where a run's and a job's `html_url` point (`/{owner}/{repo}/actions/runs/{run_id}`, also
/// `…/job/{job_id}`): status, conclusion, each job with its steps and log. `None` for any other path.
pub(crate) fn web(inner: &Inner, req: &crate::server::Req) -> Option<crate::server::Resp> {
    use crate::manifest::{esc, page};
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let (o, r, id) = match segs.as_slice() {
        [o, r, "actions", "runs", id] | [o, r, "actions", "runs", id, "job", _] => (o, r, id),
        _ => return None,
    };
    if req.method != axum::http::Method::GET {
        return None;
    }
    let w = inner.world();
    let full = format!("{o}/{r}");
    let Some(run) = id.parse::<u64>().ok().and_then(|id| w.actions.runs.get(&id)).filter(|run| run.repo == full) else {
        return Some(page(404, "Not Found", "<p>No such workflow run.</p>"));
    };
    let mut body = format!(
        "<p id=\"run\" data-status=\"{s}\" data-conclusion=\"{c}\">{title} · {path} · run #{n}: <b>{s}</b> {c}</p>",
        s = esc(&run.status),
        c = esc(run.conclusion.as_deref().unwrap_or_default()),
        title = esc(&run.display_title),
        path = esc(&run.path),
        n = run.run_number,
    );
    for job in run.jobs.iter().filter_map(|j| w.actions.jobs.get(j)) {
        let steps: String = job
            .steps
            .iter()
            .map(|s| format!("<li>{} — {}</li>", esc(&s.name), esc(s.conclusion.as_deref().unwrap_or(&s.status))))
            .collect();
        body.push_str(&format!(
            "<h2 id=\"job-{id}\">{name}: {status} {conclusion}</h2><ol>{steps}</ol><pre>{log}</pre>",
            id = job.id,
            name = esc(&job.name),
            status = esc(&job.status),
            conclusion = esc(job.conclusion.as_deref().unwrap_or_default()),
            log = esc(&job.full_log()),
        ));
    }
    Some(page(200, &format!("{} · {}", run.name, full), &body))
}

/// Sets Actions secret `name` of `repo`; `Err` names a missing repository.
pub(crate) fn set_secret(inner: &Inner, repo: &str, name: &str, value: &str) -> Result<(), String> {
    let mut w = inner.world();
    if !w.repos.contains_key(repo) {
        return Err(format!("no repository {repo}"));
    }
    w.actions.secrets.entry(repo.to_string()).or_default().insert(name.to_string(), value.to_string());
    Ok(())
}

/// Loses the runner of in-progress run `run_id` (see `SimHandle::lose_runner`).
pub(crate) fn lose_runner(inner: &Inner, run_id: u64) -> Result<(), String> {
    let status = inner.world().actions.runs.get(&run_id).map(|r| r.status.clone());
    match status.as_deref() {
        Some("in_progress") if inner.actions.stop(run_id, runner::Stop::Lost) => Ok(()),
        Some(s) => Err(format!("run {run_id} is {s}, not in progress")),
        None => Err(format!("no run {run_id}")),
    }
}

pub(crate) fn summary(w: &World, run: &Run) -> RunSummary {
    RunSummary {
        id: run.id,
        repo: run.repo.clone(),
        path: run.path.clone(),
        status: run.status.clone(),
        conclusion: run.conclusion.clone(),
        inputs: run.inputs.clone(),
        log: run.jobs.iter().filter_map(|j| w.actions.jobs.get(j)).map(|j| j.full_log()).collect(),
    }
}
