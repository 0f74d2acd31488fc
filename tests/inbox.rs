//! The inbox worker in the real process: each stored delivery is decoded and decided after the 2xx, and the
//! decision is kept with it; a payload that does not decode becomes a dead letter, counted in /metrics.

mod support;

use std::time::Duration;

use support::{Foreman, delivery};

const SECRET: &str = "inbox-test-secret";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks for the delivery until the worker has finished with it.
async fn processed(client: &reqwest::Client, foreman: &Foreman, id: &str) -> serde_json::Value {
    loop {
        let record: serde_json::Value =
            client.get(foreman.url(&format!("/api/deliveries/{id}"))).send().await.unwrap().json().await.unwrap();
        if record["processing"]["state"] != "pending" {
            return record["processing"].clone();
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn deliveries_are_decided_after_the_answer_and_undecodable_ones_are_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(&dir.path().join("data"), &[("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let url = foreman.url("/api/github/webhooks");
    let client = reqwest::Client::new();
    let example = support::vendor().join("github/webhooks/examples/api.github.com/issues/labeled.payload.json");
    let mut payload: serde_json::Value = serde_json::from_slice(&std::fs::read(example).unwrap()).unwrap();
    payload["label"]["name"] = "foreman".into();
    payload["sender"]["type"] = "User".into();
    let body = serde_json::to_vec(&payload).unwrap();

    tokio::time::timeout(TEST_TIMEOUT, async {
        let r = delivery(&client, &url, SECRET, "issues", "labeled-foreman", body).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let state = processed(&client, &foreman, "labeled-foreman").await;
        assert_eq!(state["state"], "processed", "{state}");
        let summary = state["decisions"].to_string();
        assert!(summary.contains(r#""decision":"enqueue""#) && summary.contains(r#""trigger":"label""#), "{summary}");
        assert!(summary.contains(r#""result":"queued""#), "{summary}");

        // The job is in the store, visible through the admin API, with its audit trail.
        let job: serde_json::Value =
            client.get(foreman.url("/api/jobs/Codertocat/Hello-World/1")).send().await.unwrap().json().await.unwrap();
        assert_eq!(job["state"], "queued", "{job}");
        let status: serde_json::Value =
            client.get(foreman.url("/api/status")).send().await.unwrap().json().await.unwrap();
        assert!(status.to_string().contains("Hello-World"), "{status}");

        // The same labelling delivered again under a new id (GitHub's redelivery keeps the id, so this is a
        // second, identical event): the decision sees the queued job and leaves it alone.
        let r = delivery(&client, &url, SECRET, "issues", "labeled-again", serde_json::to_vec(&payload).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let state = processed(&client, &foreman, "labeled-again").await;
        assert!(state["decisions"][0]["reason"].as_str().unwrap().contains("already has a queued job"), "{state}");

        // Removing the label cancels the queued job.
        let mut unlabeled = payload.clone();
        unlabeled["action"] = "unlabeled".into();
        let r = delivery(&client, &url, SECRET, "issues", "unlabeled", serde_json::to_vec(&unlabeled).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let state = processed(&client, &foreman, "unlabeled").await;
        assert!(state["decisions"].to_string().contains(r#""result":"cancelled""#), "{state}");
        let job: serde_json::Value =
            client.get(foreman.url("/api/jobs/Codertocat/Hello-World/1")).send().await.unwrap().json().await.unwrap();
        assert_eq!(job["state"], "cancelled", "{job}");

        // An issues.labeled delivery without the issue: valid JSON, signed, stored (202), then dead-lettered.
        let r = delivery(&client, &url, SECRET, "issues", "broken", br#"{"action":"labeled"}"#.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let state = processed(&client, &foreman, "broken").await;
        assert_eq!(state["state"], "dead", "{state}");
        assert!(state["error"].as_str().unwrap().contains("issues.labeled"), "{state}");
        let metrics = client.get(foreman.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"foreman_dead_letters_total{event="issues"} 1"#), "{metrics}");
    })
    .await
    .expect("test timed out");
}
