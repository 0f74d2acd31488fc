//! The App's delivery log (`GET /app/hook/deliveries`, `GET /app/hook/deliveries/{delivery_id}`), which
//! Foreman's poll delivery mode reads: every delivery is recorded, also without a webhook URL (as GitHub
//! records deliveries it could not send); the list pages by `cursor`; both answers match the response
//! schemas of GitHub's REST description.

use std::collections::BTreeSet;

use crate::common::{TEST_TIMEOUT, denull, start};
use serde_json::{Value, json};

/// A validator for the 200 answer of `GET path` in GitHub's REST description (built into github-sim), with
/// the description's components beside it so its `#/components/...` references resolve.
fn response_schema(doc: &Value, path: &str) -> jsonschema::Validator {
    let mut schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "GitHub's description has GET {path}");
    schema["components"] = json!({"schemas": doc["components"]["schemas"].clone()});
    jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).expect("the schema compiles")
}

fn check(validator: &jsonschema::Validator, what: &str, value: &Value) {
    let errors: Vec<String> =
        validator.iter_errors(value).take(5).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match GitHub's schema: {errors:?}\n{value:#}");
}

#[tokio::test]
async fn every_delivery_is_logged_unsent_without_a_webhook_url_and_read_back_by_cursor_and_id() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut doc: Value = serde_json::from_slice(&github_sim::descriptions::rest_description()).unwrap();
        denull(&mut doc["components"]);
        denull(&mut doc["paths"]);
        let list_schema = response_schema(&doc, "/app/hook/deliveries");
        let item_schema = response_schema(&doc, "/app/hook/deliveries/{delivery_id}");

        // No webhook URL (the default): nothing can be sent.
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi")]).unwrap();
        for n in 0..3 {
            let (number, _) = s.sim.create_issue("acme/widgets", &format!("issue {n}"), "", "alice").unwrap();
            s.sim.add_label("acme/widgets", number, "foreman", "alice").unwrap();
        }
        let made = s.sim.deliveries();
        assert!(made.len() >= 6, "{made:#?}");
        assert!(s.sim.wait_deliveries(made.len() as u64, TEST_TIMEOUT).await, "every delivery attempted");

        // The whole log, three to a page, following the Link header's cursor.
        let jwt = s.sim.app_jwt();
        let mut next = Some(s.url("/app/hook/deliveries?per_page=3"));
        let mut listed: Vec<Value> = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            let r = s.http.get(&url).bearer_auth(&jwt).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            next = r
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split(',').find(|p| p.contains("rel=\"next\"")))
                .map(|p| p.split(';').next().unwrap().trim().trim_matches(['<', '>']).to_owned());
            if let Some(n) = &next {
                assert!(
                    n.contains("cursor=") && !n.contains("&page=") && !n.contains("?page="),
                    "GitHub pages this list by cursor: {n}"
                );
            }
            let page: Value = r.json().await.unwrap();
            check(&list_schema, "a page of GET /app/hook/deliveries", &page);
            let page = page.as_array().unwrap().clone();
            assert!(page.len() <= 3);
            listed.extend(page);
            pages += 1;
        }
        assert_eq!(pages, made.len().div_ceil(3));
        let ids: Vec<u64> = listed.iter().map(|d| d["id"].as_u64().unwrap()).collect();
        let mut newest_first = ids.clone();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, newest_first, "newest first");
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), made.len(), "every delivery once");
        // Recorded although never sent: status code 0, as GitHub shows a delivery it could not make.
        assert!(listed.iter().all(|d| d["status_code"] == 0), "{listed:#?}");

        // Each entry with the request GitHub made: its headers and the payload.
        for entry in &listed {
            let id = entry["id"].as_u64().unwrap();
            let r = s.http.get(s.url(&format!("/app/hook/deliveries/{id}"))).bearer_auth(&jwt).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let d: Value = r.json().await.unwrap();
            check(&item_schema, "GET /app/hook/deliveries/{delivery_id}", &d);
            assert_eq!(d["guid"], entry["guid"]);
            let headers = &d["request"]["headers"];
            assert_eq!(headers["X-GitHub-Delivery"], entry["guid"], "{headers}");
            assert_eq!(headers["X-GitHub-Event"], entry["event"], "{headers}");
            assert_eq!(d["request"]["payload"]["action"], entry["action"]);
            assert_eq!(d["request"]["payload"]["repository"]["full_name"], "acme/widgets");
        }

        // The App's log is the App's: an installation token cannot read it.
        let token = s.token("acme").await;
        let r = s.call(reqwest::Method::GET, &token, "/app/hook/deliveries", None).await;
        assert!(r.status() == 401 || r.status() == 403, "{}", r.status());
        // And every request above conformed to GitHub's description (`cursor` is one of its parameters).
        assert!(s.sim.state()["nonconforming"].as_array().unwrap().is_empty());
    })
    .await
    .expect("timed out");
}
