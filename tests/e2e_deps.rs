//! End to end: GitHub's own "blocked by" dependencies hold jobs. A real `foreman serve` against github-sim
//! (which serves `…/dependencies/blocked_by` and sends `issue_dependencies` deliveries), real git, a command
//! agent.
//!
//! - a dependent whose blocker is open waits and says so, and starts once the blocker's pull request is
//!   merged (which closes the blocker);
//! - a person removes the "blocked by" link and the dependent starts;
//! - a blocker in another repository holds its dependent until it is closed;
//! - a stuck blocker keeps its dependents waiting, with the reason on their tracking comments, and
//!   `/foreman retry` there lets them go on;
//! - a link removed while its deliveries were lost is found by reconciliation.

mod e2e_support;

use std::time::Duration;

use e2e_support::{FIXING_AGENT, ORG, REPO, Setup, World};
use serde_json::json;

/// Reconciliation hourly: what these tests show comes from deliveries and reads at enqueue, not from a
/// reconciliation pass.
const CONFIG: &str = "[reconcile]\ninterval_secs = 3600\n";

fn tracking(world_state: &serde_json::Value, number: u64) -> String {
    World::tracking_body(world_state, number).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_dependent_waits_and_starts_when_its_blockers_pull_request_is_merged() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let world = World::start_with(FIXING_AGENT, Setup { config: CONFIG, ..Default::default() }).await;
        let (blocker, _) = world.sim.create_issue(REPO, "Lay the groundwork", "First.", "alice").unwrap();
        let (dependent, _) =
            world.sim.create_issue(REPO, "Build on it", "No text names the blocker.", "alice").unwrap();
        world.sim.add_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world.sim.add_label(REPO, dependent, "foreman", "alice").unwrap();
        let waits = format!("Waiting for #{blocker} to close");
        world.wait("the dependent says what it waits for", |s| tracking(s, dependent).contains(&waits)).await;
        let job = world.job(dependent).await;
        assert_eq!(job["waiting_on"], json!([{"repo": REPO, "issue": blocker}]), "{job}");
        assert_eq!(job["blocked_by"], json!([{"repo": REPO, "issue": blocker}]), "{job}");

        // The blocker runs to its pull request; the dependent still waits: the blocker's issue is open.
        world.sim.add_label(REPO, blocker, "foreman", "alice").unwrap();
        let pr = world.wait_pull(blocker).await;
        let state = world.sim.state();
        assert!(World::pulls_closing(&state, dependent).is_empty(), "the dependent has not run");
        assert!(tracking(&state, dependent).contains(&waits));

        // Merging the pull request closes the blocker's issue, and that starts the dependent.
        world.sim.merge_pull(REPO, pr["number"].as_u64().unwrap(), "alice").unwrap();
        world.wait_pull(dependent).await;
        let job = world.job(dependent).await;
        assert!(job["waiting_on"].is_null(), "{job}");
    })
    .await
    .expect("the dependent ran after its blocker was merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_blocked_by_link_starts_the_dependent() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let world = World::start_with(FIXING_AGENT, Setup { config: CONFIG, ..Default::default() }).await;
        let (blocker, _) = world.sim.create_issue(REPO, "Someday", "Nobody works on this.", "alice").unwrap();
        let (dependent, _) = world.sim.create_issue(REPO, "Now", "Wanted now.", "alice").unwrap();
        world.sim.add_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world.sim.add_label(REPO, dependent, "foreman", "alice").unwrap();
        let waits = format!("Waiting for #{blocker} to close");
        world.wait("the dependent waits", |s| tracking(s, dependent).contains(&waits)).await;

        // A person removes the link on GitHub: the `issue_dependencies` delivery releases the job.
        world.sim.remove_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world.wait_pull(dependent).await;
        let job = world.job(dependent).await;
        assert!(job["blocked_by"].is_null() && job["waiting_on"].is_null(), "{job}");
        let state = world.sim.state();
        assert_eq!(World::issue(&state, blocker)["state"], "open", "the blocker is still open");
    })
    .await
    .expect("the dependent ran once the link was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_in_another_repository_holds_its_dependent_until_it_is_closed() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let repos: &[(&str, &[(&str, &str)])] = &[("gadgets", &[("README.md", "# gadgets\n")])];
        let world = World::start_with(FIXING_AGENT, Setup { config: CONFIG, repos, ..Default::default() }).await;
        let other = format!("{ORG}/gadgets");
        let (blocker, _) = world.sim.create_issue(&other, "An API the widgets need", "", "alice").unwrap();
        let (dependent, _) = world.sim.create_issue(REPO, "Use the gadgets API", "", "alice").unwrap();
        world.sim.add_label(REPO, dependent, "foreman", "alice").unwrap();
        world.wait_pull(dependent).await;

        // Once more, with a link added (by a person, to an issue in the other repository) before the label.
        let (second, _) = world.sim.create_issue(REPO, "Use it more", "", "alice").unwrap();
        world.sim.add_blocked_by(REPO, second, &other, blocker, "alice").unwrap();
        world.sim.add_label(REPO, second, "foreman", "alice").unwrap();
        let waits = format!("Waiting for {other}#{blocker} to close");
        world
            .wait("the dependent names the other repository's blocker", |s| tracking(s, second).contains(&waits))
            .await;
        let job = world.job(second).await;
        assert_eq!(job["waiting_on"], json!([{"repo": other, "issue": blocker}]), "{job}");

        world.sim.set_issue_state(&other, blocker, "closed", "alice").unwrap();
        world.wait_pull(second).await;
    })
    .await
    .expect("the cross-repository blocker released its dependent when closed");
}

/// An agent that fails on the issue named by `$FOREMAN_FAIL_ON` (a file under the shared directory holds
/// it) and fixes every other.
fn failing_on(marks: &std::path::Path) -> String {
    format!(
        r#"if [ -e '{marks}/fail-'"$FOREMAN_ISSUE" ]; then echo "this task cannot be done" >&2; exit 1; fi
{FIXING_AGENT}"#,
        marks = marks.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_blocker_keeps_its_dependents_waiting_with_the_reason() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let marks = tempfile::tempdir().unwrap();
        let agent = failing_on(marks.path());
        let shared = e2e_support::shared(marks.path());
        let env = [(shared.0, shared.1.as_str())];
        let config = "[reconcile]\ninterval_secs = 3600\n[scheduler]\nmax_failures = 1\n";
        let world = World::start_with(&agent, Setup { config, env: &env, ..Default::default() }).await;
        let (blocker, _) = world.sim.create_issue(REPO, "The hard part", "", "alice").unwrap();
        let (dependent, _) = world.sim.create_issue(REPO, "The easy part", "", "alice").unwrap();
        std::fs::write(marks.path().join(format!("fail-{blocker}")), "").unwrap();
        world.sim.add_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world.sim.add_label(REPO, dependent, "foreman", "alice").unwrap();
        world.sim.add_label(REPO, blocker, "foreman", "alice").unwrap();

        // The blocker fails once and is stuck: the dependent says so, and where to act.
        let reason = format!("#{blocker} is stuck; `/foreman retry` there");
        let state = world
            .wait("the dependent names its stuck blocker", |s| {
                tracking(s, dependent).contains(&reason)
                    && World::labels(s, blocker).iter().any(|l| l == "foreman:stuck")
            })
            .await;
        assert!(World::pulls_closing(&state, dependent).is_empty(), "the dependent has not run");

        // `/foreman retry` on the blocker (now able to succeed): the dependent waits for it to close again.
        std::fs::remove_file(marks.path().join(format!("fail-{blocker}"))).unwrap();
        world.sim.comment(REPO, blocker, "/foreman retry", "alice").unwrap();
        let waits = format!("Waiting for #{blocker} to close");
        world.wait("the dependent waits for the blocker again", |s| tracking(s, dependent).contains(&waits)).await;
        let pr = world.wait_pull(blocker).await;
        world.sim.merge_pull(REPO, pr["number"].as_u64().unwrap(), "alice").unwrap();
        world.wait_pull(dependent).await;
    })
    .await
    .expect("the stuck blocker held its dependent, and the retry let it go");
}

/// A link removed while its deliveries are lost (GitHub could not reach Foreman; redelivery off) is found
/// by the next reconciliation pass: it reads every queued job's links, since removing one leaves the
/// issue's `updated_at` as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_removed_while_its_deliveries_were_lost_is_found_by_reconciliation() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let config = "[reconcile]\ninterval_secs = 2\nredeliver = false\n";
        let world = World::start_with(FIXING_AGENT, Setup { config, ..Default::default() }).await;
        let (blocker, _) = world.sim.create_issue(REPO, "Someday", "", "alice").unwrap();
        let (dependent, _) = world.sim.create_issue(REPO, "Now", "", "alice").unwrap();
        world.sim.add_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world.sim.add_label(REPO, dependent, "foreman", "alice").unwrap();
        let waits = format!("Waiting for #{blocker} to close");
        world.wait("the dependent waits", |s| tracking(s, dependent).contains(&waits)).await;

        let url = world.foreman_url("/api/github/webhooks");
        world.sim.set_webhook_url(None);
        world.sim.remove_blocked_by(REPO, dependent, REPO, blocker, "alice").unwrap();
        world
            .wait("the removal's deliveries to be lost", |s| {
                let lost = s["deliveries"].as_array().unwrap().iter().filter(|d| {
                    d["event"] == "issue_dependencies"
                        && d["action"].as_str().is_some_and(|a| a.ends_with("_removed"))
                        && d["status_code"] == 0
                });
                lost.count() == 2
            })
            .await;
        world.sim.set_webhook_url(Some(url));
        world.wait_pull(dependent).await;
        let job = world.job(dependent).await;
        assert!(job["blocked_by"].is_null() && job["waiting_on"].is_null(), "{job}");
        let linked = job["audit"].as_array().unwrap().iter().any(|e| e["action"] == "linked");
        assert!(linked, "reconciliation changed the links: {:#}", job["audit"]);
    })
    .await
    .expect("reconciliation found the removed link");
}
