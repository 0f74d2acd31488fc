//! The slash-command grammar, apart from what the commands do (that is [`super::decide`]).
//!
//! A command is a line of a comment's prose (see [`super::markdown::prose`]) that starts, after optional
//! spaces, with `/foreman` or `@<app-slug>` (also `@<app-slug>[bot]`), then a command name and its
//! arguments up to the end of the line. Names are case-insensitive. A comment may carry several.
//!
//! ```text
//! /foreman run add a --json flag to the export command
//! @foreman status
//! ```

use std::fmt;

use serde::Serialize;

use super::markdown;

/// The prefix of the slash form. The mention form uses the configured app slug.
pub const SLASH_PREFIX: &str = "/foreman";

/// Declares [`CommandName`], [`CommandName::ALL`] and [`CommandName::as_str`] from one list, so a command
/// cannot be declared without being in `ALL`, and so in the parser, help and every test that walks `ALL`.
macro_rules! command_names {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)+) => {
        /// The commands, by name. Adding one here fails to compile until it has help text and a
        /// permission key ([`super::CommandPermissions::for_command`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum CommandName {
            $($(#[doc = $doc])* $variant,)+
        }

        impl CommandName {
            /// Every command, in the order help lists them (the order of their declaration).
            pub const ALL: [CommandName; [$($name),+].len()] = [$(CommandName::$variant),+];

            /// The name as written in a comment (lowercase; also its serde name and its key in
            /// `[triggers.permissions]`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CommandName::$variant => $name,)+
                }
            }
        }
    };
}

command_names! {
    /// `run [instructions]`.
    Run => "run",
    /// `plan [instructions | path/to/spec.md]`.
    Plan => "plan",
    /// `approve`.
    Approve => "approve",
    /// `stop`.
    Stop => "stop",
    /// `retry`.
    Retry => "retry",
    /// `status`.
    Status => "status",
    /// `help`.
    Help => "help",
    /// `constitution [init [template]]`.
    Constitution => "constitution",
}

impl CommandName {
    /// The arguments' shape, for help.
    pub fn usage(self) -> &'static str {
        match self {
            CommandName::Run => "run [instructions]",
            CommandName::Plan => "plan [instructions or path/to/spec.md]",
            CommandName::Approve => "approve",
            CommandName::Stop => "stop",
            CommandName::Retry => "retry",
            CommandName::Status => "status",
            CommandName::Help => "help",
            CommandName::Constitution => "constitution [init [template]]",
        }
    }

    /// One sentence on what it does, for help.
    pub fn summary(self) -> &'static str {
        match self {
            CommandName::Run => {
                "Queue this issue for a coding agent; on a pull request, queue a follow-up on its branch. \
                 Text after `run` is passed to the agent as extra instructions."
            }
            CommandName::Plan => {
                "Queue a planning session: the agent reads the issue (or the named file of the repository) and \
                 the code, changes nothing, and proposes tasks with their dependencies, shown as a table."
            }
            CommandName::Approve => {
                "Create the plan's tasks as sub-issues of this issue, each \"blocked by\" its blockers, on the board."
            }
            CommandName::Stop => "Cancel this issue's queued or running job.",
            CommandName::Retry => "Run this issue's failed, stuck or cancelled job again, or end its wait.",
            CommandName::Status => "Reply with the state of this issue's job.",
            CommandName::Help => "Reply with this list.",
            CommandName::Constitution => {
                "Reply with this repository's effective constitution, each value with its origin; `init` opens a \
                 pull request adding a starter `.github/foreman.toml` (template `rust`, `node`, `python` or `generic`, \
                 the default)."
            }
        }
    }

    /// Whether the command takes free-text arguments.
    fn takes_text(self) -> bool {
        match self {
            CommandName::Run | CommandName::Plan | CommandName::Constitution => true,
            CommandName::Approve | CommandName::Stop | CommandName::Retry | CommandName::Status | CommandName::Help => {
                false
            }
        }
    }

    fn from_word(word: &str) -> Option<CommandName> {
        CommandName::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A starter constitution's flavour, as `/foreman constitution init <template>` and
/// `foreman constitution init --template` name it. Its text is [`Template::text`] (in `crate::constitution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// A Cargo project: `cargo test`, `cargo clippy`.
    Rust,
    /// An npm project: `npm test`, `npm run lint`.
    Node,
    /// A Python project: `pytest`, `ruff`.
    Python,
    /// Any project: the rules without commands.
    Generic,
}

impl Template {
    /// Every template, for tests and help.
    pub const ALL: [Template; 4] = [Template::Rust, Template::Node, Template::Python, Template::Generic];

    /// The template's name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            Template::Rust => "rust",
            Template::Node => "node",
            Template::Python => "python",
            Template::Generic => "generic",
        }
    }

    /// The template by name (`rust`, `node`, `python`, `generic`), case-insensitively.
    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

/// A well-formed command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    /// `run`, with the rest of its line as instructions (`None` when empty).
    Run {
        /// Extra instructions for the agent.
        instructions: Option<String>,
    },
    /// `plan`, with the rest of its line as instructions, or the path of a file of the repository holding the
    /// specification (`None` when empty).
    Plan {
        /// Extra instructions, or a path.
        instructions: Option<String>,
    },
    /// `approve`: create the plan's tasks.
    Approve,
    /// `stop`.
    Stop,
    /// `retry`.
    Retry,
    /// `status`.
    Status,
    /// `help`.
    Help,
    /// `constitution` (show the effective rules) or `constitution init [template]`.
    Constitution {
        /// `None`: show; `Some`: open a pull request adding the starter file of this template.
        #[serde(skip_serializing_if = "Option::is_none")]
        init: Option<Template>,
    },
}

impl Command {
    /// Its name.
    pub fn name(&self) -> CommandName {
        match self {
            Command::Run { .. } => CommandName::Run,
            Command::Plan { .. } => CommandName::Plan,
            Command::Approve => CommandName::Approve,
            Command::Stop => CommandName::Stop,
            Command::Retry => CommandName::Retry,
            Command::Status => CommandName::Status,
            Command::Help => CommandName::Help,
            Command::Constitution { .. } => CommandName::Constitution,
        }
    }
}

/// A command line that could not be understood. Rendered for the user by [`ParseError::reply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ParseError {
    /// The prefix alone, with no command after it.
    #[error("no command after the prefix")]
    MissingCommand,
    /// A word that is no command; the nearest command, if one is close.
    #[error("unknown command '{command}'")]
    UnknownCommand {
        /// The word as written.
        command: String,
        /// The command it most likely meant.
        did_you_mean: Option<CommandName>,
    },
    /// Arguments to a command that takes none.
    #[error("'{command}' takes no arguments")]
    UnexpectedArgs {
        /// The command.
        command: CommandName,
        /// The arguments as written.
        args: String,
    },
    /// Arguments a command does not understand.
    #[error("'{command}' does not understand '{args}'")]
    InvalidArgs {
        /// The command.
        command: CommandName,
        /// The arguments as written.
        args: String,
    },
}

/// One command line found in a comment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The line as written, trimmed: identifies the command when an edit is compared with its previous body.
    pub line: String,
    /// The command, or why it is not one.
    pub parsed: Result<Command, ParseError>,
}

/// Finds every command line in a Markdown comment body, in order.
///
/// Only prose counts: code blocks, inline code, block quotes and HTML comments are skipped. Never panics.
pub fn parse(body: &str, app_slug: &str) -> Vec<Found> {
    let prose = markdown::prose(body);
    prose.lines().filter_map(|line| parse_line(line, app_slug)).collect()
}

/// Parses one line of prose; `None` when it is not addressed to Foreman.
pub fn parse_line(line: &str, app_slug: &str) -> Option<Found> {
    let line = line.trim();
    let rest = strip_prefix(line, app_slug)?;
    let rest = rest.trim();
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    let parsed = if word.is_empty() {
        Err(ParseError::MissingCommand)
    } else {
        match CommandName::from_word(word) {
            None => Err(ParseError::UnknownCommand { command: word.to_owned(), did_you_mean: did_you_mean(word) }),
            Some(CommandName::Run) => Ok(Command::Run { instructions: (!args.is_empty()).then(|| args.to_owned()) }),
            Some(name) if !args.is_empty() && !name.takes_text() => {
                Err(ParseError::UnexpectedArgs { command: name, args: args.to_owned() })
            }
            Some(CommandName::Plan) => Ok(Command::Plan { instructions: (!args.is_empty()).then(|| args.to_owned()) }),
            Some(CommandName::Approve) => Ok(Command::Approve),
            Some(CommandName::Stop) => Ok(Command::Stop),
            Some(CommandName::Retry) => Ok(Command::Retry),
            Some(CommandName::Status) => Ok(Command::Status),
            Some(CommandName::Help) => Ok(Command::Help),
            Some(CommandName::Constitution) => constitution_args(args),
        }
    };
    Some(Found { line: line.to_owned(), parsed })
}

/// `constitution`'s arguments: none (show), `init` (the generic template) or `init <template>`; the
/// template may also be given as `--template <template>` or `--template=<template>`, as the command line
/// `foreman constitution init` takes it too.
fn constitution_args(args: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = args
        .split_whitespace()
        .flat_map(|w| match w.strip_prefix("--template=") {
            Some(name) => vec![name],
            None if w == "--template" => vec![],
            None => vec![w],
        })
        .collect();
    let invalid = || ParseError::InvalidArgs { command: CommandName::Constitution, args: args.to_owned() };
    match words.as_slice() {
        [] => Ok(Command::Constitution { init: None }),
        [init] if init.eq_ignore_ascii_case("init") => Ok(Command::Constitution { init: Some(Template::Generic) }),
        [init, name] if init.eq_ignore_ascii_case("init") => {
            Template::from_name(name).map(|t| Command::Constitution { init: Some(t) }).ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// The text after `/foreman`, `@slug` or `@slug[bot]` (case-insensitive), if the line starts with one of
/// them followed by whitespace or the end of the line.
fn strip_prefix<'a>(line: &'a str, app_slug: &str) -> Option<&'a str> {
    let mention = format!("@{app_slug}");
    let mention_bot = format!("@{app_slug}[bot]");
    for prefix in [SLASH_PREFIX, mention_bot.as_str(), mention.as_str()] {
        if prefix.len() <= 1 {
            continue;
        }
        let Some(head) = line.get(..prefix.len()) else { continue };
        if head.eq_ignore_ascii_case(prefix) {
            let rest = &line[prefix.len()..];
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return Some(rest);
            }
        }
    }
    None
}

/// Words people write for a command, mapped to the command they mean.
const SYNONYMS: &[(&str, CommandName)] = &[
    ("start", CommandName::Run),
    ("go", CommandName::Run),
    ("do", CommandName::Run),
    ("cancel", CommandName::Stop),
    ("abort", CommandName::Stop),
    ("kill", CommandName::Stop),
    ("rerun", CommandName::Retry),
    ("restart", CommandName::Retry),
    ("again", CommandName::Retry),
    ("state", CommandName::Status),
    ("info", CommandName::Status),
    ("commands", CommandName::Help),
];

/// The command `word` most likely meant: a known synonym, a prefix, or the nearest name within two edits.
pub fn did_you_mean(word: &str) -> Option<CommandName> {
    let w = word.to_lowercase();
    if let Some((_, c)) = SYNONYMS.iter().find(|(s, _)| *s == w) {
        return Some(*c);
    }
    if w.len() >= 2
        && let Some(c) = CommandName::ALL.into_iter().find(|c| c.as_str().starts_with(&w))
    {
        return Some(c);
    }
    CommandName::ALL
        .into_iter()
        .map(|c| (edit_distance(&w, c.as_str()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The help text, generated from [`CommandName::ALL`], so it lists every command.
pub fn format_help(app_slug: &str, help_url: Option<&str>) -> String {
    let mut s = String::from("**Foreman commands**\n\nWrite one at the start of a line, as `/foreman <command>` or `@");
    s.push_str(app_slug);
    s.push_str(" <command>`. Commands in code blocks, inline code, quotes and HTML comments are ignored.\n\n");
    s.push_str("| command | what it does |\n|---|---|\n");
    for c in CommandName::ALL {
        s.push_str(&format!("| `/foreman {}` | {} |\n", c.usage(), c.summary()));
    }
    if let Some(url) = help_url {
        s.push_str(&format!("\nPermissions and details: [the command reference]({url}).\n"));
    }
    s
}

impl ParseError {
    /// A reply telling the person what was wrong with `line` and what to write instead; it lists the
    /// commands and links `help_url` (the command reference) when one is configured.
    pub fn reply(&self, line: &str, help_url: Option<&str>) -> String {
        let problem = match self {
            ParseError::MissingCommand => "it names no command.".to_owned(),
            ParseError::UnknownCommand { command, did_you_mean } => {
                let mut p = format!("{} is not a Foreman command.", code(command));
                if let Some(c) = did_you_mean {
                    p.push_str(&format!(" Did you mean `/foreman {}`?", c.usage()));
                }
                p
            }
            ParseError::UnexpectedArgs { command, args } => {
                format!(
                    "`{command}` takes no arguments, but was given {}. Write `/foreman {command}` alone.",
                    code(args)
                )
            }
            ParseError::InvalidArgs { command, args } => {
                format!("`{command}` does not understand {}. Write `/foreman {}`.", code(args), command.usage())
            }
        };
        let names: Vec<String> = CommandName::ALL.iter().map(|c| format!("`{c}`")).collect();
        let help = match help_url {
            Some(url) => format!("Write `/foreman help` or see [the command reference]({url}) for what each does."),
            None => "Write `/foreman help` for what each does.".to_owned(),
        };
        format!("I could not understand {}: {problem}\n\nThe commands are {}. {help}", code(line), names.join(", "))
    }
}

/// `text` as inline code that cannot be broken out of: backticks become quotes.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

/// Joins every reply to one comment into a single reply, at the place of the first: one comment back,
/// not one per command (GitHub's secondary rate limit counts content creation).
pub(super) fn merge_replies(actions: Vec<super::Action>) -> Vec<super::Action> {
    let mut out: Vec<super::Action> = Vec::with_capacity(actions.len());
    let mut first_reply: Option<usize> = None;
    for action in actions {
        match (action, first_reply) {
            (super::Action::Reply { text, .. }, Some(i)) => {
                if let super::Action::Reply { text: joined, .. } = &mut out[i] {
                    joined.truncate(joined.trim_end().len());
                    joined.push_str("\n\n---\n\n");
                    joined.push_str(&text);
                }
            }
            (action @ super::Action::Reply { .. }, None) => {
                first_reply = Some(out.len());
                out.push(action);
            }
            (action, _) => out.push(action),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("rnu"), Some(CommandName::Run));
        assert_eq!(did_you_mean("stpo"), Some(CommandName::Stop));
        assert_eq!(did_you_mean("stat"), Some(CommandName::Status));
        assert_eq!(did_you_mean("cancel"), Some(CommandName::Stop));
        assert_eq!(did_you_mean("deploy"), None);
    }

    #[test]
    fn help_lists_every_command() {
        let h = format_help("foreman", None);
        for c in CommandName::ALL {
            assert!(h.contains(&format!("/foreman {}", c.usage())), "{c}");
        }
    }
}
