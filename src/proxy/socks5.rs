//! The SOCKS5 listener: accept loop and per-client handling on fast-socks5's
//! type-state server protocol (no-auth, CONNECT). Names are never resolved
//! here; they go as-is into `direct-tcpip` so the jump host resolves them.
//! The reply is sent only after the jump host confirmed or refused the
//! channel, with the code that says why (`reply_for`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fast_socks5::server::{Socks5ServerProtocol, SocksServerError};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::limit::{Limits, Refusal};
use crate::metrics::{self, ConnResult};
use crate::relay::{self, End, Meter};
use crate::ssh::pool::Pool;
use crate::ssh::session::{FailureReason, OpenError};

/// Read buffer for the SOCKS handshake (a request is at most 262 bytes).
const HANDSHAKE_BUFFER: usize = 512;

/// What a SOCKS listener needs; shared by its client tasks.
pub struct Socks5Listener {
    pub name: String,
    pub upstream: Arc<Pool>,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    /// Metric handles resolved once, so the data path does no label lookups.
    pub metrics: ListenerMetrics,
    /// `[limits]`, shared by every listener.
    pub limits: Arc<Limits>,
}

/// This listener's series (and its upstream's, for latency and bytes).
pub struct ListenerMetrics {
    /// Indexed by `ConnResult as usize`.
    pub(crate) connections: [prometheus::IntCounter; 4],
    pub(crate) active: prometheus::IntGauge,
    pub(crate) connect_duration: prometheus::Histogram,
    pub(crate) meter: Meter,
    /// `jumpgate_rate_limited_total`: client rate, then max connections.
    pub(crate) rate_limited: [prometheus::IntCounter; 2],
}

impl ListenerMetrics {
    pub fn new(listener: &str, upstream: &str) -> ListenerMetrics {
        let m = metrics::get();
        let conn = |r: ConnResult| m.connections.with_label_values(&[listener, r.as_str()]);
        ListenerMetrics {
            connections: [
                conn(ConnResult::Ok),
                conn(ConnResult::Rejected),
                conn(ConnResult::Failed),
                conn(ConnResult::RateLimited),
            ],
            active: m.connections_active.with_label_values(&[listener]),
            connect_duration: m.connect_duration.with_label_values(&[upstream]),
            meter: Meter {
                up: m.transferred.with_label_values(&[upstream, "up"]),
                down: m.transferred.with_label_values(&[upstream, "down"]),
            },
            rate_limited: [Refusal::ClientRate, Refusal::MaxConnections]
                .map(|r| m.rate_limited.with_label_values(&[listener, r.label()])),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("SOCKS handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("SOCKS handshake: {0}")]
    Socks(#[from] SocksServerError),
}

impl Socks5Listener {
    /// Accepts until `drain` is cancelled; client tasks go on `tracker`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tracker: TaskTracker,
        drain: CancellationToken,
        force: CancellationToken,
    ) {
        let name = self.name.clone();
        super::accept_loop(&name, listener, drain, |tcp, peer, conn| {
            let span = info_span!("socks", listener = %self.name, conn, %peer);
            tracker.spawn(
                self.clone()
                    .serve_client(tcp, peer, force.clone())
                    .instrument(span),
            );
        })
        .await;
    }

    async fn serve_client(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        force: CancellationToken,
    ) {
        // fast-socks5 reads the handshake field by field; a small buffer
        // turns ~5 receive calls into ~2. Bytes the client sent past the
        // request (pipelined data) stay in it and are forwarded first.
        let tcp = BufReader::with_capacity(HANDSHAKE_BUFFER, tcp);
        let accepted = std::time::Instant::now();
        let m = &self.metrics;
        let _active = Active::new(m.active.clone());
        let (_permit, refusal) = self.limits.admit(peer.ip());
        let outcome = |r: ConnResult| m.connections[r as usize].inc();
        let upstream = self.upstream.name();
        let handshake = async {
            let proto = Socks5ServerProtocol::accept_no_auth(tcp).await?;
            proto.read_command().await
        };
        let (proto, cmd, target) =
            match tokio::time::timeout(self.handshake_timeout, handshake).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    outcome(ConnResult::Failed);
                    return log_client_error(ClientError::Socks(e));
                }
                Err(_) => {
                    outcome(ConnResult::Failed);
                    return log_client_error(ClientError::HandshakeTimeout(self.handshake_timeout));
                }
            };
        if let Some(limit) = refusal {
            debug!(limit = limit.label(), "rate limited");
            m.rate_limited[limit as usize].inc();
            let _ = proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
            outcome(ConnResult::RateLimited);
            return;
        }
        if !matches!(cmd, Socks5Command::TCPConnect) {
            debug!(command = ?cmd, "command not supported");
            let _ = proto.reply_error(&ReplyError::CommandNotSupported).await;
            outcome(ConnResult::Rejected);
            return;
        }
        let (host, port) = match &target {
            TargetAddr::Ip(sa) => (sa.ip().to_string(), sa.port()),
            TargetAddr::Domain(d, p) => (d.clone(), *p),
        };
        let opened = self
            .upstream
            .open(&host, port, peer, self.connect_timeout)
            .await;
        let mut lease = match opened {
            Ok(l) => l,
            Err(e) => {
                let reply = reply_for(&e);
                info!(target = %target, error = %e, reply = reply.as_u8(), "connect failed");
                metrics::get()
                    .open_failures
                    .with_label_values(&[upstream, e.reason_label()])
                    .inc();
                m.connect_duration.observe(accepted.elapsed().as_secs_f64());
                let _ = proto.reply_error(&reply).await;
                outcome(match reply {
                    ReplyError::ConnectionNotAllowed => ConnResult::Rejected,
                    _ => ConnResult::Failed,
                });
                return;
            }
        };
        let guard = lease.guard();
        let Some(channel) = guard.take() else { return };
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        m.connect_duration.observe(accepted.elapsed().as_secs_f64());
        let tcp = match proto.reply_success(unspecified).await {
            Ok(t) => {
                outcome(ConnResult::Ok);
                t
            }
            Err(e) => {
                outcome(ConnResult::Failed);
                debug!(error = %e, "client left before the reply");
                // Not our close: EOF, and the server closes the channel.
                let stats = tokio::select! {
                    end = relay::close_after_eof(channel) => end,
                    _ = force.cancelled() => End::Shutdown,
                };
                debug!(?stats, "channel closed");
                return;
            }
        };
        let session = guard.session().id;
        let stall = self.upstream.settings.upstream.stall_timeout;
        let early = bytes::Bytes::copy_from_slice(tcp.buffer());
        let stats = relay::run(
            tcp.into_inner(),
            early,
            channel,
            guard,
            &m.meter,
            stall,
            force,
        )
        .await;
        let secs = stats.elapsed.as_secs_f64();
        match stats.end {
            End::Closed | End::ClientGone(_) => {
                info!(target = %target, session, up = stats.up, down = stats.down, secs, end = ?stats.end, "tunnel closed")
            }
            _ => {
                warn!(target = %target, session, up = stats.up, down = stats.down, secs, end = ?stats.end, "tunnel ended abnormally")
            }
        }
    }
}

/// Counts a connection in `jumpgate_connections_active` while alive.
pub(crate) struct Active(prometheus::IntGauge);

impl Active {
    pub(crate) fn new(g: prometheus::IntGauge) -> Active {
        g.inc();
        Active(g)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn log_client_error(e: ClientError) {
    // Clients that vanish or speak another protocol are routine: debug only,
    // except timeouts, which hint at a misconfigured client.
    match e {
        ClientError::HandshakeTimeout(_) => info!(error = %e, "client dropped"),
        ClientError::Socks(_) => debug!(error = %e, "client dropped"),
    }
}

/// The SOCKS reply for a failed open (DESIGN.md "SOCKS reply codes").
pub fn reply_for(e: &OpenError) -> ReplyError {
    match e {
        OpenError::Refused { reason, text } => match reason {
            FailureReason::AdministrativelyProhibited => ReplyError::ConnectionNotAllowed,
            FailureReason::ConnectFailed => {
                if text.to_ascii_lowercase().contains("refused") {
                    ReplyError::ConnectionRefused
                } else {
                    // Name not known, no route, timed out on the jump side.
                    ReplyError::HostUnreachable
                }
            }
            FailureReason::ResourceShortage | FailureReason::UnknownChannelType => {
                ReplyError::GeneralFailure
            }
        },
        OpenError::Timeout | OpenError::NoSession { .. } => ReplyError::HostUnreachable,
        OpenError::SessionGone | OpenError::Ssh(_) => ReplyError::GeneralFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reason: FailureReason, text: &str) -> u8 {
        reply_for(&OpenError::Refused {
            reason,
            text: text.into(),
        })
        .as_u8()
    }

    #[test]
    fn open_failures_map_to_socks_codes() {
        use FailureReason::*;
        assert_eq!(refused(ConnectFailed, "Connection refused"), 0x05);
        assert_eq!(refused(ConnectFailed, "Name or service not known"), 0x04);
        assert_eq!(refused(ConnectFailed, "No route to host"), 0x04);
        assert_eq!(refused(ConnectFailed, ""), 0x04);
        assert_eq!(refused(AdministrativelyProhibited, "open failed"), 0x02);
        assert_eq!(refused(ResourceShortage, ""), 0x01);
        assert_eq!(reply_for(&OpenError::Timeout).as_u8(), 0x04);
        let none = OpenError::NoSession {
            upstream: "a".into(),
            waited: Duration::from_secs(1),
        };
        assert_eq!(reply_for(&none).as_u8(), 0x04);
        assert_eq!(reply_for(&OpenError::SessionGone).as_u8(), 0x01);
    }
}
