//! The console's repository page, in headless Chromium (see `browser_support`): a writer signed in through
//! github-sim sees the repository's job with links to its issue, its pull request and its checks, the
//! constitution's rules with where each came from (the repository's file, the organisation's, the server,
//! the default), the cost per day with the daily budget line, and a parent issue's sub-issue progress; the
//! overview and the job page link to it; a person who cannot read the repository gets 404.

mod browser_support;
mod e2e_support;

use std::path::Path;
use std::time::Duration;

use browser_support::{STEP, browser_programs, click, element, free_port, goto, open_browser, start_driver};
use e2e_support::{ORG, REPO, Setup, World};

/// An agent that fixes the issue and says the session cost 40 cents.
const COSTING_AGENT: &str = r#"echo "fixed issue $FOREMAN_ISSUE" > "fix-$FOREMAN_ISSUE.txt"
git add -A
git commit -q -m "Fix #$FOREMAN_ISSUE"
echo "::foreman cost 0.40"
echo "Added fix-$FOREMAN_ISSUE.txt""#;

/// The organisation's defaults: a daily budget of 5 dollars.
const ORG_CONSTITUTION: &str = "[limits]\ndaily_cost_usd = 5.0\n";
/// The repository's own file: at most 7 changed files.
const REPO_CONSTITUTION: &str = "[rules]\nmax_files_changed = 7\n";

/// Saves the page as `name`.png in `FOREMAN_TEST_SCREENSHOTS` when that is set (the pictures in
/// docs/console.md are taken so: `FOREMAN_TEST_SCREENSHOTS=docs/console cargo test --test e2e_console_repo`).
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    if let Some(dir) = std::env::var_os("FOREMAN_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// The `href` of the first element matching `css` inside `#id`.
async fn href(browser: &fantoccini::Client, id: &str, css: &str) -> String {
    let table = element(browser, id).await;
    let link = match table.find(fantoccini::Locator::Css(css)).await {
        Ok(link) => link,
        Err(e) => panic!("no {css} in #{id}: {e}\n{}", browser.source().await.unwrap_or_default()),
    };
    link.attr("href").await.unwrap().unwrap_or_default()
}

/// The text of the table row of `#id` whose first cell reads `first`.
async fn row(browser: &fantoccini::Client, id: &str, first: &str) -> String {
    let table = element(browser, id).await;
    for tr in table.find_all(fantoccini::Locator::Css("tr")).await.unwrap() {
        let text = tr.text().await.unwrap();
        if text.starts_with(first) {
            return text;
        }
    }
    panic!("no row starting {first:?} in #{id}:\n{}", table.text().await.unwrap());
}

/// A Foreman on a fixed port with `public_url`, the simulator's OAuth client and the costing agent, with
/// `repos` made in the organisation first; carol (no access) is a user too. Returns the world and the
/// address of the repository's page.
async fn world(repos: &[(&str, &[(&str, &str)])]) -> (World, String, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let env = [
        ("FOREMAN_LISTEN", format!("127.0.0.1:{port}")),
        ("FOREMAN_PUBLIC_URL", public.clone()),
        ("FOREMAN_CONSOLE_CLIENT_ID", format!("Iv1.{:016x}", 1001)),
        ("FOREMAN_CONSOLE_CLIENT_SECRET", "sim-client-secret".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let world = World::start_with(COSTING_AGENT, Setup { env: &env, repos, ..Setup::default() }).await;
    world.sim.create_user("carol", github_sim::Permission::None, "User");
    let page = format!("{public}/repos/{REPO}");
    (world, public, page)
}

/// Opens `page` not signed in, signs in as `login` through github-sim, and comes back to it.
async fn sign_in(browser: &fantoccini::Client, page: &str, login: &str) {
    goto(browser, page).await;
    click(browser, "sign-in").await;
    click(browser, &format!("login-{login}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_sees_a_repositorys_jobs_rules_cost_and_plans_and_others_get_404() {
    let (driver_program, chromium) = browser_programs();
    let org_files: &[(&str, &str)] = &[(".github/foreman.toml", ORG_CONSTITUTION)];
    let (world, public, page) = world(&[(".github", org_files)]).await;
    world.sim.push_file(REPO, ".github/foreman.toml", REPO_CONSTITUTION, "alice").unwrap();

    // A job that ends in a pull request, its session costing $0.40.
    let (number, _) = world.sim.create_issue(REPO, "Fix it", "Please fix", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    let pull = world.wait_pull(number).await;
    let pull_url = format!("{}/{REPO}/pull/{}", world.sim.url().trim_end_matches('/'), pull["number"]);
    world
        .wait("the tracking comment to show the pull request", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains(&pull_url))
        })
        .await;

    // A parent with two sub-issues, one of them (the fixed issue) closed.
    let (parent, _) = world.sim.create_issue(REPO, "Plan: widgets", "The plan", "alice").unwrap();
    let (other, _) = world.sim.create_issue(REPO, "The second task", "Later", "alice").unwrap();
    world.sim.add_sub_issue(REPO, parent, REPO, number, "alice").unwrap();
    world.sim.add_sub_issue(REPO, parent, REPO, other, "alice").unwrap();
    world.sim.set_issue_state(REPO, number, "closed", "alice").unwrap();
    world
        .wait("the parent's checklist to count the closed sub-issue", |s| {
            World::comments(s, parent).iter().any(|c| c["body"].as_str().is_some_and(|b| b.contains("**1/2 done**")))
        })
        .await;

    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    browser.set_window_size(1100, 1500).await.unwrap();
    // Not signed in: the sign-in page, GitHub, and back to the repository's page.
    sign_in(&browser, &page, "alice").await;
    element(&browser, "history").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), page);

    // The job, with its outcome, its cost and its links.
    let job = row(&browser, "history", &format!("#{number}")).await;
    assert!(job.contains("Fix it") && job.contains("succeeded") && job.contains("a pull request"), "{job}");
    assert!(job.contains("$0.40"), "the job's cost: {job}");
    let issue_link = href(&browser, "history", "a.issue-link").await;
    assert!(issue_link.ends_with(&format!("/{REPO}/issues/{number}")), "{issue_link}");
    assert_eq!(href(&browser, "history", "a.pull-link").await, pull_url);
    assert_eq!(href(&browser, "history", "a.checks-link").await, format!("{pull_url}/checks"));

    // The rules and where each came from.
    let rule = row(&browser, "rules", "rules.max_files_changed").await;
    assert!(rule.contains('7') && rule.contains(&format!("repository: .github/foreman.toml in {REPO}")), "{rule}");
    let rule = row(&browser, "rules", "limits.daily_cost_usd").await;
    assert!(
        rule.contains('5') && rule.contains(&format!("organisation: .github/foreman.toml in {ORG}/.github")),
        "{rule}"
    );
    let rule = row(&browser, "rules", "rules.max_lines_changed").await;
    assert!(rule.contains("default") && !rule.contains("repository") && !rule.contains("organisation"), "{rule}");
    assert!(
        href(&browser, "rules", "tr.origin-repository a")
            .await
            .ends_with(&format!("/{REPO}/blob/HEAD/.github/foreman.toml"))
    );

    // The cost per day, with the budget line, and the figures as text.
    let budget = element(&browser, "budget-line").await;
    assert!(budget.attr("y1").await.unwrap().is_some());
    let summary = element(&browser, "cost-summary").await.text().await.unwrap();
    assert!(summary.contains("today $0.40 of a daily budget of $5.00"), "{summary}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let figures = browser
        .execute(
            "const t = document.getElementById('cost-figures'); return t.caption.textContent + ' ' + \
             Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.textContent).join(' ')).join(' ');",
            vec![],
        )
        .await
        .unwrap();
    let figures = figures.as_str().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(figures.contains(&format!("{today} $0.40 1")), "{figures}");
    assert!(figures.contains("daily budget $5.00"), "{figures}");

    // The parent and its progress.
    let plan = row(&browser, "parents", &format!("#{parent}")).await;
    assert!(plan.contains("1/2 done"), "{plan}");
    assert!(href(&browser, "parents", "a.parent-link").await.ends_with(&format!("/{REPO}/issues/{parent}")));
    screenshot(&browser, "repo").await;

    // The overview and the job page lead here.
    goto(&browser, &format!("{public}/overview")).await;
    let link = format!("/repos/{REPO}");
    assert_eq!(href(&browser, "repos", &format!("a[href='{link}']")).await, link);
    goto(&browser, &format!("{public}/jobs/{REPO}/{number}")).await;
    click(&browser, "repo-link").await;
    element(&browser, "history").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), page);
    browser.close().await.unwrap();

    // carol (no access to the repository): 404, and nothing of it shown.
    let browser = open_browser(&driver, &chromium).await;
    sign_in(&browser, &page, "carol").await;
    let found = tokio::time::timeout(STEP, async {
        loop {
            if browser.current_url().await.is_ok_and(|u| u.as_str() == page)
                && browser.source().await.is_ok_and(|s| s.contains("Not found"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "carol was not shown Not found:\n{}", browser.source().await.unwrap_or_default());
    let cookie = browser.get_named_cookie("foreman_session").await.unwrap();
    browser.close().await.unwrap();
    let r = reqwest::Client::new()
        .get(&page)
        .header("cookie", format!("foreman_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert!(!body.contains("Fix it") && !body.contains("max_files_changed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_cannot_read_the_constitution_says_why_and_shows_the_rest() {
    let (driver_program, chromium) = browser_programs();
    let (world, _public, page) = world(&[]).await;
    world.sim.push_file(REPO, ".github/foreman.toml", "[rules]\nmax_files_changed = \"many\"\n", "alice").unwrap();
    let (number, _) = world.sim.create_issue(REPO, "Fix it", "Please fix", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    world
        .wait("the job to wait for the constitution to be fixed", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains("Waiting for `.github/foreman.toml` to change"))
        })
        .await;

    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    sign_in(&browser, &page, "alice").await;
    let why = element(&browser, "constitution-error").await.text().await.unwrap();
    assert!(why.contains("invalid") && why.contains("max_files_changed"), "{why}");
    assert!(browser.find(fantoccini::Locator::Id("rules")).await.is_err(), "rules shown from an invalid file");
    // The rest of the page: the waiting job, the chart without a budget line.
    let job = row(&browser, "live", &format!("#{number}")).await;
    assert!(job.contains("queued") && job.contains("waits"), "{job}");
    let summary = element(&browser, "cost-summary").await.text().await.unwrap();
    assert!(summary.contains("the daily budget is not known"), "{summary}");
    element(&browser, "cost-chart").await;
    assert!(browser.find(fantoccini::Locator::Id("budget-line")).await.is_err(), "a budget line without a budget");
    element(&browser, "parents").await;
    browser.close().await.unwrap();
}
