//! RemoteForward (`ssh -R`): the jump host listens for us and hands each
//! connection over as a `forwarded-tcpip` channel, which we connect to a
//! local target and relay (same relay and close rules as the listeners).
//!
//! One session of the pool holds all of an upstream's forwards (`tcpip-forward`
//! on every session would make sshd refuse the second bind): the oldest slot
//! session (`Pool::forward_owner`). When that session dies the bindings die
//! with it on the server, and they are requested again on the next owner, as
//! soon as the pool has one. A refused forward ends the daemon if
//! `exit_on_forward_failure` is set and the forward was never established
//! (ssh's ExitOnForwardFailure); later refusals, typically the old connection
//! still holding the port on the jump host after a reconnect, are retried
//! with backoff, as are all refusals without the option.
//!
//! The session's handler (`ssh::session`) passes incoming channels here
//! through a bounded queue (`Pool::take_forwarded`); `daemon` runs
//! `RemoteForwarder::run`. The accounting and the relay with its log line
//! are the listeners' (`tunnel`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::metrics::ListenerMetrics;
use super::tunnel::{self, Dest, Tally};
use crate::config::{Endpoint, RemoteForward};
use crate::metrics::ConnResult;
use crate::ssh::pool::{Jitter, Pool};
use crate::ssh::session::{ForwardedChannel, JumpSession};
use crate::status::ListenerInfo;

/// Retry schedule for refused forwards (exponential with full jitter).
const FORWARD_RETRY_INITIAL: std::time::Duration = std::time::Duration::from_millis(100);
const FORWARD_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "upstream {upstream}: remote forward {forward}: the jump host refused to listen on \
         {bind} (port in use there, or forbidden by its sshd_config); exiting because \
         exit_on_forward_failure = true"
    )]
    Refused {
        upstream: String,
        forward: String,
        bind: String,
    },
}

/// The remote forwards of one upstream.
pub struct RemoteForwarder {
    pool: Arc<Pool>,
    forwards: Vec<Forward>,
    /// What the jump host listens on now, for matching incoming channels.
    bound: Mutex<Vec<Bound>>,
}

struct Forward {
    cfg: RemoteForward,
    /// Its `listener` label in the metrics: `UPSTREAM:R<bind>`.
    label: String,
    metrics: Arc<ListenerMetrics>,
}

#[derive(Debug, Clone)]
struct Bound {
    forward: usize,
    /// The port the jump host listens on (the allocated one for port 0).
    port: u16,
    session: u64,
}

impl RemoteForwarder {
    /// None when the upstream has no remote forwards.
    pub fn new(pool: Arc<Pool>) -> Option<Arc<RemoteForwarder>> {
        let u = &pool.settings.upstream;
        if u.remote_forwards.is_empty() {
            return None;
        }
        let forwards = u
            .remote_forwards
            .iter()
            .map(|cfg| {
                let label = format!("{}:R{}", u.name, bind_of(cfg));
                Forward {
                    metrics: Arc::new(ListenerMetrics::new(&label, &u.name)),
                    label,
                    cfg: cfg.clone(),
                }
            })
            .collect();
        Some(Arc::new(RemoteForwarder {
            pool,
            forwards,
            bound: Mutex::new(Vec::new()),
        }))
    }

    /// The forwards as `/status` lists listeners.
    pub fn listener_infos(&self) -> Vec<ListenerInfo> {
        self.forwards
            .iter()
            .map(|f| ListenerInfo {
                name: f.label.clone(),
                kind: "remote_forward".into(),
                bind: format!("{} (on the jump host)", bind_of(&f.cfg)),
                via: self.pool.name().to_owned(),
            })
            .collect()
    }

    /// Keeps the forwards bound and serves their connections until `drain`;
    /// client tasks go on `tracker`. An error means: exit (see module doc).
    pub async fn run(
        self: Arc<Self>,
        tracker: TaskTracker,
        drain: CancellationToken,
        force: CancellationToken,
    ) -> Result<(), ForwardError> {
        let Some(mut incoming) = self.pool.take_forwarded() else {
            return Ok(());
        };
        let accept = async {
            while let Some(fc) = incoming.recv().await {
                let me = self.clone();
                let span =
                    info_span!("rforward", upstream = %self.pool.name(), from = %fc.originator);
                tracker.spawn(me.serve(fc, force.clone()).instrument(span));
            }
        };
        // Leaving drops `incoming`: the handler then refuses new channels.
        tokio::select! {
            r = self.keep_bound(&drain) => r,
            _ = accept => Ok(()),
            _ = drain.cancelled() => Ok(()),
        }
    }

    /// Requests every forward on the owner session, retries refused ones,
    /// and starts over on a new owner when it dies.
    async fn keep_bound(&self, drain: &CancellationToken) -> Result<(), ForwardError> {
        let u = &self.pool.settings.upstream;
        let mut established = vec![false; self.forwards.len()];
        let mut complained = vec![false; self.forwards.len()];
        loop {
            let owner = tokio::select! {
                s = self.pool.wait_forward_owner() => s,
                _ = drain.cancelled() => return Ok(()),
            };
            // Not the reconnect backoff: a refusal right after a reconnect
            // is usually the dead connection's process still holding the
            // port on the jump host for a few milliseconds; retry soon.
            let mut backoff = Jitter::new(crate::config::Backoff {
                initial: FORWARD_RETRY_INITIAL,
                max: u
                    .reconnect
                    .max
                    .clamp(FORWARD_RETRY_INITIAL, FORWARD_RETRY_MAX),
            });
            let mut pending: Vec<usize> = (0..self.forwards.len()).collect();
            loop {
                let mut refused = Vec::new();
                for i in pending {
                    match self.request(&owner, i).await {
                        Request::Bound(port) => {
                            established[i] = true;
                            complained[i] = false;
                            self.lock_bound().push(Bound {
                                forward: i,
                                port,
                                session: owner.id,
                            });
                        }
                        Request::Refused if u.exit_on_forward_failure && !established[i] => {
                            let f = &self.forwards[i].cfg;
                            let e = ForwardError::Refused {
                                upstream: self.pool.name().to_owned(),
                                forward: f.to_string(),
                                bind: bind_of(f),
                            };
                            error!(error = %e, "remote forward failed");
                            return Err(e);
                        }
                        Request::Refused => {
                            let f = &self.forwards[i].cfg;
                            if !complained[i] {
                                complained[i] = true;
                                error!(
                                    upstream = %self.pool.name(), forward = %f,
                                    "remote forward refused: the jump host will not listen on {}; retrying",
                                    bind_of(f)
                                );
                                self.pool.record_error(format!(
                                    "remote forward {f}: the jump host refused to listen on {}",
                                    bind_of(f)
                                ));
                            }
                            refused.push(i);
                        }
                        // The session is failing; the wait below sees it die.
                        Request::Failed => refused.push(i),
                    }
                }
                pending = refused;
                let retry = async {
                    if pending.is_empty() {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(backoff.next_wait()).await;
                };
                tokio::select! {
                    _ = owner.closed() => {
                        self.lock_bound().retain(|b| b.session != owner.id);
                        warn!(
                            upstream = %self.pool.name(), session = owner.id,
                            "remote forwards lost with their session; requesting them on the next one"
                        );
                        break;
                    }
                    _ = drain.cancelled() => return Ok(()),
                    _ = retry => {}
                }
            }
        }
    }

    /// One `tcpip-forward` on `owner`, bounded by the connect timeout.
    async fn request(&self, owner: &JumpSession, i: usize) -> Request {
        let f = &self.forwards[i].cfg;
        let within = self.pool.settings.upstream.connect_timeout;
        match tokio::time::timeout(within, owner.request_forward(&f.bind_host, f.bind_port)).await {
            Ok(Ok(port)) => {
                info!(
                    upstream = %self.pool.name(), session = owner.id, forward = %f,
                    bind = %Endpoint { host: f.bind_host.clone(), port },
                    "remote forward listening"
                );
                Request::Bound(port)
            }
            Ok(Err(russh::Error::RequestDenied)) => Request::Refused,
            Ok(Err(e)) => {
                debug!(forward = %f, error = %e, "tcpip-forward failed");
                Request::Failed
            }
            Err(_) => {
                warn!(forward = %f, after = ?within, "tcpip-forward got no answer");
                Request::Failed
            }
        }
    }

    fn lock_bound(&self) -> std::sync::MutexGuard<'_, Vec<Bound>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The forward an incoming channel belongs to: by the port the jump host
    /// reports on the owner session, and among several on that port (one per
    /// address) by the address.
    fn lookup(&self, fc: &ForwardedChannel) -> Option<usize> {
        let bound = self.lock_bound();
        let on_port: Vec<&Bound> = bound
            .iter()
            .filter(|b| u32::from(b.port) == fc.bound_port && b.session == fc.session.id)
            .collect();
        match on_port.as_slice() {
            [one] => Some(one.forward),
            many => many
                .iter()
                .find(|b| self.forwards[b.forward].cfg.bind_host == fc.bound_host)
                .map(|b| b.forward),
        }
    }

    /// Connects the local target, then confirms the channel (or refuses it
    /// with "connect failed", as ssh -R does) and relays.
    async fn serve(self: Arc<Self>, fc: ForwardedChannel, force: CancellationToken) {
        let Some(i) = self.lookup(&fc) else {
            warn!(bound = %fc.bound_host, port = fc.bound_port, "connection for a remote forward we do not hold: refused");
            fc.reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        };
        let f = &self.forwards[i];
        let tally = Tally::start(f.metrics.clone());
        let to = Endpoint {
            host: f.cfg.to_host.clone(),
            port: f.cfg.to_port,
        };
        let within = self.pool.settings.upstream.connect_timeout;
        let connected = tokio::time::timeout(
            within,
            TcpStream::connect((f.cfg.to_host.as_str(), f.cfg.to_port)),
        )
        .await;
        tally.connected();
        let tcp = match connected {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                info!(%to, error = %e, "remote forward: cannot connect to the target; refusing the channel");
                fc.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                tally.count(ConnResult::Failed);
                return;
            }
            Err(_) => {
                info!(%to, after = ?within, "remote forward: connecting to the target timed out; refusing the channel");
                fc.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                tally.count(ConnResult::Failed);
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        fc.reply.accept().await;
        tally.count(ConnResult::Ok);
        let channels = crate::metrics::get()
            .channels_active
            .with_label_values(&[self.pool.name()]);
        channels.inc();
        let mut guard = fc.session.adopt(fc.channel);
        let Some(channel) = guard.take() else {
            channels.dec();
            return;
        };
        let dest = Dest::Fixed(to.to_string());
        tunnel::relay(tcp, Bytes::new(), channel, &mut guard, &tally, &dest, force).await;
        drop(guard);
        channels.dec();
    }
}

enum Request {
    Bound(u16),
    Refused,
    Failed,
}

/// `host:port` of a forward's bind (`[v6]:port`), as configured.
fn bind_of(f: &RemoteForward) -> String {
    Endpoint {
        host: f.bind_host.clone(),
        port: f.bind_port,
    }
    .to_string()
}
