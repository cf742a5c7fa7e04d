//! The tasks that keep an upstream's sessions open: one supervisor per
//! `sessions.min` slot (connect, wait for the session to end, reconnect
//! with backoff), and one task per extra session dialed on demand, which
//! retires it after `idle_timeout` without channels. Dials record each
//! host's health (backoff, last error) for failover and `/status`.
//! Retiring a session means a polite SSH disconnect, at shutdown or when
//! idle; metrics count it as `draining` meanwhile.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::{pick_host, Jitter, Pool, State};
use crate::metrics::SessionConnect;
use crate::ssh::session::{ConnectError, JumpSession};

/// The shortest sleep between a slot's dials, so a dead host is never
/// hammered even when every backoff has ended.
const MIN_RETRY: Duration = Duration::from_millis(10);

/// How long `shutdown` waits for sessions to say goodbye.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// How often an extra session looks whether it has become idle (or less,
/// with a shorter `idle_timeout`).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How a session left the pool, for `forget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// It died under us: still counted as `ready`.
    Lost,
    /// We retired it: `retire` already moved it out of `ready`.
    Retired,
}

impl Pool {
    /// Starts the `min` slot supervisors; they run until `shutdown`.
    pub fn start(self: &Arc<Self>) {
        for slot in 0..self.settings.upstream.sessions.min {
            let me = self.clone();
            self.tasks.spawn(async move { me.supervise(slot).await });
        }
        // Without slots nobody would take the first login's session: it
        // serves as an extra one, closed when idle like the others.
        if self.settings.upstream.sessions.min == 0 {
            let seed = self.lock().seed.take();
            if let Some(s) = seed {
                let mut st = self.lock();
                st.dialing += 1;
                st.hosts[s.host_index].dialing += 1;
                drop(st);
                self.spawn_extra(s.host_index, Some(s));
            }
        }
    }

    /// Hands the pool a session logged in before it started (`jumpgate
    /// up`'s first login), so that the first slot serves with it instead of
    /// logging in a second time (a second confirmation with `ssh-add -c` or
    /// a FIDO key; two more logins through a ProxyJump).
    pub fn adopt(&self, session: Arc<JumpSession>) {
        self.lock().seed = Some(session);
    }

    /// The session `adopt` left for the first slot, as `dial` would
    /// have returned it.
    fn take_seed(&self) -> Option<Arc<JumpSession>> {
        let s = self.lock().seed.take()?;
        let m = crate::metrics::get();
        m.session_connects
            .with_label_values(&[self.name(), "ok"])
            .inc();
        let mut st = self.lock();
        st.hosts[s.host_index].dialing = st.hosts[s.host_index].dialing.saturating_sub(1);
        self.admit(&mut st, s.host_index, s.clone());
        Some(s)
    }

    /// Stops supervisors and on-demand sessions, with an SSH disconnect.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, self.tasks.wait()).await;
    }

    /// Connects to the host at `host`, recording the outcome in its health.
    async fn dial(&self, host: usize) -> Option<Arc<JumpSession>> {
        let m = crate::metrics::get();
        let connecting = m.sessions.with_label_values(&[self.name(), "connecting"]);
        connecting.inc();
        let r = tokio::select! {
            r = JumpSession::connect(&self.settings, host) => r,
            _ = self.stop.cancelled() => {
                connecting.dec();
                let mut st = self.lock();
                st.hosts[host].dialing = st.hosts[host].dialing.saturating_sub(1);
                return None;
            }
        };
        connecting.dec();
        let result = if r.is_ok() {
            SessionConnect::Ok
        } else {
            SessionConnect::Failed
        };
        m.session_connects
            .with_label_values(&[self.name(), result.label()])
            .inc();
        let mut st = self.lock();
        st.hosts[host].dialing = st.hosts[host].dialing.saturating_sub(1);
        match r {
            Ok(s) => {
                self.admit(&mut st, host, s.clone());
                Some(s)
            }
            Err(e) => {
                let h = &mut st.hosts[host];
                h.failures += 1;
                h.failed_at = Some(Instant::now());
                h.early_retry = true;
                let refused = matches!(e, ConnectError::Denied { .. });
                let first_refusal = refused && !h.key_refused;
                h.key_refused = refused;
                let reconnect = self.settings.upstream.reconnect;
                // A refused key will not fix itself, and every retry is a
                // failed login the bastion counts (fail2ban): go to the
                // maximum at once. Network failures back off gradually.
                let wait = if refused {
                    reconnect.max
                } else {
                    let mut backoff = Jitter::new(reconnect);
                    for _ in 1..h.failures.min(16) {
                        backoff.next_wait();
                    }
                    backoff.next_wait()
                };
                // The one deadline: /status shows it, the slot sleeps to it.
                h.down_until = Some(Instant::now() + wait);
                let (n, failures) = (self.settings.describe(host), h.failures);
                let text = e.to_string();
                if failures == 1 || h.last_error.as_deref() != Some(text.as_str()) {
                    self.errors
                        .push(format!("{n}: cannot open SSH session: {text}"));
                }
                h.last_error = Some(text);
                drop(st);
                if first_refusal {
                    error!(upstream = %self.name(), host = %n, error = %e, failures, retry_in = ?wait,
                        "key refused by the jump host; retrying only every reconnect.max");
                } else if failures == 1 && !refused {
                    error!(upstream = %self.name(), host = %n, error = %e, "cannot open SSH session");
                } else {
                    debug!(upstream = %self.name(), host = %n, error = %e, failures, "cannot open SSH session");
                }
                None
            }
        }
    }

    /// A new session joins the pool: counted ready, its host healthy.
    fn admit(&self, st: &mut State, host: usize, s: Arc<JumpSession>) {
        crate::metrics::get()
            .sessions
            .with_label_values(&[self.name(), "ready"])
            .inc();
        let h = &mut st.hosts[host];
        h.down_until = None;
        h.failures = 0;
        h.key_refused = false;
        h.failed_at = None;
        st.sessions.push(s);
        self.log_readiness(st);
    }

    fn log_readiness(&self, st: &mut State) {
        let ready = st.sessions.iter().any(|s| !s.is_dead());
        if ready != st.logged_ready {
            st.logged_ready = ready;
            if ready {
                info!(upstream = %self.name(), "upstream ready");
            } else if self.stop.is_cancelled() {
                // Shutting down: the sessions end because we end them.
                info!(upstream = %self.name(), "upstream closed");
            } else {
                warn!(upstream = %self.name(), "upstream NOT ready: no live session");
            }
        }
    }

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

    /// Retires a session: a polite disconnect, counted as `draining` (the
    /// user-facing word; no longer `ready`) meanwhile.
    async fn retire(&self, s: &Arc<JumpSession>, why: &str) -> Departure {
        let sessions = &crate::metrics::get().sessions;
        let draining = sessions.with_label_values(&[self.name(), "draining"]);
        sessions.with_label_values(&[self.name(), "ready"]).dec();
        draining.inc();
        s.disconnect(why).await;
        draining.dec();
        Departure::Retired
    }

    /// Removes a session that ended and tells waiters.
    fn forget(&self, s: &Arc<JumpSession>, how: Departure) {
        if how == Departure::Lost {
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
        let mut last_error_logged = false;
        while !self.stop.is_cancelled() {
            let (host, seeded) = {
                let mut st = self.lock();
                st.dialing += 1;
                let t = match &st.seed {
                    Some(s) => s.host_index,
                    None => pick_host(&st.hosts, &st.sessions, Instant::now()),
                };
                st.hosts[t].dialing += 1;
                (t, st.seed.is_some())
            };
            let s = match seeded.then(|| self.take_seed()).flatten() {
                Some(s) => Some(s),
                None => self.dial(host).await,
            };
            self.lock().dialing -= 1;
            self.changed.notify_waiters();
            match s {
                Some(session) => {
                    last_error_logged = false;
                    let span =
                        info_span!("session", upstream = %self.name(), id = session.id, slot);
                    let departure = async {
                        info!(host = %self.settings.describe(host), "session ready");
                        tokio::select! {
                            _ = session.closed() => {
                                self.record_loss(&session, "session lost, reconnecting");
                                Departure::Lost
                            }
                            _ = self.stop.cancelled() => {
                                self.retire(&session, "jumpgate shutting down").await
                            }
                        }
                    }
                    .instrument(span)
                    .await;
                    self.forget(&session, departure);
                }
                None => {
                    // Armed before the wait is read, so that a CONNECT that
                    // shortens the backoff in between still wakes us.
                    let retry_now = self.retry_now.notified();
                    tokio::pin!(retry_now);
                    retry_now.as_mut().enable();
                    let wait = self.next_dial_in();
                    if !last_error_logged {
                        // The error itself was logged by `dial`.
                        warn!(upstream = %self.name(), slot, retry_in = ?wait, "retrying with backoff");
                        last_error_logged = true;
                    } else {
                        debug!(upstream = %self.name(), slot, retry_in = ?wait, "retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = retry_now => {}
                        _ = self.stop.cancelled() => break,
                    }
                }
            }
        }
    }

    /// How long a slot whose dial failed sleeps: until the first host's
    /// backoff ends (`down_until`, the deadline `/status` shows), so that
    /// failover to a healthy host is not delayed and the shown retry time
    /// is the real one.
    fn next_dial_in(&self) -> Duration {
        let now = Instant::now();
        let st = self.lock();
        st.hosts
            .iter()
            .map(|h| {
                h.down_until
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
            })
            .min()
            .unwrap_or(Duration::ZERO)
            .max(MIN_RETRY)
    }

    /// An extra session for a burst; closed after `idle_timeout` unused.
    pub(super) fn spawn_on_demand(self: &Arc<Self>, host: usize) {
        self.spawn_extra(host, None);
    }

    /// An extra session: `seed` if given (already logged in), else dialed.
    fn spawn_extra(self: &Arc<Self>, host: usize, seed: Option<Arc<JumpSession>>) {
        let me = self.clone();
        self.tasks.spawn(async move {
            let s = match seed {
                Some(s) => {
                    me.lock().seed = Some(s);
                    me.take_seed()
                }
                None => me.dial(host).await,
            };
            me.lock().dialing -= 1;
            me.changed.notify_waiters();
            let Some(session) = s else { return };
            session.extra.store(true, Ordering::Relaxed);
            let span =
                info_span!("session", upstream = %me.name(), id = session.id, slot = "extra");
            let departure = async {
                info!(host = %me.settings.describe(host), "extra session ready");
                let idle = me.settings.upstream.sessions.idle_timeout;
                let mut idle_since: Option<Instant> = None;
                loop {
                    tokio::select! {
                        _ = session.closed() => {
                            me.record_loss(&session, "extra session lost");
                            break Departure::Lost;
                        }
                        _ = me.stop.cancelled() => {
                            break me.retire(&session, "jumpgate shutting down").await;
                        }
                        _ = tokio::time::sleep(idle.min(IDLE_CHECK)) => {}
                    }
                    if session.channels() > 0 {
                        idle_since = None;
                        continue;
                    }
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= idle && me.above_min() && session.try_retire() {
                        info!("idle extra session closed");
                        break me.retire(&session, "idle").await;
                    }
                }
            }
            .instrument(span)
            .await;
            me.forget(&session, departure);
        });
    }

    fn above_min(&self) -> bool {
        let st = self.lock();
        st.sessions.iter().filter(|s| !s.is_dead()).count() > self.settings.upstream.sessions.min
    }
}
