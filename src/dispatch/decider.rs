//! The decider: the [`Consumer`] that decodes each delivery into Foreman's own event type, decides with the
//! issue's job state (a lookup carried out and a second decision when one is asked for), and hands each
//! action to the [effects](super::effects).
//!
//! A payload that does not decode is dead-lettered with the decoder's message. The actions decided, with
//! what became of each, are kept with the delivery as its `decisions` (one JSON object each), so
//! `GET /api/deliveries/{id}` answers "why did (or didn't) Foreman react to this?". A store failure, or
//! GitHub unavailable for a lookup, leaves the delivery in the inbox for the next pass.
//!
//! Without GitHub ([`Decider::new`] alone: no App credentials), lookups and replies are recorded, not
//! carried out.

use std::borrow::Cow;
use std::fmt;

use time::OffsetDateTime;

use super::Transient;
use super::cancel::Canceller;
use super::drain::{Consumer, Processed};
use super::effects::{Effect, Effects, GithubSide};
use crate::decide::{Action, DecideConfig, ItemContent, ItemFacts, JobFacts, Level, Lookup, Snapshot};
use crate::event::{Event, EventKind};
use crate::github::{GithubError, Permission};
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::job::JobState;
use crate::scheduler::Scheduler;
use crate::store::DeliveryMeta;
use crate::store::JobError;

/// The consumer of the inbox; see the module's documentation.
pub struct Decider {
    config: DecideConfig,
    effects: Effects,
}

/// What a lookup came to: the fact read, or the answer that it cannot be read.
enum Looked {
    /// The fact is in the snapshot: decide again.
    Found,
    /// GitHub answered that it cannot be read (not found, forbidden, no installation): decide without it.
    Unreadable(String),
}

impl fmt::Display for Looked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Looked::Found => f.write_str("looked up"),
            Looked::Unreadable(why) => write!(f, "lookup failed: {why}"),
        }
    }
}

impl Decider {
    /// A decider with the `[triggers]` configuration, acting on `scheduler`'s job store only.
    pub fn new(config: DecideConfig, scheduler: Scheduler) -> Self {
        let canceller = Canceller::new(scheduler.clone(), config.label.clone());
        Self { config, effects: Effects { scheduler, canceller, github: None, remote: None } }
    }

    /// The same, telling `registry` when a workflow run completes (`workflow_run`, `workflow_job`), so a
    /// session waiting on a run that ended without handing back its work fails at once.
    pub fn with_remote(mut self, registry: crate::remote::Registry) -> Self {
        self.effects.remote = Some(registry);
        self
    }

    /// The same, also acting on GitHub: lookups, replies, acknowledgements, reports, and cancellations
    /// through `canceller` (which stops running sessions and reports).
    pub fn with_github(mut self, github: GithubSide, canceller: Canceller) -> Self {
        self.effects.github = Some(github);
        self.effects.canceller = canceller;
        self
    }

    fn scheduler(&self) -> &Scheduler {
        &self.effects.scheduler
    }

    fn job_state(&self, repo: &RepoName, issue: IssueNumber) -> Result<Option<crate::decide::JobState>, JobError> {
        Ok(self.scheduler().store().job(repo, issue)?.map(|j| j.state))
    }

    fn snapshot(&self, event: &Event) -> Result<Snapshot, JobError> {
        let Some(issue) = event.issue() else { return Ok(Default::default()) };
        let store = self.scheduler().store();
        let Some(job) = store.job(&issue.repo, issue.number)? else { return Ok(Default::default()) };
        let state = job.state;
        // Only `status` reads the figures, and only comments carry commands: other deliveries (most are
        // Foreman's own label and comment echoes) skip the queue-position count, O(position).
        let commands = matches!(
            event.kind,
            EventKind::IssueComment { .. }
                | EventKind::PullRequestReview { .. }
                | EventKind::PullRequestReviewComment { .. }
        );
        if !commands {
            return Ok(Snapshot { job: Some(state), ..Default::default() });
        }
        let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).ok();
        let facts = JobFacts {
            position: store.queue_position(&job)?,
            attempts: job.attempts,
            failures: (job.failures.agent + job.failures.validation, self.scheduler().config().max_failures),
            last_failure: job.last_failure.as_ref().map(|f| format!("{}: {}", f.class.as_str(), f.reason)),
            stuck_reason: job.stuck_reason.clone(),
            last_session: job.session.as_ref().map(|s| s.to_string()),
            not_before: job.not_before.filter(|_| job.state == JobState::Failed).and_then(rfc3339),
        };
        Ok(Snapshot { job: Some(state), facts: Some(facts), ..Default::default() })
    }

    /// Reads the fact a lookup asks for into `snapshot`.
    async fn lookup(
        &self,
        github: &GithubSide,
        what: &Lookup,
        installation: Option<InstallationId>,
        snapshot: &mut Snapshot,
    ) -> Result<Looked, Transient> {
        let Some(inst) = installation else {
            return Ok(Looked::Unreadable("the delivery names no installation".into()));
        };
        let answer = |e: GithubError| {
            if e.is_transient() { Err(Transient::Github(e)) } else { Ok(Looked::Unreadable(e.to_string())) }
        };
        match what {
            Lookup::Permission { repo, user, user_id, .. } => {
                let level = match github.client.collaborator_permission(inst, repo, *user_id, user).await {
                    Ok(p) => match p {
                        Permission::None => Level::Anyone,
                        Permission::Read => Level::Read,
                        Permission::Triage => Level::Triage,
                        Permission::Write => Level::Write,
                        Permission::Maintain => Level::Maintain,
                        Permission::Admin => Level::Admin,
                    },
                    Err(GithubError::NotFound { .. }) => Level::Anyone,
                    Err(e) => return answer(e),
                };
                snapshot.permission = Some(level);
            }
            Lookup::ProjectItem { item, .. } => {
                let found = match github.client.project_item(inst, item, &self.config.status_field).await {
                    Ok(found) => found,
                    Err(e) => return answer(e),
                };
                let Some(found) = found else {
                    return Ok(Looked::Unreadable(format!("the board item {item} no longer exists")));
                };
                let content = match &found.content {
                    Some((repo, number)) => {
                        snapshot.job = self.job_state(repo, *number)?;
                        ItemContent::Issue { repo: repo.clone(), number: *number }
                    }
                    None => ItemContent::DraftIssue,
                };
                snapshot.item = Some(ItemFacts { status_field: found.field_id, status: found.column, content });
            }
        }
        Ok(Looked::Found)
    }

    /// The `[triggers]` for `repo`: the server's, with what the repository's or its organisation's
    /// constitution sets (cached for [`crate::constitution::fetch::CACHE_TTL`]). The server's alone when
    /// there is no GitHub client, or the constitution cannot be read or is invalid (the runner reports an
    /// invalid file on the issue when a job starts). A constitution read also teaches the scheduler the
    /// repository's concurrency limit.
    async fn triggers_for(&self, repo: &RepoName, installation: Option<InstallationId>) -> Cow<'_, DecideConfig> {
        let (Some(github), Some(inst)) = (&self.effects.github, installation) else {
            return Cow::Borrowed(&self.config);
        };
        match github.constitutions.get(inst, repo).await {
            Ok(loaded) => {
                self.scheduler().learn_limits(repo, &loaded.effective);
                Cow::Owned(loaded.effective.decide_config(&self.config))
            }
            Err(e) => {
                tracing::debug!(%repo, error = %e, "deciding with the server's triggers");
                Cow::Borrowed(&self.config)
            }
        }
    }
}

impl Consumer for Decider {
    async fn consume(&self, meta: &DeliveryMeta, body: &[u8]) -> Result<Processed, Transient> {
        let event = match crate::event::decode(&meta.event, body) {
            Ok(event) => event.with_delivery(meta.id.clone()),
            Err(e) => return Ok(Processed::Dead(e.to_string())),
        };
        let mut snapshot = self.snapshot(&event)?;
        let config = match event.issue() {
            Some(issue) => self.triggers_for(&issue.repo, event.installation).await,
            None => Cow::Borrowed(&self.config),
        };
        let mut actions = crate::decide::decide(&event, &config, &snapshot);
        let mut summary = Vec::with_capacity(actions.len() + 1);
        if let (Some(github), [action @ Action::Lookup { what, installation }]) =
            (&self.effects.github, actions.as_slice())
        {
            let looked = self.lookup(github, what, *installation, &mut snapshot).await?;
            summary.push(summary_line(action, &looked));
            actions = match looked {
                Looked::Unreadable(_) => {
                    vec![Action::Ignore { reason: "the fact needed to decide could not be read".into() }]
                }
                Looked::Found => {
                    // A board item names its repository only now: decide with that repository's triggers.
                    let config = match &snapshot.item {
                        Some(ItemFacts { content: ItemContent::Issue { repo, .. }, .. }) => {
                            self.triggers_for(repo, *installation).await
                        }
                        _ => config,
                    };
                    crate::decide::decide(&event, &config, &snapshot)
                }
            };
        }
        for action in &actions {
            let effect: Effect = self.effects.apply(&event, action).await?;
            summary.push(summary_line(action, &effect));
        }
        Ok(Processed::Done(summary))
    }
}

/// One decision as the delivery keeps it: the action as JSON, with what became of it as `result`.
fn summary_line(action: &Action, result: &dyn fmt::Display) -> serde_json::Value {
    let mut line = serde_json::to_value(action).unwrap_or_default();
    if let Some(obj) = line.as_object_mut() {
        obj.insert("result".into(), result.to_string().into());
    }
    line
}
