//! The REST operations Foreman needs, each made idempotent where GitHub's endpoint is not.
//!
//! Creating a comment, a pull request or a check run is a POST that GitHub may have carried out even when
//! the answer was a 5xx or never came. Those are never resent blindly: the operation looks for what it would
//! have made (a comment by its hidden marker, a pull request by its head branch, a check run by its
//! `external_id`) and creates only when it is not there.

use std::time::Instant;

use base64::Engine;
use http::Method;
use serde_json::json;

use super::GithubError;
use super::auth::InstallationToken;
use super::client::{Auth, Call, Client, seg};
use super::types::*;
use crate::ids::{InstallationId, IssueNumber, RepoName, UserId};

fn repo_path(repo: &RepoName) -> String {
    format!("/repos/{}/{}", seg(repo.owner()), seg(repo.name()))
}

impl Client {
    /// `GET /repos/{owner}/{repo}/issues/{issue_number}`.
    ///
    /// Errors: [`GithubError::NotFound`] when the issue does not exist or was transferred.
    pub async fn issue(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Issue, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}";
        let call = Call::new(Method::GET, EP, format!("{}/issues/{number}", repo_path(repo)), Auth::Installation(inst));
        self.send(call).await?.json(EP)
    }

    /// Every comment on an issue, oldest first (`GET /repos/{owner}/{repo}/issues/{issue_number}/comments`,
    /// 100 per page, all pages).
    pub async fn issue_comments(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<Comment>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/issues/{issue_number}/comments";
        let path = format!("{}/issues/{number}/comments?per_page=100", repo_path(repo));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// An issue with all its comments.
    pub async fn issue_thread(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<IssueThread, GithubError> {
        let issue = self.issue(inst, repo, number).await?;
        let comments = self.issue_comments(inst, repo, number).await?;
        Ok(IssueThread { issue, comments })
    }

    /// `POST /repos/{owner}/{repo}/issues/{issue_number}/comments`, sent once: after a 5xx or a lost answer
    /// this returns [`GithubError::Ambiguous`] rather than risk a second comment. Use
    /// [`Client::upsert_marked_comment`] for a comment that must exist exactly once.
    pub async fn create_comment(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        body: &str,
    ) -> Result<Comment, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments";
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/issues/{number}/comments", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "body": body }))
        .creates();
        self.send(call).await?.json(EP)
    }

    /// `PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}`.
    pub async fn update_comment(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        comment_id: u64,
        body: &str,
    ) -> Result<Comment, GithubError> {
        const EP: &str = "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}";
        let call = Call::new(
            Method::PATCH,
            EP,
            format!("{}/issues/comments/{comment_id}", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "body": body }));
        self.send(call).await?.json(EP)
    }

    /// Foreman's own comment holding `marker` (a hidden HTML comment such as `<!-- foreman:tracking -->`).
    ///
    /// Only comments written by this app (`performed_via_github_app.id`) or, when GitHub leaves that out, by
    /// a bot account count: a person quoting the marker does not capture Foreman's comment.
    pub async fn find_marked_comment(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        marker: &str,
    ) -> Result<Option<Comment>, GithubError> {
        let comments = self.issue_comments(inst, repo, number).await?;
        let app_id = self.app_id();
        Ok(comments.into_iter().find(|c| {
            let ours = match &c.performed_via_github_app {
                Some(app) => app.id == app_id,
                None => c.user.kind == "Bot",
            };
            ours && c.body.contains(marker)
        }))
    }

    /// Writes Foreman's comment identified by `marker`: updates it in place when it exists, creates it
    /// otherwise. `body` gets the marker appended when it lacks it. Never makes a second comment: after an
    /// ambiguous create it looks for the marker before trying again.
    pub async fn upsert_marked_comment(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        marker: &str,
        body: &str,
    ) -> Result<Comment, GithubError> {
        let body = if body.contains(marker) { body.to_owned() } else { format!("{body}\n\n{marker}") };
        // Compared with what GitHub holds, which was scrubbed when it was sent.
        let body = self.scrub(&body).into_owned();
        let mut last = None;
        for _ in 0..=self.inner.options.retry.max_retries {
            if let Some(existing) = self.find_marked_comment(inst, repo, number, marker).await? {
                if existing.body == body {
                    return Ok(existing);
                }
                return self.update_comment(inst, repo, existing.id, &body).await;
            }
            match self.create_comment(inst, repo, number, &body).await {
                Err(e @ GithubError::Ambiguous { .. }) => {
                    tracing::warn!(%repo, issue = number.0, error = %e, "comment create outcome unknown; looking for its marker");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.expect("the loop ran at least once"))
    }

    /// Adds a reaction to an issue comment. GitHub answers 200 when the app already reacted the same way,
    /// so a retry never adds a second.
    pub async fn react_to_comment(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        comment_id: u64,
        content: Reaction,
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions";
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/issues/comments/{comment_id}/reactions", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "content": content }));
        self.send(call).await.map(drop)
    }

    /// Adds a reaction to an issue itself (idempotent like [`Client::react_to_comment`]).
    pub async fn react_to_issue(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        content: Reaction,
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/reactions";
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/issues/{number}/reactions", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "content": content }));
        self.send(call).await.map(drop)
    }

    /// Makes sure a label exists in the repository, creating it with its colour and description when missing:
    /// one `POST /repos/{owner}/{repo}/labels`, whose 422 `already_exists` (the label is there, or a concurrent
    /// or retried create made it) counts as success. Returns whether this call created it. Errors: GitHub's,
    /// after the client's retries.
    pub async fn ensure_label(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        label: &LabelSpec,
    ) -> Result<bool, GithubError> {
        const POST: &str = "POST /repos/{owner}/{repo}/labels";
        // Create first: one call whether or not the label exists (GitHub refuses a second one with 422
        // already_exists), where a look first would cost two for a new label. Safe to retry for the same reason.
        let post = Call::new(Method::POST, POST, format!("{}/labels", repo_path(repo)), Auth::Installation(inst))
            .body(json!({ "name": label.name, "color": label.color, "description": label.description }));
        match self.send(post).await {
            Ok(_) => Ok(true),
            Err(GithubError::Unprocessable { message, .. }) if message.contains("already_exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds labels to an issue, first creating any that the repository lacks (so GitHub does not invent them
    /// with a default colour). Adding a label the issue already has changes nothing, so this is retried freely.
    /// Returns the issue's labels afterwards.
    pub async fn add_labels(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        labels: &[LabelSpec],
    ) -> Result<Vec<Label>, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/labels";
        for l in labels {
            self.ensure_label(inst, repo, l).await?;
        }
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/issues/{number}/labels", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "labels": names }));
        self.send(call).await?.json(EP)
    }

    /// Adds labels that already exist in the repository to an issue
    /// (`POST /repos/{owner}/{repo}/issues/{issue_number}/labels`), without [`Client::ensure_label`] first: for
    /// callers that ensure each label once themselves. A name the repository lacks is created by GitHub with a
    /// default colour. Idempotent. Returns the issue's labels afterwards.
    pub async fn add_labels_by_name(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        names: &[&str],
    ) -> Result<Vec<Label>, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/issues/{issue_number}/labels";
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/issues/{number}/labels", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "labels": names }));
        self.send(call).await?.json(EP)
    }

    /// Removes a label from an issue. Returns false when the issue did not have it (GitHub's 404), which is
    /// what a retry after a lost answer sees.
    pub async fn remove_label(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        name: &str,
    ) -> Result<bool, GithubError> {
        const EP: &str = "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}";
        let call = Call::new(
            Method::DELETE,
            EP,
            format!("{}/issues/{number}/labels/{}", repo_path(repo), seg(name)),
            Auth::Installation(inst),
        );
        match self.send(call).await {
            Ok(_) => Ok(true),
            Err(GithubError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A user's permission on a repository, cached by user id for [`super::ClientOptions::permission_ttl`]
    /// (the id is stable across renames; the login is only how GitHub's endpoint is addressed). The read is
    /// conditional, so an unchanged answer costs no quota. A user who is not a collaborator gets
    /// [`Permission::None`] or [`Permission::Read`], as GitHub answers.
    pub async fn collaborator_permission(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        user_id: UserId,
        login: &str,
    ) -> Result<Permission, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/collaborators/{username}/permission";
        let key = (repo.to_string(), user_id.0);
        let ttl = self.inner.options.permission_ttl;
        if let Some((p, at)) = self.inner.permissions.lock().expect("permissions lock").get(&key)
            && at.elapsed() < ttl
        {
            return Ok(*p);
        }
        let call = Call::new(
            Method::GET,
            EP,
            format!("{}/collaborators/{}/permission", repo_path(repo), seg(login)),
            Auth::Installation(inst),
        )
        .conditional();
        let answer: serde_json::Value = self.send(call).await?.json(EP)?;
        let permission = ["role_name", "permission"]
            .iter()
            .find_map(|k| answer.get(*k).and_then(|v| v.as_str()).and_then(Permission::parse))
            .ok_or(GithubError::Unexpected { endpoint: EP, message: "no permission in the answer".into() })?;
        self.inner.permissions.lock().expect("permissions lock").insert(key, (permission, Instant::now()));
        Ok(permission)
    }

    /// Pull requests whose head is `branch` in this repository, in every state, newest first
    /// (`GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=all`).
    pub async fn pulls_by_head(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        branch: &str,
    ) -> Result<Vec<PullRequest>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/pulls";
        let head = seg(&format!("{}:{}", repo.owner(), branch));
        let path = format!("{}/pulls?head={head}&state=all&per_page=100", repo_path(repo));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// `POST /repos/{owner}/{repo}/pulls`, sent once (see [`Client::create_comment`]). Errors:
    /// [`GithubError::Unprocessable`] when one is already open for the head, or the head has no commits.
    pub async fn create_pull(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        pull: &NewPullRequest,
    ) -> Result<PullRequest, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/pulls";
        let body = serde_json::to_value(pull).expect("a pull request serialises");
        let call = Call::new(Method::POST, EP, format!("{}/pulls", repo_path(repo)), Auth::Installation(inst))
            .body(body)
            .creates();
        self.send(call).await?.json(EP)
    }

    /// `PATCH /repos/{owner}/{repo}/pulls/{pull_number}`.
    pub async fn update_pull(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        update: &PullRequestUpdate,
    ) -> Result<PullRequest, GithubError> {
        const EP: &str = "PATCH /repos/{owner}/{repo}/pulls/{pull_number}";
        let body = serde_json::to_value(update).expect("an update serialises");
        let call =
            Call::new(Method::PATCH, EP, format!("{}/pulls/{number}", repo_path(repo)), Auth::Installation(inst))
                .body(body);
        self.send(call).await?.json(EP)
    }

    /// A new pull request for `pull.head`, or the open one, with its title and body brought up to date.
    /// Creates first (one call in the common case) and never opens a second: GitHub refuses a second open
    /// pull request for the same head with 422 "A pull request already exists", and after an ambiguous
    /// create (a 5xx or no answer) it looks by head before trying again.
    pub async fn upsert_pull(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        pull: &NewPullRequest,
    ) -> Result<PullRequest, GithubError> {
        // Compared with what GitHub holds, which was scrubbed when it was sent.
        let pull = &NewPullRequest {
            title: self.scrub(&pull.title).into_owned(),
            body: self.scrub(&pull.body).into_owned(),
            ..pull.clone()
        };
        let mut last = None;
        for _ in 0..=self.inner.options.retry.max_retries {
            if last.is_none() {
                match self.create_pull(inst, repo, pull).await {
                    Ok(created) => return Ok(created),
                    Err(e @ GithubError::Ambiguous { .. }) => last = Some(e),
                    Err(GithubError::Unprocessable { message, .. }) if message.contains("already exists") => {}
                    Err(e) => return Err(e),
                }
            }
            let open = self.pulls_by_head(inst, repo, &pull.head).await?.into_iter().find(|p| p.state == "open");
            match open {
                Some(existing) if existing.title == pull.title && existing.body.as_deref() == Some(&pull.body) => {
                    return Ok(existing);
                }
                Some(existing) => {
                    let update = PullRequestUpdate {
                        title: Some(pull.title.clone()),
                        body: Some(pull.body.clone()),
                        state: None,
                    };
                    return self.update_pull(inst, repo, existing.number, &update).await;
                }
                // The ambiguous create did not happen: try it again.
                None if last.is_some() => last = None,
                None => {
                    return Err(GithubError::Unexpected {
                        endpoint: "POST /repos/{owner}/{repo}/pulls",
                        message: "GitHub said a pull request exists for the branch, but none is open".into(),
                    });
                }
            }
        }
        Err(last.unwrap_or(GithubError::Unexpected {
            endpoint: "POST /repos/{owner}/{repo}/pulls",
            message: "no answer after every retry".into(),
        }))
    }

    /// A file's text on the repository's default branch (`GET /repos/{owner}/{repo}/contents/{path}`), or
    /// `None` when there is no such file. Conditional: an unchanged file is served from the ETag cache and
    /// costs no quota. Errors: [`GithubError::Unexpected`] when the path is a directory or the file is not UTF-8.
    pub async fn file_on_default_branch(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        path: &str,
    ) -> Result<Option<String>, GithubError> {
        self.file_at(inst, repo, path, None).await
    }

    /// A file's text at `git_ref` (a branch, tag or commit SHA; `None`: the default branch), as
    /// `GET /repos/{owner}/{repo}/contents/{path}?ref={ref}` answers it, or `None` when there is no such
    /// file at that ref. Conditional like [`Client::file_on_default_branch`]. Errors: as there.
    pub async fn file_at(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        path: &str,
        git_ref: Option<&str>,
    ) -> Result<Option<String>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/contents/{path}";
        let encoded: Vec<String> = path.trim_matches('/').split('/').map(seg).collect();
        let mut url = format!("{}/contents/{}", repo_path(repo), encoded.join("/"));
        if let Some(r) = git_ref {
            url.push_str(&format!("?ref={}", seg(r)));
        }
        let call = Call::new(Method::GET, EP, url, Auth::Installation(inst)).conditional();
        let answer: serde_json::Value = match self.send(call).await {
            Ok(reply) => reply.json(EP)?,
            Err(GithubError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let content = answer
            .get("content")
            .and_then(|c| c.as_str())
            .ok_or(GithubError::Unexpected { endpoint: EP, message: "not a file".into() })?;
        let cleaned: String = content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .map_err(|e| GithubError::Unexpected { endpoint: EP, message: format!("content is not base64: {e}") })?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| GithubError::Unexpected { endpoint: EP, message: "the file is not UTF-8 text".into() })
    }

    /// A repository (`GET /repos/{owner}/{repo}`): its default branch and clone URL. Conditional (a 304 is
    /// free). Errors: [`GithubError::NotFound`] when the installation cannot see it.
    pub async fn repository(&self, inst: InstallationId, repo: &RepoName) -> Result<Repository, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}";
        let call = Call::new(Method::GET, EP, repo_path(repo), Auth::Installation(inst)).conditional();
        self.send(call).await?.json(EP)
    }

    /// Creates a check run (`POST /repos/{owner}/{repo}/check-runs`). With an `external_id`, an ambiguous
    /// create is followed by a look for a run with that id on the commit
    /// (`GET /repos/{owner}/{repo}/commits/{ref}/check-runs`) before trying again, so none is duplicated.
    pub async fn create_check_run(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        spec: &CheckRunSpec,
    ) -> Result<CheckRun, GithubError> {
        self.create_check_run_annotated::<serde_json::Value>(inst, repo, spec, &[]).await
    }

    /// [`Client::create_check_run`] with `output.annotations` (GitHub's annotation objects: `path`,
    /// `start_line`, `end_line`, optional `start_column`/`end_column`, `annotation_level`, `message`,
    /// optional `title`; at most 50 per request, as GitHub accepts). `spec.output` must be set when
    /// `annotations` is not empty.
    pub async fn create_check_run_annotated<A: serde::Serialize>(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        spec: &CheckRunSpec,
        annotations: &[A],
    ) -> Result<CheckRun, GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/check-runs";
        let mut body = serde_json::to_value(spec).expect("a check run serialises");
        if !annotations.is_empty()
            && let Some(output) = body.get_mut("output").and_then(serde_json::Value::as_object_mut)
        {
            output.insert("annotations".into(), serde_json::to_value(annotations).expect("annotations serialise"));
        }
        let mut last = None;
        for _ in 0..=self.inner.options.retry.max_retries {
            if last.is_some()
                && let (Some(sha), Some(id)) = (&spec.head_sha, &spec.external_id)
                // A commit GitHub cannot list runs for has none of ours.
                && let Some(run) = self
                    .check_runs_for(inst, repo, sha)
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(Vec::new()) } else { Err(e) })?
                    .into_iter()
                    .find(|r| r.external_id.as_ref() == Some(id))
            {
                return Ok(run);
            }
            let call = Call::new(Method::POST, EP, format!("{}/check-runs", repo_path(repo)), Auth::Installation(inst))
                .body(body.clone())
                .creates();
            match self.send(call).await {
                Err(e @ GithubError::Ambiguous { .. }) if spec.external_id.is_some() => last = Some(e),
                other => return other?.json(EP),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }

    /// The check runs on a commit (`GET /repos/{owner}/{repo}/commits/{ref}/check-runs`).
    pub async fn check_runs_for(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        sha: &str,
    ) -> Result<Vec<CheckRun>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/commits/{ref}/check-runs";
        let path = format!("{}/commits/{}/check-runs?per_page=100", repo_path(repo), seg(sha));
        self.paginate(EP, path, Auth::Installation(inst), |mut v| v.get_mut("check_runs").map(serde_json::Value::take))
            .await
    }

    /// `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}`.
    pub async fn update_check_run(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        id: u64,
        spec: &CheckRunSpec,
    ) -> Result<CheckRun, GithubError> {
        const EP: &str = "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}";
        let body = serde_json::to_value(spec).expect("a check run serialises");
        let call =
            Call::new(Method::PATCH, EP, format!("{}/check-runs/{id}", repo_path(repo)), Auth::Installation(inst))
                .body(body);
        self.send(call).await?.json(EP)
    }

    /// The App itself (`GET /app`, with the App's JWT): its name, slug, permissions and events. Errors:
    /// [`GithubError::Unauthorized`] when the private key does not belong to the configured app id.
    pub async fn app(&self) -> Result<App, GithubError> {
        const EP: &str = "GET /app";
        self.send(Call::new(Method::GET, EP, "/app".into(), Auth::App)).await?.json(EP)
    }

    /// The app's installations (`GET /app/installations`, all pages, with the app's JWT).
    pub async fn installations(&self) -> Result<Vec<Installation>, GithubError> {
        self.paginate("GET /app/installations", "/app/installations?per_page=100".into(), Auth::App, Some).await
    }

    /// The repositories an installation can reach (`GET /installation/repositories`, all pages).
    pub async fn installation_repositories(&self, inst: InstallationId) -> Result<Vec<Repository>, GithubError> {
        self.paginate(
            "GET /installation/repositories",
            "/installation/repositories?per_page=100".into(),
            Auth::Installation(inst),
            |mut v| v.get_mut("repositories").map(serde_json::Value::take),
        )
        .await
    }

    /// The app's recent webhook deliveries, newest first (`GET /app/hook/deliveries`), up to `limit`
    /// (GitHub keeps them 3 days).
    pub async fn hook_deliveries(&self, limit: usize) -> Result<Vec<HookDelivery>, GithubError> {
        const EP: &str = "GET /app/hook/deliveries";
        let mut out: Vec<HookDelivery> = Vec::new();
        let mut next = Some(format!("/app/hook/deliveries?per_page={}", limit.clamp(1, 100)));
        while let Some(path) = next.take() {
            let reply = self.send(Call::new(Method::GET, EP, path, Auth::App)).await?;
            out.extend(reply.json::<Vec<HookDelivery>>(EP)?);
            if out.len() < limit {
                next = reply.next_page();
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Asks GitHub to deliver a past delivery again (`POST /app/hook/deliveries/{delivery_id}/attempts`,
    /// 202). Retried like a read: a duplicate redelivery carries the same `X-GitHub-Delivery` GUID, which
    /// ingress deduplicates.
    pub async fn redeliver(&self, delivery_id: u64) -> Result<(), GithubError> {
        const EP: &str = "POST /app/hook/deliveries/{delivery_id}/attempts";
        let call =
            Call::new(Method::POST, EP, format!("/app/hook/deliveries/{delivery_id}/attempts"), Auth::App).unpaced();
        self.send(call).await.map(drop)
    }

    /// Mints a token for one agent session: scoped to `repo` alone, with `contents: write` and
    /// `pull_requests: write` (and the `metadata: read` GitHub always adds). It is not cached; it lives one
    /// hour. Errors: [`GithubError::Unprocessable`] when the installation cannot reach the repository.
    pub async fn session_token(&self, inst: InstallationId, repo: &RepoName) -> Result<InstallationToken, GithubError> {
        let scope = json!({
            "repositories": [repo.name()],
            "permissions": { "contents": "write", "pull_requests": "write" },
        });
        self.mint(inst, Some(scope)).await
    }

    /// One pull request (`GET /repos/{owner}/{repo}/pulls/{pull_number}`): its head branch for a follow-up.
    pub async fn pull(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<PullRequest, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/pulls/{pull_number}";
        let call = Call::new(Method::GET, EP, format!("{}/pulls/{number}", repo_path(repo)), Auth::Installation(inst));
        self.send(call).await?.json(EP)
    }

    /// Requests reviews (`POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers`). Idempotent on
    /// GitHub's side: asking again for a reviewer already requested changes nothing. GitHub answers 422 when a
    /// reviewer is the pull request's author or not a collaborator; that is [`GithubError::Unprocessable`].
    pub async fn request_reviewers(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
        reviewers: &[&str],
    ) -> Result<(), GithubError> {
        const EP: &str = "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers";
        let call = Call::new(
            Method::POST,
            EP,
            format!("{}/pulls/{number}/requested_reviewers", repo_path(repo)),
            Auth::Installation(inst),
        )
        .body(json!({ "reviewers": reviewers }));
        self.send(call).await.map(drop)
    }

    /// A pull request's reviews, oldest first (`GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews`).
    pub async fn pull_reviews(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<Review>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews";
        let path = format!("{}/pulls/{number}/reviews?per_page=100", repo_path(repo));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }

    /// A pull request's inline review comments, oldest first
    /// (`GET /repos/{owner}/{repo}/pulls/{pull_number}/comments`, 100 per page, all pages).
    pub async fn pull_review_comments(
        &self,
        inst: InstallationId,
        repo: &RepoName,
        number: IssueNumber,
    ) -> Result<Vec<ReviewComment>, GithubError> {
        const EP: &str = "GET /repos/{owner}/{repo}/pulls/{pull_number}/comments";
        let path = format!("{}/pulls/{number}/comments?per_page=100", repo_path(repo));
        self.paginate(EP, path, Auth::Installation(inst), Some).await
    }
}
