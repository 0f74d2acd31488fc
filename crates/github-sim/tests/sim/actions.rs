//! GitHub Actions in the simulator: workflow dispatch (with `return_run_details`) of a workflow committed to
//! the repository, runs and jobs as GitHub's REST description gives them, the simulated runner executing
//! the `run:` steps (inputs, secrets and contexts substituted; the runner's PATH), cancel, time limits, a lost
//! runner, at most `runners` runs at once, and the `workflow_run` / `workflow_job` webhooks in order.

use std::path::Path;
use std::time::Duration;

use crate::common::{Sim, TEST_TIMEOUT, denull, receiver, start_with};
use reqwest::Method;
use serde_json::{Value, json};

const REPO: &str = "acme/widgets";

/// The session workflow: inputs (one required, one defaulted), `run-name`, env at three levels, a `uses:`
/// step, and a step that writes what it saw.
const SESSION: &str = r#"name: Foreman session
run-name: "Session ${{ inputs.session }}"
on:
  workflow_dispatch:
    inputs:
      session:
        required: true
      url:
        default: http://default.invalid
env:
  TOP: top
jobs:
  session:
    runs-on: [self-hosted, linux]
    timeout-minutes: 5
    env:
      JOB: job
    steps:
      - uses: actions/checkout@v4
      - name: Work
        env:
          STEP: step
        run: |
          echo "session=${{ inputs.session }} url=${{ inputs.url }} secret=${{ secrets.TOKEN }} run=${{ github.run_id }} repo=${{ github.repository }}"
          echo "$TOP $JOB $STEP $GITHUB_RUN_ID" > "$OUT_DIR/out-${{ inputs.session }}.txt"
          pwd > "$OUT_DIR/pwd.txt"
          baked-in-tool
          echo "CARRIED=from an earlier step" >> "$GITHUB_ENV"
      - run: exit 3
        continue-on-error: true
      - name: Compared
        if: inputs.session == 'ABC' && env.JOB != 'other'
        run: echo "the condition held; $CARRIED"
      - if: failure()
        run: echo "never after success"
"#;

/// A step that waits for `$OUT_DIR/go`, recording the pid of a process it starts in its group; then a step
/// that runs only after success, and one that always runs (unless the runner is lost).
const WAITING: &str = r#"name: Waits
on: workflow_dispatch
jobs:
  wait:
    runs-on: ubuntu-latest
    steps:
      - run: echo waiting; bash -c 'echo $$ > "$OUT_DIR/pid-${{ github.run_id }}"; while [ ! -e "$OUT_DIR/go" ]; do sleep 0.05; done'
      - run: echo after
      - if: ${{ always() }}
        run: echo "cleanup ran"
"#;

/// A step that ignores SIGINT and SIGTERM (as do the processes it starts), then one that always runs.
const STUBBORN: &str = r#"on: workflow_dispatch
jobs:
  stubborn:
    steps:
      - run: |
          trap '' INT TERM
          bash -c 'echo $$ > "$OUT_DIR/pid-${{ github.run_id }}"; while true; do sleep 0.05; done'
      - if: always()
        run: echo "cleanup ran"
"#;

/// A job limited to about a second that sleeps far longer.
const SLOW: &str = r#"on: workflow_dispatch
jobs:
  slow:
    timeout-minutes: 0.02
    steps:
      - run: sleep 600
"#;

const PUSH_ONLY: &str = "on: push\njobs:\n  a:\n    steps:\n      - run: 'true'\n";

struct Fixture {
    s: Sim,
    token: String,
    out: tempfile::TempDir,
}

async fn fixture(runners: usize, webhook_url: Option<String>) -> Fixture {
    let s = start_with(|c| {
        c.runners = runners;
        c.webhook_url = webhook_url;
    })
    .await;
    s.sim
        .create_repo(
            "acme",
            "widgets",
            &[
                ("README.md", "hi\n"),
                (".github/workflows/session.yml", SESSION),
                (".github/workflows/waits.yml", WAITING),
                (".github/workflows/slow.yml", SLOW),
                (".github/workflows/stubborn.yml", STUBBORN),
                (".github/workflows/push.yml", PUSH_ONLY),
            ],
        )
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    // A tool "baked into" the runner, found on its PATH.
    let bin = out.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("baked-in-tool");
    std::fs::write(&tool, "#!/bin/sh\necho baked-in tool ran\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.sim.set_runner_path(&[bin]);
    s.sim.set_runner_env(&[("OUT_DIR", out.path().to_str().unwrap())]);
    let token = s.token("acme").await;
    Fixture { s, token, out }
}

impl Fixture {
    async fn dispatch(&self, workflow: &str, body: Value) -> reqwest::Response {
        let path = format!("/repos/{REPO}/actions/workflows/{workflow}/dispatches");
        self.s.call(Method::POST, &self.token, &path, Some(body)).await
    }

    /// Dispatches with `return_run_details` and returns the run id.
    async fn start(&self, workflow: &str, inputs: Value) -> u64 {
        let r = self.dispatch(workflow, json!({"ref": "main", "inputs": inputs, "return_run_details": true})).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["workflow_run_id"].as_u64().unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.s.call(Method::GET, &self.token, path, None).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

/// GitHub's REST description with nullable fields as JSON Schema nulls.
fn description() -> Value {
    let mut doc: Value = serde_json::from_slice(&github_sim::descriptions::rest_description()).unwrap();
    denull(&mut doc["components"]);
    denull(&mut doc["paths"]);
    doc
}

/// Checks `value` against the `status` answer of `method path` in the description.
fn conforms(doc: &Value, method: &str, path: &str, status: &str, value: &Value) {
    let mut schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "GitHub's description has {method} {path} {status}");
    schema["components"] = json!({"schemas": doc["components"]["schemas"].clone()});
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(value).take(5).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} does not match GitHub's schema: {errors:?}\n{value:#}");
}

fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        // A zombie has ended; only its parent has not reaped it yet.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every `workflow_run` / `workflow_job` delivery made so far validates against GitHub's webhook schema;
/// returns how many there were.
fn webhooks_validate(sim: &github_sim::SimHandle) -> usize {
    let actions: Vec<Value> = sim
        .deliveries()
        .into_iter()
        .filter(|d| d["event"].as_str().is_some_and(|e| e.starts_with("workflow_")))
        .collect();
    for d in &actions {
        let (event, action) = (d["event"].as_str().unwrap(), d["action"].as_str().unwrap());
        github_sim::validate_webhook(event, action, &d["payload"])
            .unwrap_or_else(|e| panic!("{event}.{action}: {e}\n{:#}", d["payload"]));
    }
    actions.len()
}

async fn read_when_there(path: &Path) -> String {
    until(&path.display().to_string(), || path.exists() && std::fs::metadata(path).is_ok_and(|m| m.len() > 0)).await;
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn a_dispatched_workflow_runs_its_steps_with_inputs_and_secrets_and_answers_as_github_describes() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let hooks = receiver(200).await;
        let f = fixture(4, Some(hooks.url.clone())).await;
        f.s.sim.set_actions_secret(REPO, "TOKEN", "s3cret").unwrap();
        let doc = description();

        let r = f
            .dispatch("session.yml", json!({"ref": "main", "inputs": {"session": "abc"}, "return_run_details": true}))
            .await;
        assert_eq!(r.status(), 200);
        let details: Value = r.json().await.unwrap();
        conforms(&doc, "post", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", "200", &details);
        let id = details["workflow_run_id"].as_u64().unwrap();
        assert_eq!(details["run_url"], json!(f.s.url(&format!("/repos/{REPO}/actions/runs/{id}"))));

        let run = f.s.sim.wait_run(id, "completed", TEST_TIMEOUT).await.expect("the run completes");
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", run.log);
        assert!(
            run.log.contains(&format!("session=abc url=http://default.invalid secret=s3cret run={id} repo={REPO}")),
            "inputs, the default, the secret and the contexts substituted: {}",
            run.log
        );
        assert!(run.log.contains("baked-in tool ran"), "the runner's PATH: {}", run.log);
        assert!(run.log.contains("does not run actions: `uses: actions/checkout@v4` skipped"), "{}", run.log);
        let out = std::fs::read_to_string(f.out.path().join("out-abc.txt")).unwrap();
        assert_eq!(out, format!("top job step {id}\n"), "workflow, job and step env, and GITHUB_RUN_ID");
        let pwd = std::fs::read_to_string(f.out.path().join("pwd.txt")).unwrap();
        assert!(!Path::new(pwd.trim()).exists(), "the job's working directory is temporary: {pwd}");

        // Runs, one run, its jobs, the workflow: as GitHub's description gives them.
        let runs = f.get(&format!("/repos/{REPO}/actions/runs")).await;
        conforms(&doc, "get", "/repos/{owner}/{repo}/actions/runs", "200", &runs);
        assert_eq!(runs["total_count"], 1);
        assert_eq!(runs["workflow_runs"][0]["id"], id);
        assert_eq!(f.get(&format!("/repos/{REPO}/actions/runs?status=completed")).await["total_count"], 1);
        assert_eq!(f.get(&format!("/repos/{REPO}/actions/runs?status=success")).await["total_count"], 1);
        assert_eq!(f.get(&format!("/repos/{REPO}/actions/runs?status=queued")).await["total_count"], 0);
        let one = f.get(&format!("/repos/{REPO}/actions/runs/{id}")).await;
        conforms(&doc, "get", "/repos/{owner}/{repo}/actions/runs/{run_id}", "200", &one);
        assert_eq!(
            (one["display_title"].as_str(), one["status"].as_str(), one["conclusion"].as_str()),
            (Some("Session abc"), Some("completed"), Some("success"))
        );
        assert_eq!(
            (one["event"].as_str(), one["path"].as_str()),
            (Some("workflow_dispatch"), Some(".github/workflows/session.yml"))
        );
        let jobs = f.get(&format!("/repos/{REPO}/actions/runs/{id}/jobs")).await;
        conforms(&doc, "get", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", "200", &jobs);
        let job = &jobs["jobs"][0];
        assert_eq!(job["labels"], json!(["self-hosted", "linux"]));
        let steps: Vec<(&str, &str)> = job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["conclusion"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("Run actions/checkout@v4", "skipped"),
                ("Work", "success"),
                ("Run exit 3", "failure"),
                ("Compared", "success"),
                ("Run echo \"never after success\"", "skipped")
            ],
            "continue-on-error keeps the job going; `if:` decides"
        );
        assert!(run.log.contains("the condition held; from an earlier step"), "$GITHUB_ENV: {}", run.log);
        assert!(!run.log.contains("\nnever after success\n"));
        let wf = f.get(&format!("/repos/{REPO}/actions/workflows/session.yml")).await;
        conforms(&doc, "get", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}", "200", &wf);
        assert_eq!(wf["id"], one["workflow_id"]);
        assert_eq!(f.get(&format!("/repos/{REPO}/actions/workflows/{}", wf["id"])).await["name"], "Foreman session");

        // The job's log: GitHub redirects to a download URL.
        let logs =
            f.s.call(Method::GET, &f.token, &format!("/repos/{REPO}/actions/jobs/{}/logs", job["id"]), None).await;
        assert_eq!(logs.status(), 200, "followed the redirect");
        assert!(logs.text().await.unwrap().contains("session=abc"));
        // The run's page, where its html_url points, as people open it from a report.
        let html = f.s.http.get(one["html_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(html.status(), 200);
        let html = html.text().await.unwrap();
        assert!(html.contains("data-conclusion=\"success\"") && html.contains("session=abc"), "{html}");

        // Webhooks: each validates against GitHub's schema, in the order GitHub sends them.
        let n = f.s.sim.deliveries().len() as u64;
        assert!(f.s.sim.wait_deliveries(n, TEST_TIMEOUT).await);
        let got: Vec<(String, Value)> = hooks
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h["x-github-event"].to_str().unwrap().to_string(), serde_json::from_slice(b).unwrap()))
            .filter(|(e, _)| e.starts_with("workflow_"))
            .collect();
        let order: Vec<String> = got.iter().map(|(e, p)| format!("{e}.{}", p["action"].as_str().unwrap())).collect();
        assert_eq!(
            order,
            [
                "workflow_run.requested",
                "workflow_job.queued",
                "workflow_run.in_progress",
                "workflow_job.in_progress",
                "workflow_job.completed",
                "workflow_run.completed"
            ]
        );
        for (event, p) in &got {
            github_sim::validate_webhook(event, p["action"].as_str().unwrap(), p)
                .unwrap_or_else(|e| panic!("{event}.{}: {e}\n{p:#}", p["action"]));
        }
        assert_eq!(got[5].1["workflow_run"]["conclusion"], "success");
        assert_eq!(got[4].1["workflow_job"]["run_id"], id);
        assert!(f.s.sim.state()["nonconforming"].as_array().unwrap().is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dispatch_refuses_as_github_does() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(4, None).await;
        let message = |r: Value| r["message"].as_str().unwrap_or_default().to_string();
        let r = f.dispatch("missing.yml", json!({"ref": "main"})).await;
        assert_eq!(r.status(), 404, "a workflow file missing at the ref");
        let r = f.dispatch("push.yml", json!({"ref": "main"})).await;
        assert_eq!(r.status(), 422);
        assert_eq!(message(r.json().await.unwrap()), "Workflow does not have 'workflow_dispatch' trigger");
        let r = f.dispatch("session.yml", json!({"ref": "main", "inputs": {}})).await;
        assert_eq!(r.status(), 422);
        assert_eq!(message(r.json().await.unwrap()), "Required input 'session' not provided");
        let r = f.dispatch("session.yml", json!({"ref": "main", "inputs": {"session": "a", "nope": "b"}})).await;
        assert_eq!(r.status(), 422);
        assert_eq!(message(r.json().await.unwrap()), "Unexpected inputs provided: [\"nope\"]");
        let r = f.dispatch("session.yml", json!({"ref": "no-such-branch", "inputs": {"session": "a"}})).await;
        assert_eq!(r.status(), 422);
        assert_eq!(message(r.json().await.unwrap()), "No ref found for: no-such-branch");
        let main_sha =
            f.get(&format!("/repos/{REPO}/branches/main")).await["commit"]["sha"].as_str().unwrap().to_string();
        let r = f.dispatch("session.yml", json!({"ref": main_sha, "inputs": {"session": "a"}})).await;
        assert_eq!(r.status(), 422, "a branch or tag, not a commit id");
        let r = f.dispatch("session.yml", json!({"inputs": {"session": "a"}})).await;
        assert_eq!(r.status(), 400, "`ref` is required by the description");
        // Without return_run_details: 204 and no body, and the run is there all the same.
        let r = f.dispatch("session.yml", json!({"ref": "main", "inputs": {"session": "quiet"}})).await;
        assert_eq!(r.status(), 204);
        assert_eq!(f.s.sim.runs(REPO).len(), 1);
        assert!(f.s.sim.runs("").iter().all(|r| r.inputs["session"] == "quiet"));
        // By the workflow's numeric id; another repository's id is not found here.
        let id = f.get(&format!("/repos/{REPO}/actions/workflows/session.yml")).await["id"].as_u64().unwrap();
        let r = f.dispatch(&id.to_string(), json!({"ref": "main", "inputs": {"session": "by-id"}})).await;
        assert_eq!(r.status(), 204);
        assert_eq!(f.s.sim.runs(REPO)[1].path, ".github/workflows/session.yml");
        f.s.sim.create_repo("acme", "gadgets", &[(".github/workflows/session.yml", SESSION)]).unwrap();
        let other = f.s.call(Method::GET, &f.token, "/repos/acme/gadgets/actions/workflows/session.yml", None).await;
        let other = other.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        assert_ne!(other, id);
        let r = f.dispatch(&other.to_string(), json!({"ref": "main", "inputs": {"session": "x"}})).await;
        assert_eq!(r.status(), 404);
        // A token without `actions` gets GitHub's 403.
        let issues_only = f.s.token_with("acme", json!({"permissions": {"issues": "write"}})).await;
        let r =
            f.s.call(
                Method::POST,
                &issues_only,
                &format!("/repos/{REPO}/actions/workflows/session.yml/dispatches"),
                Some(json!({"ref": "main", "inputs": {"session": "x"}})),
            )
            .await;
        assert_eq!(r.status(), 403);
        let r = f.s.call(Method::GET, &issues_only, &format!("/repos/{REPO}/actions/runs"), None).await;
        assert_eq!(r.status(), 403);
        let r = f.s.call(Method::GET, &f.token, &format!("/repos/{REPO}/actions/runs/1"), None).await;
        assert_eq!(r.status(), 404);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn cancel_kills_the_running_step_and_the_run_ends_cancelled() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(4, None).await;
        let id = f.start("waits.yml", json!({})).await;
        let pid = read_when_there(&f.out.path().join(format!("pid-{id}"))).await;
        assert!(!gone(&pid));
        assert_eq!(f.s.sim.run(id).unwrap().status, "in_progress");
        assert!(f.s.sim.run(id).unwrap().log.contains("\nwaiting\n"), "the running step's output is in the log");
        let r = f.s.call(Method::POST, &f.token, &format!("/repos/{REPO}/actions/runs/{id}/cancel"), None).await;
        assert_eq!(r.status(), 202);
        let run = f.s.sim.wait_run(id, "completed", TEST_TIMEOUT).await.expect("the run ends");
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
        assert!(run.log.contains("The operation was canceled."), "{}", run.log);
        assert!(!run.log.contains("\nafter\n"), "later steps do not run: {}", run.log);
        assert!(run.log.contains("\ncleanup ran\n"), "an `if: always()` step runs after a cancel: {}", run.log);
        until("the step's process to end", || gone(&pid)).await;
        let jobs = f.get(&format!("/repos/{REPO}/actions/runs/{id}/jobs")).await;
        assert_eq!(jobs["jobs"][0]["conclusion"], "cancelled");
        let steps: Vec<&str> =
            jobs["jobs"][0]["steps"].as_array().unwrap().iter().map(|s| s["conclusion"].as_str().unwrap()).collect();
        assert_eq!(steps, ["cancelled", "skipped", "success"]);
        let r = f.s.call(Method::POST, &f.token, &format!("/repos/{REPO}/actions/runs/{id}/cancel"), None).await;
        assert_eq!(r.status(), 409, "a completed run cannot be cancelled");
        assert_eq!(webhooks_validate(&f.s.sim), 6, "cancelled ones too");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn force_cancel_kills_a_step_that_ignores_the_cancel_at_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(4, None).await;
        let id = f.start("stubborn.yml", json!({})).await;
        let pid = read_when_there(&f.out.path().join(format!("pid-{id}"))).await;
        let cancel = |what: &'static str| {
            let path = format!("/repos/{REPO}/actions/runs/{id}/{what}");
            let f = &f;
            async move { f.s.call(Method::POST, &f.token, &path, None).await.status() }
        };
        assert_eq!(cancel("cancel").await, 202);
        assert_eq!(f.s.sim.run(id).unwrap().status, "in_progress", "SIGINT is ignored; SIGTERM comes after 7.5 s");
        let asked = std::time::Instant::now();
        assert_eq!(cancel("force-cancel").await, 202);
        let run = f.s.sim.wait_run(id, "completed", TEST_TIMEOUT).await.expect("the run ends");
        assert!(asked.elapsed() < Duration::from_secs(7), "at once, not after the 7.5 s grace: {:?}", asked.elapsed());
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
        assert!(!run.log.contains("\ncleanup ran\n"), "a force-cancel bypasses always(): {}", run.log);
        until("the step's process to be killed", || gone(&pid)).await;
        assert_eq!(cancel("force-cancel").await, 409);
        assert_eq!(webhooks_validate(&f.s.sim), 6);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_lost_runner_ends_the_run_failed_and_a_job_time_limit_ends_it_timed_out() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(4, None).await;
        let id = f.start("waits.yml", json!({})).await;
        let pid = read_when_there(&f.out.path().join(format!("pid-{id}"))).await;
        f.s.sim.lose_runner(id).unwrap();
        let run = f.s.sim.wait_run(id, "completed", TEST_TIMEOUT).await.expect("the run ends");
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        assert!(run.log.contains("lost communication with the server"), "{}", run.log);
        assert!(!run.log.contains("\ncleanup ran\n"), "nothing runs on a lost runner: {}", run.log);
        until("the step's process to be killed", || gone(&pid)).await;
        assert!(f.s.sim.lose_runner(id).is_err(), "only an in-progress run has a runner to lose");

        let slow = f.start("slow.yml", json!({})).await;
        let run = f.s.sim.wait_run(slow, "completed", TEST_TIMEOUT).await.expect("the run ends");
        assert_eq!(run.conclusion.as_deref(), Some("timed_out"), "{}", run.log);
        assert!(run.log.contains("has exceeded the maximum execution time"), "{}", run.log);
        assert_eq!(webhooks_validate(&f.s.sim), 12, "failed and timed-out ones too");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn with_two_runners_two_of_four_runs_wait_queued_until_one_ends() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(2, None).await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(f.start("waits.yml", json!({})).await);
        }
        for id in &ids[..2] {
            read_when_there(&f.out.path().join(format!("pid-{id}"))).await;
        }
        let queued = f.get(&format!("/repos/{REPO}/actions/runs?status=queued")).await;
        assert_eq!(queued["total_count"], 2, "{queued:#}");
        let ids_queued: Vec<u64> =
            queued["workflow_runs"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
        assert_eq!(ids_queued, [ids[3], ids[2]], "the later two, newest first");
        assert_eq!(f.get(&format!("/repos/{REPO}/actions/runs?status=in_progress")).await["total_count"], 2);
        // A queued run cancelled ends at once, without a runner.
        let r = f.s.call(Method::POST, &f.token, &format!("/repos/{REPO}/actions/runs/{}/cancel", ids[3]), None).await;
        assert_eq!(r.status(), 202);
        let run = f.s.sim.wait_run(ids[3], "completed", TEST_TIMEOUT).await.unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
        assert_eq!(f.s.sim.run(ids[2]).unwrap().status, "queued");
        std::fs::write(f.out.path().join("go"), "").unwrap();
        for id in &ids[..3] {
            let run = f.s.sim.wait_run(*id, "completed", TEST_TIMEOUT).await.unwrap();
            assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", run.log);
        }
        assert_eq!(webhooks_validate(&f.s.sim), 22, "four requested and queued, three started, four completed");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn with_no_runner_online_a_run_stays_queued_until_cancelled() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let f = fixture(0, None).await;
        let id = f.start("waits.yml", json!({})).await;
        assert_eq!(f.s.sim.run(id).unwrap().status, "queued");
        let queued = f.get(&format!("/repos/{REPO}/actions/runs?status=queued")).await;
        assert_eq!(queued["total_count"], 1, "{queued:#}");
        let r = f.s.call(Method::POST, &f.token, &format!("/repos/{REPO}/actions/runs/{id}/cancel"), None).await;
        assert_eq!(r.status(), 202);
        let run = f.s.sim.wait_run(id, "completed", TEST_TIMEOUT).await.unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
        assert!(!f.out.path().join(format!("pid-{id}")).exists(), "no step ran");
    })
    .await
    .expect("test timed out");
}

/// Kills the binary on drop so a failed assertion leaves no process behind.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn the_binary_takes_runners_and_its_control_routes_set_secrets_and_the_runner_and_lose_it() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let _child = Child(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_github-sim"))
                .args(["--listen", "127.0.0.1:0", "--runners", "1", "--state-dir"])
                .arg(&state)
                .env("RUST_LOG", "warn")
                .kill_on_drop(true)
                .spawn()
                .expect("binary starts"),
        );
        // app.json is written once the listener is bound.
        let app_json = state.join("app.json");
        until("app.json", || std::fs::read(&app_json).is_ok_and(|b| serde_json::from_slice::<Value>(&b).is_ok())).await;
        let app: Value = serde_json::from_slice(&std::fs::read(&app_json).unwrap()).unwrap();
        let url = app["api_url"].as_str().unwrap().to_string();
        let http = reqwest::Client::new();
        let control = |method: Method, path: &str, body: Option<Value>| {
            let rq = http.request(method, format!("{url}/_sim{path}"));
            let rq = match body {
                Some(b) => rq.json(&b),
                None => rq,
            };
            async move { rq.send().await.unwrap() }
        };
        let workflow = "on: workflow_dispatch\njobs:\n  a:\n    steps:\n      - run: |\n          echo \"secret=${{ secrets.KEY }} extra=$EXTRA\"\n          while [ ! -e \"$OUT_DIR/go\" ]; do sleep 0.05; done\n";
        let r = control(
            Method::POST,
            "/repos",
            Some(json!({"owner": "acme", "name": "widgets", "files": {".github/workflows/w.yml": workflow}})),
        )
        .await;
        assert_eq!(r.status(), 201);
        let r = control(Method::PUT, "/repos/acme/widgets/actions/secrets/KEY", Some(json!({"value": "k1"}))).await;
        assert_eq!(r.status(), 204);
        let out = tempfile::tempdir().unwrap();
        let r = control(
            Method::POST,
            "/actions/runner",
            Some(json!({"env": {"OUT_DIR": out.path(), "EXTRA": "x1"}, "path": ["/opt/tools"]})),
        )
        .await;
        assert_eq!(r.status(), 200);

        // An installation token, as an App gets one.
        let pem = std::fs::read_to_string(state.join("app.pem")).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &json!({"iat": now - 60, "exp": now + 500, "iss": app["app_id"].to_string()}),
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap();
        let installations: Value =
            http.get(format!("{url}/app/installations")).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
        let id = installations[0]["id"].as_u64().unwrap();
        let token: Value = http
            .post(format!("{url}/app/installations/{id}/access_tokens"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["token"].as_str().unwrap().to_string();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let r = http
                .post(format!("{url}/repos/acme/widgets/actions/workflows/w.yml/dispatches"))
                .bearer_auth(&token)
                .json(&json!({"ref": "main", "return_run_details": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            ids.push(r.json::<Value>().await.unwrap()["workflow_run_id"].as_u64().unwrap());
        }
        let runs = || async {
            control(Method::GET, "/actions/runs?repo=acme/widgets", None).await.json::<Value>().await.unwrap()["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["id"].as_u64().unwrap(), r["status"].as_str().unwrap().to_string(), r["conclusion"].clone()))
                .collect::<Vec<_>>()
        };
        let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
        while runs().await[0].1 != "in_progress" {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs().await[1].1, "queued", "--runners 1: the second waits");
        let r = control(Method::POST, &format!("/actions/runs/{}/lose-runner", ids[1]), None).await;
        assert_eq!(r.status(), 409, "a queued run has no runner to lose");
        let r = control(Method::POST, &format!("/actions/runs/{}/lose-runner", ids[0]), None).await;
        assert_eq!(r.status(), 202);
        while runs().await[1].1 != "in_progress" {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs().await[0], (ids[0], "completed".to_string(), json!("failure")));
        std::fs::write(out.path().join("go"), "").unwrap();
        while runs().await[1].1 != "completed" {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs().await[1].2, json!("success"));
        let jobs: Value = http
            .get(format!("{url}/repos/acme/widgets/actions/runs/{}/jobs", ids[1]))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let log = control(Method::GET, &format!("/actions/jobs/{}/logs", jobs["jobs"][0]["id"]), None).await;
        assert_eq!(log.status(), 200);
        assert!(log.text().await.unwrap().contains("secret=k1 extra=x1"));
    })
    .await
    .expect("test timed out");
}
