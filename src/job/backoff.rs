//! Retry backoff: exponential with jitter, bounded.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry): "equal jitter" exponential backoff.
///
/// The ceiling doubles from `min` with each attempt and stops at `max`; the delay is half the ceiling plus
/// `jitter` (a number in `[0, 1]`, clamped) times the other half. So the delay always lies in
/// `[ceiling / 2, ceiling]` and never exceeds `max`, while retries of jobs that failed together spread out
/// instead of returning at once. The default `max` is 5 minutes.
///
/// `jitter` is a parameter rather than drawn inside, so that tests choose it; [`random_jitter`] draws one.
pub fn backoff_delay(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let ceiling = min.saturating_mul(1u32 << exponent.min(31)).min(max);
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(jitter.clamp(0.0, 1.0))
}

/// A jitter value in `[0, 1)` for [`backoff_delay`], from the thread's random generator.
pub fn random_jitter() -> f64 {
    rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_and_stops_at_max() {
        let (min, max) = (Duration::from_secs(15), Duration::from_secs(300));
        let top = |n| backoff_delay(n, min, max, 1.0).as_secs();
        let bottom = |n| backoff_delay(n, min, max, 0.0).as_millis();
        assert_eq!([top(1), top(2), top(3), top(4), top(5), top(6), top(100)], [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!([bottom(1), bottom(2), bottom(6)], [7500, 15000, 150000]);
        assert_eq!(backoff_delay(u32::MAX, min, max, 7.0), max);
        assert_eq!(backoff_delay(0, min, max, -1.0), min / 2);
    }
}
