//! The session pool of one upstream: several SSH sessions, spread over the
//! upstream's equivalent jump hosts, each carrying up to
//! `max_channels_per_session` tunnels.
//!
//! - `min` sessions are kept open by slot supervisors that reconnect with
//!   exponential backoff and full jitter;
//! - more (up to `max`) are dialed on demand when every session is full, and
//!   closed again after `idle_timeout` without channels;
//! - a new channel goes to the least-loaded ready session (`choose`, a pure
//!   function), never to a dead or stalled one;
//! - a jump host that failed is avoided until its backoff passes, so new
//!   channels go to the others (failover).
//!
//! Listeners call `Pool::open`; `daemon` starts `Pool::run`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::session::{
    ChannelGuard, FailureReason, ForwardedChannel, JumpSession, OpenError, SessionSettings,
};
use crate::config::Backoff;
use crate::status::{ErrorLog, HostStatus, SessionStatus, UpstreamStatus};

/// Shared state of one upstream.
pub struct Pool {
    pub settings: Arc<SessionSettings>,
    state: Mutex<State>,
    /// Woken on every change that can unblock an `open`: a session became
    /// ready or died, a channel was released, a dial finished.
    changed: Arc<Notify>,
    /// Ends every supervisor and on-demand session at shutdown.
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Recent errors, for `/status`.
    errors: ErrorLog,
    /// Remote-forward connections from every session's handler, until
    /// `ssh::remote_forward` takes them (None without remote forwards).
    forwarded: Mutex<Option<tokio::sync::mpsc::Receiver<ForwardedChannel>>>,
}

/// Remote-forward connections waiting to be connected locally, per upstream;
/// beyond this the jump host is told "resource shortage".
const FORWARDED_QUEUE: usize = 128;

struct State {
    sessions: Vec<Arc<JumpSession>>,
    /// Connects in flight (supervisors and on-demand dials).
    dialing: usize,
    hosts: Vec<HostHealth>,
    /// Whether we last logged the upstream as ready (log on changes only).
    logged_ready: bool,
}

#[derive(Default, Clone)]
struct HostHealth {
    /// Avoid this host for new sessions until then.
    down_until: Option<Instant>,
    failures: u32,
    /// Connects to this host in flight, so that simultaneous dials spread.
    dialing: usize,
    last_error: Option<String>,
}

/// What the pool knows of a session when choosing; see `choose`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub channels: usize,
    pub usable: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    Use(usize),
    Dial,
    Wait,
}

/// The least-loaded usable session with room; else dial if the pool may grow
/// and no dial is already under way (one at a time, so a burst does not
/// open `max` sessions at once); else wait.
pub(crate) fn choose(live: &[Load], cap: usize, max_sessions: usize, dialing: usize) -> Choice {
    let best = live
        .iter()
        .enumerate()
        .filter(|(_, l)| l.usable && l.channels < cap)
        .min_by_key(|(_, l)| l.channels);
    match best {
        Some((i, _)) => Choice::Use(i),
        None if live.len() + dialing < max_sessions && dialing == 0 => Choice::Dial,
        None => Choice::Wait,
    }
}

/// Picks the host for a new session: among hosts not in backoff, the one
/// with the fewest sessions; if all are in backoff, the one free soonest.
fn pick_host(hosts: &[HostHealth], sessions: &[Arc<JumpSession>], now: Instant) -> usize {
    let count = |i: usize| sessions.iter().filter(|s| s.host_index == i).count() + hosts[i].dialing;
    let up = (0..hosts.len())
        .filter(|i| hosts[*i].down_until.is_none_or(|t| t <= now))
        .min_by_key(|i| count(*i));
    up.unwrap_or_else(|| {
        (0..hosts.len())
            .min_by_key(|i| hosts[*i].down_until)
            .unwrap_or(0)
    })
}

impl Pool {
    pub fn new(mut settings: SessionSettings) -> Arc<Pool> {
        let hosts = vec![HostHealth::default(); settings.upstream.hosts.len()];
        // Both session series exist (at 0) from the start, so an upstream that has
        // never had a session shows `ready 0` instead of no series, which alerts
        // such as JumpgateUpstreamDown could not see.
        let sessions = &crate::metrics::get().sessions;
        for state in ["ready", "connecting", "draining"] {
            sessions.with_label_values(&[&settings.upstream.name, state]);
        }
        let forwarded = if settings.upstream.remote_forwards.is_empty() {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(FORWARDED_QUEUE);
            settings.forwarded = Some(tx);
            Some(rx)
        };
        Arc::new(Pool {
            settings: Arc::new(settings),
            state: Mutex::new(State {
                sessions: Vec::new(),
                dialing: 0,
                hosts,
                logged_ready: false,
            }),
            changed: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            errors: ErrorLog::default(),
            forwarded: Mutex::new(forwarded),
        })
    }

    /// The remote-forward connections of every session (once).
    pub(crate) fn take_forwarded(&self) -> Option<tokio::sync::mpsc::Receiver<ForwardedChannel>> {
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
            .find(|s| !s.extra.load(std::sync::atomic::Ordering::Relaxed))
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
            // The poll is only a safety net; the notification comes first.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
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

    /// Live sessions and their channel counts, for status and tests.
    pub fn snapshot(&self) -> Vec<(u64, usize, usize)> {
        self.lock()
            .sessions
            .iter()
            .filter(|s| !s.is_dead())
            .map(|s| (s.id, s.host_index, s.channels()))
            .collect()
    }

    /// Hosts, sessions and recent errors, for `/status`.
    pub fn status(&self) -> UpstreamStatus {
        let u = &self.settings.upstream;
        let st = self.lock();
        let now = Instant::now();
        let live: Vec<&Arc<JumpSession>> = st.sessions.iter().filter(|s| !s.is_dead()).collect();
        let hosts = st
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostStatus {
                address: self.settings.describe(i),
                sessions: live.iter().filter(|s| s.host_index == i).count(),
                connecting: h.dialing,
                failures: h.failures,
                retry_in_seconds: h
                    .down_until
                    .filter(|t| *t > now)
                    .map(|t| (t - now).as_secs_f64()),
                last_error: h.last_error.clone(),
            })
            .collect();
        let sessions = live
            .iter()
            .map(|s| {
                let (up, down) = s.traffic();
                let state = if s.is_retired() {
                    "draining"
                } else if s.is_stalled() {
                    "stalled"
                } else {
                    "ready"
                };
                let extra = s.extra.load(std::sync::atomic::Ordering::Relaxed);
                SessionStatus {
                    id: s.id,
                    host: self.settings.describe(s.host_index),
                    kind: if extra { "extra" } else { "slot" }.to_owned(),
                    state: state.to_owned(),
                    age_seconds: s.started.elapsed().as_secs_f64(),
                    channels: s.channels(),
                    bytes_up: up,
                    bytes_down: down,
                }
            })
            .collect();
        UpstreamStatus {
            name: u.name.clone(),
            ready: !live.is_empty(),
            sessions_min: u.sessions.min,
            sessions_max: u.sessions.max,
            max_channels_per_session: u.max_channels_per_session,
            connecting: st.dialing,
            hosts,
            sessions,
            recent_errors: self.errors.snapshot(),
        }
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
        loop {
            let Some(mut guard) = self.reserve(deadline, avoid).await else {
                let e = OpenError::NoSession {
                    upstream: self.name().to_owned(),
                    waited: within,
                };
                self.errors.push(format!("open {host}:{port}: {e}"));
                return Err(e);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match guard.open(host, port, orig, left).await {
                Ok(()) => {
                    let channels = crate::metrics::get()
                        .channels_active
                        .with_label_values(&[self.name()]);
                    channels.inc();
                    return Ok(Lease {
                        guard: Some(guard),
                        changed: self.changed.clone(),
                        channels,
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

    /// A channel slot on the best session, waiting until `deadline`.
    async fn reserve(
        self: &Arc<Self>,
        deadline: Instant,
        avoid: Option<u64>,
    ) -> Option<ChannelGuard> {
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
                            return Some(g);
                        }
                        continue; // lost a race for the last slot
                    }
                    Choice::Dial => {
                        let now = Instant::now();
                        let target = pick_host(&st.hosts, &st.sessions, now);
                        match st.hosts[target].down_until.filter(|t| *t > now) {
                            // Every host is in backoff: dialing now would
                            // hammer it; wait for the backoff (or a session).
                            Some(until) => wake_at = Some(until),
                            None => {
                                st.dialing += 1;
                                st.hosts[target].dialing += 1;
                                drop(st);
                                self.spawn_on_demand(target);
                            }
                        }
                    }
                    Choice::Wait => {}
                }
            }
            let until = wake_at.take().map_or(deadline, |t| t.min(deadline));
            if tokio::time::timeout_at(until, notified).await.is_err() && until >= deadline {
                return None;
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

    /// Starts the `min` slot supervisors; they run until `shutdown`.
    pub fn start(self: &Arc<Self>) {
        for slot in 0..self.settings.upstream.sessions.min {
            let me = self.clone();
            self.tasks.spawn(async move { me.supervise(slot).await });
        }
    }

    /// Stops supervisors and on-demand sessions, with an SSH disconnect.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }

    /// Connects to `target`, recording the outcome in the host's health.
    async fn dial(&self, target: usize) -> Option<Arc<JumpSession>> {
        let m = crate::metrics::get();
        let connecting = m.sessions.with_label_values(&[self.name(), "connecting"]);
        connecting.inc();
        let r = tokio::select! {
            r = JumpSession::connect(&self.settings, target) => r,
            _ = self.stop.cancelled() => {
                connecting.dec();
                let mut st = self.lock();
                st.hosts[target].dialing = st.hosts[target].dialing.saturating_sub(1);
                return None;
            }
        };
        connecting.dec();
        let result = if r.is_ok() { "ok" } else { "failed" };
        m.session_connects
            .with_label_values(&[self.name(), result])
            .inc();
        let mut st = self.lock();
        st.hosts[target].dialing = st.hosts[target].dialing.saturating_sub(1);
        match r {
            Ok(s) => {
                m.sessions.with_label_values(&[self.name(), "ready"]).inc();
                let h = &mut st.hosts[target];
                h.down_until = None;
                h.failures = 0;
                st.sessions.push(s.clone());
                self.log_readiness(&mut st);
                Some(s)
            }
            Err(e) => {
                let h = &mut st.hosts[target];
                h.failures += 1;
                let mut backoff = Jitter::new(self.settings.upstream.reconnect);
                for _ in 1..h.failures.min(16) {
                    backoff.next_wait();
                }
                let wait = backoff.next_wait();
                h.down_until = Some(Instant::now() + wait);
                let (n, failures) = (self.settings.describe(target), h.failures);
                let text = e.to_string();
                if failures == 1 || h.last_error.as_deref() != Some(text.as_str()) {
                    self.errors
                        .push(format!("{n}: cannot open SSH session: {text}"));
                }
                h.last_error = Some(text);
                drop(st);
                if failures == 1 {
                    error!(upstream = %self.name(), host = %n, error = %e, "cannot open SSH session");
                } else {
                    debug!(upstream = %self.name(), host = %n, error = %e, failures, "cannot open SSH session");
                }
                None
            }
        }
    }

    fn log_readiness(&self, st: &mut State) {
        let ready = st.sessions.iter().any(|s| !s.is_dead());
        if ready != st.logged_ready {
            st.logged_ready = ready;
            if ready {
                info!(upstream = %self.name(), "upstream ready");
            } else {
                warn!(upstream = %self.name(), "upstream NOT ready: no live session");
            }
        }
    }

    /// Removes a dead or retired session and tells waiters.
    /// Logs a session that died under us, with russh's reason, and keeps it
    /// in the recent errors for `/status`.
    fn record_loss(&self, session: &JumpSession, what: &str) {
        let reason = session.end_reason();
        warn!(channels = session.channels(), %reason, "{what}");
        self.errors.push(format!(
            "session {} to {} lost: {reason}",
            session.id,
            self.settings.describe(session.host_index)
        ));
    }

    /// Disconnects politely, counted as `draining` (not `ready`) meanwhile.
    /// Returns false: the session no longer counts as ready (for `forget`).
    async fn drain(&self, s: &Arc<JumpSession>, why: &str) -> bool {
        let sessions = &crate::metrics::get().sessions;
        let draining = sessions.with_label_values(&[self.name(), "draining"]);
        sessions.with_label_values(&[self.name(), "ready"]).dec();
        draining.inc();
        s.disconnect(why).await;
        draining.dec();
        false
    }

    /// Removes a session that ended; `counted_ready` says whether it still
    /// counts in `jumpgate_sessions{state="ready"}`.
    fn forget(&self, s: &Arc<JumpSession>, counted_ready: bool) {
        if counted_ready {
            crate::metrics::get()
                .sessions
                .with_label_values(&[self.name(), "ready"])
                .dec();
        }
        let mut st = self.lock();
        st.sessions.retain(|x| x.id != s.id && !x.is_dead());
        self.log_readiness(&mut st);
        drop(st);
        self.changed.notify_waiters();
    }

    /// A slot supervisor: keep one session open, reconnect with backoff.
    async fn supervise(self: Arc<Self>, slot: usize) {
        let mut backoff = Jitter::new(self.settings.upstream.reconnect);
        let mut last_error_logged = false;
        while !self.stop.is_cancelled() {
            let target = {
                let mut st = self.lock();
                st.dialing += 1;
                let t = pick_host(&st.hosts, &st.sessions, Instant::now());
                st.hosts[t].dialing += 1;
                t
            };
            let s = self.dial(target).await;
            self.lock().dialing -= 1;
            self.changed.notify_waiters();
            match s {
                Some(session) => {
                    backoff.reset();
                    last_error_logged = false;
                    let span =
                        info_span!("session", upstream = %self.name(), id = session.id, slot);
                    let counted_ready = async {
                        info!(host = %self.settings.describe(target), "session ready");
                        tokio::select! {
                            _ = session.closed() => {
                                self.record_loss(&session, "session lost, reconnecting");
                                true
                            }
                            _ = self.stop.cancelled() => {
                                self.drain(&session, "jumpgate shutting down").await
                            }
                        }
                    }
                    .instrument(span)
                    .await;
                    self.forget(&session, counted_ready);
                }
                None => {
                    let wait = backoff.next_wait();
                    if !last_error_logged {
                        // The error itself was logged by `dial`.
                        warn!(upstream = %self.name(), slot, retry_in = ?wait, "retrying with backoff");
                        last_error_logged = true;
                    } else {
                        debug!(upstream = %self.name(), slot, retry_in = ?wait, "retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.cancelled() => break,
                    }
                }
            }
        }
    }

    /// An extra session for a burst; closed after `idle_timeout` unused.
    fn spawn_on_demand(self: &Arc<Self>, target: usize) {
        let me = self.clone();
        self.tasks.spawn(async move {
            let s = me.dial(target).await;
            me.lock().dialing -= 1;
            me.changed.notify_waiters();
            let Some(session) = s else { return };
            session
                .extra
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let span =
                info_span!("session", upstream = %me.name(), id = session.id, slot = "extra");
            let counted_ready = async {
                info!(host = %me.settings.describe(target), "extra session ready");
                let idle = me.settings.upstream.sessions.idle_timeout;
                let mut idle_since: Option<Instant> = None;
                loop {
                    tokio::select! {
                        _ = session.closed() => {
                            me.record_loss(&session, "extra session lost");
                            break true;
                        }
                        _ = me.stop.cancelled() => {
                            break me.drain(&session, "jumpgate shutting down").await;
                        }
                        _ = tokio::time::sleep(idle.min(Duration::from_secs(1))) => {}
                    }
                    if session.channels() > 0 {
                        idle_since = None;
                        continue;
                    }
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= idle && me.above_min() && session.try_retire() {
                        info!("idle extra session closed");
                        break me.drain(&session, "idle").await;
                    }
                }
            }
            .instrument(span)
            .await;
            me.forget(&session, counted_ready);
        });
    }

    fn above_min(&self) -> bool {
        let st = self.lock();
        st.sessions.iter().filter(|s| !s.is_dead()).count() > self.settings.upstream.sessions.min
    }
}

/// A channel handed to a listener; dropping it frees the session slot and
/// wakes anyone waiting for one.
pub struct Lease {
    guard: Option<ChannelGuard>,
    changed: Arc<Notify>,
    /// `jumpgate_channels_active` of this upstream.
    channels: prometheus::IntGauge,
}

impl Lease {
    pub fn guard(&mut self) -> Option<&mut ChannelGuard> {
        self.guard.as_mut()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.channels.dec();
        self.changed.notify_waiters();
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
        use rand::Rng;
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

    fn l(channels: usize, usable: bool) -> Load {
        Load { channels, usable }
    }

    #[test]
    fn least_loaded_usable_session_wins() {
        let live = [l(5, true), l(2, true), l(1, false), l(3, true)];
        assert_eq!(choose(&live, 10, 4, 0), Choice::Use(1));
    }

    #[test]
    fn full_pool_grows_one_dial_at_a_time() {
        let live = [l(10, true), l(10, true)];
        assert_eq!(choose(&live, 10, 4, 0), Choice::Dial);
        assert_eq!(choose(&live, 10, 4, 1), Choice::Wait);
        assert_eq!(choose(&live, 10, 2, 0), Choice::Wait);
        assert_eq!(choose(&[], 10, 2, 0), Choice::Dial);
    }

    #[test]
    fn stalled_sessions_get_nothing() {
        let live = [l(0, false)];
        assert_eq!(choose(&live, 10, 1, 0), Choice::Wait);
        assert_eq!(choose(&live, 10, 2, 0), Choice::Dial);
    }

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

    #[test]
    fn host_choice_avoids_hosts_in_backoff() {
        let now = Instant::now();
        let down = HostHealth {
            down_until: Some(now + Duration::from_secs(5)),
            failures: 1,
            ..HostHealth::default()
        };
        let busy = HostHealth {
            dialing: 1,
            ..HostHealth::default()
        };
        // A dial in flight counts as a session: the next goes elsewhere.
        assert_eq!(pick_host(&[busy, HostHealth::default()], &[], now), 1);
        let hosts = vec![down.clone(), HostHealth::default()];
        assert_eq!(pick_host(&hosts, &[], now), 1);
        let later = HostHealth {
            down_until: Some(now + Duration::from_secs(9)),
            failures: 2,
            ..HostHealth::default()
        };
        assert_eq!(pick_host(&[later, down], &[], now), 1);
    }
}
