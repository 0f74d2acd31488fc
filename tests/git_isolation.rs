//! Foreman's git against an agent that attacks it, with real git, real processes and github-sim serving git
//! over HTTP with installation tokens:
//!
//! - an agent that plants `core.hooksPath`, `core.fsmonitor` and hooks in its repository must not get any
//!   of them run by Foreman's own git (the leftover commit, the fetch into the mirror, the push, the next
//!   session's prepare), and the default branch stays untouched;
//! - an agent that turns `.git` into a gitfile, or its configuration into a link, is refused safely;
//! - a process scanning every `/proc/*/environ` and `/proc/*/cmdline` while Foreman fetches and pushes never
//!   sees the installation token.

mod session_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foreman::ids::{IssueNumber, RepoName};
use foreman::report::push::{DEFAULT_PREFIX, PushRequest, Pusher};
use foreman::session::workspace::{GitAuth, Start, WorkspaceRequest, Workspaces};
use foreman::session::{AgentConfig, Credentials, SessionOutcome, SessionRunner, SessionSpec, Verdict};
use github_sim::{GithubSim, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};
use session_support::{command_config, spec};
use tokio_util::sync::CancellationToken;

/// Bounds every test here: a few sessions, fetches and pushes over loopback, each well under a second.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A hook or fsmonitor script that records that it ran, and the environment it ran with, in the marker
/// directory (what a hook that steals the token would see).
fn marker_script(markers: &Path) -> String {
    format!("#!/bin/sh\nenv > \"{}/$(basename \"$0\")-$$\"\nexit 0\n", markers.display())
}

/// The object a revision names in the repository at `git_dir`, if it exists.
fn rev_parse(git_dir: &Path, rev: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "--quiet", rev])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn markers_left(markers: &Path) -> Vec<String> {
    std::fs::read_dir(markers).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

struct World {
    sim: SimHandle,
    dir: tempfile::TempDir,
    token: String,
    url: String,
    markers: PathBuf,
    /// A directory of executable hook scripts (every hook name git knows of that Foreman's commands could
    /// trigger), each writing a marker.
    evil: PathBuf,
}

async fn token(sim: &SimHandle) -> String {
    let id = sim.installation_id("acme");
    let r = reqwest::Client::new()
        .post(format!("{}/app/installations/{id}/access_tokens", sim.url()))
        .bearer_auth(sim.app_jwt())
        .header("accept", "application/vnd.github+json")
        .json(&json!({}))
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

const HOOKS: &[&str] = &[
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "post-merge",
    "post-rewrite",
    "reference-transaction",
    "pre-push",
    "pre-auto-gc",
    "post-index-change",
    "fsmonitor-watchman",
    "fsmonitor",
];

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.expect("sim starts");
    sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
    let token = token(&sim).await;
    let url = sim.clone_url("acme/widgets");
    let markers = dir.path().join("markers");
    let evil = dir.path().join("evil-hooks");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::create_dir_all(&evil).unwrap();
    for hook in HOOKS {
        write_executable(&evil.join(hook), &marker_script(&markers));
    }
    World { sim, dir, token, url, markers, evil }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    fn auth(&self) -> GitAuth {
        GitAuth::installation_token(SecretString::from(self.token.clone()))
    }

    fn repo(&self) -> RepoName {
        RepoName::new("acme", "widgets").unwrap()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn runner(&self, script: &str) -> SessionRunner {
        // The agent copies its hooks from `evil`, shown read-only in its sandbox.
        let config = AgentConfig {
            idle_worktrees_per_repo: 1,
            sandbox_paths: vec![self.evil.clone()],
            ..command_config(script)
        };
        SessionRunner::new(&self.data_dir(), config, Credentials::default()).unwrap()
    }

    fn spec(&self, title: &str) -> SessionSpec {
        SessionSpec {
            repo: self.repo(),
            remote_url: self.url.clone(),
            auth: Some(self.auth()),
            ..spec(Path::new("/unused"), title)
        }
    }

    async fn run(&self, runner: &SessionRunner, spec: SessionSpec) -> SessionOutcome {
        tokio::time::timeout(TEST_TIMEOUT, runner.run(spec, CancellationToken::new(), |_| {}))
            .await
            .expect("session timed out")
    }

    async fn push(&self, mirror: &Path, branch: &str) -> Result<String, foreman::report::push::PushError> {
        let auth = self.auth();
        let pusher = Pusher::new(DEFAULT_PREFIX).unwrap();
        let req = PushRequest {
            git_dir: mirror,
            remote_url: &self.url,
            branch,
            default_branch: "main",
            expected_remote: None,
            auth: &auth,
        };
        pusher.push(&req).await.map(|p| p.sha)
    }

    fn remote_sha(&self, branch: &str) -> Option<String> {
        rev_parse(&self.sim.git_dir("acme/widgets").unwrap(), &format!("refs/heads/{branch}"))
    }

    /// A fresh prepare of issue `issue` (the next session's first step), in a new process's `Workspaces`.
    async fn prepare(&self, issue: u64) {
        let ws = Workspaces::new(&self.data_dir(), 1).unwrap();
        let req = WorkspaceRequest {
            repo: self.repo(),
            issue: IssueNumber(issue),
            remote_url: self.url.clone(),
            auth: Some(self.auth()),
            branch: format!("foreman/{issue}-next"),
            start: Start::DefaultBranch("main".into()),
        };
        let w = tokio::time::timeout(TEST_TIMEOUT, ws.prepare(&req)).await.unwrap().expect("the next prepare");
        ws.remove(&w, &self.repo()).await;
    }
}

/// The agent configures hooks and fsmonitor in whatever git directory its repository uses, drops hooks
/// into it, commits once and leaves a change uncommitted.
#[tokio::test]
async fn hooks_and_fsmonitor_planted_by_the_agent_never_run_in_foremans_git() {
    let w = world().await;
    let fsmonitor = w.evil.join("fsmonitor");
    let script = format!(
        r#"
        set -e
        echo change > change.txt
        git add change.txt
        git commit -qm "The agent's change"
        # Planted last, so that only git run after the agent could trigger them.
        hooks="$(git rev-parse --git-path hooks)"
        mkdir -p "$hooks"
        for h in {hooks}; do cp "{evil}/$h" "$hooks/$h"; done
        git config core.hooksPath "{evil}"
        git config core.fsmonitor "{fsmonitor}"
        echo left > left.txt
        "#,
        evil = w.evil.display(),
        fsmonitor = fsmonitor.display(),
        hooks = HOOKS.join(" "),
    );
    let main_before = w.remote_sha("main").expect("main");
    let runner = w.runner(&script);
    let outcome = w.run(&runner, w.spec("Plant hooks")).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    assert!(outcome.changes.committed_leftovers, "the leftover commit ran");
    let mirror = runner.workspaces().mirror_path(&w.repo());
    w.push(&mirror, &outcome.branch).await.expect("the push");
    assert_eq!(markers_left(&w.markers), Vec::<String>::new(), "an agent's hook or fsmonitor ran in Foreman's git");
    assert!(w.remote_sha(&outcome.branch).is_some());
    // The next sessions: the same issue's clone, then another issue's (the idle clone reused).
    w.prepare(7).await;
    w.prepare(8).await;
    // A second full session with the same runner (fetch, prepare, leftover commit, take).
    let outcome = w.run(&runner, w.spec("Plant hooks")).await;
    assert!(matches!(outcome.verdict, Verdict::ChangesReady), "{outcome:#?}");

    assert_eq!(markers_left(&w.markers), Vec::<String>::new(), "an agent's hook or fsmonitor ran in Foreman's git");
    assert_eq!(w.remote_sha("main"), Some(main_before), "the default branch is untouched");
}

/// The agent points `.git` at a repository of its own making (a gitfile) whose configuration runs a program.
#[tokio::test]
async fn a_gitfile_planted_by_the_agent_is_refused() {
    let w = world().await;
    let evil_repo = w.dir.path().join("evil-repo");
    let script = format!(
        r#"
        set -e
        echo change > change.txt
        git add change.txt
        git commit -qm "The agent's change"
        git init -q "{evil_repo}"
        git --git-dir="{evil_repo}/.git" config core.fsmonitor "{evil}/fsmonitor"
        git --git-dir="{evil_repo}/.git" config core.hooksPath "{evil}"
        rm -rf .git
        echo "gitdir: {evil_repo}/.git" > .git
        echo left > left.txt
        "#,
        evil_repo = evil_repo.display(),
        evil = w.evil.display(),
    );
    let runner = w.runner(&script);
    let outcome = w.run(&runner, w.spec("Plant a gitfile")).await;
    assert_eq!(markers_left(&w.markers), Vec::<String>::new(), "a program named by the agent's repository ran");
    let Verdict::Failed { reason, .. } = &outcome.verdict else { panic!("not refused: {outcome:#?}") };
    assert!(reason.contains(".git"), "{reason}");
    // Nothing reached the mirror, and the next session starts clean.
    let mirror = runner.workspaces().mirror_path(&w.repo());
    assert!(rev_parse(&mirror, &format!("refs/heads/{}", outcome.branch)).is_none());
    w.prepare(7).await;
    assert_eq!(markers_left(&w.markers), Vec::<String>::new());
}

/// The agent replaces its repository's configuration with a link to a file outside it (Foreman must not
/// read it, nor write through it) and links a ref to a file outside (git would follow it).
#[tokio::test]
async fn a_linked_config_is_replaced_not_written_through_and_other_links_are_refused() {
    let w = world().await;
    let outside = w.dir.path().join("outside-config");
    let evil_config = format!(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = {}\n\thooksPath = {}\n",
        w.evil.join("fsmonitor").display(),
        w.evil.display()
    );
    std::fs::write(&outside, &evil_config).unwrap();
    let script = format!(
        r#"
        set -e
        echo change > change.txt
        git add change.txt
        git commit -qm "The agent's change"
        config="$(git rev-parse --git-path config)"
        case "$config" in /*) ;; *) config="$PWD/$config" ;; esac
        rm -f "$config"
        ln -s "{outside}" "$config"
        echo left > left.txt
        "#,
        outside = outside.display(),
    );
    let runner = w.runner(&script);
    let outcome = w.run(&runner, w.spec("Link the config")).await;
    assert_eq!(markers_left(&w.markers), Vec::<String>::new(), "the linked configuration was used");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), evil_config, "written through the link");
    assert!(std::fs::symlink_metadata(&outside).unwrap().file_type().is_file());
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");

    // A link elsewhere in `.git` (git follows links to refs) is refused.
    let secret = w.dir.path().join("secret.txt");
    std::fs::write(&secret, "not for the agent\n").unwrap();
    let script = format!(
        r#"
        set -e
        echo change > change.txt
        git add change.txt
        git commit -qm "The agent's change"
        ln -s "{secret}" .git/refs/heads/stolen
        "#,
        secret = secret.display(),
    );
    let runner = w.runner(&script);
    let outcome = w.run(&runner, w.spec("Link a ref")).await;
    let Verdict::Failed { reason, .. } = &outcome.verdict else { panic!("not refused: {outcome:#?}") };
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "not for the agent\n");
}

/// What the scanner saw: processes whose command line names git, and every process whose environment or
/// command line held the token.
#[derive(Default)]
struct Scan {
    stop: AtomicBool,
    git_processes: AtomicUsize,
    leaks: std::sync::Mutex<Vec<String>>,
}

/// Reads every `/proc/<pid>/environ` and `/proc/<pid>/cmdline` in a loop until told to stop, as a process of
/// the same user would.
fn scan(token: String, state: Arc<Scan>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let me = std::process::id().to_string();
        while !state.stop.load(Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                    continue;
                }
                for file in ["cmdline", "environ"] {
                    let Ok(bytes) = std::fs::read(entry.path().join(file)) else { continue };
                    let text = String::from_utf8_lossy(&bytes);
                    if file == "cmdline" && text.starts_with("git\0") {
                        state.git_processes.fetch_add(1, Ordering::Relaxed);
                    }
                    if text.contains(&token) {
                        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                        state.leaks.lock().unwrap().push(format!("{file} of {name}: {cmd}"));
                    }
                }
            }
        }
    })
}

#[tokio::test]
async fn the_token_is_in_no_process_environment_or_command_line_during_fetch_and_push() {
    let w = world().await;
    let state = Arc::new(Scan::default());
    let scanner = scan(w.token.clone(), state.clone());
    let result = tokio::time::timeout(TEST_TIMEOUT, async {
        let runner = w.runner("echo change >> change.txt");
        for round in 0..3 {
            let outcome = w.run(&runner, w.spec("Change a file")).await;
            assert_eq!(outcome.verdict, Verdict::ChangesReady, "round {round}: {outcome:#?}");
            let mirror = runner.workspaces().mirror_path(&w.repo());
            let expected = foreman::report::push::remote_tracking(&mirror, &outcome.branch).await;
            let auth = w.auth();
            let pusher = Pusher::new(DEFAULT_PREFIX).unwrap();
            let req = PushRequest {
                git_dir: &mirror,
                remote_url: &w.url,
                branch: &outcome.branch,
                default_branch: "main",
                expected_remote: expected.as_deref(),
                auth: &auth,
            };
            pusher.push(&req).await.expect("the push");
        }
    })
    .await;
    state.stop.store(true, Ordering::Relaxed);
    scanner.join().unwrap();
    result.expect("timed out");
    assert!(state.git_processes.load(Ordering::Relaxed) > 0, "the scanner saw Foreman's git processes");
    assert_eq!(*state.leaks.lock().unwrap(), Vec::<String>::new(), "the token was visible");
}
