//! The rules of the report records ([`Reports`]): the newest state report of a job is kept with the
//! version GitHub took, survives a reopen, and the jobs GitHub is behind on are listed with how to report
//! each again ([`foreman::job::reports::due`]).

use foreman::ids::{InstallationId, IssueNumber, Login, RepoName};
use foreman::job::{ClaimOwner, Due, JobKind, JobState, NewJob, Outcome, ReportRecord, Trigger, nanos};
use foreman::scheduler::SchedulerConfig;
use foreman::store::{JobStore, Reports};
use time::OffsetDateTime;

use super::Open;

fn t(n: i64) -> OffsetDateTime {
    // After any real clock this test runs on: every job here changed after the store began keeping reports.
    OffsetDateTime::from_unix_timestamp(4_000_000_000 + n).unwrap()
}

fn repo() -> RepoName {
    "o/r".parse().unwrap()
}

fn record(version: u64, state: JobState, report: &str) -> ReportRecord {
    ReportRecord {
        repo: repo(),
        issue: IssueNumber(1),
        version,
        state,
        installation: InstallationId(7),
        report: report.into(),
        applied: 0,
        applied_state: None,
    }
}

/// What `reports_due` says of the one job of these tests, if anything.
fn due_of<S: Reports>(store: &S) -> Option<(JobState, Option<ReportRecord>, Due)> {
    let due = store.reports_due(100).unwrap();
    assert!(due.len() <= 1, "{due:?}");
    due.into_iter().next().map(|(job, record, how)| (job.state, record, how))
}

pub async fn a_jobs_reports_are_kept_with_the_version_applied_and_survive_a_reopen<S: JobStore + Reports>(
    open: Open<S>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let config = SchedulerConfig::default();
    let new = NewJob {
        blocked_by: vec![],
        repo: repo(),
        issue: IssueNumber(1),
        installation: Some(InstallationId(7)),
        kind: JobKind::Code,
        title: "Fix it".into(),
        body: String::new(),
        labels: vec![],
        trigger: Some(Trigger::Label),
        requester: Some(Login("octocat".into())),
        instructions: None,
        delivery: None,
        cause: "label".into(),
    };
    let queued = store.enqueue_job(&new, 2, "octocat", t(0)).unwrap().job().clone();
    // Queued and never reported: due, to be made from the job.
    let (state, none, how) = due_of(&store).expect("a job never reported is due");
    assert_eq!((state, none, how), (JobState::Queued, None, Due::Rebuild));

    let v0 = nanos(queued.updated_at);
    assert!(store.put_report(&record(v0, JobState::Queued, "queued")).unwrap());
    assert_eq!(due_of(&store).map(|d| d.2), Some(Due::Stored), "stored, not applied");
    store.report_applied(&repo(), IssueNumber(1), v0, JobState::Queued).unwrap();
    assert_eq!(due_of(&store), None, "applied: GitHub shows the job");

    // Claimed with no report made yet: GitHub shows "queued" of a running job.
    let owner = ClaimOwner::new();
    let claimed = store.claim_next_admitting(&owner, &config, t(1), &|_| true).unwrap().expect("claimed");
    let (state, _, how) = due_of(&store).expect("a state change with no report is due");
    assert_eq!((state, how), (JobState::Running, Due::Rebuild));
    let v1 = nanos(claimed.job.updated_at);
    assert!(store.put_report(&record(v1, JobState::Running, "running")).unwrap());
    store.report_applied(&repo(), IssueNumber(1), v1, JobState::Running).unwrap();
    assert_eq!(due_of(&store), None);

    // Finished; its report stored but not applied when the process dies.
    let done = store
        .finish_job(
            &claimed.claim,
            &Outcome::Succeeded { summary: "ok".into(), resolution: foreman::job::Resolution::PullRequest },
            &config,
            t(2),
            0.5,
        )
        .unwrap();
    let v2 = nanos(done.updated_at);
    assert!(store.put_report(&record(v2, JobState::Succeeded, "succeeded with #2")).unwrap());
    // A late report of an older version never replaces it, nor does an older version count as applied.
    assert!(!store.put_report(&record(v1, JobState::Running, "late")).unwrap());
    store.report_applied(&repo(), IssueNumber(1), v1, JobState::Running).unwrap();
    store.sync().await.unwrap();
    drop(store);

    let store = open(dir.path());
    let (state, stored, how) = due_of(&store).expect("the stored report is still due after a reopen");
    assert_eq!((state, how), (JobState::Succeeded, Due::Stored));
    let stored = stored.unwrap();
    assert_eq!(stored.report, "succeeded with #2");
    assert_eq!((stored.version, stored.applied, stored.applied_state), (v2, v1, Some(JobState::Running)));
    assert_eq!(store.report(&repo(), IssueNumber(1)).unwrap(), Some(stored));
    store.report_applied(&repo(), IssueNumber(1), v2, JobState::Succeeded).unwrap();
    assert_eq!(due_of(&store), None);
    assert_eq!(store.report(&repo(), IssueNumber(2)).unwrap(), None);
}
