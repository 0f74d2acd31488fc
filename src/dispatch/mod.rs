//! The inbox worker, in three parts, as a delivery flows through them:
//!
//! ```text
//! store (inbox) ─▶ drain ─▶ decider: decode ─▶ snapshot ─▶ decide ─(lookup ─▶ decide) ─▶ effects ─▶ store (jobs) · report · GitHub
//!                                                                                        └─▶ cancel (the one cancel path)
//! ```
//!
//! - [`drain`]: the loop that reads pending deliveries oldest first and records each processed or
//!   dead-lettered;
//! - [`decider`]: the consumer that turns a delivery into actions with the decision core;
//! - [`effects`]: each action carried out, with a typed [`effects::Effect`];
//! - [`cancel`]: the one way a job is cancelled, shared with reconciliation.

mod approve;
pub mod cancel;
pub mod decider;
pub mod drain;
pub mod effects;
mod links;

pub use cancel::{Cancelled, Canceller};
pub use decider::Decider;
pub use drain::{Consumer, Processed, WORKER_NICE, run, spawn_worker};
pub use effects::{Effect, GithubSide, QUEUED_REPORT_DELAY};

/// Why a delivery could not be processed now: it stays in the inbox and is tried again on the next pass.
#[derive(Debug, thiserror::Error)]
pub enum Transient {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The job store failed to read or write a job.
    #[error(transparent)]
    Jobs(#[from] crate::store::JobError),
    /// GitHub is unavailable or rate limited, and a fact it holds is needed.
    #[error(transparent)]
    Github(#[from] crate::github::GithubError),
}
