//! Git smart HTTP: real `git clone` and `git push` with an installation token, refused without
//! one, scoped per repository, and branch protection on the default branch.

use std::path::Path;

use crate::common::{TEST_TIMEOUT, start};
use serde_json::json;

async fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("git")
        .args(["-c", "credential.helper=", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .await
        .expect("git runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn with_token(url: &str, token: &str) -> String {
    url.replacen("http://", &format!("http://x-access-token:{token}@"), 1)
}

#[tokio::test]
async fn clone_and_push_with_a_token() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
        s.sim.create_repo("acme", "gadgets", &[]).unwrap();
        let work = tempfile::tempdir().unwrap();
        let url = s.sim.clone_url("acme/widgets");

        // Without a token: refused.
        let (ok, out) = git(work.path(), &["clone", &url, "anon"]).await;
        assert!(!ok, "anonymous clone must fail: {out}");

        let token = s.token("acme").await;
        let (ok, out) = git(work.path(), &["clone", &with_token(&url, &token), "w"]).await;
        assert!(ok, "{out}");
        let w = work.path().join("w");
        assert_eq!(std::fs::read_to_string(w.join("README.md")).unwrap(), "hello\n");

        std::fs::write(w.join("fix.txt"), "fixed\n").unwrap();
        assert!(git(&w, &["add", "."]).await.0);
        assert!(git(&w, &["commit", "-m", "Fix"]).await.0);
        let (ok, out) = git(&w, &["push", "origin", "HEAD:refs/heads/foreman/issue-1"]).await;
        assert!(ok, "{out}");
        let bare = s.sim.git_dir("acme/widgets").unwrap();
        let (ok, _) = git(&bare, &["rev-parse", "--verify", "refs/heads/foreman/issue-1"]).await;
        assert!(ok, "the branch reached the bare repository");

        // Branch protection on the default branch.
        s.sim.set_protected("acme/widgets", true).unwrap();
        let (ok, out) = git(&w, &["push", "origin", "HEAD:refs/heads/main"]).await;
        assert!(!ok, "push to protected main must fail");
        assert!(out.contains("GH006"), "{out}");
        s.sim.set_protected("acme/widgets", false).unwrap();
        let (ok, out) = git(&w, &["push", "origin", "HEAD:refs/heads/main"]).await;
        assert!(ok, "{out}");

        // A token for one repository is refused on another.
        let scoped = s.token_with("acme", json!({"repositories": ["gadgets"]})).await;
        let (ok, _) = git(work.path(), &["clone", &with_token(&url, &scoped), "scoped"]).await;
        assert!(!ok, "a token scoped to gadgets cannot clone widgets");
        let (ok, out) = git(work.path(), &["clone", &with_token(&s.sim.clone_url("acme/gadgets"), &scoped), "g"]).await;
        assert!(ok, "{out}");

        // A read-only token can fetch but not push.
        let read = s.token_with("acme", json!({"permissions": {"contents": "read"}})).await;
        assert!(git(&w, &["remote", "set-url", "origin", &with_token(&url, &read)]).await.0);
        assert!(git(&w, &["fetch", "origin"]).await.0);
        let (ok, _) = git(&w, &["push", "origin", "HEAD:refs/heads/other"]).await;
        assert!(!ok, "a read-only token cannot push");

        let log = s.sim.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().contains(".git/"))
            .count();
        assert!(log > 0, "git requests are logged");
    })
    .await
    .expect("timed out");
}
