//! octocrab, the client Foreman builds on, against the simulator: app auth, installation
//! tokens, and GitHub's models deserialising the simulator's bodies.

use crate::common::{TEST_TIMEOUT, start};
use octocrab::models::{AppId, InstallationId};
use serde_json::{Value, json};

#[tokio::test]
async fn octocrab_speaks_to_the_simulator() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hi\n")]).unwrap();
        s.sim.create_issue("acme/widgets", "Fix it", "broken", "alice").unwrap();
        s.sim.add_label("acme/widgets", 1, "foreman", "alice").unwrap();
        s.sim.comment("acme/widgets", 1, "/foreman run", "alice").unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(s.sim.private_key_pem().as_bytes()).unwrap();
        let app = octocrab::Octocrab::builder()
            .base_uri(s.sim.url())
            .unwrap()
            .app(AppId(s.sim.app_id()), key)
            .build()
            .unwrap();
        let me = app.current().app().await.expect("GET /app as octocrab's App");
        assert_eq!(me.id, AppId(s.sim.app_id()));
        let installs = app.apps().installations().send().await.expect("installations");
        assert_eq!(installs.items.len(), 1);
        let inst_id = s.sim.installation_id("acme");
        let repo_inst = app.apps().get_repository_installation("acme", "widgets").await.expect("repo installation");
        assert_eq!(repo_inst.id, InstallationId(inst_id));

        let inst = app.installation(InstallationId(inst_id)).unwrap();
        let issue = inst.issues("acme", "widgets").get(1).await.expect("issue as octocrab's Issue");
        assert_eq!(issue.title, "Fix it");
        assert_eq!(issue.labels[0].name, "foreman");
        let comments = inst.issues("acme", "widgets").list_comments(1).send().await.expect("comments");
        assert_eq!(comments.items[0].body.as_deref(), Some("/foreman run"));
        let c = inst.issues("acme", "widgets").create_comment(1, "On it.").await.expect("create comment");
        assert_eq!(c.user.login, "foreman[bot]");
        inst.issues("acme", "widgets").add_labels(1, &["foreman:running".to_string()]).await.expect("add labels");
        inst.issues("acme", "widgets").remove_label(1, "foreman").await.expect("remove label");
        let perm = inst.repos("acme", "widgets").get().await.expect("repository");
        assert_eq!(perm.default_branch.as_deref(), Some("main"));
        let pulls = inst.pulls("acme", "widgets").list().head("acme:feature").send().await.expect("pulls");
        assert!(pulls.items.is_empty());
        let content = inst.repos("acme", "widgets").get_content().path("README.md").send().await.expect("contents");
        assert_eq!(content.items[0].decoded_content().as_deref(), Some("hi\n"));
        let v: Value = inst
            .graphql(&json!({"query": "query { repository(owner: \"acme\", name: \"widgets\") { issue(number: 1) { title } } }"}))
            .await
            .expect("graphql");
        // octocrab returns the `data` member.
        assert_eq!(v["repository"]["issue"]["title"], "Fix it", "{v}");
        assert!(s.sim.state()["nonconforming"].as_array().unwrap().is_empty(), "{:#}", s.sim.state()["nonconforming"]);
    })
    .await
    .expect("timed out");
}
