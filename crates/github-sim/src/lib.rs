#![recursion_limit = "256"]
//! github-sim: a stand-in for GitHub to test and demonstrate Foreman against.
//!
//! It serves, on one loopback port: the REST subset Foreman uses (checked against GitHub's OpenAPI
//! description), GraphQL at `/graphql` (validated against GitHub's public schema), git smart HTTP
//! (`/{owner}/{name}.git`), webhooks to a configured URL, GitHub Actions (workflow dispatch, runs, jobs,
//! and a simulated runner that executes dispatched workflows' `run:` steps on this machine), and a control
//! API under `/_sim` (see README.md). Start it from a test with [`GithubSim::start`]:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let sim = github_sim::GithubSim::start(github_sim::SimConfig::new(dir.path())).await?;
//! sim.create_repo("acme", "widgets", &[("README.md", "hi")])?;
//! let (number, _node) = sim.create_issue("acme/widgets", "Fix it", "body", "alice")?;
//! # let _ = number; Ok(()) }
//! ```

mod actions;
mod auth;
mod control;
mod deps;
pub mod descriptions;
mod faults;
mod git;
mod graphql;
mod hold;
mod hooks;
mod manifest;
mod oauth;
mod openapi;
mod ops;
mod rest;
mod server;
mod subs;
mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use actions::RunSummary;
pub use faults::Faults;
pub use world::Permission;

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where deliveries are POSTed; `None` records them without sending (status code 0).
    pub webhook_url: Option<String>,
    /// The webhook secret for `X-Hub-Signature-256`.
    pub webhook_secret: String,
    /// Where repositories (`repos/`), `app.json` and `app.pem` live. An existing `app.pem` is reused.
    pub state_dir: PathBuf,
    /// Address to listen on; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// Installation token lifetime; GitHub's is one hour. Shorten it to test expiry.
    pub token_ttl: Duration,
    /// The app id (`iss` of app JWTs).
    pub app_id: u64,
    /// The app slug; its bot is `{slug}[bot]`.
    pub app_slug: String,
    /// Whether `projects_v2_item.edited` carries `changes.field_value.from`/`to` (GitHub has sent
    /// them since 2024; turn off to exercise the "read the item over GraphQL" path).
    pub project_item_from_to: bool,
    /// Whether comments the app writes name it in `performed_via_github_app` (default yes); turn off to
    /// exercise readers that must recognise the app's comments by their author and content alone.
    pub app_comments_name_app: bool,
    /// A folder whose GitHub API descriptions replace the built-in ones (`github/rest/api.github.com.json`
    /// or its `.zst`, and `github/graphql/schema.graphql`); `None` (the default) uses the copies built
    /// into the binary. The first simulator started in a process decides for the whole process.
    pub descriptions_dir: Option<PathBuf>,
    /// The App's OAuth client secret for the web flow (`/login/oauth/access_token`) until an App is
    /// registered from a manifest (which gets its own). Default `sim-client-secret`.
    pub client_secret: String,
    /// How many workflow runs the simulated Actions runner executes at once (`--runners`); later ones stay
    /// `queued` until one ends. 0: no runner is online, so every run stays `queued` until it is cancelled
    /// (as on GitHub when a workflow's self-hosted runners are offline). Default 4.
    pub runners: usize,
}

impl SimConfig {
    /// Defaults: no webhook URL, secret `sim-secret`, a free loopback port, one-hour tokens,
    /// app id 1001 with slug `foreman`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        SimConfig {
            webhook_url: None,
            webhook_secret: "sim-secret".into(),
            state_dir: state_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_ttl: Duration::from_secs(3600),
            app_id: 1001,
            app_slug: "foreman".into(),
            project_item_from_to: true,
            app_comments_name_app: true,
            descriptions_dir: None,
            client_secret: "sim-client-secret".into(),
            runners: 4,
        }
    }
}

/// Validates `value` against the schema `name` of `#/components/schemas` in GitHub's OpenAPI
/// description (the one the simulator uses, see [`descriptions`]), e.g. `"issue"`. `Err` carries the
/// reasons.
pub fn validate_schema(name: &str, value: &Value) -> Result<(), String> {
    openapi::check_component(name, value)
}

/// Validates a webhook payload against the OpenAPI description's `x-webhooks` schema of `event`
/// and `action` (`webhook-{event}-{action}`, underscores as dashes, e.g.
/// `webhook-issue-dependencies-blocked-by-added`). See [`validate_schema`].
pub fn validate_webhook(event: &str, action: &str, payload: &Value) -> Result<(), String> {
    let name = format!("webhook-{}-{}", event.replace('_', "-"), action.replace('_', "-"));
    validate_schema(&name, payload)
}

/// Entry point.
pub struct GithubSim;

impl GithubSim {
    /// Binds, writes `app.json` and `app.pem` into the state directory, and serves until the
    /// returned handle is dropped.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        descriptions::select(config.descriptions_dir.as_deref())?;
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating the state directory {}", config.state_dir.display()))?;
        let pem_path = config.state_dir.join("app.pem");
        let key = match std::fs::read_to_string(&pem_path) {
            Ok(pem) => auth::AppKey::from_pem(&pem)?,
            Err(_) => auth::AppKey::generate()?,
        };
        std::fs::write(&pem_path, &key.private_pem)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        std::fs::write(
            config.state_dir.join("app.json"),
            serde_json::to_vec_pretty(&json!({
                "app_id": config.app_id, "slug": config.app_slug, "bot_login": format!("{}[bot]", config.app_slug),
                "api_url": url, "private_key_path": pem_path, "webhook_secret": config.webhook_secret,
            }))?,
        )?;
        let (hook_tx, hook_rx) = mpsc::unbounded_channel();
        let (delivered, _) = watch::channel(0u64);
        let (changed, _) = watch::channel(0u64);
        let (actions, actions_rx) = actions::runner::Runtime::new(config.runners);
        let repos_dir = config.state_dir.join("repos");
        std::fs::create_dir_all(&repos_dir)?;
        let inner = Arc::new(server::Inner {
            world: Mutex::new({
                let mut w = world::World::new(url.clone(), config.app_id, config.app_slug.clone());
                w.oauth.client_secret = config.client_secret.clone();
                w
            }),
            key,
            app_id: config.app_id,
            config: config.clone(),
            repos_dir,
            hook_tx,
            delivered,
            changed,
            faults: Mutex::new(Faults::default()),
            webhook_url: Mutex::new(config.webhook_url.clone()),
            started: std::time::Instant::now(),
            holds: Default::default(),
            actions,
        });
        let hooks_task = tokio::spawn(hooks::run(inner.clone(), hook_rx));
        let runner_task = tokio::spawn(actions::runner::manage(inner.clone(), actions_rx));
        let app_inner = inner.clone();
        let app =
            axum::Router::new().fallback(move |req: axum::extract::Request| server::handle(app_inner.clone(), req));
        let server_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "github-sim server stopped");
            }
        });
        Ok(SimHandle { inner, url, addr, tasks: vec![hooks_task, runner_task, server_task] })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    inner: Arc<server::Inner>,
    url: String,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn check<T>(r: Result<T, server::Resp>) -> anyhow::Result<T> {
    r.map_err(|e| {
        let msg = match &e.body {
            server::RespBody::Json(v) => v.to_string(),
            _ => String::new(),
        };
        anyhow::anyhow!("github-sim: {} {msg}", e.status)
    })
}

impl SimHandle {
    /// Sends later deliveries (and redeliveries) to `url`; `None` leaves them undelivered (status 0).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *self.inner.webhook_url.lock().expect("webhook url lock") = url;
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (REST at `/`, GraphQL at `/graphql`).
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The app id.
    pub fn app_id(&self) -> u64 {
        self.inner.app_id
    }
    /// The app slug.
    pub fn app_slug(&self) -> &str {
        &self.inner.config.app_slug
    }
    /// The app's bot login, `{slug}[bot]`.
    pub fn bot_login(&self) -> String {
        format!("{}[bot]", self.inner.config.app_slug)
    }
    /// The app's private key, PKCS#8 PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.inner.key.private_pem
    }
    /// The webhook secret deliveries are signed with.
    pub fn webhook_secret(&self) -> &str {
        &self.inner.config.webhook_secret
    }
    /// The on-disk bare repository of `owner/name`.
    pub fn git_dir(&self, full_name: &str) -> Option<PathBuf> {
        self.inner.world().repos.get(full_name).map(|r| r.git_dir.clone())
    }
    /// The clone URL of `owner/name` (git smart HTTP).
    pub fn clone_url(&self, full_name: &str) -> String {
        format!("{}/{full_name}.git", self.url)
    }
    /// The installation on `account`, created on first use.
    pub fn installation_id(&self, account: &str) -> u64 {
        self.inner.world().installation_for(account)
    }
    /// An app JWT valid for nine minutes (for tests that talk to the API directly).
    pub fn app_jwt(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"iat": now - 60, "exp": now + 540, "iss": self.inner.app_id.to_string()});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.inner.key.private_pem.as_bytes()).expect("own key");
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).expect("sign")
    }

    /// The App's OAuth client id and secret (`crate::oauth`): the secret the manifest conversion handed out
    /// when the App was registered from one, else the one made at start.
    pub fn oauth_client(&self) -> (String, String) {
        let w = self.inner.world();
        (oauth::client_id(self.inner.app_id), oauth::client_secret(&w))
    }

    /// `POST /_sim/users`.
    pub fn create_user(&self, login: &str, permission: Permission, kind: &str) -> Value {
        ops::create_user(&self.inner, login, permission, kind)
    }
    /// `POST /_sim/repos`: a repository with `files` committed on `main`.
    pub fn create_repo(&self, owner: &str, name: &str, files: &[(&str, &str)]) -> anyhow::Result<Value> {
        let files = files.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect();
        check(ops::create_repo(&self.inner, owner, name, &files))
    }
    /// `POST /_sim/repos/{owner}/{repo}/protection`: refuse (or allow) pushes to the default branch.
    pub fn set_protected(&self, full_name: &str, protected: bool) -> anyhow::Result<()> {
        let mut w = self.inner.world();
        let r = w.repos.get_mut(full_name).ok_or_else(|| anyhow::anyhow!("no repository {full_name}"))?;
        r.protected = protected;
        Ok(())
    }
    /// Commits `content` at `path` on the default branch as `user` and emits `push`; returns the commit id.
    pub fn push_file(&self, repo: &str, path: &str, content: &str, user: &str) -> anyhow::Result<String> {
        check(ops::push_file(&self.inner, repo, path, content, user))
    }
    /// `POST /_sim/repos/{owner}/{repo}/issues`: returns `(number, node_id)`.
    pub fn create_issue(&self, repo: &str, title: &str, body: &str, user: &str) -> anyhow::Result<(u64, String)> {
        let i = check(ops::create_issue(&self.inner, repo, title, Some(body), user, &[]))?;
        Ok((i.number, i.node_id))
    }
    /// `POST /_sim/repos/{owner}/{repo}/issues/{number}/labels`.
    pub fn add_label(&self, repo: &str, number: u64, label: &str, user: &str) -> anyhow::Result<()> {
        check(ops::add_labels(&self.inner, repo, number, &[label.to_string()], user)).map(drop)
    }
    /// `DELETE /_sim/repos/{owner}/{repo}/issues/{number}/labels/{label}?user=`.
    pub fn remove_label(&self, repo: &str, number: u64, label: &str, user: &str) -> anyhow::Result<()> {
        check(ops::remove_label(&self.inner, repo, number, label, user)).map(drop)
    }
    /// `POST /_sim/repos/{owner}/{repo}/issues/{number}/comments`: returns the comment id.
    pub fn comment(&self, repo: &str, number: u64, body: &str, user: &str) -> anyhow::Result<u64> {
        let c = check(ops::create_comment(&self.inner, repo, number, body, user, false))?;
        Ok(c["id"].as_u64().unwrap_or_default())
    }
    /// `PATCH /_sim/repos/{owner}/{repo}/comments/{id}`: edits a comment as `user`.
    pub fn edit_comment(&self, repo: &str, id: u64, body: &str, user: &str) -> anyhow::Result<()> {
        check(ops::update_comment(&self.inner, repo, id, body, user)).map(drop)
    }
    /// `PATCH /_sim/repos/{owner}/{repo}/issues/{number}` with `state` `open` or `closed`.
    pub fn set_issue_state(&self, repo: &str, number: u64, state: &str, user: &str) -> anyhow::Result<()> {
        check(ops::update_issue(&self.inner, repo, number, None, None, Some(state), None, user)).map(drop)
    }
    /// `PATCH /repos/{owner}/{repo}/issues/{number}` by `user`: a new title and/or body (`None` keeps it);
    /// emits `issues.edited` with `changes` when something changed.
    pub fn edit_issue(
        &self,
        repo: &str,
        number: u64,
        title: Option<&str>,
        body: Option<&str>,
        user: &str,
    ) -> anyhow::Result<()> {
        check(ops::update_issue(&self.inner, repo, number, title, body.map(Some), None, None, user)).map(drop)
    }
    /// `POST /_sim/repos/{owner}/{repo}/pulls`: a pull request from `head` into `base` by `user`.
    pub fn create_pull(&self, repo: &str, head: &str, base: &str, title: &str, user: &str) -> anyhow::Result<u64> {
        let v = check(ops::create_pull(&self.inner, repo, head, base, title, None, false, user))?;
        Ok(v["number"].as_u64().unwrap_or_default())
    }
    /// The database id of issue `number` of `repo` (what `issue_id` and `sub_issue_id` take), if it exists.
    pub fn issue_id(&self, repo: &str, number: u64) -> Option<u64> {
        self.inner.world().repos.get(repo).and_then(|r| r.issues.get(&number)).map(|i| i.id)
    }
    /// `POST /_sim/repos/{owner}/{repo}/issues/{number}/dependencies/blocked_by` as `user`: issue
    /// `number` of `repo` becomes blocked by issue `blocker` of `blocker_repo` (any repository);
    /// emits `issue_dependencies` `blocked_by_added` and `blocking_added`.
    pub fn add_blocked_by(
        &self,
        repo: &str,
        number: u64,
        blocker_repo: &str,
        blocker: u64,
        user: &str,
    ) -> anyhow::Result<()> {
        let id =
            self.issue_id(blocker_repo, blocker).ok_or_else(|| anyhow::anyhow!("no issue {blocker_repo}#{blocker}"))?;
        check(deps::add(&self.inner, repo, number, id, user)).map(drop)
    }
    /// `DELETE /_sim/repos/{owner}/{repo}/issues/{number}/dependencies/blocked_by/{issue_id}?user=`:
    /// removes the link to issue `blocker` of `blocker_repo`; emits `blocked_by_removed` and
    /// `blocking_removed`.
    pub fn remove_blocked_by(
        &self,
        repo: &str,
        number: u64,
        blocker_repo: &str,
        blocker: u64,
        user: &str,
    ) -> anyhow::Result<()> {
        let id =
            self.issue_id(blocker_repo, blocker).ok_or_else(|| anyhow::anyhow!("no issue {blocker_repo}#{blocker}"))?;
        check(deps::remove(&self.inner, repo, number, id, user)).map(drop)
    }
    /// The blockers of issue `number` of `repo`, as `(repository full name, number)`, oldest link first.
    pub fn blocked_by(&self, repo: &str, number: u64) -> Vec<(String, u64)> {
        let w = self.inner.world();
        let Some(id) = w.repos.get(repo).and_then(|r| r.issues.get(&number)).map(|i| i.id) else { return Vec::new() };
        w.dependencies.iter().filter(|d| d.blocked == id).filter_map(|d| deps::locate(&w, d.blocking)).collect()
    }
    /// `POST /_sim/repos/{owner}/{repo}/pulls/{number}/merge` as `user`: the pull request is merged
    /// and closed, and the open issues its body closes (`Closes #N`, `Fixes #N`, `Resolves #N`) are
    /// closed, each with its `issues.closed` webhook.
    pub fn merge_pull(&self, repo: &str, number: u64, user: &str) -> anyhow::Result<()> {
        check(deps::merge(&self.inner, repo, number, user)).map(drop)
    }
    /// `POST /_sim/repos/{owner}/{repo}/issues/{number}/sub_issues` as `user`: issue `child` of `child_repo`
    /// (same owner) becomes a sub-issue of `repo#number`, as a person adds one on github.com; emits
    /// `sub_issues` `sub_issue_added` and `parent_issue_added`.
    pub fn add_sub_issue(
        &self,
        repo: &str,
        number: u64,
        child_repo: &str,
        child: u64,
        user: &str,
    ) -> anyhow::Result<()> {
        let id = sub_issue_id(&self.inner, child_repo, child)?;
        check(subs::add(&self.inner, repo, number, id, false, user)).map(drop)
    }
    /// `DELETE /_sim/repos/{owner}/{repo}/issues/{number}/sub_issues/{child}?user=&repo=`: removes the
    /// sub-issue; emits `sub_issue_removed` and `parent_issue_removed`.
    pub fn remove_sub_issue(
        &self,
        repo: &str,
        number: u64,
        child_repo: &str,
        child: u64,
        user: &str,
    ) -> anyhow::Result<()> {
        let id = sub_issue_id(&self.inner, child_repo, child)?;
        check(subs::remove(&self.inner, repo, number, id, user)).map(drop)
    }
    /// The sub-issues of `repo#number` as `(repository full name, number)`, in priority order.
    pub fn sub_issues(&self, repo: &str, number: u64) -> Vec<(String, u64)> {
        let w = self.inner.world();
        let Some(id) = w.repos.get(repo).and_then(|r| r.issues.get(&number)).map(|i| i.id) else { return Vec::new() };
        w.sub_issues.iter().filter(|l| l.parent == id).filter_map(|l| subs::find(&w, l.child)).collect()
    }
    /// `POST /_sim/hold`: carries out the next API request whose method is `method` and whose path ends with
    /// `suffix`, after letting `skip` such requests through, then holds its answer until
    /// [`Self::release_hold`] (or a minute). [`Self::held`] counts answers held now. For a test that kills its
    /// caller between GitHub acting and the caller hearing of it.
    pub fn hold_answer(&self, method: &str, suffix: &str, skip: u64) {
        self.inner.holds.arm(method, suffix, skip);
    }
    /// `POST /_sim/hold/release`: sends every held answer and disarms the hold.
    pub fn release_hold(&self) {
        self.inner.holds.release();
    }
    /// How many answers are held now (see [`Self::hold_answer`]).
    pub fn held(&self) -> u64 {
        *self.inner.holds.held.borrow()
    }
    /// Waits until an answer is held, up to `timeout`; returns whether one is.
    pub async fn wait_held(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.holds.held.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n > 0)).await.is_ok_and(|r| r.is_ok())
    }
    /// `POST /_sim/orgs/{org}/projects`: returns `(number, node_id)`.
    pub fn create_project(&self, org: &str, title: &str, columns: &[&str]) -> (u64, String) {
        let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        ops::create_project(&self.inner, org, title, &cols)
    }
    /// `POST /_sim/orgs/{org}/projects/{number}/items`: returns the item's node id.
    pub fn add_project_item(
        &self,
        org: &str,
        number: u64,
        repo: &str,
        issue: u64,
        user: &str,
    ) -> anyhow::Result<String> {
        let node = check(ops::project_node(&self.inner, org, number))?;
        check(ops::add_item(&self.inner, &node, repo, issue, user))
    }
    /// `POST /_sim/orgs/{org}/projects/{number}/items/{item_id}/move`.
    pub fn move_card(&self, org: &str, number: u64, item: &str, column: &str, user: &str) -> anyhow::Result<()> {
        check(ops::move_item(&self.inner, org, number, item, column, user))
    }
    /// `POST /_sim/repos/{owner}/{repo}/pulls/{number}/reviews`.
    pub fn review(&self, repo: &str, number: u64, state: &str, body: &str, user: &str) -> anyhow::Result<()> {
        self.review_with_comments(repo, number, state, body, user, &[])
    }
    /// [`Self::review`] with inline comments, each `(path, line, body)` (`comments` of the same request).
    pub fn review_with_comments(
        &self,
        repo: &str,
        number: u64,
        state: &str,
        body: &str,
        user: &str,
        comments: &[(&str, u64, &str)],
    ) -> anyhow::Result<()> {
        check(ops::add_review(&self.inner, repo, number, state, body, user, comments)).map(drop)
    }
    /// `PATCH /_sim/app`: replaces the permissions (name → `read`/`write`/`admin`) and events the App
    /// asks for, as `GET /app` reports them; `None` leaves one as it is.
    pub fn set_app_settings(&self, permissions: Option<&[(&str, &str)]>, events: Option<&[&str]>) {
        let mut w = self.inner.world();
        if let Some(p) = permissions {
            w.app_permissions = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        }
        if let Some(e) = events {
            w.app_events = e.iter().map(|e| e.to_string()).collect();
        }
    }
    /// `POST /_sim/faults`.
    pub fn set_faults(&self, faults: Faults) {
        if let Some(secs) = faults.exhaust_primary_for_secs {
            server::exhaust_primary(&self.inner, time::Duration::seconds(secs as i64));
        }
        *self.inner.faults.lock().expect("faults lock") = faults;
    }
    /// `POST /_sim/installations/{id}/revoke-tokens`: revokes every installation token of
    /// `installation` (later calls with them get 401 `Bad credentials`, as after GitHub's
    /// `DELETE /installation/token`). Returns how many tokens were revoked.
    pub fn revoke_tokens(&self, installation: u64) -> usize {
        server::revoke_tokens(&self.inner, installation)
    }
    /// The most API requests of `installation` the simulator has had in flight at once (the
    /// maximum `in_flight` of its request log; 0 when it has made none).
    pub fn max_in_flight(&self, installation: u64) -> u64 {
        let w = self.inner.world();
        w.requests.iter().filter(|r| r.installation == Some(installation)).map(|r| r.in_flight).max().unwrap_or(0)
    }
    /// Leaves `remaining` calls in `installation`'s primary rate-limit bucket until `reset_in` from now, as
    /// other users of the same installation would: later answers carry the low `x-ratelimit-remaining`.
    pub fn spend_rate_limit(&self, installation: u64, remaining: u64, reset_in: Duration) {
        server::spend_primary(&self.inner, installation, remaining, time::Duration::seconds(reset_in.as_secs() as i64));
    }
    /// Empties every primary rate-limit bucket until `reset_in` from now.
    pub fn exhaust_rate_limit(&self, reset_in: Duration) {
        server::exhaust_primary(&self.inner, time::Duration::seconds(reset_in.as_secs() as i64));
    }
    /// `POST /_sim/deliveries/{id}/redeliver`: returns the new delivery's id.
    pub fn redeliver(&self, id: u64) -> Option<u64> {
        let mut w = self.inner.world();
        hooks::redeliver(&self.inner, &mut w, id)
    }
    /// `PUT /_sim/repos/{owner}/{repo}/actions/secrets/{name}`: sets the repository's Actions secret `name`
    /// (what `${{ secrets.NAME }}` gives the runs dispatched from then on; an unset one is empty, as on GitHub).
    /// Errors when the repository does not exist.
    pub fn set_actions_secret(&self, repo: &str, name: &str, value: &str) -> anyhow::Result<()> {
        actions::set_secret(&self.inner, repo, name, value).map_err(|e| anyhow::anyhow!("github-sim: {e}"))
    }
    /// `POST /_sim/actions/runner` with `path`: directories put in front of `PATH` for every step the
    /// simulated runner runs from now on (as a self-hosted runner with tools baked in); replaces earlier ones.
    pub fn set_runner_path(&self, dirs: &[PathBuf]) {
        self.inner.actions.env.lock().expect("runner env lock").path = dirs.to_vec();
    }
    /// `POST /_sim/actions/runner` with `env`: variables set for every step from now on (before the
    /// workflow's own `env`); replaces earlier ones.
    pub fn set_runner_env(&self, vars: &[(&str, &str)]) {
        self.inner.actions.env.lock().expect("runner env lock").env =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    /// `GET /_sim/actions/runs?repo=`: the workflow runs of `repo` (`owner/name`; every repository's when
    /// empty), oldest first.
    pub fn runs(&self, repo: &str) -> Vec<RunSummary> {
        let w = self.inner.world();
        w.actions.runs.values().filter(|r| repo.is_empty() || r.repo == repo).map(|r| actions::summary(&w, r)).collect()
    }
    /// One workflow run by id.
    pub fn run(&self, run_id: u64) -> Option<RunSummary> {
        let w = self.inner.world();
        w.actions.runs.get(&run_id).map(|r| actions::summary(&w, r))
    }
    /// Waits until run `run_id` has `status` (`queued`, `in_progress` or `completed`), up to `timeout`;
    /// returns the run then, or `None` on timeout (or when there is no such run).
    pub async fn wait_run(&self, run_id: u64, status: &str, timeout: Duration) -> Option<RunSummary> {
        let mut rx = self.inner.changed.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                let reached = self.inner.world().actions.runs.get(&run_id).is_some_and(|r| r.status == status);
                if let Some(r) = self.run(run_id).filter(|_| reached) {
                    return r;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
    /// `POST /_sim/actions/runs/{run_id}/lose-runner`: the runner of an in-progress run goes away: its
    /// running step's process group is killed (SIGKILL, no clean cancel) and the job and run end as GitHub
    /// ends a job whose runner stopped answering, `failure`. Errors when the run is not in progress.
    pub fn lose_runner(&self, run_id: u64) -> anyhow::Result<()> {
        actions::lose_runner(&self.inner, run_id).map_err(|e| anyhow::anyhow!("github-sim: {e}"))
    }
    /// `GET /_sim/state`.
    pub fn state(&self) -> Value {
        state_json(&self.inner)
    }
    /// Every delivery so far (event, action, payload, status code).
    pub fn deliveries(&self) -> Vec<Value> {
        self.inner.world().deliveries.iter().map(|d| serde_json::to_value(d).expect("delivery")).collect()
    }
    /// Waits until `condition` holds on `GET /_sim/state`, re-checking after every request the
    /// simulator serves and every delivery attempt, up to `timeout`. Returns the state that
    /// satisfied it, or `None` on timeout. Use it as a sync point instead of sleeping, e.g.
    /// "until Foreman has commented on issue 1".
    pub async fn wait_until(&self, timeout: Duration, condition: impl Fn(&Value) -> bool) -> Option<Value> {
        let mut rx = self.inner.changed.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                let state = self.state();
                if condition(&state) {
                    return state;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
    /// Waits until at least `n` delivery attempts have finished (answered or failed), up to `timeout`.
    /// Returns whether they did.
    pub async fn wait_deliveries(&self, n: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.delivered.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await.is_ok_and(|r| r.is_ok())
    }
}

/// The database id of `repo#number`, for a sub-issue link.
fn sub_issue_id(inner: &server::Inner, repo: &str, number: u64) -> anyhow::Result<u64> {
    inner
        .world()
        .repos
        .get(repo)
        .and_then(|r| r.issues.get(&number))
        .map(|i| i.id)
        .ok_or_else(|| anyhow::anyhow!("no issue {repo}#{number}"))
}

/// The whole world as JSON (`GET /_sim/state`).
pub(crate) fn state_json(inner: &server::Inner) -> Value {
    let w = inner.world();
    let repos: Vec<Value> = w
        .repos
        .values()
        .map(|r| {
            let full = r.full_name();
            let issues: Vec<Value> = r
                .issues
                .values()
                .filter(|i| i.pull.is_none())
                .map(|i| {
                    json!({
                        "number": i.number, "id": i.id, "node_id": i.node_id, "title": i.title, "body": i.body,
                        "user": i.user, "state": i.state, "state_reason": i.state_reason, "labels": i.labels,
                        "reactions": i.reactions,
                        "blocked_by": w.dependencies.iter().filter(|d| d.blocked == i.id)
                            .filter_map(|d| deps::locate(&w, d.blocking))
                            .map(|(repo, number)| json!({"repo": repo, "number": number})).collect::<Vec<_>>(),
                        "sub_issues": w.sub_issues.iter().filter(|l| l.parent == i.id)
                            .filter_map(|l| subs::find(&w, l.child))
                            .map(|(repo, number)| json!({"repo": repo, "number": number})).collect::<Vec<_>>(),
                        "comments": w.comments.values().filter(|c| c.repo == full && c.issue == i.number).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let pulls: Vec<Value> = r
                .issues
                .values()
                .filter_map(|i| i.pull.as_ref().map(|p| (i, p)))
                .map(|(i, p)| {
                    json!({
                        "number": i.number, "node_id": p.node_id, "title": i.title, "body": i.body, "user": i.user,
                        "state": i.state, "head": p.head, "base": p.base, "head_sha": p.head_sha, "draft": p.draft,
                        "commits": p.commits, "labels": i.labels, "reviews": p.reviews,
                        "comments": w.comments.values().filter(|c| c.repo == full && c.issue == i.number).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"full_name": full, "default_branch": r.default_branch, "protected": r.protected,
                   "labels": r.labels.keys().collect::<Vec<_>>(), "issues": issues, "pulls": pulls,
                   "check_runs": r.check_runs.values().collect::<Vec<_>>()})
        })
        .collect();
    let projects: Vec<Value> = w
        .projects
        .iter()
        .map(|p| {
            let items: Vec<Value> = p
                .items
                .iter()
                .map(|i| {
                    let column =
                        i.status.as_ref().and_then(|s| p.options.iter().find(|o| &o.id == s)).map(|o| o.name.clone());
                    json!({"item_id": i.node_id, "repo": i.repo, "issue": i.issue, "column": column})
                })
                .collect();
            json!({"org": p.org, "number": p.number, "node_id": p.node_id, "title": p.title,
                   "columns": p.options.iter().map(|o| &o.name).collect::<Vec<_>>(), "items": items})
        })
        .collect();
    let deliveries: Vec<Value> = w
        .deliveries
        .iter()
        .map(|d| {
            json!({"id": d.id, "guid": d.guid, "event": d.event, "action": d.action, "redelivery": d.redelivery,
                        "status_code": d.status_code, "sender": d.payload["sender"]["login"]})
        })
        .collect();
    json!({
        "app": {"id": w.app_id, "slug": w.app_slug, "bot": w.bot_login},
        "users": w.users.values().collect::<Vec<_>>(),
        "installations": w.installations.values().collect::<Vec<_>>(),
        "repos": repos, "projects": projects, "deliveries": deliveries,
        "requests": w.requests, "nonconforming": w.nonconforming,
        "actions": actions::state_json(&w),
    })
}
