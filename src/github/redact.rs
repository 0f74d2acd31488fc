//! Redaction of token-looking strings from text that leaves Foreman (comments, error messages, log tails).
//!
//! What counts as a secret (each replaced by `[redacted]`, the rest of the text kept):
//! - GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` followed by 20 or more alphanumerics, and
//!   fine-grained `github_pat_…` (<https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/>);
//! - Anthropic API keys and OAuth tokens: `sk-ant-…`;
//! - JSON Web Tokens (an app JWT): three base64url parts, the first starting `eyJ`;
//! - PEM private keys, from `-----BEGIN … PRIVATE KEY-----` to the matching end line;
//! - the password of a URL's userinfo (`https://user:secret@host` → `https://user:[redacted]@host`);
//! - the credential after `Authorization: Bearer|token|Basic`.
//!
//! This is a net for strings Foreman did not expect to see; code that holds a secret must still keep it out
//! of text in the first place ([`redact_exact`] for a secret Foreman knows).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          \bgh[pousr]_[A-Za-z0-9]{20,}
        | \bgithub_pat_[A-Za-z0-9_]{20,}
        | \bsk-ant-[A-Za-z0-9_\-]{16,}
        | \beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}
        | -----BEGIN[A-Z\ ]*PRIVATE\ KEY-----[\s\S]*?-----END[A-Z\ ]*PRIVATE\ KEY-----
        ",
    )
    .expect("valid regex")
});

static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@").expect("valid regex"));

static AUTH_HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(authorization:\s*(?:bearer|token|basic)\s+)[^\s]+").expect("valid regex"));

/// Replaces every token-looking string in `text` (see the module docs). Borrows when nothing matched.
pub fn redact_tokens(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (re, with) in [
        (&*TOKENS, REDACTED.to_owned()),
        (&*URL_PASSWORD, format!("${{1}}{REDACTED}@")),
        (&*AUTH_HEADER, format!("${{1}}{REDACTED}")),
    ] {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, with.as_str()).into_owned());
        }
    }
    out
}

/// Replaces every occurrence of `secret` (when not empty) and then every token-looking string.
pub fn redact_exact(text: &str, secret: &str) -> String {
    let text = if secret.is_empty() { text.to_owned() } else { text.replace(secret, REDACTED) };
    redact_tokens(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_the_rest_is_kept() {
        let text = "token ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 and github_pat_11ABCDEFG0123456789_abcdefghij\n\
                    key sk-ant-api03-abcdefghijklmnopqrstuv jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMDAxIn0.c2lnbmF0dXJlMTIz\n\
                    url https://x-access-token:s3cret@github.com/o/r.git Authorization: Bearer abc.def\n\
                    -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done";
        let out = redact_tokens(text);
        for secret in ["ghs_AbCd", "github_pat_11", "sk-ant-api03", "eyJhbGci", "s3cret", "abc.def", "MIIE"] {
            assert!(!out.contains(secret), "{secret} survived: {out}");
        }
        assert!(out.contains("https://x-access-token:[redacted]@github.com/o/r.git"), "{out}");
        assert!(out.ends_with("[redacted] done"), "{out}");
        assert!(matches!(redact_tokens("ghs_short and plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn an_exact_secret_is_redacted_whatever_it_looks_like() {
        assert_eq!(redact_exact("password hunter2 ok", "hunter2"), "password [redacted] ok");
        assert_eq!(redact_exact("nothing", ""), "nothing");
    }
}
