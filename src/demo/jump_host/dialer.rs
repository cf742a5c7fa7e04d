//! The target dialer: resolves and connects a `direct-tcpip` target the way sshd does,
//! and words a failure the way sshd does ("Connection refused", "Name or service not
//! known"), so clients see the same refusals from the demo host as from a real bastion.
//! Talks to the OS resolver and the target; used by the channel dispatch in `handler.rs`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use russh::ChannelOpenFailure;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

/// Resolving and connecting a `direct-tcpip` target, as a whole.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a target could not be reached. The `Display` text is what sshd would send as the
/// channel-open failure's description.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum DialError {
    #[error("invalid port {0}")]
    InvalidPort(u32),
    #[error("Name or service not known")]
    NameUnknown,
    #[error("Connection timed out")]
    TimedOut,
    /// `strerror(errno)` of the last address tried.
    #[error("{0}")]
    Connect(String),
}

impl DialError {
    /// `SSH_OPEN_CONNECT_FAILED` with sshd's description. `ChannelOpenFailure::ConnectFailed`
    /// always carries russh's "Connect failed"; `Other` with the same code puts our text
    /// on the wire, and clients decode code 2 as `ConnectFailed` as usual.
    pub(super) fn refusal(&self) -> ChannelOpenFailure {
        ChannelOpenFailure::Other {
            code: ChannelOpenFailure::ConnectFailed.code(),
            reason: self.to_string(),
        }
    }
}

/// Resolves and connects like sshd: every address in order, the last error wins.
pub(super) async fn connect_target(host: &str, port: u32) -> Result<TcpStream, DialError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let Ok(port) = u16::try_from(port) else {
        return Err(DialError::InvalidPort(port));
    };
    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                debug!(error = %e, "name resolution failed");
                Vec::new()
            }
            Err(_) => return Err(DialError::TimedOut),
        };
    if addrs.is_empty() {
        return Err(DialError::NameUnknown);
    }
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                debug!(%addr, "connected");
                return Ok(tcp);
            }
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "connect failed");
                last = Some(e);
            }
            Err(_) => return Err(DialError::TimedOut),
        }
    }
    Err(last.map_or(DialError::NameUnknown, |e| {
        DialError::Connect(sshd_error_text(&e))
    }))
}

/// `strerror(errno)`, as sshd sends it: io::Error's text without " (os error N)".
fn sshd_error_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return "Connection refused".to_owned();
    }
    let text = e.to_string();
    match text.rsplit_once(" (os error ") {
        Some((msg, _)) => msg.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_sshds() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(sshd_error_text(&refused), "Connection refused");
        let unreachable = io::Error::from_raw_os_error(101); // ENETUNREACH on Linux
        assert_eq!(sshd_error_text(&unreachable), "Network is unreachable");
        assert_eq!(
            DialError::NameUnknown.to_string(),
            "Name or service not known"
        );
        assert_eq!(DialError::TimedOut.to_string(), "Connection timed out");
    }

    #[test]
    fn refusal_is_connect_failed_with_our_text() {
        let refusal = DialError::Connect("Connection refused".into()).refusal();
        assert_eq!(refusal.code(), ChannelOpenFailure::ConnectFailed.code());
        assert!(
            matches!(&refusal, ChannelOpenFailure::Other { reason, .. } if reason == "Connection refused"),
            "{refusal:?}"
        );
    }

    #[tokio::test]
    async fn dials_refuses_and_rejects_bad_ports() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(connect_target("127.0.0.1", port.into()).await.is_ok());
        drop(listener);
        assert_eq!(
            connect_target("127.0.0.1", port.into()).await.unwrap_err(),
            DialError::Connect("Connection refused".into())
        );
        assert_eq!(
            connect_target("127.0.0.1", 70_000).await.unwrap_err(),
            DialError::InvalidPort(70_000)
        );
    }
}
