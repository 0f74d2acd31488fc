//! The `github-sim` binary: starts from an empty directory with nothing beside it (GitHub's API descriptions
//! are built in), writes app.json and app.pem, serves the control API and holds REST requests to GitHub's
//! description; a bad start is one line on standard error and exit code 1; the binary holds no path of the
//! checkout.

use std::time::Duration;

use serde_json::Value;

/// Kills the child on drop so a failed assertion leaves no process behind.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn binary_writes_app_files_and_serves() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let cwd = dir.path().join("cwd");
        std::fs::create_dir(&cwd).unwrap();
        let _child = Child(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_github-sim"))
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--webhook-url",
                    "http://127.0.0.1:9/webhook",
                    "--webhook-secret",
                    "s3cret",
                    "--state-dir",
                ])
                .arg(&state)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn")
                .current_dir(&cwd)
                .kill_on_drop(true)
                .spawn()
                .expect("binary starts"),
        );
        // app.json is written after the listener is bound: wait for it (bounded by the timeout).
        let app_json = state.join("app.json");
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let app: Value = loop {
            tick.tick().await;
            if let Ok(bytes) = std::fs::read(&app_json)
                && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            {
                break v;
            }
        };
        assert_eq!(app["slug"], "foreman");
        assert_eq!(app["webhook_secret"], "s3cret");
        let pem = std::fs::read_to_string(state.join("app.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("a usable RSA key");
        let url = app["api_url"].as_str().unwrap();
        let r = reqwest::get(format!("{url}/_sim/state")).await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["app"]["bot"], "foreman[bot]");

        // REST is held to GitHub's description, built into the binary: an unknown path is refused for not
        // being in it, a known one is answered (`/rate_limit` needs no token, as on GitHub).
        let r = reqwest::get(format!("{url}/no/such/path")).await.unwrap();
        assert_eq!(r.status(), 400);
        let body = r.text().await.unwrap();
        assert!(body.contains("no path /no/such/path in GitHub's REST API"), "{body}");
        let r = reqwest::get(format!("{url}/rate_limit")).await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_descriptions_folder_without_descriptions_is_one_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_github-sim"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--descriptions-dir")
            .arg(&missing)
            .env("RUST_BACKTRACE", "1")
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("github-sim exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no stack trace: {stderr}");
    assert!(lines[0].starts_with("github-sim: GitHub's OpenAPI description is not in "), "{stderr}");
    assert!(lines[0].contains("nothing-here/github/rest/api.github.com.json"), "{stderr}");
}

/// Without its debug information (which names the build directory for debuggers), the binary holds no path
/// of the checkout: nothing is looked up at run time where the source was built.
#[test]
fn the_binary_holds_no_path_of_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let stripped = dir.path().join("github-sim");
    let out = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(env!("CARGO_BIN_EXE_github-sim"))
        .output()
        .expect("strip (binutils, part of the C toolchain the build needs) runs");
    assert!(out.status.success(), "strip: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&stripped).unwrap();
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let checkout = checkout.to_str().unwrap().as_bytes();
    if let Some(at) = bytes.windows(checkout.len()).position(|w| w == checkout) {
        let end = bytes[at..].iter().position(|b| !b.is_ascii_graphic()).map_or(bytes.len(), |n| at + n);
        panic!("the github-sim binary holds a path of the checkout: {}", String::from_utf8_lossy(&bytes[at..end]));
    }
}
