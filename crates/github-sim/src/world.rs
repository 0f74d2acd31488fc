//! The simulated world: users, organisations, repositories, issues, pull requests, comments,
//! projects, installations, tokens, deliveries and the request log, and their JSON shapes.
//!
//! Everything lives behind one `std::sync::Mutex` (never held across an `.await`). JSON renderers
//! follow the shapes of the real payloads in `vendor/github/webhooks/examples` (which are also the
//! REST shapes of the same objects).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Formats a time as GitHub does: `2019-05-15T15:20:18Z` (UTC, whole seconds).
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Makes a GraphQL global node id: `PREFIX_` then base64 of `kind:id` (GitHub's ids are opaque; only
/// the prefix convention, `I_` for issues, `PVTI_` for project items, is imitated).
pub fn node_id(prefix: &str, id: u64) -> String {
    format!("{prefix}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{prefix}:{id}")))
}

/// Decodes a node id made by [`node_id`] into its prefix and numeric id.
pub fn parse_node_id(id: &str) -> Option<(String, u64)> {
    let (prefix, rest) = id.split_once('_')?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rest).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (p, n) = raw.split_once(':')?;
    (p == prefix).then_some(())?;
    Some((prefix.to_string(), n.parse().ok()?))
}

/// A repository permission level, ordered from none to admin (GitHub's collaborator permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    /// The `permission` field of `GET .../collaborators/{user}/permission`: GitHub maps
    /// maintain to write and triage to read there, and keeps the precise one in `role_name`.
    pub fn legacy(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Read | Permission::Triage => "read",
            Permission::Write | Permission::Maintain => "write",
            Permission::Admin => "admin",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }
}

/// A user or bot account.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: u64,
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    pub kind: String,
    /// The permission this account has on every repository of the simulator.
    pub permission: Permission,
}

/// A reaction on an issue or comment.
#[derive(Debug, Clone, Serialize)]
pub struct Reaction {
    pub id: u64,
    pub user: String,
    pub content: String,
    pub created_at: String,
}

/// An issue comment.
#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    pub id: u64,
    pub node_id: String,
    pub repo: String,
    pub issue: u64,
    pub user: String,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
    pub reactions: Vec<Reaction>,
    /// Set when the comment was made through the API by the app.
    pub via_app: bool,
}

/// A pull request review.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub id: u64,
    pub node_id: String,
    pub user: String,
    pub state: String,
    pub body: String,
    pub commit_id: String,
    pub submitted_at: String,
    /// The review's inline comments, each on one line of a file of the diff.
    pub comments: Vec<ReviewComment>,
}

/// An inline review comment: on `line` (of the file as the pull request's head has it) of `path`.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewComment {
    pub id: u64,
    pub node_id: String,
    pub path: String,
    pub line: u64,
    pub body: String,
}

/// The pull-request half of an issue (GitHub numbers issues and pull requests together).
#[derive(Debug, Clone, Serialize)]
pub struct Pull {
    pub id: u64,
    pub node_id: String,
    pub head: String,
    pub base: String,
    pub draft: bool,
    pub merged: bool,
    pub reviews: Vec<Review>,
    /// Logins whose review was requested (POST …/pulls/{n}/requested_reviewers), in request order.
    pub requested_reviewers: Vec<String>,
    /// Commit ids `base..head` at the last look, oldest first.
    pub commits: Vec<String>,
    pub head_sha: String,
    pub base_sha: String,
}

/// An issue or pull request.
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub id: u64,
    pub node_id: String,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub user: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub reactions: Vec<Reaction>,
    pub pull: Option<Pull>,
}

/// A label defined on a repository.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    pub id: u64,
    pub node_id: String,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

/// A check run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    pub id: u64,
    pub node_id: String,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub output: Value,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
}

/// A repository: metadata here, content in a bare git repository at `git_dir`.
#[derive(Debug, Clone, Serialize)]
pub struct Repo {
    pub id: u64,
    pub node_id: String,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    /// When set, pushes to the default branch are refused (branch protection).
    pub protected: bool,
    pub created_at: String,
    #[serde(skip)]
    pub git_dir: PathBuf,
    pub issues: BTreeMap<u64, Issue>,
    pub labels: BTreeMap<String, Label>,
    pub check_runs: BTreeMap<u64, CheckRun>,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// A Projects (v2) item: an issue on a board, with its Status option.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectItem {
    pub id: u64,
    pub node_id: String,
    pub repo: String,
    pub issue: u64,
    /// The Status single-select option id, if any.
    pub status: Option<String>,
    pub creator: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A single-select option of the Status field.
#[derive(Debug, Clone, Serialize)]
pub struct SelectOption {
    pub id: String,
    pub name: String,
}

/// An organisation's Projects (v2) board with one single-select field, Status.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub id: u64,
    pub node_id: String,
    pub org: String,
    pub number: u64,
    pub title: String,
    pub status_field_id: u64,
    pub status_field_node_id: String,
    pub title_field_node_id: String,
    pub options: Vec<SelectOption>,
    pub items: Vec<ProjectItem>,
    pub created_at: String,
}

/// An installation of the app on an account (one per repository owner).
#[derive(Debug, Clone, Serialize)]
pub struct Installation {
    pub id: u64,
    pub account: String,
    pub permissions: BTreeMap<String, String>,
    pub created_at: String,
}

/// An installation access token.
#[derive(Debug, Clone)]
pub struct Token {
    pub installation: u64,
    pub expires_at: OffsetDateTime,
    /// Repository full names the token may reach; `None` means all of the installation's.
    pub repositories: Option<Vec<String>>,
    pub permissions: BTreeMap<String, String>,
}

/// One webhook delivery, as recorded for `GET /app/hook/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: u64,
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
    pub delivered_at: String,
    pub redelivery: bool,
    /// The HTTP status the receiver answered, `None` while in flight, `0` when it could not be reached.
    pub status_code: Option<u16>,
    pub duration: f64,
    pub payload: Value,
    #[serde(skip)]
    pub request_headers: Vec<(String, String)>,
    pub response_body: String,
}

/// One line of the request log.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub operation_name: Option<String>,
    pub installation: Option<u64>,
    /// When the simulator began handling the request, in milliseconds since it started.
    pub started_ms: u64,
    /// When it answered, in milliseconds since it started.
    pub finished_ms: u64,
    /// API requests of the same installation in flight when this one was authenticated, itself
    /// included (0 for requests without an installation token). Its maximum over the log is the
    /// installation's concurrency high-water mark.
    pub in_flight: u64,
}

/// A request the simulator refused because GitHub's API description does not allow it.
#[derive(Debug, Clone, Serialize)]
pub struct Nonconforming {
    pub method: String,
    pub path: String,
    pub reason: String,
}

/// The primary rate-limit bucket of one installation (or of unauthenticated callers, key 0).
#[derive(Debug, Clone)]
pub struct Bucket {
    pub limit: u64,
    pub used: u64,
    pub reset: OffsetDateTime,
}

/// Everything the simulator knows.
pub struct World {
    pub base_url: String,
    pub app_id: u64,
    pub app_slug: String,
    pub app_name: String,
    /// The permissions the App asks of its installations (`GET /app`'s `permissions`); settable through
    /// `PATCH /_sim/app`, as a person edits the App's settings.
    pub app_permissions: BTreeMap<String, String>,
    /// The webhook events the App subscribes to (`GET /app`'s `events`); settable through `PATCH /_sim/app`.
    pub app_events: Vec<String>,
    pub bot_login: String,
    pub next_id: u64,
    pub users: BTreeMap<String, User>,
    pub repos: BTreeMap<String, Repo>,
    pub comments: BTreeMap<u64, Comment>,
    pub projects: Vec<Project>,
    pub installations: BTreeMap<u64, Installation>,
    pub tokens: HashMap<String, Token>,
    pub deliveries: Vec<Delivery>,
    pub requests: Vec<LoggedRequest>,
    pub nonconforming: Vec<Nonconforming>,
    /// Every parent–sub-issue link, in priority order within each parent (see `subs`).
    pub sub_issues: Vec<crate::subs::SubIssue>,
    pub buckets: HashMap<u64, Bucket>,
    /// API requests in flight per installation (authenticated with its token, not yet answered).
    pub in_flight: HashMap<u64, u64>,
    /// Every "blocked by" link, oldest first (see `deps`).
    pub dependencies: Vec<crate::deps::Dependency>,
    pub created_at: String,
    /// What registering the App from a manifest left (`crate::manifest`).
    pub manifest: crate::manifest::State,
    /// The OAuth web flow's codes and user-to-server tokens (`crate::oauth`).
    pub oauth: crate::oauth::State,
    /// Workflows, runs, jobs and Actions secrets (`crate::actions`).
    pub actions: crate::actions::State,
}

/// The permissions every installation is granted (what Foreman's app manifest asks for).
pub fn default_installation_permissions() -> BTreeMap<String, String> {
    [
        ("actions", "write"),
        ("checks", "write"),
        ("contents", "write"),
        ("issues", "write"),
        ("metadata", "read"),
        ("members", "read"),
        ("organization_projects", "write"),
        ("pull_requests", "write"),
        ("repository_projects", "write"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The events the simulated App subscribes to unless a test changes them: every event the simulator
/// sends that an App can subscribe to.
pub fn default_app_events() -> Vec<String> {
    [
        "issue_comment",
        "issue_dependencies",
        "issues",
        "projects_v2_item",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "push",
        "sub_issues",
        "workflow_job",
        "workflow_run",
    ]
    .map(String::from)
    .to_vec()
}

impl World {
    pub fn new(base_url: String, app_id: u64, app_slug: String) -> Self {
        let bot_login = format!("{app_slug}[bot]");
        let mut w = World {
            base_url,
            app_id,
            app_name: "Foreman".into(),
            app_permissions: default_installation_permissions(),
            app_events: default_app_events(),
            app_slug,
            bot_login: bot_login.clone(),
            next_id: 41_000_000,
            users: BTreeMap::new(),
            repos: BTreeMap::new(),
            comments: BTreeMap::new(),
            projects: Vec::new(),
            installations: BTreeMap::new(),
            tokens: HashMap::new(),
            deliveries: Vec::new(),
            requests: Vec::new(),
            nonconforming: Vec::new(),
            sub_issues: Vec::new(),
            buckets: HashMap::new(),
            in_flight: HashMap::new(),
            dependencies: Vec::new(),
            created_at: ts(OffsetDateTime::now_utc()),
            manifest: Default::default(),
            oauth: Default::default(),
            actions: Default::default(),
        };
        let id = w.id();
        w.users.insert(
            bot_login.clone(),
            User { id, login: bot_login, kind: "Bot".into(), permission: Permission::Write },
        );
        w
    }

    /// A fresh numeric id (one counter for every kind of object, like GitHub's are unique enough).
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The account, created as an organisation on first sight when nobody registered it.
    pub fn account(&mut self, login: &str) -> User {
        if let Some(u) = self.users.get(login) {
            return u.clone();
        }
        let id = self.id();
        let u = User { id, login: login.into(), kind: "Organization".into(), permission: Permission::None };
        self.users.insert(login.into(), u.clone());
        u
    }

    /// The installation on an account, created on first use.
    pub fn installation_for(&mut self, account: &str) -> u64 {
        if let Some(i) = self.installations.values().find(|i| i.account == account) {
            return i.id;
        }
        let id = self.id();
        self.installations.insert(
            id,
            Installation {
                id,
                account: account.into(),
                permissions: default_installation_permissions(),
                created_at: ts(OffsetDateTime::now_utc()),
            },
        );
        id
    }

    pub fn user_json(&self, login: &str) -> Value {
        let (id, kind) = match self.users.get(login) {
            Some(u) => (u.id, u.kind.clone()),
            None => (0, "User".to_string()),
        };
        let b = &self.base_url;
        let node = node_id(if kind == "Organization" { "O" } else { "U" }, id);
        let login_raw = login;
        let login = &enc(login);
        json!({
            "login": login_raw, "id": id, "node_id": node,
            "avatar_url": format!("{b}/avatars/{id}"), "gravatar_id": "",
            "url": format!("{b}/users/{login}"), "html_url": format!("{b}/{login}"),
            "followers_url": format!("{b}/users/{login}/followers"),
            "following_url": format!("{b}/users/{login}/following{{/other_user}}"),
            "gists_url": format!("{b}/users/{login}/gists{{/gist_id}}"),
            "starred_url": format!("{b}/users/{login}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{b}/users/{login}/subscriptions"),
            "organizations_url": format!("{b}/users/{login}/orgs"),
            "repos_url": format!("{b}/users/{login}/repos"),
            "events_url": format!("{b}/users/{login}/events{{/privacy}}"),
            "received_events_url": format!("{b}/users/{login}/received_events"),
            "type": kind, "site_admin": false,
        })
    }

    /// The `organization` object of webhook payloads, or `None` when the owner is a user.
    pub fn org_json(&self, login: &str) -> Option<Value> {
        let u = self.users.get(login)?;
        if u.kind != "Organization" {
            return None;
        }
        let b = &self.base_url;
        Some(json!({
            "login": login, "id": u.id, "node_id": node_id("O", u.id),
            "url": format!("{b}/orgs/{login}"), "repos_url": format!("{b}/orgs/{login}/repos"),
            "events_url": format!("{b}/orgs/{login}/events"), "hooks_url": format!("{b}/orgs/{login}/hooks"),
            "issues_url": format!("{b}/orgs/{login}/issues"),
            "members_url": format!("{b}/orgs/{login}/members{{/member}}"),
            "public_members_url": format!("{b}/orgs/{login}/public_members{{/member}}"),
            "avatar_url": format!("{b}/avatars/{}", u.id), "description": "",
        }))
    }

    pub fn repo_json(&self, repo: &Repo) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        let api = format!("{b}/repos/{full}");
        let open = repo.issues.values().filter(|i| i.state == "open").count();
        let mut v = json!({
            "id": repo.id, "node_id": repo.node_id, "name": repo.name, "full_name": full,
            "private": false, "owner": self.user_json(&repo.owner),
            "html_url": format!("{b}/{full}"), "description": null, "fork": false, "url": api,
            "created_at": repo.created_at, "updated_at": repo.created_at, "pushed_at": repo.created_at,
            "git_url": format!("{b}/{full}.git"), "ssh_url": format!("{b}/{full}.git"),
            "clone_url": format!("{b}/{full}.git"), "svn_url": format!("{b}/{full}"),
            "homepage": null, "size": 0, "stargazers_count": 0, "watchers_count": 0, "language": null,
            "has_issues": true, "has_projects": true, "has_downloads": true, "has_wiki": false,
            "has_pages": false, "has_discussions": false, "forks_count": 0, "mirror_url": null,
            "archived": false, "disabled": false, "open_issues_count": open, "license": null,
            "allow_forking": true, "is_template": false, "web_commit_signoff_required": false,
            "topics": [], "visibility": "public", "forks": 0, "open_issues": open, "watchers": 0,
            "default_branch": repo.default_branch, "custom_properties": {},
        });
        let urls = [
            ("forks_url", "/forks"),
            ("keys_url", "/keys{/key_id}"),
            ("collaborators_url", "/collaborators{/collaborator}"),
            ("teams_url", "/teams"),
            ("hooks_url", "/hooks"),
            ("issue_events_url", "/issues/events{/number}"),
            ("events_url", "/events"),
            ("assignees_url", "/assignees{/user}"),
            ("branches_url", "/branches{/branch}"),
            ("tags_url", "/tags"),
            ("blobs_url", "/git/blobs{/sha}"),
            ("git_tags_url", "/git/tags{/sha}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("trees_url", "/git/trees{/sha}"),
            ("statuses_url", "/statuses/{sha}"),
            ("languages_url", "/languages"),
            ("stargazers_url", "/stargazers"),
            ("contributors_url", "/contributors"),
            ("subscribers_url", "/subscribers"),
            ("subscription_url", "/subscription"),
            ("commits_url", "/commits{/sha}"),
            ("git_commits_url", "/git/commits{/sha}"),
            ("comments_url", "/comments{/number}"),
            ("issue_comment_url", "/issues/comments{/number}"),
            ("contents_url", "/contents/{+path}"),
            ("compare_url", "/compare/{base}...{head}"),
            ("merges_url", "/merges"),
            ("archive_url", "/{archive_format}{/ref}"),
            ("downloads_url", "/downloads"),
            ("issues_url", "/issues{/number}"),
            ("pulls_url", "/pulls{/number}"),
            ("milestones_url", "/milestones{/number}"),
            ("notifications_url", "/notifications{?since,all,participating}"),
            ("labels_url", "/labels{/name}"),
            ("releases_url", "/releases{/id}"),
            ("deployments_url", "/deployments"),
        ];
        let o = v.as_object_mut().expect("object");
        for (k, suffix) in urls {
            o.insert(k.into(), Value::String(format!("{api}{suffix}")));
        }
        v
    }

    pub fn label_json(&self, repo: &Repo, name: &str) -> Value {
        let (id, node, color, desc) = match repo.labels.get(name) {
            Some(l) => (l.id, l.node_id.clone(), l.color.clone(), l.description.clone()),
            None => (0, String::new(), "ededed".into(), None),
        };
        json!({
            "id": id, "node_id": node,
            "url": format!("{}/repos/{}/labels/{}", self.base_url, repo.full_name(), enc(name)),
            "name": name, "color": color, "default": false, "description": desc,
        })
    }

    fn reactions_json(&self, url: String, reactions: &[Reaction]) -> Value {
        let mut v = json!({"url": url, "total_count": reactions.len()});
        for c in ["+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"] {
            v[c] = json!(reactions.iter().filter(|r| r.content == c).count());
        }
        v
    }

    /// The author association of `login` on a repository (`OWNER`, `MEMBER`, `COLLABORATOR`, `NONE`).
    pub fn association(&self, repo: &Repo, login: &str) -> &'static str {
        if login == repo.owner {
            return "OWNER";
        }
        match self.users.get(login).map(|u| u.permission) {
            Some(Permission::Admin | Permission::Maintain) => "MEMBER",
            Some(Permission::Write | Permission::Triage) => "COLLABORATOR",
            _ => "NONE",
        }
    }

    fn app_json(&self) -> Value {
        let b = &self.base_url;
        let owner = self.users.values().find(|u| u.kind == "Organization").map(|u| u.login.clone());
        let owner = owner.unwrap_or_else(|| "foreman-dev".into());
        let mut v = json!({
            "id": self.app_id, "slug": self.app_slug, "node_id": node_id("A", self.app_id),
            "owner": self.user_json(&owner), "name": self.app_name,
            "description": "Turns labelled issues into coding-agent pull requests.",
            "external_url": b, "html_url": format!("{b}/apps/{}", self.app_slug),
            "created_at": self.created_at, "updated_at": self.created_at,
            "permissions": self.app_permissions,
            "events": self.app_events,
        });
        crate::manifest::describe(&self.manifest, &mut v);
        v
    }

    /// `GET /app` body: the webhook shape plus `client_id` and `installations_count`.
    pub fn app_public_json(&self) -> Value {
        let mut v = self.app_json();
        v["client_id"] = json!(format!("Iv1.{:016x}", self.app_id));
        v["installations_count"] = json!(self.installations.len());
        v
    }

    pub fn issue_json(&self, repo: &Repo, issue: &Issue) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        let api = format!("{b}/repos/{full}/issues/{}", issue.number);
        let comments = self.comments.values().filter(|c| c.repo == full && c.issue == issue.number).count();
        let labels: Vec<Value> = issue.labels.iter().map(|l| self.label_json(repo, l)).collect();
        let mut v = json!({
            "url": api, "repository_url": format!("{b}/repos/{full}"),
            "labels_url": format!("{api}/labels{{/name}}"), "comments_url": format!("{api}/comments"),
            "events_url": format!("{api}/events"), "timeline_url": format!("{api}/timeline"),
            "html_url": format!("{b}/{full}/{}/{}", if issue.pull.is_some() { "pull" } else { "issues" }, issue.number),
            "id": issue.id, "node_id": issue.node_id, "number": issue.number, "title": issue.title,
            "user": self.user_json(&issue.user), "labels": labels, "state": issue.state,
            "locked": false, "assignee": null, "assignees": [], "milestone": null, "comments": comments,
            "created_at": issue.created_at, "updated_at": issue.updated_at, "closed_at": issue.closed_at,
            "author_association": self.association(repo, &issue.user), "active_lock_reason": null,
            "body": issue.body, "reactions": self.reactions_json(format!("{api}/reactions"), &issue.reactions),
            "performed_via_github_app": null, "state_reason": issue.state_reason,
        });
        if let Some(p) = &issue.pull {
            v["pull_request"] = json!({
                "url": format!("{b}/repos/{full}/pulls/{}", issue.number),
                "html_url": format!("{b}/{full}/pull/{}", issue.number),
                "diff_url": format!("{b}/{full}/pull/{}.diff", issue.number),
                "patch_url": format!("{b}/{full}/pull/{}.patch", issue.number),
                "merged_at": null,
            });
            v["draft"] = json!(p.draft);
        }
        v
    }

    pub fn comment_json(&self, repo: &Repo, c: &Comment) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        let api = format!("{b}/repos/{full}/issues/comments/{}", c.id);
        json!({
            "url": api, "html_url": format!("{b}/{full}/issues/{}#issuecomment-{}", c.issue, c.id),
            "issue_url": format!("{b}/repos/{full}/issues/{}", c.issue), "id": c.id, "node_id": c.node_id,
            "user": self.user_json(&c.user), "created_at": c.created_at, "updated_at": c.updated_at,
            "author_association": self.association(repo, &c.user),
            "performed_via_github_app": if c.via_app { self.app_json() } else { Value::Null },
            "body": c.body, "reactions": self.reactions_json(format!("{api}/reactions"), &c.reactions),
        })
    }

    pub fn pull_json(&self, repo: &Repo, issue: &Issue) -> Value {
        let p = issue.pull.as_ref().expect("a pull request");
        let b = &self.base_url;
        let full = repo.full_name();
        let api = format!("{b}/repos/{full}/pulls/{}", issue.number);
        let iapi = format!("{b}/repos/{full}/issues/{}", issue.number);
        let html = format!("{b}/{full}/pull/{}", issue.number);
        let labels: Vec<Value> = issue.labels.iter().map(|l| self.label_json(repo, l)).collect();
        let comments = self.comments.values().filter(|c| c.repo == full && c.issue == issue.number).count();
        let side = |r: &str, sha: &str| {
            json!({
                "label": format!("{}:{r}", repo.owner), "ref": r, "sha": sha,
                "user": self.user_json(&repo.owner), "repo": self.repo_json(repo),
            })
        };
        json!({
            "url": api, "id": p.id, "node_id": p.node_id, "html_url": html,
            "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"), "issue_url": iapi,
            "number": issue.number, "state": issue.state, "locked": false, "title": issue.title,
            "user": self.user_json(&issue.user), "body": issue.body,
            "created_at": issue.created_at, "updated_at": issue.updated_at, "closed_at": issue.closed_at,
            "merged_at": null, "merge_commit_sha": null, "assignee": null, "assignees": [],
            "requested_reviewers": p.requested_reviewers.iter().map(|u| self.user_json(u)).collect::<Vec<_>>(),
            "requested_teams": [], "labels": labels, "milestone": null,
            "commits_url": format!("{api}/commits"), "review_comments_url": format!("{api}/comments"),
            "review_comment_url": format!("{b}/repos/{full}/pulls/comments{{/number}}"),
            "comments_url": format!("{iapi}/comments"),
            "statuses_url": format!("{b}/repos/{full}/statuses/{}", p.head_sha),
            "head": side(&p.head, &p.head_sha), "base": side(&p.base, &p.base_sha),
            "_links": {
                "self": {"href": api}, "html": {"href": html}, "issue": {"href": iapi},
                "comments": {"href": format!("{iapi}/comments")},
                "review_comments": {"href": format!("{api}/comments")},
                "review_comment": {"href": format!("{b}/repos/{full}/pulls/comments{{/number}}")},
                "commits": {"href": format!("{api}/commits")},
                "statuses": {"href": format!("{b}/repos/{full}/statuses/{}", p.head_sha)},
            },
            "author_association": self.association(repo, &issue.user), "auto_merge": null,
            "active_lock_reason": null, "draft": p.draft, "merged": p.merged, "mergeable": null,
            "rebaseable": null, "mergeable_state": "unknown", "merged_by": null, "comments": comments,
            "review_comments": 0, "maintainer_can_modify": false, "commits": p.commits.len(),
            "additions": 0, "deletions": 0, "changed_files": 0,
        })
    }

    pub fn review_json(&self, repo: &Repo, number: u64, r: &Review) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        let html = format!("{b}/{full}/pull/{number}#pullrequestreview-{}", r.id);
        let api = format!("{b}/repos/{full}/pulls/{number}");
        json!({
            "id": r.id, "node_id": r.node_id, "user": self.user_json(&r.user),
            "body": if r.body.is_empty() { Value::Null } else { json!(r.body) },
            "commit_id": r.commit_id, "submitted_at": r.submitted_at, "state": r.state.to_lowercase(),
            "html_url": html, "pull_request_url": api, "author_association": self.association(repo, &r.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": api}},
        })
    }

    /// A review comment as `GET /repos/{owner}/{repo}/pulls/{pull_number}/comments` lists it
    /// (`pull-request-review-comment` in GitHub's OpenAPI description).
    pub fn review_comment_json(&self, repo: &Repo, number: u64, r: &Review, c: &ReviewComment) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        let url = format!("{b}/repos/{full}/pulls/comments/{}", c.id);
        let html = format!("{b}/{full}/pull/{number}#discussion_r{}", c.id);
        let pull = format!("{b}/repos/{full}/pulls/{number}");
        json!({
            "url": url, "pull_request_review_id": r.id, "id": c.id, "node_id": c.node_id,
            "diff_hunk": format!("@@ -{line},1 +{line},1 @@", line = c.line), "path": c.path,
            "position": 1, "original_position": 1, "commit_id": r.commit_id, "original_commit_id": r.commit_id,
            "user": self.user_json(&r.user), "body": c.body, "created_at": r.submitted_at,
            "updated_at": r.submitted_at, "html_url": html, "pull_request_url": pull,
            "author_association": self.association(repo, &r.user),
            "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull}},
            "line": c.line, "original_line": c.line, "side": "RIGHT", "original_side": "RIGHT",
            "start_line": Value::Null, "original_start_line": Value::Null, "start_side": Value::Null,
            "subject_type": "line",
        })
    }

    pub fn check_run_json(&self, repo: &Repo, c: &CheckRun) -> Value {
        let b = &self.base_url;
        let full = repo.full_name();
        json!({
            "id": c.id, "node_id": c.node_id, "head_sha": c.head_sha, "external_id": c.external_id,
            "url": format!("{b}/repos/{full}/check-runs/{}", c.id),
            "html_url": format!("{b}/{full}/runs/{}", c.id), "details_url": c.details_url,
            "status": c.status, "conclusion": c.conclusion, "started_at": c.started_at,
            "completed_at": c.completed_at, "output": c.output, "name": c.name,
            "check_suite": {"id": c.id}, "app": self.app_json(), "pull_requests": [],
        })
    }

    pub fn installation_json(&self, inst: &Installation) -> Value {
        let b = &self.base_url;
        json!({
            "id": inst.id, "account": self.user_json(&inst.account),
            "repository_selection": "all",
            "access_tokens_url": format!("{b}/app/installations/{}/access_tokens", inst.id),
            "repositories_url": format!("{b}/installation/repositories"),
            "html_url": format!("{b}/settings/installations/{}", inst.id),
            "app_id": self.app_id, "app_slug": self.app_slug, "target_id": self.users.get(&inst.account).map(|u| u.id),
            "target_type": self.users.get(&inst.account).map(|u| u.kind.clone()),
            "permissions": inst.permissions, "events": self.app_json()["events"],
            "created_at": inst.created_at, "updated_at": inst.created_at,
            "single_file_name": null, "has_multiple_single_files": false, "single_file_paths": [],
            "suspended_by": null, "suspended_at": null,
        })
    }

    pub fn item_json(&self, project: &Project, item: &ProjectItem) -> Value {
        let content_node = self
            .repos
            .get(&item.repo)
            .and_then(|r| r.issues.get(&item.issue))
            .map(|i| (i.node_id.clone(), if i.pull.is_some() { "PullRequest" } else { "Issue" }));
        let (content_node, content_type) = content_node.unwrap_or_default();
        json!({
            "id": item.id, "node_id": item.node_id, "project_node_id": project.node_id,
            "content_node_id": content_node, "content_type": content_type,
            "creator": self.user_json(&item.creator), "created_at": item.created_at,
            "updated_at": item.updated_at, "archived_at": null,
        })
    }
}

/// Percent-encodes a path segment.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
