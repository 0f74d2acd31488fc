//! The agent's environment, built from an allowlist: the process starts from an empty environment
//! (`env_clear`) and gets only what is listed here, what `agent.env` / `agent.env_allow` add, and what the
//! backend sets. Foreman's own secrets can never be added.

use std::collections::BTreeMap;

/// Variables passed through from Foreman's environment to every agent: what a shell, git, Node.js and TLS
/// need to work, and proxy settings. No credentials.
pub const BASE_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];

/// Foreman's secrets and the variables that point at them: never in an agent's environment, whatever the
/// configuration says. (The app's private key, the webhook secret, the admin token: `config::ENV_KEYS`.)
const FORBIDDEN: &[&str] = &[
    "FOREMAN_ADMIN_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_APP_ID",
    "GITHUB_TOKEN",
    "GH_TOKEN",
];

/// Whether `name` may never be given to an agent (compared case-insensitively).
pub fn is_forbidden(name: &str) -> bool {
    FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// Builds the agent's environment: [`BASE_ALLOWLIST`] and `allow` taken from `parent` (Foreman's own
/// environment), then `fixed` on top. Forbidden names are dropped even if listed.
pub fn build(
    parent: impl IntoIterator<Item = (String, String)>,
    allow: &[String],
    fixed: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = parent
        .into_iter()
        .filter(|(k, _)| BASE_ALLOWLIST.contains(&k.as_str()) || allow.iter().any(|a| a == k))
        .collect();
    env.extend(fixed.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.retain(|k, _| !is_forbidden(k));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_pass_even_when_allowed() {
        let parent = [
            ("PATH", "/bin"),
            ("GITHUB_PRIVATE_KEY", "pem"),
            ("GITHUB_WEBHOOK_SECRET", "s"),
            ("FOREMAN_ADMIN_TOKEN", "t"),
            ("RANDOM", "r"),
            ("EXTRA", "e"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let fixed = BTreeMap::from([("GITHUB_WEBHOOK_SECRET".to_owned(), "x".to_owned())]);
        let env = build(parent, &["EXTRA".into(), "FOREMAN_ADMIN_TOKEN".into()], &fixed);
        assert_eq!(env.keys().collect::<Vec<_>>(), ["EXTRA", "PATH"]);
    }
}
