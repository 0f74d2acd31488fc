//! Shared test support: a real `foreman serve` process on loopback, and GitHub-style signed deliveries.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for the server to say it is listening. A cold start opens sled and binds a socket
/// (milliseconds); the bound is generous for a loaded 2-core CI machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The data vendored in the repository (`vendor/`: GitHub's webhook examples and schemas, GraphQL schema,
/// REST description, agent transcripts; see `vendor/README.md`).
pub fn vendor() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor")
}

/// Every webhook example: (event name, path), from vendor/github/webhooks/examples/api.github.com.
pub fn webhook_examples() -> Vec<(String, PathBuf)> {
    let root = vendor().join("github/webhooks/examples/api.github.com");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("webhook examples exist").flatten() {
        let event = dir.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                out.push((event.clone(), f.path()));
            }
        }
    }
    out.sort();
    assert!(out.len() > 100, "expected the full set of examples, found {}", out.len());
    out
}

/// A running `foreman serve` child process.
pub struct Foreman {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub stderr: mpsc::Receiver<String>,
    startup_logs: Vec<String>,
    env: Vec<(String, String)>,
}

impl Foreman {
    /// Starts `foreman serve` with a fresh environment plus `env`, on 127.0.0.1 with a port of its choosing,
    /// and waits for its "listening" log line.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Foreman {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(data_dir, env)
    }

    /// As [`Foreman::start`], with `adjust` applied to the command before it is spawned (a user id, a
    /// resource limit). A restart does not apply it again.
    pub fn start_adjusted(data_dir: &Path, env: &[(&str, &str)], adjust: impl FnOnce(&mut Command)) -> Foreman {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn_adjusted(data_dir, env, adjust)
    }

    fn spawn(data_dir: &Path, env: Vec<(String, String)>) -> Foreman {
        Self::spawn_adjusted(data_dir, env, |_| {})
    }

    fn spawn_adjusted(data_dir: &Path, env: Vec<(String, String)>, adjust: impl FnOnce(&mut Command)) -> Foreman {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_foreman"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FOREMAN_LISTEN", "127.0.0.1:0")
            .env("FOREMAN_DATA_DIR", data_dir)
            .env("FOREMAN_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("start foreman");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            match rx.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let listening = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .filter(|v| v["message"] == "listening")
                        .map(|v| v["address"].as_str().unwrap().parse().unwrap());
                    seen.push(line);
                    if let Some(addr) = listening {
                        break addr;
                    }
                }
                Err(_) => panic!("foreman did not start; it said:\n{}", seen.join("\n")),
            }
        };
        Foreman { child, addr, data_dir: data_dir.to_owned(), stderr: rx, startup_logs: seen, env }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL, then a new process on the same data directory and environment.
    pub fn kill9_and_restart(mut self) -> Foreman {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let env = std::mem::take(&mut self.env);
        Self::spawn(&self.data_dir.clone(), env)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc_kill(pid, 15) };
        let (tx, rx) = mpsc::channel();
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || tx.send(child.wait()));
        match rx.recv_timeout(within) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                unsafe { libc_kill(pid, 9) };
                panic!("foreman did not exit within {within:?} of SIGTERM")
            }
        }
    }

    /// Log lines printed so far: those up to "listening", then whatever has arrived since (drained).
    pub fn logs(&self) -> Vec<String> {
        self.startup_logs.iter().cloned().chain(self.stderr.try_iter()).collect()
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Foreman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sha256=<hex>` of `body` keyed by `secret`, as GitHub signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    foreman::ingress::signature::sign(secret, body)
}

/// A signed delivery request, ready to send.
pub fn delivery(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &str,
    id: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", sign(secret, &body))
        .header("user-agent", "GitHub-Hookshot/test")
        .body(body)
}
