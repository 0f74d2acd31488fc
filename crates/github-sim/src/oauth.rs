//! GitHub's OAuth web flow for the App's client ("Generating a user access token for a GitHub App",
//! docs.github.com), and the user-to-server API a signed-in person's token reaches.
//!
//! Web pages (github.com's side, not the REST API, so not held to the OpenAPI description):
//! - `GET /login/oauth/authorize?client_id=…&redirect_uri=…&state=…[&login=…]`: a page listing the
//!   simulator's users (kind `User`), each with a "Sign in as LOGIN" button (`id="login-LOGIN"`) that posts
//!   the same parameters back; with `login=` naming a user (GitHub's account hint; here, for tests, the
//!   person is taken as signed in as that user and as having authorised the App before) the browser is sent
//!   on at once. Either way it ends in a 302 to `redirect_uri?code=…&state=…`. An unknown `client_id`
//!   answers 404; a `redirect_uri` whose host and port differ from the registered App's `redirect_url`
//!   (when the App was registered from a manifest) answers 422.
//! - `POST /login/oauth/authorize` (form `client_id`, `redirect_uri`, `state`, `login`): the button.
//! - `POST /login/oauth/access_token` (`client_id`, `client_secret`, `code`, `redirect_uri`; as a form, JSON
//!   or query parameters): exchanges a code (one use, within [`CODE_TTL`]) for a user-to-server token
//!   (`ghu_` and 36 alphanumerics), answered as JSON (`access_token`, `token_type`, `scope`) with
//!   `Accept: application/json`, as a form otherwise. Errors are GitHub's 200 with `error`
//!   (`incorrect_client_credentials`, `bad_verification_code`, `redirect_uri_mismatch`), as GitHub answers.
//!
//! REST (held to the OpenAPI description, authenticated with the user's token):
//! - `GET /user`: the signed-in user.
//! - `GET /user/installations`: `{total_count, installations}`, the App's installations on accounts owning a
//!   repository the user can read (permission read or more, or the owner).
//! - `GET /user/installations/{installation_id}/repositories`: `{total_count, repository_selection,
//!   repositories}`, the installation's repositories the user can read, each with the user's `permissions`;
//!   404 for an installation the user cannot see.
//!
//! The App's client id is `Iv1.` and the App id in 16 hex digits; its secret is the one the manifest
//! conversion handed out, or, for the App as configured, one made at start ([`crate::SimHandle::oauth_client`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::manifest::{esc, page};
use crate::server::{Auth, Inner, Req, Resp, RespBody};
use crate::world::{Permission, World};

/// How long a code from the authorize step can be exchanged (GitHub: ten minutes).
pub const CODE_TTL: Duration = Duration::from_secs(600);

/// What the web flow holds.
#[derive(Debug)]
pub struct State {
    /// The configured App's client secret (an App registered from a manifest has its own).
    pub client_secret: String,
    /// Codes not yet exchanged.
    codes: HashMap<String, Code>,
    /// User-to-server tokens and the login each acts for.
    pub tokens: HashMap<String, String>,
}

impl Default for State {
    fn default() -> Self {
        State { client_secret: hex::encode(rand::random::<[u8; 20]>()), codes: HashMap::new(), tokens: HashMap::new() }
    }
}

#[derive(Debug)]
struct Code {
    login: String,
    redirect_uri: String,
    issued: Instant,
}

/// The App's OAuth client id.
pub fn client_id(app_id: u64) -> String {
    format!("Iv1.{app_id:016x}")
}

/// The App's current client secret.
pub fn client_secret(w: &World) -> String {
    w.manifest.registered.as_ref().map_or_else(|| w.oauth.client_secret.clone(), |r| r.client_secret.clone())
}

/// The web pages of the flow, or `None` when `req` is not one of them.
pub(crate) fn web(inner: &Inner, req: &Req) -> Option<Resp> {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let post = req.method == axum::http::Method::POST;
    let get = req.method == axum::http::Method::GET;
    Some(match segs.as_slice() {
        ["login", "oauth", "authorize"] if get => {
            let params: HashMap<String, String> = req.query.iter().cloned().collect();
            authorize(inner, &params)
        }
        ["login", "oauth", "authorize"] if post => authorize(inner, &params_of(req)),
        ["login", "oauth", "access_token"] if post => access_token(inner, req),
        _ => return None,
    })
}

/// The request's parameters: query, then a form or JSON body (the body wins).
fn params_of(req: &Req) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = req.query.iter().cloned().collect();
    let json_body = req.header("content-type").is_some_and(|c| c.starts_with("application/json"));
    if json_body {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&req.body) {
            p.extend(m.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_owned()))));
        }
    } else {
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        for kv in String::from_utf8_lossy(&req.body).split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            p.insert(decode(k), decode(v));
        }
    }
    p
}

/// `host:port` of an http(s) URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

fn authorize(inner: &Inner, p: &HashMap<String, String>) -> Resp {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let mut w = inner.world();
    if get("client_id") != client_id(w.app_id) {
        return page(404, "Not Found", "<p>No application with that client_id.</p>");
    }
    let redirect_uri = get("redirect_uri");
    let registered = w.manifest.registered.as_ref().map(|r| r.redirect_url.clone());
    let fits = authority(redirect_uri)
        .is_some_and(|a| registered.as_deref().is_none_or(|r| authority(r).is_some_and(|ra| ra == a)));
    if !fits {
        return page(422, "Redirect URI mismatch", "<p>The redirect_uri is not associated with this application.</p>");
    }
    let login = get("login");
    let is_person = |w: &World, l: &str| w.users.get(l).is_some_and(|u| u.kind == "User");
    if login.is_empty() || !is_person(&w, login) {
        let people: Vec<String> = w.users.values().filter(|u| u.kind == "User").map(|u| u.login.clone()).collect();
        let app = w.app_name.clone();
        drop(w);
        return choose_page(&app, p, &people);
    }
    let code = hex::encode(rand::random::<[u8; 10]>());
    w.oauth.codes.retain(|_, c| c.issued.elapsed() < CODE_TTL);
    w.oauth.codes.insert(
        code.clone(),
        Code { login: login.to_owned(), redirect_uri: redirect_uri.to_owned(), issued: Instant::now() },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let to = format!("{redirect_uri}{sep}code={}&state={}", crate::world::enc(&code), crate::world::enc(get("state")));
    Resp::empty(302).header("location", to)
}

fn choose_page(app: &str, p: &HashMap<String, String>, people: &[String]) -> Resp {
    let hidden: String = ["client_id", "redirect_uri", "state", "scope"]
        .iter()
        .filter_map(|k| p.get(*k).map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v))))
        .collect();
    let forms: String = people
        .iter()
        .map(|l| {
            format!(
                r#"<form method="post" action="/login/oauth/authorize">{hidden}<input type="hidden" name="login" value="{l}"><button type="submit" id="login-{l}">Sign in as {l}</button></form>"#,
                l = esc(l)
            )
        })
        .collect();
    page(200, &format!("Authorize {app}"), &format!("<p>Sign in to GitHub to continue to {}.</p>{forms}", esc(app)))
}

fn access_token(inner: &Inner, req: &Req) -> Resp {
    let p = params_of(req);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let as_json = req.header("accept").is_some_and(|a| a.contains("application/json"));
    let answer = |v: Value| -> Resp {
        if as_json {
            return Resp::ok(v);
        }
        let mut s = form_urlencoded(&v);
        if s.is_empty() {
            s.push(' ');
        }
        Resp {
            status: 200,
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())],
            body: RespBody::Raw(s.trim().to_owned().into()),
        }
    };
    let error = |code: &str, description: &str| {
        answer(json!({"error": code, "error_description": description,
                      "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"}))
    };
    let mut w = inner.world();
    if get("client_id") != client_id(w.app_id) || get("client_secret") != client_secret(&w) {
        return error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    }
    let Some(code) = w.oauth.codes.remove(get("code")).filter(|c| c.issued.elapsed() < CODE_TTL) else {
        return error("bad_verification_code", "The code passed is incorrect or expired.");
    };
    if let Some(uri) = p.get("redirect_uri")
        && *uri != code.redirect_uri
    {
        return error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let token = format!("ghu_{}", &crate::auth::new_token()[4..]);
    w.oauth.tokens.insert(token.clone(), code.login);
    answer(json!({"access_token": token, "token_type": "bearer", "scope": ""}))
}

fn form_urlencoded(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", crate::world::enc(v.as_str().unwrap_or_default())))
                .collect::<Vec<_>>()
                .join("&")
        })
        .unwrap_or_default()
}

/// The user a user-to-server token acts for.
pub(crate) fn user_of(w: &World, token: &str) -> Option<String> {
    w.oauth.tokens.get(token).cloned()
}

/// `login`'s permission on `repo` (the owner is admin).
fn permission(w: &World, login: &str, owner: &str) -> Permission {
    if login == owner {
        return Permission::Admin;
    }
    w.users.get(login).map_or(Permission::None, |u| u.permission)
}

/// The REST routes a user-to-server token reaches, or `None` when `req` is not one of them.
pub(crate) fn rest(inner: &Inner, auth: &Auth, req: &Req, segs: &[&str]) -> Option<Resp> {
    let get = req.method == axum::http::Method::GET;
    if !get || segs.first() != Some(&"user") || !matches!(segs.len(), 1 | 2 | 4) {
        return None;
    }
    let Auth::User { login, .. } = auth else {
        return Some(match auth {
            Auth::None => Resp::error(401, "Requires authentication"),
            _ => Resp::error(403, "Resource not accessible by integration"),
        });
    };
    let mut w = inner.world();
    Some(match segs {
        ["user"] => {
            let mut u = w.user_json(login);
            u["name"] = json!(login);
            u["created_at"] = json!(w.created_at);
            u["updated_at"] = json!(w.created_at);
            Resp::ok(u)
        }
        ["user", "installations"] => {
            let ids = visible_installations(&mut w, login);
            let list: Vec<Value> =
                ids.iter().filter_map(|id| w.installations.get(id)).map(|i| w.installation_json(i)).collect();
            Resp::ok(json!({"total_count": list.len(), "installations": list}))
        }
        ["user", "installations", id, "repositories"] => {
            let id = id.parse::<u64>().unwrap_or(0);
            if !visible_installations(&mut w, login).contains(&id) {
                return Some(Resp::not_found());
            }
            let account = w.installations[&id].account.clone();
            let list: Vec<Value> = w
                .repos
                .values()
                .filter(|r| r.owner == account)
                .filter_map(|r| {
                    let p = permission(&w, login, &r.owner);
                    (p >= Permission::Read).then(|| {
                        let mut v = w.repo_json(r);
                        v["permissions"] = json!({"admin": p >= Permission::Admin, "maintain": p >= Permission::Maintain,
                            "push": p >= Permission::Write, "triage": p >= Permission::Triage, "pull": true});
                        v
                    })
                })
                .collect();
            Resp::ok(json!({"total_count": list.len(), "repository_selection": "all", "repositories": list}))
        }
        _ => return None,
    })
}

/// The installations `login` can see: on accounts owning a repository they can read. The App as configured
/// is installed wherever it is used (created here on first sight); one registered from a manifest only
/// where someone installed it.
fn visible_installations(w: &mut World, login: &str) -> Vec<u64> {
    let mut owners: Vec<String> = w
        .repos
        .values()
        .filter(|r| permission(w, login, &r.owner) >= Permission::Read)
        .map(|r| r.owner.clone())
        .collect();
    owners.dedup();
    let registered = w.manifest.registered.is_some();
    owners
        .iter()
        .filter_map(|o| match w.installations.values().find(|i| &i.account == o) {
            Some(i) => Some(i.id),
            None if !registered => Some(w.installation_for(o)),
            None => None,
        })
        .collect()
}
