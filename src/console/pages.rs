//! The console's pages: a session's log (with its live tail) and a job (with cancel).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::signin::{self, Viewer, csrf_ok, signin_page, viewer};
use super::{Backend, Console, message, not_found, render};
use super::{history, logview};
use crate::ids::{IssueNumber, RepoName, UserId};
use crate::job::{Job, JobState, SessionId, SessionRecord, SessionState};

/// How often the live tail looks for new lines in the log file while the session runs.
pub const TAIL_EVERY: Duration = Duration::from_millis(250);
/// The most lines the log page renders at once (the download has them all).
pub const MAX_LINES: usize = 5000;

/// A session id as Foreman makes them (hex and dashes): nothing else can name a file.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The session `id` when `viewer` may read its repository; `Err` is the page to answer instead.
async fn readable_session(
    console: &Console,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Viewer, SessionRecord), Response> {
    if !valid_id(id) {
        return Err(not_found());
    }
    let Some(viewer) = viewer(console, headers).await else {
        return Err(signin_page(&format!("/sessions/{id}")));
    };
    let record = match console.inner.options.store.session(&SessionId(id.to_owned())) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "reading a session record failed");
            return Err(message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read."));
        }
    };
    if !viewer.can_read(&record.repo.to_string()) {
        return Err(not_found());
    }
    Ok((viewer, record))
}

/// The log file of session `id` (`DATA_DIR/sessions/<owner>-<repo>-<issue>-<id>.jsonl`).
pub(crate) async fn log_path(console: &Console, id: &str) -> Option<PathBuf> {
    let dir = console.inner.options.data_dir.join("sessions");
    let suffix = format!("-{id}.jsonl");
    tokio::task::spawn_blocking(move || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&suffix)))
    })
    .await
    .ok()
    .flatten()
}

/// `GET /sessions/{id}`: the log as Human / Events / Errors; with a live tail while the session runs.
pub(crate) async fn session_page(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (viewer, record) = match readable_session(&console, &headers, &id).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let text = match log_path(&console, &id).await {
        Some(path) => {
            tokio::fs::read(&path).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
        }
        None => String::new(),
    };
    // Only whole lines: a line being written is sent by the tail once it ends.
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    let lines: Vec<logview::Line> =
        whole.lines().enumerate().take(MAX_LINES).map(|(i, raw)| logview::line(i + 1, raw)).collect();
    let errors = lines.iter().filter(|l| l.error).count();
    let shown = lines.len();
    let lines = minijinja::Value::from(minijinja::value::Serde(&lines));
    let running = record.state == SessionState::Running;
    let repo = record.repo.to_string();
    let issue_url = format!("{}/{repo}/issues/{}", console.inner.web_url, record.issue);
    let job_url = format!("/jobs/{repo}/{}", record.issue);
    render(
        StatusCode::OK,
        "session.html",
        minijinja::context! {
            title => format!("Session {id}"), login => viewer.login, csrf => viewer.csrf,
            id, repo, issue => record.issue.0, issue_url, job_url, state => format!("{:?}", record.state).to_lowercase(),
            attempt => record.attempt, cost => record.cost_usd, running, lines, errors, shown,
        },
    )
}

/// `GET /sessions/{id}/log`: the JSON-lines file itself (download).
pub(crate) async fn session_download(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(page) = readable_session(&console, &headers, &id).await {
        return page;
    }
    match log_path(&console, &id).await {
        Some(path) => match tokio::fs::read(&path).await {
            Ok(bytes) => (
                [
                    (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"session-{id}.jsonl\"")),
                ],
                bytes,
            )
                .into_response(),
            Err(_) => not_found(),
        },
        None => not_found(),
    }
}

/// The live tail's position: the file, how many lines were sent, the bytes read past them.
struct Tail {
    console: Console,
    id: String,
    path: Option<PathBuf>,
    sent: usize,
    offset: u64,
    pending: std::collections::VecDeque<Event>,
    done: bool,
}

impl Tail {
    /// Reads what was appended since `offset`: whole lines only.
    async fn read_more(&mut self) {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if self.path.is_none() {
            self.path = log_path(&self.console, &self.id).await;
        }
        let Some(path) = &self.path else { return };
        let Ok(mut file) = tokio::fs::File::open(path).await else { return };
        if file.seek(std::io::SeekFrom::Start(self.offset)).await.is_err() {
            return;
        }
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).await.is_err() {
            return;
        }
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return };
        self.offset += end as u64 + 1;
        for raw in String::from_utf8_lossy(&buf[..end]).lines() {
            self.sent += 1;
            let line = logview::line(self.sent, raw);
            let data = serde_json::to_string(&line).unwrap_or_default();
            self.pending.push_back(Event::default().event("line").id(self.sent.to_string()).data(data));
        }
    }

    fn running(&self) -> bool {
        matches!(self.console.inner.options.store.session(&SessionId(self.id.clone())), Ok(Some(r)) if r.state == SessionState::Running)
    }
}

/// `GET /sessions/{id}/events?from=N`: the lines after the first `N` (or after `Last-Event-ID`), as
/// server-sent events `line` (data: a [`logview::Line`] as JSON, id: its number), checked every
/// [`TAIL_EVERY`]; `end` once the session has ended and every line was sent. Each open tail holds one
/// small state (no file handle between reads) and reads the file's new bytes only.
pub(crate) async fn session_events(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(page) = readable_session(&console, &headers, &id).await {
        return page;
    }
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("from").map(String::as_str))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut tail = Tail {
        console: console.clone(),
        id: id.clone(),
        path: None,
        sent: 0,
        offset: 0,
        pending: Default::default(),
        done: false,
    };
    // Skip the lines the page already shows.
    if let Some(path) = log_path(&console, &id).await
        && let Ok(bytes) = tokio::fs::read(&path).await
    {
        let mut offset = 0usize;
        for _ in 0..from {
            match bytes[offset..].iter().position(|b| *b == b'\n') {
                Some(i) => offset += i + 1,
                None => break,
            }
        }
        tail.offset = offset as u64;
        tail.sent = bytes[..offset].iter().filter(|b| **b == b'\n').count();
        tail.path = Some(path);
    }
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some(event) = tail.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), tail));
            }
            if tail.done {
                return None;
            }
            let running = tail.running();
            tail.read_more().await;
            if tail.pending.is_empty() {
                if !running {
                    tail.done = true;
                    return Some((Ok(Event::default().event("end").data("ended")), tail));
                }
                tokio::time::sleep(TAIL_EVERY).await;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A job's path parts, or 404.
fn job_ref(owner: &str, repo: &str, issue: &str) -> Option<(RepoName, IssueNumber)> {
    let repo = RepoName::new(owner, repo).ok()?;
    let issue = issue.parse::<u64>().ok().filter(|n| *n > 0).map(IssueNumber)?;
    Some((repo, issue))
}

/// `GET /jobs/{owner}/{repo}/{issue}`: the job; its attempts (every session, linking its log), failure
/// ledger and audit trail ([`history`]); cancel and retry for writers.
pub(crate) async fn job_page(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((owner, repo, issue)): Path<(String, String, String)>,
) -> Response {
    let Some((repo, issue)) = job_ref(&owner, &repo, &issue) else { return not_found() };
    let Some(viewer) = viewer(&console, &headers).await else {
        return signin_page(&format!("/jobs/{repo}/{issue}"));
    };
    if !viewer.can_read(&repo.to_string()) {
        return not_found();
    }
    let detail = match console.inner.options.store.job_detail(&repo, issue) {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "reading a job failed");
            return message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read.");
        }
    };
    let job = &detail.job;
    let live = job.state.is_live();
    let store = &console.inner.options.store;
    let (sessions, failures) = match (store.job_sessions(&repo, issue), store.job_failures(&repo, issue)) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "reading a job's sessions or failures failed");
            return message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read.");
        }
    };
    let attempts_list = history::attempts(&console, &sessions, &failures, OffsetDateTime::now_utc()).await;
    let ledger = history::ledger(job, &failures);
    let audit = history::audit(&detail.audit);
    let limits = console.inner.options.backend.get().map(|b| {
        let c = b.scheduler.config();
        (c.max_failures, c.max_infrastructure_failures)
    });
    let session = detail.claim.as_ref().map(|c| c.session.0.clone());
    let issue_url = format!("{}/{repo}/issues/{issue}", console.inner.web_url);
    let writes = viewer.can_write_hint(&repo.to_string());
    let can_cancel = live && writes;
    let can_retry = writes && job.state != JobState::Running;
    render(
        StatusCode::OK,
        "job.html",
        minijinja::context! {
            title => format!("{repo}#{issue}"), login => viewer.login, csrf => viewer.csrf, admin => viewer.admin,
            repo => repo.to_string(), issue => issue.0, issue_url, job_title => job.title.clone(), state => job.state.to_string(),
            kind => format!("{:?}", job.kind).to_lowercase(), attempts => job.attempts, position => detail.position,
            last_failure => job.last_failure.as_ref().map(|f| format!("{}: {}", f.class.as_str(), f.reason)),
            failures => format!(
                "agent {}, validation {}, infrastructure {}, rate limit {}",
                job.failures.agent, job.failures.validation, job.failures.infrastructure, job.failures.rate_limit
            ),
            retries => job.retries, stuck_reason => job.stuck_reason.clone(),
            waiting_on => job.waiting_on.iter().map(|d| format!("{}#{}", d.repo, d.issue)).collect::<Vec<_>>().join(", "),
            session, audit, live, can_cancel, can_retry, attempts_list, ledger,
            counted_agent => job.failures.agent.saturating_add(job.failures.validation),
            counted_infrastructure => job.failures.infrastructure,
            max_failures => limits.map(|l| l.0), max_infrastructure_failures => limits.map(|l| l.1),
        },
    )
}

/// A write on a job from a form: the person, Foreman's GitHub side and the job, once the session's CSRF
/// token and write on the repository (checked now with Foreman's installation token) are there. `Err` is
/// the answer instead: 401 not signed in, 403 without the token or write, 404 when they cannot read the
/// repository or there is no such job, 503/502 when the store or GitHub cannot say.
async fn writer(
    console: &Console,
    headers: &HeaderMap,
    (owner, repo, issue): (String, String, String),
    body: &[u8],
) -> Result<(Viewer, Backend, Job), Response> {
    let Some((repo, issue)) = job_ref(&owner, &repo, &issue) else { return Err(not_found()) };
    let Some(viewer) = viewer(console, headers).await else {
        return Err(message(StatusCode::UNAUTHORIZED, "Sign in first", "Changing a job needs a signed-in person."));
    };
    if !csrf_ok(&viewer, body) {
        tracing::warn!(login = %viewer.login, %repo, %issue, "a form without this session's CSRF token refused");
        return Err(message(StatusCode::FORBIDDEN, "Refused", "The form is not from this session. Reload the page."));
    }
    if !viewer.can_read(&repo.to_string()) {
        return Err(not_found());
    }
    let Some(backend) = console.inner.options.backend.get() else {
        return Err(message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "Foreman has no GitHub App yet."));
    };
    let job = match console.inner.options.store.job(&repo, issue) {
        Ok(Some(j)) => j,
        Ok(None) => return Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "reading a job failed");
            return Err(message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read."));
        }
    };
    let Some(inst) = job.installation else {
        return Err(message(StatusCode::CONFLICT, "Cannot check", "The job records no installation to check with."));
    };
    match backend.client.collaborator_permission(inst, &repo, UserId(viewer.user_id), &viewer.login).await {
        Ok(p) if p >= crate::github::Permission::Write => Ok((viewer, backend, job)),
        Ok(_) => {
            tracing::warn!(login = %viewer.login, %repo, %issue, "a change from a person without write refused");
            Err(message(StatusCode::FORBIDDEN, "Refused", "Changing a job needs write access to the repository."))
        }
        Err(e) => {
            tracing::warn!(error = %backend.client.scrub(&e.to_string()), "checking a person's permission failed");
            Err(message(StatusCode::BAD_GATEWAY, "Unavailable", "GitHub could not say whether you have write access."))
        }
    }
}

fn back_to(job: &Job) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/jobs/{}/{}", job.repo, job.issue))]).into_response()
}

/// `POST /jobs/{owner}/{repo}/{issue}/cancel` (form `csrf`): cancels the job through the one cancel path,
/// reported on the issue ("Cancelled: cancelled from the console by @login."). Refusals: see [`writer`].
pub(crate) async fn cancel(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (viewer, backend, job) = match writer(&console, &headers, path, &body).await {
        Ok(w) => w,
        Err(answer) => return answer,
    };
    let reason = format!("cancelled from the console by @{}", viewer.login);
    let now = OffsetDateTime::now_utc();
    match backend.canceller.cancel(&job.repo, job.issue, &viewer.login, &reason, job.installation, now).await {
        Ok(_) => {
            tracing::info!(login = %viewer.login, repo = %job.repo, issue = %job.issue, "job cancelled from the console");
            back_to(&job)
        }
        Err(e) => {
            tracing::error!(error = %e, "cancelling from the console failed");
            message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not record the cancellation.")
        }
    }
}

/// `POST /jobs/{owner}/{repo}/{issue}/retry` (form `csrf`): queues a failed, stuck, cancelled or finished job
/// again with its failure count reset, as `/foreman retry` does, and reports it queued on the issue. 409 for
/// a running job. Refusals: see [`writer`].
pub(crate) async fn retry(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (viewer, backend, job) = match writer(&console, &headers, path, &body).await {
        Ok(w) => w,
        Err(answer) => return answer,
    };
    let cause = format!("retried from the console by @{}", viewer.login);
    match backend.scheduler.retry(&job.repo, job.issue, &viewer.login, &cause, OffsetDateTime::now_utc()).await {
        Ok(queued) => {
            backend.canceller.report_queued(&queued);
            tracing::info!(login = %viewer.login, repo = %job.repo, issue = %job.issue, "job retried from the console");
            back_to(&job)
        }
        Err(crate::store::JobError::InvalidState { .. }) => {
            message(StatusCode::CONFLICT, "Not now", "A running job cannot be retried; cancel it first.")
        }
        Err(e) => {
            tracing::error!(error = %e, "retrying from the console failed");
            message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not record the retry.")
        }
    }
}

impl Viewer {
    /// Whether GitHub listed push for them on `repo` when their access was last read: decides whether the
    /// cancel button shows; the POST checks again.
    pub fn can_write_hint(&self, repo: &str) -> bool {
        self.admin || signin::pushes(self, repo)
    }
}
