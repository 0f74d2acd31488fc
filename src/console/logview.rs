//! A session log's lines as the viewer shows them: each JSON line ([`crate::session::log`]) becomes at
//! most one readable step (the agent's messages and tool calls, the start and the summary), and is marked
//! when it tells of an error.

use serde::Serialize;
use serde_json::Value;

/// The most characters of one step's text shown; the Events view keeps the whole line.
pub const MAX_STEP_CHARS: usize = 4000;

/// One log line as the viewer shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// 1-based line number in the file.
    pub n: usize,
    /// The line as written (the Events view).
    pub raw: String,
    /// Its readable steps, for the Human view (an agent message may hold text and tool calls).
    pub steps: Vec<Step>,
    /// Whether it tells of an error (the Errors view).
    pub error: bool,
}

/// One readable step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `message` (the agent says), `tool` (a call), `result` (a tool's answer), `note` (Foreman's own:
    /// start, prompt, retry, summary).
    pub kind: &'static str,
    /// A short heading, e.g. the tool's name.
    pub title: String,
    /// The text, at most [`MAX_STEP_CHARS`] characters.
    pub text: String,
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_STEP_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn step(kind: &'static str, title: impl Into<String>, text: &str) -> Step {
    Step { kind, title: title.into(), text: clip(text) }
}

/// Reads line `n` (1-based) of a session log.
pub fn line(n: usize, raw: &str) -> Line {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let mut steps = Vec::new();
    let mut error = v.get("error").is_some_and(|e| !e.is_null());
    match v["kind"].as_str().unwrap_or_default() {
        "agent" => {
            if let Some(text) = v["line"].as_str() {
                steps.push(step("message", "agent", text));
            }
            agent_event(&v["event"], &mut steps, &mut error);
        }
        "start" => steps.push(step("note", "session started", &summary_text(&v))),
        "prompt" => steps.push(step("note", "prompt", v["text"].as_str().unwrap_or("(sent to the agent)"))),
        "retry" => {
            error = true;
            steps.push(step("note", "retry", &summary_text(&v)));
        }
        "summary" => {
            let verdict = v["verdict"].to_string();
            error |= verdict.contains("ailed") || v["failure"].is_object();
            steps.push(step("note", "summary", &summary_text(&v)));
        }
        _ if v.is_null() => {
            error = true;
            steps.push(step("note", "unreadable line", raw));
        }
        kind => steps.push(step("note", kind.to_owned(), &summary_text(&v))),
    }
    Line { n, raw: raw.to_owned(), steps, error }
}

/// The object's fields but `ts` and `kind`, compact.
fn summary_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) => m
            .iter()
            .filter(|(k, _)| *k != "ts" && *k != "kind")
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}: {s}"),
                None => format!("{k}: {v}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None => String::new(),
    }
}

/// Claude Code's stream-json events (`assistant`, `user` tool results, `result`), and anything else as a
/// compact line.
fn agent_event(e: &Value, steps: &mut Vec<Step>, error: &mut bool) {
    if e.is_null() {
        return;
    }
    let content = e["message"]["content"].as_array();
    match e["type"].as_str().unwrap_or_default() {
        "assistant" => {
            for c in content.into_iter().flatten() {
                match c["type"].as_str().unwrap_or_default() {
                    "text" => steps.push(step("message", "agent", c["text"].as_str().unwrap_or_default())),
                    "tool_use" => steps.push(step(
                        "tool",
                        c["name"].as_str().unwrap_or("tool").to_owned(),
                        &serde_json::to_string_pretty(&c["input"]).unwrap_or_default(),
                    )),
                    _ => {}
                }
            }
        }
        "user" => {
            for c in content.into_iter().flatten().filter(|c| c["type"] == "tool_result") {
                let text = match &c["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(parts) => {
                        parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
                    }
                    other => other.to_string(),
                };
                let failed = c["is_error"].as_bool().unwrap_or(false);
                *error |= failed;
                steps.push(step("result", if failed { "tool error" } else { "tool result" }, &text));
            }
        }
        "result" => {
            let failed = e["is_error"].as_bool().unwrap_or(false);
            *error |= failed;
            let text = e["result"].as_str().map_or_else(|| e["subtype"].to_string(), str::to_owned);
            steps.push(step("message", if failed { "ended with an error" } else { "result" }, &text));
        }
        "system" => {}
        _ => steps.push(step("note", "event", &e.to_string())),
    }
}
