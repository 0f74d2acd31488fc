//! Session logs: one JSON-lines file per session under `<data_dir>/sessions/`, size-capped, deleted after
//! `agent.log_retention_days`.
//!
//! Each line is `{"ts": RFC 3339, "kind": …, …}`. Kinds: `start`, `prompt`, `agent` (one stdout line of the
//! agent: the parsed JSON under `event`, or the raw text under `line`), `retry`, `summary` (last). Past the cap
//! further events are counted, not written; the summary is always written and says how many were dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

/// Room kept for the summary line past the cap, in bytes.
const SUMMARY_RESERVE: u64 = 64 * 1024;

/// An open session log.
#[derive(Debug)]
pub struct SessionLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    written: u64,
    max_bytes: u64,
    dropped: u64,
}

impl SessionLog {
    /// Creates `<dir>/<name>.jsonl`. When the file cannot be created the log is a no-op (logged once as a
    /// warning): a session never fails for its log.
    pub fn create(dir: &Path, name: &str, max_bytes: u64) -> Self {
        let path = dir.join(format!("{name}.jsonl"));
        let file = std::fs::create_dir_all(dir).and_then(|_| std::fs::File::create(&path));
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create the session log");
                None
            }
        };
        Self { path, file, written: 0, max_bytes, dropped: 0 }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events dropped because of the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes one event of `kind` with `fields` (an object) merged in.
    pub fn event(&mut self, kind: &str, fields: Value) {
        self.write(kind, fields, false);
    }

    /// Writes one stdout line of the agent.
    pub fn agent_line(&mut self, line: &str) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => self.write("agent", json!({ "event": v }), false),
            Err(_) => self.write("agent", json!({ "line": line }), false),
        }
    }

    /// Writes one line of another session log (a remote session's runner's): a JSON object whose `kind` is
    /// kept, with `"remote": true` added; its own `ts` is kept as `runner_ts`. Anything else is written as an
    /// `agent` line. A `summary` line is written as `runner_summary` (Foreman writes the summary).
    pub fn relay(&mut self, line: &str) {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
            return self.write("agent", json!({ "line": line, "remote": true }), false);
        };
        let kind = match fields.remove("kind") {
            Some(Value::String(k)) if k == "summary" => "runner_summary".to_owned(),
            Some(Value::String(k)) => k,
            _ => "agent".to_owned(),
        };
        if let Some(ts) = fields.remove("ts") {
            fields.insert("runner_ts".into(), ts);
        }
        fields.insert("remote".into(), true.into());
        self.write(&kind, Value::Object(fields), false);
    }

    /// Writes the summary (always, even past the cap).
    pub fn summary(&mut self, summary: &impl Serialize) {
        let mut v = serde_json::to_value(summary).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("log_events_dropped".into(), self.dropped.into());
        }
        self.write("summary", v, true);
    }

    fn write(&mut self, kind: &str, fields: Value, always: bool) {
        let Some(file) = &mut self.file else { return };
        let mut record = serde_json::Map::new();
        record.insert("ts".into(), jiff::Timestamp::now().to_string().into());
        record.insert("kind".into(), kind.into());
        // The record's own `ts` and `kind` win over same-named fields, so every event stays findable by kind.
        if let Value::Object(m) = fields {
            for (k, v) in m {
                record.entry(k).or_insert(v);
            }
        }
        let mut line = Value::Object(record).to_string();
        line.push('\n');
        let limit = if always { self.max_bytes + SUMMARY_RESERVE } else { self.max_bytes };
        if self.written + line.len() as u64 > limit {
            self.dropped += 1;
            return;
        }
        if file.write_all(line.as_bytes()).is_ok() {
            self.written += line.len() as u64;
        }
    }
}

/// Deletes session logs in `dir` last modified more than `days` days ago. Returns how many were deleted.
pub fn prune(dir: &Path, days: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let max_age = Duration::from_secs(u64::from(days) * 86_400);
    let now = SystemTime::now();
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter(|e| {
            e.metadata().and_then(|m| m.modified()).is_ok_and(|t| now.duration_since(t).unwrap_or_default() > max_age)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_drops_events_but_keeps_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionLog::create(dir.path(), "s", 300);
        for i in 0..20 {
            log.event("note", json!({ "i": i }));
        }
        log.summary(&json!({ "turns": 1 }));
        let text = std::fs::read_to_string(log.path()).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["kind"], "summary");
        assert!(last["log_events_dropped"].as_u64().unwrap() > 0);
        assert!(text.len() < 300 + 200);
    }

    #[test]
    fn a_field_named_kind_does_not_hide_the_events_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionLog::create(dir.path(), "s", 10_000);
        log.event("start", json!({ "kind": "coding", "ts": "then" }));
        let text = std::fs::read_to_string(log.path()).unwrap();
        let record: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(record["kind"], "start");
        assert_ne!(record["ts"], "then");
    }

    #[test]
    fn prune_deletes_only_old_logs() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, "{}\n").unwrap();
        std::fs::write(dir.path().join("new.jsonl"), "{}\n").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400)).unwrap();
        assert_eq!(prune(dir.path(), 2), 1);
        assert!(!old.exists() && dir.path().join("new.jsonl").exists());
    }
}
