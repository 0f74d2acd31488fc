//! Webhooks: real headers and signatures, payloads that validate against GitHub's schemas,
//! the bot as sender for API changes, recorded response codes and redelivery.

use std::path::Path;
use std::time::Duration;

use crate::common::{TEST_TIMEOUT, receiver, start_with};
use hmac::{KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};

const BASE: &str = "https://github-sim.invalid/";

fn schemas_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vendor/github/webhooks/schemas/api.github.com")
}

fn collect(dir: &Path, out: &mut Vec<Value>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
        }
    }
}

/// A registry holding every webhook schema under its `$id`.
fn registry() -> jsonschema::Registry<'static> {
    let mut docs = Vec::new();
    collect(&schemas_dir(), &mut docs);
    let pairs: Vec<(String, jsonschema::Resource)> = docs
        .into_iter()
        .map(|d| (format!("{BASE}{}", d["$id"].as_str().unwrap()), jsonschema::Resource::from_contents(d)))
        .collect();
    jsonschema::Registry::new().extend(pairs).unwrap().prepare().unwrap()
}

fn check(registry: &jsonschema::Registry<'static>, id: &str, value: &Value) -> Result<(), String> {
    let schema = json!({"$ref": format!("{BASE}{id}")});
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_registry(registry)
        .build(&schema)
        .map_err(|e| e.to_string())?;
    let errors: Vec<String> = v.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Validates a payload against `{event}${action}`; for the few actions the schema set lacks
/// (pull_request.edited), validates each object of the payload against its common schema.
fn validate(registry: &jsonschema::Registry<'static>, event: &str, payload: &Value) -> Result<(), String> {
    let action = payload["action"].as_str().unwrap();
    if schemas_dir().join(event).join(format!("{action}.schema.json")).exists() {
        return check(registry, &format!("{event}${action}"), payload);
    }
    let parts = [
        ("pull_request", "common/pull-request.schema.json"),
        ("issue", "common/issue.schema.json"),
        ("repository", "common/repository.schema.json"),
        ("sender", "common/user.schema.json"),
        ("organization", "common/organization.schema.json"),
        ("installation", "common/installation-lite.schema.json"),
    ];
    let mut seen = 0;
    for (key, id) in parts {
        if let Some(v) = payload.get(key) {
            check(registry, id, v)?;
            seen += 1;
        }
    }
    assert!(seen >= 4, "{event}.{action}: too little to validate");
    Ok(())
}

#[tokio::test]
async fn every_event_validates_and_is_signed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(200).await;
        let url = rx.url.clone();
        let s = start_with(|c| {
            c.webhook_url = Some(url);
            c.webhook_secret = "shh".into();
        })
        .await;
        let sim = &s.sim;
        sim.create_user("alice", github_sim::Permission::Write, "User");
        sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        let (n, _) = sim.create_issue("acme/widgets", "Fix it", "broken", "alice").unwrap();
        sim.add_label("acme/widgets", n, "foreman", "alice").unwrap();
        sim.remove_label("acme/widgets", n, "foreman", "alice").unwrap();
        let c = sim.comment("acme/widgets", n, "/foreman run", "alice").unwrap();
        sim.edit_comment("acme/widgets", c, "/foreman run please", "alice").unwrap();
        sim.set_issue_state("acme/widgets", n, "closed", "alice").unwrap();
        sim.set_issue_state("acme/widgets", n, "open", "alice").unwrap();
        let (p, _) = sim.create_project("acme", "Board", &["Backlog", "Ready", "In review"]);
        let item = sim.add_project_item("acme", p, "acme/widgets", n, "alice").unwrap();
        sim.move_card("acme", p, &item, "Ready", "alice").unwrap();

        // A branch with one commit, for a pull request.
        let bare = sim.git_dir("acme/widgets").unwrap();
        let sh = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .args(args)
                .current_dir(&bare)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@e.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@e.invalid")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap().trim().to_string()
        };
        let commit = sh(&["commit-tree", "main^{tree}", "-p", "main", "-m", "change"]);
        sh(&["update-ref", "refs/heads/feature", &commit]);

        // Changes through the API are made by the bot.
        let t = s.token("acme").await;
        let r = s
            .call(Method::POST, &t, "/repos/acme/widgets/issues/1/comments", Some(json!({"body": "Working on it"})))
            .await;
        assert_eq!(r.status(), 201);
        let r = s
            .call(
                Method::POST,
                &t,
                "/repos/acme/widgets/pulls",
                Some(json!({"title": "Fix it", "head": "feature", "base": "main", "body": "Closes #1"})),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let pr = 2;
        // A push to the head branch over smart HTTP synchronizes the pull request.
        let work = tempfile::tempdir().unwrap();
        let url = s.sim.clone_url("acme/widgets").replacen("http://", &format!("http://x-access-token:{t}@"), 1);
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@e.invalid"])
                .args(args)
                .current_dir(work.path())
                .env("GIT_TERMINAL_PROMPT", "0")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let out = tokio::task::spawn_blocking({
            let url = url.clone();
            let dir = work.path().to_path_buf();
            move || {
                std::process::Command::new("git")
                    .args(["clone", "--branch", "feature", &url, "w"])
                    .current_dir(dir)
                    .env("GIT_TERMINAL_PROMPT", "0")
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(work.path().join("w/more.txt"), "more\n").unwrap();
        git(&["-C", "w", "add", "."]);
        git(&["-C", "w", "commit", "-m", "more"]);
        let out = tokio::task::spawn_blocking({
            let dir = work.path().join("w");
            move || {
                std::process::Command::new("git")
                    .args(["push", "origin", "feature"])
                    .current_dir(dir)
                    .env("GIT_TERMINAL_PROMPT", "0")
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        s.call(
            Method::POST,
            &t,
            &format!("/repos/acme/widgets/issues/{pr}/labels"),
            Some(json!({"labels": ["foreman"]})),
        )
        .await;
        sim.review("acme/widgets", pr, "CHANGES_REQUESTED", "Please add a test", "alice").unwrap();
        let reviews: Vec<Value> = s
            .call(Method::GET, &t, &format!("/repos/acme/widgets/pulls/{pr}/reviews"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(reviews[0]["state"], "CHANGES_REQUESTED");
        assert_eq!(reviews[0]["user"]["login"], "alice");
        s.call(
            Method::PATCH,
            &t,
            &format!("/repos/acme/widgets/pulls/{pr}"),
            Some(json!({"title": "Fix it properly"})),
        )
        .await;
        s.call(Method::PATCH, &t, &format!("/repos/acme/widgets/pulls/{pr}"), Some(json!({"state": "closed"}))).await;
        let r = s.call(Method::DELETE, &t, &format!("/repos/acme/widgets/issues/comments/{c}"), None).await;
        assert_eq!(r.status(), 204);

        let expected = [
            ("issues", "opened"),
            ("issues", "labeled"),
            ("issues", "unlabeled"),
            ("issue_comment", "created"),
            ("issue_comment", "edited"),
            ("issues", "closed"),
            ("issues", "reopened"),
            ("projects_v2_item", "created"),
            ("projects_v2_item", "edited"),
            ("issue_comment", "created"),
            ("pull_request", "opened"),
            ("pull_request", "synchronize"),
            ("pull_request", "labeled"),
            ("pull_request_review", "submitted"),
            ("pull_request", "edited"),
            ("pull_request", "closed"),
            ("issue_comment", "deleted"),
        ];
        assert!(sim.wait_deliveries(expected.len() as u64, Duration::from_secs(20)).await, "deliveries arrive");
        let got = rx.got.lock().unwrap().clone();
        assert_eq!(got.len(), expected.len());
        let reg = registry();
        let mut guids = std::collections::HashSet::new();
        for ((headers, body), (event, action)) in got.iter().zip(expected) {
            let h = |k: &str| headers.get(k).unwrap_or_else(|| panic!("header {k}")).to_str().unwrap().to_string();
            assert_eq!(h("x-github-event"), event);
            assert!(guids.insert(h("x-github-delivery")), "unique delivery ids");
            assert!(h("user-agent").starts_with("GitHub-Hookshot/"));
            assert_eq!(h("x-github-hook-installation-target-id"), sim.app_id().to_string());
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shh").unwrap();
            mac.update(body);
            assert_eq!(h("x-hub-signature-256"), format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
            let mut payload: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(payload["action"], action, "{event}");
            assert_eq!(payload["installation"]["id"].as_u64().unwrap(), sim.installation_id("acme"));
            assert_eq!(payload["organization"]["login"], "acme");
            if event == "projects_v2_item" && action == "edited" {
                // GitHub sends from/to on the field value; the octokit schema predates them
                // (additionalProperties: false), so check them here and validate the rest.
                let fv = payload["changes"]["field_value"].as_object_mut().unwrap();
                assert_eq!(fv.remove("to").unwrap()["name"], "Ready");
                assert!(fv.remove("from").unwrap().is_null());
                fv.remove("field_name");
                fv.remove("project_number");
            }
            // The App subscribes to events GitHub added after the octokit schemas were written (their `events`
            // enum lists neither): leave those out of the app objects before validating the rest.
            drop_events_newer_than_the_schemas(&mut payload);
            if let Err(e) = validate(&reg, event, &payload) {
                panic!("{event}.{action} does not validate:\n{e}\n{payload:#}");
            }
        }
        let sender = |i: usize| serde_json::from_slice::<Value>(&got[i].1).unwrap()["sender"].clone();
        assert_eq!(sender(0)["login"], "alice");
        assert_eq!(sender(9)["login"], "foreman[bot]");
        assert_eq!(sender(9)["type"], "Bot");
        assert_eq!(sender(10)["login"], "foreman[bot]");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn deliveries_record_status_and_can_be_redelivered() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(500).await;
        let url = rx.url.clone();
        let s = start_with(|c| c.webhook_url = Some(url)).await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_issue("acme/widgets", "one", "", "alice").unwrap();
        assert!(s.sim.wait_deliveries(1, Duration::from_secs(10)).await);
        let jwt = s.sim.app_jwt();
        let list: Vec<Value> =
            s.http.get(s.url("/app/hook/deliveries")).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["status_code"], 500);
        assert_eq!(list[0]["event"], "issues");
        assert_eq!(list[0]["redelivery"], false);
        let id = list[0]["id"].as_u64().unwrap();
        let r =
            s.http.post(s.url(&format!("/app/hook/deliveries/{id}/attempts"))).bearer_auth(&jwt).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert!(s.sim.wait_deliveries(2, Duration::from_secs(10)).await);
        let redelivered = s.sim.redeliver(id).unwrap();
        assert!(s.sim.wait_deliveries(3, Duration::from_secs(10)).await);
        let got = rx.got.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        let guid = |i: usize| got[i].0["x-github-delivery"].to_str().unwrap().to_string();
        assert_eq!(guid(0), guid(1), "a redelivery keeps the delivery id");
        assert_eq!(guid(0), guid(2));
        let one: Value = s
            .http
            .get(s.url(&format!("/app/hook/deliveries/{redelivered}")))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["redelivery"], true);
        assert_eq!(one["request"]["payload"]["action"], "opened");
        let state = s.sim.state();
        assert_eq!(state["deliveries"].as_array().unwrap().len(), 3);
        assert_eq!(state["deliveries"][0]["status_code"], 500);
    })
    .await
    .expect("timed out");
}

/// Events an App can subscribe to that GitHub added after the octokit webhook schemas (2024): issue
/// dependencies and sub-issues (2025).
const NEWER_EVENTS: &[&str] = &["issue_dependencies", "sub_issues"];

/// Removes [`NEWER_EVENTS`] from the `events` of every `performed_via_github_app` in `v`.
fn drop_events_newer_than_the_schemas(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(events)) = m.get_mut("performed_via_github_app").and_then(|a| a.get_mut("events"))
            {
                events.retain(|e| !e.as_str().is_some_and(|e| NEWER_EVENTS.contains(&e)));
            }
            m.values_mut().for_each(drop_events_newer_than_the_schemas);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_events_newer_than_the_schemas),
        _ => {}
    }
}
