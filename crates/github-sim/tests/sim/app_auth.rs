//! App authentication: JWT rules, installation tokens, scoping and expiry.

use std::time::Duration;

use crate::common::{TEST_TIMEOUT, start, start_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

fn jwt(pem: &str, iat_offset: i64, exp_offset: i64, iss: Value) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"iat": now + iat_offset, "exp": now + exp_offset, "iss": iss});
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
        .unwrap()
}

#[tokio::test]
async fn app_jwt_rules_are_enforced() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        let pem = s.sim.private_key_pem().to_string();
        let id = json!(s.sim.app_id());
        let get = |token: String| {
            let http = s.http.clone();
            let url = s.url("/app");
            async move { http.get(url).bearer_auth(token).send().await.unwrap() }
        };
        let ok = get(jwt(&pem, -60, 540, id.clone())).await;
        assert_eq!(ok.status(), 200);
        assert!(ok.headers().get("x-github-request-id").is_some());
        let app: Value = ok.json().await.unwrap();
        assert_eq!(app["id"], id);
        assert_eq!(app["slug"], "foreman");

        // exp more than 10 minutes after iat.
        let r = get(jwt(&pem, -10, 700, id.clone())).await;
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("too far in the future"), "{body}");
        assert!(body["documentation_url"].is_string());
        // Expired.
        assert_eq!(get(jwt(&pem, -600, -10, id.clone())).await.status(), 401);
        // iat in the future beyond drift.
        assert_eq!(get(jwt(&pem, 120, 500, id.clone())).await.status(), 401);
        // Wrong issuer.
        assert_eq!(get(jwt(&pem, -60, 500, json!(999))).await.status(), 401);
        // Signed by another key.
        let other = start().await;
        assert_eq!(get(jwt(other.sim.private_key_pem(), -60, 500, id.clone())).await.status(), 401);
        // No credentials.
        assert_eq!(s.http.get(s.url("/app")).send().await.unwrap().status(), 401);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn installation_tokens_are_scoped_and_checked() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        s.sim.create_repo("acme", "gadgets", &[]).unwrap();
        s.sim.create_repo("other", "thing", &[]).unwrap();
        s.sim.create_issue("acme/widgets", "one", "body", "alice").unwrap();

        let installs: Value = s
            .http
            .get(s.url("/app/installations"))
            .bearer_auth(s.sim.app_jwt())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(installs.as_array().unwrap().len(), 2);
        let inst: Value = s
            .http
            .get(s.url("/repos/acme/widgets/installation"))
            .bearer_auth(s.sim.app_jwt())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(inst["id"].as_u64().unwrap(), s.sim.installation_id("acme"));
        assert_eq!(inst["account"]["login"], "acme");

        let all = s.token("acme").await;
        assert!(all.starts_with("ghs_"));
        assert_eq!(s.call(Method::GET, &all, "/repos/acme/widgets", None).await.status(), 200);
        assert_eq!(s.call(Method::GET, &all, "/repos/acme/gadgets", None).await.status(), 200);
        // Another account's installation is out of reach.
        assert_eq!(s.call(Method::GET, &all, "/repos/other/thing", None).await.status(), 404);

        let one = s.token_with("acme", json!({"repositories": ["widgets"]})).await;
        assert_eq!(s.call(Method::GET, &one, "/repos/acme/widgets", None).await.status(), 200);
        let r = s.call(Method::GET, &one, "/repos/acme/gadgets", None).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");

        let read_only = s.token_with("acme", json!({"permissions": {"issues": "read"}})).await;
        assert_eq!(s.call(Method::GET, &read_only, "/repos/acme/widgets/issues/1", None).await.status(), 200);
        let r =
            s.call(Method::POST, &read_only, "/repos/acme/widgets/issues/1/comments", Some(json!({"body": "x"}))).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Resource not accessible by integration");

        // Asking for more than the installation has is refused.
        let id = s.sim.installation_id("acme");
        let r = s
            .http
            .post(s.url(&format!("/app/installations/{id}/access_tokens")))
            .bearer_auth(s.sim.app_jwt())
            .json(&json!({"permissions": {"administration": "write"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);

        // A token is not a JWT.
        assert_eq!(
            s.http.get(s.url("/app")).header("authorization", format!("token {all}")).send().await.unwrap().status(),
            401
        );
        // Garbage token.
        assert_eq!(s.call(Method::GET, "ghs_nope", "/repos/acme/widgets", None).await.status(), 401);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start_with(|c| c.token_ttl = Duration::ZERO).await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let t = s.token("acme").await;
        let r = s.call(Method::GET, &t, "/repos/acme/widgets", None).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Bad credentials");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn state_dir_gets_app_files_and_key_is_reused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let pem1 = {
            let sim = github_sim::GithubSim::start(github_sim::SimConfig::new(dir.path())).await.unwrap();
            sim.private_key_pem().to_string()
        };
        let app: Value = serde_json::from_slice(&std::fs::read(dir.path().join("app.json")).unwrap()).unwrap();
        assert_eq!(app["app_id"], 1001);
        assert_eq!(app["slug"], "foreman");
        assert_eq!(std::fs::read_to_string(dir.path().join("app.pem")).unwrap(), pem1);
        let sim = github_sim::GithubSim::start(github_sim::SimConfig::new(dir.path())).await.unwrap();
        assert_eq!(sim.private_key_pem(), pem1);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let inst = s.sim.installation_id("acme");

        // GitHub's `DELETE /installation/token` revokes the calling token only.
        let revoked = s.token("acme").await;
        let kept = s.token("acme").await;
        assert_eq!(s.call(Method::DELETE, &revoked, "/installation/token", None).await.status(), 204);
        let r = s.call(Method::GET, &revoked, "/repos/acme/widgets", None).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Bad credentials");
        assert_eq!(s.call(Method::GET, &kept, "/repos/acme/widgets", None).await.status(), 200);
        assert!(s.sim.state()["nonconforming"].as_array().unwrap().is_empty(), "the endpoint is GitHub's");

        // The control API revokes every token of an installation, leaving other installations alone.
        s.sim.create_repo("other", "thing", &[]).unwrap();
        let elsewhere = s.token("other").await;
        let r = s.http.post(s.url(&format!("/_sim/installations/{inst}/revoke-tokens"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
        assert_eq!(s.call(Method::GET, &kept, "/repos/acme/widgets", None).await.status(), 401);
        assert_eq!(s.call(Method::GET, &elsewhere, "/repos/other/thing", None).await.status(), 200);

        // The Rust helper does the same.
        let again = s.token("acme").await;
        assert_eq!(s.sim.revoke_tokens(inst), 1);
        assert_eq!(s.call(Method::GET, &again, "/repos/acme/widgets", None).await.status(), 401);
    })
    .await
    .expect("timed out");
}
