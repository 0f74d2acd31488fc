//! One-time session tokens: the only credential a runner gets from Foreman. A random value handed out in
//! the workflow's dispatch inputs, kept by Foreman only as its SHA-256 digest, bound to one session id, and
//! valid until the session ends, is stopped, or its claim expires ([`super::registry`]).

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// How a session token begins (`fst_` then 64 hex digits): recognisable in a leaked log.
pub const PREFIX: &str = "fst_";

/// A session token: 32 random bytes, hex, after [`PREFIX`].
#[derive(Debug)]
pub struct SessionToken(SecretString);

impl SessionToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(SecretString::from(format!("{PREFIX}{}", hex::encode(bytes))))
    }

    /// The token's value, for the dispatch inputs only.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// Its digest, what Foreman keeps.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.0.expose_secret())
    }
}

/// The SHA-256 digest of a token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(…)")
    }
}

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `token` has this digest. The comparison takes the same time wherever the digests differ.
    pub fn matches(&self, token: &str) -> bool {
        let other = Self::of(token);
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}
