//! The `github-sim` binary: starts, writes app.json and app.pem, serves the control API.

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
                .env("RUST_LOG", "warn")
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
    })
    .await
    .expect("timed out");
}
