//! The `[scheduler]` configuration table: claim time-to-live, failure limits, concurrency limits, priority
//! labels and backoff bounds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Learnt per-repository limits, kept in the job vocabulary.
pub use crate::job::RepoLimits;

/// The `[scheduler]` table. Every key has a default, so the table may be absent.
///
/// Environment names are in `crate::config::ENV_KEYS` (`FOREMAN_CLAIM_TTL_SECONDS`, `FOREMAN_MAX_FAILURES`,
/// `FOREMAN_MAX_SESSIONS`, `FOREMAN_MAX_SESSIONS_PER_REPO`, `FOREMAN_MAX_SESSIONS_PER_INSTALLATION`,
/// `FOREMAN_PRIORITY_LABELS`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// A claim's time-to-live in seconds. Default 1800 (30 minutes). A running
    /// session renews it with a heartbeat; a claim not renewed within this time expires, and the job becomes
    /// runnable again (recorded as an infrastructure failure). Must be at least 10.
    pub claim_ttl_seconds: u64,
    /// Agent or validation failures after which a job becomes stuck (needs a person). Default 3. Rate-limit failures never count. Must be at least 1.
    pub max_failures: u32,
    /// Infrastructure failures (expired claims, lost workspaces) after which a job becomes stuck. Default 10:
    /// such failures are usually not the job's fault, so they get more room, but a job that kills its
    /// session every time must not loop forever. Must be at least 1.
    pub max_infrastructure_failures: u32,
    /// Sessions running at once across Foreman. Default 3. Must be at
    /// least 1.
    pub max_sessions: u32,
    /// Sessions running at once in one repository. Default 1. Must be at least 1.
    pub max_sessions_per_repo: u32,
    /// Sessions running at once for one GitHub App installation. Default: no limit beyond `max_sessions`.
    pub max_sessions_per_installation: Option<u32>,
    /// Per-repository limits from the repositories' constitutions (`[limits] concurrency`), used instead of
    /// `max_sessions_per_repo` for those repositories (never above `max_sessions`). Learnt at run time, not
    /// configured.
    #[serde(skip)]
    pub repo_limits: RepoLimits,
    /// Priority labels, highest first. Default `priority:critical`, `priority:high`, `priority:medium`,
    /// `priority:low`. A comma-separated string is accepted too (for the environment). Compared
    /// case-insensitively. At most 200.
    #[serde(deserialize_with = "string_list")]
    pub priority_labels: Vec<String>,
    /// The priority of a job that carries none of `priority_labels`: it ranks with this label. Default
    /// `priority:medium`. When it is not one of `priority_labels`, unlabelled jobs rank after all labelled ones.
    pub default_priority: String,
    /// The first retry's backoff in seconds, before jitter. Default 15. Must be at least 1.
    pub backoff_min_seconds: u64,
    /// The longest backoff in seconds. Default 300 (5 minutes).
    pub backoff_max_seconds: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            claim_ttl_seconds: 30 * 60,
            max_failures: 3,
            max_infrastructure_failures: 10,
            max_sessions: 3,
            max_sessions_per_repo: 1,
            max_sessions_per_installation: None,
            repo_limits: RepoLimits::default(),
            priority_labels: ["priority:critical", "priority:high", "priority:medium", "priority:low"]
                .map(String::from)
                .to_vec(),
            default_priority: "priority:medium".into(),
            backoff_min_seconds: 15,
            backoff_max_seconds: 300,
        }
    }
}

impl SchedulerConfig {
    /// The claim time-to-live as a duration.
    pub fn claim_ttl(&self) -> Duration {
        Duration::from_secs(self.claim_ttl_seconds)
    }

    /// `labels`' priority rank among [`SchedulerConfig::priority_labels`] ([`crate::job::priority_rank`]).
    pub fn priority(&self, labels: &[String]) -> u8 {
        crate::job::priority_rank(&self.priority_labels, &self.default_priority, labels)
    }

    /// The backoff bounds as durations, shortest first.
    pub fn backoff_bounds(&self) -> (Duration, Duration) {
        (Duration::from_secs(self.backoff_min_seconds), Duration::from_secs(self.backoff_max_seconds))
    }

    /// Checks the values; the error names the key and its environment variable.
    pub fn validate(&self) -> Result<(), String> {
        let at_least = |v: u64, min: u64, key: &str, env: &str| {
            let env = if env.is_empty() { String::new() } else { format!(" ({env})") };
            if v < min { Err(format!("scheduler.{key}{env} must be at least {min}")) } else { Ok(()) }
        };
        at_least(self.claim_ttl_seconds, 10, "claim_ttl_seconds", "FOREMAN_CLAIM_TTL_SECONDS")?;
        at_least(self.max_failures.into(), 1, "max_failures", "FOREMAN_MAX_FAILURES")?;
        at_least(self.max_infrastructure_failures.into(), 1, "max_infrastructure_failures", "")?;
        at_least(self.max_sessions.into(), 1, "max_sessions", "FOREMAN_MAX_SESSIONS")?;
        at_least(self.max_sessions_per_repo.into(), 1, "max_sessions_per_repo", "FOREMAN_MAX_SESSIONS_PER_REPO")?;
        if let Some(n) = self.max_sessions_per_installation {
            at_least(n.into(), 1, "max_sessions_per_installation", "FOREMAN_MAX_SESSIONS_PER_INSTALLATION")?;
        }
        at_least(self.backoff_min_seconds, 1, "backoff_min_seconds", "")?;
        if self.backoff_max_seconds < self.backoff_min_seconds {
            return Err("scheduler.backoff_max_seconds must be at least scheduler.backoff_min_seconds".into());
        }
        if self.priority_labels.len() > 200 {
            return Err("scheduler.priority_labels (FOREMAN_PRIORITY_LABELS) takes at most 200 labels".into());
        }
        Ok(())
    }
}

/// Accepts `"a,b"` or `["a", "b"]`; blanks are dropped.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

impl crate::job::Limits for SchedulerConfig {
    fn claim_ttl(&self) -> Duration {
        SchedulerConfig::claim_ttl(self)
    }
    fn max_sessions(&self) -> u32 {
        self.max_sessions
    }
    fn repo_limit(&self, repo: &str) -> u32 {
        self.repo_limits.get(repo).unwrap_or(self.max_sessions_per_repo)
    }
    fn installation_limit(&self) -> Option<u32> {
        self.max_sessions_per_installation
    }
    fn max_failures(&self) -> u32 {
        self.max_failures
    }
    fn max_infrastructure_failures(&self) -> u32 {
        self.max_infrastructure_failures
    }
    fn backoff_bounds(&self) -> (Duration, Duration) {
        SchedulerConfig::backoff_bounds(self)
    }
}
