//! Webhook ingress against a real `foreman serve` process on 127.0.0.1 with a real sled store in a temp dir.

mod support;

use std::time::Duration;

use support::{Foreman, delivery, sign, webhook_examples};

const SECRET: &str = "ingress-test-secret";

/// Bounds each test: the slowest (every example payload, three sends each) takes a few seconds.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn start(dir: &tempfile::TempDir) -> Foreman {
    Foreman::start(&dir.path().join("data"), &[("GITHUB_WEBHOOK_SECRET", SECRET)])
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f).await.expect("test timed out");
}

fn used(event: &str) -> bool {
    foreman::event::is_handled(event)
}

#[tokio::test]
async fn every_example_is_accepted_refused_when_tampered_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = start(&dir);
    let url = foreman.url("/api/github/webhooks");
    let client = reqwest::Client::new();
    bounded(async {
        for (i, (event, path)) in webhook_examples().into_iter().enumerate() {
            let body = std::fs::read(&path).unwrap();
            let id = format!("00000000-0000-4000-8000-{i:012}");
            let what = format!("{event} {}", path.display());

            let mut tampered = body.clone();
            let mid = tampered.len() / 2;
            tampered[mid] ^= 0x01;
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", &event)
                .header("x-github-delivery", &id)
                .header("x-hub-signature-256", sign(SECRET, &body))
                .body(tampered)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "tampered {what}");

            let first = delivery(&client, &url, SECRET, &event, &id, body.clone()).send().await.unwrap();
            let second = delivery(&client, &url, SECRET, &event, &id, body).send().await.unwrap();
            let record = client.get(foreman.url(&format!("/api/deliveries/{id}"))).send().await.unwrap();
            if event == "ping" {
                assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200), "{what}");
            } else if used(&event) {
                assert_eq!(first.status(), 202, "{what}");
                assert_eq!(second.status(), 200, "{what}");
                assert_eq!(second.text().await.unwrap(), r#"{"message":"duplicate"}"#);
                assert_eq!(record.status(), 200, "{what}");
                let record: serde_json::Value = record.json().await.unwrap();
                assert_eq!(record["event"], event.as_str());
                assert_eq!(record["id"], id.as_str());
            } else {
                assert_eq!((first.status().as_u16(), second.status().as_u16()), (204, 204), "{what}");
                assert_eq!(record.status(), 404, "unused events are not stored: {what}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn each_refusal_says_why_in_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = start(&dir);
    let url = foreman.url("/api/github/webhooks");
    let client = reqwest::Client::new();
    let body = br#"{"action":"opened"}"#.to_vec();
    bounded(async {
        let base = || delivery(&client, &url, SECRET, "issues", "d-1", body.clone());
        let status = |r: reqwest::Response| r.status().as_u16();

        // 400: headers missing or malformed.
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-delivery", "d")
            .header("x-hub-signature-256", sign(SECRET, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400, "no X-GitHub-Event");
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-hub-signature-256", sign(SECRET, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400, "no X-GitHub-Delivery");
        let r = delivery(&client, &url, SECRET, "issues", "not a guid!", body.clone()).send().await.unwrap();
        assert_eq!(status(r), 400, "malformed X-GitHub-Delivery");
        let r = delivery(&client, &url, SECRET, "Issues; DROP", "d-2", body.clone()).send().await.unwrap();
        assert_eq!(status(r), 400, "malformed X-GitHub-Event");
        let not_json = b"this is not json".to_vec();
        let r = delivery(&client, &url, SECRET, "issues", "d-3", not_json).send().await.unwrap();
        assert_eq!(status(r), 400, "body not JSON");

        // 401: signature missing or wrong.
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-4")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 401, "no signature");
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-4")
            .header("x-hub-signature-256", sign("another secret", &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 401, "wrong secret");
        // The operator is told at WARN, once for both: one line a minute at most, with a count.
        let mut seen = Vec::new();
        let told = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                seen.extend(foreman.logs().into_iter().filter(|l| l.contains("refused for their signature")));
                if !seen.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(told.is_ok(), "a refused signature is logged");
        assert_eq!(seen.len(), 1, "the second refusal, within the minute, is counted, not logged: {seen:?}");
        assert!(seen[0].contains("\"level\":\"WARN\"") && seen[0].contains("GITHUB_WEBHOOK_SECRET"), "{seen:?}");

        // 415: content type.
        let r = client
            .post(&url)
            .header("content-type", "text/plain")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-4")
            .header("x-hub-signature-256", sign(SECRET, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 415, "text/plain");

        // 413: declared over 25 MiB, refused before the body is read.
        let big = vec![b' '; foreman::ingress::MAX_BODY_BYTES + 1];
        // Oversized uploads use their own client: the server closes those connections after refusing.
        let oversize = reqwest::Client::new();
        let r = delivery(&oversize, &url, SECRET, "issues", "d-5", big).send().await;
        match r {
            Ok(r) => assert_eq!(status(r), 413, "over 25 MiB"),
            // The server may close the connection before the whole upload is sent.
            Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
        }
        // 413: a chunked body (no Content-Length) that grows past the limit is cut off while streaming.
        let chunks = (0..27).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024]));
        let r = oversize
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-6")
            .header("x-hub-signature-256", "sha256=00")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(status(r), 413, "chunked over 25 MiB");
        }

        // Nothing refused was stored.
        for id in ["d", "d-2", "d-3", "d-4", "d-5", "d-6"] {
            let r = client.get(foreman.url(&format!("/api/deliveries/{id}"))).send().await.unwrap();
            assert_eq!(status(r), 404, "{id} must not be stored");
        }

        // 202 then 200 for the accepted one; form-encoded payload= is accepted too.
        assert_eq!(status(base().send().await.unwrap()), 202);
        assert_eq!(status(base().send().await.unwrap()), 200);
        let form = format!("payload={}", urlencode(r#"{"action":"labeled","installation":{"id":7}}"#));
        let r = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d-form")
            .header("x-hub-signature-256", sign(SECRET, form.as_bytes()))
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 202, "form-encoded");
        let record: serde_json::Value =
            client.get(foreman.url("/api/deliveries/d-form")).send().await.unwrap().json().await.unwrap();
        assert_eq!((record["action"].as_str(), record["installation"].as_u64()), (Some("labeled"), Some(7)));
    })
    .await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn ping_operations_endpoints_and_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(
        &dir.path().join("data"),
        &[("GITHUB_WEBHOOK_SECRET", SECRET), ("FOREMAN_ADMIN_TOKEN", "admin-token")],
    );
    let client = reqwest::Client::new();
    bounded(async {
        let url = foreman.url("/api/github/webhooks");
        let r = delivery(&client, &url, SECRET, "ping", "p-1", br#"{"zen":"Design for failure."}"#.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r =
            delivery(&client, &url, SECRET, "issues", "i-1", br#"{"action":"opened"}"#.to_vec()).send().await.unwrap();
        assert_eq!(r.status(), 202);

        assert_eq!(client.get(foreman.url("/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(client.get(foreman.url("/readyz")).send().await.unwrap().status(), 200);
        let metrics = client.get(foreman.url("/metrics")).send().await.unwrap().text().await.unwrap();
        for name in [
            "foreman_deliveries_total",
            "foreman_ingest_seconds_bucket",
            "foreman_inbox_depth",
            "foreman_store_flush_seconds_bucket",
        ] {
            assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
        }
        assert!(metrics.contains(r#"foreman_deliveries_total{event="issues",outcome="stored"} 1"#), "{metrics}");

        let api = foreman.url("/api/deliveries/i-1");
        assert_eq!(client.get(&api).send().await.unwrap().status(), 401, "no token");
        assert_eq!(client.get(&api).bearer_auth("wrong").send().await.unwrap().status(), 401, "wrong token");
        let r = client.get(&api).bearer_auth("admin-token").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let record: serde_json::Value = r.json().await.unwrap();
        assert_eq!(record["event"], "issues");
        assert!(record["received_at"].is_string());
        // `{"action":"opened"}` has no issue: once the worker has seen it, it is a dead letter.
        assert!(["pending", "dead"].contains(&record["processing"]["state"].as_str().unwrap()), "{record}");
        let r = client.get(foreman.url("/api/deliveries/unknown")).bearer_auth("admin-token").send().await.unwrap();
        assert_eq!(r.status(), 404);
    })
    .await;
}

#[tokio::test]
async fn first_start_without_configuration_generates_a_secret_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let foreman = Foreman::start(&data, &[]);
    let secret_file = data.join("webhook-secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let client = reqwest::Client::new();
    bounded(async {
        let r = delivery(&client, &foreman.url("/api/github/webhooks"), &secret, "issues", "g-1", b"{}".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "deliveries signed with the generated secret are accepted");
    })
    .await;
    let logs = foreman.logs().join("\n");
    assert!(logs.contains("webhook-secret"), "the log names the file: {logs}");
    assert!(logs.contains("GITHUB_APP_ID"), "the log says which keys to set: {logs}");
    assert!(!logs.contains(secret.trim()), "the secret itself is never logged");
}

#[test]
fn a_bad_configuration_value_stops_the_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("serve")
        .env_clear()
        .env("FOREMAN_DATA_DIR", dir.path())
        .env("FOREMAN_LISTEN", "localhost-ish")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen") && err.contains("FOREMAN_LISTEN"), "{err}");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = start(&dir);
    let client = reqwest::Client::new();
    let url = foreman.url("/api/github/webhooks");
    bounded(async {
        for i in 0..20 {
            let r = delivery(&client, &url, SECRET, "issues", &format!("t-{i}"), b"{}".to_vec()).send().await.unwrap();
            assert_eq!(r.status(), 202);
        }
    })
    .await;
    let status = foreman.terminate(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM");
}

/// The pretty log format, written to a pipe or a file (not a terminal), carries no ANSI colour codes.
#[test]
fn pretty_logs_to_a_pipe_have_no_colour_codes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FOREMAN_LISTEN", "127.0.0.1:0")
        .env("FOREMAN_DATA_DIR", dir.path().join("data"))
        .env("FOREMAN_LOG_FORMAT", "pretty")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains("listening");
            let _ = tx.send(line);
            if done {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("listening")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "colour codes in: {lines:?}");
}
