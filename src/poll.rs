//! Poll delivery mode (`github.delivery_mode = "poll"`): deliveries read from the App's delivery log instead
//! of received as webhooks, so Foreman works without a public URL (a laptop).
//!
//! GitHub records every delivery it makes in the App's log, also the ones it could not send (no webhook URL,
//! or one it cannot reach), and keeps them three days. Every `github.poll_interval_secs` a pass:
//!
//! 1. lists the log entries newer than the position stored (`GET /app/hook/deliveries`, newest first, pages
//!    followed by `cursor` back to that position), and takes them oldest first;
//! 2. skips an entry whose event Foreman does not use, or whose GUID (`X-GitHub-Delivery`) the inbox already
//!    holds (a redelivery, or a delivery that also came as a webhook), without reading it;
//! 3. reads each other entry's request (`GET /app/hook/deliveries/{delivery_id}`) and stores its payload
//!    through the same path as a webhook ([`crate::ingress::store_delivery`]): keyed by the GUID, durable
//!    before the pass goes on;
//! 4. records the position reached (the newest entry taken) durably.
//!
//! So a restart neither loses nor duplicates: entries after the stored position are read again, and one
//! stored before a crash but after the last recorded position is a duplicate by its GUID. A GitHub error
//! ends the pass at the entry it happened on; the next pass starts there. The pass is the only retry of the
//! listing: the client does not retry it, so a log that cannot be read is seen (and logged) within one
//! interval, not after minutes of the client's backoff. The payload comes over the App's
//! authenticated API, so there is no signature to check.

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::github::{Client, GithubError};
use crate::ingress::{StoreRefusal, Stored, store_delivery};
use crate::store::{Store, StoreError};

/// A run of failed passes is logged at its first and then at every this many (one line a minute at the
/// default 5 s interval), so a GitHub outage does not fill the log.
pub const FAILURES_LOGGED_EVERY: u64 = 12;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Log entries newer than the position.
    pub listed: usize,
    /// Deliveries stored in the inbox.
    pub stored: usize,
    /// Entries skipped: events Foreman does not use, `ping`, or GUIDs already in the inbox.
    pub skipped: usize,
    /// The position recorded at the end of the pass (the newest log entry taken).
    pub position: Option<u64>,
}

/// Why a pass stopped early. What it took until then is kept, and its position recorded.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Listing the log or reading an entry failed.
    #[error("reading the App's delivery log: {0}")]
    Github(#[from] GithubError),
    /// The store did not take a delivery or the position.
    #[error("storing a delivery from the App's delivery log: {0}")]
    Store(#[from] StoreError),
}

/// Reads the App's delivery log into the inbox, one pass every interval.
pub struct Poller {
    client: Client,
    store: Store,
    interval: Duration,
}

impl Poller {
    /// A poller reading with `client` (the App's JWT) into `store` every `interval`.
    pub fn new(client: Client, store: Store, interval: Duration) -> Self {
        Self { client, store, interval }
    }

    /// Runs a pass at once and then every interval until `shutdown`. A failed pass is tried again at the next
    /// interval; failures are logged (WARN for GitHub, ERROR for the store) at the first and then every
    /// [`FAILURES_LOGGED_EVERY`]th in a row, with the count, and the recovery at INFO.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failing = 0u64;
        loop {
            let result = self.pass().await;
            if result.is_err() {
                failing += 1;
            } else if failing > 0 {
                tracing::info!(failed_reads = failing, "reading the App's delivery log works again");
                failing = 0;
            }
            let loud = failing == 1 || failing.is_multiple_of(FAILURES_LOGGED_EVERY);
            match result {
                Ok(r) if r.stored > 0 => {
                    tracing::info!(
                        stored = r.stored,
                        skipped = r.skipped,
                        position = r.position,
                        "deliveries read from the App's delivery log"
                    )
                }
                Ok(r) => {
                    tracing::debug!(listed = r.listed, skipped = r.skipped, position = r.position, "delivery log read")
                }
                Err(PollError::Github(e)) if loud => tracing::warn!(
                    error = %e,
                    failed_reads = failing,
                    "reading the App's delivery log failed; trying again at the next interval"
                ),
                Err(e @ PollError::Store(_)) if loud => {
                    tracing::error!(error = %e, failed_reads = failing, "poll delivery mode could not store")
                }
                Err(e) => {
                    tracing::debug!(error = %e, failed_reads = failing, "reading the App's delivery log failed again")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass: see the module documentation.
    pub async fn pass(&self) -> Result<PassReport, PollError> {
        let start = self.store.delivery_log_position()?;
        let entries = self.client.hook_deliveries_after(start).await?;
        let mut report = PassReport { listed: entries.len(), position: start, ..PassReport::default() };
        let mut reached = start;
        let mut failed = None;
        for entry in &entries {
            match self.take(entry).await {
                Ok(true) => report.stored += 1,
                Ok(false) => report.skipped += 1,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            reached = Some(entry.id);
        }
        if let Some(at) = reached
            && reached != start
        {
            self.store.set_delivery_log_position(at).await?;
            report.position = Some(at);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Stores one log entry's delivery unless it is skipped; `Ok(true)` when it was stored now.
    async fn take(&self, entry: &crate::github::HookDelivery) -> Result<bool, PollError> {
        if entry.event == "ping"
            || !crate::event::is_handled(&entry.event)
            || self.store.delivery(&entry.guid)?.is_some()
        {
            return Ok(false);
        }
        let detail = match self.client.hook_delivery(entry.id).await {
            Ok(d) => d,
            // Gone since it was listed (GitHub keeps entries three days): nothing left to read.
            Err(e) if e.is_not_found() => {
                tracing::warn!(guid = %entry.guid, event = %entry.event, "a delivery log entry vanished before it was read; skipped");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(payload) = detail.request.payload.filter(serde_json::Value::is_object) else {
            tracing::warn!(guid = %entry.guid, event = %entry.event, "a delivery log entry without its payload is skipped");
            return Ok(false);
        };
        let json = Bytes::from(serde_json::to_vec(&payload).expect("a JSON value serialises"));
        match store_delivery(&self.store, entry.guid.as_str(), &entry.event, json).await {
            Ok(Stored::New(_)) => Ok(true),
            Ok(Stored::Duplicate(_) | Stored::Ping | Stored::Unused) => Ok(false),
            Err(StoreRefusal::NotJson) => Ok(false),
            Err(StoreRefusal::Store(e)) => Err(PollError::Store(e)),
        }
    }
}
