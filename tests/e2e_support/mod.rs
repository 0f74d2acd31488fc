//! End-to-end support: github-sim in this process, a real `foreman serve` child process wired to it (App
//! credentials from the simulator, deliveries to Foreman's webhook URL), real git, and a scripted command
//! agent (or the real Claude Code CLI, from the tests that use it).
#![allow(dead_code)]

#[path = "../support/mod.rs"]
pub mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use github_sim::{GithubSim, SimConfig, SimHandle};
use serde_json::Value;
pub use support::Foreman;

pub mod measure;

/// How long a test waits for an issue's whole lifecycle (delivery, claim, worktree, agent, push, pull
/// request). Each step is milliseconds on loopback; the bound is for a loaded 2-core CI machine.
pub const LIFECYCLE: Duration = Duration::from_secs(90);

/// The webhook secret shared by the simulator and Foreman.
pub const SECRET: &str = "e2e-webhook-secret";

/// The organisation and repository every test works in.
pub const ORG: &str = "acme";
/// `ORG/widgets`.
pub const REPO: &str = "acme/widgets";

/// A simulated GitHub, a running Foreman, and the directory they live in.
pub struct World {
    pub sim: SimHandle,
    pub foreman: Option<Foreman>,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// A command agent: a shell script run in the worktree with the prompt on stdin.
pub fn agent_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// An agent that writes a file named after the issue and commits it.
pub const FIXING_AGENT: &str = r#"echo "fixed issue $FOREMAN_ISSUE" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix #$FOREMAN_ISSUE"
echo "Added fix-$FOREMAN_ISSUE.txt""#;

impl World {
    /// Starts the simulator with `acme/widgets` (users alice: write, bob: read) and Foreman with a command
    /// agent running `agent` (a shell script body) plus `env`.
    pub async fn start(agent: &str, env: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::new(dir.path().join("sim"));
        config.webhook_secret = SECRET.into();
        let sim = GithubSim::start(config).await.expect("start github-sim");
        sim.create_user("alice", github_sim::Permission::Write, "User");
        sim.create_user("bob", github_sim::Permission::Read, "User");
        sim.create_repo(ORG, "widgets", &[("README.md", "# widgets\n"), ("src/lib.rs", "pub fn f() {}\n")]).unwrap();
        let script = agent_script(dir.path(), "agent.sh", agent);
        let mut all: Vec<(String, String)> = vec![
            ("GITHUB_APP_ID".into(), sim.app_id().to_string()),
            ("GITHUB_PRIVATE_KEY_PATH".into(), dir.path().join("sim/app.pem").display().to_string()),
            ("GITHUB_API_URL".into(), sim.url().to_owned()),
            ("GITHUB_WEBHOOK_SECRET".into(), SECRET.into()),
            ("FOREMAN_AGENT_BACKEND".into(), "command".into()),
            ("FOREMAN_AGENT_COMMAND".into(), script.display().to_string()),
            ("HOME".into(), dir.path().display().to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut world = World { sim, foreman: None, dir, env: all };
        world.start_foreman();
        world
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (or restarts, after [`Self::kill9`]) Foreman and points the simulator's webhook at it.
    pub fn start_foreman(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        std::fs::create_dir_all(self.data_dir()).unwrap();
        let foreman = Foreman::start(&self.data_dir(), &env);
        self.sim.set_webhook_url(Some(foreman.url("/api/github/webhooks")));
        self.foreman = Some(foreman);
    }

    /// SIGKILL to Foreman; deliveries go nowhere until [`Self::start_foreman`].
    pub fn kill9(&mut self) {
        self.sim.set_webhook_url(None);
        if let Some(mut f) = self.foreman.take() {
            f.child.kill().unwrap();
            f.child.wait().unwrap();
        }
    }

    /// Foreman's log lines so far.
    pub fn logs(&self) -> String {
        self.foreman.as_ref().map(|f| f.logs().join("\n")).unwrap_or_default()
    }

    /// The repository in the simulator's state.
    pub fn repo_state(state: &Value) -> &Value {
        state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == REPO).expect("the repository")
    }

    /// The issue or pull request `number` in the simulator's state.
    pub fn issue(state: &Value, number: u64) -> Value {
        Self::repo_state(state)["issues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["number"] == number)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Pull requests whose body closes `#number` (and not `#number0`: the number must end there).
    pub fn pulls_closing(state: &Value, number: u64) -> Vec<Value> {
        measure::pulls_closing_in(state, REPO, number)
    }

    /// Comments on `number` carrying Foreman's tracking marker.
    pub fn tracking_comments(state: &Value, number: u64) -> usize {
        let issue = Self::issue(state, number);
        issue["comments"]
            .as_array()
            .map(|c| {
                c.iter().filter(|c| c["body"].as_str().is_some_and(|b| b.contains("<!-- foreman:tracking"))).count()
            })
            .unwrap_or(0)
    }

    /// Waits until `condition` holds on the simulator's state, or fails the test with Foreman's logs.
    pub async fn wait(&self, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        match self.sim.wait_until(LIFECYCLE, condition).await {
            Some(state) => state,
            None => panic!("timed out waiting for {what}; foreman said:\n{}", self.logs()),
        }
    }

    /// Waits for one pull request closing `#number`.
    pub async fn wait_pull(&self, number: u64) -> Value {
        let state = self
            .wait(&format!("a pull request closing #{number}"), |s| !Self::pulls_closing(s, number).is_empty())
            .await;
        Self::pulls_closing(&state, number).remove(0)
    }

    /// Foreman's job for `number`, from its admin API (loopback needs no token).
    pub async fn job(&self, number: u64) -> Value {
        let url = self.foreman.as_ref().unwrap().url(&format!("/api/jobs/{REPO}/{number}"));
        let resp = reqwest::get(url).await.unwrap();
        if resp.status() == 404 {
            return Value::Null;
        }
        resp.json().await.unwrap()
    }

    /// GitHub API requests the simulator served for `repo#number` and the calls every lifecycle makes
    /// (tokens), from its request log: (method, path) pairs.
    pub fn requests(state: &Value) -> Vec<(String, String)> {
        state["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["method"].as_str().unwrap_or("").to_owned(), r["path"].as_str().unwrap_or("").to_owned()))
            .collect()
    }
}
