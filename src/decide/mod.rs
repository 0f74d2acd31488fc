//! The decision core: a pure function from a typed event, configuration and a snapshot of job state to actions.
//!
//! [`decide`] does no I/O. When it needs a fact the payload does not carry (a commenter's permission, the
//! issue behind a Projects v2 item, a Status value an older payload leaves out), it answers with exactly one
//! [`Action::Lookup`] and nothing else; the caller reads the fact from GitHub, puts it into the
//! [`Snapshot`] and decides again. So a decision never acts on a guess, and a comment with several commands
//! is answered once, after every fact is known.
//!
//! The rules are listed in `docs/commands.md`; `foreman replay` ([`crate::cli::replay`]) prints a decision for any payload
//! ([`replay::replay`], which the console's replay button shows too).

mod action;
pub mod command;
pub mod config;
pub mod links;
pub mod markdown;
pub mod replay;
pub mod snapshot;

pub use self::action::Action;
pub use self::command::{Command, CommandName, ParseError, Template};
pub use self::config::{CommandPermissions, DecideConfig, Level};
pub use self::snapshot::{ItemContent, ItemFacts, JobFacts, Lookup, Snapshot};
use crate::event::{
    Actor, AuthorAssociation, Comment, CommentAction, ContentType, Event, EventKind, FieldValue, Issue, IssuesAction,
    ProjectsV2Item, ProjectsV2ItemAction, PullRequestAction,
};
use crate::ids::{IssueNumber, RepoName};

/// What a job does, what asked for it, and where it stands: the job vocabulary's own types, so a decision
/// enqueues exactly what the store keeps. A live job ([`JobState::is_live`]: queued, running, or failed and
/// waiting to retry) is what a stop, an unlabel, a close or a card moved off cancels.
pub use crate::job::{JobKind, JobState, Trigger};

/// Where a repository's constitution lives (the constitution module's `PATH`): a push that changes it
/// queues again the jobs waiting for it.
pub const CONSTITUTION_PATH: &str = ".github/foreman.toml";

/// The unlabel rule, for the decision core (an `unlabeled` delivery) and reconciliation (a label found gone)
/// alike: removing the trigger label cancels a job, except a `running` one while
/// `triggers.cancel_on_unlabel` is off, which is left to finish.
pub fn unlabel_cancels(running: bool, config: &DecideConfig) -> bool {
    !running || config.cancel_on_unlabel
}

/// Decides what to do about `event`. Pure: the same inputs give the same actions.
///
/// Returns at least one action. A [`Action::Lookup`] is always alone, and deciding again with the fact
/// it asked for in the snapshot never asks again, so an event needs at most one lookup. Bot senders are
/// ignored unless their login is in [`DecideConfig::allowed_bots`].
pub fn decide(event: &Event, config: &DecideConfig, snapshot: &Snapshot) -> Vec<Action> {
    let cx = Cx { event, config, snapshot, job: snapshot.job };
    match &event.kind {
        EventKind::Issues { action, issue } => {
            let mut actions = vec![cx.issues(action, issue)];
            // Jobs that depend on the issue follow its state as the delivery says it, from any sender.
            let open = match action {
                IssuesAction::Closed => Some(false),
                IssuesAction::Reopened => Some(true),
                _ => None,
            };
            if let Some(open) = open {
                actions.push(Action::IssueState { repo: issue.repo.clone(), issue: issue.number, open });
            }
            // A waiting job's place follows its issue's labels and title, whoever changed them: the order is
            // not a budget, and only people with triage access can label.
            let reorders = match action {
                IssuesAction::Labeled { label } | IssuesAction::Unlabeled { label } => {
                    !label.eq_ignore_ascii_case(&cx.config.label)
                }
                IssuesAction::Edited => true,
                _ => false,
            };
            if reorders && matches!(cx.job, Some(JobState::Queued | JobState::Failed)) {
                actions.push(Action::Reorder {
                    repo: issue.repo.clone(),
                    issue: issue.number,
                    title: issue.title.clone(),
                    labels: issue.labels.clone(),
                });
            }
            actions
        }
        EventKind::IssueComment { action, issue, comment } => match action {
            CommentAction::Created => cx.commands(issue, comment, None),
            CommentAction::Edited { previous_body: Some(previous) } => cx.commands(issue, comment, Some(previous)),
            CommentAction::Edited { previous_body: None } => {
                vec![ignore("the comment was edited but its body did not change")]
            }
            CommentAction::Deleted => vec![ignore("a deleted comment runs no commands")],
        },
        EventKind::PullRequestReview { pull_request, review, state } => cx.review(pull_request, review, state),
        EventKind::PullRequestReviewComment { pull_request, comment } => cx.commands(pull_request, comment, None),
        EventKind::PullRequest { action, pull_request, head_sha, .. } => vec![match action {
            PullRequestAction::Closed { merged: true } => ignore(format!(
                "pull request #{} was merged; an issue it closes arrives as issues.closed",
                pull_request.number
            )),
            PullRequestAction::Closed { merged: false } => ignore(format!(
                "pull request #{} was closed without merging; its issue's job is not changed",
                pull_request.number
            )),
            // New commits to look at: check the constitution file if the pull request changes it. This
            // starts no agent work, so bots' pull requests (Foreman's own `constitution init`) are checked too.
            PullRequestAction::Opened | PullRequestAction::Reopened | PullRequestAction::Synchronize => {
                Action::CheckConstitution {
                    repo: pull_request.repo.clone(),
                    pull: pull_request.number,
                    head_sha: head_sha.clone(),
                    installation: event.installation,
                }
            }
        }],
        EventKind::ProjectsV2Item { action, item, field_change } => {
            vec![cx.board(*action, item, field_change.as_ref())]
        }
        EventKind::Push { git_ref, default_branch, after, paths, truncated } => {
            let path = CONSTITUTION_PATH;
            let on_default = git_ref.strip_prefix("refs/heads/") == Some(default_branch.as_str());
            vec![match event.repo.clone() {
                Some(repo) if on_default && (*truncated || paths.iter().any(|p| p == path)) => {
                    Action::ConstitutionChanged { repo, after: after.clone() }
                }
                _ => ignore(format!("a push to {git_ref} that does not change {path} on the default branch")),
            }]
        }
        EventKind::Installation { action, account, .. } => {
            vec![ignore(format!("installation {action} for '{account}': nothing to decide"))]
        }
        EventKind::InstallationRepositories { action, added, removed } => vec![ignore(format!(
            "installation_repositories {action} ({} added, {} removed): nothing to decide",
            added.len(),
            removed.len()
        ))],
        EventKind::IssueDependency { added, blocked, blocking } => links::dependency(event, *added, blocked, blocking),
        EventKind::SubIssue { added, parent, sub } => links::sub_issue(event, *added, parent, sub),
        EventKind::WorkflowCompleted { run_id } => vec![Action::RunEnded { run_id: *run_id }],
        EventKind::Ignored { reason } => vec![ignore(reason.clone())],
    }
}

/// At most this many commands of one comment are acted on; the rest are dropped. Bounds the work and the
/// lookups one comment can cause; people write one or two.
pub const MAX_COMMANDS_PER_COMMENT: usize = 10;

fn ignore(reason: impl Into<String>) -> Action {
    Action::Ignore { reason: reason.into() }
}

/// Whether an actor may give a command needing `needs`.
enum Authorized {
    Yes,
    No(Level),
    Unknown,
}

/// Whether an actor with `association` (from the payload) and the permission `looked_up` (if read already)
/// may do what needs `needs`. Only OWNER, the repository's owner, passes on the payload's word; everyone
/// else's permission is looked up: MEMBER and COLLABORATOR say nothing of write access (a collaborator with
/// triage or read permission shows as COLLABORATOR, an organisation member with no role on the repository
/// as MEMBER).
fn authorize(needs: Level, association: &AuthorAssociation, looked_up: Option<Level>) -> Authorized {
    if needs == Level::Anyone || *association == AuthorAssociation::Owner {
        return Authorized::Yes;
    }
    match looked_up {
        Some(level) if level >= needs => Authorized::Yes,
        Some(level) => Authorized::No(level),
        None => Authorized::Unknown,
    }
}

struct Cx<'a> {
    event: &'a Event,
    config: &'a DecideConfig,
    snapshot: &'a Snapshot,
    /// The job's state, if the issue has a job.
    job: Option<JobState>,
}

impl Cx<'_> {
    /// `Some(reason)` when `actor` is a bot that may not trigger work.
    fn bot_refused(&self, actor: &Actor, what: &str) -> Option<Action> {
        (actor.is_bot() && !self.config.bot_allowed(&actor.login))
            .then(|| ignore(format!("{what} by bot '{}', which is not in triggers.allowed_bots", actor.login)))
    }

    fn enqueue(&self, kind: JobKind, repo: &RepoName, issue: IssueNumber, trigger: Trigger, requester: &str) -> Action {
        Action::Enqueue {
            kind,
            repo: repo.clone(),
            issue,
            trigger,
            requester: requester.to_owned(),
            instructions: None,
            installation: self.event.installation,
            delivery: self.event.delivery.clone(),
        }
    }

    fn cancel_if_live(&self, repo: &RepoName, issue: IssueNumber, reason: String) -> Action {
        match self.job {
            Some(state) if state.is_live() => {
                Action::Cancel { repo: repo.clone(), issue, reason, installation: self.event.installation }
            }
            Some(state) => ignore(format!("{reason}, but the job for {repo}#{issue} already {state}")),
            None => ignore(format!("{reason}, but {repo}#{issue} has no job")),
        }
    }

    fn reply(&self, issue: &Issue, text: String) -> Action {
        Action::Reply { repo: issue.repo.clone(), issue: issue.number, text, installation: self.event.installation }
    }

    fn issues(&self, action: &IssuesAction, issue: &Issue) -> Action {
        let (repo, number) = (&issue.repo, issue.number);
        match action {
            IssuesAction::Labeled { label } | IssuesAction::Unlabeled { label }
                if !label.eq_ignore_ascii_case(&self.config.label) =>
            {
                ignore(format!("label '{label}' is not a trigger label"))
            }
            IssuesAction::Labeled { .. } | IssuesAction::Unlabeled { .. } => {
                let Some(sender) = &self.event.sender else {
                    return ignore("the delivery names no sender");
                };
                let labeled = matches!(action, IssuesAction::Labeled { .. });
                if let Some(refused) = self.bot_refused(sender, if labeled { "label added" } else { "label removed" }) {
                    return refused;
                }
                if labeled {
                    if issue.state == "closed" {
                        return ignore(format!("{repo}#{number} is closed; reopen it to queue it"));
                    }
                    match self.job {
                        Some(state) if state.is_queued_or_running() => {
                            ignore(format!("{repo}#{number} already has a {state} job"))
                        }
                        _ => self.enqueue(JobKind::Code, repo, number, Trigger::Label, &sender.login),
                    }
                } else {
                    let reason = format!("label '{}' removed by {}", self.config.label, sender.login);
                    match self.job {
                        Some(state) if !unlabel_cancels(state == JobState::Running, self.config) => ignore(format!(
                            "{reason}; the running job for {repo}#{number} is left to finish (triggers.cancel_on_unlabel is off)"
                        )),
                        _ => self.cancel_if_live(repo, number, reason),
                    }
                }
            }
            IssuesAction::Closed => self.cancel_if_live(repo, number, format!("{repo}#{number} was closed")),
            IssuesAction::Deleted => self.cancel_if_live(repo, number, format!("{repo}#{number} was deleted")),
            IssuesAction::Transferred => {
                self.cancel_if_live(repo, number, format!("{repo}#{number} was transferred to another repository"))
            }
            IssuesAction::Reopened => {
                ignore(format!("{repo}#{number} was reopened; reopening does not queue an issue by itself"))
            }
            IssuesAction::Opened => ignore(format!(
                "{repo}#{number} was opened; it is queued by the label '{}', a board move or `/foreman run`",
                self.config.label
            )),
            IssuesAction::Edited => ignore("editing an issue does not start work"),
            IssuesAction::Assigned | IssuesAction::Unassigned => ignore("assignment does not start work"),
        }
    }

    fn board(
        &self,
        action: ProjectsV2ItemAction,
        item: &ProjectsV2Item,
        change: Option<&crate::event::FieldValueChange>,
    ) -> Action {
        match &item.content_type {
            ContentType::Issue => {}
            ContentType::DraftIssue => {
                return ignore("the board item is a draft issue; convert it to an issue for Foreman to work on it");
            }
            ContentType::PullRequest => return ignore("the board item is a pull request; Foreman works on issues"),
            ContentType::Other(t) => return ignore(format!("the board item holds a '{t}', not an issue")),
        }
        if action != ProjectsV2ItemAction::Edited {
            let a = serde_json::to_value(action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            return ignore(format!(
                "board item {a}: only a change of the '{}' field moves work",
                self.config.status_field
            ));
        }
        let Some(change) = change else {
            return ignore("the board edit changed no field value");
        };
        if let Some(sender) = &self.event.sender
            && let Some(refused) = self.bot_refused(sender, "board move")
        {
            return refused;
        }
        let status = &self.config.status_field;
        if let Some(name) = &change.field_name
            && !name.eq_ignore_ascii_case(status)
        {
            return ignore(format!("field '{name}' is not the status field '{status}'"));
        }
        if !change.field_type.is_empty() && change.field_type != "single_select" {
            return ignore(format!(
                "a {} field changed; the status field '{status}' is single-select",
                change.field_type
            ));
        }
        let lookup = || Action::Lookup {
            what: Lookup::ProjectItem {
                item: item.node_id.clone(),
                content: item.content_node_id.clone(),
                field: change.field_node_id.clone(),
            },
            installation: self.event.installation,
        };
        let facts = self.snapshot.item.as_ref();
        // Is the changed field the Status field? The name says so when present; otherwise its node id must
        // match the project's Status field, which only a lookup tells.
        if change.field_name.is_none() {
            match facts {
                None => return lookup(),
                Some(f) if f.status_field.as_ref() != Some(&change.field_node_id) => {
                    return ignore(format!("the changed field is not the status field '{status}'"));
                }
                Some(_) => {}
            }
        }
        // The new column: from the payload's `to`, else from the lookup.
        let column: Option<String> = match (&change.to, facts) {
            (Some(FieldValue::Option { name, .. }), _) => Some(name.clone()),
            (Some(FieldValue::Empty), _) => None,
            (Some(other), _) => return ignore(format!("the status field's new value {other:?} is not an option")),
            (None, Some(f)) => f.status.clone(),
            (None, None) => return lookup(),
        };
        let Some(column) = column else {
            return ignore(format!("the item's '{status}' was cleared; that neither queues nor cancels"));
        };
        let is = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case(&column));
        let starts = is(&self.config.trigger_columns);
        if !starts && !is(&self.config.stop_columns) {
            return ignore(format!(
                "column '{column}' is neither a trigger column ({}) nor a stop column ({})",
                self.config.trigger_columns.join(", "),
                self.config.stop_columns.join(", ")
            ));
        }
        let Some(facts) = facts else { return lookup() };
        let (repo, number) = match &facts.content {
            ItemContent::Issue { repo, number } => (repo, *number),
            ItemContent::PullRequest => return ignore("the board item is a pull request; Foreman works on issues"),
            ItemContent::DraftIssue => return ignore("the board item is a draft issue"),
        };
        let requester = self.event.sender.as_ref().map(|s| s.login.as_str()).unwrap_or("unknown");
        if starts {
            match self.job {
                Some(state) if state.is_queued_or_running() => {
                    ignore(format!("{repo}#{number} already has a {state} job"))
                }
                _ => self.enqueue(JobKind::Code, repo, number, Trigger::Board, requester),
            }
        } else {
            self.cancel_if_live(repo, number, format!("card moved to '{column}' by {requester}"))
        }
    }

    /// The answer to `status`: state, queue position, failures and the last session.
    fn status_text(&self, number: IssueNumber) -> String {
        let Some(state) = self.job else { return format!("#{number} has no Foreman job.") };
        let mut lines = vec![format!("The Foreman job for #{number} is **{state}**.")];
        if let Some(f) = &self.snapshot.facts {
            if let Some(p) = f.position {
                lines.push(format!("- Position in the queue: {p}"));
            }
            if let Some(at) = &f.not_before {
                lines.push(format!("- Next attempt not before: {at}"));
            }
            lines.push(format!("- Attempts: {}", f.attempts));
            lines.push(format!("- Failures counted toward the limit: {} of {}", f.failures.0, f.failures.1));
            if let Some(last) = &f.last_failure {
                lines.push(format!("- Last failure: {last}"));
            }
            if let Some(why) = &f.stuck_reason {
                lines.push(format!("- Set aside because: {why}. `/foreman retry` queues it again."));
            }
            if let Some(session) = &f.last_session {
                lines.push(format!("- Last session: `{session}`"));
            }
        }
        lines.join("\n")
    }

    /// A submitted review: its commands, if it has any; otherwise, a review requesting changes on Foreman's own
    /// pull request (opened by `<app_slug>[bot]`) from someone who may `run` queues a follow-up session on the
    /// pull request's branch, with the review's text as instructions.
    fn review(&self, pull: &Issue, review: &Comment, state: &str) -> Vec<Action> {
        let has_commands = !command::parse(&review.body, &self.config.app_slug).is_empty();
        if has_commands || !state.eq_ignore_ascii_case("changes_requested") {
            return self.commands(pull, review, None);
        }
        let ours = format!("{}[bot]", self.config.app_slug);
        if !pull.author.login.eq_ignore_ascii_case(&ours) {
            return vec![ignore(format!(
                "changes requested on #{}, which {ours} did not open; write `/foreman run` to have Foreman work on it",
                pull.number
            ))];
        }
        if let Some(refused) = self.bot_refused(&review.author, "review") {
            return vec![refused];
        }
        if pull.state == "closed" {
            return vec![ignore(format!("changes requested on #{}, which is closed", pull.number))];
        }
        let needs = self.config.permissions.run;
        match authorize(needs, &review.association, self.snapshot.permission) {
            Authorized::Unknown => vec![Action::Lookup {
                what: Lookup::Permission {
                    repo: pull.repo.clone(),
                    user: review.author.login.clone(),
                    user_id: review.author.id,
                    needs,
                },
                installation: self.event.installation,
            }],
            Authorized::No(_) => vec![ignore(format!(
                "changes requested by {}, who lacks {needs} permission to start work",
                review.author.login
            ))],
            Authorized::Yes => match self.job {
                Some(state) if state.is_queued_or_running() => {
                    vec![ignore(format!("the job for #{} is already {state}; the review waits for it", pull.number))]
                }
                _ => {
                    let mut action =
                        self.enqueue(JobKind::FollowUp, &pull.repo, pull.number, Trigger::Review, &review.author.login);
                    if let Action::Enqueue { instructions, .. } = &mut action {
                        *instructions = Some(review.body.clone()).filter(|b| !b.trim().is_empty());
                    }
                    vec![action]
                }
            },
        }
    }

    fn commands(&self, issue: &Issue, comment: &Comment, previous: Option<&str>) -> Vec<Action> {
        if let Some(refused) = self.bot_refused(&comment.author, "comment") {
            return vec![refused];
        }
        let mut found = command::parse(&comment.body, &self.config.app_slug);
        found.truncate(MAX_COMMANDS_PER_COMMENT);
        if let Some(previous) = previous {
            // Only commands the edit added: each earlier line cancels one equal line.
            let mut earlier: Vec<String> =
                command::parse(previous, &self.config.app_slug).into_iter().map(|f| f.line.to_lowercase()).collect();
            found.retain(|f| match earlier.iter().position(|l| *l == f.line.to_lowercase()) {
                Some(i) => {
                    earlier.swap_remove(i);
                    false
                }
                None => true,
            });
            if found.is_empty() {
                return vec![ignore("the edit added no new command")];
            }
        }
        if found.is_empty() {
            return vec![ignore("no command in the comment")];
        }
        let author = &comment.author;
        let verdicts: Vec<_> = found
            .iter()
            .map(|f| {
                f.parsed.as_ref().ok().map(|c| {
                    let needs = self.config.permissions.for_parsed(c);
                    (needs, authorize(needs, &comment.association, self.snapshot.permission))
                })
            })
            .collect();
        if let Some(needs) =
            verdicts.iter().flatten().filter(|(_, v)| matches!(v, Authorized::Unknown)).map(|(n, _)| *n).max()
        {
            return vec![Action::Lookup {
                what: Lookup::Permission {
                    repo: issue.repo.clone(),
                    user: author.login.clone(),
                    user_id: author.id,
                    needs,
                },
                installation: self.event.installation,
            }];
        }
        let actions = found
            .iter()
            .zip(verdicts)
            .map(|(f, verdict)| match (&f.parsed, verdict) {
                (Err(e), _) => self
                    .reply(issue, format!("@{}, {}", author.login, e.reply(&f.line, self.config.help_url.as_deref()))),
                (Ok(c), Some((needs, Authorized::No(has)))) => self.reply(
                    issue,
                    format!(
                        "@{}, `/foreman {}` needs {needs} permission on {}; you have {}.",
                        author.login,
                        match c {
                            Command::Constitution { init: Some(_) } => "constitution init".to_owned(),
                            c => c.name().to_string(),
                        },
                        issue.repo,
                        if has == Level::Anyone { "none".to_owned() } else { has.to_string() }
                    ),
                ),
                (Ok(c), _) => self.command(issue, c, author),
            })
            .collect();
        command::merge_replies(actions)
    }

    fn command(&self, issue: &Issue, command: &Command, author: &Actor) -> Action {
        let (repo, number) = (&issue.repo, issue.number);
        let job = self.job;
        let who = &author.login;
        match command {
            Command::Run { .. } | Command::Plan { .. } => {
                if let Some(state) = job.filter(|s| s.is_queued_or_running()) {
                    return self.reply(
                        issue,
                        format!("@{who}, the job for #{number} is already {state}. `/foreman stop` cancels it."),
                    );
                }
                if issue.state == "closed" {
                    return self.reply(issue, format!("@{who}, #{number} is closed; reopen it first."));
                }
                let (kind, instructions) = match command {
                    Command::Run { instructions } if issue.is_pull_request => (JobKind::FollowUp, instructions.clone()),
                    Command::Run { instructions } => (JobKind::Code, instructions.clone()),
                    Command::Plan { instructions } => (JobKind::Plan, instructions.clone()),
                    _ => (JobKind::Plan, None),
                };
                let mut action = self.enqueue(kind, repo, number, Trigger::Command, who);
                if let Action::Enqueue { instructions: slot, .. } = &mut action {
                    *slot = instructions;
                }
                action
            }
            Command::Approve => match job.filter(|s| s.is_queued_or_running()) {
                Some(state) => {
                    self.reply(issue, format!("@{who}, #{number}'s job is {state}; approve its plan when ready."))
                }
                None => Action::ApprovePlan {
                    repo: repo.clone(),
                    issue: number,
                    requester: who.clone(),
                    installation: self.event.installation,
                },
            },
            Command::Stop => match job {
                Some(state) if state.is_live() => Action::Cancel {
                    repo: repo.clone(),
                    issue: number,
                    reason: format!("`/foreman stop` by {who}"),
                    installation: self.event.installation,
                },
                _ => self
                    .reply(issue, format!("@{who}, there is no queued, running or waiting job for #{number} to stop.")),
            },
            // A queued job may be waiting (a budget, a usage limit, a constitution to fix): retry ends the wait.
            Command::Retry => match job {
                Some(JobState::Failed | JobState::Stuck | JobState::Cancelled | JobState::Queued) => Action::Retry {
                    repo: repo.clone(),
                    issue: number,
                    requester: who.clone(),
                    installation: self.event.installation,
                },
                Some(state) if state.is_live() => {
                    self.reply(issue, format!("@{who}, the job for #{number} is {state}; there is nothing to retry."))
                }
                Some(state) => self.reply(
                    issue,
                    format!("@{who}, the last job for #{number} {state}; `/foreman run` starts a new one."),
                ),
                None => self.reply(issue, format!("@{who}, #{number} has no job to retry; `/foreman run` starts one.")),
            },
            Command::Status => self.reply(issue, self.status_text(number)),
            Command::Help => {
                self.reply(issue, command::format_help(&self.config.app_slug, self.config.help_url.as_deref()))
            }
            Command::Constitution { init: None } => {
                Action::ShowConstitution { repo: repo.clone(), issue: number, installation: self.event.installation }
            }
            Command::Constitution { init: Some(template) } => Action::InitConstitution {
                repo: repo.clone(),
                issue: number,
                template: *template,
                requester: who.clone(),
                installation: self.event.installation,
            },
        }
    }
}
