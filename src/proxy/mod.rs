//! Local proxy endpoints: the listeners of `[[listener]]` and the remote
//! forwards of an upstream. The daemon sees a listener only as a
//! [`Listener`]: a name, a kind, an upstream and an accept loop; what the
//! kind does with a client (its handshake and its answer) sits behind the
//! [`Protocol`] trait, one file per kind (`socks5`, `forward`). Every kind
//! hands its request to the shared tail in `tunnel` (pool lease, channel
//! open, relay, log line, counters), which talks to `ssh::pool` and `relay`.
//! `remote_forward` serves the connections a jump host forwards to us.
//!
//! Adding a kind: a file with a type implementing [`Protocol`], and its line
//! in [`Listener::new`], the only place that matches on the configured kind.

pub mod forward;
pub mod metrics;
pub mod remote_forward;
pub mod socks5;
pub(crate) mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, ListenerKind};
use crate::limit::Limits;
use crate::ssh::pool::Pool;

pub use metrics::ListenerMetrics;
use tunnel::Client;

/// Numbers client connections (all listeners) for their log span (`conn`).
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// What a listener of any kind has, from its `[[listener]]` table; shared by
/// its client tasks.
pub struct ListenerContext {
    pub name: String,
    pub upstream: Arc<Pool>,
    /// For kinds with a handshake: how long a client may take to say where
    /// it wants to go.
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    /// Metric handles resolved once, so the data path does no label lookups.
    pub metrics: Arc<ListenerMetrics>,
    /// `[limits]`, shared by every listener.
    pub limits: Arc<Limits>,
}

/// A client task, as a [`Protocol`] hands it to the accept loop.
pub(crate) type ClientTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One kind of listener: how its clients say where they want to go and how
/// they hear the answer. Everything else is the same for every kind.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// `kind` as in the config, in `/status` and in `up`'s ready line.
    fn kind(&self) -> &'static str;

    /// The destination of a kind that has a fixed one (`forward`), for the
    /// "listening" log line.
    fn destination(&self) -> Option<String> {
        None
    }

    /// Serves one accepted, already admitted client (in its own span):
    /// the handshake, then `tunnel::connect`.
    fn serve_client(
        self: Arc<Self>,
        client: Client,
        tcp: TcpStream,
        force: CancellationToken,
    ) -> ClientTask;
}

/// A configured listener of any kind, as the daemon sees it.
#[derive(Clone)]
pub struct Listener {
    ctx: Arc<ListenerContext>,
    protocol: Arc<dyn Protocol>,
}

impl Listener {
    /// The listener `l` describes, tunnelling through `upstream`.
    pub fn new(l: &config::Listener, upstream: Arc<Pool>, limits: Arc<Limits>) -> Listener {
        // The one place where a configured kind becomes its implementation.
        let protocol: Arc<dyn Protocol> = match &l.kind {
            ListenerKind::Socks5 => Arc::new(socks5::Socks5),
            ListenerKind::Forward { host, port } => Arc::new(forward::Forward::new(host, *port)),
        };
        let ctx = ListenerContext {
            name: l.name.clone(),
            metrics: Arc::new(ListenerMetrics::new(&l.name, upstream.name())),
            upstream,
            handshake_timeout: l.handshake_timeout,
            connect_timeout: l.connect_timeout,
            limits,
        };
        Listener {
            ctx: Arc::new(ctx),
            protocol,
        }
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// The `kind` as in the config.
    pub fn kind(&self) -> &'static str {
        self.protocol.kind()
    }

    /// A fixed destination (`forward` listeners), as `host:port`.
    pub fn destination(&self) -> Option<String> {
        self.protocol.destination()
    }

    pub fn upstream(&self) -> &Arc<Pool> {
        &self.ctx.upstream
    }

    /// Accepts until `drain`; client tasks go on `tracker`, and end their
    /// tunnels when `force` is cancelled.
    pub async fn serve(
        self,
        tcp: TcpListener,
        tracker: TaskTracker,
        drain: CancellationToken,
        force: CancellationToken,
    ) {
        let Listener { ctx, protocol } = self;
        accept_loop(&ctx.name, tcp, drain, |tcp, peer, conn| {
            let client = Client::admit(ctx.clone(), peer, conn);
            tracker.spawn(protocol.clone().serve_client(client, tcp, force.clone()));
        })
        .await;
    }
}

/// Accepts on `listener` until `drain`, handing each client (with Nagle off
/// and a connection id) to `spawn`. Accept errors such as EMFILE back off
/// instead of spinning.
async fn accept_loop(
    name: &str,
    listener: TcpListener,
    drain: CancellationToken,
    mut spawn: impl FnMut(TcpStream, SocketAddr, u64),
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = drain.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(5);
                let _ = tcp.set_nodelay(true);
                spawn(
                    tcp,
                    peer,
                    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                );
            }
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracing::debug!(listener = %name, "stopped accepting");
}
