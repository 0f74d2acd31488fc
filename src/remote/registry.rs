//! The sessions handed to runners: for each, the digest of its token, what the runner may fetch, and the
//! channels its events and result reach the waiting session through.
//!
//! A token is accepted for its own session id only, until it expires: each request of the runner (and each
//! claim renewal before the runner first connects) extends it by the claim's time-to-live, so it expires
//! with the claim. [`Registration`] dropped (the session ended, was stopped, or its claim expired) revokes
//! it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::protocol::{Event, RemoteResult};
use super::token::{SessionToken, TokenDigest};

/// How many event batches wait for the session to read them; a runner posting faster waits.
const EVENT_BATCHES: usize = 64;

/// Why a runner's request was refused. Answered alike (401) so a caller learns nothing of other sessions.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No session of that id is registered (never, or it ended and its token was revoked).
    #[error("no such session, or its token was revoked")]
    Unknown,
    /// The token is not this session's.
    #[error("the token is not this session's")]
    WrongToken,
    /// The token expired with the session's claim.
    #[error("the session token expired")]
    Expired,
}

/// The sessions runners may reach. Cheap to clone; shared by the executor and Foreman's HTTP routes.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    /// The dispatch token's digest, until it is exchanged.
    digest: Option<TokenDigest>,
    /// The connection token's digest, once exchanged.
    connection: Option<TokenDigest>,
    ttl: Duration,
    expires_at: Instant,
    /// When the runner last made a request; `None` before its first.
    seen: Option<Instant>,
    access: Access,
    result: Option<oneshot::Sender<RemoteResult>>,
    /// The workflow run the session was dispatched as, once known.
    run_id: Option<u64>,
    /// Woken when GitHub says the run completed (a `workflow_run` webhook).
    wake: Arc<tokio::sync::Notify>,
}

/// What an authenticated runner may reach of its session.
#[derive(Clone, Debug)]
pub struct Access {
    /// The session spec, as JSON.
    pub spec: Arc<Vec<u8>>,
    /// The git bundle of the session's branch Foreman made.
    pub bundle: PathBuf,
    /// Where the runner's result bundle is written.
    pub result_bundle: PathBuf,
    /// Where its events go.
    pub events: mpsc::Sender<Vec<Event>>,
}

/// A registered session, held by the session waiting for its runner: its events and result. Dropping it
/// revokes the token.
#[derive(Debug)]
pub struct Registration {
    id: String,
    registry: Registry,
    /// Batches of events, in the order the runner sent them.
    pub events: mpsc::Receiver<Vec<Event>>,
    /// The runner's result, once it posts it.
    pub result: oneshot::Receiver<RemoteResult>,
    /// Woken when GitHub says the session's run completed ([`Registry::run_completed`]).
    pub wake: Arc<tokio::sync::Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.revoke(&self.id);
    }
}

/// What [`Registry::register`] needs besides the id.
#[derive(Debug)]
pub struct NewSession {
    /// The digest of the session's token.
    pub digest: TokenDigest,
    /// The claim's time-to-live: how long the token lives without a renewal.
    pub ttl: Duration,
    /// The spec, as JSON.
    pub spec: Vec<u8>,
    /// The bundle handed out.
    pub bundle: PathBuf,
    /// Where the result bundle goes.
    pub result_bundle: PathBuf,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers session `id` (replacing a registration of the same id) at `now`.
    pub fn register_at(&self, id: &str, new: NewSession, now: Instant) -> Registration {
        let (events_tx, events) = mpsc::channel(EVENT_BATCHES);
        let (result_tx, result) = oneshot::channel();
        let wake = Arc::new(tokio::sync::Notify::new());
        let entry = Entry {
            connection: None,
            run_id: None,
            wake: wake.clone(),
            digest: Some(new.digest),
            ttl: new.ttl,
            expires_at: now + new.ttl,
            seen: None,
            access: Access {
                spec: Arc::new(new.spec),
                bundle: new.bundle,
                result_bundle: new.result_bundle,
                events: events_tx,
            },
            result: Some(result_tx),
        };
        self.inner.lock().expect("registry lock").insert(id.to_owned(), entry);
        Registration { id: id.to_owned(), registry: self.clone(), events, result, wake }
    }

    /// [`Self::register_at`] now.
    pub fn register(&self, id: &str, new: NewSession) -> Registration {
        self.register_at(id, new, Instant::now())
    }

    /// Exchanges session `id`'s dispatch token `token` at `now` for a connection token, once: the dispatch
    /// token is spent, and the runner is seen.
    ///
    /// # Errors
    /// [`Refused`]: an unknown or revoked session, a token that is not its dispatch token (another
    /// session's, or one already exchanged), an expired token.
    pub fn exchange_at(&self, id: &str, token: &str, now: Instant) -> Result<(Access, SessionToken), Refused> {
        let mut inner = self.inner.lock().expect("registry lock");
        let entry = inner.get_mut(id).ok_or(Refused::Unknown)?;
        if !entry.digest.as_ref().is_some_and(|d| d.matches(token)) {
            return Err(Refused::WrongToken);
        }
        if entry.expires_at <= now {
            return Err(Refused::Expired);
        }
        let connection = SessionToken::generate();
        entry.digest = None;
        entry.connection = Some(connection.digest());
        entry.seen = Some(now);
        entry.expires_at = now + entry.ttl;
        Ok((entry.access.clone(), connection))
    }

    /// [`Self::exchange_at`] now.
    pub fn exchange(&self, id: &str, token: &str) -> Result<(Access, SessionToken), Refused> {
        self.exchange_at(id, token, Instant::now())
    }

    /// Checks the connection token `token` for session `id` at `now`; on success the runner is seen and the
    /// token extended by the claim's time-to-live.
    ///
    /// # Errors
    /// [`Refused`]: an unknown or revoked session, another session's token (or the spent dispatch token),
    /// an expired token.
    pub fn authenticate_at(&self, id: &str, token: &str, now: Instant) -> Result<Access, Refused> {
        let mut inner = self.inner.lock().expect("registry lock");
        let entry = inner.get_mut(id).ok_or(Refused::Unknown)?;
        if !entry.connection.as_ref().is_some_and(|d| d.matches(token)) {
            return Err(Refused::WrongToken);
        }
        if entry.expires_at <= now {
            return Err(Refused::Expired);
        }
        entry.seen = Some(now);
        entry.expires_at = now + entry.ttl;
        Ok(entry.access.clone())
    }

    /// [`Self::authenticate_at`] now.
    pub fn authenticate(&self, id: &str, token: &str) -> Result<Access, Refused> {
        self.authenticate_at(id, token, Instant::now())
    }

    /// Hands the runner's result to the waiting session; `false` when it was already given or the session
    /// is gone.
    pub fn finish(&self, id: &str, result: RemoteResult) -> bool {
        let sender = self.inner.lock().expect("registry lock").get_mut(id).and_then(|e| e.result.take());
        sender.is_some_and(|s| s.send(result).is_ok())
    }

    /// Records that session `id` runs as workflow run `run_id`.
    pub fn set_run(&self, id: &str, run_id: u64) {
        if let Some(e) = self.inner.lock().expect("registry lock").get_mut(id) {
            e.run_id = Some(run_id);
        }
    }

    /// GitHub says workflow run `run_id` completed (a `workflow_run` or `workflow_job` webhook): the
    /// session it runs, if any, looks at it now. Returns whether one was waiting for it.
    pub fn run_completed(&self, run_id: u64) -> bool {
        let inner = self.inner.lock().expect("registry lock");
        let Some(entry) = inner.values().find(|e| e.run_id == Some(run_id)) else { return false };
        entry.wake.notify_one();
        true
    }

    /// Revokes session `id`'s token: every later request with it is refused.
    pub fn revoke(&self, id: &str) {
        self.inner.lock().expect("registry lock").remove(id);
    }

    /// At a claim renewal, at `now`: whether session `id` shows life. Before its runner's first request it
    /// does (the run waits for a runner) and its token is extended with the claim; afterwards while the
    /// runner made a request within the time-to-live. An unknown session does not.
    pub fn renew_at(&self, id: &str, now: Instant) -> bool {
        let mut inner = self.inner.lock().expect("registry lock");
        let Some(entry) = inner.get_mut(id) else { return false };
        match entry.seen {
            None => {
                entry.expires_at = now + entry.ttl;
                true
            }
            Some(seen) => now.saturating_duration_since(seen) < entry.ttl,
        }
    }

    /// [`Self::renew_at`] now.
    pub fn renew(&self, id: &str) -> bool {
        self.renew_at(id, Instant::now())
    }

    /// Whether session `id` is registered (handed to a runner and not ended).
    pub fn registered(&self, id: &str) -> bool {
        self.inner.lock().expect("registry lock").contains_key(id)
    }

    /// Whether the runner of session `id` has made a request.
    pub fn connected(&self, id: &str) -> bool {
        self.inner.lock().expect("registry lock").get(id).is_some_and(|e| e.seen.is_some())
    }

    /// How many sessions are registered.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("registry lock").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
