//! The GitHub Actions operations the Actions executor uses: dispatch a workflow and get its run back, read
//! a run, cancel it.

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::GithubError;
use super::client::{Auth, Call, Client, seg};
use crate::ids::{InstallationId, RepoName};

/// The run a workflow dispatch started (`return_run_details: true`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DispatchedRun {
    /// The run's id (`workflow_run_id`).
    pub workflow_run_id: u64,
    /// The run's API URL.
    #[serde(default)]
    pub run_url: Option<String>,
    /// The run's page on GitHub.
    #[serde(default)]
    pub html_url: Option<String>,
}

/// A workflow run, as far as Foreman reads it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct WorkflowRun {
    /// The run's id.
    pub id: u64,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested` or `pending`.
    #[serde(default)]
    pub status: Option<String>,
    /// For a completed run: `success`, `failure`, `cancelled`, `timed_out`, `skipped` …
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The run's page on GitHub.
    #[serde(default)]
    pub html_url: Option<String>,
}

impl WorkflowRun {
    /// Whether the run has ended (`status == "completed"`).
    pub fn completed(&self) -> bool {
        self.status.as_deref() == Some("completed")
    }
}

fn runs_path(repo: &RepoName) -> String {
    format!("/repos/{}/{}/actions", seg(repo.owner()), seg(repo.name()))
}

impl Client {
    /// Dispatches `workflow` (a file name such as `foreman-session.yml`, or its id) on `git_ref` with
    /// `inputs` and asks for the run it starts
    /// (`POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches` with
    /// `return_run_details: true`). Sent once: an ambiguous answer is [`GithubError::Ambiguous`], never a
    /// second run. Errors: [`GithubError::NotFound`] when the workflow file is not in the repository (or the
    /// installation cannot see it); [`GithubError::Unprocessable`] when the workflow has no
    /// `workflow_dispatch` trigger or refuses the inputs.
    pub async fn dispatch_workflow(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        workflow: &str,
        git_ref: &str,
        inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<DispatchedRun, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches";
        let path = format!("{}/workflows/{}/dispatches", runs_path(repo), seg(workflow));
        let call = Call::new(Method::POST, EP, path, Auth::Installation(inst))
            .body(json!({ "ref": git_ref, "inputs": inputs, "return_run_details": true }))
            .creates();
        self.send(call).await?.json(EP)
    }

    /// One workflow run (`GET /repos/{owner}/{repo}/actions/runs/{run_id}`). Errors:
    /// [`GithubError::NotFound`] for an unknown run.
    pub async fn workflow_run(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        run_id: u64,
    ) -> Result<WorkflowRun, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/actions/runs/{run_id}";
        let call = Call::new(Method::GET, EP, format!("{}/runs/{run_id}", runs_path(repo)), Auth::Installation(inst));
        self.send(call).await?.json(EP)
    }

    /// Cancels a workflow run (`POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel`, 202). A run that
    /// has already ended answers 409, which is success here: it is not running.
    pub async fn cancel_workflow_run(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        run_id: u64,
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel";
        let call =
            Call::new(Method::POST, EP, format!("{}/runs/{run_id}/cancel", runs_path(repo)), Auth::Installation(inst));
        match self.send(call).await {
            Ok(_) | Err(GithubError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
