//! The pool's side of remote forwards: one bounded queue per upstream that
//! every session's handler feeds with `forwarded-tcpip` channels, and the
//! choice of the session that holds the forwards. `proxy::remote_forward`
//! takes the queue and requests the forwards on that session.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Pool;
use crate::ssh::session::{ForwardedChannel, JumpSession, SessionSettings};

/// Remote-forward connections waiting to be connected locally, per upstream;
/// beyond this the jump host is told "resource shortage".
const FORWARDED_QUEUE: usize = 128;

/// How often a wait for the forwards' session looks again in case a
/// notification was missed; the notification normally comes first.
const OWNER_POLL: Duration = Duration::from_secs(1);

/// The queue's receiving end, with the sending end put in `settings` for
/// the handlers; None (and forwarded channels refused) without remote
/// forwards.
pub(super) fn queue(settings: &mut SessionSettings) -> Option<mpsc::Receiver<ForwardedChannel>> {
    if settings.upstream.remote_forwards.is_empty() {
        return None;
    }
    let (tx, rx) = mpsc::channel(FORWARDED_QUEUE);
    settings.forwarded = Some(tx);
    Some(rx)
}

impl Pool {
    /// The remote-forward connections of every session (once).
    pub(crate) fn take_forwarded(&self) -> Option<mpsc::Receiver<ForwardedChannel>> {
        self.forwarded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The session that should hold the remote forwards: the oldest live
    /// slot session (slot sessions are never retired for idleness), else
    /// the oldest live session not being retired.
    pub(crate) fn forward_owner(&self) -> Option<Arc<JumpSession>> {
        let st = self.lock();
        let live = || {
            st.sessions
                .iter()
                .filter(|s| !s.is_dead() && !s.is_retired())
        };
        live()
            .find(|s| !s.extra.load(Ordering::Relaxed))
            .or_else(|| live().next())
            .cloned()
    }

    /// Waits for a session to hold the remote forwards (`forward_owner`).
    pub(crate) async fn wait_forward_owner(&self) -> Arc<JumpSession> {
        loop {
            // Registered before looking, so a session that becomes ready in
            // between still wakes us.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(s) = self.forward_owner() {
                return s;
            }
            let _ = tokio::time::timeout(OWNER_POLL, notified).await;
        }
    }
}
