//! Deliveries and the inbox in sled.
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
use time::OffsetDateTime;

pub(super) use super::super::inbox::{
    BURST_PUTS, Codec, DeliveryMeta, DeliveryRecord, DeliveryState, NewDelivery, PutOutcome, with_scratch,
};
use super::{Store, StoreError};
use crate::ids::DeliveryId;

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
/// The `meta` key of the delivery log position (poll mode; [`Store::delivery_log_position`]).
const LOG_POSITION_KEY: &str = "delivery_log_position";

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

    /// Up to `limit` stored deliveries, newest first, received before the one under `before` (exclusive)
    /// when given: a page of the deliveries view, whose next page starts before the last `seq` returned.
    /// Reads `limit` records and their states, not the whole tree.
    pub fn recent_deliveries(&self, before: Option<u64>, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError> {
        let t = &self.inner.inbox;
        let end = seq_key(before.unwrap_or(u64::MAX));
        let mut out = Vec::new();
        for item in t.deliveries.range(..end).rev().take(limit) {
            let (k, raw) = item?;
            let seq = key_seq(&k)?;
            let (_, meta, _) = split_record(&raw)?;
            out.push(DeliveryRecord { seq, meta, processing: self.delivery_state(seq)? });
        }
        Ok(out)
    }

    /// The newest entry of GitHub's delivery log read in poll mode (its log entry id), kept in the `meta`
    /// tree under `delivery_log_position`; `None` before the first read.
    pub fn delivery_log_position(&self) -> Result<Option<u64>, StoreError> {
        self.inner.inbox.meta.get(LOG_POSITION_KEY)?.map(|v| key_seq(&v)).transpose()
    }

    /// Records the delivery log position durably: returns after a flush.
    pub async fn set_delivery_log_position(&self, id: u64) -> Result<(), StoreError> {
        self.inner.inbox.meta.insert(LOG_POSITION_KEY, &seq_key(id))?;
        self.sync().await
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
    use crate::ids::InstallationId;
    use crate::store::StoreOptions;
    use crate::store::inbox::compress_body;

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

    fn processed() -> DeliveryState {
        DeliveryState::Processed { at: OffsetDateTime::now_utc(), decisions: vec![], summary: "ok".into() }
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
        assert!(
            crate::store::inbox::scratch_capacity() <= crate::store::inbox::SCRATCH_KEPT,
            "compress_body let its scratch go"
        );
        let record = encode_record(&d);
        assert!(
            crate::store::inbox::scratch_capacity() <= crate::store::inbox::SCRATCH_KEPT,
            "encode_record let its scratch go"
        );
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
