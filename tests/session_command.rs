//! The command backend against real git and real processes: the environment and prompt it gets, its
//! commits, and the limits (timeout, stall, cancellation, output cap). Limits are short in configuration;
//! the tests never sleep.

mod session_support;

use std::path::Path;
use std::time::{Duration, Instant};

use foreman::session::{
    AgentConfig, Credentials, FailureCause, PromptKind, SessionOutcome, SessionRunner, SessionSpec, Verdict,
};
use session_support::*;
use tokio_util::sync::CancellationToken;

/// Bounds every test here: the slowest does one git fetch and a one-second limit.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn run(runner: &SessionRunner, spec: SessionSpec) -> SessionOutcome {
    tokio::time::timeout(TEST_TIMEOUT, runner.run(spec, CancellationToken::new(), |_| {}))
        .await
        .expect("session timed out")
}

fn setup(script: &str) -> (tempfile::TempDir, SessionRunner, SessionSpec) {
    setup_with(command_config(script))
}

fn setup_with(config: AgentConfig) -> (tempfile::TempDir, SessionRunner, SessionSpec) {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n"), ("AGENTS.md", "Run make test before committing.\n")]);
    let runner = runner(&dir.path().join("data"), config, Credentials::default());
    let spec = spec(&origin, "Add a greeting file");
    (dir, runner, spec)
}

fn class(o: &SessionOutcome) -> FailureCause {
    match &o.verdict {
        Verdict::Failed { class, .. } => class.clone(),
        v => panic!("expected a failure, got {v:?}"),
    }
}

#[tokio::test]
async fn the_command_gets_its_environment_and_prompt_and_its_commits_are_the_outcome() {
    let script = r#"
        set -e
        { echo "repo=$FOREMAN_REPO"; echo "issue=$FOREMAN_ISSUE"; echo "branch=$FOREMAN_BRANCH";
          echo "ws=$FOREMAN_WORKSPACE"; echo "pwd=$(pwd)"; echo "session=$FOREMAN_SESSION_ID"; } > env.txt
        cat > stdin.txt
        cp "$FOREMAN_PROMPT_FILE" prompt.txt
        git add env.txt stdin.txt prompt.txt
        git commit -qm "Add the files"
        echo "line two" >> env.txt
        git commit -qam "Second commit"
        echo "All done"
    "#;
    let (_dir, runner, spec) = setup(script);
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    assert_eq!(outcome.branch, "foreman/7-add-a-greeting-file");
    let subjects: Vec<_> = outcome.changes.commits.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["Add the files", "Second commit"]);
    let mut paths: Vec<_> = outcome.changes.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["env.txt", "prompt.txt", "stdin.txt"]);
    assert!(outcome.changes.lines_added >= 7);
    assert!(!outcome.changes.committed_leftovers);
    assert_eq!(outcome.answer.as_deref().map(str::trim), Some("All done"));

    // The branch stays in the mirror (for the push); the worktree is gone.
    let mirror = runner.workspaces().mirror_path(&spec_repo());
    let ws = runner.workspaces().worktree_path(&spec_repo(), foreman::ids::IssueNumber(7));
    assert!(!ws.exists(), "the worktree is removed");
    let show = |path: &str| git(&mirror, &["show", &format!("foreman/7-add-a-greeting-file:{path}")]);
    let env = show("env.txt");
    for want in [
        "repo=octo/repo",
        "issue=7",
        "branch=foreman/7-add-a-greeting-file",
        &format!("session={}", outcome.session_id),
    ] {
        assert!(env.contains(want), "{want} missing in {env}");
    }
    // The agent sees its repository at the sandbox's fixed path.
    assert!(env.contains("ws=/workspace\n") && env.contains("pwd=/workspace\n"), "{env}");
    let prompt = show("prompt.txt");
    assert_eq!(prompt, show("stdin.txt"), "the prompt is on stdin and in the file");
    assert!(prompt.contains("Add a greeting file") && prompt.contains("Please do it."));
    assert!(prompt.contains("Run make test before committing."), "AGENTS.md is in the prompt");
    // The prompt file lived outside the worktree and is gone.
    assert!(!prompt.is_empty());

    // The log ends with the summary.
    let log = std::fs::read_to_string(&outcome.log_path).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "summary");
    assert_eq!(last["summary"]["files_changed"], 3);
    assert_eq!(last["summary"]["commits"], 2);
    assert_eq!(last["verdict"]["verdict"], "changes_ready");
}

fn spec_repo() -> foreman::ids::RepoName {
    foreman::ids::RepoName::new("octo", "repo").unwrap()
}

#[tokio::test]
async fn uncommitted_changes_are_committed_and_no_changes_is_an_answer_or_with_nothing_said_a_failure() {
    let (_dir, runner, spec) = setup("echo hello > left.txt");
    let outcome = run(&runner, spec.clone()).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady);
    assert!(outcome.changes.committed_leftovers);
    assert_eq!(outcome.changes.files.len(), 1);

    let (_dir, runner, spec) = setup("echo 'It is already done: see README.md'");
    let outcome = run(&runner, spec.clone()).await;
    assert_eq!(outcome.verdict, Verdict::Answered);
    assert!(outcome.answer.unwrap().contains("already done"));

    let outcome = run(&runner, SessionSpec { kind: PromptKind::Planning, ..spec }).await;
    assert_eq!(outcome.verdict, Verdict::Answered);

    let (_dir, runner, spec) = setup("true");
    let outcome = run(&runner, spec).await;
    assert!(matches!(outcome.verdict, Verdict::NoChanges { .. }), "{:?}", outcome.verdict);
}

#[tokio::test]
async fn a_failing_command_is_an_agent_failure_said_in_words_with_its_error_in_the_log() {
    let (_dir, runner, spec) = setup("echo 'boom: no such target' >&2; exit 3");
    let outcome = run(&runner, spec).await;
    let Verdict::Failed { class, reason } = &outcome.verdict else { panic!("{:?}", outcome.verdict) };
    assert_eq!(*class, FailureCause::Agent);
    assert_eq!(reason, "the agent command exited with status 3");
    let log = std::fs::read_to_string(&outcome.log_path).unwrap();
    assert!(log.contains("boom: no such target"), "stderr stays in the session log: {log}");
    assert!(class.counts_as_failure());
}

#[tokio::test]
async fn the_wall_clock_timeout_ends_the_session() {
    let config = AgentConfig {
        timeout_secs: 1.0,
        stall_timeout_secs: 30.0,
        ..command_config("echo start; while :; do echo tick; sleep 0.2; done")
    };
    let (_dir, runner, spec) = setup_with(config);
    let t = Instant::now();
    let outcome = run(&runner, spec).await;
    assert_eq!(class(&outcome), FailureCause::Timeout);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_silent_agent_is_ended_by_the_stall_timeout() {
    let config =
        AgentConfig { timeout_secs: 30.0, stall_timeout_secs: 1.0, ..command_config("echo start; exec sleep 30") };
    let (_dir, runner, spec) = setup_with(config);
    let t = Instant::now();
    let outcome = run(&runner, spec).await;
    assert_eq!(class(&outcome), FailureCause::Stalled);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[tokio::test]
async fn output_past_the_cap_ends_the_session() {
    let config = AgentConfig {
        max_output_bytes: 100_000,
        ..command_config("yes 'a long line of output' | head -c 5000000; sleep 30")
    };
    let (_dir, runner, spec) = setup_with(config);
    let outcome = run(&runner, spec).await;
    assert_eq!(class(&outcome), FailureCause::OutputLimit);
}

async fn wait_for_file(path: &Path) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(s) = std::fs::read_to_string(path)
                && s.ends_with('\n')
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agent did not start")
}

#[tokio::test]
async fn cancellation_ends_the_whole_process_group_even_when_it_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let needle = sleep_needle(2);
    // The shell and its child ignore SIGTERM, so only the SIGKILL after the grace period ends them.
    let script = format!("trap '' TERM; {needle} & echo started > {}; wait", started.display());
    let config = AgentConfig {
        kill_grace_secs: 0.5,
        sandbox_writable_paths: vec![dir.path().to_owned()],
        ..command_config(&script)
    };
    let (_data, runner, spec) = setup_with(config);
    let cancel = CancellationToken::new();
    let (outcome, ()) = tokio::time::timeout(TEST_TIMEOUT, async {
        tokio::join!(runner.run(spec, cancel.clone(), |_| {}), async {
            wait_for_file(&started).await;
            assert!(!running(&needle).is_empty(), "the agent's child runs");
            cancel.cancel();
        })
    })
    .await
    .unwrap();
    assert_eq!(class(&outcome), FailureCause::Cancelled);
    assert!(!FailureCause::Cancelled.counts_as_failure());
    assert!(gone(&needle).await.is_empty(), "the agent's child was killed with the group");
}

#[test]
fn a_session_can_be_spawned_on_the_runtime() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let (_dir, runner, spec) = setup("true");
    let runner = std::sync::Arc::new(runner);
    let fut = async move { runner.run(spec, CancellationToken::new(), |_| {}).await };
    assert_send(&fut);
}

#[tokio::test]
async fn what_the_agent_leaves_running_ends_with_it_and_does_not_hold_the_session() {
    let needle = sleep_needle(3);
    // The background process keeps stdout open after the agent exits.
    let script = format!("{needle} & echo changed > f.txt; git add f.txt; git commit -qm f");
    let config = AgentConfig { kill_grace_secs: 0.5, stall_timeout_secs: 30.0, ..command_config(&script) };
    let (_data, runner, spec) = setup_with(config);
    let t = Instant::now();
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(gone(&needle).await.is_empty(), "the background process was ended with the group");
}
