//! The `[github]` configuration section: App credentials, webhook secrets, where the API is.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// The `[github]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Webhook secrets: a comma-separated string or a list. Every one is tried, so a secret can be
    /// rotated by configuring old and new together. Empty: one is generated into the data directory.
    #[serde(default, deserialize_with = "secret_list")]
    pub webhook_secret: Vec<SecretString>,
    /// The GitHub App's id (`GITHUB_APP_ID`).
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The App's private key in PEM, inline.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// A file holding the App's private key in PEM.
    #[serde(default)]
    pub private_key_path: Option<PathBuf>,
    /// REST base URL. Default `https://api.github.com`; GitHub Enterprise Server uses `https://HOST/api/v3`.
    pub api_url: String,
    /// Least time between two mutations (POST, PATCH, PUT, DELETE, GraphQL mutation) for one installation, in
    /// milliseconds. Default 1000, GitHub's guidance against secondary rate limits ("Best practices for using
    /// the REST API"); a GitHub Enterprise Server with its own limits, or a simulator, may take less.
    #[serde(default = "default_mutation_interval_ms")]
    pub mutation_interval_ms: u64,
    /// How deliveries reach Foreman: `webhook` (the default; GitHub POSTs them to `/api/github/webhooks`)
    /// or `poll` (Foreman reads them from the App's delivery log; no public URL needed).
    #[serde(default)]
    pub delivery_mode: DeliveryMode,
    /// In `poll` mode, seconds between two reads of the delivery log. Default [`DEFAULT_POLL_INTERVAL_SECS`];
    /// at least 1.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
}

/// How deliveries reach Foreman (`github.delivery_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// GitHub POSTs each delivery to the webhook URL (`/api/github/webhooks`).
    #[default]
    Webhook,
    /// Foreman reads new deliveries from the App's delivery log (`GET /app/hook/deliveries`) every
    /// `github.poll_interval_secs`. GitHub records a delivery it could not send too, so this works without a
    /// public URL (a laptop).
    Poll,
}

/// The default `github.poll_interval_secs`: 5 s. An event reaches Foreman within about that long, close to a
/// webhook's feel for someone trying Foreman, while a pass that finds nothing new costs one request
/// (720 an hour), well inside the App's 5,000 requests an hour.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;

fn default_poll_interval_secs() -> u64 {
    DEFAULT_POLL_INTERVAL_SECS
}

fn default_mutation_interval_ms() -> u64 {
    1000
}

impl GithubConfig {
    /// Whether App credentials are configured, so Foreman can act on GitHub rather than only store deliveries.
    pub fn has_app_credentials(&self) -> bool {
        self.app_id.is_some() && (self.private_key.is_some() || self.private_key_path.is_some())
    }
}

/// Accepts `"a,b"` or `["a", "b"]`; blanks are dropped.
fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
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
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).map(SecretString::from).collect())
}
