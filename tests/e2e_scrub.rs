//! End to end: what Foreman writes on GitHub is scrubbed of the exact values of the secrets it holds, whatever
//! their shape. A command agent given the webhook secret and the admin token (through `agent.env`, standing
//! in for an agent that found them) prints both, writes them into its commit message and its summary, and
//! fails on a second issue with them on its last line of stderr. Neither value, nor a long piece of either,
//! is in any pull request title or body, comment or check run read back from github-sim; a value that is not
//! a secret is kept.

mod e2e_support;

use std::time::Duration;

use e2e_support::{REPO, Setup, World};
use serde_json::Value;

/// Bounds the test: two lifecycles, seconds each on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// The admin token Foreman is started with. Not token-shaped: only its exact value can catch it.
const ADMIN_TOKEN: &str = "admin-correct-horse-battery-staple-42";
/// An `agent.env` value whose name marks it secret (`…_TOKEN`).
const DEPLOY_TOKEN: &str = "deploy-value-7f3a9c2e51";
/// An `agent.env` value that is not a secret: it must reach GitHub as written.
const GREETING: &str = "plain-greeting-words";

/// Issue 1: prints the values, commits them in its message, and ends with them in its summary.
/// Any later issue: prints them and fails with them on stderr (kept in the session log, not on GitHub).
const LEAKING_AGENT: &str = r#"echo "hook=$HOOK_VALUE admin=$ADMIN_VALUE"
if [ "$FOREMAN_ISSUE" != "1" ]; then
  echo "cannot go on: hook=$HOOK_VALUE admin=$ADMIN_VALUE deploy=$DEPLOY_TOKEN" >&2
  exit 1
fi
echo "fixed" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix with $HOOK_VALUE and $ADMIN_VALUE"
echo "Done. The webhook secret is $HOOK_VALUE, the admin token is $ADMIN_VALUE, the deploy token is $DEPLOY_TOKEN, and $GREETING.""#;

/// Every text Foreman wrote on `REPO`: pull request titles and bodies, comments, check run output.
fn written_texts(state: &Value) -> Vec<String> {
    let repo = World::repo_state(state);
    let mut out = Vec::new();
    let strings = |v: &Value, out: &mut Vec<String>| {
        if let Some(s) = v.as_str() {
            out.push(s.to_owned());
        }
    };
    for pull in repo["pulls"].as_array().into_iter().flatten() {
        strings(&pull["title"], &mut out);
        strings(&pull["body"], &mut out);
    }
    for issue in repo["issues"].as_array().into_iter().flatten() {
        for comment in issue["comments"].as_array().into_iter().flatten() {
            strings(&comment["body"], &mut out);
        }
    }
    for run in repo["check_runs"].as_array().into_iter().flatten() {
        out.push(run["output"].to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_prints_foremans_secrets_gets_none_of_them_onto_github() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let config = format!(
            "[agent.env]\nHOOK_VALUE = {hook:?}\nADMIN_VALUE = {ADMIN_TOKEN:?}\nDEPLOY_TOKEN = {DEPLOY_TOKEN:?}\n\
             GREETING = {GREETING:?}\n",
            hook = e2e_support::SECRET,
        );
        let setup = Setup { env: &[("FOREMAN_ADMIN_TOKEN", ADMIN_TOKEN)], config: &config, ..Setup::default() };
        let world = World::start_with(LEAKING_AGENT, setup).await;

        let (fixed, _) = world.sim.create_issue(REPO, "Fix the widget", "Please.", "alice").unwrap();
        world.sim.add_label(REPO, fixed, "foreman", "alice").unwrap();
        let pull = world.wait_pull(fixed).await;
        assert_eq!(fixed, 1, "the agent tells the issues apart by number");
        let (failing, _) = world.sim.create_issue(REPO, "Break the widget", "Please.", "alice").unwrap();
        world.sim.add_label(REPO, failing, "foreman", "alice").unwrap();
        let state = world
            .wait("the success and the failure on the tracking comments", |s| {
                World::tracking_body(s, fixed).is_some_and(|b| b.contains("pull request ready"))
                    && World::tracking_body(s, failing).is_some_and(|b| b.contains("#### Failure"))
            })
            .await;

        let body = pull["body"].as_str().unwrap_or_default();
        assert!(body.contains(GREETING), "a value that is not a secret is kept: {body}");
        assert!(body.contains("[redacted]"), "the secrets were replaced, not the summary dropped: {body}");
        let failure = World::tracking_body(&state, failing).unwrap();
        assert!(failure.contains("The agent command exited with status 1."), "the failure is still told: {failure}");

        let texts = written_texts(&state);
        assert!(texts.len() >= 4, "pull request title and body, two tracking comments: {texts:?}");
        for secret in [e2e_support::SECRET, ADMIN_TOKEN, DEPLOY_TOKEN] {
            // The whole value, and the pieces a cut could leave: its first and last 10 bytes.
            let pieces = [secret, &secret[..10], &secret[secret.len() - 10..]];
            for text in &texts {
                for piece in pieces {
                    assert!(!text.contains(piece), "{piece:?} (of a secret) reached GitHub in:\n{text}");
                }
            }
        }
    })
    .await
    .expect("both lifecycles finished in time");
}
