//! GitHub's side of registering an App from a manifest ("Registering a GitHub App from a manifest",
//! docs.github.com), and of installing it: the web pages a person clicks through and the code exchange.
//!
//! - `POST /settings/apps/new?state=…` and `POST /organizations/{org}/settings/apps/new?state=…`, a form
//!   with the field `manifest` (JSON): a page showing what the App asks for, with a "Create GitHub App"
//!   button that posts the same form back with `confirm=1`. Then the App is registered in the simulated
//!   world (its name, owner, permissions, events, webhook URL, redirect and setup URLs; deliveries go to the
//!   manifest's `hook_attributes.url` from now on) and the browser is sent (302) to the manifest's
//!   `redirect_url` with `code` and `state`.
//! - `POST /app-manifests/{code}/conversions` (REST, held to the OpenAPI description like every other API
//!   route, no authentication): 201 with the App and its `client_id`, `client_secret`, `webhook_secret`
//!   and `pem`. A code is good for one conversion within an hour, as on GitHub; otherwise 404.
//! - `GET /apps/{slug}/installations/new`: a page with an "Install" button for each account owning
//!   repositories; `POST` to the same path installs the App on that account's repositories, emits the
//!   `installation` webhook (`created`) and sends the browser to the App's `setup_url` with
//!   `installation_id` and `setup_action=install` (or to the App's page when it has none).
//!
//! The simulator has one App identity (its id, slug, private key and webhook secret from [`crate::SimConfig`]):
//! registering takes that identity and gives it the manifest's name, permissions and events, so `GET /app`
//! reports what was registered and the conversion hands out the key the simulator signs with.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::server::{Inner, Req, Resp, RespBody};

/// How long a manifest code can be converted (GitHub: one hour).
pub const CODE_TTL: Duration = Duration::from_secs(3600);

/// What the manifest flow left in the world.
#[derive(Debug, Default)]
pub struct State {
    /// The App as the last manifest registered it, `None` until one was.
    pub registered: Option<Registered>,
    /// Codes not yet converted, with when each was issued.
    codes: HashMap<String, Instant>,
}

/// An App registered from a manifest.
#[derive(Debug, Clone)]
pub struct Registered {
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    /// The organisation it was registered for; `None` for a personal account.
    pub org: Option<String>,
    pub permissions: BTreeMap<String, String>,
    pub events: Vec<String>,
    pub hook_url: Option<String>,
    pub redirect_url: String,
    pub setup_url: Option<String>,
    pub client_secret: String,
}

/// The web pages of the flow, or `None` when `req` is not one of them.
pub(crate) fn web(inner: &Inner, req: &Req) -> Option<Resp> {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let post = req.method == axum::http::Method::POST;
    let get = req.method == axum::http::Method::GET;
    Some(match segs.as_slice() {
        ["settings", "apps", "new"] if post => new_app(inner, req, None),
        ["organizations", org, "settings", "apps", "new"] if post => new_app(inner, req, Some(org)),
        ["apps", slug, "installations", "new"] if get => install_page(inner, slug),
        ["apps", slug, "installations", "new"] if post => install(inner, req, slug),
        _ => return None,
    })
}

/// `POST /app-manifests/{code}/conversions`.
pub(crate) fn conversion(inner: &Inner, code: &str) -> Resp {
    let mut w = inner.world();
    let fresh = w.manifest.codes.remove(code).is_some_and(|issued| issued.elapsed() < CODE_TTL);
    let Some(registered) = w.manifest.registered.clone().filter(|_| fresh) else {
        return Resp::not_found();
    };
    let mut v = w.app_public_json();
    v["client_secret"] = json!(registered.client_secret);
    v["webhook_secret"] = json!(inner.config.webhook_secret);
    v["pem"] = json!(inner.key.private_pem);
    Resp::json(201, v)
}

/// Whether an event on `account` is delivered: always for the simulator's App as configured (installed
/// wherever it is used), and for an App registered from a manifest only where it is installed, as GitHub
/// sends an App the events of the accounts that installed it.
pub(crate) fn delivers(w: &crate::world::World, account: Option<&str>) -> bool {
    w.manifest.registered.is_none() || account.is_none_or(|a| w.installations.values().any(|i| i.account == a))
}

/// Applies what was registered to the App's JSON (`GET /app`, webhooks, the conversion): its description
/// and homepage (its name, permissions and events are the world's, set when it was registered).
pub(crate) fn describe(state: &State, app: &mut Value) {
    if let Some(r) = &state.registered {
        app["description"] = json!(r.description);
        app["external_url"] = json!(r.url);
    }
}

fn new_app(inner: &Inner, req: &Req, org: Option<&str>) -> Resp {
    let form = form(&req.body);
    let state = req.q("state").unwrap_or_default();
    let Some(manifest) = form.get("manifest") else {
        return page(422, "Invalid GitHub App manifest", "<p>The form has no <code>manifest</code> field.</p>");
    };
    let registered = match parse(manifest, org) {
        Ok(r) => r,
        Err(why) => return page(422, "Invalid GitHub App manifest", &format!("<p>{}</p>", esc(&why))),
    };
    if form.get("confirm").map(String::as_str) != Some("1") {
        return confirm_page(req, &registered, manifest, state);
    }
    let code = hex::encode(rand::random::<[u8; 20]>());
    let mut w = inner.world();
    // A new App: installed nowhere until someone installs it, with no token out.
    w.installations.clear();
    w.tokens.clear();
    w.app_name = registered.name.clone();
    w.app_permissions = registered.permissions.clone();
    w.app_events = registered.events.clone();
    w.manifest.codes.insert(code.clone(), Instant::now());
    let redirect = with_query(&registered.redirect_url, &[("code", &code), ("state", state)]);
    if let Some(hook) = &registered.hook_url {
        *inner.webhook_url.lock().expect("webhook url lock") = Some(hook.clone());
    }
    w.manifest.registered = Some(registered);
    drop(w);
    Resp::empty(302).header("location", redirect)
}

fn parse(manifest: &str, org: Option<&str>) -> Result<Registered, String> {
    let m: Value = serde_json::from_str(manifest).map_err(|e| format!("The manifest is not JSON: {e}"))?;
    let text = |k: &str| m[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let name = text("name").ok_or("Name can't be blank")?;
    let url = text("url").ok_or("Homepage URL can't be blank")?;
    let redirect_url = text("redirect_url").ok_or("The manifest flow needs a redirect_url")?;
    let hook = &m["hook_attributes"];
    let hook_url = hook["url"].as_str().map(str::to_owned);
    if hook["active"].as_bool().unwrap_or(true) && hook_url.is_none() {
        return Err("Hook URL can't be blank".into());
    }
    let permissions = m["default_permissions"]
        .as_object()
        .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let events =
        m["default_events"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(str::to_owned)).collect();
    Ok(Registered {
        name,
        description: text("description"),
        url,
        org: org.map(str::to_owned),
        permissions,
        events,
        hook_url,
        redirect_url,
        setup_url: text("setup_url"),
        client_secret: hex::encode(rand::random::<[u8; 20]>()),
    })
}

fn confirm_page(req: &Req, r: &Registered, manifest: &str, state: &str) -> Resp {
    let owner = r.org.as_deref().map_or("your personal account".to_owned(), |o| format!("the organization {o}"));
    let permissions: String =
        r.permissions.iter().map(|(k, v)| format!("<li>{}: {}</li>", esc(k), esc(v))).collect::<String>();
    let events: String = r.events.iter().map(|e| format!("<li>{}</li>", esc(e))).collect();
    let action = with_query(&req.path, &[("state", state)]);
    let body = format!(
        r#"<p>Create <strong id="app-name">{name}</strong> for {owner}.</p>
<p>Webhook URL: <code id="hook-url">{hook}</code></p>
<h2>Permissions</h2><ul>{permissions}</ul>
<h2>Events</h2><ul>{events}</ul>
<form method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<input type="hidden" name="confirm" value="1">
<button type="submit" id="create">Create GitHub App for {owner}</button>
</form>"#,
        name = esc(&r.name),
        owner = esc(&owner),
        hook = esc(r.hook_url.as_deref().unwrap_or("none")),
        action = esc(&action),
        manifest = esc(manifest),
    );
    page(200, "Create GitHub App", &body)
}

/// The accounts that own repositories: where the App can be installed.
fn accounts(inner: &Inner) -> Vec<String> {
    let mut owners: Vec<String> = inner.world().repos.values().map(|r| r.owner.clone()).collect();
    owners.dedup();
    owners
}

fn install_page(inner: &Inner, slug: &str) -> Resp {
    let w = inner.world();
    if slug != w.app_slug {
        return page(404, "Not Found", "<p>No such App.</p>");
    }
    let name = w.app_name.clone();
    drop(w);
    let forms: String = accounts(inner)
        .iter()
        .map(|a| {
            format!(
                r#"<form method="post"><input type="hidden" name="account" value="{a}"><button type="submit" id="install-{a}">Install</button> on {a} (all repositories)</form>"#,
                a = esc(a)
            )
        })
        .collect();
    page(200, &format!("Install {name}"), &format!("<p>Install <strong>{}</strong> on:</p>{forms}", esc(&name)))
}

fn install(inner: &Inner, req: &Req, slug: &str) -> Resp {
    let form = form(&req.body);
    let Some(account) = form.get("account").filter(|a| accounts(inner).contains(a)) else {
        return page(422, "Install", "<p>Choose an account that has repositories.</p>");
    };
    let mut w = inner.world();
    if slug != w.app_slug {
        return page(404, "Not Found", "<p>No such App.</p>");
    }
    let existed = w.installations.values().any(|i| &i.account == account);
    let id = w.installation_for(account);
    if !existed {
        let repos: Vec<Value> = w
            .repos
            .values()
            .filter(|r| &r.owner == account)
            .map(|r| json!({"id": r.id, "node_id": crate::world::node_id("R", r.id), "name": r.name, "full_name": r.full_name(), "private": false}))
            .collect();
        let sender = w
            .users
            .values()
            .find(|u| u.kind == "User" && u.permission == crate::world::Permission::Admin)
            .map_or_else(|| account.clone(), |u| u.login.clone());
        let installation = w.installations.get(&id).cloned().map(|i| w.installation_json(&i));
        let mut body = Map::new();
        body.insert("repositories".into(), json!(repos));
        body.insert("requester".into(), Value::Null);
        crate::hooks::emit(inner, &mut w, "installation", "created", None, Some(account), &sender, body);
        // The envelope carries the installation's id alone; this event carries the whole installation.
        if let (Some(d), Some(installation)) = (w.deliveries.last_mut(), installation) {
            d.payload["installation"] = installation;
        }
    }
    let setup_url = w.manifest.registered.as_ref().and_then(|r| r.setup_url.clone());
    let app_page = format!("{}/apps/{}", w.base_url, w.app_slug);
    drop(w);
    let id = id.to_string();
    let to = match setup_url {
        Some(url) => with_query(&url, &[("installation_id", &id), ("setup_action", "install")]),
        None => app_page,
    };
    Resp::empty(302).header("location", to)
}

/// `url` with `pairs` appended to its query string, the values percent-encoded (the names are plain).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", crate::world::enc(v))).collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", query.join("&"))
}

/// An `application/x-www-form-urlencoded` body as a map (the last value of a repeated name wins).
fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub(crate) fn page(status: u16, title: &str, body: &str) -> Resp {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · GitHub</title></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    Resp {
        status,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: RespBody::Raw(html.into()),
    }
}
