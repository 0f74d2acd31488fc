//! GraphQL: the Projects (v2) subset, validation against GitHub's schema, and the webhooks a
//! mutation emits.

use std::time::Duration;

use crate::common::{Sim, TEST_TIMEOUT, receiver, start, start_with};
use serde_json::{Value, json};

async fn gql(s: &Sim, token: &str, query: &str, variables: Value) -> Value {
    let r = s
        .http
        .post(s.url("/graphql"))
        .header("authorization", format!("bearer {token}"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

const PROJECT: &str = r#"
query ProjectBoard($org: String!, $number: Int!) {
  organization(login: $org) {
    projectV2(number: $number) {
      id
      title
      field(name: "Status") {
        ... on ProjectV2SingleSelectField { id name options { id name } }
      }
      fields(first: 20) {
        nodes {
          __typename
          ... on ProjectV2FieldCommon { id name dataType }
        }
      }
      items(first: 2) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes {
          id
          content { __typename ... on Issue { number title repository { nameWithOwner } } }
          status: fieldValueByName(name: "Status") {
            ... on ProjectV2ItemFieldSingleSelectValue { name optionId }
          }
        }
      }
    }
  }
}"#;

#[tokio::test]
async fn project_queries_and_mutations() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let rx = receiver(200).await;
        let url = rx.url.clone();
        let s = start_with(|c| c.webhook_url = Some(url)).await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let (n1, issue_node) = s.sim.create_issue("acme/widgets", "First", "", "alice").unwrap();
        let (n2, _) = s.sim.create_issue("acme/widgets", "Second", "", "alice").unwrap();
        let (n3, node3) = s.sim.create_issue("acme/widgets", "Third", "", "alice").unwrap();
        let (p, project_node) = s.sim.create_project("acme", "Board", &["Backlog", "Ready", "In progress", "In review"]);
        let item1 = s.sim.add_project_item("acme", p, "acme/widgets", n1, "alice").unwrap();
        s.sim.add_project_item("acme", p, "acme/widgets", n2, "alice").unwrap();
        s.sim.move_card("acme", p, &item1, "Ready", "alice").unwrap();
        let t = s.token("acme").await;

        let v = gql(&s, &t, PROJECT, json!({"org": "acme", "number": p})).await;
        assert!(v.get("errors").is_none(), "{v:#}");
        let project = &v["data"]["organization"]["projectV2"];
        assert_eq!(project["id"], project_node);
        assert_eq!(project["field"]["name"], "Status");
        let options = project["field"]["options"].as_array().unwrap();
        assert_eq!(options.iter().map(|o| o["name"].as_str().unwrap()).collect::<Vec<_>>(), ["Backlog", "Ready", "In progress", "In review"]);
        assert_eq!(project["fields"]["nodes"][1]["dataType"], "SINGLE_SELECT");
        assert_eq!(project["items"]["totalCount"], 2);
        let first = &project["items"]["nodes"][0];
        assert_eq!(first["id"], item1);
        assert_eq!(first["content"]["__typename"], "Issue");
        assert_eq!(first["content"]["number"], n1);
        assert_eq!(first["status"]["name"], "Ready");
        assert!(project["items"]["nodes"][1]["status"].is_null());

        // Node lookup of an issue, with its project items.
        let q = r#"query Issue($id: ID!) { node(id: $id) { ... on Issue { number projectItems(first: 5) { nodes { id project { number } } } } } }"#;
        let v = gql(&s, &t, q, json!({"id": issue_node})).await;
        assert_eq!(v["data"]["node"]["number"], n1);
        assert_eq!(v["data"]["node"]["projectItems"]["nodes"][0]["id"], item1);

        // Move a card through the API: the webhook names the bot as sender and carries from/to.
        let field_id = project["field"]["id"].as_str().unwrap();
        let in_progress = options[2]["id"].as_str().unwrap();
        let m = r#"mutation Move($project: ID!, $item: ID!, $field: ID!, $option: String!) {
          updateProjectV2ItemFieldValue(input: {projectId: $project, itemId: $item, fieldId: $field, value: {singleSelectOptionId: $option}}) {
            projectV2Item { id fieldValueByName(name: "Status") { ... on ProjectV2ItemFieldSingleSelectValue { name } } }
          }
        }"#;
        let v = gql(&s, &t, m, json!({"project": project_node, "item": item1, "field": field_id, "option": in_progress})).await;
        assert!(v.get("errors").is_none(), "{v:#}");
        assert_eq!(v["data"]["updateProjectV2ItemFieldValue"]["projectV2Item"]["fieldValueByName"]["name"], "In progress");

        let add = r#"mutation Add($project: ID!, $content: ID!) { addProjectV2ItemById(input: {projectId: $project, contentId: $content}) { item { id } } }"#;
        let v = gql(&s, &t, add, json!({"project": project_node, "content": node3})).await;
        let item3 = v["data"]["addProjectV2ItemById"]["item"]["id"].as_str().unwrap().to_string();
        let state = s.sim.state();
        let items = state["projects"][0]["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["column"], "In progress");
        assert!(items.iter().any(|i| i["item_id"] == item3 && i["issue"] == n3));
        assert!(state["requests"].as_array().unwrap().iter().any(|r| r["operation_name"] == "Move"));

        // Pagination of items.
        let v = gql(&s, &t, PROJECT, json!({"org": "acme", "number": p})).await;
        let items = &v["data"]["organization"]["projectV2"]["items"];
        assert_eq!(items["pageInfo"]["hasNextPage"], true);

        // created x3 (control, control, mutation) + edited (control) + edited (mutation).
        assert!(s.sim.wait_deliveries(8, Duration::from_secs(10)).await);
        let edited: Vec<Value> = s.sim.deliveries().into_iter().filter(|d| d["event"] == "projects_v2_item" && d["action"] == "edited").collect();
        assert_eq!(edited.len(), 2);
        let last = &edited[1]["payload"];
        assert_eq!(last["sender"]["login"], "foreman[bot]");
        assert_eq!(last["changes"]["field_value"]["from"]["name"], "Ready");
        assert_eq!(last["changes"]["field_value"]["to"]["name"], "In progress");
        assert_eq!(last["projects_v2_item"]["node_id"], item1);
        drop(rx);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn invalid_queries_get_githubs_error_shape() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let t = s.token("acme").await;
        let v = gql(&s, &t, "query { organization(login: \"acme\") { noSuchField } }", json!({})).await;
        let errors = v["errors"].as_array().unwrap();
        let e =
            errors.iter().find(|e| e["message"].as_str().unwrap().contains("noSuchField")).expect("names the field");
        assert_eq!(e["message"], "Field 'noSuchField' doesn't exist on type 'Organization'");
        assert_eq!(e["extensions"]["code"], "undefinedField");
        assert!(e["locations"][0]["line"].is_number());
        assert!(v.get("data").is_none());
        let v = gql(&s, &t, "query { organization(login: ", json!({})).await;
        assert!(v["errors"][0]["message"].is_string());
        // A missing argument is refused by validation too.
        let v = gql(&s, &t, "query { organization { login } }", json!({})).await;
        assert!(v["errors"].is_array());
        // Unauthenticated.
        let r = s.http.post(s.url("/graphql")).json(&json!({"query": "{ viewer { login } }"})).send().await.unwrap();
        assert_eq!(r.status(), 401);
    })
    .await
    .expect("timed out");
}
