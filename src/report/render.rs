//! Pure renderers for what Foreman writes on GitHub: the one tracking comment per job and the pull-request
//! body. No I/O: the caller maps a job and its session outcome onto [`Tracking`] or [`PullRequestBody`] and
//! posts the returned Markdown.
//!
//! The templates are the inline constants [`TRACKING_TEMPLATE`] and [`PULL_REQUEST_TEMPLATE`] (minijinja,
//! compiled once). They are part of Foreman, not per-deployment configuration like the agent prompts under
//! `prompts/`: the tracking marker and `Closes #N` must be there for Foreman to work, so they are not
//! editable. Numbers, durations, money and redaction are prepared in Rust; the templates only lay
//! them out.
//!
//! Everything that came from outside Foreman (the agent's summary, failure reasons) is passed through
//! [`redact_tokens`] and cut to a bound, so the comment stays under GitHub's 65,536-character body limit
//! (<https://docs.github.com/en/rest/issues/comments#create-an-issue-comment>, "body" maximum).
//!
//! A failure is shown for people: its class, one sentence on what happened, what the reader can do, and a
//! link to the session log. The log itself (the prompt, paths on Foreman's host, the agent's raw output) is
//! never pasted into a comment: it is served to Foreman's admins behind that link.

use std::sync::LazyLock;

use minijinja::value::Serde;
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use crate::github::redact::redact_tokens;
use crate::ids::{IssueNumber, RepoName};

/// The tracking comment's template. Its first line is always the marker ([`crate::markers::tracking`]).
pub const TRACKING_TEMPLATE: &str = r#"{{ marker }}
### {{ headline }}

{% if trigger %}Triggered by {{ trigger }}.
{% endif %}
{% if queue_position %}Position in the queue: **{{ queue_position }}**.
{% endif %}
{% if waiting %}⏳ {{ waiting }}.
{% if wait_details %}

{{ wait_details }}
{% endif %}
{% endif %}
{% if attempt %}Attempt {{ attempt }}{% if max_attempts %} of {{ max_attempts }}{% endif %}{% if since_retry %}, counted again since `/foreman retry`{% endif %}.
{% endif %}
{% if progress %}

{% if progress.step %}Now: {{ progress.step }}

{% endif %}
| turns | tool calls | cost so far | elapsed |
|---:|---:|---:|---:|
| {{ progress.turns }} | {{ progress.tool_calls }} | {{ progress.cost }} | {{ progress.elapsed }} |
{% endif %}
{% if pull_request or answer or session_log %}

{% if pull_request %}- Pull request: {{ pull_request }}
{% endif %}
{% if answer %}- {{ answer_label }}: {{ answer }}
{% endif %}
{% if session_log %}- Session log: {{ session_log }}
{% endif %}
{% endif %}
{% if summary %}

#### Summary

{{ summary }}
{% endif %}
{% if next_step %}

{{ next_step }}
{% endif %}
{% if failure %}

#### Failure: `{{ failure.class }}`

{{ failure.reason }}
{% if failure.next %}

{{ failure.next }}
{% endif %}
{% if failure.advice %}

{{ failure.advice }}
{% endif %}
{% if session_log %}

The {{ session_log }} has the details.
{% endif %}
{% endif %}
{% if updated_at %}

<sub>Updated {{ updated_at }} · this comment is edited in place by Foreman.</sub>
{% endif %}
"#;

/// The pull-request body's template. It always closes the issue.
pub const PULL_REQUEST_TEMPLATE: &str = r#"{{ summary }}

Closes #{{ issue }}

<details><summary>Session figures</summary>

| | |
|---|---:|
{% for row in figures %}| {{ row.0 }} | {{ row.1 }} |
{% endfor %}

</details>
{% if links %}

{% for link in links %}- {{ link }}
{% endfor %}
{% endif %}

<sub>Opened by Foreman for #{{ issue }}{% if requester %}, requested by @{{ requester }}{% endif %}.</sub>
"#;

/// Bound on the summary's length in characters (the agent writes it; a comment body holds 65,536).
pub const SUMMARY_LIMIT: usize = 20_000;
/// Bound on the shown step's length in characters.
pub const STEP_LIMIT: usize = 200;
/// Bound on the failure reason's length in characters.
pub const REASON_LIMIT: usize = 2_000;
/// Bound on the details under a wait in characters (a constitution's error list, at most 30 lines).
pub const WAIT_DETAILS_LIMIT: usize = 8_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("default delimiters"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("tracking", TRACKING_TEMPLATE).expect("tracking template compiles");
    env.add_template("pull_request", PULL_REQUEST_TEMPLATE).expect("pull request template compiles");
    env
});

/// Where a job stands: the job vocabulary's state, which the tracking comment shows by [`headline`].
pub use crate::job::JobState;
/// What a succeeded job came to: a pull request, an answer or a plan ([`resolved_headline`]).
pub use crate::job::Resolution;

/// The tracking comment's headline for a job in `state`.
pub fn headline(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "⏳ Foreman: queued",
        JobState::Running => "🛠️ Foreman: working on it",
        JobState::Succeeded => "✅ Foreman: pull request ready",
        JobState::Failed => "⚠️ Foreman: the attempt failed, will retry",
        JobState::Stuck => "🛑 Foreman: stuck, needs a human",
        JobState::Cancelled => "⏹️ Foreman: cancelled",
    }
}

/// The headline of a job in `state` that came to `resolution`: a succeeded job that answered or planned
/// says so instead of "pull request ready"; every other case is [`headline`].
pub fn resolved_headline(state: JobState, resolution: Option<Resolution>) -> &'static str {
    match (state, resolution) {
        (JobState::Succeeded, Some(Resolution::Answer)) => "💬 Foreman: answered",
        (JobState::Succeeded, Some(Resolution::Plan)) => "📝 Foreman: plan ready",
        _ => headline(state),
    }
}

/// How a reader acts on a plan: the last line of the plan comment and of its tracking comment.
pub const PLAN_NEXT_STEP: &str = "To implement it, comment `/foreman run`; add after the command what the agent should \
follow (`/foreman run <instructions>`): the agent reads the issue and people's comments, not Foreman's.";

/// Live figures of a running (or finished) session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Agent turns so far.
    pub turns: u32,
    /// Tool calls so far.
    pub tool_calls: u32,
    /// Cost so far in US dollars, when the backend reports it.
    pub cost_usd: Option<f64>,
    /// Wall-clock seconds since the session started.
    pub elapsed_secs: u64,
    /// What the session is doing now, while it runs: what the agent says it is doing (a command agent's
    /// `::foreman progress <text>`, the Claude agent's latest message), the tool in use or the session's
    /// phase, already phrased. Shown only while the job runs, on one line, cut to [`STEP_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A link with its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What is shown, e.g. `#12`.
    pub text: String,
    /// Where it goes (an absolute URL).
    pub url: String,
}

/// Why the last attempt failed. Shown as the class, the reason as a sentence, what the reader can do
/// ([`advice`]) and a link to the session log ([`Tracking::session_log`]) for the details; never the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The failure class, as the failure ledger names it: `agent`, `validation`, `infrastructure`, `rate-limit`.
    pub class: String,
    /// What happened, for people: one sentence (no prompt, host paths or debug text; the sources write it
    /// so); redacted and cut to [`REASON_LIMIT`].
    pub reason: String,
    /// When the next attempt is due (already formatted, e.g. an RFC 3339 time), if one is.
    pub retry_at: Option<String>,
}

/// Everything the tracking comment shows. Serialisable: the report outbox stores it as it is posted, so a
/// report survives a crash (fields added later must be optional or `#[serde(default)]`, so stored reports
/// still read; one that does not read is made anew from its job).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tracking {
    /// The repository.
    pub repo: RepoName,
    /// The issue (or pull request, for a follow-up).
    pub issue: IssueNumber,
    /// The job's state.
    pub state: JobState,
    /// What queued it, already phrased, e.g. ``the `foreman` label from @alice``.
    pub trigger: Option<String>,
    /// 1-based position in the queue, while queued.
    pub queue_position: Option<u32>,
    /// What a queued job waits for, one sentence without its final stop ([`crate::job::wait::waiting_for`]).
    pub waiting: Option<String>,
    /// More about the wait, as Markdown shown under it ([`crate::job::Wait::details`]: an invalid
    /// constitution's errors); redacted and cut to [`WAIT_DETAILS_LIMIT`].
    pub wait_details: Option<String>,
    /// The attempt (1-based) and the limit of the failure class that applies
    /// ([`crate::job::attempt_counter`]), while running or after a failure.
    pub attempt: Option<(u32, u32)>,
    /// Whether `/foreman retry` reset the count (the comment says it counts again).
    #[serde(default)]
    pub since_retry: bool,
    /// Live or final session figures.
    pub progress: Option<Progress>,
    /// The pull request.
    pub pull_request: Option<Link>,
    /// The session log.
    pub session_log: Option<Link>,
    /// What a succeeded job came to (`None`: not known, shown as a pull request).
    pub resolution: Option<Resolution>,
    /// The comment holding the answer or the plan, when the job came to one.
    pub answer: Option<Link>,
    /// The final summary (Markdown, from the agent); redacted and cut to [`SUMMARY_LIMIT`].
    pub summary: Option<String>,
    /// The failure, for `Failed` and `Stuck`.
    pub failure: Option<Failure>,
    /// When this version was written (already formatted), shown in small print.
    pub updated_at: Option<String>,
}

impl Tracking {
    /// A bare comment for `repo#issue` in `state`; fill in the rest with struct update syntax.
    pub fn new(repo: RepoName, issue: IssueNumber, state: JobState) -> Self {
        Self {
            repo,
            issue,
            state,
            trigger: None,
            queue_position: None,
            waiting: None,
            wait_details: None,
            attempt: None,
            since_retry: false,
            progress: None,
            pull_request: None,
            session_log: None,
            resolution: None,
            answer: None,
            summary: None,
            failure: None,
            updated_at: None,
        }
    }
}

/// The session's figures for the pull-request body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// The agent backend and model, e.g. `claude (claude-sonnet-4)`.
    pub agent: String,
    /// Which attempt produced the branch (1-based).
    pub attempt: u32,
    /// Agent turns.
    pub turns: u32,
    /// Tool calls.
    pub tool_calls: u32,
    /// Cost in US dollars, when known.
    pub cost_usd: Option<f64>,
    /// Session wall-clock time in milliseconds.
    pub duration_ms: u64,
    /// Commits on the branch.
    pub commits: u64,
    /// Files changed.
    pub files_changed: u64,
    /// Lines added.
    pub lines_added: u64,
    /// Lines deleted.
    pub lines_deleted: u64,
}

/// Everything the pull-request body shows.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequestBody {
    /// The issue the pull request closes.
    pub issue: IssueNumber,
    /// What was done (Markdown, from the agent); redacted and cut to [`SUMMARY_LIMIT`]. Empty: a stock line.
    pub summary: String,
    /// The session's figures.
    pub figures: Figures,
    /// Who asked for the work (a login, without `@`).
    pub requester: Option<String>,
    /// The tracking comment.
    pub tracking_comment: Option<Link>,
    /// The session log.
    pub session_log: Option<Link>,
}

#[derive(Serialize)]
struct ProgressView {
    step: Option<String>,
    turns: u32,
    tool_calls: u32,
    cost: String,
    elapsed: String,
}

#[derive(Serialize)]
struct FailureView {
    class: String,
    reason: String,
    next: Option<String>,
    advice: Option<&'static str>,
}

/// What a reader can do about a failure of `class` (the ledger's name) that left the job in `state`; `None`
/// for a class this does not know.
pub fn advice(class: &str, state: JobState) -> Option<&'static str> {
    let stuck = state == JobState::Stuck;
    Some(match class {
        "agent" if stuck => "If the issue needs more detail or a narrower scope, add it to the issue before retrying.",
        "agent" => {
            "Foreman tries again on its own. If the issue needs more detail, add it to the issue; \
             `/foreman stop` stops the retries."
        }
        "validation" => {
            "The repository's constitution (`.github/foreman.toml`) decided this: fix the file if it is wrong, \
             or narrow the issue so the change fits it."
        }
        "infrastructure" => {
            "This went wrong on Foreman's side, not in the issue, and Foreman tries again on its own. If it \
             keeps failing, tell Foreman's operator."
        }
        "rate-limit" => "The agent's API asked Foreman to slow down; Foreman waits and tries again on its own.",
        _ => return None,
    })
}

/// `reason` as a sentence: its first letter upper-case and a full stop at the end when it has none.
fn sentence(reason: &str) -> String {
    let mut chars = reason.chars();
    let Some(first) = chars.next() else { return String::new() };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?', ')', '`']) {
        out.push('.');
    }
    out
}

/// Renders the tracking comment (Markdown, starting with [`crate::markers::tracking`]).
pub fn tracking_comment(t: &Tracking) -> String {
    let progress = t.progress.as_ref().map(|p| ProgressView {
        step: p
            .step
            .as_deref()
            .filter(|_| t.state == JobState::Running)
            .map(|s| redact_tokens(&one_line(s, STEP_LIMIT)).into_owned())
            .filter(|s| !s.is_empty()),
        turns: p.turns,
        tool_calls: p.tool_calls,
        cost: cost(p.cost_usd),
        elapsed: duration(p.elapsed_secs),
    });
    let failure = t.failure.as_ref().map(|f| {
        let next = match (t.state, &f.retry_at) {
            (JobState::Stuck, _) => {
                Some("Foreman has stopped retrying. Comment `/foreman retry` to queue it again.".to_owned())
            }
            (_, Some(at)) => Some(format!("The next attempt is due at {at}.")),
            _ => None,
        };
        FailureView {
            class: f.class.clone(),
            reason: cut(&sentence(&redact_tokens(f.reason.trim())), REASON_LIMIT),
            next,
            advice: advice(&f.class, t.state),
        }
    });
    let link = |l: &Option<Link>| l.as_ref().map(|l| format!("[{}]({})", l.text, l.url));
    let ctx = context! {
        marker => crate::markers::tracking(&t.repo, t.issue),
        headline => resolved_headline(t.state, t.resolution),
        trigger => t.trigger.clone(),
        queue_position => t.queue_position.filter(|_| t.state == JobState::Queued),
        waiting => t.waiting.clone().filter(|_| t.state == JobState::Queued),
        wait_details => t
            .wait_details
            .as_deref()
            .filter(|_| t.state == JobState::Queued && t.waiting.is_some())
            .map(|d| cut(&redact_tokens(d.trim()), WAIT_DETAILS_LIMIT)),
        attempt => t.attempt.map(|a| a.0),
        since_retry => t.since_retry,
        max_attempts => t.attempt.map(|a| a.1),
        progress => progress.map(Serde),
        pull_request => link(&t.pull_request),
        session_log => link(&t.session_log),
        answer => link(&t.answer),
        answer_label => if t.resolution == Some(Resolution::Plan) { "Plan" } else { "Answer" },
        next_step => (t.state == JobState::Succeeded && t.resolution == Some(Resolution::Plan)).then_some(PLAN_NEXT_STEP),
        summary => t.summary.as_deref().map(|s| cut(&redact_tokens(s.trim()), SUMMARY_LIMIT)).filter(|s| !s.is_empty()),
        failure => failure.map(Serde),
        updated_at => t.updated_at.clone(),
    };
    render("tracking", ctx)
}

/// Renders the pull-request body (Markdown): the summary, `Closes #N` and the session's figures.
pub fn pull_request_body(b: &PullRequestBody) -> String {
    let summary = cut(&redact_tokens(b.summary.trim()), SUMMARY_LIMIT);
    let summary = if summary.is_empty() { format!("Changes made by Foreman for #{}.", b.issue) } else { summary };
    let f = &b.figures;
    let mut figures: Vec<(&str, String)> = Vec::new();
    if !f.agent.is_empty() {
        figures.push(("agent", f.agent.clone()));
    }
    figures.extend([
        ("attempt", f.attempt.to_string()),
        ("turns", f.turns.to_string()),
        ("tool calls", f.tool_calls.to_string()),
        ("cost", cost(f.cost_usd)),
        ("duration", duration(f.duration_ms / 1000)),
        ("commits", f.commits.to_string()),
        ("files changed", f.files_changed.to_string()),
        ("lines", format!("+{} −{}", f.lines_added, f.lines_deleted)),
    ]);
    let mut links = Vec::new();
    if let Some(l) = &b.tracking_comment {
        links.push(format!("Tracking comment: [{}]({})", l.text, l.url));
    }
    if let Some(l) = &b.session_log {
        links.push(format!("Session log: [{}]({})", l.text, l.url));
    }
    let ctx = context! {
        summary => summary,
        issue => b.issue.0,
        figures => Serde(figures),
        links => links,
        requester => b.requester.clone(),
    };
    render("pull_request", ctx)
}

/// The comment holding an agent's answer (`plan`: false) or plan (`plan`: true) on `issue`, without its
/// marker: the text redacted and cut to [`SUMMARY_LIMIT`]; a plan headed as one and ending with
/// [`PLAN_NEXT_STEP`], an answer ending with how to ask for changes instead.
pub fn answer_body(issue: IssueNumber, text: &str, plan: bool) -> String {
    let text = cut(&redact_tokens(text.trim()), SUMMARY_LIMIT);
    if plan {
        format!("### 📝 Foreman's plan for #{issue}\n\n{text}\n\n---\n\n{PLAN_NEXT_STEP}")
    } else {
        format!(
            "{text}\n\n<sub>Foreman's agent answered without changing any code. To ask for changes, comment \
             `/foreman run <instructions>`.</sub>"
        )
    }
}

fn render(name: &str, ctx: minijinja::Value) -> String {
    // The templates are constants checked by the tests, and every value is prepared above: a failure here is
    // a bug in this file, not bad input. Runs of blank lines left by empty sections collapse to one blank
    // line (Markdown renders them alike).
    let mut out = ENV.get_template(name).and_then(|t| t.render(ctx)).expect("report templates render");
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

/// Money in US dollars with cents (`$0.42`; under a cent `<$0.01`), `n/a` when unknown.
fn cost(usd: Option<f64>) -> String {
    match usd {
        None => "n/a".into(),
        Some(c) if c > 0.0 && c < 0.005 => "<$0.01".into(),
        Some(c) => format!("${c:.2}"),
    }
}

/// A duration as `45s`, `3m 12s` or `1h 04m`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `s` on one line (line breaks as spaces), at most `limit` characters (an ellipsis when cut).
fn one_line(s: &str, limit: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= limit {
        return flat;
    }
    let mut out: String = flat.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The first `limit` characters of `s`, with a note when cut.
fn cut(s: &str, limit: usize) -> String {
    if s.chars().count() <= limit {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(limit).collect();
    out.push_str("\n\n… (cut)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(sentence("the agent exited with status 1"), "The agent exited with status 1.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn figures_are_formatted() {
        assert_eq!(cost(None), "n/a");
        assert_eq!(cost(Some(0.001)), "<$0.01");
        assert_eq!(cost(Some(1.234)), "$1.23");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(192), "3m 12s");
        assert_eq!(duration(3840), "1h 04m");
    }
}
