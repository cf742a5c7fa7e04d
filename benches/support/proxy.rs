//! The two proxies under test, started against the same sshd: OpenSSH `ssh -N -D`
//! and the jumpgate release binary (`jumpgate run -c FILE`). Both log to a file in
//! their temp dir (not a pipe: nothing has to drain it during the bench).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use super::process::{free_port, ChildGuard};
use super::sshd::Sshd;

/// The jumpgate binary cargo built for this bench (same profile as the bench).
pub const JUMPGATE: &str = env!("CARGO_BIN_EXE_jumpgate");

/// How long a proxy may take to log in and listen.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// Tunnels per SSH session that jumpgate may carry. Its default (1024) with
/// `sessions.max = 4` caps it at 4,096 tunnels; 2,000 lets 5,000 idle tunnels fit
/// in 3 sessions. Below 2,000 tunnels (every other figure) it changes nothing.
pub const JUMPGATE_MAX_CHANNELS: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ssh,
    Jumpgate,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Ssh => "ssh -D",
            Kind::Jumpgate => "jumpgate",
        })
    }
}

/// A running proxy, killed on drop.
pub struct Proxy {
    pub kind: Kind,
    /// Its SOCKS5 endpoint.
    pub addr: SocketAddr,
    log: PathBuf,
    child: ChildGuard,
    _dir: TempDir,
}

/// How to run jumpgate.
#[derive(Clone, Debug)]
pub struct JumpgateOpts {
    /// The binary: [`JUMPGATE`] unless `--jumpgate PATH` (e.g. a candidate build).
    pub bin: PathBuf,
    /// RUST_LOG for it; None keeps its default.
    pub log: Option<String>,
    /// `sessions = { min, max }` of its upstream (default 1, 4: jumpgate's own).
    pub sessions: (usize, usize),
}

impl Proxy {
    pub async fn start(kind: Kind, sshd: &Sshd, jg: &JumpgateOpts) -> Result<Proxy> {
        match kind {
            Kind::Ssh => start_ssh(sshd).await,
            Kind::Jumpgate => start_jumpgate(sshd, jg).await,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with the proxy's log if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.exited() {
            bail!(
                "{} exited ({status}); its log:\n{}",
                self.child.what(),
                self.log()
            );
        }
        Ok(())
    }
}

fn proxy_dir() -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix("jg-bench-proxy-")
        .tempdir()
        .context("create proxy temp dir")
}

async fn start_ssh(sshd: &Sshd) -> Result<Proxy> {
    let mut last = String::new();
    for _ in 0..5 {
        let dir = proxy_dir()?;
        let port = free_port()?;
        let log = dir.path().join("ssh.log");
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-N", "-D"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                sshd.known_hosts().display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .arg("-i")
            .arg(sshd.client_key())
            .arg("-p")
            .arg(sshd.port().to_string())
            .arg(format!("{}@127.0.0.1", sshd.user()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("create ssh.log")?);
        let mut child = ChildGuard::spawn("ssh -D", &mut cmd)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // ssh binds the -D port only after login: a TCP connect is its readiness.
        let started = Instant::now();
        while started.elapsed() < READY_LIMIT {
            if child.exited().is_some() {
                break;
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(Proxy {
                    kind: Kind::Ssh,
                    addr,
                    log,
                    child,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let exited = child.exited();
        drop(child);
        last = std::fs::read_to_string(&log).unwrap_or_default();
        if exited.is_none() || !last.contains("in use") {
            bail!("ssh -D did not start listening within {READY_LIMIT:?}; its log:\n{last}");
        }
    }
    bail!("ssh -D could not bind a port in 5 attempts:\n{last}")
}

fn jumpgate_config(sshd: &Sshd, jg: &JumpgateOpts) -> String {
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    format!(
        r#"[[upstream]]
name = "bench"
host = "127.0.0.1"
port = {port}
user = {user:?}
identity_files = [{key}]
agent = false
known_hosts = {kh}
host_key_check = "strict"
sessions = {{ min = {smin}, max = {smax} }}
max_channels_per_session = {maxch}

[[listener]]
name = "socks"
kind = "socks5"
bind = "127.0.0.1:0"
via = "bench"
"#,
        port = sshd.port(),
        user = sshd.user(),
        key = q(sshd.client_key()),
        kh = q(sshd.known_hosts()),
        maxch = JUMPGATE_MAX_CHANNELS,
        smin = jg.sessions.0,
        smax = jg.sessions.1,
    )
}

async fn start_jumpgate(sshd: &Sshd, jg: &JumpgateOpts) -> Result<Proxy> {
    if !jg.bin.exists() {
        bail!(
            "the jumpgate binary is missing at {}; build it with `cargo build --release` \
             (cargo bench normally builds it)",
            jg.bin.display()
        );
    }
    let dir = proxy_dir()?;
    let config = dir.path().join("jumpgate.toml");
    std::fs::write(&config, jumpgate_config(sshd, jg)).context("write jumpgate.toml")?;
    let log = dir.path().join("jumpgate.log");
    let mut cmd = Command::new(&jg.bin);
    cmd.arg("run")
        .arg("-c")
        .arg(&config)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).context("create jumpgate.log")?);
    // Its default logging (info: one line per tunnel) unless asked otherwise.
    match &jg.log {
        Some(f) => cmd.env("RUST_LOG", f),
        None => cmd.env_remove("RUST_LOG"),
    };
    let mut child = ChildGuard::spawn("jumpgate", &mut cmd)?;
    let started = Instant::now();
    let mut addr = None;
    while started.elapsed() < READY_LIMIT {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if addr.is_none() {
            addr = text
                .lines()
                .filter(|l| l.contains("listening"))
                .find_map(parse_addr);
        }
        let ready = text.lines().any(|l| l.contains("upstream ready"));
        if let (Some(addr), true) = (addr, ready) {
            return Ok(Proxy {
                kind: Kind::Jumpgate,
                addr,
                log,
                child,
                _dir: dir,
            });
        }
        if let Some(status) = child.exited() {
            bail!("jumpgate exited ({status}) before it was ready; its log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "jumpgate did not log `listening ... addr=` and `upstream ready` within {READY_LIMIT:?} \
         (a RUST_LOG filter must keep jumpgate::daemon and jumpgate::ssh::pool at info); its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    )
}

/// The `addr=IP:PORT` field of a log line (quotes tolerated).
fn parse_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .map(|v| v.trim_matches(|c| c == '"' || c == ',' || c == '}'))
        .and_then(|v| v.parse().ok())
}
