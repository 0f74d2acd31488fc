//! The control API over HTTP, as the demo and people trying Foreman use it.

use std::time::Duration;

use crate::common::{TEST_TIMEOUT, receiver, start_with};
use serde_json::{Value, json};

#[tokio::test]
async fn control_api_drives_the_world() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(202).await;
        let url = rx.url.clone();
        let s = start_with(|c| c.webhook_url = Some(url)).await;
        let post = |path: &str, body: Value| {
            let rq = s.http.post(s.url(path)).json(&body);
            async move {
                let r = rq.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        assert_eq!(post("/_sim/users", json!({"login": "alice", "permission": "write", "type": "User"})).await.0, 201);
        assert_eq!(
            post("/_sim/users", json!({"login": "dependabot[bot]", "permission": "read", "type": "Bot"})).await.0,
            201
        );
        assert_eq!(post("/_sim/users", json!({"login": "x", "permission": "god"})).await.0, 400);
        let (st, repo) = post(
            "/_sim/repos",
            json!({"owner": "acme", "name": "widgets", "files": {"README.md": "hi\n", "src/lib.rs": "\n"}}),
        )
        .await;
        assert_eq!(st, 201);
        assert_eq!(repo["default_branch"], "main");
        assert!(repo["clone_url"].as_str().unwrap().ends_with("/acme/widgets.git"));
        let (st, issue) =
            post("/_sim/repos/acme/widgets/issues", json!({"title": "Fix", "body": "b", "user": "alice"})).await;
        assert_eq!(st, 201);
        assert_eq!(issue["number"], 1);
        assert!(issue["node_id"].is_string());
        assert_eq!(
            post("/_sim/repos/acme/widgets/issues/1/labels", json!({"label": "foreman", "user": "alice"})).await.0,
            200
        );
        let r =
            s.http.delete(s.url("/_sim/repos/acme/widgets/issues/1/labels/foreman?user=alice")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            post("/_sim/repos/acme/widgets/issues/1/comments", json!({"body": "/foreman run", "user": "alice"}))
                .await
                .0,
            201
        );
        let r = s
            .http
            .patch(s.url("/_sim/repos/acme/widgets/issues/1"))
            .json(&json!({"state": "closed", "user": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (st, project) = post(
            "/_sim/orgs/acme/projects",
            json!({"title": "Board", "columns": ["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"]}),
        )
        .await;
        assert_eq!(st, 201);
        let number = project["number"].as_u64().unwrap();
        let (st, item) =
            post(&format!("/_sim/orgs/acme/projects/{number}/items"), json!({"repo": "acme/widgets", "issue": 1}))
                .await;
        assert_eq!(st, 201);
        let item_id = item["item_id"].as_str().unwrap().to_string();
        let (st, _) = post(
            &format!("/_sim/orgs/acme/projects/{number}/items/{item_id}/move"),
            json!({"column": "Ready", "user": "alice"}),
        )
        .await;
        assert_eq!(st, 200);
        let (st, _) = post(
            &format!("/_sim/orgs/acme/projects/{number}/items/{item_id}/move"),
            json!({"column": "Nowhere", "user": "alice"}),
        )
        .await;
        assert_eq!(st, 422);

        let state: Value = s.http.get(s.url("/_sim/state")).send().await.unwrap().json().await.unwrap();
        assert_eq!(state["repos"][0]["issues"][0]["state"], "closed");
        assert_eq!(state["projects"][0]["items"][0]["column"], "Ready");
        assert_eq!(state["repos"][0]["issues"][0]["comments"][0]["user"], "alice");

        // Deliveries carry the receiver's answer and can be redelivered.
        assert!(s.sim.wait_deliveries(7, Duration::from_secs(10)).await);
        let state: Value = s.http.get(s.url("/_sim/state")).send().await.unwrap().json().await.unwrap();
        let deliveries = state["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 7);
        assert!(deliveries.iter().all(|d| d["status_code"] == 202));
        let id = deliveries[0]["id"].as_u64().unwrap();
        let (st, _) = post(&format!("/_sim/deliveries/{id}/redeliver"), json!({})).await;
        assert_eq!(st, 202);
        assert!(s.sim.wait_deliveries(8, Duration::from_secs(10)).await);
        assert_eq!(rx.got.lock().unwrap().len(), 8);
        assert_eq!(s.http.get(s.url("/_sim/nope")).send().await.unwrap().status(), 404);
    })
    .await
    .expect("timed out");
}
