//! The `[agent.claude]` section: how the Claude Code CLI is started.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[agent.claude]` section. The limits the CLI enforces (`agent.model`, `agent.max_turns`,
/// `agent.max_cost_usd`, `agent.allowed_tools`, `agent.disallowed_tools`) stay in `[agent]`: they are the
/// ceilings a repository's constitution can tighten, whatever the backend.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaudeConfig {
    /// The Claude Code executable: a path, or a name looked up on `PATH`. Default `claude`. Deprecated
    /// spelling: `agent.claude_path`.
    pub path: PathBuf,
    /// `--permission-mode`: `acceptEdits` (default), `auto`, `bypassPermissions`, `dontAsk`, `plan`, `manual`,
    /// `default`. The CLI refuses `bypassPermissions` when run as root. Deprecated spelling:
    /// `agent.permission_mode`.
    pub permission_mode: String,
    /// `CLAUDE_CODE_MAX_RETRIES`: how often the CLI itself retries a failed API call (its default is 10,
    /// about 3 minutes of backoff). Unset leaves the CLI's default. Deprecated spelling:
    /// `agent.claude_max_retries`.
    pub max_retries: Option<u32>,
}

impl Default for ClaudeConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("claude"), permission_mode: "acceptEdits".into(), max_retries: None }
    }
}

/// Permission modes the CLI 2.1.329 accepts (`claude --help`).
const PERMISSION_MODES: &[&str] = &["acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan", "default"];

impl ClaudeConfig {
    /// Checks the values; the error names the key (`agent.claude.…`) and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !PERMISSION_MODES.contains(&self.permission_mode.as_str()) {
            return Err(format!(
                "agent.claude.permission_mode must be one of {}, got '{}'",
                PERMISSION_MODES.join(", "),
                self.permission_mode
            ));
        }
        Ok(())
    }
}
