//! Call accounting: requests by endpoint, status and installation; the remaining quota; GraphQL points.
//!
//! Metrics (the `metrics` crate; exported by whatever recorder the binary installs):
//! - `foreman_github_requests_total{endpoint, status, installation}`: every HTTP attempt, retries included.
//!   `status` is the HTTP status, or `error` when no answer came. `installation` is the id, or `app` for calls
//!   made with the app's JWT.
//! - `foreman_github_requests_free_total{endpoint, installation}`: 304 answers to conditional requests, which GitHub
//!   does not count against the quota.
//! - `foreman_github_rate_limit_remaining{installation, resource}` (gauge): `x-ratelimit-remaining` of the latest answer.
//! - `foreman_github_graphql_points_used{installation}` (gauge): `x-ratelimit-used` of the latest GraphQL answer,
//!   the points spent in the current hour.
//! - `foreman_github_retries_total{endpoint, cause}`: retries by cause.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::retry::{header_u64, reset_time};

/// The quota of one installation, from the rate-limit headers of its latest REST answer.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    /// `x-ratelimit-limit`: requests per hour (5,000 to 12,500 for an installation).
    pub limit: u64,
    /// `x-ratelimit-remaining`.
    pub remaining: u64,
    /// `x-ratelimit-reset`: when the window starts again.
    pub reset: SystemTime,
}

/// Quotas seen per installation (`None` key: the app's own JWT calls).
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    quotas: Mutex<HashMap<Option<u64>, Quota>>,
}

impl Accounting {
    /// Records one attempt and the rate-limit headers of its answer, if any.
    pub(crate) fn record(
        &self,
        endpoint: &'static str,
        installation: Option<u64>,
        status: Option<u16>,
        headers: Option<&HeaderMap>,
    ) {
        let inst = installation.map_or_else(|| "app".to_owned(), |i| i.to_string());
        let status_label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        metrics::counter!("foreman_github_requests_total", "endpoint" => endpoint, "status" => status_label, "installation" => inst.clone())
            .increment(1);
        if status == Some(304) {
            metrics::counter!("foreman_github_requests_free_total", "endpoint" => endpoint, "installation" => inst.clone())
                .increment(1);
        }
        let Some(headers) = headers else { return };
        let resource = headers.get("x-ratelimit-resource").and_then(|v| v.to_str().ok()).unwrap_or("core").to_owned();
        if let Some(remaining) = header_u64(headers, "x-ratelimit-remaining") {
            metrics::gauge!("foreman_github_rate_limit_remaining", "installation" => inst.clone(), "resource" => resource.clone())
                .set(remaining as f64);
            if resource == "core"
                && let (Some(limit), Some(reset)) = (header_u64(headers, "x-ratelimit-limit"), reset_time(headers))
            {
                self.quotas.lock().expect("quota lock").insert(installation, Quota { limit, remaining, reset });
            }
        }
        if resource == "graphql"
            && let Some(used) = header_u64(headers, "x-ratelimit-used")
        {
            metrics::gauge!("foreman_github_graphql_points_used", "installation" => inst).set(used as f64);
        }
    }

    /// Counts one retry by its cause.
    pub(crate) fn retried(&self, endpoint: &'static str, cause: &'static str) {
        metrics::counter!("foreman_github_retries_total", "endpoint" => endpoint, "cause" => cause).increment(1);
    }

    /// The latest quota seen for an installation.
    pub(crate) fn quota(&self, installation: Option<u64>) -> Option<Quota> {
        self.quotas.lock().expect("quota lock").get(&installation).copied()
    }

    /// Every installation's latest quota (not the app's own), by installation id.
    pub(crate) fn installation_quotas(&self) -> Vec<(u64, Quota)> {
        let quotas = self.quotas.lock().expect("quota lock");
        let mut out: Vec<(u64, Quota)> = quotas.iter().filter_map(|(k, q)| k.map(|i| (i, *q))).collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Whether the remaining quota is at least `threshold` (a fraction of the limit), or the window has reset
    /// since it was seen, or nothing is known yet.
    pub(crate) fn quota_ok(&self, installation: Option<u64>, threshold: f64, now: SystemTime) -> bool {
        match self.quota(installation) {
            None => true,
            Some(q) if q.reset <= now => true,
            Some(q) => q.limit == 0 || (q.remaining as f64) >= threshold * q.limit as f64,
        }
    }

    /// When a call for this installation should not be sent before, because the quota is spent.
    pub(crate) fn blocked_until(&self, installation: Option<u64>, now: SystemTime) -> Option<SystemTime> {
        let q = self.quota(installation)?;
        (q.remaining == 0 && q.reset > now).then_some(q.reset)
    }
}

/// Rounds a wait for a log line.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn quota_threshold_decides_whether_sessions_may_start() {
        let a = Accounting::default();
        let now = SystemTime::now();
        assert!(a.quota_ok(Some(1), 0.1, now), "unknown quota does not block");
        let reset = now + Duration::from_secs(600);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("499"));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs().to_string())
                .unwrap(),
        );
        a.record("GET /x", Some(1), Some(200), Some(&h));
        assert!(!a.quota_ok(Some(1), 0.1, now));
        assert!(a.quota_ok(Some(1), 0.05, now));
        assert!(a.quota_ok(Some(2), 0.1, now), "per installation");
        assert!(a.quota_ok(Some(1), 0.1, reset + Duration::from_secs(1)), "a reset window is fresh");
        assert_eq!(a.blocked_until(Some(1), now), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        a.record("GET /x", Some(1), Some(403), Some(&h));
        assert!(a.blocked_until(Some(1), now).is_some());
    }
}
