//! End to end, the push's promises: a `kill -9` between a successful `git push` and recording it ends, after
//! the restart, in exactly one pull request without running the agent again; a `/foreman run` while
//! Foreman's pull request is open adds commits on top of it (the first commit stays an ancestor of the new
//! head, and the pull request is the same one); a branch with a commit Foreman did not make is never pushed
//! over. A real `foreman serve` against github-sim over HTTP, real git, a scripted command agent that notes
//! every run in a file the test reads.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_support::{LIFECYCLE, REPO, World, wait_for};
use serde_json::Value;

/// Bounds each test: a few lifecycles and a restart, seconds each on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// An agent that notes its run in `<marks>/runs` (one line per run), then writes a file of its own and
/// commits it, so every run adds a commit.
fn counting_agent(marks: &Path) -> String {
    format!(
        r#"echo "$FOREMAN_SESSION_ID" >> '{runs}'
n=$(wc -l < '{runs}' | tr -d ' ')
echo "run $n for issue $FOREMAN_ISSUE" > "run-$n.txt"
git add -A
git commit -q -m "Run $n on #$FOREMAN_ISSUE"
echo "Added run-$n.txt""#,
        runs = marks.join("runs").display()
    )
}

/// How many times the agent ran.
fn runs(marks: &Path) -> usize {
    std::fs::read_to_string(marks.join("runs")).map(|s| s.lines().count()).unwrap_or(0)
}

/// A directory holding a `git` that runs the real one and, after a successful `git push` while
/// `<marks>/hold` exists, touches `<marks>/pushed` and waits (at most a minute) until `hold` is gone: the
/// window between a push and its record, held open for the test.
fn git_wrapper(dir: &Path, marks: &Path) -> PathBuf {
    let real = std::process::Command::new("sh").args(["-c", "command -v git"]).output().unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    assert!(!real.is_empty(), "git on PATH");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    e2e_support::agent_script(
        &bin,
        "git",
        &format!(
            r#"set +e
'{real}' "$@"
rc=$?
if [ "$rc" -eq 0 ] && [ -e '{hold}' ]; then
  for a in "$@"; do
    if [ "$a" = push ]; then
      touch '{pushed}'
      n=0
      while [ -e '{hold}' ] && [ "$n" -lt 1200 ]; do n=$((n + 1)); sleep 0.05; done
      break
    fi
  done
fi
exit "$rc""#,
            hold = marks.join("hold").display(),
            pushed = marks.join("pushed").display(),
        ),
    );
    bin
}

/// Runs git in the simulator's repository and returns its trimmed output; panics on failure.
fn sim_git(world: &World, args: &[&str]) -> String {
    let out =
        std::process::Command::new("git").args(args).current_dir(world.sim.git_dir(REPO).unwrap()).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether `ancestor` is an ancestor of (or is) `head` in the simulator's repository.
fn is_ancestor(world: &World, ancestor: &str, head: &str) -> bool {
    std::process::Command::new("git")
        .args(["merge-base", "--is-ancestor", ancestor, head])
        .current_dir(world.sim.git_dir(REPO).unwrap())
        .status()
        .unwrap()
        .success()
}

/// Waits until Foreman's job for `number` is in `state` (its admin API).
async fn wait_job(world: &World, number: u64, state: &str) -> Value {
    let found = tokio::time::timeout(LIFECYCLE, async {
        loop {
            let job = world.job(number).await;
            if job["state"] == state {
                return job;
            }
            tokio::time::sleep(e2e_support::POLL).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!("timed out waiting for job #{number} to be {state}; foreman said:\n{}", world.logs())
    })
}

/// How many times the job for `number` was claimed, from its audit trail.
fn claims(job: &Value) -> usize {
    job["audit"].as_array().map(|a| a.iter().filter(|e| e["action"] == "claimed").count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_push_and_record_ends_in_one_pull_request_without_a_second_agent_run() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let tools = tempfile::tempdir().unwrap();
        let bin = git_wrapper(tools.path(), marks.path());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let (share, dir) = e2e_support::shared(marks.path());
        std::fs::write(marks.path().join("hold"), "").unwrap();
        let mut world = World::start(&counting_agent(marks.path()), &[(share, &dir), ("PATH", &path)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Survive a push", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();

        wait_for("Foreman's push to succeed", || marks.path().join("pushed").exists()).await;
        world.kill9();
        std::fs::remove_file(marks.path().join("hold")).unwrap();
        assert_eq!(runs(marks.path()), 1, "one agent run before the crash");
        let branches = world.foreman_branches();
        assert_eq!(branches.len(), 1, "the push reached the remote: {branches:?}");
        let pushed = sim_git(&world, &["rev-parse", &format!("refs/heads/{}", branches[0])]);
        assert!(World::pulls_closing(&world.sim.state(), number).is_empty(), "no pull request before the crash");

        world.start_foreman();
        world.wait_pull(number).await;
        let job = wait_job(&world, number, "succeeded").await;
        let state = world.sim.state();
        let pulls = World::pulls_closing(&state, number);
        assert_eq!(pulls.len(), 1, "exactly one pull request: {pulls:?}");
        assert_eq!(pulls[0]["head"], branches[0].as_str(), "{pulls:?}");
        assert_eq!(pulls[0]["head_sha"], pushed.as_str(), "the pull request is for the commit pushed before the crash");
        assert_eq!(runs(marks.path()), 1, "the agent did not run again after the restart");
        assert_eq!(claims(&job), 2, "claimed before and after the crash: {job}");
        assert_eq!(world.foreman_branches(), branches, "no other branch");
        assert_eq!(sim_git(&world, &["rev-parse", &format!("refs/heads/{}", branches[0])]), pushed, "not pushed over");
        let logs = world.logs();
        assert!(!logs.contains("did not make"), "Foreman did not take its own commit for someone else's:\n{logs}");
        let pr = pulls[0]["number"].as_u64().unwrap();
        world
            .wait("the tracking comment to link the pull request", |s| {
                World::tracking_body(s, number).is_some_and(|b| b.contains(&format!("#{pr}")))
            })
            .await;
        assert_eq!(World::tracking_comments(&world.sim.state(), number), 1, "one tracking comment");
        let checks = World::repo_state(&state)["check_runs"].as_array().cloned().unwrap_or_default();
        assert!(
            checks.iter().any(|c| c["head_sha"] == pushed.as_str()),
            "a check run on the pushed commit: {checks:?}"
        );
    })
    .await
    .expect("the crash test finished in time");
}

/// Waits until `branch` on the simulator is at a commit other than `old`, and returns it.
async fn wait_head_moves(world: &World, branch: &str, old: &str) -> String {
    let reference = format!("refs/heads/{branch}");
    wait_for("the branch to move", || sim_git(world, &["rev-parse", &reference]) != old).await;
    sim_git(world, &["rev-parse", &reference])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_while_the_pull_request_is_open_adds_commits_to_it() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&counting_agent(marks.path()), &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Build on it", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let branch = pull["head"].as_str().unwrap().to_owned();
        let first = sim_git(&world, &["rev-parse", &format!("refs/heads/{branch}")]);

        world.sim.comment(REPO, number, "/foreman run and add another file", "alice").unwrap();
        let second = wait_head_moves(&world, &branch, &first).await;
        wait_for("the second agent run", || runs(marks.path()) == 2).await;
        let job = wait_job(&world, number, "succeeded").await;
        assert_eq!(claims(&job), 2, "{job}");
        assert!(
            is_ancestor(&world, &first, &second),
            "the first commit {first} is an ancestor of the new head {second}"
        );
        let log = sim_git(&world, &["log", "--format=%s", &format!("main..{second}")]);
        assert_eq!(log.lines().collect::<Vec<_>>(), [format!("Run 2 on #{number}"), format!("Run 1 on #{number}")]);
        let state = world.sim.state();
        let pulls = World::pulls_closing(&state, number);
        assert_eq!(pulls.len(), 1, "the same pull request: {pulls:?}");
        assert_eq!(pulls[0]["number"], pull["number"], "{pulls:?}");
        assert_eq!(pulls[0]["state"], "open");
        assert_eq!(pulls[0]["head_sha"], second.as_str(), "{pulls:?}");
    })
    .await
    .expect("the re-run test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_with_someone_elses_commit_is_never_pushed_over() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&counting_agent(marks.path()), &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Keep theirs", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let branch = pull["head"].as_str().unwrap().to_owned();
        let reference = format!("refs/heads/{branch}");
        let ours = sim_git(&world, &["rev-parse", &reference]);

        // alice adds a commit of her own to Foreman's branch, then the pull request is closed: a re-run now
        // starts from the default branch and would rewrite the branch, were it not for her commit.
        let tree = sim_git(&world, &["rev-parse", &format!("{ours}^{{tree}}")]);
        let theirs = sim_git(
            &world,
            &[
                "-c",
                "user.name=alice",
                "-c",
                "user.email=alice@example.com",
                "commit-tree",
                &tree,
                "-p",
                &ours,
                "-m",
                "alice's touch",
            ],
        );
        sim_git(&world, &["update-ref", &reference, &theirs, &ours]);
        world.sim.set_issue_state(REPO, pull["number"].as_u64().unwrap(), "closed", "alice").unwrap();
        world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();

        let job = tokio::time::timeout(LIFECYCLE, async {
            loop {
                let job = world.job(number).await;
                if job["last_failure"]["reason"].as_str().is_some_and(|r| r.contains("did not make")) {
                    return job;
                }
                tokio::time::sleep(e2e_support::POLL).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the re-run was not refused; foreman said:\n{}", world.logs()));
        assert_eq!(job["last_failure"]["class"], "validation", "nothing to retry until someone acts: {job}");
        assert_eq!(sim_git(&world, &["rev-parse", &reference]), theirs, "alice's commit is still the branch's head");
        assert_eq!(runs(marks.path()), 1, "the agent did not run for a change that could not be pushed");
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_follow_up_and_a_closed_pull_request_a_re_run_starts_over_on_foremans_own_branch() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&counting_agent(marks.path()), &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Start over", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let (pr, branch) = (pull["number"].as_u64().unwrap(), pull["head"].as_str().unwrap().to_owned());
        let reference = format!("refs/heads/{branch}");
        let first = sim_git(&world, &["rev-parse", &reference]);

        // A follow-up adds Foreman's second commit (a job of the pull request's number); then the pull
        // request is closed. The branch holds Foreman's commits only, so a re-run may start it over.
        world.sim.review(REPO, pr, "CHANGES_REQUESTED", "One more, please.", "alice").unwrap();
        let second = wait_head_moves(&world, &branch, &first).await;
        wait_job(&world, pr, "succeeded").await;
        assert!(is_ancestor(&world, &first, &second), "the follow-up built on the first commit");
        world.sim.set_issue_state(REPO, pr, "closed", "alice").unwrap();
        world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();

        let third = wait_head_moves(&world, &branch, &second).await;
        let state = world
            .wait("a new open pull request for the issue", |s| {
                World::pulls_closing(s, number).iter().any(|p| p["state"] == "open")
            })
            .await;
        assert_eq!(runs(marks.path()), 3, "label, follow-up, re-run");
        let log = sim_git(&world, &["log", "--format=%s", &format!("main..{third}")]);
        assert_eq!(log, format!("Run 3 on #{number}"), "started over from the default branch");
        let open: Vec<Value> =
            World::pulls_closing(&state, number).into_iter().filter(|p| p["state"] == "open").collect();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_ne!(open[0]["number"], pr, "a new pull request; the closed one stays closed");
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_after_the_branch_was_deleted_pushes_it_anew() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&counting_agent(marks.path()), &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Gone branch", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let (pr, branch) = (pull["number"].as_u64().unwrap(), pull["head"].as_str().unwrap().to_owned());

        // The pull request is closed and its branch deleted: Foreman's lease (the commit it pushed) no longer
        // matches, but there is nothing on the remote to keep.
        world.sim.set_issue_state(REPO, pr, "closed", "alice").unwrap();
        sim_git(&world, &["update-ref", "-d", &format!("refs/heads/{branch}")]);
        world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();

        let state = world
            .wait("a new open pull request for the issue", |s| {
                World::pulls_closing(s, number).iter().any(|p| p["state"] == "open")
            })
            .await;
        assert_eq!(runs(marks.path()), 2);
        let head = sim_git(&world, &["rev-parse", &format!("refs/heads/{branch}")]);
        let log = sim_git(&world, &["log", "--format=%s", &format!("main..{head}")]);
        assert_eq!(log, format!("Run 2 on #{number}"));
        let open: Vec<Value> =
            World::pulls_closing(&state, number).into_iter().filter(|p| p["state"] == "open").collect();
        assert_eq!(open.len(), 1, "{open:?}");
        assert!(!world.logs().contains("did not make"), "no refused push");
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_a_follow_ups_push_and_its_record_does_not_run_the_agent_again() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let tools = tempfile::tempdir().unwrap();
        let bin = git_wrapper(tools.path(), marks.path());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let (share, dir) = e2e_support::shared(marks.path());
        let mut world = World::start(&counting_agent(marks.path()), &[(share, &dir), ("PATH", &path)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Follow through", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let (pr, branch) = (pull["number"].as_u64().unwrap(), pull["head"].as_str().unwrap().to_owned());

        // The follow-up's push is held open, and Foreman killed in it.
        std::fs::write(marks.path().join("hold"), "").unwrap();
        world.sim.review(REPO, pr, "CHANGES_REQUESTED", "One more, please.", "alice").unwrap();
        wait_for("the follow-up's push to succeed", || marks.path().join("pushed").exists()).await;
        world.kill9();
        std::fs::remove_file(marks.path().join("hold")).unwrap();
        let pushed = sim_git(&world, &["rev-parse", &format!("refs/heads/{branch}")]);
        assert_eq!(runs(marks.path()), 2);

        world.start_foreman();
        let job = wait_job(&world, pr, "succeeded").await;
        assert_eq!(claims(&job), 2, "claimed before and after the crash: {job}");
        assert_eq!(runs(marks.path()), 2, "the agent did not run again after the restart");
        assert_eq!(sim_git(&world, &["rev-parse", &format!("refs/heads/{branch}")]), pushed, "not pushed over");
        let state = world.sim.state();
        assert_eq!(World::pulls_closing(&state, number).len(), 1, "one pull request");
        let checks = World::repo_state(&state)["check_runs"].as_array().cloned().unwrap_or_default();
        assert!(checks.iter().any(|c| c["head_sha"] == pushed.as_str()), "a check run on the pushed commit");
        assert!(!world.logs().contains("did not make"));
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_on_an_open_pull_request_keeps_someone_elses_commit_on_it() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let (share, dir) = e2e_support::shared(marks.path());
        let world = World::start(&counting_agent(marks.path()), &[(share, &dir)]).await;
        let (number, _) = world.sim.create_issue(REPO, "Share the branch", "Please fix it.", "alice").unwrap();
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
        let pull = world.wait_pull(number).await;
        wait_job(&world, number, "succeeded").await;
        let branch = pull["head"].as_str().unwrap().to_owned();
        let reference = format!("refs/heads/{branch}");
        let ours = sim_git(&world, &["rev-parse", &reference]);
        let tree = sim_git(&world, &["rev-parse", &format!("{ours}^{{tree}}")]);
        let theirs = sim_git(
            &world,
            &[
                "-c",
                "user.name=alice",
                "-c",
                "user.email=alice@example.com",
                "commit-tree",
                &tree,
                "-p",
                &ours,
                "-m",
                "alice's touch",
            ],
        );
        sim_git(&world, &["update-ref", &reference, &theirs, &ours]);

        world.sim.comment(REPO, number, "/foreman run", "alice").unwrap();
        let head = wait_head_moves(&world, &branch, &theirs).await;
        wait_job(&world, number, "succeeded").await;
        assert!(is_ancestor(&world, &theirs, &head), "alice's commit {theirs} is kept under {head}");
        let log = sim_git(&world, &["log", "--format=%s", &format!("main..{head}")]);
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            [format!("Run 2 on #{number}"), "alice's touch".into(), format!("Run 1 on #{number}")]
        );
        assert_eq!(World::pulls_closing(&world.sim.state(), number).len(), 1, "the same pull request");
    })
    .await
    .expect("the test finished in time");
}
