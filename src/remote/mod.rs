//! The Actions executor: sessions whose agent runs on a GitHub Actions runner, with Foreman as the only
//! writer (docs/actions.md).
//!
//! - [`agent::RemoteAgent`] (Foreman's side): wraps the configured backend; for a session run on Actions
//!   it bundles the prepared branch, registers the session ([`registry`]: a one-time token kept as a
//!   digest, [`token`]), dispatches `executor.workflow`, relays the runner's events into the session log and
//!   progress, and takes the result bundle back into the worktree, verified. The session then checks the
//!   change against the constitution and Foreman pushes it, as for a local session.
//! - [`routes`]: Foreman's endpoints for runners, under `/remote/sessions/{id}` ([`protocol`]).
//! - [`connect`] (the runner's side): `foreman session --connect <session URL>`.
//! - [`workflow`]: the workflow file `foreman actions workflow` prints.
//! - [`config`]: the `[executor]` table.
//!
//! Stopping a session (`/foreman stop`, a card moved off, an expired claim) cancels its session token,
//! which this agent sees: it cancels the workflow run and revokes the token. A runner that stops reporting
//! lets the claim expire ([`crate::session::Agent::renew`]); a run that ends without a result is an
//! infrastructure failure naming the run. After a crash, [`orphans`] cancels the runs of the interrupted
//! sessions.

pub mod agent;
pub mod config;
pub mod connect;
pub mod orphans;
pub mod protocol;
pub mod registry;
pub mod routes;
pub mod token;
pub mod workflow;

pub use agent::{ActionsSettings, RemoteAgent};
pub use config::{ExecutorConfig, ExecutorKind};
pub use registry::Registry;
