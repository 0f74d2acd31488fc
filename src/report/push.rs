//! Pushing a session's branch to the repository over HTTPS with an installation token.
//!
//! The rules (ARCHITECTURE.md invariants), checked here and not left to callers:
//! - only branches under Foreman's prefix (`foreman/` by default) and never the repository's default
//!   branch: anything else is refused before any git or network call ([`PushError::NotForemanBranch`],
//!   [`PushError::DefaultBranch`]);
//! - never force over commits Foreman did not make: every push is
//!   `git push --force-with-lease=refs/heads/<branch>:<expected>` where `<expected>` is the remote branch's
//!   commit as Foreman last pushed or fetched it ([`PushRequest::expected_remote`]; `None`: the branch must
//!   not exist remotely). Foreman may replace its own earlier push (a run with no open pull request of
//!   Foreman's starts again from the default branch; the runner first checks that the branch is Foreman's
//!   own, [`crate::job::PushRecord`]), but a commit someone else pushed to the branch makes the push fail
//!   with [`PushError::Diverged`] and stays on the remote untouched;
//! - the token is never in a URL, an argument, an environment variable, a log line or an error: git reads it
//!   from a pipe through [`crate::git`]'s credential helper, a remote URL with credentials in it is refused,
//!   and every error message is redacted ([`crate::github::redact::redact_exact`]).
//!
//! The push runs from the mirror, which only Foreman writes, with [`crate::git`]'s hardened git (no hook,
//! no configuration but Foreman's); `--no-verify` says the same for the pre-push hook.
//!
//! After a successful push the mirror's `refs/remotes/origin/<branch>` is set to the pushed commit, so
//! [`remote_tracking`] answers "what Foreman last pushed or fetched" for the next push's lease.

use std::path::Path;

use secrecy::ExposeSecret;

use crate::git::{Git, GitAuth};
use crate::github::redact::redact_exact;

/// The default branch prefix: Foreman only pushes `foreman/…` branches.
pub const DEFAULT_PREFIX: &str = "foreman/";

/// Why a push did not happen. Messages never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// The branch is not under Foreman's prefix, or is not a valid branch name. Nothing was run.
    #[error("refusing to push {branch:?}: Foreman only pushes branches under {prefix:?}")]
    NotForemanBranch {
        /// The branch asked for.
        branch: String,
        /// The configured prefix.
        prefix: String,
    },
    /// The branch is the repository's default branch. Nothing was run.
    #[error("refusing to push {branch:?}: it is the repository's default branch")]
    DefaultBranch {
        /// The branch asked for.
        branch: String,
    },
    /// The remote URL carries credentials; tokens go through the credential helper only. Nothing was run.
    #[error("refusing to push: the remote URL carries credentials")]
    CredentialsInUrl,
    /// The remote branch is not where Foreman left it (someone else pushed to it, or it appeared since):
    /// nothing was changed on the remote.
    #[error("the remote branch {branch:?} has commits Foreman did not make; not pushing over them")]
    Diverged {
        /// The branch.
        branch: String,
    },
    /// The token was refused, has expired, lacks `contents: write`, or cannot reach this repository (GitHub
    /// answers "Repository not found" to a token scoped to other repositories).
    #[error("the push was not authorised: {message}")]
    Auth {
        /// Git's message, redacted.
        message: String,
    },
    /// The remote refused the update (a protected branch rule, a push hook: GitHub's `GH006` and the like).
    #[error("the remote rejected the push: {message}")]
    Rejected {
        /// Git's message, redacted.
        message: String,
    },
    /// Anything else git reported (no such local branch, network unreachable…).
    #[error("git push failed: {message}")]
    Git {
        /// Git's message, redacted.
        message: String,
    },
}

/// One push.
#[derive(Clone, Debug)]
pub struct PushRequest<'a> {
    /// The git directory of a bare repository holding `refs/heads/<branch>`: the repository's mirror.
    pub git_dir: &'a Path,
    /// The repository's clone URL (`https://github.com/o/r.git`). Must not carry credentials.
    pub remote_url: &'a str,
    /// The branch to push, the same name locally and remotely, e.g. `foreman/7-add-a-thing`.
    pub branch: &'a str,
    /// The repository's default branch (from the repository's `default_branch`), never pushed.
    pub default_branch: &'a str,
    /// The remote branch's commit (full SHA) as Foreman last pushed or fetched it, `None` when Foreman knows
    /// of no remote branch (then the push fails if one exists). See [`remote_tracking`].
    pub expected_remote: Option<&'a str>,
    /// The installation token (needs `contents: write` on the repository).
    pub auth: &'a GitAuth,
}

/// A successful push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The commit the remote branch now points at (full SHA).
    pub sha: String,
}

/// Pushes branches under one prefix.
#[derive(Clone, Debug)]
pub struct Pusher {
    prefix: String,
}

impl Pusher {
    /// `prefix` is the branch prefix Foreman owns ([`DEFAULT_PREFIX`]). An empty prefix, or one not ending
    /// in `/`, is rejected: it would let Foreman push branches it does not own.
    pub fn new(prefix: impl Into<String>) -> Result<Self, PushError> {
        let prefix = prefix.into();
        if prefix.is_empty() || !prefix.ends_with('/') || prefix == "/" {
            return Err(PushError::NotForemanBranch { branch: String::new(), prefix });
        }
        Ok(Self { prefix })
    }

    /// The branch prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Foreman may push `branch` to a repository whose default branch is `default_branch`: under
    /// the prefix, something after it, not the default branch, and a valid branch name (no `:`, `..`,
    /// spaces, control characters, `~^?*[\`, `@{`, no leading `-` or `.`, no trailing `/`, `.` or
    /// `.lock`), so it cannot smuggle a second refspec into the push.
    pub fn check_branch(&self, branch: &str, default_branch: &str) -> Result<(), PushError> {
        let not_ours = || PushError::NotForemanBranch { branch: branch.to_owned(), prefix: self.prefix.clone() };
        if branch == default_branch {
            return Err(PushError::DefaultBranch { branch: branch.to_owned() });
        }
        let Some(rest) = branch.strip_prefix(&self.prefix) else { return Err(not_ours()) };
        let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c) || !c.is_ascii();
        let bad_component = |c: &str| c.is_empty() || c.starts_with('.') || c.starts_with('-') || c.ends_with(".lock");
        if rest.is_empty()
            || branch.chars().any(bad_char)
            || branch.contains("..")
            || branch.contains("@{")
            || branch.ends_with('.')
            || branch.split('/').any(bad_component)
        {
            return Err(not_ours());
        }
        Ok(())
    }

    /// Pushes `refs/heads/<branch>` of `req.git_dir` to the same branch of `req.remote_url`, with the lease
    /// described in the module docs, and records the pushed commit as `refs/remotes/origin/<branch>`.
    /// Pushing a commit the remote branch already has is a success with no change.
    ///
    /// Errors: [`PushError::NotForemanBranch`], [`PushError::DefaultBranch`] and
    /// [`PushError::CredentialsInUrl`] before anything runs; then [`PushError::Diverged`],
    /// [`PushError::Auth`], [`PushError::Rejected`] or [`PushError::Git`] from git's answer.
    pub async fn push(&self, req: &PushRequest<'_>) -> Result<Pushed, PushError> {
        self.check_branch(req.branch, req.default_branch)?;
        if url_has_credentials(req.remote_url) {
            return Err(PushError::CredentialsInUrl);
        }
        let secret = req.auth.token.expose_secret();
        let local_ref = format!("refs/heads/{}", req.branch);
        let repo = Git::bare(req.git_dir);
        let sha = repo
            .run(&["rev-parse", "--verify", "--quiet", &format!("{local_ref}^{{commit}}")])
            .await
            .map_err(|e| PushError::Git { message: redact_exact(&format!("no local branch: {}", e.stderr), secret) })?
            .trim()
            .to_owned();
        let lease = format!("--force-with-lease={local_ref}:{}", req.expected_remote.unwrap_or(""));
        let refspec = format!("{local_ref}:{local_ref}");
        let pushed = repo
            .run_with_credentials(
                &["push", "--quiet", "--no-verify", "--no-follow-tags", &lease, req.remote_url, &refspec],
                req.auth,
            )
            .await;
        if let Err(e) = pushed {
            return Err(classify(req.branch, &redact_exact(&e.stderr, secret)));
        }
        let tracking = format!("refs/remotes/origin/{}", req.branch);
        repo.run(&["update-ref", &tracking, &sha])
            .await
            .map_err(|e| PushError::Git { message: redact_exact(&e.stderr, secret) })?;
        Ok(Pushed { sha })
    }
}

/// The commit Foreman last pushed or fetched for `branch` in `git_dir` (`refs/remotes/origin/<branch>`),
/// `None` when it has none. The mirror's fetches and [`Pusher::push`] keep this ref.
pub async fn remote_tracking(git_dir: &Path, branch: &str) -> Option<String> {
    let r = format!("refs/remotes/origin/{branch}^{{commit}}");
    Git::bare(git_dir).run(&["rev-parse", "--verify", "--quiet", &r]).await.ok().map(|s| s.trim().to_owned())
}

/// The commit the remote's `branch` points at now (`git ls-remote`), `None` when it has no such branch.
/// Read to tell whether a branch is where Foreman recorded pushing it ([`crate::job::PushRecord`]): a crash
/// between a push and the mirror's `refs/remotes/origin/<branch>` (or the outcome's record) leaves both
/// behind the remote. Runs in `git_dir` (the mirror) with the installation token from a pipe.
///
/// Errors: [`PushError::CredentialsInUrl`] before anything runs; [`PushError::Auth`] or
/// [`PushError::Git`] from git's answer (redacted).
pub async fn remote_head(
    git_dir: &Path,
    remote_url: &str,
    branch: &str,
    auth: &GitAuth,
) -> Result<Option<String>, PushError> {
    if url_has_credentials(remote_url) {
        return Err(PushError::CredentialsInUrl);
    }
    let secret = auth.token.expose_secret();
    let full = format!("refs/heads/{branch}");
    let out = Git::bare(git_dir)
        .run_with_credentials(&["ls-remote", "--heads", remote_url, &full], auth)
        .await
        .map_err(|e| classify(branch, &redact_exact(&e.stderr, secret)))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, name)| *name == full)
        .map(|(sha, _)| sha.trim().to_owned()))
}

/// Sets the mirror's `refs/remotes/origin/<branch>` to `sha`: the remote branch was seen there (by
/// [`remote_head`]), so the next push's lease expects it.
///
/// Errors: [`PushError::Git`] when git cannot write the ref (an unknown commit among the causes).
pub async fn set_remote_tracking(git_dir: &Path, branch: &str, sha: &str) -> Result<(), PushError> {
    let tracking = format!("refs/remotes/origin/{branch}");
    Git::bare(git_dir)
        .run(&["update-ref", &tracking, sha])
        .await
        .map(|_| ())
        .map_err(|e| PushError::Git { message: e.stderr })
}

/// Whether `url` has a userinfo part (`scheme://user[:password]@host/…`).
fn url_has_credentials(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// Maps git's (already redacted) stderr onto a [`PushError`]. Git's own phrases, `LC_ALL=C`:
/// `(stale info)` is a failed lease; `(fetch first)`/`(non-fast-forward)` cannot happen with a lease but
/// mean the same; `[remote rejected]` and `GH006` are the server's refusal.
fn classify(branch: &str, message: &str) -> PushError {
    let message = message.trim().to_owned();
    let has = |s: &str| message.contains(s);
    if has("(stale info)") || has("(fetch first)") || has("(non-fast-forward)") {
        PushError::Diverged { branch: branch.to_owned() }
    } else if has("Authentication failed")
        || has("Repository not found")
        || (has("repository '") && has("' not found"))
        || has("could not read Username")
        || has("could not read Password")
        || has("returned error: 401")
        || has("returned error: 403")
        || has("Permission to")
        || has("Write access to repository not granted")
    {
        PushError::Auth { message }
    } else if has("[remote rejected]") || has("GH006") || has("pre-receive hook declined") {
        PushError::Rejected { message }
    } else {
        PushError::Git { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher() -> Pusher {
        Pusher::new(DEFAULT_PREFIX).unwrap()
    }

    #[test]
    fn only_valid_branches_under_the_prefix() {
        let p = pusher();
        assert_eq!(p.check_branch("foreman/7-add-a-thing", "main"), Ok(()));
        assert_eq!(p.check_branch("main", "main"), Err(PushError::DefaultBranch { branch: "main".into() }));
        assert!(matches!(p.check_branch("foreman/x", "foreman/x"), Err(PushError::DefaultBranch { .. })));
        for bad in [
            "develop",
            "foreman/",
            "foreman",
            "foremanx/1",
            "foreman/a:refs/heads/main",
            "foreman/a..b",
            "foreman/a b",
            "foreman/x.lock",
            "foreman//x",
            "foreman/-x",
            "foreman/.x",
            "foreman/x/",
            "foreman/a@{1}",
            "foreman/é",
            "+foreman/x",
        ] {
            assert!(matches!(p.check_branch(bad, "main"), Err(PushError::NotForemanBranch { .. })), "{bad}");
        }
        assert!(Pusher::new("").is_err());
        assert!(Pusher::new("foreman").is_err());
        assert!(Pusher::new("bots/foreman/").is_ok());
    }

    #[test]
    fn credentials_in_urls_are_spotted() {
        assert!(url_has_credentials("https://x-access-token:ghs_x@github.com/o/r.git"));
        assert!(url_has_credentials("http://user@127.0.0.1:1/o/r.git"));
        assert!(!url_has_credentials("https://github.com/o/r.git"));
        assert!(!url_has_credentials("https://github.com/o/r@x.git"));
        assert!(!url_has_credentials("/srv/git/o/r.git"));
    }

    #[test]
    fn git_messages_are_classified() {
        let b = "foreman/1";
        let stale = " ! [rejected]        foreman/1 -> foreman/1 (stale info)\nerror: failed to push some refs";
        assert_eq!(classify(b, stale), PushError::Diverged { branch: b.into() });
        assert!(matches!(
            classify(b, "remote: Repository not found.\nfatal: repository 'http://h/o/r.git/' not found"),
            PushError::Auth { .. }
        ));
        assert!(matches!(
            classify(b, "remote: error: GH006: Protected branch update failed\n ! [remote rejected] main -> main"),
            PushError::Rejected { .. }
        ));
        assert!(matches!(classify(b, "fatal: unable to access: Connection refused"), PushError::Git { .. }));
    }
}
