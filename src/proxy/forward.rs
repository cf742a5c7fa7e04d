//! The `forward` listener (LocalForward, `ssh -L port:host:hostport`): every
//! accepted connection becomes a `direct-tcpip` channel to one fixed
//! destination, which the jump host resolves and connects. There is no
//! handshake and so no reply code: a failed open closes the client
//! connection, and the log says why (sshd's own text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use super::socks5::{Active, ListenerMetrics};
use crate::limit::Limits;
use crate::metrics::{self, ConnResult};
use crate::relay::{self, End};
use crate::ssh::pool::Pool;
use crate::ssh::session::{FailureReason, OpenError};

/// What a forward listener needs; shared by its client tasks.
pub struct ForwardListener {
    pub name: String,
    pub upstream: Arc<Pool>,
    /// The fixed destination, as the jump host should resolve it.
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    pub metrics: ListenerMetrics,
    pub limits: Arc<Limits>,
}

impl ForwardListener {
    /// `host:port` as shown in logs (`[v6]:port` for IPv6).
    pub fn destination(&self) -> String {
        crate::config::Endpoint {
            host: self.host.clone(),
            port: self.port,
        }
        .to_string()
    }

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
            let span = info_span!("forward", listener = %self.name, conn, %peer);
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
        let accepted = std::time::Instant::now();
        let m = &self.metrics;
        let _active = Active::new(m.active.clone());
        let outcome = |r: ConnResult| m.connections[r as usize].inc();
        let (_permit, refusal) = self.limits.admit(peer.ip());
        if let Some(limit) = refusal {
            debug!(limit = limit.label(), "rate limited: closing");
            m.rate_limited[limit as usize].inc();
            outcome(ConnResult::RateLimited);
            return;
        }
        let to = self.destination();
        let opened = self
            .upstream
            .open(&self.host, self.port, peer, self.connect_timeout)
            .await;
        m.connect_duration.observe(accepted.elapsed().as_secs_f64());
        let mut lease = match opened {
            Ok(l) => l,
            Err(e) => {
                // Like ssh -L: no protocol to answer in, so the client sees
                // its connection closed; the reason goes to the log.
                info!(%to, error = %e, "forward failed, closing the client connection");
                metrics::get()
                    .open_failures
                    .with_label_values(&[self.upstream.name(), e.reason_label()])
                    .inc();
                outcome(result_for(&e));
                return;
            }
        };
        let guard = lease.guard();
        let Some(channel) = guard.take() else { return };
        outcome(ConnResult::Ok);
        let session = guard.session().id;
        let stall = self.upstream.settings.upstream.stall_timeout;
        let stats = relay::run(
            tcp,
            bytes::Bytes::new(),
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
                info!(%to, session, up = stats.up, down = stats.down, secs, end = ?stats.end, "tunnel closed")
            }
            _ => {
                warn!(%to, session, up = stats.up, down = stats.down, secs, end = ?stats.end, "tunnel ended abnormally")
            }
        }
    }
}

/// The `result` label for a failed open: the jump host's policy said no
/// (rejected), or the destination or the session failed (failed), as the
/// SOCKS listener counts them.
fn result_for(e: &OpenError) -> ConnResult {
    match e {
        OpenError::Refused {
            reason: FailureReason::AdministrativelyProhibited,
            ..
        } => ConnResult::Rejected,
        _ => ConnResult::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prohibited_is_rejected_the_rest_failed() {
        let refused = |reason| OpenError::Refused {
            reason,
            text: "x".into(),
        };
        assert!(matches!(
            result_for(&refused(FailureReason::AdministrativelyProhibited)),
            ConnResult::Rejected
        ));
        assert!(matches!(
            result_for(&refused(FailureReason::ConnectFailed)),
            ConnResult::Failed
        ));
        assert!(matches!(
            result_for(&OpenError::Timeout),
            ConnResult::Failed
        ));
    }
}
