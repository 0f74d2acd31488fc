//! The server's agent limits are ceilings: an organisation's or repository's constitution can only tighten
//! them. Anyone who can push to a repository can edit its `.github/foreman.toml`; the operator's limits on
//! what a session may spend, how long it may run and which tools it may use must not be theirs to raise.
//!
//! How each limit combines (the server's value is the ceiling, the file's the request):
//! - numbers (`max_cost_usd`, `max_turns`, `timeout_secs`, `stall_timeout_secs`, `max_output_bytes`,
//!   `[limits] daily_cost_usd`): the smaller one;
//! - `allowed_tools`: the file's tools that the server allows, exactly or as a narrowing of a tool the server
//!   allows whole (`Bash(cargo test:*)` is within `Bash`; `Bash` is not within `Bash(cargo test:*)`);
//! - `disallowed_tools`: the union of both lists.
//!
//! [`Effective::apply_ceilings`] applies them to an effective constitution and remembers, for the
//! `/foreman constitution` reply ([`super::render::effective_markdown`]), which values are the server's and
//! which a file asked to raise (capped). The session applies them again to the agent configuration
//! (`AgentConfig::overridden` in the session), so a constitution that bypassed this module still could
//! not raise a limit.

use serde::Serialize;

use super::load::{Capped, Effective, Origin};

/// The server's agent limits, as ceilings for constitutions. `None` (and an empty `disallowed_tools`) is no
/// ceiling: what a file sets applies as it is. [`Default`] has no ceilings; the session's agent
/// configuration gives the server's (`AgentConfig::ceilings`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ceilings {
    /// `agent.backend`: the backend this server runs (not a ceiling: a file may only name it). Shown by
    /// `/foreman constitution` where no file sets it.
    pub backend: Option<String>,
    /// `agent.model`: the server's model (not a ceiling: a file may choose another). Shown where no file
    /// sets it; `None`: the backend's own default.
    pub model: Option<String>,
    /// `agent.max_cost_usd`: US dollars one session may cost.
    pub max_cost_usd: Option<f64>,
    /// `agent.max_turns`: agent turns in one session.
    pub max_turns: Option<u32>,
    /// `agent.timeout_secs`: wall-clock seconds of one session.
    pub timeout_secs: Option<f64>,
    /// `agent.stall_timeout_secs`: seconds without output (the constitution's `stall_timeout_secs`).
    pub stall_timeout_secs: Option<f64>,
    /// `agent.max_output_bytes`: bytes of output of one session.
    pub max_output_bytes: Option<u64>,
    /// `agent.allowed_tools`: the tools a file may choose from. An empty list is a ceiling too: the server
    /// passes no `--allowedTools`, so a file can allow nothing more.
    pub allowed_tools: Option<Vec<String>>,
    /// `agent.disallowed_tools`: denied whatever a file says; a file can add more.
    pub disallowed_tools: Vec<String>,
    /// `agent.daily_cost_usd`: US dollars one repository's sessions may cost per UTC day.
    pub daily_cost_usd: Option<f64>,
    /// The server's `[triggers]` (not ceilings: a file may set any of them): the values of the keys no file
    /// sets, shown by `/foreman constitution` as the server's. `None`: the built-in defaults.
    pub triggers: Option<crate::decide::DecideConfig>,
    // `agent.network` joins here with the network policy: a file may only narrow it (`open` > `allowlist` >
    // `none`, and an allowlist within the server's), combined in `Effective::apply_ceilings` and in
    // `AgentConfig::overridden` like the limits above.
}

impl Ceilings {
    /// The server's ceiling at the constitution's dotted `key` (`agent.max_cost_usd`, `limits.daily_cost_usd`
    /// …), as JSON, when it has one there: what a file can tighten but never raise. `agent.disallowed_tools`
    /// is the server's list, denied whatever a file says.
    pub fn ceiling_at(&self, key: &str) -> Option<serde_json::Value> {
        match key {
            "agent.backend" | "agent.model" => None,
            _ => self.value_at(key),
        }
    }

    /// The server's value at the constitution's dotted `key` (`agent.model`, `agent.max_cost_usd`,
    /// `limits.daily_cost_usd` …), as JSON, when it has one there.
    pub fn value_at(&self, key: &str) -> Option<serde_json::Value> {
        let v = match key {
            "agent.backend" => serde_json::to_value(self.backend.as_ref()?),
            "agent.model" => serde_json::to_value(self.model.as_ref()?),
            "agent.max_cost_usd" => serde_json::to_value(self.max_cost_usd?),
            "agent.max_turns" => serde_json::to_value(self.max_turns?),
            "agent.timeout_secs" => serde_json::to_value(self.timeout_secs?),
            "agent.stall_timeout_secs" => serde_json::to_value(self.stall_timeout_secs?),
            "agent.max_output_bytes" => serde_json::to_value(self.max_output_bytes?),
            "agent.allowed_tools" => serde_json::to_value(self.allowed_tools.as_ref()?),
            "agent.disallowed_tools" if !self.disallowed_tools.is_empty() => {
                serde_json::to_value(&self.disallowed_tools)
            }
            "limits.daily_cost_usd" => serde_json::to_value(self.daily_cost_usd?),
            _ => return None,
        };
        v.ok()
    }
}

/// The tools of `asked` that `server` allows: a tool the server lists as written, or a narrowing
/// (`Tool(specifier)`) of a tool the server lists whole. Order of `asked`, without repeats.
pub fn tools_within(server: &[String], asked: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tool in asked {
        let tool = tool.trim();
        let base = tool.split_once('(').map_or(tool, |(b, _)| b.trim());
        let allowed = server.iter().any(|s| s.trim() == tool || s.trim() == base);
        if allowed && !out.iter().any(|t| t == tool) {
            out.push(tool.to_owned());
        }
    }
    out
}

/// The union of two tool lists: `first`, then what `then` adds, without repeats.
pub fn tools_union(first: &[String], then: &[String]) -> Vec<String> {
    let mut out = first.to_vec();
    for t in then {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

impl Effective {
    /// Holds the `[agent]` limits and `[limits] daily_cost_usd` to the server's `ceilings` (see the module
    /// docs) and records the outcome:
    /// - an `[agent]` number set above its ceiling is unset (the server's value applies) and listed in
    ///   [`Effective::capped`] with what was asked and by which file; one left unset is the server's
    ///   ([`Origin::Server`]);
    /// - `allowed_tools` keeps only what the server allows, listing the file's request as capped when a
    ///   tool was dropped; `disallowed_tools` becomes the union;
    /// - `daily_cost_usd` becomes the smaller of the file's and the server's (the server's when unset).
    ///
    /// The ceilings are kept in [`Effective::ceilings`] to show the server's values.
    pub fn apply_ceilings(&mut self, ceilings: &Ceilings) {
        let agent = &mut self.constitution.agent;
        let mut held = Held { origins: &mut self.origins, capped: &mut self.capped };
        held.number("agent.max_cost_usd", &mut agent.max_cost_usd, ceilings.max_cost_usd, |v| v);
        held.number("agent.max_turns", &mut agent.max_turns, ceilings.max_turns.map(f64::from), f64::from);
        held.number("agent.timeout_secs", &mut agent.timeout_secs, ceilings.timeout_secs, |v| v as f64);
        held.number("agent.stall_timeout_secs", &mut agent.stall_timeout_secs, ceilings.stall_timeout_secs, |v| {
            v as f64
        });
        held.number(
            "agent.max_output_bytes",
            &mut agent.max_output_bytes,
            ceilings.max_output_bytes.map(|b| b as f64),
            |v| v as f64,
        );
        if let Some(server) = &ceilings.allowed_tools {
            const KEY: &str = "agent.allowed_tools";
            match &agent.allowed_tools {
                Some(asked) => {
                    let within = tools_within(server, asked);
                    if within.len() < asked.len() {
                        held.cap(KEY, serde_json::json!(asked));
                    }
                    agent.allowed_tools = Some(within);
                }
                None => {
                    held.origins.insert(KEY.into(), Origin::Server);
                }
            }
        }
        if !ceilings.disallowed_tools.is_empty() {
            const KEY: &str = "agent.disallowed_tools";
            agent.disallowed_tools = tools_union(&ceilings.disallowed_tools, &agent.disallowed_tools);
            held.origins.entry(KEY.into()).or_insert(Origin::Server);
        }
        if let Some(ceiling) = ceilings.daily_cost_usd {
            const KEY: &str = "limits.daily_cost_usd";
            let daily = &mut self.constitution.limits.daily_cost_usd;
            match *daily {
                Some(asked) if asked <= ceiling => {}
                Some(asked) => {
                    held.cap(KEY, serde_json::json!(asked));
                    *daily = Some(ceiling);
                }
                None => {
                    *daily = Some(ceiling);
                    held.origins.insert(KEY.into(), Origin::Server);
                }
            }
        }
        if let Some(base) = &ceilings.triggers {
            self.apply_server_triggers(base);
        }
        self.ceilings = Some(ceilings.clone());
    }
}

/// The origins and capped requests being recorded by [`Effective::apply_ceilings`].
struct Held<'a> {
    origins: &'a mut std::collections::BTreeMap<String, Origin>,
    capped: &'a mut std::collections::BTreeMap<String, Capped>,
}

impl Held<'_> {
    /// Records that the file that set `key` asked for `asked`, beyond the server's ceiling: the value is the
    /// server's now.
    fn cap(&mut self, key: &str, asked: serde_json::Value) {
        let by = self.origins.get(key).copied().unwrap_or(Origin::Repo);
        self.capped.insert(key.to_owned(), Capped { asked, by });
        self.origins.insert(key.to_owned(), Origin::Server);
    }

    /// An `[agent]` number: unset above its ceiling (the server's value applies), the server's when unset.
    fn number<T: Copy + Serialize>(
        &mut self,
        key: &str,
        slot: &mut Option<T>,
        ceiling: Option<f64>,
        as_f64: impl Fn(T) -> f64,
    ) {
        let Some(ceiling) = ceiling else { return };
        match *slot {
            Some(asked) if as_f64(asked) <= ceiling => {}
            Some(asked) => {
                self.cap(key, serde_json::json!(asked));
                *slot = None;
            }
            None => {
                self.origins.insert(key.to_owned(), Origin::Server);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tools_are_kept_only_within_the_servers() {
        let server = list(&["Bash", "Edit", "Read", "WebFetch(domain:docs.rs)"]);
        assert_eq!(
            tools_within(&server, &list(&["Bash(cargo test:*)", "Edit", "Write", "WebFetch", "Edit"])),
            list(&["Bash(cargo test:*)", "Edit"]),
            "a narrowing of an allowed tool stays; a tool the server lacks, or wider than it allows, goes"
        );
        assert_eq!(tools_within(&server, &list(&["WebFetch(domain:docs.rs)"])), list(&["WebFetch(domain:docs.rs)"]));
        assert!(tools_within(&[], &list(&["Bash"])).is_empty(), "no server list: nothing can be added");
        assert_eq!(tools_union(&list(&["A", "B"]), &list(&["B", "C"])), list(&["A", "B", "C"]));
    }

    #[test]
    fn a_file_can_tighten_but_not_raise_and_the_origins_say_which() {
        let repo = "[agent]\nmax_cost_usd = 50.0\nmax_turns = 5\ntimeout_secs = 99999\nallowed_tools = [\"Bash\", \"WebFetch\"]\n\
                    disallowed_tools = [\"Write\"]\n[limits]\ndaily_cost_usd = 1000.0\n";
        let mut e = crate::constitution::merge(None, Some(repo)).unwrap();
        let server = Ceilings {
            backend: None,
            model: None,
            max_cost_usd: Some(10.0),
            max_turns: Some(60),
            timeout_secs: Some(3600.0),
            stall_timeout_secs: Some(600.0),
            max_output_bytes: Some(1 << 20),
            allowed_tools: Some(list(&["Bash", "Edit"])),
            disallowed_tools: list(&["WebSearch"]),
            daily_cost_usd: Some(100.0),
            triggers: None,
        };
        e.apply_ceilings(&server);
        let a = &e.constitution.agent;
        assert_eq!(a.max_cost_usd, None, "above the ceiling: the server's applies");
        assert_eq!(a.max_turns, Some(5), "below it: the repository's applies");
        assert_eq!(a.timeout_secs, None);
        assert_eq!(a.allowed_tools, Some(list(&["Bash"])));
        assert_eq!(a.disallowed_tools, list(&["WebSearch", "Write"]));
        assert_eq!(e.constitution.limits.daily_cost_usd, Some(100.0));
        for key in ["agent.max_cost_usd", "agent.timeout_secs", "agent.stall_timeout_secs", "limits.daily_cost_usd"] {
            assert_eq!(e.origin(key), Origin::Server, "{key}");
        }
        assert_eq!(e.origin("agent.max_turns"), Origin::Repo);
        assert_eq!(e.capped["agent.max_cost_usd"], Capped { asked: serde_json::json!(50.0), by: Origin::Repo });
        assert_eq!(e.capped["agent.allowed_tools"].asked, serde_json::json!(["Bash", "WebFetch"]));
        assert!(e.capped.contains_key("limits.daily_cost_usd"));
        assert!(!e.capped.contains_key("agent.max_turns"));
    }
}
