//! End to end, plans: a spec issue → `/foreman plan` (an agent writing a fixed plan of five tasks in two
//! chains to `FOREMAN_PLAN_FILE`) → the plan as a table → `/foreman approve` → five sub-issues, the exact
//! "blocked by" links read back through GitHub's REST API, the cards on the board; a second approval and a
//! `kill -9` in the middle of creating the issues each end with exactly five issues and the same links; a
//! bad plan fails with its reason; the real Claude Code CLI against the Messages API stub writes the plan
//! file. A real `foreman serve` against github-sim over HTTP, real git.

mod e2e_support;
mod session_support;

use std::collections::BTreeMap;
use std::time::Duration;

use anthropic_stub::{Block, Reply, Stub};
use e2e_support::{ORG, REPO, Setup, World};
use serde_json::{Value, json};

/// Bounds each test: a plan and an approval are seconds on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// Five tasks in two chains: T1 → T2 → T3, and T4 → T5.
fn five_tasks() -> Value {
    json!({"summary": "A parser, then commands; the guide beside it.", "tasks": [
        {"key": "T1", "title": "Tokenizer", "body": "Split input into tokens.\n\nDone when quoting is tested.", "phase": "1.1", "labels": ["parser"]},
        {"key": "T2", "title": "Parser", "body": "Build the tree.\n\nDone when the examples parse.", "phase": "1.2", "blocked_by": ["T1"]},
        {"key": "T3", "title": "Commands", "body": "Run commands.\n\nDone when `run` works.", "phase": "2.1", "blocked_by": ["T2"]},
        {"key": "T4", "title": "User guide", "body": "Write the guide.\n\nDone when each command has an example."},
        {"key": "T5", "title": "Guide examples", "body": "Test the guide.\n\nDone when CI runs them.", "blocked_by": ["T4"]}
    ]})
}

/// The titles the five issues get (the phase in front), and what blocks each, by title.
fn expected_links() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        ("1.1: Tokenizer".into(), vec![]),
        ("1.2: Parser".into(), vec!["1.1: Tokenizer".into()]),
        ("2.1: Commands".into(), vec!["1.2: Parser".into()]),
        ("User guide".into(), vec![]),
        ("Guide examples".into(), vec!["User guide".into()]),
    ])
}

/// A command agent that writes `plan` to the plan file and says one sentence.
fn plan_agent(plan: &Value) -> String {
    format!("cat > \"$FOREMAN_PLAN_FILE\" <<'PLAN'\n{plan}\nPLAN\necho 'Two chains of tasks.'")
}

/// The issues of the repository that carry a task marker of `parent`'s plan.
fn task_issues(state: &Value, parent: u64) -> Vec<Value> {
    let marker = format!("<!-- foreman:task {REPO}#{parent} ");
    World::repo_state(state)["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["body"].as_str().is_some_and(|b| b.contains(&marker)))
        .cloned()
        .collect()
}

/// An installation token for the organisation, to read GitHub's REST API as any client would.
async fn token(world: &World) -> String {
    let id = world.sim.installation_id(ORG);
    let r = reqwest::Client::new()
        .post(format!("{}/app/installations/{id}/access_tokens", world.sim.url()))
        .bearer_auth(world.sim.app_jwt())
        .header("accept", "application/vnd.github+json")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn get(world: &World, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", world.sim.url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

/// The parent's sub-issues and each one's "blocked by" issues, by title, read through the REST API.
async fn links_through_rest(world: &World, parent: u64) -> BTreeMap<String, Vec<String>> {
    let t = token(world).await;
    let subs = get(world, &t, &format!("/repos/{REPO}/issues/{parent}/sub_issues")).await;
    let mut out = BTreeMap::new();
    for s in subs.as_array().unwrap() {
        let n = s["number"].as_u64().unwrap();
        let by = get(world, &t, &format!("/repos/{REPO}/issues/{n}/dependencies/blocked_by")).await;
        let mut titles: Vec<String> =
            by.as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap().into()).collect();
        titles.sort();
        out.insert(s["title"].as_str().unwrap().to_owned(), titles);
    }
    out
}

/// Waits until Foreman's plan comment is on `parent`; returns its body.
async fn wait_plan(world: &World, parent: u64) -> String {
    let marker = format!("<!-- foreman:plan {REPO}#{parent} -->");
    let state = world
        .wait("the plan comment", |s| {
            World::comments(s, parent).iter().any(|c| c["body"].as_str().is_some_and(|b| b.starts_with(&marker)))
        })
        .await;
    let comments = World::comments(&state, parent);
    let plans: Vec<&Value> =
        comments.iter().filter(|c| c["body"].as_str().is_some_and(|b| b.starts_with(&marker))).collect();
    assert_eq!(plans.len(), 1, "one plan comment");
    plans[0]["body"].as_str().unwrap().to_owned()
}

/// Waits until Foreman replied to an approval on `parent` with `words`.
async fn wait_reply(world: &World, parent: u64, words: &str) -> Value {
    world
        .wait(&format!("a reply saying {words:?}"), |s| {
            World::comments(s, parent)
                .iter()
                .any(|c| c["user"] == world.sim.bot_login() && c["body"].as_str().is_some_and(|b| b.contains(words)))
        })
        .await
}

/// Plans an issue on the board and waits for the table; returns (parent, board).
async fn planned(world: &World) -> (u64, u64) {
    let project = world.board();
    let (parent, _) =
        world.sim.create_issue(REPO, "A command language", "Tokens, a parser, commands, a guide.", "alice").unwrap();
    world.sim.add_project_item(ORG, project, REPO, parent, "alice").unwrap();
    world.sim.comment(REPO, parent, "/foreman plan", "alice").unwrap();
    let table = wait_plan(world, parent).await;
    for row in [
        "| key | title | phase | blocked by | issue |",
        "| T1 | Tokenizer | 1.1 | — | — |",
        "| T2 | Parser | 1.2 | T1 | — |",
        "| T3 | Commands | 2.1 | T2 | — |",
        "| T4 | User guide | — | — | — |",
        "| T5 | Guide examples | — | T4 | — |",
    ] {
        assert!(table.contains(row), "{row}\n{table}");
    }
    assert!(table.contains("`/foreman approve`"), "{table}");
    (parent, project)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_plan_becomes_five_linked_sub_issues_on_the_board_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let world = World::start(&plan_agent(&five_tasks()), &[]).await;
        let (parent, project) = planned(&world).await;
        world.wait("plan ready", |s| World::tracking_body(s, parent).is_some_and(|b| b.contains("plan ready"))).await;
        assert!(task_issues(&world.sim.state(), parent).is_empty(), "nothing is created before approval");

        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "created 5 sub-issues").await;
        let tasks = task_issues(&state, parent);
        assert_eq!(tasks.len(), 5, "{tasks:#?}");
        assert_eq!(links_through_rest(&world, parent).await, expected_links());
        for t in &tasks {
            let n = t["number"].as_u64().unwrap();
            assert_eq!(t["user"], world.sim.bot_login());
            assert_eq!(World::card_column(&state, project, n).as_deref(), Some("Backlog"), "#{n}'s card");
        }
        let tokenizer = tasks.iter().find(|t| t["title"] == "1.1: Tokenizer").unwrap();
        assert_eq!(tokenizer["labels"], json!(["parser"]));
        let parser = tasks.iter().find(|t| t["title"] == "1.2: Parser").unwrap();
        assert!(parser["body"].as_str().unwrap().contains(&format!("Depends on #{}.", tokenizer["number"])));
        // The plan comment now names each task's issue; nothing was queued (run mode manual).
        let table = wait_plan(&world, parent).await;
        assert!(table.contains(&format!("| T1 | Tokenizer | 1.1 | — | #{} |", tokenizer["number"])), "{table}");
        for t in &tasks {
            assert_eq!(world.job(t["number"].as_u64().unwrap()).await, Value::Null, "manual: not queued");
        }

        // A second approval creates nothing.
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "nothing was created").await;
        assert_eq!(task_issues(&state, parent).len(), 5);
        assert_eq!(links_through_rest(&world, parent).await, expected_links());
        assert_eq!(world.sim.sub_issues(REPO, parent).len(), 5);

        // Someone without write permission cannot approve.
        world.sim.comment(REPO, parent, "/foreman approve", "bob").unwrap();
        wait_reply(&world, parent, "`/foreman approve` needs write permission").await;
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_the_issues_are_created_ends_with_five_issues_and_the_same_links() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut world = World::start(&plan_agent(&five_tasks()), &[]).await;
        let (parent, project) = planned(&world).await;

        // The third issue is created on GitHub, and Foreman killed before it hears so.
        world.sim.hold_answer("POST", &format!("/repos/{REPO}/issues"), 2);
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        assert!(world.sim.wait_held(Duration::from_secs(60)).await, "the third create was held: {}", world.logs());
        world.kill9();
        world.sim.release_hold();
        let state = world.sim.state();
        assert_eq!(task_issues(&state, parent).len(), 3, "killed in the middle");

        world.start_foreman();
        // The approval's delivery is still in the inbox: it runs again and makes only what is missing.
        let state = wait_reply(&world, parent, "created 2 sub-issues").await;
        let tasks = task_issues(&state, parent);
        assert_eq!(tasks.len(), 5, "exactly five: {tasks:#?}");
        assert_eq!(world.sim.sub_issues(REPO, parent).len(), 5);
        assert_eq!(links_through_rest(&world, parent).await, expected_links());
        for t in &tasks {
            let n = t["number"].as_u64().unwrap();
            assert_eq!(World::card_column(&state, project, n).as_deref(), Some("Backlog"), "#{n}'s card");
        }
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_a_cycle_fails_with_the_reason() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut plan = five_tasks();
        plan["tasks"][0]["blocked_by"] = json!(["T3"]);
        let world = World::start(&plan_agent(&plan), &[]).await;
        let (parent, _) = world.sim.create_issue(REPO, "Loops", "A spec.", "alice").unwrap();
        world.sim.comment(REPO, parent, "/foreman plan", "alice").unwrap();
        let state = world
            .wait("the refusal", |s| {
                World::tracking_body(s, parent).is_some_and(|b| b.contains("the tasks' dependencies form a cycle"))
            })
            .await;
        let tracking = World::tracking_body(&state, parent).unwrap();
        assert!(tracking.contains("T2 → T3 → T1 → T2"), "{tracking}");
        let marker = format!("<!-- foreman:plan {REPO}#{parent} -->");
        assert!(!World::comments(&state, parent).iter().any(|c| c["body"].as_str().unwrap_or("").contains(&marker)));
    })
    .await
    .expect("in time");
}

/// The real Claude Code CLI (`FOREMAN_TEST_CLAUDE`, or `.ci/node`) run by `foreman serve` against the
/// Messages API stub: the stub's scripted `Write` call, at the path the planning prompt names, writes the
/// plan file, and the plan is posted as a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_claude_cli_the_plan_file_becomes_the_table() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let claude = session_support::claude_path();
        let stub = Stub::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let config = e2e_support::claude_config(&claude, &stub.url(), home.path());
        let env = [("FOREMAN_AGENT_BACKEND", "claude"), ("ANTHROPIC_API_KEY", "sk-ant-api03-e2e-stub")];
        let world = World::start_with("exit 1", Setup { env: &env, config: &config, ..Setup::default() }).await;
        let plan_path = format!("{}/.foreman-plan.json", foreman::executor::local::sandbox::HOME);
        stub.push(Reply::blocks(vec![
            Block::Text("I'll write the plan.".into()),
            Block::ToolUse {
                name: "Write".into(),
                input: json!({ "file_path": plan_path, "content": five_tasks().to_string() }),
            },
        ]));
        stub.push(Reply::text("Two chains of tasks."));
        let (parent, _) = world.sim.create_issue(REPO, "A command language", "The spec.", "alice").unwrap();
        world.sim.comment(REPO, parent, "/foreman plan", "alice").unwrap();

        let table = wait_plan(&world, parent).await;
        assert!(table.contains("| T5 | Guide examples | — | T4 | — |"), "{table}");
        assert!(table.contains("A parser, then commands"), "{table}");
        let prompt = &stub.requests()[0].body.to_string();
        assert!(prompt.contains(&plan_path) && prompt.contains("FOREMAN_PLAN_FILE"), "the prompt names the file");
        assert!(World::pulls_closing(&world.sim.state(), parent).is_empty(), "a plan changes nothing");
    })
    .await
    .expect("in time");
}

/// A plan that runs itself (`plan.run = "auto"`): every task is queued at approval, pull requests open in
/// dependency order, and a dependent starts only once its blocker's issue is closed (its pull request
/// merged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_run_plan_opens_pull_requests_in_dependency_order() {
    tokio::time::timeout(Duration::from_secs(240), async {
        // A planning session writes the plan; every other session fixes its issue.
        let agent = format!(
            "if [ -n \"${{FOREMAN_PLAN_FILE:-}}\" ]; then\n{}\nelse\n{}\nfi",
            plan_agent(&five_tasks()),
            e2e_support::FIXING_AGENT
        );
        let world = World::start(&agent, &[]).await;
        world.sim.push_file(REPO, ".github/foreman.toml", "[plan]\nrun = \"auto\"\n", "alice").unwrap();
        let (parent, _) = planned(&world).await;
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "5 queued").await;
        let number = |title: &str| {
            task_issues(&state, parent).iter().find(|t| t["title"] == title).unwrap()["number"].as_u64().unwrap()
        };
        let [t1, t2, t3, t4, t5] =
            ["1.1: Tokenizer", "1.2: Parser", "2.1: Commands", "User guide", "Guide examples"].map(number);

        // The tasks nothing blocks get their pull requests; the others wait.
        let p1 = world.wait_pull(t1).await["number"].as_u64().unwrap();
        let p4 = world.wait_pull(t4).await["number"].as_u64().unwrap();
        let state = world.sim.state();
        for blocked in [t2, t3, t5] {
            assert!(World::pulls_closing(&state, blocked).is_empty(), "#{blocked} waits for its blocker");
            assert_eq!(world.job(blocked).await["state"], "queued", "#{blocked}");
        }

        // Merging T1's pull request closes T1, which starts T2 (and only T2 of its chain).
        world.sim.merge_pull(REPO, p1, "alice").unwrap();
        let p2 = world.wait_pull(t2).await["number"].as_u64().unwrap();
        assert!(p2 > p1, "T2's pull request opens after T1's");
        assert!(World::pulls_closing(&world.sim.state(), t3).is_empty(), "T3 waits for T2");
        world.sim.merge_pull(REPO, p4, "alice").unwrap();
        let p5 = world.wait_pull(t5).await["number"].as_u64().unwrap();
        assert!(p5 > p4);
        world.sim.merge_pull(REPO, p2, "alice").unwrap();
        let p3 = world.wait_pull(t3).await["number"].as_u64().unwrap();
        assert!(p3 > p2);
    })
    .await
    .expect("in time");
}

/// `plan.approve = "auto"`: a valid plan is created at once, without `/foreman approve`; `/foreman plan
/// <path>` names the specification's file, which the planning prompt points the agent to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_approved_plan_of_a_spec_file_is_created_at_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let agent = format!(
            "grep -q \"The specification is the repository's file \\`docs/spec.md\\`\" \"$FOREMAN_PROMPT_FILE\"\n{}",
            plan_agent(&five_tasks())
        );
        let world = World::start(&agent, &[]).await;
        world.sim.push_file(REPO, "docs/spec.md", "# The language\n", "alice").unwrap();
        world.sim.push_file(REPO, ".github/foreman.toml", "[plan]\napprove = \"auto\"\n", "alice").unwrap();
        let (parent, _) = world.sim.create_issue(REPO, "Build it", "See docs/spec.md.", "alice").unwrap();
        world.sim.comment(REPO, parent, "/foreman plan docs/spec.md", "alice").unwrap();
        let state = world
            .wait("the tasks created with the plan", |s| {
                World::issue(s, parent)["sub_issues"].as_array().is_some_and(|a| a.len() == 5)
                    && World::tracking_body(s, parent).is_some_and(|b| b.contains("plan ready"))
            })
            .await;
        assert_eq!(world.sim.sub_issues(REPO, parent).len(), 5);
        assert_eq!(links_through_rest(&world, parent).await, expected_links());
        assert!(task_issues(&state, parent).iter().all(|t| t["state"] == "open"));
    })
    .await
    .expect("in time");
}

/// `/foreman plan` again proposes a revision: the table shows the tasks that have issues, and the next
/// approval adds the new task only (linked to an existing one), leaving the others as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revised_plan_adds_only_its_new_tasks() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let marks = tempfile::tempdir().unwrap();
        let plan_at = marks.path().join("plan.json");
        std::fs::write(&plan_at, five_tasks().to_string()).unwrap();
        let agent = format!("cat '{}' > \"$FOREMAN_PLAN_FILE\"\necho 'The plan.'", plan_at.display());
        let share = e2e_support::shared(marks.path());
        let world = World::start(&agent, &[(share.0, &share.1)]).await;
        let (parent, _) = planned(&world).await;
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "created 5 sub-issues").await;
        let before: Vec<Value> = task_issues(&state, parent);

        // A person removes one link; the revision adds T6, blocked by T3.
        let t2 = before.iter().find(|t| t["title"] == "1.2: Parser").unwrap()["number"].as_u64().unwrap();
        let t1 = before.iter().find(|t| t["title"] == "1.1: Tokenizer").unwrap()["number"].as_u64().unwrap();
        world.sim.remove_blocked_by(REPO, t2, REPO, t1, "alice").unwrap();
        let mut revised = five_tasks();
        revised["tasks"].as_array_mut().unwrap().push(
            json!({"key": "T6", "title": "Release", "body": "Cut a release.\n\nDone when tagged.", "blocked_by": ["T3"]}),
        );
        std::fs::write(&plan_at, revised.to_string()).unwrap();
        world.sim.comment(REPO, parent, "/foreman plan", "alice").unwrap();
        world
            .wait("the revised table", |s| {
                World::comments(s, parent).iter().any(|c| {
                    c["body"].as_str().is_some_and(|b| b.contains("| T6 | Release |") && b.contains("6 tasks (1 new)"))
                })
            })
            .await;
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "created 1 sub-issue").await;
        let after = task_issues(&state, parent);
        assert_eq!(after.len(), 6);
        let mut want = expected_links();
        want.insert("1.2: Parser".into(), vec![]); // removed by a person, left so
        want.insert("Release".into(), vec!["2.1: Commands".into()]);
        assert_eq!(links_through_rest(&world, parent).await, want);
    })
    .await
    .expect("in time");
}

/// The parent's checklist follows its sub-issues as they run: after approval it lists the five tasks, a
/// task that fails is shown stuck with where to act (and the task it blocks waits for it), one a person
/// adds by hand joins the list, and when every sub-issue is closed the parent gets the final summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_checklist_follows_its_sub_issues_to_done() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let marks = tempfile::tempdir().unwrap();
        let shared = e2e_support::shared(marks.path());
        // Planning writes the plan; a task whose mark file exists fails; every other is fixed.
        let agent = format!(
            "if [ -n \"${{FOREMAN_PLAN_FILE:-}}\" ]; then\n{}\nelif [ -e '{}/fail-'\"$FOREMAN_ISSUE\" ]; then\n\
             echo 'this task cannot be done' >&2; exit 1\nelse\n{}\nfi",
            plan_agent(&five_tasks()),
            marks.path().display(),
            e2e_support::FIXING_AGENT
        );
        let config = "[reconcile]\ninterval_secs = 3600\n[scheduler]\nmax_failures = 1\n";
        let env = [(shared.0, shared.1.as_str())];
        let world = World::start_with(&agent, Setup { config, env: &env, ..Default::default() }).await;
        let (parent, _) = planned(&world).await;
        world.sim.comment(REPO, parent, "/foreman approve", "alice").unwrap();
        let state = wait_reply(&world, parent, "created").await;
        let number = |title: &str| {
            task_issues(&state, parent).iter().find(|t| t["title"] == title).unwrap()["number"].as_u64().unwrap()
        };
        let [t1, t2, t3, t4, t5] =
            ["1.1: Tokenizer", "1.2: Parser", "2.1: Commands", "User guide", "Guide examples"].map(number);
        let marker = format!("<!-- foreman:progress {REPO}#{parent} -->");
        let checklist = |s: &Value| {
            World::comments(s, parent)
                .iter()
                .filter_map(|c| c["body"].as_str())
                .find(|b| b.starts_with(&marker))
                .map(str::to_owned)
        };
        let list = world
            .wait("the checklist of five sub-issues", |s| checklist(s).is_some_and(|c| c.contains("**0/5 done**")))
            .await;
        let list = checklist(&list).unwrap();
        for t in [t1, t2, t3, t4, t5] {
            assert!(list.contains(&format!("- [ ] #{t} ")), "#{t} is listed:\n{list}");
        }

        // T4 fails once (max_failures = 1): stuck, with where to act; T5, which it blocks, waits for it.
        std::fs::write(marks.path().join(format!("fail-{t4}")), "").unwrap();
        world.sim.add_label(REPO, t4, "foreman", "alice").unwrap();
        world.sim.add_label(REPO, t5, "foreman", "alice").unwrap();
        let stuck = format!("#{t4} `User guide`: stuck: `/foreman retry` there");
        let waiting = format!("#{t5} `Guide examples`: waiting for #{t4}");
        let state = world
            .wait("the checklist to show the stuck task and its waiting dependent", |s| {
                checklist(s).is_some_and(|c| c.contains(&stuck) && c.contains(&waiting) && c.contains("1 stuck"))
            })
            .await;
        assert_eq!(
            World::comments(&state, parent)
                .iter()
                .filter(|c| c["body"].as_str().is_some_and(|b| b.starts_with(&marker)))
                .count(),
            1,
            "one checklist comment, edited in place"
        );

        // A sub-issue added by hand joins the list.
        let (extra, _) = world.sim.create_issue(REPO, "Release notes", "", "alice").unwrap();
        world.sim.add_sub_issue(REPO, parent, REPO, extra, "alice").unwrap();
        world
            .wait("the hand-added sub-issue on the checklist", |s| {
                checklist(s).is_some_and(|c| c.contains(&format!("#{extra} `Release notes`")) && c.contains("/6 done"))
            })
            .await;

        // Every sub-issue closed: the final summary.
        for t in [t1, t2, t3, t4, t5, extra] {
            world.sim.set_issue_state(REPO, t, "closed", "alice").unwrap();
        }
        world
            .wait("the final summary on the parent", |s| {
                checklist(s).is_some_and(|c| c.contains("all 6 sub-issues are done") && c.contains("**6/6 done**"))
            })
            .await;
    })
    .await
    .expect("in time");
}
