//! `GET /api/status`, `GET /api/jobs/{owner}/{repo}/{issue}` and `foreman status`, over real HTTP on
//! loopback against a real store, and the real `foreman` binary.

use std::time::Duration;

use axum::extract::FromRef;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use foreman::ids::{InstallationId, IssueNumber};
use foreman::job::JobKind;
use foreman::job::{FailureClass, Outcome, Wait, WaitKind};
use foreman::job::{NewJob, Trigger};
use foreman::scheduler::{Hold, Scheduler, SchedulerConfig};
use foreman::store::{Store, StoreOptions};
use time::OffsetDateTime;

const TOKEN: &str = "test-admin-token";

/// Stands in for the server's admin-token check, so the test sees that `foreman status` sends the token.
async fn require_token(req: Request, next: Next) -> Response {
    let ok = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    if ok { next.run(req).await } else { StatusCode::UNAUTHORIZED.into_response() }
}

fn req(repo: &str, n: u64, title: &str) -> NewJob {
    NewJob {
        blocked_by: vec![],
        repo: repo.parse().unwrap(),
        issue: IssueNumber(n),
        installation: Some(InstallationId(7)),
        kind: JobKind::Code,
        title: title.into(),
        body: String::new(),
        labels: vec![],
        trigger: Some(Trigger::Label),
        requester: Some(foreman::ids::Login("octocat".into())),
        instructions: None,
        delivery: None,
        cause: "label 'foreman' added".into(),
    }
}

/// Starts the routes on 127.0.0.1 with three jobs: one running, one queued, one stuck.
/// What the job endpoints read: the store and the hold on sessions.
#[derive(Clone)]
struct ApiState {
    store: Store,
    hold: Hold,
}

impl FromRef<ApiState> for Store {
    fn from_ref(s: &ApiState) -> Store {
        s.store.clone()
    }
}

impl FromRef<ApiState> for Hold {
    fn from_ref(s: &ApiState) -> Hold {
        s.hold.clone()
    }
}

async fn serve() -> (String, tempfile::TempDir, Scheduler) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
    let config = SchedulerConfig { max_failures: 1, ..SchedulerConfig::default() };
    let hold = Hold::default();
    let s = Scheduler::new(store.clone(), config).with_hold(hold.clone());
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

    let state = ApiState { store, hold };
    let app = foreman::api::jobs::routes::<ApiState>().layer(middleware::from_fn(require_token)).with_state(state);
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
            assert!(body["message"].is_string(), "{path}: {body}");
        }
    })
    .await
    .expect("within 60 s");
}

#[tokio::test]
async fn foreman_status_prints_tables_using_the_admin_token() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (url, _dir, s) = serve().await;
        // The agent's usage limit reached with every credential holds every new session, and says so.
        let until = OffsetDateTime::now_utc() + time::Duration::hours(2);
        let reason = "the Claude usage limit of every configured credential";
        s.set_hold(Some(Wait { kind: WaitKind::UsageLimit, reason: reason.into(), until: Some(until) }));
        let status: serde_json::Value =
            client().get(format!("{url}/api/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["hold"]["kind"], "usage-limit", "{status}");
        let run = |token: Option<&str>| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
            cmd.args(["status", "--server", &url]).env_remove("FOREMAN_ADMIN_TOKEN").env_remove("FOREMAN_CONFIG");
            cmd.env_remove("FOREMAN_SERVER");
            if let Some(t) = token {
                cmd.env("FOREMAN_ADMIN_TOKEN", t);
            }
            cmd.kill_on_drop(true).output()
        };
        let out = run(Some(TOKEN)).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("running 1"), "{stdout}");
        let held = format!("New sessions are held until {}: {reason}", foreman::job::wait::when(until));
        assert!(stdout.contains(&held), "{stdout}");
        assert!(stdout.contains("octo/app#2") && stdout.contains("[WEB-1.2] Logout"), "{stdout}");
        assert!(stdout.contains("octo/app#1") && (stdout.contains("in 29m") || stdout.contains("in 30m")), "{stdout}");
        assert!(stdout.contains("octo/lib#3") && stdout.contains("1 agent or validation failures"), "{stdout}");

        // Without --server it asks the configured listen address.
        let listen = url.trim_start_matches("http://").to_owned();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
            .arg("status")
            .env_remove("FOREMAN_SERVER")
            .env_remove("FOREMAN_CONFIG")
            .env("FOREMAN_LISTEN", &listen)
            .env("FOREMAN_ADMIN_TOKEN", TOKEN)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("octo/app#2"));

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

/// A TLS terminator in front of `plain` (as Fly's proxy stands in front of Foreman): it serves a certificate
/// for `localhost` signed by a CA made for the test, and copies bytes to and from `plain`. Returns the
/// terminator's `https://localhost:PORT` URL and the CA certificate (PEM).
async fn tls_in_front_of(plain: &str) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}", listener.local_addr().unwrap().port());
    let upstream = plain.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut plain = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (url, ca.pem())
}

/// A deployed Foreman is reached over HTTPS (Fly terminates TLS in front of it): `foreman status` speaks
/// TLS, trusts the system's roots (here the test's CA, through `SSL_CERT_FILE`), and says why when a
/// certificate is not trusted.
#[tokio::test]
async fn foreman_status_reaches_a_server_over_https() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (plain, dir, _s) = serve().await;
        let (url, ca_pem) = tls_in_front_of(&plain).await;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let run = |trust: Option<&std::path::Path>| {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
            cmd.args(["status", "--server", &url]).env("FOREMAN_ADMIN_TOKEN", TOKEN).env_remove("FOREMAN_CONFIG");
            match trust {
                Some(f) => cmd.env("SSL_CERT_FILE", f),
                None => cmd.env("SSL_CERT_FILE", "/dev/null"),
            };
            cmd.kill_on_drop(true).output()
        };
        let out = run(Some(&ca_file)).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("running 1") && stdout.contains("octo/app#2"), "{stdout}");

        let untrusted = run(None).await.unwrap();
        assert_eq!(untrusted.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&untrusted.stderr);
        assert!(stderr.contains("could not reach Foreman") && stderr.contains("certificate"), "{stderr}");
    })
    .await
    .expect("within 60 s");
}
