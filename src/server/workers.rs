//! What `foreman serve` runs beside the HTTP server: the inbox worker, the runner, the reconciler and the
//! delivery-log poller ([`Workers`]), wired to GitHub when the App's credentials are known, at start or
//! when the setup page registers the App ([`activation`]).

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::{self, Decider};
use crate::ingress::{Ingress, Verifier};

/// What runs the inbox and, with App credentials, acts on GitHub: the inbox worker (with the Decider's
/// GitHub side), the runner and the reconciler. Started once at start, and again, with GitHub, when an App
/// is registered from the setup page.
pub(super) struct Workers {
    /// Stops these workers only (a child of the server's shutdown).
    stop: CancellationToken,
    worker: std::thread::JoinHandle<()>,
    runner: Option<tokio::task::JoinHandle<()>>,
    reconciler: Option<tokio::task::JoinHandle<()>>,
    /// Reads the App's delivery log (`github.delivery_mode = "poll"`).
    poller: Option<tokio::task::JoinHandle<()>>,
    /// The GitHub client, with App credentials.
    pub(super) client: Option<crate::github::Client>,
    /// What the console acts with (the client and the one cancel path), with App credentials.
    pub(super) console: Option<crate::console::Backend>,
}

impl Workers {
    /// Starts the workers; with App credentials in `github`, their GitHub side too.
    pub(super) async fn start(
        config: &Config,
        github: &crate::github::GithubConfig,
        triggers: &crate::decide::DecideConfig,
        scheduler: crate::scheduler::Scheduler,
        outgoing: &crate::github::SecretRegistry,
        remote: &crate::remote::Registry,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Workers> {
        let stop = shutdown.child_token();
        let store = scheduler.store().clone();
        let mut decider = Decider::new(triggers.clone(), scheduler.clone()).with_remote(remote.clone());
        let (mut runner_task, mut reconciler_task, mut github_client) = (None, None, None);
        let mut console = None;
        let mut poller_task = None;
        if github.has_app_credentials() {
            let (parts, client, outbox) =
                github_parts(config, github, scheduler.clone(), outgoing.clone(), remote).await?;
            let pusher = parts.pusher.clone();
            let constitutions = parts.constitutions.clone();
            let runner = crate::runner::Runner::new(parts);
            // Commands, deliveries and reconciliation cancel through one path, which stops and reports.
            let canceller = dispatch::Canceller::new(scheduler.clone(), triggers.label.clone())
                .with_github(runner.clone(), outbox.clone());
            // What an earlier process recorded but did not get onto GitHub (killed between a job's change and
            // its report, or GitHub failing) is reported now, before any new work.
            match canceller.resume_reports() {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "reporting again the jobs GitHub is behind on"),
                Err(e) => {
                    tracing::error!(error = %e, "reading the reports to resume failed; reconciliation tries again")
                }
            }
            let mut reconcile_config = config.reconcile.clone();
            if github.delivery_mode == crate::github::DeliveryMode::Poll {
                // The poller reads every delivery from the log, sent or not: asking GitHub to send one again
                // (to no webhook URL) would only add a log entry with the same GUID.
                reconcile_config.redeliver = false;
                let interval = Duration::from_secs(github.poll_interval_secs);
                tracing::info!(
                    interval_secs = github.poll_interval_secs,
                    "reading deliveries from the App's delivery log (github.delivery_mode = poll)"
                );
                let poller = crate::poll::Poller::new(client.clone(), store.clone(), interval);
                poller_task = Some(tokio::spawn(poller.run(stop.clone())));
            }
            let reconciler = crate::reconcile::Reconciler::new(
                client.clone(),
                scheduler.clone(),
                triggers.clone(),
                reconcile_config,
            )
            .with_canceller(canceller.clone());
            console = Some(crate::console::Backend {
                client: client.clone(),
                canceller: canceller.clone(),
                scheduler: scheduler.clone(),
                triggers: triggers.clone(),
                constitutions: constitutions.clone(),
            });
            decider = decider.with_github(
                dispatch::GithubSide {
                    client: client.clone(),
                    outbox,
                    pusher,
                    scratch: config.data_dir.join("scratch"),
                    constitutions,
                },
                canceller,
            );
            reconciler_task = Some(tokio::spawn(reconciler.run(stop.clone())));
            runner_task = Some(tokio::spawn(runner.run(stop.clone())));
            github_client = Some(client);
        }
        let worker = dispatch::spawn_worker(store, decider, stop.clone())?;
        Ok(Workers {
            stop,
            worker,
            runner: runner_task,
            reconciler: reconciler_task,
            poller: poller_task,
            client: github_client,
            console,
        })
    }

    /// Stops them and waits until they have: running sessions are cancelled and their jobs released, the
    /// inbox worker ends its pass.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        if let Some(runner) = self.runner {
            let _ = runner.await;
        }
        if let Some(reconciler) = self.reconciler {
            let _ = reconciler.await;
        }
        if let Some(poller) = self.poller {
            let _ = poller.await;
        }
        let worker = self.worker;
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
}

/// What switching to an App registered from the setup page needs.
pub(super) struct Activation {
    pub(super) config: Arc<Config>,
    pub(super) webhook_secrets: Vec<SecretString>,
    pub(super) ingress: Ingress,
    pub(super) outgoing: crate::github::SecretRegistry,
    pub(super) scheduler: crate::scheduler::Scheduler,
    pub(super) shutdown: CancellationToken,
    /// The sessions handed to runners.
    pub(super) remote: crate::remote::Registry,
    pub(super) workers: Arc<tokio::sync::Mutex<Option<Workers>>>,
    /// The startup checks: given the new App's client and run again.
    pub(super) checks: (crate::doctor::GithubSlot, crate::doctor::Latest),
    /// The console's GitHub side, set with the new workers'.
    pub(super) console: crate::console::BackendSlot,
}

/// Switches the running server to a just-registered App: its webhook secret is accepted from now on (with
/// the configured or generated ones), its secrets are scrubbed from what Foreman writes, and the workers
/// are restarted with a GitHub side. Configured credentials would have won, but with them the setup page
/// registers nothing.
pub(super) fn activation(a: Activation) -> crate::setup::Activate {
    let a = Arc::new(a);
    Arc::new(move |app: crate::setup::StoredApp| {
        let a = a.clone();
        Box::pin(async move {
            let mut config_github = a.config.github.clone();
            let mut triggers = a.config.triggers.clone();
            config_github.app_id = Some(app.id);
            config_github.private_key = Some(app.pem.clone());
            config_github.private_key_path = None;
            if triggers.app_slug == crate::decide::DecideConfig::default().app_slug {
                triggers.app_slug = app.slug.clone();
            }
            let mut secrets = a.webhook_secrets.clone();
            if let Some(secret) = &app.webhook_secret {
                a.outgoing.register("github app webhook_secret", secret);
                secrets.insert(0, secret.clone());
            }
            a.outgoing.register("github app client_secret", &app.client_secret);
            a.ingress.set_verifier(Verifier::new(&secrets));
            let mut workers = a.workers.lock().await;
            if let Some(old) = workers.take() {
                old.stop().await;
            }
            let started = Workers::start(
                &a.config,
                &config_github,
                &triggers,
                a.scheduler.clone(),
                &a.outgoing,
                &a.remote,
                &a.shutdown,
            )
            .await;
            let started = match started {
                Ok(w) => w,
                Err(e) => {
                    // Keep storing and deciding without GitHub, as before.
                    let without = crate::github::GithubConfig { app_id: None, ..config_github };
                    *workers = Some(
                        Workers::start(
                            &a.config,
                            &without,
                            &triggers,
                            a.scheduler.clone(),
                            &a.outgoing,
                            &a.remote,
                            &a.shutdown,
                        )
                        .await?,
                    );
                    return Err(e);
                }
            };
            let client = started.client.clone().ok_or_else(|| anyhow::anyhow!("the App has no credentials"))?;
            a.console.set(started.console.clone());
            *workers = Some(started);
            a.checks.0.set(Some(client.clone()));
            a.checks.1.recheck();
            tracing::info!(app_id = app.id, slug = %app.slug, "acting on GitHub as the App registered from the setup page");
            Ok(client)
        })
    })
}

/// The registry of secret values scrubbed from everything Foreman writes on GitHub, as known at start: the
/// webhook secrets, the admin token, and the `agent.env` (and `agent.env_allow`) values whose names mark
/// them secret. The GitHub client adds the private key's lines and the tokens it mints, and
/// [`github_parts`] the Claude credentials.
pub(super) fn outgoing_secrets(config: &Config, webhook: &[SecretString]) -> crate::github::SecretRegistry {
    let registry = crate::github::SecretRegistry::new();
    for secret in webhook {
        registry.register("github.webhook_secret", secret);
    }
    if let Some(token) = &config.admin_token {
        registry.register("admin_token", token);
    }
    if let Some(secret) = &config.console.client_secret {
        registry.register("console.client_secret", secret);
    }
    registry.register_agent_env(&config.agent.env, &config.agent.env_allow, std::env::vars());
    registry
}

/// Builds what acting on GitHub needs: the client, the session runner (its prompts are checked now, so a
/// bad template stops the start), the pusher and the report outbox. `secrets` is shared by all of them.
async fn github_parts(
    config: &Config,
    github: &crate::github::GithubConfig,
    scheduler: crate::scheduler::Scheduler,
    secrets: crate::github::SecretRegistry,
    remote: &crate::remote::Registry,
) -> anyhow::Result<(crate::runner::Parts, crate::github::Client, crate::report::outbox::Outbox)> {
    let mut options = crate::github::ClientOptions::default();
    options.retry.mutation_interval = Duration::from_millis(github.mutation_interval_ms);
    options.secrets = secrets.clone();
    let client = crate::github::Client::from_config(github, options)
        .map_err(|e| anyhow::anyhow!("GitHub App credentials: {e}"))?;
    let credentials = crate::session::Credentials::from_env();
    for credential in credentials.iter() {
        secrets.register(&credential.source, &credential.secret);
    }
    let sessions = crate::session::SessionRunner::new(&config.data_dir, config.agent.clone(), credentials)
        .map_err(|e| anyhow::anyhow!("agent: {e}"))?
        .with_secrets(secrets.clone());
    let executor = &config.executor;
    let sessions = if executor.kind == crate::remote::ExecutorKind::Actions || executor.allow_repository_choice {
        let settings = actions_settings(config);
        tracing::info!(kind = executor.kind.as_str(), workflow = %settings.workflow, "sessions may run on GitHub Actions");
        let (remote, client) = (remote.clone(), client.clone());
        sessions.map_agent(move |inner| Box::new(crate::remote::RemoteAgent::new(inner, remote, client, settings)))
    } else {
        sessions
    };
    tracing::info!(secrets = secrets.len(), "secret values scrubbed from what Foreman writes on GitHub");
    sessions.prune().await.map_err(|e| anyhow::anyhow!("cleaning up worktrees left by a crash: {e}"))?;
    let pusher = crate::report::push::Pusher::new(crate::report::push::DEFAULT_PREFIX)
        .map_err(|e| anyhow::anyhow!("pusher: {e}"))?;
    let reporter = crate::report::github::Reporter::new(client.clone(), config.report.clone());
    // Reports are stored with the jobs, so a crash loses none (see `Canceller::resume_reports`).
    let outbox = crate::report::outbox::Outbox::new(reporter).with_store(scheduler.store().clone());
    let constitutions = crate::constitution::fetch::Cache::new(
        client.clone(),
        crate::constitution::fetch::CACHE_TTL,
        crate::constitution::Ceilings { triggers: Some(config.triggers.clone()), ..config.agent.ceilings() },
    )
    .with_docs(crate::constitution::fetch::docs_url(config.public_url.as_deref()));
    let agent_name = sessions.agent().describe(&config.agent);
    let backend = sessions.agent().name().to_owned();
    let parts = crate::runner::Parts {
        scheduler,
        client: client.clone(),
        sessions,
        pusher,
        outbox: outbox.clone(),
        constitutions,
        trigger_label: config.triggers.label.clone(),
        backend,
        public_url: config.public_url.clone(),
        agent_name,
        executor_choice: config.executor.allow_repository_choice,
    };
    Ok((parts, client, outbox))
}

/// How the Actions executor reaches runners, from `[executor]`.
pub(super) fn actions_settings(config: &Config) -> crate::remote::ActionsSettings {
    let (public_url, ttl) = (config.public_url.as_deref(), config.scheduler.claim_ttl());
    crate::remote::ActionsSettings::of(&config.executor, public_url, ttl, &config.data_dir.join("scratch"))
}
