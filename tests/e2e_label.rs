//! End to end: a labelled issue becomes a pull request. A real `foreman serve` against github-sim over HTTP,
//! real git, and a scripted command agent or the real Claude Code CLI against the Messages API stub.

mod e2e_support;
mod session_support;

use anthropic_stub::{Block, Reply, Stub};
use e2e_support::{FIXING_AGENT, ORG, REPO, Setup, World};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_issue_becomes_one_pull_request_that_closes_it() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let world = World::start(FIXING_AGENT, &[("FOREMAN_PUBLIC_URL", "https://foreman.example.com")]).await;
        let project = world.board();
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let pull = world.wait_pull(number).await;
        assert_eq!(pull["head"], format!("foreman/{number}-add-a-fix"), "{pull}");
        assert_eq!(pull["base"], "main");

        // The job finishes after the pull request: wait for the final report.
        let state = world
            .wait("the job to succeed and the tracking comment to say so", |s| {
                let issue = World::issue(s, number);
                issue["comments"].as_array().is_some_and(|c| {
                    c.iter().any(|c| c["body"].as_str().is_some_and(|b| b.contains("pull request ready")))
                })
            })
            .await;
        assert_eq!(World::tracking_comments(&state, number), 1, "exactly one tracking comment");
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let decided = job["audit"].as_array().unwrap().last().unwrap()["cause"].as_str().unwrap().to_owned();
        assert!(
            decided.contains("constitution allowed the change (1 files"),
            "the allow decision is audited: {decided}"
        );

        // The tracking comment links the session's log in the console's viewer; the admin API serves the file
        // (loopback here).
        let session = job["session"].as_str().unwrap();
        let link = format!("https://foreman.example.com/sessions/{session})");
        let tracking = World::issue(&state, number)["comments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["body"].as_str().unwrap().contains("foreman:tracking"))
            .unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(tracking.contains(&link), "{tracking}");
        let log =
            reqwest::get(world.foreman.as_ref().unwrap().url(&format!("/api/sessions/{session}/log"))).await.unwrap();
        assert_eq!(log.status(), 200);
        let log = log.text().await.unwrap();
        assert!(log.lines().any(|l| l.contains("\"agent_start\"") || l.contains("agent_end")), "{log}");
        let missing = reqwest::get(world.foreman.as_ref().unwrap().url("/api/sessions/..%2Fstore/log")).await.unwrap();
        assert_eq!(missing.status(), 404);

        // The card moved to In review with the pull request, and the running label is gone.
        let state = world.wait_column(project, number, "In review").await;
        let labels = World::labels(&state, number);
        assert!(!labels.iter().any(|l| l.starts_with("foreman:")), "Foreman's labels are removed: {labels:?}");

        // The branch on the simulator's git server has the agent's commit.
        let git_dir = world.sim.git_dir(REPO).unwrap();
        let log = std::process::Command::new("git")
            .args(["log", "--format=%s", &format!("foreman/{number}-add-a-fix")])
            .current_dir(&git_dir)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains(&format!("Fix #{number}")));

        // Foreman's log is fields and sentences for operators, never Rust's debug text.
        let debug_text = ["Some(", "None,", "Ok(", "Err(", " { ", "ExitStatus(", "Os {", "[\\\""];
        for line in world.log_lines() {
            let found: Vec<&&str> = debug_text.iter().filter(|d| line.contains(**d)).collect();
            assert!(found.is_empty(), "debug text {found:?} in a log line: {line}");
        }
    })
    .await
    .expect("the lifecycle finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_requesting_changes_adds_a_commit_to_the_same_pull_request() {
    tokio::time::timeout(Duration::from_secs(180), async {
        // The fixing agent, keeping a copy of each prompt it is given.
        let prompts = tempfile::tempdir().unwrap();
        let agent = format!("cp \"$FOREMAN_PROMPT_FILE\" '{}/prompt-'$$\n{FIXING_AGENT}", prompts.path().display());
        let (share, dir) = e2e_support::shared(prompts.path());
        let world = World::start(&agent, &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        let pr = pull["number"].as_u64().unwrap();
        assert_eq!(pull["commits"].as_array().unwrap().len(), 1, "{pull}");
        world
            .wait("the first job to finish", |s| {
                World::issue(s, number)["comments"].as_array().is_some_and(|c| {
                    c.iter().any(|c| c["body"].as_str().is_some_and(|b| b.contains("pull request ready")))
                })
            })
            .await;

        let inline = [("fix-1.txt", 1, "Say which issue this fixes in words, too.")];
        world
            .sim
            .review_with_comments(REPO, pr, "CHANGES_REQUESTED", "Please also cover the edge case.", "alice", &inline)
            .unwrap();
        let state = world
            .wait("a second commit on the same pull request", |s| {
                World::repo_state(s)["pulls"].as_array().is_some_and(|p| {
                    p.iter().any(|p| p["number"] == pr && p["commits"].as_array().is_some_and(|c| c.len() == 2))
                })
            })
            .await;
        let pulls = World::repo_state(&state)["pulls"].as_array().unwrap().clone();
        assert_eq!(pulls.len(), 1, "still one pull request: {pulls:?}");
        let job = world.job(pr).await;
        assert_eq!(job["kind"], "follow-up", "{job}");
        assert_eq!(job["trigger"], "review", "{job}");
        // The follow-up's prompt carries the review's summary and its inline comment, with file and line.
        let prompts: Vec<String> = std::fs::read_dir(prompts.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let follow_up =
            prompts.iter().find(|p| p.contains("Please also cover the edge case.")).expect("a follow-up prompt");
        assert!(
            follow_up.contains("(review comment on `fix-1.txt`, line 1)")
                && follow_up.contains("Say which issue this fixes in words, too."),
            "{follow_up}"
        );
    })
    .await
    .expect("the follow-up finished in time");
}

/// The real Claude Code CLI (`FOREMAN_TEST_CLAUDE`, or `.ci/node`; the test fails without it) run by
/// `foreman serve` against the Messages API stub: the stub's scripted tool calls make the CLI write a file
/// and commit it, and the final text becomes the pull request's summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_claude_cli_a_labelled_issue_becomes_a_pull_request_with_the_agents_edit() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let claude = session_support::claude_path();
        let stub = Stub::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = e2e_support::claude_config(&claude, &stub.url(), home.path());
        let env = [("FOREMAN_AGENT_BACKEND", "claude"), ("ANTHROPIC_API_KEY", "sk-ant-api03-e2e-stub")];
        let world = World::start_with("exit 1", Setup { env: &env, config: &config, ..Setup::default() }).await;
        let project = world.board();
        let (number, _) = world.sim.create_issue(REPO, "Add a greeting", "A hello.txt, please.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();

        // The agent sees its repository at the sandbox's fixed path.
        let worktree = std::path::Path::new(foreman::executor::local::sandbox::WORKSPACE);
        stub.push(Reply::blocks(vec![
            Block::Text("I'll add the file.".into()),
            Block::ToolUse {
                name: "Write".into(),
                input: json!({ "file_path": worktree.join("hello.txt"), "content": "Hello, world!\n" }),
            },
        ]));
        stub.push(Reply::tool_use(
            "Bash",
            json!({ "command": "git add hello.txt && git commit -q -m 'Add hello.txt'", "description": "Commit" }),
        ));
        stub.push(Reply::text("Added hello.txt with a greeting."));
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let pull = world.wait_pull(number).await;
        let branch = format!("foreman/{number}-add-a-greeting");
        assert_eq!(pull["head"], branch, "{pull}");
        assert!(pull["body"].as_str().unwrap().contains("Added hello.txt with a greeting."), "{pull}");
        let state = world.wait_column(project, number, "In review").await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");

        // The file the CLI's Write tool made, in the commit its Bash tool made, on the simulator's git server.
        let git_dir = world.sim.git_dir(REPO).unwrap();
        let show = |args: &[&str]| {
            let out = std::process::Command::new("git").args(args).current_dir(&git_dir).output().unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(show(&["show", &format!("{branch}:hello.txt")]), "Hello, world!\n");
        assert_eq!(show(&["log", "-1", "--format=%s", &branch]).trim(), "Add hello.txt");

        // The stub saw the issue in the prompt and the configured key, and was asked exactly the scripted turns.
        let requests = stub.requests();
        assert_eq!(requests.len(), 3, "{:?}", requests.iter().map(|r| r.last_user_text()).collect::<Vec<_>>());
        let prompt = requests[0].last_user_text();
        assert!(prompt.contains("Add a greeting"), "{prompt}");
        // alice, the issue's author, has write access (looked up): her issue is instructions, not untrusted text.
        assert!(prompt.contains("Opened by @alice (has write access)"), "{prompt}");
        assert!(prompt.contains("<trusted-") && prompt.contains(" author=\"alice\">\nTitle: Add a greeting"), "{prompt}");
        // The constitution's rules, one list item each.
        assert!(prompt.contains("\n- Work on a branch whose name starts with `foreman/`."), "{prompt}");
        assert!(requests.iter().all(|r| r.credential.as_deref() == Some("sk-ant-api03-e2e-stub")));
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");

        // The session's figures, as the CLI reported them: three turns, two tool calls, one commit.
        let body = pull["body"].as_str().unwrap();
        for row in ["| agent | claude (claude-sonnet-4-5) |", "| turns | 3 |", "| tool calls | 2 |", "| commits | 1 |"]
        {
            assert!(body.contains(row), "the pull request's figures lack {row:?}: {body}");
        }
        let state = world
            .wait("the tracking comment to say the job succeeded", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("pull request ready"))
            })
            .await;
        let tracking = World::tracking_body(&state, number).unwrap();
        assert!(tracking.contains("| 3 | 2 |"), "turns and tool calls in the tracking comment: {tracking}");
        assert!(tracking.contains("Added hello.txt with a greeting."), "{tracking}");

        // A review requesting changes: the follow-up resumes the session that wrote the branch (the CLI sends
        // that conversation again), in the same worktree, and adds a second commit to the same pull request.
        let pr = pull["number"].as_u64().unwrap();
        stub.push(Reply::tool_use(
            "Bash",
            json!({ "command": "echo 'Hello again!' >> hello.txt && git commit -qam 'Greet twice'", "description": "Commit" }),
        ));
        stub.push(Reply::text("Greeted twice, as the review asked."));
        world.sim.review(REPO, pr, "CHANGES_REQUESTED", "Please greet twice.", "alice").unwrap();
        world
            .wait("a second commit on the pull request", |s| {
                World::repo_state(s)["pulls"].as_array().is_some_and(|p| {
                    p.iter().any(|p| p["number"] == pr && p["commits"].as_array().is_some_and(|c| c.len() == 2))
                })
            })
            .await;
        assert_eq!(show(&["show", &format!("{branch}:hello.txt")]), "Hello, world!\nHello again!\n");
        let requests = stub.requests();
        assert_eq!(requests.len(), 5, "three turns, then two for the follow-up");
        let resumed = requests[3].body.to_string();
        assert!(resumed.contains("I'll add the file."), "the follow-up carries the first session: {resumed}");
        assert!(resumed.contains("Please greet twice."), "and the review: {resumed}");
    })
    .await
    .expect("the lifecycle finished in time");
}

/// Closing an issue another depends on starts the dependent at once, from the `issues.closed` delivery:
/// reconciliation, which also reads dependencies, runs only at start and then hourly here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_dependency_starts_its_dependent_at_once() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let setup = Setup { config: "[reconcile]\ninterval_secs = 3600\n", ..Default::default() };
        let world = World::start_with(FIXING_AGENT, setup).await;
        let (first, _) = world.sim.create_issue(REPO, "Lay the groundwork", "First.", "alice").unwrap();
        let (number, _) = world
            .sim
            .create_issue(REPO, "Build on it", &format!("Then this.\n\nDepends on #{first}"), "alice")
            .unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        world
            .wait("the dependent to be queued", |s| World::labels(s, number).iter().any(|l| l == "foreman:queued"))
            .await;
        let job = world.job(number).await;
        assert_eq!(job["waiting_on"], json!([{"repo": REPO, "issue": first}]), "it waits for #{first}: {job}");

        world.sim.set_issue_state(REPO, first, "closed", "alice").unwrap();
        world.wait_pull(number).await;
        let job = world.job(number).await;
        assert!(job["waiting_on"].is_null(), "{job}");
    })
    .await
    .expect("the dependent ran soon after its dependency closed");
}

/// A dependency closed before its dependent is queued, while Foreman was not listening, does not hold it:
/// Foreman reads the dependency's state when it queues the job, without waiting for reconciliation (hourly
/// here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_closed_already_does_not_block() {
    tokio::time::timeout(Duration::from_secs(120), async {
        // Redelivery off: the `issues.closed` delivery missed while Foreman was down stays missed.
        let config = "[reconcile]\ninterval_secs = 3600\nredeliver = false\n";
        let mut world = World::start_with(FIXING_AGENT, Setup { config, ..Default::default() }).await;
        let (first, _) = world.sim.create_issue(REPO, "Done long ago", "First.", "alice").unwrap();
        world.kill9();
        world.sim.set_issue_state(REPO, first, "closed", "alice").unwrap();
        world.start_foreman();
        let (number, _) = world
            .sim
            .create_issue(REPO, "Build on it", &format!("Then this.\n\nDepends on #{first}"), "alice")
            .unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        world.wait_pull(number).await;
        let job = world.job(number).await;
        assert_eq!(job["depends_on"], json!([{"repo": REPO, "issue": first}]), "{job}");
        assert!(job["waiting_on"].is_null(), "{job}");
    })
    .await
    .expect("the dependent ran without waiting for reconciliation");
}

/// An issue body can list any number of dependencies; queueing its job reads at most
/// `DEPENDENCY_READS` of them from GitHub, and the rest are left to reconciliation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_reads_a_bounded_number_of_dependencies() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let config = "[reconcile]\ninterval_secs = 3600\nredeliver = false\n";
        let mut world = World::start_with(FIXING_AGENT, Setup { config, ..Default::default() }).await;
        let bound = foreman::dispatch::effects::DEPENDENCY_READS;
        let mut deps = Vec::new();
        for i in 0..bound + 2 {
            deps.push(world.sim.create_issue(REPO, &format!("Step {i}"), "Done.", "alice").unwrap().0);
        }
        world.kill9();
        for d in &deps {
            world.sim.set_issue_state(REPO, *d, "closed", "alice").unwrap();
        }
        world.start_foreman();
        let body: String = deps.iter().map(|d| format!("Depends on #{d}\n")).collect();
        let (number, _) = world.sim.create_issue(REPO, "Build on them all", &body, "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        // The labelling delivery counts as processed only after its effects, the reads included.
        let labeled = World::last_delivery(&world.sim.state(), "issues")["guid"].as_str().unwrap().to_owned();
        world.wait_processed(&labeled).await;
        let state = world.sim.state();
        let read: Vec<u64> = deps
            .iter()
            .copied()
            .filter(|d| World::requests(&state).iter().any(|(m, p)| m == "GET" && p.ends_with(&format!("/issues/{d}"))))
            .collect();
        assert_eq!(read, deps[..bound], "the first {bound} dependencies were read, no more");
        let job = world.job(number).await;
        let waiting: Vec<u64> =
            job["waiting_on"].as_array().unwrap().iter().map(|d| d["issue"].as_u64().unwrap()).collect();
        assert_eq!(waiting, deps[bound..], "{job}");
    })
    .await
    .expect("the job was queued in time");
}

/// A queued job's place follows its issue: a priority label added or removed, or a phase written into the
/// title, re-places it among the queued jobs at once (here behind a running job that holds the one slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_label_or_a_phase_in_the_title_re_places_a_queued_job() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let marks = tempfile::tempdir().unwrap();
        let agent = e2e_support::blocking_agent(marks.path());
        let shared = e2e_support::shared(marks.path());
        let config = "[scheduler]\nmax_sessions = 1\n";
        let world =
            World::start_with(&agent, Setup { config, env: &[(shared.0, &shared.1)], ..Default::default() }).await;
        let (running, _) = world.sim.create_issue(REPO, "Hold the slot", "First.", "alice").unwrap();
        world.sim.add_label(REPO, running, "foreman", "alice").unwrap();
        e2e_support::wait_for("the first job to start", || marks.path().join(format!("started-{running}")).exists())
            .await;
        let (a, _) = world.sim.create_issue(REPO, "Fix the first thing", "A.", "alice").unwrap();
        let (b, _) = world.sim.create_issue(REPO, "Fix the second thing", "B.", "alice").unwrap();
        for n in [a, b] {
            world.sim.add_label(REPO, n, "foreman", "alice").unwrap();
        }
        let positions = || async { (world.job(a).await["position"].clone(), world.job(b).await["position"].clone()) };
        let until = |want: (u64, u64), what: &'static str| {
            let positions = &positions;
            async move {
                let waited = tokio::time::timeout(Duration::from_secs(30), async {
                    while positions().await != (json!(want.0), json!(want.1)) {
                        tokio::time::sleep(e2e_support::POLL).await;
                    }
                });
                if waited.await.is_err() {
                    panic!("{what}: positions (#{a}, #{b}) are {:?}, not {want:?}", positions().await);
                }
            }
        };
        until((1, 2), "in the order they were labelled").await;
        // A queued job says what it waits for: the slot the running job holds.
        let slot = format!("⏳ Waiting for a free slot, held by #{running}.");
        world
            .wait("the queued comment to name the slot's holder", |s| {
                World::tracking_body(s, a)
                    .is_some_and(|b| b.contains(&slot) && b.contains("Position in the queue: **1**"))
            })
            .await;

        world.sim.add_label(REPO, b, "priority:high", "alice").unwrap();
        until((2, 1), "the priority label puts the second first").await;
        assert_eq!(world.job(b).await["priority"], 1);

        world.sim.remove_label(REPO, b, "priority:high", "alice").unwrap();
        until((1, 2), "without it, back in age order").await;

        world.sim.edit_issue(REPO, b, Some("Phase 1.1 - Fix the second thing"), None, "alice").unwrap();
        until((2, 1), "a phase key in the title orders before no key").await;
        let job = world.job(b).await;
        assert_eq!(job["phase"], json!({"kind": "phase", "phase": 1, "task": 1}), "{job}");
        assert_eq!(job["title"], "Phase 1.1 - Fix the second thing", "{job}");
        std::fs::write(marks.path().join("go"), "").unwrap();
    })
    .await
    .expect("the queue followed the issues in time");
}

/// A usage limit holds the credential, not the job: once a session hits the Claude usage limit with the
/// only configured credential, no other job starts (here one in another repository) until the reset; the
/// jobs say what they wait for, and `GET /api/status` shows the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_holds_every_session_until_the_reset() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let claude = session_support::claude_path();
        let stub = Stub::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = e2e_support::claude_config(&claude, &stub.url(), home.path());
        let resets_at = time::OffsetDateTime::now_utc() + Duration::from_secs(3 * 3600);
        stub.set_fallback(Reply::usage_limit("five_hour", resets_at.unix_timestamp()));
        let env = [("FOREMAN_AGENT_BACKEND", "claude"), ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-e2e-stub")];
        let other: [(&str, &[(&str, &str)]); 1] = [("other", &[("README.md", "# other\n")])];
        let setup = Setup { env: &env, config: &config, repos: &other, ..Setup::default() };
        let world = World::start_with("exit 1", setup).await;

        let (first, _) = world.sim.create_issue(REPO, "Add a greeting", "A hello.txt, please.", "alice").unwrap();
        world.sim.add_label(REPO, first, "foreman", "alice").unwrap();
        world
            .wait_log("the first job to wait for the usage limit", |l| {
                l["message"] == "finished" && l["span"]["issue"].as_str() == Some(first.to_string().as_str())
            })
            .await;
        let job = world.job(first).await;
        assert_eq!(
            (job["state"].as_str(), job["wait"]["kind"].as_str()),
            (Some("queued"), Some("usage-limit")),
            "{job}"
        );
        assert_eq!(job["attempts"], 0, "a wait is not an attempt: {job}");
        let asked = stub.requests().len();

        let (second, _) = world.sim.create_issue("acme/other", "Add a farewell", "A bye.txt.", "alice").unwrap();
        world.sim.add_label("acme/other", second, "foreman", "alice").unwrap();
        let until = foreman::job::wait::when(resets_at);
        let state = world
            .wait("the second job to say it waits for the usage limit", |s| {
                let repo = s["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/other").unwrap();
                let issue = repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == second).unwrap();
                issue["comments"].as_array().unwrap().iter().any(|c| {
                    c["body"]
                        .as_str()
                        .is_some_and(|b| b.contains(&format!("⏳ Waiting until {until}: the claude usage limit")))
                })
            })
            .await;
        assert!(World::pulls_closing(&state, second).is_empty());
        let job = world.job_in("acme/other", second).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");
        assert_eq!(stub.requests().len(), asked, "no session started against the held credential");
        let url = world.foreman_url("/api/status");
        let status: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(status["hold"]["kind"], "usage-limit", "{status}");
        assert_eq!(
            status["hold"]["until"],
            resets_at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap(),
            "{status}"
        );
    })
    .await
    .expect("the hold was in place in time");
}

/// The attempt counter tells the truth: "attempt N of M" never passes its limit, and after `/foreman retry`
/// it counts again from 1 and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_counter_never_passes_its_limit_and_counts_again_after_a_retry() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let config = "[scheduler]\nmax_failures = 2\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\n";
        // Changes nothing and says nothing: a failure (a final message alone would be an answer).
        let world = World::start_with("true", Setup { config, ..Default::default() }).await;
        let (number, _) = world.sim.create_issue(REPO, "Do the impossible", "Please.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let stuck = |s: &serde_json::Value| World::tracking_body(s, number).is_some_and(|b| b.contains("stuck"));
        let state = world.wait("the job to be set aside", stuck).await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("Attempt 2 of 2."), "{body}");

        world.sim.comment(REPO, number, "/foreman retry", "alice").unwrap();
        world
            .wait("the retried job to run", |s| World::tracking_body(s, number).is_some_and(|b| !b.contains("stuck")))
            .await;
        let state = world.wait("the job to be set aside again", stuck).await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("Attempt 2 of 2, counted again since `/foreman retry`."), "{body}");
        assert_eq!(world.job(number).await["attempts"], 4, "four sessions ran");
    })
    .await
    .expect("in time");
}
