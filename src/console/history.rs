//! The job page's history: its attempts (every session of the job, with what its log's summary says of
//! it), its failure ledger (which failures count towards the limits now) and its audit trail, as the
//! values `job.html` shows.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use time::OffsetDateTime;

use super::{Console, logview};
use crate::job::{AuditEntry, Failure, FailureClass, Job, SessionRecord, SessionState};

/// How much of the end of a session's log is read for its summary line (the log's last line).
pub const SUMMARY_TAIL_BYTES: u64 = 64 * 1024;

/// The most bytes of a log without a summary (a running or interrupted session) read to count its turns;
/// past that the figures are left out rather than the page slowed.
pub const MAX_COUNTED_BYTES: u64 = 8 * 1024 * 1024;

/// A time as the console shows it, e.g. `2026-12-07 12:45:01 UTC`.
pub(crate) fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A duration in whole seconds as people read it: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub(crate) fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// What a session's log tells of it: from its summary line once it ended, else counted from its lines.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LogFacts {
    /// The agent's turns (Claude Code only; 0 for a command).
    pub turns: Option<u64>,
    /// The cost, US dollars, as the agent reported it.
    pub cost_usd: Option<f64>,
    /// The name of the credential's variable the session used last (never its value).
    pub credential: Option<String>,
}

/// The facts in the summary line among `text`'s lines (the last line whose `kind` is `summary`).
pub(crate) fn summary_facts(text: &str) -> Option<LogFacts> {
    let line = text.lines().rev().find(|l| l.contains("\"summary\""))?;
    let v: Value = serde_json::from_str(line).ok()?;
    if v["kind"] != "summary" {
        return None;
    }
    let s = &v["summary"];
    Some(LogFacts {
        turns: s["turns"].as_u64(),
        cost_usd: s["cost_usd"].as_f64(),
        credential: s["credential"].as_str().map(str::to_owned),
    })
}

/// The log files of `ids` in `DATA_DIR/sessions` (`<owner>-<repo>-<issue>-<id>.jsonl`), read in one pass.
async fn log_files(console: &Console, ids: Vec<String>) -> HashMap<String, PathBuf> {
    let dir = console.inner.options.data_dir.join("sessions");
    tokio::task::spawn_blocking(move || {
        let suffixes: Vec<(String, String)> = ids.into_iter().map(|id| (format!("-{id}.jsonl"), id)).collect();
        let mut found = HashMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else { return found };
        for path in entries.flatten().map(|e| e.path()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if let Some((_, id)) = suffixes.iter().find(|(suffix, _)| name.ends_with(suffix.as_str())) {
                found.insert(id.clone(), path.clone());
            }
        }
        found
    })
    .await
    .unwrap_or_default()
}

/// What the log at `path` tells: its summary (read from its last [`SUMMARY_TAIL_BYTES`]), or, without one,
/// its figures counted from every line (up to [`MAX_COUNTED_BYTES`]).
async fn facts(path: PathBuf) -> LogFacts {
    use std::io::{Read, Seek, SeekFrom};
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).ok()?;
        let len = file.metadata().ok()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(SUMMARY_TAIL_BYTES))).ok()?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).ok()?;
        if let Some(f) = summary_facts(&String::from_utf8_lossy(&tail)) {
            return Some(f);
        }
        if len > MAX_COUNTED_BYTES {
            return None;
        }
        let text = std::fs::read(&path).ok()?;
        let f = logview::figures(&String::from_utf8_lossy(&text));
        Some(LogFacts { turns: Some(f.turns as u64), cost_usd: f.cost_usd, credential: None })
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

fn dollars(c: f64) -> String {
    format!("${c:.2}")
}

/// The attempts table: one row per session, oldest first, with its failure from `failures` (the ledger
/// records the session that failed).
pub(crate) async fn attempts(
    console: &Console,
    sessions: &[SessionRecord],
    failures: &[Failure],
    now: OffsetDateTime,
) -> Vec<minijinja::Value> {
    let files = log_files(console, sessions.iter().map(|s| s.id.0.clone()).collect()).await;
    let mut rows = Vec::with_capacity(sessions.len());
    for s in sessions {
        let facts = match files.get(&s.id.0) {
            Some(path) => facts(path.clone()).await,
            None => LogFacts::default(),
        };
        let failure = failures.iter().rev().find(|f| f.session.as_ref() == Some(&s.id));
        let end = s.ended_at.unwrap_or(now);
        rows.push(minijinja::context! {
            id => s.id.0.clone(), attempt => s.attempt,
            started => when(s.started_at), started_at => rfc3339(s.started_at),
            ended => s.ended_at.map(when), ended_at => s.ended_at.map(rfc3339),
            state => format!("{:?}", s.state).to_lowercase(), running => s.state == SessionState::Running,
            duration => duration((end - s.started_at).whole_seconds()),
            turns => facts.turns, cost => s.cost_usd.or(facts.cost_usd).map(dollars),
            credential => facts.credential,
            class => failure.map(|f| f.class.as_str()), reason => failure.map(|f| f.reason.clone()),
            has_log => files.contains_key(&s.id.0),
        });
    }
    rows
}

/// The failure ledger: every failure of the job, oldest first, with whether it counts towards the limits
/// now ([`crate::job::failures::counted`]) and, when not, why.
pub(crate) fn ledger(job: &Job, failures: &[Failure]) -> Vec<minijinja::Value> {
    let counted = crate::job::failures::counted(failures, &job.failures);
    failures
        .iter()
        .zip(counted)
        .map(|(f, counts)| {
            let note = match (counts, f.class) {
                (true, _) => "counts",
                (false, FailureClass::RateLimit) => "never counts (a rate limit)",
                (false, _) => "no longer counts (before a retry or a fresh request)",
            };
            minijinja::context! {
                at => when(f.at), at_rfc3339 => rfc3339(f.at), class => f.class.as_str(), reason => f.reason.clone(),
                session => f.session.as_ref().map(|s| s.0.clone()), counts, note,
            }
        })
        .collect()
}

/// The audit trail, oldest first: who did what, why, and the delivery that caused it.
pub(crate) fn audit(entries: &[AuditEntry]) -> Vec<minijinja::Value> {
    entries
        .iter()
        .map(|a| {
            minijinja::context! {
                at => when(a.at), at_rfc3339 => rfc3339(a.at), actor => a.actor.clone(), action => a.action.clone(),
                from => a.from.map(|s| s.to_string()), to => a.to.to_string(), cause => a.cause.clone(),
                delivery => a.delivery.as_ref().map(|d| d.0.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_as_people_say_them() {
        assert_eq!(duration(-3), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(7800), "2 h 10 min");
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_001).unwrap();
        assert_eq!(when(t), "2027-01-15 08:00:01 UTC");
    }

    #[test]
    fn the_summary_line_gives_turns_cost_and_credential() {
        let log = concat!(
            r#"{"ts":"t","kind":"agent","event":{"type":"assistant"}}"#,
            "\n",
            r#"{"ts":"t","kind":"summary","summary":{"turns":3,"cost_usd":0.25,"credential":"ANTHROPIC_API_KEY"},"verdict":"changes_ready"}"#,
            "\n"
        );
        let f = summary_facts(log).unwrap();
        assert_eq!(f, LogFacts { turns: Some(3), cost_usd: Some(0.25), credential: Some("ANTHROPIC_API_KEY".into()) });
        assert_eq!(summary_facts(r#"{"kind":"stdout","line":"\"summary\""}"#), None);
    }
}
