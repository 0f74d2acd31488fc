//! Reading constitutions: one file into a [`Constitution`] with errors that carry line, column and key;
//! several layers (built-in defaults < org `.github` repository < repository) into an [`Effective`]
//! constitution that remembers where each value came from.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::schema::Constitution;

/// Where a constitution file lives, relative to its repository's root.
pub const PATH: &str = crate::decide::CONSTITUTION_PATH;

/// Where an effective value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Foreman's built-in default.
    Default,
    /// `.github/foreman.toml` in the organisation's (or user's) `.github` repository, as Probot reads it.
    Org,
    /// `.github/foreman.toml` in the repository itself.
    Repo,
    /// The server's configuration: a ceiling the files left unset, or asked to raise
    /// ([`Effective::apply_ceilings`]).
    Server,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Default => "default",
            Origin::Org => "org",
            Origin::Repo => "repo",
            Origin::Server => "server",
        })
    }
}

/// A constitution file that cannot be used, and where the fault is. Fit for a comment or a check run
/// annotation: it quotes the file's key and position, never Foreman's internals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstitutionError {
    /// Which file: the org's or the repository's.
    pub origin: Origin,
    /// 1-based line of the fault, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the fault, when the parser knows it.
    pub column: Option<usize>,
    /// The dotted key at fault (e.g. `rules.max_files_changed`), when it can be told.
    pub key: Option<String>,
    /// What is wrong, from the TOML parser or the schema (e.g. ``unknown field `foo`, expected one of …``).
    pub message: String,
}

impl fmt::Display for ConstitutionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = match self.origin {
            Origin::Org => "the organisation's .github/foreman.toml",
            _ => PATH,
        };
        write!(f, "{file}")?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ", line {line}, column {column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConstitutionError {}

/// Parses and validates one constitution file read from `origin`. Unset keys take their defaults.
///
/// # Errors
/// TOML syntax errors, unknown keys, wrong types and invalid values (globs, regular expressions, zero
/// where at least 1 is needed), each with line, column and key where the parser gives a position.
pub fn parse(origin: Origin, text: &str) -> Result<Constitution, ConstitutionError> {
    parse_all(origin, text).map_err(|mut errors| errors.swap_remove(0))
}

/// Parses and validates one constitution file read from `origin`, reporting every error at once
/// ([`super::check`]): syntax errors (the rest of the file is read on past each), unknown keys with the
/// nearest known one, and values of the wrong kind or out of range, each with line, column, the key as
/// written and what the key takes in words. Unset keys take their defaults; old key names
/// ([`super::keys::ALIASES`]) are read as their one name.
///
/// # Errors
/// Every error found, in file order (never an empty list).
pub fn parse_all(origin: Origin, text: &str) -> Result<Constitution, Vec<ConstitutionError>> {
    let errors = super::check::check(origin, text);
    if !errors.is_empty() {
        return Err(errors);
    }
    // The checker knows every key; serde is the last word on the shape all the same.
    toml::from_str(text).map_err(|e| vec![error_at(origin, text, &e)])
}

/// Renames old key names ([`super::keys::ALIASES`]) in a parsed file to their one name, so origins and
/// merges know a single key.
fn unalias(table: &mut toml::Table) {
    for (old, new) in super::keys::ALIASES {
        let (Some((section, old_leaf)), Some((_, new_leaf))) = (old.split_once('.'), new.split_once('.')) else {
            continue;
        };
        if let Some(toml::Value::Table(t)) = table.get_mut(section)
            && let Some(v) = t.remove(old_leaf)
        {
            t.entry(new_leaf.to_owned()).or_insert(v);
        }
    }
}

/// The effective constitution of a repository and the origin of each of its values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Effective {
    /// The merged rules.
    pub constitution: Constitution,
    /// Dotted key (e.g. `rules.tdd.required`, `triggers.permissions.run`) → the layer that set it. Keys
    /// absent here have their built-in default. An array is set as a whole, so its key is the array's.
    pub origins: BTreeMap<String, Origin>,
    /// Dotted keys a file set beyond the server's ceiling, with what it asked for; their value is the
    /// server's (origin [`Origin::Server`]). Filled by [`Effective::apply_ceilings`].
    pub capped: BTreeMap<String, Capped>,
    /// The server's ceilings this constitution was held to, for showing the server's values; `None` until
    /// [`Effective::apply_ceilings`].
    pub ceilings: Option<super::ceilings::Ceilings>,
}

/// A value a constitution file asked for beyond the server's ceiling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Capped {
    /// What the file set, as JSON (a number, or the list of tools).
    pub asked: serde_json::Value,
    /// Which file set it: [`Origin::Org`] or [`Origin::Repo`].
    pub by: Origin,
}

impl Effective {
    /// Where the value at dotted `key` came from: the layer that set it or one of its parent tables.
    pub fn origin(&self, key: &str) -> Origin {
        let mut key = key;
        loop {
            if let Some(origin) = self.origins.get(key) {
                return *origin;
            }
            match key.rfind('.') {
                Some(dot) => key = &key[..dot],
                None => return Origin::Default,
            }
        }
    }
}

/// `[limits] concurrency` when the repository or its organisation sets it; `None` when the default applies
/// (the scheduler's `max_sessions_per_repo` then holds).
impl crate::job::RepoConcurrency for Effective {
    fn concurrency(&self) -> Option<u32> {
        (self.origin("limits.concurrency") != Origin::Default).then(|| self.constitution.limits.concurrency.get())
    }
}

/// Merges built-in defaults < `org` < `repo` (either file may be missing). Tables merge key by key;
/// any other value, arrays included, replaces the one below it.
///
/// # Errors
/// Every error of every layer (both files are validated, so both can be fixed at once).
pub fn merge(org: Option<&str>, repo: Option<&str>) -> Result<Effective, Vec<ConstitutionError>> {
    let mut errors = Vec::new();
    let mut merged = toml::Table::new();
    let mut origins = BTreeMap::new();
    for (origin, text) in [(Origin::Org, org), (Origin::Repo, repo)] {
        let Some(text) = text else { continue };
        match parse_all(origin, text) {
            Err(e) => errors.extend(e),
            Ok(_) => match text.parse::<toml::Table>() {
                Ok(mut table) => {
                    unalias(&mut table);
                    overlay(&mut merged, table, "", origin, &mut origins);
                }
                Err(e) => errors.push(error_at(origin, text, &e)),
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match Constitution::deserialize(toml::Value::Table(merged)) {
        Ok(constitution) => Ok(Effective { constitution, origins, ..Effective::default() }),
        // Each layer is valid and tables merge key by key, so this is unreachable in practice; the
        // repository's file is the one to blame if it happens.
        Err(e) => Err(vec![ConstitutionError {
            origin: Origin::Repo,
            line: None,
            column: None,
            key: None,
            message: format!("the merged constitution is invalid: {}", e.message()),
        }]),
    }
}

/// Lays `top` over `base`, recording `origin` for every leaf (non-table value) it sets.
fn overlay(
    base: &mut toml::Table,
    top: toml::Table,
    prefix: &str,
    origin: Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in top {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => {
                overlay(below, above, &path, origin, origins);
            }
            (_, toml::Value::Table(above)) => {
                let mut fresh = toml::Table::new();
                overlay(&mut fresh, above, &path, origin, origins);
                base.insert(key, toml::Value::Table(fresh));
            }
            (_, value) => {
                // A new array replaces the old one whole, including any origins recorded under it.
                origins.retain(|k, _| !k.starts_with(&format!("{path}.")));
                origins.insert(path, origin);
                base.insert(key, value);
            }
        }
    }
}

/// Turns a TOML error into a [`ConstitutionError`] with line, column and key.
fn error_at(origin: Origin, text: &str, error: &toml::de::Error) -> ConstitutionError {
    let message = error.message().trim().to_owned();
    let Some(span) = error.span() else {
        return ConstitutionError { origin, line: None, column: None, key: None, message };
    };
    let (line, column) = line_column(text, element_start(text, span, &message));
    ConstitutionError { origin, line: Some(line), column: Some(column), key: key_at(text, line), message }
}

/// Where the fault is within `span`. toml reports an invalid array element at the array; when the
/// message quotes the element (`` invalid glob `src/[abc`: … ``) and it is written verbatim inside the
/// array, its string's position is used instead.
fn element_start(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let inside = text.get(span.clone()).unwrap_or("");
    if !inside.starts_with('[') {
        return span.start;
    }
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    quoted
        .and_then(|q| ['"', '\''].into_iter().find_map(|mark| inside.find(&format!("{mark}{q}{mark}"))))
        .map_or(span.start, |at| span.start + at)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted key that line `line` (1-based) of `text` belongs to: the nearest `key =` at or above it,
/// under the nearest table header above that. A best effort for error messages: TOML's own errors
/// carry positions, not keys.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut key = None;
    for i in (0..line.min(lines.len())).rev() {
        let trimmed = lines[i].trim();
        if trimmed.starts_with('[') {
            let header = trimmed.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_owned();
            return Some(match key {
                Some(k) if !header.is_empty() => format!("{header}.{k}"),
                Some(k) => k,
                None => header,
            });
        }
        if key.is_none()
            && let Some((left, _)) = trimmed.split_once('=')
        {
            let left = left.trim();
            if !left.is_empty() && !left.starts_with('#') && !left.contains(['"', '\'']) {
                key = Some(left.replace(' ', ""));
            }
        }
    }
    key
}
