//! The GitHub client against github-sim over real HTTP on loopback: every operation's happy path and typed
//! errors, token refresh, repository scoping, rate limits, and injected faults that must neither lose nor
//! duplicate anything.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use foreman::github::*;
use foreman::ids::{InstallationId, IssueNumber, RepoName, UserId};
use github_sim::{Faults, GithubSim, Permission as SimPermission, SimConfig, SimHandle};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);
const MARKER: &str = "<!-- foreman:tracking -->";

mod client_support;
use client_support::fast;

struct World {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    client: Client,
    inst: InstallationId,
    repo: RepoName,
}

async fn world_with(config: impl FnOnce(&mut SimConfig), options: ClientOptions) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("sim"));
    config(&mut cfg);
    let sim = GithubSim::start(cfg).await.unwrap();
    sim.create_repo("acme", "widgets", &[("README.md", "hello\n"), ("docs/constitution.md", "Be kind.\n")]).unwrap();
    sim.create_user("alice", SimPermission::Write, "User");
    sim.create_user("rita", SimPermission::Read, "User");
    let inst = InstallationId(sim.installation_id("acme"));
    let key = SecretString::from(sim.private_key_pem().to_owned());
    let client = Client::new(sim.app_id(), &key, sim.url(), options).unwrap();
    World { _dir: dir, sim, client, inst, repo: "acme/widgets".parse().unwrap() }
}

async fn world() -> World {
    world_with(|_| {}, fast()).await
}

fn issue(w: &World, title: &str) -> IssueNumber {
    IssueNumber(w.sim.create_issue("acme/widgets", title, "please", "alice").unwrap().0)
}

fn state_issue(w: &World, number: IssueNumber) -> Value {
    let state = w.sim.state();
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap().clone();
    repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == number.0).unwrap().clone()
}

fn requests(w: &World) -> Vec<Value> {
    w.sim.state()["requests"].as_array().unwrap().clone()
}

fn label(name: &str) -> LabelSpec {
    LabelSpec { name: name.into(), color: "5319e7".into(), description: format!("{name} (Foreman)") }
}

/// git that never prompts for credentials.
fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir).env("GIT_TERMINAL_PROMPT", "0").env("GIT_CONFIG_NOSYSTEM", "1");
    c
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Pushes a branch with one commit, authenticating with `token`; returns the commit.
fn push_branch(w: &World, repo: &str, token: &SecretString, branch: &str) -> Result<String, String> {
    let work = tempfile::tempdir().unwrap();
    let url =
        w.sim.clone_url(repo).replacen("http://", &format!("http://x-access-token:{}@", token.expose_secret()), 1);
    let clone = git_cmd(work.path()).args(["clone", "-q", &url, "."]).output().unwrap();
    if !clone.status.success() {
        return Err(String::from_utf8_lossy(&clone.stderr).into_owned());
    }
    git(work.path(), &["checkout", "-q", "-b", branch]);
    std::fs::write(work.path().join("change.txt"), "a change\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["-c", "user.name=Foreman", "-c", "user.email=f@example.com", "commit", "-q", "-m", "change"]);
    let push = git_cmd(work.path()).args(["push", "-q", "origin", branch]).output().unwrap();
    if !push.status.success() {
        return Err(String::from_utf8_lossy(&push.stderr).into_owned());
    }
    Ok(git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issues_comments_labels_and_reactions() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let n = issue(&w, "Paginate me");
        for i in 0..105 {
            w.sim.comment("acme/widgets", n.0, &format!("comment {i}"), "alice").unwrap();
        }
        // A person quoting the marker does not capture Foreman's comment.
        w.sim.comment("acme/widgets", n.0, &format!("quoting {MARKER}"), "alice").unwrap();

        let thread = w.client.issue_thread(w.inst, &w.repo, n).await.unwrap();
        assert_eq!(thread.issue.title, "Paginate me");
        assert_eq!(thread.comments.len(), 106, "every page is read");
        assert_eq!(thread.comments[0].body, "comment 0");

        assert!(w.client.find_marked_comment(w.inst, &w.repo, n, MARKER).await.unwrap().is_none());
        let first = w.client.upsert_marked_comment(w.inst, &w.repo, n, MARKER, "Working on it").await.unwrap();
        assert!(first.body.contains(MARKER));
        let again = w.client.upsert_marked_comment(w.inst, &w.repo, n, MARKER, "Done").await.unwrap();
        assert_eq!(first.id, again.id, "updated in place");
        let found = w.client.find_marked_comment(w.inst, &w.repo, n, MARKER).await.unwrap().unwrap();
        assert!(found.body.starts_with("Done"));
        let ours: Vec<_> = state_issue(&w, n)["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["body"].as_str().unwrap().starts_with("Done") || c["body"].as_str().unwrap().starts_with("Working")
            })
            .cloned()
            .collect();
        assert_eq!(ours.len(), 1, "{ours:?}");

        w.client.react_to_comment(w.inst, &w.repo, thread.comments[0].id, Reaction::Eyes).await.unwrap();
        w.client.react_to_comment(w.inst, &w.repo, thread.comments[0].id, Reaction::Eyes).await.unwrap();
        w.client.react_to_issue(w.inst, &w.repo, n, Reaction::Rocket).await.unwrap();

        let labels =
            w.client.add_labels(w.inst, &w.repo, n, &[label("foreman"), label("foreman:running")]).await.unwrap();
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert!(names.contains(&"foreman") && names.contains(&"foreman:running"), "{names:?}");
        let created = labels.iter().find(|l| l.name == "foreman").unwrap();
        assert_eq!(created.color, "5319e7", "a missing label is created with Foreman's colour");
        w.client.add_labels(w.inst, &w.repo, n, &[label("foreman")]).await.unwrap();
        assert!(!w.client.ensure_label(w.inst, &w.repo, &label("foreman")).await.unwrap(), "exists already");
        assert!(w.client.remove_label(w.inst, &w.repo, n, "foreman:running").await.unwrap());
        assert!(!w.client.remove_label(w.inst, &w.repo, n, "foreman:running").await.unwrap(), "already gone");
        let state = state_issue(&w, n);
        assert_eq!(state["labels"], serde_json::json!(["foreman"]), "{state}");

        // Typed errors the caller can match.
        let missing = w.client.issue(w.inst, &w.repo, IssueNumber(9999)).await.unwrap_err();
        assert!(matches!(missing, GithubError::NotFound { .. }), "{missing:?}");
        let nowhere: RepoName = "acme/nowhere".parse().unwrap();
        assert!(w.client.issue_comments(w.inst, &nowhere, n).await.unwrap_err().is_not_found());
        let bad = w.client.create_comment(w.inst, &w.repo, IssueNumber(9999), "x").await.unwrap_err();
        assert!(matches!(bad, GithubError::NotFound { .. }), "{bad:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permissions_files_and_installations() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let users = w.sim.state()["users"].as_array().unwrap().clone();
        let id_of = |login: &str| UserId(users.iter().find(|u| u["login"] == login).unwrap()["id"].as_u64().unwrap());
        let alice = id_of("alice");
        assert_eq!(w.client.collaborator_permission(w.inst, &w.repo, alice, "alice").await.unwrap(), Permission::Write);
        assert_eq!(
            w.client.collaborator_permission(w.inst, &w.repo, id_of("rita"), "rita").await.unwrap(),
            Permission::Read
        );
        let asked =
            |w: &World| requests(w).iter().filter(|r| r["path"].as_str().unwrap().contains("/permission")).count();
        let before = asked(&w);
        assert_eq!(w.client.collaborator_permission(w.inst, &w.repo, alice, "alice").await.unwrap(), Permission::Write);
        assert_eq!(asked(&w), before, "served from the cache by user id");

        let text = w.client.file_on_default_branch(w.inst, &w.repo, "docs/constitution.md").await.unwrap();
        assert_eq!(text.as_deref(), Some("Be kind.\n"));
        let again = w.client.file_on_default_branch(w.inst, &w.repo, "docs/constitution.md").await.unwrap();
        assert_eq!(again.as_deref(), Some("Be kind.\n"));
        let statuses: Vec<u64> = requests(&w)
            .iter()
            .filter(|r| r["path"].as_str().unwrap().contains("/contents/"))
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [200, 304], "the second read is a free 304 served from the cache");
        assert_eq!(w.client.file_on_default_branch(w.inst, &w.repo, "nope.md").await.unwrap(), None);

        let installations = w.client.installations().await.unwrap();
        assert!(installations.iter().any(|i| i.id == w.inst && i.account.login == "acme"), "{installations:?}");
        let repos = w.client.installation_repositories(w.inst).await.unwrap();
        assert!(repos.iter().any(|r| r.full_name == w.repo), "{repos:?}");
        assert!(w.client.quota(w.inst).is_some(), "rate-limit headers are recorded");
        assert!(w.client.quota_ok(w.inst));
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pulls_and_check_runs() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let token = w.client.session_token(w.inst, &w.repo).await.unwrap();
        let sha = push_branch(&w, "acme/widgets", &token.token, "foreman/issue-1").unwrap();

        assert!(w.client.pulls_by_head(w.inst, &w.repo, "foreman/issue-1").await.unwrap().is_empty());
        let pull = NewPullRequest {
            title: "Fix #1".into(),
            head: "foreman/issue-1".into(),
            base: "main".into(),
            body: "Closes #1".into(),
            draft: false,
        };
        let first = w.client.upsert_pull(w.inst, &w.repo, &pull).await.unwrap();
        let second = w
            .client
            .upsert_pull(w.inst, &w.repo, &NewPullRequest { body: "Closes #1\n\nUpdated".into(), ..pull.clone() })
            .await
            .unwrap();
        assert_eq!(first.number, second.number);
        assert_eq!(second.body.as_deref(), Some("Closes #1\n\nUpdated"));
        let found = w.client.pulls_by_head(w.inst, &w.repo, "foreman/issue-1").await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].head.branch, "foreman/issue-1");
        let dup = w.client.create_pull(w.inst, &w.repo, &pull).await.unwrap_err();
        assert!(
            matches!(dup, GithubError::Unprocessable { .. }),
            "a second pull request for the head is refused: {dup:?}"
        );
        let closed = w
            .client
            .update_pull(
                w.inst,
                &w.repo,
                first.number,
                &PullRequestUpdate { state: Some("closed".into()), ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(closed.state, "closed");

        let spec = CheckRunSpec {
            name: Some("foreman".into()),
            head_sha: Some(sha.clone()),
            status: Some("in_progress".into()),
            external_id: Some("session-1".into()),
            ..Default::default()
        };
        let run = w.client.create_check_run(w.inst, &w.repo, &spec).await.unwrap();
        assert_eq!((run.status.as_str(), run.head_sha.as_str()), ("in_progress", sha.as_str()));
        let done = CheckRunSpec {
            conclusion: Some("success".into()),
            output: Some(CheckRunOutput { title: "Constitution holds".into(), summary: "All rules checked.".into() }),
            ..Default::default()
        };
        let run = w.client.update_check_run(w.inst, &w.repo, run.id, &done).await.unwrap();
        assert_eq!((run.status.as_str(), run.conclusion.as_deref()), ("completed", Some("success")));
        let missing = w.client.update_check_run(w.inst, &w.repo, 424242, &done).await.unwrap_err();
        assert!(missing.is_not_found(), "{missing:?}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_token_is_refused_on_another_repository() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        w.sim.create_repo("acme", "gadgets", &[("README.md", "other\n")]).unwrap();
        let token = w.client.session_token(w.inst, &w.repo).await.unwrap();
        assert!(token.expires_at > std::time::SystemTime::now());
        let http = reqwest::Client::new();
        let get = |path: &str| {
            http.get(format!("{}{path}", w.sim.url()))
                .bearer_auth(token.token.expose_secret())
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "foreman-test")
                .send()
        };
        assert_eq!(get("/repos/acme/widgets/contents/README.md").await.unwrap().status(), 200);
        let other = get("/repos/acme/gadgets/contents/README.md").await.unwrap().status();
        assert!(other == 404 || other == 403, "the other repository is refused: {other}");
        assert!(push_branch(&w, "acme/widgets", &token.token, "foreman/a").is_ok());
        assert!(push_branch(&w, "acme/gadgets", &token.token, "foreman/b").is_err(), "git refuses it too");
        // The installation's own token still reaches both.
        let gadgets: RepoName = "acme/gadgets".parse().unwrap();
        assert!(w.client.file_on_default_branch(w.inst, &gadgets, "README.md").await.unwrap().is_some());
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_expiring_mid_run_is_refreshed() {
    tokio::time::timeout(LIMIT, async {
        // Tokens live 2 s and the client trusts them to their end, so a run outlives several of them.
        let options = ClientOptions { token_refresh_margin: Duration::ZERO, ..fast() };
        let w = world_with(|c| c.token_ttl = Duration::from_secs(2), options).await;
        let n = issue(&w, "Long run");
        let mints =
            |w: &World| requests(w).iter().filter(|r| r["path"].as_str().unwrap().ends_with("/access_tokens")).count();
        let started = Instant::now();
        while mints(&w) < 3 {
            w.client.issue(w.inst, &w.repo, n).await.expect("every call succeeds across token expiry");
            assert!(started.elapsed() < Duration::from_secs(30), "tokens were replaced as they expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = requests(&w).iter().filter(|r| r["status"] == 401).count();
        assert_eq!(refused, 0, "expired tokens are replaced before use, not after a refusal");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_is_refreshed_once_and_a_second_401_is_an_error() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let n = issue(&w, "Revoked");
        let path = format!("/repos/acme/widgets/issues/{}", n.0);
        let log = |w: &World| -> Vec<(String, u64)> {
            requests(w)
                .iter()
                .filter(|r| r["path"] == path.as_str() || r["path"].as_str().unwrap().ends_with("/access_tokens"))
                .map(|r| (r["path"].as_str().unwrap().to_owned(), r["status"].as_u64().unwrap()))
                .collect()
        };
        let mint = format!("/app/installations/{}/access_tokens", w.inst.0);

        w.client.issue(w.inst, &w.repo, n).await.unwrap();
        assert_eq!(log(&w), [(mint.clone(), 201), (path.clone(), 200)], "one token, minted and cached");

        // The cached token is revoked behind the client's back: one 401, one new token, the call succeeds.
        assert_eq!(w.sim.revoke_tokens(w.inst.0), 1);
        let got = w.client.issue(w.inst, &w.repo, n).await.expect("refreshed after a 401");
        assert_eq!(got.number, n);
        assert_eq!(
            log(&w)[2..],
            [(path.clone(), 401), (mint.clone(), 201), (path.clone(), 200)],
            "refused once, refreshed once, then answered"
        );

        // Every installation-token call now gets 401 (a suspended installation): the fresh token is refused
        // too, and the client gives up with a typed error instead of minting forever.
        w.sim.set_faults(Faults { error_rate: 1.0, kinds: vec!["401".into()], ..Faults::default() });
        let err = w.client.issue(w.inst, &w.repo, n).await.expect_err("a second 401 is not retried");
        assert!(matches!(err, GithubError::Unauthorized { .. }), "{err:?}");
        assert_eq!(
            log(&w)[5..],
            [(path.clone(), 401), (mint.clone(), 201), (path.clone(), 401)],
            "exactly one refresh between the two refusals"
        );

        w.sim.set_faults(Faults::default());
        w.client.issue(w.inst, &w.repo, n).await.expect("the client recovers once GitHub accepts the token again");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_per_installation_are_bounded() {
    tokio::time::timeout(LIMIT, async {
        let options = fast();
        let bound = options.retry.max_concurrent as u64;
        let w = world_with(|_| {}, options).await;
        let n = issue(&w, "Busy");
        // Every call is held 100 ms by the simulator, so unbounded calls would all overlap.
        w.sim.set_faults(Faults {
            error_rate: 1.0,
            kinds: vec!["latency".into()],
            latency_ms: 100,
            ..Faults::default()
        });
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let c = w.client.clone();
                let repo = w.repo.clone();
                let inst = w.inst;
                tokio::spawn(async move { c.issue(inst, &repo, n).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().expect("every call completes");
        }
        let served = requests(&w).iter().filter(|r| r["installation"] == w.inst.0 && r["status"] == 200).count();
        assert_eq!(served, 16);
        let peak = w.sim.max_in_flight(w.inst.0);
        assert!(peak <= bound, "the simulator saw {peak} requests of one installation in flight, bound {bound}");
        assert!(peak > 1, "calls do run concurrently up to the bound (peak {peak})");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_rate_limit_waits_for_reset_and_holds_new_sessions() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let n = issue(&w, "Quota");
        w.client.issue(w.inst, &w.repo, n).await.unwrap();
        assert!(w.client.quota_ok(w.inst));

        // A client that may not wait that long gives up with a typed error, and holds new sessions.
        let key = SecretString::from(w.sim.private_key_pem().to_owned());
        let mut impatient = fast();
        impatient.retry.max_rate_limit_wait = Duration::from_millis(100);
        let impatient = Client::new(w.sim.app_id(), &key, w.sim.url(), impatient).unwrap();
        impatient.issue(w.inst, &w.repo, n).await.unwrap();
        w.sim.exhaust_rate_limit(Duration::from_secs(2));
        let e = impatient.issue(w.inst, &w.repo, n).await.unwrap_err();
        assert!(matches!(e, GithubError::RateLimited { reset: Some(_), .. }), "{e:?}");
        assert!(!impatient.quota_ok(w.inst), "below the threshold, new sessions wait");

        // The patient client waits until x-ratelimit-reset and then succeeds.
        let started = Instant::now();
        w.client.issue(w.inst, &w.repo, n).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500), "waited for the reset: {:?}", started.elapsed());
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_are_listed_and_redelivered() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        issue(&w, "Makes a delivery");
        assert!(w.sim.wait_deliveries(1, Duration::from_secs(10)).await);
        let deliveries = w.client.hook_deliveries(50).await.unwrap();
        let d = deliveries.iter().find(|d| d.event == "issues").expect("the issues delivery is listed");
        w.client.redeliver(d.id).await.unwrap();
        let after = w.client.hook_deliveries(50).await.unwrap();
        assert!(after.iter().any(|x| x.guid == d.guid && x.redelivery), "{after:?}");
        let missing = w.client.redeliver(987_654_321).await.unwrap_err();
        assert!(missing.is_not_found(), "{missing:?}");
    })
    .await
    .expect("bounded");
}

/// Everything a session's report does, run under one fault kind at 20%.
async fn report_under_faults(w: &World, kind: &str, sha: &str) {
    let n = issue(w, &format!("Under {kind}"));
    w.sim.set_faults(Faults { error_rate: 0.2, kinds: vec![kind.into()], latency_ms: 20, ..Faults::default() });
    let c = &w.client;
    let thread = c.issue_thread(w.inst, &w.repo, n).await.unwrap();
    c.react_to_issue(w.inst, &w.repo, n, Reaction::Eyes).await.unwrap();
    c.upsert_marked_comment(w.inst, &w.repo, n, MARKER, "Claimed").await.unwrap();
    c.add_labels(w.inst, &w.repo, n, &[label(&format!("foreman:{kind}")), label("foreman")]).await.unwrap();
    c.upsert_marked_comment(w.inst, &w.repo, n, MARKER, "Running").await.unwrap();
    let head = format!("foreman/base-{kind}");
    let pull = NewPullRequest {
        title: format!("Fix #{n}"),
        head,
        base: "main".into(),
        body: format!("Closes #{n}"),
        draft: false,
    };
    c.upsert_pull(w.inst, &w.repo, &pull).await.unwrap();
    c.upsert_pull(w.inst, &w.repo, &pull).await.unwrap();
    let spec = CheckRunSpec {
        name: Some(format!("foreman {kind}")),
        head_sha: Some(sha.into()),
        status: Some("in_progress".into()),
        external_id: Some(format!("session-{kind}")),
        ..Default::default()
    };
    let run = c.create_check_run(w.inst, &w.repo, &spec).await.unwrap();
    c.update_check_run(
        w.inst,
        &w.repo,
        run.id,
        &CheckRunSpec { conclusion: Some("success".into()), ..Default::default() },
    )
    .await
    .unwrap();
    c.file_on_default_branch(w.inst, &w.repo, "docs/constitution.md").await.unwrap().unwrap();
    c.remove_label(w.inst, &w.repo, n, &format!("foreman:{kind}")).await.unwrap();
    c.upsert_marked_comment(w.inst, &w.repo, n, MARKER, "Done").await.unwrap();
    assert_eq!(thread.issue.number, n);
    w.sim.set_faults(Faults::default());

    let state = state_issue(w, n);
    let marked: Vec<&Value> =
        state["comments"].as_array().unwrap().iter().filter(|c| c["body"].as_str().unwrap().contains(MARKER)).collect();
    assert_eq!(marked.len(), 1, "{kind}: one tracking comment: {marked:?}");
    assert!(marked[0]["body"].as_str().unwrap().starts_with("Done"), "{kind}");
    assert_eq!(state["labels"], serde_json::json!(["foreman"]), "{kind}");
    let repo =
        w.sim.state()["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap().clone();
    let pulls: Vec<&Value> =
        repo["pulls"].as_array().unwrap().iter().filter(|p| p["head"] == pull.head.as_str()).collect();
    assert_eq!(pulls.len(), 1, "{kind}: one pull request");
    let runs: Vec<&Value> = repo["check_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["external_id"] == format!("session-{kind}"))
        .collect();
    assert_eq!(runs.len(), 1, "{kind}: one check run");
    let mut names: Vec<&str> = repo["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let total = names.len();
    names.dedup();
    assert_eq!(names.len(), total, "{kind}: no label twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_percent_faults_of_each_kind_lose_and_duplicate_nothing() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let w = world().await;
        let token = w.client.session_token(w.inst, &w.repo).await.unwrap();
        let kinds = ["500", "502", "429", "secondary", "latency"];
        let mut sha = String::new();
        for kind in kinds {
            sha = push_branch(&w, "acme/widgets", &token.token, &format!("foreman/base-{kind}")).unwrap();
        }
        let before = requests(&w).len();
        for kind in kinds {
            report_under_faults(&w, kind, &sha).await;
        }
        let faulted = requests(&w)[before..]
            .iter()
            .filter(|r| matches!(r["status"].as_u64(), Some(500 | 502 | 429 | 403)))
            .count();
        assert!(faulted >= 5, "faults were injected ({faulted})");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projects_v2_board_items_and_moves() {
    tokio::time::timeout(LIMIT, async {
        let w = world().await;
        let columns = ["Backlog", "Ready", "In progress", "In review", "Done"];
        let (number, _) = w.sim.create_project("acme", "Work", &columns);
        let n = issue(&w, "On the board");
        let m = issue(&w, "Added by Foreman");

        let board = w.client.project(w.inst, "acme", number, "Status").await.unwrap();
        assert_eq!(board.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), columns);
        let graphql_calls = |w: &World| requests(w).iter().filter(|r| r["path"] == "/graphql").count();
        let before = graphql_calls(&w);
        let cached = w.client.project(w.inst, "acme", number, "Status").await.unwrap();
        assert_eq!(cached, board);
        assert_eq!(graphql_calls(&w), before, "the board is cached");

        let item_id = w.sim.add_project_item("acme", number, "acme/widgets", n.0, "alice").unwrap();
        w.sim.move_card("acme", number, &item_id, "Ready", "alice").unwrap();
        let found = w.client.find_project_item(w.inst, &board, &w.repo, n).await.unwrap().expect("the issue's item");
        assert_eq!(found.id.as_str(), item_id);
        assert_eq!(found.column.as_deref(), Some("Ready"));
        assert_eq!(w.client.find_project_item(w.inst, &board, &w.repo, m).await.unwrap(), None);

        w.client.move_project_item(w.inst, &board, &found.id, "in progress").await.unwrap();
        let item = w.client.project_item(w.inst, &found.id, "Status").await.unwrap().unwrap();
        assert_eq!(item.column.as_deref(), Some("In progress"));
        assert_eq!(item.content, Some((w.repo.clone(), n)), "the item's content resolves to repository and number");
        assert_eq!(item.project_id, board.id);

        let unknown = w.client.move_project_item(w.inst, &board, &found.id, "Nowhere").await.unwrap_err();
        assert!(matches!(&unknown, GithubError::UnknownColumn { known, .. } if known.len() == 5), "{unknown:?}");
        let gone =
            w.client.project_item(w.inst, &foreman::ids::NodeId("PVTI_doesnotexist".into()), "Status").await.unwrap();
        assert_eq!(gone, None);
        let missing = w.client.project(w.inst, "acme", 999, "Status").await.unwrap_err();
        assert!(missing.is_not_found(), "{missing:?}");
        let no_field = w.client.project(w.inst, "acme", number, "Priority").await.unwrap_err();
        assert!(matches!(no_field, GithubError::NoSuchField { .. }), "{no_field:?}");

        // Adding is idempotent: the same issue twice is one item.
        let node = w.client.issue(w.inst, &w.repo, m).await.unwrap().node_id;
        let added = w.client.add_to_project(w.inst, &board, &node).await.unwrap();
        let again = w.client.add_to_project(w.inst, &board, &node).await.unwrap();
        assert_eq!(added, again);
        w.client.move_project_item(w.inst, &board, &added, "In review").await.unwrap();
        let state = w.sim.state();
        let project = state["projects"].as_array().unwrap().iter().find(|p| p["number"] == number).unwrap().clone();
        let items: Vec<&Value> = project["items"].as_array().unwrap().iter().filter(|i| i["issue"] == m.0).collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["column"], "In review");

        // The same under GraphQL rate limits and 5xx: every call completes, nothing is added twice.
        w.sim.set_faults(Faults {
            error_rate: 0.2,
            kinds: vec!["graphql_rate_limit".into(), "502".into()],
            ..Faults::default()
        });
        for column in ["Ready", "In progress", "Done"] {
            let fresh = w.client.project(w.inst, "acme", number, "Status").await.unwrap();
            let it = w.client.find_project_item(w.inst, &fresh, &w.repo, m).await.unwrap().unwrap();
            w.client.move_project_item(w.inst, &fresh, &it.id, column).await.unwrap();
            w.client.add_to_project(w.inst, &fresh, &node).await.unwrap();
            assert_eq!(
                w.client.project_item(w.inst, &it.id, "Status").await.unwrap().unwrap().column.as_deref(),
                Some(column)
            );
        }
        w.sim.set_faults(Faults::default());
        let state = w.sim.state();
        let project = state["projects"].as_array().unwrap().iter().find(|p| p["number"] == number).unwrap().clone();
        assert_eq!(project["items"].as_array().unwrap().iter().filter(|i| i["issue"] == m.0).count(), 1);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutations_are_paced_per_installation_and_reads_are_not() {
    tokio::time::timeout(LIMIT, async {
        let mut options = fast();
        options.retry.mutation_interval = Duration::from_millis(150);
        let w = world_with(|_| {}, options).await;
        let n = issue(&w, "Paced");
        let comment = w.client.create_comment(w.inst, &w.repo, n, "first").await.unwrap();
        let started = Instant::now();
        let edits = (0..4).map(|i| {
            let c = w.client.clone();
            let repo = w.repo.clone();
            let inst = w.inst;
            tokio::spawn(async move { c.update_comment(inst, &repo, comment.id, &format!("edit {i}")).await.unwrap() })
        });
        for e in edits.collect::<Vec<_>>() {
            e.await.unwrap();
        }
        assert!(
            started.elapsed() >= Duration::from_millis(3 * 150),
            "concurrent mutations went out 150 ms apart: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        for _ in 0..4 {
            w.client.issue(w.inst, &w.repo, n).await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(4 * 150),
            "reads are not paced (paced, they would take 600 ms): {:?}",
            started.elapsed()
        );
    })
    .await
    .expect("bounded");
}

/// Every body the client sends is scrubbed of the secrets it knows: a registered value of any shape, the
/// app's private key lines (registered by `Client::new`) and the tokens it mints. Upserts compare what
/// GitHub holds with the scrubbed text, so writing the same text twice still changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_scrubbed_and_upserts_stay_idempotent() {
    tokio::time::timeout(LIMIT, async {
        const ADMIN: &str = "admin-Qv8sLx2Nw7";
        let options = fast();
        options.secrets.register("admin_token", &SecretString::from(ADMIN.to_owned()));
        let w = world_with(|_| {}, options).await;
        let key_line = w.sim.private_key_pem().lines().nth(3).unwrap().to_owned();
        let token = w.client.session_token(w.inst, &w.repo).await.unwrap();
        let leaky = format!("admin {ADMIN}, key {key_line}, token {}", token.token.expose_secret());
        let n = issue(&w, "Leaky");

        let first = w.client.upsert_marked_comment(w.inst, &w.repo, n, MARKER, &leaky).await.unwrap();
        let patches = |w: &World| requests(w).iter().filter(|r| r["method"] == "PATCH").count();
        let before = patches(&w);
        let again = w.client.upsert_marked_comment(w.inst, &w.repo, n, MARKER, &leaky).await.unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(patches(&w), before, "the same text again is no edit");
        let plain = w.client.create_comment(w.inst, &w.repo, n, &leaky).await.unwrap();

        let sha = push_branch(&w, "acme/widgets", &token.token, "foreman/leaky").unwrap();
        let pull = NewPullRequest {
            title: format!("Fix {ADMIN}"),
            head: "foreman/leaky".into(),
            base: "main".into(),
            body: leaky.clone(),
            draft: false,
        };
        let pr = w.client.upsert_pull(w.inst, &w.repo, &pull).await.unwrap();
        let same = w.client.upsert_pull(w.inst, &w.repo, &pull).await.unwrap();
        assert_eq!(pr.number, same.number);
        let check = CheckRunSpec {
            name: Some("Foreman".into()),
            head_sha: Some(sha),
            status: Some("completed".into()),
            conclusion: Some("success".into()),
            external_id: Some("leaky".into()),
            output: Some(CheckRunOutput { title: format!("t {ADMIN}"), summary: leaky.clone() }),
        };
        w.client.create_check_run(w.inst, &w.repo, &check).await.unwrap();

        let state = w.sim.state().to_string();
        for secret in [ADMIN, key_line.as_str(), token.token.expose_secret()] {
            assert!(!state.contains(secret), "{secret:?} reached the simulator");
        }
        for body in [&first.body, &plain.body, pr.body.as_deref().unwrap_or_default()] {
            assert!(body.starts_with("admin [redacted], key [redacted], token [redacted]"), "{body}");
        }
        assert_eq!(pr.title, "Fix [redacted]");
    })
    .await
    .expect("within the time limit");
}
