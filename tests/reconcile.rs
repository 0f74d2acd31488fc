//! Reconciliation against github-sim over real HTTP on loopback, with a real sled store in a temp dir: drift
//! that happened while Foreman was "down" (its webhook URL a closed port, so every delivery fails) is found
//! and fixed, and lost deliveries are redelivered exactly once.

use std::time::Duration;

use foreman::decide::DecideConfig;
use foreman::github::Client;
use foreman::ids::{DeliveryId, InstallationId, IssueNumber, RepoName};
use foreman::job::IssueRef;
use foreman::job::{JobKind, JobState, Placement};
use foreman::job::{NewJob, Trigger};
use foreman::reconcile::{CancelReason, ReconcileConfig, Reconciler, Report};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::{DeliveryMeta, NewDelivery, PutOutcome, Store, StoreOptions};
use github_sim::{GithubSim, Permission, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::Value;
use time::OffsetDateTime;

const LIMIT: Duration = Duration::from_secs(120);
const REPO: &str = "acme/widgets";

struct World {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    client: Client,
    scheduler: Scheduler,
    inst: InstallationId,
}

mod client_support;
use client_support::fast;

/// A port nothing listens on: bound, then released.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/webhook")
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("sim"));
    // Foreman is down: every delivery fails, as it would while the process is stopped.
    cfg.webhook_url = Some(closed_port_url());
    let sim = GithubSim::start(cfg).await.unwrap();
    sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
    sim.create_user("alice", Permission::Write, "User");
    let inst = InstallationId(sim.installation_id("acme"));
    let key = SecretString::from(sim.private_key_pem().to_owned());
    let client = Client::new(sim.app_id(), &key, sim.url(), fast()).unwrap();
    let store = Store::open(&dir.path().join("store"), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
    let scheduler = Scheduler::new(store, SchedulerConfig::default());
    World { _dir: dir, sim, client, scheduler, inst }
}

fn repo() -> RepoName {
    REPO.parse().unwrap()
}

fn reconciler(w: &World, triggers: DecideConfig, config: ReconcileConfig) -> Reconciler {
    Reconciler::new(w.client.clone(), w.scheduler.clone(), triggers, config)
}

fn jobs_only() -> ReconcileConfig {
    ReconcileConfig { redeliver: false, ..ReconcileConfig::default() }
}

/// An issue on the sim, labelled `foreman` by alice, and its job as the label would have queued it.
fn labelled_job(w: &World, title: &str, body: &str) -> IssueNumber {
    let (n, _) = w.sim.create_issue(REPO, title, body, "alice").unwrap();
    w.sim.add_label(REPO, n, "foreman", "alice").unwrap();
    enqueue(w, n, title, body, "label");
    IssueNumber(n)
}

fn enqueue(w: &World, n: u64, title: &str, body: &str, trigger: &str) {
    let req = NewJob {
        blocked_by: vec![],
        repo: repo(),
        issue: IssueNumber(n),
        installation: Some(w.inst),
        kind: JobKind::Code,
        title: title.into(),
        body: body.into(),
        labels: vec!["foreman".into()],
        trigger: Some(serde_json::from_value(serde_json::Value::String(trigger.into())).unwrap()),
        requester: Some(foreman::ids::Login("alice".into())),
        instructions: None,
        delivery: None,
        cause: format!("{trigger} by alice"),
    };
    w.scheduler.enqueue(req, "alice", OffsetDateTime::now_utc()).unwrap();
}

fn state(w: &World, n: IssueNumber) -> JobState {
    w.scheduler.store().job(&repo(), n).unwrap().unwrap().state
}

fn last_cause(w: &World, n: IssueNumber) -> String {
    w.scheduler.store().job_detail(&repo(), n).unwrap().unwrap().audit.last().unwrap().cause.clone()
}

fn cancelled(report: &Report) -> Vec<(u64, CancelReason)> {
    let mut v: Vec<_> = report.cancelled.iter().map(|c| (c.issue.issue.0, c.reason)).collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_while_down_is_fixed_and_a_second_pass_changes_nothing() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        // Running: claimed before the others exist, so it is the one claimed.
        let running = labelled_job(&w, "Running, label removed", "");
        let claimed = w.scheduler.claim_next(OffsetDateTime::now_utc()).unwrap().unwrap();
        assert_eq!(claimed.job.issue, running);
        let closed = labelled_job(&w, "Closed while down", "");
        let unlabelled = labelled_job(&w, "Label removed while down", "");
        let untouched = labelled_job(&w, "Still wanted", "");
        // Queued by `/foreman run`: carries no label, and none is needed.
        let (by_command, _) = w.sim.create_issue(REPO, "Asked for by command", "", "alice").unwrap();
        enqueue(&w, by_command, "Asked for by command", "", "command");
        // Never existed on GitHub (or was deleted or transferred away): the sim answers 404.
        enqueue(&w, 999, "Gone", "", "label");

        // While Foreman is down.
        w.sim.set_issue_state(REPO, closed.0, "closed", "alice").unwrap();
        w.sim.remove_label(REPO, unlabelled.0, "foreman", "alice").unwrap();
        w.sim.remove_label(REPO, running.0, "foreman", "alice").unwrap();

        let r = reconciler(&w, DecideConfig::default(), jobs_only());
        let report = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(
            cancelled(&report),
            [(closed.0, CancelReason::Closed), (unlabelled.0, CancelReason::Unlabeled), (999, CancelReason::Gone)]
        );
        assert_eq!(report.jobs_checked, 6);
        assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
        assert_eq!(report.left_running, [IssueRef { repo: repo(), issue: running }]);
        assert_eq!(state(&w, closed), JobState::Cancelled);
        assert_eq!(last_cause(&w, closed), "issue closed (reconciliation)");
        assert_eq!(state(&w, unlabelled), JobState::Cancelled);
        assert_eq!(last_cause(&w, unlabelled), "label 'foreman' removed (reconciliation)");
        assert_eq!(state(&w, IssueNumber(999)), JobState::Cancelled);
        assert_eq!(last_cause(&w, IssueNumber(999)), "issue deleted or transferred (reconciliation)");
        assert_eq!(state(&w, running), JobState::Running, "left to finish: triggers.cancel_on_unlabel is off");
        assert_eq!(state(&w, untouched), JobState::Queued);
        assert_eq!(state(&w, IssueNumber(by_command)), JobState::Queued);

        let again = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert!(again.cancelled.is_empty(), "{:?}", again.cancelled);
        assert_eq!(again.jobs_checked, 3, "only the live jobs are read");

        // With cancel_on_unlabel the running job is cancelled too, and its session named for stopping.
        let strict = DecideConfig { cancel_on_unlabel: true, ..DecideConfig::default() };
        let report = reconciler(&w, strict, jobs_only()).run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(cancelled(&report), [(running.0, CancelReason::Unlabeled)]);
        assert_eq!(report.cancelled[0].from, JobState::Running);
        assert_eq!(report.cancelled[0].session.as_ref(), Some(&claimed.claim.session));
        assert_eq!(state(&w, running), JobState::Cancelled);
        assert!(w.scheduler.store().claims().unwrap().is_empty(), "its claim is released");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_closed_while_down_unblocks_its_dependent() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let (dep, _) = w.sim.create_issue(REPO, "Groundwork", "", "alice").unwrap();
        let body = format!("Depends on #{dep}");
        let blocked = labelled_job(&w, "Build on it", &body);
        let job = w.scheduler.store().job(&repo(), blocked).unwrap().unwrap();
        assert_eq!(job.placement, Placement::Waiting);
        let r = reconciler(&w, DecideConfig::default(), jobs_only());

        // Open: recorded as open, the job keeps waiting.
        let report = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(report.dependencies.len(), 1);
        assert!(report.dependencies[0].open);
        assert!(w.scheduler.claim_next(OffsetDateTime::now_utc()).unwrap().is_none(), "still waiting");

        w.sim.set_issue_state(REPO, dep, "closed", "alice").unwrap();
        let report = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(report.dependencies.len(), 1);
        assert!(!report.dependencies[0].open);
        assert_eq!(report.dependencies[0].jobs_changed, 1);
        let job = w.scheduler.store().job(&repo(), blocked).unwrap().unwrap();
        assert!(job.waiting_on.is_empty());
        assert_eq!(job.placement, Placement::Ready);
        let claimed = w.scheduler.claim_next(OffsetDateTime::now_utc()).unwrap().unwrap();
        assert_eq!(claimed.job.issue, blocked, "runnable now");
    })
    .await
    .unwrap();
}

/// The sim's record of every attempt of `guid`.
fn attempts(w: &World, guid: &str) -> Vec<Value> {
    w.sim.deliveries().into_iter().filter(|d| d["guid"] == guid).collect()
}

async fn store_delivery(w: &World, guid: &str) {
    let meta = DeliveryMeta {
        id: DeliveryId(guid.into()),
        event: "issues".into(),
        action: Some("opened".into()),
        installation: Some(w.inst),
        repository: Some(REPO.into()),
        received_at: OffsetDateTime::now_utc(),
        body_len: 2,
    };
    let stored = w
        .scheduler
        .store()
        .put_delivery(NewDelivery { meta, compressed_body: foreman::store::inbox::compress_body(b"{}") })
        .await
        .unwrap();
    assert!(matches!(stored, PutOutcome::Stored(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delivery_is_redelivered_once_a_stored_one_never() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let (n, _) = w.sim.create_issue(REPO, "Lost", "", "alice").unwrap(); // issues.opened
        w.sim.add_label(REPO, n, "foreman", "alice").unwrap(); // issues.labeled
        assert!(w.sim.wait_deliveries(2, LIMIT).await, "both attempts fail against the closed port");
        let all = w.sim.deliveries();
        assert!(all.iter().all(|d| d["status_code"] == 0), "{all:?}");
        let opened = all.iter().find(|d| d["action"] == "opened").unwrap();
        let labeled = all.iter().find(|d| d["action"] == "labeled").unwrap();
        let (opened_guid, labeled_guid) = (opened["guid"].as_str().unwrap(), labeled["guid"].as_str().unwrap());
        // Foreman stored `opened` but GitHub saw a failure (say the answer came too late).
        store_delivery(&w, opened_guid).await;
        // `labeled` failed twice: both attempts share its GUID.
        w.sim.redeliver(labeled["id"].as_u64().unwrap()).unwrap();
        assert!(w.sim.wait_deliveries(3, LIMIT).await);
        assert_eq!(attempts(&w, labeled_guid).len(), 2);

        let r = reconciler(&w, DecideConfig::default(), ReconcileConfig::default());
        // Past the in-flight grace of the newest attempt.
        let t0 = OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let report = r.run_once(t0).await.unwrap();
        assert_eq!(report.deliveries_listed, 3);
        let asked: Vec<_> = report.redeliveries.iter().map(|d| d.guid.as_str()).collect();
        assert_eq!(asked, [labeled_guid], "one request for the lost GUID, none for the stored one");
        assert_eq!(report.redeliveries[0].event, "issues.labeled");
        assert_eq!(attempts(&w, labeled_guid).len(), 3, "GitHub made one new attempt");
        assert_eq!(attempts(&w, opened_guid).len(), 1, "the stored delivery was not asked for");
        assert!(w.sim.wait_deliveries(4, LIMIT).await, "the redelivery fails too: Foreman is still down");

        // A second pass within the hour asks for nothing, though the GUID still has no success.
        let report = r.run_once(t0 + time::Duration::minutes(10)).await.unwrap();
        assert!(report.redeliveries.is_empty(), "{:?}", report.redeliveries);
        assert_eq!(report.redeliveries_pending, 1);
        assert_eq!(attempts(&w, labeled_guid).len(), 3);

        // After the hour it is asked for again; past GitHub's 3 days, never.
        let report = r.run_once(t0 + time::Duration::minutes(61)).await.unwrap();
        assert_eq!(report.redeliveries.len(), 1);
        assert_eq!(attempts(&w, labeled_guid).len(), 4);
        let fresh = reconciler(&w, DecideConfig::default(), ReconcileConfig::default());
        let report = fresh.run_once(t0 + time::Duration::days(3)).await.unwrap();
        assert!(report.redeliveries.is_empty(), "{:?}", report.redeliveries);

        // Once Foreman has stored it, it is never asked for again.
        store_delivery(&w, labeled_guid).await;
        let report = fresh.run_once(t0 + time::Duration::minutes(200)).await.unwrap();
        assert!(report.redeliveries.is_empty(), "{:?}", report.redeliveries);
        assert_eq!(report.redeliveries_pending, 0);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_per_pass_are_bounded_and_redelivery_can_be_turned_off() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        for title in ["one", "two", "three"] {
            w.sim.create_issue(REPO, title, "", "alice").unwrap();
        }
        assert!(w.sim.wait_deliveries(3, LIMIT).await);
        let t0 = OffsetDateTime::now_utc() + time::Duration::minutes(2);

        let off = ReconcileConfig { redeliver: false, ..ReconcileConfig::default() };
        let report = reconciler(&w, DecideConfig::default(), off).run_once(t0).await.unwrap();
        assert_eq!(report.deliveries_listed, 0);
        assert!(report.redeliveries.is_empty());

        let two = ReconcileConfig { max_redeliveries_per_pass: 2, ..ReconcileConfig::default() };
        let r = reconciler(&w, DecideConfig::default(), two);
        let first = r.run_once(t0).await.unwrap();
        assert_eq!(first.redeliveries.len(), 2);
        assert_eq!(first.redeliveries_deferred, 1);
        let second = r.run_once(t0 + time::Duration::minutes(1)).await.unwrap();
        assert_eq!(second.redeliveries.len(), 1, "the deferred one comes next pass");
        let mut asked: Vec<_> =
            first.redeliveries.iter().chain(&second.redeliveries).map(|d| d.guid.to_string()).collect();
        asked.sort();
        asked.dedup();
        assert_eq!(asked.len(), 3, "each lost GUID once");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_issue_is_skipped_and_the_pass_goes_on() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let closed = labelled_job(&w, "Closed while down", "");
        let (n, _) = w.sim.create_issue(REPO, "Its installation was removed", "", "alice").unwrap();
        // An installation GitHub no longer knows: minting its token answers 404, which says nothing about
        // the issue, so the job must not be taken for deleted.
        let mut req = NewJob {
            blocked_by: vec![],
            repo: repo(),
            issue: IssueNumber(n),
            installation: Some(InstallationId(424_242)),
            kind: JobKind::Code,
            title: "t".into(),
            body: String::new(),
            labels: Vec::new(),
            trigger: Some(Trigger::Label),
            requester: None,
            instructions: None,
            delivery: None,
            cause: "test".into(),
        };
        w.scheduler.enqueue(req.clone(), "alice", OffsetDateTime::now_utc()).unwrap();
        req.issue = IssueNumber(n + 1);
        req.installation = None;
        w.scheduler.enqueue(req, "alice", OffsetDateTime::now_utc()).unwrap();
        w.sim.set_issue_state(REPO, closed.0, "closed", "alice").unwrap();

        let report = reconciler(&w, DecideConfig::default(), jobs_only()).run_once(OffsetDateTime::now_utc()).await;
        let report = report.unwrap();
        assert_eq!(cancelled(&report), [(closed.0, CancelReason::Closed)]);
        let mut unreadable: Vec<_> = report.unreadable.iter().map(|u| (u.issue.issue.0, u.error.clone())).collect();
        unreadable.sort();
        assert_eq!(unreadable.len(), 2, "{unreadable:?}");
        assert_eq!(unreadable[0].0, n);
        assert!(unreadable[0].1.contains("access_tokens"), "{}", unreadable[0].1);
        assert_eq!(unreadable[1], (n + 1, "no installation recorded".to_owned()));
        assert_eq!(state(&w, IssueNumber(n)), JobState::Queued);
        assert_eq!(state(&w, IssueNumber(n + 1)), JobState::Queued);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_makes_a_pass_at_start_and_stops_on_shutdown() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let closed = labelled_job(&w, "Closed while down", "");
        w.sim.set_issue_state(REPO, closed.0, "closed", "alice").unwrap();
        let hourly = ReconcileConfig { interval_secs: 3600, ..jobs_only() };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(reconciler(&w, DecideConfig::default(), hourly).run(shutdown.clone()));
        // The scheduler is notified by every change to the jobs; the enqueue above left one notification.
        while state(&w, closed) != JobState::Cancelled {
            w.scheduler.changed().await;
        }
        shutdown.cancel();
        task.await.unwrap();
    })
    .await
    .unwrap();
}

/// A webhook receiver on loopback that answers 500 until `healthy` is set, then 200. It stores nothing, so
/// only GitHub's record of its answers tells a delivered GUID from a lost one.
async fn receiver(healthy: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use std::sync::atomic::Ordering;
    let app = axum::Router::new().fallback(move || {
        let healthy = healthy.clone();
        async move {
            if healthy.load(Ordering::SeqCst) {
                axum::http::StatusCode::OK
            } else {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guid_with_one_successful_attempt_is_not_redelivered() {
    tokio::time::timeout(LIMIT, async {
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SimConfig::new(dir.path().join("sim"));
        cfg.webhook_url = Some(receiver(healthy.clone()).await);
        let sim = GithubSim::start(cfg).await.unwrap();
        sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
        let key = SecretString::from(sim.private_key_pem().to_owned());
        let client = Client::new(sim.app_id(), &key, sim.url(), fast()).unwrap();
        let store = Store::open(&dir.path().join("store"), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
        let scheduler = Scheduler::new(store, SchedulerConfig::default());

        sim.create_issue(REPO, "recovered", "", "alice").unwrap();
        sim.create_issue(REPO, "lost", "", "alice").unwrap();
        assert!(sim.wait_deliveries(2, LIMIT).await);
        let all = sim.deliveries();
        assert!(all.iter().all(|d| d["status_code"] == 500), "{all:?}");
        let recovered = all.iter().find(|d| d["payload"]["issue"]["title"] == "recovered").unwrap();
        let lost = all.iter().find(|d| d["payload"]["issue"]["title"] == "lost").unwrap();
        // Someone redelivered one by hand once the receiver was well again.
        healthy.store(true, std::sync::atomic::Ordering::SeqCst);
        sim.redeliver(recovered["id"].as_u64().unwrap()).unwrap();
        assert!(sim.wait_deliveries(3, LIMIT).await);

        let r = Reconciler::new(client, scheduler, DecideConfig::default(), ReconcileConfig::default());
        let report = r.run_once(OffsetDateTime::now_utc() + time::Duration::minutes(2)).await.unwrap();
        let asked: Vec<_> = report.redeliveries.iter().map(|d| d.guid.as_str()).collect();
        assert_eq!(asked, [lost["guid"].as_str().unwrap()]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_in_backoff_is_live_and_a_finished_one_is_not_read() {
    use foreman::job::{FailureClass, Outcome};
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let failing = labelled_job(&w, "Fails once", "");
        let now = OffsetDateTime::now_utc();
        let c = w.scheduler.claim_next(now).unwrap().unwrap();
        let fail = Outcome::Failed { class: FailureClass::Agent, reason: "no changes".into(), retry_at: None };
        w.scheduler.finish(&c.claim, &fail, now).await.unwrap();
        assert_eq!(state(&w, failing), JobState::Failed);
        let done = labelled_job(&w, "Done already", "");
        let c = w.scheduler.claim_next(now).unwrap().unwrap();
        assert_eq!(c.job.issue, done);
        w.scheduler
            .finish(
                &c.claim,
                &Outcome::Succeeded { summary: "ok".into(), resolution: foreman::job::Resolution::PullRequest },
                now,
            )
            .await
            .unwrap();
        w.sim.set_issue_state(REPO, failing.0, "closed", "alice").unwrap();
        w.sim.set_issue_state(REPO, done.0, "closed", "alice").unwrap();

        let report = reconciler(&w, DecideConfig::default(), jobs_only()).run_once(now).await.unwrap();
        assert_eq!(report.jobs_checked, 1, "the succeeded job is not live");
        assert_eq!(cancelled(&report), [(failing.0, CancelReason::Closed)]);
        assert_eq!(report.cancelled[0].from, JobState::Failed);
        assert_eq!(state(&w, failing), JobState::Cancelled);
        assert_eq!(state(&w, done), JobState::Succeeded);
    })
    .await
    .unwrap();
}

/// A card moved to a stop column while Foreman was down cancels the job its move to Ready queued; a card
/// still in Ready, or one queued by the label, is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_moved_to_a_stop_column_while_down_cancels_its_board_job() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let (board, _) = w.sim.create_project("acme", "Roadmap", &["Backlog", "Ready", "In progress", "Done"]);
        let mut jobs = Vec::new();
        for title in ["Moved back", "Still ready"] {
            let (n, _) = w.sim.create_issue(REPO, title, "", "alice").unwrap();
            w.sim.add_label(REPO, n, "foreman", "alice").unwrap();
            let item = w.sim.add_project_item("acme", board, REPO, n, "alice").unwrap();
            w.sim.move_card("acme", board, &item, "Ready", "alice").unwrap();
            enqueue(&w, n, title, "", "board");
            jobs.push((IssueNumber(n), item));
        }
        let (moved, item) = &jobs[0];
        w.sim.move_card("acme", board, item, "Backlog", "alice").unwrap();

        let r = reconciler(&w, DecideConfig::default(), jobs_only());
        let report = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert_eq!(cancelled(&report), vec![(moved.0, CancelReason::MovedOff)]);
        assert_eq!(state(&w, *moved), JobState::Cancelled);
        assert_eq!(last_cause(&w, *moved), "card moved to a stop column (reconciliation)");
        assert_eq!(state(&w, jobs[1].0), JobState::Queued);
        let again = r.run_once(OffsetDateTime::now_utc()).await.unwrap();
        assert!(again.cancelled.is_empty(), "{again:?}");
    })
    .await
    .expect("in time");
}
