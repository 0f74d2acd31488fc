//! The admin check for `/api/` routes: a bearer token when configured, loopback only when not.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::AppState;

/// Lets a request through when it carries `Authorization: Bearer <FOREMAN_ADMIN_TOKEN>` (compared in
/// constant time), or, with no token configured, when it comes from a loopback address. Otherwise 401
/// (token configured) or 403 (no token, remote client), with a body saying what to do.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match &state.admin_token {
        Some(token) => {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
                next.run(request).await
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "send Authorization: Bearer <FOREMAN_ADMIN_TOKEN>\n",
                )
                    .into_response()
            }
        }
        None => {
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
            if peer.is_some_and(|p| p.ip().is_loopback()) {
                next.run(request).await
            } else {
                (
                    StatusCode::FORBIDDEN,
                    "the /api/ routes answer loopback clients only unless FOREMAN_ADMIN_TOKEN is set\n",
                )
                    .into_response()
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::digest::Digest;
    // Compare digests so the time taken does not depend on where the inputs differ, nor on their lengths.
    let (da, db) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    da.iter().zip(db.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
