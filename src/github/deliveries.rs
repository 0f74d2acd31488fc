//! The App's delivery log read as a source of deliveries (poll delivery mode): the entries newer than a
//! position, and one entry with the request GitHub made (its headers and payload). GitHub keeps the log
//! three days and records every delivery, also the ones it could not send (no webhook URL, a URL it cannot
//! reach), so an App without a public URL reads its events here.

use http::Method;
use serde::Deserialize;

use super::GithubError;
use super::client::{Auth, Call, Client};
use super::types::HookDelivery;

/// One entry of the delivery log with the request GitHub made (`GET /app/hook/deliveries/{delivery_id}`).
#[derive(Clone, Debug, Deserialize)]
pub struct HookDeliveryDetail {
    /// The log entry's id.
    pub id: u64,
    /// The `X-GitHub-Delivery` GUID (kept across redeliveries).
    pub guid: crate::ids::DeliveryId,
    /// The event name, e.g. `issues`.
    pub event: String,
    /// The request GitHub made, or would have made.
    pub request: HookRequest,
}

/// The request of a delivery: GitHub's headers (`X-GitHub-Event`, `X-GitHub-Delivery`, …) and the payload.
#[derive(Clone, Debug, Deserialize)]
pub struct HookRequest {
    /// The request headers; `null` on GitHub's side for some entries.
    #[serde(default)]
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// The webhook payload, a JSON object; `null` when GitHub no longer has it.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

impl Client {
    /// The entries of the App's delivery log newer than `after` (a log entry id; `None`: every entry GitHub
    /// keeps), oldest first, each id once (`GET /app/hook/deliveries` with the App's JWT, 100 a page,
    /// following the `Link` header's `cursor` back until a page reaches `after` or the log ends). A failure
    /// is returned at once, not retried: the poller reads the log again at its next pass.
    pub async fn hook_deliveries_after(&self, after: Option<u64>) -> Result<Vec<HookDelivery>, GithubError> {
        const EP: &str = "GET /app/hook/deliveries";
        let mut out: Vec<HookDelivery> = Vec::new();
        let mut next = Some("/app/hook/deliveries?per_page=100".to_owned());
        while let Some(path) = next.take() {
            let reply = self.send(Call::new(Method::GET, EP, path, Auth::App).scheduled()).await?;
            let page: Vec<HookDelivery> = reply.json(EP)?;
            let reached = after.is_some_and(|a| page.iter().any(|d| d.id <= a));
            out.extend(page.into_iter().filter(|d| after.is_none_or(|a| d.id > a)));
            if !reached {
                next = reply.next_page();
            }
        }
        out.sort_by_key(|d| d.id);
        out.dedup_by_key(|d| d.id);
        Ok(out)
    }

    /// One entry of the delivery log with its request's headers and payload
    /// (`GET /app/hook/deliveries/{delivery_id}`, with the App's JWT). Retried as any read: the pass that
    /// listed it is under way, and a pass that failed would read it again.
    pub async fn hook_delivery(&self, delivery_id: u64) -> Result<HookDeliveryDetail, GithubError> {
        const EP: &str = "GET /app/hook/deliveries/{delivery_id}";
        let call = Call::new(Method::GET, EP, format!("/app/hook/deliveries/{delivery_id}"), Auth::App);
        self.send(call).await?.json(EP)
    }
}
