//! Deciding a stored (or any) payload again, without acting on it: what `foreman replay` prints and what the
//! console's "replay" button shows. The payload is decoded as the inbox worker decodes it and decided by
//! [`super::decide`] with a snapshot holding only the job state; the author's association is the
//! only evidence of permission, so a command from someone else comes out as a permission lookup.

use super::{Action, DecideConfig, JobState, Snapshot, decide};
use crate::event::{self, DecodeError, Event};

/// Decodes `body` as an `event_name` delivery and decides it ([`replay_event`]) with `job(&event)` standing
/// in for the job state (`None`: no job).
///
/// Errors: the payload does not decode ([`DecodeError`]; the inbox worker dead-letters such a delivery).
pub fn replay(
    config: &DecideConfig,
    event_name: &str,
    body: &[u8],
    job: impl FnOnce(&Event) -> Option<JobState>,
) -> Result<Vec<Action>, DecodeError> {
    let event = event::decode(event_name, body)?;
    let job = job(&event);
    Ok(replay_event(config, &event, job))
}

/// Decides a decoded `event` with `job` as the job state and nothing else known: the actions in the
/// order the inbox worker would carry them out (a lookup where it would read a fact from GitHub first).
pub fn replay_event(config: &DecideConfig, event: &Event, job: Option<JobState>) -> Vec<Action> {
    decide(event, config, &Snapshot { job, ..Snapshot::default() })
}
