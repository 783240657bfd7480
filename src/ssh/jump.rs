//! Jump hosts (`ProxyJump`): reaching a target through one or more bastions over russh.
//!
//! A target's [`Target::jumps`] is its chain, first hop first. The first hop is dialled over TCP;
//! every later hop, and the target itself, over a `direct-tcpip` channel opened on the previous
//! hop's connection: the SSH session to the target runs inside that channel, end to end, so a
//! bastion relays bytes it cannot read. Each hop is a complete [`Target`]: its own host key
//! check against known_hosts, its own authentication, its own `connect_timeout`.
//!
//! **Members behind one bastion share its connections.** Connections to a hop are pooled per
//! chain prefix (the hop and every hop before it), so a member costs the bastion a channel, not
//! a connection. A connection carries at most [`TransportOptions::jump_channels`] members at once
//! (spreading hundreds of members over a few connections, which a bastion's sshd serves one
//! process each); when every connection is full, dead, or the bastion refuses a channel on a busy
//! connection for lack of resources (a session limit), another connection is opened.
//!
//! **A failed hop fails fast.** Members wait for the first connection to a hop instead of each
//! dialling it; if that connection fails, the failure is kept and every member behind the hop is
//! unreachable at once with [`SshError::Jump`], which names the hop, instead of each member
//! waiting out the deadline again.
//!
//! [`TransportOptions::jump_channels`]: super::TransportOptions::jump_channels

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use russh::client::{self, Msg};
use russh::{ChannelOpenFailure, ChannelStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Mutex;

use super::connect::Stream;
use super::host_key::ClientHandler;
use super::{RusshTransport, SshError, Target};

/// Connections to jump hosts, shared by every member behind them.
#[derive(Default)]
pub(super) struct JumpPools {
    pools: std::sync::Mutex<HashMap<String, Arc<Mutex<Pool>>>>,
}

/// The connections to one hop (one chain prefix).
#[derive(Default)]
struct Pool {
    connections: Vec<Arc<JumpConnection>>,
    /// Why connecting to the hop failed: every later member behind it fails the same way.
    failed: Option<SshError>,
}

/// One authenticated connection to a jump host.
struct JumpConnection {
    handle: client::Handle<ClientHandler>,
    /// Channels open on it now.
    open: AtomicUsize,
    /// The hop refused a channel for lack of resources: open no more on this connection.
    full: AtomicBool,
}

impl JumpPools {
    fn pool(&self, key: String) -> Arc<Mutex<Pool>> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }
}

/// What identifies a chain prefix: each hop's address, user and identities, in order.
fn chain_key(hops: &[Target]) -> String {
    hops.iter()
        .map(|h| format!("{}|{:?}|{:?}", h.user_addr(), h.identities, h.known_hosts))
        .collect::<Vec<_>>()
        .join(" > ")
}

/// The hop as messages name it: as written in ProxyJump, and where it resolved to.
fn hop_name(hop: &Target) -> String {
    if hop.name == hop.host {
        hop.user_addr()
    } else {
        format!("{} ({})", hop.name, hop.user_addr())
    }
}

impl RusshTransport {
    /// A stream to `target`'s sshd through its jump hosts.
    pub(super) async fn tunnel(&self, target: &Target) -> Result<Box<dyn Stream>, SshError> {
        let stream = self.open_through(&target.jumps, target).await?;
        Ok(Box::new(stream))
    }

    /// Open a `direct-tcpip` channel to `to` on a connection to the last of `hops`, connecting
    /// (through the earlier hops) when no pooled connection can take it.
    async fn open_through(&self, hops: &[Target], to: &Target) -> Result<Tunnel, SshError> {
        let (last, _) = hops.split_last().expect("a tunnel has at least one hop");
        let pool = self.jump_pools.pool(chain_key(hops));
        let mut retried = false;
        loop {
            let (connection, busy) = self.pooled_connection(hops, &pool).await?;
            let opened = tokio::time::timeout(
                last.connect_timeout,
                connection.handle.channel_open_direct_tcpip(
                    to.host.clone(),
                    to.port.into(),
                    "127.0.0.1",
                    0,
                ),
            )
            .await;
            let failure = match opened {
                Ok(Ok(channel)) => {
                    tracing::debug!(member = %to.name, hop = %last.addr(), "channel open through jump host");
                    return Ok(Tunnel {
                        stream: channel.into_stream(),
                        connection,
                    });
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    connection.open.fetch_sub(1, Ordering::SeqCst);
                    return Err(jump_error(
                        last,
                        SshError::Timeout {
                            phase: "opening a channel through the jump host",
                            after: last.connect_timeout,
                        },
                    ));
                }
            };
            connection.open.fetch_sub(1, Ordering::SeqCst);
            match failure {
                russh::Error::ChannelOpenFailure(
                    ChannelOpenFailure::ResourceShortage
                    | ChannelOpenFailure::AdministrativelyProhibited,
                ) if busy && !retried => {
                    // Perhaps a limit on channels per connection: try a connection of its own.
                    tracing::debug!(hop = %last.addr(), "jump host refused a channel on a busy connection; opening another");
                    connection.full.store(true, Ordering::SeqCst);
                    retried = true;
                }
                e => return Err(channel_error(last, to, e)),
            }
        }
    }

    /// A live connection to the last of `hops` with room for a channel, pooled or new, with
    /// one channel counted on it already (the caller's, to open or give back); and whether
    /// other channels were open on it.
    async fn pooled_connection(
        &self,
        hops: &[Target],
        pool: &Mutex<Pool>,
    ) -> Result<(Arc<JumpConnection>, bool), SshError> {
        let (last, before) = hops.split_last().expect("a tunnel has at least one hop");
        // Held while connecting, so members behind one hop wait for one connection.
        let mut pool = pool.lock().await;
        if let Some(why) = &pool.failed {
            return Err(why.clone());
        }
        pool.connections.retain(|c| !c.handle.is_closed());
        let room = pool.connections.iter().find(|c| {
            !c.full.load(Ordering::SeqCst) && c.open.load(Ordering::SeqCst) < self.jump_channels
        });
        if let Some(connection) = room {
            let busy = connection.open.fetch_add(1, Ordering::SeqCst) > 0;
            return Ok((connection.clone(), busy));
        }
        let connected = if before.is_empty() {
            self.connect_retrying(last, None)
                .await
                .map(|(handle, _)| handle)
        } else {
            match Box::pin(self.open_through(before, last)).await {
                Ok(tunnel) => Box::pin(self.handshake_tunnel(last, tunnel)).await,
                Err(e) => Err(e),
            }
        };
        match connected {
            Ok(handle) => {
                tracing::debug!(hop = %last.addr(), connections = pool.connections.len() + 1, "connected to jump host");
                let connection = Arc::new(JumpConnection {
                    handle,
                    open: AtomicUsize::new(1),
                    full: AtomicBool::new(false),
                });
                pool.connections.push(connection.clone());
                Ok((connection, false))
            }
            Err(e) => {
                let e = match e {
                    e @ SshError::Jump { .. } => e,
                    e => jump_error(last, e),
                };
                // A first connection that fails marks the hop down; a later one (more members
                // than one connection carries) fails only the member that needed it.
                if pool.connections.is_empty() {
                    pool.failed = Some(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Key exchange and authentication with a hop reached through `tunnel`.
    async fn handshake_tunnel(
        &self,
        hop: &Target,
        tunnel: Tunnel,
    ) -> Result<client::Handle<ClientHandler>, SshError> {
        self.handshake(hop, Box::new(tunnel), None)
            .await
            .map_err(|attempt| attempt.into_error(hop))
    }
}

/// A failure reaching, or on, jump host `hop`.
fn jump_error(hop: &Target, error: SshError) -> SshError {
    SshError::Jump {
        hop: hop_name(hop),
        error: Box::new(error),
    }
}

/// Why `hop` would not open a channel to `to`.
fn channel_error(hop: &Target, to: &Target, e: russh::Error) -> SshError {
    let addr = to.addr();
    match e {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited) => {
            jump_error(
                hop,
                SshError::Protocol(format!(
                    "it refuses to forward to {addr} (sshd `AllowTcpForwarding`, `PermitOpen` or \
                     a restricted key on the jump host)"
                )),
            )
        }
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            SshError::Network(format!(
                "jump host {} cannot connect to {addr}: is sshd running there, and is the name \
                 right as the jump host resolves it?",
                hop_name(hop)
            ))
        }
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::Other { reason, .. })
            if reason.to_ascii_lowercase().contains("refused") =>
        {
            SshError::Refused(format!("{addr} via jump host {}: {reason}", hop_name(hop)))
        }
        russh::Error::ChannelOpenFailure(failure) => jump_error(
            hop,
            SshError::Protocol(format!(
                "it would not open a channel to {addr}: {failure:?}"
            )),
        ),
        other => jump_error(hop, super::connect::russh_error(&hop.addr(), other)),
    }
}

/// A `direct-tcpip` channel as a byte stream; while it is open it counts against its
/// connection's channels.
struct Tunnel {
    stream: ChannelStream<Msg>,
    connection: Arc<JumpConnection>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.connection.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
