//! Shared test helpers: a started simulator, tokens, and a webhook receiver on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use github_sim::{GithubSim, SimConfig, SimHandle};
use serde_json::{Value, json};

/// Every test's upper bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Sim {
    pub sim: SimHandle,
    /// The simulator's state directory, removed when the test ends.
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub async fn start_with(f: impl FnOnce(&mut SimConfig)) -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SimConfig::new(dir.path().join("state"));
    f(&mut config);
    let sim = GithubSim::start(config).await.expect("sim starts");
    Sim { sim, _dir: dir, http: reqwest::Client::new() }
}

pub async fn start() -> Sim {
    start_with(|_| {}).await
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.url())
    }

    /// An installation token for `account` with the given request body.
    pub async fn token_with(&self, account: &str, body: Value) -> String {
        let id = self.sim.installation_id(account);
        let r = self
            .http
            .post(self.url(&format!("/app/installations/{id}/access_tokens")))
            .bearer_auth(self.sim.app_jwt())
            .header("accept", "application/vnd.github+json")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 201, "token request");
        r.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_string()
    }

    pub async fn token(&self, account: &str) -> String {
        self.token_with(account, json!({})).await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut rq = self.http.request(method, self.url(path)).header("authorization", format!("token {token}"));
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        rq.send().await.expect("request")
    }
}

/// A webhook receiver: records every delivery (headers and body) and answers `status`.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<(reqwest::header::HeaderMap, bytes::Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn receiver(status: u16) -> Receiver {
    let got: Arc<Mutex<Vec<(reqwest::header::HeaderMap, bytes::Bytes)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver { url, got, task }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema's `null` type, in place, as github-sim's own request and
/// response checks read the description; for tests that compile a schema of the description themselves.
#[allow(dead_code)]
pub fn denull(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("nullable") == Some(&Value::Bool(true)) {
                m.remove("nullable");
                match m.get("type").cloned() {
                    Some(Value::String(t)) => {
                        m.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(m));
                        m.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
            m.values_mut().for_each(denull);
        }
        Value::Array(a) => a.iter_mut().for_each(denull),
        _ => {}
    }
}
