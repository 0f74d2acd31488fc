//! End to end with `/foreman` commands in issue comments: a writer's `run` is acknowledged with 👀 and
//! becomes a pull request; a reader's is refused with a reply naming the permission and queues nothing; a
//! command in a code block or a quote does nothing; `stop` cancels a queued job, and a running one
//! mid-session with nothing pushed; the same delivery redelivered after the pull request exists changes
//! nothing. A real `foreman serve` against github-sim over HTTP, real git, a scripted command agent.

mod e2e_support;

use e2e_support::{FIXING_AGENT, REPO, World, blocking_agent, wait_for};
use serde_json::Value;
use std::time::Duration;

/// Bounds each test: one lifecycle is seconds on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The 👀 reactions on comment `id` of issue `number`, by whom.
fn eyes(state: &Value, number: u64, id: u64) -> Vec<String> {
    World::comment_by_id(state, number, id)["reactions"]
        .as_array()
        .map(|r| {
            r.iter().filter(|r| r["content"] == "eyes").filter_map(|r| r["user"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

/// Comments on issue `number` written by Foreman's bot.
fn bot_comments(world: &World, state: &Value, number: u64) -> Vec<Value> {
    let bot = world.sim.bot_login();
    World::comments(state, number).into_iter().filter(|c| c["user"] == bot.as_str()).collect()
}

/// Waits for the job of `number` to succeed with its pull request, and returns the state then.
async fn wait_success(world: &World, number: u64) -> Value {
    world.wait_pull(number).await;
    world
        .wait("the tracking comment to say the job succeeded", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains("pull request ready"))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_run_is_acknowledged_and_becomes_a_pull_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        let id = world.sim.comment(REPO, number, "/foreman run keep it small", "alice").unwrap();

        let state = wait_success(&world, number).await;
        // alice shows as COLLABORATOR, which says nothing of write access: her permission was looked up.
        let delivery = world.delivery_for_comment(id);
        assert_eq!(delivery["payload"]["comment"]["author_association"], "COLLABORATOR", "{delivery}");
        let lookup = format!("/repos/{REPO}/collaborators/alice/permission");
        assert!(
            World::requests(&state).iter().any(|(m, p)| m == "GET" && *p == lookup),
            "alice's permission was looked up"
        );
        assert_eq!(eyes(&state, number, id), [world.sim.bot_login()], "one 👀 from Foreman on the command");
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
        assert_eq!(World::tracking_comments(&state, number), 1, "exactly one tracking comment");
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("a `/foreman` command from @alice"), "{body}");
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["trigger"], "command", "{job}");
        assert_eq!(job["requester"], "alice", "{job}");
        assert_eq!(job["instructions"], "keep it small", "{job}");

        // The pull request: a review asked of the requester, and a successful check run on its head commit.
        let pull = World::pulls_closing(&state, number).remove(0);
        let review = format!("/repos/{REPO}/pulls/{}/requested_reviewers", pull["number"]);
        assert!(World::requests(&state).iter().any(|(m, p)| m == "POST" && *p == review), "a review was requested");
        let checks: Vec<&Value> = World::repo_state(&state)["check_runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["head_sha"] == pull["head_sha"])
            .collect();
        assert_eq!(checks.len(), 1, "one check run on the head commit: {checks:?}");
        assert_eq!(checks[0]["name"], "Foreman");
        assert_eq!(checks[0]["conclusion"], "success", "{}", checks[0]);
    })
    .await
    .expect("the lifecycle finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readers_run_is_refused_naming_the_permission_and_queues_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        let id = world.sim.comment(REPO, number, "/foreman run", "bob").unwrap();
        let guid = world.delivery_for_comment(id)["guid"].as_str().unwrap().to_owned();

        let record = world.wait_processed(&guid).await;
        let state = world.sim.state();
        let replies = bot_comments(&world, &state, number);
        assert_eq!(replies.len(), 1, "one reply: {replies:?}\n{record}");
        let reply = replies[0]["body"].as_str().unwrap();
        assert!(reply.contains("@bob"), "{reply}");
        assert!(reply.contains("needs write permission"), "names the permission needed: {reply}");
        assert!(reply.contains("you have read"), "names the permission held: {reply}");
        assert!(eyes(&state, number, id).is_empty(), "no acknowledgement of a refused command");
        assert!(World::tracking_body(&state, number).is_none(), "no tracking comment");
        assert_eq!(world.job(number).await, Value::Null, "no job (GET /api/jobs answers 404)");
    })
    .await
    .expect("the delivery was processed in time");
}

/// A user with triage permission shows as COLLABORATOR in `author_association`, as a writer does; only the
/// permission GitHub reports tells them apart. Their `run` is refused after the lookup, like a reader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triage_collaborators_run_is_refused_after_a_permission_lookup() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        world.sim.create_user("tess", github_sim::Permission::Triage, "User");
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        let id = world.sim.comment(REPO, number, "/foreman run", "tess").unwrap();
        let delivery = world.delivery_for_comment(id);
        assert_eq!(delivery["payload"]["comment"]["author_association"], "COLLABORATOR", "{delivery}");
        let guid = delivery["guid"].as_str().unwrap().to_owned();

        let record = world.wait_processed(&guid).await;
        let state = world.sim.state();
        let lookup = format!("/repos/{REPO}/collaborators/tess/permission");
        assert!(
            World::requests(&state).iter().any(|(m, p)| m == "GET" && *p == lookup),
            "tess's permission was looked up\n{record}"
        );
        let replies = bot_comments(&world, &state, number);
        assert_eq!(replies.len(), 1, "one reply: {replies:?}\n{record}");
        let reply = replies[0]["body"].as_str().unwrap();
        assert!(reply.contains("@tess"), "{reply}");
        assert!(reply.contains("needs write permission"), "names the permission needed: {reply}");
        assert!(reply.contains("you have triage"), "names the permission held: {reply}");
        assert!(eyes(&state, number, id).is_empty(), "no acknowledgement of a refused command");
        assert!(World::tracking_body(&state, number).is_none(), "no tracking comment");
        assert_eq!(world.job(number).await, Value::Null, "no job (GET /api/jobs answers 404)");
        assert_eq!(world.foreman_branches(), Vec::<String>::new(), "nothing pushed");
        assert!(World::repo_state(&state)["pulls"].as_array().unwrap().is_empty(), "no pull request");
    })
    .await
    .expect("the delivery was processed in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_a_code_block_or_a_quote_does_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        let bodies = [
            "To start it, write:\n\n```\n/foreman run\n```\n",
            "> /foreman run\n\nThat is what bob wrote elsewhere.",
            "Try `/foreman run` when ready.",
        ];
        let ids: Vec<u64> = bodies.iter().map(|b| world.sim.comment(REPO, number, b, "alice").unwrap()).collect();
        for id in &ids {
            let guid = world.delivery_for_comment(*id)["guid"].as_str().unwrap().to_owned();
            let record = world.wait_processed(&guid).await;
            let summary = record["processing"]["decisions"].to_string();
            assert!(!summary.contains("enqueue"), "{summary}");
        }
        let state = world.sim.state();
        assert_eq!(bot_comments(&world, &state, number), Vec::<Value>::new(), "no reply, no tracking comment");
        for id in &ids {
            assert!(eyes(&state, number, *id).is_empty(), "no acknowledgement");
        }
        assert!(World::labels(&state, number).is_empty(), "no labels");
        assert_eq!(world.job(number).await, Value::Null, "no job");
    })
    .await
    .expect("the deliveries were processed in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_a_running_and_a_queued_job_and_nothing_is_pushed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let go = marks.path().join("go");
        let agent = blocking_agent(marks.path());
        let started = |n: u64| marks.path().join(format!("started-{n}"));
        // One session per repository (the default): the second issue waits in the queue behind the first.
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&agent, &[("FOREMAN_MAX_SESSIONS_PER_REPO", "1"), (share, &dir)]).await;
        let (running, _) = world.sim.create_issue(REPO, "Long job", "It takes a while.", "alice").unwrap();
        world.sim.comment(REPO, running, "/foreman run", "alice").unwrap();
        wait_for("the agent to start", || started(running).exists()).await;
        world.wait("foreman:running", |s| World::labels(s, running).iter().any(|l| l == "foreman:running")).await;
        let (queued, _) = world.sim.create_issue(REPO, "Next job", "After that one.", "alice").unwrap();
        world.sim.comment(REPO, queued, "/foreman run", "alice").unwrap();
        world.wait("foreman:queued", |s| World::labels(s, queued).iter().any(|l| l == "foreman:queued")).await;

        // The queued job first: cancelled, and it never runs.
        world.sim.comment(REPO, queued, "/foreman stop", "alice").unwrap();
        world
            .wait("the queued job's tracking comment to say cancelled, without the queued label", |s| {
                World::tracking_body(s, queued).is_some_and(|b| b.contains("Foreman: cancelled"))
                    && !World::labels(s, queued).iter().any(|l| l.starts_with("foreman:"))
            })
            .await;
        let body = World::tracking_body(&world.sim.state(), queued).unwrap();
        assert!(body.contains("Cancelled: `/foreman stop` by alice."), "{body}");

        // Then the running one.
        world.sim.comment(REPO, running, "/foreman stop", "alice").unwrap();
        world
            .wait("the tracking comment to say cancelled", |s| {
                World::tracking_body(s, running).is_some_and(|b| b.contains("Foreman: cancelled"))
            })
            .await;
        // Release the agent: a session that was not stopped would now finish and be pushed.
        std::fs::write(&go, "").unwrap();
        world
            .wait_log("the job's task to finish", |l| {
                l["message"] == "finished" && l["span"]["issue"].as_str() == Some(running.to_string().as_str())
            })
            .await;

        let job = world.job(running).await;
        assert_eq!(job["state"], "cancelled", "{job}");
        let state = world.sim.state();
        assert!(World::repo_state(&state)["pulls"].as_array().unwrap().is_empty(), "no pull request at all");
        assert_eq!(world.foreman_branches(), Vec::<String>::new(), "nothing pushed");
        assert_eq!(World::tracking_comments(&state, running), 1, "exactly one tracking comment");
        // The job task's last report (the one with the session's figures) lands, with no state label left.
        world
            .wait("the job task's cancelled report, and no state label", |s| {
                !World::labels(s, running).iter().any(|l| l.starts_with("foreman:"))
                    && World::tracking_body(s, running)
                        .is_some_and(|b| b.contains("Foreman: cancelled") && b.contains("| turns |"))
            })
            .await;
        // It still says who stopped the job, as the stop's own report did.
        let body = World::tracking_body(&world.sim.state(), running).unwrap();
        assert!(body.contains("Cancelled: `/foreman stop` by alice."), "{body}");

        // The slot is free now, and the queued job stayed cancelled: it was never claimed.
        let job = world.job(queued).await;
        assert_eq!(job["state"], "cancelled", "{job}");
        assert_eq!(job["attempts"], 0, "{job}");
        assert!(!started(queued).exists(), "the cancelled job's agent never started");
    })
    .await
    .expect("the stops took effect in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_redelivered_after_the_pull_request_changes_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        let id = world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();
        let before = wait_success(&world, number).await;
        let job_before = world.job(number).await;

        let first = world.delivery_for_comment(id);
        let again = world.sim.redeliver(first["id"].as_u64().unwrap()).expect("redelivered");
        let state = world
            .wait("the redelivery to be answered", |s| {
                s["deliveries"].as_array().unwrap().iter().any(|d| d["id"] == again && !d["status_code"].is_null())
            })
            .await;
        let answer = state["deliveries"].as_array().unwrap().iter().find(|d| d["id"] == again).cloned().unwrap();
        assert_eq!(answer["status_code"], 200, "{answer}");
        world.wait_processed(first["guid"].as_str().unwrap()).await;

        let state = world.sim.state();
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "still one pull request");
        assert_eq!(World::tracking_comments(&state, number), 1, "still one tracking comment");
        assert_eq!(eyes(&state, number, id), [world.sim.bot_login()], "no second reaction");
        // Nor a second attempt at one (GitHub, like the simulator, would answer it with the first), nor at
        // a pull request.
        let requests = World::requests(&state);
        let reactions = format!("/repos/{REPO}/issues/comments/{id}/reactions");
        assert_eq!(requests.iter().filter(|(m, p)| m == "POST" && *p == reactions).count(), 1, "{requests:?}");
        let pulls = format!("/repos/{REPO}/pulls");
        assert_eq!(requests.iter().filter(|(m, p)| m == "POST" && *p == pulls).count(), 1, "{requests:?}");
        assert_eq!(bot_comments(&world, &state, number).len(), bot_comments(&world, &before, number).len());
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], job_before["attempts"], "no second attempt: {job}");
        assert_eq!(job["audit"], job_before["audit"], "nothing happened to the job");
    })
    .await
    .expect("the redelivery was handled in time");
}
