//! A parent issue's progress: a live checklist of its sub-issues, one comment on the parent (its first line
//! [`crate::markers::progress`]), drawn again whenever a sub-issue is added or removed (`sub_issues`
//! deliveries) or a sub-issue's job changes, and ending as a final summary once every sub-issue is closed.
//!
//! Each sub-issue shows its state: done (closed), pull request #M open, running, queued, waiting for #N
//! (its open blockers), stuck, or not started; then one line with done/total, running, stuck and the cost
//! so far (the latest session of each sub-issue's job). The sub-issues are read from GitHub
//! (`GET …/sub_issues`) at each drawing, so ones people add or remove by hand show as they are.

use std::sync::LazyLock;

use crate::github::{Client, GithubError, LinkedIssue};
use crate::ids::InstallationId;
use crate::job::{IssueRef, Job, JobState, Resolution};
use crate::store::Store;

/// One drawing at a time in this process: two at once could both find no comment and make two.
static DRAWING: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Where a sub-issue stands, as its checklist line says it.
#[derive(Clone, Debug, PartialEq)]
pub enum SubState {
    /// Closed.
    Done,
    /// Its job succeeded with a pull request that is (as far as Foreman knows) open: `#M`.
    PullRequest(String),
    /// Its job runs.
    Running,
    /// Its job waits for these open blockers (already phrased, `#3`, `acme/other#4`).
    Waiting(Vec<String>),
    /// Its job is queued.
    Queued,
    /// Its job is stuck: needs `/foreman retry`.
    Stuck,
    /// No job, or one that ended without a pull request.
    NotStarted,
}

/// One line of the checklist.
#[derive(Clone, Debug, PartialEq)]
pub struct SubIssueLine {
    /// The sub-issue as the parent names it (`#4`, or `acme/other#4` in another repository).
    pub name: String,
    /// Its title.
    pub title: String,
    /// Where it stands.
    pub state: SubState,
    /// Its latest session's cost in US dollars, when known.
    pub cost_usd: Option<f64>,
}

/// The checklist's Markdown: the marker, a headline (a final summary once every line is done), the lines,
/// and the totals line. Titles are people's text: shown as inline code, so they carry no Markdown, link or
/// mention.
pub fn render(parent: &IssueRef, lines: &[SubIssueLine]) -> String {
    let total = lines.len();
    let done = lines.iter().filter(|l| l.state == SubState::Done).count();
    let running = lines.iter().filter(|l| l.state == SubState::Running).count();
    let stuck = lines.iter().filter(|l| l.state == SubState::Stuck).count();
    let cost: f64 = lines.iter().filter_map(|l| l.cost_usd).sum();
    let mut out = format!("{}\n", crate::markers::progress(&parent.repo, parent.issue));
    if total > 0 && done == total {
        out.push_str(&format!("### ✅ Foreman: all {total} sub-issues are done\n\n"));
    } else {
        out.push_str("### 📋 Foreman: progress of the sub-issues\n\n");
    }
    for l in lines {
        let check = if l.state == SubState::Done { "x" } else { " " };
        let state = match &l.state {
            SubState::Done => "done".to_owned(),
            SubState::PullRequest(pr) => format!("pull request {pr} open"),
            SubState::Running => "running".to_owned(),
            SubState::Waiting(on) => format!("waiting for {}", on.join(", ")),
            SubState::Queued => "queued".to_owned(),
            SubState::Stuck => "stuck: `/foreman retry` there".to_owned(),
            SubState::NotStarted => "not started".to_owned(),
        };
        let title = code_span(&l.title);
        out.push_str(&format!("- [{check}] {} {title}: {state}\n", l.name));
    }
    let cost = if cost > 0.0 { format!("${cost:.2}") } else { "$0.00".to_owned() };
    out.push_str(&format!("\n**{done}/{total} done** · {running} running · {stuck} stuck · cost so far {cost}\n"));
    if total > 0 && done == total {
        out.push_str("\nEvery sub-issue is closed: this plan is complete.\n");
    }
    out
}

/// `text` on one line (at most 80 characters) as an inline code span: no Markdown, link or mention.
fn code_span(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut flat: String = flat.chars().take(80).collect();
    if flat.is_empty() {
        flat.push('…');
    }
    let longest = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if flat.starts_with('`') || flat.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{flat}{pad}{fence}")
}

/// The checklist line of sub-issue `sub` of `parent`, from GitHub's view of it and its job.
fn line(store: &Store, parent: &IssueRef, sub: &LinkedIssue, repo: crate::ids::RepoName) -> SubIssueLine {
    let name =
        |r: &IssueRef| if r.repo == parent.repo { format!("#{}", r.issue) } else { format!("{}#{}", r.repo, r.issue) };
    let this = IssueRef { repo, issue: sub.number };
    let job: Option<Job> = store.job(&this.repo, this.issue).ok().flatten();
    let cost_usd = job
        .as_ref()
        .and_then(|j| j.session.as_ref())
        .and_then(|s| store.session(s).ok().flatten())
        .and_then(|s| s.cost_usd);
    let state = if !sub.is_open() {
        SubState::Done
    } else {
        match job.as_ref().map(|j| (j.state, j)) {
            Some((JobState::Running, _)) => SubState::Running,
            Some((JobState::Stuck, _)) => SubState::Stuck,
            Some((JobState::Queued | JobState::Failed, j)) if !j.waiting_on.is_empty() => {
                SubState::Waiting(j.waiting_on.iter().map(name).collect())
            }
            Some((JobState::Queued | JobState::Failed, _)) => SubState::Queued,
            Some((JobState::Succeeded, j)) if j.resolution.is_none_or(|r| r == Resolution::PullRequest) => {
                let pr = store
                    .report(&this.repo, this.issue)
                    .ok()
                    .flatten()
                    .and_then(|r| serde_json::from_str::<crate::report::render::Tracking>(&r.report).ok())
                    .and_then(|t| t.pull_request)
                    .map(|l| l.text);
                pr.map_or(SubState::NotStarted, SubState::PullRequest)
            }
            _ => SubState::NotStarted,
        }
    };
    SubIssueLine { name: name(&this), title: sub.title.clone(), state, cost_usd }
}

/// Draws `parent`'s checklist again: reads its sub-issues, records each one's parent (so its job's changes
/// find the checklist), and writes the comment when it has sub-issues. Returns whether it wrote one.
///
/// Errors: GitHub failed (the next change or reconciliation draws it again).
pub async fn redraw(
    client: &Client,
    store: &Store,
    inst: InstallationId,
    parent: &IssueRef,
) -> Result<bool, GithubError> {
    let _one = DRAWING.lock().await;
    let subs = client.sub_issue_list(inst, &parent.repo, parent.issue).await?;
    let mut lines = Vec::with_capacity(subs.len());
    for sub in &subs {
        let Some(repo) = sub.repo() else { continue };
        let r = IssueRef { repo: repo.clone(), issue: sub.number };
        if let Err(e) = store.set_parent(&r, Some(parent)) {
            tracing::warn!(sub = %r, error = %e, "recording a sub-issue's parent failed");
        }
        lines.push(line(store, parent, sub, repo));
    }
    if lines.is_empty() {
        return Ok(false);
    }
    let marker = crate::markers::progress(&parent.repo, parent.issue);
    client.upsert_marked_comment(inst, &parent.repo, parent.issue, &marker, &render(parent, &lines)).await?;
    Ok(true)
}

/// Draws the checklist of the parent `sub` was recorded under, if any ([`redraw`]); failures are logged.
pub async fn redraw_parent_of(client: &Client, store: &Store, inst: InstallationId, sub: &IssueRef) {
    let parent = match store.parent_of(sub) {
        Ok(Some(parent)) => parent,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(%sub, error = %e, "reading a sub-issue's parent failed");
            return;
        }
    };
    if let Err(e) = redraw(client, store, inst, &parent).await {
        tracing::warn!(%parent, error = %e, "drawing the sub-issue checklist failed; the next change draws it again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_counts_and_ends_in_a_summary() {
        let parent = IssueRef { repo: "o/r".parse().unwrap(), issue: crate::ids::IssueNumber(1) };
        let l = |name: &str, state: SubState, cost| SubIssueLine {
            name: name.into(),
            title: "T [x](y) @me".into(),
            state,
            cost_usd: cost,
        };
        let lines = [
            l("#2", SubState::Done, Some(0.5)),
            l("#3", SubState::Waiting(vec!["#2".into()]), None),
            l("#4", SubState::Stuck, Some(0.25)),
            l("x/y#5", SubState::PullRequest("#9".into()), None),
        ];
        let md = render(&parent, &lines);
        let first = format!("{}\n### 📋", crate::markers::progress(&parent.repo, parent.issue));
        assert!(md.starts_with(&first), "{md}");
        assert!(md.contains("- [x] #2 `T [x](y) @me`: done"), "{md}");
        assert!(md.contains("- [ ] #3 `T [x](y) @me`: waiting for #2"), "{md}");
        assert!(md.contains("#4 `T [x](y) @me`: stuck: `/foreman retry` there"), "{md}");
        assert!(md.contains("x/y#5 `T [x](y) @me`: pull request #9 open"), "{md}");
        assert!(md.contains("**1/4 done** · 0 running · 1 stuck · cost so far $0.75"), "{md}");
        let all = [l("#2", SubState::Done, None), l("#3", SubState::Done, None)];
        let md = render(&parent, &all);
        assert!(md.contains("### ✅ Foreman: all 2 sub-issues are done"), "{md}");
        assert!(md.contains("this plan is complete"), "{md}");
    }
}
