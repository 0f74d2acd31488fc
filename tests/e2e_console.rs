//! The console: people sign in with GitHub (the OAuth web flow, served by github-sim) and read the jobs and
//! session logs of the repositories they can read; writers cancel; readers cannot; others get 404.
//!
//! Once over plain HTTP (the flow's redirects, the state check, the cookie, who sees what), and once in
//! headless Chromium (see `browser_support`): a writer watches a running session's log grow without
//! reloading and cancels the job, and the issue's tracking comment says so; a reader finds no cancel button
//! and a forged cancel refused.

mod browser_support;
mod e2e_support;

use std::path::Path;
use std::time::Duration;

use browser_support::{STEP, browser_programs, click, element, free_port, goto, open_browser, start_driver, text_now};
use e2e_support::{FIXING_AGENT, LIFECYCLE, REPO, Setup, World, shared};

/// The simulator's OAuth client (its App id 1001, its default client secret).
fn client_env() -> [(&'static str, String); 2] {
    [
        ("FOREMAN_CONSOLE_CLIENT_ID", format!("Iv1.{:016x}", 1001)),
        ("FOREMAN_CONSOLE_CLIENT_SECRET", "sim-client-secret".to_owned()),
    ]
}

/// A Foreman on a fixed port with `public_url`, the OAuth client, and `agent`.
async fn world(agent: &str, extra: &[(&str, String)]) -> (World, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut env: Vec<(&str, String)> =
        vec![("FOREMAN_LISTEN", format!("127.0.0.1:{port}")), ("FOREMAN_PUBLIC_URL", public.clone())];
    env.extend(client_env());
    env.extend(extra.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let world = World::start_with(agent, Setup { env: &env, ..Setup::default() }).await;
    world.sim.create_user("carol", github_sim::Permission::None, "User");
    world.sim.create_user("dave", github_sim::Permission::None, "User");
    (world, public)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no Location on {}", r.status())).to_str().unwrap().to_owned()
}

/// Signs `login` in over HTTP, starting at `/login?next=…`: returns the `Cookie` header value and where
/// Foreman sent the browser.
async fn sign_in(public: &str, login: &str, next: &str) -> (String, String) {
    let http = no_redirects();
    let r = http.get(format!("{public}/login?next={next}")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let authorize = location(&r);
    assert!(authorize.contains("/login/oauth/authorize?client_id="), "{authorize}");
    let bind = r.headers().get("set-cookie").expect("the sign-in's state cookie").to_str().unwrap().to_owned();
    assert!(bind.starts_with("foreman_login_state=") && bind.contains("Path=/login"), "{bind}");
    // The simulator's account hint: signed in as `login`, the App authorised before.
    let r = http.get(format!("{authorize}&login={login}")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(back.starts_with(&format!("{public}/login/callback?code=")), "{back}");
    // The callback without the browser's state cookie (a link someone else made) signs no one in.
    let r = http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.get(format!("{public}/login?next={next}")).send().await.unwrap();
    let authorize = location(&r);
    let bind = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
    let r = http.get(format!("{authorize}&login={login}")).send().await.unwrap();
    let back = location(&r);
    let r = http.get(&back).header("cookie", &bind).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("foreman_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no Secure over plain http: {cookie}");
    (cookie.split(';').next().unwrap().to_owned(), location(&r))
}

async fn get(public: &str, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut req = no_redirects().get(format!("{public}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The session id in the tracking comment's "session log" link to the viewer.
fn session_in(body: &str, public: &str) -> String {
    let prefix = format!("{public}/sessions/");
    let at = body.find(&prefix).unwrap_or_else(|| panic!("no link to the log viewer in:\n{body}")) + prefix.len();
    body[at..].chars().take_while(|c| c.is_ascii_hexdigit() || *c == '-').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_github_and_see_the_logs_of_repositories_they_can_read() {
    let (world, public) = world(FIXING_AGENT, &[("FOREMAN_CONSOLE_ADMINS", r#"["Dave"]"#.to_owned())]).await;
    let (number, _) = world.sim.create_issue(REPO, "Fix it", "Please fix", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    world.wait_pull(number).await;
    let state = world
        .wait("the tracking comment's session log link", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains(&format!("{public}/sessions/")))
        })
        .await;
    let id = session_in(&World::tracking_body(&state, number).unwrap(), &public);
    let log = format!("/sessions/{id}");
    let job = format!("/jobs/{REPO}/{number}");

    // The status page at `/` leads to the console.
    let (_, page) = get(&public, "/", None).await;
    assert!(page.contains("href=\"/overview\""), "{page}");

    // Not signed in: the sign-in page, which comes back to the log.
    let (status, page) = get(&public, &log, None).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with GitHub"), "{page}");
    assert!(!page.contains("fix-"), "{page}");

    // A callback with a state Foreman did not issue is refused.
    let (status, _) = get(&public, "/login/callback?code=abc&state=forged", None).await;
    assert_eq!(status, 400);

    // alice (write) signs in and is sent back to the log, readable as steps and as lines.
    let (alice, next) = sign_in(&public, "alice", &log).await;
    assert_eq!(next, log);
    let (status, page) = get(&public, &log, Some(&alice)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("Added fix-{number}.txt")), "{page}");
    assert!(page.contains("id=\"steps\"") && page.contains("id=\"lines\""), "{page}");
    let (status, download) = get(&public, &format!("{log}/log"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert!(download.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let (status, page) = get(&public, &job, Some(&alice)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Audit trail"), "{page}");
    assert!(page.contains("id=\"failures\">agent 0, validation 0, infrastructure 0, rate limit 0"), "{page}");

    // bob (read) reads both; carol (no access to the repository) gets 404 for both.
    let (bob, _) = sign_in(&public, "bob", "/").await;
    assert_eq!(get(&public, &log, Some(&bob)).await.0, 200);
    assert_eq!(get(&public, &job, Some(&bob)).await.0, 200);
    let (carol, _) = sign_in(&public, "carol", "/").await;
    for path in [&log, &job, &format!("{log}/log"), &format!("{log}/events")] {
        let (status, page) = get(&public, path, Some(&carol)).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(!page.contains("fix-"), "{page}");
    }
    let (status, page) = get(&public, "/overview", Some(&carol)).await;
    assert_eq!(status, 200);
    assert!(!page.contains(REPO) && !page.contains("id=\"counts\""), "{page}");
    // dave, no more access than carol on GitHub but listed in console.admins, reads everything.
    let (dave, _) = sign_in(&public, "dave", "/").await;
    assert_eq!(get(&public, &log, Some(&dave)).await.0, 200);
    assert_eq!(get(&public, &job, Some(&dave)).await.0, 200);
    let (status, page) = get(&public, "/overview", Some(&dave)).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"counts\"") && page.contains("succeeded: 1"), "{page}");
    assert!(page.contains("id=\"inbox\">Inbox: "), "{page}");

    // An unknown session is 404 too, for anyone.
    assert_eq!(get(&public, "/sessions/0123-abcd", Some(&alice)).await.0, 404);

    // Every call to the simulator's REST API (the user endpoints included) conformed to GitHub's description.
    let nonconforming = world.sim.state()["nonconforming"].clone();
    assert_eq!(nonconforming, serde_json::json!([]), "{nonconforming:#}");

    // Signing out needs the session's CSRF token, then ends the session on the server.
    let logout = |body: String| {
        no_redirects()
            .post(format!("{public}/logout"))
            .header("cookie", &alice)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(logout("csrf=00".into()).await.unwrap().status(), 403);
    assert_eq!(get(&public, &log, Some(&alice)).await.0, 200);
    let (_, page) = get(&public, &log, Some(&alice)).await;
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf: String = page[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    let r = logout(format!("csrf={csrf}")).await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, page) = get(&public, &log, Some(&alice)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with GitHub") && !page.contains("fix-"), "the old cookie still opens the log");

    // A forged cookie is no session.
    let forged = format!("foreman_session={}", "ab".repeat(32));
    let (status, page) = get(&public, &log, Some(&forged)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with GitHub"), "{page}");
}

/// An agent that prints a line, says it started (`<marks>/started-<issue>`), waits for `<marks>/more`, prints
/// "arrived 42 lines later" (a text its own command, which the log shows at the start, does not hold), then waits for `<marks>/go` (each wait at most 60 s).
fn live_agent(marks: &Path) -> String {
    format!(
        r#"echo "first step of the work"
touch '{m}/started-'"$FOREMAN_ISSUE"
n=0
while [ ! -e '{m}/more' ]; do n=$((n + 1)); if [ "$n" -gt 1200 ]; then exit 1; fi; sleep 0.05; done
echo "arrived $((40 + 2)) lines later"
n=0
while [ ! -e '{m}/go' ]; do n=$((n + 1)); if [ "$n" -gt 1200 ]; then exit 1; fi; sleep 0.05; done
echo "done""#,
        m = marks.display()
    )
}

/// Saves the page as `name`.png in `FOREMAN_TEST_SCREENSHOTS` when that is set (the pictures in
/// docs/console.md are taken so: `FOREMAN_TEST_SCREENSHOTS=docs/console cargo test --test e2e_console`).
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    if let Some(dir) = std::env::var_os("FOREMAN_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits (bounded) until the text of `#id` contains `what`.
async fn wait_text(browser: &fantoccini::Client, id: &str, what: &str) {
    let found = tokio::time::timeout(STEP, async {
        loop {
            if let Ok(e) = browser.find(fantoccini::Locator::Id(id)).await
                && e.text().await.is_ok_and(|t| t.contains(what))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "#{id} did not show {what:?} within {STEP:?}:\n{}",
        browser.source().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_watches_a_live_log_and_cancels_and_a_reader_cannot() {
    let (driver_program, chromium) = browser_programs();
    let marks = tempfile::tempdir().unwrap();
    let (key, value) = shared(marks.path());
    let (world, public) =
        world(&live_agent(marks.path()), &[(key, value), ("FOREMAN_MAX_SESSIONS_PER_REPO", "3".to_owned())]).await;
    let (number, _) = world.sim.create_issue(REPO, "Do it slowly", "Please", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    let started = marks.path().join(format!("started-{number}"));
    tokio::time::timeout(LIFECYCLE, async {
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the session did not start; foreman said:\n{}", world.logs()));
    // While the session runs, the tracking comment links its log in the viewer.
    let state = world
        .wait("the running tracking comment's link to the live log", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains(&format!("{public}/sessions/")))
        })
        .await;
    let id = session_in(&World::tracking_body(&state, number).unwrap(), &public);
    assert_eq!(world.job(number).await["claim"]["session"], id.as_str());

    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    browser.set_window_size(1100, 800).await.unwrap();
    // Not signed in, the log link leads to the sign-in page, GitHub, and back to the log.
    goto(&browser, &format!("{public}/sessions/{id}")).await;
    click(&browser, "sign-in").await;
    click(&browser, "login-alice").await;
    wait_text(&browser, "lines", "first step of the work").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), format!("{public}/sessions/{id}"));
    // A mark on this page: it is gone if the page reloads.
    browser.execute("window.stillHere = true; return true;", vec![]).await.unwrap();
    let before = element(&browser, "lines").await.text().await.unwrap();
    assert!(!before.contains("arrived 42 lines later"), "{before}");
    std::fs::write(marks.path().join("more"), "").unwrap();
    wait_text(&browser, "lines", "arrived 42 lines later").await;
    wait_text(&browser, "steps", "arrived 42 lines later").await;
    let same_page = browser.execute("return window.stillHere === true;", vec![]).await.unwrap();
    assert_eq!(same_page, serde_json::json!(true), "the line arrived by reloading the page");
    // The end of the Human view, where the live line arrived.
    browser
        .execute(
            "document.getElementById('steps').lastElementChild.scrollIntoView({block: 'end'}); return true;",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&browser, "live-log").await;

    // Cancel from the job page: the issue's tracking comment says so.
    goto(&browser, &format!("{public}/jobs/{REPO}/{number}")).await;
    click(&browser, "cancel").await;
    wait_text(&browser, "state", "cancelled").await;
    world
        .wait("the tracking comment to say the job was cancelled from the console", |s| {
            World::tracking_body(s, number).is_some_and(|b| b.contains("cancelled from the console by @alice"))
        })
        .await;

    // Retry from the same page: queued again, reported on the issue, and the overview shows it.
    click(&browser, "retry").await;
    wait_text(&browser, "audit", "retried from the console by @alice").await;
    world
        .wait("the tracking comment to leave the cancelled state", |s| {
            World::tracking_body(s, number).is_some_and(|b| !b.contains("cancelled from the console"))
        })
        .await;
    let shown = tokio::time::timeout(STEP, async {
        loop {
            goto(&browser, &format!("{public}/overview")).await;
            let running = text_now(&browser, "running").await.unwrap_or_default();
            if running.contains(&format!("{REPO}#{number}")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(shown.is_ok(), "the overview never showed the retried job running");
    screenshot(&browser, "overview").await;

    // The overview stays live without a reload: its lists are read again in place (the marker set on this
    // page survives), and the running session's time moves on.
    browser.execute("window.__not_reloaded = true; return null;", vec![]).await.unwrap();
    element(&browser, "refreshed").await;
    let first = text_now(&browser, "refreshed").await.expect("the overview says when it was read");
    let refreshed = tokio::time::timeout(STEP, async {
        loop {
            let now = text_now(&browser, "refreshed").await.unwrap_or_default();
            if !now.is_empty() && now != first {
                return text_now(&browser, "running").await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the overview's lists were never read again in place");
    assert!(refreshed.contains(&format!("{REPO}#{number}")), "{refreshed}");
    let kept = browser.execute("return window.__not_reloaded === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "the page was reloaded, not refreshed in place");
    browser.close().await.unwrap();

    // bob (read): the job page has no cancel button, and a cancel he forges is refused.
    let (number2, _) = world.sim.create_issue(REPO, "Another", "Please", "alice").unwrap();
    world.sim.add_label(REPO, number2, "foreman", "alice").unwrap();
    let started = marks.path().join(format!("started-{number2}"));
    tokio::time::timeout(LIFECYCLE, async {
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the second session did not start; foreman said:\n{}", world.logs()));
    let browser = open_browser(&driver, &chromium).await;
    goto(&browser, &format!("{public}/jobs/{REPO}/{number2}")).await;
    click(&browser, "sign-in").await;
    click(&browser, "login-bob").await;
    wait_text(&browser, "state", "running").await;
    assert!(browser.find(fantoccini::Locator::Id("cancel")).await.is_err(), "a reader sees a cancel button");
    let cookie = browser.get_named_cookie("foreman_session").await.unwrap();
    let csrf = element(&browser, "logout").await;
    drop(csrf);
    let source = browser.source().await.unwrap();
    let at = source.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf: String = source[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    browser.close().await.unwrap();
    let cookie = format!("foreman_session={}", cookie.value());
    let cancel = format!("{public}/jobs/{REPO}/{number2}/cancel");
    let post = |body: String| {
        no_redirects()
            .post(&cancel)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(post(String::new()).await.unwrap().status(), 403, "no CSRF token");
    assert_eq!(post("csrf=00".into()).await.unwrap().status(), 403, "a wrong CSRF token");
    assert_eq!(post(format!("csrf={csrf}")).await.unwrap().status(), 403, "a reader's own form");
    let retry = no_redirects()
        .post(format!("{public}/jobs/{REPO}/{number2}/retry"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 403, "a reader's retry");
    assert_eq!(world.job(number2).await["state"], "running");
    // Without a session at all.
    let anonymous = no_redirects().post(&cancel).body("csrf=00").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // carol (no access): 404 for the job and its log.
    let (carol, _) = sign_in(&public, "carol", "/").await;
    let id2 = world.job(number2).await["claim"]["session"].as_str().unwrap().to_owned();
    assert_eq!(get(&public, &format!("/jobs/{REPO}/{number2}"), Some(&carol)).await.0, 404);
    assert_eq!(get(&public, &format!("/sessions/{id2}"), Some(&carol)).await.0, 404);
    std::fs::write(marks.path().join("go"), "").unwrap();
}
