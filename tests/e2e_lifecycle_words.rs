//! End to end, what Foreman says and what it feeds the agent: a question ends answered (one answer comment,
//! no pull request, no retry); an agent that changes nothing and says nothing still fails; a plan is headed
//! as a plan, posted once, and ends with how to act on it; a failure comment is written for people (class,
//! a sentence, what to do, a link to the log, and nothing of the log itself); the agent never gets Foreman's
//! own comments, and a follow-up's prompt carries the issue the pull request resolves; the command
//! backend's pull request body is its summary and its `::foreman` lines are its figures. A real
//! `foreman serve` against github-sim over HTTP, real git, a scripted command agent.

mod e2e_support;
mod session_support;

use std::time::Duration;

use e2e_support::{FIXING_AGENT, REPO, Setup, World};
use serde_json::Value;

/// Bounds each test: one lifecycle is seconds on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// The comments on pull request `number`, oldest first.
fn pull_comments(state: &Value, number: u64) -> Vec<Value> {
    World::repo_state(state)["pulls"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["number"] == number))
        .and_then(|p| p["comments"].as_array().cloned())
        .unwrap_or_default()
}

/// Comments on issue or pull request `number` written by Foreman's bot.
fn bot_comments(world: &World, state: &Value, number: u64) -> Vec<String> {
    let bot = world.sim.bot_login();
    World::comments(state, number)
        .into_iter()
        .chain(pull_comments(state, number))
        .filter(|c| c["user"] == bot.as_str())
        .filter_map(|c| c["body"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `number`'s tracking comment contains `text`, and returns the state then.
async fn wait_tracking(world: &World, number: u64, text: &str) -> Value {
    world
        .wait(&format!("#{number}'s tracking comment to say {text:?}"), |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains(text))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_ends_answered_with_one_answer_comment_and_no_pull_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // The agent looks around, then answers in its last paragraph, changing nothing.
        let agent = "echo 'Reading src/lib.rs and the export module.'\necho 'Found nothing to change.'\necho\n\
                     echo 'Yes: export writes JSON with --format json (QUESTION-ANSWER).'";
        let world = World::start(agent, &[]).await;
        let (number, _) =
            world.sim.create_issue(REPO, "Does export support JSON?", "Can it write JSON?", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let state = wait_tracking(&world, number, "answered").await;
        let tracking = World::tracking_body(&state, number).unwrap();
        assert!(tracking.contains("### 💬 Foreman: answered"), "{tracking}");
        assert!(!tracking.contains("pull request ready") && !tracking.contains("Failure"), "{tracking}");
        let answers: Vec<String> =
            bot_comments(&world, &state, number).into_iter().filter(|b| b.contains("QUESTION-ANSWER")).collect();
        assert_eq!(answers.len(), 1, "the answer is posted once, in its own comment: {answers:?}\n{tracking}");
        assert!(answers[0].contains("<!-- foreman:answer "), "{}", answers[0]);
        assert!(!answers[0].contains("Reading src/lib.rs"), "the answer is the last paragraph: {}", answers[0]);
        assert!(tracking.contains("- Answer: [the answer]("), "the tracking comment links the answer: {tracking}");
        assert!(World::pulls_closing(&state, number).is_empty(), "no pull request");
        assert!(world.foreman_branches().is_empty(), "nothing pushed: {:?}", world.foreman_branches());
        let job = world.job(number).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "one attempt, no retry: {job}");
    })
    .await
    .expect("the question was answered in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_changes_nothing_and_says_nothing_still_fails() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start("true", &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let state = wait_tracking(&world, number, "Failure: `agent`").await;
        let tracking = World::tracking_body(&state, number).unwrap();
        assert!(tracking.contains("without changing anything and without saying why"), "{tracking}");
        assert!(!tracking.contains("answered"), "{tracking}");
        assert!(
            !bot_comments(&world, &state, number).iter().any(|b| b.contains("<!-- foreman:answer ")),
            "no answer comment"
        );
        assert!(World::pulls_closing(&state, number).is_empty(), "no pull request");
        let job = world.job(number).await;
        assert!(job["state"] == "failed" || job["state"] == "stuck" || job["state"] == "queued", "{job}");
        assert_eq!(job["last_failure"]["class"], "agent", "{job}");
    })
    .await
    .expect("the failure was reported in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_headed_as_a_plan_posted_once_and_ends_with_foreman_run() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let agent = "echo 'Reading the code.'\necho\necho '1. Add a --json flag (PLAN-STEP-ONE).'\n\
                     echo '2. Test it in tests/export.rs.'";
        let world = World::start(agent, &[]).await;
        let (number, _) = world.sim.create_issue(REPO, "Add a flag", "A --json flag.", "bob").unwrap();
        world.sim.comment(REPO, number, "/foreman plan", "alice").unwrap();

        let state = wait_tracking(&world, number, "plan ready").await;
        let tracking = World::tracking_body(&state, number).unwrap();
        assert!(tracking.contains("### 📝 Foreman: plan ready"), "{tracking}");
        assert!(!tracking.contains("pull request ready") && !tracking.contains("PLAN-STEP-ONE"), "{tracking}");
        let with_plan: Vec<Value> = World::comments(&state, number)
            .into_iter()
            .filter(|c| c["body"].as_str().is_some_and(|b| b.contains("PLAN-STEP-ONE")))
            .collect();
        assert_eq!(with_plan.len(), 1, "the plan is posted once: {with_plan:?}");
        let plan = with_plan[0]["body"].as_str().unwrap();
        assert!(plan.starts_with(&format!("### 📝 Foreman's plan for #{number}")), "{plan}");
        let before_marker = plan[..plan.find("<!-- foreman:").unwrap()].trim_end();
        let last = before_marker.lines().last().unwrap();
        assert!(last.contains("`/foreman run`"), "the plan ends with how to act on it: {last:?}\n{plan}");
        assert!(tracking.contains("`/foreman run`"), "{tracking}");
        assert!(World::pulls_closing(&state, number).is_empty(), "no pull request");
        assert_eq!(world.job(number).await["state"], "succeeded");
    })
    .await
    .expect("the plan was posted in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sessions_comment_is_written_for_people() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // The agent prints where it runs and fails with an error naming its prompt file.
        let agent = "echo \"working in $PWD on $FOREMAN_PROMPT_FILE\"\necho \"boom in $HOME\" >&2\nexit 1";
        let world = World::start(agent, &[("FOREMAN_PUBLIC_URL", "https://foreman.example.com")]).await;
        let (number, _) =
            world.sim.create_issue(REPO, "Add a flag", "A --json flag (ISSUE-BODY-TEXT).", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        let state = wait_tracking(&world, number, "Failure: `agent`").await;
        let tracking = World::tracking_body(&state, number).unwrap();
        // The class, one sentence on what happened, what to do, and the log behind a link.
        assert!(tracking.contains("#### Failure: `agent`"), "{tracking}");
        assert!(tracking.contains("\nThe agent command exited with status 1.\n"), "{tracking}");
        assert!(tracking.contains("`/foreman stop`"), "{tracking}");
        let session = world.job(number).await["session"].as_str().unwrap().to_owned();
        let link = format!("[session log](https://foreman.example.com/sessions/{session}) has the details");
        assert!(tracking.contains(&link), "{tracking}");
        // Nothing of the log: no prompt, no host path, no debug text, in any comment.
        let home = world.dir.path().display().to_string();
        for body in World::comments(&state, number).iter().filter_map(|c| c["body"].as_str()) {
            for bad in [
                home.as_str(),
                "/tmp/",
                "ExitStatus(",
                "unix_wait_status",
                "Os {",
                "How to read what follows",
                "ISSUE-BODY-TEXT",
                "boom in",
                "working in",
                "\"kind\":",
            ] {
                assert!(!body.contains(bad), "a comment shows {bad:?}:\n{body}");
            }
        }
    })
    .await
    .expect("the failure was reported in time");
}

/// The lines of Foreman's comment `body` that say something (markers and short lines left out).
fn telling_lines(body: &str) -> Vec<String> {
    body.lines()
        .map(str::trim)
        .filter(|l| l.len() >= 12 && !l.starts_with("<!-- foreman:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_never_carry_foremans_comments_and_a_follow_up_carries_the_issue() {
    tokio::time::timeout(Duration::from_secs(240), async {
        // A plan job answers with a plan; any other job fixes. Every prompt is kept.
        let prompts = tempfile::tempdir().unwrap();
        let agent = format!(
            "cp \"$FOREMAN_PROMPT_FILE\" '{}/prompt-'\"$FOREMAN_SESSION_ID\"\n\
             if grep -q 'this run produces a plan only' \"$FOREMAN_PROMPT_FILE\"; then\n\
             echo '1. Write the fix file (PLAN-TEXT).'\nexit 0\nfi\n{FIXING_AGENT}",
            prompts.path().display()
        );
        let (share, dir) = e2e_support::shared(prompts.path());
        // GitHub may leave `performed_via_github_app` out: Foreman must know its comments without it.
        let setup = Setup { env: &[(share, &dir)], app_comments_name_app: Some(false), ..Setup::default() };
        let world = World::start_with(&agent, setup).await;
        let bot = world.sim.bot_login();
        let (number, _) = world
            .sim
            .create_issue(REPO, "Add a fix (ISSUE-TITLE)", "Please add the fix file (ISSUE-BODY).", "alice")
            .unwrap();
        world.sim.comment(REPO, number, "Keep it to one file (PEOPLE-COMMENT).", "bob").unwrap();
        // A reader's command is refused with a reply; a budget note and a constitution report as Foreman writes them.
        world.sim.comment(REPO, number, "/foreman run", "bob").unwrap();
        let repo: foreman::ids::RepoName = REPO.parse().unwrap();
        let day = time::OffsetDateTime::now_utc().date();
        let budget = format!(
            "The daily budget of this repository is spent (BUDGET-NOTE).\n\n{}",
            foreman::markers::budget(&repo, day)
        );
        world.sim.comment(REPO, number, &budget, &bot).unwrap();
        let invalid = format!(
            "`.github/foreman.toml` is invalid (CONSTITUTION-NOTE).\n\n{}",
            foreman::markers::CONSTITUTION_INVALID
        );
        world.sim.comment(REPO, number, &invalid, &bot).unwrap();
        world.sim.comment(REPO, number, "/foreman plan", "alice").unwrap();
        wait_tracking(&world, number, "plan ready").await;
        world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        let pr = pull["number"].as_u64().unwrap();
        wait_tracking(&world, number, "pull request ready").await;
        world.sim.review(REPO, pr, "CHANGES_REQUESTED", "Also say which issue (REVIEW-TEXT).", "alice").unwrap();
        world
            .wait("a second commit on the pull request", |s| {
                World::repo_state(s)["pulls"].as_array().is_some_and(|p| {
                    p.iter().any(|p| p["number"] == pr && p["commits"].as_array().is_some_and(|c| c.len() == 2))
                })
            })
            .await;
        let state = world
            .wait("the follow-up's report", |s| {
                pull_comments(s, pr)
                    .iter()
                    .any(|c| c["body"].as_str().is_some_and(|b| b.contains("foreman:tracking") && b.contains("ready")))
            })
            .await;

        let prompts: Vec<String> = std::fs::read_dir(prompts.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(prompts.len(), 3, "a plan, a run and a follow-up");
        // Foreman's comments: replies, the plan, budget and constitution notes, tracking comments.
        let ours: Vec<String> =
            bot_comments(&world, &state, number).into_iter().chain(bot_comments(&world, &state, pr)).collect();
        for what in ["needs write permission", "PLAN-TEXT", "BUDGET-NOTE", "CONSTITUTION-NOTE", "foreman:tracking"] {
            assert!(ours.iter().any(|b| b.contains(what)), "Foreman wrote {what:?}: {ours:#?}");
        }
        for prompt in &prompts {
            for line in ours.iter().flat_map(|b| telling_lines(b)) {
                assert!(!prompt.contains(&line), "a prompt carries Foreman's {line:?}:\n{prompt}");
            }
            assert!(prompt.contains("PEOPLE-COMMENT"), "people's comments are there:\n{prompt}");
        }
        let follow_up = prompts.iter().find(|p| p.contains("REVIEW-TEXT")).expect("the follow-up's prompt");
        assert!(follow_up.contains("ISSUE-TITLE") && follow_up.contains("ISSUE-BODY"), "{follow_up}");
        assert!(follow_up.contains(&format!("pull request #{pr}")), "{follow_up}");
        // The pull request's body is Foreman's: not shown.
        assert!(!follow_up.contains(&format!("Closes #{number}")), "{follow_up}");
    })
    .await
    .expect("the follow-up finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_agents_pull_request_body_is_its_summary_and_its_lines_are_its_figures() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Noise, progress lines, a commit, then a summary: the last paragraph, or the summary file.
        let agent = r#"echo "build log line (NOISE-LINE)"
echo "::foreman progress Writing the fix"
echo "::foreman turn"
echo "::foreman tool Bash"
echo "::foreman turn"
echo "::foreman tool Edit"
echo "::foreman tool Bash"
echo "::foreman cost 0.25"
echo "fixed issue $FOREMAN_ISSUE" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix #$FOREMAN_ISSUE"
if grep -q 'SUMMARY-FILE-PLEASE' "$FOREMAN_PROMPT_FILE"; then
  printf 'Wrote the fix file (FROM-THE-FILE).\n' > "$FOREMAN_SUMMARY_FILE"
fi
echo
echo "Added the fix file (LAST-PARAGRAPH)."
echo "It closes the issue.""#;
        let world = World::start(agent, &[]).await;
        let (first, _) = world.sim.create_issue(REPO, "Add a fix", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, first, "foreman", "alice").unwrap();
        let pull = world.wait_pull(first).await;
        let body = pull["body"].as_str().unwrap();
        assert!(body.starts_with("Added the fix file (LAST-PARAGRAPH).\nIt closes the issue."), "{body}");
        for bad in ["NOISE-LINE", "::foreman"] {
            assert!(!body.contains(bad), "{bad} in the body:\n{body}");
        }
        // The figures the agent reported: 2 turns, 3 tool calls, $0.25.
        assert!(body.contains("| turns | 2 |") && body.contains("| tool calls | 3 |"), "{body}");
        assert!(body.contains("| cost | $0.25 |"), "{body}");

        let (second, _) = world.sim.create_issue(REPO, "Add another fix", "SUMMARY-FILE-PLEASE", "alice").unwrap();
        world.sim.add_label(REPO, second, "foreman", "alice").unwrap();
        let pull = world.wait_pull(second).await;
        let body = pull["body"].as_str().unwrap();
        assert!(body.starts_with("Wrote the fix file (FROM-THE-FILE)."), "{body}");
        assert!(!body.contains("LAST-PARAGRAPH") && !body.contains("NOISE-LINE"), "{body}");
    })
    .await
    .expect("the pull requests were opened in time");
}

#[tokio::test]
async fn a_command_agents_progress_lines_reach_the_runner() {
    use foreman::session::{Credentials, Progress};
    use session_support::*;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n")]);
    let script = "echo '::foreman progress Reading the code'\necho '::foreman turn'\necho '::foreman tool Read'\n\
                  echo '::foreman bogus line'\necho\necho 'Nothing to change.'";
    let runner = runner(&dir.path().join("data"), command_config(script), Credentials::default());
    let seen = std::sync::Mutex::new(Vec::new());
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        runner.run(spec(&origin, "Look"), tokio_util::sync::CancellationToken::new(), |p| seen.lock().unwrap().push(p)),
    )
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&Progress::Step("Reading the code".into())), "{seen:?}");
    assert!(seen.contains(&Progress::Turn(1)) && seen.contains(&Progress::ToolUse("Read".into())), "{seen:?}");
    assert_eq!(outcome.answer.as_deref(), Some("Nothing to change."));
    assert_eq!((outcome.summary.turns, outcome.summary.tool_count), (1, 1));
}

#[tokio::test]
async fn a_command_agent_reports_elapsed_time_while_it_runs() {
    use foreman::session::{Credentials, Progress};
    use session_support::*;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n")]);
    // Quiet for longer than the reporting interval: the ticks are Foreman's, not the command's.
    let wait = foreman::session::agent::command::ELAPSED_EVERY.as_secs() + 1;
    let script = format!("sleep {wait}\necho 'Nothing to change.'");
    let mut config = command_config(&script);
    config.stall_timeout_secs = (wait * 3) as f64;
    config.timeout_secs = (wait * 3) as f64;
    let runner = runner(&dir.path().join("data"), config, Credentials::default());
    let seen = std::sync::Mutex::new(Vec::new());
    let spec = spec(&origin, "Look");
    let outcome = tokio::time::timeout(
        Duration::from_secs(wait + 60),
        runner.run(spec, tokio_util::sync::CancellationToken::new(), |p| seen.lock().unwrap().push(p)),
    )
    .await
    .unwrap();
    let ticks = seen.into_inner().unwrap().into_iter().filter(|p| *p == Progress::Tick).count();
    assert!(ticks >= 1, "no elapsed time reported in {wait} s");
    assert!(outcome.summary.duration_ms >= wait * 1000, "{:?}", outcome.summary);
}
