//! One authenticated SSH connection to a jump host, carrying many
//! `direct-tcpip` channels. A `JumpSession` is shared (`Arc`) by every
//! tunnel on it and counts its channels so that the pool (`ssh::pool`) can
//! pick the least loaded; keeping sessions open and replacing dead ones is
//! the pool's job, not this module's.
//!
//! - `dial`: the transport (TCP, ProxyCommand, ProxyJump) and the handshake;
//! - `auth`: logging in with keys, certificates and the agent;
//! - `handler`: russh's callbacks (host key, disconnect reason, refused-open
//!   texts, forwarded channels, the data feed into `tunnel_buffer`);
//! - `forwarded_channel`: a remote-forward connection on its way to the pool;
//! - `channels`: channel slots (`ChannelGuard`) and opening channels;
//! - `settings`: the per-upstream russh configuration;
//! - `error`: `ConnectError`, `OpenError` and their labels.

mod auth;
mod channels;
mod dial;
mod error;
mod failure_texts;
mod forwarded_channel;
mod handler;
mod settings;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use russh::client::Handle;
use tokio_util::sync::CancellationToken;

pub use channels::ChannelGuard;
pub use error::{ConnectError, FailureReason, OpenError};
pub use forwarded_channel::ForwardedChannel;
pub use settings::{offered, SessionSettings};

use channels::ChannelCounts;
use failure_texts::FailureTexts;
use handler::{HandlerLink, JumpHandler};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// An authenticated SSH connection.
pub struct JumpSession {
    pub id: u64,
    /// Which of the upstream's `hosts` this session goes to (an index into
    /// it; see `SessionSettings::describe`).
    pub host_index: usize,
    handle: Handle<JumpHandler>,
    /// ProxyJump hops we tunnel through; kept alive, never used directly.
    _outer: Vec<Handle<JumpHandler>>,
    /// The ProxyCommand carrying the connection, killed with the session.
    _proxy: Option<tokio::process::Child>,
    /// Cancelled when the session task ends (disconnect, error, keepalive).
    dead: CancellationToken,
    /// Open-failure texts, which russh gives only to the handler.
    failures: Arc<FailureTexts>,
    /// Live channels, retiring: for load balancing,
    /// metrics and status.
    counts: ChannelCounts,
    /// Opened for a burst (above `sessions.min`), for status.
    pub extra: AtomicBool,
    pub started: Instant,
    /// Bytes relayed over the session's life, for status (client -> jump
    /// host, and back).
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Why the session ended, as russh reported it to the handler.
    ended: Arc<Mutex<Option<String>>>,
    /// The tunnels' inboxes, fed by the handler (`tunnel_buffer::Inboxes`).
    inboxes: Arc<crate::tunnel_buffer::Inboxes>,
}

impl std::fmt::Debug for JumpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpSession")
            .field("id", &self.id)
            .field("channels", &self.counts.open())
            .finish()
    }
}

impl JumpSession {
    /// TCP connect, SSH handshake, host key check and login (through every
    /// ProxyJump hop) to the host at `host_index`, all within the upstream's
    /// connect timeout.
    pub async fn connect(
        settings: &SessionSettings,
        host_index: usize,
    ) -> Result<Arc<JumpSession>, ConnectError> {
        let after = settings.upstream.connect_timeout;
        match tokio::time::timeout(after, dial::dial(settings, host_index)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout {
                addr: settings.describe(host_index),
                after,
            }),
        }
    }

    /// A session on the last hop's `handle`; `outer` and `proxy` carry it.
    fn new(
        host_index: usize,
        handle: Handle<JumpHandler>,
        link: HandlerLink,
        outer: Vec<Handle<JumpHandler>>,
        proxy: Option<tokio::process::Child>,
    ) -> JumpSession {
        JumpSession {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            host_index,
            handle,
            _outer: outer,
            _proxy: proxy,
            dead: link.dead,
            failures: link.failures,
            counts: ChannelCounts::default(),
            extra: AtomicBool::new(false),
            started: Instant::now(),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            ended: link.ended,
            inboxes: link.inboxes,
        }
    }

    /// Asks the jump host to listen on `host:port` for us (`tcpip-forward`);
    /// returns the port it listens on (the allocated one for port 0).
    pub async fn request_forward(&self, host: &str, port: u16) -> Result<u16, russh::Error> {
        let got = self.handle.tcpip_forward(host, u32::from(port)).await?;
        // OpenSSH answers a fixed port with an empty success (russh: 0).
        Ok(if port == 0 {
            u16::try_from(got).unwrap_or(0)
        } else {
            port
        })
    }

    /// Alive, not retiring, and its session task not parked on a tunnel's
    /// full inbox (it could not open a channel until that client reads).
    pub fn is_usable(&self) -> bool {
        !self.is_dead() && self.counts.takes_new() && !self.inboxes.is_parked()
    }

    /// Marks an idle session as retiring (no new channels), unless a
    /// channel slipped in; true if it is now retiring.
    pub fn try_retire(&self) -> bool {
        self.counts.try_retire()
    }

    pub fn is_dead(&self) -> bool {
        self.dead.is_cancelled() || self.handle.is_closed()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        self.dead.cancelled().await
    }

    pub fn channels(&self) -> usize {
        self.counts.open()
    }

    /// Whether the session task is parked at a tunnel's cap: a client
    /// stopped reading and its buffer (memory and spill) is full. The
    /// session takes no new tunnels until that client reads again.
    pub fn is_stalled(&self) -> bool {
        self.inboxes.is_parked()
    }

    /// The session's relay buffers, for `/status`.
    pub fn relay(&self) -> &crate::tunnel_buffer::Inboxes {
        &self.inboxes
    }

    pub fn is_retired(&self) -> bool {
        self.counts.is_retired()
    }

    pub fn count_up(&self, n: u64) {
        self.bytes_up.fetch_add(n, Ordering::Relaxed);
    }

    pub fn count_down(&self, n: u64) {
        self.bytes_down.fetch_add(n, Ordering::Relaxed);
    }

    /// (up, down) bytes over the session's life.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.bytes_up.load(Ordering::Relaxed),
            self.bytes_down.load(Ordering::Relaxed),
        )
    }

    /// Why the session ended, once it has ("connection closed" when russh
    /// gave no reason).
    pub fn end_reason(&self) -> String {
        self.ended
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| "connection closed".to_owned())
    }

    /// Polite goodbye (SSH_MSG_DISCONNECT), used when the pool retires a
    /// session (idle, or at shutdown).
    pub async fn disconnect(&self, why: &str) {
        // A session already gone has nobody to say goodbye to.
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, why, "en")
            .await;
    }
}
