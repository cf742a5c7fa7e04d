//! The pool as `/status` shows it (`crate::status` renders it): each host
//! with its health, each live session with its load and traffic, recent
//! errors. Read-only: nothing here changes the pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::Pool;
use crate::ssh::session::JumpSession;
use crate::status::{HostStatus, SessionStatus, UpstreamStatus};

impl Pool {
    /// Why the upstream is not ready, for `/readyz`: a refused key is said
    /// as such (it will not fix itself), anything else as no live session.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.is_ready() {
            return None;
        }
        let st = self.lock();
        let refused = st.hosts.iter().enumerate().find(|(_, h)| h.key_refused);
        Some(match refused {
            Some((i, h)) => format!(
                "upstream {}: key refused by {} ({} failed logins; retried every reconnect.max)",
                self.name(),
                self.settings.describe(i),
                h.failures
            ),
            None => format!("no live SSH session for upstream {}", self.name()),
        })
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
                key_refused: h.key_refused,
                last_error: h.last_error.clone(),
            })
            .collect();
        let sessions = live
            .iter()
            .map(|s| {
                let (up, down) = s.traffic();
                // A retiring session shows as "draining", the word users see.
                let state = if s.is_retired() {
                    "draining"
                } else if s.is_stalled() {
                    "stalled"
                } else {
                    "ready"
                };
                let extra = s.extra.load(Ordering::Relaxed);
                let (memory, disk) = s.relay().buffered();
                SessionStatus {
                    id: s.id,
                    host: self.settings.describe(s.host_index),
                    kind: if extra { "extra" } else { "slot" }.to_owned(),
                    state: state.to_owned(),
                    age_seconds: s.started.elapsed().as_secs_f64(),
                    channels: s.channels(),
                    bytes_up: up,
                    bytes_down: down,
                    buffered_memory_bytes: memory,
                    buffered_disk_bytes: disk,
                    parked: s.is_stalled(),
                    relay_buffers: s.relay().len(),
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
}
