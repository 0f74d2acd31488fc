//! `foreman doctor`, the real binary against github-sim: each check passes when all is well and names
//! what is wrong, with what to do, when it is not (a wrong app id, a missing permission or event, a
//! missing agent CLI or credential, an unwritable data directory); the exit code says whether any failed.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use github_sim::{GithubSim, SimConfig, SimHandle};

/// Bounds one run of `foreman doctor` (two GitHub requests, `claude --version`).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

struct Sim {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

async fn sim() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.expect("start github-sim");
    sim.create_user("alice", github_sim::Permission::Write, "User");
    sim.create_repo("acme", "widgets", &[("README.md", "# widgets\n")]).unwrap();
    Sim { sim, dir }
}

impl Sim {
    /// The environment of a Foreman configured for this simulator with a command agent running `sh`.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GITHUB_APP_ID".into(), self.sim.app_id().to_string()),
            ("GITHUB_PRIVATE_KEY_PATH".into(), self.dir.path().join("sim/app.pem").display().to_string()),
            ("GITHUB_API_URL".into(), self.sim.url().to_owned()),
            ("FOREMAN_DATA_DIR".into(), self.dir.path().join("data").display().to_string()),
            ("FOREMAN_AGENT_BACKEND".into(), "command".into()),
            ("FOREMAN_AGENT_COMMAND".into(), "sh -c 'echo hello'".into()),
        ]
    }

    /// Runs `foreman doctor` with `env` (and nothing else but `PATH` and `HOME`) on a blocking thread.
    async fn doctor(&self, env: Vec<(String, String)>) -> Output {
        let home = self.dir.path().to_owned();
        let run = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_foreman"))
                .arg("doctor")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", &home)
                .envs(env)
                .current_dir(&home)
                .stdin(Stdio::null())
                .output()
                .expect("run foreman doctor")
        });
        tokio::time::timeout(RUN_TIMEOUT, run).await.expect("foreman doctor finished in time").unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The printed lines of check `name`: its `✓ name: …` line and the fix indented below it.
fn check(text: &str, name: &str) -> String {
    let mut lines =
        text.lines().skip_while(|l| !l.split_once(' ').is_some_and(|(_, r)| r.starts_with(&format!("{name}: "))));
    let first = lines.next().unwrap_or_else(|| panic!("no {name} check in:\n{text}"));
    let fix: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
    format!("{first}\n{}", fix.join("\n"))
}

fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_for_a_working_setup_and_doctor_exits_zero() {
    let s = sim().await;
    let out = s.doctor(s.env()).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["github_app", "github_permissions", "agent", "sandbox"] {
        assert!(check(&text, name).starts_with('✓'), "{name} should pass:\n{text}");
    }
    // The free space is the machine's own (CI's runner had 1.5 GiB in /tmp): below the warning threshold the
    // check warns with the fix, which is its job, and `doctor` still exits 0.
    let data_dir = check(&text, "data_dir");
    assert!(
        data_dir.starts_with('✓') || (data_dir.starts_with('⚠') && data_dir.contains("give it more room")),
        "data_dir should pass, or warn about free space only:\n{text}"
    );
    assert!(check(&text, "github_app").contains(&format!("app id {}", s.sim.app_id())), "{text}");
    assert!(check(&text, "github_app").contains("1 installation"), "{text}");
    assert!(check(&text, "data_dir").contains("GiB free"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_app_id_is_named_with_the_setting_to_fix() {
    let s = sim().await;
    let wrong = (s.sim.app_id() + 1).to_string();
    let out = s.doctor(with(s.env(), "GITHUB_APP_ID", &wrong)).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = check(&text, "github_app");
    assert!(line.starts_with('✗') && line.contains(&wrong) && line.contains("GITHUB_APP_ID"), "{text}");
    assert!(!text.contains("github_permissions"), "permissions are not checked without an App: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_and_event_are_each_named_with_what_foreman_uses_them_for() {
    let s = sim().await;
    let manifest: serde_json::Value = serde_json::from_str(foreman::github::manifest::MANIFEST_JSON).unwrap();
    let mut permissions: Vec<(String, String)> = manifest["default_permissions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .filter(|(k, _)| k != "organization_projects")
        .collect();
    // Read where write is wanted is missing too.
    permissions.iter_mut().filter(|(k, _)| k == "checks").for_each(|(_, v)| *v = "read".into());
    let permissions: Vec<(&str, &str)> = permissions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let events: Vec<&str> = manifest["default_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .filter(|e| *e != "push")
        .collect();
    s.sim.set_app_settings(Some(&permissions), Some(&events));

    let out = s.doctor(s.env()).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(check(&text, "github_app").starts_with('✓'), "{text}");
    let line = check(&text, "github_permissions");
    assert!(line.starts_with('✗'), "{text}");
    assert!(line.contains("organization_projects: write (board triggers"), "{text}");
    assert!(line.contains("checks: write"), "{text}");
    assert!(line.contains("event push ("), "{text}");
    assert!(!line.contains("issues: write"), "only what is missing is named: {text}");
    assert!(line.contains("/settings/apps/"), "says where to add them: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_agent_cli_is_named_with_the_key_that_sets_its_path() {
    let s = sim().await;
    let config = s.dir.path().join("foreman.toml");
    std::fs::write(&config, "[agent]\nbackend = \"claude\"\n\n[agent.claude]\npath = \"/nonexistent/claude\"\n")
        .unwrap();
    let env = with(s.env(), "FOREMAN_AGENT_BACKEND", "claude");
    let env = with(env, "FOREMAN_CONFIG", config.to_str().unwrap());
    let env = with(env, "ANTHROPIC_API_KEY", "sk-ant-api03-doctor");
    let out = s.doctor(env).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = check(&text, "agent");
    assert!(
        line.starts_with('✗') && line.contains("/nonexistent/claude") && line.contains("agent.claude.path"),
        "{text}"
    );

    // A command agent whose program is not installed.
    let out = s.doctor(with(s.env(), "FOREMAN_AGENT_COMMAND", "no-such-agent-program --yes")).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(check(&text, "agent").contains("`no-such-agent-program`"), "{text}");
}

/// The real Claude Code CLI: its version is shown; without a credential the check fails naming the
/// variables to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claude_cli_runs_and_needs_a_credential() {
    let claude = claude_cli();
    let s = sim().await;
    let config = s.dir.path().join("foreman.toml");
    std::fs::write(&config, format!("[agent]\nbackend = \"claude\"\n\n[agent.claude]\npath = {:?}\n", claude)).unwrap();
    let env = with(s.env(), "FOREMAN_AGENT_BACKEND", "claude");
    let env = with(env, "FOREMAN_CONFIG", config.to_str().unwrap());

    let out = s.doctor(env.clone()).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = check(&text, "agent");
    assert!(
        line.starts_with('✗') && line.contains("CLAUDE_CODE_OAUTH_TOKEN") && line.contains("ANTHROPIC_API_KEY"),
        "{text}"
    );

    let out = s.doctor(with(env, "ANTHROPIC_API_KEY", "sk-ant-api03-doctor")).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let line = check(&text, "agent");
    assert!(line.starts_with('✓') && line.contains("Claude Code"), "the version is shown: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_app_check_warns_and_points_to_the_setup_page() {
    let s = sim().await;
    let mut env = s.env();
    env.retain(|(k, _)| !k.starts_with("GITHUB_"));
    let env = with(env, "FOREMAN_PUBLIC_URL", "https://foreman.example.com");
    let out = s.doctor(env).await;
    let text = stdout(&out);
    assert!(out.status.success(), "a Foreman not yet registered is not broken: {text}");
    let line = check(&text, "github_app");
    assert!(line.starts_with('⚠') && line.contains("https://foreman.example.com/"), "{text}");
}

/// A data directory that cannot be created (its parent is a file: root cannot either) fails, named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_that_cannot_be_created_fails() {
    let s = sim().await;
    let file = s.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data = file.join("data");
    let out = s.doctor(with(s.env(), "FOREMAN_DATA_DIR", data.to_str().unwrap())).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = check(&text, "data_dir");
    assert!(line.starts_with('✗') && line.contains("cannot be created") && line.contains("FOREMAN_DATA_DIR"), "{text}");
}

/// `foreman serve` runs the same checks before it serves: a wrong app id is logged at ERROR with the fix,
/// and `/readyz` answers 503 with the failing check, while deliveries are still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_a_failing_check_at_error_and_readyz_names_it() {
    let s = sim().await;
    let wrong = (s.sim.app_id() + 1).to_string();
    let env = with(s.env(), "GITHUB_APP_ID", &wrong);
    let env = with(env, "GITHUB_WEBHOOK_SECRET", "doctor-secret");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let foreman = support::Foreman::start(&s.dir.path().join("data"), &env);
    let logs = foreman.logs();
    let line = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["check"] == "github_app")
        .unwrap_or_else(|| panic!("no github_app check logged before listening:\n{}", logs.join("\n")));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["message"].as_str().unwrap().contains(&wrong) && line["fix"].as_str().unwrap().contains("GITHUB_APP_ID")
    );

    let readyz = reqwest::get(foreman.url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let failing: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["github_app"], "{body}");
    let names: Vec<&str> = body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["github_app", "agent", "sandbox", "data_dir", "store"], "{body}");

    // Deliveries are still accepted and stored: the ingress does not depend on the checks.
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let sig = support::sign("doctor-secret", body);
    let answer = reqwest::Client::new()
        .post(foreman.url("/api/github/webhooks"))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "doctor-ping-1")
        .header("X-Hub-Signature-256", sig)
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// The real Claude Code CLI: `FOREMAN_TEST_CLAUDE`, or the one `.ci/install-claude` put in `.ci/node/`.
fn claude_cli() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("FOREMAN_TEST_CLAUDE") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/node/node_modules/.bin/claude");
    assert!(p.exists(), "the Claude Code CLI is missing: run .ci/install-claude (or set FOREMAN_TEST_CLAUDE)");
    p
}
