//! The one GitHub client: app auth, installation tokens, REST and Projects v2 GraphQL, retries, caching,
//! accounting.
//!
//! Every outbound call to GitHub goes through [`Client`]:
//! - `auth`: the app JWT and installation tokens (cached until shortly before they expire); per-session tokens
//!   scoped to one repository. The private key never leaves this module.
//! - `client`: octocrab as the HTTP layer, with the one retry loop ([`RetryPolicy`]), mutation pacing,
//!   a concurrency bound per installation, and the ETag cache for conditional GETs.
//! - `rest`, `graphql`, `projects`: the operations Foreman needs, idempotent where GitHub's endpoints are not.
//! - `deliveries`: the App's delivery log read as a source of deliveries (poll delivery mode).
//! - `accounting`: metrics of calls and quota, and [`Client::quota_ok`] for the scheduler.
//! - `secrets`: the [`SecretRegistry`] of secret values Foreman holds; the client scrubs every string of
//!   every request body against it (and against token shapes) before sending, so no text Foreman writes on
//!   GitHub (comments, pull requests, check runs, anything) carries one.
//! - `redact`: the token shapes ([`redact::redact_tokens`]) that net, also used on text Foreman writes
//!   elsewhere (reports, push errors, answers).

mod accounting;
mod actions;
mod auth;
mod client;
mod config;
mod deliveries;
mod error;
pub mod graphql;
mod links;
pub mod manifest;
mod projects;
pub mod redact;
mod rest;
mod retry;
pub mod secrets;
mod sub_issues;
pub mod types;

pub use accounting::Quota;
pub use actions::{DispatchedRun, WorkflowRun};
pub use auth::InstallationToken;
pub use client::{Client, ClientOptions};
pub use config::{DEFAULT_POLL_INTERVAL_SECS, DeliveryMode, GithubConfig};
pub use deliveries::{HookDeliveryDetail, HookRequest};
pub use error::GithubError;
pub use graphql::{Document, GraphqlError, GraphqlResponse};
pub use links::LinkedIssue;
pub use projects::{ProjectBoard, ProjectItem};
pub use retry::RetryPolicy;
pub use secrets::SecretRegistry;
pub use types::*;
