//! Daily budgets: a repository whose cost or session budget is spent waits until the next UTC day.

use foreman::constitution::{self, BudgetVerdict, Origin, Spent, Usage, check_budget};
use time::macros::datetime;

fn limits(toml: &str) -> constitution::Limits {
    constitution::parse(Origin::Repo, toml).unwrap().limits
}

#[test]
fn no_budget_means_no_wait() {
    let verdict =
        check_budget(&limits(""), &Usage { cost_usd: 1e6, sessions: 10_000 }, datetime!(2026-11-21 01:00 UTC));
    assert_eq!(verdict, BudgetVerdict::Allowed);
}

#[test]
fn a_spent_session_budget_waits_until_the_next_utc_day() {
    let l = limits("[limits]\ndaily_sessions = 3\ndaily_cost_usd = 10.0\n");
    let now = datetime!(2026-11-21 23:59:30 +02:00);
    assert_eq!(check_budget(&l, &Usage { cost_usd: 1.0, sessions: 2 }, now), BudgetVerdict::Allowed);
    let verdict = check_budget(&l, &Usage { cost_usd: 1.0, sessions: 3 }, now);
    let BudgetVerdict::Wait { spent, resume_at } = verdict else { panic!("{verdict:?}") };
    assert_eq!(spent, Spent::Sessions { limit: 3 });
    // 23:59:30 at +02:00 is 21:59:30 UTC: the budget renews at the next UTC midnight.
    assert_eq!(resume_at, datetime!(2026-11-22 00:00 UTC));
    let reply = constitution::budget::wait_reply(&spent, resume_at);
    assert!(
        reply.contains("session budget")
            && reply.contains("`limits.daily_sessions`")
            && reply.contains("2026-11-22T00:00:00Z"),
        "{reply}"
    );
}

#[test]
fn a_spent_cost_budget_waits_and_says_how_much() {
    let l = limits("[limits]\ndaily_cost_usd = 10.0\n");
    let now = datetime!(2026-11-21 12:00 UTC);
    assert_eq!(check_budget(&l, &Usage { cost_usd: 9.99, sessions: 50 }, now), BudgetVerdict::Allowed);
    let verdict = check_budget(&l, &Usage { cost_usd: 10.0, sessions: 1 }, now);
    let BudgetVerdict::Wait { spent, .. } = verdict else { panic!("{verdict:?}") };
    let reply = constitution::budget::wait_reply(&spent, datetime!(2026-11-22 00:00 UTC));
    assert!(reply.contains("$10.00 of $10.00"), "{reply}");
    let audit = serde_json::to_value(verdict).unwrap();
    assert_eq!(audit["verdict"], "wait");
    assert_eq!(audit["spent"]["budget"], "cost");
    assert_eq!(audit["resume_at"], "2026-11-22T00:00:00Z");
}
