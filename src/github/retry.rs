//! The one retry layer: which failures are retried, and how long to wait before each retry.
//!
//! Facts from GitHub's documentation
//! (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api> and
//! <https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api>):
//! - a primary rate limit answers 403 or 429 with `x-ratelimit-remaining: 0`; wait until `x-ratelimit-reset`
//!   (epoch seconds);
//! - a secondary rate limit answers 403 or 429; wait `retry-after` seconds when given, else at least one
//!   minute, backing off exponentially when it repeats;
//! - mutations should be at least one second apart, and requests for one installation made serially rather
//!   than concurrently;
//! - a GraphQL rate limit is an HTTP 200 whose `errors[].type` is `RATE_LIMITED`.
//!
//! octocrab's own retry is compiled out (its `retry` feature is off in Cargo.toml), so this is the only layer.

use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;
use http::{HeaderMap, StatusCode};

/// Waits and bounds of the retry layer and of pacing. Every field is a duration or a count, so tests can run
/// the same code with millisecond waits.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// First backoff after a 5xx or a connection failure; doubled each retry, with full jitter.
    /// Default 1 s: long enough for a load balancer to route around a failed node.
    pub base_delay: Duration,
    /// The longest single backoff for a 5xx or a connection failure. Default 30 s.
    pub max_delay: Duration,
    /// Retries after the first attempt, for any cause. Default 6: with independent 20% failures the chance
    /// that all 7 attempts fail is 1 in 78,000.
    pub max_retries: usize,
    /// The most time one call may spend waiting on 5xx, connection and secondary-limit backoff together.
    /// Default 10 min: a background worker can afford it, and it bounds a stuck call.
    pub max_total_wait: Duration,
    /// The wait after a secondary rate limit that came without `retry-after`, doubled each time it repeats
    /// within one call. Default 60 s, GitHub's documented minimum.
    pub secondary_min_wait: Duration,
    /// Margin added to a primary-limit wait, for clock skew between Foreman and GitHub and because
    /// `x-ratelimit-reset` is given in whole seconds. Default 1 s.
    pub reset_margin: Duration,
    /// The longest wait for a primary rate limit to reset; beyond it the call fails with
    /// [`super::GithubError::RateLimited`] and the caller requeues. Default 61 min: a window is one hour.
    pub max_rate_limit_wait: Duration,
    /// Time limit of one attempt (connect, send, read the whole answer). Default 30 s.
    pub request_timeout: Duration,
    /// Least time between two mutations (POST, PATCH, PUT, DELETE, GraphQL mutation) for one installation.
    /// Default 1 s, GitHub's guidance against secondary limits on content creation.
    pub mutation_interval: Duration,
    /// Requests in flight at once per installation. Default 4: GitHub asks for serial requests per client and
    /// counts concurrency toward secondary limits (at most 100 concurrent); 4 keeps sessions responsive
    /// without approaching it.
    pub max_concurrent: usize,
    /// Whether backoff is jittered (full jitter, as backon does it). Default true; spreads retries of many
    /// sessions that failed together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retries: 6,
            max_total_wait: Duration::from_secs(600),
            secondary_min_wait: Duration::from_secs(60),
            reset_margin: Duration::from_secs(1),
            max_rate_limit_wait: Duration::from_secs(61 * 60),
            request_timeout: Duration::from_secs(30),
            mutation_interval: Duration::from_secs(1),
            max_concurrent: 4,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The backoff for 5xx and connection failures, as backon builds it.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        let b = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries);
        if self.jitter { b.with_jitter() } else { b }
    }

    /// The wait before the next retry of a call that failed with `failure`, or `None` to give up.
    ///
    /// `proposed` is backon's exponential backoff (`None` once `max_retries` are spent); `state` is this
    /// call's history and is updated with the chosen wait.
    pub(crate) fn next_delay(
        &self,
        state: &mut RetryState,
        failure: &Failure,
        proposed: Option<Duration>,
        now: SystemTime,
    ) -> Option<Duration> {
        let proposed = proposed?;
        let wait = match failure {
            Failure::PrimaryRateLimit { reset } => {
                let until = reset.and_then(|r| r.duration_since(now).ok()).unwrap_or_default();
                let wait = until + self.reset_margin;
                if wait > self.max_rate_limit_wait {
                    return None;
                }
                // Primary waits are bounded by max_rate_limit_wait, not by the backoff budget.
                state.retries += 1;
                return Some(wait);
            }
            Failure::SecondaryRateLimit { retry_after: Some(after) } => *after,
            Failure::SecondaryRateLimit { retry_after: None } => {
                let doubled = self.secondary_min_wait.saturating_mul(1u32 << state.secondary.min(16));
                state.secondary += 1;
                doubled.max(proposed)
            }
            Failure::Server { .. } | Failure::Connection(_) => proposed,
        };
        if state.waited + wait > self.max_total_wait {
            return None;
        }
        state.waited += wait;
        state.retries += 1;
        Some(wait)
    }
}

/// What one call has waited so far.
#[derive(Debug, Default)]
pub(crate) struct RetryState {
    /// Total of backoff waits (not primary-limit waits).
    pub waited: Duration,
    /// Secondary limits met without `retry-after`.
    pub secondary: u32,
    /// Retries made.
    pub retries: u32,
}

/// A failure worth retrying, with what GitHub said about when.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The hourly quota is spent; it comes back at `reset`.
    PrimaryRateLimit {
        /// `x-ratelimit-reset`, when sent.
        reset: Option<SystemTime>,
    },
    /// A secondary (abuse) limit; `retry_after` when GitHub said how long.
    SecondaryRateLimit {
        /// `retry-after`.
        retry_after: Option<Duration>,
    },
    /// A 5xx.
    Server {
        /// The status.
        status: u16,
    },
    /// The request did not complete: refused, reset, timed out, or the answer was cut off.
    Connection(String),
}

impl Failure {
    /// Whether GitHub certainly did not act on the request, so even a create can be sent again.
    /// Rate limits refuse a request before it runs; a 5xx or a lost connection may come after it ran.
    pub(crate) fn request_was_refused(&self) -> bool {
        matches!(self, Self::PrimaryRateLimit { .. } | Self::SecondaryRateLimit { .. })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PrimaryRateLimit { .. } => f.write_str("primary rate limit"),
            Self::SecondaryRateLimit { retry_after: Some(d) } => {
                write!(f, "secondary rate limit (retry-after {}s)", d.as_secs())
            }
            Self::SecondaryRateLimit { retry_after: None } => f.write_str("secondary rate limit"),
            Self::Server { status } => write!(f, "HTTP {status}"),
            Self::Connection(e) => write!(f, "connection: {e}"),
        }
    }
}

/// How an HTTP answer is taken.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// 2xx or 304: use it.
    Ok,
    /// Retry after a wait.
    Retry(Failure),
    /// 401: mint a fresh installation token and try once more.
    Unauthorized,
    /// Any other status: an answer to turn into a typed error, not to retry.
    Refused,
}

/// Classifies a REST answer by status, headers and GitHub's message.
///
/// 403 and 429 are rate limits when `retry-after` is present (secondary), when `x-ratelimit-remaining` is `0`
/// (primary), or when the message says so; a 429 is always a rate limit. Another 403 is a permission answer.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Verdict::Ok;
    }
    if status == StatusCode::UNAUTHORIZED {
        return Verdict::Unauthorized;
    }
    if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(after) = header_u64(headers, "retry-after") {
            return Verdict::Retry(Failure::SecondaryRateLimit { retry_after: Some(Duration::from_secs(after)) });
        }
        if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
            return Verdict::Retry(Failure::PrimaryRateLimit { reset: reset_time(headers) });
        }
        let message = String::from_utf8_lossy(body).to_ascii_lowercase();
        if message.contains("secondary rate limit") || message.contains("abuse") {
            return Verdict::Retry(Failure::SecondaryRateLimit { retry_after: None });
        }
        if message.contains("api rate limit exceeded") {
            return Verdict::Retry(Failure::PrimaryRateLimit { reset: reset_time(headers) });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Verdict::Retry(Failure::SecondaryRateLimit { retry_after: None });
        }
        return Verdict::Refused;
    }
    if status.is_server_error() {
        return Verdict::Retry(Failure::Server { status: status.as_u16() });
    }
    Verdict::Refused
}

/// `x-ratelimit-reset` as a time.
pub(crate) fn reset_time(headers: &HeaderMap) -> Option<SystemTime> {
    header_u64(headers, "x-ratelimit-reset").map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// A header holding a non-negative integer.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
            max_retries: 5,
            max_total_wait: Duration::from_millis(200),
            secondary_min_wait: Duration::from_millis(50),
            reset_margin: Duration::from_millis(5),
            max_rate_limit_wait: Duration::from_secs(2),
            jitter: false,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn statuses_are_classified_as_github_documents_them() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &none, b""), Verdict::Ok);
        assert_eq!(classify(StatusCode::NOT_MODIFIED, &none, b""), Verdict::Ok);
        assert_eq!(classify(StatusCode::UNAUTHORIZED, &none, b""), Verdict::Unauthorized);
        for s in [404, 409, 422, 400, 410] {
            assert_eq!(classify(StatusCode::from_u16(s).unwrap(), &none, b"{}"), Verdict::Refused, "{s}");
        }
        for s in [500, 502, 503, 504] {
            assert_eq!(
                classify(StatusCode::from_u16(s).unwrap(), &none, b""),
                Verdict::Retry(Failure::Server { status: s })
            );
        }
        // A 403 without rate-limit signs is a permission answer, not something to retry.
        let forbidden = br#"{"message":"Resource not accessible by integration"}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &headers(&[("x-ratelimit-remaining", "4000")]), forbidden),
            Verdict::Refused
        );
    }

    #[test]
    fn rate_limits_are_told_apart() {
        let primary = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000000")]);
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &primary, b""),
            Verdict::Retry(Failure::PrimaryRateLimit {
                reset: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            })
        );
        let after = headers(&[("retry-after", "30"), ("x-ratelimit-remaining", "0")]);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &after, b""),
            Verdict::Retry(Failure::SecondaryRateLimit { retry_after: Some(Duration::from_secs(30)) })
        );
        let message = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), message),
            Verdict::Retry(Failure::SecondaryRateLimit { retry_after: None })
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b""),
            Verdict::Retry(Failure::SecondaryRateLimit { retry_after: None })
        );
        assert!(!Failure::Server { status: 502 }.request_was_refused());
        assert!(Failure::SecondaryRateLimit { retry_after: None }.request_was_refused());
    }

    #[test]
    fn server_errors_back_off_within_count_and_total_time() {
        let p = policy();
        let mut backoff = backon::BackoffBuilder::build(p.backoff());
        let mut state = RetryState::default();
        let now = SystemTime::now();
        let mut waits = Vec::new();
        while let Some(d) =
            p.next_delay(&mut state, &Failure::Server { status: 502 }, Iterator::next(&mut backoff), now)
        {
            waits.push(d);
        }
        // backon computes with f32, so compare in whole milliseconds.
        let ms: Vec<u128> = waits.iter().map(|d| (d.as_micros() + 500) / 1000).collect();
        assert_eq!(ms, [10, 20, 40, 80], "doubling, capped, until the total bound");
        assert!(waits.iter().sum::<Duration>() <= p.max_total_wait);

        let q = RetryPolicy { max_total_wait: Duration::from_secs(9), ..p.clone() };
        let mut state = RetryState::default();
        let mut backoff = backon::BackoffBuilder::build(q.backoff());
        let mut n = 0;
        while q
            .next_delay(&mut state, &Failure::Connection("reset".into()), Iterator::next(&mut backoff), now)
            .is_some()
        {
            n += 1;
        }
        assert_eq!(n, p.max_retries, "bounded in count");
    }

    #[test]
    fn jitter_stays_within_the_exponential_envelope() {
        let p = RetryPolicy { jitter: true, ..policy() };
        let mut backoff = backon::BackoffBuilder::build(p.backoff());
        for _ in 0..p.max_retries {
            let d = Iterator::next(&mut backoff).unwrap();
            assert!(d <= p.max_delay * 2, "{d:?}");
        }
    }

    #[test]
    fn secondary_limits_wait_retry_after_or_a_doubling_minimum() {
        let p = RetryPolicy { max_total_wait: Duration::from_secs(10), ..policy() };
        let now = SystemTime::now();
        let mut state = RetryState::default();
        let given = Failure::SecondaryRateLimit { retry_after: Some(Duration::from_millis(70)) };
        assert_eq!(
            p.next_delay(&mut state, &given, Some(Duration::from_millis(10)), now),
            Some(Duration::from_millis(70))
        );
        let bare = Failure::SecondaryRateLimit { retry_after: None };
        let a = p.next_delay(&mut state, &bare, Some(Duration::from_millis(10)), now).unwrap();
        let b = p.next_delay(&mut state, &bare, Some(Duration::from_millis(20)), now).unwrap();
        assert_eq!((a, b), (Duration::from_millis(50), Duration::from_millis(100)));
    }

    #[test]
    fn primary_limits_wait_until_reset_or_give_up() {
        let p = policy();
        let now = SystemTime::now();
        let mut state = RetryState::default();
        let soon = Failure::PrimaryRateLimit { reset: Some(now + Duration::from_millis(300)) };
        assert_eq!(
            p.next_delay(&mut state, &soon, Some(Duration::from_millis(10)), now),
            Some(Duration::from_millis(305))
        );
        let late = Failure::PrimaryRateLimit { reset: Some(now + Duration::from_secs(3600)) };
        assert_eq!(
            p.next_delay(&mut state, &late, Some(Duration::from_millis(10)), now),
            None,
            "beyond max_rate_limit_wait"
        );
        let past = Failure::PrimaryRateLimit { reset: Some(now - Duration::from_secs(5)) };
        assert_eq!(p.next_delay(&mut state, &past, Some(Duration::from_millis(10)), now), Some(p.reset_margin));
        assert_eq!(p.next_delay(&mut state, &soon, None, now), None, "the retry count bounds every cause");
    }
}
