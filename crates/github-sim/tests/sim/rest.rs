//! REST: issues, labels, comments, reactions, permissions, pulls, contents, check runs,
//! pagination, rate-limit headers and error bodies.

use crate::common::{TEST_TIMEOUT, start};
use base64::Engine as _;
use github_sim::Permission;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn issues_labels_comments_reactions() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_user("alice", Permission::Write, "User");
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let (n, node) = s.sim.create_issue("acme/widgets", "Fix the thing", "It is broken", "alice").unwrap();
        assert_eq!(n, 1);
        assert!(node.starts_with("I_"));
        let t = s.token("acme").await;

        let r = s.call(Method::GET, &t, "/repos/acme/widgets/issues/1", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "5000");
        let remaining: u64 = r.headers()["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        assert!(remaining < 5000);
        assert!(r.headers().get("x-ratelimit-reset").is_some());
        let issue: Value = r.json().await.unwrap();
        assert_eq!(issue["title"], "Fix the thing");
        assert_eq!(issue["user"]["login"], "alice");
        assert_eq!(issue["node_id"], node);

        let r =
            s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/labels", Some(json!({"labels": ["foreman"]}))).await;
        assert_eq!(r.status(), 200);
        let labels: Value = r.json().await.unwrap();
        assert_eq!(labels[0]["name"], "foreman");
        let r = s.call(Method::DELETE, &t, "/repos/acme/widgets/issues/1/labels/foreman", None).await;
        assert_eq!(r.status(), 200);
        let r = s.call(Method::DELETE, &t, "/repos/acme/widgets/issues/1/labels/foreman", None).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Label does not exist");

        let r = s
            .call(
                Method::POST,
                &t,
                "/repos/acme/widgets/labels",
                Some(json!({"name": "foreman:running", "color": "ff0000"})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r = s
            .call(
                Method::POST,
                &t,
                "/repos/acme/widgets/labels",
                Some(json!({"name": "foreman:running", "color": "ff0000"})),
            )
            .await;
        assert_eq!(r.status(), 422);
        let r: Value = s.call(Method::GET, &t, "/repos/acme/widgets/labels", None).await.json().await.unwrap();
        assert!(r.as_array().unwrap().iter().any(|l| l["name"] == "foreman:running"));

        let r =
            s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/comments", Some(json!({"body": "On it."}))).await;
        assert_eq!(r.status(), 201);
        let c: Value = r.json().await.unwrap();
        assert_eq!(c["user"]["login"], "foreman[bot]");
        assert_eq!(c["user"]["type"], "Bot");
        let id = c["id"].as_u64().unwrap();
        let r = s
            .call(
                Method::PATCH,
                &t,
                &format!("/repos/acme/widgets/issues/comments/{id}"),
                Some(json!({"body": "Done."})),
            )
            .await;
        assert_eq!(r.status(), 200);
        let r = s
            .call(
                Method::POST,
                &t,
                &format!("/repos/acme/widgets/issues/comments/{id}/reactions"),
                Some(json!({"content": "rocket"})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r =
            s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/reactions", Some(json!({"content": "eyes"}))).await;
        assert_eq!(r.status(), 201);
        let r =
            s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/reactions", Some(json!({"content": "eyes"}))).await;
        assert_eq!(r.status(), 200, "a repeated reaction answers 200");

        let r: Vec<Value> =
            s.call(Method::GET, &t, "/repos/acme/widgets/issues/1/reactions", None).await.json().await.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["user"]["login"], "foreman[bot]");
        let r: Vec<Value> = s
            .call(Method::GET, &t, &format!("/repos/acme/widgets/issues/comments/{id}/reactions"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r[0]["content"], "rocket");
        // Set labels replaces the whole set.
        s.call(Method::POST, &t, "/repos/acme/widgets/issues/1/labels", Some(json!({"labels": ["a", "b"]}))).await;
        let r: Vec<Value> = s
            .call(Method::PUT, &t, "/repos/acme/widgets/issues/1/labels", Some(json!({"labels": ["b", "c"]})))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r.iter().map(|l| l["name"].as_str().unwrap()).collect::<Vec<_>>(), ["b", "c"]);
        let branch: Value =
            s.call(Method::GET, &t, "/repos/acme/widgets/branches/main", None).await.json().await.unwrap();
        assert_eq!(branch["commit"]["sha"].as_str().unwrap().len(), 40);
        assert_eq!(s.call(Method::GET, &t, "/repos/acme/widgets/branches/nope", None).await.status(), 404);

        let r = s.call(Method::PATCH, &t, "/repos/acme/widgets/issues/1", Some(json!({"state": "closed"}))).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["state"], "closed");

        let state = s.sim.state();
        let issue = &state["repos"][0]["issues"][0];
        assert_eq!(issue["state"], "closed");
        assert_eq!(issue["comments"][0]["body"], "Done.");
        assert_eq!(issue["comments"][0]["reactions"][0]["content"], "rocket");
        assert_eq!(issue["reactions"][0]["content"], "eyes");
        assert!(
            state["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["path"] == "/repos/acme/widgets/issues/1" && r["status"] == 200)
        );

        let r = s.call(Method::DELETE, &t, &format!("/repos/acme/widgets/issues/comments/{id}"), None).await;
        assert_eq!(r.status(), 204);
        let r = s.call(Method::GET, &t, "/repos/acme/widgets/issues/99", None).await;
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Not Found");
        assert!(body["documentation_url"].as_str().unwrap().starts_with("https://docs.github.com"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn pagination_follows_link_headers() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_issue("acme/widgets", "one", "", "alice").unwrap();
        for i in 0..7 {
            s.sim.comment("acme/widgets", 1, &format!("comment {i}"), "alice").unwrap();
        }
        let t = s.token("acme").await;
        let mut url = s.url("/repos/acme/widgets/issues/1/comments?per_page=3");
        let mut bodies = Vec::new();
        let mut pages = 0;
        loop {
            let r = s.http.get(&url).header("authorization", format!("token {t}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            pages += 1;
            let next = r.headers().get("link").and_then(|l| {
                l.to_str()
                    .unwrap()
                    .split(", ")
                    .find(|p| p.ends_with("rel=\"next\""))
                    .map(|p| p[1..p.find('>').unwrap()].to_string())
            });
            let page: Vec<Value> = r.json().await.unwrap();
            bodies.extend(page.into_iter().map(|c| c["body"].as_str().unwrap().to_string()));
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(bodies, (0..7).map(|i| format!("comment {i}")).collect::<Vec<_>>());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn collaborator_permission() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_user("alice", Permission::Maintain, "User");
        s.sim.create_user("mallory", Permission::Read, "User");
        let t = s.token("acme").await;
        let v: Value = s
            .call(Method::GET, &t, "/repos/acme/widgets/collaborators/alice/permission", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["permission"], "write");
        assert_eq!(v["role_name"], "maintain");
        assert_eq!(v["user"]["permissions"]["push"], true);
        let v: Value = s
            .call(Method::GET, &t, "/repos/acme/widgets/collaborators/mallory/permission", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["permission"], "read");
        assert_eq!(v["user"]["permissions"]["push"], false);
        assert_eq!(
            s.call(Method::GET, &t, "/repos/acme/widgets/collaborators/nobody/permission", None).await.status(),
            404
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn contents_etag_and_304() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[(".foreman/constitution.md", "Be kind.\n")]).unwrap();
        let t = s.token("acme").await;
        let r = s.call(Method::GET, &t, "/repos/acme/widgets/contents/.foreman/constitution.md", None).await;
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let used: u64 = r.headers()["x-ratelimit-used"].to_str().unwrap().parse().unwrap();
        let v: Value = r.json().await.unwrap();
        let content =
            base64::engine::general_purpose::STANDARD.decode(v["content"].as_str().unwrap().replace('\n', "")).unwrap();
        assert_eq!(content, b"Be kind.\n");
        let r = s
            .http
            .get(s.url("/repos/acme/widgets/contents/.foreman/constitution.md"))
            .header("authorization", format!("token {t}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        let used_after: u64 = r.headers()["x-ratelimit-used"].to_str().unwrap().parse().unwrap();
        assert_eq!(used_after, used, "a 304 is free");
        assert_eq!(s.call(Method::GET, &t, "/repos/acme/widgets/contents/missing.md", None).await.status(), 404);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn check_runs_create_and_update() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let t = s.token("acme").await;
        let sha = "0123456789012345678901234567890123456789";
        let r = s
            .call(
                Method::POST,
                &t,
                "/repos/acme/widgets/check-runs",
                Some(json!({"name": "foreman/constitution", "head_sha": sha, "status": "in_progress"})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        let r = s
            .call(
                Method::PATCH,
                &t,
                &format!("/repos/acme/widgets/check-runs/{id}"),
                Some(json!({"conclusion": "success", "output": {"title": "ok", "summary": "all rules hold"}})),
            )
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["conclusion"], "success");

        // Listed by commit, with annotations kept as sent; other commits' runs are not listed.
        let annotation = json!({"path": "a.toml", "start_line": 3, "end_line": 3, "start_column": 1,
            "end_column": 1, "annotation_level": "failure", "message": "unknown field"});
        let r = s
            .call(
                Method::POST,
                &t,
                "/repos/acme/widgets/check-runs",
                Some(json!({"name": "other", "head_sha": "f".repeat(40), "conclusion": "failure",
                    "output": {"title": "bad", "summary": "s", "annotations": [annotation]}})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r = s.call(Method::GET, &t, &format!("/repos/acme/widgets/commits/{sha}/check-runs"), None).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["total_count"], 1);
        assert_eq!(v["check_runs"][0]["id"], id);
        let other = format!("/repos/acme/widgets/commits/{}/check-runs?check_name=other", "f".repeat(40));
        let v: Value = s.call(Method::GET, &t, &other, None).await.json().await.unwrap();
        assert_eq!(v["check_runs"][0]["output"]["annotations"][0], annotation);
        let none = format!("/repos/acme/widgets/commits/{}/check-runs?check_name=nope", "f".repeat(40));
        let v: Value = s.call(Method::GET, &t, &none, None).await.json().await.unwrap();
        assert_eq!(v["total_count"], 0);
        assert!(s.sim.state()["nonconforming"].as_array().unwrap().is_empty());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn wait_until_is_a_sync_point() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_issue("acme/widgets", "one", "", "alice").unwrap();
        let t = s.token("acme").await;
        let commented = |st: &Value| st["repos"][0]["issues"][0]["comments"].as_array().is_some_and(|c| !c.is_empty());
        assert!(s.sim.wait_until(std::time::Duration::from_millis(50), commented).await.is_none());
        let http = s.http.clone();
        let url = s.url("/repos/acme/widgets/issues/1/comments");
        let poster = tokio::spawn(async move {
            http.post(url)
                .header("authorization", format!("token {t}"))
                .json(&json!({"body": "hi"}))
                .send()
                .await
                .unwrap()
                .status()
        });
        let state = s.sim.wait_until(std::time::Duration::from_secs(10), commented).await.expect("the comment arrives");
        assert_eq!(state["repos"][0]["issues"][0]["comments"][0]["user"], "foreman[bot]");
        assert_eq!(poster.await.unwrap(), 201);
    })
    .await
    .expect("timed out");
}
