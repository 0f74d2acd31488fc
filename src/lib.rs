#![warn(missing_docs)]
//! Foreman: a self-hosted GitHub App that turns issues into coding-agent pull requests.
//!
//! The modules follow the flow in `docs/architecture.md`:
//!
//! ```text
//! GitHub ─▶ ingress ─▶ store (inbox) ─▶ event ─▶ decide ─▶ store (jobs) ◀─▶ scheduler ─▶ session ─▶ report ─▶ GitHub
//! ```
//!
//! `github` is the one client every outbound call goes through; `api` serves the operations endpoints.

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod constitution;
pub mod decide;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dispatch;
pub mod doctor;
pub mod event;
pub mod executor;
pub mod git;
pub mod github;
pub mod ids;
pub mod ingress;
pub mod job;
pub mod markers;
pub mod plan;
pub mod poll;
pub mod reconcile;
pub mod remote;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod setup;
pub mod store;
pub mod telemetry;
