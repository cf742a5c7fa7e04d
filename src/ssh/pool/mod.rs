//! The session pool of one upstream: several SSH sessions, spread over the
//! upstream's equivalent jump hosts, each carrying up to
//! `max_channels_per_session` tunnels. This file leases channel slots
//! (`Pool::open` -> `Lease`); the rest of the pool's job is in:
//!
//! - `choose`: the pure choices, which session gets a channel (the least
//!   loaded usable one; never a dead, stalled or retiring one) and which
//!   host gets a new session (one not in backoff: failover);
//! - `supervise`: the tasks that keep sessions open. `min` slot
//!   supervisors reconnect with exponential backoff and full jitter
//!   (`jitter`); more sessions (up to `max`) are dialed on demand when every
//!   session is full and retired after `idle_timeout` without channels;
//! - `forwarded`: the queue of remote-forward connections, which
//!   `proxy::remote_forward` takes;
//! - `status`: the pool as `/status` shows it.
//!
//! Listeners call `Pool::open`; `daemon` calls `Pool::start` and, at the
//! end, `Pool::shutdown`.

mod choose;
mod forwarded;
mod jitter;
mod status;
mod supervise;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use jitter::Jitter;

use super::session::{
    ChannelGuard, FailureReason, ForwardedChannel, JumpSession, OpenError, SessionSettings,
};
use crate::status::ErrorLog;
use choose::{choose, pick_host, Choice, Load};

/// Shared state of one upstream.
pub struct Pool {
    pub settings: Arc<SessionSettings>,
    state: Mutex<State>,
    /// Woken on every change that can unblock an `open`: a session became
    /// ready or died, a channel was released, a dial finished.
    changed: Arc<Notify>,
    /// Wakes slot supervisors sleeping out a backoff that a waiting
    /// CONNECT cut short (`HostHealth::take_early_retry`).
    retry_now: Notify,
    /// Ends every supervisor and on-demand session at shutdown.
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Recent errors, for `/status`.
    errors: ErrorLog,
    /// Remote-forward connections from every session's handler, until
    /// `proxy::remote_forward` takes them (None without remote forwards).
    forwarded: Mutex<Option<tokio::sync::mpsc::Receiver<ForwardedChannel>>>,
}

struct State {
    sessions: Vec<Arc<JumpSession>>,
    /// Connects in flight (supervisors and on-demand dials).
    dialing: usize,
    /// Per host of the upstream, by `JumpSession::host_index`.
    hosts: Vec<HostHealth>,
    /// Whether we last logged the upstream as ready (log on changes only).
    logged_ready: bool,
    /// A session logged in before the pool started (`Pool::adopt`), for
    /// the first slot to serve with.
    seed: Option<Arc<JumpSession>>,
}

#[derive(Default, Clone)]
struct HostHealth {
    /// Avoid this host for new sessions until then.
    down_until: Option<Instant>,
    failures: u32,
    /// Connects to this host in flight, so that simultaneous dials spread.
    dialing: usize,
    last_error: Option<String>,
    /// The last login was refused: backoff is at `reconnect.max` at once.
    key_refused: bool,
    /// When the last dial to this host failed.
    failed_at: Option<Instant>,
    /// A waiting CONNECT may still cut this backoff short (once per failed
    /// dial; never after a refused key): `take_early_retry`.
    early_retry: bool,
}

/// How soon after a failed dial a waiting CONNECT may have the host tried
/// again, whatever its backoff says. Once per failure, so that however many
/// clients wait, the host sees at most one dial per this interval.
pub(crate) const EARLY_RETRY_GAP: Duration = Duration::from_secs(1);

impl HostHealth {
    /// Shortens this host's backoff for a CONNECT that is waiting for a
    /// session: after a long outage the backoff has grown to many seconds,
    /// and a client arriving just after the jump host came back would wait
    /// all of it. Returns whether the backoff was shortened.
    fn take_early_retry(&mut self, now: Instant) -> bool {
        let (Some(failed), Some(until)) = (self.failed_at, self.down_until) else {
            return false;
        };
        let at = (failed + EARLY_RETRY_GAP).max(now);
        if !self.early_retry || self.key_refused || at >= until {
            return false;
        }
        self.early_retry = false;
        self.down_until = Some(at);
        true
    }
}

impl Pool {
    pub fn new(mut settings: SessionSettings) -> Arc<Pool> {
        let hosts = vec![HostHealth::default(); settings.upstream.hosts.len()];
        // Every series of the upstream exists (at 0) from the start: an upstream
        // that has never had a session shows `ready 0` instead of no series, and
        // the first keepalive timeout or failed open is a rise from 0, which
        // alerts such as JumpgateUpstreamDown and JumpgateKeepaliveTimeouts see.
        crate::metrics::get().declare_upstream(&settings.upstream.name);
        let forwarded = forwarded::queue(&mut settings);
        Arc::new(Pool {
            settings: Arc::new(settings),
            state: Mutex::new(State {
                sessions: Vec::new(),
                dialing: 0,
                hosts,
                logged_ready: false,
                seed: None,
            }),
            changed: Arc::new(Notify::new()),
            retry_now: Notify::new(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            errors: ErrorLog::default(),
            forwarded: Mutex::new(forwarded),
        })
    }

    /// Records an error for `/status`.
    pub(crate) fn record_error(&self, e: String) {
        self.errors.push(e);
    }

    pub fn name(&self) -> &str {
        &self.settings.upstream.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent in
        // a way that matters more than stopping service; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ready = at least one live session.
    pub fn is_ready(&self) -> bool {
        self.lock().sessions.iter().any(|s| !s.is_dead())
    }

    /// Opens a channel to `host:port` within `within`: on the least-loaded
    /// session, growing the pool if all are full, waiting for a session if
    /// none is ready. A channel that fails because its session just died is
    /// retried once on another session.
    pub async fn open(
        self: &Arc<Self>,
        host: &str,
        port: u16,
        orig: SocketAddr,
        within: Duration,
    ) -> Result<Lease, OpenError> {
        let deadline = Instant::now() + within;
        let mut retried = false;
        let mut avoid = None;
        let fd = crate::capacity::take().map_err(|e| self.full(host, port, e.to_string()))?;
        loop {
            let mut guard = match self.reserve(deadline, avoid).await {
                Ok(g) => g,
                Err(NoSlot::Full) => {
                    let u = &self.settings.upstream;
                    let (cap, max) = (u.max_channels_per_session, u.sessions.max);
                    let limit = format!(
                        "max_channels_per_session x sessions.max = {cap} x {max} = {} tunnels, all open",
                        cap.saturating_mul(max)
                    );
                    return Err(self.full(host, port, limit));
                }
                Err(NoSlot::Timeout) => {
                    let e = OpenError::NoSession {
                        upstream: self.name().to_owned(),
                        waited: within,
                    };
                    self.errors.push(format!("open {host}:{port}: {e}"));
                    return Err(e);
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match guard.open(host, port, orig, left).await {
                Ok(()) => {
                    let channels = crate::metrics::get()
                        .channels_active
                        .with_label_values(&[self.name()]);
                    channels.inc();
                    return Ok(Lease {
                        guard,
                        _release: Release {
                            changed: self.changed.clone(),
                            channels,
                        },
                        _fd: fd,
                    });
                }
                Err(OpenError::SessionGone) if !retried => {
                    retried = true;
                    drop(guard);
                    self.prune();
                }
                // The jump host is short of resources on this connection
                // (e.g. sshd's channel limit): try once on another session.
                Err(OpenError::Refused {
                    reason: FailureReason::ResourceShortage,
                    ..
                }) if !retried && self.has_room_besides(guard.session().id) => {
                    retried = true;
                    avoid = Some(guard.session().id);
                    drop(guard);
                }
                Err(e) => {
                    drop(guard);
                    self.changed.notify_waiters();
                    self.errors.push(format!("open {host}:{port}: {e}"));
                    return Err(e);
                }
            }
        }
    }

    /// The refusal of a CONNECT because `limit` is reached, recorded for
    /// `/status`; the listener logs it with the error's text.
    fn full(&self, host: &str, port: u16, limit: String) -> OpenError {
        let e = OpenError::Full {
            upstream: self.name().to_owned(),
            limit,
        };
        self.errors.push(format!("open {host}:{port}: {e}"));
        e
    }

    /// A channel slot on the best session, waiting until `deadline`, or
    /// at once the news that the pool is full.
    async fn reserve(
        self: &Arc<Self>,
        deadline: Instant,
        avoid: Option<u64>,
    ) -> Result<ChannelGuard, NoSlot> {
        let u = &self.settings.upstream;
        // When every host is in backoff: re-check when the first one ends.
        let mut wake_at: Option<Instant> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                st.sessions.retain(|s| !s.is_dead());
                let loads: Vec<Load> = st
                    .sessions
                    .iter()
                    .map(|s| Load {
                        channels: s.channels(),
                        usable: s.is_usable() && Some(s.id) != avoid,
                    })
                    .collect();
                match choose(
                    &loads,
                    u.max_channels_per_session,
                    u.sessions.max,
                    st.dialing,
                ) {
                    Choice::Use(i) => {
                        if let Some(g) = st.sessions[i].try_reserve(u.max_channels_per_session) {
                            return Ok(g);
                        }
                        continue; // lost a race for the last slot
                    }
                    Choice::Dial => {
                        let now = Instant::now();
                        let host = pick_host(&st.hosts, &st.sessions, now);
                        let h = &mut st.hosts[host];
                        if h.take_early_retry(now) {
                            info!(upstream = %self.name(), host = %self.settings.describe(host),
                                "a CONNECT is waiting for a session: retrying the jump host before its backoff ends");
                        }
                        match st.hosts[host].down_until.filter(|t| *t > now) {
                            // Every host is in backoff: dialing now would
                            // hammer it; wait for the backoff (or a session).
                            Some(until) => wake_at = Some(until),
                            // A slot supervisor without a session will dial
                            // (it sleeps until the backoff we may just have
                            // shortened): wake it rather than dial beside it,
                            // which would count two failures for one outage.
                            None if st.sessions.len() + st.dialing < u.sessions.min => {
                                self.retry_now.notify_waiters();
                            }
                            None => {
                                st.dialing += 1;
                                st.hosts[host].dialing += 1;
                                drop(st);
                                self.spawn_on_demand(host);
                            }
                        }
                    }
                    Choice::Wait => {}
                    Choice::Full => return Err(NoSlot::Full),
                }
            }
            let until = wake_at.take().map_or(deadline, |t| t.min(deadline));
            if tokio::time::timeout_at(until, notified).await.is_err() && until >= deadline {
                return Err(NoSlot::Timeout);
            }
        }
    }

    /// Whether a channel could go elsewhere than session `id`: another
    /// usable session, or room to open one.
    fn has_room_besides(&self, id: u64) -> bool {
        let st = self.lock();
        let live = st.sessions.iter().filter(|s| !s.is_dead()).count();
        live < self.settings.upstream.sessions.max
            || st.sessions.iter().any(|s| s.id != id && s.is_usable())
    }

    fn prune(&self) {
        self.lock().sessions.retain(|s| !s.is_dead());
    }
}

/// Why `reserve` has no slot.
enum NoSlot {
    /// No session had room before the deadline.
    Timeout,
    /// Every slot is taken and the pool may not grow.
    Full,
}

/// A channel handed to a listener; dropping it frees the session slot and
/// wakes anyone waiting for one.
pub struct Lease {
    guard: ChannelGuard,
    /// Declared after `guard` because fields drop in order: the slot is
    /// free before waiters wake.
    _release: Release,
    /// The tunnel's share of the open-files limit.
    _fd: crate::capacity::FdSlot,
}

impl Lease {
    /// The slot holding the opened channel.
    pub fn guard(&mut self) -> &mut ChannelGuard {
        &mut self.guard
    }
}

/// What a dropped lease owes the pool besides its slot.
struct Release {
    changed: Arc<Notify>,
    /// `jumpgate_channels_active` of this upstream.
    channels: prometheus::IntGauge,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.channels.dec();
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(ago: Duration, backoff: Duration, now: Instant) -> HostHealth {
        HostHealth {
            failed_at: Some(now - ago),
            down_until: Some(now - ago + backoff),
            failures: 6,
            early_retry: true,
            ..HostHealth::default()
        }
    }

    #[test]
    fn a_waiting_connect_cuts_a_long_backoff_once() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut h = failed(Duration::from_secs(3), Duration::from_secs(20), now);
        assert!(h.take_early_retry(now));
        assert_eq!(h.down_until, Some(now), "1 s after the failure: at once");
        assert!(!h.take_early_retry(now), "only once per failed dial");
    }

    #[test]
    fn an_early_retry_keeps_its_gap_after_the_failure() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut h = failed(Duration::from_millis(200), Duration::from_secs(20), now);
        assert!(h.take_early_retry(now));
        assert_eq!(
            h.down_until,
            Some(now - Duration::from_millis(200) + EARLY_RETRY_GAP)
        );
    }

    #[test]
    fn no_early_retry_after_a_refused_key_or_a_short_backoff() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut refused = failed(Duration::from_secs(3), Duration::from_secs(30), now);
        refused.key_refused = true;
        assert!(!refused.take_early_retry(now));
        // The backoff ends sooner than an early retry could start.
        let mut short = failed(Duration::from_millis(100), Duration::from_millis(500), now);
        assert!(!short.take_early_retry(now));
        assert_eq!(short.down_until, Some(now + Duration::from_millis(400)));
    }
}
