//! The server's agent limits are ceilings: a repository's (or organisation's) `.github/foreman.toml` can
//! tighten them but never raise them, whether the session reads the constitution through the cache (held to
//! the ceilings first) or the raw overrides reach [`AgentConfig::overridden`] directly.

use foreman::constitution::{self, Origin};
use foreman::session::AgentConfig;

fn tools(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The operator's configuration: a cost cap, an hour, ten minutes of silence, three tools, one denied.
fn server() -> AgentConfig {
    AgentConfig {
        max_cost_usd: Some(2.5),
        max_turns: Some(30),
        timeout_secs: 3600.0,
        stall_timeout_secs: 600.0,
        max_output_bytes: 1 << 20,
        allowed_tools: tools(&["Bash", "Edit", "Read"]),
        disallowed_tools: tools(&["WebSearch"]),
        daily_cost_usd: Some(20.0),
        ..AgentConfig::default()
    }
}

/// A repository asking for more of everything.
const GREEDY: &str = r#"
[agent]
max_cost_usd = 500.0
max_turns = 1000
timeout_secs = 86400
idle_timeout_secs = 86400
max_output_bytes = 1000000000
allowed_tools = ["Bash", "WebFetch", "Write", "Edit(src/**)"]
disallowed_tools = []

[limits]
daily_cost_usd = 10000.0
"#;

/// A repository asking for less of everything.
const MODEST: &str = r#"
[agent]
max_cost_usd = 1.0
max_turns = 5
timeout_secs = 600
idle_timeout_secs = 60
max_output_bytes = 4096
allowed_tools = ["Bash(cargo test:*)"]
disallowed_tools = ["Edit"]

[limits]
daily_cost_usd = 3.0
"#;

#[test]
fn a_repository_cannot_raise_the_servers_limits_in_the_session() {
    let server = server();
    let effective = constitution::merge(None, Some(GREEDY)).unwrap();
    // The raw overrides, as a constitution that skipped the ceilings would hand them to the session.
    let raw = server.overridden(Some(&effective.constitution.agent));
    // The overrides as the cache hands them over: held to the ceilings first.
    let mut held = effective.clone();
    held.apply_ceilings(&server.ceilings());
    let cached = server.overridden(Some(&held.constitution.agent));
    for c in [&raw, &cached] {
        assert_eq!(c.max_cost_usd, Some(2.5), "the cost cap is the server's");
        assert_eq!(c.max_turns, Some(30));
        assert_eq!(c.timeout_secs, 3600.0, "the wall time is the server's");
        assert_eq!(c.stall_timeout_secs, 600.0);
        assert_eq!(c.max_output_bytes, 1 << 20);
        assert_eq!(c.allowed_tools, tools(&["Bash", "Edit(src/**)"]), "only tools the server allows");
        assert_eq!(c.disallowed_tools, tools(&["WebSearch"]), "an empty list removes none of the server's");
    }
    assert_eq!(held.constitution.limits.daily_cost_usd, Some(20.0), "the daily cost is the server's");
    for key in ["agent.max_cost_usd", "agent.timeout_secs", "agent.allowed_tools", "limits.daily_cost_usd"] {
        assert_eq!(held.origin(key), Origin::Server, "{key}");
        assert_eq!(held.capped[key].by, Origin::Repo, "{key}");
    }
    assert_eq!(held.capped["agent.max_cost_usd"].asked, serde_json::json!(500.0));
}

#[test]
fn a_repository_can_tighten_every_limit() {
    let server = server();
    let mut effective = constitution::merge(None, Some(MODEST)).unwrap();
    effective.apply_ceilings(&server.ceilings());
    assert!(effective.capped.is_empty(), "nothing asked beyond a ceiling: {:?}", effective.capped);
    let c = server.overridden(Some(&effective.constitution.agent));
    assert_eq!(c.max_cost_usd, Some(1.0));
    assert_eq!(c.max_turns, Some(5));
    assert_eq!(c.timeout_secs, 600.0);
    assert_eq!(c.stall_timeout_secs, 60.0);
    assert_eq!(c.max_output_bytes, 4096);
    assert_eq!(c.allowed_tools, tools(&["Bash(cargo test:*)"]));
    assert_eq!(c.disallowed_tools, tools(&["WebSearch", "Edit"]));
    assert_eq!(effective.constitution.limits.daily_cost_usd, Some(3.0));
    assert_eq!(effective.origin("agent.max_cost_usd"), Origin::Repo);
}

#[test]
fn an_organisation_is_held_to_the_same_ceilings_and_the_reply_says_so() {
    let org = "[agent]\nmax_cost_usd = 99.0\n";
    let mut effective = constitution::merge(Some(org), None).unwrap();
    effective.apply_ceilings(&server().ceilings());
    assert_eq!(effective.capped["agent.max_cost_usd"].by, Origin::Org);
    let reply = constitution::effective_markdown(&effective);
    assert!(reply.contains("| `max_cost_usd` | `2.5` | server (capped: organisation asked for `99.0`) |"), "{reply}");
    assert!(reply.contains("| `timeout_secs` | `3600.0` | server |"), "unset: the server's value shows: {reply}");
    assert!(reply.contains("| `daily_cost_usd` | `20.0` | server |"), "{reply}");
}

#[test]
fn the_shipped_defaults_cap_cost_per_session_and_per_repository_per_day() {
    let d = AgentConfig::default();
    assert_eq!(d.max_cost_usd, Some(10.0));
    assert_eq!(d.daily_cost_usd, Some(100.0));
    let mut effective = constitution::merge(None, Some("[agent]\nmax_cost_usd = 11.0\n")).unwrap();
    effective.apply_ceilings(&d.ceilings());
    assert_eq!(d.overridden(Some(&effective.constitution.agent)).max_cost_usd, Some(10.0));
    assert_eq!(effective.constitution.limits.daily_cost_usd, Some(100.0));
}
