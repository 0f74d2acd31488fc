//! The per-job indexes of sessions and failures: written with the claim and the failure, read oldest first,
//! one job's never mixed with another's, and built once for a store written before they existed.

use std::time::Duration;

use time::OffsetDateTime;

use super::super::trees::{JOB_FAILURES, JOB_SESSIONS};
use super::*;
use crate::ids::IssueNumber;
use crate::job::{ClaimOwner, FailureClass, JobKind, NewJob, Outcome, Resolution, SessionState, TestLimits};
use crate::store::StoreOptions;

const LIMITS: TestLimits = TestLimits { sessions: 4, failures: 3, infrastructure: 3 };

fn new_job(repo: &str, issue: u64) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: repo.parse().unwrap(),
        issue: IssueNumber(issue),
        installation: None,
        kind: JobKind::Code,
        title: format!("issue {issue}"),
        body: String::new(),
        labels: vec![],
        trigger: None,
        requester: None,
        instructions: None,
        delivery: None,
        cause: "test".into(),
    }
}

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

/// Runs the next job once at `at` with `outcome`; returns its session id.
fn run(store: &Store, owner: &ClaimOwner, at: i64, outcome: Outcome) -> SessionId {
    let claimed = store.claim_next(owner, &LIMITS, t(at)).unwrap().expect("a job to claim");
    store.finish_job(&claimed.claim, &outcome, &LIMITS, t(at + 1), 0.0).unwrap();
    claimed.claim.session
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed { class: FailureClass::Agent, reason: reason.into(), retry_at: Some(t(0)) }
}

fn succeeded() -> Outcome {
    Outcome::Succeeded { summary: "done".into(), resolution: Resolution::PullRequest }
}

/// Two jobs in repositories whose names share a prefix (`o/r`, `o/r2`): `o/r#1` fails once, then
/// succeeds; `o/r2#1` fails. Returns the sessions of `o/r#1` in the order they ran.
fn history(store: &Store) -> Vec<SessionId> {
    let owner = ClaimOwner::new();
    store.enqueue_job(&new_job("o/r", 1), 2, "octocat", t(0)).unwrap();
    let first = run(store, &owner, 10, failed("gave up"));
    // Its backoff (seconds) has ended by then.
    let second = run(store, &owner, 30, succeeded());
    store.enqueue_job(&new_job("o/r2", 1), 2, "octocat", t(40)).unwrap();
    run(store, &owner, 50, failed("other job"));
    vec![first, second]
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &StoreOptions { cache_bytes: 1 << 20 }).unwrap()
}

fn assert_history(store: &Store, sessions: &[SessionId]) {
    let records = store.job_sessions(&"O/R".parse().unwrap(), IssueNumber(1)).unwrap();
    let ids: Vec<&SessionId> = records.iter().map(|r| &r.id).collect();
    assert_eq!(ids, sessions.iter().collect::<Vec<_>>());
    let states: Vec<(u32, SessionState)> = records.iter().map(|r| (r.attempt, r.state)).collect();
    assert_eq!(states, [(1, SessionState::Failed), (2, SessionState::Succeeded)]);
    assert_eq!(records[0].ended_at, Some(t(11)));
    let failures = store.job_failures(&"o/r".parse().unwrap(), IssueNumber(1)).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].class, failures[0].reason.as_str(), failures[0].session.as_ref(), failures[0].at),
        (FailureClass::Agent, "gave up", Some(&sessions[0]), t(11))
    );
    let other = store.job_failures(&"o/r2".parse().unwrap(), IssueNumber(1)).unwrap();
    assert_eq!(other.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>(), ["other job"]);
    assert_eq!(store.job_sessions(&"o/r2".parse().unwrap(), IssueNumber(1)).unwrap().len(), 1);
    assert!(store.job_sessions(&"o/r".parse().unwrap(), IssueNumber(2)).unwrap().is_empty());
    assert_eq!(store.check_job_invariants().unwrap(), Vec::<String>::new());
}

#[test]
fn a_jobs_sessions_and_failures_are_indexed_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let sessions = history(&store);
    assert_history(&store, &sessions);
}

#[test]
fn a_store_written_before_the_index_gets_it_built_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = {
        let store = open(dir.path());
        let sessions = history(&store);
        // As schema 3 wrote it: no per-job trees.
        store.db().drop_tree(JOB_SESSIONS).unwrap();
        store.db().drop_tree(JOB_FAILURES).unwrap();
        store.db().open_tree("meta").unwrap().insert("schema_version", &3u64.to_be_bytes()).unwrap();
        store.db().flush().unwrap();
        sessions
    };
    // The handle just dropped may hold sled's lock a moment longer (its writer thread ends).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match Store::open(dir.path(), &StoreOptions { cache_bytes: 1 << 20 }) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("reopen: {e}"),
        }
    };
    assert_history(&store, &sessions);
    let version = store.db().open_tree("meta").unwrap().get("schema_version").unwrap().unwrap();
    assert_eq!(version.as_ref(), &crate::store::SCHEMA_VERSION.to_be_bytes());
}

#[test]
fn a_missing_index_entry_is_a_broken_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    history(&store);
    store.db().open_tree(JOB_FAILURES).unwrap().clear().unwrap();
    let problems = store.check_job_invariants().unwrap();
    assert!(problems.iter().any(|p| p.contains("job_failures")), "{problems:?}");
}
