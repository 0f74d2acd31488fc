//! The limits the job rules obey, as plain values: concurrency, failures before a job is set aside, claim
//! time-to-live and backoff bounds. The `[scheduler]` configuration provides them ([`Limits`] is implemented
//! by `SchedulerConfig`); the rules and the stores take them through the trait, so they need no
//! configuration type.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The limits the job store's rules read. Durations are whole seconds or more; counts are at least 1.
pub trait Limits {
    /// A claim's time-to-live: a claim not renewed within it expires.
    fn claim_ttl(&self) -> Duration;
    /// Sessions running at once across Foreman.
    fn max_sessions(&self) -> u32;
    /// Sessions running at once in `repo` (lower-cased `owner/name`): the repository's own limit when its
    /// constitution set one, else the default per repository.
    fn repo_limit(&self, repo: &str) -> u32;
    /// Sessions running at once for one installation; `None`: no limit beyond [`Limits::max_sessions`].
    fn installation_limit(&self) -> Option<u32>;
    /// Agent or validation failures after which a job is set aside.
    fn max_failures(&self) -> u32;
    /// Infrastructure failures after which a job is set aside.
    fn max_infrastructure_failures(&self) -> u32;
    /// The backoff bounds, shortest first ([`super::backoff::backoff_delay`]).
    fn backoff_bounds(&self) -> (Duration, Duration);
}

/// Sessions allowed at once per repository, as each repository's constitution says (`[limits] concurrency`).
/// Shared by every clone: the inbox worker and the runner record a repository's limit whenever they load its
/// constitution, and the claiming transaction reads it.
#[derive(Clone, Debug, Default)]
pub struct RepoLimits(Arc<RwLock<HashMap<String, u32>>>);

impl RepoLimits {
    /// Records `repo`'s (`owner/name`) limit; at least 1.
    pub fn set(&self, repo: &str, limit: u32) {
        self.0.write().expect("repo limits lock").insert(repo.to_owned(), limit.max(1));
    }

    /// Forgets `repo`'s limit (its constitution no longer sets one).
    pub fn clear(&self, repo: &str) {
        self.0.write().expect("repo limits lock").remove(repo);
    }

    /// `repo`'s limit, when its constitution set one.
    pub fn get(&self, repo: &str) -> Option<u32> {
        self.0.read().expect("repo limits lock").get(repo).copied()
    }
}

impl PartialEq for RepoLimits {
    /// Learnt limits are not configuration: two configurations compare equal whatever they learnt.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RepoLimits {}

/// A source of one repository's concurrency limit (`[limits] concurrency`): `Some(n)` when the repository
/// or its organisation sets it, `None` when the default applies. The effective constitution is one.
pub trait RepoConcurrency {
    /// The limit the repository sets, if it sets one.
    fn concurrency(&self) -> Option<u32>;
}

impl RepoConcurrency for Option<u32> {
    fn concurrency(&self) -> Option<u32> {
        *self
    }
}

/// A repository's usage since a time: what the daily budgets count.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Cost of the sessions started since then, US dollars (as the agent reported it).
    pub cost_usd: f64,
    /// Sessions started since then.
    pub sessions: u32,
}
