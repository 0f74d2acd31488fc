//! Pushing a session's branch: real git over real HTTP to github-sim with an installation token.
//!
//! Proves the push invariants: only `foreman/` branches, never the default branch (refused before any
//! network call), never over commits Foreman did not make (`--force-with-lease`), tokens scoped to
//! another repository refused, and the token absent from every error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use foreman::ids::{IssueNumber, RepoName};
use foreman::report::push::{DEFAULT_PREFIX, PushError, PushRequest, Pusher, remote_tracking};
use foreman::session::workspace::{self, GitAuth, Start, Workspace, WorkspaceRequest, Workspaces, reclaim};
use github_sim::{GithubSim, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Every test's upper bound (git over loopback takes well under a second per call).
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const BRANCH: &str = "foreman/1-fix-it";

/// A test-side git (a human's clone), never std::process: the simulator shares this runtime.
async fn git(dir: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("git")
        .args(["-c", "credential.helper=", "-c", "user.name=Someone", "-c", "user.email=someone@example.invalid"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .await
        .expect("git runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "git {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Takes the session clone at `path` into `mirror` as the end of a session does (`BRANCH`, from `main`).
async fn take(path: &Path, mirror: &Path) {
    let ws = Workspace {
        path: path.to_owned(),
        branch: BRANCH.into(),
        base_commit: String::new(),
        mirror: mirror.to_owned(),
    };
    reclaim(&ws.path, &ws.mirror).expect("reclaim");
    workspace::take(&ws).await.expect("take");
}

struct World {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    pusher: Pusher,
    token: String,
    url: String,
}

async fn token(sim: &SimHandle, account: &str, body: Value) -> String {
    let id = sim.installation_id(account);
    let r = reqwest::Client::new()
        .post(format!("{}/app/installations/{id}/access_tokens", sim.url()))
        .bearer_auth(sim.app_jwt())
        .header("accept", "application/vnd.github+json")
        .json(&body)
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.expect("sim starts");
    sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
    sim.create_repo("acme", "gadgets", &[("README.md", "other\n")]).unwrap();
    let token = token(&sim, "acme", json!({})).await;
    let pusher = Pusher::new(DEFAULT_PREFIX).unwrap();
    let url = sim.clone_url("acme/widgets");
    World { sim, _dir: dir, pusher, token, url }
}

impl World {
    fn auth(&self) -> GitAuth {
        GitAuth::installation_token(SecretString::from(self.token.clone()))
    }

    /// A session-like clone on `BRANCH` from `main`, with one commit writing `file`, taken into the mirror
    /// as a session's end does.
    async fn session_commit(&self, file: &str) -> (PathBuf, PathBuf) {
        // Each call is a session of its own that leaves its clone behind (as after a crash): a new
        // `Workspaces`, as a new process would have, reuses it.
        let workspaces = Workspaces::new(&self._dir.path().join("data"), 0).unwrap();
        let ws = workspaces
            .prepare(&WorkspaceRequest {
                repo: RepoName::new("acme", "widgets").unwrap(),
                issue: IssueNumber(1),
                remote_url: self.url.clone(),
                auth: Some(self.auth()),
                branch: BRANCH.into(),
                start: Start::DefaultBranch("main".into()),
            })
            .await
            .expect("workspace");
        std::fs::write(ws.path.join(file), "fixed\n").unwrap();
        git(&ws.path, &["add", "."]).await;
        git(&ws.path, &["commit", "-q", "-m", &format!("Write {file}")]).await;
        take(&ws.path, &ws.mirror).await;
        (ws.path, ws.mirror)
    }

    async fn push(&self, git_dir: &Path, branch: &str, expected: Option<&str>) -> Result<String, PushError> {
        let auth = self.auth();
        let req = PushRequest {
            git_dir,
            remote_url: &self.url,
            branch,
            default_branch: "main",
            expected_remote: expected,
            auth: &auth,
        };
        self.pusher.push(&req).await.map(|p| p.sha)
    }

    /// The branch's commit in the simulator's bare repository, if it exists.
    async fn remote_sha(&self, branch: &str) -> Option<String> {
        let bare = self.sim.git_dir("acme/widgets").unwrap();
        let out = tokio::process::Command::new("git")
            .arg("-C")
            .arg(bare)
            .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")])
            .output()
            .await
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn git_requests(&self) -> usize {
        self.sim.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap_or("").contains(".git/"))
            .count()
    }
}

#[tokio::test]
async fn a_session_commit_reaches_a_foreman_branch_and_foreman_may_replace_its_own_push() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        let (worktree, mirror) = w.session_commit("fix.txt").await;
        let sha = w.push(&mirror, BRANCH, None).await.expect("first push");
        assert_eq!(w.remote_sha(BRANCH).await.as_deref(), Some(sha.as_str()));
        assert_eq!(remote_tracking(&mirror, BRANCH).await.as_deref(), Some(sha.as_str()));

        // A fresh clone sees the file on the branch.
        let clone = tempfile::tempdir().unwrap();
        let authed = w.url.replacen("http://", &format!("http://x-access-token:{}@", w.token), 1);
        git(clone.path(), &["clone", "-q", "--branch", BRANCH, &authed, "c"]).await;
        assert_eq!(std::fs::read_to_string(clone.path().join("c/fix.txt")).unwrap(), "fixed\n");

        // Pushing the same commit again is a no-op success (a retry after a crash).
        assert_eq!(w.push(&mirror, BRANCH, Some(&sha)).await.expect("again"), sha);

        // A retry's session starts again from main: Foreman may replace its own earlier push.
        drop(worktree);
        let (_, mirror) = w.session_commit("other.txt").await;
        let expected = remote_tracking(&mirror, BRANCH).await;
        assert_eq!(expected.as_deref(), Some(sha.as_str()));
        let second = w.push(&mirror, BRANCH, expected.as_deref()).await.expect("replaces its own push");
        assert_ne!(second, sha);
        assert_eq!(w.remote_sha(BRANCH).await, Some(second));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn the_default_branch_and_other_branches_are_refused_before_any_network_call() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        let (worktree, mirror) = w.session_commit("fix.txt").await;
        git(&worktree, &["branch", "-f", "main", "HEAD"]).await;
        git(&worktree, &["branch", "-f", "develop", "HEAD"]).await;
        let main_before = w.remote_sha("main").await.expect("main exists");
        let before = w.git_requests();

        assert_eq!(w.push(&mirror, "main", None).await, Err(PushError::DefaultBranch { branch: "main".into() }));
        for bad in ["develop", "foreman/a:refs/heads/main", "foreman/", "refs/heads/main"] {
            let err = w.push(&mirror, bad, None).await.unwrap_err();
            assert!(matches!(err, PushError::NotForemanBranch { .. }), "{bad}: {err}");
        }
        let with_creds = w.url.replacen("http://", &format!("http://x-access-token:{}@", w.token), 1);
        let auth = w.auth();
        let req = PushRequest {
            git_dir: &mirror,
            remote_url: &with_creds,
            branch: BRANCH,
            default_branch: "main",
            expected_remote: None,
            auth: &auth,
        };
        assert_eq!(w.pusher.push(&req).await, Err(PushError::CredentialsInUrl));

        assert_eq!(w.git_requests(), before, "no git request reached the simulator");
        assert_eq!(w.remote_sha("main").await, Some(main_before));
        assert_eq!(w.remote_sha(BRANCH).await, None);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn someone_elses_commit_on_the_branch_makes_the_push_fail_as_diverged_and_stays() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        let (worktree, mirror) = w.session_commit("fix.txt").await;
        let ours = w.push(&mirror, BRANCH, None).await.expect("first push");

        // A human pushes a commit on top of Foreman's branch.
        let clone = tempfile::tempdir().unwrap();
        let authed = w.url.replacen("http://", &format!("http://x-access-token:{}@", w.token), 1);
        git(clone.path(), &["clone", "-q", "--branch", BRANCH, &authed, "h"]).await;
        let h = clone.path().join("h");
        std::fs::write(h.join("human.txt"), "mine\n").unwrap();
        git(&h, &["add", "."]).await;
        git(&h, &["commit", "-q", "-m", "A human's change"]).await;
        git(&h, &["push", "-q", "origin", BRANCH]).await;
        let theirs = git(&h, &["rev-parse", "HEAD"]).await;
        assert_eq!(w.remote_sha(BRANCH).await.as_deref(), Some(theirs.as_str()));

        // Foreman's next commit (not on top of theirs), pushed with the lease on what it last pushed.
        std::fs::write(worktree.join("more.txt"), "more\n").unwrap();
        git(&worktree, &["add", "."]).await;
        git(&worktree, &["commit", "-q", "-m", "More"]).await;
        take(&worktree, &mirror).await;
        let err = w.push(&mirror, BRANCH, Some(&ours)).await.unwrap_err();
        assert_eq!(err, PushError::Diverged { branch: BRANCH.into() });
        // Not knowing of a remote branch at all is no licence either.
        let err = w.push(&mirror, BRANCH, None).await.unwrap_err();
        assert_eq!(err, PushError::Diverged { branch: BRANCH.into() });

        assert_eq!(w.remote_sha(BRANCH).await, Some(theirs), "their commit stays");
        assert_eq!(remote_tracking(&mirror, BRANCH).await, Some(ours), "the lease is not moved by a failure");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_token_for_another_repository_is_refused_and_never_shown() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        let (_worktree, mirror) = w.session_commit("fix.txt").await;
        let scoped = token(&w.sim, "acme", json!({"repositories": ["gadgets"]})).await;
        let auth = GitAuth::installation_token(SecretString::from(scoped.clone()));
        let req = PushRequest {
            git_dir: &mirror,
            remote_url: &w.url,
            branch: BRANCH,
            default_branch: "main",
            expected_remote: None,
            auth: &auth,
        };
        let err = w.pusher.push(&req).await.unwrap_err();
        assert!(matches!(err, PushError::Auth { .. }), "{err}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(&scoped), "{text}");
            assert!(!text.contains("ghs_"), "{text}");
        }
        assert_eq!(w.remote_sha(BRANCH).await, None);
        assert_eq!(remote_tracking(&mirror, BRANCH).await, None);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_protected_default_branch_is_never_touched() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        w.sim.set_protected("acme/widgets", true).unwrap();
        let main_before = w.remote_sha("main").await.expect("main exists");
        let (worktree, mirror) = w.session_commit("fix.txt").await;
        git(&worktree, &["branch", "-f", "main", "HEAD"]).await;

        let sha = w.push(&mirror, BRANCH, None).await.expect("foreman branches still push");
        assert_eq!(w.remote_sha(BRANCH).await, Some(sha));
        assert!(matches!(w.push(&mirror, "main", Some(&main_before)).await, Err(PushError::DefaultBranch { .. })));
        assert_eq!(w.remote_sha("main").await, Some(main_before));
        let pushes_to_main = w.sim.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap_or("").ends_with("git-receive-pack"))
            .count();
        assert_eq!(pushes_to_main, 1, "one receive-pack: the foreman branch's");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_branch_foreman_does_not_know_of_is_not_pushed_over_even_as_a_fast_forward() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let w = world().await;
        // Someone creates the branch at main before Foreman pushes: Foreman's commit would fast-forward it,
        // but Foreman never saw that branch, so the lease (`None`: must not exist) refuses.
        let clone = tempfile::tempdir().unwrap();
        let authed = w.url.replacen("http://", &format!("http://x-access-token:{}@", w.token), 1);
        git(clone.path(), &["clone", "-q", &authed, "h"]).await;
        git(&clone.path().join("h"), &["push", "-q", "origin", &format!("HEAD:refs/heads/{BRANCH}")]).await;
        let theirs = w.remote_sha(BRANCH).await.expect("their branch");

        let (_, mirror) = w.session_commit("fix.txt").await;
        let err = w.push(&mirror, BRANCH, None).await.unwrap_err();
        assert_eq!(err, PushError::Diverged { branch: BRANCH.into() });
        assert_eq!(w.remote_sha(BRANCH).await, Some(theirs.clone()));

        // Once Foreman has fetched it (a follow-up session starts from the existing branch), it may push.
        let sha = w.push(&mirror, BRANCH, Some(&theirs)).await.expect("lease on what it fetched");
        assert_eq!(w.remote_sha(BRANCH).await, Some(sha));
    })
    .await
    .expect("timed out");
}
