//! The one place that makes a job visible on GitHub: the tracking comment, the state labels, the board
//! column and the 👀 acknowledgement of a command.
//!
//! [`Reporter::update`] brings an issue to the state a [`Tracking`] describes and [`Reporter::progress`]
//! edits the tracking comment alone, throttled. Both spend as few GitHub calls as they can: the reporter
//! remembers per job, in memory, the tracking comment's id and the body it last wrote, the state labels it
//! believes the issue carries, the boards the issue is on and the column it last moved them to, so a
//! repeated update costs nothing and a changed state costs only the changed calls. Each label is ensured
//! (created with its colour and description when missing) at most once per repository per process, even
//! when many jobs of a repository are reported at once (they wait on the one create), and never when it has
//! been seen on one of the repository's issues (after a restart, the first issue read back tells).
//!
//! After a restart the memory is empty: the tracking comment is found again by its hidden marker (one
//! `GET`), never created twice; labels and boards are read back before they are changed. Every write is
//! idempotent on GitHub's side (adding a present label, moving a card to its column, reacting twice), so
//! redeliveries and retries converge on one comment, one label of each kind and one reaction.
//!
//! Errors are [`GithubError`]s after the client's own retries; the caller logs them and carries on
//! (reporting never fails a job). A failed call leaves the memory saying what is still to do, so the next
//! update finishes the work.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::render::{self, JobState, Tracking};
use crate::github::{Client, GithubError, LabelSpec, Reaction};
use crate::ids::{InstallationId, IssueNumber, NodeId, RepoName};

/// The `[report]` table of foreman.toml: the names of the labels and board columns Foreman sets, and how
/// often a running job's tracking comment may be edited. Every key has a default, so the table may be
/// absent; keys and defaults are listed in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// The label of a job waiting for a session. Default `foreman:queued`.
    pub queued_label: String,
    /// The label of a job whose session is running. Default `foreman:running`.
    pub running_label: String,
    /// The label of a job set aside after too many failures. Default `foreman:stuck`.
    pub stuck_label: String,
    /// The board's single-select field whose options are the columns. Default `Status`.
    pub status_field: String,
    /// The column a card moves to when its job is claimed. Default `In progress`.
    pub in_progress_column: String,
    /// The column a card moves to when the pull request is open. Default `In review`.
    pub in_review_column: String,
    /// The column a card moves to when its job is stuck. Default `Blocked`.
    pub blocked_column: String,
    /// Seconds between two progress edits of one job's tracking comment. Default 10 (at most one edit per
    /// 10 s): a session streams many events a second, and each edit costs one call of the
    /// installation's 5,000-an-hour quota and notifies no one. 0 turns the throttle off.
    pub min_edit_interval_secs: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            queued_label: "foreman:queued".into(),
            running_label: "foreman:running".into(),
            stuck_label: "foreman:stuck".into(),
            status_field: "Status".into(),
            in_progress_column: "In progress".into(),
            in_review_column: "In review".into(),
            blocked_column: "Blocked".into(),
            min_edit_interval_secs: 10,
        }
    }
}

impl ReportConfig {
    /// Checks the values: names are not blank, GitHub's label names are at most 50 characters, and the three
    /// labels differ (compared case-insensitively, as GitHub compares label names). The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let names = [
            ("report.queued_label", &self.queued_label),
            ("report.running_label", &self.running_label),
            ("report.stuck_label", &self.stuck_label),
            ("report.status_field", &self.status_field),
            ("report.in_progress_column", &self.in_progress_column),
            ("report.in_review_column", &self.in_review_column),
            ("report.blocked_column", &self.blocked_column),
        ];
        for (key, value) in names {
            if value.trim().is_empty() {
                return Err(format!("{key} must not be empty"));
            }
        }
        for (key, value) in &names[..3] {
            if value.chars().count() > 50 {
                return Err(format!("{key} must be at most 50 characters (GitHub's limit for a label name)"));
            }
        }
        let mut seen = HashSet::new();
        for (key, value) in &names[..3] {
            if !seen.insert(value.to_lowercase()) {
                return Err(format!("{key} '{value}' is the same as another report label"));
            }
        }
        Ok(())
    }

    /// The labels a state adds and removes while a job lives:
    ///
    /// | state | adds | removes |
    /// |---|---|---|
    /// | Queued | queued | running, stuck |
    /// | Running | running | queued, stuck |
    /// | Succeeded | — | queued, running, stuck |
    /// | Failed (will retry) | queued | running |
    /// | Stuck | stuck | queued, running |
    /// | Cancelled | — | queued, running |
    pub fn labels_for(&self, state: JobState) -> (Vec<&str>, Vec<&str>) {
        let (q, r, s) = (self.queued_label.as_str(), self.running_label.as_str(), self.stuck_label.as_str());
        match state {
            JobState::Queued => (vec![q], vec![r, s]),
            JobState::Running => (vec![r], vec![q, s]),
            JobState::Succeeded => (vec![], vec![q, r, s]),
            JobState::Failed => (vec![q], vec![r]),
            JobState::Stuck => (vec![s], vec![q, r]),
            JobState::Cancelled => (vec![], vec![q, r]),
        }
    }

    /// The column a state moves the issue's cards to: Running → in progress, Succeeded → in review, Stuck →
    /// blocked; other states leave the cards where they are.
    pub fn column_for(&self, state: JobState) -> Option<&str> {
        match state {
            JobState::Running => Some(&self.in_progress_column),
            JobState::Succeeded => Some(&self.in_review_column),
            JobState::Stuck => Some(&self.blocked_column),
            JobState::Queued | JobState::Failed | JobState::Cancelled => None,
        }
    }

    fn label_spec(&self, name: &str) -> LabelSpec {
        // Colours are GitHub's label palette: yellow for waiting, blue for working, red for needs-a-human.
        let (color, description) = if name.eq_ignore_ascii_case(&self.running_label) {
            ("1d76db", "Foreman: an agent session is working on this")
        } else if name.eq_ignore_ascii_case(&self.stuck_label) {
            ("d93f0b", "Foreman: failed too often, needs a human (/foreman retry)")
        } else {
            ("fbca04", "Foreman: waiting for a session")
        };
        LabelSpec { name: name.to_owned(), color: color.into(), description: description.into() }
    }

    fn is_state_label(&self, name: &str) -> bool {
        [&self.queued_label, &self.running_label, &self.stuck_label].iter().any(|l| l.eq_ignore_ascii_case(name))
    }
}

/// At most this many jobs are remembered. Past it, the memory of idle jobs is dropped, finished jobs first;
/// a forgotten job costs one `GET` to find its comment again, nothing more. Bounds memory in a process that
/// runs for months: one entry is a few hundred bytes.
pub const MAX_REMEMBERED_JOBS: usize = 10_000;

/// What the reporter has done for one job, so it can skip what is already so.
#[derive(Debug, Default)]
struct JobMemory {
    /// The tracking comment's id and URL, once found or created.
    comment: Option<(u64, String)>,
    /// The body last written to it.
    body: Option<String>,
    /// When the comment was last written (any write, or a progress edit tried), for the progress throttle.
    edited_at: Option<Instant>,
    /// The state labels (of [`ReportConfig`]'s three) the issue is believed to carry, lowercased; `None`
    /// until known.
    labels: Option<BTreeSet<String>>,
    /// The issue's cards on organisation boards, read once per job.
    cards: Option<Vec<Card>>,
    /// The column the cards were last moved to.
    column: Option<String>,
    /// The last state written, so finished jobs are forgotten first.
    state: Option<JobState>,
}

#[derive(Debug, Clone)]
struct Card {
    item: NodeId,
    org: String,
    number: u64,
    column: Option<String>,
}

type JobKey = (RepoName, IssueNumber);

/// A repository and a label name, lowercased (GitHub compares label names case-insensitively).
type LabelKey = (RepoName, String);

/// Set once a label is known to exist; shared by every job waiting on its one create.
type Ensured = Arc<tokio::sync::OnceCell<()>>;

struct Inner {
    client: Client,
    config: ReportConfig,
    jobs: Mutex<HashMap<JobKey, Arc<tokio::sync::Mutex<JobMemory>>>>,
    /// (repository, lowercased label) pairs ensured in this process, each set once its one create (or the
    /// create's 422 `already_exists`) has come back; jobs that need the label meanwhile wait on that create
    /// rather than sending their own.
    ensured: Mutex<HashMap<LabelKey, Ensured>>,
}

/// Makes jobs visible on GitHub. Cheap to clone; clones share the memory of what was done.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter acting through `client` with `config`, remembering nothing yet.
    pub fn new(client: Client, config: ReportConfig) -> Self {
        Self { inner: Arc::new(Inner { client, config, jobs: Mutex::default(), ensured: Mutex::default() }) }
    }

    /// The `[report]` configuration.
    pub fn config(&self) -> &ReportConfig {
        &self.inner.config
    }

    /// 👀 on the comment that carried a command (`POST …/issues/comments/{comment_id}/reactions`). Idempotent:
    /// GitHub answers 200 for a reaction the app already made, so a redelivery adds none.
    pub async fn acknowledge(&self, inst: InstallationId, repo: &RepoName, comment_id: u64) -> Result<(), GithubError> {
        self.inner.client.react_to_comment(inst, repo, comment_id, Reaction::Eyes).await
    }

    /// Brings the issue to the state `t` describes: the tracking comment (found by its hidden marker,
    /// [`crate::markers::tracking`], updated in place, created only when missing), the labels for `t.state`
    /// ([`ReportConfig::labels_for`]) and the board column for `t.state` ([`ReportConfig::column_for`]) on
    /// every organisation board the issue is on. Not throttled; what is already so costs no call. Returns the
    /// tracking comment's URL (for the pull-request body).
    ///
    /// A board whose field lacks the column is skipped (a debug log), as is a card already in it. The comment,
    /// the labels and the board are each tried even when another failed. Errors: the first [`GithubError`]
    /// met (the comment's first); what was done is remembered, the rest is done by the next update.
    pub async fn update(&self, inst: InstallationId, t: &Tracking) -> Result<String, GithubError> {
        let job = self.job(&t.repo, t.issue);
        let mut mem = job.lock().await;
        mem.state = Some(t.state);
        let body = render::tracking_comment(t);
        let url = self.write_comment(&mut mem, inst, t, &body).await;
        let labels = self.set_labels(&mut mem, inst, t).await;
        let board = match self.inner.config.column_for(t.state) {
            Some(column) => self.move_cards(&mut mem, inst, t, column).await,
            None => Ok(()),
        };
        let url = url?;
        labels?;
        board?;
        Ok(url)
    }

    /// A progress edit of the tracking comment only: at most one per
    /// [`ReportConfig::min_edit_interval_secs`] per job, counted from the comment's last write or attempted
    /// write (an [`Reporter::update`] counts too, and a failed edit waits out the interval like a made one, so
    /// an unavailable GitHub is not asked again at every session event). `Ok(false)` when skipped: inside the
    /// interval, while another write of the same job is in flight, or when the comment would not change.
    /// Never touches labels or the board.
    pub async fn progress(&self, inst: InstallationId, t: &Tracking) -> Result<bool, GithubError> {
        let job = self.job(&t.repo, t.issue);
        let Ok(mut mem) = job.try_lock() else { return Ok(false) };
        let interval = Duration::from_secs(self.inner.config.min_edit_interval_secs);
        if mem.edited_at.is_some_and(|at| at.elapsed() < interval) {
            return Ok(false);
        }
        let body = render::tracking_comment(t);
        if mem.comment.is_some() && mem.body.as_deref() == Some(body.as_str()) {
            return Ok(false);
        }
        mem.edited_at = Some(Instant::now());
        self.write_comment(&mut mem, inst, t, &body).await?;
        Ok(true)
    }

    /// When the next progress edit of `repo#issue` may be made: `None` when it may be made now (or nothing is
    /// remembered of the job).
    pub fn next_progress_at(&self, repo: &RepoName, issue: IssueNumber) -> Option<Instant> {
        let job = self.inner.jobs.lock().expect("jobs lock").get(&(repo.clone(), issue)).cloned()?;
        let mem = job.try_lock().ok()?;
        let due = mem.edited_at? + Duration::from_secs(self.inner.config.min_edit_interval_secs);
        (due > Instant::now()).then_some(due)
    }

    /// The memory of one job, created on first use.
    fn job(&self, repo: &RepoName, issue: IssueNumber) -> Arc<tokio::sync::Mutex<JobMemory>> {
        let mut jobs = self.inner.jobs.lock().expect("jobs lock");
        let key = (repo.clone(), issue);
        if let Some(job) = jobs.get(&key) {
            return job.clone();
        }
        if jobs.len() >= MAX_REMEMBERED_JOBS {
            forget_idle(&mut jobs);
        }
        jobs.entry(key).or_default().clone()
    }

    /// Writes the tracking comment unless it already reads `body`; returns its URL.
    async fn write_comment(
        &self,
        mem: &mut JobMemory,
        inst: InstallationId,
        t: &Tracking,
        body: &str,
    ) -> Result<String, GithubError> {
        let client = &self.inner.client;
        if let Some((id, url)) = mem.comment.clone() {
            if mem.body.as_deref() == Some(body) {
                return Ok(url);
            }
            match client.update_comment(inst, &t.repo, id, body).await {
                Ok(c) => {
                    mem.body = Some(body.to_owned());
                    mem.edited_at = Some(Instant::now());
                    return Ok(if c.html_url.is_empty() { url } else { c.html_url });
                }
                // Someone deleted it: find (or make) it again below.
                Err(e) if e.is_not_found() => {
                    tracing::info!(repo = %t.repo, issue = t.issue.0, "the tracking comment was deleted; writing it again");
                    mem.comment = None;
                    mem.body = None;
                }
                Err(e) => return Err(e),
            }
        }
        let marker = crate::markers::tracking(&t.repo, t.issue);
        let c = client.upsert_marked_comment(inst, &t.repo, t.issue, &marker, body).await?;
        mem.comment = Some((c.id, c.html_url.clone()));
        mem.body = Some(body.to_owned());
        mem.edited_at = Some(Instant::now());
        Ok(c.html_url)
    }

    /// Adds and removes the state labels for `t.state`, skipping what the memory says is already so.
    async fn set_labels(&self, mem: &mut JobMemory, inst: InstallationId, t: &Tracking) -> Result<(), GithubError> {
        let config = &self.inner.config;
        let client = &self.inner.client;
        let (add, remove) = config.labels_for(t.state);
        let present = |mem: &JobMemory, name: &str| mem.labels.as_ref().map(|l| l.contains(&name.to_lowercase()));
        let add: Vec<&str> = add.into_iter().filter(|l| present(mem, l) != Some(true)).collect();
        if !add.is_empty() {
            for name in &add {
                self.ensure_label(inst, &t.repo, name).await?;
            }
            let after = client.add_labels_by_name(inst, &t.repo, t.issue, &add).await?;
            mem.labels = Some(self.state_labels(after.iter().map(|l| l.name.as_str())));
            self.seen(&t.repo, mem.labels.iter().flatten());
        }
        if mem.labels.is_none() && remove.iter().any(|l| present(mem, l) != Some(false)) {
            let issue = client.issue(inst, &t.repo, t.issue).await?;
            mem.labels = Some(self.state_labels(issue.labels.iter().map(|l| l.name.as_str())));
            self.seen(&t.repo, mem.labels.iter().flatten());
        }
        for name in remove {
            if present(mem, name) == Some(false) {
                continue;
            }
            // false: the issue did not have it (GitHub's 404), which is what a retry after a lost answer sees.
            client.remove_label(inst, &t.repo, t.issue, name).await?;
            if let Some(labels) = mem.labels.as_mut() {
                labels.remove(&name.to_lowercase());
            }
        }
        Ok(())
    }

    fn state_labels<'a>(&self, names: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
        names.filter(|n| self.inner.config.is_state_label(n)).map(str::to_lowercase).collect()
    }

    /// Remembers state labels (lowercased) seen on one of the repository's issues as existing, so no job of
    /// the repository creates them again in this process.
    fn seen<'a>(&self, repo: &RepoName, names: impl Iterator<Item = &'a String>) {
        let mut ensured = self.inner.ensured.lock().expect("ensured lock");
        for name in names {
            // Already set (or being created): nothing to learn.
            let _ = ensured.entry((repo.clone(), name.clone())).or_default().set(());
        }
    }

    /// Creates `name` in the repository with its colour and description, once per repository per process,
    /// however many jobs of the repository are reported at the same moment (they share the one create).
    async fn ensure_label(&self, inst: InstallationId, repo: &RepoName, name: &str) -> Result<(), GithubError> {
        let key = (repo.clone(), name.to_lowercase());
        let once = self.inner.ensured.lock().expect("ensured lock").entry(key).or_default().clone();
        // A failed create leaves the cell empty: the next update (this job's or another's) tries again.
        let spec = self.inner.config.label_spec(name);
        once.get_or_try_init(|| async { self.inner.client.ensure_label(inst, repo, &spec).await.map(drop) }).await?;
        Ok(())
    }

    /// Moves every card of the issue on an organisation board to `column`, unless it is already there or the
    /// board has no such column.
    async fn move_cards(
        &self,
        mem: &mut JobMemory,
        inst: InstallationId,
        t: &Tracking,
        column: &str,
    ) -> Result<(), GithubError> {
        if mem.column.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(column)) {
            return Ok(());
        }
        let config = &self.inner.config;
        let client = &self.inner.client;
        if mem.cards.is_none() {
            let items = client.issue_project_items(inst, &t.repo, t.issue, &config.status_field).await?;
            mem.cards = Some(
                items
                    .into_iter()
                    .map(|(item, org, number)| Card { item: item.id, org, number, column: item.column })
                    .collect(),
            );
        }
        let cards = mem.cards.as_mut().expect("read above");
        for card in cards.iter_mut() {
            if card.column.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(column)) {
                continue;
            }
            let board = match client.project(inst, &card.org, card.number, &config.status_field).await {
                Ok(board) => board,
                Err(e @ GithubError::NoSuchField { .. }) => {
                    tracing::debug!(repo = %t.repo, issue = t.issue.0, error = %e, "board skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if board.option_id(column).is_none() {
                tracing::debug!(
                    repo = %t.repo, issue = t.issue.0, board = %format!("{}/{}", card.org, card.number), column,
                    "the board has no such column; its card stays where it is"
                );
                continue;
            }
            if let Err(e) = client.move_project_item(inst, &board, &card.item, column).await {
                // The card may have been removed from the board: read the cards again next time.
                mem.cards = None;
                return Err(e);
            }
            card.column = Some(column.to_owned());
        }
        mem.column = Some(column.to_owned());
        Ok(())
    }
}

/// Drops the memory of jobs no call is using: finished ones first, all idle ones if that is not enough.
fn forget_idle(jobs: &mut HashMap<JobKey, Arc<tokio::sync::Mutex<JobMemory>>>) {
    let idle_and = |job: &Arc<tokio::sync::Mutex<JobMemory>>, finished_only: bool| {
        Arc::strong_count(job) == 1
            && job.try_lock().is_ok_and(|m| {
                !finished_only || matches!(m.state, Some(JobState::Succeeded | JobState::Cancelled | JobState::Stuck))
            })
    };
    jobs.retain(|_, job| !idle_and(job, true));
    if jobs.len() >= MAX_REMEMBERED_JOBS {
        jobs.retain(|_, job| !idle_and(job, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_sets_its_labels_and_column() {
        let c = ReportConfig::default();
        assert_eq!(c.labels_for(JobState::Queued), (vec!["foreman:queued"], vec!["foreman:running", "foreman:stuck"]));
        assert_eq!(c.labels_for(JobState::Running), (vec!["foreman:running"], vec!["foreman:queued", "foreman:stuck"]));
        assert_eq!(
            c.labels_for(JobState::Succeeded),
            (vec![], vec!["foreman:queued", "foreman:running", "foreman:stuck"])
        );
        assert_eq!(c.labels_for(JobState::Failed), (vec!["foreman:queued"], vec!["foreman:running"]));
        assert_eq!(c.labels_for(JobState::Stuck), (vec!["foreman:stuck"], vec!["foreman:queued", "foreman:running"]));
        assert_eq!(c.labels_for(JobState::Cancelled), (vec![], vec!["foreman:queued", "foreman:running"]));
        assert_eq!(c.column_for(JobState::Running), Some("In progress"));
        assert_eq!(c.column_for(JobState::Succeeded), Some("In review"));
        assert_eq!(c.column_for(JobState::Stuck), Some("Blocked"));
        for s in [JobState::Queued, JobState::Failed, JobState::Cancelled] {
            assert_eq!(c.column_for(s), None);
        }
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(ReportConfig::default().validate(), Ok(()));
        let blank = ReportConfig { blocked_column: " ".into(), ..ReportConfig::default() };
        assert!(blank.validate().unwrap_err().contains("report.blocked_column"));
        let same = ReportConfig { stuck_label: "Foreman:Queued".into(), ..ReportConfig::default() };
        assert!(same.validate().unwrap_err().contains("report.stuck_label"));
        let long = ReportConfig { running_label: "x".repeat(51), ..ReportConfig::default() };
        assert!(long.validate().unwrap_err().contains("50 characters"));
        let toml = "queued_label = \"q\"\nunknown = 1\n";
        assert!(toml::from_str::<ReportConfig>(toml).is_err(), "unknown keys are refused");
        let partial: ReportConfig = toml::from_str("min_edit_interval_secs = 3\n").unwrap();
        assert_eq!(partial, ReportConfig { min_edit_interval_secs: 3, ..ReportConfig::default() });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
    fn the_report_table_is_read_from_foreman_toml() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(crate::config::Config::load(None).unwrap().report, ReportConfig::default());
            jail.create_file("f.toml", "[report]\nblocked_column = \"On hold\"\nmin_edit_interval_secs = 30\n")?;
            let c = crate::config::Config::load(Some(std::path::Path::new("f.toml"))).unwrap();
            assert_eq!(
                c.report,
                ReportConfig {
                    blocked_column: "On hold".into(),
                    min_edit_interval_secs: 30,
                    ..ReportConfig::default()
                }
            );
            jail.create_file("bad.toml", "[report]\nrunning_label = \"foreman:queued\"\n")?;
            let e = crate::config::Config::load(Some(std::path::Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("report.running_label"), "{e}");
            Ok(())
        });
    }
}
