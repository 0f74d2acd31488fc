//! Creating issues, sub-issues and "blocked by" links: what approving a plan needs
//! (<https://docs.github.com/en/rest/issues/sub-issues>, <https://docs.github.com/en/rest/issues/issue-dependencies>).
//!
//! Sub-issues and dependencies name issues by their database `id` (not their number): [`Issue`] carries
//! it. Creating an issue is a POST that GitHub may have carried out when the answer was lost; it is
//! sent once ([`GithubError::Ambiguous`] then), and the caller finds what it made by the marker it put in the
//! body ([`Client::recent_issues`]).

use http::Method;
use serde_json::json;

use super::GithubError;
use super::client::{Auth, Call, Client, seg};
use super::types::Issue;
use crate::ids::{InstallationId, IssueNumber, RepoName};

fn issue_path(repo: &RepoName, number: IssueNumber) -> String {
    format!("/repos/{}/{}/issues/{number}", seg(repo.owner()), seg(repo.name()))
}

impl Client {
    /// `POST /repos/{owner}/{repo}/issues` with a title, body and labels (GitHub creates missing labels).
    /// Sent once: after a 5xx or a lost answer this returns [`GithubError::Ambiguous`], and the caller looks
    /// for the issue by the marker in its body before trying again.
    pub async fn create_issue(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<Issue, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues";
        let path = format!("/repos/{}/{}/issues", seg(repo.owner()), seg(repo.name()));
        let call = Call::new(Method::POST, EP, path, Auth::Installation(inst))
            .body(json!({ "title": title, "body": body, "labels": labels }))
            .creates();
        self.send(call).await?.json(EP)
    }

    /// The 100 issues (and pull requests) of `repo` created last, open or closed, newest first
    /// (`GET /repos/{owner}/{repo}/issues?state=all&sort=created&direction=desc`, one page).
    pub async fn recent_issues(&self, inst: InstallationId, repo: &RepoName) -> Result<Vec<Issue>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues";
        let path = format!(
            "/repos/{}/{}/issues?state=all&sort=created&direction=desc&per_page=100",
            seg(repo.owner()),
            seg(repo.name())
        );
        self.send(Call::new(Method::GET, EP, path, Auth::Installation(inst))).await?.json(EP)
    }

    /// `GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues`: the sub-issues in priority order (100 per
    /// page, all pages; GitHub allows at most 100).
    pub async fn sub_issues(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<Issue>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues";
        let path = format!("{}/sub_issues?per_page=100", issue_path(repo, number));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// `POST /repos/{owner}/{repo}/issues/{issue_number}/sub_issues` with `sub_issue_id` (a database id, same
    /// owner). Errors: [`GithubError::Unprocessable`] when it is one already or has another parent.
    pub async fn add_sub_issue(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        parent: IssueNumber,
        sub_issue_id: u64,
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/sub_issues";
        let path = format!("{}/sub_issues", issue_path(repo, parent));
        let call =
            Call::new(Method::POST, EP, path, Auth::Installation(inst)).body(json!({ "sub_issue_id": sub_issue_id }));
        self.send(call).await.map(drop)
    }

    /// `GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by`: the issues blocking it
    /// (100 per page, all pages).
    pub async fn blocked_by_issues(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<Issue>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by";
        let path = format!("{}/dependencies/blocked_by?per_page=100", issue_path(repo, number));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// `POST /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by` with `issue_id` (the
    /// blocker's database id): the issue becomes blocked by it. Errors: [`GithubError::Unprocessable`] when
    /// the link exists already or would make a cycle.
    pub async fn add_blocked_by(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        blocker_id: u64,
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by";
        let path = format!("{}/dependencies/blocked_by", issue_path(repo, number));
        let call = Call::new(Method::POST, EP, path, Auth::Installation(inst)).body(json!({ "issue_id": blocker_id }));
        self.send(call).await.map(drop)
    }
}
