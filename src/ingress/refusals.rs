//! Deliveries refused for their signature, told to the operator without flooding the log: a wrong webhook
//! secret is the most common setup mistake, and a flood of forged requests must not become a flood of lines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two WARN lines about refused signatures. A minute shows a misconfiguration at
/// once (the first refusal is logged) and bounds a forged flood to 60 lines an hour.
pub const SIGNATURE_WARN_EVERY: Duration = Duration::from_secs(60);

/// Counts refusals and says when a line is due.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// When the last line was written, and the refusals since it.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    /// Records one refusal at `now`. Returns the number of refusals the line now due reports (this one
    /// included), or `None` while the last line is less than [`SIGNATURE_WARN_EVERY`] old.
    pub fn record(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().expect("refusals lock");
        let (last, count) = &mut *state;
        *count += 1;
        if last.is_some_and(|t| now.duration_since(t) < SIGNATURE_WARN_EVERY) {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_told_then_one_line_a_minute_with_the_count() {
        let log = RefusalLog::default();
        let t = Instant::now();
        assert_eq!(log.record(t), Some(1));
        for k in 1..=4 {
            assert_eq!(log.record(t + Duration::from_secs(k)), None);
        }
        assert_eq!(log.record(t + SIGNATURE_WARN_EVERY), Some(5), "the four held back and this one");
        assert_eq!(log.record(t + SIGNATURE_WARN_EVERY + Duration::from_secs(1)), None);
    }
}
