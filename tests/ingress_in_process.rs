//! Ingress answers that need control over the server's state: the router served in-process on a real
//! loopback socket, with a real sled store in a temp dir.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use foreman::api::AppState;
use foreman::ingress::{Ingress, Verifier};
use foreman::store::{Store, StoreOptions};
use secrecy::SecretString;

const SECRET: &str = "in-process-secret";

async fn serve(store: Store) -> (SocketAddr, Ingress) {
    let ingress = Ingress::new(store.clone(), Verifier::new(&[SecretString::from(SECRET)]));
    let state = AppState {
        checks: Default::default(),
        hold: Default::default(),
        store,
        ingress: ingress.clone(),
        metrics: foreman::telemetry::metrics_handle(),
        admin_token: None,
        sessions_dir: std::sync::Arc::new(std::env::temp_dir().join("foreman-no-sessions")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = foreman::server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, ingress)
}

#[tokio::test]
async fn shutting_down_answers_503_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 1 << 20 }).unwrap();
    let (addr, ingress) = serve(store.clone()).await;
    let url = format!("http://{addr}/api/github/webhooks");
    let client = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        let send = |id: &'static str| support::delivery(&client, &url, SECRET, "issues", id, b"{}".to_vec()).send();
        assert_eq!(send("before").await.unwrap().status(), 202);
        ingress.begin_shutdown();
        let r = send("during").await.unwrap();
        assert_eq!(r.status(), 503);
        let body = r.text().await.unwrap();
        assert!(body.contains("redeliver"), "says what happens next: {body}");
        assert!(store.delivery(&foreman::ids::DeliveryId("during".into())).unwrap().is_none());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn api_answers_loopback_only_without_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 1 << 20 }).unwrap();
    let (addr, _) = serve(store).await;
    // Loopback is let through: 404 for an unknown delivery, not 403. A non-loopback peer cannot be made on
    // this machine's loopback-only network; the refusal is the other branch of `require_admin`.
    let r = reqwest::get(format!("http://{addr}/api/deliveries/nope")).await.unwrap();
    assert_eq!(r.status(), 404);
}

/// `foreman replay <delivery id>` reads the stored payload from the running Foreman (through
/// `GET /api/deliveries/{id}/payload`) and decides it again, event name included.
#[tokio::test]
async fn a_stored_delivery_is_replayed_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 1 << 20 }).unwrap();
    let (addr, _) = serve(store).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/github/webhooks/examples/api.github.com");
    let body = std::fs::read(format!("{examples}/issues/labeled.payload.json")).unwrap();
    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/github/webhooks");
    tokio::time::timeout(Duration::from_secs(60), async {
        let r = support::delivery(&client, &url, SECRET, "issues", id, body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let stored = reqwest::get(format!("http://{addr}/api/deliveries/{id}/payload")).await.unwrap();
        assert_eq!(stored.headers()["x-github-event"], "issues");
        assert_eq!(stored.bytes().await.unwrap(), body, "the body exactly as sent");
        let run = |arg: &str| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
                .args(["replay", "--server", &format!("http://{addr}"), arg])
                .env_remove("FOREMAN_CONFIG")
                .env_remove("FOREMAN_ADMIN_TOKEN")
                .kill_on_drop(true)
                .output()
        };
        let out = run(id).await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("label 'bug' is not a trigger label"), "{stdout}");
        let out = run("0000dead-beef").await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("has no delivery '0000dead-beef'"), "{out:?}");
    })
    .await
    .expect("in time");
}
