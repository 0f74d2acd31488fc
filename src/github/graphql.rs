//! GraphQL over the same retry layer, keeping `data` and `errors` both.
//!
//! octocrab's `graphql()` throws partial data away when `errors` is present; GitHub answers partially often
//! (a node that no longer exists is `null` with a `NOT_FOUND` error beside the rest of the data). So the POST
//! is made here and [`GraphqlResponse`] gives the caller both. A GraphQL rate limit (HTTP 200 with
//! `errors[].type == "RATE_LIMITED"`) is retried by the client like a REST one.

use http::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::GithubError;
use super::client::{Auth, Call, Client};
use crate::ids::InstallationId;

/// A GraphQL document from `src/github/graphql/`, validated against GitHub's schema by
/// `tests/github_graphql_documents.rs`.
#[derive(Clone, Copy, Debug)]
pub struct Document {
    /// The operation's name, for metrics and errors.
    pub operation: &'static str,
    /// The document's text.
    pub text: &'static str,
    /// Whether it is a mutation (paced like REST mutations).
    pub mutation: bool,
}

/// The Projects v2 documents.
pub mod documents {
    use super::Document;

    /// `ProjectStatusField`: a project by organisation and number, with a single-select field and its options.
    pub const PROJECT_STATUS_FIELD: Document = Document {
        operation: "ProjectStatusField",
        text: include_str!("graphql/project_status_field.graphql"),
        mutation: false,
    };
    /// `ProjectItems`: one page of a project's items with content and field value.
    pub const PROJECT_ITEMS: Document =
        Document { operation: "ProjectItems", text: include_str!("graphql/project_items.graphql"), mutation: false };
    /// `ProjectItem`: one item by node id.
    pub const PROJECT_ITEM: Document =
        Document { operation: "ProjectItem", text: include_str!("graphql/project_item.graphql"), mutation: false };
    /// `MoveProjectItem`: set an item's single-select value.
    pub const MOVE_PROJECT_ITEM: Document = Document {
        operation: "MoveProjectItem",
        text: include_str!("graphql/move_project_item.graphql"),
        mutation: true,
    };
    /// `IssueProjectItems`: the Projects v2 items of one issue, with their boards and current column.
    pub const ISSUE_PROJECT_ITEMS: Document = Document {
        operation: "IssueProjectItems",
        text: include_str!("graphql/issue_project_items.graphql"),
        mutation: false,
    };
    /// `AddProjectItem`: add an issue or pull request to a project.
    pub const ADD_PROJECT_ITEM: Document = Document {
        operation: "AddProjectItem",
        text: include_str!("graphql/add_project_item.graphql"),
        mutation: true,
    };
}

/// One entry of a GraphQL answer's `errors`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct GraphqlError {
    /// GitHub's error type, e.g. `NOT_FOUND`, `FORBIDDEN`, `RATE_LIMITED` (absent for validation errors).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Where in the data it applies, e.g. `["node"]`.
    #[serde(default)]
    pub path: Vec<serde_json::Value>,
}

/// A GraphQL answer: whatever data came, and every error beside it.
#[derive(Clone, Debug)]
pub struct GraphqlResponse<T> {
    /// `data`, when present and not null.
    pub data: Option<T>,
    /// `errors`, empty when none.
    pub errors: Vec<GraphqlError>,
}

impl<T> GraphqlResponse<T> {
    /// The data when there is some (even if errors came with it), else [`GithubError::Graphql`].
    pub fn data_or_error(self, operation: &'static str) -> Result<(T, Vec<GraphqlError>), GithubError> {
        match self.data {
            Some(d) => Ok((d, self.errors)),
            None => {
                Err(GithubError::Graphql { operation, messages: self.errors.into_iter().map(|e| e.message).collect() })
            }
        }
    }
}

#[derive(Deserialize)]
struct Raw<T> {
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

impl Client {
    /// Runs a GraphQL document for an installation. Partial data is kept: the answer has both `data` and
    /// `errors`. Errors: transport and HTTP failures as for REST; a body that is not a GraphQL answer is
    /// [`GithubError::Unexpected`].
    pub async fn graphql<T: DeserializeOwned>(
        &self,
        inst: InstallationId,
        doc: Document,
        variables: serde_json::Value,
    ) -> Result<GraphqlResponse<T>, GithubError> {
        const EP: &str = "POST /graphql";
        let mut call = Call::new(Method::POST, EP, self.inner.graphql_url.clone(), Auth::Installation(inst))
            .body(serde_json::json!({ "query": doc.text, "variables": variables, "operationName": doc.operation }));
        call.paced = doc.mutation;
        call.graphql = true;
        let reply = self.send(call).await?;
        let raw: Raw<T> = serde_json::from_slice(&reply.body).map_err(|e| GithubError::Unexpected {
            endpoint: EP,
            message: format!("{}: the answer did not decode: {e}", doc.operation),
        })?;
        if !raw.errors.is_empty() {
            tracing::debug!(
                operation = doc.operation,
                errors = raw.errors.len(),
                partial = raw.data.is_some(),
                "GraphQL answered with errors"
            );
        }
        Ok(GraphqlResponse { data: raw.data, errors: raw.errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_data_keeps_both_halves() {
        #[derive(Deserialize, Debug)]
        struct D {
            node: Option<serde_json::Value>,
            other: u32,
        }
        let body = r#"{"data":{"node":null,"other":3},"errors":[{"type":"NOT_FOUND","path":["node"],"message":"Could not resolve to a node with the global id of 'x'"}]}"#;
        let raw: Raw<D> = serde_json::from_str(body).unwrap();
        let r = GraphqlResponse { data: raw.data, errors: raw.errors };
        let (d, errors) = r.data_or_error("Q").unwrap();
        assert!(d.node.is_none());
        assert_eq!(d.other, 3);
        assert_eq!(errors[0].kind.as_deref(), Some("NOT_FOUND"));
        let none: Raw<D> = serde_json::from_str(r#"{"errors":[{"message":"bad"}]}"#).unwrap();
        let e = GraphqlResponse { data: none.data, errors: none.errors }.data_or_error("Q").unwrap_err();
        assert!(e.to_string().contains("bad"));
    }
}
