//! The operations endpoints: health, readiness, metrics, and the admin `/api/` routes.
//!
//! - `GET /healthz`: 200 while the process is alive.
//! - `GET /readyz`: the startup checks ([`crate::doctor`]) and a durable write to the store, as JSON; 200
//!   when none fails, 503 otherwise.
//! - `GET /metrics`: Prometheus text; every name starts with `foreman_`.
//! - `GET /api/deliveries/{id}`: a stored delivery's metadata and processing state; 404 if unknown.
//! - `GET /api/status` and `GET /api/jobs/{owner}/{repo}/{issue}`: the job queue ([`jobs`]).
//!
//! Every `/api/` route except the webhook requires `Authorization: Bearer <FOREMAN_ADMIN_TOKEN>` when that
//! token is configured; without one, `/api/` answers only clients on loopback.

pub mod auth;
pub mod docs;
pub mod jobs;

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

use crate::ids::DeliveryId;
use crate::ingress::Ingress;
use crate::store::Store;

/// Everything the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The webhook ingress.
    pub ingress: Ingress,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The admin bearer token, if configured.
    pub admin_token: Option<Arc<SecretString>>,
    /// Where session logs are (`DATA_DIR/sessions`), for `GET /api/sessions/{id}/log`.
    pub sessions_dir: Arc<std::path::PathBuf>,
    /// The latest startup checks ([`crate::doctor`]), answered by `/readyz`.
    pub checks: crate::doctor::Latest,
    /// The hold on new sessions (the agent's usage limit), shown by `GET /api/status`.
    pub hold: crate::scheduler::Hold,
}

impl FromRef<AppState> for crate::scheduler::Hold {
    fn from_ref(s: &AppState) -> crate::scheduler::Hold {
        s.hold.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(s: &AppState) -> Store {
        s.store.clone()
    }
}

impl FromRef<AppState> for Ingress {
    fn from_ref(s: &AppState) -> Ingress {
        s.ingress.clone()
    }
}

/// `/healthz`, `/readyz` and `/metrics`: open to anyone, as load balancers and scrapers expect; and the
/// constitution's documentation ([`crate::constitution::fetch::DOCS_PATH`]), which error messages on GitHub
/// link to.
pub fn ops_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(crate::constitution::fetch::DOCS_PATH, get(constitution_docs))
}

/// `docs/constitution.md` as built into this Foreman, as an HTML page whose headings carry GitHub's anchors
/// ([`docs::CONSTITUTION_HTML`]), so the links in error comments land on each key's section.
async fn constitution_docs() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], docs::CONSTITUTION_HTML.as_str()).into_response()
}

/// The admin routes under `/api/`, without the auth layer (the server adds it).
pub fn admin_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/deliveries/{id}", get(delivery))
        .route("/api/deliveries/{id}/payload", get(delivery_payload))
        .route("/api/sessions/{id}/log", get(session_log))
        .merge(jobs::routes())
}

/// A session's JSON-lines log (`DATA_DIR/sessions/<owner>-<repo>-<issue>-<session id>.jsonl`), as
/// `application/x-ndjson`. The log is bounded by `agent.log_max_bytes` and redacted as it is written. 404 for
/// an id that is not a session id or has no log (logs past `agent.log_retention_days` are pruned).
async fn session_log(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let not_found =
        || (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "no session log with that id"}))).into_response();
    // Session ids are UUIDs: nothing else can name a file here.
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return not_found();
    }
    let suffix = format!("-{id}.jsonl");
    let dir = state.sessions_dir.clone();
    let found = tokio::task::spawn_blocking(move || {
        let entries = std::fs::read_dir(&*dir).ok()?;
        let path = entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&suffix)))?;
        std::fs::read(path).ok()
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/x-ndjson")], bytes).into_response(),
        None => not_found(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the latest startup checks ([`crate::doctor::Report`]) and a durable write to the store,
/// as `{"ready": bool, "checks": [{"name", "status": "pass"|"warn"|"fail", "summary", "fix"?}]}`; 200 when
/// none fails, 503 otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    use crate::doctor::{Check, Status};
    let mut report = state.checks.get();
    let store = match state.store.check_writable().await {
        Ok(()) => Check { name: "store", status: Status::Pass, summary: "takes a durable write".into(), fix: None },
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Check {
                name: "store",
                status: Status::Fail,
                summary: "the store does not take a durable write".into(),
                fix: Some("see the log for the cause (a full disk, a read-only file system)".into()),
            }
        }
    };
    report.checks.push(store);
    let ready = !report.failed();
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(serde_json::json!({"ready": ready, "checks": report.checks}))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("foreman_inbox_depth").set(state.store.inbox_depth() as f64);
    // Counting reads every job record (about 1 µs each): off the async workers.
    let store = state.store.clone();
    let counted = tokio::task::spawn_blocking(move || store.jobs_status(time::OffsetDateTime::now_utc(), 0)).await;
    if let Ok(Ok(status)) = counted {
        for (job_state, n) in status.counts {
            metrics::gauge!("foreman_jobs", "state" => job_state).set(n as f64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// `GET /api/deliveries/{id}/payload`: the stored delivery's body exactly as GitHub sent it
/// (`application/json`), its event name in `X-GitHub-Event`; what `foreman replay <delivery id>` decides
/// again. 404 for an unknown id or a delivery pruned after `inbox.retention_days`.
async fn delivery_payload(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let not_found =
        || (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "no delivery with that id"}))).into_response();
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "reading a delivery failed");
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"message": "store unavailable"}))).into_response()
    };
    let seq = match store.delivery(&DeliveryId(id)) {
        Ok(Some(record)) => record.seq,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    match store.delivery_body(seq) {
        Ok(Some((meta, body))) => {
            let Ok(event) = axum::http::HeaderValue::from_str(&meta.event) else { return not_found() };
            let headers = [
                (axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json")),
                (axum::http::HeaderName::from_static("x-github-event"), event),
            ];
            (headers, body).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => unavailable(&e),
    }
}

async fn delivery(State(store): State<Store>, Path(id): Path<String>) -> Response {
    match store.delivery(&DeliveryId(id)) {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "no delivery with that id"}))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a delivery failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"message": "store unavailable"}))).into_response()
        }
    }
}
