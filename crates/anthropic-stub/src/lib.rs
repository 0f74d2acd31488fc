//! A loopback stand-in for the Anthropic Messages API, for running the real Claude Code CLI in tests.
//!
//! [`Stub::start`] binds `127.0.0.1:0` and serves `POST /v1/messages` (streaming as server-sent events when
//! the request says `"stream": true`, as the CLI's main loop does, and as one JSON message otherwise) and
//! `POST /v1/messages/count_tokens`. Point the CLI at it with `ANTHROPIC_BASE_URL` = [`Stub::url`].
//!
//! Each Messages request takes the next scripted [`Reply`] from the queue ([`Stub::push`]); when the queue is
//! empty the [`Stub::set_fallback`] reply answers (a plain "Done." text by default). A reply is either an
//! assistant message made of [`Block`]s (text and `tool_use`, so the CLI runs real tools such as Write, Edit
//! and Bash), or an HTTP error in the Anthropic error format.
//!
//! The errors are the ones `vendor/agents/claude-code/SOURCES.md` records the CLI 2.1.329 turning into each
//! failure: 401 `authentication_error` (invalid key, expired OAuth token), 429 `rate_limit_error` with
//! `retry-after`, 529 `overloaded_error`, and the subscription usage limit: 429 plus the
//! `anthropic-ratelimit-unified-status: rejected`, `…-representative-claim` and `…-reset` headers (the CLI
//! shows "You've hit your 5-hour limit · resets …" only to OAuth (subscriber) credentials).
//!
//! Credentials listed with [`Stub::reject_credential`] get a 401 on every request, before the script is
//! consulted, so a test can check that a caller moves on to its next credential. Every request is recorded
//! ([`Stub::requests`]) with the credential it carried.
//!
//! Error body shape: <https://docs.anthropic.com/en/api/errors>; streaming event shapes:
//! <https://docs.anthropic.com/en/api/messages-streaming>.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One content block of a scripted assistant message.
#[derive(Clone, Debug)]
pub enum Block {
    /// A `text` block, streamed as one `text_delta`.
    Text(String),
    /// A `tool_use` block: the CLI runs the tool `name` (e.g. `Write`, `Edit`, `Bash`, `Read`) with `input`.
    /// The input is streamed as `input_json_delta` chunks. The id is generated (`toolu_stub_<n>`).
    ToolUse {
        /// The tool's name as the CLI registers it.
        name: String,
        /// The tool's input object, e.g. `{"file_path": "/abs/path", "content": "…"}` for Write.
        input: Value,
    },
}

/// Token counts reported for a scripted message; the CLI computes its cost (`total_cost_usd`) from them.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// `usage.input_tokens`.
    pub input_tokens: u64,
    /// `usage.output_tokens`.
    pub output_tokens: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Self { input_tokens: 100, output_tokens: 20 }
    }
}

/// One scripted answer to a Messages request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message. `stop_reason` is `tool_use` when any block is a tool use, else `end_turn`.
    Message {
        /// The content blocks, in order.
        blocks: Vec<Block>,
        /// Token counts for the message.
        usage: Usage,
    },
    /// An HTTP error: `{"type":"error","error":{"type":<error_type>,"message":<message>},"request_id":…}`.
    Error {
        /// The HTTP status, e.g. 401, 429, 529.
        status: u16,
        /// The Anthropic error type, e.g. `authentication_error`, `rate_limit_error`, `overloaded_error`.
        error_type: String,
        /// The error message.
        message: String,
        /// Extra response headers, e.g. `retry-after` or the `anthropic-ratelimit-unified-*` family.
        headers: Vec<(String, String)>,
    },
}

impl Reply {
    /// A message with one text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Message { blocks: vec![Block::Text(text.into())], usage: Usage::default() }
    }

    /// A message with one tool use.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Self::Message { blocks: vec![Block::ToolUse { name: name.into(), input }], usage: Usage::default() }
    }

    /// A message with the given blocks.
    pub fn blocks(blocks: Vec<Block>) -> Self {
        Self::Message { blocks, usage: Usage::default() }
    }

    /// Replaces the token counts of a message reply (no effect on errors).
    pub fn with_usage(self, input_tokens: u64, output_tokens: u64) -> Self {
        match self {
            Self::Message { blocks, .. } => Self::Message { blocks, usage: Usage { input_tokens, output_tokens } },
            e => e,
        }
    }

    /// 401 `authentication_error` "invalid x-api-key": what the API answers a bad `x-api-key`.
    /// The CLI 2.1.329 ends with "Invalid API key · Fix external API key" (cap file
    /// `auth_invalid_api_key_401_after_retries.jsonl`).
    pub fn invalid_api_key() -> Self {
        Self::error(401, "authentication_error", "invalid x-api-key", vec![])
    }

    /// 401 `authentication_error` for an expired OAuth token; the CLI ends with "Failed to authenticate.
    /// API Error: 401 OAuth token has expired. …" (cap file `auth_oauth_token_expired_401.jsonl`).
    pub fn oauth_token_expired() -> Self {
        Self::error(
            401,
            "authentication_error",
            "OAuth token has expired. Please obtain a new token or refresh your existing token.",
            vec![],
        )
    }

    /// 429 `rate_limit_error` with `retry-after: 1`; the CLI ends with "API Error: Request rejected (429) · …"
    /// (cap file `rate_limit_429_after_retries.jsonl`).
    pub fn rate_limited() -> Self {
        Self::error(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
            vec![("retry-after".into(), "1".into())],
        )
    }

    /// 529 `overloaded_error`; the CLI ends with "API Error: 529 Overloaded. …" (cap file
    /// `overloaded_529_after_retries.jsonl`).
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded_error", "Overloaded", vec![])
    }

    /// The subscription usage limit: 429 with `anthropic-ratelimit-unified-status: rejected`,
    /// `anthropic-ratelimit-unified-representative-claim: <claim>` (`five_hour`, `seven_day`, …) and
    /// `anthropic-ratelimit-unified-reset: <resets_at, unix seconds>`. With an OAuth credential the CLI ends
    /// with "You've hit your 5-hour limit · resets 2:26am (UTC)" and `api_error: usage_limit_reached` (cap file
    /// `usage_limit_5h_subscriber.jsonl`); with an API key it shows the plain 429 text.
    pub fn usage_limit(claim: &str, resets_at: i64) -> Self {
        Self::error(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
            vec![
                ("anthropic-ratelimit-unified-status".into(), "rejected".into()),
                ("anthropic-ratelimit-unified-representative-claim".into(), claim.into()),
                ("anthropic-ratelimit-unified-reset".into(), resets_at.to_string()),
            ],
        )
    }

    fn error(status: u16, error_type: &str, message: &str, headers: Vec<(String, String)>) -> Self {
        Self::Error { status, error_type: error_type.into(), message: message.into(), headers }
    }
}

/// A request the stub received.
#[derive(Clone, Debug)]
pub struct Request {
    /// The path, e.g. `/v1/messages`, without the query.
    pub path: String,
    /// The credential it carried: the `x-api-key` value, or the token of `Authorization: Bearer …`.
    pub credential: Option<String>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The HTTP status the stub answered with.
    pub status: u16,
}

impl Request {
    /// The text of the last user message in the request (its string content, or its text blocks joined).
    pub fn last_user_text(&self) -> String {
        let Some(messages) = self.body.get("messages").and_then(Value::as_array) else { return String::new() };
        let Some(last) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
            return String::new();
        };
        match last.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => {
                blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
            }
            _ => String::new(),
        }
    }
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    fallback: Option<Reply>,
    rejected: HashSet<String>,
    requests: Vec<Request>,
    next_id: u64,
}

struct Shared {
    script: Mutex<Script>,
    changed: Notify,
}

/// A running stub. Dropping it stops the server.
pub struct Stub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Stub {
    /// Binds `127.0.0.1` on a free port and starts serving. Errors when the port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { script: Mutex::new(Script::default()), changed: Notify::new() });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .fallback(not_found)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, server })
    }

    /// The base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next Messages request.
    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().queue.push_back(reply);
    }

    /// Sets the reply used once the queue is empty (default: a "Done." text message).
    pub fn set_fallback(&self, reply: Reply) {
        self.shared.script.lock().unwrap().fallback = Some(reply);
    }

    /// Answers every request carrying `credential` (API key or OAuth token) with a 401, before the script.
    /// Tokens starting with `sk-ant-oat` get the expired-OAuth message, others "invalid x-api-key".
    pub fn reject_credential(&self, credential: &str) {
        self.shared.script.lock().unwrap().rejected.insert(credential.to_owned());
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.script.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests have arrived, or `timeout` passes; returns the requests seen.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }
}

fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.to_owned());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(str::to_owned)
}

async fn count_tokens() -> Response {
    axum::Json(json!({ "input_tokens": 100 })).into_response()
}

async fn not_found(uri: Uri) -> Response {
    tracing::debug!(path = %uri.path(), "anthropic-stub: no such route");
    error_response(404, "not_found_error", &format!("{} not found", uri.path()), &[], "req_stub_404")
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let credential = credential(&headers);
    let (reply, id) = {
        let mut script = shared.script.lock().unwrap();
        script.next_id += 1;
        let id = script.next_id;
        let reply = match &credential {
            Some(c) if script.rejected.contains(c) => {
                if c.starts_with("sk-ant-oat") {
                    Reply::oauth_token_expired()
                } else {
                    Reply::invalid_api_key()
                }
            }
            _ => script.queue.pop_front().or_else(|| script.fallback.clone()).unwrap_or_else(|| Reply::text("Done.")),
        };
        let status = match &reply {
            Reply::Message { .. } => 200,
            Reply::Error { status, .. } => *status,
        };
        script.requests.push(Request {
            path: uri.path().to_owned(),
            credential: credential.clone(),
            body: body.clone(),
            status,
        });
        (reply, id)
    };
    shared.changed.notify_waiters();
    let request_id = format!("req_stub_{id}");
    match reply {
        Reply::Error { status, error_type, message, headers } => {
            error_response(status, &error_type, &message, &headers, &request_id)
        }
        Reply::Message { blocks, usage } => {
            let model = body.get("model").and_then(Value::as_str).unwrap_or("claude-sonnet-4-5").to_owned();
            let message_id = format!("msg_stub_{id}");
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                sse_response(&message_id, &model, &blocks, usage, &request_id, id)
            } else {
                json_response(&message_id, &model, &blocks, usage, &request_id, id)
            }
        }
    }
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    headers: &[(String, String)],
    request_id: &str,
) -> Response {
    let body =
        json!({ "type": "error", "error": { "type": error_type, "message": message }, "request_id": request_id });
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
    let h = response.headers_mut();
    h.insert("request-id", HeaderValue::from_str(request_id).unwrap());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        {
            h.insert(name, value);
        }
    }
    response
}

fn stop_reason(blocks: &[Block]) -> &'static str {
    if blocks.iter().any(|b| matches!(b, Block::ToolUse { .. })) { "tool_use" } else { "end_turn" }
}

fn tool_id(message: u64, index: usize) -> String {
    format!("toolu_stub_{message}_{index}")
}

fn content_json(blocks: &[Block], message: u64) -> Vec<Value> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            Block::Text(t) => json!({ "type": "text", "text": t }),
            Block::ToolUse { name, input } => {
                json!({ "type": "tool_use", "id": tool_id(message, i), "name": name, "input": input })
            }
        })
        .collect()
}

fn json_response(message_id: &str, model: &str, blocks: &[Block], usage: Usage, request_id: &str, n: u64) -> Response {
    let body = json!({
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content_json(blocks, n), "stop_reason": stop_reason(blocks), "stop_sequence": null,
        "usage": { "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens },
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert("request-id", HeaderValue::from_str(request_id).unwrap());
    response
}

/// Splits `s` into chunks of at most `n` characters (on char boundaries).
fn chunks(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn sse_response(message_id: &str, model: &str, blocks: &[Block], usage: Usage, request_id: &str, n: u64) -> Response {
    let mut events = vec![event(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": usage.input_tokens, "output_tokens": 1,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 } } }),
    )];
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                events.push(event(
                    "content_block_start",
                    json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
                ));
                for piece in chunks(text, 64) {
                    events.push(event(
                        "content_block_delta",
                        json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": piece } }),
                    ));
                }
            }
            Block::ToolUse { name, input } => {
                events.push(event(
                    "content_block_start",
                    json!({ "type": "content_block_start", "index": index,
                            "content_block": { "type": "tool_use", "id": tool_id(n, index), "name": name, "input": {} } }),
                ));
                for piece in chunks(&input.to_string(), 64) {
                    events.push(event(
                        "content_block_delta",
                        json!({ "type": "content_block_delta", "index": index,
                                "delta": { "type": "input_json_delta", "partial_json": piece } }),
                    ));
                }
            }
        }
        events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
    }
    events.push(event(
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": stop_reason(blocks), "stop_sequence": null },
                "usage": { "output_tokens": usage.output_tokens } }),
    ));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    let stream = futures::stream::iter(events.into_iter().map(Ok::<_, std::convert::Infallible>));
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/event-stream"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("request-id", HeaderValue::from_str(request_id).unwrap());
    response
}
