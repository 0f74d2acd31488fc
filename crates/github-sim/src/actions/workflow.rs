//! Workflow files (`.github/workflows/*.yml`) as the simulated runner reads them, and the `${{ … }}`
//! expressions it substitutes.
//!
//! Read: `name`, `run-name`, `on` (a string, a list, or a mapping; only `workflow_dispatch` and its
//! `inputs` with `required`, `default`, `type`, `options` matter), top-level, job and step `env`,
//! `jobs.<id>.name`, `runs-on` (reported as the job's labels), `timeout-minutes` (job and step; a
//! fraction of a minute is accepted), `steps[].name`, `run`, `uses`, `working-directory`, `if`,
//! `continue-on-error`. Everything else (a job's `if`, `needs`, `strategy`, `services`, `container`,
//! `outputs`, …) is read past and ignored.

use std::collections::BTreeMap;

use serde_yaml_ng::Value as Yaml;

/// GitHub's default job time limit, in minutes (360, six hours).
pub const DEFAULT_TIMEOUT_MINUTES: f64 = 360.0;

/// A parsed workflow.
#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    /// `name`; GitHub shows the file's path when it has none.
    pub name: Option<String>,
    /// `run-name`, unsubstituted.
    pub run_name: Option<String>,
    /// `on.workflow_dispatch.inputs`, or `None` when the workflow has no `workflow_dispatch` trigger.
    pub dispatch: Option<BTreeMap<String, Input>>,
    /// Top-level `env`, in file order.
    pub env: Vec<(String, String)>,
    /// The jobs, in file order.
    pub jobs: Vec<Job>,
}

/// One `workflow_dispatch` input.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub required: bool,
    /// `default`, as a string (`true`, `3`, `text`).
    pub default: Option<String>,
    /// `type`: `string` (the default), `boolean`, `number`, `choice`, `environment`.
    pub kind: String,
    /// `options` of a `choice`.
    pub options: Vec<String>,
}

/// One job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The key under `jobs`.
    pub id: String,
    /// `name`, else the id.
    pub name: String,
    /// `runs-on`, as labels.
    pub labels: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `timeout-minutes` (default 360).
    pub timeout_minutes: f64,
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: Option<String>,
    /// `run:`, unsubstituted.
    pub run: Option<String>,
    /// `uses:` (not run by the simulator; logged and skipped).
    pub uses: Option<String>,
    pub env: Vec<(String, String)>,
    pub timeout_minutes: Option<f64>,
    /// `working-directory`, relative to the job's workspace.
    pub working_directory: Option<String>,
    /// `if:`, unevaluated (see [`super::condition`]).
    pub condition: Option<String>,
    /// `continue-on-error: true`: a failure of this step does not fail the job.
    pub continue_on_error: bool,
}

impl Step {
    /// The name GitHub shows: `name`, else `Run <first line of run>`, else `Run <uses>`.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(r) = &self.run {
            return format!("Run {}", r.lines().next().unwrap_or_default().trim());
        }
        format!("Run {}", self.uses.as_deref().unwrap_or_default())
    }
}

/// A scalar as a string (`true`, `3`, `text`; `~` is empty).
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

fn env_of(v: Option<&Yaml>) -> Result<Vec<(String, String)>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Some(m) = v.as_mapping() else { return Err("`env` must be a mapping".into()) };
    m.iter()
        .map(|(k, v)| {
            let k = scalar(k).ok_or("an `env` name must be a string")?;
            let v = scalar(v).ok_or_else(|| format!("`env.{k}` must be a scalar"))?;
            Ok((k, v))
        })
        .collect()
}

fn minutes(v: Option<&Yaml>) -> Result<Option<f64>, String> {
    match v {
        None => Ok(None),
        Some(Yaml::Number(n)) => n.as_f64().map(Some).ok_or_else(|| "`timeout-minutes` must be a number".into()),
        Some(Yaml::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| format!("`timeout-minutes: {s}` is not a number"))
        }
        Some(_) => Err("`timeout-minutes` must be a number".into()),
    }
}

/// The `workflow_dispatch` inputs of `on`, `None` without that trigger.
fn dispatch_of(on: Option<&Yaml>) -> Result<Option<BTreeMap<String, Input>>, String> {
    let trigger = match on {
        None => return Ok(None),
        Some(Yaml::String(s)) => return Ok((s == "workflow_dispatch").then(BTreeMap::new)),
        Some(Yaml::Sequence(list)) => {
            return Ok(list.iter().any(|e| e.as_str() == Some("workflow_dispatch")).then(BTreeMap::new));
        }
        Some(Yaml::Mapping(m)) => match m.get("workflow_dispatch") {
            None => return Ok(None),
            Some(t) => t,
        },
        Some(_) => return Err("`on` must be a string, a list or a mapping".into()),
    };
    let mut inputs = BTreeMap::new();
    if let Some(m) = trigger.get("inputs").and_then(Yaml::as_mapping) {
        for (k, v) in m {
            let name = scalar(k).ok_or("an input name must be a string")?;
            let input = Input {
                required: v.get("required").and_then(Yaml::as_bool).unwrap_or(false),
                default: v.get("default").and_then(scalar),
                kind: v.get("type").and_then(Yaml::as_str).unwrap_or("string").to_string(),
                options: v
                    .get("options")
                    .and_then(Yaml::as_sequence)
                    .map(|s| s.iter().filter_map(scalar).collect())
                    .unwrap_or_default(),
            };
            inputs.insert(name, input);
        }
    }
    Ok(Some(inputs))
}

/// Parses a workflow file. `Err` is a reason to show (GitHub's "Invalid workflow file").
pub(crate) fn parse(text: &str) -> Result<Workflow, String> {
    let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    if !doc.is_mapping() {
        return Err("a workflow is a mapping".into());
    }
    let mut jobs = Vec::new();
    let Some(job_map) = doc.get("jobs").and_then(Yaml::as_mapping) else {
        return Err("a workflow needs `jobs`".into());
    };
    for (id, j) in job_map {
        let id = scalar(id).ok_or("a job id must be a string")?;
        let labels = match j.get("runs-on") {
            Some(Yaml::Sequence(s)) => s.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
            None => Vec::new(),
        };
        let mut steps = Vec::new();
        for s in j.get("steps").and_then(Yaml::as_sequence).map(Vec::as_slice).unwrap_or_default() {
            let step = Step {
                name: s.get("name").and_then(scalar),
                run: s.get("run").and_then(scalar),
                uses: s.get("uses").and_then(scalar),
                env: env_of(s.get("env"))?,
                timeout_minutes: minutes(s.get("timeout-minutes"))?,
                working_directory: s.get("working-directory").and_then(scalar),
                condition: s.get("if").and_then(scalar),
                continue_on_error: s.get("continue-on-error").and_then(Yaml::as_bool).unwrap_or(false),
            };
            if step.run.is_none() && step.uses.is_none() {
                return Err(format!("a step of job `{id}` has neither `run` nor `uses`"));
            }
            steps.push(step);
        }
        jobs.push(Job {
            name: j.get("name").and_then(scalar).unwrap_or_else(|| id.clone()),
            labels,
            env: env_of(j.get("env"))?,
            timeout_minutes: minutes(j.get("timeout-minutes"))?.unwrap_or(DEFAULT_TIMEOUT_MINUTES),
            steps,
            id,
        });
    }
    Ok(Workflow {
        name: doc.get("name").and_then(scalar),
        run_name: doc.get("run-name").and_then(scalar),
        dispatch: dispatch_of(doc.get("on"))?,
        env: env_of(doc.get("env"))?,
        jobs,
    })
}

/// What `${{ … }}` expressions can read: context name (`inputs`, `secrets`, `github`, `env`, `runner`,
/// `vars`) → property → value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contexts {
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

impl Contexts {
    pub fn set(&mut self, context: &str, key: &str, value: impl Into<String>) {
        self.values.entry(context.to_string()).or_default().insert(key.to_string(), value.into());
    }

    /// A dotted path: `inputs.x`, `github.event.inputs.x`, `secrets.X`, `github.run_id`, `env.X`.
    /// Context and property names are case-insensitive, as GitHub's are. Unknown ones are empty.
    pub fn lookup(&self, path: &str) -> String {
        let path = path.trim();
        let (ctx, rest) = path.split_once('.').unwrap_or((path, ""));
        let (ctx, rest) = match (ctx.to_ascii_lowercase().as_str(), rest.strip_prefix("event.inputs.")) {
            ("github", Some(name)) => ("inputs".to_string(), name),
            (c, _) => (c.to_string(), rest),
        };
        let Some(map) = self.values.get(&ctx) else { return String::new() };
        map.get(rest)
            .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(rest)).map(|(_, v)| v))
            .cloned()
            .unwrap_or_default()
    }

    /// One expression: `a || b || 'literal'` gives the first non-empty (truthy) operand; a single-quoted
    /// string is a literal (`''` an escaped quote); anything else is a context path.
    fn eval(&self, expr: &str) -> String {
        for term in expr.split("||") {
            let t = term.trim();
            let v = if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
                t[1..t.len() - 1].replace("''", "'")
            } else if t == "true" || t == "false" || t.parse::<f64>().is_ok() {
                t.to_string()
            } else {
                self.lookup(t)
            };
            if !v.is_empty() && v != "false" && v != "0" {
                return v;
            }
        }
        String::new()
    }

    /// `text` with every `${{ expression }}` replaced by its value (see [`Self::eval`]); an unclosed
    /// `${{` is left as it is.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            let Some(len) = rest[start + 3..].find("}}") else { break };
            out.push_str(&rest[..start]);
            out.push_str(&self.eval(&rest[start + 3..start + 3 + len]));
            rest = &rest[start + 3 + len + 2..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_session_workflow() {
        let w = parse(
            "name: Foreman session\nrun-name: 'session ${{ inputs.session }}'\non:\n  workflow_dispatch:\n    inputs:\n      session:\n        required: true\n      url:\n        default: http://x\nenv:\n  A: 1\njobs:\n  session:\n    runs-on: [self-hosted, linux]\n    timeout-minutes: 30\n    steps:\n      - uses: actions/checkout@v4\n      - name: Go\n        run: echo hi\n        env:\n          B: two\n",
        )
        .unwrap();
        assert_eq!(w.name.as_deref(), Some("Foreman session"));
        let d = w.dispatch.unwrap();
        assert!(d["session"].required && d["url"].default.as_deref() == Some("http://x"));
        assert_eq!(w.env, vec![("A".into(), "1".into())]);
        let j = &w.jobs[0];
        assert_eq!((j.id.as_str(), j.timeout_minutes, j.labels.len()), ("session", 30.0, 2));
        assert_eq!(j.steps[0].display_name(), "Run actions/checkout@v4");
        assert_eq!(j.steps[1].env, vec![("B".into(), "two".into())]);
        assert!(parse("on: push\njobs: {a: {steps: [{run: x}]}}").unwrap().dispatch.is_none());
        assert!(parse("on: [push, workflow_dispatch]\njobs: {}").unwrap().dispatch.is_some());
    }

    #[test]
    fn substitutes_expressions() {
        let mut c = Contexts::default();
        c.set("inputs", "session", "s-1");
        c.set("secrets", "KEY", "k");
        c.set("github", "run_id", "7");
        assert_eq!(
            c.substitute(
                "a ${{ inputs.session }} ${{github.event.inputs.session}} ${{ secrets.KEY }} ${{ github.run_id }}"
            ),
            "a s-1 s-1 k 7"
        );
        assert_eq!(c.substitute("${{ inputs.nope || 'dflt' }} ${{ vars.X }}."), "dflt .");
        assert_eq!(c.substitute("unclosed ${{ x"), "unclosed ${{ x");
    }
}
