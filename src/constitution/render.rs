//! Markdown for people and for the agent: the effective constitution with each value's origin (the
//! `/foreman constitution` reply), the rules as prompt text, an enforcement decision, and file errors
//! (as a comment and as a check run's output).

use std::fmt::Write as _;

use serde::Serialize;

use super::enforce::{BUILTIN_SECRETS, Decision};
use super::load::{ConstitutionError, Effective, Origin, PATH};
use super::schema::{Constitution, PathGlob};

/// The longest a value is shown in the `/foreman constitution` table before it is cut with `…`.
const CELL_CHARS: usize = 80;

/// The `/foreman constitution` reply: one table per section, a row per key with its effective value
/// and origin (`default`, `org`, `repo`, or `server` for the server's ceiling). A value a file asked to
/// raise above the server's ceiling shows the server's value with `server (capped: repo asked for …)`.
/// Unset optional values show as `—`.
pub fn effective_markdown(effective: &Effective) -> String {
    let mut out = String::from(
        "### Effective constitution\n\nMerge order: built-in defaults < org (`.github` repository) < repository. \
         `—` is unset (in `[agent]`, the server's setting applies; for a limit, there is none).\n",
    );
    if effective.ceilings.is_some() {
        out.push_str(
            "\nThe server's agent limits (cost, turns, time, output, tools) and daily cost are ceilings: a file \
             can only tighten them. `server` is the server's value; *capped* marks a value a file asked to raise.\n",
        );
    }
    let value = serde_json::to_value(&effective.constitution).unwrap_or_default();
    let Some(sections) = value.as_object() else { return out };
    for section in ["triggers", "agent", "limits", "rules"] {
        let Some(table) = sections.get(section) else { continue };
        let _ = write!(out, "\n#### `[{section}]`\n\n| key | value | origin |\n|---|---|---|\n");
        let mut rows = Vec::new();
        flatten(section, table, &mut rows);
        for (key, value) in rows {
            let shown = key.strip_prefix(&format!("{section}.")).unwrap_or(&key);
            // An unset `[agent]` limit is the server's: show its value.
            let server = value.is_null().then(|| effective.ceilings.as_ref()?.value_at(&key)).flatten();
            let value = server.as_ref().unwrap_or(value);
            let origin = match effective.capped.get(&key) {
                Some(c) => format!("{} (capped: {} asked for {})", effective.origin(&key), c.by, cell(&c.asked)),
                None => effective.origin(&key).to_string(),
            };
            let _ = writeln!(out, "| `{shown}` | {} | {origin} |", cell(value));
        }
    }
    out
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

fn cell(value: &serde_json::Value) -> String {
    if value.is_null() {
        return "—".into();
    }
    let text = value.to_string().replace(['\n', '\r'], " ");
    let text = if text.chars().count() > CELL_CHARS {
        format!("{}…", text.chars().take(CELL_CHARS).collect::<String>())
    } else {
        text
    };
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
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
    for e in errors {
        let link = match (docs, e.key.as_deref()) {
            (Some(url), Some(k)) => format!(" ([docs]({}))", super::keys::doc_link(url, k)),
            _ => String::new(),
        };
        let _ = writeln!(out, "- {}{link}", e.to_string().replace('\n', " "));
    }
    out
}
