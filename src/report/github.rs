//! PLACEHOLDER until the `reporter` branch lands: the tracking comment only. The real Reporter also keeps
//! labels and board columns.

use serde::{Deserialize, Serialize};

use super::render::{self, Tracking};
use crate::github::{Client, GithubError, Reaction};
use crate::ids::{InstallationId, RepoName};

/// The `[report]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// Label while queued.
    pub queued_label: String,
    /// Label while running.
    pub running_label: String,
    /// Label when stuck.
    pub stuck_label: String,
    /// The board's single-select field.
    pub status_field: String,
    /// Column while running.
    pub in_progress_column: String,
    /// Column once the pull request is open.
    pub in_review_column: String,
    /// Column when stuck.
    pub blocked_column: String,
    /// At most one progress edit per this many seconds per job.
    pub min_edit_interval_secs: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            queued_label: "foreman:queued".into(),
            running_label: "foreman:running".into(),
            stuck_label: "foreman:stuck".into(),
            status_field: "Status".into(),
            in_progress_column: "In progress".into(),
            in_review_column: "In review".into(),
            blocked_column: "Blocked".into(),
            min_edit_interval_secs: 10,
        }
    }
}

/// Makes a job visible on GitHub.
#[derive(Clone)]
pub struct Reporter {
    client: Client,
    config: ReportConfig,
}

impl Reporter {
    /// A reporter acting through `client`.
    pub fn new(client: Client, config: ReportConfig) -> Self {
        Self { client, config }
    }

    /// The configuration.
    pub fn config(&self) -> &ReportConfig {
        &self.config
    }

    /// 👀 on a command's comment.
    pub async fn acknowledge(&self, inst: InstallationId, repo: &RepoName, comment_id: u64) -> Result<(), GithubError> {
        self.client.react_to_comment(inst, repo, comment_id, Reaction::Eyes).await
    }

    /// Brings the issue to `t`'s state; returns the tracking comment's URL.
    pub async fn update(&self, inst: InstallationId, t: &Tracking) -> Result<String, GithubError> {
        let marker = render::tracking_marker(&t.repo, t.issue);
        let c =
            self.client.upsert_marked_comment(inst, &t.repo, t.issue, &marker, &render::tracking_comment(t)).await?;
        Ok(c.html_url.clone())
    }

    /// A throttled progress edit.
    pub async fn progress(&self, inst: InstallationId, t: &Tracking) -> Result<bool, GithubError> {
        self.update(inst, t).await.map(|_| true)
    }
}
