//! End to end with the Actions executor (`executor.kind = "actions"`): a real `foreman serve` dispatches each
//! session as a workflow run on github-sim, whose simulated runner runs the committed workflow's steps: the
//! workflow `foreman actions workflow` prints, which runs `foreman session --connect` (this build) with the
//! command backend. Foreman is the only writer: the runner hands its work back as a git bundle.

mod e2e_support;
mod session_support;

use std::path::Path;
use std::time::Duration;

use e2e_support::{FIXING_AGENT, REPO, Setup, World};
use serde_json::Value;

/// The workflow file, as `foreman actions workflow` prints it.
fn workflow(backend: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .args(["actions", "workflow", "--backend", backend])
        .env_remove("FOREMAN_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A world whose sessions run on github-sim's runner, with `foreman` on the runner's PATH; the workflow is
/// committed unless `commit_workflow` is false.
async fn actions_world(agent: &str, env: &[(&str, &str)], commit_workflow: bool) -> World {
    actions_world_with(agent, env, "", commit_workflow, &[], None).await
}

/// [`actions_world`] with more configuration (after the report's), more directories on the runner's PATH, and
/// the simulator's number of runners (`None`: its default).
async fn actions_world_with(
    agent: &str,
    env: &[(&str, &str)],
    config: &str,
    commit_workflow: bool,
    runner_path: &[std::path::PathBuf],
    runners: Option<usize>,
) -> World {
    let defaults = [("FOREMAN_EXECUTOR_KIND", "actions"), ("FOREMAN_EXECUTOR_POLL_INTERVAL_SECS", "1")];
    let mut all: Vec<(&str, &str)> = defaults.into_iter().filter(|(k, _)| !env.iter().any(|(e, _)| e == k)).collect();
    all.extend_from_slice(env);
    let world = World::start_with(
        agent,
        Setup {
            env: &all,
            config: &format!("[report]\nmin_edit_interval_secs = 1\n\n{config}"),
            runners,
            ..Setup::default()
        },
    )
    .await;
    let mut path = vec![Path::new(env!("CARGO_BIN_EXE_foreman")).parent().unwrap().to_owned()];
    path.extend_from_slice(runner_path);
    world.sim.set_runner_path(&path);
    if commit_workflow {
        let backend = if config.contains("backend = \"claude\"") { "claude" } else { "command" };
        world.sim.push_file(REPO, ".github/workflows/foreman-session.yml", &workflow(backend), "alice").unwrap();
    }
    world
}

/// An agent that says what it does, says it started (`<marks>/started-<issue>`), waits for `<marks>/go`, then
/// runs `then`.
fn waiting_agent(marks: &Path, then: &str) -> String {
    format!(
        r#"echo "::foreman progress working on the fix"
touch '{marks}/started-'"$FOREMAN_ISSUE"
n=0
while [ ! -e '{marks}/go' ]; do
  n=$((n + 1))
  if [ "$n" -gt 1200 ]; then echo "never released" >&2; exit 1; fi
  sleep 0.05
done
{then}"#,
        marks = marks.display()
    )
}

/// Waits until `path` exists, or fails with Foreman's log and the runs' logs.
async fn wait_file(world: &World, what: &str, path: &Path) {
    let found = tokio::time::timeout(e2e_support::LIFECYCLE, async {
        while !path.exists() {
            tokio::time::sleep(e2e_support::POLL).await;
        }
    })
    .await;
    if found.is_err() {
        let runs: Vec<String> = runs(world).iter().map(|r| format!("run {} {}: {}", r.id, r.status, r.log)).collect();
        panic!("timed out waiting for {what}; runs:\n{}\nforeman said:\n{}", runs.join("\n"), world.logs());
    }
}

fn runs(world: &World) -> Vec<github_sim::RunSummary> {
    world.sim.runs(REPO)
}

/// Waits (bounded) until `n` runs were dispatched, or fails with Foreman's log.
async fn wait_runs(world: &World, n: usize, what: &str) {
    let dispatched = tokio::time::timeout(e2e_support::LIFECYCLE, async {
        while runs(world).len() < n {
            tokio::time::sleep(e2e_support::POLL).await;
        }
    })
    .await;
    assert!(dispatched.is_ok(), "timed out waiting for {what}; foreman said:\n{}", world.logs());
}

fn tracking_contains(state: &Value, number: u64, text: &str) -> bool {
    World::tracking_body(state, number).is_some_and(|b| b.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_issue_becomes_a_pull_request_made_on_an_actions_runner() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        let world = actions_world(&waiting_agent(marks.path(), FIXING_AGENT), &[], true).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        // While it runs on the runner, the tracking comment shows the agent's progress, streamed to Foreman.
        wait_file(&world, "the agent to start on the runner", &marks.path().join(format!("started-{number}"))).await;
        world
            .wait("the tracking comment to show the runner's progress", |s| {
                tracking_contains(s, number, "working on the fix")
            })
            .await;
        let running = runs(&world);
        assert_eq!(running.len(), 1, "one run dispatched");
        assert_eq!(running[0].status, "in_progress");
        assert_eq!(running[0].path, ".github/workflows/foreman-session.yml");
        std::fs::write(marks.path().join("go"), "").unwrap();

        let pull = world.wait_pull(number).await;
        assert_eq!(pull["head"], format!("foreman/{number}-add-a-fix"), "{pull}");
        let state = world.wait("the job to succeed", |s| tracking_contains(s, number, "pull request ready")).await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");

        // The commit on the branch is the agent's, made on the runner and pushed by Foreman.
        let git_dir = world.sim.git_dir(REPO).unwrap();
        let log = std::process::Command::new("git")
            .args(["log", "--format=%s", &format!("foreman/{number}-add-a-fix")])
            .current_dir(&git_dir)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains(&format!("Fix #{number}")));

        // GitHub's runs API shows the completed run, dispatched with the session's id.
        let session = job["session"].as_str().unwrap().to_owned();
        let run = world.sim.wait_run(running[0].id, "completed", Duration::from_secs(30)).await.expect("the run ends");
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", run.log);
        assert_eq!(run.inputs["session_id"], session);
        assert!(run.inputs["session_url"].ends_with(&format!("/remote/sessions/{session}")));
        let id = world.sim.installation_id(e2e_support::ORG);
        let token: Value = reqwest::Client::new()
            .post(format!("{}/app/installations/{id}/access_tokens", world.sim.url()))
            .bearer_auth(world.sim.app_jwt())
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/repos/{REPO}/actions/runs", world.sim.url()))
            .header("authorization", format!("token {}", token["token"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = listed["workflow_runs"].as_array().cloned().unwrap_or_default();
        assert!(
            listed.iter().any(|r| r["id"] == run.id && r["status"] == "completed"),
            "the runs API lists the completed run: {listed:?}"
        );

        // The session log on Foreman holds the runner's lines and the dispatch.
        let log = reqwest::get(world.foreman_url(&format!("/api/sessions/{session}/log"))).await.unwrap();
        let log = log.text().await.unwrap();
        assert!(log.contains("\"dispatched\"") && log.contains("\"remote\":true"), "{log}");
        assert!(log.contains("agent_start"), "{log}");

        // The session token is spent: the runner's endpoints refuse it now.
        let token = &run.inputs["session_token"];
        let refused = reqwest::Client::new()
            .post(format!("{}/connect", run.inputs["session_url"]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert!(!world.logs().contains(token.as_str()), "the token is never logged");
    })
    .await
    .expect("the lifecycle finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_the_running_workflow_run() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        let world = actions_world(&waiting_agent(marks.path(), FIXING_AGENT), &[], true).await;
        let (number, _) = world.sim.create_issue(REPO, "Long job", "It takes a while.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        wait_file(&world, "the agent to start on the runner", &marks.path().join(format!("started-{number}"))).await;
        let run = runs(&world).remove(0);

        world.sim.comment(REPO, number, "/foreman stop", "alice").unwrap();
        let ended = world.sim.wait_run(run.id, "completed", Duration::from_secs(60)).await.expect("the run ends");
        assert_eq!(ended.conclusion.as_deref(), Some("cancelled"), "{}", ended.log);
        world
            .wait("the tracking comment to say cancelled", |s| tracking_contains(s, number, "Foreman: cancelled"))
            .await;
        // Released now, an agent that was not stopped would hand back a commit.
        std::fs::write(marks.path().join("go"), "").unwrap();
        world
            .wait_log("the job's task to finish", |l| {
                l["message"] == "finished" && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
            })
            .await;
        let job = world.job(number).await;
        assert_eq!(job["state"], "cancelled", "{job}");
        assert!(World::repo_state(&world.sim.state())["pulls"].as_array().unwrap().is_empty(), "no pull request");
        assert_eq!(world.foreman_branches(), Vec::<String>::new(), "nothing pushed");
        // The token went with the session.
        let refused = reqwest::Client::new()
            .post(format!("{}/connect", ended.inputs["session_url"]))
            .bearer_auth(&ended.inputs["session_token"])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    })
    .await
    .expect("the lifecycle finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_gone_silent_ends_in_a_retry_after_the_claim_expires_with_one_pull_request() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        // The first session's runner freezes (its `foreman` stopped mid-session: no more reports, the run
        // still in progress on GitHub); the second one fixes the issue.
        let agent = format!(
            r#"if [ ! -e '{marks}/first' ]; then
  touch '{marks}/first'
  kill -STOP "$PPID"
  sleep 60
  exit 1
fi
{FIXING_AGENT}"#,
            marks = marks.path().display()
        );
        let world = actions_world(&agent, &[("FOREMAN_CLAIM_TTL_SECONDS", "10")], true).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        wait_file(&world, "the first runner to freeze", &marks.path().join("first")).await;

        let pull = world.wait_pull(number).await;
        assert_eq!(pull["head"], format!("foreman/{number}-add-a-fix"), "{pull}");
        let state = world.wait("the job to succeed", |s| tracking_contains(s, number, "pull request ready")).await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        assert!(world.logs().contains("a claim expired"), "the first claim expired");
        let all = runs(&world);
        assert_eq!(all.len(), 2, "a second run for the retry");
        // The frozen run was cancelled when its claim expired.
        let first = world.sim.wait_run(all[0].id, "completed", Duration::from_secs(60)).await.expect("it ends");
        assert_eq!(first.conclusion.as_deref(), Some("cancelled"), "{}", first.log);
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    })
    .await
    .expect("the lifecycle finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_without_handing_back_is_an_infrastructure_failure_naming_the_run() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        // Reading the run back is rare here: the `workflow_run` webhook is what tells Foreman the run ended.
        let env = [("FOREMAN_EXECUTOR_POLL_INTERVAL_SECS", "600")];
        let world = actions_world(&waiting_agent(marks.path(), FIXING_AGENT), &env, true).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        wait_file(&world, "the agent to start on the runner", &marks.path().join(format!("started-{number}"))).await;
        let run = runs(&world).remove(0);
        world.sim.lose_runner(run.id).unwrap();
        let run = world.sim.wait_run(run.id, "completed", Duration::from_secs(30)).await.expect("the run ends");
        let state = world
            .wait("the tracking comment to report the lost run", |s| {
                tracking_contains(s, number, "without handing back the session's work")
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("infrastructure"), "{body}");
        let url = format!("/actions/runs/{}", run.id);
        assert!(body.contains(&url), "the report names the run: {body}");
    })
    .await
    .expect("the lifecycle finishes");
}

/// No runner online (self-hosted runners down): the run waits in GitHub's queue no longer than
/// `executor.queue_timeout_secs`. Then Foreman cancels it and the attempt is an infrastructure failure naming
/// the run, so the job's claim and slot are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_no_runner_takes_is_cancelled_after_the_queue_timeout_and_the_claim_is_released() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let env = [("FOREMAN_EXECUTOR_QUEUE_TIMEOUT_SECS", "2")];
        let world = actions_world_with(FIXING_AGENT, &env, "", true, &[], Some(0)).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let state = world
            .wait("the tracking comment to report the run no runner took", |s| {
                tracking_contains(s, number, "No runner took the session")
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("infrastructure"), "{body}");
        let first = runs(&world).into_iter().min_by_key(|r| r.id).expect("a run was dispatched");
        assert!(body.contains(&format!("/actions/runs/{}", first.id)), "the report names the run: {body}");
        let run = world.sim.wait_run(first.id, "completed", Duration::from_secs(30)).await.expect("it is cancelled");
        assert_eq!(run.conclusion.as_deref(), Some("cancelled"), "{}", run.log);
        let job = world.job(number).await;
        assert!(job["failures"]["infrastructure"].as_u64().unwrap_or(0) >= 1, "{job}");
        assert_eq!(job["last_failure"]["class"], "infrastructure", "{job}");
        // The claim was released: the job is claimed again and dispatched anew, after its backoff.
        wait_runs(&world, 2, "the job to be dispatched again").await;
    })
    .await
    .expect("the lifecycle finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_that_does_not_apply_on_its_base_is_refused() {
    tokio::time::timeout(Duration::from_secs(150), async {
        // The agent rewrites history: its branch no longer descends from the base Foreman handed out.
        let agent = r#"git checkout -q --orphan rewritten
git rm -rq --cached .
echo "all mine" > only.txt
git add only.txt
git commit -q -m "Rewritten history"
git branch -q -M "$FOREMAN_BRANCH"
echo "Rewrote everything""#;
        let world = actions_world(agent, &[], true).await;
        let (number, _) = world.sim.create_issue(REPO, "Rewrite", "Start over.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let state = world
            .wait("the tracking comment to report the refusal", |s| {
                tracking_contains(s, number, "Foreman refused the runner's work")
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("does not descend from the base"), "{body}");
        assert!(body.contains("validation"), "{body}");
        assert!(World::repo_state(&state)["pulls"].as_array().unwrap().is_empty(), "no pull request");
        assert_eq!(world.foreman_branches(), Vec::<String>::new(), "nothing pushed");
    })
    .await
    .expect("the lifecycle finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_workflow_is_reported_once_with_the_command_that_prints_it() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let world = actions_world(FIXING_AGENT, &[], false).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let state = world
            .wait("the tracking comment to say the workflow is missing", |s| {
                tracking_contains(s, number, "foreman actions workflow")
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("foreman-session.yml"), "{body}");
        assert_eq!(World::tracking_comments(&state, number), 1, "one comment says it");
        assert!(runs(&world).is_empty(), "no run started");
    })
    .await
    .expect("the lifecycle finishes");
}

/// The Claude Code CLI on the runner, against the Messages API stub: its credential is the workflow's
/// secret, never Foreman's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claude_cli_runs_on_the_runner_with_the_workflows_secret() {
    use anthropic_stub::{Reply, Stub};
    tokio::time::timeout(Duration::from_secs(150), async {
        let claude = session_support::claude_path();
        let stub = Stub::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = e2e_support::claude_config(&claude, &stub.url(), home.path());
        let env = [("FOREMAN_AGENT_BACKEND", "claude"), ("ANTHROPIC_API_KEY", "sk-ant-api03-foremans-own")];
        let claude_dir = claude.parent().unwrap().to_owned();
        let world = actions_world_with("exit 1", &env, &config, true, &[claude_dir], None).await;
        world.sim.set_actions_secret(REPO, "ANTHROPIC_API_KEY", "sk-ant-api03-the-workflows-secret").unwrap();
        stub.push(Reply::tool_use(
            "Bash",
            serde_json::json!({
                "command": "echo 'Hello, world!' > hello.txt && git add hello.txt && git commit -q -m 'Add hello.txt'",
                "description": "Add and commit"
            }),
        ));
        stub.push(Reply::text("Added hello.txt with a greeting."));
        let (number, _) = world.sim.create_issue(REPO, "Add a greeting", "A hello.txt, please.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let pull = world.wait_pull(number).await;
        assert!(pull["body"].as_str().unwrap().contains("Added hello.txt with a greeting."), "{pull}");
        let branch = format!("foreman/{number}-add-a-greeting");
        let out = std::process::Command::new("git")
            .args(["show", &format!("{branch}:hello.txt")])
            .current_dir(world.sim.git_dir(REPO).unwrap())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!\n");
        let requests = stub.requests();
        assert!(requests[0].last_user_text().contains("Add a greeting"));
        assert!(
            requests.iter().all(|r| r.credential.as_deref() == Some("sk-ant-api03-the-workflows-secret")),
            "{:?}",
            requests.iter().map(|r| r.credential.clone()).collect::<Vec<_>>()
        );
        let run = runs(&world).remove(0);
        assert!(!run.log.contains("the-workflows-secret"), "the secret is not in the run's log");
    })
    .await
    .expect("the lifecycle finishes");
}

/// Foreman killed (`kill -9`) while a runner works: the new process does not know the session, so the run
/// ends at once, by whichever comes first: the runner sees its token refused and stops its agent (the run
/// fails), or recovery cancels the run it recorded. The job runs again on a new runner, to one pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_foreman_restarts_the_orphaned_runner_stops_and_the_job_runs_again() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        // The same address after the restart, as a deployed Foreman has: the runner's session URL still leads
        // to Foreman.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let env = [("FOREMAN_LISTEN", listen.as_str())];
        let mut world = actions_world(&waiting_agent(marks.path(), FIXING_AGENT), &env, true).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        wait_file(&world, "the agent to start on the runner", &marks.path().join(format!("started-{number}"))).await;
        let first = runs(&world).remove(0);

        world.kill9();
        world.start_foreman();
        // The agent still waits for `go`: only the refused token or the cancel ends the first run.
        let ended = world.sim.wait_run(first.id, "completed", Duration::from_secs(60)).await.expect("it ends");
        let refused =
            ended.conclusion.as_deref() == Some("failure") && ended.log.contains("Foreman refused the session token");
        assert!(refused || ended.conclusion.as_deref() == Some("cancelled"), "{:?}: {}", ended.conclusion, ended.log);
        assert!(!marks.path().join("go").exists());

        std::fs::write(marks.path().join("go"), "").unwrap();
        let pull = world.wait_pull(number).await;
        assert_eq!(pull["head"], format!("foreman/{number}-add-a-fix"), "{pull}");
        let state = world.wait("the job to succeed", |s| tracking_contains(s, number, "pull request ready")).await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        assert_eq!(runs(&world).len(), 2, "the job ran again on a second runner");
    })
    .await
    .expect("the lifecycle finishes");
}

/// Foreman killed while a session's run waits in the queue for a runner (none is online): at start,
/// recovery cancels the run by the id it recorded, so it never starts on a runner later only to be refused,
/// and the job is dispatched again as a new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_recovery_cancels_the_queued_run_of_an_interrupted_session() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let mut world = actions_world_with(FIXING_AGENT, &[], "", true, &[], Some(0)).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        world
            .wait("the session to wait for a runner", |s| {
                tracking_contains(s, number, "waiting for a GitHub Actions runner")
            })
            .await;
        let queued = runs(&world).remove(0);
        assert_eq!(queued.status, "queued", "no runner is online");

        world.kill9();
        world.start_foreman();
        let ended =
            world.sim.wait_run(queued.id, "completed", Duration::from_secs(60)).await.expect("recovery cancels it");
        assert_eq!(ended.conclusion.as_deref(), Some("cancelled"), "{}", ended.log);
        wait_runs(&world, 2, "the job to be dispatched again").await;
        let logs = world.logs();
        assert!(logs.contains("cancelled the workflow run of a session interrupted by a restart"), "{logs}");
    })
    .await
    .expect("the lifecycle finishes");
}
