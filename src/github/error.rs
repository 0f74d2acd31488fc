//! The typed errors of the GitHub client: what a caller can match on, with no secret in any message.

use std::time::SystemTime;

/// What went wrong with a GitHub call, after this module's retries were spent.
///
/// `NotFound`, `Conflict` and `Unprocessable` are never retried: they are answers, not failures
/// (<https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api>). Messages carry the
/// endpoint template (`GET /repos/{owner}/{repo}/issues/{issue_number}`) and GitHub's own message, never a
/// token or a request body.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// 404: the resource does not exist, or the token may not see it (GitHub answers 404 rather than 403
    /// for private resources).
    #[error("{endpoint}: not found")]
    NotFound {
        /// The endpoint template.
        endpoint: &'static str,
    },
    /// 409: the resource is in a state that refuses the change (e.g. a merge conflict, an empty repository).
    #[error("{endpoint}: conflict: {message}")]
    Conflict {
        /// The endpoint template.
        endpoint: &'static str,
        /// GitHub's `message`.
        message: String,
    },
    /// 422: validation failed (e.g. a pull request already exists for the head branch, a label already exists).
    #[error("{endpoint}: unprocessable: {message}")]
    Unprocessable {
        /// The endpoint template.
        endpoint: &'static str,
        /// GitHub's `message`, followed by each `errors[].message` or `errors[].code`.
        message: String,
    },
    /// 403 that is not a rate limit: the app or token lacks the permission, or the repository is archived.
    #[error("{endpoint}: forbidden: {message}")]
    Forbidden {
        /// The endpoint template.
        endpoint: &'static str,
        /// GitHub's `message`.
        message: String,
    },
    /// 401 even after minting a fresh installation token (the installation was removed or suspended, or the
    /// app's key is wrong).
    #[error("{endpoint}: unauthorized after refreshing the token")]
    Unauthorized {
        /// The endpoint template.
        endpoint: &'static str,
    },
    /// A primary or secondary rate limit that outlasted the retry budget. `reset` is when GitHub said the
    /// quota comes back, when it said.
    #[error("{endpoint}: rate limited")]
    RateLimited {
        /// The endpoint template.
        endpoint: &'static str,
        /// From `x-ratelimit-reset`, when present.
        reset: Option<SystemTime>,
    },
    /// 5xx or connection failures that outlasted the retry budget (count or total time).
    #[error("{endpoint}: GitHub unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// The endpoint template.
        endpoint: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure, e.g. `HTTP 502` or a connection error.
        last: String,
    },
    /// A create request (POST) failed in a way that leaves unknown whether GitHub acted on it (a 5xx or a lost
    /// connection). It was not retried blindly; the operations that create things look for what they would
    /// have made before trying again, and only return this when that too is spent.
    #[error("{endpoint}: outcome unknown: {last}")]
    Ambiguous {
        /// The endpoint template.
        endpoint: &'static str,
        /// The failure, e.g. `HTTP 502`.
        last: String,
    },
    /// GraphQL answered with errors and no data to use. Partial data is returned to the caller instead, see
    /// [`super::graphql::GraphqlResponse`].
    #[error("GraphQL {operation}: {}", messages.join("; "))]
    Graphql {
        /// The operation name from the document.
        operation: &'static str,
        /// Each `errors[].message`.
        messages: Vec<String>,
    },
    /// A project has no single-select field by that name (or it is not single-select).
    #[error("project {project} has no single-select field '{field}'")]
    NoSuchField {
        /// `org/number`.
        project: String,
        /// The field's name, e.g. `Status`.
        field: String,
    },
    /// A column (single-select option) that the project's field does not have.
    #[error("project {project} has no column '{column}' (it has: {})", known.join(", "))]
    UnknownColumn {
        /// `org/number`.
        project: String,
        /// The name asked for.
        column: String,
        /// The option names the field has.
        known: Vec<String>,
    },
    /// Any other status (e.g. 400, 410) or a body that is not what GitHub documents.
    #[error("{endpoint}: unexpected answer: {message}")]
    Unexpected {
        /// The endpoint template.
        endpoint: &'static str,
        /// The status and what was wrong.
        message: String,
    },
    /// The app's credentials are missing or unusable (no app id, no key, a key that is not an RSA PEM).
    #[error("GitHub App credentials: {0}")]
    Credentials(String),
}

impl GithubError {
    /// Whether this is GitHub's "does not exist" answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether the failure says nothing about the thing asked for, only that GitHub could not answer now
    /// (unavailable, rate limited, or a write whose outcome is unknown): worth asking again later, unlike an
    /// answer such as not found or forbidden.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. } | Self::Ambiguous { .. })
    }
}
