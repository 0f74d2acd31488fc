//! Sub-issues: the REST endpoints (by database id, not number), their refusals, `sub_issues_summary`, the
//! control API, and `sub_issues` webhooks whose payloads validate against the OpenAPI description's
//! `x-webhooks` schemas.

use std::time::Duration;

use crate::common::{TEST_TIMEOUT, receiver, start_with};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn sub_issues_are_added_listed_ordered_and_removed_with_webhooks_that_validate() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(200).await;
        let url = rx.url.clone();
        let s = start_with(|c| c.webhook_url = Some(url)).await;
        let sim = &s.sim;
        sim.create_user("alice", github_sim::Permission::Write, "User");
        sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        sim.create_repo("acme", "gadgets", &[("README.md", "hi\n")]).unwrap();
        let (parent, _) = sim.create_issue("acme/widgets", "Epic", "the spec", "alice").unwrap();
        let (a, _) = sim.create_issue("acme/widgets", "A", "", "alice").unwrap();
        let (b, _) = sim.create_issue("acme/widgets", "B", "", "alice").unwrap();
        let (c, _) = sim.create_issue("acme/gadgets", "C", "", "alice").unwrap();
        let t = s.token("acme").await;
        let get = |path: String| {
            let (s, t) = (&s, &t);
            async move { s.call(Method::GET, t, &path, None).await.json::<Value>().await.unwrap() }
        };
        let id = |v: &Value| v["id"].as_u64().unwrap();
        let issue_a = get(format!("/repos/acme/widgets/issues/{a}")).await;
        let issue_b = get(format!("/repos/acme/widgets/issues/{b}")).await;
        let issue_c = get(format!("/repos/acme/gadgets/issues/{c}")).await;

        // Added by database id, through the API (the bot) and the control API (a person, cross-repository).
        let path = format!("/repos/acme/widgets/issues/{parent}/sub_issues");
        let r = s.call(Method::POST, &t, &path, Some(json!({"sub_issue_id": id(&issue_a)}))).await;
        assert_eq!(r.status(), 201);
        assert!(r.headers().contains_key("location"));
        let added: Value = r.json().await.unwrap();
        assert_eq!(added["number"], a);
        let r = s.call(Method::POST, &t, &path, Some(json!({"sub_issue_id": id(&issue_b)}))).await;
        assert_eq!(r.status(), 201);
        sim.add_sub_issue("acme/widgets", parent, "acme/gadgets", c, "alice").unwrap();

        // Refusals: the same again, the issue itself, a cycle, a number where the id belongs.
        let again = s.call(Method::POST, &t, &path, Some(json!({"sub_issue_id": id(&issue_a)}))).await;
        assert_eq!(again.status(), 422);
        let parent_issue = get(format!("/repos/acme/widgets/issues/{parent}")).await;
        let own = s.call(Method::POST, &t, &path, Some(json!({"sub_issue_id": id(&parent_issue)}))).await;
        assert_eq!(own.status(), 422);
        let below = format!("/repos/acme/widgets/issues/{a}/sub_issues");
        let cycle = s.call(Method::POST, &t, &below, Some(json!({"sub_issue_id": id(&parent_issue)}))).await;
        assert_eq!(cycle.status(), 422);
        let by_number = s.call(Method::POST, &t, &below, Some(json!({"sub_issue_id": b}))).await;
        assert_eq!(by_number.status(), 422, "a number is not a database id");
        // Another parent needs replace_parent.
        let other = s.call(Method::POST, &t, &below, Some(json!({"sub_issue_id": id(&issue_b)}))).await;
        assert_eq!(other.status(), 422);

        let numbers =
            |list: &Value| list.as_array().unwrap().iter().map(|i| i["number"].as_u64().unwrap()).collect::<Vec<_>>();
        let list = get(path.clone()).await;
        assert_eq!(numbers(&list), vec![a, b, c]);
        // Priority: A after C.
        let r = s
            .call(
                Method::PATCH,
                &t,
                &format!("{path}/priority"),
                Some(json!({"sub_issue_id": id(&issue_a), "after_id": id(&issue_c)})),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(numbers(&get(path.clone()).await), vec![b, c, a]);

        // The summary counts closed ones; a sub-issue names its parent.
        sim.set_issue_state("acme/widgets", b, "closed", "alice").unwrap();
        let parent_issue = get(format!("/repos/acme/widgets/issues/{parent}")).await;
        assert_eq!(parent_issue["sub_issues_summary"], json!({"total": 3, "completed": 1, "percent_completed": 33}));
        let issue_a = get(format!("/repos/acme/widgets/issues/{a}")).await;
        assert!(issue_a["parent_issue_url"].as_str().unwrap().ends_with(&format!("/issues/{parent}")));

        // Removed: through the API, and by a person.
        let r = s
            .call(
                Method::DELETE,
                &t,
                &format!("/repos/acme/widgets/issues/{parent}/sub_issue"),
                Some(json!({"sub_issue_id": id(&issue_a)})),
            )
            .await;
        assert_eq!(r.status(), 200);
        sim.remove_sub_issue("acme/widgets", parent, "acme/gadgets", c, "alice").unwrap();
        assert_eq!(numbers(&get(path.clone()).await), vec![b]);
        assert_eq!(sim.sub_issues("acme/widgets", parent), vec![("acme/widgets".to_string(), b)]);
        let gone = s
            .call(
                Method::DELETE,
                &t,
                &format!("/repos/acme/widgets/issues/{parent}/sub_issue"),
                Some(json!({"sub_issue_id": id(&issue_a)})),
            )
            .await;
        assert_eq!(gone.status(), 404);
        assert!(sim.state()["nonconforming"].as_array().unwrap().is_empty(), "{}", sim.state()["nonconforming"]);

        // Webhooks: each change both ways, validated against x-webhooks; answers against `issue`.
        for v in [&issue_a, &issue_b, &issue_c, &parent_issue, &added] {
            github_sim::validate_schema("issue", v).unwrap();
        }
        let subs: Vec<Value> = sim.deliveries().into_iter().filter(|d| d["event"] == "sub_issues").collect();
        let actions: Vec<String> = subs.iter().map(|d| d["action"].as_str().unwrap().to_string()).collect();
        assert_eq!(
            actions,
            [
                "sub_issue_added",
                "parent_issue_added",
                "sub_issue_added",
                "parent_issue_added",
                "sub_issue_added",
                "parent_issue_added",
                "sub_issue_removed",
                "parent_issue_removed",
                "sub_issue_removed",
                "parent_issue_removed",
            ]
        );
        for d in &subs {
            let action = d["action"].as_str().unwrap();
            github_sim::validate_webhook("sub_issues", action, &d["payload"])
                .unwrap_or_else(|e| panic!("{action}: {e}"));
        }
        // The person's link to the other repository is announced on each side.
        let cross = &subs[5];
        assert_eq!(cross["payload"]["repository"]["full_name"], "acme/gadgets");
        assert_eq!(cross["payload"]["sender"]["login"], "alice");
        assert_eq!(subs[0]["payload"]["sender"]["login"], sim.bot_login());
        assert!(sim.wait_deliveries(subs.len() as u64, Duration::from_secs(10)).await);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_held_answer_is_carried_out_before_it_is_sent() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start_with(|_| {}).await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        let t = s.token("acme").await;
        s.sim.hold_answer("POST", "/issues", 1);
        let first = s.call(Method::POST, &t, "/repos/acme/widgets/issues", Some(json!({"title": "one"}))).await;
        assert_eq!(first.status(), 201, "the first goes through");
        let http = s.http.clone();
        let url = s.url("/repos/acme/widgets/issues");
        let t2 = t.clone();
        let second = tokio::spawn(async move {
            http.post(url).header("authorization", format!("token {t2}")).json(&json!({"title": "two"})).send().await
        });
        assert!(s.sim.wait_held(Duration::from_secs(10)).await, "the second is held");
        let state = s.sim.state();
        let titles: Vec<&str> =
            state["repos"][0]["issues"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["one", "two"], "carried out while its answer is held");
        s.sim.release_hold();
        assert_eq!(second.await.unwrap().unwrap().status(), 201);
        assert_eq!(s.sim.held(), 0);
    })
    .await
    .expect("in time");
}
