//! The command backend (`agent.backend = "command"`): any program, run with `sh -c` in the worktree.
//!
//! - configuration: [`CommandConfig`] (`[agent.command]`, or the command line alone as `agent.command`);
//! - progress parsing: none; the end of stdout is kept as the answer;
//! - failure classification: exit status 0 is success, anything else an agent failure; limits as for every
//!   backend;
//! - resume: none (each session starts fresh, with the reviews in its prompt).
//!
//! Its environment: `FOREMAN_REPO` (`owner/name`), `FOREMAN_ISSUE` (number), `FOREMAN_BRANCH`,
//! `FOREMAN_WORKSPACE` (the worktree, also the working directory), `FOREMAN_PROMPT_FILE` (the prompt, also on
//! stdin), `FOREMAN_SESSION_ID` (this session's id), plus the allowlist, `agent.env` and the git identity
//! (`GIT_AUTHOR_NAME` …).

pub mod config;

use serde_json::json;

pub use config::CommandConfig;

use super::{Agent, AgentEnd, AgentRun, Registration, claude::Credentials, last_line, limit_failure, limits};
use crate::executor::{BoxFuture, Control, Ended, ExecError, Spawn};
use crate::session::{AgentConfig, FailureCause, Progress};

/// `agent.backend = "command"`.
pub const REGISTRATION: Registration = Registration { name: "command", build };

fn build(config: &AgentConfig, _: Credentials) -> Result<Box<dyn Agent>, String> {
    config.command.validate()?;
    Ok(Box::new(Command))
}

/// Largest answer kept from a command's stdout, in bytes (its end).
const ANSWER_BYTES: usize = 8 * 1024;

/// A shell command line as the agent.
#[derive(Debug)]
pub struct Command;

impl Agent for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn run<'a>(&'a self, run: AgentRun<'a>) -> BoxFuture<'a, AgentEnd> {
        Box::pin(run_command(run))
    }
}

async fn run_command(run: AgentRun<'_>) -> AgentEnd {
    let AgentRun {
        config: c,
        spec,
        session_id,
        branch,
        mounts,
        mut env,
        prompt,
        scratch_dir,
        executor,
        cancel,
        progress,
        log,
    } = run;
    // Outside the worktree, so the agent cannot commit it by accident; removed when the session ends.
    let prompt_file = scratch_dir.join(format!("{session_id}.prompt.md"));
    if let Err(e) = std::fs::write(&prompt_file, &prompt) {
        return AgentEnd::failed(FailureCause::Infrastructure, format!("cannot write the prompt file: {e}"));
    }
    let mut mounts = mounts.clone();
    mounts.files.push((prompt_file.clone(), "prompt.md".into()));
    for (k, v) in [
        ("FOREMAN_REPO", spec.repo.to_string()),
        ("FOREMAN_ISSUE", spec.issue.number.to_string()),
        ("FOREMAN_BRANCH", branch.to_owned()),
        ("FOREMAN_WORKSPACE", executor.workspace_dir(&mounts.workspace).to_string_lossy().into_owned()),
        ("FOREMAN_PROMPT_FILE", executor.file_path(&prompt_file, "prompt.md").to_string_lossy().into_owned()),
        ("FOREMAN_SESSION_ID", session_id.to_owned()),
    ] {
        env.insert(k.into(), v);
    }
    let command = c.command.run.clone().unwrap_or_default();
    progress(Progress::AgentStarted { attempt: 1 });
    log.event("agent_start", json!({ "attempt": 1, "command": command }));
    let spawn = Spawn {
        program: "sh".into(),
        args: vec!["-c".into(), command],
        cwd: mounts.workspace.clone(),
        env,
        stdin: prompt.into_bytes(),
        limits: Default::default(),
    };
    let mut tail = String::new();
    let mut on_line = |line: &str| {
        log.agent_line(line);
        tail.push_str(line);
        tail.push('\n');
        if tail.len() > 2 * ANSWER_BYTES {
            let mut cut = tail.len() - ANSWER_BYTES;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
        Control::Continue
    };
    let ran = executor.run(spawn, &mounts, limits(c), cancel, &mut on_line).await;
    let _ = std::fs::remove_file(&prompt_file);
    let ran = match ran {
        Ok(ran) => ran,
        Err(ExecError::Unavailable(why)) => return AgentEnd::failed(FailureCause::Infrastructure, why),
        Err(ExecError::Start(e)) => {
            return AgentEnd::failed(FailureCause::Infrastructure, format!("cannot start sh: {e}"));
        }
    };
    log.event(
        "agent_end",
        json!({ "ended": format!("{:?}", ran.ended), "stderr_tail": ran.stderr_tail,
                                   "output_bytes": ran.output_bytes }),
    );
    let failure = match &ran.ended {
        Ended::Exited(status) if status.success() => None,
        Ended::Exited(status) => {
            Some((FailureCause::Agent, format!("the agent command {status}: {}", last_line(&ran.stderr_tail))))
        }
        ended => Some(limit_failure(c, ended)),
    };
    AgentEnd { failure, answer: Some(tail), ..AgentEnd::default() }
}
