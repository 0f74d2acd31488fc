//! Webhook ingress: `POST /api/github/webhooks` (Probot's path, so a webhook URL survives a move from Probot).
//!
//! Each delivery is verified, checked, and durably stored under its `X-GitHub-Delivery` id before any 2xx.
//! GitHub waits 10 s for an answer and never retries a failed delivery by itself
//! (<https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks>), so nothing is
//! processed here: stored deliveries go to the inbox worker ([`crate::dispatch`]) after the response.
//!
//! | status | when |
//! |---|---|
//! | 202 | a new delivery, stored |
//! | 200 | a delivery id already stored (`duplicate`), or `ping` |
//! | 204 | a verified event Foreman does not use (not stored) |
//! | 400 | `X-GitHub-Event` or `X-GitHub-Delivery` missing or malformed, or a body that is not JSON |
//! | 401 | signature missing or wrong |
//! | 413 | body over [`MAX_BODY_BYTES`] |
//! | 415 | a content type other than JSON or form-encoded `payload=` |
//! | 503 | shutting down, or the store cannot take the write |

pub mod signature;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::ids::{DeliveryId, InstallationId};
use crate::store::inbox::compress_body;
use crate::store::{DeliveryMeta, NewDelivery, PutOutcome, Store};
pub use signature::Verifier;

/// The path GitHub posts deliveries to.
pub const WEBHOOK_PATH: &str = "/api/github/webhooks";

/// The largest body accepted: GitHub caps webhook payloads at 25 MB
/// (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap>).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The events Foreman acts on. Other verified events are answered 204 and not stored.
pub const USED_EVENTS: &[&str] = &[
    "issues",
    "issue_comment",
    "projects_v2_item",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "installation",
    "installation_repositories",
];

/// Longest `X-GitHub-Event` or `X-GitHub-Delivery` value accepted. Real ones are short (event names under
/// 40 characters, delivery ids 36-character GUIDs); the bound keeps junk out of the store and the metrics.
const MAX_HEADER_LEN: usize = 100;

/// What the webhook handler needs.
#[derive(Clone)]
pub struct Ingress {
    store: Store,
    verifier: Arc<Verifier>,
    shutting_down: Arc<AtomicBool>,
}

impl Ingress {
    /// An ingress that verifies with `verifier` and stores into `store`.
    pub fn new(store: Store, verifier: Verifier) -> Self {
        Self { store, verifier: Arc::new(verifier), shutting_down: Arc::new(AtomicBool::new(false)) }
    }

    /// From now on, answer every delivery 503 so GitHub records a failure that can be redelivered.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }
}

/// A refusal or an acceptance, with a short body that never carries internals.
fn answer(status: StatusCode, message: &'static str) -> Response {
    let body = format!("{{\"message\":\"{message}\"}}");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The fields of a payload Foreman keeps beside the body. serde skips the rest while checking it is JSON.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    installation: Option<Installation>,
    #[serde(borrow, default)]
    repository: Option<Repository<'a>>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow)]
    full_name: std::borrow::Cow<'a, str>,
}

fn token_header<'h>(headers: &'h HeaderMap, name: &str, valid: fn(u8) -> bool) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= MAX_HEADER_LEN && v.bytes().all(valid)).then_some(v)
}

enum ContentKind {
    Json,
    Form,
}

fn content_kind(headers: &HeaderMap) -> Option<ContentKind> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = v.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Some(ContentKind::Json)
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(ContentKind::Form)
    } else {
        None
    }
}

/// The webhook handler. See the module documentation for the answers.
pub async fn receive(State(ingress): State<Ingress>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (outcome, event, response) = receive_inner(&ingress, &headers, body).await;
    metrics::counter!("foreman_deliveries_total", "event" => event, "outcome" => outcome).increment(1);
    metrics::histogram!("foreman_ingest_seconds").record(started.elapsed().as_secs_f64());
    response
}

async fn receive_inner(ingress: &Ingress, headers: &HeaderMap, body: Body) -> (&'static str, String, Response) {
    let refused = |outcome: &'static str, status, message| (outcome, "unverified".to_owned(), answer(status, message));
    if ingress.shutting_down.load(Ordering::SeqCst) {
        return refused("shutting_down", StatusCode::SERVICE_UNAVAILABLE, "shutting down; redeliver later");
    }
    let Some(event) =
        token_header(headers, "x-github-event", |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    else {
        return refused("bad_request", StatusCode::BAD_REQUEST, "missing or malformed X-GitHub-Event header");
    };
    let Some(delivery) = token_header(headers, "x-github-delivery", |b| b.is_ascii_alphanumeric() || b == b'-') else {
        return refused("bad_request", StatusCode::BAD_REQUEST, "missing or malformed X-GitHub-Delivery header");
    };
    let Some(kind) = content_kind(headers) else {
        return refused(
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json or application/x-www-form-urlencoded",
        );
    };
    let declared_len = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return refused("too_large", StatusCode::PAYLOAD_TOO_LARGE, "body over 25 MiB");
    }
    let raw = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(raw) => raw,
        Err(_) => return refused("too_large", StatusCode::PAYLOAD_TOO_LARGE, "body over 25 MiB or not readable"),
    };
    let signature = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    if let Err(e) = ingress.verifier.verify(signature, &raw) {
        tracing::debug!(delivery, event, reason = %e, "delivery refused");
        return refused("bad_signature", StatusCode::UNAUTHORIZED, "signature missing or wrong");
    }
    let json = match kind {
        ContentKind::Json => raw,
        ContentKind::Form => match form_urlencoded::parse(&raw).find(|(k, _)| k == "payload") {
            Some((_, v)) => bytes::Bytes::from(v.into_owned()),
            None => return refused("bad_request", StatusCode::BAD_REQUEST, "form body has no payload field"),
        },
    };
    let event = event.to_owned();
    let envelope: Envelope = match serde_json::from_slice(&json) {
        Ok(e) => e,
        Err(_) => return ("bad_request", event, answer(StatusCode::BAD_REQUEST, "body is not a JSON object")),
    };
    if event == "ping" {
        return ("ping", event, answer(StatusCode::OK, "pong"));
    }
    if !USED_EVENTS.contains(&event.as_str()) {
        return ("unused", event, StatusCode::NO_CONTENT.into_response());
    }
    let meta = DeliveryMeta {
        id: DeliveryId(delivery.to_owned()),
        event: event.clone(),
        action: envelope.action.map(|a| a.into_owned()),
        installation: envelope.installation.map(|i| InstallationId(i.id)),
        repository: envelope.repository.map(|r| r.full_name.into_owned()),
        received_at: OffsetDateTime::now_utc(),
        body_len: json.len() as u32,
    };
    let span = tracing::debug_span!(
        "delivery",
        id = delivery,
        event = %meta.event,
        action = meta.action.as_deref(),
        repository = meta.repository.as_deref(),
        installation = meta.installation.map(|i| i.0),
    );
    let _enter = span.enter();
    let compressed_body = compress_body(&json);
    drop(_enter);
    match ingress.store.put_delivery(NewDelivery { meta, compressed_body }).await {
        Ok(PutOutcome::Stored(seq)) => {
            tracing::debug!(parent: &span, seq, "delivery stored");
            ("stored", event, answer(StatusCode::ACCEPTED, "stored"))
        }
        Ok(PutOutcome::Duplicate(seq)) => {
            tracing::debug!(parent: &span, seq, "duplicate delivery ignored");
            ("duplicate", event, answer(StatusCode::OK, "duplicate"))
        }
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "delivery could not be stored");
            (
                "unavailable",
                event,
                answer(StatusCode::SERVICE_UNAVAILABLE, "cannot store the delivery now; redeliver later"),
            )
        }
    }
}
