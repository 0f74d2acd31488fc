//! Issue dependencies: GitHub's `…/dependencies/blocked_by` and `…/dependencies/blocking` routes,
//! `issue_dependencies_summary` on issues, the `issue_dependencies` webhooks (validated against the
//! OpenAPI description's `x-webhooks` schemas), the control API's add, remove and merge.

use crate::common::{TEST_TIMEOUT, receiver, start_with};
use github_sim::Permission;
use reqwest::Method;
use serde_json::{Value, json};

fn numbers(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let repo = i["repository_url"].as_str().unwrap().rsplitn(3, '/').take(2).collect::<Vec<_>>();
            (format!("{}/{}", repo[1], repo[0]), i["number"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn blocked_by_links_are_added_listed_summarised_removed_and_announced() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(200).await;
        let url = rx.url.clone();
        let s = start_with(|c| c.webhook_url = Some(url)).await;
        s.sim.create_user("alice", Permission::Write, "User");
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        s.sim.create_repo("acme", "gadgets", &[]).unwrap();
        let (a, _) = s.sim.create_issue("acme/widgets", "Blocker", "", "alice").unwrap();
        let (b, _) = s.sim.create_issue("acme/widgets", "Dependent", "", "alice").unwrap();
        let (x, _) = s.sim.create_issue("acme/gadgets", "Elsewhere", "", "alice").unwrap();
        let a_id = s.sim.issue_id("acme/widgets", a).unwrap();
        let x_id = s.sim.issue_id("acme/gadgets", x).unwrap();
        let t = s.token("acme").await;
        let path = format!("/repos/acme/widgets/issues/{b}/dependencies/blocked_by");
        let updated_before = s.call(Method::GET, &t, &format!("/repos/acme/widgets/issues/{b}"), None).await;
        let updated_before = updated_before.json::<Value>().await.unwrap()["updated_at"].clone();

        // The body takes the blocker's database id, not its number: a number is not an issue id.
        let r = s.call(Method::POST, &t, &path, Some(json!({"issue_id": a}))).await;
        assert_eq!(r.status(), 422, "an issue number is not an issue id");
        let r = s.call(Method::POST, &t, &path, Some(json!({"issue_id": a_id}))).await;
        assert_eq!(r.status(), 201);
        assert!(r.headers()["location"].to_str().unwrap().ends_with(&path));
        let blocked: Value = r.json().await.unwrap();
        github_sim::validate_schema("issue", &blocked).unwrap();
        assert_eq!(blocked["number"], b);
        assert_eq!(
            blocked["issue_dependencies_summary"],
            json!({"blocked_by": 1, "total_blocked_by": 1, "blocking": 0, "total_blocking": 0})
        );
        let r = s.call(Method::POST, &t, &path, Some(json!({"issue_id": a_id}))).await;
        assert_eq!(r.status(), 422, "the same link twice");
        // A blocker in another repository, added as a person would through the control API.
        let r = s
            .http
            .post(s.url(&format!("/_sim{path}")))
            .json(&json!({"repo": "acme/gadgets", "issue": x, "user": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);

        let r = s.call(Method::GET, &t, &path, None).await;
        assert_eq!(r.status(), 200);
        let list: Value = r.json().await.unwrap();
        assert_eq!(numbers(&list), vec![("acme/widgets".to_string(), a), ("acme/gadgets".to_string(), x)]);
        let r = s.call(Method::GET, &t, &format!("/repos/acme/widgets/issues/{a}/dependencies/blocking"), None).await;
        assert_eq!(numbers(&r.json().await.unwrap()), vec![("acme/widgets".to_string(), b)]);
        let r = s.call(Method::GET, &t, &format!("/repos/acme/gadgets/issues/{x}"), None).await;
        let xv: Value = r.json().await.unwrap();
        assert_eq!(xv["issue_dependencies_summary"]["total_blocking"], 1);

        // A closed blocker still counts in the totals, not in the open counts.
        s.sim.set_issue_state("acme/widgets", a, "closed", "alice").unwrap();
        let r = s.call(Method::GET, &t, &format!("/repos/acme/widgets/issues/{b}"), None).await;
        let bv: Value = r.json().await.unwrap();
        assert_eq!(
            bv["issue_dependencies_summary"],
            json!({"blocked_by": 1, "total_blocked_by": 2, "blocking": 0, "total_blocking": 0})
        );
        assert_eq!(bv["updated_at"], updated_before, "a dependency does not change the issue's updated_at");

        let r = s.call(Method::DELETE, &t, &format!("{path}/{x_id}"), None).await;
        assert_eq!(r.status(), 200);
        let r = s.call(Method::DELETE, &t, &format!("{path}/{x_id}"), None).await;
        assert_eq!(r.status(), 404, "no such link any more");
        s.sim.remove_blocked_by("acme/widgets", b, "acme/widgets", a, "alice").unwrap();
        assert!(s.sim.blocked_by("acme/widgets", b).is_empty());
        let r = s.call(Method::GET, &t, &path, None).await;
        assert_eq!(r.json::<Value>().await.unwrap(), json!([]));

        // Every request conformed to GitHub's description.
        let state = s.sim.state();
        assert_eq!(state["nonconforming"], json!([]), "{:#}", state["nonconforming"]);

        // Two deliveries per change, one from each side, each valid against its x-webhooks schema.
        let expected = [
            ("blocked_by_added", "acme/widgets", a),
            ("blocking_added", "acme/widgets", a),
            ("blocked_by_added", "acme/widgets", x),
            ("blocking_added", "acme/gadgets", x),
            ("blocked_by_removed", "acme/widgets", x),
            ("blocking_removed", "acme/gadgets", x),
            ("blocked_by_removed", "acme/widgets", a),
            ("blocking_removed", "acme/widgets", a),
        ];
        let deliveries: Vec<Value> =
            s.sim.deliveries().into_iter().filter(|d| d["event"] == "issue_dependencies").collect();
        assert_eq!(deliveries.len(), expected.len());
        for (d, (action, repo, blocker)) in deliveries.iter().zip(expected) {
            let p = &d["payload"];
            assert_eq!(d["action"], action);
            github_sim::validate_webhook("issue_dependencies", action, p).unwrap_or_else(|e| panic!("{action}: {e}"));
            assert_eq!(p["repository"]["full_name"], repo, "{action}");
            assert_eq!(p["blocked_issue"]["number"], b);
            assert_eq!(p["blocking_issue"]["number"], blocker);
            assert_eq!(p["blocked_issue_id"], p["blocked_issue"]["id"]);
            assert_eq!(p["blocking_issue_id"], p["blocking_issue"]["id"]);
            let other = if action.starts_with("blocked_by") { "blocking_issue_repo" } else { "blocked_issue_repo" };
            assert!(p[other]["full_name"].is_string(), "{action} names the other side's repository");
        }
        assert_eq!(deliveries[0]["payload"]["sender"]["login"], "foreman[bot]");
        assert_eq!(deliveries[2]["payload"]["sender"]["login"], "alice");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn merging_a_pull_request_closes_the_issues_it_names() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start_with(|_| {}).await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        let (a, _) = s.sim.create_issue("acme/widgets", "Blocker", "", "alice").unwrap();
        let (other, _) = s.sim.create_issue("acme/widgets", "Unrelated", "", "alice").unwrap();
        s.sim.push_file("acme/widgets", "x.txt", "x\n", "alice").unwrap();
        let git = s.sim.git_dir("acme/widgets").unwrap();
        let ok = std::process::Command::new("git")
            .args(["--git-dir", git.to_str().unwrap(), "branch", "-f", "fix", "main"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let ok = std::process::Command::new("git")
            .args(["--git-dir", git.to_str().unwrap(), "update-ref", "refs/heads/main", "main~1"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let r = s
            .http
            .post(s.url("/_sim/repos/acme/widgets/pulls"))
            .json(
                &json!({"head": "fix", "base": "main", "title": "Fix", "body": format!("Closes #{a}"), "user": "bob"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let pr = r.json::<Value>().await.unwrap()["number"].as_u64().unwrap();
        let r = s
            .http
            .post(s.url(&format!("/_sim/repos/acme/widgets/pulls/{pr}/merge")))
            .json(&json!({"user": "carol"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["merged"].clone(), v["state"].clone()), (json!(true), json!("closed")));
        let state = s.sim.state();
        let issues = &state["repos"][0]["issues"];
        let st = |n: u64| issues.as_array().unwrap().iter().find(|i| i["number"] == n).unwrap()["state"].clone();
        assert_eq!(st(a), "closed");
        assert_eq!(st(other), "open");
        let closed: Vec<Value> = s
            .sim
            .deliveries()
            .into_iter()
            .filter(|d| d["action"] == "closed")
            .map(|d| json!([d["event"], d["payload"]["pull_request"]["merged"], d["payload"]["issue"]["number"]]))
            .collect();
        assert_eq!(closed, vec![json!(["pull_request", true, null]), json!(["issues", null, a])]);
    })
    .await
    .expect("test timed out");
}
