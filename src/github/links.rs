//! Issue relationships read over REST: the issues blocking an issue (GitHub's "blocked by" dependencies,
//! <https://docs.github.com/en/rest/issues/issue-dependencies>) and an issue's sub-issues
//! (<https://docs.github.com/en/rest/issues/sub-issues>). Both name issues anywhere on GitHub, so each
//! comes with its repository ([`LinkedIssue::repo`]).

use serde::Deserialize;

use super::GithubError;
use super::client::{Auth, Client, seg};
use crate::ids::{InstallationId, IssueNumber, RepoName};

/// An issue on the other side of a relationship, as the list endpoints give it.
#[derive(Clone, Debug, Deserialize)]
pub struct LinkedIssue {
    /// The database id (what `issue_id` and `sub_issue_id` take).
    pub id: u64,
    /// Its number in its repository.
    pub number: IssueNumber,
    /// The title.
    #[serde(default)]
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// `https://api.github.com/repos/{owner}/{repo}`: where it lives.
    pub repository_url: String,
}

impl LinkedIssue {
    /// The repository it lives in: the last two segments of `repository_url`; `None` when they are not a
    /// repository name.
    pub fn repo(&self) -> Option<RepoName> {
        let mut parts = self.repository_url.trim_end_matches('/').rsplit('/');
        let (name, owner) = (parts.next()?, parts.next()?);
        RepoName::new(owner, name).ok()
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.state.eq_ignore_ascii_case("open")
    }
}

fn issue_path(repo: &RepoName, number: IssueNumber) -> String {
    format!("/repos/{}/{}/issues/{number}", seg(repo.owner()), seg(repo.name()))
}

impl Client {
    /// `GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by`: the issues blocking
    /// `number`, in any repository (100 per page, all pages; GitHub allows 50).
    ///
    /// Errors: [`GithubError::NotFound`] when the issue does not exist (or GitHub has no dependencies).
    pub async fn blockers(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<LinkedIssue>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}/dependencies/blocked_by";
        let path = format!("{}/dependencies/blocked_by?per_page=100", issue_path(repo, number));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// `GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues`: the sub-issues of `number`, in their
    /// order on GitHub (100 per page, all pages; GitHub allows 100).
    pub async fn sub_issue_list(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<LinkedIssue>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}/sub_issues";
        let path = format!("{}/sub_issues?per_page=100", issue_path(repo, number));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }
}

#[cfg(test)]
mod tests {
    use super::LinkedIssue;

    #[test]
    fn the_repository_comes_from_the_repository_url() {
        let i = LinkedIssue {
            id: 1,
            number: crate::ids::IssueNumber(3),
            title: String::new(),
            state: "open".into(),
            repository_url: "https://api.github.com/repos/acme/widgets".into(),
        };
        assert_eq!(i.repo().unwrap().to_string(), "acme/widgets");
        assert!(i.is_open());
    }
}
