//! Wiring: from a validated `Config` to running listeners, upstream pools
//! and the admin endpoint. [`load_keys`] reads every upstream's keys,
//! [`Daemon::bind`] binds every socket (or fails before serving), and
//! [`Daemon::serve`] runs until the shutdown, in two phases (drain, then
//! force). The order, the first login and the readiness signal of the
//! commands that serve (`run`, `up`, `demo`) are `startup`'s.

mod ready;
pub mod shutdown;
pub mod startup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::StatusSource;
use crate::config::Config;
use crate::exit::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::limit::Limits;
use crate::proxy::remote_forward::{ForwardError, RemoteForwarder};
use crate::proxy::Listener;
use crate::ssh::identity::{self, IdentityError};
use crate::ssh::pool::Pool;
use crate::ssh::session::SessionSettings;
use crate::status::ListenerInfo;

pub use shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("upstream {upstream}: {source}")]
    Identity {
        upstream: String,
        source: IdentityError,
    },
    #[error("listener {listener}: cannot listen on {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Forward(#[from] ForwardError),
    #[error("{0}")]
    SpillDir(#[from] crate::tunnel_buffer::SpillDirError),
    #[error("cannot write the ready file {}: {source}", path.display())]
    ReadyFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Key problems are configuration (78: systemd should not restart);
    /// a busy port may free up (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            // A ready file that cannot be written is a wrong path given.
            Self::Identity { .. } | Self::SpillDir(_) | Self::ReadyFile { .. } => EXIT_CONFIG,
            Self::Bind { .. } | Self::Forward(_) => EXIT_RUNTIME,
        }
    }
}

/// Every upstream's identities, with the certificates found next to them
/// or named in `certificate_files`, in `config.upstreams` order. Also sets
/// the relay's budget from `[relay]` (failing on an unusable `spill_dir`),
/// which every session's buffers draw on.
pub fn load_keys(config: &Config) -> Result<Vec<SessionSettings>, DaemonError> {
    let budget =
        crate::tunnel_buffer::Budget::install(crate::tunnel_buffer::Limits::from(&config.relay))?;
    if *budget.limits() != crate::tunnel_buffer::Limits::from(&config.relay) {
        warn!(
            "[relay] changed: it takes effect at the next start (spill files in use depend on it)"
        );
    }
    config
        .upstreams
        .iter()
        .map(|u| {
            let ids = identity::load_upstream(u).map_err(|source| DaemonError::Identity {
                upstream: u.name.clone(),
                source,
            })?;
            Ok(SessionSettings::new(u.clone(), ids))
        })
        .collect()
}

/// Binds one of a listener's further addresses; an IPv6 one IPv6-only
/// (as ssh does), so that `[::]` and `0.0.0.0` on one port both bind.
fn bind_also(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// A bound listener, as logs and readiness signals show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    pub name: String,
    /// `kind` as in the config (`socks5`, `forward`).
    pub kind: &'static str,
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
}

/// Everything bound and loaded, not yet serving.
pub struct Daemon {
    upstreams: Vec<Arc<Pool>>,
    listeners: Vec<(Listener, TcpListener)>,
    admin: Option<TcpListener>,
    limits: Arc<Limits>,
}

impl Daemon {
    /// Binds every socket of `config`, serving through `upstreams` (one pool
    /// per `config.upstreams`, in its order; not started until `serve`).
    pub async fn bind(upstreams: Vec<Arc<Pool>>, config: &Config) -> Result<Daemon, DaemonError> {
        let limits = Limits::new(config.limits);
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let tcp = TcpListener::bind(l.bind)
                .await
                .map_err(|source| DaemonError::Bind {
                    listener: l.name.clone(),
                    addr: l.bind,
                    source,
                })?;
            let listener = Listener::new(l, upstreams[l.via].clone(), limits.clone());
            // `bind`'s port, so that port 0 gives one port on every address.
            let port = tcp.local_addr().map(|a| a.port()).unwrap_or(l.bind.port());
            listeners.push((listener.clone(), tcp));
            for also in &l.also_bind {
                let addr = SocketAddr::new(also.ip(), port);
                match bind_also(addr) {
                    Ok(tcp) => listeners.push((listener.clone(), tcp)),
                    // As ssh: served on `bind` already, so only a warning
                    // (a host without IPv6, say).
                    Err(e) => warn!(listener = %l.name, %addr, error = %e, "cannot listen"),
                }
            }
        }
        let admin = match config.admin {
            None => None,
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| DaemonError::Bind {
                            listener: "admin".into(),
                            addr,
                            source,
                        })?,
                )
            }
        };
        Ok(Daemon {
            upstreams,
            listeners,
            admin,
            limits,
        })
    }

    /// The bound listeners, in config order.
    pub fn listeners(&self) -> Vec<BoundListener> {
        self.listeners
            .iter()
            .filter_map(|(l, t)| {
                t.local_addr().ok().map(|addr| BoundListener {
                    name: l.name().to_owned(),
                    kind: l.kind(),
                    addr,
                })
            })
            .collect()
    }

    /// The admin endpoint's bound address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|t| t.local_addr().ok())
    }

    pub fn upstreams(&self) -> &[Arc<Pool>] {
        &self.upstreams
    }

    /// Serves until `shutdown.drain`, then drains within the grace period.
    /// An error (a refused remote forward with `exit_on_forward_failure`)
    /// drains too, and is returned once stopped.
    pub async fn serve(self, shutdown: Shutdown) -> Result<(), DaemonError> {
        for up in &self.upstreams {
            up.start();
        }
        let clients = TaskTracker::new();
        let accept_loops = TaskTracker::new();
        let forwarders: Vec<Arc<RemoteForwarder>> = self
            .upstreams
            .iter()
            .filter_map(|p| RemoteForwarder::new(p.clone()))
            .collect();
        let mut listener_infos: Vec<ListenerInfo> = self
            .listeners
            .iter()
            .map(|(l, t)| ListenerInfo {
                name: l.name().to_owned(),
                kind: l.kind().into(),
                bind: t.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                via: l.upstream().name().to_owned(),
            })
            .collect();
        listener_infos.extend(forwarders.iter().flat_map(|f| f.listener_infos()));
        let status = Arc::new(StatusSource {
            started: std::time::Instant::now(),
            pools: self.upstreams.clone(),
            listeners: listener_infos,
            limits: self.limits.clone(),
        });
        {
            // SIGUSR1: the /status JSON in the log, for a look without the
            // admin endpoint.
            let (status, dump, drain) = (
                status.clone(),
                shutdown.dump.clone(),
                shutdown.drain.clone(),
            );
            accept_loops.spawn(async move {
                loop {
                    tokio::select! {
                        _ = dump.notified() => {
                            match serde_json::to_string(&status.snapshot(false)) {
                                Ok(json) => info!(status = %json, "SIGUSR1: status"),
                                Err(e) => warn!(error = %e, "SIGUSR1: cannot render status"),
                            }
                        }
                        _ = drain.cancelled() => break,
                    }
                }
            });
        }
        // The first fatal error of a remote forward; it starts the drain.
        let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<ForwardError>(1);
        for f in forwarders {
            let (clients, drain, force) = (
                clients.clone(),
                shutdown.drain.clone(),
                shutdown.force.clone(),
            );
            let fatal = fatal_tx.clone();
            accept_loops.spawn(async move {
                if let Err(e) = f.run(clients, drain.clone(), force).await {
                    let _ = fatal.try_send(e);
                    drain.cancel();
                }
            });
        }
        drop(fatal_tx);
        if self.limits.is_active() {
            let (limits, drain) = (self.limits.clone(), shutdown.drain.clone());
            accept_loops.spawn(async move {
                // Forget per-client rate state that is back to full.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(60)) => limits.prune(),
                        _ = drain.cancelled() => break,
                    }
                }
            });
        }
        for (l, tcp) in self.listeners {
            if let Ok(addr) = tcp.local_addr() {
                match l.destination() {
                    Some(to) => {
                        info!(listener = %l.name(), kind = l.kind(), %addr, via = %l.upstream().name(), %to, "listening")
                    }
                    None => {
                        info!(listener = %l.name(), kind = l.kind(), %addr, via = %l.upstream().name(), "listening")
                    }
                }
            }
            accept_loops.spawn(l.serve(
                tcp,
                clients.clone(),
                shutdown.drain.clone(),
                shutdown.force.clone(),
            ));
        }
        accept_loops.close();
        let admin_stop = CancellationToken::new();
        let admin_tasks = TaskTracker::new();
        if let Some(tcp) = self.admin {
            if let Ok(addr) = tcp.local_addr() {
                info!(listener = %"admin", kind = "http", %addr, "listening");
            }
            admin_tasks.spawn(crate::admin::serve(
                tcp,
                status.clone(),
                shutdown.drain.clone(),
                admin_stop.clone(),
                admin_tasks.clone(),
            ));
        }

        shutdown.drain.cancelled().await;
        accept_loops.wait().await;
        clients.close();
        if !clients.is_empty() {
            info!(tunnels = clients.len(), grace = ?shutdown.grace, "waiting for open tunnels");
        }
        tokio::select! {
            _ = clients.wait() => {}
            _ = tokio::time::sleep(shutdown.grace) => {
                warn!(tunnels = clients.len(), "grace period over, closing remaining tunnels");
                shutdown.force.cancel();
            }
            _ = shutdown.force.cancelled() => {}
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), clients.wait()).await;
        for up in &self.upstreams {
            up.shutdown().await;
        }
        admin_stop.cancel();
        admin_tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), admin_tasks.wait()).await;
        info!("stopped");
        match fatal_rx.try_recv() {
            Ok(e) => Err(e.into()),
            Err(_) => Ok(()),
        }
    }
}
