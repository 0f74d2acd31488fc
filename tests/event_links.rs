//! `issue_dependencies` and `sub_issues` deliveries decode into Foreman's own types and decide into a
//! [`Action::Link`], from any sender: payloads as github-sim sends them (valid against the OpenAPI
//! description's `x-webhooks` schemas), and a `sub_issues` payload built from the same issue shapes.

use foreman::decide::links::LinkAction;
use foreman::decide::{Action, DecideConfig, Snapshot, decide};
use foreman::event::{EventKind, decode, is_handled};
use foreman::job::IssueRef;
use serde_json::{Value, json};

fn r(repo: &str, n: u64) -> IssueRef {
    IssueRef { repo: repo.parse().unwrap(), issue: foreman::ids::IssueNumber(n) }
}

#[tokio::test]
async fn every_issue_dependencies_action_decodes_to_the_same_link_change() {
    let dir = tempfile::tempdir().unwrap();
    let sim = github_sim::GithubSim::start(github_sim::SimConfig::new(dir.path())).await.unwrap();
    sim.create_repo("acme", "widgets", &[]).unwrap();
    sim.create_repo("acme", "gadgets", &[]).unwrap();
    let (blocker, _) = sim.create_issue("acme/gadgets", "API", "", "alice").unwrap();
    let (blocked, _) = sim.create_issue("acme/widgets", "Use it", "", "alice").unwrap();
    sim.add_blocked_by("acme/widgets", blocked, "acme/gadgets", blocker, "foreman[bot]").unwrap();
    sim.set_issue_state("acme/gadgets", blocker, "closed", "alice").unwrap();
    sim.remove_blocked_by("acme/widgets", blocked, "acme/gadgets", blocker, "alice").unwrap();
    assert!(is_handled("issue_dependencies") && is_handled("sub_issues"));
    let deliveries: Vec<Value> = sim.deliveries().into_iter().filter(|d| d["event"] == "issue_dependencies").collect();
    assert_eq!(deliveries.len(), 4);
    for (d, (added, open)) in deliveries.iter().zip([(true, true), (true, true), (false, false), (false, false)]) {
        let body = serde_json::to_vec(&d["payload"]).unwrap();
        let event = decode("issue_dependencies", &body).unwrap();
        let EventKind::IssueDependency { added: a, blocked: ref b, blocking: ref k } = event.kind else {
            panic!("{:?}", event.kind)
        };
        assert_eq!((a, b.number.0, k.number.0, k.repo.to_string()), (added, blocked, blocker, "acme/gadgets".into()));
        // A bot's link (Foreman linking a plan's tasks) is a fact like any other.
        let actions = decide(&event, &DecideConfig::default(), &Snapshot::default());
        assert_eq!(
            actions,
            vec![Action::Link(LinkAction::BlockedBy {
                blocked: r("acme/widgets", blocked),
                blocker: r("acme/gadgets", blocker),
                added,
                blocker_open: open,
                installation: event.installation,
            })],
            "{}",
            d["action"]
        );
    }
    let other = decode("issue_dependencies", &serde_json::to_vec(&json!({"action": "renamed"})).unwrap()).unwrap();
    assert!(matches!(other.kind, EventKind::Ignored { .. }), "{:?}", other.kind);
}

#[tokio::test]
async fn sub_issues_actions_decode_to_a_checklist_change() {
    let dir = tempfile::tempdir().unwrap();
    let sim = github_sim::GithubSim::start(github_sim::SimConfig::new(dir.path())).await.unwrap();
    sim.create_repo("acme", "widgets", &[]).unwrap();
    sim.create_issue("acme/widgets", "Parent", "", "alice").unwrap();
    sim.create_issue("acme/widgets", "Child", "", "alice").unwrap();
    let issues: Vec<Value> = sim.deliveries().into_iter().map(|d| d["payload"]["issue"].clone()).collect();
    for (action, added) in [
        ("sub_issue_added", true),
        ("parent_issue_added", true),
        ("sub_issue_removed", false),
        ("parent_issue_removed", false),
    ] {
        let payload = json!({
            "action": action, "parent_issue_id": issues[0]["id"], "parent_issue": issues[0],
            "sub_issue_id": issues[1]["id"], "sub_issue": issues[1],
            "repository": {"full_name": "acme/widgets"}, "sender": {"login": "alice", "id": 1, "type": "User"},
        });
        let event = decode("sub_issues", &serde_json::to_vec(&payload).unwrap()).unwrap();
        let actions = decide(&event, &DecideConfig::default(), &Snapshot::default());
        assert_eq!(
            actions,
            vec![Action::Link(LinkAction::SubIssue {
                parent: r("acme/widgets", 1),
                sub: r("acme/widgets", 2),
                added,
                installation: None,
            })],
            "{action}"
        );
    }
}
