//! A connection the jump host forwards to us on a remote forward, as the
//! session's handler hands it to the pool (`ssh::pool::forwarded`). Its own
//! file because both the handler (which makes it) and `SessionSettings`
//! (which carries the queue it goes to) name it.

use std::sync::Arc;

use russh::{client, Channel, ChannelOpenFailure};

use super::JumpSession;

/// A connection the jump host accepted on one of our remote forwards
/// (`forwarded-tcpip`), not yet confirmed: `proxy::remote_forward` connects
/// the local target first and then accepts or rejects it, as ssh -R does.
pub struct ForwardedChannel {
    pub session: Arc<JumpSession>,
    pub channel: Channel<client::Msg>,
    pub reply: client::ChannelOpenHandle,
    /// The address and port the jump host listened on (the allocated port
    /// when we asked for port 0).
    pub bound_host: String,
    pub bound_port: u32,
    /// Who connected to it, on the jump host's side.
    pub originator: String,
}

impl ForwardedChannel {
    /// Refuses the channel (CHANNEL_OPEN_FAILURE with `why`) and forgets
    /// the relay buffer the handler registered for it: a refused channel
    /// gets no CHANNEL_CLOSE, so nothing else would remove it.
    pub async fn reject(self, why: ChannelOpenFailure) {
        let id = self.channel.id();
        self.reply.reject(why).await;
        self.session.relay().forget(id);
    }
}
