//! Test support: a real sshd per test (`sshd`), the jumpgate process (`gate`), its
//! admin endpoint (`admin`), a raw SOCKS5 client (`socks`), local target servers
//! (`targets`), deterministic byte streams (`pattern`), network namespaces (`netns`),
//! process helpers (`process`), a faulty in-process jump host (`fault_host`) and the
//! machine's prerequisites (`require`: a test that cannot run fails and says what to
//! install).
//!
//! Everything here cleans up on `Drop` (processes killed by PID, temp dirs removed,
//! namespaces deleted) and every wait is bounded.

pub mod admin;
pub mod fault_host;
pub mod gate;
pub mod live_echo;
pub mod netns;
pub mod pattern;
pub mod process;
pub mod require;
#[cfg(test)]
mod selftest;
pub mod socks;
pub mod sshd;
pub mod sshd_life;
pub mod targets;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

pub use gate::{Gate, GateConfig};
pub use process::free_port;
pub use sshd::{CertAuthority, KeyKind, Sshd, SshdOptions};

/// Runs a test body under a deadline, so that no test can hang the suite.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {limit:?}"),
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn is_session_lost(l: &str) -> bool {
    l.contains("session lost")
}

pub fn is_upstream_ready(l: &str) -> bool {
    l.contains("upstream ready")
}

/// A loopback address where nothing listens (connections are refused).
pub fn refused_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Serialises the heaviest tests (stress) so that they do not compete for the two
/// cores with each other; other tests still run beside them.
pub async fn heavy_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// The result of a curl run.
#[derive(Debug)]
pub struct Curl {
    pub code: i32,
    pub body: String,
    pub stderr: String,
}

/// `curl -sS PROXY_FLAG PROXY URL` (`--socks5-hostname` or `--socks5`), run with the
/// offline resolver so that curl itself never sends a DNS query off the machine.
pub async fn curl(dir: &Path, proxy_flag: &str, proxy: SocketAddr, url: &str) -> Curl {
    let mut cmd = process::offline_tokio_command(dir, "curl");
    cmd.args(["-sS", "--max-time", "20", proxy_flag])
        .arg(proxy.to_string())
        .arg(url);
    let out = process::run_for(&mut cmd, Duration::from_secs(30)).await;
    Curl {
        code: out.status.code().unwrap_or(-1),
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
