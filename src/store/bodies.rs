//! Delivery bodies in append-only segment files beside sled.
//!
//! sled 0.34 copies a whole leaf on every change and rewrites whole leaves when it splits or consolidates
//! them, so a few-kilobyte value is written to its log several times over. Under the ingest benchmark the
//! sled inserts of stored bodies were the largest cost after compression (see the README's Performance
//! section); the bench's `rust-sled-group-log` peer, which keeps bodies in a plain append-only file, made
//! 1.36× the throughput of the all-in-sled `rust-sled-group` in the same run. So the compressed bodies go
//! here, and sled keeps, per delivery, its metadata and where its body lies.
//!
//! Layout: directory `bodies` inside the store's directory (sled ignores it); files named by the sequence
//! number of their first delivery, 16 hex digits, `.zst`: the zstd frames of the bodies, one after another.
//! A file is closed for appending once it holds [`SEGMENT_BYTES`]; the next batch starts a new one.
//!
//! Durability: the writer appends a batch's bodies with one write and `fdatasync`s the file before it
//! applies the batch's records to sled and flushes sled, so a flushed record never points past the durable
//! end of its file. Bytes appended by a batch whose records were never flushed (a crash or a failed flush in
//! between) stay in the file unreferenced; they cost space until the file is pruned, nothing else.
//!
//! Pruning: a file is deleted once every delivery in it is gone, i.e. once the first delivery of the next
//! file is at or below the oldest delivery still stored. The newest file is never deleted.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes after which a body file takes no more appends. Bounds what one file keeps on disk after most of
/// its deliveries are pruned (retention deletes whole files), while keeping the number of files small
/// (64 MiB holds about 25,000 deliveries of the 13.8 KB `issues.labeled` example, compressed).
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Where a stored body lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyPointer {
    /// The file: the sequence number of its first delivery.
    pub(super) segment: u64,
    /// Byte offset in the file.
    pub(super) offset: u64,
    /// Length in bytes of the compressed body.
    pub(super) len: u32,
}

impl BodyPointer {
    pub(super) const ENCODED_LEN: usize = 20;

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.segment.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    pub(super) fn decode(raw: &[u8]) -> Option<Self> {
        if raw.len() != Self::ENCODED_LEN {
            return None;
        }
        Some(Self {
            segment: u64::from_be_bytes(raw[..8].try_into().ok()?),
            offset: u64::from_be_bytes(raw[8..16].try_into().ok()?),
            len: u32::from_be_bytes(raw[16..].try_into().ok()?),
        })
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016x}.zst"))
}

/// The body files' segment numbers, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".zst")) else { continue };
        if let Ok(n) = u64::from_str_radix(name, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The writer's side: appends batches to the newest file.
pub(super) struct Appender {
    dir: PathBuf,
    /// The file taking appends: its segment number, the open file, and its length.
    current: Option<(u64, File, u64)>,
}

impl Appender {
    /// Opens the body directory under the store's directory, creating it, and continues the newest file.
    pub(super) fn open(store_dir: &Path) -> std::io::Result<Self> {
        let dir = store_dir.join("bodies");
        std::fs::create_dir_all(&dir)?;
        let current = match segments(&dir)?.last() {
            Some(&segment) => {
                let file = std::fs::OpenOptions::new().append(true).open(segment_path(&dir, segment))?;
                let len = file.metadata()?.len();
                Some((segment, file, len))
            }
            None => None,
        };
        Ok(Self { dir, current })
    }

    /// Appends `bytes` (the bodies of one batch, whose first new delivery is `first_seq`) and makes them
    /// durable (`fdatasync`). Returns the segment and the offset the bytes start at.
    pub(super) fn append(&mut self, first_seq: u64, bytes: &[u8]) -> std::io::Result<(u64, u64)> {
        if self.current.as_ref().is_none_or(|(_, _, len)| *len >= SEGMENT_BYTES) {
            let file =
                std::fs::OpenOptions::new().create(true).append(true).open(segment_path(&self.dir, first_seq))?;
            let len = file.metadata()?.len();
            // The new file's name must be durable before records point at it.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some((first_seq, file, len));
        }
        let (segment, file, len) = self.current.as_mut().expect("a current file");
        let offset = *len;
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        // After a failed write, part of it may be in the file: continue after whatever is there.
        *len = match &written {
            Ok(()) => offset + bytes.len() as u64,
            Err(_) => file.metadata().map(|m| m.len()).unwrap_or(offset + bytes.len() as u64),
        };
        written.map(|()| (*segment, offset))
    }
}

/// The readers' side: reads bodies and prunes files. Keeps the last file it read open.
pub(super) struct Bodies {
    dir: PathBuf,
    last: Mutex<Option<(u64, Arc<File>)>>,
}

impl Bodies {
    pub(super) fn new(store_dir: &Path) -> Self {
        Self { dir: store_dir.join("bodies"), last: Mutex::new(None) }
    }

    /// The compressed body at `at`. Errors when the file is gone or shorter than the pointer says.
    pub(super) fn read(&self, at: BodyPointer) -> std::io::Result<Vec<u8>> {
        let file = {
            let mut last = self.last.lock().expect("body reader cache");
            match &*last {
                Some((segment, file)) if *segment == at.segment => file.clone(),
                _ => {
                    let file = Arc::new(File::open(segment_path(&self.dir, at.segment))?);
                    *last = Some((at.segment, file.clone()));
                    file
                }
            }
        };
        let mut buf = vec![0; at.len as usize];
        file.read_exact_at(&mut buf, at.offset)?;
        Ok(buf)
    }

    /// Deletes every file all of whose deliveries are gone: those followed by a file whose first delivery
    /// is at or below `oldest_kept` (the oldest delivery still stored, or `u64::MAX` when none is). The
    /// newest file stays. Returns how many files were deleted.
    pub(super) fn prune(&self, oldest_kept: u64) -> std::io::Result<usize> {
        let segments = segments(&self.dir)?;
        let mut deleted = 0;
        for pair in segments.windows(2) {
            if pair[1] > oldest_kept {
                break;
            }
            let mut last = self.last.lock().expect("body reader cache");
            if last.as_ref().is_some_and(|(s, _)| *s == pair[0]) {
                *last = None;
            }
            std::fs::remove_file(segment_path(&self.dir, pair[0]))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Bytes the body files take on disk.
    pub(super) fn size_on_disk(&self) -> std::io::Result<u64> {
        let mut total = 0;
        for segment in segments(&self.dir)? {
            total += std::fs::metadata(segment_path(&self.dir, segment))?.len();
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_read_back_files_rotate_and_prune_keeps_what_is_pointed_into() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path()).unwrap();
        assert_eq!(appender.append(1, b"aaa").unwrap(), (1, 0));
        assert_eq!(appender.append(2, b"bb").unwrap(), (1, 3));
        // The file is full: the next batch, whose first delivery is 5, starts file 5.
        appender.current.as_mut().unwrap().2 = SEGMENT_BYTES;
        assert_eq!(appender.append(5, b"c").unwrap(), (5, 0));
        let bodies = Bodies::new(dir.path());
        let read = |segment, offset, len| bodies.read(BodyPointer { segment, offset, len }).unwrap();
        assert_eq!(read(1, 3, 2), b"bb");
        assert_eq!(read(5, 0, 1), b"c");
        assert_eq!(read(1, 0, 3), b"aaa");
        assert!(bodies.read(BodyPointer { segment: 1, offset: 4, len: 2 }).is_err(), "past the end");
        // Delivery 4 is still stored: file 1 may hold it.
        assert_eq!(bodies.prune(4).unwrap(), 0);
        assert_eq!(read(1, 0, 3), b"aaa");
        // The oldest stored delivery is 5: file 1 goes; the newest file never does.
        assert_eq!(bodies.prune(5).unwrap(), 1);
        assert!(bodies.read(BodyPointer { segment: 1, offset: 0, len: 3 }).is_err());
        assert_eq!(bodies.prune(u64::MAX).unwrap(), 0);
        assert_eq!(bodies.size_on_disk().unwrap(), 1);
        // Reopened (a restart), appends continue the newest file where it ends.
        drop(appender);
        let mut appender = Appender::open(dir.path()).unwrap();
        assert_eq!(appender.append(6, b"dd").unwrap(), (5, 1));
    }
}
