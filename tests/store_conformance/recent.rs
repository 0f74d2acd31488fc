//! What the console's lists read: the deliveries newest first, a page at a time, and the sessions that
//! ended most recently.

use foreman::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use foreman::job::{JobKind, NewJob, Outcome, Resolution, SessionState, Trigger};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::inbox::compress_body;
use foreman::store::{DeliveryMeta, DeliveryState, Inbox, JobStore, NewDelivery};
use time::OffsetDateTime;

use super::Open;

fn delivery(id: &str, received_at: OffsetDateTime) -> NewDelivery {
    let body = format!(r#"{{"action":"opened","id":"{id}"}}"#);
    NewDelivery {
        meta: DeliveryMeta {
            id: DeliveryId(id.into()),
            event: "issues".into(),
            action: Some("opened".into()),
            installation: Some(InstallationId(1)),
            repository: Some("o/r".into()),
            received_at,
            body_len: body.len() as u32,
        },
        compressed_body: compress_body(body.as_bytes()),
    }
}

pub async fn recent_deliveries_come_newest_first_a_page_at_a_time_whatever_their_state<S: Inbox>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.recent_deliveries(None, 10).unwrap().is_empty());
    let now = OffsetDateTime::now_utc();
    for i in 1..=5 {
        store.put_delivery(delivery(&format!("d-{i}"), now)).await.unwrap();
    }
    let dead = DeliveryState::Dead { at: now, error: "does not decode".into() };
    store.finish_delivery(2, &dead).unwrap();
    let ids = |page: &[foreman::store::DeliveryRecord]| page.iter().map(|r| r.meta.id.0.clone()).collect::<Vec<_>>();
    let first = store.recent_deliveries(None, 3).unwrap();
    assert_eq!(ids(&first), ["d-5", "d-4", "d-3"]);
    assert!(first.iter().all(|r| r.processing == DeliveryState::Pending));
    let next = store.recent_deliveries(Some(first[2].seq), 3).unwrap();
    assert_eq!(ids(&next), ["d-2", "d-1"]);
    assert_eq!(next[0].processing, dead);
    assert!(store.recent_deliveries(Some(next[1].seq), 3).unwrap().is_empty());
}

pub fn recent_sessions_are_the_ended_ones_newest_first<S: JobStore>(open: Open<S>) {
    let dir = tempfile::tempdir().unwrap();
    let config = SchedulerConfig { max_sessions: 100, max_sessions_per_repo: 100, ..SchedulerConfig::default() };
    let s = Scheduler::new(open(dir.path()), config.clone());
    let store = s.store().clone();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    for n in 1..=4 {
        let new = NewJob {
            blocked_by: vec![],
            repo: "o/r".parse::<RepoName>().unwrap(),
            issue: IssueNumber(n),
            installation: Some(InstallationId(1)),
            kind: JobKind::Code,
            title: format!("Job {n}"),
            body: String::new(),
            labels: vec!["foreman".into()],
            trigger: Some(Trigger::Label),
            requester: None,
            instructions: None,
            delivery: None,
            cause: "label 'foreman' added".into(),
        };
        s.enqueue(new, "octocat", t0).unwrap();
    }
    let claims: Vec<_> = (0..4).map(|_| s.claim_next(t0).unwrap().expect("a job to claim")).collect();
    assert!(store.recent_sessions(10).unwrap().is_empty(), "every session still runs");
    let succeeded = Outcome::Succeeded { summary: "done".into(), resolution: Resolution::PullRequest };
    let failed =
        Outcome::Failed { class: foreman::job::FailureClass::Agent, reason: "tests fail".into(), retry_at: None };
    store.finish_job(&claims[0].claim, &succeeded, &config, t0, 0.0).unwrap();
    store.finish_job(&claims[1].claim, &failed, &config, t0, 0.0).unwrap();
    store.cancel_job(&claims[3].job.repo, claims[3].job.issue, "octocat", "stop", t0).unwrap();
    let recent = store.recent_sessions(10).unwrap();
    let mut ended: Vec<_> = [0, 1, 3].iter().map(|i| claims[*i].claim.session.clone()).collect();
    ended.sort();
    ended.reverse();
    assert_eq!(recent.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ended, "newest (by id, UUID v7) first");
    let state = |id: &foreman::job::SessionId| recent.iter().find(|r| r.id == *id).unwrap().state;
    assert_eq!(state(&claims[0].claim.session), SessionState::Succeeded);
    assert_eq!(state(&claims[1].claim.session), SessionState::Failed);
    assert_eq!(state(&claims[3].claim.session), SessionState::Cancelled);
    assert_eq!(store.recent_sessions(2).unwrap().iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ended[..2]);
}
