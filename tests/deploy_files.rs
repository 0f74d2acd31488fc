//! The files that deploy Foreman: the GitHub App manifest, fly.toml and the Dockerfile.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The manifest's top-level keys as GitHub documents them for registering an App from a manifest
/// (<https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest#github-app-manifest-parameters>).
const MANIFEST_KEYS: &[&str] = &[
    "name",
    "url",
    "hook_attributes",
    "redirect_url",
    "callback_urls",
    "setup_url",
    "description",
    "public",
    "default_events",
    "default_permissions",
    "request_oauth_on_install",
    "setup_on_update",
];

#[test]
fn app_manifest_uses_only_documented_fields_permissions_and_events() {
    let manifest: serde_json::Value = serde_json::from_str(&read("app-manifest.json")).unwrap();
    let obj = manifest.as_object().unwrap();
    for key in obj.keys() {
        assert!(MANIFEST_KEYS.contains(&key.as_str()), "{key} is not a documented manifest field");
    }
    assert!(obj["url"].as_str().unwrap().starts_with("https://"), "url is required");
    assert_eq!(obj["public"], false);
    let hook = obj["hook_attributes"].as_object().unwrap();
    assert!(hook.keys().all(|k| k == "url" || k == "active"), "hook_attributes takes url and active");
    assert!(hook["url"].as_str().unwrap().ends_with(foreman::ingress::WEBHOOK_PATH));

    // Permissions: names and levels from GitHub's own OpenAPI description (components.schemas.app-permissions).
    let api: serde_json::Value = serde_json::from_slice(&github_sim::descriptions::rest_description()).unwrap();
    let documented = &api["components"]["schemas"]["app-permissions"]["properties"];
    let wanted = [
        ("metadata", "read"),
        ("issues", "write"),
        ("pull_requests", "write"),
        ("contents", "write"),
        ("checks", "write"),
        ("organization_projects", "write"),
        ("members", "read"),
        ("actions", "write"),
    ];
    let permissions = obj["default_permissions"].as_object().unwrap();
    assert_eq!(permissions.len(), wanted.len(), "exactly the permissions Foreman needs");
    for (name, level) in wanted {
        assert_eq!(permissions[name], level, "{name}");
        let levels = documented[name]["enum"].as_array().unwrap_or_else(|| panic!("{name} is not an App permission"));
        assert!(levels.iter().any(|l| l == level), "{name}: {level} is not one of {levels:?}");
    }

    // Events: each one is a webhook event GitHub has a payload schema for, and one Foreman's ingress uses.
    let schemas: BTreeSet<String> = std::fs::read_dir(support::vendor().join("github/webhooks/schemas/api.github.com"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let x_webhooks: Vec<String> = api["x-webhooks"].as_object().unwrap().keys().cloned().collect();
    let events: Vec<&str> = obj["default_events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "issues",
            "issue_comment",
            "issue_dependencies",
            "sub_issues",
            "pull_request",
            "pull_request_review",
            "pull_request_review_comment",
            "projects_v2_item",
            "push",
            "workflow_run",
            "workflow_job"
        ]
    );
    let deploy = read("docs/deploy.md");
    let listed = deploy.lines().skip_while(|l| !l.starts_with("- the events:")).take(3).collect::<String>();
    for e in events {
        // Events newer than the octokit schemas are in the OpenAPI description's `x-webhooks`.
        let newer = x_webhooks.iter().any(|w| w.starts_with(&format!("{}-", e.replace('_', "-"))));
        assert!(schemas.contains(e) || newer, "{e} is not a webhook event");
        assert!(foreman::event::is_handled(e), "{e} would be answered 204 and dropped");
        assert!(listed.contains(&format!("`{e}`")), "docs/deploy.md lists the manifest's event {e}: {listed}");
    }
}

#[test]
fn fly_toml_mounts_the_data_directory_checks_health_and_drains_on_sigterm() {
    let fly = read("fly.toml");
    for needle in [
        "destination = \"/data\"",
        "FOREMAN_DATA_DIR = \"/data\"",
        "path = \"/healthz\"",
        "kill_signal = \"SIGTERM\"",
        "kill_timeout = 30",
        "auto_stop_machines = \"off\"",
        "internal_port = 3000",
        "FOREMAN_LISTEN = \"0.0.0.0:3000\"",
    ] {
        assert!(fly.contains(needle), "fly.toml lacks {needle}");
    }
    // The kill timeout leaves room for the server's own drain bound plus the final flush.
    assert!(foreman::server::DRAIN_TIMEOUT.as_secs() < 30);
}

#[test]
fn dockerfile_is_multi_stage_with_git_and_ca_certificates() {
    let docker = read("Dockerfile");
    assert!(docker.matches("FROM ").count() >= 2, "multi-stage");
    for needle in
        ["git", "ca-certificates", "cargo build --release", "ENTRYPOINT [\"foreman-entrypoint\"]", "CMD [\"serve\"]"]
    {
        assert!(docker.contains(needle), "Dockerfile lacks {needle}");
    }
}

/// The entry point hands a root-owned volume (as Fly.io mounts one) to the `foreman` user and drops root
/// before Foreman starts; run as any other user, it just runs Foreman. The commands it runs (`id`, `mkdir`,
/// `chown`, `setpriv`, `foreman`) are stubs on `PATH` that record their arguments, so both paths run here
/// without root or a `foreman` user.
#[test]
fn the_entry_point_drops_root_after_handing_over_the_data_directory() {
    let run = |uid: &str| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        for (name, body) in [
            ("id", format!("echo {uid}")),
            ("mkdir", format!("echo \"mkdir $*\" >> {log:?}")),
            ("chown", format!("echo \"chown $*\" >> {log:?}")),
            ("setpriv", format!("echo \"setpriv $*\" >> {log:?}")),
            ("foreman", format!("echo \"foreman $*\" >> {log:?}")),
        ] {
            let stub = dir.path().join(name);
            std::fs::write(&stub, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let status = std::process::Command::new("/bin/sh")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/entrypoint.sh"))
            .arg("serve")
            .env("PATH", path)
            .env("FOREMAN_DATA_DIR", "/data")
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&log).unwrap()
    };
    assert_eq!(
        run("0"),
        "mkdir -p /data\nchown foreman:foreman /data\n\
         setpriv --reuid=foreman --regid=foreman --init-groups --inh-caps=-all --bounding-set=-all -- foreman serve\n"
    );
    assert_eq!(run("10001"), "foreman serve\n");
}

#[test]
fn every_environment_variable_is_documented() {
    let docs = read("docs/configuration.md");
    for (env, key) in foreman::config::ENV_KEYS {
        assert!(docs.contains(&format!("`{env}`")), "docs/configuration.md does not mention {env}");
        assert!(docs.contains(&format!("`{key}`")), "docs/configuration.md does not mention the key {key}");
    }
}
