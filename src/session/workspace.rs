//! Workspaces: a bare mirror per repository under the data directory, refreshed with `git fetch`, and one
//! clone of it per session, a repository of the agent's own, on the session's branch.
//!
//! Layout under the data directory:
//! - `mirrors/<owner>/<name>.git`: a bare repository only Foreman writes. Remote branches are fetched into
//!   `refs/remotes/origin/*` so that Foreman's own branches (`refs/heads/foreman/…`) are never overwritten or
//!   pruned by a fetch; a session's result is fetched into `refs/heads/<branch>` from its clone ([`take`]),
//!   and pushed from here. Its configuration is Foreman's and is rewritten before every use. The remote URL
//!   is passed on each fetch and never stored.
//! - `worktrees/<owner>/<name>/<issue>`: the session's repository, a clone of the mirror with a `.git`
//!   directory of its own (configuration, hooks, refs, index): the agent may do anything there without
//!   reaching the mirror. Objects are borrowed from the mirror through `.git/objects/info/alternates` (git
//!   only reads an alternate; what the agent commits is written into the clone). Work for one issue is
//!   serial, so the path is stable per issue (the Claude CLI keys `--resume` state by the working directory).
//!
//! The agent owns the clone's `.git` while it runs. Before Foreman runs git there again it takes the
//! directory back ([`reclaim`]): `.git` must be a real directory; the configuration, hooks, `info/`,
//! `objects/info/` (alternates), and the files that would point git elsewhere (`commondir`, `gitdir`,
//! `shallow`, linked `worktrees/`) or continue an operation (`MERGE_HEAD`, `sequencer/` …) are unlinked and
//! replaced with Foreman's own, never written through; any other symbolic link or special file in `.git`
//! is refused, as is a `.git` that is a link or a file (a "gitfile" pointing elsewhere). Then
//! [`crate::session::outcome::collect`] commits what the agent left and Foreman fetches the branch into the
//! mirror with its hardened git ([`crate::git`]): the fetch re-hashes every object it receives, so what
//! Foreman checks and pushes (read from the mirror) is what the objects say, not what a forged index,
//! commit-graph or object file in the clone claims.
//!
//! Credentials reach git through [`crate::git`]'s credential helper on a pipe: never in a file, a URL, an
//! argument, an environment variable or a log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::ids::{IssueNumber, RepoName};

use crate::git::{self as g, Git};
pub use crate::git::{GitAuth, GitError};

/// The mirror's configuration, written by Foreman before every use (an older layout let agents write it).
const MIRROR_CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n";

/// A clone's configuration, written by Foreman when the clone is made and again when the agent has ended.
const CLONE_CONFIG: &str =
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n";

/// Entries of a clone's `.git` that Foreman removes when it takes the directory back: replaced with its
/// own (`config`, `hooks`, `info`), able to send git elsewhere (`commondir`, `gitdir`, `shallow`,
/// `worktrees`, `modules`), or able to make Foreman's commit something other than a plain commit on `HEAD`
/// (an operation in progress).
const RECLAIMED: &[&str] = &[
    "config",
    "hooks",
    "info",
    "commondir",
    "gitdir",
    "shallow",
    "worktrees",
    "modules",
    "objects/info",
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "MERGE_RR",
    "AUTO_MERGE",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "BISECT_LOG",
    "BISECT_START",
    "BISECT_TERMS",
    "BISECT_NAMES",
    "BISECT_EXPECTED_REV",
    "FETCH_HEAD",
    "ORIG_HEAD",
    "rebase-merge",
    "rebase-apply",
    "sequencer",
    "rr-cache",
];

/// Where the session's branch starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A new branch from the head of the remote's default branch (named here, e.g. `main`).
    DefaultBranch(String),
    /// The existing remote branch of the same name (a pull request's head branch, for a follow-up).
    ExistingBranch,
}

/// What to prepare.
#[derive(Clone, Debug)]
pub struct WorkspaceRequest {
    /// The repository.
    pub repo: RepoName,
    /// The issue (or pull request) the session works on; names the clone's directory.
    pub issue: IssueNumber,
    /// The clone URL, e.g. `https://github.com/o/r.git`, a `file://` URL or a path. Never holds a token.
    pub remote_url: String,
    /// Credentials for the fetch, if the remote needs them.
    pub auth: Option<GitAuth>,
    /// The branch to work on, e.g. `foreman/7-add-a-thing`.
    pub branch: String,
    /// Where it starts.
    pub start: Start,
}

/// A prepared clone.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The clone's directory (its working tree; `.git` inside). The agent's working directory.
    pub path: PathBuf,
    /// The branch checked out in it.
    pub branch: String,
    /// The commit the branch started from; the outcome counts commits after it.
    pub base_commit: String,
    /// The bare mirror it was cloned from, where [`take`] puts the branch and the push reads it.
    pub mirror: PathBuf,
}

impl Workspace {
    /// The mirror's object directory, canonical, as the clone's `.git/objects/info/alternates` names it. The
    /// clone's git needs it to read any commit it did not make: a sandbox shows it to the agent read-only
    /// at this same path (git never writes into an alternate, and read-only it cannot be changed).
    pub fn shared_objects(&self) -> std::io::Result<PathBuf> {
        std::fs::canonicalize(self.mirror.join("objects"))
    }
}

/// The mirrors and clones under one data directory. Cheap to share (`Arc`); calls for the same
/// repository are serialised (one fetch or clone change at a time per mirror).
///
/// Checking out a large repository from scratch is slow (10,000 files take seconds on a busy disk), so a
/// finished session's clone is kept as an idle clone `worktrees/<owner>/<name>/idle-<n>`, up to
/// `idle_per_repo` per repository, for its working tree only: the next session moves one into place,
/// replaces its whole `.git` with a new one of Foreman's, rebuilds the index from the start commit by
/// hashing the files (so no stat data the agent wrote is trusted), and checks out its branch, which writes
/// only the files that differ. Anything beyond that is removed, so disk use is bounded by the sessions
/// running plus the idle clones.
#[derive(Debug)]
pub struct Workspaces {
    mirrors: PathBuf,
    worktrees: PathBuf,
    idle_per_repo: usize,
    locks: Mutex<HashMap<RepoName, Arc<tokio::sync::Mutex<()>>>>,
    /// Clone paths a session is using now: a second session for the same path (a follow-up sharing its
    /// issue's clone, so the agent can resume) is refused rather than handed a clone in use.
    busy: Mutex<std::collections::HashSet<PathBuf>>,
}

impl Workspaces {
    /// Creates the directories under `data_dir`. `idle_per_repo` bounds the idle clones kept per
    /// repository (0: every clone is removed after its session). A `git-askpass` script left by an older
    /// version is removed.
    pub fn new(data_dir: &Path, idle_per_repo: usize) -> std::io::Result<Self> {
        let mirrors = data_dir.join("mirrors");
        let worktrees = data_dir.join("worktrees");
        std::fs::create_dir_all(&mirrors)?;
        std::fs::create_dir_all(&worktrees)?;
        let _ = std::fs::remove_file(data_dir.join("git-askpass"));
        Ok(Self { mirrors, worktrees, idle_per_repo, locks: Mutex::default(), busy: Mutex::default() })
    }

    /// The directory every clone lives under (`<data dir>/worktrees`).
    pub fn worktrees_root(&self) -> &Path {
        &self.worktrees
    }

    /// The mirror of `repo`.
    pub fn mirror_path(&self, repo: &RepoName) -> PathBuf {
        self.mirrors.join(repo.owner()).join(format!("{}.git", repo.name()))
    }

    /// The clone directory for `issue` of `repo`.
    pub fn worktree_path(&self, repo: &RepoName, issue: IssueNumber) -> PathBuf {
        self.repo_worktrees(repo).join(issue.to_string())
    }

    fn repo_worktrees(&self, repo: &RepoName) -> PathBuf {
        self.worktrees.join(repo.owner()).join(repo.name())
    }

    fn idle(&self, repo: &RepoName) -> Vec<PathBuf> {
        let mut idle: Vec<PathBuf> = std::fs::read_dir(self.repo_worktrees(repo))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("idle-")))
            .collect();
        idle.sort();
        idle
    }

    fn lock(&self, repo: &RepoName) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(repo.clone()).or_default().clone()
    }

    /// Makes sure the mirror of `repo` exists with Foreman's configuration, and returns it.
    async fn own_mirror(&self, repo: &RepoName) -> Result<PathBuf, GitError> {
        let mirror = self.mirror_path(repo);
        if !mirror.join("HEAD").is_file() {
            std::fs::create_dir_all(&mirror).map_err(io_error)?;
            g::init(&mirror, true).await?;
        }
        replace_file(&mirror.join("config"), MIRROR_CONFIG).map_err(io_error)?;
        // Linked worktrees of an older layout: their administrative files live here.
        remove_any(&mirror.join("worktrees")).map_err(io_error)?;
        Ok(mirror)
    }

    /// Fetches the start branch into the mirror (creating it on first use) and puts a clone on
    /// `req.branch` at the branch's start: the clone left at the same path (a crashed session) or an idle
    /// one moved into place, with a new `.git`, when there is one; else a new one. Untracked and ignored
    /// files are removed.
    pub async fn prepare(&self, req: &WorkspaceRequest) -> Result<Workspace, GitError> {
        let lock = self.lock(&req.repo);
        let _guard = lock.lock().await;
        let mirror = self.own_mirror(&req.repo).await?;
        let remote_branch = match &req.start {
            Start::DefaultBranch(b) => b.as_str(),
            Start::ExistingBranch => req.branch.as_str(),
        };
        let refspec = format!("+refs/heads/{remote_branch}:refs/remotes/origin/{remote_branch}");
        let fetch = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", &req.remote_url, &refspec];
        let origin = Git::bare(&mirror);
        // A local remote (a path or `file://`, in tests and for repositories on disk) needs the local transport.
        let origin = if g::is_local_url(&req.remote_url) { origin.local() } else { origin };
        match &req.auth {
            Some(auth) => origin.run_with_credentials(&fetch, auth).await?,
            None => origin.run(&fetch).await?,
        };
        let tracking = format!("refs/remotes/origin/{remote_branch}");
        let base = Git::bare(&mirror).run(&["rev-parse", "--verify", &format!("{tracking}^{{commit}}")]).await?;
        let base = base.trim().to_owned();
        let path = self.worktree_path(&req.repo, req.issue);
        if !self.busy.lock().unwrap().insert(path.clone()) {
            return Err(GitError {
                args: "(workspace)".into(),
                stderr: format!("the workspace for #{} is in use by another session", req.issue),
            });
        }
        let prepared = self.prepare_at(req, &mirror, &path, &base, &tracking).await;
        if prepared.is_err() {
            self.busy.lock().unwrap().remove(&path);
        }
        prepared
    }

    async fn prepare_at(
        &self,
        req: &WorkspaceRequest,
        mirror: &Path,
        path: &Path,
        base: &str,
        tracking: &str,
    ) -> Result<Workspace, GitError> {
        std::fs::create_dir_all(self.repo_worktrees(&req.repo)).map_err(io_error)?;
        if !is_real_dir(path) {
            remove_any(path).map_err(io_error)?;
            if let Some(idle) = self.idle(&req.repo).into_iter().find(|p| is_real_dir(p)) {
                std::fs::rename(&idle, path).map_err(io_error)?;
            }
        }
        let fresh = async {
            std::fs::create_dir_all(path).map_err(io_error)?;
            // Whatever `.git` holds (a session's refs, objects, index, configuration) is dropped: only the
            // working tree is kept, and it is only trusted after the index is rebuilt by hashing it.
            remove_any(&path.join(".git")).map_err(io_error)?;
            g::init(path, false).await?;
            write_git_dir(path, mirror).map_err(io_error)?;
            checkout(path, base, &req.branch, tracking).await
        };
        if let Err(e) = fresh.await {
            // A working tree git cannot use (files it may not replace, a broken layout): start from nothing.
            tracing::warn!(path = %path.display(), error = %e, "discarding a workspace that could not be reused");
            remove_any(path).map_err(io_error)?;
            std::fs::create_dir_all(path).map_err(io_error)?;
            g::init(path, false).await?;
            write_git_dir(path, mirror).map_err(io_error)?;
            checkout(path, base, &req.branch, tracking).await?;
        }
        Ok(Workspace {
            path: path.to_owned(),
            branch: req.branch.clone(),
            base_commit: base.to_owned(),
            mirror: mirror.to_owned(),
        })
    }

    /// Ends a session's use of its clone: keeps it idle for the next session (its `.git` is replaced
    /// then), or removes it when enough are idle already. Runs no git: the clone may hold whatever the
    /// agent or the repository's commands left.
    pub async fn remove(&self, ws: &Workspace, repo: &RepoName) {
        let lock = self.lock(repo);
        let _guard = lock.lock().await;
        self.busy.lock().unwrap().remove(&ws.path);
        let idle = self.idle(repo);
        if idle.len() < self.idle_per_repo && is_real_dir(&ws.path) {
            let slot = (0..).map(|n| self.repo_worktrees(repo).join(format!("idle-{n}"))).find(|p| !p.exists());
            if let Some(slot) = slot
                && std::fs::rename(&ws.path, &slot).is_ok()
            {
                return;
            }
        }
        let _ = remove_any(&ws.path);
    }

    /// Removes every session clone left behind (after a crash; idle ones stay). Call at start, before any
    /// session runs.
    pub async fn prune(&self) -> std::io::Result<()> {
        let dirs = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if is_real_dir(&path) {
                    found.push(path);
                }
            }
            Ok(found)
        };
        for owner in dirs(&self.worktrees)? {
            for repo in dirs(&owner)? {
                for entry in std::fs::read_dir(repo).into_iter().flatten().flatten() {
                    let keep = entry.file_name().to_str().is_some_and(|n| n.starts_with("idle-"));
                    if !keep {
                        remove_any(&entry.path())?;
                    }
                }
            }
        }
        for owner in dirs(&self.mirrors)? {
            for mirror in dirs(&owner)? {
                remove_any(&mirror.join("worktrees"))?;
            }
        }
        Ok(())
    }
}

/// Puts the clone at `path` on `branch` at `base`: the index is rebuilt from `base` and refreshed by hashing
/// the working tree (attributes read from `base`, not from files in the tree), then the branch is checked
/// out, writing only the files that differ, and untracked and ignored files are removed. `tracking` (the
/// mirror's `refs/remotes/origin/<branch>`) is set to `base` too, so the agent can compare with it.
async fn checkout(path: &Path, base: &str, branch: &str, tracking: &str) -> Result<(), GitError> {
    let repo = Git::work_tree(path);
    let attrs = format!("--attr-source={base}");
    repo.run(&["update-ref", tracking, base]).await?;
    repo.run(&[&attrs, "read-tree", base]).await?;
    // Exit status 1 only says that some files differ, which the checkout then fixes.
    let _ = repo.run(&[&attrs, "update-index", "-q", "--ignore-submodules", "--refresh"]).await;
    repo.run(&[&attrs, "checkout", "--quiet", "--force", "--no-track", "-B", branch, base]).await?;
    repo.run(&[&attrs, "clean", "-q", "-ffdx"]).await?;
    Ok(())
}

/// Writes Foreman's files into the clone's `.git` at `dir`: the configuration, an empty `hooks/` and
/// `info/`, and `objects/info/alternates` naming the mirror's objects. Each replaces whatever is there
/// without following a link.
fn write_git_dir(dir: &Path, mirror: &Path) -> std::io::Result<()> {
    let git_dir = dir.join(".git");
    for sub in ["hooks", "info", "objects/info"] {
        remove_any(&git_dir.join(sub))?;
    }
    replace_file(&git_dir.join("config"), CLONE_CONFIG)?;
    std::fs::create_dir(git_dir.join("hooks"))?;
    std::fs::create_dir(git_dir.join("info"))?;
    std::fs::create_dir(git_dir.join("objects/info"))?;
    let objects = std::fs::canonicalize(mirror.join("objects"))?;
    replace_file(&git_dir.join("objects/info/alternates"), &format!("{}\n", objects.display()))
}

/// The step [`reclaim`]'s refusals name ([`GitError::other`]): what they say is about the agent's
/// workspace (never a host path), fit for a failure reason.
pub const RECLAIMING: &str = "reclaiming the workspace";

/// Takes the clone at `dir` back from the agent before Foreman runs git in it: refuses a `.git` that is
/// not a real directory, removes and rewrites what the module docs list, removes stale lock files, and
/// refuses any symbolic link, FIFO, socket or device left anywhere in `.git` (git would follow or block on
/// them). The agent must have ended.
///
/// # Errors
/// [`GitError`] naming what was refused; nothing has then been run in the clone.
pub fn reclaim(dir: &Path, mirror: &Path) -> Result<(), GitError> {
    let refuse = |what: String| GitError::other(RECLAIMING, what);
    if !is_real_dir(dir) {
        return Err(refuse("the workspace is no longer a directory".into()));
    }
    let git_dir = dir.join(".git");
    match std::fs::symlink_metadata(&git_dir) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("`.git` was replaced with a symbolic link".into())),
        Ok(_) => return Err(refuse("`.git` was replaced with a file (a gitfile pointing elsewhere)".into())),
        Err(e) => return Err(refuse(format!("`.git` is missing ({})", e.kind()))),
    }
    for sub in ["objects", "refs"] {
        if !is_real_dir(&git_dir.join(sub)) {
            return Err(refuse(format!("`.git/{sub}` is not a directory")));
        }
    }
    for entry in RECLAIMED {
        remove_any(&git_dir.join(entry)).map_err(io_error)?;
    }
    write_git_dir(dir, mirror).map_err(io_error)?;
    check_tree(&git_dir, &git_dir).map_err(refuse)
}

/// Walks `dir` without following links: removes `*.lock` files (left by a git the agent's end killed) and
/// fails on anything that is neither a regular file nor a directory, naming it relative to `root`.
fn check_tree(root: &Path, dir: &Path) -> Result<(), String> {
    let here = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading `.git/{here}`: {}", e.kind()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading `.git/{here}`: {}", e.kind()))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let kind = entry.file_type().map_err(|e| format!("reading `.git/{rel}`: {}", e.kind()))?;
        if kind.is_dir() {
            check_tree(root, &path)?;
        } else if kind.is_symlink() {
            return Err(format!("`.git/{rel}` is a symbolic link"));
        } else if !kind.is_file() {
            return Err(format!("`.git/{rel}` is not a regular file"));
        } else if path.extension().is_some_and(|e| e == "lock") {
            std::fs::remove_file(&path).map_err(|e| format!("removing `.git/{rel}`: {}", e.kind()))?;
        }
    }
    Ok(())
}

/// Fetches the clone's `HEAD` (after [`reclaim`] and the leftover commit) into the mirror as
/// `refs/heads/<branch>`, with object checks, and returns the commit the mirror now has there.
///
/// # Errors
/// [`GitError`] when the fetch fails (objects that do not hash to their names among the causes).
pub async fn take(ws: &Workspace) -> Result<String, GitError> {
    let target = format!("refs/heads/{}", ws.branch);
    let source = ws.path.to_string_lossy();
    Git::bare(&ws.mirror)
        .local()
        .run(&[
            "-c",
            "fetch.fsckObjects=true",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            &source,
            &format!("+HEAD:{target}"),
        ])
        .await?;
    let head = Git::bare(&ws.mirror).run(&["rev-parse", "--verify", &format!("{target}^{{commit}}")]).await?;
    Ok(head.trim().to_owned())
}

/// Whether `path` is a directory and not a link to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Removes whatever is at `path` without following a link: a directory tree, a file or a link. Nothing
/// there is fine.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces the file at `path` with `text`: written to a new file beside it, then renamed over it (a
/// rename replaces a link rather than writing through it).
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("foreman-{}", uuid::Uuid::new_v4()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))?;
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_dir()
    {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(&tmp, path)
}

fn io_error(e: std::io::Error) -> GitError {
    GitError::other("filesystem", e)
}

/// The branch name for an issue: `foreman/<issue>-<slug>`, the slug being the title in lowercase ASCII
/// letters, digits and dashes, at most 40 characters (`foreman/<issue>` when nothing is left).
pub fn branch_name(issue: IssueNumber, title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() { format!("foreman/{issue}") } else { format!("foreman/{issue}-{slug}") }
}

/// The issue a branch of [`branch_name`]'s shape was made for (`foreman/<issue>-…` or `foreman/<issue>`);
/// `None` for any other branch.
pub fn issue_of_branch(branch: &str) -> Option<IssueNumber> {
    let rest = branch.strip_prefix("foreman/")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok().map(IssueNumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_of_a_branch_is_read_back() {
        assert_eq!(issue_of_branch(&branch_name(IssueNumber(7), "Fix it")), Some(IssueNumber(7)));
        assert_eq!(issue_of_branch("foreman/12"), Some(IssueNumber(12)));
        assert_eq!(issue_of_branch("feature/12-x"), None);
        assert_eq!(issue_of_branch("foreman/x-12"), None);
    }

    #[test]
    fn branch_names_are_safe_slugs() {
        assert_eq!(
            branch_name(IssueNumber(7), "Agent sessions: workspaces, prompts!"),
            "foreman/7-agent-sessions-workspaces-prompts"
        );
        assert_eq!(branch_name(IssueNumber(8), "日本語"), "foreman/8");
        assert!(branch_name(IssueNumber(9), &"x ".repeat(100)).len() <= "foreman/9-".len() + 40);
    }
}
