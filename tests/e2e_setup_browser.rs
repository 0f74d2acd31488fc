//! The setup page: `foreman serve` started with no App credentials registers its GitHub App from the
//! manifest against github-sim (the form, GitHub's "Create GitHub App" page, the code exchange, the
//! installation), stores it, and acts as it without a restart: a labelled issue becomes a pull request.
//!
//! Once over plain HTTP, as a browser would send the forms (with the checks a browser cannot see: the
//! stored file's mode, a forged `state`, a second registration refused, no secret in the log, the stored App
//! used after a restart), and once in headless Chromium driven through chromedriver, clicking as a person
//! would. The browser test needs Debian's `chromium` and `chromium-driver` (or `FOREMAN_TEST_CHROMIUM` and
//! `FOREMAN_TEST_CHROMEDRIVER`); it fails, saying so, when they are missing.

mod browser_support;
mod e2e_support;

use browser_support::{STEP, browser_programs, click, free_port, open_browser, start_driver};
use e2e_support::{FIXING_AGENT, ORG, REPO, SECRET, Setup, World};

/// The value of the first `attr="…"` after `after` in `html`, unescaped.
fn attr(html: &str, after: &str, attr: &str) -> String {
    let from = html.find(after).unwrap_or_else(|| panic!("no {after} in:\n{html}"));
    let rest = &html[from..];
    let key = format!("{attr}=\"");
    let start = rest.find(&key).unwrap_or_else(|| panic!("no {attr} after {after} in:\n{html}")) + key.len();
    let end = start + rest[start..].find('"').unwrap();
    unescape(&rest[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `pairs` as an `application/x-www-form-urlencoded` body, as a browser sends a form.
fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no Location on {}", r.status())).to_str().unwrap().to_owned()
}

/// Every secret the App registration handed out, as they must never appear in a log or a page.
fn secrets_of(data_dir: &std::path::Path) -> Vec<String> {
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join(foreman::setup::stored::FILE)).unwrap()).unwrap();
    let pem_line = stored["pem"].as_str().unwrap().lines().nth(1).unwrap().to_owned();
    vec![pem_line, stored["client_secret"].as_str().unwrap().to_owned(), SECRET.to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_flow_registers_stores_and_acts_as_the_app_without_a_restart() {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let env = [("FOREMAN_LISTEN", listen.as_str()), ("FOREMAN_PUBLIC_URL", public.as_str())];
    let mut world = World::start_with(FIXING_AGENT, Setup { no_app: true, env: &env, ..Setup::default() }).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let foreman = |path: &str| format!("{public}{path}");

    // Without credentials `/` offers registration.
    let page = http.get(foreman("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Register the GitHub App"), "{page}");
    assert!(unescape(&page).contains(&format!("{public}/api/github/webhooks")), "{page}");

    // Without an admin token only a local client may register, not one a proxy forwarded.
    let proxied = http
        .post(foreman("/setup/manifest"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "203.0.113.7")
        .body(form(&[("owner", "personal")]))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 403);

    // The form answers a page whose one button posts the manifest to GitHub, with a state.
    let r = http
        .post(foreman("/setup/manifest"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("owner", "organization"), ("org", ORG)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let action = attr(&page, "<form", "action");
    let prefix = format!("{}/organizations/{ORG}/settings/apps/new?state=", world.sim.url());
    assert!(action.starts_with(&prefix), "{action}");
    let manifest = attr(&page, "name=\"manifest\"", "value");
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["hook_attributes"]["url"], format!("{public}/api/github/webhooks"));
    assert_eq!(m["redirect_url"], format!("{public}/setup/callback"));
    assert_eq!(m["setup_url"], format!("{public}/"));

    // GitHub's side: the confirmation page, then "Create GitHub App" back to Foreman with code and state.
    let page = http
        .post(&action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("manifest", &manifest)]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Create GitHub App"), "{page}");
    let confirm = format!("{}{}", world.sim.url(), attr(&page, "<form", "action"));
    let r = http
        .post(&confirm)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("manifest", manifest.as_str()), ("confirm", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(back.starts_with(&format!("{public}/setup/callback?code=")), "{back}");

    // A callback with a state this server did not issue is refused and exchanges nothing.
    let code = back.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let forged = http.get(foreman(&format!("/setup/callback?code={code}&state=forged"))).send().await.unwrap();
    assert_eq!(forged.status(), 400);
    assert!(!world.data_dir().join(foreman::setup::stored::FILE).exists());

    // The real one exchanges the code, stores the App (mode 0600) and sends the person to install it.
    let r = http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let install = location(&r);
    assert_eq!(install, format!("{}/apps/{}/installations/new", world.sim.url(), world.sim.app_slug()));
    let stored = world.data_dir().join(foreman::setup::stored::FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let app: serde_json::Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    assert_eq!(app["id"], world.sim.app_id());
    assert_eq!(app["webhook_secret"], SECRET);
    // The same code cannot be exchanged twice, and registering again is refused.
    let again = http
        .post(foreman("/setup/manifest"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("owner", "personal")]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    // `/` now shows the App and what is missing: no installation yet.
    let page = http.get(foreman("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("GitHub App:") && page.contains("Foreman"), "{page}");
    assert!(page.contains("no installation yet"), "{page}");
    assert!(!page.contains("Register the GitHub App"), "{page}");

    // Install on acme: GitHub sends the person to the setup URL, Foreman's `/`, which lists it.
    let page = http.get(&install).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Install"), "{page}");
    let r = http
        .post(&install)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("account", ORG)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with(&format!("{public}/?installation_id=")), "{}", location(&r));
    let page = http.get(location(&r)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<li>{ORG} (Organization)</li>")), "{page}");
    assert!(!page.contains("no installation yet"), "{page}");

    // Foreman acts as the App: a labelled issue becomes a pull request.
    let (number, _) = world.sim.create_issue(REPO, "Fix it", "Please fix", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    world.wait_pull(number).await;

    // After a restart the stored App is used.
    world.kill9();
    world.start_foreman();
    world.sim.set_webhook_url(Some(foreman("/api/github/webhooks")));
    let (second, _) = world.sim.create_issue(REPO, "Fix this too", "Please", "alice").unwrap();
    world.sim.add_label(REPO, second, "foreman", "alice").unwrap();
    world.wait_pull(second).await;
    let logs = world.logs();
    assert!(logs.contains("using the GitHub App registered from the setup page"), "{logs}");
    let page = http.get(foreman("/")).send().await.unwrap().text().await.unwrap();
    for secret in secrets_of(&world.data_dir()) {
        assert!(!logs.contains(&secret), "a secret of the App is in the log");
        assert!(!page.contains(&secret), "a secret of the App is on the page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registers_and_installs_the_app_in_a_browser_and_a_labelled_issue_becomes_a_pull_request() {
    let (driver_program, chromium) = browser_programs();
    let world = World::start_with(FIXING_AGENT, Setup { no_app: true, ..Setup::default() }).await;
    let driver = start_driver(&driver_program).await;
    let browser = open_browser(&driver, &chromium).await;
    let foreman_url = world.foreman.as_ref().unwrap().url("/");

    tokio::time::timeout(STEP, browser.goto(&foreman_url)).await.unwrap().unwrap();
    click(&browser, "owner-organization").await;
    browser.find(fantoccini::Locator::Id("org")).await.unwrap().send_keys(ORG).await.unwrap();
    click(&browser, "register").await;
    // Foreman's page posts the manifest to GitHub's form; there "Create GitHub App".
    click(&browser, "create-on-github").await;
    click(&browser, "create").await;
    // Back at Foreman, which exchanged the code and sent the browser on to install the App.
    click(&browser, &format!("install-{ORG}")).await;
    // GitHub sends the person back to Foreman's setup URL, `/`, which lists the installation.
    let listed = browser
        .wait()
        .at_most(STEP)
        .for_element(fantoccini::Locator::Id("installations"))
        .await
        .expect("Foreman's page lists the installations");
    assert!(listed.text().await.unwrap().contains(ORG));
    let url = browser.current_url().await.unwrap();
    assert!(url.as_str().starts_with(&foreman_url), "{url}");
    let app = browser.find(fantoccini::Locator::Id("app")).await.unwrap().text().await.unwrap();
    assert!(app.contains("Foreman"), "{app}");
    browser.close().await.unwrap();
    drop(driver);

    let (number, _) = world.sim.create_issue(REPO, "Fix it", "Please fix", "alice").unwrap();
    world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    world.wait_pull(number).await;
    assert!(world.data_dir().join(foreman::setup::stored::FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_registering_needs_it() {
    let env = [("FOREMAN_ADMIN_TOKEN", "the-admin-token")];
    let world = World::start_with(FIXING_AGENT, Setup { no_app: true, env: &env, ..Setup::default() }).await;
    let foreman = world.foreman.as_ref().unwrap();
    let http = reqwest::Client::new();
    let page = http.get(foreman.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"admin_token\""), "{page}");
    let post = |pairs: &'static [(&'static str, &'static str)]| {
        http.post(foreman.url("/setup/manifest"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
    };
    assert_eq!(post(&[("owner", "personal")]).await.unwrap().status(), 401);
    assert_eq!(post(&[("owner", "personal"), ("admin_token", "wrong")]).await.unwrap().status(), 401);
    let r = post(&[("owner", "personal"), ("admin_token", "the-admin-token")]).await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(attr(&page, "<form", "action").starts_with(&format!("{}/settings/apps/new?state=", world.sim.url())));
    assert!(!page.contains("the-admin-token"), "the token is not on the page");
    assert!(!world.logs().contains("the-admin-token"), "nor in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_configured_credentials_the_page_shows_the_app_and_never_offers_to_register() {
    let world = World::start(FIXING_AGENT, &[]).await;
    let foreman = world.foreman.as_ref().unwrap();
    let http = reqwest::Client::new();
    let page = http.get(foreman.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("GitHub App:") && page.contains(">Foreman</a>") && page.contains("configured"), "{page}");
    assert!(page.contains(&format!("<li>{ORG} (Organization)</li>")), "{page}");
    assert!(!page.contains("Register the GitHub App"), "{page}");
    let r = http
        .post(foreman.url("/setup/manifest"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("owner", "personal")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = http.get(foreman.url("/setup/callback?code=abc&state=def")).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(!world.data_dir().join(foreman::setup::stored::FILE).exists());
}
