//! Measurements for the end-to-end suite, taken from outside Foreman: the simulator's request log, the
//! agents' own start and end lines, Foreman's session logs and the delivery times its admin API reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::World;

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

/// From the triggering delivery to the agent process start for one issue, in milliseconds, in parts.
#[derive(Debug, Clone)]
pub struct Latency {
    /// `owner/repo#number`.
    pub issue: String,
    /// From the delivery stored to the job enqueued (the inbox worker: decoding, lookups, the decision).
    pub decide_ms: f64,
    /// From enqueued to claimed: waiting for a free slot (zero-ish when one is free).
    pub slot_wait_ms: f64,
    /// From claimed to the session's start: reading the repository and the issue, minting the session token.
    pub reads_ms: f64,
    /// From the session's start to the agent process start, less workspace preparation (prompt, spawn).
    pub spawn_ms: f64,
    /// From claimed to succeeded: how long the job held its slot (`None` when it has not succeeded).
    pub held_ms: Option<f64>,
    /// From the session's end (its `summary`) to succeeded: push, pull request, review request, check run
    /// (`None` when it has not succeeded).
    pub after_session_ms: Option<f64>,
}

impl Latency {
    /// Delivery to agent start, less workspace preparation.
    pub fn total_ms(&self) -> f64 {
        self.decide_ms + self.slot_wait_ms + self.reads_ms + self.spawn_ms
    }

    /// The same, less waiting for a slot: what Foreman itself adds between the delivery and the agent.
    pub fn foreman_ms(&self) -> f64 {
        self.total_ms() - self.slot_wait_ms
    }
}

/// [`Latency`] per issue. The delivery's time is when Foreman stored it (`received_at` from
/// `GET /api/deliveries/{guid}`), the triggering delivery of an issue being its first `issues.labeled`
/// delivery in the simulator's log; enqueued and claimed come from the job's audit trail
/// (`GET /api/jobs/...`); the session's `start`, `workspace` and `agent_start` from its session log.
/// `issues` are (repository, number); an issue with a part missing is left out (and said on stderr).
pub async fn delivery_to_agent_start(world: &World, issues: &[(String, u64)]) -> Vec<Latency> {
    let foreman = world.foreman.as_ref().expect("foreman runs");
    let deliveries = world.sim.deliveries();
    let logs = session_logs(&foreman.data_dir);
    let get =
        |path: String| async move { reqwest::get(foreman.url(&path)).await.unwrap().json::<Value>().await.unwrap() };
    let at = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let ms = |d: jiff::SignedDuration| d.as_secs_f64() * 1000.0;
    let mut out = Vec::new();
    for (repo, n) in issues {
        let n = *n;
        let Some(guid) = deliveries
            .iter()
            .find(|d| {
                d["event"] == "issues"
                    && d["action"] == "labeled"
                    && d["payload"]["issue"]["number"] == n
                    && d["payload"]["repository"]["full_name"] == repo.as_str()
            })
            .and_then(|d| d["guid"].as_str().map(str::to_owned))
        else {
            eprintln!("no labeled delivery of {repo}#{n}");
            continue;
        };
        let meta = get(format!("/api/deliveries/{guid}")).await;
        let job = get(format!("/api/jobs/{repo}/{n}")).await;
        let audit_at = |action: &str| {
            job["audit"].as_array().and_then(|a| a.iter().find(|e| e["action"] == action)).and_then(|e| at(&e["at"]))
        };
        let log = logs
            .iter()
            .filter(|l| l.iter().any(|r| r["kind"] == "start" && r["issue"] == n && r["repo"] == repo.as_str()))
            .min_by_key(|l| event_at(l, "start"));
        let times = (
            at(&meta["received_at"]),
            audit_at("enqueued"),
            audit_at("claimed"),
            log.and_then(|l| event_at(l, "start")),
            log.and_then(|l| event_at(l, "workspace")),
            log.and_then(|l| event_at(l, "agent_start")),
        );
        let (Some(received), Some(enqueued), Some(claimed), Some(start), Some(ws), Some(agent)) = times else {
            eprintln!("a time is missing for {repo}#{n}: {times:?}");
            continue;
        };
        out.push(Latency {
            issue: format!("{repo}#{n}"),
            decide_ms: ms(enqueued.duration_since(received)),
            slot_wait_ms: ms(claimed.duration_since(enqueued)),
            reads_ms: ms(start.duration_since(claimed)),
            spawn_ms: ms(agent.duration_since(ws)),
            held_ms: audit_at("succeeded").map(|done| ms(done.duration_since(claimed))),
            after_session_ms: audit_at("succeeded")
                .zip(log.and_then(|l| event_at(l, "summary")))
                .map(|(done, end)| ms(done.duration_since(end))),
        });
    }
    out
}

/// The repository `repo` in the simulator's state.
pub fn repo_in<'a>(state: &'a Value, repo: &str) -> &'a Value {
    state["repos"].as_array().unwrap().iter().find(|r| r["full_name"] == repo).expect("the repository")
}

/// The issue `repo#number` in the simulator's state (`Null` when there is none).
pub fn issue_in(state: &Value, repo: &str, number: u64) -> Value {
    repo_in(state, repo)["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == number)
        .cloned()
        .unwrap_or_default()
}

/// Whether `body` says `Closes #number`, with the number ending there (`#1` is not `#10`).
pub fn closes(body: &str, number: u64) -> bool {
    let closes = format!("Closes #{number}");
    body.match_indices(&closes).any(|(i, m)| !body[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Pull requests of `repo` whose body closes `#number`.
pub fn pulls_closing_in(state: &Value, repo: &str, number: u64) -> Vec<Value> {
    repo_in(state, repo)["pulls"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["body"].as_str().is_some_and(|b| closes(b, number))).cloned().collect())
        .unwrap_or_default()
}

/// Comments on `repo#number` carrying Foreman's tracking marker.
pub fn tracking_comments_in(state: &Value, repo: &str, number: u64) -> usize {
    issue_in(state, repo, number)["comments"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["body"].as_str().is_some_and(|b| b.contains("<!-- foreman:tracking"))).count())
        .unwrap_or(0)
}

/// The label names on `repo#number`, sorted.
pub fn labels_in(state: &Value, repo: &str, number: u64) -> Vec<String> {
    let mut labels: Vec<String> = issue_in(state, repo, number)["labels"]
        .as_array()
        .map(|l| l.iter().filter_map(|l| l.as_str().or_else(|| l["name"].as_str()).map(str::to_owned)).collect())
        .unwrap_or_default();
    labels.sort();
    labels
}

/// The column of `repo#number`'s card on any board (`Null` without a card or a column).
pub fn column_in(state: &Value, repo: &str, number: u64) -> Value {
    state["projects"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
                .find(|i| i["repo"] == repo && i["issue"] == number)
        })
        .map(|i| i["column"].clone())
        .unwrap_or_default()
}

/// Whether `repo#number`'s lifecycle is over as GitHub shows it: the tracking comment reports the pull
/// request, the card is in In review, and neither the queued nor the running label is left.
pub fn settled(state: &Value, repo: &str, number: u64) -> bool {
    let reported = issue_in(state, repo, number)["comments"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["body"].as_str().is_some_and(|b| b.contains("pull request ready"))));
    let labels = labels_in(state, repo, number);
    reported
        && !labels.iter().any(|l| l == "foreman:queued" || l == "foreman:running")
        && column_in(state, repo, number) == "In review"
}

/// Whether a logged request is git's smart HTTP transport (clone, fetch, push) rather than the REST or
/// GraphQL API.
pub fn is_git(r: &Value) -> bool {
    r["path"].as_str().is_some_and(|p| p.contains(".git/"))
}
