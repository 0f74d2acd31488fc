//! Durability: SIGKILL to the real process during concurrent load loses no delivery that got a 2xx, and
//! the inbox resumes on restart.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Foreman, delivery};

const SECRET: &str = "crash-test-secret";
/// Concurrent senders: enough to make the writer batch several deliveries per flush.
const SENDERS: usize = 16;
/// Deliveries acknowledged before the kill. The kill lands while the senders are still mid-request.
const ACKED_BEFORE_KILL: usize = 400;
/// Bounds the whole test, including the restart and the wait for the inbox to drain.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(&dir.path().join("data"), &[("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let url = foreman.url("/api/github/webhooks");
    let body =
        std::fs::read(support::vendor().join("github/webhooks/examples/api.github.com/issues/labeled.payload.json"))
            .unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let enough = Arc::new(tokio::sync::Notify::new());

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (url, body, acked, enough) = (url.clone(), body.clone(), acked.clone(), enough.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    let id = format!("{s:04}-{i:08}");
                    match delivery(&client, &url, SECRET, "issues", &id, body.clone()).send().await {
                        Ok(r) if r.status() == 202 => {
                            let mut acked = acked.lock().unwrap();
                            acked.insert(id);
                            if acked.len() >= ACKED_BEFORE_KILL {
                                enough.notify_one();
                            }
                        }
                        Ok(r) => panic!("unexpected {} for {id}", r.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();

    tokio::time::timeout(TEST_TIMEOUT, enough.notified()).await.expect("load reached the kill point");
    let foreman = tokio::task::spawn_blocking(move || foreman.kill9_and_restart()).await.unwrap();
    for s in senders {
        tokio::time::timeout(TEST_TIMEOUT, s).await.expect("senders stop once the server is gone").unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);
    let client = reqwest::Client::new();
    let check = async {
        for id in &acked {
            // Each acknowledged delivery is stored, and the restarted inbox worker processes it.
            loop {
                let r = client.get(foreman.url(&format!("/api/deliveries/{id}"))).send().await.unwrap();
                assert_eq!(r.status(), 200, "delivery {id} got a 202 before the kill but is not in the store");
                let record: serde_json::Value = r.json().await.unwrap();
                if record["processing"]["state"] != "pending" {
                    break;
                }
                // The inbox is draining; ask again once the worker has had a moment.
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::time::timeout(TEST_TIMEOUT, check).await.expect("the inbox drains after restart");
}
