//! The demo jump host's byte relay: once a `direct-tcpip` target is connected, copies
//! both ways between the SSH channel and the target's TCP stream, with half-close, until
//! both sides are done. Talks to russh (the channel) and the target socket; started by
//! `handler.rs`. Unrelated to jumpgate's own relay (`crate::relay`), which sits on the
//! client side of the tunnel.

use std::io;

use russh::server::Msg;
use russh::Channel;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::channel_io::{close, next_incoming, Incoming};

/// Copies both ways until both sides are done, with half-close: the client's EOF shuts
/// down our TCP write side, the target's EOF becomes a channel EOF. Then closes.
pub(super) async fn relay(channel: Channel<Msg>, mut tcp: TcpStream) {
    let (mut read, write) = channel.split();
    let (mut tcp_read, mut tcp_write) = tcp.split();
    let mut to_client = write.make_writer();

    let up = async {
        let mut bytes = 0u64;
        loop {
            match next_incoming(&mut read).await {
                Incoming::Data(data) => {
                    tcp_write.write_all(&data).await?;
                    bytes += data.len() as u64;
                }
                Incoming::Eof => {
                    tcp_write.shutdown().await?;
                    return Ok::<_, io::Error>((bytes, false));
                }
                Incoming::Closed => return Ok((bytes, true)),
            }
        }
    };
    let down = async {
        let bytes = tokio::io::copy(&mut tcp_read, &mut to_client).await?;
        to_client.shutdown().await?; // channel EOF
        Ok::<_, io::Error>(bytes)
    };
    tokio::pin!(up, down);

    let mut up_done = None;
    let mut down_done = None;
    let client_closed = loop {
        tokio::select! {
            r = &mut up, if up_done.is_none() => match r {
                // The client is gone: nothing more can be delivered to it.
                Ok((_, true)) => { up_done = Some(r); break true; }
                Ok(_) => up_done = Some(r),
                Err(_) => { up_done = Some(r); break false; }
            },
            r = &mut down, if down_done.is_none() => {
                let failed = r.is_err();
                down_done = Some(r);
                if failed { break false; }
            },
        }
        if up_done.is_some() && down_done.is_some() {
            break false;
        }
    };
    let up = up_done.map(|r| r.map(|(bytes, _)| bytes));
    match (up, down_done) {
        (Some(Ok(up)), Some(Ok(down))) => debug!(up, down, "relay done"),
        (up, down) => debug!(
            up = ?up.map(|r| r.map_err(|e| e.to_string())),
            down = ?down.map(|r| r.map_err(|e| e.to_string())),
            client_closed,
            "relay ended early"
        ),
    }
    close(&write, client_closed).await;
}
