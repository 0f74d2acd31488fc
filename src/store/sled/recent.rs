//! The sessions that ended most recently, for the console's recent outcomes.

use super::Store;
use super::jobs::{JobError, decode};
use crate::job::{SessionRecord, SessionState};

impl Store {
    /// Up to `limit` sessions that have ended (any state but [`SessionState::Running`]), most recently
    /// started first.
    ///
    /// Session ids are UUID v7 (time-ordered), so the `sessions` tree is walked from its newest key: the
    /// cost is `limit` records plus the running sessions stepped over, not the whole tree.
    pub fn recent_sessions(&self, limit: usize) -> Result<Vec<SessionRecord>, JobError> {
        let mut out = Vec::new();
        for raw in self.job_trees().sessions.iter().values().rev() {
            if out.len() == limit {
                break;
            }
            let record: SessionRecord = decode(&raw?, "session")?;
            if record.state != SessionState::Running {
                out.push(record);
            }
        }
        Ok(out)
    }
}
