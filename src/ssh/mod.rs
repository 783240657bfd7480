//! SSH transport. The rest of fleetauth depends only on the [`Transport`] and [`Session`]
//! traits: connect to a [`Target`], run a command with a deadline, feed it stdin. The ssh layer
//! knows nothing of the inventory: callers describe each destination as a [`Target`].
//!
//! The russh implementation, one concern per module:
//! - `target.rs`: [`Target`] and [`HostKeyChecking`], what the transport needs about one
//!   destination;
//! - `transport.rs`: [`RusshTransport`], what a run prepares once and shares (options, setup
//!   errors, the [`Transport`] impl);
//! - `connect.rs`: dialling, retry with backoff, banner watch, handshake, error translation;
//! - `config.rs`: the russh config, pinned algorithms and host-key preference;
//! - `auth.rs`: identity files, passphrases, ssh-agent;
//! - `jump.rs`: jump hosts (ProxyJump): tunnels through bastions, shared bastion connections;
//! - `host_key.rs`: the connection handler judging (and learning) host keys;
//! - `session.rs`: the [`Session`] impl: exec, dialogs, output collection;
//! - `interactive.rs`: [`Interactive`], a command the client talks with while it runs (a login);
//! - `known_hosts.rs`: parses known_hosts files once per run and answers lookups.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretSlice;

use crate::row::Reason;

mod auth;
mod config;
mod connect;
mod host_key;
mod interactive;
mod jump;
pub mod known_hosts;
mod pace;
mod session;
mod target;
mod transport;

pub use auth::read_certificate;
pub use interactive::{Chunk, Ending, Interactive, InteractiveOptions};
pub use session::OUTPUT_CAP;
pub use target::{Agent, HostKeyChecking, Target};
pub use transport::{
    DEFAULT_PASSPHRASE_ENV, GLOBAL_KNOWN_HOSTS, RusshTransport, SetupError, TransportOptions,
};

/// What a finished remote command produced.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit status, if the command exited (None when killed by a signal).
    pub exit: Option<u32>,
    /// Signal name when the command was killed by one.
    pub signal: Option<String>,
}

/// Bytes fed to a remote command's stdin, then EOF.
pub enum Input<'a> {
    None,
    Plain(&'a [u8]),
    /// A secret: exposed only when written to the channel, never logged.
    Secret(&'a SecretSlice<u8>),
}

/// Computes a [`Dialog`]'s answer from the command's stdout so far.
pub type Answer<'a> = Box<dyn FnOnce(&[u8]) -> Vec<u8> + Send + 'a>;

/// The client's side of [`Session::exec_dialog`].
pub struct Dialog<'a> {
    /// The bytes on stdout that ask the question.
    pub ask: &'a [u8],
    pub answer: Answer<'a>,
}

/// Why a member could not be reached or a command did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    #[error("connection refused ({0})")]
    Refused(String),
    #[error("{phase} timed out after {}", humantime::format_duration(*after))]
    Timeout {
        phase: &'static str,
        after: Duration,
    },
    #[error("authentication failed: {0}")]
    Auth(String),
    /// `file:line` is the known_hosts line holding the old key: the remedy edits that file,
    /// which is the inventory's `known_hosts` (or ssh_config's), not necessarily ~/.ssh's.
    #[error(
        "host key changed for {host}: {}:{line} has {expected}, server offered {got} — refusing (possible man-in-the-middle; if the member was rebuilt, remove the old key with `ssh-keygen -R {} -f {}`)",
        file.display(),
        crate::shell::quote(host),
        crate::shell::quote(&file.to_string_lossy())
    )]
    HostKeyChanged {
        host: String,
        expected: String,
        got: String,
        file: std::path::PathBuf,
        line: usize,
    },
    /// `cert_authority`: where known_hosts trusts a certificate authority for the host
    /// (`path:line`), when it does; the advice is then to have the server present a certificate,
    /// never `accept-new` (pinning a raw key would bypass the CA).
    #[error("{}", unknown_host_key(host, fingerprint, cert_authority.as_deref()))]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        cert_authority: Option<String>,
    },
    /// The server presented a host certificate that known_hosts' `@cert-authority` lines do
    /// not vouch for; `why` says which check failed.
    #[error("host certificate for {host} (key {fingerprint}) refused: {why}")]
    HostCertificate {
        host: String,
        fingerprint: String,
        why: String,
    },
    #[error("host key for {host} is revoked in known_hosts ({fingerprint})")]
    HostKeyRevoked { host: String, fingerprint: String },
    /// Reaching a jump host (or opening a channel through it) failed; `hop` names it as
    /// written in ProxyJump and where it resolved to.
    #[error("jump host {hop}: {error}")]
    Jump { hop: String, error: Box<SshError> },
    #[error("network error: {0}")]
    Network(String),
    #[error("ssh protocol error: {0}")]
    Protocol(String),
}

impl SshError {
    /// Why the member counts as unreachable, for reports.
    pub fn reason(&self) -> Reason {
        match self {
            SshError::Refused(_) => Reason::Refused,
            SshError::Timeout { .. } => Reason::Timeout,
            SshError::Auth(_) => Reason::Auth,
            SshError::HostKeyChanged { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::HostCertificate { .. }
            | SshError::HostKeyRevoked { .. } => Reason::HostKey,
            SshError::Jump { .. } => Reason::Jump,
            SshError::Network(_) | SshError::Protocol(_) => Reason::Network,
        }
    }
}

/// [`SshError::HostKeyUnknown`]'s message.
fn unknown_host_key(host: &str, fingerprint: &str, cert_authority: Option<&str>) -> String {
    match cert_authority {
        None => format!(
            "host key for {host} is not in known_hosts (server offered {fingerprint}); add it, or opt in with host_key_checking = \"accept-new\""
        ),
        Some(line) => format!(
            "host key for {host} is not in known_hosts (server offered the plain key {fingerprint}, no certificate); known_hosts trusts a certificate authority for {host} ({line}), so the server should present a host certificate signed by it (`HostCertificate` in its sshd_config)"
        ),
    }
}

/// Opens sessions to targets. One implementation per run holds shared state (known_hosts,
/// loaded identities, the agent connection).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Connect and authenticate, within the target's `connect_timeout`.
    async fn connect(&self, target: &Target) -> Result<Box<dyn Session>, SshError>;
}

/// One authenticated connection to one target.
#[async_trait]
pub trait Session: Send + Sync {
    /// Run `command` (a complete, already-quoted shell command line) in one exec channel, feed
    /// it `stdin` then EOF, and collect its output until it exits or `deadline` passes
    /// (→ `SshError::Timeout { phase: "command", .. }`). Several calls may run concurrently.
    async fn exec(
        &self,
        command: &str,
        stdin: Input<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError>;

    /// Like [`Session::exec`], but the command asks the client a question half-way: stdin is
    /// written without EOF; when stdout first contains `ask`, `answer` is called with the stdout
    /// so far and what it returns is written, then EOF. A command that ends without asking just
    /// ends. Closing stdin is how the command learns the client is gone: end of input is never
    /// taken for an answer.
    async fn exec_dialog(
        &self,
        command: &str,
        stdin: Input<'_>,
        dialog: Dialog<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError>;

    /// Start `command` (a complete, already-quoted shell command line) in its own channel,
    /// optionally on a pty, and hand back an [`Interactive`]: its output as lines while it runs,
    /// a way to write a secret line to its stdin later, and an end (close, drop, or
    /// `opts.deadline`) that ends the remote process. A transport that cannot do this says so.
    async fn exec_interactive(
        &self,
        command: &str,
        opts: InteractiveOptions,
    ) -> Result<Interactive, SshError> {
        let _ = (command, opts);
        Err(SshError::Protocol(
            "this transport cannot run interactive commands".to_string(),
        ))
    }

    /// Politely disconnect.
    async fn close(&self);
}
