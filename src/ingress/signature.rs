//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw request body, keyed by the webhook secret, as
//! `sha256=<64 lowercase hex digits>` (<https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The webhook secrets a delivery may be signed with. More than one is accepted at a time so a secret can
/// be rotated: configure old and new, change the App's secret on GitHub, then drop the old one.
///
/// Each secret's keyed HMAC state is prepared once; verifying a delivery clones it, so the per-request cost
/// is one pass of SHA-256 over the body per secret tried.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<HmacSha256>,
}

/// Why a signature was refused. The answer to GitHub is 401 either way; the variant is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("X-Hub-Signature-256 is not sha256=<hex digest>")]
    Malformed,
    /// Well formed, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
}

impl Verifier {
    /// Prepares a verifier for `secrets`. Panics on none: configuration guarantees at least one (a secret
    /// is generated when none is configured).
    pub fn new(secrets: &[SecretString]) -> Self {
        assert!(!secrets.is_empty(), "at least one webhook secret");
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.expose_secret().as_bytes()).expect("HMAC takes keys of any length"))
            .collect();
        Self { keys }
    }

    /// Checks `header` (the `X-Hub-Signature-256` value, if any) against `body`, in constant time per secret.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_digest = header.strip_prefix(b"sha256=").ok_or(SignatureError::Malformed)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(body);
            if mac.verify_slice(&expected).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// Signs `body` with `secret` the way GitHub does: `sha256=<hex>`. Used by tests, the simulator's peers and
/// the benchmark's load generator.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector, from the validating-webhook-deliveries page.
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_test_vector() {
        assert_eq!(sign(SECRET, BODY), SIGNATURE);
        let v = Verifier::new(&[SecretString::from(SECRET)]);
        assert_eq!(v.verify(Some(SIGNATURE.as_bytes()), BODY), Ok(()));
    }

    #[test]
    fn any_configured_secret_verifies_for_rotation() {
        let v = Verifier::new(&[SecretString::from("old"), SecretString::from(SECRET)]);
        assert_eq!(v.verify(Some(SIGNATURE.as_bytes()), BODY), Ok(()));
    }

    #[test]
    fn refusals() {
        let v = Verifier::new(&[SecretString::from(SECRET)]);
        assert_eq!(v.verify(None, BODY), Err(SignatureError::Missing));
        assert_eq!(v.verify(Some(b"sha1=abc"), BODY), Err(SignatureError::Malformed));
        assert_eq!(v.verify(Some(b"sha256=zz"), BODY), Err(SignatureError::Malformed));
        assert_eq!(v.verify(Some(SIGNATURE.as_bytes()), b"Hello, World?"), Err(SignatureError::Mismatch));
        let upper = SIGNATURE.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(v.verify(Some(upper.as_bytes()), BODY), Ok(()), "hex digits in either case");
    }
}
