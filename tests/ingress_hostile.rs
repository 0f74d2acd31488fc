//! The webhook endpoint under hostile load from clients without the secret, against a real `foreman serve`
//! process on 127.0.0.1: the unverified-body budget, the header-read and idle keep-alive timeouts, the
//! connection cap, and running out of file descriptors. Each waits on the condition it checks, with a bound.

mod support;

use std::time::Duration;

use support::{Foreman, delivery};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "hostile-test-secret";

/// Bounds each test. The slowest waits for the "flood over" line, which comes 10 s after the last
/// connection closed to make room (`FLOOD_QUIET`).
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a condition the server should reach quickly (a connection closed after a 1-second timeout, a
/// budget released) may take on a loaded 2-core machine before the test fails.
const WITHIN: Duration = Duration::from_secs(30);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f).await.expect("test timed out");
}

/// Waits until the server closes `stream` (EOF or reset) while `trickle` bytes are sent, one every
/// `every`, if given. Panics after [`WITHIN`].
async fn closed_by_server(stream: &mut TcpStream, trickle: Option<(&[u8], Duration)>, what: &str) {
    let wait = async {
        let mut buf = [0u8; 1024];
        let mut ticks = trickle.map(|(_, every)| tokio::time::interval(every));
        let mut sent = 0usize;
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a response (e.g. to a complete request sent before); keep reading
                },
                () = tick => {
                    let (bytes, _) = trickle.unwrap();
                    if stream.write_all(&bytes[sent % bytes.len()..][..1]).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        }
    };
    tokio::time::timeout(WITHIN, wait).await.unwrap_or_else(|_| panic!("{what}: still open after {WITHIN:?}"));
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn a_full_unverified_body_budget_answers_503_with_retry_after_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest budget allowed: one 25 MiB body.
    let foreman = Foreman::start(
        &dir.path().join("data"),
        &[("GITHUB_WEBHOOK_SECRET", SECRET), ("FOREMAN_MAX_UNVERIFIED_BODY_MB", "25")],
    );
    let url = foreman.url("/api/github/webhooks");
    let client = reqwest::Client::new();
    bounded(async {
        // One client declares a 25 MiB body, sends a little of it, and holds the request open.
        let mut holder = TcpStream::connect(foreman.addr).await.unwrap();
        let head = format!(
            "POST /api/github/webhooks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             x-github-event: issues\r\nx-github-delivery: held-1\r\nx-hub-signature-256: sha256=00\r\n\
             content-length: {}\r\n\r\n{{\"action\":",
            25 * 1024 * 1024
        );
        holder.write_all(head.as_bytes()).await.unwrap();

        // Until the server has taken the held body's bytes, a small request goes through (401: unsigned);
        // then it is refused 503 with Retry-After, before its body is read.
        let unsigned = || {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "issues")
                .header("x-github-delivery", "small-1")
                .header("x-hub-signature-256", "sha256=00")
                .body(vec![b' '; 1000])
                .send()
        };
        let refused = tokio::time::timeout(WITHIN, async {
            loop {
                let r = unsigned().await.unwrap();
                if r.status() == 503 {
                    return r;
                }
                assert_eq!(r.status(), 401, "an unsigned body under the budget is read and refused 401");
            }
        })
        .await
        .expect("a second body is refused 503 while one 25 MiB body fills the budget");
        assert_eq!(refused.headers()["retry-after"], "10");
        let body = refused.text().await.unwrap();
        assert!(body.contains("redeliver"), "says what happens next: {body}");

        // A chunked body (no Content-Length) is counted as it streams: its first bytes do not fit.
        let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "chunked-1")
            .header("x-hub-signature-256", "sha256=00")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 503, "chunked body over the budget");
        }

        // A new connection: the refused request's may be closed by the server under the pooled client.
        let metrics = reqwest::get(foreman.url("/metrics")).await.unwrap().text().await.unwrap();
        let overloaded = metric(&metrics, r#"foreman_deliveries_total{event="unverified",outcome="overloaded"}"#);
        assert!(overloaded >= 1.0, "refusals are counted:\n{metrics}");

        // When the held request goes away its bytes are given back: a signed delivery is stored again.
        drop(holder);
        tokio::time::timeout(WITHIN, async {
            loop {
                let r = delivery(&client, &url, SECRET, "issues", "after-1", b"{}".to_vec()).send().await.unwrap();
                if r.status() == 202 {
                    return;
                }
                assert_eq!(r.status(), 503);
            }
        })
        .await
        .expect("the budget is released when the held request ends");
    })
    .await;
}

#[tokio::test]
async fn slow_headers_silent_connections_and_idle_keep_alive_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(
        &dir.path().join("data"),
        &[
            ("GITHUB_WEBHOOK_SECRET", SECRET),
            ("FOREMAN_HEADER_READ_TIMEOUT_SECS", "1"),
            ("FOREMAN_IDLE_TIMEOUT_SECS", "1"),
        ],
    );
    bounded(async {
        // Headers one byte every 200 ms: each byte arrives well within any read timeout, the whole never.
        let mut slow = TcpStream::connect(foreman.addr).await.unwrap();
        slow.write_all(b"POST /api/github/webhooks HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let trickle: &[u8] =
            b"x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        closed_by_server(&mut slow, Some((trickle, Duration::from_millis(200))), "slow-header connection").await;

        // A connection that sends nothing at all.
        let mut silent = TcpStream::connect(foreman.addr).await.unwrap();
        closed_by_server(&mut silent, None, "silent connection").await;

        // A kept-alive connection after a complete request and its answer.
        let mut kept = TcpStream::connect(foreman.addr).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 256];
        let n = kept.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        closed_by_server(&mut kept, None, "idle keep-alive connection").await;

        let metrics = reqwest::get(foreman.url("/metrics")).await.unwrap().text().await.unwrap();
        let closed =
            |reason: &str| metric(&metrics, &format!(r#"foreman_connections_closed_total{{reason="{reason}"}}"#));
        assert!(closed("header_timeout") >= 2.0, "{metrics}");
        assert!(closed("idle_timeout") >= 1.0, "{metrics}");
    })
    .await;
}

/// Opens `n` connections that send nothing.
async fn idle_connections(foreman: &Foreman, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(foreman.addr).await.unwrap());
    }
    idle
}

/// Waits until at least `n` of `conns` have been closed by the server; panics after [`WITHIN`].
async fn at_least_closed(conns: &mut [TcpStream], n: usize) {
    let wait = async {
        let mut closed = vec![false; conns.len()];
        loop {
            let pending: Vec<_> = conns
                .iter_mut()
                .zip(closed.iter())
                .enumerate()
                .filter(|(_, (_, c))| !**c)
                .map(|(i, (s, _))| {
                    Box::pin(async move {
                        let mut b = [0u8; 1];
                        let _ = s.read(&mut b).await;
                        i
                    })
                })
                .collect();
            if closed.iter().filter(|c| **c).count() >= n {
                return;
            }
            let (i, _, _) = futures_util::future::select_all(pending).await;
            closed[i] = true;
        }
    };
    tokio::time::timeout(WITHIN, wait).await.unwrap_or_else(|_| panic!("fewer than {n} connections closed"));
}

fn count(logs: &[String], message: &str) -> usize {
    logs.iter().filter(|l| l.contains(message)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room_for_a_delivery_and_the_flood_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(
        &dir.path().join("data"),
        &[
            ("GITHUB_WEBHOOK_SECRET", SECRET),
            ("FOREMAN_MAX_CONNECTIONS", "8"),
            // Long, so that only the cap closes connections here.
            ("FOREMAN_HEADER_READ_TIMEOUT_SECS", "600"),
        ],
    );
    bounded(async {
        let mut idle = idle_connections(&foreman, 20).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let url = foreman.url("/api/github/webhooks");
        let r = delivery(&client, &url, SECRET, "issues", "cap-1", b"{}".to_vec())
            .send()
            .await
            .expect("a delivery is answered within 10 s while the cap is full of idle connections");
        assert_eq!(r.status(), 202);
        // 21 connections, 8 slots: at least 13 of the idle ones were closed to make room.
        at_least_closed(&mut idle, 13).await;

        let over = tokio::time::timeout(WITHIN, async {
            let mut seen = Vec::new();
            loop {
                let line = tokio::task::block_in_place(|| foreman.stderr.recv_timeout(WITHIN)).unwrap();
                let done = line.contains("connection flood over");
                seen.push(line);
                if done {
                    return seen;
                }
            }
        })
        .await
        .expect("the end of the flood is logged");
        let logs: Vec<String> = foreman.logs().into_iter().chain(over).collect();
        assert_eq!(count(&logs, "connection flood: at the connection cap"), 1, "one warning per flood");
        assert_eq!(count(&logs, "connection flood over"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_of_file_descriptors_the_server_closes_idle_connections_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    // 64 descriptors in all, far fewer than the connections configured: Foreman serves fewer, and what
    // the store, the runtime and the listener hold leaves little room, so accept may fail with EMFILE too.
    let mut foreman = Foreman::start_adjusted(
        &dir.path().join("data"),
        &[("GITHUB_WEBHOOK_SECRET", SECRET), ("FOREMAN_MAX_CONNECTIONS", "1000")],
        |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    let limit = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    bounded(async {
        let mut idle = idle_connections(&foreman, 100).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let url = foreman.url("/api/github/webhooks");
        let r = delivery(&client, &url, SECRET, "issues", "fds-1", b"{}".to_vec())
            .send()
            .await
            .expect("a delivery is answered within 10 s while file descriptors run out");
        assert_eq!(r.status(), 202);
        at_least_closed(&mut idle, 1).await;
        assert!(foreman.child.try_wait().unwrap().is_none(), "foreman is still running");
        let logs = foreman.logs();
        assert_eq!(count(&logs, "connection flood:"), 1, "one warning per flood");
        assert_eq!(count(&logs, "the open-file limit is below server.max_connections"), 1, "said at start");
    })
    .await;
}
