//! Loading a repository's effective constitution from GitHub: `.github/foreman.toml` on the repository's
//! default branch, over the organisation's defaults in the same path of the owner's `.github` repository
//! (as Probot's `context.config` reads them: <https://probot.github.io/api/latest/classes/context.Context.html#config>),
//! over Foreman's built-in defaults.
//!
//! Both reads go through [`Client::file_on_default_branch`], whose ETag cache makes an unchanged file a
//! free `304 Not Modified`, so loading before every session costs no quota once the files are cached. A
//! missing file has no ETag to revalidate (GitHub's 404 carries none), so [`Cache`] remembers it as missing
//! for [`MISSING_TTL`] instead: most organisations have no `.github/foreman.toml`, and without that entry
//! every repository of the organisation would ask for it again each [`CACHE_TTL`].

use crate::github::{Client, GithubError};
use crate::ids::{InstallationId, RepoName};

use super::ceilings::Ceilings;
use super::load::{ConstitutionError, Effective, PATH, merge};

/// The repository that holds an organisation's (or user's) defaults, as Probot and GitHub's community
/// health files name it.
pub const ORG_REPO: &str = ".github";

/// A repository's effective constitution and the texts it was merged from.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// Built-in defaults < org < repo, each value with its origin.
    pub effective: Effective,
    /// `.github/foreman.toml` of the owner's `.github` repository, when there is one.
    pub org_text: Option<String>,
    /// `.github/foreman.toml` of the repository itself, when there is one.
    pub repo_text: Option<String>,
}

/// Why a constitution could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A file is there but cannot be used; each error carries its file (org or repo), line, column and
    /// key. Fit to show people: [`super::render::errors_markdown`].
    #[error("the constitution is invalid ({} error(s))", .0.len())]
    Invalid(Vec<ConstitutionError>),
    /// GitHub could not be read (after the client's retries).
    #[error("reading the constitution: {0}")]
    Github(#[from] GithubError),
}

/// Reads `.github/foreman.toml` from the repository's default branch and from the organisation's (owner's)
/// `.github` repository (same path, as Probot does), through [`Client::file_on_default_branch`]
/// (ETag-cached), and merges built-in < org < repo ([`merge`]).
///
/// A missing file, or a missing (or unreachable: the installation may not include it) `.github`
/// repository, is not an error: that layer is skipped. When `repo` is itself the owner's `.github`
/// repository its file is read once, as the repository's.
///
/// # Errors
/// [`FetchError::Invalid`] with every error of both files; [`FetchError::Github`] when GitHub fails.
pub async fn load(client: &Client, inst: InstallationId, repo: &RepoName) -> Result<Loaded, FetchError> {
    load_with(client, inst, repo, None).await
}

/// [`load`], skipping the read of a file `missing` remembers as missing and remembering the ones found so.
async fn load_with(
    client: &Client,
    inst: InstallationId,
    repo: &RepoName,
    missing: Option<&Missing>,
) -> Result<Loaded, FetchError> {
    let read = |from: RepoName| async move {
        if missing.is_some_and(|m| m.holds(&from)) {
            return Ok(None);
        }
        let text = client.file_on_default_branch(inst, &from, PATH).await?;
        if let Some(m) = missing {
            m.record(from, text.is_none());
        }
        Ok::<_, GithubError>(text)
    };
    let org_repo = RepoName::new(repo.owner(), ORG_REPO).ok();
    let org_text = match org_repo {
        Some(org) if org != *repo => read(org).await?,
        _ => None,
    };
    let repo_text = read(repo.clone()).await?;
    let effective = merge(org_text.as_deref(), repo_text.as_deref()).map_err(FetchError::Invalid)?;
    Ok(Loaded { effective, org_text, repo_text })
}

/// Where Foreman serves `docs/constitution.md` (the copy built into it: [`DOCS_PATH`] on its HTTP server),
/// for links from error messages to each key's documentation: `{public_url}/docs/constitution.md`. `None`
/// without a public address.
pub fn docs_url(public_url: Option<&str>) -> Option<String> {
    public_url.map(|u| format!("{}{DOCS_PATH}", u.trim_end_matches('/')))
}

/// The path of the constitution's documentation on Foreman's HTTP server.
pub const DOCS_PATH: &str = "/docs/constitution.md";

/// How long a loaded constitution is trusted before it is read again. The inbox worker reads a
/// repository's `[triggers]` for each delivery and the runner its rules for each session; a minute keeps
/// both within two conditional reads per repository per minute, and a changed file takes effect within one.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a missing `.github/foreman.toml` (of a repository or of an organisation's `.github` repository)
/// is taken to be still missing without asking GitHub. It bounds both the wait before a newly added file
/// takes effect (at most five minutes, against [`CACHE_TTL`]'s one for a changed file) and the calls spent on
/// a file that is not there: one `404` per file per five minutes, however many repositories share an
/// organisation and however often their constitutions are read. A file found, or a failed read, is not
/// remembered this way.
pub const MISSING_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Files found missing (by the repository holding them), with when: the negative entries of [`Cache`].
struct Missing {
    ttl: std::time::Duration,
    at: std::sync::Mutex<std::collections::HashMap<RepoName, std::time::Instant>>,
}

impl Missing {
    /// Whether `repo`'s file was found missing less than the time-to-live ago.
    fn holds(&self, repo: &RepoName) -> bool {
        self.at.lock().expect("missing lock").get(repo).is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Records what a read found: missing (a negative entry from now), or there (no entry).
    fn record(&self, repo: RepoName, is_missing: bool) {
        let mut at = self.at.lock().expect("missing lock");
        if !is_missing {
            at.remove(&repo);
            return;
        }
        if at.len() >= CACHE_ENTRIES {
            at.retain(|_, found| found.elapsed() < self.ttl);
        }
        if at.len() < CACHE_ENTRIES {
            at.insert(repo, std::time::Instant::now());
        }
    }
}

/// Cached constitutions by repository, with when each was loaded.
type Entries = std::collections::HashMap<RepoName, (std::sync::Arc<Loaded>, std::time::Instant)>;

/// Constitutions by repository, loaded through [`load`], held to the server's [`Ceilings`]
/// ([`Effective::apply_ceilings`]) and kept for [`CACHE_TTL`]. Only loads that succeed are kept: an invalid
/// file is read (and reported) again each time. A file found missing is not asked for again for
/// [`MISSING_TTL`], whichever repository's constitution needs it. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    client: Client,
    ttl: std::time::Duration,
    ceilings: std::sync::Arc<Ceilings>,
    docs: Option<std::sync::Arc<str>>,
    entries: std::sync::Arc<std::sync::Mutex<Entries>>,
    missing: std::sync::Arc<Missing>,
}

/// Repositories whose constitution the cache holds at most; the oldest entry goes first beyond it.
const CACHE_ENTRIES: usize = 1024;

impl Cache {
    /// A cache reading through `client`, trusting an entry for `ttl`, holding every constitution to
    /// `ceilings` (the server's agent limits: `AgentConfig::ceilings` of the session).
    pub fn new(client: Client, ttl: std::time::Duration, ceilings: Ceilings) -> Self {
        let missing = Missing { ttl: MISSING_TTL, at: Default::default() };
        Self {
            client,
            ttl,
            ceilings: std::sync::Arc::new(ceilings),
            docs: None,
            entries: Default::default(),
            missing: std::sync::Arc::new(missing),
        }
    }

    /// The same cache, linking errors to the documentation at `docs`, the address of `docs/constitution.md`
    /// ([`docs_url`]); `None` names the documentation without a link.
    pub fn with_docs(mut self, docs: Option<String>) -> Self {
        self.docs = docs.map(Into::into);
        self
    }

    /// The address of `docs/constitution.md` error messages link to, when there is one.
    pub fn docs(&self) -> Option<&str> {
        self.docs.as_deref()
    }

    /// The server's ceilings every constitution is held to.
    pub fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    /// The repository's constitution, held to the ceilings: cached, or [`load`]ed.
    ///
    /// # Errors
    /// As [`load`].
    pub async fn get(&self, inst: InstallationId, repo: &RepoName) -> Result<std::sync::Arc<Loaded>, FetchError> {
        if let Some((loaded, at)) = self.entries.lock().expect("cache lock").get(repo)
            && at.elapsed() < self.ttl
        {
            return Ok(loaded.clone());
        }
        let mut loaded = load_with(&self.client, inst, repo, Some(&self.missing)).await?;
        loaded.effective.apply_ceilings(&self.ceilings);
        let loaded = std::sync::Arc::new(loaded);
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= CACHE_ENTRIES
            && let Some(oldest) = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(repo.clone(), (loaded.clone(), std::time::Instant::now()));
        Ok(loaded)
    }
}
