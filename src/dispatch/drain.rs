//! The drain loop: hands each stored delivery, oldest first, to a [`Consumer`] (the decider), then records
//! it processed or dead-lettered. It runs after the HTTP answer, never inside it, and during a burst
//! of deliveries it waits for the burst to pass ([`Store::ingest_lull`]) at a lower priority
//! ([`WORKER_NICE`]).
//!
//! A delivery interrupted by a crash is still in the inbox on restart and is handed over again; consumers
//! make that harmless (a replay has no second effect).

use std::future::Future;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::Transient;
use crate::store::{DeliveryMeta, DeliveryState, Store, StoreError};

/// How many inbox entries are read per pass. Bounds memory while draining a backlog.
const PAGE: usize = 64;

/// What processing a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Done: each action decided, with what became of it (`result`), kept with the delivery.
    Done(Vec<serde_json::Value>),
    /// The delivery cannot be processed, now or later (for example, a payload that does not decode). It is
    /// kept with this error as a dead letter and not retried.
    Dead(String),
}

/// Takes stored deliveries off the inbox.
pub trait Consumer: Send + Sync + 'static {
    /// Processes one delivery. An `Err` means "not now" (GitHub or the store unavailable): the delivery stays
    /// in the inbox and the worker tries it again on its next pass.
    fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> impl Future<Output = Result<Processed, Transient>> + Send;
}

/// How much lower than the HTTP server the inbox worker's thread runs, as a Unix nice increment. Under a
/// burst the answers to GitHub (which gives up after 10 s) come first; the durable inbox absorbs the burst
/// and the worker drains it as soon as the cores are free. On an idle machine it changes nothing.
pub const WORKER_NICE: i32 = 10;

/// Runs the worker on a thread of its own, at [`WORKER_NICE`] lower priority, with its own single-threaded
/// runtime, until `shutdown` is cancelled. Join the handle to wait for it to stop.
pub fn spawn_worker(
    store: Store,
    consumer: impl Consumer,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("foreman-inbox".into()).spawn(move || {
        lower_this_threads_priority(WORKER_NICE);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match runtime {
            Ok(runtime) => runtime.block_on(run(store, consumer, shutdown)),
            Err(e) => tracing::error!(error = %e, "the inbox worker could not start its runtime"),
        }
    })
}

/// Raises the calling thread's nice value by `by` (Linux applies nice per thread). Failure is harmless:
/// the worker then runs at the server's priority.
fn lower_this_threads_priority(by: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, current + by);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// Runs until `shutdown` is cancelled: drains the inbox, then waits for new deliveries.
pub async fn run(store: Store, consumer: impl Consumer, shutdown: CancellationToken) {
    loop {
        let drained = match drain(&store, &consumer, &shutdown).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "inbox worker could not read the store");
                0
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if drained == 0 {
            tokio::select! {
                _ = store.inbox_changed() => {}
                _ = shutdown.cancelled() => return,
                // A delivery left in the inbox by a transient failure is tried again after this long.
                _ = tokio::time::sleep(RETRY_PASS) => {}
            }
        }
    }
}

/// How long a delivery whose processing failed transiently waits before the next pass: long enough not to
/// spin against an unavailable GitHub, short enough that work is not noticeably delayed.
const RETRY_PASS: std::time::Duration = std::time::Duration::from_secs(30);

async fn drain(store: &Store, consumer: &impl Consumer, shutdown: &CancellationToken) -> Result<usize, StoreError> {
    let mut after = None;
    let mut finished = 0;
    loop {
        let page = store.pending_deliveries(after, PAGE)?;
        let Some(&last) = page.last() else { return Ok(finished) };
        for seq in page {
            tokio::select! {
                _ = store.ingest_lull() => {}
                _ = shutdown.cancelled() => return Ok(finished),
            }
            let Some((meta, body)) = store.delivery_body(seq)? else { continue };
            let span = tracing::info_span!(
                "delivery",
                id = %meta.id,
                event = %meta.event,
                action = meta.action.as_deref(),
                repository = meta.repository.as_deref(),
                installation = meta.installation.map(|i| i.0),
            );
            let consumed = tracing::Instrument::instrument(consumer.consume(&meta, &body), span.clone()).await;
            let _guard = span.enter();
            let state = match consumed {
                Ok(Processed::Done(decisions)) => {
                    let told: Vec<String> = decisions
                        .iter()
                        .map(|d| {
                            format!("{}: {}", d["decision"].as_str().unwrap_or("?"), d["result"].as_str().unwrap_or(""))
                        })
                        .collect();
                    tracing::info!(decisions = told.join("; "), "delivery processed");
                    DeliveryState::Processed { at: OffsetDateTime::now_utc(), decisions, summary: String::new() }
                }
                Ok(Processed::Dead(error)) => {
                    tracing::warn!(%error, "delivery dead-lettered");
                    metrics::counter!("foreman_dead_letters_total", "event" => meta.event.clone()).increment(1);
                    DeliveryState::Dead { at: OffsetDateTime::now_utc(), error }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delivery left in the inbox for the next pass");
                    continue;
                }
            };
            store.finish_delivery(seq, &state)?;
            finished += 1;
        }
        after = Some(last);
    }
}
