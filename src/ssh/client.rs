//! The russh implementation of [`Transport`] and [`Session`].
//!
//! Why it is shaped this way:
//! - **Everything that is the same for every member is prepared once**, in
//!   [`RusshTransport::new`]: known_hosts files are parsed, identity files decrypted (prompting
//!   at most once per file), and the russh `Config` built. `connect` then does only network work,
//!   so a run over hundreds of members costs one TCP + SSH handshake each and nothing more.
//! - **One deadline covers the whole connection** (TCP connect, banner, key exchange, host key
//!   check, authentication): a member that accepts TCP and never speaks SSH cannot stall a run.
//!   A command gets its own deadline, so a dead host and a slow command are told apart.
//! - **Host keys are judged in the handler callback**, but russh turns any refusal there into a
//!   generic "unknown key" error; the handler therefore records the precise [`SshError`] in a
//!   slot it shares with `connect`, which returns that instead.
//! - **Transient refusals are retried**: sshd's `MaxStartups` (and `PerSourcePenalties`) answer
//!   excess unauthenticated connections by closing them before the SSH banner. Such a close is
//!   retried with jittered exponential backoff while the connect deadline allows; anything after
//!   the banner is a real answer and is not retried.
//! - **Algorithms are pinned** to what is both safe and cheap: ML-KEM/curve25519 key exchange
//!   (no DH group exchange: an 8192-bit group costs ~0.6 s of CPU per host), ed25519-first host
//!   keys, AEAD ciphers only. When known_hosts records only some key types for a member, those
//!   types are asked for first (as OpenSSH does), so an `ecdsa`-only entry still verifies.
//! - **A session is a shared russh `Handle`**: every `exec` opens its own channel, so callers may
//!   run several commands on one connection concurrently (sshd allows 10 by default).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{Algorithm, EcdsaCurve, HashAlg, PrivateKey, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Preferred, Sig};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::known_hosts::{self, KnownHostsStore, Verdict};
use super::{ExecOutput, Input, Session, SshError, Transport};
use crate::inventory::{HostKeyChecking, Member};

/// Environment variable read for identity-file passphrases unless overridden.
pub const DEFAULT_PASSPHRASE_ENV: &str = "FLEETAUTH_SSH_PASSPHRASE";
/// The system-wide known_hosts file OpenSSH consults for every host.
pub const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
/// Output kept per stream of one command; the rest is drained and dropped.
pub const OUTPUT_CAP: usize = 4 << 20;

const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];
const HOST_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
];
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(600);
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// How [`RusshTransport`] finds secrets it may need.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Environment variable holding the passphrase of encrypted identity files.
    /// Default [`DEFAULT_PASSPHRASE_ENV`].
    pub passphrase_env: String,
    /// May prompt for a passphrase (hidden) when stdin is a terminal. Default false.
    pub interactive: bool,
    /// ssh-agent socket used for members without `identity_file`. Default: `$SSH_AUTH_SOCK` at
    /// the time `TransportOptions::default()` runs (explicit so tests need no process-global env).
    pub agent_socket: Option<PathBuf>,
    /// Consulted for every member in addition to its own known_hosts file, when it exists.
    /// Default [`GLOBAL_KNOWN_HOSTS`].
    pub global_known_hosts: Option<PathBuf>,
    /// At most this many key exchanges + authentications at once (the CPU-heavy part of a
    /// connection). A connection waits for the server's first byte *before* taking a slot, so
    /// a member that never speaks holds no slot. None: unbounded.
    pub max_handshakes: Option<usize>,
}

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
        }
    }
}

/// Why the transport could not be prepared (before any member is contacted). The message says
/// which file is at fault and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

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
    known_hosts: Arc<KnownHostsStore>,
    identities: HashMap<PathBuf, Arc<PrivateKey>>,
    agent_socket: Option<PathBuf>,
    /// One config per distinct host-key preference order (almost always just one).
    configs: RwLock<HashMap<String, Arc<client::Config>>>,
    warned_checking_off: AtomicBool,
    handshakes: Option<Arc<tokio::sync::Semaphore>>,
}

impl std::fmt::Debug for RusshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RusshTransport")
            .field("identities", &self.identities.keys().collect::<Vec<_>>())
            .field("agent_socket", &self.agent_socket)
            .finish_non_exhaustive()
    }
}

impl RusshTransport {
    /// Prepare to connect to `members`: parse every distinct known_hosts file once (plus the
    /// global one if present), load every distinct identity file once (asking for a passphrase
    /// if one is encrypted, see [`TransportOptions`]), and warn once if any member has host key
    /// checking off.
    pub fn new(members: &[&Member], opts: TransportOptions) -> Result<RusshTransport, SetupError> {
        let global = opts.global_known_hosts.as_deref().filter(|p| p.exists());
        let known_hosts =
            KnownHostsStore::load(members.iter().map(|m| m.known_hosts.as_path()), global)
                .map_err(SetupError)?;
        let identities = load_identities(members, &opts)?;
        let transport = RusshTransport {
            known_hosts: Arc::new(known_hosts),
            identities,
            agent_socket: opts.agent_socket,
            configs: RwLock::new(HashMap::new()),
            warned_checking_off: AtomicBool::new(false),
            handshakes: opts
                .max_handshakes
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
        };
        transport.warn_if_checking_off(members);
        for member in members {
            transport.config_for(member);
        }
        Ok(transport)
    }

    fn warn_if_checking_off(&self, members: &[&Member]) {
        let off: Vec<&str> = members
            .iter()
            .filter(|m| m.host_key_checking == HostKeyChecking::Off)
            .map(|m| m.name.as_str())
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

    /// The shared config whose host-key preference suits what known_hosts records for `member`.
    fn config_for(&self, member: &Member) -> Arc<client::Config> {
        let recorded =
            self.known_hosts
                .recorded_algorithms(&member.known_hosts, &member.host, member.port);
        let order = host_key_order(&recorded);
        let key = order
            .iter()
            .map(Algorithm::as_str)
            .collect::<Vec<_>>()
            .join(",");
        if let Some(config) = read_lock(&self.configs).get(&key) {
            return config.clone();
        }
        let config = Arc::new(build_config(order));
        write_lock(&self.configs)
            .entry(key)
            .or_insert(config)
            .clone()
    }

    /// Connect attempts until one succeeds, fails for good, or no retry fits. Each attempt has
    /// two deadlines of `connect_timeout`: one for TCP and the server's first byte, one for key
    /// exchange and authentication, which start only once a handshake slot is free: waiting in
    /// our own queue is not the member being slow, and a member that never speaks holds no slot.
    async fn connect_retrying(&self, member: &Member) -> Result<RusshSession, SshError> {
        let timed_out = || SshError::Timeout {
            phase: "connect",
            after: member.connect_timeout,
        };
        let retry_until = Instant::now() + member.connect_timeout;
        let mut delay = RETRY_FIRST_DELAY;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let dialed = tokio::time::timeout(member.connect_timeout, self.dial(member)).await;
            let result = match dialed {
                Err(_) => return Err(timed_out()),
                Ok(Err(e)) => Err(e),
                Ok(Ok(stream)) => {
                    let _slot = match &self.handshakes {
                        Some(limit) => Some(
                            limit
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("semaphore never closed"),
                        ),
                        None => None,
                    };
                    match tokio::time::timeout(
                        member.connect_timeout,
                        self.handshake(member, stream),
                    )
                    .await
                    {
                        Err(_) => return Err(timed_out()),
                        Ok(r) => r,
                    }
                }
            };
            match result {
                Ok(session) => return Ok(session),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::ClosedBeforeBanner(why)) => {
                    let wait = jittered(delay);
                    if Instant::now() + wait >= retry_until {
                        return Err(SshError::Network(format!(
                            "{}:{} closed the connection before the SSH banner ({why}) on {attempts} attempt(s); \
                             the member's sshd may be throttling connections (MaxStartups, PerSourcePenalties) \
                             or this is not an SSH port",
                            member.host, member.port
                        )));
                    }
                    tracing::debug!(
                        member = %member.name,
                        attempt = attempts,
                        retry_in = ?wait,
                        "connection closed before the SSH banner ({why}); retrying"
                    );
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(RETRY_MAX_DELAY);
                }
            }
        }
    }

    /// TCP connection, then wait for the server's first byte (its banner).
    async fn dial(&self, member: &Member) -> Result<TcpStream, Attempt> {
        let target = format!("{}:{}", member.host, member.port);
        tracing::debug!(member = %member.name, %target, "connecting");
        let stream = TcpStream::connect((member.host.as_str(), member.port))
            .await
            .map_err(|e| Attempt::Fatal(tcp_error(&target, e)))?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("set_nodelay failed: {e}");
        }
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => Err(Attempt::ClosedBeforeBanner("connection closed".into())),
            Ok(_) => Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Err(Attempt::ClosedBeforeBanner(e.to_string()))
            }
            Err(e) => Err(Attempt::Fatal(tcp_error(&target, e))),
        }
    }

    /// Key exchange, host key check and authentication on a dialed connection.
    async fn handshake(&self, member: &Member, stream: TcpStream) -> Result<RusshSession, Attempt> {
        let target = format!("{}:{}", member.host, member.port);
        let banner_seen = Arc::new(AtomicBool::new(false));
        let stream = BannerWatch::new(stream, banner_seen.clone());

        if member.host_key_checking == HostKeyChecking::Off {
            self.warn_if_checking_off(&[member]);
        }
        let refusal = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            check: HostKeyCheck {
                store: self.known_hosts.clone(),
                known_hosts: member.known_hosts.clone(),
                host: member.host.clone(),
                port: member.port,
                mode: member.host_key_checking,
                member: member.name.clone(),
            },
            refusal: refusal.clone(),
        };
        let result = client::connect_stream(self.config_for(member), stream, handler).await;
        let mut handle = match result {
            Ok(handle) => handle,
            Err(e) => {
                if let Some(why) = lock(&refusal).take() {
                    return Err(Attempt::Fatal(why));
                }
                if !banner_seen.load(Ordering::SeqCst) && closed_early(&e) {
                    return Err(Attempt::ClosedBeforeBanner(e.to_string()));
                }
                return Err(Attempt::Fatal(russh_error(&target, e)));
            }
        };
        self.authenticate(&mut handle, member, &target)
            .await
            .map_err(Attempt::Fatal)?;
        Ok(RusshSession {
            handle: Arc::new(handle),
            member: member.name.clone(),
            target,
        })
    }

    async fn authenticate(
        &self,
        handle: &mut Handle<ClientHandler>,
        member: &Member,
        target: &str,
    ) -> Result<(), SshError> {
        match &member.identity_file {
            Some(path) => {
                self.authenticate_with_file(handle, member, target, path)
                    .await
            }
            None => self.authenticate_with_agent(handle, member, target).await,
        }
    }

    async fn authenticate_with_file(
        &self,
        handle: &mut Handle<ClientHandler>,
        member: &Member,
        target: &str,
        path: &Path,
    ) -> Result<(), SshError> {
        let key = self.identities.get(path).ok_or_else(|| {
            SshError::Auth(format!(
                "identity file {} was not loaded when the transport was set up; \
                 pass member {} to RusshTransport::new",
                path.display(),
                member.name
            ))
        })?;
        let hash = rsa_hash_for(handle, &key.algorithm(), target).await?;
        let result = handle
            .authenticate_publickey(&member.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(|e| russh_error(target, e))?;
        if result.success() {
            tracing::debug!(member = %member.name, method = "publickey", key = %path.display(), "authenticated");
            return Ok(());
        }
        if handle.is_closed() {
            return Err(lost_during_auth(target));
        }
        Err(SshError::Auth(format!(
            "{}@{target} refused the key in {} ({}); add its public key to the member's \
             ~/.ssh/authorized_keys or fix `user`/`identity_file` in the inventory",
            member.user,
            path.display(),
            known_hosts::fingerprint(key.public_key())
        )))
    }

    async fn authenticate_with_agent(
        &self,
        handle: &mut Handle<ClientHandler>,
        member: &Member,
        target: &str,
    ) -> Result<(), SshError> {
        let socket = self.agent_socket.as_ref().ok_or_else(|| {
            SshError::Auth(format!(
                "member {} has no identity_file and no ssh-agent is available (SSH_AUTH_SOCK is \
                 not set); set identity_file in the inventory, or start ssh-agent and ssh-add your key",
                member.name
            ))
        })?;
        let agent_error = |e: &dyn std::fmt::Display| {
            SshError::Auth(format!(
                "cannot use ssh-agent at {}: {e}; check SSH_AUTH_SOCK, or set identity_file in the inventory",
                socket.display()
            ))
        };
        let mut agent = AgentClient::connect_uds(socket)
            .await
            .map_err(|e| agent_error(&e))?;
        let identities = agent
            .request_identities()
            .await
            .map_err(|e| agent_error(&e))?;
        if identities.is_empty() {
            return Err(SshError::Auth(format!(
                "ssh-agent at {} holds no keys; ssh-add the key authorized on {target}, or set identity_file",
                socket.display()
            )));
        }
        for identity in &identities {
            let key = identity.public_key().into_owned();
            let hash = rsa_hash_for(handle, &key.algorithm(), target).await?;
            let result = match identity {
                AgentIdentity::PublicKey { .. } => {
                    handle
                        .authenticate_publickey_with(&member.user, key.clone(), hash, &mut agent)
                        .await
                }
                AgentIdentity::Certificate { certificate, .. } => {
                    handle
                        .authenticate_certificate_with(
                            &member.user,
                            certificate.clone(),
                            hash,
                            &mut agent,
                        )
                        .await
                }
            };
            match result {
                Ok(r) if r.success() => {
                    tracing::debug!(
                        member = %member.name,
                        method = "ssh-agent",
                        key = %known_hosts::fingerprint(&key),
                        "authenticated"
                    );
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(member = %member.name, "ssh-agent could not sign: {e}"),
            }
            if handle.is_closed() {
                return Err(lost_during_auth(target));
            }
        }
        Err(SshError::Auth(format!(
            "{}@{target} refused all {} key(s) offered by ssh-agent; add one of them to the \
             member's ~/.ssh/authorized_keys or fix `user` in the inventory",
            member.user,
            identities.len()
        )))
    }
}

/// A connection that died while keys were being tried: a network fault, not a refused key,
/// so the operator is not sent to authorized_keys for nothing.
fn lost_during_auth(target: &str) -> SshError {
    SshError::Network(format!(
        "{target} closed the connection during authentication"
    ))
}

#[async_trait]
impl Transport for RusshTransport {
    async fn connect(&self, member: &Member) -> Result<Box<dyn Session>, SshError> {
        match self.connect_retrying(member).await {
            Ok(session) => Ok(Box::new(session)),
            Err(e) => {
                tracing::debug!(member = %member.name, "connect failed: {e}");
                Err(e)
            }
        }
    }
}

/// Why one connection attempt failed.
enum Attempt {
    /// The server hung up before sending its SSH identification: worth another try.
    ClosedBeforeBanner(String),
    Fatal(SshError),
}

/// An authenticated connection; every `exec` opens its own channel on the shared handle.
struct RusshSession {
    handle: Arc<Handle<ClientHandler>>,
    member: String,
    target: String,
}

#[async_trait]
impl Session for RusshSession {
    async fn exec(
        &self,
        command: &str,
        stdin: Input<'_>,
        deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        let until = Instant::now() + deadline;
        let timed_out = || SshError::Timeout {
            phase: "command",
            after: deadline,
        };
        let channel = match tokio::time::timeout_at(until, self.handle.channel_open_session()).await
        {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(self.channel_error(e)),
            Ok(Ok(channel)) => channel,
        };
        tracing::debug!(member = %self.member, channel = %channel.id(), "exec");
        tracing::trace!(member = %self.member, "command: {command}");
        let (mut rx, tx) = channel.split();
        let work = async {
            tx.exec(true, command)
                .await
                .map_err(|e| self.channel_error(e))?;
            run_command(&mut rx, &tx, stdin, &self.target).await
        };
        match tokio::time::timeout_at(until, work).await {
            Ok(result) => result,
            Err(_) => {
                // Best effort: TERM reaches the command unless sshd forces the command; closing
                // the channel releases it on our side either way.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = tx.signal(Sig::TERM).await;
                    let _ = tx.close().await;
                })
                .await;
                tracing::debug!(member = %self.member, "command timed out after {deadline:?}");
                Err(timed_out())
            }
        }
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

impl RusshSession {
    fn channel_error(&self, e: russh::Error) -> SshError {
        match e {
            russh::Error::ChannelOpenFailure(reason) => SshError::Protocol(format!(
                "{} refused a new session channel ({reason:?}); too many commands at once on one \
                 connection? (sshd MaxSessions, default 10)",
                self.target
            )),
            russh::Error::SendError | russh::Error::Disconnect | russh::Error::HUP => {
                SshError::Network(format!("the connection to {} is closed", self.target))
            }
            other => russh_error(&self.target, other),
        }
    }
}

/// Feed stdin (then EOF) while collecting output until the channel closes. Output is read
/// concurrently so a command that writes a lot before reading its stdin cannot deadlock us.
async fn run_command(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<client::Msg>,
    stdin: Input<'_>,
    target: &str,
) -> Result<ExecOutput, SshError> {
    let write = async {
        match stdin {
            Input::None => {}
            Input::Plain(bytes) => tx.data(bytes).await?,
            Input::Secret(secret) => tx.data(secret.expose_secret()).await?,
        }
        tx.eof().await
    };
    let read = collect_output(rx, target);
    tokio::pin!(write, read);
    let mut writing = true;
    loop {
        tokio::select! {
            output = &mut read => return output,
            written = &mut write, if writing => {
                writing = false;
                if let Err(e) = written {
                    // The command may legitimately exit without reading its stdin.
                    tracing::debug!("stdin not fully delivered to {target}: {e}");
                }
            }
        }
    }
}

async fn collect_output(rx: &mut ChannelReadHalf, target: &str) -> Result<ExecOutput, SshError> {
    let mut out = ExecOutput::default();
    let mut dropped = [0usize; 2];
    let mut closed = false;
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => push_capped(&mut out.stdout, &data, &mut dropped[0]),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                push_capped(&mut out.stderr, &data, &mut dropped[1])
            }
            ChannelMsg::ExitStatus { exit_status } => out.exit = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                out.signal = Some(signal_name_of(&signal_name))
            }
            ChannelMsg::Failure => {
                return Err(SshError::Protocol(format!(
                    "{target} refused to run the command (exec request denied)"
                )));
            }
            ChannelMsg::Close => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    if dropped != [0, 0] {
        tracing::warn!(
            "output from {target} exceeded {} MiB per stream; dropped {} bytes of stdout and {} of stderr",
            OUTPUT_CAP >> 20,
            dropped[0],
            dropped[1]
        );
    }
    if !closed && out.exit.is_none() && out.signal.is_none() {
        return Err(SshError::Network(format!(
            "the connection to {target} was lost while the command was running"
        )));
    }
    Ok(out)
}

fn push_capped(buf: &mut Vec<u8>, data: &[u8], dropped: &mut usize) {
    let room = OUTPUT_CAP.saturating_sub(buf.len());
    let take = room.min(data.len());
    buf.extend_from_slice(&data[..take]);
    *dropped += data.len() - take;
}

fn signal_name_of(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    }
    .to_string()
}

/// russh callbacks for one connection: host key verification and a debug line after kex.
struct ClientHandler {
    check: HostKeyCheck,
    /// Why the host key was refused, for `connect` to report instead of russh's generic error.
    refusal: Arc<Mutex<Option<SshError>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.check.judge(&server_key.public_key()) {
            Ok(()) => Ok(true),
            Err(why) => {
                tracing::debug!(member = %self.check.member, "host key refused: {why}");
                *lock(&self.refusal) = Some(why);
                Ok(false)
            }
        }
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(
            member = %self.check.member,
            kex = names.kex.as_ref(),
            host_key = names.key.as_str(),
            cipher = names.cipher.as_ref(),
            "key exchange done"
        );
        Ok(())
    }
}

/// Everything needed to judge one member's host key.
struct HostKeyCheck {
    store: Arc<KnownHostsStore>,
    known_hosts: PathBuf,
    host: String,
    port: u16,
    mode: HostKeyChecking,
    member: String,
}

impl HostKeyCheck {
    fn judge(&self, key: &PublicKey) -> Result<(), SshError> {
        let name = known_hosts::lookup_name(&self.host, self.port);
        let got = known_hosts::fingerprint(key);
        let verdict = self
            .store
            .check(&self.known_hosts, &self.host, self.port, key);
        match (verdict, self.mode) {
            (Verdict::Known, _) => Ok(()),
            (Verdict::Revoked { path, line }, _) => {
                tracing::warn!(
                    "member {}: host key {got} is revoked at {}:{line}",
                    self.member,
                    path.display()
                );
                Err(SshError::HostKeyRevoked {
                    host: name,
                    fingerprint: got,
                })
            }
            (Verdict::Changed { path, line, .. }, HostKeyChecking::Off) => {
                tracing::warn!(
                    "member {}: host key {got} differs from {}:{line}; accepted because host_key_checking = \"off\"",
                    self.member,
                    path.display()
                );
                Ok(())
            }
            (Verdict::Changed { expected, .. }, _) => Err(SshError::HostKeyChanged {
                host: name,
                expected: known_hosts::fingerprint(&expected),
                got,
            }),
            (Verdict::Unknown, HostKeyChecking::Off) => Ok(()),
            (Verdict::Unknown, HostKeyChecking::Strict) => Err(SshError::HostKeyUnknown {
                host: name,
                fingerprint: got,
            }),
            (Verdict::Unknown, HostKeyChecking::AcceptNew) => self.learn(key, name, got),
        }
    }

    fn learn(&self, key: &PublicKey, name: String, got: String) -> Result<(), SshError> {
        match self
            .store
            .learn(&self.known_hosts, &self.host, self.port, key)
        {
            Ok(Verdict::Known) => {
                tracing::info!(
                    "member {}: added host key {got} for {name} to {}",
                    self.member,
                    self.known_hosts.display()
                );
                Ok(())
            }
            Ok(Verdict::Changed { expected, .. }) => Err(SshError::HostKeyChanged {
                host: name,
                expected: known_hosts::fingerprint(&expected),
                got,
            }),
            Ok(Verdict::Revoked { .. }) => Err(SshError::HostKeyRevoked {
                host: name,
                fingerprint: got,
            }),
            Ok(Verdict::Unknown) => Err(SshError::HostKeyUnknown {
                host: name,
                fingerprint: got,
            }),
            Err(why) => {
                tracing::warn!(
                    "member {}: {why}; trusting host key {got} for this run only",
                    self.member
                );
                Ok(())
            }
        }
    }
}

/// Load each distinct identity file once. Encrypted files are decrypted with a passphrase
/// from `opts.passphrase_env` if set, else from a hidden prompt when allowed; a passphrase that
/// worked is tried first on the next encrypted file.
fn load_identities(
    members: &[&Member],
    opts: &TransportOptions,
) -> Result<HashMap<PathBuf, Arc<PrivateKey>>, SetupError> {
    let mut identities = HashMap::new();
    let mut passphrases: Vec<SecretString> = Vec::new();
    for path in members.iter().filter_map(|m| m.identity_file.as_deref()) {
        if identities.contains_key(path) {
            continue;
        }
        let key = load_identity(path, opts, &mut passphrases)?;
        tracing::debug!(
            path = %path.display(),
            algorithm = key.algorithm().as_str(),
            fingerprint = %known_hosts::fingerprint(key.public_key()),
            "loaded identity"
        );
        identities.insert(path.to_path_buf(), Arc::new(key));
    }
    Ok(identities)
}

fn load_identity(
    path: &Path,
    opts: &TransportOptions,
    passphrases: &mut Vec<SecretString>,
) -> Result<PrivateKey, SetupError> {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => return Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            return Err(SetupError(format!(
                "cannot load identity file {}: {e}; check `identity_file` in the inventory",
                path.display()
            )));
        }
    }
    let decrypt =
        |pass: &SecretString| russh::keys::load_secret_key(path, Some(pass.expose_secret()));
    for pass in passphrases.iter() {
        if let Ok(key) = decrypt(pass) {
            return Ok(key);
        }
    }
    let env = &opts.passphrase_env;
    if let Some(pass) = std::env::var(env)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from)
    {
        return match decrypt(&pass) {
            Ok(key) => {
                passphrases.push(pass);
                Ok(key)
            }
            Err(e) => Err(SetupError(format!(
                "identity file {} is encrypted and the passphrase in {env} does not decrypt it ({e}); \
                 fix {env}, or unset it and run on a terminal to be asked",
                path.display()
            ))),
        };
    }
    if opts.interactive && io::stdin().is_terminal() {
        for _ in 0..3 {
            let prompt = format!("Enter passphrase for {}: ", path.display());
            let pass = SecretString::from(rpassword::prompt_password(prompt).map_err(|e| {
                SetupError(format!(
                    "cannot read the passphrase for {} from the terminal: {e}",
                    path.display()
                ))
            })?);
            if let Ok(key) = decrypt(&pass) {
                passphrases.push(pass);
                return Ok(key);
            }
            eprintln!("Wrong passphrase for {}.", path.display());
        }
        return Err(SetupError(format!(
            "identity file {}: wrong passphrase, 3 attempts",
            path.display()
        )));
    }
    Err(SetupError(format!(
        "identity file {} is encrypted: set {env} or run on a terminal \
         (or load the key into ssh-agent and drop identity_file)",
        path.display()
    )))
}

/// Host key algorithms to offer: the types known_hosts records for the member first, so the
/// server presents a key we can verify, then the rest in our default order.
fn host_key_order(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let is_recorded = |a: &Algorithm| recorded.iter().any(|r| r == a || (is_rsa(r) && is_rsa(a)));
    let (mut order, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        HOST_KEY_ALGORITHMS.iter().cloned().partition(is_recorded);
    order.extend(rest);
    order
}

fn is_rsa(algorithm: &Algorithm) -> bool {
    matches!(algorithm, Algorithm::Rsa { .. })
}

fn build_config(host_keys: Vec<Algorithm>) -> client::Config {
    client::Config {
        preferred: Preferred {
            kex: Cow::Borrowed(KEX),
            key: Cow::Owned(host_keys),
            host_key_certificates: Cow::Borrowed(&[]),
            cipher: Cow::Borrowed(CIPHERS),
            mac: Preferred::DEFAULT.mac,
            compression: Cow::Borrowed(&[russh::compression::NONE]),
        },
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        nodelay: true,
        ..Default::default()
    }
}

/// The hash to sign with for an RSA user key (`rsa-sha2-512` unless the server says otherwise).
async fn rsa_hash_for(
    handle: &Handle<ClientHandler>,
    algorithm: &Algorithm,
    target: &str,
) -> Result<Option<HashAlg>, SshError> {
    if !is_rsa(algorithm) {
        return Ok(None);
    }
    match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => Ok(hash),
        Ok(None) => Ok(Some(HashAlg::Sha512)),
        Err(e) => Err(russh_error(target, e)),
    }
}

/// Did the server hang up (rather than answer)? Only meaningful before its banner arrived.
fn closed_early(e: &russh::Error) -> bool {
    match e {
        russh::Error::Disconnect | russh::Error::HUP => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

fn tcp_error(target: &str, e: io::Error) -> SshError {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        SshError::Refused(format!(
            "{target}: nothing is listening; is sshd running on that port?"
        ))
    } else {
        SshError::Network(format!("cannot reach {target}: {e}"))
    }
}

fn russh_error(target: &str, e: russh::Error) -> SshError {
    match e {
        russh::Error::IO(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            tcp_error(target, io)
        }
        russh::Error::IO(io) => SshError::Network(format!("{target}: {io}")),
        russh::Error::Disconnect | russh::Error::HUP => SshError::Network(format!(
            "{target} closed the connection during the SSH handshake"
        )),
        russh::Error::KeepaliveTimeout
        | russh::Error::InactivityTimeout
        | russh::Error::ConnectionTimeout => {
            SshError::Network(format!("{target} stopped responding"))
        }
        russh::Error::Version => SshError::Protocol(format!(
            "{target} did not identify as an SSH server; check host and port"
        )),
        russh::Error::NoCommonAlgo { kind, ours, theirs } => SshError::Protocol(format!(
            "{target} shares no {kind:?} algorithm with fleetauth (we offer {}; it offers {}); \
             fleetauth needs OpenSSH ≥ 7.4-era algorithms (curve25519, ed25519/ecdsa/rsa-sha2, \
             chacha20-poly1305 or AES-GCM)",
            ours.join(","),
            theirs.join(",")
        )),
        other => SshError::Protocol(format!("{target}: {other}")),
    }
}

/// Roughly `base`, scaled by a random factor in [0.5, 1) so that many clients throttled at
/// the same moment do not come back in lockstep.
fn jittered(base: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    base.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// A TCP stream that notes when the server's SSH identification line (`SSH-…`) has arrived,
/// which tells a throttled connection (closed before it) from a real answer.
struct BannerWatch<S> {
    inner: S,
    seen: Arc<AtomicBool>,
    /// `Some(n)`: at the start of a line, having matched `n` bytes of `SSH-`.
    matched: Option<usize>,
}

impl<S> BannerWatch<S> {
    fn new(inner: S, seen: Arc<AtomicBool>) -> BannerWatch<S> {
        BannerWatch {
            inner,
            seen,
            matched: Some(0),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        const PREFIX: &[u8] = b"SSH-";
        for &b in bytes {
            self.matched = match self.matched {
                Some(n) if PREFIX[n] == b => {
                    if n + 1 == PREFIX.len() {
                        self.seen.store(true, Ordering::SeqCst);
                        return;
                    }
                    Some(n + 1)
                }
                _ if b == b'\n' => Some(0),
                _ => None,
            };
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BannerWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.seen.load(Ordering::Relaxed) {
            let fresh = buf.filled()[before..].to_vec();
            this.scan(&fresh);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BannerWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(chunks: &[&[u8]]) -> bool {
        let seen = Arc::new(AtomicBool::new(false));
        let mut watch = BannerWatch::new((), seen.clone());
        for chunk in chunks {
            watch.scan(chunk);
        }
        seen.load(Ordering::SeqCst)
    }

    #[test]
    fn banner_watch_finds_the_identification_line() {
        assert!(watched(&[b"SSH-2.0-OpenSSH_9.2\r\n"]));
        assert!(watched(&[b"SS", b"H-2.0"]));
        assert!(watched(&[b"Exceeded MaxStartups\r\n", b"SSH-2.0-x\r\n"]));
    }

    #[test]
    fn banner_watch_ignores_ssh_mid_line_and_partial_prefixes() {
        assert!(!watched(&[b"Exceeded MaxStartups\r\n"]));
        assert!(!watched(&[b"not SSH-2.0\r\n"]));
        assert!(!watched(&[b"SSH"]));
        assert!(!watched(&[]));
    }

    #[test]
    fn host_key_order_puts_recorded_types_first() {
        let ecdsa = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        assert_eq!(host_key_order(&[]), HOST_KEY_ALGORITHMS.to_vec());
        let order = host_key_order(std::slice::from_ref(&ecdsa));
        assert_eq!(order[0], ecdsa);
        assert_eq!(order[1], Algorithm::Ed25519);
        assert_eq!(order.len(), HOST_KEY_ALGORITHMS.len());
        // A recorded `ssh-rsa` key is verified by either rsa-sha2 signature.
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(is_rsa(&order[0]) && is_rsa(&order[1]), "{order:?}");
        assert!(!order.contains(&Algorithm::Rsa { hash: None }));
    }

    #[test]
    fn config_pins_safe_cheap_algorithms() {
        let config = build_config(host_key_order(&[]));
        let kex: Vec<&str> = config.preferred.kex.iter().map(|k| k.as_ref()).collect();
        assert_eq!(
            kex,
            [
                "mlkem768x25519-sha256",
                "curve25519-sha256",
                "curve25519-sha256@libssh.org",
                "ext-info-c",
                "kex-strict-c-v00@openssh.com"
            ]
        );
        assert!(!kex.iter().any(|k| k.contains("group-exchange")));
        assert_eq!(config.preferred.key[0], Algorithm::Ed25519);
        let ciphers: Vec<&str> = config.preferred.cipher.iter().map(|c| c.as_ref()).collect();
        assert!(
            ciphers
                .iter()
                .all(|c| c.contains("gcm") || c.contains("chacha20"))
        );
        assert!(config.nodelay);
        assert!(config.keepalive_interval.is_some() && config.inactivity_timeout.is_some());
    }

    #[test]
    fn output_is_capped_and_the_excess_counted() {
        let mut buf = vec![0u8; OUTPUT_CAP - 3];
        let mut dropped = 0;
        push_capped(&mut buf, b"abcdef", &mut dropped);
        assert_eq!(buf.len(), OUTPUT_CAP);
        assert_eq!(&buf[OUTPUT_CAP - 3..], b"abc");
        assert_eq!(dropped, 3);
        push_capped(&mut buf, b"xyz", &mut dropped);
        assert_eq!(dropped, 6);
    }

    #[test]
    fn jitter_stays_between_half_and_full_delay() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(
                d >= Duration::from_millis(500) && d < Duration::from_millis(1000),
                "{d:?}"
            );
        }
    }

    #[test]
    fn refused_and_other_io_errors_are_told_apart() {
        let refused = tcp_error("h:22", io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.class(), "refused");
        let unreachable = tcp_error("h:22", io::Error::from(io::ErrorKind::HostUnreachable));
        assert!(matches!(unreachable, SshError::Network(_)));
    }

    #[test]
    fn missing_encrypted_or_plain_identity_errors_say_what_to_do() {
        let dir = std::env::temp_dir().join(format!("fleetauth-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope");
        let err =
            load_identity(&missing, &TransportOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(
            err.message().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(err.message().contains("identity_file"), "{err}");

        let key = dir.join("id_enc");
        let _ = std::fs::remove_file(&key);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "correct horse", "-C", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen must be installed for this test");
        assert!(status.success());
        let opts = TransportOptions {
            passphrase_env: "FLEETAUTH_TEST_PASSPHRASE_THAT_IS_NEVER_SET".into(),
            interactive: false,
            ..TransportOptions::default()
        };
        let err = load_identity(&key, &opts, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "identity file {} is encrypted: set FLEETAUTH_TEST_PASSPHRASE_THAT_IS_NEVER_SET or run on a terminal (or load the key into ssh-agent and drop identity_file)",
                key.display()
            )
        );
        // A passphrase that already worked for another file is tried first.
        let mut known = vec![SecretString::from("correct horse".to_string())];
        let loaded = load_identity(&key, &opts, &mut known).unwrap();
        assert_eq!(loaded.algorithm(), Algorithm::Ed25519);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
