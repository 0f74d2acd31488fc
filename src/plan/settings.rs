//! The constitution's `[plan]` table: how a plan is approved and run, where its cards go, how large it
//! may be.

use serde::{Deserialize, Serialize};

/// Who approves a plan before its issues are created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproveMode {
    /// `/foreman approve` by someone with its permission (the default).
    #[default]
    Manual,
    /// Created as soon as the plan is ready and valid.
    Auto,
}

/// What happens to the created issues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Each waits for its own trigger (label, board, `/foreman run`) unless the planned issue carries the
    /// trigger label (the default).
    #[default]
    Manual,
    /// Every created task is queued at approval and starts once its blockers are closed.
    Auto,
}

/// The `[plan]` table of `.github/foreman.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanSettings {
    /// `"manual"` (default): `/foreman approve` creates the issues; `"auto"`: created when the plan is ready.
    pub approve: ApproveMode,
    /// `"manual"` (default): created issues wait for their own trigger (or are queued when the planned issue
    /// has the trigger label); `"auto"`: all queued at approval.
    pub run: RunMode,
    /// The board column (Status option) the created issues' cards are put in. Default `Backlog`.
    pub column: String,
    /// The most tasks one plan may have, 1 or more. Default 50.
    pub max_tasks: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            approve: ApproveMode::Manual,
            run: RunMode::Manual,
            column: "Backlog".into(),
            max_tasks: super::DEFAULT_MAX_TASKS as u32,
        }
    }
}
