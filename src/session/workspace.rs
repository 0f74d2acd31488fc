//! Workspaces: a bare mirror per repository under the data directory, refreshed with `git fetch`, and one
//! `git worktree` per session on its own branch.
//!
//! Layout under the data directory:
//! - `mirrors/<owner>/<name>.git`: a bare repository. Remote branches are fetched into `refs/remotes/origin/*`
//!   so that Foreman's own branches (`refs/heads/foreman/…`) are never overwritten or pruned by a fetch. The
//!   remote URL is passed on each fetch and never stored.
//! - `worktrees/<owner>/<name>/<issue>`: the session's worktree. Work for one issue is serial, so the path is
//!   stable per issue (the Claude CLI keys `--resume` state by the working directory).
//! - `git-askpass`: a script that answers git's credential prompts from two variables set only in the
//!   environment of the fetching git process (`FOREMAN_GIT_USERNAME`, `FOREMAN_GIT_PASSWORD`). The token is
//!   never written to a file, a URL or a log.
//!
//! Git is run with `GIT_TERMINAL_PROMPT=0` and no credential helper, so a missing or wrong token fails fast
//! instead of waiting for input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use crate::ids::{IssueNumber, RepoName};

/// The askpass script: prints the username for a `Username for …` prompt and the password otherwise.
const ASKPASS: &str = "#!/bin/sh\n# Written by Foreman: answers git's credential prompts from the environment of the calling git\n# process only. It holds no secret.\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$FOREMAN_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$FOREMAN_GIT_PASSWORD\" ;;\nesac\n";

/// Credentials for fetching over HTTPS: an installation token is used with the username `x-access-token`
/// (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation>).
#[derive(Clone, Debug)]
pub struct GitAuth {
    /// The username git sends, `x-access-token` for an installation token.
    pub username: String,
    /// The token.
    pub token: SecretString,
}

impl GitAuth {
    /// An installation token, sent as `x-access-token:<token>`.
    pub fn installation_token(token: SecretString) -> Self {
        Self { username: "x-access-token".into(), token }
    }
}

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
    /// The issue (or pull request) the session works on; names the worktree directory.
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

/// A prepared worktree.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The worktree's directory.
    pub path: PathBuf,
    /// The branch checked out in it.
    pub branch: String,
    /// The commit the branch started from; the outcome counts commits after it.
    pub base_commit: String,
    /// The bare mirror it belongs to.
    pub mirror: PathBuf,
}

/// A git command that failed, with its stderr (credentials are never part of it).
#[derive(Debug, thiserror::Error)]
#[error("git {args} failed: {stderr}")]
pub struct GitError {
    /// The arguments, for the message.
    pub args: String,
    /// What git wrote on stderr, trimmed.
    pub stderr: String,
}

/// Runs `git -C dir args…` and returns stdout. `auth` is put in this process's environment only.
pub async fn git(dir: &Path, args: &[&str], auth: Option<(&Path, &GitAuth)>) -> Result<String, GitError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "credential.helper="])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some((askpass, auth)) = auth {
        cmd.env("GIT_ASKPASS", askpass)
            .env("FOREMAN_GIT_USERNAME", &auth.username)
            .env("FOREMAN_GIT_PASSWORD", auth.token.expose_secret());
    }
    let out = cmd.output().await.map_err(|e| GitError { args: args.join(" "), stderr: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

/// The mirrors and worktrees under one data directory. Cheap to share (`Arc`); calls for the same
/// repository are serialised (one fetch or worktree change at a time per mirror).
///
/// Checking out a large repository from scratch is slow (10,000 files take seconds on a busy disk), so a
/// finished session's worktree is cleaned (`reset --hard`, `clean -ffdx`, detached) and kept as an idle
/// worktree `worktrees/<owner>/<name>/idle-<n>`, up to `idle_per_repo` per repository; the next session
/// moves one into place and checks out its branch, which touches only the files that differ. Anything
/// beyond that is removed, so disk use is bounded by the sessions running plus the idle worktrees.
#[derive(Debug)]
pub struct Workspaces {
    mirrors: PathBuf,
    worktrees: PathBuf,
    askpass: PathBuf,
    idle_per_repo: usize,
    locks: Mutex<HashMap<RepoName, Arc<tokio::sync::Mutex<()>>>>,
    /// Worktree paths a session is using now: a second session for the same path (a follow-up sharing its
    /// issue's worktree, so the agent can resume) is refused rather than handed a worktree in use.
    busy: Mutex<std::collections::HashSet<PathBuf>>,
}

impl Workspaces {
    /// Creates the directories and the askpass script under `data_dir`. `idle_per_repo` bounds the idle
    /// worktrees kept per repository (0: every worktree is removed after its session).
    pub fn new(data_dir: &Path, idle_per_repo: usize) -> std::io::Result<Self> {
        let mirrors = data_dir.join("mirrors");
        let worktrees = data_dir.join("worktrees");
        std::fs::create_dir_all(&mirrors)?;
        std::fs::create_dir_all(&worktrees)?;
        let askpass = data_dir.join("git-askpass");
        if std::fs::read_to_string(&askpass).ok().as_deref() != Some(ASKPASS) {
            std::fs::write(&askpass, ASKPASS)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { mirrors, worktrees, askpass, idle_per_repo, locks: Mutex::default(), busy: Mutex::default() })
    }

    /// The askpass script git runs for credentials (for other git commands that need the token, e.g. a push).
    pub fn askpass_path(&self) -> &Path {
        &self.askpass
    }

    /// The directory every worktree lives under (`<data dir>/worktrees`).
    pub fn worktrees_root(&self) -> &Path {
        &self.worktrees
    }

    /// The mirror of `repo`.
    pub fn mirror_path(&self, repo: &RepoName) -> PathBuf {
        self.mirrors.join(repo.owner()).join(format!("{}.git", repo.name()))
    }

    /// The worktree directory for `issue` of `repo`.
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

    /// Fetches the start branch into the mirror (creating it on first use) and puts a worktree on
    /// `req.branch` at the branch's start: an idle worktree moved into place when there is one, else a new
    /// one. A leftover worktree at the same path (a crashed session) is reused. A leftover local branch of
    /// the same name is reset to the start. Untracked and ignored files are removed.
    pub async fn prepare(&self, req: &WorkspaceRequest) -> Result<Workspace, GitError> {
        let lock = self.lock(&req.repo);
        let _guard = lock.lock().await;
        let mirror = self.mirror_path(&req.repo);
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(&mirror).map_err(io_error)?;
            git(&mirror, &["init", "--bare", "--quiet"], None).await?;
        }
        let remote_branch = match &req.start {
            Start::DefaultBranch(b) => b.as_str(),
            Start::ExistingBranch => req.branch.as_str(),
        };
        let refspec = format!("+refs/heads/{remote_branch}:refs/remotes/origin/{remote_branch}");
        let auth = req.auth.as_ref().map(|a| (self.askpass.as_path(), a));
        git(&mirror, &["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", &req.remote_url, &refspec], auth)
            .await?;
        let base =
            git(&mirror, &["rev-parse", "--verify", &format!("refs/remotes/origin/{remote_branch}^{{commit}}")], None)
                .await?
                .trim()
                .to_owned();
        let path = self.worktree_path(&req.repo, req.issue);
        if !self.busy.lock().unwrap().insert(path.clone()) {
            return Err(GitError {
                args: "(worktree)".into(),
                stderr: format!("the worktree for #{} is in use by another session", req.issue),
            });
        }
        let prepared = self.prepare_at(req, &mirror, path.clone(), base).await;
        if prepared.is_err() {
            self.busy.lock().unwrap().remove(&path);
        }
        prepared
    }

    async fn prepare_at(
        &self,
        req: &WorkspaceRequest,
        mirror: &Path,
        path: PathBuf,
        base: String,
    ) -> Result<Workspace, GitError> {
        let mirror = mirror.to_owned();
        let path_str = path.to_string_lossy().into_owned();
        let reusable = path.exists() && git(&path, &["rev-parse", "--git-dir"], None).await.is_ok();
        if !reusable {
            remove_worktree(&mirror, &path).await;
            std::fs::create_dir_all(self.repo_worktrees(&req.repo)).map_err(io_error)?;
            let mut placed = false;
            for idle in self.idle(&req.repo) {
                if git(&mirror, &["worktree", "move", &idle.to_string_lossy(), &path_str], None).await.is_ok() {
                    placed = true;
                    break;
                }
                remove_worktree(&mirror, &idle).await;
            }
            if !placed {
                git(&mirror, &["worktree", "add", "--quiet", "--detach", &path_str, &base], None).await?;
            }
        }
        git(&path, &["checkout", "--quiet", "--force", "--no-track", "-B", &req.branch, &base], None).await?;
        git(&path, &["clean", "-q", "-ffdx"], None).await?;
        Ok(Workspace { path, branch: req.branch.clone(), base_commit: base, mirror })
    }

    /// Ends a session's use of its worktree: cleans and detaches it (the branch stays in the mirror for the
    /// push) and keeps it idle for the next session, or removes it when enough are idle already.
    pub async fn remove(&self, ws: &Workspace, repo: &RepoName) {
        let lock = self.lock(repo);
        let _guard = lock.lock().await;
        self.busy.lock().unwrap().remove(&ws.path);
        let idle = self.idle(repo);
        if idle.len() < self.idle_per_repo {
            let cleaned = async {
                git(&ws.path, &["checkout", "--quiet", "--force", "--detach"], None).await?;
                git(&ws.path, &["clean", "-q", "-ffdx"], None).await?;
                let slot =
                    (0..).map(|n| self.repo_worktrees(repo).join(format!("idle-{n}"))).find(|p| !p.exists()).unwrap();
                git(&ws.mirror, &["worktree", "move", &ws.path.to_string_lossy(), &slot.to_string_lossy()], None).await
            };
            if cleaned.await.is_ok() {
                return;
            }
        }
        remove_worktree(&ws.mirror, &ws.path).await;
    }

    /// Removes every session worktree left behind (after a crash; idle ones stay) and prunes each mirror's
    /// worktree list. Call at start, before any session runs.
    pub async fn prune(&self) -> std::io::Result<()> {
        for owner in std::fs::read_dir(&self.mirrors)? {
            let owner = owner?;
            for mirror in std::fs::read_dir(owner.path())? {
                let mirror = mirror?.path();
                let Some(name) = mirror.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".git"))
                else {
                    continue;
                };
                let dir = self.worktrees.join(owner.file_name()).join(name);
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let keep = entry.file_name().to_str().is_some_and(|n| n.starts_with("idle-"));
                    if !keep {
                        remove_worktree(&mirror, &entry.path()).await;
                    }
                }
                let _ = git(&mirror, &["worktree", "prune"], None).await;
            }
        }
        Ok(())
    }
}

async fn remove_worktree(mirror: &Path, path: &Path) {
    if path.exists() {
        let _ = git(mirror, &["worktree", "remove", "--force", "--force", &path.to_string_lossy()], None).await;
        let _ = std::fs::remove_dir_all(path);
    }
    let _ = git(mirror, &["worktree", "prune"], None).await;
}

fn io_error(e: std::io::Error) -> GitError {
    GitError { args: "(filesystem)".into(), stderr: e.to_string() }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_safe_slugs() {
        assert_eq!(
            branch_name(IssueNumber(7), "Agent sessions: workspaces, prompts!"),
            "foreman/7-agent-sessions-workspaces-prompts"
        );
        assert_eq!(branch_name(IssueNumber(8), "日本語"), "foreman/8");
        assert!(branch_name(IssueNumber(9), &"x ".repeat(100)).len() <= "foreman/9-".len() + 40);
    }

    #[test]
    fn askpass_answers_from_its_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path(), 1).unwrap();
        let run = |prompt: &str| {
            let out = std::process::Command::new(&ws.askpass)
                .arg(prompt)
                .env("FOREMAN_GIT_USERNAME", "x-access-token")
                .env("FOREMAN_GIT_PASSWORD", "ghs_secret")
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("Username for 'https://github.com': "), "x-access-token\n");
        assert_eq!(run("Password for 'https://x-access-token@github.com': "), "ghs_secret\n");
        assert!(!std::fs::read_to_string(&ws.askpass).unwrap().contains("ghs_secret"));
    }
}
