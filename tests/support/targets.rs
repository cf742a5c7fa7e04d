//! Local destination servers that tunnels lead to, as tokio tasks on 127.0.0.1:0 (or
//! [::1]:0). Each one ends with its owner: dropping a [`Server`] aborts its accept loop
//! and every connection task.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::pattern;

/// A running target server.
pub struct Server {
    addr: SocketAddr,
    /// Connections accepted so far.
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connections: aborting it drops them all.
        self.task.abort();
    }
}

async fn serve<F, Fut>(what: &'static str, bind: SocketAddr, handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind(bind)
        .await
        .unwrap_or_else(|e| panic!("{what}: bind {bind}: {e}"));
    let addr = listener.local_addr().expect("local_addr");
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        // Runs until the owner drops the Server (abort).
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let fut = handler(stream);
                        conns.spawn(async move {
                            if let Err(e) = fut.await {
                                // Resets are normal when a client drops early.
                                if e.kind() != io::ErrorKind::ConnectionReset
                                    && e.kind() != io::ErrorKind::BrokenPipe
                                {
                                    eprintln!("[{what}] connection error: {e}");
                                }
                            }
                        });
                    }
                    Err(e) => {
                        eprintln!("[{what}] accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

fn loopback_v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Echoes every byte back; when the client half-closes, finishes echoing and closes.
pub async fn echo() -> Server {
    echo_on(loopback_v4()).await
}

/// [`echo`] on [::1].
pub async fn echo_v6() -> Server {
    echo_on(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))).await
}

async fn echo_on(bind: SocketAddr) -> Server {
    serve("echo", bind, |mut stream| async move {
        let (mut r, mut w) = stream.split();
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await
    })
    .await
}

/// Reads everything until the client half-closes, then replies with the 16-byte
/// [`pattern::Digest`] of what it read, and closes.
pub async fn sink() -> Server {
    serve("sink", loopback_v4(), |mut stream| async move {
        let digest = pattern::read_digest(&mut stream).await?;
        stream.write_all(&digest.to_bytes()).await?;
        stream.shutdown().await
    })
    .await
}

/// Writes `len` pattern bytes to every client, then closes (without reading).
pub async fn source(len: u64) -> Server {
    serve("source", loopback_v4(), move |mut stream| async move {
        pattern::write_pattern_unhashed(&mut stream, len).await?;
        stream.shutdown().await
    })
    .await
}

/// A minimal HTTP/1.1 server answering every request with `200 OK` and `body`.
pub async fn http(body: String) -> Server {
    let body = Arc::new(body);
    serve("http", loopback_v4(), move |mut stream| {
        let body = body.clone();
        async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // A request head is small: stop at its end, at EOF, or at 64 KiB.
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
                let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head"))??;
                if n == 0 {
                    return Ok(());
                }
                req.extend_from_slice(&buf[..n]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.shutdown().await
        }
    })
    .await
}
