//! Foreman's HTTP endpoints for runners (the table in [`super::protocol`]), authenticated by the session
//! token alone, each body bounded: events 1 MiB a batch, a result 4 MiB, a bundle `executor.max_bundle_mb`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::protocol::{Event, RemoteResult, SESSIONS_PATH};
use super::registry::{Access, Registry};

/// The largest batch of events, in bytes.
pub const MAX_EVENTS_BYTES: usize = 1 << 20;
/// The largest result, in bytes (the plan file is at most 1 MiB).
pub const MAX_RESULT_BYTES: usize = 4 << 20;

#[derive(Clone)]
struct RemoteState {
    registry: Registry,
    max_bundle_bytes: u64,
}

/// The runner endpoints under [`SESSIONS_PATH`], over `registry`; uploaded bundles are refused past
/// `max_bundle_bytes`.
pub fn routes(registry: Registry, max_bundle_bytes: u64) -> Router {
    let state = RemoteState { registry, max_bundle_bytes };
    Router::new()
        .route(&format!("{SESSIONS_PATH}/{{id}}/connect"), post(connect))
        .route(
            &format!("{SESSIONS_PATH}/{{id}}/bundle"),
            get(bundle)
                .put(upload)
                .layer(DefaultBodyLimit::max(usize::try_from(max_bundle_bytes).unwrap_or(usize::MAX))),
        )
        .route(&format!("{SESSIONS_PATH}/{{id}}/events"), post(events).layer(DefaultBodyLimit::max(MAX_EVENTS_BYTES)))
        .route(&format!("{SESSIONS_PATH}/{{id}}/result"), post(result).layer(DefaultBodyLimit::max(MAX_RESULT_BYTES)))
        .with_state(state)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The session's access for the connection token in `headers`, or the 401 to answer.
#[allow(clippy::result_large_err)]
fn authenticate(state: &RemoteState, id: &str, headers: &HeaderMap) -> Result<Access, Response> {
    let Some(token) = bearer(headers) else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "a session token is required (Authorization: Bearer)"));
    };
    state.registry.authenticate(id, token).map_err(|refused| {
        tracing::warn!(session = id, %refused, "a runner's request was refused");
        refuse(StatusCode::UNAUTHORIZED, "the session token is not valid for this session")
    })
}

async fn connect(State(state): State<RemoteState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "a session token is required (Authorization: Bearer)");
    };
    match state.registry.exchange(&id, token) {
        Ok((access, connection)) => {
            use secrecy::ExposeSecret as _;
            let spec: serde_json::Value = serde_json::from_slice(&access.spec).unwrap_or_default();
            let body = serde_json::json!({ "token": connection.secret().expose_secret(), "spec": spec });
            tracing::info!(session = id, "a runner connected");
            axum::Json(body).into_response()
        }
        Err(refused) => {
            tracing::warn!(session = id, %refused, "a runner's connection was refused");
            refuse(StatusCode::UNAUTHORIZED, "the session token is not valid for this session")
        }
    }
}

async fn bundle(State(state): State<RemoteState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let access = match authenticate(&state, &id, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let file = match tokio::fs::File::open(&access.bundle).await {
        Ok(f) => f,
        Err(_) => return refuse(StatusCode::GONE, "the session's bundle is gone"),
    };
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(stream)).into_response()
}

async fn upload(State(state): State<RemoteState>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let access = match authenticate(&state, &id, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let partial = access.result_bundle.with_extension("partial");
    let mut file = match tokio::fs::File::create(&partial).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(session = id, error = %e, "cannot write a runner's bundle");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Foreman cannot store the bundle");
        }
    };
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            let _ = tokio::fs::remove_file(&partial).await;
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the bundle is larger than executor.max_bundle_mb");
        };
        written += chunk.len() as u64;
        if written > state.max_bundle_bytes || file.write_all(&chunk).await.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the bundle is larger than executor.max_bundle_mb");
        }
    }
    if file.flush().await.is_err() || tokio::fs::rename(&partial, &access.result_bundle).await.is_err() {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Foreman cannot store the bundle");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn events(State(state): State<RemoteState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let access = match authenticate(&state, &id, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(batch) = serde_json::from_slice::<Vec<Event>>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "events are a JSON array of event objects");
    };
    // The session reads them in order; a closed channel means it has ended (the token goes with it).
    let _ = access.events.send(batch).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn result(State(state): State<RemoteState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authenticate(&state, &id, &headers) {
        return r;
    }
    let Ok(result) = serde_json::from_slice::<RemoteResult>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the result is not a session result object");
    };
    let taken = state.registry.finish(&id, result);
    // One result per session: the token is spent.
    state.registry.revoke(&id);
    if taken { StatusCode::NO_CONTENT.into_response() } else { refuse(StatusCode::CONFLICT, "the session has ended") }
}
