//! Daily budgets (`[limits] daily_cost_usd`, `daily_sessions`): whether a repository may start another
//! session today, and the reply when it may not. Pure: the caller sums today's usage from its job records.

use serde::Serialize;
use time::{Duration, OffsetDateTime, Time};

use super::schema::Limits;

/// A repository's usage so far in the current UTC day (the job vocabulary's usage since a time).
pub use crate::job::Usage;

/// Which daily budget is spent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "budget")]
pub enum Spent {
    /// `daily_cost_usd`.
    Cost {
        /// The limit, US dollars.
        limit_usd: f64,
        /// Spent today, US dollars.
        spent_usd: f64,
    },
    /// `daily_sessions`.
    Sessions {
        /// The limit.
        limit: u32,
    },
}

/// Whether a new session may start now.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum BudgetVerdict {
    /// Within both budgets.
    Allowed,
    /// A budget is spent; new sessions wait until `resume_at`, the next UTC midnight.
    Wait {
        /// What is spent.
        spent: Spent,
        /// When the budget renews (start of the next UTC day).
        #[serde(with = "time::serde::rfc3339")]
        resume_at: OffsetDateTime,
    },
}

/// Checks `usage` against `limits` at `now`. The cost budget counts as spent once usage reaches it
/// (a session's cost is only known when it ends, so one more would overrun it).
pub fn check_budget(limits: &Limits, usage: &Usage, now: OffsetDateTime) -> BudgetVerdict {
    let spent = if let Some(limit) = limits.daily_sessions.filter(|l| usage.sessions >= *l) {
        Some(Spent::Sessions { limit })
    } else {
        limits
            .daily_cost_usd
            .filter(|l| usage.cost_usd >= *l)
            .map(|limit_usd| Spent::Cost { limit_usd, spent_usd: usage.cost_usd })
    };
    match spent {
        None => BudgetVerdict::Allowed,
        Some(spent) => BudgetVerdict::Wait { spent, resume_at: next_utc_midnight(now) },
    }
}

/// The start of the UTC day holding `now`: the `since` of the day's usage
/// ([`crate::store::JobStore::repo_usage`]).
pub fn start_of_utc_day(now: OffsetDateTime) -> OffsetDateTime {
    now.to_offset(time::UtcOffset::UTC).date().with_time(Time::MIDNIGHT).assume_utc()
}

/// The start of the UTC day after `now`.
pub fn next_utc_midnight(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    (now.date() + Duration::days(1)).with_time(Time::MIDNIGHT).assume_utc()
}

/// The reply posted when a session must wait for the budget, as markdown.
pub fn wait_reply(spent: &Spent, resume_at: OffsetDateTime) -> String {
    let what = match spent {
        Spent::Cost { limit_usd, spent_usd } => {
            format!(
                "today's cost budget for this repository is spent (${spent_usd:.2} of ${limit_usd:.2}, `limits.daily_cost_usd`)"
            )
        }
        Spent::Sessions { limit } => {
            format!("today's session budget for this repository is spent ({limit} sessions, `limits.daily_sessions`)")
        }
    };
    let when =
        resume_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "the next UTC day".into());
    format!("This issue is queued but waits: {what}. It starts after {when} (00:00 UTC).\n")
}
