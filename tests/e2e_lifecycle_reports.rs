//! The lifecycle promises about what an issue shows and who can stop a job, end to end: a real
//! `foreman serve` against github-sim, real git and a command agent.
//!
//! - Every live job can be stopped: a job waiting to retry (a failed attempt, its backoff running) is
//!   cancelled by `/foreman stop` and by closing its issue, and no further attempt runs.
//! - Reports are durable: a SIGKILL after a job was recorded as finished, before its report reached GitHub,
//!   ends after the restart with the final report applied (the comment says done and links the pull
//!   request; the state labels are gone; the card is in review).
//! - Live progress: a session of about 25 s shows its figures (elapsed time) in the tracking comment before
//!   its final report, although every edit but the first falls inside the 10 s edit throttle.

mod e2e_support;

use std::time::Duration;

use e2e_support::{FIXING_AGENT, LIFECYCLE, ORG, POLL, REPO, Setup, World};
use github_sim::Faults;
use serde_json::Value;

/// The retry backoff of the stop tests: between 3 and 6 s (equal jitter of a 6 s ceiling).
const SHORT_BACKOFF: &str = "[scheduler]\nbackoff_min_seconds = 6\nbackoff_max_seconds = 6\n";

/// An agent that notes each attempt (a line in `<marks>/attempts`) and fails without changing anything.
fn failing_agent(marks: &std::path::Path) -> String {
    format!("echo attempt >> '{}/attempts'\necho 'cannot do it' >&2\nexit 1", marks.display())
}

fn attempts(marks: &std::path::Path) -> usize {
    std::fs::read_to_string(marks.join("attempts")).map(|s| s.lines().count()).unwrap_or(0)
}

/// Waits until Foreman's job for `number` satisfies `condition` (read from its admin API).
async fn wait_job(world: &World, number: u64, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(LIFECYCLE, async {
        loop {
            let job = world.job(number).await;
            if condition(&job) {
                return job;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}; foreman said:\n{}", world.logs()))
}

fn rfc3339(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

/// Stops a job that waits to retry with `stop` (a command, or closing the issue) and checks it is
/// cancelled, says so on the issue, and never runs again.
async fn stop_during_retry_wait(stop: impl FnOnce(&World, u64), expect: &str) {
    let marks = tempfile::tempdir().unwrap();
    let (share, dir) = e2e_support::shared(marks.path());
    let env = [(share, dir.as_str())];
    let world =
        World::start_with(&failing_agent(marks.path()), Setup { env: &env, config: SHORT_BACKOFF, ..Setup::default() })
            .await;
    let (number, _) = world.sim.create_issue(REPO, "Cannot be done", "Try anyway.", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

    let job = wait_job(&world, number, "the first attempt to fail", |j| j["state"] == "failed").await;
    let retry_at = rfc3339(&job["not_before"]);
    assert_eq!(attempts(marks.path()), 1);
    stop(&world, number);

    let state = world
        .wait("the cancelled report", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains("Foreman: cancelled"))
                && !World::labels(s, number).iter().any(|l| l.starts_with("foreman:"))
        })
        .await;
    let body = World::tracking_body(&state, number).unwrap();
    assert!(body.contains(expect), "the comment says why: {body}");
    assert_eq!(world.job(number).await["state"], "cancelled");
    // The attempt the backoff was waiting for would have started by now (plus a claim's worth of slack).
    let until = retry_at + time::Duration::seconds(3);
    while time::OffsetDateTime::now_utc() < until {
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(attempts(marks.path()), 1, "no attempt after the stop; foreman said:\n{}", world.logs());
    let job = world.job(number).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_reaches_a_job_waiting_to_retry() {
    tokio::time::timeout(Duration::from_secs(120), async {
        stop_during_retry_wait(
            |world, number| {
                world.sim.comment(REPO, number, "/foreman stop", "alice").unwrap();
            },
            "Cancelled: `/foreman stop` by alice.",
        )
        .await;
    })
    .await
    .expect("the stop took effect in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_issue_reaches_a_job_waiting_to_retry() {
    tokio::time::timeout(Duration::from_secs(120), async {
        stop_during_retry_wait(
            |world, number| world.sim.set_issue_state(REPO, number, "closed", "alice").unwrap(),
            "was closed",
        )
        .await;
    })
    .await
    .expect("the close took effect in time");
}

/// The board of the report test, with the columns Foreman moves cards to.
const COLUMNS: [&str; 6] = ["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_finish_before_its_report_ends_with_the_report_applied() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let agent = format!("{}\n{FIXING_AGENT}", e2e_support::blocking_agent(marks.path()));
        let mut world = World::start(&agent, &[(share, &dir)]).await;
        let (project, _) = world.sim.create_project(ORG, "Roadmap", &COLUMNS);
        let (number, _) = world.sim.create_issue(REPO, "Report it", "Please fix it.", "alice").unwrap();
        world.sim.add_project_item(ORG, project, REPO, number, "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        e2e_support::wait_for("the agent to start", || marks.path().join(format!("started-{number}")).exists()).await;
        world.wait_column(project, number, "In progress").await;

        // Every GitHub call now takes 1.5 s: the final report's first call is still on its way when the
        // job is seen recorded as finished, and Foreman is killed then.
        world.sim.set_faults(Faults {
            error_rate: 1.0,
            kinds: vec!["latency".into()],
            latency_ms: 1_500,
            exhaust_primary_for_secs: None,
        });
        std::fs::write(marks.path().join("go"), "").unwrap();
        // The job's outcome and its final report are written together and made durable by one flush.
        wait_job(&world, number, "the job and its final report to be recorded", |j| {
            j["state"] == "succeeded" && j["report"]["state"] == "succeeded"
        })
        .await;
        world.kill9();
        world.sim.set_faults(Faults::default());
        let state = world.sim.state();
        let body = World::tracking_body(&state, number).unwrap_or_default();
        assert!(body.contains("working on it"), "killed before the final report was applied: {body}");
        assert!(World::labels(&state, number).iter().any(|l| l == "foreman:running"));

        world.start_foreman();
        let state = world
            .wait("the final report after the restart", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains("pull request ready"))
                    && !World::labels(s, number).iter().any(|l| l.starts_with("foreman:"))
                    && World::card_column(s, project, number).as_deref() == Some("In review")
            })
            .await;
        let pulls = World::pulls_closing(&state, number);
        assert_eq!(pulls.len(), 1, "one pull request");
        let body = World::tracking_body(&state, number).unwrap();
        let link = format!("/pull/{}", pulls[0]["number"]);
        assert!(body.contains(&link), "the comment links the pull request ({link}): {body}");
        assert_eq!(World::tracking_comments(&state, number), 1, "one tracking comment");
        assert_eq!(world.job(number).await["state"], "succeeded");
        let job = wait_job(&world, number, "the report recorded as applied", |j| j["report"]["pending"] == false).await;
        assert_eq!(job["report"]["applied_state"], "succeeded", "{job}");
        // It was the stored report (it alone knows the pull request), not one made from the job.
        world
            .wait_log("the stored report resumed", |l| {
                l["message"] == "reporting a job GitHub is behind on"
                    && l["how"] == "Stored"
                    && l["state"] == "succeeded"
            })
            .await;
    })
    .await
    .expect("the report was applied after the restart in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_second_session_shows_its_progress_before_its_final_report() {
    tokio::time::timeout(Duration::from_secs(180), async {
        // A quiet agent: it prints a line, works 25 s, then commits. Only the elapsed time moves.
        let agent = format!("echo 'looking at the code'\nsleep 25\n{FIXING_AGENT}");
        let world = World::start(&agent, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Take your time", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        // Every version of the tracking comment, as the simulator served it (checked after each request).
        let seen = std::sync::Mutex::new(Vec::<String>::new());
        world
            .wait("the final report", |s| {
                let body = World::tracking_body(s, number);
                let mut seen = seen.lock().unwrap();
                if let Some(b) = &body
                    && seen.last() != Some(b)
                {
                    seen.push(b.clone());
                }
                body.is_some_and(|b| b.contains("pull request ready"))
            })
            .await;
        let seen = seen.into_inner().unwrap();
        let live: Vec<&String> =
            seen.iter().filter(|b| b.contains("working on it") && b.contains("| turns | tool calls")).collect();
        let elapsed = |b: &str| {
            let row = b.lines().skip_while(|l| !l.starts_with("|---")).nth(1).unwrap_or_default().to_owned();
            row.trim_matches('|').split('|').nth(3).map(|c| c.trim().to_owned()).unwrap_or_default()
        };
        assert!(
            live.iter().any(|b| elapsed(b) != "0s" && !elapsed(b).is_empty()),
            "a progress edit with the elapsed time while the session ran; the comment read, in turn:\n{}",
            seen.join("\n-----\n")
        );
    })
    .await
    .expect("the session ended in time");
}
