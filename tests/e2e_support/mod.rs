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
    /// Whether Foreman reads deliveries from the App's delivery log (`Setup::poll`): the simulator then has
    /// no webhook URL.
    poll: bool,
    /// Every log line Foreman printed so far (its stderr is drained into this as it is read).
    log: std::sync::Mutex<LogBuf>,
    /// Whether the App is registered from the setup page (the simulator's webhook URL comes from it).
    no_app: bool,
}

/// Foreman's log lines, gathered from each process's stderr channel.
#[derive(Default)]
struct LogBuf {
    lines: Vec<String>,
    /// Whether the current process's startup lines are in `lines` already.
    took_startup: bool,
}

impl LogBuf {
    fn drain(&mut self, foreman: &Foreman) {
        if self.took_startup {
            self.lines.extend(foreman.stderr.try_iter());
        } else {
            self.lines.extend(foreman.logs());
            self.took_startup = true;
        }
    }
}

/// How a test's world differs from the default one.
#[derive(Default)]
pub struct Setup<'a> {
    /// Extra environment for Foreman.
    pub env: &'a [(&'a str, &'a str)],
    /// A foreman.toml (written into the world's directory and named by `FOREMAN_CONFIG`); empty: none.
    pub config: &'a str,
    /// Whether `projects_v2_item.edited` deliveries carry `changes.field_value.from`/`to` (the simulator's
    /// default is yes); with `Some(false)` only Foreman's GraphQL read of the item tells the new column.
    pub project_item_from_to: Option<bool>,
    /// Whether the app's comments name it in `performed_via_github_app` (the simulator's default is yes);
    /// with `Some(false)` Foreman must recognise its own comments by their author and markers.
    pub app_comments_name_app: Option<bool>,
    /// More repositories in `ORG`, created before Foreman starts: (name, files).
    pub repos: &'a [(&'a str, &'a [(&'a str, &'a str)])],
    /// Poll delivery mode: Foreman reads deliveries from the App's delivery log every second, and the
    /// simulator has no webhook URL (it records every delivery unsent, as GitHub does).
    pub poll: bool,
    /// Start Foreman without App credentials or webhook secret, and leave the simulator's webhook URL
    /// unset: the App is to be registered from Foreman's setup page (the manifest sets the URL).
    pub no_app: bool,
    /// Workflow runs the simulator's runner runs at once (`SimConfig::runners`); `None`: its default.
    pub runners: Option<usize>,
}

/// The columns of the board every board test uses (Foreman's defaults: trigger `Ready`, then `In progress`,
/// `In review`, `Blocked`).
pub const COLUMNS: &[&str] = &["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"];

/// How often [`World::wait_log`] and [`World::wait_processed`] look again at what they wait for. These read
/// Foreman (its log, its admin API), which has no change notification; each look costs microseconds.
pub const POLL: Duration = Duration::from_millis(50);

/// An executable shell script `dir/name` running `body` (a stand-in program, e.g. a fake `claude`). The
/// sandbox shows the agent its program's directory, read-only.
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

/// The setting that shows `dir` read-write inside the agent's sandbox (`agent.sandbox_writable_paths`), for
/// a test and its agent to signal each other through files there: pass it in `World::start`'s `env`.
pub fn shared(dir: &Path) -> (&'static str, String) {
    ("FOREMAN_AGENT_SANDBOX_WRITABLE_PATHS", format!("[{:?}]", dir.display().to_string()))
}

/// An agent that writes a file named after the issue and commits it.
pub const FIXING_AGENT: &str = r#"echo "fixed issue $FOREMAN_ISSUE" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix #$FOREMAN_ISSUE"
echo "Added fix-$FOREMAN_ISSUE.txt""#;

/// An agent that commits, says it started (touches `<marks>/started-<issue>`), then waits until
/// `<marks>/go` exists (at most 60 s, then fails): it stays mid-session until the test lets it go, and were
/// it not stopped it would end with a commit to push. Its waiting is its own; the test waits on the files.
pub fn blocking_agent(marks: &Path) -> String {
    format!(
        r#"echo "work in progress" > wip.txt
git add -A
git commit -q -m "Work in progress on #$FOREMAN_ISSUE"
touch '{marks}/started-'"$FOREMAN_ISSUE"
n=0
while [ ! -e '{marks}/go' ]; do
  n=$((n + 1))
  if [ "$n" -gt 1200 ]; then echo "never released" >&2; exit 1; fi
  sleep 0.05
done
echo "done""#,
        marks = marks.display()
    )
}

impl World {
    /// Starts the simulator with `acme/widgets` (users alice: write, bob: read) and Foreman with a command
    /// agent running `agent` (a shell script body) plus `env`.
    pub async fn start(agent: &str, env: &[(&str, &str)]) -> World {
        Self::start_with(agent, Setup { env, ..Setup::default() }).await
    }

    /// [`Self::start`], with a configuration file and simulator settings from `setup`.
    pub async fn start_with(agent: &str, setup: Setup<'_>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::new(dir.path().join("sim"));
        config.webhook_secret = SECRET.into();
        if let Some(from_to) = setup.project_item_from_to {
            config.project_item_from_to = from_to;
        }
        if let Some(named) = setup.app_comments_name_app {
            config.app_comments_name_app = named;
        }
        if let Some(runners) = setup.runners {
            config.runners = runners;
        }
        let sim = GithubSim::start(config).await.expect("start github-sim");
        sim.create_user("alice", github_sim::Permission::Write, "User");
        sim.create_user("bob", github_sim::Permission::Read, "User");
        sim.create_repo(ORG, "widgets", &[("README.md", "# widgets\n"), ("src/lib.rs", "pub fn f() {}\n")]).unwrap();
        for (name, files) in setup.repos {
            sim.create_repo(ORG, name, files).unwrap();
        }
        let mut all: Vec<(String, String)> = Vec::new();
        if !setup.no_app {
            all.extend([
                ("GITHUB_APP_ID".into(), sim.app_id().to_string()),
                ("GITHUB_PRIVATE_KEY_PATH".into(), dir.path().join("sim/app.pem").display().to_string()),
                ("GITHUB_WEBHOOK_SECRET".into(), SECRET.into()),
            ]);
        }
        all.extend([
            ("GITHUB_API_URL".into(), sim.url().to_owned()),
            ("FOREMAN_AGENT_BACKEND".into(), "command".into()),
            // The script itself is the command: the sandbox shows the agent no file of the test's.
            ("FOREMAN_AGENT_COMMAND".into(), format!("set -e\n{agent}")),
            ("HOME".into(), dir.path().display().to_string()),
            // The simulator has no secondary rate limit to respect; 1 s between mutations would make each
            // lifecycle take ~10 s of pacing alone.
            ("GITHUB_MUTATION_INTERVAL_MS".into(), "20".into()),
        ]);
        if !setup.config.is_empty() {
            let path = dir.path().join("foreman.toml");
            std::fs::write(&path, setup.config).unwrap();
            all.push(("FOREMAN_CONFIG".into(), path.display().to_string()));
        }
        if setup.poll {
            all.push(("GITHUB_DELIVERY_MODE".into(), "poll".into()));
            all.push(("GITHUB_POLL_INTERVAL_SECS".into(), "1".into()));
        }
        all.extend(setup.env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut world = World {
            sim,
            foreman: None,
            dir,
            env: all,
            poll: setup.poll,
            log: Default::default(),
            no_app: setup.no_app,
        };
        world.start_foreman();
        world
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (or restarts, after [`Self::kill9`]) Foreman and points the simulator's webhook at it (not in
    /// poll mode: Foreman reads the delivery log).
    pub fn start_foreman(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        std::fs::create_dir_all(self.data_dir()).unwrap();
        if let Some(old) = self.foreman.take() {
            self.log.lock().unwrap().drain(&old);
        }
        let foreman = Foreman::start(&self.data_dir(), &env);
        self.log.lock().unwrap().took_startup = false;
        if !self.poll && !self.no_app {
            self.sim.set_webhook_url(Some(foreman.url("/api/github/webhooks")));
        }
        self.foreman = Some(foreman);
    }

    /// SIGKILL to Foreman; deliveries go nowhere until [`Self::start_foreman`].
    pub fn kill9(&mut self) {
        self.sim.set_webhook_url(None);
        if let Some(mut f) = self.foreman.take() {
            f.child.kill().unwrap();
            f.child.wait().unwrap();
            self.log.lock().unwrap().drain(&f);
        }
    }

    /// Foreman's log lines so far (of every process this world started).
    pub fn logs(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Foreman's log lines so far, one JSON object each.
    pub fn log_lines(&self) -> Vec<String> {
        let mut log = self.log.lock().unwrap();
        if let Some(f) = &self.foreman {
            log.drain(f);
        }
        log.lines.clone()
    }

    /// Waits until Foreman has logged a line (parsed as JSON) that `condition` accepts, or fails the test.
    pub async fn wait_log(&self, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let found = tokio::time::timeout(LIFECYCLE, async {
            loop {
                let hit = self
                    .log_lines()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| condition(l));
                if let Some(line) = hit {
                    return line;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for Foreman to log {what}; it said:\n{}", self.logs()))
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

    /// The address of `path` on the running Foreman (its admin API answers loopback without a token).
    pub fn foreman_url(&self, path: &str) -> String {
        self.foreman.as_ref().expect("Foreman runs").url(path)
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

    /// Foreman's job for `repo#number` (any repository), from its admin API.
    pub async fn job_in(&self, repo: &str, number: u64) -> Value {
        let url = self.foreman.as_ref().unwrap().url(&format!("/api/jobs/{repo}/{number}"));
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

    /// Creates the organisation board "Roadmap" with [`COLUMNS`]; returns its number.
    pub fn board(&self) -> u64 {
        self.sim.create_project(ORG, "Roadmap", COLUMNS).0
    }

    /// The column of `number`'s card on board `project`, if it has a card in a column.
    pub fn card_column(state: &Value, project: u64, number: u64) -> Option<String> {
        let board = state["projects"].as_array()?.iter().find(|p| p["org"] == ORG && p["number"] == project)?;
        let item = board["items"].as_array()?.iter().find(|i| i["repo"] == REPO && i["issue"] == number)?;
        item["column"].as_str().map(str::to_owned)
    }

    /// Waits until `number`'s card on `project` is in `column`.
    pub async fn wait_column(&self, project: u64, number: u64, column: &str) -> Value {
        self.wait(&format!("#{number}'s card in {column:?}"), |s| {
            Self::card_column(s, project, number).as_deref() == Some(column)
        })
        .await
    }

    /// The labels on issue `number`.
    pub fn labels(state: &Value, number: u64) -> Vec<String> {
        Self::issue(state, number)["labels"]
            .as_array()
            .map(|l| l.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The comments on issue `number`, oldest first.
    pub fn comments(state: &Value, number: u64) -> Vec<Value> {
        Self::issue(state, number)["comments"].as_array().cloned().unwrap_or_default()
    }

    /// The body of `number`'s tracking comment, if there is one.
    pub fn tracking_body(state: &Value, number: u64) -> Option<String> {
        Self::comments(state, number)
            .iter()
            .filter_map(|c| c["body"].as_str())
            .find(|b| b.contains("<!-- foreman:tracking"))
            .map(str::to_owned)
    }

    /// The comment with `id` on issue `number`.
    pub fn comment_by_id(state: &Value, number: u64, id: u64) -> Value {
        Self::comments(state, number).into_iter().find(|c| c["id"] == id).unwrap_or(Value::Null)
    }

    /// The simulator's last delivery of `event` (as `GET /_sim/state` lists it: id, guid, action, status).
    pub fn last_delivery(state: &Value, event: &str) -> Value {
        state["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|d| d["event"] == event)
            .cloned()
            .unwrap_or_else(|| panic!("no {event} delivery"))
    }

    /// Waits until Foreman has processed the delivery `guid` (`GET /api/deliveries/{guid}` says `processed`)
    /// and returns its record. Replies and reactions are made before a delivery counts as processed.
    pub async fn wait_processed(&self, guid: &str) -> Value {
        let url = self.foreman.as_ref().unwrap().url(&format!("/api/deliveries/{guid}"));
        let found = tokio::time::timeout(LIFECYCLE, async {
            loop {
                let resp = reqwest::get(&url).await.unwrap();
                if resp.status() == 200 {
                    let record: Value = resp.json().await.unwrap();
                    if record["processing"]["state"] == "processed" {
                        return record;
                    }
                    assert_ne!(record["processing"]["state"], "dead", "delivery {guid} was dead-lettered: {record}");
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for delivery {guid} to be processed:\n{}", self.logs()))
    }

    /// Branches under `foreman/` on the simulator's git server.
    pub fn foreman_branches(&self) -> Vec<String> {
        let git_dir = self.sim.git_dir(REPO).unwrap();
        let out = std::process::Command::new("git")
            .args(["for-each-ref", "--format=%(refname:short)", "refs/heads/foreman"])
            .current_dir(&git_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git for-each-ref: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }

    /// The worktree Foreman gives issue `number`'s sessions (`DATA_DIR/worktrees/<owner>/<name>/<issue>`).
    pub fn worktree(&self, number: u64) -> PathBuf {
        self.data_dir().join("worktrees").join(REPO).join(number.to_string())
    }

    /// The delivery the simulator made for comment `id` (`issue_comment.created`), with its payload.
    pub fn delivery_for_comment(&self, id: u64) -> Value {
        self.sim
            .deliveries()
            .into_iter()
            .find(|d| d["event"] == "issue_comment" && d["payload"]["comment"]["id"] == id && d["redelivery"] == false)
            .unwrap_or_else(|| panic!("no delivery for comment {id}"))
    }
}

/// Waits until `condition` holds, looking every [`POLL`], or fails the test naming `what`. For facts outside
/// the simulator (files an agent writes); the simulator's own state has [`World::wait`].
pub async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let found = tokio::time::timeout(LIFECYCLE, async {
        while !condition() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    assert!(found.is_ok(), "timed out waiting for {what}");
}

/// The server configuration of the tests that run the real Claude Code CLI (`claude`) against the Messages
/// API stub at `url`, with `home` as its home. The CLI's own retries are off, and its non-essential traffic:
/// every request it makes is scripted.
pub fn claude_config(claude: &std::path::Path, url: &str, home: &std::path::Path) -> String {
    format!(
        r#"[agent]
backend = "claude"
claude_path = {claude:?}
model = "claude-sonnet-4-5"
max_turns = 10
claude_max_retries = 0
timeout_secs = 90
stall_timeout_secs = 60
kill_grace_secs = 2

[agent.env]
ANTHROPIC_BASE_URL = {url:?}
HOME = {home:?}
DISABLE_TELEMETRY = "1"
DISABLE_ERROR_REPORTING = "1"
DISABLE_AUTOUPDATER = "1"
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1"
TZ = "UTC"
"#,
        claude = claude.display().to_string(),
        home = home.display().to_string(),
    )
}
