//! What the console's pages cost the server: the time to render `/overview` with 10,000 jobs in the store
//! (median and p99 over 100 renders, signed in as an admin, who sees them all), the same for a
//! repository's page (`/repos/{owner}/{repo}`, 100 of the jobs), the running job's page, the deliveries list
//! with 10,000 stored deliveries, unfiltered and filtered by a state none has (a page that reads its
//! [`foreman::console::deliveries::FILTER_SCAN`] deliveries and finds none), and the memory each open
//! live tail (`/sessions/{id}/events`) adds. Prints the figures (the README quotes them); fails only past
//! bounds far above them, so a regression by an order of magnitude shows.
//!
//! Run: `cargo bench --bench console` (a benchmark in the release profile; the suite runs no timed test).
//!
//! The console runs in this process, against a real sled store and github-sim for signing in; the memory
//! figure is this process's resident set before and after opening the tails, so it holds the client's side
//! of each connection too: an upper bound.

use std::time::{Duration, Instant};

use foreman::console::{BackendSlot, Console, ConsoleConfig, ConsoleOptions};
use foreman::ids::{InstallationId, IssueNumber};
use foreman::job::{JobKind, NewJob};
use foreman::scheduler::{Scheduler, SchedulerConfig};
use foreman::store::inbox::compress_body;
use foreman::store::{DeliveryMeta, DeliveryState, NewDelivery, PutOutcome, Store, StoreOptions};
use github_sim::{GithubSim, SimConfig};
use time::OffsetDateTime;

const JOBS: u64 = 10_000;
const DELIVERIES: usize = 10_000;
const RENDERS: usize = 100;
const TAILS: usize = 200;

fn job(n: u64) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: format!("acme/repo{}", n % 100).parse().unwrap(),
        issue: IssueNumber(n),
        installation: Some(InstallationId(1)),
        kind: JobKind::Code,
        title: format!("Task number {n}"),
        body: String::new(),
        labels: vec![],
        trigger: None,
        requester: None,
        instructions: None,
        delivery: None,
        cause: "benchmark".into(),
    }
}

/// This process's resident set, in KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(overview_and_live_tails());
}

async fn overview_and_live_tails() {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.unwrap();
    sim.create_user("root", github_sim::Permission::None, "User");
    let (client_id, client_secret) = sim.oauth_client();

    let data = dir.path().join("data");
    let store = Store::open(&data.join("store"), &StoreOptions { cache_bytes: 16 << 20 }).unwrap();
    let scheduler = Scheduler::new(store.clone(), SchedulerConfig::default());
    let now = OffsetDateTime::now_utc();
    let filled = Instant::now();
    for n in 1..=JOBS {
        scheduler.enqueue(job(n), "benchmark", now).unwrap();
    }
    let running = scheduler.claim_next(now).unwrap().unwrap();
    eprintln!("queued {JOBS} jobs in {:?}", filled.elapsed());
    let sessions = data.join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let session = running.claim.session.0.clone();
    let log: String =
        (0..50).map(|i| format!("{{\"ts\":\"now\",\"kind\":\"agent\",\"line\":\"step {i}\"}}\n")).collect();
    std::fs::write(sessions.join(format!("acme-repo1-1-{session}.jsonl")), log).unwrap();

    // 10,000 processed deliveries, each a real `issues.labeled` payload (about 8 KiB), stored 100 at a time
    // (the inbox's writer flushes each batch once).
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/vendor/github/webhooks/examples/api.github.com/issues/labeled.payload.json"
    ))
    .unwrap();
    let filled = Instant::now();
    for batch in 0..DELIVERIES / 100 {
        let puts = (0..100).map(|i| {
            let store = store.clone();
            let delivery = NewDelivery {
                meta: DeliveryMeta {
                    id: foreman::ids::DeliveryId(format!("bench-{batch}-{i}")),
                    event: "issues".into(),
                    action: Some("labeled".into()),
                    installation: Some(InstallationId(1)),
                    repository: Some("acme/repo1".into()),
                    received_at: now,
                    body_len: body.len() as u32,
                },
                compressed_body: compress_body(&body),
            };
            tokio::spawn(async move { store.put_delivery(delivery).await.unwrap() })
        });
        for put in futures_util::future::join_all(puts).await {
            let PutOutcome::Stored(seq) = put.unwrap() else { panic!("a duplicate") };
            let done = DeliveryState::Processed { at: now, decisions: vec![], summary: "ok".into() };
            store.finish_delivery(seq, &done).unwrap();
        }
    }
    eprintln!("stored {DELIVERIES} deliveries in {:?}", filled.elapsed());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let console = Console::new(ConsoleOptions {
        config: ConsoleConfig {
            client_id: Some(client_id),
            client_secret: Some(client_secret.into()),
            admins: vec!["root".into()],
        },
        api_url: sim.url().to_owned(),
        public_url: Some(public.clone()),
        data_dir: data.clone(),
        store: store.clone(),
        triggers: Default::default(),
        backend: BackendSlot::default(),
    });
    let app: axum::Router = foreman::console::routes(console);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Sign in as root (an admin) through github-sim.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(format!("{public}/login")).send().await.unwrap();
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let bind = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let r = http.get(format!("{authorize}&login=root")).send().await.unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    let r = http.get(&back).header("cookie", &bind).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("foreman_session="))
        .unwrap();

    let mut times = Vec::with_capacity(RENDERS);
    for _ in 0..RENDERS {
        let started = Instant::now();
        let r = http.get(format!("{public}/overview")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        times.push(started.elapsed());
        assert!(page.contains("queued: 9999") && page.contains("running: 1"), "{}", &page[..page.len().min(2000)]);
        // The running session's figures, counted from its log: 50 lines, no error, no cost reported.
        assert!(page.contains("<td>50</td><td>0</td><td>—</td>"), "{}", &page[..page.len().min(4000)]);
    }
    times.sort();
    let (median, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    eprintln!("overview with {JOBS} jobs: median {median:?}, p99 {p99:?} over {RENDERS} renders");

    // A repository's page: its 100 jobs (of the 10,000), its sessions and plans, and the chart; no GitHub App
    // here, so the page says it cannot read the constitution (with one, the runner's cache keeps it a minute).
    let mut times = Vec::with_capacity(RENDERS);
    for _ in 0..RENDERS {
        let started = Instant::now();
        let r = http.get(format!("{public}/repos/acme/repo1")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        times.push(started.elapsed());
        assert!(
            page.contains("Task number 9901") && page.contains("id=\"cost-chart\""),
            "{}",
            &page[..page.len().min(2000)]
        );
    }
    times.sort();
    let (repo_median, repo_p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    eprintln!(
        "a repository's page (100 of {JOBS} jobs): median {repo_median:?}, p99 {repo_p99:?} over {RENDERS} renders"
    );

    // The running job's page (attempts, failure ledger, audit trail, the live session), and the deliveries.
    let timed = |path: String, expect: &'static str| {
        let (http, cookie) = (http.clone(), cookie.clone());
        async move {
            let mut times = Vec::with_capacity(RENDERS);
            for _ in 0..RENDERS {
                let started = Instant::now();
                let r = http.get(&path).header("cookie", &cookie).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                let page = r.text().await.unwrap();
                times.push(started.elapsed());
                assert!(page.contains(expect), "{path}: {}", &page[..page.len().min(2000)]);
            }
            times.sort();
            (percentile(&times, 0.5), percentile(&times, 0.99))
        }
    };
    let (job_median, job_p99) = timed(format!("{public}/jobs/acme/repo1/1"), "id=\"attempts\"").await;
    eprintln!("the running job's page: median {job_median:?}, p99 {job_p99:?} over {RENDERS} renders");
    let (list_median, list_p99) = timed(format!("{public}/deliveries"), "bench-99-").await;
    eprintln!("/deliveries ({DELIVERIES} stored): median {list_median:?}, p99 {list_p99:?} over {RENDERS} renders");
    let (dead_median, dead_p99) = timed(format!("{public}/deliveries?state=dead"), "No deliveries that match").await;
    eprintln!(
        "/deliveries?state=dead (none is: reads {} deliveries): median {dead_median:?}, p99 {dead_p99:?} over {RENDERS} renders",
        foreman::console::deliveries::FILTER_SCAN
    );

    // Open live tails of the running session, each read until its first line arrived.
    let before = rss_kib();
    let mut tails = Vec::with_capacity(TAILS);
    for _ in 0..TAILS {
        let mut r = http
            .get(format!("{public}/sessions/{session}/events?from=49"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
        assert!(String::from_utf8_lossy(&chunk).contains("step 49"));
        tails.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_tail = (rss_kib().saturating_sub(before)) as f64 / TAILS as f64;
    eprintln!("{TAILS} open live tails: {per_tail:.1} KiB each (server and client in one process)");
    drop(tails);

    assert!(p99 < Duration::from_secs(5), "p99 {p99:?}");
    assert!(repo_p99 < Duration::from_secs(5), "repository page p99 {repo_p99:?}");
    assert!(job_p99 < Duration::from_secs(5), "job page p99 {job_p99:?}");
    assert!(list_p99.max(dead_p99) < Duration::from_secs(5), "deliveries p99 {list_p99:?}, filtered {dead_p99:?}");
    assert!(per_tail < 1024.0, "{per_tail} KiB per tail");
}
