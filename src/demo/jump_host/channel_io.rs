//! Reading and closing a server-side channel the way both channel services (the hello
//! page in `hello.rs`, the relay in `relay.rs`) need it: the next data, EOF or CLOSE
//! from the client, and a close that respects russh's bookkeeping. Talks to russh only.

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tracing::debug;

/// The next thing the client sent on a channel.
pub(super) enum Incoming {
    Data(Bytes),
    /// The client sent EOF: it will send no more data.
    Eof,
    /// The client closed the channel (russh has already answered with CLOSE).
    Closed,
}

pub(super) async fn next_incoming(read: &mut ChannelReadHalf) -> Incoming {
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => return Incoming::Data(data),
            Some(ChannelMsg::Eof) => return Incoming::Eof,
            Some(ChannelMsg::Close) | None => return Incoming::Closed,
            // Window adjustments, extended data, requests: nothing to do for a TCP tunnel.
            Some(_) => {}
        }
    }
}

/// Closes our side unless the client already closed the channel.
///
/// When we close first, russh (0.65.1) answers the client's CLOSE with nothing and keeps
/// the channel's entry in the session until the session ends; sshd closes first too, so
/// we accept that and linger a little where we can (the hello page).
pub(super) async fn close(write: &ChannelWriteHalf<Msg>, client_closed: bool) {
    if client_closed {
        return;
    }
    if let Err(e) = write.close().await {
        debug!(error = %e, "channel close not sent: session gone");
    }
}
