//! The console's job page, in headless Chromium (see `browser_support`): a job whose first session fails
//! and whose second succeeds shows both attempts, each linking to its own log in the viewer; the failure in
//! its failure ledger, counted; and its audit trail in order, from the label alice added (with the delivery
//! that brought it, linked to the deliveries page for an admin) to the success. A person who cannot read the
//! repository gets 404.

mod browser_support;
mod e2e_support;
mod session_support;

use std::path::Path;

use anthropic_stub::{Reply, Stub};
use serde_json::json;

use browser_support::{STEP, browser_programs, click, element, free_port, goto, open_browser, start_driver};
use e2e_support::{REPO, Setup, World, shared};

/// Fails its first session (says "giving up on try 1", a text its own command, which the log shows at the
/// start, does not hold; then exits 3: an agent failure) and fixes the issue in the next:
/// `<marks>/failed-<issue>` remembers the first.
fn fail_once_agent(marks: &Path) -> String {
    format!(
        r#"if [ ! -e '{m}/failed-'"$FOREMAN_ISSUE" ]; then
  touch '{m}/failed-'"$FOREMAN_ISSUE"
  echo "giving up on try $((0 + 1))"
  exit 3
fi
echo "fixed issue $FOREMAN_ISSUE" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix #$FOREMAN_ISSUE"
echo "Added fix-$FOREMAN_ISSUE.txt""#,
        m = marks.display()
    )
}

/// One-second backoffs, so the second attempt follows the first at once.
const CONFIG: &str = "[scheduler]\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\nmax_failures = 3\n";

/// Saves the page as `name`.png in `FOREMAN_TEST_SCREENSHOTS` when that is set (the pictures in
/// docs/console.md are taken so: `FOREMAN_TEST_SCREENSHOTS=docs/console cargo test --test e2e_console_job`).
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    if let Some(dir) = std::env::var_os("FOREMAN_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// The text of each row of the table `#id` but its header, in order.
async fn rows(browser: &fantoccini::Client, id: &str) -> Vec<String> {
    let table = element(browser, id).await;
    let mut out = Vec::new();
    for tr in table.find_all(fantoccini::Locator::Css("tr")).await.unwrap().into_iter().skip(1) {
        out.push(tr.text().await.unwrap());
    }
    out
}

/// The cells' texts of each row of the table `#id` but its header, in order.
async fn cells(browser: &fantoccini::Client, id: &str) -> Vec<Vec<String>> {
    let table = element(browser, id).await;
    let mut out = Vec::new();
    for tr in table.find_all(fantoccini::Locator::Css("tr")).await.unwrap().into_iter().skip(1) {
        let mut row = Vec::new();
        for td in tr.find_all(fantoccini::Locator::Css("td")).await.unwrap() {
            row.push(td.text().await.unwrap());
        }
        out.push(row);
    }
    out
}

/// The path each link matching `css` inside `#id` leads to, in order.
async fn hrefs(browser: &fantoccini::Client, id: &str, css: &str) -> Vec<String> {
    let table = element(browser, id).await;
    let mut out = Vec::new();
    for a in table.find_all(fantoccini::Locator::Css(css)).await.unwrap() {
        let href = a.attr("href").await.unwrap().unwrap_or_default();
        // The attribute as written, or resolved against the page's address.
        let path = match href.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]).to_owned(),
            None => href,
        };
        out.push(path);
    }
    out
}

/// The `n`th word of a row's text (cells are separated by white space).
fn word(row: &str, n: usize) -> Option<&str> {
    row.split_whitespace().nth(n)
}

/// Waits (bounded) until the page's text holds `what`.
async fn wait_page(browser: &fantoccini::Client, what: &str) {
    let found = tokio::time::timeout(STEP, async {
        loop {
            if browser.source().await.is_ok_and(|s| s.contains(what)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "the page did not show {what:?}:\n{}", browser.source().await.unwrap_or_default());
}

/// Foreman's address and the settings of a console on a free port with the simulator's OAuth client
/// (its App id 1001, its default client secret) and `dave` as its admin.
fn console_env() -> (String, Vec<(&'static str, String)>) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let env = vec![
        ("FOREMAN_LISTEN", format!("127.0.0.1:{port}")),
        ("FOREMAN_PUBLIC_URL", public.clone()),
        ("FOREMAN_CONSOLE_CLIENT_ID", format!("Iv1.{:016x}", 1001)),
        ("FOREMAN_CONSOLE_CLIENT_SECRET", "sim-client-secret".to_owned()),
        ("FOREMAN_CONSOLE_ADMINS", r#"["dave"]"#.to_owned()),
    ];
    (public, env)
}

/// Waits (bounded) until Foreman's job for `number` has succeeded; returns it as the admin API shows it.
async fn wait_succeeded(world: &World, number: u64) -> serde_json::Value {
    tokio::time::timeout(e2e_support::LIFECYCLE, async {
        loop {
            let job = world.job(number).await;
            if job["state"] == "succeeded" {
                return job;
            }
            tokio::time::sleep(e2e_support::POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the job did not succeed; foreman said:\n{}", world.logs()))
}

/// Opens `page` in `browser` and signs in there as `login` (GitHub's page on the simulator), back to `page`.
async fn sign_in(browser: &fantoccini::Client, page: &str, login: &str) {
    goto(browser, page).await;
    click(browser, "sign-in").await;
    click(browser, &format!("login-{login}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_page_shows_each_attempt_with_its_log_the_failure_ledger_and_the_audit_trail() {
    let (driver_program, chromium) = browser_programs();
    let marks = tempfile::tempdir().unwrap();
    let (public, mut env) = console_env();
    env.push(shared(marks.path()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = fail_once_agent(marks.path());
    let world = World::start_with(&agent, Setup { env: &env, config: CONFIG, ..Setup::default() }).await;
    world.sim.create_user("carol", github_sim::Permission::None, "User");
    world.sim.create_user("dave", github_sim::Permission::None, "User");

    let (number, _) = world.sim.create_issue(REPO, "Fix it on the second try", "Please", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    let state = world.wait("the label's delivery", |s| World::last_delivery(s, "issues")["action"] == "labeled").await;
    let delivery = World::last_delivery(&state, "issues")["guid"].as_str().unwrap().to_owned();
    world.wait_pull(number).await;
    let job = wait_succeeded(&world, number).await;
    assert_eq!(job["attempts"], 2, "{job}");
    let reason = job["last_failure"]["reason"].as_str().expect("the first attempt's failure").to_owned();

    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    browser.set_window_size(1300, 1500).await.unwrap();
    let page = format!("{public}/jobs/{REPO}/{number}");
    sign_in(&browser, &page, "alice").await;
    wait_page(&browser, "id=\"attempts\"").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), page);

    // Two attempts, oldest first: the failure and why, then the success; each links to its own log.
    let attempts = rows(&browser, "attempts").await;
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(word(&attempts[0], 0) == Some("1") && attempts[0].contains("failed"), "{}", attempts[0]);
    assert!(attempts[0].contains(&format!("agent: {reason}")), "{}", attempts[0]);
    assert!(word(&attempts[1], 0) == Some("2") && attempts[1].contains("succeeded"), "{}", attempts[1]);
    assert!(!attempts[1].contains("agent:"), "{}", attempts[1]);
    let logs = hrefs(&browser, "attempts", "a.session-log").await;
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_ne!(logs[0], logs[1]);

    // The failure ledger: the one failure, its class, why and when, counted towards the limit.
    let ledger = rows(&browser, "ledger").await;
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert!(ledger[0].contains("agent") && ledger[0].contains(&reason) && ledger[0].contains("UTC"), "{}", ledger[0]);
    assert!(ledger[0].ends_with("counts"), "{}", ledger[0]);
    let note = element(&browser, "ledger-note").await.text().await.unwrap();
    assert!(note.contains("1 of 3 agent or validation failures"), "{note}");
    assert_eq!(hrefs(&browser, "ledger", "a").await, logs[..1], "the ledger links the session that failed");

    // The audit trail in order: queued by alice from the label's delivery, claimed, failed, claimed again,
    // succeeded.
    let audit = rows(&browser, "audit").await;
    // When (date, time, UTC), who, what, …
    let actions: Vec<&str> = audit.iter().filter_map(|r| word(r, 4)).collect();
    let wanted = ["enqueued", "claimed", "failed", "claimed", "succeeded"];
    let mut at = 0;
    for action in &actions {
        if at < wanted.len() && *action == wanted[at] {
            at += 1;
        }
    }
    assert_eq!(at, wanted.len(), "the audit trail is not in order: {audit:#?}");
    assert_eq!(actions.last(), Some(&"succeeded"), "{audit:#?}");
    let queued = audit.iter().find(|r| word(r, 4) == Some("enqueued")).unwrap();
    assert!(queued.contains("alice") && queued.contains(&delivery), "{queued}");
    assert!(hrefs(&browser, "audit", "a.delivery").await.is_empty(), "the deliveries page is for admins");
    screenshot(&browser, "job").await;

    // Each attempt's link opens its own log: the first says it gave up, the second what it added.
    for (href, says, not) in [
        (&logs[0], "giving up on try 1", format!("Added fix-{number}.txt")),
        (&logs[1], &*format!("Added fix-{number}.txt"), "giving up on try 1".to_owned()),
    ] {
        goto(&browser, &format!("{public}{href}")).await;
        let lines = element(&browser, "lines").await.text().await.unwrap();
        assert!(lines.contains(says) && !lines.contains(&not), "{href}: {lines}");
    }
    browser.close().await.unwrap();

    // dave, an admin, finds the delivery linked to its page on the deliveries page.
    let browser = open_browser(&driver, &chromium).await;
    sign_in(&browser, &page, "dave").await;
    wait_page(&browser, "id=\"audit\"").await;
    assert_eq!(hrefs(&browser, "audit", "a.delivery").await, [format!("/deliveries/{delivery}")]);
    browser.close().await.unwrap();

    // carol cannot read the repository: 404 for the job page and for both logs.
    let browser = open_browser(&driver, &chromium).await;
    sign_in(&browser, &page, "carol").await;
    wait_page(&browser, "There is nothing here you can see.").await;
    let cookie = browser.get_named_cookie("foreman_session").await.unwrap();
    let cookie = format!("foreman_session={}", cookie.value());
    browser.close().await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in [format!("/jobs/{REPO}/{number}"), logs[0].clone(), logs[1].clone()] {
        let r = http.get(format!("{public}{path}")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(&reason) && !body.contains("fix-"), "{path}: {body}");
    }
}

/// With the real Claude Code CLI (`FOREMAN_TEST_CLAUDE`, or `.ci/node`) against the Messages API stub, an
/// attempt shows what the session's summary recorded: the agent's turns, its cost and the name of the
/// credential's variable (never its value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_claude_cli_an_attempt_shows_its_turns_cost_and_credential() {
    let (driver_program, chromium) = browser_programs();
    let claude = session_support::claude_path();
    let stub = Stub::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = e2e_support::claude_config(&claude, &stub.url(), home.path());
    let (public, mut env) = console_env();
    env.extend([("FOREMAN_AGENT_BACKEND", "claude".to_owned()), ("ANTHROPIC_API_KEY", KEY.to_owned())]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let world = World::start_with("exit 1", Setup { env: &env, config: &config, ..Setup::default() }).await;
    let worktree = std::path::Path::new(foreman::executor::local::sandbox::WORKSPACE);
    stub.push(Reply::tool_use("Write", json!({ "file_path": worktree.join("hello.txt"), "content": "Hello\n" })));
    stub.push(Reply::tool_use(
        "Bash",
        json!({ "command": "git add hello.txt && git commit -q -m 'Add hello.txt'", "description": "Commit" }),
    ));
    stub.push(Reply::text("Added hello.txt."));
    let (number, _) = world.sim.create_issue(REPO, "Add a greeting", "A hello.txt, please.", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    world.wait_pull(number).await;
    wait_succeeded(&world, number).await;

    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    sign_in(&browser, &format!("{public}/jobs/{REPO}/{number}"), "alice").await;
    wait_page(&browser, "id=\"attempts\"").await;
    let attempts = cells(&browser, "attempts").await;
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    // #, session, started, ended, state, duration, turns, cost, credential, failure.
    let a = &attempts[0];
    assert_eq!((a[0].as_str(), a[4].as_str()), ("1", "succeeded"), "{a:?}");
    assert_eq!(a[6], "3", "three turns: {a:?}");
    assert!(a[7].starts_with('$'), "a cost: {a:?}");
    assert_eq!((a[8].as_str(), a[9].as_str()), ("ANTHROPIC_API_KEY", ""), "{a:?}");
    assert!(!browser.source().await.unwrap().contains(KEY), "the credential's value is never shown");
    browser.close().await.unwrap();
}

/// The API key the CLI is given (the stub takes any).
const KEY: &str = "sk-ant-api03-e2e-stub";
