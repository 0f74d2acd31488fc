//! The registry of secret values Foreman holds, and the scrubbing of every text the GitHub client writes.
//!
//! Token-shaped strings are caught by [`redact_tokens`]; a secret of any other shape (a webhook secret, the
//! admin token, a line of the app's private key, an `agent.env` value) can only be caught by its exact value.
//! The registry holds those values (in [`SecretString`]s):
//!
//! - the webhook secrets (`github.webhook_secret`, or the generated one) and the admin token, registered at
//!   start;
//! - every line of the app's private key but its `-----BEGIN`/`-----END` lines, registered by
//!   [`super::Client::new`];
//! - every installation token the client mints, registered when minted and dropped
//!   [`EXPIRED_TOKEN_GRACE`] after it expires;
//! - the Claude credentials Foreman hands to agents (`CLAUDE_CODE_OAUTH_TOKEN…`, `ANTHROPIC_API_KEY`);
//! - the values of `agent.env` entries, and of variables `agent.env_allow` passes through, whose name says
//!   they are secret ([`is_secret_name`]: it contains `KEY`, `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD` or
//!   `CREDENTIAL`, in any case). Naming is how an operator marks one: `DEPLOY_TOKEN = "…"` is scrubbed,
//!   `GREETING = "…"` is not.
//!
//! [`SecretRegistry::scrub`] replaces with `[redacted]`, in this order: every registered value; every
//! fragment of [`MIN_SECRET_BYTES`] or more at a value's start or end (what a byte or line bound leaves of a
//! secret it cut in two: a log tail that starts mid-secret, a summary cut mid-secret); then every
//! token-shaped string ([`redact_tokens`]). Exact values go first so that a token shape inside a longer
//! secret cannot hide the rest of it. Overlapping values are matched leftmost-longest, so the longer
//! secret is replaced whole. The client runs the scrub over every string of every request body it sends
//! ([`super::Client`]), so no caller can forget; only the branch names, ids and GraphQL documents Foreman
//! makes itself are left as they are ([`IDENTIFIER_KEYS`]).
//!
//! Limits, by decision:
//! - a value shorter than [`MIN_SECRET_BYTES`] (8 bytes) is not matched: matching it would redact ordinary
//!   words (`main`, `true`), and a secret that short is guessable anyway. Registering one logs a warning that
//!   names its setting (never its value); the private key's short last line is skipped silently.
//! - a value holding whitespace is matched whole and piece by piece (each whitespace-free piece of 8 bytes
//!   or more, with its own start and end fragments).
//! - start and end fragments are generated for pieces of at most [`MAX_FRAGMENTED_BYTES`]; a longer piece
//!   is matched whole only (fragments grow with the square of the length).
//! - a secret re-encoded (base64, reversed, split with spaces, percent-encoded) is not recognised: the
//!   registry is a net for text that leaks by accident. Keeping Foreman's secrets out of an agent's reach is
//!   the sandbox's job.
//! - the automaton that matches the values holds their bytes in memory, as the secrecy types do, but does
//!   not zero them when dropped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aho_corasick::{AhoCorasick, MatchKind};
use secrecy::{ExposeSecret, SecretString};

use super::redact::{REDACTED, redact_tokens};

/// Shortest value (and fragment of a value) matched, in bytes. See the module docs.
pub const MIN_SECRET_BYTES: usize = 8;

/// Longest whitespace-free piece of a value whose start and end fragments are matched, in bytes. Longer
/// pieces are matched whole only. A private key line is 64 bytes and a Claude OAuth token about 110; 1 KiB
/// leaves room for any credential while bounding one value's patterns to about 2,000 (about 1 MiB).
pub const MAX_FRAGMENTED_BYTES: usize = 1024;

/// How long an installation token stays registered after its `expires_at`. An expired token opens nothing,
/// but GitHub's clock and this machine's may differ by a few minutes; ten bounds that with room.
pub const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(600);

/// Request body keys whose values [`SecretRegistry::scrub_json`] leaves alone: names GitHub must find as
/// they are, which Foreman makes itself or read from GitHub (a pull request's `head` and `base` branches, a
/// check run's `head_sha` and `external_id`, a reaction's `content`, a GraphQL document's `query`). An
/// ordinary word that happens to share eight bytes with a secret's start or end must not turn
/// `foreman/12-rotate-the-webhook-secret` into a branch that does not exist.
pub const IDENTIFIER_KEYS: &[&str] = &["head", "base", "head_sha", "external_id", "content", "query"];

/// Words that mark an environment variable's value as a secret (see [`is_secret_name`]).
const SECRET_NAME_WORDS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];

/// Whether an environment variable named `name` holds a secret: its name contains `KEY`, `TOKEN`, `SECRET`,
/// `PASSWORD`, `PASSWD` or `CREDENTIAL`, in any case (`NPM_TOKEN`, `aws_secret_access_key`, `DB_PASSWORD`).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_WORDS.iter().any(|w| upper.contains(w))
}

/// The secret values Foreman holds, matched in every text it writes to GitHub (see the module docs).
///
/// Cheap to clone: clones share the registry. [`Default`] is an empty registry of its own.
#[derive(Clone, Default)]
pub struct SecretRegistry {
    inner: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    /// Values registered for the life of the process.
    fixed: Vec<SecretString>,
    /// Installation tokens and when they expire.
    minted: Vec<(SecretString, SystemTime)>,
    /// Matches every value and fragment; `None` while there is none.
    matcher: Option<AhoCorasick>,
    /// How many patterns `matcher` holds.
    patterns: usize,
}

impl State {
    /// Builds the automaton anew from the registered values.
    fn rebuild(&mut self) {
        let mut patterns: Vec<&str> = Vec::new();
        for value in self.fixed.iter().chain(self.minted.iter().map(|(t, _)| t)) {
            fragments(value.expose_secret(), &mut patterns);
        }
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            self.matcher = None;
            self.patterns = 0;
            return;
        }
        match AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns) {
            Ok(matcher) => {
                self.patterns = patterns.len();
                self.matcher = Some(matcher);
            }
            // Only a pattern set beyond the automaton's state limits (billions of bytes) fails; the previous
            // automaton keeps matching what it knew.
            Err(e) => tracing::error!(error = %e, "cannot match the registered secrets; the previous set is kept"),
        }
    }
}

/// Pushes onto `out` what matches `value`: the value itself, its whitespace-free pieces, and each one's start
/// and end fragments of [`MIN_SECRET_BYTES`] or more (cut at character boundaries, so each is UTF-8 and
/// every match falls on character boundaries of the text).
fn fragments<'a>(value: &'a str, out: &mut Vec<&'a str>) {
    let value = value.trim();
    if value.len() < MIN_SECRET_BYTES {
        return;
    }
    let mut pieces = vec![value];
    if value.contains(char::is_whitespace) {
        pieces.extend(value.split_whitespace().filter(|p| p.len() >= MIN_SECRET_BYTES));
    }
    for piece in pieces {
        out.push(piece);
        if piece.len() > MAX_FRAGMENTED_BYTES {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            if at >= MIN_SECRET_BYTES {
                out.push(&piece[..at]);
            }
            if piece.len() - at >= MIN_SECRET_BYTES {
                out.push(&piece[at..]);
            }
        }
    }
}

impl SecretRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a value Foreman holds for the life of the process. `source` names where it came from (a
    /// setting or variable, e.g. `github.webhook_secret`) for the warning logged when the value is shorter
    /// than [`MIN_SECRET_BYTES`] and so cannot be matched. Returns whether it is matched. Empty values are
    /// ignored without a warning.
    pub fn register(&self, source: &str, value: &SecretString) -> bool {
        let trimmed = value.expose_secret().trim();
        if trimmed.is_empty() {
            return false;
        }
        if trimmed.len() < MIN_SECRET_BYTES {
            tracing::warn!(
                source,
                min_bytes = MIN_SECRET_BYTES,
                "a secret is too short to be scrubbed from what Foreman writes on GitHub; use a longer one"
            );
            return false;
        }
        let mut state = self.inner.write().expect("secret registry lock");
        if state.fixed.iter().any(|s| s.expose_secret().trim() == trimmed) {
            return true;
        }
        state.fixed.push(SecretString::from(trimmed.to_owned()));
        state.rebuild();
        true
    }

    /// Registers each line of a PEM private key but its `-----BEGIN`/`-----END` lines (and lines shorter than
    /// [`MIN_SECRET_BYTES`], such as a short last line of base64, which are skipped silently). Returns how
    /// many lines were registered.
    pub fn register_private_key(&self, pem: &SecretString) -> usize {
        let lines: Vec<&str> = pem
            .expose_secret()
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && l.len() >= MIN_SECRET_BYTES)
            .collect();
        let mut state = self.inner.write().expect("secret registry lock");
        let mut added = 0;
        for line in &lines {
            if !state.fixed.iter().any(|s| s.expose_secret() == *line) {
                state.fixed.push(SecretString::from((*line).to_owned()));
                added += 1;
            }
        }
        if added > 0 {
            state.rebuild();
        }
        lines.len()
    }

    /// Registers an installation token minted now, which expires at `expires_at` (GitHub's `expires_at`).
    /// Tokens expired more than [`EXPIRED_TOKEN_GRACE`] ago are dropped at the same time, so the registry
    /// holds about one hour of tokens however long Foreman runs.
    pub fn register_minted(&self, token: &SecretString, expires_at: SystemTime) {
        let now = SystemTime::now();
        let mut state = self.inner.write().expect("secret registry lock");
        state.minted.retain(|(_, exp)| *exp + EXPIRED_TOKEN_GRACE > now);
        if token.expose_secret().trim().len() >= MIN_SECRET_BYTES {
            state.minted.push((token.clone(), expires_at));
        }
        state.rebuild();
    }

    /// Registers the values of the variables named in `env` (the `agent.env` table) and in `passed` (the
    /// `agent.env_allow` names, read from `parent`, Foreman's environment) whose name marks them secret
    /// ([`is_secret_name`]). Returns how many were registered.
    pub fn register_agent_env(
        &self,
        env: &BTreeMap<String, String>,
        passed: &[String],
        parent: impl IntoIterator<Item = (String, String)>,
    ) -> usize {
        let mut n = 0;
        for (name, value) in env.iter().filter(|(name, _)| is_secret_name(name)) {
            n += usize::from(self.register(&format!("agent.env.{name}"), &SecretString::from(value.clone())));
        }
        for (name, value) in parent.into_iter().filter(|(name, _)| is_secret_name(name) && passed.contains(name)) {
            n += usize::from(self.register(&name, &SecretString::from(value)));
        }
        n
    }

    /// How many values are registered (fixed and minted).
    pub fn len(&self) -> usize {
        let state = self.inner.read().expect("secret registry lock");
        state.fixed.len() + state.minted.len()
    }

    /// Whether no value is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` with every registered value and fragment, then every token-shaped string, replaced by
    /// `[redacted]` (see the module docs). Borrows when nothing matched. Linear in the text's length.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let exact = {
            let state = self.inner.read().expect("secret registry lock");
            match &state.matcher {
                Some(m) if m.is_match(text) => {
                    let mut out = String::with_capacity(text.len());
                    m.replace_all_with(text, &mut out, |_, _, out| {
                        out.push_str(REDACTED);
                        true
                    });
                    Cow::Owned(out)
                }
                _ => Cow::Borrowed(text),
            }
        };
        match exact {
            Cow::Borrowed(t) => redact_tokens(t),
            Cow::Owned(t) => Cow::Owned(redact_tokens(&t).into_owned()),
        }
    }

    /// Scrubs every string in `value` (object values and array items, at any depth) in place, but the values
    /// of [`IDENTIFIER_KEYS`] and object keys, which are Foreman's own and must reach GitHub as they are.
    pub fn scrub_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(clean) = self.scrub(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            serde_json::Value::Object(map) => map
                .iter_mut()
                .filter(|(k, _)| !IDENTIFIER_KEYS.contains(&k.as_str()))
                .for_each(|(_, v)| self.scrub_json(v)),
            _ => {}
        }
    }
}

impl std::fmt::Debug for SecretRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.read().expect("secret registry lock");
        f.debug_struct("SecretRegistry")
            .field("fixed", &state.fixed.len())
            .field("minted", &state.minted.len())
            .field("patterns", &state.patterns)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn registered_values_of_any_shape_are_replaced_and_the_rest_is_kept() {
        let r = SecretRegistry::new();
        assert!(r.register("github.webhook_secret", &secret("e2e-webhook-secret")));
        assert!(r.register("admin_token", &secret("  correct horse battery staple  ")));
        let text = "hook e2e-webhook-secret, admin correct horse battery staple, token \
                    ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789, words kept";
        let out = r.scrub(text);
        assert_eq!(
            out, "hook [redacted], admin [redacted], token [redacted], words kept",
            "exact values first, then token shapes"
        );
        assert!(matches!(r.scrub("nothing secret here"), Cow::Borrowed(_)));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn short_and_empty_values_are_not_matched() {
        let r = SecretRegistry::new();
        assert!(!r.register("agent.env.PIN_TOKEN", &secret("1234567")));
        assert!(!r.register("admin_token", &secret("   ")));
        assert!(r.register("agent.env.LONG_TOKEN", &secret("12345678")));
        assert_eq!(r.scrub("pin 1234567, long 12345678"), "pin 1234567, long [redacted]");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_secret_cut_in_two_leaves_no_piece_of_eight_bytes_or_more() {
        let r = SecretRegistry::new();
        r.register("github.webhook_secret", &secret("0123456789abcdefghij"));
        // A bound that kept the end of a log, or the start of a summary, cut the secret.
        assert_eq!(r.scrub("…56789abcdefghij and more"), "…[redacted] and more");
        assert_eq!(r.scrub("summary 0123456789abc\n\n… (cut)"), "summary [redacted]\n\n… (cut)");
        // Seven bytes of an end are too few to tell from ordinary text. (Eight are enough: values that share
        // eight bytes with ordinary text, as test values do, redact it too; real secrets are random.)
        assert_eq!(r.scrub("defghij"), "defghij");
        // The whole value wins over its own fragments, and two values overlapping are replaced whole.
        r.register("admin_token", &secret("abcdefghijKLMNOPQRST"));
        assert_eq!(r.scrub("x0123456789abcdefghijKLMNOPQRSTy"), "x[redacted][redacted]y");
    }

    #[test]
    fn a_token_shape_inside_a_longer_secret_does_not_hide_the_rest() {
        let r = SecretRegistry::new();
        r.register("agent.env.DEPLOY_KEY", &secret("prefix-ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-suffix"));
        let out = r.scrub("value prefix-ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-suffix end");
        assert_eq!(out, "value [redacted] end");
    }

    #[test]
    fn private_key_lines_are_registered_but_not_the_armour() {
        let r = SecretRegistry::new();
        let pem = "-----BEGIN RSA PRIVATE KEY-----\n\
                   MIIEpAIBAAKCAQEAxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyz\n\
                   Q29udGludWF0aW9uIG9mIHRoZSBrZXkgbWF0ZXJpYWwgaGVyZQ==\n\
                   AbC=\n\
                   -----END RSA PRIVATE KEY-----\n";
        assert_eq!(r.register_private_key(&secret(pem)), 2);
        let out =
            r.scrub("leaked: Q29udGludWF0aW9uIG9mIHRoZSBrZXkgbWF0ZXJpYWwgaGVyZQ== and -----END RSA PRIVATE KEY-----");
        assert_eq!(out, "leaked: [redacted] and -----END RSA PRIVATE KEY-----");
    }

    #[test]
    fn minted_tokens_are_matched_until_they_have_long_expired() {
        let r = SecretRegistry::new();
        let old = SystemTime::now() - EXPIRED_TOKEN_GRACE - Duration::from_secs(1);
        r.register_minted(&secret("minted-first-T7hq2Lx9"), old);
        assert_eq!(r.scrub("minted-first-T7hq2Lx9"), "[redacted]");
        r.register_minted(&secret("minted-second-Wc4Rn8Jp"), SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(r.len(), 1, "the long-expired token was dropped when the next was minted");
        assert_eq!(r.scrub("minted-first-T7hq2Lx9 minted-second-Wc4Rn8Jp"), "minted-first-T7hq2Lx9 [redacted]");
    }

    #[test]
    fn agent_env_values_are_secret_by_their_name() {
        for name in ["NPM_TOKEN", "aws_secret_access_key", "DB_PASSWORD", "SSH_KEY", "GCP_CREDENTIALS"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["GREETING", "HOME", "GIT_AUTHOR_NAME", "ANTHROPIC_BASE_URL"] {
            assert!(!is_secret_name(name), "{name}");
        }
        let r = SecretRegistry::new();
        let env: BTreeMap<String, String> =
            [("DEPLOY_TOKEN", "deploy-value-7f3a9c2e51"), ("GREETING", "plain-greeting-words")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        let parent = [("NPM_TOKEN", "npm-passed-through-1234"), ("OTHER_TOKEN", "other-value-Zk81Qw")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(r.register_agent_env(&env, &["NPM_TOKEN".to_owned()], parent), 2);
        assert_eq!(
            r.scrub("deploy-value-7f3a9c2e51 plain-greeting-words npm-passed-through-1234 other-value-Zk81Qw"),
            "[redacted] plain-greeting-words [redacted] other-value-Zk81Qw"
        );
    }

    #[test]
    fn json_bodies_are_scrubbed_at_every_depth() {
        let r = SecretRegistry::new();
        r.register("admin_token", &secret("admin-token-value"));
        let mut body = serde_json::json!({
            "title": "t admin-token-value",
            "output": { "summary": "s admin-token-value", "annotations": [{ "message": "admin-token-value" }] },
            "draft": false,
        });
        r.scrub_json(&mut body);
        assert!(!body.to_string().contains("admin-token"), "{body}");
        assert_eq!(body["output"]["annotations"][0]["message"], "[redacted]");
        let mut pull = serde_json::json!({ "title": "x-token-value", "head": "foreman/1-rotate-x-token-value" });
        r.scrub_json(&mut pull);
        assert_eq!(pull, serde_json::json!({ "title": "x[redacted]", "head": "foreman/1-rotate-x-token-value" }));
        assert!(!format!("{r:?}").contains("admin"), "Debug shows counts only: {r:?}");
    }
}
