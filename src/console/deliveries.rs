//! The deliveries pages, server-wide (logins in `console.admins` only; anyone else gets 404):
//!
//! - `GET /deliveries[?before=SEQ]`: the stored deliveries, newest first, [`PAGE`] at a time, with their
//!   event and action, repository, when they were received, and the decisions Foreman took with what became
//!   of each; `GET /deliveries?id=…` (the search box, a plain form) opens the delivery with that id.
//!   `state=pending|processed|dead`, `event=NAME[.ACTION]` and `repo=owner/name` (the filter form) keep the
//!   deliveries that match all of them: the dead letters, say, or one repository's `issue_comment`s.
//! - `GET /deliveries/{id}`: one delivery: its payload's summary (and the payload itself, folded), its
//!   decisions and their results, and a "Replay" button.
//! - `POST /deliveries/{id}/replay` (form `csrf`): the same page with what Foreman would decide now for the
//!   stored payload, with the issue's job state as the store has it now ([`crate::decide::replay::replay`],
//!   as `foreman replay` does). Nothing is carried out: no job changes, no GitHub call.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::signin::{Viewer, csrf_ok, signin_page, viewer};
use super::{Console, message, not_found, render};
use crate::ids::DeliveryId;
use crate::store::{DeliveryRecord, DeliveryState};

/// Deliveries per page of the list.
pub const PAGE: usize = 50;
/// The most characters of the payload the delivery page shows (pretty-printed); the API's
/// `/api/deliveries/{id}/payload` has it whole.
pub const MAX_PAYLOAD_CHARS: usize = 20_000;
/// The most characters of a comment's body in the payload's summary.
const MAX_COMMENT_CHARS: usize = 300;

/// A delivery id as GitHub makes them (a GUID), or as a person may type one: letters, digits, `-`, `_`,
/// at most 100 characters. Nothing else is looked up.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The signed-in admin, or the page to answer instead: the sign-in page (coming back to `next`), or 404
/// for anyone not in `console.admins`.
async fn admin(console: &Console, headers: &HeaderMap, next: &str) -> Result<Viewer, Response> {
    let Some(viewer) = viewer(console, headers).await else { return Err(signin_page(next)) };
    if !viewer.admin {
        return Err(not_found());
    }
    Ok(viewer)
}

fn unavailable() -> Response {
    message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The store could not be read.")
}

/// `t` in RFC 3339, to the second.
fn rfc3339(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// One decision as a row: its name, its other fields as `key: value`, and its result.
fn decision(value: &Value) -> minijinja::Value {
    let Some(obj) = value.as_object() else {
        return minijinja::context! { name => value.to_string(), fields => "", result => None::<String> };
    };
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let name = obj.get("decision").map(text).unwrap_or_default();
    let result = obj.get("result").map(text);
    let fields: Vec<String> = obj
        .iter()
        .filter(|(k, _)| *k != "decision" && *k != "result")
        .map(|(k, v)| format!("{k}: {}", text(v)))
        .collect();
    minijinja::context! { name, fields => fields.join(", "), result }
}

/// A stored delivery as the templates show it.
fn record(r: &DeliveryRecord) -> minijinja::Value {
    let (state, at, decisions, summary, error) = match &r.processing {
        DeliveryState::Pending => ("pending", None, Vec::new(), String::new(), None),
        DeliveryState::Processed { at, decisions, summary } => {
            ("processed", Some(rfc3339(*at)), decisions.iter().map(decision).collect(), summary.clone(), None)
        }
        DeliveryState::Dead { at, error } => {
            ("dead", Some(rfc3339(*at)), Vec::new(), String::new(), Some(error.clone()))
        }
    };
    minijinja::context! {
        seq => r.seq, id => r.meta.id.as_str(), event => r.meta.event.clone(), action => r.meta.action.clone(),
        repository => r.meta.repository.clone(), installation => r.meta.installation.map(|i| i.0),
        received_at => rfc3339(r.meta.received_at), body_len => r.meta.body_len,
        state, finished_at => at, decisions, summary, error,
    }
}

/// The most stored deliveries one filtered page reads, newest first, looking for [`PAGE`] that match; then
/// the page shows what it found and links on to older ones. Bounds the work of a filter that matches few
/// (each record read is a sled lookup of a few KiB: about 2,000 take well under 100 ms).
pub const FILTER_SCAN: usize = 2_000;

/// The query of the list: the search box's `id`, the page's `before`, and the filter form's fields as typed
/// (empty ones filter nothing).
#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    id: Option<String>,
    before: Option<u64>,
    state: Option<String>,
    event: Option<String>,
    repo: Option<String>,
}

/// Which deliveries the list keeps: all of the set conditions hold.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    /// `pending`, `processed` or `dead`.
    state: Option<&'static str>,
    /// The event (`X-GitHub-Event`), and its action when given as `event.action`.
    event: Option<(String, Option<String>)>,
    /// The repository, `owner/name`, compared without case.
    repo: Option<String>,
}

impl Filter {
    /// The filter of `q`, or what to say about a field that cannot be one.
    fn of(q: &ListQuery) -> Result<Filter, String> {
        let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let state = match set(&q.state).as_deref() {
            None => None,
            Some("pending") => Some("pending"),
            Some("processed") => Some("processed"),
            Some("dead") => Some("dead"),
            Some(other) => return Err(format!("state must be pending, processed or dead, not '{other}'")),
        };
        let word =
            |w: &str| !w.is_empty() && w.len() <= 100 && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let event = match set(&q.event) {
            None => None,
            Some(e) => {
                let (name, action) = match e.split_once('.') {
                    Some((n, a)) => (n.to_owned(), Some(a.to_owned())),
                    None => (e.clone(), None),
                };
                if !word(&name) || action.as_deref().is_some_and(|a| !word(a)) {
                    return Err(format!("event must be an event name, or name.action (issues.labeled), not '{e}'"));
                }
                Some((name, action))
            }
        };
        let repo = match set(&q.repo) {
            None => None,
            Some(r) if r.parse::<crate::ids::RepoName>().is_ok() => Some(r),
            Some(r) => return Err(format!("repo must be owner/name, not '{r}'")),
        };
        Ok(Filter { state, event, repo })
    }

    fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    fn matches(&self, r: &DeliveryRecord) -> bool {
        let state = match r.processing {
            DeliveryState::Pending => "pending",
            DeliveryState::Processed { .. } => "processed",
            DeliveryState::Dead { .. } => "dead",
        };
        self.state.is_none_or(|s| s == state)
            && self.event.as_ref().is_none_or(|(name, action)| {
                r.meta.event == *name && action.as_ref().is_none_or(|a| r.meta.action.as_deref() == Some(a.as_str()))
            })
            && self
                .repo
                .as_ref()
                .is_none_or(|repo| r.meta.repository.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(repo)))
    }

    /// The fields as the form shows them back.
    fn shown(&self) -> minijinja::Value {
        let event = self.event.as_ref().map(|(n, a)| a.as_ref().map_or_else(|| n.clone(), |a| format!("{n}.{a}")));
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("state", self.state.map(str::to_owned)), ("event", event.clone()), ("repo", self.repo.clone())]
        {
            if let Some(v) = v {
                query.append_pair(k, &v);
            }
        }
        minijinja::context! {
            state => self.state, event, repo => self.repo.clone(), any => !self.is_empty(), query => query.finish(),
        }
    }
}

/// Up to [`PAGE`] deliveries before `before` that `filter` keeps, newest first, reading at most
/// [`FILTER_SCAN`] when it filters; and where older ones start, when there may be more.
fn page_of(
    store: &crate::store::Store,
    before: Option<u64>,
    filter: &Filter,
) -> Result<(Vec<DeliveryRecord>, Option<u64>), crate::store::StoreError> {
    if filter.is_empty() {
        let page = store.recent_deliveries(before, PAGE)?;
        let older = (page.len() == PAGE).then(|| page.last().map(|r| r.seq)).flatten();
        return Ok((page, older));
    }
    const BATCH: usize = 200;
    let (mut out, mut cursor, mut read) = (Vec::new(), before, 0);
    loop {
        let batch = store.recent_deliveries(cursor, BATCH)?;
        let last_batch = batch.len() < BATCH;
        for r in batch {
            read += 1;
            cursor = Some(r.seq);
            if filter.matches(&r) {
                out.push(r);
                if out.len() == PAGE {
                    return Ok((out, cursor));
                }
            }
            if read >= FILTER_SCAN {
                return Ok((out, cursor));
            }
        }
        if last_batch {
            return Ok((out, None));
        }
    }
}

/// `GET /deliveries`: see the module's documentation.
pub(crate) async fn list(State(console): State<Console>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let viewer = match admin(&console, &headers, "/deliveries").await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let store = console.inner.options.store.clone();
    let searched = q.id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned);
    if let Some(id) = &searched {
        let found = valid_id(id) && matches!(store.delivery(&DeliveryId(id.clone())), Ok(Some(_)));
        if found {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/deliveries/{id}"))]).into_response();
        }
    }
    let filter = match Filter::of(&q) {
        Ok(f) => f,
        Err(why) => return message(StatusCode::BAD_REQUEST, "Not a filter", &format!("The filter's {why}.")),
    };
    let before = q.before;
    let shown = filter.shown();
    let (page, older) = match tokio::task::spawn_blocking(move || page_of(&store, before, &filter)).await {
        Ok(Ok(p)) => p,
        _ => return unavailable(),
    };
    let deliveries: Vec<minijinja::Value> = page.iter().map(record).collect();
    let status = if searched.is_some() { StatusCode::NOT_FOUND } else { StatusCode::OK };
    render(
        status,
        "deliveries.html",
        minijinja::context! {
            title => "Deliveries", login => viewer.login, csrf => viewer.csrf,
            deliveries, older, newest => before.is_none(), searched, inbox => console.inner.options.store.inbox_depth(),
            filter => shown,
        },
    )
}

/// What a payload is about, in a few lines: who sent it, the issue or pull request, the label, the
/// comment (clipped), the pushed ref.
fn payload_summary(payload: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let s = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
    };
    if let Some(login) = s(payload, &["sender", "login"]) {
        out.push(("Sender".to_owned(), login));
    }
    for (key, name) in [("issue", "Issue"), ("pull_request", "Pull request")] {
        if let Some(number) = s(payload, &[key, "number"]) {
            let title = s(payload, &[key, "title"]).unwrap_or_default();
            out.push((name.to_owned(), format!("#{number} {title}")));
        }
    }
    if let Some(label) = s(payload, &["label", "name"]) {
        out.push(("Label".to_owned(), label));
    }
    if let Some(body) = s(payload, &["comment", "body"]).or_else(|| s(payload, &["review", "body"])) {
        let clipped: String = body.chars().take(MAX_COMMENT_CHARS).collect();
        let more = if clipped.len() < body.len() { " …" } else { "" };
        out.push(("Comment".to_owned(), format!("{clipped}{more}")));
    }
    if let Some(git_ref) = s(payload, &["ref"]) {
        out.push(("Ref".to_owned(), git_ref));
    }
    if let Some(author) =
        s(payload, &["comment", "author_association"]).or_else(|| s(payload, &["issue", "author_association"]))
    {
        out.push(("Author association".to_owned(), author));
    }
    out
}

/// `GET /deliveries/{id}`: see the module's documentation.
pub(crate) async fn show(State(console): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let viewer = match admin(&console, &headers, &format!("/deliveries/{id}")).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    delivery_page(&console, viewer, &id, false).await
}

/// `POST /deliveries/{id}/replay` (form `csrf`): the delivery's page with what Foreman would decide now.
/// 401 not signed in, 403 without this session's CSRF token, 404 for anyone not in `console.admins` or an
/// unknown delivery.
pub(crate) async fn replay(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(viewer) = viewer(&console, &headers).await else {
        return message(StatusCode::UNAUTHORIZED, "Sign in first", "Replaying needs a signed-in person.");
    };
    if !csrf_ok(&viewer, &body) {
        tracing::warn!(login = %viewer.login, delivery = %id, "a replay without this session's CSRF token refused");
        return message(StatusCode::FORBIDDEN, "Refused", "The form is not from this session. Reload the page.");
    }
    if !viewer.admin {
        return not_found();
    }
    delivery_page(&console, viewer, &id, true).await
}

/// The delivery's page; with `replay`, also what Foreman would decide now.
async fn delivery_page(console: &Console, viewer: Viewer, id: &str, replay: bool) -> Response {
    if !valid_id(id) {
        return not_found();
    }
    let store = console.inner.options.store.clone();
    let delivery_id = DeliveryId(id.to_owned());
    let read = tokio::task::spawn_blocking(move || {
        let Some(r) = store.delivery(&delivery_id)? else { return Ok(None) };
        let body = store.delivery_body(r.seq)?.map(|(_, b)| b);
        Ok::<_, crate::store::StoreError>(Some((r, body)))
    })
    .await;
    let (r, body) = match read {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return not_found(),
        _ => return unavailable(),
    };
    let payload: Option<Value> = body.as_ref().and_then(|b| serde_json::from_slice(b).ok());
    let summary: Vec<minijinja::Value> = payload
        .as_ref()
        .map(payload_summary)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| minijinja::context! { name, value })
        .collect();
    // The job of the issue or pull request the payload is about, when the store has one.
    let number = payload.as_ref().and_then(|p| {
        ["issue", "pull_request"].iter().find_map(|k| p.get(k).and_then(|i| i.get("number")).and_then(Value::as_u64))
    });
    let job = match (r.meta.repository.as_deref().and_then(|r| r.parse::<crate::ids::RepoName>().ok()), number) {
        (Some(repo), Some(n)) => console
            .inner
            .options
            .store
            .job(&repo, crate::ids::IssueNumber(n))
            .ok()
            .flatten()
            .map(|_| format!("{repo}#{n}")),
        _ => None,
    };
    let pretty = payload.as_ref().and_then(|p| serde_json::to_string_pretty(p).ok()).map(|p| {
        if p.chars().count() > MAX_PAYLOAD_CHARS {
            p.chars().take(MAX_PAYLOAD_CHARS).collect::<String>() + "\n…"
        } else {
            p
        }
    });
    let replayed = match (replay, &body) {
        (false, _) => None,
        (true, None) => Some(minijinja::context! { error => "The payload is no longer stored." }),
        (true, Some(body)) => Some(decide_now(console, &r.meta, body).await),
    };
    render(
        StatusCode::OK,
        "delivery.html",
        minijinja::context! {
            title => format!("Delivery {id}"), login => viewer.login, csrf => viewer.csrf,
            d => record(&r), summary, job, payload => pretty, replayed,
        },
    )
}

/// What Foreman would decide now for `body`: the decision core ([`crate::decide::replay`]) on the payload,
/// with the `[triggers]` the inbox worker would use now (the server's, replaced by the repository's
/// constitution where it sets them, read through the worker's cache) and the issue's job state as stored
/// now. Nothing else is read: a fact the worker would look up on GitHub comes out as a `lookup`.
async fn decide_now(console: &Console, meta: &crate::store::DeliveryMeta, body: &[u8]) -> minijinja::Value {
    let event = match crate::event::decode(&meta.event, body) {
        Ok(event) => event.with_delivery(meta.id.clone()),
        Err(e) => {
            return minijinja::context! { error => format!("{e}: the inbox worker would dead-letter this delivery.") };
        }
    };
    let backend = console.inner.options.backend.get();
    let server = backend.as_ref().map_or(&console.inner.options.triggers, |b| &b.triggers);
    let (mut config, mut triggers) = (std::borrow::Cow::Borrowed(server), "the server's".to_owned());
    let mut job = None;
    if let Some(issue) = event.issue() {
        if let (Some(backend), Some(inst)) = (&backend, event.installation) {
            match backend.constitutions.get(inst, &issue.repo).await {
                Ok(loaded) if loaded.repo_text.is_none() && loaded.org_text.is_none() => {
                    triggers = format!("the server's ({} has no constitution)", issue.repo);
                }
                Ok(loaded) => {
                    config = std::borrow::Cow::Owned(loaded.effective.decide_config(server));
                    triggers = format!("the server's, with what {}'s constitution sets", issue.repo);
                }
                Err(e) => triggers = format!("the server's ({}'s constitution: {e})", issue.repo),
            }
        }
        job = console.inner.options.store.job(&issue.repo, issue.number).ok().flatten().map(|j| j.state);
    }
    let decisions: Vec<minijinja::Value> = crate::decide::replay::replay_event(&config, &event, job)
        .iter()
        .map(|a| decision(&serde_json::to_value(a).unwrap_or(Value::Null)))
        .collect();
    minijinja::context! { decisions, job => job.map(|s| s.to_string()), triggers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: &str, event: &str, repo: &str) -> ListQuery {
        let some = |s: &str| Some(s.to_owned());
        ListQuery { state: some(state), event: some(event), repo: some(repo), ..ListQuery::default() }
    }

    #[test]
    fn a_filter_takes_its_fields_trimmed_and_empty_ones_as_unset() {
        assert!(Filter::of(&query("", " ", "")).unwrap().is_empty());
        let f = Filter::of(&query("dead", " issues.labeled ", "Acme/Widgets")).unwrap();
        assert_eq!(f.state, Some("dead"));
        assert_eq!(f.event, Some(("issues".to_owned(), Some("labeled".to_owned()))));
        assert_eq!(f.repo.as_deref(), Some("Acme/Widgets"));
        assert_eq!(Filter::of(&query("", "push", "")).unwrap().event, Some(("push".to_owned(), None)));
    }

    #[test]
    fn a_field_that_cannot_be_a_filter_is_named() {
        let e = Filter::of(&query("gone", "", "")).unwrap_err();
        assert!(e.starts_with("state must be pending, processed or dead"), "{e}");
        let e = Filter::of(&query("", "issues.<script>", "")).unwrap_err();
        assert!(e.starts_with("event must be"), "{e}");
        let e = Filter::of(&query("", "", "no-slash")).unwrap_err();
        assert!(e.starts_with("repo must be owner/name"), "{e}");
    }
}
