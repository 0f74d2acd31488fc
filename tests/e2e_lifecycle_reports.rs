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

use e2e_support::{LIFECYCLE, POLL, REPO, Setup, World};
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
