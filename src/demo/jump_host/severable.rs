//! [`Severable`]: a byte stream that fails once a cancellation token fires. russh spawns
//! each server session's task itself and gives no way to abort it, so the jump host
//! wraps every accepted TCP stream in one of these and ends the sessions it owns by
//! failing their sockets. Knows nothing about SSH; used by the accept loop in `mod.rs`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A stream whose reads, writes and flushes fail with `ConnectionAborted` once `token`
/// is cancelled. Shutdown still reaches the inner stream, so a FIN can go out.
pub(super) struct Severable<S> {
    inner: S,
    token: CancellationToken,
    /// Wakes the session's (always pending) read when the token is cancelled.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Severable<S> {
    pub(super) fn new(inner: S, token: CancellationToken) -> Self {
        let cut = Box::pin(token.clone().cancelled_owned());
        Severable { inner, token, cut }
    }

    fn severed() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "demo jump host stopped")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Severable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() || self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Severable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn passes_bytes_until_cut() {
        let (near, mut far) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = Severable::new(near, token.clone());
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        far.write_all(b"pong").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        token.cancel();
        let err = s.write_all(b"late").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        let err = s.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        // Even with bytes waiting, a severed stream reads nothing more.
        far.write_all(b"more").await.unwrap();
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn cut_wakes_a_pending_read() {
        let (near, _far) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = Severable::new(near, token.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            s.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished(), "read returned with nothing to read");
        token.cancel();
        let read = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the cut did not wake the read")
            .unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }
}
