//! The GitHub App manifest Foreman is registered from (`app-manifest.json` at the repository's top, built
//! into the binary): the permissions and webhook events Foreman uses, and what it uses each one for.
//!
//! The manifest format is GitHub's
//! (<https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest>).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `app-manifest.json` as built into this Foreman.
pub const MANIFEST_JSON: &str = include_str!("../../app-manifest.json");

/// The parts of the manifest Foreman reads back.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// Permission name → `read` or `write` (GitHub's `default_permissions`).
    pub default_permissions: BTreeMap<String, String>,
    /// The webhook events the App subscribes to (GitHub's `default_events`).
    pub default_events: Vec<String>,
}

impl Manifest {
    /// The manifest built into this Foreman. Panics only if `app-manifest.json` is not valid (a test
    /// parses it).
    pub fn builtin() -> Manifest {
        serde_json::from_str(MANIFEST_JSON).expect("app-manifest.json is a valid manifest")
    }
}

/// What Foreman uses each permission of the manifest for, in words for an operator whose App lacks it.
/// Every permission of the manifest has an entry (a unit test checks it).
pub const PERMISSION_PURPOSES: &[(&str, &str)] = &[
    ("metadata", "reading repositories (GitHub grants it to every App)"),
    ("issues", "reading the issues it works on, its tracking comments and labels"),
    ("pull_requests", "opening and updating the agent's pull requests"),
    ("contents", "cloning, pushing the agent's branch and reading .github/foreman.toml"),
    ("checks", "the constitution check run on each pull request"),
    ("organization_projects", "board triggers: Projects (v2) cards moved to Ready, and moving them on"),
    ("members", "reading organisation members and teams"),
    ("actions", "the Actions executor: dispatching session workflows, reading and cancelling their runs"),
];

/// What Foreman does with each webhook event of the manifest, in words for an operator whose App does not
/// subscribe to it. Every event of the manifest has an entry (a unit test checks it).
pub const EVENT_PURPOSES: &[(&str, &str)] = &[
    ("issues", "the trigger label, closing and editing issues"),
    ("issue_comment", "`/foreman` commands"),
    ("pull_request", "follow-ups and merged pull requests"),
    ("pull_request_review", "review follow-ups"),
    ("pull_request_review_comment", "review follow-ups"),
    ("projects_v2_item", "board triggers (organisation projects only)"),
    ("push", "a changed .github/foreman.toml releasing the jobs waiting for it"),
    ("sub_issues", "plan progress on the parent issue"),
    ("issue_dependencies", "GitHub's \"blocked by\" dependencies"),
    ("workflow_run", "the Actions executor: a session's run that ended without handing its work back"),
    ("workflow_job", "the Actions executor: a session's runner lost or its job ended"),
];

/// What Foreman uses permission `name` for (empty when it has no entry).
pub fn permission_purpose(name: &str) -> &'static str {
    PERMISSION_PURPOSES.iter().find(|(n, _)| *n == name).map_or("", |(_, p)| p)
}

/// What Foreman uses event `name` for (empty when it has no entry).
pub fn event_purpose(name: &str) -> &'static str {
    EVENT_PURPOSES.iter().find(|(n, _)| *n == name).map_or("", |(_, p)| p)
}

/// The rank of an access level: `read` < `write` < `admin`; 0 for anything else (no access).
pub fn access_rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// What an App with `permissions` and `events` lacks of what the manifest asks for: the permissions missing
/// or granted below the manifest's level (`name`, the level wanted), then the events it does not subscribe
/// to.
pub fn missing(
    manifest: &Manifest,
    permissions: &BTreeMap<String, String>,
    events: &[String],
) -> (Vec<(String, String)>, Vec<String>) {
    let perms = manifest
        .default_permissions
        .iter()
        .filter(|(name, wanted)| {
            access_rank(permissions.get(*name).map_or("", String::as_str)) < access_rank(wanted.as_str())
        })
        .map(|(n, w)| (n.clone(), w.clone()))
        .collect();
    let events = manifest.default_events.iter().filter(|e| !events.contains(e)).cloned().collect();
    (perms, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_and_event_of_the_manifest_says_what_it_is_for() {
        let m = Manifest::builtin();
        for name in m.default_permissions.keys() {
            assert!(!permission_purpose(name).is_empty(), "PERMISSION_PURPOSES lacks {name}");
        }
        for name in &m.default_events {
            assert!(!event_purpose(name).is_empty(), "EVENT_PURPOSES lacks {name}");
        }
    }

    #[test]
    fn a_permission_below_the_wanted_level_is_missing_and_a_higher_one_is_not() {
        let m = Manifest::builtin();
        let mut granted: BTreeMap<String, String> =
            m.default_permissions.keys().map(|k| (k.clone(), "admin".to_owned())).collect();
        granted.insert("issues".into(), "read".into());
        granted.remove("organization_projects");
        let (perms, events) = missing(&m, &granted, &["issues".to_owned()]);
        let names: Vec<&str> = perms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["issues", "organization_projects"]);
        assert!(events.contains(&"issue_comment".to_owned()) && !events.contains(&"issues".to_owned()));
    }
}
