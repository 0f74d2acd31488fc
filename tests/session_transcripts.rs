//! The stream-json parser over every real transcript in vendor/agents/claude-code/ (see SOURCES.md there):
//! each one parses line by line, yields its session id, turns, tools and cost, and classifies as recorded.

use std::path::Path;

use foreman::session::agent::claude::stream::{RunResult, Transcript};
use jiff::Timestamp;
use jiff::tz::TimeZone;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/agents/claude-code");

/// What each transcript must classify as. A transcript added to the folder without a line here fails the test.
fn expected(name: &str) -> Option<&'static str> {
    Some(match name {
        "auth_invalid_api_key_401_after_retries.jsonl" => "authentication",
        "auth_not_logged_in.jsonl" => "authentication",
        "auth_oauth_token_expired_401.jsonl" => "authentication",
        "connection_failed_after_retries.jsonl" => "overloaded",
        "error_during_execution_resume_unknown_session.jsonl" => "error",
        "error_max_turns.jsonl" => "max_turns",
        "overloaded_529_after_retries.jsonl" => "overloaded",
        "rate_limit_429_after_retries.jsonl" => "rate_limited",
        "success_tools_permission_denied.jsonl" => "success",
        "usage_headers_with_api_key_429_after_retries.jsonl" => "rate_limited",
        "usage_limit_5h_subscriber.jsonl" => "usage_limit",
        "usage_limit_weekly_subscriber_tz_new_york.jsonl" => "usage_limit",
        "usage_warning_allowed_warning_subscriber.jsonl" => "success",
        "v1.0.x_error_during_execution_excerpt.jsonl" => "error",
        "v1.0.x_success_long_session_with_denied_bash.jsonl" => "success",
        "v2.1.15_success_tools_permission_denials.jsonl" => "success",
        "v2.1.178_success_subagent_compute.jsonl" => "success",
        "v2.1.178_success_subagent_tools_ratelimit.jsonl" => "success",
        "v2.1.7_success_no_tools.jsonl" => "success",
        _ => return None,
    })
}

fn kind(r: &RunResult) -> &'static str {
    match r {
        RunResult::Success { .. } => "success",
        RunResult::UsageLimit { .. } => "usage_limit",
        RunResult::RateLimited { .. } => "rate_limited",
        RunResult::Overloaded { .. } => "overloaded",
        RunResult::Authentication { .. } => "authentication",
        RunResult::MaxTurns { .. } => "max_turns",
        RunResult::MaxCost { .. } => "max_cost",
        RunResult::Error { .. } => "error",
        RunResult::NoResult => "no_result",
    }
}

fn parse(path: &Path) -> Transcript {
    let mut t = Transcript::default();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        t.push_line(line);
    }
    t
}

#[test]
fn every_transcript_parses_and_classifies_as_recorded() {
    let now: Timestamp = "2026-11-20T23:26:07Z".parse().unwrap();
    let mut seen = 0;
    for sub in ["captured-2.1.329", "from-repos"] {
        let mut entries: Vec<_> =
            std::fs::read_dir(Path::new(DIR).join(sub)).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")) {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let want = expected(&name).unwrap_or_else(|| panic!("{name} has no expected classification"));
            let t = parse(&path);
            assert_eq!(t.bad_lines, 0, "{name}");
            assert!(t.session_id.as_deref().is_some_and(|s| !s.is_empty()), "{name}: session id");
            assert!(t.result.is_some(), "{name}: result line");
            let got = t.classify(now, &TimeZone::UTC);
            assert_eq!(kind(&got), want, "{name}: {got:?}");
            seen += 1;
        }
    }
    assert_eq!(seen, 19, "all transcripts were read");
}

#[test]
fn turns_tools_cost_and_reset_times_come_out_of_the_stream() {
    let cap = Path::new(DIR).join("captured-2.1.329");
    let t = parse(&cap.join("success_tools_permission_denied.jsonl"));
    assert_eq!(t.tools.get("Read"), Some(&1));
    assert_eq!(t.tools.get("Bash"), Some(&1));
    assert_eq!(t.turns, 2, "two API turns: tool uses, then the final text");
    assert_eq!(t.cost_usd(), Some(0.0084));

    let now: Timestamp = "2026-11-20T23:26:07Z".parse().unwrap();
    let t = parse(&cap.join("usage_limit_5h_subscriber.jsonl"));
    let RunResult::UsageLimit { resets_at, text } = t.classify(now, &TimeZone::UTC) else { panic!() };
    assert_eq!(resets_at, Some(Timestamp::from_second(1795227967).unwrap()));
    assert_eq!(text, "You've hit your 5-hour limit · resets 2:26am (UTC)");
    let t = parse(&cap.join("usage_limit_weekly_subscriber_tz_new_york.jsonl"));
    let RunResult::UsageLimit { resets_at, .. } = t.classify(now, &TimeZone::UTC) else { panic!() };
    assert_eq!(resets_at, Some(Timestamp::from_second(1795227975).unwrap()));

    // Without the structured epoch, the text alone still gives the reset time.
    let mut t = Transcript::default();
    t.push_line(r#"{"subtype":"success","result":"You've hit your 5-hour limit · resets 2:26am (UTC)","is_error":true,"type":"result","session_id":"s"}"#);
    let RunResult::UsageLimit { resets_at, .. } = t.classify(now, &TimeZone::UTC) else { panic!() };
    assert_eq!(resets_at, Some("2026-11-21T02:26:00Z".parse().unwrap()));

    // Subagent turns are not the main agent's turns; their tools still count.
    let t = parse(&Path::new(DIR).join("from-repos/v2.1.178_success_subagent_tools_ratelimit.jsonl"));
    assert!(t.tools.contains_key("Task") || t.tools.contains_key("Agent"), "{:?}", t.tools);
    let long = parse(&Path::new(DIR).join("from-repos/v1.0.x_success_long_session_with_denied_bash.jsonl"));
    assert!(long.turns > 50 && long.tool_count() > 50, "{} turns, {} tools", long.turns, long.tool_count());
    assert!((long.cost_usd().unwrap() - 2.4637935).abs() < 1e-6);
}

#[test]
fn keys_in_any_order_unknown_types_and_junk_lines_are_tolerated() {
    let mut t = Transcript::default();
    t.push_line("not json at all");
    t.push_line(r#"{"some_new_type":true,"type":"brand_new_event"}"#);
    t.push_line(r#"{"session_id":"abc","subtype":"init","type":"system","model":"m"}"#);
    t.push_line(r#"{"message":{"content":[{"name":"Edit","type":"tool_use","id":"t1","input":{}}],"id":"m1"},"type":"assistant","parent_tool_use_id":null}"#);
    t.push_line(
        r#"{"total_cost_usd":0.5,"is_error":false,"result":"ok","num_turns":1,"type":"result","subtype":"success"}"#,
    );
    assert_eq!(t.bad_lines, 1);
    assert_eq!(t.session_id.as_deref(), Some("abc"));
    assert_eq!(t.turns, 1);
    assert_eq!(t.tools.get("Edit"), Some(&1));
    assert_eq!(t.classify(Timestamp::now(), &TimeZone::UTC), RunResult::Success { text: "ok".into() });
}

#[test]
fn the_main_agents_text_is_a_progress_line_and_a_subagents_is_not() {
    use foreman::session::agent::claude::stream::LineEvent;
    let mut t = Transcript::default();
    let main = r#"{"message":{"content":[{"type":"text","text":"\n  Let me read the parser first.\nThen the tests."},{"name":"Read","type":"tool_use","id":"t1","input":{}}],"id":"m1"},"type":"assistant","parent_tool_use_id":null}"#;
    assert_eq!(
        t.push_line(main),
        [
            LineEvent::Turn(1),
            LineEvent::Text { line: "Let me read the parser first.".into() },
            LineEvent::ToolUse { name: "Read".into() }
        ]
    );
    let sub = r#"{"message":{"content":[{"type":"text","text":"sub work"}],"id":"m2"},"type":"assistant","parent_tool_use_id":"t1"}"#;
    assert_eq!(t.push_line(sub), [LineEvent::Other]);
    let blank = r#"{"message":{"content":[{"type":"text","text":"  \n "}],"id":"m1"},"type":"assistant","parent_tool_use_id":null}"#;
    assert_eq!(t.push_line(blank), [LineEvent::Other]);
}
