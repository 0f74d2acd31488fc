//! How the console's log viewer reads session log lines: Claude Code's stream-json events as readable steps,
//! errors marked, a running session's figures counted.

use foreman::console::logview::{MAX_STEP_CHARS, figures, line};

const CLAUDE: &str = r#"{"ts":"t","kind":"start","repo":"acme/widgets","issue":1}
{"ts":"t","kind":"agent","event":{"type":"system","subtype":"init"}}
{"ts":"t","kind":"agent","event":{"type":"assistant","message":{"content":[{"type":"text","text":"Reading the code."},{"type":"tool_use","name":"Read","input":{"file_path":"src/lib.rs"}}]}}}
{"ts":"t","kind":"agent","event":{"type":"user","message":{"content":[{"type":"tool_result","content":"no such file","is_error":true}]}}}
{"ts":"t","kind":"agent","event":{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"ls"}}]}}}
{"ts":"t","kind":"agent","event":{"type":"result","subtype":"success","is_error":false,"result":"Done.","total_cost_usd":0.0123}}
"#;

#[test]
fn claude_events_read_as_steps_and_errors_are_marked() {
    let lines: Vec<_> = CLAUDE.lines().enumerate().map(|(i, raw)| line(i + 1, raw)).collect();
    assert_eq!(lines[0].steps[0].title, "session started");
    assert!(lines[1].steps.is_empty(), "the init event is not a step");
    let said: Vec<_> = lines[2].steps.iter().map(|s| (s.kind, s.title.as_str())).collect();
    assert_eq!(said, [("message", "agent"), ("tool", "Read")]);
    assert!(lines[2].steps[1].text.contains("src/lib.rs"));
    assert!(lines[3].error && lines[3].steps[0].title == "tool error");
    assert!(!lines[5].error && lines[5].steps[0].text == "Done.");
    // Raw text lines (the command backend) and unreadable ones.
    let plain = line(1, r#"{"ts":"t","kind":"agent","line":"compiling"}"#);
    assert_eq!((plain.steps[0].kind, plain.steps[0].text.as_str(), plain.error), ("message", "compiling", false));
    assert!(line(1, "not json").error);
    // A long message is clipped for the Human view; the Events view keeps the line.
    let long = format!(r#"{{"ts":"t","kind":"agent","line":"{}"}}"#, "x".repeat(MAX_STEP_CHARS + 10));
    let l = line(1, &long);
    assert_eq!(l.steps[0].text.chars().count(), MAX_STEP_CHARS + 1);
    assert_eq!(l.raw, long);
}

#[test]
fn a_running_sessions_figures_are_counted_from_its_log() {
    let f = figures(CLAUDE);
    assert_eq!((f.lines, f.turns, f.tool_calls, f.errors), (6, 2, 2, 1));
    assert_eq!(f.cost_usd, Some(0.0123));
}
