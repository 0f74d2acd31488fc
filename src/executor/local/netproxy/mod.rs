//! The agent's network policy, enforced outside its sandbox: an allowlisting HTTP(S) proxy on a Unix socket,
//! and the bridge that carries the agent's TCP connections to it from inside the sandbox.
//!
//! With `agent.network = "allowlist"` the sandbox has a network namespace of its own (`bwrap --unshare-net`:
//! a loopback interface and no route out). Its way out is:
//!
//! ```text
//! agent ──TCP──▶ 127.0.0.1:<port> ── foreman sandbox-bridge ──▶ <session>/proxy.sock ──▶ NetProxy ──TCP──▶ host:port
//!        (HTTPS_PROXY)            (inside the sandbox)       (bind-mounted Unix socket)  (Foreman, outside)
//! ```
//!
//! - [`NetProxy::bind`] (in Foreman) listens on the session's socket, reads each request (HTTP/1.1 `CONNECT
//!   host:port`, or an absolute-form `GET http://host:port/path`), decides against the session's
//!   [`Allowlist`], resolves and connects itself, and reports every decision as a [`ProxyEvent`] for the
//!   session log. A refusal is answered `403` with a one-line reason.
//! - [`bridge`] (`foreman sandbox-bridge`, hidden) runs first inside the sandbox: it listens on loopback,
//!   relays each connection to the socket, runs the agent and exits with its status.
//!
//! What this does not stop: a `CONNECT` tunnel carries TLS the proxy cannot read, so an allowed host is
//! reached with whatever the agent sends it (a request for another virtual host behind the same CDN address
//! included); and DNS answers for an allowed name are trusted.

pub mod allowlist;
pub mod bridge;
mod proxy;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use allowlist::{ANTHROPIC_API_HOST, Allowlist, BARE_PORTS, Host, default_allowed_hosts};
pub use proxy::{NetProxy, ProxyEvent};

/// `agent.network`: what the agent's sandbox can reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network, unfiltered (default). An agent can send the repository's contents anywhere.
    #[default]
    Open,
    /// No network at all: a namespace with loopback only and no proxy.
    None,
    /// Only the `host:port` targets in `agent.allowed_hosts`, through [`NetProxy`].
    Allowlist,
}

/// The `agent.network` and `agent.allowed_hosts` keys, for a table that embeds them.
///
/// `allowed_hosts` entries: `host`, `host:port`, `*.domain`, IP literals; see [`allowlist`]. Default
/// [`default_allowed_hosts`] (`["api.anthropic.com"]`); a list set by the operator replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// `open` (default), `none` or `allowlist`.
    pub network: NetworkMode,
    /// The targets an `allowlist` network lets through. Ignored for `open` and `none`.
    pub allowed_hosts: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { network: NetworkMode::Open, allowed_hosts: default_allowed_hosts() }
    }
}

impl NetworkConfig {
    /// Checks `allowed_hosts` (always, so a bad entry is found before someone switches to `allowlist`) and
    /// returns the parsed list. The error names the key and entry: `agent.allowed_hosts[2]: …`.
    pub fn validate(&self) -> Result<Allowlist, String> {
        Allowlist::parse(&self.allowed_hosts, "agent.allowed_hosts")
    }
}

/// The proxy's default bound on the request head (start line and headers), in bytes. A CONNECT or a
/// proxied GET from an HTTP client is well under 8 KiB; twice that leaves room for long cookies or tokens
/// while a client that streams headers cannot make the proxy hold more. Past it: `431` and the connection
/// closes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The proxy's default time for a request head to arrive, counted from when the proxy starts reading it: the
/// connection's accept, or the end of the previous response on a kept-alive connection. Over a local Unix socket a client writes its head
/// at once; ten seconds only fail a client that stalls on purpose, and also close idle kept-alive
/// connections (Node's undici closes its own after 4 s). Past it the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's default idle limit per connection: closed when no byte has moved either way for this long,
/// tunnels included. Longer than the longest silence an honest client sees: a non-streaming Messages API
/// call may take up to 10 minutes (the API asks for streaming beyond that), and a package download or a
/// `git fetch` sends bytes continuously. It reclaims the slots of connections the agent abandoned.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The proxy's default time to resolve a target and open the TCP connection to it. TCP's SYN retries reach
/// 7 s for one lost packet; past 15 s the agent gets `504` with the reason rather than a hanging request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The proxy's default cap on open connections per session (tunnels, forwarded requests and idle kept-alive
/// connections alike). A package manager opens at most a few dozen at once (npm: 15 sockets per host by
/// default, cargo: 2 per host for HTTP/2 multiplexing); 128 leaves room, and bounds the file descriptors
/// (two per tunnel) and buffers one sandbox can hold in Foreman. Past it: `503` and the connection closes.
/// The bridge applies the same cap to its own relays.
pub const MAX_CONNECTIONS: usize = 128;

/// The proxy's limits: [`Default`] gives the documented constants above; tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyLimits {
    /// [`MAX_HEADER_BYTES`]. At least 8192 (hyper's smallest read buffer).
    pub max_header_bytes: usize,
    /// [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: MAX_HEADER_BYTES,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_deserialise_with_their_defaults_and_validate_names_the_entry() {
        let c: NetworkConfig = toml::from_str("").unwrap();
        assert_eq!(c, NetworkConfig::default());
        assert_eq!(c.network, NetworkMode::Open);
        assert!(c.validate().is_ok());
        let c: NetworkConfig = toml::from_str(
            "network = \"allowlist\"\nallowed_hosts = [\"api.anthropic.com\", \"*.npmjs.org\", \"x:y\"]",
        )
        .unwrap();
        assert_eq!(c.network, NetworkMode::Allowlist);
        let e = c.validate().unwrap_err();
        assert!(e.starts_with("agent.allowed_hosts[2]: "), "{e}");
        let e = toml::from_str::<NetworkConfig>("network = \"closed\"").unwrap_err().to_string();
        assert!(e.contains("open") && e.contains("allowlist"), "{e}");
        let c: NetworkConfig = toml::from_str("network = \"none\"").unwrap();
        assert_eq!(c.network, NetworkMode::None);
    }
}
