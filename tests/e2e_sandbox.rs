//! End to end, the sandbox as an operator meets it: on a host where it cannot be created (here: bubblewrap
//! missing), a real `foreman serve` says why at start and in `/readyz`, tells the job's issue that its
//! operator must fix it (without the host's details), and runs no agent; with the sandbox on (the default), the agent's view of the host is checked in
//! `tests/session_sandbox.rs` and every other end-to-end test runs sandboxed.

mod e2e_support;

use std::time::Duration;

use e2e_support::{FIXING_AGENT, REPO, World};

/// Bounds the test: one job reaching its first attempt on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_foreman_says_why_at_start_in_readyz_and_on_the_issue_and_runs_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(FIXING_AGENT, &[("FOREMAN_AGENT_BWRAP_PATH", "/nonexistent/bwrap")]).await;
        let line =
            world.wait_log("the sandbox error at start", |l| l["check"] == "sandbox" && l["level"] == "ERROR").await;
        assert!(line["message"].as_str().is_some_and(|r| r.contains("bubblewrap")), "{line}");

        let foreman = world.foreman.as_ref().unwrap();
        let readyz = reqwest::get(foreman.url("/readyz")).await.unwrap();
        assert_eq!(readyz.status(), 503);
        let readyz: serde_json::Value = readyz.json().await.unwrap();
        assert_eq!(readyz["ready"], false, "{readyz}");
        let check = readyz["checks"].as_array().unwrap().iter().find(|c| c["name"] == "sandbox").unwrap();
        assert_eq!(check["status"], "fail", "{readyz}");
        let text = check.to_string();
        assert!(text.contains("bubblewrap") && text.contains("agent.sandbox"), "{text}");

        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let state = world
            .wait("the tracking comment to say the sandbox is unavailable", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("sandbox is unavailable"))
            })
            .await;
        // The issue says who must act; the why (a host's details, its paths) is for the operator's log.
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("Foreman's operator must fix it"), "{body}");
        assert!(!body.contains("/nonexistent/bwrap"), "no host path on the issue: {body}");
        assert!(World::pulls_closing(&state, number).is_empty(), "no pull request");
        assert!(world.foreman_branches().is_empty(), "nothing pushed");
        let job = world.job(number).await;
        // A wait, not a failure of the issue's: nothing counts towards setting it aside.
        for class in ["agent", "infrastructure", "validation"] {
            // (Counts of zero are left out of the job's JSON.)
            assert_eq!(job["failures"][class].as_u64().unwrap_or(0), 0, "waiting for the sandbox is no failure: {job}");
        }
    })
    .await
    .expect("the test finished in time");
}

/// The default backend with no Claude Code CLI to run: Foreman says so at start (ERROR) and in `/readyz`,
/// and a labelled issue waits (no attempt, no failure) with a comment saying its operator must fix it,
/// instead of failing "cannot start claude" up to ten times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agents_program_foreman_says_so_and_the_job_waits() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let config = "[agent]\nbackend = \"claude\"\n\n[agent.claude]\npath = \"/nonexistent/claude\"\n";
        let env = [("FOREMAN_AGENT_BACKEND", "claude")];
        let world =
            World::start_with(FIXING_AGENT, e2e_support::Setup { config, env: &env, ..Default::default() }).await;
        let line = world.wait_log("the agent error at start", |l| l["check"] == "agent" && l["level"] == "ERROR").await;
        assert!(line["message"].as_str().is_some_and(|r| r.contains("/nonexistent/claude")), "{line}");
        let readyz = reqwest::get(world.foreman_url("/readyz")).await.unwrap();
        assert_eq!(readyz.status(), 503);
        let readyz: serde_json::Value = readyz.json().await.unwrap();
        let check = readyz["checks"].as_array().unwrap().iter().find(|c| c["name"] == "agent").unwrap();
        assert_eq!(check["status"], "fail", "{readyz}");
        assert!(check["summary"].as_str().unwrap().contains("agent.claude.path"), "{readyz}");

        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let state = world
            .wait("the tracking comment to say the agent cannot start", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("the agent cannot start"))
            })
            .await;
        let body = World::tracking_body(&state, number).unwrap();
        assert!(body.contains("⏳") && body.contains("Foreman's operator must fix it"), "{body}");
        assert!(!body.contains("/nonexistent/claude"), "no host path on the issue: {body}");
        let job = world.job(number).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");
        assert!(job["last_failure"].is_null(), "a wait, not a failure: {job}");
    })
    .await
    .expect("the test finished in time");
}
