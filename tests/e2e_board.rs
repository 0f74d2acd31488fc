//! End to end on an organisation's Projects (v2) board: a card moved to Ready becomes a pull request and
//! ends in In review, with or without the new column in the delivery (Foreman reads the item over GraphQL
//! either way: the delivery names the issue by node id only); a card moved back to Backlog mid-session
//! cancels the job with nothing pushed; an agent that fails three times leaves the issue `foreman:stuck`
//! with its card in Blocked and the failure explained in the tracking comment. A real `foreman serve`
//! against github-sim over HTTP, real git, a scripted command agent.

mod e2e_support;

use e2e_support::{FIXING_AGENT, ORG, REPO, Setup, World, blocking_agent, wait_for};
use std::time::Duration;

/// Bounds each test: one lifecycle is seconds on loopback; the failing one runs three sessions with
/// one-second backoffs.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Moves `number`'s card (added to `project` first) into Ready as alice, and waits for a pull request that
/// closes it, for the job's success, and for the card in In review.
async fn ready_becomes_a_pull_request(world: &World) {
    let project = world.board();
    let (number, _) = world.sim.create_issue(REPO, "Tidy the docs", "They are untidy.", "alice").unwrap();
    let item = world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
    world.sim.move_card(ORG, project, &item, "Ready", "alice").unwrap();

    let pull = world.wait_pull(number).await;
    assert_eq!(pull["head"], format!("foreman/{number}-tidy-the-docs"), "{pull}");
    let state = world.wait_column(project, number, "In review").await;
    assert_eq!(World::pulls_closing(&state, number).len(), 1, "exactly one pull request");
    let state = world
        .wait("the tracking comment to say the job succeeded", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains("pull request ready"))
        })
        .await;
    assert_eq!(World::tracking_comments(&state, number), 1, "exactly one tracking comment");
    let body = World::tracking_body(&state, number).unwrap();
    assert!(body.contains("a card moved on the board from @alice"), "{body}");
    let job = world.job(number).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["trigger"], "board", "{job}");
    // Foreman's own card moves (In progress, In review) came back as deliveries from its bot and queued
    // nothing more: still one pull request and one job attempt.
    let bot = world.sim.bot_login();
    let own_moves = state["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "projects_v2_item" && d["sender"] == bot.as_str())
        .count();
    assert!(own_moves >= 1, "Foreman's card moves are delivered back to it");
    assert_eq!(job["attempts"], 1, "{job}");
    let moved = world
        .sim
        .deliveries()
        .into_iter()
        .find(|d| {
            d["event"] == "projects_v2_item" && d["payload"]["sender"]["login"] == "alice" && d["action"] == "edited"
        })
        .unwrap();
    // The delivery names the item and the issue by node id only: Foreman read the item over GraphQL (its
    // issue and column), then queued the issue.
    let record = world.wait_processed(moved["guid"].as_str().unwrap()).await;
    let summary: Vec<serde_json::Value> = record["processing"]["decisions"].as_array().unwrap().clone();
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert_eq!((&summary[0]["decision"], &summary[0]["what"]), (&"lookup".into(), &"project_item".into()));
    assert_eq!(summary[0]["result"], "looked up", "{summary:?}");
    assert_eq!((&summary[1]["decision"], &summary[1]["trigger"]), (&"enqueue".into(), &"board".into()));
    assert_eq!(summary[1]["result"], "queued", "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_moved_to_ready_becomes_a_pull_request_and_ends_in_review() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        ready_becomes_a_pull_request(&world).await;
        // Foreman moved the card to In progress when it claimed the job, then to In review.
        let bot = world.sim.bot_login();
        let moves: Vec<String> = world
            .sim
            .deliveries()
            .iter()
            .filter(|d| d["event"] == "projects_v2_item" && d["payload"]["sender"]["login"] == bot.as_str())
            .filter_map(|d| d["payload"]["changes"]["field_value"]["to"]["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(moves, ["In progress", "In review"], "Foreman's card moves");
    })
    .await
    .expect("the lifecycle finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_moved_without_from_and_to_is_read_over_graphql_and_becomes_a_pull_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world =
            World::start_with(FIXING_AGENT, Setup { project_item_from_to: Some(false), ..Setup::default() }).await;
        ready_becomes_a_pull_request(&world).await;
        // The delivery really lacked the new column: the column Foreman acted on came from its GraphQL read.
        let moved = world
            .sim
            .deliveries()
            .into_iter()
            .find(|d| d["event"] == "projects_v2_item" && d["payload"]["sender"]["login"] == "alice")
            .expect("alice's card move was delivered");
        assert!(moved["payload"]["changes"]["field_value"].get("to").is_none(), "{}", moved["payload"]["changes"]);
    })
    .await
    .expect("the lifecycle finished in time");
}

/// An agent that explains itself on stderr and fails.
const FAILING_AGENT: &str = r#"echo "starting on issue $FOREMAN_ISSUE"
echo "error: the frobnicator config is missing" >&2
exit 3"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_failing_three_times_leaves_the_issue_stuck_with_its_card_in_blocked() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // One-second backoffs between attempts (the default starts at 15 s).
        let config = "[scheduler]\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\nmax_failures = 3\n";
        let world = World::start_with(FAILING_AGENT, Setup { config, ..Setup::default() }).await;
        let project = world.board();
        let (number, _) = world.sim.create_issue(REPO, "Frobnicate", "Please.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        // The stuck label is added before the running label is removed: wait for both.
        world
            .wait("foreman:stuck, and no other state label, on the issue", |s| {
                let labels = World::labels(s, number);
                labels.iter().any(|l| l == "foreman:stuck")
                    && !labels.iter().any(|l| l == "foreman:running" || l == "foreman:queued")
            })
            .await;
        world.wait_column(project, number, "Blocked").await;

        let job = world.job(number).await;
        assert_eq!(job["state"], "stuck", "{job}");
        assert_eq!(job["attempts"], 3, "{job}");
        let state = world
            .wait("the tracking comment to show the failure", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("stuck"))
            })
            .await;
        assert_eq!(World::tracking_comments(&state, number), 1, "exactly one tracking comment");
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("#### Failure: `agent`"), "the failure class: {body}");
        assert!(body.contains("The agent command exited with status 3."), "the reason names the agent's exit: {body}");
        assert!(body.contains("`/foreman retry`"), "what the reader can do: {body}");
        // The log stays behind its link: the agent's output is not pasted into the comment.
        assert!(!body.contains("the frobnicator config is missing") && !body.contains("```"), "{body}");
        assert!(World::pulls_closing(&state, number).is_empty(), "no pull request");
        assert!(world.foreman_branches().is_empty(), "nothing pushed: {:?}", world.foreman_branches());
    })
    .await
    .expect("the job became stuck in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_moved_back_to_backlog_mid_session_cancels_the_job_and_nothing_is_pushed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&blocking_agent(marks.path()), &[(share, &dir)]).await;
        let project = world.board();
        let (number, _) = world.sim.create_issue(REPO, "Long job", "It takes a while.", "alice").unwrap();
        let item = world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.move_card(ORG, project, &item, "Ready", "alice").unwrap();
        wait_for("the agent to start", || marks.path().join(format!("started-{number}")).exists()).await;
        world.wait_column(project, number, "In progress").await;

        world.sim.move_card(ORG, project, &item, "Backlog", "alice").unwrap();
        world
            .wait("the tracking comment to say cancelled", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("Foreman: cancelled"))
            })
            .await;
        // Release the agent: a session that was not stopped would now finish and be pushed.
        std::fs::write(marks.path().join("go"), "").unwrap();
        world
            .wait_log("the job's task to finish", |l| {
                l["message"] == "finished" && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
            })
            .await;
        let job = world.job(number).await;
        assert_eq!(job["state"], "cancelled", "{job}");
        let state = world.sim.state();
        assert!(World::repo_state(&state)["pulls"].as_array().unwrap().is_empty(), "no pull request");
        assert_eq!(world.foreman_branches(), Vec::<String>::new(), "nothing pushed");
        // The job task's last report lands; the card stays where alice put it.
        let state = world
            .wait("the job task's cancelled report", |s| {
                World::tracking_body(s, number)
                    .is_some_and(|b| b.contains("Foreman: cancelled") && b.contains("| turns |"))
            })
            .await;
        assert_eq!(World::card_column(&state, project, number).as_deref(), Some("Backlog"), "the card stays put");
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("Cancelled: ") && body.contains("Backlog"), "says why: {body}");
    })
    .await
    .expect("the move took effect in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_moved_to_ready_queues_its_issue_with_its_priority_phase_and_dependencies() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[]).await;
        let project = world.board();
        let (first, _) = world.sim.create_issue(REPO, "Lay the groundwork", "First.", "alice").unwrap();
        let (number, _) = world
            .sim
            .create_issue(
                REPO,
                "Phase 2.1 - Tidy the docs",
                &format!("They are untidy.\n\nDepends on #{first}"),
                "alice",
            )
            .unwrap();
        world.sim.add_label(REPO, number, "priority:high", "alice").unwrap();
        let item = world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.move_card(ORG, project, &item, "Ready", "alice").unwrap();

        // The delivery names the card by node id only; Foreman reads the issue before it queues the job, so
        // the job orders and waits as one queued by the label would.
        let job = loop {
            let job = world.job(number).await;
            if !job.is_null() {
                break job;
            }
            tokio::time::sleep(e2e_support::POLL).await;
        };
        assert_eq!(job["trigger"], "board", "{job}");
        assert_eq!(job["title"], "Phase 2.1 - Tidy the docs", "{job}");
        assert_eq!(job["priority"], 1, "priority:high ranks second of four: {job}");
        assert_eq!(job["phase"], serde_json::json!({"kind": "phase", "phase": 2, "task": 1}), "{job}");
        let dep = serde_json::json!([{"repo": REPO, "issue": first}]);
        assert_eq!(job["depends_on"], dep, "{job}");
        assert_eq!(job["waiting_on"], dep, "it waits for #{first}: {job}");
        assert_eq!(job["state"], "queued", "{job}");
    })
    .await
    .expect("the card move was queued in time");
}
