//! What Foreman and a runner's `foreman session --connect` say to each other, over HTTP with the session
//! token as a bearer token (docs/actions.md):
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST {session URL}/connect` | — (the dispatch token) | [`Connected`]: the spec and the connection token |
//! | `GET {session URL}/bundle` | — | the git bundle of the session's branch at its base |
//! | `POST {session URL}/events` | a JSON array of [`Event`] | 204 |
//! | `PUT {session URL}/bundle` | the git bundle of the branch after the agent (`base..branch`) | 204 |
//! | `POST {session URL}/result` | [`RemoteResult`] | 204; the token is revoked |
//!
//! Every request but `connect` carries the connection token, which `connect` hands out once in exchange for
//! the dispatch token (the one in the workflow's inputs, which a run's log may show): the dispatch token is
//! then spent.
//!
//! The session URL is `<executor base URL>/remote/sessions/<session id>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::session::{AgentConfig, AgentEnd, AgentStats, FailureCause, Progress};

/// The path prefix of session URLs on Foreman.
pub const SESSIONS_PATH: &str = "/remote/sessions";

/// The environment variable `foreman session --connect` reads the session token from.
pub const TOKEN_ENV: &str = "FOREMAN_SESSION_TOKEN";

/// The answer to `connect`: the token for the session's other requests, and the spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Connected {
    /// The connection token (`fst_…`).
    pub token: String,
    /// The session.
    pub spec: RemoteSpec,
}

/// Everything a runner needs to run one session: no GitHub token, none of Foreman's secrets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// The session's id.
    pub session_id: String,
    /// The repository, `owner/name`.
    pub repo: String,
    /// The issue (or pull request, for a follow-up) number.
    pub issue: u64,
    /// The branch the agent works on; the bundle holds it at [`Self::base_commit`].
    pub branch: String,
    /// The commit the branch starts from: the result must descend from it.
    pub base_commit: String,
    /// The rendered prompt.
    pub prompt: String,
    /// Whether the agent is to write a plan (`FOREMAN_PLAN_FILE` is set).
    pub plan: bool,
    /// The backend and its limits, as Foreman would run it.
    pub agent: AgentSettings,
    /// How often the runner reports even when the agent is quiet, in seconds (under the claim's
    /// time-to-live, which the reports renew).
    pub keepalive_secs: u64,
}

/// The `[agent]` settings a runner applies: the backend, its limits, and the environment entries that are
/// not secrets (`agent.env` entries whose names look secret are not sent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentSettings {
    /// `claude` or `command`.
    pub backend: String,
    /// `agent.model`.
    pub model: Option<String>,
    /// `agent.max_turns`.
    pub max_turns: Option<u32>,
    /// `agent.max_cost_usd`.
    pub max_cost_usd: Option<f64>,
    /// `agent.allowed_tools`.
    pub allowed_tools: Vec<String>,
    /// `agent.disallowed_tools`.
    pub disallowed_tools: Vec<String>,
    /// `agent.timeout_secs`.
    pub timeout_secs: f64,
    /// `agent.stall_timeout_secs`.
    pub stall_timeout_secs: f64,
    /// `agent.kill_grace_secs`.
    pub kill_grace_secs: f64,
    /// `agent.max_output_bytes`.
    pub max_output_bytes: u64,
    /// `agent.command.run`, for the command backend.
    pub command: Option<String>,
    /// `agent.claude.permission_mode`.
    pub permission_mode: String,
    /// `agent.claude.max_retries`.
    pub claude_max_retries: Option<u32>,
    /// `agent.git_name`.
    pub git_name: String,
    /// `agent.git_email`.
    pub git_email: String,
    /// `agent.env`, without entries whose names look secret.
    pub env: BTreeMap<String, String>,
    /// `agent.env_allow`.
    pub env_allow: Vec<String>,
}

impl AgentSettings {
    /// The settings of the session configuration `c` (the server's `[agent]` with the repository's
    /// overrides applied).
    pub fn of(c: &AgentConfig) -> Self {
        Self {
            backend: c.backend.clone(),
            model: c.model.clone(),
            max_turns: c.max_turns,
            max_cost_usd: c.max_cost_usd,
            allowed_tools: c.allowed_tools.clone(),
            disallowed_tools: c.disallowed_tools.clone(),
            timeout_secs: c.timeout_secs,
            stall_timeout_secs: c.stall_timeout_secs,
            kill_grace_secs: c.kill_grace_secs,
            max_output_bytes: c.max_output_bytes,
            command: c.command.run.clone(),
            permission_mode: c.claude.permission_mode.clone(),
            claude_max_retries: c.claude.max_retries,
            git_name: c.git_name.clone(),
            git_email: c.git_email.clone(),
            env: c
                .env
                .iter()
                .filter(|(k, _)| !crate::github::secrets::is_secret_name(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            env_allow: c.env_allow.clone(),
        }
    }

    /// The `[agent]` configuration a runner runs with: these settings over the defaults, without the
    /// sandbox (the runner is the session's machine, and nothing on it can write to GitHub).
    pub fn config(&self) -> AgentConfig {
        let mut c = AgentConfig {
            backend: self.backend.clone(),
            model: self.model.clone(),
            max_turns: self.max_turns,
            max_cost_usd: self.max_cost_usd,
            allowed_tools: self.allowed_tools.clone(),
            disallowed_tools: self.disallowed_tools.clone(),
            timeout_secs: self.timeout_secs,
            stall_timeout_secs: self.stall_timeout_secs,
            kill_grace_secs: self.kill_grace_secs,
            max_output_bytes: self.max_output_bytes,
            git_name: self.git_name.clone(),
            git_email: self.git_email.clone(),
            env: self.env.clone(),
            env_allow: self.env_allow.clone(),
            sandbox: crate::executor::local::sandbox::SandboxMode::Off,
            ..AgentConfig::default()
        };
        c.command.run = self.command.clone();
        c.claude.permission_mode = self.permission_mode.clone();
        c.claude.max_retries = self.claude_max_retries;
        c
    }
}

/// One thing that happened on the runner.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The agent's progress, as a local agent reports it.
    Progress {
        /// What happened.
        progress: Progress,
    },
    /// One line of the runner's session log (a JSON object).
    Log {
        /// The line, without its newline.
        line: String,
    },
    /// Nothing new; the runner is alive.
    Alive,
}

/// How the agent ended on the runner, and what it left.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RemoteResult {
    /// Why it failed; `None`: it finished.
    pub failure: Option<Failure>,
    /// Its final text.
    pub answer: Option<String>,
    /// The agent's own session id.
    pub agent_session_id: Option<String>,
    /// What the backend counted.
    pub stats: Option<AgentStats>,
    /// The variable name of the credential used last.
    pub credential: Option<String>,
    /// For a planning session, the plan file's text.
    pub plan: Option<String>,
    /// The branch's head after the agent (its leftovers committed): the base when it made no commit, else
    /// the head of the uploaded bundle.
    pub head: String,
}

/// A failure, as the runner classified it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    /// Its class.
    #[serde(flatten)]
    pub cause: FailureCause,
    /// A one-line reason for people.
    pub reason: String,
}

impl RemoteResult {
    /// The result of `end`, with the branch at `head`.
    pub fn of(end: AgentEnd, plan: Option<String>, head: String) -> Self {
        Self {
            failure: end.failure.map(|(cause, reason)| Failure { cause, reason }),
            answer: end.answer,
            agent_session_id: end.agent_session_id,
            stats: end.stats,
            credential: end.credential,
            plan,
            head,
        }
    }
}
