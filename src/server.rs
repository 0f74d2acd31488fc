//! `foreman serve`: the HTTP server, its background tasks, and graceful shutdown.
//!
//! Start-up: make the process non-dumpable, read the configuration, take Foreman's secrets out of the
//! environment, open the store in the data directory, make sure there is a webhook secret, then serve
//! ([`crate::ingress::connections`]: timeouts and a cap on connections). On SIGTERM or SIGINT: answer new
//! deliveries 503, stop accepting connections, finish the requests in flight, flush the store, exit 0 (well
//! inside fly.toml's `kill_timeout`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

mod workers;

use self::workers::{Activation, Workers, actions_settings, activation, outgoing_secrets};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::ingress::{self, Ingress, Verifier};
use crate::store::{Store, StoreOptions};

/// The file in the data directory holding the generated webhook secret (mode 0600).
pub const GENERATED_SECRET_FILE: &str = "webhook-secret";

/// How long one request may take before it is answered 408. GitHub gives up on a delivery after 10 s;
/// answering at 9 s lets it record a failure that can be redelivered rather than a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(9);

/// How often delivered-and-processed deliveries older than the retention period are pruned. Hourly keeps
/// the store within an hour's worth of traffic of its bound without scanning often.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long shutdown waits for requests in flight before giving up on them. fly.toml's kill timeout is 30 s;
/// this leaves time for the final flush.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `foreman serve` until SIGTERM or SIGINT. Exit code 2 for a configuration error, 1 for a runtime one.
///
/// Before anything else the process is made non-dumpable ([`make_undumpable`]); once the configuration is
/// read, and before the runtime starts its threads, Foreman's secrets leave the environment
/// ([`forget_secret_environment`]).
pub fn serve_main(config_file: Option<&Path>) -> ExitCode {
    let undumpable = make_undumpable();
    let config = match Config::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foreman: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: the process has one thread: no runtime, no logging thread, no child yet (jemalloc's
    // background thread never reads the environment after its start).
    let forgotten = unsafe { forget_secret_environment() };
    crate::telemetry::init_logging(config.log_format);
    if let Err(e) = undumpable {
        tracing::warn!(error = %e, "could not make the process non-dumpable (prctl PR_SET_DUMPABLE)");
    }
    if !forgotten.is_empty() {
        tracing::info!(variables = forgotten.join(", "), "secrets read from the environment and removed from it");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("start the tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The startup checks over the parts this configuration runs with (see [`crate::doctor`]); also what
/// `foreman doctor` runs. Without configured App credentials, the App registered from the setup page (in
/// the data directory) is checked, as `serve` would use it.
pub fn doctor(config: &Config) -> crate::doctor::Doctor {
    let mut github_config = config.github.clone();
    if !github_config.has_app_credentials()
        && let Ok(Some(app)) = crate::setup::StoredApp::load(&config.data_dir)
    {
        github_config.app_id = Some(app.id);
        github_config.private_key = Some(app.pem.clone());
        github_config.private_key_path = None;
    }
    let github = if github_config.has_app_credentials() {
        crate::github::Client::from_config(&github_config, crate::github::ClientOptions::default()).ok()
    } else {
        None
    };
    let agent = crate::session::agent::build(&config.agent, crate::session::Credentials::from_env());
    // Agents that run on GitHub Actions runners need neither their program nor their credential here.
    let agent = match (&github, &config.executor) {
        (Some(client), e) if e.kind == crate::remote::ExecutorKind::Actions && !e.allow_repository_choice => {
            let settings = actions_settings(config);
            let client = client.clone();
            agent.map(|inner| -> Box<dyn crate::session::Agent> {
                Box::new(crate::remote::RemoteAgent::new(inner, crate::remote::Registry::new(), client, settings))
            })
        }
        _ => agent,
    }
    .map(Arc::from);
    crate::doctor::Doctor {
        github: crate::doctor::GithubSlot::new(github),
        agent,
        agent_config: config.agent.clone(),
        data_dir: config.data_dir.clone(),
        public_url: config.public_url.clone(),
    }
}

/// Makes the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`, Linux): no core dump, no ptrace attach, and
/// its `/proc/<pid>/` files (environ, mem, maps, fd) owned by root, so a process of the same user that lacks
/// `CAP_SYS_PTRACE`, an agent in particular, cannot read Foreman's memory or environment. The flag is not
/// inherited across `execve`: git and agents stay ordinary processes. Does nothing elsewhere.
pub fn make_undumpable() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_DUMPABLE takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes Foreman's secrets ([`crate::config::SECRET_ENV_KEYS`], names compared ignoring case as the
/// configuration reads them) from the process environment once the configuration holds them, so that no
/// process Foreman starts (git, agents, required commands, helpers) inherits them. Returns the names removed.
///
/// `remove_var` only takes the variable out of the list the C library keeps; the kernel still shows the
/// environment the process was started with as `/proc/<pid>/environ`, read from the block at the top of
/// the initial stack. On Linux each secret's `NAME=VALUE` string in that block is therefore overwritten
/// with NUL bytes too. Whoever could read the block before this ran (a parent, root) has seen it anyway;
/// [`make_undumpable`] and the agent sandbox keep other processes of Foreman's user out of `/proc/<pid>/`.
///
/// # Safety
///
/// Call it while the process has a single thread (before the tokio runtime starts): it changes the
/// environment and writes into the initial environment block, which nothing else may read meanwhile.
pub unsafe fn forget_secret_environment() -> Vec<String> {
    let secret = |name: &str| crate::config::SECRET_ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(name));
    let names: Vec<String> =
        std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).filter(|k| secret(k)).collect();
    for name in &names {
        // SAFETY: single-threaded, as the caller promises.
        unsafe { std::env::remove_var(name) };
    }
    #[cfg(target_os = "linux")]
    if let Some((start, end)) = initial_environment_block() {
        // SAFETY: [start, end) is the process's initial environment block (kernel-given, on the main
        // thread's stack, writable, never freed); the C library's list no longer points into the entries
        // overwritten, since their variables were removed above; single-threaded, as the caller promises.
        unsafe { scrub_environment_block(start, end, &secret) };
    }
    names
}

/// The address range of the initial environment block, fields 50 and 51 (`env_start`, `env_end`) of
/// `/proc/self/stat` (proc(5)); `None` when it cannot be read.
#[cfg(target_os = "linux")]
fn initial_environment_block() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain anything: field 3 is first.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let start = fields.get(50 - 3)?.parse().ok()?;
    let end = fields.get(51 - 3)?.trim().parse().ok()?;
    (start != 0 && start < end).then_some((start, end))
}

/// Overwrites with NUL bytes each `NAME=VALUE` string in `[start, end)` whose name `secret` accepts.
///
/// # Safety
///
/// `[start, end)` must be writable memory of this process that nothing else reads or writes meanwhile.
#[cfg(target_os = "linux")]
unsafe fn scrub_environment_block(start: usize, end: usize, secret: &dyn Fn(&str) -> bool) {
    let block: *mut u8 = std::ptr::with_exposed_provenance_mut(start);
    // SAFETY: the caller promises the range is this process's memory, used by nothing else now.
    let bytes = unsafe { std::slice::from_raw_parts_mut(block, end - start) };
    for entry in bytes.split_mut(|b| *b == 0) {
        let name = entry.split(|b| *b == b'=').next().unwrap_or_default();
        if std::str::from_utf8(name).is_ok_and(secret) {
            entry.fill(0);
        }
    }
}

/// Warns, naming the file, its mode and the fix, when the App's private key file can be read by its group
/// or by others: it must be readable by Foreman's user only.
fn check_private_key_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o044 != 0 => {
                let mode = format!("{:04o}", meta.permissions().mode() & 0o7777);
                tracing::warn!(
                    path = %path.display(),
                    mode,
                    "the GitHub App's private key file can be read by other users (mode {mode}); make it readable \
                     by Foreman's user only: chmod 600 {}",
                    path.display()
                );
            }
            Ok(_) => {}
            // Reading the key reports a missing or unreadable file with its cause.
            Err(_) => {}
        }
    }
}

/// Opens the store, binds, and serves until a shutdown signal.
///
/// App credentials come from the configuration or, when it has none, from the App registered on the setup
/// page (`DATA_DIR/github-app.json`, [`crate::setup::stored`]): the configuration wins. Without either, the
/// setup page at `/` registers one, and the server starts acting on GitHub with it without a restart.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", config.data_dir.display()))?;
    let store =
        Store::open(&config.data_dir.join("store"), &StoreOptions { cache_bytes: config.store.cache_mb * 1024 * 1024 })
            .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", config.data_dir.display()))?;
    let stored = crate::setup::StoredApp::load(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("reading the App registered from the setup page: {e}"))?;
    let configured = config.github.has_app_credentials();
    if let Some(app) = stored.as_ref().filter(|_| !configured) {
        use_stored_app(&mut config, app);
        tracing::info!(app_id = app.id, slug = %app.slug, "using the GitHub App registered from the setup page");
    } else if stored.is_some() {
        tracing::info!("the configured GitHub App credentials win over the App registered from the setup page");
    }
    let secrets = webhook_secrets(&config, stored.as_ref())?;
    let outgoing = outgoing_secrets(&config, &secrets);
    if let Some(app) = &stored {
        outgoing.register("github app client_secret", &app.client_secret);
    }
    if let Some(path) = &config.github.private_key_path {
        check_private_key_file(path);
    }
    if !config.github.has_app_credentials() {
        tracing::warn!(
            "no GitHub App credentials: Foreman will accept and store deliveries but cannot act on GitHub. \
             Open the setup page (/) to register the App, or set GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or \
             GITHUB_PRIVATE_KEY_PATH)"
        );
    }
    let poll = config.github.delivery_mode == crate::github::DeliveryMode::Poll;
    if poll && !config.github.has_app_credentials() {
        tracing::warn!(
            "github.delivery_mode is poll but there are no GitHub App credentials: no delivery is read until \
             they are set"
        );
    }
    let ingress = Ingress::new(store.clone(), Verifier::new(&secrets))
        .with_unverified_body_limit(config.server.max_unverified_body_bytes());
    let hold = crate::scheduler::Hold::default();
    let checks = crate::doctor::Latest::default();
    let state = AppState {
        store: store.clone(),
        ingress: ingress.clone(),
        metrics: crate::telemetry::metrics_handle(),
        admin_token: config.admin_token.clone().map(Arc::new),
        sessions_dir: Arc::new(config.data_dir.join("sessions")),
        checks: checks.clone(),
        hold: hold.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (FOREMAN_LISTEN): {e}", config.listen))?;
    // Bound, so GitHub's deliveries wait in the backlog meanwhile; at most `CHECK_TIMEOUT` per check.
    let doctor = doctor(&config);
    let report = doctor.run().await;
    report.log();
    checks.set(report);
    let mut limits = config.server.connection_limits();
    limits.max_connections = crate::ingress::connections::fit_open_file_limit(limits.max_connections);
    let local = listener.local_addr()?;
    tracing::info!(address = %local, webhook = ingress::WEBHOOK_PATH, "listening");
    if config.executor.base_url(config.public_url.as_deref()).is_none() {
        // Runners on this machine or its network reach Foreman at the address it listens on.
        let url = crate::config::local_url(local);
        if config.executor.kind == crate::remote::ExecutorKind::Actions {
            tracing::warn!(
                url,
                "neither executor.public_url nor public_url is set: runners are told to reach Foreman at its listen address"
            );
        }
        config.executor.public_url = Some(url);
    }

    let shutdown = CancellationToken::new();
    let doctor_github = doctor.github.clone();
    tokio::spawn(doctor.watch(checks.clone(), shutdown.clone()));
    let scheduler = crate::scheduler::Scheduler::new(store.clone(), config.scheduler.clone()).with_hold(hold);
    let recovery = scheduler.recover(OffsetDateTime::now_utc()).await.map_err(|e| anyhow::anyhow!("recovery: {e}"))?;
    let requeued: Vec<String> = recovery.requeued.iter().map(ToString::to_string).collect();
    tracing::info!(
        requeued = requeued.join(", "),
        kept = recovery.kept,
        slots_corrected = recovery.slots_corrected,
        "recovered jobs left by an earlier process"
    );
    let config = Arc::new(config);
    // The sessions handed to GitHub Actions runners, shared by the executor and the runners' endpoints.
    let remote = crate::remote::Registry::new();
    let workers =
        Workers::start(&config, &config.github, &config.triggers, scheduler.clone(), &outgoing, &remote, &shutdown)
            .await?;
    let client = workers.client.clone();
    if let Some(client) = &client {
        tokio::spawn(crate::remote::orphans::cancel(client.clone(), recovery.orphaned_runs));
    }
    let console_backend = crate::console::BackendSlot::default();
    console_backend.set(workers.console.clone());
    let workers = Arc::new(tokio::sync::Mutex::new(Some(workers)));
    let setup = crate::setup::Setup::new(
        crate::setup::SetupOptions {
            data_dir: config.data_dir.clone(),
            api_url: config.github.api_url.clone(),
            public_url: config.public_url.clone(),
            admin_token: state.admin_token.clone(),
            label: config.triggers.label.clone(),
        },
        activation(Activation {
            config: config.clone(),
            webhook_secrets: secrets,
            ingress: ingress.clone(),
            outgoing: outgoing.clone(),
            scheduler: scheduler.clone(),
            shutdown: shutdown.clone(),
            remote: remote.clone(),
            workers: workers.clone(),
            checks: (doctor_github, checks.clone()),
            console: console_backend.clone(),
        }),
    );
    if let Some(client) = &client {
        let app = match stored.as_ref().filter(|_| !configured) {
            Some(app) => crate::setup::AppInfo::from_stored(app),
            None => crate::setup::AppInfo {
                id: client.app_id(),
                name: format!("App {}", client.app_id()),
                slug: Some(config.triggers.app_slug.clone()),
                html_url: None,
                source: "configured",
            },
        };
        setup.set_current(app, client.clone());
    }
    let pruner = tokio::spawn(prune_loop(store.clone(), config.inbox.retention_days, shutdown.clone()));
    tokio::spawn(crate::telemetry::upkeep_loop(
        crate::telemetry::metrics_handle(),
        crate::telemetry::METRICS_UPKEEP_EVERY,
        shutdown.clone(),
    ));

    let console = crate::console::Console::new(crate::console::ConsoleOptions {
        config: config.console.clone(),
        api_url: config.github.api_url.clone(),
        public_url: config.public_url.clone(),
        data_dir: config.data_dir.clone(),
        store: store.clone(),
        triggers: config.triggers.clone(),
        backend: console_backend,
    });
    let app = router(state)
        .merge(crate::setup::routes(setup))
        .merge(crate::console::routes(console))
        .merge(crate::remote::routes::routes(remote, config.executor.max_bundle_mb << 20));
    let signal = {
        let shutdown = shutdown.clone();
        let ingress = ingress.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            ingress.begin_shutdown();
            shutdown.cancel();
        }
    };
    let server = ingress::connections::serve(listener, app, limits, signal);
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        () = server => {}
        _ = drained => tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
    shutdown.cancel();
    if let Some(workers) = workers.lock().await.take() {
        workers.stop().await;
    }
    let _ = pruner.await;
    store.sync().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Takes the App registered from the setup page as the configured one: its id and key, and its slug for
/// `triggers.app_slug` unless that was configured (left at its default `foreman`).
fn use_stored_app(config: &mut Config, app: &crate::setup::StoredApp) {
    config.github.app_id = Some(app.id);
    config.github.private_key = Some(app.pem.clone());
    config.github.private_key_path = None;
    if config.triggers.app_slug == crate::decide::DecideConfig::default().app_slug {
        config.triggers.app_slug = app.slug.clone();
    }
}

/// The whole HTTP surface. The webhook route's body limit is enforced inside the handler as well (so a
/// chunked body over the limit is refused without being buffered whole); the timeout sits inside the
/// body-limit layer, as tower-http requires for the limit's 413 to win; outside both, the webhook answers they
/// give are counted ([`ingress::count_layer_answers`]).
pub fn router(state: AppState) -> axum::Router {
    let admin =
        api::admin_routes().route_layer(axum::middleware::from_fn_with_state(state.clone(), api::auth::require_admin));
    axum::Router::new()
        .route(ingress::WEBHOOK_PATH, axum::routing::post(ingress::receive))
        .merge(api::ops_routes())
        .merge(admin)
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(RequestBodyLimitLayer::new(ingress::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ingress::count_layer_answers))
        .with_state(state)
}

/// The webhook secrets deliveries may be signed with: the configured ones and the App registered from the
/// setup page's; with neither, the generated one, read from the data directory or created there (mode 0600)
/// on the first start. The secret itself is never logged; its file's path is.
fn webhook_secrets(config: &Config, stored: Option<&crate::setup::StoredApp>) -> anyhow::Result<Vec<SecretString>> {
    let mut secrets = config.github.webhook_secret.clone();
    secrets.extend(stored.and_then(|app| app.webhook_secret.clone()));
    if !secrets.is_empty() {
        return Ok(secrets);
    }
    let path: PathBuf = config.data_dir.join(GENERATED_SECRET_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            tracing::info!(path = %path.display(), "using the generated webhook secret in the data directory");
            return Ok(vec![SecretString::from(existing)]);
        }
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    tracing::warn!(
        path = %path.display(),
        "no webhook secret configured (GITHUB_WEBHOOK_SECRET): generated one into this file. \
         Paste its contents as the webhook secret in your GitHub App's settings, or set GITHUB_WEBHOOK_SECRET"
    );
    Ok(vec![SecretString::from(secret)])
}

async fn prune_loop(store: Store, retention_days: u32, shutdown: CancellationToken) {
    loop {
        let cutoff = OffsetDateTime::now_utc() - time::Duration::days(retention_days.into());
        match store.prune_deliveries(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned deliveries past retention"),
            Err(e) => tracing::error!(error = %e, "pruning deliveries failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
