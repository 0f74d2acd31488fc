//! The store conformance suite ([`store_conformance`]) on the sled backend: a real sled store in a temp
//! directory, reopened from the same directory where a test restarts.

mod store_conformance;

use std::path::Path;
use std::time::{Duration, Instant};

use foreman::store::{Store, StoreOptions};

/// Opens the sled store in `dir`. A store just dropped in this process may hold sled's file lock a moment
/// longer (its writer thread is finishing), so a failed open is retried for up to 10 s.
fn open(dir: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(dir, &StoreOptions { cache_bytes: 8 << 20 }) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("open the sled store: {e}"),
        }
    }
}

store_conformance!(open);
