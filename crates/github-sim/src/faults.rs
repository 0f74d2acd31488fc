//! Injected faults, configured through `POST /_sim/faults`.
//!
//! Shapes follow "Rate limits for the REST API" and "Rate limits and query limits for the GraphQL
//! API" (docs.github.com): a secondary limit is a 403 with `retry-after`; a 429 carries
//! `retry-after`; a GraphQL rate limit is an HTTP 200 with `errors[].type == "RATE_LIMITED"`.

use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::server::{Inner, Resp};

/// Seconds a `retry-after` asks callers to wait after a 429 or secondary-limit fault. Kept
/// short so tests that honour it stay fast; GitHub's own values are usually 60.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The fault configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Probability in [0, 1] that an API request gets a fault; 0 turns faults off.
    #[serde(default)]
    pub error_rate: f64,
    /// Which faults to draw from: `500`, `502`, `429`, `secondary`, `graphql_rate_limit`, `latency`,
    /// `401` (installation-token calls only: `Bad credentials`, as for a revoked token).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Delay added by the `latency` fault, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// When set, every primary rate-limit bucket is exhausted until this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhaust_primary_for_secs: Option<u64>,
}

/// Known fault kinds.
pub const KINDS: [&str; 7] = ["500", "502", "429", "secondary", "graphql_rate_limit", "latency", "401"];

/// Draws a fault for one request. `latency` delays and lets the request through; the others
/// answer in its place. `graphql_rate_limit` applies only to GraphQL requests and `401` only to
/// requests made with an installation token (app JWT calls stay unaffected, so a client can still
/// mint a new token and see that one refused too, as when an installation is suspended).
pub(crate) async fn pick(inner: &Inner, graphql: bool, installation_token: bool) -> Option<Resp> {
    let (kind, latency) = {
        let f = inner.faults.lock().expect("faults lock");
        if f.error_rate <= 0.0 || f.kinds.is_empty() {
            return None;
        }
        let mut rng = rand::rng();
        if rng.random::<f64>() >= f.error_rate {
            return None;
        }
        let applicable: Vec<&String> = f
            .kinds
            .iter()
            .filter(|k| graphql || k.as_str() != "graphql_rate_limit")
            .filter(|k| installation_token || k.as_str() != "401")
            .collect();
        if applicable.is_empty() {
            return None;
        }
        (applicable[rng.random_range(0..applicable.len())].clone(), f.latency_ms)
    };
    match kind.as_str() {
        "latency" => {
            tokio::time::sleep(Duration::from_millis(latency)).await;
            None
        }
        "401" => Some(Resp::error(401, "Bad credentials")),
        "500" => Some(Resp::error(500, "Server Error")),
        "502" => Some(Resp::error(502, "Server Error")),
        "429" => Some(Resp::error(429, "Too Many Requests").header("retry-after", RETRY_AFTER_SECS.to_string())),
        "secondary" => Some(
            Resp::error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            )
            .header("retry-after", RETRY_AFTER_SECS.to_string()),
        ),
        "graphql_rate_limit" => Some(Resp::ok(json!({
            "errors": [{"type": "RATE_LIMITED", "message": "API rate limit already exceeded for installation ID 0."}]
        }))),
        _ => None,
    }
}
