//! Crash recovery, tested by killing a real process: a child process (this test binary, re-run on its
//! ignored `child_claims_and_hangs` test) opens the store, queues and claims jobs, makes them durable, and
//! is killed with SIGKILL. The parent then opens the same database, recovers, and finds every job back in
//! the queue, every session interrupted and no claim left.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use foreman::ids::{InstallationId, IssueNumber};
use foreman::job::{JobKind, JobState, NewJob, SessionId, SessionState};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::JobStore;

use super::Open;
use time::OffsetDateTime;

const DIR_ENV: &str = "FOREMAN_TEST_CRASH_DIR";

fn req(n: u64) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: format!("o/r{n}").parse().unwrap(),
        issue: IssueNumber(n),
        installation: Some(InstallationId(1)),
        kind: JobKind::Code,
        title: format!("Task 1.{n}"),
        body: String::new(),
        labels: vec![],
        trigger: None,
        requester: None,
        instructions: None,
        delivery: None,
        cause: "test".into(),
    }
}

/// The child: claims two of three jobs, makes it durable, says so, and waits to be killed.
/// The child's part, in the process that is killed (the test binary's `child_claims_and_hangs`, ignored so it
/// runs only when the parent starts it).
pub async fn child_claims_and_hangs<S: JobStore>(open: Open<S>) {
    let Ok(dir) = std::env::var(DIR_ENV) else { return };
    let store = open(dir.as_ref());
    let s = Scheduler::new(store.clone(), SchedulerConfig::default());
    let now = OffsetDateTime::now_utc();
    for n in 1..=3 {
        s.enqueue(req(n), "test", now).unwrap();
    }
    let a = s.claim_next(now).unwrap().unwrap();
    let b = s.claim_next(now).unwrap().unwrap();
    store.sync().await.unwrap();
    println!("CLAIMED {} {} {}", a.claim.session, b.claim.session, std::process::id());
    // Wait to be killed; bounded so an orphan cannot live forever.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

pub fn a_killed_process_loses_no_job_and_its_claims_return_to_the_queue<S: JobStore>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_claims_and_hangs", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test NAME ... " on the same line first.
            if let Some(at) = line.find("CLAIMED ") {
                tx.send(line[at..].to_owned()).ok();
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL: no destructor, no final flush.
    child.wait().unwrap();
    let line = line.expect("the child claimed within 60 s");
    let parts: Vec<&str> = line.split_whitespace().collect();
    let sessions: Vec<String> = parts[1..3].iter().map(|s| s.to_string()).collect();
    let pid = parts[3].to_owned();
    assert_ne!(pid, std::process::id().to_string());

    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    let handle = std::thread::spawn(move || {
        let store = open(&path);
        assert_eq!(store.claims().unwrap().len(), 2, "the killed process's claims survived the kill");
        let s = Scheduler::new(store.clone(), SchedulerConfig::default());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let now = OffsetDateTime::now_utc();
        let report = rt.block_on(s.recover(now)).unwrap();
        assert_eq!(report.requeued.len(), 2);
        assert!(store.claims().unwrap().is_empty());
        for id in &sessions {
            let rec = store.session(&SessionId(id.clone())).unwrap().unwrap();
            assert_eq!(rec.state, SessionState::Interrupted);
            assert_eq!(rec.owner.pid.to_string(), *pid);
        }
        for n in 1..=3 {
            let job = store.job(&format!("o/r{n}").parse().unwrap(), IssueNumber(n)).unwrap().unwrap();
            assert_eq!(job.state, JobState::Queued, "#{n}");
        }
        let d = store.job_detail(&"o/r1".parse().unwrap(), IssueNumber(1)).unwrap().unwrap();
        let last = d.audit.last().unwrap();
        assert_eq!(last.action, "interrupted");
        assert!(last.cause.contains(&format!("process {pid}")), "{}", last.cause);
        assert!(store.check_job_invariants().unwrap().is_empty());
        // All three run again, in order.
        let order: Vec<u64> = std::iter::from_fn(|| s.claim_next(now).unwrap()).map(|c| c.job.issue.0).collect();
        assert_eq!(order, [1, 2, 3]);
        tx.send(()).ok();
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
        panic!("recovery did not finish within 60 s");
    }
}
