//! Runs left behind by a crash: a session dispatched to GitHub Actions whose Foreman process died is marked
//! interrupted at start (its job queued again), and nothing will take its runner's work; Foreman forgot its
//! session token, so the runner would be refused at its next request, but a run still queued would first
//! wait for a runner, start, and install the agent for nothing. Cancelling the runs at start frees them.
//!
//! Best effort, not durable: the runs to cancel are known only from the recovery that requeued their jobs,
//! so a process killed after that recovery and before these cancels leaves the runs as they are. The token
//! refusal is what guarantees that such a run does no work.

use crate::github::Client;
use crate::ids::{InstallationId, RepoName};
use crate::job::sessions::RemoteRun;

/// Cancels each run (`POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel`; one already ended answers
/// 409, which is fine) through the installation that dispatched it. A run without a known installation, or a
/// cancel GitHub refuses, is logged and left: its runner is refused at its next request in any case.
pub async fn cancel(client: Client, runs: Vec<(Option<InstallationId>, RemoteRun)>) {
    for (installation, run) in runs {
        let (Some(inst), Ok(repo)) = (installation, run.repository.parse::<RepoName>()) else {
            tracing::warn!(run_id = run.run_id, repository = %run.repository, "an orphaned workflow run names no installation: left to end on its own");
            continue;
        };
        match client.cancel_workflow_run(inst, &repo, run.run_id).await {
            Ok(()) => {
                tracing::info!(run_id = run.run_id, repository = %repo, "cancelled the workflow run of a session interrupted by a restart")
            }
            Err(e) => {
                tracing::warn!(run_id = run.run_id, repository = %repo, error = %e, "cancelling an orphaned workflow run failed: its runner is refused at its next request")
            }
        }
    }
}
