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

/// A metric's type, as its `# TYPE` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets of observations.
    Histogram,
}

/// One metric Foreman records: its name, type and the `# HELP` text. docs/operations.md has a row for
/// each (checked by `tests/metrics_catalogue.rs`, which also checks that the source records no other).
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The name, `foreman_…`.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// One line for the `# HELP` line.
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: MetricKind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// Every metric Foreman records.
pub const METRICS: &[Metric] = {
    use MetricKind::{Counter, Gauge, Histogram};
    &[
        metric("foreman_build_info", Gauge, "Always 1; the running build's version in its label."),
        metric("foreman_deliveries_total", Counter, "Webhook requests by answer (outcome) and event."),
        metric("foreman_connections_open", Gauge, "HTTP connections being served."),
        metric("foreman_connections_closed_total", Counter, "Connections the server closed, by reason."),
        metric("foreman_accept_errors_total", Counter, "Failed accept calls (mostly out of file descriptors)."),
        metric("foreman_ingest_seconds", Histogram, "Time from a webhook request to its answer, store flush included."),
        metric("foreman_store_apply_seconds", Histogram, "The store writer applying one batch of deliveries."),
        metric("foreman_store_flush_seconds", Histogram, "One group-commit flush of the store."),
        metric("foreman_store_batch_size", Histogram, "Requests per group commit."),
        metric("foreman_inbox_depth", Gauge, "Deliveries stored but not yet processed (set when scraped)."),
        metric("foreman_dead_letters_total", Counter, "Deliveries the worker could not decode, by event."),
        metric("foreman_jobs", Gauge, "Jobs by state (set when scraped)."),
        metric("foreman_jobs_claimed_total", Counter, "Jobs claimed by the runner."),
        metric("foreman_sessions_started_total", Counter, "Agent processes started (credential rotations included)."),
        metric("foreman_sessions_finished_total", Counter, "Job attempts ended, by outcome and failure class."),
        metric("foreman_session_duration_seconds", Histogram, "Job attempts from claim to outcome, by outcome."),
        metric("foreman_agent_cost_usd", Gauge, "US dollars the agent reported spending since start, by repository."),
        metric("foreman_github_requests_total", Counter, "GitHub HTTP attempts by endpoint, status and installation."),
        metric("foreman_github_requests_free_total", Counter, "304 answers to conditional GitHub requests."),
        metric("foreman_github_rate_limit_remaining", Gauge, "x-ratelimit-remaining of the latest GitHub answer."),
        metric("foreman_github_graphql_points_used", Gauge, "x-ratelimit-used of the latest GraphQL answer."),
        metric("foreman_github_retries_total", Counter, "GitHub request retries by endpoint and cause."),
        metric("foreman_reconcile_cancelled_total", Counter, "Jobs reconciliation cancelled, by reason."),
        metric("foreman_redeliveries_requested_total", Counter, "Redeliveries reconciliation asked GitHub for."),
    ]
};

/// Bucket bounds in seconds of `foreman_session_duration_seconds`: 1 s to 2 h, around the default
/// session time-out (`agent.timeout_secs`, 30 minutes).
pub const SESSION_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0];

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
                .set_buckets_for_metric(Matcher::Full("foreman_session_duration_seconds".into()), SESSION_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // A second recorder (another server in the same test process) keeps the first; both render it.
            let _ = metrics::set_global_recorder(recorder);
            for m in METRICS {
                match m.kind {
                    MetricKind::Counter => metrics::describe_counter!(m.name, m.help),
                    MetricKind::Gauge => metrics::describe_gauge!(m.name, m.help),
                    MetricKind::Histogram => metrics::describe_histogram!(m.name, m.help),
                }
            }
            metrics::gauge!("foreman_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
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
