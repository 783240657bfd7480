//! SSH transport. The rest of fleetauth depends only on the [`Transport`] and [`Session`]
//! traits: connect to a member, run a command with a deadline, feed it stdin. The russh
//! implementation lives in `client.rs`; `known_hosts.rs` parses known_hosts files once per run.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretSlice;

use crate::inventory::Member;

pub mod client;
pub mod known_hosts;

pub use client::{RusshTransport, SetupError, TransportOptions};

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
    #[error(
        "host key changed for {host}: known_hosts has {expected}, server offered {got} — refusing (possible man-in-the-middle; if the member was rebuilt, remove the old key with `ssh-keygen -R {host}`)"
    )]
    HostKeyChanged {
        host: String,
        expected: String,
        got: String,
    },
    #[error(
        "host key for {host} is not in known_hosts (server offered {fingerprint}); add it, or opt in with host_key_checking = \"accept-new\""
    )]
    HostKeyUnknown { host: String, fingerprint: String },
    #[error("host key for {host} is revoked in known_hosts ({fingerprint})")]
    HostKeyRevoked { host: String, fingerprint: String },
    #[error("network error: {0}")]
    Network(String),
    #[error("ssh protocol error: {0}")]
    Protocol(String),
}

impl SshError {
    /// Short machine-readable class for reports: refused, timeout, auth, host_key, network.
    pub fn class(&self) -> &'static str {
        match self {
            SshError::Refused(_) => "refused",
            SshError::Timeout { .. } => "timeout",
            SshError::Auth(_) => "auth",
            SshError::HostKeyChanged { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::HostKeyRevoked { .. } => "host_key",
            SshError::Network(_) | SshError::Protocol(_) => "network",
        }
    }
}

/// Opens sessions to members. One implementation per run holds shared state (known_hosts,
/// loaded identities, the agent connection).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Connect and authenticate, within the member's `connect_timeout`.
    async fn connect(&self, member: &Member) -> Result<Box<dyn Session>, SshError>;
}

/// One authenticated connection to one member.
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

    /// Politely disconnect.
    async fn close(&self);
}
