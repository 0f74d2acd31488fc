//! Newtypes for what GitHub identifies, so arguments cannot be swapped.
//!
//! Shapes follow GitHub's REST and webhook payloads
//! (<https://docs.github.com/en/webhooks/webhook-events-and-payloads>).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A repository's full name, `owner/name`, as in the payload's `repository.full_name`.
///
/// Both parts are non-empty and contain no `/`. Comparison is exact; GitHub treats names
/// case-insensitively, so callers that compare user input should lowercase both sides.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName {
    owner: String,
    name: String,
}

impl RepoName {
    /// Builds a name from its two parts. Errors when either is empty or contains `/`.
    pub fn new(owner: &str, name: &str) -> Result<Self, InvalidRepoName> {
        if owner.is_empty() || name.is_empty() || owner.contains('/') || name.contains('/') {
            return Err(InvalidRepoName(format!("{owner}/{name}")));
        }
        Ok(Self { owner: owner.to_owned(), name: name.to_owned() })
    }

    /// The owner: a user or organisation login.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository's name without its owner.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A string that is not `owner/name`.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a repository name of the form owner/name")]
pub struct InvalidRepoName(pub String);

impl FromStr for RepoName {
    type Err = InvalidRepoName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((owner, name)) => Self::new(owner, name),
            None => Err(InvalidRepoName(s.to_owned())),
        }
    }
}

impl TryFrom<String> for RepoName {
    type Error = InvalidRepoName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RepoName> for String {
    fn from(r: RepoName) -> String {
        r.to_string()
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

number_id!(
    /// An issue or pull request number within its repository (`issue.number`); they share one sequence.
    IssueNumber
);
number_id!(
    /// A GitHub App installation's id (`installation.id` in a payload).
    InstallationId
);
number_id!(
    /// A user's (or bot's) numeric id (`sender.id`). Stable across renames, unlike the login.
    UserId
);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as GitHub sent it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

string_id!(
    /// A delivery's id: the `X-GitHub-Delivery` header, a GUID GitHub keeps across redeliveries.
    DeliveryId
);
string_id!(
    /// A GitHub login (`login` of a user, organisation or bot, e.g. `octocat` or `foreman[bot]`). Logins can
    /// be renamed; [`UserId`] is the stable id.
    Login
);
string_id!(
    /// A commit's SHA-1 as 40 lower-case hex digits (`head.sha`, `after`), as GitHub sends it.
    CommitSha
);
string_id!(
    /// A GraphQL global node id (`node_id` in REST payloads), e.g. `PVTI_…` for a Projects v2 item.
    NodeId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_name_round_trips_and_refuses_malformed() {
        let r: RepoName = "octo-org/hello-world".parse().unwrap();
        assert_eq!((r.owner(), r.name()), ("octo-org", "hello-world"));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"octo-org/hello-world\"");
        for bad in ["", "nobody", "/x", "x/", "a/b/c"] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
    }
}
