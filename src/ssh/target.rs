//! [`Target`]: one destination, as the transport sees it.
//!
//! The transport takes this plain struct rather than an inventory member so that the ssh layer
//! depends on nothing above it: whoever knows the destinations (the inventory, through
//! `Member::target`; a test; a bench) builds targets, and the transport reads nothing but what
//! is here; an inventory member holds one ([`crate::inventory::Member::ssh`]).

use std::path::PathBuf;
use std::time::Duration;

crate::spelled! {
    /// What to do with a host key that known_hosts does not vouch for (a key revoked in
    /// known_hosts is refused whatever the mode). Spelled once: the inventory's TOML value, the
    /// JSON of `inventory check` and the "accepted values" help all use these words.
    #[derive(Default)]
    pub enum HostKeyChecking {
        /// Accept only keys known_hosts lists for the host.
        #[default]
        Strict = "strict",
        /// Also accept the key of a host known_hosts has no line for, and record it there; a key
        /// that differs from the recorded one is still refused.
        AcceptNew = "accept-new",
        /// Accept any key (a changed one with a warning); nothing is recorded.
        Off = "off",
    }
}

/// Everything the transport needs to reach one destination and log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What messages and logs call the destination (the inventory member's name).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The remote user to log in as.
    pub user: String,
    /// Private key to authenticate with. None → the keys held by ssh-agent.
    pub identity_file: Option<PathBuf>,
    /// Local known_hosts file vouching for the host's key (and receiving it under `accept-new`).
    pub known_hosts: PathBuf,
    pub host_key_checking: HostKeyChecking,
    /// Deadline for connecting: TCP and the server's first byte, then key exchange and
    /// authentication, each within it (see `Transport::connect`).
    pub connect_timeout: Duration,
}

impl Target {
    /// `host:port`, as messages name the endpoint.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}
