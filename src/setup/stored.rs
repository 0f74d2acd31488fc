//! The App registered from the setup page, kept in the data directory: `DATA_DIR/github-app.json`, mode
//! 0600, written whole (a temporary file renamed over it after a flush), so a crash leaves the old file or
//! the new one. It holds the App's id, slug, name, page, owner, private key (PEM), webhook secret and OAuth
//! client id and secret, under the field names of GitHub's `POST /app-manifests/{code}/conversions` answer.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The file in the data directory holding the registered App.
pub const FILE: &str = "github-app.json";

/// An App registered through the manifest flow. Its secrets are never logged nor shown.
#[derive(Debug, Clone)]
pub struct StoredApp {
    /// The App's id (`GITHUB_APP_ID`).
    pub id: u64,
    /// Its slug: its bot is `{slug}[bot]`, its installation page `{web}/apps/{slug}/installations/new`.
    pub slug: String,
    /// Its name as GitHub shows it.
    pub name: String,
    /// Its page on GitHub.
    pub html_url: String,
    /// The login of the account (user or organisation) owning it, when GitHub said.
    pub owner: Option<String>,
    /// The private key in PEM.
    pub pem: SecretString,
    /// The webhook secret GitHub signs deliveries with.
    pub webhook_secret: Option<SecretString>,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: SecretString,
}

/// The conversion's answer as GitHub gives it, and the file's format.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    id: u64,
    slug: String,
    name: String,
    html_url: String,
    #[serde(default)]
    owner: Option<Owner>,
    pem: String,
    #[serde(default)]
    webhook_secret: Option<String>,
    client_id: String,
    client_secret: String,
}

#[derive(Serialize, Deserialize)]
struct Owner {
    login: String,
}

/// Why the stored App could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file (or GitHub's answer) is not the expected JSON; the message names the field, not its value.
    #[error("{what} is not a GitHub App conversion: {reason}")]
    Format {
        /// The file, or "GitHub's answer".
        what: String,
        /// serde's reason (a field name and position, never a value).
        reason: String,
    },
}

impl StoredApp {
    /// Reads GitHub's answer to `POST /app-manifests/{code}/conversions`.
    ///
    /// Errors: [`StoredError::Format`] when a field (`id`, `slug`, `pem`, `client_id`…) is missing.
    pub fn from_conversion(body: &[u8]) -> Result<Self, StoredError> {
        let disk: OnDisk = serde_json::from_slice(body)
            .map_err(|e| StoredError::Format { what: "GitHub's answer".into(), reason: reason(&e) })?;
        Ok(disk.into())
    }

    /// Reads `DATA_DIR/github-app.json`; `Ok(None)` when there is none.
    ///
    /// Errors: [`StoredError`] when it cannot be read or parsed.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, StoredError> {
        let path = data_dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoredError::Io { path, source }),
        };
        let disk: OnDisk = serde_json::from_slice(&bytes)
            .map_err(|e| StoredError::Format { what: path.display().to_string(), reason: reason(&e) })?;
        Ok(Some(disk.into()))
    }

    /// Writes `DATA_DIR/github-app.json` (mode 0600) durably: a temporary file in the same directory,
    /// flushed, then renamed over the old one.
    ///
    /// Errors: [`StoredError::Io`].
    pub fn save(&self, data_dir: &Path) -> Result<(), StoredError> {
        let path = data_dir.join(FILE);
        let tmp = data_dir.join(format!(".{FILE}.tmp"));
        let disk = OnDisk {
            id: self.id,
            slug: self.slug.clone(),
            name: self.name.clone(),
            html_url: self.html_url.clone(),
            owner: self.owner.clone().map(|login| Owner { login }),
            pem: self.pem.expose_secret().to_owned(),
            webhook_secret: self.webhook_secret.as_ref().map(|s| s.expose_secret().to_owned()),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.expose_secret().to_owned(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).expect("plain strings serialise");
        let io = |source| StoredError::Io { path: path.clone(), source };
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl From<OnDisk> for StoredApp {
    fn from(d: OnDisk) -> Self {
        StoredApp {
            id: d.id,
            slug: d.slug,
            name: d.name,
            html_url: d.html_url,
            owner: d.owner.map(|o| o.login),
            pem: SecretString::from(d.pem),
            webhook_secret: d.webhook_secret.filter(|s| !s.is_empty()).map(SecretString::from),
            client_id: d.client_id,
            client_secret: SecretString::from(d.client_secret),
        }
    }
}

/// serde's reason without the input: its category and position (serde_json never quotes a string value
/// in a "missing field" or type error, but an "invalid value" may; the category alone is kept then).
fn reason(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data if !e.to_string().starts_with("missing field") => {
            format!("a field has the wrong type (line {}, column {})", e.line(), e.column())
        }
        _ => e.to_string(),
    }
}
