//! An echo server in the test process that counts the connections it has open,
//! so that a test can see a tunnel's far end close (or not), and a round trip on
//! an open tunnel with a deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// An echo server in this process that counts the connections it has open, so that a
/// test can see a tunnel's far end close (or not).
pub struct Echo {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// Decrements the live count when a connection task ends (or is aborted).
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Echo {
    pub async fn start(bind: SocketAddr) -> Echo {
        let listener = TcpListener::bind(bind)
            .await
            .unwrap_or_else(|e| panic!("echo: bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(AtomicUsize::new(0));
        let (acc, lv) = (accepted.clone(), live.clone());
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops every connection.
            let mut conns = JoinSet::new();
            // Runs until the Echo is dropped (abort).
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((mut stream, _)) = r else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        acc.fetch_add(1, Ordering::AcqRel);
                        lv.fetch_add(1, Ordering::AcqRel);
                        let guard = LiveGuard(lv.clone());
                        conns.spawn(async move {
                            let _guard = guard;
                            let (mut r, mut w) = stream.split();
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                            let _ = w.shutdown().await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Echo {
            addr,
            accepted,
            live,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `payload` on an open tunnel and reads it back, with a deadline.
pub async fn echo_on(s: &mut tokio::net::TcpStream, payload: &[u8]) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        s.write_all(payload).await?;
        let mut back = vec![0u8; payload.len()];
        s.read_exact(&mut back).await?;
        anyhow::ensure!(back == payload, "echo returned different bytes");
        Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("echo round trip took longer than 10 s"))?
}
