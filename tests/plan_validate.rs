//! Plans as the agent writes them: the published schema (docs/plan.schema.json) and the checks it cannot
//! express, each refusal in words; the table the plan comment shows; the plan carried in the comment.

use std::collections::BTreeMap;

use foreman::ids::{IssueNumber, RepoName};
use foreman::plan::{Plan, PlanError, render};
use serde_json::{Value, json};

fn task(key: &str, blocked_by: &[&str]) -> Value {
    json!({"key": key, "title": format!("Task {key}"), "body": format!("Do {key}. Done when tested."), "blocked_by": blocked_by})
}

fn plan(tasks: Vec<Value>) -> String {
    json!({"summary": "Two chains.", "tasks": tasks}).to_string()
}

/// Five tasks in two chains: T1 → T2 → T3, and T4 → T5 (T5 also needs T2).
fn five() -> String {
    plan(vec![task("T1", &[]), task("T2", &["T1"]), task("T3", &["T2"]), task("T4", &[]), task("T5", &["T4", "T2"])])
}

#[test]
fn a_valid_plan_reads_and_orders_blockers_first() {
    let p = Plan::parse(&five(), 50).unwrap();
    assert_eq!(p.tasks.len(), 5);
    let keys: Vec<&str> = p.order().unwrap().into_iter().map(|i| p.tasks[i].key.as_str()).collect();
    for (i, t) in p.tasks.iter().enumerate() {
        let at = keys.iter().position(|k| *k == t.key).unwrap();
        for b in &t.blocked_by {
            assert!(keys.iter().position(|k| k == b).unwrap() < at, "{b} before {} in {keys:?} ({i})", t.key);
        }
    }
    assert_eq!(keys, ["T1", "T2", "T3", "T4", "T5"], "ties keep the plan's order");
}

#[test]
fn the_published_schema_is_the_one_checked_and_is_valid_json_schema() {
    let published: Value = serde_json::from_str(&std::fs::read_to_string("docs/plan.schema.json").unwrap()).unwrap();
    let built_in: Value = serde_json::from_str(foreman::plan::SCHEMA).unwrap();
    assert_eq!(published, built_in);
    assert!(jsonschema::meta::is_valid(&published));
    // The example in docs/planning.md is a valid plan.
    let doc = std::fs::read_to_string("docs/planning.md").unwrap();
    let start = doc.find("```json\n").expect("docs/planning.md has a JSON example") + 8;
    let end = start + doc[start..].find("```").unwrap();
    Plan::parse(&doc[start..end], 50).unwrap_or_else(|e| panic!("the example in docs/planning.md: {e}"));
}

#[test]
fn every_refusal_names_its_reason() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        (json!({"tasks": []}).to_string(), "schema"),
        (json!({"summary": "s", "tasks": []}).to_string(), "schema"),
        (plan(vec![json!({"key": "T1", "title": "t"})]).to_string(), "\"body\" is a required property"),
        (plan(vec![json!({"key": "T 1", "title": "t", "body": "b"})]), "schema"),
        (plan(vec![json!({"key": "T1", "title": "t", "body": "b", "phase": "one"})]), "schema"),
        (plan(vec![json!({"key": "T1", "title": "t", "body": "b", "extra": 1})]), "schema"),
        (plan(vec![task("T1", &[]), task("T1", &[])]), "two tasks have the key `T1`"),
        (
            plan(vec![task("T1", &[]), json!({"key": "T2", "title": "TASK t1", "body": "b"})]),
            "two tasks have the title",
        ),
        (plan(vec![task("T1", &["T9"])]), "task `T1` is blocked by `T9`, which is not a task of the plan"),
        (plan(vec![task("T1", &["T3"]), task("T2", &["T1"]), task("T3", &["T2"])]), "cycle"),
        (plan(vec![task("T1", &["T1"])]), "T1 → T1"),
    ];
    for (text, want) in cases {
        let e = Plan::parse(&text, 50).expect_err(&text);
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
    let e = Plan::parse(&plan(vec![task("T1", &["T3"]), task("T2", &["T1"]), task("T3", &["T2"])]), 50).unwrap_err();
    assert!(matches!(e, PlanError::Cycle(ref c) if c.matches('→').count() == 3), "{e}");
    let many: Vec<Value> = (1..=51).map(|i| task(&format!("T{i}"), &[])).collect();
    assert_eq!(Plan::parse(&plan(many.clone()), 50).unwrap_err(), PlanError::TooMany { count: 51, max: 50 });
    assert!(Plan::parse(&plan(many[..3].to_vec()), 3).is_ok());
    assert!(Plan::parse(&plan(many[..4].to_vec()), 3).unwrap_err().to_string().contains("plan.max_tasks"));
    let huge = format!("{{\"summary\": \"{}\", \"tasks\": []}}", "x".repeat(2 * 1024 * 1024));
    assert_eq!(Plan::parse(&huge, 50).unwrap_err(), PlanError::TooLarge);
}

#[test]
fn the_comment_shows_a_table_and_carries_the_plan_back() {
    let repo: RepoName = "acme/widgets".parse().unwrap();
    let mut text: Value = serde_json::from_str(&five()).unwrap();
    text["tasks"][0]["phase"] = json!("1.1");
    text["tasks"][0]["title"] = json!("Parse | split");
    let p = Plan::parse(&text.to_string(), 50).unwrap();
    let created = BTreeMap::from([("T1".to_string(), IssueNumber(12))]);
    let body = render::comment(&repo, IssueNumber(7), &p, &created).unwrap();
    assert!(body.starts_with("<!-- foreman:plan acme/widgets#7 -->\n### 📝 Foreman's plan for #7"), "{body}");
    assert!(body.contains("| key | title | phase | blocked by | issue |"), "{body}");
    assert!(body.contains("| T1 | Parse \\| split | 1.1 | — | #12 |"), "{body}");
    assert!(body.contains("| T5 | Task T5 | — | T4, T2 | — |"), "{body}");
    assert!(body.contains("5 tasks (4 new). `/foreman approve`"), "{body}");
    let (back, made) = render::decode(&body).unwrap();
    assert_eq!(back, p);
    assert_eq!(made, created);
    assert_eq!(p.tasks[0].issue_title(), "1.1: Parse | split");
    assert_eq!(p.tasks[1].issue_title(), "Task T2");
    // A forged or damaged marker carries nothing.
    assert!(render::decode("<!-- foreman:plan-data AAAA -->").is_none());
    assert!(render::decode("no marker").is_none());
}
