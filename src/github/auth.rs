//! App authentication: the app's JWT, and installation tokens cached until shortly before they expire.
//!
//! GitHub's rules (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>):
//! RS256, `iat` 60 s in the past against clock drift, `exp` at most 10 minutes after `iat`, `iss` the app id.
//! The private key is held here as a parsed signing key and never leaves this module.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::Serialize;

use super::GithubError;

/// How far in the past `iat` is set: GitHub's recommendation against clock drift.
const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// How long an app JWT is valid after `iat`: 9 minutes, under GitHub's 10-minute maximum, so a clock running
/// slightly ahead does not make GitHub refuse it.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);

/// The app's signing identity. Its `Debug` shows only the app id.
pub(crate) struct AppAuth {
    app_id: u64,
    key: EncodingKey,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

impl AppAuth {
    /// Parses the PEM (PKCS#1 or PKCS#8 RSA). Errors say what is wrong without echoing the key.
    pub(crate) fn new(app_id: u64, pem: &[u8]) -> Result<Self, GithubError> {
        let key = EncodingKey::from_rsa_pem(pem)
            .map_err(|_| GithubError::Credentials("the private key is not an RSA key in PEM".into()))?;
        Ok(Self { app_id, key })
    }

    pub(crate) fn app_id(&self) -> u64 {
        self.app_id
    }

    /// A fresh app JWT, valid from 60 s ago for 9 minutes.
    pub(crate) fn jwt(&self, now: SystemTime) -> Result<SecretString, GithubError> {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let iat = now.saturating_sub(JWT_BACKDATE);
        let claims = Claims { iat: iat.as_secs(), exp: (iat + JWT_LIFETIME).as_secs(), iss: self.app_id.to_string() };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(SecretString::from)
            .map_err(|e| GithubError::Credentials(format!("signing the app JWT failed: {e}")))
    }
}

/// An installation access token and when it expires. `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct InstallationToken {
    /// The token, for `Authorization: Bearer` or as a git password (user `x-access-token`).
    pub token: SecretString,
    /// `expires_at` from GitHub (one hour after minting).
    pub expires_at: SystemTime,
}

impl InstallationToken {
    /// Whether the token is still good for at least `margin`.
    pub(crate) fn fresh(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at.duration_since(now).is_ok_and(|left| left > margin)
    }
}

/// Parses GitHub's RFC 3339 `expires_at`.
pub(crate) fn parse_expiry(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use secrecy::ExposeSecret;

    #[test]
    fn a_bad_key_is_refused_without_echoing_it() {
        let e = AppAuth::new(1, b"-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(!e.to_string().contains("not a key"), "{e}");
    }

    #[test]
    fn expiry_margin_is_honoured() {
        let now = SystemTime::now();
        let t = InstallationToken { token: "x".into(), expires_at: now + Duration::from_secs(600) };
        assert!(t.fresh(now, Duration::from_secs(300)));
        assert!(!t.fresh(now, Duration::from_secs(600)));
        assert!(!t.fresh(now + Duration::from_secs(700), Duration::ZERO));
        assert_eq!(
            parse_expiry("2016-07-11T22:14:10Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_468_275_250))
        );
    }

    #[test]
    fn jwt_claims_follow_githubs_rules() {
        // A throwaway 2048-bit key made for this test only.
        let pem = include_bytes!("testdata/app-key.pem");
        let public = include_bytes!("testdata/app-key.pub.pem");
        let auth = AppAuth::new(4242, pem).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let jwt = auth.jwt(now).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_required_spec_claims(&["iat", "exp", "iss"]);
        v.set_issuer(&["4242"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            jwt.expose_secret(),
            &DecodingKey::from_rsa_pem(public).unwrap(),
            &v,
        )
        .unwrap();
        let iat = data.claims["iat"].as_u64().unwrap();
        let exp = data.claims["exp"].as_u64().unwrap();
        assert_eq!(iat, 2_000_000_000 - 60);
        assert!(exp - iat < 600 && exp > 2_000_000_000);
    }
}
