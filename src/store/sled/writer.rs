//! The group-commit writer: one thread that applies batches of delivery writes and flushes once per batch.
//!
//! Callers hand a request over a channel and wait on a oneshot reply. The thread blocks for the first
//! request, drains whatever else is waiting (up to [`MAX_BATCH`]), applies it, calls one blocking
//! `Db::flush`, and only then answers everyone in the batch. Under load, batches grow by themselves; a lone
//! request is flushed at once, with no timer to wait on. Every answer, a duplicate's too, waits for the
//! flush, so "duplicate" is never said of a delivery not yet durable. A second thread flushing while this
//! one applies the next batch was measured (twice, in sessions 2 and 3): no more throughput, and 10–15 MB
//! more peak RSS.
//!
//! Deduplication reads the `delivery_ids` tree only when a Bloom filter of the stored ids says the id may be
//! there. Delivery ids are random, so without the filter every delivery read a random leaf of that tree,
//! usually evicted from sled's cache by the bodies written since: the lookup was a third of the thread's
//! time under load. The writer is the only thread that adds ids, so the filter needs no lock; it is built
//! from the tree when the writer starts and only grows (a pruned id stays in it and costs a tree read).

use std::sync::mpsc;

use fastbloom::BloomFilter;
use tokio::sync::oneshot;

use super::StoreError;
use super::inbox::{NewDelivery, PutOutcome, Trees, encode_record, seq_key};

/// The most requests applied as one batch. Bounds the time the first request in a batch waits for the
/// others to be applied (each takes tens of microseconds) while letting a burst of 64 concurrent
/// deliveries share one flush.
pub const MAX_BATCH: usize = 256;

/// The fewest ids the deduplication filter is sized for, and its false-positive rate at that size. A
/// million ids at 1% take 1.2 MB; the filter is sized for twice the stored ids when that is more. Past its
/// size its false-positive rate rises gradually and each false positive costs one tree read; a restart
/// sizes it anew.
const FILTER_MIN_IDS: usize = 1_000_000;
const FILTER_FALSE_POSITIVES: f64 = 0.01;

enum Request {
    /// A delivery's id and its encoded record, both as the [`sled::IVec`]s the trees keep, built by the
    /// caller so the one writer thread does not.
    Put(sled::IVec, sled::IVec, oneshot::Sender<Result<PutOutcome, StoreError>>),
    Sync(oneshot::Sender<Result<(), StoreError>>),
}

/// The sending side. Dropping it stops the writer thread after a last flush and waits for it, so the
/// database is closed (and its file lock released) when the store is dropped.
pub(super) struct Handle {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Handle {
    fn sender(&self) -> Result<&mpsc::Sender<Request>, StoreError> {
        self.tx.as_ref().ok_or(StoreError::Closed)
    }

    pub(super) async fn put(&self, d: NewDelivery) -> Result<PutOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let record = encode_record(&d);
        let id = sled::IVec::from(d.meta.id.as_str().as_bytes());
        self.sender()?.send(Request::Put(id, record, reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn sync(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?.send(Request::Sync(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

pub(super) fn spawn(db: sled::Db, trees: Trees) -> Handle {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("foreman-store-writer".into())
        .spawn(move || run(db, trees, rx))
        .expect("spawn the store writer thread");
    Handle { tx: Some(tx), thread: Some(thread) }
}

/// The Bloom filter of the ids in `delivery_ids`, built by reading the tree. `None` when the tree cannot be
/// read: the writer then reads the tree for every id.
fn id_filter(trees: &Trees) -> Option<BloomFilter> {
    let stored = trees.ids.len();
    let mut filter = BloomFilter::with_false_pos(FILTER_FALSE_POSITIVES).expected_items(FILTER_MIN_IDS.max(2 * stored));
    for key in trees.ids.iter().keys() {
        match key {
            Ok(k) => {
                filter.insert(k.as_ref());
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the delivery ids; deduplicating without a filter");
                return None;
            }
        }
    }
    Some(filter)
}

fn run(db: sled::Db, trees: Trees, rx: mpsc::Receiver<Request>) {
    let mut next_seq = match trees.deliveries.last() {
        Ok(Some((k, _))) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1,
        _ => 1,
    };
    let mut filter = id_filter(&trees);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        metrics::histogram!("foreman_store_batch_size").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let applied = apply(&trees, filter.as_mut(), &mut next_seq, &batch);
        let flushing = std::time::Instant::now();
        metrics::histogram!("foreman_store_apply_seconds").record((flushing - started).as_secs_f64());
        let flushed = applied.and_then(|outcomes| db.flush().map(|_| outcomes).map_err(StoreError::from));
        metrics::histogram!("foreman_store_flush_seconds").record(flushing.elapsed().as_secs_f64());
        match flushed {
            Ok(mut outcomes) => {
                for r in batch.drain(..) {
                    match r {
                        Request::Put(_, _, reply) => {
                            let _ = reply.send(Ok(outcomes.pop_front().expect("one outcome per put")));
                        }
                        Request::Sync(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed");
                for r in batch.drain(..) {
                    let err = StoreError::Corrupt(format!("write failed: {e}"));
                    match r {
                        Request::Put(_, _, reply) => drop(reply.send(Err(err))),
                        Request::Sync(reply) => drop(reply.send(Err(err))),
                    }
                }
            }
        }
    }
    // Every sender is gone: one last flush so nothing applied is left behind.
    let _ = db.flush();
}

/// Applies the puts of a batch; returns one outcome per put, in order.
///
/// Each write is a plain insert, the record before its id, not a `sled::Batch`: `Tree::apply_batch` takes
/// sled's process-wide write lock, which waits for a flush in progress (a flush holds the read side while
/// the disk syncs) and, once taken, makes every later sled operation go through that lock. Atomicity is
/// not needed: no answer leaves before the flush that follows, and sled recovers a prefix of its log, so
/// an id that survives a crash has its record.
fn apply(
    trees: &Trees,
    mut filter: Option<&mut BloomFilter>,
    next_seq: &mut u64,
    batch: &[Request],
) -> Result<std::collections::VecDeque<PutOutcome>, StoreError> {
    let mut outcomes = std::collections::VecDeque::new();
    for r in batch {
        let Request::Put(id, record, _) = r else { continue };
        let maybe_stored = filter.as_ref().is_none_or(|f| f.contains(id.as_ref()));
        if maybe_stored && let Some(seq) = trees.ids.get(id)? {
            let seq = u64::from_be_bytes(seq.as_ref().try_into().unwrap_or([0; 8]));
            outcomes.push_back(PutOutcome::Duplicate(seq));
            continue;
        }
        let seq = *next_seq;
        *next_seq += 1;
        trees.deliveries.insert(seq_key(seq), record.clone())?;
        trees.ids.insert(id.clone(), &seq_key(seq))?;
        if let Some(f) = filter.as_mut() {
            f.insert(id.as_ref());
        }
        outcomes.push_back(PutOutcome::Stored(seq));
    }
    Ok(outcomes)
}
