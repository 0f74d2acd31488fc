//! Plans: what a planning session (`/foreman plan`) proposes, and what `/foreman approve` makes of it.
//!
//! - [`Plan`] and [`Task`]: the JSON the agent writes to the file named by `FOREMAN_PLAN_FILE`, whose
//!   schema is published as `docs/plan.schema.json` ([`SCHEMA`]);
//! - [`Plan::parse`]: the schema, then what a schema cannot say (unique keys and titles, known keys in
//!   `blocked_by`, no cycle, at most `plan.max_tasks` tasks), each refusal a [`PlanError`] in words;
//! - [`render`]: the plan comment on the planned issue (a table of key, title, phase and blockers, and the
//!   plan itself in a hidden marker for `/foreman approve` to read back);
//! - [`create`]: the approval: one sub-issue per task, a "blocked by" link per dependency, labels, the
//!   board; idempotent and crash-safe by a hidden marker in each created issue's body.

pub mod create;
pub mod render;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use settings::{ApproveMode, PlanSettings, RunMode};

/// The plan's JSON Schema (`docs/plan.schema.json`, draft 7).
pub const SCHEMA: &str = include_str!("../../docs/plan.schema.json");

/// The default of `plan.max_tasks`: the most tasks one plan may have.
pub const DEFAULT_MAX_TASKS: usize = 50;

/// The largest plan file read, in bytes (1 MiB); a longer one is refused.
pub const MAX_PLAN_BYTES: usize = 1024 * 1024;

/// A plan: a summary and its tasks, as the agent wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The approach in a few sentences.
    pub summary: String,
    /// The tasks, in the order shown.
    pub tasks: Vec<Task>,
}

/// One task of a plan: one issue once approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The key within the plan (`T1`): ASCII letters, digits, `.`, `_`, `-`, at most 32.
    pub key: String,
    /// The issue's title, without the phase.
    pub title: String,
    /// The issue's body (Markdown, with acceptance criteria).
    pub body: String,
    /// The phase (`1.2`), put at the front of the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Keys of the tasks this one waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    /// The issue's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl Task {
    /// The title of the task's issue: `1.2: title` with a phase (the form Foreman's run order reads,
    /// [`crate::job::PhaseKey`]), the title alone without.
    pub fn issue_title(&self) -> String {
        match &self.phase {
            Some(phase) => format!("{phase}: {}", self.title),
            None => self.title.clone(),
        }
    }
}

/// Why a plan was refused; the `Display` is a sentence for the tracking comment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The file is not JSON.
    #[error("the plan file is not JSON ({0})")]
    NotJson(String),
    /// The JSON does not match `docs/plan.schema.json`: where and why, for the first few errors.
    #[error("the plan does not match docs/plan.schema.json: {0}")]
    Schema(String),
    /// Two tasks share a key.
    #[error("two tasks have the key `{0}`")]
    DuplicateKey(String),
    /// Two tasks share a title (compared case-insensitively).
    #[error("two tasks have the title \"{0}\"")]
    DuplicateTitle(String),
    /// A `blocked_by` names no task of the plan.
    #[error("task `{task}` is blocked by `{missing}`, which is not a task of the plan")]
    UnknownBlocker {
        /// The task's key.
        task: String,
        /// The unknown key.
        missing: String,
    },
    /// The dependencies form a cycle, given as keys in order (`T1 → T2 → T1`).
    #[error("the tasks' dependencies form a cycle: {0}")]
    Cycle(String),
    /// More tasks than `plan.max_tasks` allows.
    #[error("the plan has {count} tasks; at most {max} are allowed (`plan.max_tasks`)")]
    TooMany {
        /// The plan's tasks.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The plan comment would be longer than GitHub takes, in characters.
    #[error("the plan is too long to post as a comment ({0} characters); fewer or shorter tasks fit")]
    TooLongToPost(usize),
    /// The file is larger than [`MAX_PLAN_BYTES`].
    #[error("the plan file is larger than {} bytes", MAX_PLAN_BYTES)]
    TooLarge,
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("docs/plan.schema.json is JSON");
        jsonschema::draft7::new(&schema).expect("docs/plan.schema.json is a valid schema")
    })
}

impl Plan {
    /// Reads and checks a plan file's text: JSON, the schema, unique keys and titles, known keys in
    /// `blocked_by`, no cycle, at most `max_tasks` tasks. The first problem found is the error.
    pub fn parse(text: &str, max_tasks: usize) -> Result<Plan, PlanError> {
        if text.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge);
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| PlanError::NotJson(e.to_string()))?;
        let errors: Vec<String> = validator()
            .iter_errors(&value)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{e} at {at}") }
            })
            .collect();
        if !errors.is_empty() {
            return Err(PlanError::Schema(errors.join("; ")));
        }
        let plan: Plan = serde_json::from_value(value).map_err(|e| PlanError::Schema(e.to_string()))?;
        plan.check(max_tasks)?;
        Ok(plan)
    }

    /// The checks a schema cannot make (see [`Self::parse`]).
    pub fn check(&self, max_tasks: usize) -> Result<(), PlanError> {
        if self.tasks.len() > max_tasks {
            return Err(PlanError::TooMany { count: self.tasks.len(), max: max_tasks });
        }
        let mut keys = BTreeSet::new();
        let mut titles = BTreeSet::new();
        for t in &self.tasks {
            if !keys.insert(t.key.as_str()) {
                return Err(PlanError::DuplicateKey(t.key.clone()));
            }
            if !titles.insert(t.title.trim().to_lowercase()) {
                return Err(PlanError::DuplicateTitle(t.title.clone()));
            }
        }
        for t in &self.tasks {
            if let Some(missing) = t.blocked_by.iter().find(|k| !keys.contains(k.as_str())) {
                return Err(PlanError::UnknownBlocker { task: t.key.clone(), missing: missing.clone() });
            }
        }
        self.order().map(drop)
    }

    /// The tasks' indexes in an order where every task comes after its blockers (Kahn's algorithm, ties in
    /// the plan's order), or the cycle that prevents one.
    pub fn order(&self) -> Result<Vec<usize>, PlanError> {
        let index: BTreeMap<&str, usize> = self.tasks.iter().enumerate().map(|(i, t)| (t.key.as_str(), i)).collect();
        let mut waiting: Vec<usize> = self.tasks.iter().map(|t| t.blocked_by.len()).collect();
        let mut done = vec![false; self.tasks.len()];
        let mut order = Vec::with_capacity(self.tasks.len());
        while order.len() < self.tasks.len() {
            let Some(next) = (0..self.tasks.len()).find(|&i| !done[i] && waiting[i] == 0) else {
                return Err(PlanError::Cycle(self.cycle(&index, &done)));
            };
            done[next] = true;
            order.push(next);
            let key = self.tasks[next].key.as_str();
            for (i, t) in self.tasks.iter().enumerate() {
                if !done[i] && t.blocked_by.iter().any(|b| b == key) {
                    waiting[i] -= 1;
                }
            }
        }
        Ok(order)
    }

    /// One cycle among the tasks not `done`, as `T1 → T2 → T1`: walk blockers from any such task until a
    /// task repeats.
    fn cycle(&self, index: &BTreeMap<&str, usize>, done: &[bool]) -> String {
        let Some(mut at) = (0..self.tasks.len()).find(|&i| !done[i]) else { return String::new() };
        let mut path: Vec<usize> = Vec::new();
        loop {
            if let Some(start) = path.iter().position(|&p| p == at) {
                let mut keys: Vec<&str> = path[start..].iter().map(|&i| self.tasks[i].key.as_str()).collect();
                keys.reverse();
                keys.push(keys[0]);
                return keys.join(" → ");
            }
            path.push(at);
            let next =
                self.tasks[at].blocked_by.iter().filter_map(|b| index.get(b.as_str()).copied()).find(|&i| !done[i]);
            match next {
                Some(n) => at = n,
                None => return String::new(),
            }
        }
    }

    /// The task with `key`.
    pub fn task(&self, key: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.key == key)
    }
}
