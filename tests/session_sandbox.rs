//! The agent sandbox tried as an attacker would, with a command agent standing in for a misled model:
//! what it can read of Foreman (environment, processes, data directory, keys), what it leaves running, and
//! what happens when the sandbox cannot be created. Real bubblewrap, real git, real processes.

mod session_support;

use std::path::Path;
use std::time::Duration;

use foreman::executor::local::sandbox::SandboxMode;
use foreman::session::{AgentConfig, Credentials, FailureCause, SessionOutcome, SessionRunner, SessionSpec, Verdict};
use session_support::*;
use tokio_util::sync::CancellationToken;

/// Bounds every session here: one git fetch and a short script.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn run(runner: &SessionRunner, spec: SessionSpec) -> SessionOutcome {
    tokio::time::timeout(TEST_TIMEOUT, runner.run(spec, CancellationToken::new(), |_| {}))
        .await
        .expect("session timed out")
}

/// A runner whose data directory holds a private key, as Foreman's does, and a spec for issue 7.
fn setup(config: AgentConfig) -> (tempfile::TempDir, SessionRunner, SessionSpec) {
    setup_with(|_| config)
}

/// [`setup`] with a configuration made knowing the data directory.
fn setup_with(config: impl FnOnce(&Path) -> AgentConfig) -> (tempfile::TempDir, SessionRunner, SessionSpec) {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n")]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    std::fs::write(data.join("keys/app.pem"), "-----BEGIN PRIVATE KEY-----\nsecret-key-line\n").unwrap();
    let runner = runner(&data, config(&data), Credentials::default());
    let spec = spec(&origin, "Look around");
    (dir, runner, spec)
}

/// The files the agent committed, read from the branch in the mirror.
fn committed(runner: &SessionRunner, file: &str) -> String {
    let mirror = runner.workspaces().mirror_path(&foreman::ids::RepoName::new("octo", "repo").unwrap());
    git(&mirror, &["show", &format!("foreman/7-look-around:{file}")])
}

#[tokio::test]
async fn the_agent_sees_none_of_foremans_environment_processes_or_data_directory() {
    // Everything a misled agent would try: the parent's environment and every process's, their command
    // lines, Foreman's data directory and its key.
    let script = r#"
        { tr '\0' '\n' < /proc/$PPID/environ; for p in /proc/[0-9]*; do tr '\0' '\n' < $p/environ; done; } > environ.txt 2>/dev/null
        for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done > processes.txt 2>/dev/null
        cat "$DATA/keys/app.pem" > key.txt 2>&1
        ls -a "$DATA" > data.txt 2>&1
        ls / > root.txt
        echo "pwd=$(pwd) home=$HOME user=$(id -u)" > where.txt
        git add -A && git commit -qm "What the agent saw"
        "#;
    let (_dir, runner, spec) = setup_with(|data| AgentConfig {
        env: [("DATA".to_owned(), data.to_string_lossy().into_owned())].into(),
        ..command_config(script)
    });
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");

    // The test process stands in for Foreman: cargo gives it CARGO_MANIFEST_DIR and its name.
    let environ = committed(&runner, "environ.txt");
    assert!(!environ.contains("CARGO_MANIFEST_DIR"), "the agent read Foreman's environment:\n{environ}");
    let processes = committed(&runner, "processes.txt");
    let me = std::env::current_exe().unwrap();
    let me = me.file_name().unwrap().to_str().unwrap();
    assert!(!processes.contains(me), "the agent saw Foreman's process:\n{processes}");
    let key = committed(&runner, "key.txt");
    assert!(!key.contains("secret-key-line") && key.contains("No such file"), "{key}");
    let listing = committed(&runner, "data.txt");
    assert!(!listing.contains("keys") && !listing.contains("store"), "{listing}");
    let where_ = committed(&runner, "where.txt");
    assert!(where_.contains("pwd=/workspace") && where_.contains("home=/home/agent"), "{where_}");
    assert!(!where_.contains("user=0"), "the agent runs as a user of its own: {where_}");
}

#[tokio::test]
async fn nothing_the_agent_starts_outlives_its_session_setsid_or_not() {
    // A distinctive argument so the test finds exactly this child on the host.
    let needle = sleep_needle(1);
    let script = format!("setsid sh -c '{needle}' </dev/null >/dev/null 2>&1 &\necho started");
    let (_dir, runner, spec) = setup(command_config(&script));
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::Answered, "{outcome:#?}");
    // The namespace's processes are killed as its init exits; wait for the kernel to reap them.
    let left = gone(&needle).await;
    assert!(left.is_empty(), "a setsid child outlived its session: pids {left:?}");
}

#[tokio::test]
async fn without_bubblewrap_no_session_starts_and_the_log_says_what_to_do() {
    let config = AgentConfig { bwrap_path: "/nonexistent/bwrap".into(), ..command_config("touch ran.txt") };
    let (_dir, runner, spec) = setup(config);
    assert!(runner.executor().unavailable().is_some_and(|why| why.contains("bubblewrap")));
    let outcome = run(&runner, spec).await;
    match &outcome.verdict {
        Verdict::Failed { class: FailureCause::Infrastructure, reason } => {
            // The reason is shown on the issue: it names no host path; the session log has the operator's why.
            assert_eq!(reason, foreman::session::SANDBOX_UNAVAILABLE);
            let log = std::fs::read_to_string(&outcome.log_path).unwrap();
            assert!(log.contains("bubblewrap") && log.contains("agent.sandbox = \\\"off\\\""), "{log}");
        }
        v => panic!("expected an infrastructure failure, got {v:?}"),
    }
    assert!(outcome.changes.commits.is_empty());

    // Off only when said explicitly: then the agent runs, unconfined.
    let config = AgentConfig {
        bwrap_path: "/nonexistent/bwrap".into(),
        sandbox: SandboxMode::Off,
        ..command_config("touch ran.txt")
    };
    let (_dir, runner, spec) = setup(config);
    assert!(runner.executor().unavailable().is_none());
    assert_eq!(run(&runner, spec).await.verdict, Verdict::ChangesReady);
}

#[tokio::test]
async fn an_allowlisted_session_reaches_the_messages_api_and_nothing_else_on_loopback() {
    use anthropic_stub::{Reply, Stub};
    let dir = tempfile::tempdir().unwrap();
    let origin = origin(dir.path(), &[("README.md", "# repo\n")]);
    let stub = Stub::start().await.unwrap();
    let stub_port = stub.url().rsplit(':').next().unwrap().to_owned();
    // Another service on loopback, standing in for Foreman's own port or a metadata endpoint.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while other.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = AgentConfig {
        network: foreman::executor::local::netproxy::NetworkMode::Allowlist,
        allowed_hosts: vec![format!("127.0.0.1:{stub_port}")],
        bridge_path: Some(env!("CARGO_BIN_EXE_foreman").into()),
        ..claude_config(&stub.url(), &home)
    };
    let runner = runner(&dir.path().join("data"), config, credentials(&[("ANTHROPIC_API_KEY", "sk-ant-api03-stub")]));
    // The model asks for the other service through the proxy, then around it.
    let url = format!("http://127.0.0.1:{other_port}/");
    stub.push(Reply::tool_use(
        "Bash",
        serde_json::json!({
            "command": format!("curl -s -m 5 -o /dev/null -w 'proxied=%{{http_code}}' {url}; echo \" exit=$?\"; curl -s -m 5 --noproxy '*' {url}; echo \" direct=$?\""),
            "description": "Try the other service",
        }),
    ));
    stub.push(Reply::text("The other service is out of reach."));
    let spec = spec(&origin, "Look around");
    let outcome = run(&runner, spec).await;
    let log = std::fs::read_to_string(&outcome.log_path).unwrap();
    assert_eq!(outcome.verdict, Verdict::Answered, "{outcome:#?}\n{log}");

    // The CLI reached the stub (through the proxy) for both turns; the tool's result came back.
    let requests = stub.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let result = requests[1].body.to_string();
    assert!(result.contains("proxied=403"), "the proxy refused the other service: {result}");
    assert!(result.contains("direct=7"), "no route around the proxy: {result}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the other service saw no connection");

    // Each decision is in the session log: the stub allowed, the other service refused.
    let network: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "network")
        .collect();
    let to = |port: &str| network.iter().find(|e| e["target"] == format!("127.0.0.1:{port}").as_str());
    assert_eq!(to(&stub_port).map(|e| e["decision"].clone()), Some("allowed".into()), "{network:#?}");
    let refused = to(&other_port.to_string()).expect("the refusal is logged");
    assert_eq!(refused["decision"], "refused", "{refused}");
}

#[tokio::test]
async fn with_no_network_the_agent_reaches_nothing_not_even_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let script = format!("curl -s -m 5 http://127.0.0.1:{port}/; echo \"direct=$?\"");
    let config =
        AgentConfig { network: foreman::executor::local::netproxy::NetworkMode::None, ..command_config(&script) };
    let (_dir, runner, spec) = setup(config);
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::Answered, "{outcome:#?}");
    assert!(outcome.answer.as_deref().is_some_and(|a| a.contains("direct=7")), "{:?}", outcome.answer);
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the service saw no connection");

    // Without the sandbox a closed network cannot be kept: the configuration says so.
    let off = AgentConfig {
        network: foreman::executor::local::netproxy::NetworkMode::None,
        sandbox: SandboxMode::Off,
        ..AgentConfig::default()
    };
    let e = off.validate().unwrap_err();
    assert!(e.contains("agent.network") && e.contains("agent.sandbox"), "{e}");
}

#[tokio::test]
async fn an_agent_cannot_allocate_past_its_memory_limit() {
    // One line of 700 MB: `tail` holds it whole, so it needs that much heap.
    let script = "head -c 700000000 /dev/zero | tail -n 1 2> tail.txt | wc -c > size.txt; \
                  git add -A; git commit -qm sizes";
    let config = AgentConfig { max_memory_mb: Some(256), ..command_config(script) };
    let (_dir, runner, spec) = setup(config);
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    let mirror = runner.workspaces().mirror_path(&foreman::ids::RepoName::new("octo", "repo").unwrap());
    let show = |f: &str| git(&mirror, &["show", &format!("foreman/7-look-around:{f}")]);
    assert_eq!(show("size.txt").trim(), "0", "the allocation failed");
    assert!(show("tail.txt").contains("memory exhausted"), "{}", show("tail.txt"));
}

#[tokio::test]
async fn proxy_sockets_left_by_a_crash_are_removed_at_start() {
    let (dir, runner, _) = setup(command_config("true"));
    let stale = dir.path().join("data/proxy/3f0c2b0e-0000-4000-8000-000000000000.sock");
    std::fs::write(&stale, "").unwrap();
    runner.prune().await.unwrap();
    assert!(!stale.exists(), "a stale proxy socket survived the start");
}

#[tokio::test]
async fn a_path_holding_the_data_directory_is_never_shown_under_any_name() {
    let (_dir, runner, spec) = setup_with(|data| {
        let root = data.parent().unwrap().to_owned();
        let alias = root.parent().unwrap().join(format!("alias-{}", std::process::id()));
        let _ = std::fs::remove_file(&alias);
        std::os::unix::fs::symlink(&root, &alias).unwrap();
        AgentConfig {
            env: [
                ("DATA".to_owned(), data.to_string_lossy().into_owned()),
                ("ALIAS".to_owned(), alias.to_string_lossy().into_owned()),
            ]
            .into(),
            // The test directory, which holds the data directory: once as it is, once through a link.
            sandbox_paths: vec![root.clone()],
            sandbox_writable_paths: vec![alias],
            ..command_config(
                "{ cat \"$DATA/keys/app.pem\"; cat \"$ALIAS/data/keys/app.pem\"; } > key.txt 2>&1 || true
                 git add -A; git commit -qm key",
            )
        }
    });
    let outcome = run(&runner, spec).await;
    assert_eq!(outcome.verdict, Verdict::ChangesReady, "{outcome:#?}");
    let key = committed(&runner, "key.txt");
    assert!(!key.contains("secret-key-line") && key.contains("No such file"), "{key}");
}
