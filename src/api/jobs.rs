//! The job endpoints: `GET /api/status` and `GET /api/jobs/{owner}/{repo}/{issue}`.
//!
//! Mounted by the server behind the admin-token check. Both answer JSON; errors are
//! `{"message": "..."}` (GitHub's shape, as every other endpoint of Foreman's) with 400 (a malformed path or query), 404 (no such job) or 503 (the store failed;
//! the cause is logged, not returned).

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::ids::{IssueNumber, RepoName};
use crate::store::JobError;
use crate::store::Store;

/// The default number of entries per list in `GET /api/status`.
pub const DEFAULT_STATUS_LIMIT: usize = 50;
/// The largest `limit` `GET /api/status` accepts: bounds the response size (about 300 bytes per entry).
pub const MAX_STATUS_LIMIT: usize = 1000;

/// The routes, for any state the store can be taken from.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Store: FromRef<S>,
    crate::scheduler::Hold: FromRef<S>,
{
    Router::new().route("/api/status", get(status)).route("/api/jobs/{owner}/{repo}/{issue}", get(job))
}

/// Query of `GET /api/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Entries per list, 1 to [`MAX_STATUS_LIMIT`]; default [`DEFAULT_STATUS_LIMIT`].
    pub limit: Option<usize>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "message": message.into() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "job store read failed");
    error(StatusCode::SERVICE_UNAVAILABLE, "the job store is unavailable; see Foreman's log")
}

/// `GET /api/status[?limit=N]`: [`crate::job::JobsStatus`] as JSON.
async fn status(
    State(store): State<Store>,
    State(hold): State<crate::scheduler::Hold>,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match query {
        Ok(Query(StatusQuery { limit: None })) => DEFAULT_STATUS_LIMIT,
        Ok(Query(StatusQuery { limit: Some(n) })) if (1..=MAX_STATUS_LIMIT).contains(&n) => n,
        _ => return error(StatusCode::BAD_REQUEST, format!("limit must be a number from 1 to {MAX_STATUS_LIMIT}")),
    };
    // Counting reads every job record: keep it off the async workers.
    match tokio::task::spawn_blocking(move || store.jobs_status(OffsetDateTime::now_utc(), limit)).await {
        Ok(Ok(mut s)) => {
            s.hold = hold.get(s.now);
            Json(s).into_response()
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// `GET /api/jobs/{owner}/{repo}/{issue}`: [`crate::job::JobDetail`] as JSON, audit trail included, with
/// `report`: the job's newest state report as stored by the report outbox (`version`, `state`) and what
/// GitHub took (`applied`, `applied_state`; `pending` while the report is not applied), when one was stored.
async fn job(State(store): State<Store>, Path((owner, repo, issue)): Path<(String, String, String)>) -> Response {
    let Ok(repo) = RepoName::new(&owner, &repo) else {
        return error(StatusCode::BAD_REQUEST, format!("'{owner}/{repo}' is not a repository name"));
    };
    let Some(issue) = issue.parse::<u64>().ok().filter(|n| *n > 0).map(IssueNumber) else {
        return error(StatusCode::BAD_REQUEST, format!("'{issue}' is not an issue number"));
    };
    match store.job_detail(&repo, issue) {
        Ok(Some(d)) => {
            let mut body = serde_json::to_value(&d).unwrap_or_default();
            let report = match store.report(&repo, issue) {
                Ok(r) => r,
                Err(e) => return internal(e),
            };
            if let (Some(r), Some(map)) = (report, body.as_object_mut()) {
                // What GitHub was told: the newest state report (not its text) and the version it took.
                map.insert(
                    "report".into(),
                    serde_json::json!({
                        "version": r.version, "state": r.state, "applied": r.applied,
                        "applied_state": r.applied_state, "pending": r.pending(),
                    }),
                );
            }
            Json(body).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("Foreman has no job for {repo}#{issue}")),
        Err(JobError::NotFound(r)) => error(StatusCode::NOT_FOUND, format!("Foreman has no job for {r}")),
        Err(e) => internal(e),
    }
}
