//! A job's history as the job store keeps it: every session of the job ([`JobStore::job_sessions`]) and
//! every failure in the ledger ([`JobStore::job_failures`]), oldest first, one job's never another's, kept
//! across a `retry` (which resets the counts, not the ledger) and a reopen; and the delivery that queued a
//! job in its audit trail.

use foreman::ids::{DeliveryId, InstallationId, IssueNumber, Login, RepoName};
use foreman::job::failures::counted;
use foreman::job::{FailureClass, JobKind, NewJob, Outcome, Resolution, SessionState, Trigger};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::JobStore;
use time::OffsetDateTime;

use super::Open;
use super::jobs_rules::bounded;

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn req(r: &str, n: u64, delivery: &str) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: repo(r),
        issue: IssueNumber(n),
        installation: Some(InstallationId(1)),
        kind: JobKind::Code,
        title: "t".into(),
        body: String::new(),
        labels: vec!["foreman".into()],
        trigger: Some(Trigger::Label),
        requester: Some(Login("octocat".into())),
        instructions: None,
        delivery: Some(DeliveryId(delivery.into())),
        cause: "label by octocat".into(),
    }
}

pub fn a_jobs_sessions_and_failures_are_kept_oldest_first_across_a_retry_and_a_reopen<S: JobStore>(open: Open<S>) {
    bounded(move || {
        let dir = tempfile::tempdir().unwrap();
        let config = SchedulerConfig { max_sessions: 10, max_sessions_per_repo: 10, ..SchedulerConfig::default() };
        let sessions = {
            let s = Scheduler::new(open(dir.path()), config.clone());
            s.enqueue(req("o/r", 1, "d-1"), "octocat", t(0)).unwrap();
            // Another job in a repository whose name starts the same: never in o/r#1's history.
            s.enqueue(req("o/r2", 1, "d-2"), "octocat", t(0)).unwrap();
            let mut sessions = Vec::new();
            let mut now = t(0);
            let outcomes = [
                Outcome::Failed { class: FailureClass::Agent, reason: "first".into(), retry_at: None },
                Outcome::Failed { class: FailureClass::RateLimit, reason: "limit".into(), retry_at: None },
                Outcome::Failed { class: FailureClass::Agent, reason: "after the retry".into(), retry_at: None },
                Outcome::Succeeded { summary: "done".into(), resolution: Resolution::PullRequest },
            ];
            for (i, outcome) in outcomes.iter().enumerate() {
                if i == 2 {
                    s.store().retry_job(&repo("o/r"), IssueNumber(1), "octocat", "/foreman retry", now).unwrap();
                }
                // The other job, when it comes first, fails (and waits out its backoff) without being looked at.
                let c = loop {
                    let c = s.claim_next(now).unwrap().expect("a runnable job");
                    if c.job.repo == repo("o/r") {
                        break c;
                    }
                    let other = Outcome::Failed { class: FailureClass::Agent, reason: "other".into(), retry_at: None };
                    s.store().finish_job(&c.claim, &other, s.config(), now, 0.0).unwrap();
                };
                s.store().finish_job(&c.claim, outcome, s.config(), now + time::Duration::seconds(1), 0.0).unwrap();
                sessions.push(c.claim.session);
                // Past any backoff (at most five minutes).
                now += time::Duration::seconds(400);
            }
            let flushed = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            flushed.block_on(s.store().sync()).unwrap();
            sessions
        };
        // Reopened: what was written and flushed is there.
        let store = open(dir.path());
        let records = store.job_sessions(&repo("O/R"), IssueNumber(1)).unwrap();
        assert_eq!(records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), sessions);
        let states: Vec<SessionState> = records.iter().map(|r| r.state).collect();
        assert_eq!(states, [SessionState::Failed, SessionState::Failed, SessionState::Failed, SessionState::Succeeded]);
        let failures = store.job_failures(&repo("o/r"), IssueNumber(1)).unwrap();
        let seen: Vec<_> = failures.iter().map(|f| (f.class, f.reason.as_str(), f.session.clone())).collect();
        assert_eq!(
            seen,
            [
                (FailureClass::Agent, "first", Some(sessions[0].clone())),
                (FailureClass::RateLimit, "limit", Some(sessions[1].clone())),
                (FailureClass::Agent, "after the retry", Some(sessions[2].clone())),
            ]
        );
        // Only the failure since the retry counts; the rate limit never does.
        let job = store.job(&repo("o/r"), IssueNumber(1)).unwrap().unwrap();
        assert_eq!(counted(&failures, &job.failures), [false, false, true]);
        assert!(store.job_failures(&repo("o/r2"), IssueNumber(1)).unwrap().iter().all(|f| f.reason == "other"));
        assert!(store.job_sessions(&repo("o/r"), IssueNumber(2)).unwrap().is_empty());
        // The audit trail names the delivery that queued each job.
        let d = store.job_detail(&repo("o/r"), IssueNumber(1)).unwrap().unwrap();
        assert_eq!(d.audit[0].action, "enqueued");
        assert_eq!(d.audit[0].delivery, Some(DeliveryId("d-1".into())));
        assert!(d.audit.iter().skip(1).all(|e| e.delivery.is_none()), "{:?}", d.audit);
        let problems = store.check_job_invariants().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    });
}
