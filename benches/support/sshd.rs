//! The jump host: a real OpenSSH sshd on 127.0.0.1 (ephemeral port) with a temp host
//! key, a temp client key in authorized_keys, and `Ciphers` set to the one cipher under
//! test, so that `ssh -D` and jumpgate both end up with it whatever they prefer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

use super::process::{free_port, keygen, run_ok, ChildGuard};

pub const SSHD: &str = "/usr/sbin/sshd";

/// How long sshd may take to show its banner.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Attempts with a fresh port when another process took ours first.
const BIND_ATTEMPTS: usize = 5;

/// A running sshd, killed on drop.
pub struct Sshd {
    /// Keys, config and log; removed on drop.
    _dir: TempDir,
    port: u16,
    user: String,
    client_key: PathBuf,
    known_hosts: PathBuf,
    log: PathBuf,
    child: ChildGuard,
}

impl Sshd {
    pub async fn start(cipher: &str) -> Result<Sshd> {
        for tool in [SSHD, "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
            if !Path::new(tool).exists() {
                bail!("{tool} is missing: install openssh-server and openssh-client");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("jg-bench-sshd-")
            .tempdir()
            .context("create sshd temp dir")?;
        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key)?;
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key)?;
        std::fs::write(
            dir.path().join("authorized_keys"),
            read_pub(&client_key)? + "\n",
        )
        .context("write authorized_keys")?;
        // sshd's privilege separation directory; Debian creates it from systemd only.
        std::fs::create_dir_all("/run/sshd").context("create /run/sshd")?;
        let user = run_ok(Command::new("id").arg("-un"), Duration::from_secs(10))?
            .trim()
            .to_string();
        let log = dir.path().join("sshd.log");
        let penalties = per_source_penalties_supported(dir.path())?;
        let mut last = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let config = dir.path().join("sshd_config");
            let text = sshd_config(dir.path(), port, cipher, penalties);
            std::fs::write(&config, &text).context("write sshd_config")?;
            let logfile = std::fs::File::create(&log).context("create sshd.log")?;
            let mut cmd = Command::new(SSHD);
            cmd.arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile);
            let mut child = ChildGuard::spawn("sshd", &mut cmd)?;
            match wait_banner(&mut child, SocketAddr::from(([127, 0, 0, 1], port))).await {
                Ok(()) => {
                    let known_hosts = dir.path().join("known_hosts");
                    std::fs::write(
                        &known_hosts,
                        format!("[127.0.0.1]:{port} {}\n", read_pub(&host_key)?),
                    )
                    .context("write known_hosts")?;
                    return Ok(Sshd {
                        _dir: dir,
                        port,
                        user,
                        client_key,
                        known_hosts,
                        log,
                        child,
                    });
                }
                Err(why) => {
                    drop(child);
                    last = std::fs::read_to_string(&log).unwrap_or_default();
                    if !last.contains("Address already in use") {
                        bail!("sshd did not start: {why}\nsshd_config:\n{text}\nsshd log:\n{last}");
                    }
                }
            }
        }
        bail!("sshd could not bind a port in {BIND_ATTEMPTS} attempts:\n{last}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: the one the bench runs as (sshd must be able to become it).
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// A known_hosts file with this sshd's host key as `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The listening sshd; its per-connection children do the work.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn sshd_config(dir: &Path, port: u16, cipher: &str, penalties: bool) -> String {
    let mut c = String::new();
    let d = dir.display();
    let _ = writeln!(c, "ListenAddress 127.0.0.1");
    let _ = writeln!(c, "Port {port}");
    let _ = writeln!(c, "HostKey {d}/ssh_host_ed25519_key");
    let _ = writeln!(c, "AuthorizedKeysFile {d}/authorized_keys");
    let _ = writeln!(c, "PidFile {d}/sshd.pid");
    // One cipher offered: both clients must use it.
    let _ = writeln!(c, "Ciphers {cipher}");
    for line in [
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding yes",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "LogLevel ERROR",
        "MaxStartups 1000:30:1000",
        "UseDNS no",
    ] {
        let _ = writeln!(c, "{line}");
    }
    if penalties {
        let _ = writeln!(c, "PerSourcePenalties no");
    }
    c
}

/// OpenSSH 9.8 added PerSourcePenalties (it would punish many sessions at once); older
/// versions reject the keyword. Asked of `sshd -t`.
fn per_source_penalties_supported(dir: &Path) -> Result<bool> {
    let cfg = dir.join("probe_config");
    std::fs::write(
        &cfg,
        format!(
            "HostKey {}\nPerSourcePenalties no\n",
            dir.join("ssh_host_ed25519_key").display()
        ),
    )
    .context("write probe config")?;
    Ok(Command::new(SSHD)
        .arg("-t")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false))
}

fn read_pub(key: &Path) -> Result<String> {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("read {}", Path::new(&p).display()))?
        .trim()
        .to_string())
}

/// Waits until `addr` answers with an SSH-2.0 banner, or the child exits, or
/// [`READY_LIMIT`] passes.
async fn wait_banner(child: &mut ChildGuard, addr: SocketAddr) -> Result<(), String> {
    let started = Instant::now();
    let mut last_err = String::from("not tried");
    while started.elapsed() < READY_LIMIT {
        if let Some(status) = child.exited() {
            return Err(format!("sshd exited: {status}"));
        }
        match try_banner(addr).await {
            Ok(()) => return Ok(()),
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "no SSH banner on {addr} within {READY_LIMIT:?}: {last_err}"
    ))
}

async fn try_banner(addr: SocketAddr) -> Result<(), String> {
    let limit = Duration::from_secs(2);
    let mut s = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .map_err(|_| "banner timed out".to_string())?
        .map_err(|e| format!("read banner: {e}"))?;
    if buf[..n].starts_with(b"SSH-2.0-") {
        Ok(())
    } else {
        Err(format!(
            "unexpected banner {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}
