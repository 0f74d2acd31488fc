//! The scheduler: picks runnable jobs in order, claims them with a time-to-live, and starts sessions within the limits.
