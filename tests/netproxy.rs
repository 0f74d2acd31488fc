//! The agent's network proxy and the sandbox bridge, over real sockets: a Unix-socket proxy
//! (`foreman::executor::local::netproxy::NetProxy`), TCP origins on 127.0.0.1, the `foreman sandbox-bridge` binary
//! with curl, and once inside a real `bwrap --unshare-net`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use foreman::executor::local::netproxy::{Allowlist, NetProxy, ProxyEvent, ProxyLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

struct Proxy {
    proxy: Option<NetProxy>,
    events: mpsc::Receiver<ProxyEvent>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(allowed: &[String], limits: ProxyLimits) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proxy.sock");
        let allowlist = Allowlist::parse(allowed, "agent.allowed_hosts").unwrap();
        let (tx, events) = mpsc::channel(64);
        let proxy = NetProxy::bind(&socket, allowlist, limits, tx, &CancellationToken::new()).unwrap();
        Proxy { proxy: Some(proxy), events, socket, _dir: dir }
    }

    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).await.unwrap()
    }

    async fn event(&mut self) -> ProxyEvent {
        timeout(WAIT, self.events.recv()).await.expect("an event within the bound").expect("the channel is open")
    }
}

/// A TCP echo server on 127.0.0.1; returns its port and a counter of accepted connections.
async fn echo_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, accepted)
}

/// An HTTP origin on 127.0.0.1 (axum): `GET /hello` answers `hello via <Host header>`.
async fn http_origin() -> u16 {
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(|headers: http::HeaderMap| async move {
            format!("hello via {}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("-"))
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Reads until the end of a response head; returns it.
async fn read_head(s: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = timeout(WAIT, s.read(&mut byte)).await.expect("a response within the bound").unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads until the peer closes; returns everything read.
async fn read_to_end(s: &mut UnixStream) -> String {
    let mut all = Vec::new();
    timeout(WAIT, s.read_to_end(&mut all)).await.expect("closed within the bound").unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads until the peer closes or resets the connection (Linux resets a Unix stream whose peer closed with
/// bytes unread, which may take the response with it); returns what arrived.
async fn read_until_cut(s: &mut UnixStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(WAIT, s.read(&mut buf)).await.expect("cut within the bound") {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn allowed(entries: &[String]) -> Vec<String> {
    entries.to_vec()
}

#[tokio::test]
async fn connect_to_an_allowed_target_tunnels_bytes_both_ways() {
    let (port, _) = echo_server().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{port}")]), ProxyLimits::default());
    let mut s = p.connect().await;
    s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for msg in [&b"ping"[..], &[0u8, 255, 13, 10, 13, 10][..], &vec![7u8; 200_000][..]] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        timeout(WAIT, s.read_exact(&mut back)).await.unwrap().unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(p.event().await, ProxyEvent::Allowed { target: format!("127.0.0.1:{port}"), method: "CONNECT".into() });
}

#[tokio::test]
async fn connect_to_a_target_not_listed_is_refused_with_403_and_reported() {
    let (listed, _) = echo_server().await;
    let (other, other_accepted) = echo_server().await;
    let mut p =
        Proxy::start(&allowed(&[format!("127.0.0.1:{listed}"), "*.example.com".into()]), ProxyLimits::default());
    for (target, reported) in [
        (format!("127.0.0.1:{other}"), format!("127.0.0.1:{other}")),
        (format!("localhost:{listed}"), format!("localhost:{listed}")),
        ("Example.COM:443".into(), "example.com:443".into()),
        ("api.example.com:22".into(), "api.example.com:22".into()),
        (format!("[::1]:{listed}"), format!("[::1]:{listed}")),
    ] {
        let mut s = p.connect().await;
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes()).await.unwrap();
        let response = read_to_end(&mut s).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{target}: {response}");
        let reason = format!("{reported} is not in agent.allowed_hosts");
        assert!(response.ends_with(&format!("\r\n\r\nforeman proxy: {reason}\n")), "{target}: {response}");
        assert_eq!(
            p.event().await,
            ProxyEvent::Refused { target: Some(reported), method: Some("CONNECT".into()), reason }
        );
    }
    assert_eq!(other_accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "a refused target is never dialled");
}

#[tokio::test]
async fn an_absolute_form_get_is_forwarded_to_an_allowed_origin_and_refused_for_another() {
    let origin = http_origin().await;
    let other = http_origin().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{origin}")]), ProxyLimits::default());

    let mut s = p.connect().await;
    // The Host header names another virtual host: the origin sees the target's instead.
    s.write_all(
        format!(
            "GET http://127.0.0.1:{origin}/hello HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: Basic eA==\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let response = read_to_end(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(&format!("hello via 127.0.0.1:{origin}")), "{response}");
    assert_eq!(p.event().await, ProxyEvent::Allowed { target: format!("127.0.0.1:{origin}"), method: "GET".into() });

    let mut s = p.connect().await;
    s.write_all(format!("GET http://127.0.0.1:{other}/hello HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let response = read_to_end(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(!response.contains("hello"), "{response}");
    assert!(
        matches!(p.event().await, ProxyEvent::Refused { target: Some(t), .. } if t == format!("127.0.0.1:{other}"))
    );
}

#[tokio::test]
async fn each_request_on_a_kept_alive_connection_is_decided_on_its_own() {
    let origin = http_origin().await;
    let other = http_origin().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{origin}")]), ProxyLimits::default());
    let mut s = p.connect().await;
    s.write_all(format!("GET http://127.0.0.1:{origin}/hello HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
        .expect("a content-length");
    let mut body = vec![0u8; len];
    timeout(WAIT, s.read_exact(&mut body)).await.unwrap().unwrap();
    s.write_all(format!("GET http://127.0.0.1:{other}/hello HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let response = read_to_end(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(matches!(p.event().await, ProxyEvent::Allowed { .. }));
    assert!(matches!(p.event().await, ProxyEvent::Refused { .. }));
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_get_400() {
    let mut p = Proxy::start(&allowed(&["api.anthropic.com".into()]), ProxyLimits::default());
    for (request, says) in [
        ("GET /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n", "not a proxy request"),
        ("GET https://api.anthropic.com/ HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n", "needs CONNECT"),
        ("CONNECT api.anthropic.com HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n", "port is missing"),
        ("GET http://u:p@api.anthropic.com/ HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n", "credentials"),
    ] {
        let mut s = p.connect().await;
        s.write_all(request.as_bytes()).await.unwrap();
        let response = read_to_end(&mut s).await;
        assert!(response.starts_with("HTTP/1.1 400") && response.contains(says), "{request}: {response}");
        assert!(matches!(p.event().await, ProxyEvent::Refused { target: None, .. }));
    }
}

#[tokio::test]
async fn oversized_headers_are_answered_431_and_cut() {
    let (port, accepted) = echo_server().await;
    let limits = ProxyLimits { max_header_bytes: 8192, ..ProxyLimits::default() };
    let p = Proxy::start(&allowed(&[format!("127.0.0.1:{port}")]), limits);
    let mut s = p.connect().await;
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    // The proxy may close before it has read everything: a failed write is part of being cut.
    let _ = s.write_all(request.as_bytes()).await;
    let response = read_until_cut(&mut s).await;
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 431"), "{response}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A header that never ends is cut the same way once it passes the limit.
    let mut s = p.connect().await;
    let _ = s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nX-Pad: ").as_bytes()).await;
    let endless = vec![b'a'; 64 * 1024];
    let _ = s.write_all(&endless).await;
    let response = read_until_cut(&mut s).await;
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 431"), "{response}");

    // Within the limit, the same request is served: the cut above is the limit's doing.
    let mut s = p.connect().await;
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(4_000));
    s.write_all(request.as_bytes()).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_slow_header_is_cut_at_the_header_read_timeout() {
    let limits = ProxyLimits { header_read_timeout: Duration::from_millis(500), ..ProxyLimits::default() };
    let p = Proxy::start(&allowed(&["api.anthropic.com".into()]), limits);
    let mut s = p.connect().await;
    let started = Instant::now();
    s.write_all(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\n").await.unwrap();
    // One more header byte well inside the timeout does not reset it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"X").await.unwrap();
    let response = read_to_end(&mut s).await;
    let took = started.elapsed();
    assert!(!response.contains("200"), "{response}");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(5), "closed after {took:?}");

    // An idle connection that never sends a byte is closed the same way.
    let mut s = p.connect().await;
    let started = Instant::now();
    let response = read_to_end(&mut s).await;
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_not() {
    let (port, _) = echo_server().await;
    let limits = ProxyLimits { idle_timeout: Duration::from_millis(600), ..ProxyLimits::default() };
    let p = Proxy::start(&allowed(&[format!("127.0.0.1:{port}")]), limits);
    let mut s = p.connect().await;
    s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    // Busy for twice the idle limit: a byte every 100 ms keeps the tunnel open.
    let busy_until = Instant::now() + Duration::from_millis(1200);
    loop {
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        timeout(WAIT, s.read_exact(&mut b)).await.unwrap().unwrap();
        if Instant::now() >= busy_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = Instant::now();
    assert_eq!(read_to_end(&mut s).await, "");
    let took = quiet.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_are_reported() {
    let (port, _) = echo_server().await;
    let limits = ProxyLimits { max_connections: 2, ..ProxyLimits::default() };
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{port}")]), limits);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = p.connect().await;
        s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
        assert!(matches!(p.event().await, ProxyEvent::Allowed { .. }));
        held.push(s);
    }
    let mut third = p.connect().await;
    let response = read_to_end(&mut third).await;
    assert!(response.starts_with("HTTP/1.1 503") && response.contains("more than 2 connections"), "{response}");
    assert!(matches!(p.event().await, ProxyEvent::Refused { target: None, method: None, .. }));
    // A closed tunnel frees its slot.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = p.connect().await;
        s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed: {head}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutting_down_closes_the_listener_and_every_tunnel() {
    let (port, _) = echo_server().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{port}")]), ProxyLimits::default());
    let mut tunnel = p.connect().await;
    tunnel.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_head(&mut tunnel).await.starts_with("HTTP/1.1 200"));
    let mut idle = p.connect().await;
    timeout(WAIT, p.proxy.take().unwrap().shutdown()).await.expect("shut down within the bound");
    assert_eq!(read_until_cut(&mut tunnel).await, "");
    // Not accepted yet, it may have been in the listener's backlog, which closing resets.
    assert_eq!(read_until_cut(&mut idle).await, "");
    assert!(!p.socket.exists(), "the socket file is removed");
    assert!(UnixStream::connect(&p.socket).await.is_err());
}

#[tokio::test]
async fn dropping_the_proxy_or_cancelling_its_token_closes_tunnels() {
    let (port, _) = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(8);
    let list = Allowlist::parse(&[format!("127.0.0.1:{port}")], "k").unwrap();
    let proxy = NetProxy::bind(&socket, list, ProxyLimits::default(), tx, &cancel).unwrap();
    let mut tunnel = UnixStream::connect(&socket).await.unwrap();
    tunnel.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_head(&mut tunnel).await.starts_with("HTTP/1.1 200"));
    cancel.cancel();
    assert_eq!(read_to_end(&mut tunnel).await, "");
    drop(proxy);
    assert!(!socket.exists());
}

// The bridge: the `foreman sandbox-bridge` binary, with curl as the agent.

/// A loopback port nothing listens on right now (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn curl_available() -> bool {
    std::process::Command::new("curl").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

async fn run_bridge(mut cmd: tokio::process::Command) -> (i32, String, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = timeout(Duration::from_secs(30), cmd.output()).await.expect("the bridge ends within the bound").unwrap();
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bridge(listen: &str, socket: &Path, script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.args(["sandbox-bridge", "--listen", listen, "--socket"]).arg(socket).args(["--", "sh", "-c", script]);
    cmd
}

#[tokio::test]
async fn the_bridge_relays_the_programs_connections_to_the_proxy_and_passes_on_its_exit_status() {
    if !curl_available() {
        panic!("curl is needed for this test");
    }
    let origin = http_origin().await;
    let other = http_origin().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{origin}")]), ProxyLimits::default());
    let port = free_port();
    let proxy = format!("http://127.0.0.1:{port}");
    let script = format!(
        "curl -sS -x {proxy} http://127.0.0.1:{origin}/hello; echo; \
         curl -sS -p -x {proxy} http://127.0.0.1:{origin}/hello; echo; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' -x {proxy} http://127.0.0.1:{other}/hello; \
         curl -s -p -x {proxy} http://127.0.0.1:{other}/hello; echo \"connect=$?\"; \
         exit 7"
    );
    let (code, stdout, stderr) = run_bridge(bridge(&format!("127.0.0.1:{port}"), &p.socket, &script)).await;
    assert_eq!(code, 7, "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("hello via 127.0.0.1:{origin}").as_str(),
            format!("hello via 127.0.0.1:{origin}").as_str(),
            "403",
            "connect=56"
        ],
        "stderr: {stderr}"
    );
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(p.event().await);
    }
    let refused = events.iter().filter(|e| matches!(e, ProxyEvent::Refused { .. })).count();
    assert_eq!(refused, 2, "{events:?}");
}

#[tokio::test]
async fn the_bridge_passes_on_a_signal_death_and_refuses_a_missing_program_or_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let port = free_port();
    let (code, _, _) = run_bridge(bridge(&format!("127.0.0.1:{port}"), &socket, "kill -TERM $$")).await;
    assert_eq!(code, 128 + 15);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.args(["sandbox-bridge", "--listen", &format!("127.0.0.1:{}", free_port()), "--socket"])
        .arg(&socket)
        .args(["--", "/nonexistent/agent"]);
    let (code, _, stderr) = run_bridge(cmd).await;
    assert_eq!(code, 127, "{stderr}");
    assert!(stderr.contains("cannot run /nonexistent/agent"), "{stderr}");
    let (code, _, stderr) = run_bridge(bridge("0.0.0.0:0", &socket, "true")).await;
    assert_eq!(code, 125);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    // The proxy's socket missing: the agent gets a 502 from the bridge, not a hang.
    if curl_available() {
        let script = format!("curl -s -o /dev/null -w '%{{http_code}}' -x http://127.0.0.1:{port} http://example.com/");
        let (code, stdout, _) = run_bridge(bridge(&format!("127.0.0.1:{port}"), &socket, &script)).await;
        assert_eq!((code, stdout.as_str()), (0, "502"));
    }
}

#[tokio::test]
async fn the_bridge_forwards_sigterm_to_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("got-term");
    let script =
        format!("trap 'echo term > {}; exit 3' TERM; echo ready; while :; do sleep 0.05; done", marker.display());
    let mut cmd = bridge(&format!("127.0.0.1:{}", free_port()), &dir.path().join("s.sock"), &script);
    cmd.stdout(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    timeout(WAIT, out.read_exact(&mut ready)).await.unwrap().unwrap();
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "term\n");
}

/// The whole path in a real sandbox: `bwrap --unshare-net` leaves the program only loopback; the bridge
/// carries its proxy connections out through the bind-mounted socket, where the proxy lets the listed
/// loopback origin through and refuses another; a direct connection to the origin does not get out.
#[tokio::test]
async fn inside_bwrap_with_its_own_network_only_the_listed_origin_is_reached() {
    if which("bwrap").is_none() || !curl_available() {
        panic!("bwrap and curl are needed for this test");
    }
    let origin = http_origin().await;
    let other = http_origin().await;
    let mut p = Proxy::start(&allowed(&[format!("127.0.0.1:{origin}")]), ProxyLimits::default());
    let socket_dir = p.socket.parent().unwrap().to_owned();
    let proxy = "http://127.0.0.1:3128";
    let script = format!(
        "curl -sS http://127.0.0.1:{origin}/hello >/dev/null 2>&1; echo \"direct=$?\"; \
         HTTPS_PROXY={proxy} http_proxy={proxy} curl -sS -p http://127.0.0.1:{origin}/hello; echo; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' -x {proxy} http://127.0.0.1:{other}/hello"
    );
    let mut cmd = tokio::process::Command::new("bwrap");
    cmd.args(["--unshare-net", "--unshare-user", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/"])
        .args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run", "--bind"])
        .arg(&socket_dir)
        .args(["/run/foreman", "--", env!("CARGO_BIN_EXE_foreman"), "sandbox-bridge", "--listen", "127.0.0.1:3128"])
        .args(["--socket", "/run/foreman/proxy.sock", "--", "sh", "-c", &script]);
    let (code, stdout, stderr) = run_bridge(cmd).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["direct=7", format!("hello via 127.0.0.1:{origin}").as_str(), "403"], "stderr: {stderr}");
    assert_eq!(
        p.event().await,
        ProxyEvent::Allowed { target: format!("127.0.0.1:{origin}"), method: "CONNECT".into() }
    );
    assert!(
        matches!(p.event().await, ProxyEvent::Refused { target: Some(t), .. } if t == format!("127.0.0.1:{other}"))
    );
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

#[tokio::test]
async fn the_bridge_does_not_load_the_repositorys_env_file_into_the_programs_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "FROM_DOT_ENV=planted\n").unwrap();
    let mut cmd = bridge(
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("s.sock"),
        "printf '%s' \"${FROM_DOT_ENV-unset}\"",
    );
    cmd.current_dir(dir.path()).env_remove("FROM_DOT_ENV");
    let (code, stdout, stderr) = run_bridge(cmd).await;
    assert_eq!((code, stdout.as_str()), (0, "unset"), "{stderr}");
}

#[tokio::test]
async fn a_listed_name_is_resolved_by_the_proxy_and_an_unreachable_target_gets_502() {
    let (port, accepted) = echo_server().await;
    let closed = free_port();
    let mut p =
        Proxy::start(&allowed(&[format!("localhost:{port}"), format!("127.0.0.1:{closed}")]), ProxyLimits::default());
    // `localhost` may resolve to ::1 first; the proxy tries each address until one connects.
    let mut s = p.connect().await;
    s.write_all(format!("CONNECT LocalHost:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"via a name").await.unwrap();
    let mut back = [0u8; 10];
    timeout(WAIT, s.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"via a name");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(p.event().await, ProxyEvent::Allowed { target: format!("localhost:{port}"), method: "CONNECT".into() });

    let mut s = p.connect().await;
    s.write_all(format!("CONNECT 127.0.0.1:{closed} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
    let response = read_to_end(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 502") && response.contains("cannot connect to 127.0.0.1:"), "{response}");
    assert!(matches!(p.event().await, ProxyEvent::Failed { target, .. } if target == format!("127.0.0.1:{closed}")));
}
