//! Markdown for people and for the agent: the effective constitution with each value's origin (the
//! `/foreman constitution` reply), the rules as prompt text, an enforcement decision, and file errors
//! (as a comment and as a check run's output).

use std::fmt::Write as _;

use serde::Serialize;

use super::enforce::{BUILTIN_SECRETS, Decision};
use super::load::{ConstitutionError, Effective, Origin, PATH};
use super::schema::{Constitution, PathGlob};

/// The `/foreman constitution` reply: one table per section, a row per key with the value that applies,
/// where it came from (`repository`, `organisation`, `server` or `built-in`) and, for the `[agent]` limits
/// and the daily cost, the operator's ceiling. An `[agent]` key no file sets shows the server's value; a
/// value a file asked to raise above the ceiling shows the server's with `server (capped: repository asked
/// for …)`. Values are shown whole, never cut. `—` is unset everywhere.
pub fn effective_markdown(effective: &Effective) -> String {
    let mut out = String::from(
        "### Effective constitution\n\nThe value of every key for this repository and where it came from: \
         `repository` (its `.github/foreman.toml`), `organisation` (the `.github` repository's), `server` \
         (Foreman's own configuration) or `built-in` (Foreman's default). `—` is unset everywhere (`model`: the \
         backend's default; a limit: none).\n",
    );
    if effective.ceilings.is_some() {
        out.push_str(
            "\nThe server's agent limits (cost, turns, time, output, tools) and daily cost are ceilings: a file \
             can only tighten them. *capped* marks a value a file asked to raise.\n",
        );
    }
    let rows = effective_rows(effective);
    for section in SECTIONS {
        let mut in_section = rows.iter().filter(|r| r.section == section).peekable();
        if in_section.peek().is_none() {
            continue;
        }
        let ceilings = effective.ceilings.is_some() && matches!(section, "agent" | "limits");
        let _ = write!(out, "\n#### `[{section}]`\n\n");
        out.push_str(match ceilings {
            true => "| key | value | from | ceiling |\n|---|---|---|---|\n",
            false => "| key | value | from |\n|---|---|---|\n",
        });
        for row in in_section {
            let shown = row.key.strip_prefix(&format!("{section}.")).unwrap_or(&row.key);
            let from = match &row.capped {
                Some(c) => format!("{} (capped: {} asked for {})", words(row.origin), words(c.by), cell(&c.asked)),
                None => words(row.origin).to_owned(),
            };
            let _ = write!(out, "| `{shown}` | {} | {from} |", cell(&row.value));
            if ceilings {
                let ceiling = row.ceiling.as_ref().map(cell).unwrap_or_default();
                let _ = write!(out, " {ceiling} |");
            }
            out.push('\n');
        }
    }
    out
}

/// The constitution's sections, in the order they are shown.
pub const SECTIONS: [&str; 5] = ["triggers", "agent", "limits", "rules", "plan"];

/// One key of the effective constitution, as [`effective_rows`] lists them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectiveRow {
    /// Its section (one of [`SECTIONS`]).
    pub section: &'static str,
    /// The dotted key, section first (`limits.daily_cost_usd`); a list is one key.
    pub key: String,
    /// The value that applies, as JSON (`null`: unset everywhere).
    pub value: serde_json::Value,
    /// Where it came from: [`Origin::Default`] for a key no file (nor the server) sets.
    pub origin: Origin,
    /// What a file asked for beyond the server's ceiling, when it did (the value is then the server's).
    pub capped: Option<super::load::Capped>,
    /// The server's ceiling on the key (`[agent]` limits and the daily cost), once the constitution was held
    /// to the ceilings.
    pub ceiling: Option<serde_json::Value>,
}

/// Every key of the effective constitution with its value and origin, section by section ([`SECTIONS`]),
/// keys in name order: what [`effective_markdown`] shows, for other renderings (the console). An `[agent]`
/// key no file sets shows the server's value, with origin [`Origin::Server`].
pub fn effective_rows(effective: &Effective) -> Vec<EffectiveRow> {
    let mut out = Vec::new();
    let value = serde_json::to_value(&effective.constitution).unwrap_or_default();
    let Some(sections) = value.as_object() else { return out };
    for section in SECTIONS {
        let Some(table) = sections.get(section) else { continue };
        let ceilings = effective.ceilings.as_ref().filter(|_| matches!(section, "agent" | "limits"));
        let mut rows = Vec::new();
        flatten(section, table, &mut rows);
        for (key, value) in rows {
            // An `[agent]` key no file sets is the server's: show its value.
            let server = value.is_null().then(|| effective.ceilings.as_ref()?.value_at(&key)).flatten();
            let origin = if server.is_some() { Origin::Server } else { effective.origin(&key) };
            out.push(EffectiveRow {
                section,
                value: server.unwrap_or_else(|| value.clone()),
                origin,
                capped: effective.capped.get(&key).cloned(),
                ceiling: ceilings.and_then(|c| c.ceiling_at(&key)),
                key,
            });
        }
    }
    out
}

/// Where a value came from, as the reply says it.
fn words(origin: Origin) -> &'static str {
    match origin {
        Origin::Default => "built-in",
        Origin::Org => "organisation",
        Origin::Repo => "repository",
        Origin::Server => "server",
    }
}

fn flatten<'a>(prefix: &str, value: &'a serde_json::Value, rows: &mut Vec<(String, &'a serde_json::Value)>) {
    match value.as_object() {
        Some(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, rows);
            }
        }
        None => rows.push((prefix.to_owned(), value)),
    }
}

/// A value for a table cell, whole: a list as its items, each in code; anything else as JSON in code.
fn cell(value: &serde_json::Value) -> String {
    let code = |v: &serde_json::Value| {
        let text = v.to_string().replace(['\n', '\r'], " ");
        format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
    };
    match value {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::Array(items) if items.is_empty() => "`[]`".into(),
        serde_json::Value::Array(items) => items.iter().map(code).collect::<Vec<_>>().join(", "),
        other => code(other),
    }
}

fn globs(list: &[PathGlob]) -> String {
    list.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
}

/// The rules as markdown for the agent's prompt: what Foreman will check (so the agent can comply) and
/// the free-text sections (deployment target, secret naming, coding standards).
pub fn prompt_markdown(constitution: &Constitution) -> String {
    let rules = &constitution.rules;
    let mut out = String::from(
        "## Repository rules\n\nForeman checks these on your change before anything is pushed; a change that breaks one is refused.\n\n",
    );
    if !rules.protected_paths.is_empty() {
        let _ = writeln!(out, "- Never add, modify, delete or rename: {}.", globs(&rules.protected_paths));
    }
    if !rules.allowed_paths.is_empty() {
        let _ = writeln!(out, "- Change only files matching: {}.", globs(&rules.allowed_paths));
    }
    if let Some(max) = rules.max_files_changed {
        let _ = writeln!(out, "- Change at most {max} files.");
    }
    if let Some(max) = rules.max_lines_changed {
        let _ = writeln!(out, "- Add plus delete at most {max} lines in total.");
    }
    if rules.tdd.required {
        let _ = writeln!(
            out,
            "- Test-driven: a change to source ({}) must add or change tests ({}).",
            globs(&rules.tdd.source),
            globs(&rules.tdd.tests)
        );
    }
    if rules.builtin_secret_patterns || !rules.secret_patterns.is_empty() {
        let mut kinds: Vec<String> = Vec::new();
        if rules.builtin_secret_patterns {
            kinds.extend(BUILTIN_SECRETS.iter().map(|s| s.name.to_owned()));
        }
        kinds.extend(rules.secret_patterns.iter().map(|p| format!("`{}`", p.as_str())));
        let _ = writeln!(out, "- Never write secrets or anything shaped like one: {}.", kinds.join(", "));
    }
    let _ = writeln!(out, "- Work on a branch whose name starts with `{}`.", rules.branch_prefix);
    for command in &rules.required_commands {
        let _ = writeln!(
            out,
            "- `{}` must pass in the workspace root (`{}`, within {} s).",
            command.name, command.run, command.timeout_secs
        );
    }
    for (title, text) in [
        ("Deployment target", &rules.deployment_target),
        ("Secret naming", &rules.secret_naming),
        ("Coding standards", &rules.coding_standards),
    ] {
        if let Some(text) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let _ = write!(out, "\n### {title}\n\n{text}\n");
        }
    }
    out
}

/// A decision as markdown for the tracking comment: allowed, or each violation with rule, file and line,
/// and each failing command's output tail in a collapsed block.
pub fn decision_markdown(decision: &Decision) -> String {
    if decision.allowed {
        return format!(
            "The change passes the constitution ({} files, {} lines changed).\n",
            decision.files_changed, decision.lines_changed
        );
    }
    let mut out = String::from("The change breaks the constitution, so nothing was pushed:\n\n");
    for v in &decision.violations {
        let place = match (&v.file, v.line) {
            (Some(file), Some(line)) => format!(" at `{file}` line {line}"),
            (Some(file), None) => format!(" at `{file}`"),
            _ => String::new(),
        };
        let _ = writeln!(out, "- **{}**{place}: {}", v.rule.key(), v.message);
    }
    for c in decision.commands.iter().filter(|c| !c.passed) {
        let fence = if c.output_tail.contains("```") { "````" } else { "```" };
        let _ = write!(
            out,
            "\n<details><summary>Output of <code>{}</code> (last lines)</summary>\n\n{fence}\n{}\n{fence}\n</details>\n",
            c.name,
            c.output_tail.trim_end()
        );
    }
    out
}

/// The `output` object of a check run (POST /repos/{owner}/{repo}/check-runs, "Create a check run" in
/// GitHub's REST docs) reporting a pull request's invalid `.github/foreman.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckRunOutput {
    /// The check run's title.
    pub title: String,
    /// Markdown summary.
    pub summary: String,
    /// One annotation per error in the repository's file (GitHub takes at most 50 per request).
    pub annotations: Vec<Annotation>,
}

/// One check run annotation, GitHub's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// The file, relative to the repository root.
    pub path: String,
    /// 1-based.
    pub start_line: usize,
    /// Same as `start_line`.
    pub end_line: usize,
    /// 1-based; only when known (GitHub allows columns on single-line annotations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<usize>,
    /// Same as `start_column`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<usize>,
    /// Always `failure`: the file cannot be used.
    pub annotation_level: &'static str,
    /// The error.
    pub message: String,
    /// The key at fault, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Most annotations GitHub accepts in one create or update request.
const MAX_ANNOTATIONS: usize = 50;

/// The check run output for `errors` found in a pull request's `.github/foreman.toml`. Errors of the
/// organisation's file are listed in the summary only (they are not in this pull request's files). `docs`:
/// as [`errors_markdown`].
pub fn check_run_output(errors: &[ConstitutionError], docs: Option<&str>) -> CheckRunOutput {
    let annotations = errors
        .iter()
        .filter(|e| e.origin == Origin::Repo)
        .take(MAX_ANNOTATIONS)
        .map(|e| Annotation {
            path: PATH.to_owned(),
            start_line: e.line.unwrap_or(1),
            end_line: e.line.unwrap_or(1),
            start_column: e.line.and(e.column),
            end_column: e.line.and(e.column),
            annotation_level: "failure",
            message: e.message.clone(),
            title: e.key.as_ref().map(|k| format!("`{k}`")),
        })
        .collect();
    CheckRunOutput { title: format!("{PATH} is invalid"), summary: errors_markdown(errors, docs), annotations }
}

/// Constitution errors as markdown, for the tracking comment, the `/foreman constitution` reply or a check
/// run's summary: one line per error with its file, line and column, the key as written, what is wrong and
/// what the key takes, and a link to the key's documentation. `docs` is the address of
/// `docs/constitution.md` (Foreman serves it at `{public_url}/docs/constitution.md`); without one the
/// documentation is named, not linked.
pub fn errors_markdown(errors: &[ConstitutionError], docs: Option<&str>) -> String {
    let reference = match docs {
        Some(url) => format!("[docs/constitution.md]({url})"),
        None => "docs/constitution.md".to_owned(),
    };
    let mut out = format!(
        "Foreman cannot use this repository's constitution (reference: {reference}). Work for this repository \
         waits until the file changes: push a fix to the default branch, or comment `/foreman retry`.\n\n"
    );
    out.push_str(&errors_list(errors, docs));
    out
}

/// The most errors listed; past them a line says how many more there are.
pub const ERRORS_SHOWN: usize = 30;

/// The errors alone, one Markdown list item each (at most [`ERRORS_SHOWN`]), each linked to its key's
/// documentation when `docs` is given: what [`errors_markdown`] lists, and what a job waiting for the file
/// shows in its tracking comment.
pub fn errors_list(errors: &[ConstitutionError], docs: Option<&str>) -> String {
    let mut out = String::new();
    for e in errors.iter().take(ERRORS_SHOWN) {
        let link = match (docs, e.key.as_deref()) {
            (Some(url), Some(k)) => format!(" ([docs]({}))", super::keys::doc_link(url, k)),
            _ => String::new(),
        };
        let _ = writeln!(out, "- {}{link}", e.to_string().replace('\n', " "));
    }
    if errors.len() > ERRORS_SHOWN {
        let _ = writeln!(out, "- and {} more", errors.len() - ERRORS_SHOWN);
    }
    out
}
