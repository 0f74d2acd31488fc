//! The console's server-wide views, in headless Chromium (see `browser_support`) against github-sim: an admin
//! finds a delivery by its id, opens it and presses "Replay", and sees what Foreman would decide now (not
//! what it decided then), with the repository's own `[triggers]`; the overview shows the recent outcome, the inbox's depth and the installation's
//! GitHub quota as github-sim reported it. A person not in `console.admins` gets 404 for the deliveries, and
//! a replay posted without this session's CSRF token is refused.

mod browser_support;
mod e2e_support;

use std::path::Path;
use std::time::Duration;

use browser_support::{STEP, browser_programs, click, element, free_port, goto, open_browser, start_driver};
use e2e_support::measure::pulls_closing_in;
use e2e_support::{LIFECYCLE, Setup, World, blocking_agent, shared};
use time::OffsetDateTime;

/// The repository of this test: its constitution makes `ai` its trigger label, not the server's `foreman`.
const REPO: &str = "acme/custom";
const CONSTITUTION: &str = "[triggers]\nlabel = \"ai\"\n";

/// A Foreman on a fixed port with `public_url`, the simulator's OAuth client (its App id 1001, its default
/// client secret), `dave` in `console.admins`, and `agent`.
async fn world(agent: &str, extra: &[(&str, String)]) -> (World, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut env: Vec<(&str, String)> = vec![
        ("FOREMAN_LISTEN", format!("127.0.0.1:{port}")),
        ("FOREMAN_PUBLIC_URL", public.clone()),
        ("FOREMAN_CONSOLE_CLIENT_ID", format!("Iv1.{:016x}", 1001)),
        ("FOREMAN_CONSOLE_CLIENT_SECRET", "sim-client-secret".to_owned()),
        ("FOREMAN_CONSOLE_ADMINS", r#"["dave"]"#.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let repos: [(&str, &[(&str, &str)]); 1] =
        [("custom", &[(".github/foreman.toml", CONSTITUTION), ("README.md", "# custom\n")])];
    let world = World::start_with(agent, Setup { env: &env, repos: &repos, ..Setup::default() }).await;
    world.sim.create_user("dave", github_sim::Permission::None, "User");
    (world, public)
}

/// Saves the page as `name`.png in `FOREMAN_TEST_SCREENSHOTS` when that is set
/// (`FOREMAN_TEST_SCREENSHOTS=docs/console cargo test --test e2e_console_deliveries`).
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    if let Some(dir) = std::env::var_os("FOREMAN_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits (bounded) until the text of `#id` contains every one of `what`.
async fn wait_text(browser: &fantoccini::Client, id: &str, what: &[&str]) -> String {
    let found = tokio::time::timeout(STEP, async {
        loop {
            if let Ok(e) = browser.find(fantoccini::Locator::Id(id)).await
                && let Ok(text) = e.text().await
                && what.iter().all(|w| text.contains(w))
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!("#{id} did not show {what:?} within {STEP:?}");
    })
}

/// Waits (bounded) until the browser's address contains `part`: a form's submission has loaded.
async fn wait_url(browser: &fantoccini::Client, part: &str) {
    let loaded = tokio::time::timeout(STEP, async {
        while !browser.current_url().await.is_ok_and(|u| u.as_str().contains(part)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(loaded.is_ok(), "the address never contained {part}");
}

/// Loads `url` again and again (bounded) until the text of `#id` contains every one of `what`.
async fn wait_page(browser: &fantoccini::Client, url: &str, id: &str, what: &[&str]) -> String {
    let found = tokio::time::timeout(STEP, async {
        loop {
            goto(browser, url).await;
            if let Ok(e) = browser.find(fantoccini::Locator::Id(id)).await
                && let Ok(text) = e.text().await
                && what.iter().all(|w| text.contains(w))
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("#{id} of {url} did not show {what:?} within {STEP:?}"))
}

/// Waits (bounded) until the file `path` exists.
async fn wait_file(path: &Path, world: &World) {
    tokio::time::timeout(LIFECYCLE, async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} did not appear; foreman said:\n{}", path.display(), world.logs()));
}

/// A browser signed in as `login` through github-sim, starting at `path`; returns it and its session cookie
/// and CSRF token.
async fn signed_in(
    driver: &browser_support::Driver,
    chromium: &Path,
    public: &str,
    login: &str,
    path: &str,
) -> (fantoccini::Client, String, String) {
    let browser = open_browser(driver, chromium).await;
    browser.set_window_size(1100, 900).await.unwrap();
    goto(&browser, &format!("{public}{path}")).await;
    click(&browser, "sign-in").await;
    click(&browser, &format!("login-{login}")).await;
    wait_text(&browser, "login", &[login]).await;
    let cookie = browser.get_named_cookie("foreman_session").await.unwrap();
    let source = browser.source().await.unwrap();
    let at = source.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf: String = source[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (browser, format!("foreman_session={}", cookie.value()), csrf)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(url: &str, cookie: &str) -> u16 {
    no_redirects().get(url).header("cookie", cookie).send().await.unwrap().status().as_u16()
}

async fn post(url: &str, cookie: Option<&str>, body: &str) -> u16 {
    let mut req = no_redirects().post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.body(body.to_owned()).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_a_delivery_replays_it_and_sees_outcomes_and_quota_on_the_overview() {
    let (driver_program, chromium) = browser_programs();
    let marks = tempfile::tempdir().unwrap();
    let (key, value) = shared(marks.path());
    let (world, public) = world(&blocking_agent(marks.path()), &[(key, value)]).await;
    let (number, _) = world.sim.create_issue(REPO, "Fix the widget", "Please", "alice").unwrap();
    world.sim.add_label(REPO, number, "ai", "alice").unwrap();
    wait_file(&marks.path().join(format!("started-{number}")), &world).await;
    // The `issues.labeled` delivery that queued the job, by the id github-sim sent it under.
    let labeled = world
        .sim
        .deliveries()
        .into_iter()
        .find(|d| {
            d["event"] == "issues"
                && d["action"] == "labeled"
                && d["payload"]["issue"]["number"] == number
                && d["payload"]["label"]["name"] == "ai"
        })
        .expect("github-sim delivered the label");
    let guid = labeled["guid"].as_str().unwrap().to_owned();

    let driver = start_driver(&driver_program).await;
    // dave (in console.admins) signs in from the deliveries page and finds the delivery by its id.
    let (browser, dave, dave_csrf) = signed_in(&driver, &chromium, &public, "dave", "/deliveries").await;
    wait_text(&browser, "deliveries", &[&guid, "issues.labeled", REPO]).await;
    element(&browser, "delivery-id").await.send_keys(&guid).await.unwrap();
    click(&browser, "find").await;
    wait_text(&browser, "delivery", &[&guid]).await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), format!("{public}/deliveries/{guid}"));
    wait_text(&browser, "summary", &["alice", &format!("#{number} Fix the widget"), "ai"]).await;
    let job_link = element(&browser, "job-link").await.attr("href").await.unwrap();
    assert_eq!(job_link.as_deref(), Some(format!("/jobs/{REPO}/{number}").as_str()));
    // Then, without a job, the label queued one.
    wait_text(&browser, "decisions", &["enqueue", "trigger: label"]).await;
    // Now the job runs: the same payload would queue nothing. (With the server's triggers alone it would
    // say that `ai` is no trigger label.)
    click(&browser, "replay").await;
    let now = wait_text(&browser, "replayed", &["running", "with what acme/custom's constitution sets"]).await;
    assert!(now.contains("ignore") && now.contains(&format!("{REPO}#{number} already has a running job")), "{now}");
    assert!(!now.contains("enqueue"), "{now}");
    browser
        .execute("document.getElementById('replayed').scrollIntoView({block: 'end'}); return true;", vec![])
        .await
        .unwrap();
    screenshot(&browser, "deliveries").await;
    // Replaying carried nothing out: the job still runs, with the one attempt.
    let job = world.job_in(REPO, number).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("running"), Some(1)), "{job}");

    // A delivery that does not decode is dead-lettered: its page says why, and a replay that it would be again.
    let dead = "0dead000-0000-4000-8000-000000000001";
    let body = br#"{"action":"labeled","issue":{"number":"not a number"}}"#.to_vec();
    let webhook = format!("{public}/api/github/webhooks");
    let sent = e2e_support::support::delivery(&no_redirects(), &webhook, e2e_support::SECRET, "issues", dead, body);
    assert_eq!(sent.send().await.unwrap().status(), 202);
    wait_page(&browser, &format!("{public}/deliveries/{dead}"), "meta", &["dead at", "Why dead-lettered"]).await;
    click(&browser, "replay").await;
    wait_text(&browser, "replayed", &["would dead-letter this delivery"]).await;

    // The filter: the dead letters alone, then one repository's label deliveries; a state that is none says so.
    goto(&browser, &format!("{public}/deliveries")).await;
    element(&browser, "filter-state").await.select_by_value("dead").await.unwrap();
    click(&browser, "apply").await;
    wait_url(&browser, "/deliveries?state=dead&event=&repo=").await;
    let dead_only = wait_text(&browser, "deliveries", &[dead]).await;
    assert!(!dead_only.contains(&guid), "{dead_only}");
    goto(&browser, &format!("{public}/deliveries")).await;
    element(&browser, "filter-event").await.send_keys("issues.labeled").await.unwrap();
    element(&browser, "filter-repo").await.send_keys(REPO).await.unwrap();
    click(&browser, "apply").await;
    wait_url(&browser, "event=issues.labeled").await;
    let labels = wait_text(&browser, "deliveries", &[&guid]).await;
    assert!(!labels.contains(dead) && !labels.contains("issue_comment"), "{labels}");
    assert!(labels.lines().skip(1).all(|l| l.contains("issues.labeled") && l.contains(REPO)), "{labels}");
    let shown = element(&browser, "filter-event").await.prop("value").await.unwrap();
    assert_eq!(shown.as_deref(), Some("issues.labeled"), "the form shows the filter back");
    assert_eq!(get(&format!("{public}/deliveries?state=gone"), &dave).await, 400);

    // An unknown id searched: the list says so (404).
    let missing = format!("{public}/deliveries?id=00000000-0000-0000-0000-000000000000");
    assert_eq!(get(&missing, &dave).await, 404);

    // GitHub's quota for the installation: what github-sim reports from now on, as Foreman's next calls
    // (the push, the pull request, the tracking comment) see it.
    let installation = world.sim.state()["installations"][0]["id"].as_u64().unwrap();
    let reset = OffsetDateTime::now_utc() + time::Duration::minutes(40);
    world.sim.spend_rate_limit(installation, 4321, Duration::from_secs(40 * 60));
    std::fs::write(marks.path().join("go"), "").unwrap();
    world.wait("the pull request", |s| !pulls_closing_in(s, REPO, number).is_empty()).await;

    let overview = format!("{public}/overview");
    let outcomes = wait_page(&browser, &overview, "outcomes", &[&format!("{REPO}#{number}"), "succeeded"]).await;
    assert!(outcomes.contains("a pull request"), "{outcomes}");
    wait_page(&browser, &overview, "inbox", &["Inbox: 0 deliveries waiting"]).await;
    let quota = wait_text(&browser, "quota", &[&installation.to_string(), "5000"]).await;
    let row = quota.lines().find(|l| l.starts_with(&installation.to_string())).unwrap_or_else(|| panic!("{quota}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let remaining: u64 = cells[1].parse().unwrap_or_else(|_| panic!("{row}"));
    assert!((4000..4321).contains(&remaining), "remaining {remaining} after the calls since 4321 were left: {row}");
    let shown = OffsetDateTime::parse(cells[3], &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{row}: {e}"));
    assert!((shown - reset).whole_seconds().abs() <= 5, "reset {shown}, github-sim's {reset}");
    browser.set_window_size(1100, 1250).await.unwrap();
    screenshot(&browser, "overview-admin").await;
    browser.close().await.unwrap();

    // bob reads the repository but is no admin: 404 for the deliveries, one delivery, and a replay of it
    // with his own session's token; the overview shows him the outcome but no quota.
    let (browser, bob, bob_csrf) = signed_in(&driver, &chromium, &public, "bob", "/overview").await;
    let outcomes = wait_text(&browser, "outcomes", &[&format!("{REPO}#{number}")]).await;
    assert!(outcomes.contains("succeeded"), "{outcomes}");
    assert!(browser.find(fantoccini::Locator::Id("quota")).await.is_err(), "a non-admin sees the quota");
    assert!(browser.find(fantoccini::Locator::Id("deliveries-link")).await.is_err());
    browser.close().await.unwrap();
    let replay = format!("{public}/deliveries/{guid}/replay");
    assert_eq!(get(&format!("{public}/deliveries"), &bob).await, 404);
    assert_eq!(get(&format!("{public}/deliveries/{guid}"), &bob).await, 404);
    assert_eq!(get(&format!("{public}/deliveries?id={guid}"), &bob).await, 404);
    assert_eq!(post(&replay, Some(&bob), &format!("csrf={bob_csrf}")).await, 404);
    // A replay forged against dave's session: without the token, or with a wrong one, refused.
    assert_eq!(post(&replay, Some(&dave), "").await, 403, "no CSRF token");
    assert_eq!(post(&replay, Some(&dave), "csrf=00").await, 403, "a wrong CSRF token");
    assert_eq!(post(&replay, Some(&dave), &format!("csrf={bob_csrf}")).await, 403, "another session's token");
    assert_eq!(post(&replay, None, "csrf=00").await, 401, "no session");
    assert_eq!(post(&replay, Some(&dave), &format!("csrf={dave_csrf}")).await, 200, "dave's own form");
}
