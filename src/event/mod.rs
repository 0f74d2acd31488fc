//! Typed GitHub webhook events, decoded into Foreman's own types (not octocrab's, which reject unknown actions).
