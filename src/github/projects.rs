//! Projects v2 over GraphQL: the board, its Status field and columns, items, moves.
//!
//! A project's id, its single-select field id and the option ids are resolved by name once and cached for
//! [`super::ClientOptions::project_ttl`] (GraphQL has no ETags); a move to a column the cache does not know
//! refreshes it once before answering [`GithubError::UnknownColumn`].
//! Webhooks for Projects v2 items exist only for organisation-owned projects, so boards are addressed by
//! organisation and number (<https://docs.github.com/en/issues/planning-and-tracking-with-projects>).

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::GithubError;
use super::client::Client;
use super::graphql::documents::*;
use crate::ids::{InstallationId, IssueNumber, NodeId, RepoName};

/// A project board as Foreman uses it: ids resolved from names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectBoard {
    /// The organisation's login.
    pub org: String,
    /// The project's number in the organisation.
    pub number: u64,
    /// The project's node id (`PVT_…`).
    pub id: NodeId,
    /// The project's title.
    pub title: String,
    /// The single-select field's name, e.g. `Status`.
    pub field_name: String,
    /// Its node id (`PVTSSF_…`).
    pub field_id: NodeId,
    /// Its options, in board order: (column name, option id).
    pub columns: Vec<(String, String)>,
}

impl ProjectBoard {
    /// The option id of a column, matched case-insensitively.
    pub fn option_id(&self, column: &str) -> Option<&str> {
        self.columns.iter().find(|(name, _)| name.eq_ignore_ascii_case(column)).map(|(_, id)| id.as_str())
    }

    fn label(&self) -> String {
        format!("{}/{}", self.org, self.number)
    }
}

/// A Projects v2 item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectItem {
    /// The item's node id (`PVTI_…`).
    pub id: NodeId,
    /// Its project's node id.
    pub project_id: NodeId,
    /// The issue or pull request it holds; `None` for a draft issue.
    pub content: Option<(RepoName, IssueNumber)>,
    /// The name of its column (the single-select value), `None` when unset.
    pub column: Option<String>,
    /// The node id of its project's single-select field that was asked for, when the query asked for it and
    /// the project has such a field.
    pub field_id: Option<NodeId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemNode {
    id: NodeId,
    project: ProjectRef,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    field_value_by_name: Option<FieldValue>,
}

/// A single-select field as both board queries read it: its id and its options.
#[derive(Deserialize)]
struct Field {
    #[serde(default)]
    id: Option<NodeId>,
    #[serde(default)]
    options: Option<Vec<Opt>>,
}

/// One option (column) of a single-select field.
#[derive(Deserialize)]
struct Opt {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct IdOnly {
    id: NodeId,
}

#[derive(Deserialize)]
struct ProjectRef {
    id: NodeId,
    #[serde(default)]
    field: Option<OptionalId>,
}

#[derive(Deserialize)]
struct OptionalId {
    #[serde(default)]
    id: Option<NodeId>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    number: Option<u64>,
    #[serde(default)]
    repository: Option<RepoRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepoRef {
    name_with_owner: RepoName,
}

#[derive(Deserialize)]
struct FieldValue {
    #[serde(default)]
    name: Option<String>,
}

impl From<ItemNode> for ProjectItem {
    fn from(n: ItemNode) -> Self {
        let content = n.content.and_then(|c| Some((c.repository?.name_with_owner, IssueNumber(c.number?))));
        ProjectItem {
            id: n.id,
            project_id: n.project.id,
            content,
            column: n.field_value_by_name.and_then(|v| v.name),
            field_id: n.project.field.and_then(|f| f.id),
        }
    }
}

impl Client {
    /// The board `org`/`number` with its single-select field `field` (usually `Status`), cached.
    ///
    /// Errors: [`GithubError::NotFound`] when the organisation or project does not exist or the installation
    /// cannot see it; [`GithubError::NoSuchField`] when the field is missing or not single-select.
    pub async fn project(
        &self,
        inst: InstallationId,
        org: &str,
        number: u64,
        field: &str,
    ) -> Result<Arc<ProjectBoard>, GithubError> {
        let key = (org.to_owned(), number, field.to_owned());
        if let Some((board, at)) = self.inner.projects.lock().expect("projects lock").get(&key)
            && at.elapsed() < self.inner.options.project_ttl
        {
            return Ok(board.clone());
        }
        let board = Arc::new(self.fetch_project(inst, org, number, field).await?);
        self.inner.projects.lock().expect("projects lock").insert(key, (board.clone(), Instant::now()));
        Ok(board)
    }

    async fn fetch_project(
        &self,
        inst: InstallationId,
        org: &str,
        number: u64,
        field: &str,
    ) -> Result<ProjectBoard, GithubError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            organization: Option<Org>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Org {
            project_v2: Option<Project>,
        }
        #[derive(Deserialize)]
        struct Project {
            id: NodeId,
            title: String,
            field: Option<Field>,
        }
        let vars = json!({ "org": org, "number": number, "field": field });
        let answer = self.graphql::<Data>(inst, PROJECT_STATUS_FIELD, vars).await?;
        let (data, _) = answer.data_or_error(PROJECT_STATUS_FIELD.operation)?;
        let project = data
            .organization
            .and_then(|o| o.project_v2)
            .ok_or(GithubError::NotFound { endpoint: "GraphQL ProjectStatusField" })?;
        let no_field = || GithubError::NoSuchField { project: format!("{org}/{number}"), field: field.to_owned() };
        let f = project.field.ok_or_else(no_field)?;
        let (Some(field_id), Some(options)) = (f.id, f.options) else { return Err(no_field()) };
        Ok(ProjectBoard {
            org: org.to_owned(),
            number,
            id: project.id,
            title: project.title,
            field_name: field.to_owned(),
            field_id,
            columns: options.into_iter().map(|o| (o.name, o.id)).collect(),
        })
    }

    /// The item on `board` that holds issue `number` of `repo`, scanning the project's items 100 at a time.
    pub async fn find_project_item(
        &self,
        inst: InstallationId,
        board: &ProjectBoard,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Option<ProjectItem>, GithubError> {
        #[derive(Deserialize)]
        struct Data {
            node: Option<Node>,
        }
        #[derive(Deserialize)]
        struct Node {
            items: Items,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Items {
            page_info: PageInfo,
            nodes: Vec<Option<ItemNode>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageInfo {
            has_next_page: bool,
            end_cursor: Option<String>,
        }
        let mut after: Option<String> = None;
        for _ in 0..super::client::MAX_PAGES {
            let vars = json!({ "projectId": board.id, "field": board.field_name, "after": after });
            let (data, _) =
                self.graphql::<Data>(inst, PROJECT_ITEMS, vars).await?.data_or_error(PROJECT_ITEMS.operation)?;
            let items = data.node.ok_or(GithubError::NotFound { endpoint: "GraphQL ProjectItems" })?.items;
            for item in items.nodes.into_iter().flatten().map(ProjectItem::from) {
                if item.content.as_ref().is_some_and(|(r, n)| r == repo && *n == number) {
                    return Ok(Some(item));
                }
            }
            match (items.page_info.has_next_page, items.page_info.end_cursor) {
                (true, Some(cursor)) => after = Some(cursor),
                _ => break,
            }
        }
        Ok(None)
    }

    /// An item by node id, as a projects_v2_item webhook names it: its project, the repository and number of
    /// the issue it holds, and its column in the single-select field `field`. `None` when the item no longer
    /// exists (GitHub answers `null` with a `NOT_FOUND` error).
    pub async fn project_item(
        &self,
        inst: InstallationId,
        item_id: &NodeId,
        field: &str,
    ) -> Result<Option<ProjectItem>, GithubError> {
        #[derive(Deserialize)]
        struct Data {
            node: Option<ItemNode>,
        }
        let answer = self.graphql::<Data>(inst, PROJECT_ITEM, json!({ "itemId": item_id, "field": field })).await?;
        if answer.data.is_none()
            && answer.errors.iter().all(|e| e.kind.as_deref() == Some("NOT_FOUND"))
            && !answer.errors.is_empty()
        {
            return Ok(None);
        }
        let (data, _) = answer.data_or_error(PROJECT_ITEM.operation)?;
        Ok(data.node.map(ProjectItem::from))
    }

    /// Moves an item to a column (sets its single-select value). Idempotent. Errors:
    /// [`GithubError::UnknownColumn`] when the field has no such option even after refreshing the board.
    pub async fn move_project_item(
        &self,
        inst: InstallationId,
        board: &ProjectBoard,
        item_id: &NodeId,
        column: &str,
    ) -> Result<(), GithubError> {
        let fresh;
        let (board, option) = match board.option_id(column) {
            Some(o) => (board, o.to_owned()),
            None => {
                self.inner.projects.lock().expect("projects lock").remove(&(
                    board.org.clone(),
                    board.number,
                    board.field_name.clone(),
                ));
                fresh = self.project(inst, &board.org, board.number, &board.field_name).await?;
                let option = fresh.option_id(column).ok_or_else(|| GithubError::UnknownColumn {
                    project: fresh.label(),
                    column: column.to_owned(),
                    known: fresh.columns.iter().map(|(n, _)| n.clone()).collect(),
                })?;
                (&*fresh, option.to_owned())
            }
        };
        let vars = json!({ "projectId": board.id, "itemId": item_id, "fieldId": board.field_id, "optionId": option });
        let (_, errors) = self
            .graphql::<serde_json::Value>(inst, MOVE_PROJECT_ITEM, vars)
            .await?
            .data_or_error(MOVE_PROJECT_ITEM.operation)?;
        if !errors.is_empty() {
            return Err(GithubError::Graphql {
                operation: MOVE_PROJECT_ITEM.operation,
                messages: errors.into_iter().map(|e| e.message).collect(),
            });
        }
        Ok(())
    }

    /// Adds an issue or pull request (its node id, `node_id` in REST) to a project and returns the item's id.
    /// GitHub returns the existing item when it is already there, so this never duplicates.
    pub async fn add_to_project(
        &self,
        inst: InstallationId,
        board: &ProjectBoard,
        content_id: &NodeId,
    ) -> Result<NodeId, GithubError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            add_project_v2_item_by_id: Option<Payload>,
        }
        #[derive(Deserialize)]
        struct Payload {
            item: Option<IdOnly>,
        }
        let vars = json!({ "projectId": board.id, "contentId": content_id });
        let answer = self.graphql::<Data>(inst, ADD_PROJECT_ITEM, vars).await?;
        let (data, errors) = answer.data_or_error(ADD_PROJECT_ITEM.operation)?;
        data.add_project_v2_item_by_id.and_then(|p| p.item).map(|i| i.id).ok_or_else(|| GithubError::Graphql {
            operation: ADD_PROJECT_ITEM.operation,
            messages: errors.into_iter().map(|e| e.message).collect(),
        })
    }
}

impl Client {
    /// The Projects v2 items of issue `number` of `repo` on organisation boards, each with its board's
    /// organisation login and project number, and the item's column in the single-select field `field`
    /// (usually `Status`). One GraphQL query (`IssueProjectItems`); at most 20 items, the first 20 boards the
    /// issue is on. The boards' field ids and options come with the answer and refresh the cache that
    /// [`Client::project`] reads, so moving the items needs no second query per board.
    ///
    /// Items on boards owned by a user are left out: Foreman addresses boards by organisation and number, as
    /// Projects v2 webhooks exist only for organisation projects. A pull request number, or an issue GitHub
    /// cannot resolve (`issue` is `null`), has no items: `Ok(vec![])`.
    ///
    /// Errors: [`GithubError::NotFound`] when the repository is not visible to the installation; transport,
    /// rate-limit and GraphQL errors as for [`Client::graphql`].
    pub async fn issue_project_items(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        field: &str,
    ) -> Result<Vec<(ProjectItem, String, u64)>, GithubError> {
        #[derive(Deserialize)]
        struct Data {
            repository: Option<Repository>,
        }
        #[derive(Deserialize)]
        struct Repository {
            issue: Option<Issue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Issue {
            project_items: Nodes,
        }
        #[derive(Deserialize)]
        struct Nodes {
            nodes: Vec<Option<Node>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Node {
            id: NodeId,
            project: Project,
            #[serde(default)]
            field_value_by_name: Option<FieldValue>,
        }
        #[derive(Deserialize)]
        struct Project {
            id: NodeId,
            number: u64,
            #[serde(default)]
            title: String,
            #[serde(default)]
            owner: Option<Owner>,
            #[serde(default)]
            field: Option<Field>,
        }
        #[derive(Deserialize)]
        struct Owner {
            #[serde(default)]
            login: Option<String>,
        }
        let vars = json!({ "owner": repo.owner(), "name": repo.name(), "number": number.0, "field": field });
        let answer = self.graphql::<Data>(inst, ISSUE_PROJECT_ITEMS, vars).await?;
        let (data, errors) = answer.data_or_error(ISSUE_PROJECT_ITEMS.operation)?;
        let repository = data.repository.ok_or(GithubError::NotFound { endpoint: "GraphQL IssueProjectItems" })?;
        let Some(issue) = repository.issue else {
            tracing::debug!(%repo, issue = number.0, errors = errors.len(), "not an issue GitHub resolves: no project items");
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for node in issue.project_items.nodes.into_iter().flatten() {
            let Some(org) = node.project.owner.and_then(|o| o.login) else {
                tracing::debug!(%repo, issue = number.0, project = %node.project.id, "a board not owned by an organisation is left alone");
                continue;
            };
            let mut status_field = None;
            if let Some(Field { id: Some(field_id), options: Some(options) }) = node.project.field {
                status_field = Some(field_id.clone());
                let board = ProjectBoard {
                    org: org.clone(),
                    number: node.project.number,
                    id: node.project.id.clone(),
                    title: node.project.title,
                    field_name: field.to_owned(),
                    field_id,
                    columns: options.into_iter().map(|o| (o.name, o.id)).collect(),
                };
                self.inner
                    .projects
                    .lock()
                    .expect("projects lock")
                    .insert((org.clone(), board.number, field.to_owned()), (Arc::new(board), Instant::now()));
            }
            let item = ProjectItem {
                id: node.id,
                project_id: node.project.id,
                content: Some((repo.clone(), number)),
                column: node.field_value_by_name.and_then(|v| v.name),
                field_id: status_field,
            };
            out.push((item, org, node.project.number));
        }
        Ok(out)
    }
}
