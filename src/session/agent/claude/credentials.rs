//! Claude credentials and their rotation: `CLAUDE_CODE_OAUTH_TOKEN`,
//! `CLAUDE_CODE_OAUTH_TOKEN_2`, `_3` …, then `ANTHROPIC_API_KEY`. When the CLI reports an authentication
//! failure the next one is used, for this session and the sessions after it.
//!
//! A usage limit holds the credential, not the job: the credential that hit it is held until its reset
//! ([`Credentials::hold`]) and the next free one is used; when every credential is held, no session can
//! start until the earliest reset ([`Credentials::held_until`]), which the runner turns into a hold on
//! every new session. With no credential configured the CLI's own login is the one credential held.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;

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
#[derive(Debug)]
pub struct Credentials {
    list: Vec<Credential>,
    current: AtomicUsize,
    /// Per credential (one slot when none is configured): held by a usage limit until this time.
    holds: Mutex<Vec<Option<Timestamp>>>,
}

impl Default for Credentials {
    /// None configured: the CLI's own login, as one credential that can be held.
    fn default() -> Self {
        Self::from_vars(std::iter::empty())
    }
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
        let holds = Mutex::new(vec![None; list.len().max(1)]);
        Self { list, current: AtomicUsize::new(0), holds }
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

    /// Holds the credential at `index` until `until`: a usage limit reached with it.
    pub fn hold(&self, index: usize, until: Timestamp) {
        let mut holds = self.holds.lock().expect("holds lock");
        let n = holds.len();
        let slot = &mut holds[index % n];
        *slot = Some(slot.map_or(until, |t| t.max(until)));
    }

    /// The first credential from `from` (in rotation order) not held at `now`, or `Err` with the earliest
    /// reset when every one is held.
    pub fn free(&self, from: usize, now: Timestamp) -> Result<usize, Timestamp> {
        let holds = self.holds.lock().expect("holds lock");
        let n = holds.len();
        (0..n)
            .map(|k| (from + k) % n)
            .find(|i| holds[*i].is_none_or(|t| t <= now))
            .ok_or_else(|| holds.iter().flatten().copied().min().unwrap_or(now))
    }

    /// When every credential is held at `now`: the earliest reset, after which a session can start.
    pub fn held_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.free(self.current(), now).err()
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

    #[test]
    fn a_usage_limit_holds_its_credential_until_the_reset_and_the_next_free_one_is_used() {
        let c = Credentials::from_vars(
            [("CLAUDE_CODE_OAUTH_TOKEN", "t1"), ("CLAUDE_CODE_OAUTH_TOKEN_2", "t2")].map(|(a, b)| (a.into(), b.into())),
        );
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let reset = |h: i64| now + jiff::SignedDuration::from_hours(h);
        assert_eq!((c.free(0, now), c.held_until(now)), (Ok(0), None));
        c.hold(0, reset(5));
        assert_eq!((c.free(0, now), c.held_until(now)), (Ok(1), None));
        c.hold(1, reset(2));
        assert_eq!(c.free(0, now), Err(reset(2)), "every one held: the earliest reset");
        assert_eq!(c.held_until(now), Some(reset(2)));
        assert_eq!(c.free(0, reset(3)), Ok(1), "the second is free again after its reset");
        assert_eq!(c.held_until(reset(5)), None);
        // The CLI's own login, with nothing configured, is one credential too.
        let none = Credentials::from_vars(std::iter::empty());
        none.hold(0, reset(1));
        assert_eq!(none.held_until(now), Some(reset(1)));
    }
}
