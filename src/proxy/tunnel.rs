//! The per-client tail that every listener kind shares once its own
//! handshake said where the client wants to go: the `[limits]` verdict,
//! `Pool::open` under the connect timeout, a failure counted and answered
//! (the kind says how, through [`Answer`]), the relay, the one log line, and
//! the counters. Remote forwards, which connect a local target instead of
//! opening a channel, share the accounting ([`Tally`]) and [`relay`].
//! Talks to `ssh::pool` (leases), `relay` and `limit`.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::metrics::{Active, ListenerMetrics};
use super::ListenerContext;
use crate::limit::{Permit, Refusal};
use crate::metrics::{self, ConnResult};
use crate::relay::{self, End, Meter, RelayStats};
use crate::ssh::session::{ChannelGuard, FailureReason, OpenError};

/// One client connection's accounting: counted in
/// `jumpgate_connections_active` while alive, its result and its connect
/// latency counted by the code that knows them.
pub(crate) struct Tally {
    metrics: Arc<ListenerMetrics>,
    /// Accepted at; `jumpgate_connect_duration_seconds` runs from here.
    started: Instant,
    _active: Active,
}

impl Tally {
    pub(crate) fn start(metrics: Arc<ListenerMetrics>) -> Tally {
        Tally {
            _active: Active::new(metrics.active.clone()),
            metrics,
            started: Instant::now(),
        }
    }

    /// Counts how the connection ended (once per connection).
    pub(crate) fn count(&self, r: ConnResult) {
        self.metrics.connections(r).inc();
    }

    /// The destination answered (or failed to): the connect latency.
    pub(crate) fn connected(&self) {
        self.metrics
            .connect_duration
            .observe(self.started.elapsed().as_secs_f64());
    }

    pub(crate) fn meter(&self) -> &Meter {
        &self.metrics.meter
    }
}

/// An accepted client of a listener, with the `[limits]` verdict taken at
/// the door.
pub(crate) struct Client {
    pub(crate) ctx: Arc<ListenerContext>,
    pub(crate) peer: SocketAddr,
    /// Its number, for the log span.
    pub(crate) conn: u64,
    tally: Tally,
    /// Counts in `max_connections` for the client's whole life, handshake
    /// included, so slow handshakes cannot exceed the cap.
    _permit: Permit,
    refusal: Option<Refusal>,
}

impl Client {
    pub(crate) fn admit(ctx: Arc<ListenerContext>, peer: SocketAddr, conn: u64) -> Client {
        let tally = Tally::start(ctx.metrics.clone());
        let (permit, refusal) = ctx.limits.admit(peer.ip());
        Client {
            ctx,
            peer,
            conn,
            tally,
            _permit: permit,
            refusal,
        }
    }

    /// Whether a limit refused this client, counted (and logged) when it
    /// did; the kind then answers in its own terms and stops. Asked once,
    /// where the kind can still answer (after a handshake, if it has one).
    pub(crate) fn over_limit(&self) -> bool {
        let Some(limit) = self.refusal else {
            return false;
        };
        debug!(limit = limit.label(), "rate limited");
        self.tally.metrics.rate_limited(limit).inc();
        self.tally.count(ConnResult::RateLimited);
        true
    }

    /// Counts a client the kind turned away itself (a failed handshake, an
    /// unsupported command).
    pub(crate) fn count(&self, r: ConnResult) {
        self.tally.count(r);
    }
}

/// The destination as the tunnel's log lines name it.
pub(crate) enum Dest {
    /// What a client asked for (SOCKS): logged as `target`.
    Asked(String),
    /// A configured destination (forwards): logged as `to`.
    Fixed(String),
}

/// A client's name is the client's text: control characters (a `\n` that
/// would forge a log line, an ANSI escape) and other unprintable characters
/// are written escaped, as Rust's `{:?}` writes them, so that one log line
/// stays one line and says exactly what the client sent.
impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Asked(d) => {
                for c in d.chars() {
                    if c.is_control() || c == '\\' {
                        write!(f, "{}", c.escape_debug())?;
                    } else {
                        f.write_fmt(format_args!("{c}"))?;
                    }
                }
                Ok(())
            }
            Dest::Fixed(d) => f.write_str(d),
        }
    }
}

/// How a kind answers its client once the channel opened or failed.
pub(crate) trait Answer: Send {
    type Error: fmt::Display + Send;

    /// Tells the client why there is no tunnel (and logs why): the kind's one
    /// mapping from an open failure to its wire.
    fn refuse(self, e: &OpenError, dest: &Dest) -> impl Future<Output = ()> + Send;

    /// Tells the client the tunnel is open; returns its stream and what it
    /// already sent past its request (pipelined data, forwarded first).
    fn accept(self) -> impl Future<Output = Result<(TcpStream, Bytes), Self::Error>> + Send;
}

/// Where a client wants to go, and how to answer it.
pub(crate) struct Request<A> {
    /// As the jump host should resolve it (names are never resolved here).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) dest: Dest,
    pub(crate) answer: A,
}

/// Opens the client's channel and relays until the tunnel ends.
pub(crate) async fn connect<A: Answer>(client: Client, req: Request<A>, force: CancellationToken) {
    let Client {
        ctx,
        peer,
        tally,
        _permit,
        ..
    } = client;
    let opened = ctx
        .upstream
        .open(&req.host, req.port, peer, ctx.connect_timeout)
        .await;
    tally.connected();
    let mut lease = match opened {
        Ok(l) => l,
        Err(e) => {
            metrics::get()
                .open_failures
                .with_label_values(&[ctx.upstream.name(), e.reason_label()])
                .inc();
            req.answer.refuse(&e, &req.dest).await;
            tally.count(result_for(&e));
            return;
        }
    };
    let guard = lease.guard();
    let Some(channel) = guard.take() else { return };
    let (tcp, early) = match req.answer.accept().await {
        Ok(t) => {
            tally.count(ConnResult::Ok);
            t
        }
        Err(e) => {
            tally.count(ConnResult::Failed);
            debug!(error = %e, "client left before the reply");
            // Not our close: EOF, and the server closes the channel.
            let stats = tokio::select! {
                end = crate::tunnel_buffer::close_after_eof(channel) => End::from(end),
                _ = force.cancelled() => End::Shutdown,
            };
            debug!(?stats, "channel closed");
            return;
        }
    };
    relay(tcp, early, channel, guard, &tally, &req.dest, force).await;
}

/// Relays between the client and its channel, then logs the one line that
/// says how the tunnel ended.
pub(crate) async fn relay(
    tcp: TcpStream,
    early: Bytes,
    channel: crate::tunnel_buffer::Tunnel,
    guard: &mut ChannelGuard,
    tally: &Tally,
    dest: &Dest,
    force: CancellationToken,
) {
    let session = guard.session().id;
    let stats = relay::run(tcp, early, channel, guard, tally.meter(), force).await;
    log_end(dest, session, &stats);
}

fn log_end(dest: &Dest, session: u64, s: &RelayStats) {
    let secs = s.elapsed.as_secs_f64();
    let normal = matches!(s.end, End::Closed | End::ClientGone(_));
    match (dest, normal) {
        (Dest::Asked(target), true) => {
            info!(target = %target, session, up = s.up, down = s.down, secs, end = ?s.end, "tunnel closed")
        }
        (Dest::Asked(target), false) => {
            warn!(target = %target, session, up = s.up, down = s.down, secs, end = ?s.end, "tunnel ended abnormally")
        }
        (Dest::Fixed(to), true) => {
            info!(%to, session, up = s.up, down = s.down, secs, end = ?s.end, "tunnel closed")
        }
        (Dest::Fixed(to), false) => {
            warn!(%to, session, up = s.up, down = s.down, secs, end = ?s.end, "tunnel ended abnormally")
        }
    }
}

/// The `result` label for a failed open: the jump host's policy said no
/// (rejected), or the destination or the session failed (failed).
pub(crate) fn result_for(e: &OpenError) -> ConnResult {
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
    fn a_clients_name_cannot_forge_a_log_line() {
        let asked = Dest::Asked("evil\nINFO forged line\u{1b}[31m\\x:80".to_owned());
        assert_eq!(
            asked.to_string(),
            "evil\\nINFO forged line\\u{1b}[31m\\\\x:80"
        );
        let plain = Dest::Asked("db.lab.internal:5432".to_owned());
        assert_eq!(plain.to_string(), "db.lab.internal:5432");
        let unicode = Dest::Asked("bücher.example:443".to_owned());
        assert_eq!(unicode.to_string(), "bücher.example:443");
    }

    #[test]
    fn prohibited_is_rejected_the_rest_failed() {
        let refused = |reason| OpenError::Refused {
            reason,
            text: "x".into(),
        };
        assert_eq!(
            result_for(&refused(FailureReason::AdministrativelyProhibited)),
            ConnResult::Rejected
        );
        assert_eq!(
            result_for(&refused(FailureReason::ConnectFailed)),
            ConnResult::Failed
        );
        assert_eq!(result_for(&OpenError::Timeout), ConnResult::Failed);
        assert_eq!(result_for(&OpenError::SessionGone), ConnResult::Failed);
    }
}
