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
        /// that differs from the recorded one is still refused, and a host a `@cert-authority`
        /// line covers must present a certificate (its raw key is never recorded).
        AcceptNew = "accept-new",
        /// Accept any key (a changed one with a warning); nothing is recorded.
        Off = "off",
    }
}

/// Which ssh-agent a target's keys come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Agent {
    /// The run's agent (`$SSH_AUTH_SOCK`, see `TransportOptions::agent_socket`).
    #[default]
    Default,
    /// `IdentityAgent none`: no agent.
    Disabled,
    /// The agent listening on this socket.
    Socket(PathBuf),
}

/// Everything the transport needs to reach one destination and log in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// What messages and logs call the destination (the inventory member's name).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The remote user to log in as.
    pub user: String,
    /// Private keys to authenticate with, tried in order (the inventory's `identity_file`, else
    /// ssh_config's `IdentityFile`s that exist). Empty → the keys held by ssh-agent, then
    /// [`Target::default_identities`].
    pub identities: Vec<PathBuf>,
    /// OpenSSH's default identities (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`, those that
    /// exist), tried after the agent's keys when `identities` is empty. One that cannot be
    /// loaded (encrypted without a passphrase, unreadable) is skipped, not an error.
    pub default_identities: Vec<PathBuf>,
    /// ssh_config `IdentitiesOnly yes`: with `identities`, never ask the agent (fleetauth never
    /// does when identities are set, so this is recorded for `inventory check`).
    pub identities_only: bool,
    /// ssh_config `CertificateFile`s: user certificates offered (before the plain key) with the
    /// identity whose public key they certify, as is `K-cert.pub` beside an identity file `K`.
    /// One that is missing or unparseable is skipped with a warning, as OpenSSH does.
    pub certificate_files: Vec<PathBuf>,
    /// Local known_hosts file vouching for the host's key (and receiving it under `accept-new`).
    pub known_hosts: PathBuf,
    /// Further user known_hosts files ssh_config names (`UserKnownHostsFile` after the first),
    /// and its `GlobalKnownHostsFile`s: recorded for `inventory check`, not consulted.
    pub other_known_hosts: Vec<PathBuf>,
    /// ssh_config `HostKeyAlias`: the name host keys are looked up (and recorded) under in
    /// known_hosts, instead of `host` and `port`.
    pub host_key_alias: Option<String>,
    /// The `ProxyJump` as written (inventory or ssh_config, e.g. `bastion,ops@jump2:2222`); what
    /// the transport uses is [`Target::jumps`], resolved from it.
    pub proxy_jump: Option<String>,
    /// The jump hosts this target is reached through, first hop first (empty: direct). Each hop
    /// is a complete target of its own (address, user, identities, known_hosts, checking mode,
    /// deadline); its own `jumps` are empty, the chain being this list. A target with a
    /// `proxy_jump` but no `jumps` was never resolved, and the transport refuses it.
    pub jumps: Vec<Target>,
    pub host_key_checking: HostKeyChecking,
    /// Which ssh-agent offers keys when no identity file is set (ssh_config `IdentityAgent`).
    pub agent: Agent,
    /// ssh_config `ServerAliveInterval` (non-zero) and `ServerAliveCountMax`: probe a silent
    /// server every interval, give up after that many unanswered probes. None: fleetauth's
    /// default (every 15 s, 3 probes).
    pub server_alive: Option<(Duration, usize)>,
    /// Deadline for connecting: TCP and the server's first byte, then key exchange and
    /// authentication, each within it (see `Transport::connect`).
    pub connect_timeout: Duration,
}

impl Target {
    /// This target and every jump host it is reached through.
    pub fn with_hops(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(self).chain(self.jumps.iter())
    }

    /// `user@host:port`, as a hop is named in messages.
    pub fn user_addr(&self) -> String {
        format!("{}@{}", self.user, self.addr())
    }

    /// `host:port`, as messages name the endpoint.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The name and port under which known_hosts vouches for this target: `HostKeyAlias` (as
    /// OpenSSH does, without the port) or the host and port.
    pub fn known_hosts_name(&self) -> (&str, u16) {
        match &self.host_key_alias {
            Some(alias) => (alias, 22),
            None => (&self.host, self.port),
        }
    }
}
