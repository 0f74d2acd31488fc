//! The `[agent]` table: which agent runs, with which limits, and what it may see.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::agent::claude::ClaudeConfig;
use super::agent::command::CommandConfig;
use crate::executor::local::netproxy::{self, NetworkMode};
use crate::executor::local::sandbox::{SandboxConfig, SandboxMode};

/// The `[agent]` table (env `FOREMAN_AGENT_BACKEND`, `FOREMAN_AGENT_COMMAND`).
///
/// Durations are in seconds and may be fractional. Every limit applies to each session.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Which backend does the work: a name in [`super::agent::BACKENDS`], `claude` (default) or `command`.
    pub backend: String,
    /// `[agent.claude]`: the Claude Code CLI backend's section.
    pub claude: ClaudeConfig,
    /// `[agent.command]`: the command backend's section (the command line alone is accepted too).
    pub command: CommandConfig,
    /// Deprecated spelling of `agent.claude.path` (see [`Self::claude`]); both set to different values are refused.
    #[serde(rename = "claude_path")]
    pub deprecated_claude_path: Option<PathBuf>,
    /// Deprecated spelling of `agent.claude.permission_mode`; both set to different values are refused.
    #[serde(rename = "permission_mode")]
    pub deprecated_permission_mode: Option<String>,
    /// Deprecated spelling of `agent.claude.max_retries`; both set to different values are refused.
    #[serde(rename = "claude_max_retries")]
    pub deprecated_claude_max_retries: Option<u32>,
    /// The model the agent uses (`--model` for Claude); unset leaves the agent's default.
    pub model: Option<String>,
    /// `--max-turns`. Default 60. The CLI may run one turn more than this (its own accounting).
    pub max_turns: Option<u32>,
    /// `--max-budget-usd`: the CLI stops once the session has cost this much, in US dollars. Default 10 (an
    /// hour of a capable model on a large task stays under it; a runaway loop stops there). A repository's
    /// constitution can lower it, never raise it. An operator who wants more sets a larger amount (TOML has
    /// no way to unset a key that has a default).
    pub max_cost_usd: Option<f64>,
    /// The most one repository's sessions may cost per UTC day, in US dollars, summed from the costs the
    /// agent reports. Default 100 (ten sessions at the per-session cap). A constitution's
    /// `limits.daily_cost_usd` can lower it, never raise it; once spent, new sessions of the repository wait
    /// for the next UTC day. An operator who wants more sets a larger amount.
    pub daily_cost_usd: Option<f64>,
    /// `--allowedTools`, e.g. `["Bash", "Edit", "Write"]`. Default: the file and shell tools a coding agent needs,
    /// because `-p` denies anything that would prompt.
    pub allowed_tools: Vec<String>,
    /// `--disallowedTools`. Default: none.
    pub disallowed_tools: Vec<String>,
    /// Wall-clock limit for one session, in seconds. Default 3600 (an hour bounds the cost of a runaway agent).
    pub timeout_secs: f64,
    /// Stall limit: the session ends when the agent writes nothing for this many seconds. Default 600
    /// (the CLI prints a line per tool call and per message, so ten silent minutes mean it is stuck).
    pub stall_timeout_secs: f64,
    /// After SIGTERM to the agent's process group, seconds before SIGKILL. Default 10 (time to flush logs).
    pub kill_grace_secs: f64,
    /// Cap on the agent's stdout plus stderr, in bytes. Default 64 MiB; the session fails when it is passed.
    pub max_output_bytes: u64,
    /// A directory holding `coding.md`, `follow-up.md`, `planning.md` (and partials) that replace the built-in
    /// templates of the same name. Every template is checked at start.
    pub prompts_dir: Option<PathBuf>,
    /// Extra variables set in the agent's environment (e.g. `ANTHROPIC_BASE_URL`, `HTTPS_PROXY`, `HOME`).
    /// Foreman's own secrets may not be named here.
    pub env: BTreeMap<String, String>,
    /// Names of variables passed through from Foreman's environment, on top of the built-in allowlist
    /// (`PATH`, `HOME`, `LANG`, `TZ`, proxies, CA bundles …). Foreman's own secrets may not be named here.
    pub env_allow: Vec<String>,
    /// Author and committer name for the agent's commits. Default `foreman[bot]`.
    pub git_name: String,
    /// Author and committer e-mail for the agent's commits.
    pub git_email: String,
    /// Cleaned worktrees kept per repository for the next session (a fresh checkout of a large repository
    /// takes seconds; switching a kept one to a new branch touches only the files that differ). Default 2;
    /// 0 removes every worktree after its session.
    pub idle_worktrees_per_repo: usize,
    /// Cap on one session's JSON-lines log, in bytes. Default 16 MiB; past it, events are dropped (counted)
    /// and the summary is still written.
    pub log_max_bytes: u64,
    /// Session logs older than this many days are deleted. Default 14.
    pub log_retention_days: u32,
    /// `"on"` (default): every agent and required command runs in the bubblewrap sandbox
    /// ([`crate::executor::local::sandbox`]); no session starts when it cannot be created. `"off"`: no
    /// sandbox, the agent sees what Foreman sees; warned about at every start.
    pub sandbox: SandboxMode,
    /// The bubblewrap executable: a path, or a name looked up on `PATH`. Default `bwrap`.
    pub bwrap_path: PathBuf,
    /// Further host paths shown read-only inside the sandbox at the same path (toolchains installed outside
    /// `/usr`, e.g. `/opt/rust`). A path holding Foreman's data directory is never shown.
    pub sandbox_paths: Vec<PathBuf>,
    /// Host paths shown read-write inside the sandbox at the same path, shared by every session of every
    /// repository (a package cache, say): one session can leave there what the next one runs, so list only
    /// what that risk is acceptable for. A path holding Foreman's data directory is never shown.
    pub sandbox_writable_paths: Vec<PathBuf>,
    /// `RLIMIT_NPROC` for each sandbox: how many processes the agent's user may have. Default 4096; it does
    /// not hold for a Foreman running as root (see [`crate::executor::local::sandbox`]). Unset: no limit.
    pub max_processes: Option<u64>,
    /// `RLIMIT_DATA` for each process in the sandbox, in MiB: its heap and private writable memory; an
    /// allocation past it fails. Default 8192 (a large compile or test run fits; a runaway loop does not).
    /// Unset: no limit. See [`crate::executor::local::sandbox`].
    pub max_memory_mb: Option<u64>,
    /// What the sandbox can reach: `open` (default: the host's network), `none` (nothing), or `allowlist`
    /// (only [`Self::allowed_hosts`], through Foreman's proxy; see [`crate::executor::local::netproxy`]). `none` and
    /// `allowlist` need the sandbox.
    pub network: NetworkMode,
    /// For `network = "allowlist"`: `host`, `host:port`, `*.domain` or IP literal entries. Default
    /// `["api.anthropic.com"]`; a list set here replaces it (add the package registries the agent needs).
    pub allowed_hosts: Vec<String>,
    /// The `foreman` executable run as the sandbox's network bridge (`foreman sandbox-bridge`) when
    /// `network = "allowlist"`. Default: this process's own executable.
    pub bridge_path: Option<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            backend: "claude".into(),
            claude: ClaudeConfig::default(),
            command: CommandConfig::default(),
            deprecated_claude_path: None,
            deprecated_permission_mode: None,
            deprecated_claude_max_retries: None,
            model: None,
            max_turns: Some(60),
            max_cost_usd: Some(DEFAULT_MAX_COST_USD),
            daily_cost_usd: Some(DEFAULT_DAILY_COST_USD),
            allowed_tools: ["Bash", "Edit", "MultiEdit", "Write", "Read", "Glob", "Grep", "LS", "TodoWrite"]
                .map(String::from)
                .to_vec(),
            disallowed_tools: Vec::new(),
            timeout_secs: 3600.0,
            stall_timeout_secs: 600.0,
            kill_grace_secs: 10.0,
            max_output_bytes: 64 << 20,
            prompts_dir: None,
            env: BTreeMap::new(),
            env_allow: Vec::new(),
            git_name: "foreman[bot]".into(),
            git_email: "foreman[bot]@users.noreply.github.com".into(),
            idle_worktrees_per_repo: 2,
            log_max_bytes: 16 << 20,
            log_retention_days: 14,
            sandbox: SandboxMode::On,
            bwrap_path: PathBuf::from("bwrap"),
            sandbox_paths: Vec::new(),
            sandbox_writable_paths: Vec::new(),
            max_processes: Some(4096),
            max_memory_mb: Some(8192),
            network: NetworkMode::Open,
            allowed_hosts: netproxy::default_allowed_hosts(),
            bridge_path: None,
        }
    }
}

/// The default `agent.max_cost_usd`: US dollars one session may cost.
pub const DEFAULT_MAX_COST_USD: f64 = 10.0;
/// The default `agent.daily_cost_usd`: US dollars one repository's sessions may cost per UTC day.
pub const DEFAULT_DAILY_COST_USD: f64 = 100.0;

impl AgentConfig {
    /// This configuration with a repository's `[agent]` overrides applied. The server's limits are ceilings
    /// ([`crate::constitution::ceilings`]): turns, cost, wall time, stall time and output take the smaller of
    /// the two; allowed tools are the overrides' among the server's; disallowed tools are the union. The model
    /// is the repository's choice (the cost cap bounds it). `backend` is not switched per repository (the
    /// server configures one agent command); it is ignored.
    pub fn overridden(&self, o: Option<&crate::constitution::AgentOverrides>) -> AgentConfig {
        use crate::constitution::ceilings::{tools_union, tools_within};
        fn tighter<T: PartialOrd + Copy>(server: Option<T>, asked: Option<T>) -> Option<T> {
            match (server, asked) {
                (Some(s), Some(a)) if a < s => Some(a),
                (Some(s), _) => Some(s),
                (None, a) => a,
            }
        }
        let mut c = self.clone();
        let Some(o) = o else { return c };
        if let Some(m) = &o.model {
            c.model = Some(m.clone());
        }
        c.max_turns = tighter(self.max_turns, o.max_turns);
        c.max_cost_usd = tighter(self.max_cost_usd, o.max_cost_usd);
        if let Some(tools) = &o.allowed_tools {
            c.allowed_tools = tools_within(&self.allowed_tools, tools);
        }
        c.disallowed_tools = tools_union(&self.disallowed_tools, &o.disallowed_tools);
        if let Some(secs) = o.timeout_secs {
            c.timeout_secs = self.timeout_secs.min(secs as f64);
        }
        if let Some(secs) = o.stall_timeout_secs {
            c.stall_timeout_secs = self.stall_timeout_secs.min(secs as f64);
        }
        if let Some(bytes) = o.max_output_bytes {
            c.max_output_bytes = self.max_output_bytes.min(bytes);
        }
        // `agent.network` joins here with the network policy: the narrower of the server's and the
        // repository's (`open` > `allowlist` > `none`; an allowlist within the server's).
        c
    }

    /// Checks the values; the error names the key (`agent.…`) and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        netproxy::Allowlist::parse(&self.allowed_hosts, "agent.allowed_hosts")?;
        if self.network != NetworkMode::Open && self.sandbox == SandboxMode::Off {
            return Err(format!(
                "agent.network = \"{}\" needs the sandbox: remove agent.sandbox = \"off\"",
                if self.network == NetworkMode::None { "none" } else { "allowlist" }
            ));
        }
        // Both spellings of one key, with different values: which one the operator meant is unknown.
        let (section, default) = (&self.claude, ClaudeConfig::default());
        for (old, new, differ) in [
            (
                "claude_path",
                "path",
                self.deprecated_claude_path
                    .as_ref()
                    .is_some_and(|p| section.path != default.path && *p != section.path),
            ),
            (
                "permission_mode",
                "permission_mode",
                self.deprecated_permission_mode.as_ref().is_some_and(|m| {
                    section.permission_mode != default.permission_mode && *m != section.permission_mode
                }),
            ),
            (
                "claude_max_retries",
                "max_retries",
                self.deprecated_claude_max_retries.is_some_and(|n| section.max_retries.is_some_and(|s| s != n)),
            ),
        ] {
            if differ {
                return Err(format!(
                    "agent.{old} (deprecated) and agent.claude.{new} are both set, to different values: keep only \
                     agent.claude.{new}"
                ));
            }
        }
        // The backend's own section (and the name itself).
        super::agent::build(self, super::agent::claude::Credentials::default())?;
        for (key, v) in [
            ("agent.timeout_secs", self.timeout_secs),
            ("agent.stall_timeout_secs", self.stall_timeout_secs),
            ("agent.kill_grace_secs", self.kill_grace_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{key} must be a positive number of seconds"));
            }
        }
        if let Some(c) = self.max_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err("agent.max_cost_usd must be a positive amount".into());
        }
        if let Some(c) = self.daily_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err("agent.daily_cost_usd must be a positive amount".into());
        }
        if self.max_turns == Some(0) {
            return Err("agent.max_turns must be at least 1".into());
        }
        if self.max_output_bytes == 0 || self.log_max_bytes == 0 || self.log_retention_days == 0 {
            return Err(
                "agent.max_output_bytes, agent.log_max_bytes and agent.log_retention_days must be at least 1".into()
            );
        }
        if self.max_processes == Some(0) {
            return Err("agent.max_processes must be at least 1 (or unset for no limit)".into());
        }
        if self.max_memory_mb.is_some_and(|mb| mb < 64) {
            return Err("agent.max_memory_mb must be at least 64 MiB (or unset for no limit)".into());
        }
        for name in self.env.keys().chain(self.env_allow.iter()) {
            if super::env::is_forbidden(name) {
                return Err(format!(
                    "agent.env / agent.env_allow may not name {name}: Foreman's secrets never reach the agent"
                ));
            }
        }
        Ok(())
    }

    /// The Claude backend's section, with the deprecated flat keys (`agent.claude_path`,
    /// `agent.permission_mode`, `agent.claude_max_retries`) applied over it where set.
    pub fn claude(&self) -> ClaudeConfig {
        let mut c = self.claude.clone();
        if let Some(path) = &self.deprecated_claude_path {
            c.path = path.clone();
        }
        if let Some(mode) = &self.deprecated_permission_mode {
            c.permission_mode = mode.clone();
        }
        if let Some(n) = self.deprecated_claude_max_retries {
            c.max_retries = Some(n);
        }
        c
    }

    /// The local sandbox's settings (`agent.sandbox` and the keys beside it).
    pub fn sandbox_config(&self) -> SandboxConfig {
        SandboxConfig {
            mode: self.sandbox,
            bwrap_path: self.bwrap_path.clone(),
            read_only_paths: self.sandbox_paths.clone(),
            writable_paths: self.sandbox_writable_paths.clone(),
            max_processes: self.max_processes,
            max_memory_mb: self.max_memory_mb,
            bridge_path: self.bridge_path.clone(),
        }
    }

    /// What a session asks of the network (`agent.network`, `agent.allowed_hosts`).
    pub fn network_policy(&self) -> crate::executor::NetworkPolicy {
        crate::executor::NetworkPolicy { mode: self.network, allowed_hosts: self.allowed_hosts.clone() }
    }

    /// The server's agent limits as ceilings for constitutions ([`crate::constitution::ceilings`]).
    pub fn ceilings(&self) -> crate::constitution::Ceilings {
        crate::constitution::Ceilings {
            backend: Some(self.backend.clone()),
            model: self.model.clone(),
            max_cost_usd: self.max_cost_usd,
            max_turns: self.max_turns,
            timeout_secs: Some(self.timeout_secs),
            stall_timeout_secs: Some(self.stall_timeout_secs),
            max_output_bytes: Some(self.max_output_bytes),
            allowed_tools: Some(self.allowed_tools.clone()),
            disallowed_tools: self.disallowed_tools.clone(),
            daily_cost_usd: self.daily_cost_usd,
            triggers: None,
        }
    }

    /// [`Self::timeout_secs`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    /// [`Self::stall_timeout_secs`] as a duration.
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.stall_timeout_secs)
    }

    /// [`Self::kill_grace_secs`] as a duration.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs_f64(self.kill_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type
    fn the_backend_and_command_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOREMAN_AGENT_BACKEND", "command");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("FOREMAN_AGENT_COMMAND"), "{e}");
            jail.set_env("FOREMAN_AGENT_COMMAND", "aider --yes");
            let c = Config::load(None).unwrap();
            assert_eq!(c.agent.backend, "command");
            assert_eq!(c.agent.command.run.as_deref(), Some("aider --yes"));
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "f.toml",
                "[agent]\nmax_turns = 5\nstall_timeout_secs = 0.5\nenv = { HOME = \"/tmp/h\" }\n",
            )?;
            let c = Config::load(Some(std::path::Path::new("f.toml"))).unwrap();
            assert_eq!(c.agent.max_turns, Some(5));
            assert_eq!(c.agent.stall_timeout().as_millis(), 500);
            assert_eq!(c.agent.backend, "claude");
            jail.create_file("g.toml", "[agent]\nenv_allow = [\"GITHUB_WEBHOOK_SECRET\"]\n")?;
            let e = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err().to_string();
            assert!(e.contains("GITHUB_WEBHOOK_SECRET"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type
    fn backend_sections_old_spellings_and_bad_keys() {
        let load = |jail: &mut figment::Jail, toml: &str| {
            jail.create_file("f.toml", toml).unwrap();
            Config::load(Some(std::path::Path::new("f.toml"))).map_err(|e| e.to_string())
        };
        figment::Jail::expect_with(|jail| {
            let c = load(jail, "[agent.claude]\npath = \"/opt/claude\"\nmax_retries = 2\npermission_mode = \"plan\"\n")
                .unwrap();
            let claude = c.agent.claude();
            assert_eq!(claude.path, std::path::Path::new("/opt/claude"));
            assert_eq!((claude.max_retries, claude.permission_mode.as_str()), (Some(2), "plan"));
            // The spellings from before the sections mean what they did.
            let c = load(
                jail,
                "[agent]\nclaude_path = \"/old/claude\"\nclaude_max_retries = 0\npermission_mode = \"auto\"\n",
            )
            .unwrap();
            let claude = c.agent.claude();
            assert_eq!(claude.path, std::path::Path::new("/old/claude"));
            assert_eq!((claude.max_retries, claude.permission_mode.as_str()), (Some(0), "auto"));
            let e = load(jail, "[agent]\nclaude_path = \"/a\"\n[agent.claude]\npath = \"/b\"\n").unwrap_err();
            assert!(e.contains("agent.claude_path") && e.contains("agent.claude.path"), "{e}");
            // The command line as a section or alone.
            let c = load(jail, "[agent]\nbackend = \"command\"\n[agent.command]\nrun = \"aider --yes\"\n").unwrap();
            assert_eq!(c.agent.command.run.as_deref(), Some("aider --yes"));
            let c = load(jail, "[agent]\nbackend = \"command\"\ncommand = \"aider --yes\"\n").unwrap();
            assert_eq!(c.agent.command.run.as_deref(), Some("aider --yes"));
            // A bad key names the key; an unknown backend names the known ones.
            let e = load(jail, "[agent.claude]\npaht = \"/x\"\n").unwrap_err();
            assert!(e.contains("paht"), "{e}");
            let e = load(jail, "[agent.command]\nrn = \"x\"\n").unwrap_err();
            assert!(e.contains("rn"), "{e}");
            let e = load(jail, "[agent.claude]\npermission_mode = \"yolo\"\n").unwrap_err();
            assert!(e.contains("agent.claude.permission_mode"), "{e}");
            let e = load(jail, "[agent]\nbackend = \"aider\"\n").unwrap_err();
            assert!(e.contains("agent.backend") && e.contains("claude, command"), "{e}");
            Ok(())
        });
    }
}
