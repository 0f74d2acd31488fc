//! The Reporter against github-sim over real HTTP on loopback, with a real organisation board: each job
//! state's labels and column, exactly one tracking comment across updates and a restart, the progress
//! throttle, the GitHub calls of a queued → running → succeeded lifecycle counted from the simulator's
//! request log, convergence under 20% injected faults, and Foreman's own changes ignored by the decision core.

use std::time::{Duration, Instant};

use foreman::decide::{Action, DecideConfig, Snapshot, decide};
use foreman::github::Client;
use foreman::ids::{InstallationId, IssueNumber, RepoName};
use foreman::report::github::{ReportConfig, Reporter};
use foreman::report::render::{JobState, Link, Progress, Tracking};
use github_sim::{Faults, GithubSim, Permission as SimPermission, SimConfig, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);
const COLUMNS: [&str; 6] = ["Backlog", "Ready", "In progress", "In review", "Blocked", "Done"];

mod client_support;
use client_support::fast;

struct World {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    inst: InstallationId,
    repo: RepoName,
    /// The board `acme/1` with every column.
    board: u64,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = GithubSim::start(SimConfig::new(dir.path().join("sim"))).await.unwrap();
        sim.create_repo("acme", "widgets", &[("README.md", "hello\n")]).unwrap();
        sim.create_user("alice", SimPermission::Write, "User");
        let (board, _) = sim.create_project("acme", "Work", &COLUMNS);
        let inst = InstallationId(sim.installation_id("acme"));
        World { _dir: dir, sim, inst, repo: "acme/widgets".parse().unwrap(), board }
    }

    /// A new client: a fresh process's, with empty caches.
    fn client(&self) -> Client {
        let key = SecretString::from(self.sim.private_key_pem().to_owned());
        Client::new(self.sim.app_id(), &key, self.sim.url(), fast()).unwrap()
    }

    fn reporter(&self, config: ReportConfig) -> Reporter {
        Reporter::new(self.client(), config)
    }

    /// An issue opened by alice, labelled `foreman` by her, with a card on the board in `Ready`.
    fn issue(&self, title: &str) -> (IssueNumber, String) {
        let (n, _) = self.sim.create_issue("acme/widgets", title, "please", "alice").unwrap();
        self.sim.add_label("acme/widgets", n, "foreman", "alice").unwrap();
        let item = self.sim.add_project_item("acme", self.board, "acme/widgets", n, "alice").unwrap();
        self.sim.move_card("acme", self.board, &item, "Ready", "alice").unwrap();
        (IssueNumber(n), item)
    }

    fn issue_state(&self, n: IssueNumber) -> Value {
        let state = self.sim.state();
        let repo =
            state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap().clone();
        repo["issues"].as_array().unwrap().iter().find(|i| i["number"] == n.0).unwrap().clone()
    }

    fn labels(&self, n: IssueNumber) -> Vec<String> {
        let mut l: Vec<String> =
            self.issue_state(n)["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect();
        l.sort();
        l
    }

    /// The item's column on board `number`.
    fn column(&self, number: u64, item: &str) -> Option<String> {
        let state = self.sim.state();
        let project =
            state["projects"].as_array().unwrap().iter().find(|p| p["org"] == "acme" && p["number"] == number).unwrap();
        let item = project["items"].as_array().unwrap().iter().find(|i| i["item_id"] == item).unwrap();
        item["column"].as_str().map(str::to_owned)
    }

    fn tracking_comments(&self, n: IssueNumber) -> Vec<Value> {
        let marker = format!("<!-- foreman:tracking acme/widgets#{n} -->");
        self.issue_state(n)["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["body"].as_str().unwrap().contains(&marker))
            .cloned()
            .collect()
    }

    fn requests(&self) -> Vec<Value> {
        self.sim.state()["requests"].as_array().unwrap().clone()
    }
}

fn tracking(n: IssueNumber, state: JobState) -> Tracking {
    let mut t = Tracking::new("acme/widgets".parse().unwrap(), n, state);
    t.trigger = Some("the `foreman` label from @alice".into());
    match state {
        JobState::Queued => t.queue_position = Some(2),
        JobState::Running => {
            t.attempt = Some((1, 3));
            t.progress =
                Some(Progress { turns: 1, tool_calls: 0, cost_usd: None, elapsed_secs: 1, ..Progress::default() });
        }
        JobState::Succeeded => {
            t.pull_request = Some(Link { text: "#99".into(), url: "http://example.invalid/pull/99".into() });
            t.summary = Some("Fixed it.".into());
        }
        _ => {}
    }
    t
}

fn request_line(r: &Value) -> String {
    match r["operation_name"].as_str() {
        Some(op) => {
            format!("{} {} ({op}) → {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap(), r["status"])
        }
        None => format!("{} {} → {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap(), r["status"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_state_sets_its_labels_and_column() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        // A second board without the Blocked and In review columns: its card is skipped there, not an error.
        let (small, _) = w.sim.create_project("acme", "Small", &["Todo", "In progress", "Done"]);
        let (n, item) = w.issue("Do the thing");
        let small_item = w.sim.add_project_item("acme", small, "acme/widgets", n.0, "alice").unwrap();
        let r = w.reporter(ReportConfig::default());

        let steps = [
            (JobState::Queued, vec!["foreman", "foreman:queued"], "Ready", None),
            (JobState::Running, vec!["foreman", "foreman:running"], "In progress", Some("In progress")),
            (JobState::Failed, vec!["foreman", "foreman:queued"], "In progress", Some("In progress")),
            (JobState::Stuck, vec!["foreman", "foreman:stuck"], "Blocked", Some("In progress")),
            (JobState::Queued, vec!["foreman", "foreman:queued"], "Blocked", Some("In progress")),
            (JobState::Running, vec!["foreman", "foreman:running"], "In progress", Some("In progress")),
            (JobState::Succeeded, vec!["foreman"], "In review", Some("In progress")),
        ];
        for (state, labels, column, small_column) in steps {
            let url = r.update(w.inst, &tracking(n, state)).await.unwrap();
            assert_eq!(w.labels(n), labels, "labels after {state:?}");
            assert_eq!(w.column(w.board, &item).as_deref(), Some(column), "column after {state:?}");
            assert_eq!(w.column(small, &small_item).as_deref(), small_column, "small board after {state:?}");
            let comments = w.tracking_comments(n);
            assert_eq!(comments.len(), 1, "one tracking comment after {state:?}");
            assert!(url.ends_with(&format!("#issuecomment-{}", comments[0]["id"])), "{url}");
        }
        assert!(w.tracking_comments(n)[0]["body"].as_str().unwrap().contains("pull request ready"));

        // Cancelled takes the queued and running labels away and leaves the card; stuck is only ever removed
        // by a state that says so.
        let (m, item) = w.issue("Stop this");
        w.sim.add_label("acme/widgets", m.0, "foreman:stuck", "alice").unwrap();
        r.update(w.inst, &tracking(m, JobState::Running)).await.unwrap();
        assert_eq!(w.labels(m), ["foreman", "foreman:running"]);
        r.update(w.inst, &tracking(m, JobState::Cancelled)).await.unwrap();
        assert_eq!(w.labels(m), ["foreman"]);
        assert_eq!(w.column(w.board, &item).as_deref(), Some("In progress"));

        // The labels were made once each, with Foreman's colours, and nothing GitHub's API description refuses
        // was sent.
        let state = w.sim.state();
        let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap();
        for l in ["foreman:queued", "foreman:running", "foreman:stuck"] {
            assert_eq!(repo["labels"].as_array().unwrap().iter().filter(|x| *x == l).count(), 1, "{l}");
        }
        assert_eq!(state["nonconforming"], json!([]));
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tracking_comment_across_updates_and_a_restart() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Once only");
        let r = w.reporter(ReportConfig::default());
        let first = r.update(w.inst, &tracking(n, JobState::Queued)).await.unwrap();
        let mut running = tracking(n, JobState::Running);
        r.update(w.inst, &running).await.unwrap();
        running.progress =
            Some(Progress { turns: 5, tool_calls: 9, cost_usd: Some(0.12), elapsed_secs: 40, ..Progress::default() });
        let third = r.update(w.inst, &running).await.unwrap();
        assert_eq!(first, third, "the same comment");
        assert_eq!(w.tracking_comments(n).len(), 1);

        // The same update again is already so: no call at all.
        let before = w.requests().len();
        r.update(w.inst, &running).await.unwrap();
        let calls: Vec<String> = w.requests()[before..].iter().map(request_line).collect();
        assert!(calls.is_empty(), "a repeated update made calls: {calls:?}");

        // A restart: a new client and reporter remember nothing, find the comment by its marker (one GET of
        // the comments) and edit it; they never make a second one.
        let restarted = w.reporter(ReportConfig::default());
        let before = w.requests().len();
        let after = restarted.update(w.inst, &tracking(n, JobState::Succeeded)).await.unwrap();
        assert_eq!(after, first);
        let calls: Vec<String> = w.requests()[before..].iter().map(request_line).collect();
        let gets = calls.iter().filter(|c| c.starts_with("GET /repos/acme/widgets/issues/1/comments")).count();
        assert_eq!(gets, 1, "{calls:#?}");
        assert!(!calls.iter().any(|c| c.starts_with("POST /repos/acme/widgets/issues/1/comments")), "{calls:#?}");
        let comments = w.tracking_comments(n);
        assert_eq!(comments.len(), 1, "{comments:#?}");
        assert!(comments[0]["body"].as_str().unwrap().contains("pull request ready"));
        assert_eq!(w.labels(n), ["foreman"]);

        // A person's comment quoting the marker is not taken for Foreman's.
        let (m, _) = w.issue("Quoted");
        w.sim
            .comment("acme/widgets", m.0, &format!("<!-- foreman:tracking acme/widgets#{m} -->\nme too"), "alice")
            .unwrap();
        w.reporter(ReportConfig::default()).update(w.inst, &tracking(m, JobState::Queued)).await.unwrap();
        let ours: Vec<Value> = w.tracking_comments(m).into_iter().filter(|c| c["user"] == w.sim.bot_login()).collect();
        assert_eq!(ours.len(), 1);
        assert_eq!(w.tracking_comments(m).len(), 2, "the person's comment is left alone");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_edits_are_throttled_and_touch_only_the_comment() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, item) = w.issue("Slowly");
        // The smallest whole interval, so the test waits about a second rather than ten.
        let r = w.reporter(ReportConfig { min_edit_interval_secs: 1, ..ReportConfig::default() });
        let mut t = tracking(n, JobState::Running);
        let step = |t: &mut Tracking, turns: u32| {
            t.progress = Some(Progress {
                turns,
                tool_calls: turns * 2,
                cost_usd: None,
                elapsed_secs: turns.into(),
                ..Progress::default()
            })
        };
        let before = w.requests().len();
        let first_edit = Instant::now();
        assert!(r.progress(w.inst, &t).await.unwrap(), "the first progress edit is made");
        step(&mut t, 2);
        let mid = w.requests().len();
        assert!(!r.progress(w.inst, &t).await.unwrap(), "the second, back to back, is skipped");
        assert_eq!(w.requests().len(), mid, "a skipped progress edit makes no call");

        // Once the interval has passed, the next one is made. Wait for that condition, bounded.
        step(&mut t, 3);
        let made = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if r.progress(w.inst, &t).await.unwrap() {
                    return Instant::now();
                }
                let due = r.next_progress_at(&w.repo, n).expect("skipped only while an edit is due later");
                tokio::time::sleep_until(due.into()).await;
            }
        })
        .await
        .expect("a progress edit is made after the interval");
        assert!(made - first_edit >= Duration::from_secs(1), "not before the interval: {:?}", made - first_edit);
        let body = w.tracking_comments(n)[0]["body"].as_str().unwrap().to_owned();
        assert!(body.contains("| 3 | 6 |"), "{body}");

        // Progress never touched labels or the board: only the comments.
        let calls: Vec<String> = w.requests()[before..].iter().map(request_line).collect();
        assert!(
            calls.iter().all(|c| c.contains("/issues/1/comments")
                || c.contains("/issues/comments/")
                || c.contains("/access_tokens")),
            "{calls:#?}"
        );
        assert_eq!(w.labels(n), ["foreman"]);
        assert_eq!(w.column(w.board, &item).as_deref(), Some("Ready"));

        // An update is never throttled.
        step(&mut t, 4);
        assert!(!r.progress(w.inst, &t).await.unwrap());
        r.update(w.inst, &t).await.unwrap();
        assert!(w.tracking_comments(n)[0]["body"].as_str().unwrap().contains("| 4 | 8 |"));
        assert_eq!(w.tracking_comments(n).len(), 1);
    })
    .await
    .expect("bounded");
}

/// GitHub calls the reporter makes for one job from queued to the pull request, in a fresh process on a
/// repository where the labels do not exist yet (the most it costs). Progress edits are not counted.
const LIFECYCLE_CALL_BOUND: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_of_a_queued_running_succeeded_lifecycle() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, item) = w.issue("Count me");
        let before = w.requests().len();
        let r = w.reporter(ReportConfig::default());
        let mut per_state = Vec::new();
        for state in [JobState::Queued, JobState::Running, JobState::Succeeded] {
            let from = w.requests().len();
            r.update(w.inst, &tracking(n, state)).await.unwrap();
            per_state.push((state, w.requests()[from..].iter().map(request_line).collect::<Vec<_>>()));
        }
        let total = w.requests().len() - before;
        println!("GitHub API calls by the reporter, queued → running → succeeded: {total}");
        for (state, calls) in &per_state {
            println!("  {state:?}: {}", calls.len());
            for c in calls {
                println!("    {c}");
            }
        }
        assert!(total <= LIFECYCLE_CALL_BOUND, "{total} calls, more than {LIFECYCLE_CALL_BOUND}: {per_state:#?}");
        assert_eq!(w.column(w.board, &item).as_deref(), Some("In review"));

        // A second job in the same repository and process: labels are not ensured again, boards are cached.
        let (m, _) = w.issue("Count me too");
        let from = w.requests().len();
        for state in [JobState::Queued, JobState::Running, JobState::Succeeded] {
            r.update(w.inst, &tracking(m, state)).await.unwrap();
        }
        let second: Vec<String> = w.requests()[from..].iter().map(request_line).collect();
        println!("the same lifecycle for a second issue in the same process: {} calls", second.len());
        let ensures = |c: &&String| {
            c.starts_with("GET /repos/acme/widgets/labels/") || c.starts_with("POST /repos/acme/widgets/labels ")
        };
        assert_eq!(second.iter().filter(ensures).count(), 0, "labels are ensured once per repository: {second:#?}");
        assert!(second.len() < total, "{second:#?}");
    })
    .await
    .expect("bounded");
}

/// The reporter's calls for a whole lifecycle, retried by the caller as the job runner does (it logs an error
/// and the next update finishes the work).
async fn lifecycle(w: &World, r: &Reporter, n: IssueNumber) -> usize {
    let mut errors = 0;
    for state in [JobState::Queued, JobState::Running, JobState::Failed, JobState::Running, JobState::Succeeded] {
        let t = tracking(n, state);
        let mut attempts = 0;
        while let Err(e) = r.update(w.inst, &t).await {
            attempts += 1;
            errors += 1;
            assert!(attempts < 5, "{state:?} never converged: {e}");
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_faults_converge_to_the_same_end_state() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let w = World::new().await;
        let (clean, clean_item) = w.issue("Without faults");
        assert_eq!(lifecycle(&w, &w.reporter(ReportConfig::default()), clean).await, 0);
        let faulty: Vec<(IssueNumber, String)> = (0..3).map(|i| w.issue(&format!("With faults {i}"))).collect();

        // Faults through the control API, as an operator would set them.
        let http = reqwest::Client::new();
        let faults = json!({"error_rate": 0.2, "kinds": ["500", "502", "429", "secondary", "graphql_rate_limit", "latency"], "latency_ms": 20});
        let answer = http.post(format!("{}/_sim/faults", w.sim.url())).json(&faults).send().await.unwrap();
        assert!(answer.status().is_success());
        let before = w.requests().len();
        let mut errors = 0;
        for (n, _) in &faulty {
            // Each as a fresh process would, so the comment is found, the labels ensured and the board read
            // under faults every time.
            errors += lifecycle(&w, &w.reporter(ReportConfig::default()), *n).await;
        }
        w.sim.set_faults(Faults::default());
        let faulted = w.requests()[before..]
            .iter()
            .filter(|r| matches!(r["status"].as_u64(), Some(500 | 502 | 429 | 403)))
            .count();
        println!("under 20% faults: {faulted} faulted answers, {errors} updates retried by the caller");
        assert!(faulted >= 3, "faults were injected ({faulted})");

        let strip = |c: &Value, n: IssueNumber| c["body"].as_str().unwrap().replace(&format!("#{n}"), "#N");
        let clean_comments = w.tracking_comments(clean);
        assert_eq!(clean_comments.len(), 1);
        for (n, item) in &faulty {
            assert_eq!(w.labels(*n), w.labels(clean), "#{n}");
            assert_eq!(w.column(w.board, item), w.column(w.board, &clean_item), "#{n}");
            let comments = w.tracking_comments(*n);
            assert_eq!(comments.len(), 1, "#{n}: one tracking comment: {comments:#?}");
            assert_eq!(strip(&comments[0], *n), strip(&clean_comments[0], clean), "#{n}");
        }
        let state = w.sim.state();
        let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap();
        let names: Vec<&Value> = repo["labels"].as_array().unwrap().iter().collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "no label made twice");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_twice_leaves_one_reaction() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Command");
        let comment = w.sim.comment("acme/widgets", n.0, "/foreman run", "alice").unwrap();
        let r = w.reporter(ReportConfig::default());
        r.acknowledge(w.inst, &w.repo, comment).await.unwrap();
        r.acknowledge(w.inst, &w.repo, comment).await.unwrap();
        let issue = w.issue_state(n);
        let c = issue["comments"].as_array().unwrap().iter().find(|c| c["id"] == comment).unwrap();
        let reactions = c["reactions"].as_array().unwrap();
        assert_eq!(reactions.len(), 1, "{reactions:?}");
        assert_eq!(reactions[0]["content"], "eyes");
        assert_eq!(reactions[0]["user"], w.sim.bot_login());
    })
    .await
    .expect("bounded");
}

/// Foreman's own label and board changes come back as webhooks with its bot as the sender. Decided with a
/// configuration under which the same change by a person would queue work, they are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foremans_own_label_and_board_changes_are_ignored_by_decide() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Echoes");
        w.reporter(ReportConfig::default()).update(w.inst, &tracking(n, JobState::Running)).await.unwrap();
        let bot = w.sim.bot_login();
        // What would trigger if a person did it: the running label as the trigger label, In progress as a
        // trigger column.
        let config = DecideConfig {
            label: "foreman:running".into(),
            trigger_columns: vec!["In progress".into()],
            ..DecideConfig::default()
        };
        let deliveries = w.sim.deliveries();
        let labeled = deliveries
            .iter()
            .find(|d| {
                d["event"] == "issues"
                    && d["action"] == "labeled"
                    && d["payload"]["label"]["name"] == "foreman:running"
                    && d["payload"]["sender"]["login"] == bot.as_str()
            })
            .expect("the bot's labeled delivery");
        let moved = deliveries
            .iter()
            .find(|d| {
                d["event"] == "projects_v2_item"
                    && d["action"] == "edited"
                    && d["payload"]["sender"]["login"] == bot.as_str()
            })
            .expect("the bot's board move delivery");
        for d in [labeled, moved] {
            let event_name = d["event"].as_str().unwrap();
            let payload = serde_json::to_vec(&d["payload"]).unwrap();
            let event = foreman::event::decode(event_name, &payload).unwrap();
            let actions = decide(&event, &config, &Snapshot::default());
            assert!(
                actions.iter().all(|a| matches!(a, Action::Ignore { .. })),
                "{event_name}: the bot's own change must not trigger: {actions:?}"
            );

            // The control: the same delivery sent by a person is not ignored.
            let mut by_person = d["payload"].clone();
            by_person["sender"]["login"] = json!("alice");
            by_person["sender"]["type"] = json!("User");
            let event = foreman::event::decode(event_name, &serde_json::to_vec(&by_person).unwrap()).unwrap();
            let actions = decide(&event, &config, &Snapshot::default());
            assert!(
                !actions.iter().all(|a| matches!(a, Action::Ignore { .. })),
                "{event_name}: a person's change triggers: {actions:?}"
            );
        }
    })
    .await
    .expect("bounded");
}

/// A follow-up job reports on its pull request: labels and the tracking comment go on the pull request, and
/// the board lookup (GraphQL `issue(number:)` answers `null` for a pull request) moves nothing and fails
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_on_a_pull_request_reports_there() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        // A branch one commit ahead of main, made in the simulator's bare repository.
        let git_dir = w.sim.git_dir("acme/widgets").unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(&git_dir)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "Foreman")
                .env("GIT_AUTHOR_EMAIL", "f@example.com")
                .env("GIT_COMMITTER_NAME", "Foreman")
                .env("GIT_COMMITTER_EMAIL", "f@example.com")
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let commit = git(&["commit-tree", "main^{tree}", "-p", "main", "-m", "change"]);
        git(&["branch", "foreman/issue-1", &commit]);
        let pr = IssueNumber(w.sim.create_pull("acme/widgets", "foreman/issue-1", "main", "Fix", "alice").unwrap());
        let r = w.reporter(ReportConfig::default());
        r.update(w.inst, &tracking(pr, JobState::Running)).await.unwrap();
        r.update(w.inst, &tracking(pr, JobState::Succeeded)).await.unwrap();
        let state = w.sim.state();
        let repo = state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == "acme/widgets").unwrap();
        let pull = repo["pulls"].as_array().unwrap().iter().find(|p| p["number"] == pr.0).unwrap();
        assert_eq!(pull["labels"], json!([]));
        let marker = format!("<!-- foreman:tracking acme/widgets#{pr} -->");
        let tracking: Vec<&Value> = pull["comments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["body"].as_str().unwrap().contains(&marker))
            .collect();
        assert_eq!(tracking.len(), 1);
        let ops: Vec<&str> =
            state["requests"].as_array().unwrap().iter().filter_map(|r| r["operation_name"].as_str()).collect();
        assert_eq!(ops, ["IssueProjectItems"], "the board was looked up once and nothing was moved");
    })
    .await
    .expect("bounded");
}

/// Someone deletes the tracking comment mid-job: the next write finds it gone (404 on the edit) and writes
/// one new comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tracking_comment_is_written_again() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Deleted");
        let r = w.reporter(ReportConfig::default());
        r.update(w.inst, &tracking(n, JobState::Queued)).await.unwrap();
        let id = w.tracking_comments(n)[0]["id"].as_u64().unwrap();

        // Deleted through GitHub's REST API with an installation token, as a maintainer's tool would.
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{}/app/installations/{}/access_tokens", w.sim.url(), w.inst.0))
            .bearer_auth(w.sim.app_jwt())
            .header("user-agent", "report-test")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let deleted = http
            .delete(format!("{}/repos/acme/widgets/issues/comments/{id}", w.sim.url()))
            .bearer_auth(token["token"].as_str().unwrap())
            .header("user-agent", "report-test")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        assert!(w.tracking_comments(n).is_empty());

        let url = r.update(w.inst, &tracking(n, JobState::Running)).await.unwrap();
        let comments = w.tracking_comments(n);
        assert_eq!(comments.len(), 1);
        assert_ne!(comments[0]["id"].as_u64().unwrap(), id);
        assert!(url.ends_with(&format!("#issuecomment-{}", comments[0]["id"])), "{url}");
    })
    .await
    .expect("bounded");
}

/// Updates and progress edits of one job racing each other (a session's progress and the runner's state
/// change) still make one tracking comment: the reporter serialises a job's writes, and a progress edit
/// that would wait for another write is skipped instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_of_one_job_make_one_comment() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Race");
        let r = w.reporter(ReportConfig { min_edit_interval_secs: 0, ..ReportConfig::default() });
        let mut tasks = Vec::new();
        for i in 0..6u32 {
            let (r, inst) = (r.clone(), w.inst);
            let mut t = tracking(n, JobState::Running);
            t.progress =
                Some(Progress { turns: i, tool_calls: i, cost_usd: None, elapsed_secs: 1, ..Progress::default() });
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 { r.update(inst, &t).await.map(drop) } else { r.progress(inst, &t).await.map(drop) }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(w.tracking_comments(n).len(), 1);
        assert_eq!(w.labels(n), ["foreman", "foreman:running"]);
    })
    .await
    .expect("bounded");
}

/// A progress edit that fails waits out the interval like one that was made, so a session's stream of
/// events does not ask an unavailable GitHub again at every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_progress_edit_waits_out_the_interval() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Down");
        let r = w.reporter(ReportConfig { min_edit_interval_secs: 60, ..ReportConfig::default() });
        let t = tracking(n, JobState::Running);
        w.sim.set_faults(Faults { error_rate: 1.0, kinds: vec!["502".into()], ..Faults::default() });
        let e = r.progress(w.inst, &t).await.unwrap_err();
        assert!(matches!(e, foreman::github::GithubError::Unavailable { .. }), "{e:?}");
        let before = w.requests().len();
        assert!(!r.progress(w.inst, &t).await.unwrap(), "skipped inside the interval");
        assert_eq!(w.requests().len(), before, "no call");
        // A state change is not throttled: it goes out as soon as GitHub answers again.
        w.sim.set_faults(Faults::default());
        r.update(w.inst, &t).await.unwrap();
        assert_eq!(w.tracking_comments(n).len(), 1);
    })
    .await
    .expect("bounded");
}

/// The outbox applies one job's reports in order and never lets an older job state undo a newer one: the
/// inbox worker's "queued" arriving after the runner's "running" (the claim came first) is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_drops_a_report_older_than_one_already_posted() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Race");
        let outbox = foreman::report::outbox::Outbox::new(w.reporter(ReportConfig::default()));
        outbox.update(w.inst, tracking(n, JobState::Running), 2);
        outbox.update(w.inst, tracking(n, JobState::Queued), 1);
        assert!(outbox.flush(&w.repo, n, LIMIT).await, "the reports were applied");
        assert_eq!(w.labels(n), vec!["foreman", "foreman:running"]);
        let body = w.tracking_comments(n)[0]["body"].as_str().unwrap().to_owned();
        assert!(body.contains("working on it"), "{body}");

        // The same version again (the runner's final report after a cancel) is applied.
        outbox.update(w.inst, tracking(n, JobState::Cancelled), 2);
        assert!(outbox.flush(&w.repo, n, LIMIT).await);
        assert_eq!(w.labels(n), vec!["foreman"]);
    })
    .await
    .expect("in time");
}

/// A progress report inside the edit interval is not dropped: it waits for the interval's end and is sent
/// then (the trailing edge), so a session's last figures reach the comment even when it falls quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_sends_the_last_progress_after_the_interval() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, _) = w.issue("Quiet");
        let r = w.reporter(ReportConfig { min_edit_interval_secs: 1, ..ReportConfig::default() });
        let outbox = foreman::report::outbox::Outbox::new(r);
        outbox.update(w.inst, tracking(n, JobState::Running), 1);
        assert!(outbox.flush(&w.repo, n, LIMIT).await);
        let written = Instant::now();
        for turns in 1..=3 {
            let mut t = tracking(n, JobState::Running);
            t.progress = Some(Progress {
                turns,
                tool_calls: turns,
                cost_usd: None,
                elapsed_secs: 1,
                step: Some("using `Bash`".into()),
            });
            outbox.progress(w.inst, t, 1);
        }
        // Nothing more is posted: the last progress goes out once the interval after the update has passed.
        assert!(outbox.flush(&w.repo, n, LIMIT).await, "the last progress was applied");
        assert!(written.elapsed() >= Duration::from_millis(900), "not inside the interval: {:?}", written.elapsed());
        let body = w.tracking_comments(n)[0]["body"].as_str().unwrap().to_owned();
        assert!(body.contains("| 3 | 3 |") && body.contains("Now: using `Bash`"), "{body}");
        assert_eq!(w.tracking_comments(n).len(), 1);
    })
    .await
    .expect("in time");
}

/// A durable outbox: a report GitHub refused stays stored and pending, and `resume` (at start and at each
/// reconciliation pass) applies it once GitHub answers again; a job whose state changed with no report at
/// all is reported from the job itself. Nothing is due once GitHub shows every job as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_github_refused_is_applied_when_the_outbox_resumes() {
    use foreman::job::{ClaimOwner, JobKind, NewJob, Trigger, nanos};
    use foreman::scheduler::SchedulerConfig;
    use foreman::store::{Store, StoreOptions};
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (n, item) = w.issue("Flaky");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
        let new = NewJob {
            blocked_by: vec![],
            repo: w.repo.clone(),
            issue: n,
            installation: Some(w.inst),
            kind: JobKind::Code,
            title: "Flaky".into(),
            body: String::new(),
            labels: vec!["foreman".into()],
            trigger: Some(Trigger::Label),
            requester: None,
            instructions: None,
            delivery: None,
            cause: "label".into(),
        };
        let now = time::OffsetDateTime::now_utc();
        let job = store.enqueue_job(&new, 2, "alice", now).unwrap().job().clone();
        let outbox =
            foreman::report::outbox::Outbox::new(w.reporter(ReportConfig::default())).with_store(store.clone());
        let never = |_: &foreman::job::Job| -> Tracking { panic!("the stored report shows the job as it is") };

        w.sim.set_faults(Faults { error_rate: 1.0, kinds: vec!["500".into()], ..Faults::default() });
        outbox.update(w.inst, tracking(n, JobState::Queued), nanos(job.updated_at));
        assert!(outbox.flush(&w.repo, n, LIMIT).await);
        assert!(w.tracking_comments(n).is_empty(), "GitHub refused the report");
        assert!(store.report(&w.repo, n).unwrap().unwrap().pending(), "stored, not applied");
        w.sim.set_faults(Faults::default());

        assert_eq!(outbox.resume(never).unwrap(), 1, "the stored report is due");
        assert!(outbox.flush(&w.repo, n, LIMIT).await);
        assert_eq!(w.tracking_comments(n).len(), 1);
        assert_eq!(w.labels(n), ["foreman", "foreman:queued"]);
        assert!(!store.report(&w.repo, n).unwrap().unwrap().pending(), "recorded as applied");
        assert_eq!(outbox.resume(never).unwrap(), 0, "nothing more is due");

        // Claimed with no report made (a process killed right after its claim, say): made from the job.
        let config = SchedulerConfig::default();
        store.claim_next_admitting(&ClaimOwner::new(), &config, now, &|_| true).unwrap().expect("claimed");
        assert_eq!(outbox.resume(|job| tracking(job.issue, job.state)).unwrap(), 1);
        assert!(outbox.flush(&w.repo, n, LIMIT).await);
        assert_eq!(w.labels(n), ["foreman", "foreman:running"]);
        assert_eq!(w.column(w.board, &item).as_deref(), Some("In progress"));
        assert!(w.tracking_comments(n)[0]["body"].as_str().unwrap().contains("working on it"));
        assert_eq!(outbox.resume(never).unwrap(), 0);
    })
    .await
    .expect("in time");
}

/// Jobs of one repository reported at the same moment create each state label once between them: the
/// reporter remembers a label created (or found already there) and makes the others wait for that one
/// `POST /repos/{owner}/{repo}/labels` rather than each sending its own and collecting a 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_create_each_label_once() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let issues: Vec<IssueNumber> = (0..6).map(|i| w.issue(&format!("Job {i}")).0).collect();
        let r = w.reporter(ReportConfig::default());
        for state in [JobState::Queued, JobState::Running] {
            let updates = issues.iter().map(|n| {
                let (r, t) = (r.clone(), tracking(*n, state));
                async move { r.update(w.inst, &t).await }
            });
            for result in futures_util::future::join_all(updates).await {
                result.unwrap();
            }
        }
        let creates: Vec<String> = w
            .requests()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/repos/acme/widgets/labels")
            .map(request_line)
            .collect();
        assert_eq!(creates.len(), 2, "one create for each of foreman:queued and foreman:running: {creates:#?}");
        for n in &issues {
            assert_eq!(w.labels(*n), ["foreman", "foreman:running"]);
        }
    })
    .await
    .expect("timed out");
}

/// A state label seen on an issue exists: after a restart (a new reporter, nothing remembered), reading an
/// issue that carries `foreman:running` spares every later job of the repository the create of that label
/// and its 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_seen_on_an_issue_is_not_created_again_after_a_restart() {
    tokio::time::timeout(LIMIT, async {
        let w = World::new().await;
        let (a, _) = w.issue("First");
        let (b, _) = w.issue("Second");
        let before_restart = w.reporter(ReportConfig::default());
        for n in [a, b] {
            before_restart.update(w.inst, &tracking(n, JobState::Running)).await.unwrap();
        }
        let from = w.requests().len();
        let r = w.reporter(ReportConfig::default());
        // The first report after the restart reads the issue's labels to remove foreman:running...
        r.update(w.inst, &tracking(a, JobState::Succeeded)).await.unwrap();
        // ...so the second job's report adds foreman:running without creating it again.
        r.update(w.inst, &tracking(b, JobState::Running)).await.unwrap();
        let creates: Vec<String> = w.requests()[from..]
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == "/repos/acme/widgets/labels")
            .map(request_line)
            .collect();
        assert_eq!(creates, Vec::<String>::new(), "no label created again");
        assert_eq!(w.labels(b), ["foreman", "foreman:running"]);
    })
    .await
    .expect("timed out");
}
