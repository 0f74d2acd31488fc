//! Waits: a job held back without fault until something outside it changes (a budget renews, a usage
//! limit or a GitHub quota resets, the sandbox is fixed), and the honest attempt counter.
//!
//! A wait is not an attempt: [`super::failures::Outcome::Waiting`] gives the claim back, puts the job back in
//! the queue until the wait ends, and takes the claim off the job's attempt count. The tracking comment
//! shows it as a ⏳ wait with its reason and end, never as a failure.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{FailureClass, IssueRef, Job, JobState};

/// How long a job waits when the thing it waits for gave no end time (a usage limit without a reset
/// time, a GitHub quota without `x-ratelimit-reset`): long enough not to spend a session on a limit
/// that is surely still there, short enough that a limit lifted early costs little. 15 minutes.
pub const UNKNOWN_WAIT: time::Duration = time::Duration::minutes(15);

/// How long a job waits for a file to change ([`WaitKind::Constitution`]) when no push says it did: a
/// backstop for a lost delivery, not a retry timer. A day: a broken file is looked at once a day at most.
pub const FILE_WAIT: time::Duration = time::Duration::days(1);

/// What a job waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitKind {
    /// The repository's daily budget (sessions or cost) is spent; it renews at the next UTC midnight.
    Budget,
    /// The agent's usage limit (e.g. Claude's five-hour or weekly limit) until it resets.
    UsageLimit,
    /// The installation's GitHub API quota until its window resets.
    Quota,
    /// The agent sandbox could not be created on this host; looked at again later.
    Sandbox,
    /// The repository's (or its organisation's) `.github/foreman.toml` is invalid: nothing can change until
    /// the file does. A push that changes it on the default branch, or `/foreman retry`, queues the job
    /// again; [`FILE_WAIT`] is only the backstop for a push delivery that never came.
    Constitution,
}

impl WaitKind {
    /// The kind's name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitKind::Budget => "budget",
            WaitKind::UsageLimit => "usage-limit",
            WaitKind::Quota => "quota",
            WaitKind::Sandbox => "sandbox",
            WaitKind::Constitution => "constitution",
        }
    }
}

/// A wait: what for, why in words, and until when (`None`: unknown, [`UNKNOWN_WAIT`] applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// What the job waits for.
    pub kind: WaitKind,
    /// Why, in words for people (redacted), e.g. "the repository's daily budget is spent".
    pub reason: String,
    /// When the wait ends, when known.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub until: Option<OffsetDateTime>,
}

impl Wait {
    /// When the job may run again: `until`, or [`UNKNOWN_WAIT`] from `now` when unknown or past
    /// ([`FILE_WAIT`] for a wait on a file, which an event ends instead).
    pub fn ends(&self, now: OffsetDateTime) -> OffsetDateTime {
        let unknown = if self.kind == WaitKind::Constitution { FILE_WAIT } else { UNKNOWN_WAIT };
        self.until.filter(|t| *t > now).unwrap_or(now + unknown)
    }

    /// The first line of the reason: a wait on a file keeps the file's errors (Markdown) after it.
    pub fn headline(&self) -> &str {
        self.reason.lines().next().unwrap_or("")
    }

    /// What follows the reason's first line (a wait on a file: the file's errors, as a Markdown list),
    /// when there is anything.
    pub fn details(&self) -> Option<&str> {
        self.reason.split_once('\n').map(|(_, rest)| rest.trim()).filter(|rest| !rest.is_empty())
    }
}

/// The wait rule: `job` (running) goes back to the queue until `wait` ends, the claim taken off its attempt
/// count, its failures untouched. Returns the audit entry; the store places the job (delayed until the
/// wait's end) and writes it.
pub fn record_wait(job: &mut Job, wait: &Wait, actor: &str, now: OffsetDateTime) -> super::AuditEntry {
    let from = job.state;
    job.state = JobState::Queued;
    job.attempts = job.attempts.saturating_sub(1);
    job.not_before = Some(wait.ends(now));
    job.wait = Some(wait.clone());
    job.updated_at = now;
    let cause = format!("{} wait: {}", wait.kind.as_str(), wait.reason);
    super::AuditEntry::new(now, actor, "waiting", Some(from), JobState::Queued, &cause)
}

/// A time as the tracking comment shows it, e.g. `2026-12-08 00:00 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// What a queued `job` waits for, as one sentence for its tracking comment (no final stop), or `None` when
/// it waits for nothing but its turn:
/// - its own wait ([`Job::wait`]): `Waiting until <when>: <reason>`;
/// - a hold on every session (`hold`, e.g. the agent's usage limit for every credential): the same form;
/// - open dependencies: `Waiting for #3 and acme/other#4 to close`;
/// - the concurrency limits, when ready: `Waiting for a free slot, held by acme/widgets#1` (the claims
///   of its repository when its repository is at its limit, else every running job, at most three named).
///
/// `stuck` names the issues whose jobs are stuck: a dependency among them is said first, as
/// "#12 is stuck; `/foreman retry` there" ([`blocked_by_stuck`]).
pub fn waiting_for(
    job: &Job,
    claims: &[super::Claim],
    limits: &dyn super::Limits,
    hold: Option<&Wait>,
    stuck: &[IssueRef],
    now: OffsetDateTime,
) -> Option<String> {
    if job.state != JobState::Queued {
        return None;
    }
    let until = |w: &Wait| match w.kind {
        WaitKind::Constitution => format!(
            "Waiting for `.github/foreman.toml` to change: {} A push that changes it on the default branch, or \
             `/foreman retry`, runs this again",
            w.headline()
        ),
        _ => format!("Waiting until {}: {}", when(w.ends(now)), w.headline()),
    };
    if let Some(w) = job.wait.as_ref().filter(|_| job.not_before.is_some_and(|t| t > now)) {
        return Some(until(w));
    }
    if !job.waiting_on.is_empty() {
        if let Some(reason) = blocked_by_stuck(job, stuck) {
            return Some(reason);
        }
        let names: Vec<String> = job
            .waiting_on
            .iter()
            .map(|d| if d.repo == job.repo { format!("#{}", d.issue) } else { format!("{}#{}", d.repo, d.issue) })
            .collect();
        return Some(format!("Waiting for {} to close", join(&names)));
    }
    if let Some(w) = hold {
        return Some(until(w));
    }
    if job.placement != super::Placement::Ready {
        return None;
    }
    let same_repo: Vec<&super::Claim> = claims.iter().filter(|c| c.repo == job.repo).collect();
    let holders: Vec<&super::Claim> =
        if same_repo.len() as u64 >= u64::from(limits.repo_limit(&job.repo.to_string().to_lowercase())) {
            same_repo
        } else if claims.len() as u64 >= u64::from(limits.max_sessions()) {
            claims.iter().collect()
        } else {
            return None;
        };
    let mut names: Vec<String> = holders
        .iter()
        .take(3)
        .map(|c| if c.repo == job.repo { format!("#{}", c.issue) } else { format!("{}#{}", c.repo, c.issue) })
        .collect();
    if holders.len() > 3 {
        names.push(format!("{} more", holders.len() - 3));
    }
    Some(format!("Waiting for a free slot, held by {}", join(&names)))
}

/// What a job waiting on dependencies says when some of them are stuck (`stuck`: issues whose jobs are
/// stuck): "#12 is stuck; `/foreman retry` there" (one), "#12 and acme/other#4 are stuck; `/foreman retry`
/// there" (more). `None` when none of its open dependencies is stuck.
pub fn blocked_by_stuck(job: &Job, stuck: &[IssueRef]) -> Option<String> {
    let key = |r: &IssueRef| super::issue_key(&r.repo, r.issue);
    let names: Vec<String> = job
        .waiting_on
        .iter()
        .filter(|d| stuck.iter().any(|s| key(s) == key(d)))
        .map(|d| if d.repo == job.repo { format!("#{}", d.issue) } else { format!("{}#{}", d.repo, d.issue) })
        .collect();
    let verb = if names.len() == 1 { "is" } else { "are" };
    (!names.is_empty()).then(|| format!("{} {verb} stuck; `/foreman retry` there", join(&names)))
}

/// `a`, `a and b`, `a, b and c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The attempt counter the tracking comment shows: `(n, limit)` with the limit of the failure class that
/// applies. Agent and validation failures share `max_failures`; after an infrastructure failure the count
/// and limit are the infrastructure ones (`max_infrastructure_failures`). A running job shows the attempt
/// under way (failures so far + 1); a failed or stuck one the attempt that failed. Waits and rate limits
/// never count. `None` for other states.
pub fn attempt_counter(job: &Job, max_failures: u32, max_infrastructure_failures: u32) -> Option<(u32, u32)> {
    let f = &job.failures;
    let infrastructure = job.last_failure.as_ref().is_some_and(|l| l.class == FailureClass::Infrastructure);
    let (count, limit) = if infrastructure {
        (f.infrastructure, max_infrastructure_failures)
    } else {
        (f.agent.saturating_add(f.validation), max_failures)
    };
    match job.state {
        JobState::Running => Some((count.saturating_add(1).min(limit.max(1)), limit)),
        JobState::Failed | JobState::Stuck => Some((count.clamp(1, limit.max(1)), limit)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Failure;

    fn with(state: JobState, agent: u32, infrastructure: u32, last: Option<FailureClass>) -> Job {
        let mut job = crate::job::sample_job(state);
        job.failures.agent = agent;
        job.failures.infrastructure = infrastructure;
        job.attempts = 7;
        job.last_failure = last.map(|class| Failure {
            repo: job.repo.clone(),
            issue: job.issue,
            at: job.updated_at,
            class,
            reason: "boom".into(),
            session: None,
        });
        job
    }

    #[test]
    fn the_counter_uses_the_class_that_applies_and_never_passes_its_limit() {
        assert_eq!(attempt_counter(&with(JobState::Running, 0, 0, None), 3, 10), Some((1, 3)));
        assert_eq!(attempt_counter(&with(JobState::Running, 2, 0, Some(FailureClass::Agent)), 3, 10), Some((3, 3)));
        // Seven claims, one infrastructure failure: the second of ten, not "7 of 3".
        let infra = with(JobState::Running, 0, 1, Some(FailureClass::Infrastructure));
        assert_eq!(attempt_counter(&infra, 3, 10), Some((2, 10)));
        assert_eq!(attempt_counter(&with(JobState::Failed, 1, 0, Some(FailureClass::Agent)), 3, 10), Some((1, 3)));
        assert_eq!(attempt_counter(&with(JobState::Stuck, 3, 0, Some(FailureClass::Agent)), 3, 10), Some((3, 3)));
        // A rate limit is not the job's failure: the counter stays on the agent's class.
        let limited = with(JobState::Running, 1, 0, Some(FailureClass::RateLimit));
        assert_eq!(attempt_counter(&limited, 3, 10), Some((2, 3)));
        assert_eq!(attempt_counter(&with(JobState::Queued, 1, 0, None), 3, 10), None);
    }

    #[test]
    fn a_wait_is_not_an_attempt_and_not_a_failure() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut job = with(JobState::Running, 1, 0, Some(FailureClass::Agent));
        let until = now + time::Duration::hours(3);
        let wait = Wait { kind: WaitKind::Budget, reason: "spent".into(), until: Some(until) };
        let e = record_wait(&mut job, &wait, "foreman", now);
        assert_eq!((e.action.as_str(), e.to, e.cause.as_str()), ("waiting", JobState::Queued, "budget wait: spent"));
        assert_eq!((job.state, job.attempts, job.failures.agent), (JobState::Queued, 6, 1));
        assert_eq!((job.not_before, job.wait.as_ref()), (Some(until), Some(&wait)));
    }

    const TWO: crate::job::TestLimits = crate::job::TestLimits { sessions: 2, failures: 3, infrastructure: 10 };

    fn claim(repo: &str, issue: u64) -> crate::job::Claim {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        crate::job::Claim {
            id: issue,
            repo: repo.parse().unwrap(),
            issue: crate::ids::IssueNumber(issue),
            installation: None,
            owner: crate::job::ClaimOwner::new(),
            session: crate::job::SessionId::new(),
            claimed_at: t,
            renewed_at: t,
            expires_at: t,
        }
    }

    #[test]
    fn a_queued_job_says_what_it_waits_for() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ready = Job { placement: crate::job::Placement::Ready, ..crate::job::sample_job(JobState::Queued) };
        assert_eq!(waiting_for(&ready, &[], &TWO, None, &[], now), None, "a free slot: nothing to wait for");
        let slot = waiting_for(&ready, &[claim("o/r", 7)], &TWO, None, &[], now);
        assert_eq!(slot.as_deref(), Some("Waiting for a free slot, held by #7"));
        let full = waiting_for(&ready, &[claim("a/b", 2), claim("c/d", 3)], &TWO, None, &[], now);
        assert_eq!(full.as_deref(), Some("Waiting for a free slot, held by a/b#2 and c/d#3"));
        let deps = Job {
            waiting_on: vec![
                crate::job::IssueRef { repo: "o/r".parse().unwrap(), issue: crate::ids::IssueNumber(3) },
                crate::job::IssueRef { repo: "x/y".parse().unwrap(), issue: crate::ids::IssueNumber(4) },
            ],
            placement: crate::job::Placement::Waiting,
            ..ready.clone()
        };
        assert_eq!(waiting_for(&deps, &[], &TWO, None, &[], now).as_deref(), Some("Waiting for #3 and x/y#4 to close"));
        let stuck = [IssueRef { repo: "x/y".parse().unwrap(), issue: crate::ids::IssueNumber(4) }];
        assert_eq!(
            waiting_for(&deps, &[], &TWO, None, &stuck, now).as_deref(),
            Some("x/y#4 is stuck; `/foreman retry` there")
        );
        let reset = now + time::Duration::hours(5);
        let wait = Wait { kind: WaitKind::UsageLimit, reason: "the Claude usage limit".into(), until: Some(reset) };
        let held = waiting_for(&ready, &[], &TWO, Some(&wait), &[], now);
        assert_eq!(held.as_deref(), Some("Waiting until 2027-01-15 13:00 UTC: the Claude usage limit"));
        let own = Job { wait: Some(wait.clone()), not_before: Some(reset), ..ready.clone() };
        assert_eq!(waiting_for(&own, &[], &TWO, None, &[], now), held);
        assert_eq!(waiting_for(&crate::job::sample_job(JobState::Running), &[], &TWO, Some(&wait), &[], now), None);
    }

    #[test]
    fn a_wait_without_an_end_lasts_the_unknown_wait() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let wait = Wait { kind: WaitKind::UsageLimit, reason: "limit".into(), until: None };
        assert_eq!(wait.ends(now), now + UNKNOWN_WAIT);
        let later = now + time::Duration::hours(2);
        assert_eq!(Wait { until: Some(later), ..wait.clone() }.ends(now), later);
        assert_eq!(Wait { until: Some(now), ..wait }.ends(now), now + UNKNOWN_WAIT);
    }
}
