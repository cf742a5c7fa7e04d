//! The jumpgate process under test: a config written from a [`GateConfig`], `jumpgate
//! run -c FILE` spawned with the offline resolver, its log lines captured, readiness
//! taken from the log (`listening ... addr=IP:PORT`, `upstream ready ... upstream=NAME`)
//! and a kill on drop. Also `jumpgate demo` and runs that are expected to exit.
//!
//! With `JG_TEST_STANDIN=ssh` the gate is OpenSSH's `ssh -N -D` against the same sshd
//! instead (readiness lines are synthesised). That exists only to validate this suite
//! while the daemon is being written: ssh -D closes on failures instead of replying, so
//! the reply-code tests fail with it, by design.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{offline_command, ChildGuard, Logs};
use super::socks;
use super::sshd::Sshd;

/// The binary under test.
pub const JUMPGATE: &str = env!("CARGO_BIN_EXE_jumpgate");

/// How long the gate may take to listen and to have a ready upstream.
pub const READY_LIMIT: Duration = Duration::from_secs(20);

/// How long a run that should exit (config errors, CLI errors) may take.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

fn standin_ssh() -> bool {
    std::env::var("JG_TEST_STANDIN").is_ok_and(|v| v == "ssh")
}

/// What a test's jumpgate config says: one upstream (the test's sshd) and one SOCKS5
/// listener on 127.0.0.1:0 routed through it.
#[derive(Clone, Debug)]
pub struct GateConfig {
    pub upstream: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// None: the key is left out.
    pub known_hosts: Option<PathBuf>,
    /// None: the key is left out (the daemon's default is strict).
    pub host_key_check: Option<String>,
    /// Name of the environment variable with the key's passphrase, and its value
    /// (set in the gate's environment only).
    pub passphrase_env: Option<(String, String)>,
    pub passphrase_file: Option<PathBuf>,
    pub handshake_timeout: String,
    pub connect_timeout: String,
    /// Raw TOML lines appended to the upstream table.
    pub extra_upstream: Vec<String>,
    /// Several equivalent jump hosts (`hosts = [...]`); when non-empty it
    /// replaces `host` and `port`.
    pub hosts: Vec<(String, u16)>,
    /// ProxyJump hops, outermost first (`proxy_jump = [...]`), as `[user@]host:port`.
    pub proxy_jump: Vec<String>,
    /// Extra environment for the gate process (e.g. SSH_AUTH_SOCK).
    pub env: Vec<(String, String)>,
    /// Raw TOML appended after the listener (e.g. an `[admin]` table).
    pub extra_toml: Vec<String>,
}

impl GateConfig {
    pub fn new(sshd: &Sshd) -> GateConfig {
        GateConfig::for_endpoint(
            &sshd.host().to_string(),
            sshd.port(),
            sshd.user(),
            sshd.client_key(),
            sshd.known_hosts(),
        )
    }

    /// A config for a jump host that is not a [`Sshd`] (e.g. the in-process
    /// `jumpgate::demo::jump_host`): `host:port`, log in as `user` with `key`, host keys
    /// from `known_hosts`; everything else as in [`GateConfig::new`].
    pub fn for_endpoint(
        host: &str,
        port: u16,
        user: &str,
        key: &Path,
        known_hosts: &Path,
    ) -> GateConfig {
        GateConfig {
            upstream: "jump".into(),
            host: host.into(),
            port,
            user: user.into(),
            identity_files: vec![key.to_path_buf()],
            known_hosts: Some(known_hosts.to_path_buf()),
            host_key_check: None,
            passphrase_env: None,
            passphrase_file: None,
            handshake_timeout: "10s".into(),
            connect_timeout: "10s".into(),
            extra_upstream: Vec::new(),
            hosts: Vec::new(),
            proxy_jump: Vec::new(),
            env: Vec::new(),
            extra_toml: Vec::new(),
        }
    }

    /// Upstream table lines, e.g. `sessions = { min = 2, max = 4 }`.
    pub fn upstream_line(mut self, line: &str) -> Self {
        self.extra_upstream.push(line.into());
        self
    }

    pub fn hosts(mut self, hosts: &[(String, u16)]) -> Self {
        self.hosts = hosts.to_vec();
        self
    }

    pub fn proxy_jump(mut self, hops: &[String]) -> Self {
        self.proxy_jump = hops.to_vec();
        self
    }

    pub fn identity(mut self, key: &Path) -> Self {
        self.identity_files = vec![key.to_path_buf()];
        self
    }

    pub fn known_hosts(mut self, file: Option<&Path>) -> Self {
        self.known_hosts = file.map(Path::to_path_buf);
        self
    }

    pub fn host_key_check(mut self, mode: &str) -> Self {
        self.host_key_check = Some(mode.into());
        self
    }

    pub fn passphrase_env(mut self, var: &str, value: &str) -> Self {
        self.passphrase_env = Some((var.into(), value.into()));
        self
    }

    pub fn passphrase_file(mut self, file: &Path) -> Self {
        self.passphrase_file = Some(file.to_path_buf());
        self
    }

    pub fn handshake_timeout(mut self, d: &str) -> Self {
        self.handshake_timeout = d.into();
        self
    }

    pub fn connect_timeout(mut self, d: &str) -> Self {
        self.connect_timeout = d.into();
        self
    }

    pub fn toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "[[upstream]]");
        let _ = writeln!(t, "name = {}", q(&self.upstream));
        if self.hosts.is_empty() {
            let _ = writeln!(t, "host = {}", q(&self.host));
            let _ = writeln!(t, "port = {}", self.port);
        } else {
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|(h, p)| q(&format!("{h}:{p}")))
                .collect();
            let _ = writeln!(t, "hosts = [{}]", hosts.join(", "));
        }
        if !self.proxy_jump.is_empty() {
            let hops: Vec<String> = self.proxy_jump.iter().map(|h| q(h)).collect();
            let _ = writeln!(t, "proxy_jump = [{}]", hops.join(", "));
        }
        let _ = writeln!(t, "user = {}", q(&self.user));
        let files: Vec<String> = self.identity_files.iter().map(|p| qp(p)).collect();
        let _ = writeln!(t, "identity_files = [{}]", files.join(", "));
        if let Some(kh) = &self.known_hosts {
            let _ = writeln!(t, "known_hosts = {}", qp(kh));
        }
        if let Some(mode) = &self.host_key_check {
            let _ = writeln!(t, "host_key_check = {}", q(mode));
        }
        if let Some((var, _)) = &self.passphrase_env {
            let _ = writeln!(t, "passphrase_env = {}", q(var));
        }
        if let Some(file) = &self.passphrase_file {
            let _ = writeln!(t, "passphrase_file = {}", qp(file));
        }
        if !self
            .extra_upstream
            .iter()
            .any(|l| l.starts_with("keepalive"))
        {
            let _ = writeln!(t, "keepalive = {{ interval = \"15s\", count_max = 3 }}");
        }
        for line in &self.extra_upstream {
            let _ = writeln!(t, "{line}");
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "[[listener]]");
        let _ = writeln!(t, "name = \"socks\"");
        let _ = writeln!(t, "kind = \"socks5\"");
        let _ = writeln!(t, "bind = \"127.0.0.1:0\"");
        let _ = writeln!(t, "via = {}", q(&self.upstream));
        let _ = writeln!(t, "handshake_timeout = {}", q(&self.handshake_timeout));
        let _ = writeln!(t, "connect_timeout = {}", q(&self.connect_timeout));
        for line in &self.extra_toml {
            let _ = writeln!(t, "{line}");
        }
        t
    }

    fn env(&self) -> Vec<(String, String)> {
        self.passphrase_env
            .iter()
            .cloned()
            .chain(self.env.iter().cloned())
            .collect()
    }
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn qp(p: &Path) -> String {
    q(&p.display().to_string())
}

/// A running jumpgate (or its stand-in), killed on drop.
pub struct Gate {
    dir: TempDir,
    logs: Logs,
    socks: Option<SocketAddr>,
    child: ChildGuard,
}

impl Gate {
    /// Starts `jumpgate run` and waits until it listens and its upstream is ready.
    pub async fn start(cfg: &GateConfig) -> Gate {
        let mut gate = Gate::spawn(cfg);
        gate.wait_listening().await;
        gate.wait_ready(&cfg.upstream).await;
        gate
    }

    /// Starts `jumpgate run` and waits only until it listens (for upstreams that are
    /// expected never to become ready).
    pub async fn start_unready(cfg: &GateConfig) -> Gate {
        let mut gate = Gate::spawn(cfg);
        gate.wait_listening().await;
        gate
    }

    /// Starts `jumpgate run` without waiting for anything.
    pub fn spawn(cfg: &GateConfig) -> Gate {
        if standin_ssh() {
            return Gate::spawn_standin(cfg);
        }
        let dir = gate_dir();
        let path = dir.path().join("jumpgate.toml");
        std::fs::write(&path, cfg.toml()).expect("write jumpgate.toml");
        let mut cmd = offline_command(dir.path(), JUMPGATE);
        cmd.arg("run").arg("-c").arg(&path);
        base_env(&mut cmd, dir.path());
        for (k, v) in cfg.env() {
            cmd.env(k, v);
        }
        Gate::spawn_cmd(dir, cmd, "gate")
    }

    /// Starts `jumpgate demo` and waits until it listens.
    pub async fn demo() -> Gate {
        let dir = gate_dir();
        let mut cmd = offline_command(dir.path(), JUMPGATE);
        cmd.arg("demo");
        base_env(&mut cmd, dir.path());
        let mut gate = Gate::spawn_cmd(dir, cmd, "demo");
        gate.wait_listening().await;
        gate
    }

    /// Spawns `cmd`, whose environment the caller has set (`base_env` first).
    fn spawn_cmd(dir: TempDir, mut cmd: Command, prefix: &str) -> Gate {
        let mut child = ChildGuard::spawn(prefix, &mut cmd);
        let logs = Logs::default();
        if let Some(out) = child.take_stdout() {
            logs.pump(&format!("{prefix} stdout"), out);
        }
        if let Some(err) = child.take_stderr() {
            logs.pump(prefix, err);
        }
        Gate {
            dir,
            logs,
            socks: None,
            child,
        }
    }

    /// The SOCKS5 address parsed from the `listening` log line.
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks
            .expect("the gate has not logged its listening address yet")
    }

    pub fn log_text(&self) -> String {
        self.logs.text()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.exited()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Resident memory of the gate process, in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of the gate");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// Waits (bounded) for a log line matching `pred`; None if it did not come within
    /// `limit` or the process exited without it.
    pub async fn wait_log(
        &mut self,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let started = Instant::now();
        loop {
            if let Some(line) = self.logs.find(&pred) {
                return Some(line);
            }
            if started.elapsed() > limit {
                return None;
            }
            if self.exited().is_some() {
                // Give the pump threads a moment to deliver the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self.logs.find(&pred);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many log lines so far match `pred`.
    pub fn count_log(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.logs.count(pred)
    }

    async fn wait_listening(&mut self) {
        let line = self
            .wait_log(READY_LIMIT, |l| {
                l.contains("listening") && parse_addr(l).is_some()
            })
            .await;
        match line.as_deref().and_then(parse_addr) {
            Some(addr) => self.socks = Some(addr),
            None => self.never_logged("listening ... addr=IP:PORT"),
        }
    }

    async fn wait_ready(&mut self, upstream: &str) {
        let want = format!("upstream={upstream}");
        let quoted = format!("upstream=\"{upstream}\"");
        let line = self
            .wait_log(READY_LIMIT, |l| {
                l.contains("upstream ready")
                    && l.split_whitespace().any(|w| w == want || w == quoted)
            })
            .await;
        if line.is_none() {
            self.never_logged(&format!("upstream ready ... {want}"));
        }
    }

    fn never_logged(&mut self, what: &str) -> ! {
        let why = match self.exited() {
            Some(status) => format!("jumpgate exited ({status}) without logging `{what}`"),
            None => format!("jumpgate did not log `{what}` within {READY_LIMIT:?}"),
        };
        panic!("{why}; log:\n{}", self.log_text())
    }

    /// A CONNECT through this gate that must succeed.
    pub async fn connect(&self, dest: impl Into<socks::Dest>) -> tokio::net::TcpStream {
        let dest = dest.into();
        match socks::connect(self.socks_addr(), dest.clone()).await {
            Ok(s) => s,
            Err(e) => panic!(
                "CONNECT {dest} through the gate: {e:#}\ngate log:\n{}",
                self.log_text()
            ),
        }
    }

    /// One echo round trip through this gate that must succeed.
    pub async fn echo_roundtrip(&self, echo: SocketAddr, payload: &[u8]) {
        if let Err(e) = socks::echo_roundtrip(self.socks_addr(), echo, payload).await {
            panic!(
                "echo round trip to {echo}: {e:#}\ngate log:\n{}",
                self.log_text()
            );
        }
    }

    /// The reply code of a request through this gate.
    pub async fn reply_code(&self, cmd: u8, dest: &socks::Dest) -> u8 {
        match socks::reply_code(self.socks_addr(), cmd, dest).await {
            Ok(code) => code,
            Err(e) => panic!(
                "SOCKS request to {dest}: {e:#}\ngate log:\n{}",
                self.log_text()
            ),
        }
    }

    /// `ssh -N -D` as a stand-in for `jumpgate run` (see the module docs).
    fn spawn_standin(cfg: &GateConfig) -> Gate {
        let dir = gate_dir();
        let port = super::free_port();
        let kh = cfg
            .known_hosts
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev/null"));
        let check = match cfg.host_key_check.as_deref() {
            None | Some("strict") => "yes",
            Some("accept-new") => "accept-new",
            Some(_) => "no",
        };
        let mut cmd = offline_command(dir.path(), "ssh");
        cmd.args(["-F", "/dev/null", "-N", "-D"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg("-o")
            .arg(format!("StrictHostKeyChecking={check}"))
            .args([
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
            ])
            .arg("-p")
            .arg(cfg.port.to_string());
        for key in &cfg.identity_files {
            cmd.arg("-i").arg(key);
        }
        let passphrase = match (&cfg.passphrase_env, &cfg.passphrase_file) {
            (Some((_, v)), _) => Some(v.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .expect("read passphrase file")
                    .trim_end_matches('\n')
                    .to_string(),
            ),
            (None, None) => None,
        };
        match passphrase {
            Some(p) => {
                // ssh reads a passphrase only from a tty or an askpass program.
                let askpass = dir.path().join("askpass.sh");
                let pw = dir.path().join("askpass.pw");
                std::fs::write(&pw, p).expect("write askpass passphrase");
                std::fs::write(&askpass, format!("#!/bin/sh\ncat '{}'\n", pw.display()))
                    .expect("write askpass");
                std::fs::set_permissions(
                    &askpass,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
                .expect("chmod askpass");
                cmd.env("SSH_ASKPASS", &askpass)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .env("DISPLAY", ":0");
            }
            None => {
                cmd.args(["-o", "BatchMode=yes"]);
            }
        }
        cmd.arg(format!("{}@{}", cfg.user, cfg.host));
        base_env(&mut cmd, dir.path());
        let gate = Gate::spawn_cmd(dir, cmd, "ssh -D");
        // ssh binds the -D port only after login: that is its readiness.
        let logs = gate.logs.clone();
        let upstream = cfg.upstream.clone();
        std::thread::spawn(move || {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let started = Instant::now();
            while started.elapsed() < READY_LIMIT {
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                    logs.push(format!(
                        "INFO standin: listening listener=socks addr={addr}"
                    ));
                    logs.push(format!("INFO standin: upstream ready upstream={upstream}"));
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        gate
    }
}

fn gate_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("jg-gate-")
        .tempdir()
        .expect("create gate temp dir")
}

/// The `addr=IP:PORT` field of a log line (quotes tolerated).
pub fn parse_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .map(|v| v.trim_matches(|c| c == '"' || c == ',' || c == '}'))
        .and_then(|v| v.parse().ok())
}

/// The outcome of a jumpgate run that is expected to exit by itself.
#[derive(Debug)]
pub struct Exit {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The config file passed with `-c` (errors must name it), kept until drop.
    pub config: Option<PathBuf>,
    _dir: TempDir,
}

/// Runs `jumpgate ARGS` to its exit (bounded); for CLI errors.
pub fn run_expect_exit(args: &[&str]) -> Exit {
    let dir = gate_dir();
    let mut cmd = offline_command(dir.path(), JUMPGATE);
    cmd.args(args);
    run_to_exit(dir, cmd, None)
}

/// Writes `toml` to a config file and runs `jumpgate run -c FILE` to its exit
/// (bounded); for config errors.
pub fn spawn_expect_exit(toml: &str) -> Exit {
    let dir = gate_dir();
    let path = dir.path().join("jumpgate.toml");
    std::fs::write(&path, toml).expect("write jumpgate.toml");
    let mut cmd = offline_command(dir.path(), JUMPGATE);
    cmd.arg("run").arg("-c").arg(&path);
    run_to_exit(dir, cmd, Some(path))
}

/// Writes `cfg` to a config file and runs `jumpgate check -c FILE` to its exit
/// (bounded): one login attempt per jump host, the outcome on stdout.
pub fn check_expect_exit(cfg: &GateConfig) -> Exit {
    let dir = gate_dir();
    let path = dir.path().join("jumpgate.toml");
    std::fs::write(&path, cfg.toml()).expect("write jumpgate.toml");
    let mut cmd = offline_command(dir.path(), JUMPGATE);
    cmd.arg("check").arg("-c").arg(&path);
    for (k, v) in cfg.env() {
        cmd.env(k, v);
    }
    run_to_exit(dir, cmd, Some(path))
}

fn run_to_exit(dir: TempDir, mut cmd: Command, config: Option<PathBuf>) -> Exit {
    base_env(&mut cmd, dir.path());
    let mut child = ChildGuard::spawn("jumpgate", &mut cmd);
    let (stdout, stderr) = (Logs::default(), Logs::default());
    let pumps = [
        child
            .take_stdout()
            .map(|p| stdout.pump("jumpgate stdout", p)),
        child.take_stderr().map(|p| stderr.pump("jumpgate", p)),
    ];
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.exited() {
            break status;
        }
        if started.elapsed() > EXIT_LIMIT {
            panic!(
                "jumpgate was expected to exit but still runs after {EXIT_LIMIT:?}; stderr:\n{}",
                stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The child has exited, so its pipes are at EOF and the pumps end.
    for pump in pumps.into_iter().flatten() {
        let _ = pump.join();
    }
    Exit {
        code: status.code(),
        stdout: stdout.text(),
        stderr: stderr.text(),
        config,
        _dir: dir,
    }
}

/// The environment every jumpgate child gets: plain logs at info, no agent.
fn base_env(cmd: &mut Command, dir: &Path) {
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parses_listening_addr() {
        let l = "2026-11-25T10:00:00Z  INFO jumpgate::daemon: listening listener=socks addr=127.0.0.1:40123";
        assert_eq!(parse_addr(l), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(
            parse_addr("INFO listening addr=\"[::1]:1080\" listener=\"socks\""),
            Some("[::1]:1080".parse().unwrap())
        );
        assert_eq!(parse_addr("INFO listening peer_addr=1.2.3.4:5"), None);
    }

    #[test]
    fn config_toml_quotes_paths() {
        let cfg = GateConfig {
            upstream: "jump".into(),
            host: "127.0.0.1".into(),
            port: 2222,
            user: "root".into(),
            identity_files: vec![PathBuf::from("/tmp/a \"b\"/id")],
            known_hosts: None,
            host_key_check: Some("off".into()),
            passphrase_env: None,
            passphrase_file: None,
            handshake_timeout: "1s".into(),
            connect_timeout: "2s".into(),
            extra_upstream: vec![],
            hosts: vec![],
            proxy_jump: vec![],
            env: vec![],
            extra_toml: vec![],
        };
        let t = cfg.toml();
        assert!(
            t.contains("identity_files = [\"/tmp/a \\\"b\\\"/id\"]"),
            "{t}"
        );
        assert!(!t.contains("known_hosts"), "{t}");
        assert!(t.contains("host_key_check = \"off\""), "{t}");
    }
}
