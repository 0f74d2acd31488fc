//! End to end, when things go wrong: Foreman killed with SIGKILL in the middle of a session, and GitHub
//! failing a fifth of its requests. A real `foreman serve` against github-sim over HTTP, real git, a
//! scripted command agent.

mod e2e_support;

use std::time::Duration;

use e2e_support::measure::{settled as is_settled, wait_lines};
use e2e_support::{FIXING_AGENT, LIFECYCLE, ORG, REPO, World};
use github_sim::Faults;
use serde_json::Value;

/// The board every test here uses, with the columns Foreman moves cards to.
const COLUMNS: [&str; 6] = ["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"];

/// Waits until the tracking comment on `number` gives the final report of a job that opened its pull
/// request.
async fn wait_done(world: &World, number: u64) -> Value {
    world
        .wait(&format!("the tracking comment of #{number} to report the pull request"), |s| {
            World::issue(s, number)["comments"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["body"].as_str().is_some_and(|b| b.contains("pull request ready"))))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_session_then_restart_completes_the_job_exactly_once() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let control = tempfile::tempdir().unwrap();
        let started = control.path().join("started");
        let go = control.path().join("go");
        // The agent says it started, then waits for the test's go-ahead (bounded by its own minute), then
        // commits its fix.
        let agent = format!(
            "echo \"$FOREMAN_SESSION_ID $$\" >> '{started}'\n\
             n=0\n\
             while [ ! -f '{go}' ]; do n=$((n+1)); [ $n -gt 1200 ] && exit 3; sleep 0.05; done\n\
             {FIXING_AGENT}",
            started = started.display(),
            go = go.display(),
        );
        let (share, dir) = e2e_support::shared(control.path());
        let mut world = World::start(&agent, &[(share, &dir)]).await;
        let (project, _) = world.sim.create_project(ORG, "Roadmap", &COLUMNS);
        let (number, _) = world.sim.create_issue(REPO, "Survive a crash", "Please fix it.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let first = wait_lines(&started, 1, LIFECYCLE, "the first session's agent to start").await;
        let job = world.job(number).await;
        assert_eq!(job["state"], "running", "{job}");
        world.kill9();

        world.start_foreman();
        let both = wait_lines(&started, 2, LIFECYCLE, "the agent to start again after the restart").await;
        assert_ne!(both[1].split(' ').next(), first[0].split(' ').next(), "a second session, not the first one");
        // The first session's agent died with the Foreman that ran it: it must not work on unwatched. (Its
        // `$$` is a pid in its sandbox's namespace: look for its session's processes on the host instead.)
        let first_session = first[0].split(' ').next().unwrap().to_owned();
        let needle = format!("FOREMAN_SESSION_ID={first_session}");
        let running = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
                let alive = std::fs::read_to_string(p.path().join("stat"))
                    .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')));
                alive
                    && std::fs::read(p.path().join("environ"))
                        .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
            })
        };
        let gone = tokio::time::timeout(Duration::from_secs(10), async {
            while running() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(gone.await.is_ok(), "the first agent (session {first_session}) still runs after Foreman was killed");
        std::fs::write(&go, "").unwrap();

        let state = wait_done(&world, number).await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        assert_eq!(World::tracking_comments(&state, number), 1, "exactly one tracking comment");
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let actions: Vec<&str> = job["audit"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
        println!("audit trail: {actions:?}");
        assert_eq!(actions.iter().filter(|a| **a == "claimed").count(), 2, "two claims: {actions:?}");
        let claimed_again = actions.iter().rposition(|a| *a == "claimed").unwrap();
        let first_claim = actions.iter().position(|a| *a == "claimed").unwrap();
        assert!(
            actions[first_claim..claimed_again].iter().any(|a| matches!(*a, "interrupted" | "expired" | "released")),
            "the interruption is on the audit trail between the claims: {actions:?}"
        );
        assert_eq!(actions.iter().filter(|a| **a == "succeeded").count(), 1, "{actions:?}");
        // One pull request, one check run for its head, the branch has the fix once.
        let pull = World::pulls_closing(&state, number).remove(0);
        let git_dir = world.sim.git_dir(REPO).unwrap();
        let log = std::process::Command::new("git")
            .args(["log", "--format=%s", &format!("main..{}", pull["head"].as_str().unwrap())])
            .current_dir(&git_dir)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&log.stdout);
        assert_eq!(log.lines().filter(|l| *l == format!("Fix #{number}")).count(), 1, "{log}");
    })
    .await
    .expect("the crash test finished in time");
}

/// The end state of `number` that must not depend on GitHub's faults: how many pull requests close it and
/// their branch, how many tracking comments it has, Foreman's labels on it, its card's column.
fn end_state(state: &Value, number: u64) -> Value {
    let issue = World::issue(state, number);
    let mut labels: Vec<String> = issue["labels"]
        .as_array()
        .map(|l| l.iter().filter_map(|l| l.as_str().or_else(|| l["name"].as_str()).map(str::to_owned)).collect())
        .unwrap_or_default();
    labels.sort();
    let pulls = World::pulls_closing(state, number);
    let column = state["projects"]
        .as_array()
        .and_then(|p| {
            p.iter().flat_map(|p| p["items"].as_array().cloned().unwrap_or_default()).find(|i| i["issue"] == number)
        })
        .map(|i| i["column"].clone())
        .unwrap_or(Value::Null);
    serde_json::json!({
        "pulls": pulls.len(),
        "heads": pulls.iter().map(|p| p["head"].clone()).collect::<Vec<_>>(),
        "open": pulls.iter().all(|p| p["state"] == "open"),
        "tracking_comments": World::tracking_comments(state, number),
        "labels": labels,
        "column": column,
    })
}

/// Runs `titles` through a fresh world (one board, each issue on it, all labelled at once), with `faults`
/// set before the labels; returns each issue's [`end_state`] and its job's state.
async fn run_issues(titles: &[&str], faults: Option<Faults>) -> Vec<(Value, Value)> {
    let world = World::start(FIXING_AGENT, &[("FOREMAN_MAX_SESSIONS_PER_REPO", "3")]).await;
    let (project, _) = world.sim.create_project(ORG, "Roadmap", &COLUMNS);
    let mut numbers = Vec::new();
    for title in titles {
        let (n, _) = world.sim.create_issue(REPO, title, "Please fix it.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, n, "alice").unwrap();
        numbers.push(n);
    }
    let faults_on = faults.is_some();
    if let Some(f) = faults {
        world.sim.set_faults(f);
    }
    let started = std::time::Instant::now();
    for &n in &numbers {
        world.sim.add_label(REPO, n, "foreman", "alice").unwrap();
    }
    // The job is finished once its final report is out; the last label and card changes follow it. Under
    // faults every retried call waits its backoff (1 s and up) on top of the 1 s pacing of mutations: allow
    // three lifecycles' time.
    let settled = world.sim.wait_until(LIFECYCLE * 3, |s| numbers.iter().all(|&n| is_settled(s, REPO, n))).await;
    let Some(settled) = settled else {
        let s = world.sim.state();
        let ends: Vec<Value> = numbers.iter().map(|&n| end_state(&s, n)).collect();
        panic!("not settled (faults: {faults_on}): {ends:?}; foreman said:\n{}", world.logs())
    };
    world.sim.set_faults(Faults::default());
    let mut out = Vec::new();
    for &n in &numbers {
        out.push((end_state(&settled, n), world.job(n).await["state"].clone()));
    }
    let faulted = settled["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s >= 400))
        .count();
    let logs = world.logs();
    let count = |what: &str| logs.lines().filter(|l| l.contains(what)).count();
    let longest_wait = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "retrying GitHub call")
        .max_by_key(|l| l["wait_ms"].as_u64().unwrap_or(0));
    if let Some(l) = longest_wait {
        println!("longest retry wait: {} ms, {} after {}", l["wait_ms"], l["endpoint"], l["f"]);
    }
    println!(
        "settled in {:?}; requests answered with an error status: {faulted} of {}; GitHub calls retried: {}; \
         deliveries left in the inbox for the next pass: {}; failed attempts: {}",
        started.elapsed(),
        settled["requests"].as_array().unwrap().len(),
        count("retrying GitHub call"),
        count("left in the inbox"),
        count("\"outcome\":\"Failed"),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_of_github_requests_failing_leaves_the_same_end_state() {
    tokio::time::timeout(Duration::from_secs(400), async {
        let titles = ["Fix the parser", "Fix the printer", "Fix the linker"];
        let faults = Faults {
            error_rate: 0.2,
            kinds: ["500", "502", "429", "secondary", "graphql_rate_limit", "latency"].map(String::from).to_vec(),
            latency_ms: 200,
            exhaust_primary_for_secs: None,
        };
        // Two worlds side by side: one without faults, one with.
        let (clean, faulty) = tokio::join!(run_issues(&titles, None), run_issues(&titles, Some(faults)));
        for (end, job) in &clean {
            assert_eq!(end["pulls"], 1, "{end}");
            assert_eq!(end["tracking_comments"], 1, "{end}");
            assert_eq!(end["column"], "In review", "{end}");
            assert_eq!(job, "succeeded");
        }
        assert_eq!(faulty, clean, "the same end state with GitHub failing a fifth of its requests");
    })
    .await
    .expect("the fault test finished in time");
}

/// When an installation has less than a tenth of its hourly quota left, its jobs are queued but not
/// claimed: a session makes many calls, and what is left goes to replies and reports. When the quota
/// window resets, the runner looks again and the job runs to its pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_its_installations_quota_window_to_reset() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let installation = world.sim.installation_id(ORG);
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        let before = time::OffsetDateTime::now_utc();
        // 100 of 5,000 calls left (2%) until 4 s from now; GitHub gives the reset in whole seconds, so the
        // window is seen to start again no earlier than 3 s from `before`.
        world.sim.spend_rate_limit(installation, 100, Duration::from_secs(4));
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        wait_done(&world, number).await;
        let job = world.job(number).await;
        let at = |action: &str| {
            let entry = job["audit"].as_array().unwrap().iter().find(|a| a["action"] == action).unwrap();
            time::OffsetDateTime::parse(entry["at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let window_starts = before + time::Duration::seconds(3);
        assert!(at("enqueued") < window_starts, "queued while the quota was low: {job}");
        assert!(at("claimed") >= window_starts, "claimed only once the window reset: {job}");
        assert!(world.logs().contains("holding new sessions"), "the hold is logged");
        assert_eq!(job["state"], "succeeded", "{job}");
    })
    .await
    .expect("within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_whose_issue_closed_while_down_is_cancelled_at_start_and_reported() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        // Redelivery off: the `issues.closed` delivery Foreman missed stays missed, and only reconciliation
        // (at start) can find the closed issue.
        let setup = e2e_support::Setup {
            env: &[(share, &dir)],
            config: "[reconcile]\nredeliver = false\n",
            ..Default::default()
        };
        let mut world = World::start_with(&e2e_support::blocking_agent(marks.path()), setup).await;
        let (running, _) = world.sim.create_issue(REPO, "Hold the slot", "Takes a while.", "alice").unwrap();
        world.sim.add_label(REPO, running, "foreman", "alice").unwrap();
        e2e_support::wait_for("the first agent to start", || marks.path().join(format!("started-{running}")).exists())
            .await;
        // One session per repository: the second job waits, and says so.
        let (number, _) = world.sim.create_issue(REPO, "Wait your turn", "Then do it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        world
            .wait("the second job's queued report", |s| World::labels(s, number).iter().any(|l| l == "foreman:queued"))
            .await;

        world.kill9();
        world.sim.set_issue_state(REPO, number, "closed", "alice").unwrap();
        world.start_foreman();

        let state = world
            .wait("the cancelled report of the closed issue's job", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("Foreman: cancelled"))
                    && !World::labels(s, number).iter().any(|l| l.starts_with("foreman:"))
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("closed"), "says why: {body}");
        assert_eq!(world.job(number).await["state"], "cancelled");
        std::fs::write(marks.path().join("go"), "").unwrap();
    })
    .await
    .expect("reconciliation cancelled and reported the job in time");
}
