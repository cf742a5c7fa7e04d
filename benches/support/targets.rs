//! The destinations behind the jump host, in-process on 127.0.0.1: a source (reads an
//! 8-byte big-endian length, writes that many bytes, closes), a sink (reads to EOF,
//! answers with the 8-byte count) and an echo. Each counts its open connections so
//! that the bench can wait until a proxy has torn down the previous figure's tunnels
//! (sshd closes the target side when the channel closes).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A connection that says nothing for this long is dropped (bounds every task).
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Bytes per write on the source and per read on the sink.
const CHUNK: usize = 256 * 1024;

pub struct Targets {
    pub source: SocketAddrV4,
    pub sink: SocketAddrV4,
    pub echo: SocketAddrV4,
    /// Open target connections (all three servers).
    active: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Role {
    Source,
    Sink,
    Echo,
}

impl Targets {
    pub async fn start() -> Result<Targets> {
        let active = Arc::new(AtomicUsize::new(0));
        // Incompressible-looking bytes (the SSH transport does not compress anyway).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pattern: Arc<Vec<u8>> = Arc::new(
            (0..CHUNK)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        );
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for role in [Role::Source, Role::Sink, Role::Echo] {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .context("bind a target on 127.0.0.1:0")?;
            let addr = match l.local_addr()? {
                std::net::SocketAddr::V4(a) => a,
                other => anyhow::bail!("target bound {other}, expected IPv4"),
            };
            addrs.push(addr);
            let (active, pattern) = (active.clone(), pattern.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = l.accept().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let live = Live::new(active.clone());
                    let pattern = pattern.clone();
                    tokio::spawn(async move {
                        let _live = live;
                        let _ = match role {
                            Role::Source => source(tcp, &pattern).await,
                            Role::Sink => sink(tcp).await,
                            Role::Echo => echo(tcp).await,
                        };
                    });
                }
            }));
        }
        Ok(Targets {
            source: addrs[0],
            sink: addrs[1],
            echo: addrs[2],
            active,
            tasks,
        })
    }

    /// Open target connections right now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until at most `n` target connections are open; returns whether
    /// it got there.
    pub async fn wait_active_at_most(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.active() > n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits (bounded) until at least `n` target connections are open.
    pub async fn wait_active_at_least(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.active() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Counts one open connection while alive.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(c: Arc<AtomicUsize>) -> Live {
        c.fetch_add(1, Ordering::Relaxed);
        Live(c)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn idle_bounded<T>(f: impl std::future::Future<Output = std::io::Result<T>>) -> Result<T> {
    Ok(tokio::time::timeout(IDLE_LIMIT, f)
        .await
        .context("idle")??)
}

async fn source(mut tcp: TcpStream, pattern: &[u8]) -> Result<()> {
    let mut len = [0u8; 8];
    idle_bounded(tcp.read_exact(&mut len)).await?;
    let mut left = u64::from_be_bytes(len);
    while left > 0 {
        let n = (pattern.len() as u64).min(left) as usize;
        idle_bounded(tcp.write_all(&pattern[..n])).await?;
        left -= n as u64;
    }
    idle_bounded(tcp.shutdown()).await?;
    // Wait for the other side's close so that our side is not closed first.
    let mut rest = [0u8; 64];
    while idle_bounded(tcp.read(&mut rest)).await? > 0 {}
    Ok(())
}

async fn sink(mut tcp: TcpStream) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = idle_bounded(tcp.read(&mut buf)).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    idle_bounded(tcp.write_all(&total.to_be_bytes())).await?;
    idle_bounded(tcp.shutdown()).await?;
    Ok(())
}

async fn echo(mut tcp: TcpStream) -> Result<()> {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = idle_bounded(tcp.read(&mut buf)).await?;
        if n == 0 {
            break;
        }
        idle_bounded(tcp.write_all(&buf[..n])).await?;
    }
    idle_bounded(tcp.shutdown()).await?;
    Ok(())
}
