//! The metrics recorder holds every histogram sample until it is folded into its buckets; the upkeep loop
//! `foreman serve` runs must do that on its own, or a process nobody scrapes grows without bound.
//!
//! Its own test binary: it counts the bytes the process has allocated, with a global allocator that wraps
//! the system's, and it installs the process-wide metrics recorder.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SAMPLES: usize = 500_000;

#[tokio::test]
async fn histogram_samples_are_folded_without_a_scrape() {
    let handle = foreman::telemetry::metrics_handle();
    metrics::histogram!("foreman_upkeep_test_seconds").record(0.001);
    handle.run_upkeep();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..SAMPLES {
        metrics::histogram!("foreman_upkeep_test_seconds").record(i as f64 * 1e-6);
    }
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    assert!(held >= SAMPLES * 8, "the recorder holds the samples until upkeep: {held} bytes for {SAMPLES} samples");

    let shutdown = CancellationToken::new();
    let upkeep =
        tokio::spawn(foreman::telemetry::upkeep_loop(handle.clone(), Duration::from_millis(10), shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut left = held;
    while tokio::time::Instant::now() < deadline {
        left = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        if left < held / 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    upkeep.await.expect("the upkeep loop ends on shutdown");
    assert!(left < held / 10, "upkeep released the samples: {left} of {held} bytes still held");
    let text = handle.render();
    assert!(
        text.contains(&format!("foreman_upkeep_test_seconds_count {}", SAMPLES + 1)),
        "every sample is counted: {}",
        text.lines().filter(|l| l.contains("upkeep_test")).collect::<Vec<_>>().join("\n")
    );
}
