//! Git: repositories are bare repositories under `state_dir/repos/{owner}/{name}.git`, served
//! over smart HTTP by `git http-backend` (CGI) behind installation-token basic auth.
//!
//! Auth as on github.com: username anything (`x-access-token` by convention), password the
//! installation token. Fetching needs `contents: read`, pushing `contents: write`. A repository
//! whose `protected` flag is set refuses pushes to its default branch from a pre-receive hook,
//! with GitHub's `GH006` message.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

use crate::server::{Inner, Req, Resp, RespBody};

const PRE_RECEIVE: &str = r#"#!/bin/sh
# github-sim branch protection: refuse updates to the protected branch.
[ -z "$SIM_PROTECTED_BRANCH" ] && exit 0
while read old new ref; do
  if [ "$ref" = "refs/heads/$SIM_PROTECTED_BRANCH" ]; then
    echo "error: GH006: Protected branch update failed for $ref." >&2
    echo "error: Changes must be made through a pull request." >&2
    exit 1
  fi
done
exit 0
"#;

/// Runs git with a fixed identity and no user configuration; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "github-sim")
        .env("GIT_AUTHOR_EMAIL", "sim@github-sim.invalid")
        .env("GIT_COMMITTER_NAME", "github-sim")
        .env("GIT_COMMITTER_EMAIL", "sim@github-sim.invalid")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        anyhow::bail!("git {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a bare repository with `files` in one commit on `main`.
pub fn init_repo(git_dir: &Path, files: &BTreeMap<String, String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(git_dir)?;
    git(git_dir, &["init", "--bare", "--quiet", "--initial-branch=main"])?;
    std::fs::write(git_dir.join("hooks").join("pre-receive"), PRE_RECEIVE)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(git_dir.join("hooks").join("pre-receive"), std::fs::Permissions::from_mode(0o755))?;
    }
    let work = tempfile::tempdir()?;
    let mut files = files.clone();
    if files.is_empty() {
        files.insert("README.md".into(), "# repository\n".into());
    }
    for (path, content) in &files {
        let p = work.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
    }
    let gd = git_dir.to_string_lossy().into_owned();
    let wt = work.path().to_string_lossy().into_owned();
    let index = work.path().join(".sim-index");
    let out = Command::new("git")
        .args(["--git-dir", &gd, "--work-tree", &wt, "add", "-A", "."])
        .env("GIT_INDEX_FILE", &index)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .current_dir(work.path())
        .output()?;
    anyhow::ensure!(out.status.success(), "git add: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("git")
        .args(["--git-dir", &gd, "--work-tree", &wt, "commit", "--quiet", "-m", "Initial commit"])
        .env("GIT_INDEX_FILE", &index)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "github-sim")
        .env("GIT_AUTHOR_EMAIL", "sim@github-sim.invalid")
        .env("GIT_COMMITTER_NAME", "github-sim")
        .env("GIT_COMMITTER_EMAIL", "sim@github-sim.invalid")
        .current_dir(work.path())
        .output()?;
    anyhow::ensure!(out.status.success(), "git commit: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The object id a revision names, if it exists.
pub fn rev_parse(git_dir: &Path, rev: &str) -> Option<String> {
    git(git_dir, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{object}}")]).ok().map(|s| s.trim().to_string())
}

/// Commits reachable from `head` and not from `base`, oldest first.
pub fn commits_between(git_dir: &Path, base: &str, head: &str) -> Vec<String> {
    git(git_dir, &["rev-list", "--reverse", &format!("{base}..{head}")])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A file at a revision: its blob id and bytes.
pub fn read_file(git_dir: &Path, rev: &str, path: &str) -> Option<(String, Vec<u8>)> {
    let spec = format!("{rev}:{path}");
    let sha = git(git_dir, &["rev-parse", "--verify", "--quiet", &spec]).ok()?.trim().to_string();
    let kind = git(git_dir, &["cat-file", "-t", &sha]).ok()?;
    if kind.trim() != "blob" {
        return None;
    }
    let out = Command::new("git").args(["cat-file", "blob", &sha]).current_dir(git_dir).output().ok()?;
    out.status.success().then_some((sha, out.stdout))
}

/// True for smart-HTTP paths: `/{owner}/{name}.git/...`.
pub(crate) fn is_git_path(path: &str) -> bool {
    let mut segs = path.trim_start_matches('/').splitn(3, '/');
    let (Some(_owner), Some(name)) = (segs.next(), segs.next()) else { return false };
    name.ends_with(".git")
}

fn unauthorized() -> Resp {
    Resp::empty(401).header("www-authenticate", "Basic realm=\"GitHub\"")
}

/// Serves a smart-HTTP request through `git http-backend`.
pub(crate) async fn handle(inner: &Inner, req: &Req) -> Resp {
    let mut segs = req.path.trim_start_matches('/').splitn(3, '/');
    let owner = segs.next().unwrap_or_default().to_string();
    let name = segs.next().unwrap_or_default().trim_end_matches(".git").to_string();
    let full = format!("{owner}/{name}");
    let push = req.q("service") == Some("git-receive-pack") || req.path.ends_with("/git-receive-pack");
    let password = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()));
    let Some(password) = password else { return unauthorized() };
    let (git_dir, protected) = {
        let w = inner.world();
        let Some(t) = w.tokens.get(&password).filter(|t| t.expires_at > time::OffsetDateTime::now_utc()).cloned()
        else {
            return unauthorized();
        };
        let Some(repo) = w.repos.get(&full) else { return Resp::error(404, "Repository not found.") };
        let account_ok = w.installations.get(&t.installation).is_some_and(|i| i.account == repo.owner);
        let repo_ok = t.repositories.as_ref().is_none_or(|r| r.contains(&full));
        if !account_ok || !repo_ok {
            return Resp::error(404, "Repository not found.");
        }
        let level = t.permissions.get("contents").map(String::as_str).unwrap_or("none");
        let allowed = if push { level == "write" } else { level == "read" || level == "write" };
        if !allowed {
            return Resp::error(403, &format!("Permission to {full}.git denied to {}.", w.bot_login));
        }
        (repo.git_dir.clone(), repo.protected.then(|| repo.default_branch.clone()))
    };
    let path_info = req.path.clone();
    let root = inner.repos_dir.clone();
    let _ = git_dir;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH_INFO", &path_info)
        .env("REQUEST_METHOD", req.method.as_str())
        .env("QUERY_STRING", req.query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
        .env("CONTENT_TYPE", req.header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SIM_PROTECTED_BRANCH", protected.unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(enc) = req.header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(p) = req.header("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "spawning git http-backend");
            return Resp::error(500, "git is not available");
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let body = req.body.clone();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "git http-backend");
            return Resp::error(500, "git failed");
        }
    };
    let _ = writer.await;
    if !out.stderr.is_empty() {
        tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr), "git http-backend");
    }
    let resp = parse_cgi(&out.stdout);
    if push && req.method == axum::http::Method::POST {
        after_push(inner, &full);
    }
    resp
}

/// Splits CGI output into status, headers and body.
fn parse_cgi(out: &[u8]) -> Resp {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((pos, sep)) = split else { return Resp::error(500, "bad CGI output") };
    let head = String::from_utf8_lossy(&out[..pos]);
    let mut resp =
        Resp { status: 200, headers: Vec::new(), body: RespBody::Raw(Bytes::copy_from_slice(&out[pos + sep..])) };
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            resp.status = v.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(500);
        } else {
            resp.headers.push((k.to_string(), v.to_string()));
        }
    }
    resp
}

/// After a push: refresh the open pull requests of the repository (head sha, commits) and emit
/// `pull_request.synchronize` for each whose head moved, with the pusher (the app's bot, since
/// only installation tokens push here) as sender.
fn after_push(inner: &Inner, full: &str) {
    let heads: Vec<(u64, String)> = inner
        .world()
        .repos
        .get(full)
        .map(|r| {
            r.issues
                .values()
                .filter(|i| i.state == "open")
                .filter_map(|i| i.pull.as_ref().map(|p| (i.number, p.head_sha.clone())))
                .collect()
        })
        .unwrap_or_default();
    for (n, before) in heads {
        crate::ops::refresh_pull(inner, full, n);
        crate::ops::synchronized(inner, full, n, &before);
    }
}

/// Commits `content` at `path` on top of `refs/heads/{branch}` (as someone pushing to it would) and moves
/// the branch; returns `(before, after)` commit ids. Uses a scratch index; the bare repository has no work tree.
pub fn commit_file(
    git_dir: &Path,
    branch: &str,
    path: &str,
    content: &str,
    message: &str,
) -> anyhow::Result<(String, String)> {
    let before =
        rev_parse(git_dir, &format!("refs/heads/{branch}")).ok_or_else(|| anyhow::anyhow!("no branch {branch}"))?;
    let scratch = tempfile::tempdir()?;
    let blob_file = scratch.path().join("blob");
    std::fs::write(&blob_file, content)?;
    let index = scratch.path().join("index");
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(git_dir)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "github-sim")
            .env("GIT_AUTHOR_EMAIL", "sim@github-sim.invalid")
            .env("GIT_COMMITTER_NAME", "github-sim")
            .env("GIT_COMMITTER_EMAIL", "sim@github-sim.invalid")
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    run(&["read-tree", &before])?;
    let blob = run(&["hash-object", "-w", &blob_file.to_string_lossy()])?;
    run(&["update-index", "--add", "--cacheinfo", &format!("100644,{blob},{path}")])?;
    let tree = run(&["write-tree"])?;
    let after = run(&["commit-tree", &tree, "-p", &before, "-m", message])?;
    run(&["update-ref", &format!("refs/heads/{branch}"), &after, &before])?;
    Ok((before, after))
}
