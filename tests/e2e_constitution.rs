//! End to end: every checkable rule of a repository's constitution is enforced by Foreman before anything is
//! pushed. One agent breaks each rule in its own repository; for each, no pull request opens, nothing is
//! pushed, and the reason (rule, file, line) is posted on the issue. An invalid `.github/foreman.toml` is
//! reported with its line and column in the tracking comment, and the job waits for the file to change:
//! the agent never runs.

mod e2e_support;

use std::time::Duration;

use e2e_support::{ORG, Setup, World};
use serde_json::Value;

/// One agent for every repository: it breaks the rule its repository is named after.
const RULE_BREAKER: &str = r#"case "$FOREMAN_REPO" in
  acme/protected) mkdir -p .github/workflows; echo "on: push" > .github/workflows/ci.yml ;;
  acme/secret) echo "token = ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ" > settings.txt ;;
  acme/tdd) echo "pub fn g() {}" >> src/lib.rs ;;
  acme/size) echo a > a.txt; echo b > b.txt; echo c > c.txt ;;
  acme/command) echo "ok" > change.txt ;;
  *) echo "the agent ran in $FOREMAN_REPO" > ran.txt ;;
esac
git add -A
git commit -q -m "Work on #$FOREMAN_ISSUE""#;

const SOURCE: (&str, &str) = ("src/lib.rs", "pub fn f() {}\n");

fn comments_on(state: &Value, repo: &str, number: u64) -> Vec<String> {
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == repo).unwrap();
    let issue = repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == number).unwrap();
    issue["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap_or("").to_owned()).collect()
}

fn pulls_of(state: &Value, repo: &str) -> usize {
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == repo).unwrap();
    repo["pulls"].as_array().map_or(0, Vec::len)
}

fn branches(world: &World, repo: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["for-each-ref", "--format=%(refname)", "refs/heads/"])
        .current_dir(world.sim.git_dir(repo).unwrap())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_broken_by_an_agent_stops_the_push_and_the_reason_is_posted() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let toml = |rules: &str| format!("[rules]\n{rules}\n");
        let protected = toml(r#"protected_paths = [".github/workflows/**"]"#);
        let secret = toml("builtin_secret_patterns = true");
        let tdd = "[rules.tdd]\nrequired = true\n".to_owned();
        let size = toml("max_files_changed = 2");
        let command =
            "[[rules.required_commands]]\nname = \"tests\"\nrun = \"echo the tests failed; exit 3\"\n".to_owned();
        let invalid = "[rules]\nmax_files_changed = 2\nprotect_paths = [\"x\"]\n".to_owned();
        let backend = "[agent]\nbackend = \"claude\"\n".to_owned();
        let repos: Vec<(&str, String, &str)> = vec![
            ("protected", protected, "protected_paths (.github/workflows/ci.yml"),
            ("secret", secret, "secret_patterns (settings.txt:1)"),
            ("tdd", tdd, "tdd (src/lib.rs)"),
            ("size", size, "max_files_changed"),
            ("command", command, "`tests` failed with exit code 3"),
            ("invalid", invalid, "line 3, column 1"),
            ("backend", backend, "but this Foreman runs \"command\""),
        ];
        let files: Vec<[(&str, &str); 2]> =
            repos.iter().map(|(_, t, _)| [(".github/foreman.toml", t.as_str()), SOURCE]).collect();
        let with: Vec<(&str, &[(&str, &str)])> = repos.iter().zip(&files).map(|((n, _, _), f)| (*n, &f[..])).collect();
        let setup = Setup { repos: &with, env: &[("FOREMAN_MAX_SESSIONS", "7")], ..Setup::default() };
        let world = World::start_with(RULE_BREAKER, setup).await;

        let mut issues = Vec::new();
        for (name, _, _) in &repos {
            let repo = format!("{ORG}/{name}");
            let (number, _) = world.sim.create_issue(&repo, "Do the thing", "Please.", "alice").unwrap();
            world.sim.add_label(&repo, number, "foreman", "alice").unwrap();
            issues.push((repo, number));
        }
        for ((name, _, reason), (repo, number)) in repos.iter().zip(&issues) {
            let state = world
                .wait(&format!("the reason in {repo}#{number}"), |s| {
                    comments_on(s, repo, *number).iter().any(|c| c.contains(reason))
                })
                .await;
            // An invalid file's comment is posted before the job's outcome is recorded.
            world
                .wait_log(&format!("{repo}#{number}'s task to finish"), |l| {
                    l["message"] == "finished"
                        && l["span"]["repo"] == repo.as_str()
                        && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
                })
                .await;
            assert_eq!(pulls_of(&state, repo), 0, "{name}: no pull request");
            assert!(!branches(&world, repo).contains("foreman/"), "{name}: nothing pushed: {}", branches(&world, repo));
            let job = world.job_in(repo, *number).await;
            if *name == "invalid" {
                // Nothing can change until the file does: the job waits for it, not a failure.
                assert_eq!(job["wait"]["kind"], "constitution", "{name}: {job}");
                continue;
            }
            assert_eq!(job["last_failure"]["class"], "validation", "{name}: {job}");
        }
        // The invalid file's job never started an agent: no session log mentions acme/invalid's agent.
        let state = world.sim.state();
        let invalid = comments_on(&state, "acme/invalid", issues[5].1);
        assert!(invalid.iter().any(|c| c.contains("protect_paths")), "the unknown key is named: {invalid:?}");
    })
    .await
    .expect("every rule was enforced in time");
}

/// A repository's own `[triggers]` and `[limits]` apply: its label queues work (the server's does not),
/// and once its daily session budget is spent the next issue waits for tomorrow and is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repositorys_triggers_and_daily_budget_apply() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let custom = "[triggers]\nlabel = \"ai\"\n";
        let budget = "[limits]\ndaily_sessions = 1\n";
        let repos: [(&str, &[(&str, &str)]); 2] = [
            ("custom", &[(".github/foreman.toml", custom), SOURCE]),
            ("budget", &[(".github/foreman.toml", budget), SOURCE]),
        ];
        let setup = Setup { repos: &repos, env: &[("FOREMAN_MAX_SESSIONS", "4")], ..Setup::default() };
        let world = World::start_with(e2e_support::FIXING_AGENT, setup).await;

        // acme/custom: `foreman` is not its label; `ai` is.
        let (ignored, _) = world.sim.create_issue("acme/custom", "Not this way", "", "alice").unwrap();
        world.sim.add_label("acme/custom", ignored, "foreman", "alice").unwrap();
        let (wanted, _) = world.sim.create_issue("acme/custom", "This way", "", "alice").unwrap();
        world.sim.add_label("acme/custom", wanted, "ai", "alice").unwrap();
        world.wait("a pull request in acme/custom", |s| pulls_of(s, "acme/custom") == 1).await;
        assert_eq!(world.job_in("acme/custom", ignored).await, Value::Null, "the server's label queues nothing there");

        // acme/budget: one session a day.
        let (first, _) = world.sim.create_issue("acme/budget", "First", "", "alice").unwrap();
        world.sim.add_label("acme/budget", first, "foreman", "alice").unwrap();
        world.wait("the first pull request in acme/budget", |s| pulls_of(s, "acme/budget") == 1).await;
        let (second, _) = world.sim.create_issue("acme/budget", "Second", "", "alice").unwrap();
        world.sim.add_label("acme/budget", second, "foreman", "alice").unwrap();
        world
            .wait("the budget reply", |s| {
                comments_on(s, "acme/budget", second).iter().any(|c| c.contains("limits.daily_sessions"))
            })
            .await;
        // The reply comes before the job's outcome is recorded: wait for the job's task to finish.
        world
            .wait_log("the second job's task to finish", |l| {
                l["message"] == "finished"
                    && l["span"]["repo"] == "acme/budget"
                    && l["span"]["issue"].as_str() == Some(second.to_string().as_str())
            })
            .await;
        let job = world.job_in("acme/budget", second).await;
        // A wait, not a failure and not an attempt.
        assert_eq!((job["state"].as_str(), job["wait"]["kind"].as_str()), (Some("queued"), Some("budget")), "{job}");
        assert!(job["last_failure"].is_null() && job["failures"].is_null(), "nothing failed: {job}");
        assert_eq!(job["attempts"], 0, "{job}");
        let tomorrow = time::OffsetDateTime::now_utc().date().next_day().unwrap().to_string();
        assert!(job["not_before"].as_str().unwrap().starts_with(&tomorrow), "until tomorrow: {job}");
        assert_eq!(pulls_of(&world.sim.state(), "acme/budget"), 1, "no second session today");
        // The tracking comment shows a ⏳ wait with its reason and end, not a failed attempt.
        let tracking = format!("⏳ Waiting until {tomorrow} 00:00 UTC: the repository's daily budget is spent.");
        let state = world
            .wait("the tracking comment to show the wait", |s| {
                comments_on(s, "acme/budget", second).iter().any(|c| c.contains(&tracking))
            })
            .await;
        let shown: Vec<String> =
            comments_on(&state, "acme/budget", second).into_iter().filter(|c| c.contains("foreman:tracking")).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown[0].contains("Foreman: queued"), "{}", shown[0]);
        for not in ["failed", "Attempt", "rate-limit"] {
            assert!(!shown[0].contains(not), "no {not}: {}", shown[0]);
        }
    })
    .await
    .expect("in time");
}
