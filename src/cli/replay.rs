//! `foreman replay`: the decision for one stored payload, printed as JSON lines. It reads the payload
//! and the configuration and nothing else: no GitHub, no data directory. The author's association is the
//! only evidence of permission, so a command from someone else prints a permission lookup.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::decide::{Action, DecideConfig, JobState, Snapshot, decide};
use crate::event;

/// Decodes `payload` as an `event` delivery and writes one JSON line per action to `out`.
///
/// `job` stands in for the job state (none by default). Errors: the payload cannot be read or
/// decoded (the message says which and why).
pub fn replay(
    config: &DecideConfig,
    event_name: &str,
    payload: &Path,
    job: Option<JobState>,
    out: &mut impl Write,
) -> Result<Vec<Action>, String> {
    let body = std::fs::read(payload).map_err(|e| format!("cannot read {}: {e}", payload.display()))?;
    let event = event::decode(event_name, &body).map_err(|e| format!("{e} (this delivery would be dead-lettered)"))?;
    let snapshot = Snapshot { job, ..Snapshot::default() };
    let actions = decide(&event, config, &snapshot);
    for action in &actions {
        let line = serde_json::to_string(action).map_err(|e| format!("cannot serialise an action: {e}"))?;
        writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(actions)
}

/// The `foreman replay` subcommand. Exit code 0 when decided, 1 when the payload cannot be read or
/// decoded, 2 for a configuration error.
pub fn main(config_file: Option<&Path>, event_name: &str, payload: &Path, job: Option<JobState>) -> ExitCode {
    let config = match Config::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match replay(&config.triggers, event_name, payload, job, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Parses `--job`: queued, running, succeeded, failed (waiting to retry), cancelled or stuck.
pub fn parse_job_state(s: &str) -> Result<JobState, String> {
    serde_json::from_value(serde_json::Value::String(s.to_lowercase()))
        .map_err(|_| format!("'{s}' is not a job state: queued, running, succeeded, failed, cancelled or stuck"))
}
