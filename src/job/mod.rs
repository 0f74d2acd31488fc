//! The job vocabulary, with no storage in it: what a job is ([`Job`], [`JobState`], [`JobKind`],
//! [`Trigger`]), the keys that order jobs ([`key`], [`order`]), and the rules every job store obeys as pure
//! functions: placement ([`placement`]), dependency cycles ([`deps`]), the failure ledger and backoff
//! ([`failures`], [`backoff`]), claims and slot counting ([`claims`]) under the [`Limits`].
//!
//! The decision core, the scheduler, the reports and the store import this module; it imports only
//! [`crate::ids`].

pub mod backoff;
pub mod claims;
pub mod deps;
pub mod failures;
pub mod key;
pub mod limits;
pub mod order;
pub mod placement;
pub mod push;
pub mod reports;
pub mod sessions;
pub mod state;
pub mod trigger;
pub mod view;
pub mod wait;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::claims::{Claim, ClaimOwner, Claimed, Expired, Recovery, Slots};
pub use self::deps::{IssueRef, LinkChange, parse_dependencies};
pub use self::failures::{Failure, FailureClass, FailureCounts, Outcome};
pub use self::key::{from_nanos, issue_key, nanos};
pub use self::limits::{Limits, RepoConcurrency, RepoLimits, Usage};
pub use self::order::{OrderKey, PhaseKey, priority_rank};
pub use self::placement::Placement;
pub use self::push::{PullRequestDraft, PushIntent, PushRecord};
pub use self::reports::{Due, ReportRecord};
pub use self::sessions::{SessionId, SessionRecord, SessionState};
pub use self::state::{JobState, Resolution};
pub use self::trigger::Trigger;
pub use self::view::{JobDetail, JobsStatus, QueuedJob, RunningJob, StuckJob};
pub use self::wait::{Wait, WaitKind, attempt_counter};
use crate::ids::{DeliveryId, InstallationId, IssueNumber, Login, RepoName};

/// How many delivery ids a job remembers, to answer a redelivered or replayed delivery as a duplicate.
/// GitHub redelivers a delivery under its original id; 32 covers every trigger a busy issue sees between
/// two runs.
pub const REMEMBERED_DELIVERIES: usize = 32;

/// What a job asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// Implement the issue and open a pull request.
    Code,
    /// Write a plan as a comment; change no code.
    Plan,
    /// Address review feedback on Foreman's existing pull request.
    FollowUp,
}

/// A job: one per (repository, issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The repository.
    pub repo: RepoName,
    /// The issue (or pull request, for a follow-up).
    pub issue: IssueNumber,
    /// The installation that covers the repository, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<InstallationId>,
    /// What to do.
    pub kind: JobKind,
    /// Where the job is in its life.
    pub state: JobState,
    /// The issue title when last queued.
    pub title: String,
    /// The issue's labels when last queued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Priority rank from the labels, 0 highest ([`priority_rank`]).
    pub priority: u8,
    /// The phase key parsed from the title.
    pub phase: PhaseKey,
    /// Declared dependencies: the body's `Depends on #N` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<IssueRef>,
    /// GitHub's "blocked by" links of the issue, as last read or announced (`issue_dependencies`).
    /// The job depends on these and on [`Job::depends_on`] alike ([`Job::dependencies`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<IssueRef>,
    /// The dependencies not known to be closed; the job waits while this is not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<IssueRef>,
    /// Unique, increasing sequence number of this run request: the last tie-breaker of the order.
    pub seq: u64,
    /// When this run was requested (age for ordering).
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    /// When the job last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Not to run before this time: backoff after a failure, or a rate-limit reset.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<OffsetDateTime>,
    /// Failures by class since the last `retry` or fresh request.
    #[serde(default, skip_serializing_if = "FailureCounts::is_zero")]
    pub failures: FailureCounts,
    /// The most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// How many times the job was claimed.
    pub attempts: u32,
    /// Why it is stuck, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_reason: Option<String>,
    /// What queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Login>,
    /// Free-text instructions from `/foreman run …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The last session that ran it (or runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Delivery ids that queued it, most recent last, at most [`REMEMBERED_DELIVERIES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<DeliveryId>,
    /// Which index holds it.
    pub placement: Placement,
    /// What it waits for, while it waits without fault ([`Outcome::Waiting`]); cleared when it next ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// How many times `/foreman retry` reset its failure counts in this run request (the counter the
    /// tracking comment shows then counts again from 1, and says so).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// What its last success came to (a pull request, an answer, a plan); kept until the next success, so
    /// a report made from the job alone (after a restart) heads it right. Meaningful while `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Job {
    /// The job's run-order key.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            priority: self.priority,
            phase: self.phase,
            failures: self.failures.counted(),
            enqueued_nanos: nanos(self.enqueued_at),
            seq: self.seq,
        }
    }

    /// Everything the job depends on: the declared dependencies, then GitHub's "blocked by" links
    /// ([`deps::merge`]).
    pub fn dependencies(&self) -> Vec<IssueRef> {
        deps::merge(&self.depends_on, &self.blocked_by, &self.issue_ref())
    }

    /// The job's issue as a reference.
    pub fn issue_ref(&self) -> IssueRef {
        IssueRef { repo: self.repo.clone(), issue: self.issue }
    }

    /// Remembers the delivery that asked for the job (at most [`REMEMBERED_DELIVERIES`], the oldest
    /// forgotten first).
    pub fn remember(&mut self, delivery: Option<&DeliveryId>) {
        if let Some(d) = delivery {
            self.deliveries.push(d.clone());
            let excess = self.deliveries.len().saturating_sub(REMEMBERED_DELIVERIES);
            self.deliveries.drain(..excess);
        }
    }
}

/// A request to run an issue, on its way into the job store: what the decision knew and the issue's
/// current title, body and labels. The scheduler ranks it ([`priority_rank`]); its phase key and
/// dependencies follow from it ([`NewJob::phase`], [`NewJob::dependencies`]).
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The repository.
    pub repo: RepoName,
    /// The issue.
    pub issue: IssueNumber,
    /// The installation, when known (for the per-installation limit).
    pub installation: Option<InstallationId>,
    /// What to do.
    pub kind: JobKind,
    /// The issue title (for the phase key).
    pub title: String,
    /// The issue body (for `Depends on #N` lines).
    pub body: String,
    /// The issue's labels (for priority).
    pub labels: Vec<String>,
    /// The issue's "blocked by" links on GitHub (`GET …/dependencies/blocked_by`), as read when it was
    /// queued; empty when not read.
    pub blocked_by: Vec<IssueRef>,
    /// What queued it.
    pub trigger: Option<Trigger>,
    /// Who asked.
    pub requester: Option<Login>,
    /// Instructions from `/foreman run …`.
    pub instructions: Option<String>,
    /// The delivery that asked, so a redelivery has no second effect.
    pub delivery: Option<DeliveryId>,
    /// Why, for the audit trail, e.g. `label by octocat`.
    pub cause: String,
}

impl NewJob {
    /// The phase key of the title ([`PhaseKey::parse`]).
    pub fn phase(&self) -> PhaseKey {
        PhaseKey::parse(&self.title)
    }

    /// The dependencies the body declares: its `Depends on` / `Blocked by` lines ([`parse_dependencies`]),
    /// each once, never the issue itself.
    pub fn declared(&self) -> Vec<IssueRef> {
        parse_dependencies(&self.body, &self.repo, self.issue)
    }

    /// Every dependency: the declared ones, then GitHub's "blocked by" links ([`deps::merge`]).
    pub fn dependencies(&self) -> Vec<IssueRef> {
        let this = IssueRef { repo: self.repo.clone(), issue: self.issue };
        deps::merge(&self.declared(), &self.blocked_by, &this)
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome {
    /// A new run was queued.
    Queued(Job),
    /// The job was already queued (or in backoff): its title, labels, kind and dependencies were refreshed.
    Updated(Job),
    /// The job runs now; nothing changed.
    AlreadyRunning(Job),
    /// The job is stuck and needs `retry`; nothing changed.
    Stuck(Job),
    /// This delivery already queued the job: nothing changed (a redelivery has no second effect).
    Duplicate(Job),
}

impl EnqueueOutcome {
    /// The job after the call.
    pub fn job(&self) -> &Job {
        match self {
            EnqueueOutcome::Queued(j)
            | EnqueueOutcome::Updated(j)
            | EnqueueOutcome::AlreadyRunning(j)
            | EnqueueOutcome::Stuck(j)
            | EnqueueOutcome::Duplicate(j) => j,
        }
    }
}

/// One entry of a job's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: a GitHub login, `foreman`, or `foreman:<instance>` for a scheduler.
    pub actor: String,
    /// What happened: `enqueued`, `updated`, `claimed`, `succeeded`, `failed`, `expired`, `interrupted`,
    /// `released`, `cancelled`, `stuck`, `retry`, `ready`, `waiting`.
    pub action: String,
    /// The state before.
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// Why, in words.
    pub cause: String,
    /// The webhook delivery (`X-GitHub-Delivery`) that caused it, when one did: set on `enqueued` and
    /// `updated`. Entries written before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryId>,
}

impl AuditEntry {
    /// An entry: `actor` did `action` at `at`, moving the job `from` → `to`, because of `cause`.
    pub fn new(
        at: OffsetDateTime,
        actor: &str,
        action: &str,
        from: Option<JobState>,
        to: JobState,
        cause: &str,
    ) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            from,
            to,
            cause: cause.to_owned(),
            delivery: None,
        }
    }

    /// The entry with the delivery that caused it.
    pub fn with_delivery(mut self, delivery: Option<&DeliveryId>) -> AuditEntry {
        self.delivery = delivery.cloned();
        self
    }
}

/// A job of `o/r#1` in `state`, queued at a fixed time with nothing else set: the unit tests' fixture.
#[cfg(test)]
pub(crate) fn sample_job(state: JobState) -> Job {
    let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    Job {
        repo: "o/r".parse().unwrap(),
        issue: IssueNumber(1),
        installation: None,
        kind: JobKind::Code,
        state,
        title: "t".into(),
        labels: vec![],
        priority: 2,
        phase: PhaseKey::None,
        depends_on: vec![],
        blocked_by: vec![],
        waiting_on: vec![],
        seq: 1,
        enqueued_at: t,
        updated_at: t,
        not_before: None,
        failures: FailureCounts::default(),
        last_failure: None,
        attempts: 0,
        stuck_reason: None,
        trigger: None,
        requester: None,
        instructions: None,
        session: None,
        deliveries: vec![],
        placement: Placement::None,
        wait: None,
        retries: 0,
        resolution: None,
    }
}

/// Limits for the rules' unit tests: `sessions` at once (in all and per repository), `failures` agent or
/// validation failures and `infrastructure` infrastructure failures before stuck, backoff from 10 s to
/// 100 s, claims of 60 s.
#[cfg(test)]
pub(crate) struct TestLimits {
    pub(crate) sessions: u32,
    pub(crate) failures: u32,
    pub(crate) infrastructure: u32,
}

#[cfg(test)]
impl Limits for TestLimits {
    fn claim_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }
    fn max_sessions(&self) -> u32 {
        self.sessions
    }
    fn repo_limit(&self, _: &str) -> u32 {
        1
    }
    fn installation_limit(&self) -> Option<u32> {
        None
    }
    fn max_failures(&self) -> u32 {
        self.failures
    }
    fn max_infrastructure_failures(&self) -> u32 {
        self.infrastructure
    }
    fn backoff_bounds(&self) -> (std::time::Duration, std::time::Duration) {
        (std::time::Duration::from_secs(10), std::time::Duration::from_secs(100))
    }
}
