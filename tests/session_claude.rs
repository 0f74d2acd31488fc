//! The real Claude Code CLI (installed by `.ci/install-claude`) against the loopback Messages API stub:
//! a session where the stub's tool uses make the CLI write a file and commit it, credential rotation on 401,
//! back-off classes for 429 and 529, a usage limit with its reset time, and the turn limit.
//! Each run takes a few seconds; the CLI's own retries are off (`agent.claude_max_retries = 0`).

mod session_support;

use std::sync::Mutex;
use std::time::Duration;

use anthropic_stub::{Block, Reply, Stub};
use foreman::session::{
    AgentConfig, Credentials, FailureCause, Progress, SessionOutcome, SessionRunner, SessionSpec, Verdict,
};
use serde_json::json;
use session_support::*;
use tokio_util::sync::CancellationToken;

/// Bounds each test: a CLI run against the stub takes 1–3 s; several runs at most.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

struct Setup {
    _dir: tempfile::TempDir,
    runner: SessionRunner,
    spec: SessionSpec,
    stub: Stub,
}

async fn setup(credentials: Credentials, tune: impl FnOnce(&mut AgentConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n")]);
    let stub = Stub::start().await.unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut config = claude_config(&stub.url(), &home);
    tune(&mut config);
    let runner = runner(&dir.path().join("data"), config, credentials);
    let spec = spec(&origin, "Add a greeting file");
    Setup { _dir: dir, runner, spec, stub }
}

async fn run(s: &Setup, spec: SessionSpec) -> (SessionOutcome, Vec<Progress>) {
    let seen = Mutex::new(Vec::new());
    let outcome = tokio::time::timeout(
        TEST_TIMEOUT,
        s.runner.run(spec, CancellationToken::new(), |p| seen.lock().unwrap().push(p)),
    )
    .await
    .expect("session timed out");
    (outcome, seen.into_inner().unwrap())
}

fn failure(o: &SessionOutcome) -> (FailureCause, String) {
    match &o.verdict {
        Verdict::Failed { class, reason } => (class.clone(), reason.clone()),
        v => panic!("expected a failure, got {v:?}; log {}", std::fs::read_to_string(&o.log_path).unwrap_or_default()),
    }
}

#[tokio::test]
async fn the_cli_writes_a_file_and_commits_it_on_the_session_branch() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub-first")]), |_| {}).await;
    // The agent sees its repository at the sandbox's fixed path.
    let worktree = std::path::Path::new(foreman::executor::local::sandbox::WORKSPACE);
    s.stub.push(Reply::blocks(vec![
        Block::Text("I'll add the file.".into()),
        Block::ToolUse {
            name: "Write".into(),
            input: json!({ "file_path": worktree.join("hello.txt"), "content": "Hello, world!\n" }),
        },
    ]));
    s.stub.push(Reply::tool_use(
        "Bash",
        json!({ "command": "git add hello.txt && git commit -q -m 'Add hello.txt'", "description": "Commit" }),
    ));
    s.stub.push(Reply::text("Added hello.txt with a greeting."));
    let (outcome, progress) = run(&s, s.spec.clone()).await;

    assert_eq!(outcome.verdict, Verdict::ChangesReady, "log: {}", std::fs::read_to_string(&outcome.log_path).unwrap());
    let subjects: Vec<_> = outcome.changes.commits.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["Add hello.txt"]);
    assert_eq!(outcome.changes.files.len(), 1);
    assert_eq!(outcome.changes.files[0].path, "hello.txt");
    assert_eq!(outcome.changes.lines_added, 1);
    assert!(!outcome.changes.committed_leftovers, "the agent committed itself");
    assert_eq!(outcome.answer.as_deref(), Some("Added hello.txt with a greeting."));
    assert!(outcome.agent_session_id.is_some(), "the Claude session id is kept for --resume");

    let sum = &outcome.summary;
    assert_eq!(sum.turns, 3);
    assert_eq!(sum.tools.get("Write"), Some(&1));
    assert_eq!(sum.tools.get("Bash"), Some(&1));
    assert!(sum.cost_usd.unwrap() > 0.0);
    assert_eq!(sum.productivity_score, Some((1.0 * 2.0 + 5.0) / 2.0));
    assert_eq!(sum.credential.as_deref(), Some("ANTHROPIC_API_KEY"));
    assert!(progress.contains(&Progress::ToolUse("Write".into())));
    assert!(progress.iter().any(|p| matches!(p, Progress::AgentSession { .. })));

    // The stub saw the prompt, with the issue, and the configured key.
    let requests = s.stub.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].last_user_text().contains("Add a greeting file"));
    assert!(requests.iter().all(|r| r.credential.as_deref() == Some("sk-ant-api03-stub-first")));

    // The commit is on the branch in the mirror, authored by Foreman's identity.
    let mirror = s.runner.workspaces().mirror_path(&s.spec.repo);
    let author = git(&mirror, &["log", "-1", "--format=%an <%ae>", &outcome.branch]);
    assert_eq!(author.trim(), "foreman[bot] <foreman[bot]@users.noreply.github.com>");
    assert_eq!(git(&mirror, &["show", &format!("{}:hello.txt", outcome.branch)]), "Hello, world!\n");

    // Every stream line is in the log, then the summary.
    let log = std::fs::read_to_string(&outcome.log_path).unwrap();
    assert!(log.lines().any(|l| l.contains(r#""kind":"agent""#) && l.contains(r#""subtype":"init""#)));
    assert!(!log.contains("sk-ant-api03-stub-first"), "the credential is never logged");
}

#[tokio::test]
async fn a_refused_credential_rotates_to_the_next_and_all_refused_is_an_infrastructure_failure() {
    let creds = credentials(&[
        ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-first"),
        ("CLAUDE_CODE_OAUTH_TOKEN_2", "sk-ant-oat01-second"),
    ]);
    let s = setup(creds, |_| {}).await;
    s.stub.reject_credential("sk-ant-oat01-first");
    s.stub.push(Reply::text("The README already greets; nothing to change."));
    let spec = s.spec.clone();
    let (outcome, progress) = run(&s, spec.clone()).await;
    assert_eq!(outcome.verdict, Verdict::Answered, "log: {}", std::fs::read_to_string(&outcome.log_path).unwrap());
    assert!(progress.contains(&Progress::CredentialRotated { next: "CLAUDE_CODE_OAUTH_TOKEN_2".into() }));
    assert_eq!(outcome.summary.credential.as_deref(), Some("CLAUDE_CODE_OAUTH_TOKEN_2"));
    let requests = s.stub.requests();
    assert_eq!(requests.first().unwrap().credential.as_deref(), Some("sk-ant-oat01-first"));
    assert_eq!(requests.first().unwrap().status, 401);
    assert_eq!(requests.last().unwrap().credential.as_deref(), Some("sk-ant-oat01-second"));
    assert_eq!(requests.last().unwrap().status, 200);

    // The next session starts with the credential that worked.
    let before = s.stub.requests().len();
    let (outcome, _) = run(&s, spec.clone()).await;
    assert_eq!(outcome.verdict, Verdict::Answered);
    assert!(s.stub.requests()[before..].iter().all(|r| r.credential.as_deref() == Some("sk-ant-oat01-second")));

    // When every credential is refused the job fails as infrastructure.
    s.stub.reject_credential("sk-ant-oat01-second");
    let (outcome, _) = run(&s, spec).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(class, FailureCause::Infrastructure);
    assert!(reason.contains("every configured Claude credential was refused"), "{reason}");
}

#[tokio::test]
async fn a_429_is_a_rate_limit_to_back_off_from() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]), |_| {}).await;
    s.stub.set_fallback(Reply::rate_limited());
    let (outcome, _) = run(&s, s.spec.clone()).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(class, FailureCause::RateLimited, "{reason}");
    assert!(reason.contains("429"), "{reason}");
    assert!(!class.counts_as_failure());
}

#[tokio::test]
async fn a_529_is_an_overload_to_back_off_from() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]), |_| {}).await;
    s.stub.set_fallback(Reply::overloaded());
    let (outcome, _) = run(&s, s.spec.clone()).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(class, FailureCause::Overloaded, "{reason}");
    assert!(!class.counts_as_failure());
}

#[tokio::test]
async fn a_usage_limit_reschedules_at_its_reset_time() {
    let s = setup(credentials(&[("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-stub")]), |_| {}).await;
    let resets_at = jiff::Timestamp::now().as_second() + 3 * 3600;
    s.stub.set_fallback(Reply::usage_limit("five_hour", resets_at));
    let (outcome, _) = run(&s, s.spec.clone()).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(
        class,
        FailureCause::UsageLimit { resets_at: Some(jiff::Timestamp::from_second(resets_at).unwrap()) },
        "{reason}"
    );
    assert!(reason.contains("5-hour limit"), "{reason}");
    assert!(!class.counts_as_failure(), "a usage limit is not the issue's failure");
}

#[tokio::test]
async fn the_turn_limit_ends_a_looping_agent() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]), |c| c.max_turns = Some(2)).await;
    s.stub.set_fallback(Reply::tool_use("Read", json!({ "file_path": "/etc/hostname" })));
    let (outcome, _) = run(&s, s.spec.clone()).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(class, FailureCause::TurnLimit, "{reason}");
    assert!(reason.contains("maximum number of turns"), "{reason}");
}

#[tokio::test]
async fn the_cost_limit_ends_an_expensive_agent() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]), |c| c.max_cost_usd = Some(0.01)).await;
    s.stub.set_fallback(Reply::tool_use("Read", json!({ "file_path": "/etc/hostname" })).with_usage(1_000_000, 1_000));
    let (outcome, _) = run(&s, s.spec.clone()).await;
    let (class, reason) = failure(&outcome);
    assert_eq!(class, FailureCause::CostLimit, "{reason}");
    assert!(outcome.summary.cost_usd.unwrap() > 0.01);
}

#[tokio::test]
async fn a_follow_up_resumes_the_claude_session() {
    let s = setup(credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]), |_| {}).await;
    s.stub.push(Reply::text("First answer: the plan is to greet."));
    let spec = s.spec.clone();
    let (first, _) = run(&s, spec.clone()).await;
    assert_eq!(first.verdict, Verdict::Answered);
    let id = first.agent_session_id.clone().expect("a Claude session id");
    let before = s.stub.requests().len();
    s.stub.push(Reply::text("Continuing."));
    let (second, _) = run(&s, SessionSpec { resume: Some(id.clone()), ..spec }).await;
    assert_eq!(second.verdict, Verdict::Answered, "{:?}", second.answer);
    let request = &s.stub.requests()[before];
    let history = request.body["messages"].to_string();
    assert!(
        history.contains("First answer: the plan is to greet."),
        "the resumed conversation carries the first: {history}"
    );
}
