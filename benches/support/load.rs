//! The SOCKS5 load generator: raw no-auth CONNECT to an IPv4 address (greeting, method
//! reply, request, reply: the exchange curl does), then bulk transfers, connect loops,
//! echo round trips and idle tunnels. Every step has a deadline and every loop is
//! bounded in count and in time.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// No single step (connect, one read, one write) may take longer.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

/// Client reads and writes in bulk transfers.
const CHUNK: usize = 256 * 1024;

async fn step<T>(
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(STEP_LIMIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {e}")),
        Err(_) => Err(anyhow!("{what}: nothing within {STEP_LIMIT:?}")),
    }
}

/// A SOCKS5 CONNECT through `proxy` to `dest`; the stream once the reply is in.
pub async fn socks_connect(proxy: SocketAddr, dest: SocketAddrV4) -> Result<TcpStream> {
    let mut s = step("connect to the proxy", TcpStream::connect(proxy)).await?;
    s.set_nodelay(true).context("TCP_NODELAY")?;
    step("send greeting", s.write_all(&[5, 1, 0])).await?;
    let mut method = [0u8; 2];
    step("read method reply", s.read_exact(&mut method)).await?;
    if method != [5, 0] {
        bail!("the proxy answered the greeting with {method:?}");
    }
    let mut req = [0u8; 10];
    req[..4].copy_from_slice(&[5, 1, 0, 1]);
    req[4..8].copy_from_slice(&dest.ip().octets());
    req[8..].copy_from_slice(&dest.port().to_be_bytes());
    step("send request", s.write_all(&req)).await?;
    // ssh -D closes without a reply on failure: that shows up as an early EOF here.
    let mut head = [0u8; 4];
    step("read reply", s.read_exact(&mut head)).await?;
    if head[0] != 5 || head[1] != 0 {
        bail!("SOCKS reply {:#04x} for {dest}", head[1]);
    }
    let rest = match head[3] {
        1 => 6,
        4 => 18,
        3 => {
            let mut len = [0u8; 1];
            step("read reply", s.read_exact(&mut len)).await?;
            len[0] as usize + 2
        }
        other => bail!("SOCKS reply with address type {other}"),
    };
    let mut bound = [0u8; 18 + 255];
    step("read reply", s.read_exact(&mut bound[..rest])).await?;
    Ok(s)
}

/// Asks the source for `bytes` on an open tunnel and reads them all; the time from
/// the request to the last byte.
async fn download_on(mut s: TcpStream, bytes: u64) -> Result<Duration> {
    let started = Instant::now();
    step("send size", s.write_all(&bytes.to_be_bytes())).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut got: u64 = 0;
    while got < bytes {
        let n = step("download", s.read(&mut buf)).await?;
        if n == 0 {
            bail!("download ended after {got} of {bytes} bytes");
        }
        got += n as u64;
    }
    Ok(started.elapsed())
}

/// `streams` parallel downloads of `bytes_each` (tunnels opened first, untimed); the
/// time until the last one finished.
pub async fn download(
    proxy: SocketAddr,
    source: SocketAddrV4,
    streams: usize,
    bytes_each: u64,
) -> Result<Duration> {
    let mut tunnels = Vec::with_capacity(streams);
    for _ in 0..streams {
        tunnels.push(socks_connect(proxy, source).await?);
    }
    let started = Instant::now();
    let mut set = JoinSet::new();
    for s in tunnels {
        set.spawn(download_on(s, bytes_each));
    }
    while let Some(r) = set.join_next().await {
        r.context("download task")??;
    }
    Ok(started.elapsed())
}

/// Sends `bytes` to the sink and half-closes; the time until the sink's count came
/// back (so every byte reached the target).
pub async fn upload(proxy: SocketAddr, sink: SocketAddrV4, bytes: u64) -> Result<Duration> {
    let mut s = socks_connect(proxy, sink).await?;
    let chunk = vec![0xa5u8; CHUNK];
    let started = Instant::now();
    let mut sent: u64 = 0;
    while sent < bytes {
        let n = (chunk.len() as u64).min(bytes - sent) as usize;
        step("upload", s.write_all(&chunk[..n])).await?;
        sent += n as u64;
    }
    step("half-close", s.shutdown()).await?;
    let mut count = [0u8; 8];
    step("read the sink's count", s.read_exact(&mut count)).await?;
    let got = u64::from_be_bytes(count);
    if got != bytes {
        bail!("the sink got {got} of {bytes} bytes");
    }
    Ok(started.elapsed())
}

pub struct Connects {
    pub ops: usize,
    pub failures: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Connect start to SOCKS reply, per successful op, in microseconds.
    pub latencies_us: Vec<f64>,
}

/// One op: CONNECT, one 32-byte echo round trip, close. Returns connect latency.
async fn connect_op(proxy: SocketAddr, echo: SocketAddrV4) -> Result<Duration> {
    let t = Instant::now();
    let mut s = socks_connect(proxy, echo).await?;
    let latency = t.elapsed();
    let msg = [0x5au8; 32];
    step("echo write", s.write_all(&msg)).await?;
    let mut back = [0u8; 32];
    step("echo read", s.read_exact(&mut back)).await?;
    if back != msg {
        bail!("echo returned other bytes");
    }
    Ok(latency)
}

/// `concurrency` workers doing ops back to back for `duration` or `max_ops` ops in all,
/// whichever comes first. A worker stops after 10 failures.
pub async fn connects(
    proxy: SocketAddr,
    echo: SocketAddrV4,
    concurrency: usize,
    duration: Duration,
    max_ops: usize,
) -> Result<Connects> {
    let started = Instant::now();
    let deadline = started + duration;
    let issued = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let issued = issued.clone();
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0usize;
            let mut first_error = None;
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max_ops {
                match connect_op(proxy, echo).await {
                    Ok(d) => lat.push(d.as_secs_f64() * 1e6),
                    Err(e) => {
                        failures += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                        if failures >= 10 {
                            break;
                        }
                    }
                }
            }
            (lat, failures, first_error)
        });
    }
    let mut out = Connects {
        ops: 0,
        failures: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    while let Some(r) = set.join_next().await {
        let (lat, failures, err) = r.context("connect worker")?;
        out.ops += lat.len();
        out.latencies_us.extend(lat);
        out.failures += failures;
        if out.first_error.is_none() {
            out.first_error = err;
        }
    }
    out.elapsed = started.elapsed();
    if out.ops == 0 {
        bail!(
            "no connect succeeded: {}",
            out.first_error.unwrap_or_default()
        );
    }
    Ok(out)
}

/// Small-message round trips (64 bytes) on one tunnel to the echo, after 100 untimed
/// ones; at most `iterations` or `limit`. Microseconds each.
pub async fn round_trips(
    proxy: SocketAddr,
    echo: SocketAddrV4,
    iterations: usize,
    limit: Duration,
) -> Result<Vec<f64>> {
    let mut s = socks_connect(proxy, echo).await?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut out = Vec::with_capacity(iterations);
    let started = Instant::now();
    for i in 0..iterations + 100 {
        if started.elapsed() > limit {
            break;
        }
        let t = Instant::now();
        step("echo write", s.write_all(&msg)).await?;
        step("echo read", s.read_exact(&mut back)).await?;
        if i >= 100 {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    if out.is_empty() {
        bail!("no round trip within {limit:?}");
    }
    Ok(out)
}

pub struct Idle {
    pub tunnels: Vec<TcpStream>,
    pub elapsed: Duration,
    pub failures: usize,
    pub first_error: Option<String>,
}

/// Opens `n` tunnels to the echo, at most `concurrency` handshakes in flight, and keeps
/// them open; stops starting new ones at `limit`.
pub async fn open_idle(
    proxy: SocketAddr,
    echo: SocketAddrV4,
    n: usize,
    concurrency: usize,
    limit: Duration,
) -> Result<Idle> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let deadline = started + limit;
    let mut set = JoinSet::new();
    let mut tunnels = Vec::with_capacity(n);
    let mut failures = 0usize;
    let mut first_error = None;
    let mut collect = |r: Result<
        Result<Result<TcpStream>, tokio::time::error::Elapsed>,
        tokio::task::JoinError,
    >,
                       tunnels: &mut Vec<TcpStream>| {
        match r {
            Ok(Ok(Ok(s))) => tunnels.push(s),
            Ok(Ok(Err(e))) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Ok(Err(_)) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("not open within {limit:?}"));
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("task: {e}"));
            }
        }
    };
    for _ in 0..n {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p.context("semaphore")?,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        set.spawn(async move {
            let _permit = permit;
            tokio::time::timeout_at(deadline, socks_connect(proxy, echo)).await
        });
        // Keep the set small: collect what is done.
        while let Some(r) = set.try_join_next() {
            collect(r, &mut tunnels);
        }
    }
    while let Some(r) = set.join_next().await {
        collect(r, &mut tunnels);
    }
    let elapsed = started.elapsed();
    Ok(Idle {
        tunnels,
        elapsed,
        failures,
        first_error,
    })
}

/// The slow-neighbour figure: tunnel B (echo, opened first so that both share the
/// proxy's first session) does 64-byte round trips for `duration` while tunnel A
/// downloads `bytes` and reads them at `rate` bytes/s. B's round trips in
/// microseconds; A is dropped at the end (its download unfinished).
pub async fn slow_neighbour(
    proxy: SocketAddr,
    source: SocketAddrV4,
    echo: SocketAddrV4,
    rate: u64,
    bytes: u64,
    duration: Duration,
) -> Result<Vec<f64>> {
    let mut b = socks_connect(proxy, echo).await?;
    let mut a = socks_connect(proxy, source).await?;
    step("send size", a.write_all(&bytes.to_be_bytes())).await?;
    let started = Instant::now();
    let reader = async {
        // 20 reads a second of rate/20 bytes each.
        let tick = Duration::from_millis(50);
        let mut buf = vec![0u8; (rate / 20).max(1) as usize];
        let mut next = Instant::now();
        while started.elapsed() < duration {
            step("slow read", a.read_exact(&mut buf)).await?;
            next += tick;
            tokio::time::sleep_until(next).await;
        }
        Result::<()>::Ok(())
    };
    let prober = async {
        let msg = [0x42u8; 64];
        let mut back = [0u8; 64];
        let mut out = Vec::new();
        while started.elapsed() < duration {
            let t = Instant::now();
            step("neighbour echo write", b.write_all(&msg)).await?;
            step("neighbour echo read", b.read_exact(&mut back)).await?;
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Result::<Vec<f64>>::Ok(out)
    };
    let (r, lat) = tokio::join!(reader, prober);
    r.context("tunnel A (slow reader)")?;
    let lat = lat.context("tunnel B (neighbour)")?;
    if lat.is_empty() {
        bail!("no neighbour round trip within {duration:?}");
    }
    Ok(lat)
}
