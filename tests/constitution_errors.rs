//! What people read about a constitution: every error of a file with several mistakes at once, each with its
//! line, column, key and what the key takes in words (snapshots); the `/foreman constitution` table with the
//! server's values and nothing cut; the `init` templates agreeing with the defaults; and
//! `docs/constitution.md` documenting exactly the keys the schema has.

use foreman::constitution::{self, Origin};

/// A maintainer's first try: a misspelt key, words where numbers go, a list left open on line 9, a zero
/// where at least 1 is needed, a negative amount, a key in the wrong table and an old key name.
const MISTAKES: &str = r#"[triggers]
label = "foreman"

[agent]
mdoel = "claude-sonnet-4-5"
max_turns = "sixty"

[rules]
protected_paths = [".github/workflows/**", "infra/**"
max_files_changed = 40
max_lines_changed = "twenty"
secret_patterns = ["ok", "(unclosed"]
model = "claude-opus"

[limits]
concurrency = 0
daily_cost_usd = -3
"#;

#[test]
fn every_mistake_of_a_file_is_reported_at_once_in_words() {
    let errors = constitution::parse_all(Origin::Repo, MISTAKES).expect_err("the file has mistakes");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("every_error_at_once", shown.join("\n"));
    let at = |line: usize| {
        errors.iter().find(|e| e.line == Some(line)).unwrap_or_else(|| panic!("no error on line {line}: {shown:#?}"))
    };
    assert_eq!(at(5).key.as_deref(), Some("agent.mdoel"));
    assert!(at(5).message.contains("did you mean `model`?"), "{}", at(5).message);
    assert!(at(6).message.contains("a whole number of turns, for example `60`"), "{}", at(6).message);
    assert!(!shown.iter().any(|e| e.contains("u32") || e.contains("expected one of")), "{shown:#?}");
    // The list opened on line 9 is what is broken, not the key on line 10 the parser stopped at.
    assert_eq!(at(9).key.as_deref(), Some("rules.protected_paths"), "{shown:#?}");
    assert!(errors.iter().all(|e| e.key.as_deref() != Some("rules.max_files_changed")), "{shown:#?}");
    for line in [11, 12, 13, 16, 17] {
        at(line);
    }
}

#[test]
fn the_error_comment_links_each_key_to_its_documentation() {
    let errors = constitution::parse_all(Origin::Repo, MISTAKES).expect_err("the file has mistakes");
    let docs = "https://foreman.example.com/docs/constitution.md";
    insta::assert_snapshot!("error_comment", constitution::errors_markdown(&errors, Some(docs)));
}

/// Every dotted key of a serialised value, tables included (`rules`, `rules.tdd`, `rules.tdd.required` …).
fn serde_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    let Some(map) = value.as_object() else { return };
    for (k, v) in map {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        out.push(path.clone());
        serde_keys(&path, v, out);
    }
}

#[test]
fn the_key_list_is_the_schemas_shape() {
    let mut c = constitution::Constitution::default();
    c.rules.required_commands.push(constitution::RequiredCommand {
        name: "t".into(),
        run: "true".into(),
        timeout_secs: std::num::NonZeroU64::MIN,
    });
    let mut from_serde = Vec::new();
    serde_keys("", &serde_json::to_value(&c).unwrap(), &mut from_serde);
    serde_keys(
        "rules.required_commands",
        &serde_json::to_value(&c.rules.required_commands[0]).unwrap(),
        &mut from_serde,
    );
    from_serde.sort();
    let mut listed: Vec<String> = constitution::keys::KEYS.iter().map(|k| k.path.to_owned()).collect();
    listed.sort();
    assert_eq!(listed, from_serde, "keys.rs lists exactly the schema's keys");
    // Each key's example is accepted where it goes.
    for key in constitution::keys::KEYS
        .iter()
        .filter(|k| !matches!(k.takes, constitution::keys::Takes::Table | constitution::keys::Takes::Tables))
    {
        let (table, leaf) = key.path.rsplit_once('.').unwrap();
        let file = match (table, leaf) {
            ("rules.required_commands", "name") => format!("[[{table}]]\nname = {}\nrun = \"r\"\n", key.example),
            ("rules.required_commands", "run") => format!("[[{table}]]\nname = \"n\"\nrun = {}\n", key.example),
            ("rules.required_commands", _) => {
                format!("[[{table}]]\nname = \"n\"\nrun = \"r\"\n{leaf} = {}\n", key.example)
            }
            _ => format!("[{table}]\n{leaf} = {}\n", key.example),
        };
        constitution::parse_all(Origin::Repo, &file)
            .unwrap_or_else(|e| panic!("{}'s example: {file}\n{e:?}", key.path));
    }
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, other punctuation but `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_documentation_lists_exactly_the_schemas_keys_and_every_link_lands_on_a_heading() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/constitution.md")).unwrap();
    let mut documented = Vec::new();
    let mut anchors = Vec::new();
    let mut section: Option<String> = None;
    for line in docs.lines() {
        if let Some(heading) = line.strip_prefix("## ").or_else(|| line.strip_prefix("### ")) {
            anchors.push(anchor(heading));
            // A table's section: "## `[agent]`", "### `[[rules.required_commands]]`", "### `[rules.tdd]`: …".
            section = heading
                .strip_prefix('`')
                .and_then(|h| h.split('`').next())
                .map(|t| t.trim_matches(['[', ']']).to_owned());
            if let Some(table) = &section {
                documented.push(table.clone());
            }
            continue;
        }
        if let (Some(table), Some(cell)) = (&section, line.strip_prefix("| `")) {
            let key = cell.split('`').next().unwrap();
            documented.push(format!("{table}.{key}"));
        }
    }
    documented.sort();
    // `required_commands` has its row in `[rules]` and its own heading.
    documented.dedup();
    let mut listed: Vec<String> = constitution::keys::KEYS.iter().map(|k| k.path.to_owned()).collect();
    listed.sort();
    assert_eq!(documented, listed, "docs/constitution.md's tables document exactly the keys Foreman reads");
    for key in constitution::keys::KEYS {
        assert!(
            anchors.iter().any(|a| a == key.anchor()),
            "{}'s link #{} is no heading of the docs",
            key.path,
            key.anchor()
        );
    }
}

/// The server's agent configuration for the reply: a model, the shipped limits.
fn server() -> foreman::session::AgentConfig {
    foreman::session::AgentConfig { model: Some("claude-sonnet-4-5".into()), ..Default::default() }
}

#[test]
fn the_constitution_reply_shows_every_effective_value_whole_with_where_it_came_from() {
    let org = "[rules.tdd]\nrequired = true\n";
    let repo = "[agent]\nmax_turns = 30\nmax_cost_usd = 50.0\n\n[rules]\nmax_files_changed = 20\n\n[rules.tdd]\n\
                tests = [\"tests/**\", \"crates/*/tests/**\", \"benches/**\", \"**/*_test.rs\", \"**/testdata/**/*.snap\", \"fuzz/**\"]\n";
    let mut effective = constitution::merge(Some(org), Some(repo)).unwrap();
    // The server's own `[triggers]` label applies where no file sets one.
    let triggers = foreman::decide::DecideConfig { label: "ai".into(), ..Default::default() };
    effective.apply_ceilings(&constitution::Ceilings { triggers: Some(triggers), ..server().ceilings() });
    let reply = constitution::effective_markdown(&effective);
    insta::assert_snapshot!("constitution_reply", reply);
    assert!(!reply.contains('…'), "nothing is cut: {reply}");
    for row in [
        "| `model` | `\"claude-sonnet-4-5\"` | server |",
        "| `backend` | `\"claude\"` | server |",
        "| `max_turns` | `30` | repository | `60` |",
        "| `max_cost_usd` | `10.0` | server (capped: repository asked for `50.0`) | `10.0` |",
        "| `tdd.required` | `true` | organisation |",
        "| `label` | `\"ai\"` | server |",
        "| `status_field` | `\"Status\"` | built-in |",
        "`\"**/testdata/**/*.snap\"`, `\"fuzz/**\"` | repository |",
    ] {
        assert!(reply.contains(row), "missing {row} in\n{reply}");
    }
    assert!(!reply.contains("| `model` | — |"), "the model that applies is shown: {reply}");
}

/// Each leaf key a file sets (`rules.protected_paths`), with its value as JSON; an array of tables is one key.
fn set_keys(prefix: &str, table: &toml::Table, out: &mut Vec<(String, serde_json::Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => set_keys(&path, t, out),
            other => out.push((path, serde_json::to_value(other).unwrap())),
        }
    }
}

#[test]
fn every_template_restates_the_defaults_except_what_it_suggests_on_purpose() {
    let defaults = serde_json::to_value(constitution::Constitution::default()).unwrap();
    for template in constitution::Template::ALL {
        let text = template.text();
        let parsed = serde_json::to_value(constitution::parse(Origin::Repo, &text).unwrap()).unwrap();
        let mut set = Vec::new();
        set_keys("", &text.parse::<toml::Table>().unwrap(), &mut set);
        for (key, _) in set.iter().filter(|(k, _)| !constitution::templates::SUGGESTED.contains(&k.as_str())) {
            let default = key.split('.').fold(&defaults, |v, part| &v[part]);
            let written = key.split('.').fold(&parsed, |v, part| &v[part]);
            assert_eq!(written, default, "the {} template's `{key}` differs from the default", template.name());
        }
    }
}

#[test]
fn the_command_line_and_a_comment_take_the_template_the_same_way() {
    use foreman::decide::{Command, Template, command::parse_line};
    for line in [
        "/foreman constitution init rust",
        "/foreman constitution init --template rust",
        "/foreman constitution init --template=rust",
    ] {
        let parsed = parse_line(line, "foreman").unwrap().parsed;
        assert_eq!(parsed, Ok(Command::Constitution { init: Some(Template::Rust) }), "{line}");
    }
}
