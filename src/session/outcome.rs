//! What a session produced on its branch: the commits since the base, and the files and lines changed.
//!
//! Read after the agent has ended, in this order: the clone is taken back from the agent
//! ([`super::workspace::reclaim`]), what the agent left uncommitted is committed there by Foreman's hardened
//! git ([`commit_leftovers`]: no hook, filter or configuration of the agent's runs), the clone's `HEAD` is
//! fetched into the mirror as the session's branch ([`super::workspace::take`]), and the commits and
//! numbers are read from the mirror, the repository the push reads too.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::workspace::{self, GitError, Workspace};
use crate::git::Git;

/// One commit the session made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// The full SHA.
    pub sha: String,
    /// The first line of its message.
    pub subject: String,
}

pub use crate::git::FileChange;

/// The changes on the branch since the base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// The branch head after the session, as the mirror holds it.
    pub head: String,
    /// Commits after the base, oldest first.
    pub commits: Vec<Commit>,
    /// Files changed between the base and the head.
    pub files: Vec<FileChange>,
    /// Total lines added.
    pub lines_added: u64,
    /// Total lines deleted.
    pub lines_deleted: u64,
    /// Whether Foreman committed changes the agent left uncommitted.
    pub committed_leftovers: bool,
}

/// Takes the clone of `ws` back, commits what the agent left uncommitted with `leftover_message` and the
/// commit identity in `identity` (`GIT_AUTHOR_NAME`, `GIT_AUTHOR_EMAIL`), puts the result into the mirror
/// as `ws.branch`, and reads the changes since `ws.base_commit` from the mirror.
///
/// # Errors
/// [`GitError`] when the clone's `.git` is refused (a link, a gitfile, a link inside it), or git fails.
pub async fn collect(
    ws: &Workspace,
    leftover_message: &str,
    identity: &BTreeMap<String, String>,
) -> Result<Changes, GitError> {
    workspace::reclaim(&ws.path, &ws.mirror)?;
    let committed_leftovers = commit_leftovers(&ws.path, leftover_message, identity).await?;
    let head = workspace::take(ws).await?;
    let mut changes = read(&ws.mirror, &ws.base_commit, &head).await?;
    changes.committed_leftovers = committed_leftovers;
    Ok(changes)
}

/// Commits what is uncommitted in the clone at `dir` (tracked and untracked files, honouring
/// `.gitignore`) on its `HEAD`, with `message`. Returns whether there was anything. The index is first
/// rebuilt from `HEAD` and refreshed by hashing the files, so an index the agent wrote cannot hide a
/// change. Call only on a clone [`workspace::reclaim`] has taken back (or inside the agent's sandbox).
///
/// # Errors
/// [`GitError`] when git fails (no `HEAD` commit among the causes).
pub async fn commit_leftovers(
    dir: &Path,
    message: &str,
    identity: &BTreeMap<String, String>,
) -> Result<bool, GitError> {
    let repo = Git::work_tree(dir);
    let index = dir.join(".git").join("index");
    std::fs::remove_file(&index)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|e| GitError::other("removing the index", e))?;
    repo.run(&["read-tree", "HEAD"]).await?;
    // Exit status 1 only says that some files differ, which is what is being looked for.
    let _ = repo.run(&["update-index", "-q", "--ignore-submodules", "--refresh"]).await;
    let status = repo.run(&["status", "--porcelain", "--ignore-submodules=all"]).await?;
    if status.trim().is_empty() {
        return Ok(false);
    }
    repo.run(&["add", "--all"]).await?;
    let name = format!("user.name={}", identity.get("GIT_AUTHOR_NAME").map_or("foreman", |s| s));
    let email = format!("user.email={}", identity.get("GIT_AUTHOR_EMAIL").map_or("foreman@localhost", |s| s));
    repo.run(&[
        "-c",
        &name,
        "-c",
        &email,
        "-c",
        "commit.gpgSign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
    ])
    .await?;
    Ok(true)
}

/// The commits and changed files from `base` to `head` in the repository at `git_dir` (a mirror).
///
/// # Errors
/// [`GitError`] when git fails or its output cannot be read.
pub async fn read(git_dir: &Path, base: &str, head: &str) -> Result<Changes, GitError> {
    let repo = Git::bare(git_dir);
    let range = format!("{base}..{head}");
    let log = repo.run(&["log", "--reverse", "--no-show-signature", "--format=%H%x00%s", &range]).await?;
    let commits = log
        .lines()
        .filter_map(|l| l.split_once('\0'))
        .map(|(sha, subject)| Commit { sha: sha.into(), subject: subject.into() })
        .collect();
    let files = crate::git::changed_files(&repo, base, head).await?;
    Ok(Changes {
        head: head.to_owned(),
        commits,
        lines_added: files.iter().map(|f| f.added).sum(),
        lines_deleted: files.iter().map(|f| f.deleted).sum(),
        files,
        committed_leftovers: false,
    })
}
