//! `foreman replay`, run as the built binary on real example payloads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// Bounds one replay: it reads one file and decides, so even a loaded 2-core machine finishes in well under this.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

fn examples() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/github/webhooks/examples/api.github.com")).to_owned()
}

/// Runs `foreman replay ARGS` in `dir` with no Foreman variables in the environment.
fn replay(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.arg("replay").args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FOREMAN_") || k.starts_with("GITHUB_") {
            cmd.env_remove(k);
        }
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(cmd.output()));
    rx.recv_timeout(REPLAY_TIMEOUT).expect("replay finished in time").expect("replay started")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn write_payload(dir: &Path, name: &str, body: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(body).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn example(event: &str, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(examples().join(event).join(file)).unwrap()).unwrap()
}

#[test]
fn a_label_that_is_not_the_trigger_label_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let payload = examples().join("issues/labeled.payload.json");
    let out = replay(dir.path(), &["--event", "issues", payload.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "{\"decision\":\"ignore\",\"reason\":\"label 'bug' is not a trigger label\"}\n");
    // It touches no data directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_trigger_label_enqueues_and_the_config_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = example("issues", "labeled.payload.json");
    body["label"]["name"] = json!("foreman");
    body["installation"] = json!({ "id": 99 });
    let payload = write_payload(dir.path(), "labeled.json", &body);
    let out = replay(dir.path(), &["--event", "issues", &payload]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "{\"decision\":\"enqueue\",\"kind\":\"code\",\"repo\":\"Codertocat/Hello-World\",\"issue\":1,\"trigger\":\"label\",\"requester\":\"Codertocat\",\"installation\":99}\n"
    );

    // With a configured label, the example's own label `bug` is the trigger.
    std::fs::write(dir.path().join("foreman.toml"), "[triggers]\nlabel = \"bug\"\n").unwrap();
    let real = examples().join("issues/labeled.payload.json");
    let out = replay(dir.path(), &["--config", "foreman.toml", "--event", "issues", real.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("{\"decision\":\"enqueue\""), "{}", stdout(&out));
}

#[test]
fn a_command_without_association_asks_for_a_lookup_and_several_commands_print_several_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = example("issue_comment", "created.payload.json");
    body["comment"]["body"] = json!("/foreman run\n/foreman help");
    body["comment"]["author_association"] = json!("CONTRIBUTOR");
    let payload = write_payload(dir.path(), "c.json", &body);
    let out = replay(dir.path(), &["--event", "issue_comment", &payload]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0]["decision"].as_str(), lines[0]["what"].as_str()), (Some("lookup"), Some("permission")));

    body["comment"]["author_association"] = json!("OWNER");
    let payload = write_payload(dir.path(), "c.json", &body);
    let out = replay(dir.path(), &["--event", "issue_comment", &payload]);
    let decisions: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions, ["enqueue", "reply"]);
}

#[test]
fn a_job_state_can_be_supplied() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = example("issues", "unlabeled.payload.json");
    body["label"]["name"] = json!("foreman");
    let payload = write_payload(dir.path(), "u.json", &body);
    let out = replay(dir.path(), &["--event", "issues", "--job", "running", &payload]);
    assert!(stdout(&out).contains("left to finish"), "{out:?}");
    let out = replay(dir.path(), &["--event", "issues", "--job", "queued", &payload]);
    assert!(stdout(&out).starts_with("{\"decision\":\"cancel\""), "{out:?}");
    let out = replay(dir.path(), &["--event", "issues", "--job", "sleeping", &payload]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_payload_can_come_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read(examples().join("issues/labeled.payload.json")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.args(["replay", "--event", "issues", "-"]).current_dir(dir.path()).stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped()).env_remove("FOREMAN_CONFIG");
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &body).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx.recv_timeout(REPLAY_TIMEOUT).unwrap().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "{\"decision\":\"ignore\",\"reason\":\"label 'bug' is not a trigger label\"}\n");
    // Without --event, a file or stdin cannot be decoded: said, exit 1.
    let out = replay(dir.path(), &["-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--event is needed"), "{out:?}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), "{not json").unwrap();
    let out = replay(dir.path(), &["--event", "issues", "bad.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a JSON object") && err.contains("dead-lettered"), "{err}");
    assert!(out.stdout.is_empty());

    let out = replay(dir.path(), &["--event", "issues", "missing.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    std::fs::write(dir.path().join("f.toml"), "[triggers]\nlabl = \"x\"\n").unwrap();
    let real = examples().join("issues/labeled.payload.json");
    let out = replay(dir.path(), &["--config", "f.toml", "--event", "issues", real.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("triggers.labl"), "{out:?}");
}

#[test]
fn every_example_replays_to_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    for event in std::fs::read_dir(examples()).unwrap() {
        let event = event.unwrap().path();
        let name = event.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&event).unwrap() {
            let file = file.unwrap().path();
            let out = replay(dir.path(), &["--event", &name, file.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {out:?}", file.display());
            let text = stdout(&out);
            assert!(!text.is_empty(), "{}", file.display());
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(v["decision"].is_string(), "{line}");
            }
            count += 1;
        }
    }
    assert!(count >= 100);
}
