//! The Claude Code CLI's `--output-format stream-json --verbose` output, read line by line.
//!
//! Framing and fields follow `vendor/agents/claude-code/message-types.md`: one JSON object per line,
//! dispatched on `type` then `subtype`; keys come in any order; unknown types and fields are skipped.
//! [`Transcript::push_line`] folds each line into a running summary (session id, turns, tool uses, cost,
//! the result, and the error details an `is_error` result needs for [`Transcript::classify`]).

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use super::reset;

/// What one line told us, for progress reports.
#[derive(Clone, Debug, PartialEq)]
pub enum LineEvent {
    /// `system/init`: the CLI's session id and model.
    Init {
        /// The CLI's session id.
        session_id: String,
    },
    /// An assistant message started a new API turn.
    Turn(u32),
    /// The assistant asked for a tool.
    ToolUse {
        /// The tool's name, e.g. `Bash`.
        name: String,
    },
    /// The main agent wrote text to the user: its first non-blank line, trimmed (never empty).
    Text {
        /// That line.
        line: String,
    },
    /// The CLI is retrying an API call (`system/api_retry`).
    Retry {
        /// The CLI's retry count, from 1.
        attempt: u64,
        /// The error that caused it, as the CLI names it.
        error: String,
    },
    /// The `result` line.
    Result,
    /// Not valid JSON (kept in the log, otherwise ignored).
    NotJson,
    /// Anything else (other system subtypes, tool results, rate-limit events, unknown types).
    Other,
}

/// The `result` line's fields that matter to Foreman.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultLine {
    /// `subtype`: `success`, `error_max_turns`, `error_during_execution`, `error_max_budget_usd`, ….
    pub subtype: String,
    /// `is_error`: authoritative (API failures come as `subtype: success` with `is_error: true`).
    pub is_error: bool,
    /// `result`: the final text (missing on `error_*` subtypes).
    pub text: Option<String>,
    /// `errors[]` of the `error_*` subtypes.
    pub errors: Vec<String>,
    /// `num_turns`.
    pub num_turns: Option<u64>,
    /// `total_cost_usd` (or the older `total_cost`), in US dollars.
    pub cost_usd: Option<f64>,
    /// `api_error_status`: the HTTP status of the failing API call (CLI 2.1.110+).
    pub api_error_status: Option<u64>,
    /// `api_error_type`, e.g. `rate_limit_error`.
    pub api_error_type: Option<String>,
    /// `api_error`, e.g. `usage_limit_reached`, `connection_failed`.
    pub api_error: Option<String>,
    /// `terminal_reason`, e.g. `completed`, `max_turns`, `api_error`.
    pub terminal_reason: Option<String>,
}

/// The running summary of one CLI run.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// The CLI's session id (for `--resume`), from `system/init` or any later line.
    pub session_id: Option<String>,
    /// Distinct API turns of the main agent (assistant `message.id`s without `parent_tool_use_id`).
    pub turns: u32,
    /// Tool uses by tool name, main agent and subagents together.
    pub tools: BTreeMap<String, u32>,
    /// The result line, once seen.
    pub result: Option<ResultLine>,
    /// The last synthetic API-error assistant line: its `error` kind and text.
    pub api_error_kind: Option<String>,
    /// The text of that line.
    pub api_error_text: Option<String>,
    /// The usage-limit reset from a `rate_limit_event` with `status: rejected` or the error line's
    /// `api_error_params.rate_limit_info.resetsAt` (unix seconds).
    pub rejected_resets_at: Option<i64>,
    /// Lines that were not JSON.
    pub bad_lines: u32,
    seen_messages: HashSet<String>,
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Transcript {
    /// Folds one stdout line in and says what it was. Blank lines are [`LineEvent::Other`].
    pub fn push_line(&mut self, line: &str) -> Vec<LineEvent> {
        let line = line.trim();
        if line.is_empty() {
            return vec![LineEvent::Other];
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.bad_lines += 1;
            return vec![LineEvent::NotJson];
        };
        if self.session_id.is_none()
            && let Some(id) = s(&v, "session_id")
        {
            self.session_id = Some(id);
        }
        match (v.get("type").and_then(Value::as_str), v.get("subtype").and_then(Value::as_str)) {
            (Some("system"), Some("init")) => match s(&v, "session_id") {
                Some(session_id) => {
                    self.session_id = Some(session_id.clone());
                    vec![LineEvent::Init { session_id }]
                }
                None => vec![LineEvent::Other],
            },
            (Some("system"), Some("api_retry")) => vec![LineEvent::Retry {
                attempt: v.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                error: s(&v, "error").unwrap_or_default(),
            }],
            (Some("assistant"), _) => self.assistant(&v),
            (Some("rate_limit_event"), _) => {
                let info = &v["rate_limit_info"];
                if info.get("status").and_then(Value::as_str) == Some("rejected") {
                    self.rejected_resets_at = info.get("resetsAt").and_then(Value::as_i64).or(self.rejected_resets_at);
                }
                vec![LineEvent::Other]
            }
            (Some("result"), _) => {
                self.result = Some(result_line(&v));
                vec![LineEvent::Result]
            }
            _ => vec![LineEvent::Other],
        }
    }

    fn assistant(&mut self, v: &Value) -> Vec<LineEvent> {
        let message = &v["message"];
        let mut events = Vec::new();
        if v.get("is_api_error_message").and_then(Value::as_bool) == Some(true)
            || message.get("model").and_then(Value::as_str) == Some("<synthetic>")
        {
            self.api_error_kind = s(v, "error").or(self.api_error_kind.take());
            self.api_error_text = text_of(message).or(self.api_error_text.take());
            if let Some(at) = v.pointer("/api_error_params/rate_limit_info/resetsAt").and_then(Value::as_i64) {
                self.rejected_resets_at = Some(at);
            }
            return vec![LineEvent::Other];
        }
        let subagent = v.get("parent_tool_use_id").is_some_and(|p| !p.is_null());
        if !subagent
            && let Some(id) = s(message, "id")
            && self.seen_messages.insert(id)
        {
            self.turns += 1;
            events.push(LineEvent::Turn(self.turns));
        }
        for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    if let Some(name) = s(block, "name") {
                        *self.tools.entry(name.clone()).or_default() += 1;
                        events.push(LineEvent::ToolUse { name });
                    }
                }
                Some("text") if !subagent => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                    if let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
                        events.push(LineEvent::Text { line: line.to_owned() });
                    }
                }
                _ => {}
            }
        }
        if events.is_empty() {
            events.push(LineEvent::Other);
        }
        events
    }

    /// Total tool uses.
    pub fn tool_count(&self) -> u32 {
        self.tools.values().sum()
    }

    /// The cost in US dollars, when the result carried one.
    pub fn cost_usd(&self) -> Option<f64> {
        self.result.as_ref().and_then(|r| r.cost_usd)
    }

    /// What the run came to. `now` and `tz` resolve reset times written as a clock time ("resets 2:26am").
    pub fn classify(&self, now: Timestamp, tz: &TimeZone) -> RunResult {
        let Some(r) = &self.result else {
            return RunResult::NoResult;
        };
        let text = r
            .text
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| (!r.errors.is_empty()).then(|| r.errors.join("; ")))
            .or_else(|| self.api_error_text.clone())
            .unwrap_or_default();
        let subtype_error = r.subtype.starts_with("error");
        if !r.is_error && !subtype_error {
            return RunResult::Success { text: r.text.clone().unwrap_or_default() };
        }
        match r.subtype.as_str() {
            "error_max_turns" => return RunResult::MaxTurns { text },
            "error_max_budget_usd" => return RunResult::MaxCost { text },
            _ => {}
        }
        let kind = self.api_error_kind.as_deref().unwrap_or("");
        let status = r.api_error_status.unwrap_or(0);
        let api_error = r.api_error.as_deref().unwrap_or("");
        let api_type = r.api_error_type.as_deref().unwrap_or("");
        let lower = text.to_lowercase();
        if api_error == "usage_limit_reached" || reset::is_usage_limit_text(&text) {
            let resets_at = self
                .rejected_resets_at
                .and_then(|s| Timestamp::from_second(s).ok())
                .or_else(|| reset::parse_reset(&text, now, tz));
            return RunResult::UsageLimit { resets_at, text };
        }
        if kind == "authentication_failed"
            || status == 401
            || status == 403
            || api_type == "authentication_error"
            || api_type == "permission_error"
            || lower.contains("invalid api key")
            || lower.contains("not logged in")
            || lower.contains("failed to authenticate")
            || lower.contains("oauth token has expired")
            || lower.contains("authentication_error")
        {
            return RunResult::Authentication { text };
        }
        if kind == "rate_limit" || status == 429 || api_type == "rate_limit_error" || lower.contains("(429)") {
            return RunResult::RateLimited { text };
        }
        if kind == "overloaded"
            || kind == "server_error"
            || status == 529
            || status >= 500
            || api_type == "overloaded_error"
            || api_error == "connection_failed"
            || lower.contains("overloaded")
            || lower.contains("can't reach the api server")
        {
            return RunResult::Overloaded { text };
        }
        RunResult::Error { text }
    }
}

fn text_of(message: &Value) -> Option<String> {
    let parts: Vec<&str> =
        message.get("content")?.as_array()?.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn result_line(v: &Value) -> ResultLine {
    ResultLine {
        subtype: s(v, "subtype").unwrap_or_default(),
        is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        text: s(v, "result"),
        errors: v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        num_turns: v.get("num_turns").and_then(Value::as_u64),
        cost_usd: v.get("total_cost_usd").or_else(|| v.get("total_cost")).and_then(Value::as_f64),
        api_error_status: v.get("api_error_status").and_then(Value::as_u64),
        api_error_type: s(v, "api_error_type"),
        api_error: s(v, "api_error"),
        terminal_reason: s(v, "terminal_reason"),
    }
}

/// How a CLI run ended, from its `result` line (and the error lines before it).
#[derive(Clone, Debug, PartialEq)]
pub enum RunResult {
    /// `is_error: false`: the final text.
    Success {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// A subscription usage limit: reschedule at `resets_at` (unknown when no time could be read).
    UsageLimit {
        /// When the limit resets, when the text said.
        resets_at: Option<Timestamp>,
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// API rate limit (429 that is not a usage limit): back off.
    RateLimited {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// Overload, 5xx or no connection: back off.
    Overloaded {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// The credential was refused (401/403, not logged in): try the next credential.
    Authentication {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// `error_max_turns`.
    MaxTurns {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// `error_max_budget_usd`.
    MaxCost {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// Any other error result.
    Error {
        /// The result's text, as the CLI wrote it.
        text: String,
    },
    /// The stream ended without a result line.
    NoResult,
}
