//! One upstream (jump host): a supervisor task that keeps a session open,
//! reconnecting with exponential backoff and full jitter, and the `open`
//! entry point that listeners use to get a `direct-tcpip` channel.
//!
//! Today an upstream holds a single session slot; the pool (several sessions,
//! least-loaded choice, failover) grows out of `Slot` without changing
//! `Upstream::open`'s contract.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use super::session::{ChannelGuard, JumpSession, OpenError, SessionSettings};
use crate::config::Backoff;

/// Shared state of one upstream.
pub struct Upstream {
    pub settings: Arc<SessionSettings>,
    /// The current ready session, if any; the supervisor publishes here.
    current: watch::Sender<Option<Arc<JumpSession>>>,
}

impl Upstream {
    pub fn new(settings: SessionSettings) -> Arc<Upstream> {
        let (current, _) = watch::channel(None);
        Arc::new(Upstream {
            settings: Arc::new(settings),
            current,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.upstream.name
    }

    pub fn is_ready(&self) -> bool {
        self.current.borrow().as_ref().is_some_and(|s| !s.is_dead())
    }

    /// Waits until a live session exists, or `deadline` passes.
    async fn session_by(&self, deadline: Instant) -> Option<Arc<JumpSession>> {
        let mut rx = self.current.subscribe();
        loop {
            if let Some(s) = rx.borrow_and_update().as_ref().filter(|s| !s.is_dead()) {
                return Some(s.clone());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Opens a channel to `host:port`, waiting for a session if none is
    /// ready, all within `within`. A channel that fails because its session
    /// just died is retried once on the next session.
    pub async fn open(
        &self,
        host: &str,
        port: u16,
        orig: SocketAddr,
        within: Duration,
    ) -> Result<ChannelGuard, OpenError> {
        let deadline = Instant::now() + within;
        let mut retried = false;
        loop {
            let Some(session) = self.session_by(deadline).await else {
                return Err(OpenError::NoSession {
                    upstream: self.name().to_owned(),
                    waited: within,
                });
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match session.open_direct_tcpip(host, port, orig, left).await {
                Err(OpenError::SessionGone) if !retried => {
                    retried = true;
                    continue;
                }
                other => return other,
            }
        }
    }

    /// The supervisor: connect, publish, wait for death, back off, repeat,
    /// until `stop`. Sessions get a polite disconnect on the way out.
    pub async fn supervise(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Jitter::new(self.settings.upstream.reconnect);
        let mut failures: u32 = 0;
        // The last error's text: repeats are logged short, changes in full.
        let mut last_error = String::new();
        while !stop.is_cancelled() {
            let attempt = tokio::select! {
                r = JumpSession::connect(&self.settings) => r,
                _ = stop.cancelled() => break,
            };
            match attempt {
                Ok(session) => {
                    let span = info_span!("session", upstream = %self.name(), id = session.id);
                    async {
                        info!(upstream = %self.name(), addr = %self.settings.addr(), "upstream ready");
                        backoff.reset();
                        failures = 0;
                        last_error.clear();
                        self.current.send_replace(Some(session.clone()));
                        tokio::select! {
                            _ = session.closed() => {
                                warn!(upstream = %self.name(), channels = session.channels(),
                                      "session lost; upstream not ready, reconnecting");
                            }
                            _ = stop.cancelled() => {
                                session.disconnect("jumpgate shutting down").await;
                            }
                        }
                        self.current.send_replace(None);
                    }
                    .instrument(span)
                    .await;
                }
                Err(e) => {
                    failures += 1;
                    let wait = backoff.next_wait();
                    // One line per backoff step; the error in full only when it changes.
                    let text = e.to_string();
                    if text != last_error {
                        error!(upstream = %self.name(), error = %text, attempt = failures, retry_in = ?wait, "cannot open SSH session");
                        last_error = text;
                    } else {
                        warn!(upstream = %self.name(), attempt = failures, retry_in = ?wait, "still cannot open SSH session (same error)");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            }
        }
    }
}

/// Exponential backoff with full jitter: a uniform wait in [0, cap], where
/// the cap doubles from `initial` up to `max`; never below 10 ms so a dead
/// host is not hammered.
pub struct Jitter {
    cfg: Backoff,
    cap: Duration,
}

impl Jitter {
    pub fn new(cfg: Backoff) -> Self {
        Jitter {
            cfg,
            cap: cfg.initial,
        }
    }

    pub fn reset(&mut self) {
        self.cap = self.cfg.initial;
    }

    pub fn next_wait(&mut self) -> Duration {
        let cap = self.cap;
        self.cap = (self.cap * 2).min(self.cfg.max);
        let ms = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms).max(10))
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut j = Jitter::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(700),
        });
        let mut caps = vec![];
        for _ in 0..5 {
            let w = j.next_wait();
            caps.push(j.cap());
            assert!(w <= Duration::from_millis(700));
        }
        assert_eq!(
            caps,
            [200, 400, 700, 700, 700]
                .map(Duration::from_millis)
                .to_vec()
        );
        j.reset();
        assert!(j.next_wait() <= Duration::from_millis(100));
    }
}
