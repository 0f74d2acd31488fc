//! The slash-command grammar: table tests, snapshots of every reply it produces, and property tests
//! (never panics; a command inside a code block, inline code, a quote or an HTML comment is never found).

use foreman::decide::command::{self, Command, CommandName, Found, ParseError};
use foreman::decide::{self, CommandPermissions, DecideConfig, Level, Snapshot};
use foreman::event;
use proptest::prelude::*;

fn summary(f: &Found) -> String {
    match &f.parsed {
        Ok(Command::Run { instructions: Some(i) }) => format!("run [{i}]"),
        Ok(c) => c.name().to_string(),
        Err(ParseError::UnknownCommand { command, did_you_mean }) => {
            format!("unknown {command} -> {}", did_you_mean.map(|c| c.to_string()).unwrap_or("-".into()))
        }
        Err(e) => format!("error: {e}"),
    }
}

fn parse(body: &str) -> Vec<String> {
    command::parse(body, "foreman-app").iter().map(summary).collect()
}

#[test]
fn grammar_table() {
    let cases: &[(&str, &[&str])] = &[
        ("/foreman run", &["run"]),
        ("/foreman run   fix the flaky test  ", &["run [fix the flaky test]"]),
        ("/FOREMAN RUN", &["run"]),
        ("  /foreman stop", &["stop"]),
        ("/foreman retry\n/foreman status\n/foreman help\n/foreman plan", &["retry", "status", "help", "plan"]),
        ("@foreman-app run", &["run"]),
        ("@foreman-app[bot] status", &["status"]),
        ("@Foreman-App help", &["help"]),
        ("@foreman run", &[]), // another app's slug
        ("@foreman-application run", &[]),
        ("/foremanrun", &[]),
        ("/foreman", &["error: no command after the prefix"]),
        ("@foreman-app", &["error: no command after the prefix"]),
        ("/foreman rnu", &["unknown rnu -> run"]),
        ("/foreman cancel", &["unknown cancel -> stop"]),
        ("/foreman stat", &["unknown stat -> status"]),
        ("/foreman deploy prod", &["unknown deploy -> -"]),
        ("/foreman stop now", &["error: 'stop' takes no arguments"]),
        ("/foreman plan it out", &["plan"]),
        ("/foreman approve\n/foreman approve it", &["approve", "error: 'approve' takes no arguments"]),
        ("text before /foreman run", &[]),
        ("- /foreman run in a list", &["run [in a list]"]),
        ("# /foreman status", &["status"]),
        ("**/foreman run**", &["run"]), // emphasis is formatting, not quoting
        ("please **do** /foreman run", &[]),
        ("a [link](https://x) /foreman run", &[]),
        ("*a*\n/foreman run", &["run"]),
        ("first line\n/foreman run\nlast line", &["run"]),
        ("GitHub sends CRLF\r\n/foreman run fix it\r\n/foreman stop\r\n", &["run [fix it]", "stop"]),
        ("```\r\n/foreman run\r\n```\r\n", &[]),
        ("hard break  \n/foreman stop", &["stop"]),
        ("```\n/foreman run\n```", &[]),
        ("~~~md\n/foreman run\n~~~", &[]),
        ("para\n\n    /foreman run", &[]),
        ("> /foreman run", &[]),
        ("> quote\n/foreman run", &[]), // a lazy continuation line is part of the quote
        ("> quote\n\n/foreman run", &["run"]),
        ("`/foreman run`", &[]),
        ("`x` /foreman run", &[]),
        ("<!-- /foreman run -->", &[]),
        ("<!--\n/foreman run\n-->\n/foreman stop", &["stop"]),
        ("text <!-- x\n/foreman run\n--> more", &[]),
        ("<details>\n/foreman run\n</details>", &[]),
        ("- > /foreman run", &[]),
        ("* ```\n  /foreman run\n  ```", &[]),
    ];
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let got = parse(input);
        let ok = got.len() == expected.len() && got.iter().zip(*expected).all(|(g, e)| g.starts_with(e));
        if !ok {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn help_text() {
    insta::assert_snapshot!("help", command::format_help("foreman", None));
}

#[test]
fn error_replies() {
    let replies: Vec<String> =
        ["/foreman", "/foreman rnu", "/foreman deploy", "/foreman stop `now`", "@foreman-app restart"]
            .iter()
            .map(|line| {
                let f = command::parse_line(line, "foreman-app").unwrap();
                format!("{line}\n=> {}", f.parsed.unwrap_err().reply(&f.line, None))
            })
            .collect();
    insta::assert_snapshot!("error_replies", replies.join("\n\n"));
    let linked = command::parse_line("/foreman x", "f")
        .unwrap()
        .parsed
        .unwrap_err()
        .reply("/foreman x", Some("https://example.org/c"));
    assert!(linked.contains("[the command reference](https://example.org/c)"), "{linked}");
    assert!(command::format_help("f", Some("https://example.org/c")).contains("(https://example.org/c)"));
}

#[test]
fn every_command_is_listed_parsed_and_has_a_permission() {
    let config = DecideConfig::default();
    for c in CommandName::ALL {
        let found = command::parse(&format!("/foreman {c}"), "foreman");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].parsed.as_ref().unwrap().name(), c);
        let _ = config.permissions.for_command(c);
        assert!(command::format_help("foreman", None).contains(c.summary()));
    }
}

/// Each command's permission is the `[triggers.permissions]` key named as the command, and the keys
/// [`CommandPermissions::entries`] names are the table's own (its serde field names): a command added
/// without a key, or a key listed under the wrong field, fails here.
#[test]
fn every_command_has_the_permission_key_named_as_it() {
    let defaults = CommandPermissions::default();
    let table = serde_json::to_value(&defaults).unwrap();
    let mut serde_keys: Vec<&str> = table.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys: Vec<&str> = defaults.entries().iter().map(|(k, _)| *k).collect();
    serde_keys.sort_unstable();
    keys.sort_unstable();
    assert_eq!(keys, serde_keys);
    for (key, _) in defaults.entries() {
        let mut p = CommandPermissions::default();
        for (k, slot) in p.entries_mut() {
            *slot = if k == key { Level::Admin } else { Level::Anyone };
        }
        let table = serde_json::to_value(&p).unwrap();
        for (k, level) in table.as_object().unwrap() {
            assert_eq!(level, if k == key { "admin" } else { "anyone" }, "{key} sets {k}");
        }
    }
    for c in CommandName::ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        let mut p = CommandPermissions::default();
        for (k, slot) in p.entries_mut() {
            *slot = if k == c.as_str() { Level::Admin } else { Level::Anyone };
        }
        for d in CommandName::ALL {
            assert_eq!(p.for_command(d), if d == c { Level::Admin } else { Level::Anyone }, "{c} / {d}");
        }
    }
}

/// docs/commands.md lists every command in its table and every permission key in its
/// `[triggers.permissions]` example.
#[test]
fn the_command_reference_lists_every_command_and_permission_key() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/commands.md")).unwrap();
    for c in CommandName::ALL {
        let listed = docs.contains(&format!("| `{c}` |")) || docs.contains(&format!("| `{c} "));
        assert!(listed, "docs/commands.md's table lacks `{c}`");
    }
    let table = &docs[docs.find("[triggers.permissions]").expect("the permissions example")..];
    for (key, level) in CommandPermissions::default().entries() {
        assert!(table.contains(&format!("\n{key} = \"{level}\"")), "docs/commands.md lacks {key} = \"{level}\"");
    }
}

/// Lines that would be commands in prose.
fn command_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/foreman run".to_owned()),
        Just("/foreman stop".to_owned()),
        Just("@foreman retry".to_owned()),
        Just("  /foreman help".to_owned()),
        Just("/foreman rnu".to_owned()),
        "[a-z ]{0,12}".prop_map(|t| format!("/foreman run {t}")),
    ]
}

/// Text without carriage returns (a line ending of its own in CommonMark).
fn text_line() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,30}", "[^\r\n]{0,20}", Just(String::new()), Just("```".to_owned()), Just("> x".to_owned())]
}

/// Lines mixing commands and text, with at least one command.
fn content() -> impl Strategy<Value = String> {
    (command_line(), prop::collection::vec(prop_oneof![command_line(), text_line()], 0..8)).prop_map(|(first, rest)| {
        let mut lines = vec![first];
        lines.extend(rest);
        lines.join("\n")
    })
}

fn longest_run(s: &str, ch: char) -> usize {
    s.split(|c| c != ch).map(str::len).max().unwrap_or(0)
}

/// `content` made invisible to the parser in one of five ways.
fn hide(content: &str, how: u8) -> Option<String> {
    Some(match how {
        0 => {
            let fence = "`".repeat(longest_run(content, '`').max(2) + 1);
            format!("intro\n\n{fence}\n{content}\n{fence}\nafter")
        }
        1 => {
            let fence = "~".repeat(longest_run(content, '~').max(2) + 1);
            format!("{fence}\n{content}\n{fence}")
        }
        2 => {
            let body: Vec<String> = content.lines().map(|l| format!("    {l}")).collect();
            format!("intro\n\n{}", body.join("\n"))
        }
        3 => {
            let body: Vec<String> = content.lines().map(|l| format!("> {l}")).collect();
            format!("{}\n\nreply to the quote", body.join("\n"))
        }
        4 => {
            if content.contains("-->") {
                return None;
            }
            format!("<!--\n{content}\n-->")
        }
        _ => {
            // Inline code needs one line and a backtick fence longer than any run inside.
            let line = content.lines().next().unwrap_or("").trim();
            let fence = "`".repeat(longest_run(line, '`') + 1);
            format!("{fence} {line} {fence} and more")
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_hidden_command_is_never_found(content in content(), how in 0u8..6) {
        prop_assume!(content.lines().count() > 0);
        if let Some(body) = hide(&content, how) {
            let found = command::parse(&body, "foreman");
            prop_assert!(found.is_empty(), "found {:?} in {:?}", found, body);
        }
    }

    #[test]
    fn the_same_content_in_prose_is_found(content in content()) {
        prop_assert!(!command::parse(&content, "foreman").is_empty(), "nothing found in {:?}", content);
    }

    #[test]
    fn the_parser_never_panics(body in any::<String>(), slug in "[ -~]{0,10}") {
        let _ = command::parse(&body, &slug);
    }

    #[test]
    fn the_decoder_never_panics(name in prop_oneof![Just("issues".to_owned()), Just("issue_comment".to_owned()), Just("projects_v2_item".to_owned()), "[a-z_]{1,20}"],
                                body in any::<Vec<u8>>()) {
        let _ = event::decode(&name, &body);
    }

    #[test]
    fn any_comment_body_gets_a_decision(body in any::<String>(), association in "[A-Z_]{0,14}") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/github/webhooks/examples/api.github.com/issue_comment/created.payload.json");
        let mut payload: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        payload["comment"]["body"] = body.into();
        payload["comment"]["author_association"] = association.into();
        let e = event::decode("issue_comment", &serde_json::to_vec(&payload).unwrap()).unwrap();
        let actions = decide::decide(&e, &DecideConfig::default(), &Snapshot::default());
        prop_assert!(!actions.is_empty());
    }
}
