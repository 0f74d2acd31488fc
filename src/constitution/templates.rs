//! Starter constitutions for `foreman constitution init --template …` and `/foreman constitution init`.
//! Each is a complete, commented `.github/foreman.toml` that parses with [`super::parse`].

pub use crate::decide::Template;

/// The keys the templates set to something other than the built-in default, on purpose: suggested
/// budgets, limits, tests and commands for the kind of project. Every other key a template writes restates
/// the default (a test holds them to it), so a starter file never silently differs from having no file.
pub const SUGGESTED: &[&str] = &[
    "agent.max_turns",
    "agent.max_cost_usd",
    "agent.disallowed_tools",
    "agent.timeout_secs",
    "limits.daily_cost_usd",
    "limits.daily_sessions",
    "rules.max_files_changed",
    "rules.max_lines_changed",
    "rules.tdd.required",
    "rules.tdd.source",
    "rules.tdd.tests",
    "rules.required_commands",
];

/// The starter files' text, kept with the constitution they are written in (the names belong to the
/// command grammar, [`crate::decide::command`]).
impl Template {
    /// The file's text.
    pub fn text(self) -> String {
        let (tdd, commands) = match self {
            Template::Rust => (RUST_TDD, RUST_COMMANDS),
            Template::Node => (NODE_TDD, NODE_COMMANDS),
            Template::Python => (PYTHON_TDD, PYTHON_COMMANDS),
            Template::Generic => (GENERIC_TDD, GENERIC_COMMANDS),
        };
        format!("{HEAD}{tdd}{commands}{TAIL}")
    }
}

const HEAD: &str = r#"# .github/foreman.toml: this repository's constitution for Foreman.
# Every key is optional; unset keys come from the organisation's .github repository, then Foreman's
# defaults. Unknown keys are refused. Reference: docs/constitution.md.

[triggers]
label = "foreman"
trigger_columns = ["Ready"]
# allowed_bots = ["renovate[bot]"]

[triggers.permissions]
run = "write"

[agent]
# model = "claude-sonnet-4-5"
max_turns = 60
max_cost_usd = 5.0
disallowed_tools = ["WebFetch"]
timeout_secs = 3600

[limits]
concurrency = 1
daily_cost_usd = 50.0
daily_sessions = 20

[rules]
protected_paths = [".github/workflows/**", ".github/foreman.toml"]
max_files_changed = 40
max_lines_changed = 1500
branch_prefix = "foreman/"
builtin_secret_patterns = true
secret_patterns = []
"#;

const TAIL: &str = r#"
# Free text for the agent's prompt.
# deployment_target = "Deployed by CI from main; never deploy from a session."
# secret_naming = "Secrets are environment variables named APP_<NAME>; never commit values."
# coding_standards = "Small functions, doc comments on public items."
"#;

const RUST_TDD: &str = r#"
[rules.tdd]
required = true
source = ["src/**", "crates/*/src/**"]
tests = ["tests/**", "crates/*/tests/**", "benches/**"]
"#;

const RUST_COMMANDS: &str = r#"
[[rules.required_commands]]
name = "tests"
run = "cargo test --all-targets"
timeout_secs = 1200

[[rules.required_commands]]
name = "lint"
run = "cargo fmt --all --check && cargo clippy --all-targets -- -D warnings"
timeout_secs = 900
"#;

const NODE_TDD: &str = r#"
[rules.tdd]
required = true
source = ["src/**", "lib/**"]
tests = ["test/**", "tests/**", "**/__tests__/**", "**/*.test.*", "**/*.spec.*"]
"#;

const NODE_COMMANDS: &str = r#"
[[rules.required_commands]]
name = "tests"
run = "npm ci && npm test"
timeout_secs = 900

[[rules.required_commands]]
name = "lint"
run = "npm run lint"
timeout_secs = 300
"#;

const PYTHON_TDD: &str = r#"
[rules.tdd]
required = true
source = ["src/**", "**/*.py"]
tests = ["tests/**", "**/test_*.py", "**/*_test.py"]
"#;

const PYTHON_COMMANDS: &str = r#"
[[rules.required_commands]]
name = "tests"
run = "python -m pytest -q"
timeout_secs = 900

[[rules.required_commands]]
name = "lint"
run = "ruff check ."
timeout_secs = 300
"#;

const GENERIC_TDD: &str = r#"
[rules.tdd]
required = false
"#;

const GENERIC_COMMANDS: &str = r#"
# [[rules.required_commands]]
# name = "tests"
# run = "make test"
# timeout_secs = 600
"#;
