//! Claude credentials and their rotation: `CLAUDE_CODE_OAUTH_TOKEN`,
//! `CLAUDE_CODE_OAUTH_TOKEN_2`, `_3` …, then `ANTHROPIC_API_KEY`. When the CLI reports an authentication
//! failure the next one is used, for this session and the sessions after it.

use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::{ExposeSecret, SecretString};

/// Highest numbered OAuth token looked for (`CLAUDE_CODE_OAUTH_TOKEN_<n>`); gaps are skipped.
const MAX_NUMBERED_TOKENS: u32 = 32;

/// One credential: the variable it came from and is given to the CLI as, and its value.
#[derive(Debug)]
pub struct Credential {
    /// The variable name it was read from, e.g. `CLAUDE_CODE_OAUTH_TOKEN_2`; safe to log.
    pub source: String,
    /// The variable the CLI reads it from: `CLAUDE_CODE_OAUTH_TOKEN` or `ANTHROPIC_API_KEY`.
    pub env_name: &'static str,
    /// The secret.
    pub secret: SecretString,
}

/// The configured credentials, in rotation order, and which one is current.
#[derive(Debug, Default)]
pub struct Credentials {
    list: Vec<Credential>,
    current: AtomicUsize,
}

impl Credentials {
    /// Reads the credentials from Foreman's environment (see the module docs). Empty values are skipped.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// Reads the credentials from the given variables (see the module docs).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: std::collections::HashMap<String, String> =
            vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let mut list = Vec::new();
        let mut push = |source: String, env_name: &'static str| {
            if let Some(v) = vars.get(&source) {
                list.push(Credential { secret: SecretString::from(v.trim().to_owned()), source, env_name });
            }
        };
        push("CLAUDE_CODE_OAUTH_TOKEN".into(), "CLAUDE_CODE_OAUTH_TOKEN");
        for n in 2..=MAX_NUMBERED_TOKENS {
            push(format!("CLAUDE_CODE_OAUTH_TOKEN_{n}"), "CLAUDE_CODE_OAUTH_TOKEN");
        }
        push("ANTHROPIC_API_KEY".into(), "ANTHROPIC_API_KEY");
        Self { list, current: AtomicUsize::new(0) }
    }

    /// How many credentials are configured.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Every credential, in rotation order (for the registry of secrets scrubbed from what Foreman writes).
    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.list.iter()
    }

    /// Whether none is configured (the CLI then uses whatever login its `HOME` holds).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The index of the current credential.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.list.len().max(1)
    }

    /// The credential at `index` (modulo the count), or `None` when there are none.
    pub fn get(&self, index: usize) -> Option<&Credential> {
        (!self.list.is_empty()).then(|| &self.list[index % self.list.len()])
    }

    /// Records that the credential at `failed` was rejected: the next one becomes current (unless another
    /// session already moved on). Returns the new current index.
    pub fn rotate_from(&self, failed: usize) -> usize {
        let n = self.list.len().max(1);
        let next = (failed + 1) % n;
        let _ = self.current.compare_exchange(failed % n, next, Ordering::Relaxed, Ordering::Relaxed);
        self.current()
    }

    /// The `(variable, value)` pair to put in the agent's environment for the credential at `index`.
    pub(crate) fn env_pair(&self, index: usize) -> Option<(&'static str, String)> {
        self.get(index).map(|c| (c.env_name, c.secret.expose_secret().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_oauth_tokens_then_api_key_and_rotation_wraps() {
        let c = Credentials::from_vars(
            [
                ("ANTHROPIC_API_KEY", "k"),
                ("CLAUDE_CODE_OAUTH_TOKEN_3", "t3"),
                ("CLAUDE_CODE_OAUTH_TOKEN", "t1"),
                ("CLAUDE_CODE_OAUTH_TOKEN_2", " "),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        );
        let sources: Vec<_> = c.list.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN_3", "ANTHROPIC_API_KEY"]);
        assert_eq!(c.env_pair(1), Some(("CLAUDE_CODE_OAUTH_TOKEN", "t3".to_owned())));
        assert_eq!(c.rotate_from(0), 1);
        assert_eq!(c.rotate_from(0), 1, "a stale rotation does not skip a credential");
        assert_eq!(c.rotate_from(1), 2);
        assert_eq!(c.rotate_from(2), 0);
    }
}
