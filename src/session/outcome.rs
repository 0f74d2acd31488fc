//! What a session produced on its branch: the commits since the base, and the files and lines changed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::workspace::{GitError, git};

/// One commit the session made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// The full SHA.
    pub sha: String,
    /// The first line of its message.
    pub subject: String,
}

/// One changed file (`git diff --numstat base HEAD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Path relative to the repository root (the new path for a rename).
    pub path: String,
    /// Lines added; 0 for a binary file.
    pub added: u64,
    /// Lines deleted; 0 for a binary file.
    pub deleted: u64,
}

/// The changes on the branch since the base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// The branch head after the session.
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

/// Commits what the agent left uncommitted (tracked and untracked, honouring `.gitignore`) with `message`,
/// then reads the changes since `base`. `env` carries the commit identity.
pub async fn collect(
    worktree: &Path,
    base: &str,
    leftover_message: &str,
    identity: &BTreeMap<String, String>,
) -> Result<Changes, GitError> {
    let status = git(worktree, &["status", "--porcelain"], None).await?;
    let mut committed_leftovers = false;
    if !status.trim().is_empty() {
        git(worktree, &["add", "--all"], None).await?;
        let mut args =
            vec!["-c".to_owned(), format!("user.name={}", identity.get("GIT_AUTHOR_NAME").map_or("foreman", |s| s))];
        args.push("-c".into());
        args.push(format!("user.email={}", identity.get("GIT_AUTHOR_EMAIL").map_or("foreman@localhost", |s| s)));
        args.extend(["commit", "--quiet", "--no-verify", "-m", leftover_message].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        git(worktree, &args, None).await?;
        committed_leftovers = true;
    }
    let head = git(worktree, &["rev-parse", "HEAD"], None).await?.trim().to_owned();
    let range = format!("{base}..{head}");
    let log = git(worktree, &["log", "--reverse", "--format=%H%x00%s", &range], None).await?;
    let commits = log
        .lines()
        .filter_map(|l| l.split_once('\0'))
        .map(|(sha, subject)| Commit { sha: sha.into(), subject: subject.into() })
        .collect();
    let numstat = git(worktree, &["diff", "--numstat", "-z", "--no-renames", base, &head], None).await?;
    let files: Vec<FileChange> = numstat
        .split('\0')
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let mut parts = r.splitn(3, '\t');
            let added = parts.next()?.parse().unwrap_or(0);
            let deleted = parts.next()?.parse().unwrap_or(0);
            Some(FileChange { added, deleted, path: parts.next()?.to_owned() })
        })
        .collect();
    Ok(Changes {
        head,
        commits,
        lines_added: files.iter().map(|f| f.added).sum(),
        lines_deleted: files.iter().map(|f| f.deleted).sum(),
        files,
        committed_leftovers,
    })
}
