//! Session tokens of the Actions executor: bound to one session, exchanged once, expiring with the claim,
//! revoked when the session ends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use foreman::remote::registry::{NewSession, Refused, Registry};
use foreman::remote::token::{PREFIX, SessionToken};
use secrecy::ExposeSecret;

const TTL: Duration = Duration::from_secs(30);

fn new_session(token: &SessionToken) -> NewSession {
    NewSession {
        digest: token.digest(),
        ttl: TTL,
        spec: b"{}".to_vec(),
        bundle: PathBuf::from("/nonexistent/in.bundle"),
        result_bundle: PathBuf::from("/nonexistent/out.bundle"),
    }
}

#[test]
fn tokens_are_random_and_recognisable() {
    let (a, b) = (SessionToken::generate(), SessionToken::generate());
    assert_ne!(a.secret().expose_secret(), b.secret().expose_secret());
    assert!(a.secret().expose_secret().starts_with(PREFIX));
    assert_eq!(a.secret().expose_secret().len(), PREFIX.len() + 64);
    assert!(a.digest().matches(a.secret().expose_secret()));
    assert!(!a.digest().matches(b.secret().expose_secret()));
    assert!(!format!("{a:?}{:?}", a.digest()).contains(&a.secret().expose_secret()[PREFIX.len()..]));
}

#[test]
fn a_token_opens_its_own_session_only() {
    let registry = Registry::new();
    let (one, two) = (SessionToken::generate(), SessionToken::generate());
    let now = Instant::now();
    let _a = registry.register_at("session-a", new_session(&one), now);
    let _b = registry.register_at("session-b", new_session(&two), now);
    assert_eq!(registry.exchange_at("session-a", two.secret().expose_secret(), now).unwrap_err(), Refused::WrongToken);
    assert_eq!(registry.exchange_at("session-c", one.secret().expose_secret(), now).unwrap_err(), Refused::Unknown);
    assert_eq!(registry.exchange_at("session-a", "fst_guess", now).unwrap_err(), Refused::WrongToken);
    let (_, connection) = registry.exchange_at("session-a", one.secret().expose_secret(), now).unwrap();
    assert!(registry.authenticate_at("session-a", connection.secret().expose_secret(), now).is_ok());
    assert_eq!(
        registry.authenticate_at("session-b", connection.secret().expose_secret(), now).unwrap_err(),
        Refused::WrongToken
    );
}

#[test]
fn the_dispatch_token_is_spent_by_its_exchange() {
    let registry = Registry::new();
    let token = SessionToken::generate();
    let now = Instant::now();
    let _r = registry.register_at("s", new_session(&token), now);
    assert!(!registry.connected("s"));
    let (_, connection) = registry.exchange_at("s", token.secret().expose_secret(), now).unwrap();
    assert!(registry.connected("s"));
    // A second exchange (a log reader racing the runner) and any other use of the dispatch token fail.
    assert_eq!(registry.exchange_at("s", token.secret().expose_secret(), now).unwrap_err(), Refused::WrongToken);
    assert_eq!(registry.authenticate_at("s", token.secret().expose_secret(), now).unwrap_err(), Refused::WrongToken);
    assert!(registry.authenticate_at("s", connection.secret().expose_secret(), now).is_ok());
}

#[test]
fn a_token_expires_with_the_claim_unless_the_runner_reports() {
    let registry = Registry::new();
    let token = SessionToken::generate();
    let start = Instant::now();
    let _r = registry.register_at("s", new_session(&token), start);
    // Waiting for a runner, the session shows life at each claim renewal, and the token lives on with it.
    assert!(registry.renew_at("s", start + TTL / 2));
    let (_, connection) = registry.exchange_at("s", token.secret().expose_secret(), start + TTL + TTL / 4).unwrap();
    let connection = connection.secret().expose_secret().to_owned();
    let seen = start + TTL + TTL / 4;
    // Each request extends it by the time-to-live.
    assert!(registry.authenticate_at("s", &connection, seen + TTL / 2).is_ok());
    assert!(registry.renew_at("s", seen + TTL));
    // A runner silent for the time-to-live: no renewal, and the token is dead.
    let silent = seen + TTL / 2 + TTL;
    assert!(!registry.renew_at("s", silent));
    assert_eq!(registry.authenticate_at("s", &connection, silent).unwrap_err(), Refused::Expired);
}

#[test]
fn a_revoked_token_is_refused() {
    let registry = Registry::new();
    let token = SessionToken::generate();
    let now = Instant::now();
    let registration = registry.register_at("s", new_session(&token), now);
    let (_, connection) = registry.exchange_at("s", token.secret().expose_secret(), now).unwrap();
    registry.revoke("s");
    assert_eq!(registry.authenticate_at("s", connection.secret().expose_secret(), now).unwrap_err(), Refused::Unknown);
    assert!(!registry.renew_at("s", now));
    drop(registration);

    // Dropping the registration (the session ended) revokes too.
    let token = SessionToken::generate();
    let registration = registry.register_at("t", new_session(&token), now);
    assert!(registry.registered("t"));
    drop(registration);
    assert!(!registry.registered("t"));
    assert_eq!(registry.exchange_at("t", token.secret().expose_secret(), now).unwrap_err(), Refused::Unknown);
    assert!(registry.is_empty());
}
