//! [`Action`]: one thing the decision core asks to be done about an event, carried out by
//! `crate::dispatch::effects`.

use serde::Serialize;

use super::links;
use super::{JobKind, Lookup, Template, Trigger};
use crate::ids::{CommitSha, DeliveryId, InstallationId, IssueNumber, RepoName};

/// One thing to do about an event. Serialised as one JSON object with a `decision` tag, e.g.
/// `{"decision":"enqueue","kind":"code","repo":"owner/name","issue":12,"trigger":"label","requester":"octocat"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Action {
    /// Queue a job for the issue (one job per repository and issue: the store keeps it unique).
    Enqueue {
        /// What the job does.
        kind: JobKind,
        /// The repository.
        repo: RepoName,
        /// The issue (or, for a follow-up, the pull request).
        issue: IssueNumber,
        /// What asked for it.
        trigger: Trigger,
        /// Who asked: the login of the labeller, card mover or commenter.
        requester: String,
        /// Extra instructions from `/foreman run <instructions>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        instructions: Option<String>,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
        /// The delivery that asked, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        delivery: Option<DeliveryId>,
    },
    /// Cancel the issue's queued (or running) job.
    Cancel {
        /// The repository.
        repo: RepoName,
        /// The issue.
        issue: IssueNumber,
        /// Why, for the job's record and the tracking comment.
        reason: String,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// Run the issue's failed or cancelled job again.
    Retry {
        /// The repository.
        repo: RepoName,
        /// The issue.
        issue: IssueNumber,
        /// Who asked.
        requester: String,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// Post a comment on the issue or pull request.
    Reply {
        /// The repository.
        repo: RepoName,
        /// The issue or pull request.
        issue: IssueNumber,
        /// The comment's Markdown.
        text: String,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// Read this from GitHub, put it into the [`Snapshot`], and decide again.
    Lookup {
        /// What to read.
        #[serde(flatten)]
        what: Lookup,
        /// The installation to read through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// Record that an issue was closed or reopened, so the jobs that depend on it (`Depends on #N`) are
    /// unblocked or blocked again at once.
    IssueState {
        /// The repository.
        repo: RepoName,
        /// The issue.
        issue: IssueNumber,
        /// Whether it is open now.
        open: bool,
    },
    /// Re-place the issue's queued job by its title (phase key) and labels (priority) as the delivery shows
    /// them: a priority label added or removed, or the title edited, while the job waits.
    Reorder {
        /// The repository.
        repo: RepoName,
        /// The issue.
        issue: IssueNumber,
        /// Its title now.
        title: String,
        /// Its labels now.
        labels: Vec<String>,
    },
    /// Check a pull request's `.github/foreman.toml` at its head commit and report it as a check run
    /// (`constitution::github::check_pull_request`; nothing is posted when the pull request does
    /// not change the file).
    CheckConstitution {
        /// The repository.
        repo: RepoName,
        /// The pull request.
        pull: IssueNumber,
        /// Its head commit (full SHA), from the payload's `pull_request.head.sha`.
        head_sha: CommitSha,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// `.github/foreman.toml` changed on the default branch of `repo` (or of the owner's `.github`
    /// repository, for every repository of the owner): queue again the jobs waiting for it to be fixed.
    ConstitutionChanged {
        /// The repository pushed to.
        repo: RepoName,
        /// The commit that changed it.
        after: CommitSha,
    },
    /// Reply with the repository's effective constitution and each value's origin
    /// (`crate::constitution::github::show`).
    ShowConstitution {
        /// The repository.
        repo: RepoName,
        /// The issue or pull request to reply on.
        issue: IssueNumber,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// Open a pull request adding a starter `.github/foreman.toml`
    /// (`crate::constitution::github::init_pull_request`).
    InitConstitution {
        /// The repository.
        repo: RepoName,
        /// The issue or pull request the command was written on (the reply goes there).
        issue: IssueNumber,
        /// The starter file's template.
        template: Template,
        /// Who asked.
        requester: String,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// A "blocked by" link or a sub-issue changed on GitHub ([`links::LinkAction`]).
    Link(links::LinkAction),
    /// Create the tasks of the issue's plan as its sub-issues (`crate::plan::create`).
    ApprovePlan {
        /// The repository.
        repo: RepoName,
        /// The planned issue.
        issue: IssueNumber,
        /// Who approved.
        requester: String,
        /// The installation to act through.
        #[serde(skip_serializing_if = "Option::is_none")]
        installation: Option<InstallationId>,
    },
    /// A GitHub Actions run ended (`workflow_run` or `workflow_job` `completed`): the session waiting on it,
    /// if one does, reads the run now, so a run that ended without handing back its work fails its attempt
    /// at once rather than at the next read (`executor.poll_interval_secs`). Every other run (a repository's
    /// own CI) comes to nothing.
    RunEnded {
        /// The run's id (`workflow_run.id`, `workflow_job.run_id`).
        run_id: u64,
    },
    /// Do nothing, for this reason.
    Ignore {
        /// Why, in words that answer "why didn't Foreman react?".
        reason: String,
    },
}

impl Action {
    /// The `decision` tag, for metrics and logs: `enqueue`, `cancel`, `retry`, `reply`, `lookup`,
    /// `check_constitution`, `show_constitution`, `constitution_changed`, `init_constitution`, `approve_plan`,
    /// `issue_state`, `reorder`, `link`, `run_ended` or `ignore`.
    pub fn decision(&self) -> &'static str {
        match self {
            Action::CheckConstitution { .. } => "check_constitution",
            Action::ShowConstitution { .. } => "show_constitution",
            Action::ConstitutionChanged { .. } => "constitution_changed",
            Action::InitConstitution { .. } => "init_constitution",
            Action::ApprovePlan { .. } => "approve_plan",
            Action::Enqueue { .. } => "enqueue",
            Action::Cancel { .. } => "cancel",
            Action::Retry { .. } => "retry",
            Action::Reply { .. } => "reply",
            Action::Lookup { .. } => "lookup",
            Action::Ignore { .. } => "ignore",
            Action::IssueState { .. } => "issue_state",
            Action::Reorder { .. } => "reorder",
            Action::Link(_) => "link",
            Action::RunEnded { .. } => "run_ended",
        }
    }
}
