//! The shape of `.github/foreman.toml`: five tables, `[triggers]`, `[agent]`, `[limits]`, `[rules]` and `[plan]`.
//! Every key has a built-in default, so an empty file (or none at all) is a valid constitution.
//! Unknown keys are refused. Every key and default is listed in `docs/constitution.md`.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decide::{CommandPermissions, DecideConfig};

/// A whole constitution: the effective one after merging, or one layer read on its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Constitution {
    /// What queues work and who may command Foreman.
    pub triggers: Triggers,
    /// Repository-level overrides of how the coding agent runs.
    pub agent: AgentOverrides,
    /// Concurrency and daily budgets.
    pub limits: Limits,
    /// The rules every session's outcome is checked against before anything is pushed.
    pub rules: Rules,
    /// How plans are approved and run (`[plan]`).
    pub plan: crate::plan::PlanSettings,
}

/// The `[triggers]` table: the repository-settable part of [`DecideConfig`] (everything but the app's
/// slug, which belongs to the installation, not the repository). Defaults are `DecideConfig::default()`'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Triggers {
    /// The label that queues an issue when added. Default `foreman`.
    pub label: String,
    /// Removing the label cancels a running job too. Default `false`.
    pub cancel_on_unlabel: bool,
    /// The single-select field whose options are the board's columns. Default `Status`.
    pub status_field: String,
    /// Columns that queue an issue whose card moves into them. Default `["Ready"]`.
    pub trigger_columns: Vec<String>,
    /// Columns that cancel an issue's job when its card moves into them. Default `["Backlog", "Todo"]`.
    pub stop_columns: Vec<String>,
    /// Bot logins whose labels, board moves and commands are obeyed. Default empty.
    pub allowed_bots: Vec<String>,
    /// A link to the command reference for help and error replies. Default none.
    pub help_url: Option<String>,
    /// The permission each command needs (`[triggers.permissions]`).
    pub permissions: CommandPermissions,
}

impl Default for Triggers {
    fn default() -> Self {
        let d = DecideConfig::default();
        Self {
            label: d.label,
            cancel_on_unlabel: d.cancel_on_unlabel,
            status_field: d.status_field,
            trigger_columns: d.trigger_columns,
            stop_columns: d.stop_columns,
            allowed_bots: d.allowed_bots,
            help_url: d.help_url,
            permissions: d.permissions,
        }
    }
}

impl Triggers {
    /// The decide configuration for this repository: `base` (the server's `[triggers]`, which carries the
    /// app slug) with every repository-settable field taken from `self`. See [`Self::over`] to keep the
    /// server's values where the repository and organisation say nothing.
    pub fn to_decide_config(&self, base: &DecideConfig) -> DecideConfig {
        DecideConfig {
            label: self.label.clone(),
            cancel_on_unlabel: self.cancel_on_unlabel,
            status_field: self.status_field.clone(),
            trigger_columns: self.trigger_columns.clone(),
            stop_columns: self.stop_columns.clone(),
            app_slug: base.app_slug.clone(),
            allowed_bots: self.allowed_bots.clone(),
            help_url: self.help_url.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

impl super::load::Effective {
    /// The decide configuration for this repository: the server's `base`, with each `[triggers]` value the
    /// organisation's or the repository's file sets (its origin is not the built-in default) taken from them.
    pub fn decide_config(&self, base: &DecideConfig) -> DecideConfig {
        // Destructured without `..`: a key added to `[triggers]` does not compile until it is taken here.
        let Triggers {
            label,
            cancel_on_unlabel,
            status_field,
            trigger_columns,
            stop_columns,
            allowed_bots,
            help_url,
            permissions,
        } = &self.constitution.triggers;
        let set = |key: &str| self.origin(&format!("triggers.{key}")) != super::load::Origin::Default;
        let mut c = base.clone();
        if set("label") {
            c.label = label.clone();
        }
        if set("cancel_on_unlabel") {
            c.cancel_on_unlabel = *cancel_on_unlabel;
        }
        if set("status_field") {
            c.status_field = status_field.clone();
        }
        if set("trigger_columns") {
            c.trigger_columns = trigger_columns.clone();
        }
        if set("stop_columns") {
            c.stop_columns = stop_columns.clone();
        }
        if set("allowed_bots") {
            c.allowed_bots = allowed_bots.clone();
        }
        if set("help_url") {
            c.help_url = help_url.clone();
        }
        for ((name, slot), (_, level)) in c.permissions.entries_mut().into_iter().zip(permissions.entries()) {
            if set(&format!("permissions.{name}")) {
                *slot = level;
            }
        }
        c
    }
}

impl super::load::Effective {
    /// Takes the server's `[triggers]` (`base`) for every key no file sets, as [`Self::decide_config`] applies
    /// them, so the effective constitution shows what applies; a key whose server value differs from the
    /// built-in default gets the origin [`super::load::Origin::Server`].
    pub fn apply_server_triggers(&mut self, base: &DecideConfig) {
        let applied = self.decide_config(base);
        let shown = Triggers {
            label: applied.label,
            cancel_on_unlabel: applied.cancel_on_unlabel,
            status_field: applied.status_field,
            trigger_columns: applied.trigger_columns,
            stop_columns: applied.stop_columns,
            allowed_bots: applied.allowed_bots,
            help_url: applied.help_url,
            permissions: applied.permissions,
        };
        let builtin = serde_json::to_value(Triggers::default()).unwrap_or_default();
        let now = serde_json::to_value(&shown).unwrap_or_default();
        let mut leaves = Vec::new();
        if let Some(map) = now.as_object() {
            for (k, v) in map {
                match v.as_object() {
                    Some(inner) => leaves.extend(inner.iter().map(|(ik, iv)| (format!("{k}.{ik}"), iv))),
                    None => leaves.push((k.clone(), v)),
                }
            }
        }
        for (key, value) in leaves {
            let full = format!("triggers.{key}");
            let default = key.split('.').fold(&builtin, |v, part| &v[part]);
            if self.origin(&full) == super::load::Origin::Default && value != default {
                self.origins.insert(full, super::load::Origin::Server);
            }
        }
        self.constitution.triggers = shown;
    }
}

/// The `[agent]` table: what a repository may override about its coding sessions. Unset (`None`) means
/// the server's own agent configuration applies; the session module maps these onto its settings. The
/// server's limits are ceilings ([`super::ceilings`]): a limit set here can only tighten the server's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentOverrides {
    /// The backend's name as the server configures it (e.g. `claude`). Default: the server's.
    pub backend: Option<String>,
    /// The model, passed to the backend as is (e.g. `claude-sonnet-4-5`). Default: the server's.
    pub model: Option<String>,
    /// The most agent turns in one session. Default, and ceiling: the server's.
    pub max_turns: Option<u32>,
    /// The most one session may cost, in US dollars. Default, and ceiling: the server's.
    #[serde(deserialize_with = "non_negative")]
    pub max_cost_usd: Option<f64>,
    /// Tools the agent may use (Claude Code `--allowedTools` syntax, e.g. `Bash(cargo test:*)`), among the
    /// server's (a narrowing such as `Bash(cargo test:*)` of a tool the server allows whole counts).
    /// Default: the server's.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools the agent may not use (`--disallowedTools`). Added to the server's, never replacing them.
    /// Default empty.
    pub disallowed_tools: Vec<String>,
    /// Wall-clock limit of one session, in seconds. Default, and ceiling: the server's.
    pub timeout_secs: Option<u64>,
    /// Limit on a session producing no output, in seconds: the server's `agent.stall_timeout_secs`, under
    /// the same name. `idle_timeout_secs`, its old name, is still read. Default, and ceiling: the server's.
    #[serde(alias = "idle_timeout_secs")]
    pub stall_timeout_secs: Option<u64>,
    /// Cap on one session's output (stdout plus stderr), in bytes. Default, and ceiling: the server's.
    pub max_output_bytes: Option<u64>,
    /// Where the agent runs: `local` (Foreman's host) or `actions` (a GitHub Actions runner). Honoured only
    /// where the operator allows it (`executor.allow_repository_choice`). Default: the server's
    /// `executor.kind`.
    pub executor: Option<crate::executor::ExecutorKind>,
}

/// The `[limits]` table: how much Foreman does for this repository at once and per day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sessions running at once for this repository. Default 1. Must be at least 1.
    pub concurrency: NonZeroU32,
    /// The most the repository's sessions may cost per UTC day, in US dollars. Default none (no limit).
    #[serde(deserialize_with = "non_negative")]
    pub daily_cost_usd: Option<f64>,
    /// The most sessions the repository may start per UTC day. Default none (no limit).
    pub daily_sessions: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { concurrency: NonZeroU32::MIN, daily_cost_usd: None, daily_sessions: None }
    }
}

/// The `[rules]` table: checked by Foreman on every session's outcome, and written into the prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Paths that must never be added, modified, deleted or renamed, as globs. Default
    /// `[".github/workflows/**", ".github/foreman.toml"]` (CI, and the constitution itself: an agent does not
    /// rewrite its own rules); setting the key replaces the list.
    pub protected_paths: Vec<PathGlob>,
    /// If not empty, the only paths a change may touch, as globs. Default empty: anywhere.
    pub allowed_paths: Vec<PathGlob>,
    /// The most files one change may touch. Default none (no limit).
    pub max_files_changed: Option<u32>,
    /// The most lines one change may add plus delete (binary files count 0). Default none (no limit).
    pub max_lines_changed: Option<u32>,
    /// Commands that must pass in the workspace before a pull request opens. Default none.
    pub required_commands: Vec<RequiredCommand>,
    /// Tests required when source changes (`[rules.tdd]`).
    pub tdd: Tdd,
    /// Check added lines against the built-in token formats (GitHub, AWS, Anthropic, private keys).
    /// Default `true`.
    pub builtin_secret_patterns: bool,
    /// More patterns that must not appear on added lines, as regular expressions (Rust `regex` syntax).
    /// Default empty.
    pub secret_patterns: Vec<SecretPattern>,
    /// The prefix of the branch Foreman pushes. Default `foreman/`.
    pub branch_prefix: String,
    /// Free text for the prompt: where and how the project is deployed. Default none.
    pub deployment_target: Option<String>,
    /// Free text for the prompt: how secrets and environment variables are named. Default none.
    pub secret_naming: Option<String>,
    /// Free text for the prompt: the project's coding standards. Default none.
    pub coding_standards: Option<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            protected_paths: [".github/workflows/**", super::load::PATH]
                .map(|g| PathGlob::new(g).expect("a valid glob"))
                .to_vec(),
            allowed_paths: Vec::new(),
            max_files_changed: None,
            max_lines_changed: None,
            required_commands: Vec::new(),
            tdd: Tdd::default(),
            builtin_secret_patterns: true,
            secret_patterns: Vec::new(),
            branch_prefix: "foreman/".into(),
            deployment_target: None,
            secret_naming: None,
            coding_standards: None,
        }
    }
}

/// One `[[rules.required_commands]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredCommand {
    /// A short name for reports, e.g. `tests`. Required.
    pub name: String,
    /// The command line, run by `sh -c` in the workspace root. Required.
    pub run: String,
    /// Wall-clock limit in seconds; the command's whole process group is killed when it is reached.
    /// Default 600 (ten minutes: a full test suite on a small machine). Must be at least 1.
    #[serde(default = "default_command_timeout")]
    pub timeout_secs: NonZeroU64,
}

fn default_command_timeout() -> NonZeroU64 {
    NonZeroU64::new(600).expect("not zero")
}

/// Reads an optional amount of money that must not be negative (nor NaN).
fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(d)?;
    if value >= 0.0 && value.is_finite() {
        Ok(Some(value))
    } else {
        Err(serde::de::Error::custom(format!("expected an amount of US dollars, 0 or more; found {value}")))
    }
}

/// The `[rules.tdd]` table: a change that touches source must also touch tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tdd {
    /// Whether the rule is checked. Default `false`.
    pub required: bool,
    /// What counts as source. Default `["src/**", "lib/**", "app/**"]`.
    pub source: Vec<PathGlob>,
    /// What counts as a test; a path matching both counts as a test. Default `["tests/**", "test/**",
    /// "spec/**", "**/*_test.*", "**/*.test.*", "**/*.spec.*", "**/test_*.py"]`.
    pub tests: Vec<PathGlob>,
}

impl Default for Tdd {
    fn default() -> Self {
        let globs = |list: &[&str]| list.iter().map(|g| PathGlob::new(g).expect("a valid glob")).collect();
        Self {
            required: false,
            source: globs(&["src/**", "lib/**", "app/**"]),
            tests: globs(&[
                "tests/**",
                "test/**",
                "spec/**",
                "**/*_test.*",
                "**/*.test.*",
                "**/*.spec.*",
                "**/test_*.py",
            ]),
        }
    }
}

/// A path glob (`globset` syntax, `/` as separator, `**` across directories), checked when read.
#[derive(Clone, Debug)]
pub struct PathGlob {
    text: String,
    glob: globset::Glob,
}

impl PathGlob {
    /// Parses a glob. `*` does not cross `/`; `**` does.
    ///
    /// # Errors
    /// The glob's syntax error, e.g. an unclosed `[`.
    pub fn new(text: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(text).literal_separator(true).build()?;
        Ok(Self { text: text.to_owned(), glob })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The compiled glob.
    pub fn glob(&self) -> &globset::Glob {
        &self.glob
    }
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for PathGlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PathGlob::new(&text).map_err(|e| serde::de::Error::custom(format!("invalid glob `{text}`: {}", e.kind())))
    }
}

/// A secret pattern (Rust `regex` syntax), checked when read.
#[derive(Clone, Debug)]
pub struct SecretPattern {
    regex: regex::Regex,
}

impl SecretPattern {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// The regular expression's syntax error.
    pub fn new(text: &str) -> Result<Self, regex::Error> {
        Ok(Self { regex: regex::Regex::new(text)? })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The compiled pattern.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

impl PartialEq for SecretPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for SecretPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SecretPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SecretPattern::new(&text).map_err(|e| {
            // regex's message spans several lines with a caret diagram; the first line names the fault.
            let message = e.to_string();
            let last = message.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
            serde::de::Error::custom(format!("invalid regular expression `{text}`: {last}"))
        })
    }
}
