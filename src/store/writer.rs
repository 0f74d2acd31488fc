//! The group-commit writer: one thread that applies batches of delivery writes and flushes once per batch.
//!
//! Callers hand a request over a channel and wait on a oneshot reply. The thread blocks for the first
//! request, drains whatever else is waiting (up to [`MAX_BATCH`]), applies it, calls one blocking
//! `Db::flush`, and only then answers everyone in the batch. Under load, batches grow by themselves; a lone
//! request is flushed at once, with no timer to wait on.

use std::collections::HashMap;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::StoreError;
use super::inbox::{NewDelivery, PutOutcome, Trees, encode_record, seq_key};

/// The most requests applied under one flush. Bounds the time the first request in a batch waits for the
/// others to be applied (each is a few microseconds) while letting a burst of 64 concurrent deliveries
/// share one flush.
pub const MAX_BATCH: usize = 256;

enum Request {
    Put(NewDelivery, oneshot::Sender<Result<PutOutcome, StoreError>>),
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
        self.sender()?.send(Request::Put(d, reply)).map_err(|_| StoreError::Closed)?;
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

fn run(db: sled::Db, trees: Trees, rx: mpsc::Receiver<Request>) {
    let mut next_seq = match trees.deliveries.last() {
        Ok(Some((k, _))) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1,
        _ => 1,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let applied = apply(&trees, &mut next_seq, &batch);
        let flushed = applied.and_then(|outcomes| db.flush().map(|_| outcomes).map_err(StoreError::from));
        metrics::histogram!("foreman_store_flush_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("foreman_store_batch_size").record(batch.len() as f64);
        match flushed {
            Ok(mut outcomes) => {
                for r in batch.drain(..) {
                    match r {
                        Request::Put(_, reply) => {
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
                        Request::Put(_, reply) => drop(reply.send(Err(err))),
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
fn apply(
    trees: &Trees,
    next_seq: &mut u64,
    batch: &[Request],
) -> Result<std::collections::VecDeque<PutOutcome>, StoreError> {
    let mut outcomes = std::collections::VecDeque::new();
    let mut records = sled::Batch::default();
    let mut inbox = sled::Batch::default();
    let mut ids = sled::Batch::default();
    let mut in_batch: HashMap<&str, u64> = HashMap::new();
    for r in batch {
        let Request::Put(d, _) = r else { continue };
        let id = d.meta.id.as_str();
        if let Some(seq) = in_batch.get(id) {
            outcomes.push_back(PutOutcome::Duplicate(*seq));
            continue;
        }
        if let Some(seq) = trees.ids.get(id)? {
            let seq = u64::from_be_bytes(seq.as_ref().try_into().unwrap_or([0; 8]));
            outcomes.push_back(PutOutcome::Duplicate(seq));
            continue;
        }
        let seq = *next_seq;
        *next_seq += 1;
        records.insert(&seq_key(seq), encode_record(d));
        inbox.insert(&seq_key(seq), &[]);
        ids.insert(id.as_bytes(), &seq_key(seq));
        in_batch.insert(id, seq);
        outcomes.push_back(PutOutcome::Stored(seq));
    }
    trees.deliveries.apply_batch(records)?;
    trees.inbox.apply_batch(inbox)?;
    trees.ids.apply_batch(ids)?;
    Ok(outcomes)
}
