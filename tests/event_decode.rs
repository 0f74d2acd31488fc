//! The event decoder against GitHub's real webhook payloads (vendor/github/webhooks/examples).

use std::path::{Path, PathBuf};

use foreman::event::{
    self, ActorKind, AuthorAssociation, CommentAction, ContentType, DecodeError, EventKind, FieldValue, IssuesAction,
    ProjectsV2ItemAction, PullRequestAction,
};
use foreman::ids::{InstallationId, IssueNumber};
use serde_json::{Value, json};

fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/github/webhooks/examples/api.github.com")).to_owned()
}

/// Every example payload with its event name (the folder it is in).
fn examples() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(examples_dir()).expect("the vendored webhook examples are present") {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                out.push((name.clone(), file));
            }
        }
    }
    out.sort();
    out
}

fn example(event: &str, file: &str) -> Value {
    let path = examples_dir().join(event).join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn decode(event: &str, body: &Value) -> Result<event::Event, DecodeError> {
    event::decode(event, &serde_json::to_vec(body).unwrap())
}

#[test]
fn every_example_decodes_or_is_ignored_with_a_reason() {
    let all = examples();
    assert!(all.len() >= 100, "expected the full example set, found {}", all.len());
    let acted_on = [
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "projects_v2_item",
        "installation",
        "installation_repositories",
        "push",
        "workflow_run",
        "workflow_job",
    ];
    let mut decoded = 0;
    for (name, path) in &all {
        let body = std::fs::read(path).unwrap();
        let event = event::decode(name, &body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&event.name, name);
        match &event.kind {
            EventKind::Ignored { reason } => {
                assert!(!reason.is_empty(), "{}", path.display());
                // An acted-on event is ignored only for an action Foreman does not take.
                if acted_on.contains(&name.as_str()) {
                    assert!(reason.contains("is not one Foreman acts on"), "{}: {reason}", path.display());
                }
            }
            _ => {
                assert!(acted_on.contains(&name.as_str()), "{} decoded to {:?}", path.display(), event.kind);
                decoded += 1;
            }
        }
    }
    // 8 event types, ~55 of their files have actions Foreman decodes.
    assert!(decoded >= 50, "only {decoded} examples decoded to a typed event");
}

#[test]
fn a_push_carries_its_ref_the_default_branch_and_every_path_its_commits_touched() {
    let mut body = example("push", "payload.json");
    body["commits"] = json!([
        {"id": "a", "added": ["new.txt"], "removed": [], "modified": [".github/foreman.toml"]},
        {"id": "b", "added": [], "removed": ["old.txt"], "modified": [".github/foreman.toml"]},
    ]);
    let e = decode("push", &body).unwrap();
    let EventKind::Push { git_ref, default_branch, paths, truncated, .. } = e.kind else { panic!("{:?}", e.kind) };
    assert_eq!((git_ref.as_str(), default_branch.as_str()), ("refs/tags/simple-tag", "master"));
    assert_eq!(paths, ["new.txt", ".github/foreman.toml", "old.txt"], "each once, in commit order");
    assert!(!truncated);
    body["commits"] = json!(vec![json!({"id": "c", "added": [], "removed": [], "modified": []}); 20]);
    let EventKind::Push { truncated, .. } = decode("push", &body).unwrap().kind else { panic!() };
    assert!(truncated, "GitHub lists at most 20 commits: more may have been pushed");
}

#[test]
fn issues_labeled_carries_the_label_the_issue_and_the_installation() {
    let mut body = example("issues", "labeled.payload.json");
    body["installation"] = json!({ "id": 42, "node_id": "x" });
    let e = decode("issues", &body).unwrap();
    assert_eq!(e.installation, Some(InstallationId(42)));
    assert_eq!(e.repo.as_ref().unwrap().to_string(), "Codertocat/Hello-World");
    assert_eq!(e.sender.as_ref().unwrap().login, "Codertocat");
    let EventKind::Issues { action: IssuesAction::Labeled { label }, issue } = e.kind else { panic!("{:?}", e.kind) };
    assert_eq!(label, "bug");
    assert_eq!(issue.number, IssueNumber(1));
    assert!(!issue.is_pull_request);
    assert_eq!(issue.labels, ["bug"]);
}

#[test]
fn an_action_github_adds_later_is_ignored_not_an_error() {
    let mut body = example("issues", "labeled.payload.json");
    body["action"] = json!("typed");
    body["type"] = json!({ "id": 1, "name": "Bug" });
    let e = decode("issues", &body).unwrap();
    assert_eq!(e.kind, EventKind::Ignored { reason: "action 'issues.typed' is not one Foreman acts on".into() });
    // The envelope is still read, so the ignore can be traced to its repository.
    assert_eq!(e.repo.unwrap().to_string(), "Codertocat/Hello-World");

    // Even with a body that has nothing Foreman would need.
    let e = event::decode("issues", br#"{"action":"typed"}"#).unwrap();
    assert!(matches!(e.kind, EventKind::Ignored { .. }));
    let e = event::decode("sponsorship", br#"{"action":"created","anything":[1,2]}"#).unwrap();
    assert_eq!(e.kind, EventKind::Ignored { reason: "event 'sponsorship' is not one Foreman acts on".into() });
}

#[test]
fn edited_comment_keeps_the_previous_body_and_pull_request_comments_are_marked() {
    let e = decode("issue_comment", &example("issue_comment", "edited.payload.json")).unwrap();
    let EventKind::IssueComment { action: CommentAction::Edited { previous_body }, comment, .. } = e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(previous_body.as_deref(), Some("You are totally right! I'll get this fixed right away."));
    assert_eq!(comment.association, AuthorAssociation::Owner);
    assert_eq!(comment.author.kind, ActorKind::User);

    let mut body = example("issue_comment", "created.payload.json");
    body["issue"]["pull_request"] = json!({ "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1" });
    body["comment"]["user"]["login"] = json!("foreman[bot]");
    body["comment"]["user"]["type"] = json!("Bot");
    body["comment"]["author_association"] = json!("SOMETHING_NEW");
    let e = decode("issue_comment", &body).unwrap();
    let EventKind::IssueComment { issue, comment, .. } = e.kind else { panic!() };
    assert!(issue.is_pull_request);
    assert!(comment.author.is_bot());
    assert_eq!(comment.association, AuthorAssociation::Other("SOMETHING_NEW".into()));
}

#[test]
fn pull_request_closed_tells_merged_from_closed() {
    let e = decode("pull_request", &example("pull_request", "closed.payload.json")).unwrap();
    let EventKind::PullRequest { action, pull_request, head_ref, head_sha } = e.kind else { panic!() };
    assert_eq!(action, PullRequestAction::Closed { merged: false });
    assert!(pull_request.is_pull_request);
    assert_eq!(head_ref, "changes");
    assert_eq!(head_sha.as_str(), "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    let mut body = example("pull_request", "closed.payload.json");
    body["pull_request"]["merged"] = json!(true);
    let EventKind::PullRequest { action, .. } = decode("pull_request", &body).unwrap().kind else { panic!() };
    assert_eq!(action, PullRequestAction::Closed { merged: true });
}

#[test]
fn projects_v2_item_edits_old_and_new_shapes() {
    // The example is the older shape: only field_node_id and field_type.
    let body = example("projects_v2_item", "edited.payload.json");
    let e = decode("projects_v2_item", &body).unwrap();
    assert!(e.repo.is_none(), "Projects v2 deliveries name no repository");
    let EventKind::ProjectsV2Item { action, item, field_change } = e.kind else { panic!() };
    assert_eq!(action, ProjectsV2ItemAction::Edited);
    assert_eq!(item.content_type, ContentType::DraftIssue);
    let change = field_change.unwrap();
    assert_eq!(change.field_type, "single_select");
    assert_eq!((change.field_name, change.from, change.to), (None, None, None));

    // The newer shape adds field_name, from and to (single-select options as objects, or null).
    let mut body = body;
    body["projects_v2_item"]["content_type"] = json!("Issue");
    body["changes"]["field_value"] = json!({
        "field_node_id": "PVTSSF_x", "field_type": "single_select", "field_name": "Status", "project_number": 3,
        "from": null,
        "to": { "id": "98236657", "name": "Ready", "color": "BLUE", "description": "" }
    });
    let EventKind::ProjectsV2Item { item, field_change, .. } = decode("projects_v2_item", &body).unwrap().kind else {
        panic!()
    };
    assert_eq!(item.content_type, ContentType::Issue);
    let change = field_change.unwrap();
    assert_eq!(change.field_name.as_deref(), Some("Status"));
    assert_eq!(change.from, Some(FieldValue::Empty));
    assert_eq!(change.to, Some(FieldValue::Option { id: "98236657".into(), name: "Ready".into() }));

    // A draft issue's body edit is not a field change.
    body["changes"] = json!({ "body": { "from": "a", "to": "b" } });
    let EventKind::ProjectsV2Item { field_change, .. } = decode("projects_v2_item", &body).unwrap().kind else {
        panic!()
    };
    assert_eq!(field_change, None);
}

#[test]
fn installation_events_list_their_repositories() {
    let e = decode("installation_repositories", &example("installation_repositories", "added.payload.json")).unwrap();
    let EventKind::InstallationRepositories { action, added, removed } = e.kind else { panic!() };
    assert_eq!(action, "added");
    assert_eq!(added.iter().map(ToString::to_string).collect::<Vec<_>>(), ["Codertocat/Space"]);
    assert!(removed.is_empty());
    assert!(e.installation.is_some());
}

#[test]
fn envelope_fields_of_an_unexpected_shape_are_absent_not_errors() {
    let body = br#"{"action":"created","installation":{"id":"seven"},"repository":"o/r","sender":5}"#;
    let e = event::decode("sponsorship", body).unwrap();
    assert_eq!((e.action.as_deref(), e.installation, e.repo, e.sender), (Some("created"), None, None, None));
    // A null is absent too, and an action that is not a string is no action.
    let e = event::decode("sponsorship", br#"{"action":7,"installation":null,"repository":{"full_name":null}}"#);
    let e = e.unwrap();
    assert_eq!((e.action, e.installation, e.repo), (None, None, None));
}

#[test]
fn undecodable_payloads_are_typed_errors() {
    let not_json = event::decode("issues", b"{not json").unwrap_err();
    assert!(matches!(not_json, DecodeError::NotJson { .. }), "{not_json}");
    assert_eq!(not_json.kind(), "not_json");
    assert!(matches!(event::decode("issues", b"[1,2]").unwrap_err(), DecodeError::NotJson { .. }));
    // Even an event Foreman ignores must be JSON: the ingress stored it as one.
    assert!(event::decode("push", b"").is_err());

    let mut body = example("issues", "labeled.payload.json");
    body.as_object_mut().unwrap().remove("label");
    let e = decode("issues", &body).unwrap_err();
    assert!(e.to_string().contains("issues.labeled") && e.to_string().contains("label"), "{e}");

    let mut body = example("issue_comment", "created.payload.json");
    body["comment"]["user"]["id"] = json!("not a number");
    let e = decode("issue_comment", &body).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Shape { event, action, .. } if event == "issue_comment" && action == "created"),
        "{e}"
    );

    let mut body = example("issues", "opened.payload.json");
    body["repository"]["full_name"] = json!("no-slash");
    assert!(decode("issues", &body).is_err());

    assert!(event::decode("issues", br#"{"issue":{}}"#).unwrap_err().to_string().contains("no 'action'"));
}

#[test]
fn null_bodies_and_labels_are_empty() {
    let e = decode("pull_request", &example("pull_request", "opened.with-null-body.json")).unwrap();
    assert!(matches!(e.kind, EventKind::PullRequest { action: PullRequestAction::Opened, .. }));
    let mut body = example("issue_comment", "created.payload.json");
    body["comment"]["body"] = Value::Null;
    body["issue"]["labels"] = Value::Null;
    let EventKind::IssueComment { comment, issue, .. } = decode("issue_comment", &body).unwrap().kind else { panic!() };
    assert_eq!(comment.body, "");
    assert!(issue.labels.is_empty());
}
