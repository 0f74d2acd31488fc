//! The GitHub client's waits for tests against github-sim: retries in milliseconds, except where the
//! simulator's own `retry-after` (1 s) or a whole-second `x-ratelimit-reset` asks for more.

use std::time::Duration;

use foreman::github::{ClientOptions, RetryPolicy};

/// Short waits; production's are [`ClientOptions::default`].
pub fn fast() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retries: 8,
            max_total_wait: Duration::from_secs(30),
            secondary_min_wait: Duration::from_millis(20),
            // `x-ratelimit-reset` is in whole seconds, so waking before the next second would be refused again.
            reset_margin: Duration::from_secs(1),
            max_rate_limit_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            mutation_interval: Duration::from_millis(5),
            max_concurrent: 4,
            jitter: true,
        },
        ..ClientOptions::default()
    }
}
