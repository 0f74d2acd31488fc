//! Every key of `.github/foreman.toml` with what it takes, in words and with an example, and where
//! `docs/constitution.md` documents it. The checker ([`super::check`]) reads files against this list, the
//! error messages quote it, and tests hold it equal to the schema's serde shape and to the documentation,
//! so the three cannot drift.

/// What a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    /// A table of further keys (`[agent]`, `[rules.tdd]` …).
    Table,
    /// An array of tables, each with the keys listed under it (`[[rules.required_commands]]`).
    Tables,
    /// `true` or `false`.
    Bool,
    /// A string.
    Text,
    /// An array of strings.
    Texts,
    /// An array of path globs (`globset` syntax).
    Globs,
    /// An array of regular expressions (Rust `regex` syntax).
    Regexes,
    /// A whole number of `unit`, from `min` to `max`.
    Whole {
        /// What is counted, plural (`files`, `seconds`).
        unit: &'static str,
        /// The least value accepted.
        min: u64,
        /// The greatest value accepted (the field's integer type's).
        max: u64,
    },
    /// An amount of US dollars, 0 or more (a float or a whole number).
    Dollars,
    /// A repository permission level (`anyone` … `admin`).
    Level,
}

/// One key of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The dotted path, e.g. `rules.max_files_changed`; keys of `[[rules.required_commands]]` entries are
    /// `rules.required_commands.name` and so on.
    pub path: &'static str,
    /// What it takes.
    pub takes: Takes,
    /// A value it accepts, as written in TOML, e.g. `20`.
    pub example: &'static str,
}

/// The levels `[triggers.permissions]` takes, from least to most.
pub const LEVELS: &[&str] = &["anyone", "read", "triage", "write", "maintain", "admin"];

const fn key(path: &'static str, takes: Takes, example: &'static str) -> Key {
    Key { path, takes, example }
}

const fn whole(unit: &'static str, min: u64, max: u64) -> Takes {
    Takes::Whole { unit, min, max }
}

const U32: u64 = u32::MAX as u64;
const U64: u64 = i64::MAX as u64;

/// Every key, tables before the keys under them, in the order `docs/constitution.md` lists them.
pub const KEYS: &[Key] = &[
    key("triggers", Takes::Table, "[triggers]"),
    key("triggers.label", Takes::Text, "\"foreman\""),
    key("triggers.cancel_on_unlabel", Takes::Bool, "false"),
    key("triggers.status_field", Takes::Text, "\"Status\""),
    key("triggers.trigger_columns", Takes::Texts, "[\"Ready\"]"),
    key("triggers.stop_columns", Takes::Texts, "[\"Backlog\", \"Todo\"]"),
    key("triggers.allowed_bots", Takes::Texts, "[\"renovate[bot]\"]"),
    key("triggers.help_url", Takes::Text, "\"https://example.com/foreman-help\""),
    key("triggers.permissions", Takes::Table, "[triggers.permissions]"),
    key("triggers.permissions.run", Takes::Level, "\"write\""),
    key("triggers.permissions.plan", Takes::Level, "\"write\""),
    key("triggers.permissions.stop", Takes::Level, "\"write\""),
    key("triggers.permissions.retry", Takes::Level, "\"write\""),
    key("triggers.permissions.status", Takes::Level, "\"anyone\""),
    key("triggers.permissions.help", Takes::Level, "\"anyone\""),
    key("triggers.permissions.constitution", Takes::Level, "\"anyone\""),
    key("triggers.permissions.constitution_init", Takes::Level, "\"write\""),
    key("triggers.permissions.approve", Takes::Level, "\"write\""),
    key("agent", Takes::Table, "[agent]"),
    key("agent.backend", Takes::Text, "\"claude\""),
    key("agent.model", Takes::Text, "\"claude-sonnet-4-5\""),
    key("agent.max_turns", whole("turns", 0, U32), "60"),
    key("agent.max_cost_usd", Takes::Dollars, "5.0"),
    key("agent.allowed_tools", Takes::Texts, "[\"Bash(cargo test:*)\", \"Edit\"]"),
    key("agent.disallowed_tools", Takes::Texts, "[\"WebFetch\"]"),
    key("agent.timeout_secs", whole("seconds", 0, U64), "3600"),
    key("agent.stall_timeout_secs", whole("seconds", 0, U64), "600"),
    key("agent.max_output_bytes", whole("bytes", 0, U64), "67108864"),
    key("agent.executor", Takes::Text, "\"actions\""),
    key("limits", Takes::Table, "[limits]"),
    key("limits.concurrency", whole("sessions", 1, U32), "1"),
    key("limits.daily_cost_usd", Takes::Dollars, "50.0"),
    key("limits.daily_sessions", whole("sessions", 0, U32), "20"),
    key("rules", Takes::Table, "[rules]"),
    key("rules.protected_paths", Takes::Globs, "[\".github/workflows/**\"]"),
    key("rules.allowed_paths", Takes::Globs, "[\"src/**\", \"tests/**\"]"),
    key("rules.max_files_changed", whole("files", 0, U32), "20"),
    key("rules.max_lines_changed", whole("lines", 0, U32), "1500"),
    key("rules.required_commands", Takes::Tables, "[[rules.required_commands]]"),
    key("rules.required_commands.name", Takes::Text, "\"tests\""),
    key("rules.required_commands.run", Takes::Text, "\"cargo test\""),
    key("rules.required_commands.timeout_secs", whole("seconds", 1, U64), "600"),
    key("rules.builtin_secret_patterns", Takes::Bool, "true"),
    key("rules.secret_patterns", Takes::Regexes, "['ACME_[A-Z0-9]{32}']"),
    key("rules.branch_prefix", Takes::Text, "\"foreman/\""),
    key("rules.deployment_target", Takes::Text, "\"Deployed by CI from main\""),
    key("rules.secret_naming", Takes::Text, "\"Secrets are environment variables named APP_<NAME>\""),
    key("rules.coding_standards", Takes::Text, "\"Small functions, doc comments on public items\""),
    key("rules.tdd", Takes::Table, "[rules.tdd]"),
    key("rules.tdd.required", Takes::Bool, "true"),
    key("rules.tdd.source", Takes::Globs, "[\"src/**\"]"),
    key("rules.tdd.tests", Takes::Globs, "[\"tests/**\"]"),
    key("plan", Takes::Table, "[plan]"),
    key("plan.approve", Takes::Text, "\"manual\""),
    key("plan.run", Takes::Text, "\"auto\""),
    key("plan.column", Takes::Text, "\"Backlog\""),
    key("plan.max_tasks", whole("tasks", 1, U32), "50"),
];

/// Old names still read, as (old dotted path, the key's one name). Both set in one file is an error.
pub const ALIASES: &[(&str, &str)] = &[("agent.idle_timeout_secs", "agent.stall_timeout_secs")];

/// Keys of `[[rules.required_commands]]` entries that have no default.
pub const REQUIRED: &[&str] = &["rules.required_commands.name", "rules.required_commands.run"];

/// The key at dotted `path`, an alias resolved to its one name.
pub fn find(path: &str) -> Option<&'static Key> {
    let path = ALIASES.iter().find(|(old, _)| *old == path).map_or(path, |(_, new)| *new);
    KEYS.iter().find(|k| k.path == path)
}

/// The keys directly under the table at `table` (`""` for the top level).
pub fn children(table: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter().filter(move |k| parent(k.path) == table)
}

/// The table a dotted path sits in: `rules` for `rules.tdd`, `""` for `rules`.
pub fn parent(path: &str) -> &str {
    path.rfind('.').map_or("", |dot| &path[..dot])
}

/// The last part of a dotted path.
pub fn leaf(path: &str) -> &str {
    path.rfind('.').map_or(path, |dot| &path[dot + 1..])
}

impl Key {
    /// What the key takes, in words with an example: `a whole number of files, for example 20`.
    pub fn takes_words(&self) -> String {
        let what = match self.takes {
            Takes::Table => return format!("a table of keys, written `{}`", self.example),
            Takes::Tables => {
                return format!("tables written `{}`, each with `name` and `run`", self.example);
            }
            Takes::Bool => "`true` or `false`".to_owned(),
            Takes::Text => "a string in quotes".to_owned(),
            Takes::Texts => "a list of strings".to_owned(),
            Takes::Globs => "a list of path globs".to_owned(),
            Takes::Regexes => "a list of regular expressions (Rust `regex` syntax)".to_owned(),
            Takes::Whole { unit, min: 0, .. } => format!("a whole number of {unit}"),
            Takes::Whole { unit, min, .. } => format!("a whole number of {unit}, {min} or more"),
            Takes::Dollars => "an amount of US dollars, 0 or more".to_owned(),
            Takes::Level => {
                format!("one of {}", LEVELS.iter().map(|l| format!("\"{l}\"")).collect::<Vec<_>>().join(", "))
            }
        };
        format!("{what}, for example `{}`", self.example)
    }

    /// The section of `docs/constitution.md` documenting the key, as a GitHub heading anchor (`agent`,
    /// `triggerspermissions`, `rulestdd-tests-required-when-source-changes` …).
    pub fn anchor(&self) -> &'static str {
        let table =
            if self.takes == Takes::Table || self.takes == Takes::Tables { self.path } else { parent(self.path) };
        match table {
            "triggers.permissions" => "triggerspermissions",
            "rules.tdd" => "rulestdd-tests-required-when-source-changes",
            "rules.required_commands" => "rulesrequired_commands",
            "agent" => "agent",
            "limits" => "limits",
            "rules" => "rules",
            "triggers" => "triggers",
            "plan" => "plan",
            _ => "validation",
        }
    }
}

/// The link to the documentation of `key` (dotted; an unknown key links to the section of its table):
/// `docs` (the base address of `docs/constitution.md`, e.g. `https://foreman.example.com/docs/constitution.md`)
/// with the key's section anchor.
pub fn doc_link(docs: &str, key: &str) -> String {
    let mut path = key;
    let anchor = loop {
        if let Some(k) = find(path) {
            break k.anchor();
        }
        if path.is_empty() {
            break "validation";
        }
        path = parent(path);
    };
    format!("{docs}#{anchor}")
}

/// The key of `table` nearest to the unknown `name`, by Damerau–Levenshtein similarity (`strsim`), when one
/// is near enough to be what was meant: at most two edits, and fewer than half the name's letters.
pub fn did_you_mean(table: &str, name: &str) -> Option<&'static str> {
    let mut names: Vec<&'static str> = children(table).map(|k| leaf(k.path)).collect();
    names.extend(ALIASES.iter().filter(|(old, _)| parent(old) == table).map(|(old, _)| leaf(old)));
    names
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(d, candidate)| *d <= 2 && *d * 2 < name.chars().count().max(candidate.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| {
            ALIASES.iter().find(|(old, _)| leaf(old) == candidate).map_or(candidate, |(_, new)| leaf(new))
        })
}

/// The other tables where a key named `name` belongs (an `[agent]` key written under `[rules]`).
pub fn belongs_in(name: &str) -> Vec<&'static str> {
    KEYS.iter().filter(|k| leaf(k.path) == name).map(|k| parent(k.path)).filter(|t| !t.is_empty()).collect()
}
