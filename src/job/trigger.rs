//! What asked for a job: [`Trigger`], recorded on the job.

use serde::{Deserialize, Serialize};

/// What asked for the work. Recorded on the job as its lower-case name (`label`, `board`, `command`,
/// `review`): the strings stores written before this type existed hold, so they read unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The trigger label was added.
    Label,
    /// A Projects v2 card was moved into a trigger column.
    Board,
    /// A command in a comment.
    Command,
    /// A review requesting changes on Foreman's pull request.
    Review,
}

impl Trigger {
    /// The name as serialised and recorded on the job: `label`, `board`, `command` or `review`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Label => "label",
            Trigger::Board => "board",
            Trigger::Command => "command",
            Trigger::Review => "review",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_names_are_the_ones_stores_hold() {
        for (t, name) in [
            (Trigger::Label, "label"),
            (Trigger::Board, "board"),
            (Trigger::Command, "command"),
            (Trigger::Review, "review"),
        ] {
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Trigger>(&format!("\"{name}\"")).unwrap(), t);
            assert_eq!(t.as_str(), name);
        }
    }
}
