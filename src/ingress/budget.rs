//! The budget of bytes of not-yet-verified webhook bodies held in memory across all requests.
//!
//! A delivery's signature covers its whole body, so the body is held until it has all arrived. Without a
//! bound across requests, anyone who can reach the endpoint (no secret needed) can make Foreman hold
//! [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) per connection: 60 connections holding 25 MiB bodies open took
//! the process to 1.5 GB. With the budget, a request is answered 503 with `Retry-After` as soon as its body
//! would take the total past the limit: up front for its whole `Content-Length` when it declares one, or
//! frame by frame for a chunked body. Bytes are given back when the body's signature has been checked
//! (whatever the answer) or when the request ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The shared budget: a limit in bytes and what is taken from it now. Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { inner: Arc::new(Inner { limit, used: AtomicUsize::new(0) }) }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes held now by unverified bodies.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, or `None` when that would pass the limit (nothing is taken then).
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut reservation = Reservation { budget: self.clone(), bytes: 0 };
        reservation.grow(bytes).then_some(reservation)
    }
}

/// Bytes taken from a [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: BodyBudget,
    bytes: usize,
}

impl Reservation {
    /// Takes `more` bytes for this reservation; `false` (nothing taken) when that would pass the limit.
    pub fn grow(&mut self, more: usize) -> bool {
        let inner = &self.budget.inner;
        let taken = inner.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(more).filter(|total| *total <= inner.limit)
        });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_bytes_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none(), "60 + 41 is over 100");
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(!b.grow(1), "full");
        assert_eq!(b.bytes(), 40, "a refused growth takes nothing");
        drop(a);
        assert!(b.grow(60));
        assert_eq!(budget.used(), 100);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(usize::MAX).is_none(), "no overflow");
    }
}
