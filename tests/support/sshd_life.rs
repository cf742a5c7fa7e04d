//! Killing and restarting a test sshd the way a crash of the sshd service does:
//! the listener and every per-connection process it forked (SIGKILL, by PID, only
//! processes the test started), then the same sshd again on the same port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::process::{offline_command, ChildGuard};
use super::sshd::SSHD;
use super::Sshd;

/// The PID of an sshd's listener process, from the PidFile in its config.
pub fn sshd_pid(sshd: &Sshd) -> u32 {
    let file = sshd.dir().join("sshd.pid");
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", file.display()))
}

/// The parent PID of `pid` (from /proc/PID/stat), if the process exists.
pub fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) STATE PPID ...": comm may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root` (children, grandchildren, ...).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(pp) = ppid_of(pid) {
                    parent.insert(pid, pp);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    // A process tree is acyclic; the bound only guards against a garbled /proc read.
    for _ in 0..64 {
        let Some(p) = frontier.pop() else { break };
        for (&child, &pp) in &parent {
            if pp == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// `kill -SIG PID...` for exactly these PIDs.
pub fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills the sshd whose listener is `master` and every session process it forked:
/// the listener is stopped first (so it cannot fork while we look), then its tree is
/// stopped and collected until no new process shows up, then all are SIGKILLed. Waits
/// (bounded) until `addr` refuses connections. Returns how many processes died.
pub async fn kill_sshd_tree(master: u32, addr: SocketAddr) -> usize {
    signal("STOP", &[master]);
    let mut tree = vec![master];
    for _ in 0..20 {
        let found: Vec<u32> = descendants(master)
            .into_iter()
            .filter(|p| !tree.contains(p))
            .collect();
        if found.is_empty() {
            break;
        }
        signal("STOP", &found);
        tree.extend(found);
    }
    signal("KILL", &tree);
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{addr} still accepts connections 5 s after its sshd (pid {master}) was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tree.len()
}

/// Starts sshd again with the config (same port, host key and authorized_keys) of
/// `sshd`, appending to its log so that `sshd.logins()` counts both lives; waits for
/// its banner. The returned guard kills it.
pub async fn restart_sshd(sshd: &Sshd) -> ChildGuard {
    let dir = sshd.dir();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("open sshd.log for appending");
    let mut cmd = offline_command(dir, SSHD);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = ChildGuard::spawn("sshd (restarted)", &mut cmd);
    let addr = SocketAddr::new(sshd.host(), sshd.port());
    let started = Instant::now();
    loop {
        if let Some(status) = child.exited() {
            panic!("restarted sshd exited ({status}):\n{}", sshd.log());
        }
        if banner(addr).await {
            return child;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "restarted sshd shows no banner on {addr} within 10 s:\n{}",
            sshd.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn banner(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"SSH-2.0-")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// Waits (bounded) until `cond` holds, polling every 20 ms.
pub async fn until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
