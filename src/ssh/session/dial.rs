//! Reaching a jump host and logging in: the transport to the first hop (a
//! TCP connection, or a ProxyCommand's pipes via `ssh::proxy_command`), then
//! the SSH handshake and login (`auth`) on each ProxyJump hop in turn, each
//! inner connection running inside a `direct-tcpip` channel of the one
//! before it. The result is a `JumpSession` on the last hop.

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};

use super::error::{ConnectError, FailureReason};
use super::handler::{HandlerLink, JumpHandler, SessionSlot};
use super::settings::SessionSettings;
use super::JumpSession;
use crate::config::Endpoint;
use crate::ssh::{proxy_command, quickack};

/// Read buffer between the jump host's socket and russh. russh reads each
/// packet with two small reads straight from the socket; a read buffer turns
/// ~4 receive calls per 32 KiB packet into ~1 (measured: 128k -> 33k
/// recvfrom per 2 GiB, 7-19% less CPU).
const SOCKET_READ_BUFFER: usize = 256 * 1024;

/// How long a ProxyCommand that broke the handshake gets to exit, so that
/// its exit status can explain the failure.
const PROXY_COMMAND_EXIT_WAIT: Duration = Duration::from_millis(50);

/// One logged-in hop.
struct Hop {
    endpoint: Endpoint,
    handle: Handle<JumpHandler>,
    link: HandlerLink,
}

/// Connects through every hop to the host at `host_index` and logs in on
/// each; no deadline of its own (`JumpSession::connect` sets one).
pub(super) async fn dial(
    settings: &SessionSettings,
    host_index: usize,
) -> Result<Arc<JumpSession>, ConnectError> {
    let hops = settings.hops(host_index);
    let Some(((user0, first), rest)) = hops.split_first() else {
        return Err(ConnectError::Tcp {
            addr: settings.describe(host_index),
            source: std::io::Error::other("no such host index"),
        });
    };
    let me: SessionSlot = Arc::default();
    // Only the last hop (the upstream itself) gets remote-forward channels.
    let slot_if = |last: bool| last.then(|| me.clone());
    let mut proxy = None;
    let mut hop = match &settings.upstream.proxy_command {
        None => {
            let tcp = tokio::io::BufReader::with_capacity(
                SOCKET_READ_BUFFER,
                quickack::QuickAck(tcp_connect(first).await?),
            );
            handshake(settings, tcp, first, user0, slot_if(rest.is_empty())).await?
        }
        Some(template) => {
            let command = proxy_command::expand(template, first, user0)?;
            let (mut child, stream) = proxy_command::spawn(&command)?;
            let stream = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, stream);
            match handshake(settings, stream, first, user0, slot_if(rest.is_empty())).await {
                Ok(h) => {
                    proxy = Some(child);
                    h
                }
                // A command that died explains the failure better
                // than the handshake's "connection closed".
                Err(e) => {
                    tokio::time::sleep(PROXY_COMMAND_EXIT_WAIT).await;
                    return Err(match proxy_command::exit_status(&mut child) {
                        Some(status) => ConnectError::ProxyCommand { command, status },
                        None => e,
                    });
                }
            }
        }
    };
    // Outer hops stay alive as long as the session: the inner SSH
    // connection runs inside their channels.
    let mut outer = Vec::new();
    for (i, (user, next)) in rest.iter().enumerate() {
        let stream = hop
            .handle
            .channel_open_direct_tcpip(next.host.clone(), u32::from(next.port), "127.0.0.1", 0)
            .await
            .map_err(|e| ConnectError::Hop {
                from: hop.endpoint.to_string(),
                to: next.to_string(),
                reason: match e {
                    russh::Error::ChannelOpenFailure(r) => FailureReason::from(&r).to_string(),
                    other => other.to_string(),
                },
            })?
            .into_stream();
        let inner = handshake(settings, stream, next, user, slot_if(i + 1 == rest.len())).await?;
        outer.push(hop);
        hop = inner;
    }
    let session = Arc::new(JumpSession::new(
        host_index,
        hop.handle,
        hop.link,
        outer.into_iter().map(|h| h.handle).collect(),
        proxy,
    ));
    // Only fails if already set, which nothing else does.
    let _ = me.set(Arc::downgrade(&session));
    Ok(session)
}

async fn tcp_connect(e: &Endpoint) -> Result<tokio::net::TcpStream, ConnectError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((e.host.as_str(), e.port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: e.host.clone(),
            source,
        })?
        .collect();
    let mut last = None;
    for a in &addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                // Best effort: Nagle only delays small packets.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(ConnectError::Tcp {
        addr: e.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("name has no address")),
    })
}

/// SSH handshake, host key check and login over `stream`.
async fn handshake<S>(
    settings: &SessionSettings,
    stream: S,
    endpoint: &Endpoint,
    user: &str,
    // Some on the last hop: where the handler finds its session.
    session: Option<SessionSlot>,
) -> Result<Hop, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (handler, link) = JumpHandler::new(settings, endpoint, session);
    let mut handle = match client::connect_stream(settings.ssh.clone(), stream, handler).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(ke) = link.key_error.lock().ok().and_then(|mut s| s.take()) {
                return Err(ke.into());
            }
            return Err(ConnectError::from_handshake(
                endpoint,
                settings.upstream.interface,
                e,
            ));
        }
    };
    super::auth::authenticate(&mut handle, settings, endpoint, user).await?;
    Ok(Hop {
        endpoint: endpoint.clone(),
        handle,
        link,
    })
}
