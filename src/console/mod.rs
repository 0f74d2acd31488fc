//! The console: people sign in with GitHub and see, in the browser, the jobs and session logs of the
//! repositories they can read.
//!
//! - `GET /login[?next=/path]`: starts GitHub's OAuth web flow for the App's client ([`signin`]).
//! - `GET /login/callback?code=…&state=…`: checks `state`, exchanges the code, reads `GET /user` and the
//!   repositories the person can see, sets the session cookie, and sends the browser on to `next`.
//! - `POST /logout` (CSRF token): ends the session.
//! - `GET /sessions/{id}`: a session's log as Human / Events / Errors ([`pages`]); `GET /sessions/{id}/events`
//!   its live tail as server-sent events; `GET /sessions/{id}/log` the JSON-lines file (download).
//! - `GET /jobs/{owner}/{repo}/{issue}`: a job, its attempts (each session linking its log), its failure
//!   ledger, its audit trail and, for people with write on the repository, a cancel button; `POST /jobs/{owner}/{repo}/{issue}/cancel` (CSRF token) cancels it through the one
//!   cancel path ([`crate::dispatch::Canceller`]); `POST …/retry` queues it again, as `/foreman retry` does.
//! - `GET /repos/{owner}/{repo}`: a repository's jobs and history (with links to the issue, the pull request
//!   and its checks), its constitution's effective rules and their origins, its session cost per day
//!   against its daily budget (an SVG chart drawn on the server), and its plans' progress ([`repo`]).
//! - `GET /overview`: running sessions, the queue in run order with what each job waits for, stuck jobs and
//!   recent outcomes, of the repositories the person can read (every repository, the counts per state, the
//!   inbox's depth and GitHub's quota per installation, for admins).
//! - `GET /deliveries`, `GET /deliveries/{id}`, `POST /deliveries/{id}/replay` (CSRF token): the stored
//!   deliveries with their decisions, and what Foreman would decide now ([`deliveries`]; admins only).
//!
//! Access: a person sees a repository's jobs and logs when GitHub lists it among the repositories their
//! own token can see (`GET /user/installations`, `GET /user/installations/{installation_id}/repositories`,
//! cached [`signin::ACCESS_TTL`]); anything else answers 404, as GitHub hides what one cannot read. Cancelling
//! needs write, checked at the time with Foreman's installation token
//! (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`). Logins in `console.admins` see every
//! repository. Not signed in, a page answers the sign-in page, which comes back to it.

pub mod chart;
pub mod deliveries;
pub mod history;
pub mod logview;
pub mod overview;
pub mod pages;
pub mod repo;
pub mod signin;

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, RwLock};

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

/// The `[console]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The App's OAuth client id (`FOREMAN_CONSOLE_CLIENT_ID`). Unset: the client id of the App registered
    /// on the setup page (`DATA_DIR/github-app.json`); with neither, signing in is off.
    pub client_id: Option<String>,
    /// The App's OAuth client secret (`FOREMAN_CONSOLE_CLIENT_SECRET`), with `client_id`.
    pub client_secret: Option<SecretString>,
    /// GitHub logins that see every repository (server-wide views), compared without regard to case
    /// (`FOREMAN_CONSOLE_ADMINS`, a list).
    pub admins: Vec<String>,
}

/// What acts on GitHub for the console: Foreman's client and the one cancel path. Set when the server has
/// App credentials (at start, or once the setup page registered the App).
#[derive(Clone)]
pub struct Backend {
    /// Foreman's GitHub client (installation tokens), for permission checks.
    pub client: crate::github::Client,
    /// The one cancel path (also reports a retried job queued).
    pub canceller: crate::dispatch::Canceller,
    /// The scheduler, for retries.
    pub scheduler: crate::scheduler::Scheduler,
    /// The server's `[triggers]` as the inbox worker decides with them, for replays.
    pub triggers: crate::decide::DecideConfig,
    /// The cache of constitutions the runner and the inbox worker share (read with the installation's
    /// token, kept a minute), for the repository page's rules and for replays (a repository's `[triggers]`
    /// replace the server's for its deliveries).
    pub constitutions: crate::constitution::fetch::Cache,
}

/// Where the server puts the current [`Backend`] (cheap to clone).
#[derive(Clone, Default)]
pub struct BackendSlot(Arc<RwLock<Option<Backend>>>);

impl BackendSlot {
    /// Replaces the backend (`None`: no GitHub side).
    pub fn set(&self, backend: Option<Backend>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = backend;
    }

    /// The current backend.
    pub fn get(&self) -> Option<Backend> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the console needs to know.
pub struct ConsoleOptions {
    /// The `[console]` table.
    pub config: ConsoleConfig,
    /// GitHub's REST base URL (`github.api_url`).
    pub api_url: String,
    /// Foreman's public address (`public_url`), without a trailing slash: links, the OAuth callback, and
    /// whether the cookie is `Secure` (an `https://` address).
    pub public_url: Option<String>,
    /// The data directory (the App registered on the setup page; session logs under `sessions/`).
    pub data_dir: PathBuf,
    /// The store.
    pub store: crate::store::Store,
    /// The `[triggers]` table: what a replay on the deliveries page decides with while Foreman has no GitHub
    /// App (with one, [`Backend::triggers`] and the repository's constitution).
    pub triggers: crate::decide::DecideConfig,
    /// Foreman's GitHub side, when it has one.
    pub backend: BackendSlot,
}

/// The console's state, shared by its handlers (cheap to clone).
#[derive(Clone)]
pub struct Console {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub options: ConsoleOptions,
    pub web_url: String,
    pub sessions: signin::Sessions,
    pub http: reqwest::Client,
}

impl Console {
    /// A console for `options`.
    pub fn new(options: ConsoleOptions) -> Self {
        let web_url = crate::setup::web_url(&options.api_url);
        let http = reqwest::Client::builder()
            .timeout(signin::GITHUB_TIMEOUT)
            .build()
            .expect("an HTTP client without TLS roots");
        Console { inner: Arc::new(Inner { options, web_url, sessions: signin::Sessions::default(), http }) }
    }
}

/// The console's routes.
pub fn routes<S: Clone + Send + Sync + 'static>(console: Console) -> axum::Router<S> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/login", get(signin::login))
        .route("/login/callback", get(signin::callback))
        .route("/logout", post(signin::logout))
        .route("/sessions/{id}", get(pages::session_page))
        .route("/sessions/{id}/events", get(pages::session_events))
        .route("/sessions/{id}/log", get(pages::session_download))
        .route("/jobs/{owner}/{repo}/{issue}", get(pages::job_page))
        .route("/jobs/{owner}/{repo}/{issue}/cancel", post(pages::cancel))
        .route("/jobs/{owner}/{repo}/{issue}/retry", post(pages::retry))
        .route("/overview", get(overview::overview))
        .route("/repos/{owner}/{repo}", get(repo::repo_page))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/deliveries/{id}/replay", post(deliveries::replay))
        .with_state(console)
}

/// The viewer's address for a session's log, `{public_url}/sessions/{id}`: the link Foreman posts.
pub fn session_url(public_url: &str, session_id: &str) -> String {
    format!("{}/sessions/{session_id}", public_url.trim_end_matches('/'))
}

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("signin.html", include_str!("templates/signin.html")),
        ("message.html", include_str!("templates/message.html")),
        ("session.html", include_str!("templates/session.html")),
        ("job.html", include_str!("templates/job.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("repo.html", include_str!("templates/repo.html")),
        ("deliveries.html", include_str!("templates/deliveries.html")),
        ("delivery.html", include_str!("templates/delivery.html")),
    ] {
        env.add_template(name, source).expect("the console's templates parse");
    }
    env
});

/// Renders `template` with `context` as an HTML page, `Cache-Control: no-store` (pages carry a CSRF token).
pub(crate) fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    match TEMPLATES.get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered\n").into_response()
        }
    }
}

/// A page with one message.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(status, "message.html", minijinja::context! { title, text })
}

/// GitHub's 404: what one may not read is not there.
pub(crate) fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "There is nothing here you can see.")
}
