//! Startup checks, also run by `foreman doctor`: can this Foreman do its work? Each check says ✓, ⚠ or ✗,
//! what it found, and for anything short of ✓ what to do.
//!
//! The checks: the GitHub App authenticates (`GET /app`, `GET /app/installations`); its permissions and
//! events cover what Foreman uses (the built-in `app-manifest.json`, [`crate::github::manifest`]); the
//! agent's program runs (`claude --version`, or the command's program exists) and has a credential; the
//! sandbox can be created; the data directory is writable and has free space.
//!
//! `foreman serve` runs them once before it serves (a failing check is logged at ERROR), then every
//! [`RECHECK_EVERY`]; `/readyz` answers with the latest results as JSON ([`Latest`]), 503 while one fails.

mod checks;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

pub use checks::{MIN_FREE_BYTES, WARN_FREE_BYTES};

/// How often `foreman serve` runs the checks again, so `/readyz` follows a fix (a permission granted on
/// GitHub, a CLI installed) without a restart. Each run costs two GitHub requests with the App's JWT, which
/// do not count against an installation's quota; every five minutes keeps them negligible.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5 * 60);

/// The longest one check may take (a GitHub request with its retries, `claude --version` starting Node):
/// past it the check fails as timed out, so a hung network delays the start of `serve` by at most this
/// much per check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// ✓: works.
    Pass,
    /// ⚠: works, but something is missing that a person will want (no installation yet, little free
    /// space); does not make `/readyz` fail.
    Warn,
    /// ✗: Foreman cannot do its work; `/readyz` answers 503.
    Fail,
}

impl Status {
    /// The mark printed before the check: ✓, ⚠ or ✗.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked: `github_app`, `github_permissions`, `agent`, `sandbox`, `data_dir`, `store`.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, one sentence.
    pub summary: String,
    /// What to do about it, when it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, summary: impl Into<String>) -> Check {
        Check { name, status: Status::Pass, summary: summary.into(), fix: None }
    }

    fn warn(name: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status: Status::Warn, summary: summary.into(), fix: Some(fix.into()) }
    }

    fn fail(name: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status: Status::Fail, summary: summary.into(), fix: Some(fix.into()) }
    }
}

/// The results of one run of every check, in a fixed order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Each check's result.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether any check failed (✗).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The report for a terminal: one line per check (`✓ name: summary`), each fix indented below it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{} {}: {}\n", c.status.mark(), c.name, c.summary));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    → {fix}\n"));
            }
        }
        out
    }

    /// Logs each check that did not pass: ERROR for ✗, WARN for ⚠, with the fix as a field.
    pub fn log(&self) {
        for c in &self.checks {
            let fix = c.fix.as_deref().unwrap_or_default();
            match c.status {
                Status::Fail => tracing::error!(check = c.name, fix, "startup check failed: {}", c.summary),
                Status::Warn => tracing::warn!(check = c.name, fix, "startup check: {}", c.summary),
                Status::Pass => tracing::info!(check = c.name, "startup check passed: {}", c.summary),
            }
        }
    }
}

/// What the checks look at: the parts `foreman serve` would run with.
pub struct Doctor {
    /// The GitHub client, when App credentials are configured; `serve` replaces it when the setup page
    /// registers an App ([`GithubSlot::set`]).
    pub github: GithubSlot,
    /// The agent backend, built from the configuration (`None` with the reason when it cannot be built).
    pub agent: Result<Arc<dyn crate::session::agent::Agent>, String>,
    /// The server's `[agent]` section.
    pub agent_config: crate::session::AgentConfig,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The configured `public_url`, for the link to the setup page.
    pub public_url: Option<String>,
}

impl Doctor {
    /// Runs every check once. Never fails: a check that cannot run is a ✗ saying why.
    pub async fn run(&self) -> Report {
        let mut checks = checks::github(self).await;
        checks.push(checks::agent(self).await);
        checks.push(checks::sandbox(self));
        checks.push(checks::data_dir(&self.data_dir));
        Report { checks }
    }

    /// Runs the checks every [`RECHECK_EVERY`], and when [`Latest::recheck`] asks, into `latest` until
    /// `shutdown`, logging a check whose status changed.
    pub async fn watch(self, latest: Latest, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RECHECK_EVERY) => {}
                () = latest.recheck.notified() => {}
            }
            let report = self.run().await;
            let before = latest.get();
            for c in &report.checks {
                let was = before.checks.iter().find(|b| b.name == c.name).map(|b| b.status);
                if was != Some(c.status) {
                    Report { checks: vec![c.clone()] }.log();
                }
            }
            latest.set(report);
        }
    }
}

/// The GitHub client the checks use, shared so that `serve` can hand over the client of an App registered
/// from the setup page.
#[derive(Clone, Default)]
pub struct GithubSlot(Arc<RwLock<Option<crate::github::Client>>>);

impl GithubSlot {
    /// A slot holding `client`.
    pub fn new(client: Option<crate::github::Client>) -> Self {
        Self(Arc::new(RwLock::new(client)))
    }

    /// The client now in the slot.
    pub fn get(&self) -> Option<crate::github::Client> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `client` in the slot.
    pub fn set(&self, client: Option<crate::github::Client>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = client;
    }
}

/// The latest [`Report`], shared by the server and `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct Latest {
    report: Arc<RwLock<Report>>,
    recheck: Arc<tokio::sync::Notify>,
}

impl Latest {
    /// A copy of the latest report (empty before the first run).
    pub fn get(&self) -> Report {
        self.report.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the latest report.
    pub fn set(&self, report: Report) {
        *self.report.write().unwrap_or_else(std::sync::PoisonError::into_inner) = report;
    }

    /// Asks [`Doctor::watch`] to run the checks now (after the setup page registered an App).
    pub fn recheck(&self) {
        self.recheck.notify_one();
    }
}
