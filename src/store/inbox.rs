//! Deliveries and the inbox.
//!
//! Trees, all keyed so that time order is key order:
//! - `deliveries`: sequence number (u64, big-endian) → record: one codec byte ([`Codec`]), the length of the
//!   metadata as a 24-bit big-endian number, [`DeliveryMeta`] as JSON, then the compressed raw body.
//!   Sequence numbers grow with arrival, so inserts append to the right edge of the tree instead of touching
//!   random leaves, and pruning by age walks from the left.
//! - `delivery_ids`: `X-GitHub-Delivery` id → sequence number: the deduplication index.
//! - `delivery_state`: sequence number → [`DeliveryState`] as JSON, once processed or dead-lettered.
//!
//! The inbox is not a tree of its own: it is every delivery without a state. The `meta` tree keeps the
//! inbox floor under `inbox_floor`, a sequence number at or below which every delivery has a state, so a
//! pass over the inbox starts there instead of at the oldest delivery. The floor is advanced by the passes
//! themselves and written without a flush: a floor lost in a crash only makes the next pass start lower.
//! Storing a delivery is then two inserts (record and id), not three.
//!
//! Within a batch the writer inserts the record, then the id. sled recovers a prefix of its log after a
//! crash, so an id that survived always has its record.

use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicI64, AtomicU64};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::ids::{DeliveryId, InstallationId};

/// How a stored body is compressed: the first byte of a `deliveries` record.
///
/// Bodies are compressed because without it ingest throughput halved and memory rose about 4× in the
/// prototype (../shared/bench). New records use LZ4: on the 13.8 KB `issues.labeled` example it compresses
/// about 3× faster than zstd level 1 for a ratio of 4.5 instead of 5.4, and compression sits on every
/// delivery's path to its answer. Records written before LZ4 start with a zero byte (their first byte was the
/// high byte of a 32-bit metadata length) and hold zstd frames; they are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// A zstd frame (records written by Foreman before LZ4).
    Zstd = 0,
    /// An LZ4 block (lz4_flex); the raw length is the metadata's `body_len`.
    Lz4 = 1,
}

#[derive(Clone)]
pub(super) struct Trees {
    pub(super) deliveries: sled::Tree,
    pub(super) ids: sled::Tree,
    pub(super) state: sled::Tree,
    meta: sled::Tree,
    /// The inbox floor (see the module documentation), as last read or advanced.
    floor: Arc<AtomicU64>,
    /// How many deliveries are in the inbox: counted above the floor at open, then kept by
    /// [`Store::put_delivery`] and [`Store::finish_delivery`]. Signed, and never clamped as it changes: the
    /// worker can finish a delivery between its write and `put_delivery`'s increment, so the count may dip
    /// below zero for that moment; clamping there would lose the decrement and leave the count one too high
    /// for good. Readers clamp ([`Store::inbox_depth`]).
    depth: Arc<AtomicI64>,
}

/// The `meta` key of the inbox floor.
const FLOOR_KEY: &str = "inbox_floor";

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let meta = db.open_tree("meta")?;
        let floor = match meta.get(FLOOR_KEY)? {
            Some(v) => key_seq(&v)?,
            None => 0,
        };
        let deliveries = db.open_tree("deliveries")?;
        let state = db.open_tree("delivery_state")?;
        let mut depth = 0;
        for key in deliveries.range(seq_key(floor.saturating_add(1))..).keys() {
            if !state.contains_key(key?)? {
                depth += 1;
            }
        }
        Ok(Self {
            deliveries,
            ids: db.open_tree("delivery_ids")?,
            state,
            meta,
            floor: Arc::new(AtomicU64::new(floor)),
            depth: Arc::new(AtomicI64::new(depth)),
        })
    }

    fn floor(&self) -> u64 {
        self.floor.load(Relaxed)
    }

    fn raise_floor(&self, to: u64) -> Result<(), StoreError> {
        if to > self.floor.fetch_max(to, Relaxed) {
            self.meta.insert(FLOOR_KEY, &seq_key(to))?;
        }
        Ok(())
    }
}

/// Schema 3: the `inbox` tree (sequence number → empty, for every delivery not yet processed) is replaced by
/// the inbox floor. Deliveries that were in it have no state, so they stay in the inbox; the floor is set
/// just below the oldest of them (or at the newest delivery when it was empty), and the tree is dropped.
/// The floor is written before the tree is dropped, and a floor already written is kept, so a crash midway
/// repeats only the drop.
pub(super) fn migrate_inbox_tree(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    if meta.get(FLOOR_KEY)?.is_none() {
        let floor = match db.open_tree("inbox")?.first()? {
            Some((k, _)) => key_seq(&k)?.saturating_sub(1),
            None => match db.open_tree("deliveries")?.last()? {
                Some((k, _)) => key_seq(&k)?,
                None => 0,
            },
        };
        meta.insert(FLOOR_KEY, &seq_key(floor))?;
    }
    db.drop_tree("inbox")?;
    Ok(())
}

/// Deliveries being stored at once (answers to GitHub still to be sent) at or above which the ingress is in a
/// burst, and [`Store::ingest_lull`] waits. Sixteen is about the size of one group commit under load, far
/// above GitHub's usual traffic for one installation (deliveries one at a time), and well below a burst of
/// 64 concurrent deliveries.
pub const BURST_PUTS: usize = 16;

/// Counts a delivery in [`super::Inner::puts_in_flight`] while it is being stored.
struct PutInFlight<'a>(&'a super::Inner);

impl<'a> PutInFlight<'a> {
    fn enter(inner: &'a super::Inner) -> Self {
        inner.puts_in_flight.fetch_add(1, SeqCst);
        Self(inner)
    }
}

impl Drop for PutInFlight<'_> {
    fn drop(&mut self) {
        if self.0.puts_in_flight.fetch_sub(1, SeqCst) == BURST_PUTS {
            self.0.lull.notify_waiters();
        }
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

/// A delivery ready to be stored: its metadata and its raw body compressed with [`compress_body`] (LZ4).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Metadata.
    pub meta: DeliveryMeta,
    /// The raw body as an LZ4 block ([`compress_body`]).
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

/// The most bytes of scratch space a thread keeps between deliveries. Webhook bodies are mostly a few to a
/// few tens of KB; a rare big one (GitHub sends up to 25 MiB) uses the scratch once and is then let go.
const SCRATCH_KEPT: usize = 256 * 1024;

thread_local! {
    /// Scratch space for [`compress_body`] and [`encode_record`], kept per thread so that the request path
    /// does not allocate a buffer the size of the body for every delivery.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's empty scratch buffer, then gives back what it grew past [`SCRATCH_KEPT`].
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let out = f(scratch);
        scratch.clear();
        scratch.shrink_to(SCRATCH_KEPT);
        out
    })
}

/// Compresses a raw body for [`NewDelivery::compressed_body`]: an LZ4 block ([`Codec::Lz4`]), in a vector
/// of exactly its size.
pub fn compress_body(body: &[u8]) -> Vec<u8> {
    with_scratch(|scratch| {
        scratch.resize(lz4_flex::block::get_maximum_output_size(body.len()), 0);
        let n = lz4_flex::block::compress_into(body, scratch).expect("the buffer has the maximum output size");
        scratch[..n].to_vec()
    })
}

/// A delivery's record as stored in the `deliveries` tree: the codec byte, the metadata's length (24 bits,
/// big-endian), the metadata as JSON, the compressed body. Built as the [`sled::IVec`] the tree keeps, by
/// the caller, so the one writer thread neither encodes nor copies it.
pub(super) fn encode_record(d: &NewDelivery) -> sled::IVec {
    with_scratch(|out| {
        out.extend_from_slice(&[Codec::Lz4 as u8, 0, 0, 0]);
        serde_json::to_writer(&mut *out, &d.meta).expect("metadata serialises");
        let meta_len = out.len() - 4;
        out[1..4].copy_from_slice(&(meta_len as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&d.compressed_body);
        sled::IVec::from(out.as_slice())
    })
}

/// A record's codec, metadata and compressed body.
fn split_record(raw: &[u8]) -> Result<(Codec, DeliveryMeta, &[u8]), StoreError> {
    let corrupt = || StoreError::Corrupt("delivery record is malformed".into());
    let header: [u8; 4] = raw.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?;
    let codec = match header[0] {
        0 => Codec::Zstd,
        1 => Codec::Lz4,
        _ => return Err(corrupt()),
    };
    let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    let meta = raw.get(4..4 + len).ok_or_else(corrupt)?;
    let meta = serde_json::from_slice(meta).map_err(|_| corrupt())?;
    Ok((codec, meta, &raw[4 + len..]))
}

fn decompress_body(codec: Codec, compressed: &[u8], len: usize) -> Result<Vec<u8>, String> {
    match codec {
        Codec::Lz4 => lz4_flex::block::decompress(compressed, len).map_err(|e| e.to_string()),
        Codec::Zstd => {
            thread_local! {
                static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
                    std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("a zstd decompression context"));
            }
            DECOMPRESSOR.with(|d| d.borrow_mut().decompress(compressed, len)).map_err(|e| e.to_string())
        }
    }
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
        let _counted = PutInFlight::enter(&self.inner);
        let outcome = self.inner.writer.put(delivery).await?;
        if matches!(outcome, PutOutcome::Stored(_)) {
            self.inner.inbox.depth.fetch_add(1, Relaxed);
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
        let (_, meta, _) = split_record(&raw)?;
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
        let (codec, meta, compressed) = split_record(&raw)?;
        let body = decompress_body(codec, compressed, meta.body_len as usize)
            .map_err(|e| StoreError::Corrupt(format!("delivery body does not decompress: {e}")))?;
        Ok(Some((meta, Bytes::from(body))))
    }

    /// Up to `limit` sequence numbers of deliveries still in the inbox, oldest first, starting after
    /// `after` (exclusive) when given.
    ///
    /// A pass from the start (`after` = `None`) raises the inbox floor over the processed deliveries it
    /// steps past, so later passes start above them. Cost: one state lookup per delivery between the floor
    /// and the last one returned.
    pub fn pending_deliveries(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        let t = &self.inner.inbox;
        let floor = t.floor();
        let start = after.unwrap_or(0).max(floor).saturating_add(1);
        let mut pending = Vec::new();
        let mut processed_through = (after.is_none()).then_some(floor);
        for key in t.deliveries.range(seq_key(start)..).keys() {
            let seq = key_seq(&key?)?;
            if t.state.contains_key(seq_key(seq))? {
                if let Some(through) = processed_through.as_mut() {
                    *through = seq;
                }
                continue;
            }
            processed_through = None;
            pending.push(seq);
            if pending.len() == limit {
                break;
            }
        }
        if let Some(through) = processed_through {
            t.raise_floor(through)?;
        }
        Ok(pending)
    }

    /// How many deliveries wait in the inbox (a count kept as they come and go, not a scan). Exact once
    /// every [`Store::put_delivery`] has returned; while one is between its write and its return the count
    /// may be one low for it (never below zero).
    pub fn inbox_depth(&self) -> usize {
        self.inner.inbox.depth.load(Relaxed).max(0) as usize
    }

    /// Waits until a new delivery may be in the inbox. Spurious wake-ups are possible; callers re-read
    /// [`Store::pending_deliveries`].
    pub async fn inbox_changed(&self) {
        self.inner.pending_changed.notified().await
    }

    /// Returns when fewer than [`BURST_PUTS`] deliveries are being stored: at once, except during a burst.
    ///
    /// The inbox worker waits on this before each delivery, so during a burst the cores go to answering
    /// GitHub, which does not redeliver a delivery it gave up on, and the durable inbox absorbs the burst.
    /// Under the ingest benchmark (64 deliveries at once) this is what lets the answers keep pace; a burst
    /// that never ends would hold processing back for as long as it lasts.
    pub async fn ingest_lull(&self) {
        if self.inner.puts_in_flight.load(SeqCst) < BURST_PUTS {
            return; // the usual case: no Notify registration per delivery
        }
        loop {
            let notified = self.inner.lull.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.puts_in_flight.load(SeqCst) < BURST_PUTS {
                return;
            }
            notified.await;
        }
    }

    /// Takes the delivery under `seq` out of the inbox by recording its final state (processed or dead).
    /// Not flushed on its own: a crash before the next group flush processes the delivery again, which the
    /// decision core and the job store tolerate (a replay has no second effect).
    pub fn finish_delivery(&self, seq: u64, state: &DeliveryState) -> Result<(), StoreError> {
        let t = &self.inner.inbox;
        if t.state.insert(seq_key(seq), serde_json::to_vec(state).expect("state serialises"))?.is_none() {
            t.depth.fetch_sub(1, Relaxed);
        }
        Ok(())
    }

    /// Removes deliveries received before `cutoff`, with their ids and states, oldest first, but never one
    /// still in the inbox. Returns how many were removed.
    pub fn prune_deliveries(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        let t = &self.inner.inbox;
        let mut removed = 0;
        for entry in t.deliveries.iter() {
            let (k, raw) = entry?;
            let (_, meta, _) = split_record(&raw)?;
            if meta.received_at >= cutoff {
                break;
            }
            if !t.state.contains_key(&k)? {
                continue; // still in the inbox
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
        // The deduplication filter is rebuilt from the ids on disk: a redelivery after a restart is a duplicate.
        assert_eq!(store.put_delivery(new_delivery("new-done", recent)).await.unwrap(), PutOutcome::Duplicate(3));
        // Sequence numbers keep growing after a restart.
        assert_eq!(store.put_delivery(new_delivery("later", recent)).await.unwrap(), PutOutcome::Stored(4));
        // A pruned id can no longer be found, so a very late redelivery of it would be stored anew.
        assert_eq!(store.put_delivery(new_delivery("old-done", recent)).await.unwrap(), PutOutcome::Stored(5));
    }

    fn processed() -> DeliveryState {
        DeliveryState::Processed { at: OffsetDateTime::now_utc(), summary: "ok".into() }
    }

    #[tokio::test]
    async fn the_inbox_floor_stops_below_a_delivery_left_pending_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        {
            let store = open(dir.path());
            for i in 1..=5 {
                store.put_delivery(new_delivery(&format!("d{i}"), now)).await.unwrap();
            }
            // 1, 2 and 4 processed; 3 failed transiently and stays; 5 not reached yet.
            for seq in [1, 2, 4] {
                store.finish_delivery(seq, &processed()).unwrap();
            }
            assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![3, 5]);
            assert_eq!(store.inbox_depth(), 2);
            // A page from the middle of a pass.
            assert_eq!(store.pending_deliveries(Some(3), 10).unwrap(), vec![5]);
            assert_eq!(store.pending_deliveries(None, 1).unwrap(), vec![3]);
            store.sync().await.unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![3, 5]);
        assert_eq!(store.inbox_depth(), 2);
        store.finish_delivery(3, &processed()).unwrap();
        store.finish_delivery(5, &processed()).unwrap();
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), Vec::<u64>::new());
        assert_eq!(store.inbox_depth(), 0);
        store.put_delivery(new_delivery("d6", now)).await.unwrap();
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![6]);
        // Processed deliveries stay readable below the floor.
        let d1 = store.delivery(&DeliveryId("d1".into())).unwrap().unwrap();
        assert!(matches!(d1.processing, DeliveryState::Processed { .. }));
    }

    /// A big body goes through the per-thread scratch buffer and comes back whole, and the thread does not
    /// keep a buffer that size afterwards; a small one after it is stored as usual.
    #[tokio::test]
    async fn a_big_body_is_stored_whole_and_its_scratch_space_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let big: Vec<u8> =
            (0..256 * 1024u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()).collect();
        let mut d = new_delivery("big", OffsetDateTime::now_utc());
        d.compressed_body = compress_body(&big);
        d.meta.body_len = big.len() as u32;
        assert!(SCRATCH.with_borrow(|s| s.capacity()) <= SCRATCH_KEPT, "compress_body let its scratch go");
        let record = encode_record(&d);
        assert!(SCRATCH.with_borrow(|s| s.capacity()) <= SCRATCH_KEPT, "encode_record let its scratch go");
        let (codec, meta, compressed) = split_record(&record).unwrap();
        assert_eq!(meta.id, d.meta.id);
        assert_eq!(decompress_body(codec, compressed, big.len()).unwrap(), big);
        let PutOutcome::Stored(seq) = store.put_delivery(d).await.unwrap() else { panic!("stored") };
        store.put_delivery(new_delivery("small", OffsetDateTime::now_utc())).await.unwrap();
        assert_eq!(store.delivery_body(seq).unwrap().unwrap().1.as_ref(), big.as_slice());
        assert!(store.delivery(&DeliveryId("small".into())).unwrap().is_some());
    }

    /// A store written by schema 2: an `inbox` tree, and records as they were then (a 32-bit metadata
    /// length, then a zstd frame).
    #[tokio::test]
    async fn a_schema_2_store_keeps_its_inbox_and_its_zstd_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        {
            // Without sled's background flusher, as `Store::open` has it: that thread can hold the database's
            // file lock for a moment after the last handle is dropped, and the reopen below would fail.
            let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
            db.open_tree("meta").unwrap().insert("schema_version", &2u64.to_be_bytes()).unwrap();
            let (deliveries, ids) = (db.open_tree("deliveries").unwrap(), db.open_tree("delivery_ids").unwrap());
            let (inbox, state) = (db.open_tree("inbox").unwrap(), db.open_tree("delivery_state").unwrap());
            for seq in 1..=3u64 {
                let d = new_delivery(&format!("old{seq}"), now);
                let body = format!(r#"{{"action":"labeled","id":"old{seq}"}}"#);
                let meta = serde_json::to_vec(&d.meta).unwrap();
                let mut record = (meta.len() as u32).to_be_bytes().to_vec();
                record.extend_from_slice(&meta);
                record.extend_from_slice(&zstd::bulk::compress(body.as_bytes(), 1).unwrap());
                deliveries.insert(seq_key(seq), record).unwrap();
                ids.insert(d.meta.id.as_str(), &seq_key(seq)).unwrap();
                if seq == 1 {
                    state.insert(seq_key(seq), serde_json::to_vec(&processed()).unwrap()).unwrap();
                } else {
                    inbox.insert(seq_key(seq), &[]).unwrap();
                }
            }
            db.flush().unwrap();
        }
        let store = open(dir.path());
        assert!(!store.db().tree_names().iter().any(|n| n.as_ref() == b"inbox"));
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![2, 3]);
        let (meta, body) = store.delivery_body(2).unwrap().unwrap();
        assert_eq!(meta.id.as_str(), "old2");
        assert_eq!(&body[..], br#"{"action":"labeled","id":"old2"}"#);
        // New records (LZ4) sit beside the old ones.
        assert_eq!(store.put_delivery(new_delivery("new", now)).await.unwrap(), PutOutcome::Stored(4));
        assert_eq!(store.pending_deliveries(None, 10).unwrap(), vec![2, 3, 4]);
        assert_eq!(store.put_delivery(new_delivery("old3", now)).await.unwrap(), PutOutcome::Duplicate(3));
    }

    #[tokio::test]
    async fn the_lull_waits_while_a_burst_of_deliveries_is_being_stored() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert!(store.ingest_lull().now_or_never().is_some(), "no burst: no wait");
        let mut burst: Vec<PutInFlight> = (0..BURST_PUTS).map(|_| PutInFlight::enter(&store.inner)).collect();
        let mut lull = Box::pin(store.ingest_lull());
        assert!(lull.as_mut().now_or_never().is_none(), "a burst: the worker waits");
        burst.pop();
        tokio::time::timeout(std::time::Duration::from_secs(5), lull).await.expect("the lull follows the burst");
    }
}
