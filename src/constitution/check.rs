//! Every error of one `.github/foreman.toml` at once. The file is read with `toml_edit` (which keeps each
//! key's and value's position) and walked against [`super::keys::KEYS`]: unknown keys (with the nearest
//! known one, when one is near), values of the wrong kind (told in words, with an example), and invalid
//! values (globs, regular expressions, numbers out of range) are all collected, not only the first. A
//! syntax error stops a TOML parser; the broken statement is blanked out and the rest read again, so the
//! errors after it are found too.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::keys::{self, Key, Takes};
use super::load::{ConstitutionError, Origin, line_column};
use super::schema::{PathGlob, SecretPattern};

/// Syntax errors reported in one file at most; past them the file is too broken to read on.
const MAX_SYNTAX_ERRORS: usize = 20;

/// Every error in `text` (a constitution file read from `origin`), in file order. Empty when the file is
/// valid as far as the key list can tell; the caller still deserialises it.
pub fn check(origin: Origin, text: &str) -> Vec<ConstitutionError> {
    let mut errors = Vec::new();
    let mut working = text.to_owned();
    for _ in 0..=MAX_SYNTAX_ERRORS {
        match toml_edit::ImDocument::parse(working.as_str()) {
            Ok(doc) => {
                let mut walk = Walk { origin, text, errors: Vec::new() };
                walk.table("", doc.as_table());
                errors.extend(walk.errors);
                break;
            }
            Err(e) => {
                let at = e.span().map_or(working.len(), |s| s.start);
                let (error, blank) = syntax_error(origin, &working, at, e.message());
                errors.push(error);
                if !blank_lines(&mut working, blank) {
                    break;
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

/// A syntax error at byte `at` with toml's `message`, and the lines (1-based, inclusive) to blank before
/// reading on: the statement the parser was in.
fn syntax_error(origin: Origin, text: &str, at: usize, message: &str) -> (ConstitutionError, (usize, usize)) {
    let (line, column) = line_column(text, at);
    let said = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    let found = text[text.floor_char_boundary(at)..].lines().next().unwrap_or("").trim();
    let found = if found.is_empty() { "the end of the line".to_owned() } else { format!("`{}`", cut(found, 40)) };
    let open = open_statement(text, at);
    let blank = match &open {
        Some(o) if o.line < line => (o.line, line - 1),
        _ => (line, line),
    };
    let error = match open {
        Some(Open { line: from, column: col, key, what }) if from < line => ConstitutionError {
            origin,
            line: Some(from),
            column: Some(col),
            message: format!(
                "{what} of `{}` opened on line {from} is not closed: the parser stopped at line {line}, column \
                 {column}, at {found} (TOML: {said})",
                key.as_deref().unwrap_or("?")
            ),
            key,
        },
        other => ConstitutionError {
            origin,
            line: Some(line),
            column: Some(column),
            key: other.and_then(|o| o.key).or_else(|| statement_key(text, line)),
            message: format!("this line is not valid TOML at {found} ({said})"),
        },
    };
    (error, blank)
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() > chars {
        format!("{}…", text.chars().take(chars).collect::<String>())
    } else {
        text.into()
    }
}

/// Replaces lines `from..=to` (1-based) of `text` with spaces, keeping every byte offset. `false` when
/// there was nothing left to blank (the parser would fail at the same place again).
fn blank_lines(text: &mut String, (from, to): (usize, usize)) -> bool {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if (from..=to).contains(&(i + 1)) {
            let body = line.trim_end_matches(['\n', '\r']);
            changed |= !body.trim().is_empty();
            out.extend(body.chars().map(|c| " ".repeat(c.len_utf8())));
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    *text = out;
    changed
}

/// A value still open (an array, an inline table, a multi-line string) at some byte.
#[derive(Debug)]
struct Open {
    line: usize,
    column: usize,
    key: Option<String>,
    what: &'static str,
}

/// The statement whose value is still open at byte `at`: where its value opened, its dotted key, and
/// what kind of value it is. `None` when nothing is open there. A small TOML lexer: strings, comments,
/// table headers, brackets.
fn open_statement(text: &str, at: usize) -> Option<Open> {
    let bytes = text.as_bytes();
    let (mut header, mut key, mut depth) = (String::new(), None::<String>, 0usize);
    let mut opened: Option<(usize, &'static str)> = None;
    let mut line_start = 0;
    let mut i = 0;
    while i < at.min(bytes.len()) {
        let c = bytes[i];
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let triple = bytes.get(i..i + 3) == Some(&[c, c, c][..]);
                let start = i;
                i += if triple { 3 } else { 1 };
                loop {
                    if i >= bytes.len() || i >= at {
                        let what = if triple { "the multi-line string" } else { "the string" };
                        if depth == 0 {
                            opened = Some((start, what));
                        }
                        return opened.map(|(o, what)| open_at(text, o, &header, key.clone(), what));
                    }
                    if bytes[i] == b'\\' && c == b'"' {
                        i += 2;
                        continue;
                    }
                    if !triple && bytes[i] == b'\n' {
                        break;
                    }
                    let end = if triple { bytes.get(i..i + 3) == Some(&[c, c, c][..]) } else { bytes[i] == c };
                    if end {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' if depth == 0 && key.is_none() => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                header = text[i..end].trim_start_matches('[').split(']').next().unwrap_or("").trim().replace(' ', "");
                i = end;
                continue;
            }
            b'[' | b'{' => {
                if depth == 0 {
                    opened = Some((i, if c == b'[' { "the list" } else { "the inline table" }));
                }
                depth += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' if depth == 0 && key.is_none() => {
                key = Some(text[line_start..i].trim().replace([' ', '"', '\''], ""));
            }
            b'\n' => {
                line_start = i + 1;
                if depth == 0 {
                    key = None;
                    opened = None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (depth > 0).then_some(opened).flatten().map(|(o, what)| open_at(text, o, &header, key, what))
}

fn open_at(text: &str, offset: usize, header: &str, key: Option<String>, what: &'static str) -> Open {
    let (line, column) = line_column(text, offset);
    let key = key.map(|k| if header.is_empty() { k } else { format!("{header}.{k}") });
    Open { line, column, key, what }
}

/// The dotted key of the statement on `line` (1-based), under the nearest table header above it.
fn statement_key(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    if here.starts_with('[') {
        return Some(here.trim_start_matches('[').split(']').next()?.trim().to_owned());
    }
    let (left, _) = here.split_once('=')?;
    let name = left.trim().replace([' ', '"', '\''], "");
    let header = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .and_then(|l| l.trim_start_matches('[').split(']').next())
        .map(|h| h.trim().to_owned());
    Some(match header {
        Some(h) if !h.is_empty() => format!("{h}.{name}"),
        _ => name,
    })
}

/// One `[[rules.required_commands]]` entry and where it is.
type Entry<'a> = (&'a dyn TableLike, Option<Range<usize>>);

/// The walk of a parsed file against the key list, collecting errors.
struct Walk<'a> {
    origin: Origin,
    text: &'a str,
    errors: Vec<ConstitutionError>,
}

impl Walk<'_> {
    fn error(&mut self, span: Option<Range<usize>>, key: &str, message: String) {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_column(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let key = (!key.is_empty()).then(|| key.to_owned());
        self.errors.push(ConstitutionError { origin: self.origin, line, column, key, message });
    }

    /// The keys of the table at `path` (`""`: the file's top level).
    fn table(&mut self, path: &str, table: &dyn TableLike) {
        for (name, item) in table.iter() {
            let full = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
            let key_span = table.key(name).and_then(toml_edit::Key::span);
            match keys::find(&full).filter(|k| keys::parent(k.path) == path) {
                None => self.unknown(path, name, &full, key_span),
                Some(k) => {
                    if k.path != full && table.contains_key(keys::leaf(k.path)) {
                        let message = format!(
                            "`{name}` is the old name of `{}`, which is set too: keep only `{}`",
                            keys::leaf(k.path),
                            keys::leaf(k.path)
                        );
                        self.error(key_span.clone(), &full, message);
                    }
                    let span = item.span().or(key_span);
                    self.item(k, &full, item, span);
                }
            }
        }
    }

    fn unknown(&mut self, table: &str, name: &str, full: &str, span: Option<Range<usize>>) {
        let place = if table.is_empty() { "at the top level".to_owned() } else { format!("in `[{table}]`") };
        let mut message = format!("unknown key `{name}` {place}");
        if full == "triggers.app_slug" {
            message.push_str("; the app's name belongs to the installation, set in the server's configuration");
        } else if let Some(near) = keys::did_you_mean(table, name) {
            message.push_str(&format!("; did you mean `{near}`?"));
        } else if let Some(other) = keys::belongs_in(name).first() {
            message.push_str(&format!("; `{name}` belongs in `[{other}]`"));
        } else if table.is_empty() {
            message.push_str("; the file's tables are `[triggers]`, `[agent]`, `[limits]`, `[rules]` and `[plan]`");
        }
        self.error(span, full, message);
    }

    fn wrong(&mut self, key: &Key, written: &str, span: Option<Range<usize>>, found: String) {
        let message = format!("`{}` takes {}; found {found}", keys::leaf(written), key.takes_words());
        self.error(span, written, message);
    }

    fn item(&mut self, key: &Key, written: &str, item: &Item, span: Option<Range<usize>>) {
        match key.takes {
            Takes::Table => match item.as_table_like() {
                Some(t) => self.table(key.path, t),
                None => self.wrong(key, written, span, found(item)),
            },
            Takes::Tables => {
                let entries: Option<Vec<Entry<'_>>> = match (item.as_array_of_tables(), item.as_array()) {
                    (Some(aot), _) => Some(aot.iter().map(|t| (t as &dyn TableLike, t.span())).collect()),
                    (_, Some(array)) => {
                        array.iter().map(|v| v.as_inline_table().map(|t| (t as &dyn TableLike, v.span()))).collect()
                    }
                    _ => None,
                };
                let Some(entries) = entries else { return self.wrong(key, written, span, found(item)) };
                for (entry, at) in entries {
                    self.table(key.path, entry);
                    for required in keys::REQUIRED {
                        if !entry.contains_key(keys::leaf(required)) {
                            let message = format!("each `{}` needs `{}`", key.example, keys::leaf(required));
                            self.error(at.clone().or(span.clone()), key.path, message);
                        }
                    }
                }
            }
            _ => match item.as_value() {
                Some(v) => self.value(key, written, v, span),
                None => self.wrong(key, written, span, found(item)),
            },
        }
    }

    fn value(&mut self, key: &Key, written: &str, v: &Value, span: Option<Range<usize>>) {
        match (key.takes, v) {
            (Takes::Bool, Value::Boolean(_)) | (Takes::Text, Value::String(_)) => {}
            (Takes::Level, Value::String(s)) if keys::LEVELS.contains(&s.value().as_str()) => {}
            (Takes::Whole { min, max, .. }, Value::Integer(n)) => {
                let n = *n.value();
                if n < 0 || (n as u64) < min || (n as u64) > max {
                    self.wrong(key, written, span, n.to_string());
                }
            }
            (Takes::Dollars, Value::Float(f)) if *f.value() >= 0.0 && f.value().is_finite() => {}
            (Takes::Dollars, Value::Integer(n)) if *n.value() >= 0 => {}
            (Takes::Texts | Takes::Globs | Takes::Regexes, Value::Array(array)) => {
                for element in array.iter() {
                    let at = element.span().or(span.clone());
                    let Value::String(s) = element else {
                        let message = format!(
                            "every entry of `{}` is a string in quotes; found {} (the key takes {})",
                            keys::leaf(written),
                            found_value(element),
                            key.takes_words()
                        );
                        self.error(at, written, message);
                        continue;
                    };
                    let s = s.value();
                    let problem = match key.takes {
                        Takes::Globs => PathGlob::new(s).err().map(|e| format!("invalid glob `{s}`: {}", e.kind())),
                        Takes::Regexes => SecretPattern::new(s).err().map(|e| {
                            let text = e.to_string();
                            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                            let last = last.strip_prefix("error: ").unwrap_or(last);
                            format!("invalid regular expression `{s}`: {last}")
                        }),
                        _ => None,
                    };
                    if let Some(problem) = problem {
                        self.error(
                            at,
                            written,
                            format!("{problem} (`{}` takes {})", keys::leaf(written), key.takes_words()),
                        );
                    }
                }
            }
            _ => self.wrong(key, written, span, found_value(v)),
        }
    }
}

/// What was written, in words: `the string "sixty"`, `a table`.
fn found(item: &Item) -> String {
    match item {
        Item::Value(v) => found_value(v),
        Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "a list of tables".into(),
        Item::None => "nothing".into(),
    }
}

fn found_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string \"{}\"", cut(s.value(), 40)),
        Value::Integer(n) => format!("the whole number {}", n.value()),
        Value::Float(f) => format!("the number {}", f.value()),
        Value::Boolean(b) => format!("`{}`", b.value()),
        Value::Datetime(d) => format!("the date {}", d.value()),
        Value::Array(_) => "a list".into(),
        Value::InlineTable(_) => "a table".into(),
    }
}
