//! `GET /repos/{owner}/{repo}`: one repository's jobs and their history, its constitution's effective rules
//! with where each came from, its session cost per day against its daily budget, and the parents of
//! sub-issues with their progress.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use time::OffsetDateTime;

use super::chart;
use super::signin::{signin_page, viewer};
use super::{Console, message, not_found, render};
use crate::constitution::fetch::FetchError;
use crate::constitution::{Effective, Origin};
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::{IssueRef, Job, JobState, Resolution, SessionRecord};
use crate::store::Store;

/// The most jobs the page lists (the most recently changed).
pub const JOBS: usize = 100;
/// The UTC days the cost chart shows, today included.
pub const DAYS: usize = 14;
/// How long the page waits for GitHub to give the constitution before it renders without it.
pub const CONSTITUTION_WAIT: Duration = Duration::from_secs(10);

/// A time as the page shows it: `2026-12-07 12:32 UTC`.
fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

/// What the store says of the repository, read in one blocking task.
struct Gathered {
    jobs: Vec<Job>,
    sessions: Vec<SessionRecord>,
    /// Issue → its pull request's address (GitHub's `html_url`), from the job's stored tracking report.
    pulls: HashMap<IssueNumber, (String, String)>,
    parents: Vec<Parent>,
    installation: Option<InstallationId>,
}

/// A parent issue and where its sub-issues stand.
struct Parent {
    issue: IssueNumber,
    title: Option<String>,
    total: usize,
    done: usize,
    running: usize,
    stuck: usize,
    cost_usd: f64,
}

fn gather(store: &Store, repo: &RepoName) -> Result<Gathered, crate::store::JobError> {
    let jobs = store.repo_jobs(repo, JOBS)?;
    let sessions = store.repo_sessions(repo, OffsetDateTime::UNIX_EPOCH)?;
    let mut pulls = HashMap::new();
    for job in &jobs {
        let link = store
            .report(&job.repo, job.issue)?
            .and_then(|r| serde_json::from_str::<crate::report::render::Tracking>(&r.report).ok())
            .and_then(|t| t.pull_request);
        if let Some(link) = link {
            pulls.insert(job.issue, (link.text, link.url));
        }
    }
    let mut by_parent: BTreeMap<IssueNumber, Vec<IssueRef>> = BTreeMap::new();
    for (parent, sub) in store.sub_issues_in(repo)? {
        by_parent.entry(parent.issue).or_default().push(sub);
    }
    let mut parents = Vec::new();
    for (issue, subs) in by_parent {
        let mut p = Parent {
            issue,
            title: store.job(repo, issue)?.map(|j| j.title),
            total: subs.len(),
            done: 0,
            running: 0,
            stuck: 0,
            cost_usd: 0.0,
        };
        for sub in &subs {
            let job = store.job(&sub.repo, sub.issue)?;
            if store.issue_open(sub)? == Some(false) {
                p.done += 1;
            } else {
                match job.as_ref().map(|j| j.state) {
                    Some(JobState::Running) => p.running += 1,
                    Some(JobState::Stuck) => p.stuck += 1,
                    _ => {}
                }
            }
            // The latest session of each sub-issue's job, as the checklist on the parent counts it.
            if let Some(id) = job.as_ref().and_then(|j| j.session.as_ref()) {
                p.cost_usd += store.session(id)?.and_then(|s| s.cost_usd).unwrap_or(0.0);
            }
        }
        parents.push(p);
    }
    let installation = jobs.iter().find_map(|j| j.installation);
    Ok(Gathered { jobs, sessions, pulls, parents, installation })
}

/// What the job came to, in words.
fn outcome(job: &Job) -> String {
    match job.state {
        JobState::Succeeded => match job.resolution {
            Some(Resolution::Answer) => "answered in a comment".into(),
            Some(Resolution::Plan) => "a plan, in a comment".into(),
            Some(Resolution::PullRequest) | None => "a pull request".into(),
        },
        JobState::Failed => match &job.last_failure {
            Some(f) => format!("{}: {} (will retry)", f.class.as_str(), f.reason),
            None => "failed (will retry)".into(),
        },
        JobState::Stuck => job.stuck_reason.clone().unwrap_or_else(|| "stuck".into()),
        JobState::Cancelled => "cancelled".into(),
        JobState::Running => "running".into(),
        JobState::Queued if job.wait.is_some() => {
            format!("waits: {}", job.wait.as_ref().map(|w| w.headline()).unwrap_or_default())
        }
        JobState::Queued if !job.waiting_on.is_empty() => {
            format!("waits for {}", job.waiting_on.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
        }
        JobState::Queued => "queued".into(),
    }
}

/// The constitution as the page shows it: its rows, or why it cannot be shown.
async fn constitution(
    console: &Console,
    repo: &RepoName,
    installation: Option<InstallationId>,
) -> Result<Effective, String> {
    let Some(backend) = console.inner.options.backend.get() else {
        return Err("Foreman has no GitHub App yet, so it cannot read the repository's files.".into());
    };
    let Some(inst) = installation else {
        return Err("No job of this repository records its installation, so its files cannot be read yet.".into());
    };
    match tokio::time::timeout(CONSTITUTION_WAIT, backend.constitutions.get(inst, repo)).await {
        Ok(Ok(loaded)) => Ok(loaded.effective.clone()),
        Ok(Err(FetchError::Invalid(errors))) => Err(format!(
            "The constitution is invalid, so Foreman does not run sessions here until it is fixed: {}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        )),
        Ok(Err(FetchError::Github(e))) => {
            Err(format!("GitHub could not be read: {}", backend.client.scrub(&e.to_string())))
        }
        Err(_) => Err(format!("GitHub did not give the constitution within {} s.", CONSTITUTION_WAIT.as_secs())),
    }
}

/// A value as the page shows it: text as is, a list as its items, unset as `—`.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".into(),
        serde_json::Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The rules' rows: key, value, origin and the file (with its address on GitHub) that set each: the repository's
/// keys first, then the organisation's, the server's and the defaults.
fn rules(effective: &Effective, repo: &RepoName, web: &str) -> Vec<minijinja::Value> {
    let file = crate::constitution::PATH;
    let org = format!("{}/{}", repo.owner(), crate::constitution::fetch::ORG_REPO);
    let mut rows = crate::constitution::render::effective_rows(effective);
    // The repository's file first, then the organisation's, the server's, the defaults; each part in
    // section and key order.
    rows.sort_by_key(|r| match r.origin {
        Origin::Repo => 0,
        Origin::Org => 1,
        Origin::Server => 2,
        Origin::Default => 3,
    });
    rows.into_iter()
        .map(|row| {
            let (origin, source, href) = match row.origin {
                Origin::Default => ("default", "Foreman's default".to_owned(), None),
                Origin::Server => ("server", "Foreman's configuration".to_owned(), None),
                Origin::Repo => {
                    ("repository", format!("{file} in {repo}"), Some(format!("{web}/{repo}/blob/HEAD/{file}")))
                }
                Origin::Org => {
                    ("organisation", format!("{file} in {org}"), Some(format!("{web}/{org}/blob/HEAD/{file}")))
                }
            };
            let capped = row.capped.as_ref().map(|c| format!("capped: {} asked for {}", c.by, shown(&c.asked)));
            minijinja::context! {
                key => row.key, value => shown(&row.value), origin, source, href, capped,
                ceiling => row.ceiling.as_ref().map(shown),
            }
        })
        .collect()
}

/// `GET /repos/{owner}/{repo}`: the repository's page, for people who can read it (404 otherwise, as for
/// its jobs and logs). The constitution is read from GitHub with Foreman's installation token through the
/// runner's cache (a minute); when it cannot be read the page says why and shows the rest. Links to a pull
/// request come from the job's stored tracking report (GitHub's `html_url`); Foreman does not record the
/// check run's id, so the check run is linked as the pull request's checks tab (`…/pull/N/checks`).
pub(crate) async fn repo_page(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let Ok(repo) = RepoName::new(&owner, &name) else { return not_found() };
    let Some(viewer) = viewer(&console, &headers).await else { return signin_page(&format!("/repos/{repo}")) };
    if !viewer.can_read(&repo.to_string()) {
        return not_found();
    }
    let store = console.inner.options.store.clone();
    let read = repo.clone();
    let g = match tokio::task::spawn_blocking(move || gather(&store, &read)).await {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading a repository's jobs failed");
            return message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read.");
        }
        Err(_) => return message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read."),
    };
    let web = console.inner.web_url.clone();
    let effective = constitution(&console, &repo, g.installation).await;

    let mut cost_by_issue: HashMap<IssueNumber, f64> = HashMap::new();
    for s in &g.sessions {
        *cost_by_issue.entry(s.issue).or_default() += s.cost_usd.unwrap_or(0.0);
    }
    let (mut live, mut history) = (Vec::new(), Vec::new());
    for job in &g.jobs {
        let pull = g.pulls.get(&job.issue);
        let row = minijinja::context! {
            issue => job.issue.0, title => job.title.clone(), state => job.state.to_string(),
            kind => format!("{:?}", job.kind).to_lowercase(), outcome => outcome(job), attempts => job.attempts,
            updated => when(job.updated_at),
            cost => cost_by_issue.get(&job.issue).map(|c| chart::dollars(*c)),
            issue_url => format!("{web}/{repo}/issues/{}", job.issue),
            pull => pull.map(|(text, _)| text.clone()), pull_url => pull.map(|(_, url)| url.clone()),
            checks_url => pull.map(|(_, url)| format!("{url}/checks")),
            session => job.session.as_ref().map(|s| s.0.clone()),
        };
        if job.state.is_live() { live.push(row) } else { history.push(row) }
    }

    let now = OffsetDateTime::now_utc();
    let days = chart::days(&g.sessions, now.date(), DAYS);
    let budget = effective.as_ref().ok().and_then(|e| e.constitution.limits.daily_cost_usd);
    let drawn = chart::chart(&days, budget);
    let today = days.last().map(|d| chart::dollars(d.cost_usd)).unwrap_or_default();
    let total = chart::dollars(days.iter().map(|d| d.cost_usd).sum());
    let days: Vec<minijinja::Value> = days
        .iter()
        .map(|d| minijinja::context! { date => d.date.clone(), cost => chart::dollars(d.cost_usd), sessions => d.sessions })
        .collect();

    let parents: Vec<minijinja::Value> = g
        .parents
        .iter()
        .map(|p| {
            minijinja::context! {
                issue => p.issue.0, title => p.title.clone(), issue_url => format!("{web}/{repo}/issues/{}", p.issue),
                has_job => p.title.is_some(), total => p.total, done => p.done, running => p.running,
                stuck => p.stuck, cost => chart::dollars(p.cost_usd),
            }
        })
        .collect();

    let (rules, constitution_error) = match &effective {
        Ok(e) => (rules(e, &repo, &web), None),
        Err(why) => (Vec::new(), Some(why.clone())),
    };
    render(
        StatusCode::OK,
        "repo.html",
        minijinja::context! {
            title => repo.to_string(), login => viewer.login, csrf => viewer.csrf,
            repo => repo.to_string(), repo_url => format!("{web}/{repo}"), live, history, limit => JOBS,
            rules, constitution_error, chart => minijinja::Value::from(minijinja::value::Serde(&drawn)), days, today, total,
            ndays => DAYS, parents,
        },
    )
}
