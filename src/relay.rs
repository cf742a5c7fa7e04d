//! Moves bytes between a client TCP connection and an SSH channel, both
//! directions, with half-close, and reports what happened.
//!
//! russh traps shape this (DESIGN.md "Facts"): closing a channel from our side
//! before the server's CLOSE leaks the channel's entry in the session for its
//! whole life. So we never close first on the normal path: client EOF becomes
//! channel EOF, and the relay ends when the server sends CLOSE. Only when the
//! client is gone and the server keeps sending past `DRAIN_LIMIT` (or at
//! forced shutdown) do we close first, and say so in the result.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use russh::{client, Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long we keep draining (and discarding) a channel whose client is gone
/// before closing it from our side.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Client reads are this big: one SSH packet's worth (maximum_packet_size).
const READ_CHUNK: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the channel after the exchange; the normal end.
    Closed,
    /// The client went away (reset, broken pipe) and the server closed after.
    ClientGone(io::ErrorKind),
    /// The client was gone and the server kept sending; we closed first.
    DrainTimeout,
    /// The SSH session died under the tunnel.
    SessionLost,
    /// Forced shutdown.
    Shutdown,
}

#[derive(Debug, Clone, Copy)]
pub struct RelayStats {
    /// Client -> jump host bytes.
    pub up: u64,
    /// Jump host -> client bytes.
    pub down: u64,
    pub end: End,
    pub elapsed: Duration,
}

/// Runs until the channel is closed (or `force` is cancelled).
///
/// The two directions run as two futures polled together: awaiting the
/// channel window while the channel's inbound queue fills would block russh's
/// session task and with it the window adjust we wait for.
pub async fn run(
    client: TcpStream,
    channel: Channel<client::Msg>,
    force: CancellationToken,
) -> RelayStats {
    let started = Instant::now();
    let (mut rx, tx) = channel.split();
    let (mut cr, mut cw) = client.into_split();
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);

    let outcome = {
        let tx = &tx;
        let up_bytes = &up_bytes;
        let down_bytes = &down_bytes;
        let up = async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            loop {
                buf.reserve(READ_CHUNK);
                match cr.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // Client EOF or reset: tell the server we are done
                        // sending, and let it close (see module doc).
                        let _ = tx.eof().await;
                        return;
                    }
                    Ok(n) => {
                        up_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if tx.data_bytes(buf.split().freeze()).await.is_err() {
                            return; // session gone; the down side sees it too
                        }
                    }
                }
            }
        };
        let down = async move {
            let mut gone: Option<io::ErrorKind> = None;
            let mut drain_until: Option<tokio::time::Instant> = None;
            loop {
                let msg = match drain_until {
                    None => rx.wait().await,
                    Some(t) => match tokio::time::timeout_at(t, rx.wait()).await {
                        Ok(m) => m,
                        Err(_) => return End::DrainTimeout,
                    },
                };
                match msg {
                    Some(ChannelMsg::Data { data }) => {
                        if gone.is_some() {
                            continue;
                        }
                        match cw.write_all(&data).await {
                            Ok(()) => {
                                down_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                gone = Some(e.kind());
                                drain_until = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                            }
                        }
                    }
                    Some(ChannelMsg::Eof) => {
                        if gone.is_none() {
                            let _ = cw.shutdown().await;
                        }
                    }
                    Some(ChannelMsg::Close) => {
                        return gone.map_or(End::Closed, End::ClientGone);
                    }
                    None => return End::SessionLost,
                    Some(_) => {}
                }
            }
        };
        tokio::pin!(up);
        tokio::pin!(down);
        let mut up_finished = false;
        loop {
            tokio::select! {
                biased;
                _ = force.cancelled() => break End::Shutdown,
                r = &mut down => break r,
                _ = &mut up, if !up_finished => up_finished = true,
            }
        }
    };
    let end = outcome;
    if matches!(end, End::DrainTimeout | End::Shutdown) {
        // Closing first leaks the channel entry in russh (module doc); only
        // here, where the alternative is to hold the channel forever.
        let _ = tx.close().await;
    }
    RelayStats {
        up: up_bytes.load(Ordering::Relaxed),
        down: down_bytes.load(Ordering::Relaxed),
        end,
        elapsed: started.elapsed(),
    }
}
