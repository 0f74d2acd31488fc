//! `foreman demo`, the real binary: github-sim in its process, `foreman serve` as its child, a scripted
//! command agent, real git. It must narrate each step in order and exit 0 once the pull request is open; and
//! fail with a reason when it cannot start. Every run starts in an empty temporary directory with a clean
//! environment: GitHub's API descriptions are built into the binary, nothing is read beside it.
#![cfg(feature = "demo")]

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The whole demo's bound: a lifecycle on loopback takes seconds; this is for a loaded 2-core CI machine.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// The demo's `--timeout`: below [`TEST_TIMEOUT`], so a demo that cannot finish says why and exits 1 first.
const DEMO_TIMEOUT_SECS: &str = "90";

/// Runs `foreman demo ARGS` with a clean environment, killing it after [`TEST_TIMEOUT`].
fn demo(args: &[&str], home: &std::path::Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("demo")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", home)
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start foreman demo");
    // Read both pipes on threads so a full pipe never blocks the demo.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        err.read_to_end(&mut s).map(|_| s)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    let waiter = std::thread::spawn(move || tx.send(child.wait()));
    let started = Instant::now();
    let status = match rx.recv_timeout(TEST_TIMEOUT) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (its waiter is still blocked).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = waiter.join();
            let stdout = String::from_utf8_lossy(&out.join().unwrap().unwrap()).into_owned();
            panic!("foreman demo did not exit within {TEST_TIMEOUT:?}; it said:\n{stdout}");
        }
    };
    eprintln!("foreman demo {args:?} exited {status} after {:?}", started.elapsed());
    Output { status, stdout: out.join().unwrap().unwrap(), stderr: err.join().unwrap().unwrap() }
}

#[test]
fn the_demo_narrates_a_labelled_issue_becoming_a_pull_request_and_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let out = demo(&["--timeout", DEMO_TIMEOUT_SECS, "--keep"], home.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();

    // The main line, in this order (other lines, such as labels and board moves, may come between).
    let expected = [
        "created acme/widgets",
        "opened #1: Add a greeting",
        "labelled #1 foreman",
        "Foreman queued #1",
        "Foreman claimed #1",
        "agent running",
        "pull request #2 opened: ",
        "card #1 moved to In review",
        "tracking comment on #1:",
    ];
    let mut at = 0;
    for want in expected {
        let found = lines[at..].iter().position(|l| l.starts_with(want));
        let Some(i) = found else { panic!("no line starting {want:?} after line {at}; stdout:\n{stdout}") };
        at += i + 1;
    }
    let pull_line = lines.iter().find(|l| l.starts_with("pull request #2 opened: ")).unwrap();
    assert!(pull_line.contains("foreman/1-add-a-greeting into main"), "{pull_line}");

    // The tracking comment's text ends the narration, and it is the final one: the pull request is ready.
    let comment = &lines[lines.iter().position(|l| l.starts_with("tracking comment on #1:")).unwrap() + 1..];
    assert!(comment.iter().any(|l| l.contains("pull request ready")), "stdout:\n{stdout}");
    assert!(comment.iter().any(|l| l.contains("Pull request:") && l.contains("#2")), "stdout:\n{stdout}");
    assert!(!stdout.contains("<!-- foreman:tracking"), "the hidden marker is not narrated");
    assert!(lines.iter().any(|l| l.starts_with("done in ") && l.ends_with("pull request #2 closes #1")), "{stdout}");

    // Quiet by default: Foreman's log lines are not printed.
    assert!(!stderr.contains("listening") && !stdout.contains("\"level\""), "stderr:\n{stderr}");

    // The agent's commit is on the pull request's branch in the simulator's repository (kept with --keep).
    let kept = lines.iter().find_map(|l| l.strip_prefix("kept ")).expect("the kept directory is printed");
    let git_dir = std::path::Path::new(kept).join("sim/repos/acme/widgets.git");
    let log = Command::new("git")
        .args(["log", "--format=%s", "foreman/1-add-a-greeting"])
        .current_dir(&git_dir)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("Add a greeting (#1)"),
        "{} {}",
        git_dir.display(),
        String::from_utf8_lossy(&log.stderr)
    );
}

#[test]
fn a_descriptions_folder_without_github_api_descriptions_is_refused_in_one_line_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("no-descriptions");
    let out = demo(&["--descriptions-dir", missing.to_str().unwrap()], home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("foreman demo: starting github-sim: GitHub's OpenAPI description is not in "),
        "{stderr}"
    );
    assert!(first.contains("no-descriptions/github/rest/api.github.com.json"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn when_the_pull_request_does_not_open_in_time_the_demo_says_so_with_foremans_last_log_lines_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    // A timeout of 0 s runs out at the first look after the label, before any pull request can exist.
    let out = demo(&["--timeout", "0"], home.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("labelled #1 foreman"), "it got as far as the label:\n{stdout}");
    assert!(stderr.contains("no pull request for #1 within --timeout (0 s)"), "{stderr}");
    assert!(stderr.contains("Foreman's last") && stderr.contains("foreman::server: listening"), "{stderr}");
}
