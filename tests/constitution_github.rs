//! The constitution's GitHub side against github-sim over real HTTP on loopback, with real git:
//! loading with the org's defaults and the ETag cache, the invalid-file comment, the pull request check
//! run with annotations, `/foreman constitution` from a real comment payload through decide, `init`
//! opening one pull request, and the daily usage the budgets read from a real sled store.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use foreman::constitution::github::{
    CHECK_NAME, InitOutcome, check_pull_request, init_pull_request, report_invalid, resolve_invalid, show, show_text,
};
use foreman::constitution::{self, Ceilings, FetchError, Origin, PATH, Template, check_budget};
use foreman::decide::{self, Action, DecideConfig, Snapshot};
use foreman::github::{Client, ClientOptions, RetryPolicy};
use foreman::ids::{InstallationId, IssueNumber, RepoName};
use foreman::report::push::{DEFAULT_PREFIX, Pusher};
use foreman::session::AgentConfig;
use github_sim::{GithubSim, Permission as SimPermission, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);

const ORG_FILE: &str = "[limits]\ndaily_sessions = 20\n\n[rules]\nmax_files_changed = 30\n";
const REPO_FILE: &str = "[rules]\nmax_files_changed = 5\nbranch_prefix = \"foreman/\"\n";
/// Line 3, column 1 holds a key the schema does not have.
const INVALID_FILE: &str = "[rules]\nmax_files_changed = 5\nmax_file_changed = 6\n";

fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            request_timeout: Duration::from_secs(10),
            mutation_interval: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

struct World {
    dir: tempfile::TempDir,
    sim: SimHandle,
    client: Client,
    inst: InstallationId,
    repo: RepoName,
}

/// A simulator with `acme/widgets` holding `repo_file`, and `acme/.github` holding `org_file` when given.
async fn world(repo_file: Option<&str>, org_file: Option<&str>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.unwrap();
    let mut files = vec![("README.md", "hello\n")];
    if let Some(text) = repo_file {
        files.push((PATH, text));
    }
    sim.create_repo("acme", "widgets", &files).unwrap();
    if let Some(text) = org_file {
        sim.create_repo("acme", ".github", &[("README.md", "org\n"), (PATH, text)]).unwrap();
    }
    sim.create_user("alice", SimPermission::Write, "User");
    let inst = InstallationId(sim.installation_id("acme"));
    let key = SecretString::from(sim.private_key_pem().to_owned());
    let client = Client::new(sim.app_id(), &key, sim.url(), options()).unwrap();
    World { dir, sim, client, inst, repo: "acme/widgets".parse().unwrap() }
}

fn repo_state(w: &World) -> Value {
    let state = w.sim.state();
    state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap().clone()
}

fn comments(w: &World, number: IssueNumber) -> Vec<String> {
    let repo = repo_state(w);
    let issue = repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == number.0).unwrap().clone();
    issue["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap().to_owned()).collect()
}

fn contents_statuses(w: &World) -> Vec<(String, u64)> {
    w.sim.state()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains("/contents/"))
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r["status"].as_u64().unwrap()))
        .collect()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=alice", "-c", "user.email=alice@example.org"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Pushes a branch `branch` to the simulator's bare repository with `files` changed, opens a pull request
/// from it, and returns its number and head commit.
fn pull_with(w: &World, branch: &str, files: &[(&str, &str)]) -> (IssueNumber, String) {
    let bare = w.sim.git_dir("acme/widgets").unwrap();
    let work = w.dir.path().join(format!("clone-{}", branch.replace('/', "-")));
    let out = Command::new("git").arg("clone").arg("-q").arg(&bare).arg(&work).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    git(&work, &["checkout", "-q", "-b", branch]);
    for (path, text) in files {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
        git(&work, &["add", path]);
    }
    git(&work, &["commit", "-q", "-m", "change"]);
    git(&work, &["push", "-q", "origin", branch]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let number = w.sim.create_pull("acme/widgets", branch, "main", "A change", "alice").unwrap();
    (IssueNumber(number), sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_only_org_only_and_both_with_origins_and_a_304_the_second_time() {
    tokio::time::timeout(LIMIT, async {
        // Repository only.
        let w = world(Some(REPO_FILE), None).await;
        let loaded = constitution::fetch::load(&w.client, w.inst, &w.repo).await.unwrap();
        assert_eq!(loaded.repo_text.as_deref(), Some(REPO_FILE));
        assert_eq!(loaded.org_text, None, "no acme/.github repository is not an error");
        assert_eq!(loaded.effective.constitution.rules.max_files_changed, Some(5));
        assert_eq!(loaded.effective.origin("rules.max_files_changed"), Origin::Repo);
        assert_eq!(loaded.effective.origin("limits.daily_sessions"), Origin::Default);

        // Organisation only.
        let w = world(None, Some(ORG_FILE)).await;
        let loaded = constitution::fetch::load(&w.client, w.inst, &w.repo).await.unwrap();
        assert_eq!(loaded.repo_text, None);
        assert_eq!(loaded.effective.constitution.rules.max_files_changed, Some(30));
        assert_eq!(loaded.effective.origin("rules.max_files_changed"), Origin::Org);
        assert_eq!(loaded.effective.constitution.limits.daily_sessions, Some(20));

        // Both: the repository wins key by key; the org's other keys stay.
        let w = world(Some(REPO_FILE), Some(ORG_FILE)).await;
        let first = constitution::fetch::load(&w.client, w.inst, &w.repo).await.unwrap();
        assert_eq!(first.effective.constitution.rules.max_files_changed, Some(5));
        assert_eq!(first.effective.origin("rules.max_files_changed"), Origin::Repo);
        assert_eq!(first.effective.constitution.limits.daily_sessions, Some(20));
        assert_eq!(first.effective.origin("limits.daily_sessions"), Origin::Org);
        assert_eq!(first.effective.origin("rules.max_lines_changed"), Origin::Default);
        let before = contents_statuses(&w);
        assert_eq!(before.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [200, 200], "{before:?}");
        assert!(before.iter().any(|(p, _)| p.starts_with("/repos/acme/.github/contents/.github/foreman.toml")));

        let second = constitution::fetch::load(&w.client, w.inst, &w.repo).await.unwrap();
        assert_eq!(second, first);
        let after = contents_statuses(&w);
        assert_eq!(after.len(), 4, "{after:?}");
        assert_eq!(
            after[2..].iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [304, 304],
            "both reads were free: {after:?}"
        );
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_one_comment_with_line_and_column_even_when_reported_twice() {
    tokio::time::timeout(LIMIT, async {
        let w = world(Some(INVALID_FILE), Some("[rules]\nmax_lines_changed = \"many\"\n")).await;
        let errors = match constitution::fetch::load(&w.client, w.inst, &w.repo).await {
            Err(FetchError::Invalid(errors)) => errors,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(errors.len(), 2, "both files' errors: {errors:?}");
        let repo_error = errors.iter().find(|e| e.origin == Origin::Repo).unwrap();
        assert_eq!((repo_error.line, repo_error.column), (Some(3), Some(1)), "{repo_error:?}");
        let issue = IssueNumber(w.sim.create_issue("acme/widgets", "Do it", "please", "alice").unwrap().0);
        report_invalid(&w.client, w.inst, &w.repo, issue, &errors).await.unwrap();
        report_invalid(&w.client, w.inst, &w.repo, issue, &errors).await.unwrap();
        let bodies = comments(&w, issue);
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].contains(foreman::markers::CONSTITUTION_INVALID));
        assert!(bodies[0].contains(".github/foreman.toml, line 3, column 1"), "{}", bodies[0]);
        assert!(bodies[0].contains("max_file_changed"), "{}", bodies[0]);
        assert!(bodies[0].contains("the organisation's .github/foreman.toml, line 2"), "{}", bodies[0]);
        // `/foreman constitution` answers with the same errors rather than a table.
        let shown = show_text(&w.client, w.inst, &w.repo, &Ceilings::default(), None).await.unwrap();
        assert!(shown.contains("line 3, column 1") && !shown.contains("| key |"), "{shown}");

        // Fixed: the same comment says so; still one comment.
        let quiet = IssueNumber(w.sim.create_issue("acme/widgets", "Other", "", "alice").unwrap().0);
        assert!(!resolve_invalid(&w.client, w.inst, &w.repo, quiet).await.unwrap());
        assert!(comments(&w, quiet).is_empty());
        assert!(resolve_invalid(&w.client, w.inst, &w.repo, issue).await.unwrap());
        let bodies = comments(&w, issue);
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].contains("is valid again") && !bodies[0].contains("line 3"), "{}", bodies[0]);
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_changing_the_file_gets_a_check_run_with_annotations() {
    tokio::time::timeout(LIMIT, async {
        let w = world(Some(REPO_FILE), None).await;
        // Does not touch the file: no check run.
        let (other, other_sha) = pull_with(&w, "docs", &[("docs/a.md", "a\n")]);
        assert!(
            check_pull_request(&w.client, w.inst, &w.repo, other, &other_sha, &Ceilings::default(), None)
                .await
                .unwrap()
                .is_none()
        );
        // Breaks it: failure, annotated at line 3, column 1.
        let (broken, broken_sha) = pull_with(&w, "break", &[(PATH, INVALID_FILE)]);
        let run = check_pull_request(&w.client, w.inst, &w.repo, broken, &broken_sha, &Ceilings::default(), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        assert_eq!(run.head_sha, broken_sha);
        // A redelivered event for the same commit finds the run and posts no second one.
        let again = check_pull_request(&w.client, w.inst, &w.repo, broken, &broken_sha, &Ceilings::default(), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.id, run.id);
        // Changes it validly: success.
        let (good, good_sha) = pull_with(&w, "tighten", &[(PATH, "[rules]\nmax_files_changed = 3\n")]);
        let ok = check_pull_request(&w.client, w.inst, &w.repo, good, &good_sha, &Ceilings::default(), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.conclusion.as_deref(), Some("success"));

        let runs = repo_state(&w)["check_runs"].as_array().unwrap().clone();
        assert_eq!(runs.len(), 2, "{runs:?}");
        let failed = runs.iter().find(|r| r["head_sha"] == broken_sha.as_str()).unwrap();
        assert_eq!(failed["name"], CHECK_NAME);
        let annotations = failed["output"]["annotations"].as_array().unwrap();
        assert_eq!(annotations.len(), 1, "{failed}");
        let a = &annotations[0];
        assert_eq!(a["path"], PATH);
        assert_eq!((a["start_line"].as_u64(), a["end_line"].as_u64()), (Some(3), Some(3)), "{a}");
        assert_eq!(a["start_column"].as_u64(), Some(1), "{a}");
        assert_eq!(a["annotation_level"], "failure");
        assert!(a["message"].as_str().unwrap().contains("max_file_changed"), "{a}");
        let passed = runs.iter().find(|r| r["head_sha"] == good_sha.as_str()).unwrap();
        assert!(passed["output"]["summary"].as_str().unwrap().contains("`max_files_changed` | `3` | repo"));
        let nonconforming = w.sim.state()["nonconforming"].as_array().unwrap().clone();
        assert!(nonconforming.is_empty(), "every request conforms to GitHub's OpenAPI description: {nonconforming:?}");
    })
    .await
    .expect("within the time limit");
}

/// GitHub's example `issue_comment.created` payload, moved to `acme/widgets#number`, with `body`.
fn comment_payload(w: &World, number: IssueNumber, body: &str, association: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/vendor/github/webhooks/examples/api.github.com/issue_comment/created.payload.json"
    );
    let mut b: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    b["repository"]["full_name"] = json!("acme/widgets");
    b["repository"]["name"] = json!("widgets");
    b["repository"]["owner"]["login"] = json!("acme");
    b["issue"]["number"] = json!(number.0);
    b["comment"]["body"] = json!(body);
    b["comment"]["author_association"] = json!(association);
    b["installation"] = json!({ "id": w.inst.0, "node_id": "x" });
    serde_json::to_vec(&b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_constitution_replies_with_each_value_and_its_origin() {
    tokio::time::timeout(LIMIT, async {
        let w = world(Some(REPO_FILE), Some(ORG_FILE)).await;
        let issue = IssueNumber(w.sim.create_issue("acme/widgets", "Rules?", "", "alice").unwrap().0);
        let event =
            foreman::event::decode("issue_comment", &comment_payload(&w, issue, "/foreman constitution", "NONE"))
                .unwrap();
        let actions = decide::decide(&event, &DecideConfig::default(), &Snapshot::default());
        let [Action::ShowConstitution { repo, issue: on, installation }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!((repo, *on, *installation), (&w.repo, issue, Some(w.inst)));
        show(&w.client, w.inst, repo, *on, &AgentConfig::default().ceilings(), None).await.unwrap();
        let bodies = comments(&w, issue);
        assert_eq!(bodies.len(), 1);
        let text = &bodies[0];
        assert!(text.contains("| `max_files_changed` | `5` | repository |"), "{text}");
        assert!(text.contains("| `daily_sessions` | `20` | organisation |"), "{text}");
        assert!(text.contains("| `label` | `\"foreman\"` | built-in |"), "{text}");
        assert!(text.contains("| `max_cost_usd` | `10.0` | server | `10.0` |"), "the server's cap shows: {text}");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_opens_one_pull_request_with_the_template_even_when_asked_twice() {
    tokio::time::timeout(LIMIT, async {
        let w = world(None, None).await;
        let issue = IssueNumber(w.sim.create_issue("acme/widgets", "Adopt rules", "", "alice").unwrap().0);
        let event = foreman::event::decode(
            "issue_comment",
            &comment_payload(&w, issue, "/foreman constitution init rust", "OWNER"),
        )
        .unwrap();
        let actions = decide::decide(&event, &DecideConfig::default(), &Snapshot::default());
        let [Action::InitConstitution { template, requester, .. }] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!(*template, Template::Rust);

        let pusher = Pusher::new(DEFAULT_PREFIX).unwrap();
        let scratch = w.dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let first = init_pull_request(&w.client, w.inst, &w.repo, issue, *template, requester, &pusher, &scratch)
            .await
            .unwrap();
        let InitOutcome::Opened(pull) = first else { panic!("{first:?}") };
        assert_eq!(pull.head.branch, "foreman/constitution-init");
        assert_eq!(pull.base.branch, "main");
        let second = init_pull_request(&w.client, w.inst, &w.repo, issue, *template, requester, &pusher, &scratch)
            .await
            .unwrap();
        assert!(matches!(&second, InitOutcome::AlreadyOpen(p) if p.number == pull.number), "{second:?}");

        let pulls = repo_state(&w)["pulls"].as_array().unwrap().clone();
        assert_eq!(pulls.len(), 1, "{pulls:?}");
        // It offers the Actions workflow, by the command that prints it (the App may not write workflows).
        let body = pulls[0]["body"].as_str().unwrap();
        assert!(body.contains("`foreman actions workflow`") && body.contains(".github/workflows/"), "{body}");
        let bare = w.sim.git_dir("acme/widgets").unwrap();
        let text = git(&bare, &["show", &format!("refs/heads/foreman/constitution-init:{PATH}")]);
        assert_eq!(format!("{text}\n"), Template::Rust.text());
        assert!(constitution::parse(Origin::Repo, &text).is_ok());
        let bodies = comments(&w, issue);
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        assert!(bodies[0].contains(&format!("#{}", pull.number)), "{}", bodies[0]);
        assert!(bodies[1].contains("already proposes"), "{}", bodies[1]);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "the scratch directory is cleaned up");
        // The token never reaches a comment or the branch.
        assert!(!bodies.iter().any(|b| b.contains("ghs_")));

        // Once the file is on the default branch, init says so and pushes nothing.
        let w = world(Some(REPO_FILE), None).await;
        let issue = IssueNumber(w.sim.create_issue("acme/widgets", "Adopt rules", "", "alice").unwrap().0);
        let again = init_pull_request(&w.client, w.inst, &w.repo, issue, Template::Generic, "alice", &pusher, &scratch)
            .await
            .unwrap();
        assert!(matches!(again, InitOutcome::AlreadyPresent), "{again:?}");
        assert!(repo_state(&w)["pulls"].as_array().unwrap().is_empty());
        assert!(comments(&w, issue)[0].contains("already has `.github/foreman.toml`"));
    })
    .await
    .expect("within the time limit");
}

#[test]
fn repo_usage_counts_todays_sessions_and_their_cost() {
    use foreman::job::JobKind;
    use foreman::job::{NewJob, Trigger};
    use foreman::scheduler::{Scheduler, SchedulerConfig};
    use foreman::store::{Store, StoreOptions};
    use time::macros::datetime;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
    let config = SchedulerConfig { max_sessions: 100, max_sessions_per_repo: 100, ..SchedulerConfig::default() };
    let s = Scheduler::new(store.clone(), config);
    let widgets: RepoName = "acme/widgets".parse().unwrap();
    let gadgets: RepoName = "acme/gadgets".parse().unwrap();
    let midnight = datetime!(2027-01-15 00:00 UTC);
    let mut n = 0;
    let mut start = |repo: &RepoName, at: time::OffsetDateTime| {
        n += 1;
        let req = NewJob {
            blocked_by: vec![],
            repo: repo.clone(),
            issue: IssueNumber(n),
            installation: Some(InstallationId(1)),
            kind: JobKind::Code,
            title: format!("Job {n}"),
            body: String::new(),
            labels: vec![],
            trigger: Some(Trigger::Label),
            requester: Some(foreman::ids::Login("alice".into())),
            instructions: None,
            delivery: None,
            cause: "test".into(),
        };
        s.enqueue(req, "alice", at).unwrap();
        s.claim_next(at).unwrap().unwrap().claim.session
    };
    let yesterday = start(&widgets, midnight - time::Duration::seconds(1));
    let a = start(&widgets, midnight);
    let b = start(&widgets, midnight + time::Duration::hours(3));
    let _unpriced = start(&widgets, midnight + time::Duration::hours(4));
    let other = start(&gadgets, midnight + time::Duration::hours(1));
    assert!(store.record_session_cost(&yesterday, 9.0).unwrap());
    assert!(store.record_session_cost(&a, 1.25).unwrap());
    assert!(store.record_session_cost(&b, 0.5).unwrap());
    assert!(store.record_session_cost(&b, 0.75).unwrap(), "a later figure replaces the earlier");
    assert!(store.record_session_cost(&other, 4.0).unwrap());
    assert!(!store.record_session_cost(&foreman::job::SessionId::new(), 1.0).unwrap());
    assert!(store.record_session_cost(&a, f64::NAN).is_err());

    assert_eq!(constitution::start_of_utc_day(midnight + time::Duration::hours(23)), midnight);
    let usage =
        store.repo_usage(&widgets, constitution::start_of_utc_day(midnight + time::Duration::hours(5))).unwrap();
    assert_eq!(usage.sessions, 3);
    assert!((usage.cost_usd - 2.0).abs() < 1e-9, "{usage:?}");
    assert_eq!(store.repo_usage(&gadgets, midnight).unwrap().sessions, 1);
    assert_eq!(store.repo_usage(&widgets, midnight - time::Duration::days(1)).unwrap().sessions, 4);

    let limits = constitution::parse(Origin::Repo, "[limits]\ndaily_sessions = 3\n").unwrap().limits;
    assert!(matches!(
        check_budget(&limits, &usage, midnight + time::Duration::hours(5)),
        constitution::BudgetVerdict::Wait { resume_at, .. } if resume_at == datetime!(2027-01-16 00:00 UTC)
    ));
    let roomy = constitution::parse(Origin::Repo, "[limits]\ndaily_cost_usd = 2.5\n").unwrap().limits;
    assert_eq!(check_budget(&roomy, &usage, midnight), constitution::BudgetVerdict::Allowed);
}

/// A missing file is remembered as missing for [`constitution::fetch::MISSING_TTL`]: with the whole-constitution cache
/// trusted for no time at all, a second read of the repository makes no call for either missing file, and a
/// second repository of the same organisation does not ask for the organisation's missing file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_cached_as_missing_so_a_second_read_makes_no_call() {
    tokio::time::timeout(LIMIT, async {
        let w = world(None, None).await;
        w.sim.create_repo("acme", "gadgets", &[("README.md", "hello\n")]).unwrap();
        let gadgets: RepoName = "acme/gadgets".parse().unwrap();
        let cache = constitution::fetch::Cache::new(w.client.clone(), Duration::ZERO, Ceilings::default());
        let first = cache.get(w.inst, &w.repo).await.unwrap();
        assert!(first.repo_text.is_none() && first.org_text.is_none());
        let after_first = contents_statuses(&w);
        assert_eq!(after_first.len(), 2, "one read of each file the first time: {after_first:?}");
        assert!(after_first.iter().all(|(_, status)| *status == 404), "{after_first:?}");

        let second = cache.get(w.inst, &w.repo).await.unwrap();
        assert_eq!(second.effective, first.effective);
        assert_eq!(contents_statuses(&w), after_first, "a second read within the time-to-live makes no call");

        cache.get(w.inst, &gadgets).await.unwrap();
        let reads = contents_statuses(&w);
        let org_reads = reads.iter().filter(|(path, _)| path.starts_with("/repos/acme/.github/")).count();
        assert_eq!(org_reads, 1, "the organisation's missing file is read once for all its repositories: {reads:?}");
        assert_eq!(reads.len(), 3, "{reads:?}");
    })
    .await
    .expect("timed out");
}
