//! Webhook deliveries: the envelope (installation, repository, organization, sender), recording,
//! and a background task that posts them in order with GitHub's headers.
//!
//! Headers as documented in "Webhook events and payloads" (docs.github.com): `X-GitHub-Event`,
//! `X-GitHub-Delivery`, `X-GitHub-Hook-ID`, `X-GitHub-Hook-Installation-Target-ID`,
//! `X-GitHub-Hook-Installation-Target-Type`, `X-Hub-Signature-256`, `User-Agent: GitHub-Hookshot/…`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::server::{Inner, Req, Resp};
use crate::world::{Delivery, World, ts};

/// How long the simulator waits for the receiver to answer a delivery; GitHub gives 10 s.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The hook id reported in `X-GitHub-Hook-ID` (the app has one webhook).
pub const HOOK_ID: u64 = 4_242_424;

/// Wraps `body` in the envelope every delivery carries, records it, and queues it for sending. An empty
/// `action` is left out (`push` has none).
///
/// `repo` is a full name (`owner/name`) or `None` for events without a repository
/// (`projects_v2_item`, whose `organization` comes from `org`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    inner: &Inner,
    w: &mut World,
    event: &str,
    action: &str,
    repo: Option<&str>,
    org: Option<&str>,
    sender: &str,
    body: Map<String, Value>,
) {
    let mut payload = Map::new();
    // `push` (and a few other events) carry no `action`: pass "" for those.
    if !action.is_empty() {
        payload.insert("action".into(), json!(action));
    }
    payload.extend(body);
    let mut repository_id = None;
    let account = match repo {
        Some(full) => {
            let r = w.repos.get(full).cloned();
            r.map(|r| {
                repository_id = Some(r.id);
                payload.insert("repository".into(), w.repo_json(&r));
                r.owner.clone()
            })
        }
        None => org.map(str::to_string),
    };
    if !crate::manifest::delivers(w, account.as_deref()) {
        return;
    }
    if let Some(o) = account.as_deref().and_then(|a| w.org_json(a)) {
        payload.insert("organization".into(), o);
    }
    payload.insert("sender".into(), w.user_json(sender));
    let installation_id = account.as_deref().map(|a| w.installation_for(a));
    if let Some(id) = installation_id {
        payload.insert(
            "installation".into(),
            json!({"id": id, "node_id": format!("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{id}")}),
        );
    }
    let id = w.id();
    let d = Delivery {
        id,
        guid: uuid::Uuid::new_v4().to_string(),
        event: event.into(),
        action: (!action.is_empty()).then(|| action.into()),
        installation_id,
        repository_id,
        delivered_at: ts(OffsetDateTime::now_utc()),
        redelivery: false,
        status_code: None,
        duration: 0.0,
        payload: Value::Object(payload),
        request_headers: Vec::new(),
        response_body: String::new(),
    };
    w.deliveries.push(d);
    let _ = inner.hook_tx.send(id);
}

/// Queues a new attempt of a past delivery (same GUID and payload, `redelivery: true`).
/// Returns the new delivery's id, or `None` when no delivery has that id.
pub(crate) fn redeliver(inner: &Inner, w: &mut World, id: u64) -> Option<u64> {
    let mut d = w.deliveries.iter().find(|d| d.id == id)?.clone();
    d.id = w.id();
    d.redelivery = true;
    d.status_code = None;
    d.delivered_at = ts(OffsetDateTime::now_utc());
    d.response_body.clear();
    let new_id = d.id;
    w.deliveries.push(d);
    let _ = inner.hook_tx.send(new_id);
    Some(new_id)
}

/// The sender task: posts queued deliveries one at a time, in the order they were made.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<u64>) {
    let client = reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build().expect("reqwest client");
    while let Some(id) = rx.recv().await {
        let found = {
            let w = inner.world.lock().expect("world lock");
            w.deliveries.iter().find(|d| d.id == id).map(|d| (d.guid.clone(), d.event.clone(), d.payload.clone()))
        };
        let Some((guid, event, payload)) = found else { continue };
        let body = serde_json::to_vec(&payload).expect("payload serialises");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(inner.config.webhook_secret.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let headers = vec![
            ("User-Agent".to_string(), "GitHub-Hookshot/sim".to_string()),
            ("Content-Type".into(), "application/json".into()),
            ("X-GitHub-Event".into(), event),
            ("X-GitHub-Delivery".into(), guid),
            ("X-GitHub-Hook-ID".into(), HOOK_ID.to_string()),
            ("X-GitHub-Hook-Installation-Target-ID".into(), inner.app_id.to_string()),
            ("X-GitHub-Hook-Installation-Target-Type".into(), "integration".into()),
            ("X-Hub-Signature-256".into(), signature),
        ];
        let started = Instant::now();
        let url = inner.webhook_url.lock().expect("webhook url lock").clone();
        let (status, response) = match &url {
            Some(url) => {
                let mut rq = client.post(url).body(body);
                for (k, v) in &headers {
                    rq = rq.header(k, v);
                }
                match rq.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (s, r.text().await.unwrap_or_default())
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "delivery failed");
                        (0, String::new())
                    }
                }
            }
            None => (0, String::new()),
        };
        let mut w = inner.world.lock().expect("world lock");
        if let Some(d) = w.deliveries.iter_mut().find(|d| d.id == id) {
            d.status_code = Some(status);
            d.duration = started.elapsed().as_secs_f64();
            d.request_headers = headers;
            d.response_body = response;
        }
        drop(w);
        inner.delivered.send_modify(|n| *n += 1);
        inner.changed.send_modify(|n| *n += 1);
    }
}

/// `GET /app/hook/deliveries`' pagination, GitHub's: by `cursor` rather than `page`. `items` are (id,
/// summary), newest first; a cursor `v1_{id}` (opaque to callers, who follow the `Link` header's `next`)
/// starts a page at the first delivery older than `id`. Every delivery made is listed, sent or not (GitHub
/// records deliveries it could not send too, so an App without a webhook URL can read them here).
pub(crate) fn paginate_deliveries(inner: &Inner, req: &Req, items: Vec<(u64, Value)>) -> Resp {
    let per_page = req.q("per_page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
    let before = req.q("cursor").and_then(|c| c.strip_prefix("v1_")).and_then(|id| id.parse::<u64>().ok());
    let mut rest = items.into_iter().filter(|(id, _)| before.is_none_or(|b| *id < b)).peekable();
    let mut page = Vec::new();
    let mut last = None;
    while page.len() < per_page
        && let Some((id, v)) = rest.next()
    {
        page.push(v);
        last = Some(id);
    }
    let resp = Resp::ok(Value::Array(page));
    match (rest.peek(), last) {
        (Some(_), Some(last)) => {
            let base = inner.world().base_url.clone();
            resp.header("link", format!("<{base}{}?per_page={per_page}&cursor=v1_{last}>; rel=\"next\"", req.path))
        }
        _ => resp,
    }
}
