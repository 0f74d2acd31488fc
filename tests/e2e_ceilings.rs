//! End to end: a repository whose `.github/foreman.toml` raises the operator's limits gets the operator's.
//! Foreman runs the claude backend with a stand-in CLI (a script that reports the arguments it was given as
//! its result, in the Claude CLI's stream-json, and makes a commit). The repository asks for a $500 cost cap,
//! a day of wall time, tools the server does not allow and a $1000 daily budget; the sessions get the
//! server's cap on the command line, only the server's tools, the server's wall time (a slow session is
//! stopped), and the server's daily budget (spent by the first session). `/foreman constitution` shows each
//! value with `server` and what the repository asked for, capped.

mod e2e_support;

use std::time::Duration;

use e2e_support::{ORG, Setup, World, agent_script};
use serde_json::Value;

/// Bounds the test: a session stopped at the server's 5 s wall time, two quick ones, a command reply.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// The repository the constitution is in.
const REPO: &str = "acme/greedy";

/// The repository's constitution: more of everything than the server allows.
const GREEDY: &str = r#"[agent]
max_cost_usd = 500.0
timeout_secs = 86400
allowed_tools = ["Bash(cargo test:*)", "WebFetch", "Edit"]

[limits]
daily_cost_usd = 1000.0
"#;

/// The stand-in Claude CLI: reads the prompt; for an issue titled SLOW-TASK sleeps past the server's wall
/// time; otherwise commits a file and reports its arguments and a cost of two cents as its result.
const FAKE_CLAUDE: &str = r#"prompt=$(cat)
case "$prompt" in *SLOW-TASK*) sleep 60 ;; esac
echo "done" > "done-$$.txt"
git add -A
git commit -q -m "Work"
printf '{"type":"result","subtype":"success","is_error":false,"result":"claude was run with: %s","num_turns":1,"total_cost_usd":0.02,"session_id":"fake-session"}\n' "$*""#;

fn issue_in(state: &Value, number: u64) -> Value {
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == REPO).unwrap();
    repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == number).cloned().unwrap_or(Value::Null)
}

fn comments_on(state: &Value, number: u64) -> Vec<String> {
    issue_in(state, number)["comments"]
        .as_array()
        .map(|c| c.iter().map(|c| c["body"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

fn pull_closing(state: &Value, number: u64) -> Option<Value> {
    e2e_support::measure::pulls_closing_in(state, REPO, number).into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_cannot_raise_the_operators_limits() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let scripts = tempfile::tempdir().unwrap();
        let claude = agent_script(scripts.path(), "claude", FAKE_CLAUDE);
        let config = format!(
            r#"[agent]
claude_path = {claude:?}
max_cost_usd = 2.5
timeout_secs = 5
kill_grace_secs = 1
allowed_tools = ["Bash", "Read"]
daily_cost_usd = 0.01
"#,
            claude = claude.display().to_string()
        );
        let repos: [(&str, &[(&str, &str)]); 1] =
            [("greedy", &[(".github/foreman.toml", GREEDY), ("src/lib.rs", "pub fn f() {}\n")])];
        let setup = Setup {
            config: &config,
            env: &[("FOREMAN_AGENT_BACKEND", "claude"), ("FOREMAN_MAX_SESSIONS", "1")],
            repos: &repos,
            ..Setup::default()
        };
        let world = World::start_with("exit 1", setup).await;
        assert_eq!(ORG, REPO.split('/').next().unwrap());

        // The server's wall time holds: the slow session is stopped after 5 s, not a day.
        let (slow, _) = world.sim.create_issue(REPO, "SLOW-TASK", "Take your time.", "alice").unwrap();
        world.sim.add_label(REPO, slow, "foreman", "alice").unwrap();
        let state = world
            .wait("the slow session to be stopped at the server's wall time", |s| {
                comments_on(s, slow).iter().any(|c| c.contains("The agent ran longer than 5 s."))
            })
            .await;
        assert!(pull_closing(&state, slow).is_none());

        // The server's cost cap and tools are on the command line.
        let (quick, _) = world.sim.create_issue(REPO, "Quick task", "Please.", "alice").unwrap();
        world.sim.add_label(REPO, quick, "foreman", "alice").unwrap();
        let state = world.wait("the quick session's pull request", |s| pull_closing(s, quick).is_some()).await;
        let body = pull_closing(&state, quick).unwrap()["body"].as_str().unwrap_or_default().to_owned();
        assert!(body.contains("--max-budget-usd 2.5 "), "the server's cost cap: {body}");
        assert!(body.contains("--allowedTools Bash(cargo test:*)"), "only tools the server allows: {body}");
        assert!(!body.contains("WebFetch") && !body.contains(",Edit"), "{body}");

        // The server's daily budget holds: two cents spent of one, the next issue waits for tomorrow.
        let (next, _) = world.sim.create_issue(REPO, "Next task", "Please.", "alice").unwrap();
        world.sim.add_label(REPO, next, "foreman", "alice").unwrap();
        world
            .wait("the budget reply", |s| comments_on(s, next).iter().any(|c| c.contains("limits.daily_cost_usd")))
            .await;
        assert!(pull_closing(&world.sim.state(), next).is_none(), "no session past the server's daily budget");

        // `/foreman constitution` says where each value came from, and what was capped.
        world.sim.comment(REPO, next, "/foreman constitution", "alice").unwrap();
        let state = world
            .wait("the constitution reply", |s| {
                comments_on(s, next).iter().any(|c| c.contains("### Effective constitution"))
            })
            .await;
        let reply = comments_on(&state, next).into_iter().find(|c| c.contains("### Effective constitution")).unwrap();
        for row in [
            "| `max_cost_usd` | `2.5` | server (capped: repository asked for `500.0`) | `2.5` |",
            "| `timeout_secs` | `5.0` | server (capped: repository asked for `86400`) | `5.0` |",
            "| `allowed_tools` | `\"Bash(cargo test:*)\"` | server (capped: repository asked for \
             `\"Bash(cargo test:*)\"`, `\"WebFetch\"`, `\"Edit\"`) |",
            "| `daily_cost_usd` | `0.01` | server (capped: repository asked for `1000.0`) | `0.01` |",
        ] {
            assert!(reply.contains(row), "{row} in:\n{reply}");
        }
    })
    .await
    .expect("in time");
}
