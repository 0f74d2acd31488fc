//! End to end: a job whose repository's `.github/foreman.toml` is broken waits for the file to change
//! instead of retrying on a timer. The errors (every one, in words, each linked to its documentation) are
//! posted once, in the tracking comment; a push that fixes the file queues the job again, and it runs
//! once.

mod e2e_support;

use std::time::Duration;

use e2e_support::{ORG, Setup, World};
use serde_json::Value;

const BROKEN: &str = "[agent]\nmdoel = \"claude-sonnet-4-5\"\n\n[rules]\nmax_files_changed = \"twenty\"\n";
const FIXED: &str = "[rules]\nmax_files_changed = 20\n";

fn issue_in<'a>(state: &'a Value, repo: &str, number: u64) -> &'a Value {
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == repo).unwrap();
    repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == number).unwrap()
}

fn comments_on(state: &Value, repo: &str, number: u64) -> Vec<String> {
    let issue = issue_in(state, repo, number);
    issue["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap_or("").to_owned()).collect()
}

fn pulls_of(state: &Value, repo: &str) -> usize {
    let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == repo).unwrap();
    repo["pulls"].as_array().map_or(0, Vec::len)
}

/// Session logs of `owner-name-issue-…` under the data directory: one per session the agent ran.
fn sessions_of(world: &World, repo: &str, number: u64) -> usize {
    let prefix = format!("{}-{number}-", repo.replace('/', "-"));
    std::fs::read_dir(world.data_dir().join("sessions"))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_constitution_holds_the_job_until_a_push_fixes_it_and_the_job_then_runs_once() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let files: &[(&str, &str)] = &[(".github/foreman.toml", BROKEN), ("src/lib.rs", "pub fn f() {}\n")];
        let repos: [(&str, &[(&str, &str)]); 1] = [("broken", files)];
        let env = [("FOREMAN_PUBLIC_URL", "https://foreman.example.com")];
        let setup = Setup { repos: &repos, env: &env, ..Setup::default() };
        let world = World::start_with(e2e_support::FIXING_AGENT, setup).await;
        let repo = format!("{ORG}/broken");
        let (number, _) = world.sim.create_issue(&repo, "Do the thing", "Please.", "alice").unwrap();
        world.sim.add_label(&repo, number, "foreman", "alice").unwrap();

        // The job waits, and its tracking comment says for what, with every error and a link for each.
        let state = world
            .wait("the tracking comment to show the wait and the errors", |s| {
                comments_on(s, &repo, number).iter().any(|c| {
                    c.contains("<!-- foreman:tracking")
                        && c.contains("Waiting for `.github/foreman.toml` to change")
                        && c.contains("did you mean `model`?")
                })
            })
            .await;
        let tracking = comments_on(&state, &repo, number).into_iter().find(|c| c.contains("foreman:tracking")).unwrap();
        assert!(tracking.contains("line 5, column 21"), "the second error too: {tracking}");
        assert!(tracking.contains("a whole number of files, for example `20`"), "{tracking}");
        assert!(
            tracking.contains("(https://foreman.example.com/docs/constitution.md#agent)")
                && tracking.contains("(https://foreman.example.com/docs/constitution.md#rules)"),
            "each key links to its documentation: {tracking}"
        );
        world
            .wait_log("the job's task to finish", |l| {
                l["message"] == "finished"
                    && l["span"]["repo"] == repo.as_str()
                    && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
            })
            .await;
        let job = world.job_in(&repo, number).await;
        assert_eq!(job["state"], "queued", "{job}");
        assert_eq!(job["wait"]["kind"], "constitution", "{job}");
        assert!(job["last_failure"].is_null(), "a wait, not a failure: {job}");
        assert_eq!(sessions_of(&world, &repo, number), 0, "the agent never ran");
        let state = world.sim.state();
        assert_eq!(comments_on(&state, &repo, number).len(), 1, "the errors are posted once, in the tracking comment");

        // `/foreman retry` ends the wait at once: the job is claimed again (and, the file still broken, waits
        // again), without a reply that there is nothing to retry.
        world.sim.comment(&repo, number, "/foreman retry", "alice").unwrap();
        world
            .wait_log("the retried job's task to finish", |l| {
                l["message"] == "finished"
                    && l["outcome"] == "waiting"
                    && l["span"]["repo"] == repo.as_str()
                    && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
            })
            .await;
        let waits = loop {
            let job = world.job_in(&repo, number).await;
            let audit = job["audit"].as_array().unwrap().clone();
            let waits = audit.iter().filter(|e| e["action"] == "waiting").count();
            if waits >= 2 {
                assert!(audit.iter().any(|e| e["action"] == "retry"), "{job}");
                break waits;
            }
            tokio::time::sleep(e2e_support::POLL).await;
        };
        assert_eq!(waits, 2);
        let state = world.sim.state();
        assert!(
            !comments_on(&state, &repo, number).iter().any(|c| c.contains("nothing to retry")),
            "{:#?}",
            comments_on(&state, &repo, number)
        );

        // A push that fixes the file: the job runs, once, and opens its pull request.
        world.sim.push_file(&repo, ".github/foreman.toml", FIXED, "alice").unwrap();
        let state = world.wait("a pull request in acme/broken", |s| pulls_of(s, &repo) == 1).await;
        assert_eq!(sessions_of(&world, &repo, number), 1, "the job ran once");
        let comments: Vec<String> =
            comments_on(&state, &repo, number).into_iter().filter(|c| !c.starts_with("/foreman")).collect();
        assert_eq!(comments.len(), 1, "still one comment of Foreman's: {comments:#?}");
        assert!(!comments[0].contains("Waiting for `.github/foreman.toml`"), "{}", comments[0]);
        assert!(!comments[0].contains("counted again"), "a wait ended resets no count: {}", comments[0]);
    })
    .await
    .expect("the job waited for the fix and then ran, in time");
}

/// The organisation's defaults (`.github/foreman.toml` in its `.github` repository) are broken: a repository
/// without a file of its own waits too, and a push fixing the organisation's file releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_fixing_the_organisations_file_releases_the_repositories_waiting_for_it() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let org_files: &[(&str, &str)] = &[(".github/foreman.toml", "[limits]\nconcurency = 2\n")];
        let repos: [(&str, &[(&str, &str)]); 1] = [(".github", org_files)];
        let setup = Setup { repos: &repos, ..Setup::default() };
        let world = World::start_with(e2e_support::FIXING_AGENT, setup).await;
        let repo = e2e_support::REPO;
        let (number, _) = world.sim.create_issue(repo, "Do the thing", "Please.", "alice").unwrap();
        world.sim.add_label(repo, number, "foreman", "alice").unwrap();
        world
            .wait("the wait on the organisation's file", |s| {
                comments_on(s, repo, number).iter().any(|c| {
                    c.contains("Waiting for `.github/foreman.toml` to change")
                        && c.contains("the organisation's .github/foreman.toml")
                        && c.contains("did you mean `concurrency`?")
                })
            })
            .await;
        world
            .wait_log("the job's task to finish", |l| {
                l["message"] == "finished"
                    && l["span"]["repo"] == repo
                    && l["span"]["issue"].as_str() == Some(number.to_string().as_str())
            })
            .await;
        assert_eq!(world.job_in(repo, number).await["wait"]["kind"], "constitution");

        world
            .sim
            .push_file(&format!("{ORG}/.github"), ".github/foreman.toml", "[limits]\nconcurrency = 2\n", "alice")
            .unwrap();
        world.wait("a pull request in acme/widgets", |s| pulls_of(s, repo) == 1).await;
        assert_eq!(sessions_of(&world, repo, number), 1, "the job ran once");
    })
    .await
    .expect("the organisation's fix released the job in time");
}
