//! The client: one octocrab HTTP stack, app auth, the retry loop, pacing, concurrency bounds and the ETag cache.
//!
//! octocrab is used as the HTTP layer only (`Octocrab::execute`, with no octocrab auth and its retry compiled
//! out), so that this module sees every status and header, sets `Authorization` itself, and decodes GitHub's
//! answers into Foreman's own types.
//!
//! Every request body passes through the [`SecretRegistry`] ([`ClientOptions::secrets`]) in [`Client::send`]
//! before it is sent: the one choke point that keeps Foreman's secrets out of what it writes on GitHub.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backon::Retryable;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::GithubError;
use super::accounting::{Accounting, Quota, millis};
use super::auth::{AppAuth, InstallationToken, parse_expiry};
use super::config::GithubConfig;
use super::retry::{Failure, RetryPolicy, RetryState, Verdict, classify, header_u64};
use super::secrets::SecretRegistry;
use crate::ids::InstallationId;

/// The REST API version Foreman is written against (`X-GitHub-Api-Version`).
const API_VERSION: &str = "2022-11-28";
/// The most pages one paginated read follows (100 items each), so a runaway listing is bounded.
pub(crate) const MAX_PAGES: usize = 50;

/// Tuning of the client. [`Default`] is what production uses; every wait is here so tests can shorten it.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Retries, pacing and concurrency; see [`RetryPolicy`].
    pub retry: RetryPolicy,
    /// An installation token is replaced when it has less than this left. Default 5 min: tokens live one
    /// hour, and a call (with its retries) must not start with a token that expires under it.
    pub token_refresh_margin: Duration,
    /// How long a collaborator's permission is trusted before it is asked again. Default 5 min: a revoked
    /// write access stops being honoured within that time, and a busy thread costs one call per user.
    pub permission_ttl: Duration,
    /// How long a project's id, Status field and option ids are trusted. Default 10 min: columns are renamed
    /// rarely, and a move to an unknown column refreshes them at once.
    pub project_ttl: Duration,
    /// Below this fraction of its hourly quota an installation starts no new sessions
    /// ([`super::Client::quota_ok`]). Default 0.10.
    pub quota_threshold: f64,
    /// Entries kept in the ETag cache. Default 512; the oldest entry is dropped first.
    pub etag_cache_entries: usize,
    /// The secret values every request body is scrubbed of (see [`super::secrets`]). The client adds the
    /// private key's lines when built and every installation token when minted. Default: an empty registry
    /// of this client's own; `foreman serve` passes the one it built at start, shared with the sessions.
    pub secrets: SecretRegistry,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
            permission_ttl: Duration::from_secs(300),
            project_ttl: Duration::from_secs(600),
            quota_threshold: 0.10,
            etag_cache_entries: 512,
            secrets: SecretRegistry::default(),
        }
    }
}

/// Whose credentials a call carries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Auth {
    /// The app's JWT (`/app/...` endpoints).
    App,
    /// The installation's cached token.
    Installation(InstallationId),
}

impl Auth {
    fn key(self) -> Option<u64> {
        match self {
            Self::App => None,
            Self::Installation(i) => Some(i.0),
        }
    }
}

/// One request as the operations describe it.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// The endpoint template, for metrics, logs and errors.
    pub endpoint: &'static str,
    /// Path and query below the API root (`/repos/o/r/issues/1`), or an absolute URL from a `Link` header.
    pub path: String,
    pub body: Option<serde_json::Value>,
    pub auth: Auth,
    /// Send `If-None-Match` and serve a 304 from the cache.
    pub conditional: bool,
    /// The request creates something and is not idempotent: it is resent only after a refusal that proves
    /// GitHub did not act (a rate limit), never after a 5xx or a lost connection.
    pub creates: bool,
    /// Counts toward the per-installation mutation pacing.
    pub paced: bool,
    /// A GraphQL POST: an HTTP 200 with `errors[].type == RATE_LIMITED` is a rate limit.
    pub graphql: bool,
    /// The caller sends this again on its own schedule (the delivery-log poller, every
    /// `github.poll_interval_secs`): a failure is returned at once, not retried here, so it is retried in
    /// one layer only and the caller sees it in seconds, not after minutes of backoff.
    pub scheduled: bool,
}

impl Call {
    pub(crate) fn new(method: Method, endpoint: &'static str, path: String, auth: Auth) -> Self {
        let paced = method != Method::GET && method != Method::HEAD;
        Self {
            method,
            endpoint,
            path,
            body: None,
            auth,
            conditional: false,
            creates: false,
            paced,
            graphql: false,
            scheduled: false,
        }
    }
    pub(crate) fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
    pub(crate) fn conditional(mut self) -> Self {
        self.conditional = true;
        self
    }
    pub(crate) fn creates(mut self) -> Self {
        self.creates = true;
        self
    }
    pub(crate) fn scheduled(mut self) -> Self {
        self.scheduled = true;
        self
    }
    pub(crate) fn unpaced(mut self) -> Self {
        self.paced = false;
        self
    }
}

/// A successful answer's headers and body. A 304 served from the cache comes back with the cached body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self, endpoint: &'static str) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| GithubError::Unexpected { endpoint, message: format!("the answer did not decode: {e}") })
    }

    /// The `rel="next"` URL of the `Link` header.
    pub(crate) fn next_page(&self) -> Option<String> {
        let link = self.headers.get(header::LINK)?.to_str().ok()?;
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            params
                .split(';')
                .any(|p| p.trim() == "rel=\"next\"")
                .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        })
    }
}

/// Per-installation lane: bounds concurrency and paces mutations.
#[derive(Debug)]
struct Lane {
    permits: Semaphore,
    last_mutation: tokio::sync::Mutex<Option<Instant>>,
}

/// Bounded map of URL → (ETag, body).
#[derive(Debug, Default)]
struct EtagCache {
    entries: HashMap<(Option<u64>, String), (HeaderValue, Bytes)>,
    order: VecDeque<(Option<u64>, String)>,
}

impl EtagCache {
    fn insert(&mut self, key: (Option<u64>, String), value: (HeaderValue, Bytes), cap: usize) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > cap.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
    }
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;
/// Boards by (organisation, number, field name), with when they were read.
type ProjectCache = HashMap<(String, u64, String), (Arc<super::projects::ProjectBoard>, Instant)>;

/// The one GitHub client. Cheap to clone; clones share caches, lanes and accounting.
///
/// Build it with [`Client::new`] or [`Client::from_config`]; every operation is a method (see the `rest`
/// and `projects` modules). Errors are [`GithubError`].
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    http: octocrab::Octocrab,
    /// Scheme, authority and path prefix of the REST API, without a trailing slash.
    api: String,
    /// The GraphQL endpoint: `{api}/graphql`, or `https://HOST/api/graphql` for GitHub Enterprise Server.
    pub(crate) graphql_url: String,
    app: AppAuth,
    pub(crate) options: ClientOptions,
    tokens: Mutex<HashMap<u64, TokenSlot>>,
    lanes: Mutex<HashMap<Option<u64>, Arc<Lane>>>,
    etags: Mutex<EtagCache>,
    pub(crate) accounting: Accounting,
    pub(crate) permissions: Mutex<HashMap<(String, u64), (super::types::Permission, Instant)>>,
    pub(crate) projects: Mutex<ProjectCache>,
}

enum AttemptError {
    Retry(Failure),
    Fatal(GithubError),
}

impl Client {
    /// A client for the app `app_id` with its PEM private key, against `api_url`
    /// (`https://api.github.com`, `https://HOST/api/v3`, or a simulator's `http://127.0.0.1:PORT`).
    ///
    /// The key's lines are added to [`ClientOptions::secrets`].
    ///
    /// Errors: [`GithubError::Credentials`] for a key that is not an RSA PEM or a URL that does not parse.
    pub fn new(
        app_id: u64,
        private_key: &SecretString,
        api_url: &str,
        options: ClientOptions,
    ) -> Result<Self, GithubError> {
        let app = AppAuth::new(app_id, private_key.expose_secret().as_bytes())?;
        options.secrets.register_private_key(private_key);
        let api = api_url.trim_end_matches('/').to_owned();
        let uri: http::Uri = api.parse().map_err(|_| GithubError::Credentials(format!("'{api}' is not a URL")))?;
        let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => (s.to_owned(), a.to_string()),
            _ => return Err(GithubError::Credentials(format!("'{api}' is not an absolute URL"))),
        };
        let graphql_url = match api.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{api}/graphql"),
        };
        // The base URI carries no path: this module sends absolute URLs, and octocrab would otherwise prefix
        // its base path to the GraphQL URL of GitHub Enterprise Server.
        let http = octocrab::Octocrab::builder()
            .base_uri(format!("{scheme}://{authority}"))
            .map_err(|e| GithubError::Credentials(format!("'{api}': {e}")))?
            .set_connect_timeout(Some(options.retry.request_timeout))
            .set_read_timeout(Some(options.retry.request_timeout))
            .set_write_timeout(Some(options.retry.request_timeout))
            .build()
            .map_err(|e| GithubError::Credentials(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api,
                graphql_url,
                app,
                options,
                tokens: Mutex::default(),
                lanes: Mutex::default(),
                etags: Mutex::default(),
                accounting: Accounting::default(),
                permissions: Mutex::default(),
                projects: Mutex::default(),
            }),
        })
    }

    /// A client from the `[github]` configuration (app id, inline key or key file, API URL).
    ///
    /// Errors: [`GithubError::Credentials`] when the app id or key is missing or unreadable.
    pub fn from_config(config: &GithubConfig, options: ClientOptions) -> Result<Self, GithubError> {
        let app_id = config.app_id.ok_or_else(|| GithubError::Credentials("github.app_id is not set".into()))?;
        let key = match (&config.private_key, &config.private_key_path) {
            (Some(k), _) => k.clone(),
            (None, Some(path)) => SecretString::from(std::fs::read_to_string(path).map_err(|e| {
                GithubError::Credentials(format!("reading the private key file {}: {e}", path.display()))
            })?),
            (None, None) => return Err(GithubError::Credentials("no private key is configured".into())),
        };
        Self::new(app_id, &key, &config.api_url, options)
    }

    /// The app's id.
    pub fn app_id(&self) -> u64 {
        self.inner.app.app_id()
    }

    /// The registry every request body is scrubbed against ([`ClientOptions::secrets`]).
    pub fn secrets(&self) -> &SecretRegistry {
        &self.inner.options.secrets
    }

    /// `text` as the client would send it: every secret it knows and every token shape replaced
    /// ([`SecretRegistry::scrub`]). For comparing what is on GitHub with what would be written.
    pub fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.inner.options.secrets.scrub(text)
    }

    /// Whether an installation has enough of its hourly quota left (at least
    /// [`ClientOptions::quota_threshold`] of `x-ratelimit-limit`) for a new session to start. Replies to
    /// commands do not ask this: they always go out. True when nothing is known yet or the window has reset.
    pub fn quota_ok(&self, installation: InstallationId) -> bool {
        self.inner.accounting.quota_ok(Some(installation.0), self.inner.options.quota_threshold, SystemTime::now())
    }

    /// The latest quota seen for an installation, from its REST answers' rate-limit headers.
    pub fn quota(&self, installation: InstallationId) -> Option<Quota> {
        self.inner.accounting.quota(Some(installation.0))
    }

    /// The latest quota seen for every installation Foreman has called GitHub for since it started (the
    /// core REST limit: `x-ratelimit-limit`, `-remaining`, `-reset` of its latest answer), by installation
    /// id. Kept in memory: empty after a restart until the first calls.
    pub fn quotas(&self) -> Vec<(InstallationId, Quota)> {
        self.inner.accounting.installation_quotas().into_iter().map(|(i, q)| (InstallationId(i), q)).collect()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.inner.api, path)
        }
    }

    fn lane(&self, key: Option<u64>) -> Arc<Lane> {
        let mut lanes = self.inner.lanes.lock().expect("lanes lock");
        lanes
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Lane {
                    permits: Semaphore::new(self.inner.options.retry.max_concurrent.max(1)),
                    last_mutation: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    fn token_slot(&self, installation: InstallationId) -> TokenSlot {
        self.inner.tokens.lock().expect("tokens lock").entry(installation.0).or_default().clone()
    }

    /// The installation's token, minted when there is none or it is within the refresh margin of expiring.
    pub(crate) async fn installation_token(&self, installation: InstallationId) -> Result<SecretString, GithubError> {
        let slot = self.token_slot(installation);
        let mut cached = slot.lock().await;
        if let Some(t) = cached.as_ref()
            && t.fresh(SystemTime::now(), self.inner.options.token_refresh_margin)
        {
            return Ok(t.token.clone());
        }
        let fresh = self.mint(installation, None).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token if it is still `stale` (another call may have replaced it already).
    async fn forget_token(&self, installation: InstallationId, stale: &SecretString) {
        let slot = self.token_slot(installation);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.token.expose_secret() == stale.expose_secret()) {
            *cached = None;
        }
    }

    /// `POST /app/installations/{installation_id}/access_tokens` with an optional scoping body.
    ///
    /// Minting twice is harmless (the first token simply goes unused), so this is retried like a read. The
    /// token is added to [`ClientOptions::secrets`] before it is returned.
    pub(crate) fn mint<'a>(
        &'a self,
        installation: InstallationId,
        scope: Option<serde_json::Value>,
    ) -> Pin<Box<dyn Future<Output = Result<InstallationToken, GithubError>> + Send + 'a>> {
        Box::pin(async move {
            const EP: &str = "POST /app/installations/{installation_id}/access_tokens";
            let call =
                Call::new(Method::POST, EP, format!("/app/installations/{installation}/access_tokens"), Auth::App)
                    .body(scope.unwrap_or_else(|| serde_json::json!({})))
                    .unpaced();
            let reply = self.send(call).await?;
            #[derive(serde::Deserialize)]
            struct Minted {
                token: SecretString,
                expires_at: String,
            }
            let m: Minted = reply.json(EP)?;
            let expires_at = parse_expiry(&m.expires_at).ok_or_else(|| GithubError::Unexpected {
                endpoint: EP,
                message: format!("expires_at '{}' is not RFC 3339", m.expires_at),
            })?;
            self.inner.options.secrets.register_minted(&m.token, expires_at);
            Ok(InstallationToken { token: m.token, expires_at })
        })
    }

    /// Sends a call through the retry loop. Success is 2xx (or a 304 served from the cache); every other
    /// outcome is a typed error.
    ///
    /// Every string in the body is scrubbed first ([`SecretRegistry::scrub_json`]): whatever an operation
    /// writes (a comment, a pull request, a check run, a GraphQL mutation), no secret Foreman holds and no
    /// token-shaped string reaches GitHub.
    pub(crate) async fn send(&self, mut call: Call) -> Result<Reply, GithubError> {
        if let Some(body) = call.body.as_mut() {
            self.inner.options.secrets.scrub_json(body);
        }
        let policy = &self.inner.options.retry;
        let refreshed = AtomicBool::new(false);
        let attempts = AtomicU32::new(0);
        let mut state = RetryState::default();
        let call = &call;
        let result = (|| self.attempt(call, &refreshed, &attempts))
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &AttemptError| match e {
                AttemptError::Retry(f) => !call.scheduled && (!call.creates || f.request_was_refused()),
                AttemptError::Fatal(_) => false,
            })
            .adjust(|e, proposed| match e {
                AttemptError::Retry(f) => policy.next_delay(&mut state, f, proposed, SystemTime::now()),
                AttemptError::Fatal(_) => None,
            })
            .notify(|e, wait| {
                if let AttemptError::Retry(f) = e {
                    let cause = match f {
                        Failure::PrimaryRateLimit { .. } => "primary_rate_limit",
                        Failure::SecondaryRateLimit { .. } => "secondary_rate_limit",
                        Failure::Server { .. } => "server_error",
                        Failure::Connection(_) => "connection",
                    };
                    self.inner.accounting.retried(call.endpoint, cause);
                    tracing::warn!(endpoint = call.endpoint, installation = ?call.auth.key(), %f, wait_ms = millis(wait), "retrying GitHub call");
                }
            })
            .await;
        result.map_err(|e| match e {
            AttemptError::Fatal(e) => e,
            AttemptError::Retry(Failure::PrimaryRateLimit { reset }) => {
                GithubError::RateLimited { endpoint: call.endpoint, reset }
            }
            AttemptError::Retry(Failure::SecondaryRateLimit { .. }) => {
                GithubError::RateLimited { endpoint: call.endpoint, reset: None }
            }
            AttemptError::Retry(f) if call.creates => {
                GithubError::Ambiguous { endpoint: call.endpoint, last: f.to_string() }
            }
            AttemptError::Retry(f) => GithubError::Unavailable {
                endpoint: call.endpoint,
                attempts: attempts.load(Ordering::Relaxed),
                last: f.to_string(),
            },
        })
    }

    async fn attempt(&self, call: &Call, refreshed: &AtomicBool, attempts: &AtomicU32) -> Result<Reply, AttemptError> {
        let key = call.auth.key();
        if let Some(until) = self.inner.accounting.blocked_until(key, SystemTime::now()) {
            // The quota is known to be spent: wait for the reset without spending a request.
            return Err(AttemptError::Retry(Failure::PrimaryRateLimit { reset: Some(until) }));
        }
        let lane = self.lane(key);
        let _permit = lane.permits.acquire().await.expect("lane semaphore is never closed");
        if call.paced {
            let mut last = lane.last_mutation.lock().await;
            if let Some(at) = *last {
                let next = at + self.inner.options.retry.mutation_interval;
                tokio::time::sleep_until(next.into()).await;
            }
            *last = Some(Instant::now());
        }
        let url = self.url(&call.path);
        let cache_key = (key, url.clone());
        loop {
            attempts.fetch_add(1, Ordering::Relaxed);
            let token = match call.auth {
                Auth::App => self.inner.app.jwt(SystemTime::now()).map_err(AttemptError::Fatal)?,
                Auth::Installation(i) => self.installation_token(i).await.map_err(AttemptError::Fatal)?,
            };
            let cached = if call.conditional {
                self.inner.etags.lock().expect("etag lock").entries.get(&cache_key).cloned()
            } else {
                None
            };
            let request =
                self.request(call, &url, &token, cached.as_ref().map(|c| &c.0)).map_err(AttemptError::Fatal)?;
            let sent = tokio::time::timeout(self.inner.options.retry.request_timeout, async {
                let response = self.inner.http.execute(request).await.map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok::<_, String>((parts.status, parts.headers, body))
            })
            .await;
            let (status, headers, body) = match sent {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    self.inner.accounting.record(call.endpoint, key, None, None);
                    return Err(AttemptError::Retry(Failure::Connection(e)));
                }
                Err(_) => {
                    self.inner.accounting.record(call.endpoint, key, None, None);
                    return Err(AttemptError::Retry(Failure::Connection("timed out".into())));
                }
            };
            self.inner.accounting.record(call.endpoint, key, Some(status.as_u16()), Some(&headers));
            let verdict = match classify(status, &headers, &body) {
                Verdict::Ok if call.graphql => graphql_rate_limit(&headers, &body).map_or(Verdict::Ok, Verdict::Retry),
                v => v,
            };
            match verdict {
                Verdict::Ok => {
                    if status == StatusCode::NOT_MODIFIED {
                        if let Some((_, cached_body)) = cached {
                            return Ok(Reply { headers, body: cached_body });
                        }
                        // A 304 to a request without If-None-Match cannot happen; treat it as a failure to retry.
                        return Err(AttemptError::Retry(Failure::Server { status: 304 }));
                    }
                    if call.conditional
                        && let Some(etag) = headers.get(header::ETAG)
                    {
                        self.inner.etags.lock().expect("etag lock").insert(
                            cache_key.clone(),
                            (etag.clone(), body.clone()),
                            self.inner.options.etag_cache_entries,
                        );
                    }
                    return Ok(Reply { headers, body });
                }
                Verdict::Unauthorized => match call.auth {
                    Auth::Installation(i) if !refreshed.swap(true, Ordering::Relaxed) => {
                        tracing::warn!(
                            endpoint = call.endpoint,
                            installation = i.0,
                            "401: refreshing the installation token once"
                        );
                        self.forget_token(i, &token).await;
                        continue;
                    }
                    _ => return Err(AttemptError::Fatal(GithubError::Unauthorized { endpoint: call.endpoint })),
                },
                Verdict::Retry(f) => return Err(AttemptError::Retry(f)),
                Verdict::Refused => return Err(AttemptError::Fatal(refusal(call.endpoint, status, &body))),
            }
        }
    }

    fn request(
        &self,
        call: &Call,
        url: &str,
        token: &SecretString,
        etag: Option<&HeaderValue>,
    ) -> Result<http::Request<String>, GithubError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| GithubError::Credentials("a token holds characters a header cannot".into()))?;
        auth.set_sensitive(true);
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(url)
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION);
        if let Some(etag) = etag {
            builder = builder.header(header::IF_NONE_MATCH, etag.clone());
        }
        let body = match &call.body {
            Some(b) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                b.to_string()
            }
            None => String::new(),
        };
        builder.body(body).map_err(|e| GithubError::Unexpected {
            endpoint: call.endpoint,
            message: format!("building the request: {e}"),
        })
    }

    /// GETs every page of a listing (following `Link: rel="next"`, at most [`MAX_PAGES`]), taking the items
    /// out of each page with `items`.
    pub(crate) async fn paginate<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: String,
        auth: Auth,
        items: impl Fn(serde_json::Value) -> Option<serde_json::Value>,
    ) -> Result<Vec<T>, GithubError> {
        let mut out = Vec::new();
        let mut next = Some(path);
        let mut pages = 0;
        while let Some(path) = next.take() {
            let reply = self.send(Call::new(Method::GET, endpoint, path, auth)).await?;
            let page: serde_json::Value = reply.json(endpoint)?;
            let list = items(page).unwrap_or(serde_json::Value::Null);
            let list: Vec<T> = serde_json::from_value(list)
                .map_err(|e| GithubError::Unexpected { endpoint, message: format!("a page did not decode: {e}") })?;
            out.extend(list);
            pages += 1;
            if pages < MAX_PAGES {
                next = reply.next_page();
            }
        }
        Ok(out)
    }
}

/// A GraphQL answer that is GitHub's rate limit (HTTP 200, `errors[].type == "RATE_LIMITED"`).
fn graphql_rate_limit(headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<TypedError>,
    }
    #[derive(serde::Deserialize)]
    struct TypedError {
        #[serde(default, rename = "type")]
        kind: Option<String>,
    }
    let parsed: Errors = serde_json::from_slice(body).ok()?;
    // With the points spent (`x-ratelimit-remaining: 0`) it is the primary limit: wait for the reset.
    // Otherwise it is a secondary limit: `retry-after` when given, else the doubling minimum.
    parsed.errors.iter().any(|e| e.kind.as_deref() == Some("RATE_LIMITED")).then(|| {
        if let Some(after) = header_u64(headers, "retry-after") {
            Failure::SecondaryRateLimit { retry_after: Some(Duration::from_secs(after)) }
        } else if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
            Failure::PrimaryRateLimit { reset: super::retry::reset_time(headers) }
        } else {
            Failure::SecondaryRateLimit { retry_after: None }
        }
    })
}

/// GitHub's error body (`message`, `errors[]`) as a typed error.
fn refusal(endpoint: &'static str, status: StatusCode, body: &[u8]) -> GithubError {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    let b: Body = serde_json::from_slice(body).unwrap_or_default();
    let mut message = b.message;
    for e in &b.errors {
        let detail = e
            .get("message")
            .or_else(|| e.get("code"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string());
        let code = e.get("code").and_then(|v| v.as_str()).unwrap_or("");
        message.push_str(&format!("; {detail}"));
        if !code.is_empty() && !detail.contains(code) {
            message.push_str(&format!(" ({code})"));
        }
    }
    match status {
        StatusCode::NOT_FOUND => GithubError::NotFound { endpoint },
        StatusCode::CONFLICT => GithubError::Conflict { endpoint, message },
        StatusCode::UNPROCESSABLE_ENTITY => GithubError::Unprocessable { endpoint, message },
        StatusCode::FORBIDDEN => GithubError::Forbidden { endpoint, message },
        s => GithubError::Unexpected { endpoint, message: format!("HTTP {}: {message}", s.as_u16()) },
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_page_is_found() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/issues/1/comments?page=3>; rel=\"next\", <https://api.github.com/repositories/1/issues/1/comments?page=5>; rel=\"last\"",
            ),
        );
        let reply = Reply { headers, body: Bytes::new() };
        assert_eq!(
            reply.next_page().as_deref(),
            Some("https://api.github.com/repositories/1/issues/1/comments?page=3")
        );
        let last = Reply { headers: HeaderMap::new(), body: Bytes::new() };
        assert_eq!(last.next_page(), None);
    }

    #[test]
    fn refusals_become_typed_errors() {
        let body = br#"{"message":"Validation Failed","errors":[{"resource":"Label","code":"already_exists","field":"name"}]}"#;
        match refusal("POST /repos/{owner}/{repo}/labels", StatusCode::UNPROCESSABLE_ENTITY, body) {
            GithubError::Unprocessable { message, .. } => assert!(message.contains("already_exists"), "{message}"),
            e => panic!("{e:?}"),
        }
        assert!(refusal("GET /x", StatusCode::NOT_FOUND, b"").is_not_found());
        assert!(matches!(refusal("PUT /x", StatusCode::CONFLICT, b"{}"), GithubError::Conflict { .. }));
        assert_eq!(seg("needs review/é"), "needs%20review%2F%C3%A9");
    }

    #[test]
    fn graphql_rate_limit_is_an_ok_status_with_errors() {
        let limited = br#"{"data":null,"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded"}]}"#;
        let mut spent = HeaderMap::new();
        spent.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert!(matches!(graphql_rate_limit(&spent, limited), Some(Failure::PrimaryRateLimit { .. })));
        assert!(matches!(graphql_rate_limit(&HeaderMap::new(), limited), Some(Failure::SecondaryRateLimit { .. })));
        let other = br#"{"data":{"node":null},"errors":[{"type":"NOT_FOUND","message":"no"}]}"#;
        assert_eq!(graphql_rate_limit(&HeaderMap::new(), other), None);
    }
}
