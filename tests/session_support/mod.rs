//! Shared helpers for the session tests: a real origin repository, a runner, a spec, the real Claude CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use foreman::ids::RepoName;
use foreman::session::{AgentConfig, Credentials, IssueText, Person, PromptKind, SessionRunner, SessionSpec};

/// Runs git in `dir` and returns stdout; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A bare origin repository under `root` whose `main` holds `files` (path, content) in one commit.
/// Returns its path, usable as the remote URL.
pub fn origin(root: &Path, files: &[(&str, &str)]) -> PathBuf {
    let work = root.join("origin-work");
    let bare = root.join("origin.git");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for (path, content) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "initial"]);
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    bare
}

/// A spec for issue 7 of `octo/repo` at `remote`.
pub fn spec(remote: &Path, title: &str) -> SessionSpec {
    let person = |login: &str, trusted| Person { login: login.into(), trusted };
    SessionSpec {
        repo: RepoName::new("octo", "repo").unwrap(),
        kind: PromptKind::Coding,
        remote_url: remote.to_string_lossy().into_owned(),
        auth: None,
        default_branch: "main".into(),
        branch: None,
        issue: IssueText {
            number: 7,
            title: title.into(),
            body: "Please do it.".into(),
            author: person("alice", true),
        },
        comments: vec![],
        requester: person("alice", true),
        instructions: None,
        constitution: vec![],
        attempt: 1,
        previous_failure: None,
        resume: None,
        resolves: None,
        rules: None,
        session_id: None,
        overrides: None,
        workspace_issue: None,
        installation: None,
        executor: None,
    }
}

/// A runner over `data_dir`.
pub fn runner(data_dir: &Path, config: AgentConfig, credentials: Credentials) -> SessionRunner {
    SessionRunner::new(data_dir, config, credentials).unwrap()
}

/// A command-backend configuration running `script` with short limits.
pub fn command_config(script: &str) -> AgentConfig {
    AgentConfig {
        backend: "command".into(),
        command: foreman::session::agent::command::CommandConfig::line(script),
        timeout_secs: 20.0,
        stall_timeout_secs: 10.0,
        kill_grace_secs: 1.0,
        ..AgentConfig::default()
    }
}

/// The real Claude Code CLI: `FOREMAN_TEST_CLAUDE`, or the one `.ci/install-claude` put in `.ci/node/`.
/// Panics (the test fails) when neither exists: these tests must not pass without the real CLI.
pub fn claude_path() -> PathBuf {
    if let Ok(p) = std::env::var("FOREMAN_TEST_CLAUDE") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "FOREMAN_TEST_CLAUDE={} does not exist", p.display());
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/node/node_modules/.bin/claude");
    assert!(
        p.exists(),
        "the Claude Code CLI is missing: run .ci/install-claude (or set FOREMAN_TEST_CLAUDE); looked at {}",
        p.display()
    );
    p
}

/// A Claude configuration pointed at the stub at `base_url`, with `home` as the CLI's HOME.
pub fn claude_config(base_url: &str, home: &Path) -> AgentConfig {
    let env = [
        ("ANTHROPIC_BASE_URL", base_url),
        ("HOME", home.to_str().unwrap()),
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("TZ", "UTC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    AgentConfig {
        claude: foreman::session::agent::claude::ClaudeConfig {
            path: claude_path(),
            max_retries: Some(0),
            ..Default::default()
        },
        model: Some("claude-sonnet-4-5".into()),
        max_turns: Some(10),
        timeout_secs: 60.0,
        stall_timeout_secs: 30.0,
        kill_grace_secs: 2.0,
        env,
        ..AgentConfig::default()
    }
}

/// The host processes whose command line contains `needle` (zombies excluded): how a test finds what an
/// agent started, whose own `$!` is a pid in its sandbox's namespace.
pub fn running(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map_or(true, |s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')));
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to 10 s for no host process to match `needle` ([`running`]); returns those still running (and
/// kills them, so a failing test leaves nothing behind).
pub async fn gone(needle: &str) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut left = running(needle);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        left = running(needle);
    }
    for pid in &left {
        // SAFETY: kill only reads its arguments.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    left
}

/// A needle for [`running`] unique to this test process and `n`: a `sleep` long enough to outlive any test.
pub fn sleep_needle(n: u32) -> String {
    format!("sleep {}", 1_000_000 + std::process::id() * 10 + n)
}

/// Credentials from `(variable, value)` pairs.
pub fn credentials(pairs: &[(&str, &str)]) -> Credentials {
    Credentials::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}
