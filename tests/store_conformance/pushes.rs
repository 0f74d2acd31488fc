//! Push records ([`foreman::job::PushRecord`]) through the [`JobStore`] port: an intent recorded and made
//! durable before a push is there after the store is reopened, for its run only, until settled; a head
//! Foreman pushed over only its own commits stays its own.

use foreman::ids::{IssueNumber, RepoName};
use foreman::job::{PullRequestDraft, PushIntent};
use foreman::store::JobStore;
use time::OffsetDateTime;

use super::Open;

fn intent(seq: u64, sha: &str) -> PushIntent {
    PushIntent {
        seq,
        sha: sha.into(),
        session: "0190d7a0-0000-7000-8000-000000000001".into(),
        agent_session: Some("agent-1".into()),
        summary: Some("Added a flag.".into()),
        check_summary: "No constitution rules applied.".into(),
        allowed: "no constitution check".into(),
        pull_request: PullRequestDraft {
            title: "Add a flag (#7)".into(),
            body: "Closes #7".into(),
            base: "main".into(),
            existing: None,
        },
        at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

pub async fn a_push_intent_survives_a_reopen_for_its_run_until_settled<S: JobStore>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let repo: RepoName = "o/r".parse().unwrap();
    let (issue, branch) = (IssueNumber(7), "foreman/7-add-a-flag");
    {
        let store = open(dir.path());
        assert_eq!(store.push_record(&repo, issue).unwrap(), None, "nothing recorded reads as nothing");
        store.record_push_intent(&repo, issue, branch, &intent(3, "aaa"), true).unwrap();
        store.sync().await.unwrap();
    }
    let store = open(dir.path());
    let record = store.push_record(&repo, issue).unwrap().expect("the record survived the reopen");
    assert_eq!(record.branch, branch);
    assert_eq!(record.pending_for(3), Some(&intent(3, "aaa")));
    assert_eq!(record.pending_for(4), None, "another run of the issue has no pending push");
    assert!(record.is_ours(branch, "aaa"));
    assert_eq!(store.push_record(&repo, IssueNumber(8)).unwrap(), None, "records are per issue");
    let other: RepoName = "o/r2".parse().unwrap();
    store.record_push_intent(&other, issue, branch, &intent(4, "ddd"), true).unwrap();

    // A follow-up over someone else's commit: pending, but the branch is no longer Foreman's own at it.
    store.record_push_intent(&repo, issue, branch, &intent(4, "ccc"), false).unwrap();
    store.settle_push(&repo, 3).unwrap();
    let record = store.push_record(&repo, issue).unwrap().unwrap();
    assert!(record.pending_for(4).is_some(), "settling another run leaves this one's intent");
    store.settle_push(&repo, 4).unwrap();
    let record = store.push_record(&repo, issue).unwrap().unwrap();
    assert_eq!(record.pending, None);
    assert!(record.is_ours(branch, "aaa") && !record.is_ours(branch, "ccc"), "{record:?}");
    let elsewhere = store.push_record(&other, issue).unwrap().unwrap();
    assert!(elsewhere.pending_for(4).is_some(), "settling is per repository");
}
