//! `foreman replay`: the decision for one payload, printed as JSON lines. The payload comes from a file,
//! from standard input (`-`), or, given a delivery id, from a running Foreman that stored it
//! (`GET /api/deliveries/{id}/payload`). Besides that read, it touches nothing: no GitHub, no data
//! directory. The author's association is the only evidence of permission, so a command from someone else
//! prints a permission lookup.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::decide::{Action, DecideConfig, JobState};

/// Decodes `body` as an `event` delivery and writes one JSON line per action to `out`
/// ([`crate::decide::replay::replay`]).
///
/// `job` stands in for the job state (none by default). Errors: the payload cannot be read or
/// decoded (the message says which and why).
pub fn replay(
    config: &DecideConfig,
    event_name: &str,
    body: &[u8],
    job: Option<JobState>,
    out: &mut impl Write,
) -> Result<Vec<Action>, String> {
    let actions = crate::decide::replay::replay(config, event_name, body, |_| job)
        .map_err(|e| format!("{e} (this delivery would be dead-lettered)"))?;
    for action in &actions {
        let line = serde_json::to_string(action).map_err(|e| format!("cannot serialise an action: {e}"))?;
        writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(actions)
}

/// Where `foreman replay` takes its payload from.
#[derive(Debug)]
pub struct Source<'a> {
    /// A file, `-` for standard input, or a delivery id.
    pub payload: &'a str,
    /// The event name (`--event`); required for a file or standard input.
    pub event: Option<&'a str>,
    /// The running Foreman to read a stored delivery from.
    pub server: Option<&'a str>,
}

/// Whether `s` can be a GitHub delivery id (a GUID: hex digits and dashes) rather than a file name.
fn looks_like_delivery_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Reads the payload and its event name from `source`. Errors are sentences for people.
fn read(source: &Source<'_>, config: &Config) -> Result<(String, Vec<u8>), String> {
    let needs_event = || {
        source.event.map(str::to_owned).ok_or_else(|| "--event is needed for a payload from a file or stdin".to_owned())
    };
    if source.payload == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut body)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok((needs_event()?, body));
    }
    let path = Path::new(source.payload);
    if path.exists() || !looks_like_delivery_id(source.payload) {
        let body = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok((needs_event()?, body));
    }
    let server = source.server.map(str::to_owned).unwrap_or_else(|| crate::config::local_url(config.listen));
    fetch(&server, source.payload)
}

/// `GET {server}/api/deliveries/{id}/payload`, with `FOREMAN_ADMIN_TOKEN` as a bearer token when set.
fn fetch(server: &str, id: &str) -> Result<(String, Vec<u8>), String> {
    let url = format!("{}/api/deliveries/{id}/payload", server.trim_end_matches('/'));
    let token = std::env::var("FOREMAN_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(crate::scheduler::status::STATUS_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client.get(&url);
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|_| {
            format!("'{id}' is not a file, and no Foreman answered at {server} to read it as a stored delivery")
        })?;
        match response.status().as_u16() {
            200 => {
                let event = response
                    .headers()
                    .get("x-github-event")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{url} did not name the delivery's event"))?;
                let body = response.bytes().await.map_err(|e| format!("reading {url}: {e}"))?;
                Ok((event, body.to_vec()))
            }
            404 => Err(format!("the Foreman at {server} has no delivery '{id}' (and there is no such file)")),
            401 | 403 => Err(format!("{url} refused the request; set FOREMAN_ADMIN_TOKEN to the server's admin token")),
            status => Err(format!("{url} answered {status}")),
        }
    })
}

/// The `foreman replay` subcommand. Exit code 0 when decided, 1 when the payload cannot be read or
/// decoded, 2 for a configuration error.
pub fn main(config_file: Option<&Path>, source: &Source<'_>, job: Option<JobState>) -> ExitCode {
    let config = match Config::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let decided = read(source, &config)
        .and_then(|(event, body)| replay(&config.triggers, &event, &body, job, &mut std::io::stdout().lock()));
    match decided {
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
