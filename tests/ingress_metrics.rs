//! The ingress's metrics against a real `foreman serve` process on 127.0.0.1 with a real sled store: the inbox
//! depth is exact however deliveries and the inbox worker interleave, and every answer the server gives a
//! delivery is counted in `foreman_deliveries_total`, the 408 of a body too slow to arrive and the 413 of one
//! declared too large included.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use support::{Foreman, delivery};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "ingress-metrics-secret";

async fn metrics(client: &reqwest::Client, foreman: &Foreman) -> String {
    client.get(foreman.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The value of the metric line named exactly `series` (name with its labels), if present.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbox_depth_returns_to_zero_after_a_thousand_racing_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(&dir.path().join("data"), &[("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let url = foreman.url("/api/github/webhooks");
    let client = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        // `{"action":"opened"}` names no issue: the worker makes each a dead letter at once, so it drains
        // while the deliveries still arrive.
        let ids: Vec<String> = (0..1000).map(|i| format!("race-{i}")).collect();
        let statuses: Vec<u16> = futures_util::stream::iter(&ids)
            .map(|id| {
                let send = delivery(&client, &url, SECRET, "issues", id, br#"{"action":"opened"}"#.to_vec()).send();
                async move { send.await.unwrap().status().as_u16() }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 202), "every delivery stored");
        // Every delivery finished by the worker (the condition), then the gauge read once: it must be exact.
        for id in &ids {
            loop {
                let record: serde_json::Value = client
                    .get(foreman.url(&format!("/api/deliveries/{id}")))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if record["processing"]["state"] != "pending" {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        let m = metrics(&client, &foreman).await;
        assert_eq!(value(&m, "foreman_inbox_depth"), Some(0.0), "every delivery is processed:\n{m}");
        assert_eq!(value(&m, r#"foreman_deliveries_total{event="issues",outcome="stored"}"#), Some(1000.0), "{m}");
    })
    .await
    .expect("test timed out");
}

/// Sends `head` (a request's headers and any part of its body) on a raw connection and returns the status of
/// the answer, leaving the rest of the body unsent.
async fn raw_status(foreman: &Foreman, head: String) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(foreman.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed without an answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer).lines().next().unwrap().to_owned();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn head(content_length: usize, body_part: &str) -> String {
    format!(
        "POST /api/github/webhooks HTTP/1.1\r\nhost: foreman\r\ncontent-type: application/json\r\n\
         x-github-event: issues\r\nx-github-delivery: slow-or-large\r\ncontent-length: {content_length}\r\n\r\n{body_part}"
    )
}

#[tokio::test]
async fn a_timed_out_and_an_oversized_delivery_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(&dir.path().join("data"), &[("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let client = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        // Declared over 25 MiB: refused before a byte of the body is read.
        assert_eq!(raw_status(&foreman, head(26 * 1024 * 1024, "")).await, 413);
        // Half a body, then nothing: answered 408 when the request timeout (9 s) runs out.
        assert_eq!(raw_status(&foreman, head(100, r#"{"action":"#)).await, 408);
        let m = metrics(&client, &foreman).await;
        assert_eq!(value(&m, r#"foreman_deliveries_total{event="unverified",outcome="too_large"}"#), Some(1.0), "{m}");
        assert_eq!(value(&m, r#"foreman_deliveries_total{event="unverified",outcome="timeout"}"#), Some(1.0), "{m}");
    })
    .await
    .expect("test timed out");
}
