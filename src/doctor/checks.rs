//! Each check of [`super::Doctor::run`].

use std::path::Path;

use super::{CHECK_TIMEOUT, Check, Doctor};
use crate::github::{GithubError, manifest};

/// Below this much free space in the data directory's file system the `data_dir` check fails: a session
/// clones the repository into a worktree and the store appends to its log, and a full disk fails both
/// half-way.
pub const MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// Below this much free space the `data_dir` check warns: a few repositories' worktrees and a session's
/// logs (bounded by `agent.log_max_bytes`) fit in it.
pub const WARN_FREE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// `github_app` and, when the App authenticates, `github_permissions`.
pub(super) async fn github(doctor: &Doctor) -> Vec<Check> {
    const NAME: &str = "github_app";
    let Some(client) = &doctor.github.get() else {
        let setup = match &doctor.public_url {
            Some(url) => format!("open {}/ to register the App from its manifest", url.trim_end_matches('/')),
            None => "open Foreman's / page to register the App from its manifest".to_owned(),
        };
        return vec![Check::warn(
            NAME,
            "no GitHub App credentials: deliveries are stored, but Foreman cannot act on GitHub",
            format!("{setup}, or set GITHUB_APP_ID and GITHUB_PRIVATE_KEY_PATH (see docs/deploy.md)"),
        )];
    };
    let app = match tokio::time::timeout(CHECK_TIMEOUT, client.app()).await {
        Ok(Ok(app)) => app,
        Ok(Err(GithubError::Unauthorized { .. })) => {
            return vec![Check::fail(
                NAME,
                format!(
                    "GitHub refused the App's token (401): the private key does not belong to app id {}",
                    client.app_id()
                ),
                "check GITHUB_APP_ID (the App's settings page shows its App ID) and that the private key is \
                 one of that App's keys",
            )];
        }
        Ok(Err(e)) => {
            return vec![Check::fail(
                NAME,
                format!("GET /app failed: {}", client.scrub(&e.to_string())),
                "check github.api_url and that this machine reaches GitHub",
            )];
        }
        Err(_) => {
            return vec![Check::fail(
                NAME,
                format!("GET /app did not answer within {} s", CHECK_TIMEOUT.as_secs()),
                "check github.api_url and that this machine reaches GitHub",
            )];
        }
    };
    let page = app.html_url.clone().unwrap_or_else(|| format!("https://github.com/apps/{}", app.slug));
    let installations = match tokio::time::timeout(CHECK_TIMEOUT, client.installations()).await {
        Ok(Ok(list)) => Some(list.len()),
        _ => None,
    };
    let who = format!("{} ({}, app id {})", app.name, app.slug, app.id);
    let app_check = match installations {
        Some(0) => Check::warn(
            NAME,
            format!("{who} authenticates but is not installed anywhere yet"),
            format!("install it on the repositories it should work on: {page}/installations/new"),
        ),
        Some(n) => Check::pass(NAME, format!("{who}, {n} installation{}", if n == 1 { "" } else { "s" })),
        None => Check::warn(
            NAME,
            format!("{who} authenticates, but its installations could not be listed"),
            "see the log for GitHub's answer",
        ),
    };
    vec![app_check, permissions(&app, &page)]
}

/// `github_permissions`: the App's permissions and events against the built-in manifest.
fn permissions(app: &crate::github::App, page: &str) -> Check {
    const NAME: &str = "github_permissions";
    let (perms, events) = manifest::missing(&manifest::Manifest::builtin(), &app.permissions, &app.events);
    if perms.is_empty() && events.is_empty() {
        return Check::pass(NAME, "the App has every permission and event Foreman uses");
    }
    let mut missing: Vec<String> = perms
        .iter()
        .map(|(name, level)| format!("permission {name}: {level} ({})", manifest::permission_purpose(name)))
        .collect();
    missing.extend(events.iter().map(|e| format!("event {e} ({})", manifest::event_purpose(e))));
    let settings = page.replacen("/apps/", "/settings/apps/", 1);
    Check::fail(
        NAME,
        format!("the App lacks {}", missing.join("; ")),
        format!(
            "add them in the App's settings ({settings}/permissions), then accept the new permissions on each \
             installation"
        ),
    )
}

/// `agent`: the backend builds, its program runs (its version command, when it has one), and it has a
/// credential. Without App credentials no session runs, so a problem is a ⚠.
pub(super) async fn agent(doctor: &Doctor) -> Check {
    const NAME: &str = "agent";
    let config = &doctor.agent_config;
    let agent = match &doctor.agent {
        Ok(agent) => agent,
        Err(e) => {
            return Check::fail(NAME, format!("the agent backend cannot be built: {e}"), "fix the [agent] section");
        }
    };
    let problem = |summary: String, fix: &str| {
        if doctor.github.get().is_some() { Check::fail(NAME, summary, fix) } else { Check::warn(NAME, summary, fix) }
    };
    if let Some(why) = agent.unavailable(config) {
        return problem(why, "install it on Foreman's machine, or fix its path in the [agent] section");
    }
    let mut found = agent.describe(config);
    if let Some((program, args)) = agent.version_command(config) {
        let run = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let shown = format!("{} {}", program.display(), args.join(" "));
        match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => {
                let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned();
                found = format!("{found}, {version}");
            }
            Ok(Ok(out)) => {
                let said = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().trim().to_owned();
                return problem(format!("`{shown}` failed ({}): {said}", out.status), "reinstall the agent's CLI");
            }
            Ok(Err(e)) => return problem(format!("`{shown}` cannot run: {e}"), "reinstall the agent's CLI"),
            Err(_) => {
                return problem(
                    format!("`{shown}` did not finish within {} s", CHECK_TIMEOUT.as_secs()),
                    "reinstall the agent's CLI",
                );
            }
        }
    }
    if let Some(why) = agent.missing_credential() {
        return problem(why, "set the variable in Foreman's environment and restart it");
    }
    Check::pass(NAME, format!("{found} runs"))
}

/// `sandbox`: bubblewrap can create the agent's sandbox (or the sandbox is off, a ⚠).
pub(super) fn sandbox(doctor: &Doctor) -> Check {
    use crate::executor::local::sandbox::{Sandbox, SandboxMode};
    const NAME: &str = "sandbox";
    let sandbox = Sandbox::new(&doctor.data_dir, &doctor.agent_config.sandbox_config());
    match (sandbox.mode(), sandbox.unavailable()) {
        (SandboxMode::Off, _) => Check::warn(
            NAME,
            "agent.sandbox = \"off\": agents run as Foreman's own user and see what it sees",
            "use it only on a development machine; install bubblewrap and remove agent.sandbox",
        ),
        (SandboxMode::On, Some(why)) => {
            Check::fail(NAME, why.to_owned(), "see docs/security.md (\"Running with the sandbox\") for what it needs")
        }
        (SandboxMode::On, None) => Check::pass(NAME, "bubblewrap creates the agent's sandbox"),
    }
}

/// `data_dir`: a file can be written in the data directory, and its file system has room.
pub(super) fn data_dir(dir: &Path) -> Check {
    const NAME: &str = "data_dir";
    let shown = dir.display();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::fail(
            NAME,
            format!("{shown} cannot be created: {e}"),
            "set FOREMAN_DATA_DIR to a writable directory",
        );
    }
    let probe = dir.join(".doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"foreman doctor\n") {
        return Check::fail(NAME, format!("{shown} is not writable: {e}"), "give Foreman's user write access to it");
    }
    let _ = std::fs::remove_file(&probe);
    let Some(free) = free_bytes(dir) else {
        return Check::pass(NAME, format!("{shown} is writable"));
    };
    let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
    let summary = format!("{shown} is writable, {gib:.1} GiB free");
    if free < MIN_FREE_BYTES {
        Check::fail(NAME, summary, "free space on its file system, or move FOREMAN_DATA_DIR to a larger one")
    } else if free < WARN_FREE_BYTES {
        Check::warn(NAME, summary, "sessions clone repositories here: give it more room")
    } else {
        Check::pass(NAME, summary)
    }
}

/// Bytes available to Foreman's user on the file system holding `dir` (`statvfs(3)`: `f_bavail × f_frsize`).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string; `stat` is written by statvfs before it is read.
    let ok = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } == 0;
    // SAFETY: statvfs returned 0, so it filled `stat`.
    ok.then(|| unsafe { stat.assume_init() }).map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}
