//! Local proxy endpoints. Each listener kind turns client requests into
//! `Pool::open` calls and hands the channel to `relay`; `remote_forward`
//! serves the connections a jump host forwards to us.

pub mod forward;
pub mod remote_forward;
pub mod socks5;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ssh::pool::Pool;

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
