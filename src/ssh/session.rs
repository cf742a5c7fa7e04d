//! One authenticated SSH connection to a jump host, carrying many
//! `direct-tcpip` channels. Connecting (TCP, handshake, host key, auth) and
//! opening channels live here; keeping a session alive and replacing it is
//! `ssh::upstream`'s job. A `JumpSession` is shared (`Arc`) by every tunnel on
//! it, and counts its channels so that a pool can pick the least loaded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::identity::Identity;
use super::known_hosts::{self, HostKeyError, Verdict};
use super::proxy_command;
use crate::config::{Endpoint, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ProxyCommand {command:?} {status} before the SSH login finished")]
    ProxyCommand { command: String, status: String },
    #[error(transparent)]
    ProxyCommandStart(#[from] proxy_command::ProxyCommandError),
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("could not resolve hostname {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{addr}: connect, SSH handshake and login did not finish within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{0}")]
    HostKey(#[from] HostKeyError),
    #[error(
        "{user}@{addr}: Permission denied (publickey): tried {tried}; the server accepts {methods}"
    )]
    Denied {
        user: String,
        addr: String,
        tried: String,
        methods: String,
    },
    #[error("ProxyJump: {from} could not open a channel to {to}: {reason}")]
    Hop {
        from: String,
        to: String,
        reason: String,
    },
    /// OpenSSH's wording, plus which config key to change.
    #[error(
        "Unable to negotiate with {addr}: no matching {what} found. Their offer: {theirs}; \
         ours ({key}): {ours}"
    )]
    NoCommonAlgorithm {
        addr: String,
        what: &'static str,
        key: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{addr}: SSH handshake failed: {source}")]
    Ssh { addr: String, source: russh::Error },
}

impl ConnectError {
    /// A handshake error from russh, with the cases a user can fix in the
    /// config told apart.
    fn handshake(addr: &Endpoint, source: russh::Error) -> ConnectError {
        let addr = addr.to_string();
        match source {
            russh::Error::NoCommonAlgo { kind, ours, theirs } => {
                let (what, key) = match kind {
                    russh::AlgorithmKind::Kex => ("key exchange method", "kex"),
                    russh::AlgorithmKind::Key => ("host key type", "host_key_algorithms"),
                    russh::AlgorithmKind::Cipher => ("cipher", "ciphers"),
                    russh::AlgorithmKind::Mac => ("MAC", "macs"),
                    russh::AlgorithmKind::Compression => ("compression method", "not configurable"),
                };
                ConnectError::NoCommonAlgorithm {
                    addr,
                    what,
                    key,
                    theirs: theirs.join(","),
                    ours: ours.join(","),
                }
            }
            source => ConnectError::Ssh { addr, source },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("jump host refused the channel ({reason}): {text}")]
    Refused { reason: FailureReason, text: String },
    #[error("channel open timed out")]
    Timeout,
    #[error("no SSH session to upstream {upstream} became ready within {waited:?}")]
    NoSession { upstream: String, waited: Duration },
    #[error("the SSH session is gone")]
    SessionGone,
    #[error("SSH error: {0}")]
    Ssh(russh::Error),
}

impl OpenError {
    /// The `reason` label of `jumpgate_channel_open_failures_total`.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::Refused { reason, .. } => match reason {
                FailureReason::AdministrativelyProhibited => "prohibited",
                FailureReason::ConnectFailed => "connect_failed",
                FailureReason::UnknownChannelType => "unknown_channel_type",
                FailureReason::ResourceShortage => "resource_shortage",
            },
            Self::Timeout => "timeout",
            Self::NoSession { .. } => "no_session",
            Self::SessionGone => "session_gone",
            Self::Ssh(_) => "ssh_error",
        }
    }
}

/// `ChannelOpenFailure` with Display and Eq (russh's is neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    AdministrativelyProhibited,
    ConnectFailed,
    UnknownChannelType,
    ResourceShortage,
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AdministrativelyProhibited => "administratively prohibited",
            Self::ConnectFailed => "connect failed",
            Self::UnknownChannelType => "unknown channel type",
            Self::ResourceShortage => "resource shortage",
        })
    }
}

impl From<&ChannelOpenFailure> for FailureReason {
    fn from(r: &ChannelOpenFailure) -> Self {
        match r {
            ChannelOpenFailure::AdministrativelyProhibited => Self::AdministrativelyProhibited,
            ChannelOpenFailure::ConnectFailed => Self::ConnectFailed,
            ChannelOpenFailure::UnknownChannelType => Self::UnknownChannelType,
            ChannelOpenFailure::ResourceShortage => Self::ResourceShortage,
            #[allow(unreachable_patterns)]
            _ => Self::ConnectFailed,
        }
    }
}

/// Everything needed to open sessions to one upstream; built once.
pub struct SessionSettings {
    pub upstream: Upstream,
    pub identities: Vec<Identity>,
    pub ssh: Arc<client::Config>,
    /// Where `forwarded-tcpip` channels (remote forwards) go; None: the
    /// jump host's attempts to open them are refused. Set by `Pool::new`.
    pub forwarded: Option<mpsc::Sender<ForwardedChannel>>,
}

/// A connection the jump host accepted on one of our remote forwards
/// (`forwarded-tcpip`), not yet confirmed: `ssh::remote_forward` connects
/// the local target first and then accepts or rejects it, as ssh -R does.
pub struct ForwardedChannel {
    pub session: Arc<JumpSession>,
    pub channel: Channel<client::Msg>,
    pub reply: client::ChannelOpenHandle,
    /// The address and port the jump host listened on (the allocated port
    /// when we asked for port 0).
    pub bound_host: String,
    pub bound_port: u32,
    /// Who connected to it, on the jump host's side.
    pub originator: String,
}

impl SessionSettings {
    pub fn new(upstream: Upstream, identities: Vec<Identity>) -> Self {
        let ssh = Arc::new(russh_config(&upstream));
        SessionSettings {
            upstream,
            identities,
            ssh,
            forwarded: None,
        }
    }

    /// How a target is shown in messages: `host:port`, plus the chain.
    pub fn describe(&self, target: usize) -> String {
        let t = self
            .upstream
            .hosts
            .get(target)
            .map(|e| e.to_string())
            .unwrap_or_default();
        if self.upstream.proxy_command.is_some() {
            format!("{t} (via ProxyCommand)")
        } else if self.upstream.proxy_jump.is_empty() {
            t
        } else {
            let chain: Vec<String> = self
                .upstream
                .proxy_jump
                .iter()
                .map(|h| h.endpoint.to_string())
                .collect();
            format!("{t} (via {})", chain.join(" -> "))
        }
    }

    /// The hops to `target`, outermost first, each with its login name.
    fn hops(&self, target: usize) -> Vec<(String, Endpoint)> {
        let u = &self.upstream;
        let mut hops: Vec<(String, Endpoint)> = u
            .proxy_jump
            .iter()
            .map(|h| {
                (
                    h.user.clone().unwrap_or_else(|| u.user.clone()),
                    h.endpoint.clone(),
                )
            })
            .collect();
        if let Some(e) = u.hosts.get(target) {
            hops.push((u.user.clone(), e.clone()));
        }
        hops
    }
}

fn known_hosts_files(u: &Upstream) -> known_hosts::Files<'_> {
    known_hosts::Files {
        primary: &u.known_hosts,
        extra: &u.extra_known_hosts,
    }
}

/// Our russh client settings; see DESIGN.md "Facts" for why each differs.
fn russh_config(u: &Upstream) -> client::Config {
    let mut c = client::Config {
        // Our defaults (AES-GCM first) or the upstream's lists.
        preferred: super::algorithms::preferred(&u.algorithms),
        ..Default::default()
    };
    // Without an explicit host_key_algorithms, ask for host certificates
    // (ahead of plain keys) only where known_hosts trusts a host CA, as ssh
    // does: elsewhere a certificate could only be checked as its plain key.
    let names: Vec<String> = u
        .hosts
        .iter()
        .chain(u.proxy_jump.iter().map(|h| &h.endpoint))
        .map(|e| known_hosts::host_entry_name(&e.host, e.port))
        .collect();
    if u.algorithms.host_key_algorithms.is_none()
        && known_hosts::has_cert_authority(known_hosts_files(u), &names)
    {
        c.preferred.host_key_certificates = c.preferred.key.clone();
    }
    // russh's own rekey aborts a busy session (Error::Pending when more than
    // 2 x window arrives during it). Let the server drive rekeys: OpenSSH
    // rekeys by its cipher's limit (1 GiB for chacha, 64 GiB for AES-GCM),
    // and russh follows a server-initiated rekey without trouble.
    c.limits.rekey_read_limit = 1 << 36;
    c.limits.rekey_write_limit = 1 << 36;
    c.limits.rekey_time_limit = Duration::from_secs(365 * 24 * 3600);
    // OpenSSH semantics: dead after `count_max` unanswered probes, i.e.
    // interval x count_max of silence. russh fails when its count exceeds
    // keepalive_max (0 disables), so count_max = 1 uses two half intervals.
    let (interval, max) = match u.keepalive.count_max {
        0 | 1 => (u.keepalive.interval / 2, 1),
        n => (u.keepalive.interval, n as usize - 1),
    };
    c.keepalive_interval = Some(interval);
    c.keepalive_max = max;
    c.nodelay = true;
    c
}

/// Read buffer between the jump host's socket and russh.
const SOCKET_READ_BUFFER: usize = 256 * 1024;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// An authenticated SSH connection.
pub struct JumpSession {
    pub id: u64,
    /// Index into the upstream's `hosts`.
    pub target: usize,
    handle: Handle<JumpHandler>,
    /// ProxyJump hops we tunnel through; kept alive, never used directly.
    _outer: Vec<Handle<JumpHandler>>,
    /// The ProxyCommand carrying the connection, killed with the session.
    _proxy: Option<tokio::process::Child>,
    /// Cancelled when the session task ends (disconnect, error, keepalive).
    dead: CancellationToken,
    /// Open-failure texts, which russh gives only to the handler.
    failures: Arc<FailureTexts>,
    /// Live channels on this session, for load balancing and metrics.
    channels: AtomicUsize,
    /// Tunnels whose client stopped reading; such a session gets no new
    /// channels (russh's reader stalls with them, see `relay`).
    stalled: AtomicUsize,
    /// Set when an idle extra session is being closed: no new channels.
    retired: AtomicBool,
    /// Opened for a burst (above `sessions.min`), for status.
    pub extra: AtomicBool,
    pub started: std::time::Instant,
    /// Bytes relayed over the session's life, for status (client -> jump
    /// host, and back).
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Why the session ended, as russh reported it to the handler.
    ended: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for JumpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpSession")
            .field("id", &self.id)
            .field("channels", &self.channels.load(Ordering::Relaxed))
            .finish()
    }
}

/// The server's text for refused channel opens, in arrival order. russh hands
/// the opener only the reason code; the handler gets the text. Concurrent
/// failures on one session may swap texts, which at worst swaps 0x04/0x05.
#[derive(Default)]
struct FailureTexts {
    queue: Mutex<VecDeque<String>>,
    notify: Notify,
}

impl FailureTexts {
    fn push(&self, text: String) {
        if let Ok(mut q) = self.queue.lock() {
            // Bounded: texts nobody claims are dropped oldest first.
            if q.len() >= 64 {
                q.pop_front();
            }
            q.push_back(text);
        }
        self.notify.notify_one();
    }

    fn try_pop(&self) -> Option<String> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    async fn pop(&self, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.try_pop() {
                return t;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_pop().unwrap_or_default();
            }
        }
    }
}

struct JumpHandler {
    host: String,
    port: u16,
    known_hosts: std::path::PathBuf,
    /// Read-only known_hosts files (see `Upstream::extra_known_hosts`).
    extra_known_hosts: Vec<std::path::PathBuf>,
    policy: crate::config::HostKeyCheck,
    /// Cancels `JumpSession::dead` when russh drops the handler, which it
    /// does when the session task ends for any reason.
    _dead: DropGuard,
    failures: Arc<FailureTexts>,
    /// For `jumpgate_keepalive_timeouts_total`.
    upstream: String,
    /// The host-key error, kept so that `connect` can report it instead of
    /// russh's generic "unknown key".
    key_error: Arc<Mutex<Option<HostKeyError>>>,
    ended: Arc<Mutex<Option<String>>>,
    /// Remote-forward connections go here; only on the last hop (the
    /// upstream itself), never on ProxyJump hops.
    forwarded: Option<mpsc::Sender<ForwardedChannel>>,
    /// The session this handler belongs to, set once it is built (after
    /// the handshake); forwarded channels are counted on it.
    session: Arc<OnceLock<Weak<JumpSession>>>,
}

impl JumpHandler {
    fn files(&self) -> known_hosts::Files<'_> {
        known_hosts::Files {
            primary: &self.known_hosts,
            extra: &self.extra_known_hosts,
        }
    }
}

impl client::Handler for JumpHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is checked against the CAs known_hosts trusts
        // for this host; with none, its key goes through known_hosts like a
        // plain key.
        let owned;
        let key: &PublicKey = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(c) => {
                let now = super::identity::unix_now();
                let (kh, host, port) = (self.files(), &self.host, self.port);
                match known_hosts::verify_certificate(self.policy, kh, host, port, c, now) {
                    Ok(Some(Verdict::Known)) => {
                        debug!(host = %self.host, port = self.port, key_id = c.key_id(),
                            "host certificate signed by a trusted CA");
                        return Ok(true);
                    }
                    Ok(Some(_)) => {
                        warn!(host = %self.host, port = self.port, key_id = c.key_id(),
                            "host certificate NOT checked (host_key_check = \"off\")");
                        return Ok(true);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if let Ok(mut slot) = self.key_error.lock() {
                            *slot = Some(e);
                        }
                        return Ok(false);
                    }
                }
                owned = PublicKey::new(c.public_key().clone(), "");
                &owned
            }
        };
        match known_hosts::verify(self.policy, self.files(), &self.host, self.port, key) {
            Ok(Verdict::Known) => Ok(true),
            Ok(Verdict::Learned) => {
                warn!(
                    host = %self.host, port = self.port,
                    fingerprint = %known_hosts::fingerprint(key),
                    file = %self.known_hosts.display(),
                    "permanently added host key (accept-new)"
                );
                Ok(true)
            }
            Ok(Verdict::Unchecked) => {
                warn!(
                    host = %self.host, port = self.port,
                    fingerprint = %known_hosts::fingerprint(key),
                    "host key NOT checked (host_key_check = \"off\")"
                );
                Ok(true)
            }
            Err(e) => {
                if let Ok(mut slot) = self.key_error.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!("the jump host disconnected: {}", info.message)
            }
            client::DisconnectReason::Error(russh::Error::KeepaliveTimeout) => {
                "keepalive timeout: the jump host stopped answering".to_owned()
            }
            client::DisconnectReason::Error(e) => e.to_string(),
        };
        if let Ok(mut slot) = self.ended.lock() {
            slot.get_or_insert(why);
        }
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => {
                if matches!(e, russh::Error::KeepaliveTimeout) {
                    warn!(host = %self.host, port = self.port, "keepalive timeout: jump host stopped answering");
                    crate::metrics::get()
                        .keepalive_timeouts
                        .with_label_values(&[self.upstream.as_str()])
                        .inc();
                }
                Err(e)
            }
        }
    }

    async fn channel_open_failure(
        &mut self,
        _channel: russh::ChannelId,
        _reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.failures.push(description.to_owned());
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Runs inside russh's session task: hand over, never wait here.
        let session = self.session.get().and_then(Weak::upgrade);
        let (Some(tx), Some(session)) = (&self.forwarded, session) else {
            debug!(
                bound = %connected_address, port = connected_port,
                "refusing a forwarded-tcpip channel we did not ask for"
            );
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let fc = ForwardedChannel {
            session,
            channel,
            reply,
            bound_host: connected_address.to_owned(),
            bound_port: connected_port,
            originator: format!("{originator_address}:{originator_port}"),
        };
        if let Err(e) = tx.try_send(fc) {
            let (why, fc) = match e {
                mpsc::error::TrySendError::Full(fc) => (ChannelOpenFailure::ResourceShortage, fc),
                // Draining: no new remote-forward connections.
                mpsc::error::TrySendError::Closed(fc) => {
                    (ChannelOpenFailure::AdministrativelyProhibited, fc)
                }
            };
            debug!(bound_port = connected_port, reason = ?why, "refusing a forwarded-tcpip channel");
            fc.reply.reject(why).await;
        }
        Ok(())
    }
}

impl JumpSession {
    /// TCP connect, SSH handshake, host key check and login (through every
    /// ProxyJump hop), all within the upstream's connect timeout.
    pub async fn connect(
        settings: &SessionSettings,
        target: usize,
    ) -> Result<Arc<JumpSession>, ConnectError> {
        let after = settings.upstream.connect_timeout;
        match tokio::time::timeout(after, Self::connect_inner(settings, target)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout {
                addr: settings.describe(target),
                after,
            }),
        }
    }

    async fn connect_inner(
        settings: &SessionSettings,
        target: usize,
    ) -> Result<Arc<JumpSession>, ConnectError> {
        let hops = settings.hops(target);
        let Some(((user0, first), rest)) = hops.split_first() else {
            return Err(ConnectError::Tcp {
                addr: settings.describe(target),
                source: std::io::Error::other("no such host index"),
            });
        };
        // russh reads each packet with two small reads straight from the
        // socket; a read buffer turns ~4 receive calls per 32 KiB packet into
        // ~1 (measured: 128k -> 33k recvfrom per 2 GiB, 7-19% less CPU).
        let me: Arc<OnceLock<Weak<JumpSession>>> = Arc::default();
        // Only the last hop (the upstream itself) gets remote-forward channels.
        let slot_if = |last: bool| last.then(|| me.clone());
        let mut proxy = None;
        let mut hop = match &settings.upstream.proxy_command {
            None => {
                let tcp = tokio::io::BufReader::with_capacity(
                    SOCKET_READ_BUFFER,
                    super::quickack::QuickAck(tcp_connect(first).await?),
                );
                handshake(settings, tcp, first, user0, slot_if(rest.is_empty())).await?
            }
            Some(template) => {
                let command = proxy_command::expand(template, first, user0)?;
                let (mut child, stream) = proxy_command::spawn(&command)?;
                let stream = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, stream);
                match handshake(settings, stream, first, user0, slot_if(rest.is_empty())).await {
                    Ok(h) => {
                        proxy = Some(child);
                        h
                    }
                    // A command that died explains the failure better
                    // than the handshake's "connection closed".
                    Err(e) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Err(match proxy_command::exit_status(&mut child) {
                            Some(status) => ConnectError::ProxyCommand { command, status },
                            None => e,
                        });
                    }
                }
            }
        };
        // Outer hops stay alive as long as the session: the inner SSH
        // connection runs inside their channels.
        let mut outer = Vec::new();
        for (i, (user, next)) in rest.iter().enumerate() {
            let stream = hop
                .handle
                .channel_open_direct_tcpip(next.host.clone(), u32::from(next.port), "127.0.0.1", 0)
                .await
                .map_err(|e| ConnectError::Hop {
                    from: hop.endpoint.to_string(),
                    to: next.to_string(),
                    reason: match e {
                        russh::Error::ChannelOpenFailure(r) => FailureReason::from(&r).to_string(),
                        other => other.to_string(),
                    },
                })?
                .into_stream();
            let inner =
                handshake(settings, stream, next, user, slot_if(i + 1 == rest.len())).await?;
            outer.push(hop);
            hop = inner;
        }
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(JumpSession {
            id,
            target,
            handle: hop.handle,
            _outer: outer.into_iter().map(|h| h.handle).collect(),
            _proxy: proxy,
            dead: hop.dead,
            failures: hop.failures,
            channels: AtomicUsize::new(0),
            stalled: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            extra: AtomicBool::new(false),
            started: std::time::Instant::now(),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            ended: hop.ended,
        });
        let _ = me.set(Arc::downgrade(&session));
        Ok(session)
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

    /// Counts a channel the jump host opened to us (a remote-forward
    /// connection) like one of ours: in the load, the stall state and the
    /// byte counters. No cap: refusing it would only break the forward.
    pub fn adopt(self: &Arc<Self>, channel: Channel<client::Msg>) -> ChannelGuard {
        self.channels.fetch_add(1, Ordering::AcqRel);
        ChannelGuard {
            channel: Some(channel),
            session: self.clone(),
            stalled: false,
        }
    }

    /// Takes a channel slot if the session is usable and below `cap`.
    pub fn try_reserve(self: &Arc<Self>, cap: usize) -> Option<ChannelGuard> {
        if !self.is_usable() {
            return None;
        }
        self.channels
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(ChannelGuard {
            channel: None,
            session: self.clone(),
            stalled: false,
        })
    }

    /// Alive, not retiring, and no tunnel stalled on it.
    pub fn is_usable(&self) -> bool {
        !self.is_dead()
            && !self.retired.load(Ordering::Acquire)
            && self.stalled.load(Ordering::Acquire) == 0
    }

    /// Marks an idle session as leaving, unless a channel slipped in.
    pub fn retire(&self) -> bool {
        self.retired.store(true, Ordering::Release);
        if self.channels() > 0 {
            self.retired.store(false, Ordering::Release);
            return false;
        }
        true
    }

    pub fn is_dead(&self) -> bool {
        self.dead.is_cancelled() || self.handle.is_closed()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        self.dead.cancelled().await
    }

    pub fn channels(&self) -> usize {
        self.channels.load(Ordering::Relaxed)
    }

    /// Whether a tunnel on this session has a client that stopped reading.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed) > 0
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
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

    /// Polite goodbye (SSH_MSG_DISCONNECT), used at shutdown.
    pub async fn disconnect(&self, why: &str) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, why, "en")
            .await;
    }
}

/// A channel slot on a session (and, once opened, the channel); dropping
/// it gives the slot back.
pub struct ChannelGuard {
    channel: Option<Channel<client::Msg>>,
    session: Arc<JumpSession>,
    /// Whether this tunnel counts in the session's `stalled`.
    stalled: bool,
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
                // The text follows the code within the same session task turn.
                let text = session.failures.pop(Duration::from_millis(100)).await;
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

    /// Marks (or clears) this tunnel as stalled: its client stopped reading
    /// and its buffer is full, so the session gets no new channels.
    pub fn set_stalled(&mut self, on: bool) {
        if on != self.stalled {
            self.stalled = on;
            if on {
                self.session.stalled.fetch_add(1, Ordering::AcqRel);
            } else {
                self.session.stalled.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// The channel, once; the guard still counts it until dropped.
    pub fn take(&mut self) -> Option<Channel<client::Msg>> {
        self.channel.take()
    }

    pub fn session(&self) -> &Arc<JumpSession> {
        &self.session
    }
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.set_stalled(false);
        self.session.channels.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long an open that we stopped waiting for may still complete, and how
/// long its channel then gets to close politely.
const LATE_OPEN_LIMIT: Duration = Duration::from_secs(60);

/// Closes a channel that the jump host confirmed after we gave up: EOF, then
/// wait for the server's CLOSE (closing first would leak it in russh).
async fn close_late_channel(
    open: tokio::task::JoinHandle<Result<Channel<client::Msg>, russh::Error>>,
) {
    let Ok(Ok(Ok(chan))) = tokio::time::timeout(LATE_OPEN_LIMIT, open).await else {
        return;
    };
    debug!(channel = ?chan.id(), "closing a channel confirmed after its open timed out");
    crate::relay::close_after_eof(chan).await;
}

/// One logged-in hop.
struct Hop {
    endpoint: Endpoint,
    handle: Handle<JumpHandler>,
    dead: CancellationToken,
    failures: Arc<FailureTexts>,
    ended: Arc<Mutex<Option<String>>>,
}

async fn tcp_connect(e: &Endpoint) -> Result<tokio::net::TcpStream, ConnectError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((e.host.as_str(), e.port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: e.host.clone(),
            source,
        })?
        .collect();
    let mut last = None;
    for a in &addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(ConnectError::Tcp {
        addr: e.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("name has no address")),
    })
}

/// SSH handshake, host key check and login over `stream`.
async fn handshake<S>(
    settings: &SessionSettings,
    stream: S,
    endpoint: &Endpoint,
    user: &str,
    // Some on the last hop: where the handler finds its session.
    session: Option<Arc<OnceLock<Weak<JumpSession>>>>,
) -> Result<Hop, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let u = &settings.upstream;
    let dead = CancellationToken::new();
    let failures = Arc::new(FailureTexts::default());
    let key_error = Arc::new(Mutex::new(None));
    let ended = Arc::new(Mutex::new(None));
    let handler = JumpHandler {
        host: endpoint.host.clone(),
        port: endpoint.port,
        known_hosts: u.known_hosts.clone(),
        extra_known_hosts: u.extra_known_hosts.clone(),
        policy: u.host_key_check,
        _dead: dead.clone().drop_guard(),
        failures: failures.clone(),
        upstream: u.name.clone(),
        key_error: key_error.clone(),
        ended: ended.clone(),
        forwarded: session.as_ref().and(settings.forwarded.clone()),
        session: session.unwrap_or_default(),
    };
    let mut handle = match client::connect_stream(settings.ssh.clone(), stream, handler).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(ke) = key_error.lock().ok().and_then(|mut s| s.take()) {
                return Err(ke.into());
            }
            return Err(ConnectError::handshake(endpoint, e));
        }
    };
    authenticate(&mut handle, settings, endpoint, user).await?;
    Ok(Hop {
        endpoint: endpoint.clone(),
        handle,
        dead,
        failures,
        ended,
    })
}

/// Public-key authentication: configured identity files first (each one's
/// certificates, then the key itself), then the agent's keys (as ssh does).
async fn authenticate(
    handle: &mut Handle<JumpHandler>,
    settings: &SessionSettings,
    endpoint: &Endpoint,
    user: &str,
) -> Result<(), ConnectError> {
    let u = &settings.upstream;
    let mut tried = Vec::new();
    let mut methods = String::from("(unknown)");
    let ssh_err = |source| ConnectError::Ssh {
        addr: endpoint.to_string(),
        source,
    };
    for id in &settings.identities {
        // Certificates first, then the plain key (ssh's order).
        for c in &id.certificates {
            let res = handle
                .authenticate_openssh_cert(user, id.key.clone(), c.cert.clone())
                .await
                .map_err(ssh_err)?;
            let problem = c
                .validity_problem(super::identity::unix_now())
                .or_else(|| c.caveat().map(str::to_owned));
            tried.push(match &problem {
                Some(p) => format!("certificate {} [{p}]", c.describe()),
                None => format!("certificate {}", c.describe()),
            });
            match res {
                client::AuthResult::Success => {
                    debug!(certificate = %c.path.display(), "authenticated");
                    return Ok(());
                }
                // The plain key's attempt that follows updates `methods`.
                client::AuthResult::Failure { .. } => {
                    info!(%user, host = %endpoint, certificate = %c.describe(),
                        problem = problem.as_deref().unwrap_or("none seen here"),
                        "certificate refused");
                }
            }
        }
        let hash = rsa_hash(handle, id.key.algorithm().is_rsa())
            .await
            .map_err(ssh_err)?;
        let key = PrivateKeyWithHashAlg::new(id.key.clone(), hash);
        let res = handle
            .authenticate_publickey(user, key)
            .await
            .map_err(ssh_err)?;
        tried.push(format!("{} ({})", id.path.display(), id.key.algorithm()));
        match res {
            client::AuthResult::Success => {
                debug!(key = %id.path.display(), "authenticated");
                return Ok(());
            }
            client::AuthResult::Failure {
                remaining_methods, ..
            } => methods = method_names(&remaining_methods),
        }
    }
    // agent_socket (ssh's IdentityAgent PATH) wins over $SSH_AUTH_SOCK.
    let socket = match &u.agent_socket {
        Some(p) => Some(p.clone()),
        None => std::env::var_os("SSH_AUTH_SOCK").map(std::path::PathBuf::from),
    };
    if let Some(socket) = socket.filter(|_| u.agent) {
        match russh::keys::agent::client::AgentClient::connect_uds(&socket).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for ident in ids {
                    let key = ident.public_key().into_owned();
                    let hash = rsa_hash(handle, key.algorithm().is_rsa())
                        .await
                        .map_err(ssh_err)?;
                    tried.push(format!("agent key {}", known_hosts::fingerprint(&key)));
                    match handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        Ok(client::AuthResult::Success) => return Ok(()),
                        Ok(client::AuthResult::Failure {
                            remaining_methods, ..
                        }) => methods = method_names(&remaining_methods),
                        Err(e) => warn!(error = %e, "agent could not sign"),
                    }
                }
            }
            Err(e) => warn!(error = %e, socket = %socket.display(), "the agent is unreachable"),
        }
    }
    if tried.is_empty() {
        tried.push(
            "no keys (set identity_files, or agent = true with SSH_AUTH_SOCK or agent_socket)"
                .into(),
        );
        // Nothing was tried, so the server has not said what it accepts: ask.
        if let Ok(client::AuthResult::Failure {
            remaining_methods, ..
        }) = handle.authenticate_none(user).await
        {
            methods = method_names(&remaining_methods);
        }
    }
    info!(%user, host = %endpoint, "authentication failed");
    Err(ConnectError::Denied {
        user: user.to_owned(),
        addr: endpoint.to_string(),
        tried: tried.join(", "),
        methods,
    })
}

/// The methods a server accepts, as OpenSSH lists them ("publickey,password").
fn method_names(methods: &russh::MethodSet) -> String {
    methods
        .iter()
        .map(<&str>::from)
        .collect::<Vec<_>>()
        .join(",")
}

async fn rsa_hash(
    handle: &Handle<JumpHandler>,
    is_rsa: bool,
) -> Result<Option<HashAlg>, russh::Error> {
    if !is_rsa {
        return Ok(None);
    }
    // Servers that do not announce server-sig-algs get SHA-256, which every
    // OpenSSH since 7.2 accepts (SHA-1 "ssh-rsa" is off since 8.8).
    Ok(handle
        .best_supported_rsa_hash()
        .await?
        .flatten()
        .or(Some(HashAlg::Sha256)))
}
