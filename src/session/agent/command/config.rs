//! The `[agent.command]` section: the command line the command backend runs.

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// The `[agent.command]` section (env `FOREMAN_AGENT_COMMAND` sets the command line). The command line
/// alone is accepted in its place, as before the section existed: `agent.command = "aider --yes"` is
/// `[agent.command] run = "aider --yes"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandConfig {
    /// A shell command line run with `sh -c` in the worktree. It gets the prompt on stdin and in the file
    /// named by `FOREMAN_PROMPT_FILE`; see [`super`] for its environment. Required for
    /// `agent.backend = "command"`.
    pub run: Option<String>,
}

impl CommandConfig {
    /// A section running `line`.
    pub fn line(line: impl Into<String>) -> Self {
        Self { run: Some(line.into()) }
    }

    /// Checks the values for a server whose backend is `command`; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.run.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err("agent.command (FOREMAN_AGENT_COMMAND) is required when agent.backend is \"command\"".into());
        }
        Ok(())
    }
}

/// The table form, with its keys checked.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
struct Section {
    run: Option<String>,
}

impl<'de> Deserialize<'de> for CommandConfig {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = CommandConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command line, or a table with `run`")
            }

            fn visit_str<E: de::Error>(self, line: &str) -> Result<CommandConfig, E> {
                Ok(CommandConfig::line(line))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CommandConfig, A::Error> {
                let section = Section::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CommandConfig { run: section.run })
            }
        }
        deserializer.deserialize_any(Either)
    }
}
