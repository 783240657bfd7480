//! [`RusshTransport`]: the russh implementation of [`Transport`], and the state a run shares.
//!
//! **Everything that is the same for every target is prepared once**, in
//! [`RusshTransport::new`]: known_hosts files are parsed (`known_hosts.rs`), identity files
//! decrypted, prompting at most once per file (`auth.rs`), and the russh `Config` built
//! (`config.rs`). `connect` then does only network work (`connect.rs`), so a run over hundreds
//! of members costs one TCP + SSH handshake each and nothing more. Whatever can be wrong with
//! that preparation is a [`SetupError`], reported before any member is contacted.

use std::collections::HashMap;

use super::pace::Sessions;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use russh::client;

use super::auth::Credentials;
use super::config::Configs;
use super::jump::JumpPools;
use super::known_hosts::KnownHostsStore;
use super::session::RusshSession;
use super::{HostKeyChecking, Session, SshError, Target, Transport};

/// Environment variable read for identity-file passphrases unless overridden.
pub const DEFAULT_PASSPHRASE_ENV: &str = "FLEETAUTH_SSH_PASSPHRASE";
/// The system-wide known_hosts file OpenSSH consults for every host.
pub const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// How [`RusshTransport`] finds secrets it may need.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Environment variable holding the passphrase of encrypted identity files.
    /// Default [`DEFAULT_PASSPHRASE_ENV`].
    pub passphrase_env: String,
    /// May prompt for a passphrase (hidden) when stdin is a terminal. Default false.
    pub interactive: bool,
    /// ssh-agent socket used for targets without `identity_file`. Default: `$SSH_AUTH_SOCK` at
    /// the time `TransportOptions::default()` runs (explicit so tests need no process-global env).
    pub agent_socket: Option<PathBuf>,
    /// Consulted for every target in addition to its own known_hosts file, when it exists.
    /// Default [`GLOBAL_KNOWN_HOSTS`].
    pub global_known_hosts: Option<PathBuf>,
    /// At most this many handshakes (key exchange + authentication, the CPU-heavy part of a
    /// connection) computing at once. A handshake holds a slot only while it has the server's
    /// bytes to work on, never while it waits on the network (`pace.rs`), so a member that
    /// never speaks, or is far away, holds none. None: unbounded.
    pub max_handshakes: Option<usize>,
    /// Members connected at once (dialling, handshaking or running commands): adaptive, from
    /// the first number (`-j`) up to the second, see `pace.rs`. None: unbounded.
    pub sessions: Option<(usize, usize)>,
    /// At most this many members at once over one connection to a jump host; more open another
    /// connection (see `jump.rs`). Default [`DEFAULT_JUMP_CHANNELS`].
    pub jump_channels: usize,
}

/// Handshakes in progress at once with one sshd (members that are accounts or ports of one
/// host): sshd's `MaxStartups` (default `10:30:100`) starts dropping unauthenticated
/// connections beyond 10 (and counts a connection until it has heard that its authentication
/// finished, a little after the client has), and since `-j` no longer bounds handshakes waiting on the network, a
/// fleet of many accounts on one shared host would otherwise open them all at once.
pub const PER_SSHD_HANDSHAKES: usize = 6;

/// Members carried at once by one connection to a jump host, by default. A bastion's sshd
/// serves each connection with one process (one core), which relays every byte of every member
/// behind it: a few dozen members per connection keep that process from being the bottleneck
/// while a fleet of hundreds still costs the bastion a handful of connections.
pub const DEFAULT_JUMP_CHANNELS: usize = 32;

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            passphrase_env: DEFAULT_PASSPHRASE_ENV.to_string(),
            interactive: false,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            global_known_hosts: Some(PathBuf::from(GLOBAL_KNOWN_HOSTS)),
            max_handshakes: None,
            sessions: None,
            jump_channels: DEFAULT_JUMP_CHANNELS,
        }
    }
}

/// Why the transport could not be prepared (before any member is contacted). The message says
/// which file is at fault and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub(super) String);

impl SetupError {
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// SSH transport on russh. Build one per run with [`RusshTransport::new`] and share it.
pub struct RusshTransport {
    pub(super) known_hosts: Arc<KnownHostsStore>,
    pub(super) credentials: Credentials,
    configs: Configs,
    warned_checking_off: AtomicBool,
    /// Free handshake slots (`TransportOptions::max_handshakes`).
    pub(super) handshakes: Option<Arc<tokio::sync::Semaphore>>,
    /// Members connected at once (`TransportOptions::sessions`).
    pub(super) sessions: Option<Arc<Sessions>>,
    /// Handshakes in progress per sshd (`host:port`), see [`PER_SSHD_HANDSHAKES`].
    pub(super) per_sshd: std::sync::Mutex<HashMap<(String, u16), Arc<tokio::sync::Semaphore>>>,
    /// Connections to jump hosts, shared by the members behind them.
    pub(super) jump_pools: JumpPools,
    pub(super) jump_channels: usize,
}

impl std::fmt::Debug for RusshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RusshTransport")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl RusshTransport {
    /// Prepare to connect to `targets`: parse every distinct known_hosts file once (plus the
    /// global one if present), load every distinct identity file once (asking for a passphrase
    /// if one is encrypted, see [`TransportOptions`]), and warn once if any target has host key
    /// checking off.
    pub fn new(targets: &[Target], opts: TransportOptions) -> Result<RusshTransport, SetupError> {
        // Jump hosts are targets too: their known_hosts files and identities are prepared with
        // the members'.
        let all: Vec<Target> = targets
            .iter()
            .flat_map(Target::with_hops)
            .cloned()
            .collect();
        let targets = all.as_slice();
        let global = opts.global_known_hosts.as_deref().filter(|p| p.exists());
        let known_hosts =
            KnownHostsStore::load(targets.iter().map(|t| t.known_hosts.as_path()), global)
                .map_err(|e| SetupError(e.to_string()))?;
        let credentials = Credentials::load(targets, &opts)?;
        let transport = RusshTransport {
            known_hosts: Arc::new(known_hosts),
            credentials,
            configs: Configs::default(),
            warned_checking_off: AtomicBool::new(false),
            handshakes: opts
                .max_handshakes
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
            sessions: opts
                .sessions
                .map(|(floor, ceiling)| Sessions::new(floor, ceiling)),
            per_sshd: Default::default(),
            jump_pools: JumpPools::default(),
            jump_channels: opts.jump_channels.max(1),
        };
        transport.warn_if_checking_off(targets);
        for target in targets {
            transport.config_for(target);
        }
        Ok(transport)
    }

    /// The gate of handshakes in progress with `target`'s sshd.
    pub(super) fn sshd_gate(&self, target: &Target) -> Arc<tokio::sync::Semaphore> {
        let mut gates = self.per_sshd.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry((target.host.clone(), target.port))
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_SSHD_HANDSHAKES)))
            .clone()
    }

    /// Warn, once per transport, that `targets` with host key checking off can be impersonated.
    pub(super) fn warn_if_checking_off(&self, targets: &[Target]) {
        let off: Vec<&str> = targets
            .iter()
            .filter(|t| t.host_key_checking == HostKeyChecking::Off)
            .map(|t| t.name.as_str())
            .collect();
        if off.is_empty() || self.warned_checking_off.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut names = off.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        if off.len() > 5 {
            names.push_str(", …");
        }
        let msg = format!(
            "WARNING: host key checking is OFF for {} member(s) ({names}): their identity is not \
             verified, so anyone on the network path can impersonate them and receive what \
             fleetauth sends, API keys included. Use host_key_checking = \"accept-new\" or \
             \"strict\".",
            off.len()
        );
        tracing::warn!("{msg}");
        eprintln!("{msg}");
    }

    /// The shared config whose host-key preference suits what known_hosts records for `target`
    /// (host certificates too when a `@cert-authority` line covers it).
    pub(super) fn config_for(&self, target: &Target) -> Arc<client::Config> {
        let (host, port) = target.known_hosts_name();
        let recorded = self
            .known_hosts
            .recorded_algorithms(&target.known_hosts, host, port);
        let certificates = !self
            .known_hosts
            .authorities(&target.known_hosts, host, port)
            .is_empty();
        self.configs
            .for_recorded(&recorded, certificates, target.server_alive)
    }
}

#[async_trait]
impl Transport for RusshTransport {
    async fn connect(&self, target: &Target) -> Result<Box<dyn Session>, SshError> {
        if let Some(jump) = &target.proxy_jump
            && target.jumps.is_empty()
        {
            // Never dial directly what the operator routes through a bastion.
            return Err(SshError::Protocol(format!(
                "ProxyJump `{jump}` of host {} was not resolved to jump hosts; \
                 fleetauth does not connect it directly",
                target.host
            )));
        }
        match self.connect_retrying(target, self.sessions.as_ref()).await {
            Ok((handle, slot)) => Ok(Box::new(RusshSession::new(
                handle,
                target,
                target.addr(),
                slot,
            ))),
            Err(e) => {
                tracing::debug!(member = %target.name, "connect failed: {e}");
                Err(e)
            }
        }
    }
}
