//! End to end: a labelled issue becomes a pull request. A real `foreman serve` against github-sim over HTTP,
//! real git, a scripted command agent.

mod e2e_support;

use e2e_support::{FIXING_AGENT, ORG, REPO, World};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_issue_becomes_one_pull_request_that_closes_it() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let world = World::start(FIXING_AGENT, &[]).await;
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
    })
    .await
    .expect("the lifecycle finished in time");
}
