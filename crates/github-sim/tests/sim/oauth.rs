//! GitHub's OAuth web flow for the App's client, and the user-to-server endpoints: who signs in, what the
//! code exchange answers (and refuses), and that a user sees only the repositories they can read.

use crate::common::{TEST_TIMEOUT, start};
use github_sim::Permission;
use reqwest::Method;
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/login/callback";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Authorizes `login` (the account hint) and returns the code sent back to [`REDIRECT`].
async fn code_for(s: &crate::common::Sim, login: &str) -> String {
    let (client_id, _) = s.sim.oauth_client();
    let url = s.url(&format!(
        "/login/oauth/authorize?client_id={client_id}&redirect_uri={}&state=st4te&login={login}",
        github_sim_enc(REDIRECT)
    ));
    let r = no_redirects().get(url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{REDIRECT}?code=")) && to.ends_with("&state=st4te"), "{to}");
    to.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
}

/// `s` percent-encoded for a query or form value.
fn github_sim_enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn exchange(s: &crate::common::Sim, code: &str, secret: &str, json: bool) -> reqwest::Response {
    let (client_id, _) = s.sim.oauth_client();
    let body =
        format!("client_id={client_id}&client_secret={secret}&code={code}&redirect_uri={}", github_sim_enc(REDIRECT));
    let mut rq = s
        .http
        .post(s.url("/login/oauth/access_token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if json {
        rq = rq.header("accept", "application/json");
    }
    rq.send().await.unwrap()
}

#[tokio::test]
async fn a_user_signs_in_and_sees_only_what_they_can_read() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = start().await;
        s.sim.create_user("alice", Permission::Write, "User");
        s.sim.create_user("carol", Permission::None, "User");
        s.sim.create_repo("acme", "widgets", &[]).unwrap();
        let (_, secret) = s.sim.oauth_client();

        // Without the hint: a page to choose who signs in, each a button posting the same parameters.
        let (client_id, _) = s.sim.oauth_client();
        let page = s
            .http
            .get(s.url(&format!(
                "/login/oauth/authorize?client_id={client_id}&redirect_uri={}&state=x",
                github_sim_enc(REDIRECT)
            )))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("id=\"login-alice\"") && page.contains("id=\"login-carol\""), "{page}");
        assert!(!page.contains("foreman[bot]"), "{page}");
        // An unknown client is not found.
        let r = s.http.get(s.url("/login/oauth/authorize?client_id=Iv1.nope&state=x")).send().await.unwrap();
        assert_eq!(r.status(), 404);

        // A wrong secret, then the right one as JSON; the code is good once.
        let code = code_for(&s, "alice").await;
        let v: Value = exchange(&s, &code, "wrong", true).await.json().await.unwrap();
        assert_eq!(v["error"], "incorrect_client_credentials");
        let v: Value = exchange(&s, &code, &secret, true).await.json().await.unwrap();
        let token = v["access_token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("ghu_") && v["token_type"] == "bearer", "{v}");
        let v: Value = exchange(&s, &code, &secret, true).await.json().await.unwrap();
        assert_eq!(v["error"], "bad_verification_code");
        // Without Accept: application/json the answer is a form.
        let code = code_for(&s, "carol").await;
        let r = exchange(&s, &code, &secret, false).await;
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/x-www-form-urlencoded"));
        let form = r.text().await.unwrap();
        // Percent-encoded as a form is (`_` is `%5F`).
        let carol = form.split('&').find_map(|kv| kv.strip_prefix("access_token=")).unwrap().replace("%5F", "_");
        assert!(carol.starts_with("ghu_") && !carol.contains('%'), "{form}");

        let r = s.call(Method::GET, &token, "/user", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["login"], "alice");
        let v: Value = s.call(Method::GET, &token, "/user/installations", None).await.json().await.unwrap();
        assert_eq!(v["total_count"], 1, "{v}");
        let id = v["installations"][0]["id"].as_u64().unwrap();
        let v: Value = s
            .call(Method::GET, &token, &format!("/user/installations/{id}/repositories"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["repositories"][0]["full_name"], "acme/widgets");
        assert_eq!(v["repositories"][0]["permissions"]["push"], true);

        // carol can read nothing: no installation, and alice's is not found for her.
        let v: Value = s.call(Method::GET, &carol, "/user/installations", None).await.json().await.unwrap();
        assert_eq!(v["total_count"], 0, "{v}");
        let r = s.call(Method::GET, &carol, &format!("/user/installations/{id}/repositories"), None).await;
        assert_eq!(r.status(), 404);
        // A user token is not an installation's, and no token is no user.
        assert_eq!(s.call(Method::GET, &token, "/installation/repositories", None).await.status(), 403);
        assert_eq!(s.http.get(s.url("/user")).send().await.unwrap().status(), 401);

        let state = s.sim.state();
        assert_eq!(state["nonconforming"], serde_json::json!([]), "{}", state["nonconforming"]);
    })
    .await
    .expect("timed out");
}
