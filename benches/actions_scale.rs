//! What the Actions executor buys and what it costs Foreman, measured end to end on one machine: a real
//! `foreman serve` (this build), github-sim in this process playing GitHub and its simulated runners, real
//! git, and the command backend.
//!
//! 1. **Wall time** from labelling 50 issues to the 50th pull request: with 3 local sessions (the default
//!    `scheduler.max_sessions`, the local sandbox) against 20 simulated Actions runners
//!    (`executor.kind = "actions"`, `scheduler.max_sessions = 20`). Each agent stands in for a model's
//!    latency with 2 s of waiting, then commits a file. The runners are processes on the same machine, so the
//!    figure shows the concurrency the executor allows, not more machines' compute.
//! 2. **Foreman's own cost per remote session**: 100 sessions at once on 100 simulated runners, each agent
//!    sending a progress line every second; Foreman's resident memory (`VmRSS`) and CPU time (`utime +
//!    stime` from `/proc/<pid>/stat`) over a 10 s window with all 100 running, against the same with none.
//!
//! Run: `cargo bench --bench actions_scale` (release profile; minutes). Prints the figures the README
//! quotes; the suite runs no timed test.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e_support::{FIXING_AGENT, REPO, Setup, World};
use serde_json::Value;

/// How long one agent "thinks" before committing, standing in for a model's latency (real sessions take
/// minutes; 2 s keeps the run short while leaving the agents, not Foreman, the longest part of a session).
const AGENT_SECONDS: u32 = 2;
/// Issues in the wall-time comparison.
const ISSUES: u64 = 50;
/// Remote sessions at once in the cost measurement.
const CONCURRENT: u64 = 100;
/// The window over which Foreman's CPU time is read with every remote session running.
const WINDOW: Duration = Duration::from_secs(10);
/// The bound on any one wait of this bench (a broken build fails instead of hanging).
const BOUND: Duration = Duration::from_secs(600);
/// How often the bench reads the simulator's state while it waits: reading it costs the machine CPU that
/// Foreman and the runners share, so not on every change. The wall times are good to this much.
const POLL: Duration = Duration::from_millis(250);

/// The workflow `foreman actions workflow --backend command` prints.
fn workflow() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .args(["actions", "workflow", "--backend", "command"])
        .env_remove("FOREMAN_CONFIG")
        .output()
        .expect("foreman actions workflow");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn world(agent: &str, actions: bool, sessions: u64) -> World {
    let sessions = sessions.to_string();
    let mut env =
        vec![("FOREMAN_MAX_SESSIONS", sessions.as_str()), ("FOREMAN_MAX_SESSIONS_PER_REPO", sessions.as_str())];
    if actions {
        env.push(("FOREMAN_EXECUTOR_KIND", "actions"));
    }
    let setup = Setup {
        env: &env,
        runners: actions.then_some(sessions.parse().unwrap()),
        config: "[report]\nmin_edit_interval_secs = 10\n",
        ..Setup::default()
    };
    let world = World::start_with(agent, setup).await;
    if actions {
        let bin = Path::new(env!("CARGO_BIN_EXE_foreman")).parent().unwrap().to_owned();
        world.sim.set_runner_path(&[bin]);
        world.sim.push_file(REPO, ".github/workflows/foreman-session.yml", &workflow(), "alice").unwrap();
    }
    world
}

fn pulls(state: &Value) -> usize {
    e2e_support::measure::repo_in(state, REPO)["pulls"].as_array().map_or(0, Vec::len)
}

/// Waits until `condition` holds, reading the simulator's state every [`POLL`].
async fn until(world: &World, what: &str, condition: impl Fn(&Value) -> bool) {
    let waited = tokio::time::timeout(BOUND, async {
        loop {
            if condition(&world.sim.state()) {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    if waited.is_err() {
        panic!("timed out waiting for {what}; foreman said:\n{}", world.logs());
    }
}

fn label_all(world: &World, n: u64) -> Instant {
    let numbers: Vec<u64> =
        (0..n).map(|i| world.sim.create_issue(REPO, &format!("Task {i}"), "Add a file.", "alice").unwrap().0).collect();
    let started = Instant::now();
    for number in numbers {
        world.sim.add_label(REPO, number, "foreman", "alice").unwrap();
    }
    started
}

async fn wall_time(actions: bool, sessions: u64) -> Duration {
    let agent = format!("sleep {AGENT_SECONDS}\n{FIXING_AGENT}");
    let world = world(&agent, actions, sessions).await;
    let started = label_all(&world, ISSUES);
    until(&world, "every pull request", |s| pulls(s) >= ISSUES as usize).await;
    started.elapsed()
}

/// Foreman's resident memory in KiB and its CPU time in clock ticks (user + system).
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th of the line.
    let rest: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    (rss, ticks)
}

/// Foreman's resident memory (KiB) at the end of [`WINDOW`] and the CPU it used during it (percent of one
/// core).
async fn window(pid: u32) -> (u64, f64) {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let (_, before) = usage(pid);
    let at = Instant::now();
    tokio::time::sleep(WINDOW).await; // the measurement window itself, not a wait for a condition
    let (rss, after) = usage(pid);
    let cpu = (after - before) as f64 / ticks_per_second / at.elapsed().as_secs_f64() * 100.0;
    (rss, cpu)
}

async fn per_remote_session() -> (u64, u64, f64, f64) {
    let marks = tempfile::tempdir().unwrap();
    let agent = format!(
        r#"touch '{marks}/started-'"$FOREMAN_ISSUE"
n=0
while [ ! -e '{marks}/go' ]; do
  n=$((n + 1))
  if [ "$n" -gt 600 ]; then echo "never released" >&2; exit 1; fi
  echo "::foreman progress waiting, second $n"
  sleep 1
done
{FIXING_AGENT}"#,
        marks = marks.path().display()
    );
    let world = world(&agent, true, CONCURRENT).await;
    let pid = world.foreman.as_ref().unwrap().child.id();
    let (idle_rss, idle_cpu) = window(pid).await;
    let _ = label_all(&world, CONCURRENT);
    let started = |n: u64| std::fs::read_dir(marks.path()).map_or(0, |d| d.count()) as u64 >= n;
    tokio::time::timeout(BOUND, async {
        while !started(CONCURRENT) {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("every remote session to start; foreman said:\n{}", world.logs()));
    let (busy_rss, busy_cpu) = window(pid).await;
    std::fs::write(marks.path().join("go"), "").unwrap();
    until(&world, "every pull request", |s| pulls(s) >= CONCURRENT as usize).await;
    (idle_rss, busy_rss, idle_cpu, busy_cpu)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let local = wall_time(false, 3).await;
    println!(
        "{ISSUES} issues, {AGENT_SECONDS} s agents: 3 local sessions: {:.1} s to the last pull request",
        local.as_secs_f64()
    );
    let actions = wall_time(true, 20).await;
    println!(
        "{ISSUES} issues, {AGENT_SECONDS} s agents: 20 Actions runners: {:.1} s to the last pull request",
        actions.as_secs_f64()
    );
    let (idle_rss, busy_rss, idle_cpu, busy_cpu) = per_remote_session().await;
    let n = CONCURRENT as f64;
    println!(
        "Foreman with no session: {:.1} MiB resident, {idle_cpu:.1}% of a core; with {CONCURRENT} remote sessions: \
         {:.1} MiB, {busy_cpu:.1}% of a core; per remote session: {:.0} KiB, {:.2}% of a core",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0,
        busy_rss.saturating_sub(idle_rss) as f64 / n,
        (busy_cpu - idle_cpu) / n,
    );
}
