//! Signing in with GitHub (the App's OAuth web flow) and the console's sessions.
//!
//! Sessions are kept in memory, keyed by a random 256-bit id carried in the `foreman_session` cookie
//! (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when `public_url` is `https://`), and end after
//! [`SESSION_TTL`] or at `/logout`. In memory, not in the store: a session holds the person's GitHub token,
//! which Foreman should not write to disk, and a restart only asks people to sign in again (one click while
//! GitHub remembers the authorisation). Each session has its own CSRF token, required in every form posted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Console, message};

/// How long the code exchange and each read of the person's access may take.
pub const GITHUB_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a sign-in may take from `/login` to `/login/callback` (GitHub's codes live ten minutes).
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// How long a session lasts (GitHub's user-to-server tokens expire after 8 hours when expiry is on).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long the repositories a person can see are trusted before they are read again with their token: a
/// minute, so access removed on GitHub stops showing within a minute, and a page view costs no GitHub call
/// most of the time (two calls, plus one per installation, when it does).
pub const ACCESS_TTL: Duration = Duration::from_secs(60);
/// The session cookie's name.
pub const COOKIE: &str = "foreman_session";
/// The cookie binding a sign-in's `state` to the browser that started it (`Path=/login`, ten minutes), so a
/// callback link made by someone else (their code, their state) cannot sign this browser in as them.
pub const STATE_COOKIE: &str = "foreman_login_state";
/// Sessions kept at once; past it the oldest are dropped (memory stays bounded, about 2 KiB each plus the
/// repository names).
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in person.
#[derive(Clone)]
pub struct Viewer {
    /// Their GitHub login.
    pub login: String,
    /// Their GitHub user id.
    pub user_id: u64,
    /// Their user-to-server token.
    token: SecretString,
    /// This session's CSRF token (hex), required in every form posted.
    pub csrf: String,
    /// `owner/name` (lowercase) → whether GitHub says they can push, as of `access_at`.
    repos: BTreeMap<String, bool>,
    access_at: Instant,
    expires: Instant,
    /// Listed in `console.admins`.
    pub admin: bool,
}

impl Viewer {
    /// Whether they can read `repo` (`owner/name`): listed for them by GitHub, or an admin.
    pub fn can_read(&self, repo: &str) -> bool {
        self.admin || self.repos.contains_key(&repo.to_ascii_lowercase())
    }

    /// The repositories GitHub listed for them (lowercase `owner/name`, in name order).
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        self.repos.keys().map(String::as_str)
    }
}

/// The sessions and sign-ins in progress.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Viewer>>,
    /// `state` → where to go after signing in, and when it was issued.
    pending: Mutex<HashMap<String, (String, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    fn insert(&self, id: String, viewer: Viewer) {
        let mut live = lock(&self.live);
        live.retain(|_, v| v.expires > Instant::now());
        while live.len() >= MAX_SESSIONS {
            let Some(oldest) = live.iter().min_by_key(|(_, v)| v.expires).map(|(k, _)| k.clone()) else { break };
            live.remove(&oldest);
        }
        live.insert(id, viewer);
    }
}

/// The OAuth client: configured, or the App registered on the setup page.
fn client(console: &Console) -> Option<(String, SecretString)> {
    let c = &console.inner.options.config;
    if let (Some(id), Some(secret)) = (&c.client_id, &c.client_secret) {
        return Some((id.clone(), secret.clone()));
    }
    match crate::setup::StoredApp::load(&console.inner.options.data_dir) {
        Ok(Some(app)) => Some((app.client_id, app.client_secret)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "reading the registered App's OAuth client failed");
            None
        }
    }
}

/// Foreman's address as the browser sees it: `public_url`, or the `Host` the request came to.
pub(crate) fn base_url(console: &Console, headers: &HeaderMap) -> String {
    if let Some(url) = &console.inner.options.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost:3000");
    format!("http://{host}")
}

/// A path on this server to come back to: starts with one `/`, no scheme nor host.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() < 512 => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// The hex value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && (32..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_owned())
    })
}

/// The session id in the request's cookie.
fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).filter(|v| v.len() == 64)
}

/// `; Secure` when Foreman is served over HTTPS.
fn secure(console: &Console) -> &'static str {
    if console.inner.options.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" }
}

/// The signed-in person, their access read again from GitHub when older than [`ACCESS_TTL`]. `None`
/// when not signed in, the session expired, or GitHub no longer takes their token.
pub async fn viewer(console: &Console, headers: &HeaderMap) -> Option<Viewer> {
    let id = session_id(headers)?;
    let found = lock(&console.inner.sessions.live).get(&id).cloned();
    let mut viewer = found.filter(|v| v.expires > Instant::now())?;
    if viewer.access_at.elapsed() >= ACCESS_TTL {
        match access(console, &viewer.token).await {
            Ok(repos) => {
                viewer.repos = repos;
                viewer.access_at = Instant::now();
                lock(&console.inner.sessions.live).insert(id, viewer.clone());
            }
            Err(Failure::Refused) => {
                lock(&console.inner.sessions.live).remove(&id);
                return None;
            }
            // GitHub unreachable: keep what was read last rather than lock everyone out.
            Err(Failure::Unavailable(why)) => tracing::warn!(reason = %why, "reading a person's access failed"),
        }
    }
    Some(viewer)
}

/// The sign-in page (not signed in), which comes back to `next`.
pub(crate) fn signin_page(next: &str) -> Response {
    let href = format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
    super::render(StatusCode::OK, "signin.html", minijinja::context! { href })
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: to GitHub's authorize page.
pub(crate) async fn login(State(console): State<Console>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let Some((client_id, _)) = client(&console) else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in is not set up",
            "Foreman has no OAuth client: register the App on the setup page (/), or set console.client_id and \
             console.client_secret.",
        );
    };
    let state = hex::encode(rand::random::<[u8; 16]>());
    {
        let mut pending = lock(&console.inner.sessions.pending);
        pending.retain(|_, (_, at)| at.elapsed() < STATE_TTL);
        pending.insert(state.clone(), (local_path(q.next.as_deref()), Instant::now()));
    }
    let redirect = format!("{}/login/callback", base_url(&console, &headers));
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let to = format!(
        "{}/login/oauth/authorize?client_id={}&redirect_uri={}&state={state}",
        console.inner.web_url,
        enc(&client_id),
        enc(&redirect)
    );
    let bind = format!(
        "{STATE_COOKIE}={state}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={}{}",
        STATE_TTL.as_secs(),
        secure(&console)
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, to), (header::SET_COOKIE, bind)]).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /login/callback`: checks `state`, exchanges the code, reads who it is and what they can see, and
/// sets the session cookie.
pub(crate) async fn callback(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let started_here = q.state.is_some() && cookie(&headers, STATE_COOKIE) == q.state;
    let issued =
        q.state.as_deref().filter(|_| started_here).and_then(|s| lock(&console.inner.sessions.pending).remove(s));
    let Some((next, _)) = issued.filter(|(_, at)| at.elapsed() < STATE_TTL) else {
        tracing::warn!("sign-in callback with an unknown or expired state refused");
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in not recognised",
            "This link back from GitHub was not started from this browser in the last ten minutes. Sign in again.",
        );
    };
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() < 256) else {
        return message(StatusCode::BAD_REQUEST, "Sign-in refused", "GitHub sent no code back.");
    };
    let Some((client_id, client_secret)) = client(&console) else {
        return message(StatusCode::SERVICE_UNAVAILABLE, "Signing in is not set up", "Foreman has no OAuth client.");
    };
    let redirect = format!("{}/login/callback", base_url(&console, &headers));
    let token = match exchange(&console, &client_id, &client_secret, &code, &redirect).await {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(reason = %why, "exchanging a sign-in code failed");
            return message(StatusCode::BAD_GATEWAY, "Sign-in failed", &why);
        }
    };
    let user = match get_json(&console, &token, "/user").await {
        Ok(u) => u,
        Err(f) => return message(StatusCode::BAD_GATEWAY, "Sign-in failed", &f.to_string()),
    };
    let (Some(login), Some(user_id)) = (user["login"].as_str(), user["id"].as_u64()) else {
        return message(StatusCode::BAD_GATEWAY, "Sign-in failed", "GitHub's answer for the user has no login.");
    };
    let repos = match access(&console, &token).await {
        Ok(r) => r,
        Err(f) => return message(StatusCode::BAD_GATEWAY, "Sign-in failed", &f.to_string()),
    };
    let admin = console.inner.options.config.admins.iter().any(|a| a.eq_ignore_ascii_case(login));
    let id = hex::encode(rand::random::<[u8; 32]>());
    let viewer = Viewer {
        login: login.to_owned(),
        user_id,
        token,
        csrf: hex::encode(rand::random::<[u8; 32]>()),
        repos,
        access_at: Instant::now(),
        expires: Instant::now() + SESSION_TTL,
        admin,
    };
    tracing::info!(login, repositories = viewer.repos.len(), admin, "signed in to the console");
    console.inner.sessions.insert(id.clone(), viewer);
    let session =
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}", SESSION_TTL.as_secs(), secure(&console));
    let unbind = format!("{STATE_COOKIE}=; Path=/login; HttpOnly; SameSite=Lax; Max-Age=0");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    for c in [session, unbind] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// `POST /logout` (form `csrf`): ends the session and clears the cookie.
pub(crate) async fn logout(State(console): State<Console>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(id) = session_id(&headers) else { return signin_page("/") };
    let viewer = lock(&console.inner.sessions.live).get(&id).cloned();
    if let Some(v) = viewer {
        if !csrf_ok(&v, &body) {
            return message(StatusCode::FORBIDDEN, "Refused", "The form is not from this session.");
        }
        lock(&console.inner.sessions.live).remove(&id);
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, "/".to_owned())]).into_response()
}

/// Whether the form `body` carries the session's CSRF token (compared in constant time).
pub(crate) fn csrf_ok(viewer: &Viewer, body: &[u8]) -> bool {
    use sha2::Digest;
    let given =
        form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let (a, b) = (sha2::Sha256::digest(given.as_bytes()), sha2::Sha256::digest(viewer.csrf.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why reading GitHub for a person failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// GitHub refused the token (401): the person must sign in again.
    #[error("GitHub no longer accepts this sign-in")]
    Refused,
    /// GitHub could not be reached, or answered something else.
    #[error("{0}")]
    Unavailable(String),
}

async fn exchange(
    console: &Console,
    client_id: &str,
    client_secret: &SecretString,
    code: &str,
    redirect: &str,
) -> Result<SecretString, String> {
    let url = format!("{}/login/oauth/access_token", console.inner.web_url);
    let form = [
        ("client_id", client_id),
        ("client_secret", client_secret.expose_secret()),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = console
        .inner
        .http
        .post(&url)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, "foreman")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("GitHub could not be reached: {}", e.without_url()))?;
    let status = response.status();
    let v: serde_json::Value =
        response.json().await.map_err(|_| format!("GitHub answered {status} without JSON to the code exchange"))?;
    match v["access_token"].as_str() {
        Some(t) if !t.is_empty() => Ok(SecretString::from(t.to_owned())),
        // GitHub's error codes and descriptions carry no secret.
        _ => Err(format!(
            "GitHub refused the code: {} (sign in again)",
            v["error_description"].as_str().or(v["error"].as_str()).unwrap_or("no token in the answer")
        )),
    }
}

/// `GET {api}{path}` with the person's token.
async fn get_json(console: &Console, token: &SecretString, path: &str) -> Result<serde_json::Value, Failure> {
    let url = format!("{}{path}", console.inner.options.api_url.trim_end_matches('/'));
    let response = console
        .inner
        .http
        .get(&url)
        .bearer_auth(token.expose_secret())
        .header(header::ACCEPT, "application/vnd.github+json")
        .header(header::USER_AGENT, "foreman")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| Failure::Unavailable(format!("GitHub could not be reached: {}", e.without_url())))?;
    match response.status() {
        StatusCode::OK => response.json().await.map_err(|e| Failure::Unavailable(format!("GitHub's answer: {e}"))),
        StatusCode::UNAUTHORIZED => Err(Failure::Refused),
        s => Err(Failure::Unavailable(format!("GitHub answered {s} to GET {path}"))),
    }
}

/// The repositories the person's token can see (lowercase `owner/name` → push), through every
/// installation of the App they can see, 100 per page.
async fn access(console: &Console, token: &SecretString) -> Result<BTreeMap<String, bool>, Failure> {
    let mut repos = BTreeMap::new();
    let mut installations = Vec::new();
    for page in 1..=10 {
        let v = get_json(console, token, &format!("/user/installations?per_page=100&page={page}")).await?;
        let list = v["installations"].as_array().cloned().unwrap_or_default();
        installations.extend(list.iter().filter_map(|i| i["id"].as_u64()));
        if list.len() < 100 {
            break;
        }
    }
    for id in installations {
        for page in 1..=50 {
            let path = format!("/user/installations/{id}/repositories?per_page=100&page={page}");
            let v = get_json(console, token, &path).await?;
            let list = v["repositories"].as_array().cloned().unwrap_or_default();
            for r in &list {
                if let Some(name) = r["full_name"].as_str() {
                    repos.insert(name.to_ascii_lowercase(), r["permissions"]["push"].as_bool().unwrap_or(false));
                }
            }
            if list.len() < 100 {
                break;
            }
        }
    }
    Ok(repos)
}

/// Whether GitHub listed push for `viewer` on `repo` when their access was last read.
pub(crate) fn pushes(viewer: &Viewer, repo: &str) -> bool {
    viewer.repos.get(&repo.to_ascii_lowercase()).copied().unwrap_or(false)
}
