//! The `socks5` listener kind: the handshake and the reply, on fast-socks5's
//! type-state server protocol (no-auth, CONNECT). Names are never resolved
//! here; they go as-is into `direct-tcpip` so the jump host resolves them.
//! The reply is sent only after the jump host confirmed or refused the
//! channel, with the code that says why (`reply_for`); the rest of a
//! client's life is `tunnel`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fast_socks5::server::{states, Socks5ServerProtocol, SocksServerError};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, Instrument};

use super::tunnel::{self, Answer, Client, Dest, Request};
use super::{ClientTask, Protocol};
use crate::metrics::ConnResult;
use crate::ssh::session::{FailureReason, OpenError};

/// Read buffer for the SOCKS handshake (a request is at most 262 bytes).
const HANDSHAKE_BUFFER: usize = 512;

/// The `socks5` kind.
pub(crate) struct Socks5;

impl Protocol for Socks5 {
    fn kind(&self) -> &'static str {
        "socks5"
    }

    fn serve_client(
        self: Arc<Self>,
        client: Client,
        tcp: TcpStream,
        force: CancellationToken,
    ) -> ClientTask {
        let span = info_span!("socks", listener = %client.ctx.name, conn = client.conn, peer = %client.peer);
        Box::pin(serve_client(client, tcp, force).instrument(span))
    }
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("SOCKS handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("SOCKS handshake: {0}")]
    Socks(#[from] SocksServerError),
}

type Stream = BufReader<TcpStream>;

async fn serve_client(client: Client, tcp: TcpStream, force: CancellationToken) {
    // fast-socks5 reads the handshake field by field; a small buffer
    // turns ~5 receive calls into ~2. Bytes the client sent past the
    // request (pipelined data) stay in it and are forwarded first.
    let tcp = BufReader::with_capacity(HANDSHAKE_BUFFER, tcp);
    let handshake = async {
        let proto = Socks5ServerProtocol::accept_no_auth(tcp).await?;
        proto.read_command().await
    };
    let within = client.ctx.handshake_timeout;
    let (proto, cmd, target) = match tokio::time::timeout(within, handshake).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            client.count(ConnResult::Failed);
            return log_client_error(ClientError::Socks(e));
        }
        Err(_) => {
            client.count(ConnResult::Failed);
            return log_client_error(ClientError::HandshakeTimeout(within));
        }
    };
    if client.over_limit() {
        let _ = proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
        return;
    }
    if !matches!(cmd, Socks5Command::TCPConnect) {
        debug!(command = ?cmd, "command not supported");
        let _ = proto.reply_error(&ReplyError::CommandNotSupported).await;
        client.count(ConnResult::Rejected);
        return;
    }
    let (host, port) = match &target {
        TargetAddr::Ip(sa) => (sa.ip().to_string(), sa.port()),
        TargetAddr::Domain(d, p) => (d.clone(), *p),
    };
    let req = Request {
        host,
        port,
        dest: Dest::Asked(target.to_string()),
        answer: Reply(proto),
    };
    tunnel::connect(client, req, force).await;
}

/// The SOCKS reply still owed to the client.
struct Reply(Socks5ServerProtocol<Stream, states::CommandRead>);

impl Answer for Reply {
    type Error = SocksServerError;

    async fn refuse(self, e: &OpenError, dest: &Dest) {
        let reply = reply_for(e);
        info!(target = %dest, error = %e, reply = reply.as_u8(), "connect failed");
        let _ = self.0.reply_error(&reply).await;
    }

    async fn accept(self) -> Result<(TcpStream, Bytes), SocksServerError> {
        // The bound address is not ours to tell (it is on the jump host).
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let tcp = self.0.reply_success(unspecified).await?;
        let early = Bytes::copy_from_slice(tcp.buffer());
        Ok((tcp.into_inner(), early))
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

/// The SOCKS reply for a failed open: not allowed (0x02) for the jump
/// host's policy, refused (0x05) or unreachable (0x04) by sshd's text,
/// unreachable for no session or a timeout, general failure (0x01) else,
/// a full pool included (we are short of a resource, as sshd's
/// resource-shortage refusal; 0x02 is for policy).
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
        OpenError::SessionGone | OpenError::Ssh(_) | OpenError::Full { .. } => {
            ReplyError::GeneralFailure
        }
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
        let full = OpenError::Full {
            upstream: "a".into(),
            limit: "max_channels_per_session x sessions.max = 3 x 1 = 3".into(),
        };
        assert_eq!(reply_for(&full).as_u8(), 0x01);
    }
}
