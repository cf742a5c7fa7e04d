//! What `/status` reports (JSON), the HTML page at `/` and `jumpgate status`
//! show: per upstream its hosts, sessions (state, age, channels, traffic) and
//! recent errors; listeners; limits. The types are shared by the server
//! (`admin::StatusSource::snapshot`, filled by `ssh::pool`, `limit` and
//! `proxy`) and the `jumpgate status` client, which deserialises them, so
//! both ends agree by construction. Plain data: this module imports nothing
//! of jumpgate's, so the layers that fill it do not depend on each other.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub version: String,
    pub uptime_seconds: f64,
    /// Every upstream has a live session and we are not draining (`/readyz`).
    pub ready: bool,
    pub draining: bool,
    pub upstreams: Vec<UpstreamStatus>,
    pub listeners: Vec<ListenerStatus>,
    pub limits: LimitsStatus,
    /// How many tunnels the process can hold and holds (`crate::capacity`);
    /// absent from older servers and from commands that do not serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    /// The relay's stated bounds and what it holds now, over all upstreams.
    #[serde(default)]
    pub relay: RelayStatus,
}

/// The process's tunnel capacity: the smaller of the pools' channel slots
/// and what the open-files limit allows, and the tunnels open now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapacityStatus {
    pub tunnels: usize,
    /// `max_channels_per_session x sessions.max`, summed over upstreams.
    pub channel_slots: usize,
    /// The soft RLIMIT_NOFILE in force (raised to the hard limit at start).
    pub nofile: u64,
    pub fd_tunnels: usize,
    pub open_tunnels: usize,
}

/// `[relay]`: the per-tunnel buffer's bounds, and what all tunnels hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelayStatus {
    /// Bytes a tunnel holds in memory before it spills (one SSH packet,
    /// 32 KiB, if that is more).
    pub memory_per_tunnel: u64,
    pub spill_dir: String,
    /// Disk bytes one tunnel may hold (0: no spilling).
    pub spill_per_tunnel: u64,
    /// Disk bytes all tunnels together may hold.
    pub spill_total: u64,
    /// Bytes held now, waiting for slow clients.
    pub buffered_memory_bytes: u64,
    pub buffered_disk_bytes: u64,
    /// Bytes ever written to spill files.
    pub spilled_bytes: u64,
    /// Times a tunnel reached a cap (its session then waited for it), by
    /// the cap's config key.
    pub caps_reached: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpstreamStatus {
    pub name: String,
    /// At least one live session.
    pub ready: bool,
    pub sessions_min: usize,
    pub sessions_max: usize,
    pub max_channels_per_session: usize,
    /// Session connects in flight.
    pub connecting: usize,
    pub hosts: Vec<HostStatus>,
    pub sessions: Vec<SessionStatus>,
    /// Newest first, at most `RECENT_ERRORS`.
    pub recent_errors: Vec<ErrorStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostStatus {
    /// `host:port`, with ` (via hop -> ...)` for a ProxyJump chain.
    pub address: String,
    /// Live sessions to this host.
    pub sessions: usize,
    pub connecting: usize,
    /// Failed connects in a row (0 when the last one worked).
    pub failures: u32,
    /// Set while the host is in backoff after a failure: the deadline the
    /// reconnect really sleeps to.
    pub retry_in_seconds: Option<f64>,
    /// The last login was refused (Permission denied): retried only every
    /// `reconnect.max`, since retrying a wrong key gets the source banned.
    #[serde(default)]
    pub key_refused: bool,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionStatus {
    pub id: u64,
    pub host: String,
    /// `slot` (kept open, `sessions.min`) or `extra` (opened for a burst).
    pub kind: String,
    /// `ready`, `stalled` (parked: a tunnel's buffer is at a cap, so the
    /// session waits for its client and takes no new channels) or
    /// `draining` (idle extra session being closed).
    pub state: String,
    pub age_seconds: f64,
    pub channels: usize,
    /// Client -> jump host, over the session's life.
    pub bytes_up: u64,
    /// Jump host -> client.
    pub bytes_down: u64,
    /// What its tunnels hold for slow clients now, in memory and on disk.
    #[serde(default)]
    pub buffered_memory_bytes: u64,
    #[serde(default)]
    pub buffered_disk_bytes: u64,
    /// A tunnel's buffer is at a cap: the session waits for that client
    /// and takes no new tunnels (its state then reads `stalled`).
    #[serde(default)]
    pub parked: bool,
    /// Relay buffers the session holds: one per open tunnel, plus channels
    /// opened and not yet handed to their tunnel. Back to 0 when idle.
    #[serde(default)]
    pub relay_buffers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorStatus {
    /// Seconds since the Unix epoch.
    pub unix_time: f64,
    pub age_seconds: f64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListenerStatus {
    pub name: String,
    pub kind: String,
    pub bind: String,
    pub via: String,
    pub connections_active: i64,
    /// `jumpgate_connections_total` of this listener, by result.
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub connections_rejected: u64,
    pub connections_rate_limited: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LimitsStatus {
    pub connections_per_second_per_client: Option<u32>,
    pub max_connections: Option<usize>,
    /// Client connections open now, over all listeners.
    pub connections: usize,
    /// Connections refused by a limit since start.
    pub rate_limited: u64,
}

/// How many recent errors an upstream keeps for `/status`.
pub const RECENT_ERRORS: usize = 20;

/// A bounded log of an upstream's recent errors (session connects that
/// failed, sessions lost, channel opens refused), for people, not alerts.
#[derive(Default)]
pub struct ErrorLog {
    entries: Mutex<VecDeque<(SystemTime, Instant, String)>>,
}

impl ErrorLog {
    pub fn push(&self, message: String) {
        let mut q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= RECENT_ERRORS {
            q.pop_front();
        }
        q.push_back((SystemTime::now(), Instant::now(), message));
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<ErrorStatus> {
        let q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        q.iter()
            .rev()
            .map(|(at, mono, message)| ErrorStatus {
                unix_time: at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                age_seconds: mono.elapsed().as_secs_f64(),
                message: message.clone(),
            })
            .collect()
    }
}

/// What a listener is, for status (its counters come from the metrics).
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub name: String,
    pub kind: String,
    pub bind: String,
    pub via: String,
}
