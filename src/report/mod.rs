//! Reporting back on GitHub: the tracking comment, labels, board moves, pull requests and check runs.

pub mod github;
pub mod outbox;
pub mod progress;
pub mod push;
pub mod render;
