//! Where people see the constitution on GitHub: an invalid file reported on the triggering issue, a
//! check run on a pull request that changes `.github/foreman.toml`, the `/foreman constitution` reply,
//! and `/foreman constitution init`, which opens a pull request adding a starter file.

use std::path::{Path, PathBuf};

use crate::git::{self as g, Git, GitAuth, GitError};
use crate::github::{CheckRun, CheckRunOutput as GithubOutput, CheckRunSpec, Client, Comment, GithubError};
use crate::github::{NewPullRequest, PullRequest};
use crate::ids::{InstallationId, IssueNumber, RepoName};
use crate::report::push::{PushError, PushRequest, Pusher};

use super::ceilings::Ceilings;
use super::fetch::{self, FetchError, ORG_REPO};
use super::load::{ConstitutionError, Origin, PATH, merge, parse_all};
use super::render::{check_run_output, effective_markdown, errors_markdown};
use super::templates::Template;
use crate::markers::CONSTITUTION_INVALID;

/// The name of the check run on pull requests that change `.github/foreman.toml`.
pub const CHECK_NAME: &str = "Foreman constitution";

/// The branch `/foreman constitution init` pushes, after the pusher's prefix (`foreman/` by default).
pub const INIT_BRANCH: &str = "constitution-init";

/// Author and committer of the starter file's commit. GitHub shows it beside the app's push; the
/// address is not an account, so nobody is impersonated.
const COMMIT_IDENTITY: (&str, &str) = ("foreman", "foreman@localhost");

/// Posts `errors` on the issue that triggered the work, as one comment ([`errors_markdown`]) carrying
/// [`CONSTITUTION_INVALID`]: a second report (a retry, a redelivery) updates that comment instead of adding one.
///
/// # Errors
/// GitHub's, after the client's retries.
pub async fn report_invalid(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    issue: IssueNumber,
    errors: &[ConstitutionError],
) -> Result<Comment, GithubError> {
    client.upsert_marked_comment(inst, repo, issue, CONSTITUTION_INVALID, &errors_markdown(errors, None)).await
}

/// Once the constitution loads again, rewrites the comment [`report_invalid`] left on `issue` (if any) to
/// say so, so the thread does not keep showing errors that are fixed. Returns whether there was one to
/// rewrite. Posts nothing when there was none.
///
/// # Errors
/// GitHub's, after the client's retries.
pub async fn resolve_invalid(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    issue: IssueNumber,
) -> Result<bool, GithubError> {
    let Some(comment) = client.find_marked_comment(inst, repo, issue, CONSTITUTION_INVALID).await? else {
        return Ok(false);
    };
    let body = format!(
        "~~Foreman could not use this repository's constitution.~~ `{PATH}` is valid again.\n\n{CONSTITUTION_INVALID}"
    );
    if comment.body != body {
        client.update_comment(inst, repo, comment.id, &body).await?;
    }
    Ok(true)
}

/// Checks a pull request's `.github/foreman.toml` at its head commit `head_sha` and reports it as a check
/// run named [`CHECK_NAME`] on that commit: conclusion `failure` with one annotation per error (line and
/// column) when the file does not validate, `success` with the effective constitution (over the
/// organisation's defaults, held to the server's `ceilings`) when it does.
///
/// Returns `None`, posting nothing, when the file is absent at the head or the same as on the default
/// branch: the pull request does not change it. The check run's `external_id` is
/// `constitution:<head_sha>`: when the commit already has Foreman's run (a redelivered `synchronize`, a
/// retried job) that run is returned and nothing is posted; an ambiguous create is not repeated either.
///
/// # Errors
/// GitHub's, after the client's retries.
pub async fn check_pull_request(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    pull: IssueNumber,
    head_sha: &str,
    ceilings: &Ceilings,
    docs: Option<&str>,
) -> Result<Option<CheckRun>, GithubError> {
    let Some(head) = client.file_at(inst, repo, PATH, Some(head_sha)).await? else {
        return Ok(None);
    };
    let base = client.file_on_default_branch(inst, repo, PATH).await?;
    if base.as_deref() == Some(head.as_str()) {
        return Ok(None);
    }
    let external_id = format!("constitution:{head_sha}");
    if let Some(done) = client
        .check_runs_for(inst, repo, head_sha)
        .await?
        .into_iter()
        .find(|r| r.external_id.as_deref() == Some(external_id.as_str()))
    {
        return Ok(Some(done));
    }
    let (conclusion, output, annotations) = match parse_all(Origin::Repo, &head) {
        Err(errors) => {
            let out = check_run_output(&errors, docs);
            ("failure", GithubOutput { title: out.title, summary: out.summary }, out.annotations)
        }
        Ok(_) => {
            let org = match RepoName::new(repo.owner(), ORG_REPO) {
                Ok(org) if org != *repo => client.file_on_default_branch(inst, &org, PATH).await?,
                _ => None,
            };
            let summary = match merge(org.as_deref(), Some(&head)) {
                Ok(mut effective) => format!(
                    "Pull request #{pull} changes `{PATH}`; it is valid. With it, the rules are:\n\n{}",
                    effective_markdown({
                        effective.apply_ceilings(ceilings);
                        &effective
                    })
                ),
                // The organisation's file is broken: not this pull request's fault, but worth saying.
                Err(errors) => format!(
                    "Pull request #{pull} changes `{PATH}`; it is valid on its own, but:\n\n{}",
                    errors_markdown(&errors, docs)
                ),
            };
            ("success", GithubOutput { title: format!("{PATH} is valid"), summary }, Vec::new())
        }
    };
    let spec = CheckRunSpec {
        name: Some(CHECK_NAME.into()),
        head_sha: Some(head_sha.into()),
        status: Some("completed".into()),
        conclusion: Some(conclusion.into()),
        external_id: Some(external_id),
        output: Some(output),
    };
    client.create_check_run_annotated(inst, repo, &spec, &annotations).await.map(Some)
}

/// The `/foreman constitution` reply's text: the effective constitution held to the server's `ceilings`,
/// with each value's origin (`server` for a ceiling, and what a file asked for when it was capped:
/// [`effective_markdown`]), or, when a file is invalid, its errors ([`errors_markdown`]). Read afresh, not
/// from the cache, so a change just pushed shows.
///
/// # Errors
/// GitHub's, after the client's retries.
pub async fn show_text(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    ceilings: &Ceilings,
    docs: Option<&str>,
) -> Result<String, GithubError> {
    match fetch::load(client, inst, repo).await {
        Ok(mut loaded) => {
            loaded.effective.apply_ceilings(ceilings);
            Ok(effective_markdown(&loaded.effective))
        }
        Err(FetchError::Invalid(errors)) => Ok(errors_markdown(&errors, docs)),
        Err(FetchError::Github(e)) => Err(e),
    }
}

/// Answers `/foreman constitution` on `issue`: posts [`show_text`] as a comment.
///
/// # Errors
/// GitHub's, after the client's retries.
pub async fn show(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    issue: IssueNumber,
    ceilings: &Ceilings,
    docs: Option<&str>,
) -> Result<Comment, GithubError> {
    let text = show_text(client, inst, repo, ceilings, docs).await?;
    client.create_comment(inst, repo, issue, &text).await
}

/// What `/foreman constitution init` did.
#[derive(Clone, Debug)]
pub enum InitOutcome {
    /// A pull request adding the file was opened (or, after an earlier attempt pushed the branch,
    /// brought up to date).
    Opened(PullRequest),
    /// The pull request from an earlier `init` is still open; nothing was pushed.
    AlreadyOpen(PullRequest),
    /// The repository already has `.github/foreman.toml` on its default branch; nothing was pushed.
    AlreadyPresent,
}

/// Why `/foreman constitution init` did not open its pull request. Messages never hold the token.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A GitHub API call failed.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// A local git command failed (fetching the default branch, committing).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The push was refused.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The repository has no clone URL, or the scratch directory could not be made.
    #[error("{0}")]
    Setup(String),
}

impl InitError {
    /// A reply for the person who asked, naming what failed without Foreman's internals (git's and
    /// GitHub's messages are already free of the token).
    pub fn reply(&self, requester: &str) -> String {
        let why = match self {
            InitError::Push(PushError::Auth { .. } | PushError::Rejected { .. }) => {
                "GitHub refused the push of the branch (does the app have `contents: write` here?)".to_owned()
            }
            InitError::Push(PushError::Diverged { branch }) => {
                format!("`{branch}` changed while Foreman was pushing it; ask again")
            }
            InitError::Github(GithubError::Forbidden { .. } | GithubError::Unprocessable { .. }) => {
                "GitHub refused to open the pull request (does the app have `pull_requests: write` here?)".to_owned()
            }
            _ => "GitHub or git failed along the way; ask again in a few minutes".to_owned(),
        };
        format!("@{requester}, I could not open a pull request adding `{PATH}`: {why}.")
    }
}

/// Answers `/foreman constitution init [template]` on `issue`: opens a pull request adding
/// `.github/foreman.toml` from `template` on the branch `<prefix>constitution-init`
/// (`foreman/constitution-init`), and replies on the issue with a link to it.
///
/// The commit is made with plain git in a fresh directory under `scratch` (removed afterwards): the
/// default branch is fetched (depth 1) with a token scoped to `repo` (contents and pull requests: write),
/// the file is committed on top, and the branch is pushed by `pusher` (whose lease replaces only what
/// Foreman pushed or fetched). Idempotent: when the repository already has the file, or the pull request
/// from an earlier `init` is open, it replies so and pushes nothing.
///
/// # Errors
/// [`InitError`]; nothing is posted on the issue then (the caller reports the failure).
#[allow(clippy::too_many_arguments)]
pub async fn init_pull_request(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    issue: IssueNumber,
    template: Template,
    requester: &str,
    pusher: &Pusher,
    scratch: &Path,
) -> Result<InitOutcome, InitError> {
    let info = client.repository(inst, repo).await?;
    let default_branch = info.default_branch.clone().unwrap_or_else(|| "main".into());
    let branch = format!("{}{INIT_BRANCH}", pusher.prefix());
    if client.file_on_default_branch(inst, repo, PATH).await?.is_some() {
        let text = format!(
            "@{requester}, this repository already has `{PATH}` on `{default_branch}`; \
             `/foreman constitution` shows its effective rules."
        );
        client.create_comment(inst, repo, issue, &text).await?;
        return Ok(InitOutcome::AlreadyPresent);
    }
    if let Some(open) = client.pulls_by_head(inst, repo, &branch).await?.into_iter().find(|p| p.state == "open") {
        let text = format!("@{requester}, #{} already proposes a `{PATH}`; review and merge it there.", open.number);
        client.create_comment(inst, repo, issue, &text).await?;
        return Ok(InitOutcome::AlreadyOpen(open));
    }
    let clone_url =
        info.clone_url.clone().ok_or_else(|| InitError::Setup(format!("{repo} has no clone URL in its answer")))?;
    let token = client.session_token(inst, repo).await?;
    let auth = GitAuth::installation_token(token.token);
    let dir = Scratch::new(scratch)?;
    // Foreman's own commit message, scrubbed as everything it writes on GitHub is.
    let message =
        client.scrub(&format!("Add a Foreman constitution ({PATH}, template {})", template.name())).into_owned();
    commit_starter(&dir.0, &clone_url, &default_branch, &branch, template, &message, &auth).await?;
    let expected = remote_branch(&dir.0, &clone_url, &branch, &auth).await?;
    pusher
        .push(&PushRequest {
            git_dir: &dir.0.join(".git"),
            remote_url: &clone_url,
            branch: &branch,
            default_branch: &default_branch,
            expected_remote: expected.as_deref(),
            auth: &auth,
        })
        .await?;
    let pull = client
        .upsert_pull(
            inst,
            repo,
            &NewPullRequest {
                title: format!("Add a Foreman constitution ({PATH})"),
                head: branch.clone(),
                base: default_branch.clone(),
                body: format!(
                    "Adds `{PATH}` from Foreman's `{}` template, as @{requester} asked in #{issue}.\n\n\
                     Every key is optional and documented in docs/constitution.md; unknown keys are refused. \
                     Foreman checks this file on every pull request that changes it.\n\n\
                     To run this repository's sessions on GitHub Actions runners (docs/actions.md), commit the \
                     workflow `foreman actions workflow` prints as `.github/workflows/foreman-session.yml`: \
                     Foreman cannot add it here, since an App needs the `workflows` permission to write \
                     workflow files and Foreman does not ask for it.",
                    template.name()
                ),
                draft: false,
            },
        )
        .await?;
    let text = format!(
        "@{requester}, #{} adds a starter `{PATH}` (template `{}`). Edit it on `{branch}` and merge it to adopt it.",
        pull.number,
        template.name()
    );
    client.create_comment(inst, repo, issue, &text).await?;
    Ok(InitOutcome::Opened(pull))
}

/// A fresh directory under the caller's scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path) -> Result<Self, InitError> {
        let dir = parent.join(format!("constitution-init-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| InitError::Setup(format!("creating {}: {e}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// In `dir`: a new repository whose `refs/heads/<branch>` is the default branch's head plus one commit
/// adding the starter file, committed with `message`.
#[allow(clippy::too_many_arguments)]
async fn commit_starter(
    dir: &Path,
    clone_url: &str,
    default_branch: &str,
    branch: &str,
    template: Template,
    message: &str,
    auth: &GitAuth,
) -> Result<(), InitError> {
    g::init(dir, false).await?;
    let repo = Git::work_tree(dir);
    let remote = if g::is_local_url(clone_url) { repo.clone().local() } else { repo.clone() };
    let fetch = format!("+refs/heads/{default_branch}:refs/remotes/origin/{default_branch}");
    remote.run_with_credentials(&["fetch", "-q", "--no-tags", "--depth=1", clone_url, &fetch], auth).await?;
    repo.run(&["checkout", "-q", "-b", branch, &format!("refs/remotes/origin/{default_branch}")]).await?;
    let file = dir.join(PATH);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| InitError::Setup(format!("creating {PATH}: {e}")))?;
    }
    std::fs::write(&file, template.text()).map_err(|e| InitError::Setup(format!("writing {PATH}: {e}")))?;
    repo.run(&["add", "--", PATH]).await?;
    let (name, email) = COMMIT_IDENTITY;
    repo.run(&[
        "-c",
        &format!("user.name={name}"),
        "-c",
        &format!("user.email={email}"),
        "-c",
        "commit.gpgSign=false",
        "commit",
        "-q",
        "--no-verify",
        "-m",
        message,
    ])
    .await?;
    Ok(())
}

/// The remote branch's commit, when it exists (an earlier `init` whose pull request was closed): the
/// lease for replacing it.
async fn remote_branch(dir: &Path, clone_url: &str, branch: &str, auth: &GitAuth) -> Result<Option<String>, InitError> {
    let repo = Git::work_tree(dir);
    let repo = if g::is_local_url(clone_url) { repo.local() } else { repo };
    let out =
        repo.run_with_credentials(&["ls-remote", "--heads", clone_url, &format!("refs/heads/{branch}")], auth).await?;
    Ok(out.split_whitespace().next().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_failures_are_told_without_internals() {
        let refused = InitError::Push(PushError::Rejected { message: "remote: GH006 at /srv/x".into() });
        let text = refused.reply("alice");
        assert!(text.starts_with("@alice, I could not open a pull request adding `.github/foreman.toml`"), "{text}");
        assert!(!text.contains("/srv/x") && !text.contains("GH006"), "{text}");
        let git = InitError::Git(GitError { args: "fetch -q".into(), stderr: "fatal: /tmp/scratch".into() });
        assert!(!git.reply("alice").contains("/tmp/scratch"));
    }
}
