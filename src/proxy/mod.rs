//! Local proxy endpoints. Each listener kind turns client requests into
//! `Pool::open` calls and hands the channel to `relay`; `remote_forward`
//! serves the connections a jump host forwards to us.

pub mod forward;
pub mod remote_forward;
pub mod socks5;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ssh::pool::Pool;

/// Numbers client connections (all listeners) for their log span (`conn`).
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts on `listener` until `drain`, handing each client (with Nagle off
/// and a connection id) to `spawn`. Accept errors such as EMFILE back off
/// instead of spinning.
pub(crate) async fn accept_loop(
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

/// A configured listener of any kind.
#[derive(Clone)]
pub enum Listener {
    Socks5(Arc<socks5::Socks5Listener>),
    Forward(Arc<forward::ForwardListener>),
}

impl Listener {
    pub fn name(&self) -> &str {
        match self {
            Self::Socks5(l) => &l.name,
            Self::Forward(l) => &l.name,
        }
    }

    /// The `kind` as in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Socks5(_) => "socks5",
            Self::Forward(_) => "forward",
        }
    }

    pub fn upstream(&self) -> &Arc<Pool> {
        match self {
            Self::Socks5(l) => &l.upstream,
            Self::Forward(l) => &l.upstream,
        }
    }

    /// Accepts until `drain`; client tasks go on `tracker`.
    pub async fn serve(
        self,
        tcp: TcpListener,
        tracker: TaskTracker,
        drain: CancellationToken,
        force: CancellationToken,
    ) {
        match self {
            Self::Socks5(l) => l.serve(tcp, tracker, drain, force).await,
            Self::Forward(l) => l.serve(tcp, tracker, drain, force).await,
        }
    }
}
