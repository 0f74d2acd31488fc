//! Headless Chromium driven through chromedriver (fantoccini), for the tests that click through pages as a
//! person would. Needs Debian's `chromium` and `chromium-driver` (or `FOREMAN_TEST_CHROMIUM` and
//! `FOREMAN_TEST_CHROMEDRIVER`); a test fails, saying so, when they are missing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

/// How long one browser step (a page load, a click and the pages it leads to) may take.
pub const STEP: Duration = Duration::from_secs(30);

/// A free loopback port (bound, then released for the caller to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver and Chromium: `FOREMAN_TEST_CHROMEDRIVER` and `FOREMAN_TEST_CHROMIUM`, or Debian's.
pub fn browser_programs() -> (PathBuf, PathBuf) {
    let driver = std::env::var_os("FOREMAN_TEST_CHROMEDRIVER").map_or("/usr/bin/chromedriver".into(), PathBuf::from);
    let chromium = std::env::var_os("FOREMAN_TEST_CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from);
    for (path, package) in [(&driver, "chromium-driver"), (&chromium, "chromium")] {
        assert!(
            path.exists(),
            "this browser test needs {} (Debian package {package}: apt-get install chromium \
             chromium-driver), or FOREMAN_TEST_CHROMEDRIVER / FOREMAN_TEST_CHROMIUM naming the programs",
            path.display()
        );
    }
    (driver, chromium)
}

/// A chromedriver process on a free loopback port, killed on drop.
pub struct Driver {
    child: std::process::Child,
    /// Its WebDriver URL.
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver and waits (bounded) until it accepts connections.
pub async fn start_driver(program: &std::path::Path) -> Driver {
    let port = free_port();
    let child = std::process::Command::new(program)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let status = format!("{}/status", driver.url);
    let ready = tokio::time::timeout(STEP, async {
        loop {
            if let Ok(r) = reqwest::get(&status).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "chromedriver did not answer on {status} within {STEP:?}");
    driver
}

/// A new headless Chromium window (its own profile: no cookies shared with another) on `driver`.
pub async fn open_browser(driver: &Driver, chromium: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    tokio::time::timeout(
        STEP,
        fantoccini::ClientBuilder::rustls().expect("rustls roots").capabilities(caps).connect(&driver.url),
    )
    .await
    .expect("chromium did not start within the step's time")
    .expect("a WebDriver session with headless chromium")
}

/// Waits (bounded) for the element `id` on the current page.
pub async fn element(browser: &fantoccini::Client, id: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(STEP)
        .for_element(fantoccini::Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id} within {STEP:?}: {e}"))
}

/// The rendered text of the element `id` on the current page now, read in one script so that a page which
/// replaces its elements in place (the overview's live refresh) cannot make the element stale between
/// finding it and reading it; `None` when there is none.
pub async fn text_now(browser: &fantoccini::Client, id: &str) -> Option<String> {
    let script = "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;";
    match browser.execute(script, vec![serde_json::Value::String(id.to_owned())]).await {
        Ok(serde_json::Value::String(text)) => Some(text),
        Ok(_) => None,
        Err(e) => panic!("reading #{id}: {e}"),
    }
}

/// Waits (bounded) for the element `id` on the current page and clicks it.
pub async fn click(browser: &fantoccini::Client, id: &str) {
    element(browser, id).await.click().await.unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
}

/// Loads `url`, bounded by [`STEP`].
pub async fn goto(browser: &fantoccini::Client, url: &str) {
    tokio::time::timeout(STEP, browser.goto(url)).await.expect("the page loads in time").expect("the page loads");
}
