//! The command backend (`agent.backend = "command"`): any program, run with `sh -c` in the worktree.
//!
//! - configuration: [`CommandConfig`] (`[agent.command]`, or the command line alone as `agent.command`);
//! - progress parsing: lines on stdout that start with [`DIRECTIVE`] (`::foreman `) speak to Foreman and
//!   are not part of the agent's output ([`Directive`]):
//!
//!   | line | meaning |
//!   |---|---|
//!   | `::foreman progress <text>` | what the agent is doing now, shown in the tracking comment |
//!   | `::foreman turn` | one more turn (counted in the figures) |
//!   | `::foreman tool <name>` | one tool call of `<name>` |
//!   | `::foreman cost <usd>` | the cost so far in US dollars, e.g. `0.42` (the last one counts) |
//!
//!   Any other line is the agent's output, kept in the session log;
//! - the summary (the pull request's body, or the answer when nothing changed): the file named by
//!   `FOREMAN_SUMMARY_FILE` when the agent wrote it (at most [`SUMMARY_BYTES`]), else the last paragraph
//!   of its output (the lines after the last blank line), never the whole output;
//! - failure classification: exit status 0 is success, anything else an agent failure; limits as for every
//!   backend;
//! - resume: none (each session starts fresh, with the reviews in its prompt).
//!
//! Its environment: `FOREMAN_REPO` (`owner/name`), `FOREMAN_ISSUE` (number), `FOREMAN_BRANCH`,
//! `FOREMAN_WORKSPACE` (the worktree, also the working directory), `FOREMAN_PROMPT_FILE` (the prompt, also on
//! stdin), `FOREMAN_SUMMARY_FILE` (where it may write its summary, in its home), `FOREMAN_SESSION_ID` (this
//! session's id), for a planning session `FOREMAN_PLAN_FILE` (where it writes its plan as JSON, set for every
//! backend by [`crate::session`]), plus the allowlist, `agent.env` and the git identity (`GIT_AUTHOR_NAME` …).
//! Elapsed time is measured by Foreman and reported every [`ELAPSED_EVERY`] while the command runs.

pub mod config;

use serde_json::json;

pub use config::CommandConfig;

use super::{
    Agent, AgentEnd, AgentRun, AgentStats, Registration, claude::Credentials, exit_words, io_words, limit_failure,
    limits,
};
use crate::executor::{BoxFuture, Control, Ended, ExecError, Spawn};
use crate::session::{AgentConfig, FailureCause, Progress};

/// `agent.backend = "command"`.
pub const REGISTRATION: Registration = Registration { name: "command", build };

fn build(config: &AgentConfig, _: Credentials) -> Result<Box<dyn Agent>, String> {
    config.command.validate()?;
    Ok(Box::new(Command))
}

/// Largest output kept for the last paragraph, in bytes (its end).
const ANSWER_BYTES: usize = 8 * 1024;

/// How often the elapsed time is reported while the command runs ([`Progress::Tick`]): the tracking
/// comment's progress edits are at most this often anyway.
pub const ELAPSED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest summary read from `FOREMAN_SUMMARY_FILE`, in bytes.
pub const SUMMARY_BYTES: usize = 20 * 1024;

/// The summary file's name in the agent's home (`FOREMAN_SUMMARY_FILE`).
const SUMMARY_FILE: &str = ".foreman-summary.md";

/// How a stdout line that speaks to Foreman begins.
pub const DIRECTIVE: &str = "::foreman ";

/// A line of the agent's stdout that speaks to Foreman (see the module's table).
#[derive(Clone, Debug, PartialEq)]
pub enum Directive {
    /// `::foreman progress <text>`: what the agent is doing now.
    Progress(String),
    /// `::foreman turn`: one more turn.
    Turn,
    /// `::foreman tool <name>`: one tool call.
    Tool(String),
    /// `::foreman cost <usd>`: the cost so far, in US dollars (finite, not negative).
    Cost(f64),
}

impl Directive {
    /// The directive `line` is, or `None` for output (a line without [`DIRECTIVE`], or one this does not
    /// know, which is then output too).
    pub fn parse(line: &str) -> Option<Directive> {
        let rest = line.trim_end().strip_prefix(DIRECTIVE)?;
        let (word, arg) = rest.split_once(' ').map_or((rest, ""), |(w, a)| (w, a.trim()));
        match word {
            "progress" if !arg.is_empty() => Some(Directive::Progress(arg.chars().take(200).collect())),
            "turn" => Some(Directive::Turn),
            "tool" if !arg.is_empty() => Some(Directive::Tool(arg.chars().take(64).collect())),
            "cost" => arg.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0).map(Directive::Cost),
            _ => None,
        }
    }
}

/// The last paragraph of `output`: the lines after its last blank line, trimmed; `None` when there is none.
pub fn last_paragraph(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let start = lines.iter().rposition(|l| l.trim().is_empty()).map_or(0, |i| i + 1);
    let paragraph = lines[start..].join("\n");
    let paragraph = paragraph.trim();
    (!paragraph.is_empty()).then(|| paragraph.to_owned())
}

/// The summary the agent wrote at `path`: a regular file (not a link, not a special file), at most
/// [`SUMMARY_BYTES`] of it; `None` when there is none or it is empty.
fn read_summary(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?
    };
    #[cfg(not(unix))]
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() != 1 {
            return None;
        }
    }
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(SUMMARY_BYTES as u64).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// A shell command line as the agent.
#[derive(Debug)]
pub struct Command;

impl Agent for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn unavailable(&self, config: &AgentConfig) -> Option<String> {
        let line = config.command.run.as_deref()?;
        let program = program_named(line)?;
        (!super::runnable(std::path::Path::new(program))).then(|| {
            format!("the program `{program}` that agent.command.run starts is not installed or not on Foreman's PATH")
        })
    }

    fn run<'a>(&'a self, run: AgentRun<'a>) -> BoxFuture<'a, AgentEnd> {
        Box::pin(run_command(run))
    }
}

/// Shell words that are not programs: POSIX reserved words and the builtins a command line starts with.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while",
    ".", ":", "break", "cd", "command", "continue", "eval", "exec", "exit", "export", "read", "readonly", "return",
    "set", "shift", "test", "times", "trap", "true", "false", "ulimit", "umask", "unset", "wait", "echo", "printf",
    "[",
];

/// The program a command line surely starts, when that can be told without a shell: its first word, when
/// it is a plain absolute path or a bare name that is not a shell word. `None` for anything else (an
/// assignment, a relative path, which is relative to the worktree, quoting, expansions), which is not
/// checked before the session.
fn program_named(line: &str) -> Option<&str> {
    let first = line.split_whitespace().next()?;
    let plain = first.chars().all(|c| c.is_ascii_alphanumeric() || "_./+-".contains(c));
    let checkable = first.starts_with('/') || !first.contains('/');
    (plain && checkable && !SHELL_WORDS.contains(&first)).then_some(first)
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
        return AgentEnd::failed(
            FailureCause::Infrastructure,
            format!("Foreman could not write the prompt file ({})", io_words(&e)),
        );
    }
    let mut mounts = mounts.clone();
    mounts.files.push((prompt_file.clone(), "prompt.md".into()));
    // In the agent's home, which it may write and which is kept per issue: one left by an earlier session
    // is removed first.
    let summary_file = mounts.home.join(SUMMARY_FILE);
    let _ = std::fs::remove_file(&summary_file);
    for (k, v) in [
        ("FOREMAN_REPO", spec.repo.to_string()),
        ("FOREMAN_ISSUE", spec.issue.number.to_string()),
        ("FOREMAN_BRANCH", branch.to_owned()),
        ("FOREMAN_WORKSPACE", executor.workspace_dir(&mounts.workspace).to_string_lossy().into_owned()),
        ("FOREMAN_PROMPT_FILE", executor.file_path(&prompt_file, "prompt.md").to_string_lossy().into_owned()),
        ("FOREMAN_SESSION_ID", session_id.to_owned()),
        ("FOREMAN_SUMMARY_FILE", executor.home_dir(&mounts.home).join(SUMMARY_FILE).to_string_lossy().into_owned()),
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
    let mut stats = AgentStats::default();
    let mut on_line = |line: &str| {
        log.agent_line(line);
        match Directive::parse(line) {
            Some(Directive::Progress(text)) => progress(Progress::Step(text)),
            Some(Directive::Turn) => {
                stats.turns += 1;
                progress(Progress::Turn(stats.turns));
            }
            Some(Directive::Tool(name)) => {
                *stats.tools.entry(name.clone()).or_default() += 1;
                stats.tool_count += 1;
                progress(Progress::ToolUse(name));
            }
            Some(Directive::Cost(usd)) => stats.cost_usd = Some(usd),
            None => {}
        }
        if line.starts_with(DIRECTIVE) {
            return Control::Continue;
        }
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
    // Elapsed time is reported every ELAPSED_EVERY while the command runs, whatever it prints.
    let ran = {
        let run = executor.run(spawn, &mounts, limits(c), cancel, &mut on_line);
        tokio::pin!(run);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ELAPSED_EVERY, ELAPSED_EVERY);
        loop {
            tokio::select! {
                ran = &mut run => break ran,
                _ = tick.tick() => progress(Progress::Tick),
            }
        }
    };
    let _ = std::fs::remove_file(&prompt_file);
    let summary = read_summary(&summary_file);
    let _ = std::fs::remove_file(&summary_file);
    let ran = match ran {
        Ok(ran) => ran,
        Err(ExecError::Unavailable(why)) => {
            log.event("error", json!({ "step": "sandbox", "detail": why }));
            return AgentEnd::failed(FailureCause::Infrastructure, crate::session::SANDBOX_UNAVAILABLE.into());
        }
        Err(ExecError::Start(e)) => {
            return AgentEnd::failed(
                FailureCause::Infrastructure,
                format!("Foreman could not start the agent command ({})", io_words(&e)),
            );
        }
    };
    log.event(
        "agent_end",
        json!({ "ended": format!("{:?}", ran.ended), "stderr_tail": ran.stderr_tail,
                                   "output_bytes": ran.output_bytes }),
    );
    let failure = match &ran.ended {
        Ended::Exited(status) if status.success() => None,
        Ended::Exited(status) => Some((FailureCause::Agent, format!("the agent command {}", exit_words(status)))),
        ended => Some(limit_failure(c, ended)),
    };
    let answer = summary.or_else(|| last_paragraph(&tail));
    AgentEnd { failure, answer, stats: Some(stats), ..AgentEnd::default() }
}

#[cfg(test)]
mod program_tests {
    #[test]
    fn only_a_plain_first_word_names_a_program() {
        use super::program_named as p;
        assert_eq!(p("aider --yes"), Some("aider"));
        assert_eq!(p("/opt/agent/run.sh x"), Some("/opt/agent/run.sh"));
        assert_eq!(p("set -e\naider"), None);
        assert_eq!(p("FOO=1 aider"), None);
        assert_eq!(p("./agent.sh"), None);
        assert_eq!(p("\"$HOME/x\""), None);
        assert_eq!(p("  "), None);
    }
}
