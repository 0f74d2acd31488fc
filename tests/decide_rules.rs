//! Table tests for every trigger rule and command case: real example payloads, edited to the case,
//! decoded, and decided. Each row names the rule it checks.

use foreman::decide::{self, Action, DecideConfig, ItemContent, ItemFacts, JobState, Level, Lookup, Snapshot};
use foreman::event;
use foreman::ids::{IssueNumber, NodeId};
use serde_json::{Value, json};

fn example(event: &str, file: &str) -> Value {
    let path = format!("{}/vendor/github/webhooks/examples/api.github.com/{event}/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `issues.<action>` on Codertocat/Hello-World#1 by `sender`, with the label `label`.
fn issues(action: &str, label: &str) -> (&'static str, Value) {
    let mut b = example("issues", "labeled.payload.json");
    b["action"] = json!(action);
    b["label"]["name"] = json!(label);
    ("issues", b)
}

fn by_bot(mut e: (&'static str, Value), login: &str) -> (&'static str, Value) {
    e.1["sender"]["login"] = json!(login);
    e.1["sender"]["type"] = json!("Bot");
    e
}

fn closed_issue(mut e: (&'static str, Value)) -> (&'static str, Value) {
    e.1["issue"]["state"] = json!("closed");
    e
}

/// A comment on Codertocat/Hello-World#1 by Codertocat with `association`.
fn comment(body: &str, association: &str) -> (&'static str, Value) {
    let mut b = example("issue_comment", "created.payload.json");
    b["comment"]["body"] = json!(body);
    b["comment"]["author_association"] = json!(association);
    b["installation"] = json!({ "id": 7, "node_id": "x" });
    ("issue_comment", b)
}

fn edited(body: &str, previous: &str) -> (&'static str, Value) {
    let mut b = example("issue_comment", "edited.payload.json");
    b["comment"]["body"] = json!(body);
    b["changes"]["body"]["from"] = json!(previous);
    ("issue_comment", b)
}

fn on_pull_request(mut e: (&'static str, Value)) -> (&'static str, Value) {
    e.1["issue"]["pull_request"] = json!({ "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1" });
    e
}

fn comment_by_bot(body: &str, login: &str) -> (&'static str, Value) {
    let mut e = comment(body, "NONE");
    e.1["comment"]["user"]["login"] = json!(login);
    e.1["comment"]["user"]["type"] = json!("Bot");
    e
}

/// A Projects v2 item edit on an issue item. `field_value` replaces `changes.field_value`.
fn board(field_value: Value) -> (&'static str, Value) {
    let mut b = example("projects_v2_item", "edited.payload.json");
    b["projects_v2_item"]["content_type"] = json!("Issue");
    b["projects_v2_item"]["content_node_id"] = json!("I_kwDOA");
    b["changes"]["field_value"] = field_value;
    ("projects_v2_item", b)
}

fn status_to(column: &str) -> (&'static str, Value) {
    board(json!({
        "field_node_id": "PVTSSF_status", "field_type": "single_select", "field_name": "Status",
        "from": { "id": "1", "name": "Todo" }, "to": { "id": "2", "name": column }
    }))
}

fn old_shape() -> (&'static str, Value) {
    board(json!({ "field_node_id": "PVTSSF_status", "field_type": "single_select" }))
}

fn item(status: Option<&str>, field: &str) -> Snapshot {
    Snapshot {
        item: Some(ItemFacts {
            status_field: Some(NodeId(field.into())),
            status: status.map(str::to_owned),
            content: ItemContent::Issue { repo: "octo-org/app".parse().unwrap(), number: IssueNumber(9) },
        }),
        ..Snapshot::default()
    }
}

fn job(state: JobState) -> Snapshot {
    Snapshot { job: Some(state), ..Snapshot::default() }
}

fn none() -> Snapshot {
    Snapshot::default()
}

fn with(f: impl FnOnce(&mut DecideConfig)) -> DecideConfig {
    let mut c = DecideConfig::default();
    f(&mut c);
    c
}

/// One line per action, short enough to read in a table.
fn summary(a: &Action) -> String {
    match a {
        Action::Enqueue { kind, repo, issue, trigger, requester, instructions, .. } => {
            let kind = serde_json::to_value(kind).unwrap();
            let trigger = serde_json::to_value(trigger).unwrap();
            let mut s = format!(
                "enqueue {} {repo}#{issue} by {requester} via {}",
                kind.as_str().unwrap(),
                trigger.as_str().unwrap()
            );
            if let Some(i) = instructions {
                s.push_str(&format!(" [{i}]"));
            }
            s
        }
        Action::Cancel { repo, issue, .. } => format!("cancel {repo}#{issue}"),
        Action::Retry { repo, issue, requester, .. } => format!("retry {repo}#{issue} by {requester}"),
        Action::Reply { text, .. } => format!("reply: {text}"),
        Action::Lookup { what: Lookup::Permission { user, needs, .. }, .. } => {
            format!("lookup permission of {user} (needs {needs})")
        }
        Action::Lookup { what: Lookup::ProjectItem { item, .. }, .. } => format!("lookup item {item}"),
        Action::CheckConstitution { repo, pull, head_sha, .. } => {
            format!("check constitution {repo}#{pull} at {head_sha}")
        }
        Action::ShowConstitution { repo, issue, .. } => format!("show constitution {repo}#{issue}"),
        Action::Link(link) => format!("link {}", serde_json::to_value(link).unwrap()),
        Action::ConstitutionChanged { repo, after } => format!("constitution changed in {repo} at {after}"),
        Action::InitConstitution { repo, issue, template, requester, .. } => {
            format!("init constitution {repo}#{issue} from {} by {requester}", template.name())
        }
        Action::ApprovePlan { repo, issue, requester, .. } => format!("approve plan {repo}#{issue} by {requester}"),
        Action::Ignore { reason } => format!("ignore: {reason}"),
        Action::RunEnded { run_id } => format!("run {run_id} ended"),
        Action::IssueState { repo, issue, open } => {
            format!("{repo}#{issue} is {}", if *open { "open" } else { "closed" })
        }
        Action::Reorder { repo, issue, title, labels } => {
            format!("reorder {repo}#{issue} as \"{title}\" [{}]", labels.join(", "))
        }
    }
}

struct Case {
    rule: &'static str,
    event: (&'static str, Value),
    config: DecideConfig,
    snapshot: Snapshot,
    /// One per action: the summary, exactly, or, starting with `~`, a part of it.
    expect: &'static [&'static str],
}

fn case(rule: &'static str, event: (&'static str, Value), snapshot: Snapshot, expect: &'static [&'static str]) -> Case {
    Case { rule, event, config: DecideConfig::default(), snapshot, expect }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let body = serde_json::to_vec(&c.event.1).unwrap();
        let e = event::decode(c.event.0, &body).unwrap_or_else(|e| panic!("{}: {e}", c.rule));
        let actions = decide::decide(&e, &c.config, &c.snapshot);
        for a in &actions {
            // The metrics label is the JSON tag.
            assert_eq!(serde_json::to_value(a).unwrap()["decision"], a.decision(), "{}", c.rule);
        }
        let got: Vec<String> = actions.iter().map(summary).collect();
        let ok = got.len() == c.expect.len()
            && got.iter().zip(c.expect).all(|(g, x)| match x.strip_prefix('~') {
                Some(part) => g.contains(part),
                None => g == x,
            });
        if !ok {
            failures.push(format!("{}:\n  expected {:?}\n  got      {:?}", c.rule, c.expect, got));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn label_rules() {
    run(vec![
        case(
            "adding the trigger label queues the issue",
            issues("labeled", "foreman"),
            none(),
            &["enqueue code Codertocat/Hello-World#1 by Codertocat via label"],
        ),
        case("label names compare case-insensitively", issues("labeled", "Foreman"), none(), &["~enqueue code"]),
        case(
            "another label does nothing",
            issues("labeled", "bug"),
            none(),
            &["ignore: label 'bug' is not a trigger label"],
        ),
        case(
            "a queued issue is not queued twice",
            issues("labeled", "foreman"),
            job(JobState::Queued),
            &["ignore: Codertocat/Hello-World#1 already has a queued job"],
        ),
        case(
            "a failed job is queued again by a new label",
            issues("labeled", "foreman"),
            job(JobState::Failed),
            &["~enqueue code"],
        ),
        case(
            "labelling a closed issue does nothing",
            closed_issue(issues("labeled", "foreman")),
            none(),
            &["~is closed"],
        ),
        case(
            "a bot's label does nothing",
            by_bot(issues("labeled", "foreman"), "renovate[bot]"),
            none(),
            &["ignore: label added by bot 'renovate[bot]', which is not in triggers.allowed_bots"],
        ),
        case(
            "Foreman's own label does nothing",
            by_bot(issues("labeled", "foreman"), "foreman[bot]"),
            none(),
            &["~by bot 'foreman[bot]'"],
        ),
        Case {
            rule: "an allowlisted bot's label queues",
            event: by_bot(issues("labeled", "foreman"), "renovate[bot]"),
            config: with(|c| c.allowed_bots = vec!["Renovate[bot]".into()]),
            snapshot: none(),
            expect: &["enqueue code Codertocat/Hello-World#1 by renovate[bot] via label"],
        },
        Case {
            rule: "a configured label",
            event: issues("labeled", "agent"),
            config: with(|c| c.label = "agent".into()),
            snapshot: none(),
            expect: &["~enqueue code"],
        },
        case(
            "removing the label cancels a queued job",
            issues("unlabeled", "foreman"),
            job(JobState::Queued),
            &["cancel Codertocat/Hello-World#1"],
        ),
        case(
            "removing the label leaves a running job",
            issues("unlabeled", "foreman"),
            job(JobState::Running),
            &["~left to finish (triggers.cancel_on_unlabel is off)"],
        ),
        Case {
            rule: "removing the label cancels a running job with cancel_on_unlabel",
            event: issues("unlabeled", "foreman"),
            config: with(|c| c.cancel_on_unlabel = true),
            snapshot: job(JobState::Running),
            expect: &["cancel Codertocat/Hello-World#1"],
        },
        case("removing the label without a job", issues("unlabeled", "foreman"), none(), &["~has no job"]),
        case(
            "removing another label re-places a queued job",
            issues("unlabeled", "bug"),
            job(JobState::Queued),
            &["~not a trigger label", "~reorder Codertocat/Hello-World#1 as"],
        ),
        case(
            "adding another label re-places a job waiting to retry",
            issues("labeled", "priority:high"),
            job(JobState::Failed),
            &["~not a trigger label", "~reorder Codertocat/Hello-World#1"],
        ),
        case(
            "another label leaves a running job where it is",
            issues("labeled", "priority:high"),
            job(JobState::Running),
            &["~not a trigger label"],
        ),
        case("another label without a job", issues("labeled", "priority:high"), none(), &["~not a trigger label"]),
        case(
            "editing the title re-places a queued job",
            issues("edited", "x"),
            job(JobState::Queued),
            &["~does not start work", "~reorder Codertocat/Hello-World#1"],
        ),
        case("editing without a job", issues("edited", "x"), none(), &["~does not start work"]),
        case(
            "a bot removing the label does nothing",
            by_bot(issues("unlabeled", "foreman"), "x[bot]"),
            job(JobState::Queued),
            &["~label removed by bot"],
        ),
    ]);
}

#[test]
fn other_issue_events() {
    run(vec![
        case(
            "closing cancels the job",
            issues("closed", "x"),
            job(JobState::Running),
            &["cancel Codertocat/Hello-World#1", "Codertocat/Hello-World#1 is closed"],
        ),
        case(
            "closing cancels a job waiting to retry",
            issues("closed", "x"),
            job(JobState::Failed),
            &["cancel Codertocat/Hello-World#1", "Codertocat/Hello-World#1 is closed"],
        ),
        case(
            "closing leaves a stuck job be",
            issues("closed", "x"),
            job(JobState::Stuck),
            &["~already stuck", "~is closed"],
        ),
        case("closing without a job", issues("closed", "x"), none(), &["~was closed, but", "~is closed"]),
        case(
            "closing after the job finished",
            issues("closed", "x"),
            job(JobState::Succeeded),
            &["~already succeeded", "~is closed"],
        ),
        case(
            "a bot closing still cancels",
            by_bot(issues("closed", "x"), "stale[bot]"),
            job(JobState::Queued),
            &["~cancel", "~is closed"],
        ),
        case("deleting cancels", issues("deleted", "x"), job(JobState::Queued), &["~cancel"]),
        case("transferring cancels", issues("transferred", "x"), job(JobState::Queued), &["~cancel"]),
        case(
            "reopening does not queue, and its dependents wait again",
            issues("reopened", "foreman"),
            none(),
            &["~reopening does not queue", "Codertocat/Hello-World#1 is open"],
        ),
        case("opening does not queue", issues("opened", "foreman"), none(), &["~was opened"]),
        case("editing does nothing", issues("edited", "x"), none(), &["~editing"]),
        case("assigning does nothing", issues("assigned", "x"), none(), &["~assignment"]),
        case(
            "a new action is ignored",
            issues("typed", "x"),
            none(),
            &["ignore: action 'issues.typed' is not one Foreman acts on"],
        ),
    ]);
}

#[test]
fn board_rules() {
    let facts_ready = || item(Some("Ready"), "PVTSSF_status");
    run(vec![
        case(
            "a move to Ready needs the issue behind the item",
            status_to("Ready"),
            none(),
            &["lookup item PVTI_lADOAWcTxs07G84AVqWu"],
        ),
        case(
            "with the item known, a move to Ready queues it",
            status_to("Ready"),
            facts_ready(),
            &["enqueue code octo-org/app#9 by wolfy1339 via board"],
        ),
        case("column names compare case-insensitively", status_to("ready"), facts_ready(), &["~enqueue code"]),
        case("a move to Backlog needs the issue too", status_to("Backlog"), none(), &["~lookup item"]),
        case(
            "a move to Todo cancels",
            status_to("Todo"),
            Snapshot { job: Some(JobState::Running), ..item(Some("Todo"), "PVTSSF_status") },
            &["cancel octo-org/app#9"],
        ),
        case(
            "a move to Backlog with no job",
            status_to("Backlog"),
            item(Some("Backlog"), "PVTSSF_status"),
            &["~has no job"],
        ),
        case(
            "other columns do nothing, without a lookup",
            status_to("In progress"),
            none(),
            &["ignore: column 'In progress' is neither a trigger column (Ready) nor a stop column (Backlog, Todo)"],
        ),
        case(
            "another field does nothing",
            board(json!({
            "field_node_id": "PVTF_p", "field_type": "single_select", "field_name": "Priority",
            "to": { "id": "1", "name": "Ready" } })),
            none(),
            &["ignore: field 'Priority' is not the status field 'Status'"],
        ),
        case(
            "a text field does nothing",
            board(json!({ "field_node_id": "PVTF_t", "field_type": "text" })),
            none(),
            &["~a text field changed"],
        ),
        case(
            "a cleared Status does nothing",
            board(json!({
            "field_node_id": "PVTSSF_status", "field_type": "single_select", "field_name": "Status",
            "from": { "id": "1", "name": "Ready" }, "to": null })),
            none(),
            &["~was cleared"],
        ),
        case("the older shape never guesses: lookup", old_shape(), none(), &["lookup item PVTI_lADOAWcTxs07G84AVqWu"]),
        case(
            "the older shape, looked up: Status is Ready",
            old_shape(),
            facts_ready(),
            &["~enqueue code octo-org/app#9"],
        ),
        case(
            "the older shape, looked up: another field changed",
            old_shape(),
            item(Some("Ready"), "PVTSSF_other"),
            &["~is not the status field"],
        ),
        case(
            "the older shape, looked up: In progress",
            old_shape(),
            item(Some("In progress"), "PVTSSF_status"),
            &["~neither a trigger column"],
        ),
        case(
            "a queued issue is not queued twice",
            status_to("Ready"),
            Snapshot { job: Some(JobState::Queued), ..facts_ready() },
            &["~already has a queued job"],
        ),
        case(
            "draft issues are ignored with the reason",
            {
                let mut e = status_to("Ready");
                e.1["projects_v2_item"]["content_type"] = json!("DraftIssue");
                e
            },
            none(),
            &["~is a draft issue"],
        ),
        case(
            "pull requests are ignored with the reason",
            {
                let mut e = status_to("Ready");
                e.1["projects_v2_item"]["content_type"] = json!("PullRequest");
                e
            },
            none(),
            &["~is a pull request"],
        ),
        case(
            "a bot's board move does nothing",
            by_bot(status_to("Ready"), "foreman[bot]"),
            facts_ready(),
            &["~board move by bot 'foreman[bot]'"],
        ),
        case(
            "adding an item does nothing",
            {
                let mut e = status_to("Ready");
                e.1["action"] = json!("created");
                e
            },
            none(),
            &["~board item created"],
        ),
        case(
            "the real example (a draft issue)",
            ("projects_v2_item", example("projects_v2_item", "edited.payload.json")),
            none(),
            &["~draft issue"],
        ),
        Case {
            rule: "configured status field and columns",
            event: board(json!({ "field_node_id": "F", "field_type": "single_select", "field_name": "Stage",
                "to": { "id": "1", "name": "Go" } })),
            config: with(|c| {
                c.status_field = "stage".into();
                c.trigger_columns = vec!["Go".into()];
            }),
            snapshot: item(Some("Go"), "F"),
            expect: &["~enqueue code octo-org/app#9"],
        },
    ]);
}

#[test]
fn command_rules() {
    run(vec![
        case(
            "run by the owner queues",
            comment("/foreman run", "OWNER"),
            none(),
            &["enqueue code Codertocat/Hello-World#1 by Codertocat via command"],
        ),
        case(
            "run with instructions",
            comment("/foreman run add a --json flag", "OWNER"),
            none(),
            &["enqueue code Codertocat/Hello-World#1 by Codertocat via command [add a --json flag]"],
        ),
        case("the mention form", comment("@foreman run", "OWNER"), none(), &["~enqueue code"]),
        case("the mention form with [bot]", comment("@foreman[bot] plan", "OWNER"), none(), &["~enqueue plan"]),
        case(
            "plan",
            comment("/foreman plan", "OWNER"),
            none(),
            &["enqueue plan Codertocat/Hello-World#1 by Codertocat via command"],
        ),
        case(
            "run on a pull request is a follow-up",
            on_pull_request(comment("/foreman run fix the test", "OWNER")),
            none(),
            &["enqueue follow-up Codertocat/Hello-World#1 by Codertocat via command [fix the test]"],
        ),
        case("run while queued", comment("/foreman run", "OWNER"), job(JobState::Queued), &["~is already queued"]),
        case("run on a closed issue", closed_issue(comment("/foreman run", "OWNER")), none(), &["~is closed"]),
        case(
            "stop cancels",
            comment("/foreman stop", "OWNER"),
            job(JobState::Running),
            &["cancel Codertocat/Hello-World#1"],
        ),
        case(
            "stop with nothing to stop",
            comment("/foreman stop", "OWNER"),
            none(),
            &["~no queued, running or waiting job"],
        ),
        case(
            "stop reaches a job waiting to retry",
            comment("/foreman stop", "OWNER"),
            job(JobState::Failed),
            &["cancel Codertocat/Hello-World#1"],
        ),
        case(
            "stop on a stuck job has nothing to stop",
            comment("/foreman stop", "OWNER"),
            job(JobState::Stuck),
            &["~no queued, running or waiting job"],
        ),
        case(
            "retry a stuck job",
            comment("/foreman retry", "OWNER"),
            job(JobState::Stuck),
            &["retry Codertocat/Hello-World#1 by Codertocat"],
        ),
        case(
            "run on a job waiting to retry refreshes it",
            comment("/foreman run", "OWNER"),
            job(JobState::Failed),
            &["~enqueue code"],
        ),
        case(
            "retry a failed job",
            comment("/foreman retry", "OWNER"),
            job(JobState::Failed),
            &["retry Codertocat/Hello-World#1 by Codertocat"],
        ),
        case("retry a cancelled job", comment("/foreman retry", "OWNER"), job(JobState::Cancelled), &["~retry"]),
        case("retry a running job", comment("/foreman retry", "OWNER"), job(JobState::Running), &["~nothing to retry"]),
        case("retry without a job", comment("/foreman retry", "OWNER"), none(), &["~no job to retry"]),
        case(
            "status",
            comment("/foreman status", "NONE"),
            job(JobState::Running),
            &["reply: The Foreman job for #1 is **running**."],
        ),
        case("help, for anyone", comment("/foreman help", "NONE"), none(), &["~reply: **Foreman commands**"]),
        case(
            "several commands, in order",
            comment("/foreman status\nthen\n/foreman run", "OWNER"),
            none(),
            &["reply: #1 has no Foreman job.", "~enqueue code"],
        ),
        case(
            "an unknown command gets a suggestion",
            comment("/foreman rnu", "OWNER"),
            none(),
            &["~Did you mean `/foreman run [instructions]`?"],
        ),
        case(
            "arguments to stop",
            comment("/foreman stop now", "OWNER"),
            job(JobState::Queued),
            &["~`stop` takes no arguments, but was given `now`"],
        ),
        case("the prefix alone", comment("/foreman", "OWNER"), none(), &["~it names no command"]),
        case(
            "a command in a code block",
            comment("```\n/foreman run\n```", "OWNER"),
            none(),
            &["ignore: no command in the comment"],
        ),
        case(
            "a quoted command",
            comment("> /foreman run\n\nquoting that", "OWNER"),
            none(),
            &["ignore: no command in the comment"],
        ),
        case(
            "a command in inline code",
            comment("write `/foreman run`", "OWNER"),
            none(),
            &["ignore: no command in the comment"],
        ),
        case(
            "a command in an HTML comment",
            comment("<!-- /foreman run -->", "OWNER"),
            none(),
            &["ignore: no command in the comment"],
        ),
        case(
            "a command mid-line",
            comment("please /foreman run", "OWNER"),
            none(),
            &["ignore: no command in the comment"],
        ),
        case(
            "a deleted comment",
            {
                let mut e = comment("/foreman run", "OWNER");
                e.1["action"] = json!("deleted");
                e
            },
            none(),
            &["~deleted comment"],
        ),
    ]);
}

#[test]
fn edited_comments_run_only_new_commands() {
    run(vec![
        case(
            "an edit that adds a command",
            edited("typo fixed\n/foreman run", "typo fixd"),
            none(),
            &["~enqueue code"],
        ),
        case(
            "an edit that keeps a command",
            edited("/foreman run\nmore words", "/foreman run"),
            none(),
            &["ignore: the edit added no new command"],
        ),
        case(
            "an edit that keeps one and adds another",
            edited("/foreman status\n/foreman run", "/foreman status"),
            none(),
            &["~enqueue code"],
        ),
        case(
            "an edit that repeats a command adds one",
            edited("/foreman status\n/foreman status", "/foreman status"),
            none(),
            &["~reply: #1 has no Foreman job"],
        ),
        case(
            "an edit that moves a command out of a code block",
            edited("/foreman run", "```\n/foreman run\n```"),
            none(),
            &["~enqueue code"],
        ),
        case(
            "an unchanged unknown command is not answered again",
            edited("/foreman rnu\nok", "/foreman rnu"),
            none(),
            &["~no new command"],
        ),
    ]);
}

#[test]
fn permissions() {
    run(vec![
        case("the owner passes without a lookup", comment("/foreman run", "OWNER"), none(), &["~enqueue"]),
        // MEMBER and COLLABORATOR say nothing of write access: a triage collaborator shows as COLLABORATOR too.
        case(
            "a member needs a lookup",
            comment("/foreman run", "MEMBER"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "a collaborator needs a lookup",
            comment("/foreman run", "COLLABORATOR"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "a collaborator looked up with triage is refused with a reply",
            comment("/foreman run", "COLLABORATOR"),
            Snapshot { permission: Some(Level::Triage), ..none() },
            &["reply: @Codertocat, `/foreman run` needs write permission on Codertocat/Hello-World; you have triage."],
        ),
        case(
            "a member looked up with read is refused with a reply",
            comment("/foreman stop", "MEMBER"),
            Snapshot { permission: Some(Level::Read), ..none() },
            &["~`/foreman stop` needs write permission on Codertocat/Hello-World; you have read."],
        ),
        case(
            "a collaborator looked up with write passes",
            comment("/foreman run", "COLLABORATOR"),
            Snapshot { permission: Some(Level::Write), ..none() },
            &["~enqueue code"],
        ),
        case(
            "a contributor needs a lookup",
            comment("/foreman run", "CONTRIBUTOR"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "no association needs a lookup",
            comment("/foreman stop", "NONE"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "looked up: write passes",
            comment("/foreman run", "CONTRIBUTOR"),
            Snapshot { permission: Some(Level::Write), ..none() },
            &["~enqueue code"],
        ),
        case(
            "looked up: maintain passes",
            comment("/foreman run", "NONE"),
            Snapshot { permission: Some(Level::Maintain), ..none() },
            &["~enqueue code"],
        ),
        case(
            "looked up: read is refused with a reply",
            comment("/foreman run", "NONE"),
            Snapshot { permission: Some(Level::Read), ..none() },
            &["reply: @Codertocat, `/foreman run` needs write permission on Codertocat/Hello-World; you have read."],
        ),
        case(
            "looked up: no role at all",
            comment("/foreman stop", "NONE"),
            Snapshot { permission: Some(Level::Anyone), ..none() },
            &["reply: @Codertocat, `/foreman stop` needs write permission on Codertocat/Hello-World; you have none."],
        ),
        case(
            "a lookup is alone, so nothing is answered twice",
            comment("/foreman help\n/foreman run", "NONE"),
            none(),
            &["~lookup permission"],
        ),
        case(
            "after the lookup, every command is answered, in one reply",
            comment("/foreman help\n/foreman run", "NONE"),
            Snapshot { permission: Some(Level::Triage), ..none() },
            &["~`generic`, the default). |\n\n---\n\n@Codertocat, `/foreman run` needs write permission"],
        ),
        case(
            "status and help need no permission",
            comment("/foreman status\n/foreman help", "NONE"),
            none(),
            &["~reply: #1 has no Foreman job.\n\n---\n\n**Foreman commands**"],
        ),
        case(
            "replies are joined where the first was",
            comment("/foreman rnu\n/foreman run\n/foreman stop", "OWNER"),
            none(),
            &[
                "~Write `/foreman help` for what each does.\n\n---\n\n@Codertocat, there is no queued, running or waiting job for #1 to stop.",
                "~enqueue code",
            ],
        ),
        case(
            "at most ten commands of one comment count",
            comment(&"/foreman stop\n".repeat(30), "OWNER"),
            none(),
            &["~to stop.\n\n---\n\n"],
        ),
        case(
            "unknown commands get a reply without a lookup",
            comment("/foreman deploy", "NONE"),
            none(),
            &["~is not a Foreman command"],
        ),
        Case {
            rule: "a level above write needs a lookup even for a member",
            event: comment("/foreman run", "MEMBER"),
            config: with(|c| c.permissions.run = Level::Maintain),
            snapshot: none(),
            expect: &["lookup permission of Codertocat (needs maintain)"],
        },
        Case {
            rule: "the owner passes any level",
            event: comment("/foreman run", "OWNER"),
            config: with(|c| c.permissions.run = Level::Admin),
            snapshot: none(),
            expect: &["~enqueue code"],
        },
        Case {
            rule: "status restricted to write",
            event: comment("/foreman status", "NONE"),
            config: with(|c| c.permissions.status = Level::Write),
            snapshot: none(),
            expect: &["~lookup permission"],
        },
        case(
            "a bot's command is ignored",
            comment_by_bot("/foreman run", "dependabot[bot]"),
            none(),
            &["ignore: comment by bot 'dependabot[bot]', which is not in triggers.allowed_bots"],
        ),
        case(
            "Foreman's own comment quoting a command is ignored",
            comment_by_bot("Write\n/foreman run\nto start.", "foreman[bot]"),
            none(),
            &["~comment by bot 'foreman[bot]'"],
        ),
        Case {
            rule: "an allowlisted bot's command still needs permission",
            event: comment_by_bot("/foreman run", "helper[bot]"),
            config: with(|c| c.allowed_bots = vec!["helper[bot]".into()]),
            snapshot: none(),
            expect: &["lookup permission of helper[bot] (needs write)"],
        },
    ]);
}

#[test]
fn reviews_and_review_comments_carry_commands() {
    let mut review = example("pull_request_review", "submitted.payload.json");
    review["review"]["body"] = json!("Looks close.\n\n/foreman run handle the empty list");
    let mut review_comment = example("pull_request_review_comment", "created.payload.json");
    review_comment["comment"]["body"] = json!("@foreman run rename this");
    run(vec![
        case(
            "a review's body",
            ("pull_request_review", review),
            none(),
            &["enqueue follow-up Codertocat/Hello-World#2 by Codertocat via command [handle the empty list]"],
        ),
        case(
            "a review comment",
            ("pull_request_review_comment", review_comment),
            none(),
            &["enqueue follow-up Codertocat/Hello-World#2 by Codertocat via command [rename this]"],
        ),
    ]);
}

#[test]
fn status_answers_with_position_failures_and_last_session() {
    let facts = foreman::decide::JobFacts {
        position: Some(3),
        attempts: 2,
        failures: (1, 3),
        last_failure: Some("agent: the agent finished without changing anything".into()),
        stuck_reason: None,
        last_session: Some("01a1fc17".into()),
        not_before: None,
    };
    let snapshot = Snapshot { job: Some(JobState::Queued), facts: Some(facts), ..none() };
    run(vec![case(
        "status with the job's figures",
        comment("/foreman status", "NONE"),
        snapshot,
        &[
            "reply: The Foreman job for #1 is **queued**.\n- Position in the queue: 3\n- Attempts: 2\n- Failures counted toward the limit: 1 of 3\n- Last failure: agent: the agent finished without changing anything\n- Last session: `01a1fc17`",
        ],
    )]);
}

/// A review of Foreman's own pull request (opened by `foreman[bot]`) with `state`, by a reviewer with
/// `association`.
fn review_of_ours(state: &str, association: &str, body: &str) -> (&'static str, Value) {
    let mut b = example("pull_request_review", "submitted.payload.json");
    b["review"]["state"] = json!(state);
    b["review"]["body"] = json!(body);
    b["review"]["author_association"] = json!(association);
    b["pull_request"]["user"]["login"] = json!("foreman[bot]");
    b["pull_request"]["user"]["type"] = json!("Bot");
    ("pull_request_review", b)
}

#[test]
fn a_review_requesting_changes_on_foremans_pull_request_queues_a_follow_up() {
    let theirs = {
        let mut e = review_of_ours("changes_requested", "OWNER", "Fix the typo.");
        e.1["pull_request"]["user"]["login"] = json!("octocat");
        e.1["pull_request"]["user"]["type"] = json!("User");
        e
    };
    run(vec![
        case(
            "changes requested by a writer on Foreman's pull request",
            review_of_ours("changes_requested", "COLLABORATOR", "Fix the typo."),
            Snapshot { permission: Some(Level::Write), ..none() },
            &["enqueue follow-up Codertocat/Hello-World#2 by Codertocat via review [Fix the typo.]"],
        ),
        case(
            "a collaborating reviewer is looked up",
            review_of_ours("changes_requested", "COLLABORATOR", "Fix the typo."),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "a triage collaborator's review starts nothing",
            review_of_ours("changes_requested", "COLLABORATOR", "Fix the typo."),
            Snapshot { permission: Some(Level::Triage), ..none() },
            &["~lacks write permission"],
        ),
        case(
            "an approval queues nothing",
            review_of_ours("approved", "OWNER", "Nice."),
            none(),
            &["~ignore: no command"],
        ),
        case("changes requested on someone else's pull request", theirs, none(), &["~which foreman[bot] did not open"]),
        case(
            "a reviewer without a known role is looked up",
            review_of_ours("changes_requested", "CONTRIBUTOR", "Fix it."),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "a reader's review starts nothing",
            review_of_ours("changes_requested", "CONTRIBUTOR", "Fix it."),
            Snapshot { permission: Some(Level::Read), ..none() },
            &["~lacks write permission"],
        ),
        case(
            "the job already runs",
            review_of_ours("changes_requested", "OWNER", "Fix it."),
            job(JobState::Running),
            &["~already running"],
        ),
    ]);
}

#[test]
fn actions_serialise_as_the_documented_json_lines() {
    let (name, body) = issues("labeled", "foreman");
    let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
    let e = e.with_delivery(foreman::ids::DeliveryId("d-1".into()));
    let actions = decide::decide(&e, &DecideConfig::default(), &Snapshot::default());
    assert_eq!(
        serde_json::to_string(&actions[0]).unwrap(),
        r#"{"decision":"enqueue","kind":"code","repo":"Codertocat/Hello-World","issue":1,"trigger":"label","requester":"Codertocat","delivery":"d-1"}"#
    );
    let (name, body) = issues("labeled", "bug");
    let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_string(&decide::decide(&e, &DecideConfig::default(), &Snapshot::default())[0]).unwrap(),
        r#"{"decision":"ignore","reason":"label 'bug' is not a trigger label"}"#
    );
    let (name, body) = comment("/foreman run", "NONE");
    let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_string(&decide::decide(&e, &DecideConfig::default(), &Snapshot::default())[0]).unwrap(),
        r#"{"decision":"lookup","what":"permission","repo":"Codertocat/Hello-World","user":"Codertocat","user_id":21031067,"needs":"write","installation":7}"#
    );
}

#[test]
fn the_triggers_table_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
    let c: DecideConfig = toml_de("label = \"agent\"\n[permissions]\nstatus = \"write\"\n").unwrap();
    assert_eq!(c.label, "agent");
    assert_eq!(c.permissions.status, Level::Write);
    assert_eq!(c.permissions.run, Level::Write);
    assert_eq!(c.trigger_columns, ["Ready"]);
    assert_eq!(c.stop_columns, ["Backlog", "Todo"]);
    assert!(toml_de("labels = \"x\"").is_err());
    assert!(toml_de("[permissions]\ndeploy = \"write\"").is_err());
    assert!(toml_de("[permissions]\nrun = \"superuser\"").is_err());
}

fn toml_de(s: &str) -> Result<DecideConfig, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(s)).extract().map_err(|e| e.to_string())
}

#[test]
fn one_comment_gets_one_reply_for_at_most_ten_commands() {
    let (name, body) = comment(&"/foreman stop\n".repeat(30), "OWNER");
    let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
    let actions = decide::decide(&e, &DecideConfig::default(), &Snapshot::default());
    let [Action::Reply { text, .. }] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!(text.matches("to stop.").count(), decide::MAX_COMMANDS_PER_COMMENT);
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure returns figment's own (large) error type.
fn the_app_slug_can_come_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("f.toml", "[triggers]\nlabel = \"agent\"\n")?;
        jail.set_env("FOREMAN_APP_SLUG", "acme-foreman");
        let c = foreman::config::Config::load(Some(std::path::Path::new("f.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(c.triggers.app_slug, "acme-foreman");
        assert_eq!(c.triggers.label, "agent");
        assert_eq!(c.triggers.trigger_columns, ["Ready"]);
        Ok(())
    });
}

#[test]
fn github_permission_names_map_to_levels() {
    let names = ["admin", "maintain", "write", "triage", "read", "none", "push", "pull", "Custom role"];
    let levels: Vec<Option<Level>> = names.iter().map(|n| Level::from_github(n)).collect();
    use Level::*;
    assert_eq!(
        levels,
        [Some(Admin), Some(Maintain), Some(Write), Some(Triage), Some(Read), None, Some(Write), Some(Read), None]
    );
}

#[test]
fn the_event_names_the_issue_whose_job_the_snapshot_holds() {
    let (name, body) = comment("/foreman run", "OWNER");
    let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
    let issue = e.issue().unwrap();
    assert_eq!((issue.repo.to_string(), issue.number), ("Codertocat/Hello-World".to_owned(), IssueNumber(1)));
    let (name, body) = status_to("Ready");
    assert!(event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap().issue().is_none());
}

#[test]
fn deciding_again_with_the_looked_up_fact_never_asks_again() {
    let cases = [
        status_to("Ready"),
        status_to("Todo"),
        old_shape(),
        comment("/foreman run\n/foreman help", "NONE"),
        comment("/foreman stop", "CONTRIBUTOR"),
    ];
    for (name, body) in cases {
        let e = event::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap();
        let first = decide::decide(&e, &DecideConfig::default(), &none());
        let [Action::Lookup { what, .. }] = first.as_slice() else { panic!("{first:?}") };
        let facts = match what {
            Lookup::Permission { .. } => Snapshot { permission: Some(Level::Read), ..none() },
            Lookup::ProjectItem { field, .. } => item(Some("Ready"), field.as_str()),
        };
        let again = decide::decide(&e, &DecideConfig::default(), &facts);
        assert!(!again.iter().any(|a| matches!(a, Action::Lookup { .. })), "{again:?}");
    }
}

/// `pull_request.<action>` from GitHub's example payload.
fn pull_request(file: &str) -> (&'static str, Value) {
    ("pull_request", example("pull_request", file))
}

#[test]
fn constitution_rules() {
    let sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
    let mut reopened = example("pull_request", "opened.payload.json");
    reopened["action"] = json!("reopened");
    let check = |n: u64| format!("check constitution Codertocat/Hello-World#{n} at {sha}");
    let opened = example("pull_request", "opened.payload.json");
    let opened_number = opened["number"].as_u64().unwrap();
    let cases = vec![
        case("a pushed pull request is checked", pull_request("synchronize.payload.json"), none(), &[]),
        case("an opened pull request is checked", ("pull_request", opened.clone()), none(), &[]),
        case("a reopened pull request is checked", ("pull_request", reopened), none(), &[]),
        case("a bot's pull request is checked too", by_bot(("pull_request", opened), "foreman[bot]"), none(), &[]),
        case(
            "a closed pull request is not",
            pull_request("closed.payload.json"),
            none(),
            &["~was closed without merging"],
        ),
        case(
            "anyone may see the constitution",
            comment("/foreman constitution", "NONE"),
            none(),
            &["show constitution Codertocat/Hello-World#1"],
        ),
        case(
            "init needs write: a member is looked up",
            comment("/foreman constitution init rust", "MEMBER"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "init needs write: a member looked up with write has it",
            comment("/foreman constitution init rust", "MEMBER"),
            Snapshot { permission: Some(Level::Write), ..Snapshot::default() },
            &["init constitution Codertocat/Hello-World#1 from rust by Codertocat"],
        ),
        case(
            "init without a template takes the generic one",
            comment("/foreman constitution INIT", "OWNER"),
            none(),
            &["init constitution Codertocat/Hello-World#1 from generic by Codertocat"],
        ),
        case(
            "init by someone without a role is looked up",
            comment("/foreman constitution init", "NONE"),
            none(),
            &["lookup permission of Codertocat (needs write)"],
        ),
        case(
            "init by a reader is refused",
            comment("/foreman constitution init node", "NONE"),
            Snapshot { permission: Some(Level::Read), ..Snapshot::default() },
            &["~`/foreman constitution init` needs write permission"],
        ),
        case(
            "an unknown template is explained",
            comment("/foreman constitution init cobol", "OWNER"),
            none(),
            &["~does not understand `init cobol`"],
        ),
    ];
    // The first four expect a check of their own pull request's number.
    let expected: Vec<String> = cases.iter().take(4).map(|c| check(c.event.1["number"].as_u64().unwrap())).collect();
    assert_eq!(expected[1], check(opened_number));
    for (c, want) in cases.iter().take(4).zip(&expected) {
        let e = event::decode(c.event.0, &serde_json::to_vec(&c.event.1).unwrap()).unwrap();
        let got: Vec<String> = decide::decide(&e, &c.config, &c.snapshot).iter().map(summary).collect();
        assert_eq!(got, vec![want.clone()], "{}", c.rule);
    }
    run(cases.into_iter().skip(4).collect());
}

/// A GitHub Actions run or job that completed wakes the session waiting on the run (the effect finds out
/// whether one does); one that starts or waits does nothing.
#[test]
fn workflow_rules() {
    run(vec![
        case(
            "a completed workflow run ends its run",
            ("workflow_run", example("workflow_run", "completed.payload.json")),
            none(),
            &["run 289782451 ended"],
        ),
        case(
            "a completed workflow job ends its run's wait too",
            ("workflow_job", example("workflow_job", "completed.failure.with-organization.payload.json")),
            none(),
            &["run 2202229078 ended"],
        ),
        case(
            "a requested workflow run does nothing",
            ("workflow_run", example("workflow_run", "requested.payload.json")),
            none(),
            &["~ignore:"],
        ),
        case(
            "a queued workflow job does nothing",
            ("workflow_job", example("workflow_job", "queued.payload.json")),
            none(),
            &["~ignore:"],
        ),
    ]);
}
