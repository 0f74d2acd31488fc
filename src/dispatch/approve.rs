//! `/foreman approve`: the issue's plan becomes its sub-issues ([`crate::plan::create`]), carried out by the
//! inbox worker. A crash in the middle leaves the delivery in the inbox; the next pass approves again and
//! makes only what is missing. GitHub unavailable is [`Transient`] for the same reason.

use time::OffsetDateTime;

use super::Transient;
use super::effects::{Effect, Effects};
use crate::event::Event;
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::plan::{RunMode, create};

impl Effects {
    /// Approves the plan of `repo#issue` for `requester`, queues its tasks when the plan runs itself
    /// (`plan.run = "auto"`, or the planned issue carries the trigger label), and replies with what it made.
    pub(super) async fn approve_plan(
        &self,
        event: &Event,
        repo: &RepoName,
        issue: IssueNumber,
        requester: &str,
        installation: Option<InstallationId>,
    ) -> Result<Effect, Transient> {
        let (Some(github), Some(inst)) = (&self.github, installation) else { return Ok(Effect::NoGithub) };
        let client = &github.client;
        let constitution = match github.constitutions.get(inst, repo).await {
            Ok(loaded) => loaded.effective.constitution.clone(),
            Err(crate::constitution::fetch::FetchError::Github(e)) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                let text = format!("@{requester}, the plan was not approved: {e}.");
                return self.answer(event, repo, issue, inst, &text).await;
            }
        };
        let Some((plan, done)) = create::plan_comment(client, inst, repo, issue).await.map_err(Transient::Github)?
        else {
            let text = format!("@{requester}, {}.", create::ApproveError::NoPlan(issue));
            return self.answer(event, repo, issue, inst, &text).await;
        };
        let at = create::Approval {
            repo,
            parent: issue,
            column: &constitution.plan.column,
            status_field: &constitution.triggers.status_field,
        };
        let approved = match create::approve(client, inst, &at, &plan, &done).await {
            Ok(approved) => approved,
            Err(create::ApproveError::Github { source, .. }) if source.is_transient() => return Err(source.into()),
            Err(e) => {
                tracing::warn!(%repo, issue = issue.0, error = %e, "approving the plan failed");
                let text = format!("@{requester}, approving the plan stopped: {e}. `/foreman approve` carries on.");
                return self.answer(event, repo, issue, inst, &text).await;
            }
        };
        let labelled = event
            .issue()
            .is_some_and(|i| i.labels.iter().any(|l| l.eq_ignore_ascii_case(&constitution.triggers.label)));
        let mut queued = None;
        if constitution.plan.run == RunMode::Auto || labelled {
            let now = OffsetDateTime::now_utc();
            let delivery = event.delivery.as_ref();
            queued = Some(
                create::queue(&self.scheduler, repo, inst, &approved, requester, delivery, now)
                    .map_err(Transient::Jobs)?,
            );
        }
        let made: Vec<String> =
            approved.tasks.iter().filter(|t| t.created).map(|t| format!("#{} (`{}`)", t.number, t.key)).collect();
        let mut text = match made.len() {
            0 => format!("@{requester}, every task of the plan already has its issue; nothing was created."),
            n => format!(
                "@{requester}, created {n} sub-issue{} of #{issue} from the plan: {}.",
                if n == 1 { "" } else { "s" },
                made.join(", ")
            ),
        };
        match queued {
            Some(n) => text.push_str(&format!(" {n} queued; each starts once what blocks it is closed.")),
            None => text.push_str(" Each waits for its own trigger (the label, the board or `/foreman run`)."),
        }
        self.answer(event, repo, issue, inst, &text).await.map(|_| Effect::PlanApproved(made.len()))
    }

    /// Replies on `repo#issue`, once per delivery (the reply's marker names it).
    async fn answer(
        &self,
        event: &Event,
        repo: &RepoName,
        issue: IssueNumber,
        inst: InstallationId,
        text: &str,
    ) -> Result<Effect, Transient> {
        let Some(github) = &self.github else { return Ok(Effect::NoGithub) };
        let result = match &event.delivery {
            Some(id) => {
                let marker = crate::markers::reply(id);
                github.client.upsert_marked_comment(inst, repo, issue, &marker, &format!("{text}\n\n{marker}")).await
            }
            None => github.client.create_comment(inst, repo, issue, text).await,
        };
        Ok(result.map_or_else(Effect::ReplyFailed, |_| Effect::Replied))
    }
}
