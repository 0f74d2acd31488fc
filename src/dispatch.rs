//! The inbox worker: hands each stored delivery, oldest first, to a [`Consumer`] (the decision core), then
//! records it processed or dead-lettered. It runs after the HTTP answer, never inside it.
//!
//! A delivery interrupted by a crash is still in the inbox on restart and is handed over again; consumers
//! make that harmless (a replay has no second effect).

use std::future::Future;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::store::{DeliveryMeta, DeliveryState, Store, StoreError};

/// How many inbox entries are read per pass. Bounds memory while draining a backlog.
const PAGE: usize = 64;

/// What processing a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Done; a one-line summary of what was decided, kept with the delivery.
    Done(String),
    /// The delivery cannot be processed, now or later (for example, a payload that does not decode). It is
    /// kept with this error as a dead letter and not retried.
    Dead(String),
}

/// Takes stored deliveries off the inbox.
pub trait Consumer: Send + Sync + 'static {
    /// Processes one delivery. An `Err` means "not now" (GitHub or the store unavailable): the delivery stays
    /// in the inbox and the worker tries it again on its next pass.
    fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> impl Future<Output = Result<Processed, String>> + Send;
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
            if shutdown.is_cancelled() {
                return Ok(finished);
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
            let _guard = span.enter();
            let state = match consumer.consume(&meta, &body).await {
                Ok(Processed::Done(summary)) => {
                    tracing::info!(%summary, "delivery processed");
                    DeliveryState::Processed { at: OffsetDateTime::now_utc(), summary }
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

/// The consumer that decodes each delivery into Foreman's own event type and runs the decision core on it.
///
/// A payload that does not decode is dead-lettered with the decoder's message. The actions decided are kept
/// with the delivery as its summary (one JSON object per action, as `foreman replay` prints them), so
/// `GET /api/deliveries/{id}` answers "why did (or didn't) Foreman react to this?".
///
/// It decides with an empty snapshot of job state; carrying out the actions (the job store, replies) is
/// wired in with the scheduler.
pub struct Decider {
    config: crate::decide::DecideConfig,
}

impl Decider {
    /// A decider with the `[triggers]` configuration.
    pub fn new(config: crate::decide::DecideConfig) -> Self {
        Self { config }
    }
}

impl Consumer for Decider {
    async fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> Result<Processed, String> {
        let event = match crate::event::decode(&meta.event, body) {
            Ok(event) => event,
            Err(e) => return Ok(Processed::Dead(e.to_string())),
        };
        let actions = crate::decide::decide(&event, &self.config, &crate::decide::Snapshot::default());
        let summary = actions
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}")))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(Processed::Done(summary))
    }
}
