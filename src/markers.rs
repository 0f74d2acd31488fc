//! Every hidden marker Foreman writes into text on GitHub, built and parsed in this one place.
//!
//! A marker is an HTML comment, `<!-- foreman:<kind> <argument> -->`, which GitHub does not render. It
//! lets Foreman find its own comment again after a restart or a redelivery (by
//! [`crate::github::Client::upsert_marked_comment`]) instead of writing a second one, and carry a value
//! in a pull request's body. Anyone can type a marker: a reader must also check that the comment's author
//! is Foreman's bot, as the GitHub client does.
//!
//! | marker | where | built by | read by |
//! |---|---|---|---|
//! | `<!-- foreman:tracking acme/widgets#7 -->` | first line of the tracking comment | [`tracking`] | [`parse_tracking`] |
//! | `<!-- foreman:progress acme/widgets#7 -->` | first line of a parent's sub-issue checklist, one per parent | [`progress`] | found whole |
//! | `<!-- foreman:reply <delivery id> -->` | a reply to a command, one per delivery | [`reply`] | found whole |
//! | `<!-- foreman:budget acme/widgets 2026-12-07 -->` | "the daily budget is spent", one per day | [`budget`] | found whole |
//! | `<!-- foreman:answer <session id> -->` | an agent's answer to a question, one per session | [`answer`] | found whole |
//! | `<!-- foreman:constitution-invalid -->` | the invalid-constitution report, one per issue | [`CONSTITUTION_INVALID`] | found whole |
//! | `<!-- foreman:agent-session <id> -->` | a pull request's body: the agent session that wrote it | [`agent_session`] | [`parse_agent_session`] |
//! | `<!-- foreman:plan acme/widgets#7 -->` | first line of the plan comment, one per planned issue | [`plan`] | found whole |
//! | `<!-- foreman:plan-data <base64> -->` | the plan comment: the plan, compressed | [`plan_data`] | [`parse_plan_data`] |
//! | `<!-- foreman:task acme/widgets#7 T1 -->` | the body of the issue created for task `T1` of #7's plan | [`task`] | [`parse_task`] |
//!
//! The arguments are Foreman's own values (a repository name, a number, a date, an id it made or that
//! GitHub or the agent CLI gave), never a person's text.

use crate::ids::{DeliveryId, IssueNumber, RepoName};

/// How every marker begins.
const OPEN: &str = "<!-- foreman:";

/// How every marker ends.
const CLOSE: &str = " -->";

/// `<!-- foreman:<kind> <argument> -->`.
fn marker(kind: &str, argument: impl std::fmt::Display) -> String {
    format!("{OPEN}{kind} {argument}{CLOSE}")
}

/// Whether `body` carries any of Foreman's markers (anywhere in it). Anyone can type one: check the author
/// too.
pub fn is_marked(body: &str) -> bool {
    body.contains(OPEN)
}

/// The marker of the tracking comment of `repo#issue`: `<!-- foreman:tracking acme/widgets#7 -->`. It is
/// the first line of every tracking comment.
pub fn tracking(repo: &RepoName, issue: IssueNumber) -> String {
    marker("tracking", format_args!("{repo}#{issue}"))
}

/// The marker of the sub-issue checklist on the parent `repo#issue`: `<!-- foreman:progress acme/widgets#7 -->`,
/// its first line.
pub fn progress(repo: &RepoName, issue: IssueNumber) -> String {
    marker("progress", format_args!("{repo}#{issue}"))
}

/// The `repo#issue` a comment body is the tracking comment of, when its first line is a tracking marker
/// (leading whitespace allowed). A marker further down (quoted, or pasted into a summary) does not count.
/// `None` for anything else, including a malformed repository or an issue number of 0.
pub fn parse_tracking(body: &str) -> Option<(RepoName, IssueNumber)> {
    let first = body.trim_start().lines().next()?.trim_end();
    let inner = first.strip_prefix(OPEN)?.strip_prefix("tracking ")?.strip_suffix(CLOSE)?;
    let (repo, issue) = inner.rsplit_once('#')?;
    let (owner, name) = repo.split_once('/')?;
    let repo = RepoName::new(owner, name).ok()?;
    let issue = issue.parse::<u64>().ok().filter(|n| *n > 0)?;
    Some((repo, IssueNumber(issue)))
}

/// Whether `body` is the tracking comment of `repo#issue` (see [`parse_tracking`]).
pub fn is_tracking_comment(body: &str, repo: &RepoName, issue: IssueNumber) -> bool {
    parse_tracking(body).is_some_and(|(r, i)| &r == repo && i == issue)
}

/// The marker of Foreman's reply to the commands of one delivery, `<!-- foreman:reply <delivery id> -->`:
/// a redelivery finds the reply instead of replying twice.
pub fn reply(delivery: &DeliveryId) -> String {
    marker("reply", delivery)
}

/// The marker of the comment saying that `repo`'s daily budget is spent until the day after `day` (UTC):
/// `<!-- foreman:budget acme/widgets 2026-12-07 -->`, so each day has at most one such comment per issue.
pub fn budget(repo: &RepoName, day: time::Date) -> String {
    marker("budget", format_args!("{repo} {day}"))
}

/// The marker of the comment holding an agent's answer (a session that answered a question rather than
/// changing code): `<!-- foreman:answer <session id> -->`, one comment per session.
pub fn answer(session_id: &str) -> String {
    marker("answer", session_id)
}

/// The marker of the comment reporting an invalid constitution on an issue: one such comment per issue,
/// updated in place, so a retried job does not repeat it.
pub const CONSTITUTION_INVALID: &str = "<!-- foreman:constitution-invalid -->";

/// The line in a pull request's body naming the agent session that wrote it, so a follow-up can resume
/// it: `<!-- foreman:agent-session <id> -->`.
pub fn agent_session(id: &str) -> String {
    marker("agent-session", id)
}

/// The beginning of [`agent_session`], up to its argument.
const AGENT_SESSION_OPEN: &str = "<!-- foreman:agent-session ";

/// The agent session id in a pull request's body, when Foreman put one there: the argument of the last
/// [`agent_session`] marker, when it is made of ASCII letters, digits and `-` only (an id of the agent's
/// CLI); `None` otherwise.
pub fn parse_agent_session(body: &str) -> Option<String> {
    let rest = &body[body.rfind(AGENT_SESSION_OPEN)? + AGENT_SESSION_OPEN.len()..];
    let id = rest.split_whitespace().next()?;
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then(|| id.to_owned())
}

/// `body` with its last [`agent_session`] marker replaced by one naming `id`, or with one appended after a
/// blank line when it has none.
pub fn set_agent_session(body: &str, id: &str) -> String {
    match body.rfind(AGENT_SESSION_OPEN) {
        Some(at) => {
            let end = body[at..].find("-->").map_or(body.len(), |e| at + e + 3);
            format!("{}{}{}", &body[..at], agent_session(id), &body[end..])
        }
        None => format!("{body}\n\n{}", agent_session(id)),
    }
}

/// The marker of the plan comment on `repo#issue`: `<!-- foreman:plan acme/widgets#7 -->`, its first line,
/// so a second plan of the same issue replaces the comment instead of adding one.
pub fn plan(repo: &RepoName, issue: IssueNumber) -> String {
    marker("plan", format_args!("{repo}#{issue}"))
}

/// The beginning of [`plan_data`], up to its argument.
const PLAN_DATA_OPEN: &str = "<!-- foreman:plan-data ";

/// The marker carrying a plan's JSON in the plan comment, for `/foreman approve` to read back:
/// `<!-- foreman:plan-data <data> -->`, the data being `encoded` (URL-safe base64, which cannot close the
/// comment). Only a comment by Foreman's bot is read this way.
pub fn plan_data(encoded: &str) -> String {
    marker("plan-data", encoded)
}

/// The argument of the first [`plan_data`] marker of `body`, when it is URL-safe base64 (letters, digits,
/// `-`, `_`).
pub fn parse_plan_data(body: &str) -> Option<&str> {
    let rest = &body[body.find(PLAN_DATA_OPEN)? + PLAN_DATA_OPEN.len()..];
    let data = rest.split_whitespace().next()?;
    (!data.is_empty() && data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')).then_some(data)
}

/// The marker in the body of the issue Foreman created for task `key` of the plan of `repo#issue`:
/// `<!-- foreman:task acme/widgets#7 T1 -->`. Finding it again is what keeps approval from creating a task
/// twice. `key` is a plan key (ASCII letters, digits, `.`, `_`, `-`).
pub fn task(repo: &RepoName, issue: IssueNumber, key: &str) -> String {
    marker("task", format_args!("{repo}#{issue} {key}"))
}

/// The beginning of [`task`], up to its argument.
const TASK_OPEN: &str = "<!-- foreman:task ";

/// The planned issue and the task key of a [`task`] marker in `body` (the last one), when well formed.
pub fn parse_task(body: &str) -> Option<(RepoName, IssueNumber, String)> {
    let rest = &body[body.rfind(TASK_OPEN)? + TASK_OPEN.len()..];
    let inner = &rest[..rest.find(CLOSE)?];
    let (parent, key) = inner.split_once(' ')?;
    let (repo, issue) = parent.rsplit_once('#')?;
    let (owner, name) = repo.split_once('/')?;
    let repo = RepoName::new(owner, name).ok()?;
    let issue = issue.parse::<u64>().ok().filter(|n| *n > 0)?;
    let ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then(|| (repo, IssueNumber(issue), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_markers_round_trip_and_only_count_on_the_first_line() {
        let repo: RepoName = "acme/widgets".parse().unwrap();
        let marker = tracking(&repo, IssueNumber(7));
        assert_eq!(marker, "<!-- foreman:tracking acme/widgets#7 -->");
        assert_eq!(parse_tracking(&format!("  {marker}\r\nbody")), Some((repo.clone(), IssueNumber(7))));
        assert!(is_tracking_comment(&marker, &repo, IssueNumber(7)));
        assert!(!is_tracking_comment(&marker, &repo, IssueNumber(8)));
        assert!(!is_tracking_comment(&format!("> quoted\n{marker}"), &repo, IssueNumber(7)));
        for bad in [
            "",
            "<!-- foreman:tracking acme#7 -->",
            "<!-- foreman:tracking acme/widgets#x -->",
            "<!-- foreman:tracking acme/widgets#0 -->",
            "<!-- foreman:tracking a/b/c#1 -->",
            "<!-- foreman:trackingacme/widgets#7 -->",
            "<!-- foreman:reply acme/widgets#7 -->",
        ] {
            assert_eq!(parse_tracking(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_marker_is_a_hidden_comment_of_its_own_kind() {
        let repo: RepoName = "acme/widgets".parse().unwrap();
        let day = time::macros::date!(2026 - 12 - 07);
        let all = [
            (tracking(&repo, IssueNumber(7)), "tracking acme/widgets#7"),
            (
                reply(&DeliveryId("72d3162e-cc78-11e3-81ab-4c9367dc0958".into())),
                "reply 72d3162e-cc78-11e3-81ab-4c9367dc0958",
            ),
            (budget(&repo, day), "budget acme/widgets 2026-12-07"),
            (answer("2f1c-ab"), "answer 2f1c-ab"),
            (CONSTITUTION_INVALID.to_owned(), "constitution-invalid"),
            (agent_session("2f1c-ab"), "agent-session 2f1c-ab"),
            (plan(&repo, IssueNumber(7)), "plan acme/widgets#7"),
            (plan_data("eyJ9"), "plan-data eyJ9"),
            (task(&repo, IssueNumber(7), "T1"), "task acme/widgets#7 T1"),
        ];
        for (built, inner) in all {
            assert_eq!(built, format!("<!-- foreman:{inner} -->"));
        }
    }

    #[test]
    fn task_and_plan_data_markers_round_trip_and_refuse_anything_else() {
        let repo: RepoName = "acme/widgets".parse().unwrap();
        let body = format!("Do it.\n\n{}", task(&repo, IssueNumber(7), "T1.a"));
        assert_eq!(parse_task(&body), Some((repo, IssueNumber(7), "T1.a".into())));
        assert_eq!(parse_task("<!-- foreman:task acme/widgets#7 $(x) -->"), None);
        assert_eq!(parse_task("<!-- foreman:task acme#7 T1 -->"), None);
        assert_eq!(parse_plan_data(&format!("x\n{}", plan_data("ab-_9"))), Some("ab-_9"));
        assert_eq!(parse_plan_data("<!-- foreman:plan-data a+b -->"), None);
    }

    #[test]
    fn the_agent_session_marker_round_trips_and_ignores_anything_else() {
        let body = format!("Closes #3\n\n{}", agent_session("2f1c-ab"));
        assert_eq!(parse_agent_session(&body).as_deref(), Some("2f1c-ab"));
        assert_eq!(parse_agent_session("Closes #3"), None);
        assert_eq!(parse_agent_session("<!-- foreman:agent-session $(rm -rf) -->"), None);
    }

    #[test]
    fn setting_the_agent_session_replaces_the_last_marker_or_appends_one() {
        assert_eq!(set_agent_session("Closes #3", "a-1"), "Closes #3\n\n<!-- foreman:agent-session a-1 -->");
        let body = "Closes #3\n\n<!-- foreman:agent-session a-1 -->\ntail";
        assert_eq!(set_agent_session(body, "b-2"), "Closes #3\n\n<!-- foreman:agent-session b-2 -->\ntail");
        assert_eq!(parse_agent_session(&set_agent_session(body, "b-2")).as_deref(), Some("b-2"));
    }
}
