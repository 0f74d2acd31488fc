//! Deliveries and the inbox.
//!
//! Trees, all keyed so that time order is key order:
//! - `deliveries`: sequence number (u64, big-endian) → record: `u32` meta length, [`DeliveryMeta`] as JSON,
//!   then the raw body compressed with zstd. Sequence numbers grow with arrival, so inserts append to the
//!   right edge of the tree instead of touching random leaves, and pruning by age walks from the left.
//! - `delivery_ids`: `X-GitHub-Delivery` id → sequence number: the deduplication index.
//! - `inbox`: sequence number → empty, for every delivery not yet processed.
//! - `delivery_state`: sequence number → [`DeliveryState`] as JSON, once processed or dead-lettered.
//!
//! Within a batch the writer inserts the record, then the inbox entry, then the id. sled recovers a prefix of
//! its log after a crash, so an id that survived always has its record and inbox entry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::ids::{DeliveryId, InstallationId};

/// zstd level for stored bodies. Level 1 is the fastest; webhook JSON still shrinks about 4× (measured on
/// the 12 KB `issues.labeled` example), and without compression ingest throughput halved in the prototype.
pub const BODY_ZSTD_LEVEL: i32 = 1;

#[derive(Clone)]
pub(super) struct Trees {
    pub(super) deliveries: sled::Tree,
    pub(super) ids: sled::Tree,
    pub(super) inbox: sled::Tree,
    pub(super) state: sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            deliveries: db.open_tree("deliveries")?,
            ids: db.open_tree("delivery_ids")?,
            inbox: db.open_tree("inbox")?,
            state: db.open_tree("delivery_state")?,
        })
    }
}

/// What Foreman keeps about a delivery besides its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMeta {
    /// The `X-GitHub-Delivery` id.
    pub id: DeliveryId,
    /// The `X-GitHub-Event` name, e.g. `issues`.
    pub event: String,
    /// The payload's `action`, when it has one.
    pub action: Option<String>,
    /// The payload's `installation.id`, when present.
    pub installation: Option<InstallationId>,
    /// The payload's `repository.full_name`, when present.
    pub repository: Option<String>,
    /// When Foreman received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Size of the raw body in bytes, before compression.
    pub body_len: u32,
}

/// A delivery ready to be stored: its metadata and its raw body compressed with [`compress_body`].
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Metadata.
    pub meta: DeliveryMeta,
    /// The zstd-compressed raw body.
    pub compressed_body: Vec<u8>,
}

/// The result of storing a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored durably under this sequence number.
    Stored(u64),
    /// A delivery with the same id was already stored (under this sequence number); nothing was written.
    Duplicate(u64),
}

/// Where a stored delivery is in its processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// In the inbox, not yet handed to the decision core (or handed, and not yet finished).
    Pending,
    /// Processed; `summary` says what was decided.
    Processed {
        /// When processing finished.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// A short, human-readable account of what was decided.
        summary: String,
    },
    /// Could not be processed (for example, a payload that does not decode); kept with its error and not
    /// retried.
    Dead {
        /// When it was dead-lettered.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// Why.
        error: String,
    },
}

/// A stored delivery's metadata and processing state, as `GET /api/deliveries/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// The sequence number: arrival order.
    pub seq: u64,
    /// Metadata.
    #[serde(flatten)]
    pub meta: DeliveryMeta,
    /// Processing state.
    pub processing: DeliveryState,
}

/// Compresses a raw body for [`NewDelivery::compressed_body`].
///
/// Each thread keeps one compression context, so a delivery costs no context allocation.
pub fn compress_body(body: &[u8]) -> Vec<u8> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(BODY_ZSTD_LEVEL).expect("zstd level 1 is valid"));
    }
    COMPRESSOR.with(|c| c.borrow_mut().compress(body)).expect("zstd compression into a Vec does not fail")
}

pub(super) fn encode_record(d: &NewDelivery) -> Vec<u8> {
    let meta = serde_json::to_vec(&d.meta).expect("metadata serialises");
    let mut out = Vec::with_capacity(4 + meta.len() + d.compressed_body.len());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&d.compressed_body);
    out
}

fn split_record(raw: &[u8]) -> Result<(DeliveryMeta, &[u8]), StoreError> {
    let corrupt = || StoreError::Corrupt("delivery record is malformed".into());
    let len = u32::from_be_bytes(raw.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?) as usize;
    let meta = raw.get(4..4 + len).ok_or_else(corrupt)?;
    let meta = serde_json::from_slice(meta).map_err(|_| corrupt())?;
    Ok((meta, &raw[4 + len..]))
}

pub(super) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(k: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(k.try_into().map_err(|_| StoreError::Corrupt("sequence key is not 8 bytes".into()))?))
}

impl Store {
    /// Stores a delivery durably, unless one with the same id is already stored. Returns only after the
    /// write is flushed to disk (group commit: concurrent callers share one flush).
    ///
    /// Errors: [`StoreError`] when the store cannot take the write; the caller answers 503.
    pub async fn put_delivery(&self, delivery: NewDelivery) -> Result<PutOutcome, StoreError> {
        let outcome = self.inner.writer.put(delivery).await?;
        if matches!(outcome, PutOutcome::Stored(_)) {
            self.inner.pending_changed.notify_one();
        }
        Ok(outcome)
    }

    /// A stored delivery's metadata and processing state, or `None` if Foreman never stored that id (or it
    /// was pruned).
    pub fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let t = &self.inner.inbox;
        let Some(seq) = t.ids.get(id.as_str())? else { return Ok(None) };
        let seq = key_seq(&seq)?;
        let Some(raw) = t.deliveries.get(seq_key(seq))? else { return Ok(None) };
        let (meta, _) = split_record(&raw)?;
        Ok(Some(DeliveryRecord { seq, meta, processing: self.delivery_state(seq)? }))
    }

    fn delivery_state(&self, seq: u64) -> Result<DeliveryState, StoreError> {
        match self.inner.inbox.state.get(seq_key(seq))? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("delivery state: {e}"))),
            None => Ok(DeliveryState::Pending),
        }
    }

    /// The raw (decompressed) body of the delivery stored under `seq`, or `None` if it is gone.
    pub fn delivery_body(&self, seq: u64) -> Result<Option<(DeliveryMeta, Bytes)>, StoreError> {
        let Some(raw) = self.inner.inbox.deliveries.get(seq_key(seq))? else { return Ok(None) };
        let (meta, compressed) = split_record(&raw)?;
        thread_local! {
            static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
                std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("a zstd decompression context"));
        }
        let body = DECOMPRESSOR
            .with(|d| d.borrow_mut().decompress(compressed, meta.body_len as usize))
            .map_err(|e| StoreError::Corrupt(format!("delivery body does not decompress: {e}")))?;
        Ok(Some((meta, Bytes::from(body))))
    }

    /// Up to `limit` sequence numbers of deliveries still in the inbox, oldest first, starting after
    /// `after` (exclusive) when given.
    pub fn pending_deliveries(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        let range = match after {
            Some(a) => self.inner.inbox.inbox.range(seq_key(a.saturating_add(1))..),
            None => self.inner.inbox.inbox.iter(),
        };
        range.keys().take(limit).map(|k| key_seq(&k?)).collect()
    }

    /// How many deliveries wait in the inbox.
    pub fn inbox_depth(&self) -> usize {
        self.inner.inbox.inbox.len()
    }

    /// Waits until a new delivery may be in the inbox. Spurious wake-ups are possible; callers re-read
    /// [`Store::pending_deliveries`].
    pub async fn inbox_changed(&self) {
        self.inner.pending_changed.notified().await
    }

    /// Takes the delivery under `seq` out of the inbox and records its final state (processed or dead).
    /// Not flushed on its own: a crash before the next group flush processes the delivery again, which the
    /// decision core and the job store tolerate (a replay has no second effect).
    pub fn finish_delivery(&self, seq: u64, state: &DeliveryState) -> Result<(), StoreError> {
        let t = &self.inner.inbox;
        t.state.insert(seq_key(seq), serde_json::to_vec(state).expect("state serialises"))?;
        t.inbox.remove(seq_key(seq))?;
        Ok(())
    }

    /// Removes deliveries received before `cutoff`, with their ids and states, oldest first, but never one
    /// still in the inbox. Returns how many were removed.
    pub fn prune_deliveries(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        let t = &self.inner.inbox;
        let mut removed = 0;
        for entry in t.deliveries.iter() {
            let (k, raw) = entry?;
            let (meta, _) = split_record(&raw)?;
            if meta.received_at >= cutoff {
                break;
            }
            if t.inbox.contains_key(&k)? {
                continue;
            }
            t.ids.remove(meta.id.as_str())?;
            t.state.remove(&k)?;
            t.deliveries.remove(&k)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, &StoreOptions { cache_bytes: 1 << 20 }).unwrap()
    }

    fn new_delivery(id: &str, received_at: OffsetDateTime) -> NewDelivery {
        let body = format!(r#"{{"action":"labeled","id":"{id}"}}"#);
        NewDelivery {
            meta: DeliveryMeta {
                id: DeliveryId(id.into()),
                event: "issues".into(),
                action: Some("labeled".into()),
                installation: Some(InstallationId(1)),
                repository: Some("o/r".into()),
                received_at,
                body_len: body.len() as u32,
            },
            compressed_body: compress_body(body.as_bytes()),
        }
    }

    #[tokio::test]
    async fn concurrent_puts_share_flushes_and_each_id_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let now = OffsetDateTime::now_utc();
        // 200 puts of 50 distinct ids, all at once: the writer batches them; duplicates inside one batch
        // and across batches are both caught.
        let puts = (0..200).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_delivery(new_delivery(&format!("id-{}", i % 50), now)).await.unwrap() })
        });
        let outcomes: Vec<PutOutcome> =
            futures_util::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
        let stored = outcomes.iter().filter(|o| matches!(o, PutOutcome::Stored(_))).count();
        assert_eq!(stored, 50);
        assert_eq!(store.inbox_depth(), 50);
        let (meta, body) = store.delivery_body(1).unwrap().unwrap();
        assert_eq!(body.len(), meta.body_len as usize);
        assert!(std::str::from_utf8(&body).unwrap().contains(meta.id.as_str()));
    }

    #[tokio::test]
    async fn inbox_survives_reopening_and_pruning_keeps_pending_and_recent() {
        let dir = tempfile::tempdir().unwrap();
        let old = OffsetDateTime::now_utc() - time::Duration::days(10);
        let recent = OffsetDateTime::now_utc();
        {
            let store = open(dir.path());
            for (id, at) in [("old-done", old), ("old-pending", old), ("new-done", recent)] {
                store.put_delivery(new_delivery(id, at)).await.unwrap();
            }
            for seq in [1, 3] {
                store.finish_delivery(seq, &DeliveryState::Processed { at: recent, summary: "ok".into() }).unwrap();
            }
            store.sync().await.unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![2]);
        let cutoff = OffsetDateTime::now_utc() - time::Duration::days(7);
        assert_eq!(store.prune_deliveries(cutoff).unwrap(), 1);
        assert!(store.delivery(&DeliveryId("old-done".into())).unwrap().is_none());
        assert!(store.delivery(&DeliveryId("old-pending".into())).unwrap().is_some());
        let kept = store.delivery(&DeliveryId("new-done".into())).unwrap().unwrap();
        assert!(matches!(kept.processing, DeliveryState::Processed { .. }));
        // Sequence numbers keep growing after a restart.
        assert_eq!(store.put_delivery(new_delivery("later", recent)).await.unwrap(), PutOutcome::Stored(4));
        // A pruned id can no longer be found, so a very late redelivery of it would be stored anew.
        assert_eq!(store.put_delivery(new_delivery("old-done", recent)).await.unwrap(), PutOutcome::Stored(5));
    }
}
