//! `GET /overview`: what runs, what waits and what is stuck, in the repositories the person can read.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use time::OffsetDateTime;

use super::signin::{signin_page, viewer};
use super::{Console, message, render};

/// The most jobs per list the overview shows (the store's status view is cut there).
pub const LIMIT: usize = 200;
/// The most recent outcomes the overview shows (read from the [`LIMIT`] sessions that ended last, then
/// filtered to the repositories the person can read).
pub const RECENT: usize = 20;

/// `t` in RFC 3339, to the second.
fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Running sessions (with a link to each live log, how long it has run, and its turns, tool calls, log lines
/// and cost so far, counted from its log), the queue in run order with
/// what each job waits for, stuck jobs with why, and the recent outcomes (sessions that ended, with their
/// cost and what the job came to); an admin sees every repository, the counts per state, the inbox's depth
/// (deliveries stored, not yet processed) and GitHub's quota per installation (the latest
/// `x-ratelimit-*` headers Foreman saw). Lists are cut at [`LIMIT`] before filtering.
pub(crate) async fn overview(State(console): State<Console>, headers: HeaderMap) -> Response {
    let Some(viewer) = viewer(&console, &headers).await else { return signin_page("/overview") };
    let store = console.inner.options.store.clone();
    let reader = viewer.clone();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::JobError>((
            store.jobs_status(OffsetDateTime::now_utc(), LIMIT)?,
            recent(&store, &reader)?,
        ))
    });
    let (status, outcomes) = match read.await {
        Ok(Ok(s)) => s,
        _ => return message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read."),
    };
    let now = status.now;
    let readable = |repo: &crate::ids::RepoName| viewer.can_read(&repo.to_string());
    let readable_name = |repo: &str| viewer.can_read(repo);
    let mut running: Vec<minijinja::Value> = Vec::new();
    for r in status.running.iter().filter(|r| readable(&r.repo)) {
        // Turns, tool calls and cost so far, counted from the log (the running sessions are few).
        let figures = match super::pages::log_path(&console, &r.claim.session.0).await {
            Some(path) => tokio::fs::read(&path)
                .await
                .map(|b| super::logview::figures(&String::from_utf8_lossy(&b)))
                .unwrap_or_default(),
            None => super::logview::Figures::default(),
        };
        running.push(minijinja::context! {
            repo => r.repo.to_string(), issue => r.issue.0, title => r.title.clone(),
            session => r.claim.session.0.clone(), elapsed_secs => (now - r.claim.claimed_at).whole_seconds().max(0),
            turns => figures.turns, tool_calls => figures.tool_calls, lines => figures.lines,
            cost => figures.cost_usd.map(|c| format!("${c:.2}")), errors => figures.errors,
        });
    }
    let queued: Vec<minijinja::Value> = status
        .queued
        .iter()
        .filter(|q| readable(&q.repo))
        .map(|q| {
            let mut waits: Vec<String> = q.waiting_on.iter().map(|d| format!("#{} in {}", d.issue, d.repo)).collect();
            if let Some(at) = q.not_before.filter(|at| *at > now) {
                waits.push(format!("not before {}", rfc3339(at)));
            }
            minijinja::context! {
                position => q.position, repo => q.repo.to_string(), issue => q.issue.0, title => q.title.clone(),
                state => q.state.to_string(), waits => waits.join(", "),
            }
        })
        .collect();
    let stuck: Vec<minijinja::Value> = status
        .stuck
        .iter()
        .filter(|s| readable(&s.repo))
        .map(|s| minijinja::context! { repo => s.repo.to_string(), issue => s.issue.0, title => s.title.clone(), reason => s.reason.clone() })
        .collect();
    // The repositories to open a page of: the ones GitHub lists for them, and those of the jobs shown.
    let mut repos: std::collections::BTreeSet<String> = viewer.repositories().map(str::to_owned).collect();
    repos.extend(status.running.iter().map(|r| r.repo.to_string().to_ascii_lowercase()).filter(|r| readable_name(r)));
    repos.extend(status.queued.iter().map(|q| q.repo.to_string().to_ascii_lowercase()).filter(|r| readable_name(r)));
    repos.extend(status.stuck.iter().map(|s| s.repo.to_string().to_ascii_lowercase()).filter(|r| readable_name(r)));
    let counts = viewer.admin.then(|| minijinja::Value::from(minijinja::value::Serde(&status.counts)));
    let inbox = viewer.admin.then(|| console.inner.options.store.inbox_depth());
    let quotas: Option<Vec<minijinja::Value>> = viewer.admin.then(|| {
        let backend = console.inner.options.backend.get();
        let quotas = backend.map(|b| b.client.quotas()).unwrap_or_default();
        let now = std::time::SystemTime::now();
        quotas
            .into_iter()
            .map(|(inst, q)| {
                let reset = OffsetDateTime::from(q.reset);
                let reset_in_min = q.reset.duration_since(now).map_or(0, |d| d.as_secs().div_ceil(60));
                minijinja::context! {
                    installation => inst.0, remaining => q.remaining, limit => q.limit,
                    reset => rfc3339(reset), reset_in_min,
                }
            })
            .collect()
    });
    render(
        StatusCode::OK,
        "overview.html",
        minijinja::context! {
            title => "Overview", login => viewer.login, csrf => viewer.csrf, admin => viewer.admin,
            running, queued, stuck, outcomes, counts, inbox, quotas, repos,
            now => rfc3339(OffsetDateTime::now_utc()),
        },
    )
}

/// The [`RECENT`] latest outcomes `viewer` may read: each session that ended, its state, cost and end, and
/// for the job's last session what it came to (a pull request, an answer, a plan) or, failed, its failure.
fn recent(
    store: &crate::store::Store,
    viewer: &super::signin::Viewer,
) -> Result<Vec<minijinja::Value>, crate::store::JobError> {
    let mut out = Vec::new();
    for s in store.recent_sessions(LIMIT)?.into_iter().filter(|s| viewer.can_read(&s.repo.to_string())).take(RECENT) {
        let job = store.job(&s.repo, s.issue)?.filter(|j| j.session.as_ref() == Some(&s.id));
        let state = format!("{:?}", s.state).to_lowercase();
        let came_to = job.and_then(|j| match s.state {
            crate::job::SessionState::Succeeded => j.resolution.map(|r| match r {
                crate::job::Resolution::PullRequest => "a pull request".to_owned(),
                crate::job::Resolution::Answer => "an answer".to_owned(),
                crate::job::Resolution::Plan => "a plan".to_owned(),
            }),
            crate::job::SessionState::Failed => j.last_failure.map(|f| format!("{}: {}", f.class.as_str(), f.reason)),
            _ => None,
        });
        out.push(minijinja::context! {
            repo => s.repo.to_string(), issue => s.issue.0, session => s.id.0, attempt => s.attempt,
            outcome => state, came_to, cost => s.cost_usd.map(|c| format!("${c:.2}")),
            ended_at => s.ended_at.map(rfc3339),
        });
    }
    Ok(out)
}
