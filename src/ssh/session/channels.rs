//! Channel accounting on a session, and opening `direct-tcpip` channels.
//! A `ChannelGuard` is one slot in a session's count, taken before the open
//! (so that concurrent opens cannot overfill a session) and given back when
//! dropped; the pool (`ssh::pool`) reads the counts to pick a session.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::Channel;
use tracing::debug;

use super::error::{FailureReason, OpenError};
use super::JumpSession;

/// How long the jump host's text for a refused open may trail its code;
/// both normally arrive in the same turn of the session task.
const FAILURE_TEXT_WAIT: Duration = Duration::from_millis(100);

/// How long an open that we stopped waiting for may still complete, and how
/// long its channel then gets to close politely.
const LATE_OPEN_LIMIT: Duration = Duration::from_secs(60);

/// A session's channel counts and whether it takes new channels.
#[derive(Debug, Default)]
pub(super) struct ChannelCounts {
    /// Live channels (and slots reserved for opens in flight).
    open: AtomicUsize,
    /// Set when an idle session is being retired: no new channels.
    retired: AtomicBool,
}

impl ChannelCounts {
    /// Counts a channel regardless of any cap.
    fn add(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a channel if fewer than `cap` are counted.
    fn try_add(&self, cap: usize) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    fn remove(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Not retiring. (A session parked on a tunnel's caps takes no new
    /// channels either: `tunnel_buffer::Inboxes::is_parked`.)
    pub(super) fn takes_new(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
    }

    /// Marks the session as retiring, unless a channel slipped in.
    pub(super) fn try_retire(&self) -> bool {
        self.retired.store(true, Ordering::Release);
        if self.open() > 0 {
            self.retired.store(false, Ordering::Release);
            return false;
        }
        true
    }

    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(super) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }
}

impl JumpSession {
    /// Counts a channel the jump host opened to us (a remote-forward
    /// connection) like one of ours: in the load, the stall state and the
    /// byte counters. No cap: refusing it would only break the forward.
    pub fn adopt(self: &Arc<Self>, channel: Channel<client::Msg>) -> ChannelGuard {
        self.counts.add();
        ChannelGuard {
            channel: Some(self.inboxes.tunnel(channel)),
            session: self.clone(),
        }
    }

    /// Takes a channel slot if the session is usable and below `cap`.
    pub fn try_reserve(self: &Arc<Self>, cap: usize) -> Option<ChannelGuard> {
        if !self.is_usable() || !self.counts.try_add(cap) {
            return None;
        }
        Some(ChannelGuard {
            channel: None,
            session: self.clone(),
        })
    }
}

/// A channel slot on a session (and, once opened, the channel); dropping
/// it gives the slot back.
pub struct ChannelGuard {
    channel: Option<crate::tunnel_buffer::Tunnel>,
    session: Arc<JumpSession>,
}

impl ChannelGuard {
    /// Opens a `direct-tcpip` channel to `host:port` in this slot, with a
    /// deadline. `host` goes unresolved so that names resolve on the jump host.
    pub async fn open(
        &mut self,
        host: &str,
        port: u16,
        orig: std::net::SocketAddr,
        deadline: Duration,
    ) -> Result<(), OpenError> {
        let session = &self.session;
        if session.is_dead() {
            return Err(OpenError::SessionGone);
        }
        // The open runs in its own task: if we give up waiting, the jump host
        // may still confirm the channel later, and someone must then close it
        // properly (dropping the open future would leave the channel open on
        // the session and at the target for the session's life).
        let opener = session.clone();
        let (host_s, orig_ip) = (host.to_owned(), orig.ip().to_string());
        let mut open = tokio::spawn(async move {
            opener
                .handle
                .channel_open_direct_tcpip(host_s, u32::from(port), orig_ip, u32::from(orig.port()))
                .await
                .map(|c| opener.inboxes.tunnel(c))
        });
        let result = tokio::select! {
            r = tokio::time::timeout(deadline, &mut open) => match r {
                Ok(joined) => joined,
                Err(_) => {
                    tokio::spawn(close_late_channel(open));
                    return Err(OpenError::Timeout);
                }
            },
            _ = session.dead.cancelled() => return Err(OpenError::SessionGone),
        };
        let chan = match result {
            Ok(Ok(c)) => c,
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                let text = session.failures.pop(FAILURE_TEXT_WAIT).await;
                return Err(OpenError::Refused {
                    reason: FailureReason::from(&reason),
                    text,
                });
            }
            Ok(Err(russh::Error::Disconnect | russh::Error::SendError)) | Err(_) => {
                return Err(OpenError::SessionGone)
            }
            Ok(Err(e)) => return Err(OpenError::Ssh(e)),
        };
        self.channel = Some(chan);
        Ok(())
    }

    /// The channel, once; the guard still counts it until dropped.
    pub fn take(&mut self) -> Option<crate::tunnel_buffer::Tunnel> {
        self.channel.take()
    }

    pub fn session(&self) -> &Arc<JumpSession> {
        &self.session
    }
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.session.counts.remove();
    }
}

/// Closes a channel that the jump host confirmed after we gave up: EOF, then
/// wait for the server's CLOSE (closing first would leak it in russh).
async fn close_late_channel(
    open: tokio::task::JoinHandle<Result<crate::tunnel_buffer::Tunnel, russh::Error>>,
) {
    let Ok(Ok(Ok(chan))) = tokio::time::timeout(LATE_OPEN_LIMIT, open).await else {
        return;
    };
    debug!(channel = ?chan.write.id(), "closing a channel confirmed after its open timed out");
    crate::tunnel_buffer::close_after_eof(chan).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_cap_and_come_back() {
        let c = ChannelCounts::default();
        assert!(c.try_add(2));
        assert!(c.try_add(2));
        assert!(!c.try_add(2), "a third channel over a cap of 2");
        assert_eq!(c.open(), 2);
        c.remove();
        assert!(c.try_add(2), "a freed slot is usable again");
        // Adopted channels (remote forwards) are counted past the cap.
        c.add();
        assert_eq!(c.open(), 3);
        assert!(!c.try_add(2));
    }

    #[test]
    fn only_an_idle_session_retires() {
        let c = ChannelCounts::default();
        c.add();
        assert!(!c.try_retire(), "a channel is open");
        assert!(!c.is_retired() && c.takes_new());
        c.remove();
        assert!(c.try_retire());
        assert!(c.is_retired() && !c.takes_new());
    }
}
