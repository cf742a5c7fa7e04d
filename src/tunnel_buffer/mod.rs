//! The buffer between a session and its tunnels: every byte the jump host
//! sends on a tunnel's channel waits here until the tunnel's relay writes it
//! to the client.
//!
//! The session's russh handler pushes each packet into the tunnel's `Inbox`
//! (memory, then a spill file) without waiting; the relay (`crate::relay`)
//! drains it at the client's pace. This module sits below both: the SSH
//! layer fills it, the relay empties it, and it imports neither.
//!
//! Files: `budget` (limits from `[relay]` and the process totals), `account`
//! (a session's counts, fed to the budget, the metrics and `/status`),
//! `inbox` (one tunnel's tiered buffer), `spill` (its ring file), `inboxes`
//! (a session's inboxes by channel, fed by its handler). `mod.rs` holds what
//! a tunnel is made of (`Tunnel`) and how a channel nobody reads is ended
//! (`close_after_eof`).

mod account;
mod budget;
mod inbox;
mod inboxes;
mod spill;

pub use account::{Account, Meters};
pub use budget::{Budget, Cap, Limits, SpillDirError, Usage};
pub use inbox::{Event, Inbox, InboxReader, Sink, READ_BACK};
pub use inboxes::{Feed, Inboxes};

use std::time::Duration;

use russh::client;
use russh::ChannelWriteHalf;

/// How long we keep draining (and discarding) a channel whose client is gone
/// before closing it from our side.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What a relay needs of a tunnel's channel: the write half (upload, EOF,
/// close) and the inbox the session's handler fills. The read half is gone
/// (`Inboxes::tunnel`).
pub struct Tunnel {
    pub write: ChannelWriteHalf<client::Msg>,
    pub inbox: InboxReader,
}

/// How `close_after_eof` ended a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The server closed the channel after our EOF.
    Closed,
    /// The session died first.
    SessionLost,
    /// The server kept the channel open past `DRAIN_LIMIT`; we closed first.
    TimedOut,
}

/// Ends a channel the way russh does not leak it: EOF, then wait (discarding
/// data) for the server's CLOSE for up to `DRAIN_LIMIT`; only then close
/// first. Used for channels that never get (or lost) their client.
pub async fn close_after_eof(tunnel: Tunnel) -> Drained {
    let Tunnel { write, mut inbox } = tunnel;
    inbox.discard();
    let _ = write.eof().await;
    let wait = async {
        loop {
            match inbox.wait().await {
                Event::Closed => return Drained::Closed,
                Event::SessionLost | Event::SpillFailed(_) => return Drained::SessionLost,
                Event::Data | Event::Eof => {}
            }
        }
    };
    match tokio::time::timeout(DRAIN_LIMIT, wait).await {
        Ok(end) => end,
        Err(_) => {
            let _ = write.close().await;
            Drained::TimedOut
        }
    }
}
