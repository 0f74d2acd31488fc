//! Every git command Foreman runs, one way: hardened against configuration, hooks and programs Foreman does
//! not own, and with the installation token kept out of every environment and command line.
//!
//! A repository Foreman works on may have been written by an agent (its clone's `.git`, its working tree's
//! `.gitattributes`), and git runs programs named in configuration (hooks, `core.fsmonitor`, filters,
//! external diff drivers, credential helpers, `core.sshCommand`). So every command built here:
//!
//! - names its repository explicitly (`--git-dir`, and `--work-tree` for a checkout): git never discovers a
//!   repository by walking up from a directory, so a missing or replaced `.git` cannot send a command into a
//!   parent repository;
//! - starts from an empty environment (`env_clear`) and gets only [`PASSED_THROUGH`] from Foreman's
//!   environment (the search path, proxies, certificate locations), `LC_ALL=C`, a `HOME` that is a private
//!   empty directory of this process, no system or global configuration (`GIT_CONFIG_NOSYSTEM`,
//!   `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_ATTR_NOSYSTEM`), no replace objects, and no terminal prompt;
//! - overrides, on the command line (which wins over every configuration file), what would run a program or
//!   change what git reports: no hooks (`core.hooksPath=/dev/null`), no fsmonitor, no commit-graph or
//!   multi-pack-index (files an agent could forge), no attribute or exclude file outside the repository, no
//!   credential helper but Foreman's, no submodule recursion, and no transport but HTTP(S) unless the
//!   command is marked [`Git::local`] (a fetch between Foreman's own repositories on disk);
//! - gives credentials, when needed, through a credential helper that reads them from an inherited pipe
//!   (file descriptor 3): the token is in no environment variable, no argument and no file.
//!
//! Diff commands must still say `--no-ext-diff` and `--no-textconv` (git has no configuration that turns
//! them off); Foreman's callers do.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// Variables passed through from Foreman's environment to git: the program search path, and what HTTPS
/// through a proxy needs. No credentials of Foreman's live in these.
pub const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// The search path when Foreman's environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Configuration given on every command line (`-c key=value`), over anything in a configuration file.
const HARDENED: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.commitGraph=false",
    "core.multiPackIndex=false",
    "core.useReplaceRefs=false",
    "core.attributesFile=/dev/null",
    "core.excludesFile=/dev/null",
    "core.askPass=",
    "core.quotePath=false",
    "credential.helper=",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no",
    "gc.autoDetach=false",
    "safe.bareRepository=explicit",
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.http.allow=always",
];

/// The credential helper: on `get`, answers with what Foreman wrote into file descriptor 3 (git gives the
/// helper's arguments after the string; its request on stdin is read and dropped).
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { cat >/dev/null; if [ \"$1\" = get ]; then cat <&3; fi; }; f";

/// The file descriptor the credentials are read from in git's processes.
const CREDENTIAL_FD: i32 = 3;

/// Credentials for HTTPS: an installation token is used with the username `x-access-token`
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

/// A git command that failed, with its stderr (credentials are never part of it: they are never in an
/// argument, and git does not print what a credential helper answered).
#[derive(Debug, thiserror::Error)]
#[error("git {args} failed: {stderr}")]
pub struct GitError {
    /// The arguments, for the message.
    pub args: String,
    /// What git wrote on stderr, trimmed (or why it could not run).
    pub stderr: String,
}

impl GitError {
    /// An error that is not git's own (a filesystem step around it), described by `what`.
    pub fn other(what: &str, message: impl std::fmt::Display) -> Self {
        Self { args: format!("({what})"), stderr: message.to_string() }
    }
}

/// One repository, as Foreman's git commands see it.
#[derive(Clone, Debug)]
pub struct Git {
    git_dir: PathBuf,
    work_tree: Option<PathBuf>,
    local: bool,
}

impl Git {
    /// A bare repository whose git directory is `git_dir` (a mirror).
    pub fn bare(git_dir: impl Into<PathBuf>) -> Self {
        Self { git_dir: git_dir.into(), work_tree: None, local: false }
    }

    /// A repository with a working tree at `dir` and its git directory at `dir/.git`. The caller checks
    /// that `dir/.git` is a directory Foreman owns before running anything that matters (see
    /// [`crate::session::workspace::reclaim`]); git is told both paths and discovers nothing.
    pub fn work_tree(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self { git_dir: dir.join(".git"), work_tree: Some(dir), local: false }
    }

    /// Allows the local transport (`protocol.file.allow=always`) for this command: a fetch from or a
    /// clone of a repository on disk. Only for repositories Foreman has reclaimed or owns.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// The git directory.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// Runs `git args…` and returns stdout (lossily decoded).
    ///
    /// # Errors
    /// [`GitError`] when git cannot start or exits non-zero.
    pub async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_inner(args, None).await
    }

    /// Runs `git args…` with `auth` offered through the credential helper (module docs).
    ///
    /// # Errors
    /// [`GitError`] when git cannot start or exits non-zero (a refused token among them).
    pub async fn run_with_credentials(&self, args: &[&str], auth: &GitAuth) -> Result<String, GitError> {
        self.run_inner(args, Some(auth)).await
    }

    async fn run_inner(&self, args: &[&str], auth: Option<&GitAuth>) -> Result<String, GitError> {
        let fail = |e: &dyn std::fmt::Display| GitError { args: args.join(" "), stderr: e.to_string() };
        let mut cmd = base_command();
        cmd.arg("--git-dir").arg(&self.git_dir);
        if let Some(w) = &self.work_tree {
            cmd.arg("--work-tree").arg(w).current_dir(w);
        } else {
            cmd.current_dir(&self.git_dir);
        }
        cmd.args(["-c", if self.local { "protocol.file.allow=always" } else { "protocol.file.allow=never" }]);
        // Keeps the pipe's reading end open until git has started (it then holds its own copy on fd 3).
        let mut _credentials = None;
        if let Some(auth) = auth {
            cmd.args(["-c", CREDENTIAL_HELPER]);
            let reader = credential_pipe(auth).map_err(|e| fail(&e))?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
            // SAFETY: between fork and exec only async-signal-safe calls are made (dup2, fcntl).
            unsafe {
                cmd.pre_exec(move || {
                    if fd == CREDENTIAL_FD {
                        let flags = libc::fcntl(fd, libc::F_GETFD);
                        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, CREDENTIAL_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            _credentials = Some(reader);
        }
        cmd.args(args);
        let child = cmd.spawn().map_err(|e| fail(&e))?;
        drop(_credentials);
        let out = child.wait_with_output().await.map_err(|e| fail(&e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(GitError { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
        }
    }
}

/// Creates a repository at `path` with `git init` and no templates (no sample hooks, no `info/exclude`);
/// `bare` for a mirror. Its configuration is then Foreman's to write.
///
/// # Errors
/// [`GitError`] when git fails.
pub async fn init(path: &Path, bare: bool) -> Result<(), GitError> {
    let mut cmd = base_command();
    cmd.current_dir("/").args(["-c", "protocol.file.allow=never", "init", "--quiet", "--template="]);
    if bare {
        cmd.arg("--bare");
    }
    cmd.arg(path);
    let out = cmd.output().await.map_err(|e| GitError::other("git init", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(GitError { args: "init".into(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

/// The command every git run starts from: the program, the environment (module docs) and the hardened
/// configuration.
fn base_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("git");
    cmd.env_clear();
    for name in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    let home = home();
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    for setting in HARDENED {
        cmd.args(["-c", setting]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// `HOME` (and `XDG_CONFIG_HOME`) for git: an empty directory of this process, created once (mode 0700)
/// under the system's temporary directory, so git finds no user file there; `/dev/null` (not a directory,
/// nothing can be under it) if it cannot be created.
fn home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("foreman-git-home-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => dir,
            Err(_) => PathBuf::from("/dev/null"),
        }
    })
}

/// A pipe holding `username=…\npassword=…\n` for git's credential protocol, closed for writing: its
/// reading end, to hand to git on fd 3.
fn credential_pipe(auth: &GitAuth) -> std::io::Result<std::io::PipeReader> {
    let token = auth.token.expose_secret();
    if [auth.username.as_str(), token].iter().any(|s| s.contains(['\n', '\0'])) {
        return Err(std::io::Error::other("credentials must not contain a newline or NUL"));
    }
    let (reader, mut writer) = std::io::pipe()?;
    let text = SecretString::from(format!("username={}\npassword={token}\n", auth.username));
    // A credential record is well under a pipe's capacity (64 KiB on Linux), so this never blocks.
    writer.write_all(text.expose_secret().as_bytes())?;
    Ok(reader)
}

/// Whether `url` names a repository on this machine (a `file://` URL or a path), which only the local
/// transport reaches: a caller marks such a command [`Git::local`].
pub fn is_local_url(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || (!url.contains("://") && !url.contains(':'))
}

/// How a file changed between two commits (git's `--name-status` letters). Renames are not detected
/// (`--no-renames`): a moved file is a deletion plus an addition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// `A`
    Added,
    /// `M`
    Modified,
    /// `D`
    Deleted,
    /// `T`: the type changed (e.g. a file became a symlink).
    TypeChanged,
}

/// One changed file between two commits, as [`changed_files`] reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The path, relative to the repository root, `/`-separated.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// Lines added; 0 for a binary file.
    pub added: u64,
    /// Lines deleted; 0 for a binary file.
    pub deleted: u64,
    /// Whether git counted it as binary (`-\t-` in `--numstat`).
    pub binary: bool,
}

/// The options every diff Foreman reads is run with: no rename detection, no colour, and no external diff
/// driver or text conversion (programs a repository's configuration could name).
pub const DIFF_OPTIONS: [&str; 4] = ["--no-renames", "--no-color", "--no-ext-diff", "--no-textconv"];

/// The files changed from `base` to `head` (commits, or anything `git diff` takes) in `repo`, in git's
/// order, each with how it changed and its line counts: `git diff --name-status -z` and
/// `git diff --numstat -z`, both with [`DIFF_OPTIONS`].
///
/// # Errors
/// [`GitError`] when git fails (e.g. `base` is unknown) or its output is not what `-z` promises.
pub async fn changed_files(repo: &Git, base: &str, head: &str) -> Result<Vec<FileChange>, GitError> {
    let range = [base, head];
    let status = repo.run(&[&["diff", "--name-status", "-z"][..], &DIFF_OPTIONS, &range].concat()).await?;
    let numstat = repo.run(&[&["diff", "--numstat", "-z"][..], &DIFF_OPTIONS, &range].concat()).await?;
    let mut files =
        parse_name_status(&status).ok_or_else(|| GitError::other("git diff --name-status", "unexpected output"))?;
    let counts = parse_numstat(&numstat).ok_or_else(|| GitError::other("git diff --numstat", "unexpected output"))?;
    for count in counts {
        if let Some(file) = files.iter_mut().find(|f| f.path == count.path) {
            file.binary = count.binary;
            file.added = count.added;
            file.deleted = count.deleted;
        }
    }
    Ok(files)
}

/// Parses `git diff --name-status -z --no-renames` output: `X\0path\0` repeated, each file with zero line
/// counts. `None` when a letter has no path after it.
fn parse_name_status(out: &str) -> Option<Vec<FileChange>> {
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(letter) = fields.next() {
        let path = fields.next()?;
        let kind = match letter.chars().next() {
            Some('A') => ChangeKind::Added,
            Some('D') => ChangeKind::Deleted,
            Some('T') => ChangeKind::TypeChanged,
            _ => ChangeKind::Modified,
        };
        files.push(FileChange { path: path.to_owned(), kind, added: 0, deleted: 0, binary: false });
    }
    Some(files)
}

/// Parses `git diff --numstat -z --no-renames` output: `added\tdeleted\tpath\0` repeated, `-\t-` for binary
/// files; each record as a [`FileChange`] whose kind is [`ChangeKind::Modified`] (numstat does not say).
/// `None` when a record has fewer than three fields.
fn parse_numstat(out: &str) -> Option<Vec<FileChange>> {
    out.split('\0')
        .filter(|r| !r.is_empty())
        .map(|record| {
            let mut parts = record.splitn(3, '\t');
            let (added, deleted, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(FileChange {
                path: path.to_owned(),
                kind: ChangeKind::Modified,
                binary: added == "-",
                added: added.parse().unwrap_or(0),
                deleted: deleted.parse().unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_records_are_parsed_and_binary_files_flagged() {
        let out = "3\t1\tsrc/a b.rs\0-\t-\timg.png\x000\t2\tgone\0";
        let got = parse_numstat(out).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].path.as_str(), got[0].added, got[0].deleted, got[0].binary), ("src/a b.rs", 3, 1, false));
        assert_eq!((got[1].path.as_str(), got[1].added, got[1].binary), ("img.png", 0, true));
        assert_eq!(parse_numstat("").unwrap(), vec![]);
        assert_eq!(parse_numstat("3\t1\0"), None);
    }

    #[test]
    fn name_status_records_are_parsed_with_their_kind() {
        let got = parse_name_status("A\0new file\0M\0src/a.rs\0D\0gone\0T\0link\0").unwrap();
        let kinds: Vec<_> = got.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("new file", ChangeKind::Added),
                ("src/a.rs", ChangeKind::Modified),
                ("gone", ChangeKind::Deleted),
                ("link", ChangeKind::TypeChanged)
            ]
        );
        assert_eq!(parse_name_status("M\0"), None);
    }

    #[test]
    fn local_urls_are_told_from_remote_ones() {
        for local in ["/srv/git/r.git", "file:///srv/git/r.git", "relative/r.git"] {
            assert!(is_local_url(local), "{local}");
        }
        for remote in ["https://github.com/o/r.git", "http://127.0.0.1:1/o/r.git", "git@github.com:o/r.git"] {
            assert!(!is_local_url(remote), "{remote}");
        }
    }

    #[test]
    fn credentials_with_a_newline_are_refused() {
        let auth = GitAuth::installation_token(SecretString::from("ghs_x\nprotocol=file".to_owned()));
        assert!(credential_pipe(&auth).is_err());
        let auth = GitAuth::installation_token(SecretString::from("ghs_x".to_owned()));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut credential_pipe(&auth).unwrap(), &mut text).unwrap();
        assert_eq!(text, "username=x-access-token\npassword=ghs_x\n");
    }

    /// Git run through [`Git`] sees none of this process's environment but the allowlist (what git hands to
    /// a program it runs, printed by a shell alias), and no user or system configuration.
    #[tokio::test]
    async fn git_sees_only_the_hardened_environment_and_configuration() {
        let dir = std::env::temp_dir().join(format!("foreman-git-test-{}", uuid::Uuid::new_v4()));
        init(&dir, true).await.unwrap();
        let vars = Git::bare(&dir).run(&["var", "-l"]).await.unwrap();
        assert!(vars.contains("core.hookspath=/dev/null"), "{vars}");
        assert!(vars.contains("core.fsmonitor=false"), "{vars}");
        let env = Git::bare(&dir).run(&["-c", "alias.showenv=!env", "showenv"]).await.unwrap();
        let own = ["HOME", "XDG_CONFIG_HOME", "LC_ALL", "LANG", "PWD", "OLDPWD", "SHLVL", "_"];
        for name in env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k) {
            let allowed = PASSED_THROUGH.contains(&name) || own.contains(&name) || name.starts_with("GIT_");
            assert!(allowed, "{name} reached git's environment: {env}");
        }
        assert!(env.contains("GIT_CONFIG_NOSYSTEM=1") && env.contains("GIT_CONFIG_GLOBAL=/dev/null"), "{env}");
        assert!(!dir.join("hooks").exists(), "no template was copied");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
