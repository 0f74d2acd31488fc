//! Property tests of the job store's invariants under random interleavings of enqueue, claim (by two
//! schedulers), heartbeat, the passing of time (expiry, backoff), completion, cancel, retry and restart
//! (the store reopened from the same directory), against the [`JobStore`] port, on the backend `open`
//! opens in a temp dir; time is explicit.
//!
//! Invariants checked after every step:
//! - at most one live claim per issue, and it is the one last handed out for that issue: every older
//!   claim is refused by heartbeat and finish;
//! - no job lost: every issue ever queued has its job, in a consistent place ([`JobStore::check_job_invariants`]);
//! - the run-order index is total and strictly increasing by (priority, phase, failures, age, sequence),
//!   and a claim takes the first runnable job that fits the limits;
//! - expired claims are reclaimable: at the end, far in the future, every job that is not finished or
//!   stuck is claimed again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foreman::ids::{InstallationId, IssueNumber, RepoName};
use foreman::job::{Claim, ClaimOwner, FailureClass, JobKind, JobState, NewJob, Outcome};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::JobStore;
use proptest::prelude::*;
use time::OffsetDateTime;

use super::Open;

#[derive(Debug, Clone)]
enum Op {
    Enqueue { issue: u8, title: u8, label: u8 },
    Claim { scheduler: u8 },
    Heartbeat { pick: u8 },
    Advance { secs: u16 },
    Finish { pick: u8, outcome: u8 },
    Cancel { issue: u8 },
    Retry { issue: u8 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8u8, 0..5u8, 0..4u8).prop_map(|(issue, title, label)| Op::Enqueue { issue, title, label }),
        4 => (0..2u8).prop_map(|scheduler| Op::Claim { scheduler }),
        2 => any::<u8>().prop_map(|pick| Op::Heartbeat { pick }),
        3 => (0..400u16).prop_map(|secs| Op::Advance { secs }),
        3 => (any::<u8>(), 0..5u8).prop_map(|(pick, outcome)| Op::Finish { pick, outcome }),
        1 => (0..8u8).prop_map(|issue| Op::Cancel { issue }),
        1 => (0..8u8).prop_map(|issue| Op::Retry { issue }),
        1 => Just(Op::Restart),
    ]
}

const TITLES: [&str; 5] = ["Plain", "META: tracker", "[AUTH-1.2] x", "Phase 2.1 y", "Task 1.1 z"];
const LABELS: [&str; 4] = ["foreman", "priority:high", "priority:low", "priority:critical"];

fn config() -> SchedulerConfig {
    SchedulerConfig {
        claim_ttl_seconds: 120,
        max_sessions: 3,
        max_sessions_per_repo: 1,
        backoff_min_seconds: 10,
        backoff_max_seconds: 60,
        ..SchedulerConfig::default()
    }
}

fn repo_of(issue: u8) -> RepoName {
    // Eight issues over three repositories, so the per-repository limit matters.
    format!("o/r{}", issue % 3).parse().unwrap()
}

struct World<S: JobStore> {
    open: Open<S>,
    dir: tempfile::TempDir,
    store: Option<S>,
    schedulers: Vec<Scheduler<S>>,
    now: OffsetDateTime,
    /// Every claim handed out, oldest first.
    handed: Vec<Claim>,
    /// The last claim handed out per issue.
    latest: BTreeMap<(String, u64), u64>,
    queued: BTreeSet<u8>,
}

impl<S: JobStore> World<S> {
    fn new(open: Open<S>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut w = World {
            open,
            dir,
            store: None,
            schedulers: vec![],
            now: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            handed: vec![],
            latest: BTreeMap::new(),
            queued: BTreeSet::new(),
        };
        w.attach(store);
        w
    }

    fn attach(&mut self, store: S) {
        self.schedulers = (0..2).map(|_| Scheduler::with_owner(store.clone(), config(), ClaimOwner::new())).collect();
        self.store = Some(store);
    }

    fn store(&self) -> &S {
        self.store.as_ref().unwrap()
    }

    fn pick(&self, pick: u8) -> Option<Claim> {
        (!self.handed.is_empty()).then(|| self.handed[pick as usize % self.handed.len()].clone())
    }

    fn is_latest(&self, c: &Claim) -> bool {
        self.latest.get(&(c.repo.to_string(), c.issue.0)) == Some(&c.id)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Enqueue { issue, title, label } => {
                let req = NewJob {
                    blocked_by: vec![],
                    repo: repo_of(issue),
                    issue: IssueNumber(issue.into()),
                    installation: Some(InstallationId(1)),
                    kind: JobKind::Code,
                    title: TITLES[title as usize].into(),
                    body: String::new(),
                    labels: vec![LABELS[label as usize].into()],
                    trigger: None,
                    requester: None,
                    instructions: None,
                    delivery: None,
                    cause: "test".into(),
                };
                self.schedulers[0].enqueue(req, "test", self.now).unwrap();
                self.queued.insert(issue);
            }
            Op::Claim { scheduler } => {
                let store = self.store().clone();
                let cfg = config();
                // Judge at `now` first (idempotent), so the expected pick can be read from the index.
                store.expire_claims(&cfg, self.now).unwrap();
                store.promote_due(self.now).unwrap();
                let status = store.jobs_status(self.now, 100).unwrap();
                let busy: BTreeSet<String> = store.claims().unwrap().iter().map(|c| c.repo.to_string()).collect();
                let expected = if busy.len() >= cfg.max_sessions as usize {
                    None
                } else {
                    status
                        .queued
                        .iter()
                        .filter(|q| q.position.is_some())
                        .find(|q| !busy.contains(&q.repo.to_string()))
                        .map(|q| (q.repo.to_string(), q.issue.0))
                };
                let got = self.schedulers[scheduler as usize].claim_next(self.now).unwrap();
                let got_key = got.as_ref().map(|c| (c.claim.repo.to_string(), c.claim.issue.0));
                prop_assert_eq!(&got_key, &expected, "a claim takes the first runnable job that fits");
                if let Some(c) = got {
                    prop_assert!(!self.is_latest(&c.claim));
                    self.latest.insert((c.claim.repo.to_string(), c.claim.issue.0), c.claim.id);
                    self.handed.push(c.claim);
                }
            }
            Op::Heartbeat { pick } => {
                let Some(c) = self.pick(pick) else { return Ok(()) };
                let live = self.store().claims().unwrap().iter().any(|l| l.id == c.id && l.expires_at > self.now);
                let r = self.schedulers[0].heartbeat(&c, self.now);
                prop_assert_eq!(r.is_ok(), live, "heartbeat succeeds exactly for a live claim");
                if live {
                    prop_assert!(self.is_latest(&c), "only the latest claim of an issue can be live");
                }
            }
            Op::Advance { secs } => self.now += time::Duration::seconds(secs.into()),
            Op::Finish { pick, outcome } => {
                let Some(c) = self.pick(pick) else { return Ok(()) };
                let live = self.store().claims().unwrap().iter().any(|l| l.id == c.id && l.expires_at > self.now);
                let outcome = match outcome {
                    0 => Outcome::Succeeded { summary: "ok".into(), resolution: foreman::job::Resolution::PullRequest },
                    1 => Outcome::Failed { class: FailureClass::Agent, reason: "a".into(), retry_at: None },
                    2 => Outcome::Failed { class: FailureClass::Validation, reason: "v".into(), retry_at: None },
                    3 => Outcome::Failed {
                        class: FailureClass::RateLimit,
                        reason: "r".into(),
                        retry_at: Some(self.now + time::Duration::seconds(90)),
                    },
                    _ => Outcome::Released { cause: "shutdown".into() },
                };
                let r = self.store().finish_job(&c, &outcome, &config(), self.now, 0.5);
                prop_assert_eq!(r.is_ok(), live, "finish succeeds exactly for a live claim");
            }
            Op::Cancel { issue } => {
                let r = self.store().cancel_job(&repo_of(issue), IssueNumber(issue.into()), "t", "test", self.now);
                prop_assert_eq!(r.is_ok(), self.queued.contains(&issue));
            }
            Op::Retry { issue } => {
                let r = self.store().retry_job(&repo_of(issue), IssueNumber(issue.into()), "t", "test", self.now);
                if !self.queued.contains(&issue) {
                    prop_assert!(r.is_err());
                }
            }
            Op::Restart => {
                self.schedulers.clear();
                self.store = None;
                let store = (self.open)(self.dir.path());
                self.attach(store);
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let report = rt.block_on(self.schedulers[0].recover(self.now)).unwrap();
                prop_assert_eq!(report.kept, 0);
                prop_assert!(self.store().claims().unwrap().is_empty());
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let store = self.store();
        let problems = store.check_job_invariants().unwrap();
        prop_assert!(problems.is_empty(), "{:#?}", problems);
        // At most one live claim per issue, and it is the latest one handed out.
        let claims = store.claims().unwrap();
        let mut issues = BTreeSet::new();
        for c in &claims {
            prop_assert!(issues.insert((c.repo.to_string(), c.issue.0)), "two claims on {}", c.issue_ref());
            prop_assert!(self.is_latest(c), "the stored claim on {} is not the latest handed out", c.issue_ref());
        }
        // No job lost.
        for issue in &self.queued {
            let job = store.job(&repo_of(*issue), IssueNumber((*issue).into())).unwrap();
            prop_assert!(job.is_some(), "job for #{} lost", issue);
        }
        // The run-order index is strictly increasing by the rules, read from the jobs themselves.
        let status = store.jobs_status(self.now, 100).unwrap();
        let mut last = None;
        for q in status.queued.iter().filter(|q| q.position.is_some()) {
            let job = store.job(&q.repo, q.issue).unwrap().unwrap();
            let key = (job.priority, job.phase, job.failures.counted(), job.enqueued_at, job.seq);
            if let Some(prev) = last {
                prop_assert!(prev < key, "order not strictly increasing: {:?} then {:?}", prev, key);
            }
            last = Some(key);
        }
        Ok(())
    }

    /// Far in the future, with unlimited slots: every job not finished or stuck is claimable again.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.now += time::Duration::days(30);
        let store = self.store().clone();
        let open: BTreeSet<(String, u64)> = self
            .queued
            .iter()
            .filter_map(|i| store.job(&repo_of(*i), IssueNumber((*i).into())).unwrap())
            .filter(|j| matches!(j.state, JobState::Queued | JobState::Failed | JobState::Running))
            .map(|j| (j.repo.to_string(), j.issue.0))
            .collect();
        let roomy = SchedulerConfig { max_sessions: 100, max_sessions_per_repo: 100, ..config() };
        let s = Scheduler::with_owner(store.clone(), roomy, ClaimOwner::new());
        let mut claimed = BTreeSet::new();
        while let Some(c) = s.claim_next(self.now).unwrap() {
            prop_assert!(claimed.insert((c.claim.repo.to_string(), c.claim.issue.0)), "claimed twice");
        }
        prop_assert_eq!(claimed, open);
        Ok(())
    }
}

/// Random interleavings of enqueue, claim, heartbeat, finish, expiry, cancel, retry, dependency and restart
/// steps, over two schedulers sharing one store; the store is checked after every step and drained at the
/// end. Failing cases are kept beside this file (`jobs_props.proptest-regressions`).
pub fn invariants_hold_under_random_interleavings<S: JobStore>(open: Open<S>) {
    let config =
        ProptestConfig { cases: 48, max_shrink_iters: 200, source_file: Some(file!()), ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let run = || -> Result<(), TestCaseError> {
                let mut w = World::new(open);
                for op in &ops {
                    w.step(op)?;
                }
                w.drain()
            };
            tx.send(run()).ok();
        });
        rx.recv_timeout(Duration::from_secs(120)).expect("one case finishes within 120 s")
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
