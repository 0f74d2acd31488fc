//! Injected faults: server errors, 429, secondary and GraphQL rate limits, latency, and the
//! primary rate limit exhausted until its reset.

use std::time::{Duration, Instant};

use crate::common::{Sim, TEST_TIMEOUT, start};
use github_sim::Faults;
use reqwest::Method;
use serde_json::{Value, json};

async fn set(s: &Sim, body: Value) {
    let r = s.http.post(s.url("/_sim/faults")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn graphql(s: &Sim, t: &str) -> reqwest::Response {
    s.http
        .post(s.url("/graphql"))
        .header("authorization", format!("bearer {t}"))
        .json(&json!({"query": "query Limit { rateLimit { remaining } }"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_fault_kind() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let t = s.token("acme").await;
        let path = "/repos/acme/widgets";

        set(&s, json!({"error_rate": 1.0, "kinds": ["500"]})).await;
        let r = s.call(Method::GET, &t, path, None).await;
        assert_eq!(r.status(), 500);
        assert!(r.json::<Value>().await.unwrap()["message"].is_string());

        set(&s, json!({"error_rate": 1.0, "kinds": ["502"]})).await;
        assert_eq!(s.call(Method::GET, &t, path, None).await.status(), 502);

        set(&s, json!({"error_rate": 1.0, "kinds": ["429"]})).await;
        let r = s.call(Method::GET, &t, path, None).await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().get("retry-after").is_some());

        set(&s, json!({"error_rate": 1.0, "kinds": ["secondary"]})).await;
        let r = s.call(Method::GET, &t, path, None).await;
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("retry-after").is_some());
        assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("secondary rate limit"));

        set(&s, json!({"error_rate": 1.0, "kinds": ["graphql_rate_limit"]})).await;
        assert_eq!(s.call(Method::GET, &t, path, None).await.status(), 200, "REST is unaffected");
        let r = graphql(&s, &t).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["type"], "RATE_LIMITED");

        set(&s, json!({"error_rate": 1.0, "kinds": ["latency"], "latency_ms": 300})).await;
        let started = Instant::now();
        assert_eq!(s.call(Method::GET, &t, path, None).await.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        set(&s, json!({"error_rate": 1.0, "kinds": ["401"]})).await;
        let r = s.call(Method::GET, &t, path, None).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Bad credentials");
        let fresh = s.token("acme").await;
        assert!(fresh.starts_with("ghs_"), "app JWT calls are unaffected, so tokens can still be minted");
        assert_eq!(s.call(Method::GET, &fresh, path, None).await.status(), 401, "and they are refused too");

        set(&s, json!({"error_rate": 0})).await;
        assert_eq!(s.call(Method::GET, &t, path, None).await.status(), 200);
        let v: Value = graphql(&s, &t).await.json().await.unwrap();
        assert!(v["data"]["rateLimit"]["remaining"].as_u64().unwrap() > 0, "{v}");

        let r = s
            .http
            .post(s.url("/_sim/faults"))
            .json(&json!({"error_rate": 1, "kinds": ["teapot"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // Faults are counted in the request log.
        let state = s.sim.state();
        assert!(state["requests"].as_array().unwrap().iter().any(|r| r["status"] == 429));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn primary_rate_limit_exhausted_until_reset() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let t = s.token("acme").await;
        s.sim.set_faults(Faults { exhaust_primary_for_secs: Some(1), ..Faults::default() });
        let r = s.call(Method::GET, &t, "/repos/acme/widgets", None).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        let reset: i64 = r.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset >= time::OffsetDateTime::now_utc().unix_timestamp());
        let msg = r.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_string();
        assert!(msg.starts_with("API rate limit exceeded for installation ID"), "{msg}");
        // After the reset the bucket is full again. Poll the condition (bounded by the test timeout).
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            let r = s.call(Method::GET, &t, "/repos/acme/widgets", None).await;
            if r.status() == 200 {
                assert_eq!(r.headers()["x-ratelimit-limit"], "5000");
                break;
            }
            assert_eq!(r.status(), 403);
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn request_log_records_timing_and_concurrency_per_installation() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let inst = s.sim.installation_id("acme");
        let t = s.token("acme").await;
        let path = "/repos/acme/widgets";
        assert_eq!(s.call(Method::GET, &t, path, None).await.status(), 200);
        assert_eq!(s.sim.max_in_flight(inst), 1, "one call at a time");

        set(&s, json!({"error_rate": 1.0, "kinds": ["latency"], "latency_ms": 300})).await;
        let (a, b, c) = tokio::join!(
            s.call(Method::GET, &t, path, None),
            s.call(Method::GET, &t, path, None),
            s.call(Method::GET, &t, path, None)
        );
        for r in [a, b, c] {
            assert_eq!(r.status(), 200);
        }
        assert_eq!(s.sim.max_in_flight(inst), 3, "three calls held by the latency fault overlap");
        let state = s.sim.state();
        let slow: Vec<&Value> = state["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["installation"] == inst && r["in_flight"].as_u64().unwrap() > 1)
            .collect();
        assert_eq!(slow.len(), 2, "{state}");
        for r in slow {
            let (start, end) = (r["started_ms"].as_u64().unwrap(), r["finished_ms"].as_u64().unwrap());
            assert!(end >= start + 300, "{r}");
        }
    })
    .await
    .expect("timed out");
}
