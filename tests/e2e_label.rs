//! End to end: a labelled issue becomes a pull request. A real `foreman serve` against github-sim over HTTP,
//! real git, a scripted command agent.

mod e2e_support;

use e2e_support::{FIXING_AGENT, ORG, REPO, World};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_issue_becomes_one_pull_request_that_closes_it() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let world = World::start(FIXING_AGENT, &[("FOREMAN_PUBLIC_URL", "https://foreman.example.com")]).await;
        let (project, _) = world.sim.create_project(
            ORG,
            "Roadmap",
            &["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"],
        );
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

        // The tracking comment links the session's log, which Foreman serves to admins (loopback here).
        let session = job["session"].as_str().unwrap();
        let link = format!("https://foreman.example.com/api/sessions/{session}/log");
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

        // The branch on the simulator's git server has the agent's commit.
        let git_dir = world.sim.git_dir(REPO).unwrap();
        let log = std::process::Command::new("git")
            .args(["log", "--format=%s", &format!("foreman/{number}-add-a-fix")])
            .current_dir(&git_dir)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains(&format!("Fix #{number}")));
    })
    .await
    .expect("the lifecycle finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_requesting_changes_adds_a_commit_to_the_same_pull_request() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let world = World::start(FIXING_AGENT, &[]).await;
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

        world.sim.review(REPO, pr, "CHANGES_REQUESTED", "Please also cover the edge case.", "alice").unwrap();
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
    })
    .await
    .expect("the follow-up finished in time");
}
