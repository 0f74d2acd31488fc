//! `.github/foreman.toml`: validation errors with line, column and key; the merge order and origins;
//! the templates (through the built binary); and the markdown renderers.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use foreman::constitution::{self, Origin, Template};
use foreman::decide::{DecideConfig, Level};

/// Bounds one run of `foreman constitution init`: it prints a constant, so even a loaded machine is far faster.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_error(text: &str) -> constitution::ConstitutionError {
    constitution::parse(Origin::Repo, text).expect_err("the file is invalid")
}

#[test]
fn an_empty_file_is_the_defaults() {
    let c = constitution::parse(Origin::Repo, "").unwrap();
    assert_eq!(c, constitution::Constitution::default());
    assert_eq!(c.rules.protected_paths[0].as_str(), ".github/workflows/**");
    assert_eq!(c.rules.branch_prefix, "foreman/");
    assert!(c.rules.builtin_secret_patterns);
    assert_eq!(c.limits.concurrency.get(), 1);
    assert_eq!(c.triggers.label, DecideConfig::default().label);
}

#[test]
fn an_unknown_key_is_refused_with_line_column_and_key() {
    let e = repo_error("[rules]\nmax_files_changed = 3\n  protectd_paths = [\"x\"]\n");
    assert_eq!((e.line, e.column), (Some(3), Some(3)), "{e}");
    assert_eq!(e.key.as_deref(), Some("rules.protectd_paths"));
    assert!(
        e.message.contains("unknown key `protectd_paths` in `[rules]`; did you mean `protected_paths`?"),
        "{}",
        e.message
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(".github/foreman.toml, line 3, column 3, key `rules.protectd_paths`: unknown key"),
        "{shown}"
    );
}

#[test]
fn an_unknown_section_is_refused() {
    let e = repo_error("[rules]\n\n[budget]\ndaily = 3\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("unknown key `budget`"), "{}", e.message);
}

#[test]
fn a_wrong_type_points_at_the_value() {
    let e = repo_error("[rules]\nmax_files_changed = \"ten\"\n");
    assert_eq!((e.line, e.column), (Some(2), Some(21)), "{e}");
    assert_eq!(e.key.as_deref(), Some("rules.max_files_changed"));
    assert!(
        e.message.contains("takes a whole number of files, for example `20`; found the string \"ten\""),
        "{}",
        e.message
    );
}

#[test]
fn an_invalid_glob_is_refused_where_it_is_written() {
    let e = repo_error("[rules]\nprotected_paths = [\n  \"ok/**\",\n  \"src/[abc\",\n]\n");
    assert_eq!((e.line, e.column), (Some(4), Some(3)), "{e}");
    assert!(e.message.contains("invalid glob `src/[abc`: unclosed character class"), "{}", e.message);
    assert_eq!(e.key.as_deref(), Some("rules.protected_paths"));
}

#[test]
fn an_invalid_regular_expression_is_refused() {
    let e = repo_error("[rules]\nsecret_patterns = ['ok', '(unclosed']\n");
    assert_eq!((e.line, e.column), (Some(2), Some(26)), "{e}");
    assert!(e.message.contains("invalid regular expression"), "{}", e.message);
}

#[test]
fn zero_and_negative_values_are_refused() {
    let e = repo_error("[limits]\nconcurrency = 0\n");
    assert_eq!((e.line, e.column), (Some(2), Some(15)), "{e}");
    let e = repo_error("[agent]\nmax_cost_usd = -1.5\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("0 or more"), "{}", e.message);
    let e = repo_error("[[rules.required_commands]]\nname = \"t\"\nrun = \"true\"\ntimeout_secs = 0\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.key.as_deref(), Some("rules.required_commands.timeout_secs"));
}

#[test]
fn a_required_command_needs_its_name_and_command() {
    let e = repo_error("[[rules.required_commands]]\nrun = \"cargo test\"\n");
    assert!(e.message.contains("needs `name`"), "{}", e.message);
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn a_syntax_error_has_a_position() {
    let e = repo_error("[rules]\nbranch_prefix = \"foreman/\nmax_files_changed = 3\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.column.is_some());
}

#[test]
fn the_org_file_is_named_in_its_errors() {
    let errors = constitution::merge(Some("[rules]\nnope = 1\n"), Some("[agent]\nmodle = \"x\"\n")).unwrap_err();
    assert_eq!(errors.len(), 2, "both files are validated: {errors:?}");
    assert_eq!(errors[0].origin, Origin::Org);
    assert!(errors[0].to_string().starts_with("the organisation's .github/foreman.toml, line 2"), "{}", errors[0]);
    assert_eq!(errors[1].origin, Origin::Repo);
    assert_eq!(errors[1].key.as_deref(), Some("agent.modle"));
}

const ORG: &str = r#"
[triggers.permissions]
run = "maintain"

[rules]
max_files_changed = 10
protected_paths = ["infra/**"]
coding_standards = "Org-wide standards."

[rules.tdd]
required = true
"#;

const REPO: &str = r#"
[rules]
max_files_changed = 5

[rules.tdd]
source = ["lib/**"]
"#;

#[test]
fn the_repository_overrides_the_org_which_overrides_the_defaults() {
    let e = constitution::merge(Some(ORG), Some(REPO)).unwrap();
    let rules = &e.constitution.rules;
    assert_eq!(rules.max_files_changed, Some(5));
    assert_eq!(e.origin("rules.max_files_changed"), Origin::Repo);
    assert!(rules.tdd.required);
    assert_eq!(e.origin("rules.tdd.required"), Origin::Org);
    assert_eq!(rules.tdd.source.iter().map(|g| g.as_str()).collect::<Vec<_>>(), ["lib/**"]);
    assert_eq!(e.origin("rules.tdd.source"), Origin::Repo);
    // A table merges key by key: the tests globs were set by nobody.
    assert_eq!(rules.tdd.tests, constitution::Tdd::default().tests);
    assert_eq!(e.origin("rules.tdd.tests"), Origin::Default);
    // An array replaces the one below it whole: the org's list, without the built-in workflow glob.
    assert_eq!(rules.protected_paths.iter().map(|g| g.as_str()).collect::<Vec<_>>(), ["infra/**"]);
    assert_eq!(e.origin("rules.protected_paths"), Origin::Org);
    assert_eq!(e.constitution.triggers.permissions.run, Level::Maintain);
    assert_eq!(e.origin("triggers.permissions.run"), Origin::Org);
    assert_eq!(e.constitution.triggers.permissions.stop, Level::Write);
    assert_eq!(e.origin("triggers.permissions.stop"), Origin::Default);
    assert_eq!(e.origin("triggers.label"), Origin::Default);
}

#[test]
fn missing_files_give_the_defaults() {
    let e = constitution::merge(None, None).unwrap();
    assert_eq!(e.constitution, constitution::Constitution::default());
    assert!(e.origins.is_empty());
    let only_org = constitution::merge(Some("[limits]\ndaily_sessions = 4\n"), None).unwrap();
    assert_eq!(only_org.constitution.limits.daily_sessions, Some(4));
    assert_eq!(only_org.origin("limits.daily_sessions"), Origin::Org);
}

/// A repository can set every key of `[triggers.permissions]`, and setting one changes that key only.
#[test]
fn every_permission_key_can_be_set_by_a_repository() {
    let base = DecideConfig::default();
    for (key, _) in base.permissions.entries() {
        let e = constitution::merge(None, Some(&format!("[triggers.permissions]\n{key} = \"admin\"\n"))).unwrap();
        let got = e.decide_config(&base).permissions;
        for ((k, level), (_, default)) in got.entries().into_iter().zip(base.permissions.entries()) {
            assert_eq!(level, if k == key { Level::Admin } else { default }, "setting {key}: {k}");
        }
    }
}

#[test]
fn triggers_map_onto_the_decide_configuration_keeping_the_app_slug() {
    let e =
        constitution::merge(None, Some("[triggers]\nlabel = \"agent\"\nallowed_bots = [\"renovate[bot]\"]\n")).unwrap();
    let base = DecideConfig { app_slug: "my-foreman".into(), ..DecideConfig::default() };
    let decide = e.constitution.triggers.to_decide_config(&base);
    assert_eq!(decide.label, "agent");
    assert_eq!(decide.app_slug, "my-foreman");
    assert!(decide.bot_allowed("renovate[bot]"));
    // The app slug belongs to the installation: a repository cannot set it.
    let err = repo_error("[triggers]\napp_slug = \"other\"\n");
    assert!(err.message.contains("unknown key `app_slug`") && err.message.contains("installation"), "{}", err.message);
}

#[test]
fn the_constitution_reply_shows_each_value_with_its_origin() {
    let e = constitution::merge(Some(ORG), Some(REPO)).unwrap();
    let md = constitution::effective_markdown(&e);
    for row in [
        "| `max_files_changed` | `5` | repository |",
        "| `tdd.required` | `true` | organisation |",
        "| `protected_paths` | `\"infra/**\"` | organisation |",
        "| `branch_prefix` | `\"foreman/\"` | built-in |",
        "| `permissions.run` | `\"maintain\"` | organisation |",
        "| `model` | — | built-in |",
        "| `concurrency` | `1` | built-in |",
    ] {
        assert!(md.contains(row), "missing {row} in\n{md}");
    }
    for section in ["#### `[triggers]`", "#### `[agent]`", "#### `[limits]`", "#### `[rules]`"] {
        assert!(md.contains(section), "missing {section}");
    }
}

#[test]
fn the_prompt_carries_the_rules_and_the_free_text() {
    let text = "[rules]\nmax_lines_changed = 300\ndeployment_target = \"Fly.io, app `shop`.\"\nsecret_naming = \"SHOP_*\"\n\
                [rules.tdd]\nrequired = true\n[[rules.required_commands]]\nname = \"tests\"\nrun = \"make test\"\ntimeout_secs = 60\n";
    let e = constitution::merge(Some(ORG), Some(text)).unwrap();
    let md = constitution::prompt_markdown(&e.constitution);
    for needle in [
        "Never add, modify, delete or rename: `infra/**`.",
        "at most 300 lines",
        "Test-driven",
        "GitHub token",
        "`tests` must pass in the workspace root (`make test`, within 60 s)",
        "### Deployment target\n\nFly.io, app `shop`.",
        "### Secret naming\n\nSHOP_*",
        "### Coding standards\n\nOrg-wide standards.",
        "starts with `foreman/`",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
}

#[test]
fn every_template_parses() {
    for t in Template::ALL {
        let c = constitution::parse(Origin::Repo, &t.text()).unwrap_or_else(|e| panic!("{}: {e}", t.name()));
        assert!(c.rules.protected_paths.iter().any(|g| g.as_str() == ".github/workflows/**"), "{}", t.name());
        assert_eq!(Template::from_name(t.name()), Some(t));
    }
}

fn init(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foreman"));
    cmd.args(["constitution", "init"]).args(args).env_remove("FOREMAN_CONFIG");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(cmd.output()));
    rx.recv_timeout(CLI_TIMEOUT).expect("init finished in time").expect("init started")
}

#[test]
fn init_prints_each_template_and_it_parses() {
    for name in ["rust", "node", "python", "generic"] {
        // The same words as the comment `/foreman constitution init rust`; `--template rust` works too.
        let out = init(&[name]);
        assert_eq!(out.stdout, init(&["--template", name]).stdout, "{name}");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let c = constitution::parse(Origin::Repo, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.rules.tdd.required, name != "generic", "{name}");
    }
    let rust = String::from_utf8(init(&["rust"]).stdout).unwrap();
    assert_eq!(init(&[]).stdout, init(&["generic"]).stdout, "generic when not given");
    assert!(rust.contains("cargo test"));
    let unknown = init(&["--template", "cobol"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("possible values: rust, node, python, generic"));
}

fn docs() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/constitution.md")).unwrap()
}

fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            out.push(k.clone());
            keys(&format!("{prefix}.{k}"), v, out);
        }
    }
}

#[test]
fn the_docs_name_every_key() {
    let docs = docs();
    let mut all = Vec::new();
    let mut c = constitution::Constitution::default();
    c.rules.required_commands.push(constitution::RequiredCommand {
        name: "t".into(),
        run: "true".into(),
        timeout_secs: std::num::NonZeroU64::MIN,
    });
    keys("", &serde_json::to_value(&c).unwrap(), &mut all);
    keys("", &serde_json::to_value(&c.rules.required_commands[0]).unwrap(), &mut all);
    for key in all {
        assert!(
            docs.contains(&format!("`{key}`"))
                || docs.contains(&format!(".{key}]`"))
                || docs.contains(&format!("`[{key}]`")),
            "docs/constitution.md does not document `{key}`"
        );
    }
}

#[test]
fn the_docs_example_parses() {
    let docs = docs();
    let example = docs.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml example");
    let c = constitution::parse(Origin::Repo, example).unwrap();
    assert!(c.rules.tdd.required);
    assert!(c.rules.secret_patterns[0].regex().is_match("ACME_DB_KEY=hunter2"));
}

/// The `output` schema of "Create a check run" from GitHub's REST description (vendored, built into github-sim).
fn check_run_output_schema() -> serde_json::Value {
    let api: serde_json::Value = serde_json::from_slice(&github_sim::descriptions::rest_description()).unwrap();
    api["paths"]["/repos/{owner}/{repo}/check-runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        ["properties"]["output"]
        .clone()
}

#[test]
fn an_invalid_file_in_a_pull_request_becomes_a_check_run_with_line_and_column() {
    let errors =
        constitution::merge(Some("[rules]\nnope = 1\n"), Some("[rules]\n\nmax_files_changed = \"x\"\n")).unwrap_err();
    let output = constitution::check_run_output(&errors, None);
    // Only the repository's file is in the pull request.
    assert_eq!(output.annotations.len(), 1);
    let a = &output.annotations[0];
    assert_eq!((a.path.as_str(), a.start_line, a.end_line, a.start_column), (".github/foreman.toml", 3, 3, Some(21)));
    assert_eq!(a.title.as_deref(), Some("`rules.max_files_changed`"));
    // Both files' errors are in the summary, as they would be in the issue comment.
    assert!(output.summary.contains("organisation's .github/foreman.toml, line 2"), "{}", output.summary);
    assert!(output.summary.contains(".github/foreman.toml, line 3, column 21"), "{}", output.summary);
    let schema = check_run_output_schema();
    assert!(schema.is_object(), "the schema was found");
    let instance = serde_json::to_value(&output).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");
    // And the schema does refuse a malformed annotation, so the check above can fail.
    let mut broken = instance.clone();
    broken["annotations"][0]["annotation_level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));
}
