//! Enforcement: a session's change checked against every machine-checkable rule, before anything is
//! pushed. [`check_diff`] is pure over a [`Diff`]; [`enforce`] reads the diff with git (in the mirror, where
//! the push reads it too), runs the required commands in the working tree and returns the whole
//! [`Decision`] for the job's audit trail.

use std::path::Path;
use std::sync::LazyLock;

use globset::{GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::Serialize;

use super::commands::{self, CommandOutcome};
use super::diff::{ChangeKind, Diff, DiffError};
use super::schema::{PathGlob, Rules};
use crate::github::redact::REDACTED;

/// A rule, by its key in `[rules]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `protected_paths`
    ProtectedPaths,
    /// `allowed_paths`
    AllowedPaths,
    /// `max_files_changed`
    MaxFilesChanged,
    /// `max_lines_changed`
    MaxLinesChanged,
    /// `tdd`
    Tdd,
    /// `secret_patterns` and `builtin_secret_patterns`
    SecretPatterns,
    /// `branch_prefix`
    BranchPrefix,
    /// `required_commands`
    RequiredCommands,
}

impl Rule {
    /// The rule's key in `[rules]`.
    pub fn key(self) -> &'static str {
        match self {
            Rule::ProtectedPaths => "protected_paths",
            Rule::AllowedPaths => "allowed_paths",
            Rule::MaxFilesChanged => "max_files_changed",
            Rule::MaxLinesChanged => "max_lines_changed",
            Rule::Tdd => "tdd",
            Rule::SecretPatterns => "secret_patterns",
            Rule::BranchPrefix => "branch_prefix",
            Rule::RequiredCommands => "required_commands",
        }
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which rule.
    pub rule: Rule,
    /// The file at fault, when there is one.
    pub file: Option<String>,
    /// The 1-based line in the new file, when there is one.
    pub line: Option<u32>,
    /// What is wrong, for people. Never quotes a matched secret.
    pub message: String,
}

/// Allow or deny, with every reason: what goes into the job's audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// No rule was broken: the change may be pushed.
    pub allowed: bool,
    /// Every broken rule, in rule order.
    pub violations: Vec<Violation>,
    /// Every required command that ran, in file order. Not run when the diff already broke a rule.
    pub commands: Vec<CommandOutcome>,
    /// Files changed.
    pub files_changed: usize,
    /// Lines added plus deleted.
    pub lines_changed: u64,
}

/// A built-in secret format: a name for reports and its pattern.
pub struct BuiltinSecret {
    /// What kind of secret, e.g. `GitHub personal access token`.
    pub name: &'static str,
    /// The pattern.
    pub pattern: &'static str,
}

/// The token formats checked when `builtin_secret_patterns` is on. Formats from GitHub's "About
/// authentication to GitHub" (token prefixes), AWS's IAM identifiers reference (access key ids), and
/// Anthropic's API key format (`sk-ant-`).
pub const BUILTIN_SECRETS: &[BuiltinSecret] = &[
    BuiltinSecret { name: "GitHub token", pattern: r"\bgh[pousr]_[A-Za-z0-9]{36,}\b" },
    BuiltinSecret { name: "GitHub fine-grained token", pattern: r"\bgithub_pat_[A-Za-z0-9_]{22,}\b" },
    BuiltinSecret { name: "AWS access key id", pattern: r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b" },
    BuiltinSecret { name: "Anthropic API key", pattern: r"\bsk-ant-[A-Za-z0-9_-]{20,}" },
    BuiltinSecret {
        name: "private key",
        pattern: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY( BLOCK)?-----",
    },
];

static BUILTIN_REGEXES: LazyLock<Vec<Regex>> =
    LazyLock::new(|| BUILTIN_SECRETS.iter().map(|s| Regex::new(s.pattern).expect("a valid pattern")).collect());

fn glob_set(globs: &[PathGlob]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(glob.glob().clone());
    }
    // Every glob was compiled when read, so the set builds.
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Checks `diff` (and the branch, when known) against every rule that needs no command run.
pub fn check_diff(rules: &Rules, diff: &Diff, branch: Option<&str>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let protected = glob_set(&rules.protected_paths);
    for file in diff.files.iter().filter(|f| protected.is_match(&f.path)) {
        violations.push(Violation {
            rule: Rule::ProtectedPaths,
            file: Some(file.path.clone()),
            line: None,
            message: format!("`{}` is a protected path and must not be changed", file.path),
        });
    }
    if !rules.allowed_paths.is_empty() {
        let allowed = glob_set(&rules.allowed_paths);
        for file in diff.files.iter().filter(|f| !allowed.is_match(&f.path)) {
            violations.push(Violation {
                rule: Rule::AllowedPaths,
                file: Some(file.path.clone()),
                line: None,
                message: format!("`{}` is outside the allowed paths", file.path),
            });
        }
    }
    if let Some(max) = rules.max_files_changed
        && diff.files.len() > max as usize
    {
        violations.push(Violation {
            rule: Rule::MaxFilesChanged,
            file: None,
            line: None,
            message: format!("{} files changed; at most {max} are allowed", diff.files.len()),
        });
    }
    if let Some(max) = rules.max_lines_changed
        && diff.lines_changed() > u64::from(max)
    {
        violations.push(Violation {
            rule: Rule::MaxLinesChanged,
            file: None,
            line: None,
            message: format!("{} lines changed; at most {max} are allowed", diff.lines_changed()),
        });
    }
    if rules.tdd.required {
        let source = glob_set(&rules.tdd.source);
        let tests = glob_set(&rules.tdd.tests);
        let live = || diff.files.iter().filter(|f| f.kind != ChangeKind::Deleted);
        let touched_tests = live().any(|f| tests.is_match(&f.path));
        let first_source = live().find(|f| source.is_match(&f.path) && !tests.is_match(&f.path));
        if let (false, Some(file)) = (touched_tests, first_source) {
            violations.push(Violation {
                rule: Rule::Tdd,
                file: Some(file.path.clone()),
                line: None,
                message: format!("source changed (`{}`) but no test was added or changed", file.path),
            });
        }
    }
    let builtin: &[Regex] = if rules.builtin_secret_patterns { &BUILTIN_REGEXES } else { &[] };
    for added in &diff.added_lines {
        let hit = builtin
            .iter()
            .zip(BUILTIN_SECRETS)
            .find(|(re, _)| re.is_match(&added.text))
            .map(|(_, s)| s.name.to_owned())
            .or_else(|| {
                rules
                    .secret_patterns
                    .iter()
                    .find(|p| p.regex().is_match(&added.text))
                    .map(|p| format!("secret pattern `{}`", p.as_str()))
            });
        if let Some(what) = hit {
            violations.push(Violation {
                rule: Rule::SecretPatterns,
                file: Some(added.path.clone()),
                line: Some(added.line),
                message: format!("an added line looks like a secret ({what})"),
            });
        }
    }
    if let Some(branch) = branch
        && !branch.starts_with(&rules.branch_prefix)
    {
        violations.push(Violation {
            rule: Rule::BranchPrefix,
            file: None,
            line: None,
            message: format!("branch `{branch}` does not start with `{}`", rules.branch_prefix),
        });
    }
    violations
}

/// `text` with every match of the secret patterns in force (built-in and the repository's) replaced by
/// [`REDACTED`]: a command's output goes into the audit trail and a comment, and tests do print tokens.
pub fn redact(rules: &Rules, text: &str) -> String {
    let builtin: &[Regex] = if rules.builtin_secret_patterns { &BUILTIN_REGEXES } else { &[] };
    let mut text = text.to_owned();
    for re in builtin.iter().chain(rules.secret_patterns.iter().map(|p| p.regex())) {
        if re.is_match(&text) {
            text = re.replace_all(&text, REDACTED).into_owned();
        }
    }
    text
}

/// The change to check: the repository git reads it from and its two ends.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The git directory holding both commits: the repository's mirror, which the push reads too.
    pub git_dir: &'a Path,
    /// The commit the branch started from.
    pub base: &'a str,
    /// The branch's head after the session (a commit, or anything `git diff` takes).
    pub head: &'a str,
    /// The branch's name, for `branch_prefix`; `None` skips that rule.
    pub branch: Option<&'a str>,
}

/// Checks `change` against `rules`: the diff and branch first, then, only if those pass, each required
/// command in order in `worktree` (a checkout of the change's head), stopping at the first that fails
/// (later ones would run on a change that is already refused).
///
/// # Errors
/// [`DiffError`] when the change cannot be read; the caller must then treat the change as denied.
/// With `sandbox`, the required commands run in it ([`commands::run`]).
pub async fn enforce(
    worktree: &Path,
    change: &Change<'_>,
    rules: &Rules,
    sandbox: Option<commands::Confinement<'_>>,
) -> Result<Decision, DiffError> {
    let diff = Diff::read(change.git_dir, change.base, change.head).await?;
    let mut violations = check_diff(rules, &diff, change.branch);
    let mut outcomes = Vec::new();
    if violations.is_empty() {
        for command in &rules.required_commands {
            let mut outcome = commands::run(worktree, command, sandbox).await;
            outcome.output_tail = redact(rules, &outcome.output_tail);
            if !outcome.passed {
                violations.push(Violation {
                    rule: Rule::RequiredCommands,
                    file: None,
                    line: None,
                    message: if outcome.timed_out {
                        format!("`{}` did not finish within {} s", command.name, command.timeout_secs)
                    } else {
                        match outcome.exit_code {
                            Some(code) => format!("`{}` failed with exit code {code}", command.name),
                            None => format!("`{}` failed", command.name),
                        }
                    },
                });
                outcomes.push(outcome);
                break;
            }
            outcomes.push(outcome);
        }
    }
    Ok(Decision {
        allowed: violations.is_empty(),
        violations,
        commands: outcomes,
        files_changed: diff.files.len(),
        lines_changed: diff.lines_changed(),
    })
}
