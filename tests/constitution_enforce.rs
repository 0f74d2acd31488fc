//! Enforcement on real git: for each rule, an agent-like change that breaks it, made in a temp repository
//! (init, commit a base, change files, commit), then checked by `foreman::constitution::enforce`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use foreman::constitution::{self, Decision, Origin, Rule};

/// Bounds one enforcement without slow commands: three `git diff`s.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// A GitHub classic token's shape: `ghp_` and 36 alphanumerics (not a real token).
const FAKE_GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

struct Repo {
    dir: tempfile::TempDir,
    base: String,
    branch: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Agent", "-c", "user.email=agent@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Repo {
    /// A repository on branch `branch` with a small Rust-shaped base commit.
    fn new(branch: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", branch]);
        let repo = Repo { dir, base: String::new(), branch: branch.to_owned() };
        repo.write(".github/workflows/ci.yml", "on: push\n");
        repo.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
        repo.write("tests/one.rs", "#[test]\nfn one() {}\n");
        repo.write("README.md", "# demo\n");
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-q", "-m", "base"]);
        Repo { base: git(repo.path(), &["rev-parse", "HEAD"]), ..repo }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    /// Writes `files` and commits them, as an agent's session would.
    fn commit(&self, files: &[(&str, &str)]) {
        for (path, text) in files {
            self.write(path, text);
        }
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", "agent change"]);
    }

    async fn enforce(&self, toml: &str) -> Decision {
        let rules = constitution::parse(Origin::Repo, toml).unwrap().rules;
        let git_dir = self.path().join(".git");
        let change =
            constitution::Change { git_dir: &git_dir, base: &self.base, head: "HEAD", branch: Some(&self.branch) };
        tokio::time::timeout(CHECK_TIMEOUT, constitution::enforce(self.path(), &change, &rules, None))
            .await
            .expect("enforcement finished in time")
            .expect("the diff was read")
    }
}

fn rules_of(d: &Decision) -> Vec<Rule> {
    d.violations.iter().map(|v| v.rule).collect()
}

#[tokio::test]
async fn a_change_within_the_rules_is_allowed() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[
        ("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\npub fn two() -> u32 { 2 }\n"),
        ("tests/two.rs", "#[test]\nfn two() {}\n"),
    ]);
    let d = repo.enforce("[rules.tdd]\nrequired = true\n").await;
    assert!(d.allowed, "{d:?}");
    assert!(d.violations.is_empty());
    assert_eq!((d.files_changed, d.lines_changed), (2, 3));
    let md = constitution::decision_markdown(&d);
    assert!(md.contains("passes the constitution (2 files, 3 lines changed)"), "{md}");
}

#[tokio::test]
async fn touching_a_protected_path_is_denied() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[(".github/workflows/ci.yml", "on: push\njobs: {}\n")]);
    let d = repo.enforce("").await;
    assert!(!d.allowed);
    assert_eq!(rules_of(&d), [Rule::ProtectedPaths]);
    assert_eq!(d.violations[0].file.as_deref(), Some(".github/workflows/ci.yml"));
    let md = constitution::decision_markdown(&d);
    assert!(md.contains("- **protected_paths** at `.github/workflows/ci.yml`"), "{md}");
}

#[tokio::test]
async fn moving_a_protected_file_out_is_denied_and_custom_globs_apply() {
    let repo = Repo::new("foreman/issue-1");
    git(repo.path(), &["mv", ".github/workflows/ci.yml", "ci.yml"]);
    repo.commit(&[("infra/main.tf", "resource {}\n")]);
    let d = repo.enforce("[rules]\nprotected_paths = [\".github/workflows/**\", \"infra/*.tf\"]\n").await;
    let files: Vec<_> = d.violations.iter().map(|v| v.file.as_deref().unwrap()).collect();
    assert_eq!(rules_of(&d), [Rule::ProtectedPaths, Rule::ProtectedPaths]);
    assert!(files.contains(&".github/workflows/ci.yml") && files.contains(&"infra/main.tf"), "{files:?}");
}

#[tokio::test]
async fn writing_a_token_shaped_string_is_denied_with_file_and_line() {
    let repo = Repo::new("foreman/issue-1");
    let lib = format!("pub fn one() -> u32 {{\n    1\n}}\nconst TOKEN: &str = \"{FAKE_GITHUB_TOKEN}\";\n");
    repo.commit(&[("src/lib.rs", &lib)]);
    let d = repo.enforce("").await;
    assert!(!d.allowed);
    assert_eq!(rules_of(&d), [Rule::SecretPatterns]);
    let v = &d.violations[0];
    assert_eq!((v.file.as_deref(), v.line), (Some("src/lib.rs"), Some(4)));
    assert!(v.message.contains("GitHub token"), "{}", v.message);
    // The secret itself goes nowhere: not in the violation, not in the audit record, not in the comment.
    let audit = serde_json::to_string(&d).unwrap();
    assert!(!audit.contains(FAKE_GITHUB_TOKEN));
    assert!(!constitution::decision_markdown(&d).contains(FAKE_GITHUB_TOKEN));
    assert!(audit.contains("\"rule\":\"secret_patterns\""), "{audit}");
}

#[tokio::test]
async fn every_builtin_token_format_and_user_patterns_are_caught() {
    let repo = Repo::new("foreman/issue-1");
    let secrets = [
        "gho_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----",
        "internal = ACME-SECRET-1234",
        "nothing to see here: ghp_short AKIA123",
    ];
    let mut text = String::new();
    for s in secrets {
        text.push_str(s);
        text.push('\n');
    }
    repo.commit(&[("config/settings.txt", &text)]);
    let d = repo.enforce("[rules]\nsecret_patterns = [\"ACME-SECRET-[0-9]+\"]\n").await;
    let lines: Vec<_> = d.violations.iter().map(|v| v.line.unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7], "{:?}", d.violations);
    assert!(d.violations[6].message.contains("ACME-SECRET"), "{}", d.violations[6].message);
    // The built-in formats can be switched off; the user's patterns still apply.
    let d =
        repo.enforce("[rules]\nbuiltin_secret_patterns = false\nsecret_patterns = [\"ACME-SECRET-[0-9]+\"]\n").await;
    assert_eq!(d.violations.iter().map(|v| v.line.unwrap()).collect::<Vec<_>>(), [7]);
}

#[tokio::test]
async fn changing_source_without_tests_under_tdd_is_denied() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("src/lib.rs", "pub fn one() -> u32 {\n    2\n}\n"), ("README.md", "# demo\nmore\n")]);
    let d = repo.enforce("[rules.tdd]\nrequired = true\n").await;
    assert_eq!(rules_of(&d), [Rule::Tdd]);
    assert_eq!(d.violations[0].file.as_deref(), Some("src/lib.rs"));
    // Without the rule the same change passes; with custom globs a matching test file satisfies it.
    assert!(repo.enforce("").await.allowed);
    repo.commit(&[("src/lib_test.rs", "#[test]\nfn t() {}\n")]);
    let d = repo.enforce("[rules.tdd]\nrequired = true\ntests = [\"**/*_test.rs\"]\n").await;
    assert!(d.allowed, "{d:?}");
}

#[tokio::test]
async fn exceeding_the_size_limits_is_denied() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("a.txt", "1\n2\n3\n"), ("b.txt", "1\n2\n"), ("README.md", "# demo, rewritten\n")]);
    // 3 files; 3 + 2 + (1 added, 1 deleted) = 7 lines.
    let d = repo.enforce("[rules]\nmax_files_changed = 2\nmax_lines_changed = 6\n").await;
    assert_eq!(rules_of(&d), [Rule::MaxFilesChanged, Rule::MaxLinesChanged]);
    assert!(d.violations[0].message.contains("3 files changed; at most 2"), "{}", d.violations[0].message);
    assert!(d.violations[1].message.contains("7 lines changed; at most 6"), "{}", d.violations[1].message);
    assert!(repo.enforce("[rules]\nmax_files_changed = 3\nmax_lines_changed = 7\n").await.allowed);
}

#[tokio::test]
async fn a_change_outside_the_allowed_paths_is_denied() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n"), ("src/extra.rs", "\n")]);
    let d = repo.enforce("[rules]\nallowed_paths = [\"docs/**\"]\n").await;
    assert_eq!(rules_of(&d), [Rule::AllowedPaths]);
    assert_eq!(d.violations[0].file.as_deref(), Some("src/extra.rs"));
}

#[tokio::test]
async fn a_branch_without_the_prefix_is_denied() {
    let repo = Repo::new("main");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    let d = repo.enforce("").await;
    assert_eq!(rules_of(&d), [Rule::BranchPrefix]);
    assert!(repo.enforce("[rules]\nbranch_prefix = \"ma\"\n").await.allowed);
}

#[tokio::test]
async fn an_unknown_base_is_an_error_not_an_allow() {
    let repo = Repo::new("foreman/issue-1");
    let rules = constitution::Rules::default();
    let git_dir = repo.path().join(".git");
    let change = constitution::Change {
        git_dir: &git_dir,
        base: "0000000000000000000000000000000000000000",
        head: "HEAD",
        branch: Some(&repo.branch),
    };
    let result =
        tokio::time::timeout(CHECK_TIMEOUT, constitution::enforce(repo.path(), &change, &rules, None)).await.unwrap();
    assert!(result.is_err());
}

const COMMANDS: &str = r#"
[[rules.required_commands]]
name = "layout"
run = "test -f src/lib.rs && echo layout ok"
timeout_secs = 30

[[rules.required_commands]]
name = "tests"
run = "echo running tests; echo 'assertion failed: one() == 2' >&2; exit 3"
timeout_secs = 30

[[rules.required_commands]]
name = "never reached"
run = "true"
"#;

#[tokio::test]
async fn a_failing_required_command_is_denied_with_its_output() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    let d = repo.enforce(COMMANDS).await;
    assert!(!d.allowed);
    assert_eq!(rules_of(&d), [Rule::RequiredCommands]);
    assert!(d.violations[0].message.contains("`tests` failed with exit code 3"), "{}", d.violations[0].message);
    assert_eq!(d.commands.len(), 2, "stops at the first failure");
    assert!(d.commands[0].passed);
    assert_eq!(d.commands[0].output_tail, "layout ok\n");
    let failed = &d.commands[1];
    assert_eq!((failed.passed, failed.exit_code, failed.timed_out), (false, Some(3), false));
    // stdout and stderr, in the order they were written.
    assert_eq!(failed.output_tail, "running tests\nassertion failed: one() == 2\n");
    let md = constitution::decision_markdown(&d);
    assert!(md.contains("<code>tests</code>") && md.contains("assertion failed"), "{md}");
}

#[tokio::test]
async fn passing_required_commands_allow_and_run_in_the_workspace() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    let toml = "[[rules.required_commands]]\nname = \"check\"\nrun = \"test -f docs/guide.md && pwd\"\n";
    let d = repo.enforce(toml).await;
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.commands[0].exit_code, Some(0));
    let pwd = Path::new(d.commands[0].output_tail.trim()).canonicalize().unwrap();
    assert_eq!(pwd, repo.path().canonicalize().unwrap());
}

#[tokio::test]
async fn required_commands_do_not_run_when_the_diff_is_already_refused() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[(".github/workflows/ci.yml", "changed\n")]);
    let d = repo.enforce(COMMANDS).await;
    assert_eq!(rules_of(&d), [Rule::ProtectedPaths]);
    assert!(d.commands.is_empty());
}

#[tokio::test]
async fn a_required_command_that_outlives_its_timeout_is_killed_with_its_children() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    // A background grandchild holds the output pipe too: only killing the whole group ends the wait.
    let toml =
        "[[rules.required_commands]]\nname = \"hang\"\nrun = \"echo started; sleep 60 & sleep 60\"\ntimeout_secs = 1\n";
    let started = Instant::now();
    let d = repo.enforce(toml).await;
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(!d.allowed);
    let c = &d.commands[0];
    assert!(c.timed_out && !c.passed && c.exit_code.is_none(), "{c:?}");
    assert_eq!(c.output_tail, "started\n");
    assert!(d.violations[0].message.contains("did not finish within 1 s"), "{}", d.violations[0].message);
}

#[tokio::test]
async fn what_a_required_command_leaves_running_is_ended_with_it() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    // The background sleep keeps the output pipe open; unless it is killed, the output is lost.
    let toml = "[[rules.required_commands]]\nname = \"server\"\nrun = \"echo before; sleep 60 & echo after\"\ntimeout_secs = 30\n";
    let started = Instant::now();
    let d = repo.enforce(toml).await;
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.commands[0].output_tail, "before\nafter\n");
}

#[tokio::test]
async fn a_token_in_a_file_with_an_awkward_name_is_still_found() {
    let repo = Repo::new("foreman/issue-1");
    let name = "notes/a\tb \"c\" caf\u{e9}.txt";
    repo.commit(&[(name, &format!("fine\nkey = {FAKE_GITHUB_TOKEN}\n"))]);
    git(repo.path(), &["config", "diff.noprefix", "true"]);
    let d = repo.enforce("").await;
    assert_eq!(rules_of(&d), [Rule::SecretPatterns]);
    assert_eq!((d.violations[0].file.as_deref(), d.violations[0].line), (Some(name), Some(2)));
}

#[tokio::test]
async fn required_commands_do_not_inherit_the_environment() {
    // cargo sets CARGO_MANIFEST_DIR for test binaries; it stands in for any of Foreman's own variables.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    let toml = "[[rules.required_commands]]\nname = \"env\"\nrun = \"env | cut -d= -f1 | sort\"\n";
    let d = repo.enforce(toml).await;
    let names: Vec<&str> = d.commands[0].output_tail.lines().collect();
    assert!(names.contains(&"PATH"), "{names:?}");
    assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{names:?}");
    for name in &names {
        assert!(
            foreman::constitution::commands::PASSED_ENV.contains(name)
                || ["PWD", "SHLVL", "OLDPWD", "_"].contains(name),
            "{name} leaked"
        );
    }
}

#[tokio::test]
async fn marking_files_binary_does_not_hide_a_token() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[(".gitattributes", "*.dat binary\n"), ("blob.dat", &format!("\u{0}\u{1}\n{FAKE_GITHUB_TOKEN}\n"))]);
    let d = repo.enforce("").await;
    assert_eq!(rules_of(&d), [Rule::SecretPatterns], "{d:?}");
    assert_eq!((d.violations[0].file.as_deref(), d.violations[0].line), (Some("blob.dat"), Some(2)));
}

#[tokio::test]
async fn secrets_in_a_command_output_are_redacted() {
    let repo = Repo::new("foreman/issue-1");
    repo.commit(&[("docs/guide.md", "guide\n")]);
    let toml = format!(
        "[rules]\nsecret_patterns = ['ACME-[0-9]+']\n[[rules.required_commands]]\nname = \"leaky\"\nrun = \"p=ghp_; echo token ${{p}}{} and ACME-42; exit 1\"\n",
        &FAKE_GITHUB_TOKEN[4..]
    );
    // The command line does not hold the token; only its output does.
    assert!(!toml.contains(FAKE_GITHUB_TOKEN));
    let d = repo.enforce(&toml).await;
    assert_eq!(d.commands[0].output_tail, "token [redacted] and [redacted]\n");
    assert!(!serde_json::to_string(&d).unwrap().contains(FAKE_GITHUB_TOKEN));
}
