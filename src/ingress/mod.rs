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
//! | 204 | a verified event Foreman does not use ([`crate::event::HANDLED_EVENTS`]; not stored) |
//! | 400 | `X-GitHub-Event` or `X-GitHub-Delivery` missing or malformed, or a body that is not JSON |
//! | 401 | signature missing or wrong |
//! | 408 | the body did not arrive within [`crate::server::REQUEST_TIMEOUT`] (the server's timeout layer) |
//! | 413 | body over [`MAX_BODY_BYTES`] |
//! | 415 | a content type other than JSON or form-encoded `payload=` |
//! | 503 | shutting down, the store cannot take the write, or the unverified-body budget is full (with `Retry-After`) |
//!
//! Every answer is counted in `foreman_deliveries_total{event, outcome}` (`event="unverified"` until the
//! signature is checked), the 408 and 413 of the server's layers included ([`count_layer_answers`]).
//!
//! Bodies are held until their signature has been checked; the bytes held that way across all requests are
//! bounded ([`budget`]). Connections are served by [`connections`], which bounds their number and how long
//! they may take to send a request's headers or stay idle.

pub mod budget;
pub mod connections;
pub mod refusals;
pub mod signature;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use time::OffsetDateTime;

use crate::event::{Envelope, is_handled};
use crate::ids::DeliveryId;
use crate::store::inbox::compress_body;
use crate::store::{DeliveryMeta, NewDelivery, PutOutcome, Store};
pub use budget::BodyBudget;
pub use signature::Verifier;

/// The path GitHub posts deliveries to.
pub const WEBHOOK_PATH: &str = "/api/github/webhooks";

/// The largest body accepted: GitHub caps webhook payloads at 25 MB
/// (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap>).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The default bound on bytes of not-yet-verified bodies held across all requests (`server.max_unverified_body_mb`,
/// 64 MiB): two of GitHub's largest payloads at once, far above what GitHub sends concurrently to one App, and
/// small enough that the process stays well within a 256 MB machine while it is full.
pub const DEFAULT_MAX_UNVERIFIED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The `Retry-After` value, in seconds, of a 503 for a full unverified-body budget. Every byte held is given
/// back within the request timeout ([`crate::server::REQUEST_TIMEOUT`], 9 s), so the budget has room again
/// after at most that long. GitHub does not retry by itself; a delivery refused this way is redelivered by
/// reconciliation or by hand (docs/operations.md).
pub const OVER_BUDGET_RETRY_AFTER_SECS: u64 = 10;

/// Longest `X-GitHub-Event` or `X-GitHub-Delivery` value accepted. Real ones are short (event names under
/// 40 characters, delivery ids 36-character GUIDs); the bound keeps junk out of the store and the metrics.
const MAX_HEADER_LEN: usize = 100;

/// What the webhook handler needs.
#[derive(Clone)]
pub struct Ingress {
    store: Store,
    /// Swapped whole when the App's webhook secret changes (registered from the setup page).
    verifier: Arc<std::sync::RwLock<Arc<Verifier>>>,
    shutting_down: Arc<AtomicBool>,
    budget: BodyBudget,
    refusals: Arc<refusals::RefusalLog>,
}

impl Ingress {
    /// An ingress that verifies with `verifier` and stores into `store`, holding at most
    /// [`DEFAULT_MAX_UNVERIFIED_BODY_BYTES`] of unverified bodies at once.
    pub fn new(store: Store, verifier: Verifier) -> Self {
        Self {
            store,
            verifier: Arc::new(std::sync::RwLock::new(Arc::new(verifier))),
            shutting_down: Arc::new(AtomicBool::new(false)),
            budget: BodyBudget::new(DEFAULT_MAX_UNVERIFIED_BODY_BYTES),
            refusals: Arc::default(),
        }
    }

    /// The same, holding at most `bytes` of unverified bodies at once across all requests.
    pub fn with_unverified_body_limit(mut self, bytes: usize) -> Self {
        self.budget = BodyBudget::new(bytes);
        self
    }

    /// The unverified-body budget, e.g. to see how much of it is taken.
    pub fn body_budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// Verifies later deliveries with `verifier` (the webhook secrets changed: an App was registered from the
    /// setup page). Deliveries being verified finish with the secrets they started with.
    pub fn set_verifier(&self, verifier: Verifier) {
        *self.verifier.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(verifier);
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

/// Why a body was not read whole.
enum BodyRefused {
    /// Over [`MAX_BODY_BYTES`], or the connection failed while sending it.
    TooLarge,
    /// The unverified-body budget cannot hold it.
    OverBudget,
}

/// Reads a body whole within [`MAX_BODY_BYTES`] and the budget: its declared length is taken from the budget
/// before a byte is read; a body without one (chunked) takes what each frame brings as it arrives. The
/// returned reservation holds the body's bytes until dropped.
async fn read_body(
    mut body: Body,
    declared_len: Option<u64>,
    budget: &BodyBudget,
) -> Result<(Bytes, budget::Reservation), BodyRefused> {
    let declared = declared_len.map_or(0, |n| n as usize);
    let mut held = budget.reserve(declared).ok_or(BodyRefused::OverBudget)?;
    // One frame is kept as it came (the usual case: no copy); more are gathered.
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyRefused::TooLarge)?.into_data() else { continue };
        len += data.len();
        if len > MAX_BODY_BYTES {
            return Err(BodyRefused::TooLarge);
        }
        if len > held.bytes() && !held.grow(len - held.bytes()) {
            return Err(BodyRefused::OverBudget);
        }
        match (&mut first, &mut gathered) {
            (None, None) => first = Some(data),
            (Some(one), None) => {
                let mut all = BytesMut::with_capacity(declared.max(len));
                all.extend_from_slice(one);
                all.extend_from_slice(&data);
                first = None;
                gathered = Some(all);
            }
            (_, Some(all)) => all.extend_from_slice(&data),
        }
    }
    let raw = match (first, gathered) {
        (_, Some(all)) => all.freeze(),
        (Some(one), None) => one,
        (None, None) => Bytes::new(),
    };
    Ok((raw, held))
}

/// The webhook handler. See the module documentation for the answers.
pub async fn receive(State(ingress): State<Ingress>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (outcome, event, mut response) = receive_inner(&ingress, &headers, body).await;
    count(event, outcome, started);
    response.extensions_mut().insert(Counted);
    response
}

/// Marks a webhook answer [`receive`] has counted, so [`count_layer_answers`] does not count it again.
#[derive(Clone, Copy)]
struct Counted;

/// One delivery answered: `foreman_deliveries_total{event, outcome}` and `foreman_ingest_seconds`.
fn count(event: String, outcome: &'static str, started: Instant) {
    metrics::counter!("foreman_deliveries_total", "event" => event, "outcome" => outcome).increment(1);
    metrics::histogram!("foreman_ingest_seconds").record(started.elapsed().as_secs_f64());
}

/// Middleware over the server's timeout and body-limit layers that counts the webhook answers those layers
/// give without [`receive`] finishing: a `408` when the request timeout ([`crate::server::REQUEST_TIMEOUT`])
/// runs out (`outcome="timeout"`) and a `413` for a declared length over [`MAX_BODY_BYTES`]
/// (`outcome="too_large"`, as the handler's own), both with `event="unverified"` like every refusal before the
/// signature is checked. Answers [`receive`] gave are counted there; other paths pass through.
pub async fn count_layer_answers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.uri().path() != WEBHOOK_PATH {
        return next.run(request).await;
    }
    let started = Instant::now();
    let response = next.run(request).await;
    if response.extensions().get::<Counted>().is_none() {
        let outcome = match response.status() {
            StatusCode::REQUEST_TIMEOUT => Some("timeout"),
            StatusCode::PAYLOAD_TOO_LARGE => Some("too_large"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            count("unverified".to_owned(), outcome, started);
        }
    }
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
    let (raw, held) = match read_body(body, declared_len, &ingress.budget).await {
        Ok(read) => read,
        Err(BodyRefused::TooLarge) => {
            return refused("too_large", StatusCode::PAYLOAD_TOO_LARGE, "body over 25 MiB or not readable");
        }
        Err(BodyRefused::OverBudget) => {
            tracing::debug!(delivery, event, "unverified-body budget full: delivery refused 503");
            let mut response =
                answer(StatusCode::SERVICE_UNAVAILABLE, "too many unverified bodies in progress; redeliver later");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(OVER_BUDGET_RETRY_AFTER_SECS));
            return ("overloaded", "unverified".to_owned(), response);
        }
    };
    let signature = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    let verifier = ingress.verifier.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let verified = verifier.verify(signature, &raw);
    // Checked: the body is no longer unverified, whatever the answer.
    drop(held);
    if let Err(e) = verified {
        if let Some(refused) = ingress.refusals.record(std::time::Instant::now()) {
            tracing::warn!(
                refused,
                reason = %e,
                "webhook deliveries refused for their signature (this one and any since the last such line): \
                 the webhook secret must be the App's (GITHUB_WEBHOOK_SECRET, github.webhook_secret)"
            );
        }
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
    match store_delivery(&ingress.store, delivery, &event, json).await {
        Ok(Stored::New(_)) => ("stored", event, answer(StatusCode::ACCEPTED, "stored")),
        Ok(Stored::Duplicate(_)) => ("duplicate", event, answer(StatusCode::OK, "duplicate")),
        Ok(Stored::Ping) => ("ping", event, answer(StatusCode::OK, "pong")),
        Ok(Stored::Unused) => ("unused", event, StatusCode::NO_CONTENT.into_response()),
        Err(StoreRefusal::NotJson) => {
            ("bad_request", event, answer(StatusCode::BAD_REQUEST, "body is not a JSON object"))
        }
        Err(StoreRefusal::Store(_)) => (
            "unavailable",
            event,
            answer(StatusCode::SERVICE_UNAVAILABLE, "cannot store the delivery now; redeliver later"),
        ),
    }
}

/// What [`store_delivery`] made of an authentic delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored durably under this sequence number: it is in the inbox.
    New(u64),
    /// A delivery with this `X-GitHub-Delivery` id is already stored (under this sequence number).
    Duplicate(u64),
    /// A `ping`: nothing to store.
    Ping,
    /// An event Foreman does not use ([`crate::event::HANDLED_EVENTS`]): not stored.
    Unused,
}

/// Why [`store_delivery`] did not store a delivery.
#[derive(Debug, thiserror::Error)]
pub enum StoreRefusal {
    /// The payload is not a JSON object.
    #[error("the payload is not a JSON object")]
    NotJson,
    /// The store did not take the write (logged at ERROR); the delivery can come again.
    #[error("the store cannot take the delivery: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Stores one authentic delivery in the inbox: the one path into it, for webhooks (after the signature is
/// checked) and for deliveries read from the App's delivery log (poll mode). `delivery` is the
/// `X-GitHub-Delivery` GUID the inbox is keyed by, `event` the `X-GitHub-Event` name, `json` the payload.
/// Returns once the delivery is durable (a flush), or says why it was not stored.
pub async fn store_delivery(store: &Store, delivery: &str, event: &str, json: Bytes) -> Result<Stored, StoreRefusal> {
    let envelope = Envelope::read(&json).map_err(|_| StoreRefusal::NotJson)?;
    if event == "ping" {
        return Ok(Stored::Ping);
    }
    if !is_handled(event) {
        return Ok(Stored::Unused);
    }
    let meta = DeliveryMeta {
        id: DeliveryId(delivery.to_owned()),
        event: event.to_owned(),
        action: envelope.action.map(|a| a.into_owned()),
        installation: envelope.installation,
        repository: envelope.repository.map(|r| r.into_owned()),
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
    match store.put_delivery(NewDelivery { meta, compressed_body }).await {
        Ok(PutOutcome::Stored(seq)) => {
            tracing::debug!(parent: &span, seq, "delivery stored");
            Ok(Stored::New(seq))
        }
        Ok(PutOutcome::Duplicate(seq)) => {
            tracing::debug!(parent: &span, seq, "duplicate delivery ignored");
            Ok(Stored::Duplicate(seq))
        }
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "delivery could not be stored");
            Err(StoreRefusal::Store(e))
        }
    }
}
