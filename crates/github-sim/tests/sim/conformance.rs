//! Requests GitHub would refuse are refused loudly, with the reason, and counted.

use crate::common::{TEST_TIMEOUT, start};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn nonconforming_requests_fail_with_a_reason() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_issue("acme/widgets", "one", "", "alice").unwrap();
        let t = s.token("acme").await;

        // A body that does not match the request schema (labels must be an array).
        let r = s
            .call(Method::POST, &t, "/repos/acme/widgets/issues", Some(json!({"title": "x", "labels": "foreman"})))
            .await;
        assert_eq!(r.status(), 400);
        let msg = r.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_string();
        assert!(msg.contains("request schema") && msg.contains("labels"), "{msg}");

        // A missing required body field.
        let r = s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/comments", Some(json!({"text": "hi"}))).await;
        assert_eq!(r.status(), 400);

        // A path GitHub does not have.
        let r = s.call(Method::GET, &t, "/repos/acme/widgets/frobnicate", None).await;
        assert_eq!(r.status(), 400);
        assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("no path"));

        // A method the path does not have.
        let r = s.call(Method::PUT, &t, "/repos/acme/widgets/issues/1/comments", Some(json!({"body": "x"}))).await;
        assert_eq!(r.status(), 400);

        // An enumerated query parameter out of range.
        let r = s.call(Method::GET, &t, "/repos/acme/widgets/pulls?state=merged", None).await;
        assert_eq!(r.status(), 400);
        assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("state"));

        // Conforming requests still pass.
        let r = s
            .call(Method::POST, &t, "/repos/acme/widgets/issues", Some(json!({"title": "x", "labels": ["foreman"]})))
            .await;
        assert_eq!(r.status(), 201);
        let r = s.call(Method::GET, &t, "/repos/acme/widgets/pulls?state=all&head=acme:feature", None).await;
        assert_eq!(r.status(), 200);

        let state = s.sim.state();
        let bad = state["nonconforming"].as_array().unwrap();
        assert_eq!(bad.len(), 5, "{bad:#?}");
        assert!(bad.iter().all(|b| b["reason"].as_str().is_some_and(|r| !r.is_empty())));
    })
    .await
    .expect("timed out");
}
