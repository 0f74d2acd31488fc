//! Registering the App from a manifest, GitHub's side: the form target and its confirmation, the code
//! conversion (its answer matches the 201 schema of GitHub's REST description, a code converts once), the
//! App as `GET /app` then reports it, and the install page (no events of an account before the App is
//! installed there; `installation.created` after, to the manifest's webhook URL).

use crate::common::{TEST_TIMEOUT, denull, receiver, start_with};
use serde_json::{Value, json};

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn a_manifest_registers_the_app_and_its_code_converts_once_into_its_credentials() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut doc: Value = serde_json::from_slice(&github_sim::descriptions::rest_description()).unwrap();
        denull(&mut doc["components"]);
        let mut schema = doc["paths"]["/app-manifests/{code}/conversions"]["post"]["responses"]["201"]["content"]
            ["application/json"]["schema"]
            .clone();
        schema["components"] = json!({"schemas": doc["components"]["schemas"].clone()});
        let validator = jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).unwrap();

        let hook = receiver(200).await;
        let s = start_with(|c| c.webhook_secret = "shh".into()).await;
        s.sim.create_user("alice", github_sim::Permission::Admin, "User");
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi")]).unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let manifest = json!({
            "name": "My Foreman", "url": "https://example.com", "description": "d",
            "hook_attributes": {"url": hook.url},
            "redirect_url": "http://127.0.0.1:9/setup/callback", "setup_url": "http://127.0.0.1:9/",
            "default_permissions": {"issues": "write", "metadata": "read"},
            "default_events": ["issues"],
        })
        .to_string();
        let post = |url: String, body: String| {
            http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send()
        };

        // The form target shows what the App asks for and registers nothing yet.
        let page = post(s.url("/organizations/acme/settings/apps/new?state=s1"), form(&[("manifest", &manifest)]))
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert!(page.contains("My Foreman") && page.contains("issues: write") && page.contains("id=\"create\""));
        // A manifest without its required fields is refused.
        let bad = post(s.url("/settings/apps/new?state=s1"), form(&[("manifest", "{\"name\": \"x\"}")])).await.unwrap();
        assert_eq!(bad.status(), 422);

        // Confirming registers it and sends the browser back with a code and the state.
        let r = post(
            s.url("/organizations/acme/settings/apps/new?state=s1"),
            form(&[("manifest", &manifest), ("confirm", "1")]),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 302);
        let back = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.starts_with("http://127.0.0.1:9/setup/callback?code=") && back.ends_with("&state=s1"), "{back}");
        let code = back.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();

        // The conversion needs no authentication and answers GitHub's schema, with the simulator's key.
        let url = s.url(&format!("/app-manifests/{code}/conversions"));
        let r = http.post(&url).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let app: Value = r.json().await.unwrap();
        let errors: Vec<String> = validator.iter_errors(&app).take(5).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{app:#}");
        assert_eq!(app["id"], s.sim.app_id());
        assert_eq!(app["name"], "My Foreman");
        assert_eq!(app["pem"], s.sim.private_key_pem());
        assert_eq!(app["webhook_secret"], "shh");
        assert_eq!(app["permissions"], json!({"issues": "write", "metadata": "read"}));
        // Once only.
        assert_eq!(http.post(&url).send().await.unwrap().status(), 404);
        assert_eq!(http.post(s.url("/app-manifests/nope/conversions")).send().await.unwrap().status(), 404);

        // GET /app reports the registered App; it is installed nowhere yet.
        let jwt = s.sim.app_jwt();
        let me: Value = http.get(s.url("/app")).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
        assert_eq!((&me["name"], &me["events"]), (&json!("My Foreman"), &json!(["issues"])));
        let none: Value =
            http.get(s.url("/app/installations")).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
        assert_eq!(none, json!([]));

        // No event of an account the App is not installed on.
        let before = s.sim.deliveries().len();
        s.sim.create_issue("acme/widgets", "before", "", "alice").unwrap();
        assert_eq!(s.sim.deliveries().len(), before);

        // The install page, then Install: installation.created to the manifest's hook, on to setup_url.
        let install = s.url(&format!("/apps/{}/installations/new", s.sim.app_slug()));
        let page = http.get(&install).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("id=\"install-acme\""), "{page}");
        let r = post(install.clone(), form(&[("account", "acme")])).await.unwrap();
        assert_eq!(r.status(), 302);
        let id = s.sim.installation_id("acme");
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("http://127.0.0.1:9/?installation_id={id}&setup_action=install")
        );
        assert!(s.sim.wait_deliveries((before + 1) as u64, TEST_TIMEOUT).await);
        let got = hook.got.lock().unwrap().clone();
        let (headers, body) = got.last().expect("installation delivered to the manifest's hook URL");
        assert_eq!(headers["x-github-event"], "installation");
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["action"], "created");
        assert_eq!(payload["installation"]["account"]["login"], "acme");
        assert_eq!(payload["repositories"][0]["full_name"], "acme/widgets");
        assert_eq!(payload["sender"]["login"], "alice");
    })
    .await
    .expect("timed out");
}
