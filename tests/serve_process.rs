//! Foreman's own process, as `foreman serve` runs: it is not dumpable, its secrets are gone from its
//! environment (and from the environment block `/proc/<pid>/environ` shows), and it warns about a private
//! key file others can read.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use support::Foreman;

const WEBHOOK_SECRET: &str = "ws-4f1d9c0e7b2a";
const ADMIN_TOKEN: &str = "at-8e3b6a5d1c9f";

/// The user processes run as here: when the tests run as root, an unprivileged one, so that the kernel's
/// checks on `/proc/<pid>/` apply (root passes them all); otherwise the tests' own user.
fn unprivileged(cmd: &mut Command) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
}

#[test]
fn serve_is_not_dumpable_forgets_its_secrets_and_warns_about_a_readable_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = dir.path().join("app-key.pem");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/src/github/testdata/app-key.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let key_path = key.to_str().unwrap();

    let foreman = Foreman::start_adjusted(
        &data,
        &[
            ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("FOREMAN_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GITHUB_PRIVATE_KEY_PATH", key_path),
        ],
        unprivileged,
    );
    let pid = foreman.child.id();

    // A process of Foreman's own user (what an agent without a sandbox is) cannot read Foreman's
    // environment: the process is not dumpable, so /proc/<pid>/environ belongs to root.
    let mut reader = Command::new("cat");
    reader.arg(format!("/proc/{pid}/environ"));
    unprivileged(&mut reader);
    let read = reader.output().unwrap();
    assert!(
        !read.status.success(),
        "a process of Foreman's user read its environment: {:?}",
        String::from_utf8_lossy(&read.stdout)
    );
    let refused = String::from_utf8_lossy(&read.stderr);
    assert!(refused.contains("Permission denied"), "refused for another reason: {refused}");

    // Whoever can still read it (root) finds the secrets overwritten in the block the process started with.
    if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
        let environ = String::from_utf8_lossy(&environ);
        for secret in [WEBHOOK_SECRET, ADMIN_TOKEN, key_path] {
            assert!(!environ.contains(secret), "{secret} is still in /proc/{pid}/environ");
        }
        assert!(environ.contains("FOREMAN_DATA_DIR="), "the rest of the environment stays: {environ}");
    }

    let logs = foreman.logs();
    let warning = logs
        .iter()
        .find(|l| l.contains("private key file can be read by other users"))
        .unwrap_or_else(|| panic!("no warning about the key file's mode:\n{}", logs.join("\n")));
    assert!(warning.contains(key_path) && warning.contains("0644") && warning.contains("chmod 600"), "{warning}");
    for secret in [WEBHOOK_SECRET, ADMIN_TOKEN] {
        assert!(!logs.iter().any(|l| l.contains(secret)), "a secret reached the log");
    }
}

#[test]
fn a_key_file_readable_by_its_owner_only_gives_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app-key.pem");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/src/github/testdata/app-key.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let foreman = Foreman::start(
        &dir.path().join("data"),
        &[("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET), ("GITHUB_PRIVATE_KEY_PATH", key.to_str().unwrap())],
    );
    let logs = foreman.logs();
    assert!(!logs.iter().any(|l| l.contains("private key file")), "{}", logs.join("\n"));
}
