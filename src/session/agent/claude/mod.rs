//! The Claude Code CLI backend (`agent.backend = "claude"`, the default): `claude -p --output-format
//! stream-json --verbose` with the prompt on stdin.
//!
//! - configuration: [`ClaudeConfig`] (`[agent.claude]`), plus the limits of `[agent]` it passes as flags;
//! - progress parsing: [`stream::Transcript`] reads the CLI's JSON lines (session id, turns, tool uses, cost);
//! - failure classification: the result line ([`stream::RunResult`], reset times in [`reset`]) becomes a
//!   [`FailureCause`]; a refused credential moves on to the next ([`Credentials`]);
//! - resume: `--resume <id>` when the CLI's transcript of that session is in the agent's home.

pub mod config;
pub mod credentials;
pub mod reset;
pub mod stream;

use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

pub use config::ClaudeConfig;
pub use credentials::Credentials;

use super::{Agent, AgentEnd, AgentRun, AgentStats, Registration, exit_words, io_words, limit_failure, limits};
use crate::executor::{BoxFuture, Control, Ended, ExecError, Spawn};
use crate::session::{AgentConfig, FailureCause, Progress};
use stream::{LineEvent, RunResult, Transcript};

/// `agent.backend = "claude"`.
pub const REGISTRATION: Registration = Registration { name: "claude", build };

fn build(config: &AgentConfig, credentials: Credentials) -> Result<Box<dyn Agent>, String> {
    config.claude().validate()?;
    Ok(Box::new(Claude { credentials }))
}

/// The Claude Code CLI, with the credentials it rotates through.
#[derive(Debug)]
pub struct Claude {
    credentials: Credentials,
}

impl Agent for Claude {
    fn name(&self) -> &'static str {
        "claude"
    }

    fn describe(&self, config: &AgentConfig) -> String {
        match &config.model {
            Some(model) => format!("claude ({model})"),
            None => "claude".to_owned(),
        }
    }

    fn unavailable(&self, config: &AgentConfig) -> Option<String> {
        let path = config.claude().path;
        (!super::runnable(&path)).then(|| {
            format!(
                "the Claude Code CLI `{}` cannot be run: it is not installed or not on Foreman's PATH \
                 (install it with `npm install -g @anthropic-ai/claude-code`, or set agent.claude.path)",
                path.display()
            )
        })
    }

    fn missing_credential(&self) -> Option<String> {
        self.credentials.is_empty().then(|| {
            "no Claude credential in Foreman's environment: the agent's sandbox has a home of its own, so the \
             CLI's own login is not seen; set CLAUDE_CODE_OAUTH_TOKEN (made by `claude setup-token`) or \
             ANTHROPIC_API_KEY"
                .to_owned()
        })
    }

    fn version_command(&self, config: &AgentConfig) -> Option<(std::path::PathBuf, Vec<String>)> {
        Some((config.claude().path, vec!["--version".to_owned()]))
    }

    fn held_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.credentials.held_until(now)
    }

    fn run<'a>(&'a self, run: AgentRun<'a>) -> BoxFuture<'a, AgentEnd> {
        Box::pin(self.run_cli(run))
    }
}

/// How long a credential is held after a usage limit whose reset time the CLI did not say: the same
/// bound as a job's wait of unknown end ([`crate::job::wait::UNKNOWN_WAIT`], 15 minutes).
const UNKNOWN_RESET: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// The CLI's arguments for a session configured as `c`, continuing session `resume` when given.
fn args(c: &AgentConfig, resume: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"].map(String::from).to_vec();
    let mut opt = |k: &str, v: String| {
        args.push(k.to_owned());
        args.push(v);
    };
    if let Some(m) = &c.model {
        opt("--model", m.clone());
    }
    if let Some(n) = c.max_turns {
        opt("--max-turns", n.to_string());
    }
    if let Some(usd) = c.max_cost_usd {
        opt("--max-budget-usd", usd.to_string());
    }
    opt("--permission-mode", c.claude().permission_mode);
    if !c.allowed_tools.is_empty() {
        opt("--allowedTools", c.allowed_tools.join(","));
    }
    if !c.disallowed_tools.is_empty() {
        opt("--disallowedTools", c.disallowed_tools.join(","));
    }
    if let Some(id) = resume {
        opt("--resume", id.to_owned());
    }
    args
}

impl Claude {
    async fn run_cli(&self, run: AgentRun<'_>) -> AgentEnd {
        let AgentRun { config: c, spec, mounts, mut env, prompt, executor, cancel, progress, log, .. } = run;
        let section = c.claude();
        // The CLI is pinned by the installer; it must not replace itself mid-run.
        env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
        if let Some(n) = section.max_retries {
            env.insert("CLAUDE_CODE_MAX_RETRIES".into(), n.to_string());
        }
        let attempts = self.credentials.len().max(1);
        // A credential held by a usage limit is skipped; with every one held, the session waits.
        let mut index = match self.credentials.free(self.credentials.current(), Timestamp::now()) {
            Ok(index) => index,
            Err(until) => {
                let reason = format!("every configured Claude credential is at its usage limit until {until}");
                return AgentEnd::failed(FailureCause::UsageLimit { resets_at: Some(until) }, reason);
            }
        };
        let max_turns = c.max_turns;
        // Resume only a session whose transcript the CLI can find; otherwise it refuses to start, which would
        // count against the job. Without it the agent starts fresh, with the reviews in its prompt.
        let home = executor.agent_home(mounts, &env);
        let resume = spec.resume.clone().filter(|id| {
            let found = transcript_exists(home, id);
            if !found {
                log.event("resume_unavailable", json!({ "agent_session_id": id }));
            }
            found
        });
        for attempt in 1..=attempts {
            let mut env = env.clone();
            let mut credential = None;
            if let Some((name, value)) = self.credentials.env_pair(index) {
                env.remove("ANTHROPIC_API_KEY");
                env.remove("CLAUDE_CODE_OAUTH_TOKEN");
                env.insert(name.to_owned(), value);
                credential = self.credentials.get(index).map(|c| c.source.clone());
            }
            log.event("agent_start", json!({ "attempt": attempt, "credential": credential }));
            progress(Progress::AgentStarted { attempt: attempt as u32 });
            let spawn = Spawn {
                program: section.path.clone(),
                args: args(c, resume.as_deref()),
                cwd: mounts.workspace.clone(),
                env,
                stdin: prompt.clone().into_bytes(),
                limits: Default::default(),
            };
            let mut transcript = Transcript::default();
            let mut on_line = |line: &str| {
                log.agent_line(line);
                for event in transcript.push_line(line) {
                    match event {
                        LineEvent::Init { session_id } => progress(Progress::AgentSession { id: session_id }),
                        LineEvent::Turn(n) => {
                            progress(Progress::Turn(n));
                            // The CLI enforces --max-turns itself and may run one turn over (message-types.md);
                            // this is the backstop if it does not.
                            if max_turns.is_some_and(|m| n > m + 1) {
                                return Control::Stop(format!("more than {} turns", n - 1));
                            }
                        }
                        LineEvent::ToolUse { name } => progress(Progress::ToolUse(name)),
                        LineEvent::Text { line } => progress(Progress::Message(line)),
                        _ => {}
                    }
                }
                Control::Continue
            };
            let ran = executor.run(spawn, mounts, limits(c), cancel, &mut on_line).await;
            let mut end =
                AgentEnd { agent_session_id: transcript.session_id.clone(), credential, ..AgentEnd::default() };
            let ran = match ran {
                Ok(ran) => ran,
                Err(ExecError::Unavailable(why)) => {
                    log.event("error", json!({ "step": "sandbox", "detail": why }));
                    return AgentEnd::failed(FailureCause::Infrastructure, crate::session::SANDBOX_UNAVAILABLE.into());
                }
                Err(ExecError::Start(e)) => {
                    tracing::warn!(path = %section.path.display(), error = %e, "cannot start the Claude CLI");
                    end.failure = Some((
                        FailureCause::Infrastructure,
                        format!("Foreman could not start the Claude CLI (`agent.claude.path`): {}", io_words(&e)),
                    ));
                    return end;
                }
            };
            log.event(
                "agent_end",
                json!({ "ended": format!("{:?}", ran.ended), "stderr_tail": ran.stderr_tail,
                                           "output_bytes": ran.output_bytes }),
            );
            let result = transcript.classify(Timestamp::now(), &TimeZone::system());
            end.failure = match (&ran.ended, result) {
                (Ended::Exited(_), RunResult::Success { text }) => {
                    end.answer = Some(text);
                    None
                }
                (Ended::Exited(_), RunResult::Authentication { text }) => {
                    let next = self.credentials.rotate_from(index);
                    if attempt < attempts {
                        let source = self.credentials.get(next).map(|c| c.source.clone()).unwrap_or_default();
                        log.event(
                            "credential_rotated",
                            json!({ "refused": end.credential, "next": source, "reason": text }),
                        );
                        progress(Progress::CredentialRotated { next: source });
                        index = next;
                        continue;
                    }
                    Some((
                        FailureCause::Infrastructure,
                        format!("every configured Claude credential was refused ({attempts} tried): {text}"),
                    ))
                }
                (Ended::Exited(_), RunResult::UsageLimit { resets_at, text }) => {
                    // The limit is the credential's: hold it and go on with the next free one, if any.
                    let now = Timestamp::now();
                    self.credentials.hold(index, resets_at.unwrap_or(now + UNKNOWN_RESET));
                    if attempt < attempts
                        && let Ok(next) = self.credentials.free(index + 1, now)
                    {
                        let source = self.credentials.get(next).map(|c| c.source.clone()).unwrap_or_default();
                        log.event(
                            "credential_rotated",
                            json!({ "held": end.credential, "next": source, "reason": text }),
                        );
                        progress(Progress::CredentialRotated { next: source });
                        index = next;
                        continue;
                    }
                    let resets_at = self.credentials.held_until(now).or(resets_at);
                    Some((FailureCause::UsageLimit { resets_at }, text))
                }
                (Ended::Exited(_), RunResult::RateLimited { text }) => Some((FailureCause::RateLimited, text)),
                (Ended::Exited(_), RunResult::Overloaded { text }) => Some((FailureCause::Overloaded, text)),
                (Ended::Exited(_), RunResult::MaxTurns { text }) => Some((FailureCause::TurnLimit, text)),
                (Ended::Exited(_), RunResult::MaxCost { text }) => Some((FailureCause::CostLimit, text)),
                (Ended::Exited(_), RunResult::Error { text }) => Some((FailureCause::Agent, text)),
                (Ended::Exited(status), RunResult::NoResult) => {
                    Some((FailureCause::Agent, format!("the Claude CLI {} without a result", exit_words(status))))
                }
                (ended, _) => Some(limit_failure(c, ended)),
            };
            end.stats = Some(AgentStats {
                turns: transcript.turns,
                tools: transcript.tools.clone(),
                tool_count: transcript.tool_count(),
                cost_usd: transcript.cost_usd(),
            });
            return end;
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// Whether the Claude CLI keeps a transcript of session `id` under `home` (`~/.claude/projects/<project>/<id>.jsonl`,
/// one project directory per working directory), so `--resume <id>` can continue it.
fn transcript_exists(home: Option<&Path>, id: &str) -> bool {
    let Some(home) = home else { return false };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return false;
    }
    let file = format!("{id}.jsonl");
    std::fs::read_dir(home.join(".claude").join("projects"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|project| project.path().join(&file).is_file())
}
