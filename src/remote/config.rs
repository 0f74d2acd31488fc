//! The `[executor]` table: where sessions' agents run.

use serde::Deserialize;

pub use crate::executor::ExecutorKind;

/// The `[executor]` table (env `FOREMAN_EXECUTOR_KIND`, `FOREMAN_EXECUTOR_WORKFLOW`,
/// `FOREMAN_EXECUTOR_REPOSITORY`, `FOREMAN_EXECUTOR_PUBLIC_URL`, `FOREMAN_EXECUTOR_POLL_INTERVAL_SECS`,
/// `FOREMAN_EXECUTOR_QUEUE_TIMEOUT_SECS`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// `local` (default) or `actions`.
    pub kind: ExecutorKind,
    /// The workflow dispatched for each session with `kind = "actions"`: its file name under
    /// `.github/workflows/` (or its numeric id). Default `foreman-session.yml`; `foreman actions workflow`
    /// prints it.
    pub workflow: String,
    /// The repository (`owner/name`) whose workflow runs the sessions: one repository for the whole
    /// installation (`acme/runners`, say). Unset (default): the issue's own repository, so the session runs
    /// in the environment that repository's workflow sets up.
    pub repository: Option<String>,
    /// The base URL runners reach Foreman at, for the session URL (`<public_url>/remote/sessions/<id>`).
    /// Default: the top-level `public_url`, else the address Foreman listens on (`listen`; loopback for an
    /// unspecified address), which only runners on Foreman's machine or network reach.
    pub public_url: Option<String>,
    /// Whether a repository's constitution may choose `executor = "local"` or `"actions"` for its own
    /// sessions. Default false: the server's `kind` holds for every repository.
    pub allow_repository_choice: bool,
    /// How often a dispatched run is read back (`GET /repos/{owner}/{repo}/actions/runs/{run_id}`) while
    /// its session waits, in seconds, to notice a run that ended without handing its work back (a lost
    /// runner, a failed setup step). `workflow_run` webhooks tell it sooner. Default 30.
    pub poll_interval_secs: u64,
    /// How long a dispatched run may wait for a runner, in seconds: a session whose runner has not made its
    /// first request by then is stopped, its run cancelled, and the attempt ends as an infrastructure failure
    /// naming the run, so a queue with no runner for it (self-hosted runners offline, a label no runner
    /// has) does not hold the job's claim and slot for GitHub's own 24 hours. Default 3600: GitHub-hosted
    /// runners start within minutes even when the account's concurrency limit queues runs behind others.
    pub queue_timeout_secs: u64,
    /// The largest git bundle a runner may upload, in MiB. Default 512.
    pub max_bundle_mb: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            kind: ExecutorKind::Local,
            workflow: DEFAULT_WORKFLOW.into(),
            repository: None,
            public_url: None,
            allow_repository_choice: false,
            poll_interval_secs: 30,
            queue_timeout_secs: 3600,
            max_bundle_mb: 512,
        }
    }
}

/// The default `executor.workflow`.
pub const DEFAULT_WORKFLOW: &str = "foreman-session.yml";

impl ExecutorConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.workflow.trim().is_empty() || self.workflow.contains('/') {
            return Err(format!("executor.workflow must be a workflow file name or id, got '{}'", self.workflow));
        }
        if let Some(repo) = &self.repository
            && repo.parse::<crate::ids::RepoName>().is_err()
        {
            return Err(format!("executor.repository must be owner/name, got '{repo}'"));
        }
        if self.poll_interval_secs == 0 {
            return Err("executor.poll_interval_secs must be at least 1".into());
        }
        if self.queue_timeout_secs == 0 {
            return Err("executor.queue_timeout_secs must be at least 1".into());
        }
        if self.max_bundle_mb == 0 {
            return Err("executor.max_bundle_mb must be at least 1".into());
        }
        Ok(())
    }

    /// The base of session URLs: `executor.public_url`, else `public_url`, without a trailing `/`.
    pub fn base_url(&self, public_url: Option<&str>) -> Option<String> {
        self.public_url.as_deref().or(public_url).map(|u| u.trim_end_matches('/').to_owned()).filter(|u| !u.is_empty())
    }
}
