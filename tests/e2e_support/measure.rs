//! Measurements for the end-to-end suite, taken from outside Foreman: the simulator's request log, the
//! agents' own start and end lines, Foreman's session logs and the delivery times its admin API reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{REPO, World};

/// How often a file an agent writes is looked at while a test waits for a line in it. Agents append a
/// line in microseconds; 20 ms keeps the wait short without spinning.
const FILE_POLL: Duration = Duration::from_millis(20);

/// Waits until `path` has at least `n` lines, up to `within`; returns its lines, or panics with `what`.
pub async fn wait_lines(path: &Path, n: usize, within: Duration, what: &str) -> Vec<String> {
    let read = || std::fs::read_to_string(path).map(|s| s.lines().map(str::to_owned).collect()).unwrap_or_default();
    let waited = tokio::time::timeout(within, async {
        loop {
            let lines: Vec<String> = read();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(FILE_POLL).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("timed out waiting for {what}: {} has {:?}", path.display(), read()))
}

/// A shell fragment for an agent script: appends `start <issue> <epoch ns>` to `log` now and
/// `end <issue> <epoch ns>` when the script exits (successfully or not).
pub fn start_end_lines(log: &Path) -> String {
    let log = log.display();
    format!(
        "echo \"start $FOREMAN_ISSUE $(date +%s%N)\" >> '{log}'\n\
         trap 'echo \"end $FOREMAN_ISSUE $(date +%s%N)\" >> \"{log}\"' EXIT"
    )
}

/// The most agents running at once, from `start`/`end` lines of [`start_end_lines`]: a sweep over the
/// events in time order (an end at the same nanosecond as a start counts first). Also returns how many
/// starts there were.
pub fn max_overlap(lines: &[String]) -> (usize, usize) {
    let mut events: Vec<(u128, i32)> = lines
        .iter()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next()?;
            let _issue = parts.next()?;
            let at: u128 = parts.next()?.parse().ok()?;
            Some((at, if kind == "start" { 1 } else { -1 }))
        })
        .collect();
    events.sort();
    let starts = events.iter().filter(|e| e.1 == 1).count();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    (max as usize, starts)
}

/// One request of the simulator's log, as a grouping key: `METHOD path` with numbers replaced by `{n}`,
/// or `POST /graphql OperationName`.
pub fn endpoint(r: &Value) -> String {
    let method = r["method"].as_str().unwrap_or("");
    let path = r["path"].as_str().unwrap_or("");
    if path == "/graphql" {
        return format!("{method} /graphql {}", r["operation_name"].as_str().unwrap_or("(anonymous)"));
    }
    let generic: Vec<String> = path
        .split('/')
        .map(|seg| if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) { "{n}".into() } else { seg.into() })
        .collect();
    format!("{method} {}", generic.join("/"))
}

/// Requests grouped by [`endpoint`], with counts.
pub fn by_endpoint(requests: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(endpoint(r)).or_insert(0) += 1;
    }
    out
}

/// A printable table of [`by_endpoint`].
pub fn table(groups: &BTreeMap<String, usize>) -> String {
    let mut rows: Vec<_> = groups.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    rows.iter().map(|(k, v)| format!("  {v:>4}  {k}")).collect::<Vec<_>>().join("\n")
}

/// Every session log in Foreman's data directory, each as its records in order.
pub fn session_logs(data_dir: &Path) -> Vec<Vec<Value>> {
    let dir = data_dir.join("sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .collect()
}

/// The time of the first record of `kind` in a session log.
pub fn event_at(log: &[Value], kind: &str) -> Option<jiff::Timestamp> {
    log.iter().find(|r| r["kind"] == kind).and_then(|r| r["ts"].as_str()?.parse().ok())
}

/// The median of `values` (the lower middle for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// From the triggering delivery to the agent process start, per issue, in milliseconds, less the time the
/// session spent preparing its workspace (`start` to `workspace` in the session log). The delivery's time is
/// when Foreman stored it (`received_at` from `GET /api/deliveries/{guid}`); the triggering delivery of an
/// issue is its first `issues.labeled` delivery in the simulator's log. Returns (issue, total ms, queue
/// part ms): the queue part is from the delivery to the session's `start`, which includes waiting for a
/// free slot when every slot is taken.
pub async fn delivery_to_agent_start(world: &World, numbers: &[u64]) -> Vec<(u64, f64, f64)> {
    let foreman = world.foreman.as_ref().expect("foreman runs");
    let deliveries = world.sim.deliveries();
    let logs = session_logs(&foreman.data_dir);
    let mut out = Vec::new();
    for &n in numbers {
        let Some(guid) = deliveries
            .iter()
            .find(|d| {
                d["event"] == "issues"
                    && d["action"] == "labeled"
                    && d["payload"]["issue"]["number"] == n
                    && d["payload"]["repository"]["full_name"] == REPO
            })
            .and_then(|d| d["guid"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let url = foreman.url(&format!("/api/deliveries/{guid}"));
        let meta: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let received = meta["received_at"]
            .as_str()
            .or_else(|| meta["meta"]["received_at"].as_str())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(|| panic!("no received_at in {meta}"));
        // The first session of the issue.
        let Some(log) = logs
            .iter()
            .filter(|l| l.iter().any(|r| r["kind"] == "start" && r["issue"] == n))
            .min_by_key(|l| event_at(l, "start"))
        else {
            continue;
        };
        let (Some(start), Some(ws), Some(agent)) =
            (event_at(log, "start"), event_at(log, "workspace"), event_at(log, "agent_start"))
        else {
            continue;
        };
        let ms = |d: jiff::SignedDuration| d.as_secs_f64() * 1000.0;
        let total = ms(agent.duration_since(received)) - ms(ws.duration_since(start));
        out.push((n, total, ms(start.duration_since(received))));
    }
    out
}
