//! The sled store's reads for the console's repository page, on a real sled store in a temp directory: one
//! repository's jobs (claims applied, the most recently changed first, other repositories left out, the
//! name compared without regard to case), its session records, the sub-issues recorded under its issues,
//! and whether an issue is known closed.

use foreman::ids::{InstallationId, IssueNumber, RepoName};
use foreman::job::{ClaimOwner, IssueRef, JobKind, JobState, NewJob, Outcome, Resolution, Trigger};
use foreman::scheduler::SchedulerConfig;
use foreman::store::{Store, StoreOptions};
use time::OffsetDateTime;

fn t(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(4_000_000_000 + n).unwrap()
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn new_job(repo: &RepoName, issue: u64) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: repo.clone(),
        issue: IssueNumber(issue),
        installation: Some(InstallationId(7)),
        kind: JobKind::Code,
        title: format!("Issue {issue}"),
        body: String::new(),
        labels: vec![],
        trigger: Some(Trigger::Label),
        requester: None,
        instructions: None,
        delivery: None,
        cause: "label".into(),
    }
}

#[test]
fn a_repositorys_jobs_sessions_sub_issues_and_closed_issues_are_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
    let config = SchedulerConfig::default();
    let (ours, theirs) = (repo("acme/widgets"), repo("acme/gadgets"));
    store.enqueue_job(&new_job(&ours, 1), 2, "alice", t(0)).unwrap();
    store.enqueue_job(&new_job(&ours, 2), 2, "alice", t(1)).unwrap();
    store.enqueue_job(&new_job(&theirs, 1), 2, "alice", t(2)).unwrap();

    // #1 runs and succeeds at a cost; then #2 is claimed and runs.
    let owner = ClaimOwner::new();
    let first = store.claim_next_admitting(&owner, &config, t(3), &|_| true).unwrap().expect("claimed");
    assert_eq!((first.job.repo.clone(), first.job.issue), (ours.clone(), IssueNumber(1)));
    assert!(store.record_session_cost(&first.claim.session, 0.4).unwrap());
    let outcome = Outcome::Succeeded { summary: "ok".into(), resolution: Resolution::PullRequest };
    store.finish_job(&first.claim, &outcome, &config, t(4), 0.5).unwrap();
    let second = store.claim_next_admitting(&owner, &config, t(5), &|_| true).unwrap().expect("claimed");
    assert_eq!(second.job.issue, IssueNumber(2));

    let jobs = store.repo_jobs(&repo("ACME/Widgets"), 10).unwrap();
    let shown: Vec<(u64, JobState)> = jobs.iter().map(|j| (j.issue.0, j.state)).collect();
    assert_eq!(shown, [(2, JobState::Running), (1, JobState::Succeeded)], "claims applied, newest change first");
    assert_eq!(store.repo_jobs(&ours, 1).unwrap().len(), 1, "cut at the limit");
    assert_eq!(store.repo_jobs(&repo("acme/nothing"), 10).unwrap(), vec![]);

    let sessions = store.repo_sessions(&repo("Acme/Widgets"), t(0)).unwrap();
    let costs: Vec<(u64, Option<f64>)> = sessions.iter().map(|s| (s.issue.0, s.cost_usd)).collect();
    assert_eq!(costs, [(1, Some(0.4)), (2, None)]);
    assert_eq!(store.repo_sessions(&ours, t(4)).unwrap().len(), 1, "only the sessions started since");
    assert_eq!(store.repo_sessions(&theirs, t(0)).unwrap(), vec![]);

    // #10 has #1 and #2 as sub-issues, and gadgets#1 is a sub-issue of gadgets#5; #1 is closed.
    let r = |repo: &RepoName, n: u64| IssueRef { repo: repo.clone(), issue: IssueNumber(n) };
    store.set_parent(&r(&ours, 1), Some(&r(&ours, 10))).unwrap();
    store.set_parent(&r(&ours, 2), Some(&r(&ours, 10))).unwrap();
    store.set_parent(&r(&theirs, 1), Some(&r(&theirs, 5))).unwrap();
    store.record_issue_state(&r(&ours, 1), false, t(6)).unwrap();
    let subs = store.sub_issues_in(&ours).unwrap();
    assert_eq!(subs, [(r(&ours, 10), r(&ours, 1)), (r(&ours, 10), r(&ours, 2))]);
    assert_eq!(store.issue_open(&r(&ours, 1)).unwrap(), Some(false));
    assert_eq!(store.issue_open(&r(&ours, 2)).unwrap(), None, "never heard of");
    store.record_issue_state(&r(&ours, 1), true, t(7)).unwrap();
    assert_eq!(store.issue_open(&r(&ours, 1)).unwrap(), Some(true), "reopened");
    // A sub-issue taken out of its parent is no longer listed.
    store.set_parent(&r(&ours, 2), None).unwrap();
    assert_eq!(store.sub_issues_in(&ours).unwrap(), [(r(&ours, 10), r(&ours, 1))]);
}
