//! Snapshots of the tracking comment in each state and of the pull-request body, plus the properties the
//! rest of Foreman relies on: the marker is found again, tokens never show, `Closes #N` is always there.

use foreman::ids::{IssueNumber, RepoName};
use foreman::report::render::{
    Failure, Figures, JobState, Link, Progress, PullRequestBody, Resolution, Tracking, pull_request_body,
    tracking_comment,
};

const TOKEN: &str = "ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";

fn repo() -> RepoName {
    RepoName::new("acme", "widgets").unwrap()
}

fn base(state: JobState) -> Tracking {
    Tracking {
        trigger: Some("the `foreman` label from @alice".into()),
        updated_at: Some("2026-11-21T01:40:00Z".into()),
        ..Tracking::new(repo(), IssueNumber(7), state)
    }
}

fn progress() -> Progress {
    Progress { turns: 12, tool_calls: 34, cost_usd: Some(0.4271), elapsed_secs: 192, ..Progress::default() }
}

fn log_link() -> Link {
    Link { text: "session 01JD…".into(), url: "https://foreman.example/sessions/01JD".into() }
}

fn failure() -> Failure {
    Failure {
        class: "agent".into(),
        reason: format!("the agent exited with status 1 after pushing with {TOKEN}"),
        retry_at: Some("2026-11-21T01:45:00Z".into()),
    }
}

fn check(body: &str) {
    assert!(body.starts_with("<!-- foreman:tracking acme/widgets#7 -->\n"), "{body}");
    assert!(foreman::markers::is_tracking_comment(body, &repo(), IssueNumber(7)));
    assert!(!body.contains(TOKEN) && !body.contains("ghs_"), "{body}");
    assert!(body.len() < 65_536);
}

#[test]
fn tracking_queued() {
    let body = tracking_comment(&Tracking { queue_position: Some(3), ..base(JobState::Queued) });
    check(&body);
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_running() {
    let body = tracking_comment(&Tracking {
        attempt: Some((1, 3)),
        progress: Some(Progress { step: Some(format!("using `Bash`\nwith {TOKEN}")), ..progress() }),
        session_log: Some(log_link()),
        // A queue position is only shown while queued.
        queue_position: Some(2),
        ..base(JobState::Running)
    });
    check(&body);
    assert!(!body.contains("queue"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_succeeded() {
    let body = tracking_comment(&Tracking {
        attempt: Some((2, 3)),
        progress: Some(Progress { cost_usd: None, ..progress() }),
        pull_request: Some(Link { text: "#12".into(), url: "https://github.com/acme/widgets/pull/12".into() }),
        session_log: Some(log_link()),
        summary: Some(format!("Added `Widget::spin`.\n\n- tests in `tests/spin.rs`\n- token was {TOKEN}\n")),
        ..base(JobState::Succeeded)
    });
    check(&body);
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_failed_will_retry() {
    let body = tracking_comment(&Tracking {
        attempt: Some((1, 3)),
        progress: Some(progress()),
        session_log: Some(log_link()),
        failure: Some(failure()),
        ..base(JobState::Failed)
    });
    check(&body);
    // For people: the class, the reason as a sentence, what to do, the log behind a link, never the log.
    assert!(body.contains("#### Failure: `agent`"), "{body}");
    assert!(body.contains("The agent exited with status 1 after pushing with [redacted]."), "{body}");
    assert!(body.contains("`/foreman stop`"), "{body}");
    assert!(body.contains("The [session 01JD…](https://foreman.example/sessions/01JD) has the details."), "{body}");
    assert!(!body.contains("```"), "no log pasted: {body}");
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_stuck() {
    let body = tracking_comment(&Tracking {
        attempt: Some((3, 3)),
        failure: Some(Failure { class: "validation".into(), retry_at: None, ..failure() }),
        ..base(JobState::Stuck)
    });
    check(&body);
    assert!(body.contains("/foreman retry"));
    assert!(body.contains("`.github/foreman.toml`"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_answered() {
    let body = tracking_comment(&Tracking {
        attempt: Some((1, 3)),
        progress: Some(Progress { cost_usd: None, ..progress() }),
        resolution: Some(Resolution::Answer),
        answer: Some(Link {
            text: "the answer".into(),
            url: "https://github.com/acme/widgets/issues/7#issuecomment-9".into(),
        }),
        session_log: Some(log_link()),
        ..base(JobState::Succeeded)
    });
    check(&body);
    assert!(body.contains("### 💬 Foreman: answered") && !body.contains("pull request ready"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_plan_ready() {
    let body = tracking_comment(&Tracking {
        resolution: Some(Resolution::Plan),
        answer: Some(Link {
            text: "the plan".into(),
            url: "https://github.com/acme/widgets/issues/7#issuecomment-9".into(),
        }),
        ..base(JobState::Succeeded)
    });
    check(&body);
    assert!(body.contains("### 📝 Foreman: plan ready") && !body.contains("pull request ready"), "{body}");
    assert!(body.contains("- Plan: [the plan]("), "{body}");
    assert!(body.contains("`/foreman run`"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn answer_and_plan_comments() {
    let plan = foreman::report::render::answer_body(IssueNumber(7), &format!("1. Do it with {TOKEN}.\n"), true);
    assert!(plan.starts_with("### 📝 Foreman's plan for #7\n") && !plan.contains("ghs_"), "{plan}");
    assert!(plan.trim_end().ends_with(foreman::report::render::PLAN_NEXT_STEP), "{plan}");
    insta::assert_snapshot!("plan_comment", plan);
    let answer = foreman::report::render::answer_body(IssueNumber(7), "Yes: `export --json`.", false);
    assert!(answer.starts_with("Yes: `export --json`.\n") && answer.contains("/foreman run"), "{answer}");
    insta::assert_snapshot!("answer_comment", answer);
}

#[test]
fn tracking_cancelled_minimal() {
    let body = tracking_comment(&Tracking::new(repo(), IssueNumber(7), JobState::Cancelled));
    check(&body);
    insta::assert_snapshot!(body);
}

#[test]
fn tracking_bounds_a_huge_summary() {
    let body = tracking_comment(&Tracking { summary: Some("x".repeat(200_000)), ..base(JobState::Succeeded) });
    check(&body);
    assert!(body.contains("… (cut)"));
}

fn figures() -> Figures {
    Figures {
        agent: "claude (claude-sonnet-4)".into(),
        attempt: 1,
        turns: 12,
        tool_calls: 34,
        cost_usd: Some(0.4271),
        duration_ms: 192_500,
        commits: 2,
        files_changed: 3,
        lines_added: 120,
        lines_deleted: 7,
    }
}

#[test]
fn pull_request_full() {
    let body = pull_request_body(&PullRequestBody {
        issue: IssueNumber(7),
        summary: format!("Added `Widget::spin` and its tests.\n\nUsed {TOKEN} nowhere.\n"),
        figures: figures(),
        requester: Some("alice".into()),
        tracking_comment: Some(Link {
            text: "acme/widgets#7".into(),
            url: "https://github.com/acme/widgets/issues/7#issuecomment-1".into(),
        }),
        session_log: Some(log_link()),
    });
    assert!(body.contains("\nCloses #7\n"), "{body}");
    assert!(!body.contains("ghs_"), "{body}");
    insta::assert_snapshot!(body);
}

#[test]
fn pull_request_minimal() {
    let body = pull_request_body(&PullRequestBody {
        issue: IssueNumber(9),
        summary: "  ".into(),
        figures: Figures { attempt: 1, cost_usd: None, ..Figures::default() },
        requester: None,
        tracking_comment: None,
        session_log: None,
    });
    assert!(body.contains("\nCloses #9\n"), "{body}");
    insta::assert_snapshot!(body);
}
