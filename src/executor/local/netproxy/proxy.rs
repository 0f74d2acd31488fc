//! The allowlisting forward proxy: HTTP/1.1 on a Unix socket (hyper), `CONNECT` tunnels and absolute-form
//! requests, one decision per request against the session's [`Allowlist`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::ProxyLimits;
use super::allowlist::{Allowlist, Host};

/// One decision of the proxy, for the session log (serialised with a `decision` tag: `allowed`, `refused`,
/// `failed`). `target` is `host:port` as the agent asked for it (names lower-cased, IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ProxyEvent {
    /// The target is allowed and the proxy connected to it; `method` is `CONNECT` for a tunnel, else the
    /// forwarded request's method.
    Allowed {
        /// `host:port`.
        target: String,
        /// The request method.
        method: String,
    },
    /// The agent was answered `403` (not allowed), `400` (not a proxy request) or `503` (connection cap).
    /// `target` is `None` when the request named none (or was never read, for the cap).
    Refused {
        /// `host:port`, when known.
        target: Option<String>,
        /// The request method, when read.
        method: Option<String>,
        /// The one-line reason the agent was also given.
        reason: String,
    },
    /// The target is allowed but could not be reached: `502` (resolution or connection failed) or `504`
    /// (not connected within the connect timeout).
    Failed {
        /// `host:port`.
        target: String,
        /// The request method.
        method: String,
        /// The one-line reason the agent was also given.
        reason: String,
    },
}

/// A running proxy for one session. Dropping it (or cancelling the token given to [`NetProxy::bind`]) closes
/// its listener and every connection and tunnel; [`NetProxy::shutdown`] also waits until they are closed.
#[derive(Debug)]
pub struct NetProxy {
    path: PathBuf,
    cancel: CancellationToken,
    accept: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    allowlist: Allowlist,
    limits: ProxyLimits,
    events: mpsc::Sender<ProxyEvent>,
    dropped: AtomicU64,
    cancel: CancellationToken,
}

impl Shared {
    /// Sends without waiting: a full channel drops the event (counted), so a flood of refused connections
    /// never makes the proxy wait on the session log.
    fn report(&self, event: ProxyEvent) {
        tracing::debug!(?event, "network proxy");
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl NetProxy {
    /// Listens on a new Unix socket at `socket` (mode 0600; the path must not exist and, as every Unix
    /// socket path, must be shorter than 108 bytes) and serves it until `cancel` is cancelled or the
    /// [`NetProxy`] is dropped. Each decision is sent to `events` without waiting (see
    /// [`NetProxy::dropped_events`]). Must be called inside a tokio runtime.
    ///
    /// Errors: the socket cannot be created (the directory is missing, the path exists or is too long).
    pub fn bind(
        socket: &Path,
        allowlist: Allowlist,
        limits: ProxyLimits,
        events: mpsc::Sender<ProxyEvent>,
        cancel: &CancellationToken,
    ) -> io::Result<NetProxy> {
        let listener = UnixListener::bind(socket)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        }
        let cancel = cancel.child_token();
        let shared = Arc::new(Shared { allowlist, limits, events, dropped: AtomicU64::new(0), cancel: cancel.clone() });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(NetProxy { path: socket.to_owned(), cancel, accept: Some(accept), shared })
    }

    /// The socket's path, as given to [`NetProxy::bind`].
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Events not sent because the channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Closes the listener and every connection, waits until they are closed and removes the socket file.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for NetProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts until cancelled; then aborts every connection task (which drops its sockets, tunnels included).
async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(serve_connection(stream, shared.clone(), permit));
                    }
                    Err(_) => refuse_over_cap(&stream, &shared),
                },
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "network proxy: accept failed");
                    tokio::select! {
                        _ = shared.cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Answers `503` without reading the request (a non-blocking write of one short response into an empty
/// socket buffer) and closes the connection.
fn refuse_over_cap(stream: &UnixStream, shared: &Shared) {
    let reason = format!("more than {} connections open", shared.limits.max_connections);
    let body = format!("foreman proxy: {reason}\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
    shared.report(ProxyEvent::Refused { target: None, method: None, reason });
}

type Body = BoxBody<Bytes, hyper::Error>;

/// A CONNECT the service answered `200`: the agent's side arrives once hyper hands the connection over.
struct PendingTunnel {
    agent: OnUpgrade,
    origin: Tracked<TcpStream>,
}

/// What one connection's requests share.
struct Connection {
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    tunnel: Mutex<Option<PendingTunnel>>,
    /// Cancelled when the connection ends: stops the drivers of forwarded requests' origin connections.
    cancel: CancellationToken,
}

async fn serve_connection(stream: UnixStream, shared: Arc<Shared>, _slot: OwnedSemaphorePermit) {
    let limits = shared.limits;
    let activity = Arc::new(Activity::new());
    let cancel = shared.cancel.child_token();
    let _cancel_on_exit = cancel.clone().drop_guard();
    let conn = Arc::new(Connection { shared, activity: activity.clone(), tunnel: Mutex::new(None), cancel });
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let service = {
        let conn = conn.clone();
        service_fn(move |req| handle(req, conn.clone()))
    };
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true)
        .serve_connection(io, service)
        .with_upgrades();
    let work = async {
        if let Err(e) = http.await {
            tracing::debug!(error = %e, "network proxy: connection ended");
        }
        let pending = conn.tunnel.lock().expect("tunnel slot").take();
        if let Some(PendingTunnel { agent, mut origin }) = pending
            && let Ok(agent) = agent.await
        {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(agent), &mut origin).await;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = activity.idle(limits.idle_timeout) => tracing::debug!("network proxy: idle connection closed"),
    }
}

async fn handle(mut req: Request<Incoming>, conn: Arc<Connection>) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let target = match target_of(&req) {
        Ok(t) => t,
        Err(reason) => {
            let response = text(StatusCode::BAD_REQUEST, &reason);
            conn.shared.report(ProxyEvent::Refused { target: None, method: Some(method), reason });
            return Ok(response);
        }
    };
    let name = format!("{}:{}", target.0, target.1);
    if let Err(reason) = conn.shared.allowlist.check(&target.0, target.1) {
        let response = text(StatusCode::FORBIDDEN, &reason);
        conn.shared.report(ProxyEvent::Refused { target: Some(name), method: Some(method), reason });
        return Ok(response);
    }
    let origin = match tokio::time::timeout(conn.shared.limits.connect_timeout, dial(&target.0, target.1)).await {
        Ok(Ok(s)) => Tracked { inner: s, activity: conn.activity.clone() },
        Ok(Err(e)) => {
            let reason = format!("cannot connect to {name}: {e}");
            return Ok(failed(&conn, StatusCode::BAD_GATEWAY, name, method, reason));
        }
        Err(_) => {
            let reason =
                format!("{name} did not connect within {} s", conn.shared.limits.connect_timeout.as_secs_f64());
            return Ok(failed(&conn, StatusCode::GATEWAY_TIMEOUT, name, method, reason));
        }
    };
    conn.shared.report(ProxyEvent::Allowed { target: name.clone(), method: method.clone() });
    if req.method() == Method::CONNECT {
        let agent = hyper::upgrade::on(&mut req);
        *conn.tunnel.lock().expect("tunnel slot") = Some(PendingTunnel { agent, origin });
        return Ok(Response::new(empty()));
    }
    match forward(req, origin, &target, &conn).await {
        Ok(response) => Ok(response),
        Err(e) => Ok(failed(&conn, StatusCode::BAD_GATEWAY, name.clone(), method, format!("{name}: {e}"))),
    }
}

/// The `(host, port)` a request is for: a CONNECT's authority (`host:port`, port required), or an
/// absolute-form `http://` URI's (port 80 by default). Anything else is not a proxy request.
fn target_of(req: &Request<Incoming>) -> Result<(Host, u16), String> {
    let uri = req.uri();
    let authority = uri.authority().ok_or_else(|| {
        "not a proxy request: send CONNECT host:port, or an absolute-form URI (GET http://host/path)".to_owned()
    })?;
    let port = if req.method() == Method::CONNECT {
        authority.port_u16().ok_or_else(|| format!("CONNECT {authority}: the port is missing"))?
    } else {
        match uri.scheme_str() {
            Some("http") => authority.port_u16().unwrap_or(80),
            Some(other) => return Err(format!("{other}:// through a proxy needs CONNECT")),
            None => return Err("not a proxy request: the URI has no scheme".into()),
        }
    };
    if authority.as_str().contains('@') {
        return Err("credentials in the request target are not accepted".into());
    }
    let host = Host::parse(authority.host())?;
    Ok((host, port))
}

/// Resolves (for a name) and connects, trying each address in the order the resolver gave.
async fn dial(host: &Host, port: u16) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port)).await?.collect(),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sends an absolute-form request on to its origin in origin form, with `Host` set to the target (so the
/// agent cannot name another virtual host than the one allowed) and hop-by-hop headers removed.
async fn forward(
    req: Request<Incoming>,
    origin: Tracked<TcpStream>,
    target: &(Host, u16),
    conn: &Connection,
) -> Result<Response<Body>, hyper::Error> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path.parse().expect("a path and query parsed from a URI parses");
    strip_hop_by_hop(&mut parts.headers);
    let host = if target.1 == 80 { target.0.to_string() } else { format!("{}:{}", target.0, target.1) };
    parts.headers.insert(header::HOST, HeaderValue::from_str(&host).expect("a normalised host is a header value"));
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(origin)).await?;
    let cancel = conn.cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = driver => {}
            _ = cancel.cancelled() => {}
        }
    });
    let response = sender.send_request(Request::from_parts(parts, body)).await?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Removes the headers that describe one hop (RFC 9110 §7.6.1), and those the `Connection` header names
/// (except the framing and `Host`, which the forwarding sets).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| ![header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::HOST].contains(n))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(n);
    }
}

fn failed(conn: &Connection, status: StatusCode, target: String, method: String, reason: String) -> Response<Body> {
    let response = text(status, &reason);
    conn.shared.report(ProxyEvent::Failed { target, method, reason });
    response
}

/// A one-line `text/plain` answer; the connection closes after it.
fn text(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("foreman proxy: {reason}\n"))).map_err(never).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(never).boxed()
}

fn never(e: Infallible) -> hyper::Error {
    match e {}
}

/// When a byte last moved on a connection, either way, on either side.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), last: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Returns once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let deadline = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A stream that records each transfer in an [`Activity`].
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
