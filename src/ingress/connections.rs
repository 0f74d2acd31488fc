//! The HTTP server's connections: the accept loop, the cap on open connections, and the header-read and
//! idle keep-alive timeouts that `axum::serve` does not offer.
//!
//! Anyone who can reach the webhook endpoint can open connections without knowing the secret. Each
//! connection is served by hyper's HTTP/1.1 connection (`hyper::server::conn::http1`) in a task of its own,
//! under three bounds ([`ConnectionLimits`], configured under `[server]`):
//!
//! - **Header read timeout.** A new connection must deliver its first request's headers within
//!   `server.header_read_timeout_secs` of being accepted, and a following request on a kept-alive connection
//!   within that time of its first byte. Otherwise the connection is closed (no answer: no request was read).
//!   This closes connections that send nothing, and those that send headers a byte at a time.
//! - **Idle keep-alive timeout.** A connection kept alive after a response is closed when its next request
//!   has not begun within `server.idle_timeout_secs`.
//! - **Connection cap.** At most `server.max_connections` connections are served at once. When a new
//!   connection arrives at the cap, the connection that has waited longest for a request (idle, or still
//!   sending headers) is closed to make room; connections in the middle of a request are never closed for
//!   this. Only when every connection is in a request does the new one wait, in the kernel's listen backlog,
//!   until one ends: a request ends within the request timeout ([`crate::server::REQUEST_TIMEOUT`]). So a
//!   delivery from GitHub, which sends its request as soon as it connects, is answered while the cap is full
//!   of idle connections: a connection that has not sent its request yet is safe until `max_connections`
//!   newer ones have arrived.
//!
//! The cap is fitted to the open-file limit at start ([`fit_open_file_limit`]). Accept errors that still
//! mean the process or the system is out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
//! close the longest-idle connection and retry once it has closed, or, with none to close, back off
//! ([`ACCEPT_BACKOFF_MIN`] doubling to [`ACCEPT_BACKOFF_MAX`]), rather than spin or stop. A flood (the cap
//! reached, or accept errors) is logged once when it starts and once when it is over, with its totals, never
//! once per connection.
//!
//! Request bodies are bounded elsewhere: per request by [`super::MAX_BODY_BYTES`], across requests by the
//! unverified-body budget ([`super::budget`]), and in time by the request timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The largest buffer hyper keeps per connection for reading, in bytes; a request head must fit in it
/// (hyper answers 431 otherwise). GitHub's request heads are under 4 KiB. hyper's default (about 400 KiB)
/// would let the connections at the cap hold about 200 MiB of headers between them; 64 KiB bounds that to
/// 32 MiB at the default cap, and is still large enough to read bodies in big frames.
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// The first wait after an accept error such as EMFILE when no connection can be closed to free a
/// descriptor (every one is in a request, which ends within the request timeout). Short, since a request
/// may end at any moment.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// The longest wait between accept attempts while errors persist (ENFILE: the whole system is out of file
/// descriptors), and the longest wait for a connection closed to free a descriptor. Doubling up to a
/// second keeps a lasting error from spinning a core, and the listener is tried again within a second of
/// the condition clearing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// While at the cap with every connection in a request, how often the accept loop looks again for a
/// connection that has gone idle (a request ending on a kept-alive connection frees no slot by itself).
/// Often enough to add nothing noticeable to a waiting delivery's answer time; each look scans at most
/// `max_connections` entries.
pub const SLOT_RETRY: Duration = Duration::from_millis(50);

/// A flood is over when this long has passed without a connection closed to make room, a connection
/// waiting for a slot, or an accept error; then one line reports its totals. Ten seconds joins the waves of
/// one attack into one report.
pub const FLOOD_QUIET: Duration = Duration::from_secs(10);

/// The bounds on connections, from the `[server]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time for a request's headers to arrive: from a connection's acceptance for its first request, from
    /// the first byte for a later one on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may wait for the first byte of its next request.
    pub idle_timeout: Duration,
    /// Connections served at once (at least 1).
    pub max_connections: usize,
}

/// Serves `router` on `listener` under `limits` until `signal` completes, then stops accepting, lets each
/// connection finish its request in flight (hyper's graceful shutdown: idle connections close at once),
/// and returns when every connection has closed. Each request carries the peer's address as
/// [`ConnectInfo<SocketAddr>`], as `axum::serve` with `into_make_service_with_connect_info` gives.
///
/// Accept errors never end it (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()>,
) {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let table = Arc::new(Table::default());
    let closing = CancellationToken::new();
    let mut flood = Flood::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(signal);
    loop {
        let quiet_at = flood.quiet_at();
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
            () = sleep_until(quiet_at) => {
                flood.end(max);
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                flood.accept_error(&e, max);
                // Closing a connection frees a descriptor: retry as soon as it has closed. With none to close
                // (or another process took the descriptor), back off.
                let wait = if table.evict_one() {
                    flood.evicted += 1;
                    ACCEPT_BACKOFF_MAX
                } else {
                    let wait = backoff;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    wait
                };
                tokio::select! {
                    () = table.closed.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = &mut signal => break,
                }
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                flood.at_cap(max);
                let permit = loop {
                    if table.evict_one() {
                        flood.evicted += 1;
                    }
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => break permit.ok(),
                        () = tokio::time::sleep(SLOT_RETRY) => flood.waited += 1,
                        () = &mut signal => break None,
                    }
                };
                match permit {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        let activity = table.insert();
        let (router, table, closing) = (router.clone(), table.clone(), closing.clone());
        tokio::spawn(async move {
            metrics::gauge!("foreman_connections_open").increment(1.0);
            let id = activity.id;
            serve_connection(stream, peer, router, activity, limits, closing).await;
            table.remove(id);
            metrics::gauge!("foreman_connections_open").decrement(1.0);
            drop(permit);
            table.closed.notify_one();
        });
    }
    drop(listener);
    closing.cancel();
    // Every connection holds a slot until it has closed.
    let _ = slots.acquire_many(max as u32).await;
    if flood.since.is_some() {
        flood.end(max);
    }
}

/// Accept errors that concern one connection only (it was reset before it was accepted): try the next.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One flood: when it began, what happened, and the one warning said about it.
#[derive(Default)]
struct Flood {
    since: Option<Instant>,
    last: Option<Instant>,
    evicted: u64,
    waited: u64,
    accept_errors: u64,
}

impl Flood {
    fn pressure(&mut self) -> bool {
        let now = Instant::now();
        self.last = Some(now);
        if self.since.is_some() {
            return false;
        }
        self.since = Some(now);
        true
    }

    fn at_cap(&mut self, max: usize) {
        if self.pressure() {
            tracing::warn!(
                max_connections = max,
                "connection flood: at the connection cap (server.max_connections); closing the connections \
                 that have waited longest for a request to admit new ones. One line follows when it is over"
            );
        }
    }

    fn accept_error(&mut self, e: &io::Error, max: usize) {
        self.accept_errors += 1;
        metrics::counter!("foreman_accept_errors_total").increment(1);
        if self.pressure() {
            tracing::warn!(
                error = %e,
                max_connections = max,
                "connection flood: cannot accept connections; closing idle connections and backing off. If this \
                 says too many open files, raise the open-file limit or lower server.max_connections. One line \
                 follows when it is over"
            );
        }
    }

    fn quiet_at(&self) -> Option<tokio::time::Instant> {
        self.since?;
        self.last.map(|last| tokio::time::Instant::from_std(last + FLOOD_QUIET))
    }

    fn end(&mut self, max: usize) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                seconds = since.elapsed().as_secs(),
                closed_to_make_room = self.evicted,
                waits_for_a_slot = self.waited,
                accept_errors = self.accept_errors,
                max_connections = max,
                "connection flood over"
            );
        }
        *self = Flood::default();
    }
}

/// The open connections, for choosing which to close at the cap.
#[derive(Default)]
struct Table {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    /// A connection has closed (its socket and slot are free).
    closed: Notify,
}

impl Table {
    fn insert(&self) -> Arc<Activity> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(id));
        self.open.lock().expect("connection table").insert(id, activity.clone());
        activity
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("connection table").remove(&id);
    }

    /// Tells the connection that has waited longest for a request, among those not in one and not already
    /// told, to close. `false` when there is none.
    fn evict_one(&self) -> bool {
        let open = self.open.lock().expect("connection table");
        let victim = open
            .values()
            .filter(|a| a.in_flight.load(Ordering::Acquire) == 0 && !a.evicting.load(Ordering::Acquire))
            .min_by_key(|a| a.waiting_key());
        match victim {
            Some(victim) => {
                victim.evicting.store(true, Ordering::Release);
                victim.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// "No time": the head of the next request has not begun.
const NONE: u64 = u64::MAX;

/// Milliseconds since the first call, on the monotonic clock.
fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What one connection is doing, shared by its task, its reads, its requests and the table.
struct Activity {
    id: u64,
    /// Requests between their head being read and their response's end (0 or 1 for HTTP/1.1).
    in_flight: AtomicU32,
    /// Requests begun on this connection.
    served: AtomicU64,
    /// When the connection began waiting for a request: its acceptance, or the end of the last response.
    waiting_since: AtomicU64,
    /// When the first byte of the next request arrived, or [`NONE`].
    head_started: AtomicU64,
    /// Set by the table when it chose this connection to close.
    evicting: AtomicBool,
    /// A change of the above that moves the connection's deadline.
    changed: Notify,
    /// The table asks the connection to close.
    evict: Notify,
}

impl Activity {
    fn new(id: u64) -> Self {
        Self {
            id,
            in_flight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            waiting_since: AtomicU64::new(now_ms()),
            head_started: AtomicU64::new(NONE),
            evicting: AtomicBool::new(false),
            changed: Notify::new(),
            evict: Notify::new(),
        }
    }

    /// Bytes arrived: the first ones while no request is in flight begin the next request's head.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started.load(Ordering::Acquire) == NONE {
            self.head_started.store(now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NONE, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection times out as things stand (milliseconds on [`now_ms`]'s clock), and why; `None`
    /// while a request is in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(u64, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let header = limits.header_read_timeout.as_millis() as u64;
        let waiting = self.waiting_since.load(Ordering::Acquire);
        if self.served.load(Ordering::Acquire) == 0 {
            return Some((waiting.saturating_add(header), "header_timeout"));
        }
        match self.head_started.load(Ordering::Acquire) {
            NONE => Some((waiting.saturating_add(limits.idle_timeout.as_millis() as u64), "idle_timeout")),
            started => Some((started.saturating_add(header), "header_timeout")),
        }
    }

    /// Orders connections for closing at the cap: the one that began waiting for its current request's
    /// head earliest goes first.
    fn waiting_key(&self) -> u64 {
        match self.head_started.load(Ordering::Acquire) {
            started if started != NONE && self.served.load(Ordering::Acquire) > 0 => started,
            _ => self.waiting_since.load(Ordering::Acquire),
        }
    }
}

/// A request in flight on its connection, from its head read to its response's end (dropped with the
/// response body).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.head_started.store(NONE, Ordering::Release);
        a.waiting_since.store(now_ms(), Ordering::Release);
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.changed.notify_one();
        }
    }
}

/// A response body that ends its request's [`InFlight`] when it is dropped (written out, or abandoned).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling its connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves one connection until it closes, times out, is closed to make room, or (after `closing`) has
/// finished its request in flight.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    closing: CancellationToken,
) {
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = activity.begin_request();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await.unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })))
            }
        }
    });
    let io = TokioIo::new(Watched { stream, activity: activity.clone() });
    // No hyper timer: the timeouts are this function's, so that idle and header time are told apart.
    let connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_READ_BUFFER)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut graceful = false;
    let closed = loop {
        let deadline = activity.deadline(&limits);
        let at = deadline.map(|(ms, _)| tokio::time::Instant::from_std(epoch() + Duration::from_millis(ms)));
        tokio::select! {
            // The connection first: a request whose head has arrived begins before an eviction is looked at,
            // so a connection chosen before its task ran is not closed with its request unread.
            biased;
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break None;
            }
            () = sleep_until(at) => {
                if let Some((ms, why)) = activity.deadline(&limits) && ms <= now_ms() {
                    break Some(why);
                }
            }
            () = activity.changed.notified() => {}
            () = activity.evict.notified() => {
                if activity.in_flight.load(Ordering::Acquire) == 0 {
                    break Some("evicted");
                }
                // A request began since it was chosen: let it finish, then close.
                connection.as_mut().graceful_shutdown();
                graceful = true;
            }
            () = closing.cancelled(), if !graceful => {
                connection.as_mut().graceful_shutdown();
                graceful = true;
            }
        }
    };
    if let Some(reason) = closed {
        tracing::debug!(%peer, reason, "connection closed by the server");
        metrics::counter!("foreman_connections_closed_total", "reason" => reason).increment(1);
    }
}

/// The open-file limit Foreman wants beyond its connections: the store, logs, git and agent processes'
/// pipes, the mirrors' files. 256 leaves room for several sessions at once.
pub const FD_RESERVE: u64 = 256;

/// Fits `max_connections` into the process's open-file limit (`RLIMIT_NOFILE`) and returns how many
/// connections to serve at once. The soft limit is raised towards the hard one when it is below
/// `max_connections` + [`FD_RESERVE`]. When even the hard limit is too low, Foreman serves fewer connections
/// (the limit less [`FD_RESERVE`], and at least half the limit) and warns, naming the key: the cap then
/// closes idle connections before accept runs out of descriptors.
#[cfg(unix)]
pub fn fit_open_file_limit(max_connections: usize) -> usize {
    let wanted = (max_connections as libc::rlim_t).saturating_add(FD_RESERVE as libc::rlim_t);
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return max_connections;
        }
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), ..limit };
            if raised.rlim_cur > limit.rlim_cur && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    if limit.rlim_cur >= wanted {
        return max_connections;
    }
    let fitting = limit.rlim_cur.saturating_sub(FD_RESERVE as libc::rlim_t).max(limit.rlim_cur / 2).max(1);
    let serving = usize::try_from(fitting).unwrap_or(max_connections).min(max_connections);
    tracing::warn!(
        open_file_limit = limit.rlim_cur,
        max_connections,
        serving,
        "the open-file limit is below server.max_connections + {FD_RESERVE}: serving at most {serving} \
         connections at once. Raise the limit (ulimit -n, LimitNOFILE=) or lower server.max_connections \
         (FOREMAN_MAX_CONNECTIONS)"
    );
    serving
}

/// `max_connections`, where there is no `RLIMIT_NOFILE`.
#[cfg(not(unix))]
pub fn fit_open_file_limit(max_connections: usize) -> usize {
    max_connections
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 8,
    };

    #[test]
    fn deadlines_tell_a_new_connection_headers_in_progress_and_an_idle_kept_alive_one_apart() {
        let a = Arc::new(Activity::new(0));
        a.waiting_since.store(1_000, Ordering::Release);
        assert_eq!(a.deadline(&LIMITS), Some((11_000, "header_timeout")), "new: headers from the opening");
        a.read();
        let request = a.begin_request();
        assert_eq!(a.deadline(&LIMITS), None, "no timeout of this module while a request is in flight");
        drop(request);
        a.waiting_since.store(2_000, Ordering::Release);
        assert_eq!(a.deadline(&LIMITS), Some((62_000, "idle_timeout")), "kept alive: idle until a byte comes");
        a.head_started.store(5_000, Ordering::Release);
        assert_eq!(a.deadline(&LIMITS), Some((15_000, "header_timeout")), "then headers from their first byte");
    }

    #[test]
    fn at_the_cap_the_connection_waiting_longest_goes_first_and_one_in_a_request_never() {
        let table = Table::default();
        let (old, busy, young) = (table.insert(), table.insert(), table.insert());
        old.waiting_since.store(100, Ordering::Release);
        busy.waiting_since.store(50, Ordering::Release);
        young.waiting_since.store(900, Ordering::Release);
        let _request = busy.begin_request();
        assert!(table.evict_one());
        assert!(old.evicting.load(Ordering::Acquire) && !young.evicting.load(Ordering::Acquire));
        assert!(table.evict_one());
        assert!(young.evicting.load(Ordering::Acquire));
        assert!(!table.evict_one(), "the one in a request is never chosen");
        assert!(!busy.evicting.load(Ordering::Acquire));
    }
}
