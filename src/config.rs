//! Configuration: built-in defaults < a TOML file (`--config FILE` or `FOREMAN_CONFIG`) < environment variables.
//!
//! Every key, its environment name and its default are listed in `docs/configuration.md`; the table of
//! environment names is [`ENV_KEYS`]. A `.env` file in the working directory is read into the environment
//! by the binary before this module runs. A bad value stops the start with an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;

pub use crate::github::GithubConfig;
use serde::{Deserialize, Serialize};

/// The environment variables Foreman reads, and the configuration key each one sets.
///
/// Environment variables win over the file. Keys with a dot are nested (`github.app_id` is `app_id` in the
/// `[github]` table of the file).
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("FOREMAN_LISTEN", "listen"),
    ("FOREMAN_DATA_DIR", "data_dir"),
    ("FOREMAN_ADMIN_TOKEN", "admin_token"),
    ("FOREMAN_LOG_FORMAT", "log_format"),
    ("GITHUB_WEBHOOK_SECRET", "github.webhook_secret"),
    ("GITHUB_APP_ID", "github.app_id"),
    ("GITHUB_PRIVATE_KEY", "github.private_key"),
    ("GITHUB_PRIVATE_KEY_PATH", "github.private_key_path"),
    ("GITHUB_API_URL", "github.api_url"),
    ("GITHUB_MUTATION_INTERVAL_MS", "github.mutation_interval_ms"),
    ("GITHUB_DELIVERY_MODE", "github.delivery_mode"),
    ("GITHUB_POLL_INTERVAL_SECS", "github.poll_interval_secs"),
    ("FOREMAN_INBOX_RETENTION_DAYS", "inbox.retention_days"),
    ("FOREMAN_STORE_CACHE_MB", "store.cache_mb"),
    ("FOREMAN_PUBLIC_URL", "public_url"),
    ("FOREMAN_APP_SLUG", "triggers.app_slug"),
    ("FOREMAN_AGENT_BACKEND", "agent.backend"),
    ("FOREMAN_AGENT_COMMAND", "agent.command"),
    ("FOREMAN_AGENT_SANDBOX", "agent.sandbox"),
    ("FOREMAN_AGENT_NETWORK", "agent.network"),
    ("FOREMAN_AGENT_ALLOWED_HOSTS", "agent.allowed_hosts"),
    ("FOREMAN_AGENT_BWRAP_PATH", "agent.bwrap_path"),
    ("FOREMAN_AGENT_SANDBOX_WRITABLE_PATHS", "agent.sandbox_writable_paths"),
    ("FOREMAN_AGENT_MAX_COST_USD", "agent.max_cost_usd"),
    ("FOREMAN_AGENT_DAILY_COST_USD", "agent.daily_cost_usd"),
    ("FOREMAN_CLAIM_TTL_SECONDS", "scheduler.claim_ttl_seconds"),
    ("FOREMAN_MAX_FAILURES", "scheduler.max_failures"),
    ("FOREMAN_MAX_SESSIONS", "scheduler.max_sessions"),
    ("FOREMAN_MAX_SESSIONS_PER_REPO", "scheduler.max_sessions_per_repo"),
    ("FOREMAN_MAX_SESSIONS_PER_INSTALLATION", "scheduler.max_sessions_per_installation"),
    ("FOREMAN_PRIORITY_LABELS", "scheduler.priority_labels"),
    ("FOREMAN_RECONCILE_INTERVAL_SECS", "reconcile.interval_secs"),
    ("FOREMAN_HEADER_READ_TIMEOUT_SECS", "server.header_read_timeout_secs"),
    ("FOREMAN_IDLE_TIMEOUT_SECS", "server.idle_timeout_secs"),
    ("FOREMAN_MAX_CONNECTIONS", "server.max_connections"),
    ("FOREMAN_MAX_UNVERIFIED_BODY_MB", "server.max_unverified_body_mb"),
    ("FOREMAN_CONSOLE_CLIENT_ID", "console.client_id"),
    ("FOREMAN_EXECUTOR_KIND", "executor.kind"),
    ("FOREMAN_EXECUTOR_WORKFLOW", "executor.workflow"),
    ("FOREMAN_EXECUTOR_REPOSITORY", "executor.repository"),
    ("FOREMAN_EXECUTOR_PUBLIC_URL", "executor.public_url"),
    ("FOREMAN_EXECUTOR_POLL_INTERVAL_SECS", "executor.poll_interval_secs"),
    ("FOREMAN_EXECUTOR_QUEUE_TIMEOUT_SECS", "executor.queue_timeout_secs"),
    ("FOREMAN_CONSOLE_CLIENT_SECRET", "console.client_secret"),
    ("FOREMAN_CONSOLE_ADMINS", "console.admins"),
];

/// Probot's names for the GitHub App's settings (`APP_ID`, `PRIVATE_KEY`, `PRIVATE_KEY_PATH`,
/// `WEBHOOK_SECRET`), accepted as aliases of Foreman's (`GITHUB_…`), so an App set up for Probot runs
/// unchanged. Foreman's own name wins when both are set. Pairs of (alias, Foreman's variable).
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("APP_ID", "GITHUB_APP_ID"),
    ("PRIVATE_KEY", "GITHUB_PRIVATE_KEY"),
    ("PRIVATE_KEY_PATH", "GITHUB_PRIVATE_KEY_PATH"),
    ("WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET"),
];

/// The variables of [`ENV_KEYS`] (and their [`ENV_ALIASES`]) that hold a secret or point at one. `foreman serve` removes them from its
/// environment once the configuration is read, so no process it starts inherits them (see
/// `server::forget_secret_environment`).
pub const SECRET_ENV_KEYS: &[&str] = &[
    "FOREMAN_ADMIN_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "WEBHOOK_SECRET",
    "PRIVATE_KEY",
    "PRIVATE_KEY_PATH",
    "FOREMAN_CONSOLE_CLIENT_SECRET",
];

/// The URL a command on this machine reaches a server listening on `listen` at (`foreman status`,
/// `foreman replay`): loopback in place of an unspecified address (`0.0.0.0`, `::`).
pub fn local_url(listen: std::net::SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", listen.port())
}

/// Foreman's whole configuration, as read at start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds. Default `127.0.0.1:3000`.
    pub listen: SocketAddr,
    /// Directory for the store, the generated webhook secret, mirrors and session logs. Default `./data`.
    pub data_dir: PathBuf,
    /// Bearer token required by every `/api/` route. When unset, `/api/` answers loopback clients only.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    /// `pretty` (default) or `json` log lines.
    pub log_format: LogFormat,
    /// Foreman's own address as people reach it (e.g. `https://foreman.example.com`), for links in tracking
    /// comments and pull requests to session logs (the console's viewer, `/sessions/{id}`), and the
    /// console's sign-in callback. No link when unset.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The GitHub App: webhook secrets, credentials and API URL.
    pub github: GithubConfig,
    /// The delivery inbox.
    pub inbox: InboxConfig,
    /// The sled store.
    pub store: StoreConfig,
    /// The HTTP server's bounds on connections and unverified bodies.
    #[serde(default)]
    pub server: ServerConfig,
    /// What labels, board moves and commands mean work, and who may give commands (docs/commands.md).
    #[serde(default)]
    pub triggers: crate::decide::DecideConfig,
    /// Agent sessions: backend, limits, prompts, environment.
    #[serde(default)]
    pub agent: crate::session::AgentConfig,
    /// The job scheduler: claims, failures, limits, order.
    #[serde(default)]
    pub scheduler: crate::scheduler::SchedulerConfig,
    /// What Foreman shows on GitHub: label and board column names, the tracking comment's edit interval.
    #[serde(default)]
    pub report: crate::report::github::ReportConfig,
    /// Reconciliation with GitHub and lost-delivery recovery.
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileConfig,
    /// The console: signing in with GitHub, who sees every repository (docs/console.md).
    #[serde(default)]
    pub console: crate::console::ConsoleConfig,
    /// Where sessions' agents run: on this host, or on GitHub Actions runners (docs/actions.md).
    #[serde(default)]
    pub executor: crate::remote::ExecutorConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `[inbox]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Days a stored delivery is kept before it is pruned. Default 7 (GitHub itself keeps deliveries
    /// for redelivery 3 days). Must be at least 1.
    pub retention_days: u32,
}

/// The `[store]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// sled's page cache in MiB. Default 16: sled's own default is 1 GiB, which a webhook inbox never needs.
    pub cache_mb: u64,
}

/// The `[server]` table: how long a client may take, and how many connections and unverified bytes Foreman
/// holds at once, so that the webhook endpoint stays up for GitHub while others flood it without the secret
/// (`ingress::connections`, `ingress::budget`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Seconds a client has to send a request's headers: from the connection's opening for its first
    /// request, from its first byte for a later one. Default 10, GitHub's own time limit for a whole delivery
    /// (its headers arrive at once); a connection that sends nothing, or headers a byte at a time, is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed. Default 60: long
    /// enough for a proxy in front (Fly.io's) to reuse connections, short enough that idle ones do not pile up.
    pub idle_timeout_secs: u64,
    /// Connections served at once. Default 512: room within the usual open-file limit of 1024 for the store,
    /// git and agents. At the cap, the connection that has waited longest for a request is closed to admit a
    /// new one. Foreman raises its soft open-file limit to this plus 256 where the hard limit allows, and
    /// serves fewer where it does not (`ingress::connections::fit_open_file_limit`).
    pub max_connections: usize,
    /// MiB of request bodies held at once, across all requests, before their signature is checked. Beyond
    /// it a request is answered 503 with `Retry-After`. Default 64; at least 25, so GitHub's largest
    /// payload (25 MB) fits.
    pub max_unverified_body_mb: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { header_read_timeout_secs: 10, idle_timeout_secs: 60, max_connections: 512, max_unverified_body_mb: 64 }
    }
}

impl ServerConfig {
    /// The connection bounds, as [`crate::ingress::connections::serve`] takes them.
    pub fn connection_limits(&self) -> crate::ingress::connections::ConnectionLimits {
        crate::ingress::connections::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
        }
    }

    /// [`Self::max_unverified_body_mb`] in bytes.
    pub fn max_unverified_body_bytes(&self) -> usize {
        self.max_unverified_body_mb.saturating_mul(1024 * 1024)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let at_least = |value: u64, least: u64, key: &str, env: &str| {
            if value < least {
                Err(ConfigError(format!("server.{key} ({env}) must be at least {least}")))
            } else {
                Ok(())
            }
        };
        at_least(self.header_read_timeout_secs, 1, "header_read_timeout_secs", "FOREMAN_HEADER_READ_TIMEOUT_SECS")?;
        at_least(self.idle_timeout_secs, 1, "idle_timeout_secs", "FOREMAN_IDLE_TIMEOUT_SECS")?;
        at_least(self.max_connections as u64, 1, "max_connections", "FOREMAN_MAX_CONNECTIONS")?;
        at_least(self.max_unverified_body_mb as u64, 25, "max_unverified_body_mb", "FOREMAN_MAX_UNVERIFIED_BODY_MB")
    }
}

/// A configuration that could not be read: which key, and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

fn defaults() -> serde_json::Value {
    serde_json::json!({
        "listen": "127.0.0.1:3000",
        "data_dir": "./data",
        "log_format": "pretty",
        "github": { "api_url": "https://api.github.com" },
        "inbox": { "retention_days": 7 },
        "store": { "cache_mb": 16 },
    })
}

impl Config {
    /// Reads the configuration: defaults, then `file` if given (it must exist), then the environment.
    ///
    /// Errors name the key, where its value came from, and what was expected.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!("the config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let key_of = |name: &str| ENV_KEYS.iter().find(|(env, _)| name.eq_ignore_ascii_case(env)).map(|(_, key)| *key);
        let env = Env::raw().filter_map(move |k| {
            if let Some(key) = key_of(k.as_str()) {
                return Some(key.into());
            }
            // A Probot alias counts only when Foreman's own variable is not set.
            let (_, own) = ENV_ALIASES.iter().find(|(alias, _)| k.as_str().eq_ignore_ascii_case(alias))?;
            std::env::var_os(own).is_none().then(|| key_of(own)).flatten().map(Into::into)
        });
        // figment nests keys on '.', so `github.app_id` lands in the `[github]` table.
        figment = figment.merge(env);
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.inbox.retention_days == 0 {
            return Err(ConfigError("inbox.retention_days (FOREMAN_INBOX_RETENTION_DAYS) must be at least 1".into()));
        }
        self.agent.validate().map_err(ConfigError)?;
        self.executor.validate().map_err(ConfigError)?;
        if self.store.cache_mb == 0 {
            return Err(ConfigError("store.cache_mb (FOREMAN_STORE_CACHE_MB) must be at least 1".into()));
        }
        self.scheduler.validate().map_err(ConfigError)?;
        self.server.validate()?;
        self.report.validate().map_err(ConfigError)?;
        if !(self.github.api_url.starts_with("http://") || self.github.api_url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "github.api_url (GITHUB_API_URL) must be an http:// or https:// URL, got '{}'",
                self.github.api_url
            )));
        }
        if self.github.poll_interval_secs == 0 {
            return Err(ConfigError("github.poll_interval_secs (GITHUB_POLL_INTERVAL_SECS) must be at least 1".into()));
        }
        if self.github.private_key.is_some() && self.github.private_key_path.is_some() {
            return Err(ConfigError(
                "set only one of github.private_key (GITHUB_PRIVATE_KEY) and github.private_key_path (GITHUB_PRIVATE_KEY_PATH)".into(),
            ));
        }
        Ok(())
    }
}

/// Turns figment's errors into one line per problem that names the key and, for environment
/// variables, the variable's own name. Values are never repeated, since they may be secrets.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let env = ENV_KEYS.iter().find(|(_, k)| *k == key).map(|(env, _)| *env);
            let from = match (&e.metadata, env) {
                (Some(m), Some(env)) if m.name.contains("environment") => format!(" (from {env})"),
                (Some(m), _) => match &m.source {
                    Some(source) => format!(" (from {source})"),
                    None => format!(" (from {})", m.name),
                },
                _ => String::new(),
            };
            let what = match &e.kind {
                figment::error::Kind::InvalidType(_, expected) => format!("expected {expected}"),
                figment::error::Kind::InvalidValue(_, expected) => format!("expected {expected}"),
                figment::error::Kind::UnknownField(..) => return format!("unknown key '{key}'{from}"),
                kind => kind.to_string(),
            };
            if key.is_empty() { format!("{what}{from}") } else { format!("{key}{from}: {what}") }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_need_no_configuration() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
            assert_eq!(c.data_dir, PathBuf::from("./data"));
            assert_eq!(c.log_format, LogFormat::Pretty);
            assert!(c.github.webhook_secret.is_empty());
            assert!(!c.github.has_app_credentials());
            assert_eq!(c.inbox.retention_days, 7);
            assert_eq!(
                (c.server.header_read_timeout_secs, c.server.idle_timeout_secs, c.server.max_connections),
                (10, 60, 512)
            );
            assert_eq!(c.server.max_unverified_body_bytes(), 64 * 1024 * 1024);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_and_secrets_split_on_commas() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("f.toml", "listen = \"127.0.0.1:1\"\n[github]\napp_id = 5\nwebhook_secret = [\"x\"]\n")?;
            jail.set_env("FOREMAN_LISTEN", "127.0.0.1:2");
            jail.set_env("GITHUB_WEBHOOK_SECRET", "old, new");
            let c = Config::load(Some(Path::new("f.toml"))).unwrap();
            assert_eq!(c.listen.port(), 2);
            assert_eq!(c.github.app_id, Some(5));
            let s: Vec<_> = c.github.webhook_secret.iter().map(|s| s.expose_secret().to_owned()).collect();
            assert_eq!(s, ["old", "new"]);
            Ok(())
        });
    }

    #[test]
    fn probots_variable_names_are_aliases_and_foremans_own_win() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("APP_ID", "42");
            jail.set_env("WEBHOOK_SECRET", "probot-secret");
            jail.set_env("PRIVATE_KEY_PATH", "/keys/app.pem");
            let c = Config::load(None).unwrap();
            assert_eq!(c.github.app_id, Some(42));
            let s: Vec<_> = c.github.webhook_secret.iter().map(|s| s.expose_secret().to_owned()).collect();
            assert_eq!(s, ["probot-secret"]);
            assert_eq!(c.github.private_key_path.as_deref(), Some(Path::new("/keys/app.pem")));
            jail.set_env("GITHUB_APP_ID", "7");
            assert_eq!(Config::load(None).unwrap().github.app_id, Some(7));
            Ok(())
        });
        for (alias, own) in ENV_ALIASES {
            assert!(ENV_KEYS.iter().any(|(k, _)| k == own), "{alias} names a variable Foreman reads");
            if SECRET_ENV_KEYS.contains(own) {
                assert!(SECRET_ENV_KEYS.contains(alias), "{alias} is removed from the environment like {own}");
            }
        }
    }

    #[test]
    fn a_bad_value_names_its_key_and_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOREMAN_LISTEN", "not-an-address");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("listen") && e.contains("FOREMAN_LISTEN"), "{e}");
            assert!(!e.contains("not-an-address") || e.contains("listen"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("f.toml", "[github]\nap_id = 5\n")?;
            let e = Config::load(Some(Path::new("f.toml"))).unwrap_err().to_string();
            assert!(e.contains("unknown key 'github.ap_id'"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOREMAN_MAX_UNVERIFIED_BODY_MB", "10");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("server.max_unverified_body_mb") && e.contains("FOREMAN_MAX_UNVERIFIED_BODY_MB"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("f.toml", "[server]\nheader_read_timeout_secs = 0\n")?;
            let e = Config::load(Some(Path::new("f.toml"))).unwrap_err().to_string();
            assert!(e.contains("server.header_read_timeout_secs"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOREMAN_INBOX_RETENTION_DAYS", "0");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("FOREMAN_INBOX_RETENTION_DAYS"), "{e}");
            Ok(())
        });
    }
}
