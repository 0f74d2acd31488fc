//! `GET /api/status`, `GET /api/jobs/{owner}/{repo}/{issue}` and `foreman status`, over real HTTP on
//! loopback against a real store, and the real `foreman` binary.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use foreman::ids::{InstallationId, IssueNumber};
use foreman::scheduler::{EnqueueRequest, Scheduler, SchedulerConfig};
use foreman::store::failures::{FailureClass, Outcome};
use foreman::store::jobs::JobKind;
use foreman::store::{Store, StoreOptions};
use time::OffsetDateTime;

const TOKEN: &str = "test-admin-token";

/// Stands in for the server's admin-token check, so the test sees that `foreman status` sends the token.
async fn require_token(req: Request, next: Next) -> Response {
    let ok = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    if ok { next.run(req).await } else { StatusCode::UNAUTHORIZED.into_response() }
}

fn req(repo: &str, n: u64, title: &str) -> EnqueueRequest {
    EnqueueRequest {
        repo: repo.parse().unwrap(),
        issue: IssueNumber(n),
        installation: Some(InstallationId(7)),
        kind: JobKind::Code,
        title: title.into(),
        body: String::new(),
        labels: vec![],
        blocked_by: vec![],
        trigger: Some("label".into()),
        requester: Some("octocat".into()),
        instructions: None,
        delivery: None,
        cause: "label 'foreman' added".into(),
    }
}

/// Starts the routes on 127.0.0.1 with three jobs: one running, one queued, one stuck.
async fn serve() -> (String, tempfile::TempDir, Scheduler) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
    let config = SchedulerConfig { max_failures: 1, ..SchedulerConfig::default() };
    let s = Scheduler::new(store.clone(), config);
    let now = OffsetDateTime::now_utc();
    s.enqueue(req("octo/app", 1, "[WEB-1.1] Login page"), "octocat", now).unwrap();
    s.enqueue(req("octo/app", 2, "[WEB-1.2] Logout"), "octocat", now).unwrap();
    s.enqueue(req("octo/lib", 3, "Broken thing"), "octocat", now).unwrap();
    let running = s.claim_next(now).unwrap().unwrap();
    assert_eq!(running.job.issue.0, 1);
    let doomed = s.claim_next(now).unwrap().unwrap();
    assert_eq!(doomed.job.issue.0, 3);
    let fail = Outcome::Failed { class: FailureClass::Agent, reason: "no changes".into(), retry_at: None };
    s.finish(&doomed.claim, &fail, now).await.unwrap();

    let app = foreman::api::jobs::routes::<Store>().layer(middleware::from_fn(require_token)).with_state(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, dir, s)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[tokio::test]
async fn status_and_job_endpoints_answer_json() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (url, _dir, _s) = serve().await;
        let c = client();
        let status: serde_json::Value =
            c.get(format!("{url}/api/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["counts"]["running"], 1);
        assert_eq!(status["counts"]["queued"], 1);
        assert_eq!(status["counts"]["stuck"], 1);
        assert_eq!(status["queued"][0]["position"], 1);
        assert_eq!(status["queued"][0]["issue"], 2);
        assert_eq!(status["running"][0]["repo"], "octo/app");
        assert!(status["running"][0]["claim"]["expires_at"].is_string());
        assert_eq!(status["stuck"][0]["issue"], 3);
        assert_eq!(status["recent_failures"][0]["class"], "agent");

        let job = c.get(format!("{url}/api/jobs/octo/app/1")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(job.status(), 200);
        let job: serde_json::Value = job.json().await.unwrap();
        assert_eq!(job["state"], "running");
        assert_eq!(job["audit"][0]["action"], "enqueued");
        assert_eq!(job["audit"][0]["actor"], "octocat");
        assert_eq!(job["audit"][1]["action"], "claimed");
        assert!(job["claim"]["owner"]["instance"].is_string());

        // Case-insensitive repository names, as on GitHub.
        let same = c.get(format!("{url}/api/jobs/Octo/App/2")).bearer_auth(TOKEN).send().await.unwrap();
        let same: serde_json::Value = same.json().await.unwrap();
        assert_eq!(same["position"], 1);

        for (path, code) in [
            ("/api/jobs/octo/app/99", 404),
            ("/api/jobs/octo/app/abc", 400),
            ("/api/jobs/octo/app/0", 400),
            ("/api/status?limit=0", 400),
            ("/api/status?limit=x", 400),
            ("/api/status?bogus=1", 400),
        ] {
            let r = c.get(format!("{url}{path}")).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(r.status().as_u16(), code, "{path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(body["error"].is_string(), "{path}: {body}");
        }
    })
    .await
    .expect("within 60 s");
}

#[tokio::test]
async fn foreman_status_prints_tables_using_the_admin_token() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (url, _dir, _s) = serve().await;
        let run = |token: Option<&str>| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
            cmd.args(["status", "--server", &url]).env_remove("FOREMAN_ADMIN_TOKEN").env_remove("FOREMAN_CONFIG");
            if let Some(t) = token {
                cmd.env("FOREMAN_ADMIN_TOKEN", t);
            }
            cmd.kill_on_drop(true).output()
        };
        let out = run(Some(TOKEN)).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("running 1"), "{stdout}");
        assert!(stdout.contains("octo/app#2") && stdout.contains("[WEB-1.2] Logout"), "{stdout}");
        assert!(stdout.contains("octo/app#1") && (stdout.contains("in 29m") || stdout.contains("in 30m")), "{stdout}");
        assert!(stdout.contains("octo/lib#3") && stdout.contains("1 agent or validation failures"), "{stdout}");

        let refused = run(None).await.unwrap();
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("FOREMAN_ADMIN_TOKEN"));

        // Nothing listening: a clear sentence, exit 1.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
            .args(["status", "--server", &dead])
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("could not reach Foreman"));
    })
    .await
    .expect("within 60 s");
}
