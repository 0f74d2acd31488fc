//! `foreman status`: asks the running server for `GET /api/status` and prints it as tables for people.
//!
//! sled admits one process per database, so the command cannot open the store while `foreman serve` runs;
//! it asks the server instead, with `FOREMAN_ADMIN_TOKEN` as a bearer token when set.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::job::{JobKind, JobsStatus, PhaseKey};

/// How long `foreman status` waits for the server: a status read takes well under a second even with
/// 100,000 jobs, so 30 s means the server is not answering.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `foreman status --server URL`: exit 0 with the tables on stdout, 1 with a one-line reason on
/// stderr when the server cannot be reached or refuses.
pub fn status_main(server: &str) -> ExitCode {
    let token = std::env::var("FOREMAN_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(SecretString::from);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("foreman status: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fetch(server, token.as_ref())) {
        Ok(status) => {
            print!("{}", render(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("foreman status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `GET {server}/api/status`. Errors are sentences for people.
pub async fn fetch(server: &str, token: Option<&SecretString>) -> Result<JobsStatus, String> {
    let url = format!("{}/api/status", server.trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build().map_err(|e| e.to_string())?;
    let mut request = client.get(&url);
    if let Some(t) = token {
        request = request.bearer_auth(t.expose_secret());
    }
    let response = request.send().await.map_err(|e| {
        format!("could not reach Foreman at {server} ({}); is `foreman serve` running there?", cause(&e))
    })?;
    match response.status().as_u16() {
        200 => response.json().await.map_err(|e| format!("the answer from {url} is not a status: {e}")),
        401 | 403 => Err(format!(
            "{url} refused the request ({}); set FOREMAN_ADMIN_TOKEN to the server's admin token",
            response.status()
        )),
        _ => Err(format!("{url} answered {}", response.status())),
    }
}

/// The innermost error under a request error (refused connection, certificate not trusted, …): reqwest's
/// own message only says that sending failed.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// The status as plain-text tables.
pub fn render(s: &JobsStatus) -> String {
    let mut out = String::new();
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "Jobs: {}", counts.join(" · "));
    if let Some(hold) = &s.hold {
        let until = hold.until.map(crate::job::wait::when).unwrap_or_else(|| "further notice".into());
        let _ = writeln!(out, "New sessions are held until {until}: {}", hold.reason);
    }
    let ago = |t: OffsetDateTime| relative(t - s.now);

    out.push_str("\nQUEUED\n");
    let mut rows = vec![row(["POS", "ISSUE", "KIND", "PRIO", "PHASE", "FAILS", "WAITS FOR", "TITLE"])];
    for q in &s.queued {
        let waits = if !q.waiting_on.is_empty() {
            q.waiting_on.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        } else if let Some(t) = q.not_before {
            format!("retry {}", ago(t))
        } else {
            String::new()
        };
        rows.push(row([
            q.position.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            format!("{}#{}", q.repo, q.issue),
            kind(q.kind),
            q.priority.to_string(),
            phase(q.phase),
            q.failures.to_string(),
            waits,
            q.title.clone(),
        ]));
    }
    table(&mut out, &rows);
    if s.queued_truncated {
        out.push_str("  … more queued jobs not shown\n");
    }

    out.push_str("\nRUNNING\n");
    let mut rows = vec![row(["ISSUE", "KIND", "SESSION", "HELD BY", "CLAIMED", "EXPIRES", "TITLE"])];
    for r in &s.running {
        rows.push(row([
            format!("{}#{}", r.repo, r.issue),
            kind(r.kind),
            r.claim.session.to_string(),
            format!("{} (pid {})", r.claim.owner.actor(), r.claim.owner.pid),
            ago(r.claim.claimed_at),
            ago(r.claim.expires_at),
            r.title.clone(),
        ]));
    }
    table(&mut out, &rows);

    out.push_str("\nSTUCK\n");
    let mut rows = vec![row(["ISSUE", "FAILURES (agent/validation/infra/rate)", "REASON", "TITLE"])];
    for j in &s.stuck {
        let f = &j.failures;
        rows.push(row([
            format!("{}#{}", j.repo, j.issue),
            format!("{}/{}/{}/{}", f.agent, f.validation, f.infrastructure, f.rate_limit),
            j.reason.clone().unwrap_or_default(),
            j.title.clone(),
        ]));
    }
    table(&mut out, &rows);

    out.push_str("\nRECENT FAILURES\n");
    let mut rows = vec![row(["WHEN", "ISSUE", "CLASS", "REASON"])];
    for f in &s.recent_failures {
        rows.push(row([ago(f.at), format!("{}#{}", f.repo, f.issue), f.class.as_str().to_owned(), f.reason.clone()]));
    }
    table(&mut out, &rows);
    out
}

fn row<const N: usize, S: Into<String>>(cells: [S; N]) -> Vec<String> {
    cells.into_iter().map(Into::into).map(|c: String| c.replace(['\n', '\r', '\t'], " ")).collect()
}

fn kind(k: JobKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn phase(p: PhaseKey) -> String {
    match p {
        PhaseKey::Meta => "META".into(),
        PhaseKey::Phase { phase, task } => format!("{phase}.{task}"),
        PhaseKey::Id { number } => format!("#{number}"),
        PhaseKey::None => String::new(),
    }
}

/// `in 5m`, `3m ago`, `now`.
fn relative(d: time::Duration) -> String {
    let s = d.whole_seconds();
    let a = s.unsigned_abs();
    let text = match a {
        0 => return "now".into(),
        1..=59 => format!("{a}s"),
        60..=3599 => format!("{}m", a / 60),
        3600..=86_399 => format!("{}h{:02}m", a / 3600, a % 3600 / 60),
        _ => format!("{}d", a / 86_400),
    };
    if s > 0 { format!("in {text}") } else { format!("{text} ago") }
}

/// Writes rows as columns two spaces apart; cells are cut at 60 characters. An empty table says so.
fn table(out: &mut String, rows: &[Vec<String>]) {
    if rows.len() == 1 {
        out.push_str("  (none)\n");
        return;
    }
    let cut = |c: &str| -> String {
        if c.chars().count() > 60 { c.chars().take(59).chain(['…']).collect() } else { c.to_owned() }
    };
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| cut(c)).collect()).collect();
    let widths: Vec<usize> =
        (0..cells[0].len()).map(|i| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in &cells {
        let mut line = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
