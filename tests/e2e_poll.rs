//! End to end, poll delivery mode (`github.delivery_mode = "poll"`): github-sim has no webhook URL, so it
//! sends no delivery and records each one unsent, as GitHub does; Foreman reads them from the App's delivery
//! log (`GET /app/hook/deliveries`, then each entry's request) into the same inbox. A labelled issue becomes
//! a pull request; after a `kill -9`, what happened while Foreman was down is read, and nothing is read or
//! acted on twice.

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_support::{FIXING_AGENT, REPO, Setup, World};
use serde_json::Value;

/// The simulator's request log: how many times each path was asked for with `method`.
fn requests_by_path(state: &Value, method: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in state["requests"].as_array().unwrap() {
        if r["method"] == method {
            *out.entry(r["path"].as_str().unwrap().split('?').next().unwrap().to_owned()).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_webhook_url_a_labelled_issue_becomes_a_pull_request_and_a_restart_reads_what_it_missed() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let mut world = World::start_with(FIXING_AGENT, Setup { poll: true, ..Setup::default() }).await;
        world
            .wait_log("the poller starting", |l| l["message"].as_str().is_some_and(|m| m.contains("delivery log")))
            .await;

        let (first, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, first, "foreman", "alice").unwrap();
        let pull = world.wait_pull(first).await;
        assert_eq!(pull["head"], format!("foreman/{first}-add-a-fix"), "{pull}");
        world
            .wait("the first job's final report", |s| {
                World::tracking_body(s, first).is_some_and(|b| b.contains("pull request ready"))
            })
            .await;

        // Nothing was sent: every delivery the simulator made is recorded with status 0 (no webhook URL).
        let state = world.sim.state();
        let deliveries = state["deliveries"].as_array().unwrap();
        assert!(!deliveries.is_empty());
        assert!(
            deliveries.iter().all(|d| d["status_code"] == 0 || d["status_code"].is_null()),
            "no delivery was sent: {deliveries:#?}"
        );
        let labeled = World::last_delivery(&state, "issues");
        // Stored under its GUID, as a webhook would have been, and processed.
        world.wait_processed(labeled["guid"].as_str().unwrap()).await;
        let gets = requests_by_path(&state, "GET");
        assert!(gets.contains_key("/app/hook/deliveries"), "the log is read: {gets:?}");

        // Killed, and while it is down a second issue is labelled; after the restart it is read and done.
        world.kill9();
        let (second, _) = world.sim.create_issue(REPO, "Add another fix", "And this one.", "alice").unwrap();
        world.sim.add_label(REPO, second, "foreman", "alice").unwrap();
        world.start_foreman();
        let pull = world.wait_pull(second).await;
        assert_eq!(pull["head"], format!("foreman/{second}-add-another-fix"), "{pull}");
        let state = world
            .wait("the second job's final report", |s| {
                World::tracking_body(s, second).is_some_and(|b| b.contains("pull request ready"))
            })
            .await;

        // Nothing twice: one pull request and one tracking comment per issue, and no log entry's request read
        // more than once across the restart (the position read is stored, and stored GUIDs are not read again).
        for number in [first, second] {
            assert_eq!(World::pulls_closing(&state, number).len(), 1, "one pull request for #{number}");
            assert_eq!(World::tracking_comments(&state, number), 1, "one tracking comment on #{number}");
        }
        let reads: Vec<(String, usize)> = requests_by_path(&state, "GET")
            .into_iter()
            .filter(|(p, _)| p.starts_with("/app/hook/deliveries/"))
            .collect();
        assert!(!reads.is_empty());
        let answers: Vec<String> = state["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/app/hook/deliveries")))
            .map(|r| format!("{} {} at {} ms", r["path"], r["status"], r["started_ms"]))
            .collect();
        assert!(
            reads.iter().all(|(_, n)| *n == 1),
            "each entry read once: {reads:?}; the log's requests:\n{}\nforeman said:\n{}",
            answers.join("\n"),
            world.logs()
        );
        // Only events Foreman uses are read: as many entries as issues, issue_comment and pull_request
        // deliveries at most, never every entry of the log.
        assert!(reads.len() < state["deliveries"].as_array().unwrap().len(), "{reads:?}");
        // And nothing was redelivered: the poller reads unsent deliveries as they are.
        assert!(
            state["deliveries"].as_array().unwrap().iter().all(|d| d["redelivery"] == false),
            "no redelivery in poll mode"
        );
    })
    .await
    .expect("the lifecycle finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_delivery_log_cannot_be_read_nothing_is_lost_and_the_failure_is_logged_once() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let world = World::start_with(FIXING_AGENT, Setup { poll: true, ..Setup::default() }).await;
        // GitHub answers every request 502 while the issue is labelled.
        world.sim.set_faults(github_sim::Faults {
            error_rate: 1.0,
            kinds: vec!["502".into()],
            ..github_sim::Faults::default()
        });
        let (number, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let failed_reads = |s: &Value| {
            s["requests"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r["path"].as_str().is_some_and(|p| p.starts_with("/app/hook/deliveries")) && r["status"] == 502
                })
                .count()
        };
        world.wait("the poller to fail reading the log a few times", |s| failed_reads(s) >= 4).await;
        let warned = world
            .wait_log("a warning that the log cannot be read", |l| {
                l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.contains("delivery log failed"))
            })
            .await;
        assert_eq!(warned["failed_reads"], 1, "{warned}");

        // GitHub recovers: the delivery is read and becomes one pull request.
        world.sim.set_faults(github_sim::Faults::default());
        world.wait_pull(number).await;
        let state = world
            .wait("the job's final report", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("pull request ready"))
            })
            .await;
        assert_eq!(World::pulls_closing(&state, number).len(), 1);
        assert_eq!(World::tracking_comments(&state, number), 1);
        world
            .wait_log("the recovery", |l| l["message"].as_str().is_some_and(|m| m.contains("delivery log works again")))
            .await;
        // The failure was one warning, not one per failed read.
        let warnings = world
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("\"WARN\"") && l.contains("delivery log failed"))
            .count();
        assert_eq!(warnings, 1, "{}", world.logs());
    })
    .await
    .expect("the lifecycle finished in time");
}
