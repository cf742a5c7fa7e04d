//! The `forward` listener kind (LocalForward, `ssh -L port:host:hostport`):
//! every accepted connection becomes a `direct-tcpip` channel to one fixed
//! destination, which the jump host resolves and connects. There is no
//! handshake and so no reply code: a failed open closes the client
//! connection, and the log says why (sshd's own text). The rest of a
//! client's life is `tunnel`'s.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, Instrument};

use super::tunnel::{self, Answer, Client, Dest, Request};
use super::{ClientTask, Protocol};
use crate::config::Endpoint;
use crate::ssh::session::OpenError;

/// The `forward` kind: its fixed destination.
pub(crate) struct Forward {
    /// As the jump host should resolve it.
    host: String,
    port: u16,
    /// `host:port` as shown in logs (`[v6]:port` for IPv6).
    shown: String,
}

impl Forward {
    pub(crate) fn new(host: &str, port: u16) -> Forward {
        let shown = Endpoint {
            host: host.to_owned(),
            port,
        }
        .to_string();
        Forward {
            host: host.to_owned(),
            port,
            shown,
        }
    }

    async fn serve(self: Arc<Self>, client: Client, tcp: TcpStream, force: CancellationToken) {
        // No protocol to answer in: a refused client is closed.
        if client.over_limit() {
            return;
        }
        let req = Request {
            host: self.host.clone(),
            port: self.port,
            dest: Dest::Fixed(self.shown.clone()),
            answer: Plain(tcp),
        };
        tunnel::connect(client, req, force).await;
    }
}

impl Protocol for Forward {
    fn kind(&self) -> &'static str {
        "forward"
    }

    fn destination(&self) -> Option<String> {
        Some(self.shown.clone())
    }

    fn serve_client(
        self: Arc<Self>,
        client: Client,
        tcp: TcpStream,
        force: CancellationToken,
    ) -> ClientTask {
        let span = info_span!("forward", listener = %client.ctx.name, conn = client.conn, peer = %client.peer);
        Box::pin(self.serve(client, tcp, force).instrument(span))
    }
}

/// A client with no protocol: it is answered by its connection staying
/// open, or closing.
struct Plain(TcpStream);

impl Answer for Plain {
    type Error = Infallible;

    async fn refuse(self, e: &OpenError, dest: &Dest) {
        // Like ssh -L: no protocol to answer in, so the client sees its
        // connection closed; the reason goes to the log.
        info!(to = %dest, error = %e, "forward failed, closing the client connection");
    }

    async fn accept(self) -> Result<(TcpStream, Bytes), Infallible> {
        Ok((self.0, Bytes::new()))
    }
}
