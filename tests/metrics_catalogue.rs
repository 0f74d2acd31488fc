//! `/metrics` as a scraper reads it: every metric has `# HELP` and `# TYPE`, the catalogue
//! (`telemetry::METRICS`) names every metric the source records, and docs/operations.md documents each.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use foreman::telemetry::{METRICS, MetricKind};
use support::Foreman;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `foreman_…` name passed to a `metrics::counter!`, `gauge!` or `histogram!` under src/.
fn recorded_in_source() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                for (i, _) in text.match_indices(macro_name) {
                    let name: String = text[i + macro_name.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn the_catalogue_names_every_recorded_metric_and_the_docs_every_one_of_the_catalogue() {
    let catalogue: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(catalogue.len(), METRICS.len(), "each metric once");
    let recorded = recorded_in_source();
    let missing: Vec<&String> = recorded.difference(&catalogue).collect();
    assert!(missing.is_empty(), "recorded but not in telemetry::METRICS: {missing:?}");
    let unused: Vec<&String> = catalogue.difference(&recorded).collect();
    assert!(unused.is_empty(), "in telemetry::METRICS but never recorded: {unused:?}");
    let docs = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for m in METRICS {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        assert!(docs.contains(&format!("| `{}` | {kind} |", m.name)), "docs/operations.md has no row for {}", m.name);
        assert!(!m.help.is_empty() && m.help.ends_with('.'), "{}: a one-sentence help", m.name);
    }
}

#[tokio::test]
async fn every_exported_metric_has_help_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let foreman = Foreman::start(dir.path(), &[]);
    let text = tokio::time::timeout(Duration::from_secs(30), async {
        reqwest::get(foreman.url("/metrics")).await.unwrap().text().await.unwrap()
    })
    .await
    .expect("/metrics answered in time");
    let named = |prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    let (help, types) = (named("# HELP "), named("# TYPE "));
    assert!(!types.is_empty(), "{text}");
    for name in &types {
        assert!(help.contains(name), "{name} has no # HELP line:\n{text}");
    }
    let samples: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    for family in ["foreman_build_info", "foreman_jobs", "foreman_inbox_depth"] {
        assert!(samples.contains(family), "{family} is exported from the start:\n{text}");
    }
    assert!(text.contains(&format!("foreman_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("foreman_jobs{state=\"queued\"} 0"), "every state is counted:\n{text}");
}
