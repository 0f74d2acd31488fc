//! One test per rule of the job store and scheduler, written against the [`JobStore`] port: each is generic
//! over the backend, which `open` opens in a temp dir. Time is passed in explicitly, so nothing sleeps.

use std::time::Duration;

use foreman::ids::Login;
use foreman::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use foreman::job::{
    ClaimOwner, EnqueueOutcome, FailureClass, IssueRef, JobKind, JobState, NewJob, Outcome, PhaseKey, SessionState,
    Trigger,
};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::JobStore;

use super::Open;
use time::OffsetDateTime;

/// Runs `f` on its own thread and fails the test if it takes longer than 60 s.
pub(super) fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || tx.send(f()).ok());
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => unreachable!("the thread sends before it ends"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish within 60 s"),
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn req(r: &str, n: u64, title: &str) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: repo(r),
        issue: IssueNumber(n),
        installation: Some(InstallationId(1)),
        kind: JobKind::Code,
        title: title.into(),
        body: String::new(),
        labels: vec!["foreman".into()],
        trigger: Some(Trigger::Label),
        requester: Some(Login("octocat".into())),
        instructions: None,
        delivery: None,
        cause: "label 'foreman' added".into(),
    }
}

fn roomy() -> SchedulerConfig {
    SchedulerConfig { max_sessions: 100, max_sessions_per_repo: 100, ..SchedulerConfig::default() }
}

fn assert_consistent<S: JobStore>(store: &S) {
    let problems = store.check_job_invariants().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

pub fn one_job_per_issue_and_a_redelivery_has_no_second_effect<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), roomy());
        let mut r = req("o/r", 1, "Fix it");
        r.delivery = Some(DeliveryId("d-1".into()));
        assert!(matches!(s.enqueue(r.clone(), "octocat", t0()).unwrap(), EnqueueOutcome::Queued(_)));
        assert!(matches!(s.enqueue(r.clone(), "octocat", t0()).unwrap(), EnqueueOutcome::Duplicate(_)));
        r.delivery = Some(DeliveryId("d-2".into()));
        r.title = "Fix it properly".into();
        let EnqueueOutcome::Updated(job) = s.enqueue(r.clone(), "octocat", t0() + secs(1)).unwrap() else { panic!() };
        assert_eq!(job.title, "Fix it properly");
        assert_eq!(job.enqueued_at, t0(), "an update keeps the job's age");
        // Case differences in the repository name are the same job (GitHub names are case-insensitive).
        r.repo = repo("O/R");
        r.delivery = None;
        assert!(matches!(s.enqueue(r, "octocat", t0()).unwrap(), EnqueueOutcome::Updated(_)));
        let claimed = s.claim_next(t0() + secs(2)).unwrap().unwrap();
        assert!(s.claim_next(t0() + secs(2)).unwrap().is_none(), "one job, one claim");
        let mut again = req("o/r", 1, "Fix it");
        again.delivery = Some(DeliveryId("d-3".into()));
        assert!(matches!(s.enqueue(again, "octocat", t0()).unwrap(), EnqueueOutcome::AlreadyRunning(_)));
        assert_eq!(claimed.job.state, JobState::Running);
        assert_consistent(s.store());
    });
}

pub fn runnable_jobs_run_by_priority_then_phase_then_failures_then_age<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig { max_sessions: 1, ..roomy() };
        let s = Scheduler::new(open(dir.path()), config);
        let mut at = t0();
        let mut add = |n: u64, title: &str, labels: &[&str]| {
            let mut r = req(&format!("o/r{n}"), n, title);
            r.labels = labels.iter().map(|l| l.to_string()).collect();
            at += secs(1);
            s.enqueue(r, "octocat", at).unwrap();
        };
        add(1, "Plain old issue", &[]);
        add(2, "[AUTH-2.1] Add password reset", &[]);
        add(3, "[AUTH-1.1] Create login endpoint", &[]);
        add(4, "Urgent thing", &["priority:critical"]);
        add(5, "Low thing", &["priority:low"]);
        add(6, "META: Authentication Project", &[]);
        add(7, "Phase 1.1 same key as #3, younger", &[]);
        add(8, "High", &["Priority:High"]);
        let mut order = vec![];
        let mut now = t0() + secs(100);
        while let Some(c) = s.claim_next(now).unwrap() {
            order.push(c.job.issue.0);
            let done = Outcome::Succeeded { summary: "ok".into(), resolution: foreman::job::Resolution::Answer };
            let job = s.store().finish_job(&c.claim, &done, s.config(), now, 0.5).unwrap();
            // What the success came to stays on the job, for a report made from the job alone.
            assert_eq!(job.resolution, Some(foreman::job::Resolution::Answer));
            now += secs(1);
        }
        assert_eq!(order, [4, 8, 6, 3, 7, 2, 1, 5]);
        assert_consistent(s.store());
    });
}

pub fn a_queued_job_is_re_placed_when_its_title_or_labels_change<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), SchedulerConfig { max_sessions: 1, ..roomy() });
        s.enqueue(req("o/r", 1, "Older"), "x", t0()).unwrap();
        s.enqueue(req("o/r", 2, "Younger"), "x", t0() + secs(1)).unwrap();
        let two = IssueRef { repo: repo("o/r"), issue: IssueNumber(2) };
        let high = vec!["priority:high".to_owned()];
        let job = s.reorder(&two, "Younger", &high, t0() + secs(2)).unwrap().expect("re-placed");
        assert_eq!((job.priority, job.labels.clone()), (1, high.clone()));
        assert!(s.reorder(&two, "Younger", &high, t0() + secs(3)).unwrap().is_none(), "nothing changed");
        let position = |n: u64| {
            let job = s.store().job(&repo("o/r"), IssueNumber(n)).unwrap().unwrap();
            s.store().queue_position(&job).unwrap()
        };
        assert_eq!((position(1), position(2)), (Some(2), Some(1)));
        // A running job is left alone: its claim is the authority.
        let c = s.claim_next(t0() + secs(4)).unwrap().unwrap();
        assert_eq!(c.job.issue.0, 2);
        assert!(s.reorder(&two, "Phase 1.1 Younger", &[], t0() + secs(5)).unwrap().is_none());
        // A title's phase key re-places too.
        let one = IssueRef { repo: repo("o/r"), issue: IssueNumber(1) };
        let job = s.reorder(&one, "Phase 2.1 Older", &[], t0() + secs(6)).unwrap().expect("re-placed");
        assert_eq!(job.phase, PhaseKey::Phase { phase: 2, task: 1 });
        assert_eq!(job.title, "Phase 2.1 Older");
        assert_consistent(s.store());
        let detail = s.store().job_detail(&repo("o/r"), IssueNumber(1)).unwrap().unwrap();
        assert_eq!(detail.audit.last().unwrap().action, "reordered");
    });
}

pub fn fewer_failures_run_first_within_the_same_priority_and_phase<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig { max_sessions: 1, backoff_min_seconds: 1, backoff_max_seconds: 1, ..roomy() };
        let s = Scheduler::new(open(dir.path()), config);
        s.enqueue(req("o/a", 1, "older"), "x", t0()).unwrap();
        s.enqueue(req("o/b", 2, "younger"), "x", t0() + secs(1)).unwrap();
        let c = s.claim_next(t0() + secs(2)).unwrap().unwrap();
        assert_eq!(c.job.issue.0, 1);
        let fail = Outcome::Failed { class: FailureClass::Agent, reason: "no changes".into(), retry_at: None };
        let job = s.store().finish_job(&c.claim, &fail, s.config(), t0() + secs(2), 1.0).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.failures.agent, 1);
        // After its backoff, the older job has one failure and runs after the younger one without.
        let later = t0() + secs(10);
        assert_eq!(s.claim_next(later).unwrap().unwrap().job.issue.0, 2);
    });
}

pub fn concurrency_limits_global_per_repository_and_per_installation<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig {
            max_sessions: 3,
            max_sessions_per_repo: 1,
            max_sessions_per_installation: Some(2),
            ..SchedulerConfig::default()
        };
        let s = Scheduler::new(open(dir.path()), config);
        // Two issues of o/a (installation 1), one of o/b (installation 1), two of p/c (installation 2).
        for (r, n, inst) in [("o/a", 1, 1), ("o/a", 2, 1), ("o/b", 3, 1), ("p/c", 4, 2), ("p/d", 5, 2), ("q/e", 6, 3)] {
            let mut x = req(r, n, "t");
            x.installation = Some(InstallationId(inst));
            s.enqueue(x, "x", t0() + secs(n as i64)).unwrap();
        }
        let now = t0() + secs(10);
        let got: Vec<_> = std::iter::from_fn(|| s.claim_next(now).unwrap()).map(|c| c.job.issue.0).collect();
        // o/a#1 (repo o/a now full), o/b#3 (installation 1 now full), p/c#4: global limit 3 reached.
        assert_eq!(got, [1, 3, 4]);
        let claims = s.store().claims().unwrap();
        assert_eq!(claims.len(), 3);
        // Cancelling a running job frees its slot at once.
        let (job, stop) =
            s.store().cancel_job(&repo("o/a"), IssueNumber(1), "octocat", "label removed", now).unwrap().unwrap();
        assert_eq!(job.state, JobState::Cancelled);
        let stopped = stop.expect("a running job names the session to stop");
        assert_eq!(s.store().session(&stopped).unwrap().unwrap().state, SessionState::Cancelled);
        let next = s.claim_next(now).unwrap().unwrap();
        assert_eq!(next.job.issue.0, 2, "o/a#2 takes the freed slot of o/a and installation 1");
        assert_consistent(s.store());
    });
}

/// The runner refuses installations low on GitHub quota: their jobs stay queued, in their place, and the
/// next admitted job runs; once admitted again they run first. The refusal is asked once per claim.
pub fn jobs_of_a_refused_installation_are_skipped_and_keep_their_place<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), roomy());
        for (r, n, inst) in [("o/a", 1, 1), ("o/b", 2, 1), ("p/c", 3, 2)] {
            let mut x = req(r, n, "t");
            x.installation = Some(InstallationId(inst));
            s.enqueue(x, "x", t0() + secs(n as i64)).unwrap();
        }
        let now = t0() + secs(10);
        let asked = std::cell::Cell::new(0);
        let low_on_quota = |i: InstallationId| {
            asked.set(asked.get() + 1);
            i != InstallationId(1)
        };
        let first = s.claim_next_admitting(now, &low_on_quota).unwrap().unwrap();
        assert_eq!(first.job.issue.0, 3, "installation 2's job runs while installation 1 is held");
        assert_eq!(asked.get(), 2, "installation 1 once for its two jobs, installation 2 once");
        assert!(s.claim_next_admitting(now, &low_on_quota).unwrap().is_none(), "installation 1 stays held");
        let order: Vec<_> = std::iter::from_fn(|| s.claim_next(now).unwrap()).map(|c| c.job.issue.0).collect();
        assert_eq!(order, [1, 2], "admitted again, its jobs run in their order");
        assert_consistent(s.store());
    });
}

pub fn a_repositorys_constitution_sets_its_own_concurrency<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig { max_sessions: 4, max_sessions_per_repo: 1, ..SchedulerConfig::default() };
        let s = Scheduler::new(open(dir.path()), config);
        for (r, n) in [("o/a", 1), ("o/a", 2), ("o/a", 3), ("o/b", 4), ("o/b", 5)] {
            s.enqueue(req(r, n, "t"), "x", t0() + secs(n as i64)).unwrap();
        }
        // o/a's constitution allows two at once; o/b says nothing (the server's one applies), then sets three.
        let two = foreman::constitution::merge(None, Some("[limits]\nconcurrency = 2\n")).unwrap();
        let silent = foreman::constitution::merge(None, Some("[rules]\nmax_files_changed = 9\n")).unwrap();
        s.learn_limits(&repo("o/a"), &two);
        s.learn_limits(&repo("o/b"), &silent);
        let now = t0() + secs(10);
        let got: Vec<_> = std::iter::from_fn(|| s.claim_next(now).unwrap()).map(|c| c.job.issue.0).collect();
        assert_eq!(got, [1, 2, 4], "two of o/a, one of o/b");
        let three = foreman::constitution::merge(None, Some("[limits]\nconcurrency = 3\n")).unwrap();
        s.learn_limits(&repo("o/b"), &three);
        assert_eq!(s.claim_next(now).unwrap().map(|c| c.job.issue.0), Some(5), "o/b may run another now");
        s.learn_limits(&repo("o/a"), &silent);
        assert!(s.claim_next(now).unwrap().is_none(), "o/a is back at the server's one and the global four");
        assert_consistent(s.store());
    });
}

pub fn heartbeats_renew_and_an_expired_claim_is_reclaimable_as_an_infrastructure_failure<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let config = SchedulerConfig::default();
        let a = Scheduler::with_owner(store.clone(), config.clone(), ClaimOwner::new());
        let b = Scheduler::with_owner(store.clone(), config.clone(), ClaimOwner::new());
        a.enqueue(req("o/r", 1, "t"), "x", t0()).unwrap();
        let c = a.claim_next(t0()).unwrap().unwrap();
        assert_eq!(c.claim.expires_at, t0() + secs(1800), "the seed's 30-minute claim");
        // Renewed at minute 20, the claim lives to minute 50: at minute 40 nobody can take it.
        assert_eq!(a.heartbeat(&c.claim, t0() + secs(1200)).unwrap(), t0() + secs(3000));
        assert!(b.claim_next(t0() + secs(2400)).unwrap().is_none());
        // Not renewed again: at minute 50 it has expired; the holder's heartbeat is refused and b reclaims.
        let end = t0() + secs(3000);
        assert!(a.heartbeat(&c.claim, end).is_err());
        let c2 = b.claim_next(end).unwrap().expect("an expired claim is reclaimable");
        assert_eq!(c2.job.failures.infrastructure, 1);
        assert_eq!(c2.job.attempts, 2);
        assert_eq!(c2.claim.owner, *b.owner());
        let old = store.session(&c.claim.session).unwrap().unwrap();
        assert_eq!(old.state, SessionState::Expired);
        // The old holder can no longer finish.
        let done = Outcome::Succeeded { summary: "late".into(), resolution: foreman::job::Resolution::PullRequest };
        assert!(store.finish_job(&c.claim, &done, &config, end, 0.0).is_err());
        let failures = store.jobs_status(end, 10).unwrap().recent_failures;
        assert_eq!(failures[0].class, FailureClass::Infrastructure);
        assert_consistent(&store);
    });
}

pub fn three_agent_or_validation_failures_make_a_job_stuck_and_retry_resets<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), roomy());
        s.enqueue(req("o/r", 1, "t"), "x", t0()).unwrap();
        let mut now = t0();
        for (i, class) in [FailureClass::Agent, FailureClass::Validation, FailureClass::Agent].into_iter().enumerate() {
            let c = s.claim_next(now).unwrap().expect("runnable after its backoff");
            let fail = Outcome::Failed { class, reason: format!("failure {i}"), retry_at: None };
            let job = s.store().finish_job(&c.claim, &fail, s.config(), now, 0.0).unwrap();
            if i < 2 {
                assert_eq!(job.state, JobState::Failed);
                assert!(s.claim_next(now).unwrap().is_none(), "backing off");
            } else {
                assert_eq!(job.state, JobState::Stuck);
                assert!(job.stuck_reason.unwrap().contains("3 agent or validation failures"));
            }
            now += secs(301);
        }
        assert!(s.claim_next(now + secs(10_000)).unwrap().is_none(), "a stuck job does not run");
        let status = s.store().jobs_status(now, 10).unwrap();
        assert_eq!(status.counts["stuck"], 1);
        assert_eq!(status.stuck.len(), 1);
        // Re-labelling does not unstick it; `retry` does, and resets the count.
        assert!(matches!(s.enqueue(req("o/r", 1, "t"), "x", now).unwrap(), EnqueueOutcome::Stuck(_)));
        let job = s.store().retry_job(&repo("o/r"), IssueNumber(1), "octocat", "/foreman retry", now).unwrap();
        assert_eq!((job.state, job.failures.counted()), (JobState::Queued, 0));
        assert!(s.claim_next(now).unwrap().is_some());
        assert_consistent(s.store());
    });
}

pub fn rate_limits_never_count_and_wait_until_the_reported_reset<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), SchedulerConfig { max_failures: 1, ..roomy() });
        s.enqueue(req("o/r", 1, "t"), "x", t0()).unwrap();
        let mut now = t0();
        for _ in 0..5 {
            let reset = now + secs(5 * 3600);
            let c = s.claim_next(now).unwrap().expect("runnable after the reset");
            let limit = Outcome::Failed {
                class: FailureClass::RateLimit,
                reason: "You've hit your 5-hour limit".into(),
                retry_at: Some(reset),
            };
            let job = s.store().finish_job(&c.claim, &limit, s.config(), now, 0.0).unwrap();
            assert_eq!(job.state, JobState::Failed, "never stuck, even with max_failures = 1");
            assert_eq!(job.not_before, Some(reset));
            assert!(s.claim_next(reset - secs(1)).unwrap().is_none());
            now = reset;
        }
        let job = s.store().job(&repo("o/r"), IssueNumber(1)).unwrap().unwrap();
        assert_eq!((job.failures.rate_limit, job.failures.counted()), (5, 0));
    });
}

pub fn backoff_is_exponential_with_jitter_and_capped_at_five_minutes<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig { max_failures: 100, ..roomy() };
        let s = Scheduler::new(open(dir.path()), config);
        s.enqueue(req("o/r", 1, "t"), "x", t0()).unwrap();
        let mut now = t0();
        let mut delays = vec![];
        for _ in 0..8 {
            let c = s.claim_next(now).unwrap().unwrap();
            let fail = Outcome::Failed { class: FailureClass::Agent, reason: "x".into(), retry_at: None };
            let job = s.store().finish_job(&c.claim, &fail, s.config(), now, 1.0).unwrap();
            let wait = job.not_before.unwrap() - now;
            delays.push(wait.whole_seconds());
            now += wait;
        }
        assert_eq!(delays, [15, 30, 60, 120, 240, 300, 300, 300]);
    });
}

pub fn dependencies_wait_until_closed_and_cycles_are_reported<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), roomy());
        let mut a = req("o/r", 1, "needs two things");
        a.body = "Depends on #2\nBlocked by other/lib#7".into();
        let job = s.enqueue(a, "x", t0()).unwrap().job().clone();
        assert_eq!(job.waiting_on.len(), 2);
        assert!(s.claim_next(t0()).unwrap().is_none(), "waiting on open dependencies");
        let mut unknown = s.store().unknown_dependencies(10).unwrap();
        unknown.sort();
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        let lib = IssueRef { repo: repo("other/lib"), issue: IssueNumber(7) };
        let two = IssueRef { repo: repo("o/r"), issue: IssueNumber(2) };
        assert_eq!(s.issue_state(&lib, false, t0()).unwrap(), 1);
        assert!(s.claim_next(t0()).unwrap().is_none(), "still waiting on #2");
        s.issue_state(&two, false, t0()).unwrap();
        let c = s.claim_next(t0()).unwrap().expect("runnable once every dependency is closed");
        assert_eq!(c.job.issue.0, 1);
        // A dependency already known closed does not hold a new job back.
        let mut b = req("o/r", 3, "after lib");
        b.body = "depends on other/lib#7".into();
        assert!(s.enqueue(b, "x", t0()).unwrap().job().waiting_on.is_empty());

        // A cycle: #10 waits on #11, #11 on #12, #12 on #10.
        for (n, dep) in [(10, 11), (11, 12), (12, 10)] {
            let mut r = req("o/r", n, "cyclic");
            r.body = format!("Depends on #{dep}");
            let out = s.enqueue(r, "x", t0()).unwrap();
            if n == 12 {
                let EnqueueOutcome::Stuck(job) = out else { panic!("{out:?}") };
                assert_eq!(job.stuck_reason.as_deref(), Some("dependency cycle: o/r#12 → o/r#10 → o/r#11 → o/r#12"));
            }
        }
        for n in [10, 11, 12] {
            assert_eq!(s.store().job(&repo("o/r"), IssueNumber(n)).unwrap().unwrap().state, JobState::Stuck, "#{n}");
        }
        assert_consistent(s.store());
    });
}

pub fn every_transition_is_in_the_audit_trail<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), roomy());
        s.enqueue(req("o/r", 1, "t"), "octocat", t0()).unwrap();
        let c = s.claim_next(t0() + secs(1)).unwrap().unwrap();
        let fail = Outcome::Failed { class: FailureClass::Validation, reason: "pushed to main".into(), retry_at: None };
        s.store().finish_job(&c.claim, &fail, s.config(), t0() + secs(2), 0.0).unwrap();
        s.store().cancel_job(&repo("o/r"), IssueNumber(1), "hubot", "issue closed", t0() + secs(3)).unwrap();
        let d = s.store().job_detail(&repo("o/r"), IssueNumber(1)).unwrap().unwrap();
        let trail: Vec<_> = d.audit.iter().map(|e| (e.action.as_str(), e.to, e.actor.as_str())).collect();
        assert_eq!(
            trail,
            [
                ("enqueued", JobState::Queued, "octocat"),
                ("claimed", JobState::Running, s.owner().actor().as_str()),
                ("failed", JobState::Failed, s.owner().actor().as_str()),
                ("cancelled", JobState::Cancelled, "hubot"),
            ]
        );
        assert_eq!(d.audit[1].at, t0() + secs(1));
        assert!(d.audit[2].cause.contains("validation failure: pushed to main"), "{}", d.audit[2].cause);
        assert_eq!(d.audit[3].cause, "issue closed");
    });
}

pub fn positions_and_status_show_the_queue<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let s = Scheduler::new(open(dir.path()), SchedulerConfig { max_sessions: 1, ..roomy() });
        for n in 1..=5 {
            s.enqueue(req(&format!("o/r{n}"), n, &format!("Task 1.{n}")), "x", t0()).unwrap();
        }
        let c = s.claim_next(t0()).unwrap().unwrap();
        assert_eq!(c.job.phase, PhaseKey::Phase { phase: 1, task: 1 });
        let d = s.store().job_detail(&repo("o/r4"), IssueNumber(4)).unwrap().unwrap();
        assert_eq!(d.position, Some(3));
        let st = s.store().jobs_status(t0(), 2).unwrap();
        assert_eq!(st.counts["queued"], 4);
        assert_eq!(st.counts["running"], 1);
        assert_eq!(st.queued.iter().map(|q| (q.position, q.issue.0)).collect::<Vec<_>>(), [(Some(1), 2), (Some(2), 3)]);
        assert!(st.queued_truncated);
        assert_eq!(st.running[0].claim.expires_at, t0() + secs(1800));
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["running"][0]["repo"], "o/r1");
    });
}

pub fn a_restart_requeues_jobs_of_the_process_that_died_and_reconciles_claims<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig::default();
        let (claimed, other) = {
            let store = open(dir.path());
            let s = Scheduler::new(store.clone(), config.clone());
            s.enqueue(req("o/a", 1, "t"), "x", t0()).unwrap();
            s.enqueue(req("o/b", 2, "t"), "x", t0()).unwrap();
            let c = s.claim_next(t0()).unwrap().unwrap();
            let d = s.claim_next(t0()).unwrap().unwrap();
            (c, d)
        };
        // Reopen (the writer thread of the old store lets go of the database lock shortly after the drop).
        let store = open(dir.path());
        let s = Scheduler::new(store.clone(), config);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = rt.block_on(s.recover(t0() + secs(5))).unwrap();
        assert_eq!(report.requeued.len(), 2);
        for c in [&claimed, &other] {
            let session = store.session(&c.claim.session).unwrap().unwrap();
            assert_eq!(session.state, SessionState::Interrupted);
            let job = store.job(&c.claim.repo, c.claim.issue).unwrap().unwrap();
            assert_eq!((job.state, job.failures.counted()), (JobState::Queued, 0));
        }
        assert!(store.claims().unwrap().is_empty());
        assert_consistent(&store);
        let again = s.claim_next(t0() + secs(6)).unwrap().unwrap();
        assert_eq!(again.claim.owner, *s.owner());
    });
}

pub fn two_schedulers_racing_on_threads_never_share_a_job<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let config = SchedulerConfig { max_sessions: 1000, max_sessions_per_repo: 1, ..SchedulerConfig::default() };
        let seed = Scheduler::new(store.clone(), config.clone());
        for n in 0..200u64 {
            seed.enqueue(req(&format!("o/r{}", n % 50), n, "t"), "x", t0()).unwrap();
        }
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let s = Scheduler::with_owner(store.clone(), config.clone(), ClaimOwner::new());
                std::thread::spawn(move || {
                    let mut mine = vec![];
                    while let Some(c) = s.claim_next(t0()).unwrap() {
                        mine.push(c);
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<_> = racers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        // One slot per repository: exactly 50 claims, all for different repositories.
        assert_eq!(all.len(), 50);
        all.sort_by_key(|c| c.claim.repo.to_string());
        all.dedup_by_key(|c| c.claim.repo.to_string());
        assert_eq!(all.len(), 50);
        assert_eq!(store.claims().unwrap().len(), 50);
        assert_consistent(&store);
    });
}
