//! Holding an answer open: the next request matching a method and a path suffix (after `skip` others) is
//! carried out, then its answer is held until the test releases it (or for at most [`HOLD_LIMIT`]). It
//! widens the window between GitHub doing something and the caller hearing of it, so a test can kill the
//! caller there deterministically (`SimHandle::hold_answer`, `SimHandle::release_hold`).

use std::time::Duration;

use tokio::sync::watch;

use crate::server::{Inner, Req};

/// The longest an answer is held before it is sent anyway.
pub const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// One armed hold.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// `POST`, `PATCH` …
    method: String,
    /// The request path's end, e.g. `/issues` (query excluded).
    suffix: String,
    /// Matching requests still to let through before the one held.
    skip: u64,
    /// Whether the hold is armed (set until a request is held).
    armed: bool,
}

/// The hold state of a simulator: the armed hold, and a counter of answers held now with the release.
pub(crate) struct Holds {
    hold: std::sync::Mutex<Hold>,
    /// How many answers are held right now.
    pub held: watch::Sender<u64>,
    /// Bumped by a release.
    release: watch::Sender<u64>,
}

impl Default for Holds {
    fn default() -> Self {
        Holds { hold: Default::default(), held: watch::channel(0).0, release: watch::channel(0).0 }
    }
}

impl Holds {
    /// Arms the hold (replacing one armed before).
    pub(crate) fn arm(&self, method: &str, suffix: &str, skip: u64) {
        *self.hold.lock().expect("hold lock") =
            Hold { method: method.to_ascii_uppercase(), suffix: suffix.into(), skip, armed: true };
    }

    /// Sends every held answer and disarms.
    pub(crate) fn release(&self) {
        self.hold.lock().expect("hold lock").armed = false;
        self.release.send_modify(|n| *n += 1);
    }
}

/// After `req` was carried out: waits for the release when the armed hold matches it.
pub(crate) async fn after(inner: &Inner, req: &Req) {
    let holds = &inner.holds;
    {
        let mut h = holds.hold.lock().expect("hold lock");
        if !h.armed || req.method.as_str() != h.method || !req.path.ends_with(&h.suffix) {
            return;
        }
        if h.skip > 0 {
            h.skip -= 1;
            return;
        }
        h.armed = false;
    }
    let mut released = holds.release.subscribe();
    released.borrow_and_update();
    holds.held.send_modify(|n| *n += 1);
    inner.changed.send_modify(|n| *n += 1);
    let _ = tokio::time::timeout(HOLD_LIMIT, released.changed()).await;
    holds.held.send_modify(|n| *n = n.saturating_sub(1));
}
