//! Logging (tracing) and metrics (Prometheus text at `/metrics`) set-up.
//!
//! Metric names start with `foreman_`. Histograms are exported with fixed buckets (in seconds) so they can
//! be aggregated across instances.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Bucket bounds in seconds for every `*_seconds` histogram: 100 µs to 30 s, covering an ingest (well under
/// a millisecond) as well as a store flush under load and a GitHub API call.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often recorded histogram samples are folded into their buckets. The recorder keeps every sample
/// until then (16 bytes each, several per delivery); a scrape of `/metrics` folds them too, but nothing
/// promises a scrape. Five seconds is the exporter's own default (`PrometheusBuilder::upkeep_timeout`) and
/// bounds the samples held to a few megabytes at the ingest benchmark's rate.
pub const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Starts logging to standard error. The filter comes from `RUST_LOG` (default `info`).
/// Calling it twice keeps the first set-up.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: redirected to a file or a collector, ANSI codes are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Installs the process-wide metrics recorder (once) and returns the handle that renders `/metrics`.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("foreman_store_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // A second recorder (another server in the same test process) keeps the first; both render it.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Folds the recorder's histogram samples into their buckets every `every` (in production
/// [`METRICS_UPKEEP_EVERY`]) until `shutdown`. The recorder is built with `build_recorder`, which spawns no
/// upkeep task of its own (metrics-exporter-prometheus, "Upkeep and maintenance"): without this loop a
/// process nobody scrapes grows by every sample it records.
pub async fn upkeep_loop(handle: PrometheusHandle, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => handle.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}
