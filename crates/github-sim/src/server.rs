//! The HTTP edge: one handler that reads the request, then sends it to the control API, git,
//! GraphQL or REST, applying (for the API) conformance checks, faults, authentication, the primary
//! rate limit, rate-limit headers and the request log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use crate::SimConfig;
use crate::auth::AppKey;
use crate::faults::Faults;
use crate::world::{Bucket, LoggedRequest, Token, World};

/// Requests per hour an installation gets (GitHub's default for installations, 5,000).
pub const INSTALLATION_RATE_LIMIT: u64 = 5_000;
/// Requests per hour for unauthenticated callers (GitHub: 60).
pub const UNAUTHENTICATED_RATE_LIMIT: u64 = 60;
/// The primary rate-limit window (GitHub: one hour).
pub const RATE_LIMIT_WINDOW_SECS: i64 = 3_600;
/// Where GitHub's error bodies point.
pub const DOCS: &str = "https://docs.github.com/rest";

pub(crate) struct Inner {
    pub world: Mutex<World>,
    pub key: AppKey,
    pub app_id: u64,
    pub config: SimConfig,
    pub repos_dir: PathBuf,
    pub hook_tx: mpsc::UnboundedSender<u64>,
    pub delivered: watch::Sender<u64>,
    /// Bumped after every API, git and control request and every delivery attempt, so tests can
    /// wait for a condition on the world instead of sleeping.
    pub changed: watch::Sender<u64>,
    pub faults: Mutex<Faults>,
    /// Where deliveries go: `SimConfig::webhook_url` at start, changed by `SimHandle::set_webhook_url`
    /// (a receiver that restarts on a new port).
    pub webhook_url: Mutex<Option<String>>,
    /// When the simulator started: the origin of the request log's `started_ms`/`finished_ms`.
    pub started: std::time::Instant,
    /// An answer held open for a test (see `hold`).
    pub holds: crate::hold::Holds,
    /// The simulated Actions runner (`crate::actions::runner`).
    pub actions: crate::actions::runner::Runtime,
}

impl Inner {
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("world lock")
    }
    /// Milliseconds since the simulator started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A request as the handlers see it.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    /// The JSON body, or GitHub's 400 "Problems parsing JSON".
    pub fn json(&self) -> Result<Value, Resp> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body).map_err(|_| Resp::error(400, "Problems parsing JSON"))
    }
}

/// A response under construction.
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: RespBody,
}

pub(crate) enum RespBody {
    Json(Value),
    Raw(Bytes),
    Empty,
}

impl Resp {
    pub fn json(status: u16, v: Value) -> Resp {
        Resp { status, headers: Vec::new(), body: RespBody::Json(v) }
    }
    pub fn ok(v: Value) -> Resp {
        Resp::json(200, v)
    }
    pub fn empty(status: u16) -> Resp {
        Resp { status, headers: Vec::new(), body: RespBody::Empty }
    }
    /// GitHub's error body: `{"message", "documentation_url", "status"}`.
    pub fn error(status: u16, message: &str) -> Resp {
        Resp::json(status, json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}))
    }
    pub fn not_found() -> Resp {
        Resp::error(404, "Not Found")
    }
    /// GitHub's 422 with one validation error.
    pub fn validation(resource: &str, field: &str, code: &str) -> Resp {
        Resp::json(
            422,
            json!({"message": "Validation Failed", "errors": [{"resource": resource, "field": field, "code": code}],
                   "documentation_url": DOCS, "status": "422"}),
        )
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// Who is calling.
#[derive(Clone)]
pub(crate) enum Auth {
    None,
    App,
    /// `credential` is the token itself (for `DELETE /installation/token`).
    Installation {
        id: u64,
        token: Token,
        credential: String,
    },
    /// A user-to-server token from the OAuth web flow (`crate::oauth`), acting for `login`.
    User {
        login: String,
        /// The user's id.
        id: u64,
    },
}

pub(crate) async fn handle(inner: Arc<Inner>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return into_response(Resp::error(413, "Request body too large")),
    };
    let path = parts.uri.path().to_string();
    let query = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(&v.replace('+', " ")))
                })
                .collect()
        })
        .unwrap_or_default();
    let segs = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let req = Req { method: parts.method, path, segs, query, headers: parts.headers, body };
    let resp = dispatch(&inner, req).await;
    into_response(resp)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn dispatch(inner: &Arc<Inner>, req: Req) -> Resp {
    if req.segs.first().map(String::as_str) == Some("_sim") {
        let resp = crate::control::handle(inner, &req);
        inner.changed.send_modify(|n| *n += 1);
        return resp;
    }
    if let Some(resp) = crate::manifest::web(inner, &req)
        .or_else(|| crate::oauth::web(inner, &req))
        .or_else(|| crate::actions::web(inner, &req))
    {
        inner.changed.send_modify(|n| *n += 1);
        return resp;
    }
    let started_ms = inner.now_ms();
    if crate::git::is_git_path(&req.path) {
        let resp = crate::git::handle(inner, &req).await;
        log(inner, &req, resp.status, None, None, started_ms, 0);
        return resp;
    }
    let graphql = req.path == "/graphql";
    if !graphql && let Err(reason) = crate::openapi::check(&req) {
        inner.world().nonconforming.push(crate::world::Nonconforming {
            method: req.method.to_string(),
            path: req.path.clone(),
            reason: reason.clone(),
        });
        tracing::warn!(method = %req.method, path = %req.path, %reason, "nonconforming request");
        let resp =
            Resp::error(400, &format!("github-sim: request does not conform to GitHub's API description: {reason}"));
        log(inner, &req, 400, None, None, started_ms, 0);
        return resp;
    }
    let auth = match authenticate(inner, &req) {
        Ok(a) => a,
        Err(r) => {
            log(inner, &req, r.status, None, None, started_ms, 0);
            return r;
        }
    };
    let inst = match &auth {
        Auth::Installation { id, .. } => Some(*id),
        _ => None,
    };
    // Counted from authentication until the answer is logged (also when the caller goes away).
    let flight = inst.map(|id| InFlight::enter(inner, id));
    let in_flight = flight.as_ref().map_or(0, |f| f.at_entry);
    let operation = if graphql { crate::graphql::operation_name(&req) } else { None };
    if let Some(fault) = crate::faults::pick(inner, graphql, inst.is_some()).await {
        let fault = with_rate_headers(inner, &auth, fault, false);
        drop(flight);
        log(inner, &req, fault.status, operation, inst, started_ms, in_flight);
        return fault;
    }
    if let Some(limited) = primary_limit(inner, &auth) {
        drop(flight);
        log(inner, &req, limited.status, operation.clone(), inst, started_ms, in_flight);
        return limited;
    }
    let resp =
        if graphql { crate::graphql::handle(inner, &auth, &req) } else { crate::rest::route(inner, &auth, &req) };
    crate::hold::after(inner, &req).await;
    let resp = with_rate_headers(inner, &auth, resp, true);
    drop(flight);
    log(inner, &req, resp.status, operation, inst, started_ms, in_flight);
    resp
}

/// One API request of an installation in flight; leaving (drop) takes it off the count.
struct InFlight<'a> {
    inner: &'a Inner,
    installation: u64,
    /// The installation's count once this request was added.
    at_entry: u64,
}

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner, installation: u64) -> Self {
        let mut w = inner.world();
        let n = w.in_flight.entry(installation).or_default();
        *n += 1;
        let at_entry = *n;
        drop(w);
        InFlight { inner, installation, at_entry }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.inner.world().in_flight.get_mut(&self.installation) {
            *n = n.saturating_sub(1);
        }
    }
}

fn log(
    inner: &Inner,
    req: &Req,
    status: u16,
    operation_name: Option<String>,
    installation: Option<u64>,
    started_ms: u64,
    in_flight: u64,
) {
    let finished_ms = inner.now_ms();
    inner.world().requests.push(LoggedRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        status,
        operation_name,
        installation,
        started_ms,
        finished_ms,
        in_flight,
    });
    inner.changed.send_modify(|n| *n += 1);
}

/// The credential of an `Authorization` header: `Bearer X`, `bearer X`, `token X` or bare `X`.
fn credential(req: &Req) -> Option<&str> {
    let h = req.header("authorization")?;
    Some(
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .or_else(|| h.strip_prefix("token "))
            .unwrap_or(h)
            .trim(),
    )
}

fn authenticate(inner: &Inner, req: &Req) -> Result<Auth, Resp> {
    let Some(cred) = credential(req) else { return Ok(Auth::None) };
    if cred.split('.').count() == 3 {
        let client_id = format!("Iv1.{:016x}", inner.app_id);
        return match inner.key.verify_jwt(cred, inner.app_id, &client_id) {
            Ok(()) => Ok(Auth::App),
            Err(msg) => Err(Resp::error(401, &msg)),
        };
    }
    let w = inner.world();
    if let Some(login) = crate::oauth::user_of(&w, cred) {
        let id = w.users.get(&login).map_or(0, |u| u.id);
        return Ok(Auth::User { login, id });
    }
    match w.tokens.get(cred) {
        Some(t) if t.expires_at > OffsetDateTime::now_utc() => {
            Ok(Auth::Installation { id: t.installation, token: t.clone(), credential: cred.to_string() })
        }
        _ => Err(Resp::error(401, "Bad credentials")),
    }
}

fn bucket_key(auth: &Auth) -> Option<u64> {
    match auth {
        Auth::None => Some(0),
        Auth::App => None,
        Auth::Installation { id, .. } => Some(*id),
        // A user's own bucket, apart from installations' (ids are far below 2^48).
        Auth::User { id, .. } => Some((1 << 48) | id),
    }
}

/// The bucket of a caller, rolled over when its window has passed.
fn bucket(w: &mut World, key: u64) -> &mut Bucket {
    let now = OffsetDateTime::now_utc();
    let b = w.buckets.entry(key).or_insert_with(|| Bucket {
        limit: if key == 0 { UNAUTHENTICATED_RATE_LIMIT } else { INSTALLATION_RATE_LIMIT },
        used: 0,
        reset: now + time::Duration::seconds(RATE_LIMIT_WINDOW_SECS),
    });
    if now >= b.reset {
        b.used = 0;
        b.reset = now + time::Duration::seconds(RATE_LIMIT_WINDOW_SECS);
    }
    b
}

/// Refuses a call when the caller's primary bucket is empty: GitHub's 403 with
/// `x-ratelimit-remaining: 0` and the reset time.
fn primary_limit(inner: &Inner, auth: &Auth) -> Option<Resp> {
    let key = bucket_key(auth)?;
    let mut w = inner.world();
    let b = bucket(&mut w, key).clone();
    if b.used < b.limit {
        return None;
    }
    drop(w);
    let msg = match auth {
        Auth::Installation { id, .. } => format!("API rate limit exceeded for installation ID {id}."),
        _ => "API rate limit exceeded for 127.0.0.1.".into(),
    };
    Some(rate_headers(Resp::error(403, &msg), &b))
}

fn rate_headers(resp: Resp, b: &Bucket) -> Resp {
    resp.header("x-ratelimit-limit", b.limit.to_string())
        .header("x-ratelimit-remaining", b.limit.saturating_sub(b.used).to_string())
        .header("x-ratelimit-used", b.used.to_string())
        .header("x-ratelimit-reset", b.reset.unix_timestamp().to_string())
        .header("x-ratelimit-resource", "core")
}

/// Counts the call (a 304 is free, as on GitHub) and adds the rate-limit headers.
fn with_rate_headers(inner: &Inner, auth: &Auth, resp: Resp, count: bool) -> Resp {
    let Some(key) = bucket_key(auth) else { return resp };
    let mut w = inner.world();
    let b = bucket(&mut w, key);
    if count && resp.status != 304 {
        b.used += 1;
    }
    let b = b.clone();
    drop(w);
    rate_headers(resp, &b)
}

/// Leaves `remaining` calls in `installation`'s primary bucket until `reset_in` from now.
pub(crate) fn spend_primary(inner: &Inner, installation: u64, remaining: u64, reset_in: time::Duration) {
    let mut w = inner.world();
    let b = bucket(&mut w, installation);
    b.used = b.limit.saturating_sub(remaining);
    b.reset = OffsetDateTime::now_utc() + reset_in;
}

/// Exhausts every primary bucket until `reset_in` from now (the control API's rate-limit fault).
pub(crate) fn exhaust_primary(inner: &Inner, reset_in: time::Duration) {
    let mut w = inner.world();
    let keys: Vec<u64> = w.installations.keys().copied().chain([0]).collect();
    for k in keys {
        let b = bucket(&mut w, k);
        b.used = b.limit;
        b.reset = OffsetDateTime::now_utc() + reset_in;
    }
}

fn into_response(resp: Resp) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder().status(status);
    let mut has_ct = false;
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-type") {
            has_ct = true;
        }
        if let Ok(v) = HeaderValue::from_str(v) {
            b = b.header(k.as_str(), v);
        }
    }
    b = b.header("x-github-request-id", uuid::Uuid::new_v4().to_string());
    b = b.header("x-github-api-version-selected", "2022-11-28");
    let body = match resp.body {
        RespBody::Json(v) => {
            if !has_ct {
                b = b.header("content-type", "application/json; charset=utf-8");
            }
            Body::from(serde_json::to_vec(&v).expect("json"))
        }
        RespBody::Raw(bytes) => Body::from(bytes),
        RespBody::Empty => Body::empty(),
    };
    b.body(body).expect("response")
}

/// Pages a list as GitHub does: `per_page` (default 30, at most 100) and `page` (from 1), with a
/// `Link` header carrying `next`, `last`, `first` and `prev` where they apply.
pub(crate) fn paginate(inner: &Inner, req: &Req, items: Vec<Value>) -> Resp {
    let per_page = req.q("per_page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
    let page = req.q("page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let base = inner.world().base_url.clone();
    let link = |p: usize, rel: &str| {
        let mut q: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{}={}", crate::world::enc(k), crate::world::enc(v)))
            .collect();
        q.push(format!("per_page={per_page}"));
        q.push(format!("page={p}"));
        format!("<{base}{}?{}>; rel=\"{rel}\"", req.path, q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let resp = Resp::ok(Value::Array(slice));
    if links.is_empty() { resp } else { resp.header("link", links.join(", ")) }
}

/// Revokes every installation token of `installation` (the control API's `revoke-tokens`): calls
/// made with them get 401 `Bad credentials` from now on. Returns how many were revoked.
pub(crate) fn revoke_tokens(inner: &Inner, installation: u64) -> usize {
    let mut w = inner.world();
    let before = w.tokens.len();
    w.tokens.retain(|_, t| t.installation != installation);
    before - w.tokens.len()
}
