//! `agent.allowed_hosts`: which `host:port` targets the network proxy lets through.
//!
//! An entry is one of
//!
//! - a host name, `registry.npmjs.org`: that name exactly, on ports 443 and 80 ([`BARE_PORTS`]);
//! - a host name and port, `git.example.com:8443`: that name on that port only;
//! - a wildcard, `*.example.com` (optionally with `:port`): any name *below* `example.com` (`a.example.com`,
//!   `a.b.example.com`), not `example.com` itself, which needs its own entry;
//! - an IP literal, `127.0.0.1:8080`, `[::1]:8080` (or bare, for ports 443 and 80): that address only.
//!
//! Names compare case-insensitively and without a trailing dot. A target given as an IP literal matches only an
//! IP-literal entry for the same address: a listed name never lets its addresses through, and no wildcard
//! matches an address. Resolution happens in the proxy, after the decision, so the decision is over the
//! name the agent asked for.

use std::fmt;
use std::net::IpAddr;

/// The ports an entry without `:port` allows: HTTPS and HTTP. Any other port must be listed as `host:port`,
/// so that listing a host does not open its every service (an SSH or database port, or, for a loopback
/// address, Foreman's own server).
pub const BARE_PORTS: [u16; 2] = [443, 80];

/// The Anthropic Messages API host, the default of `agent.allowed_hosts`: the Claude Code CLI needs it and
/// nothing else (<https://docs.anthropic.com/en/api/overview>).
pub const ANTHROPIC_API_HOST: &str = "api.anthropic.com";

/// The default of `agent.allowed_hosts`: `["api.anthropic.com"]`. Setting the key replaces it: an operator
/// who adds package registries lists the API host too (or leaves it out when the agent talks to another
/// endpoint, e.g. `ANTHROPIC_BASE_URL` on a gateway).
pub fn default_allowed_hosts() -> Vec<String> {
    vec![ANTHROPIC_API_HOST.to_owned()]
}

/// A parsed `agent.allowed_hosts`. Build it with [`Allowlist::parse`]; ask it with [`Allowlist::check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    host: Pattern,
    /// `None`: [`BARE_PORTS`].
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// A lower-case name without a trailing dot.
    Name(String),
    /// `*.example.com`, kept as `.example.com`.
    Below(String),
    Ip(IpAddr),
}

/// A target the agent asked for, normalised: a lower-case name without a trailing dot, or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower case, no trailing dot.
    Name(String),
    /// An IP literal (`[…]` removed for IPv6).
    Ip(IpAddr),
}

impl Host {
    /// Parses the host part of a request target (`example.com`, `EXAMPLE.com.`, `127.0.0.1`, `[::1]`).
    /// Errors (a one-line reason) on an empty host or characters no DNS name has.
    pub fn parse(host: &str) -> Result<Host, String> {
        let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Some(v6) = unbracketed {
            return v6.parse().map(Host::Ip).map_err(|_| format!("'{host}' is not an IP address"));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if !is_dns_name(&name) {
            return Err(format!("'{host}' is not a host name"));
        }
        Ok(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Labels of letters, digits, `-` and `_` (some registries' CDN names have one), separated by single dots,
/// each at most 63 bytes, 253 in all.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Allowlist {
    /// Parses the entries of the configuration key `key` (e.g. `agent.allowed_hosts`). The error names the
    /// entry and says what is wrong: `agent.allowed_hosts[2]: 'https://x.org' is a URL; write the host (x.org)`.
    pub fn parse(hosts: &[String], key: &str) -> Result<Allowlist, String> {
        let entries = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| parse_entry(h).map_err(|e| format!("{key}[{i}]: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist { entries })
    }

    /// Whether `host:port` may be reached. The error is a one-line reason for the refusal, for the agent's
    /// 403 and the session log.
    pub fn check(&self, host: &Host, port: u16) -> Result<(), String> {
        let allowed = self.entries.iter().any(|e| {
            let port_ok = match e.port {
                Some(p) => p == port,
                None => BARE_PORTS.contains(&port),
            };
            port_ok
                && match (&e.host, host) {
                    (Pattern::Name(n), Host::Name(h)) => n == h,
                    (Pattern::Below(suffix), Host::Name(h)) => h.len() > suffix.len() && h.ends_with(suffix.as_str()),
                    (Pattern::Ip(a), Host::Ip(b)) => a == b,
                    _ => false,
                }
        });
        if allowed { Ok(()) } else { Err(format!("{host}:{port} is not in agent.allowed_hosts")) }
    }

    /// True when no entry is listed (every target is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_entry(raw: &str) -> Result<Entry, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty entry".into());
    }
    if let Some((scheme, rest)) = s.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        return Err(format!("'{raw}' is a URL ({scheme}://…); write the host ({host})"));
    }
    if s.contains(['/', '?', '#', '@']) || s.contains(char::is_whitespace) {
        return Err(format!("'{raw}' is not a host or host:port"));
    }
    // Split off a port: `[v6]:port`, `name:port`; a bare IPv6 address has several colons and no port.
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(|| format!("'{raw}': '[' without ']'"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| format!("'{raw}': expected ':port' after ']'"))?),
        };
        (format!("[{addr}]"), port)
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').expect("one colon");
        (h.to_owned(), Some(p))
    } else {
        (s.to_owned(), None)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("'{raw}': the port must be a number from 1 to 65535")),
        },
    };
    let pattern = if let Some(below) = host.strip_prefix("*.") {
        let below = below.strip_suffix('.').unwrap_or(below).to_ascii_lowercase();
        if !is_dns_name(&below) {
            return Err(format!("'{raw}': '{below}' is not a host name"));
        }
        if !below.contains('.') {
            return Err(format!("'{raw}' matches a whole top-level domain; list a domain below it"));
        }
        if below.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("'{raw}': a wildcard cannot match IP addresses; list each address"));
        }
        Pattern::Below(format!(".{below}"))
    } else if host.contains('*') {
        return Err(format!("'{raw}': a wildcard is only allowed as the first label ('*.example.com')"));
    } else {
        match Host::parse(&host).map_err(|e| format!("'{raw}': {e}"))? {
            Host::Name(n) => Pattern::Name(n),
            Host::Ip(ip) => Pattern::Ip(ip),
        }
    };
    Ok(Entry { host: pattern, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(hosts: &[&str]) -> Allowlist {
        Allowlist::parse(&hosts.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "agent.allowed_hosts").unwrap()
    }

    fn ok(l: &Allowlist, host: &str, port: u16) -> bool {
        l.check(&Host::parse(host).unwrap(), port).is_ok()
    }

    #[test]
    fn names_match_exactly_and_case_insensitively_on_the_bare_ports() {
        let l = list(&["api.anthropic.com", "Registry.NPMJS.org."]);
        assert!(ok(&l, "api.anthropic.com", 443));
        assert!(ok(&l, "API.Anthropic.COM.", 80));
        assert!(ok(&l, "registry.npmjs.org", 443));
        assert!(!ok(&l, "api.anthropic.com", 22));
        assert!(!ok(&l, "x.api.anthropic.com", 443));
        assert!(!ok(&l, "anthropic.com", 443));
        assert!(!ok(&l, "api.anthropic.com.evil.org", 443));
        let e = l.check(&Host::parse("evil.org").unwrap(), 443).unwrap_err();
        assert_eq!(e, "evil.org:443 is not in agent.allowed_hosts");
    }

    #[test]
    fn a_port_restricts_the_entry_to_that_port() {
        let l = list(&["git.example.com:8443", "127.0.0.1:3000", "[::1]:3001"]);
        assert!(ok(&l, "git.example.com", 8443));
        assert!(!ok(&l, "git.example.com", 443));
        assert!(ok(&l, "127.0.0.1", 3000));
        assert!(!ok(&l, "127.0.0.1", 3001));
        assert!(ok(&l, "[::1]", 3001));
        assert!(!ok(&l, "[::1]", 3000));
    }

    #[test]
    fn wildcards_match_names_below_the_domain_only() {
        let l = list(&["*.pythonhosted.org", "*.example.com:8080"]);
        assert!(ok(&l, "files.pythonhosted.org", 443));
        assert!(ok(&l, "a.b.PythonHosted.org", 443));
        assert!(!ok(&l, "pythonhosted.org", 443));
        assert!(!ok(&l, "evilpythonhosted.org", 443));
        assert!(ok(&l, "x.example.com", 8080));
        assert!(!ok(&l, "x.example.com", 443));
    }

    #[test]
    fn ip_literals_pass_only_when_listed() {
        let l = list(&["localhost:3000", "*.example.com"]);
        assert!(ok(&l, "localhost", 3000));
        assert!(!ok(&l, "127.0.0.1", 3000), "a listed name never lets an address through");
        assert!(!ok(&l, "[::1]", 3000));
        let l = list(&["10.0.0.1"]);
        assert!(ok(&l, "10.0.0.1", 443));
        assert!(!ok(&l, "10.0.0.2", 443));
        assert!(!ok(&l, "10.0.0.1", 3000));
    }

    #[test]
    fn nothing_listed_refuses_everything() {
        let l = list(&[]);
        assert!(l.is_empty());
        assert!(!ok(&l, "api.anthropic.com", 443));
    }

    #[test]
    fn bad_entries_name_the_key_and_index() {
        let bad = |hosts: &[&str]| {
            Allowlist::parse(&hosts.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "agent.allowed_hosts")
                .unwrap_err()
        };
        let e = bad(&["api.anthropic.com", "x.org", "https://pypi.org/simple"]);
        assert!(e.starts_with("agent.allowed_hosts[2]: "), "{e}");
        assert!(e.contains("write the host (pypi.org)"), "{e}");
        for (entry, says) in [
            ("", "empty"),
            ("*", "wildcard"),
            ("*.com", "top-level"),
            ("a.*.com", "first label"),
            ("*.10.0.0", "IP addresses"),
            ("x.org:0", "port"),
            ("x.org:99999", "port"),
            ("x.org:http", "port"),
            ("x.org/path", "host or host:port"),
            ("user@x.org", "host or host:port"),
            ("bad_host!.org", "not a host name"),
            ("[::1", "without ']'"),
            ("[zz]:80", "not an IP address"),
        ] {
            let e = bad(&[entry]);
            assert!(e.starts_with("agent.allowed_hosts[0]: ") && e.contains(says), "{entry}: {e}");
        }
    }

    #[test]
    fn the_default_is_the_anthropic_api_host() {
        let l = Allowlist::parse(&default_allowed_hosts(), "agent.allowed_hosts").unwrap();
        assert!(ok(&l, "api.anthropic.com", 443));
        assert!(!ok(&l, "statsig.anthropic.com", 443));
    }
}
