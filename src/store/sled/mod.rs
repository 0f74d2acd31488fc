//! The sled backend of the store ports: the only code that touches sled.
//!
//! It holds the deliveries and the inbox (`inbox.rs`), and, in further submodules, jobs, claims, the failure
//! ledger and sessions. One database, many trees. The rules it applies are [`crate::job`]'s.
//!
//! Durability is by group commit: every write that must be durable before Foreman answers goes through one
//! writer thread (`writer.rs`), which applies a drained batch and calls one blocking `flush` for all of it.
//! sled 0.34's `flush_async` deadlocks with concurrent callers (<https://github.com/spacejam/sled/issues/1308>),
//! so nothing else flushes. A sled flush survives a process crash (`kill -9`).

mod claims;
mod inbox;
mod jobs;
mod parents;
mod port;
mod pushes;
mod recent;
mod repo_view;
mod reports;
mod sessions;
mod status;
mod trees;
mod writer;

use std::path::Path;
use std::sync::Arc;

pub(crate) use super::{JobError, StoreError};
/// The store's handle under its name inside this backend.
use SledStore as Store;

/// The store's schema version, kept in the `meta` tree under `schema_version`. A store written by a newer
/// Foreman is refused rather than misread.
///
/// - 1: the first.
/// - 2: `job_ready` entries hold a copy of the job's record instead of its key (`jobs.rs`).
/// - 3: no `inbox` tree; the inbox is the deliveries without a state, above the inbox floor (`inbox.rs`).
/// - 4: `job_sessions` and `job_failures`, each job's sessions and failures (`sessions.rs`).
pub const SCHEMA_VERSION: u64 = 4;

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes. sled's default is 1 GiB; Foreman's default is 16 MiB.
    pub cache_bytes: u64,
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<::sled::Error> for JobError {
    fn from(e: ::sled::Error) -> Self {
        JobError::Store(e.into())
    }
}

/// The open sled store. Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    inbox: inbox::Trees,
    jobs: jobs::Trees,
    writer: writer::Handle,
    pending_changed: tokio::sync::Notify,
    /// Deliveries between [`Store::put_delivery`]'s call and its answer.
    puts_in_flight: std::sync::atomic::AtomicUsize,
    /// Notified when `puts_in_flight` falls below [`inbox::BURST_PUTS`].
    lull: tokio::sync::Notify,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. Errors when sled cannot open it, when another process holds
    /// it (sled allows one process per database), or when its schema is newer than [`SCHEMA_VERSION`].
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // No background flusher: the writer thread is the one place that flushes (group commit).
            .flush_every_ms(None)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let v = u64::from_be_bytes(
                    v.as_ref().try_into().map_err(|_| StoreError::Corrupt("schema_version is not a u64".into()))?,
                );
                if v > SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "schema version {v} is newer than this Foreman's {SCHEMA_VERSION}; upgrade Foreman"
                    )));
                }
                migrate(&db, v)?;
            }
        }
        reports::init(&db, time::OffsetDateTime::now_utc())?;
        let inbox = inbox::Trees::open(&db)?;
        let jobs = jobs::Trees::open(&db)?;
        let writer = writer::spawn(db.clone(), inbox.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                inbox,
                jobs,
                writer,
                pending_changed: tokio::sync::Notify::new(),
                puts_in_flight: Default::default(),
                lull: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Waits until every write made before this call is durable on disk. Joins the writer's next group
    /// flush, so concurrent callers share one flush.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.inner.writer.sync().await
    }

    /// Whether the store takes writes: a small write to the `meta` tree and a durable flush through the
    /// writer. Used by `/readyz`.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.db.open_tree("meta")?.insert("ready_probe", &[1u8])?;
        self.sync().await
    }

    /// The sled database, for the store's own submodules.
    #[allow(dead_code)]
    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Approximate bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }
}

/// Steps a store written with an older schema up to [`SCHEMA_VERSION`], in order, in one pass; each
/// version adds its step here. The new version is recorded last, so a crash midway repeats the steps
/// (each is idempotent).
fn migrate(db: &sled::Db, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        jobs::migrate_ready_copies(db)?;
    }
    if from < 3 {
        inbox::migrate_inbox_tree(db)?;
    }
    if from < 4 {
        sessions::migrate_job_index(db)?;
    }
    if from < SCHEMA_VERSION {
        db.open_tree("meta")?.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
    }
    Ok(())
}
