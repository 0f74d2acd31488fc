//! The setup page: registering the GitHub App from Foreman's manifest, Probot-style, and then its status.
//!
//! - `GET /`: without App credentials, a form (a personal account or an organisation); with them, the App
//!   (name, link, id: `GET /app`), its installations (`GET /app/installations`) and what is missing (no
//!   installation, `public_url` unset, the App not confirmed by GitHub). Never a secret.
//! - `POST /setup/manifest` (form: `owner` = `personal` | `organization`, `org`, and `admin_token` when
//!   `FOREMAN_ADMIN_TOKEN` is set; without a token only loopback clients may register): answers a page whose
//!   one button posts the manifest (`manifest`, JSON) to `{web}/settings/apps/new?state=…` or
//!   `{web}/organizations/{org}/settings/apps/new?state=…`. The manifest is `app-manifest.json` with its URLs
//!   made from [`SetupOptions::public_url`] (or, unset, the address the page was opened at): the webhook
//!   `{base}/api/github/webhooks`, `redirect_url` `{base}/setup/callback`, `setup_url` `{base}/`.
//! - `GET /setup/callback?code=…&state=…`: checks `state` (issued by this process within the hour, used
//!   once), exchanges `code` (`POST {api}/app-manifests/{code}/conversions`, unauthenticated), stores the
//!   App ([`stored`], mode 0600), hands it to [`Activate`] (the server starts acting on GitHub with it, no
//!   restart) and sends the browser (303) to `{web}/apps/{slug}/installations/new`.
//!
//! Once the server has App credentials (configured, stored, or just registered) registering is refused
//! (409): a second registration would let whoever reaches the page swap the App Foreman acts for.

pub mod stored;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use stored::{StoredApp, StoredError};

/// How long a `state` issued with the form is accepted back on `/setup/callback` (GitHub's codes live an
/// hour too).
pub const STATE_TTL: Duration = Duration::from_secs(3600);

/// How long the code exchange, and listing installations for the status page, may take.
pub const GITHUB_TIMEOUT: Duration = Duration::from_secs(15);

/// The manifest Foreman registers, with placeholder URLs (`app-manifest.json` in the repository).
pub const MANIFEST: &str = include_str!("../../app-manifest.json");

/// Starts using a just-registered App: returns the GitHub client the server now acts with, or why it could
/// not (the App stays stored, and a restart tries again).
pub type Activate =
    Arc<dyn Fn(StoredApp) -> Pin<Box<dyn Future<Output = anyhow::Result<crate::github::Client>> + Send>> + Send + Sync>;

/// What the setup page needs to know.
pub struct SetupOptions {
    /// Where the registered App is stored.
    pub data_dir: PathBuf,
    /// GitHub's REST base URL (`github.api_url`).
    pub api_url: String,
    /// Foreman's public address (`public_url`), without a trailing slash.
    pub public_url: Option<String>,
    /// The admin token, required to register when set.
    pub admin_token: Option<Arc<SecretString>>,
    /// The trigger label, named on the status page.
    pub label: String,
}

/// The App the server acts for, as the status page shows it.
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// Its id.
    pub id: u64,
    /// Its name (`App {id}` when only the id is known).
    pub name: String,
    /// Its slug, when known (registered here, or `triggers.app_slug` configured).
    pub slug: Option<String>,
    /// Its page on GitHub, when known.
    pub html_url: Option<String>,
    /// Where its credentials come from: `"configured"` or `"registered on this page"`.
    pub source: &'static str,
}

impl AppInfo {
    /// The App a stored registration describes.
    pub fn from_stored(app: &StoredApp) -> Self {
        AppInfo {
            id: app.id,
            name: app.name.clone(),
            slug: Some(app.slug.clone()),
            html_url: Some(app.html_url.clone()),
            source: "registered on this page",
        }
    }
}

/// The setup page's state, shared by its handlers (cheap to clone).
#[derive(Clone)]
pub struct Setup {
    inner: Arc<Inner>,
}

struct Inner {
    options: SetupOptions,
    web_url: String,
    activate: Activate,
    /// `state` values handed out, with when.
    states: Mutex<HashMap<String, Instant>>,
    current: RwLock<Option<(AppInfo, crate::github::Client)>>,
    /// One code exchange at a time, so two callbacks cannot both register.
    exchanging: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Setup {
    /// A setup page for `options`, calling `activate` with a registered App.
    pub fn new(options: SetupOptions, activate: Activate) -> Self {
        let web_url = web_url(&options.api_url);
        let http =
            reqwest::Client::builder().timeout(GITHUB_TIMEOUT).build().expect("an HTTP client without TLS roots");
        Setup {
            inner: Arc::new(Inner {
                options,
                web_url,
                activate,
                states: Mutex::default(),
                current: RwLock::default(),
                exchanging: tokio::sync::Mutex::default(),
                http,
            }),
        }
    }

    /// Tells the page which App the server acts for: from now on it shows its status and refuses to register.
    pub fn set_current(&self, app: AppInfo, client: crate::github::Client) {
        *self.inner.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((app, client));
    }

    fn current(&self) -> Option<(AppInfo, crate::github::Client)> {
        self.inner.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The routes `/`, `/setup/manifest` and `/setup/callback`.
pub fn routes<S: Clone + Send + Sync + 'static>(setup: Setup) -> axum::Router<S> {
    axum::Router::new()
        .route("/", axum::routing::get(index))
        .route("/setup/manifest", axum::routing::post(manifest))
        .route("/setup/callback", axum::routing::get(callback))
        .with_state(setup)
}

/// GitHub's web address for its REST base URL: `https://github.com` for `https://api.github.com`, the host
/// of a GitHub Enterprise Server's `https://HOST/api/v3`, otherwise the URL itself (a simulator serves both).
pub fn web_url(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if api == "https://api.github.com" {
        return "https://github.com".into();
    }
    api.strip_suffix("/api/v3").unwrap_or(api).to_owned()
}

/// `app-manifest.json` with its URLs made from `base` (Foreman's address, no trailing slash).
pub fn manifest_for(base: &str) -> Value {
    let mut m: Value = serde_json::from_str(MANIFEST).expect("app-manifest.json is JSON");
    m["hook_attributes"]["url"] = json!(format!("{base}{}", crate::ingress::WEBHOOK_PATH));
    m["redirect_url"] = json!(format!("{base}/setup/callback"));
    // The console signs people in through the App's OAuth client, whose redirect must be one of these.
    m["callback_urls"] = json!([format!("{base}/setup/callback"), format!("{base}/login/callback")]);
    m["setup_url"] = json!(format!("{base}/"));
    m
}

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", include_str!("page.html")).expect("the setup page template parses");
    env
});

fn render(status: StatusCode, context: minijinja::Value) -> Response {
    match TEMPLATES.get_template("page.html").and_then(|t| t.render(context)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the setup page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the setup page could not be rendered\n").into_response()
        }
    }
}

fn js(v: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

fn error_page(status: StatusCode, message: &str) -> Response {
    render(status, minijinja::context! { page => "error", message })
}

/// Foreman's address for links GitHub follows: `public_url`, or the address this request came to.
fn base_url(setup: &Setup, headers: &HeaderMap) -> String {
    if let Some(url) = &setup.inner.options.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost:3000");
    format!("http://{host}")
}

async fn index(State(setup): State<Setup>, headers: HeaderMap) -> Response {
    let mut missing = Vec::new();
    if setup.inner.options.public_url.is_none() {
        missing.push(format!(
            "public_url (FOREMAN_PUBLIC_URL) is not set: GitHub is told to send webhooks to the address this page \
             was opened at, {}, and comments carry no links to session logs",
            base_url(&setup, &headers)
        ));
    }
    let Some((app, client)) = setup.current() else {
        let base = base_url(&setup, &headers);
        let needs_token = setup.inner.options.admin_token.is_some();
        let webhook_url = format!("{base}{}", crate::ingress::WEBHOOK_PATH);
        return render(StatusCode::OK, minijinja::context! { page => "register", missing, needs_token, webhook_url });
    };
    // What GitHub says of the App (its name, slug and page, also for configured credentials).
    let app = match tokio::time::timeout(GITHUB_TIMEOUT, client.app()).await {
        Ok(Ok(live)) => AppInfo {
            id: live.id,
            name: live.name,
            slug: Some(live.slug),
            html_url: live.html_url.or(app.html_url),
            source: app.source,
        },
        Ok(Err(e)) => {
            missing.insert(0, format!("GitHub did not confirm the App (GET /app): {}", client.scrub(&e.to_string())));
            app
        }
        Err(_) => app,
    };
    let (installations, installations_error) = match tokio::time::timeout(GITHUB_TIMEOUT, client.installations()).await
    {
        Ok(Ok(list)) => (list, None),
        Ok(Err(e)) => (Vec::new(), Some(client.scrub(&e.to_string()).into_owned())),
        Err(_) => (Vec::new(), Some(format!("GitHub did not answer within {GITHUB_TIMEOUT:?}"))),
    };
    let install_url = app.slug.as_ref().map(|slug| format!("{}/apps/{slug}/installations/new", setup.inner.web_url));
    if installations.is_empty() && installations_error.is_none() {
        missing.insert(
            0,
            "no installation yet: install the App on the accounts whose repositories Foreman works in".into(),
        );
    }
    let installations: Vec<Value> =
        installations.iter().map(|i| json!({"account": i.account.login, "target_type": i.account.kind})).collect();
    let app = js(&json!({"id": app.id, "name": app.name, "html_url": app.html_url, "source": app.source}));
    let installations = js(&Value::from(installations));
    let label = setup.inner.options.label.clone();
    render(
        StatusCode::OK,
        minijinja::context! { page => "status", app, installations, installations_error, install_url, missing, label },
    )
}

/// Whether the request may register an App: the admin token when one is configured, a loopback client
/// otherwise, and not one a proxy forwarded (`Forwarded`, `X-Forwarded-For`: behind a reverse proxy on the
/// same machine every client would look local). `Err` is the status and the sentence saying why not.
fn may_register(
    setup: &Setup,
    peer: Option<SocketAddr>,
    forwarded: bool,
    token: Option<&str>,
) -> Result<(), (StatusCode, &'static str)> {
    match &setup.inner.options.admin_token {
        Some(expected) => {
            if constant_time_eq(token.unwrap_or_default().as_bytes(), expected.expose_secret().as_bytes()) {
                Ok(())
            } else {
                Err((StatusCode::UNAUTHORIZED, "Enter the admin token (FOREMAN_ADMIN_TOKEN) to register."))
            }
        }
        None if peer.is_some_and(|p| p.ip().is_loopback()) && !forwarded => Ok(()),
        None => Err((
            StatusCode::FORBIDDEN,
            "Without FOREMAN_ADMIN_TOKEN the App can be registered from this machine only (a loopback address, \
             not through a proxy). Set the token, or open this page through an SSH tunnel.",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (da, db) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    da.iter().zip(db.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `login` can be a GitHub account login: 1–39 letters, digits or single hyphens inside.
fn valid_login(login: &str) -> bool {
    (1..=39).contains(&login.len())
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !login.starts_with('-')
        && !login.ends_with('-')
}

async fn manifest(State(setup): State<Setup>, request: Request) -> Response {
    if setup.current().is_some() {
        return error_page(StatusCode::CONFLICT, "Foreman already has a GitHub App; this page only shows its status.");
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let forwarded = headers.contains_key(header::FORWARDED) || headers.contains_key("x-forwarded-for");
    if let Err((status, why)) = may_register(&setup, peer, forwarded, form.get("admin_token").map(String::as_str)) {
        tracing::warn!(status = status.as_u16(), "registering a GitHub App from the setup page refused");
        return error_page(status, why);
    }
    let state = hex::encode(rand::random::<[u8; 16]>());
    let web = &setup.inner.web_url;
    let (action, account) = match form.get("owner").map(String::as_str) {
        Some("organization") => {
            let org = form.get("org").map(|o| o.trim()).unwrap_or_default();
            if !valid_login(org) {
                return error_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Enter the organisation's login (letters, digits, hyphens).",
                );
            }
            (format!("{web}/organizations/{org}/settings/apps/new?state={state}"), format!("the organisation {org}"))
        }
        _ => (format!("{web}/settings/apps/new?state={state}"), "your personal account".to_owned()),
    };
    {
        let mut states = setup.inner.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        states.retain(|_, issued| issued.elapsed() < STATE_TTL);
        states.insert(state, Instant::now());
    }
    let base = base_url(&setup, &headers);
    let manifest = manifest_for(&base);
    let webhook_url = js(&manifest["hook_attributes"]["url"]);
    let permissions = js(&manifest["default_permissions"]);
    let events = js(&manifest["default_events"]);
    let manifest = manifest.to_string();
    render(
        StatusCode::OK,
        minijinja::context! { page => "post", action, account, manifest, webhook_url, permissions, events },
    )
}

#[derive(serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

async fn callback(State(setup): State<Setup>, Query(query): Query<Callback>) -> Response {
    let _one_at_a_time = setup.inner.exchanging.lock().await;
    if setup.current().is_some() {
        return error_page(StatusCode::CONFLICT, "Foreman already has a GitHub App; this page only shows its status.");
    }
    let issued = query
        .state
        .as_deref()
        .and_then(|s| setup.inner.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(s));
    if issued.is_none_or(|at| at.elapsed() >= STATE_TTL) {
        tracing::warn!("setup callback with an unknown or expired state refused");
        return error_page(
            StatusCode::BAD_REQUEST,
            "This link back from GitHub was not started from this page within the hour (its state is unknown). Start again.",
        );
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric())) else {
        return error_page(StatusCode::BAD_REQUEST, "GitHub sent no code back.");
    };
    let app = match exchange(&setup, &code).await {
        Ok(app) => app,
        Err(why) => {
            tracing::error!(reason = %why, "exchanging the App manifest code failed");
            return error_page(StatusCode::BAD_GATEWAY, &format!("Registering the App failed: {why}"));
        }
    };
    if let Err(e) = app.save(&setup.inner.options.data_dir) {
        tracing::error!(error = %e, "storing the registered App failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("Storing the App failed: {e}"));
    }
    tracing::info!(
        app_id = app.id,
        slug = %app.slug,
        path = %setup.inner.options.data_dir.join(stored::FILE).display(),
        "GitHub App registered from the setup page and stored"
    );
    let install = format!("{}/apps/{}/installations/new", setup.inner.web_url, app.slug);
    let info = AppInfo::from_stored(&app);
    match (setup.inner.activate)(app).await {
        Ok(client) => setup.set_current(info, client),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "starting with the registered App failed; restart Foreman");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "The App is registered and stored, but Foreman could not start with it: {e:#}. Restart Foreman."
                ),
            );
        }
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, install)]).into_response()
}

/// Why the code exchange failed, for the page and the log (never a secret: GitHub's answer is not quoted).
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("GitHub could not be reached: {0}")]
    Unreachable(String),
    #[error("GitHub answered {0} (the code is good for one exchange within an hour; start again)")]
    Status(StatusCode),
    #[error(transparent)]
    Answer(#[from] StoredError),
}

async fn exchange(setup: &Setup, code: &str) -> Result<StoredApp, ExchangeError> {
    let url = format!("{}/app-manifests/{code}/conversions", setup.inner.options.api_url.trim_end_matches('/'));
    let response = setup
        .inner
        .http
        .post(&url)
        .header(header::ACCEPT, "application/vnd.github+json")
        .header(header::USER_AGENT, "foreman")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    let status = response.status();
    if status != StatusCode::CREATED {
        return Err(ExchangeError::Status(status));
    }
    let body = response.bytes().await.map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    Ok(StoredApp::from_conversion(&body)?)
}
