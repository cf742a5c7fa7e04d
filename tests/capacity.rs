//! Capacity (issue 11): a default config holds at least 10,000 concurrent tunnels per
//! upstream through one real sshd (`ssh -D` opened 5,000; OpenSSH allows 16,384
//! channels per connection), and a pool that really is full refuses at once with
//! SOCKS 0x01 and a log line naming the limit, instead of a `connect_timeout` wait.
//! Every test is bounded in time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::support::socks;
use crate::support::{heavy_lock, targets, within, Gate, GateConfig, Sshd, SshdOptions};
use crate::support::{process, require};

/// Open files this test process needs for 10,000 tunnels: their client ends plus
/// slack. The echo target runs in a child process of its own (`EchoProcess`), so that
/// its 10,000 ends do not count here: a container may forbid raising the hard limit.
const NOFILE: u64 = 11_000;

/// The soft and hard RLIMIT_NOFILE of this process, from /proc/self/limits.
fn nofile() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("no 'Max open files' in /proc/self/limits");
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|w| {
            if w == "unlimited" {
                u64::MAX
            } else {
                w.parse().unwrap_or(0)
            }
        })
        .collect();
    (n[0], n[1])
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit with `prlimit`, as the
/// daemon does for itself; children spawned afterwards inherit it. Fails the test,
/// saying why, when the limit stays below `need`.
fn raise_nofile(need: u64) {
    let (soft, hard) = nofile();
    if soft < hard {
        process::run_ok(
            Command::new("prlimit")
                .arg("--pid")
                .arg(std::process::id().to_string())
                .arg(format!("--nofile={hard}:{hard}")),
            Duration::from_secs(10),
        );
    }
    let (soft, hard) = nofile();
    assert!(
        soft >= need,
        "this test needs {need} open files and the limit is {soft} (hard {hard}): \
         run it where the hard RLIMIT_NOFILE is at least {need}"
    );
}

/// An echo server in a python3 child process (asyncio, epoll), killed on drop.
struct EchoProcess {
    addr: SocketAddr,
    _child: process::ChildGuard,
}

const ECHO_PY: &str = r#"
import asyncio
async def echo(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def main():
    s = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"#;

impl EchoProcess {
    fn start() -> EchoProcess {
        let python = require::on_path(&["python3"], "python3");
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(ECHO_PY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = process::ChildGuard::spawn("echo.py", &mut cmd);
        let stdout = child.take_stdout().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the echo server's port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the echo server printed {line:?}, not its port"));
        EchoProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _child: child,
        }
    }
}

/// One echo round trip of `payload` on an open tunnel.
async fn echo_once(s: &mut TcpStream, payload: &[u8]) -> anyhow::Result<()> {
    s.write_all(payload).await?;
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back).await?;
    anyhow::ensure!(back == payload, "echo returned other bytes");
    Ok(())
}

/// 10,000 concurrent idle tunnels with the default pool settings (no pool keys in the
/// config) through one real sshd: all open, then every one of them echoes. On main the
/// default pool held 4 x 1,024 = 4,096 and the rest waited `connect_timeout` for 0x04.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_tunnels_with_the_defaults() {
    const TUNNELS: usize = 10_000;
    /// CONNECTs in flight at once while opening (a browser opens a few dozen).
    const IN_FLIGHT: usize = 64;
    let _heavy = heavy_lock().await;
    raise_nofile(NOFILE);
    within(Duration::from_secs(120), "10,000 tunnels", async {
        // The pool dials its extra sessions one at a time, well inside sshd's
        // default MaxStartups (10:30:100); the fd limit comes from this process.
        let sshd = Sshd::start_with(SshdOptions::default()).await;
        let echo = EchoProcess::start();
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let proxy = gate.socks_addr();
        let started = Instant::now();
        let opened = match open_all(proxy, echo.addr, TUNNELS, IN_FLIGHT).await {
            Ok(v) => v,
            Err(e) => panic!("{e}\ngate log (tail):\n{}", tail(&gate.log_text())),
        };
        let open_secs = started.elapsed().as_secs_f64();
        assert_eq!(opened.len(), TUNNELS);
        // All are open at once; now each echoes (bounded concurrency again).
        let echoed = Instant::now();
        let failures = echo_all(opened, IN_FLIGHT).await;
        assert!(
            failures.is_empty(),
            "{} of {TUNNELS} tunnels did not echo, e.g. {:?}\ngate log (tail):\n{}",
            failures.len(),
            &failures[..failures.len().min(5)],
            tail(&gate.log_text())
        );
        eprintln!(
            "{TUNNELS} tunnels opened in {open_secs:.1} s, all echoed in {:.1} s; sshd logins {}",
            echoed.elapsed().as_secs_f64(),
            sshd.logins()
        );
        assert!(
            gate.log_text().contains("tunnel capacity"),
            "the gate did not log its tunnel capacity at start:\n{}",
            tail(&gate.log_text())
        );
    })
    .await;
}

/// Opens `n` tunnels to `dest`, `in_flight` CONNECTs at a time; every one must succeed.
async fn open_all(
    proxy: SocketAddr,
    dest: SocketAddr,
    n: usize,
    in_flight: usize,
) -> Result<Vec<TcpStream>, String> {
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        set.spawn(async move {
            let r = socks::connect(proxy, dest).await;
            drop(permit);
            (i, r)
        });
    }
    let mut open = Vec::with_capacity(n);
    let mut failed = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((_, Ok(s))) => open.push(s),
            Ok((i, Err(e))) => failed.push(format!("tunnel {i}: {e:#}")),
            Err(e) => failed.push(format!("task: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(open)
    } else {
        Err(format!(
            "{} of {n} CONNECTs failed ({} opened), e.g. {:?}",
            failed.len(),
            open.len(),
            &failed[..failed.len().min(5)]
        ))
    }
}

/// One 16-byte echo on every tunnel, `in_flight` at a time; the failures.
async fn echo_all(tunnels: Vec<TcpStream>, in_flight: usize) -> Vec<String> {
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut set = JoinSet::new();
    for (i, mut s) in tunnels.into_iter().enumerate() {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return vec!["semaphore closed".into()];
        };
        set.spawn(async move {
            let payload = format!("tunnel {i:>9}\n").into_bytes();
            let r = tokio::time::timeout(Duration::from_secs(20), echo_once(&mut s, &payload))
                .await
                .map_err(|_| anyhow::anyhow!("no echo within 20 s"))
                .and_then(|r| r);
            drop(permit);
            // Keep the tunnel open until every echo is done: they are concurrent.
            (i, r, s)
        });
    }
    let mut failures = Vec::new();
    let mut keep = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((_, Ok(()), s)) => keep.push(s),
            Ok((i, Err(e), _)) => failures.push(format!("tunnel {i}: {e:#}")),
            Err(e) => failures.push(format!("task: {e}")),
        }
    }
    failures
}

/// The last 40 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// With `sessions = { min = 1, max = 1 }` and `max_channels_per_session = 3`, the 4th
/// CONNECT is refused at once (well under `connect_timeout`) with 0x01 (general
/// failure: the pool is short of a resource; 0x02 is for policy), and the log line
/// names the limit. Once a tunnel closes, the next CONNECT succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_at_once_and_names_the_limit() {
    within(Duration::from_secs(60), "full pool", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line("sessions = { min = 1, max = 1 }")
            .upstream_line("max_channels_per_session = 3")
            .connect_timeout("10s");
        let mut gate = Gate::start(&cfg).await;
        let proxy = gate.socks_addr();
        let mut open = Vec::new();
        for i in 0..3 {
            let mut s = socks::connect(proxy, echo.addr())
                .await
                .unwrap_or_else(|e| panic!("tunnel {i}: {e:#}\n{}", gate.log_text()));
            echo_once(&mut s, b"ping").await.expect("echo");
            open.push(s);
        }
        let asked = Instant::now();
        let code = socks::reply_code(proxy, 0x01, &echo.addr().into())
            .await
            .expect("a SOCKS reply to the 4th CONNECT");
        let took = asked.elapsed();
        assert_eq!(code, 0x01, "the 4th CONNECT's reply\n{}", gate.log_text());
        assert!(
            took < Duration::from_secs(2),
            "the 4th CONNECT waited {took:?} (connect_timeout is 10 s)"
        );
        let line = gate
            .wait_log(Duration::from_secs(5), |l| {
                l.contains("max_channels_per_session x sessions.max = 3 x 1 = 3")
            })
            .await;
        assert!(
            line.is_some(),
            "no log line names the limit:\n{}",
            gate.log_text()
        );
        // The three open tunnels still work, and a freed slot is used again.
        for s in &mut open {
            echo_once(s, b"still")
                .await
                .expect("echo after the refusal");
        }
        drop(open.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match socks::connect(proxy, echo.addr()).await {
                Ok(mut s) => {
                    echo_once(&mut s, b"again")
                        .await
                        .expect("echo on the freed slot");
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("no tunnel after one closed: {e:#}\n{}", gate.log_text()),
            }
        }
    })
    .await;
}
