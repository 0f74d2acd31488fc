//! The `[triggers]` table of foreman.toml: what label, board column or command means work, and who may
//! give which command. Every key and default is listed in `docs/commands.md`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::{Command, CommandName};

/// The `[triggers]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecideConfig {
    /// The label that queues an issue when added. Default `foreman`. Compared case-insensitively, as
    /// GitHub does for label names.
    pub label: String,
    /// Removing the label cancels a running job too, not only a queued one. Default `false`: a running
    /// job is left to finish.
    pub cancel_on_unlabel: bool,
    /// The name of the single-select field whose options are the board's columns. Default `Status`.
    pub status_field: String,
    /// Columns that queue the issue behind a card moved into them. Default `["Ready"]`.
    pub trigger_columns: Vec<String>,
    /// Columns that cancel the job when its card is moved into them. Default `["Backlog", "Todo"]`.
    pub stop_columns: Vec<String>,
    /// The GitHub App's slug: commands may be written `@<slug> run`, and the app's own account is
    /// `<slug>[bot]`. Default `foreman`.
    pub app_slug: String,
    /// Bot logins (e.g. `renovate[bot]`) whose labels, board moves and commands are obeyed. Default empty:
    /// bots, Foreman's own account included, never trigger work.
    pub allowed_bots: Vec<String>,
    /// A link to the command reference (e.g. this project's docs/commands.md) for help and error replies.
    /// Default none: replies point at `/foreman help` only.
    pub help_url: Option<String>,
    /// The permission each command needs.
    pub permissions: CommandPermissions,
}

impl Default for DecideConfig {
    fn default() -> Self {
        Self {
            label: "foreman".into(),
            cancel_on_unlabel: false,
            status_field: "Status".into(),
            trigger_columns: vec!["Ready".into()],
            stop_columns: vec!["Backlog".into(), "Todo".into()],
            app_slug: "foreman".into(),
            allowed_bots: Vec::new(),
            help_url: None,
            permissions: CommandPermissions::default(),
        }
    }
}

impl DecideConfig {
    /// Whether `login` is an allowlisted bot (case-insensitive).
    pub fn bot_allowed(&self, login: &str) -> bool {
        self.allowed_bots.iter().any(|b| b.eq_ignore_ascii_case(login))
    }
}

/// The `[triggers.permissions]` table: one key per command, so a command cannot be left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandPermissions {
    /// `run`. Default `write`.
    pub run: Level,
    /// `plan`. Default `write`.
    pub plan: Level,
    /// `stop`. Default `write`.
    pub stop: Level,
    /// `retry`. Default `write`.
    pub retry: Level,
    /// `status`. Default `anyone`.
    pub status: Level,
    /// `help`. Default `anyone`.
    pub help: Level,
    /// `constitution` (showing the effective rules). Default `anyone`.
    pub constitution: Level,
    /// `constitution init` (opening a pull request with a starter file). Default `write`.
    pub constitution_init: Level,
    /// `/foreman approve`: create a plan's tasks as issues. Default write.
    pub approve: Level,
}

impl Default for CommandPermissions {
    fn default() -> Self {
        Self {
            run: Level::Write,
            plan: Level::Write,
            stop: Level::Write,
            retry: Level::Write,
            status: Level::Anyone,
            help: Level::Anyone,
            constitution: Level::Anyone,
            constitution_init: Level::Write,
            approve: Level::Write,
        }
    }
}

impl CommandPermissions {
    /// The level a parsed command needs: as [`CommandPermissions::for_command`], except that
    /// `constitution init` needs `constitution_init`.
    pub fn for_parsed(&self, command: &Command) -> Level {
        match command {
            Command::Constitution { init: Some(_) } => self.constitution_init,
            c => self.for_command(c.name()),
        }
    }

    /// Every key of the table with its level, in the table's order: `("run", level)`, …,
    /// `("constitution_init", level)`. The keys are the serde names of the fields. Written as an
    /// exhaustive destructuring, so a field added to the table does not compile until it is listed here,
    /// and so until a repository's constitution can set it ([`crate::constitution::Effective::decide_config`]).
    pub fn entries(&self) -> [(&'static str, Level); 9] {
        let CommandPermissions { run, plan, stop, retry, status, help, constitution, constitution_init, approve } =
            self;
        [
            ("run", *run),
            ("plan", *plan),
            ("stop", *stop),
            ("retry", *retry),
            ("status", *status),
            ("help", *help),
            ("constitution", *constitution),
            ("constitution_init", *constitution_init),
            ("approve", *approve),
        ]
    }

    /// The same keys as [`CommandPermissions::entries`], each with a place to set its level.
    pub fn entries_mut(&mut self) -> [(&'static str, &mut Level); 9] {
        let CommandPermissions { run, plan, stop, retry, status, help, constitution, constitution_init, approve } =
            self;
        [
            ("run", run),
            ("plan", plan),
            ("stop", stop),
            ("retry", retry),
            ("status", status),
            ("help", help),
            ("constitution", constitution),
            ("constitution_init", constitution_init),
            ("approve", approve),
        ]
    }

    /// The level `command` needs (for `constitution`, showing; see [`CommandPermissions::for_parsed`]).
    pub fn for_command(&self, command: CommandName) -> Level {
        match command {
            CommandName::Run => self.run,
            CommandName::Plan => self.plan,
            CommandName::Approve => self.approve,
            CommandName::Stop => self.stop,
            CommandName::Retry => self.retry,
            CommandName::Status => self.status,
            CommandName::Help => self.help,
            CommandName::Constitution => self.constitution,
        }
    }
}

/// A permission on a repository, ordered from least to most. The named levels are GitHub's repository
/// roles (`role_name` of GET /repos/{owner}/{repo}/collaborators/{username}/permission);
/// `anyone` means no check at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Anybody who can comment, including people with no role on the repository.
    Anyone,
    /// Read access.
    Read,
    /// Triage: may label and close, not push.
    Triage,
    /// Write: may push.
    Write,
    /// Maintain: may manage the repository without admin rights.
    Maintain,
    /// Admin.
    Admin,
}

impl Level {
    /// Reads GitHub's answer to GET /repos/{owner}/{repo}/collaborators/{username}/permission: its
    /// `role_name` (`admin`, `maintain`, `write`, `triage`, `read`, or a custom role's name) or, failing
    /// that, its older `permission` (`admin`, `write`, `read`, `none`). `none` and unknown names are `None`:
    /// no permission beyond `anyone`. For a custom role, pass `permission` instead.
    pub fn from_github(name: &str) -> Option<Level> {
        match name.to_ascii_lowercase().as_str() {
            "admin" => Some(Level::Admin),
            "maintain" => Some(Level::Maintain),
            "write" | "push" => Some(Level::Write),
            "triage" => Some(Level::Triage),
            "read" | "pull" => Some(Level::Read),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Anyone => "anyone",
            Level::Read => "read",
            Level::Triage => "triage",
            Level::Write => "write",
            Level::Maintain => "maintain",
            Level::Admin => "admin",
        })
    }
}
