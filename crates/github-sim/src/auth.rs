//! App authentication: the app's RSA key, app JWT verification and installation tokens.
//!
//! Rules from "Generating a JSON Web Token (JWT) for a GitHub App" (docs.github.com): RS256,
//! `iss` is the app id (or client id), `iat` at most 60 s in the future, `exp` no more than
//! 10 minutes after `iat` and not in the past.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

/// Longest JWT lifetime GitHub accepts, `exp - iat` (10 minutes).
pub const MAX_JWT_LIFETIME_SECS: i64 = 600;
/// How far in the future GitHub tolerates `iat` (clock drift allowance, 60 s).
pub const IAT_DRIFT_SECS: i64 = 60;

/// The app's key pair: PKCS#8 PEM for the app (Foreman) and the public key for verification.
pub struct AppKey {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_pem: String,
    decoding: DecodingKey,
}

impl AppKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> anyhow::Result<Self> {
        let kp = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let der = kp.as_der().map_err(|_| anyhow::anyhow!("PKCS#8 encoding failed"))?;
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        Self::from_parts(private_pem, kp.public_key().as_ref())
    }

    /// Loads a PKCS#8 PEM written earlier (so a restarted simulator keeps its key).
    pub fn from_pem(private_pem: &str) -> anyhow::Result<Self> {
        let p = pem::parse(private_pem)?;
        let kp = KeyPair::from_pkcs8(p.contents()).map_err(|e| anyhow::anyhow!("bad key: {e}"))?;
        Self::from_parts(private_pem.to_string(), kp.public_key().as_ref())
    }

    fn from_parts(private_pem: String, public_pkcs1_der: &[u8]) -> anyhow::Result<Self> {
        Ok(AppKey { private_pem, decoding: DecodingKey::from_rsa_der(public_pkcs1_der) })
    }

    /// Verifies an app JWT. Errors carry GitHub's message texts.
    pub fn verify_jwt(&self, jwt: &str, app_id: u64, client_id: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Claims {
            iat: Option<i64>,
            exp: Option<i64>,
            iss: Option<serde_json::Value>,
        }
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = 0;
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(jwt, &self.decoding, &v).map_err(|e| {
            tracing::debug!(error = %e, "app JWT refused");
            "A JSON web token could not be decoded".to_string()
        })?;
        let c = data.claims;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let iat = c.iat.ok_or(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        )?;
        let exp = c.exp.ok_or("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")?;
        if iat > now + IAT_DRIFT_SECS {
            return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past".into());
        }
        if exp - iat > MAX_JWT_LIFETIME_SECS {
            return Err("'Expiration time' claim ('exp') is too far in the future".into());
        }
        if exp <= now {
            return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".into());
        }
        let iss_ok = match &c.iss {
            Some(serde_json::Value::Number(n)) => n.as_u64() == Some(app_id),
            Some(serde_json::Value::String(s)) => s == &app_id.to_string() || s == client_id,
            _ => false,
        };
        if !iss_ok {
            return Err("'Issuer' claim ('iss') must be an Integer".into());
        }
        Ok(())
    }
}

/// A fresh installation token (`ghs_` and 36 random alphanumerics, GitHub's format).
pub fn new_token() -> String {
    use rand::Rng as _;
    use rand::distr::Alphanumeric;
    let s: String = rand::rng().sample_iter(&Alphanumeric).take(36).map(char::from).collect();
    format!("ghs_{s}")
}
